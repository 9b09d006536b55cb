//! How stored records are sequenced ([`Sequencing`]).
//!
//! * `lsn` (the default): every stored record is its LSN (u64,
//!   little-endian) followed by the caller's payload; system records set the
//!   LSN's top bit. Readers drop duplicates and notice lost records by LSN.
//! * `pebble-batch`: the record is the engine's Pebble batch, stored as it
//!   is: a 12-byte header (sequence number u64 LE, count u32 LE) and the
//!   body. Readers drop duplicates by sequence number as Pebble's do.

use serde::Deserialize;

use crate::types::Lsn;

/// How the records of a WAL are sequenced, and so how readers drop the
/// duplicates a failover switch leaves (the `[log] sequencing` key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sequencing {
    /// failwal's LSN envelope before every payload.
    #[default]
    Lsn,
    /// No envelope: every record is a Pebble batch, sequenced by the
    /// sequence number and count in its header.
    PebbleBatch,
}

impl Sequencing {
    /// The name used in the configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Sequencing::Lsn => "lsn",
            Sequencing::PebbleBatch => "pebble-batch",
        }
    }

    /// Bytes stored before each payload.
    pub fn prefix_size(self) -> usize {
        match self {
            Sequencing::Lsn => LSN_PREFIX_SIZE,
            Sequencing::PebbleBatch => 0,
        }
    }
}

impl std::str::FromStr for Sequencing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lsn" => Ok(Sequencing::Lsn),
            "pebble-batch" => Ok(Sequencing::PebbleBatch),
            other => Err(format!(
                "unknown sequencing {other:?}: expected \"lsn\" or \"pebble-batch\""
            )),
        }
    }
}

/// Bytes of a Pebble batch header: sequence number (u64 LE), count (u32 LE).
pub const BATCH_HEADER_SIZE: usize = 12;

/// The header of a Pebble batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// The sequence number of the batch's first operation.
    pub seq: u64,
    /// How many operations it holds; 0 for a batch of LogData only, which
    /// repeats the next batch's sequence number.
    pub count: u32,
}

/// The header of the Pebble batch `record`; `None` if it is too short for
/// one.
pub fn decode_batch_header(record: &[u8]) -> Option<BatchHeader> {
    let (seq, rest) = record.split_first_chunk::<8>()?;
    let (count, _) = rest.split_first_chunk::<4>()?;
    Some(BatchHeader {
        seq: u64::from_le_bytes(*seq),
        count: u32::from_le_bytes(*count),
    })
}

/// Bytes of the LSN prefix.
pub const LSN_PREFIX_SIZE: usize = 8;

/// The stored prefix of a record with this LSN (`system` sets the top bit).
pub fn lsn_prefix(lsn: Lsn, system: bool) -> [u8; LSN_PREFIX_SIZE] {
    debug_assert!(lsn <= Lsn::MAX);
    let raw = if system {
        lsn.0 | Lsn::SYSTEM_BIT
    } else {
        lsn.0
    };
    raw.to_le_bytes()
}

/// Splits a stored record into `(lsn, is_system, payload)`; `None` if it is
/// too short to carry an LSN.
pub fn decode(stored: &[u8]) -> Option<(Lsn, bool, &[u8])> {
    let (prefix, payload) = stored.split_first_chunk::<LSN_PREFIX_SIZE>()?;
    let raw = u64::from_le_bytes(*prefix);
    Some((
        Lsn(raw & !Lsn::SYSTEM_BIT),
        raw & Lsn::SYSTEM_BIT != 0,
        payload,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_round_trip_with_and_without_the_system_bit() {
        for (lsn, system) in [
            (Lsn(0), false),
            (Lsn(42), true),
            (Lsn::MAX, false),
            (Lsn::MAX, true),
        ] {
            let mut stored = lsn_prefix(lsn, system).to_vec();
            stored.extend_from_slice(b"payload");
            assert_eq!(decode(&stored), Some((lsn, system, &b"payload"[..])));
        }
        assert_eq!(decode(&[1, 2, 3]), None);
    }

    #[test]
    fn batch_headers_are_read_as_pebble_writes_them() {
        let mut batch = 39u64.to_le_bytes().to_vec();
        batch.extend_from_slice(&4u32.to_le_bytes());
        batch.extend_from_slice(b"body");
        assert_eq!(
            decode_batch_header(&batch),
            Some(BatchHeader { seq: 39, count: 4 })
        );
        assert_eq!(decode_batch_header(&batch[..11]), None);
        assert_eq!(decode_batch_header(&batch[..12]).map(|h| h.count), Some(4));
    }
}
