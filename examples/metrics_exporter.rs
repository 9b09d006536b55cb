//! Serves a running WAL's metrics in Prometheus text format.
//!
//! Runs a small synced workload on a failover `Wal` (two temporary
//! directories unless given) and answers `GET /metrics` on a local port with
//! the figures of `wal_manager::metrics`, published through the `metrics`
//! facade and rendered by `metrics-exporter-prometheus`.
//!
//! ```sh
//! cargo run --example metrics_exporter -- --port 9464
//! curl -s localhost:9464/metrics | grep wal_
//! ```
//!
//! Flags: `--port N` (0: any free port; the first stdout line says which),
//! `--primary DIR --secondary DIR`, `--serve-secs N` (stop after N seconds;
//! default: run until killed).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use wal_manager::{Config, Wal};

/// What to serve.
#[derive(Debug, Default)]
pub struct Options {
    /// The port (0: any free port).
    pub port: u16,
    /// The primary directory (default: a temporary one).
    pub primary: Option<PathBuf>,
    /// The secondary directory (default: a temporary one).
    pub secondary: Option<PathBuf>,
    /// Stop after this many seconds (default: never).
    pub serve_secs: Option<u64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--port" => options.port = value()?.parse()?,
            "--primary" => options.primary = Some(value()?.into()),
            "--secondary" => options.secondary = Some(value()?.into()),
            "--serve-secs" => options.serve_secs = Some(value()?.parse()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    serve(&options, |addr| {
        println!("listening on http://{addr}/metrics");
        let _ = std::io::stdout().flush();
    })
}

/// Opens the WAL, runs the workload, and answers `GET /metrics` until
/// `serve_secs` have passed; calls `listening` with the bound address first.
///
/// # Errors
/// The WAL, the recorder or the socket fail.
pub fn serve(
    options: &Options,
    listening: impl FnOnce(SocketAddr),
) -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let primary = options
        .primary
        .clone()
        .unwrap_or_else(|| scratch.path().join("primary"));
    let secondary = options
        .secondary
        .clone()
        .unwrap_or_else(|| scratch.path().join("secondary"));

    let handle = PrometheusBuilder::new().install_recorder()?;
    wal_manager::metrics::describe();
    let wal = Arc::new(Wal::open(&Config::failover(primary, secondary))?);

    let stop = Arc::new(AtomicBool::new(false));
    let workload = {
        let (wal, stop) = (Arc::clone(&wal), Arc::clone(&stop));
        std::thread::spawn(move || -> Result<(), wal_manager::Error> {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                wal.append(&n.to_le_bytes())?;
                n += 1;
                if n % 1000 == 0 {
                    wal.checkpoint(&n.to_le_bytes())?;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(())
        })
    };

    let listener = TcpListener::bind(("127.0.0.1", options.port))?;
    listener.set_nonblocking(true)?;
    listening(listener.local_addr()?);
    let start = Instant::now();
    while options
        .serve_secs
        .is_none_or(|s| start.elapsed() < Duration::from_secs(s))
    {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        stream.set_nonblocking(false)?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        // Skip the headers.
        let mut line = String::new();
        while reader.read_line(&mut line)? > 2 {
            line.clear();
        }
        let mut stream = stream;
        if request_line.starts_with("GET /metrics") {
            wal.publish_metrics();
            let body = handle.render();
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
        } else {
            write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
    }
    stop.store(true, Ordering::Relaxed);
    workload.join().map_err(|_| "workload panicked")??;
    let wal = Arc::try_unwrap(wal).map_err(|_| "the WAL is still shared")?;
    wal.close()?;
    Ok(())
}
