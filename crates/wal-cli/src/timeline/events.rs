//! Failover events seen by polling the manager's figures.
//!
//! The failover manager counts its hedges and directory switches and says
//! which directory is current and whether the log is stranded
//! ([`FailoverStats`]). [`EventTracker`] compares each poll with the one
//! before: a rise of `hedges` is a hedge event; a rise of `switches` is one
//! event per switch. There are two directories and every switch moves to
//! the other one, so the last switch of a poll arrived at `current_dir`,
//! the one before it at the other directory, and so on: a switch arriving
//! at the secondary is a failover (`switch`), one arriving at the primary a
//! `failback`. An event is dated at the poll that saw it, so it is late by
//! at most the poll interval.

use std::time::Duration;

use wal_manager::{DirId, FailoverStats};

/// Most events kept; later ones are counted in [`EventTracker::dropped`].
pub(crate) const EVENTS_MAX: usize = 100_000;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// Syncs stuck past the hedge deadline were copied into the standby.
    Hedge {
        /// Hedges since the previous poll.
        added: u64,
        /// Hedges since the manager opened.
        total: u64,
    },
    /// The log moved to the secondary: switch number `n` since the manager
    /// opened.
    Switch { n: u64 },
    /// The log moved back to the primary: switch number `n`.
    Failback { n: u64 },
    /// Appenders started waiting on a slow directory whose alternative's
    /// probes fail.
    Stranded,
    /// That wait ended.
    Unstranded,
}

impl EventKind {
    /// The name in the CSV's `kind` column and the chart's legend.
    pub(crate) fn name(self) -> &'static str {
        match self {
            EventKind::Hedge { .. } => "hedge",
            EventKind::Switch { .. } => "switch",
            EventKind::Failback { .. } => "failback",
            EventKind::Stranded => "stranded",
            EventKind::Unstranded => "unstranded",
        }
    }

    /// The CSV's `detail` column (no commas).
    pub(crate) fn detail(self) -> String {
        match self {
            EventKind::Hedge { added, total } => format!("+{added} (total {total})"),
            EventKind::Switch { n } => format!("to secondary (switch {n})"),
            EventKind::Failback { n } => format!("to primary (switch {n})"),
            EventKind::Stranded => "appenders wait on the slow directory".to_owned(),
            EventKind::Unstranded => "appenders no longer wait".to_owned(),
        }
    }
}

/// An event and when the poll saw it, since the run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) at: Duration,
    pub(crate) kind: EventKind,
}

/// The figures compared from one poll to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    hedges: u64,
    switches: u64,
    dir: Option<DirId>,
    stranded: bool,
}

impl Seen {
    fn of(f: &FailoverStats) -> Seen {
        Seen {
            hedges: f.hedges,
            switches: f.switches,
            dir: f.current_dir,
            stranded: f.stranded,
        }
    }
}

/// Turns successive polls of [`FailoverStats`] into [`Event`]s.
#[derive(Debug, Default)]
pub(crate) struct EventTracker {
    last: Option<Seen>,
    events: Vec<Event>,
    dropped: u64,
}

impl EventTracker {
    /// A tracker whose first poll sets the baseline.
    pub(crate) fn new() -> EventTracker {
        EventTracker::default()
    }

    /// Compares `f`, polled at `at`, with the previous poll.
    pub(crate) fn observe(&mut self, at: Duration, f: &FailoverStats) {
        let now = Seen::of(f);
        let Some(last) = self.last.replace(now) else {
            return;
        };
        if now.hedges > last.hedges {
            self.push(
                at,
                EventKind::Hedge {
                    added: now.hedges - last.hedges,
                    total: now.hedges,
                },
            );
        }
        if now.switches > last.switches {
            self.push_switches(at, last.switches, now.switches, now.dir);
        }
        if now.stranded != last.stranded {
            let kind = if now.stranded {
                EventKind::Stranded
            } else {
                EventKind::Unstranded
            };
            self.push(at, kind);
        }
    }

    /// Switches `from + 1 ..= to`; the last one arrived at `dir` (unknown:
    /// each is taken for a failover, as a rise of `switches` most often is).
    fn push_switches(&mut self, at: Duration, from: u64, to: u64, dir: Option<DirId>) {
        // Only the newest switches of a burst are kept one by one: the rest
        // would only fill the list.
        let first = from + 1;
        let first_kept = first.max(to.saturating_sub(EVENTS_MAX as u64) + 1);
        self.dropped += first_kept - first;
        for n in first_kept..=to {
            let arrived_at = if (to - n) % 2 == 0 {
                dir
            } else {
                dir.map(DirId::other)
            };
            let kind = match arrived_at {
                Some(DirId::Primary) => EventKind::Failback { n },
                Some(DirId::Secondary) | None => EventKind::Switch { n },
            };
            self.push(at, kind);
        }
    }

