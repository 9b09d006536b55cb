//! Which WAL a command works on: the configuration named by `--config` or
//! built from `--primary`/`--secondary`, and the checks on its directories
//! that every command makes before touching them.

use std::path::Path;
use std::sync::Arc;

use wal_fs::{Fs, LOCK_FILE_NAME, OsFs};
use wal_manager::failover::prober::PROBE_FILE;
use wal_manager::{
    Config, Dirs, EXPECTED_SECONDARY_FILE, IDENTITY_FILE, LogicalLog, STATE_FILE,
    parse_segment_file_name, scan,
};

use crate::cli::TargetArgs;
use crate::failure::Failure;

/// The metadata files a WAL directory may hold besides segments.
const METADATA_FILES: [&str; 5] = [
    LOCK_FILE_NAME,
    STATE_FILE,
    IDENTITY_FILE,
    EXPECTED_SECONDARY_FILE,
    PROBE_FILE,
];

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
    /// Resolves `args` and checks the directories.
    ///
    /// # Errors
    /// A usage error (2) for an unreadable or invalid configuration, or a
    /// directory that is missing (unless `need` allows it), not a directory,
    /// or not a WAL directory; a failure (1) if a directory cannot be listed.
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
        let target = Target {
            config,
            fs: Arc::new(OsFs::new()),
        };
        for (role, dir) in target.named_dirs() {
            check_dir(target.fs.as_ref(), role, dir, need)?;
        }
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
    /// A directory cannot be listed, a segment cannot be stat'ed, or the same
    /// segment exists in both directories.
    pub(crate) fn scan(&self) -> Result<Vec<LogicalLog>, Failure> {
        Ok(scan(&self.dirs())?)
    }

    /// The largest stored record the configuration allows (payload plus LSN
    /// prefix): what readers accept.
    pub(crate) fn stored_record_size_max(&self) -> usize {
        usize::try_from(self.config.writer.record_size_max.0)
            .unwrap_or(usize::MAX)
            .saturating_add(wal_manager::LSN_PREFIX_SIZE)
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

/// Whether `name` is a file a WAL directory holds.
pub(crate) fn is_wal_file_name(name: &str) -> bool {
    if parse_segment_file_name(name).is_some()
        || wal_manager::parse_recycle_file_name(name).is_some()
    {
        return true;
    }
    // Metadata files are written through a `.tmp` file and a rename; a crash
    // may leave the temporary file behind.
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    METADATA_FILES.contains(&name)
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
    let names = fs.list(dir).map_err(|e| {
        Failure::failed(format!(
            "cannot list {role} directory {}: {e}",
            dir.display()
        ))
    })?;
    if names.is_empty() || names.iter().any(|n| is_wal_file_name(n)) {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{role} directory {} is not a WAL directory: its {} entries include no segment file (NNNNNN.log) and no WAL metadata file",
        dir.display(),
        names.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_files_are_recognised_and_other_files_are_not() {
        for name in [
            "000001.log",
            "000001-002.log",
            "LOCK",
            "WAL-STATE",
            "WAL-STATE.tmp",
            "WAL-IDENTITY",
            "WAL-SECONDARY",
            "probe-file",
        ] {
            assert!(is_wal_file_name(name), "{name}");
        }
        for name in ["notes.txt", "1.log", "000001.log.bak", "LOCK.bak", ".tmp"] {
            assert!(!is_wal_file_name(name), "{name}");
        }
    }
}
