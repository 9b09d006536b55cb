//! The passthrough itself: FUSE inode numbers and file handles mapped onto a
//! backing directory, and each operation done there with `std::fs`.
//!
//! Nothing here stalls; [`crate::gate`] decides *when* an operation runs.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::fs::{PermissionsExt, fchown};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo, TimeOrNow};
use parking_lot::Mutex;

/// The result of a backing operation: an errno goes back to the caller.
pub(crate) type Result<T> = std::result::Result<T, Errno>;

/// Identity of a backing file: `(st_dev, st_ino)`.
type Key = (u64, u64);

/// Open flags passed on to the backing file. `O_APPEND` is left out because
/// `pwrite` on an `O_APPEND` descriptor ignores the offset on Linux (the
/// kernel already turned appends into offsets), `O_DIRECT` because the
/// copied buffers are not aligned.
const PASSED_OPEN_FLAGS: i32 = libc::O_SYNC | libc::O_DSYNC | libc::O_NOATIME;

/// A backing directory seen through FUSE inode numbers and file handles.
#[derive(Debug)]
pub(crate) struct Backing {
    root: PathBuf,
    nodes: Mutex<Nodes>,
    handles: Mutex<Handles>,
}

/// FUSE inode numbers. They are never reused: a backing inode number freed
/// by an unlink and reused by a new file gets a new FUSE inode, so the
/// kernel never mixes the two files' cached pages or attributes.
#[derive(Debug)]
struct Nodes {
    next: u64,
    by_ino: HashMap<u64, Node>,
    // INVARIANT: every value is a key of `by_ino` whose node has a `path`.
    by_key: HashMap<Key, u64>,
}

#[derive(Debug)]
struct Node {
    /// Where the file is now; `None` once it was unlinked or replaced by a
    /// rename, when only open handles still reach it.
    path: Option<PathBuf>,
    key: Key,
    /// Lookups the kernel has not forgotten yet; the node goes at zero.
    lookups: u64,
}

#[derive(Debug)]
struct Handles {
    next: u64,
    open: HashMap<u64, Handle>,
}

#[derive(Debug)]
enum Handle {
    File {
        ino: u64,
        file: Arc<File>,
    },
    Dir {
        ino: u64,
        file: Arc<File>,
        /// A snapshot taken when the kernel reads from offset 0, so that
        /// offsets stay meaningful between calls.
        entries: Vec<DirEntry>,
    },
}

/// One directory entry as readdir returns it; its offset is its index + 1.
#[derive(Clone, Debug)]
pub(crate) struct DirEntry {
    pub(crate) ino: u64,
    pub(crate) kind: FileType,
    pub(crate) name: OsString,
}

/// Space figures for `statfs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatFs {
    pub(crate) blocks: u64,
    pub(crate) bfree: u64,
    pub(crate) bavail: u64,
    pub(crate) files: u64,
    pub(crate) ffree: u64,
    pub(crate) bsize: u32,
    pub(crate) namelen: u32,
    pub(crate) frsize: u32,
}

/// Attribute changes of a `setattr`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SetAttr {
    pub(crate) mode: Option<u32>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) size: Option<u64>,
    pub(crate) atime: Option<TimeOrNow>,
    pub(crate) mtime: Option<TimeOrNow>,
}

fn key_of(meta: &fs::Metadata) -> Key {
    (meta.dev(), meta.ino())
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn nix_errno(e: nix::errno::Errno) -> Errno {
    Errno::from_i32(e as i32)
}

fn system_time(secs: i64, nsecs: i64) -> SystemTime {
    let nanos = u32::try_from(nsecs).unwrap_or(0);
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH + Duration::new(secs, nanos),
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nanos),
    }
}

fn kind_of(file_type: fs::FileType) -> FileType {
    FileType::from_std(file_type).unwrap_or(FileType::RegularFile)
}

