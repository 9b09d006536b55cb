//! What the crash suites check after a recovery: self-describing payloads
//! (so a record read back proves it was written), a reader of every log of a
//! manager that fails on anything but a torn tail, and the replay line a
//! failing seed prints.

use std::fmt::Write as _;
use std::path::Path;

use crate::SeededRng;
use wal_manager::reader::SegmentEnd;
use wal_manager::{Driver, Env, LogEnd, LogNum, Lsn, Manager, ManualClock};

/// The bytes of a self-describing payload's header: tag, epoch, length.
pub const PAYLOAD_HEADER: usize = 16;

/// A payload of `len` bytes (at least [`PAYLOAD_HEADER`]) that names its
/// `tag` and `epoch` and whose remaining bytes are a pure function of them,
/// so that [`parse_payload`] can tell a record the workload wrote from any
/// other bytes.
///
/// The crash suites use the LSN a record is expected to get (or a writer
/// thread and counter) as the tag, and the number of recoveries so far as
/// the epoch: an LSN is reused after a crash loses its record, and the epoch
/// tells the two records apart.
pub fn payload(tag: u64, epoch: u32, len: usize) -> Vec<u8> {
    assert!(len >= PAYLOAD_HEADER, "a payload needs its 16-byte header");
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
    let mut rng = SeededRng::new(tag ^ u64::from(epoch).rotate_left(40) ^ 0x0f1e_2d3c_4b5a_6978);
    while out.len() < len {
        let word = rng.next_u64().to_le_bytes();
        let n = word.len().min(len - out.len());
        out.extend_from_slice(&word[..n]);
    }
    out
}

/// The `(tag, epoch)` of a payload made by [`payload`], or `None` if the
/// bytes are not exactly such a payload.
pub fn parse_payload(bytes: &[u8]) -> Option<(u64, u32)> {
    let tag = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
    let epoch = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    let len = u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?);
    if len as usize != bytes.len() {
        return None;
    }
    (payload(tag, epoch, bytes.len()) == bytes).then_some((tag, epoch))
}

/// One record read back after a recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    pub log: LogNum,
    pub lsn: Lsn,
    pub payload: Vec<u8>,
}

/// Everything a recovered manager holds.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// Every record of every log, in log order then LSN order.
    pub records: Vec<ReadRecord>,
    /// The logs whose last segment ends in a torn tail.
    pub torn: Vec<(LogNum, LogEnd)>,
    /// A one-line-per-segment account of what the reader found.
    pub summary: String,
}

impl Recovered {
    /// The largest LSN read back.
    pub fn max_lsn(&self) -> Option<Lsn> {
        self.records.iter().map(|r| r.lsn).max()
    }
}

/// Reads every log `manager` lists, in log order, and checks what must hold
/// of any recovered directory whatever the workload was:
///
/// * every log reads to its end without an error: a torn tail is allowed
///   (and reported as torn), corruption and missing records are not;
/// * no segment is reported corrupt, not even a skipped one
///   (`is_corruption()` is false everywhere);
/// * LSNs increase strictly across all logs (each record exactly once).
///
/// # Errors
/// A description of the first violation, with what was read so far.
pub fn read_all(manager: &Manager) -> Result<Recovered, String> {
    let mut out = Recovered::default();
    for log in manager.list() {
        let mut reader = manager
            .open_reader(log.num)
            .map_err(|e| format!("log {}: cannot open a reader: {e}", log.num))?;
        let mut failure = None;
        loop {
            match reader.next() {
                Ok(Some(r)) => out.records.push(ReadRecord {
                    log: log.num,
                    lsn: r.lsn,
                    payload: r.payload.to_vec(),
                }),
                Ok(None) => break,
                Err(e) => {
                    failure = Some(format!(
                        "log {}: reading failed (is_corruption={}, is_torn_tail={}): {e}",
                        log.num,
                        e.is_corruption(),
                        e.is_torn_tail()
                    ));
                    break;
                }
            }
        }
        for report in reader.reports() {
            let end = match &report.end {
                SegmentEnd::Unread => "unread".to_owned(),
                SegmentEnd::Missing => "missing".to_owned(),
                SegmentEnd::Clean(e) => format!("clean at {}", e.offset()),
                SegmentEnd::TornTail(e) => format!("torn tail: {e}"),
                SegmentEnd::CorruptSkipped(e) => format!("CORRUPT (skipped): {e}"),
                SegmentEnd::Corrupt(e) => format!("CORRUPT: {e}"),
            };
            let _ = writeln!(
                out.summary,
                "  log {} {}: {} records, {} duplicates, {end}",
                log.num,
                file_name(&report.segment.path),
                report.records,
                report.duplicates
            );
            if failure.is_none()
                && matches!(
                    report.end,
                    SegmentEnd::Corrupt(_) | SegmentEnd::CorruptSkipped(_)
                )
            {
                failure = Some(format!(
                    "log {} segment {} reported corrupt: {end}",
                    log.num,
                    report.segment.path.display()
                ));
            }
        }
        if let Some(f) = failure {
            return Err(format!("{f}\nsegments read:\n{}", out.summary));
        }
        if let Some(end @ LogEnd::TornTail { .. }) = reader.end() {
            out.torn.push((log.num, end.clone()));
        }
    }
    for pair in out.records.windows(2) {
        if pair[1].lsn <= pair[0].lsn {
            return Err(format!(
                "LSNs do not increase: log {} LSN {} is followed by log {} LSN {}\nsegments read:\n{}",
                pair[0].log, pair[0].lsn, pair[1].log, pair[1].lsn, out.summary
            ));
        }
    }
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A seed from `var`, or `None` when it is unset.
///
/// # Panics
/// If the variable is set but is not a number (a mistyped replay must not
/// silently run the default seeds).
pub fn env_u64(var: &str) -> Option<u64> {
    let value = std::env::var(var).ok()?;
    let parsed = if let Some(hex) = value.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        value.parse()
    };
    Some(parsed.unwrap_or_else(|e| panic!("{var}={value:?} is not a number: {e}")))
}

/// The seed in `var` ([`env_u64`]), or a fresh one from the clock; the
/// caller prints it, so that `var` replays the run.
///
/// # Panics
/// As [`env_u64`].
pub fn seed_from_env(var: &str) -> u64 {
    env_u64(var).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    })
}

/// Runs `run(seed)` for each seed; if one panics, prints the seed and the
/// one-line command that replays it before passing the panic on.
pub fn for_each_seed(
    seeds: impl IntoIterator<Item = u64>,
    replay: impl Fn(u64) -> String,
    mut run: impl FnMut(u64),
) {
    for seed in seeds {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)));
        if let Err(panic) = result {
            eprintln!(
                "\n==> FAILED at seed {seed}; replay with:\n    {}\n",
                replay(seed)
            );
            std::panic::resume_unwind(panic);
        }
    }
}

/// The environment for reopening real directories after a run, to read
/// them back: `OsFs` on both, a manual clock and driver (no background
/// monitor or prober).
pub fn reopen_env() -> Env {
    Env {
        clock: std::sync::Arc::new(ManualClock::new()),
        driver: Driver::Manual,
        ..Env::with_fs(std::sync::Arc::new(wal_fs::OsFs::new()))
    }
}
