//! Reading by LSN: `read`, the tailing iterator, and the scan both build on,
//! which positions a reader through the index or the reader cache.

use crate::error::{Error, Result};
use crate::reader::LogicalReader;
use crate::types::{LogNum, Lsn};

use super::index::Point;
use super::{READERS_CACHED, Wal, WalRecord};

/// How many times a read of the open log starts again after finding records
/// missing between two segments (a switch raced the read; see `scan_from`).
const OPEN_LOG_REREADS_MAX: u32 = 8;

/// A reader of a sealed log stopped right before user record `next`, kept
/// for sequential reads. Only sealed logs' readers are kept: a reader of the
/// open log may have seen the end of the file, and would not see records
/// appended after that (the open log resumes from its scan point instead).
pub(super) struct Cached {
    pub(super) log: LogNum,
    pub(super) reader: LogicalReader,
    /// The next user LSN it will return.
    pub(super) next: Lsn,
}

/// A forward iterator over a [`Wal`] that follows new appends
/// ([`Wal::iter_from`]).
#[derive(Debug)]
pub struct WalIter<'a> {
    wal: &'a Wal,
    next: Lsn,
}

impl WalIter<'_> {
    /// The LSN of the record the next call returns (if it exists by then).
    pub fn position(&self) -> Lsn {
        self.next
    }

    /// The next record, or `None` at the current end (call again later for
    /// records appended since). Records truncated away under the iterator
    /// are skipped, also while a truncation runs.
    ///
    /// # Errors
    /// A read error.
    #[allow(clippy::should_implement_trait)] // fallible, and resumable after None
    pub fn next(&mut self) -> Result<Option<WalRecord>> {
        loop {
            let Some((first, last)) = self.wal.bounds() else {
                return Ok(None);
            };
            self.next = self.next.max(first);
            if self.next > last {
                return Ok(None);
            }
            let mut out = None;
            let want = self.next;
            self.wal.scan_from(want, |r| {
                out = Some(WalRecord {
                    lsn: r.lsn,
                    payload: r.payload.to_vec(),
                });
                false
            })?;
            if let Some(r) = &out {
                self.next = r.lsn.next();
                return Ok(out);
            }
            // Nothing at `want` although it was within the bounds: a
            // truncation removed it meanwhile. Go on from the new first
            // record; otherwise (a `truncate_after` below it) this is the
            // end.
            match self.wal.bounds() {
                Some((first, _)) if first > want => {}
                _ => return Ok(None),
            }
        }
    }
}

impl Wal {
    /// Reads record `lsn`.
    ///
    /// # Errors
    /// [`crate::Error::LsnOutOfRange`] naming the valid range, or a read error.
    pub fn read(&self, lsn: Lsn) -> Result<Vec<u8>> {
        let Some((first, last)) = self.bounds() else {
            return Err(self.out_of_range(lsn));
        };
        if lsn < first || lsn > last {
            return Err(self.out_of_range(lsn));
        }
        let mut found = None;
        self.scan_from(lsn, |r| {
            found = Some(r.payload.to_vec());
            false
        })?;
        found.ok_or_else(|| self.out_of_range(lsn))
    }

