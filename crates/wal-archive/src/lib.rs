//! The archive of failwal: every closed log uploaded to object storage
//! (S3, an S3-compatible server, or a local directory, through the
//! `object_store` crate), and restored from there into a directory the
//! managers open.
//!
//! * [`Archiver`]: attached to a manager ([`wal_manager::Env::with_archive`]),
//!   uploads each log once it is closed, on a thread and a runtime of its
//!   own (appends never wait for it), and tells the manager when a log is
//!   archived; until then the manager deletes nothing of it
//!   ([`wal_manager::archive`]).
//! * [`Store`]: the archive's objects: list, get, put, with the errors that
//!   matter (refused credentials, a missing bucket) named.
//! * [`manifest`]: what is stored for one log, and when it counts as
//!   archived.
//! * [`list`], [`verify_log`], [`restore`], [`for_each_record`]: reading
//!   an archive back (the `wal archive` commands and `wal dump --archive`).
//!
//! A failover log is archived as one logical log: its segments stitched
//! and deduplicated by the manager's reader, re-encoded as one segment-0
//! file, so the archive does not depend on which disk held which segment.
//!
//! ```
//! use std::sync::Arc;
//! use wal_archive::{Access, Archiver, Store, list, restore};
//! use wal_manager::{ArchiveConfig, Config, Env, LogNum, Manager};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = std::env::temp_dir().join(format!("wal-archive-doc-{}", std::process::id()));
//! let mut config = Config::standalone(tmp.join("wal"));
//! config.archive = Some(ArchiveConfig::new(format!("file://{}", tmp.join("archive").display())));
//! let archiver = Archiver::start(config.archive.as_ref().unwrap())?;
//! let manager = Manager::open_with(&config, Env::os().with_archive(archiver.clone()))?;
//! let writer = manager.create(LogNum(1))?;
//! writer.append_sync(b"put k v")?;
//! writer.close()?; // uploaded in the background from here
//! assert!(archiver.wait_idle(std::time::Duration::from_secs(10)));
//! manager.close()?;
//!
//! let store = Store::open(config.archive.as_ref().unwrap(), Access::Read)?;
//! assert_eq!(list(&store)?.logs.len(), 1);
//! let report = restore(&store, &tmp.join("restored"), None, &mut |_| {})?;
//! assert_eq!(report.logs, vec![(LogNum(1), 1)]);
//! let restored = Manager::open(&Config::standalone(tmp.join("restored")))?;
//! let mut reader = restored.open_reader(LogNum(1))?;
//! assert_eq!(reader.next()?.unwrap().payload, b"put k v");
//! # restored.close()?;
//! # drop(reader);
//! # std::fs::remove_dir_all(&tmp).ok();
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod archiver;
mod encode;
mod error;
pub mod manifest;
mod read;
mod store;

pub use archiver::{Archiver, ArchiverOptions, ArchiverStatus};
pub use encode::ArchivedRecord;
pub use error::{Error, Result};
pub use read::{
    ListedLog, Listing, RestoreProgress, RestoreReport, fetch, for_each_record, list, restore,
    sequencing_of, verify_log,
};
pub use store::{Access, ObjectInfo, S3Credentials, Store};
