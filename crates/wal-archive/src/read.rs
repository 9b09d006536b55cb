//! Reading an archive: listing its logs, fetching one with every check,
//! verifying all of them, and restoring them into a directory the managers
//! open.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use wal_manager::layout::is_wal_file_name;
use wal_manager::{LogNum, Sequencing};
use wal_record::End;

use crate::encode::{ArchivedRecord, ObjectReader, SegmentEncoder};
use crate::error::{Error, Result};
use crate::manifest::{
    Manifest, RecordSummary, data_name, manifest_name, parse_data_name, parse_manifest_name,
};
use crate::store::{Store, create_dir_durably};

/// One log of an archive, as listed.
#[derive(Clone, Debug)]
pub struct ListedLog {
    /// The log.
    pub log: LogNum,
    /// Its manifest, or why it cannot be read (a damaged manifest).
    pub manifest: std::result::Result<Manifest, String>,
    /// The size of its data object, if there is one.
    pub data_size: Option<u64>,
}

/// What an archive holds.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Logs with a manifest (archived, unless damaged), by number.
    pub logs: Vec<ListedLog>,
    /// Data objects without a manifest: uploads interrupted before they
    /// completed, which the next upload of that log replaces. Not part of
    /// the archive.
    pub incomplete: Vec<(LogNum, u64)>,
}

impl Listing {
    /// The manifests of every log whose manifest reads, by number.
    pub fn manifests(&self) -> impl Iterator<Item = &Manifest> {
        self.logs.iter().filter_map(|l| l.manifest.as_ref().ok())
    }
}

/// Lists the archive: every manifest (read and checked) and every data
/// object.
///
/// # Errors
/// As [`Store::list`] and [`Store::get`].
pub fn list(store: &Store) -> Result<Listing> {
    let mut manifests = Vec::new();
    let mut data: BTreeMap<LogNum, u64> = BTreeMap::new();
    for object in store.list()? {
        if let Some(log) = parse_manifest_name(&object.name) {
            manifests.push(log);
        } else if let Some(log) = parse_data_name(&object.name) {
            data.insert(log, object.size);
        }
    }
    manifests.sort_unstable();
    let mut listing = Listing::default();
    for log in manifests {
        let manifest = match store.get(&manifest_name(log))? {
            Some(text) => Manifest::decode(&text, log),
            None => Err("the manifest vanished while listing".to_owned()),
        };
        listing.logs.push(ListedLog {
            log,
            manifest,
            data_size: data.remove(&log),
        });
    }
    listing.incomplete = data.into_iter().collect();
    Ok(listing)
}

/// The data object of the log `manifest` describes, checked against it:
/// present, of its size and CRC-32C.
///
/// # Errors
/// [`Error::Corrupt`] naming what differs; as [`Store::get`].
pub fn fetch(store: &Store, manifest: &Manifest) -> Result<Bytes> {
    let name = data_name(manifest.log);
    let corrupt = |reason: String| Error::Corrupt {
        log: manifest.log,
        object: store.object_url(&name),
        reason,
    };
    let bytes = store
        .get(&name)?
        .ok_or_else(|| corrupt("its data object is missing although its manifest exists".into()))?;
    if bytes.len() as u64 != manifest.size {
        return Err(corrupt(format!(
            "{} bytes, the manifest says {}",
            bytes.len(),
            manifest.size
        )));
    }
    let crc = crc32c::crc32c(&bytes);
    if crc != manifest.crc32c {
        return Err(corrupt(format!(
            "CRC-32C {crc:08x}, the manifest says {:08x}",
            manifest.crc32c
        )));
    }
    Ok(bytes)
}

