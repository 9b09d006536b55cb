//! The manager API: reopening, LSN recovery, recycling, obsolete logs,
//! locking, identity checks, limits and repair.

use std::path::Path;
use std::sync::Arc;

use wal_fs::{Fs, MemFs};
use wal_manager::{
    Config, Env, Error, LogEnd, LogNum, Lsn, Manager, ManualClock, RepairAction, Writer, repair,
};
use wal_testkit::mem_env;

const DIR: &str = "/wal";

fn env(mem: &MemFs) -> Env {
    mem_env(mem)
}

fn open(mem: &MemFs, config: &Config) -> Manager {
    Manager::open_with(config, env(mem)).unwrap()
}

fn write(w: &Writer, n: usize, len: usize) -> Vec<Lsn> {
    (0..n)
        .map(|i| w.append_sync(&vec![i as u8; len]).unwrap())
        .collect()
}

fn read_lsns(m: &Manager, log: LogNum) -> (Vec<u64>, Option<LogEnd>) {
    let mut r = m.open_reader(log).unwrap();
    let mut lsns = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        lsns.push(rec.lsn.0);
    }
    (lsns, r.end().cloned())
}

#[test]
fn reopening_recovers_the_logs_and_the_next_lsn() {
    let mem = MemFs::new();
    let config = Config::standalone(DIR);
    let m = open(&mem, &config);
    let w = m.create(LogNum(1)).unwrap();
    assert_eq!(write(&w, 5, 20), (1..=5).map(Lsn).collect::<Vec<_>>());
    w.close().unwrap();
    drop(w);
    let w = m.create(LogNum(2)).unwrap();
    write(&w, 3, 20);
    drop(w); // never closed: no trailer
    m.close().unwrap();

    let m = open(&mem, &config);
    let logs: Vec<u64> = m.list().iter().map(|l| l.num.0).collect();
    assert_eq!(logs, vec![1, 2]);
    assert_eq!(m.next_lsn(), Lsn(9));
    assert_eq!(read_lsns(&m, LogNum(2)).0, vec![6, 7, 8]);
    let w = m.create(LogNum(3)).unwrap();
    assert_eq!(w.append_nowait(b"next").unwrap(), Lsn(9));
    w.close().unwrap();
}

#[test]
fn lsns_keep_increasing_after_every_log_is_deleted() {
    let mem = MemFs::new();
    let config = Config::standalone(DIR);
    let m = open(&mem, &config);
    let w = m.create(LogNum(1)).unwrap();
    write(&w, 4, 10);
    w.close().unwrap();
    drop(w);
    let files = m.obsolete(LogNum(2)).unwrap();
    // Recycling is only for logs closed by this manager, and recycle_logs_max
    // is 4: the file is kept for reuse, not returned.
    assert!(files.is_empty());
    assert_eq!(m.stats().obsolete_files, 1);
    m.close().unwrap();

    // Even with no log left on disk at all, the floor remembers.
    for f in mem.files() {
        if f.path.extension().is_some_and(|e| e == "log") {
            mem.remove(&f.path).unwrap();
        }
    }
    let m = open(&mem, &config);
    assert!(m.list().is_empty());
    assert_eq!(m.next_lsn(), Lsn(5));
}

#[test]
fn obsolete_logs_beyond_the_recycler_are_returned_and_deleted() {
    let mem = MemFs::new();
    let mut config = Config::standalone(DIR);
    config.writer.recycle_logs_max = 1;
    let m = open(&mem, &config);
    for log in 1..=3 {
        let w = m.create(LogNum(log)).unwrap();
        write(&w, 2, 10);
        w.close().unwrap();
    }
    let files = m.obsolete(LogNum(3)).unwrap();
    assert_eq!(files.len(), 1, "one recycled, one to delete");
    assert_eq!(files[0].log, LogNum(2));
    m.delete_obsolete(&files).unwrap();
    assert!(mem.read_file(Path::new("/wal/000002.log")).is_err());
    let live: Vec<u64> = m.list().iter().map(|l| l.num.0).collect();
    assert_eq!(live, vec![3]);
    // Deleting twice is harmless.
    m.delete_obsolete(&files).unwrap();
}

