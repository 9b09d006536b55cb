//! The archive against a real S3 protocol server (moto, started by
//! `scripts/test.sh` through `scripts/s3-server.sh`; each test skips with a
//! printed reason when there is none, and fails when
//! `WAL_ARCHIVE_REQUIRE_S3` is set, as in `.ci/run`): a round trip byte for
//! byte, the server going down in the middle of an upload and coming back,
//! refused credentials and a missing bucket named, a corrupted object found
//! by verify.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use support::proxy::Proxy;
use support::{IDLE_TIMEOUT, archiver, env, records_of, restore_and_read, s3_archive, write_logs};
use wal_archive::manifest::{data_name, manifest_name};
use wal_archive::{
    Access, Archiver, ArchiverOptions, Error, S3Credentials, Store, list, verify_log,
};
use wal_manager::{Config, LogNum, Manager};

#[test]
fn failover_logs_round_trip_through_s3_byte_for_byte() {
    let Some(archive) = s3_archive("round-trip") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::failover(tmp.path().join("p"), tmp.path().join("s"));
    config.archive = Some(archive.clone());
    let a = archiver(&archive);
    let m = Manager::open_with(&config, env(&a)).unwrap();
    write_logs(&m, 1, 3, 10);
    let written = records_of(&m);
    assert!(a.wait_idle(IDLE_TIMEOUT), "{:?}", a.status());
    m.close().unwrap();
    let store = Store::open(&archive, Access::Read).unwrap();
    let listing = list(&store).unwrap();
    assert_eq!(listing.logs.len(), 3);
    for manifest in listing.manifests() {
        verify_log(&store, manifest).unwrap();
    }
    assert_eq!(
        restore_and_read(&archive, &tmp.path().join("restored"), &config),
        written
    );
}

#[test]
fn an_upload_cut_by_the_server_going_down_resumes_when_it_is_back_and_nothing_goes_early() {
    let Some(real) = s3_archive("server-down") else {
        return;
    };
    let proxy = Proxy::start(real.endpoint.as_deref().unwrap());
    let mut archive = real.clone();
    archive.endpoint = Some(proxy.url());
    proxy.cut_the_next_log_upload();

    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::standalone(tmp.path().join("p"));
    config.archive = Some(archive.clone());
    let a = archiver(&archive);
    let m = Manager::open_with(&config, env(&a)).unwrap();
    // About 900 KiB per log: the upload of log 1 is cut after 64 KiB.
    write_logs(&m, 1, 2, 40);
    let written = records_of(&m);
    let deadline = Instant::now() + IDLE_TIMEOUT;
    while proxy.is_up() {
        assert!(Instant::now() < deadline, "the upload was never cut");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(proxy.cuts(), 1);
    // Both logs obsolete while the server is down: kept.
    assert!(m.obsolete(LogNum(3)).unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    let status = a.status();
    assert!(status.failures > 0, "{status:?}");
    assert_eq!(status.uploaded_logs, 0, "{status:?}");
    for log in ["000001.log", "000002.log"] {
        assert!(tmp.path().join("p").join(log).exists(), "{log} kept");
    }
    let backlog = m.stats().archive.unwrap();
    assert_eq!((backlog.backlog_logs, backlog.awaiting_logs), (2, 2));
    let direct = Store::open(&real, Access::Read).unwrap();
    assert!(
        direct.get(&manifest_name(LogNum(1))).unwrap().is_none(),
        "no manifest for a cut upload"
    );

    proxy.restart();
    assert!(a.wait_idle(IDLE_TIMEOUT), "{:?}", a.status());
    assert_eq!(a.status().uploaded_logs, 2);
    for log in ["000001.log", "000002.log"] {
        assert!(
            !tmp.path().join("p").join(log).exists(),
            "{log} deleted once archived"
        );
    }
    m.close().unwrap();
    assert_eq!(
        restore_and_read(&real, &tmp.path().join("restored"), &config),
        written
    );
}

#[test]
fn refused_credentials_and_a_missing_bucket_are_named() {
    let Some(archive) = s3_archive("credentials") else {
        return;
    };
    let wrong_key = S3Credentials {
        access_key_id: "AKIAFAILWALWRONGKEY0".into(),
        secret_access_key: "wrong".into(),
        session_token: None,
    };
    let e = Store::open_with(&archive, Some(wrong_key.clone()), Access::Read)
        .unwrap()
        .check()
        .unwrap_err();
    assert!(matches!(e, Error::Credentials { .. }), "{e}");
    let text = e.to_string();
    for needle in [
        "AKIAFAILWALWRONGKEY0",
        "InvalidAccessKeyId",
        "AWS_ACCESS_KEY_ID",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert!(e.is_configuration());

    let right = S3Credentials::from_env().expect("the test command exports the key");
    let wrong_secret = S3Credentials {
        secret_access_key: "not-the-secret".into(),
        ..right.clone()
    };
    let e = Store::open_with(&archive, Some(wrong_secret), Access::Read)
        .unwrap()
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
    assert!(e.to_string().contains(&right.access_key_id), "{e}");

    let mut missing = archive.clone();
    missing.url = "s3://no-such-bucket-of-failwal/wal".into();
    let e = Store::open(&missing, Access::Read)
        .unwrap()
        .check()
        .unwrap_err();
    assert!(matches!(e, Error::NoSuchBucket { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("bucket no-such-bucket-of-failwal does not exist"),
        "{e}"
    );

    let e = Store::open_with(&archive, None, Access::Read).unwrap_err();
    assert!(matches!(e, Error::NoCredentials { .. }), "{e}");

    // An archiver with a refused key keeps every log and says why.
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::standalone(tmp.path().join("p"));
    config.archive = Some(archive.clone());
    let a = Archiver::start_with(
        &archive,
        ArchiverOptions {
            credentials: Some(wrong_key),
            ..support::fast_retries()
        },
    )
    .unwrap();
    let m = Manager::open_with(&config, env(&a)).unwrap();
    write_logs(&m, 1, 2, 2);
    assert!(m.obsolete(LogNum(2)).unwrap().is_empty());
    assert!(!a.wait_idle(Duration::from_millis(800)));
    let status = a.status();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("AKIAFAILWALWRONGKEY0"),
        "{status:?}"
    );
    assert!(tmp.path().join("p/000001.log").exists());
    m.close().unwrap();
}

#[test]
fn a_corrupted_object_in_s3_is_reported_by_verify() {
    let Some(archive) = s3_archive("corrupt") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::standalone(tmp.path().join("p"));
    config.archive = Some(archive.clone());
    let a = archiver(&archive);
    let m = Manager::open_with(&config, env(&a)).unwrap();
    write_logs(&m, 1, 1, 8);
    assert!(a.wait_idle(IDLE_TIMEOUT), "{:?}", a.status());
    m.close().unwrap();
    let store = Store::open(&archive, Access::Write).unwrap();
    let manifest = list(&store).unwrap().manifests().next().unwrap().clone();
    verify_log(&store, &manifest).unwrap();
    let mut bytes = store.get(&data_name(LogNum(1))).unwrap().unwrap().to_vec();
    bytes[5000] ^= 0x01;
    store
        .put(&data_name(LogNum(1)), Bytes::from(bytes))
        .unwrap();
    let e = verify_log(&store, &manifest).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert!(e.to_string().contains("s3://"), "names the object: {e}");
}
