//! The failover monitor's rules (Pebble's `failoverMonitor`, plus hedging
//! and a guard against bouncing back to a failing disk), as a pure
//! function over one sample and as a table.
//!
//! The monitor samples the current segment's recorder (since when its
//! current operation has been running, and whether any operation failed),
//! how long someone has waited for durability without progress, and, while
//! on the secondary, the prober's recent probes of the primary. It samples
//! at each moment a verdict could change (see the module docs of
//! [`super`]). The first matching row decides:
//!
//! | # | condition | verdict |
//! |---|---|---|
//! | 1 | failover disabled, and the writer failed | fail the writer (its error reaches every waiter) |
//! | 2 | failover disabled | stay |
//! | 3 | on the primary, the secondary failed twice for this log, and the writer failed | fail the writer |
//! | 4 | on the primary, the secondary failed twice for this log | stay (the secondary is probably misconfigured) |
//! | 5 | the writer failed | switch now (a failed writer is useless) |
//! | 6 | on the secondary, the primary is suspect (its last probe failed or has run past the threshold, an operation of another segment of the log in it, left behind or its standby, has run past the threshold, or it was left for an error and no probe has finished since), and an operation has run longer than the threshold or a wait passed the hedge deadline | stay (no bounce: the log waits for the secondary) |
//! | 7 | an operation has run longer than the threshold, and this log switched fewer than 2 times | switch now |
//! | 8 | an operation has run longer than the threshold, and longer than twice the latency that caused the previous switch | switch now |
//! | 9 | hedging on, the standby is open, and someone has waited for durability past the hedge deadline with no progress | hedge into the standby |
//! | 10 | an operation has run longer than the threshold (otherwise) | stay (damping: avoid flapping between two slow disks) |
//! | 11 | on the secondary, the primary is not suspect, and its probe mean and max over `healthy_interval` are both below `healthy_probe_latency_threshold` | fail back to the primary |
//! | 12 | otherwise | stay |
//!
//! Rows 1 and 3 go beyond Pebble, which in those cases leaves waiters
//! waiting: here a writer that can neither write nor switch fails its
//! waiters with the reason. Row 6 goes beyond Pebble, which sends the log
//! back by latency to a primary that fails every probe, and can then run
//! out of segments for the error switch that follows; with row 6, and an
//! error switch allowed past `segments_per_log_max`, a writer fails only
//! when both directories have failed it. Error switches stay bounded: every
//! error on the secondary counts, and rows 3 and 4 stop at two. The table
//! is [`SWITCH_RULES`]; a test walks every row with [`decide`].

use std::time::Duration;

use crate::types::DirId;

/// How many errors on the secondary (for the current log) make the monitor
/// stop switching away from the primary (Pebble: 2).
pub const SECONDARY_ERRORS_MAX: u32 = 2;
/// Switches (for the current log) that happen without damping (Pebble: 2).
pub const UNDAMPED_SWITCHES: u32 = 2;

/// One sample, everything the rules look at.
// Independent facts about one moment, each read by its own rule: not a
// state machine in disguise.
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Whether failover is enabled.
    pub failover_enabled: bool,
    /// The directory being written.
    pub dir: DirId,
    /// Errors seen on the secondary while writing the current log.
    pub secondary_errors: u32,
    /// Whether the current segment's writer has failed.
    pub writer_failed: bool,
    /// How long its current operation has been running.
    pub latency: Duration,
    /// `unhealthy_op_latency_threshold`.
    pub threshold: Duration,
    /// Switches made while writing the current log.
    pub switches: u32,
    /// The latency that caused the previous latency switch.
    pub latency_at_last_switch: Duration,
    /// Mean of the primary's probes over the healthy interval.
    pub probe_mean: Duration,
    /// Max of the primary's probes over the healthy interval.
    pub probe_max: Duration,
    /// `healthy_probe_latency_threshold`.
    pub healthy_threshold: Duration,
    /// On the secondary: the primary's last probe failed or has run past
    /// the threshold, an operation of another segment of the log in it
    /// (left behind, or its standby) has run past the threshold, or it was
    /// left for an error and no probe has finished since.
    pub primary_suspect: bool,
    /// `failover.hedge`.
    pub hedge_enabled: bool,
    /// Whether a hedge can be made: a standby segment is open and has not
    /// failed, and the current segment is installed.
    pub standby_ready: bool,
    /// How long someone has waited for durability with no progress (and
    /// no hedge) so far; zero when nobody waits.
    pub waiting: Duration,
    /// The hedge deadline for the current directory.
    pub hedge_after: Duration,
}

