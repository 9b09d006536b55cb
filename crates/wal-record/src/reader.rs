//! The log reader and its classification of how a log ends.
//!
//! # How a log ends (the decision table)
//!
//! The reader returns records until it reaches the end of the log, which it
//! classifies. A *bad chunk* is any chunk that is not valid where it stands:
//! a zeroed header with room for a real one, an invalid type byte, a header
//! or payload running past its block, a wrong log number, a checksum
//! mismatch, non-zero block padding, or a chunk out of place in its record.
//! When it meets one at offset `X`, the reader *reads ahead*: it scans every
//! later block for a valid wal-sync chunk of this log whose synced offset
//! `S > X`. Such a chunk proves that the file had been synced past `X` before
//! the crash, so the bytes at `X` were durable and are now damaged.
//!
//! | # | what the reader meets                                             | outcome                      |
//! |---|-------------------------------------------------------------------|------------------------------|
//! | 1 | end of file at a record boundary                                  | clean end (`Boundary`)       |
//! | 2 | the EOF trailer (log number + 1) where a record starts            | clean end (`Trailer`)        |
//! | 3 | end of file inside a record or inside a chunk header              | torn tail                    |
//! | 4 | zero padding of fewer than 19 bytes at the end of a full block    | skipped (not an end)         |
//! | 5 | a bad chunk, and no later chunk proves it was synced              | torn tail at the record start|
//! | 6 | a bad chunk, and a later wal-sync chunk has synced offset `S > X` | corruption                   |
//! | 7 | a chunk of another log (stale bytes of a recycled file), unproven | torn tail (row 5)            |
//!
//! Rows 5-7 cover every kind of bad chunk ([`Fault`]). Legacy and recyclable
//! chunks carry no synced offset, so a log written only in those formats can
//! never prove corruption: its bad tails are always torn tails. The same
//! table is [`CLASSIFICATION`], and a test builds a log for every row.
//!
//! The reader never returns bytes whose checksum failed, never panics on any
//! input, and latches its outcome: after the end or an error, every further
//! call returns the same thing.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read};

use crate::error::{Error, Fault, IoOp, Proof, Result};
use crate::format::{
    self, BLOCK_SIZE, ChunkType, HEADER_SIZE_MAX, Position, TYPE_OFFSET, WireFormat,
};

/// One row of the reader's decision table (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// What the reader meets.
    pub situation: &'static str,
    /// How it classifies it.
    pub outcome: Outcome,
}

/// The classification of a [`Case`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The log ends cleanly at a record boundary.
    CleanBoundary,
    /// The log ends cleanly at its EOF trailer.
    CleanTrailer,
    /// Padding is skipped; reading continues.
    Skipped,
    /// The log ends with a tolerable torn tail.
    TornTail,
    /// The log is corrupt.
    Corruption,
}

/// The decision table, as data. Tests walk every row.
pub const CLASSIFICATION: &[Case] = &[
    Case {
        situation: "end of file at a record boundary",
        outcome: Outcome::CleanBoundary,
    },
    Case {
        situation: "EOF trailer where a record starts",
        outcome: Outcome::CleanTrailer,
    },
    Case {
        situation: "end of file inside a record or a chunk header",
        outcome: Outcome::TornTail,
    },
    Case {
        situation: "zero padding shorter than a wal-sync header at the end of a full block",
        outcome: Outcome::Skipped,
    },
    Case {
        situation: "bad chunk, no later proof",
        outcome: Outcome::TornTail,
    },
    Case {
        situation: "bad chunk, later wal-sync chunk synced past it",
        outcome: Outcome::Corruption,
    },
    Case {
        situation: "chunk of another log (recycled file), no later proof",
        outcome: Outcome::TornTail,
    },
];

/// How a log ended cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum End {
    /// The file ends on a record boundary at `offset` (its length).
    Boundary {
        /// The file length.
        offset: u64,
    },
    /// The writer's EOF trailer starts at `offset`.
    Trailer {
        /// Offset of the trailer.
        offset: u64,
    },
}

impl End {
    /// Where the valid log ends.
    pub fn offset(self) -> u64 {
        match self {
            End::Boundary { offset } | End::Trailer { offset } => offset,
        }
    }
}

/// A record returned by [`LogReader::next_record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRecord<'a> {
    /// Offset of the record's first chunk header.
    pub offset: u64,
    /// Offset just past its last chunk.
    pub end: u64,
    /// The record's bytes.
    pub payload: &'a [u8],
}

