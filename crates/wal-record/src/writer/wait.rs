//! Waiting for durability: leading rounds, lingering, spinning, parking.

use std::sync::atomic::Ordering;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::buffer::FLUSH_THRESHOLD;
use super::flush::{io_round, unpark_unlocked};
use super::{LogFile, LogWriter, Shared, State, Waiter};
use crate::error::{Error, Result};

/// Most rounds of I/O one call of [`LogWriter::wait_synced`] leads in a row
/// (see there). More means fewer hand-offs between leaders and more latency
/// for the one that keeps leading.
const LEAD_ROUNDS_MAX: u32 = 3;

/// The longest a leader waits for released appenders to append again before
/// it syncs, and never more than half the last sync's time (see
/// `LogWriter::linger`).
const LINGER_MAX: Duration = Duration::from_micros(40);

/// A waiter spins for this many recent sync times at most: enough for the
/// round in progress and the next one, which carries its record.
const SPIN_SYNCS: u32 = 3;
/// A `sched_yield` that kept a spinner off the CPU longer than this means
/// other work wants the cores (a scheduler slice is 1.5-3 ms; the writer's
/// own spinners hand the CPU back within microseconds): spinning then only
/// delays the spinners, because a yielded thread waits behind that work
/// while a woken sleeper is run promptly. So all waiters park instead,
/// for `SPIN_BACKOFF`. Not lower: on a virtual machine the kernel worker
/// that kicks the disk for a sync holds a vCPU for 77 µs per run on
/// average, more at times (`perf sched`; the kick is a VM exit), and the
/// back-off is a guess about someone else's work; at 200 µs it fired
/// 50-100 times a second on an idle machine and cost 12-15% of the
/// 16-thread throughput (`wal bench`, three alternated pairs).
const SLOW_YIELD: Duration = Duration::from_millis(1);
/// See `SLOW_YIELD`.
const SPIN_BACKOFF: Duration = Duration::from_millis(100);

/// How a spell of spinning ended.
enum Spun {
    /// The offset is durable.
    Released,
    /// The file went idle, or the budget ran out: look again under the
    /// lock.
    LookAgain,
    /// A yield was slow (see `SLOW_YIELD`): park.
    Contended,
}

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
        // Every thread woken, spinning or still waiting will likely append
        // again.
        self.linger_for = (out.len() - before + self.waiters.len()) as u64 + self.spinners_at_take;
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

impl Shared {
    /// How long a waiter that would park may spin first, if at all (see
    /// the module docs).
    fn spin_budget(&self, st: &State, now: Instant) -> Option<Duration> {
        if !self.fixed.leaders || st.sync_avg.is_zero() {
            return None;
        }
        if st.spin_off_until.is_some_and(|t| now < t) {
            return None;
        }
        let budget = st.sync_avg * SPIN_SYNCS;
        (budget <= self.fixed.spin_wait_max).then_some(budget)
    }

    /// Spins, yielding the CPU, until `offset` is durable, the file went
    /// idle since `rounds` was read, `until`, or a yield was slow.
    fn spin(&self, offset: u64, rounds: u64, until: Instant) -> Spun {
        loop {
            if self.synced_pub.load(Ordering::Acquire) >= offset {
                return Spun::Released;
            }
            let before = Instant::now();
            if self.rounds.load(Ordering::Acquire) != rounds || before >= until {
                return Spun::LookAgain;
            }
            thread::yield_now();
            if before.elapsed() > SLOW_YIELD {
                return Spun::Contended;
            }
        }
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
        // Until when this call may spin rather than park: decided the first
        // time it would park.
        let mut spin_until: Option<Option<Instant>> = None;
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
            // Spin first, while the budget lasts: the round in progress
            // will likely end soon, and a running thread sees that sooner
            // and more cheaply than a parked one is woken. A spinner that
            // is not released when the file goes idle looks again under
            // the lock (it may lead).
            let now = Instant::now();
            let until =
                *spin_until.get_or_insert_with(|| shared.spin_budget(&st, now).map(|b| now + b));
            if let Some(until) = until.filter(|&t| now < t) {
                let rounds = shared.rounds.load(Ordering::Acquire);
                shared.spinners.fetch_add(1, Ordering::Relaxed);
                drop(st);
                let spun = shared.spin(offset, rounds, until);
                shared.spinners.fetch_sub(1, Ordering::Relaxed);
                if let Spun::Released = spun {
                    shared.waits_spun.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                st = shared.state.lock();
                if let Spun::Contended = spun {
                    spin_until = Some(None);
                    st.spin_off_until = Some(Instant::now() + SPIN_BACKOFF);
                    st.spin_backoffs += 1;
                }
                continue;
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
        shared.round_ended();
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
