//! The reader's decision table (`wal_record::reader::CLASSIFICATION`), walked
//! row by row, and every kind of bad chunk with and without a later proof
//! that it had been synced.

use wal_record::format::{BLOCK_SIZE, WAL_SYNC_HEADER_SIZE};
use wal_record::reader::{CLASSIFICATION, Outcome};
use wal_record::{End, Error, Fault, WireFormat};
use wal_testkit::records::{Rec, chunk_offsets, fix_crc, read_log, write_log};

const H: usize = WAL_SYNC_HEADER_SIZE;
const LOG: u32 = 9;

/// A log of wal-sync records spanning several blocks, each synced, so every
/// chunk from the second block on carries a synced offset beyond everything
/// in the first block.
fn synced_log() -> (Vec<Rec>, Vec<u8>) {
    let records: Vec<Rec> = (0..12).map(|i| Rec::synced(9000, i)).collect();
    let bytes = write_log(WireFormat::WalSync, LOG, &records, true);
    assert!(bytes.len() > 3 * BLOCK_SIZE);
    (records, bytes)
}

/// The same records, unsynced except by the final close: no header carries
/// a useful synced offset, so nothing can prove corruption.
fn unsynced_log() -> (Vec<Rec>, Vec<u8>) {
    let records: Vec<Rec> = (0..12).map(|i| Rec::new(9000, i)).collect();
    let bytes = write_log(WireFormat::WalSync, LOG, &records, true);
    (records, bytes)
}

