//! The metrics example serves every documented metric name in Prometheus
//! text format: this test runs it and scrapes it over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The example's binary. `cargo test --all-targets` builds examples only as
/// test harnesses, so build the program itself here, with the test profile:
/// every dependency is already compiled for it, only the example is new.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--profile",
            "test",
            "--example",
            "metrics_exporter",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "building the example failed");
    let path = profile_dir.join("examples").join("metrics_exporter");
    assert!(path.exists(), "{} not found", path.display());
    path
}

fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[test]
fn the_metrics_example_serves_every_documented_name() {
    let mut child = Command::new(example_binary())
        .args(["--port", "0", "--serve-secs", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    // Wait until the workload has appended and synced something.
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let body = scrape(&addr);
        let synced = body.lines().any(|l| {
            l.starts_with("wal_fsyncs_total ") && l.split_whitespace().nth(1) != Some("0")
        });
        if synced || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    for name in wal_manager::metrics::NAMES {
        assert!(
            body.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{body}"
        );
    }
    assert!(
        body.contains("# HELP wal_appends_total"),
        "help texts are registered"
    );
    assert!(
        body.contains("wal_current_dir{dir=\"primary\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("wal_fsync_latency_seconds{quantile=\"0.99\"}"),
        "{body}"
    );
}