#[test]
fn a_recycled_file_is_reused_and_its_stale_bytes_are_ignored() {
    let mem = MemFs::new();
    let config = Config::standalone(DIR);
    let m = open(&mem, &config);
    let w = m.create(LogNum(1)).unwrap();
    write(&w, 50, 2000); // ~100 KiB: several blocks
    w.close().unwrap();
    drop(w);
    assert!(m.obsolete(LogNum(2)).unwrap().is_empty());
    let old_len = mem
        .read_file(Path::new("/wal/recycle-000001.log"))
        .unwrap()
        .len();

    let w = m.create(LogNum(2)).unwrap();
    assert!(
        mem.read_file(Path::new("/wal/recycle-000001.log")).is_err(),
        "renamed"
    );
    assert_eq!(m.stats().obsolete_files, 0);
    write(&w, 2, 10);
    drop(w); // a crash-like end: no trailer, the old bytes follow
    let reused = mem.read_file(Path::new("/wal/000002.log")).unwrap();
    assert_eq!(reused.len(), old_len, "overwritten in place, not truncated");
    let (lsns, end) = read_lsns(&m, LogNum(2));
    assert_eq!(
        lsns,
        vec![51, 52],
        "the stale records of log 1 are not returned"
    );
    assert!(matches!(end, Some(LogEnd::TornTail { .. })));
}

#[test]
fn create_refuses_a_second_writer_and_a_non_increasing_number() {
    let mem = MemFs::new();
    let m = open(&mem, &Config::standalone(DIR));
    let w = m.create(LogNum(5)).unwrap();
    let e = m.create(LogNum(6)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::WriterOpen {
                open: LogNum(5),
                ..
            }
        ),
        "{e}"
    );
    w.close().unwrap();
    drop(w);
    for n in [4, 5] {
        let e = m.create(LogNum(n)).unwrap_err();
        assert!(matches!(e, Error::LogNumNotIncreasing { .. }), "{e}");
        assert!(e.to_string().contains("must increase"), "{e}");
    }
    m.create(LogNum(6)).unwrap().close().unwrap();
}

#[test]
fn a_second_manager_on_the_same_directory_is_refused() {
    let mem = MemFs::new();
    let m = open(&mem, &Config::standalone(DIR));
    let e = Manager::open_with(&Config::standalone(DIR), env(&mem)).unwrap_err();
    assert!(
        e.to_string()
            .contains("/wal is locked by another WAL manager"),
        "{e}"
    );
    // A manager with an open writer refuses to close, and stays usable.
    let w = m.create(LogNum(1)).unwrap();
    let e = m.close().unwrap_err();
    assert!(
        matches!(e, Error::CloseWithWriterOpen { open: LogNum(1) }),
        "{e}"
    );
    assert!(e.to_string().contains("close it first"), "{e}");
    assert!(Manager::open_with(&Config::standalone(DIR), env(&mem)).is_err());
    w.append_sync(b"still writing").unwrap();
    // Once the writer is closed, the manager closes and releases the
    // directory at once, although the closed writer's handle lives on.
    w.close().unwrap();
    m.close().unwrap();
    m.close().unwrap();
    assert!(matches!(m.create(LogNum(2)), Err(Error::Closed(_))));
    open(&mem, &Config::standalone(DIR)).close().unwrap();
    drop(w);
    // A writer keeps the directory locked even if the manager is dropped.
    let m = open(&mem, &Config::standalone(DIR));
    let w = m.create(LogNum(2)).unwrap();
    drop(m);
    assert!(Manager::open_with(&Config::standalone(DIR), env(&mem)).is_err());
    drop(w);
    open(&mem, &Config::standalone(DIR)).close().unwrap();
}

