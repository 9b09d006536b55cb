//! [`ErrorFs`]: deterministic error injection by composable rules.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{DirLock, Error, File, Fs, Metadata, Op, OpFilter, PrepareStep, Result};

/// The error an injection rule returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `ENOSPC`: [`Error::is_no_space`] holds (kind `StorageFull`).
    NoSpace,
    /// `EIO`, what a failing disk reports.
    Eio,
    /// Any `errno`.
    Os(i32),
    /// An error of this kind with no `errno`.
    Kind(io::ErrorKind),
}

impl Fault {
    /// A fresh `io::Error` for this fault (`io::Error` is not `Clone`).
    pub fn to_io_error(self) -> io::Error {
        match self {
            Fault::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
            Fault::Eio => io::Error::from_raw_os_error(libc::EIO),
            Fault::Os(errno) => io::Error::from_raw_os_error(errno),
            Fault::Kind(kind) => io::Error::new(kind, "injected error"),
        }
    }
}

/// When to inject a [`Fault`]: a filter selecting operations, then limits on
/// which of the selected calls fail.
///
/// A call is *eligible* when the [`OpFilter`] selects it and, with
/// [`Rule::after_bytes`], the byte budget is spent. The rule fires on the
/// `nth` eligible call and on every later one, at most `times` times.
///
/// ```
/// use wal_fs::{Fault, Op, OpFilter, Rule};
///
/// // The third sync of any file under /primary fails with EIO, once.
/// let rule = Rule::new(OpFilter::ops([Op::Sync]).in_dir("/primary"), Fault::Eio)
///     .nth(3)
///     .times(1);
/// # let _ = rule;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    filter: OpFilter,
    fault: Fault,
    /// INVARIANT: at least 1.
    nth: u64,
    times: Option<u64>,
    after_bytes: Option<u64>,
}

impl Rule {
    /// A rule that fails every call `filter` selects with `fault`.
    pub fn new(filter: OpFilter, fault: Fault) -> Rule {
        Rule {
            filter,
            fault,
            nth: 1,
            times: None,
            after_bytes: None,
        }
    }

    /// Lets the first `n - 1` eligible calls through; the `n`th fails.
    ///
    /// # Panics
    /// If `n` is 0 (calls are counted from 1).
    #[must_use]
    pub fn nth(mut self, n: u64) -> Rule {
        assert!(n >= 1, "Rule::nth counts calls from 1");
        self.nth = n;
        self
    }

    /// Fires at most `k` times (the default is forever).
    #[must_use]
    pub fn times(mut self, k: u64) -> Rule {
        self.times = Some(k);
        self
    }

    /// Fires only once `n` bytes have been written to the files the filter's
    /// path conditions select (counting every write to them, whatever
    /// operation kinds the filter selects). A write that would cross the
    /// budget is a *short write*: its first bytes, up to the budget, reach
    /// the file, then it fails. Later writes fail without writing. A
    /// non-write operation is eligible once the budget is spent.
    #[must_use]
    pub fn after_bytes(mut self, n: u64) -> Rule {
        self.after_bytes = Some(n);
        self
    }
}

/// Identifies a rule added to an [`Injector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(u64);

/// The rule set of one or more [`ErrorFs`]. Cloning gives another handle to
/// the same rules, so a test can add and remove rules while other threads
/// use the filesystem.
#[derive(Clone, Default)]
pub struct Injector {
    rules: Arc<Mutex<Rules>>,
}

#[derive(Default)]
struct Rules {
    next_id: u64,
    /// In the order added: the first rule that fires decides the error.
    active: Vec<ActiveRule>,
}

struct ActiveRule {
    id: RuleId,
    rule: Rule,
    /// Eligible calls seen.
    eligible: u64,
    /// Times fired.
    fired: u64,
    /// Bytes written to selected paths.
    bytes: u64,
}

/// What an [`Injector`] decided about one call.
enum Verdict {
    Proceed,
    Fail {
        path: PathBuf,
        fault: Fault,
        /// For a write: how many bytes to write before failing.
        prefix: usize,
    },
}

