//! What both managers build on: the directories and their locks, the list
//! of live logs, the recycler, the LSN counter, `WAL-STATE`, and the
//! recovery of all of these at open.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use wal_fs::DirLock;
use wal_record::{LogWriter, LogWriterMetrics, LogWriterOptions};

use crate::archive::{ArchiveHandle, LogArchive, PendingLog};
use crate::clock::Clock;
use crate::config::Config;
use crate::env::Env;
use crate::envelope::{BATCH_HEADER_SIZE, Sequencing};
use crate::error::{Error, Result};
use crate::layout;
use crate::log::{DeletableFile, Dir, Dirs, LogicalLog, Segment, scan};
use crate::meta;
use crate::naming::{parse_recycle_file_name, recycle_file_name};
use crate::reader::{LogEnd, LogicalReader};
use crate::recycler::{RecycledFile, Recycler};
use crate::stats::{ArchiveStats, Stats};
use crate::types::{DirId, LogNum, Lsn, SegmentIndex};

/// A log the manager still tracks.
#[derive(Debug)]
pub(crate) struct LiveLog {
    pub(crate) log: LogicalLog,
    /// Closed cleanly by this manager as one segment, index 0, in the
    /// primary: its file may be recycled.
    pub(crate) recyclable: bool,
    /// Its writer is done (closed or dropped), or it was found at open:
    /// nothing more will be appended to it.
    pub(crate) closed: bool,
    /// The archive said it is archived (always false without `[archive]`).
    pub(crate) archived: bool,
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
    /// With `[archive]`: obsolete logs whose files wait for the archive,
    /// by number. INVARIANT: none of them is in `logs`, and their files
    /// are deleted only by `mark_archived`.
    pub(crate) awaiting: Vec<LogicalLog>,
    /// The backlog was over `archive.backlog_bytes_max` when last looked
    /// at (so that crossing the bound is logged once each way).
    pub(crate) backlog_full: bool,
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
    /// Held across computing, writing and recording `WAL-STATE`, so that
    /// two callers of `obsolete` (say, retention after a rotation and a
    /// `truncate_before`) can neither write it at once (they share its
    /// temporary file) nor let an older state overwrite a newer one.
    state_file: Mutex<()>,
    /// The directory locks; emptied (released) by `close`, or when the
    /// manager is dropped with no writer open. Also held while
    /// `mark_archived` deletes files, so that no file is deleted after the
    /// directories were handed back.
    locks: Mutex<Vec<Box<dyn DirLock>>>,
    /// The archive, if one is attached.
    archive: Option<Arc<dyn LogArchive>>,
}

