//! [`super::MemFs`] as an [`Fs`]: the file and directory operations, open
//! files and directory locks.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{DirLock, Error, File, Fs, Metadata, Op, Result};

use super::MemFs;
use super::tree::{FileNode, Ino, Node, State, components, is_a_dir, not_found};

impl Fs for MemFs {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        let err = |e| Error::io(Op::Create, path, e);
        let mut st = self.state.lock();
        let (dir, name) = st.parent(path).map_err(err)?;
        st.refuse_dir_at(dir, &name).map_err(err)?;
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
