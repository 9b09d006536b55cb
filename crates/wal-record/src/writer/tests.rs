//! The writer's unit tests.

use super::*;
use crate::format::BLOCK_SIZE;
use crate::reader::LogReader;
use flush::PREPARE_EVERY;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A test file: shared bytes, a sync counter, injectable failures and a
/// gate that stalls writes.
#[derive(Clone, Default)]
struct TestFile {
    inner: Arc<TestFileInner>,
}

#[derive(Default)]
struct TestFileInner {
    bytes: Mutex<Vec<u8>>,
    syncs: AtomicU64,
    fail_sync_at: Mutex<Option<u64>>,
    fail_writes: AtomicBool,
    stalled: Mutex<bool>,
    stall_cv: Condvar,
    writes_in_progress: AtomicU64,
    sync_sleep: Mutex<Duration>,
    /// The thread of each `prepare_ahead` call, and the file's length
    /// then.
    prepares: Mutex<Vec<(Option<String>, usize)>>,
    fail_prepare: AtomicBool,
}

impl TestFile {
    fn bytes(&self) -> Vec<u8> {
        self.inner.bytes.lock().clone()
    }
    fn syncs(&self) -> u64 {
        self.inner.syncs.load(Ordering::SeqCst)
    }
    fn stall(&self, on: bool) {
        *self.inner.stalled.lock() = on;
        self.inner.stall_cv.notify_all();
    }
    fn wait_for_stalled_write(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.inner.writes_in_progress.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "no write reached the stall");
            thread::sleep(Duration::from_millis(1));
        }
    }
}

impl LogFile for TestFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.writes_in_progress.fetch_add(1, Ordering::SeqCst);
        {
            let mut stalled = self.inner.stalled.lock();
            while *stalled {
                self.inner.stall_cv.wait(&mut stalled);
            }
        }
        self.inner.writes_in_progress.fetch_sub(1, Ordering::SeqCst);
        if self.inner.fail_writes.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.inner.bytes.lock().extend_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let n = self.inner.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        let sleep = *self.inner.sync_sleep.lock();
        if !sleep.is_zero() {
            thread::sleep(sleep);
        }
        if self.inner.fail_sync_at.lock().is_some_and(|at| n >= at) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }

    fn prepare_ahead(&mut self) -> io::Result<()> {
        let len = self.inner.bytes.lock().len();
        let name = thread::current().name().map(str::to_owned);
        self.inner.prepares.lock().push((name, len));
        if self.inner.fail_prepare.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }
}

/// Joins the appending threads, then closes the writer they shared.
fn join_and_close<F: LogFile>(handles: Vec<thread::JoinHandle<()>>, w: Arc<LogWriter<F>>) {
    for h in handles {
        h.join().unwrap();
    }
    let Ok(w) = Arc::try_unwrap(w) else {
        panic!("writer still shared")
    };
    w.close().unwrap();
}

fn options(log_num: u32) -> LogWriterOptions {
    LogWriterOptions {
        log_num,
        ..LogWriterOptions::default()
    }
}

fn read_all(bytes: &[u8], log_num: u32) -> Vec<Vec<u8>> {
    let mut r = LogReader::new(bytes, log_num);
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().expect("a clean log") {
        out.push(rec.payload.to_vec());
    }
    out
}

#[test]
fn close_writes_the_trailer_and_reports_the_size() {
    let file = TestFile::default();
    let w = LogWriter::new(file.clone(), options(3)).unwrap();
    w.append(&[b"abc"]).unwrap();
    let size = w.close().unwrap();
    let bytes = file.bytes();
    assert_eq!(size, bytes.len() as u64);
    assert_eq!(size, (19 + 3 + 11) as u64);
    assert_eq!(&bytes[22..], &format::encode_eof_trailer(3));
    assert_eq!(read_all(&bytes, 3), vec![b"abc".to_vec()]);
    assert!(file.syncs() >= 1, "close syncs");
}

#[test]
fn an_empty_closed_log_is_just_the_trailer() {
    let file = TestFile::default();
    let w = LogWriter::new(file.clone(), options(9)).unwrap();
    assert_eq!(w.close().unwrap(), 11);
    assert_eq!(file.bytes(), format::encode_eof_trailer(9));
}

