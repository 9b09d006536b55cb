//! Without stalls the mount behaves like the backing directory, for every
//! operation a write-ahead log does: create, write, sync, truncate, rename,
//! list, remove, lock, preallocate, and sync the directory itself.
#![cfg(target_os = "linux")]

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;

use common::Fixture;
use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, Flock, FlockArg};
use wal_stallfs::Op;

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn files_through_the_mount_behave_like_the_backing_directory() {
    let Some(fx) = Fixture::mount() else { return };
    let control = fx.control();
    assert!(fx.mountpoint().is_dir());

    // Create, write, sync: the bytes are in the backing directory.
    let mut file = File::create(fx.mnt("a.log")).unwrap();
    file.write_all(b"hello ").unwrap();
    file.write_all(b"world").unwrap();
    file.sync_data().unwrap();
    file.sync_all().unwrap();
    drop(file);
    assert_eq!(fs::read(fx.backing("a.log")).unwrap(), b"hello world");
    let meta = fs::metadata(fx.mnt("a.log")).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.len(), 11);

    // Read back through the mount, at an offset.
    let mut file = File::open(fx.mnt("a.log")).unwrap();
    file.seek(SeekFrom::Start(6)).unwrap();
    let mut tail = String::new();
    file.read_to_string(&mut tail).unwrap();
    assert_eq!(tail, "world");
    drop(file);

    // Truncate (setattr with a size) and append (offsets computed by the
    // kernel, not by an O_APPEND backing descriptor).
    let file = OpenOptions::new()
        .write(true)
        .open(fx.mnt("a.log"))
        .unwrap();
    file.set_len(5).unwrap();
    drop(file);
    assert_eq!(fs::metadata(fx.backing("a.log")).unwrap().len(), 5);
    let mut file = OpenOptions::new()
        .append(true)
        .open(fx.mnt("a.log"))
        .unwrap();
    file.write_all(b"!!").unwrap();
    drop(file);
    assert_eq!(fs::read(fx.mnt("a.log")).unwrap(), b"hello!!");

    // Rename, and rename over an existing file.
    fs::rename(fx.mnt("a.log"), fx.mnt("b.log")).unwrap();
    assert!(!fx.mnt("a.log").exists());
    assert!(!fx.backing("a.log").exists());
    assert_eq!(fs::read(fx.backing("b.log")).unwrap(), b"hello!!");
    fs::write(fx.mnt("c.log"), b"old").unwrap();
    fs::rename(fx.mnt("b.log"), fx.mnt("c.log")).unwrap();
    assert_eq!(fs::read(fx.mnt("c.log")).unwrap(), b"hello!!");
    assert_eq!(fs::read(fx.backing("c.log")).unwrap(), b"hello!!");

    // A subdirectory, a listing, and a renamed directory's contents.
    fs::create_dir(fx.mnt("sub")).unwrap();
    fs::write(fx.mnt("sub/x"), b"x").unwrap();
    fs::rename(fx.mnt("sub"), fx.mnt("dir")).unwrap();
    assert_eq!(fs::read(fx.mnt("dir/x")).unwrap(), b"x");
    assert_eq!(names(fx.mountpoint()), ["c.log", "dir"]);
    assert_eq!(names(fx.mountpoint()), names(&fx.backing("")));

    // Syncing the directory itself reaches the filesystem.
    let fsync_dirs = control.completed(Op::FsyncDir);
    File::open(fx.mountpoint()).unwrap().sync_all().unwrap();
    assert_eq!(control.completed(Op::FsyncDir), fsync_dirs + 1);

    // An open file stays usable after it is removed.
    let mut open = File::open(fx.mnt("c.log")).unwrap();
    fs::remove_file(fx.mnt("c.log")).unwrap();
    assert!(!fx.backing("c.log").exists());
    assert_eq!(open.metadata().unwrap().len(), 7);
    let mut content = Vec::new();
    open.read_to_end(&mut content).unwrap();
    assert_eq!(content, b"hello!!");
    drop(open);

    fs::remove_dir_all(fx.mnt("dir")).unwrap();
    assert!(names(fx.mountpoint()).is_empty());
    assert!(names(&fx.backing("")).is_empty());

    // statfs passes the backing filesystem's figures through.
    let through = nix::sys::statvfs::statvfs(fx.mountpoint()).unwrap();
    let direct = nix::sys::statvfs::statvfs(&fx.backing("")).unwrap();
    assert_eq!(through.blocks(), direct.blocks());

    assert!(control.completed(Op::Write) >= 5);
    assert!(control.completed(Op::Fsync) >= 2);
    assert!(control.completed(Op::Create) >= 3);
    assert!(control.completed(Op::Flush) >= 3);
}

/// flock is not passed to the filesystem (fuser does not negotiate
/// `FUSE_FLOCK_LOCKS`), so the kernel keeps the lock on the FUSE inode: a
/// second descriptor through the mount is refused, as on a local disk, but
/// the backing file itself is not locked.
#[test]
fn flock_through_the_mount_excludes_a_second_descriptor_and_is_kept_by_the_kernel() {
    let Some(fx) = Fixture::mount() else { return };
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(fx.mnt("LOCK"))
            .unwrap()
    };

    let held = Flock::lock(open(), FlockArg::LockExclusiveNonblock).expect("first lock");
    let refused = Flock::lock(open(), FlockArg::LockExclusiveNonblock);
    let Err((second, errno)) = refused else {
        panic!("a second exclusive flock through the mount was granted");
    };
    assert_eq!(errno, Errno::EWOULDBLOCK);

    // Kept by the kernel on the FUSE inode, not on the backing file.
    let backing = File::open(fx.backing("LOCK")).unwrap();
    let direct = Flock::lock(backing, FlockArg::LockExclusiveNonblock);
    assert!(direct.is_ok(), "the backing file was locked too");
    drop(direct);

    // Released on unlock: the second descriptor gets it now.
    drop(held);
    Flock::lock(second, FlockArg::LockExclusiveNonblock).expect("lock after release");
}

#[test]
fn fallocate_through_the_mount_does_what_it_does_on_the_backing_directory() {
    const LEN: i64 = 1 << 20;
    let Some(fx) = Fixture::mount() else { return };
    let keep_size = FallocateFlags::FALLOC_FL_KEEP_SIZE;

    let direct = File::create(fx.backing("direct")).unwrap();
    let expected = nix::fcntl::fallocate(&direct, keep_size, 0, LEN);
    let through = File::create(fx.mnt("through")).unwrap();
    let got = nix::fcntl::fallocate(&through, keep_size, 0, LEN);
    assert_eq!(got, expected);

    let meta = fs::metadata(fx.backing("through")).unwrap();
    assert_eq!(meta.len(), 0, "KEEP_SIZE kept the length");
    if expected.is_ok() {
        assert_eq!(meta.blocks(), direct.metadata().unwrap().blocks());
        assert!(meta.blocks() * 512 >= LEN.unsigned_abs());
    }
}
