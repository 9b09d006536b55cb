//! Eight writers append with sync while switches are forced at random moments
//! (some while the current directory is stalled); afterwards the reader
//! returns every acknowledged record exactly once, in LSN order, and nothing
//! else. Seeded: `FAILOVER_SEED=<n>` replays a run; `FAILOVER_RUNS=<n>` runs
//! more seeds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wal_fs::{MemFs, Op, OpFilter};
use wal_manager::{Config, DirId, Driver, Env, LogNum, Manager, ManualClock};
use wal_testkit::SeededRng;
use wal_testkit::failover::{Disk, PRIMARY, SECONDARY};

const WRITERS: u64 = 8;
const RECORDS_PER_WRITER: u64 = 150;

// Writers, a switcher and two read-back checks: one scenario, kept whole.
#[allow(clippy::too_many_lines)]
fn run(seed: u64) {
    let disk = Disk::new(MemFs::new());
    let mut config = Config::failover(PRIMARY, SECONDARY);
    config.failover.segments_per_log_max = 1000;
    let env = Env {
        primary_fs: Arc::clone(&disk.fs),
        secondary_fs: Arc::clone(&disk.fs),
        clock: Arc::new(ManualClock::new()),
        driver: Driver::Manual,
        archive: None,
    };
    let manager = Arc::new(Manager::open_with(&config, env.clone()).unwrap());
    let Manager::Failover(_) = &*manager else {
        unreachable!()
    };
    let writer = Arc::new(manager.create(LogNum(1)).unwrap());
    let done = Arc::new(AtomicBool::new(false));

    let handles: Vec<_> = (0..WRITERS)
        .map(|id| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for counter in 0..RECORDS_PER_WRITER {
                    let mut payload = id.to_le_bytes().to_vec();
                    payload.extend_from_slice(&counter.to_le_bytes());
                    let lsn = writer.append_sync(&payload).unwrap_or_else(|e| {
                        panic!("seed {seed}: writer {id} record {counter}: {e}")
                    });
                    acked.push((lsn.0, counter));
                }
                acked
            })
        })
        .collect();

    let switcher = {
        let (manager, done, stalls) =
            (Arc::clone(&manager), Arc::clone(&done), disk.stalls.clone());
        std::thread::spawn(move || {
            let Manager::Failover(m) = &*manager else {
                unreachable!()
            };
            let mut rng = SeededRng::new(seed);
            let mut switches = 0;
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_micros(rng.below(2000)));
                let dir = match m.current_dir() {
                    DirId::Primary => PRIMARY,
                    DirId::Secondary => SECONDARY,
                };
                if rng.coin() {
                    // Stall the current directory's writes and syncs, switch
                    // away while something is stuck, then let it go.
                    let stall = stalls.stall(OpFilter::ops([Op::Write, Op::Sync]).in_dir(dir));
                    std::thread::sleep(Duration::from_micros(rng.below(1500)));
                    m.force_switch().unwrap();
                    std::thread::sleep(Duration::from_micros(rng.below(1500)));
                    stall.release();
                } else {
                    m.force_switch().unwrap();
                }
                switches += 1;
            }
            switches
        })
    };

    let mut acked: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (id, h) in handles.into_iter().enumerate() {
        for (lsn, counter) in h.join().unwrap() {
            assert!(
                acked.insert(lsn, (id as u64, counter)).is_none(),
                "seed {seed}: LSN {lsn} twice"
            );
        }
    }
    done.store(true, Ordering::Release);
    let forced = switcher.join().unwrap();
    writer
        .close()
        .unwrap_or_else(|e| panic!("seed {seed}: close: {e}"));
    drop(writer);
    let segments = manager.list()[0].segments.len();
    assert!(
        segments >= 2,
        "seed {seed}: {forced} switches gave {segments} segments"
    );

    let check = |m: &Manager| {
        let mut r = m.open_reader(LogNum(1)).unwrap();
        let mut read = Vec::new();
        while let Some(rec) = r.next().unwrap_or_else(|e| panic!("seed {seed}: {e}")) {
            let id = u64::from_le_bytes(rec.payload[..8].try_into().unwrap());
            let counter = u64::from_le_bytes(rec.payload[8..16].try_into().unwrap());
            read.push((rec.lsn.0, (id, counter)));
        }
        let expected: Vec<_> = acked.iter().map(|(&l, &v)| (l, v)).collect();
        assert_eq!(
            read, expected,
            "seed {seed}: every acknowledged record once, in order"
        );
    };
    check(&manager);
    let Ok(manager) = Arc::try_unwrap(manager) else {
        panic!("manager still shared")
    };
    manager.close().unwrap();
    // And again after a restart.
    let reopened = Manager::open_with(&config, env).unwrap();
    check(&reopened);
    assert_eq!(reopened.next_lsn().0, WRITERS * RECORDS_PER_WRITER + 1);
    reopened.close().unwrap();
}

#[test]
fn eight_synced_writers_survive_random_switches() {
    let first: u64 = std::env::var("FAILOVER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0001);
    let runs: u64 = std::env::var("FAILOVER_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for seed in first..first + runs {
        eprintln!(
            "failover_concurrency seed {seed} (replay: FAILOVER_SEED={seed} FAILOVER_RUNS=1)"
        );
        run(seed);
    }
}
