//! A failover manager on an in-memory disk with fault injection, a manual
//! clock and a manual driver, stepped by script commands (see
//! `crates/wal-manager/tests/testdata/failover/*.txt` and the suite `failover_scripts`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wal_fs::{
    ErrorFs, Fault, Injector, LatencyControl, LatencyFs, MemFs, Op, OpFilter, Rule, RuleId, Stall,
};
use wal_manager::failover::writer::{FailoverWriter, SegmentRole, SegmentState, SegmentStatus};
use wal_manager::reader::SegmentEnd;
use wal_manager::{
    Config, DirId, Driver, Env, FailoverManager, HumanDuration, LogEnd, LogNum, Lsn, Manager,
    ManualClock, Writer,
};

use crate::datadriven::Command;

pub const PRIMARY: &str = "/wal/primary";
pub const SECONDARY: &str = "/wal/secondary";

/// Pebble's test harness settings: probe every 100 ms, healthy below 50 ms,
/// healthy interval 200 ms (2 probes), sample every 75 ms, unhealthy above
/// 50 ms.
pub fn test_config() -> Config {
    let mut c = Config::failover(PRIMARY, SECONDARY);
    let f = &mut c.failover;
    f.probe_interval = HumanDuration::millis(100);
    f.healthy_probe_latency_threshold = HumanDuration::millis(50);
    f.healthy_interval = HumanDuration::millis(200);
    f.unhealthy_sampling_interval = HumanDuration::millis(75);
    f.unhealthy_op_latency_threshold = HumanDuration::millis(50);
    c
}

/// The fs stack of the harness over one in-memory disk.
pub struct Disk {
    pub mem: MemFs,
    pub injector: Injector,
    pub stalls: LatencyControl,
    pub fs: Arc<dyn wal_fs::Fs>,
}

impl Disk {
    /// A manager environment on this disk for both directories: a manual
    /// clock and the manual driver.
    pub fn env(&self) -> Env {
        Env {
            primary_fs: Arc::clone(&self.fs),
            secondary_fs: Arc::clone(&self.fs),
            clock: Arc::new(ManualClock::new()),
            driver: Driver::Manual,
            archive: None,
        }
    }

    pub fn new(mem: MemFs) -> Disk {
        let errors = ErrorFs::new(mem.clone());
        let injector = errors.injector().clone();
        let latency = LatencyFs::new(errors);
        let stalls = latency.control().clone();
        Disk {
            mem,
            injector,
            stalls,
            fs: Arc::new(latency),
        }
    }
}

/// A write waiting for durability on another thread.
struct Pending {
    lsns: std::ops::Range<Lsn>,
    handle: JoinHandle<Result<(), String>>,
}

pub struct Harness {
    pub disk: Disk,
    pub clock: ManualClock,
    pub config: Config,
    pub manager: Option<Manager>,
    pub writer: Option<Arc<Writer>>,
    stalls: BTreeMap<String, Stall>,
    rules: BTreeMap<String, Vec<RuleId>>,
    pending: Vec<Pending>,
    close: Option<JoinHandle<String>>,
    next_tick: Duration,
    next_probe: Option<Duration>,
}

fn dir_path(which: &str) -> &'static str {
    match which {
        "primary" => PRIMARY,
        "secondary" => SECONDARY,
        other => panic!("unknown directory {other:?}: primary or secondary"),
    }
}

fn parse_ops(spec: &str) -> Vec<Op> {
    spec.split(',')
        .map(|o| match o {
            "create" => Op::Create,
            "write" => Op::Write,
            "sync" => Op::Sync,
            "sync-dir" => Op::SyncDir,
            "remove" => Op::Remove,
            "open" => Op::Open,
            "reuse" => Op::ReuseForWrite,
            "prepare" => Op::PrepareAhead,
            other => panic!("unknown op {other:?}"),
        })
        .collect()
}

