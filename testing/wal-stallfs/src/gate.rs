//! The gate: decides whether a request runs now, waits (parked), or fails;
//! and [`StallControl`], the test's handle on it.
//!
//! # Why parking, not blocking
//!
//! fuser reads and dispatches requests on one session thread. A handler that
//! blocked until the test releases the stall would freeze the whole mount,
//! including the test's own `stat` and the unmount. So a stalled request is
//! *parked*: its reply object (and a copy of its data, whose buffer fuser
//! reuses) goes into a queue, the handler returns, and the session thread
//! serves the next request. [`StallControl::release`] later runs the parked
//! requests on the caller's thread, in arrival order, and answers them.
//!
//! # Order
//!
//! Requests fall into [`Stream`]s: the writes, fsyncs and flushes of one
//! inode, and the creates in one directory. A request whose stream already
//! has a parked request is parked behind it even if its own kind is not
//! stalled, so each stream completes in the order it arrived. The gate lock
//! is held from that decision through the backing operation, and a release
//! drains the whole queue under it, so a request decided "run now" cannot
//! interleave with the release of its stream's parked requests. (The kernel already keeps most
//! same-file requests apart with the inode lock: a second `write(2)` or an
//! `fsync(2)` on a file with a parked write waits in the kernel, not here;
//! likewise a parked directory fsync or create holds the directory's lock,
//! so creates, renames and uncached lookups in that directory wait in the
//! kernel until the release.)
//!
//! Lock order: the gate, then the backing's node and handle tables. Requests
//! that never stall (lookup, getattr, read, ...) take only the latter.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fuser::{Errno, FileHandle, FopenFlags, Generation, ReplyCreate, ReplyEmpty, ReplyWrite};
use parking_lot::{Condvar, Mutex};

use crate::backing::Backing;
use crate::ops::{Op, OpSet};

/// Entry and attribute TTL: zero, so that the kernel asks every time and
/// sees changes made through the backing directory.
pub(crate) const TTL: Duration = Duration::ZERO;

/// A request that a test can stall or fail, with its reply.
pub(crate) enum Request<'a> {
    Write {
        ino: u64,
        fh: u64,
        offset: u64,
        /// Borrowed from fuser's buffer while the request runs at once,
        /// owned once parked.
        data: Cow<'a, [u8]>,
        reply: ReplyWrite,
    },
    Fsync {
        ino: u64,
        fh: u64,
        datasync: bool,
        reply: ReplyEmpty,
    },
    FsyncDir {
        ino: u64,
        fh: u64,
        reply: ReplyEmpty,
    },
    Flush {
        ino: u64,
        fh: u64,
        reply: ReplyEmpty,
    },
    Create {
        parent: u64,
        name: OsString,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    },
}

impl Request<'_> {
    pub(crate) fn op(&self) -> Op {
        match self {
            Request::Write { .. } => Op::Write,
            Request::Fsync { .. } => Op::Fsync,
            Request::FsyncDir { .. } => Op::FsyncDir,
            Request::Flush { .. } => Op::Flush,
            Request::Create { .. } => Op::Create,
        }
    }

    pub(crate) fn stream(&self) -> Stream {
        match self {
            Request::Write { ino, .. }
            | Request::Fsync { ino, .. }
            | Request::FsyncDir { ino, .. }
            | Request::Flush { ino, .. } => Stream::Inode(*ino),
            Request::Create { parent, .. } => Stream::Entries(*parent),
        }
    }

    fn into_owned(self) -> Request<'static> {
        match self {
            Request::Write {
                ino,
                fh,
                offset,
                data,
                reply,
            } => Request::Write {
                ino,
                fh,
                offset,
                data: Cow::Owned(data.into_owned()),
                reply,
            },
            Request::Fsync {
                ino,
                fh,
                datasync,
                reply,
            } => Request::Fsync {
                ino,
                fh,
                datasync,
                reply,
            },
            Request::FsyncDir { ino, fh, reply } => Request::FsyncDir { ino, fh, reply },
            Request::Flush { ino, fh, reply } => Request::Flush { ino, fh, reply },
            Request::Create {
                parent,
                name,
                mode,
                umask,
                flags,
                reply,
            } => Request::Create {
                parent,
                name,
                mode,
                umask,
                flags,
                reply,
            },
        }
    }
}

/// Requests that must complete in the order they arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Writes, fsyncs and flushes of one inode (for a directory: its
    /// fsyncs).
    Inode(u64),
    /// Creates in one directory.
    Entries(u64),
}

/// A parked request and the stream it keeps in order.
struct Parked<R> {
    stream: Stream,
    request: R,
}

