//! A real, kernel-level disk stall: the primary directory lives on a FUSE
//! passthrough (`wal-stallfs`) whose writes and fsyncs the test parks in the
//! kernel for seconds, exactly as a process waits on a disk that stopped
//! answering. Eight threads append small records with sync throughout.
//!
//! * Through the failover manager (background monitor and prober, default
//!   thresholds: 100 ms unhealthy threshold, 100 ms sampling), the log
//!   switches to the secondary (a plain directory) and no append waits
//!   longer than 1 s, far below the stall; every acknowledged record is read
//!   back exactly once, in order.
//! * Through the standalone manager on the same mount, some append waits for
//!   (nearly) the whole stall: that is what failover buys.
//!
//! Only `Write` and `Fsync` are stalled: a parked `Create` or `FsyncDir`
//! would hold the kernel's lock on the directory (see `wal-stallfs`).
//! * Stalls that start at a random moment (each a fresh failover manager,
//!   the stall after a random 0-300 ms of appends, the seed printed): the
//!   slowest acknowledged append of each is printed, with the hedges and
//!   switches, and the spread over the stalls. Speed is measured, not
//!   asserted: the bound checked is the same generous one.
//!   `DISK_STALL_ROUNDS=<n>` (3 by default) sets how many,
//!   `DISK_STALL_SEED=<n>` replays a run.
//!
//! * A failing primary and then a stalling secondary, both on FUSE mounts,
//!   with `segments_per_log_max = 3`: the primary's fsyncs fail with `EIO`
//!   (so do its probes), then, before the first probe, the secondary's
//!   writes and fsyncs stall for 300 ms. No append may fail (the log waits
//!   on the secondary rather than bounce back to the failing primary until
//!   it runs out of segments), and every acknowledged record reads back.
//!
//! Without `/dev/fuse` (or the right to mount) the tests print `SKIPPED`
//! and return, unless `WAL_STALLFS_REQUIRE_FUSE=1` (set by `.ci/run` when
//! it can mount) makes that a failure. `DISK_STALL_MS=<n>` changes the
//! stall (3000 ms by default; 500 ms for the random-moment stalls).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wal_manager::{Config, DirId, LogNum, Manager, Writer};
use wal_stallfs::{Mounted, Op, StallControl, mount_or_skip};
use wal_testkit::durability::{
    env_u64, parse_payload, payload, read_all, reopen_env, seed_from_env,
};

const WRITERS: u64 = 8;
const RECORD_LEN: usize = 64;
/// Synced appends before the stall.
const BEFORE_STALL: Duration = Duration::from_secs(1);
/// Synced appends after the release.
const AFTER_STALL: Duration = Duration::from_secs(1);
const STALL_DEFAULT_MS: u64 = 3000;
/// The longest any append may wait through the failover manager: generous
/// for a loaded machine (detection takes one to two 100 ms samples, then a
/// segment is created on the secondary and the queue replayed), and still
/// far below the stall.
const FAILOVER_LATENCY_MAX: Duration = Duration::from_secs(1);
/// Through the standalone manager, some append must wait at least this
/// share of the stall.
const STANDALONE_STALL_SHARE_MIN: f64 = 0.8;

#[test]
fn failover_rides_out_a_real_disk_stall_that_blocks_the_standalone_manager() {
    let Some(disks) = Disks::mount() else {
        return;
    };
    let (mounted, secondary) = (&disks.mounted, &disks.secondary);
    let control = mounted.control();
    let stall = Duration::from_millis(env_u64("DISK_STALL_MS").unwrap_or(STALL_DEFAULT_MS));

    let failover_config = Config::failover(
        mounted.mountpoint().join("failover"),
        secondary.path().join("wal"),
    );
    let failover = run(&failover_config, &control, BEFORE_STALL, stall);
    failover.print("failover  ");

    let standalone_config = Config::standalone(mounted.mountpoint().join("standalone"));
    let standalone = run(&standalone_config, &control, BEFORE_STALL, stall);
    standalone.print("standalone");

    assert!(
        failover.switches >= 1,
        "the failover manager never left the stalled primary"
    );
    assert!(
        failover.max <= FAILOVER_LATENCY_MAX,
        "an append waited {:?} through the failover manager (bound {FAILOVER_LATENCY_MAX:?}, stall {stall:?})",
        failover.max
    );
    assert!(
        standalone.max.as_secs_f64() >= STANDALONE_STALL_SHARE_MIN * stall.as_secs_f64(),
        "the standalone manager's longest append ({:?}) should have waited for most of the {stall:?} stall",
        standalone.max
    );
}

