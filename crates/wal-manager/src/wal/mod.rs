//! The `Wal`: a log you open, append to and read back by LSN, with the
//! managers (and failover) underneath. See [`Wal`].

mod marker;

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::config::{Config, SyncPolicy};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::failover::FailoverManager;
use crate::log::LogicalLog;
use crate::manager::{Manager, Writer};
use crate::reader::LogicalReader;
use crate::stats::Stats;
use crate::types::{LogNum, Lsn};

use self::marker::Marker;

/// The sparse index keeps one position every this many records.
pub(crate) const INDEX_EVERY: u64 = 128;

/// How many positioned readers the read cache keeps.
const READERS_CACHED: usize = 8;

/// A record read from the [`Wal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// Its LSN.
    pub lsn: Lsn,
    /// The caller's bytes.
    pub payload: Vec<u8>,
}

/// A checkpoint: the caller's bytes, recorded after the record `lsn`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record the checkpoint covers.
    pub lsn: Lsn,
    /// The caller's bytes.
    pub data: Vec<u8>,
}

/// Replay order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// The error of a replay: the log's, or the callback's own.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// Reading the log failed.
    #[error(transparent)]
    Wal(#[from] Error),
    /// The callback returned an error; replay stopped there.
    #[error("replay callback failed: {0}")]
    Callback(E),
}

/// A position in a log: the record `lsn` starts at `offset` in segment
/// `segment_pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    lsn: Lsn,
    segment_pos: usize,
    offset: u64,
}

/// What the `Wal` knows about one log.
#[derive(Debug)]
struct LogInfo {
    num: LogNum,
    /// The first user LSN this log can hold (the next LSN when it was
    /// created, or one past its leading marker).
    start: Lsn,
    /// Closed: no record will be added.
    sealed: bool,
    /// For a sealed log, the last user LSN it holds (`None`: none).
    last_user: Option<Lsn>,
    /// The last user LSN still visible (a later `truncate_after` clips).
    clip: Option<Lsn>,
    /// The last user LSN scanned: the index covers the log up to here.
    scanned: Option<Lsn>,
    /// One point every `INDEX_EVERY` records, by increasing LSN.
    index: Vec<Point>,
    /// Where scanning beyond `scanned` resumes: segment position, offset,
    /// and the last LSN read there (user or system).
    resume: Option<(usize, u64, Lsn)>,
}

impl LogInfo {
    fn new(num: LogNum, start: Lsn) -> LogInfo {
        LogInfo {
            num,
            start,
            sealed: false,
            last_user: None,
            clip: None,
            scanned: None,
            index: Vec::new(),
            resume: None,
        }
    }

    /// Whether every record of this sealed log is below `lsn`.
    fn wholly_below(&self, lsn: Lsn) -> bool {
        self.sealed
            && match (self.last_user, self.clip) {
                (None, _) => true,
                (Some(l), Some(c)) => l.min(c) < lsn,
                (Some(l), None) => l < lsn,
            }
    }

    /// Records a scanned record at `point` (ending at `end`); user records
    /// extend the index.
    fn note(&mut self, point: Point, end: u64, system: bool) {
        if self.resume.is_some_and(|(_, _, last)| point.lsn < last)
            || self
                .resume
                .is_some_and(|(_, _, last)| point.lsn == last && system)
        {
            return; // an older record, re-read through the index
        }
        if !system {
            if self.scanned.is_some_and(|s| point.lsn <= s) {
                return;
            }
            if self
                .index
                .last()
                .is_none_or(|p| point.lsn.0 >= p.lsn.0 + INDEX_EVERY)
            {
                self.index.push(point);
            }
            self.scanned = Some(point.lsn);
        }
        self.resume = Some((point.segment_pos, end, point.lsn));
    }

    /// Where to start reading for user record `lsn`: an index point at or
    /// before it, or the resume point when `lsn` is beyond what was scanned.
    fn start_for(&self, lsn: Lsn) -> Option<(usize, u64, Option<Lsn>)> {
        if self.scanned.is_none_or(|s| lsn > s) {
            if let Some((pos, offset, last)) = self.resume {
                return Some((pos, offset, Some(last)));
            }
        }
        let i = self.index.partition_point(|p| p.lsn <= lsn);
        let p = self.index[i.checked_sub(1)?];
        Some((p.segment_pos, p.offset, p.lsn.0.checked_sub(1).map(Lsn)))
    }
}

#[derive(Debug)]
struct State {
    logs: Vec<LogInfo>,
    /// Records below this are gone (`truncate_before`).
    first_visible: Lsn,
    /// Checkpoints still valid, oldest first, with the log holding each.
    checkpoints: Vec<(Checkpoint, LogNum)>,
}

impl State {
    /// The log that holds user record `lsn`, if any.
    fn log_for(&self, lsn: Lsn) -> Option<usize> {
        // Logs' visible ranges are disjoint and ordered by log number; the
        // holder is the last log that starts at or before `lsn`.
        let i = self.logs.iter().rposition(|l| l.start <= lsn)?;
        let log = &self.logs[i];
        if log.clip.is_some_and(|c| lsn > c)
            || (log.sealed && log.last_user.is_none_or(|l| lsn > l))
        {
            return None;
        }
        Some(i)
    }
}

