//! [`OsFs`]: the [`Fs`] of a real directory, over `std::fs` and a few libc
//! calls (`flock`, `fallocate`).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{DirLock, Error, File, Fs, Metadata, Op, Result};

/// The name of the lock file [`OsFs::lock`] creates inside a locked
/// directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// The operating system's filesystem.
///
/// Every operation is one system call or a short fixed sequence of them, and
/// none syncs a directory behind the caller's back: a caller that needs a
/// creation or rename to survive a power loss calls [`Fs::sync_dir`].
///
/// ```
/// use wal_fs::{File, Fs, OsFs};
///
/// let dir = tempfile::tempdir().unwrap();
/// let fs = OsFs::new();
/// let path = dir.path().join("a.log");
/// let mut f = fs.create(&path).unwrap();
/// f.write(b"hello").unwrap();
/// f.sync_data().unwrap();
/// fs.sync_dir(dir.path()).unwrap();
/// assert_eq!(fs.stat(&path).unwrap().len, 5);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFs;

impl OsFs {
    /// The operating system's filesystem.
    pub fn new() -> OsFs {
        OsFs
    }
}

impl Fs for OsFs {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(Op::Create, path, e))?;
        Ok(Box::new(OsFile::new(file, path, true)))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        let file = fs::File::open(path).map_err(|e| Error::io(Op::Open, path, e))?;
        Ok(Box::new(OsFile::new(file, path, false)))
    }

    fn reuse_for_write(&self, old: &Path, new: &Path) -> Result<Box<dyn File>> {
        // Check-then-rename is not atomic against another process creating
        // `new` in between; the directory lock ([`Fs::lock`]) is what keeps
        // other writers out of a WAL directory, so the check only guards
        // against this process's own mistakes (reusing onto a live log).
        match fs::symlink_metadata(new) {
            Ok(_) => {
                let e = io::Error::new(io::ErrorKind::AlreadyExists, "target already exists");
                return Err(Error::io(Op::ReuseForWrite, new, e));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(Op::ReuseForWrite, new, e)),
        }
        fs::rename(old, new).map_err(|e| Error::io(Op::ReuseForWrite, old, e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(new)
            .map_err(|e| Error::io(Op::ReuseForWrite, new, e))?;
        Ok(Box::new(OsFile::new(file, new, true)))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| Error::io(Op::Rename, from, e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| Error::io(Op::Remove, path, e))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let err = |e| Error::io(Op::List, dir, e);
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(err)? {
            // A name that is not UTF-8 cannot be one of ours; it is listed
            // lossily rather than failing the whole listing.
            names.push(
                entry
                    .map_err(err)?
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        names.sort_unstable();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| Error::io(Op::CreateDir, dir, e))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let err = |e| Error::io(Op::SyncDir, dir, e);
        fs::File::open(dir).map_err(err)?.sync_all().map_err(err)
    }

    fn stat(&self, path: &Path) -> Result<Metadata> {
        let meta = fs::metadata(path).map_err(|e| Error::io(Op::Stat, path, e))?;
        Ok(Metadata {
            len: if meta.is_dir() { 0 } else { meta.len() },
            is_dir: meta.is_dir(),
        })
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let err = |e| Error::io(Op::Truncate, path, e);
        let file = OpenOptions::new().write(true).open(path).map_err(err)?;
        file.set_len(len).map_err(err)?;
        file.sync_all().map_err(err)
    }

    fn lock(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        let lock_path = dir.join(LOCK_FILE_NAME);
        let err = |e| Error::io(Op::Lock, &lock_path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(err)?;
        match sys::try_lock_exclusive(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(err(e)),
        }
        // The holder's pid, for a human wondering who holds the lock. Only
        // written once the lock is ours, so a refused opener never clobbers
        // it.
        file.set_len(0).map_err(err)?;
        writeln!(file, "{}", std::process::id()).map_err(err)?;
        Ok(Box::new(OsDirLock {
            dir: dir.to_path_buf(),
            _file: file,
        }))
    }
}

/// A file of [`OsFs`].
#[derive(Debug)]
struct OsFile {
    file: fs::File,
    path: PathBuf,
    writable: bool,
}

impl OsFile {
    fn new(file: fs::File, path: &Path, writable: bool) -> OsFile {
        OsFile {
            file,
            path: path.to_path_buf(),
            writable,
        }
    }
}

impl File for OsFile {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        if !self.writable {
            let e = io::Error::new(io::ErrorKind::PermissionDenied, "file is open read-only");
            return Err(Error::io(Op::Write, &self.path, e));
        }
        self.file
            .write_all(buf)
            .map_err(|e| Error::io(Op::Write, &self.path, e))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        // `pread` may return fewer bytes than asked before the end of the
        // file (signals); loop so that a short count means end of file.
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(Op::Read, &self.path, e)),
            }
        }
        Ok(done)
    }

    fn sync_data(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(Op::Sync, &self.path, e))
    }

    fn size(&self) -> Result<u64> {
        let meta = self
            .file
            .metadata()
            .map_err(|e| Error::io(Op::Size, &self.path, e))?;
        Ok(meta.len())
    }

    fn preallocate(&mut self, offset: u64, len: u64) -> Result<()> {
        sys::preallocate(&self.file, offset, len)
            .map_err(|e| Error::io(Op::Preallocate, &self.path, e))
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn close(self: Box<Self>) -> Result<()> {
        // `close(2)` errors on a local filesystem only report earlier
        // write-back failures, which the WAL learns from `sync_data`; std
        // ignores them too.
        drop(self.file);
        Ok(())
    }
}

