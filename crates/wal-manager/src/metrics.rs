//! Metrics through the [`metrics`] crate facade.
//!
//! Nothing is recorded on the append path: [`publish`] reads a manager's
//! [`Stats`] (cumulative since it opened) and sets the figures below, usually
//! right before an exporter renders them (see `examples/metrics_exporter.rs`,
//! which serves them in Prometheus text format). Call [`describe`] once to
//! register help texts and units.
//!
//! | name | kind | unit | what |
//! |---|---|---|---|
//! | `wal_appends_total` | counter | records | records appended |
//! | `wal_append_bytes_total` | counter | bytes | payload bytes appended |
//! | `wal_written_bytes_total` | counter | bytes | bytes written to segment files (framing included) |
//! | `wal_writes_total` | counter | calls | `write` calls |
//! | `wal_fsyncs_total` | counter | calls | data syncs |
//! | `wal_fsync_latency_seconds` | summary | seconds | sync latency: `{quantile="0.5"\|"0.99"\|"0.999"\|"1"}`, `_sum`, `_count` |
//! | `wal_write_latency_seconds` | summary | seconds | `write` latency, likewise |
//! | `wal_sync_group_records` | summary | records | records made durable per sync (group commit), likewise |
//! | `wal_sync_waits_total{outcome}` | counter | waits | waits for durability that parked the thread at least once (`outcome="parked"`) |
//! | `wal_pending_bytes` | gauge | bytes | encoded bytes waiting for the flush thread |
//! | `wal_unsynced_bytes` | gauge | bytes | bytes appended but not yet durable |
//! | `wal_queue_records` | gauge | records | failover: records kept for replay until durable |
//! | `wal_queue_bytes` | gauge | bytes | failover: their bytes |
//! | `wal_replayed_records_total` | counter | records | failover: records replayed into a new segment after a switch |
//! | `wal_hedges_total` | counter | hedges | failover: hedges into the standby segment |
//! | `wal_standby_bytes_total` | counter | bytes | failover: record bytes hedges wrote into standby segments |
//! | `wal_stranded` | gauge | 0/1 | failover: 1 while appenders wait on a slow directory because the other one's probes fail |
//! | `wal_dir_switches_total` | counter | switches | failover: directory switches (failovers and failbacks) |
//! | `wal_dir_seconds_total{dir}` | counter | seconds | failover: time writing to `dir` = `primary` or `secondary` |
//! | `wal_current_dir{dir}` | gauge | 0/1 | failover: 1 for the directory written now |
//! | `wal_write_and_sync_latency_seconds` | summary | seconds | failover: append-to-acknowledgement latency of synced appends |
//! | `wal_probe_latency_seconds` | summary | seconds | failover: the prober's probes of the primary |
//! | `wal_live_logs` | gauge | logs | logs not yet obsolete |
//! | `wal_live_files` | gauge | files | their segment files |
//! | `wal_live_bytes` | gauge | bytes | their size |
//! | `wal_obsolete_files` | gauge | files | obsolete files kept for recycling |
//! | `wal_obsolete_bytes` | gauge | bytes | their size |
//! | `wal_next_lsn` | gauge | LSN | the next LSN to be assigned |
//! | `wal_archive_backlog_logs` | gauge | logs | archive: closed logs not yet archived, live or obsolete (0 without `[archive]`) |
//! | `wal_archive_backlog_bytes` | gauge | bytes | archive: their size |
//! | `wal_archive_awaiting_bytes` | gauge | bytes | archive: of those, obsolete logs' files kept only for the archive |
//! | `wal_archive_backlog_full` | gauge | 0/1 | archive: 1 while the backlog is over `archive.backlog_bytes_max` |
//!
//! Summaries are built from the project's log-linear histograms: each
//! quantile is an upper estimate within 12.5% of the truth.

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use wal_record::HistogramSnapshot;

use crate::stats::Stats;
use crate::types::DirId;

