//! The failover writer: one log written as a sequence of segments, moving to
//! a new segment (in the other directory) whenever the monitor says so.
//!
//! # Invariants
//!
//! * Every record appended and not yet known durable is in `queue`, in LSN
//!   order; the queue holds a contiguous range of LSNs starting at
//!   `durable_until`. A record leaves the queue once *any* segment has synced
//!   it (Pebble: "released once any writer synced it").
//! * When a new segment's writer is installed, every queued record is
//!   replayed into it, in LSN order, under the same lock that appenders take,
//!   before any later record. So segment `k + 1` starts at or before the
//!   first record that no earlier segment had made durable, which is what
//!   lets the reader drop duplicates by LSN.
//! * Segment files are created on their own threads: a switch never waits
//!   for I/O, so a hung `create` on a stalled disk cannot stall appenders or
//!   the monitor (which sees the hung create's latency and switches again).
//! * An old segment's writer is never waited for. It stays open (a slow sync
//!   that finally completes still acknowledges records), and is closed in
//!   the background when the log closes. Its file is reported to the
//!   manager from the moment the switch reserves it, so it can always be
//!   deleted later (Pebble #5355).
//!
//! # Lock order
//!
//! monitor -> writer state -> record-layer writer / manager core. The
//! record-layer writers call back (`on_sync`) without holding their own
//! lock, and never block an appender (their buffer is unbounded here: the
//! queue bounds memory instead), so an appender holding the state lock can
//! never wait on a flush thread that waits on the state lock.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use wal_record::{Histogram, LogWriter, LogWriterMetrics, SyncEvent, format};

use crate::core::Core;
use crate::envelope::{self, Sequencing};
use crate::error::{Error, Result};
use crate::log::Segment;
use crate::recorder::{RecordedFile, Recorder};
use crate::recycler::RecycledFile;
use crate::types::{DirId, LogNum, Lsn, SegmentIndex};

use super::Tasks;

/// How long `flush` waits for a segment being created, by the manager's
/// clock.
const FLUSH_WAIT_MAX: Duration = Duration::from_secs(10);

/// A record not yet known durable.
struct Queued {
    lsn: Lsn,
    /// The stored bytes: LSN prefix and payload.
    stored: Box<[u8]>,
}

enum SlotState {
    /// The file is being created.
    Creating,
    /// Writing (the newest slot), or left behind by a later switch but not
    /// closed yet.
    Live(Arc<LogWriter<RecordedFile>>),
    /// Creation failed.
    Failed(String),
    /// `close` is running in the background.
    Closing,
    /// Closed; the result of the record-layer close.
    Closed(std::result::Result<u64, String>),
}

/// One segment of the log.
struct Slot {
    index: SegmentIndex,
    dir: DirId,
    path: PathBuf,
    recorder: Arc<Recorder>,
    state: SlotState,
    /// `(end offset in this segment, lsn)` of records handed to this
    /// segment's writer and not yet synced there, oldest first.
    pending: VecDeque<(u64, Lsn)>,
    /// Size when last known.
    size: u64,
}

struct State {
    queue: VecDeque<Queued>,
    queue_bytes: usize,
    /// Every record with an LSN below this is durable.
    durable_until: Lsn,
    /// The last LSN appended.
    last_appended: Option<Lsn>,
    /// The highest LSN a waiter needs durable.
    sync_wanted: Option<Lsn>,
    slots: Vec<Slot>,
    /// Appends are refused: `close` was called.
    closing: bool,
    /// `close` finished.
    closed: bool,
    /// Set when the writer can neither write nor switch: every waiter and
    /// later append gets this reason.
    failed: Option<String>,
    /// The log's size as if it were one segment.
    logical_size: u64,
}

pub(crate) struct Inner {
    log: LogNum,
    core: Arc<Core>,
    tasks: Arc<Tasks>,
    state: Mutex<State>,
    /// Durability waiters, appenders waiting for queue room, and `close`.
    cv: Condvar,
    write_sync_latency: Arc<Histogram>,
    /// A recycled file for segment 0, if the manager had one.
    recycled: Mutex<Option<RecycledFile>>,
    /// Records replayed into new segments, over every log of the manager.
    replayed: Arc<AtomicU64>,
}