    fn push(&mut self, at: Duration, kind: EventKind) {
        if self.events.len() < EVENTS_MAX {
            self.events.push(Event { at, kind });
        } else {
            self.dropped += 1;
        }
    }

    /// The events, oldest first, and how many more were not kept.
    pub(crate) fn finish(self) -> (Vec<Event>, u64) {
        (self.events, self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(hedges: u64, switches: u64, dir: DirId, stranded: bool) -> FailoverStats {
        FailoverStats {
            hedges,
            switches,
            current_dir: Some(dir),
            stranded,
            ..FailoverStats::default()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_poll_is_the_baseline() {
        let mut t = EventTracker::new();
        // A manager that had already switched and hedged before the run.
        t.observe(ms(0), &stats(5, 1, DirId::Secondary, true));
        t.observe(ms(1), &stats(5, 1, DirId::Secondary, true));
        assert_eq!(t.finish(), (vec![], 0));
    }

    #[test]
    fn a_switch_to_the_secondary_is_a_switch_and_back_a_failback() {
        let mut t = EventTracker::new();
        t.observe(ms(0), &stats(0, 0, DirId::Primary, false));
        t.observe(ms(1), &stats(2, 0, DirId::Primary, false));
        t.observe(ms(2), &stats(2, 1, DirId::Secondary, false));
        t.observe(ms(3), &stats(2, 1, DirId::Secondary, true));
        t.observe(ms(4), &stats(2, 1, DirId::Secondary, false));
        t.observe(ms(9), &stats(3, 2, DirId::Primary, false));
        let (events, dropped) = t.finish();
        assert_eq!(dropped, 0);
        let kinds: Vec<_> = events.iter().map(|e| (e.at, e.kind)).collect();
        assert_eq!(
            kinds,
            [
                (ms(1), EventKind::Hedge { added: 2, total: 2 }),
                (ms(2), EventKind::Switch { n: 1 }),
                (ms(3), EventKind::Stranded),
                (ms(4), EventKind::Unstranded),
                (ms(9), EventKind::Hedge { added: 1, total: 3 }),
                (ms(9), EventKind::Failback { n: 2 }),
            ]
        );
    }

    #[test]
    fn switches_between_two_polls_alternate_and_end_at_the_current_directory() {
        let mut t = EventTracker::new();
        t.observe(ms(0), &stats(0, 0, DirId::Primary, false));
        // Failover and failback within one poll interval.
        t.observe(ms(1), &stats(0, 2, DirId::Primary, false));
        // Then three more: secondary, primary, secondary.
        t.observe(ms(2), &stats(0, 5, DirId::Secondary, false));
        let kinds: Vec<_> = t.finish().0.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Switch { n: 1 },
                EventKind::Failback { n: 2 },
                EventKind::Switch { n: 3 },
                EventKind::Failback { n: 4 },
                EventKind::Switch { n: 5 },
            ]
        );
    }

    #[test]
    fn events_past_the_limit_are_counted_not_kept() {
        let mut t = EventTracker::new();
        t.observe(ms(0), &stats(0, 0, DirId::Primary, false));
        for i in 1..=EVENTS_MAX as u64 + 10 {
            t.observe(ms(i), &stats(i, 0, DirId::Primary, false));
        }
        let (events, dropped) = t.finish();
        assert_eq!(events.len(), EVENTS_MAX);
        assert_eq!(dropped, 10);
        assert_eq!(events[0].kind, EventKind::Hedge { added: 1, total: 1 });
    }

    #[test]
    fn every_kind_has_a_distinct_name_and_a_detail_without_commas() {
        let kinds = [
            EventKind::Hedge { added: 1, total: 2 },
            EventKind::Switch { n: 1 },
            EventKind::Failback { n: 2 },
            EventKind::Stranded,
            EventKind::Unstranded,
        ];
        let mut names: Vec<_> = kinds.iter().map(|k| k.name()).collect();
        names.dedup();
        assert_eq!(names.len(), kinds.len());
        for k in kinds {
            assert!(!k.detail().contains(','), "{k:?}");
        }
    }
}
