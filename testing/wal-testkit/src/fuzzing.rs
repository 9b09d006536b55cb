//! The checks the fuzz targets run on every input, shared with the tests
//! that replay fuzz finds and with the stable-toolchain property tests.
//!
//! The fuzz crate (`fuzz/`) includes this file with `#[path]`, so it may use
//! only what the fuzz crate depends on: `wal-record`, `wal-manager` and
//! `wal-fs`.
//!
//! * [`check_record_reader`]: arbitrary bytes as one log file (log 7, the
//!   log number of the golden files). The reader must never panic; every
//!   record it returns must be made of chunks that are valid where they
//!   stand — re-walked here independently of the reader: each CRC matches,
//!   the log number is right, the positions go FULL or FIRST, MIDDLE..., LAST,
//!   block padding is zero — and whose payloads concatenate to the record;
//!   offsets increase and stay within the input; the outcome is latched.
//! * [`check_logical_reader`]: arbitrary bytes cut into two or three
//!   segment files ([`split_segments`]) in two directories of a `MemFs`,
//!   read with `wal_manager::LogicalReader`. It must never panic; LSNs must
//!   increase by exactly one; the per-segment reports must account for every
//!   record; an error is latched.

use std::path::Path;
use std::sync::Arc;

use wal_fs::{Fs, MemFs};
use wal_manager::layout::{Dirs, segment_file_name};
use wal_manager::{Config, DirId, LogNum, LogicalLog, LogicalReader, Segment, SegmentIndex};
use wal_record::format::{
    self, BLOCK_SIZE, ChunkType, HEADER_SIZE_MAX, LEGACY_HEADER_SIZE, Position, TYPE_OFFSET,
    WireFormat,
};
use wal_record::{LogReader, ReadRecord};

/// The log number every fuzz input is read as (the golden files' number).
pub const FUZZ_LOG_NUM: u32 = 7;
/// The directories of the logical-reader target.
pub const PRIMARY: &str = "/p";
pub const SECONDARY: &str = "/s";
/// The largest record the logical-reader target accepts (keeps huge
/// length fields from allocating gigabytes).
pub const FUZZ_RECORD_SIZE_MAX: usize = 1 << 20;

/// Reads `data` as one log file and checks every record and the outcome.
///
/// # Panics
/// On any violation (that is the point: the fuzzer reports panics).
pub fn check_record_reader(data: &[u8]) {
    let len = data.len() as u64;
    let mut reader = LogReader::new(data, FUZZ_LOG_NUM);
    let mut prev_end = 0u64;
    loop {
        match reader.next_record() {
            Ok(Some(r)) => {
                assert!(r.offset >= prev_end, "records overlap or go back");
                assert!(r.end > r.offset, "a record occupies bytes");
                assert!(r.end <= len, "a record ends within the input");
                verify_chunks(data, &r);
                prev_end = r.end;
            }
            Ok(None) => {
                let end = reader.end().expect("an end after Ok(None)");
                assert!(end.offset() >= prev_end && end.offset() <= len);
                assert!(
                    matches!(reader.next_record(), Ok(None)),
                    "the end is latched"
                );
                return;
            }
            Err(e) => {
                if let Some(at) = e.offset() {
                    assert!(at <= len, "error offset {at} beyond the input ({len})");
                    assert!(
                        at >= prev_end,
                        "error offset {at} before the last record's end"
                    );
                }
                assert!(
                    e.is_torn_tail() || e.is_corruption(),
                    "reading bytes yields only a torn tail or corruption: {e}"
                );
                let again = reader.next_record().expect_err("the error is latched");
                assert_eq!(again.to_string(), e.to_string(), "the same error again");
                return;
            }
        }
    }
}

/// Re-walks the chunks of a record the reader returned, from its offset to
/// its end, without the reader's code.
fn verify_chunks(data: &[u8], r: &ReadRecord<'_>) {
    let (start, end) = (r.offset as usize, r.end as usize);
    let mut pos = start;
    let mut assembled = Vec::with_capacity(r.payload.len());
    let mut expect_start = true;
    loop {
        let block_end = (pos / BLOCK_SIZE + 1) * BLOCK_SIZE;
        let room = block_end - pos;
        let tail = &data[pos..block_end.min(data.len())];
        if room < HEADER_SIZE_MAX && tail.iter().all(|&b| b == 0) && pos != start {
            // Zero padding at the end of a block: the record goes on in the
            // next block.
            pos = block_end;
            assert!(pos < end, "a record does not end in padding");
            continue;
        }
        assert!(
            room >= LEGACY_HEADER_SIZE,
            "a chunk header starts with room for it"
        );
        let (stored, chunk_len, code) =
            format::decode_common(&data[pos..]).expect("a whole common header");
        let ty = ChunkType::from_code(code).expect("a valid chunk type");
        let header = ty.format.header_size();
        let chunk_end = pos + header + chunk_len as usize;
        assert!(chunk_end <= block_end, "a chunk stays inside its block");
        assert!(chunk_end <= end, "a chunk stays inside its record");
        let computed = format::chunk_crc(&data[pos + TYPE_OFFSET..chunk_end]);
        assert_eq!(stored, computed, "the chunk at {pos} passed its checksum");
        if ty.format != WireFormat::Legacy {
            let log = format::decode_log_num(&data[pos..]).expect("a log number");
            assert_eq!(log, FUZZ_LOG_NUM, "the chunk at {pos} belongs to this log");
        }
        let starts = matches!(ty.position, Position::Full | Position::First);
        assert_eq!(starts, expect_start, "chunk at {pos} out of place");
        assembled.extend_from_slice(&data[pos + header..chunk_end]);
        pos = chunk_end;
        if matches!(ty.position, Position::Full | Position::Last) {
            break;
        }
        expect_start = false;
    }
    assert_eq!(pos, end, "the record ends after its last chunk");
    assert_eq!(assembled, r.payload, "the payload is its chunks' payloads");
}

