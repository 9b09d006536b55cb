//! The `Wal` under real concurrency, against a model: threads append,
//! read, iterate, replay, checkpoint (also at an LSN), truncate on both
//! sides, apply retention and (failover) force switches, all at once, in
//! rounds separated by a close and a reopen. Every operation is stamped
//! with when it started and ended on one global clock; afterwards the
//! history is checked against what any serial order could have produced:
//!
//! * every record read, iterated, replayed or left at the end holds the
//!   bytes some append was acknowledged with under that very LSN (nothing
//!   invented, nothing moved);
//! * the final log is contiguous, and every acknowledged record is in it
//!   unless an operation that may remove it (a truncation on its side, or a
//!   checkpoint covering it while retention is on) ended after the append
//!   started;
//! * iterators return increasing LSNs and never end early: `None` only when
//!   the position was past the last record seen before the call, or a
//!   truncation moved the bounds meanwhile;
//! * only the errors a race can explain occur (an LSN that a concurrent
//!   truncation took out of range, a checkpoint below one that won the
//!   race, a switch at the segment limit);
//! * a close and a reopen keep exactly the records and the checkpoint.
//!
//! The operations each thread runs come from the seed; the interleaving is
//! the scheduler's, so a failing seed is rerun with
//! `CONCURRENCY_SEED=<n> cargo test -p wal-manager --test suite concurrency_model -- --nocapture`
//! (it fails again with high probability). `CONCURRENCY_SEEDS=<n>` runs
//! seeds 1..=n of each manager (default 6).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use wal_fs::MemFs;
use wal_manager::{Config, Direction, Error, Lsn, SyncPolicy, Wal};
use wal_testkit::SeededRng;
use wal_testkit::{mem_env, small_log_config};

