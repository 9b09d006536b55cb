//! [`OsFs`]: the [`Fs`] of a real directory, over `std::fs` and a few libc
//! calls (`flock`, `fallocate`).

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{DirLock, Error, File, Fs, Metadata, Op, PrepareStep, Result};

/// The name of the lock file [`OsFs::lock`] creates inside a locked
/// directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// The operating system's filesystem.
///
/// Every operation is one system call or a short fixed sequence of them, and
/// none syncs a directory behind the caller's back: a caller that needs a
/// creation or rename to survive a power loss calls [`Fs::sync_dir`].
///
/// # Zero fill ahead of a synced file
///
/// A file opened for writing ([`Fs::create`], [`Fs::reuse_for_write`]) that
/// is synced again and again (a log: from its [`OsFs::ZERO_FILL_AFTER_SYNCS`]th
/// [`File::sync_data`] on) keeps written, durable space ahead of its writes:
/// when [`File::prepare_ahead`] finds less than [`OsFs::ZERO_FILL_LOW_WATER`]
/// of it, it writes [`OsFs::ZERO_FILL_STEP`] bytes of zeros past the last
/// write (with `pwrite`, a page at a time, so the write position does not
/// move and the page cache keeps page-sized folios there) and syncs them. A
/// log writer calls `prepare_ahead` between its rounds of I/O, so the fill
/// is never part of a commit's write or sync.
/// Later writes then overwrite blocks that are allocated, initialised and
/// inside the file's length, so their `fdatasync` has no metadata to commit:
/// no length change, no block allocation, no unwritten-extent conversion. On
/// ext4 that makes a small write plus `fdatasync` ~1.5x cheaper on a quiet
/// machine (48-63 us against 73-98 us: DESIGN.md, "Performance notes"), and
/// it keeps the sync off the journal thread and the end-io workers, which a
/// busy machine may not schedule for milliseconds (measured: 3.8 ms per sync
/// while two compilers ran, against 0.1 ms for overwrites). This is what
/// recycling a log file gives for free (okaywal reuses its segment files).
///
/// While such a file is open its length on disk runs ahead of what was
/// written ([`File::size`] still reports what was written), and after a
/// crash it ends with up to two steps of zeros: a log reader sees a torn tail
/// there, as after any crash. [`File::close`] (or dropping the handle) cuts
/// the length back to what it would have been without the fill, so a closed
/// file looks as if it had never been filled (the cut is not synced: after a
/// power loss a closed log may keep its zeros, past its end-of-file trailer).
/// Files synced only a few times (metadata files, probes) are never filled.
/// [`OsFs::without_zero_fill`] turns the fill off.
///
/// ```
/// use wal_fs::{File, Fs, OsFs};
///
/// let dir = tempfile::tempdir().unwrap();
/// let fs = OsFs::new();
/// let path = dir.path().join("a.log");
/// let mut f = fs.create(&path).unwrap();
/// f.write(b"hello").unwrap();
/// f.sync_data().unwrap();
/// fs.sync_dir(dir.path()).unwrap();
/// assert_eq!(fs.stat(&path).unwrap().len, 5);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OsFs {
    /// Whether write handles zero-fill ahead of their writes (see above).
    zero_fill: bool,
}

/// The zeros of the fill are written this many at a time: one page. The
/// page cache sizes the folio a write creates by the write (Linux 6.x with
/// large folios on ext4), and every later small write and sync into a large
/// folio walks all of its block buffers: zeros written 1 MiB at a time
/// made a 1-thread synced commit cost 2-3 us more CPU, in
/// `ext4_block_write_begin`, `block_commit_write` and the writeback of the
/// sync (DESIGN.md, "Performance notes", item 7).
/// Page-sized writes leave page-sized folios, as appending does.
const ZERO_WRITE: usize = 4096;

static ZEROS: [u8; ZERO_WRITE] = [0; ZERO_WRITE];

/// A write larger than this is made as several `write(2)` calls, each
/// ending at a multiple of it in the file. The page cache sizes the folios
/// a write creates by the write, and on a virtual machine whose free memory
/// the host takes back (free page reporting, which hands back free blocks
/// of 2 MiB and more), large folios come from exactly those blocks: the
/// first touch of each page then faults in the hypervisor. 256 MiB written
/// 1 MiB at a time after a 5-second pause that had reported 58-178 MiB:
/// 0.85-1.14 GB/s and 190-308 ms of CPU (the kernel's copy into the page
/// cache, 23% -> 52% of samples), against 1.9-2.9 GB/s and 90-109 ms
/// without the pause; in 128 KiB pieces, 108-132 ms either way (DESIGN.md,
/// "Performance notes", item 7). A log writer's buffer of 1 MiB costs 8
/// calls instead of one.
const WRITE_PIECE_MAX: u64 = 128 << 10;

