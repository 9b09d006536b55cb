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
//! Four refinements, each measured (`benches/README.md` and DESIGN.md,
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
//! * **Spinning waiters.** A waiter that would park first spins, yielding
//!   the CPU, watching the published synced offset, for three times the
//!   recent sync time (a moving average), and only when that is within
//!   [`LogWriterOptions::spin_wait_max`] (off by default; 500 µs where the
//!   writer's threads have cores of their own): a slow disk is
//!   waited for parked. A spinner is not a registered waiter, so nobody
//!   spends a wake-up on it; when the file goes idle without releasing it,
//!   it looks again under the lock and may lead. A `sched_yield` that
//!   kept the spinner off the CPU for over 1 ms means other work wants
//!   the cores; a yielded thread then waits behind it while a woken
//!   sleeper runs promptly, so waiters park without spinning for the next
//!   100 ms. With every waiter spinning, a leader finds no parked waiter
//!   to hand the next round to and wakes the flush thread, which then runs
//!   the rounds back to back while the spinners append and watch: between
//!   rounds nobody waits for a thread to be woken. On the 2-vCPU benchmark machine each `unpark`
//!   cost the waker 4-9 µs, 13 of them per round; spinning raised the
//!   16-thread ratio to okaywal, at the price of up to twice the CPU time
//!   (figures in DESIGN.md, "Performance notes"; bounded by the budget,
//!   and `spin_wait_max = 0` declines it).
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
//! spin or park rather than lead; never during close. So the upkeep is
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
//! dirty pages while marking them clean, so a retry that "succeeds" would lie
//! (Pebble's `TestSyncError`; the 2018 PostgreSQL fsync discussion).

use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, IoOp, Result};
use crate::format::{self, BLOCK_SIZE, ChunkHeader, ChunkType, Position, WireFormat};
use crate::histogram::{Histogram, HistogramSnapshot};

/// The file a [`LogWriter`] writes to: sequential writes and a data sync.
///
/// Implemented for [`std::fs::File`] and for `Vec<u8>` (whose sync does
/// nothing; for tests and in-memory use).
pub trait LogFile: Send + 'static {
    /// Writes all of `buf` at the current position.
    ///
    /// # Errors
    /// Any I/O error; it becomes the writer's sticky error.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;

    /// Makes everything written so far durable (`fdatasync`).
    ///
    /// # Errors
    /// Any I/O error; it becomes the writer's sticky error.
    fn sync_data(&mut self) -> io::Result<()>;

    /// Maintenance between rounds of I/O: the file may prepare the space
    /// its next writes will land in (`wal_fs::OsFs` zero-fills ahead of a
    /// log, so that later syncs commit no metadata). The flush thread calls
    /// it after a successful sync, about every `PREPARE_EVERY` bytes written,
    /// when no write or sync is in flight and no waiter is blocked on it;
    /// never during close. The default does nothing.
    ///
    /// # Errors
    /// Any I/O error; it becomes the writer's sticky error (a failed sync of
    /// the prepared space means the disk is failing).
    fn prepare_ahead(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Closes the file after the writer's final sync. The default drops it.
    ///
    /// # Errors
    /// Any I/O error on close; [`LogWriter::close`] reports it.
    fn close(self) -> io::Result<()>
    where
        Self: Sized,
    {
        Ok(())
    }
}

impl LogFile for std::fs::File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        io::Write::write_all(self, buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        std::fs::File::sync_data(self)
    }
}

impl LogFile for Vec<u8> {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.extend_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the flush thread reports after each sync, to [`LogWriterOptions::on_sync`].
#[derive(Clone, Debug)]
pub enum SyncEvent {
    /// The file is durable up to `offset`.
    Synced {
        /// The new synced offset.
        offset: u64,
    },
    /// A write or sync failed; the writer is poisoned with `error`.
    Failed {
        /// The sticky error.
        error: Error,
    },
}

/// A callback run on the flush thread after every sync and on the first
/// error. It must not block for long and must not call back into the writer
/// in a way that waits for the flush thread.
pub type SyncCallback = Arc<dyn Fn(&SyncEvent) + Send + Sync>;

/// Configuration of a [`LogWriter`].
#[derive(Clone)]
pub struct LogWriterOptions {
    /// The log's number; its low 32 bits go into every recyclable and
    /// wal-sync header, and the EOF trailer carries `log_num + 1`.
    pub log_num: u32,
    /// The header layout to write. Default: [`WireFormat::WalSync`].
    pub format: WireFormat,
    /// After a sync, no new sync starts before this much time has passed;
    /// writes continue meanwhile. Zero disables the limit.
    pub min_sync_interval: Duration,
    /// When this many encoded bytes wait for the flush thread, appenders
    /// block until it catches up. `usize::MAX` never blocks: a caller that
    /// must not stall behind a stuck file (the failover writer) bounds its
    /// memory itself. Default: 1 MiB, which keeps what is written in the
    /// CPU's cache (see `PENDING_BYTES_MAX_DEFAULT`).
    pub pending_bytes_max: usize,
    /// Records longer than this are refused with [`Error::RecordTooLarge`].
    pub record_size_max: usize,
    /// Called on the flush thread after every sync and on the first error.
    pub on_sync: Option<SyncCallback>,
    /// How long a thread waiting for durability may spin (yielding the
    /// CPU) before it parks, at most: it spins for three times the recent
    /// sync time, and only when that is within this limit, so a slow disk
    /// is waited for parked. Zero: always park. Waiters never spin when a
    /// sync callback or a minimum sync interval is set. Default: zero.
    /// 500 µs suits a machine whose cores the writers have to themselves;
    /// where the host oversubscribes them (a shared VM), or where the
    /// threads run at real-time priority (their yields never give way to
    /// the kernel workers that complete a sync), spinning loses. See the
    /// module docs ("Spinning waiters").
    pub spin_wait_max: Duration,
}

impl Default for LogWriterOptions {
    fn default() -> Self {
        LogWriterOptions {
            log_num: 0,
            format: WireFormat::WalSync,
            min_sync_interval: Duration::ZERO,
            pending_bytes_max: PENDING_BYTES_MAX_DEFAULT,
            record_size_max: 256 << 20,
            on_sync: None,
            spin_wait_max: SPIN_WAIT_MAX_DEFAULT,
        }
    }
}

impl std::fmt::Debug for LogWriterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriterOptions")
            .field("log_num", &self.log_num)
            .field("format", &self.format)
            .field("min_sync_interval", &self.min_sync_interval)
            .field("pending_bytes_max", &self.pending_bytes_max)
            .field("record_size_max", &self.record_size_max)
            .field("on_sync", &self.on_sync.is_some())
            .field("spin_wait_max", &self.spin_wait_max)
            .finish()
    }
}