/// A reader of a sealed log stopped right before user record `next`, kept
/// for sequential reads. Only sealed logs' readers are kept: a reader of the
/// open log may have seen the end of the file, and would not see records
/// appended after that (the open log resumes from its scan point instead).
struct Cached {
    log: LogNum,
    reader: LogicalReader,
    /// The next user LSN it will return.
    next: Lsn,
}

/// The background syncer of the `periodic` policy.
#[derive(Debug, Default)]
struct Syncer {
    /// Records appended since the last background sync.
    pending: AtomicU64,
    /// What the thread is asked to do; guarded so that no request is lost
    /// between the thread's check and its wait.
    control: Mutex<SyncerControl>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct SyncerControl {
    stop: bool,
    /// A sync is wanted now (every N records).
    now: bool,
}

/// The open log's writer. Appenders hold the read lock while appending;
/// rotation takes the write lock.
type WriterSlot = Arc<RwLock<Arc<Writer>>>;

/// A write-ahead log you open, append to and read back by LSN, with the
/// managers (and failover) underneath.
///
/// Pebble's managers serve an engine that numbers its own logs. Most users of
/// a write-ahead log want less: open it, append, read by position, truncate,
/// checkpoint, replay. [`Wal`] gives them that on top of a [`Manager`]:
///
/// * It rotates to a new log when the current one exceeds
///   `wal.log_size_max`, so callers never see log numbers.
/// * User LSNs are contiguous: every LSN between [`Wal::first_lsn`] and
///   [`Wal::last_lsn`] is a record.
/// * Checkpoints and truncations are *system records* (module `marker`),
///   each the first record of a fresh log, taking the last assigned LSN
///   without using one up. One durable record per operation makes each of
///   them atomic across a crash: the old state or the new, never a mix.
/// * On open it reads every log once, building a sparse index of LSN to
///   (segment, offset) every 128 records, and applying the
///   markers in log order. Reads go through the index; a bounded cache keeps
///   the readers of recent reads, so sequential reads are O(1) each.
///
/// ```
/// use wal_manager::{Config, Direction, Lsn, Wal};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("wal-api-doc-{}", std::process::id()));
/// let wal = Wal::open(&Config::standalone(&dir))?;
/// let a = wal.append(b"first")?;                 // durable on return (default policy)
/// let more = wal.append_batch(&[b"x", b"y"])?;    // one group, durable together
/// wal.sync()?;
/// assert_eq!(wal.read(a)?, b"first");
/// wal.checkpoint(b"engine state up to here")?;
/// wal.truncate_before(more.start)?;               // `a` is gone
/// let mut seen = Vec::new();
/// wal.replay(10, Direction::Forward, |batch| {
///     seen.extend(batch.iter().map(|r| r.lsn));
///     Ok::<(), std::convert::Infallible>(())
/// })?;
/// assert_eq!(seen, vec![more.start, Lsn(more.start.0 + 1)]);
/// wal.close()?;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
///
/// The manager underneath is the `Wal`'s own: [`Wal::stats`],
/// [`Wal::logs`] and [`Wal::failover`] show it, and nothing outside can
/// create, retire or delete one of its logs behind its index:
///
/// ```compile_fail
/// # fn f(wal: &wal_manager::Wal) {
/// wal.manager().obsolete(wal_manager::LogNum(9));
/// # }
/// ```
///
/// # Concurrency
///
/// Every method takes `&self`: appends, reads, iterators, replays,
/// checkpoints, truncations and retention may run on any threads at once.
/// Operations that change the set of logs (rotation, checkpoints, both
/// truncations, retention) take turns; appends wait only for a rotation;
/// readers never wait for a writer, and see a truncation either wholly or
/// not at all.
pub struct Wal {
    manager: Manager,
    /// Held by every operation that changes the set of logs (rotation,
    /// checkpoints, truncations, retention), so that each sees the logs as
    /// the previous one left them. Lock order: `maintenance`, then
    /// `writer`, then `state`, then `readers`.
    maintenance: Mutex<()>,
    log_size_max: u64,
    policy: SyncPolicy,
    sync_every_records: u64,
    retention_logs_max: u32,
    retention_bytes_max: u64,
    writer: WriterSlot,
    state: Mutex<State>,
    readers: Mutex<VecDeque<Cached>>,
    syncer: Option<SyncerThread>,
}

/// The running syncer; stopping it (on close or drop) joins the thread.
#[derive(Debug)]
struct SyncerThread {
    syncer: Arc<Syncer>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for SyncerThread {
    fn drop(&mut self) {
        self.syncer.control.lock().stop = true;
        self.syncer.cv.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("first_lsn", &self.first_lsn())
            .field("last_lsn", &self.last_lsn())
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens the WAL `config` describes on real directories.
    ///
    /// # Errors
    /// As [`Wal::open_with`].
    pub fn open(config: &Config) -> Result<Wal> {
        Wal::open_with(config, Env::os())
    }

    /// Opens the WAL on `env`: opens the manager, reads every log once
    /// (building the index and applying checkpoints and truncations), and
    /// starts a new log for appends.
    ///
    /// # Errors
    /// As [`Manager::open_with`], or a log that cannot be read (corruption,
    /// missing records).
    pub fn open_with(config: &Config, mut env: Env) -> Result<Wal> {
        let policy = config.wal.sync;
        let mut config = config.clone();
        match policy {
            SyncPolicy::None => {
                env.primary_fs = Arc::new(wal_fs::NoSyncFs::new(env.primary_fs));
                env.secondary_fs = Arc::new(wal_fs::NoSyncFs::new(env.secondary_fs));
            }
            SyncPolicy::Grouped => {
                config.writer.min_sync_interval = config.wal.sync_interval;
            }
            SyncPolicy::Immediate | SyncPolicy::Periodic => {}
        }
        let config = &config;
        let manager = Manager::open_with(config, env)?;
        let mut state = State {
            logs: Vec::new(),
            first_visible: Lsn(0),
            checkpoints: Vec::new(),
        };
        for log in &manager.list() {
            scan_log(&manager, &mut state, log)?;
        }
        // Above every log, empty ones included, and above the obsolete
        // watermark: a log below it would be deleted at the next open.
        let next = manager.next_log_num();
        let writer = manager.create(next)?;
        state.logs.push(LogInfo::new(next, manager.next_lsn()));
        let writer: WriterSlot = Arc::new(RwLock::new(Arc::new(writer)));
        let syncer = if policy == SyncPolicy::Periodic {
            Some(spawn_syncer(&writer, config.wal.sync_interval.0)?)
        } else {
            None
        };
        Ok(Wal {
            log_size_max: config.wal.log_size_max.0,
            policy,
            sync_every_records: config.wal.sync_every_records,
            retention_logs_max: config.wal.retention_logs_max,
            retention_bytes_max: config.wal.retention_bytes_max.0,
            writer,
            state: Mutex::new(state),
            readers: Mutex::new(VecDeque::new()),
            syncer,
            maintenance: Mutex::new(()),
            manager,
        })
    }

    /// The sync policy `append` follows.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.policy
    }

    /// The logs the WAL holds now, oldest first, with their segments: what
    /// retention and truncation count and delete.
    pub fn logs(&self) -> Vec<LogicalLog> {
        self.manager.list()
    }

    /// The manager's figures (files, bytes, syncs, failover).
    pub fn stats(&self) -> Stats {
        self.manager.stats()
    }

    /// Publishes the manager's figures through the `metrics` facade (see
    /// [`crate::metrics`]).
    pub fn publish_metrics(&self) {
        self.manager.publish_metrics();
    }

    /// The failover controls ([`FailoverManager::force_switch`], the
    /// current directory, the monitor and prober steps of
    /// [`crate::Driver::Manual`]), when the WAL runs on a failover manager.
    /// The manager itself stays the WAL's: nothing here creates, closes or
    /// deletes a log.
    pub fn failover(&self) -> Option<&FailoverManager> {
        match &self.manager {
            Manager::Standalone(_) => None,
            Manager::Failover(m) => Some(m),
        }
    }

    /// Appends a record; waits for durability as the sync policy says
    /// (`immediate`, `grouped`: yes; `periodic`, `none`: no). Returns its LSN.
    ///
    /// # Errors
    /// As [`Writer::append_sync`].
    pub fn append(&self, payload: &[u8]) -> Result<Lsn> {
        self.append_batch(&[payload]).map(|r| r.start)
    }

    /// Appends a record and waits until it is durable, whatever the policy.
    ///
    /// # Errors
    /// As [`Writer::append_sync`].
    pub fn append_sync(&self, payload: &[u8]) -> Result<Lsn> {
        self.append_batch_sync(&[payload]).map(|r| r.start)
    }

    /// Appends records as one group (contiguous LSNs, in one log, made
    /// durable together); waits as the sync policy says.
    ///
    /// # Errors
    /// As [`Writer::append_batch_sync`].
    pub fn append_batch(&self, payloads: &[&[u8]]) -> Result<Range<Lsn>> {
        let wait = matches!(self.policy, SyncPolicy::Immediate | SyncPolicy::Grouped);
        self.append_group(payloads, wait)
    }

    /// Appends records as one group and waits until all are durable.
    ///
    /// # Errors
    /// As [`Writer::append_batch_sync`].
    pub fn append_batch_sync(&self, payloads: &[&[u8]]) -> Result<Range<Lsn>> {
        self.append_group(payloads, true)
    }

    fn append_group(&self, payloads: &[&[u8]], wait: bool) -> Result<Range<Lsn>> {
        let (lsns, log, full) = {
            let w = self.writer.read();
            let lsns = w.append_group(payloads, wait)?;
            (lsns, w.log(), w.size() >= self.log_size_max)
        };
        if let Some(t) = &self.syncer {
            let n = payloads.len() as u64;
            let pending = t.syncer.pending.fetch_add(n, Ordering::Relaxed) + n;
            if self.sync_every_records > 0 && pending >= self.sync_every_records {
                t.syncer.control.lock().now = true;
                t.syncer.cv.notify_one();
            }
        }
        if full {
            let maintenance = self.maintenance.lock();
            let _ = self.rotate(&maintenance, Some(log), None)?;
        }
        Ok(lsns)
    }

    /// Applies the retention limits now (they are also applied after every
    /// log rotation); see [`Wal::apply_retention`]'s rule in the module docs.
    ///
    /// # Errors
    /// Deleting logs failed.
    pub fn apply_retention(&self) -> Result<()> {
        let maintenance = self.maintenance.lock();
        self.enforce_retention(&maintenance)
    }

    /// Deletes the oldest logs while the WAL is over its retention limits,
    /// but only logs before the latest checkpoint's log whose records the
    /// checkpoint covers. Logs the engine still needs (after the
    /// checkpoint, or any log when there is no checkpoint) are never deleted;
    /// the WAL then stays over its limits (see the figures in `Stats`).
    fn enforce_retention(&self, _maintenance: &MutexGuard<'_, ()>) -> Result<()> {
        if self.retention_logs_max == 0 && self.retention_bytes_max == 0 {
            return Ok(());
        }
        let logs = self.manager.list();
        let over = |count: usize, bytes: u64| {
            (self.retention_logs_max > 0 && count > self.retention_logs_max as usize)
                || (self.retention_bytes_max > 0 && bytes > self.retention_bytes_max)
        };
        let mut count = logs.len();
        let mut bytes: u64 = logs.iter().map(LogicalLog::size).sum();
        let min_kept = {
            let mut st = self.state.lock();
            let Some((checkpoint, checkpoint_log)) = st.checkpoints.last().cloned() else {
                return Ok(());
            };
            let mut min_kept = None;
            for log in &logs {
                if !over(count, bytes) || log.num >= checkpoint_log {
                    break;
                }
                // A log holding records after the checkpoint's LSN is still
                // needed (a `checkpoint_at` below the last record).
                let covered = st
                    .logs
                    .iter()
                    .find(|l| l.num == log.num)
                    .is_none_or(|l| l.wholly_below(checkpoint.lsn.next()));
                if !covered {
                    break;
                }
                count -= 1;
                bytes = bytes.saturating_sub(log.size());
                min_kept = Some(LogNum(log.num.0 + 1));
            }
            let Some(min_kept) = min_kept else {
                return Ok(());
            };
            st.logs.retain(|l| l.num >= min_kept);
            st.checkpoints.retain(|c| c.1 >= min_kept);
            let first = st.logs.iter().map(|l| l.start).min().unwrap_or_default();
            st.first_visible = st.first_visible.max(first);
            self.readers.lock().retain(|r| r.log >= min_kept);
            min_kept
        };
        tracing::info!(below_log = %min_kept, "retention: deleting logs covered by the latest checkpoint");
        let files = self.manager.obsolete(min_kept)?;
        self.manager.delete_obsolete(&files)
    }

    /// Makes everything appended so far durable.
    ///
    /// # Errors
    /// As [`Writer::sync`].
    pub fn sync(&self) -> Result<()> {
        self.writer.read().sync().map(|_| ())
    }

    /// The first record's LSN, if any.
    pub fn first_lsn(&self) -> Option<Lsn> {
        self.bounds().map(|b| b.0)
    }

    /// The last record's LSN, if any.
    pub fn last_lsn(&self) -> Option<Lsn> {
        self.bounds().map(|b| b.1)
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.bounds().is_none()
    }

    /// `(first, last)` visible user LSNs.
    fn bounds(&self) -> Option<(Lsn, Lsn)> {
        let last = Lsn(self.manager.next_lsn().0.checked_sub(1)?);
        let st = self.state.lock();
        let oldest = st.logs.iter().map(|l| l.start).min()?;
        let first = st.first_visible.max(oldest).max(Lsn(1));
        (first <= last).then_some((first, last))
    }

    fn out_of_range(&self, lsn: Lsn) -> Error {
        Error::LsnOutOfRange {
            lsn,
            bounds: self.bounds(),
        }
    }

    /// Reads record `lsn`.
    ///
    /// # Errors
    /// [`Error::LsnOutOfRange`] naming the valid range, or a read error.
    pub fn read(&self, lsn: Lsn) -> Result<Vec<u8>> {
        let Some((first, last)) = self.bounds() else {
            return Err(self.out_of_range(lsn));
        };
        if lsn < first || lsn > last {
            return Err(self.out_of_range(lsn));
        }
        let mut found = None;
        self.scan_from(lsn, |r| {
            found = Some(r.payload.to_vec());
            false
        })?;
        found.ok_or_else(|| self.out_of_range(lsn))
    }

    /// An iterator over the records from `lsn` on, following new appends:
    /// when it reaches the end it returns `None`, and more records later.
    pub fn iter_from(&self, lsn: Lsn) -> WalIter<'_> {
        WalIter {
            wal: self,
            next: lsn,
        }
    }

