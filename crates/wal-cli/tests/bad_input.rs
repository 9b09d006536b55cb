//! Bad input: every kind gets one clear `wal: error:` line naming the thing,
//! a non-zero exit (2 for usage and configuration, 1 otherwise), no panic,
//! and no change on disk.

mod support;

use support::{snapshot, wal, wal_on, write_config, write_standalone};
use wal_fs::{Fs, OsFs};

const ALL: [&str; 6] = ["list", "dump", "verify", "repair", "stats", "bench"];

fn bench_extra(command: &str) -> &'static [&'static str] {
    if command == "bench" {
        &["--duration", "0.05"]
    } else {
        &[]
    }
}

#[test]
fn a_missing_directory_is_a_usage_error_and_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    for command in ["list", "dump", "verify", "repair", "stats"] {
        let run = wal_on(command, &missing, None, &[]);
        run.assert_error(2, &["primary directory", "nope", "does not exist"]);
        assert!(!missing.exists(), "{command} created it");
    }
    let present = tmp.path().join("present");
    std::fs::create_dir(&present).unwrap();
    let run = wal_on("verify", &present, Some(&missing), &[]);
    run.assert_error(2, &["secondary directory", "does not exist"]);
}

#[test]
fn a_file_given_as_a_directory_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("000001.log");
    std::fs::write(&file, b"x").unwrap();
    for command in ALL {
        let run = wal_on(command, &file, None, bench_extra(command));
        run.assert_error(2, &["000001.log", "is not a directory"]);
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_directory_that_is_not_a_wal_is_refused_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a log").unwrap();
    let before = snapshot(&[&dir]);
    for command in ALL {
        let run = wal_on(command, &dir, None, bench_extra(command));
        run.assert_error(2, &["home", "is not a WAL directory"]);
        assert_eq!(snapshot(&[&dir]), before, "{command} changed the directory");
    }
}

#[test]
fn configuration_files_that_cannot_be_read_or_are_invalid_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cases: Vec<(std::path::PathBuf, Vec<&str>)> = vec![
        (
            t.join("missing.toml"),
            vec!["cannot read configuration", "missing.toml"],
        ),
        // A directory where the file should be: unreadable.
        (t.to_path_buf(), vec!["cannot read configuration"]),
        (
            {
                let p = t.join("binary.toml");
                std::fs::write(&p, [0xff, 0xfe, 0x00, 0x80]).unwrap();
                p
            },
            vec!["cannot read configuration", "binary.toml"],
        ),
        (
            write_config(t, "syntax.toml", "[primary\ndir = \"x\"\n"),
            vec![
                "invalid configuration",
                "syntax.toml",
                "line 1: invalid table header",
            ],
        ),
        (
            write_config(t, "unknown.toml", "[primary]\ndir = \"x\"\nbogus = 1\n"),
            vec!["invalid configuration", "unknown.toml", "bogus"],
        ),
        (
            write_config(
                t,
                "zero.toml",
                "[primary]\ndir = \"x\"\n[failover]\nprobe_interval = \"0s\"\n",
            ),
            vec!["failover.probe_interval = \"0s\""],
        ),
        (
            write_config(
                t,
                "same.toml",
                "[primary]\ndir = \"x\"\n[secondary]\ndir = \"x\"\n",
            ),
            vec!["same directory"],
        ),
    ];
    for (path, needles) in cases {
        for command in ALL {
            let mut args = vec![command, "--config", path.to_str().unwrap()];
            args.extend(bench_extra(command));
            wal(&args).assert_error(2, &needles);
        }
    }
    assert!(!t.join("x").exists(), "no directory was created");
}

#[test]
fn a_locked_directory_fails_the_commands_that_lock_and_not_the_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    write_standalone(&dir, 1, 3, 10);
    let _lock = OsFs::new().lock(&dir).unwrap();
    let before = snapshot(&[&dir]);
    for command in ["repair", "stats", "bench"] {
        let run = wal_on(command, &dir, None, bench_extra(command));
        run.assert_error(1, &["wal", "is locked by another WAL manager"]);
    }
    for command in ["list", "dump", "verify"] {
        wal_on(command, &dir, None, &[]).assert_ok();
    }
    assert_eq!(snapshot(&[&dir]), before);
}

