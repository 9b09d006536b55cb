//! The `Manager` API shared by the standalone and failover managers, and
//! the bookkeeping both build on.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use wal_fs::{DirLock, Fs, OsFs};
use wal_record::{HistogramSnapshot, LogWriter, LogWriterMetrics, LogWriterOptions};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::failover::FailoverManager;
use crate::failover::writer::FailoverWriter;
use crate::log::{Dir, Dirs, LogicalLog, Segment, scan};
use crate::meta;
use crate::naming::{parse_recycle_file_name, recycle_file_name};
use crate::reader::LogicalReader;
use crate::recycler::{RecycledFile, Recycler};
use crate::standalone::{StandaloneManager, StandaloneWriter};
use crate::types::{DirId, LogNum, Lsn, SegmentIndex};

/// How the failover manager's monitor and prober run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Driver {
    /// Background threads tick on real time (production).
    #[default]
    Background,
    /// No threads: the caller drives the monitor and the prober
    /// ([`FailoverManager::tick_monitor`], [`FailoverManager::start_probe`]),
    /// usually with a [`crate::ManualClock`]. For deterministic tests.
    Manual,
}

/// What a manager runs on: the filesystems of its directories, its clock,
/// and how failover is driven.
#[derive(Clone, Debug)]
pub struct Env {
    /// The primary directory's filesystem.
    pub primary_fs: Arc<dyn Fs>,
    /// The secondary directory's filesystem.
    pub secondary_fs: Arc<dyn Fs>,
    /// The clock the failover logic measures latency with.
    pub clock: Arc<dyn Clock>,
    /// How the monitor and the prober run.
    pub driver: Driver,
}

impl Env {
    /// Real directories, the real clock, background threads. Every file
    /// operation runs under a disk-health check ([`wal_fs::HealthFs`]) that
    /// reports, as a `tracing` warning, any operation still running after
    /// 5 seconds (Pebble's default), while it runs.
    pub fn os() -> Env {
        let fs = wal_fs::HealthFs::new(OsFs::new(), wal_fs::HealthConfig::new());
        Env::with_fs(Arc::new(fs))
    }

    /// Both directories on `fs`, the real clock, background threads.
    pub fn with_fs(fs: Arc<dyn Fs>) -> Env {
        Env {
            primary_fs: Arc::clone(&fs),
            secondary_fs: fs,
            clock: Arc::new(SystemClock::new()),
            driver: Driver::Background,
        }
    }
}

/// A file of an obsolete log, to be deleted with
/// [`Manager::delete_obsolete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletableFile {
    /// The log it belongs to.
    pub log: LogNum,
    /// The directory it is in.
    pub dir: DirId,
    /// Its path.
    pub path: PathBuf,
    /// Its size when last known.
    pub size: u64,
}

/// Figures about a manager, from [`Manager::stats`].
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Logs not yet obsolete (including the open one).
    pub live_logs: usize,
    /// Their files.
    pub live_files: usize,
    /// Their size in bytes (the open log's as last known).
    pub live_bytes: u64,
    /// Obsolete files kept for recycling.
    pub obsolete_files: usize,
    /// Their size.
    pub obsolete_bytes: u64,
    /// The next LSN to be assigned.
    pub next_lsn: Lsn,
    /// The open log, if any.
    pub open_log: Option<LogNum>,
    /// Record-layer figures of the open log's current segment writer.
    pub writer: Option<LogWriterMetrics>,
    /// Record-layer figures of every segment writer since the manager
    /// opened (closed ones and the current one): monotonic counters.
    pub totals: LogWriterMetrics,
    /// Failover figures (failover manager only).
    pub failover: Option<FailoverStats>,
}

