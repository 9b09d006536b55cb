//! Disk errors on the way in: ENOSPC and EIO on writes and syncs, and a
//! failed directory sync after a segment is created.
//!
//! * The failover manager switches to the other directory and loses nothing
//!   it acknowledged, even if every unsynced byte is then lost to a power
//!   cut (checked on a `DropUnsynced` crash image). The monitor is stepped
//!   by hand (`Driver::Manual`): `tick_monitor` once the fault has reached
//!   the segment, as the background monitor would within one sampling
//!   interval.
//! * The standalone manager has nowhere to go: the error reaches every
//!   waiter, and the writer stays poisoned (later appends, syncs and the
//!   close fail with the same error; nothing is retried, since after a
//!   failed fsync the page cache may have dropped the dirty pages).
//! * A failed directory sync after creating a segment: the failover
//!   manager switches; the standalone `create` fails with an error naming
//!   the directory, and a later `create` works once the fault clears.

use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wal_fs::{CrashMode, CrashOptions, EntryMode, Fault, MemFs, Op, OpFilter, Rule};
use wal_manager::failover::writer::SegmentState;
use wal_manager::{
    Config, DirId, Driver, Env, Error, FailoverManager, LogNum, Lsn, Manager, ManualClock, Writer,
};
use wal_testkit::failover::{Disk, PRIMARY, SECONDARY};

const WAIT_MAX: Duration = Duration::from_secs(30);

fn env(disk: &Disk) -> Env {
    Env {
        primary_fs: Arc::clone(&disk.fs),
        secondary_fs: Arc::clone(&disk.fs),
        clock: Arc::new(ManualClock::new()),
        driver: Driver::Manual,
        archive: None,
    }
}

fn failover(m: &Manager) -> &FailoverManager {
    match m {
        Manager::Failover(f) => f,
        Manager::Standalone(_) => panic!("not a failover manager"),
    }
}

fn record(i: u64) -> Vec<u8> {
    let mut p = format!("record {i} ").into_bytes();
    p.resize(40 + (i as usize * 37) % 300, b'.');
    p
}

