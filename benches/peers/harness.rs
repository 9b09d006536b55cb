//! The `peers` benchmark's harness: failwal side by side with other Rust
//! WALs and with the disk itself, in one interleaved run.
//!
//! Two crates run it. The root package's `peers` bench (`cargo bench
//! --bench peers`) passes no peers: failwal against the disk (a raw
//! `write(2)` loop, and an ideal group commit loop, which at one thread is
//! a raw `write` + `fdatasync` loop). `peers/` (outside the workspace, with
//! its own lock file) passes `okaywal`, `raft-engine` and `fjall`: `cd
//! peers && cargo bench --bench peers`. Both take `PEERS_QUICK=1` for a
//! shorter run.
//!
//! Every case runs its contenders in the same process, interleaved, in real
//! directories under the cargo target directory, so that a ratio between
//! contenders holds on a noisy, shared machine even when the absolute
//! figures drift. The synced cases open each contender's log once and then
//! let the contenders take turns in many short slices (a quarter of a
//! second in the full run; who goes first rotates), because a synced rate
//! follows the disk and the disk's pace on a VM drifts by tens of percent
//! within seconds. The unsynced cases alternate whole runs (A, B, B, A, ...)
//! over several rounds. Throughputs are the **median over slices or
//! rounds**; a ratio is the **median of the per-slice or per-round
//! ratios** (the contenders of a slice or round ran back to back); latency
//! quantiles come from the histograms of all slices merged. The table comes
//! first; the last stdout line is one JSON object with the headline
//! figures.
//!
//! `cargo test` runs the root package's bench without `--bench`: it then
//! runs a *smoke* version (tiny data, a fraction of a second per contender,
//! a short stall) that exercises every contender and checks only sanity —
//! records were written, the JSON line is well formed — never a speed. That
//! keeps this harness and the failwal side from rotting.
//!
//! For iterating (ignored in smoke mode): `PEERS_ONLY=sync,unsynced,read,stall`
//! runs only those cases (the others report zeros), `PEERS_SYNC_THREADS=16`
//! only that thread count. Progress lines on stderr carry the group-commit
//! figures (syncs, records per sync, sync latency), the flush thread's
//! write sizes and each thread's CPU time and run-queue wait, which is
//! where to look first when a figure moves.

#![allow(dead_code)] // each of the two benches uses a part of the harness

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use wal_fs::{LatencyFs, Op, OpFilter, OsFs};
use wal_manager::{Config, Driver, Env, LogNum, Manager, SystemClock, Writer};
use wal_record::{Histogram, HistogramSnapshot};

/// Record size of the synced and the small unsynced cases.
const SMALL: usize = 128;
/// Record size of the large unsynced case.
const LARGE: usize = 32 << 10;
/// Record size of the log the read case reads back.
const READ_RECORD: usize = 1 << 10;
/// Writer thread counts of the synced case.
const SYNC_THREADS: [usize; 3] = [1, 4, 16];
/// Synced writers of the failover latency case.
const STALL_WRITERS: usize = 8;

// ---------------------------------------------------------------------------
// Plan: how long and how much, by mode.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `cargo test`: tiny, checks sanity only.
    Smoke,
    /// `PEERS_QUICK=1 cargo bench`: under a minute.
    Quick,
    /// `cargo bench`: the figures for the README.
    Full,
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    mode: Mode,
    /// Rounds of the unsynced cases.
    rounds: usize,
    /// Synced cases: each contender's log stays open for the whole case,
    /// first warmed up for `warmup`, then the contenders take turns in
    /// `slices` slices of `slice` each (after an unmeasured `slice_lead`).
    slices: usize,
    slice: Duration,
    slice_lead: Duration,
    warmup: Duration,
    /// Records of one unsynced 128-byte run.
    unsynced_small_records: u64,
    /// Bytes of one unsynced 32 KiB run.
    unsynced_large_bytes: u64,
    /// Size of the log the read case reads back.
    read_bytes: u64,
    /// Failover case: appending before, during and after the stall.
    stall_before: Duration,
    stall: Duration,
    stall_after: Duration,
    stall_rounds: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let bench = std::env::args().any(|a| a == "--bench");
        let quick = std::env::var_os("PEERS_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
        let ms = Duration::from_millis;
        match (bench, quick) {
            (false, _) => Plan {
                mode: Mode::Smoke,
                rounds: 1,
                slices: 2,
                slice: ms(30),
                slice_lead: ms(5),
                warmup: ms(10),
                unsynced_small_records: 20_000,
                unsynced_large_bytes: 4 << 20,
                read_bytes: 2 << 20,
                stall_before: ms(100),
                stall: ms(300),
                stall_after: ms(100),
                stall_rounds: 1,
            },
            (true, true) => Plan {
                mode: Mode::Quick,
                rounds: 3,
                slices: 12,
                slice: ms(150),
                slice_lead: ms(20),
                warmup: ms(150),
                unsynced_small_records: 2_000_000,
                unsynced_large_bytes: 256 << 20,
                read_bytes: 1 << 30,
                stall_before: ms(700),
                stall: ms(2000),
                stall_after: ms(500),
                stall_rounds: 5,
            },
            (true, false) => Plan {
                mode: Mode::Full,
                rounds: 5,
                slices: 40,
                slice: ms(250),
                slice_lead: ms(25),
                warmup: ms(300),
                unsynced_small_records: 5_000_000,
                unsynced_large_bytes: 512 << 20,
                read_bytes: 1 << 30,
                stall_before: ms(1500),
                stall: ms(2000),
                stall_after: ms(1000),
                stall_rounds: 6,
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Directories and small statistics helpers.

/// A fresh directory for one run, under the cargo target directory (the
/// disk the project lives on), removed when dropped.
struct RunDir(PathBuf);

impl RunDir {
    fn new(name: &str) -> RunDir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("peers-{}", std::process::id()))
            .join(format!("{n:03}-{name}"));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a benchmark directory");
        RunDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The machine's CPU time so far from `/proc/stat`, in clock ticks:
/// `(stolen, total)`. "Stolen" is time the hypervisor gave this VM's vCPUs
/// to others while they had work, the main source of noise here; `None`
/// where there is no `/proc/stat`.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is
    // already in user).
    let total = fields.iter().take(8).sum();
    Some((*fields.get(7)?, total))
}

/// A thread's time on a CPU and waiting for one so far, in nanoseconds,
/// from `/proc/<pid>/task/<tid>/schedstat` (`None` where unknown): how much
/// work a thread did, and how long it was ready to run but not running.
fn schedstat(path: &Path) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let mut it = s.split_whitespace().map(str::parse::<u64>);
    Some((it.next()?.ok()?, it.next()?.ok()?))
}

/// [`schedstat`] of the calling thread.
fn my_schedstat() -> Option<(u64, u64)> {
    schedstat(Path::new("/proc/thread-self/schedstat"))
}

/// [`schedstat`] of this process's thread named `name`, if there is one.
fn named_schedstat(name: &str) -> Option<(u64, u64)> {
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|t| {
        let dir = t.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        (comm.trim() == name).then(|| schedstat(&dir.join("schedstat")))?
    })
}

