//! `wal repair`: cuts a torn tail off the last segment of each log, durably
//! (through `wal_manager::repair`), and says what it cut.

use std::io::Write;

use wal_manager::RepairAction;

use crate::cli::RepairArgs;
use crate::failure::Failure;
use crate::target::{Need, Target};

/// Runs `wal repair`.
///
/// # Errors
/// A bad target, a locked or unreadable directory, a failed truncation, or
/// proven corruption left in place (without `--force`).
pub(crate) fn run(args: &RepairArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let target = Target::resolve(&args.target, Need::Existing)?;
    let report = wal_manager::repair(&target.dirs(), args.force, args.dry_run)?;
    if report.actions.is_empty() {
        writeln!(out, "no logs in {}: nothing to repair", target.describe())?;
        return Ok(());
    }
    let (would, cut) = if args.dry_run {
        ("would cut", "would be cut")
    } else {
        ("cut", "cut")
    };
    for (log, action) in &report.actions {
        let line = match action {
            RepairAction::Clean { path } => {
                format!("{}: ends cleanly, nothing to do", path.display())
            }
            RepairAction::TruncatedTornTail {
                path,
                from,
                to,
                fault,
            } => format!(
                "{}: {would} a torn tail of {} bytes ({fault} at offset {to}): {from} -> {to} bytes",
                path.display(),
                from - to
            ),
            RepairAction::RefusedCorruption {
                path,
                offset,
                reason,
            } => format!(
                "{}: REFUSED: proven corruption at offset {offset} left in place ({reason}); \
                 --force cuts it, losing every record from offset {offset} on",
                path.display()
            ),
            RepairAction::TruncatedCorruption {
                path,
                from,
                to,
                reason,
            } => format!(
                "{}: {would} proven corruption (forced; {reason}): {from} -> {to} bytes, the records after offset {to} are lost",
                path.display()
            ),
        };
        writeln!(out, "log {log}: {line}")?;
    }
    let changed = report
        .actions
        .iter()
        .filter(|(_, a)| {
            matches!(
                a,
                RepairAction::TruncatedTornTail { .. } | RepairAction::TruncatedCorruption { .. }
            )
        })
        .count();
    let n = report.actions.len();
    writeln!(
        out,
        "repair{}: {n} log{}, {changed} {cut}",
        if args.dry_run { " (dry run)" } else { "" },
        if n == 1 { "" } else { "s" }
    )?;
    if report.refused() {
        out.flush()?;
        return Err(Failure::failed(
            "proven corruption was left in place (see above); rerun with --force to cut it",
        ));
    }
    Ok(())
}
