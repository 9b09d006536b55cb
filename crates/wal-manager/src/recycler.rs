//! The log recycler: obsolete log files kept for reuse by new logs.
//!
//! Reusing a file overwrites it from the start without truncating, so the
//! file keeps its allocated blocks and a sync after each write need not
//! update the file's block map. The bytes beyond what the new log has
//! written are the old log's; the reader rejects them because their chunks
//! carry the old log number (a recycled file's stale tail reads as a torn
//! tail, row 7 of the record reader's table).

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::types::LogNum;

/// An obsolete log file waiting to be reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecycledFile {
    /// The log it belonged to.
    pub(crate) log: LogNum,
    /// Its path.
    pub(crate) path: PathBuf,
    /// Its size.
    pub(crate) size: u64,
}

/// A bounded FIFO of recyclable files.
#[derive(Debug, Default)]
pub(crate) struct Recycler {
    // INVARIANT: files.len() <= limit.
    files: VecDeque<RecycledFile>,
    limit: usize,
}

impl Recycler {
    /// A recycler keeping at most `limit` files.
    pub(crate) fn new(limit: usize) -> Recycler {
        Recycler {
            files: VecDeque::new(),
            limit,
        }
    }

    /// Keeps `file` for reuse; returns it back if the recycler is full.
    ///
    /// # Errors
    /// The file itself, when there is no room: the caller deletes it.
    pub(crate) fn add(&mut self, file: RecycledFile) -> Result<(), RecycledFile> {
        if self.files.len() >= self.limit {
            return Err(file);
        }
        self.files.push_back(file);
        Ok(())
    }

    /// How many more files it can hold.
    pub(crate) fn room(&self) -> usize {
        self.limit.saturating_sub(self.files.len())
    }

    /// Takes the oldest file for reuse.
    pub(crate) fn take(&mut self) -> Option<RecycledFile> {
        self.files.pop_front()
    }

    /// Files held and their total size.
    pub(crate) fn stats(&self) -> (usize, u64) {
        (self.files.len(), self.files.iter().map(|f| f.size).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u64) -> RecycledFile {
        RecycledFile {
            log: LogNum(n),
            path: PathBuf::from(format!("{n:06}.log")),
            size: n * 10,
        }
    }

    #[test]
    fn the_recycler_is_bounded_and_first_in_first_out() {
        let mut r = Recycler::new(2);
        assert!(r.add(file(1)).is_ok());
        assert!(r.add(file(2)).is_ok());
        assert_eq!(r.add(file(3)), Err(file(3)));
        assert_eq!(r.stats(), (2, 30));
        assert_eq!(r.take(), Some(file(1)));
        assert_eq!(r.take(), Some(file(2)));
        assert_eq!(r.take(), None);
    }

    #[test]
    fn a_zero_limit_disables_recycling() {
        let mut r = Recycler::new(0);
        assert!(r.add(file(1)).is_err());
    }
}
