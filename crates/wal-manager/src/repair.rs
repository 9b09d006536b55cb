//! Repair: cut a torn tail off the last segment of each log, durably.
//!
//! A torn tail is the normal state of a log after a crash, and readers
//! tolerate it; repair makes the file end cleanly, so that tools that are
//! strict about every log but the newest (Pebble is) accept it, and so that
//! stale bytes of a recycled file go away. Repair never touches proven
//! corruption unless forced: cutting there would throw away records that
//! had been acknowledged as durable. Non-last segments are left alone: the
//! reader already ends them at their first bad record, and the records that
//! matter are in the next segment.

use std::path::PathBuf;

use wal_record::{Error as RecordError, Fault, LogReader};

use crate::error::{Error, Result};
use crate::layout;
use crate::log::{Dirs, LogicalLog, Segment, scan};
use crate::types::LogNum;

/// What repair did (or would do) to one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairAction {
    /// The segment ends cleanly: nothing to do.
    Clean {
        /// The segment's file.
        path: PathBuf,
    },
    /// A torn tail was cut.
    TruncatedTornTail {
        /// The segment's file.
        path: PathBuf,
        /// Its length before.
        from: u64,
        /// Its length now: where the valid records end.
        to: u64,
        /// What was wrong at `to`.
        fault: Fault,
    },
    /// Proven corruption was found and left alone (repair was not forced).
    RefusedCorruption {
        /// The segment's file.
        path: PathBuf,
        /// Where the valid records end.
        offset: u64,
        /// The reader's description.
        reason: String,
    },
    /// Proven corruption was cut because repair was forced: every record
    /// from `to` on is gone.
    TruncatedCorruption {
        /// The segment's file.
        path: PathBuf,
        /// Its length before.
        from: u64,
        /// Its length now.
        to: u64,
        /// The reader's description.
        reason: String,
    },
}

/// What repair found and did, per log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// For each log, the action on its last segment.
    pub actions: Vec<(LogNum, RepairAction)>,
}

impl RepairReport {
    /// Whether corruption was found and left in place.
    pub fn refused(&self) -> bool {
        self.actions
            .iter()
            .any(|(_, a)| matches!(a, RepairAction::RefusedCorruption { .. }))
    }

    /// Whether anything was cut.
    pub fn changed(&self) -> bool {
        self.actions.iter().any(|(_, a)| {
            matches!(
                a,
                RepairAction::TruncatedTornTail { .. } | RepairAction::TruncatedCorruption { .. }
            )
        })
    }
}

/// Repairs every log in `dirs`, which must not be in use: both directories
/// are locked for the duration. With `force`, proven corruption is cut too.
/// With `dry_run`, nothing is changed (not even a lock taken) and the report
/// says what would be.
///
/// The directories and their files must pass the managers' checks
/// ([`crate::layout`]): a file named like a segment that is not one is
/// never cut.
///
/// # Errors
/// A directory is locked by a running manager, cannot be read, or fails
/// the layout checks, or a truncation fails.
pub fn repair(dirs: &Dirs, force: bool, dry_run: bool) -> Result<RepairReport> {
    // Every check that only reads comes before the locks (taking one may
    // create a `LOCK` file).
    for dir in dirs.iter() {
        layout::check_wal_dir(dir.fs.as_ref(), dir.id, &dir.path)?;
    }
    layout::check_roles(dirs)?;
    layout::check_segment_starts(dirs, &scan(dirs)?)?;
    // A dry run only reads: it takes no lock.
    let _locks = if dry_run {
        Vec::new()
    } else {
        dirs.iter()
            .map(|d| d.fs.lock(&d.path))
            .collect::<wal_fs::Result<Vec<_>>>()?
    };
    // Under the locks, what is there now.
    let logs = scan(dirs)?;
    layout::check_segment_starts(dirs, &logs)?;
    let mut report = RepairReport::default();
    for log in logs {
        if let Some(action) = repair_log(dirs, &log, force, dry_run)? {
            report.actions.push((log.num, action));
        }
    }
    Ok(report)
}

fn repair_log(
    dirs: &Dirs,
    log: &LogicalLog,
    force: bool,
    dry_run: bool,
) -> Result<Option<RepairAction>> {
    let Some(last) = log.segments.last() else {
        return Ok(None);
    };
    let (outcome, len) = read_segment(dirs, log.num, last)?;
    let path = last.path.clone();
    let action = match outcome {
        Ok(()) => RepairAction::Clean { path },
        Err(e) if e.is_torn_tail() => {
            let to = e.offset().unwrap_or(0);
            let fault = e.fault().unwrap_or(Fault::UnexpectedEof);
            cut(dirs, last, to, dry_run)?;
            tracing::info!(path = %path.display(), from = len, to, %fault, dry_run, "repair: torn tail cut");
            RepairAction::TruncatedTornTail {
                path,
                from: len,
                to,
                fault,
            }
        }
        Err(e) if e.is_corruption() => {
            let to = e.offset().unwrap_or(0);
            let reason = e.to_string();
            if force {
                cut(dirs, last, to, dry_run)?;
                tracing::warn!(path = %path.display(), from = len, to, %reason, dry_run, "repair: corruption cut (forced)");
                RepairAction::TruncatedCorruption {
                    path,
                    from: len,
                    to,
                    reason,
                }
            } else {
                tracing::warn!(path = %path.display(), offset = to, %reason, "repair: corruption left in place");
                RepairAction::RefusedCorruption {
                    path,
                    offset: to,
                    reason,
                }
            }
        }
        Err(e) => {
            return Err(Error::Segment {
                log: log.num,
                path,
                source: e,
            });
        }
    };
    Ok(Some(action))
}

/// Reads a segment to its end; returns how it ended and its length.
fn read_segment(
    dirs: &Dirs,
    log: LogNum,
    segment: &Segment,
) -> Result<(std::result::Result<(), RecordError>, u64)> {
    let fs = &dirs.get(segment.dir).fs;
    let file = fs.open(&segment.path)?;
    let len = file.size()?;
    let mut reader = LogReader::new(wal_fs::FileReader::new(file), log.header_bits());
    loop {
        match reader.next_record() {
            Ok(Some(_)) => {}
            Ok(None) => return Ok((Ok(()), len)),
            Err(e) => return Ok((Err(e), len)),
        }
    }
}

fn cut(dirs: &Dirs, segment: &Segment, to: u64, dry_run: bool) -> Result<()> {
    if dry_run {
        return Ok(());
    }
    let dir = dirs.get(segment.dir);
    dir.fs.truncate(&segment.path, to)?;
    Ok(())
}