/// Where an appended record landed in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the record's first chunk header.
    pub offset: u64,
    /// Offset just past the record, including any block padding it caused:
    /// the record is durable once the synced offset reaches this.
    pub end: u64,
}

/// Writer figures for the layer above, as of [`LogWriter::metrics`].
#[derive(Clone, Debug, Default)]
pub struct LogWriterMetrics {
    /// Records appended.
    pub records: u64,
    /// Payload bytes appended (before framing).
    pub payload_bytes: u64,
    /// Bytes handed to the file, framing and padding included.
    pub bytes_written: u64,
    /// `write` calls made by the flush thread.
    pub writes: u64,
    /// Syncs performed.
    pub syncs: u64,
    /// Latency of each `write`, in nanoseconds.
    pub write_latency: HistogramSnapshot,
    /// Latency of each sync, in nanoseconds.
    pub sync_latency: HistogramSnapshot,
    /// Records made durable by each sync (the group-commit group size).
    pub sync_group_records: HistogramSnapshot,
    /// Time the flush thread spent writing and syncing.
    pub work_time: Duration,
    /// Time the flush thread spent waiting for work.
    pub idle_time: Duration,
    /// Encoded bytes waiting for the flush thread right now.
    pub pending_bytes: u64,
    /// Bytes appended but not yet durable right now.
    pub unsynced_bytes: u64,
    /// Waits for durability that ended while the thread spun, without
    /// parking (see [`LogWriterOptions::spin_wait_max`]).
    pub waits_spun: u64,
    /// Waits for durability that parked the thread at least once (after
    /// spinning, if they spun). Waits that led their own round or found
    /// their record durable under the lock are in neither count.
    pub waits_parked: u64,
    /// Times a slow `sched_yield` (other work wanting the cores) turned
    /// spinning off for a while.
    pub spin_backoffs: u64,
}

/// Most rounds of I/O one call of [`LogWriter::wait_synced`] leads in a row
/// (see there). More means fewer hand-offs between leaders and more latency
/// for the one that keeps leading.
const LEAD_ROUNDS_MAX: u32 = 3;

/// The capacity buffers start with: a flush's worth and room to spare.
const BUF_CAPACITY: usize = 2 * FLUSH_THRESHOLD;
/// Most cleared buffers kept for reuse (see `State::spares`).
const SPARES_MAX: usize = 3;
/// Buffers that grew beyond this (behind a slow or stalled file) are freed
/// rather than kept.
const SPARE_CAPACITY_MAX: usize = 8 << 20;

/// The longest a leader waits for released appenders to append again before
/// it syncs, and never more than half the last sync's time (see
/// `LogWriter::linger`).
const LINGER_MAX: Duration = Duration::from_micros(40);

/// The default [`LogWriterOptions::spin_wait_max`]: always park (see its
/// docs and DESIGN.md, "Performance notes").
const SPIN_WAIT_MAX_DEFAULT: Duration = Duration::ZERO;
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

/// The default [`LogWriterOptions::pending_bytes_max`]: 1 MiB. An appender
/// that runs far ahead of the file makes every write copy cold memory: with
/// 8 MiB pending, 32 KiB records were written at 1.7-2.1 GB/s against 3.2 for
/// a plain `write(2)` loop of the same bytes; with 1 MiB, at parity (the
/// buffer stays in the CPU's cache between the append and the write).
/// Pebble's writer caps its pending blocks at 16 x 32 KiB for the same
/// reason.
const PENDING_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// How many bytes written between two calls of [`LogFile::prepare_ahead`]
/// (each is a wake-up of the flush thread, so not after every sync).
const PREPARE_EVERY: u64 = 256 << 10;
/// ... and once at this sync, so that a log synced often gets its space
/// prepared early (`OsFs` fills from a file's 4th sync on).
const PREPARE_FIRST_AT_SYNC: u64 = 8;

/// When the flush thread writes a buffer that nobody asked to sync or flush:
/// once this much has accumulated. Larger means fewer wake-ups and larger
/// writes for unsynced appends.
const FLUSH_THRESHOLD: usize = 4 * BLOCK_SIZE;

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
    spin_wait_max: Duration,
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
    /// Waiters spinning when the buffer was last taken (they wait for that
    /// round or the next, and will likely append again).
    spinners_at_take: u64,
    /// How long the last sync took.
    last_sync: Duration,
    /// Moving average of the sync time (weight 1/8 per sync), for the
    /// spinning budget.
    sync_avg: Duration,
    /// Waiters park without spinning until then (see `SLOW_YIELD`).
    spin_off_until: Option<Instant>,
    /// Times spinning was turned off that way.
    spin_backoffs: u64,
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