const DEFAULT_SEEDS: u64 = 6;
const ROUNDS: u64 = 3;
const THREADS: u64 = 4;
const OPS_PER_THREAD: u64 = 60;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("CONCURRENCY_SEED") {
        return vec![seed];
    }
    (1..=env_u64("CONCURRENCY_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect()
}

#[test]
fn standalone_wal_under_concurrent_operations_matches_the_model() {
    for seed in seeds() {
        run_seed(seed, false);
    }
}

#[test]
fn failover_wal_under_concurrent_operations_matches_the_model() {
    for seed in seeds() {
        run_seed(seed, true);
    }
}

fn config(failover: bool, retention: bool) -> Config {
    let mut c = small_log_config(failover, SyncPolicy::Immediate);
    if retention {
        c.wal.retention_logs_max = 2;
    }
    c
}

/// A payload that names its append: the tag first, then filler derived
/// from it.
fn payload(tag: u64, len: usize) -> Vec<u8> {
    let mut p = tag.to_le_bytes().to_vec();
    p.extend((0..len).map(|i| (tag as u8).wrapping_add(i as u8)));
    p
}

fn tag_of(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

#[derive(Clone, Debug)]
enum Op {
    Append { tag: u64, len: usize },
    Batch { tags: Vec<u64>, len: usize },
    Read(Lsn),
    Iterate { from: Lsn, steps: usize },
    Replay { backward: bool },
    Checkpoint,
    CheckpointAt(Lsn),
    TruncateBefore(Lsn),
    TruncateAfter(Lsn),
    Retention,
    Switch,
}

#[derive(Clone, Debug)]
enum Outcome {
    Appended(Vec<Lsn>),
    Read(Lsn, Vec<u8>),
    Records(Vec<(Lsn, Vec<u8>)>),
    /// An iterator's `None`: its position and the last LSN seen before the
    /// call.
    EndOfIteration {
        position: Lsn,
        last_before: Option<Lsn>,
    },
    Checkpointed(Lsn),
    Done,
    /// An error a race explains (its kind).
    Refused(&'static str),
}

#[derive(Clone, Debug)]
struct Event {
    thread: u64,
    op: Op,
    start: u64,
    end: u64,
    outcomes: Vec<Outcome>,
}

struct Recorder {
    clock: AtomicU64,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }
}

/// The op a thread runs next, drawn from its own generator and aimed at
/// the records the WAL holds (`first..=last`) as the thread last saw them.
fn draw(rng: &mut SeededRng, wal: &Wal, failover: bool, next_tag: &mut u64) -> Op {
    let mut tag = || {
        *next_tag += 1;
        *next_tag
    };
    let (first, last) = match (wal.first_lsn(), wal.last_lsn()) {
        (Some(f), Some(l)) => (f.0, l.0),
        _ => (1, 1),
    };
    let span = last - first + 1;
    let pick = |rng: &mut SeededRng| Lsn(first + rng.below(span));
    let len = |rng: &mut SeededRng| {
        if rng.below(10) == 0 {
            3000 + rng.below(20_000) as usize
        } else {
            rng.below(300) as usize
        }
    };
    match rng.below(100) {
        0..=39 => Op::Append {
            tag: tag(),
            len: len(rng),
        },
        40..=47 => {
            let n = 1 + rng.below(5);
            Op::Batch {
                tags: (0..n).map(|_| tag()).collect(),
                len: len(rng),
            }
        }
        48..=61 => Op::Read(pick(rng)),
        62..=71 => Op::Iterate {
            from: pick(rng),
            steps: 1 + rng.below(40) as usize,
        },
        72..=75 => Op::Replay {
            backward: rng.coin(),
        },
        76..=79 => Op::Checkpoint,
        80..=83 => Op::CheckpointAt(pick(rng)),
        // Trimming a third at most, and a few records at the end: the log
        // stays long enough to read.
        84..=88 => Op::TruncateBefore(Lsn(first + rng.below(span / 3 + 1))),
        89..=90 => Op::TruncateAfter(Lsn(last.saturating_sub(rng.below(span.min(10))))),
        91..=94 => Op::Retention,
        _ if failover => Op::Switch,
        _ => Op::Read(pick(rng)),
    }
}

/// The kind of `e`, if it is an error a race with another operation
/// explains.
fn explained(op: &Op, e: &Error) -> Option<&'static str> {
    match (op, e) {
        // A replay's range is checked against the bounds when it starts.
        (
            Op::Read(_) | Op::TruncateBefore(_) | Op::TruncateAfter(_) | Op::Replay { .. },
            Error::LsnOutOfRange { .. },
        ) => Some("out of range"),
        (Op::CheckpointAt(_), Error::InvalidArgument { .. }) => {
            Some("below the latest or past the last")
        }
        (Op::Switch, Error::SwitchingLimit { .. }) => Some("segment limit"),
        _ => None,
    }
}

fn run_op(wal: &Wal, op: &Op) -> Result<Vec<Outcome>, Error> {
    Ok(match op {
        Op::Append { tag, len } => {
            let lsn = wal.append(&payload(*tag, *len))?;
            vec![Outcome::Appended(vec![lsn])]
        }
        Op::Batch { tags, len } => {
            let payloads: Vec<Vec<u8>> = tags.iter().map(|t| payload(*t, *len)).collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let lsns = wal.append_batch(&refs)?;
            vec![Outcome::Appended(
                (lsns.start.0..lsns.end.0).map(Lsn).collect(),
            )]
        }
        Op::Read(lsn) => vec![Outcome::Read(*lsn, wal.read(*lsn)?)],
        Op::Iterate { from, steps } => {
            let mut it = wal.iter_from(*from);
            let mut out = Vec::new();
            for _ in 0..*steps {
                let position = it.position();
                let last_before = wal.last_lsn();
                let Some(r) = it.next()? else {
                    out.push(Outcome::EndOfIteration {
                        position,
                        last_before,
                    });
                    break;
                };
                out.push(Outcome::Records(vec![(r.lsn, r.payload)]));
            }
            out
        }
        Op::Replay { backward } => {
            let dir = if *backward {
                Direction::Backward
            } else {
                Direction::Forward
            };
            let mut records = Vec::new();
            wal.replay(7, dir, |b| {
                records.extend(b.iter().map(|r| (r.lsn, r.payload.clone())));
                Ok::<(), std::convert::Infallible>(())
            })
            .map_err(|e| match e {
                wal_manager::ReplayError::Wal(e) => e,
                wal_manager::ReplayError::Callback(never) => match never {},
            })?;
            if *backward {
                records.reverse();
            }
            vec![Outcome::Records(records)]
        }
        Op::Checkpoint => vec![Outcome::Checkpointed(wal.checkpoint(b"now")?)],
        Op::CheckpointAt(lsn) => vec![Outcome::Checkpointed(wal.checkpoint_at(*lsn, b"at")?)],
        Op::TruncateBefore(lsn) => {
            wal.truncate_before(*lsn)?;
            vec![Outcome::Done]
        }
        Op::TruncateAfter(lsn) => {
            wal.truncate_after(*lsn)?;
            vec![Outcome::Done]
        }
        Op::Retention => {
            wal.apply_retention()?;
            vec![Outcome::Done]
        }
        Op::Switch => {
            if let Some(f) = wal.failover() {
                f.force_switch()?;
            }
            vec![Outcome::Done]
        }
    })
}

/// The whole log, oldest first.
fn contents(wal: &Wal) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    wal.replay(100, Direction::Forward, |b| {
        for r in b {
            out.insert(r.lsn.0, r.payload.clone());
        }
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    out
}

fn run_seed(seed: u64, failover: bool) {
    let replay = format!(
        "CONCURRENCY_SEED={seed} cargo test -p wal-manager --test suite concurrency_model::{} -- --nocapture",
        if failover { "failover" } else { "standalone" }
    );
    let mem = MemFs::new();
    let retention = seed % 2 == 0;
    let cfg = config(failover, retention);
    let mut wal = Wal::open_with(&cfg, mem_env(&mem)).unwrap();
    let rec = Arc::new(Recorder {
        clock: AtomicU64::new(0),
        events: Mutex::new(Vec::new()),
    });
    for round in 0..ROUNDS {
        let shared = Arc::new(wal);
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (wal, rec) = (Arc::clone(&shared), Arc::clone(&rec));
                let mut rng = SeededRng::new(seed ^ (round << 40) ^ (t << 32));
                // Tags are unique across threads and rounds.
                let mut tag = (round * THREADS + t + 1) << 32;
                std::thread::spawn(move || {
                    for _ in 0..OPS_PER_THREAD {
                        let op = draw(&mut rng, &wal, failover, &mut tag);
                        let start = rec.tick();
                        let outcomes = match run_op(&wal, &op) {
                            Ok(o) => o,
                            Err(e) if explained(&op, &e).is_some() => {
                                vec![Outcome::Refused(explained(&op, &e).unwrap_or_default())]
                            }
                            Err(e) => panic!("thread {t}: {op:?} failed: {e}"),
                        };
                        let end = rec.tick();
                        rec.events.lock().push(Event {
                            thread: t,
                            op,
                            start,
                            end,
                            outcomes,
                        });
                    }
                })
            })
            .collect();
        let mut failed = None;
        for (t, h) in threads.into_iter().enumerate() {
            if let Err(e) = h.join() {
                failed.get_or_insert((t, e));
            }
        }
        if let Some((t, e)) = failed {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("seed {seed} round {round} thread {t}: {msg}\nreplay: {replay}");
        }
        wal = Arc::into_inner(shared).expect("every thread is done");
        let events = rec.events.lock().clone();
        let before = contents(&wal);
        if round + 1 == ROUNDS {
            println!(
                "seed {seed} ({}): {}",
                if failover { "failover" } else { "standalone" },
                summary(&events, &before)
            );
        }
        let checkpoint = wal.last_checkpoint();
        check(&events, &before, retention)
            .unwrap_or_else(|why| panic!("seed {seed} round {round}: {why}\nreplay: {replay}"));
        wal.close().unwrap();
        wal = Wal::open_with(&cfg, mem_env(&mem)).unwrap();
        assert_eq!(
            contents(&wal),
            before,
            "seed {seed} round {round}: a reopen kept exactly the records\nreplay: {replay}"
        );
        assert_eq!(
            wal.last_checkpoint(),
            checkpoint,
            "seed {seed} round {round}: and the checkpoint\nreplay: {replay}"
        );
    }
    wal.close().unwrap();
}

