//! `NoSyncFs`: a filesystem whose syncs do nothing.
//!
//! For the `none` sync policy (tests, scratch data): file and directory syncs
//! return at once without reaching the disk, so nothing written is ever known
//! durable. Everything else passes through.

use std::path::Path;

use crate::{DirLock, File, Fs, Metadata, Result};

/// Wraps any [`Fs`], turning [`File::sync_data`] and [`Fs::sync_dir`] into
/// no-ops.
#[derive(Debug)]
pub struct NoSyncFs<F> {
    inner: F,
}

impl<F: Fs> NoSyncFs<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> NoSyncFs<F> {
        NoSyncFs { inner }
    }
}

#[derive(Debug)]
struct NoSyncFile(Box<dyn File>);

impl File for NoSyncFile {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.0.write(buf)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn sync_data(&mut self) -> Result<()> {
        Ok(())
    }
    fn size(&self) -> Result<u64> {
        self.0.size()
    }
    fn preallocate(&mut self, offset: u64, len: u64) -> Result<()> {
        self.0.preallocate(offset, len)
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn close(self: Box<Self>) -> Result<()> {
        self.0.close()
    }
}

impl<F: Fs> Fs for NoSyncFs<F> {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        Ok(Box::new(NoSyncFile(self.inner.create(path)?)))
    }
    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        self.inner.open(path)
    }
    fn reuse_for_write(&self, old: &Path, new: &Path) -> Result<Box<dyn File>> {
        Ok(Box::new(NoSyncFile(self.inner.reuse_for_write(old, new)?)))
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        self.inner.remove(path)
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }
    fn stat(&self, path: &Path) -> Result<Metadata> {
        self.inner.stat(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        self.inner.truncate(path, len)
    }
    fn lock(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        self.inner.lock(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemFs;

    #[test]
    fn syncs_never_reach_the_disk() {
        let mem = MemFs::new();
        let fs = NoSyncFs::new(mem.clone());
        fs.create_dir_all(Path::new("/d")).unwrap();
        let mut f = fs.create(Path::new("/d/f")).unwrap();
        f.write(b"data").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        assert_eq!(mem.read_file(Path::new("/d/f")).unwrap(), b"data");
        let info = mem
            .files()
            .into_iter()
            .find(|i| i.path == Path::new("/d/f"))
            .unwrap();
        assert_eq!(info.durable_len, 0, "nothing became durable");
    }
}
