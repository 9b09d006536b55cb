//! The latency and error recorder that the failover monitor samples.
//!
//! Every operation on a segment (create, directory sync, write, sync) runs
//! through a [`Recorder`], which stores the operation's start time (from the
//! injected clock) in an atomic while it runs and remembers the first error.
//! The monitor reads "since when has the current operation been running"
//! and "has anything failed" without taking any lock the writer holds, so a
//! stuck write can never stall the monitor (Pebble's
//! `latencyAndErrorRecorder`).
//!
//! Each finished operation's latency also goes into its directory's
//! [`LatencyWindow`], from which the monitor derives how long an operation
//! may run before it hedges; and each start pokes the monitor's
//! [`MonitorWake`] when the monitor sleeps idle, so that it can set a
//! deadline for it.
//!
//! The zero fill a segment's file does ahead of its writes
//! ([`wal_fs::File::prepare_ahead`]) is timed step by step instead, and
//! its latencies stay out of the window: on a slow but healthy disk the
//! whole fill takes long while every commit is quick, so the fill as one
//! operation would switch away from a disk that serves commits well; but a
//! step stuck on a stalled disk holds up every commit behind it. Each page
//! write of the fill counts against the threshold like any write. Its sync
//! moves the whole fill (1 MiB) to the disk, so it starts counting only
//! [`FILL_SYNC_ALLOWANCE`] after it started: a disk that moves less than
//! 1 MiB per second is treated as stuck.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use wal_fs::PrepareStep;
use wal_record::LogFile;

use crate::clock::Clock;

/// Operation latencies kept per directory.
const WINDOW_LEN: usize = 256;

/// How long the sync of a zero fill may run before it counts against the
/// threshold: it writes back 1 MiB, which takes a second at 1 MiB/s.
pub(crate) const FILL_SYNC_ALLOWANCE: Duration = Duration::from_secs(1);

/// The latencies of the last operations on one directory.
#[derive(Debug, Default)]
pub(crate) struct LatencyWindow {
    // INVARIANT: at most WINDOW_LEN entries, oldest first.
    latencies: Mutex<VecDeque<Duration>>,
}

impl LatencyWindow {
    fn record(&self, d: Duration) {
        let mut w = self.latencies.lock();
        if w.len() == WINDOW_LEN {
            w.pop_front();
        }
        w.push_back(d);
    }

    /// The 99th percentile of the recent latencies; zero with none.
    pub(crate) fn p99(&self) -> Duration {
        let mut v: Vec<Duration> = self.latencies.lock().iter().copied().collect();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let i = (v.len() * 99 / 100).min(v.len() - 1);
        *v.select_nth_unstable(i).1
    }
}

/// How the failover monitor's thread is woken before its deadline: by an
/// operation starting, or a waiter starting to wait, while it sleeps idle
/// (with nothing to time). While it times something it is never poked:
/// the poke is then one atomic load.
#[derive(Debug, Default)]
pub(crate) struct MonitorWake {
    idle: AtomicBool,
    poked: Mutex<bool>,
    cv: Condvar,
}

impl MonitorWake {
    /// Wakes the monitor if it sleeps idle.
    pub(crate) fn poke(&self) {
        if self.idle.load(Ordering::Acquire) {
            self.poke_now();
        }
    }

    /// Wakes the monitor whatever it does (to stop it, or to look again).
    pub(crate) fn poke_now(&self) {
        *self.poked.lock() = true;
        self.cv.notify_all();
    }

    /// Sleeps up to `timeout` (real time), or until poked; `idle` says the
    /// monitor has nothing to time, so that starts poke it.
    pub(crate) fn sleep(&self, timeout: Duration, idle: bool) {
        let mut poked = self.poked.lock();
        if idle {
            self.idle.store(true, Ordering::Release);
        }
        if !*poked {
            self.cv.wait_for(&mut poked, timeout);
        }
        *poked = false;
        self.idle.store(false, Ordering::Release);
    }
}

