//! The shared buffer: encoding records into it, and the batch API.

use super::options::Appended;
use super::{Fixed, State};
use crate::error::{Error, Result};
use crate::format::{self, BLOCK_SIZE, ChunkHeader, ChunkType, Position};

/// The capacity buffers start with: a flush's worth and room to spare.
pub(super) const BUF_CAPACITY: usize = 2 * FLUSH_THRESHOLD;
/// Most cleared buffers kept for reuse (see `State::spares`).
pub(super) const SPARES_MAX: usize = 3;
/// Buffers that grew beyond this (behind a slow or stalled file) are freed
/// rather than kept.
pub(super) const SPARE_CAPACITY_MAX: usize = 8 << 20;

/// When the flush thread writes a buffer that nobody asked to sync or flush:
/// once this much has accumulated. Larger means fewer wake-ups and larger
/// writes for unsynced appends.
pub(super) const FLUSH_THRESHOLD: usize = 4 * BLOCK_SIZE;

impl State {
    pub(super) fn taken(&self) -> u64 {
        self.offset - self.buf.len() as u64
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.closing {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Encodes one record at `offset` and returns where it landed.
    pub(super) fn emit(&mut self, fx: &Fixed, parts: &[&[u8]], len: usize) -> Appended {
        let header_size = fx.format.header_size();
        let start = self.offset;
        let mut cursor = Parts::new(parts);
        let mut first = true;
        loop {
            let pos = (self.offset % BLOCK_SIZE as u64) as usize;
            assert!(
                BLOCK_SIZE - pos >= header_size,
                "a block tail was not padded"
            );
            let take = cursor.left.min(BLOCK_SIZE - pos - header_size);
            let last = take == cursor.left;
            let position = match (first, last) {
                (true, true) => Position::Full,
                (true, false) => Position::First,
                (false, false) => Position::Middle,
                (false, true) => Position::Last,
            };
            let ty = ChunkType {
                position,
                format: fx.format,
            };
            // The header goes in front of its payload: room for it first,
            // filled in once the payload is copied and its CRC taken.
            let h = self.buf.len();
            self.buf.resize(h + header_size, 0);
            let mut header = ChunkHeader::new(ty, fx.log_num, self.synced);
            cursor.copy_to(&mut self.buf, take, &mut header);
            header.write(&mut self.buf[h..]);
            self.offset += (header_size + take) as u64;
            let pos = (self.offset % BLOCK_SIZE as u64) as usize;
            if pos != 0 && BLOCK_SIZE - pos < header_size {
                // No room for another header: zero the block tail.
                let pad = BLOCK_SIZE - pos;
                self.buf.resize(self.buf.len() + pad, 0);
                self.offset += pad as u64;
            }
            first = false;
            if last {
                break;
            }
        }
        assert_eq!(cursor.left, 0);
        self.records += 1;
        self.payload_bytes += len as u64;
        debug_assert_eq!(
            self.offset - start,
            format::encoded_len(fx.format, start, len)
        );
        Appended {
            offset: start,
            end: self.offset,
        }
    }
}

/// A cursor over the concatenation of a record's parts.
struct Parts<'a> {
    slices: &'a [&'a [u8]],
    index: usize,
    within: usize,
    left: usize,
}

impl<'a> Parts<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Parts<'a> {
        Parts {
            slices: parts,
            index: 0,
            within: 0,
            left: parts.iter().map(|p| p.len()).sum(),
        }
    }

    /// Copies the next `n` bytes to `out`, feeding them to `header`'s CRC
    /// from where they lie (not from `out`: see [`ChunkHeader`]).
    fn copy_to(&mut self, out: &mut Vec<u8>, mut n: usize, header: &mut ChunkHeader) {
        self.left -= n;
        while n > 0 {
            let part = &self.slices[self.index][self.within..];
            let k = part.len().min(n);
            header.payload(&part[..k]);
            out.extend_from_slice(&part[..k]);
            n -= k;
            self.within += k;
            if self.within == self.slices[self.index].len() {
                self.index += 1;
                self.within = 0;
            }
        }
    }
}

/// The writer, locked, as seen by [`LogWriter::append_with`](super::LogWriter::append_with).
pub struct Batch<'a> {
    pub(super) st: &'a mut State,
    pub(super) fixed: &'a Fixed,
}

impl Batch<'_> {
    /// Appends one record made of the concatenation of `parts`.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`]; nothing is appended then.
    pub fn push(&mut self, parts: &[&[u8]]) -> Result<Appended> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > self.fixed.record_size_max {
            return Err(Error::RecordTooLarge {
                offset: self.st.offset,
                len: len as u64,
                max: self.fixed.record_size_max as u64,
            });
        }
        Ok(self.st.emit(self.fixed, parts, len))
    }

    /// The offset the next record will start at.
    pub fn offset(&self) -> u64 {
        self.st.offset
    }
}
