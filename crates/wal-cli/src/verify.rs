//! `wal verify`: reads every log and says, per segment, what it found.
//! Read-only.
//!
//! Each log is read with the logical reader (the same rules as recovery:
//! duplicates dropped, damage in a non-last segment skipped when the next
//! segment holds the records, a torn tail at the end tolerated). Its
//! per-segment reports give the lines; segments it did not reach, because
//! it stopped at an error first, are read on their own with the record
//! reader so that every segment gets a line.

use std::io::Write;

use wal_manager::reader::{SegmentEnd, SegmentReport};
use wal_manager::{LogEnd, LogicalLog, LogicalReader, Lsn, Segment, Sequencing};
use wal_record::End;

use crate::cli::VerifyArgs;
use crate::failure::{Failure, one_line};
use crate::progress::ByteProgress;
use crate::segment::{AloneEnd, AloneReport, check_alone};
use crate::target::{Need, Target};

/// What the logical reader made of one log.
struct LogOutcome {
    records: u64,
    lsns: Option<(Lsn, Lsn)>,
    reports: Vec<SegmentReport>,
    result: Result<Option<LogEnd>, wal_manager::Error>,
}

impl LogOutcome {
    fn readable(&self) -> bool {
        self.result.is_ok()
    }
}

/// Runs `wal verify`.
///
/// # Errors
/// A bad target or unreadable directory; a log that is corrupt, misses
/// records or cannot be read (after printing every log's lines).
pub(crate) fn run(args: &VerifyArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let target = Target::resolve(&args.target, Need::Existing)?;
    let logs = target.scan()?;
    if logs.is_empty() {
        writeln!(out, "no logs in {}: nothing to verify", target.describe())?;
        return Ok(());
    }
    let (mut bad, mut segments, mut records) = (0usize, 0usize, 0u64);
    let mut progress = ByteProgress::new("verify", &logs);
    for log in &logs {
        progress.start_log(log);
        let outcome = read_log(target.reader(log, &logs), &mut progress);
        progress.finish();
        write_log(&target, log, &outcome, out)?;
        segments += log.segments.len();
        records += outcome.records;
        if !outcome.readable() {
            bad += 1;
        }
    }
    let n = logs.len();
    if bad == 0 {
        writeln!(
            out,
            "verified {n} log{}, {segments} segment{}, {records} records: all readable",
            plural(n),
            plural(segments)
        )?;
        Ok(())
    } else {
        writeln!(
            out,
            "verified {n} log{}, {segments} segment{}, {records} records: {bad} not readable",
            plural(n),
            plural(segments)
        )?;
        out.flush()?;
        Err(Failure::failed(format!(
            "{bad} of {n} logs are corrupt, miss records or cannot be read (see the lines above)"
        )))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn read_log(mut reader: LogicalReader, progress: &mut ByteProgress) -> LogOutcome {
    let mut records = 0u64;
    let mut lsns: Option<(Lsn, Lsn)> = None;
    let result = loop {
        match reader.next() {
            Ok(Some(r)) => {
                progress.at(r.segment_pos, r.end);
                records += 1;
                lsns = Some(lsns.map_or((r.lsn, r.lsn), |(first, _)| (first, r.lsn)));
            }
            Ok(None) => break Ok(reader.end().cloned()),
            Err(e) => break Err(e),
        }
    };
    LogOutcome {
        records,
        lsns,
        reports: reader.reports().to_vec(),
        result,
    }
}

fn write_log(
    target: &Target,
    log: &LogicalLog,
    outcome: &LogOutcome,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let n = log.segments.len();
    writeln!(out, "log {}: {n} segment{}", log.num, plural(n))?;
    for (i, segment) in log.segments.iter().enumerate() {
        let is_last = i + 1 == n;
        let report = outcome
            .reports
            .iter()
            .find(|r| r.segment.index == segment.index);
        let what = match report {
            Some(r) if !matches!(r.end, SegmentEnd::Unread) => {
                reported_line(r, is_last, outcome.readable())
            }
            Some(r) => format!(
                "{} before the read stopped here; {}",
                counts(r.records, r.duplicates, r.log_data),
                alone_line(target, log, segment)
            ),
            None => format!(
                "not reached by the logical reader; {}",
                alone_line(target, log, segment)
            ),
        };
        let name = segment
            .path
            .file_name()
            .map_or_else(|| segment.path.to_string_lossy(), |s| s.to_string_lossy());
        writeln!(out, "  {:<9}  {name}: {what}", segment.dir.name())?;
    }
    writeln!(out, "  => {}", verdict(outcome, target.sequencing()))
}

fn counts(records: u64, duplicates: u64, log_data: u64) -> String {
    let skipped = match log_data {
        0 => String::new(),
        1 => ", 1 LogData batch skipped".to_owned(),
        n => format!(", {n} LogData batches skipped"),
    };
    format!(
        "{records} record{}, {duplicates} duplicate{}{skipped}",
        if records == 1 { "" } else { "s" },
        if duplicates == 1 { "" } else { "s" }
    )
}

/// The line of a segment the logical reader read to its end.
fn reported_line(r: &SegmentReport, is_last: bool, log_readable: bool) -> String {
    let end = match &r.end {
        SegmentEnd::Unread => "unread".to_owned(),
        SegmentEnd::Missing => {
            "file missing: a switch superseded before its file was created (no records)".to_owned()
        }
        SegmentEnd::Clean(end) => clean_end(*end),
        SegmentEnd::TornTail(e) if is_last => format!("{e}; tolerated at the end of a log"),
        SegmentEnd::TornTail(e) | SegmentEnd::CorruptSkipped(e) => {
            let how = if matches!(r.end, SegmentEnd::CorruptSkipped(_)) {
                "CORRUPTION (skipped)"
            } else {
                "torn (skipped)"
            };
            if log_readable {
                format!("{how}: {e}; readable: the records after it are in the next segment")
            } else {
                format!("{how}: {e}")
            }
        }
        SegmentEnd::Corrupt(e) => format!("CORRUPTION: {e}"),
    };
    format!("{}: {end}", counts(r.records, r.duplicates, r.log_data))
}

fn clean_end(end: End) -> String {
    match end {
        End::Trailer { offset } => format!("clean end (trailer at {offset})"),
        End::Boundary { offset } => format!("clean end at {offset} (no trailer)"),
    }
}

/// The line of a segment read on its own.
fn alone_line(target: &Target, log: &LogicalLog, segment: &Segment) -> String {
    let AloneReport { records, lsns, end } = check_alone(
        target.dirs().get(segment.dir).fs.as_ref(),
        log.num,
        segment,
        target.sequencing(),
    );
    let name = sequence_name(target.sequencing());
    let lsns = lsns.map_or_else(String::new, |(a, b)| format!(" ({name} {a}..={b})"));
    let end = match end {
        AloneEnd::Clean(end) => clean_end(end),
        AloneEnd::Bad(e) if e.is_corruption() => format!("CORRUPTION: {e}"),
        AloneEnd::Bad(e) => e.to_string(),
        AloneEnd::NoLsn(offset) => format!(
            "CORRUPTION: the record at offset {offset} is too short for its {}",
            match target.sequencing() {
                Sequencing::Lsn => "LSN",
                Sequencing::PebbleBatch => "batch header",
            }
        ),
        AloneEnd::Unopenable(e) => format!("cannot be opened: {e}"),
    };
    format!(
        "read alone: {records} record{}{lsns}, {end}",
        if records == 1 { "" } else { "s" }
    )
}

/// What a record's sequence number is called in `sequencing`.
fn sequence_name(sequencing: Sequencing) -> &'static str {
    match sequencing {
        Sequencing::Lsn => "LSN",
        Sequencing::PebbleBatch => "seq",
    }
}

fn verdict(outcome: &LogOutcome, sequencing: Sequencing) -> String {
    let name = sequence_name(sequencing);
    let lsns = outcome
        .lsns
        .map_or_else(String::new, |(a, b)| format!(", {name} {a}..={b}"));
    let read = format!("{} records{lsns}", outcome.records);
    match &outcome.result {
        Ok(Some(LogEnd::TornTail { path, offset })) => format!(
            "readable: {read}; ends with a torn tail at offset {offset} of {} (`wal repair` cuts it)",
            path.display()
        ),
        Ok(_) => format!("readable: {read}"),
        Err(e) if e.is_corruption() => {
            format!("CORRUPT: {}", one_line(&e.to_string()))
        }
        Err(e) => format!("UNREADABLE after {read}: {}", one_line(&e.to_string())),
    }
}
