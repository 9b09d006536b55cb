//! The `wal` command on logs the way Pebble's engine writes them
//! (`--sequencing pebble-batch`, or `[log] sequencing` in the
//! configuration), and strict tails for every log but the newest in both
//! modes: the contract of `dump` and `verify`.

mod support;

use std::path::Path;

use support::{no_forks, wal, wal_on, write_config};
use wal_manager::{Config, LogNum, Manager, Sequencing};
use wal_testkit::segments::batch;

const PEBBLE: [&str; 2] = ["--sequencing", "pebble-batch"];

/// Writes one log per entry of `logs` in `dir` (pebble-batch), each batch
/// appended with `append_sync`, each log closed.
fn write_batches(dir: &Path, logs: &[&[Vec<u8>]]) {
    let _no_forks = no_forks();
    let mut config = Config::standalone(dir);
    config.log.sequencing = Sequencing::PebbleBatch;
    let m = Manager::open(&config).unwrap();
    for (i, batches) in logs.iter().enumerate() {
        let w = m.create(LogNum(i as u64 + 1)).unwrap();
        for b in *batches {
            w.append_sync(b).unwrap();
        }
        w.close().unwrap();
    }
    m.close().unwrap();
}

#[test]
fn dump_prints_one_json_line_per_batch_with_its_sequence_number_and_count() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let (a, b) = (batch(10, 29, 40), batch(39, 4, 8));
    write_batches(&dir, &[&[a.clone(), b]]);
    let run = wal_on(
        "dump",
        &dir,
        None,
        &[&PEBBLE[..], &["--format", "json"]].concat(),
    );
    run.assert_ok();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 2, "both batches: {}", run.stdout);
    for (line, (seq, count)) in lines.iter().zip([(10, 29), (39, 4)]) {
        for key in [
            "log",
            "seq",
            "count",
            "segment",
            "offset",
            "len",
            "payload_hex",
        ] {
            assert!(line.get(key).is_some(), "{key} in {line}");
        }
        assert_eq!(
            (line["seq"].as_u64(), line["count"].as_u64()),
            (Some(seq), Some(count))
        );
    }
    assert_eq!(lines[0]["len"].as_u64(), Some(a.len() as u64));
    assert_eq!(lines[0]["offset"].as_u64(), Some(0));
    wal_on("verify", &dir, None, &PEBBLE).assert_ok();
    // Read as LSN-sequenced records, the same log is nonsense: the first
    // eight bytes of each batch are taken for an LSN.
    let run = wal_on("verify", &dir, None, &[]);
    run.assert_error(1, &["1 of 1 logs are corrupt"]);
}

#[test]
fn the_configuration_key_selects_pebble_batch_and_a_bad_mode_names_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    write_batches(&dir, &[&[batch(7, 1, 3)]]);
    let config = write_config(
        tmp.path(),
        "pebble.toml",
        "[primary]\ndir = \"wal\"\n[log]\nsequencing = \"pebble-batch\"\n",
    );
    let run = wal(["dump", "--config", config.to_str().unwrap()]);
    run.assert_ok();
    assert!(
        run.stdout.contains("log 000001 seq 7 count 1"),
        "{}",
        run.stdout
    );
    let bad = write_config(
        tmp.path(),
        "bad.toml",
        "[primary]\ndir = \"wal\"\n[log]\nsequencing = \"rocks\"\n",
    );
    wal(["dump", "--config", bad.to_str().unwrap()])
        .assert_error(2, &["log.sequencing = \"rocks\"", "unknown variant"]);
    wal_on("dump", &dir, None, &["--sequencing", "rocks"])
        .assert_error(2, &["unknown sequencing \"rocks\""]);
}

#[test]
fn a_record_too_short_for_a_batch_header_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    // Written as an LSN record of 2 bytes: 10 stored bytes, too short for
    // a 12-byte batch header.
    {
        let _no_forks = no_forks();
        let m = Manager::open(&Config::standalone(&dir)).unwrap();
        let w = m.create(LogNum(1)).unwrap();
        w.append_sync(b"ab").unwrap();
        w.close().unwrap();
        drop(w);
        m.close().unwrap();
    }
    let run = wal_on("verify", &dir, None, &PEBBLE);
    run.assert_error(1, &["1 of 1 logs are corrupt"]);
    assert!(
        run.stdout.contains("too short for a Pebble batch header"),
        "{}",
        run.stdout
    );
    wal_on("dump", &dir, None, &PEBBLE).assert_error(1, &[]);
}

#[test]
fn an_older_log_cut_inside_a_record_fails_verify_and_dump_naming_the_log_and_offset() {
    // Strict tails in both modes: log 1 is cut inside its third record;
    // log 2 (the newest) is clean. The old `wal verify` said "all readable".
    for pebble in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let extra: &[&str] = if pebble { &PEBBLE } else { &[] };
        let record = if pebble {
            let b: Vec<Vec<u8>> = (0..5).map(|i| batch(100 + i, 1, 40)).collect();
            write_batches(&dir, &[&b, &[batch(200, 1, 40)]]);
            19 + 52
        } else {
            support::write_standalone(&dir, 2, 5, 44);
            19 + 52
        };
        let cut = 2 * record + 10;
        let log1 = dir.join("000001.log");
        let f = std::fs::OpenOptions::new().write(true).open(&log1).unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let run = wal_on("verify", &dir, None, extra);
        run.assert_error(1, &["1 of 2 logs"]);
        let at = format!("log 000001 ends cut short at offset {}", 2 * record);
        assert!(run.stdout.contains(&at), "pebble {pebble}: {}", run.stdout);
        wal_on("dump", &dir, None, extra).assert_error(1, &[&at]);
        // `wal repair` cuts it to the last whole record; then it reads.
        wal_on("repair", &dir, None, extra).assert_ok();
        wal_on("verify", &dir, None, extra).assert_ok();
    }
}

#[test]
fn a_batch_over_64_mib_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    {
        let _no_forks = no_forks();
        let mut config = Config::standalone(&dir);
        config.log.sequencing = Sequencing::PebbleBatch;
        config.writer.record_size_max = wal_manager::HumanSize(96 << 20);
        let m = Manager::open(&config).unwrap();
        let w = m.create(LogNum(1)).unwrap();
        w.append_sync(&batch(1, 1, 65 << 20)).unwrap();
        w.close().unwrap();
        drop(w);
        m.close().unwrap();
    }
    let run = wal_on("verify", &dir, None, &PEBBLE);
    run.assert_ok();
    assert!(run.stdout.contains("1 records"), "{}", run.stdout);
}
