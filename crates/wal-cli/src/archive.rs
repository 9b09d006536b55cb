//! `wal archive list | verify | restore` and `wal dump --archive`: the
//! archive of closed logs, read through `wal_archive`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde_json::json;
use wal_archive::manifest::Manifest;
use wal_archive::{
    Access, ArchivedRecord, Listing, Store, fetch, for_each_record, list, restore, sequencing_of,
    verify_log,
};
use wal_manager::{ArchiveConfig, Config, LogNum, Sequencing};

use crate::cli::{
    ArchiveCommand, ArchiveListArgs, ArchiveRestoreArgs, ArchiveTargetArgs, ArchiveUrlArgs,
    ArchiveVerifyArgs, DumpArgs, Format,
};
use crate::dump::hex;
use crate::failure::Failure;
use crate::progress::{PROGRESS_INTERVAL, Progress, human_bytes};

/// Payload bytes shown in a text line before it is elided.
const TEXT_PAYLOAD_SHOWN_MAX: usize = 32;

impl From<wal_archive::Error> for Failure {
    /// A bad URL, missing or refused credentials, a missing bucket or
    /// directory, and a restore target in use are usage or configuration
    /// errors (2); damage and failed requests are failures (1).
    fn from(e: wal_archive::Error) -> Failure {
        if e.is_configuration() || matches!(e, wal_archive::Error::RestoreTarget { .. }) {
            Failure::usage(e.to_string())
        } else {
            Failure::failed(e.to_string())
        }
    }
}

/// Runs `wal archive ...`.
///
/// # Errors
/// As each subcommand.
pub(crate) fn run(command: &ArchiveCommand, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        ArchiveCommand::List(args) => run_list(args, out),
        ArchiveCommand::Verify(args) => run_verify(args, out),
        ArchiveCommand::Restore(args) => run_restore(args, out),
    }
}

/// The archive named by `--config FILE` (its `[archive]` table) or by
/// `--archive-url URL`.
///
/// # Errors
/// A usage error naming what is missing or wrong.
pub(crate) fn resolve(
    config: Option<&Path>,
    url: &ArchiveUrlArgs,
) -> Result<ArchiveConfig, Failure> {
    match (config, &url.archive_url) {
        (Some(path), None) => Config::load(path)?.archive.ok_or_else(|| {
            Failure::usage(format!(
                "{} has no [archive] table: add one (archive.url = \"s3://BUCKET/PREFIX\") or give --archive-url URL",
                path.display()
            ))
        }),
        (None, Some(archive_url)) => {
            let mut archive = ArchiveConfig::new(archive_url.clone());
            archive.endpoint.clone_from(&url.endpoint);
            archive.region.clone_from(&url.region);
            archive
                .validate()
                .map_err(|message| Failure::usage(format!("--archive-url: {message}")))?;
            Ok(archive)
        }
        // clap refuses both at once; this is neither.
        _ => Err(Failure::usage(
            "give --config FILE (with an [archive] table) or --archive-url URL",
        )),
    }
}

/// Opens the archive for reading and checks that it answers.
fn open(target: &ArchiveTargetArgs) -> Result<Store, Failure> {
    open_config(&resolve(target.config.as_deref(), &target.url)?)
}

fn open_config(archive: &ArchiveConfig) -> Result<Store, Failure> {
    let store = Store::open(archive, Access::Read)?;
    store.check()?;
    Ok(store)
}