/// "cpu X ms, waited Y ms" between two [`schedstat`] readings.
fn cpu_note(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> String {
    match (before, after) {
        (Some((c0, w0)), Some((c1, w1))) => {
            format!("cpu {:.0} ms, waited {:.0} ms", ms(c1 - c0), ms(w1 - w0))
        }
        _ => "cpu unknown".to_owned(),
    }
}

/// The share of CPU time stolen by the hypervisor between two
/// [`cpu_ticks`] readings, in percent (0 if unknown).
fn steal_pct(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> f64 {
    match (before, after) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => (s1 - s0) as f64 * 100.0 / (t1 - t0) as f64,
        _ => 0.0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "a median of nothing");
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn us(nanos: u64) -> f64 {
    nanos as f64 / 1e3
}

/// The contenders of a round, in the order they run: alternating, so that
/// neither always runs first (on a warm or a cold disk).
fn order<T: Copy>(round: usize, a: T, b: T) -> [T; 2] {
    if round % 2 == 0 { [a, b] } else { [b, a] }
}

// ---------------------------------------------------------------------------
// The synced contenders, behind one trait.

/// A log that appends one record and returns once it is durable.
pub(crate) trait SyncedLog: Sync {
    fn append_sync(&self, record: &[u8]);
    /// A note for the progress line (group commit figures), if any.
    fn note(&self) -> String {
        String::new()
    }
    /// Closes the log cleanly.
    fn finish(self: Box<Self>);
}

/// Another library's log, measured against failwal in the synced cases.
pub(crate) struct Peer {
    /// The name in tables and progress lines.
    pub(crate) name: &'static str,
    /// The name in JSON keys: `sync16_ratio_vs_{key}`.
    pub(crate) key: &'static str,
    /// Opens a fresh log in an empty directory.
    pub(crate) open: fn(&Path) -> Box<dyn SyncedLog>,
}

/// A contender of the synced cases: failwal, a peer, or the ideal loop.
#[derive(Clone, Copy)]
struct Contender {
    name: &'static str,
    key: &'static str,
    open: fn(&Path) -> Box<dyn SyncedLog>,
}

const FAILWAL: Contender = Contender {
    name: "failwal",
    key: "failwal",
    open: FailwalLog::open,
};

const IDEAL: Contender = Contender {
    name: "ideal",
    key: "ideal",
    open: IdealLog::open,
};

struct FailwalLog {
    manager: Manager,
    writer: Writer,
}

impl FailwalLog {
    /// The standalone manager on a fresh directory, default configuration.
    fn open(dir: &Path) -> Box<dyn SyncedLog> {
        let manager = Manager::open(&Config::standalone(dir)).expect("open the manager");
        let writer = manager.create(LogNum(1)).expect("create a log");
        Box::new(FailwalLog { manager, writer })
    }
}

impl SyncedLog for FailwalLog {
    fn append_sync(&self, record: &[u8]) {
        self.writer.append_sync(record).expect("append_sync");
    }

    fn note(&self) -> String {
        let m = self.writer.metrics();
        format!(
            ", {} syncs, {:.1} records/sync, sync p50 {:.0} us",
            m.syncs,
            m.sync_group_records.mean(),
            us(m.sync_latency.quantile(0.5)),
        )
    }

    fn finish(self: Box<Self>) {
        self.writer.close().expect("close the log");
        drop(self.writer);
        self.manager.close().expect("close the manager");
    }
}

/// The physical limit of group commit on this disk: threads share one
/// `write` + `fdatasync` loop over plain bytes, with no framing, CRC or
/// bookkeeping. Whoever finds no round in progress leads one: it takes
/// every byte appended so far, writes them with one `pwrite` and syncs;
/// the others wait on a condition variable and are all woken when the
/// round ends. At one thread this is one `write` + `fdatasync` per record.
/// The file is zero-filled a page at a time and synced before the run (the
/// fastest layout found here: DESIGN.md, "Performance notes"), and the
/// writes wrap around within it.
struct IdealLog {
    file: std::fs::File,
    state: Mutex<IdealState>,
    done: Condvar,
}

struct IdealState {
    /// Bytes appended since the last round took them.
    pending: Vec<u8>,
    /// A cleared buffer to swap in when a round takes `pending`.
    spare: Vec<u8>,
    /// The round that will take `pending`; every round before it is
    /// durable once `synced` reaches it.
    filling: u64,
    /// Rounds durable so far.
    synced: u64,
    /// A round is in progress.
    leading: bool,
    /// Where the next round writes.
    pos: u64,
}

impl IdealLog {
    /// The file's length: the writes wrap around within it.
    const LEN: u64 = 64 << 20;

    fn open(dir: &Path) -> Box<dyn SyncedLog> {
        let mut file = std::fs::File::create(dir.join("ideal.dat")).expect("create a plain file");
        let page = [0u8; 4096];
        for _ in 0..Self::LEN / page.len() as u64 {
            file.write_all(&page).expect("zero-fill the file");
        }
        file.sync_all().expect("sync the zeros");
        Box::new(IdealLog {
            file,
            state: Mutex::new(IdealState {
                pending: Vec::with_capacity(64 << 10),
                spare: Vec::with_capacity(64 << 10),
                filling: 1,
                synced: 0,
                leading: false,
                pos: 0,
            }),
            done: Condvar::new(),
        })
    }
}

impl SyncedLog for IdealLog {
    fn append_sync(&self, record: &[u8]) {
        let mut st = self.state.lock().expect("the ideal loop's lock");
        st.pending.extend_from_slice(record);
        let mine = st.filling;
        while st.synced < mine {
            if st.leading {
                st = self.done.wait(st).expect("the ideal loop's lock");
                continue;
            }
            st.leading = true;
            let spare = std::mem::take(&mut st.spare);
            let batch = std::mem::replace(&mut st.pending, spare);
            let round = st.filling;
            st.filling += 1;
            if st.pos + batch.len() as u64 > Self::LEN {
                st.pos = 0;
            }
            let pos = st.pos;
            st.pos += batch.len() as u64;
            drop(st);
            self.file.write_all_at(&batch, pos).expect("write");
            self.file.sync_data().expect("fdatasync");
            st = self.state.lock().expect("the ideal loop's lock");
            st.synced = round;
            st.leading = false;
            let mut batch = batch;
            batch.clear();
            st.spare = batch;
            self.done.notify_all();
        }
    }

    fn finish(self: Box<Self>) {}
}

/// The outcome of one synced run.
struct SyncedRun {
    commits: u64,
    secs: f64,
    latency: HistogramSnapshot,
}

impl SyncedRun {
    fn per_sec(&self) -> f64 {
        self.commits as f64 / self.secs
    }
}

/// `threads` threads append-and-wait in a loop on an open log: `lead`
/// unmeasured, then `measured`. Every measured commit's latency is
/// recorded.
fn run_synced(
    log: &dyn SyncedLog,
    threads: usize,
    lead: Duration,
    measured: Duration,
) -> SyncedRun {
    let measuring = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let record = [0x5au8; SMALL];
    let (commits, latency, secs) = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (measuring, stop) = (&measuring, &stop);
                s.spawn(move || {
                    let hist = Histogram::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        log.append_sync(&record);
                        if measuring.load(Ordering::Relaxed) {
                            hist.record_duration(t.elapsed());
                            n += 1;
                        }
                    }
                    (n, hist.snapshot())
                })
            })
            .collect();
        thread::sleep(lead);
        let start = Instant::now();
        measuring.store(true, Ordering::Relaxed);
        thread::sleep(measured);
        measuring.store(false, Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let (total, latency) = join_writers(handles);
        (total, latency, secs)
    });
    SyncedRun {
        commits,
        secs,
        latency,
    }
}