impl State {
    /// At the end of a round of I/O (or when the writer fails or stops):
    /// moves into `out` the parked waiters to wake. Those whose bytes are
    /// now durable, every one once the writer failed or stopped, and, when
    /// waiters may lead and the file is idle, one still waiting, to lead the
    /// next round. Waking only these, rather than every waiter, avoids a
    /// storm of threads that would only go back to sleep.
    fn take_wakeups(&mut self, leaders: bool, out: &mut Vec<Thread>) {
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
    fn open_to_a_leader(&self) -> bool {
        !self.io_busy
            && !self.lingering
            && !self.closing
            && !self.prepare_due
            && self.error.is_none()
    }

    fn taken(&self) -> u64 {
        self.offset - self.buf.len() as u64
    }

    fn check_open(&self) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.closing {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Encodes one record at `offset` and returns where it landed.
    fn emit(&mut self, fx: &Fixed, parts: &[&[u8]], len: usize) -> Appended {
        let header_size = fx.format.header_size();
        let start = self.offset;
        let mut cursor = Parts::new(parts);
        let mut first = true;
        loop {
            let pos = (self.offset % BLOCK_SIZE as u64) as usize;
            assert!(
                BLOCK_SIZE - pos >= header_size,
                "a block tail was not padded"
            );
            let take = cursor.left.min(BLOCK_SIZE - pos - header_size);
            let last = take == cursor.left;
            let position = match (first, last) {
                (true, true) => Position::Full,
                (true, false) => Position::First,
                (false, false) => Position::Middle,
                (false, true) => Position::Last,
            };
            let ty = ChunkType {
                position,
                format: fx.format,
            };
            // The header goes in front of its payload: room for it first,
            // filled in once the payload is copied and its CRC taken.
            let h = self.buf.len();
            self.buf.resize(h + header_size, 0);
            let mut header = ChunkHeader::new(ty, fx.log_num, self.synced);
            cursor.copy_to(&mut self.buf, take, &mut header);
            header.write(&mut self.buf[h..]);
            self.offset += (header_size + take) as u64;
            let pos = (self.offset % BLOCK_SIZE as u64) as usize;
            if pos != 0 && BLOCK_SIZE - pos < header_size {
                // No room for another header: zero the block tail.
                let pad = BLOCK_SIZE - pos;
                self.buf.resize(self.buf.len() + pad, 0);
                self.offset += pad as u64;
            }
            first = false;
            if last {
                break;
            }
        }
        assert_eq!(cursor.left, 0);
        self.records += 1;
        self.payload_bytes += len as u64;
        debug_assert_eq!(
            self.offset - start,
            format::encoded_len(fx.format, start, len)
        );
        Appended {
            offset: start,
            end: self.offset,
        }
    }
}

/// A cursor over the concatenation of a record's parts.
struct Parts<'a> {
    slices: &'a [&'a [u8]],
    index: usize,
    within: usize,
    left: usize,
}

impl<'a> Parts<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Parts<'a> {
        Parts {
            slices: parts,
            index: 0,
            within: 0,
            left: parts.iter().map(|p| p.len()).sum(),
        }
    }

    /// Copies the next `n` bytes to `out`, feeding them to `header`'s CRC
    /// from where they lie (not from `out`: see [`ChunkHeader`]).
    fn copy_to(&mut self, out: &mut Vec<u8>, mut n: usize, header: &mut ChunkHeader) {
        self.left -= n;
        while n > 0 {
            let part = &self.slices[self.index][self.within..];
            let k = part.len().min(n);
            header.payload(&part[..k]);
            out.extend_from_slice(&part[..k]);
            n -= k;
            self.within += k;
            if self.within == self.slices[self.index].len() {
                self.index += 1;
                self.within = 0;
            }
        }
    }
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
    /// Bumped whenever the file goes idle (a round of I/O or upkeep ended)
    /// or the writer failed or stopped: a spinning waiter that is not
    /// released looks again under the lock then.
    rounds: AtomicU64,
    /// Waiters spinning right now (they are not in `State::waiters`).
    spinners: AtomicU64,
    /// Waits released while spinning (counted without the lock).
    waits_spun: AtomicU64,
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

    /// Tells spinning waiters that the file went idle or the writer
    /// failed or stopped. Called with the lock held.
    fn round_ended(&self) {
        self.rounds.fetch_add(1, Ordering::Release);
    }

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

/// A log writer with group commit: many threads append, one flush thread
/// writes and syncs for all of them. See the [module docs](self) and the
/// crate example.
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
                spin_wait_max: options.spin_wait_max,
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
                spinners_at_take: 0,
                last_sync: Duration::ZERO,
                sync_avg: Duration::ZERO,
                spin_off_until: None,
                spin_backoffs: 0,
                lingering: false,
                prepared_at: 0,
                prepare_due: false,
                flusher_idle: false,
                flusher_done: false,
                sync_gate: None,
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
            rounds: AtomicU64::new(0),
            spinners: AtomicU64::new(0),
            waits_spun: AtomicU64::new(0),
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

    /// The offset up to which bytes have been handed to the file.
    pub fn written_offset(&self) -> u64 {
        self.shared.state.lock().written
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
            waits_spun: shared.waits_spun.load(Ordering::Relaxed),
            waits_parked: st.waits_parked,
            spin_backoffs: st.spin_backoffs,
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

/// The writer, locked, as seen by [`LogWriter::append_with`].
pub struct Batch<'a> {
    st: &'a mut State,
    fixed: &'a Fixed,
}

