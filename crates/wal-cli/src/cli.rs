//! The command line: subcommands, their arguments and their help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::failure::EXIT_STATUS_HELP;

const ABOUT: &str = "Inspect, check, repair and benchmark failwal write-ahead logs";

const LONG_ABOUT: &str = "\
Inspect, check, repair and benchmark failwal write-ahead logs.

Every subcommand names the WAL either with --config FILE (the manager's TOML
configuration; relative directories in it are relative to the file) or with
--primary DIR [--secondary DIR] (a secondary selects a failover pair).

list, dump and verify are read-only: they take no lock and never write,
create or delete anything, so they may run next to a live manager (a log
still being written is read as it stands). repair, bench and stats lock the
directories like a manager does and fail if another manager holds them.

A directory is taken for a WAL directory when it is empty (no logs) or holds
a segment file (NNNNNN.log, NNNNNN-III.log) or a WAL metadata file (LOCK,
WAL-STATE, WAL-IDENTITY, WAL-SECONDARY, probe-file). Anything else is
refused, so that a mistyped path is never read, locked or written as a WAL.
The primary of a failover pair is refused without its --secondary, and a
pair given swapped is refused; a file named like a segment that does not
start like one is refused and never cut.";

/// The `wal` command line.
#[derive(Debug, Parser)]
#[command(
    name = "wal",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXIT_STATUS_HELP,
    propagate_version = true,
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List each log with its segments (directory, index, size, path).
    #[command(
        long_about = "List each logical log with its segments: the directory each segment \
                      is in (primary or secondary), its index, its size and its path. \
                      Read-only.",
        after_help = EXIT_STATUS_HELP
    )]
    List(ListArgs),
    /// Print every record of every log, in order, after failover dedup.
    #[command(
        long_about = "Print every record of every log (or of --log N), in LSN order, each \
                      exactly once: records a failover replayed into a later segment are \
                      shown once, from the segment read first. System records are shown \
                      and marked. A torn tail at the end of a log ends that log (noted on \
                      stderr); corruption or missing records fail the command after the \
                      records read so far. Read-only.\n\n\
                      --format json prints one object per line: log, lsn, system, \
                      segment (path), dir, index, offset (of the record in its segment), \
                      len (payload bytes, without the 8-byte LSN prefix), payload_hex.\n\n\
                      --archive reads the archived logs instead (the [archive] table of \
                      --config, or --archive-url), with the same lines: dir is \"archive\", \
                      segment the object's URL, index 0, offset the record's offset in \
                      the archived object; records are sequenced as the archive says.",
        after_help = EXIT_STATUS_HELP
    )]
    Dump(DumpArgs),
    /// Read everything and report per segment: records, duplicates, how it ends.
    #[command(
        long_about = "Read every log and print, per segment, the records it contributed, \
                      the duplicates dropped, and how it ends: clean end, torn tail at an \
                      offset, or corruption at an offset with the reason. Segments the \
                      logical reader did not reach are checked on their own. A torn tail \
                      at the end of a log is fine; so is a torn or corrupt segment that \
                      is not the last of its log when the next segment holds its records. \
                      Exit 0 when every log is readable, 1 on corruption or missing \
                      records (or any read error), 2 on a usage or configuration error. \
                      Read-only.",
        after_help = EXIT_STATUS_HELP
    )]
    Verify(VerifyArgs),
    /// Cut a torn tail off the last segment of each log, durably.
    #[command(
        long_about = "Truncate a torn tail (and only a torn tail) off the last segment of \
                      each log, durably, and say what was cut. Proven corruption is left \
                      in place (exit 1) unless --force, which cuts it too and loses every \
                      record from the corruption on. Locks the directories: stop the \
                      manager first.",
        after_help = EXIT_STATUS_HELP
    )]
    Repair(RepairArgs),
    /// Append from N threads for a while through the configured manager.
    #[command(
        long_about = "Open the configured manager (standalone or failover, with its \
                      background monitor), create new logs numbered after the highest \
                      existing one, and append from --writers threads for --duration \
                      seconds. Each record's payload is the writer's id (u64 LE), that \
                      writer's record counter (u64 LE, from 0), then filler up to \
                      --record-size bytes. A log is closed and the next created once \
                      --log-size-max bytes of payload were appended to it (the file is \
                      larger by the framing: chunk headers and 8-byte LSNs). Append latency is measured \
                      as the caller sees it (including a wait for a rotation). A \
                      progress line goes to stderr when it is a terminal.\n\n\
                      The logs are kept afterwards (inspect them with dump or verify) \
                      unless --clean. With --json the last stdout line is one JSON \
                      object: records, bytes, secs, records_per_s, bytes_per_s, p50_us, \
                      p99_us, p999_us, max_us, mean_us, dir_switches, hedges, standby_bytes, acked (per writer, \
                      records acknowledged), writers, record_size, sync, manager, \
                      first_log, last_log, timeline (the path written by --timeline, or \
                      null). Percentiles are upper estimates within 12.5% \
                      (log-linear histogram); max_us is exact.",
        after_help = EXIT_STATUS_HELP
    )]
    Bench(BenchArgs),
    /// The archive of closed logs in object storage: list, verify, restore.
    #[command(
        long_about = "The archive of closed logs (the [archive] table of --config FILE, or \
                      --archive-url URL): list what it holds, verify every archived log \
                      (its object's size and CRC-32C, every record, its trailer, its \
                      manifest's figures), or restore it into a new directory that the \
                      managers open. s3:// archives take their credentials from \
                      AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN). \
                      Refused credentials and a missing bucket are configuration errors \
                      (exit 2), naming the access key id and the bucket.",
        after_help = EXIT_STATUS_HELP
    )]
    Archive(ArchiveArgs),
    /// Open the manager and print its figures.
    #[command(
        long_about = "Open the manager as an engine would (this takes the directory locks \
                      and, for a failover pair used for the first time, writes the \
                      identity files), print its figures (live and obsolete files and \
                      bytes, next LSN, and for a failover manager the current directory, \
                      switches and time per directory of this short session), and close \
                      it. Opening fails on corruption in the newest log.",
        after_help = EXIT_STATUS_HELP
    )]
    Stats(StatsArgs),
}

