//! [`HealthFs`]: reports operations that run longer than a threshold while
//! they are still running, like Pebble's `vfs/disk_health.go`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::{DirLock, File, Fs, Metadata, Op, PrepareStep, Result};

/// An operation that has been running longer than the threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowOp {
    /// The operation.
    pub op: Op,
    /// Its path (the source path of a rename).
    pub path: PathBuf,
    /// The buffer length, for a write.
    pub bytes: Option<u64>,
    /// How long it had been running when reported.
    pub elapsed: Duration,
}

/// The callback [`HealthFs`] calls for each slow operation.
pub type SlowOpCallback = Arc<dyn Fn(SlowOp) + Send + Sync>;

/// The settings of a [`HealthFs`].
#[derive(Clone)]
pub struct HealthConfig {
    threshold: Duration,
    tick: Option<Duration>,
    on_slow: Option<SlowOpCallback>,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            threshold: HealthConfig::THRESHOLD_DEFAULT,
            tick: None,
            on_slow: None,
        }
    }
}

impl fmt::Debug for HealthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthConfig")
            .field("threshold", &self.threshold)
            .field("tick", &self.tick_interval())
            .field("on_slow", &self.on_slow.is_some())
            .finish()
    }
}

impl HealthConfig {
    /// Pebble's default: an operation is slow after 5 s.
    pub const THRESHOLD_DEFAULT: Duration = Duration::from_secs(5);

    /// The default threshold, a tick of a quarter of it, and no callback
    /// (slow operations are still logged with `tracing`).
    pub fn new() -> HealthConfig {
        HealthConfig::default()
    }

    /// Operations running longer than this are reported.
    #[must_use]
    pub fn threshold(mut self, threshold: Duration) -> HealthConfig {
        self.threshold = threshold;
        self
    }

    /// How often running operations are checked (default: a quarter of the
    /// threshold). A stalled operation is reported once per tick.
    #[must_use]
    pub fn tick(mut self, tick: Duration) -> HealthConfig {
        self.tick = Some(tick);
        self
    }

    /// Called, on the checker thread, for each slow operation at each tick.
    /// It should return quickly: the next check waits for it.
    #[must_use]
    pub fn on_slow(mut self, callback: impl Fn(SlowOp) + Send + Sync + 'static) -> HealthConfig {
        self.on_slow = Some(Arc::new(callback));
        self
    }

    fn tick_interval(&self) -> Duration {
        self.tick.unwrap_or(self.threshold / 4)
    }
}

/// A filesystem that watches the operations running on another one and
/// reports, while they are still running, those that take longer than a
/// threshold: through a callback and a `tracing` warning carrying the
/// operation, path, bytes and elapsed time. A stuck operation is reported
/// again at every tick until it completes.
///
/// Every operation (filesystem-level and on files opened through it) takes
/// a slot in a small table while it runs; a checker thread scans the table
/// every tick. The thread stops when the `HealthFs` is dropped; files opened
/// through it stay usable afterwards but are no longer watched.
///
/// ```
/// use std::path::Path;
/// use std::time::Duration;
/// use wal_fs::{File, Fs, HealthConfig, HealthFs, MemFs};
///
/// let config = HealthConfig::new()
///     .threshold(Duration::from_millis(100))
///     .on_slow(|slow| eprintln!("slow disk: {slow:?}"));
/// let fs = HealthFs::new(MemFs::new(), config);
/// let mut f = fs.create(Path::new("/a.log")).unwrap();
/// f.write(b"fast").unwrap();
/// ```
pub struct HealthFs<F> {
    inner: F,
    tracker: Arc<Tracker>,
    checker: Option<JoinHandle<()>>,
}

impl<F: fmt::Debug> fmt::Debug for HealthFs<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthFs")
            .field("inner", &self.inner)
            .field("threshold", &self.tracker.threshold)
            .finish_non_exhaustive()
    }
}

/// What the operations and the checker thread share.
struct Tracker {
    threshold: Duration,
    tick: Duration,
    on_slow: Option<SlowOpCallback>,
    running: Mutex<Slots>,
    /// Set when the `HealthFs` is dropped; the checker waits on `wake`.
    shutdown: Mutex<bool>,
    wake: Condvar,
    /// Completed checks, for tests that must know time has passed.
    ticks: AtomicU64,
}

/// The running operations. A slot is reused once its operation ends, so the
/// table stays as small as the peak concurrency.
#[derive(Default)]
struct Slots {
    slots: Vec<Option<Running>>,
    /// INVARIANT: exactly the indexes of the empty slots.
    free: Vec<usize>,
}

