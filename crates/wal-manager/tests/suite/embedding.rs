//! What a storage engine that embeds failwal does to it, beyond the happy
//! path: reusing log numbers after everything went obsolete, opening one
//! half of a failover pair, lowering limits, truncating and checkpointing
//! while other threads append and read, reopening at once after a close or
//! a drop, and pointing it at directories that are not WALs. Each test names
//! the damage the old behaviour did.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wal_fs::{Fs, MemFs, Op, OpFilter};
use wal_manager::{Config, Env, Error, HumanSize, LogNum, Lsn, Manager, SyncPolicy, Wal};
use wal_testkit::failover::Disk;
use wal_testkit::{mem_env, small_log_config};

fn env(mem: &MemFs) -> Env {
    mem_env(mem)
}

fn records(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    wal.replay(64, wal_manager::Direction::Forward, |batch| {
        out.extend(batch.iter().map(|r| (r.lsn.0, r.payload.clone())));
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    out
}

/// Logs 1 and 2 written and made obsolete: `WAL-STATE` says every log below
/// 3 is gone for good.
fn obsolete_everything(mem: &MemFs, config: &Config) {
    let m = Manager::open_with(config, env(mem)).unwrap();
    for log in 1..=2 {
        let w = m.create(LogNum(log)).unwrap();
        w.append_sync(b"old").unwrap();
        w.close().unwrap();
    }
    let files = m.obsolete(LogNum(3)).unwrap();
    m.delete_obsolete(&files).unwrap();
    m.close().unwrap();
}

#[test]
fn a_wal_opened_after_every_log_went_obsolete_keeps_what_it_acknowledges() {
    // The old `Wal::open` created log 1, below the watermark: it
    // acknowledged records there, and the next open deleted them.
    for failover in [false, true] {
        let mem = MemFs::new();
        let config = if failover {
            Config::failover("/p", "/s")
        } else {
            Config::standalone("/p")
        };
        obsolete_everything(&mem, &config);
        let wal = Wal::open_with(&config, env(&mem)).unwrap();
        let a = wal.append(b"kept").unwrap();
        assert_eq!(a, Lsn(3), "LSNs go on past the obsolete logs'");
        wal.close().unwrap();
        let wal = Wal::open_with(&config, env(&mem)).unwrap();
        assert_eq!(
            records(&wal),
            vec![(3, b"kept".to_vec())],
            "failover {failover}"
        );
        wal.close().unwrap();
    }
}

#[test]
fn an_obsolete_log_number_is_refused_and_never_reuses_an_lsn() {
    let mem = MemFs::new();
    let config = Config::standalone("/p");
    obsolete_everything(&mem, &config);
    let m = Manager::open_with(&config, env(&mem)).unwrap();
    assert_eq!(m.next_log_num(), LogNum(3));
    let e = m.create(LogNum(2)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LogNumObsolete {
                requested: LogNum(2),
                obsolete_below: LogNum(3)
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("use log 000003 or above"), "{e}");
    let w = m.create(LogNum(3)).unwrap();
    assert_eq!(w.append_sync(b"x").unwrap(), Lsn(3));
    w.close().unwrap();
    let files = m.obsolete(LogNum(8)).unwrap();
    m.delete_obsolete(&files).unwrap();
    assert!(matches!(
        m.create(LogNum(5)),
        Err(Error::LogNumObsolete { .. })
    ));
    assert_eq!(m.next_log_num(), LogNum(8));
    m.close().unwrap();
    let m = Manager::open_with(&config, env(&mem)).unwrap();
    assert_eq!(m.next_lsn(), Lsn(4), "no LSN handed out twice");
    m.close().unwrap();
}

#[test]
fn a_failover_primary_opened_without_its_secondary_is_refused() {
    // The old standalone open hid the records on the secondary, handed
    // their LSNs out again, and a later failover open hid the new ones.
    let mem = MemFs::new();
    let m = Manager::open_with(&Config::failover("/p", "/s"), env(&mem)).unwrap();
    let w = m.create(LogNum(1)).unwrap();
    w.append_sync(b"on the primary").unwrap();
    let Manager::Failover(f) = &m else {
        unreachable!()
    };
    f.force_switch().unwrap();
    w.append_sync(b"on the secondary").unwrap();
    w.close().unwrap();
    drop(w);
    m.close().unwrap();

    let e = Manager::open_with(&Config::standalone("/p"), env(&mem)).unwrap_err();
    assert!(matches!(e, Error::WrongRole { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("/p: this is the primary of a failover WAL"),
        "{text}"
    );
    assert!(text.contains("accept_new_identity"), "{text}");
    // Swapped, or the secondary alone, is refused as well.
    let e = Manager::open_with(&Config::failover("/s", "/p"), env(&mem)).unwrap_err();
    assert!(
        e.to_string().contains("is the secondary of a failover WAL"),
        "{e}"
    );
    let e = Manager::open_with(&Config::standalone("/s"), env(&mem)).unwrap_err();
    assert!(
        e.to_string().contains("is the secondary of a failover WAL"),
        "{e}"
    );
    // Nothing was written by the refusals: the pair opens as before.
    let m = Manager::open_with(&Config::failover("/p", "/s"), env(&mem)).unwrap();
    assert_eq!(m.next_lsn(), Lsn(3));
    m.close().unwrap();
}

#[test]
fn records_acknowledged_in_a_new_wal_directory_survive_a_power_cut() {
    // The old open created its directories and never synced their parents:
    // a power cut could take the directory and every record in it.
    for failover in [false, true] {
        let mem = MemFs::new();
        let config = if failover {
            Config::failover("/data/wal/p", "/data/wal/s")
        } else {
            Config::standalone("/data/wal/p")
        };
        let wal = Wal::open_with(&config, env(&mem)).unwrap();
        let acked: Vec<Lsn> = (0..5).map(|i| wal.append(&[i; 100]).unwrap()).collect();
        for seed in 0..200 {
            let image = mem.crash_image(seed);
            let wal = Wal::open_with(&config, env(&image))
                .unwrap_or_else(|e| panic!("seed {seed}, failover {failover}: {e}"));
            let lsns: Vec<u64> = records(&wal).iter().map(|r| r.0).collect();
            assert_eq!(
                lsns,
                acked.iter().map(|l| l.0).collect::<Vec<_>>(),
                "seed {seed}, failover {failover}"
            );
            wal.close().unwrap();
        }
        drop(wal);
    }
}

#[test]
fn lowering_record_size_max_keeps_existing_logs_readable() {
    // The old readers took the append limit as the read limit: a log
    // written under a larger one became unreadable.
    let mem = MemFs::new();
    let mut config = Config::standalone("/p");
    let big = vec![7u8; 1_080_690];
    let wal = Wal::open_with(&config, env(&mem)).unwrap();
    let lsn = wal.append(&big).unwrap();
    wal.close().unwrap();
    config.writer.record_size_max = HumanSize(1 << 20);
    let wal = Wal::open_with(&config, env(&mem)).unwrap();
    assert_eq!(wal.read(lsn).unwrap(), big);
    let e = wal.append(&big).unwrap_err();
    assert!(
        e.to_string()
            .contains("record of 1080690 bytes exceeds writer.record_size_max = 1048576 bytes"),
        "{e}"
    );
    wal.close().unwrap();
    let m = Manager::open_with(&config, env(&mem)).unwrap();
    let mut r = m.open_reader(m.list()[0].num).unwrap();
    assert_eq!(r.next().unwrap().unwrap().payload, &big[..]);
    m.close().unwrap();
}

fn small_logs(failover: bool) -> Config {
    small_log_config(failover, SyncPolicy::None)
}

#[test]
fn checkpoint_and_truncate_before_while_appending_and_tailing_never_panic_or_end_early() {
    // The old `Wal` read the log list under one lock and indexed it after
    // another: `index out of bounds` in `reader_for`, and a tailing
    // iterator saw a false end (`Ok(None)` below `last_lsn`) or a
    // `no log` error.
    for failover in [false, true] {
        let wal = Arc::new(Wal::open_with(&small_logs(failover), env(&MemFs::new())).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let appenders: Vec<_> = (0..4)
            .map(|t| {
                let (wal, stop) = (Arc::clone(&wal), Arc::clone(&stop));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        wal.append(&[t; 500]).unwrap();
                    }
                })
            })
            .collect();
        let truncator = {
            let (wal, stop) = (Arc::clone(&wal), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let lsn = wal.checkpoint(b"flushed").unwrap();
                    if lsn.0 > 100 {
                        wal.truncate_before(Lsn(lsn.0 - 100)).unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let mut it = wal.iter_from(Lsn(1));
        let mut last_seen = 0;
        let deadline = std::time::Instant::now() + Duration::from_millis(1500);
        while std::time::Instant::now() < deadline {
            let last_before = wal.last_lsn().map_or(0, |l| l.0);
            let position = it.position().0;
            if let Some(r) = it.next().unwrap() {
                assert!(r.lsn.0 > last_seen, "LSNs increase");
                last_seen = r.lsn.0;
            } else {
                // The iterator may skip truncated records, never records
                // that are there.
                let first = wal.first_lsn().map_or(0, |l| l.0);
                assert!(
                    position > last_before || first > position,
                    "false end at {position}: last was {last_before} (failover {failover})"
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
        for a in appenders {
            a.join().unwrap();
        }
        truncator.join().unwrap();
        assert!(last_seen > 0, "the iterator followed the appends");
        let wal = Arc::into_inner(wal).unwrap();
        wal.close().unwrap();
    }
}

#[test]
fn two_callers_of_obsolete_at_once_never_write_wal_state_over_each_other() {
    // The old `obsolete` computed, wrote and recorded WAL-STATE without one
    // lock across: two callers shared `WAL-STATE.tmp`, so one rename failed
    // or an older state replaced a newer one.
    let disk = Disk::new(MemFs::new());
    let mut config = Config::standalone("/p");
    config.writer.recycle_logs_max = 0;
    let m = Arc::new(Manager::open_with(&config, disk.env()).unwrap());
    for log in 1..=8 {
        let w = m.create(LogNum(log)).unwrap();
        w.append_sync(b"x").unwrap();
        w.close().unwrap();
    }
    let stall = disk
        .stalls
        .stall(OpFilter::ops([Op::Rename]).path_contains("WAL-STATE.tmp"));
    let first = {
        let m = Arc::clone(&m);
        std::thread::spawn(move || m.obsolete(LogNum(5)).map(|f| f.len()))
    };
    assert!(disk.stalls.wait_until_blocked(1, Duration::from_secs(10)));
    let second = {
        let m = Arc::clone(&m);
        std::thread::spawn(move || m.obsolete(LogNum(8)).map(|f| f.len()))
    };
    // The old code let the second caller reach the same rename meanwhile.
    let both_in_rename = disk
        .stalls
        .wait_until_blocked(2, Duration::from_millis(300));
    stall.release();
    let (a, b) = (first.join().unwrap(), second.join().unwrap());
    assert!(
        !both_in_rename,
        "a second WAL-STATE write ran beside the first"
    );
    // Logs 1-7 are handed out once between the two (either may win the
    // race to them once WAL-STATE is written).
    assert_eq!(a.unwrap() + b.unwrap(), 7, "each log handed out once");
    let m = Arc::into_inner(m).unwrap();
    m.close().unwrap();
    let m = Manager::open_with(&config, disk.env()).unwrap();
    assert_eq!(m.next_log_num(), LogNum(9));
    assert_eq!(m.list().len(), 1, "only log 8 is live");
    m.close().unwrap();
}

#[test]
fn a_dropped_or_closed_failover_manager_can_be_reopened_at_once() {
    // The old drop left the directory locks with background tasks (closes
    // of old segment writers): an immediate reopen in the same process
    // failed "locked by another WAL manager".
    let dir = tempfile::tempdir().unwrap();
    let config = Config::failover(dir.path().join("p"), dir.path().join("s"));
    for round in 0..30 {
        let m = Manager::open(&config).unwrap();
        let w = m.create(m.next_log_num()).unwrap();
        w.append_sync(b"a").unwrap();
        if let Manager::Failover(f) = &m {
            f.force_switch().unwrap();
        }
        w.append_sync(b"b").unwrap();
        w.close().unwrap();
        if round % 2 == 0 {
            drop(m);
        } else {
            m.close().unwrap();
        }
        // The closed writer's handle outlives the manager.
        drop(w);
    }
    Manager::open(&config).unwrap().close().unwrap();
}

#[test]
fn checkpoint_at_an_lsn_covers_exactly_the_records_up_to_it() {
    // An engine that flushed memtable N while N+1 filled could only
    // checkpoint the last record.
    let mem = MemFs::new();
    let mut config = small_logs(false);
    config.wal.retention_logs_max = 1;
    let wal = Wal::open_with(&config, env(&mem)).unwrap();
    for i in 0..300u64 {
        wal.append(&i.to_le_bytes().repeat(100)).unwrap();
    }
    let e = wal.checkpoint_at(Lsn(301), b"x").unwrap_err();
    assert!(e.to_string().contains("the last record is 300"), "{e}");
    assert_eq!(
        wal.checkpoint_at(Lsn(120), b"flushed to 120").unwrap(),
        Lsn(120)
    );
    let e = wal.checkpoint_at(Lsn(119), b"x").unwrap_err();
    assert!(
        e.to_string().contains("latest checkpoint covers up to 120"),
        "{e}"
    );
    let replayed = |wal: &Wal| {
        let mut lsns = Vec::new();
        wal.replay_from_checkpoint(50, |b| {
            lsns.extend(b.iter().map(|r| r.lsn.0));
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
        lsns
    };
    assert_eq!(replayed(&wal), (121..=300).collect::<Vec<_>>());
    // Retention keeps every log holding records after the checkpoint.
    wal.apply_retention().unwrap();
    assert_eq!(replayed(&wal), (121..=300).collect::<Vec<_>>());
    assert!(wal.first_lsn().unwrap() <= Lsn(121));
    wal.close().unwrap();
    let wal = Wal::open_with(&config, env(&mem)).unwrap();
    let c = wal.last_checkpoint().unwrap();
    assert_eq!(
        (c.lsn, c.data.as_slice()),
        (Lsn(120), &b"flushed to 120"[..])
    );
    assert_eq!(replayed(&wal), (121..=300).collect::<Vec<_>>());
    // A checkpoint of the last record is an ordinary one.
    assert_eq!(wal.checkpoint_at(Lsn(300), b"all").unwrap(), Lsn(300));
    assert!(replayed(&wal).is_empty());
    wal.close().unwrap();
}

#[test]
fn a_directory_of_unrelated_files_or_a_foreign_segment_file_is_refused() {
    // The old library took any directory, and read a garbage `000001.log`
    // as an empty log, where the `wal` command refused the directory.
    let mem = MemFs::new();
    mem.write_file(Path::new("/home/me/notes.txt"), b"hello")
        .unwrap();
    let e = Manager::open_with(&Config::standalone("/home/me"), env(&mem)).unwrap_err();
    assert!(matches!(e, Error::NotAWalDirectory { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("primary directory /home/me is not a WAL directory"),
        "{e}"
    );
    assert!(
        mem.stat(Path::new("/home/me/LOCK")).is_err(),
        "nothing was written"
    );

    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i * 7919 % 251) as u8 | 0x40)
        .collect();
    mem.write_file(Path::new("/wal/000001.log"), &garbage)
        .unwrap();
    let e = Manager::open_with(&Config::standalone("/wal"), env(&mem)).unwrap_err();
    assert!(matches!(e, Error::NotALogFile { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("/wal/000001.log is named like a log segment but is not one"),
        "{e}"
    );
    // A file a crash left empty, cut inside its first header, or zeroed
    // is a log (with a torn tail), not a foreign file.
    for start in [&b""[..], &[1, 2, 3][..], &[0; 100][..]] {
        mem.write_file(Path::new("/wal/000001.log"), start).unwrap();
        Manager::open_with(&Config::standalone("/wal"), env(&mem))
            .unwrap()
            .close()
            .unwrap();
    }
}