#[test]
fn records_over_the_limit_are_refused_without_using_an_lsn() {
    let mem = MemFs::new();
    let mut config = Config::standalone(DIR);
    config.writer.record_size_max = wal_manager::HumanSize(100);
    let m = open(&mem, &config);
    let w = m.create(LogNum(1)).unwrap();
    let e = w.append_nowait(&[0; 101]).unwrap_err();
    assert!(
        e.to_string()
            .contains("record of 101 bytes exceeds writer.record_size_max = 100 bytes"),
        "{e}"
    );
    assert_eq!(w.append_nowait(&[0; 100]).unwrap(), Lsn(1));
    let lsns = w.append_batch_sync(&[b"a", b"b", b"c"]).unwrap();
    assert_eq!(lsns, Lsn(2)..Lsn(5));
    w.close().unwrap();
}

#[test]
fn a_failover_pair_remembers_its_secondary() {
    let mem = MemFs::new();
    let config = Config::failover("/p", "/s");
    let m = open(&mem, &config);
    m.close().unwrap();
    // The wrong disk: another secondary identity.
    let other = MemFs::new();
    let m2 = open(&other, &Config::failover("/p2", "/s"));
    m2.close().unwrap();
    let foreign = other.read_file(Path::new("/s/WAL-IDENTITY")).unwrap();
    mem.write_file(Path::new("/s/WAL-IDENTITY"), &foreign)
        .unwrap();
    let e = Manager::open_with(&config, env(&mem)).unwrap_err();
    assert!(matches!(e, Error::WrongSecondary { .. }), "{e}");
    assert!(e.to_string().contains("wrong disk"), "{e}");
    // An empty disk: no identity at all.
    mem.remove(Path::new("/s/WAL-IDENTITY")).unwrap();
    let e = Manager::open_with(&config, env(&mem)).unwrap_err();
    assert!(matches!(e, Error::MissingSecondaryIdentity { .. }), "{e}");
    // Unless the operator says the old secondary is gone for good.
    let mut accepting = config.clone();
    accepting.secondary.as_mut().unwrap().accept_new_identity = true;
    open(&mem, &accepting).close().unwrap();
    open(&mem, &config).close().unwrap();
}