/// Records the ongoing operation's start and the first error of one segment.
#[derive(Debug)]
pub(crate) struct Recorder {
    clock: Arc<dyn Clock>,
    /// `1 + start` in clock nanoseconds while an operation runs; 0 when idle.
    /// For a fill's sync, the start is moved on by [`FILL_SYNC_ALLOWANCE`]
    /// (the moment it starts counting against the threshold).
    op_start: AtomicU64,
    /// The first error, as text (errors are sticky).
    error: Mutex<Option<String>>,
    /// The latencies of the directory this segment is in.
    window: Arc<LatencyWindow>,
    wake: Arc<MonitorWake>,
}

impl Recorder {
    /// A recorder reading time from `clock`, adding latencies to `window`,
    /// poking `wake` when an operation starts.
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        window: Arc<LatencyWindow>,
        wake: Arc<MonitorWake>,
    ) -> Recorder {
        Recorder {
            clock,
            op_start: AtomicU64::new(0),
            error: Mutex::new(None),
            window,
            wake,
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Runs `op`, recording its start while it runs, its latency, and its
    /// error if it fails.
    pub(crate) fn time<T, E: std::fmt::Display>(
        &self,
        op: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let start = self.now_nanos();
        self.op_start.store(start + 1, Ordering::Release);
        self.wake.poke();
        let r = self.untimed(op);
        self.op_start.store(0, Ordering::Release);
        self.window
            .record(Duration::from_nanos(self.now_nanos().saturating_sub(start)));
        r
    }

    /// Notes a step of a zero fill (see the module docs): its start, as an
    /// operation's, without adding its latency to the window.
    fn fill_step(&self, step: PrepareStep) {
        let start = match step {
            PrepareStep::Write => self.now_nanos(),
            PrepareStep::Sync => self
                .now_nanos()
                .saturating_add(u64::try_from(FILL_SYNC_ALLOWANCE.as_nanos()).unwrap_or(u64::MAX)),
            PrepareStep::Done => {
                self.op_start.store(0, Ordering::Release);
                return;
            }
        };
        self.op_start
            .store(start.saturating_add(1).min(u64::MAX - 1), Ordering::Release);
        self.wake.poke();
    }

    /// Runs `op` without timing it; records its error.
    pub(crate) fn untimed<T, E: std::fmt::Display>(
        &self,
        op: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let r = op();
        if let Err(e) = &r {
            self.fail(e.to_string());
        }
        r
    }

    /// Records an error that happened outside [`Recorder::time`].
    pub(crate) fn fail(&self, message: String) {
        let mut error = self.error.lock();
        if error.is_none() {
            *error = Some(message);
        }
    }

    /// The first error, if any.
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().clone()
    }

    /// Whether any operation failed.
    pub(crate) fn has_failed(&self) -> bool {
        self.error.lock().is_some()
    }

    /// When the current operation started (clock time); `None` when idle.
    pub(crate) fn op_started_at(&self) -> Option<Duration> {
        let start = self.op_start.load(Ordering::Acquire);
        (start != 0).then(|| Duration::from_nanos(start - 1))
    }

    /// How long the current operation has been running; `None` when idle.
    pub(crate) fn running_for(&self) -> Option<Duration> {
        let start = self.op_started_at()?;
        Some(self.clock.now().saturating_sub(start))
    }
}

/// A segment file whose writes and syncs go through a [`Recorder`]: the
/// [`LogFile`] a failover segment's `LogWriter` writes to.
#[derive(Debug)]
pub(crate) struct RecordedFile {
    file: Box<dyn wal_fs::File>,
    recorder: Arc<Recorder>,
}

impl RecordedFile {
    /// Wraps `file`.
    pub(crate) fn new(file: Box<dyn wal_fs::File>, recorder: Arc<Recorder>) -> RecordedFile {
        RecordedFile { file, recorder }
    }
}

fn to_io(e: wal_fs::Error) -> io::Error {
    io::Error::new(e.kind(), e)
}

