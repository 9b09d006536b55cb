//! What the archive's suites share: writing logs through a manager with an
//! archiver attached, reading every record back, and the S3 server the
//! test command starts.
#![allow(dead_code)] // each suite uses a part

pub(crate) mod proxy;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wal_archive::{Access, Archiver, ArchiverOptions, Store, restore};
use wal_manager::{ArchiveConfig, Config, Env, LogArchive, LogNum, Manager};

/// Long enough for any upload here; a test that waits this long failed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One record as read back: log, LSN (or batch sequence number), system,
/// payload.
pub(crate) type Rec = (u64, u64, bool, Vec<u8>);

/// Options with a short retry interval, so that a test does not wait long
/// for the retry after a failure clears.
pub(crate) fn fast_retries() -> ArchiverOptions {
    ArchiverOptions {
        retry_interval_max: Duration::from_millis(300),
        ..ArchiverOptions::default()
    }
}

/// An archiver for `archive` with short retries.
pub(crate) fn archiver(archive: &ArchiveConfig) -> Arc<Archiver> {
    Archiver::start_with(archive, fast_retries()).unwrap()
}

/// The real filesystem with `archiver` attached.
pub(crate) fn env(archiver: &Arc<Archiver>) -> Env {
    Env::with_fs(Arc::new(wal_fs::OsFs::new()))
        .with_archive(Arc::clone(archiver) as Arc<dyn LogArchive>)
}

/// A payload of `len` bytes that differs for every `(log, i)`.
pub(crate) fn payload(log: u64, i: u64, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len)
        .map(|k| (k as u64).wrapping_mul(31).wrapping_add(log * 7 + i) as u8)
        .collect();
    let tag = (log << 32 | i).to_le_bytes();
    let n = tag.len().min(len);
    p[..n].copy_from_slice(&tag[..n]);
    p
}

/// Writes logs `first..first + logs` through `m`, `per_log` records each,
/// of sizes cycling through small, block-crossing and multi-block ones;
/// on a failover manager, forces a switch in the middle of every log.
pub(crate) fn write_logs(m: &Manager, first: u64, logs: u64, per_log: u64) {
    const SIZES: [usize; 5] = [1, 100, 4000, 40_000, 70_000];
    for log in first..first + logs {
        let w = m.create(LogNum(log)).unwrap();
        for i in 0..per_log {
            if i == per_log / 2 {
                if let Manager::Failover(f) = m {
                    f.force_switch().unwrap();
                }
            }
            w.append_sync(&payload(log, i, SIZES[(i as usize) % SIZES.len()]))
                .unwrap();
        }
        w.close().unwrap();
    }
}

/// Every record of every log `m` lists, in order.
pub(crate) fn records_of(m: &Manager) -> Vec<Rec> {
    let mut out = Vec::new();
    for log in m.list() {
        let mut r = m.open_reader(log.num).unwrap();
        while let Some(rec) = r.next().unwrap() {
            out.push((log.num.0, rec.lsn.0, rec.system, rec.payload.to_vec()));
        }
    }
    out
}

/// Restores `archive` into `to` and reads every record back through a
/// standalone manager opened there with `sequencing`.
pub(crate) fn restore_and_read(archive: &ArchiveConfig, to: &Path, config: &Config) -> Vec<Rec> {
    let store = Store::open(archive, Access::Read).unwrap();
    restore(&store, to, None, &mut |_| {}).unwrap();
    read_dir(to, config)
}

/// Every record of the WAL in `dir`, read through a standalone manager.
pub(crate) fn read_dir(dir: &Path, config: &Config) -> Vec<Rec> {
    let mut restored = Config::standalone(dir);
    restored.log = config.log.clone();
    let m = Manager::open(&restored).unwrap();
    let records = records_of(&m);
    m.close().unwrap();
    records
}

/// A `file://` archive in `dir`.
pub(crate) fn file_archive(dir: &Path) -> ArchiveConfig {
    ArchiveConfig::new(format!("file://{}", dir.display()))
}

/// The S3 server the test command started (`scripts/s3-server.sh`), as
/// an archive config under a prefix of its own; `None` (after saying so)
/// when there is none and `WAL_ARCHIVE_REQUIRE_S3` is unset. With it set
/// (as `.ci/run` does), a missing server fails the test.
pub(crate) fn s3_archive(test: &str) -> Option<ArchiveConfig> {
    let endpoint = std::env::var("WAL_ARCHIVE_S3_ENDPOINT").ok();
    let bucket = std::env::var("WAL_ARCHIVE_S3_BUCKET").ok();
    let (Some(endpoint), Some(bucket)) = (endpoint, bucket) else {
        assert!(
            std::env::var_os("WAL_ARCHIVE_REQUIRE_S3").is_none(),
            "WAL_ARCHIVE_REQUIRE_S3 is set but WAL_ARCHIVE_S3_ENDPOINT/WAL_ARCHIVE_S3_BUCKET are not: \
             start the server with `scripts/s3-server.sh start` (scripts/test.sh does)"
        );
        eprintln!(
            "SKIPPED {test}: no S3 server (WAL_ARCHIVE_S3_ENDPOINT and WAL_ARCHIVE_S3_BUCKET unset; scripts/test.sh starts one)"
        );
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut config = ArchiveConfig::new(format!(
        "s3://{bucket}/{test}-{}-{nanos}",
        std::process::id()
    ));
    config.endpoint = Some(endpoint);
    config.region = Some("us-east-1".into());
    Some(config)
}