/// Where the WAL is: a configuration file or directories. clap refuses both
/// forms at once; neither is refused by `Target::resolve`, whose message
/// names both forms (clap's would name only one).
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// The manager's TOML configuration (relative directories in it are
    /// relative to the file).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["primary", "secondary"])]
    pub(crate) config: Option<PathBuf>,
    /// The primary directory (instead of --config).
    #[arg(long, value_name = "DIR")]
    pub(crate) primary: Option<PathBuf>,
    /// The secondary directory of a failover pair (with --primary).
    #[arg(long, value_name = "DIR", requires = "primary")]
    pub(crate) secondary: Option<PathBuf>,
    /// How records are sequenced, overriding the configuration's
    /// `[log] sequencing`: lsn (failwal's LSN envelope, the default) or
    /// pebble-batch (every record a Pebble batch, deduplicated by its
    /// sequence number as Pebble does).
    #[arg(long, value_name = "MODE", value_parser = parse_sequencing)]
    pub(crate) sequencing: Option<wal_manager::Sequencing>,
}

fn parse_sequencing(s: &str) -> Result<wal_manager::Sequencing, String> {
    s.parse()
}

/// Where the archive is: a configuration's `[archive]` table or a URL.
#[derive(Debug, Args)]
pub(crate) struct ArchiveTargetArgs {
    /// A configuration with an `[archive]` table.
    #[arg(long, value_name = "FILE", conflicts_with = "archive_url")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) url: ArchiveUrlArgs,
}

/// The archive named by its URL (instead of a configuration).
#[derive(Debug, Args)]
pub(crate) struct ArchiveUrlArgs {
    /// The archive: s3://BUCKET[/PREFIX] or file:///PATH (instead of
    /// --config).
    #[arg(long = "archive-url", value_name = "URL")]
    pub(crate) archive_url: Option<String>,
    /// With --archive-url: the S3-compatible server (http://HOST:PORT).
    #[arg(long, value_name = "URL", requires = "archive_url")]
    pub(crate) endpoint: Option<String>,
    /// With --archive-url: the S3 region.
    #[arg(long, value_name = "REGION", requires = "archive_url")]
    pub(crate) region: Option<String>,
}

/// `wal archive`.
#[derive(Debug, Args)]
pub(crate) struct ArchiveArgs {
    /// What to do with the archive.
    #[command(subcommand)]
    pub(crate) command: ArchiveCommand,
}