/// The stall and fault settings and the parked queue. Generic over the
/// parked request so that the decision logic is testable without FUSE.
struct Gate<R> {
    stalled: OpSet,
    /// The errno each kind fails with, if any.
    faults: [Option<i32>; Op::ALL.len()],
    queue: VecDeque<Parked<R>>,
    /// Set when the mount is being dropped: nothing parks any more, so no
    /// request can wait for a release that will never come.
    closed: bool,
}

impl<R> Gate<R> {
    fn new() -> Gate<R> {
        Gate {
            stalled: OpSet::EMPTY,
            faults: [None; Op::ALL.len()],
            queue: VecDeque::new(),
            closed: false,
        }
    }

    fn must_park(&self, op: Op, stream: Stream) -> bool {
        !self.closed && (self.stalled.contains(op) || self.queue.iter().any(|p| p.stream == stream))
    }

    fn fault(&self, op: Op) -> Option<i32> {
        self.faults[op.index()]
    }
}

/// State shared by the filesystem (on fuser's session thread) and every
/// [`StallControl`].
pub(crate) struct Shared {
    pub(crate) backing: Backing,
    gate: Mutex<Gate<Request<'static>>>,
    /// Signalled whenever the number of parked requests changes.
    parked_changed: Condvar,
    completed: [AtomicU64; Op::ALL.len()],
}

impl Shared {
    pub(crate) fn new(backing: Backing) -> Shared {
        Shared {
            backing,
            gate: Mutex::new(Gate::new()),
            parked_changed: Condvar::new(),
            completed: Default::default(),
        }
    }

    /// Runs `request` now, or parks it until a release.
    pub(crate) fn submit(&self, request: Request<'_>) {
        let mut gate = self.gate.lock();
        let (op, stream) = (request.op(), request.stream());
        if gate.must_park(op, stream) {
            gate.queue.push_back(Parked {
                stream,
                request: request.into_owned(),
            });
            self.parked_changed.notify_all();
            return;
        }
        // Still holding the gate: a release cannot slip a parked request
        // of this file in behind this one.
        self.run(request, gate.fault(op));
    }

    /// Clears every stall and answers the parked requests, in order.
    fn release(&self, close: bool) {
        let mut gate = self.gate.lock();
        gate.stalled = OpSet::EMPTY;
        gate.closed |= close;
        while let Some(parked) = gate.queue.pop_front() {
            let fault = gate.fault(parked.request.op());
            self.run(parked.request, fault);
        }
        self.parked_changed.notify_all();
    }

    /// Does the backing operation (unless `fault` says to fail it) and
    /// answers the kernel.
    fn run(&self, request: Request<'_>, fault: Option<i32>) {
        let op = request.op();
        let attempt = Attempt {
            shared: self,
            op,
            fault: fault.map(Errno::from_i32),
        };
        match request {
            Request::Write {
                fh,
                offset,
                data,
                reply,
                ..
            } => match attempt.run(|| self.backing.write(fh, offset, &data)) {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(e),
            },
            Request::Fsync {
                fh,
                datasync,
                reply,
                ..
            } => empty(reply, attempt.run(|| self.backing.fsync(fh, datasync))),
            Request::FsyncDir { fh, reply, .. } => {
                empty(reply, attempt.run(|| self.backing.fsyncdir(fh)));
            }
            Request::Flush { fh, reply, .. } => {
                empty(reply, attempt.run(|| self.backing.flush(fh)));
            }
            Request::Create {
                parent,
                name,
                mode,
                umask,
                flags,
                reply,
            } => match attempt.run(|| self.backing.create(parent, &name, mode, umask, flags)) {
                Ok((attr, fh)) => reply.created(
                    &TTL,
                    &attr,
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(e),
            },
        }
    }
}

/// One run of a request: fails it with the injected fault, or does it and
/// counts a success.
struct Attempt<'a> {
    shared: &'a Shared,
    op: Op,
    fault: Option<Errno>,
}

