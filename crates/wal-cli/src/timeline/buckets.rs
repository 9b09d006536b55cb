//! Append latency over time, in fixed-width time buckets.
//!
//! Each writer thread owns a [`Lane`]: one [`Cell`] per bucket (count, sum
//! and exact max of the latencies of the appends it saw acknowledged in
//! that bucket), written by that thread alone, so recording takes no lock,
//! no atomic and, once the lane has reached the bucket, no allocation: a
//! subtraction, a division and three updates of one cell. After the run the
//! lanes are merged into [`Buckets`].
//!
//! Memory is bounded by [`BucketPlan`]: at most [`CELLS_MAX`] cells over all
//! writers (24 bytes each), and cells are only written as time reaches
//! them. Buckets are as narrow as that allows, never below
//! [`BUCKET_WIDTH_MIN`].
//!
//! Per bucket the max is exact (a failover stall shows as one slow append,
//! and any sketch would blur it) and so is the mean. A median is not kept:
//! per-writer medians cannot be merged, and a per-bucket histogram on every
//! writer would cost hundreds of bytes a bucket.

use std::time::{Duration, Instant};

/// The narrowest bucket.
pub(crate) const BUCKET_WIDTH_MIN: Duration = Duration::from_millis(1);
/// Most cells over all writers (24 bytes each: 48 MiB at most).
pub(crate) const CELLS_MAX: usize = 1 << 21;
/// Most buckets one writer keeps.
pub(crate) const BUCKETS_PER_WRITER_MAX: usize = 1 << 17;

/// Nanoseconds of `d` (saturating: 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The bucket width and the number of buckets of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BucketPlan {
    /// Width of a bucket: a whole number of milliseconds.
    pub(crate) width: Duration,
    /// Buckets per writer. Half of them cover the planned duration; the
    /// other half the appends acknowledged after it (the ones in flight at
    /// the deadline, which a stall may hold for long). An append
    /// acknowledged later still counts in the last bucket.
    pub(crate) buckets_max: usize,
}

impl BucketPlan {
    /// The plan for `writers` threads appending for `duration`.
    pub(crate) fn new(duration: Duration, writers: usize) -> BucketPlan {
        assert!(writers > 0, "at least one writer");
        let buckets_max = (CELLS_MAX / writers).clamp(2, BUCKETS_PER_WRITER_MAX);
        let covered = (buckets_max / 2) as u64;
        let step = nanos(BUCKET_WIDTH_MIN);
        let width_steps = nanos(duration).div_ceil(covered).div_ceil(step).max(1);
        let plan = BucketPlan {
            width: Duration::from_nanos(width_steps * step),
            buckets_max,
        };
        assert!(plan.width >= BUCKET_WIDTH_MIN);
        assert!(plan.width.saturating_mul(covered as u32) >= duration);
        plan
    }
}

/// One writer's figures for one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cell {
    /// Appends acknowledged in the bucket.
    pub(crate) count: u64,
    /// The sum of their latencies. A writer's appends do not overlap, so
    /// this is at most the time since the run started: it cannot overflow.
    pub(crate) sum_ns: u64,
    /// The largest of their latencies (0 when `count` is 0).
    pub(crate) max_ns: u64,
}

impl Cell {
    /// Adds `other`'s appends to this cell.
    pub(crate) fn merge(&mut self, other: &Cell) {
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The mean latency, if any append is counted.
    pub(crate) fn mean_ns(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ns as f64 / self.count as f64)
    }
}

/// Where an appender reports each acknowledged append. The bench's writer
/// loop is generic over it, so that without `--timeline` ([`NoTimeline`])
/// the call compiles to nothing.
pub(crate) trait Completions {
    /// An append acknowledged at `end` after `took`.
    fn record(&mut self, end: Instant, took: Duration);
}

/// Keeps nothing: the bench without `--timeline`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoTimeline;

