//! The segments of a failover log: reserving an index, creating the file on
//! its own thread, installing a ready segment (replaying the queue into it),
//! the standby segment kept ready in the secondary, hedging into it,
//! promoting it on a switch, closing left-behind segments in the
//! background, and routing each segment's sync events to the writer.
//!
//! # The standby and hedging
//!
//! While appends go to the primary, the writer keeps a *standby* segment
//! open in the secondary (the next index), created when the log starts on
//! the primary and after every failback, so that no switch away from a
//! stalled primary waits for a file to be created. While appends go to the
//! secondary, it keeps one in the primary once the monitor sees nothing of
//! the log stuck there and no evidence against it: a secondary that slows
//! down is hedged back into it, and the switch back promotes it.
//! When someone has waited for durability past the hedge deadline with no
//! progress, the monitor *hedges*: every record not yet durable is written
//! into the standby and synced there too, and each is acknowledged from
//! whichever copy is durable first. Records appended after the hedge go to
//! the current segment only; if they wait past the deadline again, the
//! monitor hedges again. So on a disk that stalls for a moment only the
//! records caught by the stall are written twice, and on a disk that stays
//! stalled every record is acknowledged within about one hedge deadline
//! plus a sync of the other disk, until the full switch (the monitor's
//! threshold and damping) promotes the standby to current and replays into
//! it whatever it lacks. A standby that never received a record is removed
//! when the log closes.
//!
//! # Why a sync of any segment releases every record before it
//!
//! The standby holds runs of records, each starting at the first record
//! not yet durable when its hedge copied it, and the records between two
//! runs were durable (in an earlier segment) before the later run was
//! copied. The current segment holds every record from the first one not
//! yet durable when it was installed, and no hedge is made before the
//! current segment is installed (a standby always has a later index than
//! the current segment, so a record acknowledged from it while the current
//! one is still being created would be missing between the two). So when
//! any segment has synced a record, every record before it is durable in
//! that segment or an earlier one, and a reader that reads the segments in
//! index order and drops records it has seen finds them all, in order.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use wal_record::{LogWriter, SyncEvent};

use super::writer::{Inner, SlotState, State};
use crate::error::{Error, Result};
use crate::log::Segment;
use crate::recorder::{RecordedFile, Recorder};
use crate::types::{DirId, Lsn, SegmentIndex};

/// One segment of the log. Its position in `State::slots` is its index.
pub(crate) struct Slot {
    pub(crate) index: SegmentIndex,
    pub(crate) dir: DirId,
    pub(crate) path: PathBuf,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) state: SlotState,
    /// `(end offset in this segment, lsn)` of records handed to this
    /// segment's writer and not yet synced there, oldest first.
    pub(crate) pending: VecDeque<(u64, Lsn)>,
    /// Size when last known.
    pub(crate) size: u64,
    /// The last record handed to this segment.
    pub(crate) last_lsn: Option<Lsn>,
    /// Bytes handed to it (records' stored bytes).
    pub(crate) bytes: u64,
    /// Remove it once created: an unused standby dropped while its file
    /// was still being created.
    pub(crate) discard: bool,
}

impl Slot {
    pub(crate) fn live(&self) -> Option<&Arc<LogWriter<RecordedFile>>> {
        match &self.state {
            SlotState::Live(w) => Some(w),
            _ => None,
        }
    }
}