/// Calls `f` with every record of an archived log's data object (from
/// [`fetch`]), in order, then checks that the object ends with its
/// trailer and holds exactly the records its manifest describes.
///
/// # Errors
/// [`Error::Corrupt`]; or `f`'s error.
pub fn for_each_record<E>(
    store: &Store,
    bytes: &[u8],
    manifest: &Manifest,
    mut f: impl FnMut(&ArchivedRecord<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<RecordSummary, E>
where
    E: From<Error>,
{
    let corrupt = |reason: String| Error::Corrupt {
        log: manifest.log,
        object: store.object_url(&data_name(manifest.log)),
        reason,
    };
    let mut reader = ObjectReader::new(bytes, manifest.log, manifest.sequencing);
    let mut summary = RecordSummary::default();
    loop {
        match reader.next() {
            Ok(Some(r)) => {
                summary.add(r.seq, r.stored);
                f(&r)?;
            }
            Ok(None) => break,
            Err(reason) => return Err(corrupt(reason).into()),
        }
    }
    match reader.end() {
        Some(End::Trailer { .. }) => {}
        other => {
            return Err(corrupt(format!(
                "it does not end with its trailer ({other:?}): it was cut or damaged"
            ))
            .into());
        }
    }
    if summary != manifest.summary {
        return Err(corrupt(format!(
            "it holds {} records ({:?}..={:?}, records CRC {:08x}), the manifest says {} ({:?}..={:?}, {:08x})",
            summary.records,
            summary.first,
            summary.last,
            summary.records_crc32c,
            manifest.summary.records,
            manifest.summary.first,
            manifest.summary.last,
            manifest.summary.records_crc32c
        ))
        .into());
    }
    Ok(summary)
}

/// Fetches and fully checks one archived log: its object's size and
/// CRC-32C, every record, its trailer, its manifest's figures.
///
/// # Errors
/// [`Error::Corrupt`]; as [`Store::get`].
pub fn verify_log(store: &Store, manifest: &Manifest) -> Result<()> {
    let bytes = fetch(store, manifest)?;
    for_each_record::<Error>(store, &bytes, manifest, |_| Ok(()))?;
    Ok(())
}

/// The sequencing of every log of `manifests`, which must agree.
///
/// # Errors
/// [`Error::MixedSequencing`].
pub fn sequencing_of<'m>(
    store: &Store,
    manifests: impl IntoIterator<Item = &'m Manifest>,
) -> Result<Option<Sequencing>> {
    let mut seen: Option<(Sequencing, LogNum)> = None;
    for m in manifests {
        match seen {
            None => seen = Some((m.sequencing, m.log)),
            Some((s, log)) if s != m.sequencing => {
                return Err(Error::MixedSequencing {
                    url: store.url().to_owned(),
                    first: s.name(),
                    first_log: log,
                    second: m.sequencing.name(),
                    second_log: m.log,
                });
            }
            Some(_) => {}
        }
    }
    Ok(seen.map(|(s, _)| s))
}

/// Where a restore is.
#[derive(Clone, Copy, Debug)]
pub struct RestoreProgress {
    /// Bytes of archived logs downloaded so far.
    pub done_bytes: u64,
    /// Bytes of the archived logs to restore.
    pub total_bytes: u64,
    /// The log being restored.
    pub log: LogNum,
}

/// What a restore did.
#[derive(Clone, Debug, Default)]
pub struct RestoreReport {
    /// The logs written, with their record counts, by number.
    pub logs: Vec<(LogNum, u64)>,
    /// The last log was cut after `--until-lsn` (its later records left
    /// out).
    pub cut: bool,
    /// The last sequence number (LSN, or batch sequence number) restored.
    pub last: Option<u64>,
    /// How the restored records are sequenced (open the directory with
    /// this `[log] sequencing`).
    pub sequencing: Option<Sequencing>,
    /// Data objects without a manifest, left out.
    pub incomplete: usize,
}

/// Restores the archive into `to` (missing, or an empty directory), one
/// file `NNNNNN.log` per archived log, so that a manager opened on `to`
/// reads every archived record. With `until`, stops at the first record
/// whose LSN (batch sequence number) is above it: that record and
/// everything after it are left out. Every object is checked (size,
/// CRC-32C, records, trailer) before its file is written; each file is
/// written under a temporary name, synced and renamed, and the directory
/// is synced at the end.
///
/// # Errors
/// [`Error::RestoreTarget`] (not empty, not a directory); a damaged
/// archive ([`Error::Corrupt`], [`Error::MixedSequencing`]); as
/// [`Store::get`]; [`Error::Io`] writing the files.
pub fn restore(
    store: &Store,
    to: &Path,
    until: Option<u64>,
    progress: &mut dyn FnMut(RestoreProgress),
) -> Result<RestoreReport> {
    check_restore_target(to)?;
    let listing = list(store)?;
    for l in &listing.logs {
        if let Err(reason) = &l.manifest {
            return Err(Error::Corrupt {
                log: l.log,
                object: store.object_url(&manifest_name(l.log)),
                reason: format!("its manifest: {reason}"),
            });
        }
    }
    let manifests: Vec<&Manifest> = listing
        .manifests()
        .take_while(|m| match (until, m.summary.first) {
            (Some(until), Some(first)) => first <= until,
            _ => true,
        })
        .collect();
    let sequencing = sequencing_of(store, manifests.iter().copied())?;
    create_dir_durably(to)?;
    let total_bytes = manifests.iter().map(|m| m.size).sum();
    let mut report = RestoreReport {
        sequencing,
        incomplete: listing.incomplete.len(),
        ..RestoreReport::default()
    };
    let mut done_bytes = 0;
    for m in manifests {
        progress(RestoreProgress {
            done_bytes,
            total_bytes,
            log: m.log,
        });
        let bytes = fetch(store, m)?;
        let cut = until.is_some_and(|u| m.summary.last.is_some_and(|last| last > u));
        let (bytes, summary) = if cut {
            let until = until.unwrap_or(u64::MAX);
            let mut encoder = SegmentEncoder::new(m.log)?;
            let mut kept_all = true;
            for_each_record::<Error>(store, &bytes, m, |r| {
                if r.seq > until {
                    kept_all = false;
                } else if kept_all {
                    encoder.push(r.seq, r.stored)?;
                }
                Ok(())
            })?;
            let (bytes, summary) = encoder.finish()?;
            (Bytes::from(bytes), summary)
        } else {
            let summary = for_each_record::<Error>(store, &bytes, m, |_| Ok(()))?;
            (bytes, summary)
        };
        write_durably(to, &data_name(m.log), &bytes)?;
        done_bytes += m.size;
        report.logs.push((m.log, summary.records));
        report.last = summary.last.or(report.last);
        if cut {
            report.cut = true;
            break;
        }
    }
    sync_dir(to)?;
    Ok(report)
}

/// Refuses a restore target that exists and is not an empty directory.
fn check_restore_target(to: &Path) -> Result<()> {
    let refuse = |reason: String| Error::RestoreTarget {
        dir: to.to_owned(),
        reason,
    };
    match std::fs::read_dir(to) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(entry) => {
                let name = entry
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .unwrap_or_default();
                let what = if is_wal_file_name(&name) {
                    "it holds a WAL already"
                } else {
                    "it is not empty"
                };
                Err(refuse(format!(
                    "{what} ({name}, ...): restore into a new or empty directory"
                )))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(refuse("it is not a directory".into()))
        }
        Err(source) => Err(Error::Io {
            path: to.to_owned(),
            source,
        }),
    }
}

/// Writes `dir/name` under a temporary name, syncs it and renames it.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp: PathBuf = dir.join(format!("{name}.restoring"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })
}
