//! [`MemFs`]: an in-memory filesystem that knows which bytes and which
//! directory entries are durable, and can produce seeded power-loss crash
//! images. The crash model is documented on [`MemFs`].

mod crash;
mod fs;
#[cfg(test)]
mod tests;
mod tree;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Error, Op, Result};

pub use self::crash::{
    CrashMode, CrashOptions, CrashReport, EntryMode, EntryReport, EntryState, FileCrash, FileReport,
};
use self::tree::{FileNode, Node, State, components, names_root};

/// The unit a crash can tear: within it, each [`SUBSECTOR_SIZE`] piece is
/// written atomically, but not the sector as a whole.
pub const SECTOR_SIZE: u64 = 4096;
/// The unit a crash never tears.
pub const SUBSECTOR_SIZE: u64 = 512;
/// The page-cache page: the unit that write-back persists, in any order.
pub const PAGE_SIZE: u64 = 4096;

/// Sub-sectors per torn sector: one bit each in [`FileCrash::TearSector`].
const SUBSECTORS_PER_SECTOR: u64 = SECTOR_SIZE / SUBSECTOR_SIZE;
const _: () = assert!(SECTOR_SIZE % SUBSECTOR_SIZE == 0);
const _: () = assert!(SUBSECTORS_PER_SECTOR == u8::BITS as u64);

/// An in-memory filesystem for tests, with power-loss crash images.
///
/// Cloning is cheap and clones share the filesystem; a crash image is a new,
/// independent filesystem.
///
/// ```
/// use std::path::Path;
/// use wal_fs::{File, Fs, MemFs};
///
/// let fs = MemFs::new();
/// wal_fs::create_dir_all_durably(&fs, Path::new("/wal")).unwrap();
/// let mut f = fs.create(Path::new("/wal/a.log")).unwrap();
/// f.write(b"synced").unwrap();
/// f.sync_data().unwrap();
/// fs.sync_dir(Path::new("/wal")).unwrap();
/// f.write(b" maybe").unwrap();
///
/// let seed = 7;
/// let image = fs.crash_image(seed);
/// let bytes = image.read_file(Path::new("/wal/a.log")).unwrap();
/// assert!(bytes.starts_with(b"synced"), "seed {seed}: synced bytes survive");
/// assert!(b"synced maybe".starts_with(&bytes));
/// ```
///
/// # The crash model
///
/// The model encodes what the project assumes of a disk (Linux `fdatasync`
/// on a journaling filesystem, a 4 KiB page cache over 512-byte sectors):
///
/// * **Files.** Each file has *durable* content (what the last
///   [`crate::File::sync_data`] or [`crate::Fs::truncate`] made durable) and an ordered log
///   of the *unsynced writes* since. `sync_data` folds the log into the
///   durable content, together with the length. In a crash image a surviving
///   file holds its durable content overlaid with one of ([`FileCrash`]):
///   * *drop*: no unsynced byte;
///   * *prefix*: the unsynced writes in write order, cut at an arbitrary byte
///     (a quarter of the time at a write boundary);
///   * *torn sector*: a prefix of at least one byte, then the 4 KiB sector
///     holding its last byte is torn: each of its eight 512-byte
///     sub-sectors independently holds the prefix's bytes ("new") or the
///     durable bytes ("old", a hole beyond the durable length);
///   * *pages*: each 4 KiB page touched by an unsynced write independently
///     holds the file's latest bytes (as written back from the page cache)
///     or the durable bytes, in any order of pages.
///
///   The image's length is the larger of the durable length and the end of
///   the furthest new byte kept, so it lies between the durable length and
///   the length before the crash. At each offset a crash image holds the
///   durable byte, or a byte some write put at that offset, or — only at or
///   beyond the durable length — a zero: a hole where a later offset kept
///   new bytes and nothing durable was there (or the zero fill of a write
///   that started past the end of the file). Bytes never written at an
///   offset never appear there, and a durable byte is only ever replaced by
///   a byte written over it since the last sync.
/// * **Directory entries.** Each directory has a *durable* set of entries
///   (name to file) and a *current* one; [`crate::Fs::sync_dir`] makes the current
///   set durable. In a crash image, each entry whose current state differs
///   from its durable state (created, removed, replaced or renamed since the
///   last `sync_dir`) independently keeps its durable or its current state,
///   except that the entries touched by an unsynced rename keep their states
///   *together*: after `rename(a, b)` of a durable `a`, an image has exactly
///   one of `a` and `b` (before the rename or after it). A chain of unsynced
///   renames is all-or-nothing. A rename across directories links entries in
///   two directories and each needs its own `sync_dir` to become durable; an
///   image where one directory was synced and the other was not may show
///   the file under both names or neither.
/// * **Directories** are entries like files: one made by
///   [`crate::Fs::create_dir_all`] is durable only once its parent is synced
///   ([`crate::Fs::sync_dir`] of the parent), and a crash image may drop it, with
///   everything in it, until then ([`create_dir_all_durably`] creates and
///   syncs). Directories cannot be removed or renamed.
///
/// [`create_dir_all_durably`]: crate::create_dir_all_durably
/// * **Creating** an existing path makes a new, empty file and points the
///   name at it; open handles of the old file keep the old file, and a crash
///   image may show either (like creating a temporary file and renaming it
///   over the old one).
/// * **Locks** ([`crate::Fs::lock`]) live in this process only and do not carry
///   over to crash images.
///
/// A crash image is fully durable: crashing it again gives the same files.
/// Randomness comes only from the seed, so one printed seed reproduces an
/// image, and [`CrashReport`] says what each choice was.
#[derive(Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for MemFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the contents: they can be megabytes.
        f.debug_struct("MemFs").finish_non_exhaustive()
    }
}

