//! The error type of the managers.

use std::io;
use std::path::PathBuf;

use crate::types::{LogNum, Lsn, SegmentIndex};

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from a manager, a writer or a reader. Every variant names what it
/// is about: a file, a key, a log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration could not be read.
    #[error("cannot read configuration {}: {source}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The configuration is invalid.
    #[error("invalid configuration {origin}: {message}")]
    Config {
        /// The file (or another description of where the text came from).
        origin: String,
        /// What is wrong, naming the key and the value.
        message: String,
    },
    /// A filesystem operation failed.
    #[error(transparent)]
    Fs(#[from] wal_fs::Error),
    /// A segment could not be written or read.
    #[error("log {log} segment {}: {source}", path.display())]
    Segment {
        /// The log.
        log: LogNum,
        /// The segment's file.
        path: PathBuf,
        /// The record-layer error (sticky I/O error, torn tail, corruption).
        #[source]
        source: wal_record::Error,
    },
    /// A record is too short to hold the 8-byte LSN prefix.
    #[error("log {log} segment {}: record at offset {offset} has {len} bytes, too short for its LSN", path.display())]
    BadEnvelope {
        /// The log.
        log: LogNum,
        /// The segment's file.
        path: PathBuf,
        /// Offset of the record.
        offset: u64,
        /// Its length.
        len: usize,
    },
    /// In `pebble-batch` mode, a record too short for a batch header.
    #[error("log {log} segment {}: record at offset {offset} has {len} bytes, too short for a Pebble batch header (12 bytes)", path.display())]
    BadBatch {
        /// The log.
        log: LogNum,
        /// The segment's file.
        path: PathBuf,
        /// Offset of the record.
        offset: u64,
        /// Its length.
        len: usize,
    },
    /// A log that is not the newest ends with a torn tail: it was closed
    /// (a newer log exists), so its end had been made durable and is now
    /// lost.
    #[error("log {log} ends cut short at offset {offset} of {} although a newer log exists: it was closed, so its end had been durable (strict tail): {source}", path.display())]
    TornOlderLog {
        /// The log.
        log: LogNum,
        /// Its last segment.
        path: PathBuf,
        /// Where its valid records end.
        offset: u64,
        /// What the record reader found there.
        #[source]
        source: wal_record::Error,
    },
    /// Records are missing between two segments of a log, or inside one:
    /// durable records were lost to damage in a segment that is not the last.
    #[error("log {log}: records after LSN {after} are missing; the next one readable is {found} in {}", path.display())]
    MissingRecords {
        /// The log.
        log: LogNum,
        /// The last LSN read before the gap.
        after: Lsn,
        /// The first LSN read after it.
        found: Lsn,
        /// The segment holding `found`.
        path: PathBuf,
    },
    /// The same segment index exists in both directories.
    #[error("log {log} segment {index} exists in both directories: {} and {}", primary.display(), secondary.display())]
    DuplicateSegment {
        /// The log.
        log: LogNum,
        /// The index.
        index: SegmentIndex,
        /// The file in the primary.
        primary: PathBuf,
        /// The file in the secondary.
        secondary: PathBuf,
    },
    /// A log's segments are not numbered 0, 1, 2, ... without holes.
    #[error("log {log} is missing segment {missing} (have {})", have.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    MissingSegment {
        /// The log.
        log: LogNum,
        /// The first missing index.
        missing: SegmentIndex,
        /// The indexes present.
        have: Vec<SegmentIndex>,
    },
    /// `create` was called while a writer is still open.
    #[error("log {open} is still open: close its writer before creating log {requested}")]
    WriterOpen {
        /// The open log.
        open: LogNum,
        /// The log asked for.
        requested: LogNum,
    },
    /// `create` was called with a log number not above every existing log.
    #[error(
        "cannot create log {requested}: log {existing} already exists and log numbers must increase"
    )]
    LogNumNotIncreasing {
        /// The log asked for.
        requested: LogNum,
        /// The highest existing log.
        existing: LogNum,
    },
    /// `create` was called with a log number that an earlier `obsolete`
    /// made obsolete for good: its file would be deleted at the next open.
    #[error(
        "cannot create log {requested}: every log below {obsolete_below} is obsolete (WAL-STATE), so a log with this number would be deleted at the next open; use log {obsolete_below} or above"
    )]
    LogNumObsolete {
        /// The log asked for.
        requested: LogNum,
        /// The durable watermark: every log below it is obsolete.
        obsolete_below: LogNum,
    },
    /// `close` was called on a manager whose writer is still open.
    #[error("cannot close the manager: the writer of log {open} is still open; close it first")]
    CloseWithWriterOpen {
        /// The open log.
        open: LogNum,
    },
    /// A record longer than the configured limit was appended.
    #[error("record of {len} bytes exceeds writer.record_size_max = {max} bytes")]
    RecordTooLarge {
        /// The record's length.
        len: u64,
        /// `writer.record_size_max`.
        max: u64,
    },
    /// In `pebble-batch` mode, a record too short to be a Pebble batch.
    #[error(
        "record of {len} bytes is not a Pebble batch: log.sequencing = \"pebble-batch\" needs at least the 12-byte batch header (sequence number, count)"
    )]
    NotABatch {
        /// The record's length.
        len: usize,
    },
    /// An operation that needs the LSN envelope, asked of a WAL in
    /// `pebble-batch` mode.
    #[error(
        "{what} need log.sequencing = \"lsn\": in \"pebble-batch\" mode records are the engine's batches, with no LSN of failwal's"
    )]
    NeedsLsnSequencing {
        /// What was asked.
        what: &'static str,
    },
    /// A directory given as a WAL directory holds other things and no WAL
    /// file.
    #[error("{role} directory {} is not a WAL directory: its {entries} entries include no segment file (NNNNNN.log) and no WAL metadata file", dir.display())]
    NotAWalDirectory {
        /// Which directory it was given as.
        role: crate::types::DirId,
        /// The directory.
        dir: PathBuf,
        /// How many entries it has.
        entries: usize,
    },
    /// A file named like a segment does not start like one: its first chunk
    /// has a type no log writer emits (and no crash can leave there).
    #[error("{} is named like a log segment but is not one: its first chunk has type {chunk_type}, which no log writer emits", path.display())]
    NotALogFile {
        /// The file.
        path: PathBuf,
        /// The type byte found at offset 6.
        chunk_type: u8,
    },
    /// A directory's role files say it belongs to a failover pair in another
    /// role than the configuration gives it, or to a pair the configuration
    /// does not describe.
    #[error("{}: {reason}", dir.display())]
    WrongRole {
        /// The directory.
        dir: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A thread the manager needs could not be started.
    #[error("cannot start thread {thread}: {source}")]
    Spawn {
        /// The thread's name.
        thread: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No log with this number.
    #[error("no log {0}")]
    NoSuchLog(LogNum),
    /// An LSN outside the records the WAL holds.
    #[error("LSN {lsn} is out of range: {}", match bounds {
        Some((first, last)) => format!("the log holds {first}..={last}"),
        None => "the log is empty".to_owned(),
    })]
    LsnOutOfRange {
        /// The LSN asked for.
        lsn: Lsn,
        /// The first and last LSN held, if any.
        bounds: Option<(Lsn, Lsn)>,
    },
    /// An argument with a value that cannot work.
    #[error("{name} = {value}: must be {expected}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A system record may only start a log.
    #[error("log {0}: a system record can only be the first record of a log")]
    MarkerNotFirst(LogNum),
    /// A log has had as many segments as allowed.
    #[error("log {log}: exceeded switching limit of {max} segments")]
    SwitchingLimit {
        /// The log.
        log: LogNum,
        /// `failover.segments_per_log_max`.
        max: u32,
    },
    /// The secondary directory holds another manager's identity: the wrong
    /// disk is mounted there.
    #[error("secondary {} has identity {found} but the primary expects {expected}: the wrong disk may be mounted there", dir.display())]
    WrongSecondary {
        /// The secondary directory.
        dir: PathBuf,
        /// The identity found there.
        found: String,
        /// The identity the primary remembers.
        expected: String,
    },
    /// The secondary lost its identity file although the primary remembers
    /// one.
    #[error("secondary {} has no identity file but the primary expects {expected}: a wrong or empty disk may be mounted there (set secondary.accept_new_identity = true if the old secondary is gone for good)", dir.display())]
    MissingSecondaryIdentity {
        /// The secondary directory.
        dir: PathBuf,
        /// The identity the primary remembers.
        expected: String,
    },
    /// A small metadata file (identity, LSN floor) is damaged.
    #[error("{}: {reason}", path.display())]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The writer or manager was closed.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// Writes failed on the current directory and failover is disabled or
    /// impossible.
    #[error("log {log}: {reason}")]
    WriterFailed {
        /// The log.
        log: LogNum,
        /// What happened.
        reason: String,
    },
}

impl Error {
    /// Whether this is a torn tail at the end of a log (tolerable).
    pub fn is_torn_tail(&self) -> bool {
        matches!(self, Error::Segment { source, .. } if source.is_torn_tail())
    }

    /// Whether this is proven corruption of durable data (a bad chunk proven
    /// synced, or records missing between segments).
    pub fn is_corruption(&self) -> bool {
        match self {
            Error::Segment { source, .. } => source.is_corruption(),
            Error::MissingRecords { .. }
            | Error::BadEnvelope { .. }
            | Error::BadBatch { .. }
            | Error::TornOlderLog { .. } => true,
            _ => false,
        }
    }

    /// Whether the disk was full somewhere underneath.
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::Fs(e) => e.is_no_space(),
            Error::Segment { source, .. } => source.io_kind() == Some(io::ErrorKind::StorageFull),
            _ => false,
        }
    }
}
