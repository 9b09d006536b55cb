//! `wal`: the command-line tool of failwal. Lists, dumps, verifies and
//! repairs write-ahead logs, benchmarks a manager, and prints its figures.
//!
//! One module per subcommand (`list`, `dump`, `verify`, `repair`, `bench`,
//! `stats`, and `archive` for `wal archive` and `dump --archive`); `cli` holds the argument definitions and help text, `target`
//! resolves `--config`/`--primary` and checks the directories, `failure`
//! maps errors to exit statuses, `segment` reads a single segment file on
//! its own, `progress` draws the bench's progress line, and `timeline`
//! records and writes `bench --timeline`.
#![forbid(unsafe_code)]

mod archive;
mod bench;
mod cli;
mod dump;
mod failure;
mod list;
mod progress;
mod repair;
mod segment;
mod stats;
mod target;
mod timeline;
mod verify;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::{Cli, Command};
use crate::failure::{Failure, STATUS_USAGE};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(&cli.command, &mut out).and_then(|()| out.flush().map_err(Failure::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Whatever was printed before the failure goes out first.
            let _ = out.flush();
            failure.exit()
        }
    }
}

fn run(command: &Command, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        Command::List(args) => list::run(args, out),
        Command::Dump(args) if args.archive || args.archive_url.archive_url.is_some() => {
            archive::run_dump(args, out)
        }
        Command::Dump(args) => dump::run(args, out),
        Command::Verify(args) => verify::run(args, out),
        Command::Repair(args) => repair::run(args, out),
        Command::Bench(args) => bench::run(args, out),
        Command::Stats(args) => stats::run(args, out),
        Command::Archive(args) => archive::run(&args.command, out),
    }
}

/// Help and version go to stdout with status 0; an argument error becomes
/// one `wal: error:` line with status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(STATUS_USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap's message runs up to the first blank line (then come the
            // usage and a hint); its lines are folded into one.
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ");
            Failure::usage(format!("{first} (see `wal --help`)")).exit()
        }
    }
}
