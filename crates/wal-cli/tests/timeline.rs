//! `wal bench --timeline`: the CSV covers the run bucket by bucket and adds
//! up to the bench's own figures, the SVG is a well-formed chart with its
//! legend, and a path that cannot be used is refused before the run.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Run, bench_two_writers, wal, write_config};

const FAILOVER: &str = "[primary]\ndir = \"p\"\n[secondary]\ndir = \"s\"\n";
const HEADER: &str = "t_s,kind,latency_ms_max,latency_ms_mean,count,detail";
const EVENT_KINDS: [&str; 5] = ["hedge", "switch", "failback", "stranded", "unstranded"];

/// Runs a synced bench of 2 writers for `secs` on `config` with
/// `--timeline timeline`; returns the run and its JSON summary.
fn bench(config: &Path, secs: &str, timeline: &Path) -> (Run, Value) {
    let run = bench_two_writers(
        config,
        secs,
        &["--sync", "--json", "--timeline", timeline.to_str().unwrap()],
    );
    run.assert_ok();
    let summary = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    (run, summary)
}

/// One latency row of the CSV.
#[derive(Debug)]
struct Bucket {
    t_s: f64,
    max_ms: Option<f64>,
    count: u64,
}

/// Parses every row; returns the latency rows and the event kinds.
fn parse_csv(text: &str) -> (Vec<Bucket>, Vec<String>) {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    let (mut buckets, mut events) = (Vec::new(), Vec::new());
    let mut last_t = 0.0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 6, "{line:?}");
        let t_s: f64 = fields[0].parse().unwrap();
        assert!(t_s >= last_t, "rows are in time order: {line:?}");
        last_t = t_s;
        let number = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().unwrap());
        if fields[1] == "latency" {
            let count: u64 = fields[4].parse().unwrap();
            let (max_ms, mean_ms) = (number(fields[2]), number(fields[3]));
            assert_eq!(max_ms.is_some(), count > 0, "{line:?}");
            assert_eq!(mean_ms.is_some(), count > 0, "{line:?}");
            if let (Some(max), Some(mean)) = (max_ms, mean_ms) {
                assert!(0.0 < mean && mean <= max, "{line:?}");
            }
            assert_eq!(fields[5], "", "{line:?}");
            buckets.push(Bucket { t_s, max_ms, count });
        } else {
            assert!(EVENT_KINDS.contains(&fields[1]), "{line:?}");
            assert!(fields[2..5].iter().all(|f| f.is_empty()), "{line:?}");
            assert!(!fields[5].is_empty(), "{line:?}");
            events.push(fields[1].to_owned());
        }
    }
    (buckets, events)
}

#[test]
fn a_csv_timeline_has_a_row_per_millisecond_adding_up_to_the_bench_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "failover.toml", FAILOVER);
    let csv = tmp.path().join("x.csv");
    let (run, s) = bench(&config, "0.3", &csv);
    assert_eq!(s["timeline"], csv.to_str().unwrap());
    let said = format!("  timeline written to {} (CSV: ", csv.display());
    assert!(run.stdout.contains(&said), "{run:#?}");

    let (buckets, events) = parse_csv(&std::fs::read_to_string(&csv).unwrap());
    // One row per 1 ms bucket from the start to the last acknowledgement.
    for (i, b) in buckets.iter().enumerate() {
        assert!((b.t_s - i as f64 / 1000.0).abs() < 1e-9, "{i}: {b:?}");
    }
    let last = buckets.last().unwrap();
    assert!(last.t_s >= 0.29, "the rows cover the 0.3 s run: {last:?}");
    // Every acknowledged append is counted once.
    let counted: u64 = buckets.iter().map(|b| b.count).sum();
    assert_eq!(counted, s["records"].as_u64().unwrap());
    // The slowest bucket's max is the bench's exact max (ns in both).
    let slowest_ms = buckets.iter().filter_map(|b| b.max_ms).fold(0.0, f64::max);
    let bench_max_us = s["max_us"].as_f64().unwrap();
    assert!(
        (slowest_ms * 1000.0 - bench_max_us).abs() < 1e-3,
        "{slowest_ms} ms vs {bench_max_us} us"
    );
    // Events agree with the summary's counters.
    let hedge_rows = events.iter().filter(|k| *k == "hedge").count() as u64;
    assert!(
        hedge_rows <= s["hedges"].as_u64().unwrap(),
        "{events:?} {s}"
    );
    let switches = events
        .iter()
        .filter(|k| *k == "switch" || *k == "failback")
        .count() as u64;
    assert_eq!(switches, s["dir_switches"].as_u64().unwrap(), "{events:?}");
}

