//! The standalone manager: every log is one segment in one directory.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wal_record::{LogWriter, LogWriterMetrics};

use crate::config::Config;
use crate::core::Core;
use crate::env::Env;
use crate::envelope::{self, Sequencing};
use crate::error::{Error, Result};
use crate::log::Segment;
use crate::recorder::PlainFile;
use crate::stats::Stats;
use crate::types::{DirId, LogNum, Lsn, SegmentIndex};

/// A manager of logs in one directory. See [`crate::Manager`] for the API.
#[derive(Debug)]
pub struct StandaloneManager {
    core: Arc<Core>,
}

impl StandaloneManager {
    /// Opens the manager; see [`crate::Manager::open_with`].
    ///
    /// # Errors
    /// As [`crate::Manager::open_with`].
    pub(crate) fn open(config: &Config, env: &Env) -> Result<StandaloneManager> {
        let core = Arc::new(Core::open(config, env)?);
        core.attach_archive();
        Ok(StandaloneManager { core })
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// Starts log `log`; see [`crate::Manager::create`].
    ///
    /// # Errors
    /// As [`crate::Manager::create`].
    pub(crate) fn create(&self, log: LogNum) -> Result<StandaloneWriter> {
        let recycled = self.core.reserve(log)?;
        match self.create_file(log, recycled) {
            Ok(writer) => Ok(writer),
            Err(e) => {
                self.core.unreserve(log);
                Err(e)
            }
        }
    }

    fn create_file(
        &self,
        log: LogNum,
        recycled: Option<crate::recycler::RecycledFile>,
    ) -> Result<StandaloneWriter> {
        let dir = &self.core.dirs.primary;
        let path = dir.segment_path(log, SegmentIndex(0));
        let file = match recycled {
            Some(old) => {
                tracing::debug!(from = %old.path.display(), to = %path.display(), "recycling log file");
                dir.fs.reuse_for_write(&old.path, &path)?
            }
            None => dir.fs.create(&path)?,
        };
        // The new entry must be durable before any record in it is
        // acknowledged.
        dir.fs.sync_dir(&dir.path)?;
        self.core.add_segment(
            log,
            Segment {
                index: SegmentIndex(0),
                dir: DirId::Primary,
                path: path.clone(),
                size: 0,
            },
        );
        let lw =
            LogWriter::new(PlainFile(file), self.core.writer_options(log)).map_err(|source| {
                Error::Segment {
                    log,
                    path: path.clone(),
                    source,
                }
            })?;
        let lw = Arc::new(lw);
        *self.core.current.lock() = Some(Arc::downgrade(&lw));
        Ok(StandaloneWriter {
            log,
            path,
            lw,
            core: Arc::clone(&self.core),
            closed: AtomicBool::new(false),
        })
    }

    /// Current figures; see [`crate::Manager::stats`].
    pub fn stats(&self) -> Stats {
        let mut stats = self.core.base_stats();
        let current = self
            .core
            .current
            .lock()
            .as_ref()
            .and_then(std::sync::Weak::upgrade);
        stats.writer = current.map(|w| w.metrics());
        stats.totals = self.core.totals_with(stats.writer.as_ref());
        stats
    }

    /// Closes the manager; see [`crate::Manager::close`].
    ///
    /// # Errors
    /// As [`crate::Manager::close`].
    pub(crate) fn close(&self) -> Result<()> {
        self.core.begin_close()?;
        self.core.release_locks();
        Ok(())
    }
}

impl Drop for StandaloneManager {
    /// Releases the directory locks unless a writer is still open (that
    /// writer keeps them until it is dropped).
    fn drop(&mut self) {
        self.core.release_locks();
    }
}

/// The writer of one log of a [`StandaloneManager`].
pub struct StandaloneWriter {
    log: LogNum,
    path: PathBuf,
    lw: Arc<LogWriter<PlainFile>>,
    core: Arc<Core>,
    closed: AtomicBool,
}

impl std::fmt::Debug for StandaloneWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneWriter")
            .field("log", &self.log)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StandaloneWriter {
    /// The log being written.
    pub(crate) fn log(&self) -> LogNum {
        self.log
    }

    fn seg_err(&self, source: wal_record::Error) -> Error {
        Error::Segment {
            log: self.log,
            path: self.path.clone(),
            source,
        }
    }

    /// Appends records as one group; see [`crate::Writer::append_batch_sync`].
    ///
    /// # Errors
    /// As [`crate::Writer::append_batch_sync`].
    pub(crate) fn append_group(&self, payloads: &[&[u8]], sync: bool) -> Result<Range<Lsn>> {
        self.core.check_record_sizes(payloads)?;
        let counter = &self.core.next_lsn;
        let sequencing = self.core.sequencing();
        let (lsns, end) = self
            .lw
            // A synced batch raises its sync request in `wait_synced` below,
            // which does the I/O itself or wakes the flush thread.
            .append_with(false, |batch| {
                // Under the writer's lock: LSN order is file order. Sizes
                // were checked above, so no push can fail and leave a gap.
                let lsns = Core::take_lsns(counter, payloads.len() as u64);
                for (i, p) in payloads.iter().enumerate() {
                    match sequencing {
                        Sequencing::Lsn => {
                            let lsn = Lsn(lsns.start.0 + i as u64);
                            batch.push(&[&envelope::lsn_prefix(lsn, false), p])?;
                        }
                        Sequencing::PebbleBatch => {
                            batch.push(&[p])?;
                        }
                    }
                }
                Ok(lsns)
            })
            .map_err(|e| self.seg_err(e))?;
        let lsns = lsns.map_err(|e| self.seg_err(e))?;
        if sync {
            self.lw.wait_synced(end).map_err(|e| self.seg_err(e))?;
        }
        Ok(lsns)
    }

    /// Waits until `lsn` is durable; see [`crate::Writer::wait_durable`].
    /// (Syncs everything appended so far: one group commit round at most.)
    ///
    /// # Errors
    /// As [`crate::Writer::append_sync`].
    pub(crate) fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        let _ = lsn;
        self.lw.sync().map(|_| ()).map_err(|e| self.seg_err(e))
    }

