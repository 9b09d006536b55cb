//! The logical-log reader: stitches a log back together from its segments in
//! both directories and drops the duplicates a switch creates.
//!
//! # Rules (the reader's decision table)
//!
//! Segments are read in index order. For each record, with `last` the LSN of
//! the last record returned (rows 1-3 and 8 are the `lsn` sequencing's; in
//! `pebble-batch` mode rows 10-13 take their place, with `last` the last
//! batch's sequence number):
//!
//! | # | situation | action |
//! |---|---|---|
//! | 1 | record with LSN <= `last` | drop it (a duplicate replayed after a switch) |
//! | 2 | record with LSN = `last` + 1, or the log's first record | return it |
//! | 3 | record with LSN > `last` + 1 | error: records are missing (durable data was lost) |
//! | 4 | segment ends cleanly (trailer or record boundary) | go on with the next segment |
//! | 5 | torn tail or corruption in a segment that is not the last | end that segment; go on with the next |
//! | 6 | torn tail in the last segment | the log ends (reported by [`LogicalReader::end`]) |
//! | 7 | corruption in the last segment | error |
//! | 8 | record shorter than its 8-byte LSN | error |
//! | 9 | a listed segment's file does not exist | go on with the next segment |
//! | 10 | `pebble-batch`: a batch of LogData only (count 0) | drop it (it repeats the next batch's sequence number) |
//! | 11 | `pebble-batch`: a batch with sequence number <= `last` | drop it (a duplicate) |
//! | 12 | `pebble-batch`: a batch with sequence number > `last` (they may skip) | return it |
//! | 13 | `pebble-batch`: a record shorter than a batch header (12 bytes) | error |
//! | 14 | torn tail in the last segment of a log that is not the newest (strict tail) | error |
//!
//! Row 5 is safe because the failover writer replays every record not yet
//! durable into the next segment: whatever a damaged non-last segment lost
//! is either in a later segment or, if it had been acknowledged from this
//! segment, reported by row 3. (Pebble ends such a segment silently and
//! cannot tell; the LSN makes the loss visible.) Each segment gets its own
//! record reader, so a record cut short in one segment can never leak into
//! the next (Pebble #3865). Row 9: a segment is listed from the moment a
//! switch reserves it, so that its file can always be deleted (Pebble
//! #5355); a switch superseded before its file was created never received a
//! record, so its file may be missing or appear late. A file that held
//! records and was lost shows up as row 3 (unless it was the last). Rows
//! 10-12 are Pebble's reader's: sequence numbers of a Pebble WAL may skip
//! (an ingestion uses some without writing a batch), so in that mode a gap
//! is no error, and a loss in a damaged non-last segment cannot be told from
//! one. Row 14 is Pebble's too: every log but the newest was closed (its
//! trailer written and synced) before a newer one began, so an end cut
//! short there is lost durable data ([`LogicalReader::strict_tail`]). The
//! table is [`READER_RULES`]; a test walks it.

use std::path::PathBuf;

use wal_fs::FileReader;

use wal_record::{End, LogReader};

use crate::envelope::{self, BatchHeader, Sequencing};
use crate::error::{Error, Result};
use crate::log::{Dirs, LogicalLog, Segment};
use crate::types::{LogNum, Lsn};

/// One row of the reader's decision table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderRule {
    /// The situation.
    pub situation: &'static str,
    /// What the reader does.
    pub action: ReaderAction,
}

/// What the logical-log reader does in a situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderAction {
    /// The record is dropped.
    Drop,
    /// The record is returned.
    Return,
    /// Reading continues with the next segment.
    NextSegment,
    /// The log ends without error.
    EndOfLog,
    /// Reading fails.
    Fail,
}

/// The decision table, as data.
pub const READER_RULES: &[ReaderRule] = &[
    ReaderRule {
        situation: "record with LSN <= last",
        action: ReaderAction::Drop,
    },
    ReaderRule {
        situation: "record with LSN = last + 1, or the first record",
        action: ReaderAction::Return,
    },
    ReaderRule {
        situation: "record with LSN > last + 1",
        action: ReaderAction::Fail,
    },
    ReaderRule {
        situation: "segment ends cleanly",
        action: ReaderAction::NextSegment,
    },
    ReaderRule {
        situation: "torn tail or corruption in a segment that is not the last",
        action: ReaderAction::NextSegment,
    },
    ReaderRule {
        situation: "torn tail in the last segment",
        action: ReaderAction::EndOfLog,
    },
    ReaderRule {
        situation: "corruption in the last segment",
        action: ReaderAction::Fail,
    },
    ReaderRule {
        situation: "record shorter than its LSN",
        action: ReaderAction::Fail,
    },
    ReaderRule {
        situation: "a listed segment's file does not exist",
        action: ReaderAction::NextSegment,
    },
    ReaderRule {
        situation: "pebble-batch: a batch of LogData only (count 0)",
        action: ReaderAction::Drop,
    },
    ReaderRule {
        situation: "pebble-batch: a batch with sequence number <= last",
        action: ReaderAction::Drop,
    },
    ReaderRule {
        situation: "pebble-batch: a batch with sequence number > last",
        action: ReaderAction::Return,
    },
    ReaderRule {
        situation: "pebble-batch: a record shorter than a batch header",
        action: ReaderAction::Fail,
    },
    ReaderRule {
        situation: "torn tail in the last segment of a log that is not the newest",
        action: ReaderAction::Fail,
    },
];

