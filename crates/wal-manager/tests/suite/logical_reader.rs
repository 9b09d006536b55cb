//! The logical reader's decision table (`wal_manager::reader::READER_RULES`)
//! walked row by row, over segments built by hand in both directories.

use std::path::Path;
use std::sync::Arc;

use wal_fs::{Fs, MemFs};
use wal_manager::layout::{Dirs, scan};
use wal_manager::reader::SegmentEnd;
use wal_manager::reader::{READER_RULES, ReaderAction};
use wal_manager::{Config, Error, LogEnd, LogNum, LogicalLog, LogicalReader, Sequencing};
use wal_testkit::segments::{Rec, batch, segment};

const P: &str = "/p";
const S: &str = "/s";

fn dirs(mem: &MemFs) -> Dirs {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    Dirs::from_config(&Config::failover(P, S), &fs)
}

/// Writes segment files: (directory, file name, bytes).
fn setup(files: &[(&str, &str, Vec<u8>)]) -> (MemFs, LogicalLog) {
    let mem = MemFs::new();
    mem.create_dir_all(Path::new(P)).unwrap();
    mem.create_dir_all(Path::new(S)).unwrap();
    for (dir, name, bytes) in files {
        mem.write_file(&Path::new(dir).join(name), bytes).unwrap();
    }
    let logs = scan(&dirs(&mem)).unwrap();
    assert_eq!(logs.len(), 1);
    (mem, logs.into_iter().next().unwrap())
}

struct Outcome {
    lsns: Vec<u64>,
    result: Result<Option<LogEnd>, Error>,
    ends: Vec<SegmentEnd>,
    duplicates: Vec<u64>,
    log_data: Vec<u64>,
}

fn read(mem: &MemFs, log: &LogicalLog) -> Outcome {
    read_with(LogicalReader::new(log, dirs(mem)))
}

fn read_pebble(mem: &MemFs, log: &LogicalLog) -> Outcome {
    read_with(LogicalReader::new(log, dirs(mem)).with_sequencing(Sequencing::PebbleBatch))
}

fn read_with(mut r: LogicalReader) -> Outcome {
    let mut lsns = Vec::new();
    let result = loop {
        match r.next() {
            Ok(Some(rec)) => lsns.push(rec.lsn.0),
            Ok(None) => break Ok(r.end().cloned()),
            Err(e) => break Err(e),
        }
    };
    Outcome {
        lsns,
        result,
        ends: r.reports().iter().map(|s| s.end.clone()).collect(),
        duplicates: r.reports().iter().map(|s| s.duplicates).collect(),
        log_data: r.reports().iter().map(|s| s.log_data).collect(),
    }
}

const X: &[u8] = b"payload";

fn recs(lsns: std::ops::RangeInclusive<u64>) -> Vec<Rec<'static>> {
    lsns.map(|l| Rec::Lsn(l, X, false)).collect()
}

/// A multi-block segment whose records are synced one by one, so that
/// chunks in later blocks prove the early ones were durable.
fn synced_multiblock(first: u64) -> Vec<u8> {
    let big = vec![7u8; 9000];
    let records: Vec<Rec<'_>> = (0..12).map(|i| Rec::Lsn(first + i, &big, true)).collect();
    segment(1, &records, true)
}

