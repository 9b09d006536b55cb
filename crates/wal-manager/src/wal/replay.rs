//! Replay: the records in batches to a callback, forward or backward, also
//! from the latest checkpoint.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::types::Lsn;

use super::{Wal, WalRecord};

/// Replay order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// The error of a replay: the log's, or the callback's own.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// Reading the log failed.
    #[error(transparent)]
    Wal(#[from] Error),
    /// The callback returned an error; replay stopped there.
    #[error("replay callback failed: {0}")]
    Callback(E),
}

pub(super) fn check_batch(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument {
            name: "batch_size",
            value: "0".into(),
            expected: "at least 1",
        });
    }
    Ok(())
}

impl Wal {
    /// Calls `f` with the records in `batch_size` batches, in `direction`
    /// order, up to the last record at the time of the call.
    ///
    /// # Errors
    /// A zero `batch_size` ([`Error::InvalidArgument`]), a read error, or the
    /// callback's error (replay stops there).
    pub fn replay<E>(
        &self,
        batch_size: usize,
        direction: Direction,
        f: impl FnMut(&[WalRecord]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), ReplayError<E>> {
        match self.bounds() {
            Some((first, last)) => self.replay_range(first..last.next(), batch_size, direction, f),
            None => check_batch(batch_size).map_err(ReplayError::Wal),
        }
    }

    /// Like [`Wal::replay`], for the records in `range` (which must lie
    /// within the log).
    ///
    /// # Errors
    /// As [`Wal::replay`], plus [`Error::LsnOutOfRange`] for a range reaching
    /// outside the log.
    pub fn replay_range<E>(
        &self,
        range: Range<Lsn>,
        batch_size: usize,
        direction: Direction,
        mut f: impl FnMut(&[WalRecord]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), ReplayError<E>> {
        check_batch(batch_size)?;
        if range.is_empty() {
            return Ok(());
        }
        let (first, last) = self
            .bounds()
            .ok_or_else(|| self.out_of_range(range.start))?;
        if range.start < first {
            return Err(self.out_of_range(range.start).into());
        }
        if range.end.0 - 1 > last.0 {
            return Err(self.out_of_range(Lsn(range.end.0 - 1)).into());
        }
        match direction {
            Direction::Forward => {
                let mut batch = Vec::with_capacity(batch_size);
                let mut failed = None;
                self.scan_from(range.start, |r| {
                    if r.lsn >= range.end {
                        return false;
                    }
                    batch.push(WalRecord {
                        lsn: r.lsn,
                        payload: r.payload.to_vec(),
                    });
                    if batch.len() == batch_size {
                        if let Err(e) = f(&batch) {
                            failed = Some(e);
                            return false;
                        }
                        batch.clear();
                    }
                    true
                })?;
                if let Some(e) = failed {
                    return Err(ReplayError::Callback(e));
                }
                if !batch.is_empty() {
                    f(&batch).map_err(ReplayError::Callback)?;
                }
                Ok(())
            }
            Direction::Backward => {
                // One log at a time, newest first: memory is bounded by the
                // log size.
                let chunks = self.log_ranges(&range);
                for chunk in chunks.into_iter().rev() {
                    let mut records = Vec::new();
                    self.scan_from(chunk.start, |r| {
                        if r.lsn >= chunk.end {
                            return false;
                        }
                        records.push(WalRecord {
                            lsn: r.lsn,
                            payload: r.payload.to_vec(),
                        });
                        true
                    })?;
                    records.reverse();
                    for batch in records.chunks(batch_size) {
                        f(batch).map_err(ReplayError::Callback)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// `range` cut at log boundaries, oldest first.
    fn log_ranges(&self, range: &Range<Lsn>) -> Vec<Range<Lsn>> {
        let st = self.state.lock();
        let mut starts: Vec<Lsn> = st
            .logs
            .iter()
            .map(|l| l.start)
            .filter(|s| *s > range.start && *s < range.end)
            .collect();
        starts.sort();
        starts.dedup();
        let mut out = Vec::new();
        let mut from = range.start;
        for s in starts {
            out.push(from..s);
            from = s;
        }
        out.push(from..range.end);
        out
    }

    /// Replays, forward in batches, the records after the latest checkpoint
    /// (all records when there is none): Fact's recovery model.
    ///
    /// # Errors
    /// As [`Wal::replay`].
    pub fn replay_from_checkpoint<E>(
        &self,
        batch_size: usize,
        f: impl FnMut(&[WalRecord]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), ReplayError<E>> {
        check_batch(batch_size)?;
        let Some((first, last)) = self.bounds() else {
            return Ok(());
        };
        let from = self
            .last_checkpoint()
            .map_or(first, |c| c.lsn.next().max(first));
        // (A checkpoint is dropped once records right after it are gone, so
        // `max(first)` only matters for a checkpoint at the very end.)
        if from > last {
            return Ok(());
        }
        self.replay_range(from..last.next(), batch_size, Direction::Forward, f)
    }
}
