//! The figures a manager reports ([`crate::Manager::stats`]).

use std::time::Duration;

use wal_record::{HistogramSnapshot, LogWriterMetrics};

use crate::types::{DirId, LogNum, Lsn};

/// Figures about a manager, from [`crate::Manager::stats`].
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Logs not yet obsolete (including the open one).
    pub live_logs: usize,
    /// Their files.
    pub live_files: usize,
    /// Their size in bytes (the open log's as last known).
    pub live_bytes: u64,
    /// Obsolete files kept for recycling.
    pub obsolete_files: usize,
    /// Their size.
    pub obsolete_bytes: u64,
    /// The next LSN to be assigned.
    pub next_lsn: Lsn,
    /// The open log, if any.
    pub open_log: Option<LogNum>,
    /// Record-layer figures of the open log's current segment writer.
    pub writer: Option<LogWriterMetrics>,
    /// Record-layer figures of every segment writer since the manager
    /// opened (closed ones and the current one): monotonic counters.
    pub totals: LogWriterMetrics,
    /// Failover figures (failover manager only).
    pub failover: Option<FailoverStats>,
    /// Archive figures (only with `[archive]` configured).
    pub archive: Option<ArchiveStats>,
}

/// The archive's backlog, as the manager sees it (see [`crate::archive`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Closed logs not yet archived, live or obsolete.
    pub backlog_logs: usize,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// Of those, the obsolete ones: files kept only for the archive.
    pub awaiting_logs: usize,
    /// Their bytes.
    pub awaiting_bytes: u64,
    /// `backlog_bytes` is over `archive.backlog_bytes_max`.
    pub backlog_full: bool,
}

/// Failover figures.
#[derive(Clone, Debug, Default)]
pub struct FailoverStats {
    /// The directory new writes go to.
    pub current_dir: Option<DirId>,
    /// Directory switches so far (failovers and failbacks).
    pub switches: u64,
    /// Time spent writing to the primary.
    pub primary_time: Duration,
    /// Time spent writing to the secondary.
    pub secondary_time: Duration,
    /// End-to-end latency of appends that waited for durability, from the
    /// append to the acknowledgement, in nanoseconds.
    pub write_and_sync_latency: HistogramSnapshot,
    /// Latency of the prober's probes of the primary, in nanoseconds.
    pub probe_latency: HistogramSnapshot,
    /// Records waiting to become durable in the open log's queue.
    pub queued_records: u64,
    /// Their bytes.
    pub queued_bytes: u64,
    /// Records replayed into a new segment after a switch, over every log
    /// since the manager opened (each replayed record is written twice).
    pub replayed_records: u64,
    /// Hedges into a standby segment since the manager opened.
    pub hedges: u64,
    /// Bytes of records hedges wrote into standby segments (each also
    /// written to the current segment).
    pub standby_bytes: u64,
    /// Whether the open log is stranded: its directory is slow or stalled
    /// and the other one's probes fail, so appenders wait rather than
    /// switch back to it.
    pub stranded: bool,
}