/// Failover figures.
#[derive(Clone, Debug, Default)]
pub struct FailoverStats {
    /// The directory new writes go to.
    pub current_dir: Option<DirId>,
    /// Directory switches so far (failovers and failbacks).
    pub switches: u64,
    /// Time spent writing to the primary.
    pub primary_time: Duration,
    /// Time spent writing to the secondary.
    pub secondary_time: Duration,
    /// End-to-end latency of appends that waited for durability, from the
    /// append to the acknowledgement, in nanoseconds.
    pub write_and_sync_latency: HistogramSnapshot,
    /// Latency of the prober's probes of the primary, in nanoseconds.
    pub probe_latency: HistogramSnapshot,
    /// Records waiting to become durable in the open log's queue.
    pub queued_records: u64,
    /// Their bytes.
    pub queued_bytes: u64,
}

/// A log manager: standalone (one directory) or failover (primary and
/// secondary), chosen by the configuration.
///
/// ```
/// use wal_manager::{Config, LogNum, Manager};
///
/// # fn main() -> Result<(), wal_manager::Error> {
/// let dir = std::env::temp_dir().join(format!("wal-manager-doc-{}", std::process::id()));
/// let manager = Manager::open(&Config::standalone(&dir))?;
/// let writer = manager.create(LogNum(1))?;
/// let lsn = writer.append_sync(b"put k v")?; // durable when this returns
/// writer.close()?;
///
/// let mut reader = manager.open_reader(LogNum(1))?;
/// let record = reader.next()?.expect("one record");
/// assert_eq!((record.lsn, record.payload), (lsn, &b"put k v"[..]));
/// manager.close()?;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub enum Manager {
    /// One directory.
    Standalone(StandaloneManager),
    /// A primary and a secondary directory.
    Failover(FailoverManager),
}

impl Manager {
    /// Opens the manager `config` describes, on real directories.
    ///
    /// # Errors
    /// As [`Manager::open_with`].
    pub fn open(config: &Config) -> Result<Manager> {
        Manager::open_with(config, Env::os())
    }

    /// Opens the manager `config` describes, on `env`: creates the
    /// directories if needed, locks them, checks the secondary's identity,
    /// finds the existing logs and recovers the next LSN.
    ///
    /// # Errors
    /// An invalid configuration, a directory that cannot be created or is
    /// locked by another manager, the wrong secondary, duplicate segments,
    /// or corruption in the newest log.
    #[allow(clippy::needless_pass_by_value)] // an Env is a few Arcs; taking it reads better
    pub fn open_with(config: &Config, env: Env) -> Result<Manager> {
        config.validate().map_err(|message| Error::Config {
            origin: "Manager::open".into(),
            message,
        })?;
        if config.is_failover() {
            FailoverManager::open(config, &env).map(Manager::Failover)
        } else {
            StandaloneManager::open(config, &env).map(Manager::Standalone)
        }
    }

    fn core(&self) -> &Core {
        match self {
            Manager::Standalone(m) => m.core(),
            Manager::Failover(m) => m.core(),
        }
    }

    /// The logs not yet obsolete, with their segments. No I/O.
    pub fn list(&self) -> Vec<LogicalLog> {
        self.core().list()
    }

    /// Starts log `log`, which must be above every existing log. The previous
    /// writer must have been closed.
    ///
    /// # Errors
    /// A writer is open, the number does not increase, or the file cannot be
    /// created.
    pub fn create(&self, log: LogNum) -> Result<Writer> {
        match self {
            Manager::Standalone(m) => m.create(log).map(Writer::Standalone),
            Manager::Failover(m) => m.create(log).map(Writer::Failover),
        }
    }

    /// Marks every closed log below `min_unflushed` obsolete: the caller no
    /// longer needs them. Files that can be reused are renamed
    /// `recycle-NNNNNN.log` and kept in the recycler (a restart finds them
    /// there, never as live logs); the rest are returned for deletion. Before returning, the LSN floor is
    /// made durable, so LSNs keep increasing even if every log goes.
    ///
    /// # Errors
    /// The LSN floor cannot be written.
    pub fn obsolete(&self, min_unflushed: LogNum) -> Result<Vec<DeletableFile>> {
        let dir = match self {
            Manager::Standalone(_) => DirId::Primary,
            Manager::Failover(m) => m.current_dir(),
        };
        self.core().obsolete(min_unflushed, dir)
    }

