//! The background syncer of the `periodic` policy: it syncs the current
//! log every `sync_interval`, or sooner when asked (every N records).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

use super::WriterSlot;

/// The background syncer of the `periodic` policy.
#[derive(Debug, Default)]
pub(super) struct Syncer {
    /// Records appended since the last background sync.
    pub(super) pending: AtomicU64,
    /// What the thread is asked to do; guarded so that no request is lost
    /// between the thread's check and its wait.
    pub(super) control: Mutex<SyncerControl>,
    pub(super) cv: Condvar,
}

#[derive(Debug, Default)]
pub(super) struct SyncerControl {
    pub(super) stop: bool,
    /// A sync is wanted now (every N records).
    pub(super) now: bool,
}

/// The running syncer; stopping it (on close or drop) joins the thread.
#[derive(Debug)]
pub(super) struct SyncerThread {
    pub(super) syncer: Arc<Syncer>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for SyncerThread {
    fn drop(&mut self) {
        self.syncer.control.lock().stop = true;
        self.syncer.cv.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Starts the `periodic` policy's background syncer: it syncs the current
/// log every `interval`, or sooner when notified (every N records).
pub(super) fn spawn_syncer(writer: &WriterSlot, interval: Duration) -> Result<SyncerThread> {
    let syncer = Arc::new(Syncer::default());
    let (s, w) = (Arc::clone(&syncer), Arc::clone(writer));
    let handle = std::thread::Builder::new()
        .name("wal-periodic-sync".into())
        .spawn(move || {
            loop {
                {
                    let mut control = s.control.lock();
                    if !control.stop && !control.now {
                        s.cv.wait_for(&mut control, interval);
                    }
                    if control.stop {
                        return;
                    }
                    control.now = false;
                }
                if s.pending.swap(0, Ordering::Relaxed) == 0 {
                    continue;
                }
                let current = Arc::clone(&w.read());
                if let Err(e) = current.sync() {
                    // The writer's error is sticky: the next append gets it.
                    tracing::error!(error = %e, "periodic sync failed");
                }
            }
        })
        .map_err(|source| Error::Spawn {
            thread: "wal-periodic-sync".into(),
            source,
        })?;
    Ok(SyncerThread {
        syncer,
        handle: Some(handle),
    })
}
