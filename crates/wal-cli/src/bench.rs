//! `wal bench`: appends from N threads for a while through the configured
//! manager and reports throughput and the latency appenders saw.
//!
//! Logs are rotated like an engine rotates memtables: once the current log
//! holds `--log-size-max` bytes of records, the thread that notices takes the
//! write side of the lock around the current writer, closes it and creates
//! the next log. Appenders hold the read side across their append (and its
//! wait for durability), so a rotation waits for appends in flight and no
//! append can reach a writer that is being closed; an append that has to
//! wait for a rotation counts that wait in its latency, as its caller would.
//!
//! With `--timeline`, each writer also counts every acknowledged append in
//! its own lane of time buckets, and the main thread's watch loop polls the
//! manager for failover events (`crate::timeline`). Without it the writer
//! loop is instantiated with `NoTimeline` and records nothing.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use wal_archive::Archiver;
use wal_manager::layout::parse_segment_file_name;
use wal_manager::{Env, HumanSize, LogArchive, LogNum, Manager, Writer};
use wal_record::{Histogram, HistogramSnapshot};

use crate::cli::BenchArgs;
use crate::failure::Failure;
use crate::progress::{PROGRESS_INTERVAL, Progress};
use crate::stats::human;
use crate::target::{Need, Target};
use crate::timeline::{self, Completions, Destination, NoTimeline, Recorder, RunInfo, Timeline};

/// Bytes of the payload header: writer id and record counter.
const RECORD_SIZE_MIN: usize = 16;
/// Most appending threads.
const WRITERS_MAX: usize = 1024;
/// Longest run, in seconds (a week).
const DURATION_MAX_SECS: f64 = 7.0 * 24.0 * 3600.0;
/// How long the bench waits for the archive to catch up after its run.
const ARCHIVE_WAIT_MAX: Duration = Duration::from_secs(300);
/// How often the main thread looks whether the writers are done.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The validated arguments.
#[derive(Clone, Copy, Debug)]
struct Plan {
    writers: usize,
    record_size: usize,
    duration: Duration,
    sync: bool,
    log_size_max: u64,
}

impl Plan {
    /// Checks the arguments that do not depend on the configuration.
    fn new(args: &BenchArgs) -> Result<Plan, Failure> {
        if !(1..=WRITERS_MAX).contains(&args.writers) {
            return Err(Failure::usage(format!(
                "--writers {}: must be between 1 and {WRITERS_MAX}",
                args.writers
            )));
        }
        if args.record_size < RECORD_SIZE_MIN {
            return Err(Failure::usage(format!(
                "--record-size {}: must be at least {RECORD_SIZE_MIN} (the writer id and the counter)",
                args.record_size
            )));
        }
        if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= DURATION_MAX_SECS)
        {
            return Err(Failure::usage(format!(
                "--duration {}: must be a number of seconds above 0 and at most {DURATION_MAX_SECS}",
                args.duration
            )));
        }
        let log_size_max = args
            .log_size_max
            .parse::<HumanSize>()
            .map_err(|e| Failure::usage(format!("--log-size-max: {e}")))?
            .0;
        if log_size_max == 0 {
            return Err(Failure::usage("--log-size-max 0: must be above 0"));
        }
        Ok(Plan {
            writers: args.writers,
            record_size: args.record_size,
            duration: Duration::from_secs_f64(args.duration),
            sync: args.sync,
            log_size_max,
        })
    }

    /// Checks the record size against the configuration's limit.
    fn check_against(&self, target: &Target) -> Result<(), Failure> {
        let record_size_max = target.config.writer.record_size_max.0;
        if self.record_size as u64 > record_size_max {
            return Err(Failure::usage(format!(
                "--record-size {}: above writer.record_size_max = {}",
                self.record_size,
                HumanSize(record_size_max)
            )));
        }
        Ok(())
    }
}

/// A counter on its own cache line, so writers do not slow each other down.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Counter(AtomicU64);

/// What the writer threads share.
struct Shared<'m> {
    manager: &'m Manager,
    plan: Plan,
    deadline: Instant,
    /// The open log's writer. Appenders hold the read side across an append;
    /// a rotation holds the write side while it closes and replaces it.
    current: RwLock<Arc<Writer>>,
    /// Record bytes appended to the current log.
    log_bytes: AtomicU64,
    /// Set on the first error: every writer stops.
    stop: AtomicBool,
    error: Mutex<Option<String>>,
    /// Records acknowledged, per writer.
    acked: Vec<Counter>,
}

