//! Stalls hold a request in the kernel until the test releases it, while
//! the rest of the mount keeps answering; faults fail requests with an
//! errno; dropping the mount never hangs.
//!
//! Each test waits for the request to be parked (`wait_parked`) before it
//! checks that the caller is still blocked, so nothing depends on timing.
#![cfg(target_os = "linux")]

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::Fixture;
use wal_stallfs::{Op, is_mount_point};

/// How long a test waits for a request to park. Far above what it takes on
/// a loaded machine; only a bug waits this long.
const PARK_WAIT: Duration = Duration::from_secs(30);

fn raw_errno(result: std::io::Result<()>) -> Option<i32> {
    result.expect_err("expected an error").raw_os_error()
}

#[test]
fn a_stalled_write_blocks_its_writer_until_released_while_other_files_answer() {
    let Some(fx) = Fixture::mount() else { return };
    let control = fx.control();
    fs::write(fx.mnt("other"), b"still here").unwrap();
    let mut file = File::create(fx.mnt("a.log")).unwrap();
    let writes_before = control.completed(Op::Write);

    control.stall(Op::Write);
    let writer = thread::spawn(move || file.write_all(b"payload"));
    assert!(control.wait_parked(1, PARK_WAIT), "the write never parked");
    assert!(
        !writer.is_finished(),
        "the writer returned during the stall"
    );

    // The session thread still serves everything else.
    assert_eq!(fs::metadata(fx.mnt("other")).unwrap().len(), 10);
    assert_eq!(fs::read(fx.mnt("other")).unwrap(), b"still here");
    assert_eq!(fs::metadata(fx.mnt("a.log")).unwrap().len(), 0);
    assert_eq!(fs::read(fx.backing("a.log")).unwrap(), b"");
    assert_eq!(control.parked(), 1);
    assert_eq!(control.completed(Op::Write), writes_before);
    assert!(!writer.is_finished());

    control.release();
    writer.join().unwrap().unwrap();
    assert_eq!(control.parked(), 0);
    assert_eq!(control.completed(Op::Write), writes_before + 1);
    assert_eq!(fs::read(fx.backing("a.log")).unwrap(), b"payload");

    // Released means released: later writes pass at once.
    fs::write(fx.mnt("b.log"), b"after").unwrap();
    assert_eq!(fs::read(fx.backing("b.log")).unwrap(), b"after");
}

#[test]
fn a_stalled_fsync_and_directory_sync_block_until_released_while_writes_pass() {
    let Some(fx) = Fixture::mount() else { return };
    let control = fx.control();
    fs::create_dir(fx.mnt("wal")).unwrap();
    let mut file = File::create(fx.mnt("wal/a.log")).unwrap();
    file.write_all(b"record").unwrap();
    let dir = File::open(fx.mnt("wal")).unwrap();

    control.stall(Op::Fsync | Op::FsyncDir);
    let syncer = thread::spawn(move || file.sync_data());
    assert!(control.wait_parked(1, PARK_WAIT), "the fsync never parked");
    let dir_syncer = thread::spawn(move || dir.sync_all());
    assert!(
        control.wait_parked(2, PARK_WAIT),
        "the dir fsync never parked"
    );
    assert!(!syncer.is_finished());
    assert!(!dir_syncer.is_finished());

    // Only the stalled kinds wait: another file is written meanwhile. (Not
    // in `wal`: the parked directory fsync holds that directory's lock in
    // the kernel, so creating a file there would wait for the release.)
    let mut other = File::create(fx.mnt("b.log")).unwrap();
    other.write_all(b"passes").unwrap();
    drop(other);
    assert_eq!(fs::read(fx.backing("b.log")).unwrap(), b"passes");
    assert_eq!(control.completed(Op::Fsync), 0);
    assert_eq!(control.completed(Op::FsyncDir), 0);

    control.release();
    syncer.join().unwrap().unwrap();
    dir_syncer.join().unwrap().unwrap();
    assert_eq!(control.completed(Op::Fsync), 1);
    assert_eq!(control.completed(Op::FsyncDir), 1);
}

