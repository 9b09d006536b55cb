//! Logical logs, their segments, and the scan that finds them on disk.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use wal_fs::Fs;

use crate::error::{Error, Result};
use crate::naming::{parse_segment_file_name, segment_file_name};
use crate::types::{DirId, LogNum, SegmentIndex};

/// One of the manager's directories and the filesystem it lives on.
#[derive(Clone, Debug)]
pub struct Dir {
    /// Primary or secondary.
    pub id: DirId,
    /// Its path.
    pub path: PathBuf,
    /// The filesystem to reach it through.
    pub fs: Arc<dyn Fs>,
}

impl Dir {
    /// The path of segment `index` of log `log` in this directory.
    pub fn segment_path(&self, log: LogNum, index: SegmentIndex) -> PathBuf {
        self.path.join(segment_file_name(log, index))
    }
}

/// The manager's directories: the primary, and the secondary in failover
/// mode.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// The primary directory.
    pub primary: Dir,
    /// The secondary directory (failover only).
    pub secondary: Option<Dir>,
}

impl Dirs {
    /// The directories a configuration names, reached through `fs`. No I/O:
    /// for tools that read logs without opening a manager (which would lock
    /// and initialise the directories).
    pub fn from_config(config: &crate::Config, fs: &Arc<dyn Fs>) -> Dirs {
        Dirs::with_fs(config, fs, fs)
    }

    /// The directories a configuration names, the primary reached through
    /// `primary_fs` and the secondary through `secondary_fs`. No I/O.
    pub(crate) fn with_fs(
        config: &crate::Config,
        primary_fs: &Arc<dyn Fs>,
        secondary_fs: &Arc<dyn Fs>,
    ) -> Dirs {
        Dirs {
            primary: Dir {
                id: DirId::Primary,
                path: config.primary.dir.clone(),
                fs: Arc::clone(primary_fs),
            },
            secondary: config.secondary.as_ref().map(|s| Dir {
                id: DirId::Secondary,
                path: s.dir.clone(),
                fs: Arc::clone(secondary_fs),
            }),
        }
    }

    /// The directory with this id.
    ///
    /// # Panics
    /// If asked for the secondary of a standalone manager.
    pub fn get(&self, id: DirId) -> &Dir {
        match id {
            DirId::Primary => &self.primary,
            DirId::Secondary => self
                .secondary
                .as_ref()
                .expect("a standalone manager has no secondary directory"),
        }
    }

    /// Every directory.
    pub fn iter(&self) -> impl Iterator<Item = &Dir> {
        std::iter::once(&self.primary).chain(self.secondary.as_ref())
    }
}

/// A file of an obsolete log, to be deleted with
/// [`crate::Manager::delete_obsolete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletableFile {
    /// The log it belongs to.
    pub log: LogNum,
    /// The directory it is in.
    pub dir: DirId,
    /// Its path.
    pub path: PathBuf,
    /// Its size when last known.
    pub size: u64,
}

/// One physical file of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Its index in the log.
    pub index: SegmentIndex,
    /// The directory it is in.
    pub dir: DirId,
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes when last looked at (approximate while written).
    pub size: u64,
}

/// A logical log and its segments, in index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalLog {
    /// The log's number.
    pub num: LogNum,
    /// Its segments, by increasing index. Indexes may have holes: a switch
    /// whose file could not be created uses up an index.
    pub segments: Vec<Segment>,
}

impl LogicalLog {
    /// The sum of its segments' sizes.
    pub fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
}

/// Lists the logs in `dirs`, merging segments found in both directories.
///
/// # Errors
/// A directory cannot be listed, a segment cannot be stat'ed, or the same
/// segment index of a log exists in both directories.
pub fn scan(dirs: &Dirs) -> Result<Vec<LogicalLog>> {
    let mut logs: BTreeMap<LogNum, BTreeMap<SegmentIndex, Segment>> = BTreeMap::new();
    for dir in dirs.iter() {
        for name in dir.fs.list(&dir.path)? {
            let Some((log, index)) = parse_segment_file_name(&name) else {
                continue;
            };
            let path = dir.path.join(&name);
            let meta = dir.fs.stat(&path)?;
            if meta.is_dir {
                return Err(Error::BadMetadata {
                    path,
                    reason: "is a directory, not a segment file".into(),
                });
            }
            let segment = Segment {
                index,
                dir: dir.id,
                path,
                size: meta.len,
            };
            if let Some(previous) = logs.entry(log).or_default().insert(index, segment) {
                let current = dir.segment_path(log, index);
                let (primary, secondary) = match previous.dir {
                    DirId::Primary => (previous.path, current),
                    DirId::Secondary => (current, previous.path),
                };
                return Err(Error::DuplicateSegment {
                    log,
                    index,
                    primary,
                    secondary,
                });
            }
        }
    }
    Ok(logs
        .into_iter()
        .map(|(num, segments)| LogicalLog {
            num,
            segments: segments.into_values().collect(),
        })
        .collect())
}
