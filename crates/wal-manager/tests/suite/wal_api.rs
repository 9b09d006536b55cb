//! The `Wal` API against an in-memory model: appends, batches, syncs, reads,
//! both truncations, checkpoints, replay, iteration, reopen, forced
//! failover switches and power-loss crashes.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use wal_fs::{MemFs, Op, OpFilter};
use wal_manager::{Config, Direction, Error, HumanDuration, HumanSize, Lsn, SyncPolicy, Wal};
use wal_testkit::failover::Disk;

fn config(failover: bool) -> Config {
    let mut c = if failover {
        Config::failover("/p", "/s")
    } else {
        Config::standalone("/p")
    };
    // Small logs, so that workloads rotate often.
    c.wal.log_size_max = HumanSize(64 << 10);
    // `append` does not wait, and the background sync never comes within a
    // test: only explicit syncs make records durable, as the model assumes.
    c.wal.sync = SyncPolicy::Periodic;
    c.wal.sync_interval = HumanDuration::millis(3_600_000);
    c
}

fn payload(lsn: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (lsn as u8).wrapping_mul(7).wrapping_add(i as u8))
        .collect()
}

#[derive(Clone, Debug)]
enum Step {
    Append { len: usize, sync: bool },
    Batch { lens: Vec<usize>, sync: bool },
    Sync,
    Read(prop::sample::Index),
    TruncateBefore(prop::sample::Index),
    TruncateAfter(prop::sample::Index),
    Checkpoint(u8),
    Replay { batch: usize, backward: bool },
    Iterate(prop::sample::Index),
    Switch,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    let len = prop_oneof![8 => 0usize..300, 2 => 3000usize..20_000];
    prop_oneof![
        10 => (len.clone(), any::<bool>()).prop_map(|(len, sync)| Step::Append { len, sync }),
        3 => (prop::collection::vec(len, 1..6), any::<bool>())
            .prop_map(|(lens, sync)| Step::Batch { lens, sync }),
        2 => Just(Step::Sync),
        4 => any::<prop::sample::Index>().prop_map(Step::Read),
        1 => any::<prop::sample::Index>().prop_map(Step::TruncateBefore),
        1 => any::<prop::sample::Index>().prop_map(Step::TruncateAfter),
        1 => any::<u8>().prop_map(Step::Checkpoint),
        1 => (1usize..7, any::<bool>()).prop_map(|(batch, backward)| Step::Replay { batch, backward }),
        1 => any::<prop::sample::Index>().prop_map(Step::Iterate),
        1 => Just(Step::Switch),
        1 => Just(Step::Reopen),
    ]
}

/// What the WAL should hold.
#[derive(Debug, Default)]
struct Model {
    records: BTreeMap<u64, Vec<u8>>,
    next: u64,
    /// Valid checkpoints, oldest first: when a truncation voids the latest,
    /// the one before it is the recovery point again.
    checkpoints: Vec<(u64, Vec<u8>)>,
    /// Every record up to here is durable.
    durable: u64,
}

impl Model {
    fn bounds(&self) -> Option<(Lsn, Lsn)> {
        let first = *self.records.keys().next()?;
        let last = *self.records.keys().next_back()?;
        Some((Lsn(first), Lsn(last)))
    }

    fn pick(&self, i: prop::sample::Index) -> Option<u64> {
        let (first, last) = self.bounds()?;
        Some(first.0 + i.index((last.0 - first.0 + 1) as usize) as u64)
    }
}

fn check_bounds(wal: &Wal, model: &Model) {
    let want = model.bounds();
    assert_eq!(wal.first_lsn(), want.map(|b| b.0), "first_lsn");
    assert_eq!(wal.last_lsn(), want.map(|b| b.1), "last_lsn");
    assert_eq!(wal.is_empty(), want.is_none());
}

