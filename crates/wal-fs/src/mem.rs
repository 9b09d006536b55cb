//! [`MemFs`]: an in-memory filesystem that knows which bytes and which
//! directory entries are durable, and can produce seeded power-loss crash
//! images. The crash model is documented on [`MemFs`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::rng::SplitMix64;
use crate::{DirLock, Error, File, Fs, Metadata, Op, Result};

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
///   [`File::sync_data`] or [`Fs::truncate`] made durable) and an ordered log
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
///   (name to file) and a *current* one; [`Fs::sync_dir`] makes the current
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
///   [`Fs::create_dir_all`] is durable only once its parent is synced
///   ([`Fs::sync_dir`] of the parent), and a crash image may drop it, with
///   everything in it, until then ([`create_dir_all_durably`] creates and
///   syncs). Directories cannot be removed or renamed.
///
/// [`create_dir_all_durably`]: crate::create_dir_all_durably
/// * **Creating** an existing path makes a new, empty file and points the
///   name at it; open handles of the old file keep the old file, and a crash
///   image may show either (like creating a temporary file and renaming it
///   over the old one).
/// * **Locks** ([`Fs::lock`]) live in this process only and do not carry
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
/// [`Fs::sync_dir`].
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
    /// As of the last [`Fs::sync_dir`].
    Durable,
    /// As before the crash.
    Current,
}

/// Options of [`MemFs::crash_image_with`]: by default every choice is drawn
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

/// What [`MemFs::crash_image_report`] did, for a failing test to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashReport {
    /// The seed the image was made from.
    pub seed: u64,
    /// Every directory entry that was not durable, in path order.
    pub entries: Vec<EntryReport>,
    /// Every file of the image that had unsynced writes, in path order.
    pub files: Vec<FileReport>,
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
        if st
            .dir(dir)
            .current
            .get(&name)
            .is_some_and(|&old| st.is_dir(old))
        {
            return Err(err(is_a_dir()));
        }
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

/// An inode number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Ino(u64);

/// The root directory's inode.
const ROOT: Ino = Ino(0);

/// A directory entry: its directory and its name.
type EntryKey = (Ino, String);

struct State {
    nodes: HashMap<Ino, Node>,
    next_ino: u64,
    /// Unsynced renames: each pair of entries keeps its states together in a
    /// crash image. Pairs whose entries are both durable again are pruned
    /// at [`Fs::sync_dir`].
    renames: Vec<(EntryKey, EntryKey)>,
    /// Normalized paths of locked directories.
    locks: BTreeSet<PathBuf>,
}

impl Default for State {
    fn default() -> State {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::Dir(DirNode::default()));
        State {
            nodes,
            next_ino: ROOT.0 + 1,
            renames: Vec::new(),
            locks: BTreeSet::new(),
        }
    }
}

enum Node {
    Dir(DirNode),
    File(FileNode),
}

#[derive(Clone, Default)]
struct DirNode {
    current: BTreeMap<String, Ino>,
    /// INVARIANT: equal to `current` right after a `sync_dir`. A directory,
    /// once in `durable`, has the same entry in both (directories cannot be
    /// removed or renamed); one not yet synced is in `current` only.
    durable: BTreeMap<String, Ino>,
}

impl DirNode {
    fn differs(&self, name: &str) -> bool {
        self.current.get(name) != self.durable.get(name)
    }
}

#[derive(Default)]
struct FileNode {
    /// INVARIANT: `durable` with every write of `pending` applied in order
    /// (zero-filling any gap), so `current.len() >= durable.len()`.
    current: Vec<u8>,
    durable: Vec<u8>,
    /// The writes since the last sync, in order. None is empty.
    pending: Vec<PendingWrite>,
    /// Open handles; the file lives while it has a handle or a (current or
    /// durable) directory entry.
    handles: u32,
}

struct PendingWrite {
    offset: u64,
    data: Vec<u8>,
}

/// Writes `data` at `offset` of `buf`, zero-filling any gap before it.
fn write_into(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if start == buf.len() {
        buf.extend_from_slice(data);
        return;
    }
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[start..end].copy_from_slice(data);
}

impl FileNode {
    fn write_at(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        write_into(&mut self.current, offset, data);
        self.pending.push(PendingWrite {
            offset,
            data: data.to_vec(),
        });
    }

    /// Folds the unsynced writes into the durable content: O(bytes written
    /// since the last sync), not O(file).
    fn sync(&mut self) {
        for w in self.pending.drain(..) {
            write_into(&mut self.durable, w.offset, &w.data);
        }
        debug_assert_eq!(self.durable.len(), self.current.len());
    }

    fn unsynced_bytes(&self) -> u64 {
        self.pending.iter().map(|w| w.data.len() as u64).sum()
    }
}

/// The names along `path`, resolving `.` and `..` lexically; relative paths
/// are taken from the root.
fn components(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file or directory")
}

fn not_a_dir() -> io::Error {
    io::Error::new(io::ErrorKind::NotADirectory, "not a directory")
}

fn is_a_dir() -> io::Error {
    io::Error::new(io::ErrorKind::IsADirectory, "is a directory")
}

fn names_root() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "path names the root directory")
}

