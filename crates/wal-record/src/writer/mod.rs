//! The group-commit log writer.
//!
//! # Design
//!
//! Appenders (any number of threads) encode their record into chunks and copy
//! them into one shared buffer under a mutex; that is all an append costs.
//! An *I/O owner* takes the whole buffer (swapping in a spare one, so neither
//! side allocates in steady state), writes it with one `write`, and, if
//! anyone asked for durability, syncs once for all of them: every waiter
//! whose record was in the buffer when it was taken is released by that one
//! sync. This is group commit: under load the number of syncs is far below
//! the number of synced records.
//!
//! The I/O owner is whoever sets `io_busy` under the lock: either the writer's
//! *flush thread* (unsynced data once 128 KiB has accumulated, flush and sync
//! requests nobody waits for, close), or a *leading waiter*: an appender
//! waiting for durability that finds no I/O in progress does the write and
//! the sync itself, on its own thread, instead of waking the flush thread and
//! being woken by it (Pebble's `LogWriter` always hands off; RocksDB's write
//! thread and okaywal lead). Leading saves two thread hand-offs per group;
//! on the 2-core benchmark machine each costs a wake-up and, when the cores
//! are busy, a wait for the scheduler. While a leader does I/O, later
//! appenders add to the buffer and wait; when it is done it wakes them, and
//! one whose record is still not durable leads the next round with
//! everything that accumulated meanwhile.
//!
//! Three refinements, each measured (`benches/README.md` and DESIGN.md,
//! "Performance notes"):
//!
//! * **Targeted wake-ups.** A waiter parks its own thread, registered with
//!   the offset it needs; the I/O owner that ends a round wakes exactly the
//!   waiters it released, plus one still waiting to lead the next round,
//!   and a released waiter sees so from an atomic without taking the lock.
//!   A condition variable's `notify_all` would wake every waiter, each to
//!   take the lock in turn, most only to go back to sleep.
//! * **Leading again.** A leader whose record is durable leads up to
//!   `LEAD_ROUNDS_MAX` rounds in a row when records arrived during its
//!   round: it is running already, whereas a parked waiter asked to lead
//!   must first be scheduled.
//! * **Lingering.** Before taking the buffer, a leader gives the appenders
//!   the last round released a moment to append again (yielding the CPU,
//!   at most `LINGER_MAX` and half the last sync's time), so that one sync
//!   serves them too: with 16 synced appenders the group grows from ~8
//!   records to ~13. A lone appender never lingers.
//!
//! ```text
//!  appender ──lock──► encode chunks into `buf` ──► (waits for durability?)
//!                                                      │
//!  I/O owner: lock ► io_busy, take `buf`, note `end` ► unlock ► write(buf) ► sync ► lock ► synced = end, !io_busy ► wake waiters
//! ```
//!
//! Between rounds the flush thread runs the file's upkeep,
//! [`LogFile::prepare_ahead`] (zero fill ahead on `wal_fs::OsFs`): about
//! every 256 KiB of synced data, before any pending sync, while waiters
//! park rather than lead; never during close. So the upkeep is
//! never part of a commit's own write or sync.
//!
//! Leading is off when a [`LogWriterOptions::on_sync`] callback is set (the
//! callback then always runs on the flush thread, never on an appender that
//! may hold its caller's locks: the failover writer relies on that) and when
//! a minimum sync interval is set (only the flush thread keeps time).
//!
//! Ordering argument: the I/O owner decides to sync and takes the buffer in
//! one critical section, and the sync covers everything it took and
//! everything written before. So after the sync, `synced = end` is at or past
//! the end of every record appended before that critical section, and a
//! waiter, which is released only once `synced` reaches the end of its own
//! record, can never be released before its bytes are durable. Only the
//! holder of `io_busy` touches the file, so writes stay in offset order.
//!
//! The synced offset written into wal-sync chunk headers is `synced`, read
//! under the lock when the chunk is encoded: a promise that the file was
//! durable up to that offset before this chunk was written.
//!
//! # Errors are sticky
//!
//! The first failed write or sync is latched. Every later append, sync
//! request and waiter gets a clone of it; bytes still buffered are dropped;
//! nothing is retried. After a failed `fsync` the kernel may have dropped the