struct Running {
    op: Op,
    path: Arc<Path>,
    bytes: Option<u64>,
    start: Instant,
}

impl Tracker {
    /// Records that `op` started; the returned guard records its end.
    fn begin(&self, op: Op, path: Arc<Path>, bytes: Option<u64>) -> Tracking<'_> {
        let running = Running {
            op,
            path,
            bytes,
            start: Instant::now(),
        };
        let mut table = self.running.lock();
        let slot = if let Some(i) = table.free.pop() {
            debug_assert!(table.slots[i].is_none());
            table.slots[i] = Some(running);
            i
        } else {
            table.slots.push(Some(running));
            table.slots.len() - 1
        };
        Tracking {
            tracker: self,
            slot,
        }
    }

    /// Reports every operation running longer than the threshold at `now`.
    fn check(&self, now: Instant) {
        let slow: Vec<SlowOp> = {
            let table = self.running.lock();
            table
                .slots
                .iter()
                .flatten()
                .filter_map(|r| {
                    let elapsed = now.saturating_duration_since(r.start);
                    (elapsed > self.threshold).then(|| SlowOp {
                        op: r.op,
                        path: r.path.to_path_buf(),
                        bytes: r.bytes,
                        elapsed,
                    })
                })
                .collect()
        };
        // Outside the table lock: the callback may take its time without
        // delaying the operations.
        for s in slow {
            tracing::warn!(
                op = %s.op,
                path = %s.path.display(),
                bytes = s.bytes.unwrap_or(0),
                elapsed_ms = s.elapsed.as_millis() as u64,
                "disk operation is slow"
            );
            if let Some(callback) = &self.on_slow {
                callback(s);
            }
        }
        self.ticks.fetch_add(1, Ordering::Release);
    }

    /// The checker thread's loop: check every tick until shut down.
    fn run_checker(&self) {
        let mut next = Instant::now() + self.tick;
        loop {
            {
                let mut shutdown = self.shutdown.lock();
                while !*shutdown && Instant::now() < next {
                    self.wake.wait_until(&mut shutdown, next);
                }
                if *shutdown {
                    return;
                }
            }
            self.check(Instant::now());
            // If a check overran (a slow callback), the next one starts a
            // full tick later rather than catching up in a burst.
            next = (next + self.tick).max(Instant::now());
        }
    }
}

/// The slot of one running operation; dropping it ends the operation.
struct Tracking<'a> {
    tracker: &'a Tracker,
    slot: usize,
}

impl Drop for Tracking<'_> {
    fn drop(&mut self) {
        let mut table = self.tracker.running.lock();
        debug_assert!(table.slots[self.slot].is_some());
        table.slots[self.slot] = None;
        table.free.push(self.slot);
    }
}

impl<F: Fs> HealthFs<F> {
    /// Wraps `inner` and starts the checker thread.
    ///
    /// # Panics
    /// If the threshold or the tick is zero, or the thread cannot be
    /// spawned.
    pub fn new(inner: F, config: HealthConfig) -> HealthFs<F> {
        let tick = config.tick_interval();
        assert!(
            !config.threshold.is_zero(),
            "HealthFs threshold must be positive"
        );
        assert!(!tick.is_zero(), "HealthFs tick must be positive");
        let tracker = Arc::new(Tracker {
            threshold: config.threshold,
            tick,
            on_slow: config.on_slow,
            running: Mutex::new(Slots::default()),
            shutdown: Mutex::new(false),
            wake: Condvar::new(),
            ticks: AtomicU64::new(0),
        });
        let checker = {
            let tracker = Arc::clone(&tracker);
            thread::Builder::new()
                .name("wal-fs-health".to_owned())
                .spawn(move || tracker.run_checker())
                .expect("spawn the disk-health checker thread")
        };
        HealthFs {
            inner,
            tracker,
            checker: Some(checker),
        }
    }

    /// The wrapped filesystem.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The threshold beyond which operations are reported.
    pub fn threshold(&self) -> Duration {
        self.tracker.threshold
    }

    /// How many checks have completed (each after reporting what it found).
    pub fn ticks(&self) -> u64 {
        self.tracker.ticks.load(Ordering::Acquire)
    }

    /// Every operation running right now, with how long it has been
    /// running, slow or not.
    pub fn running_ops(&self) -> Vec<SlowOp> {
        let now = Instant::now();
        let table = self.tracker.running.lock();
        table
            .slots
            .iter()
            .flatten()
            .map(|r| SlowOp {
                op: r.op,
                path: r.path.to_path_buf(),
                bytes: r.bytes,
                elapsed: now.saturating_duration_since(r.start),
            })
            .collect()
    }

