//! Waiting for durability: leading rounds, lingering, parking.

use std::sync::atomic::Ordering;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::buffer::FLUSH_THRESHOLD;
use super::flush::{io_round, unpark_unlocked};
use super::{LogFile, LogWriter, State, Waiter};
use crate::error::{Error, Result};

/// Most rounds of I/O one call of [`LogWriter::wait_synced`] leads in a row
/// (see there). More means fewer hand-offs between leaders and more latency
/// for the one that keeps leading.
const LEAD_ROUNDS_MAX: u32 = 3;

/// The longest a leader waits for released appenders to append again before
/// it syncs, and never more than half the last sync's time (see
/// `LogWriter::linger`).
const LINGER_MAX: Duration = Duration::from_micros(40);

impl State {
    /// At the end of a round of I/O (or when the writer fails or stops):
    /// moves into `out` the parked waiters to wake. Those whose bytes are
    /// now durable, every one once the writer failed or stopped, and, when
    /// waiters may lead and the file is idle, one still waiting, to lead the
    /// next round. Waking only these, rather than every waiter, avoids a
    /// storm of threads that would only go back to sleep.
    pub(super) fn take_wakeups(&mut self, leaders: bool, out: &mut Vec<Thread>) {
        let all = self.error.is_some() || self.flusher_done;
        let mut lead = leaders && self.open_to_a_leader();
        let before = out.len();
        let mut i = 0;
        while i < self.waiters.len() {
            let released = all || self.waiters[i].offset <= self.synced;
            if released || lead {
                lead &= released;
                out.push(self.waiters.swap_remove(i).thread);
            } else {
                i += 1;
            }
        }
        // Every thread woken or still waiting will likely append again.
        self.linger_for = (out.len() - before + self.waiters.len()) as u64;
    }

    /// Whether a waiter may start a round now: the file is idle, nobody is
    /// lingering before leading, and neither close nor the upkeep (both the
    /// flush thread's) is due, and the writer has not failed.
    pub(super) fn open_to_a_leader(&self) -> bool {
        !self.io_busy
            && !self.lingering
            && !self.closing
            && !self.prepare_due
            && self.error.is_none()
    }
}

impl<F: LogFile> LogWriter<F> {
    /// Waits until the file is durable up to `offset` (an [`Appended::end`](super::Appended::end)
    /// or the result of [`LogWriter::request_sync`]), requesting the sync if
    /// nobody has.
    ///
    /// # Errors
    /// The writer's sticky error if the sync could not be done, or
    /// [`Error::Closed`] if the writer stopped first.
    ///
    /// # Panics
    /// If `offset` is beyond what has been appended.
    pub fn wait_synced(&self, offset: u64) -> Result<()> {
        let shared = &*self.shared;
        let mut st = shared.state.lock();
        assert!(offset <= st.offset, "waiting for bytes never appended");
        if st.sync_wanted < offset {
            st.sync_wanted = offset;
            if !shared.fixed.leaders {
                shared.wake_flusher(&st);
            }
        }
        // Waiters to wake once the lock is released (after leading).
        let mut wake = Vec::new();
        // Rounds this call led.
        let mut led = 0;
        let mut parked = false;
        let outcome = loop {
            if st.synced >= offset {
                // A leader whose own record is durable leads again, a few
                // times at most, if records arrived during its round: it is
                // running already, whereas a parked waiter asked to lead
                // must first be scheduled (on a busy machine, milliseconds).
                let lead_again = led > 0
                    && led < LEAD_ROUNDS_MAX
                    && st.open_to_a_leader()
                    && st.waiters.iter().any(|w| w.offset > st.synced);
                if !lead_again {
                    break Ok(());
                }
            } else {
                if let Some(e) = &st.error {
                    break Err(e.clone());
                }
                if st.flusher_done {
                    break Err(Error::Closed);
                }
            }
            if shared.fixed.leaders && !st.io_busy && !st.lingering {
                if st.closing || st.prepare_due {
                    // Close's final sync is the flush thread's, and so is
                    // the upkeep: were waiters to lead while it is due, a
                    // steady stream of them would keep the flush thread
                    // from ever getting the file. It wakes one to lead
                    // when done.
                    shared.wake_flusher(&st);
                } else {
                    led += 1;
                    st.lingering = true;
                    Self::linger(&mut st);
                    st.lingering = false;
                    if st.io_busy || st.closing || st.error.is_some() {
                        continue;
                    }
                    self.lead(&mut st, &mut wake, led < LEAD_ROUNDS_MAX);
                    unpark_unlocked(&mut st, &mut wake);
                    continue;
                }
            }
            // Park until an I/O owner releases this waiter or asks it to
            // lead. The entry is made under the lock that every I/O owner
            // takes to end its round, and `unpark` before `park` makes
            // `park` return at once, so no wake-up can be lost.
            let ticket = st.next_ticket;
            st.next_ticket += 1;
            if !parked {
                parked = true;
                st.waits_parked += 1;
            }
            st.waiters.push(Waiter {
                ticket,
                offset,
                thread: thread::current(),
            });
            drop(st);
            thread::park();
            if shared.synced_pub.load(Ordering::Acquire) >= offset {
                // The common case needs no further look at the state. The
                // entry may still be there if `park` returned spuriously;
                // the next round's `take_wakeups` drops it.
                return Ok(());
            }
            // Woken to lead, because the writer failed or stopped, or
            // spuriously: look again under the lock.
            st = shared.state.lock();
            st.waiters.retain(|w| w.ticket != ticket);
        };
        drop(st);
        debug_assert!(wake.is_empty(), "woken right after each round");
        outcome
    }