/// What [`parse_chunk`] found at a position in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parsed {
    /// A valid chunk; its payload is `block[payload_start..next]`.
    Chunk {
        ty: ChunkType,
        payload_start: usize,
        next: usize,
        synced_offset: Option<u64>,
    },
    /// Zero padding up to the end of the block.
    Padding,
    /// The EOF trailer of this log.
    Trailer,
    /// A bad chunk.
    Fault(Fault),
}

/// Parses the chunk at `at` in `block` (the bytes of one block; `full` when it
/// is a whole 32 KiB block, otherwise the final, short block of the file).
fn parse_chunk(block: &[u8], at: usize, full: bool, log_num: u32) -> Parsed {
    let Some(rest) = block.get(at..) else {
        return Parsed::Fault(Fault::UnexpectedEof);
    };
    let all_zero = || rest.iter().all(|&b| b == 0);
    let Some((crc, len, code)) = format::decode_common(rest) else {
        // Too short for any header.
        return match (full, all_zero()) {
            (true, true) => Parsed::Padding,
            (true, false) => Parsed::Fault(Fault::NonZeroPadding),
            (false, true) => Parsed::Fault(Fault::Zeroed),
            (false, false) => Parsed::Fault(Fault::UnexpectedEof),
        };
    };
    if crc == 0 && len == 0 && code == 0 {
        if rest.len() < HEADER_SIZE_MAX && full {
            // A writer pads a block when fewer bytes than its header remain:
            // up to 6 (legacy), 10 (recyclable) or 18 (wal-sync) zero bytes.
            return if all_zero() {
                Parsed::Padding
            } else {
                Parsed::Fault(Fault::NonZeroPadding)
            };
        }
        return Parsed::Fault(Fault::Zeroed);
    }
    let Some(ty) = ChunkType::from_code(code) else {
        return Parsed::Fault(Fault::BadType(code));
    };
    let header_size = ty.format.header_size();
    if rest.len() < header_size {
        return Parsed::Fault(if full {
            Fault::HeaderTruncated
        } else {
            Fault::UnexpectedEof
        });
    }
    if ty.format != WireFormat::Legacy {
        let Some(found) = format::decode_log_num(rest) else {
            return Parsed::Fault(Fault::HeaderTruncated);
        };
        if found != log_num {
            if found == log_num.wrapping_add(1) {
                return Parsed::Trailer;
            }
            return Parsed::Fault(Fault::WrongLogNumber {
                expected: log_num,
                found,
            });
        }
    }
    let chunk_end = header_size + usize::from(len);
    let Some(covered) = rest.get(TYPE_OFFSET..chunk_end) else {
        return Parsed::Fault(if full {
            Fault::LengthPastBlock { len }
        } else {
            Fault::UnexpectedEof
        });
    };
    let computed = format::chunk_crc(covered);
    if computed != crc {
        return Parsed::Fault(Fault::Checksum {
            stored: crc,
            computed,
        });
    }
    let synced_offset = if ty.format == WireFormat::WalSync {
        format::decode_synced_offset(rest)
    } else {
        None
    };
    Parsed::Chunk {
        ty,
        payload_start: at + header_size,
        next: at + chunk_end,
        synced_offset,
    }
}

/// How many blocks the reader reads at a time.
const READ_BLOCKS: usize = 8;

/// Reads the records of one log file and classifies how it ends.
///
/// `R` yields the file's bytes from the start (or, with
/// [`LogReader::starting_at`], from the start of the block holding the first
/// record to read).
pub struct LogReader<R> {
    src: R,
    log_num: u32,
    // INVARIANT: `buf[..buf_len]` holds the file bytes from offset `buf_base`,
    // which is block aligned; every block in it is whole except, when `eof`,
    // the last one.
    buf: Vec<u8>,
    buf_base: u64,
    buf_len: usize,
    /// Index in `buf` of the next chunk.
    pos: usize,
    /// Bytes to skip after the first fill (a start inside a block).
    skip: usize,
    eof: bool,
    record: Vec<u8>,
    record_size_max: usize,
    /// Offset just past the last record returned (or the start offset).
    last_end: u64,
    /// Where the record most recently returned lives, until the next call.
    current: Option<Scanned>,
    outcome: Option<Result<End>>,
}

impl<R: Read> LogReader<R> {
    /// A reader of log `log_num` (low 32 bits) over the whole file `src`.
    pub fn new(src: R, log_num: u32) -> LogReader<R> {
        Self::starting_at(src, log_num, 0)
    }

