//! `wal list`: each log with its segments. Read-only.

use std::io::Write;

use serde_json::json;
use wal_manager::LogicalLog;

use crate::cli::{Format, ListArgs};
use crate::failure::Failure;
use crate::target::{Need, Target};

/// Runs `wal list`.
///
/// # Errors
/// A bad target, an unreadable directory, or a failed write to `out`.
pub(crate) fn run(args: &ListArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let target = Target::resolve(&args.target, Need::Existing)?;
    let logs = target.scan()?;
    match args.format {
        Format::Text => write_text(&target, &logs, out)?,
        Format::Json => {
            for log in &logs {
                writeln!(out, "{}", log_json(log))?;
            }
        }
    }
    Ok(())
}

fn write_text(target: &Target, logs: &[LogicalLog], out: &mut dyn Write) -> std::io::Result<()> {
    if logs.is_empty() {
        return writeln!(out, "no logs in {}", target.describe());
    }
    for log in logs {
        let n = log.segments.len();
        writeln!(
            out,
            "log {}: {n} segment{}, {} bytes",
            log.num,
            if n == 1 { "" } else { "s" },
            log.size()
        )?;
        for s in &log.segments {
            writeln!(
                out,
                "  {:<9}  index {}  {:>12} bytes  {}",
                s.dir.name(),
                s.index,
                s.size,
                s.path.display()
            )?;
        }
    }
    Ok(())
}

/// One log as a JSON object.
fn log_json(log: &LogicalLog) -> serde_json::Value {
    json!({
        "log": log.num.0,
        "size": log.size(),
        "segments": log.segments.iter().map(|s| json!({
            "dir": s.dir.name(),
            "index": s.index.0,
            "size": s.size,
            "path": s.path.to_string_lossy(),
        })).collect::<Vec<_>>(),
    })
}
