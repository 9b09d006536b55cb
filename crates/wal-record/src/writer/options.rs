//! The writer's options, its figures, and where an appended record landed.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::format::WireFormat;
use crate::histogram::HistogramSnapshot;

/// What the flush thread reports after each sync, to [`LogWriterOptions::on_sync`].
#[derive(Clone, Debug)]
pub enum SyncEvent {
    /// The file is durable up to `offset`.
    Synced {
        /// The new synced offset.
        offset: u64,
    },
    /// A write or sync failed; the writer is poisoned with `error`.
    Failed {
        /// The sticky error.
        error: Error,
    },
}

/// A callback run on the flush thread after every sync and on the first
/// error. It must not block for long and must not call back into the writer
/// in a way that waits for the flush thread.
pub type SyncCallback = Arc<dyn Fn(&SyncEvent) + Send + Sync>;

/// Configuration of a [`LogWriter`](super::LogWriter).
#[derive(Clone)]
pub struct LogWriterOptions {
    /// The log's number; its low 32 bits go into every recyclable and
    /// wal-sync header, and the EOF trailer carries `log_num + 1`.
    pub log_num: u32,
    /// The header layout to write. Default: [`WireFormat::WalSync`].
    pub format: WireFormat,
    /// After a sync, no new sync starts before this much time has passed;
    /// writes continue meanwhile. Zero disables the limit.
    pub min_sync_interval: Duration,
    /// When this many encoded bytes wait for the flush thread, appenders
    /// block until it catches up. `usize::MAX` never blocks: a caller that
    /// must not stall behind a stuck file (the failover writer) bounds its
    /// memory itself. Default: 1 MiB, which keeps what is written in the
    /// CPU's cache (see `PENDING_BYTES_MAX_DEFAULT`).
    pub pending_bytes_max: usize,
    /// Records longer than this are refused with [`Error::RecordTooLarge`].
    pub record_size_max: usize,
    /// Called on the flush thread after every sync and on the first error.
    pub on_sync: Option<SyncCallback>,
    /// After a sync that covered several records, the flush thread holds
    /// the next sync until as many records have been appended again, for
    /// at most a quarter of that sync's time (and 2 ms): the appenders the
    /// sync released get back in time to share the next one instead of
    /// waiting for two. For writers whose waiters wait outside the writer
    /// (through `on_sync`); waiters of [`LogWriter::wait_synced`] linger
    /// on their own. Default: off.
    ///
    /// [`LogWriter::wait_synced`]: super::LogWriter::wait_synced
    pub sync_linger: bool,
}

impl Default for LogWriterOptions {
    fn default() -> Self {
        LogWriterOptions {
            log_num: 0,
            format: WireFormat::WalSync,
            min_sync_interval: Duration::ZERO,
            pending_bytes_max: PENDING_BYTES_MAX_DEFAULT,
            record_size_max: 256 << 20,
            on_sync: None,
            sync_linger: false,
        }
    }
}

impl std::fmt::Debug for LogWriterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriterOptions")
            .field("log_num", &self.log_num)
            .field("format", &self.format)
            .field("min_sync_interval", &self.min_sync_interval)
            .field("pending_bytes_max", &self.pending_bytes_max)
            .field("record_size_max", &self.record_size_max)
            .field("on_sync", &self.on_sync.is_some())
            .field("sync_linger", &self.sync_linger)
            .finish()
    }
}

/// Where an appended record landed in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the record's first chunk header.
    pub offset: u64,
    /// Offset just past the record, including any block padding it caused:
    /// the record is durable once the synced offset reaches this.
    pub end: u64,
}

/// Writer figures for the layer above, as of [`LogWriter::metrics`](super::LogWriter::metrics).
#[derive(Clone, Debug, Default)]
pub struct LogWriterMetrics {
    /// Records appended.
    pub records: u64,
    /// Payload bytes appended (before framing).
    pub payload_bytes: u64,
    /// Bytes handed to the file, framing and padding included.
    pub bytes_written: u64,
    /// `write` calls made by the flush thread.
    pub writes: u64,
    /// Syncs performed.
    pub syncs: u64,
    /// Latency of each `write`, in nanoseconds.
    pub write_latency: HistogramSnapshot,
    /// Latency of each sync, in nanoseconds.
    pub sync_latency: HistogramSnapshot,
    /// Records made durable by each sync (the group-commit group size).
    pub sync_group_records: HistogramSnapshot,
    /// Time the flush thread spent writing and syncing.
    pub work_time: Duration,
    /// Time the flush thread spent waiting for work.
    pub idle_time: Duration,
    /// Encoded bytes waiting for the flush thread right now.
    pub pending_bytes: u64,
    /// Bytes appended but not yet durable right now.
    pub unsynced_bytes: u64,
    /// Waits for durability that parked the thread at least once. Waits
    /// that led their own round or found their record durable under the
    /// lock are not counted.
    pub waits_parked: u64,
}

impl LogWriterMetrics {
    /// Adds `other`'s figures to these: counters and histograms add up; the
    /// two gauges (`pending_bytes`, `unsynced_bytes`) take `other`'s, the
    /// later writer's. Every field is named here, so a new one cannot be
    /// left out of a total silently.
    pub fn add(&mut self, other: &LogWriterMetrics) {
        let LogWriterMetrics {
            records,
            payload_bytes,
            bytes_written,
            writes,
            syncs,
            write_latency,
            sync_latency,
            sync_group_records,
            work_time,
            idle_time,
            pending_bytes,
            unsynced_bytes,
            waits_parked,
        } = other;
        self.records += records;
        self.payload_bytes += payload_bytes;
        self.bytes_written += bytes_written;
        self.writes += writes;
        self.syncs += syncs;
        self.write_latency.merge(write_latency);
        self.sync_latency.merge(sync_latency);
        self.sync_group_records.merge(sync_group_records);
        self.work_time += *work_time;
        self.idle_time += *idle_time;
        self.pending_bytes = *pending_bytes;
        self.unsynced_bytes = *unsynced_bytes;
        self.waits_parked += waits_parked;
    }
}

/// The default [`LogWriterOptions::pending_bytes_max`]: 1 MiB. An appender
/// that runs far ahead of the file makes every write copy cold memory: with
/// 8 MiB pending, 32 KiB records were written at 1.7-2.1 GB/s against 3.2 for
/// a plain `write(2)` loop of the same bytes; with 1 MiB, at parity (the
/// buffer stays in the CPU's cache between the append and the write).
/// Pebble's writer caps its pending blocks at 16 x 32 KiB for the same
/// reason.
pub(super) const PENDING_BYTES_MAX_DEFAULT: usize = 1 << 20;
