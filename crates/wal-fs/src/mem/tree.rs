//! The in-memory tree of a [`super::MemFs`]: inodes, directories with their
//! durable and current entries, files with their durable bytes and unsynced
//! writes, and path lookup.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Component, Path, PathBuf};

/// An inode number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Ino(pub(super) u64);

/// The root directory's inode.
pub(super) const ROOT: Ino = Ino(0);

/// A directory entry: its directory and its name.
pub(super) type EntryKey = (Ino, String);

pub(super) struct State {
    pub(super) nodes: HashMap<Ino, Node>,
    pub(super) next_ino: u64,
    /// Unsynced renames: each pair of entries keeps its states together in a
    /// crash image. Pairs whose entries are both durable again are pruned
    /// at [`Fs::sync_dir`].
    pub(super) renames: Vec<(EntryKey, EntryKey)>,
    /// Normalized paths of locked directories.
    pub(super) locks: BTreeSet<PathBuf>,
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

pub(super) enum Node {
    Dir(DirNode),
    File(FileNode),
}

#[derive(Clone, Default)]
pub(super) struct DirNode {
    pub(super) current: BTreeMap<String, Ino>,
    /// INVARIANT: equal to `current` right after a `sync_dir`. A directory,
    /// once in `durable`, has the same entry in both (directories cannot be
    /// removed or renamed); one not yet synced is in `current` only.
    pub(super) durable: BTreeMap<String, Ino>,
}

impl DirNode {
    pub(super) fn differs(&self, name: &str) -> bool {
        self.current.get(name) != self.durable.get(name)
    }
}

#[derive(Default)]
pub(super) struct FileNode {
    /// INVARIANT: `durable` with every write of `pending` applied in order
    /// (zero-filling any gap), so `current.len() >= durable.len()`.
    pub(super) current: Vec<u8>,
    pub(super) durable: Vec<u8>,
    /// The writes since the last sync, in order. None is empty.
    pub(super) pending: Vec<PendingWrite>,
    /// Open handles; the file lives while it has a handle or a (current or
    /// durable) directory entry.
    pub(super) handles: u32,
}

pub(super) struct PendingWrite {
    pub(super) offset: u64,
    pub(super) data: Vec<u8>,
}

/// Writes `data` at `offset` of `buf`, zero-filling any gap before it.
pub(super) fn write_into(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
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
    pub(super) fn write_at(&mut self, offset: u64, data: &[u8]) {
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
    pub(super) fn sync(&mut self) {
        for w in self.pending.drain(..) {
            write_into(&mut self.durable, w.offset, &w.data);
        }
        debug_assert_eq!(self.durable.len(), self.current.len());
    }

    pub(super) fn unsynced_bytes(&self) -> u64 {
        self.pending.iter().map(|w| w.data.len() as u64).sum()
    }
}

/// The names along `path`, resolving `.` and `..` lexically; relative paths
/// are taken from the root.
pub(super) fn components(path: &Path) -> Vec<String> {
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

pub(super) fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file or directory")
}

pub(super) fn not_a_dir() -> io::Error {
    io::Error::new(io::ErrorKind::NotADirectory, "not a directory")
}

pub(super) fn is_a_dir() -> io::Error {
    io::Error::new(io::ErrorKind::IsADirectory, "is a directory")
}

pub(super) fn names_root() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "path names the root directory")
}

impl State {
    pub(super) fn alloc(&mut self, node: Node) -> Ino {
        let ino = Ino(self.next_ino);
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    pub(super) fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.nodes[&ino], Node::Dir(_))
    }

    pub(super) fn dir(&self, ino: Ino) -> &DirNode {
        match &self.nodes[&ino] {
            Node::Dir(d) => d,
            Node::File(_) => unreachable!("inode {ino:?} is not a directory"),
        }
    }

    pub(super) fn dir_mut(&mut self, ino: Ino) -> &mut DirNode {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => d,
            _ => unreachable!("inode {ino:?} is not a directory"),
        }
    }

    pub(super) fn file(&self, ino: Ino) -> &FileNode {
        match &self.nodes[&ino] {
            Node::File(f) => f,
            Node::Dir(_) => unreachable!("inode {ino:?} is not a file"),
        }
    }

    pub(super) fn file_mut(&mut self, ino: Ino) -> &mut FileNode {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => f,
            _ => unreachable!("inode {ino:?} is not a file"),
        }
    }

    /// Resolves names through current entries.
    pub(super) fn resolve(&self, comps: &[String]) -> io::Result<Ino> {
        let mut cur = ROOT;
        for name in comps {
            let Node::Dir(d) = &self.nodes[&cur] else {
                return Err(not_a_dir());
            };
            cur = *d.current.get(name).ok_or_else(not_found)?;
        }
        Ok(cur)
    }

    pub(super) fn lookup(&self, path: &Path) -> io::Result<Ino> {
        self.resolve(&components(path))
    }

    pub(super) fn lookup_dir(&self, path: &Path) -> io::Result<Ino> {
        let ino = self.lookup(path)?;
        if self.is_dir(ino) {
            Ok(ino)
        } else {
            Err(not_a_dir())
        }
    }

    pub(super) fn lookup_file(&self, path: &Path) -> io::Result<Ino> {
        let ino = self.lookup(path)?;
        if self.is_dir(ino) {
            Err(is_a_dir())
        } else {
            Ok(ino)
        }
    }

    /// Refuses to put a file at `name` in `dir` when a directory is there.
    pub(super) fn refuse_dir_at(&self, dir: Ino, name: &str) -> io::Result<()> {
        match self.dir(dir).current.get(name) {
            Some(&old) if self.is_dir(old) => Err(is_a_dir()),
            _ => Ok(()),
        }
    }

    /// The directory that would hold `path`, and the last name.
    pub(super) fn parent(&self, path: &Path) -> io::Result<(Ino, String)> {
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
    pub(super) fn make_dirs(&mut self, comps: &[String], durable: bool) -> io::Result<Ino> {
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
    pub(super) fn free_if_unreferenced(&mut self, ino: Ino) {
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

    pub(super) fn entry_differs(&self, (dir, name): &EntryKey) -> bool {
        self.dir(*dir).differs(name)
    }

    pub(super) fn open_handle(&mut self, ino: Ino) {
        self.file_mut(ino).handles += 1;
    }

    /// Every directory with its path, depth first in name order: the
    /// deterministic order in which a crash draws its choices.
    pub(super) fn walk_dirs(&self) -> Vec<(Ino, PathBuf)> {
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
}