impl Default for OsFs {
    fn default() -> OsFs {
        OsFs::new()
    }
}

impl OsFs {
    /// A file is zero-filled ahead of its writes from its this-many-th sync
    /// on.
    pub const ZERO_FILL_AFTER_SYNCS: u32 = 4;
    /// [`File::prepare_ahead`] fills more when less than this much filled
    /// space is left past the last write.
    pub const ZERO_FILL_LOW_WATER: u64 = 1 << 20;
    /// Bytes of zeros written ahead at a time: small enough that writing
    /// and syncing them takes milliseconds (50 ms at 20 MB/s), so that a
    /// failover monitor timing it does not mistake a fill for a stall.
    pub const ZERO_FILL_STEP: u64 = 1 << 20;

    /// The operating system's filesystem, with zero fill ahead of synced
    /// files.
    pub fn new() -> OsFs {
        OsFs { zero_fill: true }
    }

    /// The operating system's filesystem without zero fill: the length of
    /// a file open for writing is always exactly what was written.
    pub fn without_zero_fill() -> OsFs {
        OsFs { zero_fill: false }
    }

    /// A write handle's fill state, if this filesystem fills.
    fn fill_for(self, file: &fs::File) -> Option<ZeroFill> {
        if !self.zero_fill {
            return None;
        }
        // A length that cannot be read disables the fill for this file.
        let original = file.metadata().ok()?.len();
        Some(ZeroFill {
            pos: 0,
            original,
            filled: original,
            syncs: 0,
            attempted: false,
            stopped: false,
        })
    }
}

