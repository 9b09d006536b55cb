//! The failover manager: a primary and a secondary directory, a monitor that
//! moves the log between them, and a prober that tells when the primary is
//! healthy again. The rules are in [`monitor`]; the writer in [`writer`],
//! its segments, the standby and hedging in `segments`.
//!
//! # The monitor's thread
//!
//! The monitor does not sample on a fixed tick: each sample returns the
//! next moment a rule could change its verdict (the current operation
//! reaching the switch threshold, a wait reaching the hedge deadline), and
//! the thread sleeps until then, or for `unhealthy_sampling_interval` at
//! most. With nothing to time (no operation running, nobody waiting) it
//! sleeps idle, and the next operation or wait wakes it. So an operation
//! over the threshold by any margin is seen at the threshold, and a wait
//! at the hedge deadline.

pub mod monitor;
pub mod prober;
mod segments;
pub mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use wal_record::Histogram;

use crate::recorder::{LatencyWindow, MonitorWake};

use crate::config::Config;
use crate::core::Core;
use crate::env::{Driver, Env};
use crate::error::{Error, Result};
use crate::meta;
use crate::stats::{FailoverStats, Stats};
use crate::types::{DirId, LogNum};

use self::monitor::{Sample, SwitchReason, Verdict, decide};
use self::prober::{ProbeHandle, Prober};
use self::segments::dir_pos;
use self::writer::{FailoverWriter, Inner as WriterInner, MonitorView, WriterEnv};

pub use self::monitor::{SWITCH_RULES, SwitchRule};

/// Background threads (segment creation, closes of old writers) joined when
/// the manager closes.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Tasks {
    pub(crate) fn spawn(&self, name: &str, f: impl FnOnce() + Send + 'static) {
        let mut handles = self.handles.lock();
        handles.retain(|h| !h.is_finished());
        match std::thread::Builder::new().name(name.to_owned()).spawn(f) {
            Ok(h) => handles.push(h),
            Err(e) => {
                // Without a thread the task cannot run; the writer will see
                // the segment never become ready and the monitor will
                // switch. Report loudly.
                tracing::error!(task = name, error = %e, "cannot start a background task");
            }
        }
    }

    fn join_all(&self) {
        loop {
            let batch: Vec<_> = std::mem::take(&mut *self.handles.lock());
            if batch.is_empty() {
                return;
            }
            for h in batch {
                let _ = h.join();
            }
        }
    }
}

/// Per-log monitor memory (Pebble's `lastWriterInfo`): reset for each log,
/// so that an operator who fixes a misconfigured secondary is not punished
/// for its past errors.
#[derive(Debug, Default)]
struct LogHistory {
    switches: u32,
    latency_at_last_switch: Duration,
    secondary_errors: u32,
}

#[derive(Debug)]
struct MonitorState {
    dir: DirId,
    writer: Option<Arc<WriterInner>>,
    history: LogHistory,
    switches: u64,
    primary_time: Duration,
    secondary_time: Duration,
    last_accounted: Duration,
    last_failback: Option<Duration>,
    /// The no-bounce rule holds the log on a slow secondary.
    stranded: bool,
    /// The log is on the secondary because the primary failed an
    /// operation (an error switch), not for its latency.
    left_for_error: bool,
}

impl MonitorState {
    fn account(&mut self, now: Duration) {
        let d = now.saturating_sub(self.last_accounted);
        self.last_accounted = now;
        match self.dir {
            DirId::Primary => self.primary_time += d,
            DirId::Secondary => self.secondary_time += d,
        }
    }
}

#[derive(Debug)]
struct Shared {
    core: Arc<Core>,
    monitor: Mutex<MonitorState>,
    prober: Arc<Prober>,
    enabled: AtomicBool,
    /// What every writer shares (tasks, figures, latency windows, the
    /// monitor's wake-up).
    env: WriterEnv,
    stop: Mutex<bool>,
    stop_cv: Condvar,
}

/// A manager of logs in a primary and a secondary directory. See
/// [`crate::Manager`] for the common API; this type adds the failover
/// controls.
#[derive(Debug)]
pub struct FailoverManager {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    driver: Driver,
}