/// Cuts a fuzz input into segment files: byte 0 gives the count (2 or 3,
/// bit 0) and the directory of each (bits 1-3: set means the secondary);
/// then a little-endian `u32` length per segment but the last (clamped to
/// what remains); the last segment takes the rest.
pub fn split_segments(data: &[u8]) -> Vec<(DirId, Vec<u8>)> {
    let Some((&control, mut rest)) = data.split_first() else {
        return vec![(DirId::Primary, Vec::new()), (DirId::Secondary, Vec::new())];
    };
    let count = 2 + usize::from(control & 1);
    let dir = |i: usize| {
        if control >> (1 + i) & 1 == 1 {
            DirId::Secondary
        } else {
            DirId::Primary
        }
    };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let len = if i + 1 == count {
            rest.len()
        } else {
            let mut word = [0u8; 4];
            let n = rest.len().min(4);
            word[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            (u32::from_le_bytes(word) as usize).min(rest.len())
        };
        let (segment, tail) = rest.split_at(len);
        out.push((dir(i), segment.to_vec()));
        rest = tail;
    }
    out
}

/// The inverse of [`split_segments`], for seed inputs: two or three
/// segments.
///
/// # Panics
/// With fewer than two or more than three segments.
pub fn pack_segments(segments: &[(DirId, Vec<u8>)]) -> Vec<u8> {
    assert!((2..=3).contains(&segments.len()), "two or three segments");
    let mut control = u8::from(segments.len() == 3);
    for (i, (dir, _)) in segments.iter().enumerate() {
        if *dir == DirId::Secondary {
            control |= 1 << (1 + i);
        }
    }
    let mut out = vec![control];
    for (i, (_, bytes)) in segments.iter().enumerate() {
        if i + 1 < segments.len() {
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_le_bytes());
        }
        out.extend_from_slice(bytes);
    }
    out
}

/// What [`read_segments`] found.
#[derive(Debug)]
pub struct LogicalOutcome {
    /// `(lsn, payload)` of every record returned.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The error that ended the read, if any.
    pub error: Option<wal_manager::Error>,
    /// Whether the log ended in a torn tail.
    pub torn: bool,
}

/// Writes `segments` as segments 0, 1, ... of log [`FUZZ_LOG_NUM`] into a
/// `MemFs` and reads them back with a `LogicalReader`, checking what must
/// hold of any input.
///
/// # Panics
/// On any violation.
pub fn read_segments(segments: &[(DirId, Vec<u8>)]) -> LogicalOutcome {
    let mem = MemFs::new();
    for dir in [PRIMARY, SECONDARY] {
        mem.create_dir_all(Path::new(dir)).unwrap();
    }
    let log = LogNum(u64::from(FUZZ_LOG_NUM));
    let mut listed = Vec::new();
    for (i, (dir, bytes)) in segments.iter().enumerate() {
        let index = SegmentIndex(u32::try_from(i).unwrap());
        let base = if *dir == DirId::Primary {
            PRIMARY
        } else {
            SECONDARY
        };
        let path = Path::new(base).join(segment_file_name(log, index));
        mem.write_file(&path, bytes).unwrap();
        listed.push(Segment {
            index,
            dir: *dir,
            path,
            size: bytes.len() as u64,
        });
    }
    let fs: Arc<dyn Fs> = Arc::new(mem);
    let dirs = Dirs::from_config(&Config::failover(PRIMARY, SECONDARY), &fs);
    let logical = LogicalLog {
        num: log,
        segments: listed,
    };
    let mut reader = LogicalReader::new(&logical, dirs).with_record_size_max(FUZZ_RECORD_SIZE_MAX);
    let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
    let error = loop {
        match reader.next() {
            Ok(Some(r)) => {
                if let Some(&(last, _)) = records.last() {
                    assert_eq!(r.lsn.0, last + 1, "LSNs increase by exactly one");
                }
                assert!(r.payload.len() <= FUZZ_RECORD_SIZE_MAX);
                records.push((r.lsn.0, r.payload.to_vec()));
            }
            Ok(None) => {
                assert!(reader.end().is_some(), "an end after Ok(None)");
                assert!(matches!(reader.next(), Ok(None)), "the end is latched");
                break None;
            }
            Err(e) => {
                assert!(reader.next().is_err(), "a failed reader stays failed");
                break Some(e);
            }
        }
    };
    let reported: u64 = reader.reports().iter().map(|r| r.records).sum();
    assert_eq!(
        reported,
        records.len() as u64,
        "the reports count every record"
    );
    assert!(reader.reports().len() <= segments.len());
    let torn = matches!(reader.end(), Some(wal_manager::LogEnd::TornTail { .. }));
    LogicalOutcome {
        records,
        error,
        torn,
    }
}

/// The logical-reader target: [`split_segments`] then [`read_segments`].
pub fn check_logical_reader(data: &[u8]) {
    let _ = read_segments(&split_segments(data));
}