    /// Calls `f` with the records in `batch_size` batches, in `direction`
    /// order, up to the last record at the time of the call.
    ///
    /// # Errors
    /// A zero `batch_size` ([`Error::InvalidArgument`]), a read error, or the
    /// callback's error (replay stops there).
    pub fn replay<E>(
        &self,
        batch_size: usize,
        direction: Direction,
        f: impl FnMut(&[WalRecord]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), ReplayError<E>> {
        match self.bounds() {
            Some((first, last)) => self.replay_range(first..last.next(), batch_size, direction, f),
            None => check_batch(batch_size).map_err(ReplayError::Wal),
        }
    }

    /// Like [`Wal::replay`], for the records in `range` (which must lie
    /// within the log).
    ///
    /// # Errors
    /// As [`Wal::replay`], plus [`Error::LsnOutOfRange`] for a range reaching
    /// outside the log.
    pub fn replay_range<E>(
        &self,
        range: Range<Lsn>,
        batch_size: usize,
        direction: Direction,
        mut f: impl FnMut(&[WalRecord]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), ReplayError<E>> {
        check_batch(batch_size)?;
        if range.is_empty() {
            return Ok(());
        }
        let (first, last) = self
            .bounds()
            .ok_or_else(|| self.out_of_range(range.start))?;
        if range.start < first {
            return Err(self.out_of_range(range.start).into());
        }
        if range.end.0 - 1 > last.0 {
            return Err(self.out_of_range(Lsn(range.end.0 - 1)).into());
        }
        match direction {
            Direction::Forward => {
                let mut batch = Vec::with_capacity(batch_size);
                let mut failed = None;
                self.scan_from(range.start, |r| {
                    if r.lsn >= range.end {
                        return false;
                    }
                    batch.push(WalRecord {
                        lsn: r.lsn,
                        payload: r.payload.to_vec(),
                    });
                    if batch.len() == batch_size {
                        if let Err(e) = f(&batch) {
                            failed = Some(e);
                            return false;
                        }
                        batch.clear();
                    }
                    true
                })?;
                if let Some(e) = failed {
                    return Err(ReplayError::Callback(e));
                }
                if !batch.is_empty() {
                    f(&batch).map_err(ReplayError::Callback)?;
                }
                Ok(())
            }
            Direction::Backward => {
                // One log at a time, newest first: memory is bounded by the
                // log size.
                let chunks = self.log_ranges(&range);
                for chunk in chunks.into_iter().rev() {
                    let mut records = Vec::new();
                    self.scan_from(chunk.start, |r| {
                        if r.lsn >= chunk.end {
                            return false;
                        }
                        records.push(WalRecord {
                            lsn: r.lsn,
                            payload: r.payload.to_vec(),
                        });
                        true
                    })?;
                    records.reverse();
                    for batch in records.chunks(batch_size) {
                        f(batch).map_err(ReplayError::Callback)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// `range` cut at log boundaries, oldest first.
    fn log_ranges(&self, range: &Range<Lsn>) -> Vec<Range<Lsn>> {
        let st = self.state.lock();
        let mut starts: Vec<Lsn> = st
            .logs
            .iter()
            .map(|l| l.start)
            .filter(|s| *s > range.start && *s < range.end)
            .collect();
        starts.sort();
        starts.dedup();
        let mut out = Vec::new();
        let mut from = range.start;
        for s in starts {
            out.push(from..s);
            from = s;
        }
        out.push(from..range.end);
        out
    }

    /// Writes a durable checkpoint carrying `data`, after the last record
    /// appended; returns that record's LSN (0 if there is none).
    ///
    /// # Errors
    /// Closing the current log or writing the checkpoint failed.
    pub fn checkpoint(&self, data: &[u8]) -> Result<Lsn> {
        let maintenance = self.maintenance.lock();
        self.write_checkpoint(&maintenance, None, data)
    }

    /// Writes a durable checkpoint carrying `data` that covers the records
    /// up to `lsn` and no further: an engine that flushed its memtable up
    /// to `lsn` while later records kept coming says so here, and
    /// [`Wal::replay_from_checkpoint`] then replays from `lsn + 1`. Every
    /// record up to the last one appended is durable once this returns.
    /// `lsn` may be 0 (nothing covered) or any LSN up to the last one
    /// appended, and must not be below the latest checkpoint's.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an `lsn` beyond the last record or
    /// below the latest checkpoint; as [`Wal::checkpoint`].
    pub fn checkpoint_at(&self, lsn: Lsn, data: &[u8]) -> Result<Lsn> {
        let maintenance = self.maintenance.lock();
        let last = self.manager.next_lsn().0.saturating_sub(1);
        if lsn.0 > last {
            return Err(Error::InvalidArgument {
                name: "checkpoint_at lsn",
                value: format!("{lsn} (the last record is {last})"),
                expected: "at most the last record's LSN",
            });
        }
        if let Some(latest) = self.last_checkpoint() {
            if lsn < latest.lsn {
                return Err(Error::InvalidArgument {
                    name: "checkpoint_at lsn",
                    value: format!("{lsn} (the latest checkpoint covers up to {})", latest.lsn),
                    expected: "at least the latest checkpoint's LSN",
                });
            }
        }
        // A checkpoint of the last record is an ordinary one.
        let covers = (lsn.0 < last).then_some(lsn);
        self.write_checkpoint(&maintenance, covers, data)
    }

    fn write_checkpoint(
        &self,
        maintenance: &MutexGuard<'_, ()>,
        covers: Option<Lsn>,
        data: &[u8],
    ) -> Result<Lsn> {
        let marker = Marker::Checkpoint {
            covers,
            data: data.to_vec(),
        };
        let (marker_lsn, log) = self.rotate(maintenance, None, Some(&marker))?;
        let checkpoint = Checkpoint {
            lsn: covers.unwrap_or(marker_lsn),
            data: data.to_vec(),
        };
        let lsn = checkpoint.lsn;
        self.state.lock().checkpoints.push((checkpoint, log));
        Ok(lsn)
    }

    /// The latest valid checkpoint.
    pub fn last_checkpoint(&self) -> Option<Checkpoint> {
        self.state.lock().checkpoints.last().map(|c| c.0.clone())
    }

    /// Replays, forward in batches, the records after the latest checkpoint
    /// (all records when there is none): Fact's recovery model.
    ///
    /// # Errors
    /// As [`Wal::replay`].
    pub fn replay_from_checkpoint<E>(
        &self,
        batch_size: usize,
        f: impl FnMut(&[WalRecord]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), ReplayError<E>> {
        check_batch(batch_size)?;
        let Some((first, last)) = self.bounds() else {
            return Ok(());
        };
        let from = self
            .last_checkpoint()
            .map_or(first, |c| c.lsn.next().max(first));
        // (A checkpoint is dropped once records right after it are gone, so
        // `max(first)` only matters for a checkpoint at the very end.)
        if from > last {
            return Ok(());
        }
        self.replay_range(from..last.next(), batch_size, Direction::Forward, f)
    }

    /// Removes every record below `lsn` at once (for readers), durably, and
    /// deletes the logs wholly below it. `lsn` may be one past the last
    /// record, which empties the WAL.
    ///
    /// # Errors
    /// [`Error::LsnOutOfRange`] outside `first..=last + 1`, or a write error.
    pub fn truncate_before(&self, lsn: Lsn) -> Result<()> {
        let maintenance = self.maintenance.lock();
        let Some((first, last)) = self.bounds() else {
            return Err(self.out_of_range(lsn));
        };
        if lsn < first || lsn > last.next() {
            return Err(self.out_of_range(lsn));
        }
        let _ = self.rotate(&maintenance, None, Some(&Marker::TruncateBefore(lsn)))?;
        let min_kept = {
            let mut st = self.state.lock();
            st.first_visible = st.first_visible.max(lsn);
            // A checkpoint whose following records are gone is stale.
            st.checkpoints.retain(|c| c.0.lsn.next() >= lsn);
            // Logs wholly below `lsn` (a prefix) can go, except the logs of
            // the valid checkpoints (a checkpoint's log may hold no record
            // at all). Not only the latest: a later `truncate_after` below
            // it makes an earlier one the latest again. Valid checkpoints
            // are at `lsn - 1` or later, so this keeps at most the marker
            // logs between records `lsn - 1` and `lsn`.
            let mut keep_from = st
                .logs
                .iter()
                .position(|l| !l.wholly_below(lsn))
                .unwrap_or(st.logs.len());
            for (_, log) in &st.checkpoints {
                if let Some(p) = st.logs.iter().position(|l| l.num == *log) {
                    keep_from = keep_from.min(p);
                }
            }
            let gone: Vec<LogNum> = st.logs[..keep_from].iter().map(|l| l.num).collect();
            st.logs.drain(..keep_from);
            // What goes from disk goes from memory too, so that a reopen
            // sees the same checkpoints.
            st.checkpoints.retain(|c| !gone.contains(&c.1));
            self.readers.lock().retain(|r| !gone.contains(&r.log));
            st.logs.first().map(|l| l.num)
        };
        if let Some(min_kept) = min_kept {
            let files = self.manager.obsolete(min_kept)?;
            self.manager.delete_obsolete(&files)?;
        }
        Ok(())
    }

    /// Removes every record above `lsn`, durably and atomically (a crash
    /// leaves the old state or the new one); the next append gets `lsn + 1`.
    /// `lsn` may be one below the first record, which empties the WAL.
    ///
    /// # Errors
    /// [`Error::LsnOutOfRange`] outside `first - 1..=last`, or a write error.
    pub fn truncate_after(&self, lsn: Lsn) -> Result<()> {
        let maintenance = self.maintenance.lock();
        let Some((first, last)) = self.bounds() else {
            return Err(self.out_of_range(lsn));
        };
        if lsn.0 + 1 < first.0 || lsn > last {
            return Err(self.out_of_range(lsn));
        }
        let _ = self.rotate(&maintenance, None, Some(&Marker::TruncateAfter(lsn)))?;
        let mut st = self.state.lock();
        let earlier = st.logs.len() - 1;
        apply_truncate_after(&mut st, earlier, lsn);
        self.readers.lock().clear();
        Ok(())
    }

    /// Closes the current log and starts the next one; with `marker`, the
    /// next log starts with it (durably). With `only_if`, rotates only if
    /// that log is still the current one. Returns the marker's LSN and the
    /// new log's number.
    fn rotate(
        &self,
        maintenance: &MutexGuard<'_, ()>,
        only_if: Option<LogNum>,
        marker: Option<&Marker>,
    ) -> Result<(Lsn, LogNum)> {
        let mut w = self.writer.write();
        if only_if.is_some_and(|n| n != w.log()) {
            return Ok((Lsn(0), w.log()));
        }
        let old = w.log();
        w.close()?;
        {
            // Seal the old log: its last user LSN is the last one assigned,
            // unless it got none.
            let last = Lsn(self.manager.next_lsn().0.saturating_sub(1));
            let mut st = self.state.lock();
            if let Some(info) = st.logs.iter_mut().find(|l| l.num == old) {
                info.sealed = true;
                info.last_user = (last >= info.start).then_some(last);
            }
        }
        if let Some(Marker::TruncateAfter(lsn)) = marker {
            self.manager.rewind_next_lsn(lsn.next())?;
        }
        let next = LogNum(old.0 + 1);
        let writer = self.manager.create(next)?;
        let lsn = match marker {
            Some(m) => writer.append_marker(&m.encode())?,
            None => Lsn(0),
        };
        let start = self.manager.next_lsn();
        *w = Arc::new(writer);
        self.state.lock().logs.push(LogInfo::new(next, start));
        drop(w);
        self.enforce_retention(maintenance)?;
        Ok((lsn, next))
    }

    /// Reads user records from `lsn` on, calling `f` for each until it
    /// returns false or the written log ends. Uses (and refills) the reader
    /// cache and the index.
    ///
    /// A truncation or retention running meanwhile may delete the log being
    /// read (it leaves memory before its files go): reading then stops
    /// there, without error, and the caller sees the new bounds.
    fn scan_from(
        &self,
        mut lsn: Lsn,
        mut f: impl FnMut(&crate::reader::LogRecord<'_>) -> bool,
    ) -> Result<()> {
        let mut previous: Option<LogNum> = None;
        loop {
            let log_num = {
                let st = self.state.lock();
                match st.log_for(lsn) {
                    Some(i) => st.logs[i].num,
                    None => return Ok(()),
                }
            };
            if previous == Some(log_num) {
                // This log is read to its end and nothing follows it yet.
                return Ok(());
            }
            previous = Some(log_num);
            {
                let w = self.writer.read();
                if w.log() == log_num {
                    w.flush()?;
                }
            }
            let Some(mut reader) = self.reader_for(log_num, lsn) else {
                return Ok(()); // truncated away meanwhile
            };
            loop {
                let rec = match reader.next() {
                    Ok(Some(rec)) => rec,
                    Ok(None) => break,
                    // Files deleted under the reader read as missing
                    // segments or missing records.
                    Err(_) if !self.holds(log_num) => return Ok(()),
                    Err(e) => return Err(e),
                };
                let point = Point {
                    lsn: rec.lsn,
                    segment_pos: rec.segment_pos,
                    offset: rec.offset,
                };
                let clip = {
                    let mut st = self.state.lock();
                    let Some(info) = st.logs.iter_mut().find(|l| l.num == log_num) else {
                        return Ok(()); // truncated away meanwhile
                    };
                    info.note(point, rec.end, rec.system);
                    info.clip
                };
                if rec.system || rec.lsn < lsn {
                    continue;
                }
                if clip.is_some_and(|c| rec.lsn > c) {
                    break;
                }
                lsn = rec.lsn.next();
                if !f(&rec) {
                    let sealed = self
                        .state
                        .lock()
                        .logs
                        .iter()
                        .any(|l| l.num == log_num && l.sealed);
                    if sealed {
                        self.cache_reader(log_num, reader, lsn);
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Whether log `log_num` is still one of the WAL's.
    fn holds(&self, log_num: LogNum) -> bool {
        self.state.lock().logs.iter().any(|l| l.num == log_num)
    }

    /// A reader of log `log_num` positioned at or before user record `lsn`:
    /// from the cache when one stopped just there, else from the index.
    /// `None` when the log is gone (truncated away meanwhile).
    fn reader_for(&self, log_num: LogNum, lsn: Lsn) -> Option<LogicalReader> {
        {
            let mut cache = self.readers.lock();
            if let Some(i) = cache.iter().position(|c| c.log == log_num && c.next == lsn) {
                if let Some(c) = cache.remove(i) {
                    return Some(c.reader);
                }
            }
        }
        let log = self.manager.list().into_iter().find(|l| l.num == log_num)?;
        let start = {
            let st = self.state.lock();
            st.logs.iter().find(|l| l.num == log_num)?.start_for(lsn)
        };
        let dirs = self.manager.dirs().clone();
        Some(match start {
            Some((pos, offset, last)) => LogicalReader::resume_at(&log, dirs, pos, offset, last),
            None => LogicalReader::new(&log, dirs),
        })
    }

    fn cache_reader(&self, log: LogNum, reader: LogicalReader, next: Lsn) {
        let mut cache = self.readers.lock();
        if cache.len() == READERS_CACHED {
            cache.pop_front();
        }
        cache.push_back(Cached { log, reader, next });
    }

    /// Closes the current log and the manager.
    ///
    /// # Errors
    /// The final close failed.
    pub fn close(self) -> Result<()> {
        let Wal {
            manager,
            writer,
            readers,
            syncer,
            ..
        } = self;
        drop(syncer);
        drop(readers);
        let writer = Arc::try_unwrap(writer)
            .map(RwLock::into_inner)
            .map_err(|_| Error::Closed("the WAL, still shared,"))?;
        writer.close()?;
        drop(writer);
        manager.close()
    }
}

/// A forward iterator over a [`Wal`] that follows new appends
/// ([`Wal::iter_from`]).
#[derive(Debug)]
pub struct WalIter<'a> {
    wal: &'a Wal,
    next: Lsn,
}

impl WalIter<'_> {
    /// The LSN of the record the next call returns (if it exists by then).
    pub fn position(&self) -> Lsn {
        self.next
    }

    /// The next record, or `None` at the current end (call again later for
    /// records appended since). Records truncated away under the iterator
    /// are skipped, also while a truncation runs.
    ///
    /// # Errors
    /// A read error.
    #[allow(clippy::should_implement_trait)] // fallible, and resumable after None
    pub fn next(&mut self) -> Result<Option<WalRecord>> {
        loop {
            let Some((first, last)) = self.wal.bounds() else {
                return Ok(None);
            };
            self.next = self.next.max(first);
            if self.next > last {
                return Ok(None);
            }
            let mut out = None;
            let want = self.next;
            self.wal.scan_from(want, |r| {
                out = Some(WalRecord {
                    lsn: r.lsn,
                    payload: r.payload.to_vec(),
                });
                false
            })?;
            if let Some(r) = &out {
                self.next = r.lsn.next();
                return Ok(out);
            }
            // Nothing at `want` although it was within the bounds: a
            // truncation removed it meanwhile. Go on from the new first
            // record; otherwise (a `truncate_after` below it) this is the
            // end.
            match self.wal.bounds() {
                Some((first, _)) if first > want => {}
                _ => return Ok(None),
            }
        }
    }
}

/// Starts the `periodic` policy's background syncer: it syncs the current
/// log every `interval`, or sooner when notified (every N records).
fn spawn_syncer(writer: &WriterSlot, interval: Duration) -> Result<SyncerThread> {
    let syncer = Arc::new(Syncer::default());
    let (s, w) = (Arc::clone(&syncer), Arc::clone(writer));
    let handle = std::thread::Builder::new()
        .name("wal-periodic-sync".into())
        .spawn(move || {
            loop {
                {
                    let mut control = s.control.lock();
                    if !control.stop && !control.now {
                        s.cv.wait_for(&mut control, interval);
                    }
                    if control.stop {
                        return;
                    }
                    control.now = false;
                }
                if s.pending.swap(0, Ordering::Relaxed) == 0 {
                    continue;
                }
                let current = Arc::clone(&w.read());
                if let Err(e) = current.sync() {
                    // The writer's error is sticky: the next append gets it.
                    tracing::error!(error = %e, "periodic sync failed");
                }
            }
        })
        .map_err(|e| Error::Fs(wal_fs::Error::io(wal_fs::Op::Sync, "wal-periodic-sync", e)))?;
    Ok(SyncerThread {
        syncer,
        handle: Some(handle),
    })
}

fn check_batch(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument {
            name: "batch_size",
            value: "0".into(),
            expected: "at least 1",
        });
    }
    Ok(())
}

/// Applies `truncate_after(lsn)` to the first `earlier` logs (those before
/// the marker's log).
fn apply_truncate_after(st: &mut State, earlier: usize, lsn: Lsn) {
    for info in &mut st.logs[..earlier] {
        info.clip = Some(info.clip.map_or(lsn, |c| c.min(lsn)));
        info.index.retain(|p| p.lsn <= lsn);
    }
    st.checkpoints.retain(|c| c.0.lsn <= lsn);
}

/// Reads one log at open: indexes it and applies its markers.
fn scan_log(manager: &Manager, st: &mut State, log: &LogicalLog) -> Result<()> {
    let mut reader = manager.open_reader(log.num)?;
    let mut info: Option<LogInfo> = None;
    while let Some(rec) = reader.next()? {
        let info = info.get_or_insert_with(|| {
            // A log that starts with a marker holds user records from the
            // marker's LSN + 1.
            let start = if rec.system { rec.lsn.next() } else { rec.lsn };
            LogInfo::new(log.num, start)
        });
        if rec.system {
            match Marker::decode(rec.payload) {
                Some(Marker::Checkpoint { covers, data }) => st.checkpoints.push((
                    Checkpoint {
                        lsn: covers.unwrap_or(rec.lsn),
                        data,
                    },
                    log.num,
                )),
                Some(Marker::TruncateBefore(first)) => {
                    st.first_visible = st.first_visible.max(first);
                    st.checkpoints.retain(|c| c.0.lsn.next() >= first);
                }
                Some(Marker::TruncateAfter(last)) => {
                    let earlier = st.logs.len();
                    apply_truncate_after(st, earlier, last);
                }
                None => {
                    tracing::warn!(log = %log.num, lsn = rec.lsn.0, "unknown system record ignored");
                }
            }
        }
        info.note(
            Point {
                lsn: rec.lsn,
                segment_pos: rec.segment_pos,
                offset: rec.offset,
            },
            rec.end,
            rec.system,
        );
    }
    if let Some(mut info) = info {
        info.sealed = true;
        info.last_user = info.scanned;
        st.logs.push(info);
    }
    Ok(())
}
