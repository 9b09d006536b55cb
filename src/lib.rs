//! `failwal`: a write-ahead log for storage engines that keeps committing when
//! its disk stalls.
//!
//! This facade re-exports the workspace's crates so that an application can
//! depend on one package. See `README.md` for the crate map and `DESIGN.md` for
//! the on-disk format and the failover rules.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use wal_fs as fs;
pub use wal_record as record;
