//! The filesystem layer of `failwal`.
//!
//! Everything the log needs from a disk goes through two traits, [`Fs`] and
//! [`File`], so that the same manager code runs on a real directory
//! ([`OsFs`]), on an in-memory filesystem that can produce power-loss crash
//! images ([`MemFs`]), and under composable fault injection ([`ErrorFs`],
//! [`LatencyFs`]) and slow-operation reporting ([`HealthFs`]).
//!
//! This crate knows nothing of records, logs or failover.
//!
//! # Contract
//!
//! * Operations are *primitive*: [`Fs::create`], [`Fs::rename`] and
//!   [`Fs::create_dir_all`] do **not** make the directory entry durable. A caller that needs the entry to
//!   survive a power loss calls [`Fs::sync_dir`] afterwards. [`MemFs`] models
//!   exactly this, so a test over it catches a missing directory sync.
//! * [`File::sync_data`] makes every byte written to that file so far durable,
//!   together with the file size (Linux `fdatasync`).
//! * Every error names the operation and the path ([`Error`]).
//!
//! # The filesystems
//!
//! | type | what it is for |
//! |---|---|
//! | [`OsFs`] | a real directory: `std::fs`, `fdatasync`, `fallocate`, an `flock` directory lock; files synced again and again are zero-filled ahead and cut back at close |
//! | [`MemFs`] | tests: in memory, tracks durable vs unsynced bytes and entries; [`MemFs::crash_image`] simulates a power loss from a seed (the crash model is documented on [`MemFs`]) |
//! | [`ErrorFs`] | injects errors ([`Fault`]: `ENOSPC`, `EIO`, ...) chosen by [`Rule`]s: operation kinds and paths ([`OpFilter`]), the Nth call, at most K times, after N bytes |
//! | [`LatencyFs`] | holds selected operations until the test releases a [`Stall`], or delays them |
//! | [`HealthFs`] | reports operations slower than a threshold while they run ([`SlowOp`] to a callback and a `tracing` warning), like Pebble's `vfs/disk_health.go` |
//!
//! The wrappers are generic over any [`Fs`] (including `Arc<dyn Fs>`) and
//! compose; the outermost sees an operation first. A failover test might use
//! `HealthFs<LatencyFs<ErrorFs<MemFs>>>`: the health checker times the whole
//! operation, including a stall; a stalled operation, once released, may
//! still meet an injected error; what passes reaches the in-memory disk,
//! which a crash image can then tear. Each wrapper hands out a cloneable
//! control handle ([`Injector`], [`LatencyControl`]) so a test can change
//! faults while the filesystem is shared with the code under test.
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//! use wal_fs::{ErrorFs, Fault, File, Fs, HealthConfig, HealthFs, LatencyFs, MemFs, Op,
//!              OpFilter, Rule};
//!
//! let mem = MemFs::new();
//! let errors = ErrorFs::new(mem.clone());
//! let injector = errors.injector().clone();
//! let latency = LatencyFs::new(errors);
//! let stalls = latency.control().clone();
//! let fs: Arc<dyn Fs> = Arc::new(HealthFs::new(latency, HealthConfig::new()));
//!
//! fs.create_dir_all(Path::new("/wal")).unwrap();
//! injector.add(Rule::new(OpFilter::ops([Op::Sync]).in_dir("/wal"), Fault::Eio).times(1));
//! let mut f = fs.create(Path::new("/wal/000001.log")).unwrap();
//! f.write(b"record").unwrap();
//! assert!(f.sync_data().is_err());
//! assert_eq!(stalls.blocked_count(), 0);
//! assert_eq!(mem.read_durable_file(Path::new("/wal/000001.log")).unwrap(), b"");
//! ```
#![deny(missing_docs)]

mod error;
mod error_fs;
mod filter;
mod health;
mod latency;
mod mem;
mod nosync;
mod os;
mod read;
mod rng;

pub use error::{Error, Op, Result};

/// A step of [`File::prepare_ahead`], as told to its watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrepareStep {
    /// A write of part of the prepared space starts (`OsFs`: a page of
    /// zeros, into the page cache).
    Write,
    /// The sync of the prepared space starts: all of it goes to the disk
    /// (`OsFs`: 1 MiB).
    Sync,
    /// The last step ended.
    Done,
}
pub use error_fs::{ErrorFs, Fault, Injector, Rule, RuleId};
pub use filter::OpFilter;
pub use health::{HealthConfig, HealthFs, SlowOp, SlowOpCallback};
pub use latency::{DelayId, LatencyControl, LatencyFs, Stall};
pub use mem::{
    CrashMode, CrashOptions, CrashReport, EntryMode, EntryReport, EntryState, FileCrash, FileInfo,
    FileReport, MemFs, PAGE_SIZE, SECTOR_SIZE, SUBSECTOR_SIZE,
};
pub use nosync::NoSyncFs;
pub use os::{LOCK_FILE_NAME, OsFs};
pub use read::FileReader;

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