/// The state of one segment, as [`FailoverWriter::segments`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentState {
    /// Its file is being created.
    Creating,
    /// Its writer is open (the newest segment, or one left behind by a
    /// switch and not yet closed).
    Open,
    /// Its file could not be created.
    Failed(String),
    /// Its writer is closing in the background.
    Closing,
    /// Closed cleanly.
    Closed,
    /// Closing failed.
    CloseFailed(String),
}

/// One segment of a failover writer's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentStatus {
    /// Its index.
    pub index: SegmentIndex,
    /// Its directory.
    pub dir: DirId,
    /// Its file.
    pub path: PathBuf,
    /// Its state.
    pub state: SegmentState,
    /// How long the operation running on it (create, directory sync,
    /// write, sync) has been running, by the manager's clock; `None` when
    /// idle.
    pub op_running_for: Option<Duration>,
    /// The first operation error on it, if any.
    pub error: Option<String>,
}

/// Called when a writer closes or is dropped, so the monitor forgets it.
pub(crate) type OnClose = Box<dyn Fn(&Arc<Inner>) + Send + Sync>;

/// The writer of one log of a [`super::FailoverManager`].
pub struct FailoverWriter {
    pub(crate) inner: Arc<Inner>,
    pub(crate) on_close: OnClose,
}

