//! The archive hook (`wal_manager::archive`) with a fake archive that
//! remembers what it was told and archives only when the test says so:
//! while `[archive]` is configured no log is deleted or recycled before it
//! is archived, whoever asks (`obsolete`, retention, `truncate_before`,
//! recovery at open), and every closed log is announced once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use wal_fs::MemFs;
use wal_manager::{
    ArchiveConfig, ArchiveHandle, Config, Env, Error, HumanSize, LogArchive, LogNum, Manager,
    PendingLog, Wal,
};
use wal_testkit::mem_env;

/// Remembers its handle and every log announced closed.
#[derive(Debug, Default)]
struct FakeArchive {
    handle: Mutex<Option<ArchiveHandle>>,
    closed: Mutex<Vec<LogNum>>,
}

impl LogArchive for FakeArchive {
    fn attach(&self, handle: ArchiveHandle) {
        *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    fn log_closed(&self, log: LogNum) {
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(log);
    }
}

impl FakeArchive {
    fn handle(&self) -> ArchiveHandle {
        self.handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .expect("attached at open")
    }

    fn closed(&self) -> Vec<LogNum> {
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `(log, obsolete)` of every pending log.
    fn pending(&self) -> Vec<(u64, bool)> {
        self.handle()
            .pending()
            .unwrap()
            .iter()
            .map(|p: &PendingLog| (p.log.num.0, p.obsolete))
            .collect()
    }
}

fn archived(mut config: Config) -> Config {
    config.archive = Some(ArchiveConfig::new("file:///unused-by-the-fake"));
    config
}

fn env_with(mem: &MemFs, archive: &Arc<FakeArchive>) -> Env {
    mem_env(mem).with_archive(Arc::clone(archive) as Arc<dyn LogArchive>)
}

/// Writes logs `logs` with one record each and closes them.
fn write_logs(m: &Manager, logs: std::ops::RangeInclusive<u64>) {
    for log in logs {
        let w = m.create(LogNum(log)).unwrap();
        w.append_sync(format!("record of log {log}").as_bytes())
            .unwrap();
        w.close().unwrap();
    }
}

fn exists(mem: &MemFs, path: &Path) -> bool {
    mem.read_file(path).is_ok()
}

fn segment0(log: u64) -> PathBuf {
    PathBuf::from(format!("/p/{log:06}.log"))
}

#[test]
fn an_obsolete_log_not_yet_archived_is_kept_until_it_is_and_then_deleted() {
    let mem = MemFs::new();
    let fake = Arc::new(FakeArchive::default());
    let m = Manager::open_with(&archived(Config::standalone("/p")), env_with(&mem, &fake)).unwrap();
    write_logs(&m, 1..=3);
    assert_eq!(fake.closed(), vec![LogNum(1), LogNum(2), LogNum(3)]);
    assert_eq!(fake.pending(), vec![(1, false), (2, false), (3, false)]);

    let files = m.obsolete(LogNum(3)).unwrap();
    assert!(files.is_empty(), "nothing to delete yet: {files:?}");
    assert_eq!(
        m.list().iter().map(|l| l.num.0).collect::<Vec<_>>(),
        vec![3],
        "obsolete logs are no longer listed"
    );
    assert!(exists(&mem, &segment0(1)) && exists(&mem, &segment0(2)));
    assert!(
        !exists(&mem, Path::new("/p/recycle-000001.log")),
        "an unarchived log is never recycled"
    );
    assert_eq!(fake.pending(), vec![(1, true), (2, true), (3, false)]);
    let stats = m.stats().archive.expect("archive figures");
    assert_eq!((stats.backlog_logs, stats.awaiting_logs), (3, 2));

    // The archive reads a pending log as it was written.
    let mut reader = fake.handle().open_reader(LogNum(2)).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().payload, b"record of log 2");
    assert!(reader.next().unwrap().is_none());

