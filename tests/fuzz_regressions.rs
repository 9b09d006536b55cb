//! The fuzz targets' checks (`wal_testkit::fuzzing`) on the stable
//! toolchain:
//!
//! * the seed corpus under `fuzz/corpus-seed/` (real logs) is kept honest:
//!   each must read back;
//! * `tests/testdata/fuzz/<target>/<outcome>` holds, for every way a reader
//!   ended on the fuzz corpus, the smallest input that ends that way (no fuzz
//!   run has found a crash so far; these pin the readers' classification of
//!   odd inputs and replay the checks on them in milliseconds);
//! * a minimized crash, once one is found (`cargo fuzz tmin`), goes to
//!   `tests/testdata/fuzz-finds/<target>/<name>` and gets a test of its own
//!   here that replays it with the target's check, with a comment on what
//!   it caught.
//!
//! `REGENERATE_FUZZ_SEEDS=1 cargo test --test fuzz_regressions` rewrites the
//! seed corpus (after a deliberate format change);
//! `DISTILL_FUZZ_CORPUS=1 cargo test --test fuzz_regressions` picks the
//! exemplars again from `fuzz/corpus/` after a fuzz run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wal_fs::{Fs, MemFs};
use wal_manager::{Config, DirId, Driver, Env, LogNum, Manager, ManualClock};
use wal_record::End;
use wal_record::WireFormat;
use wal_testkit::fuzzing::{
    FUZZ_LOG_NUM, check_logical_reader, check_record_reader, pack_segments, read_segments,
    split_segments,
};
use wal_testkit::records::{Rec, read_log, write_log};
use wal_testkit::segments::{Rec as SegRec, segment};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_fuzz_seed_corpus_holds_real_logs_that_read_back() {
    let seeds = fuzz_dir().join("corpus-seed");
    if std::env::var_os("REGENERATE_FUZZ_SEEDS").is_some() {
        regenerate(&seeds);
    }
    let record_seeds = files_in(&seeds.join("record_reader"));
    assert!(record_seeds.len() >= 6);
    for (name, bytes) in &record_seeds {
        check_record_reader(bytes);
        let out = read_log(bytes, FUZZ_LOG_NUM);
        assert!(!out.records.is_empty(), "{name} holds records");
        assert!(
            out.result.is_ok(),
            "{name} reads to a clean end: {:?}",
            out.result
        );
    }
    let logical_seeds = files_in(&seeds.join("logical_reader"));
    assert!(logical_seeds.len() >= 5);
    for (name, bytes) in &logical_seeds {
        check_logical_reader(bytes);
        let out = read_segments(&split_segments(bytes));
        assert!(out.error.is_none(), "{name}: {:?}", out.error);
        assert!(out.records.len() >= 5, "{name} holds records");
        assert_eq!(out.records[0].0, 1, "{name} starts at LSN 1");
    }
}

/// Writes the seed corpus: small real logs of each format, a record across
/// blocks, the golden files, and real multi-segment failover logs.
fn regenerate(seeds: &Path) {
    let record_dir = seeds.join("record_reader");
    let logical_dir = seeds.join("logical_reader");
    for dir in [&record_dir, &logical_dir] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
    }
    regenerate_record_seeds(&record_dir);
    regenerate_logical_seeds(&logical_dir);
}

/// Small real logs of each format, a record across blocks, and the golden
/// files.
fn regenerate_record_seeds(record_dir: &Path) {
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/wal-record/tests/testdata/golden");
    for (name, bytes) in files_in(&golden) {
        std::fs::write(record_dir.join(name), bytes).unwrap();
    }
    let small: Vec<Rec> = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                Rec::synced(5 + i * 9, i as u8)
            } else {
                Rec::new(3 + i * 5, i as u8)
            }
        })
        .collect();
    for (format, name) in [
        (WireFormat::WalSync, "walsync"),
        (WireFormat::Recyclable, "recyclable"),
        (WireFormat::Legacy, "legacy"),
    ] {
        let closed = write_log(format, FUZZ_LOG_NUM, &small, true);
        std::fs::write(record_dir.join(format!("small-{name}-closed.log")), closed).unwrap();
    }
    let open = write_log(WireFormat::WalSync, FUZZ_LOG_NUM, &small, false);
    std::fs::write(record_dir.join("small-walsync-open.log"), open).unwrap();
    let spanning = [Rec::synced(100, 1), Rec::synced(40_000, 2), Rec::new(10, 3)];
    let spanning = write_log(WireFormat::WalSync, FUZZ_LOG_NUM, &spanning, true);
    std::fs::write(record_dir.join("across-blocks-walsync.log"), spanning).unwrap();
}