impl Fs for OsFs {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(Op::Create, path, e))?;
        let zero_fill = self.fill_for(&file);
        Ok(Box::new(OsFile::new(file, path, true).with_fill(zero_fill)))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        let file = fs::File::open(path).map_err(|e| Error::io(Op::Open, path, e))?;
        Ok(Box::new(OsFile::new(file, path, false)))
    }

    fn reuse_for_write(&self, old: &Path, new: &Path) -> Result<Box<dyn File>> {
        // Check-then-rename is not atomic against another process creating
        // `new` in between; the directory lock ([`Fs::lock`]) is what keeps
        // other writers out of a WAL directory, so the check only guards
        // against this process's own mistakes (reusing onto a live log).
        match fs::symlink_metadata(new) {
            Ok(_) => {
                let e = io::Error::new(io::ErrorKind::AlreadyExists, "target already exists");
                return Err(Error::io(Op::ReuseForWrite, new, e));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(Op::ReuseForWrite, new, e)),
        }
        fs::rename(old, new).map_err(|e| Error::io(Op::ReuseForWrite, old, e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(new)
            .map_err(|e| Error::io(Op::ReuseForWrite, new, e))?;
        let zero_fill = self.fill_for(&file);
        Ok(Box::new(OsFile::new(file, new, true).with_fill(zero_fill)))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| Error::io(Op::Rename, from, e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| Error::io(Op::Remove, path, e))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let err = |e| Error::io(Op::List, dir, e);
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(err)? {
            // A name that is not UTF-8 cannot be one of ours; it is listed
            // lossily rather than failing the whole listing.
            names.push(
                entry
                    .map_err(err)?
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        names.sort_unstable();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| Error::io(Op::CreateDir, dir, e))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let err = |e| Error::io(Op::SyncDir, dir, e);
        fs::File::open(dir).map_err(err)?.sync_all().map_err(err)
    }

    fn stat(&self, path: &Path) -> Result<Metadata> {
        let meta = fs::metadata(path).map_err(|e| Error::io(Op::Stat, path, e))?;
        Ok(Metadata {
            len: if meta.is_dir() { 0 } else { meta.len() },
            is_dir: meta.is_dir(),
        })
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let err = |e| Error::io(Op::Truncate, path, e);
        let file = OpenOptions::new().write(true).open(path).map_err(err)?;
        file.set_len(len).map_err(err)?;
        file.sync_all().map_err(err)
    }

    fn lock(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        let lock_path = dir.join(LOCK_FILE_NAME);
        let err = |e| Error::io(Op::Lock, &lock_path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(err)?;
        match sys::try_lock_exclusive(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(err(e)),
        }
        // The holder's pid, for a human wondering who holds the lock. Only
        // written once the lock is ours, so a refused opener never clobbers
        // it.
        file.set_len(0).map_err(err)?;
        writeln!(file, "{}", std::process::id()).map_err(err)?;
        Ok(Box::new(OsDirLock {
            dir: dir.to_path_buf(),
            _file: file,
        }))
    }
}

/// A file of [`OsFs`].
#[derive(Debug)]
struct OsFile {
    file: fs::File,
    path: PathBuf,
    writable: bool,
    /// Bytes written through the handle: the file offset of the next write
    /// (every write handle starts at offset 0).
    pos: u64,
    /// Zero fill ahead of the writes (write handles of a filling [`OsFs`]).
    fill: Option<ZeroFill>,
}

/// The zero fill of one write handle (see [`OsFs`]).
struct ZeroFill {
    /// Bytes written through the handle: the next write's offset.
    pos: u64,
    /// The file's length when opened (a reused file's old length).
    original: u64,
    /// Every byte below this offset has been written, by the handle or
    /// before it was opened, so a write below it overwrites initialised
    /// blocks. Bytes past `max(pos, original)` and below it are zeros of
    /// the fill, made durable by the sync that wrote them.
    // INVARIANT: `filled >= original`; the file's length is
    // `max(filled, pos)`.
    filled: u64,
    /// Successful syncs through the handle.
    syncs: u32,
    /// A fill was tried: the length on disk may exceed `natural_len`.
    attempted: bool,
    /// A zero write or sync failed: no more filling on this handle.
    stopped: bool,
}

impl fmt::Debug for ZeroFill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZeroFill")
            .field("pos", &self.pos)
            .field("original", &self.original)
            .field("filled", &self.filled)
            .field("syncs", &self.syncs)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl ZeroFill {
    /// Fills ahead if the file has been synced often enough and the filled
    /// space is short.
    ///
    /// A failed zero write (say, a full disk) just stops the fill: it
    /// touched no data. A failed sync of the zeros is returned, because an
    /// `fsync` error may concern any dirty page of the file and is reported
    /// only once: swallowing it could let a later sync of real data
    /// "succeed" over lost pages.
    fn fill_ahead(
        &mut self,
        file: &fs::File,
        watch: &mut dyn FnMut(PrepareStep),
    ) -> io::Result<()> {
        if self.stopped
            || self.syncs < OsFs::ZERO_FILL_AFTER_SYNCS
            || self.filled >= self.pos.saturating_add(OsFs::ZERO_FILL_LOW_WATER)
        {
            return Ok(());
        }
        let start = self.filled.max(self.pos);
        let end = start + OsFs::ZERO_FILL_STEP;
        self.attempted = true;
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(ZERO_WRITE);
            watch(PrepareStep::Write);
            if let Err(e) = file.write_all_at(&ZEROS[..n], at) {
                tracing::debug!(error = %e, "zero fill ahead of a log file stopped");
                // Never again on this handle. The length may have grown
                // by some zeros (`attempted` makes the cut-back look).
                self.stopped = true;
                return Ok(());
            }
            at += n as u64;
        }
        watch(PrepareStep::Sync);
        if let Err(e) = file.sync_data() {
            self.stopped = true;
            return Err(e);
        }
        self.filled = end;
        Ok(())
    }

    /// The length the file would have without the fill.
    fn natural_len(&self) -> u64 {
        self.pos.max(self.original)
    }
}

impl OsFile {
    fn new(file: fs::File, path: &Path, writable: bool) -> OsFile {
        OsFile {
            file,
            path: path.to_path_buf(),
            writable,
            pos: 0,
            fill: None,
        }
    }

    fn with_fill(mut self, fill: Option<ZeroFill>) -> OsFile {
        self.fill = fill;
        self
    }

    /// Cuts the length back to what it would be without the fill. Not
    /// synced: the zeros past a log's trailer are harmless if they survive.
    fn cut_back(&mut self) -> io::Result<()> {
        let Some(fill) = self.fill.take() else {
            return Ok(());
        };
        if fill.attempted && self.file.metadata()?.len() > fill.natural_len() {
            self.file.set_len(fill.natural_len())?;
        }
        Ok(())
    }

    /// [`OsFile::cut_back`], whose failure only leaves zeros behind the
    /// written bytes, all of them already synced or not, as the caller
    /// chose: it is logged, never returned.
    fn cut_back_logged(&mut self) {
        if let Err(e) = self.cut_back() {
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "could not cut the zero fill off a closed log file"
            );
        }
    }
}

impl Drop for OsFile {
    /// A handle dropped without [`File::close`] is cut back too (an
    /// abandoned log writer closes its file this way).
    fn drop(&mut self) {
        self.cut_back_logged();
    }
}

impl File for OsFile {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        if !self.writable {
            let e = io::Error::new(io::ErrorKind::PermissionDenied, "file is open read-only");
            return Err(Error::io(Op::Write, &self.path, e));
        }
        // In pieces that end at multiples of `WRITE_PIECE_MAX` in the file
        // (see there).
        let mut written = Ok(());
        let mut rest = buf;
        while !rest.is_empty() {
            let room = WRITE_PIECE_MAX - self.pos % WRITE_PIECE_MAX;
            let (piece, after) = rest.split_at(rest.len().min(room as usize));
            written = self.file.write_all(piece);
            if written.is_err() {
                // Part of the piece may have been written: ask where we are.
                self.pos = io::Seek::stream_position(&mut self.file)
                    .unwrap_or(self.pos + piece.len() as u64);
                break;
            }
            self.pos += piece.len() as u64;
            rest = after;
        }
        if let Some(fill) = &mut self.fill {
            fill.pos = self.pos;
        }
        written.map_err(|e| Error::io(Op::Write, &self.path, e))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        // `pread` may return fewer bytes than asked before the end of the
        // file (signals); loop so that a short count means end of file.
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(Op::Read, &self.path, e)),
            }
        }
        Ok(done)
    }

    fn sync_data(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(Op::Sync, &self.path, e))?;
        if let Some(fill) = &mut self.fill {
            fill.syncs = fill.syncs.saturating_add(1);
        }
        Ok(())
    }

    fn prepare_ahead(&mut self, watch: &mut dyn FnMut(PrepareStep)) -> Result<()> {
        match &mut self.fill {
            Some(fill) => {
                let r = fill.fill_ahead(&self.file, watch);
                watch(PrepareStep::Done);
                r.map_err(|e| Error::io(Op::Sync, &self.path, e))
            }
            None => Ok(()),
        }
    }

    fn size(&self) -> Result<u64> {
        if let Some(fill) = self.fill.as_ref().filter(|f| f.attempted) {
            // The zeros ahead are not part of the file.
            return Ok(fill.natural_len());
        }
        let meta = self
            .file
            .metadata()
            .map_err(|e| Error::io(Op::Size, &self.path, e))?;
        Ok(meta.len())
    }

    fn preallocate(&mut self, offset: u64, len: u64) -> Result<()> {
        sys::preallocate(&self.file, offset, len)
            .map_err(|e| Error::io(Op::Preallocate, &self.path, e))
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        self.cut_back_logged();
        // `close(2)` errors on a local filesystem only report earlier
        // write-back failures, which the WAL learns from `sync_data`; std
        // ignores them too.
        drop(self);
        Ok(())
    }
}

