//! Logs the way Pebble's engine writes them (`[log] sequencing =
//! "pebble-batch"`): every record an engine batch with its own sequence
//! number and count, read back as Pebble reads them, through the managers;
//! and strict tails for every log but the newest, in both sequencing modes.

use std::path::Path;

use wal_fs::{Fs, MemFs};
use wal_manager::{Config, Error, HumanSize, LogNum, Lsn, Manager, Sequencing, SyncPolicy, Wal};
use wal_testkit::mem_env;
use wal_testkit::segments::batch;

fn pebble(config: Config) -> Config {
    let mut c = config;
    c.log.sequencing = Sequencing::PebbleBatch;
    c
}

/// Every batch of `log`: (seq, count, length).
fn batches(m: &Manager, log: LogNum) -> Result<Vec<(u64, u32, usize)>, Error> {
    let mut r = m.open_reader(log)?;
    let mut out = Vec::new();
    while let Some(rec) = r.next()? {
        let h = rec.batch.expect("pebble-batch records carry their header");
        assert_eq!(rec.lsn, Lsn(h.seq));
        out.push((h.seq, h.count, rec.payload.len()));
    }
    Ok(out)
}

#[test]
fn batches_whose_sequence_numbers_skip_by_their_count_read_back_in_full() {
    // `seq 10 count 29` then `seq 39 count 4`: the next batch starts at
    // seq + count, and a reader expecting seq + 1 called it a loss.
    let mem = MemFs::new();
    let config = pebble(Config::standalone("/p"));
    let m = Manager::open_with(&config, mem_env(&mem)).unwrap();
    let w = m.create(LogNum(1)).unwrap();
    w.append_sync(&batch(10, 29, 100)).unwrap();
    w.append_sync(&batch(39, 4, 20)).unwrap();
    w.close().unwrap();
    drop(w);
    m.close().unwrap();
    let m = Manager::open_with(&config, mem_env(&mem)).unwrap();
    assert_eq!(
        batches(&m, LogNum(1)).unwrap(),
        vec![(10, 29, 112), (39, 4, 32)]
    );
    m.close().unwrap();
}

#[test]
fn a_logdata_batch_repeating_the_next_sequence_number_is_skipped_across_a_failover() {
    // Segment 0 holds seq 10 and a LogData batch at 11; the switch replays
    // both into segment 1, which then gets the SET batch at 11. Dropping
    // by sequence number without skipping LogData lost the SET batch.
    let mem = MemFs::new();
    let config = pebble(Config::failover("/p", "/s"));
    let m = Manager::open_with(&config, mem_env(&mem)).unwrap();
    let w = m.create(LogNum(1)).unwrap();
    w.append_nowait(&batch(10, 1, 8)).unwrap();
    w.append_nowait(&batch(11, 0, 5)).unwrap();
    w.flush().unwrap(); // in segment 0's file, not yet durable
    let Manager::Failover(f) = &m else {
        unreachable!()
    };
    f.force_switch().unwrap();
    let set = batch(11, 1, 30);
    w.append_sync(&set).unwrap();
    w.close().unwrap();
    drop(w);
    assert!(
        m.stats().failover.unwrap().replayed_records >= 2,
        "10 and the LogData batch replayed"
    );
    let mut r = m.open_reader(LogNum(1)).unwrap();
    let first = r.next().unwrap().unwrap().batch.unwrap();
    assert_eq!((first.seq, first.count), (10, 1));
    let second = r.next().unwrap().unwrap();
    assert_eq!(
        second.payload,
        &set[..],
        "the SET batch, not the LogData one"
    );
    assert!(r.next().unwrap().is_none());
    let reports = r.reports();
    assert_eq!((reports[0].log_data, reports[1].log_data), (1, 1));
    assert_eq!(reports[1].duplicates, 1, "batch 10 replayed");
    m.close().unwrap();
}

#[test]
fn a_record_too_short_for_a_batch_header_is_refused_on_append_and_corrupt_on_read() {
    let mem = MemFs::new();
    let config = pebble(Config::standalone("/p"));
    let m = Manager::open_with(&config, mem_env(&mem)).unwrap();
    let w = m.create(LogNum(1)).unwrap();
    for len in [0, 8, 11] {
        let e = w.append_sync(&vec![1; len]).unwrap_err();
        assert!(matches!(e, Error::NotABatch { .. }), "{len}: {e}");
        assert!(
            e.to_string()
                .contains(&format!("record of {len} bytes is not a Pebble batch"))
        );
    }
    w.append_sync(&batch(1, 1, 0)).unwrap();
    w.close().unwrap();
    drop(w);
    m.close().unwrap();
    // The same log read as LSN-sequenced records is a manager writing
    // records of 8-11 bytes: read as batches, they are corruption.
    let lsn_config = Config::standalone("/q");
    let m = Manager::open_with(&lsn_config, mem_env(&mem)).unwrap();
    let w = m.create(LogNum(1)).unwrap();
    w.append_sync(b"ab").unwrap(); // 8 + 2 bytes stored
    w.close().unwrap();
    drop(w);
    m.close().unwrap();
    let m = Manager::open_with(&pebble(lsn_config), mem_env(&mem));
    let e = m.unwrap_err();
    assert!(matches!(e, Error::BadBatch { len: 10, .. }), "{e}");
    assert!(e.is_corruption());
}