fn collect(wal: &Wal, batch: usize, dir: Direction) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    wal.replay(batch, dir, |b| {
        assert!(!b.is_empty() && b.len() <= batch, "batch of {}", b.len());
        out.extend(b.iter().map(|r| (r.lsn.0, r.payload.clone())));
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    out
}

/// Runs `steps`; with `crash`, every reopen is a power loss.
// One arm per step of the model: splitting it would only scatter the model.
#[allow(clippy::too_many_lines)]
fn run(steps: &[Step], failover: bool, crash: Option<u64>) {
    let mut disk = Disk::new(MemFs::new());
    let cfg = config(failover);
    let mut wal = Wal::open_with(&cfg, disk.env()).unwrap();
    let mut model = Model {
        next: 1,
        ..Model::default()
    };
    let mut crashes = 0u64;
    for step in steps {
        match step {
            Step::Append { len, sync } => {
                let lsn = if *sync {
                    wal.append_sync(&payload(model.next, *len)).unwrap()
                } else {
                    wal.append(&payload(model.next, *len)).unwrap()
                };
                assert_eq!(lsn, Lsn(model.next), "contiguous LSNs");
                model.records.insert(model.next, payload(model.next, *len));
                if *sync {
                    model.durable = model.next;
                }
                model.next += 1;
            }
            Step::Batch { lens, sync } => {
                let payloads: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, len)| payload(model.next + i as u64, *len))
                    .collect();
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                let lsns = if *sync {
                    wal.append_batch_sync(&refs).unwrap()
                } else {
                    wal.append_batch(&refs).unwrap()
                };
                assert_eq!(lsns, Lsn(model.next)..Lsn(model.next + lens.len() as u64));
                for p in payloads {
                    model.records.insert(model.next, p);
                    model.next += 1;
                }
                if *sync {
                    model.durable = model.next - 1;
                }
            }
            Step::Sync => {
                wal.sync().unwrap();
                model.durable = model.next - 1;
            }
            Step::Read(i) => match model.pick(*i) {
                Some(lsn) => assert_eq!(
                    wal.read(Lsn(lsn)).unwrap(),
                    model.records[&lsn],
                    "read {lsn}"
                ),
                None => assert!(matches!(
                    wal.read(Lsn(model.next)),
                    Err(Error::LsnOutOfRange { .. })
                )),
            },
            Step::TruncateBefore(i) => {
                let Some(lsn) = model.pick(*i) else { continue };
                wal.truncate_before(Lsn(lsn)).unwrap();
                model.records.retain(|&l, _| l >= lsn);
                // A checkpoint whose following records are gone is stale.
                model.checkpoints.retain(|c| c.0 + 1 >= lsn);
                // Truncation rotates: everything before is durable.
                model.durable = model.next - 1;
            }
            Step::TruncateAfter(i) => {
                let Some(lsn) = model.pick(*i) else { continue };
                wal.truncate_after(Lsn(lsn)).unwrap();
                model.records.retain(|&l, _| l <= lsn);
                model.next = lsn + 1;
                model.durable = lsn;
                model.checkpoints.retain(|c| c.0 <= lsn);
            }
            Step::Checkpoint(b) => {
                let lsn = wal.checkpoint(&[*b; 5]).unwrap();
                assert_eq!(lsn.0, model.next - 1);
                model.checkpoints.push((lsn.0, vec![*b; 5]));
                model.durable = model.next - 1;
            }
            Step::Replay { batch, backward } => {
                let dir = if *backward {
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let got = collect(&wal, *batch, dir);
                let mut want: Vec<_> = model.records.iter().map(|(&l, p)| (l, p.clone())).collect();
                if *backward {
                    want.reverse();
                }
                assert_eq!(got, want, "replay {dir:?}");
                // Replay from the checkpoint: only what follows it.
                let mut after = Vec::new();
                wal.replay_from_checkpoint(*batch, |b| {
                    after.extend(b.iter().map(|r| r.lsn.0));
                    Ok::<(), std::convert::Infallible>(())
                })
                .unwrap();
                let from = model.checkpoints.last().map_or(0, |c| c.0 + 1);
                let want: Vec<u64> = model
                    .records
                    .keys()
                    .copied()
                    .filter(|&l| l >= from)
                    .collect();
                assert_eq!(after, want, "replay_from_checkpoint");
            }
            Step::Iterate(i) => {
                let Some(from) = model.pick(*i) else { continue };
                let mut it = wal.iter_from(Lsn(from));
                let mut got = Vec::new();
                while let Some(r) = it.next().unwrap() {
                    got.push(r.lsn.0);
                }
                let want: Vec<u64> = model.records.range(from..).map(|(&l, _)| l).collect();
                assert_eq!(got, want, "iter_from({from})");
                // It follows a new append.
                let lsn = wal.append(&payload(model.next, 3)).unwrap();
                model.records.insert(model.next, payload(model.next, 3));
                model.next += 1;
                assert_eq!(it.next().unwrap().map(|r| r.lsn), Some(lsn));
                assert_eq!(it.next().unwrap(), None);
            }
            Step::Switch => {
                if let Some(m) = wal.failover() {
                    // A refusal at the segment limit is fine here.
                    let _ = m.force_switch();
                }
            }
            Step::Reopen => {
                match crash {
                    None => {
                        wal.close().unwrap();
                        wal = Wal::open_with(&cfg, disk.env()).unwrap();
                    }
                    Some(seed) => {
                        crashes += 1;
                        let image = disk.mem.crash_image(seed ^ crashes);
                        drop(wal);
                        disk = Disk::new(image);
                        wal = Wal::open_with(&cfg, disk.env())
                            .unwrap_or_else(|e| panic!("seed {seed}: recovery failed: {e}"));
                        // Every durable record survived; what survived of
                        // the rest is a prefix of what was appended.
                        let last = wal.last_lsn().map_or(0, |l| l.0);
                        assert!(
                            last >= model.durable,
                            "seed {seed}: lost durable records up to {}, have {last}",
                            model.durable
                        );
                        assert!(last < model.next, "seed {seed}: a record never appended");
                        model.records.retain(|&l, _| l <= last);
                        model.next = last + 1;
                        model.durable = last;
                        model.checkpoints.retain(|c| c.0 <= last);
                    }
                }
                assert_eq!(
                    wal.last_checkpoint().map(|c| (c.lsn.0, c.data)),
                    model.checkpoints.last().cloned(),
                    "checkpoint survives reopen"
                );
            }
        }
        check_bounds(&wal, &model);
    }
    // Everything, one last time, by reading each record.
    for (&lsn, p) in &model.records {
        assert_eq!(&wal.read(Lsn(lsn)).unwrap(), p, "final read {lsn}");
    }
    drop(wal);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_wal_matches_its_model(steps in prop::collection::vec(step(), 1..60), failover in any::<bool>()) {
        run(&steps, failover, None);
    }

    #[test]
    fn the_wal_matches_its_model_across_power_losses(
        steps in prop::collection::vec(step(), 1..60),
        failover in any::<bool>(),
        seed in any::<u64>(),
    ) {
        run(&steps, failover, Some(seed));
    }
}