/// Multi-segment logs: built by hand with replayed overlaps (through the
/// real writer), and written by a failover manager.
fn regenerate_logical_seeds(logical_dir: &Path) {
    // Hand-built segments with replayed overlaps, through the real writer.
    let x = b"seed payload";
    let recs = |lsns: std::ops::RangeInclusive<u64>, synced_through: u64| -> Vec<SegRec<'_>> {
        lsns.map(|l| SegRec::Lsn(l, x, l <= synced_through))
            .collect()
    };
    let log = u64::from(FUZZ_LOG_NUM);
    let two = pack_segments(&[
        (DirId::Primary, segment(log, &recs(1..=10, 6), false)),
        (DirId::Secondary, segment(log, &recs(7..=15, 15), true)),
    ]);
    std::fs::write(logical_dir.join("two-segments-with-replay"), two).unwrap();
    let mut torn_last = segment(log, &recs(9..=14, 12), false);
    torn_last.truncate(torn_last.len() - 5);
    let three = pack_segments(&[
        (DirId::Primary, segment(log, &recs(1..=8, 4), false)),
        (DirId::Secondary, segment(log, &recs(5..=12, 10), false)),
        (DirId::Primary, torn_last),
    ]);
    std::fs::write(logical_dir.join("three-segments-torn-last"), three).unwrap();
    let empty_second = pack_segments(&[
        (DirId::Primary, segment(log, &recs(1..=5, 5), true)),
        (DirId::Secondary, Vec::new()),
    ]);
    std::fs::write(logical_dir.join("empty-second-segment"), empty_second).unwrap();
    // Multi-block segments synced record by record: chunks in later blocks
    // prove earlier ones durable, so damage there is corruption.
    let big = vec![b'z'; 7000];
    let multi = |lsns: std::ops::RangeInclusive<u64>| -> Vec<u8> {
        let records: Vec<SegRec<'_>> = lsns.map(|l| SegRec::Lsn(l, &big, true)).collect();
        segment(log, &records, true)
    };
    let multi_block = pack_segments(&[
        (DirId::Primary, multi(1..=6)),
        (DirId::Secondary, multi(5..=10)),
    ]);
    std::fs::write(logical_dir.join("multi-block-segments"), multi_block).unwrap();

    failover_manager_seed(logical_dir);
}

/// A real failover log: the manager's own switches and replays.
fn failover_manager_seed(logical_dir: &Path) {
    let log = u64::from(FUZZ_LOG_NUM);
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let env = Env {
        primary_fs: Arc::clone(&fs),
        secondary_fs: fs,
        clock: Arc::new(ManualClock::new()),
        driver: Driver::Manual,
        archive: None,
    };
    let manager = Manager::open_with(&Config::failover("/p", "/s"), env).unwrap();
    let Manager::Failover(fm) = &manager else {
        unreachable!()
    };
    let w = manager.create(LogNum(log)).unwrap();
    for round in 0..3u64 {
        for i in 0..6 {
            let p = vec![b'a' + round as u8; 20 + 30 * i];
            if i % 2 == 0 {
                w.append_sync(&p).unwrap();
            } else {
                w.append_nowait(&p).unwrap();
            }
        }
        if round < 2 {
            fm.force_switch().unwrap();
        }
    }
    assert!(w.close().unwrap() > 0);
    drop(w);
    let segments: Vec<(DirId, Vec<u8>)> = manager.list()[0]
        .segments
        .iter()
        .map(|s| (s.dir, mem.read_file(&s.path).unwrap()))
        .collect();
    assert_eq!(segments.len(), 3);
    manager.close().unwrap();
    std::fs::write(
        logical_dir.join("failover-manager-three-segments"),
        pack_segments(&segments),
    )
    .unwrap();
}