/// A record read from a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// Its LSN; in `pebble-batch` mode, its batch's sequence number.
    pub lsn: Lsn,
    /// Whether it is a system record (checkpoint, truncation marker).
    pub system: bool,
    /// The caller's payload: without the LSN prefix, or the whole batch in
    /// `pebble-batch` mode.
    pub payload: &'a [u8],
    /// In `pebble-batch` mode, the batch's header.
    pub batch: Option<BatchHeader>,
    /// The segment it was read from.
    pub segment: &'a Segment,
    /// That segment's position in the log's segment list.
    pub segment_pos: usize,
    /// Offset of the record in that segment.
    pub offset: u64,
    /// Offset just past the record in that segment: where a reader resumes.
    pub end: u64,
}

/// How one segment ended, as the reader saw it.
#[derive(Clone, Debug)]
pub enum SegmentEnd {
    /// Not read to its end (yet).
    Unread,
    /// The file does not exist (a superseded segment never created).
    Missing,
    /// Clean end.
    Clean(End),
    /// A torn tail: tolerated (in any segment).
    TornTail(wal_record::Error),
    /// Corruption in a segment that is not the last: skipped, because a
    /// later segment holds the records that mattered.
    CorruptSkipped(wal_record::Error),
    /// Corruption that failed the read.
    Corrupt(wal_record::Error),
}

/// What the reader found in one segment.
#[derive(Clone, Debug)]
pub struct SegmentReport {
    /// The segment.
    pub segment: Segment,
    /// Records returned from it.
    pub records: u64,
    /// Duplicates dropped from it.
    pub duplicates: u64,
    /// In `pebble-batch` mode, batches of LogData only (count 0) skipped,
    /// as Pebble's reader skips them.
    pub log_data: u64,
    /// How it ended.
    pub end: SegmentEnd,
}

/// How a whole log ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEnd {
    /// Every segment read; the last ended cleanly.
    Clean,
    /// The last segment ends with a torn tail at `offset`.
    TornTail {
        /// The last segment.
        path: PathBuf,
        /// Where its valid prefix ends.
        offset: u64,
    },
}

/// Reads the records of one logical log in LSN order, exactly once each.
pub struct LogicalReader {
    log: LogNum,
    dirs: Dirs,
    segments: Vec<Segment>,
    /// Index in `segments` of the segment `current` reads.
    current_index: usize,
    current: Option<LogReader<FileReader>>,
    /// Where the first segment opened starts reading (a resume point).
    start_offset: u64,
    last: Option<Lsn>,
    reports: Vec<SegmentReport>,
    end: Option<LogEnd>,
    failed: bool,
    record_size_max: usize,
    sequencing: Sequencing,
    /// A torn tail in the last segment is an error: a newer log exists, so
    /// this one was closed, and its end had been made durable.
    strict_tail: bool,
}

