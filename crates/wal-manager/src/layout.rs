//! What a WAL directory holds, for tools that read one without a manager
//! (the `wal` command): its directories ([`Dirs`]), the scan that finds
//! its logs ([`scan`]), the names of its files, the LSN envelope of its
//! records, and the checks made before a directory is used as one. The managers and the `wal` command apply the same rules, so
//! a directory one refuses the other refuses too:
//!
//! * A directory that exists must be empty or hold at least one WAL file: a
//!   segment (`NNNNNN.log`, `NNNNNN-III.log`), a recycled log, or a
//!   metadata file ([`is_wal_file_name`]). Anything else is most likely a
//!   mistyped path, which is never locked, written or read as a WAL.
//! * A file named like a segment must start like one: its first chunk's
//!   type byte is 0 (nothing written yet, or zeros) or a chunk type
//!   (1-12). A crash cannot leave anything else there: the first chunk
//!   header lies in the file's first 512-byte sub-sector, which a power
//!   loss keeps whole, and a cut write ends the file before the type byte
//!   or leaves a zero in it ([`check_segment_start`]).
//! * A directory's role files must agree with the configuration: the
//!   primary of a failover pair (it holds `WAL-SECONDARY`) is never opened
//!   without its secondary, and neither directory of a pair is opened in
//!   the other's role ([`check_roles`]).

use std::path::Path;

pub use crate::envelope::{LSN_PREFIX_SIZE, decode as decode_envelope, lsn_prefix};
pub use crate::log::{Dir, Dirs, scan};
pub use crate::meta::{EXPECTED_SECONDARY_FILE, IDENTITY_FILE, STATE_FILE};
pub use crate::naming::{
    PROBE_FILE, parse_recycle_file_name, parse_segment_file_name, recycle_file_name,
    segment_file_name,
};

use wal_fs::{Fs, LOCK_FILE_NAME};
use wal_record::format::{ChunkType, TYPE_OFFSET};

use crate::error::{Error, Result};
use crate::log::LogicalLog;
use crate::types::DirId;

/// The metadata files a WAL directory may hold besides segments.
pub const METADATA_FILES: [&str; 5] = [
    LOCK_FILE_NAME,
    STATE_FILE,
    IDENTITY_FILE,
    EXPECTED_SECONDARY_FILE,
    PROBE_FILE,
];

/// Whether `name` is a file a WAL directory holds: a segment, a recycled
/// log, a metadata file, or a metadata file's temporary (a crash between
/// writing and renaming one leaves it).
pub fn is_wal_file_name(name: &str) -> bool {
    if parse_segment_file_name(name).is_some() || parse_recycle_file_name(name).is_some() {
        return true;
    }
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    METADATA_FILES.contains(&name)
}

/// Checks that `dir`, given as the `role` directory, is usable as a WAL
/// directory: missing (to be created), empty, or holding a WAL file.
/// Returns whether it exists. Reads only.
///
/// # Errors
/// [`Error::NotAWalDirectory`]; a filesystem error if `dir` is not a
/// directory or cannot be listed.
pub fn check_wal_dir(fs: &dyn Fs, role: DirId, dir: &Path) -> Result<bool> {
    match fs.stat(dir) {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    // Listing a file (not a directory) fails with a clear error.
    let names = fs.list(dir)?;
    if names.is_empty() || names.iter().any(|n| is_wal_file_name(n)) {
        return Ok(true);
    }
    Err(Error::NotAWalDirectory {
        role,
        dir: dir.to_path_buf(),
        entries: names.len(),
    })
}

/// Checks that the segment file `path` starts like a log segment (see the
/// module docs). A file too short to hold a chunk type is fine: a crash can
/// leave any prefix of a first write.
///
/// # Errors
/// [`Error::NotALogFile`], or the file cannot be read.
pub fn check_segment_start(fs: &dyn Fs, path: &Path) -> Result<()> {
    let file = fs.open(path)?;
    let mut byte = [0u8; 1];
    let n = file.read_at(&mut byte, TYPE_OFFSET as u64)?;
    let _ = file.close();
    if n == 1 && byte[0] > ChunkType::CODE_MAX {
        return Err(Error::NotALogFile {
            path: path.to_path_buf(),
            chunk_type: byte[0],
        });
    }
    Ok(())
}

/// [`check_segment_start`] for every segment of `logs`.
///
/// # Errors
/// As [`check_segment_start`].
pub fn check_segment_starts(dirs: &Dirs, logs: &[LogicalLog]) -> Result<()> {
    for s in logs.iter().flat_map(|l| &l.segments) {
        check_segment_start(dirs.get(s.dir).fs.as_ref(), &s.path)?;
    }
    Ok(())
}

/// Checks the role files of `dirs` against the roles the configuration
/// gives them (a secondary in `dirs` means a failover pair). Reads only.
///
/// # Errors
/// [`Error::WrongRole`] naming the directory and what to do; a damaged
/// metadata file.
pub fn check_roles(dirs: &Dirs) -> Result<()> {
    let primary = &dirs.primary;
    if has(primary.fs.as_ref(), &primary.path, IDENTITY_FILE)? {
        return Err(Error::WrongRole {
            dir: primary.path.clone(),
            reason: format!(
                "given as the primary, but it is the secondary of a failover WAL (it holds {IDENTITY_FILE}): give it as secondary.dir, with its primary as primary.dir"
            ),
        });
    }
    match &dirs.secondary {
        None => {
            if let Some(identity) = crate::meta::read(
                primary.fs.as_ref(),
                &primary.path,
                EXPECTED_SECONDARY_FILE,
                "identity",
            )? {
                return Err(Error::WrongRole {
                    dir: primary.path.clone(),
                    reason: format!(
                        "this is the primary of a failover WAL ({EXPECTED_SECONDARY_FILE} names its secondary's identity {identity}) and records may live on that secondary: open it with its [secondary] (--secondary DIR); if that disk is lost for good, give a new empty directory as the secondary with secondary.accept_new_identity = true"
                    ),
                });
            }
        }
        Some(secondary) => {
            if has(
                secondary.fs.as_ref(),
                &secondary.path,
                EXPECTED_SECONDARY_FILE,
            )? {
                return Err(Error::WrongRole {
                    dir: secondary.path.clone(),
                    reason: format!(
                        "given as the secondary, but it is the primary of a failover WAL (it holds {EXPECTED_SECONDARY_FILE}): are primary.dir and secondary.dir swapped?"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Whether `dir/name` exists (a missing directory has nothing).
fn has(fs: &dyn Fs, dir: &Path, name: &str) -> Result<bool> {
    match fs.stat(&dir.join(name)) {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_files_are_recognised_and_other_files_are_not() {
        for name in [
            "000001.log",
            "000001-002.log",
            "recycle-000003.log",
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
