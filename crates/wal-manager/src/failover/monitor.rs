//! The failover monitor's switch rules (Pebble's `failoverMonitor`), as a
//! pure function over one sample and as a table.
//!
//! Every `unhealthy_sampling_interval` the monitor samples the current
//! segment's recorder (how long its current operation has been running, and
//! whether any operation failed) and, while on the secondary, the prober's
//! recent probes of the primary. The first matching row decides:
//!
//! | # | condition | verdict |
//! |---|---|---|
//! | 1 | failover disabled, and the writer failed | fail the writer (its error reaches every waiter) |
//! | 2 | failover disabled | stay |
//! | 3 | on the primary, the secondary failed twice for this log, and the writer failed | fail the writer |
//! | 4 | on the primary, the secondary failed twice for this log | stay (the secondary is probably misconfigured) |
//! | 5 | the writer failed | switch now (a failed writer is useless) |
//! | 6 | an operation has run longer than the threshold, and this log switched fewer than 2 times | switch now |
//! | 7 | an operation has run longer than the threshold, and longer than twice the latency that caused the previous switch | switch now |
//! | 8 | an operation has run longer than the threshold (otherwise) | stay (damping: avoid flapping between two slow disks) |
//! | 9 | on the secondary, and the primary's probe mean and max over `healthy_interval` are both below `healthy_probe_latency_threshold` | fail back to the primary |
//! | 10 | otherwise | stay |
//!
//! Rows 1 and 3 go beyond Pebble, which in those cases leaves waiters
//! waiting: here a writer that can neither write nor switch fails its
//! waiters with the reason. The table is [`SWITCH_RULES`]; a test walks
//! every row with [`decide`].

use std::time::Duration;

use crate::types::DirId;

/// How many errors on the secondary (for the current log) make the monitor
/// stop switching away from the primary (Pebble: 2).
pub const SECONDARY_ERRORS_MAX: u32 = 2;
/// Switches (for the current log) that happen without damping (Pebble: 2).
pub const UNDAMPED_SWITCHES: u32 = 2;

/// One sample, everything the rules look at.
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
}

/// What the monitor does after a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing.
    Stay,
    /// Switch to the other directory.
    Switch(SwitchReason),
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

/// The switch rules, in order; the first matching row decides.
pub const SWITCH_RULES: [SwitchRule; 10] = [
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
        condition: "latency over threshold, fewer than 2 switches",
        verdict: Verdict::Switch(SwitchReason::Latency),
    },
    SwitchRule {
        condition: "latency over threshold and over twice the latency at the previous switch",
        verdict: Verdict::Switch(SwitchReason::Latency),
    },
    SwitchRule {
        condition: "latency over threshold (damped)",
        verdict: Verdict::Stay,
    },
    SwitchRule {
        condition: "on secondary, primary probes healthy",
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
    let row = if !s.failover_enabled {
        if s.writer_failed { 0 } else { 1 }
    } else if s.dir == DirId::Primary && s.secondary_errors >= SECONDARY_ERRORS_MAX {
        if s.writer_failed { 2 } else { 3 }
    } else if s.writer_failed {
        4
    } else if s.latency > s.threshold {
        if s.switches < UNDAMPED_SWITCHES {
            5
        } else if s.latency > s.latency_at_last_switch * 2 {
            6
        } else {
            7
        }
    } else if s.dir == DirId::Secondary
        && s.probe_mean < s.healthy_threshold
        && s.probe_max < s.healthy_threshold
    {
        8
    } else {
        9
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
                latency: 150 * MS,
                switches: 1,
                ..base
            },
            6 => Sample {
                latency: 450 * MS,
                switches: 2,
                latency_at_last_switch: 200 * MS,
                ..base
            },
            7 => Sample {
                latency: 350 * MS,
                switches: 2,
                latency_at_last_switch: 200 * MS,
                ..base
            },
            8 => Sample {
                dir: DirId::Secondary,
                probe_mean: 10 * MS,
                probe_max: 20 * MS,
                ..base
            },
            9 => Sample {
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
        assert_eq!(decide(&healthy_on_primary()), (9, Verdict::Stay));
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
    fn latency_exactly_at_the_threshold_is_healthy() {
        let s = Sample {
            latency: 100 * MS,
            ..healthy_on_primary()
        };
        assert_eq!(decide(&s).1, Verdict::Stay);
    }
}