#[test]
fn stalls_starting_at_random_moments_cost_the_failover_manager_little() {
    let Some(disks) = Disks::mount() else {
        return;
    };
    let (mounted, secondary) = (&disks.mounted, &disks.secondary);
    let control = mounted.control();
    let stall = Duration::from_millis(env_u64("DISK_STALL_MS").unwrap_or(500));
    let rounds = env_u64("DISK_STALL_ROUNDS").unwrap_or(3);
    let seed = seed_from_env("DISK_STALL_SEED");
    eprintln!("disk_stall random moments: seed {seed} (DISK_STALL_SEED={seed} replays the phases)");
    let mut state = seed;
    let (mut maxima, mut in_stall, mut outside) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // SplitMix64: the phase of this round's stall.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let before = Duration::from_micros(300 + (z ^ (z >> 31)) % 300_000);
        let config = Config::failover(
            mounted.mountpoint().join(format!("round-{round}")),
            secondary.path().join(format!("round-{round}")),
        );
        let outcome = run(&config, &control, before, stall);
        outcome.print(&format!("round {round} (stall after {:.1} ms)", ms(before)));
        assert!(
            outcome.switches + outcome.hedges >= 1,
            "the stall went unnoticed"
        );
        assert!(
            outcome.max <= FAILOVER_LATENCY_MAX,
            "an append waited {:?} through the failover manager (bound {FAILOVER_LATENCY_MAX:?})",
            outcome.max
        );
        maxima.push(ms(outcome.max));
        in_stall.push(ms(outcome.max_in_stall));
        outside.push(ms(outcome.max_outside));
    }
    eprintln!(
        "disk_stall random moments: over {} stalls of {stall:?}, slowest append per round {}; of those in flight during the stall {}; of the others {}",
        maxima.len(),
        spread(&mut maxima),
        spread(&mut in_stall),
        spread(&mut outside)
    );
}

/// "min X ms, median Y ms, max Z ms" of `v` (sorted in place).
fn spread(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "min {:.1} ms, median {:.1} ms, max {:.1} ms",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    )
}

#[test]
fn a_failing_primary_and_a_stalling_secondary_never_fail_the_writer() {
    let (Some(primary), Some(secondary)) = (Disks::mount(), Disks::mount()) else {
        return;
    };
    let (p, s) = (primary.mounted.control(), secondary.mounted.control());
    let mut config = Config::failover(
        primary.mounted.mountpoint().join("wal"),
        secondary.mounted.mountpoint().join("wal"),
    );
    config.failover.segments_per_log_max = 3;
    let manager = Manager::open(&config).unwrap();
    let writer = Arc::new(manager.create(LogNum(1)).unwrap());
    let appenders = Appenders::start(&writer);
    std::thread::sleep(Duration::from_millis(500));
    p.fail(Op::Fsync, 5); // EIO
    std::thread::sleep(Duration::from_millis(300));
    s.stall(Op::Write | Op::Fsync);
    std::thread::sleep(Duration::from_millis(300));
    s.release();
    std::thread::sleep(Duration::from_millis(500));
    let (acked, failed) = appenders.stop();
    let stats = manager.stats().failover.unwrap();
    let segments = manager.list()[0].segments.len();
    writer.close().unwrap();
    drop(writer);
    manager.close().unwrap();
    p.clear_faults();
    let max = acked.iter().map(|a| a.2).max().unwrap_or_default();
    eprintln!(
        "disk_stall failing primary, stalling secondary: {} synced appends, max {:.1} ms, {} switches, {segments} segments",
        acked.len(),
        ms(max),
        stats.switches
    );
    assert!(
        failed.is_empty(),
        "appends failed while the secondary could take them: {failed:?}"
    );
    assert!(
        stats.switches >= 1,
        "the log never left the failing primary"
    );
    check_read_back(&config, &acked);
}

