//! `wal verify` and `wal repair` over hand-damaged copies of logs written by
//! the library: a torn tail, proven corruption, and damage in a failover
//! segment that the next segment does or does not cover.

mod support;

use std::path::Path;

use support::{
    flip_byte, snapshot, wal_on, write_failover_with_duplicates, write_synced_multi_block_log,
};

/// Offset of the record with `lsn`, from `wal dump --format json`.
fn record_offset(primary: &Path, secondary: Option<&Path>, lsn: u64) -> u64 {
    wal_on("dump", primary, secondary, &["--format", "json"])
        .json_lines()
        .iter()
        .find(|r| r["lsn"] == lsn)
        .and_then(|r| r["offset"].as_u64())
        .expect("the record is in the dump")
}

#[test]
fn torn_tail_in_last_segment_is_readable_and_repair_cuts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let path = write_synced_multi_block_log(&dir);
    let last_record = record_offset(&dir, None, 12);
    let len = std::fs::metadata(&path).unwrap().len();
    // Cut the trailer and half of the last record: a crash mid-write.
    let cut = len - 11 - 4000;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let before = snapshot(&[&dir]);
    let run = wal_on("verify", &dir, None, &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!(
            "11 records, 0 duplicates: torn tail at offset {last_record}: file ends inside a record"
        )),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("tolerated at the end of a log"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("ends with a torn tail"), "{run:#?}");
    let dump = wal_on("dump", &dir, None, &["--format", "json"]);
    dump.assert_ok();
    assert_eq!(dump.json_lines().len(), 11);
    assert!(
        dump.stderr
            .contains("wal: note: log 000001 ends with a torn tail")
    );
    assert_eq!(snapshot(&[&dir]), before, "verify and dump changed nothing");

    // A dry run says what it would cut and cuts nothing.
    let dry = wal_on("repair", &dir, None, &["--dry-run"]);
    dry.assert_ok();
    assert!(dry.stdout.contains("would cut a torn tail"), "{dry:#?}");
    assert_eq!(std::fs::read(&path).unwrap(), before[&path]);

    let run = wal_on("repair", &dir, None, &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!(
            "cut a torn tail of {} bytes (file ends inside a record at offset {last_record}): {cut} -> {last_record} bytes",
            cut - last_record
        )),
        "{run:#?}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), last_record);

    let run = wal_on("verify", &dir, None, &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains("11 records, 0 duplicates: clean end"),
        "{run:#?}"
    );
    let again = wal_on("repair", &dir, None, &[]);
    again.assert_ok();
    assert!(
        again.stdout.contains("ends cleanly, nothing to do"),
        "{again:#?}"
    );
}

#[test]
fn proven_corruption_fails_verify_and_repair_refuses_it_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let path = write_synced_multi_block_log(&dir);
    // A byte in the payload of the first record, which later chunks prove
    // had been synced.
    flip_byte(&path, 100);

    let before = snapshot(&[&dir]);
    let run = wal_on("verify", &dir, None, &[]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(
        run.stdout.contains(
            "0 records, 0 duplicates: CORRUPTION: corruption at offset 0: checksum mismatch"
        ),
        "{run:#?}"
    );
    assert!(run.stdout.contains("=> CORRUPT: "), "{run:#?}");
    run.assert_error(1, &["1 of 1 logs are corrupt"]);
    let dump = wal_on("dump", &dir, None, &[]);
    dump.assert_error(1, &["corruption at offset 0"]);
    assert_eq!(snapshot(&[&dir]), before, "verify and dump changed nothing");

    let run = wal_on("repair", &dir, None, &[]);
    run.assert_error(1, &["proven corruption was left in place"]);
    assert!(
        run.stdout
            .contains("REFUSED: proven corruption at offset 0"),
        "{run:#?}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before[&path],
        "file unchanged"
    );

    let run = wal_on("repair", &dir, None, &["--force"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("cut proven corruption (forced"),
        "{run:#?}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    let run = wal_on("verify", &dir, None, &[]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("0 records, 0 duplicates: clean end at 0"),
        "{run:#?}"
    );
}

#[test]
fn stats_refuses_to_open_a_manager_whose_newest_log_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let path = write_synced_multi_block_log(&dir);
    flip_byte(&path, 100);
    let run = wal_on("stats", &dir, None, &[]);
    run.assert_error(1, &["corruption at offset 0"]);
}

#[test]
fn torn_non_last_segment_covered_by_the_next_is_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("p"), tmp.path().join("s"));
    write_failover_with_duplicates(&p, &s);
    // Record 4 was written to the primary while its sync was stalled and
    // replayed into the secondary: nothing proves it synced, and the
    // secondary holds it.
    let offset = record_offset(&p, Some(&s), 4);
    flip_byte(&p.join("000001.log"), offset + 2);

    let before = snapshot(&[&p, &s]);
    let run = wal_on("verify", &p, Some(&s), &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!(
            "000001.log: 3 records, 0 duplicates: torn (skipped): torn tail at offset {offset}"
        )),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("readable: the records after it are in the next segment"),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("000001-001.log: 3 records, 0 duplicates"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("=> readable: 6 records, LSN 1..=6"),
        "{run:#?}"
    );
    let lsns: Vec<u64> = wal_on("dump", &p, Some(&s), &["--format", "json"])
        .json_lines()
        .iter()
        .map(|r| r["lsn"].as_u64().unwrap())
        .collect();
    assert_eq!(lsns, (1..=9).collect::<Vec<_>>());
    assert_eq!(snapshot(&[&p, &s]), before);
}

#[test]
fn damage_to_records_only_a_non_last_segment_held_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, s) = (tmp.path().join("p"), tmp.path().join("s"));
    write_failover_with_duplicates(&p, &s);
    // Record 2 was synced on the primary only and the secondary does not
    // hold it. (Within one block nothing proves the damage synced, so the
    // segment reads as torn; the gap in LSNs is what makes it corruption.)
    let offset = record_offset(&p, Some(&s), 2);
    flip_byte(&p.join("000001.log"), offset + 2);

    let before = snapshot(&[&p, &s]);
    let run = wal_on("verify", &p, Some(&s), &[]);
    run.assert_error(1, &["1 of 2 logs are corrupt"]);
    assert!(
        run.stdout.contains(&format!(
            "000001.log: 1 record, 0 duplicates: torn (skipped): torn tail at offset {offset}"
        )),
        "{run:#?}"
    );
    // The secondary segment was opened but the read stopped at its first
    // record; it still gets a line, from reading it on its own.
    assert!(
        run.stdout.contains(
            "000001-001.log: 0 records, 0 duplicates before the read stopped here; read alone: 3 records (LSN 4..=6), clean end"
        ),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("=> CORRUPT: log 000001: records after LSN 1 are missing"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("log 000002: 3 segments"), "{run:#?}");
    assert_eq!(snapshot(&[&p, &s]), before);
}
