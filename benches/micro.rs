//! Micro-benchmarks of the record layer's hot spots, to find where the time
//! of `benches/peers.rs` goes: the CRC, chunk encoding, the append critical
//! section, and the hand-off between an appender and the flush thread.
//!
//! ```sh
//! cargo bench --bench micro
//! ```
//!
//! `cargo test` runs this binary without `--bench`; divan then runs every
//! benchmark once, as a test, so they cannot rot.

use std::sync::Arc;
use std::thread;

use divan::{Bencher, black_box, counter::BytesCount};
use wal_record::format::{self, ChunkType, Position, WAL_SYNC_HEADER_SIZE};
use wal_record::{LogFile, LogWriter, LogWriterOptions, WireFormat};

fn main() {
    divan::main();
}

/// A file that drops what it is given and whose sync is free: what remains
/// of an append or a synced append is the writer's own cost.
struct NullFile;

impl LogFile for NullFile {
    fn write_all(&mut self, _buf: &[u8]) -> std::io::Result<()> {
        Ok(())
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The chunk CRC (hardware CRC-32C, masked) over a payload.
#[divan::bench(args = [128, 4096, 32 << 10])]
fn chunk_crc(bencher: Bencher, len: usize) {
    let data = vec![0x5au8; len];
    bencher
        .counter(BytesCount::new(len))
        .bench(|| format::chunk_crc(black_box(&data)));
}

/// Encoding one wal-sync chunk in place (`format::encode_chunk`: a
/// `ChunkHeader` fed the payload that already follows the header).
#[divan::bench(args = [128, 4096])]
fn encode_chunk(bencher: Bencher, len: usize) {
    let mut chunk = vec![0x5au8; WAL_SYNC_HEADER_SIZE + len];
    let ty = ChunkType {
        position: Position::Full,
        format: WireFormat::WalSync,
    };
    bencher.counter(BytesCount::new(len)).bench_local(|| {
        format::encode_chunk(black_box(&mut chunk), ty, 7, 1 << 20);
        chunk[0]
    });
}

/// What the writer does per chunk: the header's CRC from its fields and the
/// payload where it lies, then the header stored in front of a payload
/// copied there. (Fixed sample size: divan's own pick collapsed to one
/// iteration per sample here, which timed the timer.)
#[divan::bench(args = [128, 4096], sample_size = 1000)]
fn chunk_header(bencher: Bencher, len: usize) {
    let payload = vec![0x5au8; len];
    let mut chunk = vec![0u8; WAL_SYNC_HEADER_SIZE + len];
    let ty = ChunkType {
        position: Position::Full,
        format: WireFormat::WalSync,
    };
    bencher.counter(BytesCount::new(len)).bench_local(|| {
        let mut header = format::ChunkHeader::new(ty, 7, 1 << 20);
        header.payload(black_box(&payload));
        chunk[WAL_SYNC_HEADER_SIZE..].copy_from_slice(&payload);
        header.write(black_box(&mut chunk));
        chunk[0]
    });
}

/// One unsynced append from one thread: the lock, the encoding and the copy
/// into the shared buffer (the flush thread drains it to a null file).
#[divan::bench(args = [128, 32 << 10])]
fn append(bencher: Bencher, len: usize) {
    let writer = LogWriter::new(NullFile, LogWriterOptions::default()).expect("a writer");
    let record = vec![0x5au8; len];
    bencher
        .counter(BytesCount::new(len))
        .bench_local(|| writer.append(&[black_box(&record)]).expect("append"));
    writer.close().expect("close");
}

/// One synced append from one thread with a free sync: the round trip
/// through the flush thread (wake it, it writes and "syncs", it wakes the
/// appender). This is the overhead group commit adds to every fsync.
#[divan::bench]
fn append_sync_handoff(bencher: Bencher) {
    let writer = LogWriter::new(NullFile, LogWriterOptions::default()).expect("a writer");
    let record = [0x5au8; 128];
    bencher.bench_local(|| writer.append_sync(&[&record]).expect("append_sync"));
    writer.close().expect("close");
}

/// Synced appends from 16 threads with a free sync: the cost of waking a
/// group of waiters (per append, as seen by one of them).
#[divan::bench(sample_count = 20, sample_size = 1)]
fn append_sync_16_threads(bencher: Bencher) {
    let per_thread: usize = if cfg!(debug_assertions) { 20 } else { 2_000 };
    bencher
        .counter(divan::counter::ItemsCount::new(16 * per_thread))
        .bench_local(|| {
            let writer =
                Arc::new(LogWriter::new(NullFile, LogWriterOptions::default()).expect("a writer"));
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let w = Arc::clone(&writer);
                    thread::spawn(move || {
                        for _ in 0..per_thread {
                            w.append_sync(&[&[0x5au8; 128]]).expect("append_sync");
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("an appender panicked");
            }
        });
}
