//! Rounds of I/O and the flush thread.

use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use super::buffer::{BUF_CAPACITY, FLUSH_THRESHOLD, SPARE_CAPACITY_MAX, SPARES_MAX};
use super::{LogFile, Shared, State, SyncEvent};
use crate::error::{Error, IoOp};

/// How many bytes written between two calls of [`LogFile::prepare_ahead`]
/// (each is a wake-up of the flush thread, so not after every sync).
pub(super) const PREPARE_EVERY: u64 = 256 << 10;
/// ... and once at this sync, so that a log synced often gets its space
/// prepared early (`OsFs` fills from a file's 4th sync on).
pub(super) const PREPARE_FIRST_AT_SYNC: u64 = 8;
/// The longest `sync_linger` hold.
const SYNC_LINGER_MAX: Duration = Duration::from_millis(2);

/// The result of one round of flush-thread I/O.
struct Flushed {
    /// The offset the round's data ended at.
    end: u64,
    /// Records appended before `end`.
    records_at_end: u64,
    /// Bytes written.
    bytes: usize,
    /// Whether data was written (`Ok(false)`: there was none).
    wrote: io::Result<bool>,
    /// Whether a sync was done (`Ok(false)`: none was due).
    synced: io::Result<bool>,
}

impl State {
    /// Publishes the outcome of a round of I/O; returns the event for the
    /// sync callback, if any.
    fn record_flush(&mut self, shared: &Shared, f: Flushed, now: Instant) -> Option<SyncEvent> {
        let mut event = None;
        match f.wrote {
            Ok(true) => {
                self.written = f.end;
                self.writes += 1;
                self.bytes_written += f.bytes as u64;
            }
            Ok(false) => {}
            Err(e) => {
                let e = Error::io(IoOp::Write, e);
                event = Some(SyncEvent::Failed { error: e.clone() });
                self.error = Some(e);
            }
        }
        match f.synced {
            Ok(true) => {
                debug_assert_eq!(self.written, f.end);
                self.synced = f.end;
                shared.synced_pub.store(f.end, Ordering::Release);
                self.syncs += 1;
                let group = f.records_at_end - self.records_synced;
                shared.sync_group_records.record(group);
                self.records_synced = f.records_at_end;
                if shared.fixed.sync_linger && group > 1 {
                    let hold = (self.last_sync / 4).min(SYNC_LINGER_MAX);
                    self.sync_linger = Some((now + hold, self.records + group));
                }
                let min = shared.fixed.min_sync_interval;
                if !min.is_zero() {
                    self.sync_gate = Some(now + min);
                }
                event = Some(SyncEvent::Synced { offset: f.end });
            }
            Ok(false) => {}
            Err(e) => {
                let e = Error::io(IoOp::Sync, e);
                event = Some(SyncEvent::Failed { error: e.clone() });
                self.error = Some(e);
            }
        }
        event
    }
}

/// Runs a file operation, turning a panic in it into an I/O error so that the
/// flush thread survives a misbehaving [`LogFile`].
pub(super) fn guarded<T>(op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    match panic::catch_unwind(AssertUnwindSafe(op)) {
        Ok(r) => r,
        Err(_) => Err(io::Error::other("the log file panicked")),
    }
}

/// One round of I/O by the holder of `io_busy`: takes the buffer (and, with
/// `sync_due`, the decision to sync it) in the caller's critical section,
/// writes and syncs with the lock released, and publishes the outcome.
/// Returns the event for the sync callback, if any.
pub(super) fn io_round<F: LogFile>(
    shared: &Shared,
    io: &Mutex<Option<F>>,
    st: &mut MutexGuard<'_, State>,
    sync_due: bool,
) -> Option<SyncEvent> {
    debug_assert!(st.io_busy);
    let spare = st
        .spares
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(BUF_CAPACITY));
    let mut data = mem::replace(&mut st.buf, spare);
    if data.len() >= shared.fixed.pending_bytes_max {
        // Appenders blocked on a full buffer may go on now, while this
        // round writes it: filling and writing overlap. (Waking them only
        // after the write made them take turns: 1.7 GB/s instead of 3 for
        // 32 KiB records.)
        shared.progress.notify_all();
    }
    let end = st.offset;
    let records_at_end = st.records;
    st.records_taken = records_at_end;
    debug_assert_eq!(end - data.len() as u64, st.written);
    let work_start = Instant::now();

    let (wrote, synced, sync_start, done) = MutexGuard::unlocked(st, || {
        let mut guard = io.lock();
        let Some(file) = guard.as_mut() else {
            unreachable!("the file is only taken out after the last round")
        };
        let mut wrote = Ok(false);
        if !data.is_empty() {
            let t = Instant::now();
            wrote = guarded(|| file.write_all(&data)).map(|()| true);
            shared.write_latency.record_duration(t.elapsed());
        }
        let mut synced = Ok(false);
        let sync_start = Instant::now();
        let mut done = sync_start;
        if wrote.is_ok() && sync_due {
            synced = guarded(|| file.sync_data()).map(|()| true);
            done = Instant::now();
            shared
                .sync_latency
                .record_duration(done.saturating_duration_since(sync_start));
        }
        (wrote, synced, sync_start, done)
    });

    st.work_time += done.saturating_duration_since(work_start);
    if sync_due {
        st.last_sync = done.saturating_duration_since(sync_start);
    }
    if matches!(synced, Ok(true))
        && (end >= st.prepared_at + PREPARE_EVERY || st.syncs == PREPARE_FIRST_AT_SYNC)
    {
        st.prepare_due = true;
    }
    let event = st.record_flush(
        shared,
        Flushed {
            end,
            records_at_end,
            bytes: data.len(),
            wrote,
            synced,
        },
        done,
    );
    data.clear();
    if st.spares.len() < SPARES_MAX && data.capacity() <= SPARE_CAPACITY_MAX {
        st.spares.push(data);
    }
    event
}

