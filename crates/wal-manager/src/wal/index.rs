//! The sparse index the `Wal` keeps of each log: the LSN range each log
//! holds, one position every [`INDEX_EVERY`] records, where to resume
//! reading the open log, and the markers applied at open (`scan_log`).

use crate::error::Result;
use crate::log::LogicalLog;
use crate::manager::Manager;
use crate::types::{LogNum, Lsn};

use super::Checkpoint;
use super::marker::Marker;

/// The sparse index keeps one position every this many records.
pub(super) const INDEX_EVERY: u64 = 128;

/// A position in a log: the record `lsn` starts at `offset` in segment
/// `segment_pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Point {
    pub(super) lsn: Lsn,
    pub(super) segment_pos: usize,
    pub(super) offset: u64,
}

/// What the `Wal` knows about one log.
#[derive(Debug)]
pub(super) struct LogInfo {
    pub(super) num: LogNum,
    /// The first user LSN this log can hold (the next LSN when it was
    /// created, or one past its leading marker).
    pub(super) start: Lsn,
    /// Closed: no record will be added.
    pub(super) sealed: bool,
    /// For a sealed log, the last user LSN it holds (`None`: none).
    pub(super) last_user: Option<Lsn>,
    /// The last user LSN still visible (a later `truncate_after` clips).
    pub(super) clip: Option<Lsn>,
    /// The last user LSN scanned: the index covers the log up to here.
    pub(super) scanned: Option<Lsn>,
    /// One point every `INDEX_EVERY` records, by increasing LSN.
    pub(super) index: Vec<Point>,
    /// Where scanning beyond `scanned` resumes: segment position, offset,
    /// and the last LSN read there (user or system).
    pub(super) resume: Option<(usize, u64, Lsn)>,
}

impl LogInfo {
    pub(super) fn new(num: LogNum, start: Lsn) -> LogInfo {
        LogInfo {
            num,
            start,
            sealed: false,
            last_user: None,
            clip: None,
            scanned: None,
            index: Vec::new(),
            resume: None,
        }
    }

    /// Whether every record of this sealed log is below `lsn`.
    pub(super) fn wholly_below(&self, lsn: Lsn) -> bool {
        self.sealed
            && match (self.last_user, self.clip) {
                (None, _) => true,
                (Some(l), Some(c)) => l.min(c) < lsn,
                (Some(l), None) => l < lsn,
            }
    }

    /// Records a scanned record at `point` (ending at `end`); user records
    /// extend the index.
    pub(super) fn note(&mut self, point: Point, end: u64, system: bool) {
        if self.resume.is_some_and(|(_, _, last)| point.lsn < last)
            || self
                .resume
                .is_some_and(|(_, _, last)| point.lsn == last && system)
        {
            return; // an older record, re-read through the index
        }
        if !system {
            if self.scanned.is_some_and(|s| point.lsn <= s) {
                return;
            }
            if self
                .index
                .last()
                .is_none_or(|p| point.lsn.0 >= p.lsn.0 + INDEX_EVERY)
            {
                self.index.push(point);
            }
            self.scanned = Some(point.lsn);
        }
        self.resume = Some((point.segment_pos, end, point.lsn));
    }

    /// Where to start reading for user record `lsn`: an index point at or
    /// before it, or the resume point when `lsn` is beyond what was scanned.
    pub(super) fn start_for(&self, lsn: Lsn) -> Option<(usize, u64, Option<Lsn>)> {
        if self.scanned.is_none_or(|s| lsn > s) {
            if let Some((pos, offset, last)) = self.resume {
                return Some((pos, offset, Some(last)));
            }
        }
        let i = self.index.partition_point(|p| p.lsn <= lsn);
        let p = self.index[i.checked_sub(1)?];
        Some((p.segment_pos, p.offset, p.lsn.0.checked_sub(1).map(Lsn)))
    }
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) logs: Vec<LogInfo>,
    /// Records below this are gone (`truncate_before`).
    pub(super) first_visible: Lsn,
    /// Checkpoints still valid, oldest first, with the log holding each.
    pub(super) checkpoints: Vec<(Checkpoint, LogNum)>,
}

