//! The failover writer: one log written as a sequence of segments in two
//! directories. Appends go to the *current* segment; a *standby* segment is
//! kept ready in the other directory for hedges and switches (in the
//! primary only once nothing is stuck there; see the private
//! `failover::segments` module).
//!
//! # Invariants
//!
//! * Every record appended and not yet known durable is in `queue`, in LSN
//!   order; the queue holds a contiguous range of LSNs starting at
//!   `durable_until`. A record leaves the queue once *any* segment has synced
//!   it (Pebble: "released once any writer synced it").
//! * When a segment becomes current, every queued record it lacks is
//!   replayed into it, in LSN order, under the same lock that appenders
//!   take, before any later record. So from the first record not yet
//!   durable on, it holds every record, which is what lets the reader drop
//!   duplicates by LSN.
//! * Segment files are created on their own threads: a switch never waits
//!   for I/O, so a hung `create` on a stalled disk cannot stall appenders or
//!   the monitor (which sees the hung create's latency and switches again).
//! * A left-behind segment's writer is never waited for. It stays open (a
//!   slow sync that finally completes still acknowledges records), and is
//!   closed in the background when the log closes. Its file is reported to
//!   the manager from the moment its index is reserved, so it can always be
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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use wal_record::{Histogram, LogWriter, LogWriterMetrics, format};

use super::Tasks;
use super::segments::{Slot, push_records};
use crate::core::Core;
use crate::envelope::{self, Sequencing};
use crate::error::{Error, Result};
use crate::recorder::{LatencyWindow, MonitorWake, RecordedFile};
use crate::recycler::RecycledFile;
use crate::types::{DirId, LogNum, Lsn, SegmentIndex};

/// How long `flush` waits for a segment being created, by the manager's
/// clock.
const FLUSH_WAIT_MAX: Duration = Duration::from_secs(10);

/// A record not yet known durable.
pub(crate) struct Queued {
    pub(crate) lsn: Lsn,
    /// The stored bytes: LSN prefix and payload.
    pub(crate) stored: Box<[u8]>,
}

pub(crate) enum SlotState {
    /// The file is being created.
    Creating,
    /// Its writer is open.
    Live(Arc<LogWriter<RecordedFile>>),
    /// Creation failed.
    Failed(String),
    /// `close` (or the removal of an unused standby) is running in the
    /// background.
    Closing,
    /// Closed; the result of the record-layer close.
    Closed(std::result::Result<u64, String>),
}

pub(crate) struct State {
    pub(crate) queue: VecDeque<Queued>,
    pub(crate) queue_bytes: usize,
    /// Every record with an LSN below this is durable.
    pub(crate) durable_until: Lsn,
    /// The last LSN appended.
    pub(crate) last_appended: Option<Lsn>,
    /// The highest LSN a waiter needs durable.
    pub(crate) sync_wanted: Option<Lsn>,
    /// While someone waits for durability: since when there has been no
    /// progress (the later of the first wait and the last release), by the
    /// manager's clock. The monitor hedges from it.
    pub(crate) waiting_since: Option<Duration>,
    /// When the monitor last hedged, by the manager's clock.
    pub(crate) last_hedge: Option<Duration>,
    /// Every segment so far; a segment's position is its index.
    pub(crate) slots: Vec<Slot>,
    /// The segment appends go to.
    pub(crate) current: Option<usize>,
    /// The segment kept ready in the other directory (see
    /// `segments::Inner::start_standby`).
    pub(crate) standby: Option<usize>,
    /// A standby of this log failed to be created in the directory (by
    /// `dir_pos`): no other is tried there (the directory is suspect, and
    /// each try would take a segment index).
    pub(crate) standby_failed: [bool; 2],
    /// Appends are refused: `close` was called.
    pub(crate) closing: bool,
    /// `close` finished.
    pub(crate) closed: bool,
    /// Set when the writer can neither write nor switch: every waiter and
    /// later append gets this reason.
    pub(crate) failed: Option<String>,
    /// The log's size as if it were one segment.
    pub(crate) logical_size: u64,
}

