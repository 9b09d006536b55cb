//! The nouns: log numbers, segment indexes, LSNs and directories.

use std::fmt;

/// The number of a logical log. Engines choose them (Pebble: the WAL's file
/// number); they increase over the life of a manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogNum(pub u64);

impl LogNum {
    /// The low 32 bits, as stamped into chunk headers.
    pub fn header_bits(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for LogNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// The index of a segment within its log: 0 for the first file, one more for
/// each directory switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SegmentIndex(pub u32);

impl fmt::Display for SegmentIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

/// A log sequence number: assigned by the writer to every record, increasing
/// across all logs of a manager. Stored as the first 8 bytes
/// (little-endian) of every record's payload.
///
/// In the stored prefix, the top bit ([`Lsn::SYSTEM_BIT`]) marks *system*
/// records (checkpoints, truncation markers) that readers hide unless
/// asked; an `Lsn` itself never has it set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The bit that marks a system record in the stored prefix.
    pub const SYSTEM_BIT: u64 = 1 << 63;
    /// The largest LSN value.
    pub const MAX: Lsn = Lsn(Self::SYSTEM_BIT - 1);

    /// The next LSN.
    ///
    /// # Panics
    /// If the LSN space (2^63 values) is exhausted.
    #[must_use]
    pub fn next(self) -> Lsn {
        assert!(self < Lsn::MAX, "LSN space exhausted");
        Lsn(self.0 + 1)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which of the manager's directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DirId {
    /// The primary directory: where logs live when the disk is healthy.
    Primary,
    /// The secondary directory: where logs go while the primary is unhealthy.
    Secondary,
}

impl DirId {
    /// The other directory.
    #[must_use]
    pub fn other(self) -> DirId {
        match self {
            DirId::Primary => DirId::Secondary,
            DirId::Secondary => DirId::Primary,
        }
    }

    /// `"primary"` or `"secondary"`.
    pub fn name(self) -> &'static str {
        match self {
            DirId::Primary => "primary",
            DirId::Secondary => "secondary",
        }
    }
}

impl fmt::Display for DirId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
