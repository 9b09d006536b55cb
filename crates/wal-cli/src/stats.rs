//! `wal stats`: opens the manager (taking the directory locks) and prints
//! its figures.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use wal_manager::{Manager, Stats};

use crate::cli::{Format, StatsArgs};
use crate::failure::Failure;
use crate::target::{Need, Target};

/// Runs `wal stats`.
///
/// # Errors
/// A bad target, a locked directory, corruption in the newest log, or any
/// other error opening or closing the manager.
pub(crate) fn run(args: &StatsArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let target = Target::resolve(&args.target, Need::Existing)?;
    let manager = Manager::open(&target.config)?;
    let stats = manager.stats();
    let kind = if target.config.is_failover() {
        "failover"
    } else {
        "standalone"
    };
    manager.close()?;
    match args.format {
        Format::Text => write_text(&target, kind, &stats, out)?,
        Format::Json => writeln!(out, "{}", to_json(kind, &stats))?,
    }
    Ok(())
}

pub(crate) fn write_text(
    target: &Target,
    kind: &str,
    s: &Stats,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "manager: {kind} ({})", target.describe())?;
    writeln!(
        out,
        "live: {} logs, {} files, {} bytes",
        s.live_logs, s.live_files, s.live_bytes
    )?;
    writeln!(
        out,
        "obsolete (kept for recycling): {} files, {} bytes",
        s.obsolete_files, s.obsolete_bytes
    )?;
    writeln!(out, "next LSN: {}", s.next_lsn)?;
    let t = &s.totals;
    let ns = |n: u64| human(Duration::from_nanos(n));
    writeln!(
        out,
        "writers this session: {} records, {} payload bytes, {} bytes written in {} writes",
        t.records, t.payload_bytes, t.bytes_written, t.writes
    )?;
    writeln!(
        out,
        "syncs: {} (latency p50 {}, p99 {}, max {}); records per sync: mean {:.1}, max {}",
        t.syncs,
        ns(t.sync_latency.quantile(0.5)),
        ns(t.sync_latency.quantile(0.99)),
        ns(t.sync_latency.max),
        t.sync_group_records.mean(),
        t.sync_group_records.max
    )?;
    writeln!(out, "waits for durability: {} parked", t.waits_parked)?;
    if let Some(f) = &s.failover {
        writeln!(
            out,
            "failover: on {}, {} switches this session; time on primary {}, on secondary {}",
            f.current_dir.map_or("-", |d| d.name()),
            f.switches,
            human(f.primary_time),
            human(f.secondary_time)
        )?;
    }
    if let Some(a) = &s.archive {
        writeln!(
            out,
            "archive: {} closed logs not known to be archived ({} bytes), {} of them obsolete and kept only for the archive{}",
            a.backlog_logs,
            a.backlog_bytes,
            a.awaiting_logs,
            if a.backlog_full {
                "; OVER archive.backlog_bytes_max"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

fn to_json(kind: &str, s: &Stats) -> serde_json::Value {
    let failover = s.failover.as_ref().map(|f| {
        json!({
            "current_dir": f.current_dir.map(wal_manager::DirId::name),
            "switches": f.switches,
            "primary_secs": f.primary_time.as_secs_f64(),
            "secondary_secs": f.secondary_time.as_secs_f64(),
        })
    });
    json!({
        "manager": kind,
        "live_logs": s.live_logs,
        "live_files": s.live_files,
        "live_bytes": s.live_bytes,
        "obsolete_files": s.obsolete_files,
        "obsolete_bytes": s.obsolete_bytes,
        "next_lsn": s.next_lsn.0,
        "records": s.totals.records,
        "payload_bytes": s.totals.payload_bytes,
        "bytes_written": s.totals.bytes_written,
        "writes": s.totals.writes,
        "syncs": s.totals.syncs,
        "sync_p50_us": s.totals.sync_latency.quantile(0.5) as f64 / 1e3,
        "sync_p99_us": s.totals.sync_latency.quantile(0.99) as f64 / 1e3,
        "records_per_sync_mean": s.totals.sync_group_records.mean(),
        "waits_parked": s.totals.waits_parked,
        "failover": failover,
        "archive": s.archive.as_ref().map(|a| json!({
            "backlog_logs": a.backlog_logs,
            "backlog_bytes": a.backlog_bytes,
            "awaiting_logs": a.awaiting_logs,
            "awaiting_bytes": a.awaiting_bytes,
            "backlog_full": a.backlog_full,
        })),
    })
}

/// A duration for people: `1.234s`, `12.3ms`, `45us`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.3}s")
    } else if secs >= 1e-3 {
        format!("{:.1}ms", secs * 1e3)
    } else {
        format!("{:.1}us", secs * 1e6)
    }
}
