//! The `Manager` API: one type over the standalone and the failover
//! manager, and the `Writer` of one log. The bookkeeping both managers
//! share is in `core`; what they run on in `env`.

use std::ops::Range;

use wal_record::LogWriterMetrics;

use crate::config::Config;
use crate::core::Core;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::failover::FailoverManager;
use crate::failover::writer::FailoverWriter;
use crate::log::{DeletableFile, Dirs, LogicalLog};
use crate::reader::LogicalReader;
use crate::standalone::{StandaloneManager, StandaloneWriter};
use crate::stats::Stats;
use crate::types::{DirId, LogNum, Lsn};

/// A log manager: standalone (one directory) or failover (primary and
/// secondary), chosen by the configuration.
///
/// ```
/// use wal_manager::{Config, LogNum, Manager};
///
/// # fn main() -> Result<(), wal_manager::Error> {
/// let dir = std::env::temp_dir().join(format!("wal-manager-doc-{}", std::process::id()));
/// let manager = Manager::open(&Config::standalone(&dir))?;
/// let writer = manager.create(LogNum(1))?;
/// let lsn = writer.append_sync(b"put k v")?; // durable when this returns
/// writer.close()?;
///
/// let mut reader = manager.open_reader(LogNum(1))?;
/// let record = reader.next()?.expect("one record");
/// assert_eq!((record.lsn, record.payload), (lsn, &b"put k v"[..]));
/// manager.close()?;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub enum Manager {
    /// One directory.
    Standalone(StandaloneManager),
    /// A primary and a secondary directory.
    Failover(FailoverManager),
}

impl Manager {
    /// Opens the manager `config` describes, on real directories.
    ///
    /// # Errors
    /// As [`Manager::open_with`].
    pub fn open(config: &Config) -> Result<Manager> {
        Manager::open_with(config, Env::os())
    }

    /// Opens the manager `config` describes, on `env`: creates the
    /// directories if needed, locks them, checks the secondary's identity,
    /// finds the existing logs and recovers the next LSN.
    ///
    /// # Errors
    /// An invalid configuration, a directory that cannot be created or is
    /// locked by another manager, the wrong secondary, duplicate segments,
    /// or corruption in the newest log.
    #[allow(clippy::needless_pass_by_value)] // an Env is a few Arcs; taking it reads better
    pub fn open_with(config: &Config, env: Env) -> Result<Manager> {
        config.validate().map_err(|message| Error::Config {
            origin: "Manager::open".into(),
            message,
        })?;
        if env.archive.is_some() && config.archive.is_none() {
            return Err(Error::Config {
                origin: "Manager::open".into(),
                message: "an archive is attached (Env::archive) but the configuration has no [archive] table: set archive.url to where it archives".into(),
            });
        }
        if config.is_failover() {
            FailoverManager::open(config, &env).map(Manager::Failover)
        } else {
            StandaloneManager::open(config, &env).map(Manager::Standalone)
        }
    }

    fn core(&self) -> &Core {
        match self {
            Manager::Standalone(m) => m.core(),
            Manager::Failover(m) => m.core(),
        }
    }

    /// The logs not yet obsolete, with their segments. No I/O.
    pub fn list(&self) -> Vec<LogicalLog> {
        self.core().list()
    }

    /// Starts log `log`, which must be above every existing log and not
    /// below the obsolete watermark ([`Manager::next_log_num`] is the
    /// lowest number accepted). The previous writer must have been closed.
    ///
    /// # Errors
    /// A writer is open ([`Error::WriterOpen`]), the number does not
    /// increase ([`Error::LogNumNotIncreasing`]) or is obsolete
    /// ([`Error::LogNumObsolete`]), or the file cannot be created.
    pub fn create(&self, log: LogNum) -> Result<Writer> {
        match self {
            Manager::Standalone(m) => m.create(log).map(Writer::Standalone),
            Manager::Failover(m) => m.create(log).map(Writer::Failover),
        }
    }

