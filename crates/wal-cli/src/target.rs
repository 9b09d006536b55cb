//! Which WAL a command works on: the configuration named by `--config` or
//! built from `--primary`/`--secondary`, and the checks on its directories
//! that every command makes before touching them.

use std::path::Path;
use std::sync::Arc;

use wal_fs::{Fs, OsFs};
use wal_manager::layout::{Dirs, scan};
use wal_manager::layout::{check_roles, check_segment_starts, check_wal_dir};
use wal_manager::{Config, DirId, LogicalLog, LogicalReader, Sequencing};

use crate::cli::TargetArgs;
use crate::failure::Failure;

/// What a command needs of the directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// They must exist (every command but `bench`).
    Existing,
    /// They may be missing: the manager creates them (`bench`).
    MayCreate,
}

/// A resolved target: the configuration and the filesystem to read it with.
#[derive(Debug)]
pub(crate) struct Target {
    /// The configuration (directories resolved).
    pub(crate) config: Config,
    /// The real filesystem.
    pub(crate) fs: Arc<dyn Fs>,
}

impl Target {
    /// Resolves `args` and checks the directories by the rules the managers
    /// follow (`wal_manager::layout`).
    ///
    /// # Errors
    /// A usage error (2) for an unreadable or invalid configuration, or a
    /// directory that is missing (unless `need` allows it), not a directory,
    /// not a WAL directory, or given in a role its files contradict (a
    /// failover primary without its secondary); a failure (1) if a
    /// directory cannot be listed or a file named like a segment is not one.
    pub(crate) fn resolve(args: &TargetArgs, need: Need) -> Result<Target, Failure> {
        let config = match (&args.config, &args.primary) {
            (Some(path), None) => Config::load(path)?,
            (None, Some(primary)) => {
                let config = match &args.secondary {
                    Some(secondary) => Config::failover(primary, secondary),
                    None => Config::standalone(primary),
                };
                config
                    .validate()
                    .map_err(|message| Failure::usage(format!("invalid directories: {message}")))?;
                config
            }
            // clap refuses both forms at once; this is the "neither" case.
            _ => {
                return Err(Failure::usage(
                    "give either --config FILE or --primary DIR [--secondary DIR]",
                ));
            }
        };
        let mut config = config;
        if let Some(sequencing) = args.sequencing {
            config.log.sequencing = sequencing;
        }
        let target = Target {
            config,
            fs: Arc::new(OsFs::new()),
        };
        for (role, dir) in target.named_dirs() {
            check_dir(target.fs.as_ref(), role, dir, need)?;
        }
        check_roles(&target.dirs())?;
        Ok(target)
    }

    /// `("primary", dir)` and, for a failover pair, `("secondary", dir)`.
    pub(crate) fn named_dirs(&self) -> Vec<(&'static str, &Path)> {
        let mut dirs = vec![("primary", self.config.primary.dir.as_path())];
        if let Some(s) = &self.config.secondary {
            dirs.push(("secondary", s.dir.as_path()));
        }
        dirs
    }

    /// The directories, for reading without a manager (no I/O).
    pub(crate) fn dirs(&self) -> Dirs {
        Dirs::from_config(&self.config, &self.fs)
    }

    /// The logs on disk, found without locking or writing anything.
    ///
    /// # Errors
    /// A directory cannot be listed, a segment cannot be stat'ed or does not
    /// start like a segment, or the same segment exists in both
    /// directories.
    pub(crate) fn scan(&self) -> Result<Vec<LogicalLog>, Failure> {
        let dirs = self.dirs();
        let logs = scan(&dirs)?;
        check_segment_starts(&dirs, &logs)?;
        Ok(logs)
    }

    /// How records are sequenced.
    pub(crate) fn sequencing(&self) -> Sequencing {
        self.config.log.sequencing
    }

    /// A reader of `log` as the managers read it: sequenced as configured,
    /// and held to a clean end (a strict tail) unless it is the newest of
    /// `logs`.
    pub(crate) fn reader(&self, log: &LogicalLog, logs: &[LogicalLog]) -> LogicalReader {
        let newest = logs.last().is_some_and(|l| l.num == log.num);
        LogicalReader::new(log, self.dirs())
            .with_sequencing(self.sequencing())
            .strict_tail(!newest)
    }

    /// A short description for headers: `primary DIR` or `primary DIR,
    /// secondary DIR`.
    pub(crate) fn describe(&self) -> String {
        self.named_dirs()
            .iter()
            .map(|(role, dir)| format!("{role} {}", dir.display()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Checks that `dir` (the `role` directory) exists, is a directory, and is
/// empty or looks like a WAL directory.
fn check_dir(fs: &dyn Fs, role: &str, dir: &Path, need: Need) -> Result<(), Failure> {
    match fs.stat(dir) {
        Ok(meta) if meta.is_dir => {}
        Ok(_) => {
            return Err(Failure::usage(format!(
                "{role} directory {} is not a directory",
                dir.display()
            )));
        }
        Err(e) if e.is_not_found() => {
            return match need {
                Need::MayCreate => Ok(()),
                Need::Existing => Err(Failure::usage(format!(
                    "{role} directory {} does not exist",
                    dir.display()
                ))),
            };
        }
        Err(e) => {
            return Err(Failure::failed(format!(
                "cannot examine {role} directory {}: {e}",
                dir.display()
            )));
        }
    }
    let id = if role == "primary" {
        DirId::Primary
    } else {
        DirId::Secondary
    };
    check_wal_dir(fs, id, dir).map_err(|e| match e {
        wal_manager::Error::Fs(e) => Failure::failed(format!(
            "cannot list {role} directory {}: {e}",
            dir.display()
        )),
        e => e.into(),
    })?;
    Ok(())
}
