//! The chunk/block wire format, byte for byte (DESIGN.md, "On-disk format").
//!
//! A log file is a sequence of 32 KiB blocks; the last one may be short. A
//! record is stored as one or more *chunks*; a chunk never crosses a block
//! boundary. When fewer bytes than a chunk header remain in a block, the
//! writer fills them with zeros and starts the next block.
//!
//! ```text
//! legacy (types 1-4), 7 bytes:
//! +----------+----------+---------+--- ... ---+
//! | crc  u32 | len  u16 | type u8 | payload   |
//! +----------+----------+---------+--- ... ---+
//!   0          4          6         7
//!
//! recyclable (types 5-8), 11 bytes:
//! +----------+----------+---------+-------------+--- ... ---+
//! | crc  u32 | len  u16 | type u8 | log_num u32 | payload   |
//! +----------+----------+---------+-------------+--- ... ---+
//!   0          4          6         7             11
//!
//! wal-sync (types 9-12), 19 bytes:
//! +----------+----------+---------+-------------+-----------------+--- ... ---+
//! | crc  u32 | len  u16 | type u8 | log_num u32 | synced_off u64  | payload   |
//! +----------+----------+---------+-------------+-----------------+--- ... ---+
//!   0          4          6         7             11                19
//! ```
//!
//! All integers are little-endian. `crc` is CRC-32C (Castagnoli) over the
//! bytes from `type` to the end of the payload, masked LevelDB-style
//! ([`mask_crc`]). `log_num` is the low 32 bits of the log's number: a chunk
//! with another number is a stale chunk of a recycled file. `synced_off`
//! promises that the file had been fsynced at least up to that byte offset
//! when the chunk was written. The EOF trailer written on close is a
//! recyclable FULL header with `crc = 0`, `len = 0` and
//! `log_num = this log's number + 1` ([`encode_eof_trailer`]).

#![deny(clippy::unwrap_used)]

use crate::crc;

/// The size of a block. Chunks never cross a block boundary.
pub const BLOCK_SIZE: usize = 32 * 1024;

/// Offset of the masked CRC-32C in every header.
pub const CRC_OFFSET: usize = 0;
/// Offset of the payload length (u16) in every header.
pub const LEN_OFFSET: usize = CRC_OFFSET + 4;
/// Offset of the chunk type byte in every header.
pub const TYPE_OFFSET: usize = LEN_OFFSET + 2;
/// Size of a legacy header, which ends after the type byte.
pub const LEGACY_HEADER_SIZE: usize = TYPE_OFFSET + 1;
/// Offset of the log number (u32) in recyclable and wal-sync headers.
pub const LOG_NUM_OFFSET: usize = LEGACY_HEADER_SIZE;
/// Size of a recyclable header, which ends after the log number.
pub const RECYCLABLE_HEADER_SIZE: usize = LOG_NUM_OFFSET + 4;
/// Offset of the synced offset (u64) in wal-sync headers.
pub const SYNCED_OFFSET_OFFSET: usize = RECYCLABLE_HEADER_SIZE;
/// Size of a wal-sync header, which ends after the synced offset.
pub const WAL_SYNC_HEADER_SIZE: usize = SYNCED_OFFSET_OFFSET + 8;
/// The largest header; every header fits in this many bytes.
pub const HEADER_SIZE_MAX: usize = WAL_SYNC_HEADER_SIZE;
/// Size of the EOF trailer: a recyclable header with no payload.
pub const EOF_TRAILER_SIZE: usize = RECYCLABLE_HEADER_SIZE;

/// The constant added after rotating a CRC when masking it (LevelDB).
pub const CRC_MASK_DELTA: u32 = 0xa282_ead8;

const _: () = assert!(BLOCK_SIZE.is_power_of_two());
const _: () = assert!(BLOCK_SIZE % 8 == 0);
const _: () = assert!(LEGACY_HEADER_SIZE == 7);
const _: () = assert!(RECYCLABLE_HEADER_SIZE == 11);
const _: () = assert!(WAL_SYNC_HEADER_SIZE == 19);
// The chunk length field is a u16: the largest payload a block can hold must
// fit in it.
const _: () = assert!(BLOCK_SIZE - LEGACY_HEADER_SIZE <= u16::MAX as usize);

