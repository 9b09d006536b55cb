//! Test support: a FUSE passthrough filesystem whose writes and syncs a test
//! can stall, release or fail, to stall a *real* disk at kernel level.
//!
//! Mount it over a scratch directory, point the code under test at the mount
//! point, and every file operation there is done on the backing directory,
//! until the test says [`StallControl::stall`]: from then on the chosen
//! kinds of request ([`Op`]) wait in the kernel, as they would on a disk
//! that stopped answering, while everything else (a `stat`, a read, other
//! kinds) is still served. [`StallControl::release`] lets them through in
//! order; [`StallControl::fail`] makes them fail with an errno instead.
//!
//! The crate knows nothing of logs; it is a disk that can be made to stop.
//! Linux only (elsewhere it is empty), and it needs `/dev/fuse` and the
//! right to mount: as root fuser calls mount(2) itself and no package is
//! needed; other users need `fusermount3` (Debian `fuse3`).
//! [`mount_or_skip`] is the one place that decides a test cannot run here.
//!
//! # What passes through
//!
//! lookup, getattr, setattr (mode, owner, times, and size: truncation),
//! mkdir, create, open, read, write, flush, fsync and fdatasync, release,
//! opendir, readdir, releasedir, fsyncdir, unlink, rmdir, rename (and
//! `RENAME_NOREPLACE`), statfs, fallocate. `flock(2)` and POSIX locks are
//! kept by the kernel on the FUSE inode (the filesystem does not take them
//! over), so they exclude each other through the mount as on a local disk,
//! but a process locking the backing file directly is not excluded. No
//! writeback cache and zero TTLs: every `write(2)` and every `stat(2)`
//! reaches the filesystem.
//!
//! # Example
//!
//! ```
//! # #[cfg(target_os = "linux")]
//! # fn main() -> std::io::Result<()> {
//! use std::io::Write;
//! use std::time::Duration;
//! use wal_stallfs::{Op, mount_or_skip};
//!
//! let backing = tempfile::tempdir()?;
//! let mnt = tempfile::tempdir()?;
//! let Some(mounted) = mount_or_skip(backing.path(), mnt.path()) else {
//!     return Ok(());
//! };
//! let control = mounted.control();
//!
//! let path = mnt.path().join("000001.log");
//! let mut file = std::fs::File::create(&path)?;
//! control.stall(Op::Fsync);
//! file.write_all(b"record")?; // writes still pass
//! let syncer = std::thread::spawn(move || file.sync_data());
//! assert!(control.wait_parked(1, Duration::from_secs(30)));
//! assert!(!syncer.is_finished()); // the fsync waits in the kernel
//! control.release();
//! syncer.join().unwrap()?;
//! assert_eq!(std::fs::read(backing.path().join("000001.log"))?, b"record");
//! drop(mounted); // releases any stall, then unmounts
//! # Ok(())
//! # }
//! # #[cfg(not(target_os = "linux"))]
//! # fn main() {}
//! ```
#![deny(missing_docs)]

#[cfg(target_os = "linux")]
mod backing;
#[cfg(target_os = "linux")]
mod fs;
#[cfg(target_os = "linux")]
mod gate;
#[cfg(target_os = "linux")]
mod mount;
mod ops;

#[cfg(target_os = "linux")]
pub use gate::StallControl;
#[cfg(target_os = "linux")]
pub use mount::{Mounted, REQUIRE_FUSE_ENV, StallFs, is_mount_point, mount_or_skip};
pub use ops::{Op, OpSet};