fn parse_duration(s: &str) -> Duration {
    s.parse::<HumanDuration>()
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

fn short(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Polls `done` every millisecond until it holds (true) or 20 s passed
/// (false): the harness's patience with background threads.
fn poll_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn dir_name(d: DirId) -> &'static str {
    d.name()
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            disk: Disk::new(MemFs::new()),
            clock: ManualClock::new(),
            config: test_config(),
            manager: None,
            writer: None,
            stalls: BTreeMap::new(),
            rules: BTreeMap::new(),
            pending: Vec::new(),
            close: None,
            next_tick: Duration::ZERO,
            next_probe: None,
        }
    }

    pub fn failover(&self) -> &FailoverManager {
        match self.manager.as_ref().expect("init first") {
            Manager::Failover(m) => m,
            Manager::Standalone(_) => panic!("not a failover manager"),
        }
    }

    fn writer(&self) -> &Writer {
        self.writer.as_deref().expect("create a log first")
    }

    pub fn open(&mut self) -> Result<(), wal_manager::Error> {
        let env = Env {
            primary_fs: Arc::clone(&self.disk.fs),
            secondary_fs: Arc::clone(&self.disk.fs),
            clock: Arc::new(self.clock.clone()),
            driver: Driver::Manual,
            archive: None,
        };
        self.manager = Some(Manager::open_with(&self.config, env)?);
        let sampling = self.config.failover.unhealthy_sampling_interval.0;
        self.next_tick = self.clock_now() + sampling;
        self.next_probe = None;
        Ok(())
    }

    fn clock_now(&self) -> Duration {
        use wal_manager::Clock;
        self.clock.now()
    }

    /// Runs one script command and returns its output.
    pub fn run(&mut self, cmd: &Command) -> String {
        match cmd.name.as_str() {
            "init" => {
                if cmd.get("enabled") == Some("false") {
                    self.config.failover.enabled = false;
                }
                if let Some(n) = cmd.get("segments-max") {
                    self.config.failover.segments_per_log_max = n.parse().unwrap();
                }
                match self.open() {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("error: {e}"),
                }
            }
            "create" => {
                let log = LogNum(cmd.num("log", 1));
                match self.manager.as_ref().expect("init first").create(log) {
                    Ok(w) => {
                        self.writer = Some(Arc::new(w));
                        "ok".into()
                    }
                    Err(e) => format!("error: {e}"),
                }
            }
            "write" => self.write(cmd),
            "wait" => self.wait(),
            "stall" => {
                let which = cmd.positional(0).expect("stall primary|secondary");
                let ops = parse_ops(cmd.get("ops").unwrap_or("write,sync"));
                let stall = self
                    .disk
                    .stalls
                    .stall(OpFilter::ops(ops).in_dir(dir_path(which)));
                self.stalls.insert(which.to_owned(), stall);
                "ok".into()
            }
            "unstall" => {
                let which = cmd.positional(0).expect("unstall primary|secondary");
                if let Some(s) = self.stalls.remove(which) {
                    s.release();
                }
                "ok".into()
            }
            "wait-blocked" => {
                let n = cmd.num("n", 1) as usize;
                if self
                    .disk
                    .stalls
                    .wait_until_blocked(n, Duration::from_secs(20))
                {
                    format!("{n} blocked")
                } else {
                    format!("timed out: {} blocked", self.disk.stalls.blocked_count())
                }
            }
            "fail" => {
                let which = cmd.positional(0).expect("fail primary|secondary");
                let ops = parse_ops(cmd.get("ops").expect("ops=..."));
                let mut filter = OpFilter::ops(ops).in_dir(dir_path(which));
                if let Some(name) = cmd.get("file") {
                    filter = filter.path_suffix(name);
                }
                let mut rule = Rule::new(filter, Fault::Eio);
                if let Some(t) = cmd.get("times") {
                    rule = rule.times(t.parse().unwrap());
                }
                let id = self.disk.injector.add(rule);
                self.rules.entry(which.to_owned()).or_default().push(id);
                "ok".into()
            }
            "heal" => {
                let which = cmd.positional(0).expect("heal primary|secondary");
                for id in self.rules.remove(which).unwrap_or_default() {
                    self.disk.injector.remove(id);
                }
                "ok".into()
            }
            "advance" => {
                let d = parse_duration(cmd.positional(0).expect("advance DURATION"));
                self.advance(d)
            }
            "tick" => {
                self.settle();
                let before = self.failover().current_dir();
                let hedges = self.hedges();
                let next = self.failover().tick_monitor();
                let after = self.failover().current_dir();
                let mut out = if before == after {
                    format!("stay on {after}")
                } else {
                    format!("switch {before} -> {after}")
                };
                if self.hedges() > hedges {
                    out.push_str("; hedge into the standby");
                }
                if cmd.has("deadline") {
                    let _ = write!(out, "; next check at {next:?}");
                }
                out
            }
            "force-switch" => match self.failover().force_switch() {
                Ok(to) => format!("now on {to}"),
                Err(e) => format!("refused: {e}; now on {}", self.failover().current_dir()),
            },
            "wait-error" => self.wait_error(),
            "wait-waiter" => {
                let Some(Writer::Failover(w)) = self.writer.as_deref() else {
                    return "no failover writer".into();
                };
                if poll_until(|| w.has_waiter()) {
                    "an appender waits".into()
                } else {
                    "timed out".into()
                }
            }
            "wait-idle" => {
                // Until no segment in the directory has an operation running
                // (a released stall's parked sync has returned).
                let which = cmd.positional(0).expect("wait-idle primary|secondary");
                let Some(Writer::Failover(w)) = self.writer.as_deref() else {
                    return "no failover writer".into();
                };
                let idle = poll_until(|| {
                    !w.segments()
                        .iter()
                        .any(|s| dir_name(s.dir) == which && s.op_running_for.is_some())
                });
                if idle {
                    format!("{which} idle")
                } else {
                    "timed out".into()
                }
            }
            "settle" => {
                self.settle();
                "ok".into()
            }
            "quiesce" => self.quiesce(),
            "segments" => self.segments(),
            "list" => self.list(),
            "stats" => self.stats(),
            "close" => {
                let w = Arc::clone(self.writer.as_ref().expect("create a log first"));
                if cmd.has("async") {
                    self.close = Some(std::thread::spawn(move || close_output(&w)));
                    "closing".into()
                } else {
                    close_output(&w)
                }
            }
            "wait-close" => {
                let h = self.close.take().expect("close async first");
                assert!(poll_until(|| h.is_finished()), "close did not finish");
                h.join().unwrap()
            }
            "closing?" => {
                let h = self.close.as_ref().expect("close async first");
                // Give the close a moment to finish if it can.
                std::thread::sleep(Duration::from_millis(50));
                if h.is_finished() {
                    "finished"
                } else {
                    "still closing"
                }
                .into()
            }
            "read" => self.read(LogNum(cmd.num("log", 1))),
            "files" => self.files(),
            "corrupt" => {
                let path = self.file_path(cmd);
                let offset = self.offset(cmd, &path);
                let bytes = hex(cmd.get("bytes").unwrap_or("ff"));
                let mut data = self.disk.mem.read_file(&path).unwrap();
                for (i, b) in bytes.iter().enumerate() {
                    data[offset + i] ^= b;
                }
                self.disk.mem.write_file(&path, &data).unwrap();
                "ok".into()
            }
            "truncate" => {
                let path = self.file_path(cmd);
                let len = self.offset(cmd, &path);
                let data = self.disk.mem.read_file(&path).unwrap();
                self.disk.mem.write_file(&path, &data[..len]).unwrap();
                "ok".into()
            }
            "append-garbage" => {
                let path = self.file_path(cmd);
                let n = cmd.num("n", 100) as usize;
                let mut data = self.disk.mem.read_file(&path).unwrap();
                data.extend((0..n).map(|i| (i as u8).wrapping_mul(151).wrapping_add(7)));
                self.disk.mem.write_file(&path, &data).unwrap();
                "ok".into()
            }
            "reopen" => {
                self.drop_all();
                match self.open() {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("error: {e}"),
                }
            }
            "next-lsn" => format!("{}", self.manager.as_ref().unwrap().next_lsn()),
            other => panic!("line {}: unknown command {other:?}", cmd.line),
        }
    }

    fn write(&mut self, cmd: &Command) -> String {
        let n = cmd.num("n", 1) as usize;
        let size = cmd.num("size", 16) as usize;
        let sync = cmd.has("sync");
        let payloads: Vec<Vec<u8>> = (0..n).map(|i| payload(size, i)).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let w = Arc::clone(self.writer.as_ref().expect("create a log first"));
        if cmd.has("async") {
            let lsns = match w.append_batch_nowait(&refs) {
                Ok(l) => l,
                Err(e) => return format!("error: {e}"),
            };
            let last = Lsn(lsns.end.0 - 1);
            let handle = std::thread::spawn(move || {
                if sync {
                    w.wait_durable(last).map_err(|e| e.to_string())
                } else {
                    Ok(())
                }
            });
            let out = format!("{} (waiting)", range(&lsns));
            self.pending.push(Pending { lsns, handle });
            return out;
        }
        match if sync {
            w.append_batch_sync(&refs)
        } else {
            w.append_batch_nowait(&refs)
        } {
            Ok(lsns) => range(&lsns),
            Err(e) => format!("error: {e}"),
        }
    }

    fn wait(&mut self) -> String {
        let mut out = String::new();
        for p in self.pending.drain(..) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !p.handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if !p.handle.is_finished() {
                // Left running: the writer never resolved it.
                let _ = writeln!(out, "{}: still waiting", range(&p.lsns));
                continue;
            }
            match p.handle.join().unwrap() {
                Ok(()) => {
                    let _ = writeln!(out, "{}: durable", range(&p.lsns));
                }
                Err(e) => {
                    let _ = writeln!(out, "{}: error: {e}", range(&p.lsns));
                }
            }
        }
        if out.is_empty() {
            out.push_str("nothing pending");
        }
        out
    }

    /// Waits until no segment is being created or closed in the background,
    /// unless that is held by a stall (then waits until it is parked).
    pub fn settle(&self) {
        let Some(Writer::Failover(w)) = self.writer.as_deref() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A creation or a background close is settled when it
            // finished, or when it is inside an operation on a stalled
            // directory (parked there).
            let unsettled = w.segments().into_iter().find(|s| {
                matches!(s.state, SegmentState::Creating | SegmentState::Closing)
                    && !(self.stalls.contains_key(dir_name(s.dir)) && s.op_running_for.is_some())
            });
            let Some(seg) = unsettled else { return };
            assert!(
                Instant::now() < deadline,
                "segment {} never got created or closed",
                seg.path.display()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Advances the clock by `d`, running the prober and the monitor at
    /// their intervals, in time order (probe first when they coincide).
    fn advance(&mut self, d: Duration) -> String {
        let target = self.clock_now() + d;
        let sampling = self.config.failover.unhealthy_sampling_interval.0;
        let probe_interval = self.config.failover.probe_interval.0;
        let mut out = String::new();
        loop {
            let next_probe = self.next_probe.unwrap_or(Duration::MAX);
            let next = self.next_tick.min(next_probe);
            if next > target {
                break;
            }
            // Let any segment creation a previous tick started reach its
            // first operation before time moves, so its recorded start is
            // the time of the switch.
            self.settle();
            self.clock.set(next);
            if next == next_probe {
                self.next_probe = Some(next + probe_interval);
                let blocked = self.disk.stalls.blocked_count();
                let probe = self.failover().start_probe();
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    if let Some(result) = probe.wait(Duration::from_millis(1)) {
                        if let Some(latency) = result {
                            let _ = writeln!(out, "{}: probe {}", ms(next), ms(latency));
                        }
                        break;
                    }
                    if self.disk.stalls.blocked_count() > blocked {
                        let _ = writeln!(out, "{}: probe stalled", ms(next));
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "probe neither finished nor stalled"
                    );
                }
            }
            if next == self.next_tick {
                self.next_tick = next + sampling;
                let before = self.failover().current_dir();
                let hedges = self.hedges();
                self.failover().tick_monitor();
                let after = self.failover().current_dir();
                if self.hedges() > hedges {
                    let _ = writeln!(out, "{}: hedge into the standby", ms(next));
                }
                if before != after {
                    let _ = writeln!(out, "{}: switch {before} -> {after}", ms(next));
                    self.next_probe = (after == DirId::Secondary).then_some(next + probe_interval);
                }
            }
        }
        self.clock.set(target);
        if out.is_empty() {
            format!("{}: on {}", ms(target), self.failover().current_dir())
        } else {
            out
        }
    }

    /// Waits until the newest segment records an error (an injected fault
    /// reached it), so that the next monitor sample sees it.
    fn wait_error(&self) -> String {
        let Some(Writer::Failover(w)) = self.writer.as_deref() else {
            return "no failover writer".into();
        };
        let mut error = None;
        poll_until(|| {
            error = current_segment(w).and_then(|s| s.error);
            error.is_some()
        });
        error.unwrap_or_else(|| "timed out".into())
    }

    /// Waits until no segment is being created or closed.
    fn quiesce(&self) -> String {
        let Some(Writer::Failover(w)) = self.writer.as_deref() else {
            return "ok".into();
        };
        let settled = poll_until(|| {
            !w.segments()
                .iter()
                .any(|s| matches!(s.state, SegmentState::Creating | SegmentState::Closing))
        });
        if settled { "ok" } else { "timed out" }.into()
    }

    fn segments(&self) -> String {
        let Some(Writer::Failover(w)) = self.writer.as_deref() else {
            return "no failover writer".into();
        };
        self.settle();
        let mut out = String::new();
        for s in w.segments() {
            let state = match s.state {
                SegmentState::Creating => "creating".to_owned(),
                SegmentState::Open => "open".to_owned(),
                SegmentState::Failed(r) => format!("failed: {r}"),
                SegmentState::Closing => "closing".to_owned(),
                SegmentState::Closed => "closed".to_owned(),
                SegmentState::CloseFailed(r) => format!("close failed: {r}"),
            };
            let role = match s.role {
                SegmentRole::Standby => " (standby)",
                SegmentRole::Current | SegmentRole::LeftBehind => "",
            };
            let _ = writeln!(
                out,
                "{} {} {}{role}: {state}",
                s.index.0,
                dir_name(s.dir),
                short(&s.path)
            );
        }
        out
    }

    fn list(&self) -> String {
        let mut out = String::new();
        for log in self.manager.as_ref().unwrap().list() {
            let segs: Vec<String> = log
                .segments
                .iter()
                .map(|s| format!("{} ({})", short(&s.path), dir_name(s.dir)))
                .collect();
            if segs.is_empty() {
                let _ = writeln!(out, "log {}: no segments", log.num.0);
            } else {
                let _ = writeln!(out, "log {}: {}", log.num.0, segs.join(", "));
            }
        }
        if out.is_empty() {
            out.push_str("no logs");
        }
        out
    }

    fn stats(&self) -> String {
        let s = self.manager.as_ref().unwrap().stats();
        let f = s.failover.unwrap_or_default();
        let mut out = format!(
            "switches={} dir={} live-files={} next-lsn={}",
            f.switches,
            f.current_dir.map_or("-", DirId::name),
            s.live_files,
            s.next_lsn
        );
        if f.hedges > 0 || f.stranded {
            let _ = write!(
                out,
                " hedges={} standby-bytes={} stranded={}",
                f.hedges, f.standby_bytes, f.stranded
            );
        }
        out
    }

    /// Hedges so far, over every log.
    fn hedges(&self) -> u64 {
        let s = self.manager.as_ref().unwrap().stats();
        s.failover.map_or(0, |f| f.hedges)
    }

    fn read(&self, log: LogNum) -> String {
        let m = self.manager.as_ref().unwrap();
        let mut reader = match m.open_reader(log) {
            Ok(r) => r,
            Err(e) => return format!("error: {e}"),
        };
        let mut lsns = Vec::new();
        let mut error = None;
        loop {
            match reader.next() {
                Ok(Some(r)) => lsns.push(r.lsn.0),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        let mut out = String::new();
        match (lsns.first(), lsns.last()) {
            (Some(a), Some(b)) => {
                let _ = writeln!(out, "lsns {a}..={b} ({} records)", lsns.len());
            }
            _ => out.push_str("no records\n"),
        }
        for r in reader.reports() {
            let end = match &r.end {
                SegmentEnd::Unread => "unread".to_owned(),
                SegmentEnd::Missing => "missing".to_owned(),
                SegmentEnd::Clean(e) => format!("clean at {}", e.offset()),
                SegmentEnd::TornTail(e) => format!("torn tail at {}", e.offset().unwrap_or(0)),
                SegmentEnd::CorruptSkipped(e) => {
                    format!("corrupt at {}, skipped", e.offset().unwrap_or(0))
                }
                SegmentEnd::Corrupt(e) => format!("corrupt at {}", e.offset().unwrap_or(0)),
            };
            let _ = writeln!(
                out,
                "  {}: {} records, {} duplicates, {end}",
                short(&r.segment.path),
                r.records,
                r.duplicates
            );
        }
        match (error, reader.end()) {
            (Some(e), _) => {
                let _ = writeln!(out, "error: {e}");
            }
            (None, Some(LogEnd::Clean)) => out.push_str("end: clean\n"),
            (None, Some(LogEnd::TornTail { path, offset })) => {
                let _ = writeln!(out, "end: torn tail in {} at {offset}", short(path));
            }
            (None, None) => out.push_str("end: ?\n"),
        }
        out
    }

    fn files(&self) -> String {
        // Older segments close in the background: list them once closed.
        self.settle();
        let mut out = String::new();
        for f in self.disk.mem.files() {
            let _ = writeln!(out, "{} {}", f.path.display(), f.len);
        }
        out
    }

    fn file_path(&self, cmd: &Command) -> PathBuf {
        let which = cmd.positional(0).expect("primary|secondary");
        let name = cmd.positional(1).expect("file name");
        Path::new(dir_path(which)).join(name)
    }

    fn offset(&self, cmd: &Command, path: &Path) -> usize {
        let len = self.disk.mem.read_file(path).unwrap().len() as i64;
        let off: i64 = cmd.get("offset").expect("offset=N").parse().unwrap();
        if off < 0 {
            (len + off) as usize
        } else {
            off as usize
        }
    }

    /// Releases every stall and drops the writer and the manager.
    pub fn drop_all(&mut self) {
        for (_, s) in std::mem::take(&mut self.stalls) {
            s.release();
        }
        for (_, ids) in std::mem::take(&mut self.rules) {
            for id in ids {
                self.disk.injector.remove(id);
            }
        }
        let _ = self.wait();
        if let Some(h) = self.close.take() {
            let _ = h.join();
        }
        self.writer = None;
        if let Some(m) = self.manager.take() {
            let _ = m.close();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.drop_all();
    }
}

fn close_output(w: &Writer) -> String {
    match w.close() {
        Ok(size) => format!("closed size={size}"),
        Err(e) => format!("error: {e}"),
    }
}

/// The payload of record `i` of a write command: 16 bytes by default.
pub fn payload(size: usize, i: usize) -> Vec<u8> {
    (0..size).map(|j| (i * 31 + j) as u8).collect()
}

fn range(lsns: &std::ops::Range<Lsn>) -> String {
    if lsns.end.0 == lsns.start.0 + 1 {
        format!("lsn {}", lsns.start)
    } else {
        format!("lsns {}..={}", lsns.start, lsns.end.0 - 1)
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The segment of `w` that appends go to (not the standby), if any.
pub fn current_segment(w: &FailoverWriter) -> Option<SegmentStatus> {
    w.segments()
        .into_iter()
        .find(|s| s.role == SegmentRole::Current)
}