    /// Marks every closed log below `min_unflushed` obsolete: the caller no
    /// longer needs them. Files that can be reused are renamed
    /// `recycle-NNNNNN.log` and kept in the recycler (a restart finds them
    /// there, never as live logs); the rest are returned for deletion. Before returning, the LSN floor is
    /// made durable, so LSNs keep increasing even if every log goes.
    ///
    /// # Errors
    /// The LSN floor cannot be written.
    pub fn obsolete(&self, min_unflushed: LogNum) -> Result<Vec<DeletableFile>> {
        let dir = match self {
            Manager::Standalone(_) => DirId::Primary,
            Manager::Failover(m) => m.current_dir(),
        };
        self.core().obsolete(min_unflushed, dir)
    }

    /// Deletes files returned by [`Manager::obsolete`], then syncs their
    /// directories.
    ///
    /// # Errors
    /// A file cannot be removed (one already gone is not an error).
    pub fn delete_obsolete(&self, files: &[DeletableFile]) -> Result<()> {
        self.core().delete(files)
    }

    /// A reader of log `log`.
    ///
    /// # Errors
    /// [`Error::NoSuchLog`].
    pub fn open_reader(&self, log: LogNum) -> Result<LogicalReader> {
        self.core().open_reader(log)
    }

    /// Current figures.
    pub fn stats(&self) -> Stats {
        match self {
            Manager::Standalone(m) => m.stats(),
            Manager::Failover(m) => m.stats(),
        }
    }

    /// The next LSN to be assigned.
    pub fn next_lsn(&self) -> Lsn {
        self.core().next_lsn()
    }

    /// The lowest log number [`Manager::create`] accepts now: above every
    /// log that exists and at or above the obsolete watermark (logs below
    /// it are deleted at open, so a new log there would not survive).
    pub fn next_log_num(&self) -> LogNum {
        self.core().next_log_num()
    }

    /// Publishes this manager's figures through the `metrics` facade (see
    /// [`crate::metrics`] for the names).
    pub fn publish_metrics(&self) {
        crate::metrics::publish(&self.stats());
    }

    /// Whether an engine should tolerate a higher write-stall threshold now:
    /// the log is on the secondary, or failed back recently (Pebble's
    /// `ElevateWriteStallThresholdForFailover`). Always false when
    /// standalone.
    pub fn elevate_write_stall_threshold(&self) -> bool {
        match self {
            Manager::Standalone(_) => false,
            Manager::Failover(m) => m.elevate_write_stall_threshold(),
        }
    }

    /// Sets the next LSN to assign, for `Wal::truncate_after`: only while no
    /// writer is open, and only to rewind past records being truncated.
    pub(crate) fn rewind_next_lsn(&self, next: Lsn) -> Result<()> {
        self.core().rewind_next_lsn(next)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.core().config
    }

    /// The directories.
    pub fn dirs(&self) -> &Dirs {
        &self.core().dirs
    }

    /// Closes the manager: stops its threads, waits for background closes of
    /// old segment writers, and releases the directory locks, so that the
    /// directories can be opened again at once (a closed [`Writer`] still
    /// held elsewhere does not keep them). Closing twice is fine. After a
    /// failed close the manager stays open and usable, and close can be
    /// tried again.
    ///
    /// Dropping a manager without closing it does the same, except that
    /// while a writer is still open the locks stay with that writer until
    /// it is dropped: two writers must never share a directory.
    ///
    /// # Errors
    /// [`Error::CloseWithWriterOpen`] if a writer is still open.
    pub fn close(&self) -> Result<()> {
        match self {
            Manager::Standalone(m) => m.close(),
            Manager::Failover(m) => m.close(),
        }
    }
}

/// The writer of one log. Shared between threads (`&self` everywhere).
#[derive(Debug)]
pub enum Writer {
    /// A standalone manager's writer.
    Standalone(StandaloneWriter),
    /// A failover manager's writer.
    Failover(FailoverWriter),
}

impl Writer {
    /// The log being written.
    pub fn log(&self) -> LogNum {
        match self {
            Writer::Standalone(w) => w.log(),
            Writer::Failover(w) => w.log(),
        }
    }

    /// Appends a record and returns its LSN without waiting for it to be
    /// durable ([`Writer::wait_durable`] or [`Writer::sync`] wait later).
    ///
    /// # Errors
    /// The record is too large, the writer is closed, or writing failed for
    /// good.
    pub fn append_nowait(&self, payload: &[u8]) -> Result<Lsn> {
        self.append_group(&[payload], false).map(|r| r.start)
    }

