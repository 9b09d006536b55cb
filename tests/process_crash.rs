//! Process crash: a child process writes through `OsFs` on real
//! directories and reports every acknowledged record to the parent before
//! it goes on; the parent SIGKILLs it at a seeded random moment, reopens
//! the directories and checks that everything acknowledged is there, once,
//! in order (and nothing that was never written).
//!
//! The child is this test executable run again with only
//! `child_writer_reports_each_acknowledged_lsn` selected and the
//! `FAILWAL_CRASH_CHILD_*` variables set. Four threads append with sync
//! (group commit), a rotator closes the log and creates the next every few
//! milliseconds (now and then handing old logs to `obsolete` and deleting
//! them, which recycles files), and in failover mode a switcher forces
//! directory switches while the background monitor and prober run on real
//! time. Each acknowledgement is one line, `ack <lsn> <tag> <log>`, written
//! and flushed to stdout after `append_sync` returned; `obsolete <log>` is
//! written before logs below `<log>` may go.
//!
//! A process crash loses nothing the kernel accepted (the page cache
//! survives), so this checks the manager's own bookkeeping — LSN order
//! across threads, logs, segments and recycled files, recovery of the next
//! LSN — rather than torn writes, which `crash_recovery` covers.
//!
//! Heavy runs: `PROCESS_CRASH_RUNS=<n>` kills `n` children per mode (3 by
//! default); `PROCESS_CRASH_SEED=<n>` replays one seed (the kill point is
//! seeded; thread timing is not).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use wal_manager::{Config, Env, LogNum, Manager, Writer};
use wal_testkit::SeededRng;
use wal_testkit::durability::{
    env_u64, for_each_seed, parse_payload, payload, read_all, reopen_env,
};

const MODE_ENV: &str = "FAILWAL_CRASH_CHILD_MODE";
const SEED_ENV: &str = "FAILWAL_CRASH_CHILD_SEED";
const PRIMARY_ENV: &str = "FAILWAL_CRASH_CHILD_PRIMARY";
const SECONDARY_ENV: &str = "FAILWAL_CRASH_CHILD_SECONDARY";
const CHILD_TEST: &str = "child_writer_reports_each_acknowledged_lsn";

/// Appending threads in the child.
const THREADS: u64 = 4;
/// A child still running after this long exits on its own (the parent died).
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(120);
/// Runs per mode when `PROCESS_CRASH_RUNS` is not set.
const RUNS_DEFAULT: u64 = 3;
/// The parent kills the child after at most this many acknowledgements.
const KILL_AFTER_ACKS_MAX: u64 = 1500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Standalone,
    Failover,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Failover => "failover",
        }
    }

    fn config(self, primary: &Path, secondary: &Path) -> Config {
        match self {
            Mode::Standalone => Config::standalone(primary),
            Mode::Failover => Config::failover(primary, secondary),
        }
    }
}

#[test]
fn a_killed_standalone_writer_keeps_every_acknowledged_record() {
    run_mode(Mode::Standalone);
}

#[test]
fn a_killed_failover_writer_keeps_every_acknowledged_record() {
    run_mode(Mode::Failover);
}

fn run_mode(mode: Mode) {
    let seeds: Vec<u64> = match env_u64("PROCESS_CRASH_SEED") {
        Some(s) => vec![s],
        None => (1..=env_u64("PROCESS_CRASH_RUNS").unwrap_or(RUNS_DEFAULT)).collect(),
    };
    let test = match mode {
        Mode::Standalone => "a_killed_standalone_writer",
        Mode::Failover => "a_killed_failover_writer",
    };
    for_each_seed(
        seeds,
        |seed| {
            format!(
                "PROCESS_CRASH_SEED={seed} cargo test --test process_crash {test} -- --nocapture"
            )
        },
        |seed| kill_and_check(mode, seed),
    );
}

/// What the child reported before it died.
#[derive(Default)]
struct Reported {
    /// LSN -> (tag, log) of every acknowledged record.
    acked: BTreeMap<u64, (u64, LogNum)>,
    /// Logs below this may have been deleted.
    obsolete_below: LogNum,
    /// Acknowledgements per thread.
    per_thread: BTreeMap<u64, u64>,
}

