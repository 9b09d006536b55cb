//! Rough throughput of the record layer on a real file (the full benchmark
//! with peers lives in the root package's `benches/`).
//!
//! ```sh
//! cargo run --release -p wal-record --example throughput -- [DIR]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use wal_record::{LogWriter, LogWriterOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, Into::into);
    let path = dir.join(format!("wal-record-throughput-{}.log", std::process::id()));

    // Unsynced, one writer, 128-byte records.
    let n = 5_000_000u64;
    let record = [7u8; 128];
    let w = LogWriter::new(std::fs::File::create(&path)?, LogWriterOptions::default())?;
    let start = Instant::now();
    for _ in 0..n {
        w.append(&[&record])?;
    }
    w.flush()?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "unsynced 1 writer 128 B: {:.2} M records/s",
        n as f64 / secs / 1e6
    );
    w.close()?;

    // Unsynced, one writer, 32 KiB records.
    let big = vec![7u8; 32 << 10];
    let n = 30_000u64;
    let w = LogWriter::new(std::fs::File::create(&path)?, LogWriterOptions::default())?;
    let start = Instant::now();
    for _ in 0..n {
        w.append(&[&big])?;
    }
    w.flush()?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "unsynced 1 writer 32 KiB: {:.2} GB/s",
        (n * big.len() as u64) as f64 / secs / 1e9
    );
    w.close()?;

    // Synced, 16 writers, 128-byte records, each waiting for durability.
    for writers in [1usize, 16] {
        let w = Arc::new(LogWriter::new(
            std::fs::File::create(&path)?,
            LogWriterOptions::default(),
        )?);
        let run = Duration::from_secs(3);
        let start = Instant::now();
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < run {
                        w.append_sync(&[&record]).unwrap();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let secs = start.elapsed().as_secs_f64();
        let m = w.metrics();
        println!(
            "synced {writers} writers 128 B: {:.0} commits/s, {} syncs, mean group {:.1}",
            total as f64 / secs,
            m.syncs,
            m.sync_group_records.mean()
        );
    }
    std::fs::remove_file(&path)?;
    Ok(())
}