/// One contender's results at one thread count, over all slices.
struct Series {
    who: Contender,
    /// Commits/s per slice.
    rates: Vec<f64>,
    commits: u64,
    latency: HistogramSnapshot,
}

impl Series {
    fn rate(&self) -> f64 {
        median(self.rates.clone())
    }

    /// The median over slices of failwal's rate over this contender's. A
    /// slice in which either committed nothing (one sync outlasting a short
    /// slice on a loaded machine) has no ratio and is left out; with none
    /// left, the ratio is 0.
    fn ratio_of(&self, ours: &Series) -> f64 {
        let ratios: Vec<f64> = ours
            .rates
            .iter()
            .zip(&self.rates)
            .filter(|&(a, b)| *a > 0.0 && *b > 0.0)
            .map(|(a, b)| a / b)
            .collect();
        if ratios.is_empty() {
            0.0
        } else {
            median(ratios)
        }
    }

    /// Commits summed over all slices, `ours` over this contender's (every
    /// slice gives both the same measured time).
    fn total_ratio_of(&self, ours: &Series) -> f64 {
        ours.commits as f64 / self.commits.max(1) as f64
    }
}

/// Synced results of one thread count: failwal first, then the peers, then
/// the ideal loop.
struct SyncedCase {
    threads: usize,
    series: Vec<Series>,
}

impl SyncedCase {
    fn ours(&self) -> &Series {
        &self.series[0]
    }

    fn ideal(&self) -> &Series {
        self.series.last().expect("the ideal loop ran")
    }