    /// A reader whose first record starts at `offset`, which must be the
    /// offset of a record (from [`ReadRecord::offset`] or [`ReadRecord::end`]). `src`
    /// must yield the file's bytes from `offset - offset % BLOCK_SIZE`.
    pub fn starting_at(src: R, log_num: u32, offset: u64) -> LogReader<R> {
        let in_block = (offset % BLOCK_SIZE as u64) as usize;
        LogReader {
            src,
            log_num,
            buf: vec![0; READ_BLOCKS * BLOCK_SIZE],
            buf_base: offset - in_block as u64,
            buf_len: 0,
            pos: 0,
            skip: in_block,
            eof: false,
            record: Vec::new(),
            record_size_max: usize::MAX,
            last_end: offset,
            current: None,
            outcome: None,
        }
    }

    /// Refuses records longer than `max` bytes with
    /// [`Error::RecordTooLarge`] instead of buffering them.
    #[must_use]
    pub fn with_record_size_max(mut self, max: usize) -> LogReader<R> {
        self.record_size_max = max;
        self
    }

    /// The offset just past the last record returned; after a clean end, the
    /// end's offset.
    pub fn offset(&self) -> u64 {
        match &self.outcome {
            Some(Ok(end)) => end.offset(),
            _ => self.last_end,
        }
    }

    /// How the log ended, once [`LogReader::next_record`] has returned
    /// `Ok(None)`.
    pub fn end(&self) -> Option<End> {
        match &self.outcome {
            Some(Ok(end)) => Some(*end),
            _ => None,
        }
    }

    /// Gives back the source.
    pub fn into_inner(self) -> R {
        self.src
    }