    /// Deletes files returned by [`Manager::obsolete`], then syncs their
    /// directories.
    ///
    /// # Errors
    /// A file cannot be removed (one already gone is not an error).
    pub fn delete_obsolete(&self, files: &[DeletableFile]) -> Result<()> {
        self.core().delete(files)
    }

    /// A reader of log `log`.
    ///
    /// # Errors
    /// [`Error::NoSuchLog`].
    pub fn open_reader(&self, log: LogNum) -> Result<LogicalReader> {
        self.core().open_reader(log)
    }

    /// Current figures.
    pub fn stats(&self) -> Stats {
        match self {
            Manager::Standalone(m) => m.stats(),
            Manager::Failover(m) => m.stats(),
        }
    }

    /// The next LSN to be assigned.
    pub fn next_lsn(&self) -> Lsn {
        self.core().next_lsn()
    }

    /// Publishes this manager's figures through the `metrics` facade (see
    /// [`crate::metrics`] for the names).
    pub fn publish_metrics(&self) {
        crate::metrics::publish(&self.stats());
    }

    /// Whether an engine should tolerate a higher write-stall threshold now:
    /// the log is on the secondary, or failed back recently (Pebble's
    /// `ElevateWriteStallThresholdForFailover`). Always false when
    /// standalone.
    pub fn elevate_write_stall_threshold(&self) -> bool {
        match self {
            Manager::Standalone(_) => false,
            Manager::Failover(m) => m.elevate_write_stall_threshold(),
        }
    }

    /// Sets the next LSN to assign, for `Wal::truncate_after`: only while no
    /// writer is open, and only to rewind past records being truncated.
    pub(crate) fn rewind_next_lsn(&self, next: Lsn) -> Result<()> {
        self.core().rewind_next_lsn(next)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.core().config
    }

    /// The directories.
    pub fn dirs(&self) -> &Dirs {
        &self.core().dirs
    }

    /// Closes the manager: stops its threads, waits for background closes of
    /// old segment writers, and releases the directory locks.
    ///
    /// # Errors
    /// [`Error::WriterOpen`] if a writer is still open.
    pub fn close(self) -> Result<()> {
        match self {
            Manager::Standalone(m) => m.close(),
            Manager::Failover(m) => m.close(),
        }
    }
}

/// The writer of one log. Shared between threads (`&self` everywhere).
#[derive(Debug)]
pub enum Writer {
    /// A standalone manager's writer.
    Standalone(StandaloneWriter),
    /// A failover manager's writer.
    Failover(FailoverWriter),
}

impl Writer {
    /// The log being written.
    pub fn log(&self) -> LogNum {
        match self {
            Writer::Standalone(w) => w.log(),
            Writer::Failover(w) => w.log(),
        }
    }

    /// Appends a record without waiting for it to be durable; returns its
    /// LSN.
    ///
    /// # Errors
    /// The record is too large, the writer is closed, or writing failed for
    /// good.
    pub fn append(&self, payload: &[u8]) -> Result<Lsn> {
        match self {
            Writer::Standalone(w) => w.append(payload, false),
            Writer::Failover(w) => w.append(payload, false),
        }
    }

    /// Appends a record and waits until it is durable (group commit with
    /// concurrent appenders); returns its LSN.
    ///
    /// # Errors
    /// As [`Writer::append`], plus a failed sync (standalone) or a failure of
    /// every directory (failover).
    pub fn append_sync(&self, payload: &[u8]) -> Result<Lsn> {
        match self {
            Writer::Standalone(w) => w.append(payload, true),
            Writer::Failover(w) => w.append(payload, true),
        }
    }

