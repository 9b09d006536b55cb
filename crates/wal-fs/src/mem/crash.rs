//! The crash model of a [`super::MemFs`] (documented there): what a power
//! loss leaves of each unsynced directory entry and of each file's
//! unsynced writes, drawn from a seed, and the report of what it did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use crate::rng::SplitMix64;

use super::tree::{DirNode, EntryKey, FileNode, Ino, Node, PendingWrite, State};
use super::{PAGE_SIZE, SECTOR_SIZE, SUBSECTOR_SIZE, SUBSECTORS_PER_SECTOR};

/// How a crash treats files with unsynced writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CrashMode {
    /// Each file draws one of the four modes below from the seed.
    #[default]
    Random,
    /// Every unsynced write is lost.
    DropUnsynced,
    /// A prefix of the unsynced writes survives.
    KeepPrefix,
    /// A prefix survives with its last 4 KiB sector torn.
    TearSector,
    /// Each unsynced page independently survives.
    Pages,
}

/// How a crash treats directory entries changed since the last
/// [`crate::Fs::sync_dir`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EntryMode {
    /// Each entry (or group of entries linked by a rename) draws durable or
    /// current from the seed.
    #[default]
    Random,
    /// Every changed entry reverts to its durable state (the worst case for
    /// a caller that forgot a `sync_dir`).
    Durable,
    /// Every changed entry keeps its current state.
    Current,
}

/// The state a changed directory entry kept in a crash image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryState {
    /// As of the last [`crate::Fs::sync_dir`].
    Durable,
    /// As before the crash.
    Current,
}

/// Options of [`crate::MemFs::crash_image_with`]: by default every choice is drawn
/// from the seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashOptions {
    files: CrashMode,
    entries: EntryMode,
}

impl CrashOptions {
    /// Every choice drawn from the seed.
    pub fn new() -> CrashOptions {
        CrashOptions::default()
    }

    /// Forces how files with unsynced writes crash.
    #[must_use]
    pub fn files(mut self, mode: CrashMode) -> CrashOptions {
        self.files = mode;
        self
    }

    /// Forces how changed directory entries crash.
    #[must_use]
    pub fn entries(mut self, mode: EntryMode) -> CrashOptions {
        self.entries = mode;
        self
    }
}

/// What a crash did to one file that had unsynced writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileCrash {
    /// Every unsynced write was lost.
    DropUnsynced,
    /// The first `kept` bytes of the unsynced writes, in write order,
    /// survived.
    KeepPrefix {
        /// Bytes of unsynced writes kept.
        kept: u64,
    },
    /// Like [`FileCrash::KeepPrefix`], then the sector at offset `sector`
    /// (the one holding the last kept byte) was torn: sub-sector `i` holds
    /// the new bytes if bit `i` of `new_mask` is set, else the old ones.
    TearSector {
        /// Bytes of unsynced writes kept before tearing.
        kept: u64,
        /// The torn sector's offset (a multiple of [`SECTOR_SIZE`]).
        sector: u64,
        /// Which 512-byte sub-sectors hold new bytes.
        new_mask: u8,
    },
    /// Of the `pages` pages touched by unsynced writes, `persisted` kept
    /// their latest content and the others their durable content.
    Pages {
        /// Pages touched by unsynced writes.
        pages: u64,
        /// Pages that kept the new bytes.
        persisted: u64,
    },
}

/// One file in a [`CrashReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// The file's path in the image.
    pub path: PathBuf,
    /// Its durable length before the crash.
    pub durable_len: u64,
    /// Its length before the crash.
    pub len_before: u64,
    /// Its length in the image.
    pub len_after: u64,
    /// What the crash did.
    pub crash: FileCrash,
}

/// One changed directory entry in a [`CrashReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryReport {
    /// The entry's path.
    pub path: PathBuf,
    /// Which state it kept.
    pub kept: EntryState,
    /// Whether the name exists in the image.
    pub present: bool,
}

/// What [`crate::MemFs::crash_image_report`] did, for a failing test to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashReport {
    /// The seed the image was made from.
    pub seed: u64,
    /// Every directory entry that was not durable, in path order.
    pub entries: Vec<EntryReport>,
    /// Every file of the image that had unsynced writes, in path order.
    pub files: Vec<FileReport>,
}

impl State {
    /// Builds the crash image of this state.
    pub(super) fn crash(&self, seed: u64, options: CrashOptions) -> (State, CrashReport) {
        let mut rng = SplitMix64::new(seed);
        let dirs = self.walk_dirs();
        let changes = self.decide_entries(&dirs, &mut rng, options.entries);
        let mut image = State {
            nodes: HashMap::new(),
            next_ino: self.next_ino,
            renames: Vec::new(),
            locks: BTreeSet::new(),
        };
        let entries = self.crash_dirs(&dirs, &changes, &mut image);
        let files = self.crash_files(&dirs, &mut rng, options.files, &mut image);
        let report = CrashReport {
            seed,
            entries,
            files,
        };
        (image, report)
    }