fn exemplar_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/fuzz")
        .join(target)
}

/// `Checksum { .. }` -> `checksum`, `BadType(3)` -> `bad-type`.
fn variant_name(debug: &str) -> String {
    let mut out = String::new();
    for c in debug.chars().take_while(char::is_ascii_alphanumeric) {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// How the record reader ends on `bytes` (log 7).
fn record_outcome(bytes: &[u8]) -> String {
    let out = read_log(bytes, FUZZ_LOG_NUM);
    let end = match &out.result {
        Ok(End::Boundary { .. }) => "clean-boundary".to_owned(),
        Ok(End::Trailer { .. }) => "clean-trailer".to_owned(),
        Err(e) => {
            let kind = if e.is_corruption() {
                "corrupt"
            } else if e.is_torn_tail() {
                "torn"
            } else {
                "error"
            };
            let fault = e.fault().map_or_else(
                || variant_name(&format!("{e:?}")),
                |f| variant_name(&format!("{f:?}")),
            );
            format!("{kind}-{fault}")
        }
    };
    if out.records.is_empty() {
        format!("{end}-no-records")
    } else {
        end
    }
}

/// How the logical reader ends on `bytes` cut into segments.
fn logical_outcome(bytes: &[u8]) -> String {
    let out = read_segments(&split_segments(bytes));
    let end = match &out.error {
        None if out.torn => "torn-tail".to_owned(),
        None => "clean".to_owned(),
        Some(wal_manager::Error::Segment { source, .. }) => {
            let kind = if source.is_corruption() {
                "corrupt-last-segment"
            } else {
                "segment-error"
            };
            let fault = source.fault().map_or_else(
                || variant_name(&format!("{source:?}")),
                |f| variant_name(&format!("{f:?}")),
            );
            format!("{kind}-{fault}")
        }
        Some(e) => variant_name(&format!("{e:?}")),
    };
    if out.records.is_empty() {
        format!("{end}-no-records")
    } else {
        end
    }
}

type Classify = fn(&[u8]) -> String;

const TARGETS: [(&str, Classify); 2] = [
    ("record_reader", record_outcome),
    ("logical_reader", logical_outcome),
];

#[test]
fn fuzz_corpus_exemplars_end_the_way_they_did_when_kept() {
    if std::env::var_os("DISTILL_FUZZ_CORPUS").is_some() {
        distill();
    }
    for (target, classify) in TARGETS {
        let exemplars = files_in(&exemplar_dir(target));
        assert!(exemplars.len() >= 5, "{target}: exemplars are kept");
        for (name, bytes) in &exemplars {
            match target {
                "record_reader" => check_record_reader(bytes),
                _ => check_logical_reader(bytes),
            }
            assert_eq!(
                classify(bytes),
                *name,
                "{target}: the exemplar {name} now ends another way (if the reader changed on \
                 purpose, run DISTILL_FUZZ_CORPUS=1 after a fuzz run)"
            );
        }
    }
}

/// Keeps the smallest input of `fuzz/corpus/<target>` (and of the seeds and
/// the current exemplars) per outcome.
fn distill() {
    for (target, classify) in TARGETS {
        let mut best: std::collections::BTreeMap<String, Vec<u8>> =
            std::collections::BTreeMap::default();
        // The kept exemplars count too, so that distilling again without a
        // fuzz corpus at hand only renames them.
        for dir in [
            fuzz_dir().join("corpus").join(target),
            fuzz_dir().join("corpus-seed").join(target),
            exemplar_dir(target),
        ] {
            if !dir.is_dir() {
                continue;
            }
            for (_, bytes) in files_in(&dir) {
                let outcome = classify(&bytes);
                let entry = best.entry(outcome).or_insert_with(|| bytes.clone());
                if bytes.len() < entry.len() || (bytes.len() == entry.len() && bytes < *entry) {
                    *entry = bytes;
                }
            }
        }
        let out = exemplar_dir(target);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        for (outcome, bytes) in best {
            std::fs::write(out.join(outcome), bytes).unwrap();
        }
    }
}
