//! Property tests of the logical-log reader against a reference model, on
//! the stable toolchain (the `logical_reader` fuzz target runs the same
//! checks, `wal_testkit::fuzzing`, under libFuzzer).
//!
//! Logs of one to three segments are built through the real record writer,
//! with the overlaps a switch creates (segment `k + 1` replays records that
//! segment `k` had not made durable), self-describing payloads, random
//! syncs and record sizes that cross blocks. Then:
//! * intact, every record comes back once, in LSN order;
//! * with the last segment cut anywhere, a prefix comes back that holds at
//!   least everything the earlier segments hold, ending in a torn tail at
//!   worst, never in corruption;
//! * damaged anywhere (flipped bytes, cut segments), whatever comes back was
//!   written, under its own LSN, with LSNs increasing by exactly one;
//! * arbitrary byte pairs or triples, and mutations of the real
//!   multi-segment logs of the fuzz seed corpus, never panic the reader.

use std::path::Path;

use proptest::prelude::*;
use wal_manager::DirId;
use wal_testkit::durability::{parse_payload, payload};
use wal_testkit::fuzzing::{FUZZ_LOG_NUM, check_logical_reader, read_segments, split_segments};
use wal_testkit::segments::{Rec, segment};

/// One segment of a planned log: its directory, its records (LSN, payload
/// length, sync after it) and whether it was closed (trailer).
#[derive(Clone, Debug)]
struct PlannedSegment {
    dir: DirId,
    records: Vec<(u64, usize, bool)>,
    closed: bool,
}

fn arb_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 16usize..300,
        2 => 300usize..5_000,
        1 => 20_000usize..45_000,
    ]
}

/// A log: its first LSN, then per segment how far it reaches back into the
/// previous one (a replay) and its records.
fn arb_log() -> impl Strategy<Value = Vec<PlannedSegment>> {
    let segment = (
        0usize..6,
        prop::collection::vec((arb_len(), any::<bool>()), 0..10),
        any::<bool>(),
    );
    (1u64..5, prop::collection::vec(segment, 1..=3)).prop_map(|(first, segments)| {
        let mut out: Vec<PlannedSegment> = Vec::new();
        let mut next = first;
        for (i, (overlap, records, closed)) in segments.into_iter().enumerate() {
            // A new segment starts at or before the first record no earlier
            // segment made durable: reach back at most into the previous
            // segment's records.
            let prev_count = out.last().map_or(0, |s| s.records.len());
            let start = next - overlap.min(prev_count) as u64;
            let records: Vec<(u64, usize, bool)> = records
                .into_iter()
                .enumerate()
                .map(|(j, (len, sync))| (start + j as u64, len, sync))
                .collect();
            next = next.max(start + records.len() as u64);
            let dir = if i % 2 == 0 {
                DirId::Primary
            } else {
                DirId::Secondary
            };
            out.push(PlannedSegment {
                dir,
                records,
                closed,
            });
        }
        out
    })
}

fn build(plan: &[PlannedSegment]) -> Vec<(DirId, Vec<u8>)> {
    plan.iter()
        .map(|s| {
            let payloads: Vec<(u64, Vec<u8>, bool)> = s
                .records
                .iter()
                .map(|&(lsn, len, sync)| (lsn, payload(lsn, 0, len), sync))
                .collect();
            let recs: Vec<Rec<'_>> = payloads
                .iter()
                .map(|(lsn, p, sync)| Rec::Lsn(*lsn, p, *sync))
                .collect();
            (s.dir, segment(u64::from(FUZZ_LOG_NUM), &recs, s.closed))
        })
        .collect()
}

/// Every LSN of the plan, in order, once.
fn all_lsns(plan: &[PlannedSegment]) -> Vec<u64> {
    let mut lsns: Vec<u64> = plan
        .iter()
        .flat_map(|s| s.records.iter().map(|r| r.0))
        .collect();
    lsns.sort_unstable();
    lsns.dedup();
    lsns
}

