//! The log managers of `failwal`.
//!
//! * [`Manager`]: opens a standalone or a failover manager from a
//!   [`Config`]; creates, lists, reads and retires logs.
//! * [`Writer`]: appends records to one log; every record gets an [`Lsn`];
//!   appends can wait for durability (group commit).
//! * [`LogicalReader`]: reads one log back, stitched from its segments in
//!   both directories, each record exactly once, in LSN order.
//! * [`Wal`]: the log most users want: open it, append, read by LSN,
//!   truncate, checkpoint, replay; it rotates logs by itself.
//! * [`LogArchive`]: the hook an archive of closed logs (the `wal-archive`
//!   crate) plugs into: it hears of every closed log, and no log is
//!   deleted before it says the log is archived.
//! * [`FailoverManager`]: watches the latency of every write and sync on the
//!   current directory and moves the log to the other directory when it is
//!   slow or failing (rules: [`failover::monitor`]).
//!
//! Time in the failover logic comes from an injected [`Clock`]; tests use a
//! [`ManualClock`] and [`Driver::Manual`] to step the monitor and the prober
//! deterministically.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod archive;
mod clock;
mod config;
mod core;
mod env;
mod envelope;
mod error;
pub mod failover;
pub mod layout;
mod log;
mod manager;
mod meta;
pub mod metrics;
mod naming;
pub mod reader;
mod recorder;
mod recycler;
pub mod repair;
mod standalone;
mod stats;
mod types;
mod wal;

pub use archive::{ArchiveHandle, LogArchive, PendingLog};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    ArchiveConfig, Config, DirConfig, FailoverConfig, FormatName, HumanDuration, HumanSize,
    LogConfig, SyncPolicy, WalConfig, WriterConfig,
};
pub use env::{Driver, Env};
pub use envelope::{BATCH_HEADER_SIZE, BatchHeader, Sequencing, decode_batch_header};
pub use error::{Error, Result};
pub use failover::FailoverManager;
pub use log::{DeletableFile, LogicalLog, Segment};
pub use manager::{Manager, Writer};
pub use reader::{LogEnd, LogRecord, LogicalReader};
pub use repair::{RepairAction, RepairReport, repair};
pub use standalone::{StandaloneManager, StandaloneWriter};
pub use stats::{ArchiveStats, FailoverStats, Stats};
pub use types::{DirId, LogNum, Lsn, SegmentIndex};
pub use wal::{Checkpoint, Direction, ReplayError, Wal, WalIter, WalRecord};