impl Completions for NoTimeline {
    #[inline(always)]
    fn record(&mut self, _end: Instant, _took: Duration) {}
}

/// One writer's buckets.
#[derive(Debug)]
pub(crate) struct Lane {
    origin: Instant,
    width_ns: u64,
    // INVARIANT: `cells.len() <= buckets_max`, and the capacity is
    // `buckets_max` from the start, so that growing never reallocates
    // (never copies the lane on the append path).
    cells: Vec<Cell>,
    buckets_max: usize,
}

impl Lane {
    /// An empty lane whose bucket 0 starts at `origin`.
    pub(crate) fn new(origin: Instant, plan: BucketPlan) -> Lane {
        assert!(plan.buckets_max > 0);
        Lane {
            origin,
            width_ns: nanos(plan.width),
            cells: Vec::with_capacity(plan.buckets_max),
            buckets_max: plan.buckets_max,
        }
    }

    /// The cells, bucket 0 first.
    pub(crate) fn cells(&self) -> &[Cell] {
        &self.cells
    }
}

impl Completions for Lane {
    #[inline]
    fn record(&mut self, end: Instant, took: Duration) {
        let since = nanos(end.saturating_duration_since(self.origin));
        let i = usize::try_from(since / self.width_ns)
            .unwrap_or(usize::MAX)
            .min(self.buckets_max - 1);
        if i >= self.cells.len() {
            // Within the capacity reserved up front: no reallocation.
            self.cells.resize(i + 1, Cell::default());
        }
        let took = nanos(took);
        let cell = &mut self.cells[i];
        cell.count += 1;
        cell.sum_ns += took;
        cell.max_ns = cell.max_ns.max(took);
    }
}

/// Every writer's buckets merged: bucket `i` covers `[i * width, (i + 1) *
/// width)` since the run started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Buckets {
    pub(crate) width: Duration,
    /// Up to the last bucket in which an append was acknowledged; buckets
    /// in which none was (a stall) have a count of 0.
    pub(crate) cells: Vec<Cell>,
}

impl Buckets {
    /// No buckets yet, `width` wide.
    pub(crate) fn new(width: Duration) -> Buckets {
        Buckets {
            width,
            cells: Vec::new(),
        }
    }

    /// Adds a writer's cells.
    pub(crate) fn merge(&mut self, cells: &[Cell]) {
        if self.cells.len() < cells.len() {
            self.cells.resize(cells.len(), Cell::default());
        }
        for (into, from) in self.cells.iter_mut().zip(cells) {
            into.merge(from);
        }
    }

    /// When bucket `i` starts, since the run started.
    pub(crate) fn start_of(&self, i: usize) -> Duration {
        self.width
            .saturating_mul(u32::try_from(i).unwrap_or(u32::MAX))
    }

    /// Appends counted over all buckets.
    pub(crate) fn count(&self) -> u64 {
        self.cells.iter().map(|c| c.count).sum()
    }