impl Core {
    /// Creates and locks the directories, scans the logs and recovers the
    /// next LSN.
    pub(crate) fn open(config: &Config, env: &Env) -> Result<Core> {
        let dirs = Dirs::with_fs(config, &env.primary_fs, &env.secondary_fs);
        // The checks that only read come before anything is created,
        // locked or written (`crate::layout`).
        let mut all_exist = true;
        for dir in dirs.iter() {
            all_exist &= layout::check_wal_dir(dir.fs.as_ref(), dir.id, &dir.path)?;
        }
        layout::check_roles(&dirs)?;
        if all_exist {
            layout::check_segment_starts(&dirs, &scan(&dirs)?)?;
        }
        let mut locks = Vec::new();
        for dir in dirs.iter() {
            wal_fs::create_dir_all_durably(dir.fs.as_ref(), &dir.path)?;
            locks.push(dir.fs.lock(&dir.path)?);
        }
        let state = meta::read_state(&dirs)?;
        let (gone, logs): (Vec<LogicalLog>, Vec<LogicalLog>) = scan(&dirs)?
            .into_iter()
            .partition(|l| l.num.0 < state.obsolete_below);
        layout::check_segment_starts(&dirs, &logs)?;
        // With an archive, an obsolete log's files go only once it is
        // archived, and whether it is, only the archive can say: they wait.
        let awaiting = if config.archive.is_some() {
            layout::check_segment_starts(&dirs, &gone)?;
            gone
        } else {
            let leftovers: Vec<(DirId, PathBuf)> = gone
                .iter()
                .flat_map(|l| &l.segments)
                .map(|s| (s.dir, s.path.clone()))
                .collect();
            delete_files(&dirs, &leftovers, "deleted a leftover of an obsolete log")?;
            Vec::new()
        };
        if config.archive.is_some() && env.archive.is_none() {
            tracing::warn!(
                primary = %dirs.primary.path.display(),
                "[archive] is configured but no archive is attached: every closed log is kept until a manager opened with one archives it"
            );
        }
        let next_lsn = recover_next_lsn(&dirs, &logs, state.lsn_floor, config.log.sequencing)?;
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
                        closed: true,
                        archived: false,
                    })
                    .collect(),
                open: None,
                state_written: state,
                recycler,
                closed: false,
                awaiting,
                backlog_full: false,
            }),
            totals: Mutex::new(LogWriterMetrics::default()),
            current: Mutex::new(None),
            state_file: Mutex::new(()),
            locks: Mutex::new(locks),
            archive: env.archive.clone(),
        })
    }

    /// Hands the archive, if any, its handle on this manager; reports a
    /// backlog already over its bound. Called once the manager is built.
    pub(crate) fn attach_archive(self: &Arc<Core>) {
        self.note_backlog();
        if let Some(archive) = &self.archive {
            archive.attach(ArchiveHandle::new(self));
        }
    }

    /// Whether the manager was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Whether logs wait for an archive before they may go.
    fn archiving(&self) -> bool {
        self.config.archive.is_some()
    }

    pub(crate) fn next_lsn(&self) -> Lsn {
        Lsn(self.next_lsn.load(Ordering::Acquire))
    }

    pub(crate) fn next_log_num(&self) -> LogNum {
        let st = self.state.lock();
        let above_last = st.logs.last().map_or(1, |l| l.log.num.0 + 1);
        LogNum(above_last.max(st.state_written.obsolete_below).max(1))
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
        if log.0 < st.state_written.obsolete_below {
            return Err(Error::LogNumObsolete {
                requested: log,
                obsolete_below: LogNum(st.state_written.obsolete_below),
            });
        }
        st.open = Some(log);
        st.logs.push(LiveLog {
            log: LogicalLog {
                num: log,
                segments: Vec::new(),
            },
            recyclable: false,
            closed: false,
            archived: false,
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
    ///
    /// The archive, if any, hears of it once the log is recorded as closed
    /// (on this thread: [`LogArchive::log_closed`] must not block).
    pub(crate) fn writer_closed(&self, log: LogNum, recyclable: bool) {
        let mut st = self.state.lock();
        if st.open == Some(log) {
            st.open = None;
        }
        let mut newly_closed = false;
        if let Some(live) = st.logs.iter_mut().find(|l| l.log.num == log) {
            live.recyclable = recyclable
                && live.log.segments.len() == 1
                && live.log.segments[0].index == SegmentIndex(0)
                && live.log.segments[0].dir == DirId::Primary;
            newly_closed = !live.closed;
            live.closed = true;
        }
        drop(st);
        if newly_closed && self.archiving() {
            self.note_backlog();
            if let Some(archive) = &self.archive {
                archive.log_closed(log);
            }
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
        // One caller at a time from here to the recorded state: both values
        // only grow, and the file is written through one temporary name.
        let state_file = self.state_file.lock();
        let wanted = {
            let st = self.state.lock();
            if st.closed {
                return Err(Error::Closed("the manager"));
            }
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
        drop(state_file);
        let mut deletable = Vec::new();
        let mut to_recycle = Vec::new();
        let archiving = self.archiving();
        let mut now_awaiting = 0;
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
                if archiving && !live.archived {
                    // Not deleted, not recycled: its files wait for the
                    // archive (`mark_archived`).
                    tracing::debug!(log = %live.log.num, "obsolete log kept until it is archived");
                    st.awaiting.push(live.log);
                    now_awaiting += 1;
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
            st.awaiting.sort_by_key(|l| l.num);
        }
        if now_awaiting > 0 {
            tracing::info!(
                logs = now_awaiting,
                "obsolete logs not yet archived are kept until they are"
            );
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
        let files: Vec<(DirId, PathBuf)> = files.iter().map(|f| (f.dir, f.path.clone())).collect();
        delete_files(&self.dirs, &files, "obsolete log file deleted")
    }

    /// A reader of live log `log`. Readers take records of any size the
    /// format allows, whatever `writer.record_size_max` says now: that limit
    /// is for appends, and a log written under a larger one must stay
    /// readable.
    pub(crate) fn open_reader(&self, log: LogNum) -> Result<LogicalReader> {
        let st = self.state.lock();
        let live = st
            .logs
            .iter()
            .find(|l| l.log.num == log)
            .ok_or(Error::NoSuchLog(log))?;
        // Every log but the newest was closed before a newer one began.
        let newest = st.logs.last().is_some_and(|l| l.log.num == log);
        Ok(LogicalReader::new(&live.log, self.dirs.clone())
            .with_sequencing(self.sequencing())
            .strict_tail(!newest))
    }

    pub(crate) fn record_size_max(&self) -> usize {
        self.config.writer.record_size_max.0 as usize
    }

    /// How records are sequenced.
    pub(crate) fn sequencing(&self) -> Sequencing {
        self.config.log.sequencing
    }

    /// Refuses a group with a record over `writer.record_size_max`, or, in
    /// `pebble-batch` mode, one too short for a batch header (before
    /// anything is appended, so that no LSN is used up).
    pub(crate) fn check_record_sizes(&self, payloads: &[&[u8]]) -> Result<()> {
        let max = self.record_size_max();
        if let Some(p) = payloads.iter().find(|p| p.len() > max) {
            return Err(Error::RecordTooLarge {
                len: p.len() as u64,
                max: max as u64,
            });
        }
        if self.sequencing() == Sequencing::PebbleBatch {
            if let Some(p) = payloads.iter().find(|p| p.len() < BATCH_HEADER_SIZE) {
                return Err(Error::NotABatch { len: p.len() });
            }
        }
        Ok(())
    }

    /// Refuses system records (markers) where records carry no envelope.
    pub(crate) fn check_markers_allowed(&self) -> Result<()> {
        match self.sequencing() {
            Sequencing::Lsn => Ok(()),
            Sequencing::PebbleBatch => Err(Error::NeedsLsnSequencing {
                what: "system records (checkpoints, truncation markers)",
            }),
        }
    }

    /// Writer options for a segment of `log`.
    pub(crate) fn writer_options(&self, log: LogNum) -> LogWriterOptions {
        let w = &self.config.writer;
        LogWriterOptions {
            log_num: log.header_bits(),
            format: w.format.0,
            min_sync_interval: w.min_sync_interval.0,
            pending_bytes_max: w.pending_bytes_max.0 as usize,
            record_size_max: self.record_size_max() + self.sequencing().prefix_size(),
            on_sync: None,
            sync_linger: false,
        }
    }

    /// The file-count part of the stats.
    pub(crate) fn base_stats(&self) -> Stats {
        let st = self.state.lock();
        let (obsolete_files, obsolete_bytes) = st.recycler.stats();
        let archive = self.archiving().then(|| {
            let (backlog_logs, backlog_bytes) = backlog(&st);
            ArchiveStats {
                backlog_logs,
                backlog_bytes,
                awaiting_logs: st.awaiting.len(),
                awaiting_bytes: st.awaiting.iter().map(LogicalLog::size).sum(),
                backlog_full: st.backlog_full,
            }
        });
        Stats {
            archive,
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
        self.totals.lock().add(m);
    }

    /// The totals of closed segment writers plus `current`.
    pub(crate) fn totals_with(&self, current: Option<&LogWriterMetrics>) -> LogWriterMetrics {
        let mut t = self.totals.lock().clone();
        if let Some(c) = current {
            t.add(c);
        }
        t
    }

    /// Refuses to close while a writer is open; marks the manager closed
    /// (no new writer, no `obsolete`). The locks stay until
    /// [`Core::release_locks`].
    pub(crate) fn begin_close(&self) -> Result<()> {
        let mut st = self.state.lock();
        if let Some(open) = st.open {
            return Err(Error::CloseWithWriterOpen { open });
        }
        st.closed = true;
        Ok(())
    }

    /// Releases the directory locks if no writer is open (a writer that is
    /// still open keeps them, through its `Arc<Core>`, until it is dropped).
    /// Marks the manager closed.
    pub(crate) fn release_locks(&self) {
        let mut st = self.state.lock();
        if st.open.is_some() {
            return;
        }
        st.closed = true;
        let released = std::mem::take(&mut *self.locks.lock());
        drop(st);
        if !released.is_empty() {
            tracing::debug!(primary = %self.dirs.primary.path.display(), "wal manager closed; directory locks released");
        }
        drop(released);
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

impl Core {
    /// Every closed log not yet archived, by number.
    pub(crate) fn archive_pending(&self) -> Vec<PendingLog> {
        let st = self.state.lock();
        let mut pending: Vec<PendingLog> = st
            .logs
            .iter()
            .filter(|l| l.closed && !l.archived)
            .map(|l| PendingLog {
                log: l.log.clone(),
                obsolete: false,
            })
            .chain(st.awaiting.iter().map(|log| PendingLog {
                log: log.clone(),
                obsolete: true,
            }))
            .collect();
        pending.sort_by_key(|p| p.log.num);
        pending
    }

    /// A reader of the pending log `log` for the archive: a torn tail at
    /// its end is tolerated (what is readable is what there is).
    pub(crate) fn archive_reader(&self, log: LogNum) -> Result<LogicalReader> {
        let st = self.state.lock();
        let found = st
            .logs
            .iter()
            .filter(|l| l.closed)
            .map(|l| &l.log)
            .chain(st.awaiting.iter())
            .find(|l| l.num == log)
            .ok_or(Error::NoSuchLog(log))?;
        Ok(LogicalReader::new(found, self.dirs.clone())
            .with_sequencing(self.sequencing())
            .strict_tail(false))
    }

    /// Records that `log` is archived; deletes its files durably if it is
    /// obsolete.
    pub(crate) fn mark_archived(&self, log: LogNum) -> Result<()> {
        let obsolete = {
            let mut st = self.state.lock();
            if st.closed {
                return Err(Error::Closed("the manager"));
            }
            if let Some(live) = st.logs.iter_mut().find(|l| l.log.num == log) {
                live.archived = true;
                None
            } else {
                st.awaiting
                    .iter()
                    .position(|l| l.num == log)
                    .map(|i| st.awaiting.remove(i))
            }
        };
        let deleted = match &obsolete {
            Some(gone) => self.delete_archived(gone),
            None => Ok(()),
        };
        if let (Err(_), Some(gone)) = (&deleted, obsolete) {
            // Offered again: its files are still (partly) there.
            let mut st = self.state.lock();
            st.awaiting.push(gone);
            st.awaiting.sort_by_key(|l| l.num);
        }
        self.note_backlog();
        deleted
    }

    /// Deletes the files of an archived obsolete log, while the directory
    /// locks are still held.
    fn delete_archived(&self, gone: &LogicalLog) -> Result<()> {
        let locks = self.locks.lock();
        if locks.is_empty() {
            return Err(Error::Closed("the manager"));
        }
        let files: Vec<(DirId, PathBuf)> = gone
            .segments
            .iter()
            .map(|s| (s.dir, s.path.clone()))
            .collect();
        delete_files(&self.dirs, &files, "archived obsolete log file deleted")?;
        drop(locks);
        tracing::debug!(log = %gone.num, "obsolete log archived; its files are deleted");
        Ok(())
    }

    /// Logs the backlog crossing `archive.backlog_bytes_max`, either way.
    fn note_backlog(&self) {
        let Some(archive) = &self.config.archive else {
            return;
        };
        let max = archive.backlog_bytes_max.0;
        let (logs, bytes, oldest, crossed) = {
            let mut st = self.state.lock();
            let (logs, bytes) = backlog(&st);
            let full = bytes > max;
            let crossed = (full != st.backlog_full).then_some(full);
            st.backlog_full = full;
            let oldest = st
                .logs
                .iter()
                .filter(|l| l.closed && !l.archived)
                .map(|l| l.log.num)
                .chain(st.awaiting.iter().map(|l| l.num))
                .min();
            (logs, bytes, oldest, crossed)
        };
        match crossed {
            Some(true) => tracing::error!(
                logs,
                bytes,
                backlog_bytes_max = max,
                oldest = ?oldest.map(|l| l.0),
                url = %archive.url,
                "archive backlog over archive.backlog_bytes_max: closed logs are not reaching the archive; every one is kept locally until it is archived (none is deleted), so the WAL's directories grow"
            ),
            Some(false) => tracing::info!(
                logs,
                bytes,
                backlog_bytes_max = max,
                "archive backlog back under archive.backlog_bytes_max"
            ),
            None => {}
        }
    }
}

/// The archive's backlog: closed logs not yet archived, live or obsolete,
/// and their bytes.
fn backlog(st: &CoreState) -> (usize, u64) {
    let live = st.logs.iter().filter(|l| l.closed && !l.archived);
    let (mut logs, mut bytes) = (0, 0);
    for log in live.map(|l| &l.log).chain(st.awaiting.iter()) {
        logs += 1;
        bytes += log.size();
    }
    (logs, bytes)
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

/// Deletes `files` (one already gone is fine), then syncs each directory
/// that had one, so the removals are durable. `what` is the log line for
/// each file removed.
fn delete_files(dirs: &Dirs, files: &[(DirId, PathBuf)], what: &'static str) -> Result<()> {
    let mut touched = Vec::new();
    for (id, path) in files {
        match dirs.get(*id).fs.remove(path) {
            Ok(()) => tracing::debug!(path = %path.display(), "{what}"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        if !touched.contains(id) {
            touched.push(*id);
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
///
/// The newest log may end with a torn tail (a crash cut its last writes):
/// that tail is cut here, durably, because a newer log is about to follow
/// and every log but the newest must end cleanly (strict tails). Older logs
/// read on the way are held to that.
fn recover_next_lsn(
    dirs: &Dirs,
    logs: &[LogicalLog],
    floor: Lsn,
    sequencing: Sequencing,
) -> Result<Lsn> {
    for (i, log) in logs.iter().enumerate().rev() {
        let newest = i + 1 == logs.len();
        let mut reader = LogicalReader::new(log, dirs.clone())
            .with_sequencing(sequencing)
            .strict_tail(!newest);
        while reader.next()?.is_some() {}
        if let Some(LogEnd::TornTail { path, offset }) = reader.end() {
            if let Some(segment) = log.segments.iter().find(|s| &s.path == path) {
                dirs.get(segment.dir).fs.truncate(path, *offset)?;
                tracing::info!(log = %log.num, path = %path.display(), offset, "cut the torn tail of the newest log");
            }
        }
        if let Some(last) = reader.last_lsn() {
            return Ok(last.next());
        }
    }
    Ok(floor.max(Lsn(1)))
}
