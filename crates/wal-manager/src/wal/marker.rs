//! System records: checkpoints and truncation markers.
//!
//! A system record's stored bytes are its LSN with the top bit set, then a
//! kind byte, then the kind's data:
//!
//! ```text
//! +----------------------+---------+------------------------+
//! | lsn | 1<<63  u64 LE  | kind u8 | data ...               |
//! +----------------------+---------+------------------------+
//!   0                      8         9
//! kind 1 checkpoint:       data = the caller's bytes
//! kind 2 truncate-before:  data = first kept LSN (u64 LE)
//! kind 3 truncate-after:   data = last kept LSN (u64 LE)
//! kind 4 checkpoint at:    data = the last LSN covered (u64 LE), then the caller's bytes
//! ```
//!
//! A kind 1 checkpoint covers every record up to its own LSN (the last one
//! assigned before it); kind 4 names a lower one (`Wal::checkpoint_at`: an
//! engine that flushed its memtable up to a record while later ones kept
//! coming). A reader that does not know a kind ignores the record.
//!
//! Every system record is the first record of its own log and takes the LSN
//! of the last record assigned before it, without using one up: user LSNs
//! stay contiguous, and a reader never mistakes a marker for a duplicate.

use crate::types::Lsn;

const CHECKPOINT: u8 = 1;
const TRUNCATE_BEFORE: u8 = 2;
const TRUNCATE_AFTER: u8 = 3;
const CHECKPOINT_AT: u8 = 4;

/// A decoded system record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    /// A checkpoint covering every record up to `covers`, or, without it,
    /// up to the record it shares its LSN with.
    Checkpoint {
        /// The last record covered, if below the marker's own LSN.
        covers: Option<Lsn>,
        /// The caller's bytes.
        data: Vec<u8>,
    },
    /// Records below this LSN are gone.
    TruncateBefore(Lsn),
    /// Records above this LSN, in earlier logs, are gone.
    TruncateAfter(Lsn),
}

impl Marker {
    /// The payload (after the LSN prefix).
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Marker::Checkpoint { covers, data } => {
                let mut v = Vec::with_capacity(9 + data.len());
                match covers {
                    None => v.push(CHECKPOINT),
                    Some(l) => {
                        v.push(CHECKPOINT_AT);
                        v.extend_from_slice(&l.0.to_le_bytes());
                    }
                }
                v.extend_from_slice(data);
                v
            }
            Marker::TruncateBefore(l) => {
                let mut v = vec![TRUNCATE_BEFORE];
                v.extend_from_slice(&l.0.to_le_bytes());
                v
            }
            Marker::TruncateAfter(l) => {
                let mut v = vec![TRUNCATE_AFTER];
                v.extend_from_slice(&l.0.to_le_bytes());
                v
            }
        }
    }

    /// Decodes a system record's payload; `None` if it is not one this
    /// version knows (a reader then ignores it).
    pub(crate) fn decode(payload: &[u8]) -> Option<Marker> {
        let (&kind, data) = payload.split_first()?;
        let lsn = || data.try_into().ok().map(|b| Lsn(u64::from_le_bytes(b)));
        match kind {
            CHECKPOINT => Some(Marker::Checkpoint {
                covers: None,
                data: data.to_vec(),
            }),
            CHECKPOINT_AT => {
                let (lsn, rest) = data.split_first_chunk::<8>()?;
                Some(Marker::Checkpoint {
                    covers: Some(Lsn(u64::from_le_bytes(*lsn))),
                    data: rest.to_vec(),
                })
            }
            TRUNCATE_BEFORE => lsn().map(Marker::TruncateBefore),
            TRUNCATE_AFTER => lsn().map(Marker::TruncateAfter),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        for m in [
            Marker::Checkpoint {
                covers: None,
                data: b"state".to_vec(),
            },
            Marker::Checkpoint {
                covers: None,
                data: Vec::new(),
            },
            Marker::Checkpoint {
                covers: Some(Lsn(3)),
                data: b"flushed".to_vec(),
            },
            Marker::Checkpoint {
                covers: Some(Lsn(0)),
                data: Vec::new(),
            },
            Marker::TruncateBefore(Lsn(7)),
            Marker::TruncateAfter(Lsn(u64::MAX >> 1)),
        ] {
            assert_eq!(Marker::decode(&m.encode()), Some(m));
        }
        assert_eq!(Marker::decode(&[]), None);
        assert_eq!(Marker::decode(&[9, 1, 2]), None);
        assert_eq!(Marker::decode(&[TRUNCATE_AFTER, 1, 2]), None);
        assert_eq!(Marker::decode(&[CHECKPOINT_AT, 1, 2]), None);
    }
}