/// An error and its sources, joined: what an operator would read.
fn chain(e: &Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(" <- ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Every record of `log`, as `(lsn, payload)`; the read must end cleanly or
/// in a torn tail, never in an error.
fn read(m: &Manager, log: LogNum) -> Vec<(u64, Vec<u8>)> {
    let mut r = m.open_reader(log).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r
        .next()
        .unwrap_or_else(|e| panic!("reading log {log}: {e}"))
    {
        out.push((rec.lsn.0, rec.payload.to_vec()));
    }
    out
}

/// Waits until the current segment of `w` reports an error (the fault reached
/// it) and returns it.
fn wait_segment_error(w: &Writer) -> String {
    let Writer::Failover(w) = w else {
        panic!("not a failover writer")
    };
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if let Some(s) = wal_testkit::failover::current_segment(w) {
            if let Some(e) = s.error {
                return e;
            }
            if let SegmentState::Failed(e) = s.state {
                return e;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the fault never reached the segment"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Joins `handle`, failing (instead of hanging the test run) if it does not
/// finish within [`WAIT_MAX`]: a waiter never woken is a bug worth a clear
/// message.
fn join_within<T>(handle: std::thread::JoinHandle<T>, what: &str) -> T {
    let deadline = Instant::now() + WAIT_MAX;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} was never released (a lost wake-up?)"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    handle.join().unwrap()
}

/// A failover manager on one in-memory disk with fault injection.
struct FailoverSetup {
    disk: Disk,
    config: Config,
    manager: Manager,
}

impl FailoverSetup {
    fn new() -> FailoverSetup {
        Self::with(Config::failover(PRIMARY, SECONDARY))
    }

    fn without_standby() -> FailoverSetup {
        let mut config = Config::failover(PRIMARY, SECONDARY);
        config.failover.standby = false;
        config.failover.hedge = false;
        Self::with(config)
    }

    fn with(config: Config) -> FailoverSetup {
        let disk = Disk::new(MemFs::new());
        let manager = Manager::open_with(&config, env(&disk)).unwrap();
        FailoverSetup {
            disk,
            config,
            manager,
        }
    }

    /// Everything acknowledged is in the log, once and in order, now, after
    /// a restart, and after a power cut that drops every unsynced byte and
    /// every unsynced directory entry.
    fn check_survives(self, log: LogNum, acked: &[(u64, Vec<u8>)]) {
        let FailoverSetup {
            disk,
            config,
            manager,
        } = self;
        assert_eq!(read(&manager, log), acked, "before the restart");
        manager.close().unwrap();
        let reopened = Manager::open_with(&config, env(&disk)).unwrap();
        assert_eq!(read(&reopened, log), acked, "after a restart");
        assert!(reopened.next_lsn().0 > acked.last().unwrap().0);
        reopened.close().unwrap();
        let (image, report) = disk.mem.crash_image_with(
            7,
            CrashOptions::new()
                .files(CrashMode::DropUnsynced)
                .entries(EntryMode::Durable),
        );
        let image = Disk::new(image);
        let recovered = Manager::open_with(&config, env(&image)).unwrap();
        assert_eq!(
            read(&recovered, log),
            acked,
            "after a power cut that lost every unsynced byte: {report:?}"
        );
        recovered.close().unwrap();
    }
}

/// Appends `n` records with sync, numbered from `first`; returns them with
/// their LSNs.
fn append_synced(w: &Writer, first: u64, n: u64) -> Vec<(u64, Vec<u8>)> {
    (first..first + n)
        .map(|i| {
            let p = record(i);
            (w.append_sync(&p).unwrap().0, p)
        })
        .collect()
}

/// A fault on the primary's segment writes or syncs: the waiting append is
/// released by the secondary once the monitor switches there.
fn primary_fault_switches_to_the_secondary(op: Op, fault: Fault, errno: i32) {
    let s = FailoverSetup::new();
    let fm = failover(&s.manager);
    let w = Arc::new(s.manager.create(LogNum(1)).unwrap());
    let mut acked = append_synced(&w, 0, 10);
    // Unsynced records that the failure will strand on the primary: they
    // must be replayed into the secondary, not lost.
    for i in 10..13 {
        let p = record(i);
        acked.push((w.append_nowait(&p).unwrap().0, p));
    }

    let mut rule = Rule::new(
        OpFilter::ops([op]).in_dir(PRIMARY).path_suffix(".log"),
        fault,
    );
    if op == Op::Write && fault == Fault::NoSpace {
        // A short write: the disk fills up in the middle of the buffer.
        rule = rule.after_bytes(100);
    }
    let id = s.disk.injector.add(rule);
    let batch: Vec<Vec<u8>> = (13..18).map(record).collect();
    let waiter = {
        let (w, batch) = (Arc::clone(&w), batch.clone());
        std::thread::spawn(move || {
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            w.append_batch_sync(&refs)
        })
    };
    let error = wait_segment_error(&w);
    assert!(
        error.contains(&format!("os error {errno}")),
        "the segment reports the injected error: {error}"
    );
    assert!(
        !waiter.is_finished(),
        "nothing acknowledges the batch before the switch"
    );
    assert_eq!(fm.current_dir(), DirId::Primary);
    fm.tick_monitor();
    assert_eq!(fm.current_dir(), DirId::Secondary, "the monitor switched");
    let lsns = join_within(waiter, "the batch waiting for the switch")
        .expect("the secondary made the batch durable");
    assert_eq!(lsns, Lsn(14)..Lsn(19));
    acked.extend((lsns.start.0..lsns.end.0).zip(batch));
    acked.extend(append_synced(&w, 18, 5));
    assert!(s.disk.injector.fired(id).unwrap() >= 1);
    s.disk.injector.remove(id);

    let stats = s.manager.stats().failover.unwrap();
    assert_eq!(stats.switches, 1);
    w.close().unwrap();
    drop(w);
    let segments: Vec<(DirId, String)> = s.manager.list()[0]
        .segments
        .iter()
        .map(|seg| {
            let name = seg.path.file_name().unwrap().to_string_lossy().into_owned();
            (seg.dir, name)
        })
        .collect();
    assert_eq!(
        segments,
        [
            (DirId::Primary, "000001.log".to_owned()),
            (DirId::Secondary, "000001-001.log".to_owned())
        ]
    );
    s.check_survives(LogNum(1), &acked);
}

#[test]
fn enospc_on_a_primary_write_switches_to_the_secondary_without_losing_acknowledged_records() {
    primary_fault_switches_to_the_secondary(Op::Write, Fault::NoSpace, libc_enospc());
}

#[test]
fn eio_on_a_primary_write_switches_to_the_secondary_without_losing_acknowledged_records() {
    primary_fault_switches_to_the_secondary(Op::Write, Fault::Eio, libc_eio());
}

#[test]
fn enospc_on_a_primary_sync_switches_to_the_secondary_without_losing_acknowledged_records() {
    primary_fault_switches_to_the_secondary(Op::Sync, Fault::NoSpace, libc_enospc());
}

#[test]
fn eio_on_a_primary_sync_switches_to_the_secondary_without_losing_acknowledged_records() {
    primary_fault_switches_to_the_secondary(Op::Sync, Fault::Eio, libc_eio());
}

fn libc_enospc() -> i32 {
    Fault::NoSpace.to_io_error().raw_os_error().unwrap()
}

fn libc_eio() -> i32 {
    Fault::Eio.to_io_error().raw_os_error().unwrap()
}

/// The standalone manager: every waiter gets the error, and the writer
/// answers with that same error forever after.
fn standalone_fault_poisons_the_writer(op: Op, fault: Fault, errno: i32) {
    const WAITERS: u64 = 4;
    let disk = Disk::new(MemFs::new());
    let config = Config::standalone(PRIMARY);
    let manager = Manager::open_with(&config, env(&disk)).unwrap();
    let w = Arc::new(manager.create(LogNum(1)).unwrap());
    let acked = append_synced(&w, 0, 5);

    let id = disk.injector.add(Rule::new(
        OpFilter::ops([op]).in_dir(PRIMARY).path_suffix(".log"),
        fault,
    ));
    // Stall the file while the waiters queue up, so that they all wait on
    // the same failing write or sync (one group commit), then let it fail.
    let stall = disk
        .stalls
        .stall(OpFilter::ops([Op::Write, Op::Sync]).in_dir(PRIMARY));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            let w = Arc::clone(&w);
            std::thread::spawn(move || w.append_sync(&record(100 + i)))
        })
        .collect();
    assert!(
        disk.stalls.wait_until_blocked(1, WAIT_MAX),
        "the flush thread reached the disk"
    );
    stall.release();
    let errors: Vec<Error> = waiters
        .into_iter()
        .map(|h| {
            join_within(h, "a waiter of the failed writer")
                .expect_err("no waiter may be acknowledged")
        })
        .collect();
    assert!(disk.injector.fired(id).unwrap() >= 1);
    let first = errors[0].to_string();
    for e in &errors {
        let text = chain(e);
        assert!(
            text.contains(&format!("os error {errno}")),
            "every waiter sees the disk's error: {text}"
        );
        assert_eq!(e.is_no_space(), fault == Fault::NoSpace, "{text}");
        assert!(
            text.contains("000001.log"),
            "the error names the segment: {text}"
        );
    }

    // The fault is gone, but the writer stays poisoned: no retry can make
    // the lost bytes durable.
    disk.injector.remove(id);
    let later = w.append_nowait(b"after the fault").unwrap_err();
    assert_eq!(later.to_string(), first, "later appends fail the same way");
    let later = w.append_sync(b"after the fault").unwrap_err();
    assert_eq!(later.to_string(), first);
    assert_eq!(w.sync().unwrap_err().to_string(), first);
    assert_eq!(w.close().unwrap_err().to_string(), first);
    drop(w);

    // The manager itself is fine: the next log works, and what was
    // acknowledged before the fault is still there.
    let w2 = manager.create(LogNum(2)).unwrap();
    let after = w2.append_sync(b"next log").unwrap();
    assert!(after.0 > acked.last().unwrap().0);
    w2.close().unwrap();
    drop(w2);
    let read1 = read(&manager, LogNum(1));
    assert!(read1.len() >= acked.len());
    assert_eq!(&read1[..acked.len()], &acked[..]);
    manager.close().unwrap();
}

#[test]
fn enospc_on_a_write_fails_every_waiter_and_poisons_the_standalone_writer() {
    standalone_fault_poisons_the_writer(Op::Write, Fault::NoSpace, libc_enospc());
}

#[test]
fn eio_on_a_write_fails_every_waiter_and_poisons_the_standalone_writer() {
    standalone_fault_poisons_the_writer(Op::Write, Fault::Eio, libc_eio());
}

#[test]
fn enospc_on_a_sync_fails_every_waiter_and_poisons_the_standalone_writer() {
    standalone_fault_poisons_the_writer(Op::Sync, Fault::NoSpace, libc_enospc());
}

#[test]
fn eio_on_a_sync_fails_every_waiter_and_poisons_the_standalone_writer() {
    standalone_fault_poisons_the_writer(Op::Sync, Fault::Eio, libc_eio());
}

#[test]
fn a_failed_directory_sync_of_the_first_segment_switches_to_the_secondary() {
    let s = FailoverSetup::new();
    let fm = failover(&s.manager);
    let id = s
        .disk
        .injector
        .add(Rule::new(OpFilter::ops([Op::SyncDir]).in_dir(PRIMARY), Fault::Eio).times(1));
    let w = Arc::new(s.manager.create(LogNum(1)).unwrap());
    let waiter = {
        let w = Arc::clone(&w);
        std::thread::spawn(move || append_synced(&w, 0, 3))
    };
    let error = wait_segment_error(&w);
    assert!(error.contains("sync-dir"), "{error}");
    assert!(
        error.contains(PRIMARY),
        "the error names the directory: {error}"
    );
    assert_eq!(s.disk.injector.remove(id), Some(1));
    fm.tick_monitor();
    assert_eq!(fm.current_dir(), DirId::Secondary);
    let mut acked = join_within(waiter, "the appends waiting for the switch");
    acked.extend(append_synced(&w, 3, 3));
    let Writer::Failover(fw) = &*w else {
        unreachable!()
    };
    let states = || -> Vec<(DirId, bool)> {
        fw.segments()
            .iter()
            .map(|seg| (seg.dir, matches!(seg.state, SegmentState::Failed(_))))
            .collect()
    };
    // The failed creation publishes its state once its thread has looked
    // whether the file exists (the error itself was seen earlier).
    let expected = [(DirId::Primary, true), (DirId::Secondary, false)];
    let deadline = Instant::now() + WAIT_MAX;
    while states() != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        states(),
        expected,
        "segment 0 failed; segment 1 took the records"
    );
    w.close().unwrap();
    drop(w);
    s.check_survives(LogNum(1), &acked);
}

#[test]
fn a_failed_directory_sync_after_a_switch_moves_the_log_on_again() {
    // Without a standby, so that the switch creates the secondary's segment
    // (a standby is created, and its directory synced, before the fault).
    let s = FailoverSetup::without_standby();
    let fm = failover(&s.manager);
    let w = Arc::new(s.manager.create(LogNum(1)).unwrap());
    let mut acked = append_synced(&w, 0, 4);
    // The operator moves the log to the secondary, whose directory sync
    // fails: the monitor moves it on, back to the primary (segment 2).
    let id = s
        .disk
        .injector
        .add(Rule::new(OpFilter::ops([Op::SyncDir]).in_dir(SECONDARY), Fault::Eio).times(1));
    assert_eq!(fm.force_switch().unwrap(), DirId::Secondary);
    let waiter = {
        let w = Arc::clone(&w);
        std::thread::spawn(move || append_synced(&w, 4, 3))
    };
    let error = wait_segment_error(&w);
    assert!(error.contains(SECONDARY), "{error}");
    fm.tick_monitor();
    assert_eq!(fm.current_dir(), DirId::Primary);
    acked.extend(join_within(waiter, "the appends waiting for the switch"));
    assert_eq!(s.disk.injector.remove(id), Some(1));
    w.close().unwrap();
    drop(w);
    let dirs: Vec<DirId> = s.manager.list()[0].segments.iter().map(|x| x.dir).collect();
    assert_eq!(
        dirs,
        [DirId::Primary, DirId::Secondary, DirId::Primary],
        "the failed segment stays listed (its file exists) so it can be deleted"
    );
    s.check_survives(LogNum(1), &acked);
}

#[test]
fn a_failed_directory_sync_fails_standalone_create_naming_the_directory_until_it_clears() {
    let disk = Disk::new(MemFs::new());
    let config = Config::standalone(PRIMARY);
    let manager = Manager::open_with(&config, env(&disk)).unwrap();
    let id = disk
        .injector
        .add(Rule::new(OpFilter::ops([Op::SyncDir]).in_dir(PRIMARY), Fault::Eio).times(1));
    let e = manager.create(LogNum(1)).unwrap_err();
    match &e {
        Error::Fs(fs) => {
            assert_eq!(fs.op(), Op::SyncDir);
            assert_eq!(
                fs.path(),
                Path::new(PRIMARY),
                "the error names the directory"
            );
        }
        other => panic!("expected the directory sync's error, got {other:?}"),
    }
    assert!(chain(&e).contains(&format!("os error {}", libc_eio())));
    assert_eq!(disk.injector.remove(id), Some(1));
    assert!(
        manager.list().is_empty(),
        "a log whose file could not be made durable is not listed"
    );
    assert_eq!(manager.stats().open_log, None, "no writer is left open");

    // Once the fault clears, the same log can be created.
    let w = manager.create(LogNum(1)).unwrap();
    let acked = append_synced(&w, 0, 3);
    w.close().unwrap();
    drop(w);
    assert_eq!(read(&manager, LogNum(1)), acked);
    manager.close().unwrap();
    let reopened = Manager::open_with(&config, env(&disk)).unwrap();
    assert_eq!(read(&reopened, LogNum(1)), acked);
    reopened.close().unwrap();
}
