//! The error type of the filesystem layer.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A filesystem operation, as named in errors, fault-injection rules and
/// latency reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Op {
    /// [`crate::Fs::create`].
    Create,
    /// [`crate::Fs::open`].
    Open,
    /// [`crate::Fs::reuse_for_write`].
    ReuseForWrite,
    /// [`crate::Fs::rename`].
    Rename,
    /// [`crate::Fs::remove`].
    Remove,
    /// [`crate::Fs::list`].
    List,
    /// [`crate::Fs::create_dir_all`].
    CreateDir,
    /// [`crate::Fs::sync_dir`].
    SyncDir,
    /// [`crate::Fs::stat`].
    Stat,
    /// [`crate::Fs::truncate`].
    Truncate,
    /// [`crate::Fs::lock`].
    Lock,
    /// [`crate::File::write`].
    Write,
    /// [`crate::File::read_at`].
    Read,
    /// [`crate::File::sync_data`].
    Sync,
    /// [`crate::File::size`].
    Size,
    /// [`crate::File::preallocate`].
    Preallocate,
    /// [`crate::File::prepare_ahead`] (where a fault layer tells it apart
    /// from the writes and the sync it is made of).
    PrepareAhead,
    /// [`crate::File::close`].
    Close,
}

impl Op {
    /// Every operation, for tables and exhaustive tests.
    pub const ALL: [Op; 18] = [
        Op::Create,
        Op::Open,
        Op::ReuseForWrite,
        Op::Rename,
        Op::Remove,
        Op::List,
        Op::CreateDir,
        Op::SyncDir,
        Op::Stat,
        Op::Truncate,
        Op::Lock,
        Op::Write,
        Op::Read,
        Op::Sync,
        Op::Size,
        Op::Preallocate,
        Op::PrepareAhead,
        Op::Close,
    ];

    /// The lowercase name used in messages (`"sync"`, `"create"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Open => "open",
            Op::ReuseForWrite => "reuse-for-write",
            Op::Rename => "rename",
            Op::Remove => "remove",
            Op::List => "list",
            Op::CreateDir => "create-dir",
            Op::SyncDir => "sync-dir",
            Op::Stat => "stat",
            Op::Truncate => "truncate",
            Op::Lock => "lock",
            Op::Write => "write",
            Op::Read => "read",
            Op::Sync => "sync",
            Op::Size => "size",
            Op::Preallocate => "preallocate",
            Op::PrepareAhead => "prepare-ahead",
            Op::Close => "close",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error from a filesystem operation. Every variant names the operation's
/// path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operation failed with an I/O error (real or injected).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation that failed.
        op: Op,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another WAL manager (in this or another process) holds the directory's
    /// lock.
    #[error("directory {} is locked by another WAL manager", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(op: Op, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The path the failed operation was applied to.
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. } | Error::Locked { path } => path,
        }
    }

    /// The failed operation ([`Op::Lock`] for [`Error::Locked`]).
    pub fn op(&self) -> Op {
        match self {
            Error::Io { op, .. } => *op,
            Error::Locked { .. } => Op::Lock,
        }
    }

    /// The I/O error kind (`WouldBlock` for [`Error::Locked`]).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Io { source, .. } => source.kind(),
            Error::Locked { .. } => io::ErrorKind::WouldBlock,
        }
    }

    /// Whether the path did not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == io::ErrorKind::NotFound
    }

    /// Whether the disk was full (`ENOSPC`).
    pub fn is_no_space(&self) -> bool {
        self.kind() == io::ErrorKind::StorageFull
    }

    /// Whether another WAL manager holds the directory's lock.
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Locked { .. })
    }
}