#[test]
fn a_damaged_identity_file_is_reported_not_believed() {
    let mem = MemFs::new();
    let config = Config::failover("/p", "/s");
    open(&mem, &config).close().unwrap();
    mem.corrupt(Path::new("/s/WAL-IDENTITY"), 20, b"x").unwrap();
    let e = Manager::open_with(&config, env(&mem)).unwrap_err();
    assert!(e.to_string().contains("/s/WAL-IDENTITY"), "{e}");
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn repair_cuts_a_torn_tail_and_refuses_corruption() {
    let mem = MemFs::new();
    let config = Config::standalone(DIR);
    let m = open(&mem, &config);
    let w = m.create(LogNum(1)).unwrap();
    write(&w, 12, 9000); // synced one by one over several blocks
    w.close().unwrap();
    drop(w);
    m.close().unwrap();
    let path = Path::new("/wal/000001.log");
    let full = mem.read_file(path).unwrap();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let dirs = wal_manager::layout::Dirs::from_config(&config, &fs);

    // Torn: cut in the middle of the last record.
    mem.write_file(path, &full[..full.len() - 11 - 4000])
        .unwrap();
    let report = repair(&dirs, false, false).unwrap();
    let [(LogNum(1), RepairAction::TruncatedTornTail { to, .. })] = report.actions.as_slice()
    else {
        panic!("{report:?}")
    };
    assert_eq!(mem.read_file(path).unwrap().len() as u64, *to);
    let again = repair(&dirs, false, false).unwrap();
    assert!(matches!(again.actions[0].1, RepairAction::Clean { .. }));

    // Proven corrupt: refused, file unchanged; forced: cut.
    let mut bad = full.clone();
    bad[100] ^= 1;
    mem.write_file(path, &bad).unwrap();
    let report = repair(&dirs, false, false).unwrap();
    assert!(report.refused() && !report.changed(), "{report:?}");
    assert_eq!(mem.read_file(path).unwrap(), bad);
    let report = repair(&dirs, true, true).unwrap();
    assert!(report.changed(), "dry run reports the cut");
    assert_eq!(mem.read_file(path).unwrap(), bad, "but makes none");
    let report = repair(&dirs, true, false).unwrap();
    assert!(matches!(
        report.actions[0].1,
        RepairAction::TruncatedCorruption { to: 0, .. }
    ));
    assert!(mem.read_file(path).unwrap().is_empty());
}

#[test]
fn obsolete_logs_stay_obsolete_after_a_restart_and_their_files_are_reused() {
    let mem = MemFs::new();
    let config = Config::standalone(DIR);
    let m = open(&mem, &config);
    for log in 1..=2 {
        let w = m.create(LogNum(log)).unwrap();
        write(&w, 3, 100);
        w.close().unwrap();
    }
    assert!(
        m.obsolete(LogNum(2)).unwrap().is_empty(),
        "log 1 goes to the recycler"
    );
    assert!(mem.read_file(Path::new("/wal/recycle-000001.log")).is_ok());
    m.close().unwrap();

    let m = open(&mem, &config);
    let live: Vec<u64> = m.list().iter().map(|l| l.num.0).collect();
    assert_eq!(live, vec![2], "the recycled log is not a live log again");
    assert_eq!(m.stats().obsolete_files, 1, "it is waiting in the recycler");
    let w = m.create(LogNum(3)).unwrap();
    assert!(
        mem.read_file(Path::new("/wal/recycle-000001.log")).is_err(),
        "reused"
    );
    write(&w, 1, 10);
    w.close().unwrap();
    assert_eq!(read_lsns(&m, LogNum(3)).0, vec![7]);
}

#[test]
fn a_dry_run_repair_changes_nothing_and_takes_no_lock() {
    let mem = MemFs::new();
    let config = Config::standalone(DIR);
    let m = open(&mem, &config);
    let w = m.create(LogNum(1)).unwrap();
    write(&w, 3, 100);
    drop(w);
    // A running manager holds the lock: a dry run still reads.
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let dirs = wal_manager::layout::Dirs::from_config(&config, &fs);
    let before = mem.files();
    let report = repair(&dirs, false, true).unwrap();
    assert_eq!(report.actions.len(), 1);
    assert_eq!(mem.files(), before);
    // A real repair needs the lock.
    let e = repair(&dirs, false, false).unwrap_err();
    assert!(e.to_string().contains("locked"), "{e}");
}

#[test]
fn failover_turned_off_at_run_time_stays_on_a_stalled_primary_and_turned_on_switches() {
    let disk = wal_testkit::failover::Disk::new(MemFs::new());
    let clock = ManualClock::new();
    let env = Env {
        clock: Arc::new(clock.clone()),
        ..disk.env()
    };
    let m = Arc::new(Manager::open_with(&Config::failover("/p", "/s"), env).unwrap());
    let Manager::Failover(f) = &*m else {
        unreachable!()
    };
    let w = Arc::new(m.create(LogNum(1)).unwrap());
    w.append_sync(b"before").unwrap();
    f.set_failover_enabled(false);
    let stall = disk
        .stalls
        .stall(wal_fs::OpFilter::ops([wal_fs::Op::Sync]).in_dir("/p"));
    let waiter = {
        let w = Arc::clone(&w);
        std::thread::spawn(move || w.append_sync(b"during the stall"))
    };
    assert!(
        disk.stalls
            .wait_until_blocked(1, std::time::Duration::from_secs(10))
    );
    clock.advance(std::time::Duration::from_secs(1));
    f.tick_monitor();
    assert_eq!(f.current_dir(), wal_manager::DirId::Primary, "rule 2: stay");
    assert_eq!(m.stats().failover.unwrap().replayed_records, 0);
    f.set_failover_enabled(true);
    f.tick_monitor();
    assert_eq!(f.current_dir(), wal_manager::DirId::Secondary);
    // The waiting record is replayed into the secondary and acknowledged
    // from there while the primary still hangs.
    assert_eq!(waiter.join().unwrap().unwrap(), Lsn(2));
    let stats = m.stats().failover.unwrap();
    assert_eq!((stats.switches, stats.replayed_records), (1, 1));
    stall.release();
    w.close().unwrap();
    drop(w);
    m.close().unwrap();
}