    fn peers(&self) -> &[Series] {
        &self.series[1..self.series.len() - 1]
    }
}

/// Each thread count's contenders open their logs once, warm up, then take
/// turns in short slices, rotating who goes first. A synced rate here
/// follows the disk, whose pace on a shared VM drifts by tens of percent
/// from one second to the next; slices a quarter of a second long put the
/// contenders' turns close together, so that the drift hits all alike, and
/// many of them make the median of the per-slice ratios steady.
fn synced_cases(plan: &Plan, peers: &[Peer]) -> Vec<SyncedCase> {
    // `PEERS_SYNC_THREADS=16` runs only that thread count (for profiling).
    let only: Option<usize> = std::env::var("PEERS_SYNC_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|_| plan.mode != Mode::Smoke);
    let mut who = vec![FAILWAL];
    who.extend(peers.iter().map(|p| Contender {
        name: p.name,
        key: p.key,
        open: p.open,
    }));
    who.push(IDEAL);
    let mut cases = Vec::new();
    for &threads in SYNC_THREADS
        .iter()
        .filter(|&&t| only.is_none_or(|o| o == t))
    {
        let ticks = cpu_ticks();
        let dirs: Vec<RunDir> = who
            .iter()
            .map(|c| RunDir::new(&format!("sync{threads}-{}", c.key)))
            .collect();
        let logs: Vec<Box<dyn SyncedLog>> = who
            .iter()
            .zip(&dirs)
            .map(|(c, d)| (c.open)(d.path()))
            .collect();
        for log in &logs {
            run_synced(&**log, threads, Duration::ZERO, plan.warmup);
        }
        let mut series: Vec<Series> = who
            .iter()
            .map(|&c| Series {
                who: c,
                rates: Vec::new(),
                commits: 0,
                latency: HistogramSnapshot::default(),
            })
            .collect();
        for slice in 0..plan.slices {
            let mut line = Vec::new();
            for k in 0..who.len() {
                let i = (slice + k) % who.len();
                let run = run_synced(&*logs[i], threads, plan.slice_lead, plan.slice);
                line.push(format!("{} {:.0}/s", who[i].name, run.per_sec()));
                let s = &mut series[i];
                s.rates.push(run.per_sec());
                s.commits += run.commits;
                s.latency.merge(&run.latency);
            }
            let ratio = series[0].rates[slice] / series.last().expect("ideal").rates[slice];
            progress(&format!(
                "slice {slice:2} sync{threads}: {} (failwal/ideal {ratio:.2})",
                line.join(", "),
            ));
        }
        for (c, log) in who.iter().zip(logs) {
            let note = log.note();
            if !note.is_empty() {
                progress(&format!("  sync{threads} {}{note}", c.name));
            }
            log.finish();
        }
        progress(&format!(
            "  sync{threads}: {:.0}% of the CPU time stolen by the host",
            steal_pct(ticks, cpu_ticks())
        ));
        cases.push(SyncedCase { threads, series });
    }
    cases
}

// ---------------------------------------------------------------------------
// Unsynced appends vs a raw write(2) loop.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unsynced {
    Failwal,
    RawWrite,
}

/// Appends `count` records of `size` bytes from one thread without waiting
/// for durability, then waits until all are handed to the file (`flush`);
/// returns the elapsed seconds.
fn run_unsynced(who: Unsynced, size: usize, count: u64) -> f64 {
    let dir = RunDir::new(&format!("unsynced{size}-{who:?}"));
    let record = vec![0xa5u8; size];
    match who {
        Unsynced::Failwal => {
            let manager = Manager::open(&Config::standalone(dir.path())).expect("open the manager");
            let writer = manager.create(LogNum(1)).expect("create a log");
            // The flush thread may not have named itself yet: it has done
            // nothing so far then.
            let (me, flusher) = (
                my_schedstat(),
                named_schedstat("wal-flush-1").or(Some((0, 0))),
            );
            let start = Instant::now();
            for _ in 0..count {
                writer.append_nowait(&record).expect("append");
            }
            writer.flush().expect("flush");
            let secs = start.elapsed().as_secs_f64();
            let (me_after, flusher_after) = (my_schedstat(), named_schedstat("wal-flush-1"));
            let m = writer.metrics();
            assert_eq!(m.records, count, "every record was appended");
            progress(&format!(
                "  failwal {size} B: {:.0} ms; appender {}; flush thread {}; {} writes of {:.0} KiB on average, write p50 {:.0} us",
                secs * 1e3,
                cpu_note(me, me_after),
                cpu_note(flusher, flusher_after),
                m.writes,
                m.bytes_written as f64 / m.writes.max(1) as f64 / 1024.0,
                us(m.write_latency.quantile(0.5)),
            ));
            writer.close().expect("close");
            drop(writer);
            manager.close().expect("close the manager");
            secs
        }
        Unsynced::RawWrite => {
            let mut file =
                std::fs::File::create(dir.path().join("raw.dat")).expect("create a plain file");
            let me = my_schedstat();
            let start = Instant::now();
            for _ in 0..count {
                file.write_all(&record).expect("write");
            }
            let secs = start.elapsed().as_secs_f64();
            progress(&format!(
                "  write(2) {size} B: {:.0} ms; {}",
                secs * 1e3,
                cpu_note(me, my_schedstat())
            ));
            assert_eq!(
                file.metadata().expect("stat").len(),
                count * size as u64,
                "every byte was written"
            );
            secs
        }
    }
}

