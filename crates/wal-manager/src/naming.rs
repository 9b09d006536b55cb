//! Segment file names, made and parsed in exactly this one place.
//!
//! Log `N`, segment 0: `NNNNNN.log`; segment `i > 0`: `NNNNNN-III.log`, with
//! the numbers zero-padded to at least 6 and 3 digits (Pebble's
//! `makeLogFilename`). Segments of one log may alternate between the two
//! directories.

use crate::types::{LogNum, SegmentIndex};

/// The file-name suffix of segments.
pub(crate) const SEGMENT_SUFFIX: &str = ".log";

/// The prober's scratch file in the primary.
pub const PROBE_FILE: &str = "probe-file";

/// The prefix of an obsolete log file kept for reuse.
pub(crate) const RECYCLE_PREFIX: &str = "recycle-";

/// The name of log `log`'s file while it waits in the recycler:
/// `recycle-NNNNNN.log`. Outside the segment namespace, so that a restarted
/// manager never takes an obsolete log for a live one.
pub fn recycle_file_name(log: LogNum) -> String {
    format!(
        "{RECYCLE_PREFIX}{}",
        segment_file_name(log, SegmentIndex(0))
    )
}

/// Parses a recycled file's name.
pub fn parse_recycle_file_name(name: &str) -> Option<LogNum> {
    match parse_segment_file_name(name.strip_prefix(RECYCLE_PREFIX)?)? {
        (log, SegmentIndex(0)) => Some(log),
        _ => None,
    }
}

/// The file name of segment `index` of log `log`.
pub fn segment_file_name(log: LogNum, index: SegmentIndex) -> String {
    if index.0 == 0 {
        format!("{:06}{SEGMENT_SUFFIX}", log.0)
    } else {
        format!("{:06}-{:03}{SEGMENT_SUFFIX}", log.0, index.0)
    }
}

/// Parses a segment file name; `None` for anything else (other files may live
/// in a WAL directory: locks, identity files, temporary files).
pub fn parse_segment_file_name(name: &str) -> Option<(LogNum, SegmentIndex)> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    let (log, index) = match stem.split_once('-') {
        Some((log, index)) => {
            if index.len() < 3 || !all_digits(index) {
                return None;
            }
            let index: u32 = index.parse().ok()?;
            if index == 0 {
                // Segment 0 is always written without the suffix.
                return None;
            }
            (log, index)
        }
        None => (stem, 0),
    };
    if log.len() < 6 || !all_digits(log) {
        return None;
    }
    let log: u64 = log.parse().ok()?;
    // Names are canonical: reject `0000001.log` next to `000001.log`.
    let parsed = (LogNum(log), SegmentIndex(index));
    (segment_file_name(parsed.0, parsed.1) == name).then_some(parsed)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_pebbles_scheme() {
        assert_eq!(segment_file_name(LogNum(1), SegmentIndex(0)), "000001.log");
        assert_eq!(
            segment_file_name(LogNum(1), SegmentIndex(2)),
            "000001-002.log"
        );
        assert_eq!(
            segment_file_name(LogNum(12_345_678), SegmentIndex(1234)),
            "12345678-1234.log"
        );
    }

    #[test]
    fn names_round_trip() {
        for log in [0u64, 1, 999_999, 1_000_000, u64::MAX] {
            for index in [0u32, 1, 9, 10, 999, 1000, u32::MAX] {
                let name = segment_file_name(LogNum(log), SegmentIndex(index));
                assert_eq!(
                    parse_segment_file_name(&name),
                    Some((LogNum(log), SegmentIndex(index))),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn recycled_files_have_their_own_names() {
        assert_eq!(recycle_file_name(LogNum(7)), "recycle-000007.log");
        assert_eq!(
            parse_recycle_file_name("recycle-000007.log"),
            Some(LogNum(7))
        );
        assert_eq!(parse_segment_file_name("recycle-000007.log"), None);
        assert_eq!(parse_recycle_file_name("000007.log"), None);
        assert_eq!(parse_recycle_file_name("recycle-000007-001.log"), None);
    }

    #[test]
    fn other_files_are_not_segments() {
        for name in [
            "LOCK",
            "000001.log.tmp",
            "00001.log",
            "0000001.log",
            "000001-000.log",
            "000001-01.log",
            "000001-0001.log",
            "abcdef.log",
            "000001-abc.log",
            "-000001.log",
            "000001-.log",
            "probe-file",
            "99999999999999999999999.log",
        ] {
            assert_eq!(parse_segment_file_name(name), None, "{name}");
        }
    }
}