    /// Appends records as one group, contiguous in LSN order; if `sync`,
    /// waits until all are durable. Returns their LSNs.
    ///
    /// # Errors
    /// As [`Writer::append_sync`]; nothing is appended if a record is too
    /// large.
    pub fn append_batch(&self, payloads: &[&[u8]], sync: bool) -> Result<Range<Lsn>> {
        match self {
            Writer::Standalone(w) => w.append_batch(payloads, sync),
            Writer::Failover(w) => w.append_batch(payloads, sync),
        }
    }

    /// Waits until the record `lsn` (and every earlier one) is durable.
    ///
    /// # Errors
    /// As [`Writer::append_sync`].
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        match self {
            Writer::Standalone(w) => w.wait_durable(lsn),
            Writer::Failover(w) => w.wait_durable(lsn),
        }
    }

    /// Makes everything appended so far durable; returns the last LSN
    /// appended (`None` if nothing was).
    ///
    /// # Errors
    /// As [`Writer::append_sync`].
    pub fn sync(&self) -> Result<Option<Lsn>> {
        match self {
            Writer::Standalone(w) => w.sync(),
            Writer::Failover(w) => w.sync(),
        }
    }

    /// Closes the log: writes the trailer, makes everything durable, and
    /// returns the log's logical size (its bytes as if it were one segment).
    ///
    /// # Errors
    /// The final write or sync failed.
    pub fn close(&self) -> Result<u64> {
        match self {
            Writer::Standalone(w) => w.close(),
            Writer::Failover(w) => w.close(),
        }
    }

    /// Record-layer figures of the current segment.
    pub fn metrics(&self) -> LogWriterMetrics {
        match self {
            Writer::Standalone(w) => w.metrics(),
            Writer::Failover(w) => w.metrics(),
        }
    }

    /// The log's logical size so far: its bytes as if it were one segment.
    pub fn size(&self) -> u64 {
        match self {
            Writer::Standalone(w) => w.size(),
            Writer::Failover(w) => w.size(),
        }
    }

    /// Hands everything appended so far to the file (without syncing), so
    /// that a reader of the log sees it. For a failover log, waits until the
    /// newest segment exists.
    ///
    /// # Errors
    /// The writer failed for good.
    pub fn flush(&self) -> Result<()> {
        match self {
            Writer::Standalone(w) => w.flush(),
            Writer::Failover(w) => w.flush(),
        }
    }

    /// Appends a *system* record (the LSN's top bit set) carrying `payload`,
    /// with the LSN of the last record assigned so far (it does not use up
    /// an LSN), and waits until it is durable. Allowed only as the first
    /// record of a log, so that it can never be mistaken for a duplicate.
    /// The `Wal` API builds checkpoints and truncation markers on this.
    ///
    /// # Errors
    /// Records were already appended to this log
    /// ([`Error::MarkerNotFirst`]), or as [`Writer::append_sync`].
    pub fn append_marker(&self, payload: &[u8]) -> Result<Lsn> {
        match self {
            Writer::Standalone(w) => w.append_marker(payload),
            Writer::Failover(w) => w.append_marker(payload),
        }
    }
}

/// A log the manager still tracks.
#[derive(Debug)]
pub(crate) struct LiveLog {
    pub(crate) log: LogicalLog,
    /// Closed cleanly by this manager as one segment, index 0, in the
    /// primary: its file may be recycled.
    pub(crate) recyclable: bool,
}

#[derive(Debug)]
pub(crate) struct CoreState {
    /// Logs not yet obsolete, by number.
    pub(crate) logs: Vec<LiveLog>,
    /// The log whose writer is open.
    pub(crate) open: Option<LogNum>,
    /// The `WAL-STATE` last made durable (or read at open).
    pub(crate) state_written: meta::WalState,
    pub(crate) recycler: Recycler,
    pub(crate) closed: bool,
}

