//! Small metadata files: the LSN floor and the secondary's identity.
//!
//! Both are tiny text files written atomically (temporary file, sync,
//! rename, directory sync) and checked with a CRC-32C line, so a torn or
//! hand-edited file is reported rather than believed.
//!
//! * `LSN-FLOOR` (in the directory where the writer was when it was
//!   written): no LSN below this value will ever be assigned again. The
//!   manager writes it before handing out logs for deletion, so that LSNs
//!   keep increasing across restarts even when every log holding the highest
//!   LSN is gone.
//! * `WAL-IDENTITY` (secondary): a random identifier, created the first time
//!   a failover manager opens the directory.
//! * `WAL-SECONDARY` (primary): the identity the primary expects to find in
//!   its secondary. A mismatch means the wrong disk is mounted there.

use std::path::Path;

use wal_fs::Fs;

use crate::error::{Error, Result};
use crate::types::Lsn;

/// File name of the LSN floor.
pub const LSN_FLOOR_FILE: &str = "LSN-FLOOR";
/// File name of a secondary's identity.
pub const IDENTITY_FILE: &str = "WAL-IDENTITY";
/// File name, in the primary, of the identity its secondary must have.
pub const EXPECTED_SECONDARY_FILE: &str = "WAL-SECONDARY";

const MAGIC: &str = "failwal-meta v1";

/// Writes `key = value` durably and atomically to `dir/name`.
///
/// # Errors
/// Any filesystem error.
pub(crate) fn write(fs: &dyn Fs, dir: &Path, name: &str, key: &str, value: &str) -> Result<()> {
    let body = format!("{MAGIC}\n{key} = {value}\n");
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

/// Reads `key` from `dir/name`; `Ok(None)` if the file does not exist.
///
/// # Errors
/// The file cannot be read, or is damaged ([`Error::BadMetadata`]).
pub(crate) fn read(fs: &dyn Fs, dir: &Path, name: &str, key: &str) -> Result<Option<String>> {
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
    let mut lines = text.lines();
    let (Some(magic), Some(entry), Some(crc), None) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return Err(bad(&path, "expected three lines".into()));
    };
    if magic != MAGIC {
        return Err(bad(&path, format!("first line {magic:?} is not {MAGIC:?}")));
    }
    let body = format!("{magic}\n{entry}\n");
    let want = format!("crc32c = {:08x}", crc32c::crc32c(body.as_bytes()));
    if crc != want {
        return Err(bad(&path, "checksum mismatch (torn or edited)".into()));
    }
    match entry.split_once(" = ") {
        Some((k, v)) if k == key => Ok(Some(v.to_owned())),
        _ => Err(bad(
            &path,
            format!("expected a {key:?} entry, found {entry:?}"),
        )),
    }
}

fn bad(path: &Path, reason: String) -> Error {
    Error::BadMetadata {
        path: path.to_owned(),
        reason,
    }
}

/// Reads the LSN floor of `dir` (0 when absent).
///
/// # Errors
/// As [`read`], or a value that is not a number.
pub(crate) fn read_floor(fs: &dyn Fs, dir: &Path) -> Result<Lsn> {
    match read(fs, dir, LSN_FLOOR_FILE, "lsn_floor")? {
        None => Ok(Lsn(0)),
        Some(v) => v.parse().map(Lsn).map_err(|_| Error::BadMetadata {
            path: dir.join(LSN_FLOOR_FILE),
            reason: format!("lsn_floor {v:?} is not a number"),
        }),
    }
}

/// Writes the LSN floor of `dir`.
///
/// # Errors
/// Any filesystem error.
pub(crate) fn write_floor(fs: &dyn Fs, dir: &Path, floor: Lsn) -> Result<()> {
    write(fs, dir, LSN_FLOOR_FILE, "lsn_floor", &floor.0.to_string())
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