/// Unsynced results of one record size: rates in records/s, over rounds.
struct UnsyncedCase {
    size: usize,
    count: u64,
    ours: Vec<f64>,
    raw: Vec<f64>,
    ratios: Vec<f64>,
}

fn unsynced_cases(plan: &Plan) -> Vec<UnsyncedCase> {
    let large_count = plan.unsynced_large_bytes / LARGE as u64;
    let mut cases = vec![
        UnsyncedCase {
            size: SMALL,
            count: plan.unsynced_small_records,
            ours: Vec::new(),
            raw: Vec::new(),
            ratios: Vec::new(),
        },
        UnsyncedCase {
            size: LARGE,
            count: large_count,
            ours: Vec::new(),
            raw: Vec::new(),
            ratios: Vec::new(),
        },
    ];
    for round in 0..plan.rounds {
        for case in &mut cases {
            let (mut ours, mut raw) = (0.0, 0.0);
            for who in order(round, Unsynced::Failwal, Unsynced::RawWrite) {
                let rate = case.count as f64 / run_unsynced(who, case.size, case.count);
                progress(&format!(
                    "round {round} unsynced {:>5} B {who:?}: {:.2} M records/s, {:.2} GB/s",
                    case.size,
                    rate / 1e6,
                    rate * case.size as f64 / 1e9
                ));
                match who {
                    Unsynced::Failwal => ours = rate,
                    Unsynced::RawWrite => raw = rate,
                }
            }
            case.ours.push(ours);
            case.raw.push(raw);
            case.ratios.push(ours / raw);
        }
    }
    cases
}

// ---------------------------------------------------------------------------
// Reading a log back.

struct ReadCase {
    file_bytes: u64,
    payload_bytes: u64,
    records: u64,
    /// Seconds of the second (warm) read.
    secs: f64,
}

fn read_case(plan: &Plan) -> ReadCase {
    let dir = RunDir::new("read");
    let manager = Manager::open(&Config::standalone(dir.path())).expect("open the manager");
    let writer = manager.create(LogNum(1)).expect("create a log");
    let record = vec![0x3cu8; READ_RECORD];
    let count = plan.read_bytes / READ_RECORD as u64;
    for _ in 0..count {
        writer.append_nowait(&record).expect("append");
    }
    let file_bytes = writer.close().expect("close");
    drop(writer);
    let mut secs = 0.0;
    let mut seen = (0, 0);
    // The first pass warms the page cache; the second is measured.
    for _ in 0..2 {
        let mut reader = manager.open_reader(LogNum(1)).expect("open a reader");
        let start = Instant::now();
        let (mut records, mut bytes) = (0u64, 0u64);
        while let Some(r) = reader.next().expect("read a record") {
            records += 1;
            bytes += r.payload.len() as u64;
        }
        secs = start.elapsed().as_secs_f64();
        seen = (records, bytes);
    }
    manager.close().expect("close the manager");
    assert_eq!(seen.0, count, "every record came back");
    ReadCase {
        file_bytes,
        payload_bytes: seen.1,
        records: seen.0,
        secs,
    }
}

// ---------------------------------------------------------------------------
// The failover latency case.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StallKind {
    Failover,
    Standalone,
}

struct StallRun {
    commits: u64,
    latency: HistogramSnapshot,
    switches: u64,
    hedges: u64,
    /// The slowest commit of each stall, in milliseconds.
    round_max_ms: Vec<f64>,
}

impl StallRun {
    fn empty() -> StallRun {
        StallRun {
            commits: 0,
            latency: HistogramSnapshot::default(),
            switches: 0,
            hedges: 0,
            round_max_ms: Vec::new(),
        }
    }

    /// Min, median and max of the per-stall maxima.
    fn spread(&self) -> (f64, f64, f64) {
        let mut v = self.round_max_ms.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => (0.0, 0.0, 0.0),
            n => (v[0], v[n / 2], v[n - 1]),
        }
    }
}

