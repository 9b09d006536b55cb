//! `wal bench --timeline PATH`: append latency over time, with the failover
//! manager's hedges, switches and failbacks, as an SVG chart or CSV.
//!
//! `buckets` records each acknowledged append into per-writer time buckets
//! (the only part on the append path), `events` turns polls of the
//! manager's figures into events, and `chart` and `csv` write the result.
//! [`Destination::check`] runs before the bench starts, so a bad path never
//! costs a run.

mod buckets;
mod chart;
mod csv;
mod events;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use buckets::{BucketPlan, Buckets};
pub(crate) use buckets::{Completions, Lane, NoTimeline};
use events::{Event, EventKind, EventTracker};
use wal_manager::Manager;

use crate::failure::Failure;

/// How often the bench polls the failover manager's figures for events
/// with `--timeline` (without it, only the progress line needs the poll).
pub(crate) const EVENT_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// What the file holds, from the path's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `.svg`: the chart.
    Svg,
    /// `.csv`: the data.
    Csv,
}

/// A checked `--timeline` path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Destination {
    path: PathBuf,
    format: Format,
}

impl Destination {
    /// Checks `path` before the run: its extension picks the format (`.svg`
    /// or `.csv`, in any case), its directory must exist, and it must not
    /// be a directory itself. Whether the file can be written is known
    /// only when it is written, after the run.
    ///
    /// # Errors
    /// A usage error naming the path (and the missing directory).
    pub(crate) fn check(path: &Path) -> Result<Destination, Failure> {
        let shown = path.display();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let format = match extension.as_deref() {
            Some("svg") => Format::Svg,
            Some("csv") => Format::Csv,
            _ => {
                return Err(Failure::usage(format!(
                    "--timeline {shown}: the extension picks the format, .svg (a chart) or \
                     .csv (the data)"
                )));
            }
        };
        if path.is_dir() {
            return Err(Failure::usage(format!(
                "--timeline {shown}: is a directory"
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                let why = if dir.exists() {
                    "is not a directory"
                } else {
                    "does not exist"
                };
                return Err(Failure::usage(format!(
                    "--timeline {shown}: directory {} {why}",
                    dir.display()
                )));
            }
        }
        Ok(Destination {
            path: path.to_path_buf(),
            format,
        })
    }

    /// The path as given.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The format its extension picked.
    pub(crate) fn format(&self) -> Format {
        self.format
    }
}

/// What the chart's title says about the run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunInfo {
    pub(crate) writers: usize,
    pub(crate) record_size: usize,
    pub(crate) sync: bool,
    /// "failover" or "standalone".
    pub(crate) manager: &'static str,
}

impl RunInfo {
    /// "8 writers, 128-byte records, synced, failover manager".
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} writer{}, {}-byte records, {}, {} manager",
            self.writers,
            if self.writers == 1 { "" } else { "s" },
            self.record_size,
            if self.sync { "synced" } else { "unsynced" },
            self.manager
        )
    }
}

/// Records a run: hands each writer its [`Lane`], polls the manager for
/// events, and merges it all into a [`Timeline`].
#[derive(Debug)]
pub(crate) struct Recorder {
    origin: Instant,
    plan: BucketPlan,
    buckets: Buckets,
    /// `None` for a standalone manager: it has no failover events.
    tracker: Option<EventTracker>,
}

impl Recorder {
    /// A recorder for a run of `writers` threads for `duration` from
    /// `origin`; polls `manager` once for the baseline of its figures.
    pub(crate) fn start(
        manager: &Manager,
        origin: Instant,
        duration: Duration,
        writers: usize,
    ) -> Recorder {
        let plan = BucketPlan::new(duration, writers);
        let mut recorder = Recorder {
            origin,
            plan,
            buckets: Buckets::new(plan.width),
            tracker: manager.stats().failover.map(|_| EventTracker::new()),
        };
        recorder.poll(manager);
        recorder
    }

    /// A lane for one writer. Its cells are reserved up front (at most
    /// [`buckets::BUCKETS_PER_WRITER_MAX`] of 24 bytes), so that recording
    /// never reallocates.
    pub(crate) fn lane(&self) -> Lane {
        Lane::new(self.origin, self.plan)
    }

    /// How often [`Recorder::poll`] is worth calling: `None` when there is
    /// nothing to poll for.
    pub(crate) fn poll_interval(&self) -> Option<Duration> {
        self.tracker.as_ref().map(|_| EVENT_POLL_INTERVAL)
    }

    /// Reads the manager's failover figures for events. One call costs what
    /// [`Manager::stats`] costs: a few short locks, one of them the open
    /// log's queue lock that appenders take, and copies of its histograms.
    pub(crate) fn poll(&mut self, manager: &Manager) {
        let Some(tracker) = &mut self.tracker else {
            return;
        };
        let at = self.origin.elapsed();
        if let Some(f) = manager.stats().failover {
            tracker.observe(at, &f);
        }
    }

    /// Merges a writer's lane once it is done.
    pub(crate) fn add(&mut self, lane: &Lane) {
        self.buckets.merge(lane.cells());
    }

    /// The timeline, after a last poll.
    pub(crate) fn finish(mut self, manager: &Manager) -> Timeline {
        self.poll(manager);
        let (events, events_dropped) = match self.tracker {
            Some(t) => {
                let (events, dropped) = t.finish();
                (Some(events), dropped)
            }
            None => (None, 0),
        };
        Timeline {
            buckets: self.buckets,
            events,
            events_dropped,
        }
    }
}

