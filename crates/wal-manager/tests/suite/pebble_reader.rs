//! Pebble's own reader scenarios (`wal/testdata/reader` in Pebble), ported
//! as a data-driven script in `pebble-batch` mode:
//! `crates/wal-manager/tests/testdata/pebble/reader.txt`. Segments are laid
//! out as Pebble writes them: its recyclable chunk format (11-byte headers,
//! so record offsets match Pebble's), real batch headers (sequence number,
//! count), LogData batches of count 0, recycled files with an old log's
//! tail, unclean closes without a trailer, garbage and corrupted tails.
//!
//! Commands:
//! * `define logNum=N [logNameIndex=I] [recycleFilename=F] [close-unclean]`
//!   with input lines `batch [count=C] [seq=S] size=Z [sync]` (a record of
//!   `Z` bytes; without `count` and `seq` a raw record, too short for a
//!   header if under 12 bytes), `write-garbage size=Z`, `corrupt-tail
//!   len=L`: writes the segment; prints each batch's offsets as Pebble does.
//! * `read logNum=N [forceLogNameIndexes=(I)] [strict]`: reads the log with
//!   the logical reader, as Pebble's `NextRecord` would; `strict` holds it
//!   to a clean end, as every log but the newest is held.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use wal_fs::{Fs, MemFs};
use wal_manager::layout::{Dirs, scan};
use wal_manager::{
    Config, DirId, LogEnd, LogNum, LogicalReader, Segment, SegmentIndex, Sequencing,
};
use wal_record::{LogWriter, LogWriterOptions, WireFormat};
use wal_testkit::datadriven::{Command, run_file};
use wal_testkit::segments::SharedBuf;

const DIR: &str = "/wal";

struct Harness {
    mem: MemFs,
}

impl Harness {
    fn dirs(&self) -> Dirs {
        let fs: Arc<dyn Fs> = Arc::new(self.mem.clone());
        Dirs::from_config(&Config::standalone(DIR), &fs)
    }

    fn run(&mut self, cmd: &Command) -> String {
        match cmd.name.as_str() {
            "define" => self.define(cmd),
            "read" => self.read(cmd),
            other => panic!("line {}: unknown command {other}", cmd.line),
        }
    }

