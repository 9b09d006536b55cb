//! `wal archive list | verify | restore` and `wal dump --archive`: the bench
//! archives its logs; the archive lists, verifies and dumps them with the
//! lines of `wal dump`; a restore gives back every record; damage is
//! reported (exit 1); bad URLs, missing tables, refused credentials and a
//! missing bucket are named (exit 2). The S3 cases need the server the test
//! command starts (see `wal-archive`'s suite); they skip without it, unless
//! `WAL_ARCHIVE_REQUIRE_S3` is set.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{Run, bench_two_writers, output_of, wal, write_config};

/// A standalone configuration in `dir` archiving to `url` (plus extra
/// `[archive]` lines).
fn config_with_archive(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        "archived.toml",
        &format!("[primary]\ndir = \"wal\"\n\n[archive]\nurl = \"{url}\"\n{extra}"),
    )
}

/// Runs the bench long enough for a few small logs, all archived.
fn bench(config: &Path) {
    let run = bench_two_writers(config, "0.3", &["--log-size-max", "16KiB"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("logs uploaded to"),
        "the bench says what it archived: {run:#?}"
    );
}

/// The fields of a dump line that do not depend on where the record is
/// stored.
fn content(line: &Value) -> Value {
    let mut v = line.clone();
    let o = v.as_object_mut().unwrap();
    for key in ["segment", "dir", "index", "offset"] {
        assert!(o.remove(key).is_some(), "{key} in {line}");
    }
    v
}

/// The whole round trip through the `wal` commands on the archive `url`.
fn round_trip(url: &str, extra: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let config = config_with_archive(tmp.path(), url, extra);
    let config = config.to_str().unwrap();
    bench(config.as_ref());

    let listed = wal(["archive", "list", "--config", config, "--format", "json"]);
    let listed = listed.assert_ok().json_lines();
    assert!(listed.len() >= 2, "several logs: {listed:?}");
    assert!(
        listed.iter().all(|l| l["sequencing"] == "lsn"),
        "{listed:?}"
    );

    let verified = wal(["archive", "verify", "--config", config]);
    verified.assert_ok();
    assert!(verified.stdout.contains("all intact"), "{verified:#?}");

    let local = wal(["dump", "--config", config, "--format", "json"]);
    let archived = wal(["dump", "--archive", "--config", config, "--format", "json"]);
    let archived = archived.assert_ok().json_lines();
    assert!(
        archived
            .iter()
            .all(|l| l["dir"] == "archive" && l["index"] == 0)
    );
    assert!(
        archived[0]["segment"]
            .as_str()
            .unwrap()
            .ends_with("/000001.log"),
        "{}",
        archived[0]
    );
    let local: Vec<Value> = local.assert_ok().json_lines().iter().map(content).collect();
    let archived: Vec<Value> = archived.iter().map(content).collect();
    assert_eq!(archived, local, "the same records, byte for byte");

    let to = tmp.path().join("restored");
    let restored = wal([
        "archive",
        "restore",
        "--config",
        config,
        "--to",
        to.to_str().unwrap(),
    ]);
    restored.assert_ok();
    assert!(
        restored.stdout.contains("sequencing = \"lsn\""),
        "{restored:#?}"
    );
    let dumped = wal_on_dir(&to);
    assert_eq!(dumped, local, "restored byte for byte");

    let until = local[4]["lsn"].as_u64().unwrap();
    let cut = tmp.path().join("cut");
    let run = wal([
        "archive",
        "restore",
        "--config",
        config,
        "--to",
        cut.to_str().unwrap(),
        "--until-lsn",
        &until.to_string(),
    ]);
    run.assert_ok();
    assert_eq!(wal_on_dir(&cut), local[..5].to_vec());
}

/// `wal dump` of a restored directory, as contents.
fn wal_on_dir(dir: &Path) -> Vec<Value> {
    let run = wal([
        "dump",
        "--primary",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    run.assert_ok().json_lines().iter().map(content).collect()
}

#[test]
fn the_bench_archives_and_the_archive_lists_verifies_dumps_and_restores() {
    let archive = tempfile::tempdir().unwrap();
    round_trip(&format!("file://{}", archive.path().display()), "");
}

#[test]
fn a_damaged_archived_log_fails_verify_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let url = format!("file://{}", archive.display());
    let config = config_with_archive(tmp.path(), &url, "");
    bench(&config);
    let object = archive.join("000001.log");
    support::flip_byte(&object, 40);
    let run = wal(["archive", "verify", "--archive-url", &url]);
    assert_eq!(run.status, 1, "{run:#?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("log 000001"))
        .unwrap();
    assert!(line.contains("CORRUPT"), "{line}");
    assert!(line.contains(&object.display().to_string()), "{line}");
    assert!(run.stdout.contains("1 damaged"), "{run:#?}");
    let to = tmp.path().join("restored");
    let run = wal([
        "archive",
        "restore",
        "--archive-url",
        &url,
        "--to",
        to.to_str().unwrap(),
    ]);
    run.assert_error(1, &["000001.log", "CRC-32C"]);
}

#[test]
fn bad_archive_arguments_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    wal(["archive", "list", "--archive-url", "http://host/x"])
        .assert_error(2, &["archive.url = \"http://host/x\"", "s3://BUCKET"]);
    let missing = tmp.path().join("nowhere");
    wal([
        "archive",
        "verify",
        "--archive-url",
        &format!("file://{}", missing.display()),
    ])
    .assert_error(2, &["does not exist", &missing.display().to_string()]);
    let plain = write_config(tmp.path(), "plain.toml", "[primary]\ndir = \"wal\"\n");
    wal(["archive", "list", "--config", plain.to_str().unwrap()])
        .assert_error(2, &["has no [archive] table", "plain.toml"]);
    wal(["archive", "list"]).assert_error(2, &["--archive-url URL"]);
    let bad = config_with_archive(tmp.path(), "s3://", "");
    wal(["archive", "list", "--config", bad.to_str().unwrap()])
        .assert_error(2, &["archive.url = \"s3://\"", "no bucket"]);
    // A restore never writes into a directory that holds something.
    let archive = tmp.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let busy = tmp.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), b"mine").unwrap();
    wal([
        "archive",
        "restore",
        "--archive-url",
        &format!("file://{}", archive.display()),
        "--to",
        busy.to_str().unwrap(),
    ])
    .assert_error(2, &["cannot restore into", "not empty"]);
    assert_eq!(std::fs::read(busy.join("notes.txt")).unwrap(), b"mine");
}