#[test]
// One arm per row of the table: the table is the structure.
#[allow(clippy::too_many_lines)]
fn every_row_of_the_reader_rules_holds() {
    for (row, rule) in READER_RULES.iter().enumerate() {
        let what = format!("row {}: {}", row + 1, rule.situation);
        match row {
            // 1, 2, 4: duplicates dropped, next LSNs returned, clean ends
            // lead on to the next segment.
            0 | 1 | 3 => {
                let (mem, log) = setup(&[
                    (P, "000001.log", segment(1, &recs(1..=3), true)),
                    (S, "000001-001.log", segment(1, &recs(2..=5), true)),
                ]);
                let o = read(&mem, &log);
                assert_eq!(o.lsns, vec![1, 2, 3, 4, 5], "{what}");
                assert_eq!(o.duplicates, vec![0, 2], "{what}");
                assert!(matches!(o.ends[0], SegmentEnd::Clean(_)), "{what}");
                assert_eq!(o.result.unwrap(), Some(LogEnd::Clean), "{what}");
            }
            // 3: a gap between segments is an error.
            2 => {
                let (mem, log) = setup(&[
                    (P, "000001.log", segment(1, &recs(1..=2), true)),
                    (S, "000001-001.log", segment(1, &recs(4..=5), true)),
                ]);
                let o = read(&mem, &log);
                assert_eq!(o.lsns, vec![1, 2], "{what}");
                let e = o.result.unwrap_err();
                assert!(matches!(e, Error::MissingRecords { .. }), "{what}: {e}");
                assert!(e.is_corruption());
            }
            // 5: a torn non-last segment ends; the next one continues.
            4 => {
                let mut first = segment(1, &recs(1..=3), false);
                first.truncate(first.len() - 5);
                let (mem, log) = setup(&[
                    (P, "000001.log", first),
                    (S, "000001-001.log", segment(1, &recs(3..=4), true)),
                ]);
                let o = read(&mem, &log);
                assert_eq!(o.lsns, vec![1, 2, 3, 4], "{what}");
                assert!(matches!(o.ends[0], SegmentEnd::TornTail(_)), "{what}");
                // And proven corruption in a non-last segment is skipped too.
                let mut first = synced_multiblock(1);
                first[40] ^= 1;
                let (mem, log) = setup(&[
                    (P, "000001.log", first),
                    (S, "000001-001.log", segment(1, &recs(1..=13), true)),
                ]);
                let o = read(&mem, &log);
                assert_eq!(o.lsns, (1..=13).collect::<Vec<_>>(), "{what}");
                assert!(matches!(o.ends[0], SegmentEnd::CorruptSkipped(_)), "{what}");
            }
            // 6: a torn last segment ends the log quietly.
            5 => {
                let mut last = segment(1, &recs(3..=5), false);
                last.truncate(last.len() - 3);
                let (mem, log) = setup(&[
                    (P, "000001.log", segment(1, &recs(1..=3), true)),
                    (S, "000001-001.log", last),
                ]);
                let o = read(&mem, &log);
                assert_eq!(o.lsns, vec![1, 2, 3, 4], "{what}");
                assert!(
                    matches!(o.result, Ok(Some(LogEnd::TornTail { .. }))),
                    "{what}"
                );
            }
            // 7: proven corruption in the last segment fails the read.
            6 => {
                let mut last = synced_multiblock(1);
                last[40] ^= 1;
                let (mem, log) = setup(&[(P, "000001.log", last)]);
                let o = read(&mem, &log);
                let e = o.result.unwrap_err();
                assert!(e.is_corruption(), "{what}: {e}");
                assert!(matches!(o.ends[0], SegmentEnd::Corrupt(_)), "{what}");
            }
            // 8: a record too short for its LSN.
            7 => {
                let (mem, log) = setup(&[(P, "000001.log", segment(1, &[Rec::Raw(b"abc")], true))]);
                let e = read(&mem, &log).result.unwrap_err();
                assert!(
                    matches!(e, Error::BadEnvelope { len: 3, .. }),
                    "{what}: {e}"
                );
            }
            // 9: a listed segment whose file is missing is skipped.
            8 => {
                let (mem, mut log) = setup(&[
                    (P, "000001.log", segment(1, &recs(1..=2), true)),
                    (P, "000001-002.log", segment(1, &recs(2..=3), true)),
                ]);
                log.segments.insert(
                    1,
                    wal_manager::Segment {
                        index: wal_manager::SegmentIndex(1),
                        dir: wal_manager::DirId::Secondary,
                        path: Path::new(S).join("000001-001.log"),
                        size: 0,
                    },
                );
                let o = read(&mem, &log);
                assert_eq!(o.lsns, vec![1, 2, 3], "{what}");
                assert!(matches!(o.ends[1], SegmentEnd::Missing), "{what}");
            }
            // 10, 11, 12: LogData batches and duplicates dropped, batches
            // above the last returned even when sequence numbers skip.
            9..=11 => {
                let (b1, b2, ld, b3) = (
                    batch(10, 29, 40),
                    batch(39, 4, 10),
                    batch(43, 0, 5),
                    batch(43, 1, 7),
                );
                let (mem, log) = setup(&[
                    (
                        P,
                        "000001.log",
                        segment(1, &[Rec::Raw(&b1), Rec::Raw(&b2), Rec::Raw(&ld)], true),
                    ),
                    (
                        S,
                        "000001-001.log",
                        segment(1, &[Rec::Raw(&b2), Rec::Raw(&ld), Rec::Raw(&b3)], true),
                    ),
                ]);
                let o = read_pebble(&mem, &log);
                assert_eq!(o.lsns, vec![10, 39, 43], "{what}");
                assert_eq!(o.duplicates, vec![0, 1], "{what}");
                assert_eq!(o.log_data, vec![1, 1], "{what}");
                assert_eq!(o.result.unwrap(), Some(LogEnd::Clean), "{what}");
            }
            // 13: a record too short for a batch header.
            12 => {
                let short = batch(5, 1, 0);
                let (mem, log) =
                    setup(&[(P, "000001.log", segment(1, &[Rec::Raw(&short[..11])], true))]);
                let e = read_pebble(&mem, &log).result.unwrap_err();
                assert!(matches!(e, Error::BadBatch { len: 11, .. }), "{what}: {e}");
                assert!(e.is_corruption(), "{what}");
            }
            // 14: a strict tail: the same torn log that row 6 ends quietly.
            13 => {
                let mut last = segment(1, &recs(1..=3), false);
                last.truncate(last.len() - 3);
                let (mem, log) = setup(&[(P, "000001.log", last)]);
                let mut r = LogicalReader::new(&log, dirs(&mem)).strict_tail(true);
                assert_eq!(r.next().unwrap().map(|r| r.lsn.0), Some(1));
                assert_eq!(r.next().unwrap().map(|r| r.lsn.0), Some(2));
                let e = r.next().unwrap_err();
                assert!(matches!(e, Error::TornOlderLog { .. }), "{what}: {e}");
                assert!(
                    e.is_corruption() && e.to_string().contains("a newer log exists"),
                    "{e}"
                );
            }
            _ => panic!("no scenario for {what}: add one"),
        }
        // Keep the table and its actions honest.
        let expected = match row {
            0 | 9 | 10 => ReaderAction::Drop,
            1 | 11 => ReaderAction::Return,
            3 | 4 | 8 => ReaderAction::NextSegment,
            5 => ReaderAction::EndOfLog,
            _ => ReaderAction::Fail,
        };
        assert_eq!(rule.action, expected, "{what}");
    }
}

#[test]
fn a_log_may_start_at_any_lsn_and_skip_indexes() {
    // A failed create uses up an index: segments 0 and 2 only.
    let (mem, log) = setup(&[
        (P, "000001.log", segment(1, &recs(100..=101), true)),
        (P, "000001-002.log", segment(1, &recs(101..=103), true)),
    ]);
    let o = read(&mem, &log);
    assert_eq!(o.lsns, vec![100, 101, 102, 103]);
}

#[test]
fn the_same_segment_in_both_directories_is_refused() {
    let mem = MemFs::new();
    for d in [P, S] {
        mem.create_dir_all(Path::new(d)).unwrap();
        mem.write_file(
            &Path::new(d).join("000001-001.log"),
            &segment(1, &recs(1..=1), true),
        )
        .unwrap();
    }
    let e = scan(&dirs(&mem)).unwrap_err();
    assert!(
        matches!(e, Error::DuplicateSegment { log: LogNum(1), .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("/p/000001-001.log") && msg.contains("/s/000001-001.log"),
        "{msg}"
    );
}
