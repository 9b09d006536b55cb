//! The archiver: uploads every closed log in the background and tells the
//! manager which are archived.
//!
//! One thread of its own (`wal-archive`) does everything: it wakes when a
//! log closes ([`LogArchive::log_closed`] only sets a flag), when a
//! manager attaches, and when a failed upload is due again. Each pass
//! takes the manager's pending logs ([`ArchiveHandle::pending`]) and, for
//! each:
//!
//! 1. reads it through the manager (stitched from its segments, failover
//!    duplicates dropped) and re-encodes it as one segment;
//! 2. if the archive already has a manifest for it (a restart after an
//!    upload the manager never heard of, or after the upload and before
//!    the local deletion): the log must hold exactly the manifest's
//!    records, or, if it is obsolete, a part of them (what an interrupted
//!    deletion of its segments left); otherwise it is a [`Error::Conflict`]
//!    (another WAL archives to the same place): the log is kept and the
//!    conflict reported at ERROR;
//! 3. otherwise uploads the data object, then the manifest (see
//!    [`crate::manifest`]);
//! 4. tells the manager ([`ArchiveHandle::mark_archived`]), which deletes
//!    an obsolete log's files.
//!
//! A failure (the store is down, a refused request, a log that cannot be
//! read) leaves the log pending: it is logged as a WARN with the backlog
//! and retried after a back-off that doubles up to
//! [`ArchiverOptions::retry_interval_max`]; other logs go on. Nothing is
//! ever deleted by a failure. The manager reports the backlog against
//! `archive.backlog_bytes_max`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use wal_manager::{
    ArchiveConfig, ArchiveHandle, LogArchive, LogEnd, LogNum, PendingLog, Sequencing,
};

use crate::encode::{ObjectReader, encode_log};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, data_name, manifest_name};
use crate::read::{fetch, for_each_record, list};
use crate::store::{Access, S3Credentials, Store};

/// The first retry of a failed upload comes this long after the failure.
const RETRY_INTERVAL_MIN: Duration = Duration::from_millis(250);

/// Tuning of an [`Archiver`].
#[derive(Clone, Debug)]
pub struct ArchiverOptions {
    /// The longest wait before a failed upload (or listing) is tried
    /// again; the wait doubles from 250 ms up to this. Default 30 s.
    pub retry_interval_max: Duration,
    /// Credentials for an `s3://` archive; default: from the environment.
    pub credentials: Option<S3Credentials>,
}

impl Default for ArchiverOptions {
    fn default() -> Self {
        ArchiverOptions {
            retry_interval_max: Duration::from_secs(30),
            credentials: S3Credentials::from_env(),
        }
    }
}

/// What the archiver has done, for tools and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiverStatus {
    /// Logs uploaded since it started.
    pub uploaded_logs: u64,
    /// Their data objects' bytes.
    pub uploaded_bytes: u64,
    /// Logs found already archived (a restart after an upload).
    pub found_archived: u64,
    /// Failed attempts (uploads, listings, reads) since it started.
    pub failures: u64,
    /// The last failure, if the last attempt at anything failed.
    pub last_error: Option<String>,
    /// Logs pending after the last pass.
    pub pending: usize,
}

#[derive(Debug)]
struct Retry {
    attempts: u32,
    at: Instant,
}

#[derive(Debug, Default)]
struct State {
    handle: Option<ArchiveHandle>,
    /// A pass is wanted (a log closed, a manager attached).
    wake: bool,
    stop: bool,
    /// A pass is running.
    busy: bool,
    /// The manifests in the store, once listed (again after each attach).
    manifests: Option<BTreeMap<LogNum, Manifest>>,
    /// Logs (and the listing, as log `None`) whose last attempt failed.
    retries: BTreeMap<Option<LogNum>, Retry>,
    status: ArchiverStatus,
}

impl State {
    fn next_retry(&self) -> Option<Instant> {
        self.retries.values().map(|r| r.at).min()
    }

    /// Nothing to do until a log closes: nothing pending, nothing to retry.
    fn idle(&self) -> bool {
        !self.wake && !self.busy && self.retries.is_empty() && self.status.pending == 0
    }
}

