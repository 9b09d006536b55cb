//! The archive on a `file://` store: every record comes back byte for byte
//! through an upload and a restore, for both managers and both
//! sequencings; nothing is deleted before it is archived; an interrupted
//! upload is redone; a crash between the upload and the local deletion
//! neither loses nor uploads again; damage in the archive is reported.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use support::{
    IDLE_TIMEOUT, archiver, env, file_archive, read_dir, records_of, restore_and_read, write_logs,
};
use wal_archive::manifest::{data_name, manifest_name};
use wal_archive::{Access, Error, Store, list, restore, verify_log};
use wal_fs::MemFs;
use wal_manager::{Config, LogArchive, LogNum, Manager, Sequencing};

#[test]
fn every_record_comes_back_byte_for_byte_through_the_archive() {
    for failover in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = if failover {
            Config::failover(tmp.path().join("p"), tmp.path().join("s"))
        } else {
            Config::standalone(tmp.path().join("p"))
        };
        config.archive = Some(file_archive(&tmp.path().join("archive")));
        let archive = config.archive.clone().unwrap();
        let a = archiver(&archive);
        let m = Manager::open_with(&config, env(&a)).unwrap();
        write_logs(&m, 1, 3, 12);
        let written = records_of(&m);
        assert_eq!(written.len(), 36);
        assert!(a.wait_idle(IDLE_TIMEOUT), "{:?}", a.status());
        assert_eq!(a.status().uploaded_logs, 3);
        m.close().unwrap();

        let restored = restore_and_read(&archive, &tmp.path().join("restored"), &config);
        assert_eq!(restored, written, "failover {failover}");
        // One segment-0 file per log, whatever disk held which segment.
        let mut names: Vec<_> = std::fs::read_dir(tmp.path().join("restored"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| wal_manager::layout::parse_segment_file_name(n).is_some())
            .collect();
        names.sort();
        assert_eq!(names, ["000001.log", "000002.log", "000003.log"]);
    }
}

#[test]
fn pebble_batches_and_system_records_are_archived_as_they_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::failover(tmp.path().join("p"), tmp.path().join("s"));
    config.log.sequencing = Sequencing::PebbleBatch;
    config.archive = Some(file_archive(&tmp.path().join("archive")));
    let archive = config.archive.clone().unwrap();
    let a = archiver(&archive);
    let m = Manager::open_with(&config, env(&a)).unwrap();
    let w = m.create(LogNum(4)).unwrap();
    let batch = |seq: u64, count: u32, body: &[u8]| {
        let mut b = seq.to_le_bytes().to_vec();
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(body);
        b
    };
    // Sequence numbers skip (an ingestion), as Pebble's may.
    for (seq, count) in [(10, 2), (12, 1), (20, 3)] {
        w.append_sync(&batch(seq, count, b"ops")).unwrap();
    }
    if let Manager::Failover(f) = &m {
        f.force_switch().unwrap();
    }
    w.append_sync(&batch(23, 1, b"after the switch")).unwrap();
    w.close().unwrap();
    let written = records_of(&m);
    assert!(a.wait_idle(IDLE_TIMEOUT), "{:?}", a.status());
    m.close().unwrap();
    let store = Store::open(&archive, Access::Read).unwrap();
    let listing = list(&store).unwrap();
    let manifest = listing.manifests().next().unwrap();
    assert_eq!(manifest.sequencing, Sequencing::PebbleBatch);
    assert_eq!(
        (manifest.summary.first, manifest.summary.last),
        (Some(10), Some(23))
    );
    let restored = restore_and_read(&archive, &tmp.path().join("restored"), &config);
    assert_eq!(restored, written);

    // The Wal's system records (a checkpoint, a truncation) are archived
    // as records like the others, flagged.
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::standalone(tmp.path().join("p"));
    config.archive = Some(file_archive(&tmp.path().join("archive")));
    let archive = config.archive.clone().unwrap();
    let a = archiver(&archive);
    let wal = wal_manager::Wal::open_with(&config, env(&a)).unwrap();
    wal.append(b"one").unwrap();
    wal.checkpoint(b"flushed").unwrap();
    let two = wal.append(b"two").unwrap();
    wal.truncate_before(two).unwrap();
    wal.close().unwrap();
    // The log `close` closed is archived by the next manager opened with
    // an archive.
    let wal = wal_manager::Wal::open_with(&config, env(&a)).unwrap();
    assert!(a.wait_idle(IDLE_TIMEOUT), "{:?}", a.status());
    wal.close().unwrap();
    let restored = restore_and_read(&archive, &tmp.path().join("restored"), &config);
    let kinds: Vec<(u64, bool)> = restored.iter().map(|r| (r.1, r.2)).collect();
    assert!(
        kinds.contains(&(1, false)) && kinds.iter().any(|k| k.1),
        "{kinds:?}"
    );
    let reopened =
        wal_manager::Wal::open(&Config::standalone(tmp.path().join("restored"))).unwrap();
    assert_eq!(reopened.read(two).unwrap(), b"two");
    assert!(
        reopened.last_checkpoint().is_some(),
        "the checkpoint came back"
    );
    reopened.close().unwrap();
}