#[test]
fn replay_delivers_batches_forward_and_backward_across_logs() {
    let disk = Disk::new(MemFs::new());
    let wal = Wal::open_with(&config(false), disk.env()).unwrap();
    for i in 1..=300u64 {
        wal.append(&payload(i, 1000)).unwrap();
    }
    wal.sync().unwrap();
    assert!(wal.logs().len() > 3, "rotated into several logs");
    let fwd = collect(&wal, 7, Direction::Forward);
    assert_eq!(
        fwd.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=300).collect::<Vec<_>>()
    );
    let back = collect(&wal, 7, Direction::Backward);
    assert_eq!(
        back.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=300).rev().collect::<Vec<_>>()
    );
    let mut ranged = Vec::new();
    wal.replay_range(Lsn(50)..Lsn(60), 4, Direction::Backward, |b| {
        ranged.extend(b.iter().map(|r| r.lsn.0));
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    assert_eq!(ranged, (50..60).rev().collect::<Vec<_>>());
    // The callback's error stops the replay and comes back.
    let mut calls = 0;
    let e = wal
        .replay(10, Direction::Forward, |_| {
            calls += 1;
            if calls == 3 { Err("enough") } else { Ok(()) }
        })
        .unwrap_err();
    assert_eq!(calls, 3);
    assert!(e.to_string().contains("enough"));
}

#[test]
fn iteration_follows_appends_across_rotation_and_a_failover_switch_with_duplicates() {
    let disk = Disk::new(MemFs::new());
    let wal = Wal::open_with(&config(true), disk.env()).unwrap();
    let m = wal.failover().expect("a failover WAL");
    let mut it = wal.iter_from(Lsn(1));
    let mut seen = Vec::new();
    for i in 1..=40u64 {
        wal.append_sync(&payload(i, 2000)).unwrap();
    }
    while let Some(r) = it.next().unwrap() {
        seen.push(r.lsn.0);
    }
    // Records written to the primary but not synced there when the switch
    // happens are replayed into the secondary: the log holds them twice.
    let stall = disk.stalls.stall(OpFilter::ops([Op::Sync]).in_dir("/p"));
    let pending: Vec<Lsn> = (41..=45u64)
        .map(|i| wal.append(&payload(i, 10)).unwrap())
        .collect();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| wal.sync());
        assert!(
            disk.stalls
                .wait_until_blocked(1, std::time::Duration::from_secs(20))
        );
        m.force_switch().unwrap();
        waiter.join().unwrap().unwrap();
    });
    for i in 46..=90u64 {
        wal.append_sync(&payload(i, 2000)).unwrap();
    }
    stall.release();
    while let Some(r) = it.next().unwrap() {
        assert_eq!(
            r.payload,
            payload(
                r.lsn.0,
                if (41..=45).contains(&r.lsn.0) {
                    10
                } else {
                    2000
                }
            )
        );
        seen.push(r.lsn.0);
    }
    assert_eq!(
        seen,
        (1..=90).collect::<Vec<_>>(),
        "every record once, in order"
    );
    assert_eq!(pending.len(), 5);
    let logs = wal.logs();
    assert!(logs.len() > 2, "rotated");
    assert!(logs.iter().any(|l| l.segments.len() > 1), "switched");
    wal.close().unwrap();
}