impl Shared<'_> {
    fn fail(&self, message: String) {
        self.stop.store(true, Ordering::Release);
        let mut error = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        error.get_or_insert(message);
    }

    fn acked_total(&self) -> u64 {
        self.acked.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }

    /// Closes log `seen` and creates the next one, unless another thread
    /// already did.
    fn rotate(&self, seen: LogNum) -> Result<(), wal_manager::Error> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.log() != seen {
            return Ok(());
        }
        current.close()?;
        *current = Arc::new(self.manager.create(LogNum(seen.0 + 1))?);
        self.log_bytes.store(0, Ordering::Relaxed);
        Ok(())
    }
}

/// The payload of writer `id`: its id, room for the counter, then filler.
fn initial_payload(id: usize, size: usize) -> Vec<u8> {
    let mut payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    payload[..8].copy_from_slice(&(id as u64).to_le_bytes());
    payload
}

/// One appending thread; returns its latency histogram and `completions`,
/// which saw every acknowledged append.
fn worker<C: Completions>(
    shared: &Shared<'_>,
    id: usize,
    mut completions: C,
) -> (HistogramSnapshot, C) {
    let latency = Histogram::new();
    let mut payload = initial_payload(id, shared.plan.record_size);
    let size = payload.len() as u64;
    let mut counter = 0u64;
    while !shared.stop.load(Ordering::Acquire) && Instant::now() < shared.deadline {
        payload[8..16].copy_from_slice(&counter.to_le_bytes());
        let start = Instant::now();
        let (result, log) = {
            let writer = shared
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let result = if shared.plan.sync {
                writer.append_sync(&payload)
            } else {
                writer.append_nowait(&payload)
            };
            (result, writer.log())
        };
        let end = Instant::now();
        let took = end.saturating_duration_since(start);
        if let Err(e) = result {
            shared.fail(format!(
                "writer {id}: append of record {counter} to log {log} failed: {e}"
            ));
            break;
        }
        latency.record_duration(took);
        completions.record(end, took);
        counter += 1;
        shared.acked[id].0.store(counter, Ordering::Relaxed);
        if shared.log_bytes.fetch_add(size, Ordering::Relaxed) + size >= shared.plan.log_size_max {
            if let Err(e) = shared.rotate(log) {
                shared.fail(format!("rotating from log {log} failed: {e}"));
                break;
            }
        }
    }
    (latency.snapshot(), completions)
}

/// What a run measured.
#[derive(Debug)]
struct Outcome {
    acked: Vec<u64>,
    latency: HistogramSnapshot,
    secs: f64,
    first_log: LogNum,
    last_log: LogNum,
    dir_switches: u64,
    /// The manager's figures at the end of the run.
    stats: wal_manager::Stats,
    error: Option<String>,
    /// What the archive did, when one is configured.
    archived: Option<String>,
    /// With `--timeline`: what was recorded, until it is written.
    timeline: Option<Timeline>,
    /// Where the timeline was written, and what it holds.
    timeline_written: Option<(PathBuf, String)>,
}

