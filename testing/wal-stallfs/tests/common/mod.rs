//! What every FUSE test needs: a backing directory, a mount point, and the
//! mount, or a loud skip (decided by `wal_stallfs::mount_or_skip`).

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use wal_stallfs::{Mounted, StallControl, mount_or_skip};

/// A mounted stall filesystem over a fresh backing directory.
pub(crate) struct Fixture {
    // Fields drop in order: the mount goes before its directories.
    pub(crate) mounted: Mounted,
    backing: TempDir,
    _mountpoint: TempDir,
}

impl Fixture {
    /// Mounts over two fresh temporary directories, or returns `None`
    /// after `mount_or_skip` printed why this machine cannot.
    pub(crate) fn mount() -> Option<Fixture> {
        let backing = tempfile::tempdir().expect("backing tempdir");
        let mountpoint = tempfile::tempdir().expect("mount point tempdir");
        let mounted = mount_or_skip(backing.path(), mountpoint.path())?;
        Some(Fixture {
            mounted,
            backing,
            _mountpoint: mountpoint,
        })
    }

    /// `name` under the mount point.
    pub(crate) fn mnt(&self, name: &str) -> PathBuf {
        self.mounted.mountpoint().join(name)
    }

    /// `name` in the backing directory, bypassing FUSE.
    pub(crate) fn backing(&self, name: &str) -> PathBuf {
        self.backing.path().join(name)
    }

    pub(crate) fn control(&self) -> StallControl {
        self.mounted.control()
    }

    pub(crate) fn mountpoint(&self) -> &Path {
        self.mounted.mountpoint()
    }
}
