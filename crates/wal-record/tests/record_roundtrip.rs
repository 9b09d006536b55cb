//! Record layer: round trips through real files, proptests, golden files and
//! a known-answer byte vector for Pebble compatibility.

use proptest::prelude::*;
use wal_record::format::{
    BLOCK_SIZE, LEGACY_HEADER_SIZE, RECYCLABLE_HEADER_SIZE, WAL_SYNC_HEADER_SIZE,
};
use wal_record::{End, LogReader, WireFormat};
use wal_testkit::records::{Rec, payload, read_log, write_log};

const FORMATS: [WireFormat; 3] = [
    WireFormat::Legacy,
    WireFormat::Recyclable,
    WireFormat::WalSync,
];

/// Sizes around every interesting boundary: empty, tiny, a block minus each
/// header size plus or minus one, multi-block, and 1 MiB.
fn boundary_sizes() -> Vec<usize> {
    let mut sizes = vec![0, 1, 2, 100];
    for h in [
        LEGACY_HEADER_SIZE,
        RECYCLABLE_HEADER_SIZE,
        WAL_SYNC_HEADER_SIZE,
    ] {
        let b = BLOCK_SIZE - h;
        sizes.extend([b - 1, b, b + 1]);
    }
    sizes.extend([2 * BLOCK_SIZE, 3 * BLOCK_SIZE + 123, 1 << 20]);
    sizes
}