    fake.handle().mark_archived(LogNum(1)).unwrap();
    assert!(!exists(&mem, &segment0(1)), "deleted once archived");
    assert!(exists(&mem, &segment0(2)), "log 2 still waits");
    fake.handle().mark_archived(LogNum(3)).unwrap();
    assert!(exists(&mem, &segment0(3)), "a live log stays when archived");
    assert_eq!(fake.pending(), vec![(2, true)]);
    m.close().unwrap();
}

#[test]
fn an_archived_log_becomes_obsolete_as_without_an_archive() {
    let mem = MemFs::new();
    let fake = Arc::new(FakeArchive::default());
    let m = Manager::open_with(&archived(Config::standalone("/p")), env_with(&mem, &fake)).unwrap();
    write_logs(&m, 1..=3);
    fake.handle().mark_archived(LogNum(1)).unwrap();
    fake.handle().mark_archived(LogNum(2)).unwrap();
    let files = m.obsolete(LogNum(3)).unwrap();
    // The default recycler keeps up to 4 cleanly closed files for reuse.
    assert!(files.is_empty(), "{files:?}");
    assert!(exists(&mem, Path::new("/p/recycle-000001.log")));
    assert!(exists(&mem, Path::new("/p/recycle-000002.log")));
    assert_eq!(fake.pending(), vec![(3, false)]);
    m.close().unwrap();
}

#[test]
fn obsolete_logs_found_at_open_wait_for_the_archive_instead_of_being_deleted() {
    // What a crash between the upload and the deletion leaves: logs below
    // the obsolete watermark whose files are still there.
    let mem = MemFs::new();
    let config = archived(Config::standalone("/p"));
    let fake = Arc::new(FakeArchive::default());
    let m = Manager::open_with(&config, env_with(&mem, &fake)).unwrap();
    write_logs(&m, 1..=3);
    assert!(m.obsolete(LogNum(3)).unwrap().is_empty());
    m.close().unwrap();
    drop(m);
    let image = mem.crash_image(7);

    let fake = Arc::new(FakeArchive::default());
    let m = Manager::open_with(&config, env_with(&image, &fake)).unwrap();
    assert_eq!(fake.pending(), vec![(1, true), (2, true), (3, false)]);
    assert!(exists(&image, &segment0(1)), "not deleted at open");
    fake.handle().mark_archived(LogNum(2)).unwrap();
    assert!(!exists(&image, &segment0(2)));
    m.close().unwrap();

    // Without an archive configured, open deletes such leftovers at once.
    let plain = Config::standalone("/p");
    let m = Manager::open_with(&plain, mem_env(&image)).unwrap();
    assert!(!exists(&image, &segment0(1)), "deleted at open");
    m.close().unwrap();
}

#[test]
fn a_deletion_after_the_archive_said_so_survives_a_power_cut() {
    let mem = MemFs::new();
    let config = archived(Config::standalone("/p"));
    let fake = Arc::new(FakeArchive::default());
    let m = Manager::open_with(&config, env_with(&mem, &fake)).unwrap();
    write_logs(&m, 1..=2);
    m.obsolete(LogNum(2)).unwrap();
    fake.handle().mark_archived(LogNum(1)).unwrap();
    for seed in 0..20 {
        let image = mem.crash_image(seed);
        assert!(!exists(&image, &segment0(1)), "seed {seed}: removal synced");
        assert!(exists(&image, &segment0(2)), "seed {seed}");
    }
    m.close().unwrap();
}

#[test]
fn a_failover_log_is_announced_once_closed_and_read_whole_across_its_segments() {
    let mem = MemFs::new();
    let fake = Arc::new(FakeArchive::default());
    let m = Manager::open_with(
        &archived(Config::failover("/p", "/s")),
        env_with(&mem, &fake),
    )
    .unwrap();
    let Manager::Failover(f) = &m else {
        unreachable!("a failover configuration")
    };
    let w = m.create(LogNum(1)).unwrap();
    for i in 0..3u8 {
        w.append_sync(&[i]).unwrap();
    }
    f.force_switch().unwrap();
    for i in 3..6u8 {
        w.append_sync(&[i]).unwrap();
    }
    assert!(fake.closed().is_empty(), "not while it is open");
    assert!(fake.pending().is_empty(), "the open log is never pending");
    w.close().unwrap();
    assert_eq!(fake.closed(), vec![LogNum(1)]);
    let pending = fake.handle().pending().unwrap();
    assert_eq!(pending[0].log.segments.len(), 2, "{pending:?}");
    let mut reader = fake.handle().open_reader(LogNum(1)).unwrap();
    let mut payloads = Vec::new();
    while let Some(r) = reader.next().unwrap() {
        payloads.push(r.payload.to_vec());
    }
    assert_eq!(payloads, (0..6u8).map(|i| vec![i]).collect::<Vec<_>>());
    drop(w);
    assert_eq!(fake.closed(), vec![LogNum(1)], "announced once");
    m.close().unwrap();
}

#[test]
fn a_writer_dropped_without_closing_is_announced_as_closed() {
    let mem = MemFs::new();
    let fake = Arc::new(FakeArchive::default());
    let m = Manager::open_with(&archived(Config::standalone("/p")), env_with(&mem, &fake)).unwrap();
    let w = m.create(LogNum(1)).unwrap();
    w.append_sync(b"acknowledged").unwrap();
    drop(w);
    assert_eq!(fake.closed(), vec![LogNum(1)]);
    assert_eq!(fake.pending(), vec![(1, false)]);
    m.close().unwrap();
}

#[test]
fn the_wal_keeps_unarchived_logs_through_truncate_before_and_retention() {
    let mem = MemFs::new();
    let fake = Arc::new(FakeArchive::default());
    let mut config = archived(wal_testkit::small_log_config(
        false,
        wal_manager::SyncPolicy::Immediate,
    ));
    config.wal.retention_logs_max = 1;
    let wal = Wal::open_with(&config, env_with(&mem, &fake)).unwrap();
    let record = vec![7u8; 16 << 10];
    for _ in 0..12 {
        wal.append(&record).unwrap();
    }
    wal.checkpoint(b"all flushed").unwrap();
    let last = wal.append(b"after the checkpoint").unwrap();
    wal.truncate_before(last).unwrap();
    wal.apply_retention().unwrap();
    let pending = fake.pending();
    assert!(
        pending.iter().filter(|(_, obsolete)| *obsolete).count() >= 2,
        "truncated logs wait for the archive: {pending:?}"
    );
    for (log, obsolete) in &pending {
        if *obsolete {
            assert!(exists(&mem, &segment0(*log)), "log {log} kept");
        }
    }
    for (log, _) in pending {
        fake.handle().mark_archived(LogNum(log)).unwrap();
    }
    assert!(fake.pending().is_empty());
    wal.close().unwrap();
}

#[test]
fn a_backlog_over_its_bound_is_reported_and_nothing_is_deleted() {
    let mem = MemFs::new();
    let fake = Arc::new(FakeArchive::default());
    let mut config = archived(Config::standalone("/p"));
    config.archive.as_mut().unwrap().backlog_bytes_max = HumanSize(64);
    let m = Manager::open_with(&config, env_with(&mem, &fake)).unwrap();
    write_logs(&m, 1..=1);
    assert!(!m.stats().archive.unwrap().backlog_full, "under the bound");
    write_logs(&m, 2..=4);
    let stats = m.stats().archive.unwrap();
    assert!(stats.backlog_full, "{stats:?}");
    assert_eq!(stats.backlog_logs, 4);
    assert!(m.obsolete(LogNum(4)).unwrap().is_empty());
    for log in 1..=3 {
        assert!(
            exists(&mem, &segment0(log)),
            "log {log} kept past the bound"
        );
    }
    for log in 1..=4 {
        fake.handle().mark_archived(LogNum(log)).unwrap();
    }
    let stats = m.stats().archive.unwrap();
    assert!(!stats.backlog_full && stats.backlog_logs == 0, "{stats:?}");
    m.close().unwrap();
}

#[test]
fn the_handle_fails_once_its_manager_is_closed() {
    let mem = MemFs::new();
    let fake = Arc::new(FakeArchive::default());
    let m = Manager::open_with(&archived(Config::standalone("/p")), env_with(&mem, &fake)).unwrap();
    write_logs(&m, 1..=2);
    m.obsolete(LogNum(2)).unwrap();
    let handle = fake.handle();
    assert!(handle.is_open());
    m.close().unwrap();
    assert!(!handle.is_open());
    assert!(matches!(handle.pending(), Err(Error::Closed(_))));
    assert!(matches!(
        handle.mark_archived(LogNum(1)),
        Err(Error::Closed(_))
    ));
    assert!(exists(&mem, &segment0(1)), "nothing deleted after close");
}

#[test]
fn an_archive_without_an_archive_table_is_refused() {
    let mem = MemFs::new();
    let fake = Arc::new(FakeArchive::default());
    let e = Manager::open_with(&Config::standalone("/p"), env_with(&mem, &fake)).unwrap_err();
    assert!(e.to_string().contains("archive.url"), "{e}");
}

#[test]
fn an_archive_table_without_an_archive_keeps_every_log() {
    let mem = MemFs::new();
    let m = Manager::open_with(&archived(Config::standalone("/p")), mem_env(&mem)).unwrap();
    write_logs(&m, 1..=2);
    assert!(m.obsolete(LogNum(2)).unwrap().is_empty());
    assert!(exists(&mem, &segment0(1)));
    assert_eq!(m.stats().archive.unwrap().awaiting_logs, 1);
    m.close().unwrap();
}