#[test]
fn a_restore_until_an_lsn_stops_right_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::standalone(tmp.path().join("p"));
    config.archive = Some(file_archive(&tmp.path().join("archive")));
    let archive = config.archive.clone().unwrap();
    let a = archiver(&archive);
    let m = Manager::open_with(&config, env(&a)).unwrap();
    write_logs(&m, 1, 3, 10);
    let written = records_of(&m);
    assert!(a.wait_idle(IDLE_TIMEOUT));
    m.close().unwrap();
    let store = Store::open(&archive, Access::Read).unwrap();
    let to = tmp.path().join("restored");
    let report = restore(&store, &to, Some(15), &mut |_| {}).unwrap();
    assert!(report.cut);
    assert_eq!(report.last, Some(15));
    assert_eq!(report.logs, vec![(LogNum(1), 10), (LogNum(2), 5)]);
    let restored = read_dir(&to, &config);
    assert_eq!(restored, written[..15].to_vec());
    // A restore needs a new or empty directory.
    let e = restore(&store, &to, None, &mut |_| {}).unwrap_err();
    assert!(matches!(e, Error::RestoreTarget { .. }), "{e}");
    assert!(e.to_string().contains("holds a WAL already"), "{e}");
}

#[test]
fn obsolete_logs_are_deleted_only_once_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::standalone(tmp.path().join("p"));
    // The archive lives where no upload can succeed: a file, not a
    // directory, under its path.
    let blocked = tmp.path().join("archive");
    config.archive = Some(file_archive(&blocked));
    let archive = config.archive.clone().unwrap();
    let a = archiver(&archive);
    std::fs::remove_dir(&blocked).unwrap();
    std::fs::write(&blocked, b"not a directory").unwrap();
    let m = Manager::open_with(&config, env(&a)).unwrap();
    write_logs(&m, 1, 3, 4);
    let files = m.obsolete(LogNum(3)).unwrap();
    assert!(files.is_empty(), "{files:?}");
    assert!(!a.wait_idle(std::time::Duration::from_millis(500)));
    assert!(a.status().failures > 0, "{:?}", a.status());
    assert!(
        tmp.path().join("p/000001.log").exists(),
        "kept while failing"
    );
    assert_eq!(m.stats().archive.unwrap().backlog_logs, 3);
    // The archive comes back: the uploader catches up, and the obsolete
    // logs' files go.
    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir(&blocked).unwrap();
    assert!(a.wait_idle(IDLE_TIMEOUT), "{:?}", a.status());
    assert!(!tmp.path().join("p/000001.log").exists());
    assert!(!tmp.path().join("p/000002.log").exists());
    assert!(tmp.path().join("p/000003.log").exists(), "live");
    assert_eq!(m.stats().archive.unwrap().backlog_logs, 0);
    m.close().unwrap();
}

#[test]
fn an_interrupted_upload_is_redone_and_never_counts_as_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::standalone(tmp.path().join("p"));
    config.archive = Some(file_archive(&tmp.path().join("archive")));
    let archive = config.archive.clone().unwrap();
    // What a crash in the middle of an upload leaves: part of the data
    // object, no manifest.
    let m = Manager::open(&config).unwrap();
    write_logs(&m, 1, 1, 6);
    let written = records_of(&m);
    m.close().unwrap();
    let store = Store::open(&archive, Access::Write).unwrap();
    let whole = std::fs::read(tmp.path().join("p/000001.log")).unwrap();
    store
        .put(
            &data_name(LogNum(1)),
            Bytes::copy_from_slice(&whole[..1000]),
        )
        .unwrap();
    let listing = list(&store).unwrap();
    assert!(listing.logs.is_empty(), "not archived without a manifest");
    assert_eq!(listing.incomplete, vec![(LogNum(1), 1000)]);

    let a = archiver(&archive);
    let m = Manager::open_with(&config, env(&a)).unwrap();
    assert!(a.wait_idle(IDLE_TIMEOUT), "{:?}", a.status());
    assert_eq!(a.status().uploaded_logs, 1, "uploaded again");
    m.close().unwrap();
    let listing = list(&store).unwrap();
    assert!(listing.incomplete.is_empty());
    verify_log(&store, listing.manifests().next().unwrap()).unwrap();
    assert_eq!(
        restore_and_read(&archive, &tmp.path().join("restored"), &config),
        written
    );
}