/// The lock taken by [`OsFs::lock`]: an open descriptor of the `LOCK` file
/// holding a `flock`. Closing the descriptor (dropping this) releases it.
#[derive(Debug)]
struct OsDirLock {
    dir: PathBuf,
    _file: fs::File,
}

impl DirLock for OsDirLock {
    fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The libc calls std does not wrap (at this crate's minimum Rust version).
mod sys {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// `flock(LOCK_EX | LOCK_NB)`. `flock` locks belong to the open file
    /// description, so a second descriptor opened by this same process
    /// conflicts too (unlike `fcntl` record locks, which a process never
    /// conflicts with itself on). That is what makes a second WAL manager in
    /// the same process see the directory as locked.
    ///
    /// Returns an error of kind `WouldBlock` if another description holds it.
    #[allow(unsafe_code)]
    pub(super) fn try_lock_exclusive(file: &File) -> io::Result<()> {
        loop {
            // SAFETY: `flock` takes a descriptor and flags and touches no
            // memory; the descriptor is valid for the duration of the call
            // because `file` is borrowed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// `fallocate(FALLOC_FL_KEEP_SIZE)`: reserves blocks without changing the
    /// file length. Filesystems that cannot (`EOPNOTSUPP`) are treated as a
    /// successful no-op, as the trait allows.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub(super) fn preallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            // `fallocate` rejects a zero length with EINVAL.
            return Ok(());
        }
        let too_big = |_| io::Error::new(io::ErrorKind::InvalidInput, "range exceeds off_t");
        let offset = libc::off_t::try_from(offset).map_err(too_big)?;
        let len = libc::off_t::try_from(len).map_err(too_big)?;
        loop {
            // SAFETY: `fallocate` takes a descriptor and integers and touches
            // no memory; the descriptor is valid because `file` is borrowed.
            let rc = unsafe {
                libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len)
            };
            if rc == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EOPNOTSUPP) => return Ok(()),
                _ => return Err(e),
            }
        }
    }

    /// Other systems: a no-op, as the trait allows.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn preallocate(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The environment variable that turns [`lock_child_helper`] into the
    /// second process of [`lock_refuses_a_second_opener_in_another_process`].
    const LOCK_CHILD_ENV: &str = "WAL_FS_LOCK_CHILD";
    const CHILD_GOT_LOCK: i32 = 10;
    const CHILD_SAW_LOCKED: i32 = 11;
    const CHILD_FAILED: i32 = 12;

    fn write_file(fs: OsFs, path: &Path, bytes: &[u8]) {
        let mut f = fs.create(path).unwrap();
        f.write(bytes).unwrap();
        f.sync_data().unwrap();
        f.close().unwrap();
    }

    fn read_all(fs: OsFs, path: &Path) -> Vec<u8> {
        let f = fs.open(path).unwrap();
        let mut buf = vec![0; f.size().unwrap() as usize];
        assert_eq!(f.read_at(&mut buf, 0).unwrap(), buf.len());
        buf
    }

    #[test]
    fn create_write_sync_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("a.log");
        let mut f = fs.create(&path).unwrap();
        f.write(b"hello ").unwrap();
        f.write(b"world").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size().unwrap(), 11);
        assert_eq!(f.path(), path);
        let mut buf = [0; 5];
        assert_eq!(
            f.read_at(&mut buf, 6).unwrap(),
            5,
            "a write handle reads too"
        );
        assert_eq!(&buf, b"world");
        f.close().unwrap();
        fs.sync_dir(dir.path()).unwrap();

        let r = fs.open(&path).unwrap();
        let mut buf = [0; 16];
        assert_eq!(r.read_at(&mut buf, 0).unwrap(), 11);
        assert_eq!(&buf[..11], b"hello world");
        assert_eq!(
            r.read_at(&mut buf, 11).unwrap(),
            0,
            "reading at the end gives 0"
        );
        assert_eq!(
            r.read_at(&mut buf, 100).unwrap(),
            0,
            "reading past the end gives 0"
        );
    }

    #[test]
    fn create_truncates_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("a");
        write_file(fs, &path, b"long old content");
        write_file(fs, &path, b"new");
        assert_eq!(read_all(fs, &path), b"new");
    }

    #[test]
    fn write_through_a_read_handle_fails_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("ro");
        write_file(fs, &path, b"x");
        let mut r = fs.open(&path).unwrap();
        let err = r.write(b"y").unwrap_err();
        assert_eq!(err.op(), Op::Write);
        assert_eq!(err.path(), path);
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(read_all(fs, &path), b"x");
    }

    #[test]
    fn open_of_a_missing_file_is_not_found_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.log");
        let err = OsFs::new().open(&path).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Open);
        let msg = err.to_string();
        assert!(msg.contains("missing.log"), "{msg}");
        assert!(msg.starts_with("open "), "{msg}");
    }

    #[test]
    fn stat_reports_length_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("f");
        write_file(fs, &path, &[7; 100]);
        assert_eq!(
            fs.stat(&path).unwrap(),
            Metadata {
                len: 100,
                is_dir: false
            }
        );
        assert_eq!(
            fs.stat(dir.path()).unwrap(),
            Metadata {
                len: 0,
                is_dir: true
            }
        );
        let err = fs.stat(&dir.path().join("nope")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Stat);
    }

    #[test]
    fn rename_remove_and_list_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let sub = dir.path().join("a/b");
        fs.create_dir_all(&sub).unwrap();
        fs.create_dir_all(&sub).unwrap();
        write_file(fs, &sub.join("2.log"), b"2");
        write_file(fs, &sub.join("1.log"), b"1");
        assert_eq!(fs.list(&sub).unwrap(), ["1.log", "2.log"]);

        fs.rename(&sub.join("1.log"), &sub.join("2.log")).unwrap();
        assert_eq!(fs.list(&sub).unwrap(), ["2.log"]);
        assert_eq!(
            read_all(fs, &sub.join("2.log")),
            b"1",
            "rename replaces the target"
        );
        fs.sync_dir(&sub).unwrap();

        fs.remove(&sub.join("2.log")).unwrap();
        assert!(fs.list(&sub).unwrap().is_empty());
        let err = fs.remove(&sub.join("2.log")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Remove);
        let err = fs.rename(&sub.join("x"), &sub.join("y")).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.path(), sub.join("x"));
        let err = fs.list(&dir.path().join("none")).unwrap_err();
        assert_eq!(err.op(), Op::List);
    }

    #[test]
    fn truncate_cuts_and_extends() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("t");
        write_file(fs, &path, b"0123456789");
        fs.truncate(&path, 4).unwrap();
        assert_eq!(read_all(fs, &path), b"0123");
        fs.truncate(&path, 6).unwrap();
        assert_eq!(read_all(fs, &path), b"0123\0\0");
        let err = fs.truncate(&dir.path().join("none"), 0).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Truncate);
    }

    #[test]
    fn reuse_for_write_renames_and_overwrites_without_truncating() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let old = dir.path().join("000001.log");
        let new = dir.path().join("000005.log");
        write_file(fs, &old, b"old old old");
        let mut f = fs.reuse_for_write(&old, &new).unwrap();
        f.write(b"NEW").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size().unwrap(), 11, "the old length is kept");
        f.close().unwrap();
        assert_eq!(fs.list(dir.path()).unwrap(), ["000005.log"]);
        assert_eq!(read_all(fs, &new), b"NEW old old");
    }

    #[test]
    fn reuse_for_write_refuses_an_existing_target_and_a_missing_source() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let old = dir.path().join("a");
        let new = dir.path().join("b");
        write_file(fs, &old, b"a");
        write_file(fs, &new, b"b");
        let err = fs.reuse_for_write(&old, &new).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(err.op(), Op::ReuseForWrite);
        assert_eq!(err.path(), new);
        assert_eq!(read_all(fs, &new), b"b", "the target is untouched");

        let err = fs
            .reuse_for_write(&dir.path().join("none"), &dir.path().join("c"))
            .unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.path(), dir.path().join("none"));
    }

    #[test]
    fn preallocate_keeps_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let mut f = fs.create(&dir.path().join("p")).unwrap();
        f.write(b"abc").unwrap();
        f.preallocate(0, 1 << 20).unwrap();
        f.preallocate(0, 0).unwrap();
        assert_eq!(f.size().unwrap(), 3);
    }

    #[test]
    fn lock_refuses_a_second_opener_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let guard = fs.lock(dir.path()).unwrap();
        assert_eq!(guard.dir(), dir.path());
        let err = fs.lock(dir.path()).unwrap_err();
        assert!(err.is_locked());
        assert_eq!(err.path(), dir.path());
        assert!(err.to_string().contains("locked by another WAL manager"));
        let pid = fs::read_to_string(dir.path().join(LOCK_FILE_NAME)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        drop(guard);
        let again = fs.lock(dir.path()).unwrap();
        drop(again);
    }

    #[test]
    fn lock_of_a_missing_directory_names_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let err = OsFs::new().lock(&missing).unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.op(), Op::Lock);
        assert_eq!(err.path(), missing.join(LOCK_FILE_NAME));
    }

    /// Runs this test executable again as a second process that tries to
    /// lock `dir`, and returns its exit code.
    fn lock_in_child_process(dir: &Path) -> i32 {
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "os::tests::lock_child_helper", "--nocapture"])
            .env(LOCK_CHILD_ENV, dir)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        status.code().expect("the child exited normally")
    }

    /// Not a test of its own: the body of the second process of
    /// [`lock_refuses_a_second_opener_in_another_process`], which runs this
    /// executable with only this test and `WAL_FS_LOCK_CHILD` set. It reports
    /// through its exit code. Without the variable it checks nothing.
    #[test]
    fn lock_child_helper() {
        let Some(dir) = std::env::var_os(LOCK_CHILD_ENV) else {
            return;
        };
        let code = match OsFs::new().lock(Path::new(&dir)) {
            Ok(_) => CHILD_GOT_LOCK,
            Err(e) if e.is_locked() => CHILD_SAW_LOCKED,
            Err(e) => {
                eprintln!("lock child: {e}");
                CHILD_FAILED
            }
        };
        std::process::exit(code);
    }

    #[test]
    fn lock_refuses_a_second_opener_in_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let guard = OsFs::new().lock(dir.path()).unwrap();
        assert_eq!(lock_in_child_process(dir.path()), CHILD_SAW_LOCKED);
        drop(guard);
        assert_eq!(
            lock_in_child_process(dir.path()),
            CHILD_GOT_LOCK,
            "the lock is free once the guard is dropped"
        );
    }
}