/// What both managers share: configuration, directories, locks, the log list,
/// the recycler and the LSN counter.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) config: Config,
    pub(crate) dirs: Dirs,
    pub(crate) clock: Arc<dyn Clock>,
    /// The next LSN to assign. Writers increment it under their own lock, so
    /// that LSN order is file order.
    pub(crate) next_lsn: Arc<AtomicU64>,
    pub(crate) state: Mutex<CoreState>,
    /// Figures of every segment writer closed so far, for monotonic
    /// metrics across log rotations.
    totals: Mutex<LogWriterMetrics>,
    /// The standalone manager's open writer, for its figures.
    pub(crate) current: Mutex<Option<std::sync::Weak<LogWriter<crate::recorder::PlainFile>>>>,
    _locks: Vec<Box<dyn DirLock>>,
}

impl Core {
    /// Creates and locks the directories, scans the logs and recovers the
    /// next LSN.
    pub(crate) fn open(config: &Config, env: &Env) -> Result<Core> {
        let primary = Dir {
            id: DirId::Primary,
            path: config.primary.dir.clone(),
            fs: Arc::clone(&env.primary_fs),
        };
        let secondary = config.secondary.as_ref().map(|s| Dir {
            id: DirId::Secondary,
            path: s.dir.clone(),
            fs: Arc::clone(&env.secondary_fs),
        });
        let dirs = Dirs { primary, secondary };
        let mut locks = Vec::new();
        for dir in dirs.iter() {
            dir.fs.create_dir_all(&dir.path)?;
            locks.push(dir.fs.lock(&dir.path)?);
        }
        let state = meta::read_state(&dirs)?;
        let (gone, logs): (Vec<LogicalLog>, Vec<LogicalLog>) = scan(&dirs)?
            .into_iter()
            .partition(|l| l.num.0 < state.obsolete_below);
        delete_leftovers(&dirs, &gone)?;
        let next_lsn = recover_next_lsn(&dirs, &logs, state.lsn_floor, config)?;
        let recycler = load_recycler(&dirs.primary, config.writer.recycle_logs_max as usize)?;
        tracing::info!(
            primary = %dirs.primary.path.display(),
            secondary = ?dirs.secondary.as_ref().map(|d| d.path.display().to_string()),
            logs = logs.len(),
            next_lsn = next_lsn.0,
            "wal manager opened"
        );
        Ok(Core {
            config: config.clone(),
            dirs,
            clock: Arc::clone(&env.clock),
            next_lsn: Arc::new(AtomicU64::new(next_lsn.0)),
            state: Mutex::new(CoreState {
                // Logs found at open are never recycled (Pebble does the
                // same): nothing says how they were closed.
                logs: logs
                    .into_iter()
                    .map(|log| LiveLog {
                        log,
                        recyclable: false,
                    })
                    .collect(),
                open: None,
                state_written: state,
                recycler,
                closed: false,
            }),
            totals: Mutex::new(LogWriterMetrics::default()),
            current: Mutex::new(None),
            _locks: locks,
        })
    }

    pub(crate) fn next_lsn(&self) -> Lsn {
        Lsn(self.next_lsn.load(Ordering::Acquire))
    }

    pub(crate) fn list(&self) -> Vec<LogicalLog> {
        self.state
            .lock()
            .logs
            .iter()
            .map(|l| l.log.clone())
            .collect()
    }