/// Checks a history against the final contents (see the module docs).
fn check(events: &[Event], fin: &BTreeMap<u64, Vec<u8>>, retention: bool) -> Result<(), String> {
    let history = History::new(events, retention);
    history.check_final(fin)?;
    history.check_reads()
}

/// A round's events, with every acknowledged append by its tag.
struct History<'a> {
    events: &'a [Event],
    retention: bool,
    /// tag -> (lsn, start, end)
    appended: HashMap<u64, (Lsn, u64, u64)>,
}

impl<'a> History<'a> {
    fn new(events: &'a [Event], retention: bool) -> History<'a> {
        let mut appended = HashMap::new();
        for e in events {
            let tags: Vec<u64> = match &e.op {
                Op::Append { tag, .. } => vec![*tag],
                Op::Batch { tags, .. } => tags.clone(),
                _ => continue,
            };
            if let Some(Outcome::Appended(lsns)) = e.outcomes.first() {
                for (tag, lsn) in tags.iter().zip(lsns) {
                    appended.insert(*tag, (*lsn, e.start, e.end));
                }
            }
        }
        History {
            events,
            retention,
            appended,
        }
    }

    /// `bytes`, read as LSN `lsn`, are exactly what an acknowledged append
    /// of that LSN wrote.
    fn genuine(&self, lsn: Lsn, bytes: &[u8], what: &str) -> Result<(), String> {
        let tag = tag_of(bytes)
            .ok_or_else(|| format!("{what}: LSN {lsn} holds {} bytes, no tag", bytes.len()))?;
        match self.appended.get(&tag) {
            Some((l, _, _)) if *l == lsn => {}
            Some((l, _, _)) => {
                return Err(format!(
                    "{what}: LSN {lsn} holds the record appended as LSN {l}"
                ));
            }
            None => {
                return Err(format!(
                    "{what}: LSN {lsn} holds tag {tag:#x}, never acknowledged"
                ));
            }
        }
        if payload(tag, bytes.len() - 8) != bytes {
            return Err(format!(
                "{what}: LSN {lsn} bytes differ from what was appended"
            ));
        }
        Ok(())
    }

    /// Whether an operation that may remove `lsn` ended after `start`.
    fn removable(&self, lsn: Lsn, start: u64) -> bool {
        self.events.iter().any(|e| {
            e.end > start
                && match (&e.op, e.outcomes.first()) {
                    (_, Some(Outcome::Refused(_))) => false,
                    (Op::TruncateBefore(x), _) => lsn < *x,
                    (Op::TruncateAfter(l), _) => lsn > *l,
                    (Op::Checkpoint | Op::CheckpointAt(_), Some(Outcome::Checkpointed(c))) => {
                        self.retention && lsn <= *c
                    }
                    _ => false,
                }
        })
    }

    /// The final log: contiguous, genuine, complete.
    fn check_final(&self, fin: &BTreeMap<u64, Vec<u8>>) -> Result<(), String> {
        if let (Some(first), Some(last)) = (fin.keys().next(), fin.keys().next_back()) {
            if last - first + 1 != fin.len() as u64 {
                return Err(format!("the final log {first}..={last} has holes"));
            }
        }
        for (lsn, bytes) in fin {
            self.genuine(Lsn(*lsn), bytes, "the final log")?;
        }
        for (tag, (lsn, start, _)) in &self.appended {
            let present = fin.get(&lsn.0).is_some_and(|b| tag_of(b) == Some(*tag));
            if !present && !self.removable(*lsn, *start) {
                return Err(format!(
                    "acknowledged LSN {lsn} (tag {tag:#x}) is gone and nothing removed it"
                ));
            }
        }
        Ok(())
    }

    /// Every read, iteration and replay.
    fn check_reads(&self) -> Result<(), String> {
        for e in self.events {
            let what = format!("thread {} {:?}", e.thread, e.op);
            let mut previous: Option<Lsn> = None;
            for o in &e.outcomes {
                match o {
                    Outcome::Read(lsn, bytes) => self.genuine(*lsn, bytes, &what)?,
                    Outcome::Records(records) => {
                        for (lsn, bytes) in records {
                            if previous.is_some_and(|p| *lsn <= p) {
                                return Err(format!("{what}: LSN {lsn} after {previous:?}"));
                            }
                            previous = Some(*lsn);
                            self.genuine(*lsn, bytes, &what)?;
                        }
                    }
                    Outcome::EndOfIteration {
                        position,
                        last_before,
                    } => {
                        let past_the_end = last_before.is_none_or(|l| *position > l);
                        if !past_the_end && !self.bounds_moved_during(e) {
                            return Err(format!(
                                "{what}: the iterator ended at {position} although {last_before:?} was there"
                            ));
                        }
                    }
                    Outcome::Appended(_)
                    | Outcome::Checkpointed(_)
                    | Outcome::Done
                    | Outcome::Refused(_) => {}
                }
            }
        }
        Ok(())
    }

    /// Whether an operation that can move the WAL's bounds overlapped `e`.
    fn bounds_moved_during(&self, e: &Event) -> bool {
        self.events.iter().any(|t| {
            t.start < e.end
                && t.end > e.start
                && matches!(
                    t.op,
                    Op::TruncateBefore(_)
                        | Op::TruncateAfter(_)
                        | Op::Retention
                        | Op::Checkpoint
                        | Op::CheckpointAt(_)
                )
        })
    }
}

/// What a history did, for the log: so a green run shows it exercised
/// something.
fn summary(events: &[Event], fin: &BTreeMap<u64, Vec<u8>>) -> String {
    let mut done: BTreeMap<&str, u64> = BTreeMap::new();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        let name = match e.op {
            Op::Append { .. } => "append",
            Op::Batch { .. } => "batch",
            Op::Read(_) => "read",
            Op::Iterate { .. } => "iterate",
            Op::Replay { .. } => "replay",
            Op::Checkpoint => "checkpoint",
            Op::CheckpointAt(_) => "checkpoint_at",
            Op::TruncateBefore(_) => "truncate_before",
            Op::TruncateAfter(_) => "truncate_after",
            Op::Retention => "retention",
            Op::Switch => "switch",
        };
        match e.outcomes.first() {
            Some(Outcome::Refused(kind)) => {
                *refused.entry(format!("{name}: {kind}")).or_default() += 1;
            }
            _ => *done.entry(name).or_default() += 1,
        }
    }
    format!(
        "{} events, done {done:?}, refused {refused:?}; {} records at the end",
        events.len(),
        fin.len()
    )
}
