//! Helpers shared by the record-layer integration tests.
#![allow(dead_code)]

use std::io::Read;

use wal_record::format::{self, BLOCK_SIZE};
use wal_record::{End, Error, LogReader, LogWriter, LogWriterOptions, WireFormat};

/// One record to write, and whether to wait for it to be durable (which
/// advances the synced offset written into later wal-sync headers).
#[derive(Clone, Debug)]
pub struct Rec {
    pub payload: Vec<u8>,
    pub sync: bool,
}

impl Rec {
    pub fn new(len: usize, seed: u8) -> Rec {
        Rec {
            payload: payload(len, seed),
            sync: false,
        }
    }
    pub fn synced(len: usize, seed: u8) -> Rec {
        Rec {
            sync: true,
            ..Rec::new(len, seed)
        }
    }
}

/// Deterministic, non-repeating-looking payload bytes.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).rotate_left(3))
        .collect()
}

/// Writes `records` through a real `LogWriter` into a real temporary file and
/// returns the file's bytes. `close` writes the EOF trailer; otherwise the
/// writer is flushed and abandoned (a log that was never closed).
pub fn write_log(format: WireFormat, log_num: u32, records: &[Rec], close: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let file = std::fs::File::create(&path).unwrap();
    let w = LogWriter::new(
        file,
        LogWriterOptions {
            log_num,
            format,
            ..LogWriterOptions::default()
        },
    )
    .unwrap();
    for r in records {
        if r.sync {
            w.append_sync(&[&r.payload]).unwrap();
        } else {
            w.append(&[&r.payload]).unwrap();
        }
    }
    if close {
        let size = w.close().unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
    } else {
        w.sync().unwrap();
        drop(w);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// Everything a reader reports about a byte string.
#[derive(Debug)]
pub struct ReadOutcome {
    pub records: Vec<Vec<u8>>,
    pub offsets: Vec<u64>,
    pub result: Result<End, Error>,
}

pub fn read_log(bytes: &[u8], log_num: u32) -> ReadOutcome {
    let mut reader = LogReader::new(bytes, log_num);
    let mut records = Vec::new();
    let mut offsets = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some(r)) => {
                records.push(r.payload.to_vec());
                offsets.push(r.offset);
            }
            Ok(None) => {
                let end = reader.end().expect("an end after Ok(None)");
                // The outcome is latched.
                assert!(matches!(reader.next_record(), Ok(None)));
                return ReadOutcome {
                    records,
                    offsets,
                    result: Ok(end),
                };
            }
            Err(e) => {
                let again = reader.next_record().unwrap_err();
                assert_eq!(again.to_string(), e.to_string(), "errors are latched");
                return ReadOutcome {
                    records,
                    offsets,
                    result: Err(e),
                };
            }
        }
    }
}

/// The offsets of every chunk header in a well-formed log, in order (stops
/// at the trailer).
pub fn chunk_offsets(bytes: &[u8], header: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + header <= bytes.len() {
        let in_block = pos % BLOCK_SIZE;
        if BLOCK_SIZE - in_block < header {
            pos += BLOCK_SIZE - in_block;
            continue;
        }
        let (_, len, code) = format::decode_common(&bytes[pos..]).unwrap();
        if code == 0 || (code == 5 && len == 0 && pos + 11 == bytes.len()) {
            break;
        }
        out.push(pos);
        pos += header + len as usize;
    }
    out
}

/// Recomputes the CRC of the chunk at `at` after a test patched its header.
pub fn fix_crc(bytes: &mut [u8], at: usize, header: usize) {
    let (_, len, _) = format::decode_common(&bytes[at..]).unwrap();
    let end = at + header + len as usize;
    let crc = format::chunk_crc(&bytes[at + format::TYPE_OFFSET..end]);
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}
