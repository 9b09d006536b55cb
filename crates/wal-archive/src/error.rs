//! The error type of the archive.

use std::io;
use std::path::PathBuf;

use wal_manager::LogNum;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the archive. Every variant names what it is about: the URL,
/// the bucket, the credential, the log, the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The archive's URL (or endpoint) cannot be used.
    #[error("archive.url = \"{url}\": {reason}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `s3://` archive without credentials in the environment.
    #[error(
        "no credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)"
    )]
    NoCredentials {
        /// The archive.
        url: String,
    },
    /// The store refused the credentials (an unknown access key, a wrong
    /// secret, or a key without the rights the archive needs).
    #[error(
        "{endpoint} refused the credentials of access key id {access_key_id} for {url}: {code} (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    Credentials {
        /// The archive.
        url: String,
        /// Where the request went.
        endpoint: String,
        /// The access key id used (never the secret).
        access_key_id: String,
        /// The store's error code (`InvalidAccessKeyId`,
        /// `SignatureDoesNotMatch`, `AccessDenied`, ...).
        code: String,
    },
    /// The bucket of an `s3://` archive does not exist.
    #[error("bucket {bucket} does not exist at {endpoint} (archive.url = \"{url}\")")]
    NoSuchBucket {
        /// The archive.
        url: String,
        /// The bucket.
        bucket: String,
        /// Where the request went.
        endpoint: String,
    },
    /// The directory of a `file://` archive does not exist.
    #[error("archive directory {} does not exist (archive.url = \"{url}\")", dir.display())]
    NoSuchDirectory {
        /// The archive.
        url: String,
        /// The directory.
        dir: PathBuf,
    },
    /// Any other failure of a request to the store (the server is down or
    /// unreachable, a timeout, an unexpected answer).
    #[error("{op} {object}: {source}")]
    Store {
        /// What was being done: `list`, `upload`, `download`.
        op: &'static str,
        /// The object's (or the archive's) URL.
        object: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// An archived log fails its checks: its manifest or its data object is
    /// damaged, missing, or disagrees with the other.
    #[error("archived log {log} ({object}) is damaged: {reason}")]
    Corrupt {
        /// The log.
        log: LogNum,
        /// The object at fault.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// The archive holds a log of this number with other records than the
    /// local log: another WAL archives to the same place.
    #[error(
        "log {log}: the archive at {url} holds a log {log} with other records ({reason}): is another WAL archiving to the same place? The local log is kept"
    )]
    Conflict {
        /// The log.
        log: LogNum,
        /// The archive.
        url: String,
        /// How they differ.
        reason: String,
    },
    /// The archive mixes logs of both sequencings, which no directory can
    /// be opened with.
    #[error(
        "archive {url} holds logs sequenced \"{first}\" (log {first_log}) and \"{second}\" (log {second_log}): a restored directory must be read one way"
    )]
    MixedSequencing {
        /// The archive.
        url: String,
        /// The first sequencing met.
        first: &'static str,
        /// A log sequenced that way.
        first_log: LogNum,
        /// The other one.
        second: &'static str,
        /// A log sequenced that way.
        second_log: LogNum,
    },
    /// A restore cannot write into this directory.
    #[error("cannot restore into {}: {reason}", dir.display())]
    RestoreTarget {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// A local file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A log could not be read or re-encoded through the manager.
    #[error(transparent)]
    Manager(#[from] wal_manager::Error),
    /// The record layer failed while encoding a log.
    #[error("encoding log {log}: {source}")]
    Encode {
        /// The log.
        log: LogNum,
        /// Why.
        #[source]
        source: wal_record::Error,
    },
    /// The archive's runtime or thread could not be started.
    #[error("cannot start the archive's {what}: {source}")]
    Start {
        /// `runtime` or `thread`.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The archive is shutting down; the operation was abandoned.
    #[error("the archive is closing")]
    Cancelled,
}

impl Error {
    /// Whether this is damage in the archive (a corrupt or missing object).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::MixedSequencing { .. })
    }

    /// Whether this is a configuration error that no retry fixes: a bad
    /// URL, missing or refused credentials, a missing bucket or directory.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Error::BadUrl { .. }
                | Error::NoCredentials { .. }
                | Error::Credentials { .. }
                | Error::NoSuchBucket { .. }
                | Error::NoSuchDirectory { .. }
        )
    }
}