fn range(m: &Manifest) -> String {
    let name = match m.sequencing {
        Sequencing::Lsn => "LSN",
        Sequencing::PebbleBatch => "seq",
    };
    match (m.summary.first, m.summary.last) {
        (Some(first), Some(last)) => format!(", {name} {first}..={last}"),
        _ => String::new(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn run_list(args: &ArchiveListArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open(&args.target)?;
    let listing = list(&store)?;
    match args.format {
        Format::Json => {
            for l in &listing.logs {
                let line = match &l.manifest {
                    Ok(m) => json!({
                        "log": l.log.0,
                        "size": m.size,
                        "crc32c": format!("{:08x}", m.crc32c),
                        "records": m.summary.records,
                        "first": m.summary.first,
                        "last": m.summary.last,
                        "sequencing": m.sequencing.name(),
                        "object": store.object_url(&wal_archive::manifest::data_name(l.log)),
                    }),
                    Err(reason) => json!({ "log": l.log.0, "error": reason }),
                };
                writeln!(out, "{line}")?;
            }
            for (log, size) in &listing.incomplete {
                writeln!(
                    out,
                    "{}",
                    json!({ "log": log.0, "size": size, "incomplete": true })
                )?;
            }
        }
        Format::Text => write_listing(&store, &listing, out)?,
    }
    Ok(())
}

fn write_listing(store: &Store, listing: &Listing, out: &mut dyn Write) -> std::io::Result<()> {
    let bytes: u64 = listing.manifests().map(|m| m.size).sum();
    let n = listing.logs.len();
    writeln!(
        out,
        "archive {}: {n} log{}, {}",
        store.url(),
        plural(n),
        human_bytes(bytes)
    )?;
    for l in &listing.logs {
        match &l.manifest {
            Ok(m) => writeln!(
                out,
                "log {}: {} records{}, {} bytes, sequencing {}",
                l.log,
                m.summary.records,
                range(m),
                m.size,
                m.sequencing.name()
            )?,
            Err(reason) => writeln!(out, "log {}: DAMAGED MANIFEST: {reason}", l.log)?,
        }
    }
    for (log, size) in &listing.incomplete {
        writeln!(
            out,
            "incomplete upload of log {log}: {size} bytes without a manifest (not archived; the next upload of the log replaces it)"
        )?;
    }
    Ok(())
}

/// Progress through the bytes of archived logs, on a terminal.
struct Downloads {
    line: Progress,
    what: &'static str,
    total: u64,
    last_draw: Instant,
}

impl Downloads {
    fn new(what: &'static str, total: u64) -> Downloads {
        Downloads {
            line: Progress::new(),
            what,
            total,
            last_draw: Instant::now(),
        }
    }

    fn at(&mut self, done: u64, log: LogNum) {
        if self.last_draw.elapsed() < PROGRESS_INTERVAL {
            return;
        }
        self.last_draw = Instant::now();
        let pct = (done.min(self.total) * 100)
            .checked_div(self.total)
            .unwrap_or(100);
        self.line.show(&format!(
            "{}: {} of {} ({pct}%), log {log}",
            self.what,
            human_bytes(done),
            human_bytes(self.total)
        ));
    }
}

fn run_verify(args: &ArchiveVerifyArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open(&args.target)?;
    let listing = list(&store)?;
    if listing.logs.is_empty() {
        writeln!(out, "archive {}: no logs: nothing to verify", store.url())?;
        return Ok(());
    }
    let total = listing.manifests().map(|m| m.size).sum();
    let mut progress = Downloads::new("verify", total);
    let (mut bad, mut records, mut done) = (0usize, 0u64, 0u64);
    for l in &listing.logs {
        let line = match &l.manifest {
            Err(reason) => {
                bad += 1;
                format!("CORRUPT: its manifest: {reason}")
            }
            Ok(m) => {
                progress.at(done, l.log);
                done += m.size;
                match verify_log(&store, m) {
                    Ok(()) => {
                        records += m.summary.records;
                        format!(
                            "intact: {} records{}, {} bytes",
                            m.summary.records,
                            range(m),
                            m.size
                        )
                    }
                    Err(e) => {
                        bad += 1;
                        if e.is_corruption() {
                            format!("CORRUPT: {e}")
                        } else {
                            format!("UNREADABLE: {e}")
                        }
                    }
                }
            }
        };
        progress.line.finish();
        writeln!(out, "log {}: {line}", l.log)?;
    }
    if let Err(e) = sequencing_of(&store, listing.manifests()) {
        bad += 1;
        writeln!(out, "CORRUPT: {e}")?;
    }
    for (log, size) in &listing.incomplete {
        writeln!(
            out,
            "note: incomplete upload of log {log} ({size} bytes, no manifest): not part of the archive"
        )?;
    }
    let n = listing.logs.len();
    if bad == 0 {
        writeln!(
            out,
            "verified {n} log{}, {records} records: all intact",
            plural(n)
        )?;
        Ok(())
    } else {
        writeln!(
            out,
            "verified {n} log{}, {records} records: {bad} damaged",
            plural(n)
        )?;
        out.flush()?;
        Err(Failure::failed(format!(
            "{bad} of {n} archived logs are damaged or unreadable (see the lines above)"
        )))
    }
}

fn run_restore(args: &ArchiveRestoreArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let store = open(&args.target)?;
    let mut progress: Option<Downloads> = None;
    let report = restore(&store, &args.to, args.until_lsn, &mut |p| {
        progress
            .get_or_insert_with(|| Downloads::new("restore", p.total_bytes))
            .at(p.done_bytes, p.log);
    });
    if let Some(p) = &mut progress {
        p.line.finish();
    }
    let report = report?;
    let records: u64 = report.logs.iter().map(|(_, r)| r).sum();
    let n = report.logs.len();
    let sequencing = report.sequencing.unwrap_or_default();
    let mut line = format!("restored {n} log{} ({records} records", plural(n));
    if let Some(last) = report.last {
        let _ = write!(
            line,
            ", up to {} {last}",
            match sequencing {
                Sequencing::Lsn => "LSN",
                Sequencing::PebbleBatch => "seq",
            }
        );
    }
    let _ = write!(
        line,
        ") into {}; open it with [log] sequencing = \"{}\"",
        args.to.display(),
        sequencing.name()
    );
    writeln!(out, "{line}")?;
    if report.cut {
        writeln!(
            out,
            "  log {} cut after --until-lsn {}; later logs left out",
            report.logs.last().map(|(l, _)| *l).unwrap_or_default(),
            args.until_lsn.unwrap_or_default()
        )?;
    }
    if report.incomplete > 0 {
        writeln!(
            out,
            "  note: {} incomplete upload{} (no manifest) left out",
            report.incomplete,
            plural(report.incomplete)
        )?;
    }
    Ok(())
}

/// Runs `wal dump --archive`: every archived record, with the lines of
/// `wal dump`.
///
/// # Errors
/// A bad archive or log number; damage in a log (after the records read
/// before it, reported on stderr).
pub(crate) fn run_dump(args: &DumpArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let archive = resolve(args.target.config.as_deref(), &args.archive_url)?;
    let store = open_config(&archive)?;
    let listing = list(&store)?;
    let mut logs: Vec<_> = listing.logs.iter().collect();
    if let Some(n) = args.log {
        logs.retain(|l| l.log == LogNum(n));
        if logs.is_empty() {
            return Err(Failure::usage(format!(
                "no log {} in the archive {}",
                LogNum(n),
                store.url()
            )));
        }
    }
    let mut failed = false;
    for l in logs {
        let dumped = match &l.manifest {
            Err(reason) => Err(Failure::failed(format!(
                "archived log {}: damaged manifest: {reason}",
                l.log
            ))),
            Ok(m) => dump_log(&store, m, args.format, out),
        };
        if let Err(e) = dumped {
            if e.status == 0 {
                return Err(e);
            }
            out.flush()?;
            eprintln!("wal: error: {e}");
            failed = true;
        }
    }
    if failed {
        Err(Failure::reported())
    } else {
        Ok(())
    }
}

fn dump_log(
    store: &Store,
    m: &Manifest,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let bytes = fetch(store, m)?;
    let object = store.object_url(&wal_archive::manifest::data_name(m.log));
    for_each_record::<Failure>(store, &bytes, m, |r| {
        let line = match format {
            Format::Json => json_line(m.log, &object, r).to_string(),
            Format::Text => text_line(m.log, r),
        };
        writeln!(out, "{line}")?;
        Ok(())
    })?;
    Ok(())
}

fn json_line(log: LogNum, object: &str, r: &ArchivedRecord<'_>) -> serde_json::Value {
    if let Some(count) = r.count {
        return json!({
            "log": log.0,
            "seq": r.seq,
            "count": count,
            "segment": object,
            "dir": "archive",
            "index": 0,
            "offset": r.offset,
            "len": r.payload.len(),
            "payload_hex": hex(r.payload),
        });
    }
    json!({
        "log": log.0,
        "lsn": r.seq,
        "system": r.system,
        "segment": object,
        "dir": "archive",
        "index": 0,
        "offset": r.offset,
        "len": r.payload.len(),
        "payload_hex": hex(r.payload),
    })
}

fn text_line(log: LogNum, r: &ArchivedRecord<'_>) -> String {
    let shown = &r.payload[..r.payload.len().min(TEXT_PAYLOAD_SHOWN_MAX)];
    let sequence = match r.count {
        Some(count) => format!("seq {} count {count}", r.seq),
        None => format!("lsn {}", r.seq),
    };
    let mut line = format!(
        "log {log} {sequence} archive/{}@{} len {}{} payload {}",
        wal_archive::manifest::data_name(log),
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