/// Runs the writers, shows progress, closes the last writer; records a
/// timeline if `timeline`.
fn drive(manager: &Manager, plan: Plan, timeline: bool) -> Result<Outcome, Failure> {
    let first_log = manager.next_log_num();
    let writer = manager.create(first_log)?;
    let start = Instant::now();
    let mut recorder =
        timeline.then(|| Recorder::start(manager, start, plan.duration, plan.writers));
    let shared = Shared {
        manager,
        plan,
        deadline: start + plan.duration,
        current: RwLock::new(Arc::new(writer)),
        log_bytes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        error: Mutex::new(None),
        acked: (0..plan.writers).map(|_| Counter::default()).collect(),
    };
    let mut latency = HistogramSnapshot::default();
    thread::scope(|s| {
        let handles: Vec<_> = (0..plan.writers)
            .map(|id| {
                let shared = &shared;
                // Two instances of the loop: without a timeline it records
                // into `NoTimeline`, which compiles to nothing.
                let lane = recorder.as_ref().map(Recorder::lane);
                s.spawn(move || match lane {
                    Some(lane) => {
                        let (snapshot, lane) = worker(shared, id, lane);
                        (snapshot, Some(lane))
                    }
                    None => (worker(shared, id, NoTimeline).0, None),
                })
            })
            .collect();
        watch(&shared, start, recorder.as_mut(), || {
            handles.iter().all(thread::ScopedJoinHandle::is_finished)
        });
        for h in handles {
            match h.join() {
                Ok((snapshot, lane)) => {
                    latency.merge(&snapshot);
                    if let (Some(r), Some(lane)) = (&mut recorder, &lane) {
                        r.add(lane);
                    }
                }
                Err(_) => shared.fail("a writer thread panicked".into()),
            }
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let writer = shared
        .current
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let mut error = shared
        .error
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = writer.close() {
        error.get_or_insert(format!("closing log {} failed: {e}", writer.log()));
    }
    let stats = manager.stats();
    Ok(Outcome {
        acked: shared
            .acked
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .collect(),
        latency,
        secs,
        first_log,
        last_log: writer.log(),
        dir_switches: stats.failover.as_ref().map_or(0, |f| f.switches),
        stats,
        error,
        archived: None,
        timeline: recorder.map(|r| r.finish(manager)),
        timeline_written: None,
    })
}

/// Waits until `done`, redrawing the progress line and polling the
/// manager for the timeline's events.
fn watch(
    shared: &Shared<'_>,
    start: Instant,
    mut recorder: Option<&mut Recorder>,
    done: impl Fn() -> bool,
) {
    let interval = recorder
        .as_ref()
        .and_then(|r| r.poll_interval())
        .map_or(POLL_INTERVAL, |i| i.min(POLL_INTERVAL));
    let mut progress = Progress::new();
    let mut next_draw = start;
    let total = shared.plan.duration.as_secs_f64();
    while !done() {
        let now = Instant::now();
        if now >= next_draw {
            let elapsed = now.duration_since(start).as_secs_f64();
            let records = shared.acked_total();
            let log = shared
                .current
                .try_read()
                .map_or_else(|_| "rotating".to_owned(), |w| format!("log {}", w.log()));
            progress.show(&format!(
                "wal bench: {elapsed:.1}s / {total:.1}s  {records} records  {:.0} records/s  {log}",
                records as f64 / elapsed.max(1e-9)
            ));
            next_draw = now + PROGRESS_INTERVAL;
        }
        if let Some(r) = recorder.as_deref_mut() {
            r.poll(shared.manager);
        }
        thread::sleep(interval);
    }
    progress.finish();
}

/// Runs `wal bench`.
///
/// # Errors
/// Bad arguments or target, `--clean` on directories holding logs, a locked
/// directory, or any failure while appending, rotating or closing (after
/// printing what was measured).
pub(crate) fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let plan = Plan::new(args)?;
    let timeline = args
        .timeline
        .as_deref()
        .map(Destination::check)
        .transpose()?;
    let target = Target::resolve(&args.target, Need::MayCreate)?;
    plan.check_against(&target)?;
    if args.clean && holds_logs(&target) {
        return Err(Failure::usage(
            "--clean deletes the logs the bench wrote, and the directories already hold logs: \
             run it on empty directories, or without --clean",
        ));
    }
    let archiver = start_archiver(&target)?;
    let env = match &archiver {
        Some(a) => Env::os().with_archive(Arc::clone(a) as Arc<dyn LogArchive>),
        None => Env::os(),
    };
    let manager = Manager::open_with(&target.config, env)?;
    let mut outcome = drive(&manager, plan, timeline.is_some());
    if let (Some(a), Ok(o)) = (&archiver, &mut outcome) {
        o.archived = Some(wait_for_archive(a, o));
        o.stats = manager.stats();
    }
    if let (Some(dest), Ok(o)) = (&timeline, &mut outcome) {
        write_timeline(dest, &run_info(&target, plan), o);
    }
    let cleaned = match &outcome {
        Ok(o) if args.clean && o.error.is_none() => Some(obsolete_logs(&manager, o.last_log)),
        _ => None,
    };
    let closed = manager.close();
    let mut outcome = outcome?;
    if let Err(e) = closed {
        outcome
            .error
            .get_or_insert(format!("closing the manager failed: {e}"));
    } else if let Some(cleaned) = cleaned {
        if let Err(e) = cleaned.and_then(|()| remove_logs(&target, &outcome)) {
            outcome.error.get_or_insert(format!("--clean: {e}"));
        }
    }
    report(&target, plan, args, &outcome, out)?;
    match outcome.error {
        Some(e) => Err(Failure::failed(e)),
        None => Ok(()),
    }
}

/// What the chart's title says about the run.
fn run_info(target: &Target, plan: Plan) -> RunInfo {
    RunInfo {
        writers: plan.writers,
        record_size: plan.record_size,
        sync: plan.sync,
        manager: manager_kind(target),
    }
}

fn manager_kind(target: &Target) -> &'static str {
    if target.config.is_failover() {
        "failover"
    } else {
        "standalone"
    }
}

/// Writes the recorded timeline to `dest` (also after a failed run: it
/// shows what led to the failure); a write that fails fails the bench.
fn write_timeline(dest: &Destination, info: &RunInfo, o: &mut Outcome) {
    let Some(t) = o.timeline.take() else {
        return;
    };
    match t.write(dest, info) {
        Ok(()) => {
            let format = match dest.format() {
                timeline::Format::Svg => "SVG chart",
                timeline::Format::Csv => "CSV",
            };
            let what = format!("{format}: {}", t.summary());
            o.timeline_written = Some((dest.path().to_path_buf(), what));
        }
        Err(e) => {
            o.error.get_or_insert(e);
        }
    }
}

/// The archiver of `[archive]`, if configured, once its store answered.
fn start_archiver(target: &Target) -> Result<Option<Arc<Archiver>>, Failure> {
    let Some(archive) = &target.config.archive else {
        return Ok(None);
    };
    let archiver = Archiver::start(archive)?;
    // A wrong key or a missing bucket is said now, before the run.
    archiver.store().check()?;
    Ok(Some(archiver))
}

/// Waits (at most `ARCHIVE_WAIT_MAX`) until the logs the bench closed are
/// archived, showing how many are left; says what was archived.
fn wait_for_archive(archiver: &Archiver, o: &mut Outcome) -> String {
    let mut progress = Progress::new();
    let deadline = Instant::now() + ARCHIVE_WAIT_MAX;
    let idle = loop {
        if archiver.wait_idle(PROGRESS_INTERVAL) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        let status = archiver.status();
        progress.show(&format!(
            "wal bench: archiving to {}: {} logs pending, {} uploaded",
            archiver.store().url(),
            status.pending,
            status.uploaded_logs
        ));
    };
    progress.finish();
    let status = archiver.status();
    let done = format!(
        "archive: {} logs uploaded to {} ({} bytes)",
        status.uploaded_logs,
        archiver.store().url(),
        status.uploaded_bytes
    );
    if idle {
        done
    } else {
        let why = status
            .last_error
            .unwrap_or_else(|| "still uploading".into());
        o.error.get_or_insert(format!(
            "the archive did not catch up within {}s: {why}",
            ARCHIVE_WAIT_MAX.as_secs()
        ));
        format!(
            "{done}; {} logs NOT archived yet (kept locally)",
            status.pending
        )
    }
}

/// Whether any directory of `target` holds a segment file.
fn holds_logs(target: &Target) -> bool {
    target.named_dirs().iter().any(|(_, dir)| {
        target
            .fs
            .list(dir)
            .is_ok_and(|names| names.iter().any(|n| parse_segment_file_name(n).is_some()))
    })
}

/// Marks the bench's logs obsolete (which makes the LSN floor durable, so
/// LSNs keep increasing once they are gone) and deletes what the manager
/// hands back.
fn obsolete_logs(manager: &Manager, last: LogNum) -> Result<(), String> {
    let files = manager
        .obsolete(LogNum(last.0 + 1))
        .map_err(|e| e.to_string())?;
    manager.delete_obsolete(&files).map_err(|e| e.to_string())
}

/// Deletes what is left of the bench's logs once the manager is closed: the
/// files its recycler kept for reuse.
fn remove_logs(target: &Target, o: &Outcome) -> Result<(), String> {
    let logs = target.scan().map_err(|e| e.to_string())?;
    let mut touched = Vec::new();
    for log in logs
        .iter()
        .filter(|l| (o.first_log..=o.last_log).contains(&l.num))
    {
        for s in &log.segments {
            target.fs.remove(&s.path).map_err(|e| e.to_string())?;
            if !touched.contains(&s.dir) {
                touched.push(s.dir);
            }
        }
    }
    // Logs the manager kept for reuse wait as `recycle-NNNNNN.log`.
    let dirs = target.dirs();
    let primary = &dirs.primary;
    for log in o.first_log.0..=o.last_log.0 {
        let path = primary
            .path
            .join(wal_manager::layout::recycle_file_name(wal_manager::LogNum(
                log,
            )));
        match target.fs.remove(&path) {
            Ok(()) => {
                if !touched.contains(&primary.id) {
                    touched.push(primary.id);
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    for id in touched {
        let dir = dirs.get(id);
        dir.fs.sync_dir(&dir.path).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Nanoseconds as microseconds.
fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn report(
    target: &Target,
    plan: Plan,
    args: &BenchArgs,
    o: &Outcome,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let records: u64 = o.acked.iter().sum();
    let bytes = records * plan.record_size as u64;
    let secs = o.secs.max(1e-9);
    let l = &o.latency;
    let kind = manager_kind(target);
    let ns = |d: u64| human(Duration::from_nanos(d));
    writeln!(out, "wal bench: {kind} manager, {}", target.describe())?;
    writeln!(
        out,
        "  {} writer{}, {}-byte records, {:.2}s, {}; logs {}..={}{}",
        plan.writers,
        if plan.writers == 1 { "" } else { "s" },
        plan.record_size,
        o.secs,
        if plan.sync {
            "each append synced"
        } else {
            "unsynced appends"
        },
        o.first_log,
        o.last_log,
        if args.clean {
            " (deleted: --clean)"
        } else {
            " (kept)"
        }
    )?;
    writeln!(
        out,
        "  {records} records ({:.0}/s), {bytes} bytes ({:.2} MB/s)",
        records as f64 / secs,
        bytes as f64 / secs / 1e6
    )?;
    writeln!(
        out,
        "  append latency: p50 {}, p99 {}, p99.9 {}, max {}, mean {}",
        ns(l.quantile(0.5)),
        ns(l.quantile(0.99)),
        ns(l.quantile(0.999)),
        ns(l.max),
        human(Duration::from_secs_f64(l.mean() / 1e9))
    )?;
    writeln!(out, "  directory switches: {}", o.dir_switches)?;
    if let Some(f) = &o.stats.failover {
        writeln!(
            out,
            "  hedges into the standby: {} ({} bytes)",
            f.hedges, f.standby_bytes
        )?;
    }
    // The manager's own figures: files, fsyncs and group sizes, time on each
    // directory.
    let mut stats = Vec::new();
    crate::stats::write_text(target, kind, &o.stats, &mut stats)?;
    for line in String::from_utf8_lossy(&stats).lines() {
        writeln!(out, "  {line}")?;
    }
    if let Some(archived) = &o.archived {
        writeln!(out, "  {archived}")?;
    }
    if let Some((path, what)) = &o.timeline_written {
        writeln!(out, "  timeline written to {} ({what})", path.display())?;
    }
    if let Some(e) = &o.error {
        writeln!(out, "  FAILED: {e}")?;
    }
    if args.json {
        let summary = json!({
            "records": records,
            "bytes": bytes,
            "secs": o.secs,
            "records_per_s": records as f64 / secs,
            "bytes_per_s": bytes as f64 / secs,
            "p50_us": us(l.quantile(0.5)),
            "p99_us": us(l.quantile(0.99)),
            "p999_us": us(l.quantile(0.999)),
            "max_us": us(l.max),
            "mean_us": l.mean() / 1e3,
            "dir_switches": o.dir_switches,
            "hedges": o.stats.failover.as_ref().map_or(0, |f| f.hedges),
            "standby_bytes": o.stats.failover.as_ref().map_or(0, |f| f.standby_bytes),
            "acked": o.acked,
            "writers": plan.writers,
            "record_size": plan.record_size,
            "sync": plan.sync,
            "manager": kind,
            "first_log": o.first_log.0,
            "last_log": o.last_log.0,
            "logs_kept": !args.clean,
            "error": o.error,
            "timeline": o.timeline_written.as_ref().map(|(p, _)| p.display().to_string()),
        });
        writeln!(out, "{summary}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_start_with_the_writer_id_and_have_the_requested_size() {
        let p = initial_payload(7, 40);
        assert_eq!(p.len(), 40);
        assert_eq!(u64::from_le_bytes(p[..8].try_into().unwrap()), 7);
    }
}