/// The `wal archive` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ArchiveCommand {
    /// List the archived logs: records, sequence range, size.
    #[command(after_help = EXIT_STATUS_HELP)]
    List(ArchiveListArgs),
    /// Download and check every archived log.
    #[command(
        long_about = "Download every archived log and check it: its data object's size and \
                      CRC-32C against its manifest, every record, its trailer, and the \
                      manifest's record count, range and records CRC. Exit 1 if any log \
                      is damaged or missing. Uploads interrupted before their manifest \
                      (not part of the archive) are noted.",
        after_help = EXIT_STATUS_HELP
    )]
    Verify(ArchiveVerifyArgs),
    /// Restore the archive into a new directory the managers open.
    #[command(
        long_about = "Restore every archived log into --to DIR (missing or empty) as \
                      NNNNNN.log, each checked before it is written; a manager (or the \
                      Wal) opened on DIR reads every archived record. With --until-lsn N, \
                      stop at the first record whose LSN (batch sequence number in \
                      pebble-batch mode) is above N. Progress goes to stderr on a \
                      terminal.",
        after_help = EXIT_STATUS_HELP
    )]
    Restore(ArchiveRestoreArgs),
}

/// `wal archive list`.
#[derive(Debug, Args)]
pub(crate) struct ArchiveListArgs {
    #[command(flatten)]
    pub(crate) target: ArchiveTargetArgs,
    /// Output format; json prints one object per log: log, size, crc32c,
    /// records, first, last, sequencing (or error), and incomplete uploads
    /// as log, size, incomplete.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// `wal archive verify`.
#[derive(Debug, Args)]
pub(crate) struct ArchiveVerifyArgs {
    #[command(flatten)]
    pub(crate) target: ArchiveTargetArgs,
}

/// `wal archive restore`.
#[derive(Debug, Args)]
pub(crate) struct ArchiveRestoreArgs {
    #[command(flatten)]
    pub(crate) target: ArchiveTargetArgs,
    /// The directory to restore into: missing or empty.
    #[arg(long, value_name = "DIR")]
    pub(crate) to: PathBuf,
    /// Leave out every record from the first one whose LSN is above N.
    #[arg(long, value_name = "N")]
    pub(crate) until_lsn: Option<u64>,
}

/// Output format of the inspection commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One human line per item.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `wal list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Output format; json prints one object per log: log, size, segments
    /// (dir, index, size, path).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// `wal dump`.
#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Only this log (its number, e.g. 7 for 000007.log).
    #[arg(long, value_name = "N")]
    pub(crate) log: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
    /// Read the archive instead of the directories: the `[archive]` table of
    /// --config, or --archive-url.
    #[arg(long, conflicts_with_all = ["primary", "secondary"])]
    pub(crate) archive: bool,
    #[command(flatten)]
    pub(crate) archive_url: ArchiveUrlArgs,
}

/// `wal verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// `wal repair`.
#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Also cut proven corruption (every record from it on is lost).
    #[arg(long)]
    pub(crate) force: bool,
    /// Say what would be cut without changing anything on disk (no lock is
    /// taken).
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `wal bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Appending threads (1 to 1024).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) writers: usize,
    /// Payload bytes per record (at least 16: writer id and counter).
    #[arg(long, value_name = "B", default_value_t = 128)]
    pub(crate) record_size: usize,
    /// How long to append, in seconds; fractions are allowed (0.25).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub(crate) duration: f64,
    /// Wait for every record to be durable (group commit).
    #[arg(long)]
    pub(crate) sync: bool,
    /// Print a JSON summary as the last stdout line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Rotate to a new log once this many payload bytes were appended to
    /// the current one ("64MiB", "512KiB" or plain bytes).
    #[arg(long, value_name = "BYTES", default_value = "64MiB")]
    pub(crate) log_size_max: String,
    /// Delete the logs the bench wrote once it is done (default: keep them).
    /// Refused when the directories already hold logs.
    #[arg(long)]
    pub(crate) clean: bool,
    /// Once the run is done, write append latency over time, with the
    /// failover manager's hedges, switches and failbacks, to PATH: a chart
    /// if it ends in .svg, the data if it ends in .csv.
    ///
    /// Every acknowledged append is counted in a time bucket of 1 ms (wider
    /// for long runs or many writers, to bound memory) with its exact max
    /// latency; failover events come from polling the manager every 1 ms and
    /// are dated at the poll that saw them. The extension and PATH's
    /// directory are checked before the run starts. The CSV has a header
    /// line, then rows in time order with the columns: t_s (seconds since
    /// the start: a bucket's start, or when an event was seen), kind
    /// (latency for a bucket; hedge, switch (to the secondary), failback (to
    /// the primary), stranded or unstranded for an event), latency_ms_max
    /// (the bucket's slowest append, exact), latency_ms_mean, count (appends
    /// acknowledged in the bucket; 0, with empty latency fields, when none
    /// finished, as in a stall), detail (events: hedges added and the
    /// total, the switch number).
    #[arg(long, value_name = "PATH")]
    pub(crate) timeline: Option<PathBuf>,
}

/// `wal stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Output format; json prints one object.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
