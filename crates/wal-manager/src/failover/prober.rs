//! The prober: while the log is on the secondary, it measures whether the
//! primary is healthy again by removing, creating, writing and syncing a
//! probe file there every `probe_interval` (Pebble's `dirProber`).
//!
//! A failed probe counts as a 24-hour latency. The last
//! 128 samples (`PROBE_HISTORY_LEN`) are kept; the monitor fails back when the
//! mean and the max of the samples covering `healthy_interval` are both
//! below `healthy_probe_latency_threshold`. Too few samples count as
//! unhealthy. History is cleared whenever probing stops, so samples from an
//! earlier failover never vouch for the primary now.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use parking_lot::Mutex;
use wal_record::Histogram;

use crate::clock::Clock;
use crate::config::PROBE_HISTORY_LEN;
use crate::log::Dir;

/// The latency recorded for a failed probe (Pebble: 24 hours).
pub const FAILED_PROBE_LATENCY: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Default)]
struct State {
    enabled: bool,
    /// Bumped when probing stops, so a probe started before cannot record
    /// into the new history.
    generation: u64,
    // INVARIANT: history.len() <= PROBE_HISTORY_LEN.
    history: VecDeque<Duration>,
    /// When the running probe started (clock time), if one runs.
    running_since: Option<Duration>,
}

/// Probes the primary directory.
#[derive(Debug)]
pub struct Prober {
    dir: Dir,
    clock: Arc<dyn Clock>,
    interval: Duration,
    payload: Vec<u8>,
    state: Mutex<State>,
    latency: Histogram,
}

impl Prober {
    /// A prober of `dir` writing `probe_size` bytes per probe.
    pub fn new(dir: Dir, clock: Arc<dyn Clock>, interval: Duration, probe_size: usize) -> Prober {
        // Incompressible-looking bytes, so a smart disk cannot shortcut them.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let payload = (0..probe_size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Prober {
            dir,
            clock,
            interval,
            payload,
            state: Mutex::new(State::default()),
            latency: Histogram::new(),
        }
    }

    /// Starts probing (on failover to the secondary).
    pub fn enable(&self) {
        self.state.lock().enabled = true;
    }

    /// Stops probing and forgets the history (on failback).
    pub fn disable(&self) {
        let mut st = self.state.lock();
        st.enabled = false;
        st.generation += 1;
        st.history.clear();
    }

    /// Whether probing is on.
    pub fn enabled(&self) -> bool {
        self.state.lock().enabled
    }

    /// Runs one probe if probing is on and records its latency; returns it.
    pub fn probe_once(&self) -> Option<Duration> {
        let generation = {
            let mut st = self.state.lock();
            if !st.enabled {
                return None;
            }
            st.running_since = Some(self.clock.now());
            st.generation
        };
        let latency = self.probe();
        self.latency.record_duration(latency);
        let mut st = self.state.lock();
        st.running_since = None;
        if st.enabled && st.generation == generation {
            if st.history.len() == PROBE_HISTORY_LEN as usize {
                st.history.pop_front();
            }
            st.history.push_back(latency);
        }
        Some(latency)
    }

    fn probe(&self) -> Duration {
        let fs = &self.dir.fs;
        let path = self.dir.path.join(crate::naming::PROBE_FILE);
        let start = self.clock.now();
        let ok = (|| -> wal_fs::Result<()> {
            match fs.remove(&path) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            let mut f = fs.create(&path)?;
            f.write(&self.payload)?;
            f.sync_data()?;
            f.close()
        })();
        match ok {
            Ok(()) => self.clock.now().saturating_sub(start),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "probe of the primary failed");
                FAILED_PROBE_LATENCY
            }
        }
    }

    /// The latest probe's latency since probing started
    /// ([`FAILED_PROBE_LATENCY`] if it failed); `None` before the first.
    pub fn last(&self) -> Option<Duration> {
        self.state.lock().history.back().copied()
    }

    /// How long the running probe has been running, if one runs.
    pub fn running_for(&self) -> Option<Duration> {
        let since = self.state.lock().running_since?;
        Some(self.clock.now().saturating_sub(since))
    }

    /// Mean and max of the samples covering the last `window`; both
    /// [`FAILED_PROBE_LATENCY`] if there are not enough samples yet.
    ///
    /// # Panics
    /// If `window` needs more samples than the history holds or none at all
    /// (configuration validation rules this out).
    pub fn mean_max(&self, window: Duration) -> (Duration, Duration) {
        let needed = window.as_nanos().div_ceil(self.interval.as_nanos());
        assert!(
            (1..=u128::from(PROBE_HISTORY_LEN)).contains(&needed),
            "healthy interval needs {needed} probes"
        );
        let needed = needed as usize;
        let st = self.state.lock();
        if st.history.len() < needed {
            return (FAILED_PROBE_LATENCY, FAILED_PROBE_LATENCY);
        }
        let recent = st.history.iter().skip(st.history.len() - needed);
        let (sum, max) = recent.fold((Duration::ZERO, Duration::ZERO), |(s, m), &d| {
            (s.saturating_add(d), m.max(d))
        });
        (sum / needed as u32, max)
    }

    /// Latency of every probe so far, in nanoseconds.
    pub fn latency(&self) -> wal_record::HistogramSnapshot {
        self.latency.snapshot()
    }

    /// The probe interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// A probe started on its own thread ([`crate::FailoverManager::start_probe`]).
#[derive(Debug)]
pub struct ProbeHandle {
    rx: mpsc::Receiver<Option<Duration>>,
}

impl ProbeHandle {
    pub(crate) fn spawn(prober: Arc<Prober>) -> ProbeHandle {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("wal-probe".into())
            .spawn(move || {
                let _ = tx.send(prober.probe_once());
            })
            .expect("spawning a probe thread");
        ProbeHandle { rx }
    }

    /// Waits up to `timeout` (real time) for the probe; `Some(latency)` when it
    /// finished (`None` inside if probing was off), `None` if it is still
    /// running (the primary is stalled).
    pub fn wait(&self, timeout: Duration) -> Option<Option<Duration>> {
        self.rx.recv_timeout(timeout).ok()
    }
}
