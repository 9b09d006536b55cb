//! `wal list`, `wal dump`, `wal verify` and `wal stats` over logs written by
//! the library: standalone, and a failover pair with duplicated records.
//! The read-only commands must leave the directories byte for byte as they
//! were.

mod support;

use std::collections::BTreeMap;

use support::{
    dir_args, payload, snapshot, wal, wal_on, write_config, write_failover_with_duplicates,
    write_standalone,
};

#[test]
fn list_shows_every_log_with_its_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    write_standalone(&dir, 2, 3, 100);

    let run = wal_on("list", &dir, None, &[]);
    run.assert_ok();
    assert!(run.stdout.contains("log 000001: 1 segment"), "{run:#?}");
    assert!(run.stdout.contains("log 000002: 1 segment"), "{run:#?}");
    assert!(run.stdout.contains("primary    index 000"), "{run:#?}");
    assert!(
        run.stdout
            .contains(&dir.join("000002.log").display().to_string())
    );

    let logs = wal_on("list", &dir, None, &["--format", "json"]).json_lines();
    assert_eq!(logs.len(), 2);
    let segment = &logs[0]["segments"][0];
    assert_eq!(logs[0]["log"], 1);
    assert_eq!(segment["dir"], "primary");
    assert_eq!(segment["index"], 0);
    let size = std::fs::metadata(dir.join("000001.log")).unwrap().len();
    assert_eq!(segment["size"], size);
    assert_eq!(logs[0]["size"], size);
}

#[test]
fn dump_prints_every_record_in_order_as_text_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    write_standalone(&dir, 2, 3, 40);

    let run = wal_on("dump", &dir, None, &[]);
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{run:#?}");
    assert!(lines[0].starts_with("log 000001 lsn 1 primary/000001.log@0 len 40"));
    assert!(lines[5].starts_with("log 000002 lsn 6 "), "{}", lines[5]);
    // 32 bytes are shown, the rest elided.
    assert!(lines[0].ends_with("... (+8 bytes)"), "{}", lines[0]);

    let records = wal_on("dump", &dir, None, &["--format", "json"]).json_lines();
    assert_eq!(records.len(), 6);
    for (i, r) in records.iter().enumerate() {
        let i = i as u64;
        assert_eq!(r["lsn"], i + 1);
        assert_eq!(r["log"], i / 3 + 1);
        assert_eq!(r["len"], 40);
        assert_eq!(r["system"], false);
        assert_eq!(r["dir"], "primary");
        assert!(r["offset"].is_u64());
        let segment = dir.join(format!("{:06}.log", i / 3 + 1));
        assert_eq!(r["segment"], segment.to_str().unwrap());
        assert_eq!(r["payload_hex"], hex(&payload(i, 40)));
    }
    // Offsets increase within a segment.
    assert!(records[1]["offset"].as_u64() > records[0]["offset"].as_u64());

    let only = wal_on("dump", &dir, None, &["--log", "2", "--format", "json"]).json_lines();
    assert_eq!(only.len(), 3);
    assert!(only.iter().all(|r| r["log"] == 2));
}

#[test]
fn dump_of_a_failover_pair_shows_each_record_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("p"), tmp.path().join("s"));
    write_failover_with_duplicates(&p, &s);

    let records = wal_on("dump", &p, Some(&s), &["--format", "json"]).json_lines();
    let lsns: Vec<u64> = records.iter().map(|r| r["lsn"].as_u64().unwrap()).collect();
    assert_eq!(lsns, (1..=9).collect::<Vec<_>>(), "no duplicates, no gaps");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["payload_hex"], hex(&payload(i as u64, 16)));
    }
    // Records 1-5 come from the primary segment of log 1, 6 from the
    // secondary; log 2 has one record in each of its three segments.
    let from: Vec<(u64, &str, u64)> = records
        .iter()
        .map(|r| {
            (
                r["log"].as_u64().unwrap(),
                r["dir"].as_str().unwrap(),
                r["index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        from,
        [
            (1, "primary", 0),
            (1, "primary", 0),
            (1, "primary", 0),
            (1, "primary", 0),
            (1, "primary", 0),
            (1, "secondary", 1),
            (2, "secondary", 0),
            (2, "primary", 1),
            (2, "secondary", 2),
        ]
    );
}

#[test]
fn verify_reports_duplicates_per_segment_of_a_failover_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("p"), tmp.path().join("s"));
    write_failover_with_duplicates(&p, &s);

    let run = wal_on("verify", &p, Some(&s), &[]);
    run.assert_ok();
    let out = &run.stdout;
    assert!(out.contains("log 000001: 2 segments"), "{out}");
    assert!(
        out.contains("000001.log: 5 records, 0 duplicates: clean end (trailer at"),
        "{out}"
    );
    assert!(
        out.contains("000001-001.log: 1 record, 2 duplicates: clean end (trailer at"),
        "{out}"
    );
    assert!(out.contains("=> readable: 6 records, LSN 1..=6"), "{out}");
    assert!(out.contains("log 000002: 3 segments"), "{out}");
    assert!(
        out.contains("verified 2 logs, 5 segments, 9 records: all readable"),
        "{out}"
    );

    let list = wal_on("list", &p, Some(&s), &[]);
    assert!(list.stdout.contains("secondary  index 001"), "{list:#?}");
}

