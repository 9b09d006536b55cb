//! Which operations a fault-injection rule or a stall applies to.

use std::path::{Path, PathBuf};

use crate::Op;

/// Selects filesystem operations by kind and by path. Every condition given
/// must hold; a filter with no condition selects every operation.
///
/// An operation with two paths ([`crate::Fs::rename`],
/// [`crate::Fs::reuse_for_write`]) is selected if either path satisfies the
/// path conditions. File-level operations ([`Op::Write`], [`Op::Sync`], ...)
/// are matched against the path the file was opened under.
///
/// ```
/// use std::path::Path;
/// use wal_fs::{Op, OpFilter};
///
/// let filter = OpFilter::ops([Op::Write, Op::Sync]).in_dir("/primary").path_suffix(".log");
/// assert!(filter.matches(Op::Sync, Path::new("/primary/000001.log")));
/// assert!(!filter.matches(Op::Sync, Path::new("/secondary/000001.log")));
/// assert!(!filter.matches(Op::Create, Path::new("/primary/000001.log")));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpFilter {
    /// Empty means every operation.
    ops: Vec<Op>,
    dir: Option<PathBuf>,
    contains: Option<String>,
    suffix: Option<String>,
}

impl OpFilter {
    /// Selects every operation on every path.
    pub fn any() -> OpFilter {
        OpFilter::default()
    }

    /// Selects the given operation kinds (on every path, until narrowed).
    pub fn ops(ops: impl IntoIterator<Item = Op>) -> OpFilter {
        OpFilter::default().and_ops(ops)
    }

    /// Also selects the operation kinds `ops`.
    #[must_use]
    pub fn and_ops(mut self, ops: impl IntoIterator<Item = Op>) -> OpFilter {
        self.ops.extend(ops);
        self.ops.sort_unstable();
        self.ops.dedup();
        self
    }

    /// Narrows to paths inside directory `dir` (compared component by
    /// component, so `/a/b` is not inside `/a/bc`).
    #[must_use]
    pub fn in_dir(mut self, dir: impl Into<PathBuf>) -> OpFilter {
        self.dir = Some(dir.into());
        self
    }

    /// Narrows to paths whose text contains `needle`.
    #[must_use]
    pub fn path_contains(mut self, needle: impl Into<String>) -> OpFilter {
        self.contains = Some(needle.into());
        self
    }

    /// Narrows to paths whose text ends with `suffix`.
    #[must_use]
    pub fn path_suffix(mut self, suffix: impl Into<String>) -> OpFilter {
        self.suffix = Some(suffix.into());
        self
    }

    /// Whether operation `op` on `path` is selected.
    pub fn matches(&self, op: Op, path: &Path) -> bool {
        self.matches_op(op) && self.matches_path(path)
    }

    /// Whether `op` is one of the selected kinds.
    pub fn matches_op(&self, op: Op) -> bool {
        self.ops.is_empty() || self.ops.contains(&op)
    }

    /// Whether `path` satisfies the path conditions.
    pub fn matches_path(&self, path: &Path) -> bool {
        if self.dir.as_ref().is_some_and(|dir| !path.starts_with(dir)) {
            return false;
        }
        if self.contains.is_none() && self.suffix.is_none() {
            return true;
        }
        let text = path.to_string_lossy();
        self.contains.as_deref().is_none_or(|n| text.contains(n))
            && self.suffix.as_deref().is_none_or(|s| text.ends_with(s))
    }

    /// The first of `paths` that selects operation `op`, if any.
    pub(crate) fn select<'p>(&self, op: Op, paths: &[&'p Path]) -> Option<&'p Path> {
        if !self.matches_op(op) {
            return None;
        }
        paths.iter().copied().find(|p| self.matches_path(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filter_selects_everything() {
        let f = OpFilter::any();
        for op in Op::ALL {
            assert!(f.matches(op, Path::new("/x/y")));
        }
    }

    #[test]
    fn directory_filter_compares_whole_components() {
        let f = OpFilter::any().in_dir("/a/b");
        assert!(f.matches(Op::Write, Path::new("/a/b/c.log")));
        assert!(!f.matches(Op::Write, Path::new("/a/bc/c.log")));
    }

    #[test]
    fn all_conditions_must_hold() {
        let f = OpFilter::ops([Op::Sync])
            .path_contains("0001")
            .path_suffix(".log");
        assert!(f.matches(Op::Sync, Path::new("d/000001.log")));
        assert!(!f.matches(Op::Sync, Path::new("d/000002.log")));
        assert!(!f.matches(Op::Sync, Path::new("d/000001.tmp")));
        assert!(!f.matches(Op::Write, Path::new("d/000001.log")));
    }

    #[test]
    fn select_returns_the_first_matching_path_of_a_two_path_op() {
        let f = OpFilter::ops([Op::Rename]).in_dir("/b");
        let from = Path::new("/a/x");
        let to = Path::new("/b/x");
        assert_eq!(f.select(Op::Rename, &[from, to]), Some(to));
        assert_eq!(f.select(Op::Remove, &[from, to]), None);
    }
}