#[test]
fn bad_arguments_name_the_value_and_the_valid_range() {
    let disk = Disk::new(MemFs::new());
    let wal = Wal::open_with(&config(false), disk.env()).unwrap();
    let e = wal.read(Lsn(1)).unwrap_err();
    assert_eq!(e.to_string(), "LSN 1 is out of range: the log is empty");
    for i in 0..10 {
        wal.append(&[i]).unwrap();
    }
    let e = wal.read(Lsn(11)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "LSN 11 is out of range: the log holds 1..=10"
    );
    assert!(wal.read(Lsn(0)).is_err());
    let e = wal.truncate_before(Lsn(12)).unwrap_err();
    assert!(e.to_string().contains("LSN 12 is out of range"), "{e}");
    let e = wal.truncate_after(Lsn(11)).unwrap_err();
    assert!(e.to_string().contains("LSN 11 is out of range"), "{e}");
    let e = wal
        .replay(0, Direction::Forward, |_| {
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "batch_size = 0: must be at least 1");
    let e = wal
        .replay_range(Lsn(5)..Lsn(20), 1, Direction::Forward, |_| {
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_err();
    assert!(e.to_string().contains("LSN 19 is out of range"), "{e}");
    // Truncating everything, both ways.
    wal.truncate_before(Lsn(11)).unwrap();
    assert!(wal.is_empty());
    assert_eq!(wal.append(b"x").unwrap(), Lsn(11));
    wal.truncate_after(Lsn(10)).unwrap();
    assert!(wal.is_empty());
    assert_eq!(wal.append(b"y").unwrap(), Lsn(11));
    wal.close().unwrap();
}

#[test]
fn truncated_logs_are_deleted_from_disk() {
    let disk = Disk::new(MemFs::new());
    let wal = Wal::open_with(&config(false), disk.env()).unwrap();
    for i in 1..=200u64 {
        wal.append(&payload(i, 1000)).unwrap();
    }
    let before = wal.logs().len();
    wal.truncate_before(Lsn(150)).unwrap();
    let after = wal.logs().len();
    assert!(after < before, "{before} logs before, {after} after");
    assert_eq!(wal.first_lsn(), Some(Lsn(150)));
    assert_eq!(wal.read(Lsn(150)).unwrap(), payload(150, 1000));
    let files: Vec<_> = disk
        .mem
        .files()
        .into_iter()
        .filter(|f| {
            f.path.starts_with(Path::new("/p")) && f.path.extension().is_some_and(|e| e == "log")
        })
        .collect();
    assert!(
        files.len() <= after + 4,
        "deleted or recycled: {} files for {after} logs",
        files.len()
    );
    wal.close().unwrap();
}