#[test]
fn a_config_file_names_the_same_wal_as_the_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("p"), tmp.path().join("s"));
    write_failover_with_duplicates(&p, &s);
    // Relative directories are relative to the configuration file.
    let config = write_config(
        tmp.path(),
        "failover.toml",
        "[primary]\ndir = \"p\"\n[secondary]\ndir = \"s\"\n",
    );
    let by_config = wal([
        "dump",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let by_dirs = wal_on("dump", &p, Some(&s), &["--format", "json"]);
    by_config.assert_ok();
    assert_eq!(by_config.json_lines().len(), 9);
    let lsns = |run: &support::Run| {
        run.json_lines()
            .iter()
            .map(|r| r["lsn"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(lsns(&by_config), lsns(&by_dirs));
}

#[test]
fn read_only_commands_leave_the_directories_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("p"), tmp.path().join("s"));
    write_failover_with_duplicates(&p, &s);
    let before = snapshot(&[&p, &s]);
    for (command, extra) in [
        ("list", &[][..]),
        ("list", &["--format", "json"][..]),
        ("dump", &[][..]),
        ("dump", &["--format", "json"][..]),
        ("dump", &["--log", "2"][..]),
        ("verify", &[][..]),
    ] {
        wal_on(command, &p, Some(&s), extra).assert_ok();
        assert_eq!(
            snapshot(&[&p, &s]),
            before,
            "{command} {extra:?} changed a file"
        );
    }
}

#[test]
fn an_empty_directory_holds_no_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let before = snapshot(&[dir]);
    let run = wal_on("list", dir, None, &[]);
    run.assert_ok();
    assert!(run.stdout.starts_with("no logs in primary "), "{run:#?}");
    let run = wal_on("verify", dir, None, &[]);
    run.assert_ok();
    assert!(run.stdout.contains("nothing to verify"), "{run:#?}");
    let run = wal_on("dump", dir, None, &[]);
    run.assert_ok();
    assert_eq!(run.stdout, "");
    assert_eq!(snapshot(&[dir]), before);
}

#[test]
fn stats_opens_the_manager_and_prints_its_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("p"), tmp.path().join("s"));
    write_failover_with_duplicates(&p, &s);
    let run = wal_on("stats", &p, Some(&s), &[]);
    run.assert_ok();
    assert!(run.stdout.contains("manager: failover"), "{run:#?}");
    assert!(run.stdout.contains("live: 2 logs, 5 files"), "{run:#?}");
    assert!(run.stdout.contains("next LSN: 10"), "{run:#?}");

    let stats = wal_on("stats", &p, Some(&s), &["--format", "json"]).json_lines();
    assert_eq!(stats.len(), 1);
    let stats = &stats[0];
    assert_eq!(stats["live_logs"], 2);
    assert_eq!(stats["next_lsn"], 10);
    assert_eq!(stats["failover"]["switches"], 0);
    assert!(stats["failover"]["current_dir"].is_string());

    let dir = tmp.path().join("standalone");
    write_standalone(&dir, 1, 2, 10);
    let stats = wal_on("stats", &dir, None, &["--format", "json"]).json_lines();
    assert_eq!(stats[0]["manager"], "standalone");
    assert_eq!(stats[0]["failover"], serde_json::Value::Null);
}

#[test]
fn help_is_available_on_every_command_with_the_exit_status_table() {
    let run = wal(["--help"]);
    run.assert_ok();
    for word in [
        "list",
        "dump",
        "verify",
        "repair",
        "bench",
        "stats",
        "Exit status",
    ] {
        assert!(run.stdout.contains(word), "{word}: {run:#?}");
    }
    for command in ["list", "dump", "verify", "repair", "bench", "stats"] {
        let run = wal([command, "--help"]);
        run.assert_ok();
        assert!(
            run.stdout.contains("--config <FILE>"),
            "{command}: {run:#?}"
        );
        assert!(
            run.stdout.contains("--primary <DIR>"),
            "{command}: {run:#?}"
        );
        assert!(run.stdout.contains("Exit status"), "{command}: {run:#?}");
    }
    let run = wal(["--version"]);
    run.assert_ok();
    assert!(run.stdout.starts_with("wal "), "{run:#?}");
}

#[test]
fn dir_args_and_config_agree_on_a_standalone_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    write_standalone(&dir, 1, 4, 20);
    let config = write_config(tmp.path(), "standalone.toml", "[primary]\ndir = \"wal\"\n");
    let by_config = wal(["list", "--config", config.to_str().unwrap()]);
    let mut args = vec!["list".to_owned()];
    args.extend(dir_args(&dir, None));
    let by_dirs = wal(args);
    by_config.assert_ok();
    // The config's relative directory resolves against the file's directory,
    // so both name the same files.
    let files = |run: &support::Run| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for w in run.stdout.split_whitespace().filter(|w| {
            std::path::Path::new(w)
                .extension()
                .is_some_and(|e| e == "log")
        }) {
            *m.entry(w.rsplit('/').next().unwrap().to_owned())
                .or_default() += 1;
        }
        m
    };
    assert_eq!(files(&by_config), files(&by_dirs));
    assert_eq!(files(&by_config).len(), 1);
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