/// What the reader made of a log: the outcome class and the fault.
fn classify(bytes: &[u8]) -> (usize, Outcome, Option<Fault>) {
    let out = read_log(bytes, LOG);
    let n = out.records.len();
    match out.result {
        Ok(End::Boundary { .. }) => (n, Outcome::CleanBoundary, None),
        Ok(End::Trailer { .. }) => (n, Outcome::CleanTrailer, None),
        Err(e @ Error::TornTail { .. }) => (n, Outcome::TornTail, e.fault()),
        Err(e @ Error::Corruption { .. }) => (n, Outcome::Corruption, e.fault()),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// One scenario per row of the decision table, in the same order.
/// Checks what the reader returned for a row: records read and the fault.
type RowCheck = Box<dyn Fn(usize, Option<Fault>)>;

fn row_scenario(row: usize) -> (Vec<u8>, RowCheck) {
    match row {
        // 1: end of file at a record boundary (a log never closed).
        0 => {
            let records = vec![Rec::new(100, 1), Rec::new(70_000, 2)];
            let bytes = write_log(WireFormat::WalSync, LOG, &records, false);
            (bytes, Box::new(|n, _| assert_eq!(n, 2)))
        }
        // 2: the EOF trailer.
        1 => {
            let (_, bytes) = synced_log();
            (bytes, Box::new(|n, _| assert_eq!(n, 12)))
        }
        // 3: end of file inside a record.
        2 => {
            let (_, bytes) = synced_log();
            let cut = bytes.len() - 11 - 4000;
            (
                bytes[..cut].to_vec(),
                Box::new(|n, f| {
                    assert_eq!(n, 11);
                    assert_eq!(f, Some(Fault::UnexpectedEof));
                }),
            )
        }
        // 4: short zero padding at the end of a full block is skipped.
        3 => {
            // The first record leaves exactly 10 bytes in block 0.
            let records = vec![Rec::new(BLOCK_SIZE - H - 10, 1), Rec::new(50, 2)];
            let bytes = write_log(WireFormat::WalSync, LOG, &records, true);
            assert!(bytes[BLOCK_SIZE - 10..BLOCK_SIZE].iter().all(|&b| b == 0));
            (
                bytes,
                Box::new(|n, _| assert_eq!(n, 2, "reading went on past the padding")),
            )
        }
        // 5: a bad chunk (flipped bit in the last record), nothing after it.
        4 => {
            let (_, mut bytes) = synced_log();
            let last = *chunk_offsets(&bytes, H).last().unwrap();
            bytes[last + H + 5] ^= 0x10;
            (
                bytes,
                Box::new(|n, f| {
                    assert_eq!(n, 11);
                    assert!(matches!(f, Some(Fault::Checksum { .. })));
                }),
            )
        }
        // 6: a bad chunk in block 0, proven synced by later chunks.
        5 => {
            let (_, mut bytes) = synced_log();
            bytes[H + 5] ^= 0x10;
            (
                bytes,
                Box::new(|n, f| {
                    assert_eq!(n, 0);
                    assert!(matches!(f, Some(Fault::Checksum { .. })));
                }),
            )
        }
        // 7: a recycled file: log 9 overwrote the start of an old log 8,
        // whose later chunks (valid, synced, but of log 8) must not count as
        // proof.
        6 => {
            let old: Vec<Rec> = (0..10).map(|i| Rec::synced(9000, i)).collect();
            let mut bytes = write_log(WireFormat::WalSync, LOG - 1, &old, false);
            // The new log fills exactly one block, so the next bytes are the
            // header of an old chunk, at the start of block 1.
            let new = vec![
                Rec::synced(20_000, 50),
                Rec::synced(BLOCK_SIZE - 20_000 - 2 * H, 51),
            ];
            let fresh = write_log(WireFormat::WalSync, LOG, &new, false);
            assert_eq!(fresh.len(), BLOCK_SIZE);
            bytes[..fresh.len()].copy_from_slice(&fresh);
            (
                bytes,
                Box::new(|n, f| {
                    assert_eq!(n, 2);
                    assert_eq!(
                        f,
                        Some(Fault::WrongLogNumber {
                            expected: LOG,
                            found: LOG - 1
                        })
                    );
                }),
            )
        }
        _ => panic!("no scenario for row {row}: add one"),
    }
}

#[test]
fn every_row_of_the_decision_table_holds() {
    for (row, case) in CLASSIFICATION.iter().enumerate() {
        let (bytes, check) = row_scenario(row);
        let (n, outcome, fault) = classify(&bytes);
        let expected = match case.outcome {
            // A skipped padding is not an end: the log then ends cleanly.
            Outcome::Skipped => Outcome::CleanTrailer,
            other => other,
        };
        assert_eq!(outcome, expected, "row {}: {}", row + 1, case.situation);
        check(n, fault);
    }
}

/// Damage applied to a log at the chunk at `at`.
type Damage = fn(&mut [u8], usize);

fn flip_payload_bit(b: &mut [u8], at: usize) {
    b[at + H + 3] ^= 0x01;
}
fn bad_type(b: &mut [u8], at: usize) {
    b[at + 6] = 13;
}
fn zero_header(b: &mut [u8], at: usize) {
    b[at..at + H].fill(0);
}
fn length_past_block(b: &mut [u8], at: usize) {
    b[at + 4..at + 6].copy_from_slice(&u16::MAX.to_le_bytes());
}
fn wrong_log_number(b: &mut [u8], at: usize) {
    b[at + 7..at + 11].copy_from_slice(&(LOG + 40).to_le_bytes());
    fix_crc(b, at, H);
}
fn full_to_middle(b: &mut [u8], at: usize) {
    // Turn a record-starting chunk into a middle chunk, with a valid CRC.
    b[at + 6] = 11;
    fix_crc(b, at, H);
}

/// Whether the reader reported the fault a damage should cause.
type FaultCheck = fn(Fault) -> bool;

const DAMAGES: [(&str, Damage, FaultCheck); 6] = [
    ("flipped payload bit", flip_payload_bit, |f| {
        matches!(f, Fault::Checksum { .. })
    }),
    ("invalid type", bad_type, |f| f == Fault::BadType(13)),
    ("zeroed header", zero_header, |f| f == Fault::Zeroed),
    ("length past block", length_past_block, |f| {
        matches!(f, Fault::LengthPastBlock { .. })
    }),
    ("wrong log number", wrong_log_number, |f| {
        matches!(f, Fault::WrongLogNumber { .. })
    }),
    ("chunk out of place", full_to_middle, |f| {
        f == Fault::UnexpectedPosition
    }),
];

#[test]
fn each_kind_of_bad_chunk_is_corruption_when_proven_synced() {
    for (name, damage, fault_ok) in DAMAGES {
        let (_, mut bytes) = synced_log();
        damage(&mut bytes, 0);
        let (n, outcome, fault) = classify(&bytes);
        assert_eq!(outcome, Outcome::Corruption, "{name}");
        assert_eq!(n, 0, "{name}");
        assert!(fault.is_some_and(fault_ok), "{name}: {fault:?}");
    }
}

#[test]
fn each_kind_of_bad_chunk_is_a_torn_tail_without_proof() {
    for (name, damage, fault_ok) in DAMAGES {
        // Unsynced: later headers promise nothing.
        let (_, mut bytes) = unsynced_log();
        damage(&mut bytes, 0);
        let (n, outcome, fault) = classify(&bytes);
        assert_eq!(outcome, Outcome::TornTail, "{name}");
        assert_eq!(n, 0, "{name}");
        assert!(fault.is_some_and(fault_ok), "{name}: {fault:?}");
    }
}

#[test]
fn a_torn_tail_reports_where_the_valid_log_ends() {
    let (records, bytes) = synced_log();
    let offsets = chunk_offsets(&bytes, H);
    let cut = bytes.len() - 11 - 100;
    let out = read_log(&bytes[..cut], LOG);
    let e = out.result.unwrap_err();
    assert!(e.is_torn_tail());
    assert_eq!(out.records.len(), records.len() - 1);
    // The last record starts at its first chunk; that is where to truncate.
    let last_start = *out.offsets.last().unwrap();
    assert!(e.offset().unwrap() > last_start);
    assert!(offsets.contains(&(e.offset().unwrap() as usize)));
}

#[test]
fn zeroed_tail_is_a_torn_tail() {
    let (_, bytes) = synced_log();
    // A crash after the file was extended but before its data reached the
    // disk: the last record reads as zeros.
    let mut damaged = bytes[..bytes.len() - 11].to_vec();
    let last = *chunk_offsets(&damaged, H).last().unwrap();
    damaged[last..].fill(0);
    let (n, outcome, fault) = classify(&damaged);
    assert_eq!(
        (n, outcome, fault),
        (11, Outcome::TornTail, Some(Fault::Zeroed))
    );
}

#[test]
fn garbage_tail_is_a_torn_tail() {
    let (_, bytes) = synced_log();
    let mut damaged = bytes[..bytes.len() - 11].to_vec();
    damaged.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let (n, outcome, _) = classify(&damaged);
    assert_eq!((n, outcome), (12, Outcome::TornTail));
}

#[test]
fn corruption_in_a_continuation_chunk_names_the_record_and_the_chunk() {
    // A multi-block record whose middle chunk is damaged; later synced
    // records prove it.
    let mut records = vec![Rec::synced(100, 1), Rec::synced(3 * BLOCK_SIZE, 2)];
    records.extend((0..6).map(|i| Rec::synced(9000, 10 + i)));
    let mut bytes = write_log(WireFormat::WalSync, LOG, &records, true);
    let offsets = chunk_offsets(&bytes, H);
    let middle = offsets[2]; // 0: record 1; 1: first chunk of record 2; 2: its middle chunk
    assert_eq!(middle, BLOCK_SIZE);
    bytes[middle + H + 10] ^= 0xff;
    let out = read_log(&bytes, LOG);
    let e = out.result.unwrap_err();
    assert_eq!(out.records.len(), 1);
    match e {
        Error::Corruption {
            offset,
            chunk_offset,
            proof,
            ..
        } => {
            assert_eq!(
                offset, offsets[1] as u64,
                "the record starts at its first chunk"
            );
            assert_eq!(chunk_offset, middle as u64);
            assert!(proof.synced_offset > chunk_offset);
            assert!(proof.chunk_offset > chunk_offset);
        }
        other => panic!("expected corruption, got {other}"),
    }
}
