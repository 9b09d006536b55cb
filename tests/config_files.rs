//! The example configurations under `config/` load, validate, and spell out
//! every default.

use std::path::Path;

use wal_manager::{Config, FailoverConfig, WalConfig, WriterConfig};

fn load(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    Config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_failover_example_selects_failover_and_states_every_default() {
    let c = load("failover.toml");
    assert!(c.is_failover());
    assert_eq!(c.failover, FailoverConfig::default());
    assert_eq!(c.writer, WriterConfig::default());
    assert_eq!(c.wal, WalConfig::default());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        c.primary.dir.starts_with(root.join("config")),
        "relative to the file"
    );
    assert!(c.primary.dir.ends_with("wal-data/primary"));
}

#[test]
fn the_standalone_example_is_standalone_and_states_every_default() {
    let c = load("standalone.toml");
    assert!(!c.is_failover());
    assert_eq!(c.writer, WriterConfig::default());
    assert_eq!(c.wal, WalConfig::default());
}

#[test]
fn every_failover_key_appears_in_the_example() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/failover.toml"))
            .unwrap();
    for key in [
        "enabled",
        "unhealthy_op_latency_threshold",
        "unhealthy_sampling_interval",
        "healthy_probe_latency_threshold",
        "healthy_interval",
        "probe_interval",
        "probe_size",
        "elevated_write_stall_threshold_lag",
        "segments_per_log_max",
        "queue_bytes_max",
        "standby",
        "hedge",
        "hedge_latency_min",
        "format",
        "min_sync_interval",
        "record_size_max",
        "pending_bytes_max",
        "recycle_logs_max",
        "accept_new_identity",
        "log_size_max",
        "sync",
        "sync_interval",
        "sync_every_records",
        "retention_logs_max",
        "retention_bytes_max",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} ="))),
            "config/failover.toml lacks {key}"
        );
    }
}

#[test]
fn the_archive_example_archives_and_names_every_archive_key() {
    let c = load("archive.toml");
    let archive = c.archive.expect("an [archive] table");
    assert_eq!(archive.url, "s3://failwal/bench");
    assert_eq!(
        archive.backlog_bytes_max,
        wal_manager::ArchiveConfig::new("s3://x").backlog_bytes_max,
        "the default"
    );
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/archive.toml"))
            .unwrap();
    // Keys whose default comes from the environment are shown commented out.
    for key in ["url", "endpoint", "region", "backlog_bytes_max"] {
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))),
            "config/archive.toml lacks {key}"
        );
    }
}

#[test]
fn a_missing_file_is_named_in_the_error() {
    let e = Config::load(Path::new("/nonexistent/wal.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/wal.toml"), "{e}");
}