/// Where a chunk sits in its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Position {
    /// The whole record is in this chunk.
    Full,
    /// The first chunk of a multi-chunk record.
    First,
    /// A chunk strictly inside a multi-chunk record.
    Middle,
    /// The last chunk of a multi-chunk record.
    Last,
}

impl Position {
    /// Whether this chunk starts a record.
    pub fn starts_record(self) -> bool {
        matches!(self, Position::Full | Position::First)
    }

    /// Whether this chunk ends a record.
    pub fn ends_record(self) -> bool {
        matches!(self, Position::Full | Position::Last)
    }

    fn code_offset(self) -> u8 {
        match self {
            Position::Full => 0,
            Position::First => 1,
            Position::Middle => 2,
            Position::Last => 3,
        }
    }
}

/// The three header layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum WireFormat {
    /// 7-byte header without a log number (LevelDB; Pebble's MANIFEST).
    Legacy,
    /// 11-byte header with the log number (Pebble's recyclable WAL).
    Recyclable,
    /// 19-byte header with the log number and the synced offset (Pebble's
    /// current WAL format). The default.
    #[default]
    WalSync,
}

impl WireFormat {
    /// The header size of this layout.
    pub const fn header_size(self) -> usize {
        match self {
            WireFormat::Legacy => LEGACY_HEADER_SIZE,
            WireFormat::Recyclable => RECYCLABLE_HEADER_SIZE,
            WireFormat::WalSync => WAL_SYNC_HEADER_SIZE,
        }
    }

    fn first_code(self) -> u8 {
        match self {
            WireFormat::Legacy => 1,
            WireFormat::Recyclable => 5,
            WireFormat::WalSync => 9,
        }
    }
}

/// A valid chunk type byte: a position and a wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkType {
    /// Where the chunk sits in its record.
    pub position: Position,
    /// The header layout.
    pub format: WireFormat,
}

impl ChunkType {
    /// The largest valid type byte.
    pub const CODE_MAX: u8 = 12;

    /// Decodes a type byte; `None` for 0 and for anything above 12.
    pub fn from_code(code: u8) -> Option<ChunkType> {
        let (format, first) = match code {
            1..=4 => (WireFormat::Legacy, 1),
            5..=8 => (WireFormat::Recyclable, 5),
            9..=12 => (WireFormat::WalSync, 9),
            _ => return None,
        };
        let position = match code - first {
            0 => Position::Full,
            1 => Position::First,
            2 => Position::Middle,
            _ => Position::Last,
        };
        Some(ChunkType { position, format })
    }

    /// The type byte.
    pub fn code(self) -> u8 {
        let code = self.format.first_code() + self.position.code_offset();
        debug_assert!((1..=Self::CODE_MAX).contains(&code));
        code
    }
}

/// Masks a CRC the way LevelDB and Pebble store it: rotate right by 15 bits,
/// then add [`CRC_MASK_DELTA`]. Storing a CRC of data that itself contains CRCs
/// unmasked would make some patterns checksum to themselves.
pub const fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

/// Inverts [`mask_crc`].
pub const fn unmask_crc(masked: u32) -> u32 {
    masked.wrapping_sub(CRC_MASK_DELTA).rotate_left(15)
}

/// The masked CRC-32C of `covered`, which must be the chunk's bytes from the
/// type byte to the end of its payload.
pub fn chunk_crc(covered: &[u8]) -> u32 {
    mask_crc(crc::extend(0, covered))
}

/// A decoded chunk header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The stored (masked) CRC.
    pub crc: u32,
    /// The payload length.
    pub len: u16,
    /// The raw type byte (possibly invalid).
    pub code: u8,
    /// The log number (recyclable and wal-sync formats).
    pub log_num: Option<u32>,
    /// The synced offset (wal-sync format).
    pub synced_offset: Option<u64>,
}