    /// Before leading a round: gives the appenders the last round released a
    /// moment to append again, so that one sync serves them too (a larger
    /// group for a little latency). Yields the CPU until `linger_for`
    /// records have arrived since the buffer was last taken, for at most
    /// `LINGER_MAX`. Without other appenders (one writer thread) it returns
    /// at once.
    fn linger(st: &mut MutexGuard<'_, State>) {
        if st.linger_for <= 1 {
            return;
        }
        let target = st.records_taken + st.linger_for;
        // Never wait longer than half a sync: on a fast device a long
        // linger would cost more than the sync it saves.
        let deadline = Instant::now() + LINGER_MAX.min(st.last_sync / 2);
        while st.records < target && !st.io_busy && Instant::now() < deadline {
            MutexGuard::unlocked(st, thread::yield_now);
        }
    }

    /// One round of I/O on the calling thread: a waiter found the file idle,
    /// so it writes everything appended so far and syncs it, for every
    /// waiter at once (see the module docs). Adds to `wake` the parked
    /// waiters to wake once the lock is released; with `may_lead_again`, no
    /// waiter is asked to lead the next round (the caller may).
    fn lead(&self, st: &mut MutexGuard<'_, State>, wake: &mut Vec<Thread>, may_lead_again: bool) {
        let shared = &*self.shared;
        debug_assert!(shared.fixed.leaders && !st.io_busy && st.error.is_none());
        st.io_busy = true;
        let event = io_round(shared, &self.file, st, true);
        debug_assert!(event.is_some(), "a leader always syncs or fails");
        st.io_busy = false;
        if st.error.is_some() {
            // Poisoned: buffered bytes will never be written.
            st.buf.clear();
        }
        st.take_wakeups(!may_lead_again, wake);
        shared.progress.notify_all();
        // The flush thread may have work a leader does not do: unsynced
        // data past the threshold, a flush, a sync nobody waits for, close.
        let write_due =
            !st.buf.is_empty() && (st.buf.len() >= FLUSH_THRESHOLD || st.flush_wanted > st.written);
        let orphan_sync = st.sync_wanted > st.synced && st.waiters.is_empty();
        if st.closing || write_due || orphan_sync || st.prepare_due || st.error.is_some() {
            shared.wake_flusher(st);
        }
    }
}