impl fmt::Debug for Injector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = self.rules.lock();
        let mut list = f.debug_list();
        for r in &rules.active {
            list.entry(&(r.id, &r.rule, r.fired));
        }
        list.finish()
    }
}

impl Injector {
    /// An empty rule set.
    pub fn new() -> Injector {
        Injector::default()
    }

    /// Adds a rule; it applies to calls that start from now on.
    pub fn add(&self, rule: Rule) -> RuleId {
        let mut rules = self.rules.lock();
        let id = RuleId(rules.next_id);
        rules.next_id += 1;
        rules.active.push(ActiveRule {
            id,
            rule,
            eligible: 0,
            fired: 0,
            bytes: 0,
        });
        id
    }

    /// Removes a rule; returns how many times it fired, or `None` if there
    /// was no such rule.
    pub fn remove(&self, id: RuleId) -> Option<u64> {
        let mut rules = self.rules.lock();
        let at = rules.active.iter().position(|r| r.id == id)?;
        Some(rules.active.remove(at).fired)
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().active.clear();
    }

    /// How many times a rule has fired, or `None` if there is no such rule.
    pub fn fired(&self, id: RuleId) -> Option<u64> {
        let rules = self.rules.lock();
        rules.active.iter().find(|r| r.id == id).map(|r| r.fired)
    }

    /// Decides a call of `op` on `paths`; `write_len` is the length of a
    /// write's buffer.
    fn decide(&self, op: Op, paths: &[&Path], write_len: usize) -> Verdict {
        let mut rules = self.rules.lock();
        let mut verdict = Verdict::Proceed;
        for r in &mut rules.active {
            let Some(path) = paths.iter().find(|p| r.rule.filter.matches_path(p)) else {
                continue;
            };
            if !r.rule.filter.matches_op(op) {
                continue;
            }
            let (eligible, prefix) = match r.rule.after_bytes {
                None => (true, 0),
                Some(budget) if op == Op::Write => {
                    let left = budget.saturating_sub(r.bytes);
                    let prefix = usize::try_from(left).unwrap_or(usize::MAX).min(write_len);
                    (r.bytes + write_len as u64 > budget, prefix)
                }
                Some(budget) => (r.bytes >= budget, 0),
            };
            if !eligible {
                continue;
            }
            r.eligible += 1;
            let under_limit = r.rule.times.is_none_or(|k| r.fired < k);
            if r.eligible >= r.rule.nth && under_limit {
                r.fired += 1;
                verdict = Verdict::Fail {
                    path: path.to_path_buf(),
                    fault: r.rule.fault,
                    prefix,
                };
                break;
            }
        }
        if op == Op::Write {
            // Count what reaches the file, for every rule's byte budget.
            let written = match &verdict {
                Verdict::Proceed => write_len,
                Verdict::Fail { prefix, .. } => *prefix,
            } as u64;
            for r in &mut rules.active {
                if paths.iter().any(|p| r.rule.filter.matches_path(p)) {
                    r.bytes += written;
                }
            }
        }
        verdict
    }

    /// Decides a call that is not a write: an injected error, or `Ok`.
    fn check(&self, op: Op, paths: &[&Path]) -> Result<()> {
        match self.decide(op, paths, 0) {
            Verdict::Proceed => Ok(()),
            Verdict::Fail { path, fault, .. } => Err(Error::io(op, path, fault.to_io_error())),
        }
    }
}

/// A filesystem that injects errors into the calls to another one, as
/// chosen by the [`Rule`]s of its [`Injector`]. An injected error replaces
/// the call: the inner filesystem never sees it (except for the first bytes
/// of a short write, see [`Rule::after_bytes`]).
///
/// Files opened through it are wrapped too, so their operations (write,
/// read, sync, size, preallocate, close) are subject to the rules, matched
/// against the path the file was opened under.
///
/// ```
/// use std::path::Path;
/// use wal_fs::{ErrorFs, Fault, File, Fs, MemFs, Op, OpFilter, Rule};
///
/// let fs = ErrorFs::new(MemFs::new());
/// let rule = fs.injector().add(Rule::new(OpFilter::ops([Op::Sync]), Fault::Eio).times(1));
/// let mut f = fs.create(Path::new("/a.log")).unwrap();
/// f.write(b"x").unwrap();
/// assert!(f.sync_data().is_err());
/// assert!(f.sync_data().is_ok());
/// assert_eq!(fs.injector().fired(rule), Some(1));
/// ```
#[derive(Debug)]
pub struct ErrorFs<F> {
    inner: F,
    injector: Injector,
}