    /// Makes everything appended durable; see [`crate::Writer::sync`].
    ///
    /// # Errors
    /// As [`crate::Writer::append_sync`].
    pub(crate) fn sync(&self) -> Result<Option<Lsn>> {
        let last = self.core.next_lsn().0.checked_sub(1).map(Lsn);
        self.lw.sync().map_err(|e| self.seg_err(e))?;
        Ok(last)
    }

    /// Closes the log; see [`crate::Writer::close`].
    ///
    /// # Errors
    /// As [`crate::Writer::close`].
    pub(crate) fn close(&self) -> Result<u64> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed("the writer"));
        }
        let result = self.lw.close();
        {
            // Under the lock `stats` reads it through, so that the figures
            // move from "current" to the totals at once, and are counted
            // once (the writer lives on while this handle does).
            let mut current = self.core.current.lock();
            self.core.accumulate(&self.lw.metrics());
            if current
                .as_ref()
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.lw)))
            {
                *current = None;
            }
        }
        let size = self.lw.size();
        self.core.add_segment(
            self.log,
            Segment {
                index: SegmentIndex(0),
                dir: DirId::Primary,
                path: self.path.clone(),
                size,
            },
        );
        self.core.writer_closed(self.log, result.is_ok());
        result.map_err(|e| self.seg_err(e))
    }

    /// Appends a system record first in the log; see
    /// [`crate::Writer::append_marker`].
    ///
    /// # Errors
    /// As [`crate::Writer::append_marker`].
    pub(crate) fn append_marker(&self, payload: &[u8]) -> Result<Lsn> {
        self.core.check_markers_allowed()?;
        self.core.check_record_sizes(&[payload])?;
        let core = &self.core;
        let (outcome, end) = self
            .lw
            .append_with(true, |batch| {
                if batch.offset() != 0 {
                    return Ok(None);
                }
                let lsn = core.marker_lsn();
                batch.push(&[&envelope::lsn_prefix(lsn, true), payload])?;
                Ok(Some(lsn))
            })
            .map_err(|e| self.seg_err(e))?;
        let lsn = outcome
            .map_err(|e| self.seg_err(e))?
            .ok_or(Error::MarkerNotFirst(self.log))?;
        self.lw.wait_synced(end).map_err(|e| self.seg_err(e))?;
        Ok(lsn)
    }

    /// Writes everything appended to the file; see [`crate::Writer::flush`].
    ///
    /// # Errors
    /// As [`crate::Writer::flush`].
    pub(crate) fn flush(&self) -> Result<()> {
        self.lw.flush().map(|_| ()).map_err(|e| self.seg_err(e))
    }

    /// Record-layer figures.
    pub(crate) fn metrics(&self) -> LogWriterMetrics {
        self.lw.metrics()
    }

    /// Bytes written to the segment so far (framing included).
    pub(crate) fn size(&self) -> u64 {
        self.lw.size()
    }
}