impl Inner {
    /// Reserves the next index for a segment in `dir` and creates its file
    /// on a background thread; never waits for I/O. Returns its position.
    ///
    /// `past_cap` lets it go past `segments_per_log_max`: an error switch
    /// does, because a writer must not fail while a directory can take its
    /// records (error switches are bounded anyway: see the monitor's rules).
    ///
    /// # Errors
    /// [`Error::Closed`], or [`Error::SwitchingLimit`] when the log has as
    /// many segments as allowed.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        st: &mut State,
        dir: DirId,
        past_cap: bool,
    ) -> Result<usize> {
        let max = self.core.config.failover.segments_per_log_max;
        if st.closed {
            return Err(Error::Closed("the writer"));
        }
        if st.slots.len() >= max as usize {
            if !past_cap {
                return Err(Error::SwitchingLimit { log: self.log, max });
            }
            tracing::warn!(log = %self.log, max, "an error switch goes past failover.segments_per_log_max");
        }
        let pos = st.slots.len();
        let index = SegmentIndex(pos as u32);
        let path = self.core.dirs.get(dir).segment_path(self.log, index);
        st.slots.push(Slot {
            index,
            dir,
            path: path.clone(),
            recorder: Arc::new(Recorder::new(
                Arc::clone(&self.core.clock),
                Arc::clone(&self.env.windows[dir_pos(dir)]),
                Arc::clone(&self.env.wake),
            )),
            state: SlotState::Creating,
            pending: VecDeque::new(),
            size: 0,
            last_lsn: None,
            bytes: 0,
            discard: false,
        });
        // Reported before the file exists: whatever happens to the
        // creation, the manager knows the file may be there.
        self.core.add_segment(
            self.log,
            Segment {
                index,
                dir,
                path,
                size: 0,
            },
        );
        let me = Arc::clone(self);
        self.env
            .tasks
            .spawn(&format!("wal-create-{}-{}", self.log, index), move || {
                me.create_segment(pos);
            });
        Ok(pos)
    }

    /// Starts a standby segment in `dir` if standbys are on, none exists,
    /// none of this log failed in `dir` before, and the segment limit
    /// leaves room for it and one more switch. A refusal is no error: the
    /// writer goes on without one.
    ///
    /// Callers decide when `dir` is fit for one. The secondary gets one
    /// whenever appends go to the primary: it is where they go when the
    /// primary stalls, the moment that must cost no file creation. The
    /// primary gets one while appends go to the secondary only once the
    /// monitor sees nothing stuck there and no evidence against it
    /// ([`Inner::start_primary_standby`]): a secondary that then slows down
    /// is hedged into it, and the switch back (by latency or failback)
    /// promotes it instead of creating a file while appenders wait.
    pub(crate) fn start_standby(self: &Arc<Self>, st: &mut State, dir: DirId) {
        let room = st.slots.len() + 2 <= self.core.config.failover.segments_per_log_max as usize;
        if !self.core.config.failover.standby
            || st.standby.is_some()
            || st.standby_failed[dir_pos(dir)]
            || st.closing
            || !room
        {
            return;
        }
        if let Ok(pos) = self.reserve(st, dir, false) {
            st.standby = Some(pos);
        }
    }

    /// While appends go to an installed segment in the secondary, starts a
    /// standby in the primary (see [`Inner::start_standby`]). The monitor
    /// calls it only when the primary is not suspect and no operation of
    /// this log is running there.
    pub(crate) fn start_primary_standby(self: &Arc<Self>) {
        let mut st = self.state.lock();
        let on_secondary = st
            .current
            .is_some_and(|p| st.slots[p].dir == DirId::Secondary && st.slots[p].live().is_some());
        if on_secondary && st.standby.is_none() && !st.closing {
            self.start_standby(&mut st, DirId::Primary);
        }
    }

    /// Creates the file and writer of the segment at `pos`, then installs it
    /// as current, keeps it as the standby, or (superseded meanwhile)
    /// closes it.
    fn create_segment(self: &Arc<Self>, pos: usize) {
        let (dir_id, path, recorder) = {
            let st = self.state.lock();
            let slot = &st.slots[pos];
            (slot.dir, slot.path.clone(), Arc::clone(&slot.recorder))
        };
        let dir = self.core.dirs.get(dir_id);
        let recycled = if pos == 0 && dir_id == DirId::Primary {
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
            options.sync_linger = true;
            let index = SegmentIndex(pos as u32);
            options.on_sync = Some(Arc::new(move |event: &SyncEvent| {
                on_sync(&weak, index, event);
            }));
            LogWriter::new(RecordedFile::new(file, Arc::clone(&recorder)), options)
                .map_err(|e| e.to_string())
        })();
        // Keep a failed segment's file listed (for deletion) unless it surely
        // does not exist; decided before the failure is published, so that
        // whoever sees the segment failed sees the list final.
        let absent = created.is_err() && dir.fs.stat(&path).is_err_and(|e| e.is_not_found());
        let mut st = self.state.lock();
        let writer = match created {
            Ok(w) => Arc::new(w),
            Err(reason) => {
                tracing::warn!(log = %self.log, path = %path.display(), %reason, "creating a log segment failed");
                recorder.fail(reason.clone());
                if st.standby == Some(pos) {
                    st.standby_failed[dir_pos(dir_id)] = true;
                }
                if absent {
                    self.core.remove_segment(self.log, SegmentIndex(pos as u32));
                }
                st.slots[pos].state = SlotState::Failed(reason);
                self.cv.notify_all();
                return;
            }
        };
        if st.slots[pos].discard {
            st.slots[pos].state = SlotState::Live(writer);
            self.drop_unused_standby(&mut st, pos);
            return;
        }
        let wanted = !st.closed && (st.current == Some(pos) || st.standby == Some(pos));
        if !wanted {
            // Superseded before it was ready: close it in the background;
            // its file stays reported.
            st.slots[pos].state = SlotState::Closing;
            drop(st);
            self.close_slot_in_background(pos, writer);
            return;
        }
        st.slots[pos].state = SlotState::Live(Arc::clone(&writer));
        if st.current == Some(pos) {
            self.install(&mut st, pos);
        } else if st.waiting_since.is_some() {
            // Someone may be waiting for a hedge into it.
            self.env.wake.poke_now();
        }
        self.cv.notify_all();
    }

    /// Replays into the current segment at `pos` every queued record it
    /// lacks, before any later record, and asks for a sync if anyone waits.
    pub(crate) fn install(&self, st: &mut State, pos: usize) {
        let Some(writer) = st.slots[pos].live().cloned() else {
            return; // not ready yet: `create_segment` installs it
        };
        let after = st.slots[pos].last_lsn;
        let copied = Self::copy_queue(st, pos, &writer, after);
        if st.sync_wanted.is_some_and(|w| w >= st.durable_until) || st.closing {
            writer.request_sync();
        }
        // Records queued while the first segment was created are written
        // there once; only a later segment's are written again.
        if pos > 0 {
            self.env.replayed.fetch_add(copied.0, Ordering::Relaxed);
        }
        let slot = &st.slots[pos];
        tracing::info!(
            log = %self.log,
            segment = %slot.path.display(),
            dir = %slot.dir,
            replayed = copied.0,
            first_lsn = ?copied.1.map(|l| l.0),
            last_lsn = ?slot.last_lsn.map(|l| l.0),
            "log segment ready; queued records replayed into it"
        );
    }

    /// Appends the queued records after `after` to the segment at `pos`;
    /// returns how many and the first one's LSN.
    fn copy_queue(
        st: &mut State,
        pos: usize,
        writer: &LogWriter<RecordedFile>,
        after: Option<Lsn>,
    ) -> (u64, Option<Lsn>) {
        let State { queue, slots, .. } = st;
        let slot = &mut slots[pos];
        let records: Vec<(Lsn, &[u8])> = queue
            .iter()
            .filter(|q| after.is_none_or(|a| q.lsn > a))
            .map(|q| (q.lsn, &q.stored[..]))
            .collect();
        let first = records.first().map(|r| r.0);
        let n = records.len() as u64;
        push_records(slot, writer, &records);
        (n, first)
    }

    /// Makes the standby at `pos` the current segment: appends go there
    /// from now on, and whatever it lacks of the queue is replayed into it.
    pub(crate) fn promote(&self, st: &mut State, pos: usize) {
        st.current = Some(pos);
        st.standby = None;
        self.install(st, pos);
    }

    /// The standby a hedge may write into now, and its writer: it is open
    /// and has not failed, and the current segment is installed. Not while
    /// the current segment is still being created: it will hold only what
    /// is not yet durable when it is installed, so records acknowledged from
    /// the standby (a later segment) meanwhile would be missing between it
    /// and the segments before it.
    pub(crate) fn hedge_target(st: &State) -> Option<(usize, Arc<LogWriter<RecordedFile>>)> {
        st.slots[st.current?].live()?;
        let pos = st.standby?;
        let slot = &st.slots[pos];
        let writer = slot.live()?;
        (!slot.recorder.has_failed()).then(|| (pos, Arc::clone(writer)))
    }

    /// Hedges (at `now`, by the manager's clock): writes every record not
    /// yet durable that the standby lacks into it and asks for a sync there.
    /// Returns the bytes written, or `None` when no standby could take them
    /// or the current segment is not installed yet.
    pub(crate) fn hedge(&self, now: std::time::Duration) -> Option<u64> {
        let mut st = self.state.lock();
        if st.closing || st.failed.is_some() {
            return None;
        }
        st.last_hedge = Some(now);
        let (pos, writer) = Self::hedge_target(&st)?;
        let before = st.slots[pos].bytes;
        let after = st.slots[pos].last_lsn;
        let (copied, first) = Self::copy_queue(&mut st, pos, &writer, after);
        writer.request_sync();
        let bytes = st.slots[pos].bytes - before;
        super::writer::count_hedge(&self.env, bytes);
        tracing::debug!(
            log = %self.log,
            segment = %st.slots[pos].path.display(),
            records = copied,
            first_lsn = ?first.map(|l| l.0),
            "hedged into the standby segment"
        );
        Some(bytes)
    }

    /// Closes the segment at `pos` in the background; its figures go to the
    /// manager's totals.
    pub(crate) fn close_slot_in_background(
        self: &Arc<Self>,
        pos: usize,
        writer: Arc<LogWriter<RecordedFile>>,
    ) {
        let me = Arc::clone(self);
        let index = SegmentIndex(pos as u32);
        self.env
            .tasks
            .spawn(&format!("wal-close-{}-{}", self.log, index), move || {
                let result = writer.close().map_err(|e| e.to_string());
                me.core.accumulate(&writer.metrics());
                let size = writer.size();
                let mut st = me.state.lock();
                let slot = &mut st.slots[pos];
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

    /// Drops the standby at `pos`, which never received a record. It leaves
    /// the log's segment list at once, so that nothing lists, archives or
    /// deletes it as part of the log (and the log closes without waiting on
    /// the secondary); its file is removed in the background, or by its
    /// creation once done. A crash before that leaves an empty segment,
    /// which reads as one and is deleted with its log or as a leftover at
    /// open. A standby whose creation failed stays listed while its file
    /// may exist (see `create_segment`).
    pub(crate) fn drop_unused_standby(self: &Arc<Self>, st: &mut State, pos: usize) {
        let writer = match &st.slots[pos].state {
            SlotState::Live(w) => Some(Arc::clone(w)),
            SlotState::Creating => None,
            SlotState::Failed(_) | SlotState::Closing | SlotState::Closed(_) => return,
        };
        self.core.remove_segment(self.log, SegmentIndex(pos as u32));
        let Some(writer) = writer else {
            st.slots[pos].discard = true;
            return;
        };
        st.slots[pos].state = SlotState::Closing;
        let me = Arc::clone(self);
        let (dir, path) = (st.slots[pos].dir, st.slots[pos].path.clone());
        self.env.tasks.spawn(
            &format!("wal-drop-standby-{}-{pos}", self.log),
            move || {
                // Nothing in it to keep: abandon the writer, remove the file.
                drop(writer);
                let d = me.core.dirs.get(dir);
                let removed = match d.fs.remove(&path) {
                    Err(e) if !e.is_not_found() => Err(e),
                    _ => d.fs.sync_dir(&d.path),
                };
                if let Err(e) = removed {
                    tracing::warn!(log = %me.log, path = %path.display(), error = %e, "removing an unused standby segment failed; it stays an empty segment of the log until the next open");
                }
                me.state.lock().slots[pos].state = SlotState::Closed(Ok(0));
                me.cv.notify_all();
            },
        );
    }
}

/// Hands `records` to the segment's writer, noting where each ends; a
/// failed writer keeps them queued, and its recorder the error (the monitor
/// switches).
pub(crate) fn push_records(
    slot: &mut Slot,
    writer: &LogWriter<RecordedFile>,
    records: &[(Lsn, &[u8])],
) {
    if records.is_empty() {
        return;
    }
    let pending = &mut slot.pending;
    let mut bytes = 0;
    let pushed = writer.append_with(false, |batch| {
        for (lsn, stored) in records {
            pending.push_back((batch.push(&[stored])?.end, *lsn));
            bytes += stored.len() as u64;
        }
        Ok(())
    });
    match pushed {
        Ok((Ok(()), _)) => {
            slot.last_lsn = records.last().map(|r| r.0);
            slot.bytes += bytes;
        }
        Ok((Err(e), _)) | Err(e) => slot.recorder.fail(e.to_string()),
    }
}

/// The position of a directory in per-directory arrays.
pub(crate) fn dir_pos(dir: DirId) -> usize {
    match dir {
        DirId::Primary => 0,
        DirId::Secondary => 1,
    }
}

/// Routes a record-layer sync event of segment `index` to the writer: a
/// sync releases every record up to the last one it covers (see the module
/// docs for why that is sound for every segment).
fn on_sync(weak: &Weak<Inner>, index: SegmentIndex, event: &SyncEvent) {
    let Some(inner) = weak.upgrade() else { return };
    let mut st = inner.state.lock();
    let pos = index.0 as usize;
    match event {
        SyncEvent::Synced { offset } => {
            let slot = &mut st.slots[pos];
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
                    // Progress: whoever still waits, waits from now.
                    st.waiting_since = match st.sync_wanted {
                        Some(w) if w >= st.durable_until => Some(inner.core.clock.now()),
                        _ => None,
                    };
                    inner.cv.notify_all();
                }
            }
        }
        SyncEvent::Failed { error } => {
            st.slots[pos].recorder.fail(error.to_string());
            inner.cv.notify_all();
        }
    }
}