/// The lock taken by [`OsFs::lock`]: an open descriptor of the `LOCK` file
/// holding a `flock`. Closing the descriptor (dropping this) releases it.
#[derive(Debug)]
struct OsDirLock {
    dir: PathBuf,
    _file: fs::File,
}

impl DirLock for OsDirLock {
    fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The libc calls std does not wrap (at this crate's minimum Rust version).
mod sys {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// `flock(LOCK_EX | LOCK_NB)`. `flock` locks belong to the open file
    /// description, so a second descriptor opened by this same process
    /// conflicts too (unlike `fcntl` record locks, which a process never
    /// conflicts with itself on). That is what makes a second WAL manager in
    /// the same process see the directory as locked.
    ///
    /// Returns an error of kind `WouldBlock` if another description holds it.
    #[allow(unsafe_code)]
    pub(super) fn try_lock_exclusive(file: &File) -> io::Result<()> {
        loop {
            // SAFETY: `flock` takes a descriptor and flags and touches no
            // memory; the descriptor is valid for the duration of the call
            // because `file` is borrowed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// `fallocate(FALLOC_FL_KEEP_SIZE)`: reserves blocks without changing the
    /// file length. Filesystems that cannot (`EOPNOTSUPP`) are treated as a
    /// successful no-op, as the trait allows.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub(super) fn preallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            // `fallocate` rejects a zero length with EINVAL.
            return Ok(());
        }
        let too_big = |_| io::Error::new(io::ErrorKind::InvalidInput, "range exceeds off_t");
        let offset = libc::off_t::try_from(offset).map_err(too_big)?;
        let len = libc::off_t::try_from(len).map_err(too_big)?;
        loop {
            // SAFETY: `fallocate` takes a descriptor and integers and touches
            // no memory; the descriptor is valid because `file` is borrowed.
            let rc = unsafe {
                libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len)
            };
            if rc == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EOPNOTSUPP) => return Ok(()),
                _ => return Err(e),
            }
        }
    }

    /// Other systems: a no-op, as the trait allows.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn preallocate(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The environment variable that turns [`lock_child_helper`] into the
    /// second process of [`lock_refuses_a_second_opener_in_another_process`].
    const LOCK_CHILD_ENV: &str = "WAL_FS_LOCK_CHILD";
    const CHILD_GOT_LOCK: i32 = 10;
    const CHILD_SAW_LOCKED: i32 = 11;
    const CHILD_FAILED: i32 = 12;

    fn write_file(fs: OsFs, path: &Path, bytes: &[u8]) {
        let mut f = fs.create(path).unwrap();
        f.write(bytes).unwrap();
        f.sync_data().unwrap();
        f.close().unwrap();
    }

    fn read_all(fs: OsFs, path: &Path) -> Vec<u8> {
        let f = fs.open(path).unwrap();
        let mut buf = vec![0; f.size().unwrap() as usize];
        assert_eq!(f.read_at(&mut buf, 0).unwrap(), buf.len());
        buf
    }

    #[test]
    fn create_write_sync_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("a.log");
        let mut f = fs.create(&path).unwrap();
        f.write(b"hello ").unwrap();
        f.write(b"world").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size().unwrap(), 11);
        assert_eq!(f.path(), path);
        let mut buf = [0; 5];
        assert_eq!(
            f.read_at(&mut buf, 6).unwrap(),
            5,
            "a write handle reads too"
        );
        assert_eq!(&buf, b"world");
        f.close().unwrap();
        fs.sync_dir(dir.path()).unwrap();

        let r = fs.open(&path).unwrap();
        let mut buf = [0; 16];
        assert_eq!(r.read_at(&mut buf, 0).unwrap(), 11);
        assert_eq!(&buf[..11], b"hello world");
        assert_eq!(
            r.read_at(&mut buf, 11).unwrap(),
            0,
            "reading at the end gives 0"
        );
        assert_eq!(
            r.read_at(&mut buf, 100).unwrap(),
            0,
            "reading past the end gives 0"
        );
    }

    #[test]
    fn create_truncates_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("a");
        write_file(fs, &path, b"long old content");
        write_file(fs, &path, b"new");
        assert_eq!(read_all(fs, &path), b"new");
    }

    #[test]
    fn write_through_a_read_handle_fails_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("ro");
        write_file(fs, &path, b"x");
        let mut r = fs.open(&path).unwrap();
        let err = r.write(b"y").unwrap_err();
        assert_eq!(err.op(), Op::Write);
        assert_eq!(err.path(), path);
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(read_all(fs, &path), b"x");
    }

    #[test]
    fn open_of_a_missing_file_is_not_found_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.log");
        let err = OsFs::new().open(&path).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Open);
        let msg = err.to_string();
        assert!(msg.contains("missing.log"), "{msg}");
        assert!(msg.starts_with("open "), "{msg}");
    }

    #[test]
    fn stat_reports_length_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("f");
        write_file(fs, &path, &[7; 100]);
        assert_eq!(
            fs.stat(&path).unwrap(),
            Metadata {
                len: 100,
                is_dir: false
            }
        );
        assert_eq!(
            fs.stat(dir.path()).unwrap(),
            Metadata {
                len: 0,
                is_dir: true
            }
        );
        let err = fs.stat(&dir.path().join("nope")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Stat);
    }

    #[test]
    fn rename_remove_and_list_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let sub = dir.path().join("a/b");
        fs.create_dir_all(&sub).unwrap();
        fs.create_dir_all(&sub).unwrap();
        write_file(fs, &sub.join("2.log"), b"2");
        write_file(fs, &sub.join("1.log"), b"1");
        assert_eq!(fs.list(&sub).unwrap(), ["1.log", "2.log"]);

        fs.rename(&sub.join("1.log"), &sub.join("2.log")).unwrap();
        assert_eq!(fs.list(&sub).unwrap(), ["2.log"]);
        assert_eq!(
            read_all(fs, &sub.join("2.log")),
            b"1",
            "rename replaces the target"
        );
        fs.sync_dir(&sub).unwrap();

        fs.remove(&sub.join("2.log")).unwrap();
        assert!(fs.list(&sub).unwrap().is_empty());
        let err = fs.remove(&sub.join("2.log")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Remove);
        let err = fs.rename(&sub.join("x"), &sub.join("y")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.path(), sub.join("x"));
        let err = fs.list(&dir.path().join("none")).unwrap_err();
        assert_eq!(err.op(), Op::List);
    }

    #[test]
    fn truncate_cuts_and_extends() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("t");
        write_file(fs, &path, b"0123456789");
        fs.truncate(&path, 4).unwrap();
        assert_eq!(read_all(fs, &path), b"0123");
        fs.truncate(&path, 6).unwrap();
        assert_eq!(read_all(fs, &path), b"0123\0\0");
        let err = fs.truncate(&dir.path().join("none"), 0).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Truncate);
    }

    #[test]
    fn reuse_for_write_renames_and_overwrites_without_truncating() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let old = dir.path().join("000001.log");
        let new = dir.path().join("000005.log");
        write_file(fs, &old, b"old old old");
        let mut f = fs.reuse_for_write(&old, &new).unwrap();
        f.write(b"NEW").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size().unwrap(), 11, "the old length is kept");
        f.close().unwrap();
        assert_eq!(fs.list(dir.path()).unwrap(), ["000005.log"]);
        assert_eq!(read_all(fs, &new), b"NEW old old");
    }

    #[test]
    fn reuse_for_write_refuses_an_existing_target_and_a_missing_source() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let old = dir.path().join("a");
        let new = dir.path().join("b");
        write_file(fs, &old, b"a");
        write_file(fs, &new, b"b");
        let err = fs.reuse_for_write(&old, &new).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(err.op(), Op::ReuseForWrite);
        assert_eq!(err.path(), new);
        assert_eq!(read_all(fs, &new), b"b", "the target is untouched");

        let err = fs
            .reuse_for_write(&dir.path().join("none"), &dir.path().join("c"))
            .unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.path(), dir.path().join("none"));
    }

    #[test]
    fn preallocate_keeps_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let mut f = fs.create(&dir.path().join("p")).unwrap();
        f.write(b"abc").unwrap();
        f.preallocate(0, 1 << 20).unwrap();
        f.preallocate(0, 0).unwrap();
        assert_eq!(f.size().unwrap(), 3);
    }

    /// Writes `n` records of `len` bytes through `f`, syncing after each.
    /// Writes `n` records of `len` bytes, each synced, with the upkeep a log
    /// writer does after its syncs.
    fn write_synced(f: &mut Box<dyn File>, n: usize, len: usize) {
        for i in 0..n {
            f.write(&vec![i as u8 + 1; len]).unwrap();
            f.sync_data().unwrap();
            f.prepare_ahead(&mut |_| {}).unwrap();
        }
    }

    fn disk_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    #[test]
    fn a_file_synced_again_and_again_is_zero_filled_ahead_and_cut_back_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("000001.log");
        let mut f = fs.create(&path).unwrap();
        let syncs = OsFs::ZERO_FILL_AFTER_SYNCS as usize;
        write_synced(&mut f, syncs - 1, 100);
        assert_eq!(disk_len(&path), 100 * (syncs as u64 - 1), "not filled yet");
        write_synced(&mut f, 1, 100);
        let written = 100 * syncs as u64;
        let filled = disk_len(&path);
        assert_eq!(
            filled,
            written + OsFs::ZERO_FILL_STEP,
            "filled a step ahead"
        );
        assert_eq!(
            f.size().unwrap(),
            written,
            "the fill is not part of the size"
        );
        let bytes = fs::read(&path).unwrap();
        assert!(
            bytes[written as usize..].iter().all(|&b| b == 0),
            "zeros ahead"
        );
        // A sync alone never fills: only the upkeep between rounds does.
        f.write(&[9; 10]).unwrap();
        f.sync_data().unwrap();
        assert_eq!(disk_len(&path), filled, "a write inside the fill");
        f.close().unwrap();
        assert_eq!(disk_len(&path), written + 10, "cut back at close");
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[written as usize..], &[9; 10]);
        assert_eq!(bytes[0], 1);
    }

    #[test]
    fn the_fill_tells_its_watcher_each_page_write_then_the_sync() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let mut f = fs.create(&dir.path().join("000001.log")).unwrap();
        let syncs = OsFs::ZERO_FILL_AFTER_SYNCS as usize;
        write_synced(&mut f, syncs - 1, 100);
        f.write(&[1; 100]).unwrap();
        f.sync_data().unwrap();
        let mut steps = Vec::new();
        f.prepare_ahead(&mut |step| steps.push(step)).unwrap();
        let pages = (OsFs::ZERO_FILL_STEP / ZERO_WRITE as u64) as usize;
        let mut want = vec![PrepareStep::Write; pages];
        want.extend([PrepareStep::Sync, PrepareStep::Done]);
        assert_eq!(steps, want);
        // Nothing to fill (a step ahead already): no I/O step, only the end.
        steps.clear();
        f.prepare_ahead(&mut |step| steps.push(step)).unwrap();
        assert_eq!(steps, [PrepareStep::Done]);
    }

    #[test]
    fn the_fill_stays_ahead_of_a_growing_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("a");
        let mut f = fs.create(&path).unwrap();
        let chunk = 256 << 10;
        let n = (OsFs::ZERO_FILL_STEP as usize / chunk) * 3;
        write_synced(&mut f, n, chunk);
        let written = (n * chunk) as u64;
        let len = disk_len(&path);
        assert!(
            len >= written + OsFs::ZERO_FILL_LOW_WATER,
            "{len} bytes on disk for {written} written"
        );
        // No fill ever landed on written bytes.
        let bytes = fs::read(&path).unwrap();
        for (i, c) in bytes[..written as usize].chunks(chunk).enumerate() {
            assert!(c.iter().all(|&b| b == i as u8 + 1), "record {i} intact");
        }
        assert!(bytes[written as usize..].iter().all(|&b| b == 0));
        drop(f);
        assert_eq!(disk_len(&path), written, "a dropped handle is cut back too");
    }

    #[test]
    fn files_synced_only_a_few_times_are_never_filled() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("LSN-FLOOR.tmp");
        let mut f = fs.create(&path).unwrap();
        write_synced(&mut f, OsFs::ZERO_FILL_AFTER_SYNCS as usize - 1, 10);
        assert_eq!(disk_len(&path), 30);
        assert_eq!(f.size().unwrap(), 30);
        f.close().unwrap();
        assert_eq!(disk_len(&path), 30);
    }

    #[test]
    fn a_reused_file_is_cut_back_to_its_old_length() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let old = dir.path().join("recycle-000001.log");
        let new = dir.path().join("000002.log");
        write_file(fs, &old, &[7; 1000]);
        let mut f = fs.reuse_for_write(&old, &new).unwrap();
        write_synced(&mut f, OsFs::ZERO_FILL_AFTER_SYNCS as usize, 100);
        assert!(disk_len(&new) > 1000, "filled past the old end");
        f.close().unwrap();
        let bytes = fs::read(&new).unwrap();
        assert_eq!(bytes.len(), 1000, "the old length, as without the fill");
        assert_eq!(bytes[399], 4);
        assert_eq!(bytes[400], 7, "old bytes past the new writes are kept");
    }

    #[test]
    fn a_large_reused_file_is_overwritten_in_place_and_keeps_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let old = dir.path().join("recycle-000001.log");
        let new = dir.path().join("000002.log");
        let old_len = 3 * OsFs::ZERO_FILL_LOW_WATER as usize;
        write_file(fs, &old, &vec![7; old_len]);
        let mut f = fs.reuse_for_write(&old, &new).unwrap();
        // Far from the old end: nothing to fill.
        write_synced(&mut f, 2 * OsFs::ZERO_FILL_AFTER_SYNCS as usize, 4096);
        assert_eq!(
            disk_len(&new),
            old_len as u64,
            "no fill inside the old file"
        );
        // Past the old end, the fill starts again ahead of the writes.
        let chunk = 256 << 10;
        write_synced(&mut f, 12, chunk);
        let written = 2 * u64::from(OsFs::ZERO_FILL_AFTER_SYNCS) * 4096 + 12 * chunk as u64;
        assert!(written > old_len as u64);
        assert!(disk_len(&new) >= written + OsFs::ZERO_FILL_LOW_WATER);
        f.close().unwrap();
        let bytes = fs::read(&new).unwrap();
        assert_eq!(bytes.len() as u64, written, "cut back to what was written");
        assert_eq!(bytes[written as usize - 1], 12);
    }

    #[test]
    fn writes_cut_into_pieces_at_unaligned_offsets_read_back_whole() {
        // Writes larger than a piece, starting inside one, ending inside
        // one, and exactly at a boundary, with and without the fill.
        for fs in [OsFs::new(), OsFs::without_zero_fill()] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("pieces");
            let mut f = fs.create(&path).unwrap();
            let piece = WRITE_PIECE_MAX as usize;
            let sizes = [100, 3 * piece + 7, piece - 107, 1, 2 * piece, 5000];
            let mut expected = Vec::new();
            for (i, &n) in sizes.iter().enumerate() {
                let chunk: Vec<u8> = (0..n).map(|j| (i * 31 + j % 253) as u8).collect();
                f.write(&chunk).unwrap();
                f.sync_data().unwrap();
                f.prepare_ahead(&mut |_| {}).unwrap();
                expected.extend_from_slice(&chunk);
            }
            assert_eq!(f.size().unwrap(), expected.len() as u64);
            f.close().unwrap();
            assert_eq!(read_all(fs, &path), expected);
        }
    }

    #[test]
    fn without_zero_fill_the_length_is_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::without_zero_fill();
        let path = dir.path().join("a");
        let mut f = fs.create(&path).unwrap();
        write_synced(&mut f, 2 * OsFs::ZERO_FILL_AFTER_SYNCS as usize, 100);
        assert_eq!(disk_len(&path), 800);
        f.close().unwrap();
    }

    #[test]
    fn lock_refuses_a_second_opener_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let guard = fs.lock(dir.path()).unwrap();
        assert_eq!(guard.dir(), dir.path());
        let err = fs.lock(dir.path()).unwrap_err();
        assert!(err.is_locked());
        assert_eq!(err.path(), dir.path());
        assert!(err.to_string().contains("locked by another WAL manager"));
        let pid = fs::read_to_string(dir.path().join(LOCK_FILE_NAME)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        drop(guard);
        let again = fs.lock(dir.path()).unwrap();
        drop(again);
    }

    #[test]
    fn lock_of_a_missing_directory_names_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let err = OsFs::new().lock(&missing).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Lock);
        assert_eq!(err.path(), missing.join(LOCK_FILE_NAME));
    }

    /// Runs this test executable again as a second process that tries to
    /// lock `dir`, and returns its exit code.
    fn lock_in_child_process(dir: &Path) -> i32 {
        let status = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "os::tests::lock_child_helper",
                "--ignored",
                "--nocapture",
            ])
            .env(LOCK_CHILD_ENV, dir)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        status.code().expect("the child exited normally")
    }

    /// Not a test of its own (so it is ignored): the body of the second
    /// process of [`lock_refuses_a_second_opener_in_another_process`], which
    /// runs this executable with only this helper, `--ignored`, and
    /// `WAL_FS_LOCK_CHILD` set. It reports through its exit code.
    #[test]
    #[ignore = "the child process of lock_refuses_a_second_opener_in_another_process"]
    fn lock_child_helper() {
        let Some(dir) = std::env::var_os(LOCK_CHILD_ENV) else {
            return;
        };
        let code = match OsFs::new().lock(Path::new(&dir)) {
            Ok(_) => CHILD_GOT_LOCK,
            Err(e) if e.is_locked() => CHILD_SAW_LOCKED,
            Err(e) => {
                eprintln!("lock child: {e}");
                CHILD_FAILED
            }
        };
        std::process::exit(code);
    }

    #[test]
    fn lock_refuses_a_second_opener_in_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let guard = OsFs::new().lock(dir.path()).unwrap();
        assert_eq!(lock_in_child_process(dir.path()), CHILD_SAW_LOCKED);
        drop(guard);
        assert_eq!(
            lock_in_child_process(dir.path()),
            CHILD_GOT_LOCK,
            "the lock is free once the guard is dropped"
        );
    }
}
