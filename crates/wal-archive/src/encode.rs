//! A log as the archive stores it: its records re-encoded into one
//! segment-0 file (wal-record's `LogWriter`, wal-sync chunks, an EOF
//! trailer), and the same file read back.
//!
//! The encoder asks for a sync every [`SYNC_EVERY_BYTES`] (a no-op on the
//! in-memory file), so that the synced offsets in the chunk headers are
//! real: a restored file later damaged on its disk reads as corruption, as
//! a log written by the managers does, rather than as a torn tail.

use std::sync::Arc;

use parking_lot::Mutex;
use wal_manager::layout::{decode_envelope, lsn_prefix};
use wal_manager::{LogEnd, LogNum, LogicalReader, Sequencing, decode_batch_header};
use wal_record::{End, LogFile, LogReader, LogWriter, LogWriterOptions, WireFormat};

use crate::error::{Error, Result};
use crate::manifest::RecordSummary;

/// Bytes between the encoder's syncs.
const SYNC_EVERY_BYTES: u64 = 1 << 20;

/// A log encoded for the archive.
#[derive(Debug)]
pub(crate) struct Encoded {
    /// The segment file's bytes.
    pub(crate) bytes: Vec<u8>,
    /// Its records.
    pub(crate) summary: RecordSummary,
    /// How the local log ended (a torn tail is archived up to the tear).
    pub(crate) end: Option<LogEnd>,
}

/// A `LogFile` in memory whose bytes outlive the writer that closes it.
#[derive(Clone, Debug, Default)]
struct SharedFile(Arc<Mutex<Vec<u8>>>);

impl LogFile for SharedFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.lock().extend_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes stored records into one segment-0 file of log `log`.
pub(crate) struct SegmentEncoder {
    log: LogNum,
    file: SharedFile,
    writer: LogWriter<SharedFile>,
    since_sync: u64,
    summary: RecordSummary,
}

impl SegmentEncoder {
    /// An encoder of log `log`.
    pub(crate) fn new(log: LogNum) -> Result<SegmentEncoder> {
        let file = SharedFile::default();
        let options = LogWriterOptions {
            log_num: log.header_bits(),
            format: WireFormat::WalSync,
            // Whatever the manager took, the archive takes.
            record_size_max: usize::MAX,
            ..LogWriterOptions::default()
        };
        let writer = LogWriter::new(file.clone(), options)
            .map_err(|source| Error::Encode { log, source })?;
        Ok(SegmentEncoder {
            log,
            file,
            writer,
            since_sync: 0,
            summary: RecordSummary::default(),
        })
    }

    /// Appends one stored record (its envelope or batch header included)
    /// whose sequence number is `seq`.
    pub(crate) fn push(&mut self, seq: u64, stored: &[u8]) -> Result<()> {
        let appended = self
            .writer
            .append(&[stored])
            .map_err(|source| Error::Encode {
                log: self.log,
                source,
            })?;
        self.summary.add(seq, stored);
        self.since_sync += appended.end - appended.offset;
        if self.since_sync >= SYNC_EVERY_BYTES {
            self.since_sync = 0;
            self.writer.sync().map_err(|source| Error::Encode {
                log: self.log,
                source,
            })?;
        }
        Ok(())
    }

    /// Writes the trailer and returns the file's bytes and what they hold.
    pub(crate) fn finish(self) -> Result<(Vec<u8>, RecordSummary)> {
        let size = self.writer.close().map_err(|source| Error::Encode {
            log: self.log,
            source,
        })?;
        drop(self.writer);
        let bytes = std::mem::take(&mut *self.file.0.lock());
        assert_eq!(bytes.len() as u64, size, "the writer wrote every byte");
        Ok((bytes, self.summary))
    }
}

/// Reads every record of `reader` (a log as the managers read it: stitched
/// from its segments, duplicates dropped) into one segment.
pub(crate) fn encode_log(
    mut reader: LogicalReader,
    log: LogNum,
    sequencing: Sequencing,
) -> Result<Encoded> {
    let mut encoder = SegmentEncoder::new(log)?;
    let mut stored = Vec::new();
    while let Some(record) = reader.next()? {
        match sequencing {
            Sequencing::Lsn => {
                stored.clear();
                stored.extend_from_slice(&lsn_prefix(record.lsn, record.system));
                stored.extend_from_slice(record.payload);
                encoder.push(record.lsn.0, &stored)?;
            }
            Sequencing::PebbleBatch => encoder.push(record.lsn.0, record.payload)?,
        }
    }
    let end = reader.end().cloned();
    let (bytes, summary) = encoder.finish()?;
    Ok(Encoded {
        bytes,
        summary,
        end,
    })
}

/// One record of an archived log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchivedRecord<'a> {
    /// Its LSN; in `pebble-batch` mode, its batch's sequence number.
    pub seq: u64,
    /// Whether it is a system record (`lsn` sequencing only).
    pub system: bool,
    /// In `pebble-batch` mode, the batch's operation count.
    pub count: Option<u32>,
    /// The caller's payload (without the LSN prefix; the whole batch in
    /// `pebble-batch` mode).
    pub payload: &'a [u8],
    /// The record as stored (with its LSN prefix).
    pub stored: &'a [u8],
    /// Offset of the record in the archived file.
    pub offset: u64,
    /// Offset just past it.
    pub end: u64,
}

/// Reads the records of an archived log's data object.
pub(crate) struct ObjectReader<'a> {
    reader: LogReader<&'a [u8]>,
    sequencing: Sequencing,
}

impl<'a> ObjectReader<'a> {
    /// A reader of `bytes`, the data object of log `log`.
    pub(crate) fn new(bytes: &'a [u8], log: LogNum, sequencing: Sequencing) -> ObjectReader<'a> {
        ObjectReader {
            reader: LogReader::new(bytes, log.header_bits()),
            sequencing,
        }
    }

    /// The next record; `None` at the end. The caller checks the end with
    /// [`ObjectReader::end`].
    ///
    /// # Errors
    /// A bad chunk (as text), or a record too short for its sequencing.
    pub(crate) fn next(&mut self) -> std::result::Result<Option<ArchivedRecord<'_>>, String> {
        let sequencing = self.sequencing;
        let Some(r) = self.reader.next_record().map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let (seq, system, count, payload) = match sequencing {
            Sequencing::Lsn => {
                let (lsn, system, payload) = decode_envelope(r.payload).ok_or_else(|| {
                    format!(
                        "the record at offset {} has {} bytes, too short for its LSN",
                        r.offset,
                        r.payload.len()
                    )
                })?;
                (lsn.0, system, None, payload)
            }
            Sequencing::PebbleBatch => {
                let h = decode_batch_header(r.payload).ok_or_else(|| {
                    format!(
                        "the record at offset {} has {} bytes, too short for a batch header",
                        r.offset,
                        r.payload.len()
                    )
                })?;
                (h.seq, false, Some(h.count), r.payload)
            }
        };
        Ok(Some(ArchivedRecord {
            seq,
            system,
            count,
            payload,
            stored: r.payload,
            offset: r.offset,
            end: r.end,
        }))
    }

    /// How the file ended, once `next` returned `None`.
    pub(crate) fn end(&self) -> Option<End> {
        self.reader.end()
    }
}