impl Reported {
    fn parse(&mut self, line: &str) {
        // libtest prints `test NAME ... ` without a newline before the test
        // runs, so the first report may share its line: find the marker.
        let Some(at) = line.find('@') else {
            return;
        };
        let mut words = line[at..].split_whitespace();
        match words.next() {
            Some("@ack") => {
                let mut num = || -> u64 { words.next().unwrap().parse().unwrap() };
                let (lsn, tag, log) = (num(), num(), num());
                let previous = self.acked.insert(lsn, (tag, LogNum(log)));
                assert!(previous.is_none(), "the child acknowledged LSN {lsn} twice");
                *self.per_thread.entry(tag >> 32).or_default() += 1;
            }
            Some("@obsolete") => {
                let log = LogNum(words.next().unwrap().parse().unwrap());
                self.obsolete_below = self.obsolete_below.max(log);
            }
            _ => {}
        }
    }
}

fn kill_and_check(mode: Mode, seed: u64) {
    let mut rng = SeededRng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let (primary, secondary) = (tmp.path().join("primary"), tmp.path().join("secondary"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(MODE_ENV, mode.name())
        .env(SEED_ENV, seed.to_string())
        .env(PRIMARY_ENV, &primary)
        .env(SECONDARY_ENV, &secondary)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let kill_after = 1 + rng.below(KILL_AFTER_ACKS_MAX);
    let mut reported = Reported::default();
    // Lines arrive through a thread, so that a child that stops reporting
    // without exiting fails the test instead of hanging it.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if lines_tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut killed = false;
    let deadline = Instant::now() + CHILD_LIFETIME_MAX;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!(
                    "the child stopped reporting after {} acknowledgements (asked for {kill_after})",
                    reported.acked.len()
                );
            }
        };
        // A line cut short by the kill was not a complete report.
        if line.ends_with('\n') {
            reported.parse(&line);
        }
        if !killed && reported.acked.len() as u64 >= kill_after {
            std::thread::sleep(Duration::from_micros(rng.below(3000)));
            child.kill().unwrap(); // SIGKILL
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    let child_stderr = stderr_reader.join().unwrap();
    assert!(
        killed,
        "the child ended on its own ({status}) after {} acknowledgements:\n{child_stderr}",
        reported.acked.len()
    );
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the child died of SIGKILL, not {status}:\n{child_stderr}"
        );
    }
    assert!(
        !child_stderr.contains("panicked"),
        "a thread of the child panicked before the kill:\n{child_stderr}"
    );

    let required = check_recovered(mode, &primary, &secondary, &reported);
    eprintln!(
        "process_crash {} seed {seed}: killed after {} acknowledgements (asked for {kill_after}), logs below {} obsolete, {required} acknowledgements checked",
        mode.name(),
        reported.acked.len(),
        reported.obsolete_below
    );
}