impl std::fmt::Debug for FailoverWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverWriter")
            .field("log", &self.inner.log)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverWriterInner")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn new(
        log: LogNum,
        core: Arc<Core>,
        tasks: Arc<Tasks>,
        write_sync_latency: Arc<Histogram>,
        replayed: Arc<AtomicU64>,
        recycled: Option<RecycledFile>,
    ) -> Inner {
        let first = core.next_lsn();
        Inner {
            log,
            core,
            tasks,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queue_bytes: 0,
                durable_until: first,
                last_appended: None,
                sync_wanted: None,
                slots: Vec::new(),
                closing: false,
                closed: false,
                failed: None,
                logical_size: 0,
            }),
            cv: Condvar::new(),
            write_sync_latency,
            recycled: Mutex::new(recycled),
            replayed,
        }
    }

    pub(crate) fn log(&self) -> LogNum {
        self.log
    }

    /// The newest segment's ongoing operation latency and error, for the
    /// monitor. `None` once the writer is closed.
    pub(crate) fn ongoing_latency_or_error(&self) -> Option<(Duration, Option<String>)> {
        let recorder = {
            let st = self.state.lock();
            if st.closed {
                return None;
            }
            Arc::clone(&st.slots.last()?.recorder)
        };
        Some(recorder.ongoing_latency_or_error())
    }

    /// Fails the writer: it can neither write nor switch.
    pub(crate) fn fail(&self, reason: String) {
        let mut st = self.state.lock();
        if st.failed.is_none() && !st.closed {
            tracing::error!(log = %self.log, %reason, "log writer failed");
            st.failed = Some(reason);
            self.cv.notify_all();
        }
    }

    /// Starts a new segment in `dir`: reserves its index and creates its file
    /// on a background thread. Never waits for I/O.
    ///
    /// # Errors
    /// [`Error::SwitchingLimit`] when the log has as many segments as allowed.
    pub(crate) fn switch_to(self: &Arc<Self>, dir: DirId) -> Result<(SegmentIndex, PathBuf)> {
        let max = self.core.config.failover.segments_per_log_max;
        let (index, path) = {
            let mut st = self.state.lock();
            if st.closed {
                return Err(Error::Closed("the writer"));
            }
            if st.slots.len() >= max as usize {
                return Err(Error::SwitchingLimit { log: self.log, max });
            }
            let index = SegmentIndex(st.slots.len() as u32);
            let path = self.core.dirs.get(dir).segment_path(self.log, index);
            st.slots.push(Slot {
                index,
                dir,
                path: path.clone(),
                recorder: Arc::new(Recorder::new(Arc::clone(&self.core.clock))),
                state: SlotState::Creating,
                pending: VecDeque::new(),
                size: 0,
            });
            (index, path)
        };
        // Reported before the file exists: whatever happens to the
        // creation, the manager knows the file may be there.
        self.core.add_segment(
            self.log,
            Segment {
                index,
                dir,
                path: path.clone(),
                size: 0,
            },
        );
        let me = Arc::clone(self);
        self.tasks
            .spawn(&format!("wal-create-{}-{}", self.log, index), move || {
                me.create_segment(index);
            });
        Ok((index, path))
    }

    /// Creates segment `index`'s file and writer, then installs it if it is
    /// still the newest segment.
    fn create_segment(self: &Arc<Self>, index: SegmentIndex) {
        let (dir_id, path, recorder) = {
            let st = self.state.lock();
            let slot = &st.slots[index.0 as usize];
            (slot.dir, slot.path.clone(), Arc::clone(&slot.recorder))
        };
        let dir = self.core.dirs.get(dir_id);
        let recycled = if index.0 == 0 && dir_id == DirId::Primary {
            self.recycled.lock().take()
        } else {
            None
        };
        let created = (|| -> std::result::Result<LogWriter<RecordedFile>, String> {
            let file = recorder
                .time(|| match &recycled {
                    Some(old) => dir.fs.reuse_for_write(&old.path, &path),
                    None => dir.fs.create(&path),
                })
                .map_err(|e| e.to_string())?;
            recorder
                .time(|| dir.fs.sync_dir(&dir.path))
                .map_err(|e| e.to_string())?;
            let weak = Arc::downgrade(self);
            let mut options = self.core.writer_options(self.log);
            // Never block an appender behind a stuck file: the queue bounds
            // memory instead.
            options.pending_bytes_max = usize::MAX;
            options.on_sync = Some(Arc::new(move |event: &SyncEvent| {
                on_sync(&weak, index, event);
            }));
            LogWriter::new(RecordedFile::new(file, Arc::clone(&recorder)), options)
                .map_err(|e| e.to_string())
        })();
        let mut st = self.state.lock();
        let newest = index.0 as usize + 1 == st.slots.len() && !st.closed;
        let writer = match created {
            Ok(w) => Arc::new(w),
            Err(reason) => {
                tracing::warn!(log = %self.log, path = %path.display(), %reason, "creating a log segment failed");
                recorder.fail(reason.clone());
                st.slots[index.0 as usize].state = SlotState::Failed(reason);
                self.cv.notify_all();
                drop(st);
                // Keep the file listed (for deletion) unless it surely does
                // not exist.
                if dir.fs.stat(&path).is_err_and(|e| e.is_not_found()) {
                    self.core.remove_segment(self.log, index);
                }
                return;
            }
        };
        if !newest {
            // A later switch made this segment obsolete before it was ready:
            // close it in the background; its file stays reported.
            st.slots[index.0 as usize].state = SlotState::Closing;
            drop(st);
            self.close_slot_in_background(index, writer);
            return;
        }
        self.install(&mut st, index, &writer);
        st.slots[index.0 as usize].state = SlotState::Live(writer);
        self.cv.notify_all();
    }

    /// Replays every queued record into the new newest segment.
    fn install(&self, st: &mut State, index: SegmentIndex, writer: &LogWriter<RecordedFile>) {
        let slot_i = index.0 as usize;
        let count = st.queue.len();
        let first = st.queue.front().map(|q| q.lsn);
        let last = st.queue.back().map(|q| q.lsn);
        let mut pending = VecDeque::with_capacity(count);
        let replayed = writer.append_with(false, |batch| {
            for q in &st.queue {
                match batch.push(&[&q.stored]) {
                    Ok(a) => pending.push_back((a.end, q.lsn)),
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        match replayed {
            Ok((Ok(()), _)) => {}
            Ok((Err(e), _)) | Err(e) => {
                st.slots[slot_i].recorder.fail(e.to_string());
            }
        }
        st.slots[slot_i].pending = pending;
        if st.sync_wanted.is_some_and(|w| w >= st.durable_until) || st.closing {
            writer.request_sync();
        }
        // Records queued while the first segment was created are written
        // there once; only a later segment's are written again.
        if index.0 > 0 {
            self.replayed.fetch_add(count as u64, Ordering::Relaxed);
        }
        let slot = &st.slots[slot_i];
        tracing::info!(
            log = %self.log,
            segment = %slot.path.display(),
            dir = %slot.dir,
            replayed = count,
            first_lsn = ?first.map(|l| l.0),
            last_lsn = ?last.map(|l| l.0),
            "log segment ready; queued records replayed into it"
        );
    }

    fn close_slot_in_background(
        self: &Arc<Self>,
        index: SegmentIndex,
        writer: Arc<LogWriter<RecordedFile>>,
    ) {
        let me = Arc::clone(self);
        self.tasks
            .spawn(&format!("wal-close-{}-{}", self.log, index), move || {
                let result = writer.close().map_err(|e| e.to_string());
                me.core.accumulate(&writer.metrics());
                let size = writer.size();
                let mut st = me.state.lock();
                let slot = &mut st.slots[index.0 as usize];
                slot.size = size;
                slot.state = SlotState::Closed(result);
                let segment = Segment {
                    index,
                    dir: slot.dir,
                    path: slot.path.clone(),
                    size,
                };
                drop(st);
                me.core.add_segment(me.log, segment);
                me.cv.notify_all();
            });
    }

    fn refusal(&self, st: &State) -> Option<Error> {
        if let Some(reason) = &st.failed {
            return Some(Error::WriterFailed {
                log: self.log,
                reason: reason.clone(),
            });
        }
        if st.closing {
            return Some(Error::Closed("the writer"));
        }
        None
    }

    /// The newest segment's writer, if it is live.
    fn current(st: &State) -> Option<&Arc<LogWriter<RecordedFile>>> {
        match &st.slots.last()?.state {
            SlotState::Live(w) => Some(w),
            _ => None,
        }
    }

    fn append_batch(&self, payloads: &[&[u8]], sync: bool) -> Result<Range<Lsn>> {
        self.core.check_record_sizes(payloads)?;
        let sequencing = self.core.sequencing();
        let start = Instant::now();
        let format = self.core.config.writer.format.0;
        let queue_max = self.core.config.failover.queue_bytes_max.0 as usize;
        let mut st = self.state.lock();
        loop {
            if let Some(e) = self.refusal(&st) {
                return Err(e);
            }
            if st.queue_bytes < queue_max {
                break;
            }
            // Full: ask for a sync so the queue drains, and wait.
            if let Some(w) = Self::current(&st) {
                w.request_sync();
            }
            self.cv.wait(&mut st);
        }
        let lsns = Core::take_lsns(&self.core.next_lsn, payloads.len() as u64);
        let last = Lsn(lsns.end.0 - 1);
        {
            let s = &mut *st;
            let mut records = Vec::with_capacity(payloads.len());
            for (i, p) in payloads.iter().enumerate() {
                let lsn = Lsn(lsns.start.0 + i as u64);
                let mut stored = Vec::with_capacity(sequencing.prefix_size() + p.len());
                if sequencing == Sequencing::Lsn {
                    stored.extend_from_slice(&envelope::lsn_prefix(lsn, false));
                }
                stored.extend_from_slice(p);
                s.logical_size += format::encoded_len(format, s.logical_size, stored.len());
                records.push(Queued {
                    lsn,
                    stored: stored.into_boxed_slice(),
                });
            }
            if let Some(slot) = s.slots.last_mut() {
                if let SlotState::Live(w) = &slot.state {
                    let pending = &mut slot.pending;
                    let pushed = w.append_with(false, |batch| {
                        for q in &records {
                            pending.push_back((batch.push(&[&q.stored])?.end, q.lsn));
                        }
                        Ok(())
                    });
                    // A failed writer keeps the records queued; the monitor
                    // sees the error (the recorder has it) and switches.
                    if let Ok((Err(e), _)) | Err(e) = pushed {
                        slot.recorder.fail(e.to_string());
                    }
                }
            }
            for q in records {
                s.queue_bytes += q.stored.len();
                s.queue.push_back(q);
            }
            s.last_appended = Some(last);
        }
        if sync {
            self.wait_locked(&mut st, last)?;
            self.write_sync_latency.record_duration(start.elapsed());
        } else if st.queue_bytes > queue_max / 2 {
            if let Some(w) = Self::current(&st) {
                w.request_sync();
            }
        }
        Ok(lsns)
    }

    /// Waits until `lsn` is durable, asking the current segment for a sync.
    fn wait_locked(&self, st: &mut MutexGuard<'_, State>, lsn: Lsn) -> Result<()> {
        if st.durable_until > lsn {
            return Ok(());
        }
        if st.sync_wanted.is_none_or(|w| w < lsn) {
            st.sync_wanted = Some(lsn);
            if let Some(w) = Self::current(st) {
                w.request_sync();
            }
        }
        loop {
            if st.durable_until > lsn {
                return Ok(());
            }
            if let Some(reason) = &st.failed {
                return Err(Error::WriterFailed {
                    log: self.log,
                    reason: reason.clone(),
                });
            }
            if st.closed {
                return Err(Error::WriterFailed {
                    log: self.log,
                    reason: format!("closed before LSN {lsn} became durable"),
                });
            }
            self.cv.wait(st);
        }
    }

    /// Closes the log the way Pebble does: close the newest segment's writer
    /// and wait for it; if the monitor switches meanwhile (because that close
    /// is stuck), close the new newest instead. Older writers are closed in
    /// the background and never waited for.
    fn close(self: &Arc<Self>) -> Result<u64> {
        let mut st = self.state.lock();
        if st.closing {
            return Err(Error::Closed("the writer"));
        }
        st.closing = true;
        self.cv.notify_all();
        let result = loop {
            let Some(newest) = st.slots.last_mut() else {
                break Ok(0);
            };
            let index = newest.index;
            match &newest.state {
                SlotState::Live(w) => {
                    let w = Arc::clone(w);
                    newest.state = SlotState::Closing;
                    self.close_slot_in_background(index, w);
                }
                SlotState::Creating | SlotState::Closing => {}
                SlotState::Failed(reason) => break Err(reason.clone()),
                SlotState::Closed(r) => break r.clone(),
            }
            self.cv.wait(&mut st);
        };
        st.closed = true;
        let mut older = Vec::new();
        for slot in &mut st.slots {
            if let SlotState::Live(w) = &slot.state {
                older.push((slot.index, Arc::clone(w)));
                slot.state = SlotState::Closing;
            }
        }
        for (index, w) in older {
            self.close_slot_in_background(index, w);
        }
        if let Err(reason) = &result {
            if st.failed.is_none() {
                st.failed = Some(reason.clone());
            }
        }
        self.cv.notify_all();
        let logical = st.logical_size;
        let recyclable = result.is_ok()
            && st.slots.len() == 1
            && st.slots[0].dir == DirId::Primary
            && st.slots[0].index == SegmentIndex(0);
        drop(st);
        self.core.writer_closed(self.log, recyclable);
        match result {
            Ok(_) => Ok(logical),
            Err(reason) => Err(Error::WriterFailed {
                log: self.log,
                reason,
            }),
        }
    }

    /// Abandons the writer (dropped without close): no waiting, every live
    /// segment writer is closed in the background.
    fn abandon(self: &Arc<Self>) {
        let mut st = self.state.lock();
        if st.closing {
            return;
        }
        st.closing = true;
        st.closed = true;
        let mut live = Vec::new();
        for slot in &mut st.slots {
            if let SlotState::Live(w) = &slot.state {
                live.push((slot.index, Arc::clone(w)));
                slot.state = SlotState::Closing;
            }
        }
        self.cv.notify_all();
        drop(st);
        for (index, w) in live {
            self.close_slot_in_background(index, w);
        }
        self.core.writer_closed(self.log, false);
    }

    /// Figures for the manager's stats: queued records and bytes, and the
    /// current segment's record-layer figures.
    pub(crate) fn queue_stats(&self) -> (u64, u64, Option<LogWriterMetrics>) {
        let st = self.state.lock();
        (
            st.queue.len() as u64,
            st.queue_bytes as u64,
            Self::current(&st).map(|w| w.metrics()),
        )
    }
}

impl FailoverWriter {
    /// The log being written.
    pub(crate) fn log(&self) -> LogNum {
        self.inner.log
    }

    /// Appends records as one group; see [`crate::Writer::append_batch_sync`].
    ///
    /// # Errors
    /// As [`crate::Writer::append_batch_sync`].
    pub(crate) fn append_group(&self, payloads: &[&[u8]], sync: bool) -> Result<Range<Lsn>> {
        self.inner.append_batch(payloads, sync)
    }

    /// Waits until `lsn` is durable in some segment.
    ///
    /// # Errors
    /// The writer failed for good, or closed before `lsn` became durable.
    pub(crate) fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        let mut st = self.inner.state.lock();
        self.inner.wait_locked(&mut st, lsn)
    }

    /// Makes everything appended durable; see [`crate::Writer::sync`].
    ///
    /// # Errors
    /// As [`FailoverWriter::wait_durable`].
    pub(crate) fn sync(&self) -> Result<Option<Lsn>> {
        let mut st = self.inner.state.lock();
        let Some(last) = st.last_appended else {
            return Ok(None);
        };
        self.inner.wait_locked(&mut st, last)?;
        Ok(Some(last))
    }

    /// Closes the log; see [`crate::Writer::close`].
    ///
    /// # Errors
    /// The newest segment could not be created or closed.
    pub(crate) fn close(&self) -> Result<u64> {
        let result = self.inner.close();
        (self.on_close)(&self.inner);
        result
    }

    /// Record-layer figures of the current segment.
    pub(crate) fn metrics(&self) -> LogWriterMetrics {
        self.inner.queue_stats().2.unwrap_or_default()
    }

    /// The log's logical size: its bytes as if it were one segment.
    pub(crate) fn size(&self) -> u64 {
        self.inner.state.lock().logical_size
    }

    /// Appends a system record first in the log; see
    /// [`crate::Writer::append_marker`].
    ///
    /// # Errors
    /// As [`crate::Writer::append_marker`].
    pub(crate) fn append_marker(&self, payload: &[u8]) -> Result<Lsn> {
        self.inner.core.check_markers_allowed()?;
        self.inner.core.check_record_sizes(&[payload])?;
        let inner = &self.inner;
        let mut st = inner.state.lock();
        if let Some(e) = inner.refusal(&st) {
            return Err(e);
        }
        if st.last_appended.is_some() {
            return Err(Error::MarkerNotFirst(inner.log));
        }
        let lsn = inner.core.marker_lsn();
        let mut stored = envelope::lsn_prefix(lsn, true).to_vec();
        stored.extend_from_slice(payload);
        let format = inner.core.config.writer.format.0;
        st.logical_size += format::encoded_len(format, st.logical_size, stored.len());
        // The marker is the first record: durability is counted from it.
        st.durable_until = lsn;
        let q = Queued {
            lsn,
            stored: stored.into_boxed_slice(),
        };
        if let Some(slot) = st.slots.last_mut() {
            if let SlotState::Live(w) = &slot.state {
                match w.append(&[&q.stored]) {
                    Ok(a) => slot.pending.push_back((a.end, lsn)),
                    Err(e) => slot.recorder.fail(e.to_string()),
                }
            }
        }
        st.queue_bytes += q.stored.len();
        st.queue.push_back(q);
        st.last_appended = Some(lsn);
        inner.wait_locked(&mut st, lsn)?;
        Ok(lsn)
    }

    /// Hands everything appended to the newest segment's file; see
    /// [`crate::Writer::flush`]. Waits (up to [`FLUSH_WAIT_MAX`] by the
    /// manager's clock) for a segment being created.
    ///
    /// # Errors
    /// The writer failed, or no segment became ready in time.
    pub(crate) fn flush(&self) -> Result<()> {
        let inner = &self.inner;
        let clock = &inner.core.clock;
        let start = clock.now();
        let mut st = inner.state.lock();
        loop {
            if let Some(reason) = &st.failed {
                return Err(Error::WriterFailed {
                    log: inner.log,
                    reason: reason.clone(),
                });
            }
            if st.closed {
                return Ok(());
            }
            if let Some(w) = Inner::current(&st).cloned() {
                let path = st.slots.last().map(|s| s.path.clone()).unwrap_or_default();
                drop(st);
                return w.flush().map(|_| ()).map_err(|source| Error::Segment {
                    log: inner.log,
                    path,
                    source,
                });
            }
            // The bound is measured on the manager's clock (a manual clock in
            // tests); the condvar is only woken now and then to look at it.
            if clock.now().saturating_sub(start) >= FLUSH_WAIT_MAX {
                return Err(Error::WriterFailed {
                    log: inner.log,
                    reason: format!(
                        "no segment became ready to flush within {}s",
                        FLUSH_WAIT_MAX.as_secs()
                    ),
                });
            }
            inner.cv.wait_for(&mut st, Duration::from_millis(10));
        }
    }

    /// Every segment of the log so far, oldest first.
    pub fn segments(&self) -> Vec<SegmentStatus> {
        let st = self.inner.state.lock();
        st.slots
            .iter()
            .map(|s| SegmentStatus {
                index: s.index,
                dir: s.dir,
                path: s.path.clone(),
                state: match &s.state {
                    SlotState::Creating => SegmentState::Creating,
                    SlotState::Live(_) => SegmentState::Open,
                    SlotState::Failed(r) => SegmentState::Failed(r.clone()),
                    SlotState::Closing => SegmentState::Closing,
                    SlotState::Closed(Ok(_)) => SegmentState::Closed,
                    SlotState::Closed(Err(r)) => SegmentState::CloseFailed(r.clone()),
                },
                op_running_for: s.recorder.running_for(),
                error: s.recorder.ongoing_latency_or_error().1,
            })
            .collect()
    }
}

impl Drop for FailoverWriter {
    fn drop(&mut self) {
        self.inner.abandon();
        (self.on_close)(&self.inner);
    }
}

/// Routes a record-layer sync event of segment `index` to the writer.
fn on_sync(weak: &Weak<Inner>, index: SegmentIndex, event: &SyncEvent) {
    let Some(inner) = weak.upgrade() else { return };
    let mut st = inner.state.lock();
    let slot_i = index.0 as usize;
    match event {
        SyncEvent::Synced { offset } => {
            let slot = &mut st.slots[slot_i];
            let mut synced = None;
            while let Some(&(end, lsn)) = slot.pending.front() {
                if end > *offset {
                    break;
                }
                synced = Some(lsn);
                slot.pending.pop_front();
            }
            slot.size = slot.size.max(*offset);
            if let Some(lsn) = synced {
                if lsn >= st.durable_until {
                    st.durable_until = lsn.next();
                    while st.queue.front().is_some_and(|q| q.lsn < st.durable_until) {
                        let q = st.queue.pop_front().expect("checked non-empty");
                        st.queue_bytes -= q.stored.len();
                    }
                    inner.cv.notify_all();
                }
            }
        }
        SyncEvent::Failed { error } => {
            st.slots[slot_i].recorder.fail(error.to_string());
            inner.cv.notify_all();
        }
    }
}
