//! [`LatencyFs`]: stalls held and released by a test, fixed delays, and
//! seeded random delays (a noisy disk).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::rng::SplitMix64;
use crate::{DirLock, File, Fs, Metadata, Op, OpFilter, PrepareStep, Result};

/// The stalls and delays of one or more [`LatencyFs`]. Cloning gives another
/// handle to the same set.
#[derive(Clone, Default)]
pub struct LatencyControl {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<Gates>,
    /// Signalled whenever a stall is released or the blocked count changes.
    changed: Condvar,
}

#[derive(Default)]
struct Gates {
    next_id: u64,
    stalls: Vec<(u64, OpFilter)>,
    delays: Vec<(DelayId, OpFilter, Delay)>,
    /// Operations parked in [`LatencyControl::gate`] right now.
    blocked: usize,
}

/// How long a selected operation sleeps.
#[derive(Debug)]
enum Delay {
    Fixed(Duration),
    /// With probability `per_million / 1e6`, a time drawn uniformly from
    /// `min..=max`; otherwise none.
    Noise {
        rng: SplitMix64,
        per_million: u32,
        min: Duration,
        max: Duration,
    },
}

impl Delay {
    fn draw(&mut self) -> Duration {
        match self {
            Delay::Fixed(d) => *d,
            Delay::Noise {
                rng,
                per_million,
                min,
                max,
            } => {
                if rng.below(1_000_000) >= u64::from(*per_million) {
                    return Duration::ZERO;
                }
                let span = max.saturating_sub(*min).as_micros() as u64;
                *min + Duration::from_micros(rng.below(span + 1))
            }
        }
    }
}

/// Identifies a delay added by [`LatencyControl::add_delay`] or
/// [`LatencyControl::add_noise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DelayId(u64);

/// A stall: while it is held, every operation it selects blocks before
/// reaching the wrapped filesystem. Released by [`Stall::release`] or by
/// dropping it.
#[must_use = "dropping a Stall releases it at once"]
pub struct Stall {
    shared: Arc<Shared>,
    id: u64,
}

impl fmt::Debug for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stall")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Stall {
    /// Releases the stall: the operations it blocked proceed (unless
    /// another stall still selects them).
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        let mut gates = self.shared.state.lock();
        gates.stalls.retain(|(id, _)| *id != self.id);
        self.shared.changed.notify_all();
    }
}

impl fmt::Debug for LatencyControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gates = self.shared.state.lock();
        f.debug_struct("LatencyControl")
            .field("stalls", &gates.stalls.len())
            .field("delays", &gates.delays.len())
            .field("blocked", &gates.blocked)
            .finish()
    }
}

impl LatencyControl {
    /// No stall and no delay.
    pub fn new() -> LatencyControl {
        LatencyControl::default()
    }

