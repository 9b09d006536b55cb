//! The hook between a manager and an archive of closed logs (the
//! `wal-archive` crate uploads them to object storage).
//!
//! While `[archive]` is configured, a log moves through these states; the
//! manager never deletes or recycles a log before its archive says it is
//! archived:
//!
//! | state | listed by `Manager::list` | files | leaves it when |
//! |---|---|---|---|
//! | open | yes | being written | its writer closes or is dropped ([`LogArchive::log_closed`]) |
//! | closed, not archived | yes | kept | the archive calls [`ArchiveHandle::mark_archived`] |
//! | closed, archived | yes | kept | `obsolete()`: recycled or handed out for deletion, as without an archive |
//! | obsolete, awaiting archive | no | kept, never recycled | [`ArchiveHandle::mark_archived`]: the files are deleted (removed, then the directory synced) |
//! | gone | no | none | |
//!
//! What the manager knows of "archived" lives in memory: a restarted
//! manager starts with every closed log not archived, and the archive
//! tells it again (it finds the log in the store). Logs below
//! `WAL-STATE`'s `obsolete_below` found at open (leftovers of an
//! interrupted deletion, or obsolete logs still awaiting their archive when
//! the process stopped) start as *obsolete, awaiting archive*: with an
//! archive configured, open deletes none of them.
//!
//! The *backlog* is every closed log not yet archived, live or obsolete.
//! Past `archive.backlog_bytes_max` the manager logs an ERROR and sets
//! [`crate::ArchiveStats::backlog_full`], and keeps the logs all the same.

use std::fmt;
use std::sync::{Arc, Weak};

use crate::core::Core;
use crate::envelope::Sequencing;
use crate::error::{Error, Result};
use crate::log::LogicalLog;
use crate::reader::LogicalReader;
use crate::types::LogNum;

/// An archive of closed logs, attached to a manager through
/// [`crate::Env::archive`].
///
/// Both methods are called on the manager's threads (the opener's, the
/// closer's) and must return at once: hand the work to a thread of the
/// archive's own.
pub trait LogArchive: Send + Sync + fmt::Debug {
    /// A manager opened with this archive. `handle` lists the logs waiting
    /// to be archived, reads them, and takes the news that one is. Called
    /// at the end of every open; a later open replaces the handle (the
    /// earlier manager is closed by then).
    fn attach(&self, handle: ArchiveHandle);

    /// Log `log` is final: its writer closed (or was dropped without
    /// closing), and nothing more will be appended to it.
    fn log_closed(&self, log: LogNum);
}

/// A closed log not yet archived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingLog {
    /// The log and its segments.
    pub log: LogicalLog,
    /// Obsolete: no longer listed by `Manager::list`; its files wait only
    /// for the archive.
    pub obsolete: bool,
}

/// What an archive holds of the manager it is attached to. It does not keep
/// the manager alive: once the manager is closed or dropped, every method
/// fails with [`Error::Closed`].
#[derive(Clone)]
pub struct ArchiveHandle {
    core: Weak<Core>,
}

impl fmt::Debug for ArchiveHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveHandle")
            .field("open", &self.is_open())
            .finish()
    }
}

impl ArchiveHandle {
    pub(crate) fn new(core: &Arc<Core>) -> ArchiveHandle {
        ArchiveHandle {
            core: Arc::downgrade(core),
        }
    }

    fn core(&self) -> Result<Arc<Core>> {
        self.core
            .upgrade()
            .filter(|c| !c.is_closed())
            .ok_or(Error::Closed("the manager"))
    }

    /// Whether the manager is still open.
    pub fn is_open(&self) -> bool {
        self.core().is_ok()
    }

    /// Every closed log not yet archived, live or obsolete, by number. The
    /// open log is never among them.
    ///
    /// # Errors
    /// [`Error::Closed`] once the manager is closed.
    pub fn pending(&self) -> Result<Vec<PendingLog>> {
        Ok(self.core()?.archive_pending())
    }

    /// A reader of pending log `log`, sequenced as the manager's records
    /// are. It tolerates a torn tail at the end (a writer dropped without
    /// closing, then a crash): what is readable is what there is to
    /// archive; [`LogicalReader::end`] says whether it was torn.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::NoSuchLog`] if `log` is not pending.
    pub fn open_reader(&self, log: LogNum) -> Result<LogicalReader> {
        self.core()?.archive_reader(log)
    }

    /// How the manager's records are sequenced.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn sequencing(&self) -> Result<Sequencing> {
        Ok(self.core()?.sequencing())
    }

    /// Log `log` is archived: durable in the store and complete. A live log
    /// may from now on be recycled or deleted when it becomes obsolete; an
    /// obsolete one has its files deleted now (removed, then the directory
    /// synced). A log the manager does not know is fine (already gone).
    ///
    /// # Errors
    /// [`Error::Closed`]; a file that cannot be removed or a directory that
    /// cannot be synced (the log stays awaiting and is offered again).
    pub fn mark_archived(&self, log: LogNum) -> Result<()> {
        self.core()?.mark_archived(log)
    }
}