/// The stallable FUSE mount (the primary's disk) and a plain directory
/// (the secondary's); the mount goes before the directories it uses.
struct Disks {
    mounted: Mounted,
    secondary: tempfile::TempDir,
    _mnt: tempfile::TempDir,
    _backing: tempfile::TempDir,
}

impl Disks {
    /// `None` (the test skips) when FUSE cannot be mounted here.
    fn mount() -> Option<Disks> {
        let backing = tempfile::tempdir().unwrap();
        let mnt = tempfile::tempdir().unwrap();
        let mounted = mount_or_skip(backing.path(), mnt.path())?;
        Some(Disks {
            mounted,
            secondary: tempfile::tempdir().unwrap(),
            _mnt: mnt,
            _backing: backing,
        })
    }
}

/// What one run measured.
struct Outcome {
    appends: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    switches: u64,
    hedges: u64,
    /// The slowest sync of the log's last segment (the secondary's, after
    /// one switch): what a commit there could not beat.
    last_segment_sync_max: Duration,
    /// When the slowest append started, in ms after the stall began.
    slowest_started: f64,
    /// The slowest of the appends in flight at some moment of the stall.
    max_in_stall: Duration,
    /// The slowest of the others (the same machine without a stall).
    max_outside: Duration,
    /// The directory of each segment of the log, in order (`P`, `S`).
    segments: String,
}