    /// Finds the entries whose current and durable states differ and draws
    /// which state each keeps.
    pub(super) fn decide_entries(
        &self,
        dirs: &[(Ino, PathBuf)],
        rng: &mut SplitMix64,
        mode: EntryMode,
    ) -> EntryChanges {
        let mut changes = EntryChanges::default();
        for (dir, dir_path) in dirs {
            let d = self.dir(*dir);
            let names: BTreeSet<&String> = d.current.keys().chain(d.durable.keys()).collect();
            for name in names {
                if d.differs(name) {
                    let key = (*dir, name.clone());
                    changes.index.insert(key, changes.paths.len());
                    changes.paths.push(dir_path.join(name));
                }
            }
        }
        let n = changes.paths.len();

        // Entries linked by unsynced renames form groups (union-find) that
        // keep their states together.
        let mut group: Vec<usize> = (0..n).collect();
        for (a, b) in &self.renames {
            if let (Some(&i), Some(&j)) = (changes.index.get(a), changes.index.get(b)) {
                let (ri, rj) = (root(&mut group, i), root(&mut group, j));
                group[ri.max(rj)] = ri.min(rj);
            }
        }
        // Drawn in walk order of each group's first entry, for determinism.
        let mut group_state: HashMap<usize, EntryState> = HashMap::new();
        for i in 0..n {
            let r = root(&mut group, i);
            let state = *group_state.entry(r).or_insert_with(|| match mode {
                EntryMode::Current => EntryState::Current,
                EntryMode::Random if rng.coin() => EntryState::Current,
                EntryMode::Durable | EntryMode::Random => EntryState::Durable,
            });
            changes.kept.push(state);
        }
        changes
    }

    /// Puts the image's directories into `image`; reports the changed
    /// entries.
    pub(super) fn crash_dirs(
        &self,
        dirs: &[(Ino, PathBuf)],
        changes: &EntryChanges,
        image: &mut State,
    ) -> Vec<EntryReport> {
        let mut reports = Vec::with_capacity(changes.paths.len());
        for (dir, _) in dirs {
            let d = self.dir(*dir);
            let mut decided = BTreeMap::new();
            let names: BTreeSet<&String> = d.current.keys().chain(d.durable.keys()).collect();
            for name in names {
                let chosen = match changes.index.get(&(*dir, name.clone())) {
                    None => d.current.get(name),
                    Some(&i) => {
                        let chosen = match changes.kept[i] {
                            EntryState::Durable => d.durable.get(name),
                            EntryState::Current => d.current.get(name),
                        };
                        reports.push(EntryReport {
                            path: changes.paths[i].clone(),
                            kept: changes.kept[i],
                            present: chosen.is_some(),
                        });
                        chosen
                    }
                };
                if let Some(&ino) = chosen {
                    decided.insert(name.clone(), ino);
                }
            }
            let node = DirNode {
                current: decided.clone(),
                durable: decided,
            };
            image.nodes.insert(*dir, Node::Dir(node));
        }
        reports
    }

    /// Puts the image's files into `image`, each decided once however many
    /// names it has; reports those that had unsynced writes.
    pub(super) fn crash_files(
        &self,
        dirs: &[(Ino, PathBuf)],
        rng: &mut SplitMix64,
        mode: CrashMode,
        image: &mut State,
    ) -> Vec<FileReport> {
        let mut reports = Vec::new();
        for (dir, dir_path) in dirs {
            let Node::Dir(d) = &image.nodes[dir] else {
                unreachable!("directories were copied first");
            };
            let files: Vec<(PathBuf, Ino)> = d
                .current
                .iter()
                .filter(|&(_, ino)| !self.is_dir(*ino))
                .map(|(name, &ino)| (dir_path.join(name), ino))
                .collect();
            for (path, ino) in files {
                if image.nodes.contains_key(&ino) {
                    continue;
                }
                let f = self.file(ino);
                let (content, crash) = crash_file(f, rng, mode);
                if let Some(crash) = crash {
                    reports.push(FileReport {
                        path,
                        durable_len: f.durable.len() as u64,
                        len_before: f.current.len() as u64,
                        len_after: content.len() as u64,
                        crash,
                    });
                }
                let node = FileNode {
                    current: content.clone(),
                    durable: content,
                    pending: Vec::new(),
                    handles: 0,
                };
                image.nodes.insert(ino, Node::File(node));
            }
        }
        reports
    }
}

/// The directory entries a crash must decide.
#[derive(Default)]
pub(super) struct EntryChanges {
    /// Each changed entry's position in `paths` and `kept`.
    pub(super) index: HashMap<EntryKey, usize>,
    /// The changed entries' paths, in walk order.
    pub(super) paths: Vec<PathBuf>,
    /// The state each keeps.
    pub(super) kept: Vec<EntryState>,
}

/// The representative of `i`'s group in a union-find forest.
pub(super) fn root(group: &mut [usize], mut i: usize) -> usize {
    while group[i] != i {
        group[i] = group[group[i]];
        i = group[i];
    }
    i
}

