//! CRC-32C (Castagnoli), tuned for the writer's small chunks.
//!
//! The `crc32c` crate is fast on long inputs (three interleaved hardware
//! streams), but a 128-byte record pays for its generality: a feature check,
//! a byte loop up to the first 8-aligned address and another over the tail,
//! and the set-up of the interleaved loop it will not use, about 180
//! instructions per chunk where one `crc32` per 8 bytes needs about 40. Here
//! inputs shorter than [`SHORT_MAX`] go through one chain of hardware `crc32`
//! instructions when the CPU has SSE 4.2, and everything else through the
//! crate. The header fields are folded in from registers
//! ([`header_fields`]), so the writer never loads bytes it has just stored
//! (see DESIGN.md, "Performance notes").
//!
//! This is the crate's only `unsafe`: calling the SSE 4.2 functions, after
//! checking at run time that the CPU has SSE 4.2.

/// Inputs at least this long go to the `crc32c` crate, whose interleaved
/// loop wins once there are a few hundred bytes.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const SHORT_MAX: usize = 256;

/// Extends `crc` (a CRC-32C of earlier bytes, or 0) over `data`: the same as
/// `crc32c::crc32c_append`.
#[inline]
pub(crate) fn extend(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() < SHORT_MAX && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `sse42::extend` only needs SSE 4.2, which the CPU has
        // (checked just above).
        #[allow(unsafe_code)]
        return unsafe { sse42::extend(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

/// The CRC-32C of the header fields a chunk's CRC covers before its
/// payload: the type byte, then the log number (recyclable and wal-sync
/// headers), then the synced offset (wal-sync), little-endian, as they lie
/// in the header. `header_size` picks the layout.
#[inline]
pub(crate) fn header_fields(
    type_code: u8,
    log_num: u32,
    synced_offset: u64,
    header_size: usize,
) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: as in `extend`.
        #[allow(unsafe_code)]
        return unsafe { sse42::header_fields(type_code, log_num, synced_offset, header_size) };
    }
    header_fields_portable(type_code, log_num, synced_offset, header_size)
}

/// [`header_fields`] without SSE 4.2: the fields laid out as in the header,
/// through the crate.
fn header_fields_portable(
    type_code: u8,
    log_num: u32,
    synced_offset: u64,
    header_size: usize,
) -> u32 {
    use crate::format::{RECYCLABLE_HEADER_SIZE, WAL_SYNC_HEADER_SIZE};
    let mut bytes = [0u8; 13];
    bytes[0] = type_code;
    bytes[1..5].copy_from_slice(&log_num.to_le_bytes());
    bytes[5..].copy_from_slice(&synced_offset.to_le_bytes());
    let covered = match header_size {
        RECYCLABLE_HEADER_SIZE => 5,
        WAL_SYNC_HEADER_SIZE => 13,
        _ => 1,
    };
    crc32c::crc32c(&bytes[..covered])
}

#[cfg(target_arch = "x86_64")]
mod sse42 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64};

    use crate::format::{RECYCLABLE_HEADER_SIZE, WAL_SYNC_HEADER_SIZE};

    /// One dependent chain of 8-byte steps, then at most one 4-, 2- and
    /// 1-byte step: the shortest path for a chunk of a small record.
    #[target_feature(enable = "sse4.2")]
    pub(super) fn extend(crc: u32, data: &[u8]) -> u32 {
        let mut c = u64::from(!crc);
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            c = _mm_crc32_u64(c, u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        // The CRC fits in 32 bits: `_mm_crc32_u64` zero-extends it.
        let mut c = c as u32;
        let mut rest = words.remainder();
        if let Some((w, tail)) = rest.split_first_chunk::<4>() {
            c = _mm_crc32_u32(c, u32::from_le_bytes(*w));
            rest = tail;
        }
        if let Some((w, tail)) = rest.split_first_chunk::<2>() {
            c = _mm_crc32_u16(c, u16::from_le_bytes(*w));
            rest = tail;
        }
        if let Some(&b) = rest.first() {
            c = _mm_crc32_u8(c, b);
        }
        !c
    }

    #[target_feature(enable = "sse4.2")]
    pub(super) fn header_fields(
        type_code: u8,
        log_num: u32,
        synced_offset: u64,
        header_size: usize,
    ) -> u32 {
        let mut c = _mm_crc32_u8(!0, type_code);
        if header_size >= RECYCLABLE_HEADER_SIZE {
            c = _mm_crc32_u32(c, log_num);
        }
        if header_size >= WAL_SYNC_HEADER_SIZE {
            c = _mm_crc32_u64(u64::from(c), synced_offset) as u32;
        }
        !c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{LEGACY_HEADER_SIZE, RECYCLABLE_HEADER_SIZE, WAL_SYNC_HEADER_SIZE};

    #[test]
    fn extend_agrees_with_the_crate_at_every_length_and_split() {
        let data: Vec<u8> = (0..600u32).map(|i| (i * 131 + 7) as u8).collect();
        assert_eq!(extend(0, b"123456789"), 0xE306_9283, "the check value");
        for len in 0..data.len() {
            let want = crc32c::crc32c(&data[..len]);
            assert_eq!(extend(0, &data[..len]), want, "length {len}");
            let split = len / 3;
            let head = extend(0, &data[..split]);
            assert_eq!(extend(head, &data[split..len]), want, "length {len} split");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_sse42_chain_agrees_with_the_crate_past_the_short_limit() {
        if !std::arch::is_x86_feature_detected!("sse4.2") {
            eprintln!("this CPU has no SSE 4.2: the chain is never used here");
            return;
        }
        let data: Vec<u8> = (0..2 * SHORT_MAX as u32)
            .map(|i| (i * 29 + 3) as u8)
            .collect();
        for len in 0..data.len() {
            // SAFETY: the CPU has SSE 4.2 (checked above).
            #[allow(unsafe_code)]
            let got = unsafe { sse42::extend(0x1234_5678, &data[..len]) };
            assert_eq!(
                got,
                crc32c::crc32c_append(0x1234_5678, &data[..len]),
                "length {len}"
            );
        }
    }

    #[test]
    fn header_fields_agree_with_the_bytes_they_stand_for() {
        let (code, log, synced) = (10u8, 0x0403_0201u32, 0x0c0b_0a09_0807_0605u64);
        let mut bytes = vec![code];
        bytes.extend_from_slice(&log.to_le_bytes());
        bytes.extend_from_slice(&synced.to_le_bytes());
        for (size, covered) in [
            (LEGACY_HEADER_SIZE, 1),
            (RECYCLABLE_HEADER_SIZE, 5),
            (WAL_SYNC_HEADER_SIZE, 13),
        ] {
            let want = crc32c::crc32c(&bytes[..covered]);
            assert_eq!(header_fields(code, log, synced, size), want, "size {size}");
            assert_eq!(
                header_fields_portable(code, log, synced, size),
                want,
                "portable, size {size}"
            );
        }
    }
}
