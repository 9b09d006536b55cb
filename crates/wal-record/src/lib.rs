//! The record layer of `failwal`: Pebble's WAL record format.
//!
//! * [`format`](mod@format): the 32 KiB block / chunk wire format, byte for byte.
//! * [`LogWriter`]: a group-commit writer. Many threads append; one flush
//!   thread writes and syncs for all of them; errors are sticky.
//! * [`LogReader`]: reads records back and classifies how the log ends
//!   (clean end, torn tail, or proven corruption).
//!
//! This crate sees only `std::io` and the small [`LogFile`] trait: it knows
//! nothing of directories, file names or failover.
//!
//! ```
//! use wal_record::{LogReader, LogWriter, LogWriterOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let path = std::env::temp_dir().join(format!("wal-record-doc-{}.log", std::process::id()));
//! let options = LogWriterOptions { log_num: 7, ..LogWriterOptions::default() };
//! let writer = LogWriter::new(std::fs::File::create(&path)?, options)?;
//! writer.append_sync(&[b"hello"])?; // waits until durable
//! writer.append(&[b"wor", b"ld"])?; // does not wait
//! let size = writer.close()?; // writes the EOF trailer and syncs
//!
//! let mut reader = LogReader::new(std::fs::File::open(&path)?, 7);
//! assert_eq!(reader.next_record()?.unwrap().payload, b"hello");
//! assert_eq!(reader.next_record()?.unwrap().payload, b"world");
//! assert!(reader.next_record()?.is_none());
//! assert_eq!(reader.end().unwrap().offset() + 11, size);
//! # std::fs::remove_file(&path)?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)] // `crc` alone opts back in, to call SSE 4.2 (see there)

mod crc;
mod error;
pub mod format;
mod histogram;
pub mod reader;
mod writer;

pub use error::{Error, Fault, IoOp, Proof, Result};
pub use format::{BLOCK_SIZE, WireFormat};
pub use histogram::{Histogram, HistogramSnapshot};
pub use reader::{End, LogReader, ReadRecord};
pub use writer::{
    Appended, Batch, LogFile, LogWriter, LogWriterMetrics, LogWriterOptions, SyncCallback,
    SyncEvent,
};