pub(super) fn flush_loop<F: LogFile>(shared: &Shared, io: &Mutex<Option<F>>) {
    let mut st = shared.state.lock();
    let mut idle_since = Instant::now();
    loop {
        if st.io_busy {
            // A leading waiter owns the file; it wakes us when it is done
            // if there is work left for us.
            st.flusher_idle = true;
            shared.work.wait(&mut st);
            st.flusher_idle = false;
            continue;
        }
        if st.error.is_some() {
            // Poisoned: buffered bytes will never be written.
            let taken = st.taken();
            st.buf.clear();
            debug_assert!(taken <= st.offset);
            wake_parked(shared, &mut st);
            shared.progress.notify_all();
            if st.closing {
                break;
            }
            st.flusher_idle = true;
            shared.work.wait(&mut st);
            st.flusher_idle = false;
            continue;
        }

        let now = Instant::now();
        if st.prepare_due && !st.closing {
            // First, even with syncs pending: under a steady load there
            // always are, and waiters do not lead while it is due.
            st.io_busy = true;
            st.idle_time += now.saturating_duration_since(idle_since);
            prepare_round(shared, io, &mut st);
            st.io_busy = false;
            idle_since = Instant::now();
            wake_parked(shared, &mut st);
            shared.progress.notify_all();
            continue;
        }
        // A sync linger ends at its deadline or once the released
        // appenders are back.
        let lingering = st
            .sync_linger
            .is_some_and(|(until, target)| now < until && st.records < target);
        if !lingering {
            st.sync_linger = None;
        }
        let gate_open = st.closing || (st.sync_gate.is_none_or(|t| now >= t) && !lingering);
        let sync_pending = st.sync_wanted > st.synced;
        let sync_due = sync_pending && gate_open;
        let write_due = !st.buf.is_empty()
            && (sync_pending
                || st.closing
                || st.buf.len() >= FLUSH_THRESHOLD
                || st.flush_wanted > st.written);
        if !write_due && !sync_due {
            if st.closing && st.buf.is_empty() && (st.abandoned || st.synced == st.offset) {
                break;
            }
            st.flusher_idle = true;
            let gate = match (st.sync_gate, st.sync_linger) {
                (Some(a), Some((b, _))) => Some(a.max(b)),
                (a, b) => a.or(b.map(|l| l.0)),
            };
            match gate {
                Some(t) if sync_pending => {
                    shared.work.wait_until(&mut st, t);
                }
                _ => shared.work.wait(&mut st),
            }
            st.flusher_idle = false;
            continue;
        }

        // Take the work: the whole buffer, and the decision to sync it.
        st.io_busy = true;
        st.idle_time += now.saturating_duration_since(idle_since);
        let event = io_round(shared, io, &mut st, sync_due);
        st.io_busy = false;
        idle_since = Instant::now();
        // The callback runs before the waiters this round released are
        // woken, so that they find its effects done.
        if let (Some(event), Some(callback)) = (event, shared.fixed.on_sync.as_ref()) {
            MutexGuard::unlocked(&mut st, || callback(&event));
        }
        wake_parked(shared, &mut st);
        shared.progress.notify_all();
    }
    // Close the file. Only a clean close reports the result.
    debug_assert!(!st.io_busy, "no leader once closing");
    let clean = !st.abandoned && st.error.is_none();
    let file = io.lock().take();
    let closed = MutexGuard::unlocked(&mut st, || match file {
        Some(file) => guarded(|| file.close()),
        None => Ok(()),
    });
    if clean {
        if let Err(e) = closed {
            st.close_error = Some(Error::io(IoOp::Close, e));
        }
    }
    st.flusher_done = true;
    wake_parked(shared, &mut st);
    shared.progress.notify_all();
}

/// [`LogFile::prepare_ahead`] by the holder of `io_busy`, with the lock
/// released; an error becomes the sticky error (and a failed sync event).
pub(super) fn prepare_round<F: LogFile>(
    shared: &Shared,
    io: &Mutex<Option<F>>,
    st: &mut MutexGuard<'_, State>,
) {
    debug_assert!(st.io_busy && st.error.is_none());
    st.prepare_due = false;
    st.prepared_at = st.written;
    let start = Instant::now();
    let prepared = MutexGuard::unlocked(st, || {
        let mut guard = io.lock();
        let Some(file) = guard.as_mut() else {
            unreachable!("the file is only taken out after the last round")
        };
        guarded(|| file.prepare_ahead())
    });
    st.work_time += start.elapsed();
    if let Err(e) = prepared {
        let e = Error::io(IoOp::Sync, e);
        st.error = Some(e.clone());
        if let Some(callback) = shared.fixed.on_sync.as_ref() {
            let event = SyncEvent::Failed { error: e };
            MutexGuard::unlocked(st, || callback(&event));
        }
    }
}

/// Wakes the parked waiters `State::take_wakeups` picks, with the lock
/// released while doing so.
pub(super) fn wake_parked(shared: &Shared, st: &mut MutexGuard<'_, State>) {
    let mut wake = Vec::new();
    st.take_wakeups(shared.fixed.leaders, &mut wake);
    unpark_unlocked(st, &mut wake);
}

/// Unparks (and empties) `wake` with the lock released, so that released
/// waiters can append again at once.
pub(super) fn unpark_unlocked(st: &mut MutexGuard<'_, State>, wake: &mut Vec<Thread>) {
    if !wake.is_empty() {
        MutexGuard::unlocked(st, || {
            for t in wake.drain(..) {
                t.unpark();
            }
        });
    }
}