#[test]
fn a_stalled_create_blocks_the_open_until_released() {
    let Some(fx) = Fixture::mount() else { return };
    let control = fx.control();
    fs::create_dir(fx.mnt("wal")).unwrap();
    fs::write(fx.mnt("other"), b"x").unwrap();

    control.stall(Op::Create);
    let path = fx.mnt("wal/000001.log");
    let creator = thread::spawn(move || File::create(path).map(drop));
    assert!(control.wait_parked(1, PARK_WAIT), "the create never parked");
    assert!(!creator.is_finished());
    assert!(!fx.backing("wal/000001.log").exists());
    // Not a lookup in `wal`: the creating open holds that directory's lock
    // in the kernel (as it would on a stalled local disk).
    assert_eq!(fs::read(fx.mnt("other")).unwrap(), b"x");

    control.release();
    creator.join().unwrap().unwrap();
    assert!(fx.backing("wal/000001.log").is_file());
    assert_eq!(control.completed(Op::Create), 2);
}

#[test]
fn an_injected_eio_on_fsync_is_returned_by_sync_data_until_cleared() {
    let Some(fx) = Fixture::mount() else { return };
    let control = fx.control();
    let mut file = File::create(fx.mnt("a.log")).unwrap();
    file.write_all(b"record").unwrap();

    control.fail(Op::Fsync, libc::EIO);
    assert_eq!(raw_errno(file.sync_data()), Some(libc::EIO));
    assert_eq!(raw_errno(file.sync_all()), Some(libc::EIO));
    assert_eq!(control.completed(Op::Fsync), 0);

    control.clear_faults();
    file.sync_data().unwrap();
    assert_eq!(control.completed(Op::Fsync), 1);
}

#[test]
fn injected_write_and_directory_sync_errors_reach_the_caller_and_write_nothing() {
    let Some(fx) = Fixture::mount() else { return };
    let control = fx.control();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(fx.mnt("a.log"))
        .unwrap();

    control.fail(Op::Write, libc::ENOSPC);
    control.fail(Op::FsyncDir, libc::EIO);
    assert_eq!(raw_errno(file.write_all(b"lost")), Some(libc::ENOSPC));
    assert_eq!(fs::read(fx.backing("a.log")).unwrap(), b"");
    let dir = File::open(fx.mountpoint()).unwrap();
    assert_eq!(raw_errno(dir.sync_all()), Some(libc::EIO));

    control.clear_faults();
    file.write_all(b"kept").unwrap();
    dir.sync_all().unwrap();
    assert_eq!(fs::read(fx.backing("a.log")).unwrap(), b"kept");
}

#[test]
fn a_parked_fsync_released_under_a_fault_fails() {
    let Some(fx) = Fixture::mount() else { return };
    let control = fx.control();
    let file = File::create(fx.mnt("a.log")).unwrap();

    control.stall(Op::Fsync);
    let syncer = thread::spawn(move || file.sync_data());
    assert!(control.wait_parked(1, PARK_WAIT), "the fsync never parked");
    control.fail(Op::Fsync, libc::EIO);
    control.release();
    assert_eq!(raw_errno(syncer.join().unwrap()), Some(libc::EIO));
    assert_eq!(control.completed(Op::Fsync), 0);
}

#[test]
fn dropping_the_mount_with_a_parked_write_does_not_hang_and_unmounts() {
    let Some(fx) = Fixture::mount() else { return };
    let control = fx.control();
    let mountpoint = fx.mountpoint().to_path_buf();
    let backing = fx.backing("a.log");
    let mut file = File::create(fx.mnt("a.log")).unwrap();
    assert!(is_mount_point(&mountpoint).unwrap());

    control.stall(Op::Write);
    let writer = thread::spawn(move || file.write_all(b"payload"));
    assert!(control.wait_parked(1, PARK_WAIT), "the write never parked");

    // Drop on another thread, so that a hang fails the test instead of
    // freezing it.
    let Fixture { mounted, .. } = fx;
    let (done, dropped) = mpsc::channel();
    thread::spawn(move || {
        drop(mounted);
        done.send(()).unwrap();
    });
    dropped
        .recv_timeout(PARK_WAIT)
        .expect("dropping the mount hung");

    // The drop released the parked write before unmounting.
    writer.join().unwrap().unwrap();
    assert_eq!(fs::read(&backing).unwrap(), b"payload");
    assert!(!is_mount_point(&mountpoint).unwrap());
    assert_eq!(control.parked(), 0);
    // The control outlives the mount and parks nothing any more.
    control.stall(Op::Write);
    assert!(!control.wait_parked(1, Duration::from_millis(10)));
}