#[test]
fn an_unreadable_segment_is_a_failure_that_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    write_standalone(&dir, 1, 3, 10);
    // A directory under a segment's name: it cannot be read as a file.
    std::fs::create_dir(dir.join("000002.log")).unwrap();
    let before = snapshot(&[&dir]);
    for command in ["list", "dump", "verify", "repair"] {
        let run = wal_on(command, &dir, None, &[]);
        run.assert_error(1, &["000002.log", "is a directory"]);
    }
    // Repair takes the lock, which writes its pid into LOCK; nothing else
    // changes.
    let without_lock = |mut s: std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        s.remove(&dir.join("LOCK"));
        s
    };
    assert_eq!(without_lock(snapshot(&[&dir])), without_lock(before));
}

#[test]
fn argument_errors_are_usage_errors_on_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let wal_dir = tmp.path().join("wal");
    std::fs::create_dir(&wal_dir).unwrap();
    let dir = wal_dir.to_str().unwrap();
    let config = write_config(tmp.path(), "c.toml", "[primary]\ndir = \"wal\"\n");
    let config = config.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["list"], "give either --config FILE or --primary DIR"),
        (
            vec!["list", "--config", config, "--primary", dir],
            "cannot be used with",
        ),
        (vec!["list", "--secondary", dir], "--primary"),
        (
            vec!["list", "--primary", dir, "--secondary", dir],
            "same directory",
        ),
        (vec!["frobnicate"], "frobnicate"),
        (vec!["dump", "--primary", dir, "--format", "xml"], "xml"),
        (vec!["dump", "--primary", dir, "--log", "x"], "--log"),
        (
            vec!["dump", "--primary", dir, "--log", "7"],
            "no log 000007",
        ),
        (
            vec!["bench", "--primary", dir, "--record-size", "8"],
            "--record-size 8",
        ),
        (
            vec!["bench", "--primary", dir, "--writers", "0"],
            "--writers 0",
        ),
        (
            vec!["bench", "--primary", dir, "--duration", "0"],
            "--duration 0",
        ),
        (
            vec!["bench", "--primary", dir, "--duration", "soon"],
            "soon",
        ),
        (
            vec!["bench", "--primary", dir, "--log-size-max", "1TiB"],
            "--log-size-max",
        ),
    ];
    let before = snapshot(&[tmp.path()]);
    for (args, needle) in cases {
        wal(&args).assert_error(2, &[needle]);
    }
    assert_eq!(snapshot(&[tmp.path()]), before);
}

#[test]
fn no_subcommand_prints_help_and_exits_with_the_usage_status() {
    let run = wal::<[&str; 0], &str>([]);
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(run.stderr.contains("Usage"), "{run:#?}");
}

#[test]
fn clean_is_refused_when_the_directories_already_hold_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    write_standalone(&dir, 1, 3, 10);
    let before = snapshot(&[&dir]);
    let run = wal_on("bench", &dir, None, &["--duration", "0.05", "--clean"]);
    run.assert_error(2, &["--clean", "already hold logs"]);
    assert_eq!(snapshot(&[&dir]), before);
}

#[test]
fn the_primary_of_a_failover_pair_given_alone_or_swapped_is_refused_by_every_command() {
    // Read alone, the primary hid the records on the secondary and
    // `verify` said "all readable".
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("p"), tmp.path().join("s"));
    support::write_failover_with_duplicates(&p, &s);
    let before = snapshot(&[&p, &s]);
    for command in ALL {
        let run = wal_on(command, &p, None, bench_extra(command));
        run.assert_error(2, &["this is the primary of a failover WAL", "--secondary"]);
        let run = wal_on(command, &s, Some(&p), bench_extra(command));
        run.assert_error(2, &["is the secondary of a failover WAL"]);
        assert_eq!(snapshot(&[&p, &s]), before, "{command} changed a directory");
    }
    wal_on("verify", &p, Some(&s), &[]).assert_ok();
}

#[test]
fn a_file_named_like_a_segment_that_is_not_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    std::fs::create_dir(&dir).unwrap();
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i * 7919 % 251) as u8 | 0x40)
        .collect();
    std::fs::write(dir.join("000001.log"), &garbage).unwrap();
    let before = snapshot(&[&dir]);
    for command in ALL {
        let run = wal_on(command, &dir, None, bench_extra(command));
        run.assert_error(
            1,
            &["000001.log is named like a log segment but is not one"],
        );
        assert_eq!(snapshot(&[&dir]), before, "{command} changed the directory");
    }
}