/// Reads the little-endian integer of `N` bytes at `at`; `None` if `buf` is too
/// short.
fn read_le<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Decodes the 7 common header bytes at the start of `buf`.
///
/// Returns `(crc, len, type code)`, or `None` if fewer than 7 bytes are given.
pub fn decode_common(buf: &[u8]) -> Option<(u32, u16, u8)> {
    let crc = u32::from_le_bytes(read_le::<4>(buf, CRC_OFFSET)?);
    let len = u16::from_le_bytes(read_le::<2>(buf, LEN_OFFSET)?);
    let code = *buf.get(TYPE_OFFSET)?;
    Some((crc, len, code))
}

/// Decodes the log number of a recyclable or wal-sync header at the start of
/// `buf`; `None` if `buf` is too short.
pub fn decode_log_num(buf: &[u8]) -> Option<u32> {
    read_le::<4>(buf, LOG_NUM_OFFSET).map(u32::from_le_bytes)
}

/// Decodes the synced offset of a wal-sync header at the start of `buf`;
/// `None` if `buf` is too short.
pub fn decode_synced_offset(buf: &[u8]) -> Option<u64> {
    read_le::<8>(buf, SYNCED_OFFSET_OFFSET).map(u64::from_le_bytes)
}

/// Fills in the header at the start of `chunk`, whose bytes after the
/// header (`ty.format.header_size()` bytes) are the chunk's payload: a
/// [`ChunkHeader`] fed the whole payload at once.
///
/// # Panics
/// If `chunk` is shorter than a header or its payload does not fit in a
/// block.
pub fn encode_chunk(chunk: &mut [u8], ty: ChunkType, log_num: u32, synced_offset: u64) {
    let size = ty.format.header_size();
    assert!(chunk.len() >= size, "chunk shorter than its header");
    let (header_bytes, payload) = chunk.split_at_mut(size);
    let mut header = ChunkHeader::new(ty, log_num, synced_offset);
    header.payload(payload);
    header.write(header_bytes);
}

/// A chunk header built while its payload is copied elsewhere: the CRC is
/// taken over the header fields (from registers) and then over the payload
/// as it is fed, from wherever the payload lies, and the header is stored
/// field by field; [`encode_chunk`] is this fed a payload already in place.
/// The writer feeds it the caller's slices rather than the copy in its
/// buffer: loading bytes just stored into a buffer whose cache lines the
/// flush thread's core last held stalls until those stores land (see
/// DESIGN.md, "Performance notes").
#[derive(Clone, Copy, Debug)]
pub struct ChunkHeader {
    ty: ChunkType,
    log_num: u32,
    synced_offset: u64,
    crc: u32,
    len: usize,
}

impl ChunkHeader {
    /// Starts the header of a chunk of type `ty`.
    pub fn new(ty: ChunkType, log_num: u32, synced_offset: u64) -> ChunkHeader {
        let crc = crc::header_fields(ty.code(), log_num, synced_offset, ty.format.header_size());
        ChunkHeader {
            ty,
            log_num,
            synced_offset,
            crc,
            len: 0,
        }
    }

    /// Feeds the next piece of the chunk's payload.
    pub fn payload(&mut self, piece: &[u8]) {
        self.crc = crc::extend(self.crc, piece);
        self.len += piece.len();
    }