    /// The next record, or `Ok(None)` at a clean end ([`LogReader::end`]).
    ///
    /// # Errors
    /// [`Error::TornTail`] or [`Error::Corruption`] at a bad chunk (see the
    /// [decision table](self)), [`Error::RecordTooLarge`], or a read error.
    /// The outcome is latched: later calls return it again.
    pub fn next_record(&mut self) -> Result<Option<ReadRecord<'_>>> {
        if let Some(outcome) = &self.outcome {
            return match outcome {
                Ok(_) => Ok(None),
                Err(e) => Err(e.clone()),
            };
        }
        self.current = None;
        match self.scan() {
            Ok(Scanned::End(end)) => {
                self.outcome = Some(Ok(end));
                Ok(None)
            }
            Ok(found) => {
                self.current = Some(found);
                if let Some(end) = self.current().map(|r| r.end) {
                    self.last_end = end;
                }
                Ok(self.current())
            }
            Err(e) => {
                self.outcome = Some(Err(e.clone()));
                Err(e)
            }
        }
    }

    /// The record most recently returned by [`LogReader::next_record`], until
    /// the next call to it.
    pub fn current(&self) -> Option<ReadRecord<'_>> {
        match self.current.as_ref()? {
            Scanned::Single { offset, start, end } => Some(ReadRecord {
                offset: *offset,
                end: self.abs(*end),
                payload: self.buf.get(*start..*end).unwrap_or_default(),
            }),
            Scanned::Assembled { offset, end } => Some(ReadRecord {
                offset: *offset,
                end: *end,
                payload: &self.record,
            }),
            Scanned::End(_) => None,
        }
    }

    fn abs(&self, index: usize) -> u64 {
        self.buf_base + index as u64
    }

    /// Makes sure `pos` is at unread bytes, reading more if needed. Returns
    /// `false` at the end of the file.
    fn ensure_data(&mut self) -> Result<bool> {
        if self.pos < self.buf_len {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        // Every block in the buffer has been consumed: slide the window.
        self.buf_base += self.buf_len as u64;
        self.buf_len = 0;
        self.pos = 0;
        while self.buf_len < self.buf.len() {
            let Some(space) = self.buf.get_mut(self.buf_len..) else {
                break;
            };
            match self.src.read(space) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.buf_len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(IoOp::Read, e)),
            }
        }
        if self.skip > 0 {
            // The first record starts inside the first block.
            self.pos = self.skip.min(self.buf_len);
            self.skip = 0;
        }
        Ok(self.pos < self.buf_len)
    }

    /// The block holding `pos`: `(start, end, full)` as indexes into `buf`.
    fn block_at(&self, pos: usize) -> (usize, usize, bool) {
        let start = pos - pos % BLOCK_SIZE;
        let end = (start + BLOCK_SIZE).min(self.buf_len);
        (start, end, end - start == BLOCK_SIZE)
    }

    fn scan(&mut self) -> Result<Scanned> {
        self.record.clear();
        // Offset of the record being assembled, once its first chunk is read.
        let mut record_start: Option<u64> = None;
        loop {
            if !self.ensure_data()? {
                let eof = self.abs(self.pos);
                return match record_start {
                    None => Ok(Scanned::End(End::Boundary { offset: eof })),
                    Some(start) => Err(self.classify(start, eof, Fault::UnexpectedEof)?),
                };
            }
            let (block_start, block_end, full) = self.block_at(self.pos);
            let Some(block) = self.buf.get(block_start..block_end) else {
                unreachable!("block bounds are within the buffer")
            };
            let at = self.pos - block_start;
            let chunk_offset = self.abs(self.pos);
            let parsed = parse_chunk(block, at, full, self.log_num);
            let fault = match parsed {
                Parsed::Padding => {
                    self.pos = block_end;
                    continue;
                }
                Parsed::Trailer if record_start.is_none() => {
                    return Ok(Scanned::End(End::Trailer {
                        offset: chunk_offset,
                    }));
                }
                Parsed::Trailer => Fault::WrongLogNumber {
                    expected: self.log_num,
                    found: self.log_num.wrapping_add(1),
                },
                Parsed::Fault(fault) => fault,
                Parsed::Chunk {
                    ty,
                    payload_start,
                    next,
                    ..
                } => {
                    if ty.position.starts_record() == record_start.is_some() {
                        Fault::UnexpectedPosition
                    } else {
                        let payload = (block_start + payload_start)..(block_start + next);
                        let offset = record_start.unwrap_or(chunk_offset);
                        self.pos = block_start + next;
                        if ty.position == Position::Full {
                            if payload.len() > self.record_size_max {
                                return Err(self.too_large(offset, payload.len()));
                            }
                            return Ok(Scanned::Single {
                                offset,
                                start: payload.start,
                                end: payload.end,
                            });
                        }
                        let Some(bytes) = self.buf.get(payload.clone()) else {
                            unreachable!("a parsed payload is within its block")
                        };
                        if self.record.len() + bytes.len() > self.record_size_max {
                            return Err(self.too_large(offset, self.record.len() + bytes.len()));
                        }
                        self.record.extend_from_slice(bytes);
                        record_start = Some(offset);
                        if ty.position.ends_record() {
                            return Ok(Scanned::Assembled {
                                offset,
                                end: self.abs(self.pos),
                            });
                        }
                        continue;
                    }
                }
            };
            let start = record_start.unwrap_or(chunk_offset);
            return Err(self.classify(start, chunk_offset, fault)?);
        }
    }

    fn too_large(&self, offset: u64, len: usize) -> Error {
        Error::RecordTooLarge {
            offset,
            len: len as u64,
            max: self.record_size_max as u64,
        }
    }

    /// Decides between torn tail and corruption for a bad chunk at
    /// `chunk_offset` in the record starting at `record_offset`, by reading
    /// ahead for a proof. Returns the classified error (or a read error as
    /// `Err`).
    fn classify(&mut self, record_offset: u64, chunk_offset: u64, fault: Fault) -> Result<Error> {
        Ok(match self.read_ahead(chunk_offset)? {
            Some(proof) => Error::Corruption {
                offset: record_offset,
                chunk_offset,
                fault,
                proof,
            },
            None => Error::TornTail {
                offset: record_offset,
                chunk_offset,
                fault,
            },
        })
    }

    /// Scans the blocks after the one holding `pos` for a valid wal-sync
    /// chunk of this log whose synced offset is past `bad`.
    fn read_ahead(&mut self, bad: u64) -> Result<Option<Proof>> {
        // Chunks cannot be found reliably after a bad one in the same block:
        // start at the next block.
        let (_, block_end, full) = self.block_at(self.pos.min(self.buf_len.saturating_sub(1)));
        self.pos = if full { block_end } else { self.buf_len };
        while self.ensure_data()? {
            let (block_start, block_end, full) = self.block_at(self.pos);
            let Some(block) = self.buf.get(block_start..block_end) else {
                unreachable!("block bounds are within the buffer")
            };
            let mut at = self.pos - block_start;
            while let Parsed::Chunk {
                next,
                synced_offset,
                ..
            } = parse_chunk(block, at, full, self.log_num)
            {
                if let Some(synced_offset) = synced_offset.filter(|&s| s > bad) {
                    return Ok(Some(Proof {
                        chunk_offset: self.buf_base + (block_start + at) as u64,
                        synced_offset,
                    }));
                }
                at = next;
            }
            self.pos = block_end;
        }
        Ok(None)
    }
}

/// What `scan` found.
#[derive(Clone, Copy, Debug)]
enum Scanned {
    /// A single-chunk record at `buf[start..end]`.
    Single {
        offset: u64,
        start: usize,
        end: usize,
    },
    /// A multi-chunk record assembled in `record`.
    Assembled { offset: u64, end: u64 },
    /// The clean end of the log.
    End(End),
}