/// What every writer of a manager shares: the background tasks, figures,
/// and the monitor's latency windows and wake-up.
#[derive(Clone, Debug)]
pub(crate) struct WriterEnv {
    pub(crate) tasks: Arc<Tasks>,
    pub(crate) write_sync_latency: Arc<Histogram>,
    /// Records replayed into new current segments, over every log.
    pub(crate) replayed: Arc<AtomicU64>,
    /// Hedges, over every log.
    pub(crate) hedges: Arc<AtomicU64>,
    /// Bytes hedges wrote into standby segments, over every log.
    pub(crate) hedged_bytes: Arc<AtomicU64>,
    /// Operation latencies of the primary and the secondary.
    pub(crate) windows: [Arc<LatencyWindow>; 2],
    pub(crate) wake: Arc<MonitorWake>,
}

pub(crate) struct Inner {
    pub(crate) log: LogNum,
    pub(crate) core: Arc<Core>,
    pub(crate) env: WriterEnv,
    pub(crate) state: Mutex<State>,
    /// Durability waiters, appenders waiting for queue room, and `close`.
    pub(crate) cv: Condvar,
    /// A recycled file for segment 0, if the manager had one.
    pub(crate) recycled: Mutex<Option<RecycledFile>>,
}

/// What the monitor looks at in the open log.
#[derive(Clone, Debug, Default)]
pub(crate) struct MonitorView {
    /// When the current segment's running operation started.
    pub(crate) op_started_at: Option<Duration>,
    /// The current segment's first error.
    pub(crate) error: Option<String>,
    /// See [`State::waiting_since`], moved on to the last hedge.
    pub(crate) waiting_since: Option<Duration>,
    /// The current segment's directory.
    pub(crate) dir: Option<DirId>,
    /// When the oldest operation still running on a segment of the *other*
    /// directory started (a left-behind segment's write or sync stuck on
    /// the disk the log switched away from, or the standby's create or
    /// sync).
    pub(crate) other_op_started_at: Option<Duration>,
    /// Whether a standby is open and has not failed, and the current
    /// segment is installed (a hedge may go into the standby).
    pub(crate) standby_ready: bool,
}

/// What a segment is for, as [`FailoverWriter::segments`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentRole {
    /// Appends go to it.
    Current,
    /// Kept ready in the secondary, while appends go to the primary, for
    /// hedges and switches.
    Standby,
    /// Left behind by a switch (or an unused standby being removed).
    LeftBehind,
}