/// Whatever came back was written under its LSN.
fn assert_written(records: &[(u64, Vec<u8>)]) -> Result<(), TestCaseError> {
    for (lsn, bytes) in records {
        prop_assert_eq!(
            parse_payload(bytes).map(|p| p.0),
            Some(*lsn),
            "LSN {} holds a record written under another LSN, or bytes never written",
            lsn
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn intact_multi_segment_logs_read_back_every_record_once_in_order(plan in arb_log()) {
        let out = read_segments(&build(&plan));
        prop_assert!(out.error.is_none(), "{:?}", out.error);
        prop_assert!(!out.torn);
        let lsns: Vec<u64> = out.records.iter().map(|r| r.0).collect();
        prop_assert_eq!(lsns, all_lsns(&plan));
        assert_written(&out.records)?;
    }

    #[test]
    fn cutting_the_last_segment_anywhere_leaves_a_prefix_and_never_corruption(
        plan in arb_log(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut segments = build(&plan);
        let last = segments.last_mut().unwrap();
        let at = cut.index(last.1.len() + 1);
        last.1.truncate(at);
        let out = read_segments(&segments);
        prop_assert!(out.error.is_none(), "cut at {}: {:?}", at, out.error);
        let lsns: Vec<u64> = out.records.iter().map(|r| r.0).collect();
        let all = all_lsns(&plan);
        prop_assert_eq!(&lsns[..], &all[..lsns.len()], "a prefix of the log");
        let earlier_max = plan[..plan.len() - 1]
            .iter()
            .flat_map(|s| s.records.iter().map(|r| r.0))
            .max();
        if let Some(m) = earlier_max {
            prop_assert!(
                lsns.last().is_some_and(|&l| l >= m),
                "everything the earlier segments hold comes back"
            );
        }
        assert_written(&out.records)?;
    }

    #[test]
    fn damaged_multi_segment_logs_yield_only_written_records_in_lsn_order(
        plan in arb_log(),
        flips in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1u8..=255),
            0..4,
        ),
        cuts in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            0..2,
        ),
    ) {
        let mut segments = build(&plan);
        for (seg, at, x) in &flips {
            let bytes = &mut segments[seg.index(plan.len())].1;
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] ^= x;
            }
        }
        for (seg, at) in &cuts {
            let bytes = &mut segments[seg.index(plan.len())].1;
            let len = at.index(bytes.len() + 1);
            bytes.truncate(len);
        }
        // Panics inside on a broken rule (LSNs not increasing by one, ...).
        let out = read_segments(&segments);
        assert_written(&out.records)?;
        let all = all_lsns(&plan);
        for (lsn, _) in &out.records {
            prop_assert!(all.binary_search(lsn).is_ok(), "LSN {} was never written", lsn);
        }
    }

    #[test]
    fn arbitrary_byte_segments_never_panic_the_logical_reader(
        segments in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 2..=3),
        dirs in any::<u8>(),
    ) {
        let planned: Vec<(DirId, Vec<u8>)> = segments
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let dir = if dirs >> i & 1 == 1 { DirId::Secondary } else { DirId::Primary };
                (dir, bytes)
            })
            .collect();
        let out = read_segments(&planned);
        // Random bytes essentially never hold a valid chunk; whatever does
        // passed its checksum, and the reader kept LSNs contiguous.
        prop_assert!(out.records.len() <= 3000 / 7 + 1);
    }

    #[test]
    fn mutations_of_the_real_seed_logs_never_panic_the_readers(
        pick in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus-seed/logical_reader");
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        let mut bytes = std::fs::read(pick.get(&names)).unwrap();
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        let len = cut.index(bytes.len() + 1).max(bytes.len() / 2);
        bytes.truncate(len);
        check_logical_reader(&bytes);
        for (_, segment) in split_segments(&bytes) {
            wal_testkit::fuzzing::check_record_reader(&segment);
        }
    }
}
