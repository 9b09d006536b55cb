//! Operating the `Wal`: each sync policy keeps its durability promise
//! (checked with power-loss crash images), and retention never deletes a log
//! the engine still needs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use wal_fs::{CrashMode, CrashOptions, MemFs};
use wal_manager::{Config, HumanDuration, HumanSize, Lsn, SyncPolicy, Wal};
use wal_testkit::failover::Disk;

fn config(policy: SyncPolicy) -> Config {
    let mut c = Config::standalone("/p");
    c.wal.sync = policy;
    c
}

/// The records a power loss right now would leave: the WAL reopened on a
/// crash image that drops everything not synced.
fn surviving(disk: &Disk, cfg: &Config) -> Option<Lsn> {
    let (image, _) = disk
        .mem
        .crash_image_with(7, CrashOptions::new().files(CrashMode::DropUnsynced));
    let d = Disk::new(image);
    let wal = Wal::open_with(cfg, d.env()).unwrap();
    wal.last_lsn()
}

/// Waits (real time, generously) until `lsn` survives a crash.
fn becomes_durable(disk: &Disk, cfg: &Config, lsn: Lsn) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if surviving(disk, cfg) >= Some(lsn) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn immediate_makes_each_record_durable_before_append_returns() {
    let disk = Disk::new(MemFs::new());
    let cfg = config(SyncPolicy::Immediate);
    let wal = Wal::open_with(&cfg, disk.env()).unwrap();
    for i in 0..20u8 {
        let lsn = wal.append(&[i; 100]).unwrap();
        assert_eq!(
            surviving(&disk, &cfg),
            Some(lsn),
            "record {lsn} survives a crash at once"
        );
    }
    let batch = wal.append_batch(&[b"a", b"b"]).unwrap();
    assert_eq!(surviving(&disk, &cfg), Some(Lsn(batch.end.0 - 1)));
}