impl<F: Fs> ErrorFs<F> {
    /// Wraps `inner` with an empty rule set.
    pub fn new(inner: F) -> ErrorFs<F> {
        ErrorFs::with_injector(inner, Injector::new())
    }

    /// Wraps `inner` with the rules of `injector` (which may be shared with
    /// other `ErrorFs`).
    pub fn with_injector(inner: F, injector: Injector) -> ErrorFs<F> {
        ErrorFs { inner, injector }
    }

    /// The rule set; clone it to keep a handle.
    pub fn injector(&self) -> &Injector {
        &self.injector
    }

    /// The wrapped filesystem.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    fn wrap(&self, file: Box<dyn File>) -> Box<dyn File> {
        Box::new(ErrorFile {
            inner: file,
            injector: self.injector.clone(),
        })
    }
}

impl<F: Fs> Fs for ErrorFs<F> {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        self.injector.check(Op::Create, &[path])?;
        Ok(self.wrap(self.inner.create(path)?))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        self.injector.check(Op::Open, &[path])?;
        Ok(self.wrap(self.inner.open(path)?))
    }

    fn reuse_for_write(&self, old: &Path, new: &Path) -> Result<Box<dyn File>> {
        self.injector.check(Op::ReuseForWrite, &[old, new])?;
        Ok(self.wrap(self.inner.reuse_for_write(old, new)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.injector.check(Op::Rename, &[from, to])?;
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.injector.check(Op::Remove, &[path])?;
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.injector.check(Op::List, &[dir])?;
        self.inner.list(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.injector.check(Op::CreateDir, &[dir])?;
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.injector.check(Op::SyncDir, &[dir])?;
        self.inner.sync_dir(dir)
    }

    fn stat(&self, path: &Path) -> Result<Metadata> {
        self.injector.check(Op::Stat, &[path])?;
        self.inner.stat(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        self.injector.check(Op::Truncate, &[path])?;
        self.inner.truncate(path, len)
    }

    fn lock(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        self.injector.check(Op::Lock, &[dir])?;
        self.inner.lock(dir)
    }
}

/// A file opened through an [`ErrorFs`].
#[derive(Debug)]
struct ErrorFile {
    inner: Box<dyn File>,
    injector: Injector,
}

impl File for ErrorFile {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        let path = self.inner.path();
        match self.injector.decide(Op::Write, &[path], buf.len()) {
            Verdict::Proceed => self.inner.write(buf),
            Verdict::Fail {
                path,
                fault,
                prefix,
            } => {
                if prefix > 0 {
                    self.inner.write(&buf[..prefix])?;
                }
                Err(Error::io(Op::Write, path, fault.to_io_error()))
            }
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.injector.check(Op::Read, &[self.inner.path()])?;
        self.inner.read_at(buf, offset)
    }

    fn sync_data(&mut self) -> Result<()> {
        self.injector.check(Op::Sync, &[self.inner.path()])?;
        self.inner.sync_data()
    }

    /// Passed through without injection, so that upkeep a writer may or
    /// may not do does not shift the "Nth write/sync" predicates.
    fn prepare_ahead(&mut self, watch: &mut dyn FnMut(PrepareStep)) -> Result<()> {
        self.inner.prepare_ahead(watch)
    }

    fn size(&self) -> Result<u64> {
        self.injector.check(Op::Size, &[self.inner.path()])?;
        self.inner.size()
    }

    fn preallocate(&mut self, offset: u64, len: u64) -> Result<()> {
        self.injector.check(Op::Preallocate, &[self.inner.path()])?;
        self.inner.preallocate(offset, len)
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn close(self: Box<Self>) -> Result<()> {
        // An injected close error still closes the handle (dropping it), as
        // `close(2)` does.
        self.injector.check(Op::Close, &[self.inner.path()])?;
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemFs;

    fn setup() -> (ErrorFs<MemFs>, Injector) {
        let mem = MemFs::new();
        mem.create_dir_all(Path::new("/pri")).unwrap();
        mem.create_dir_all(Path::new("/sec")).unwrap();
        let fs = ErrorFs::new(mem);
        let injector = fs.injector().clone();
        (fs, injector)
    }

    #[test]
    fn injected_sync_error_is_returned_to_the_caller() {
        let (fs, inj) = setup();
        let id = inj.add(Rule::new(OpFilter::ops([Op::Sync]), Fault::Eio));
        let path = Path::new("/pri/000001.log");
        let mut f = fs.create(path).unwrap();
        f.write(b"record").unwrap();
        let err = f.sync_data().unwrap_err();
        assert_eq!(err.op(), Op::Sync);
        assert_eq!(err.path(), path);
        let Error::Io { source, .. } = &err else {
            panic!("expected an I/O error, got {err:?}");
        };
        assert_eq!(source.raw_os_error(), Some(libc::EIO));
        assert_eq!(inj.fired(id), Some(1));
        assert_eq!(
            fs.inner().read_durable_file(path).unwrap(),
            b"",
            "the failed sync did not reach the inner filesystem"
        );
    }

    #[test]
    fn enospc_on_write_has_kind_storage_full() {
        let (fs, inj) = setup();
        inj.add(Rule::new(OpFilter::ops([Op::Write]), Fault::NoSpace));
        let mut f = fs.create(Path::new("/pri/a")).unwrap();
        let err = f.write(b"x").unwrap_err();
        assert!(err.is_no_space());
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(f.size().unwrap(), 0, "nothing was written");
    }

    #[test]
    fn nth_call_and_times_limit_select_which_calls_fail() {
        let (fs, inj) = setup();
        let id = inj.add(
            Rule::new(OpFilter::ops([Op::Write]), Fault::Eio)
                .nth(3)
                .times(2),
        );
        let mut f = fs.create(Path::new("/pri/a")).unwrap();
        let outcomes: Vec<bool> = (0..6).map(|_| f.write(b"x").is_ok()).collect();
        assert_eq!(outcomes, [true, true, false, false, true, true]);
        assert_eq!(inj.fired(id), Some(2));
        assert_eq!(f.size().unwrap(), 4);
    }

    #[test]
    fn path_and_directory_filters_select_files() {
        let (fs, inj) = setup();
        let dir_rule = inj.add(Rule::new(
            OpFilter::ops([Op::Create]).in_dir("/sec"),
            Fault::Eio,
        ));
        let suffix_rule = inj.add(Rule::new(
            OpFilter::ops([Op::Create]).path_suffix(".tmp"),
            Fault::Eio,
        ));
        let contains_rule = inj.add(Rule::new(
            OpFilter::ops([Op::Write]).path_contains("000002"),
            Fault::Eio,
        ));
        assert!(fs.create(Path::new("/sec/000001.log")).is_err());
        assert!(fs.create(Path::new("/pri/x.tmp")).is_err());
        let mut ok = fs.create(Path::new("/pri/000001.log")).unwrap();
        ok.write(b"fine").unwrap();
        let mut bad = fs.create(Path::new("/pri/000002.log")).unwrap();
        assert!(bad.write(b"no").is_err());
        assert_eq!(inj.fired(dir_rule), Some(1));
        assert_eq!(inj.fired(suffix_rule), Some(1));
        assert_eq!(inj.fired(contains_rule), Some(1));
        assert_eq!(fs.list(Path::new("/sec")).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn rename_is_selected_by_either_path() {
        let (fs, inj) = setup();
        fs.inner().write_file(Path::new("/pri/a"), b"a").unwrap();
        inj.add(Rule::new(
            OpFilter::ops([Op::Rename]).in_dir("/sec"),
            Fault::Eio,
        ));
        let err = fs
            .rename(Path::new("/pri/a"), Path::new("/sec/a"))
            .unwrap_err();
        assert_eq!(
            err.path(),
            Path::new("/sec/a"),
            "the error names the matching path"
        );
        fs.rename(Path::new("/pri/a"), Path::new("/pri/b")).unwrap();
    }

    #[test]
    fn failing_after_n_bytes_writes_a_prefix_then_fails() {
        let (fs, inj) = setup();
        let id = inj.add(Rule::new(OpFilter::ops([Op::Write]), Fault::NoSpace).after_bytes(10));
        let path = Path::new("/pri/a");
        let mut f = fs.create(path).unwrap();
        f.write(b"0123").unwrap();
        f.write(b"456").unwrap();
        let err = f.write(b"789abc").unwrap_err();
        assert!(err.is_no_space());
        assert_eq!(
            fs.inner().read_file(path).unwrap(),
            b"0123456789",
            "a short write"
        );
        assert!(f.write(b"d").is_err(), "the budget stays spent");
        assert_eq!(fs.inner().read_file(path).unwrap(), b"0123456789");
        assert_eq!(inj.fired(id), Some(2));
    }

    #[test]
    fn sync_can_fail_once_enough_bytes_were_written() {
        let (fs, inj) = setup();
        inj.add(Rule::new(OpFilter::ops([Op::Sync]), Fault::Eio).after_bytes(100));
        let mut f = fs.create(Path::new("/pri/a")).unwrap();
        f.write(&[1; 60]).unwrap();
        f.sync_data().unwrap();
        f.write(&[2; 40]).unwrap();
        assert!(f.sync_data().is_err());
    }

    #[test]
    fn removing_a_rule_stops_injection() {
        let (fs, inj) = setup();
        let id = inj.add(Rule::new(OpFilter::any(), Fault::Eio));
        assert!(fs.stat(Path::new("/pri")).is_err());
        assert!(fs.create(Path::new("/pri/a")).is_err());
        assert_eq!(inj.remove(id), Some(2));
        assert_eq!(inj.remove(id), None);
        assert_eq!(inj.fired(id), None);
        assert!(fs.stat(Path::new("/pri")).unwrap().is_dir);
        assert!(fs.create(Path::new("/pri/a")).is_ok());
    }

    #[test]
    fn first_firing_rule_decides_the_error() {
        let (fs, inj) = setup();
        let first = inj.add(Rule::new(OpFilter::ops([Op::Create]), Fault::NoSpace));
        let second = inj.add(Rule::new(OpFilter::ops([Op::Create]), Fault::Eio));
        assert!(fs.create(Path::new("/pri/a")).unwrap_err().is_no_space());
        assert_eq!(inj.fired(first), Some(1));
        assert_eq!(inj.fired(second), Some(0));
    }

    #[test]
    fn custom_kind_and_file_level_ops_are_injected() {
        let (fs, inj) = setup();
        fs.inner().write_file(Path::new("/pri/a"), b"abc").unwrap();
        let r = fs.open(Path::new("/pri/a")).unwrap();
        inj.add(Rule::new(
            OpFilter::ops([Op::Read, Op::Size]),
            Fault::Kind(io::ErrorKind::TimedOut),
        ));
        let mut buf = [0; 3];
        assert_eq!(
            r.read_at(&mut buf, 0).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(r.size().unwrap_err().op(), Op::Size);
        inj.clear();
        assert_eq!(r.read_at(&mut buf, 0).unwrap(), 3);
        inj.add(Rule::new(OpFilter::ops([Op::Close]), Fault::Eio));
        assert_eq!(r.close().unwrap_err().op(), Op::Close);
    }

    #[test]
    fn rules_added_from_another_thread_apply_to_a_busy_fs() {
        let (fs, inj) = setup();
        let fs = Arc::new(fs);
        let mut f = fs.create(Path::new("/pri/a")).unwrap();
        let id =
            std::thread::spawn(move || inj.add(Rule::new(OpFilter::ops([Op::Write]), Fault::Eio)))
                .join()
                .unwrap();
        assert!(f.write(b"x").is_err());
        assert_eq!(fs.injector().fired(id), Some(1));
    }
}