#[test]
fn appends_after_close_or_error_are_refused() {
    let file = TestFile::default();
    file.inner.fail_writes.store(true, Ordering::SeqCst);
    let w = LogWriter::new(file.clone(), options(1)).unwrap();
    let err = w.append_sync(&[b"x"]).unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::StorageFull));
    let again = w.append(&[b"y"]).unwrap_err();
    assert_eq!(again.io_kind(), Some(io::ErrorKind::StorageFull), "sticky");
    assert!(w.close().is_err());
}

#[test]
fn a_failed_sync_fails_every_later_waiter_with_the_first_error() {
    let file = TestFile::default();
    *file.inner.fail_sync_at.lock() = Some(2);
    let w = LogWriter::new(file.clone(), options(1)).unwrap();
    w.append_sync(&[b"first"]).expect("the first sync succeeds");
    let first = w.append_sync(&[b"second"]).unwrap_err();
    assert!(matches!(first, Error::Io { op: IoOp::Sync, .. }));
    // No retry: later waiters get the same error without a new sync.
    let syncs = file.syncs();
    for _ in 0..3 {
        let e = w.append_sync(&[b"more"]).unwrap_err();
        assert!(matches!(e, Error::Io { op: IoOp::Sync, .. }), "{e}");
    }
    assert!(matches!(w.sync(), Err(Error::Io { op: IoOp::Sync, .. })));
    assert_eq!(file.syncs(), syncs, "a poisoned writer never syncs again");
    assert!(w.error().is_some());
}

#[test]
fn concurrent_waiters_all_get_the_sync_error() {
    let file = TestFile::default();
    *file.inner.fail_sync_at.lock() = Some(1);
    *file.inner.sync_sleep.lock() = Duration::from_millis(2);
    let w = Arc::new(LogWriter::new(file, options(1)).unwrap());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let w = Arc::clone(&w);
            thread::spawn(move || w.append_sync(&[format!("r{i}").as_bytes()]))
        })
        .collect();
    for h in handles {
        let e = h.join().unwrap().unwrap_err();
        assert!(matches!(e, Error::Io { op: IoOp::Sync, .. }), "{e}");
    }
}