#[test]
fn a_standalone_timeline_has_latency_rows_and_no_events() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "standalone.toml", "[primary]\ndir = \"wal\"\n");
    let csv = tmp.path().join("standalone.CSV");
    let (run, s) = bench(&config, "0.1", &csv);
    let (buckets, events) = parse_csv(&std::fs::read_to_string(&csv).unwrap());
    assert!(events.is_empty(), "{events:?}");
    let counted: u64 = buckets.iter().map(|b| b.count).sum();
    assert_eq!(counted, s["records"].as_u64().unwrap());
    let said = run
        .stdout
        .lines()
        .find(|l| l.starts_with("  timeline written to "))
        .unwrap();
    assert!(said.ends_with(" buckets of 1 ms)"), "no events: {said:?}");
}

/// Checks that `svg` is well-formed as far as a chart needs: every tag is
/// closed in order, attributes are quoted, nothing follows the root.
fn assert_well_formed(svg: &str) {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg.trim_end();
    let mut closed_root = false;
    while let Some(start) = rest.find('<') {
        assert!(!closed_root, "text after the root element");
        let end = start + rest[start..].find('>').expect("an unclosed tag");
        let tag = &rest[start + 1..end];
        assert_eq!(tag.matches('"').count() % 2, 0, "{tag:?}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "tags close in order");
            closed_root = open.is_empty();
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().unwrap());
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty() && closed_root, "unclosed: {open:?}");
}

#[test]
fn an_svg_timeline_is_a_chart_with_a_title_and_a_legend() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "failover.toml", FAILOVER);
    let path = tmp.path().join("x.svg");
    let (run, s) = bench(&config, "0.3", &path);
    assert_eq!(s["timeline"], path.to_str().unwrap());
    assert!(run.stdout.contains("(SVG chart: "), "{run:#?}");
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    assert_well_formed(&svg);
    for text in [
        "2 writers, 100-byte records, synced, failover manager",
        "seconds since the start",
        "max per 1 ms (exact)",
        "mean per 1 ms",
        "hedge (",
        "switch (",
        "failback (",
        "stranded (",
    ] {
        assert!(svg.contains(text), "{text:?} missing from the chart");
    }
}

/// Runs a 5 s bench with `--timeline timeline` on a fresh failover config;
/// asserts it is refused at once with a usage error naming `needles`, and
/// that nothing was created.
fn assert_refused_before_the_run(timeline: &Path, needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "failover.toml", FAILOVER);
    let started = Instant::now();
    let run = wal([
        "bench",
        "--config",
        config.to_str().unwrap(),
        "--duration",
        "5",
        "--timeline",
        timeline.to_str().unwrap(),
    ]);
    run.assert_error(2, needles);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "refused before the run"
    );
    assert!(!tmp.path().join("p").exists(), "the bench did not start");
    assert!(!tmp.path().join("s").exists(), "the bench did not start");
    assert!(!timeline.exists());
}

#[test]
fn a_timeline_with_another_extension_is_refused_before_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["timeline.png", "timeline"] {
        let path = tmp.path().join(name);
        let shown = path.to_str().unwrap();
        assert_refused_before_the_run(&path, &["--timeline", shown, ".svg", ".csv"]);
    }
}

#[test]
fn a_timeline_in_a_missing_directory_is_refused_before_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-dir");
    let path = missing.join("t.svg");
    assert_refused_before_the_run(
        &path,
        &[
            path.to_str().unwrap(),
            missing.to_str().unwrap(),
            "does not exist",
        ],
    );
    assert!(!missing.exists());
}
