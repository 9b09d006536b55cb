//! `wal dump`: every record of every log, in order, after failover dedup.
//! Read-only.

use std::fmt::Write as _;
use std::io::Write;

use serde_json::json;
use wal_manager::{LogEnd, LogNum, LogRecord, LogicalLog, LogicalReader};

use crate::cli::{DumpArgs, Format};
use crate::failure::{Failure, one_line};
use crate::progress::ByteProgress;
use crate::target::{Need, Target};

/// Payload bytes shown in a text line before it is elided.
const TEXT_PAYLOAD_SHOWN_MAX: usize = 32;

/// Runs `wal dump`.
///
/// # Errors
/// A bad target or log number, an unreadable directory, a failed write to
/// `out`; or a log that could not be read to its end (reported on stderr
/// as it happens, after the records read before it).
pub(crate) fn run(args: &DumpArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let target = Target::resolve(&args.target, Need::Existing)?;
    let all = target.scan()?;
    let mut logs = all.clone();
    if let Some(n) = args.log {
        logs.retain(|l| l.num == LogNum(n));
        if logs.is_empty() {
            return Err(Failure::usage(format!(
                "no log {} in {}",
                LogNum(n),
                target.describe()
            )));
        }
    }
    let mut failed = false;
    let mut progress = ByteProgress::new("dump", &logs);
    for log in &logs {
        progress.start_log(log);
        let reader = target.reader(log, &all);
        let dumped = dump_log(reader, log, args.format, out, &mut progress);
        progress.finish();
        if let Err(e) = dumped {
            // Flush what was read before the damage, then say why it ends.
            out.flush()?;
            match e {
                DumpError::Read(e) => {
                    eprintln!("wal: error: {}", one_line(&e.to_string()));
                    failed = true;
                }
                DumpError::Output(e) => return Err(e.into()),
            }
        }
    }
    if failed {
        Err(Failure::reported())
    } else {
        Ok(())
    }
}

enum DumpError {
    Read(wal_manager::Error),
    Output(std::io::Error),
}

fn dump_log(
    mut reader: LogicalReader,
    log: &LogicalLog,
    format: Format,
    out: &mut dyn Write,
    progress: &mut ByteProgress,
) -> Result<(), DumpError> {
    loop {
        match reader.next() {
            Ok(Some(record)) => {
                progress.at(record.segment_pos, record.end);
                let line = match format {
                    Format::Text => text_line(log.num, &record),
                    Format::Json => json_line(log.num, &record).to_string(),
                };
                writeln!(out, "{line}").map_err(DumpError::Output)?;
            }
            Ok(None) => break,
            Err(e) => return Err(DumpError::Read(e)),
        }
    }
    if let Some(LogEnd::TornTail { path, offset }) = reader.end() {
        out.flush().map_err(DumpError::Output)?;
        eprintln!(
            "wal: note: log {} ends with a torn tail at offset {offset} of {} (tolerated; `wal repair` cuts it)",
            log.num,
            path.display()
        );
    }
    Ok(())
}

fn text_line(log: LogNum, r: &LogRecord<'_>) -> String {
    let name = r
        .segment
        .path
        .file_name()
        .map_or_else(|| r.segment.path.to_string_lossy(), |n| n.to_string_lossy());
    let shown = &r.payload[..r.payload.len().min(TEXT_PAYLOAD_SHOWN_MAX)];
    let sequence = match r.batch {
        Some(h) => format!("seq {} count {}", h.seq, h.count),
        None => format!("lsn {}", r.lsn),
    };
    let mut line = format!(
        "log {log} {sequence} {}/{name}@{} len {}{} payload {}",
        r.segment.dir.name(),
        r.offset,
        r.payload.len(),
        if r.system { " [system]" } else { "" },
        hex(shown)
    );
    if shown.len() < r.payload.len() {
        let _ = write!(line, "... (+{} bytes)", r.payload.len() - shown.len());
    }
    line
}

fn json_line(log: LogNum, r: &LogRecord<'_>) -> serde_json::Value {
    if let Some(h) = r.batch {
        return json!({
            "log": log.0,
            "seq": h.seq,
            "count": h.count,
            "segment": r.segment.path.to_string_lossy(),
            "dir": r.segment.dir.name(),
            "index": r.segment.index.0,
            "offset": r.offset,
            "len": r.payload.len(),
            "payload_hex": hex(r.payload),
        });
    }
    json!({
        "log": log.0,
        "lsn": r.lsn.0,
        "system": r.system,
        "segment": r.segment.path.to_string_lossy(),
        "dir": r.segment.dir.name(),
        "index": r.segment.index.0,
        "offset": r.offset,
        "len": r.payload.len(),
        "payload_hex": hex(r.payload),
    })
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }
}
