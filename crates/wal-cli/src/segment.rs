//! Reading one segment file on its own, with `wal_record::LogReader`: for
//! segments the logical reader did not reach (it stops at the first error of
//! a log), so that `verify` can still say what each one holds.

use wal_fs::Fs;
use wal_manager::layout::decode_envelope;
use wal_manager::{LogNum, Lsn, Segment, Sequencing, decode_batch_header};
use wal_record::{End, LogReader};

/// How a segment read on its own ends.
#[derive(Debug)]
pub(crate) enum AloneEnd {
    /// A clean end.
    Clean(End),
    /// A torn tail, a corruption, an over-long record or a read error.
    Bad(wal_record::Error),
    /// A record too short for its LSN prefix (or batch header), at this
    /// offset.
    NoLsn(u64),
    /// The file could not be opened.
    Unopenable(wal_fs::Error),
}

/// What a segment holds when read on its own (no dedup against other
/// segments).
#[derive(Debug)]
pub(crate) struct AloneReport {
    /// Records read before the end.
    pub(crate) records: u64,
    /// LSNs of the first and the last of them.
    pub(crate) lsns: Option<(Lsn, Lsn)>,
    /// How it ends.
    pub(crate) end: AloneEnd,
}

/// Reads `segment` of log `log` to its end on its own.
pub(crate) fn check_alone(
    fs: &dyn Fs,
    log: LogNum,
    segment: &Segment,
    sequencing: Sequencing,
) -> AloneReport {
    let mut report = AloneReport {
        records: 0,
        lsns: None,
        end: AloneEnd::Clean(End::Boundary { offset: 0 }),
    };
    let file = match fs.open(&segment.path) {
        Ok(f) => f,
        Err(e) => {
            report.end = AloneEnd::Unopenable(e);
            return report;
        }
    };
    let mut reader = LogReader::new(wal_fs::FileReader::new(file), log.header_bits());
    loop {
        match reader.next_record() {
            Ok(Some(record)) => {
                let lsn = match sequencing {
                    Sequencing::Lsn => decode_envelope(record.payload).map(|(lsn, _, _)| lsn),
                    Sequencing::PebbleBatch => {
                        decode_batch_header(record.payload).map(|h| Lsn(h.seq))
                    }
                };
                let Some(lsn) = lsn else {
                    report.end = AloneEnd::NoLsn(record.offset);
                    return report;
                };
                report.records += 1;
                report.lsns = Some(report.lsns.map_or((lsn, lsn), |(first, _)| (first, lsn)));
            }
            Ok(None) => {
                if let Some(end) = reader.end() {
                    report.end = AloneEnd::Clean(end);
                }
                return report;
            }
            Err(e) => {
                report.end = AloneEnd::Bad(e);
                return report;
            }
        }
    }
}