/// Reopens the directories in this process and checks them against what the
/// child reported. Returns how many acknowledgements had to be found.
fn check_recovered(mode: Mode, primary: &Path, secondary: &Path, reported: &Reported) -> usize {
    let env = reopen_env();
    let config = mode.config(primary, secondary);
    let manager = Manager::open_with(&config, env)
        .unwrap_or_else(|e| panic!("reopening after the kill failed: {e}"));
    let recovered = read_all(&manager).unwrap_or_else(|e| panic!("{e}"));
    let summary = &recovered.summary;

    let mut found = BTreeMap::new();
    let mut last_counter: BTreeMap<u64, u64> = BTreeMap::new();
    for r in &recovered.records {
        let Some((tag, 0)) = parse_payload(&r.payload) else {
            panic!("LSN {} holds bytes the child never wrote\n{summary}", r.lsn);
        };
        let (thread, counter) = (tag >> 32, tag & 0xffff_ffff);
        // Each thread has at most one append in flight beyond what it
        // reported: anything further was never appended.
        let reported_acks = reported.per_thread.get(&thread).copied().unwrap_or(0);
        if !(thread < THREADS && counter <= reported_acks) {
            let mine: Vec<String> = reported
                .acked
                .iter()
                .filter(|(_, (tag, _))| tag >> 32 == thread)
                .map(|(lsn, (tag, log))| format!("{}@{lsn}/{}", tag & 0xffff_ffff, log.0))
                .collect();
            let read: Vec<String> = recovered
                .records
                .iter()
                .filter_map(|r| {
                    let (tag, _) = parse_payload(&r.payload)?;
                    (tag >> 32 == thread)
                        .then(|| format!("{}@{}/{}", tag & 0xffff_ffff, r.lsn, r.log.0))
                })
                .collect();
            panic!(
                "LSN {} holds record {counter} of thread {thread}, which reported only {reported_acks} acknowledgements\nreported (record@lsn/log): {}\nread: {}\n{summary}",
                r.lsn,
                mine[mine.len().saturating_sub(8)..].join(" "),
                read[read.len().saturating_sub(8)..].join(" ")
            );
        }
        if let Some(prev) = last_counter.insert(thread, counter) {
            assert!(
                prev < counter,
                "thread {thread}'s record {counter} (LSN {}) comes after its record {prev}\n{summary}",
                r.lsn
            );
        }
        found.insert(r.lsn.0, (tag, r.log));
    }
    let mut required = 0;
    for (&lsn, &(tag, log)) in &reported.acked {
        if log < reported.obsolete_below {
            continue;
        }
        required += 1;
        assert_eq!(
            found.get(&lsn),
            Some(&(tag, log)),
            "acknowledged LSN {lsn} (thread {}, record {}, log {log})\n{summary}",
            tag >> 32,
            tag & 0xffff_ffff
        );
    }
    // `required` may be zero: the kill can land just after the rotator
    // made every log that holds an acknowledgement obsolete (a log can live
    // for 2 ms without one on a loaded machine). The LSN check below still
    // holds then.
    if let Some((&max, _)) = reported.acked.last_key_value() {
        assert!(
            manager.next_lsn().0 > max,
            "next_lsn() {} is not above the acknowledged LSN {max}",
            manager.next_lsn()
        );
    }
    manager.close().unwrap();
    required
}

/// Not a test of its own: the body of the child process of the two tests
/// above, selected by the `FAILWAL_CRASH_CHILD_*` variables; it runs until
/// it is killed. Without them, it runs the same workload in this process
/// for a bounded number of records, closes it cleanly, and checks that the
/// lines it reported describe what a reader finds.
#[test]
fn child_writer_reports_each_acknowledged_lsn() {
    if let Some(mode) = std::env::var_os(MODE_ENV) {
        let mode = match mode.to_str() {
            Some("standalone") => Mode::Standalone,
            Some("failover") => Mode::Failover,
            other => panic!("{MODE_ENV}={other:?}"),
        };
        let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
        let primary = PathBuf::from(std::env::var_os(PRIMARY_ENV).unwrap());
        let secondary = PathBuf::from(std::env::var_os(SECONDARY_ENV).unwrap());
        let out = Box::new(std::io::stdout());
        child_workload(mode, seed, &primary, &secondary, out, None);
        // Only reached if the parent never killed us.
        std::process::exit(3);
    }

    for mode in [Mode::Standalone, Mode::Failover] {
        let tmp = tempfile::tempdir().unwrap();
        let (primary, secondary) = (tmp.path().join("p"), tmp.path().join("s"));
        let sink = SharedSink::default();
        child_workload(
            mode,
            11,
            &primary,
            &secondary,
            Box::new(sink.clone()),
            Some(200),
        );
        let text = String::from_utf8(sink.0.lock().clone()).unwrap();
        let mut reported = Reported::default();
        for line in text.lines() {
            reported.parse(line);
        }
        assert!(
            reported.acked.len() >= 200,
            "{}: one line per acknowledgement",
            mode.name()
        );
        check_recovered(mode, &primary, &secondary, &reported);
    }
}