/// The state of one segment, as [`FailoverWriter::segments`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentState {
    /// Its file is being created.
    Creating,
    /// Its writer is open.
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
    /// What it is for.
    pub role: SegmentRole,
    /// Its state.
    pub state: SegmentState,
    /// Bytes of records handed to it (hedged, replayed or appended).
    pub record_bytes: u64,
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
        env: WriterEnv,
        recycled: Option<RecycledFile>,
    ) -> Inner {
        let first = core.next_lsn();
        Inner {
            log,
            core,
            env,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queue_bytes: 0,
                durable_until: first,
                last_appended: None,
                sync_wanted: None,
                waiting_since: None,
                last_hedge: None,
                slots: Vec::new(),
                current: None,
                standby: None,
                standby_failed: [false; 2],
                closing: false,
                closed: false,
                failed: None,
                logical_size: 0,
            }),
            cv: Condvar::new(),
            recycled: Mutex::new(recycled),
        }
    }

    pub(crate) fn log(&self) -> LogNum {
        self.log
    }

    /// Starts the log: its first segment in `dir`, and (with `standby`,
    /// when `dir` is the primary) a standby in the secondary.
    ///
    /// # Errors
    /// As [`Inner::reserve`].
    pub(crate) fn start(self: &Arc<Self>, dir: DirId, standby: bool) -> Result<()> {
        let mut st = self.state.lock();
        let pos = self.reserve(&mut st, dir, false)?;
        st.current = Some(pos);
        // The primary's standby waits for the monitor (see
        // `start_primary_standby`): the log may start on the secondary
        // because the primary is stalled.
        if standby && dir == DirId::Primary {
            self.start_standby(&mut st, DirId::Secondary);
        }
        Ok(())
    }

    /// What the monitor looks at; `None` once the writer is closed.
    pub(crate) fn monitor_view(&self) -> Option<MonitorView> {
        let st = self.state.lock();
        if st.closed {
            return None;
        }
        let current = &st.slots[st.current?];
        let standby_ready = Self::hedge_target(&st).is_some();
        let waiting_since = match (st.waiting_since, st.last_hedge) {
            (Some(w), Some(h)) => Some(w.max(h)),
            (w, _) => w,
        };
        let other_op_started_at = st
            .slots
            .iter()
            .filter(|s| s.dir != current.dir)
            .filter_map(|s| s.recorder.op_started_at())
            .min();
        Some(MonitorView {
            op_started_at: current.recorder.op_started_at(),
            other_op_started_at,
            error: current.recorder.error(),
            waiting_since,
            dir: Some(current.dir),
            standby_ready,
        })
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

    /// Moves appends to `dir`: promotes the standby if it is there and
    /// usable, else reserves a new segment there (created on a background
    /// thread; `past_cap` lets an error switch go past
    /// `segments_per_log_max`); then, back on the primary, starts a
    /// standby in the secondary. Never waits for I/O. Returns the new current segment's index
    /// and path, and whether it was the standby.
    ///
    /// # Errors
    /// [`Error::Closed`], or [`Error::SwitchingLimit`] when the log has as
    /// many segments as allowed.
    pub(crate) fn switch_to(
        self: &Arc<Self>,
        dir: DirId,
        past_cap: bool,
    ) -> Result<(SegmentIndex, PathBuf, bool)> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(Error::Closed("the writer"));
        }
        let from = st.current.map(|p| st.slots[p].dir);
        let mut promoted = false;
        if let Some(pos) = st.standby {
            let slot = &st.slots[pos];
            let usable = slot.dir == dir
                && !matches!(slot.state, SlotState::Failed(_))
                && !slot.recorder.has_failed();
            if usable {
                self.promote(&mut st, pos);
                promoted = true;
            } else {
                st.standby = None;
                self.leave_behind(&mut st, pos);
            }
        }
        if !promoted {
            let pos = self.reserve(&mut st, dir, past_cap)?;
            st.current = Some(pos);
        }
        // Back on the primary, a standby in the secondary at once; one in
        // the primary left for the secondary waits for the monitor (see
        // `start_primary_standby`).
        if from == Some(DirId::Secondary) && dir == DirId::Primary {
            self.start_standby(&mut st, DirId::Secondary);
        }
        let slot = &st.slots[st.current.expect("set above")];
        Ok((slot.index, slot.path.clone(), promoted))
    }

    /// Leaves the segment at `pos` behind: removed if it never received a
    /// record (an unused standby), otherwise closed in the background once
    /// the log closes.
    fn leave_behind(self: &Arc<Self>, st: &mut State, pos: usize) {
        if st.slots[pos].last_lsn.is_none() {
            self.drop_unused_standby(st, pos);
        }
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

    /// The current segment's writer, if it is live.
    fn current(st: &State) -> Option<&Arc<LogWriter<RecordedFile>>> {
        st.slots[st.current?].live()
    }

    /// Hands `records` to the current segment, if it is live (if not, its
    /// installation replays them from the queue).
    fn push_to_current(st: &mut State, records: &[(Lsn, &[u8])]) {
        let Some(pos) = st.current else { return };
        let slot = &mut st.slots[pos];
        if let Some(w) = slot.live().cloned() {
            push_records(slot, &w, records);
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
        let mut records = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            let lsn = Lsn(lsns.start.0 + i as u64);
            let mut stored = Vec::with_capacity(sequencing.prefix_size() + p.len());
            if sequencing == Sequencing::Lsn {
                stored.extend_from_slice(&envelope::lsn_prefix(lsn, false));
            }
            stored.extend_from_slice(p);
            st.logical_size += format::encoded_len(format, st.logical_size, stored.len());
            records.push(Queued {
                lsn,
                stored: stored.into_boxed_slice(),
            });
        }
        {
            let refs: Vec<(Lsn, &[u8])> = records.iter().map(|q| (q.lsn, &q.stored[..])).collect();
            Self::push_to_current(&mut st, &refs);
        }
        for q in records {
            st.queue_bytes += q.stored.len();
            st.queue.push_back(q);
        }
        st.last_appended = Some(last);
        if sync {
            self.wait_locked(&mut st, last)?;
            self.env.write_sync_latency.record_duration(start.elapsed());
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
        if st.waiting_since.is_none() {
            st.waiting_since = Some(self.core.clock.now());
            self.env.wake.poke();
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

    /// Closes the log the way Pebble does: close the current segment's
    /// writer and wait for it; if the monitor switches meanwhile (because
    /// that close is stuck), close the new current instead. Left-behind
    /// writers are closed in the background and never waited for; an
    /// unused standby is removed.
    fn close(self: &Arc<Self>) -> Result<u64> {
        let mut st = self.state.lock();
        if st.closing {
            return Err(Error::Closed("the writer"));
        }
        st.closing = true;
        self.cv.notify_all();
        let result = loop {
            let Some(pos) = st.current else {
                break Ok(0);
            };
            match &st.slots[pos].state {
                SlotState::Live(w) => {
                    let w = Arc::clone(w);
                    st.slots[pos].state = SlotState::Closing;
                    self.close_slot_in_background(pos, w);
                }
                SlotState::Creating | SlotState::Closing => {}
                SlotState::Failed(reason) => break Err(reason.clone()),
                SlotState::Closed(r) => break r.clone(),
            }
            self.cv.wait(&mut st);
        };
        st.closed = true;
        self.release_others(&mut st);
        if let Err(reason) = &result {
            if st.failed.is_none() {
                st.failed = Some(reason.clone());
            }
        }
        self.cv.notify_all();
        let logical = st.logical_size;
        let recyclable = result.is_ok()
            && st.current == Some(0)
            && st.slots[0].dir == DirId::Primary
            && st.slots[1..].iter().all(|s| s.last_lsn.is_none());
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

    /// Once the log is closed: removes an unused standby, closes every other
    /// live segment in the background.
    fn release_others(self: &Arc<Self>, st: &mut State) {
        if let Some(pos) = st.standby.take() {
            self.leave_behind(st, pos);
        }
        for pos in 0..st.slots.len() {
            if let SlotState::Live(w) = &st.slots[pos].state {
                let w = Arc::clone(w);
                st.slots[pos].state = SlotState::Closing;
                self.close_slot_in_background(pos, w);
            }
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
        self.release_others(&mut st);
        self.cv.notify_all();
        drop(st);
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
    /// The current segment could not be created or closed.
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
        Inner::push_to_current(&mut st, &[(lsn, &stored[..])]);
        st.queue_bytes += stored.len();
        st.queue.push_back(Queued {
            lsn,
            stored: stored.into_boxed_slice(),
        });
        st.last_appended = Some(lsn);
        inner.wait_locked(&mut st, lsn)?;
        Ok(lsn)
    }

    /// Hands everything appended to the current segment's file; see
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
                let path = st.slots[st.current.expect("live")].path.clone();
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

    /// Whether an appender is waiting for durability (the wait the monitor
    /// hedges); for tests and tools stepping a manual clock.
    pub fn has_waiter(&self) -> bool {
        self.inner.state.lock().waiting_since.is_some()
    }

    /// Every segment of the log so far, oldest first.
    pub fn segments(&self) -> Vec<SegmentStatus> {
        let st = self.inner.state.lock();
        st.slots
            .iter()
            .enumerate()
            .map(|(pos, s)| SegmentStatus {
                index: s.index,
                dir: s.dir,
                path: s.path.clone(),
                role: if st.current == Some(pos) {
                    SegmentRole::Current
                } else if st.standby == Some(pos) {
                    SegmentRole::Standby
                } else {
                    SegmentRole::LeftBehind
                },
                state: match &s.state {
                    SlotState::Creating => SegmentState::Creating,
                    SlotState::Live(_) => SegmentState::Open,
                    SlotState::Failed(r) => SegmentState::Failed(r.clone()),
                    SlotState::Closing => SegmentState::Closing,
                    SlotState::Closed(Ok(_)) => SegmentState::Closed,
                    SlotState::Closed(Err(r)) => SegmentState::CloseFailed(r.clone()),
                },
                record_bytes: s.bytes,
                op_running_for: s.recorder.running_for(),
                error: s.recorder.error(),
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

/// Counts a hedge into the manager's figures.
pub(crate) fn count_hedge(env: &WriterEnv, bytes: u64) {
    env.hedges.fetch_add(1, Ordering::Relaxed);
    env.hedged_bytes.fetch_add(bytes, Ordering::Relaxed);
}