mod buffer;
mod file;
mod flush;
mod options;
mod wait;

#[cfg(test)]
mod tests;

pub use buffer::Batch;
pub use file::LogFile;
pub use options::{Appended, LogWriterMetrics, LogWriterOptions, SyncCallback, SyncEvent};

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, IoOp, Result};
use crate::format::{self, WireFormat};
use crate::histogram::Histogram;
use buffer::{BUF_CAPACITY, FLUSH_THRESHOLD};
use flush::flush_loop;

/// Settings fixed for the writer's life.
struct Fixed {
    /// Waiters may do the I/O themselves (no sync callback, no minimum sync
    /// interval): see the module docs.
    leaders: bool,
    log_num: u32,
    format: WireFormat,
    min_sync_interval: Duration,
    pending_bytes_max: usize,
    record_size_max: usize,
    on_sync: Option<SyncCallback>,
    sync_linger: bool,
}

// The flags are independent facts about the writer's life; an enum would
// have to encode their product.
#[allow(clippy::struct_excessive_bools)]
struct State {
    // Appender side.
    /// File offset of the next chunk: every byte before it has been encoded.
    offset: u64,
    /// Encoded bytes the flush thread has not taken yet.
    // INVARIANT: `buf` holds exactly the file range `[offset - buf.len(), offset)`.
    buf: Vec<u8>,
    /// Cleared buffers returned by I/O owners, reused on the next swaps.
    /// Keeping a few (rather than one) means an appender never finds none
    /// while the previous buffer is still being written, which would make it
    /// grow a new one from nothing: a series of reallocations, each on
    /// fresh pages that fault on first touch (measured: 32 KiB appends ran
    /// at 1.4 GB/s instead of 3+).
    // INVARIANT: every spare is empty; at most `SPARES_MAX`, none larger
    // than `SPARE_CAPACITY_MAX`.
    spares: Vec<Vec<u8>>,
    /// Highest offset some caller needs durable.
    sync_wanted: u64,
    /// Highest offset some caller needs written (not necessarily synced).
    flush_wanted: u64,
    /// Set by `close` (after the trailer) and by dropping the writer.
    closing: bool,
    /// Whether closing writes the EOF trailer and syncs (close) or just
    /// drains what is buffered (drop).
    abandoned: bool,
    records: u64,
    payload_bytes: u64,

    // Flush-thread side.
    /// Bytes successfully handed to the file.
    written: u64,
    /// Bytes known durable.
    // INVARIANT: synced <= written <= offset - buf.len().
    synced: u64,
    /// Records durable (for group-size figures).
    records_synced: u64,
    /// Someone (the flush thread or a leading waiter) owns the file and is
    /// doing I/O with the lock released.
    // INVARIANT: only the thread that set `io_busy` touches the file, and it
    // took the buffer and decided to sync in the critical section that set
    // it.
    io_busy: bool,
    /// Threads parked in `wait_synced`, each with the offset it needs
    /// durable. Whoever ends a round of I/O takes out and wakes those it
    /// released, and one more to lead the next round (see `take_wakeups`).
    waiters: Vec<Waiter>,
    /// Tells the entries of `waiters` apart.
    next_ticket: u64,
    /// `records` when the buffer was last taken.
    records_taken: u64,
    /// How many records the next leader may wait for before it takes the
    /// buffer: the waiters the last round released (each will likely append
    /// again) plus those still waiting. See `LogWriter::linger`.
    linger_for: u64,
    /// How long the last sync took.
    last_sync: Duration,
    /// A waiter is lingering before it leads (see `LogWriter::linger`):
    /// others park rather than lead or linger too.
    lingering: bool,
    /// `written` when [`LogFile::prepare_ahead`] last ran.
    prepared_at: u64,
    /// The flush thread should call [`LogFile::prepare_ahead`] once it has
    /// nothing else to do.
    prepare_due: bool,
    /// The flush thread is parked waiting for work.
    flusher_idle: bool,
    /// The flush thread has exited; nothing will change any more.
    flusher_done: bool,
    /// No sync may start before this instant (min sync interval).
    sync_gate: Option<Instant>,
    /// With `sync_linger`: no sync starts before this instant unless the
    /// record count reaches the target (see `LogWriterOptions::sync_linger`).
    sync_linger: Option<(Instant, u64)>,
    /// The sticky error.
    error: Option<Error>,
    /// The error from closing the file, if any.
    close_error: Option<Error>,
    bytes_written: u64,
    writes: u64,
    syncs: u64,
    waits_parked: u64,
    work_time: Duration,
    idle_time: Duration,
}