    fn begin(&self, op: Op, path: &Path) -> Tracking<'_> {
        self.tracker.begin(op, Arc::from(path), None)
    }

    fn wrap(&self, file: Box<dyn File>) -> Box<dyn File> {
        Box::new(HealthFile {
            path: Arc::from(file.path()),
            inner: file,
            tracker: Arc::clone(&self.tracker),
        })
    }
}

impl<F> Drop for HealthFs<F> {
    fn drop(&mut self) {
        *self.tracker.shutdown.lock() = true;
        self.tracker.wake.notify_all();
        if let Some(checker) = self.checker.take() {
            // A callback that drops the last handle runs on the checker
            // thread itself, which must not wait for itself.
            if checker.thread().id() != thread::current().id() {
                let _ = checker.join();
            }
        }
    }
}

impl<F: Fs> Fs for HealthFs<F> {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        let file = {
            let _t = self.begin(Op::Create, path);
            self.inner.create(path)?
        };
        Ok(self.wrap(file))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        let file = {
            let _t = self.begin(Op::Open, path);
            self.inner.open(path)?
        };
        Ok(self.wrap(file))
    }

    fn reuse_for_write(&self, old: &Path, new: &Path) -> Result<Box<dyn File>> {
        let file = {
            let _t = self.begin(Op::ReuseForWrite, old);
            self.inner.reuse_for_write(old, new)?
        };
        Ok(self.wrap(file))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let _t = self.begin(Op::Rename, from);
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let _t = self.begin(Op::Remove, path);
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let _t = self.begin(Op::List, dir);
        self.inner.list(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let _t = self.begin(Op::CreateDir, dir);
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let _t = self.begin(Op::SyncDir, dir);
        self.inner.sync_dir(dir)
    }

    fn stat(&self, path: &Path) -> Result<Metadata> {
        let _t = self.begin(Op::Stat, path);
        self.inner.stat(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let _t = self.begin(Op::Truncate, path);
        self.inner.truncate(path, len)
    }

    fn lock(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        let _t = self.begin(Op::Lock, dir);
        self.inner.lock(dir)
    }
}

/// A file opened through a [`HealthFs`].
struct HealthFile {
    inner: Box<dyn File>,
    /// The path, shared by every operation's slot instead of copied.
    path: Arc<Path>,
    tracker: Arc<Tracker>,
}

impl fmt::Debug for HealthFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthFile")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl HealthFile {
    fn begin(&self, op: Op, bytes: Option<u64>) -> Tracking<'_> {
        self.tracker.begin(op, Arc::clone(&self.path), bytes)
    }
}

