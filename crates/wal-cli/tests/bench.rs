//! `wal bench` with tiny durations on standalone and failover
//! configurations: the JSON summary adds up, and `wal dump` afterwards shows
//! exactly the acknowledged records, contiguous per writer.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{Run, bench_two_writers, wal, write_config};

const SUMMARY_KEYS: [&str; 13] = [
    "records",
    "bytes",
    "secs",
    "records_per_s",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
    "dir_switches",
    "hedges",
    "standby_bytes",
    "acked",
    "timeline",
];

/// The JSON object on the last stdout line, checked for every key.
fn summary(run: &Run) -> Value {
    run.assert_ok();
    // stderr is a pipe here, not a terminal: no progress line.
    assert_eq!(run.stderr, "", "{run:#?}");
    let last = run.stdout.lines().last().expect("some output");
    let summary: Value = serde_json::from_str(last).expect("the last line is JSON");
    for key in SUMMARY_KEYS {
        assert!(summary.get(key).is_some(), "{key} missing from {summary}");
    }
    summary
}

/// Checks the summary against what `wal dump --config config` shows.
fn check_against_dump(config: &Path, summary: &Value, writers: usize, record_size: usize) {
    let acked: Vec<u64> = summary["acked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(acked.len(), writers);
    let records = summary["records"].as_u64().unwrap();
    assert_eq!(acked.iter().sum::<u64>(), records);
    assert!(records > 0, "{summary}");
    assert_eq!(
        summary["bytes"].as_u64().unwrap(),
        records * record_size as u64
    );

    let dump = wal([
        "dump",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ]);
    dump.assert_ok();
    let mut next = vec![0u64; writers];
    let mut last_lsn = 0;
    let mut n = 0;
    for r in dump.json_lines() {
        let lsn = r["lsn"].as_u64().unwrap();
        assert!(lsn > last_lsn, "LSNs increase");
        last_lsn = lsn;
        assert_eq!(r["len"], record_size);
        let payload = unhex(r["payload_hex"].as_str().unwrap());
        let writer = usize::try_from(u64::from_le_bytes(payload[..8].try_into().unwrap())).unwrap();
        let counter = u64::from_le_bytes(payload[8..16].try_into().unwrap());
        assert!(writer < writers, "writer id {writer}");
        assert_eq!(
            counter, next[writer],
            "writer {writer}'s records are contiguous"
        );
        next[writer] += 1;
        n += 1;
    }
    assert_eq!(
        next, acked,
        "the dump holds exactly the acknowledged records"
    );
    assert_eq!(n, records);

    let verify = wal(["verify", "--config", config.to_str().unwrap()]);
    verify.assert_ok();
}

#[test]
fn bench_on_a_standalone_config_writes_exactly_the_acknowledged_records() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "standalone.toml", "[primary]\ndir = \"wal\"\n");
    let run = wal([
        "bench",
        "--config",
        config.to_str().unwrap(),
        "--writers",
        "3",
        "--record-size",
        "40",
        "--duration",
        "0.3",
        "--log-size-max",
        "64KiB",
        "--json",
    ]);
    let s = summary(&run);
    assert!(
        run.stdout.starts_with("wal bench: standalone manager"),
        "{run:#?}"
    );
    assert_eq!(s["dir_switches"], 0);
    assert_eq!(s["sync"], false);
    assert_eq!(s["timeline"], Value::Null, "no --timeline");
    assert!(s["secs"].as_f64().unwrap() >= 0.3);
    assert!(s["p50_us"].as_f64().unwrap() <= s["max_us"].as_f64().unwrap());
    check_against_dump(&config, &s, 3, 40);
    // Rotation by size: more than one log when there was enough to write.
    if s["bytes"].as_u64().unwrap() > 2 * 65_536 {
        assert!(s["last_log"].as_u64() > s["first_log"].as_u64(), "{s}");
    }
    // A second run continues after the highest existing log.
    let again = summary(&wal([
        "bench",
        "--config",
        config.to_str().unwrap(),
        "--duration",
        "0.05",
        "--json",
    ]));
    assert_eq!(
        again["first_log"].as_u64().unwrap(),
        s["last_log"].as_u64().unwrap() + 1
    );
}

#[test]
fn bench_on_a_failover_config_with_sync_writes_exactly_the_acknowledged_records() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "failover.toml",
        "[primary]\ndir = \"p\"\n[secondary]\ndir = \"s\"\n",
    );
    let run = bench_two_writers(&config, "0.3", &["--sync", "--json"]);
    let s = summary(&run);
    assert!(
        run.stdout.starts_with("wal bench: failover manager"),
        "{run:#?}"
    );
    assert_eq!(s["sync"], true);
    assert_eq!(s["manager"], "failover");
    assert!(s["dir_switches"].is_u64());
    assert!(s["hedges"].is_u64() && s["standby_bytes"].is_u64());
    check_against_dump(&config, &s, 2, 100);
    // The manager closed cleanly: the secondary exists and nothing is locked.
    assert!(tmp.path().join("s").is_dir());
    let stats = wal(["stats", "--config", config.to_str().unwrap()]);
    stats.assert_ok();
}

#[test]
fn bench_with_clean_leaves_no_logs_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let run = wal([
        "bench",
        "--primary",
        dir.to_str().unwrap(),
        "--duration",
        "0.1",
        "--log-size-max",
        "16KiB",
        "--clean",
        "--json",
    ]);
    let s = summary(&run);
    assert_eq!(s["logs_kept"], false);
    let list = wal(["list", "--primary", dir.to_str().unwrap()]);
    list.assert_ok();
    assert!(list.stdout.starts_with("no logs in"), "{list:#?}");
    // The LSN floor keeps LSNs increasing after the logs are gone.
    let next = summary(&wal([
        "bench",
        "--primary",
        dir.to_str().unwrap(),
        "--duration",
        "0.05",
        "--json",
    ]));
    let first = wal([
        "dump",
        "--primary",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ])
    .json_lines()
    .first()
    .map(|r| r["lsn"].as_u64().unwrap());
    assert_eq!(first, Some(s["records"].as_u64().unwrap() + 1), "{next}");
}

#[test]
fn the_progress_line_is_drawn_on_a_terminal() {
    // `script` (util-linux) gives the bench a pseudo-terminal; without it
    // there is nothing to check here (the pipe case is checked by every
    // other bench test: no stderr at all).
    let script = Path::new("/usr/bin/script");
    if !script.exists() {
        eprintln!("skipped: no /usr/bin/script to provide a terminal");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let command = format!(
        "{} bench --primary {} --duration 0.6",
        env!("CARGO_BIN_EXE_wal"),
        tmp.path().join("wal").display()
    );
    let output = support::output_of(std::process::Command::new(script).args([
        "-qec",
        &command,
        "/dev/null",
    ]));
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let redraws = text.matches("\rwal bench: ").count();
    assert!(redraws >= 2, "redrawn about 4 times a second: {text:?}");
    assert!(text.contains(" / 0.6s "), "{text:?}");
    assert!(text.contains("wal bench: standalone manager"), "{text:?}");
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
