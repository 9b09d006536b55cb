//! The kinds of request a test can stall or fail, and sets of them.

use std::fmt;
use std::ops::BitOr;

/// A kind of FUSE request that a test can stall or fail.
///
/// One `write(2)` may arrive as several [`Op::Write`] requests (the kernel
/// splits writes larger than the negotiated maximum, 128 KiB to 1 MiB), and
/// counters count requests, not system calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `write(2)` and friends on a regular file.
    Write,
    /// `fsync(2)` or `fdatasync(2)` on a regular file.
    Fsync,
    /// `fsync(2)` on a directory opened through the mount.
    FsyncDir,
    /// `open(2)` with `O_CREAT` of a name that does not exist yet.
    Create,
    /// The flush the kernel sends on every `close(2)` of a file descriptor.
    Flush,
}

impl Op {
    /// Every kind, once each.
    pub const ALL: [Op; 5] = [Op::Write, Op::Fsync, Op::FsyncDir, Op::Create, Op::Flush];

    /// A dense index, `0..Op::ALL.len()`, for per-kind tables.
    pub(crate) const fn index(self) -> usize {
        match self {
            Op::Write => 0,
            Op::Fsync => 1,
            Op::FsyncDir => 2,
            Op::Create => 3,
            Op::Flush => 4,
        }
    }

    const fn bit(self) -> u8 {
        1 << self.index()
    }
}

// Every kind has its own bit in an `OpSet`.
const _: () = assert!(Op::ALL.len() <= u8::BITS as usize);
const _: () = {
    let mut i = 0;
    while i < Op::ALL.len() {
        assert!(Op::ALL[i].index() == i);
        i += 1;
    }
};

/// A set of [`Op`]s: `Op::Write | Op::Fsync`, [`OpSet::ALL`], ...
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OpSet(u8);

impl OpSet {
    /// No kind at all.
    pub const EMPTY: OpSet = OpSet(0);
    /// Every kind in [`Op::ALL`].
    pub const ALL: OpSet = OpSet((1 << Op::ALL.len()) - 1);

    /// Whether `op` is in the set.
    pub const fn contains(self, op: Op) -> bool {
        self.0 & op.bit() != 0
    }

    /// Whether the set has no kind in it.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in either set.
    #[must_use]
    pub const fn union(self, other: OpSet) -> OpSet {
        OpSet(self.0 | other.0)
    }

    /// The kinds in the set, in the order of [`Op::ALL`].
    pub fn iter(self) -> impl Iterator<Item = Op> {
        Op::ALL.into_iter().filter(move |op| self.contains(*op))
    }
}

impl From<Op> for OpSet {
    fn from(op: Op) -> OpSet {
        OpSet(op.bit())
    }
}

impl BitOr for OpSet {
    type Output = OpSet;
    fn bitor(self, rhs: OpSet) -> OpSet {
        self.union(rhs)
    }
}

impl BitOr<Op> for OpSet {
    type Output = OpSet;
    fn bitor(self, rhs: Op) -> OpSet {
        self.union(rhs.into())
    }
}

impl BitOr for Op {
    type Output = OpSet;
    fn bitor(self, rhs: Op) -> OpSet {
        OpSet::from(self).union(rhs.into())
    }
}

impl fmt::Debug for OpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Op, OpSet};

    #[test]
    fn a_union_contains_exactly_its_members() {
        let set = Op::Write | Op::FsyncDir;
        assert!(set.contains(Op::Write));
        assert!(set.contains(Op::FsyncDir));
        assert!(!set.contains(Op::Fsync));
        assert_eq!(set.iter().collect::<Vec<_>>(), [Op::Write, Op::FsyncDir]);
        assert_eq!(format!("{set:?}"), "{Write, FsyncDir}");
    }

    #[test]
    fn all_contains_every_kind_and_empty_none() {
        for op in Op::ALL {
            assert!(OpSet::ALL.contains(op));
            assert!(!OpSet::EMPTY.contains(op));
        }
        assert!(OpSet::EMPTY.is_empty());
        assert_eq!(OpSet::ALL.iter().count(), Op::ALL.len());
    }
}