/// What the monitor does after a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing.
    Stay,
    /// Switch to the other directory.
    Switch(SwitchReason),
    /// Write the records not yet durable into the standby too, and sync it.
    Hedge,
    /// Fail the writer: it cannot write and cannot switch.
    FailWriter,
}

/// Why the monitor switched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchReason {
    /// The writer failed.
    Error,
    /// An operation ran longer than the threshold.
    Latency,
    /// The primary is healthy again.
    Failback,
    /// Asked for through [`crate::FailoverManager::force_switch`].
    Forced,
}

impl SwitchReason {
    /// A word for logs.
    pub fn name(self) -> &'static str {
        match self {
            SwitchReason::Error => "error",
            SwitchReason::Latency => "latency",
            SwitchReason::Failback => "failback",
            SwitchReason::Forced => "forced",
        }
    }
}

/// One row of the switch rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchRule {
    /// When the row applies.
    pub condition: &'static str,
    /// What the monitor does.
    pub verdict: Verdict,
}

/// The index of the no-bounce row in [`SWITCH_RULES`].
pub const NO_BOUNCE_ROW: usize = 5;

/// The rules, in order; the first matching row decides.
pub const SWITCH_RULES: [SwitchRule; 12] = [
    SwitchRule {
        condition: "failover disabled, writer failed",
        verdict: Verdict::FailWriter,
    },
    SwitchRule {
        condition: "failover disabled",
        verdict: Verdict::Stay,
    },
    SwitchRule {
        condition: "on primary, secondary failed twice, writer failed",
        verdict: Verdict::FailWriter,
    },
    SwitchRule {
        condition: "on primary, secondary failed twice",
        verdict: Verdict::Stay,
    },
    SwitchRule {
        condition: "writer failed",
        verdict: Verdict::Switch(SwitchReason::Error),
    },
    SwitchRule {
        condition: "on secondary, primary suspect, latency over threshold or wait past the hedge deadline (no bounce)",
        verdict: Verdict::Stay,
    },
    SwitchRule {
        condition: "latency over threshold, fewer than 2 switches",
        verdict: Verdict::Switch(SwitchReason::Latency),
    },
    SwitchRule {
        condition: "latency over threshold and over twice the latency at the previous switch",
        verdict: Verdict::Switch(SwitchReason::Latency),
    },
    SwitchRule {
        condition: "hedging on, standby open, wait past the hedge deadline",
        verdict: Verdict::Hedge,
    },
    SwitchRule {
        condition: "latency over threshold (damped)",
        verdict: Verdict::Stay,
    },
    SwitchRule {
        condition: "on secondary, primary not suspect, its probes healthy",
        verdict: Verdict::Switch(SwitchReason::Failback),
    },
    SwitchRule {
        condition: "otherwise",
        verdict: Verdict::Stay,
    },
];