impl FailoverManager {
    /// Opens the manager; see [`crate::Manager::open_with`].
    ///
    /// # Errors
    /// As [`crate::Manager::open_with`], plus [`Error::WrongSecondary`] and
    /// [`Error::MissingSecondaryIdentity`].
    pub(crate) fn open(config: &Config, env: &Env) -> Result<FailoverManager> {
        let core = Arc::new(Core::open(config, env)?);
        check_identity(&core)?;
        core.attach_archive();
        let f = &config.failover;
        let prober = Arc::new(Prober::new(
            core.dirs.primary.clone(),
            Arc::clone(&core.clock),
            f.probe_interval.0,
            f.probe_size.0 as usize,
        ));
        let now = core.clock.now();
        let shared = Arc::new(Shared {
            core,
            monitor: Mutex::new(MonitorState {
                dir: DirId::Primary,
                writer: None,
                history: LogHistory::default(),
                switches: 0,
                primary_time: Duration::ZERO,
                secondary_time: Duration::ZERO,
                last_accounted: now,
                last_failback: None,
                stranded: false,
                left_for_error: false,
            }),
            prober,
            enabled: AtomicBool::new(f.enabled),
            env: WriterEnv {
                tasks: Arc::new(Tasks::default()),
                write_sync_latency: Arc::new(Histogram::new()),
                replayed: Arc::new(AtomicU64::new(0)),
                hedges: Arc::new(AtomicU64::new(0)),
                hedged_bytes: Arc::new(AtomicU64::new(0)),
                windows: [
                    Arc::new(LatencyWindow::default()),
                    Arc::new(LatencyWindow::default()),
                ],
                wake: Arc::new(MonitorWake::default()),
            },
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
        });
        let mut threads = Vec::new();
        if env.driver == Driver::Background {
            threads.push(spawn_monitor(&shared)?);
            threads.push(spawn_prober(&shared, f.probe_interval.0)?);
        }
        Ok(FailoverManager {
            shared,
            threads: Mutex::new(threads),
            driver: env.driver,
        })
    }

    pub(crate) fn core(&self) -> &Core {
        &self.shared.core
    }

