//! The `Wal`: a log you open, append to and read back by LSN, with the
//! managers (and failover) underneath. See [`Wal`].

mod index;
mod marker;
mod read;
mod replay;
mod syncer;

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::config::{Config, SyncPolicy};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::failover::FailoverManager;
use crate::log::LogicalLog;
use crate::manager::{Manager, Writer};
use crate::stats::Stats;
use crate::types::{LogNum, Lsn};

use self::index::{LogInfo, State, apply_truncate_after, scan_log};
use self::marker::Marker;
use self::read::Cached;
use self::syncer::{SyncerThread, spawn_syncer};

pub use self::read::WalIter;
pub use self::replay::{Direction, ReplayError};

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
    /// missing records, an older log cut short), or
    /// [`Error::NeedsLsnSequencing`] for a `pebble-batch` configuration:
    /// its records are the engine's batches, read with the
    /// [`Manager`] API.
    pub fn open_with(config: &Config, mut env: Env) -> Result<Wal> {
        // The `Wal` addresses records by failwal's LSNs and keeps its
        // checkpoints and truncations as system records: both need the
        // envelope.
        if config.log.sequencing != crate::envelope::Sequencing::Lsn {
            return Err(Error::NeedsLsnSequencing {
                what: "the Wal API (LSN-addressed reads, checkpoints and truncations)",
            });
        }
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
