//! Small metadata files: the manager's state and the secondary's identity.
//!
//! They are tiny text files written atomically (temporary file, sync,
//! rename, directory sync) and checked with a CRC-32C line, so a torn or
//! hand-edited file is reported rather than believed.
//!
//! * `WAL-STATE` (in the directory the log was in when it was written; read
//!   from both, keeping the highest values): `obsolete_below`, the log
//!   number below which every log is obsolete, and `lsn_floor`, the next LSN
//!   at that time. `obsolete()` writes it before it hands out any file for
//!   deletion. A restarted manager deletes logs below `obsolete_below` rather
//!   than listing them: a deletion that a power cut interrupted can leave any
//!   subset of an obsolete log's files, and such leftovers must neither read
//!   as a damaged live log nor lower the next LSN. With no live log holding a
//!   record, the next LSN is `lsn_floor`.
//! * `WAL-IDENTITY` (secondary): a random identifier, created the first time
//!   a failover manager opens the directory.
//! * `WAL-SECONDARY` (primary): the identity the primary expects to find in
//!   its secondary. A mismatch means the wrong disk is mounted there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use wal_fs::Fs;

use crate::error::{Error, Result};
use crate::types::Lsn;

/// File name of the manager's durable state (LSN floor, obsolete logs).
pub const STATE_FILE: &str = "WAL-STATE";
/// File name of a secondary's identity.
pub const IDENTITY_FILE: &str = "WAL-IDENTITY";
/// File name, in the primary, of the identity its secondary must have.
pub const EXPECTED_SECONDARY_FILE: &str = "WAL-SECONDARY";

const MAGIC: &str = "failwal-meta v1";

/// Writes `key = value` lines durably and atomically to `dir/name`.
///
/// # Errors
/// Any filesystem error.
pub(crate) fn write_entries(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    entries: &[(&str, String)],
) -> Result<()> {
    let mut body = format!("{MAGIC}\n");
    for (key, value) in entries {
        // Writing to a String cannot fail.
        let _ = writeln!(body, "{key} = {value}");
    }
    let text = format!("{body}crc32c = {:08x}\n", crc32c::crc32c(body.as_bytes()));
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = fs.create(&tmp)?;
    f.write(text.as_bytes())?;
    f.sync_data()?;
    f.close()?;
    fs.rename(&tmp, &dir.join(name))?;
    fs.sync_dir(dir)?;
    Ok(())
}

/// Writes `key = value` durably and atomically to `dir/name`.
///
/// # Errors
/// Any filesystem error.
pub(crate) fn write(fs: &dyn Fs, dir: &Path, name: &str, key: &str, value: &str) -> Result<()> {
    write_entries(fs, dir, name, &[(key, value.to_owned())])
}

/// Reads the entries of `dir/name`; `Ok(None)` if the file does not exist.
///
/// # Errors
/// The file cannot be read, or is damaged ([`Error::BadMetadata`]).
pub(crate) fn read_entries(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>> {
    let path = dir.join(name);
    let f = match fs.open(&path) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = f.size()?;
    if size > 4096 {
        return Err(bad(
            &path,
            format!("{size} bytes is too large for a metadata file"),
        ));
    }
    let mut buf = vec![0; size as usize];
    let mut done = 0;
    while done < buf.len() {
        let n = f.read_at(&mut buf[done..], done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    let _ = f.close();
    let text = String::from_utf8(buf).map_err(|_| bad(&path, "not UTF-8 text".into()))?;
    let lines: Vec<&str> = text.lines().collect();
    let (Some(&magic), Some(&crc)) = (lines.first(), lines.last()) else {
        return Err(bad(&path, "empty".into()));
    };
    if magic != MAGIC || lines.len() < 2 {
        return Err(bad(&path, format!("first line {magic:?} is not {MAGIC:?}")));
    }
    let entries = &lines[1..lines.len() - 1];
    let mut body = format!("{MAGIC}\n");
    for e in entries {
        body.push_str(e);
        body.push('\n');
    }
    let want = format!("crc32c = {:08x}", crc32c::crc32c(body.as_bytes()));
    if crc != want {
        return Err(bad(&path, "checksum mismatch (torn or edited)".into()));
    }
    let mut map = BTreeMap::new();
    for e in entries {
        let Some((k, v)) = e.split_once(" = ") else {
            return Err(bad(&path, format!("{e:?} is not a `key = value` line")));
        };
        map.insert(k.to_owned(), v.to_owned());
    }
    Ok(Some(map))
}

/// Reads `key` from `dir/name`; `Ok(None)` if the file does not exist.
///
/// # Errors
/// The file cannot be read, is damaged, or lacks the key.
pub(crate) fn read(fs: &dyn Fs, dir: &Path, name: &str, key: &str) -> Result<Option<String>> {
    let Some(mut map) = read_entries(fs, dir, name)? else {
        return Ok(None);
    };
    map.remove(key)
        .map(Some)
        .ok_or_else(|| bad(&dir.join(name), format!("no {key:?} entry")))
}

fn bad(path: &Path, reason: String) -> Error {
    Error::BadMetadata {
        path: path.to_owned(),
        reason,
    }
}

/// What `WAL-STATE` remembers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WalState {
    /// No LSN below this is assigned again (used when no live log has a
    /// record).
    pub(crate) lsn_floor: Lsn,
    /// Logs below this number are obsolete: never live again.
    pub(crate) obsolete_below: u64,
}

/// Reads `WAL-STATE` from every directory and keeps the highest of each
/// value (both only ever grow).
///
/// # Errors
/// A state file is damaged or holds something that is not a number.
pub(crate) fn read_state(dirs: &crate::log::Dirs) -> Result<WalState> {
    let mut state = WalState::default();
    for dir in dirs.iter() {
        let Some(map) = read_entries(dir.fs.as_ref(), &dir.path, STATE_FILE)? else {
            continue;
        };
        let number = |key: &str| -> Result<u64> {
            let v = map
                .get(key)
                .ok_or_else(|| bad(&dir.path.join(STATE_FILE), format!("no {key:?} entry")))?;
            v.parse().map_err(|_| {
                bad(
                    &dir.path.join(STATE_FILE),
                    format!("{key} {v:?} is not a number"),
                )
            })
        };
        state.lsn_floor = state.lsn_floor.max(Lsn(number("lsn_floor")?));
        state.obsolete_below = state.obsolete_below.max(number("obsolete_below")?);
    }
    Ok(state)
}

/// Writes `WAL-STATE` to `dir`.
///
/// # Errors
/// Any filesystem error.
pub(crate) fn write_state(fs: &dyn Fs, dir: &Path, state: WalState) -> Result<()> {
    write_entries(
        fs,
        dir,
        STATE_FILE,
        &[
            ("lsn_floor", state.lsn_floor.0.to_string()),
            ("obsolete_below", state.obsolete_below.to_string()),
        ],
    )
}

/// A new random identity: 128 bits from the OS's hash seeds and the time,
/// hex encoded. Uniqueness, not secrecy, is what matters here.
pub(crate) fn new_identity() -> String {
    use std::fmt::Write;
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        let _ = write!(out, "{:016x}", h.finish());
    }
    out
}