    /// Starts log `log`; see [`crate::Manager::create`]. The first segment is
    /// created asynchronously in the directory the monitor currently
    /// prefers: records appended before it is ready are queued.
    ///
    /// # Errors
    /// As [`crate::Manager::create`].
    pub(crate) fn create(&self, log: LogNum) -> Result<FailoverWriter> {
        let s = &self.shared;
        let recycled = s.core.reserve(log)?;
        let inner = Arc::new(WriterInner::new(
            log,
            Arc::clone(&s.core),
            s.env.clone(),
            recycled,
        ));
        let dir = {
            let mut m = s.monitor.lock();
            m.writer = Some(Arc::clone(&inner));
            m.history = LogHistory::default();
            m.dir
        };
        if let Err(e) = inner.start(dir, s.enabled.load(Ordering::Acquire)) {
            s.core.unreserve(log);
            s.monitor.lock().writer = None;
            return Err(e);
        }
        let weak: Weak<Shared> = Arc::downgrade(s);
        Ok(FailoverWriter {
            inner,
            on_close: Box::new(move |w| {
                if let Some(s) = weak.upgrade() {
                    let mut m = s.monitor.lock();
                    if m.writer.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, w)) {
                        m.writer = None;
                        let now = s.core.clock.now();
                        m.account(now);
                    }
                }
            }),
        })
    }

    /// Runs one monitor sample now (for [`Driver::Manual`]; the background
    /// driver's thread does this at every deadline). Returns the next
    /// moment, by the manager's clock, at which a rule could change its
    /// verdict (at most `unhealthy_sampling_interval` away).
    pub fn tick_monitor(&self) -> Duration {
        tick(&self.shared).0
    }

    /// Starts one probe of the primary on its own thread (for
    /// [`Driver::Manual`]); the probe records its latency only while the log
    /// is on the secondary.
    pub fn start_probe(&self) -> ProbeHandle {
        ProbeHandle::spawn(Arc::clone(&self.shared.prober))
    }

    /// Moves the log to the other directory now, whatever the rules say (an
    /// operator taking a disk out of service, or a test forcing a switch).
    /// Returns the directory now written.
    ///
    /// # Errors
    /// [`Error::SwitchingLimit`] if the open log has as many segments as
    /// allowed; the next log still starts in the other directory.
    pub fn force_switch(&self) -> Result<DirId> {
        let s = &self.shared;
        let mut mon = s.monitor.lock();
        let writer = mon.writer.clone();
        switch(
            s,
            &mut mon,
            writer.as_ref(),
            SwitchReason::Forced,
            Duration::ZERO,
            None,
            None,
        )
    }

    /// Turns failover on or off at run time (the `failover.enabled` key).
    pub fn set_failover_enabled(&self, enabled: bool) {
        self.shared.enabled.store(enabled, Ordering::Release);
    }

    /// The directory new writes go to.
    pub fn current_dir(&self) -> DirId {
        self.shared.monitor.lock().dir
    }

    /// Whether probing of the primary is on (the log is on the secondary).
    pub fn probing(&self) -> bool {
        self.shared.prober.enabled()
    }

    /// How the monitor and the prober run.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// See [`crate::Manager::elevate_write_stall_threshold`].
    pub fn elevate_write_stall_threshold(&self) -> bool {
        let lag = self
            .shared
            .core
            .config
            .failover
            .elevated_write_stall_threshold_lag
            .0;
        let m = self.shared.monitor.lock();
        m.dir == DirId::Secondary
            || m.last_failback
                .is_some_and(|t| self.shared.core.clock.now().saturating_sub(t) < lag)
    }

    /// Current figures; see [`crate::Manager::stats`].
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        let mut stats = s.core.base_stats();
        let (writer, dir, switches, primary_time, secondary_time, stranded) = {
            let mut m = s.monitor.lock();
            let now = s.core.clock.now();
            m.account(now);
            (
                m.writer.clone(),
                m.dir,
                m.switches,
                m.primary_time,
                m.secondary_time,
                m.stranded,
            )
        };
        let (queued_records, queued_bytes, metrics) =
            writer.map(|w| w.queue_stats()).unwrap_or_default();
        stats.totals = s.core.totals_with(metrics.as_ref());
        stats.writer = metrics;
        stats.failover = Some(FailoverStats {
            current_dir: Some(dir),
            switches,
            primary_time,
            secondary_time,
            write_and_sync_latency: s.env.write_sync_latency.snapshot(),
            probe_latency: s.prober.latency(),
            queued_records,
            queued_bytes,
            replayed_records: s.env.replayed.load(Ordering::Relaxed),
            hedges: s.env.hedges.load(Ordering::Relaxed),
            standby_bytes: s.env.hedged_bytes.load(Ordering::Relaxed),
            stranded,
        });
        stats
    }

    /// Closes the manager; see [`crate::Manager::close`]. Waits for
    /// background closes of old segment writers, which may be stuck on a
    /// stalled disk until it recovers.
    ///
    /// # Errors
    /// As [`crate::Manager::close`].
    pub(crate) fn close(&self) -> Result<()> {
        self.shared.core.begin_close()?;
        self.shut_down();
        Ok(())
    }

    /// Stops the threads, waits for the background tasks (segment
    /// creations, closes of old segment writers: they write to the
    /// directories), then releases the locks unless a writer is open.
    fn shut_down(&self) {
        self.stop_threads();
        self.shared.env.tasks.join_all();
        self.shared.core.release_locks();
    }

    fn stop_threads(&self) {
        *self.shared.stop.lock() = true;
        self.shared.stop_cv.notify_all();
        self.shared.env.wake.poke_now();
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for FailoverManager {
    /// As [`crate::Manager::close`], without the error: a manager dropped
    /// while its writer is open leaves the locks with that writer.
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A background thread that runs `step` until the manager stops or is
/// gone; each step holds the manager only while it runs (it may drop it
/// before waiting).
fn spawn_thread(
    shared: &Arc<Shared>,
    name: &str,
    step: impl Fn(Arc<Shared>) + Send + 'static,
) -> Result<JoinHandle<()>> {
    let weak = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            loop {
                let Some(s) = weak.upgrade() else { return };
                if *s.stop.lock() {
                    return;
                }
                step(s);
            }
        })
        .map_err(|source| Error::Spawn {
            thread: name.to_owned(),
            source,
        })
}