#[test]
fn a_batch_over_the_append_limit_stays_readable() {
    // A batch of 70 MiB, over the default 64 MiB `record_size_max`: Pebble
    // batches go up to 4 GiB, and a reader must take what was written.
    let mem = MemFs::new();
    let mut config = pebble(Config::standalone("/p"));
    config.writer.record_size_max = HumanSize(128 << 20);
    let m = Manager::open_with(&config, mem_env(&mem)).unwrap();
    let w = m.create(LogNum(1)).unwrap();
    let big = batch(5, 1000, 70 << 20);
    w.append_sync(&big).unwrap();
    w.close().unwrap();
    drop(w);
    m.close().unwrap();
    let default = pebble(Config::standalone("/p"));
    let m = Manager::open_with(&default, mem_env(&mem)).unwrap();
    let mut r = m.open_reader(LogNum(1)).unwrap();
    assert_eq!(r.next().unwrap().unwrap().payload.len(), big.len());
    assert!(r.next().unwrap().is_none());
    m.close().unwrap();
}

#[test]
fn the_wal_api_refuses_pebble_batch_sequencing() {
    let e = Wal::open_with(&pebble(Config::standalone("/p")), mem_env(&MemFs::new())).unwrap_err();
    assert!(matches!(e, Error::NeedsLsnSequencing { .. }), "{e}");
    assert!(e.to_string().contains("log.sequencing = \"lsn\""), "{e}");
}

/// Two logs: log 1 of five records, closed; log 2 of one record, closed.
/// Then log 1's file is cut inside its third record.
fn older_log_cut(mem: &MemFs, config: &Config) -> u64 {
    let m = Manager::open_with(config, mem_env(mem)).unwrap();
    for log in 1..=2 {
        let w = m.create(LogNum(log)).unwrap();
        let n = if log == 1 { 5 } else { 1 };
        for i in 0..n {
            w.append_sync(&batch(100 * log + i, 1, 40)).unwrap();
        }
        w.close().unwrap();
    }
    m.close().unwrap();
    // 52-byte batches (or 60 stored with an LSN) under 19-byte headers.
    let record = 19 + 52 + config.log.sequencing.prefix_size() as u64;
    let cut = 2 * record + 10;
    mem.truncate(Path::new("/p/000001.log"), cut).unwrap();
    cut
}

#[test]
fn an_older_log_cut_inside_a_record_is_corruption_in_both_modes() {
    // Every log but the newest was closed before a newer one began, its
    // trailer synced: an end cut short there lost durable records, where
    // the old readers said "all readable".
    for sequencing in [Sequencing::Lsn, Sequencing::PebbleBatch] {
        let mem = MemFs::new();
        let mut config = Config::standalone("/p");
        config.log.sequencing = sequencing;
        older_log_cut(&mem, &config);
        let m = Manager::open_with(&config, mem_env(&mem)).unwrap();
        let e = batches_or_lsns(&m, LogNum(1)).unwrap_err();
        assert!(
            matches!(e, Error::TornOlderLog { log: LogNum(1), offset, .. } if offset == 2 * (19 + 52 + sequencing.prefix_size() as u64)),
            "{sequencing:?}: {e}"
        );
        assert!(e.is_corruption(), "{e}");
        assert!(
            e.to_string()
                .contains("log 000001 ends cut short at offset"),
            "{e}"
        );
        // The newest log may end anywhere: a crash cuts it.
        assert_eq!(batches_or_lsns(&m, LogNum(2)).unwrap(), 1);
        m.close().unwrap();
        if sequencing == Sequencing::Lsn {
            let mut wal_config = config.clone();
            wal_config.wal.sync = SyncPolicy::Immediate;
            let e = Wal::open_with(&wal_config, mem_env(&mem)).unwrap_err();
            assert!(
                matches!(e, Error::TornOlderLog { log: LogNum(1), .. }),
                "{e}"
            );
        }
    }
}

/// How many records `log` reads back.
fn batches_or_lsns(m: &Manager, log: LogNum) -> Result<usize, Error> {
    let mut r = m.open_reader(log)?;
    let mut n = 0;
    while r.next()?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[test]
fn recovery_cuts_the_newest_logs_torn_tail_so_it_may_become_an_older_log() {
    let mem = MemFs::new();
    let config = Config::standalone("/p");
    let m = Manager::open_with(&config, mem_env(&mem)).unwrap();
    let w = m.create(LogNum(1)).unwrap();
    for i in 0..3u8 {
        w.append_sync(&[i; 40]).unwrap();
    }
    drop(w); // a crash: no trailer
    m.close().unwrap();
    let len = mem.stat(Path::new("/p/000001.log")).unwrap().len;
    mem.truncate(Path::new("/p/000001.log"), len - 7).unwrap(); // torn
    let m = Manager::open_with(&config, mem_env(&mem)).unwrap();
    assert_eq!(m.next_lsn(), Lsn(3), "two records survive");
    let cut = mem.stat(Path::new("/p/000001.log")).unwrap().len;
    assert_eq!(cut, 2 * (19 + 48), "cut at the end of the second record");
    assert_eq!(
        mem.read_durable_file(Path::new("/p/000001.log"))
            .unwrap()
            .len() as u64,
        cut
    );
    let w = m.create(LogNum(2)).unwrap();
    w.append_sync(b"next").unwrap();
    w.close().unwrap();
    drop(w);
    m.close().unwrap();
    let m = Manager::open_with(&config, mem_env(&mem)).unwrap();
    assert_eq!(
        batches_or_lsns(&m, LogNum(1)).unwrap(),
        2,
        "now an older log, read strictly"
    );
    m.close().unwrap();
}
