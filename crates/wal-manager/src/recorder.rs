//! The latency and error recorder that the failover monitor samples.
//!
//! Every operation on a segment (create, directory sync, write, sync) runs
//! through a [`Recorder`], which stores the operation's start time (from the
//! injected clock) in an atomic while it runs and remembers the first error.
//! The monitor reads "how long has the current operation been running" and
//! "has anything failed" without taking any lock the writer holds, so a
//! stuck write can never stall the monitor (Pebble's
//! `latencyAndErrorRecorder`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use wal_record::LogFile;

use crate::clock::Clock;

/// Records the ongoing operation's start and the first error of one segment.
#[derive(Debug)]
pub(crate) struct Recorder {
    clock: Arc<dyn Clock>,
    /// `1 + start` in clock nanoseconds while an operation runs; 0 when idle.
    op_start: AtomicU64,
    /// The first error, as text (errors are sticky).
    error: Mutex<Option<String>>,
}

impl Recorder {
    /// A recorder reading time from `clock`.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Recorder {
        Recorder {
            clock,
            op_start: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Runs `op`, recording its start while it runs and its error if it
    /// fails.
    pub(crate) fn time<T, E: std::fmt::Display>(
        &self,
        op: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.op_start.store(self.now_nanos() + 1, Ordering::Release);
        let r = op();
        self.op_start.store(0, Ordering::Release);
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

    /// How long the current operation has been running; `None` when idle.
    pub(crate) fn running_for(&self) -> Option<Duration> {
        let start = self.op_start.load(Ordering::Acquire);
        (start != 0).then(|| Duration::from_nanos(self.now_nanos().saturating_sub(start - 1)))
    }

    /// How long the current operation has been running (zero when idle), and
    /// the first error, if any.
    pub(crate) fn ongoing_latency_or_error(&self) -> (Duration, Option<String>) {
        let start = self.op_start.load(Ordering::Acquire);
        let latency = if start == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.now_nanos().saturating_sub(start - 1))
        };
        (latency, self.error.lock().clone())
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

    /// Timed like a write: a disk that stalls while the space ahead is
    /// prepared must be noticed by the monitor too.
    fn prepare_ahead(&mut self) -> io::Result<()> {
        let file = &mut self.file;
        self.recorder.time(|| file.prepare_ahead()).map_err(to_io)
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
        self.0.prepare_ahead().map_err(to_io)
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
        let r = Arc::new(Recorder::new(Arc::new(clock.clone())));
        assert_eq!(r.ongoing_latency_or_error(), (Duration::ZERO, None));
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
            r.ongoing_latency_or_error(),
            (Duration::from_millis(150), None)
        );
        tx.send(()).unwrap();
        assert!(h.join().unwrap().is_err());
        assert_eq!(
            r.ongoing_latency_or_error(),
            (Duration::ZERO, Some("disk on fire".to_owned()))
        );
        let _ = r.time(|| Err::<(), _>("second"));
        assert_eq!(
            r.ongoing_latency_or_error().1.as_deref(),
            Some("disk on fire")
        );
    }
}
