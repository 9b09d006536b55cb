//! What the archive stores for one log, and the names of its objects.
//!
//! Every archived log is two objects under the archive's prefix:
//!
//! | object | what |
//! |---|---|
//! | `NNNNNN.log` | the log re-encoded as one segment-0 file of the same number: its records in order, failover duplicates dropped, wal-sync chunks, an EOF trailer |
//! | `NNNNNN.manifest` | written last, once the data object is stored: the facts below, with a checksum of its own |
//!
//! A log is archived when, and only when, its manifest exists: the data
//! object is uploaded first, so a manifest always describes a whole data
//! object, and a data object without one is an interrupted upload that the
//! next upload of that log replaces.
//!
//! The manifest is text, one `key = value` per line:
//!
//! ```text
//! failwal-archive v1
//! log = 7
//! sequencing = lsn
//! size = 1529725
//! crc32c = 1c2d3e4f
//! records = 16806
//! first = 1
//! last = 16806
//! records_crc32c = 9a8b7c6d
//! check = 0badf00d
//! ```
//!
//! `size` and `crc32c` are the data object's bytes; `records`, `first` and
//! `last` (LSNs, or batch sequence numbers in `pebble-batch` mode; `none`
//! for a log without records) and `records_crc32c` (CRC-32C over every
//! stored record, each preceded by its length as u64 LE) describe what it
//! holds, so that a local log can be compared with its archived copy
//! whatever the chunk layout. `check` is the CRC-32C of every line above
//! it.

use wal_manager::layout::segment_file_name;
use wal_manager::{LogNum, SegmentIndex, Sequencing};

/// The first line of every manifest.
const MAGIC: &str = "failwal-archive v1";
/// What ends a manifest's name.
const MANIFEST_SUFFIX: &str = ".manifest";

/// The name of log `log`'s data object.
pub fn data_name(log: LogNum) -> String {
    segment_file_name(log, SegmentIndex(0))
}

/// The name of log `log`'s manifest.
pub fn manifest_name(log: LogNum) -> String {
    format!("{log}{MANIFEST_SUFFIX}")
}

/// The log a manifest's name names, if it is one.
pub fn parse_manifest_name(name: &str) -> Option<LogNum> {
    let digits = name.strip_suffix(MANIFEST_SUFFIX)?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogNum)
}

/// The log a data object's name names, if it is one (segment 0 only: the
/// archive never stores another).
pub fn parse_data_name(name: &str) -> Option<LogNum> {
    match wal_manager::layout::parse_segment_file_name(name) {
        Some((log, SegmentIndex(0))) => Some(log),
        _ => None,
    }
}

/// What the records of a log are, whatever their chunk layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordSummary {
    /// How many records.
    pub records: u64,
    /// The first record's LSN (batch sequence number in `pebble-batch`
    /// mode).
    pub first: Option<u64>,
    /// The last record's.
    pub last: Option<u64>,
    /// CRC-32C over every stored record, each preceded by its length (u64
    /// LE).
    pub records_crc32c: u32,
}

impl RecordSummary {
    /// Adds the stored record `stored` with sequence number `seq`.
    pub(crate) fn add(&mut self, seq: u64, stored: &[u8]) {
        let len = (stored.len() as u64).to_le_bytes();
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, &len);
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, stored);
        self.records += 1;
        self.first.get_or_insert(seq);
        self.last = Some(seq);
    }
}

/// The manifest of one archived log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The log.
    pub log: LogNum,
    /// How its records are sequenced.
    pub sequencing: Sequencing,
    /// The data object's size in bytes.
    pub size: u64,
    /// The data object's CRC-32C.
    pub crc32c: u32,
    /// What its records are.
    pub summary: RecordSummary,
}

impl Manifest {
    /// The manifest as stored.
    pub fn encode(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        let body = format!(
            "{MAGIC}\nlog = {}\nsequencing = {}\nsize = {}\ncrc32c = {:08x}\nrecords = {}\nfirst = {}\nlast = {}\nrecords_crc32c = {:08x}\n",
            self.log.0,
            self.sequencing.name(),
            self.size,
            self.crc32c,
            self.summary.records,
            opt(self.summary.first),
            opt(self.summary.last),
            self.summary.records_crc32c,
        );
        let check = crc32c::crc32c(body.as_bytes());
        format!("{body}check = {check:08x}\n")
    }

