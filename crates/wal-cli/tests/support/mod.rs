//! Shared helpers of the `wal` integration tests: running the binary,
//! writing logs with the library, snapshotting directories, damaging files.
#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use wal_fs::{Fs, LatencyFs, Op, OpFilter, OsFs};
use wal_manager::{Config, DirId, Driver, Env, LogNum, Manager, ManualClock};

/// Held while a manager is open in this process, and while a `wal` child
/// is being spawned. A child forked by one test thread gets a copy of every
/// descriptor the process has open until it execs, the directory locks of
/// managers other test threads hold included (`flock` locks belong to the
/// open file description, so the copy keeps the lock after the manager
/// closed its own): a test that closed its manager and at once ran `wal`
/// on the same directory then saw it "locked by another WAL manager" (seen
/// in CI, about 1 run in 20 under load). `Command::spawn` returns once the
/// child has exec'd, which closes those copies (they are close-on-exec).
static MANAGERS_VS_FORKS: Mutex<()> = Mutex::new(());

pub(crate) fn no_forks() -> MutexGuard<'static, ()> {
    MANAGERS_VS_FORKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// What a run of `wal` did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) status: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The stdout lines that are JSON objects, parsed.
    pub(crate) fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }

    /// Asserts the run failed with `status` and exactly one `wal: error:`
    /// line on stderr containing each of `needles`.
    pub(crate) fn assert_error(&self, status: i32, needles: &[&str]) {
        assert_eq!(self.status, status, "{self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one stderr line: {self:#?}");
        assert!(lines[0].starts_with("wal: error: "), "{self:#?}");
        for needle in needles {
            assert!(lines[0].contains(needle), "{needle:?} missing: {self:#?}");
        }
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
    }

    /// Asserts the run succeeded.
    pub(crate) fn assert_ok(&self) -> &Run {
        assert_eq!(self.status, 0, "{self:#?}");
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        self
    }
}

/// Runs `wal` with `args`.
pub(crate) fn wal<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = output_of(Command::new(env!("CARGO_BIN_EXE_wal")).args(args));
    Run {
        status: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// Runs `wal bench` on `config` with 2 writers of 100-byte records for
/// `secs` seconds, then the `extra` arguments.
pub(crate) fn bench_two_writers(config: &Path, secs: &str, extra: &[&str]) -> Run {
    let config = config.to_str().expect("a UTF-8 path");
    let mut args = vec![
        "bench",
        "--config",
        config,
        "--writers",
        "2",
        "--record-size",
        "100",
        "--duration",
        secs,
    ];
    args.extend_from_slice(extra);
    wal(args)
}

/// Runs `command` as `Command::output` does (no stdin, stdout and stderr
/// captured), but forks only while no manager is open in this process (see
/// `MANAGERS_VS_FORKS`).
pub(crate) fn output_of(command: &mut Command) -> std::process::Output {
    let child = {
        let _no_managers = no_forks();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the command starts")
    };
    child.wait_with_output().expect("the command runs")
}

/// `--primary P` (and `--secondary S`) as arguments.
pub(crate) fn dir_args(primary: &Path, secondary: Option<&Path>) -> Vec<String> {
    let mut args = vec!["--primary".to_owned(), primary.display().to_string()];
    if let Some(s) = secondary {
        args.extend(["--secondary".to_owned(), s.display().to_string()]);
    }
    args
}

/// Runs `wal <command> --primary P [--secondary S] <extra>`.
pub(crate) fn wal_on(
    command: &str,
    primary: &Path,
    secondary: Option<&Path>,
    extra: &[&str],
) -> Run {
    let mut args = vec![command.to_owned()];
    args.extend(dir_args(primary, secondary));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    wal(args)
}

/// Every file under `dirs` with its bytes (paths relative to nothing: full).
pub(crate) fn snapshot(dirs: &[&Path]) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(path.clone(), b"<dir>".to_vec());
                walk(&path, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    for dir in dirs {
        out.insert(dir.to_path_buf(), b"<root>".to_vec());
        walk(dir, &mut out);
    }
    out
}

/// The payload of test record `i`: recognisable text padded to `len`.
pub(crate) fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut p = format!("record {i:06} ").into_bytes();
    p.resize(len.max(p.len()), b'.');
    p
}