/// The prober's thread: a probe every `interval`.
fn spawn_prober(shared: &Arc<Shared>, interval: Duration) -> Result<JoinHandle<()>> {
    spawn_thread(shared, "wal-prober", move |s| {
        let mut stop = s.stop.lock();
        if !*stop {
            s.stop_cv.wait_for(&mut stop, interval);
        }
        if !*stop {
            drop(stop);
            s.prober.probe_once();
        }
    })
}

/// The monitor's thread: a sample at every deadline the previous one
/// returned, or idle until an operation or a wait starts.
fn spawn_monitor(shared: &Arc<Shared>) -> Result<JoinHandle<()>> {
    spawn_thread(shared, "wal-monitor", |s| {
        let (next, idle) = tick(&s);
        let wait = next.saturating_sub(s.core.clock.now());
        let wake = Arc::clone(&s.env.wake);
        drop(s);
        wake.sleep(wait, idle);
    })
}

/// How long a wait for durability may last before the monitor hedges, for
/// a current segment in `dir`: four times the directory's recent p99
/// operation latency, at least `hedge_latency_min`, at most half the switch
/// threshold.
fn hedge_after(s: &Shared, dir: DirId) -> Duration {
    let cfg = &s.core.config.failover;
    let p99 = s.env.windows[dir_pos(dir)].p99();
    (p99 * 4)
        .max(cfg.hedge_latency_min.0)
        .min(cfg.unhealthy_op_latency_threshold.0 / 2)
}

/// The next moment a rule could change its verdict: the current operation
/// at the threshold (or, once damped, at twice the latency of the last
/// switch), a wait at the hedge deadline; at most a sampling interval away
/// (probes, failback).
fn next_deadline(
    sample: &Sample,
    view: &MonitorView,
    now: Duration,
    cfg: &crate::config::FailoverConfig,
) -> Duration {
    let mut next = now + cfg.unhealthy_sampling_interval.0;
    let mut consider = |t: Duration| {
        if t > now {
            next = next.min(t);
        }
    };
    if let Some(start) = view.op_started_at {
        // Just over: the rules compare with `>`.
        let tick = Duration::from_micros(1);
        consider(start + sample.threshold + tick);
        if sample.switches >= monitor::UNDAMPED_SWITCHES {
            consider(start + sample.latency_at_last_switch * 2 + tick);
        }
    }
    if let Some(since) = view.waiting_since {
        consider(since + sample.hedge_after);
    }
    next
}

/// Whether there is evidence against the primary while the log is on the
/// secondary: the newest probe of it failed, or one has been hanging past
/// the threshold, or an operation of another segment of the log in the
/// primary (left behind there, or its standby) has, or the primary failed
/// an operation and no probe has finished since (the history is cleared at
/// each failback). After a latency switch whose stall has passed, with no
/// probe yet, there is none: the latency rules may send the log back.
fn primary_suspect(s: &Shared, mon: &MonitorState, view: &MonitorView, now: Duration) -> bool {
    let threshold = s.core.config.failover.unhealthy_op_latency_threshold.0;
    let last_probe = s.prober.last();
    let over =
        |started: Option<Duration>| started.is_some_and(|t| now.saturating_sub(t) > threshold);
    last_probe == Some(prober::FAILED_PROBE_LATENCY)
        || s.prober.running_for().is_some_and(|d| d > threshold)
        || over(view.other_op_started_at)
        || (mon.left_for_error && last_probe.is_none())
}

