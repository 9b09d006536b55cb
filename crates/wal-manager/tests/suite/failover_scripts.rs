//! Failover scenarios as data-driven scripts (`crates/wal-manager/tests/testdata/failover/`),
//! porting the behaviour of Pebble's `wal/testdata` scenarios. Each file runs
//! against a fresh failover manager on an in-memory disk with fault
//! injection, a manual clock and a manual driver. `REWRITE=1` regenerates
//! the expected output.

use std::path::Path;

use wal_testkit::datadriven::run_file;
use wal_testkit::failover::Harness;

fn run(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/failover")
        .join(format!("{name}.txt"));
    let mut h = Harness::new();
    run_file(&path, |cmd| h.run(cmd));
}

#[test]
fn no_faults_stays_on_the_primary() {
    run("no_faults");
}

#[test]
fn a_stuck_sync_is_hedged_into_the_standby_and_switched_at_its_deadline() {
    run("hedge");
}

#[test]
fn a_hedged_log_that_bounces_back_reads_whole() {
    run("hedge_bounce");
}

#[test]
fn a_slow_secondary_is_hedged_back_into_a_standby_in_the_recovered_primary() {
    run("hedge_back");
}

#[test]
fn a_fill_stuck_on_the_primary_is_switched_away_from_at_the_threshold() {
    run("fill_stall");
}

#[test]
fn a_hedge_while_the_failback_segment_is_created_keeps_the_segments_in_order() {
    run("hedge_during_failback");
}

#[test]
fn a_slow_secondary_does_not_send_the_log_back_to_a_failing_primary() {
    run("no_bounce");
}

#[test]
fn a_slow_secondary_does_not_send_the_log_back_to_a_primary_that_just_failed() {
    run("no_bounce_before_probe");
}

#[test]
fn a_slow_secondary_does_not_send_the_log_back_into_a_primary_still_stalled() {
    run("no_bounce_into_stall");
}

#[test]
fn a_failed_create_switches_at_the_first_sample_and_a_hung_one_fails_back() {
    run("create_fails");
}

#[test]
fn latency_over_the_threshold_switches_and_replays_the_queue() {
    run("latency_switch");
}

#[test]
fn switches_are_damped_after_two_and_stop_after_two_secondary_errors() {
    run("damping");
}

#[test]
fn healthy_probes_fail_back_to_the_primary() {
    run("failback");
}

#[test]
fn with_failover_disabled_the_error_surfaces() {
    run("disabled");
}

#[test]
fn close_succeeds_while_a_blocked_writer_is_stuck() {
    run("blocked_write");
}

#[test]
fn the_eleventh_segment_is_refused() {
    run("switch_limit");
}

#[test]
fn the_reader_dedups_and_classifies_segment_ends() {
    run("reader");
}

#[test]
fn a_record_cut_in_a_non_last_segment_does_not_leak_into_the_next() {
    run("pebble_3865");
}