impl Batch<'_> {
    /// Appends one record made of the concatenation of `parts`.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`]; nothing is appended then.
    pub fn push(&mut self, parts: &[&[u8]]) -> Result<Appended> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.fixed.record_size_max {
            return Err(Error::RecordTooLarge {
                offset: self.st.offset,
                len: len as u64,
                max: self.fixed.record_size_max as u64,
            });
        }
        Ok(self.st.emit(self.fixed, parts, len))
    }

    /// The offset the next record will start at.
    pub fn offset(&self) -> u64 {
        self.st.offset
    }
}

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
                shared
                    .sync_group_records
                    .record(f.records_at_end - self.records_synced);
                self.records_synced = f.records_at_end;
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
fn guarded<T>(op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    match panic::catch_unwind(AssertUnwindSafe(op)) {
        Ok(r) => r,
        Err(_) => Err(io::Error::other("the log file panicked")),
    }
}

/// One round of I/O by the holder of `io_busy`: takes the buffer (and, with
/// `sync_due`, the decision to sync it) in the caller's critical section,
/// writes and syncs with the lock released, and publishes the outcome.
/// Returns the event for the sync callback, if any.
fn io_round<F: LogFile>(
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
    st.spinners_at_take = shared.spinners.load(Ordering::Relaxed);
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
        let took = done.saturating_duration_since(sync_start);
        st.last_sync = took;
        st.sync_avg = if st.sync_avg.is_zero() {
            took
        } else {
            (st.sync_avg * 7 + took) / 8
        };
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

fn flush_loop<F: LogFile>(shared: &Shared, io: &Mutex<Option<F>>) {
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
            shared.round_ended();
            idle_since = Instant::now();
            wake_parked(shared, &mut st);
            shared.progress.notify_all();
            continue;
        }
        let gate_open = st.closing || st.sync_gate.is_none_or(|t| now >= t);
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
            match st.sync_gate {
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
        shared.round_ended();
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
    shared.round_ended();
    wake_parked(shared, &mut st);
    shared.progress.notify_all();
}

/// [`LogFile::prepare_ahead`] by the holder of `io_busy`, with the lock
/// released; an error becomes the sticky error (and a failed sync event).
fn prepare_round<F: LogFile>(
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
fn wake_parked(shared: &Shared, st: &mut MutexGuard<'_, State>) {
    let mut wake = Vec::new();
    st.take_wakeups(shared.fixed.leaders, &mut wake);
    unpark_unlocked(st, &mut wake);
}

/// Unparks (and empties) `wake` with the lock released, so that released
/// waiters can append again at once.
fn unpark_unlocked(st: &mut MutexGuard<'_, State>, wake: &mut Vec<Thread>) {
    if !wake.is_empty() {
        MutexGuard::unlocked(st, || {
            for t in wake.drain(..) {
                t.unpark();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::LogReader;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A test file: shared bytes, a sync counter, injectable failures and a
    /// gate that stalls writes.
    #[derive(Clone, Default)]
    struct TestFile {
        inner: Arc<TestFileInner>,
    }

    #[derive(Default)]
    struct TestFileInner {
        bytes: Mutex<Vec<u8>>,
        syncs: AtomicU64,
        fail_sync_at: Mutex<Option<u64>>,
        fail_writes: AtomicBool,
        stalled: Mutex<bool>,
        stall_cv: Condvar,
        writes_in_progress: AtomicU64,
        sync_sleep: Mutex<Duration>,
        /// The thread of each `prepare_ahead` call, and the file's length
        /// then.
        prepares: Mutex<Vec<(Option<String>, usize)>>,
        fail_prepare: AtomicBool,
    }

    impl TestFile {
        fn bytes(&self) -> Vec<u8> {
            self.inner.bytes.lock().clone()
        }
        fn syncs(&self) -> u64 {
            self.inner.syncs.load(Ordering::SeqCst)
        }
        fn stall(&self, on: bool) {
            *self.inner.stalled.lock() = on;
            self.inner.stall_cv.notify_all();
        }
        fn wait_for_stalled_write(&self) {
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.inner.writes_in_progress.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "no write reached the stall");
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    impl LogFile for TestFile {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            self.inner.writes_in_progress.fetch_add(1, Ordering::SeqCst);
            {
                let mut stalled = self.inner.stalled.lock();
                while *stalled {
                    self.inner.stall_cv.wait(&mut stalled);
                }
            }
            self.inner.writes_in_progress.fetch_sub(1, Ordering::SeqCst);
            if self.inner.fail_writes.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            self.inner.bytes.lock().extend_from_slice(buf);
            Ok(())
        }

        fn sync_data(&mut self) -> io::Result<()> {
            let n = self.inner.syncs.fetch_add(1, Ordering::SeqCst) + 1;
            let sleep = *self.inner.sync_sleep.lock();
            if !sleep.is_zero() {
                thread::sleep(sleep);
            }
            if self.inner.fail_sync_at.lock().is_some_and(|at| n >= at) {
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
            Ok(())
        }

        fn prepare_ahead(&mut self) -> io::Result<()> {
            let len = self.inner.bytes.lock().len();
            let name = thread::current().name().map(str::to_owned);
            self.inner.prepares.lock().push((name, len));
            if self.inner.fail_prepare.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
            Ok(())
        }
    }

    /// Joins the appending threads, then closes the writer they shared.
    fn join_and_close<F: LogFile>(handles: Vec<thread::JoinHandle<()>>, w: Arc<LogWriter<F>>) {
        for h in handles {
            h.join().unwrap();
        }
        let Ok(w) = Arc::try_unwrap(w) else {
            panic!("writer still shared")
        };
        w.close().unwrap();
    }

    fn options(log_num: u32) -> LogWriterOptions {
        LogWriterOptions {
            log_num,
            ..LogWriterOptions::default()
        }
    }

    fn read_all(bytes: &[u8], log_num: u32) -> Vec<Vec<u8>> {
        let mut r = LogReader::new(bytes, log_num);
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().expect("a clean log") {
            out.push(rec.payload.to_vec());
        }
        out
    }

    #[test]
    fn close_writes_the_trailer_and_reports_the_size() {
        let file = TestFile::default();
        let w = LogWriter::new(file.clone(), options(3)).unwrap();
        w.append(&[b"abc"]).unwrap();
        let size = w.close().unwrap();
        let bytes = file.bytes();
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(size, (19 + 3 + 11) as u64);
        assert_eq!(&bytes[22..], &format::encode_eof_trailer(3));
        assert_eq!(read_all(&bytes, 3), vec![b"abc".to_vec()]);
        assert!(file.syncs() >= 1, "close syncs");
    }

    #[test]
    fn an_empty_closed_log_is_just_the_trailer() {
        let file = TestFile::default();
        let w = LogWriter::new(file.clone(), options(9)).unwrap();
        assert_eq!(w.close().unwrap(), 11);
        assert_eq!(file.bytes(), format::encode_eof_trailer(9));
    }

    #[test]
    fn appends_after_close_or_error_are_refused() {
        let file = TestFile::default();
        file.inner.fail_writes.store(true, Ordering::SeqCst);
        let w = LogWriter::new(file.clone(), options(1)).unwrap();
        let err = w.append_sync(&[b"x"]).unwrap_err();
        assert_eq!(err.io_kind(), Some(io::ErrorKind::StorageFull));
        let again = w.append(&[b"y"]).unwrap_err();
        assert_eq!(again.io_kind(), Some(io::ErrorKind::StorageFull), "sticky");
        assert!(w.close().is_err());
    }

    #[test]
    fn a_failed_sync_fails_every_later_waiter_with_the_first_error() {
        let file = TestFile::default();
        *file.inner.fail_sync_at.lock() = Some(2);
        let w = LogWriter::new(file.clone(), options(1)).unwrap();
        w.append_sync(&[b"first"]).expect("the first sync succeeds");
        let first = w.append_sync(&[b"second"]).unwrap_err();
        assert!(matches!(first, Error::Io { op: IoOp::Sync, .. }));
        // No retry: later waiters get the same error without a new sync.
        let syncs = file.syncs();
        for _ in 0..3 {
            let e = w.append_sync(&[b"more"]).unwrap_err();
            assert!(matches!(e, Error::Io { op: IoOp::Sync, .. }), "{e}");
        }
        assert!(matches!(w.sync(), Err(Error::Io { op: IoOp::Sync, .. })));
        assert_eq!(file.syncs(), syncs, "a poisoned writer never syncs again");
        assert!(w.error().is_some());
    }

    #[test]
    fn concurrent_waiters_all_get_the_sync_error() {
        let file = TestFile::default();
        *file.inner.fail_sync_at.lock() = Some(1);
        *file.inner.sync_sleep.lock() = Duration::from_millis(2);
        let w = Arc::new(LogWriter::new(file, options(1)).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let w = Arc::clone(&w);
                thread::spawn(move || w.append_sync(&[format!("r{i}").as_bytes()]))
            })
            .collect();
        for h in handles {
            let e = h.join().unwrap().unwrap_err();
            assert!(matches!(e, Error::Io { op: IoOp::Sync, .. }), "{e}");
        }
    }

    #[test]
    fn group_commit_syncs_far_fewer_times_than_records() {
        let file = TestFile::default();
        // A slow sync, as on a real disk, gives appenders time to pile up.
        *file.inner.sync_sleep.lock() = Duration::from_millis(1);
        let w = Arc::new(LogWriter::new(file.clone(), options(1)).unwrap());
        let threads = 16;
        let per_thread = 50;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let w = Arc::clone(&w);
                thread::spawn(move || {
                    for i in 0..per_thread {
                        w.append_sync(&[format!("{t}:{i}").as_bytes()]).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let records = (threads * per_thread) as u64;
        let m = w.metrics();
        assert_eq!(m.records, records);
        let syncs = file.syncs();
        assert!(
            syncs * 4 <= records,
            "{syncs} syncs for {records} synced records: not grouped"
        );
        assert_eq!(m.sync_group_records.sum, records);
        let Ok(w) = Arc::try_unwrap(w) else {
            panic!("writer still shared")
        };
        w.close().unwrap();
        let mut got = read_all(&file.bytes(), 1);
        got.sort();
        assert_eq!(got.len(), threads * per_thread);
    }

    #[test]
    fn min_sync_interval_spaces_out_syncs() {
        let file = TestFile::default();
        let interval = Duration::from_millis(20);
        let w = Arc::new(
            LogWriter::new(
                file.clone(),
                LogWriterOptions {
                    min_sync_interval: interval,
                    ..options(1)
                },
            )
            .unwrap(),
        );
        let start = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let w = Arc::clone(&w);
                thread::spawn(move || {
                    for _ in 0..10 {
                        w.append_sync(&[b"r"]).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let elapsed = start.elapsed();
        // Syncs start at least `interval` apart, so at most this many fit.
        let bound = (elapsed.as_millis() / interval.as_millis()) as u64 + 1;
        assert!(
            file.syncs() <= bound,
            "{} syncs in {elapsed:?} with a {interval:?} minimum interval",
            file.syncs()
        );
    }

    #[test]
    fn a_record_in_parts_is_written_as_the_same_bytes_as_in_one_piece() {
        // Chunks end inside a part, at a part's edge and past empty parts;
        // each chunk's CRC is fed piece by piece from the parts.
        let whole: Vec<u8> = (0..90_000u32).map(|i| (i * 7 + i / 255) as u8).collect();
        let cuts: [&[usize]; 4] = [&[8], &[3, 3, 40_000], &[0, 32_749, 0, 1], &[86_999]];
        let (split, single) = (TestFile::default(), TestFile::default());
        let (ws, w1) = (
            LogWriter::new(split.clone(), options(9)).unwrap(),
            LogWriter::new(single.clone(), options(9)).unwrap(),
        );
        for (i, &cut) in cuts.iter().enumerate() {
            let record = &whole[..whole.len() - i * 1000];
            let mut parts = Vec::new();
            let mut at = 0;
            for &n in cut {
                parts.push(&record[at..at + n]);
                at += n;
            }
            parts.push(&record[at..]);
            assert_eq!(ws.append(&parts).unwrap(), w1.append(&[record]).unwrap());
        }
        ws.close().unwrap();
        w1.close().unwrap();
        assert_eq!(split.bytes(), single.bytes());
        let records = read_all(&split.bytes(), 9);
        assert_eq!(records.len(), cuts.len());
        assert!(
            records
                .iter()
                .enumerate()
                .all(|(i, r)| r[..] == whole[..whole.len() - i * 1000])
        );
    }

    #[test]
    fn synced_offsets_in_headers_never_decrease_and_stay_below_the_chunk() {
        let file = TestFile::default();
        let w = LogWriter::new(file.clone(), options(4)).unwrap();
        for i in 0..300u32 {
            let payload = vec![i as u8; (i as usize * 37) % 3000];
            if i % 7 == 0 {
                w.append_sync(&[&payload]).unwrap();
            } else {
                w.append(&[&payload]).unwrap();
            }
        }
        w.close().unwrap();
        let bytes = file.bytes();
        let mut last = 0u64;
        let mut pos = 0usize;
        let mut seen_positive = false;
        while pos + format::WAL_SYNC_HEADER_SIZE <= bytes.len() {
            let in_block = pos % BLOCK_SIZE;
            if BLOCK_SIZE - in_block < format::WAL_SYNC_HEADER_SIZE {
                pos += BLOCK_SIZE - in_block;
                continue;
            }
            let (_, len, code) = format::decode_common(&bytes[pos..]).unwrap();
            if code == 5 {
                break; // trailer
            }
            let synced = format::decode_synced_offset(&bytes[pos..]).unwrap();
            assert!(synced >= last, "synced offset went back at {pos}");
            assert!(synced <= pos as u64, "a chunk cannot promise its own bytes");
            seen_positive |= synced > 0;
            last = synced;
            pos += format::WAL_SYNC_HEADER_SIZE + len as usize;
        }
        assert!(seen_positive, "syncs advanced the synced offset");
    }

    #[test]
    fn the_sync_callback_reports_each_sync_and_the_first_error() {
        let file = TestFile::default();
        *file.inner.fail_sync_at.lock() = Some(3);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let w = LogWriter::new(
            file,
            LogWriterOptions {
                on_sync: Some(Arc::new(move |e: &SyncEvent| sink.lock().push(e.clone()))),
                ..options(1)
            },
        )
        .unwrap();
        let a = w.append_sync(&[b"a"]).unwrap();
        let b = w.append_sync(&[b"b"]).unwrap();
        assert!(w.append_sync(&[b"c"]).is_err());
        let events = events.lock();
        assert!(matches!(events[0], SyncEvent::Synced { offset } if offset == a.end));
        assert!(matches!(events[1], SyncEvent::Synced { offset } if offset == b.end));
        assert!(matches!(events[2], SyncEvent::Failed { .. }));
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn dropping_a_writer_stuck_on_a_stalled_file_does_not_block() {
        let file = TestFile::default();
        file.stall(true);
        let w = LogWriter::new(file.clone(), options(1)).unwrap();
        w.append(&[b"a"]).unwrap();
        w.request_sync();
        file.wait_for_stalled_write();
        drop(w); // must return although the flush thread is parked
        file.stall(false);
    }

    #[test]
    fn appenders_block_when_the_buffer_is_full_and_resume_after() {
        let file = TestFile::default();
        file.stall(true);
        let w = Arc::new(
            LogWriter::new(
                file.clone(),
                LogWriterOptions {
                    pending_bytes_max: FLUSH_THRESHOLD,
                    ..options(1)
                },
            )
            .unwrap(),
        );
        let big = vec![7u8; FLUSH_THRESHOLD];
        w.append(&[&big]).unwrap(); // fills the buffer; the flusher takes it and stalls
        file.wait_for_stalled_write();
        w.append(&[&big]).unwrap(); // refills the buffer
        let done = Arc::new(AtomicBool::new(false));
        let h = {
            let (w, done) = (Arc::clone(&w), Arc::clone(&done));
            thread::spawn(move || {
                w.append(&[b"blocked"]).unwrap();
                done.store(true, Ordering::SeqCst);
            })
        };
        thread::sleep(Duration::from_millis(50));
        assert!(!done.load(Ordering::SeqCst), "the append waited for room");
        file.stall(false);
        h.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
        w.sync().unwrap();
    }

    #[test]
    fn unbounded_buffer_never_blocks_behind_a_stalled_file() {
        let file = TestFile::default();
        file.stall(true);
        let w = LogWriter::new(
            file.clone(),
            LogWriterOptions {
                pending_bytes_max: usize::MAX,
                ..options(1)
            },
        )
        .unwrap();
        let big = vec![1u8; 1 << 20];
        for _ in 0..16 {
            w.append(&[&big]).unwrap();
        }
        assert!(w.metrics().unsynced_bytes >= 16 << 20);
        file.stall(false);
        w.sync().unwrap();
        w.close().unwrap();
        assert_eq!(read_all(&file.bytes(), 1).len(), 16);
    }

    #[test]
    fn append_with_assigns_sequence_numbers_in_file_order() {
        let file = TestFile::default();
        let w = Arc::new(LogWriter::new(file.clone(), options(2)).unwrap());
        let next = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (w, next) = (Arc::clone(&w), Arc::clone(&next));
                thread::spawn(move || {
                    for _ in 0..200 {
                        w.append_with(false, |b| {
                            let seq = next.fetch_add(1, Ordering::Relaxed);
                            b.push(&[&seq.to_le_bytes()]).unwrap();
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        join_and_close(handles, w);
        let seqs: Vec<u64> = read_all(&file.bytes(), 2)
            .iter()
            .map(|r| u64::from_le_bytes(r[..8].try_into().unwrap()))
            .collect();
        assert_eq!(seqs, (0..800).collect::<Vec<_>>());
    }

    /// A file that notes which thread ran each sync.
    #[derive(Clone, Default)]
    struct ThreadNotingFile {
        sync_threads: Arc<Mutex<Vec<Option<String>>>>,
    }

    impl LogFile for ThreadNotingFile {
        fn write_all(&mut self, _buf: &[u8]) -> io::Result<()> {
            Ok(())
        }

        fn sync_data(&mut self) -> io::Result<()> {
            let name = thread::current().name().map(str::to_owned);
            self.sync_threads.lock().push(name);
            Ok(())
        }
    }

    #[test]
    fn a_lone_waiter_syncs_on_its_own_thread() {
        let file = ThreadNotingFile::default();
        let w = LogWriter::new(file.clone(), options(1)).unwrap();
        let me = thread::current().name().map(str::to_owned);
        for _ in 0..3 {
            w.append_sync(&[b"r"]).unwrap();
        }
        let threads = file.sync_threads.lock().clone();
        assert_eq!(threads, vec![me; 3], "no hand-off to the flush thread");
        w.close().unwrap();
    }

    /// A file whose sync sleeps.
    struct SleepySync(Duration);

    impl LogFile for SleepySync {
        fn write_all(&mut self, _buf: &[u8]) -> io::Result<()> {
            Ok(())
        }

        fn sync_data(&mut self) -> io::Result<()> {
            thread::sleep(self.0);
            Ok(())
        }
    }

    /// Runs `threads` x `each` synced appends on a [`SleepySync`] file, in
    /// up to `batches` batches, stopping after a batch in which some wait
    /// was released while spinning; returns the writer's figures. With
    /// `backed_off`, spinning starts out turned off for an hour, as after a
    /// slow yield.
    fn synced_waits(
        sync: Duration,
        spin_wait_max: Duration,
        backed_off: bool,
        batches: usize,
    ) -> LogWriterMetrics {
        const THREADS: usize = 4;
        const EACH: usize = 100;
        let options = LogWriterOptions {
            spin_wait_max,
            ..options(1)
        };
        let w = Arc::new(LogWriter::new(SleepySync(sync), options).unwrap());
        if backed_off {
            w.shared.state.lock().spin_off_until = Some(Instant::now() + Duration::from_secs(3600));
        }
        let mut appended = 0;
        for _ in 0..batches {
            let handles = (0..THREADS)
                .map(|_| {
                    let w = Arc::clone(&w);
                    thread::spawn(move || {
                        for _ in 0..EACH {
                            w.append_sync(&[b"spin"]).unwrap();
                        }
                    })
                })
                .collect::<Vec<_>>();
            for h in handles {
                h.join().unwrap();
            }
            appended += THREADS * EACH;
            // A slow yield on a busy machine turns spinning off for a
            // while: then another batch.
            if w.metrics().waits_spun > 0 {
                break;
            }
        }
        w.close().unwrap();
        let m = w.metrics();
        assert_eq!(m.records, appended as u64);
        m
    }

    #[test]
    fn waiters_spin_only_when_syncs_are_fast_enough_and_spinning_is_on() {
        let fast = Duration::from_micros(50);
        // Syncs of ~50-150 us: three of them fit in 10 ms, so waiters that
        // find a round in progress spin, and most are released spinning.
        let m = synced_waits(fast, Duration::from_millis(10), false, 50);
        assert!(m.waits_spun > 0, "nobody spun: {m:?}");
        // Spinning off: every wait that does not lead parks.
        let m = synced_waits(fast, Duration::ZERO, false, 2);
        assert_eq!(m.waits_spun, 0);
        assert!(m.waits_parked > 0, "{m:?}");
        // Backed off after a slow yield: likewise.
        let m = synced_waits(fast, Duration::from_millis(10), true, 2);
        assert_eq!(m.waits_spun, 0);
        assert!(m.waits_parked > 0, "{m:?}");
        // 2 ms syncs: three of them exceed a 500 us limit, so waiters park
        // at once.
        let m = synced_waits(
            Duration::from_millis(2),
            Duration::from_micros(500),
            false,
            1,
        );
        assert_eq!(m.waits_spun, 0);
        assert!(m.waits_parked > 0, "{m:?}");
    }

    #[test]
    fn upkeep_runs_on_the_flush_thread_every_few_hundred_kib_and_never_at_close() {
        let file = TestFile::default();
        let w = LogWriter::new(file.clone(), options(1)).unwrap();
        let record = vec![7u8; 4096];
        let n = 4 * PREPARE_EVERY as usize / record.len();
        for _ in 0..n {
            w.append_sync(&[&record]).unwrap();
        }
        // The upkeep runs after the syncs, when the flush thread gets to it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while file.inner.prepares.lock().len() < 3 {
            assert!(
                Instant::now() < deadline,
                "no upkeep: {:?}",
                file.inner.prepares.lock()
            );
            thread::sleep(Duration::from_millis(1));
        }
        let before_close = file.inner.prepares.lock().len();
        let size = w.close().unwrap();
        let prepares = file.inner.prepares.lock().clone();
        assert_eq!(prepares.len(), before_close, "none during close");
        // Once early (at the 8th sync), then every `PREPARE_EVERY` bytes.
        assert!(
            prepares.len() as u64 <= 1 + size / PREPARE_EVERY,
            "{prepares:?}"
        );
        assert!(prepares[0].1 < record.len() * 16, "{prepares:?}");
        for pair in prepares.windows(2) {
            assert!(
                pair[1].1 - pair[0].1 >= PREPARE_EVERY as usize,
                "{prepares:?}"
            );
        }
        for (thread, _) in prepares {
            assert_eq!(thread.as_deref(), Some("wal-flush-1"));
        }
    }

    #[test]
    fn a_failed_upkeep_poisons_the_writer() {
        let file = TestFile::default();
        file.inner.fail_prepare.store(true, Ordering::SeqCst);
        let w = LogWriter::new(file.clone(), options(1)).unwrap();
        let record = vec![7u8; 64 << 10];
        let deadline = Instant::now() + Duration::from_secs(20);
        let e = loop {
            assert!(Instant::now() < deadline, "the failed upkeep went unseen");
            match w.append_sync(&[&record]) {
                Ok(_) => thread::sleep(Duration::from_millis(1)),
                Err(e) => break e,
            }
        };
        assert!(matches!(e, Error::Io { op: IoOp::Sync, .. }), "{e}");
        assert!(!file.inner.prepares.lock().is_empty());
        assert!(w.error().is_some());
        assert!(w.close().is_err());
    }

    #[test]
    fn with_a_sync_callback_every_sync_runs_on_the_flush_thread() {
        let file = ThreadNotingFile::default();
        let w = LogWriter::new(
            file.clone(),
            LogWriterOptions {
                on_sync: Some(Arc::new(|_: &SyncEvent| {})),
                ..options(1)
            },
        )
        .unwrap();
        for _ in 0..3 {
            w.append_sync(&[b"r"]).unwrap();
        }
        w.close().unwrap();
        let threads = file.sync_threads.lock().clone();
        assert!(threads.len() >= 3);
        assert!(
            threads.iter().all(|t| t.as_deref() == Some("wal-flush-1")),
            "{threads:?}"
        );
    }

    #[test]
    fn synced_and_unsynced_appenders_and_flushers_all_come_back_in_order() {
        let file = TestFile::default();
        // A slow sync, so that leaders, parked waiters and the flush thread
        // all take turns.
        *file.inner.sync_sleep.lock() = Duration::from_micros(300);
        let w = Arc::new(LogWriter::new(file.clone(), options(6)).unwrap());
        let threads = 8u32;
        let per_thread = 150u32;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let w = Arc::clone(&w);
                thread::spawn(move || {
                    for i in 0..per_thread {
                        let rec = (u64::from(t) << 32 | u64::from(i)).to_le_bytes();
                        match (t + i) % 5 {
                            0 | 1 => drop(w.append_sync(&[&rec]).unwrap()),
                            2 => drop(w.append(&[&rec]).unwrap()),
                            3 => {
                                w.append(&[&rec]).unwrap();
                                w.flush().unwrap();
                            }
                            _ => {
                                w.append(&[&rec]).unwrap();
                                w.sync().unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        join_and_close(handles, w);
        let mut next = vec![0u32; threads as usize];
        let records = read_all(&file.bytes(), 6);
        assert_eq!(records.len(), (threads * per_thread) as usize);
        for r in records {
            let v = u64::from_le_bytes(r[..8].try_into().unwrap());
            let (t, i) = ((v >> 32) as usize, v as u32);
            assert_eq!(i, next[t], "thread {t}'s records in order, once each");
            next[t] += 1;
        }
    }

    #[test]
    fn close_releases_waiters_parked_behind_a_slow_sync() {
        let file = TestFile::default();
        *file.inner.sync_sleep.lock() = Duration::from_millis(30);
        let w = Arc::new(LogWriter::new(file.clone(), options(1)).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let w = Arc::clone(&w);
                thread::spawn(move || w.append_sync(&[format!("r{i}").as_bytes()]))
            })
            .collect();
        // Let them append, lead and park.
        while w.metrics().records < 4 {
            thread::sleep(Duration::from_millis(1));
        }
        let size = w.close().unwrap();
        for h in handles {
            let a = h.join().unwrap().expect("released by a sync, not failed");
            assert!(a.end <= size);
        }
        assert_eq!(read_all(&file.bytes(), 1).len(), 4);
    }

    #[test]
    fn records_over_the_limit_are_refused_without_writing() {
        let file = TestFile::default();
        let w = LogWriter::new(
            file.clone(),
            LogWriterOptions {
                record_size_max: 10,
                ..options(1)
            },
        )
        .unwrap();
        let e = w.append(&[b"0123456789a"]).unwrap_err();
        assert!(matches!(
            e,
            Error::RecordTooLarge {
                len: 11,
                max: 10,
                ..
            }
        ));
        w.append(&[b"0123456789"]).unwrap();
        w.close().unwrap();
        assert_eq!(read_all(&file.bytes(), 1), vec![b"0123456789".to_vec()]);
    }
}