/// Every metric name, for exporters and tests.
pub const NAMES: &[&str] = &[
    "wal_appends_total",
    "wal_append_bytes_total",
    "wal_written_bytes_total",
    "wal_writes_total",
    "wal_fsyncs_total",
    "wal_fsync_latency_seconds",
    "wal_write_latency_seconds",
    "wal_sync_group_records",
    "wal_sync_waits_total",
    "wal_pending_bytes",
    "wal_unsynced_bytes",
    "wal_queue_records",
    "wal_queue_bytes",
    "wal_replayed_records_total",
    "wal_hedges_total",
    "wal_standby_bytes_total",
    "wal_stranded",
    "wal_dir_switches_total",
    "wal_dir_seconds_total",
    "wal_current_dir",
    "wal_write_and_sync_latency_seconds",
    "wal_probe_latency_seconds",
    "wal_live_logs",
    "wal_live_files",
    "wal_live_bytes",
    "wal_obsolete_files",
    "wal_obsolete_bytes",
    "wal_next_lsn",
    "wal_archive_backlog_logs",
    "wal_archive_backlog_bytes",
    "wal_archive_awaiting_bytes",
    "wal_archive_backlog_full",
];

const QUANTILES: [(&str, f64); 4] = [("0.5", 0.5), ("0.99", 0.99), ("0.999", 0.999), ("1", 1.0)];

/// Registers help texts and units with the installed recorder.
#[allow(clippy::too_many_lines)] // one `describe_*!` per metric, in the table's order
pub fn describe() {
    describe_counter!("wal_appends_total", Unit::Count, "Records appended.");
    describe_counter!(
        "wal_append_bytes_total",
        Unit::Bytes,
        "Payload bytes appended."
    );
    describe_counter!(
        "wal_written_bytes_total",
        Unit::Bytes,
        "Bytes written to segment files, framing included."
    );
    describe_counter!(
        "wal_writes_total",
        Unit::Count,
        "write calls made by the flush threads."
    );
    describe_counter!("wal_fsyncs_total", Unit::Count, "Data syncs.");
    describe_gauge!(
        "wal_fsync_latency_seconds",
        Unit::Seconds,
        "Sync latency quantiles."
    );
    describe_gauge!(
        "wal_write_latency_seconds",
        Unit::Seconds,
        "write latency quantiles."
    );
    describe_gauge!(
        "wal_sync_group_records",
        Unit::Count,
        "Records made durable per sync (group commit) quantiles."
    );
    describe_counter!(
        "wal_sync_waits_total",
        Unit::Count,
        "Waits for durability that parked the thread at least once."
    );
    describe_gauge!(
        "wal_pending_bytes",
        Unit::Bytes,
        "Encoded bytes waiting for the flush thread."
    );
    describe_gauge!(
        "wal_unsynced_bytes",
        Unit::Bytes,
        "Bytes appended but not yet durable."
    );
    describe_gauge!(
        "wal_queue_records",
        Unit::Count,
        "Failover: records kept for replay."
    );
    describe_gauge!(
        "wal_queue_bytes",
        Unit::Bytes,
        "Failover: bytes kept for replay."
    );
    describe_counter!(
        "wal_replayed_records_total",
        Unit::Count,
        "Failover: records replayed into a new segment after a switch."
    );
    describe_counter!(
        "wal_hedges_total",
        Unit::Count,
        "Failover: hedges into the standby segment."
    );
    describe_counter!(
        "wal_standby_bytes_total",
        Unit::Bytes,
        "Failover: record bytes hedges wrote into standby segments."
    );
    describe_gauge!(
        "wal_stranded",
        Unit::Count,
        "Failover: 1 while appenders wait on a slow directory because the other one's probes fail."
    );
    describe_counter!(
        "wal_dir_switches_total",
        Unit::Count,
        "Failover: directory switches."
    );
    describe_counter!(
        "wal_dir_seconds_total",
        Unit::Seconds,
        "Failover: time spent writing to each directory."
    );
    describe_gauge!(
        "wal_current_dir",
        Unit::Count,
        "Failover: 1 for the directory written now."
    );
    describe_gauge!(
        "wal_write_and_sync_latency_seconds",
        Unit::Seconds,
        "Failover: append-to-acknowledgement latency quantiles of synced appends."
    );
    describe_gauge!(
        "wal_probe_latency_seconds",
        Unit::Seconds,
        "Failover: latency quantiles of the probes of the primary."
    );
    describe_gauge!("wal_live_logs", Unit::Count, "Logs not yet obsolete.");
    describe_gauge!("wal_live_files", Unit::Count, "Segment files of live logs.");
    describe_gauge!("wal_live_bytes", Unit::Bytes, "Size of live logs.");
    describe_gauge!(
        "wal_obsolete_files",
        Unit::Count,
        "Obsolete files kept for recycling."
    );
    describe_gauge!(
        "wal_obsolete_bytes",
        Unit::Bytes,
        "Size of obsolete files kept for recycling."
    );
    describe_gauge!("wal_next_lsn", Unit::Count, "The next LSN to be assigned.");
    describe_gauge!(
        "wal_archive_backlog_logs",
        Unit::Count,
        "Archive: closed logs not yet archived, live or obsolete."
    );
    describe_gauge!(
        "wal_archive_backlog_bytes",
        Unit::Bytes,
        "Archive: size of closed logs not yet archived."
    );
    describe_gauge!(
        "wal_archive_awaiting_bytes",
        Unit::Bytes,
        "Archive: size of obsolete logs kept only until they are archived."
    );
    describe_gauge!(
        "wal_archive_backlog_full",
        Unit::Count,
        "Archive: 1 while the backlog is over archive.backlog_bytes_max."
    );
}