    /// Parses a stored manifest, which must be the manifest of `log`.
    ///
    /// # Errors
    /// What is wrong with it, in words: a damaged or foreign file.
    pub fn decode(text: &[u8], log: LogNum) -> Result<Manifest, String> {
        let text = std::str::from_utf8(text).map_err(|_| "not UTF-8 text".to_owned())?;
        let body_end = text
            .rfind("check = ")
            .ok_or_else(|| "no check line".to_owned())?;
        let (body, check_line) = text.split_at(body_end);
        let check = check_line
            .strip_prefix("check = ")
            .and_then(|v| v.strip_suffix('\n'))
            .and_then(|v| u32::from_str_radix(v, 16).ok())
            .ok_or_else(|| format!("bad check line {:?}", check_line.trim_end()))?;
        let computed = crc32c::crc32c(body.as_bytes());
        if check != computed {
            return Err(format!(
                "its checksum does not match (stored {check:08x}, computed {computed:08x})"
            ));
        }
        let mut lines = body.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("does not start with {MAGIC:?}"));
        }
        let mut field = |key: &str| -> Result<&str, String> {
            let line = lines.next().ok_or_else(|| format!("no {key} line"))?;
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(" = "))
                .ok_or_else(|| format!("expected {key} = ..., found {line:?}"))
        };
        let number = |key: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{key} = {v:?} is not a number"))
        };
        let hex = |key: &str, v: &str| {
            u32::from_str_radix(v, 16).map_err(|_| format!("{key} = {v:?} is not a checksum"))
        };
        let opt = |key: &str, v: &str| match v {
            "none" => Ok(None),
            v => number(key, v).map(Some),
        };
        let found = LogNum(number("log", field("log")?)?);
        if found != log {
            return Err(format!("it describes log {found}"));
        }
        let sequencing = field("sequencing")?.parse::<Sequencing>()?;
        let size = number("size", field("size")?)?;
        let crc = hex("crc32c", field("crc32c")?)?;
        let records = number("records", field("records")?)?;
        let first = opt("first", field("first")?)?;
        let last = opt("last", field("last")?)?;
        let records_crc32c = hex("records_crc32c", field("records_crc32c")?)?;
        if (records == 0) != first.is_none() || first.is_none() != last.is_none() {
            return Err(format!(
                "records = {records} disagrees with first/last = {first:?}/{last:?}"
            ));
        }
        Ok(Manifest {
            log,
            sequencing,
            size,
            crc32c: crc,
            summary: RecordSummary {
                records,
                first,
                last,
                records_crc32c,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut summary = RecordSummary::default();
        summary.add(1, b"\x01\0\0\0\0\0\0\0one");
        summary.add(2, b"\x02\0\0\0\0\0\0\0two");
        Manifest {
            log: LogNum(7),
            sequencing: Sequencing::Lsn,
            size: 77,
            crc32c: 0x1234_abcd,
            summary,
        }
    }

    #[test]
    fn a_manifest_round_trips_and_names_its_log() {
        let m = sample();
        let text = m.encode();
        assert!(text.starts_with("failwal-archive v1\nlog = 7\n"), "{text}");
        assert_eq!(Manifest::decode(text.as_bytes(), LogNum(7)), Ok(m));
        let e = Manifest::decode(text.as_bytes(), LogNum(8)).unwrap_err();
        assert!(e.contains("describes log 000007"), "{e}");
        let empty = Manifest {
            summary: RecordSummary::default(),
            ..sample()
        };
        assert_eq!(
            Manifest::decode(empty.encode().as_bytes(), LogNum(7)),
            Ok(empty)
        );
    }

    #[test]
    fn a_damaged_manifest_is_refused_with_a_reason() {
        let text = sample().encode();
        let flipped = text.replace("size = 77", "size = 78");
        let e = Manifest::decode(flipped.as_bytes(), LogNum(7)).unwrap_err();
        assert!(e.contains("checksum does not match"), "{e}");
        let cut = &text[..text.len() - 3];
        assert!(Manifest::decode(cut.as_bytes(), LogNum(7)).is_err());
        assert!(Manifest::decode(b"\xff\xfe", LogNum(7)).is_err());
    }

    #[test]
    fn names_are_made_and_parsed_here() {
        assert_eq!(data_name(LogNum(7)), "000007.log");
        assert_eq!(manifest_name(LogNum(7)), "000007.manifest");
        assert_eq!(parse_manifest_name("000007.manifest"), Some(LogNum(7)));
        assert_eq!(
            parse_manifest_name("1234567.manifest"),
            Some(LogNum(1_234_567))
        );
        assert_eq!(parse_manifest_name("7.manifest"), None);
        assert_eq!(parse_manifest_name("000007.log"), None);
        assert_eq!(parse_data_name("000007.log"), Some(LogNum(7)));
        assert_eq!(parse_data_name("000007-001.log"), None);
    }

    #[test]
    fn the_record_summary_depends_on_the_records_not_only_their_bytes() {
        let mut a = RecordSummary::default();
        a.add(1, b"ab");
        a.add(2, b"c");
        let mut b = RecordSummary::default();
        b.add(1, b"a");
        b.add(2, b"bc");
        assert_ne!(a.records_crc32c, b.records_crc32c, "lengths are covered");
    }
}