impl State {
    fn alloc(&mut self, node: Node) -> Ino {
        let ino = Ino(self.next_ino);
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.nodes[&ino], Node::Dir(_))
    }

    fn dir(&self, ino: Ino) -> &DirNode {
        match &self.nodes[&ino] {
            Node::Dir(d) => d,
            Node::File(_) => unreachable!("inode {ino:?} is not a directory"),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> &mut DirNode {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => d,
            _ => unreachable!("inode {ino:?} is not a directory"),
        }
    }

    fn file(&self, ino: Ino) -> &FileNode {
        match &self.nodes[&ino] {
            Node::File(f) => f,
            Node::Dir(_) => unreachable!("inode {ino:?} is not a file"),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> &mut FileNode {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => f,
            _ => unreachable!("inode {ino:?} is not a file"),
        }
    }

    /// Resolves names through current entries.
    fn resolve(&self, comps: &[String]) -> io::Result<Ino> {
        let mut cur = ROOT;
        for name in comps {
            let Node::Dir(d) = &self.nodes[&cur] else {
                return Err(not_a_dir());
            };
            cur = *d.current.get(name).ok_or_else(not_found)?;
        }
        Ok(cur)
    }

    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        self.resolve(&components(path))
    }

    fn lookup_dir(&self, path: &Path) -> io::Result<Ino> {
        let ino = self.lookup(path)?;
        if self.is_dir(ino) {
            Ok(ino)
        } else {
            Err(not_a_dir())
        }
    }

    fn lookup_file(&self, path: &Path) -> io::Result<Ino> {
        let ino = self.lookup(path)?;
        if self.is_dir(ino) {
            Err(is_a_dir())
        } else {
            Ok(ino)
        }
    }

    /// The directory that would hold `path`, and the last name.
    fn parent(&self, path: &Path) -> io::Result<(Ino, String)> {
        let mut comps = components(path);
        let name = comps.pop().ok_or_else(names_root)?;
        let dir = self.resolve(&comps)?;
        if !self.is_dir(dir) {
            return Err(not_a_dir());
        }
        Ok((dir, name))
    }

    /// Creates the directories along `comps`; returns the last. With
    /// `durable`, each new entry is durable at once; otherwise it waits for
    /// a `sync_dir` of its parent, like any other entry.
    fn make_dirs(&mut self, comps: &[String], durable: bool) -> io::Result<Ino> {
        let mut cur = ROOT;
        for name in comps {
            cur = match self.dir(cur).current.get(name) {
                Some(&ino) if self.is_dir(ino) => ino,
                Some(_) => return Err(not_a_dir()),
                None => {
                    let ino = self.alloc(Node::Dir(DirNode::default()));
                    let d = self.dir_mut(cur);
                    d.current.insert(name.clone(), ino);
                    if durable {
                        let replaced = d.durable.insert(name.clone(), ino);
                        if let Some(old) = replaced {
                            self.free_if_unreferenced(old);
                        }
                    }
                    ino
                }
            };
        }
        Ok(cur)
    }

    /// Drops file `ino` if nothing can reach it any more: no open handle, and
    /// no current or durable entry (a crash could bring a durable one back).
    fn free_if_unreferenced(&mut self, ino: Ino) {
        let Some(Node::File(f)) = self.nodes.get(&ino) else {
            return;
        };
        if f.handles > 0 {
            return;
        }
        let referenced = self.nodes.values().any(|n| match n {
            Node::Dir(d) => d
                .current
                .values()
                .chain(d.durable.values())
                .any(|&i| i == ino),
            Node::File(_) => false,
        });
        if !referenced {
            self.nodes.remove(&ino);
        }
    }

    fn entry_differs(&self, (dir, name): &EntryKey) -> bool {
        self.dir(*dir).differs(name)
    }

    fn open_handle(&mut self, ino: Ino) {
        self.file_mut(ino).handles += 1;
    }

    /// Every directory with its path, depth first in name order: the
    /// deterministic order in which a crash draws its choices.
    fn walk_dirs(&self) -> Vec<(Ino, PathBuf)> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, PathBuf::from("/"))];
        while let Some((ino, path)) = stack.pop() {
            let d = self.dir(ino);
            // Pushed in reverse so that they pop in name order.
            for (name, &child) in d.current.iter().rev() {
                if self.is_dir(child) {
                    stack.push((child, path.join(name)));
                }
            }
            out.push((ino, path));
        }
        out
    }

    /// Builds the crash image of this state.
    fn crash(&self, seed: u64, options: CrashOptions) -> (State, CrashReport) {
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
    fn decide_entries(
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
    fn crash_dirs(
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
    fn crash_files(
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
struct EntryChanges {
    /// Each changed entry's position in `paths` and `kept`.
    index: HashMap<EntryKey, usize>,
    /// The changed entries' paths, in walk order.
    paths: Vec<PathBuf>,
    /// The state each keeps.
    kept: Vec<EntryState>,
}

/// The representative of `i`'s group in a union-find forest.
fn root(group: &mut [usize], mut i: usize) -> usize {
    while group[i] != i {
        group[i] = group[group[i]];
        i = group[i];
    }
    i
}

/// A piece of new bytes kept by a crash, at a file offset.
type Piece<'a> = (u64, &'a [u8]);

/// The content a crash leaves in `f`, and what it did (`None` if the file
/// had no unsynced write).
fn crash_file(f: &FileNode, rng: &mut SplitMix64, mode: CrashMode) -> (Vec<u8>, Option<FileCrash>) {
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
fn prefix(writes: &[PendingWrite], mut kept: u64) -> Vec<Piece<'_>> {
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
fn clip<'a>((offset, data): Piece<'a>, drop: &[(u64, u64)]) -> Vec<Piece<'a>> {
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
fn overlay(durable: &[u8], pieces: &[Piece<'_>]) -> Vec<u8> {
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

impl Fs for MemFs {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        let err = |e| Error::io(Op::Create, path, e);
        let mut st = self.state.lock();
        let (dir, name) = st.parent(path).map_err(err)?;
        if st
            .dir(dir)
            .current
            .get(&name)
            .is_some_and(|&old| st.is_dir(old))
        {
            return Err(err(is_a_dir()));
        }
        let ino = st.alloc(Node::File(FileNode {
            handles: 1,
            ..FileNode::default()
        }));
        if let Some(old) = st.dir_mut(dir).current.insert(name, ino) {
            st.free_if_unreferenced(old);
        }
        Ok(Box::new(MemFile::new(self, ino, path, true)))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        let mut st = self.state.lock();
        let ino = st
            .lookup_file(path)
            .map_err(|e| Error::io(Op::Open, path, e))?;
        st.open_handle(ino);
        Ok(Box::new(MemFile::new(self, ino, path, false)))
    }

    fn reuse_for_write(&self, old: &Path, new: &Path) -> Result<Box<dyn File>> {
        let mut st = self.state.lock();
        let (from_dir, from_name) = st
            .parent(old)
            .map_err(|e| Error::io(Op::ReuseForWrite, old, e))?;
        let ino = match st.dir(from_dir).current.get(&from_name) {
            Some(&ino) if st.is_dir(ino) => {
                return Err(Error::io(Op::ReuseForWrite, old, is_a_dir()));
            }
            Some(&ino) => ino,
            None => return Err(Error::io(Op::ReuseForWrite, old, not_found())),
        };
        let (to_dir, to_name) = st
            .parent(new)
            .map_err(|e| Error::io(Op::ReuseForWrite, new, e))?;
        if st.dir(to_dir).current.contains_key(&to_name) {
            let e = io::Error::new(io::ErrorKind::AlreadyExists, "target already exists");
            return Err(Error::io(Op::ReuseForWrite, new, e));
        }
        st.dir_mut(from_dir).current.remove(&from_name);
        st.dir_mut(to_dir).current.insert(to_name.clone(), ino);
        st.renames.push(((from_dir, from_name), (to_dir, to_name)));
        st.open_handle(ino);
        Ok(Box::new(MemFile::new(self, ino, new, true)))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.state.lock();
        let (from_dir, from_name) = st
            .parent(from)
            .map_err(|e| Error::io(Op::Rename, from, e))?;
        let ino = match st.dir(from_dir).current.get(&from_name) {
            Some(&ino) if st.is_dir(ino) => return Err(Error::io(Op::Rename, from, is_a_dir())),
            Some(&ino) => ino,
            None => return Err(Error::io(Op::Rename, from, not_found())),
        };
        let (to_dir, to_name) = st.parent(to).map_err(|e| Error::io(Op::Rename, to, e))?;
        if st
            .dir(to_dir)
            .current
            .get(&to_name)
            .is_some_and(|&t| st.is_dir(t))
        {
            return Err(Error::io(Op::Rename, to, is_a_dir()));
        }
        if (from_dir, &from_name) == (to_dir, &to_name) {
            return Ok(());
        }
        st.dir_mut(from_dir).current.remove(&from_name);
        let replaced = st.dir_mut(to_dir).current.insert(to_name.clone(), ino);
        st.renames.push(((from_dir, from_name), (to_dir, to_name)));
        if let Some(old) = replaced {
            st.free_if_unreferenced(old);
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let err = |e| Error::io(Op::Remove, path, e);
        let mut st = self.state.lock();
        let (dir, name) = st.parent(path).map_err(err)?;
        match st.dir(dir).current.get(&name) {
            Some(&ino) if st.is_dir(ino) => Err(err(is_a_dir())),
            Some(&ino) => {
                st.dir_mut(dir).current.remove(&name);
                st.free_if_unreferenced(ino);
                Ok(())
            }
            None => Err(err(not_found())),
        }
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let st = self.state.lock();
        let ino = st
            .lookup_dir(dir)
            .map_err(|e| Error::io(Op::List, dir, e))?;
        Ok(st.dir(ino).current.keys().cloned().collect())
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut st = self.state.lock();
        st.make_dirs(&components(dir), false)
            .map_err(|e| Error::io(Op::CreateDir, dir, e))?;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut st = self.state.lock();
        let ino = st
            .lookup_dir(dir)
            .map_err(|e| Error::io(Op::SyncDir, dir, e))?;
        let d = st.dir_mut(ino);
        let dropped: Vec<Ino> = d
            .durable
            .iter()
            .filter(|&(name, i)| d.current.get(name) != Some(i))
            .map(|(_, &i)| i)
            .collect();
        d.durable = d.current.clone();
        let renames = std::mem::take(&mut st.renames);
        st.renames = renames
            .into_iter()
            .filter(|(a, b)| st.entry_differs(a) || st.entry_differs(b))
            .collect();
        for old in dropped {
            st.free_if_unreferenced(old);
        }
        Ok(())
    }

    fn stat(&self, path: &Path) -> Result<Metadata> {
        let st = self.state.lock();
        let ino = st.lookup(path).map_err(|e| Error::io(Op::Stat, path, e))?;
        Ok(match &st.nodes[&ino] {
            Node::Dir(_) => Metadata {
                len: 0,
                is_dir: true,
            },
            Node::File(f) => Metadata {
                len: f.current.len() as u64,
                is_dir: false,
            },
        })
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let err = |e| Error::io(Op::Truncate, path, e);
        let mut st = self.state.lock();
        let ino = st.lookup_file(path).map_err(err)?;
        let len = usize::try_from(len).map_err(|_| {
            err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "length too large",
            ))
        })?;
        // Like `set_len` + `fsync`: the new length and every earlier write
        // become durable.
        let f = st.file_mut(ino);
        f.current.resize(len, 0);
        f.durable.clone_from(&f.current);
        f.pending.clear();
        Ok(())
    }

    fn lock(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        let mut st = self.state.lock();
        st.lookup_dir(dir)
            .map_err(|e| Error::io(Op::Lock, dir, e))?;
        let key: PathBuf = std::iter::once("/".to_owned())
            .chain(components(dir))
            .collect();
        if !st.locks.insert(key.clone()) {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
            });
        }
        Ok(Box::new(MemDirLock {
            state: Arc::clone(&self.state),
            key,
            dir: dir.to_path_buf(),
        }))
    }
}

/// An open file of a [`MemFs`].
struct MemFile {
    state: Arc<Mutex<State>>,
    ino: Ino,
    path: PathBuf,
    /// The next write's offset.
    pos: u64,
    writable: bool,
}

impl MemFile {
    /// A handle of `ino`, whose handle count the caller has already raised.
    fn new(fs: &MemFs, ino: Ino, path: &Path, writable: bool) -> MemFile {
        MemFile {
            state: Arc::clone(&fs.state),
            ino,
            path: path.to_path_buf(),
            pos: 0,
            writable,
        }
    }
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

impl File for MemFile {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        if !self.writable {
            let e = io::Error::new(io::ErrorKind::PermissionDenied, "file is open read-only");
            return Err(Error::io(Op::Write, &self.path, e));
        }
        self.state.lock().file_mut(self.ino).write_at(self.pos, buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let st = self.state.lock();
        let content = &st.file(self.ino).current;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(content.len());
        let n = buf.len().min(content.len() - start);
        buf[..n].copy_from_slice(&content[start..start + n]);
        Ok(n)
    }

    fn sync_data(&mut self) -> Result<()> {
        self.state.lock().file_mut(self.ino).sync();
        Ok(())
    }

    fn size(&self) -> Result<u64> {
        Ok(self.state.lock().file(self.ino).current.len() as u64)
    }

    fn preallocate(&mut self, _offset: u64, _len: u64) -> Result<()> {
        // Nothing to reserve in memory; the length is unchanged, as on disk.
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self);
        Ok(())
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        st.file_mut(self.ino).handles -= 1;
        st.free_if_unreferenced(self.ino);
    }
}

/// A lock of [`MemFs::lock`]: an entry in the filesystem's lock registry.
struct MemDirLock {
    state: Arc<Mutex<State>>,
    key: PathBuf,
    dir: PathBuf,
}

impl fmt::Debug for MemDirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemDirLock")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl DirLock for MemDirLock {
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for MemDirLock {
    fn drop(&mut self) {
        let removed = self.state.lock().locks.remove(&self.key);
        debug_assert!(removed, "a held lock is in the registry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const SEEDS: u64 = 300;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    /// A filesystem with a durable `/wal` directory.
    fn wal_fs() -> MemFs {
        let fs = MemFs::new();
        crate::create_dir_all_durably(&fs, p("/wal")).unwrap();
        fs
    }

    fn exists(fs: &MemFs, path: &str) -> bool {
        match fs.stat(p(path)) {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => panic!("stat {path}: {e}"),
        }
    }

    #[test]
    fn write_read_size_and_list_round_trip() {
        let fs = wal_fs();
        let mut f = fs.create(p("/wal/b.log")).unwrap();
        f.write(b"hello ").unwrap();
        f.write(b"world").unwrap();
        assert_eq!(f.size().unwrap(), 11);
        let mut buf = [0; 5];
        assert_eq!(f.read_at(&mut buf, 6).unwrap(), 5);
        assert_eq!(&buf, b"world");
        assert_eq!(
            f.read_at(&mut buf, 9).unwrap(),
            2,
            "a short read at the end"
        );
        assert_eq!(f.read_at(&mut buf, 11).unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, u64::MAX).unwrap(), 0);
        fs.create(p("/wal/a.log")).unwrap();
        assert_eq!(fs.list(p("/wal")).unwrap(), ["a.log", "b.log"]);
        assert_eq!(fs.list(p("/")).unwrap(), ["wal"]);
        assert_eq!(
            fs.stat(p("/wal/b.log")).unwrap(),
            Metadata {
                len: 11,
                is_dir: false
            }
        );
        assert!(fs.stat(p("/wal")).unwrap().is_dir);
        assert_eq!(fs.read_file(p("wal/./x/../b.log")).unwrap(), b"hello world");
    }

    #[test]
    fn errors_name_the_operation_and_path() {
        let fs = wal_fs();
        let err = fs.open(p("/wal/missing.log")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Open);
        assert!(err.to_string().contains("/wal/missing.log"), "{err}");
        let err = fs.create(p("/nodir/a")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Create);
        assert_eq!(
            fs.open(p("/wal")).unwrap_err().kind(),
            io::ErrorKind::IsADirectory
        );
        assert_eq!(
            fs.remove(p("/wal")).unwrap_err().kind(),
            io::ErrorKind::IsADirectory
        );
        fs.write_file(p("/wal/f"), b"x").unwrap();
        let err = fs.create_dir_all(p("/wal/f/sub")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
        assert_eq!(err.op(), Op::CreateDir);
        assert_eq!(
            fs.list(p("/wal/f")).unwrap_err().kind(),
            io::ErrorKind::NotADirectory
        );
    }

    #[test]
    fn write_through_a_read_handle_fails() {
        let fs = wal_fs();
        fs.write_file(p("/wal/a"), b"abc").unwrap();
        let mut r = fs.open(p("/wal/a")).unwrap();
        let err = r.write(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(err.path(), p("/wal/a"));
        assert_eq!(fs.read_file(p("/wal/a")).unwrap(), b"abc");
    }

    #[test]
    fn clones_share_the_filesystem_and_crash_images_do_not() {
        let fs = wal_fs();
        let clone = fs.clone();
        clone.write_file(p("/wal/a"), b"1").unwrap();
        assert_eq!(fs.read_file(p("/wal/a")).unwrap(), b"1");
        let image = fs.crash_image(1);
        image.write_file(p("/wal/a"), b"2").unwrap();
        assert_eq!(fs.read_file(p("/wal/a")).unwrap(), b"1");
    }

    #[test]
    fn reuse_for_write_overwrites_without_truncating() {
        let fs = wal_fs();
        fs.write_file(p("/wal/000001.log"), b"old old old").unwrap();
        let mut f = fs
            .reuse_for_write(p("/wal/000001.log"), p("/wal/000002.log"))
            .unwrap();
        f.write(b"NEW").unwrap();
        assert_eq!(f.size().unwrap(), 11);
        assert_eq!(f.path(), p("/wal/000002.log"));
        assert_eq!(fs.list(p("/wal")).unwrap(), ["000002.log"]);
        assert_eq!(fs.read_file(p("/wal/000002.log")).unwrap(), b"NEW old old");
        assert_eq!(
            fs.read_durable_file(p("/wal/000002.log")).unwrap(),
            b"old old old"
        );
    }

    #[test]
    fn reuse_for_write_refuses_an_existing_target_and_a_missing_source() {
        let fs = wal_fs();
        fs.write_file(p("/wal/a"), b"a").unwrap();
        fs.write_file(p("/wal/b"), b"b").unwrap();
        let err = fs.reuse_for_write(p("/wal/a"), p("/wal/b")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(err.path(), p("/wal/b"));
        let err = fs.reuse_for_write(p("/wal/x"), p("/wal/y")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.path(), p("/wal/x"));
        assert_eq!(fs.list(p("/wal")).unwrap(), ["a", "b"]);
    }

    #[test]
    fn rename_replaces_the_target_and_remove_unlinks() {
        let fs = wal_fs();
        fs.write_file(p("/wal/a"), b"a").unwrap();
        fs.write_file(p("/wal/b"), b"b").unwrap();
        fs.rename(p("/wal/a"), p("/wal/b")).unwrap();
        assert_eq!(fs.list(p("/wal")).unwrap(), ["b"]);
        assert_eq!(fs.read_file(p("/wal/b")).unwrap(), b"a");
        fs.rename(p("/wal/b"), p("/wal/b")).unwrap();
        assert_eq!(fs.read_file(p("/wal/b")).unwrap(), b"a");
        fs.remove(p("/wal/b")).unwrap();
        assert!(fs.remove(p("/wal/b")).unwrap_err().is_not_found());
        assert!(
            fs.rename(p("/wal/b"), p("/wal/c"))
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn an_open_handle_keeps_a_removed_file_alive() {
        let fs = wal_fs();
        let mut f = fs.create(p("/wal/a")).unwrap();
        fs.remove(p("/wal/a")).unwrap();
        f.write(b"still writable").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size().unwrap(), 14);
        drop(f);
        assert!(fs.files().is_empty());
    }

    #[test]
    fn truncate_is_durable_at_once() {
        let fs = wal_fs();
        let mut f = fs.create(p("/wal/a")).unwrap();
        f.write(b"0123456789").unwrap();
        fs.sync_dir(p("/wal")).unwrap();
        fs.truncate(p("/wal/a"), 4).unwrap();
        for seed in 0..SEEDS {
            let image = fs.crash_image(seed);
            assert_eq!(
                image.read_file(p("/wal/a")).unwrap(),
                b"0123",
                "seed {seed}"
            );
        }
        fs.truncate(p("/wal/a"), 6).unwrap();
        assert_eq!(fs.read_durable_file(p("/wal/a")).unwrap(), b"0123\0\0");
    }

    #[test]
    fn lock_refuses_a_second_holder_until_dropped() {
        let fs = wal_fs();
        let guard = fs.lock(p("/wal")).unwrap();
        assert_eq!(guard.dir(), p("/wal"));
        let err = fs.clone().lock(p("/wal/../wal")).unwrap_err();
        assert!(err.is_locked());
        assert_eq!(err.path(), p("/wal/../wal"));
        assert!(
            fs.lock(p("/")).is_ok(),
            "another directory is a separate lock"
        );
        let image = fs.crash_image(0);
        drop(
            image
                .lock(p("/wal"))
                .expect("locks do not carry over to crash images"),
        );
        drop(guard);
        assert!(fs.lock(p("/wal")).is_ok());
        assert!(fs.lock(p("/none")).unwrap_err().is_not_found());
    }

    #[test]
    fn files_reports_durable_and_unsynced_lengths() {
        let fs = wal_fs();
        fs.write_file(p("/wal/a"), b"abc").unwrap();
        let mut f = fs.create(p("/wal/b")).unwrap();
        f.write(b"12").unwrap();
        f.sync_data().unwrap();
        f.write(b"345").unwrap();
        let info = fs.files();
        assert_eq!(
            info,
            [
                FileInfo {
                    path: PathBuf::from("/wal/a"),
                    len: 3,
                    durable_len: 3,
                    unsynced_bytes: 0
                },
                FileInfo {
                    path: PathBuf::from("/wal/b"),
                    len: 5,
                    durable_len: 2,
                    unsynced_bytes: 3
                },
            ]
        );
    }

    #[test]
    fn corrupt_overwrites_durable_bytes_in_place() {
        let fs = wal_fs();
        let mut f = fs.create(p("/wal/a")).unwrap();
        f.write(b"abcdef").unwrap();
        f.sync_data().unwrap();
        fs.corrupt(p("/wal/a"), 1, b"XY").unwrap();
        assert_eq!(fs.read_file(p("/wal/a")).unwrap(), b"aXYdef");
        assert_eq!(fs.read_durable_file(p("/wal/a")).unwrap(), b"aXYdef");
        let err = fs.corrupt(p("/wal/a"), 5, b"XY").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn corrupt_under_an_unsynced_overwrite_is_hidden_until_a_crash() {
        let fs = wal_fs();
        fs.write_file(p("/wal/a"), b"aaaa").unwrap();
        let mut f = fs.reuse_for_write(p("/wal/a"), p("/wal/b")).unwrap();
        fs.sync_dir(p("/wal")).unwrap();
        f.write(b"bb").unwrap();
        fs.corrupt(p("/wal/b"), 0, b"XXXX").unwrap();
        assert_eq!(fs.read_file(p("/wal/b")).unwrap(), b"bbXX");
        let options = CrashOptions::new().files(CrashMode::DropUnsynced);
        let (image, _) = fs.crash_image_with(0, options);
        assert_eq!(image.read_file(p("/wal/b")).unwrap(), b"XXXX");
        f.sync_data().unwrap();
        assert_eq!(fs.read_durable_file(p("/wal/b")).unwrap(), b"bbXX");
    }

    #[test]
    fn synced_bytes_and_entries_survive_every_crash() {
        let fs = wal_fs();
        let mut f = fs.create(p("/wal/a.log")).unwrap();
        let synced: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
        f.write(&synced).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(p("/wal")).unwrap();
        f.write(&[0xee; 9000]).unwrap();
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_report(seed);
            let bytes = image.read_file(p("/wal/a.log")).unwrap();
            assert!(bytes.len() >= synced.len(), "{report:?}");
            assert_eq!(&bytes[..synced.len()], &synced[..], "{report:?}");
            assert!(
                bytes[synced.len()..].iter().all(|&b| b == 0xee || b == 0),
                "{report:?}"
            );
        }
    }

    #[test]
    fn a_crash_image_is_fully_durable() {
        let fs = wal_fs();
        let mut f = fs.create(p("/wal/a")).unwrap();
        f.write(&vec![1; 20_000]).unwrap();
        for seed in 0..50 {
            let image = fs.crash_image(seed);
            for info in image.files() {
                assert_eq!(info.len, info.durable_len);
                assert_eq!(info.unsynced_bytes, 0);
            }
            let again = image.crash_image(seed + 1);
            assert_eq!(again.files(), image.files());
            for info in image.files() {
                assert_eq!(
                    again.read_file(&info.path).unwrap(),
                    image.read_file(&info.path).unwrap()
                );
            }
        }
    }

    #[test]
    fn unsynced_entries_can_vanish_and_synced_ones_never_do() {
        let fs = wal_fs();
        fs.write_file(p("/wal/synced"), b"s").unwrap();
        let mut f = fs.create(p("/wal/created")).unwrap();
        f.write(b"c").unwrap();
        f.sync_data().unwrap();
        let mut outcomes = HashSet::new();
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_report(seed);
            assert!(exists(&image, "/wal/synced"), "{report:?}");
            let created = exists(&image, "/wal/created");
            if created {
                assert_eq!(image.read_file(p("/wal/created")).unwrap(), b"c");
            }
            assert_eq!(report.entries.len(), 1);
            assert_eq!(report.entries[0].present, created);
            outcomes.insert(created);
        }
        assert_eq!(
            outcomes.len(),
            2,
            "the unsynced entry both survived and vanished"
        );

        fs.sync_dir(p("/wal")).unwrap();
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_report(seed);
            assert!(exists(&image, "/wal/created"), "{report:?}");
            assert!(report.entries.is_empty());
        }
    }

    #[test]
    fn a_new_directory_and_its_files_are_durable_only_once_its_parent_is_synced() {
        let fs = MemFs::new();
        fs.create_dir_all(p("/a/b")).unwrap();
        let mut f = fs.create(p("/a/b/f")).unwrap();
        f.write(b"x").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(p("/a/b")).unwrap();
        let mut outcomes = HashSet::new();
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_report(seed);
            let kept = exists(&image, "/a/b/f");
            if kept {
                assert_eq!(image.read_file(p("/a/b/f")).unwrap(), b"x", "{report:?}");
            }
            assert_eq!(
                kept,
                exists(&image, "/a") && exists(&image, "/a/b"),
                "{report:?}"
            );
            outcomes.insert(kept);
        }
        assert_eq!(
            outcomes.len(),
            2,
            "the new directories survived and vanished"
        );

        fs.sync_dir(p("/")).unwrap();
        fs.sync_dir(p("/a")).unwrap();
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_report(seed);
            assert_eq!(image.read_file(p("/a/b/f")).unwrap(), b"x", "{report:?}");
            assert!(report.entries.is_empty(), "{report:?}");
        }
    }

    #[test]
    fn create_dir_all_durably_syncs_every_new_level() {
        let fs = MemFs::new();
        crate::create_dir_all_durably(&fs, p("/a")).unwrap();
        crate::create_dir_all_durably(&fs, p("/a/b/c")).unwrap();
        let mut f = fs.create(p("/a/b/c/f")).unwrap();
        f.write(b"x").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(p("/a/b/c")).unwrap();
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_report(seed);
            assert_eq!(image.read_file(p("/a/b/c/f")).unwrap(), b"x", "{report:?}");
            assert!(report.entries.is_empty(), "{report:?}");
        }
        // An existing directory is left as it is.
        crate::create_dir_all_durably(&fs, p("/a/b/c")).unwrap();
        assert_eq!(fs.list(p("/a/b/c")).unwrap(), vec!["f".to_owned()]);
    }

    #[test]
    fn unsynced_remove_may_be_undone_by_a_crash() {
        let fs = wal_fs();
        fs.write_file(p("/wal/a"), b"a").unwrap();
        fs.remove(p("/wal/a")).unwrap();
        let outcomes: HashSet<bool> = (0..SEEDS)
            .map(|seed| exists(&fs.crash_image(seed), "/wal/a"))
            .collect();
        assert_eq!(outcomes.len(), 2);
        fs.sync_dir(p("/wal")).unwrap();
        assert!((0..SEEDS).all(|seed| !exists(&fs.crash_image(seed), "/wal/a")));
    }

    #[test]
    fn unsynced_rename_of_a_synced_file_keeps_exactly_one_name() {
        let fs = wal_fs();
        fs.write_file(p("/wal/000001.log"), b"recycled").unwrap();
        let mut f = fs
            .reuse_for_write(p("/wal/000001.log"), p("/wal/000007.log"))
            .unwrap();
        // Another unrelated unsynced entry, so that groups are exercised
        // next to independent entries.
        fs.create(p("/wal/other")).unwrap();
        f.write(b"R").unwrap();
        let mut outcomes = HashSet::new();
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_report(seed);
            let old = exists(&image, "/wal/000001.log");
            let new = exists(&image, "/wal/000007.log");
            assert!(old != new, "exactly one name: {report:?}");
            let name = if old {
                "/wal/000001.log"
            } else {
                "/wal/000007.log"
            };
            let bytes = image.read_file(p(name)).unwrap();
            assert!(bytes == b"recycled" || bytes == b"Recycled", "{report:?}");
            outcomes.insert((old, exists(&image, "/wal/other")));
        }
        assert_eq!(
            outcomes.len(),
            4,
            "the rename and the create are independent"
        );

        fs.sync_dir(p("/wal")).unwrap();
        for seed in 0..SEEDS {
            let image = fs.crash_image(seed);
            assert!(exists(&image, "/wal/000007.log"));
            assert!(!exists(&image, "/wal/000001.log"));
        }
    }

    #[test]
    fn unsynced_rename_over_a_synced_file_is_atomic() {
        let fs = wal_fs();
        fs.write_file(p("/wal/CURRENT"), b"old").unwrap();
        fs.write_file(p("/wal/CURRENT.tmp"), b"new").unwrap();
        fs.rename(p("/wal/CURRENT.tmp"), p("/wal/CURRENT")).unwrap();
        let mut outcomes = HashSet::new();
        for seed in 0..SEEDS {
            let image = fs.crash_image(seed);
            let current = image.read_file(p("/wal/CURRENT")).unwrap();
            let tmp = exists(&image, "/wal/CURRENT.tmp");
            // Before the rename: both files; after it: only the new one.
            let before = current == b"old" && tmp;
            let after = current == b"new" && !tmp;
            assert!(before || after, "seed {seed}");
            outcomes.insert(before);
        }
        assert_eq!(outcomes.len(), 2);
    }

    #[test]
    fn recreating_a_path_crashes_to_the_old_or_the_new_file() {
        let fs = wal_fs();
        fs.write_file(p("/wal/a"), b"old").unwrap();
        let mut f = fs.create(p("/wal/a")).unwrap();
        f.write(b"new").unwrap();
        f.sync_data().unwrap();
        let contents: HashSet<Vec<u8>> = (0..SEEDS)
            .map(|seed| fs.crash_image(seed).read_file(p("/wal/a")).unwrap())
            .collect();
        assert_eq!(contents, HashSet::from([b"old".to_vec(), b"new".to_vec()]));
    }

    #[test]
    fn entry_modes_force_the_entry_outcome() {
        let fs = wal_fs();
        fs.create(p("/wal/a")).unwrap();
        for seed in 0..20 {
            let durable = CrashOptions::new().entries(EntryMode::Durable);
            assert!(!exists(&fs.crash_image_with(seed, durable).0, "/wal/a"));
            let current = CrashOptions::new().entries(EntryMode::Current);
            assert!(exists(&fs.crash_image_with(seed, current).0, "/wal/a"));
        }
    }

    /// Writes `len` unsynced bytes of `byte` over a durable file of `durable`
    /// bytes of `old` (rewriting from offset 0 like a recycled log).
    fn overwritten_file(durable: usize, old: u8, len: usize, byte: u8) -> MemFs {
        let fs = wal_fs();
        fs.write_file(p("/wal/a"), &vec![old; durable]).unwrap();
        let mut f = fs.reuse_for_write(p("/wal/a"), p("/wal/b")).unwrap();
        fs.sync_dir(p("/wal")).unwrap();
        // Several writes, so that prefixes cut inside and between writes.
        for chunk in vec![byte; len].chunks(1000) {
            f.write(chunk).unwrap();
        }
        fs
    }

    #[test]
    fn same_seed_gives_the_same_image_and_report() {
        let fs = overwritten_file(6000, 1, 20_000, 2);
        fs.create(p("/wal/c")).unwrap();
        for seed in [0, 1, 42, u64::MAX] {
            let (a, ra) = fs.crash_image_report(seed);
            let (b, rb) = fs.crash_image_report(seed);
            assert_eq!(ra, rb);
            assert_eq!(ra.seed, seed);
            assert_eq!(a.files(), b.files());
            for info in a.files() {
                assert_eq!(
                    a.read_file(&info.path).unwrap(),
                    b.read_file(&info.path).unwrap()
                );
            }
        }
        let reports: HashSet<String> = (0..20)
            .map(|seed| format!("{:?}", fs.crash_image_report(seed).1.files))
            .collect();
        assert!(reports.len() > 1, "different seeds crash differently");
    }

    #[test]
    fn every_crash_mode_occurs() {
        let fs = overwritten_file(0, 0, 20_000, 7);
        let mut modes = HashSet::new();
        for seed in 0..100 {
            let (_, report) = fs.crash_image_report(seed);
            assert_eq!(report.files.len(), 1);
            modes.insert(std::mem::discriminant(&report.files[0].crash));
        }
        assert_eq!(
            modes.len(),
            4,
            "drop, prefix, torn sector and pages all occur"
        );
    }

    #[test]
    fn drop_mode_keeps_exactly_the_durable_content() {
        let fs = overwritten_file(5000, 1, 8000, 2);
        let options = CrashOptions::new().files(CrashMode::DropUnsynced);
        let (image, report) = fs.crash_image_with(3, options);
        assert_eq!(image.read_file(p("/wal/b")).unwrap(), vec![1; 5000]);
        assert_eq!(report.files[0].crash, FileCrash::DropUnsynced);
    }

    #[test]
    fn prefix_mode_keeps_the_first_unsynced_bytes_in_write_order() {
        let fs = overwritten_file(5000, 1, 8000, 2);
        let options = CrashOptions::new().files(CrashMode::KeepPrefix);
        let mut at_boundary = false;
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_with(seed, options);
            let FileCrash::KeepPrefix { kept } = report.files[0].crash else {
                panic!("{report:?}");
            };
            let kept = kept as usize;
            at_boundary |= kept % 1000 == 0;
            let bytes = image.read_file(p("/wal/b")).unwrap();
            assert_eq!(bytes.len(), kept.max(5000));
            assert!(bytes[..kept].iter().all(|&b| b == 2), "{report:?}");
            assert!(bytes[kept..].iter().all(|&b| b == 1), "{report:?}");
            assert_eq!(report.files[0].len_after, bytes.len() as u64);
        }
        assert!(at_boundary, "some cuts fall on write boundaries");
    }

    #[test]
    fn torn_sector_mixes_old_and_new_in_512_byte_units() {
        let fs = overwritten_file(9000, 1, 12_000, 2);
        let options = CrashOptions::new().files(CrashMode::TearSector);
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_with(seed, options);
            let FileCrash::TearSector {
                kept,
                sector,
                new_mask,
            } = report.files[0].crash
            else {
                panic!("{report:?}");
            };
            assert!(kept >= 1);
            assert_eq!(sector, (kept - 1) / SECTOR_SIZE * SECTOR_SIZE, "{report:?}");
            let bytes = image.read_file(p("/wal/b")).unwrap();
            for (x, &b) in bytes.iter().enumerate() {
                let x = x as u64;
                let in_prefix = x < kept;
                let expected = if (sector..sector + SECTOR_SIZE).contains(&x) {
                    let sub = (x - sector) / SUBSECTOR_SIZE;
                    let new = new_mask & (1 << sub) != 0;
                    if new && in_prefix {
                        2
                    } else {
                        // Old: the durable byte (1), or a hole beyond it (0).
                        u8::from(x < 9000)
                    }
                } else if in_prefix {
                    2
                } else {
                    1
                };
                assert_eq!(b, expected, "offset {x}: {report:?}");
            }
        }
    }

    #[test]
    fn pages_mode_persists_whole_pages_in_any_order() {
        // Appends to an empty file: a page that did not persist is a hole
        // (zeros) if a later one did, or missing at the end.
        let fs = overwritten_file(0, 0, 5 * PAGE_SIZE as usize, 9);
        let options = CrashOptions::new().files(CrashMode::Pages);
        let mut saw_hole = false;
        for seed in 0..SEEDS {
            let (image, report) = fs.crash_image_with(seed, options);
            let FileCrash::Pages { pages, persisted } = report.files[0].crash else {
                panic!("{report:?}");
            };
            assert_eq!(pages, 5);
            let bytes = image.read_file(p("/wal/b")).unwrap();
            assert_eq!(bytes.len() % PAGE_SIZE as usize, 0);
            let mut count = 0;
            for page in bytes.chunks(PAGE_SIZE as usize) {
                if page.iter().all(|&b| b == 9) {
                    count += 1;
                } else {
                    assert!(page.iter().all(|&b| b == 0), "{report:?}");
                    saw_hole = true;
                }
            }
            assert_eq!(count, persisted, "{report:?}");
        }
        assert!(saw_hole);
    }

    /// One step of [`crash_image_never_contains_bytes_never_written`].
    #[derive(Clone, Debug)]
    enum Step {
        /// Appends `len` bytes to file `file` at its write position.
        Write { file: usize, len: usize },
        /// Syncs file `file`.
        Sync { file: usize },
        /// Reopens file `file` to overwrite it from offset 0 (recycling).
        Rewind { file: usize },
        /// Checks a crash image.
        Crash { seed: u64 },
    }

    const FILES: usize = 3;

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..FILES, 1..9000usize).prop_map(|(file, len)| Step::Write { file, len }),
            2 => (0..FILES).prop_map(|file| Step::Sync { file }),
            1 => (0..FILES).prop_map(|file| Step::Rewind { file }),
            2 => any::<u64>().prop_map(|seed| Step::Crash { seed }),
        ]
    }

    /// What the test knows of one file.
    #[derive(Default)]
    struct Model {
        /// Every byte value ever written at each offset.
        written: Vec<Vec<u8>>,
        /// Current content.
        current: Vec<u8>,
        /// Durable content.
        durable: Vec<u8>,
        /// Byte values written at each offset since the last sync.
        unsynced: Vec<Vec<u8>>,
        /// The next write's offset.
        pos: usize,
    }

    impl Model {
        fn write(&mut self, data: &[u8]) {
            let end = self.pos + data.len();
            if self.current.len() < end {
                self.written.resize(end, Vec::new());
                self.unsynced.resize(end, Vec::new());
                self.current.resize(end, 0);
            }
            for (i, &b) in data.iter().enumerate() {
                self.written[self.pos + i].push(b);
                self.unsynced[self.pos + i].push(b);
            }
            self.current[self.pos..end].copy_from_slice(data);
            self.pos = end;
        }

        fn sync(&mut self) {
            self.durable.clone_from(&self.current);
            self.unsynced.iter_mut().for_each(Vec::clear);
        }

        fn check(&self, image: &[u8]) -> std::result::Result<(), String> {
            if image.len() < self.durable.len() || image.len() > self.current.len() {
                return Err(format!(
                    "length {} outside durable {}..=current {}",
                    image.len(),
                    self.durable.len(),
                    self.current.len()
                ));
            }
            for (x, &b) in image.iter().enumerate() {
                let durable = self.durable.get(x) == Some(&b);
                let written = self.written[x].contains(&b);
                let hole = b == 0 && x >= self.durable.len();
                if !(durable || written || hole) {
                    return Err(format!("offset {x}: byte {b} was never written there"));
                }
                if x < self.durable.len() && !durable && !self.unsynced[x].contains(&b) {
                    return Err(format!("offset {x}: durable byte lost for {b}"));
                }
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The crash model's promise: an image holds at each offset a
        /// durable byte, a byte written there, or a zero beyond the durable
        /// length; durable bytes are only replaced by bytes written over
        /// them; the length is between the durable and the current one.
        #[test]
        fn crash_image_never_contains_bytes_never_written(
            steps in proptest::collection::vec(step(), 1..40),
        ) {
            let fs = wal_fs();
            let names: Vec<PathBuf> =
                (0..FILES).map(|i| PathBuf::from(format!("/wal/{i}.log"))).collect();
            let mut handles: Vec<Box<dyn File>> =
                names.iter().map(|n| fs.create(n).unwrap()).collect();
            fs.sync_dir(p("/wal")).unwrap();
            let mut models: Vec<Model> = (0..FILES).map(|_| Model::default()).collect();
            // Each write has its own byte values (never 0), so that a byte
            // from the wrong write or offset is caught.
            let mut tag = 0u8;
            for step in steps {
                match step {
                    Step::Write { file, len } => {
                        tag = tag % 250 + 1;
                        let data: Vec<u8> =
                            (0..len).map(|i| ((usize::from(tag) * 7 + i) % 255) as u8 + 1).collect();
                        handles[file].write(&data).unwrap();
                        models[file].write(&data);
                    }
                    Step::Sync { file } => {
                        handles[file].sync_data().unwrap();
                        models[file].sync();
                    }
                    Step::Rewind { file } => {
                        // Reuse under a temporary name and rename back, so
                        // that the name keeps pointing at the same file.
                        let tmp = PathBuf::from("/wal/tmp");
                        handles[file] = fs.reuse_for_write(&names[file], &tmp).unwrap();
                        fs.rename(&tmp, &names[file]).unwrap();
                        models[file].pos = 0;
                    }
                    Step::Crash { seed } => {
                        let (image, report) = fs.crash_image_report(seed);
                        for (name, model) in names.iter().zip(&models) {
                            prop_assert_eq!(&fs.read_file(name).unwrap(), &model.current);
                            prop_assert_eq!(&fs.read_durable_file(name).unwrap(), &model.durable);
                            let bytes = image.read_file(name).unwrap();
                            if let Err(e) = model.check(&bytes) {
                                return Err(TestCaseError::fail(format!(
                                    "{}: {e}\nseed {seed}: {report:?}", name.display()
                                )));
                            }
                        }
                    }
                }
            }
        }
    }
}