impl Drop for StandaloneWriter {
    /// A writer dropped without `close` is abandoned: its buffered records
    /// are still written, but no trailer is; the manager forgets it is open.
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.core.writer_closed(self.log, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wal_fs::OsFs;

    use crate::{Config, Env, LogEnd, LogNum, Manager};

    /// Synced appends of `RECORD` bytes: more than `OsFs` needs before it
    /// fills and more than the writer writes between two upkeep calls.
    const SYNCED: usize = 24;
    const RECORD: usize = 32 << 10;

    fn record(i: usize) -> Vec<u8> {
        let mut r = format!("record {i} ").into_bytes();
        r.resize(RECORD, b'.');
        r
    }

    /// Appends `SYNCED` records, then waits (at most 10 s: the fill runs on
    /// the flush thread after the syncs) until the file on disk is longer
    /// than what was written.
    fn append_until_filled(w: &crate::Writer, path: &std::path::Path) {
        const { assert!(SYNCED * RECORD > 2 * (256 << 10)) };
        const { assert!(SYNCED > OsFs::ZERO_FILL_AFTER_SYNCS as usize) };
        for i in 0..SYNCED {
            w.append_sync(&record(i)).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(path).unwrap().len() <= w.size() {
            assert!(
                std::time::Instant::now() < deadline,
                "never zero-filled ahead"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn os_manager(dir: &std::path::Path) -> Manager {
        Manager::open_with(
            &Config::standalone(dir),
            Env::with_fs(Arc::new(OsFs::new())),
        )
        .unwrap()
    }

    #[test]
    fn stats_count_a_closed_writer_once_while_its_handle_lives() {
        let dir = tempfile::tempdir().unwrap();
        let m = os_manager(dir.path());
        let w = m.create(LogNum(1)).unwrap();
        for i in 0..3 {
            w.append_sync(&record(i)).unwrap();
        }
        assert_eq!(m.stats().totals.records, 3, "while open");
        w.close().unwrap();
        let stats = m.stats();
        assert_eq!(stats.totals.records, 3, "after close, handle alive");
        assert_eq!(stats.totals.syncs, stats.totals.sync_latency.count);
        assert!(stats.writer.is_none(), "no current writer after close");
        drop(w);
        assert_eq!(m.stats().totals.records, 3, "after the handle is gone");
        m.close().unwrap();
    }

    #[test]
    fn a_closed_log_on_a_zero_filled_file_reads_cleanly_and_is_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let manager = os_manager(dir.path());
        let w = manager.create(LogNum(1)).unwrap();
        let path = dir.path().join("000001.log");
        append_until_filled(&w, &path);
        let closed = w.close().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), closed, "cut back");
        let mut r = manager.open_reader(LogNum(1)).unwrap();
        let mut n = 0;
        while let Some(rec) = r.next().unwrap() {
            assert_eq!(rec.payload, record(n));
            n += 1;
        }
        assert_eq!(n, SYNCED);
        assert_eq!(r.end(), Some(&LogEnd::Clean));
        drop(w);
        manager.close().unwrap();
    }

    #[test]
    fn an_unclosed_zero_filled_log_ends_with_a_torn_tail_after_every_synced_record() {
        let dir = tempfile::tempdir().unwrap();
        let manager = os_manager(dir.path());
        let w = manager.create(LogNum(1)).unwrap();
        let path = dir.path().join("000001.log");
        append_until_filled(&w, &path);
        // What a crash would leave: the file as it is now, zeros and all.
        let image = std::fs::read(&path).unwrap();
        assert!(image.len() as u64 > w.size(), "zero-filled ahead");
        let mut r = wal_record::LogReader::new(&image[..], LogNum(1).header_bits());
        let mut n = 0;
        let end = loop {
            match r.next_record() {
                Ok(Some(rec)) => {
                    let (_, _, payload) = crate::envelope::decode(rec.payload).unwrap();
                    assert_eq!(payload, record(n));
                    n += 1;
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        assert_eq!(n, SYNCED, "every synced record is there");
        let e = end.expect("the zeros are not a clean end");
        assert!(e.is_torn_tail(), "{e}");
        w.close().unwrap();
        drop(w);
        manager.close().unwrap();
    }
}