    /// Blocks every operation `filter` selects, from now until the returned
    /// handle is released or dropped. Operations already past the gate are
    /// not affected.
    pub fn stall(&self, filter: OpFilter) -> Stall {
        let mut gates = self.shared.state.lock();
        let id = gates.next_id;
        gates.next_id += 1;
        gates.stalls.push((id, filter));
        Stall {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// Makes every operation `filter` selects sleep for `delay` before it
    /// runs (delays of several matching rules add up).
    pub fn add_delay(&self, filter: OpFilter, delay: Duration) -> DelayId {
        let mut gates = self.shared.state.lock();
        let id = DelayId(gates.next_id);
        gates.next_id += 1;
        gates.delays.push((id, filter, Delay::Fixed(delay)));
        id
    }

    /// Makes each operation `filter` selects sleep, with probability
    /// `per_million` in a million, for a time drawn uniformly from
    /// `min..=max` (a disk that is healthy but now and then slow). The draws
    /// are a pure function of `seed` and the order of the operations.
    ///
    /// # Panics
    /// If `per_million` is over a million or `min` is over `max`.
    pub fn add_noise(
        &self,
        filter: OpFilter,
        per_million: u32,
        min: Duration,
        max: Duration,
        seed: u64,
    ) -> DelayId {
        assert!(
            per_million <= 1_000_000,
            "per_million {per_million} is over a million"
        );
        assert!(min <= max, "noise from {min:?} to {max:?}: min is over max");
        let mut gates = self.shared.state.lock();
        let id = DelayId(gates.next_id);
        gates.next_id += 1;
        let rng = SplitMix64::new(seed);
        gates.delays.push((
            id,
            filter,
            Delay::Noise {
                rng,
                per_million,
                min,
                max,
            },
        ));
        id
    }

    /// Removes a delay; returns whether it existed.
    pub fn remove_delay(&self, id: DelayId) -> bool {
        let mut gates = self.shared.state.lock();
        let before = gates.delays.len();
        gates.delays.retain(|(d, _, _)| *d != id);
        gates.delays.len() != before
    }

    /// How many operations are blocked by stalls right now.
    pub fn blocked_count(&self) -> usize {
        self.shared.state.lock().blocked
    }

    /// Waits until at least `n` operations are blocked; returns whether that
    /// happened before `timeout`. Lets a test know an operation is stuck
    /// without sleeping for a guessed time.
    pub fn wait_until_blocked(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut gates = self.shared.state.lock();
        while gates.blocked < n {
            if self
                .shared
                .changed
                .wait_until(&mut gates, deadline)
                .timed_out()
            {
                return gates.blocked >= n;
            }
        }
        true
    }

    /// The gate every operation passes: parks while a stall selects it, then
    /// sleeps for the matching delays.
    ///
    /// A parked operation waits on the condition variable, which releases
    /// the mutex, so it holds no lock: operations that no stall selects pass
    /// freely, and releasing a stall (which needs the mutex) cannot be
    /// blocked by the operations it stalls.
    fn gate(&self, op: Op, paths: &[&Path]) {
        let mut gates = self.shared.state.lock();
        let stalled = |g: &Gates| g.stalls.iter().any(|(_, f)| f.select(op, paths).is_some());
        if stalled(&gates) {
            gates.blocked += 1;
            self.shared.changed.notify_all();
            while stalled(&gates) {
                self.shared.changed.wait(&mut gates);
            }
            gates.blocked -= 1;
            self.shared.changed.notify_all();
        }
        let delay: Duration = gates
            .delays
            .iter_mut()
            .filter(|(_, f, _)| f.select(op, paths).is_some())
            .map(|(_, _, d)| d.draw())
            .sum();
        drop(gates);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
}

/// A filesystem whose operations a test can stall (hold until released) or
/// slow down, to simulate a stuck or slow disk. The operation blocks before
/// it reaches the wrapped filesystem.
///
/// Files opened through it are wrapped too; their operations are matched
/// against the path they were opened under.
///
/// ```
/// use std::path::Path;
/// use std::time::Duration;
/// use wal_fs::{File, Fs, LatencyFs, MemFs, Op, OpFilter};
///
/// let fs = LatencyFs::new(MemFs::new());
/// let control = fs.control().clone();
/// let mut f = fs.create(Path::new("/a.log")).unwrap();
/// let stall = control.stall(OpFilter::ops([Op::Sync]));
/// let syncer = std::thread::spawn(move || f.sync_data());
/// assert!(control.wait_until_blocked(1, Duration::from_secs(10)));
/// stall.release();
/// syncer.join().unwrap().unwrap();
/// ```
#[derive(Debug)]
pub struct LatencyFs<F> {
    inner: F,
    control: LatencyControl,
}

impl<F: Fs> LatencyFs<F> {
    /// Wraps `inner`, with no stall and no delay.
    pub fn new(inner: F) -> LatencyFs<F> {
        LatencyFs::with_control(inner, LatencyControl::new())
    }

    /// Wraps `inner` with the stalls and delays of `control` (which may be
    /// shared with other `LatencyFs`).
    pub fn with_control(inner: F, control: LatencyControl) -> LatencyFs<F> {
        LatencyFs { inner, control }
    }

    /// The stalls and delays; clone it to keep a handle.
    pub fn control(&self) -> &LatencyControl {
        &self.control
    }

    /// The wrapped filesystem.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    fn wrap(&self, file: Box<dyn File>) -> Box<dyn File> {
        Box::new(LatencyFile {
            inner: file,
            control: self.control.clone(),
        })
    }
}

impl<F: Fs> Fs for LatencyFs<F> {
    fn create(&self, path: &Path) -> Result<Box<dyn File>> {
        self.control.gate(Op::Create, &[path]);
        Ok(self.wrap(self.inner.create(path)?))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn File>> {
        self.control.gate(Op::Open, &[path]);
        Ok(self.wrap(self.inner.open(path)?))
    }

    fn reuse_for_write(&self, old: &Path, new: &Path) -> Result<Box<dyn File>> {
        self.control.gate(Op::ReuseForWrite, &[old, new]);
        Ok(self.wrap(self.inner.reuse_for_write(old, new)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.control.gate(Op::Rename, &[from, to]);
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.control.gate(Op::Remove, &[path]);
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.control.gate(Op::List, &[dir]);
        self.inner.list(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.control.gate(Op::CreateDir, &[dir]);
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.control.gate(Op::SyncDir, &[dir]);
        self.inner.sync_dir(dir)
    }

    fn stat(&self, path: &Path) -> Result<Metadata> {
        self.control.gate(Op::Stat, &[path]);
        self.inner.stat(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        self.control.gate(Op::Truncate, &[path]);
        self.inner.truncate(path, len)
    }

    fn lock(&self, dir: &Path) -> Result<Box<dyn DirLock>> {
        self.control.gate(Op::Lock, &[dir]);
        self.inner.lock(dir)
    }
}

/// A file opened through a [`LatencyFs`].
#[derive(Debug)]
struct LatencyFile {
    inner: Box<dyn File>,
    control: LatencyControl,
}

impl File for LatencyFile {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.control.gate(Op::Write, &[self.inner.path()]);
        self.inner.write(buf)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.control.gate(Op::Read, &[self.inner.path()]);
        self.inner.read_at(buf, offset)
    }

    fn sync_data(&mut self) -> Result<()> {
        self.control.gate(Op::Sync, &[self.inner.path()]);
        self.inner.sync_data()
    }

    fn prepare_ahead(&mut self, watch: &mut dyn FnMut(PrepareStep)) -> Result<()> {
        // It writes and syncs: a stalled disk stalls it too, at the step
        // the watcher is told of; `PrepareAhead` stalls only it.
        watch(PrepareStep::Write);
        self.control.gate(Op::PrepareAhead, &[self.inner.path()]);
        self.control.gate(Op::Write, &[self.inner.path()]);
        watch(PrepareStep::Sync);
        self.control.gate(Op::Sync, &[self.inner.path()]);
        let r = self.inner.prepare_ahead(watch);
        watch(PrepareStep::Done);
        r
    }

    fn size(&self) -> Result<u64> {
        self.control.gate(Op::Size, &[self.inner.path()]);
        self.inner.size()
    }

    fn preallocate(&mut self, offset: u64, len: u64) -> Result<()> {
        self.control.gate(Op::Preallocate, &[self.inner.path()]);
        self.inner.preallocate(offset, len)
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.control.gate(Op::Close, &[self.inner.path()]);
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemFs;
    use std::thread;

    /// Long enough for a loaded machine; tests only wait this long when they
    /// are about to fail.
    const PATIENCE: Duration = Duration::from_secs(20);

    fn setup() -> (Arc<LatencyFs<MemFs>>, LatencyControl) {
        let mem = MemFs::new();
        mem.create_dir_all(Path::new("/pri")).unwrap();
        mem.create_dir_all(Path::new("/sec")).unwrap();
        let fs = LatencyFs::new(mem);
        let control = fs.control().clone();
        (Arc::new(fs), control)
    }

    #[test]
    fn stalled_write_stays_blocked_until_released() {
        let (fs, control) = setup();
        let path = Path::new("/pri/000001.log");
        let mut f = fs.create(path).unwrap();
        let stall = control.stall(OpFilter::ops([Op::Write]).in_dir("/pri"));
        let writer = thread::spawn(move || f.write(b"stuck"));
        assert!(control.wait_until_blocked(1, PATIENCE));
        assert!(!writer.is_finished(), "the write is still blocked");
        assert_eq!(control.blocked_count(), 1);
        assert_eq!(
            fs.inner().read_file(path).unwrap(),
            b"",
            "a stalled write has not reached the wrapped filesystem"
        );
        stall.release();
        writer.join().unwrap().unwrap();
        assert_eq!(control.blocked_count(), 0);
        assert_eq!(fs.inner().read_file(path).unwrap(), b"stuck");
    }

    #[test]
    fn stall_on_one_directory_does_not_block_another() {
        let (fs, control) = setup();
        let mut stuck = fs.create(Path::new("/pri/a")).unwrap();
        let stall = control.stall(OpFilter::any().in_dir("/pri"));
        let writer = thread::spawn(move || stuck.write(b"x"));
        assert!(control.wait_until_blocked(1, PATIENCE));
        // Everything on the other directory proceeds while the write is
        // parked (this thread would hang here otherwise).
        let mut f = fs.create(Path::new("/sec/b")).unwrap();
        f.write(b"free").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/sec")).unwrap();
        assert_eq!(fs.list(Path::new("/sec")).unwrap(), ["b"]);
        assert!(!writer.is_finished());
        drop(stall);
        writer.join().unwrap().unwrap();
    }

    #[test]
    fn dropping_the_stall_handle_releases_every_blocked_op() {
        let (fs, control) = setup();
        let stall = control.stall(OpFilter::ops([Op::Create, Op::SyncDir]));
        let threads: Vec<_> = ["/pri/a", "/sec/b"]
            .into_iter()
            .map(|p| {
                let fs = Arc::clone(&fs);
                thread::spawn(move || fs.create(Path::new(p)).map(|_| ()))
            })
            .chain([{
                let fs = Arc::clone(&fs);
                thread::spawn(move || fs.sync_dir(Path::new("/pri")))
            }])
            .collect();
        assert!(control.wait_until_blocked(3, PATIENCE));
        drop(stall);
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert_eq!(control.blocked_count(), 0);
    }

    #[test]
    fn wait_until_blocked_reports_a_timeout() {
        let (_fs, control) = setup();
        assert!(!control.wait_until_blocked(1, Duration::from_millis(20)));
        assert!(control.wait_until_blocked(0, Duration::ZERO));
    }

    #[test]
    fn delay_slows_matching_ops_only_until_removed() {
        let (fs, control) = setup();
        let delay = Duration::from_millis(30);
        let id = control.add_delay(OpFilter::ops([Op::Sync]), delay);
        let mut f = fs.create(Path::new("/pri/a")).unwrap();
        let start = Instant::now();
        f.sync_data().unwrap();
        assert!(
            start.elapsed() >= delay,
            "the sync slept at least the delay"
        );
        assert!(control.remove_delay(id));
        assert!(!control.remove_delay(id));
    }

    fn noise(per_million: u32, seed: u64) -> Delay {
        Delay::Noise {
            rng: SplitMix64::new(seed),
            per_million,
            min: Duration::from_millis(5),
            max: Duration::from_millis(30),
        }
    }

    #[test]
    fn noise_delays_about_the_given_share_within_its_bounds_and_replays_by_seed() {
        let draws: Vec<Duration> = {
            let mut n = noise(10_000, 7);
            (0..100_000).map(|_| n.draw()).collect()
        };
        let slow: Vec<_> = draws.iter().filter(|d| !d.is_zero()).collect();
        // 1% of 100 000 is 1000; the binomial's sd is about 31.
        assert!(
            (850..=1150).contains(&slow.len()),
            "{} of 100000 draws delayed, expected about 1000",
            slow.len()
        );
        assert!(
            slow.iter()
                .all(|d| (Duration::from_millis(5)..=Duration::from_millis(30)).contains(d))
        );
        let mut again = noise(10_000, 7);
        assert!(
            draws.iter().all(|d| *d == again.draw()),
            "same seed, same draws"
        );
        let mut never = noise(0, 7);
        assert!((0..10_000).all(|_| never.draw().is_zero()));
        let mut always = noise(1_000_000, 7);
        assert!((0..10_000).all(|_| !always.draw().is_zero()));
    }

    #[test]
    fn noise_is_added_and_removed_like_a_delay() {
        let (fs, control) = setup();
        let id = control.add_noise(
            OpFilter::ops([Op::Sync]),
            1_000_000,
            Duration::from_millis(1),
            Duration::from_millis(2),
            1,
        );
        let mut f = fs.create(Path::new("/pri/a")).unwrap();
        let start = Instant::now();
        f.sync_data().unwrap();
        assert!(start.elapsed() >= Duration::from_millis(1));
        assert!(control.remove_delay(id));
    }
}