/// What [`MemFs::files`] reports about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// The file's path, from the root (`/dir/name`).
    pub path: PathBuf,
    /// The current length.
    pub len: u64,
    /// The length a crash keeps for sure.
    pub durable_len: u64,
    /// The bytes written since the last sync (overlapping writes counted
    /// each time).
    pub unsynced_bytes: u64,
}

impl MemFs {
    /// An empty filesystem holding only the root directory `/`.
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// A power-loss crash image: a new, independent, fully durable
    /// filesystem (see [`MemFs`] for what it may contain).
    #[must_use]
    pub fn crash_image(&self, seed: u64) -> MemFs {
        self.crash_image_with(seed, CrashOptions::default()).0
    }

    /// [`MemFs::crash_image`], with a report of every choice made.
    pub fn crash_image_report(&self, seed: u64) -> (MemFs, CrashReport) {
        self.crash_image_with(seed, CrashOptions::default())
    }

    /// [`MemFs::crash_image_report`] with some choices forced.
    pub fn crash_image_with(&self, seed: u64, options: CrashOptions) -> (MemFs, CrashReport) {
        let (state, report) = self.state.lock().crash(seed, options);
        let image = MemFs {
            state: Arc::new(Mutex::new(state)),
        };
        (image, report)
    }

    /// Every file reachable by name (current entries), in path order.
    pub fn files(&self) -> Vec<FileInfo> {
        let st = self.state.lock();
        let mut out = Vec::new();
        for (dir, dir_path) in st.walk_dirs() {
            for (name, &ino) in &st.dir(dir).current {
                if let Node::File(f) = &st.nodes[&ino] {
                    out.push(FileInfo {
                        path: dir_path.join(name),
                        len: f.current.len() as u64,
                        durable_len: f.durable.len() as u64,
                        unsynced_bytes: f.pending.iter().map(|w| w.data.len() as u64).sum(),
                    });
                }
            }
        }
        out
    }

    /// The current content of file `path`.
    ///
    /// # Errors
    /// The file is missing or is a directory.
    pub fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        let st = self.state.lock();
        let ino = st
            .lookup_file(path)
            .map_err(|e| Error::io(Op::Read, path, e))?;
        Ok(st.file(ino).current.clone())
    }

    /// The durable content of file `path` (what a crash that drops every
    /// unsynced write would leave in it).
    ///
    /// # Errors
    /// The file is missing or is a directory.
    pub fn read_durable_file(&self, path: &Path) -> Result<Vec<u8>> {
        let st = self.state.lock();
        let ino = st
            .lookup_file(path)
            .map_err(|e| Error::io(Op::Read, path, e))?;
        Ok(st.file(ino).durable.clone())
    }

    /// Creates (or replaces) file `path` with `bytes`, creating missing
    /// parent directories; the content and the directory entry are durable
    /// at once.
    ///
    /// # Errors
    /// A component of the path is a file, or `path` is a directory.
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let err = |e| Error::io(Op::Create, path, e);
        let mut comps = components(path);
        let name = comps.pop().ok_or_else(|| err(names_root()))?;
        let mut st = self.state.lock();
        let dir = st.make_dirs(&comps, true).map_err(err)?;
        st.refuse_dir_at(dir, &name).map_err(err)?;
        let ino = st.alloc(Node::File(FileNode {
            current: bytes.to_vec(),
            durable: bytes.to_vec(),
            ..FileNode::default()
        }));
        let d = st.dir_mut(dir);
        let replaced = [
            d.current.insert(name.clone(), ino),
            d.durable.insert(name, ino),
        ];
        for old in replaced.into_iter().flatten() {
            st.free_if_unreferenced(old);
        }
        Ok(())
    }

    /// Overwrites durable bytes of file `path` at `offset` with `bytes`, in
    /// place and durably, as a bad sector or a stray write would. Bytes
    /// covered by unsynced writes stay as written (the page cache holds
    /// them), and a later sync writes them over the corruption.
    ///
    /// # Errors
    /// The file is missing, or the range is not within the durable length.
    pub fn corrupt(&self, path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
        let err = |e| Error::io(Op::Write, path, e);
        let mut st = self.state.lock();
        let ino = st.lookup_file(path).map_err(err)?;
        let f = st.file_mut(ino);
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(bytes.len());
        if end > f.durable.len() {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                "corruption range is beyond the durable length",
            );
            return Err(err(e));
        }
        f.durable[start..end].copy_from_slice(bytes);
        let mut covered = vec![false; bytes.len()];
        for w in &f.pending {
            let w_start = w.offset as usize;
            let w_end = w_start + w.data.len();
            for c in covered
                .iter_mut()
                .take(w_end.saturating_sub(start))
                .skip(w_start.saturating_sub(start))
            {
                *c = true;
            }
        }
        for (i, (&b, &c)) in bytes.iter().zip(&covered).enumerate() {
            if !c {
                f.current[start + i] = b;
            }
        }
        Ok(())
    }
}