/// One monitor sample: apply the rules and act. Returns the next moment
/// (by the manager's clock) a rule could change its verdict, and whether
/// there is nothing to time (no operation running, nobody waiting).
fn tick(s: &Shared) -> (Duration, bool) {
    let cfg = &s.core.config.failover;
    let mut mon = s.monitor.lock();
    let now = s.core.clock.now();
    let writer = mon.writer.clone();
    let view = writer
        .as_ref()
        .and_then(|w| w.monitor_view())
        .unwrap_or_default();
    let latency = view
        .op_started_at
        .map_or(Duration::ZERO, |t| now.saturating_sub(t));
    let hedge_after = hedge_after(s, view.dir.unwrap_or(mon.dir));
    let waiting = view
        .waiting_since
        .map_or(Duration::ZERO, |t| now.saturating_sub(t));
    let on_secondary = mon.dir == DirId::Secondary;
    let (probe_mean, probe_max) = if on_secondary {
        s.prober.mean_max(cfg.healthy_interval.0)
    } else {
        (prober::FAILED_PROBE_LATENCY, prober::FAILED_PROBE_LATENCY)
    };
    let threshold = cfg.unhealthy_op_latency_threshold.0;
    let primary_suspect = on_secondary && primary_suspect(s, &mon, &view, now);
    // On the secondary, a standby in the primary once nothing of the log is
    // running there and nothing speaks against it: a secondary that slows
    // down is then hedged back, and the switch back creates no file.
    if on_secondary
        && cfg.standby
        && !view.standby_ready
        && !primary_suspect
        && view.other_op_started_at.is_none()
    {
        if let Some(w) = &writer {
            w.start_primary_standby();
        }
    }
    let sample = Sample {
        failover_enabled: s.enabled.load(Ordering::Acquire),
        dir: mon.dir,
        secondary_errors: mon.history.secondary_errors,
        writer_failed: view.error.is_some(),
        latency,
        threshold,
        switches: mon.history.switches,
        latency_at_last_switch: mon.history.latency_at_last_switch,
        probe_mean,
        probe_max,
        healthy_threshold: cfg.healthy_probe_latency_threshold.0,
        primary_suspect,
        hedge_enabled: cfg.hedge,
        standby_ready: view.standby_ready,
        waiting,
        hedge_after,
    };
    let (row, verdict) = decide(&sample);

    let idle = view.op_started_at.is_none() && view.waiting_since.is_none();
    let result = (next_deadline(&sample, &view, now, cfg), idle);

    let stranded = row == monitor::NO_BOUNCE_ROW;
    if stranded != mon.stranded {
        mon.stranded = stranded;
        let secondary = s.core.dirs.get(DirId::Secondary).path.display().to_string();
        if stranded {
            tracing::warn!(
                %secondary, latency_ms = latency.as_secs_f64() * 1e3, waiting_ms = waiting.as_secs_f64() * 1e3,
                "wal appenders wait on the slow secondary: the primary's probes fail, so the log does not switch back"
            );
        } else {
            tracing::info!(%secondary, "wal secondary making progress again");
        }
    }
    let reason = match verdict {
        Verdict::Stay => return result,
        Verdict::Hedge => {
            if let Some(w) = &writer {
                if w.hedge(now).is_some() {
                    // Next hedge, if still no progress, one deadline on.
                    return (result.0.min(now + hedge_after), false);
                }
            }
            return result;
        }
        Verdict::FailWriter => {
            if let Some(w) = &writer {
                let why = if sample.failover_enabled {
                    "no switch: the secondary has failed twice for this log"
                } else {
                    "no switch: failover is disabled"
                };
                w.fail(format!("{}; {why}", view.error.unwrap_or_default()));
            }
            return result;
        }
        Verdict::Switch(reason) => reason,
    };
    // A refused switch is logged (and fails the writer if it had failed).
    let _ = switch(
        s,
        &mut mon,
        writer.as_ref(),
        reason,
        latency,
        view.error,
        Some(row),
    );
    (now, false)
}

