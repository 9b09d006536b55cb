//! The metrics example serves every documented metric name in Prometheus
//! text format: this test runs the example's own server (its source is
//! included below) and scrapes it over HTTP.

#[path = "../examples/metrics_exporter.rs"]
// The example's `main` is not used here, and its `pub` items are public
// only to the example.
#[allow(dead_code, unreachable_pub)]
mod example;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

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
    let (tx, rx) = std::sync::mpsc::channel();
    // The server stops on its own; the test does not wait for it.
    std::thread::spawn(move || {
        let options = example::Options {
            serve_secs: Some(60),
            ..example::Options::default()
        };
        example::serve(&options, |addr| tx.send(addr).unwrap()).unwrap();
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the example started listening")
        .to_string();
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
