//! What a manager runs on: the filesystems of its directories, its clock,
//! and how failover is driven.

use std::sync::Arc;

use wal_fs::{Fs, OsFs};

use crate::archive::LogArchive;
use crate::clock::{Clock, SystemClock};

/// How the failover manager's monitor and prober run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Driver {
    /// Background threads tick on real time (production).
    #[default]
    Background,
    /// No threads: the caller drives the monitor and the prober
    /// ([`crate::FailoverManager::tick_monitor`], [`crate::FailoverManager::start_probe`]),
    /// usually with a [`crate::ManualClock`]. For deterministic tests.
    Manual,
}

/// What a manager runs on: the filesystems of its directories, its clock,
/// and how failover is driven.
#[derive(Clone, Debug)]
pub struct Env {
    /// The primary directory's filesystem.
    pub primary_fs: Arc<dyn Fs>,
    /// The secondary directory's filesystem.
    pub secondary_fs: Arc<dyn Fs>,
    /// The clock the failover logic measures latency with.
    pub clock: Arc<dyn Clock>,
    /// How the monitor and the prober run.
    pub driver: Driver,
    /// The archive that uploads closed logs, when `[archive]` is
    /// configured (the `wal-archive` crate's archiver; tests use their
    /// own). A manager with `[archive]` configured and no archive here
    /// deletes no log: they wait for a manager opened with one.
    pub archive: Option<Arc<dyn LogArchive>>,
}

impl Env {
    /// Real directories, the real clock, background threads. Every file
    /// operation runs under a disk-health check ([`wal_fs::HealthFs`]) that
    /// reports, as a `tracing` warning, any operation still running after
    /// 5 seconds (Pebble's default), while it runs.
    pub fn os() -> Env {
        let fs = wal_fs::HealthFs::new(OsFs::new(), wal_fs::HealthConfig::new());
        Env::with_fs(Arc::new(fs))
    }

    /// Both directories on `fs`, the real clock, background threads.
    pub fn with_fs(fs: Arc<dyn Fs>) -> Env {
        Env {
            primary_fs: Arc::clone(&fs),
            secondary_fs: fs,
            clock: Arc::new(SystemClock::new()),
            driver: Driver::Background,
            archive: None,
        }
    }

    /// This environment with `archive` attached.
    #[must_use]
    pub fn with_archive(self, archive: Arc<dyn LogArchive>) -> Env {
        Env {
            archive: Some(archive),
            ..self
        }
    }
}
