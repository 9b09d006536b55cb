//! The record envelope: every stored record is its LSN (u64, little-endian)
//! followed by the caller's payload. System records set the LSN's top bit.

use crate::types::Lsn;

/// Bytes of the LSN prefix.
pub const LSN_PREFIX_SIZE: usize = 8;

/// The stored prefix of a record with this LSN (`system` sets the top bit).
pub fn lsn_prefix(lsn: Lsn, system: bool) -> [u8; LSN_PREFIX_SIZE] {
    debug_assert!(lsn <= Lsn::MAX);
    let raw = if system {
        lsn.0 | Lsn::SYSTEM_BIT
    } else {
        lsn.0
    };
    raw.to_le_bytes()
}

/// Splits a stored record into `(lsn, is_system, payload)`; `None` if it is
/// too short to carry an LSN.
pub fn decode(stored: &[u8]) -> Option<(Lsn, bool, &[u8])> {
    let (prefix, payload) = stored.split_first_chunk::<LSN_PREFIX_SIZE>()?;
    let raw = u64::from_le_bytes(*prefix);
    Some((
        Lsn(raw & !Lsn::SYSTEM_BIT),
        raw & Lsn::SYSTEM_BIT != 0,
        payload,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_round_trip_with_and_without_the_system_bit() {
        for (lsn, system) in [
            (Lsn(0), false),
            (Lsn(42), true),
            (Lsn::MAX, false),
            (Lsn::MAX, true),
        ] {
            let mut stored = lsn_prefix(lsn, system).to_vec();
            stored.extend_from_slice(b"payload");
            assert_eq!(decode(&stored), Some((lsn, system, &b"payload"[..])));
        }
        assert_eq!(decode(&[1, 2, 3]), None);
    }
}