/// A thread parked in [`LogWriter::wait_synced`].
struct Waiter {
    ticket: u64,
    /// The offset it waits to see durable.
    offset: u64,
    thread: Thread,
}

struct Shared {
    fixed: Fixed,
    state: Mutex<State>,
    /// The flush thread waits here for work.
    work: Condvar,
    /// Flush waiters and blocked appenders wait here (sync waiters park:
    /// see `State::waiters`).
    progress: Condvar,
    /// `State::synced`, published so that a woken waiter can see that it
    /// was released without taking the lock.
    synced_pub: AtomicU64,
    write_latency: Histogram,
    sync_latency: Histogram,
    sync_group_records: Histogram,
}

impl Shared {
    /// Wakes the flush thread if it is parked. Called with the lock held.
    fn wake_flusher(&self, st: &State) {
        if st.flusher_idle {
            self.work.notify_one();
        }
    }
}

/// A log writer with group commit: many threads append, one flush thread
/// writes and syncs for all of them (DESIGN.md, "The log writer", has the
/// design: who writes, who syncs, how waiters are released). See the crate
/// example.
pub struct LogWriter<F: LogFile> {
    shared: Arc<Shared>,
    /// The file, used by whoever holds `io_busy`; the flush thread takes it
    /// out to close it.
    file: Arc<Mutex<Option<F>>>,
    /// The flush thread, until `close` joins it or a drop lets it go.
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl<F: LogFile> std::fmt::Debug for LogWriter<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("LogWriter")
            .field("log_num", &self.shared.fixed.log_num)
            .field("offset", &st.offset)
            .field("written", &st.written)
            .field("synced", &st.synced)
            .field("error", &st.error)
            .finish_non_exhaustive()
    }
}

