//! The error type of the record layer.

use std::fmt;
use std::io;
use std::sync::Arc;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The file operation an I/O error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoOp {
    /// Writing buffered chunks to the file.
    Write,
    /// Syncing the file.
    Sync,
    /// Reading the file.
    Read,
    /// Closing the file.
    Close,
    /// Starting the flush thread.
    Spawn,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOp::Write => "write",
            IoOp::Sync => "sync",
            IoOp::Read => "read",
            IoOp::Close => "close",
            IoOp::Spawn => "start flush thread",
        })
    }
}

/// What is wrong with the first bad chunk of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The file ends inside a record (after some of its chunks, or inside a
    /// chunk header).
    UnexpectedEof,
    /// An all-zero header where a chunk should start, with room for a full
    /// header in the block (preallocated or never-written space).
    Zeroed,
    /// Block-tail padding that is not all zeros.
    NonZeroPadding,
    /// A type byte outside 1..=12 (the value found).
    BadType(u8),
    /// The header of the chunk's type does not fit in the rest of the block.
    HeaderTruncated,
    /// The chunk belongs to another log: stale bytes of a recycled file.
    WrongLogNumber {
        /// The log number the reader expects (low 32 bits).
        expected: u32,
        /// The log number in the chunk.
        found: u32,
    },
    /// The chunk's length runs past the end of its block (or of the file).
    LengthPastBlock {
        /// The length field.
        len: u16,
    },
    /// The stored CRC does not match the chunk.
    Checksum {
        /// The masked CRC stored in the header.
        stored: u32,
        /// The masked CRC computed over the chunk.
        computed: u32,
    },
    /// A chunk in the wrong place: a middle or last chunk where a record
    /// starts, or a full or first chunk inside a record.
    UnexpectedPosition,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::UnexpectedEof => f.write_str("file ends inside a record"),
            Fault::Zeroed => f.write_str("zeroed chunk header"),
            Fault::NonZeroPadding => f.write_str("non-zero bytes in block padding"),
            Fault::BadType(t) => write!(f, "invalid chunk type {t}"),
            Fault::HeaderTruncated => f.write_str("chunk header does not fit in its block"),
            Fault::WrongLogNumber { expected, found } => {
                write!(
                    f,
                    "chunk of log {found} in log {expected} (stale recycled bytes)"
                )
            }
            Fault::LengthPastBlock { len } => {
                write!(f, "chunk length {len} runs past the end of its block")
            }
            Fault::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            Fault::UnexpectedPosition => f.write_str("chunk out of place in its record"),
        }
    }
}

/// The later chunk that proves a bad chunk had been synced, which turns a
/// torn tail into corruption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Proof {
    /// File offset of the proving wal-sync chunk.
    pub chunk_offset: u64,
    /// The synced offset it carries (greater than the bad chunk's offset).
    pub synced_offset: u64,
}

/// An error from the record layer.
///
/// Writer errors are *sticky*: once a write or sync fails, the writer returns
/// a clone of that first error to every later caller. Reader errors are
/// classified with [`Error::is_torn_tail`] and [`Error::is_corruption`].
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    #[error("{op} failed: {source}")]
    Io {
        /// The operation.
        op: IoOp,
        /// The error, shared by every caller the sticky error is returned to.
        #[source]
        source: Arc<io::Error>,
    },
    /// The log ends with bytes that are not a valid record and nothing proves
    /// they had been synced: the normal state after a crash. Everything before
    /// `offset` is intact.
    #[error("torn tail at offset {offset}: {fault} (chunk at {chunk_offset})")]
    TornTail {
        /// Offset of the first byte not part of a valid record: where the log
        /// can be truncated.
        offset: u64,
        /// Offset of the first bad chunk.
        chunk_offset: u64,
        /// What is wrong with it.
        fault: Fault,
    },
    /// A bad chunk that a later chunk proves had been synced: real damage.
    #[error(
        "corruption at offset {offset}: {fault} (chunk at {chunk_offset}; the chunk at {} promises the file was synced to {})",
        proof.chunk_offset,
        proof.synced_offset
    )]
    Corruption {
        /// Offset of the record containing the bad chunk.
        offset: u64,
        /// Offset of the bad chunk.
        chunk_offset: u64,
        /// What is wrong with it.
        fault: Fault,
        /// The chunk that proves it.
        proof: Proof,
    },
    /// A record is larger than the configured maximum.
    #[error("record of {len} bytes at offset {offset} exceeds the maximum of {max}")]
    RecordTooLarge {
        /// Offset of the record (0 for a record rejected before writing).
        offset: u64,
        /// Its length so far.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The writer was closed.
    #[error("log writer is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(op: IoOp, source: io::Error) -> Error {
        Error::Io {
            op,
            source: Arc::new(source),
        }
    }

    /// Whether this is a torn tail: tolerable at the end of a log.
    pub fn is_torn_tail(&self) -> bool {
        matches!(self, Error::TornTail { .. })
    }

    /// Whether this is proven corruption.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// The file offset a reader error refers to (where the valid prefix ends).
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::TornTail { offset, .. }
            | Error::Corruption { offset, .. }
            | Error::RecordTooLarge { offset, .. } => Some(*offset),
            Error::Io { .. } | Error::Closed => None,
        }
    }

    /// The fault of a torn tail or a corruption.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Error::TornTail { fault, .. } | Error::Corruption { fault, .. } => Some(*fault),
            _ => None,
        }
    }

    /// The I/O error kind of an [`Error::Io`].
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}