impl LogFile for RecordedFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let file = &mut self.file;
        self.recorder.time(|| file.write(buf)).map_err(to_io)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let file = &mut self.file;
        self.recorder.time(|| file.sync_data()).map_err(to_io)
    }

    /// Timed step by step, not as a whole (see the module docs): preparing
    /// space ahead writes far more than a commit does, and on a slow but
    /// healthy disk would read as a stall; a step stuck on a stalled disk
    /// holds up every commit behind it.
    fn prepare_ahead(&mut self) -> io::Result<()> {
        let file = &mut self.file;
        let recorder = &self.recorder;
        recorder
            .untimed(|| file.prepare_ahead(&mut |step| recorder.fill_step(step)))
            .map_err(to_io)
    }

    fn close(self) -> io::Result<()> {
        self.file.close().map_err(to_io)
    }
}

/// A segment file without a recorder (the standalone manager).
#[derive(Debug)]
pub(crate) struct PlainFile(pub Box<dyn wal_fs::File>);

impl LogFile for PlainFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write(buf).map_err(to_io)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data().map_err(to_io)
    }

    fn prepare_ahead(&mut self) -> io::Result<()> {
        self.0.prepare_ahead(&mut |_| {}).map_err(to_io)
    }

    fn close(self) -> io::Result<()> {
        self.0.close().map_err(to_io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn the_recorder_reports_the_running_operations_age_and_the_first_error() {
        let clock = ManualClock::new();
        let window = Arc::new(LatencyWindow::default());
        let r = Arc::new(Recorder::new(
            Arc::new(clock.clone()),
            Arc::clone(&window),
            Arc::new(MonitorWake::default()),
        ));
        assert_eq!((r.running_for(), r.error()), (None, None));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let r2 = Arc::clone(&r);
        let h = std::thread::spawn(move || {
            r2.time(|| {
                started_tx.send(()).unwrap();
                rx.recv().unwrap();
                Err::<(), _>("disk on fire")
            })
        });
        started_rx.recv().unwrap();
        clock.advance(Duration::from_millis(150));
        assert_eq!(
            (r.running_for(), r.error()),
            (Some(Duration::from_millis(150)), None)
        );
        tx.send(()).unwrap();
        assert!(h.join().unwrap().is_err());
        assert_eq!(
            (r.running_for(), r.error()),
            (None, Some("disk on fire".to_owned()))
        );
        assert_eq!(window.p99(), Duration::from_millis(150), "latency kept");
        let _ = r.time(|| Err::<(), _>("second"));
        assert_eq!(r.error().as_deref(), Some("disk on fire"));
    }

    #[test]
    fn a_fill_step_counts_from_its_start_and_its_sync_after_the_allowance() {
        let clock = ManualClock::new();
        let window = Arc::new(LatencyWindow::default());
        let r = Recorder::new(
            Arc::new(clock.clone()),
            Arc::clone(&window),
            Arc::new(MonitorWake::default()),
        );
        clock.advance(Duration::from_millis(10));
        r.fill_step(PrepareStep::Write);
        clock.advance(Duration::from_millis(150));
        assert_eq!(r.running_for(), Some(Duration::from_millis(150)));
        r.fill_step(PrepareStep::Sync);
        assert_eq!(
            r.op_started_at(),
            Some(Duration::from_millis(160) + FILL_SYNC_ALLOWANCE)
        );
        clock.advance(FILL_SYNC_ALLOWANCE + Duration::from_millis(30));
        assert_eq!(r.running_for(), Some(Duration::from_millis(30)));
        r.fill_step(PrepareStep::Done);
        assert_eq!(r.running_for(), None);
        assert_eq!(
            window.p99(),
            Duration::ZERO,
            "no fill latency in the window"
        );
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_last_latencies_and_reports_their_99th_percentile() {
        let w = LatencyWindow::default();
        assert_eq!(w.p99(), Duration::ZERO);
        for i in 0..1000u64 {
            w.record(Duration::from_micros(if i % 50 == 0 { 5000 } else { 100 }));
        }
        // 256 kept: 5 of them slow (2%), at the top.
        assert_eq!(w.p99(), Duration::from_millis(5));
        for _ in 0..WINDOW_LEN {
            w.record(Duration::from_micros(100));
        }
        assert_eq!(w.p99(), Duration::from_micros(100), "the old ones aged out");
    }
}