impl<F: LogFile> LogWriter<F> {
    /// Starts a writer on `file`, which must be positioned at offset 0 (a new
    /// file, or a recycled one being overwritten from the start).
    ///
    /// # Errors
    /// The flush thread cannot be started.
    ///
    /// # Panics
    /// If `options.pending_bytes_max` is zero.
    pub fn new(file: F, options: LogWriterOptions) -> Result<LogWriter<F>> {
        assert!(
            options.pending_bytes_max > 0,
            "pending_bytes_max must be positive"
        );
        let shared = Arc::new(Shared {
            fixed: Fixed {
                leaders: options.on_sync.is_none() && options.min_sync_interval.is_zero(),
                log_num: options.log_num,
                format: options.format,
                min_sync_interval: options.min_sync_interval,
                pending_bytes_max: options.pending_bytes_max,
                record_size_max: options.record_size_max,
                on_sync: options.on_sync,
                sync_linger: options.sync_linger,
            },
            state: Mutex::new(State {
                offset: 0,
                buf: Vec::with_capacity(BUF_CAPACITY),
                spares: vec![Vec::with_capacity(BUF_CAPACITY)],
                sync_wanted: 0,
                flush_wanted: 0,
                closing: false,
                abandoned: false,
                records: 0,
                payload_bytes: 0,
                written: 0,
                synced: 0,
                records_synced: 0,
                io_busy: false,
                waiters: Vec::new(),
                next_ticket: 0,
                records_taken: 0,
                linger_for: 0,
                last_sync: Duration::ZERO,
                lingering: false,
                prepared_at: 0,
                prepare_due: false,
                flusher_idle: false,
                flusher_done: false,
                sync_gate: None,
                sync_linger: None,
                error: None,
                close_error: None,
                bytes_written: 0,
                writes: 0,
                syncs: 0,
                waits_parked: 0,
                work_time: Duration::ZERO,
                idle_time: Duration::ZERO,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            synced_pub: AtomicU64::new(0),
            write_latency: Histogram::new(),
            sync_latency: Histogram::new(),
            sync_group_records: Histogram::new(),
        });
        let file = Arc::new(Mutex::new(Some(file)));
        let for_thread = (Arc::clone(&shared), Arc::clone(&file));
        let flusher = thread::Builder::new()
            .name(format!("wal-flush-{}", options.log_num))
            .spawn(move || flush_loop(&for_thread.0, &for_thread.1))
            .map_err(|e| Error::io(IoOp::Spawn, e))?;
        Ok(LogWriter {
            shared,
            file,
            flusher: Mutex::new(Some(flusher)),
        })
    }

    /// The log number this writer stamps into chunk headers.
    pub fn log_num(&self) -> u32 {
        self.shared.fixed.log_num
    }

    /// Appends one record made of the concatenation of `parts`, without
    /// waiting for it to be written or synced.
    ///
    /// # Errors
    /// The writer's sticky error, [`Error::Closed`], or
    /// [`Error::RecordTooLarge`].
    pub fn append(&self, parts: &[&[u8]]) -> Result<Appended> {
        let (appended, _) = self.append_with(false, |batch| batch.push(parts))?;
        appended
    }

    /// Appends one record and waits until it is durable.
    ///
    /// # Errors
    /// As [`LogWriter::append`], plus the first write or sync error.
    pub fn append_sync(&self, parts: &[&[u8]]) -> Result<Appended> {
        // No sync request here: `wait_synced` raises it, and then leads or
        // wakes the flush thread, whichever is needed.
        let (appended, end) = self.append_with(false, |batch| batch.push(parts))?;
        let appended = appended?;
        self.wait_synced(end)?;
        Ok(appended)
    }

    /// Runs `build` with the writer locked, so that it can append several
    /// records (and assign them sequence numbers) atomically with respect to
    /// other appenders. If `request_sync`, a sync of everything up to the end
    /// of the batch is requested; the call does not wait for it: use
    /// [`LogWriter::wait_synced`] with the returned end offset.
    ///
    /// `build` runs under the writer's lock: it must be short and must not
    /// call back into this writer.
    ///
    /// # Errors
    /// The writer's sticky error or [`Error::Closed`] (then `build` is not
    /// run).
    pub fn append_with<T>(
        &self,
        request_sync: bool,
        build: impl FnOnce(&mut Batch<'_>) -> T,
    ) -> Result<(T, u64)> {
        let shared = &*self.shared;
        let mut st = shared.state.lock();
        st.check_open()?;
        while st.buf.len() >= shared.fixed.pending_bytes_max {
            shared.wake_flusher(&st);
            shared.progress.wait(&mut st);
            st.check_open()?;
        }
        let out = build(&mut Batch {
            st: &mut st,
            fixed: &shared.fixed,
        });
        let end = st.offset;
        if request_sync && st.sync_wanted < end {
            st.sync_wanted = end;
            shared.wake_flusher(&st);
        } else if st.buf.len() >= FLUSH_THRESHOLD {
            shared.wake_flusher(&st);
        }
        Ok((out, end))
    }

    /// Asks for everything appended so far to be synced and returns the
    /// offset that will then be durable; does not wait.
    pub fn request_sync(&self) -> u64 {
        let mut st = self.shared.state.lock();
        let end = st.offset;
        if st.sync_wanted < end {
            st.sync_wanted = end;
            self.shared.wake_flusher(&st);
        }
        end
    }

    /// Waits until the file is durable up to `offset` (an [`Appended::end`]
    /// or the result of [`LogWriter::request_sync`]), requesting the sync if
    /// nobody has.
    ///
    /// # Errors
    /// Syncs everything appended so far and returns the durable offset.
    ///
    /// # Errors
    /// As [`LogWriter::wait_synced`].
    pub fn sync(&self) -> Result<u64> {
        let end = self.request_sync();
        self.wait_synced(end)?;
        Ok(end)
    }

    /// Writes (without syncing) everything appended so far and waits for it,
    /// so that a reader of the file sees it. Returns the written offset.
    ///
    /// # Errors
    /// The writer's sticky error, or [`Error::Closed`].
    pub fn flush(&self) -> Result<u64> {
        let shared = &*self.shared;
        let mut st = shared.state.lock();
        let end = st.offset;
        if st.flush_wanted < end {
            st.flush_wanted = end;
            shared.wake_flusher(&st);
        }
        loop {
            if st.written >= end {
                return Ok(end);
            }
            if let Some(e) = &st.error {
                return Err(e.clone());
            }
            if st.flusher_done {
                return Err(Error::Closed);
            }
            shared.progress.wait(&mut st);
        }
    }

    /// The logical size: bytes appended so far, framing included.
    pub fn size(&self) -> u64 {
        self.shared.state.lock().offset
    }

    /// The offset up to which the file is known durable.
    pub fn synced_offset(&self) -> u64 {
        self.shared.state.lock().synced
    }

    /// The sticky error, if a write or sync has failed.
    pub fn error(&self) -> Option<Error> {
        self.shared.state.lock().error.clone()
    }

    /// Current figures.
    pub fn metrics(&self) -> LogWriterMetrics {
        let shared = &*self.shared;
        let st = shared.state.lock();
        LogWriterMetrics {
            records: st.records,
            payload_bytes: st.payload_bytes,
            bytes_written: st.bytes_written,
            writes: st.writes,
            syncs: st.syncs,
            write_latency: shared.write_latency.snapshot(),
            sync_latency: shared.sync_latency.snapshot(),
            sync_group_records: shared.sync_group_records.snapshot(),
            work_time: st.work_time,
            idle_time: st.idle_time,
            pending_bytes: st.buf.len() as u64,
            unsynced_bytes: st.offset - st.synced,
            waits_parked: st.waits_parked,
        }
    }

    /// Writes the EOF trailer (recyclable and wal-sync formats), writes and
    /// syncs everything, closes the file and returns the final size. Waiters
    /// for records appended before the call are released by the final sync.
    ///
    /// # Errors
    /// The sticky error if any write or sync failed (the size is then not
    /// reliable), the error from closing the file, or [`Error::Closed`] if
    /// the writer was already closed.
    pub fn close(&self) -> Result<u64> {
        let Some(flusher) = self.flusher.lock().take() else {
            return Err(Error::Closed);
        };
        let shared = &*self.shared;
        {
            let mut st = shared.state.lock();
            if !st.closing {
                if shared.fixed.format != WireFormat::Legacy && st.error.is_none() {
                    let trailer = format::encode_eof_trailer(shared.fixed.log_num);
                    st.buf.extend_from_slice(&trailer);
                    st.offset += trailer.len() as u64;
                }
                st.closing = true;
                st.sync_wanted = st.offset;
                shared.work.notify_one();
            }
        }
        let joined = flusher.join();
        let st = shared.state.lock();
        if joined.is_err() {
            return Err(Error::io(
                IoOp::Write,
                io::Error::other("the flush thread panicked"),
            ));
        }
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        if let Some(e) = &st.close_error {
            return Err(e.clone());
        }
        debug_assert_eq!(st.synced, st.offset);
        Ok(st.offset)
    }
}

impl<F: LogFile> Drop for LogWriter<F> {
    /// Dropping without [`LogWriter::close`] abandons the writer: the flush
    /// thread writes what is buffered (syncing only if someone asked), drops
    /// the file and exits on its own. No trailer is written and the drop
    /// never waits, so a writer stuck on a stalled disk can be let go.
    fn drop(&mut self) {
        if self.flusher.get_mut().is_some() {
            let mut st = self.shared.state.lock();
            st.closing = true;
            st.abandoned = true;
            self.shared.work.notify_one();
        }
    }
}