    /// Reserves `log` for a new writer: checks that none is open and that the
    /// number increases, and records the log with no segments yet. Returns a
    /// recycled file to reuse, if any.
    pub(crate) fn reserve(&self, log: LogNum) -> Result<Option<RecycledFile>> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(Error::Closed("the manager"));
        }
        if let Some(open) = st.open {
            return Err(Error::WriterOpen {
                open,
                requested: log,
            });
        }
        if let Some(last) = st.logs.last() {
            if last.log.num >= log {
                return Err(Error::LogNumNotIncreasing {
                    requested: log,
                    existing: last.log.num,
                });
            }
        }
        st.open = Some(log);
        st.logs.push(LiveLog {
            log: LogicalLog {
                num: log,
                segments: Vec::new(),
            },
            recyclable: false,
        });
        Ok(st.recycler.take())
    }

    /// Undoes a reservation whose first segment could not be created.
    pub(crate) fn unreserve(&self, log: LogNum) {
        let mut st = self.state.lock();
        if st.open == Some(log) {
            st.open = None;
        }
        if st
            .logs
            .last()
            .is_some_and(|l| l.log.num == log && l.log.segments.is_empty())
        {
            st.logs.pop();
        }
    }

    /// Records a new segment of `log` (or updates it if already known).
    pub(crate) fn add_segment(&self, log: LogNum, segment: Segment) {
        let mut st = self.state.lock();
        if let Some(live) = st.logs.iter_mut().find(|l| l.log.num == log) {
            if let Some(s) = live
                .log
                .segments
                .iter_mut()
                .find(|s| s.index == segment.index)
            {
                *s = segment;
            } else {
                live.log.segments.push(segment);
                live.log.segments.sort_by_key(|s| s.index);
            }
        }
    }

    /// Forgets segment `index` of `log` (its file was never created).
    pub(crate) fn remove_segment(&self, log: LogNum, index: SegmentIndex) {
        let mut st = self.state.lock();
        if let Some(live) = st.logs.iter_mut().find(|l| l.log.num == log) {
            live.log.segments.retain(|s| s.index != index);
        }
    }

    /// Records that the writer of `log` is done; `recyclable` when it closed
    /// cleanly as a single primary segment 0.
    pub(crate) fn writer_closed(&self, log: LogNum, recyclable: bool) {
        let mut st = self.state.lock();
        if st.open == Some(log) {
            st.open = None;
        }
        if let Some(live) = st.logs.iter_mut().find(|l| l.log.num == log) {
            live.recyclable = recyclable
                && live.log.segments.len() == 1
                && live.log.segments[0].index == SegmentIndex(0)
                && live.log.segments[0].dir == DirId::Primary;
        }
    }

    pub(crate) fn obsolete(
        &self,
        min_unflushed: LogNum,
        floor_dir: DirId,
    ) -> Result<Vec<DeletableFile>> {
        // Make the decision durable first: once the caller deletes these
        // logs, `WAL-STATE` is what says they are gone for good (a power
        // cut may leave any subset of their files) and how high LSNs went.
        let wanted = {
            let st = self.state.lock();
            // The open log stays live whatever the caller says.
            let boundary = st.open.map_or(min_unflushed, |o| o.min(min_unflushed));
            meta::WalState {
                lsn_floor: st.state_written.lsn_floor.max(self.next_lsn()),
                obsolete_below: st.state_written.obsolete_below.max(boundary.0),
            }
        };
        if wanted != self.state.lock().state_written {
            let dir = self.dirs.get(floor_dir);
            meta::write_state(dir.fs.as_ref(), &dir.path, wanted)?;
            self.state.lock().state_written = wanted;
        }
        let mut deletable = Vec::new();
        let mut to_recycle = Vec::new();
        {
            let mut st = self.state.lock();
            let open = st.open;
            let mut room = st.recycler.room();
            let mut kept = Vec::new();
            for live in std::mem::take(&mut st.logs) {
                if live.log.num >= min_unflushed || Some(live.log.num) == open {
                    kept.push(live);
                    continue;
                }
                let mut files = live.log.segments.into_iter();
                if live.recyclable && room > 0 {
                    room -= 1;
                    to_recycle.push((live.log.num, files.next().expect("one segment")));
                    continue;
                }
                deletable.extend(files.map(|s| DeletableFile {
                    log: live.log.num,
                    dir: s.dir,
                    path: s.path,
                    size: s.size,
                }));
            }
            st.logs = kept;
        }
        // Move recycled files out of the segment namespace, so that a
        // restarted manager does not list them as live logs.
        let dir = &self.dirs.primary;
        let mut renamed = false;
        for (log, s) in to_recycle {
            let path = dir.path.join(recycle_file_name(log));
            match dir.fs.rename(&s.path, &path) {
                Ok(()) => {
                    renamed = true;
                    tracing::debug!(log = %log, path = %path.display(), "log kept for recycling");
                    let file = RecycledFile {
                        log,
                        path,
                        size: s.size,
                    };
                    if let Err(file) = self.state.lock().recycler.add(file) {
                        deletable.push(DeletableFile {
                            log,
                            dir: DirId::Primary,
                            path: file.path,
                            size: file.size,
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(log = %log, error = %e, "cannot move a log into the recycler; deleting it instead");
                    deletable.push(DeletableFile {
                        log,
                        dir: s.dir,
                        path: s.path,
                        size: s.size,
                    });
                }
            }
        }
        if renamed {
            dir.fs.sync_dir(&dir.path)?;
        }
        Ok(deletable)
    }

    pub(crate) fn delete(&self, files: &[DeletableFile]) -> Result<()> {
        let mut touched = Vec::new();
        for f in files {
            let dir = self.dirs.get(f.dir);
            match dir.fs.remove(&f.path) {
                Ok(()) => {
                    tracing::debug!(path = %f.path.display(), "obsolete log file deleted");
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            if !touched.contains(&f.dir) {
                touched.push(f.dir);
            }
        }
        for id in touched {
            let dir = self.dirs.get(id);
            dir.fs.sync_dir(&dir.path)?;
        }
        Ok(())
    }

    pub(crate) fn open_reader(&self, log: LogNum) -> Result<LogicalReader> {
        let st = self.state.lock();
        let live = st
            .logs
            .iter()
            .find(|l| l.log.num == log)
            .ok_or(Error::NoSuchLog(log))?;
        Ok(LogicalReader::new(&live.log, self.dirs.clone())
            .with_record_size_max(self.record_size_max() + crate::envelope::LSN_PREFIX_SIZE))
    }

    pub(crate) fn record_size_max(&self) -> usize {
        self.config.writer.record_size_max.0 as usize
    }

    /// Writer options for a segment of `log`.
    pub(crate) fn writer_options(&self, log: LogNum) -> LogWriterOptions {
        let w = &self.config.writer;
        LogWriterOptions {
            log_num: log.header_bits(),
            format: w.format.0,
            min_sync_interval: w.min_sync_interval.0,
            pending_bytes_max: w.pending_bytes_max.0 as usize,
            record_size_max: self.record_size_max() + crate::envelope::LSN_PREFIX_SIZE,
            on_sync: None,
        }
    }

    /// The file-count part of the stats.
    pub(crate) fn base_stats(&self) -> Stats {
        let st = self.state.lock();
        let (obsolete_files, obsolete_bytes) = st.recycler.stats();
        Stats {
            live_logs: st.logs.len(),
            live_files: st.logs.iter().map(|l| l.log.segments.len()).sum(),
            live_bytes: st.logs.iter().map(|l| l.log.size()).sum(),
            obsolete_files,
            obsolete_bytes,
            next_lsn: self.next_lsn(),
            open_log: st.open,
            writer: None,
            totals: LogWriterMetrics::default(),
            failover: None,
        }
    }

    /// Adds a closed segment writer's figures to the totals.
    pub(crate) fn accumulate(&self, m: &LogWriterMetrics) {
        crate::metrics::merge(&mut self.totals.lock(), m);
    }

    /// The totals of closed segment writers plus `current`.
    pub(crate) fn totals_with(&self, current: Option<&LogWriterMetrics>) -> LogWriterMetrics {
        let mut t = self.totals.lock().clone();
        if let Some(c) = current {
            crate::metrics::merge(&mut t, c);
            t.pending_bytes = c.pending_bytes;
            t.unsynced_bytes = c.unsynced_bytes;
        }
        t
    }

    /// Refuses to close while a writer is open; marks the manager closed.
    pub(crate) fn close(&self) -> Result<()> {
        let mut st = self.state.lock();
        if let Some(open) = st.open {
            return Err(Error::WriterOpen {
                open,
                requested: open,
            });
        }
        st.closed = true;
        Ok(())
    }

    /// Sets the next LSN (for `truncate_after`). Only while no writer is open.
    pub(crate) fn rewind_next_lsn(&self, next: Lsn) -> Result<()> {
        let st = self.state.lock();
        if let Some(open) = st.open {
            return Err(Error::WriterOpen {
                open,
                requested: open,
            });
        }
        self.next_lsn.store(next.0, Ordering::Release);
        Ok(())
    }

    /// The LSN a marker takes: the last one assigned (0 if none ever was).
    pub(crate) fn marker_lsn(&self) -> Lsn {
        Lsn(self.next_lsn().0.saturating_sub(1))
    }

    /// Reserves `n` consecutive LSNs; called under the writer's lock.
    pub(crate) fn take_lsns(counter: &AtomicU64, n: u64) -> Range<Lsn> {
        let first = counter.fetch_add(n, Ordering::AcqRel);
        Lsn(first)..Lsn(first + n)
    }
}

/// Finds the files a previous run left in the recycler: keeps up to `limit`
/// of them for reuse (they were closed cleanly before they went there) and
/// deletes the rest.
fn load_recycler(dir: &Dir, limit: usize) -> Result<Recycler> {
    let mut recycler = Recycler::new(limit);
    let mut removed = false;
    for name in dir.fs.list(&dir.path)? {
        let Some(log) = parse_recycle_file_name(&name) else {
            continue;
        };
        let path = dir.path.join(&name);
        let size = dir.fs.stat(&path)?.len;
        if let Err(extra) = recycler.add(RecycledFile { log, path, size }) {
            dir.fs.remove(&extra.path)?;
            removed = true;
        }
    }
    if removed {
        dir.fs.sync_dir(&dir.path)?;
    }
    Ok(recycler)
}

/// Deletes what a previous run left of logs it had declared obsolete.
fn delete_leftovers(dirs: &Dirs, gone: &[LogicalLog]) -> Result<()> {
    let mut touched = Vec::new();
    for log in gone {
        for s in &log.segments {
            let dir = dirs.get(s.dir);
            match dir.fs.remove(&s.path) {
                Ok(()) => {
                    tracing::info!(path = %s.path.display(), "deleted a leftover of an obsolete log");
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            if !touched.contains(&s.dir) {
                touched.push(s.dir);
            }
        }
    }
    for id in touched {
        let dir = dirs.get(id);
        dir.fs.sync_dir(&dir.path)?;
    }
    Ok(())
}

/// The next LSN after a restart: one past the last record (user or system)
/// of the newest live log that has one; when none has any, the LSN floor
/// (the logs holding the highest LSNs were deleted). LSNs start at 1.
///
/// Only live logs count: obsolete ones (below `obsolete_below`) were deleted
/// at open. The newest log decides even when an older live log holds higher
/// LSNs: that happens only after `truncate_after`, whose marker starts the
/// newest log and deliberately rewinds the sequence.
fn recover_next_lsn(dirs: &Dirs, logs: &[LogicalLog], floor: Lsn, config: &Config) -> Result<Lsn> {
    for log in logs.iter().rev() {
        let mut reader = LogicalReader::new(log, dirs.clone()).with_record_size_max(
            config.writer.record_size_max.0 as usize + crate::envelope::LSN_PREFIX_SIZE,
        );
        while reader.next()?.is_some() {}
        if let Some(last) = reader.last_lsn() {
            return Ok(last.next());
        }
    }
    Ok(floor.max(Lsn(1)))
}