    /// Appends a record and waits until it is durable (group commit with
    /// concurrent appenders); returns its LSN.
    ///
    /// # Errors
    /// As [`Writer::append_nowait`], plus a failed sync (standalone) or a
    /// failure of every directory (failover).
    pub fn append_sync(&self, payload: &[u8]) -> Result<Lsn> {
        self.append_group(&[payload], true).map(|r| r.start)
    }

    /// Appends records as one group, contiguous in LSN order, without
    /// waiting for them to be durable. Returns their LSNs.
    ///
    /// # Errors
    /// As [`Writer::append_nowait`]; nothing is appended if a record is too
    /// large.
    pub fn append_batch_nowait(&self, payloads: &[&[u8]]) -> Result<Range<Lsn>> {
        self.append_group(payloads, false)
    }

    /// Appends records as one group, contiguous in LSN order, and waits
    /// until all are durable. Returns their LSNs.
    ///
    /// # Errors
    /// As [`Writer::append_sync`]; nothing is appended if a record is too
    /// large.
    pub fn append_batch_sync(&self, payloads: &[&[u8]]) -> Result<Range<Lsn>> {
        self.append_group(payloads, true)
    }

    /// Appends records as one group; with `sync`, waits until all are
    /// durable.
    pub(crate) fn append_group(&self, payloads: &[&[u8]], sync: bool) -> Result<Range<Lsn>> {
        match self {
            Writer::Standalone(w) => w.append_group(payloads, sync),
            Writer::Failover(w) => w.append_group(payloads, sync),
        }
    }

    /// Waits until the record `lsn` (and every earlier one) is durable.
    ///
    /// # Errors
    /// As [`Writer::append_sync`].
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        match self {
            Writer::Standalone(w) => w.wait_durable(lsn),
            Writer::Failover(w) => w.wait_durable(lsn),
        }
    }

    /// Makes everything appended so far durable; returns the last LSN
    /// appended (`None` if nothing was).
    ///
    /// # Errors
    /// As [`Writer::append_sync`].
    pub fn sync(&self) -> Result<Option<Lsn>> {
        match self {
            Writer::Standalone(w) => w.sync(),
            Writer::Failover(w) => w.sync(),
        }
    }

    /// Closes the log: writes the trailer, makes everything durable, and
    /// returns the log's logical size (its bytes as if it were one segment).
    ///
    /// # Errors
    /// The final write or sync failed.
    pub fn close(&self) -> Result<u64> {
        match self {
            Writer::Standalone(w) => w.close(),
            Writer::Failover(w) => w.close(),
        }
    }

    /// Record-layer figures of the current segment.
    pub fn metrics(&self) -> LogWriterMetrics {
        match self {
            Writer::Standalone(w) => w.metrics(),
            Writer::Failover(w) => w.metrics(),
        }
    }

    /// The log's logical size so far: its bytes as if it were one segment.
    pub fn size(&self) -> u64 {
        match self {
            Writer::Standalone(w) => w.size(),
            Writer::Failover(w) => w.size(),
        }
    }

    /// Hands everything appended so far to the file (without syncing), so
    /// that a reader of the log sees it. For a failover log, waits until the
    /// newest segment exists.
    ///
    /// # Errors
    /// The writer failed for good.
    pub fn flush(&self) -> Result<()> {
        match self {
            Writer::Standalone(w) => w.flush(),
            Writer::Failover(w) => w.flush(),
        }
    }

    /// Appends a *system* record (the LSN's top bit set) carrying `payload`,
    /// with the LSN of the last record assigned so far (it does not use up
    /// an LSN), and waits until it is durable. Allowed only as the first
    /// record of a log, so that it can never be mistaken for a duplicate.
    /// The `Wal` API builds checkpoints and truncation markers on this.
    ///
    /// # Errors
    /// Records were already appended to this log
    /// ([`Error::MarkerNotFirst`]), or as [`Writer::append_sync`].
    pub(crate) fn append_marker(&self, payload: &[u8]) -> Result<Lsn> {
        match self {
            Writer::Standalone(w) => w.append_marker(payload),
            Writer::Failover(w) => w.append_marker(payload),
        }
    }
}