    fn define(&mut self, cmd: &Command) -> String {
        let log = cmd.num("logNum", 0);
        let index = cmd.num("logNameIndex", 0);
        let name = wal_manager::layout::segment_file_name(LogNum(log), SegmentIndex(index as u32));
        let path = Path::new(DIR).join(&name);
        let buf = SharedBuf(Arc::new(Mutex::new(Vec::new())));
        let w = LogWriter::new(
            buf.clone(),
            LogWriterOptions {
                log_num: log as u32,
                format: WireFormat::Recyclable,
                ..LogWriterOptions::default()
            },
        )
        .unwrap();
        let mut out = String::new();
        let mut tail: Vec<(String, usize)> = Vec::new();
        for line in &cmd.input {
            let mut words = line.split_whitespace();
            let what = words.next().unwrap_or_default();
            let arg = |key: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{key}=")))
                    .map(|v| v.parse::<u64>().unwrap())
            };
            match what {
                "batch" => {
                    let size = arg("size").expect("batch size=") as usize;
                    let (seq, count) = (arg("seq"), arg("count"));
                    let record = match seq {
                        Some(seq) => {
                            let count = count.unwrap_or(0) as u32;
                            let mut b = seq.to_le_bytes().to_vec();
                            b.extend_from_slice(&count.to_le_bytes());
                            b.resize(size.max(12), (seq % 251) as u8);
                            b
                        }
                        None => vec![0xab; size],
                    };
                    let a = w.append(&[&record]).unwrap();
                    if line.split_whitespace().any(|w| w == "sync") {
                        w.sync().unwrap();
                    }
                    {
                        let _ =
                            writeln!(out, "{}..{}: batch #{}", a.offset, a.end, seq.unwrap_or(0));
                    };
                }
                "write-garbage" | "corrupt-tail" => {
                    let n = arg(if what == "write-garbage" {
                        "size"
                    } else {
                        "len"
                    })
                    .unwrap();
                    tail.push((what.to_owned(), n as usize));
                }
                other => panic!("line {}: unknown define line {other}", cmd.line),
            }
        }
        if cmd.has("close-unclean") || cmd.has("unclean-close") {
            w.flush().unwrap();
            drop(w);
        } else {
            w.close().unwrap();
        }
        let mut bytes = buf.0.lock().clone();
        damage(&mut bytes, &tail, &mut out);
        let created = match cmd.get("recycleFilename") {
            Some(old) => {
                // Reused without truncation: the old log's bytes past the
                // new ones stay, as a recycled file's do.
                let old_path = Path::new(DIR).join(old);
                let mut file = self.mem.read_file(&old_path).unwrap();
                if file.len() < bytes.len() {
                    file.resize(bytes.len(), 0);
                }
                file[..bytes.len()].copy_from_slice(&bytes);
                self.mem.remove(&old_path).unwrap();
                bytes = file;
                format!("recycled \"{old}\" as \"{name}\"\n")
            }
            None => format!("created \"{name}\"\n"),
        };
        self.mem.write_file(&path, &bytes).unwrap();
        created + &out
    }

    fn read(&mut self, cmd: &Command) -> String {
        let num = LogNum(cmd.num("logNum", 0));
        let Some(mut log) = scan(&self.dirs())
            .unwrap()
            .into_iter()
            .find(|l| l.num == num)
        else {
            return format!("log with logNum {} not found\n", num.0);
        };
        if let Some(forced) = cmd.get("forceLogNameIndexes") {
            for i in forced.trim_matches(|c| c == '(' || c == ')').split(',') {
                let index = SegmentIndex(i.parse().unwrap());
                log.segments.push(Segment {
                    index,
                    dir: DirId::Primary,
                    path: Path::new(DIR).join(wal_manager::layout::segment_file_name(num, index)),
                    size: 0,
                });
            }
        }
        let mut r = LogicalReader::new(&log, self.dirs())
            .with_sequencing(Sequencing::PebbleBatch)
            .strict_tail(cmd.has("strict"));
        let mut out = String::new();
        let file = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        loop {
            match r.next() {
                Ok(Some(rec)) => {
                    let h = rec.batch.expect("a batch header");
                    {
                        let _ = writeln!(
                            out,
                            "({}: {}) seq={} count={} len={}",
                            file(&rec.segment.path),
                            rec.offset,
                            h.seq,
                            h.count,
                            rec.payload.len()
                        );
                    };
                }
                Ok(None) => {
                    match r.end() {
                        Some(LogEnd::TornTail { path, offset }) => {
                            let _ = writeln!(
                                out,
                                "end: torn tail at ({}: {offset}) (Pebble: unexpected EOF; tolerated in the newest log)",
                                file(path)
                            );
                        }
                        _ => out.push_str("end: EOF\n"),
                    }
                    break;
                }
                Err(e) => {
                    {
                        let _ = writeln!(out, "error: {e}");
                    };
                    break;
                }
            }
        }
        for report in r.reports() {
            if report.duplicates > 0 || report.log_data > 0 {
                {
                    let _ = writeln!(
                        out,
                        "  {}: {} duplicate(s), {} LogData batch(es) skipped",
                        file(&report.segment.path),
                        report.duplicates,
                        report.log_data
                    );
                };
            }
        }
        out
    }
}

/// Appends garbage to `bytes` or overwrites their end with it, as `tail`
/// says, noting each in `out` as Pebble's test does.
fn damage(bytes: &mut Vec<u8>, tail: &[(String, usize)], out: &mut String) {
    for (what, n) in tail {
        let n = *n;
        let garbage: Vec<u8> = (0..n)
            .map(|i| (i as u8).wrapping_mul(151).wrapping_add(13))
            .collect();
        let start = bytes.len();
        if what == "write-garbage" {
            bytes.extend_from_slice(&garbage);
            let _ = writeln!(out, "{start}..{}: write-garbage", start + n);
        } else {
            let from = start - n;
            bytes[from..].copy_from_slice(&garbage);
            let _ = writeln!(out, "{from}..{start}: corrupt-tail");
        }
    }
}

#[test]
fn pebbles_reader_scenarios_give_pebbles_answers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/pebble/reader.txt");
    let mem = MemFs::new();
    mem.create_dir_all(Path::new(DIR)).unwrap();
    let mut h = Harness { mem };
    run_file(&path, |cmd| h.run(cmd));
}