/// The moment a stall starts, after `stall_before`: up to one default
/// sampling interval (100 ms) later, drawn from `seed` (SplitMix64), so
/// that the stall meets the monitor at any phase.
fn stall_phase(seed: u64, round: usize) -> Duration {
    let mut z = seed.wrapping_add((round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Duration::from_micros((z ^ (z >> 31)) % 100_000)
}

/// `STALL_WRITERS` synced writers append for `stall_before` plus `phase`,
/// the primary's writes and syncs stall for `stall`, then they go on for
/// `stall_after`.
fn run_stall(kind: StallKind, plan: &Plan, phase: Duration) -> StallRun {
    let dir = RunDir::new(&format!("stall-{kind:?}"));
    let primary = dir.path().join("primary");
    let secondary = dir.path().join("secondary");
    let latency_fs = LatencyFs::new(OsFs::new());
    let control = latency_fs.control().clone();
    let env = Env {
        primary_fs: Arc::new(latency_fs),
        secondary_fs: Arc::new(OsFs::new()),
        clock: Arc::new(SystemClock::new()),
        driver: Driver::Background,
        archive: None,
    };
    let config = match kind {
        StallKind::Failover => Config::failover(&primary, &secondary),
        StallKind::Standalone => Config::standalone(&primary),
    };
    let manager = Manager::open_with(&config, env).expect("open the manager");
    let writer = manager.create(LogNum(1)).expect("create a log");
    let stop = AtomicBool::new(false);
    let record = [0x77u8; SMALL];
    let (commits, latency) = thread::scope(|s| {
        let handles: Vec<_> = (0..STALL_WRITERS)
            .map(|_| {
                let (writer, stop) = (&writer, &stop);
                s.spawn(move || {
                    let hist = Histogram::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        writer.append_sync(&record).expect("append_sync");
                        hist.record_duration(t.elapsed());
                        n += 1;
                    }
                    (n, hist.snapshot())
                })
            })
            .collect();
        thread::sleep(plan.stall_before + phase);
        let stall = control.stall(OpFilter::ops([Op::Write, Op::Sync]).in_dir(&primary));
        thread::sleep(plan.stall);
        stall.release();
        thread::sleep(plan.stall_after);
        stop.store(true, Ordering::Relaxed);
        let (total, latency) = join_writers(handles);
        (total, latency)
    });
    let (switches, hedges) = manager
        .stats()
        .failover
        .map_or((0, 0), |f: wal_manager::FailoverStats| {
            (f.switches, f.hedges)
        });
    writer.close().expect("close the log");
    drop(writer);
    manager.close().expect("close the manager");
    StallRun {
        commits,
        round_max_ms: vec![ms(latency.max)],
        latency,
        switches,
        hedges,
    }
}

struct StallCase {
    failover: StallRun,
    standalone: StallRun,
}

fn stall_case(plan: &Plan) -> StallCase {
    let mut failover: Option<StallRun> = None;
    let mut standalone: Option<StallRun> = None;
    let merge = |slot: &mut Option<StallRun>, run: StallRun| match slot {
        None => *slot = Some(run),
        Some(acc) => {
            acc.commits += run.commits;
            acc.switches += run.switches;
            acc.hedges += run.hedges;
            acc.round_max_ms.extend(run.round_max_ms);
            acc.latency.merge(&run.latency);
        }
    };
    let seed = std::env::var("PEERS_STALL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    progress(&format!(
        "stall phases from seed {seed} (PEERS_STALL_SEED={seed} replays them)"
    ));
    for round in 0..plan.stall_rounds {
        let phase = stall_phase(seed, round);
        for kind in order(round, StallKind::Failover, StallKind::Standalone) {
            // The standalone manager's figure does not depend on the phase:
            // it runs once, the failover manager every round.
            if kind == StallKind::Standalone && round > 0 {
                continue;
            }
            let run = run_stall(kind, plan, phase);
            progress(&format!(
                "round {round} stall {kind:?} (starts {:.1} ms late): {} commits, p99 {:.1} ms, max {:.1} ms, {} switches, {} hedges",
                ms(phase.as_nanos() as u64),
                run.commits,
                ms(run.latency.quantile(0.99)),
                ms(run.latency.max),
                run.switches,
                run.hedges
            ));
            match kind {
                StallKind::Failover => merge(&mut failover, run),
                StallKind::Standalone => merge(&mut standalone, run),
            }
        }
    }
    StallCase {
        failover: failover.expect("at least one round"),
        standalone: standalone.expect("at least one round"),
    }
}

// ---------------------------------------------------------------------------
// Reporting.

fn progress(line: &str) {
    eprintln!("  {line}");
}

/// A flat JSON object of numbers, in insertion order.
#[derive(Default)]
struct Json(Vec<(String, f64)>);

impl Json {
    fn put(&mut self, key: impl Into<String>, value: f64) {
        self.0.push((key.into(), value));
    }

    fn render(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            // Three decimals are plenty for rates, ratios and milliseconds.
            let _ = write!(out, "\"{k}\": {}", (v * 1000.0).round() / 1000.0);
        }
        out.push('}');
        out
    }
}

/// The keys every full run reports; the smoke test checks they are all
/// there (with `okaywal` among the peers, its keys too).
const REQUIRED_KEYS: [&str; 9] = [
    "sync16_ratio_vs_ideal",
    "sync1_ratio_vs_ideal",
    "sync1_ratio_vs_raw_fdatasync",
    "unsynced128_records_per_s",
    "unsynced32k_ratio_vs_raw_write",
    "unsynced32k_round_spread",
    "read_gb_per_s",
    "failover_max_ms",
    "standalone_max_ms",
];

/// The keys of the issue that asked for the okaywal comparison.
const OKAYWAL_KEYS: [&str; 2] = ["sync16_ratio_vs_okaywal", "sync1_ratio_vs_okaywal"];

/// Checks the JSON line's shape (the smoke test's only assertion about the
/// output): one object, every required key once, every value a finite
/// number.
fn check_json(line: &str, json: &Json, peers: &[Peer]) {
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert!(!line.contains('\n'), "one line");
    let okaywal = peers.iter().any(|p| p.key == "okaywal");
    let keys = REQUIRED_KEYS
        .iter()
        .chain(OKAYWAL_KEYS.iter().filter(|_| okaywal));
    for key in keys {
        assert_eq!(
            line.matches(&format!("\"{key}\":")).count(),
            1,
            "{key} in {line}"
        );
    }
    for (k, v) in &json.0 {
        assert!(v.is_finite(), "{k} = {v}");
    }
}

fn p50_p99(h: &HistogramSnapshot) -> String {
    format!("{:.0}/{:.0}", us(h.quantile(0.5)), us(h.quantile(0.99)))
}