/// An in-memory stdout for the in-process run.
#[derive(Clone, Default)]
struct SharedSink(Arc<Mutex<Vec<u8>>>);

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The child's work: appenders, a rotator and (failover) a switcher, until
/// killed, or until `limit` records are acknowledged (then everything is
/// closed cleanly).
fn child_workload(
    mode: Mode,
    seed: u64,
    primary: &Path,
    secondary: &Path,
    out: Box<dyn Write + Send>,
    limit: Option<u64>,
) {
    let deadline = Instant::now() + CHILD_LIFETIME_MAX;
    let config = mode.config(primary, secondary);
    let manager = Arc::new(Manager::open_with(&config, Env::os()).unwrap());
    let first = manager.create(LogNum(1)).unwrap();
    let writer: Arc<RwLock<Option<Writer>>> = Arc::new(RwLock::new(Some(first)));
    let out = Arc::new(Mutex::new(out));
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let appenders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (writer, out, acked, done) = (
                Arc::clone(&writer),
                Arc::clone(&out),
                Arc::clone(&acked),
                Arc::clone(&done),
            );
            let mut rng = SeededRng::new(seed ^ (t + 1).rotate_left(29));
            std::thread::spawn(move || {
                for counter in 0.. {
                    if done.load(Ordering::Acquire) {
                        return;
                    }
                    let tag = (t << 32) | counter;
                    let len = if rng.below(20) == 0 {
                        5_000 + rng.below(40_000) as usize
                    } else {
                        16 + rng.below(400) as usize
                    };
                    let record = payload(tag, 0, len);
                    let (lsn, log) = {
                        let guard = writer.read();
                        let w = guard.as_ref().expect("a log is open");
                        (w.append_sync(&record).unwrap(), w.log())
                    };
                    // Reported only once durable; flushed before going on.
                    let line = format!("@ack {} {tag} {}\n", lsn.0, log.0);
                    {
                        let mut out = out.lock();
                        out.write_all(line.as_bytes()).unwrap();
                        out.flush().unwrap();
                    }
                    let n = acked.fetch_add(1, Ordering::AcqRel) + 1;
                    if limit.is_some_and(|l| n >= l) {
                        done.store(true, Ordering::Release);
                        return;
                    }
                }
            })
        })
        .collect();

    let switcher = (mode == Mode::Failover).then(|| {
        let (manager, done) = (Arc::clone(&manager), Arc::clone(&done));
        let mut rng = SeededRng::new(seed.rotate_left(7));
        std::thread::spawn(move || {
            let Manager::Failover(m) = &*manager else {
                unreachable!()
            };
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_micros(500 + rng.below(8000)));
                // Refused at the segment limit: the next log starts there.
                let _ = m.force_switch();
            }
        })
    });

    // The rotator: the main thread.
    let mut rng = SeededRng::new(seed);
    let mut log = 1u64;
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_micros(2000 + rng.below(20_000)));
        assert!(Instant::now() < deadline, "the child ran for too long");
        if done.load(Ordering::Acquire) {
            break;
        }
        let mut guard = writer.write();
        guard.take().unwrap().close().unwrap();
        log += 1 + rng.below(2);
        *guard = Some(manager.create(LogNum(log)).unwrap());
        drop(guard);
        if rng.below(3) == 0 && log > 3 {
            let min = LogNum(log - 1 - rng.below(2));
            {
                let mut out = out.lock();
                out.write_all(format!("@obsolete {}\n", min.0).as_bytes())
                    .unwrap();
                out.flush().unwrap();
            }
            let files = manager.obsolete(min).unwrap();
            manager.delete_obsolete(&files).unwrap();
        }
    }
    for h in appenders {
        h.join().unwrap();
    }
    if let Some(s) = switcher {
        s.join().unwrap();
    }
    writer.write().take().unwrap().close().unwrap();
    let Ok(manager) = Arc::try_unwrap(manager) else {
        panic!("the manager is still shared")
    };
    manager.close().unwrap();
}
