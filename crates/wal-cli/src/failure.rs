//! How a command fails: an exit status and one line for stderr.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success (`verify`: every log is readable) |
//! | 1 | failure: corruption, a refused repair, an I/O error, a file named like a segment that is not one, a locked directory, a failed bench |
//! | 2 | usage or configuration error: bad arguments, an unreadable or invalid configuration, a directory that is missing, not a directory, not a WAL or given in a role its files contradict, a log that does not exist; a bad archive URL, missing or refused credentials, a missing bucket or directory, a restore target that is not empty |
//!
//! The table is [`EXIT_STATUS_HELP`] in `--help` and in the crate's README.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// The exit status table, as `--help` shows it.
pub(crate) const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success; for verify: every log is readable (a torn tail at the end of a
     log is fine, and so is damage in a segment whose records the next
     segment holds)
  1  failure: corruption or missing records, a repair that refused proven
     corruption, an I/O error, a file named like a segment that is not
     one, a locked directory, a failed bench
  2  usage or configuration error: bad arguments, an unreadable or invalid
     configuration file, a directory that does not exist, is not a
     directory, is not a WAL directory or is given in a role its files
     contradict, a log that does not exist; for the archive: a bad URL,
     missing or refused credentials, a missing bucket or directory, a
     restore target that is not empty";

/// Exit status of a failure.
pub(crate) const STATUS_FAILURE: u8 = 1;
/// Exit status of a usage or configuration error.
pub(crate) const STATUS_USAGE: u8 = 2;

/// A failed command: its exit status and what to tell the user.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exit status (1 or 2; 0 for a quiet stop on a closed stdout).
    pub(crate) status: u8,
    /// One line for stderr, without the `wal: error: ` prefix; `None` to
    /// say nothing (the command already explained itself on stdout).
    pub(crate) message: Option<String>,
}

impl Failure {
    /// A usage or configuration error (status 2).
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            status: STATUS_USAGE,
            message: Some(message.into()),
        }
    }

    /// Any other failure (status 1).
    pub(crate) fn failed(message: impl Into<String>) -> Failure {
        Failure {
            status: STATUS_FAILURE,
            message: Some(message.into()),
        }
    }

    /// A failure already reported on stdout (status 1, nothing on stderr).
    pub(crate) fn reported() -> Failure {
        Failure {
            status: STATUS_FAILURE,
            message: None,
        }
    }

    /// The process exit code, after printing the message to stderr.
    pub(crate) fn exit(self) -> ExitCode {
        if let Some(message) = self.message {
            eprintln!("wal: error: {}", one_line(&message));
        }
        ExitCode::from(self.status)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("failed"))
    }
}

impl From<wal_manager::Error> for Failure {
    /// Configuration errors, and directories that are not WAL directories or
    /// not in the role given, are usage errors (2); everything else,
    /// including a locked directory and corruption, is a failure (1).
    fn from(e: wal_manager::Error) -> Failure {
        match e {
            wal_manager::Error::Config { .. }
            | wal_manager::Error::ConfigRead { .. }
            | wal_manager::Error::NotAWalDirectory { .. }
            | wal_manager::Error::WrongRole { .. } => Failure::usage(e.to_string()),
            _ => Failure::failed(e.to_string()),
        }
    }
}

impl From<wal_fs::Error> for Failure {
    fn from(e: wal_fs::Error) -> Failure {
        Failure::failed(e.to_string())
    }
}

impl From<io::Error> for Failure {
    /// An error writing to stdout. A closed pipe (`wal dump | head`) ends the
    /// command quietly: the reader chose to stop.
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure {
                status: 0,
                message: None,
            }
        } else {
            Failure::failed(format!("cannot write the output: {e}"))
        }
    }
}

/// Folds a message onto one line: some errors (TOML parse errors) come with a
/// multi-line source excerpt, which is dropped; the remaining lines are
/// joined with `: `.
pub(crate) fn one_line(message: &str) -> String {
    let is_excerpt = |line: &str| {
        let t = line.trim_start();
        t.starts_with('|') || {
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && t[digits..].trim_start().starts_with('|')
        }
    };
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_excerpt(l))
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_excerpts_are_folded_onto_one_line() {
        let message = "invalid configuration c.toml: TOML parse error at line 1, column 5\n  |\n1 | a = \n  |     ^\ninvalid string\nexpected `\"`, `'`\n";
        assert_eq!(
            one_line(message),
            "invalid configuration c.toml: TOML parse error at line 1, column 5: invalid string: expected `\"`, `'`"
        );
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn configuration_errors_are_usage_errors_and_the_rest_failures() {
        let config = wal_manager::Error::Config {
            origin: "c.toml".into(),
            message: "bad".into(),
        };
        assert_eq!(Failure::from(config).status, STATUS_USAGE);
        let locked = wal_manager::Error::Fs(wal_fs::Error::Locked {
            path: "/wal".into(),
        });
        assert_eq!(Failure::from(locked).status, STATUS_FAILURE);
    }
}