/// A piece of new bytes kept by a crash, at a file offset.
pub(super) type Piece<'a> = (u64, &'a [u8]);

/// The content a crash leaves in `f`, and what it did (`None` if the file
/// had no unsynced write).
pub(super) fn crash_file(
    f: &FileNode,
    rng: &mut SplitMix64,
    mode: CrashMode,
) -> (Vec<u8>, Option<FileCrash>) {
    if f.pending.is_empty() {
        return (f.durable.clone(), None);
    }
    let mode = match mode {
        CrashMode::Random => [
            CrashMode::DropUnsynced,
            CrashMode::KeepPrefix,
            CrashMode::TearSector,
            CrashMode::Pages,
        ][rng.below(4) as usize],
        forced => forced,
    };
    let total = f.unsynced_bytes();
    match mode {
        CrashMode::Random | CrashMode::DropUnsynced => {
            (f.durable.clone(), Some(FileCrash::DropUnsynced))
        }
        CrashMode::KeepPrefix => {
            let kept = if rng.below(4) == 0 {
                // A write boundary: a clean prefix of whole writes.
                let n = rng.below(f.pending.len() as u64 + 1) as usize;
                f.pending[..n].iter().map(|w| w.data.len() as u64).sum()
            } else {
                rng.below(total + 1)
            };
            let pieces = prefix(&f.pending, kept);
            (
                overlay(&f.durable, &pieces),
                Some(FileCrash::KeepPrefix { kept }),
            )
        }
        CrashMode::TearSector => {
            // At least one byte, so that there is a sector to tear.
            let kept = 1 + rng.below(total);
            let pieces = prefix(&f.pending, kept);
            let (last_offset, last) = pieces.last().expect("kept >= 1");
            let last_byte = last_offset + last.len() as u64 - 1;
            let sector = last_byte / SECTOR_SIZE * SECTOR_SIZE;
            let new_mask = rng.below(1 << SUBSECTORS_PER_SECTOR) as u8;
            let old: Vec<(u64, u64)> = (0..SUBSECTORS_PER_SECTOR)
                .filter(|i| new_mask & (1 << i) == 0)
                .map(|i| {
                    let start = sector + i * SUBSECTOR_SIZE;
                    (start, start + SUBSECTOR_SIZE)
                })
                .collect();
            let pieces: Vec<Piece<'_>> = pieces.into_iter().flat_map(|p| clip(p, &old)).collect();
            let crash = FileCrash::TearSector {
                kept,
                sector,
                new_mask,
            };
            (overlay(&f.durable, &pieces), Some(crash))
        }
        CrashMode::Pages => {
            let mut pages = BTreeSet::new();
            for w in &f.pending {
                let first = w.offset / PAGE_SIZE;
                let last = (w.offset + w.data.len() as u64 - 1) / PAGE_SIZE;
                pages.extend(first..=last);
            }
            let len = f.current.len() as u64;
            let mut pieces = Vec::new();
            for &page in &pages {
                if rng.coin() {
                    let start = page * PAGE_SIZE;
                    let end = (start + PAGE_SIZE).min(len);
                    pieces.push((start, &f.current[start as usize..end as usize]));
                }
            }
            let crash = FileCrash::Pages {
                pages: pages.len() as u64,
                persisted: pieces.len() as u64,
            };
            (overlay(&f.durable, &pieces), Some(crash))
        }
    }
}

/// The first `kept` bytes of `writes`, in write order.
pub(super) fn prefix(writes: &[PendingWrite], mut kept: u64) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    for w in writes {
        if kept == 0 {
            break;
        }
        let n = (w.data.len() as u64).min(kept);
        pieces.push((w.offset, &w.data[..n as usize]));
        kept -= n;
    }
    pieces
}

/// The parts of `piece` outside the sorted, disjoint ranges `drop`.
pub(super) fn clip<'a>((offset, data): Piece<'a>, drop: &[(u64, u64)]) -> Vec<Piece<'a>> {
    let end = offset + data.len() as u64;
    let mut out = Vec::new();
    let mut at = offset;
    for &(d_start, d_end) in drop {
        if d_end <= at || d_start >= end {
            continue;
        }
        if d_start > at {
            out.push((
                at,
                &data[(at - offset) as usize..(d_start - offset) as usize],
            ));
        }
        at = d_end.min(end);
    }
    if at < end {
        out.push((at, &data[(at - offset) as usize..]));
    }
    out
}

/// `durable` with `pieces` written over it in order; the result is as long
/// as the durable content or the furthest piece, zero-filling holes.
pub(super) fn overlay(durable: &[u8], pieces: &[Piece<'_>]) -> Vec<u8> {
    let len = pieces
        .iter()
        .map(|(o, d)| (o + d.len() as u64) as usize)
        .fold(durable.len(), usize::max);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(durable);
    out.resize(len, 0);
    for &(offset, data) in pieces {
        let start = offset as usize;
        out[start..start + data.len()].copy_from_slice(data);
    }
    out
}