#[test]
fn grouped_waits_too_and_spaces_its_syncs() {
    let disk = Disk::new(MemFs::new());
    let mut cfg = config(SyncPolicy::Grouped);
    cfg.wal.sync_interval = HumanDuration::millis(20);
    let wal = Arc::new(Wal::open_with(&cfg, disk.env()).unwrap());
    let start = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for _ in 0..10 {
                    wal.append(b"grouped").unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed();
    assert_eq!(
        surviving(&disk, &cfg),
        Some(Lsn(40)),
        "every acknowledged record is durable"
    );
    let syncs = wal.stats().totals.syncs;
    let bound = elapsed.as_millis() as u64 / 20 + 2;
    assert!(
        syncs <= bound,
        "{syncs} syncs in {elapsed:?} with a 20ms window"
    );
}

#[test]
fn periodic_makes_records_durable_within_the_interval_without_waiting() {
    let disk = Disk::new(MemFs::new());
    let mut cfg = config(SyncPolicy::Periodic);
    cfg.wal.sync_interval = HumanDuration::millis(50);
    let wal = Wal::open_with(&cfg, disk.env()).unwrap();
    let lsn = wal.append(b"soon durable").unwrap();
    // Nobody syncs; the background syncer does.
    assert!(becomes_durable(&disk, &cfg, lsn), "not durable within 20 s");
    wal.close().unwrap();
}

#[test]
fn periodic_also_syncs_every_n_records() {
    let disk = Disk::new(MemFs::new());
    let mut cfg = config(SyncPolicy::Periodic);
    cfg.wal.sync_interval = HumanDuration::millis(3_600_000); // never by time
    cfg.wal.sync_every_records = 5;
    let wal = Wal::open_with(&cfg, disk.env()).unwrap();
    let mut last = Lsn(0);
    for i in 0..5u8 {
        last = wal.append(&[i]).unwrap();
    }
    assert!(
        becomes_durable(&disk, &cfg, last),
        "the fifth record triggered a sync"
    );
    wal.close().unwrap();
}

#[test]
fn none_never_makes_anything_durable() {
    let disk = Disk::new(MemFs::new());
    let cfg = config(SyncPolicy::None);
    let wal = Wal::open_with(&cfg, disk.env()).unwrap();
    for i in 0..10u8 {
        wal.append_sync(&[i; 10]).unwrap();
    }
    wal.sync().unwrap();
    wal.checkpoint(b"c").unwrap();
    assert_eq!(surviving(&disk, &cfg), None, "a crash loses everything");
    // The data is there until the crash, though.
    assert_eq!(wal.read(Lsn(10)).unwrap(), vec![9u8; 10]);
}

#[derive(Clone, Debug)]
enum Step {
    Append(usize),
    Checkpoint,
    TruncateBefore(prop::sample::Index),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (100usize..6000).prop_map(Step::Append),
        2 => Just(Step::Checkpoint),
        1 => any::<prop::sample::Index>().prop_map(Step::TruncateBefore),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Retention deletes only logs covered by the latest checkpoint; every
    /// record after the checkpoint stays readable; and when the WAL is over
    /// its limits, nothing deletable is left.
    #[test]
    fn retention_never_deletes_a_needed_log(
        steps in prop::collection::vec(step(), 1..120),
        logs_max in 2u32..6,
        bytes_limited in any::<bool>(),
    ) {
        let disk = Disk::new(MemFs::new());
        let mut cfg = config(SyncPolicy::Immediate);
        cfg.wal.log_size_max = HumanSize(64 << 10);
        if bytes_limited {
            cfg.wal.retention_bytes_max = HumanSize(u64::from(logs_max) * (64 << 10));
        } else {
            cfg.wal.retention_logs_max = logs_max;
        }
        let wal = Wal::open_with(&cfg, disk.env()).unwrap();
        let mut payloads = std::collections::BTreeMap::new();
        let mut truncated_below = 0u64;
        for s in &steps {
            match s {
                Step::Append(len) => {
                    let lsn = wal.append(&vec![7; *len]).unwrap();
                    payloads.insert(lsn.0, *len);
                }
                Step::Checkpoint => {
                    wal.checkpoint(b"flushed").unwrap();
                }
                Step::TruncateBefore(i) => {
                    if let (Some(first), Some(last)) = (wal.first_lsn(), wal.last_lsn()) {
                        let lsn = first.0 + i.index((last.0 - first.0 + 1) as usize) as u64;
                        wal.truncate_before(Lsn(lsn)).unwrap();
                        truncated_below = truncated_below.max(lsn);
                    }
                }
            }
            let checkpoint = wal.last_checkpoint().map_or(0, |c| c.lsn.0);
            // Every record after the checkpoint (and not truncated away by
            // the caller) is still there.
            let needed_from = (checkpoint + 1).max(truncated_below);
            for (&lsn, &len) in payloads.range(needed_from..) {
                prop_assert_eq!(wal.read(Lsn(lsn)).unwrap().len(), len, "record {} lost", lsn);
            }
            // Over the limit only when nothing deletable is left: the first
            // record is after the checkpoint.
            let logs = wal.logs();
            let over = if bytes_limited {
                logs.iter().map(wal_manager::LogicalLog::size).sum::<u64>() > cfg.wal.retention_bytes_max.0
            } else {
                logs.len() > logs_max as usize
            };
            if over && wal.last_checkpoint().is_some() {
                // Retention runs at every rotation; between rotations the
                // open log may push the WAL over a byte limit, so apply it
                // now, as an operator can.
                wal.apply_retention().unwrap();
                let first = wal.first_lsn().map_or(u64::MAX, |l| l.0);
                let logs = wal.logs();
                let still_over = if bytes_limited {
                    logs.iter().map(wal_manager::LogicalLog::size).sum::<u64>() > cfg.wal.retention_bytes_max.0
                } else {
                    logs.len() > logs_max as usize
                };
                prop_assert!(
                    !still_over || first > checkpoint,
                    "over the limit ({} logs) with a record covered by the checkpoint left (first {}, checkpoint {})",
                    logs.len(), first, checkpoint
                );
            }
            if let (None, Some(first)) = (wal.last_checkpoint(), wal.first_lsn()) {
                prop_assert!(first.0 <= truncated_below.max(1), "nothing is deleted without a checkpoint");
            }
        }
    }
}