impl std::fmt::Debug for LogicalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogicalReader")
            .field("log", &self.log)
            .field("segments", &self.segments)
            .field("current_index", &self.current_index)
            .field("last", &self.last)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl LogicalReader {
    /// A reader of `log`, whose segments live in `dirs`.
    pub fn new(log: &LogicalLog, dirs: Dirs) -> LogicalReader {
        LogicalReader {
            log: log.num,
            dirs,
            segments: log.segments.clone(),
            current_index: 0,
            current: None,
            start_offset: 0,
            last: None,
            reports: Vec::new(),
            end: None,
            failed: false,
            record_size_max: usize::MAX,
            sequencing: Sequencing::Lsn,
            strict_tail: false,
        }
    }

    /// Reads records sequenced as `sequencing` says (by default the LSN
    /// envelope).
    #[must_use]
    pub fn with_sequencing(mut self, sequencing: Sequencing) -> LogicalReader {
        self.sequencing = sequencing;
        self
    }

    /// Treats a torn tail of the log's last segment as corruption, as
    /// Pebble treats every log but the newest: once a newer log exists,
    /// this one was closed, its trailer written and synced, so an end cut
    /// short means durable bytes were lost.
    #[must_use]
    pub fn strict_tail(mut self, strict: bool) -> LogicalReader {
        self.strict_tail = strict;
        self
    }

    /// A reader of `log` that resumes at segment position `segment_pos`, at
    /// `offset` (a record boundary: a [`LogRecord::end`] or
    /// [`LogRecord::offset`]), as if `last` had just been returned: earlier
    /// LSNs are dropped as duplicates, and the next must follow `last`.
    pub fn resume_at(
        log: &LogicalLog,
        dirs: Dirs,
        segment_pos: usize,
        offset: u64,
        last: Option<Lsn>,
    ) -> LogicalReader {
        let mut r = LogicalReader::new(log, dirs);
        r.current_index = segment_pos.min(r.segments.len());
        r.start_offset = offset;
        r.last = last;
        r
    }

    /// Refuses records longer than `max` bytes instead of buffering them.
    #[must_use]
    pub fn with_record_size_max(mut self, max: usize) -> LogicalReader {
        self.record_size_max = max;
        self
    }

    /// The log being read.
    pub fn log(&self) -> LogNum {
        self.log
    }

    /// The LSN of the last record returned.
    pub fn last_lsn(&self) -> Option<Lsn> {
        self.last
    }

    /// What was found in each segment opened so far.
    pub fn reports(&self) -> &[SegmentReport] {
        &self.reports
    }

    /// How the log ended, once [`LogicalReader::next`] returned `Ok(None)`.
    pub fn end(&self) -> Option<&LogEnd> {
        self.end.as_ref()
    }

    /// The next record, or `Ok(None)` at the end of the log.
    ///
    /// # Errors
    /// A segment cannot be opened or read, a segment that is the last is
    /// corrupt, records are missing, or a record has no LSN. After an error
    /// the reader stays failed.
    #[allow(clippy::should_implement_trait)] // records borrow the reader
    pub fn next(&mut self) -> Result<Option<LogRecord<'_>>> {
        if self.failed {
            return Err(Error::Closed("this reader, after an error,"));
        }
        match self.advance() {
            Ok(Some((index, offset, lsn, end))) => {
                let Some(reader) = self.current.as_ref() else {
                    unreachable!("a record came from the current segment")
                };
                // The record `advance` validated is still the reader's
                // current one.
                let Some(record) = reader.current() else {
                    unreachable!("advance left a current record")
                };
                let (system, payload, batch) = match self.sequencing {
                    Sequencing::Lsn => {
                        let Some((_, system, payload)) = envelope::decode(record.payload) else {
                            unreachable!("advance checked the envelope")
                        };
                        (system, payload, None)
                    }
                    Sequencing::PebbleBatch => (
                        false,
                        record.payload,
                        envelope::decode_batch_header(record.payload),
                    ),
                };
                Ok(Some(LogRecord {
                    lsn,
                    system,
                    payload,
                    batch,
                    segment: &self.segments[index],
                    segment_pos: index,
                    offset,
                    end,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Opens the next segment whose file exists; `false` at the end of the
    /// log.
    fn open_next_segment(&mut self) -> Result<bool> {
        loop {
            if self.current_index == self.segments.len() {
                self.end = Some(LogEnd::Clean);
                return Ok(false);
            }
            let segment = &self.segments[self.current_index];
            let fs = &self.dirs.get(segment.dir).fs;
            let file = match fs.open(&segment.path) {
                Ok(f) => f,
                Err(e) if e.is_not_found() => {
                    self.reports.push(SegmentReport {
                        segment: segment.clone(),
                        records: 0,
                        duplicates: 0,
                        log_data: 0,
                        end: SegmentEnd::Missing,
                    });
                    self.current_index += 1;
                    self.start_offset = 0;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            // Only the first segment opened may start mid-file.
            let start = std::mem::take(&mut self.start_offset);
            let block_start = start - start % wal_record::BLOCK_SIZE as u64;
            self.current = Some(
                LogReader::starting_at(
                    FileReader::at(file, block_start),
                    self.log.header_bits(),
                    start,
                )
                .with_record_size_max(self.record_size_max),
            );
            self.reports.push(SegmentReport {
                segment: segment.clone(),
                records: 0,
                duplicates: 0,
                log_data: 0,
                end: SegmentEnd::Unread,
            });
            return Ok(true);
        }
    }

    /// Moves to the next record to return; returns its segment index, offset,
    /// LSN and end offset, leaving its bytes in the current segment reader.
    fn advance(&mut self) -> Result<Option<(usize, u64, Lsn, u64)>> {
        loop {
            if self.end.is_some() {
                return Ok(None);
            }
            if self.current.is_none() && !self.open_next_segment()? {
                return Ok(None);
            }
            let index = self.current_index;
            let is_last = index + 1 == self.segments.len();
            let path = &self.segments[index].path;
            let report = self.reports.last_mut().expect("a report per open segment");
            let Some(reader) = self.current.as_mut() else {
                unreachable!("opened above")
            };
            match reader.next_record() {
                Ok(Some(record)) => {
                    let lsn = match place(self.sequencing, self.last, record.payload) {
                        Placement::Next(lsn) => lsn,
                        Placement::Duplicate => {
                            report.duplicates += 1;
                            continue;
                        }
                        Placement::LogData => {
                            report.log_data += 1;
                            continue;
                        }
                        Placement::Gap(found) => {
                            return Err(Error::MissingRecords {
                                log: self.log,
                                after: self.last.unwrap_or_default(),
                                found,
                                path: path.clone(),
                            });
                        }
                        Placement::TooShort => {
                            let (log, path, offset, len) =
                                (self.log, path.clone(), record.offset, record.payload.len());
                            return Err(match self.sequencing {
                                Sequencing::Lsn => Error::BadEnvelope {
                                    log,
                                    path,
                                    offset,
                                    len,
                                },
                                Sequencing::PebbleBatch => Error::BadBatch {
                                    log,
                                    path,
                                    offset,
                                    len,
                                },
                            });
                        }
                    };
                    self.last = Some(lsn);
                    report.records += 1;
                    return Ok(Some((index, record.offset, lsn, record.end)));
                }
                Ok(None) => {
                    report.end = SegmentEnd::Clean(reader.end().expect("an end after Ok(None)"));
                }
                Err(e) if !is_last && e.is_torn_tail() => report.end = SegmentEnd::TornTail(e),
                Err(e) if !is_last && e.is_corruption() => {
                    report.end = SegmentEnd::CorruptSkipped(e);
                }
                Err(e) if e.is_torn_tail() && self.strict_tail => {
                    report.end = SegmentEnd::Corrupt(e.clone());
                    return Err(Error::TornOlderLog {
                        log: self.log,
                        path: path.clone(),
                        offset: e.offset().unwrap_or(0),
                        source: e,
                    });
                }
                Err(e) if e.is_torn_tail() => {
                    self.end = Some(LogEnd::TornTail {
                        path: path.clone(),
                        offset: e.offset().unwrap_or(0),
                    });
                    report.end = SegmentEnd::TornTail(e);
                    self.current = None;
                    return Ok(None);
                }
                Err(e) => {
                    if e.is_corruption() {
                        report.end = SegmentEnd::Corrupt(e.clone());
                    }
                    return Err(Error::Segment {
                        log: self.log,
                        path: path.clone(),
                        source: e,
                    });
                }
            }
            self.current = None;
            self.current_index += 1;
        }
    }
}

/// Where a record falls, by its sequence number, against `last`, the last
/// one returned (rows 1-3, 8 and 10-13 of the rules).
enum Placement {
    /// Returned: the next record.
    Next(Lsn),
    /// Dropped: returned already (replayed after a switch).
    Duplicate,
    /// Dropped: a Pebble batch of LogData only.
    LogData,
    /// Records are missing before this LSN.
    Gap(Lsn),
    /// Too short for its LSN or batch header.
    TooShort,
}

fn place(sequencing: Sequencing, last: Option<Lsn>, stored: &[u8]) -> Placement {
    match sequencing {
        Sequencing::Lsn => {
            let Some((lsn, _, _)) = envelope::decode(stored) else {
                return Placement::TooShort;
            };
            match last {
                Some(last) if lsn <= last => Placement::Duplicate,
                Some(last) if lsn.0 != last.0 + 1 => Placement::Gap(lsn),
                _ => Placement::Next(lsn),
            }
        }
        // Pebble's rules: a batch of LogData only repeats the next batch's
        // sequence number and is skipped; a batch at or below the last one
        // returned is a duplicate. Sequence numbers may skip (an ingestion
        // uses some without a batch in the log), so a gap is no error.
        Sequencing::PebbleBatch => {
            let Some(h) = envelope::decode_batch_header(stored) else {
                return Placement::TooShort;
            };
            if h.count == 0 {
                Placement::LogData
            } else if last.is_some_and(|last| h.seq <= last.0) {
                Placement::Duplicate
            } else {
                Placement::Next(Lsn(h.seq))
            }
        }
    }
}