/// The synced rows of the table and their JSON keys.
fn report_synced(cases: &[SyncedCase], plan: &Plan, table: &mut String, json: &mut Json) {
    let mut totals = Vec::new();
    for c in cases {
        let t = c.threads;
        let (ours, ideal) = (c.ours(), c.ideal());
        for peer in c.peers().iter().chain([ideal]) {
            let name = if std::ptr::eq(peer, ideal) && t == 1 {
                "write+fdatasync (ideal)"
            } else {
                peer.who.name
            };
            let _ = writeln!(
                table,
                "{:<46} {:>12.0}/s {:>12.0}/s {:>8.2} {:>22} {:>22}",
                format!("synced 128 B, {t} thr vs {name}"),
                ours.rate(),
                peer.rate(),
                peer.ratio_of(ours),
                p50_p99(&ours.latency),
                p50_p99(&peer.latency),
            );
        }
        let vs_ideal: Vec<String> = c
            .series
            .iter()
            .take(c.series.len() - 1)
            .map(|s| format!("{} {:.2}", s.who.name, ideal.ratio_of(s)))
            .collect();
        let _ = writeln!(
            table,
            "{:<46} {}",
            format!("  {t} thr, share of the ideal loop:"),
            vs_ideal.join(", ")
        );
        json.put(format!("sync{t}_failwal_commits_per_s"), ours.rate());
        for peer in c.peers() {
            let key = peer.who.key;
            json.put(format!("sync{t}_ratio_vs_{key}"), peer.ratio_of(ours));
            json.put(
                format!("sync{t}_total_ratio_vs_{key}"),
                peer.total_ratio_of(ours),
            );
            json.put(format!("sync{t}_{key}_commits_per_s"), peer.rate());
            json.put(
                format!("sync{t}_{key}_ratio_vs_ideal"),
                ideal.ratio_of(peer),
            );
            totals.push(format!(
                "{t} thr vs {} {:.2}",
                peer.who.name,
                peer.total_ratio_of(ours)
            ));
        }
        json.put(format!("sync{t}_ratio_vs_ideal"), ideal.ratio_of(ours));
        json.put(format!("sync{t}_ideal_commits_per_s"), ideal.rate());
        if t == 1 {
            // At one thread the ideal loop is a raw write + fdatasync loop.
            json.put("sync1_raw_fdatasync_commits_per_s", ideal.rate());
            json.put("sync1_ratio_vs_raw_fdatasync", ideal.ratio_of(ours));
            if let Some(okaywal) = c.peers().iter().find(|p| p.who.key == "okaywal") {
                json.put(
                    "sync1_okaywal_ratio_vs_raw_fdatasync",
                    ideal.ratio_of(okaywal),
                );
            }
        }
        if t == 16 {
            json.put("sync16_failwal_p99_us", us(ours.latency.quantile(0.99)));
            for peer in c.peers() {
                json.put(
                    format!("sync16_{}_p99_us", peer.who.key),
                    us(peer.latency.quantile(0.99)),
                );
            }
        }
        if plan.mode == Mode::Smoke {
            for s in &c.series {
                assert!(
                    s.commits > 0,
                    "{} committed nothing at {t} threads",
                    s.who.name
                );
            }
        }
    }
    if !totals.is_empty() {
        let _ = writeln!(
            table,
            "synced, commits summed over all slices, failwal/peer: {}",
            totals.join(", ")
        );
    }
}