/// Applies the rules to a sample: returns the index of the deciding row and
/// its verdict.
// Row numbers read better as literals than as converted booleans.
#[allow(clippy::bool_to_int_with_if)]
pub fn decide(s: &Sample) -> (usize, Verdict) {
    let slow = s.latency > s.threshold;
    let hedge_due = s.waiting > Duration::ZERO && s.waiting >= s.hedge_after;
    let row = if !s.failover_enabled {
        if s.writer_failed { 0 } else { 1 }
    } else if s.dir == DirId::Primary && s.secondary_errors >= SECONDARY_ERRORS_MAX {
        if s.writer_failed { 2 } else { 3 }
    } else if s.writer_failed {
        4
    } else if s.dir == DirId::Secondary && s.primary_suspect && (slow || hedge_due) {
        NO_BOUNCE_ROW
    } else if slow && s.switches < UNDAMPED_SWITCHES {
        6
    } else if slow && s.latency > s.latency_at_last_switch * 2 {
        7
    } else if s.hedge_enabled && s.standby_ready && hedge_due {
        8
    } else if slow {
        9
    } else if s.dir == DirId::Secondary
        && !s.primary_suspect
        && s.probe_mean < s.healthy_threshold
        && s.probe_max < s.healthy_threshold
    {
        10
    } else {
        11
    };
    (row, SWITCH_RULES[row].verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn healthy_on_primary() -> Sample {
        Sample {
            failover_enabled: true,
            dir: DirId::Primary,
            secondary_errors: 0,
            writer_failed: false,
            latency: Duration::ZERO,
            threshold: 100 * MS,
            switches: 0,
            latency_at_last_switch: Duration::ZERO,
            probe_mean: Duration::from_secs(86_400),
            probe_max: Duration::from_secs(86_400),
            healthy_threshold: 25 * MS,
            primary_suspect: false,
            hedge_enabled: true,
            standby_ready: true,
            waiting: Duration::ZERO,
            hedge_after: 5 * MS,
        }
    }

    /// A sample that matches row `row` and no earlier one.
    fn sample_for_row(row: usize) -> Sample {
        let base = healthy_on_primary();
        match row {
            0 => Sample {
                failover_enabled: false,
                writer_failed: true,
                ..base
            },
            1 => Sample {
                failover_enabled: false,
                latency: 500 * MS,
                ..base
            },
            2 => Sample {
                secondary_errors: 2,
                writer_failed: true,
                ..base
            },
            3 => Sample {
                secondary_errors: 2,
                latency: 500 * MS,
                ..base
            },
            4 => Sample {
                writer_failed: true,
                ..base
            },
            5 => Sample {
                dir: DirId::Secondary,
                primary_suspect: true,
                latency: 150 * MS,
                waiting: 150 * MS,
                ..base
            },
            6 => Sample {
                latency: 150 * MS,
                switches: 1,
                ..base
            },
            7 => Sample {
                latency: 450 * MS,
                switches: 2,
                latency_at_last_switch: 200 * MS,
                ..base
            },
            8 => Sample {
                latency: 350 * MS,
                switches: 2,
                latency_at_last_switch: 200 * MS,
                waiting: 6 * MS,
                ..base
            },
            9 => Sample {
                latency: 350 * MS,
                switches: 2,
                latency_at_last_switch: 200 * MS,
                waiting: 6 * MS,
                standby_ready: false,
                ..base
            },
            10 => Sample {
                dir: DirId::Secondary,
                probe_mean: 10 * MS,
                probe_max: 20 * MS,
                ..base
            },
            11 => Sample {
                dir: DirId::Secondary,
                probe_mean: 10 * MS,
                probe_max: 30 * MS,
                ..base
            },
            _ => panic!("no sample for row {row}: add one"),
        }
    }

    #[test]
    fn every_row_of_the_switch_rules_decides_its_case() {
        for (row, rule) in SWITCH_RULES.iter().enumerate() {
            let s = sample_for_row(row);
            assert_eq!(
                decide(&s),
                (row, rule.verdict),
                "row {}: {}",
                row + 1,
                rule.condition
            );
        }
    }

    #[test]
    fn a_healthy_primary_stays() {
        assert_eq!(decide(&healthy_on_primary()), (11, Verdict::Stay));
    }

    #[test]
    fn the_secondary_error_rule_applies_only_on_the_primary() {
        let s = Sample {
            dir: DirId::Secondary,
            secondary_errors: 5,
            writer_failed: true,
            ..healthy_on_primary()
        };
        assert_eq!(decide(&s).1, Verdict::Switch(SwitchReason::Error));
    }

    #[test]
    fn a_suspect_primary_does_not_stop_an_error_switch_or_matter_on_the_primary() {
        let on_secondary = Sample {
            dir: DirId::Secondary,
            primary_suspect: true,
            ..healthy_on_primary()
        };
        let failed = Sample {
            writer_failed: true,
            ..on_secondary
        };
        assert_eq!(decide(&failed).1, Verdict::Switch(SwitchReason::Error));
        let slow_on_primary = Sample {
            latency: 150 * MS,
            primary_suspect: true,
            ..healthy_on_primary()
        };
        assert_eq!(
            decide(&slow_on_primary).1,
            Verdict::Switch(SwitchReason::Latency)
        );
    }

    #[test]
    fn no_failback_to_a_suspect_primary_however_good_its_probes() {
        let failback = sample_for_row(10);
        assert_eq!(decide(&failback).1, Verdict::Switch(SwitchReason::Failback));
        let suspect = Sample {
            primary_suspect: true,
            ..failback
        };
        assert_eq!(decide(&suspect), (11, Verdict::Stay));
    }

    #[test]
    fn no_hedge_without_a_standby_or_with_hedging_off_or_before_the_deadline() {
        let due = Sample {
            waiting: 5 * MS,
            ..healthy_on_primary()
        };
        assert_eq!(decide(&due).1, Verdict::Hedge, "due at the deadline");
        for s in [
            Sample {
                standby_ready: false,
                ..due
            },
            Sample {
                hedge_enabled: false,
                ..due
            },
            Sample {
                waiting: 4 * MS,
                ..due
            },
        ] {
            assert_eq!(decide(&s).1, Verdict::Stay, "{s:?}");
        }
    }

    #[test]
    fn latency_exactly_at_the_threshold_is_healthy() {
        let s = Sample {
            latency: 100 * MS,
            ..healthy_on_primary()
        };
        assert_eq!(decide(&s).1, Verdict::Stay);
    }
}