#[test]
fn a_crash_between_the_upload_and_the_deletion_neither_loses_nor_uploads_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = MemFs::new();
    let mut config = Config::standalone("/p");
    // No recycling: the obsolete log's file stays under its name.
    config.writer.recycle_logs_max = 0;
    config.archive = Some(file_archive(&tmp.path().join("archive")));
    let archive = config.archive.clone().unwrap();
    let mem_env = |a: &Arc<wal_archive::Archiver>| {
        wal_testkit::mem_env(&mem).with_archive(Arc::clone(a) as Arc<dyn LogArchive>)
    };
    let a = archiver(&archive);
    let m = Manager::open_with(&config, mem_env(&a)).unwrap();
    write_logs(&m, 1, 2, 5);
    let written = records_of(&m);
    assert!(a.wait_idle(IDLE_TIMEOUT), "{:?}", a.status());
    // Archived; obsolete, handed out for deletion, and the power goes
    // before it is deleted.
    let files = m.obsolete(LogNum(2)).unwrap();
    assert_eq!(files.len(), 1, "archived, so deletable: {files:?}");
    let image = mem.crash_image(3);
    drop(m);
    a.close();
    assert!(image.read_file("/p/000001.log".as_ref()).is_ok());

    let b = archiver(&archive);
    let reopened = wal_testkit::mem_env(&image).with_archive(Arc::clone(&b) as Arc<dyn LogArchive>);
    let m = Manager::open_with(&config, reopened).unwrap();
    assert!(b.wait_idle(IDLE_TIMEOUT), "{:?}", b.status());
    let status = b.status();
    assert_eq!(
        status.uploaded_logs, 0,
        "nothing uploaded again: {status:?}"
    );
    assert_eq!(status.found_archived, 2, "{status:?}");
    assert!(
        image.read_file("/p/000001.log".as_ref()).is_err(),
        "the leftover is deleted once found archived"
    );
    m.close().unwrap();
    assert_eq!(
        restore_and_read(&archive, &tmp.path().join("restored"), &config),
        written
    );
}

#[test]
fn damage_in_the_archive_is_reported_by_verify_and_refused_by_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::standalone(tmp.path().join("p"));
    config.archive = Some(file_archive(&tmp.path().join("archive")));
    let archive = config.archive.clone().unwrap();
    let a = archiver(&archive);
    let m = Manager::open_with(&config, env(&a)).unwrap();
    write_logs(&m, 1, 2, 6);
    assert!(a.wait_idle(IDLE_TIMEOUT));
    m.close().unwrap();
    let store = Store::open(&archive, Access::Write).unwrap();
    let listing = list(&store).unwrap();
    for manifest in listing.manifests() {
        verify_log(&store, manifest).unwrap();
    }

    // One flipped bit in log 1's data object.
    let path = tmp.path().join("archive").join(data_name(LogNum(1)));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let manifest = listing.manifests().next().unwrap();
    let e = verify_log(&store, manifest).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert!(e.to_string().contains("CRC-32C"), "{e}");
    assert!(e.to_string().contains("000001.log"), "{e}");
    let e = restore(&store, &tmp.path().join("r1"), None, &mut |_| {}).unwrap_err();
    assert!(e.is_corruption(), "{e}");

    // A damaged manifest is listed as such.
    let path = tmp.path().join("archive").join(manifest_name(LogNum(2)));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("records = 6", "records = 7")).unwrap();
    let listing = list(&store).unwrap();
    let damaged = listing.logs.iter().find(|l| l.log == LogNum(2)).unwrap();
    assert!(
        damaged.manifest.as_ref().unwrap_err().contains("checksum"),
        "{damaged:?}"
    );
}

#[test]
fn another_log_under_the_same_number_is_a_conflict_and_the_local_log_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = file_archive(&tmp.path().join("archive"));
    // A first WAL archives its log 1 (three records).
    let mut config = Config::standalone(tmp.path().join("first"));
    config.archive = Some(archive.clone());
    let a = archiver(&archive);
    let m = Manager::open_with(&config, env(&a)).unwrap();
    write_logs(&m, 1, 1, 3);
    assert!(a.wait_idle(IDLE_TIMEOUT));
    m.close().unwrap();

    // A second WAL archives to the same place: its log 1 holds more.
    let mut config = Config::standalone(tmp.path().join("second"));
    config.archive = Some(archive.clone());
    let a = archiver(&archive);
    let m = Manager::open_with(&config, env(&a)).unwrap();
    write_logs(&m, 1, 2, 4);
    assert!(!a.wait_idle(std::time::Duration::from_millis(800)));
    let status = a.status();
    let error = status.last_error.clone().unwrap_or_default();
    assert!(error.contains("another WAL"), "{status:?}");
    assert!(error.contains("000001"), "{status:?}");
    assert_eq!(status.uploaded_logs, 1, "log 2 is archived: {status:?}");
    // Obsolete, it is still not deleted: the archive does not hold it.
    assert!(m.obsolete(LogNum(2)).unwrap().is_empty());
    assert!(!a.wait_idle(std::time::Duration::from_millis(800)));
    assert!(tmp.path().join("second/000001.log").exists());
    m.close().unwrap();
    let store = Store::open(&archive, Access::Read).unwrap();
    let listing = list(&store).unwrap();
    assert_eq!(
        listing.manifests().next().unwrap().summary.records,
        3,
        "the first WAL's log stays"
    );
}