/// The S3 server's endpoint and bucket, if the test command started one.
fn s3(test: &str) -> Option<(String, String)> {
    if let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("WAL_ARCHIVE_S3_ENDPOINT"),
        std::env::var("WAL_ARCHIVE_S3_BUCKET"),
    ) {
        return Some((endpoint, bucket));
    }
    assert!(
        std::env::var_os("WAL_ARCHIVE_REQUIRE_S3").is_none(),
        "WAL_ARCHIVE_REQUIRE_S3 is set but no S3 server was started (scripts/test.sh starts one)"
    );
    eprintln!("SKIPPED {test}: no S3 server (scripts/test.sh starts one)");
    None
}

#[test]
fn the_round_trip_works_against_s3() {
    let Some((endpoint, bucket)) = s3("cli-s3-round-trip") else {
        return;
    };
    let prefix = format!("cli-{}", std::process::id());
    round_trip(
        &format!("s3://{bucket}/{prefix}"),
        &format!("endpoint = \"{endpoint}\"\n"),
    );
}

#[test]
fn refused_credentials_and_a_missing_bucket_are_named_against_s3() {
    let Some((endpoint, bucket)) = s3("cli-s3-credentials") else {
        return;
    };
    let run_with = |url: &str, key: &str| -> Run {
        let output = output_of(
            Command::new(env!("CARGO_BIN_EXE_wal"))
                .args([
                    "archive",
                    "list",
                    "--archive-url",
                    url,
                    "--endpoint",
                    &endpoint,
                ])
                .env("AWS_ACCESS_KEY_ID", key),
        );
        Run {
            status: output.status.code().unwrap(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    };
    run_with(&format!("s3://{bucket}/x"), "AKIAFAILWALWRONGKEY0").assert_error(
        2,
        &["AKIAFAILWALWRONGKEY0", "InvalidAccessKeyId", &endpoint],
    );
    let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    run_with("s3://no-such-bucket-of-failwal/x", &key).assert_error(
        2,
        &["bucket no-such-bucket-of-failwal does not exist", &endpoint],
    );
}