/// Runs the cases `PEERS_ONLY` selects (all by default) with failwal, the
/// disk baselines and `peers`, and prints the table and the JSON line.
#[allow(clippy::too_many_lines)] // one table, row after row
pub(crate) fn run(peers: &[Peer]) {
    let plan = Plan::from_env();
    let started = Instant::now();
    let ticks = cpu_ticks();
    eprintln!("peers: {:?} mode ({plan:?})", plan.mode);

    // `PEERS_ONLY=sync,unsynced` runs only those cases (for iterating); the
    // others then report zeros. Never set in smoke mode.
    let only = std::env::var("PEERS_ONLY")
        .ok()
        .filter(|_| plan.mode != Mode::Smoke);
    let wanted = |case: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|c| c == case))
    };
    let synced = if wanted("sync") {
        synced_cases(&plan, peers)
    } else {
        Vec::new()
    };
    let unsynced = if wanted("unsynced") {
        unsynced_cases(&plan)
    } else {
        Vec::new()
    };
    let read = if wanted("read") {
        read_case(&plan)
    } else {
        ReadCase {
            file_bytes: 0,
            payload_bytes: 0,
            records: 0,
            secs: 1.0,
        }
    };
    let stall = if wanted("stall") {
        stall_case(&plan)
    } else {
        StallCase {
            failover: StallRun::empty(),
            standalone: StallRun::empty(),
        }
    };

    let mut json = Json::default();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "\nfailwal vs peers ({:?} mode; synced: {} slices of {} ms per contender, taking turns; unsynced: {} rounds, alternating)\n\
         (throughput = median over slices or rounds, ratio = median of the per-slice or per-round ratios, latency = all slices merged)\n",
        plan.mode,
        plan.slices,
        plan.slice.as_millis(),
        plan.rounds
    );
    let _ = writeln!(
        table,
        "{:<46} {:>14} {:>14} {:>8} {:>22} {:>22}",
        "case", "failwal", "other", "ratio", "failwal p50/p99 (us)", "other p50/p99 (us)"
    );
    report_synced(&synced, &plan, &mut table, &mut json);
    for c in &unsynced {
        let (ours, raw, ratio) = (
            median(c.ours.clone()),
            median(c.raw.clone()),
            median(c.ratios.clone()),
        );
        let spread = c.ratios.iter().copied().fold(f64::MIN, f64::max)
            / c.ratios.iter().copied().fold(f64::MAX, f64::min);
        let gb = |rate: f64| rate * c.size as f64 / 1e9;
        let _ = writeln!(
            table,
            "{:<46} {:>10.2} GB/s {:>9.2} GB/s {:>8.2} {:>22} {:>22}",
            format!("unsynced {} B, 1 thr vs write(2)", c.size),
            gb(ours),
            gb(raw),
            ratio,
            format!("{:.2} M rec/s", ours / 1e6),
            format!("{:.2} M rec/s", raw / 1e6),
        );
        let rounds: Vec<String> = c.ratios.iter().map(|r| format!("{r:.2}")).collect();
        let _ = writeln!(
            table,
            "{:<46} {} (spread {spread:.2}x)",
            "  per round:",
            rounds.join(", ")
        );
        if c.size == SMALL {
            json.put("unsynced128_records_per_s", ours);
            json.put("unsynced128_raw_write_records_per_s", raw);
            json.put("unsynced128_ratio_vs_raw_write", ratio);
        } else {
            json.put("unsynced32k_ratio_vs_raw_write", ratio);
            json.put("unsynced32k_failwal_gb_per_s", gb(ours));
            json.put("unsynced32k_raw_write_gb_per_s", gb(raw));
            json.put("unsynced32k_round_spread", spread);
        }
    }
    let read_gb = read.payload_bytes as f64 / read.secs / 1e9;
    let _ = writeln!(
        table,
        "{:<46} {:>10.2} GB/s {:>14} {:>8} {:>22} {:>22}",
        format!("read {} MiB log, 1 KiB recs", read.file_bytes >> 20),
        read_gb,
        "-",
        "-",
        format!("{:.2} M rec/s", read.records as f64 / read.secs / 1e6),
        "payload bytes, warm",
    );
    json.put("read_gb_per_s", read_gb);
    let (f, s) = (&stall.failover.latency, &stall.standalone.latency);
    let _ = writeln!(
        table,
        "\n{:<46} {:>14} {:>14} {:>14} {:>10} {:>10}",
        "stall 2 s, 8 synced writers", "p99 (ms)", "p99.9 (ms)", "max (ms)", "commits", "switches"
    );
    for (name, run) in [
        ("failover manager", &stall.failover),
        ("standalone manager", &stall.standalone),
    ] {
        let h = &run.latency;
        let _ = writeln!(
            table,
            "{:<46} {:>14.1} {:>14.1} {:>14.1} {:>10} {:>10}",
            name,
            ms(h.quantile(0.99)),
            ms(h.quantile(0.999)),
            ms(h.max),
            run.commits,
            run.switches
        );
    }
    let (lo, mid, hi) = stall.failover.spread();
    let _ = writeln!(
        table,
        "failover: slowest commit of each of {} stalls starting at random moments: min {lo:.1} ms, median {mid:.1} ms, max {hi:.1} ms; {} hedges",
        stall.failover.round_max_ms.len(),
        stall.failover.hedges
    );
    json.put("failover_stall_max_ms_min", lo);
    json.put("failover_stall_max_ms_median", mid);
    json.put("failover_stall_max_ms_max", hi);
    json.put("failover_hedges", stall.failover.hedges as f64);
    json.put("stall_rounds", stall.failover.round_max_ms.len() as f64);
    json.put("failover_p99_ms", ms(f.quantile(0.99)));
    json.put("failover_p999_ms", ms(f.quantile(0.999)));
    json.put("failover_max_ms", ms(f.max));
    json.put("standalone_p99_ms", ms(s.quantile(0.99)));
    json.put("standalone_p999_ms", ms(s.quantile(0.999)));
    json.put("standalone_max_ms", ms(s.max));
    json.put("stall_ms", plan.stall.as_secs_f64() * 1e3);
    json.put("rounds", plan.rounds as f64);
    json.put("slices", plan.slices as f64);
    json.put("elapsed_s", started.elapsed().as_secs_f64());
    let steal = steal_pct(ticks, cpu_ticks());
    json.put("host_steal_pct", steal);
    let pressure = cpu_pressure();
    json.put("cpu_pressure_avg60_pct", pressure.unwrap_or(0.0));
    let _ = writeln!(
        table,
        "\n{steal:.0}% of this machine's CPU time was stolen by the host during the run; \
         CPU pressure (/proc/pressure/cpu, some, avg60) at the end: {}.",
        pressure.map_or_else(|| "unknown".to_owned(), |p| format!("{p:.1}%"))
    );

    if plan.mode == Mode::Smoke {
        assert!(stall.failover.commits > 0 && stall.standalone.commits > 0);
        assert!(read.records > 0);
    }
    let line = json.render();
    if only.is_none() {
        check_json(&line, &json, peers);
    }
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{table}\n{line}\n");
    let _ = out.flush();
    let _ = std::fs::remove_dir(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("peers-{}", std::process::id())),
    );
}

/// The share of time some runnable task waited for a CPU over the last
/// minute (`/proc/pressure/cpu`, "some avg60"), in percent.
fn cpu_pressure() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|f| f.strip_prefix("avg60="))?
        .parse()
        .ok()
}

/// Joins writer threads that each return their count of commits and their
/// latency histogram; returns the total and the merged histogram.
fn join_writers(
    handles: Vec<thread::ScopedJoinHandle<'_, (u64, HistogramSnapshot)>>,
) -> (u64, HistogramSnapshot) {
    let mut total = 0;
    let mut latency = HistogramSnapshot::default();
    for h in handles {
        let (n, hist) = h.join().expect("a writer thread panicked");
        total += n;
        latency.merge(&hist);
    }
    (total, latency)
}