#[test]
fn records_round_trip_across_block_boundaries_in_every_format() {
    for format in FORMATS {
        for size in boundary_sizes() {
            // Alone, after a record that leaves the block almost full, and
            // between two others.
            let h = format.header_size();
            let cases = [
                vec![Rec::new(size, 1)],
                vec![Rec::new(BLOCK_SIZE - 2 * h - 3, 2), Rec::new(size, 3)],
                vec![Rec::new(10, 4), Rec::synced(size, 5), Rec::new(7, 6)],
            ];
            for records in cases {
                for close in [true, false] {
                    let bytes = write_log(format, 42, &records, close);
                    let out = read_log(&bytes, 42);
                    let want: Vec<_> = records.iter().map(|r| r.payload.clone()).collect();
                    assert_eq!(out.records, want, "{format:?} size {size} close {close}");
                    let end = out.result.unwrap();
                    match (close, format) {
                        (true, WireFormat::Legacy) | (false, _) => {
                            assert_eq!(
                                end,
                                End::Boundary {
                                    offset: bytes.len() as u64
                                }
                            );
                        }
                        (true, _) => {
                            assert_eq!(
                                end,
                                End::Trailer {
                                    offset: bytes.len() as u64 - 11
                                }
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_reader_can_start_at_any_record_offset() {
    let records: Vec<_> = (0..40)
        .map(|i| Rec::new((i * 1777) % 40_000, i as u8))
        .collect();
    let bytes = write_log(WireFormat::WalSync, 5, &records, true);
    let all = read_log(&bytes, 5);
    for (i, &offset) in all.offsets.iter().enumerate() {
        let block_start = (offset as usize / BLOCK_SIZE) * BLOCK_SIZE;
        let mut r = LogReader::starting_at(&bytes[block_start..], 5, offset);
        let first = r.next_record().unwrap().unwrap();
        assert_eq!(first.offset, offset);
        assert_eq!(first.payload, &records[i].payload[..]);
    }
}

#[test]
fn log_numbers_wrap_around_at_two_to_the_32() {
    let records = [Rec::new(10, 1), Rec::new(50_000, 2)];
    let bytes = write_log(WireFormat::WalSync, u32::MAX, &records, true);
    let out = read_log(&bytes, u32::MAX);
    assert_eq!(out.records.len(), 2);
    assert!(
        matches!(out.result, Ok(End::Trailer { .. })),
        "trailer carries log 0"
    );
}

/// A hand-assembled log, byte by byte from the format description in
/// DESIGN.md and Pebble's `record.go`, independently of `wal_record::format`:
/// a wal-sync FULL chunk "abc" for log 7 followed by the EOF trailer.
#[test]
#[allow(clippy::manual_rotate)] // spelled out on purpose: an independent check
fn known_answer_bytes_match_pebbles_layout() {
    fn masked_crc32c(bytes: &[u8]) -> u32 {
        // Bitwise CRC-32C (reflected polynomial 0x82F63B78), then LevelDB's mask.
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        let crc = !crc;
        ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
    }
    let mut covered = vec![9u8]; // type: wal-sync FULL
    covered.extend_from_slice(&7u32.to_le_bytes()); // log number
    covered.extend_from_slice(&0u64.to_le_bytes()); // synced offset: nothing synced yet
    covered.extend_from_slice(b"abc");
    let mut expected = masked_crc32c(&covered).to_le_bytes().to_vec();
    expected.extend_from_slice(&3u16.to_le_bytes());
    expected.extend_from_slice(&covered);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 5, 8, 0, 0, 0]); // trailer: log 7 + 1

    let bytes = write_log(
        WireFormat::WalSync,
        7,
        &[Rec {
            payload: b"abc".to_vec(),
            sync: false,
        }],
        true,
    );
    assert_eq!(bytes, expected);
    // And the reader accepts the hand-made bytes.
    let out = read_log(&expected, 7);
    assert_eq!(out.records, vec![b"abc".to_vec()]);
}

/// The golden logs: small files written by this version of the writer,
/// committed under `crates/wal-record/tests/testdata/golden/`. The test checks that the reader
/// decodes them and that the writer still produces them byte for byte, so an
/// accidental format change cannot pass unnoticed. Regenerate (after a
/// deliberate, documented format change) with `REGENERATE_GOLDEN=1`.
#[test]
fn golden_logs_decode_and_are_reproduced_byte_for_byte() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/golden");
    let records = golden_records();
    for (name, format) in [
        ("v1-legacy-log7.log", WireFormat::Legacy),
        ("v1-recyclable-log7.log", WireFormat::Recyclable),
        ("v1-walsync-log7.log", WireFormat::WalSync),
    ] {
        let fresh = golden_bytes(format, &records);
        let path = dir.join(name);
        if std::env::var_os("REGENERATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &fresh).unwrap();
        }
        let golden = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with REGENERATE_GOLDEN=1)", path.display()));
        let out = read_log(&golden, 7);
        let want: Vec<_> = records.iter().map(|r| r.payload.clone()).collect();
        assert_eq!(out.records, want, "{name} decodes");
        assert!(out.result.is_ok(), "{name} ends cleanly");
        assert!(fresh == golden, "{name}: the writer's output changed");
    }
}

fn golden_records() -> Vec<Rec> {
    [0usize, 1, 100, BLOCK_SIZE - 19, 5, BLOCK_SIZE + 40, 3]
        .iter()
        .enumerate()
        .map(|(i, &len)| Rec {
            payload: payload(len, i as u8),
            sync: i % 3 == 2,
        })
        .collect()
}

/// Writes the golden records deterministically: `sync()` blocks, so the
/// synced offsets in later headers do not depend on timing.
fn golden_bytes(format: WireFormat, records: &[Rec]) -> Vec<u8> {
    write_log(format, 7, records, true)
}

fn arb_records() -> impl Strategy<Value = Vec<Rec>> {
    let size = prop_oneof![
        6 => 0usize..200,
        3 => 200usize..5000,
        1 => 30_000usize..100_000,
    ];
    prop::collection::vec((size, any::<bool>(), any::<u8>()), 0..30).prop_map(|v| {
        v.into_iter()
            .map(|(len, sync, seed)| Rec {
                payload: payload(len, seed),
                sync,
            })
            .collect()
    })
}

fn arb_format() -> impl Strategy<Value = WireFormat> {
    prop_oneof![
        Just(WireFormat::Legacy),
        Just(WireFormat::Recyclable),
        Just(WireFormat::WalSync)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_record_sequences_round_trip(records in arb_records(), format in arb_format(), close in any::<bool>()) {
        let bytes = write_log(format, 11, &records, close);
        let out = read_log(&bytes, 11);
        let want: Vec<_> = records.iter().map(|r| r.payload.clone()).collect();
        prop_assert_eq!(out.records, want);
        prop_assert!(out.result.is_ok());
    }

    #[test]
    fn truncating_a_valid_log_yields_a_prefix_and_never_corruption(
        records in arb_records(),
        format in arb_format(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = write_log(format, 3, &records, true);
        let cut = cut.index(bytes.len() + 1);
        let out = read_log(&bytes[..cut], 3);
        let want: Vec<_> = records.iter().map(|r| r.payload.clone()).collect();
        prop_assert!(out.records.len() <= want.len());
        prop_assert_eq!(&out.records[..], &want[..out.records.len()]);
        match &out.result {
            Ok(_) => {}
            Err(e) => prop_assert!(e.is_torn_tail(), "cut at {}: {}", cut, e),
        }
        if cut == bytes.len() {
            prop_assert_eq!(out.records.len(), want.len());
        }
    }

    #[test]
    fn damaged_logs_yield_only_written_records_in_order(
        records in arb_records(),
        format in arb_format(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let mut bytes = write_log(format, 3, &records, true);
        prop_assume!(!bytes.is_empty());
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        let out = read_log(&bytes, 3);
        let want: Vec<_> = records.iter().map(|r| r.payload.clone()).collect();
        // Whatever comes back was written, in order, with nothing skipped.
        prop_assert!(out.records.len() <= want.len());
        prop_assert_eq!(&out.records[..], &want[..out.records.len()]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in prop::collection::vec(any::<u8>(), 0..70_000), log_num in 0u32..3) {
        let out = read_log(&bytes, log_num);
        // Random bytes essentially never hold a valid chunk; if they did, it
        // passed its checksum.
        prop_assert!(out.records.len() <= bytes.len() / 7 + 1);
    }
}