    /// Stores the finished header at the start of `dst`.
    ///
    /// # Panics
    /// If `dst` is shorter than the header or the payload fed does not fit
    /// in a block.
    pub fn write(self, dst: &mut [u8]) {
        let size = self.ty.format.header_size();
        assert!(
            self.len <= BLOCK_SIZE - size,
            "chunk payload exceeds a block"
        );
        let dst = &mut dst[..size];
        dst[CRC_OFFSET..LEN_OFFSET].copy_from_slice(&mask_crc(self.crc).to_le_bytes());
        dst[LEN_OFFSET..TYPE_OFFSET].copy_from_slice(&(self.len as u16).to_le_bytes());
        dst[TYPE_OFFSET] = self.ty.code();
        if size >= RECYCLABLE_HEADER_SIZE {
            dst[LOG_NUM_OFFSET..RECYCLABLE_HEADER_SIZE]
                .copy_from_slice(&self.log_num.to_le_bytes());
        }
        if size >= WAL_SYNC_HEADER_SIZE {
            dst[SYNCED_OFFSET_OFFSET..WAL_SYNC_HEADER_SIZE]
                .copy_from_slice(&self.synced_offset.to_le_bytes());
        }
    }
}

/// The EOF trailer for log `log_num`: a recyclable FULL header with CRC 0,
/// length 0 and the *next* log number, so that a reader expecting `log_num`
/// sees a clean end rather than a stale chunk.
pub fn encode_eof_trailer(log_num: u32) -> [u8; EOF_TRAILER_SIZE] {
    let mut trailer = [0u8; EOF_TRAILER_SIZE];
    trailer[TYPE_OFFSET] = ChunkType {
        position: Position::Full,
        format: WireFormat::Recyclable,
    }
    .code();
    trailer[LOG_NUM_OFFSET..].copy_from_slice(&log_num.wrapping_add(1).to_le_bytes());
    trailer
}