/// Writes a standalone WAL in `dir`: `logs` logs of `per_log` records of
/// `len` bytes, each appended with `append_sync`, closed cleanly.
pub(crate) fn write_standalone(dir: &Path, logs: u64, per_log: u64, len: usize) {
    let _no_forks = no_forks();
    let manager = Manager::open(&Config::standalone(dir)).unwrap();
    let mut i = 0;
    for log in 1..=logs {
        let writer = manager.create(LogNum(log)).unwrap();
        for _ in 0..per_log {
            writer.append_sync(&payload(i, len)).unwrap();
            i += 1;
        }
        writer.close().unwrap();
    }
    manager.close().unwrap();
}

/// A standalone log whose records each were synced before the next was
/// appended and which spans several 32 KiB blocks: twelve 9000-byte
/// records. Every chunk after the first carries a synced offset past the
/// earlier records, so damage to an early record is provably corruption.
/// Returns the segment's path.
pub(crate) fn write_synced_multi_block_log(dir: &Path) -> PathBuf {
    write_standalone(dir, 1, 12, 9000);
    let path = dir.join("000001.log");
    assert!(std::fs::metadata(&path).unwrap().len() > 3 * 32 * 1024);
    path
}

/// A failover pair holding duplicated records, like a real switch under a
/// stalled primary leaves it:
///
/// * log 1: records 1-3 synced on the primary; 4-5 written to the primary
///   while its sync is stalled; a forced switch replays them into the
///   secondary, where 6 follows. The stall is then released, so the primary
///   segment holds 1-5 and the secondary 4-6 (two duplicates).
/// * log 2: one record in each of three segments (secondary, primary,
///   secondary), switched by force.
///
/// Records are 16-byte payloads (`payload(i, 16)`, i from 0).
pub(crate) fn write_failover_with_duplicates(primary: &Path, secondary: &Path) {
    let _no_forks = no_forks();
    let latency = LatencyFs::new(OsFs::new());
    let stalls = latency.control().clone();
    let fs: Arc<dyn Fs> = Arc::new(latency);
    let env = Env {
        primary_fs: Arc::clone(&fs),
        secondary_fs: fs,
        clock: Arc::new(ManualClock::new()),
        driver: Driver::Manual,
        archive: None,
    };
    let manager = Manager::open_with(&Config::failover(primary, secondary), env).unwrap();
    let Manager::Failover(failover) = &manager else {
        panic!("a failover configuration opens a failover manager")
    };

    let writer = Arc::new(manager.create(LogNum(1)).unwrap());
    for i in 0..3 {
        writer.append_sync(&payload(i, 16)).unwrap();
    }
    let stall = stalls.stall(OpFilter::ops([Op::Sync]).in_dir(primary));
    let pending = {
        let writer = Arc::clone(&writer);
        thread::spawn(move || {
            writer
                .append_batch_sync(&[&payload(3, 16), &payload(4, 16)])
                .map(|_| ())
        })
    };
    assert!(
        stalls.wait_until_blocked(1, Duration::from_secs(20)),
        "the primary sync stalls"
    );
    assert_eq!(failover.force_switch().unwrap(), DirId::Secondary);
    pending.join().unwrap().unwrap();
    writer.append_sync(&payload(5, 16)).unwrap();
    writer.close().unwrap();
    stall.release();

    let writer = manager.create(LogNum(2)).unwrap();
    writer.append_sync(&payload(6, 16)).unwrap();
    assert_eq!(failover.force_switch().unwrap(), DirId::Primary);
    writer.append_sync(&payload(7, 16)).unwrap();
    assert_eq!(failover.force_switch().unwrap(), DirId::Secondary);
    writer.append_sync(&payload(8, 16)).unwrap();
    writer.close().unwrap();
    drop(writer);
    manager.close().unwrap();
}

/// Flips the bits of the byte at `offset` of `path`.
pub(crate) fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = usize::try_from(offset).unwrap();
    bytes[i] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// Writes a configuration file `name` in `dir`.
pub(crate) fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