#[derive(Debug)]
struct Shared {
    store: Store,
    options: ArchiverOptions,
    state: Mutex<State>,
    cv: Condvar,
}

/// Uploads a manager's closed logs to an archive in the background. Attach
/// it through [`wal_manager::Env::with_archive`]:
///
/// ```no_run
/// use std::sync::Arc;
/// use wal_archive::Archiver;
/// use wal_manager::{Config, Env, Wal};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::load("wal.toml".as_ref())?;
/// let archiver = Archiver::start(config.archive.as_ref().expect("[archive]"))?;
/// let wal = Wal::open_with(&config, Env::os().with_archive(archiver.clone()))?;
/// wal.append(b"put k v")?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Archiver {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Archiver {
    /// Opens the archive `config` names and starts the archiver's thread,
    /// with the default options. Nothing is sent to the store until a
    /// manager attaches; [`Archiver::store`]'s `check` tries it at once.
    ///
    /// # Errors
    /// As [`Archiver::start_with`].
    pub fn start(config: &ArchiveConfig) -> Result<Arc<Archiver>> {
        Archiver::start_with(config, ArchiverOptions::default())
    }

    /// [`Archiver::start`] with `options`.
    ///
    /// # Errors
    /// As [`Store::open_with`]; [`Error::Start`] if the thread cannot
    /// start.
    pub fn start_with(config: &ArchiveConfig, options: ArchiverOptions) -> Result<Arc<Archiver>> {
        let store = Store::open_with(config, options.credentials.clone(), Access::Write)?;
        let shared = Arc::new(Shared {
            store,
            options,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        });
        let runner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("wal-archive".into())
            .spawn(move || run(&runner))
            .map_err(|source| Error::Start {
                what: "thread",
                source,
            })?;
        Ok(Arc::new(Archiver {
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// The archive's store.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// What it has done so far.
    pub fn status(&self) -> ArchiverStatus {
        self.shared.state.lock().status.clone()
    }

    /// Waits until every closed log of the attached manager is archived
    /// (nothing pending, nothing failed), at most `timeout`. Returns
    /// whether that happened.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        loop {
            if st.handle.is_some() && st.idle() {
                return true;
            }
            if self.shared.cv.wait_until(&mut st, deadline).timed_out() {
                return st.handle.is_some() && st.idle();
            }
        }
    }

    /// Stops the thread: an upload in flight is abandoned (the log stays
    /// pending; the next archiver redoes it). Also done on drop.
    pub fn close(&self) {
        {
            let mut st = self.shared.state.lock();
            st.stop = true;
            self.shared.cv.notify_all();
        }
        self.shared.store.cancel();
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            // The last reference may be dropped on the archiver's own
            // thread (it briefly holds the manager, which holds the
            // archiver): it then ends by itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        self.close();
    }
}

impl LogArchive for Archiver {
    fn attach(&self, handle: ArchiveHandle) {
        let mut st = self.shared.state.lock();
        st.handle = Some(handle);
        // A new manager: look at the store again, and retry everything.
        st.manifests = None;
        st.retries.clear();
        st.wake = true;
        self.shared.cv.notify_all();
    }

    fn log_closed(&self, _log: LogNum) {
        let mut st = self.shared.state.lock();
        st.wake = true;
        self.shared.cv.notify_all();
    }
}

/// The archiver's thread.
fn run(shared: &Shared) {
    loop {
        let handle = {
            let mut st = shared.state.lock();
            loop {
                if st.stop {
                    return;
                }
                let due = st.wake || st.next_retry().is_some_and(|t| t <= Instant::now());
                if due {
                    if let Some(handle) = st.handle.clone() {
                        st.wake = false;
                        st.busy = true;
                        break handle;
                    }
                }
                match st.next_retry() {
                    Some(at) if st.handle.is_some() => {
                        shared.cv.wait_until(&mut st, at);
                    }
                    _ => shared.cv.wait(&mut st),
                }
            }
        };
        pass(shared, &handle);
        let mut st = shared.state.lock();
        st.busy = false;
        shared.cv.notify_all();
    }
}

/// One pass over the pending logs.
fn pass(shared: &Shared, handle: &ArchiveHandle) {
    let Ok(pending) = handle.pending() else {
        // The manager closed: wait for the next one to attach.
        let mut st = shared.state.lock();
        if st.handle.as_ref().is_some_and(|h| !h.is_open()) {
            st.handle = None;
        }
        return;
    };
    {
        // Retries of logs no longer pending (archived meanwhile, or gone)
        // are forgotten.
        let mut st = shared.state.lock();
        st.retries
            .retain(|log, _| log.is_none_or(|l| pending.iter().any(|p| p.log.num == l)));
    }
    if !ensure_listed(shared) {
        shared.state.lock().status.pending = pending.len();
        return;
    }
    let mut left = 0;
    for p in &pending {
        let now = Instant::now();
        {
            let st = shared.state.lock();
            if st.stop {
                return;
            }
            if st.retries.get(&Some(p.log.num)).is_some_and(|r| r.at > now) {
                left += 1;
                continue;
            }
        }
        match archive_one(shared, handle, p) {
            Ok(()) => {
                shared.state.lock().retries.remove(&Some(p.log.num));
            }
            Err(Error::Cancelled) => return,
            Err(_) if !handle.is_open() => return,
            Err(e) => {
                left += 1;
                failed(shared, Some(p.log.num), &e, handle);
            }
        }
    }
    let mut st = shared.state.lock();
    st.status.pending = left;
    if left == 0 {
        st.status.last_error = None;
    }
}

/// Lists the store's manifests if that was not done since the last attach.
/// Returns whether they are known.
fn ensure_listed(shared: &Shared) -> bool {
    {
        let st = shared.state.lock();
        if st.manifests.is_some() {
            return true;
        }
        if st.retries.get(&None).is_some_and(|r| r.at > Instant::now()) {
            return false;
        }
    }
    match list(&shared.store) {
        Ok(listing) => {
            for l in &listing.logs {
                if let Err(reason) = &l.manifest {
                    tracing::error!(log = %l.log, url = %shared.store.url(), reason = %reason, "damaged manifest in the archive; the log is uploaded again if it is still held locally");
                }
            }
            let manifests = listing
                .manifests()
                .map(|m| (m.log, m.clone()))
                .collect::<BTreeMap<_, _>>();
            let mut st = shared.state.lock();
            st.manifests = Some(manifests);
            st.retries.remove(&None);
            true
        }
        Err(e) => {
            let mut st = shared.state.lock();
            let attempts = st.retries.get(&None).map_or(0, |r| r.attempts) + 1;
            let wait = backoff(attempts, shared.options.retry_interval_max);
            st.retries.insert(
                None,
                Retry {
                    attempts,
                    at: Instant::now() + wait,
                },
            );
            st.status.failures += 1;
            st.status.last_error = Some(e.to_string());
            drop(st);
            tracing::warn!(url = %shared.store.url(), attempts, retry_in_ms = wait.as_millis() as u64, error = %e, "cannot list the archive; closed logs are kept until they are archived");
            false
        }
    }
}

/// Archives one pending log (steps 1-4 of the module docs).
fn archive_one(shared: &Shared, handle: &ArchiveHandle, p: &PendingLog) -> Result<()> {
    let log = p.log.num;
    let store = &shared.store;
    let known = shared
        .state
        .lock()
        .manifests
        .as_ref()
        .and_then(|m| m.get(&log).cloned());
    let sequencing = handle.sequencing()?;
    let encoded = encode_log(handle.open_reader(log)?, log, sequencing)?;
    if let Some(LogEnd::TornTail { path, offset }) = &encoded.end {
        tracing::warn!(log = %log, path = %path.display(), offset, "archiving a log that ends with a torn tail: its records up to the tear");
    }
    if let Some(known) = known {
        let same = known.summary == encoded.summary && known.sequencing == sequencing;
        // An obsolete log's files may be what an interrupted deletion left
        // of a log archived before: a part of it.
        if same || (p.obsolete && part_of(store, &known, &encoded.bytes, sequencing)?) {
            handle.mark_archived(log)?;
            tracing::info!(log = %log, url = %store.url(), whole = same, "log found archived already");
            shared.state.lock().status.found_archived += 1;
            return Ok(());
        }
        return Err(Error::Conflict {
            log,
            url: store.url().to_owned(),
            reason: format!(
                "archived: {} records {:?}..={:?} ({}), local: {} records {:?}..={:?} ({})",
                known.summary.records,
                known.summary.first,
                known.summary.last,
                known.sequencing.name(),
                encoded.summary.records,
                encoded.summary.first,
                encoded.summary.last,
                sequencing.name()
            ),
        });
    }
    let manifest = Manifest {
        log,
        sequencing,
        size: encoded.bytes.len() as u64,
        crc32c: crc32c::crc32c(&encoded.bytes),
        summary: encoded.summary,
    };
    let size = manifest.size;
    // The data first, the manifest last: a manifest always describes a
    // whole data object.
    store.put(&data_name(log), Bytes::from(encoded.bytes))?;
    store.put(&manifest_name(log), Bytes::from(manifest.encode()))?;
    {
        let mut st = shared.state.lock();
        if let Some(m) = st.manifests.as_mut() {
            m.insert(log, manifest);
        }
        st.status.uploaded_logs += 1;
        st.status.uploaded_bytes += size;
    }
    handle.mark_archived(log)?;
    tracing::debug!(log = %log, bytes = size, url = %store.url(), "log archived");
    Ok(())
}

/// Whether every record of `local` (an encoded log) is in the archived log
/// `known`, with the same sequence number and bytes.
fn part_of(store: &Store, known: &Manifest, local: &[u8], sequencing: Sequencing) -> Result<bool> {
    if known.sequencing != sequencing {
        return Ok(false);
    }
    let archived = fetch(store, known)?;
    let mut held = HashSet::new();
    for_each_record::<Error>(store, &archived, known, |r| {
        held.insert((r.seq, r.stored.len(), crc32c::crc32c(r.stored)));
        Ok(())
    })?;
    let mut reader = ObjectReader::new(local, known.log, sequencing);
    while let Some(r) = reader.next().map_err(|reason| Error::Corrupt {
        log: known.log,
        object: "the local log, re-encoded".into(),
        reason,
    })? {
        if !held.contains(&(r.seq, r.stored.len(), crc32c::crc32c(r.stored))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Records a failed attempt at `log` and logs it with the backlog.
fn failed(shared: &Shared, log: Option<LogNum>, e: &Error, handle: &ArchiveHandle) {
    let mut st = shared.state.lock();
    let attempts = st.retries.get(&log).map_or(0, |r| r.attempts) + 1;
    let wait = backoff(attempts, shared.options.retry_interval_max);
    st.retries.insert(
        log,
        Retry {
            attempts,
            at: Instant::now() + wait,
        },
    );
    st.status.failures += 1;
    st.status.last_error = Some(e.to_string());
    drop(st);
    let backlog = handle.pending().map(|p| p.len()).unwrap_or_default();
    let log = log.map(|l| l.0);
    if e.is_configuration() || matches!(e, Error::Conflict { .. }) {
        tracing::error!(log, attempts, backlog_logs = backlog, retry_in_ms = wait.as_millis() as u64, error = %e, "cannot archive a closed log; it is kept locally");
    } else {
        tracing::warn!(log, attempts, backlog_logs = backlog, retry_in_ms = wait.as_millis() as u64, error = %e, "cannot archive a closed log yet; it is kept locally and retried");
    }
}

/// The wait before attempt `attempts + 1`: doubling from
/// [`RETRY_INTERVAL_MIN`], at most `max`.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(16);
    RETRY_INTERVAL_MIN.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_up_to_its_bound() {
        let max = Duration::from_secs(30);
        assert_eq!(backoff(1, max), Duration::from_millis(250));
        assert_eq!(backoff(2, max), Duration::from_millis(500));
        assert_eq!(backoff(5, max), Duration::from_secs(4));
        assert_eq!(backoff(100, max), max);
    }
}