fn attr(ino: u64, meta: &fs::Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: meta.size(),
        blocks: meta.blocks(),
        atime: system_time(meta.atime(), meta.atime_nsec()),
        mtime: system_time(meta.mtime(), meta.mtime_nsec()),
        ctime: system_time(meta.ctime(), meta.ctime_nsec()),
        crtime: system_time(meta.ctime(), meta.ctime_nsec()),
        kind: kind_of(meta.file_type()),
        perm: (meta.mode() & 0o7777) as u16,
        nlink: meta.nlink() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev() as u32,
        blksize: meta.blksize() as u32,
        flags: 0,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// `OpenOptions` for the access mode in `flags`, with the flags worth
/// passing on.
fn open_options(flags: i32) -> OpenOptions {
    let mut options = OpenOptions::new();
    match flags & libc::O_ACCMODE {
        libc::O_WRONLY => options.write(true),
        libc::O_RDWR => options.read(true).write(true),
        _ => options.read(true),
    };
    options.custom_flags(flags & PASSED_OPEN_FLAGS);
    options
}

impl Nodes {
    fn path(&self, ino: u64) -> Result<PathBuf> {
        self.by_ino
            .get(&ino)
            .and_then(|node| node.path.clone())
            .ok_or(Errno::ENOENT)
    }

    /// Counts one kernel lookup of the file at `path`, whose metadata is
    /// `meta`, and returns its inode number.
    fn remember(&mut self, path: PathBuf, meta: &fs::Metadata) -> u64 {
        let key = key_of(meta);
        if let Some(&ino) = self.by_key.get(&key) {
            let node = self
                .by_ino
                .get_mut(&ino)
                .expect("by_key points into by_ino");
            // The name may have changed behind our back (a rename in the
            // backing directory); the newest name wins.
            node.path = Some(path);
            node.lookups += 1;
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.by_ino.insert(
            ino,
            Node {
                path: Some(path),
                key,
                lookups: 1,
            },
        );
        self.by_key.insert(key, ino);
        ino
    }

    fn forget(&mut self, ino: u64, lookups: u64) {
        if ino == INodeNo::ROOT.0 {
            return;
        }
        let Some(node) = self.by_ino.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(lookups);
        if node.lookups == 0 {
            let key = node.key;
            self.by_ino.remove(&ino);
            if self.by_key.get(&key) == Some(&ino) {
                self.by_key.remove(&key);
            }
        }
    }

    /// The file `key` no longer has a name.
    fn unlinked(&mut self, key: Key) {
        if let Some(ino) = self.by_key.remove(&key) {
            if let Some(node) = self.by_ino.get_mut(&ino) {
                node.path = None;
            }
        }
    }

    /// Everything at or under `from` is now under `to`.
    fn moved(&mut self, from: &Path, to: &Path) {
        for node in self.by_ino.values_mut() {
            let Some(path) = &node.path else { continue };
            if let Ok(rest) = path.strip_prefix(from) {
                node.path = Some(if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                });
            }
        }
    }
}

impl Handles {
    fn insert(&mut self, handle: Handle) -> u64 {
        let fh = self.next;
        self.next += 1;
        self.open.insert(fh, handle);
        fh
    }

    fn file(&self, fh: u64) -> Result<Arc<File>> {
        match self.open.get(&fh) {
            Some(Handle::File { file, .. } | Handle::Dir { file, .. }) => Ok(Arc::clone(file)),
            None => Err(Errno::EBADF),
        }
    }

    /// Any open handle of inode `ino`: the only way to an unlinked file.
    fn any_of(&self, wanted: u64) -> Option<Arc<File>> {
        self.open.values().find_map(|handle| match handle {
            Handle::File { ino, file } | Handle::Dir { ino, file, .. } if *ino == wanted => {
                Some(Arc::clone(file))
            }
            _ => None,
        })
    }
}

impl Backing {
    /// A passthrough onto the directory `root` (an absolute, canonical path).
    pub(crate) fn new(root: PathBuf) -> io::Result<Backing> {
        let meta = fs::metadata(&root)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("backing path {} is not a directory", root.display()),
            ));
        }
        let mut by_ino = HashMap::new();
        by_ino.insert(
            INodeNo::ROOT.0,
            Node {
                path: Some(root.clone()),
                key: key_of(&meta),
                lookups: 1,
            },
        );
        let mut by_key = HashMap::new();
        by_key.insert(key_of(&meta), INodeNo::ROOT.0);
        Ok(Backing {
            root,
            nodes: Mutex::new(Nodes {
                next: INodeNo::ROOT.0 + 1,
                by_ino,
                by_key,
            }),
            handles: Mutex::new(Handles {
                next: 1,
                open: HashMap::new(),
            }),
        })
    }

    fn path(&self, ino: u64) -> Result<PathBuf> {
        self.nodes.lock().path(ino)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<PathBuf> {
        Ok(self.path(parent)?.join(name))
    }

    /// Counts a kernel lookup of `path` and returns its attributes.
    fn entry(&self, path: PathBuf) -> Result<FileAttr> {
        let meta = fs::symlink_metadata(&path).map_err(|e| errno(&e))?;
        let ino = self.nodes.lock().remember(path, &meta);
        Ok(attr(ino, &meta))
    }

    /// A file of inode `ino`: the handle `fh` if given, else the file at the
    /// inode's path (opened read-only), else any open handle of the inode.
    fn file_of(&self, ino: u64, fh: Option<u64>) -> Result<Arc<File>> {
        if let Some(fh) = fh {
            if let Ok(file) = self.handles.lock().file(fh) {
                return Ok(file);
            }
        }
        match self.path(ino) {
            Ok(path) => File::open(path).map(Arc::new).map_err(|e| errno(&e)),
            Err(e) => self.handles.lock().any_of(ino).ok_or(e),
        }
    }

    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> Result<FileAttr> {
        self.entry(self.child(parent, name)?)
    }

    pub(crate) fn forget(&self, ino: u64, lookups: u64) {
        self.nodes.lock().forget(ino, lookups);
    }

    pub(crate) fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<FileAttr> {
        let meta = if let Some(file) = fh.and_then(|fh| self.handles.lock().file(fh).ok()) {
            file.metadata()
        } else {
            match self.path(ino) {
                Ok(path) => fs::symlink_metadata(path),
                Err(e) => self.handles.lock().any_of(ino).ok_or(e)?.metadata(),
            }
        };
        Ok(attr(ino, &meta.map_err(|e| errno(&e))?))
    }

    pub(crate) fn setattr(&self, ino: u64, fh: Option<u64>, set: SetAttr) -> Result<FileAttr> {
        if let Some(size) = set.size {
            // Truncation needs a writable descriptor: the caller's handle
            // (ftruncate, open with O_TRUNC) or a fresh one (truncate(2)).
            let handle = fh.and_then(|fh| self.handles.lock().file(fh).ok());
            let file = match handle {
                Some(file) => file,
                None => Arc::new(
                    OpenOptions::new()
                        .write(true)
                        .open(self.path(ino)?)
                        .map_err(|e| errno(&e))?,
                ),
            };
            file.set_len(size).map_err(|e| errno(&e))?;
        }
        let file = self.file_of(ino, fh)?;
        if let Some(mode) = set.mode {
            file.set_permissions(Permissions::from_mode(mode & 0o7777))
                .map_err(|e| errno(&e))?;
        }
        if set.uid.is_some() || set.gid.is_some() {
            fchown(&*file, set.uid, set.gid).map_err(|e| errno(&e))?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            let mut times = FileTimes::new();
            if let Some(t) = set.atime {
                times = times.set_accessed(time(t));
            }
            if let Some(t) = set.mtime {
                times = times.set_modified(time(t));
            }
            file.set_times(times).map_err(|e| errno(&e))?;
        }
        Ok(attr(ino, &file.metadata().map_err(|e| errno(&e))?))
    }

    pub(crate) fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<FileAttr> {
        let path = self.child(parent, name)?;
        fs::DirBuilder::new()
            .mode(mode & !umask & 0o7777)
            .create(&path)
            .map_err(|e| errno(&e))?;
        self.entry(path)
    }

    pub(crate) fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64)> {
        let path = self.child(parent, name)?;
        let mut options = open_options(flags);
        // Through `custom_flags`, because std refuses `create` on a
        // read-only descriptor, which open(2) allows.
        let creation = libc::O_CREAT | (flags & (libc::O_EXCL | libc::O_TRUNC));
        options
            .custom_flags((flags & PASSED_OPEN_FLAGS) | creation)
            .mode(mode & !umask & 0o7777);
        let file = options.open(&path).map_err(|e| errno(&e))?;
        let attr = self.entry(path)?;
        let fh = self.handles.lock().insert(Handle::File {
            ino: attr.ino.0,
            file: Arc::new(file),
        });
        Ok((attr, fh))
    }

    pub(crate) fn open(&self, ino: u64, flags: i32) -> Result<u64> {
        let file = open_options(flags)
            .open(self.path(ino)?)
            .map_err(|e| errno(&e))?;
        Ok(self.handles.lock().insert(Handle::File {
            ino,
            file: Arc::new(file),
        }))
    }

    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let file = self.handles.lock().file(fh)?;
        let mut buf = vec![0; size as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(errno(&e)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    pub(crate) fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let written = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        let file = self.handles.lock().file(fh)?;
        file.write_all_at(data, offset).map_err(|e| errno(&e))?;
        Ok(written)
    }

    pub(crate) fn fsync(&self, fh: u64, datasync: bool) -> Result<()> {
        let file = self.handles.lock().file(fh)?;
        let synced = if datasync {
            file.sync_data()
        } else {
            file.sync_all()
        };
        synced.map_err(|e| errno(&e))
    }

    /// The flush on `close(2)`: nothing to do on the backing file (its
    /// descriptor stays open until `release`), but the handle must exist.
    pub(crate) fn flush(&self, fh: u64) -> Result<()> {
        self.handles.lock().file(fh).map(drop)
    }

    pub(crate) fn release(&self, fh: u64) {
        self.handles.lock().open.remove(&fh);
    }

    pub(crate) fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        let file = self.handles.lock().file(fh)?;
        let offset = libc::off_t::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let length = libc::off_t::try_from(length).map_err(|_| Errno::EFBIG)?;
        let mode = nix::fcntl::FallocateFlags::from_bits_retain(mode);
        nix::fcntl::fallocate(&*file, mode, offset, length).map_err(nix_errno)
    }

    pub(crate) fn opendir(&self, ino: u64) -> Result<u64> {
        let file = File::open(self.path(ino)?).map_err(|e| errno(&e))?;
        Ok(self.handles.lock().insert(Handle::Dir {
            ino,
            file: Arc::new(file),
            entries: Vec::new(),
        }))
    }

    fn list(&self, ino: u64) -> Result<Vec<DirEntry>> {
        let path = self.path(ino)?;
        let parent = if ino == INodeNo::ROOT.0 {
            ino
        } else {
            path.parent()
                .and_then(|p| fs::metadata(p).ok())
                .map_or(ino, |m| m.ino())
        };
        let mut entries = vec![
            DirEntry {
                ino,
                kind: FileType::Directory,
                name: ".".into(),
            },
            DirEntry {
                ino: parent,
                kind: FileType::Directory,
                name: "..".into(),
            },
        ];
        for entry in fs::read_dir(&path).map_err(|e| errno(&e))? {
            let entry = entry.map_err(|e| errno(&e))?;
            // The kernel hands `d_ino` to the reader unchanged and never
            // uses it to find the file, so the backing number will do.
            let kind = entry.file_type().map_or(FileType::RegularFile, kind_of);
            entries.push(DirEntry {
                ino: entry.ino(),
                kind,
                name: entry.file_name(),
            });
        }
        Ok(entries)
    }

    /// The entries of directory handle `fh` from `offset` on.
    pub(crate) fn readdir(&self, ino: u64, fh: u64, offset: u64) -> Result<Vec<DirEntry>> {
        // A read from offset 0 (opendir, rewinddir) takes a fresh snapshot.
        let fresh = if offset == 0 {
            Some(self.list(ino)?)
        } else {
            None
        };
        let mut handles = self.handles.lock();
        let Some(Handle::Dir { entries, .. }) = handles.open.get_mut(&fh) else {
            return Err(Errno::EBADF);
        };
        if let Some(fresh) = fresh {
            *entries = fresh;
        }
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        Ok(entries.iter().skip(skip).cloned().collect())
    }

    pub(crate) fn fsyncdir(&self, fh: u64) -> Result<()> {
        let file = self.handles.lock().file(fh)?;
        file.sync_all().map_err(|e| errno(&e))
    }

    pub(crate) fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let path = self.child(parent, name)?;
        let meta = fs::symlink_metadata(&path).map_err(|e| errno(&e))?;
        fs::remove_file(&path).map_err(|e| errno(&e))?;
        self.nodes.lock().unlinked(key_of(&meta));
        Ok(())
    }

    pub(crate) fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let path = self.child(parent, name)?;
        let meta = fs::symlink_metadata(&path).map_err(|e| errno(&e))?;
        fs::remove_dir(&path).map_err(|e| errno(&e))?;
        self.nodes.lock().unlinked(key_of(&meta));
        Ok(())
    }

    /// Renames like rename(2); of the renameat2 flags only `RENAME_NOREPLACE`
    /// is supported (`RENAME_EXCHANGE` would have to swap subtrees).
    pub(crate) fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<()> {
        let from = self.child(parent, name)?;
        let to = self.child(new_parent, new_name)?;
        let moved = fs::symlink_metadata(&from).map_err(|e| errno(&e))?;
        let replaced = fs::symlink_metadata(&to).ok();
        if flags == 0 {
            fs::rename(&from, &to).map_err(|e| errno(&e))?;
        } else if flags == libc::RENAME_NOREPLACE {
            let flags = nix::fcntl::RenameFlags::RENAME_NOREPLACE;
            let cwd = nix::fcntl::AT_FDCWD;
            nix::fcntl::renameat2(cwd, &from, cwd, &to, flags).map_err(nix_errno)?;
        } else {
            return Err(Errno::EINVAL);
        }
        let mut nodes = self.nodes.lock();
        if let Some(replaced) = replaced {
            if key_of(&replaced) != key_of(&moved) {
                nodes.unlinked(key_of(&replaced));
            }
        }
        nodes.moved(&from, &to);
        Ok(())
    }

    pub(crate) fn statfs(&self) -> Result<StatFs> {
        let st = nix::sys::statvfs::statvfs(&self.root).map_err(nix_errno)?;
        let narrow = |v: libc::c_ulong| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(StatFs {
            blocks: st.blocks(),
            bfree: st.blocks_free(),
            bavail: st.blocks_available(),
            files: st.files(),
            ffree: st.files_free(),
            bsize: narrow(st.block_size()),
            namelen: narrow(st.name_max()),
            frsize: narrow(st.fragment_size()),
        })
    }
}