/// Moves the log to the other directory: updates the monitor, the prober
/// and the figures, and makes the standby (or a new segment) current. `row`
/// is the deciding rule (for the log line), if a rule decided. As in
/// Pebble, the monitor moves to the other directory even when the open log
/// refuses the switch (its segment limit): the next log starts there.
///
/// # Errors
/// The open log refused the switch.
fn switch(
    s: &Shared,
    mon: &mut MonitorState,
    writer: Option<&Arc<WriterInner>>,
    reason: SwitchReason,
    latency: Duration,
    error: Option<String>,
    row: Option<usize>,
) -> Result<DirId> {
    let from = mon.dir;
    let to = from.other();
    match reason {
        SwitchReason::Error if from == DirId::Secondary => mon.history.secondary_errors += 1,
        SwitchReason::Latency => mon.history.latency_at_last_switch = latency,
        SwitchReason::Error | SwitchReason::Failback | SwitchReason::Forced => {}
    }
    mon.history.switches += 1;
    let now = s.core.clock.now();
    mon.account(now);
    mon.dir = to;
    mon.switches += 1;
    mon.left_for_error = to == DirId::Secondary && reason == SwitchReason::Error;
    match to {
        DirId::Secondary => s.prober.enable(),
        DirId::Primary => {
            s.prober.disable();
            mon.last_failback = Some(now);
        }
    }
    let from_path = s.core.dirs.get(from).path.display().to_string();
    let to_path = s.core.dirs.get(to).path.display().to_string();
    let rule = row.map(|r| r + 1);
    let Some(w) = writer else {
        tracing::info!(from = %from_path, to = %to_path, reason = reason.name(), ?rule, "wal directory switch (no open log)");
        return Ok(to);
    };
    match w.switch_to(to, reason == SwitchReason::Error) {
        Ok((index, path, standby)) => {
            // A failover is worth a warning; a failback is good news.
            if reason == SwitchReason::Failback {
                tracing::info!(
                    log = %w.log(), from = %from_path, to = %to_path, reason = reason.name(),
                    ?rule, segment = %path.display(), index = index.0, standby,
                    "wal failback to the primary"
                );
            } else {
                tracing::warn!(
                    log = %w.log(), from = %from_path, to = %to_path, reason = reason.name(),
                    latency_ms = latency.as_secs_f64() * 1e3, error = ?error, ?rule,
                    segment = %path.display(), index = index.0, standby,
                    "wal directory switch"
                );
            }
            Ok(to)
        }
        // The log closed meanwhile (a rotation racing the switch): as with
        // no open log, the next one starts in the other directory.
        Err(Error::Closed(_)) => {
            tracing::info!(log = %w.log(), from = %from_path, to = %to_path, reason = reason.name(), ?rule, "wal directory switch (the log closed meanwhile)");
            Ok(to)
        }
        Err(e) => {
            tracing::error!(log = %w.log(), from = %from_path, to = %to_path, error = %e, "wal directory switch refused");
            if reason == SwitchReason::Error {
                w.fail(format!("{}; cannot switch: {e}", error.unwrap_or_default()));
            }
            Err(e)
        }
    }
}

/// Checks that the secondary is the disk the primary remembers, recording
/// the pairing on first use, and that the secondary is writable.
fn check_identity(core: &Core) -> Result<()> {
    let primary = &core.dirs.primary;
    let secondary = core.dirs.get(DirId::Secondary);
    let expected = meta::read(
        primary.fs.as_ref(),
        &primary.path,
        meta::EXPECTED_SECONDARY_FILE,
        "identity",
    )?;
    let found = meta::read(
        secondary.fs.as_ref(),
        &secondary.path,
        meta::IDENTITY_FILE,
        "identity",
    )?;
    let accept_new = core
        .config
        .secondary
        .as_ref()
        .is_some_and(|s| s.accept_new_identity);
    let identity = match (expected, found) {
        (Some(e), Some(f)) if e == f => return Ok(()),
        (Some(e), Some(f)) => {
            return Err(Error::WrongSecondary {
                dir: secondary.path.clone(),
                found: f,
                expected: e,
            });
        }
        (Some(e), None) if !accept_new => {
            return Err(Error::MissingSecondaryIdentity {
                dir: secondary.path.clone(),
                expected: e,
            });
        }
        (None, Some(f)) => f,
        (Some(_) | None, None) => {
            let id = meta::new_identity();
            // Writing the identity also proves the secondary is writable
            // now, not at the first failover (Pebble's failover_source).
            meta::write(
                secondary.fs.as_ref(),
                &secondary.path,
                meta::IDENTITY_FILE,
                "identity",
                &id,
            )?;
            id
        }
    };
    meta::write(
        primary.fs.as_ref(),
        &primary.path,
        meta::EXPECTED_SECONDARY_FILE,
        "identity",
        &identity,
    )?;
    tracing::info!(secondary = %secondary.path.display(), identity = %identity, "secondary identity recorded");
    Ok(())
}
