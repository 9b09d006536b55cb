//! Mounting and unmounting, and the one place that decides whether a test
//! can mount at all.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, Session};

use crate::backing::Backing;
use crate::fs::FuseFs;
use crate::gate::{Shared, StallControl};

/// How long [`Mounted`]'s drop waits for the session thread to end after the
/// unmount. It ends at once unless a descriptor under the mount is still
/// open; then it is left to end when the last one closes.
const SESSION_END_WAIT_MAX: Duration = Duration::from_millis(250);

/// The environment variable that turns [`mount_or_skip`]'s skip into a
/// failure, for CI machines that are known to have FUSE.
pub const REQUIRE_FUSE_ENV: &str = "WAL_STALLFS_REQUIRE_FUSE";

/// A FUSE passthrough filesystem whose writes and syncs a test can stall,
/// release or fail.
///
/// Every operation under the mount point is done on the backing directory;
/// what a [`StallControl`] stalls waits in the kernel, exactly as a process
/// waits on a stalled disk.
#[derive(Debug)]
pub struct StallFs {
    _private: (),
}

impl StallFs {
    /// Mounts a passthrough of the directory `backing` on the directory
    /// `mountpoint` and returns the guard that unmounts it.
    ///
    /// Needs Linux, `/dev/fuse` and the right to mount: root mounts with
    /// mount(2) itself; other users need `fusermount3` (Debian `fuse3`).
    ///
    /// # Errors
    ///
    /// If either path is not a directory, if `backing` lies under
    /// `mountpoint` (the filesystem would serve itself), or if the mount
    /// fails: `PermissionDenied` without the right to mount, `NotFound`
    /// without `/dev/fuse` (or, as non-root, without `fusermount3`).
    /// [`mount_or_skip`] turns those two into a skip.
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<Mounted> {
        let backing = backing.canonicalize()?;
        let mountpoint = mountpoint.canonicalize()?;
        if !fs::metadata(&mountpoint)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("mount point {} is not a directory", mountpoint.display()),
            ));
        }
        if backing.starts_with(&mountpoint) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "backing directory {} is under the mount point {}",
                    backing.display(),
                    mountpoint.display()
                ),
            ));
        }
        let shared = Arc::new(Shared::new(Backing::new(backing.clone())?));
        let fs = FuseFs {
            shared: Arc::clone(&shared),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("wal-stallfs".to_owned()),
            MountOption::Subtype("wal-stallfs".to_owned()),
        ];
        // Returns once the kernel handshake is done: the mount is usable.
        let session = Session::new(fs, &mountpoint, &config)?;
        // Run the session on our own thread rather than with
        // `Session::spawn`: fuser's mount guard then lives on that thread
        // and is dropped only after the kernel has torn the connection down,
        // when it no longer tries a second (plain) unmount of the path.
        let session = thread::Builder::new()
            .name("wal-stallfs".to_owned())
            .spawn(move || session.run())?;
        Ok(Mounted {
            control: StallControl { shared },
            backing,
            mountpoint,
            session: Some(session),
        })
    }
}

/// A mounted [`StallFs`]. Dropping it releases every stall and unmounts.
///
/// The drop never waits for a stalled request: it first answers every parked
/// request and stops parking new ones, then detaches the mount
/// (`umount2(MNT_DETACH)`, which succeeds even while files are open), then
/// waits briefly for fuser's session thread to end. Descriptors still open
/// under the mount keep working until they are closed.
#[derive(Debug)]
pub struct Mounted {
    control: StallControl,
    backing: PathBuf,
    mountpoint: PathBuf,
    session: Option<JoinHandle<io::Result<()>>>,
}

impl Mounted {
    /// The handle that stalls, releases and fails requests.
    pub fn control(&self) -> StallControl {
        self.control.clone()
    }

    /// Where the filesystem is mounted (canonical).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The directory every operation is passed to (canonical).
    pub fn backing(&self) -> &Path {
        &self.backing
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Answer the parked requests first: a process waiting in one holds
        // the mount busy, and nothing must park after this point.
        self.control.close();
        if let Err(e) = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!(
                "wal-stallfs: unmounting {} failed: {e}",
                self.mountpoint.display()
            );
        }
        let Some(session) = self.session.take() else {
            return;
        };
        let deadline = Instant::now() + SESSION_END_WAIT_MAX;
        while !session.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        if session.is_finished() {
            match session.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("wal-stallfs: session ended with an error: {e}"),
                Err(_) => eprintln!("wal-stallfs: session thread panicked"),
            }
        }
        // Otherwise the thread is detached; it ends when the last open
        // descriptor under the detached mount is closed.
    }
}

/// Whether `path` is a mount point now, according to /proc/self/mountinfo.
///
/// # Errors
///
/// If `path` cannot be made canonical or mountinfo cannot be read.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let path = path.canonicalize()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|field| Path::new(&unescape_mountinfo(field)) == path))
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .and_then(|digits| {
                let value = digits
                    .iter()
                    .fold(0_u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                u8::try_from(value).ok()
            });
        match (bytes[i], escaped) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts like [`StallFs::mount`], or explains loudly why a test cannot and
/// returns `None` so that it can return early.
///
/// This is the one place that decides to skip. It skips when `/dev/fuse` is
/// missing, or when the mount is refused for want of permission or of a
/// mount helper (`PermissionDenied`, `NotFound`, `ENODEV`), printing a line
/// that starts with `SKIPPED:` to stderr. Any other failure is a bug and
/// panics. With [`REQUIRE_FUSE_ENV`] set to anything but `0`, a skip
/// panics instead, so a CI machine that should have FUSE cannot pass by
/// skipping.
///
/// # Panics
///
/// If either directory does not exist, if the mount fails for another
/// reason, or if it would skip while [`REQUIRE_FUSE_ENV`] is set.
pub fn mount_or_skip(backing: &Path, mountpoint: &Path) -> Option<Mounted> {
    for dir in [backing, mountpoint] {
        assert!(dir.is_dir(), "{} is not a directory", dir.display());
    }
    let reason = if Path::new("/dev/fuse").exists() {
        match StallFs::mount(backing, mountpoint) {
            Ok(mounted) => return Some(mounted),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound
                ) || e.raw_os_error() == Some(libc::ENODEV) =>
            {
                format!("cannot mount FUSE here ({e})")
            }
            Err(e) => panic!(
                "mounting wal-stallfs on {} failed: {e}",
                mountpoint.display()
            ),
        }
    } else {
        "no /dev/fuse".to_owned()
    };
    let required = std::env::var_os(REQUIRE_FUSE_ENV).is_some_and(|v| v != "0");
    assert!(
        !required,
        "{reason}, but {REQUIRE_FUSE_ENV} is set: this machine must run the FUSE tests"
    );
    eprintln!(
        "SKIPPED: {reason}: this test needs FUSE (Linux, /dev/fuse, and root or fusermount3)"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::unescape_mountinfo;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/trailing\04"), r"/trailing\04");
        assert_eq!(unescape_mountinfo(r"/sign\+12"), r"/sign\+12");
    }
}