/// What [`Fs::stat`] reports about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The file's length in bytes (0 for a directory).
    pub len: u64,
    /// Whether the path is a directory.
    pub is_dir: bool,
}

/// A filesystem as the write-ahead log sees it.
///
/// Implementations are shared between threads (`Arc<dyn Fs>`); every method
/// takes `&self`.
pub trait Fs: Send + Sync + Debug + 'static {
    /// Creates `path` for writing, truncating it if it exists. Writes start at
    /// offset 0. The directory entry is not durable until [`Fs::sync_dir`].
    ///
    /// # Errors
    /// The parent directory is missing or not writable, or the disk fails.
    fn create(&self, path: &Path) -> Result<Box<dyn File>>;

    /// Opens an existing file for reading ([`File::read_at`]); writing through
    /// the handle fails.
    ///
    /// # Errors
    /// The file is missing or unreadable.
    fn open(&self, path: &Path) -> Result<Box<dyn File>>;

    /// Renames the existing file `old` to `new` and opens it for writing
    /// *without truncating it*: writes start at offset 0 and overwrite the old
    /// bytes, so that a recycled log file keeps its allocated blocks (no
    /// metadata update on each sync). Bytes beyond what is rewritten keep
    /// their old content. The rename is not durable until [`Fs::sync_dir`].
    ///
    /// # Errors
    /// `old` is missing, `new` exists, or the disk fails.
    fn reuse_for_write(&self, old: &Path, new: &Path) -> Result<Box<dyn File>>;

    /// Renames `from` to `to`, replacing `to` if it exists. Not durable until
    /// [`Fs::sync_dir`].
    ///
    /// # Errors
    /// `from` is missing or the disk fails.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;

    /// Removes the file `path`. Not durable until [`Fs::sync_dir`].
    ///
    /// # Errors
    /// The file is missing or the disk fails.
    fn remove(&self, path: &Path) -> Result<()>;

    /// Lists the names (not paths) of the entries of directory `dir`, sorted.
    ///
    /// # Errors
    /// The directory is missing or unreadable.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;

    /// Creates `dir` and any missing parents. Succeeds if it exists. Like
    /// [`Fs::create`], this does not make the new entries durable:
    /// [`create_dir_all_durably`] also syncs their parents.
    ///
    /// # Errors
    /// A component is not a directory, or the disk fails.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;

    /// Makes the entries of `dir` (creations, renames, removals) durable.
    ///
    /// # Errors
    /// The directory is missing or the disk fails.
    fn sync_dir(&self, dir: &Path) -> Result<()>;

    /// Reports the length of `path` and whether it is a directory.
    ///
    /// # Errors
    /// The path is missing ([`Error::is_not_found`]) or unreadable.
    fn stat(&self, path: &Path) -> Result<Metadata>;

    /// Truncates (or extends with zeros) the file `path` to `len` bytes and
    /// makes the new length durable. Used by repair to cut a torn tail.
    ///
    /// # Errors
    /// The file is missing or the disk fails.
    fn truncate(&self, path: &Path, len: u64) -> Result<()>;

    /// Takes an exclusive lock on directory `dir`, held until the returned
    /// guard is dropped. A second lock on the same directory, from this or
    /// another process, fails with [`Error::Locked`].
    ///
    /// # Errors
    /// [`Error::Locked`] if another holder has it; I/O errors otherwise.
    fn lock(&self, dir: &Path) -> Result<Box<dyn DirLock>>;
}

/// An open file. Write handles append sequentially from offset 0; read
/// handles read at explicit offsets.
pub trait File: Send + Sync + Debug {
    /// Writes all of `buf` at the current write position and advances it.
    ///
    /// # Errors
    /// The handle is read-only, the disk is full, or the disk fails.
    fn write(&mut self, buf: &[u8]) -> Result<()>;

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (0 at or past the end of the file).
    ///
    /// # Errors
    /// The disk fails.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;

    /// Makes every byte written through any handle of this file durable,
    /// together with the file's length (`fdatasync`).
    ///
    /// # Errors
    /// The disk fails. After a failed sync the written bytes may or may not be
    /// durable and must not be assumed either way.
    fn sync_data(&mut self) -> Result<()>;

    /// Optional upkeep between writes of a log: prepares the space the next
    /// writes will land in. [`OsFs`] zero-fills ahead of a file synced again
    /// and again, so that later syncs have no metadata to commit (see
    /// there). A log writer calls it when none of its writes or syncs is in
    /// flight, and never when closing. The default does nothing.
    ///
    /// `watch` is told when each step of its I/O starts and when the last
    /// one ends ([`PrepareStep`]), so that a caller watching for a stalled
    /// disk can time each write and the sync on their own: the whole takes
    /// long on a slow disk, a step stuck on a stalled one.
    ///
    /// # Errors
    /// Syncing the prepared space failed: the disk is failing.
    fn prepare_ahead(&mut self, watch: &mut dyn FnMut(PrepareStep)) -> Result<()> {
        let _ = watch;
        Ok(())
    }