impl State {
    /// The log that holds user record `lsn`, if any.
    pub(super) fn log_for(&self, lsn: Lsn) -> Option<usize> {
        // Logs' visible ranges are disjoint and ordered by log number; the
        // holder is the last log that starts at or before `lsn`.
        let i = self.logs.iter().rposition(|l| l.start <= lsn)?;
        let log = &self.logs[i];
        if log.clip.is_some_and(|c| lsn > c)
            || (log.sealed && log.last_user.is_none_or(|l| lsn > l))
        {
            return None;
        }
        Some(i)
    }
}

/// Applies `truncate_after(lsn)` to the first `earlier` logs (those before
/// the marker's log).
pub(super) fn apply_truncate_after(st: &mut State, earlier: usize, lsn: Lsn) {
    for info in &mut st.logs[..earlier] {
        info.clip = Some(info.clip.map_or(lsn, |c| c.min(lsn)));
        info.index.retain(|p| p.lsn <= lsn);
    }
    st.checkpoints.retain(|c| c.0.lsn <= lsn);
}

/// Reads one log at open: indexes it and applies its markers.
pub(super) fn scan_log(manager: &Manager, st: &mut State, log: &LogicalLog) -> Result<()> {
    let mut reader = manager.open_reader(log.num)?;
    let mut info: Option<LogInfo> = None;
    while let Some(rec) = reader.next()? {
        let info = info.get_or_insert_with(|| {
            // A log that starts with a marker holds user records from the
            // marker's LSN + 1.
            let start = if rec.system { rec.lsn.next() } else { rec.lsn };
            LogInfo::new(log.num, start)
        });
        if rec.system {
            match Marker::decode(rec.payload) {
                Some(Marker::Checkpoint { covers, data }) => st.checkpoints.push((
                    Checkpoint {
                        lsn: covers.unwrap_or(rec.lsn),
                        data,
                    },
                    log.num,
                )),
                Some(Marker::TruncateBefore(first)) => {
                    st.first_visible = st.first_visible.max(first);
                    st.checkpoints.retain(|c| c.0.lsn.next() >= first);
                }
                Some(Marker::TruncateAfter(last)) => {
                    let earlier = st.logs.len();
                    apply_truncate_after(st, earlier, last);
                }
                None => {
                    tracing::warn!(log = %log.num, lsn = rec.lsn.0, "unknown system record ignored");
                }
            }
        }
        info.note(
            Point {
                lsn: rec.lsn,
                segment_pos: rec.segment_pos,
                offset: rec.offset,
            },
            rec.end,
            rec.system,
        );
    }
    if let Some(mut info) = info {
        info.sealed = true;
        info.last_user = info.scanned;
        st.logs.push(info);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lsn: u64, offset: u64) -> Point {
        Point {
            lsn: Lsn(lsn),
            segment_pos: 0,
            offset,
        }
    }

    /// A log of user records `first..=last`, each 10 bytes, scanned in order.
    fn scanned(first: u64, last: u64) -> LogInfo {
        let mut info = LogInfo::new(LogNum(1), Lsn(first));
        for lsn in first..=last {
            let offset = (lsn - first) * 10;
            info.note(point(lsn, offset), offset + 10, false);
        }
        info
    }

    #[test]
    fn the_index_keeps_one_point_every_index_every_records_and_the_resume_point() {
        let info = scanned(1, 3 * INDEX_EVERY + 5);
        let lsns: Vec<u64> = info.index.iter().map(|p| p.lsn.0).collect();
        assert_eq!(
            lsns,
            vec![1, 1 + INDEX_EVERY, 1 + 2 * INDEX_EVERY, 1 + 3 * INDEX_EVERY]
        );
        assert_eq!(info.scanned, Some(Lsn(3 * INDEX_EVERY + 5)));
        let end = (3 * INDEX_EVERY + 5) * 10;
        assert_eq!(info.resume, Some((0, end, Lsn(3 * INDEX_EVERY + 5))));
    }

    #[test]
    fn a_read_starts_at_the_nearest_point_at_or_before_it_or_past_what_was_scanned() {
        let info = scanned(1, 300);
        // Record 200 lies after the point of record 129 (offset 1280).
        assert_eq!(info.start_for(Lsn(200)), Some((0, 1280, Some(Lsn(128)))));
        assert_eq!(info.start_for(Lsn(1)), Some((0, 0, Some(Lsn(0)))));
        // Beyond what was scanned: from where scanning stopped.
        assert_eq!(info.start_for(Lsn(301)), Some((0, 3000, Some(Lsn(300)))));
        // Before the first point: nothing to start from.
        let empty = LogInfo::new(LogNum(2), Lsn(5));
        assert_eq!(empty.start_for(Lsn(5)), None);
    }

    #[test]
    fn records_read_again_through_the_index_change_nothing() {
        let mut info = scanned(1, 200);
        let before = (info.index.clone(), info.scanned, info.resume);
        info.note(point(150, 1490), 1500, false);
        info.note(point(200, 1990), 2000, true);
        assert_eq!((info.index.clone(), info.scanned, info.resume), before);
        // A marker at the start of a log moves only the resume point.
        let mut marked = LogInfo::new(LogNum(3), Lsn(8));
        marked.note(point(7, 0), 20, true);
        assert_eq!((marked.scanned, marked.index.len()), (None, 0));
        assert_eq!(marked.resume, Some((0, 20, Lsn(7))));
    }

    #[test]
    fn a_sealed_log_is_wholly_below_an_lsn_past_its_last_visible_record() {
        let mut info = scanned(10, 20);
        assert!(!info.wholly_below(Lsn(100)), "an open log never is");
        info.sealed = true;
        info.last_user = Some(Lsn(20));
        assert!(info.wholly_below(Lsn(21)));
        assert!(!info.wholly_below(Lsn(20)));
        info.clip = Some(Lsn(15));
        assert!(info.wholly_below(Lsn(16)), "a truncate_after clipped it");
        let mut empty = LogInfo::new(LogNum(4), Lsn(21));
        empty.sealed = true;
        assert!(empty.wholly_below(Lsn(1)), "a log without records");
    }

    #[test]
    fn each_lsn_belongs_to_the_last_log_starting_at_or_before_it_within_its_visible_range() {
        let mut a = scanned(1, 10);
        a.sealed = true;
        a.last_user = Some(Lsn(10));
        let mut b = LogInfo::new(LogNum(2), Lsn(11));
        b.note(point(11, 0), 10, false);
        let mut st = State {
            logs: vec![a, b],
            first_visible: Lsn(0),
            checkpoints: Vec::new(),
        };
        assert_eq!(st.log_for(Lsn(0)), None);
        assert_eq!(st.log_for(Lsn(1)), Some(0));
        assert_eq!(st.log_for(Lsn(10)), Some(0));
        assert_eq!(st.log_for(Lsn(11)), Some(1));
        assert_eq!(
            st.log_for(Lsn(50)),
            Some(1),
            "the open log may still get it"
        );
        st.checkpoints.push((
            Checkpoint {
                lsn: Lsn(9),
                data: Vec::new(),
            },
            LogNum(2),
        ));
        apply_truncate_after(&mut st, 1, Lsn(5));
        assert_eq!(st.log_for(Lsn(5)), Some(0));
        assert_eq!(st.log_for(Lsn(6)), None, "clipped");
        assert_eq!(st.logs[0].index.len(), 1, "points past the cut are dropped");
        assert!(
            st.checkpoints.is_empty(),
            "a checkpoint past the cut is void"
        );
    }
}
