//! `failwal`: a write-ahead log for storage engines that keeps committing when
//! its disk stalls.
//!
//! One dependency for an application: the types most users need are here at
//! the top ([`Wal`], [`Manager`], [`Config`], ...), and each of the
//! workspace's crates is re-exported whole: [`manager`] (the managers, the
//! `Wal`, the logical-log reader, configuration), [`record`] (the chunk
//! format, the log writer and reader) and [`fs`] (the filesystem traits,
//! `OsFs`, and the in-memory and fault-injecting filesystems for tests).
//! `README.md` has the crate map; `DESIGN.md` the on-disk format and the
//! failover rules.
//!
//! ```
//! use failwal::{Config, Wal};
//!
//! # fn main() -> Result<(), failwal::Error> {
//! let dir = std::env::temp_dir().join(format!("failwal-doc-{}", std::process::id()));
//! let wal = Wal::open(&Config::standalone(&dir))?;
//! let lsn = wal.append(b"put k v")?; // durable on return
//! assert_eq!(wal.read(lsn)?, b"put k v");
//! wal.close()?;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use wal_fs as fs;
pub use wal_manager as manager;
pub use wal_record as record;

pub use wal_manager::{
    Checkpoint, Config, Direction, Error, LogNum, Lsn, Manager, Result, SyncPolicy, Wal, Writer,
};