impl Attempt<'_> {
    fn run<T>(&self, operation: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
        if let Some(errno) = self.fault {
            return Err(errno);
        }
        let result = operation();
        // Counted *before* the answer goes out: the answer wakes the
        // caller, which may read the counter at once.
        if result.is_ok() {
            self.shared.completed[self.op.index()].fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

fn empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

/// A test's handle on a mounted [`StallFs`](crate::StallFs): stall, release
/// and fail requests, and watch them.
///
/// Cheap to clone; every clone controls the same mount. It stays usable
/// after the mount is dropped (it then controls nothing).
#[derive(Clone)]
pub struct StallControl {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for StallControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gate = self.shared.gate.lock();
        f.debug_struct("StallControl")
            .field("stalled", &gate.stalled)
            .field("parked", &gate.queue.len())
            .finish_non_exhaustive()
    }
}

impl StallControl {
    /// Parks every later request of the kinds in `ops` (added to those
    /// already stalled) until [`release`](Self::release). The caller of the
    /// system call waits in the kernel, as on a stalled disk; other
    /// requests, and other files, are still served.
    pub fn stall(&self, ops: impl Into<OpSet>) {
        let mut gate = self.shared.gate.lock();
        gate.stalled = gate.stalled.union(ops.into());
    }

    /// Ends every stall and answers the parked requests in the order they
    /// arrived: each is done on the backing directory now (or fails, if a
    /// fault is set for its kind by then). Returns once all are answered.
    pub fn release(&self) {
        self.shared.release(false);
    }

    /// Fails every later request of the kinds in `ops` with `errno` (a
    /// `libc::E*` value such as `libc::EIO` or `libc::ENOSPC`) without doing
    /// it, until [`clear_faults`](Self::clear_faults). A stalled request
    /// meets the fault when it is released.
    ///
    /// # Panics
    ///
    /// If `errno` is not positive.
    pub fn fail(&self, ops: impl Into<OpSet>, errno: i32) {
        assert!(errno > 0, "errno must be positive, got {errno}");
        let mut gate = self.shared.gate.lock();
        for op in ops.into().iter() {
            gate.faults[op.index()] = Some(errno);
        }
    }

    /// Removes every fault set by [`fail`](Self::fail).
    pub fn clear_faults(&self) {
        self.shared.gate.lock().faults = [None; Op::ALL.len()];
    }

    /// The number of requests parked now.
    pub fn parked(&self) -> usize {
        self.shared.gate.lock().queue.len()
    }

    /// Waits until at least `n` requests are parked; returns whether that
    /// happened within `timeout`.
    pub fn wait_parked(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut gate = self.shared.gate.lock();
        while gate.queue.len() < n {
            if self
                .shared
                .parked_changed
                .wait_until(&mut gate, deadline)
                .timed_out()
            {
                return gate.queue.len() >= n;
            }
        }
        true
    }

    /// The number of requests of kind `op` that completed successfully
    /// (parked ones count once released). Failed ones do not count.
    pub fn completed(&self, op: Op) -> u64 {
        self.shared.completed[op.index()].load(Ordering::Relaxed)
    }

    /// Releases everything and stops parking for good; for the mount's
    /// drop.
    pub(crate) fn close(&self) {
        self.shared.release(true);
    }
}

#[cfg(test)]
mod tests {
    use super::{Gate, Parked, Stream};
    use crate::ops::{Op, OpSet};

    fn park(gate: &mut Gate<&'static str>, stream: Stream, request: &'static str) {
        gate.queue.push_back(Parked { stream, request });
    }

    #[test]
    fn nothing_parks_without_a_stall() {
        let gate = Gate::<()>::new();
        for op in Op::ALL {
            assert!(!gate.must_park(op, Stream::Inode(7)));
        }
    }

    #[test]
    fn a_stalled_kind_parks_and_other_kinds_run() {
        let mut gate = Gate::<()>::new();
        gate.stalled = Op::Write | Op::Create;
        assert!(gate.must_park(Op::Write, Stream::Inode(7)));
        assert!(gate.must_park(Op::Create, Stream::Entries(1)));
        assert!(!gate.must_park(Op::Fsync, Stream::Inode(7)));
        assert!(!gate.must_park(Op::Flush, Stream::Inode(7)));
    }

    #[test]
    fn a_request_behind_a_parked_one_in_its_stream_parks_whatever_its_kind() {
        let mut gate = Gate::new();
        gate.stalled = Op::Write.into();
        park(&mut gate, Stream::Inode(7), "write");
        assert!(gate.must_park(Op::Fsync, Stream::Inode(7)));
        assert!(gate.must_park(Op::Flush, Stream::Inode(7)));
        // Another file, or creates in a directory numbered alike, are not
        // held up by it.
        assert!(!gate.must_park(Op::Fsync, Stream::Inode(8)));
        assert!(!gate.must_park(Op::Create, Stream::Entries(7)));
    }

    #[test]
    fn a_parked_directory_sync_does_not_hold_up_creates_in_it() {
        let mut gate = Gate::new();
        gate.stalled = Op::FsyncDir.into();
        park(&mut gate, Stream::Inode(1), "fsyncdir");
        assert!(!gate.must_park(Op::Create, Stream::Entries(1)));
        assert!(gate.must_park(Op::FsyncDir, Stream::Inode(1)));
    }

    #[test]
    fn a_closed_gate_parks_nothing() {
        let mut gate = Gate::new();
        gate.stalled = OpSet::ALL;
        park(&mut gate, Stream::Inode(7), "write");
        gate.closed = true;
        assert!(!gate.must_park(Op::Write, Stream::Inode(7)));
        assert!(!gate.must_park(Op::Write, Stream::Inode(8)));
    }
}