/// Publishes `stats` through the facade (absolute values: call it as often
/// as you like).
pub fn publish(stats: &Stats) {
    let t = &stats.totals;
    counter!("wal_appends_total").absolute(t.records);
    counter!("wal_append_bytes_total").absolute(t.payload_bytes);
    counter!("wal_written_bytes_total").absolute(t.bytes_written);
    counter!("wal_writes_total").absolute(t.writes);
    counter!("wal_fsyncs_total").absolute(t.syncs);
    summary("wal_fsync_latency_seconds", &t.sync_latency, 1e-9);
    summary("wal_write_latency_seconds", &t.write_latency, 1e-9);
    summary("wal_sync_group_records", &t.sync_group_records, 1.0);
    counter!("wal_sync_waits_total", "outcome" => "parked").absolute(t.waits_parked);
    gauge!("wal_pending_bytes").set(t.pending_bytes as f64);
    gauge!("wal_unsynced_bytes").set(t.unsynced_bytes as f64);
    gauge!("wal_live_logs").set(stats.live_logs as f64);
    gauge!("wal_live_files").set(stats.live_files as f64);
    gauge!("wal_live_bytes").set(stats.live_bytes as f64);
    gauge!("wal_obsolete_files").set(stats.obsolete_files as f64);
    gauge!("wal_obsolete_bytes").set(stats.obsolete_bytes as f64);
    gauge!("wal_next_lsn").set(stats.next_lsn.0 as f64);
    // Published without an archive too (as zeros: nothing waits for one).
    let a = stats.archive.clone().unwrap_or_default();
    gauge!("wal_archive_backlog_logs").set(a.backlog_logs as f64);
    gauge!("wal_archive_backlog_bytes").set(a.backlog_bytes as f64);
    gauge!("wal_archive_awaiting_bytes").set(a.awaiting_bytes as f64);
    gauge!("wal_archive_backlog_full").set(if a.backlog_full { 1.0 } else { 0.0 });
    if let Some(f) = &stats.failover {
        gauge!("wal_queue_records").set(f.queued_records as f64);
        gauge!("wal_queue_bytes").set(f.queued_bytes as f64);
        counter!("wal_replayed_records_total").absolute(f.replayed_records);
        counter!("wal_hedges_total").absolute(f.hedges);
        counter!("wal_standby_bytes_total").absolute(f.standby_bytes);
        gauge!("wal_stranded").set(if f.stranded { 1.0 } else { 0.0 });
        counter!("wal_dir_switches_total").absolute(f.switches);
        for (dir, time) in [
            (DirId::Primary, f.primary_time),
            (DirId::Secondary, f.secondary_time),
        ] {
            counter!("wal_dir_seconds_total", "dir" => dir.name()).absolute(time.as_secs());
            let current = f.current_dir == Some(dir);
            gauge!("wal_current_dir", "dir" => dir.name()).set(if current { 1.0 } else { 0.0 });
        }
        summary(
            "wal_write_and_sync_latency_seconds",
            &f.write_and_sync_latency,
            1e-9,
        );
        summary("wal_probe_latency_seconds", &f.probe_latency, 1e-9);
    }
}

/// Publishes a histogram as a summary: quantile gauges, `_sum` and `_count`.
fn summary(name: &'static str, h: &HistogramSnapshot, scale: f64) {
    for (label, q) in QUANTILES {
        gauge!(name, "quantile" => label).set(h.quantile(q) as f64 * scale);
    }
    gauge!(format!("{name}_sum")).set(h.sum as f64 * scale);
    counter!(format!("{name}_count")).absolute(h.count);
}