#[test]
fn group_commit_syncs_far_fewer_times_than_records() {
    let file = TestFile::default();
    // A slow sync, as on a real disk, gives appenders time to pile up.
    *file.inner.sync_sleep.lock() = Duration::from_millis(1);
    let w = Arc::new(LogWriter::new(file.clone(), options(1)).unwrap());
    let threads = 16;
    let per_thread = 50;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let w = Arc::clone(&w);
            thread::spawn(move || {
                for i in 0..per_thread {
                    w.append_sync(&[format!("{t}:{i}").as_bytes()]).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let records = (threads * per_thread) as u64;
    let m = w.metrics();
    assert_eq!(m.records, records);
    let syncs = file.syncs();
    assert!(
        syncs * 4 <= records,
        "{syncs} syncs for {records} synced records: not grouped"
    );
    assert_eq!(m.sync_group_records.sum, records);
    let Ok(w) = Arc::try_unwrap(w) else {
        panic!("writer still shared")
    };
    w.close().unwrap();
    let mut got = read_all(&file.bytes(), 1);
    got.sort();
    assert_eq!(got.len(), threads * per_thread);
}

#[test]
fn min_sync_interval_spaces_out_syncs() {
    let file = TestFile::default();
    let interval = Duration::from_millis(20);
    let w = Arc::new(
        LogWriter::new(
            file.clone(),
            LogWriterOptions {
                min_sync_interval: interval,
                ..options(1)
            },
        )
        .unwrap(),
    );
    let start = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let w = Arc::clone(&w);
            thread::spawn(move || {
                for _ in 0..10 {
                    w.append_sync(&[b"r"]).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed();
    // Syncs start at least `interval` apart, so at most this many fit.
    let bound = (elapsed.as_millis() / interval.as_millis()) as u64 + 1;
    assert!(
        file.syncs() <= bound,
        "{} syncs in {elapsed:?} with a {interval:?} minimum interval",
        file.syncs()
    );
}

#[test]
fn a_record_in_parts_is_written_as_the_same_bytes_as_in_one_piece() {
    // Chunks end inside a part, at a part's edge and past empty parts;
    // each chunk's CRC is fed piece by piece from the parts.
    let whole: Vec<u8> = (0..90_000u32).map(|i| (i * 7 + i / 255) as u8).collect();
    let cuts: [&[usize]; 4] = [&[8], &[3, 3, 40_000], &[0, 32_749, 0, 1], &[86_999]];
    let (split, single) = (TestFile::default(), TestFile::default());
    let (ws, w1) = (
        LogWriter::new(split.clone(), options(9)).unwrap(),
        LogWriter::new(single.clone(), options(9)).unwrap(),
    );
    for (i, &cut) in cuts.iter().enumerate() {
        let record = &whole[..whole.len() - i * 1000];
        let mut parts = Vec::new();
        let mut at = 0;
        for &n in cut {
            parts.push(&record[at..at + n]);
            at += n;
        }
        parts.push(&record[at..]);
        assert_eq!(ws.append(&parts).unwrap(), w1.append(&[record]).unwrap());
    }
    ws.close().unwrap();
    w1.close().unwrap();
    assert_eq!(split.bytes(), single.bytes());
    let records = read_all(&split.bytes(), 9);
    assert_eq!(records.len(), cuts.len());
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(i, r)| r[..] == whole[..whole.len() - i * 1000])
    );
}

#[test]
fn synced_offsets_in_headers_never_decrease_and_stay_below_the_chunk() {
    let file = TestFile::default();
    let w = LogWriter::new(file.clone(), options(4)).unwrap();
    for i in 0..300u32 {
        let payload = vec![i as u8; (i as usize * 37) % 3000];
        if i % 7 == 0 {
            w.append_sync(&[&payload]).unwrap();
        } else {
            w.append(&[&payload]).unwrap();
        }
    }
    w.close().unwrap();
    let bytes = file.bytes();
    let mut last = 0u64;
    let mut pos = 0usize;
    let mut seen_positive = false;
    while pos + format::WAL_SYNC_HEADER_SIZE <= bytes.len() {
        let in_block = pos % BLOCK_SIZE;
        if BLOCK_SIZE - in_block < format::WAL_SYNC_HEADER_SIZE {
            pos += BLOCK_SIZE - in_block;
            continue;
        }
        let (_, len, code) = format::decode_common(&bytes[pos..]).unwrap();
        if code == 5 {
            break; // trailer
        }
        let synced = format::decode_synced_offset(&bytes[pos..]).unwrap();
        assert!(synced >= last, "synced offset went back at {pos}");
        assert!(synced <= pos as u64, "a chunk cannot promise its own bytes");
        seen_positive |= synced > 0;
        last = synced;
        pos += format::WAL_SYNC_HEADER_SIZE + len as usize;
    }
    assert!(seen_positive, "syncs advanced the synced offset");
}

#[test]
fn the_sync_callback_reports_each_sync_and_the_first_error() {
    let file = TestFile::default();
    *file.inner.fail_sync_at.lock() = Some(3);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let w = LogWriter::new(
        file,
        LogWriterOptions {
            on_sync: Some(Arc::new(move |e: &SyncEvent| sink.lock().push(e.clone()))),
            ..options(1)
        },
    )
    .unwrap();
    let a = w.append_sync(&[b"a"]).unwrap();
    let b = w.append_sync(&[b"b"]).unwrap();
    assert!(w.append_sync(&[b"c"]).is_err());
    let events = events.lock();
    assert!(matches!(events[0], SyncEvent::Synced { offset } if offset == a.end));
    assert!(matches!(events[1], SyncEvent::Synced { offset } if offset == b.end));
    assert!(matches!(events[2], SyncEvent::Failed { .. }));
    assert_eq!(events.len(), 3);
}

#[test]
fn dropping_a_writer_stuck_on_a_stalled_file_does_not_block() {
    let file = TestFile::default();
    file.stall(true);
    let w = LogWriter::new(file.clone(), options(1)).unwrap();
    w.append(&[b"a"]).unwrap();
    w.request_sync();
    file.wait_for_stalled_write();
    drop(w); // must return although the flush thread is parked
    file.stall(false);
}

#[test]
fn appenders_block_when_the_buffer_is_full_and_resume_after() {
    let file = TestFile::default();
    file.stall(true);
    let w = Arc::new(
        LogWriter::new(
            file.clone(),
            LogWriterOptions {
                pending_bytes_max: FLUSH_THRESHOLD,
                ..options(1)
            },
        )
        .unwrap(),
    );
    let big = vec![7u8; FLUSH_THRESHOLD];
    w.append(&[&big]).unwrap(); // fills the buffer; the flusher takes it and stalls
    file.wait_for_stalled_write();
    w.append(&[&big]).unwrap(); // refills the buffer
    let done = Arc::new(AtomicBool::new(false));
    let h = {
        let (w, done) = (Arc::clone(&w), Arc::clone(&done));
        thread::spawn(move || {
            w.append(&[b"blocked"]).unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };
    thread::sleep(Duration::from_millis(50));
    assert!(!done.load(Ordering::SeqCst), "the append waited for room");
    file.stall(false);
    h.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    w.sync().unwrap();
}

#[test]
fn unbounded_buffer_never_blocks_behind_a_stalled_file() {
    let file = TestFile::default();
    file.stall(true);
    let w = LogWriter::new(
        file.clone(),
        LogWriterOptions {
            pending_bytes_max: usize::MAX,
            ..options(1)
        },
    )
    .unwrap();
    let big = vec![1u8; 1 << 20];
    for _ in 0..16 {
        w.append(&[&big]).unwrap();
    }
    assert!(w.metrics().unsynced_bytes >= 16 << 20);
    file.stall(false);
    w.sync().unwrap();
    w.close().unwrap();
    assert_eq!(read_all(&file.bytes(), 1).len(), 16);
}

#[test]
fn append_with_assigns_sequence_numbers_in_file_order() {
    let file = TestFile::default();
    let w = Arc::new(LogWriter::new(file.clone(), options(2)).unwrap());
    let next = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (w, next) = (Arc::clone(&w), Arc::clone(&next));
            thread::spawn(move || {
                for _ in 0..200 {
                    w.append_with(false, |b| {
                        let seq = next.fetch_add(1, Ordering::Relaxed);
                        b.push(&[&seq.to_le_bytes()]).unwrap();
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    join_and_close(handles, w);
    let seqs: Vec<u64> = read_all(&file.bytes(), 2)
        .iter()
        .map(|r| u64::from_le_bytes(r[..8].try_into().unwrap()))
        .collect();
    assert_eq!(seqs, (0..800).collect::<Vec<_>>());
}

/// A file that notes which thread ran each sync.
#[derive(Clone, Default)]
struct ThreadNotingFile {
    sync_threads: Arc<Mutex<Vec<Option<String>>>>,
}

impl LogFile for ThreadNotingFile {
    fn write_all(&mut self, _buf: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let name = thread::current().name().map(str::to_owned);
        self.sync_threads.lock().push(name);
        Ok(())
    }
}

#[test]
fn a_lone_waiter_syncs_on_its_own_thread() {
    let file = ThreadNotingFile::default();
    let w = LogWriter::new(file.clone(), options(1)).unwrap();
    let me = thread::current().name().map(str::to_owned);
    for _ in 0..3 {
        w.append_sync(&[b"r"]).unwrap();
    }
    let threads = file.sync_threads.lock().clone();
    assert_eq!(threads, vec![me; 3], "no hand-off to the flush thread");
    w.close().unwrap();
}

#[test]
fn upkeep_runs_on_the_flush_thread_every_few_hundred_kib_and_never_at_close() {
    let file = TestFile::default();
    let w = LogWriter::new(file.clone(), options(1)).unwrap();
    let record = vec![7u8; 4096];
    let n = 4 * PREPARE_EVERY as usize / record.len();
    for _ in 0..n {
        w.append_sync(&[&record]).unwrap();
    }
    // The upkeep runs after the syncs, when the flush thread gets to it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while file.inner.prepares.lock().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no upkeep: {:?}",
            file.inner.prepares.lock()
        );
        thread::sleep(Duration::from_millis(1));
    }
    let before_close = file.inner.prepares.lock().len();
    let size = w.close().unwrap();
    let prepares = file.inner.prepares.lock().clone();
    assert_eq!(prepares.len(), before_close, "none during close");
    // Once early (at the 8th sync), then every `PREPARE_EVERY` bytes.
    assert!(
        prepares.len() as u64 <= 1 + size / PREPARE_EVERY,
        "{prepares:?}"
    );
    assert!(prepares[0].1 < record.len() * 16, "{prepares:?}");
    for pair in prepares.windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= PREPARE_EVERY as usize,
            "{prepares:?}"
        );
    }
    for (thread, _) in prepares {
        assert_eq!(thread.as_deref(), Some("wal-flush-1"));
    }
}

#[test]
fn a_failed_upkeep_poisons_the_writer() {
    let file = TestFile::default();
    file.inner.fail_prepare.store(true, Ordering::SeqCst);
    let w = LogWriter::new(file.clone(), options(1)).unwrap();
    let record = vec![7u8; 64 << 10];
    let deadline = Instant::now() + Duration::from_secs(20);
    let e = loop {
        assert!(Instant::now() < deadline, "the failed upkeep went unseen");
        match w.append_sync(&[&record]) {
            Ok(_) => thread::sleep(Duration::from_millis(1)),
            Err(e) => break e,
        }
    };
    assert!(matches!(e, Error::Io { op: IoOp::Sync, .. }), "{e}");
    assert!(!file.inner.prepares.lock().is_empty());
    assert!(w.error().is_some());
    assert!(w.close().is_err());
}

#[test]
fn with_a_sync_callback_every_sync_runs_on_the_flush_thread() {
    let file = ThreadNotingFile::default();
    let w = LogWriter::new(
        file.clone(),
        LogWriterOptions {
            on_sync: Some(Arc::new(|_: &SyncEvent| {})),
            ..options(1)
        },
    )
    .unwrap();
    for _ in 0..3 {
        w.append_sync(&[b"r"]).unwrap();
    }
    w.close().unwrap();
    let threads = file.sync_threads.lock().clone();
    assert!(threads.len() >= 3);
    assert!(
        threads.iter().all(|t| t.as_deref() == Some("wal-flush-1")),
        "{threads:?}"
    );
}

#[test]
fn synced_and_unsynced_appenders_and_flushers_all_come_back_in_order() {
    let file = TestFile::default();
    // A slow sync, so that leaders, parked waiters and the flush thread
    // all take turns.
    *file.inner.sync_sleep.lock() = Duration::from_micros(300);
    let w = Arc::new(LogWriter::new(file.clone(), options(6)).unwrap());
    let threads = 8u32;
    let per_thread = 150u32;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let w = Arc::clone(&w);
            thread::spawn(move || {
                for i in 0..per_thread {
                    let rec = (u64::from(t) << 32 | u64::from(i)).to_le_bytes();
                    match (t + i) % 5 {
                        0 | 1 => drop(w.append_sync(&[&rec]).unwrap()),
                        2 => drop(w.append(&[&rec]).unwrap()),
                        3 => {
                            w.append(&[&rec]).unwrap();
                            w.flush().unwrap();
                        }
                        _ => {
                            w.append(&[&rec]).unwrap();
                            w.sync().unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    join_and_close(handles, w);
    let mut next = vec![0u32; threads as usize];
    let records = read_all(&file.bytes(), 6);
    assert_eq!(records.len(), (threads * per_thread) as usize);
    for r in records {
        let v = u64::from_le_bytes(r[..8].try_into().unwrap());
        let (t, i) = ((v >> 32) as usize, v as u32);
        assert_eq!(i, next[t], "thread {t}'s records in order, once each");
        next[t] += 1;
    }
}

#[test]
fn close_releases_waiters_parked_behind_a_slow_sync() {
    let file = TestFile::default();
    *file.inner.sync_sleep.lock() = Duration::from_millis(30);
    let w = Arc::new(LogWriter::new(file.clone(), options(1)).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let w = Arc::clone(&w);
            thread::spawn(move || w.append_sync(&[format!("r{i}").as_bytes()]))
        })
        .collect();
    // Let them append, lead and park.
    while w.metrics().records < 4 {
        thread::sleep(Duration::from_millis(1));
    }
    let size = w.close().unwrap();
    for h in handles {
        let a = h.join().unwrap().expect("released by a sync, not failed");
        assert!(a.end <= size);
    }
    assert_eq!(read_all(&file.bytes(), 1).len(), 4);
}

#[test]
fn records_over_the_limit_are_refused_without_writing() {
    let file = TestFile::default();
    let w = LogWriter::new(
        file.clone(),
        LogWriterOptions {
            record_size_max: 10,
            ..options(1)
        },
    )
    .unwrap();
    let e = w.append(&[b"0123456789a"]).unwrap_err();
    assert!(matches!(
        e,
        Error::RecordTooLarge {
            len: 11,
            max: 10,
            ..
        }
    ));
    w.append(&[b"0123456789"]).unwrap();
    w.close().unwrap();
    assert_eq!(read_all(&file.bytes(), 1), vec![b"0123456789".to_vec()]);
}