    /// At most `n_max` buckets, each merging `k` consecutive ones (the last
    /// one fewer), and their width: what a chart of `n_max` points shows.
    /// Maxima stay exact.
    pub(crate) fn coarsened(&self, n_max: usize) -> Buckets {
        assert!(n_max > 0);
        let k = self.cells.len().div_ceil(n_max).max(1);
        Buckets {
            width: self
                .width
                .saturating_mul(u32::try_from(k).unwrap_or(u32::MAX)),
            cells: self
                .cells
                .chunks(k)
                .map(|chunk| {
                    let mut cell = Cell::default();
                    for c in chunk {
                        cell.merge(c);
                    }
                    cell
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn lane(buckets_max: usize) -> (Instant, Lane) {
        let origin = Instant::now();
        let plan = BucketPlan {
            width: MS,
            buckets_max,
        };
        (origin, Lane::new(origin, plan))
    }

    #[test]
    fn each_bucket_keeps_the_exact_max_the_count_and_the_sum() {
        let (t0, mut lane) = lane(100);
        // Bucket 0: 3 appends; bucket 2: 2; bucket 1 sees none (a stall).
        lane.record(t0 + Duration::from_micros(100), Duration::from_micros(40));
        lane.record(
            t0 + Duration::from_micros(500),
            Duration::from_nanos(123_457),
        );
        lane.record(t0 + Duration::from_micros(999), Duration::from_micros(60));
        lane.record(
            t0 + Duration::from_millis(2),
            Duration::from_nanos(1_500_001),
        );
        lane.record(t0 + Duration::from_micros(2_100), Duration::from_nanos(7));
        let cells = lane.cells();
        assert_eq!(cells.len(), 3);
        assert_eq!(
            cells[0],
            Cell {
                count: 3,
                sum_ns: 223_457,
                max_ns: 123_457
            }
        );
        assert_eq!(cells[1], Cell::default());
        assert_eq!(cells[2].max_ns, 1_500_001);
        assert_eq!(cells[2].count, 2);
        assert_eq!(cells[2].mean_ns(), Some(750_004.0));
        assert_eq!(cells[1].mean_ns(), None);
    }

    #[test]
    fn merged_lanes_keep_the_max_of_every_writer() {
        let (t0, mut a) = lane(100);
        let mut b = Lane::new(
            t0,
            BucketPlan {
                width: MS,
                buckets_max: 100,
            },
        );
        a.record(
            t0 + Duration::from_micros(1_200),
            Duration::from_micros(300),
        );
        b.record(t0 + Duration::from_micros(1_900), Duration::from_millis(80));
        b.record(t0 + Duration::from_micros(4_100), Duration::from_micros(10));
        let mut all = Buckets::new(MS);
        all.merge(a.cells());
        all.merge(b.cells());
        assert_eq!(all.cells.len(), 5);
        assert_eq!(all.cells[1].count, 2);
        assert_eq!(all.cells[1].max_ns, 80_000_000);
        assert_eq!(all.cells[4].max_ns, 10_000);
        assert_eq!(all.count(), 3);
        assert_eq!(all.start_of(4), Duration::from_millis(4));

        let coarse = all.coarsened(2);
        assert_eq!(coarse.width, Duration::from_millis(3));
        assert_eq!(coarse.cells.len(), 2);
        assert_eq!(coarse.cells[0].max_ns, 80_000_000);
        assert_eq!(coarse.cells[1].max_ns, 10_000);
        assert_eq!(coarse.count(), 3);
    }

    #[test]
    fn an_append_acknowledged_past_the_last_bucket_counts_in_it() {
        let (t0, mut lane) = lane(4);
        lane.record(t0 + Duration::from_secs(60), Duration::from_secs(59));
        assert_eq!(lane.cells().len(), 4);
        assert_eq!(lane.cells()[3].max_ns, 59_000_000_000);
        // Growing stayed within the capacity reserved at the start.
        assert_eq!(lane.cells.capacity(), 4);
    }

    #[test]
    fn the_plan_bounds_memory_and_covers_the_duration() {
        let five = Duration::from_secs(5);
        let p = BucketPlan::new(five, 16);
        assert_eq!(p.width, MS);
        assert_eq!(p.buckets_max, BUCKETS_PER_WRITER_MAX);
        let p = BucketPlan::new(five, 1024);
        assert_eq!(p.buckets_max, CELLS_MAX / 1024);
        assert!(p.width.as_nanos() % MS.as_nanos() == 0, "{p:?}");
        assert!(p.width * (p.buckets_max as u32 / 2) >= five, "{p:?}");
        let week = Duration::from_secs(7 * 24 * 3600);
        let p = BucketPlan::new(week, 1);
        assert!(p.width * (p.buckets_max as u32 / 2) >= week, "{p:?}");
        assert_eq!(BucketPlan::new(Duration::from_micros(10), 1).width, MS);
    }
}
