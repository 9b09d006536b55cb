//! What failwal's tests share (not published): data-driven scripts, the
//! failover test harness, durability checks of crash images, the fuzz
//! targets' checks, record and segment builders, and a seeded random
//! number generator. The crates' own test suites, the root package's
//! cross-crate suites and the fuzz targets all depend on it.
#![allow(dead_code, unreachable_pub, missing_docs)]
// A script interpreter is one long match over commands, and test scripts
// speak in signed offsets; these lints would only push the code around.
#![allow(
    clippy::too_many_lines,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::unused_self,
    clippy::missing_panics_doc,
    clippy::missing_errors_doc,
    clippy::must_use_candidate,
    clippy::new_without_default
)]

pub mod datadriven;
pub mod durability;
pub mod failover;
pub mod fuzzing;
pub mod records;
mod rng;
pub mod segments;

pub use rng::SeededRng;

use std::sync::Arc;

use wal_fs::MemFs;
use wal_manager::{Config, Driver, Env, HumanSize, ManualClock, SyncPolicy};

/// Both directories on `mem`, a manual clock, no background threads: a
/// manager that does nothing unless the test says so.
pub fn mem_env(mem: &MemFs) -> Env {
    Env {
        primary_fs: Arc::new(mem.clone()),
        secondary_fs: Arc::new(mem.clone()),
        clock: Arc::new(ManualClock::new()),
        driver: Driver::Manual,
        archive: None,
    }
}

/// A `Wal` configuration on `/p` (and `/s` for failover) whose logs rotate
/// every 64 KiB, appending under `sync`.
pub fn small_log_config(failover: bool, sync: SyncPolicy) -> Config {
    let mut c = if failover {
        Config::failover("/p", "/s")
    } else {
        Config::standalone("/p")
    };
    c.wal.log_size_max = HumanSize(64 << 10);
    c.wal.sync = sync;
    c
}