impl File for HealthFile {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        let _t = self
            .tracker
            .begin(Op::Write, Arc::clone(&self.path), Some(buf.len() as u64));
        self.inner.write(buf)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let _t = self.begin(Op::Read, None);
        self.inner.read_at(buf, offset)
    }

    fn sync_data(&mut self) -> Result<()> {
        let _t = self.tracker.begin(Op::Sync, Arc::clone(&self.path), None);
        self.inner.sync_data()
    }

    fn prepare_ahead(&mut self, watch: &mut dyn FnMut(PrepareStep)) -> Result<()> {
        let _t = self.tracker.begin(Op::Write, Arc::clone(&self.path), None);
        self.inner.prepare_ahead(watch)
    }

    fn size(&self) -> Result<u64> {
        let _t = self.begin(Op::Size, None);
        self.inner.size()
    }

    fn preallocate(&mut self, offset: u64, len: u64) -> Result<()> {
        let _t = self
            .tracker
            .begin(Op::Preallocate, Arc::clone(&self.path), None);
        self.inner.preallocate(offset, len)
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn close(self: Box<Self>) -> Result<()> {
        let HealthFile {
            inner,
            path,
            tracker,
        } = *self;
        let _t = tracker.begin(Op::Close, path, None);
        inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LatencyFs, MemFs, OpFilter};
    use std::sync::mpsc;

    /// Long enough for a loaded machine; tests only wait this long when they
    /// are about to fail.
    const PATIENCE: Duration = Duration::from_secs(20);
    const THRESHOLD: Duration = Duration::from_millis(50);
    const TICK: Duration = Duration::from_millis(10);

    fn reporting_config() -> (HealthConfig, mpsc::Receiver<SlowOp>) {
        let (tx, rx) = mpsc::channel();
        let config = HealthConfig::new()
            .threshold(THRESHOLD)
            .tick(TICK)
            .on_slow(move |slow| {
                let _ = tx.send(slow);
            });
        (config, rx)
    }

    /// Waits until `fs` has completed `n` more checks.
    fn wait_ticks<F: Fs>(fs: &HealthFs<F>, n: u64) {
        let target = fs.ticks() + n;
        let deadline = Instant::now() + PATIENCE;
        while fs.ticks() < target {
            assert!(
                Instant::now() < deadline,
                "the checker thread stopped ticking"
            );
            thread::sleep(TICK / 2);
        }
    }

    #[test]
    fn fires_for_a_stalled_write_while_it_is_still_running() {
        let latency = LatencyFs::new(MemFs::new());
        let control = latency.control().clone();
        let (config, reports) = reporting_config();
        let fs = HealthFs::new(latency, config);
        let path = Path::new("/000001.log");
        let mut f = fs.create(path).unwrap();
        let stall = control.stall(OpFilter::ops([Op::Write]));
        let writer = thread::spawn(move || f.write(&[0; 100]));

        let first = reports.recv_timeout(PATIENCE).expect("a slow-op report");
        assert_eq!(first.op, Op::Write);
        assert_eq!(first.path, path);
        assert_eq!(first.bytes, Some(100));
        assert!(first.elapsed > THRESHOLD);
        let second = reports.recv_timeout(PATIENCE).expect("a repeated report");
        assert_eq!(second.op, Op::Write);
        assert!(second.elapsed >= first.elapsed, "reported again, later");
        assert!(!writer.is_finished(), "reported while still running");

        stall.release();
        writer.join().unwrap().unwrap();
        // Reports already queued are fine; after a few more checks there
        // must be no new ones.
        wait_ticks(&fs, 2);
        while reports.try_recv().is_ok() {}
        wait_ticks(&fs, 3);
        assert!(
            reports.try_recv().is_err(),
            "no report once the write completed"
        );
    }

    #[test]
    fn fires_for_a_stalled_fs_level_op_with_its_path() {
        let latency = LatencyFs::new(MemFs::new());
        let control = latency.control().clone();
        let (config, reports) = reporting_config();
        let fs = Arc::new(HealthFs::new(latency, config));
        fs.create_dir_all(Path::new("/wal")).unwrap();
        let stall = control.stall(OpFilter::ops([Op::SyncDir]));
        let syncer = {
            let fs = Arc::clone(&fs);
            thread::spawn(move || fs.sync_dir(Path::new("/wal")))
        };
        let report = reports.recv_timeout(PATIENCE).expect("a slow-op report");
        assert_eq!(report.op, Op::SyncDir);
        assert_eq!(report.path, Path::new("/wal"));
        assert_eq!(report.bytes, None);
        assert_eq!(fs.running_ops().len(), 1);
        stall.release();
        syncer.join().unwrap().unwrap();
        assert!(fs.running_ops().is_empty());
    }

    #[test]
    fn does_not_fire_for_fast_ops() {
        // A generous threshold, so that a descheduled thread on a loaded
        // machine cannot look slow; the ticker still runs every 10 ms.
        let (config, reports) = reporting_config();
        let fs = HealthFs::new(MemFs::new(), config.threshold(Duration::from_secs(2)));
        fs.create_dir_all(Path::new("/wal")).unwrap();
        for i in 0..20 {
            let path = PathBuf::from(format!("/wal/{i:06}.log"));
            let mut f = fs.create(&path).unwrap();
            f.write(&[1; 4096]).unwrap();
            f.sync_data().unwrap();
            f.close().unwrap();
            fs.sync_dir(Path::new("/wal")).unwrap();
        }
        wait_ticks(&fs, 5);
        assert!(fs.running_ops().is_empty());
        assert!(
            reports.try_recv().is_err(),
            "fast operations are not reported"
        );
    }

    #[test]
    fn dropping_the_fs_stops_the_checker_thread() {
        let fs = HealthFs::new(MemFs::new(), HealthConfig::new().threshold(THRESHOLD));
        wait_ticks(&fs, 1);
        let tracker = Arc::downgrade(&fs.tracker);
        drop(fs);
        assert!(
            tracker.upgrade().is_none(),
            "the joined checker thread released its handle"
        );
    }

    #[test]
    fn default_tick_is_a_quarter_of_the_threshold() {
        let config = HealthConfig::new();
        assert_eq!(config.tick_interval(), HealthConfig::THRESHOLD_DEFAULT / 4);
        let config = config.threshold(Duration::from_millis(100));
        assert_eq!(config.tick_interval(), Duration::from_millis(25));
    }
}