/// The number of bytes a record of `len` payload bytes occupies when written
/// starting at file offset `offset` in `format`, including headers and any
/// zero padding of block tails it causes. Used to size buffers and to predict
/// positions.
pub fn encoded_len(format: WireFormat, offset: u64, len: usize) -> u64 {
    let header = format.header_size();
    let mut pos = (offset % BLOCK_SIZE as u64) as usize;
    let mut left = len;
    let mut total = 0u64;
    if BLOCK_SIZE - pos < header {
        // A writer never leaves this state behind, but be total anyway.
        total += (BLOCK_SIZE - pos) as u64;
        pos = 0;
    }
    loop {
        let room = BLOCK_SIZE - pos - header;
        let take = left.min(room);
        total += (header + take) as u64;
        pos += header + take;
        left -= take;
        if BLOCK_SIZE - pos < header {
            total += (BLOCK_SIZE - pos) as u64;
            pos = 0;
        }
        if left == 0 {
            return total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // RFC 3720 / the CRC catalogue: CRC-32C("123456789") = 0xE3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    #[allow(clippy::manual_rotate)] // spelled out on purpose, as an independent check
    fn masking_rotates_right_15_and_adds_the_delta() {
        let c = 0xE306_9283u32;
        let expected = ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(mask_crc(c), expected);
        assert_eq!(unmask_crc(mask_crc(c)), c);
    }

    #[test]
    fn type_codes_round_trip_and_reject_invalid_bytes() {
        for code in 0..=u8::MAX {
            match ChunkType::from_code(code) {
                Some(ty) => {
                    assert!((1..=12).contains(&code));
                    assert_eq!(ty.code(), code);
                }
                None => assert!(code == 0 || code > 12),
            }
        }
    }

    #[test]
    fn header_encodes_fields_at_the_documented_offsets() {
        let ty = ChunkType {
            position: Position::First,
            format: WireFormat::WalSync,
        };
        let mut chunk = [0u8; WAL_SYNC_HEADER_SIZE + 3];
        chunk[WAL_SYNC_HEADER_SIZE..].copy_from_slice(b"xyz");
        encode_chunk(&mut chunk, ty, 0x0403_0201, 0x0c0b_0a09_0807_0605);
        assert_eq!(&chunk[WAL_SYNC_HEADER_SIZE..], b"xyz", "payload untouched");
        let header = &chunk[..WAL_SYNC_HEADER_SIZE];
        assert_eq!(&header[4..6], &[3, 0]);
        assert_eq!(header[6], 10);
        assert_eq!(&header[7..11], &[1, 2, 3, 4]);
        assert_eq!(&header[11..19], &[5, 6, 7, 8, 9, 10, 11, 12]);
        let mut covered = header[6..].to_vec();
        covered.extend_from_slice(b"xyz");
        let crc = mask_crc(crc32c::crc32c(&covered));
        assert_eq!(&header[0..4], &crc.to_le_bytes());
        assert_eq!(decode_common(header), Some((crc, 3, 10)));
        assert_eq!(decode_log_num(header), Some(0x0403_0201));
        assert_eq!(decode_synced_offset(header), Some(0x0c0b_0a09_0807_0605));
    }

    #[test]
    fn chunk_headers_fed_whole_or_in_pieces_match_the_documented_layout() {
        let (log, synced) = (0x0102_0304u32, 0x1122_3344_5566_7788u64);
        let payload: Vec<u8> = (0..300u32).map(|i| (i * 37 + 1) as u8).collect();
        for format in [
            WireFormat::Legacy,
            WireFormat::Recyclable,
            WireFormat::WalSync,
        ] {
            for len in [0, 1, 7, 8, 9, 136, 255, 256, 300] {
                let ty = ChunkType {
                    position: Position::Last,
                    format,
                };
                let size = format.header_size();
                // Built by hand: CRC, length, then the covered fields and
                // the payload, the CRC taken by the crate over both.
                let mut fields = vec![ty.code()];
                fields.extend_from_slice(&log.to_le_bytes());
                fields.extend_from_slice(&synced.to_le_bytes());
                fields.truncate(size - TYPE_OFFSET);
                let mut covered = fields.clone();
                covered.extend_from_slice(&payload[..len]);
                let mut want = mask_crc(crc32c::crc32c(&covered)).to_le_bytes().to_vec();
                want.extend_from_slice(&(len as u16).to_le_bytes());
                want.extend_from_slice(&covered);
                let mut whole = vec![0xffu8; size];
                whole.extend_from_slice(&payload[..len]);
                encode_chunk(&mut whole, ty, log, synced);
                assert_eq!(whole, want, "encode_chunk, {format:?}, {len} bytes");
                let mut header = ChunkHeader::new(ty, log, synced);
                let (a, b) = payload[..len].split_at(len / 2);
                header.payload(a);
                header.payload(b);
                let mut got = vec![0xffu8; size];
                got.extend_from_slice(&payload[..len]);
                header.write(&mut got);
                assert_eq!(got, want, "in pieces, {format:?}, {len} bytes");
            }
        }
    }

    #[test]
    fn eof_trailer_is_a_recyclable_full_header_for_the_next_log() {
        assert_eq!(
            encode_eof_trailer(7),
            [0, 0, 0, 0, 0, 0, 5, 8, 0, 0, 0],
            "crc 0, len 0, type 5, log 8"
        );
        assert_eq!(
            &encode_eof_trailer(u32::MAX)[7..],
            &[0, 0, 0, 0],
            "the log number wraps around at 2^32"
        );
    }

    #[test]
    fn encoded_len_counts_headers_and_padding() {
        let h = WAL_SYNC_HEADER_SIZE;
        assert_eq!(encoded_len(WireFormat::WalSync, 0, 0), h as u64);
        assert_eq!(encoded_len(WireFormat::WalSync, 0, 10), (h + 10) as u64);
        // A record that leaves fewer than a header's bytes in the block pads
        // the block.
        let fill = BLOCK_SIZE - h - 5;
        assert_eq!(encoded_len(WireFormat::WalSync, 0, fill), BLOCK_SIZE as u64);
        // Exactly filling a block.
        assert_eq!(
            encoded_len(WireFormat::WalSync, 0, BLOCK_SIZE - h),
            BLOCK_SIZE as u64
        );
        // One byte more spills into a second chunk.
        assert_eq!(
            encoded_len(WireFormat::WalSync, 0, BLOCK_SIZE - h + 1),
            (BLOCK_SIZE + h + 1) as u64
        );
    }
}
