//! Builds segment files by hand: records with chosen LSNs, through the real
//! record writer, into an in-memory buffer.

use std::sync::Arc;

use parking_lot::Mutex;
use wal_manager::Lsn;
use wal_manager::layout::lsn_prefix;
use wal_record::{LogFile, LogWriter, LogWriterOptions};

/// A log file whose bytes stay readable after the writer is done.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl LogFile for SharedBuf {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.lock().extend_from_slice(buf);
        Ok(())
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One record of a hand-built segment: raw stored bytes, or an LSN and a
/// payload; `sync` syncs after it (advancing later synced offsets).
pub enum Rec<'a> {
    Lsn(u64, &'a [u8], bool),
    Raw(&'a [u8]),
}

/// A Pebble batch: its header (sequence number, count) and `body_len`
/// bytes of body derived from `seq`.
pub fn batch(seq: u64, count: u32, body_len: usize) -> Vec<u8> {
    let mut b = seq.to_le_bytes().to_vec();
    b.extend_from_slice(&count.to_le_bytes());
    b.extend((0..body_len).map(|i| (seq as u8).wrapping_add(i as u8)));
    b
}

/// The bytes of a segment of `log` holding `records`; `close` writes the
/// trailer.
pub fn segment(log: u64, records: &[Rec<'_>], close: bool) -> Vec<u8> {
    let buf = SharedBuf::default();
    let w = LogWriter::new(
        buf.clone(),
        LogWriterOptions {
            log_num: log as u32,
            ..LogWriterOptions::default()
        },
    )
    .unwrap();
    for r in records {
        match r {
            Rec::Lsn(lsn, payload, sync) => {
                w.append(&[&lsn_prefix(Lsn(*lsn), false), payload]).unwrap();
                if *sync {
                    w.sync().unwrap();
                }
            }
            Rec::Raw(bytes) => {
                w.append(&[bytes]).unwrap();
            }
        }
    }
    if close {
        w.close().unwrap();
    } else {
        w.flush().unwrap();
        drop(w);
    }
    buf.0.lock().clone()
}