/// What a run recorded.
#[derive(Clone, Debug)]
pub(crate) struct Timeline {
    /// Every writer's buckets, merged.
    pub(crate) buckets: Buckets,
    /// The failover events, oldest first; `None` for a standalone manager
    /// (it has none).
    pub(crate) events: Option<Vec<Event>>,
    /// Events past [`events::EVENTS_MAX`], not kept.
    pub(crate) events_dropped: u64,
}

impl Timeline {
    /// Writes the timeline to `dest` in its format.
    ///
    /// # Errors
    /// The file cannot be written (the message names it), or the chart
    /// cannot be drawn.
    pub(crate) fn write(&self, dest: &Destination, info: &RunInfo) -> Result<(), String> {
        let failed = |e: &dyn std::fmt::Display| {
            format!("writing the timeline {} failed: {e}", dest.path.display())
        };
        match dest.format {
            Format::Svg => {
                let svg = chart::render(self, info).map_err(|e| failed(&e))?;
                std::fs::write(&dest.path, svg).map_err(|e| failed(&e))
            }
            Format::Csv => {
                let file = File::create(&dest.path).map_err(|e| failed(&e))?;
                let mut out = BufWriter::new(file);
                csv::write(self, &mut out)
                    .and_then(|()| out.flush())
                    .map_err(|e| failed(&e))
            }
        }
    }

    /// For the report: "2003 buckets of 1 ms; 3 hedges, 1 switch, 1
    /// failback".
    pub(crate) fn summary(&self) -> String {
        let mut s = format!(
            "{} appends in {} buckets of {} ms",
            self.buckets.count(),
            self.buckets.cells.len(),
            self.buckets.width.as_millis()
        );
        let Some(events) = &self.events else {
            return s;
        };
        let mut hedges = 0;
        let (mut switches, mut failbacks, mut stranded) = (0, 0, 0);
        for e in events {
            match e.kind {
                EventKind::Hedge { added, .. } => hedges += added,
                EventKind::Switch { .. } => switches += 1,
                EventKind::Failback { .. } => failbacks += 1,
                EventKind::Stranded => stranded += 1,
                EventKind::Unstranded => {}
            }
        }
        let plural = |n: u64, one: &str, many: &str| if n == 1 { one } else { many }.to_owned();
        let _ = write!(
            s,
            "; {hedges} {}, {switches} {}, {failbacks} {}",
            plural(hedges, "hedge", "hedges"),
            plural(switches, "switch", "switches"),
            plural(failbacks, "failback", "failbacks")
        );
        if stranded > 0 {
            let _ = write!(
                s,
                ", stranded {stranded} {}",
                plural(stranded, "time", "times")
            );
        }
        if self.events_dropped > 0 {
            let _ = write!(s, " ({} more events not kept)", self.events_dropped);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<Destination, Failure>) -> String {
        let f = r.unwrap_err();
        assert_eq!(f.status, crate::failure::STATUS_USAGE);
        f.message.unwrap()
    }

    #[test]
    fn the_extension_picks_the_format() {
        let tmp = std::env::temp_dir();
        let svg = Destination::check(&tmp.join("t.svg")).unwrap();
        assert_eq!(svg.format(), Format::Svg);
        assert_eq!(
            Destination::check(&tmp.join("T.CSV")).unwrap().format(),
            Format::Csv
        );
        // A bare file name is in the current directory.
        assert_eq!(
            Destination::check(Path::new("t.csv")).unwrap().path(),
            Path::new("t.csv")
        );
        for bad in ["t.png", "t", "t.svg.txt", ".svg"] {
            let m = message(Destination::check(&tmp.join(bad)));
            assert!(
                m.contains(bad) && m.contains(".svg") && m.contains(".csv"),
                "{m}"
            );
        }
    }

    #[test]
    fn a_missing_directory_or_a_directory_is_refused() {
        let tmp = std::env::temp_dir();
        let missing = tmp.join("no-such-dir-for-wal-timeline").join("t.svg");
        let m = message(Destination::check(&missing));
        assert!(
            m.contains("no-such-dir-for-wal-timeline") && m.contains("does not exist"),
            "{m}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("x.svg");
        std::fs::create_dir(&dir).unwrap();
        let m = message(Destination::check(&dir));
        assert!(m.contains("x.svg") && m.contains("is a directory"), "{m}");
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let m = message(Destination::check(&file.join("t.csv")));
        assert!(m.contains("not a directory"), "{m}");
    }

    #[test]
    fn the_summary_counts_hedges_switches_and_failbacks() {
        let at = Duration::ZERO;
        let t = Timeline {
            buckets: Buckets::new(Duration::from_millis(1)),
            events: Some(vec![
                Event {
                    at,
                    kind: EventKind::Hedge { added: 3, total: 3 },
                },
                Event {
                    at,
                    kind: EventKind::Switch { n: 1 },
                },
                Event {
                    at,
                    kind: EventKind::Hedge { added: 2, total: 5 },
                },
            ]),
            events_dropped: 0,
        };
        assert_eq!(
            t.summary(),
            "0 appends in 0 buckets of 1 ms; 5 hedges, 1 switch, 0 failbacks"
        );
    }
}