    /// An iterator over the records from `lsn` on, following new appends:
    /// when it reaches the end it returns `None`, and more records later.
    pub fn iter_from(&self, lsn: Lsn) -> WalIter<'_> {
        WalIter {
            wal: self,
            next: lsn,
        }
    }

    /// Reads user records from `lsn` on, calling `f` for each until it
    /// returns false or the written log ends. Uses (and refills) the reader
    /// cache and the index.
    ///
    /// A truncation or retention running meanwhile may delete the log being
    /// read (it leaves memory before its files go): reading then stops
    /// there, without error, and the caller sees the new bounds.
    pub(super) fn scan_from(
        &self,
        mut lsn: Lsn,
        mut f: impl FnMut(&crate::reader::LogRecord<'_>) -> bool,
    ) -> Result<()> {
        let mut previous: Option<LogNum> = None;
        let mut rereads = 0;
        'logs: loop {
            // Whether the log was sealed before its reader was made: only
            // such a reader may be cached. One made while the log was open
            // may hold a block it read part of, and would take the end of
            // that part for the end of the log.
            let (log_num, sealed) = {
                let st = self.state.lock();
                match st.log_for(lsn) {
                    Some(i) => (st.logs[i].num, st.logs[i].sealed),
                    None => return Ok(()),
                }
            };
            if previous == Some(log_num) {
                // This log is read to its end and nothing follows it yet.
                return Ok(());
            }
            previous = Some(log_num);
            {
                let w = self.writer.read();
                if w.log() == log_num {
                    w.flush()?;
                }
            }
            let Some(mut reader) = self.reader_for(log_num, lsn) else {
                return Ok(()); // truncated away meanwhile
            };
            loop {
                let rec = match reader.next() {
                    Ok(Some(rec)) => rec,
                    Ok(None) => break,
                    // Files deleted under the reader read as missing
                    // segments or missing records.
                    Err(_) if !self.holds(log_num) => return Ok(()),
                    // The open log's segments are read one after another, so
                    // a switch between two reads can show a later segment
                    // that starts after records the earlier one got (and
                    // synced) only after it was read. Read the log again
                    // from where this read got to.
                    Err(Error::MissingRecords { .. })
                        if !sealed && rereads < OPEN_LOG_REREADS_MAX =>
                    {
                        rereads += 1;
                        previous = None;
                        continue 'logs;
                    }
                    Err(e) => return Err(e),
                };
                let point = Point {
                    lsn: rec.lsn,
                    segment_pos: rec.segment_pos,
                    offset: rec.offset,
                };
                let clip = {
                    let mut st = self.state.lock();
                    let Some(info) = st.logs.iter_mut().find(|l| l.num == log_num) else {
                        return Ok(()); // truncated away meanwhile
                    };
                    info.note(point, rec.end, rec.system);
                    info.clip
                };
                if rec.system || rec.lsn < lsn {
                    continue;
                }
                if clip.is_some_and(|c| rec.lsn > c) {
                    break;
                }
                lsn = rec.lsn.next();
                if !f(&rec) {
                    if sealed {
                        self.cache_reader(log_num, reader, lsn);
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Whether log `log_num` is still one of the WAL's.
    pub(super) fn holds(&self, log_num: LogNum) -> bool {
        self.state.lock().logs.iter().any(|l| l.num == log_num)
    }

    /// A reader of log `log_num` positioned at or before user record `lsn`:
    /// from the cache when one stopped just there, else from the index.
    /// `None` when the log is gone (truncated away meanwhile).
    pub(super) fn reader_for(&self, log_num: LogNum, lsn: Lsn) -> Option<LogicalReader> {
        {
            let mut cache = self.readers.lock();
            if let Some(i) = cache.iter().position(|c| c.log == log_num && c.next == lsn) {
                if let Some(c) = cache.remove(i) {
                    return Some(c.reader);
                }
            }
        }
        let log = self.manager.list().into_iter().find(|l| l.num == log_num)?;
        let start = {
            let st = self.state.lock();
            st.logs.iter().find(|l| l.num == log_num)?.start_for(lsn)
        };
        let dirs = self.manager.dirs().clone();
        Some(match start {
            Some((pos, offset, last)) => LogicalReader::resume_at(&log, dirs, pos, offset, last),
            None => LogicalReader::new(&log, dirs),
        })
    }

    pub(super) fn cache_reader(&self, log: LogNum, reader: LogicalReader, next: Lsn) {
        let mut cache = self.readers.lock();
        if cache.len() == READERS_CACHED {
            cache.pop_front();
        }
        cache.push_back(Cached { log, reader, next });
    }
}