    /// The file's current length in bytes: what was written, never space
    /// prepared ahead by [`File::prepare_ahead`].
    ///
    /// # Errors
    /// The disk fails.
    fn size(&self) -> Result<u64>;

    /// Reserves disk space for `len` bytes from `offset` without changing the
    /// file's length, so later writes there need no block allocation. May be
    /// a no-op where the filesystem cannot do it.
    ///
    /// # Errors
    /// The disk is full or fails.
    fn preallocate(&mut self, offset: u64, len: u64) -> Result<()>;

    /// The path the file was opened under.
    fn path(&self) -> &Path;

    /// Closes the handle. Dropping it also closes it, ignoring errors.
    ///
    /// # Errors
    /// The disk fails on close.
    fn close(self: Box<Self>) -> Result<()>;
}

/// Creates `dir` and any missing parents, and makes every entry on the way
/// durable: the parent of each directory it creates, and `dir`'s own parent,
/// is synced ([`Fs::sync_dir`]). Without this, a power loss after files in a
/// new directory were synced may take the directory, and the files with it.
///
/// # Errors
/// A component is not a directory, or creating or syncing fails.
pub fn create_dir_all_durably(fs: &dyn Fs, dir: &Path) -> Result<()> {
    // The directories that do not exist yet, deepest first.
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at.filter(|p| !p.as_os_str().is_empty()) {
        match fs.stat(p) {
            Ok(_) => break,
            Err(e) if e.is_not_found() => missing.push(p),
            Err(e) => return Err(e),
        }
        at = p.parent();
    }
    fs.create_dir_all(dir)?;
    let parent_of = |p: &Path| match p.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Some(Path::new(".").to_path_buf()),
        Some(parent) => Some(parent.to_path_buf()),
        None => None,
    };
    // Top down: a directory's entry is durable before anything below it.
    let mut synced = Vec::new();
    for p in missing.iter().rev().copied().chain(std::iter::once(dir)) {
        if let Some(parent) = parent_of(p) {
            if !synced.contains(&parent) {
                fs.sync_dir(&parent)?;
                synced.push(parent);
            }
        }
    }
    Ok(())
}

/// An exclusive lock on a directory, released when dropped.
pub trait DirLock: Send + Sync + Debug {
    /// The locked directory.
    fn dir(&self) -> &Path;
}

/// A shared filesystem is a filesystem, so wrappers and managers can hold an
/// `Arc<dyn Fs>` (or an `Arc` of a concrete one a test keeps a handle to).
impl<F: Fs + ?Sized> Fs for Arc<F> {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        (**self).create(path)
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        (**self).open(path)
    }

    fn reuse_for_write(&self, old: &Path, new: &Path) -> Result<Box<dyn File>> {
        (**self).reuse_for_write(old, new)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        (**self).rename(from, to)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        (**self).remove(path)
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        (**self).list(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        (**self).create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        (**self).sync_dir(dir)
    }

    fn stat(&self, path: &Path) -> Result<Metadata> {
        (**self).stat(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        (**self).truncate(path, len)
    }

    fn lock(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        (**self).lock(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wrappers_compose_over_a_shared_dyn_fs() {
        let mem = MemFs::new();
        let shared: Arc<dyn Fs> = Arc::new(mem.clone());
        let errors = ErrorFs::new(shared);
        let injector = errors.injector().clone();
        let latency = LatencyFs::new(errors);
        let control = latency.control().clone();
        let fs = HealthFs::new(
            latency,
            HealthConfig::new().threshold(Duration::from_secs(60)),
        );

        fs.create_dir_all(Path::new("/wal")).unwrap();
        let mut f = fs.create(Path::new("/wal/a.log")).unwrap();
        f.write(b"abc").unwrap();
        f.sync_data().unwrap();

        let rule = injector.add(Rule::new(OpFilter::ops([Op::Write]), Fault::NoSpace));
        assert!(f.write(b"d").unwrap_err().is_no_space());
        assert_eq!(injector.remove(rule), Some(1));

        let stall = control.stall(OpFilter::ops([Op::Sync]));
        let syncer = std::thread::spawn(move || f.sync_data());
        assert!(control.wait_until_blocked(1, Duration::from_secs(20)));
        assert_eq!(
            fs.running_ops()[0].op,
            Op::Sync,
            "the health wrapper sees the stall"
        );
        stall.release();
        syncer.join().unwrap().unwrap();
        assert_eq!(
            mem.read_durable_file(Path::new("/wal/a.log")).unwrap(),
            b"abc"
        );
    }
}