impl Outcome {
    fn print(&self, name: &str) {
        eprintln!(
            "disk_stall {name}: {} synced appends by {WRITERS} writers, latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms (started {:.1} ms after the stall began), max of those in flight during the stall {:.1} ms, of the others {:.1} ms, {} switches, {} hedges, segments {}, last segment's slowest sync {:.1} ms",
            self.appends,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.slowest_started,
            ms(self.max_in_stall),
            ms(self.max_outside),
            self.switches,
            self.hedges,
            self.segments,
            ms(self.last_segment_sync_max)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Eight synced writers for `BEFORE_STALL + stall + AFTER_STALL`, with the
/// mount's writes and fsyncs stalled in the middle; then everything
/// acknowledged is read back.
fn run(config: &Config, control: &StallControl, before: Duration, stall: Duration) -> Outcome {
    let manager = Manager::open(config).unwrap();
    let writer = Arc::new(manager.create(LogNum(1)).unwrap());
    let appenders = Appenders::start(&writer);

    std::thread::sleep(before);
    let stalled_at = Instant::now();
    control.stall(Op::Write | Op::Fsync);
    assert!(
        control.wait_parked(1, Duration::from_secs(10)),
        "no write or fsync reached the stalled mount"
    );
    std::thread::sleep(stall);
    control.release();
    std::thread::sleep(AFTER_STALL);
    let (acked, failed) = appenders.stop();
    assert!(failed.is_empty(), "appends failed: {failed:?}");
    let stats = manager.stats();
    let (switches, hedges) = stats.failover.map_or((0, 0), |f| (f.switches, f.hedges));
    let last_segment_sync_max =
        Duration::from_nanos(stats.writer.as_ref().map_or(0, |w| w.sync_latency.max));
    writer.close().unwrap();
    drop(writer);
    // Listed once closed: an unused standby is gone from the list.
    let segments = manager.list()[0]
        .segments
        .iter()
        .map(|s| match s.dir {
            DirId::Primary => 'P',
            DirId::Secondary => 'S',
        })
        .collect();
    manager.close().unwrap();

    check_read_back(config, &acked);
    let slowest = acked
        .iter()
        .max_by_key(|a| a.2)
        .expect("appends were acknowledged");
    // Signed: the slowest append may have started before the stall.
    let slowest_started = ms(slowest.3.saturating_duration_since(stalled_at))
        - ms(stalled_at.saturating_duration_since(slowest.3));
    // The appends in flight at some moment of the stall: what it cost.
    let stall_end = stalled_at + stall;
    let in_stall = |a: &&Acked| a.3 < stall_end && a.3 + a.2 > stalled_at;
    let max_in_stall = acked.iter().filter(in_stall).map(|a| a.2).max();
    let max_outside = acked.iter().filter(|a| !in_stall(a)).map(|a| a.2).max();
    let mut latencies: Vec<Duration> = acked.iter().map(|a| a.2).collect();
    latencies.sort_unstable();
    let at = |percent: usize| latencies[(latencies.len() - 1) * percent / 100];
    Outcome {
        appends: latencies.len(),
        p50: at(50),
        p99: at(99),
        max: *latencies.last().unwrap(),
        switches,
        hedges,
        last_segment_sync_max,
        slowest_started,
        max_in_stall: max_in_stall.unwrap_or_default(),
        max_outside: max_outside.unwrap_or_default(),
        segments,
    }
}

/// One acknowledged append: its LSN, its payload's tag, how long it took and
/// when it started.
type Acked = (u64, u64, Duration, Instant);

/// `WRITERS` threads appending synced records to one log until stopped.
struct Appenders {
    done: Arc<AtomicBool>,
    /// (lsn, tag, latency, start) of every acknowledged append.
    acked: Arc<Mutex<Vec<Acked>>>,
    /// The error of each append that failed (its writer then stops).
    failed: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Appenders {
    fn start(writer: &Arc<Writer>) -> Appenders {
        let done = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let failed: Arc<Mutex<Vec<String>>> = Arc::default();
        let threads = (0..WRITERS)
            .map(|t| {
                let (writer, done, acked, failed) = (
                    Arc::clone(writer),
                    Arc::clone(&done),
                    Arc::clone(&acked),
                    Arc::clone(&failed),
                );
                std::thread::spawn(move || {
                    let mut counter = 0u64;
                    while !done.load(Ordering::Acquire) {
                        let tag = (t << 32) | counter;
                        let started = Instant::now();
                        match writer.append_sync(&payload(tag, 0, RECORD_LEN)) {
                            Ok(lsn) => acked.lock().push((lsn.0, tag, started.elapsed(), started)),
                            Err(e) => {
                                failed.lock().push(e.to_string());
                                return;
                            }
                        }
                        counter += 1;
                    }
                })
            })
            .collect();
        Appenders {
            done,
            acked,
            failed,
            threads,
        }
    }

    /// Stops the writers and returns what was acknowledged and what failed.
    /// A writer stuck for good (a bug) fails the test instead of hanging it.
    fn stop(self) -> (Vec<Acked>, Vec<String>) {
        self.done.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(60);
        for t in self.threads {
            while !t.is_finished() {
                assert!(
                    Instant::now() < deadline,
                    "a writer never returned from append_sync after the release"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            t.join().unwrap();
        }
        let acked = std::mem::take(&mut *self.acked.lock());
        let failed = std::mem::take(&mut *self.failed.lock());
        (acked, failed)
    }
}

/// Reopens the directories and checks that every acknowledged record is
/// there exactly once, in order, and nothing else.
fn check_read_back(config: &Config, acked: &[Acked]) {
    let env = reopen_env();
    let manager = Manager::open_with(config, env).unwrap();
    let recovered = read_all(&manager).unwrap_or_else(|e| panic!("{e}"));
    let read: BTreeMap<u64, u64> = recovered
        .records
        .iter()
        .map(|r| {
            let (tag, _) = parse_payload(&r.payload)
                .unwrap_or_else(|| panic!("LSN {} holds bytes never written", r.lsn));
            (r.lsn.0, tag)
        })
        .collect();
    assert_eq!(
        read.len(),
        recovered.records.len(),
        "each record exactly once"
    );
    // A clean close made everything durable: what was read is exactly what
    // was acknowledged.
    let want: BTreeMap<u64, u64> = acked.iter().map(|&(l, t, ..)| (l, t)).collect();
    assert_eq!(want.len(), acked.len(), "no LSN acknowledged twice");
    assert_eq!(
        read, want,
        "every acknowledged record is read back, in order, and nothing else:\n{}",
        recovered.summary
    );
    manager.close().unwrap();
}
