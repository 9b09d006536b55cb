//! The standalone manager: every log is one segment in one directory.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wal_record::{LogWriter, LogWriterMetrics};

use crate::config::Config;
use crate::envelope;
use crate::error::{Error, Result};
use crate::log::Segment;
use crate::manager::{Core, Env, Stats};
use crate::recorder::PlainFile;
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
    pub fn open(config: &Config, env: &Env) -> Result<StandaloneManager> {
        Ok(StandaloneManager {
            core: Arc::new(Core::open(config, env)?),
        })
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// Starts log `log`; see [`crate::Manager::create`].
    ///
    /// # Errors
    /// As [`crate::Manager::create`].
    pub fn create(&self, log: LogNum) -> Result<StandaloneWriter> {
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
    pub fn close(self) -> Result<()> {
        self.core.close()
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
    pub fn log(&self) -> LogNum {
        self.log
    }

    fn seg_err(&self, source: wal_record::Error) -> Error {
        Error::Segment {
            log: self.log,
            path: self.path.clone(),
            source,
        }
    }

    fn check_size(&self, payload: &[u8]) -> Result<()> {
        let max = self.core.record_size_max();
        if payload.len() > max {
            return Err(self.seg_err(wal_record::Error::RecordTooLarge {
                offset: 0,
                len: payload.len() as u64,
                max: max as u64,
            }));
        }
        Ok(())
    }

    /// Appends one record; see [`crate::Writer::append`].
    ///
    /// # Errors
    /// As [`crate::Writer::append_sync`].
    pub fn append(&self, payload: &[u8], sync: bool) -> Result<Lsn> {
        self.append_batch(&[payload], sync).map(|r| r.start)
    }

    /// Appends records as one group; see [`crate::Writer::append_batch`].
    ///
    /// # Errors
    /// As [`crate::Writer::append_batch`].
    pub fn append_batch(&self, payloads: &[&[u8]], sync: bool) -> Result<Range<Lsn>> {
        for p in payloads {
            self.check_size(p)?;
        }
        let counter = &self.core.next_lsn;
        let (lsns, end) = self
            .lw
            .append_with(sync, |batch| {
                // Under the writer's lock: LSN order is file order. Sizes
                // were checked above, so no push can fail and leave a gap.
                let lsns = Core::take_lsns(counter, payloads.len() as u64);
                for (i, p) in payloads.iter().enumerate() {
                    let prefix = envelope::lsn_prefix(Lsn(lsns.start.0 + i as u64), false);
                    batch.push(&[&prefix, p])?;
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
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        let _ = lsn;
        self.lw.sync().map(|_| ()).map_err(|e| self.seg_err(e))
    }

    /// Makes everything appended durable; see [`crate::Writer::sync`].
    ///
    /// # Errors
    /// As [`crate::Writer::append_sync`].
    pub fn sync(&self) -> Result<Option<Lsn>> {
        let last = self.core.next_lsn().0.checked_sub(1).map(Lsn);
        self.lw.sync().map_err(|e| self.seg_err(e))?;
        Ok(last)
    }

    /// Closes the log; see [`crate::Writer::close`].
    ///
    /// # Errors
    /// As [`crate::Writer::close`].
    pub fn close(&self) -> Result<u64> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed("the writer"));
        }
        let result = self.lw.close();
        self.core.accumulate(&self.lw.metrics());
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
    pub fn append_marker(&self, payload: &[u8]) -> Result<Lsn> {
        self.check_size(payload)?;
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
    pub fn flush(&self) -> Result<()> {
        self.lw.flush().map(|_| ()).map_err(|e| self.seg_err(e))
    }

    /// Record-layer figures.
    pub fn metrics(&self) -> LogWriterMetrics {
        self.lw.metrics()
    }

    /// Bytes written to the segment so far (framing included).
    pub fn size(&self) -> u64 {
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
