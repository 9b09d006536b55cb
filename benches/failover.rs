//! `failover` benchmark: the failover manager on a primary disk that is
//! noisy, slow or failing, on real files with real fsyncs, faults injected
//! by wrapping the primary's (and the secondary's) filesystem:
//!
//! - **noisy**: 1% of the primary's syncs take 5-30 ms longer (seeded).
//!   Hedging on against hedging off, in alternating rounds: switches (none
//!   wanted), hedges, bytes written to standby segments as a share of the
//!   log's bytes (the budget is 5%), and the append latency quantiles up to
//!   p99.99.
//! - **slow**: every sync of the primary takes 40 ms longer. The failover
//!   manager against the standalone manager on the same slow disk, in
//!   alternating rounds: throughput, p50, records per sync.
//! - **bounce**: `segments_per_log_max = 3`; the primary's syncs fail with
//!   `EIO` from a moment on (probes of it fail too), then the secondary's
//!   writes and syncs stall for a while. The writer must never fail (the
//!   no-bounce rule keeps the log on the secondary, appenders wait), and
//!   every acknowledged record must read back once, in order.
//!
//! `cargo bench --bench failover` runs it (about a minute; the last stdout
//! line is a JSON object with the figures); `FAILOVER_SEED` replays the
//! noise. `cargo test` runs it without `--bench`: a *smoke* version with
//! tiny durations, which checks that nothing was lost and no append failed,
//! never a speed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use wal_fs::{ErrorFs, Fault, LatencyControl, LatencyFs, Op, OpFilter, OsFs, Rule};
use wal_manager::{Config, Driver, Env, LogNum, Manager, SystemClock, Writer};
use wal_record::{Histogram, HistogramSnapshot};
use wal_testkit::durability::{parse_payload, payload, read_all, seed_from_env};

/// Synced appenders in every case.
const WRITERS: usize = 8;
/// Payload bytes: writer id and counter, then filler.
const RECORD: usize = 128;

#[derive(Clone, Copy, Debug)]
struct Plan {
    smoke: bool,
    /// Rounds of each contender in the noisy and slow cases.
    rounds: usize,
    /// How long each round appends.
    round: Duration,
    /// The bounce case: EIO on the primary from `eio_at`, the secondary
    /// stalled from `stall_at` for `stall`, appends until `end`.
    eio_at: Duration,
    stall_at: Duration,
    stall: Duration,
    end: Duration,
}

impl Plan {
    fn from_env() -> Plan {
        let ms = Duration::from_millis;
        if std::env::args().any(|a| a == "--bench") {
            Plan {
                smoke: false,
                rounds: 4,
                round: ms(5000),
                eio_at: ms(3000),
                stall_at: ms(5000),
                stall: ms(300),
                end: ms(7000),
            }
        } else {
            Plan {
                smoke: true,
                rounds: 1,
                round: ms(300),
                eio_at: ms(200),
                stall_at: ms(400),
                stall: ms(150),
                end: ms(700),
            }
        }
    }
}

/// What one run of appenders saw.
struct Run {
    acked: u64,
    failed: u64,
    first_error: Option<String>,
    latency: HistogramSnapshot,
    secs: f64,
    switches: u64,
    hedges: u64,
    standby_bytes: u64,
    log_bytes: u64,
    syncs: u64,
    /// Per writer, how many appends were acknowledged (their counters run
    /// from 0).
    per_writer: Vec<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.secs
    }

    fn records_per_sync(&self) -> f64 {
        self.acked as f64 / self.syncs.max(1) as f64
    }

    /// Bytes hedges wrote into standby segments, in % of the log's bytes.
    fn standby_pct(&self) -> f64 {
        100.0 * self.standby_bytes as f64 / self.log_bytes.max(1) as f64
    }

    /// Adds `other`'s counts and latencies (per-writer counts are not kept).
    fn absorb(&mut self, other: &Run) {
        self.acked += other.acked;
        self.failed += other.failed;
        self.secs += other.secs;
        self.switches += other.switches;
        self.hedges += other.hedges;
        self.standby_bytes += other.standby_bytes;
        self.log_bytes += other.log_bytes;
        self.syncs += other.syncs;
        self.latency.merge(&other.latency);
    }
}

/// Writer `writer`'s `n`th record: the test kit's self-checking payload,
/// tagged with both.
fn record(writer: usize, n: u64) -> Vec<u8> {
    payload(((writer as u64) << 32) | n, 0, RECORD)
}

/// Runs `WRITERS` synced appenders on log 1 of `manager` for `duration`,
/// calling `script` on this thread meanwhile (it gets the start instant);
/// then closes the log and reads the manager's figures.
fn append_for(manager: &Manager, duration: Duration, script: impl FnOnce(Instant)) -> Run {
    let writer: Writer = manager.create(LogNum(1)).expect("create log 1");
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let results: Vec<(u64, u64, Option<String>, HistogramSnapshot)> = thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|id| {
                let (writer, stop) = (&writer, &stop);
                s.spawn(move || {
                    let hist = Histogram::new();
                    let (mut acked, mut failed, mut first) = (0u64, 0u64, None);
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        match writer.append_sync(&record(id, acked)) {
                            Ok(_) => {
                                hist.record_duration(t.elapsed());
                                acked += 1;
                            }
                            Err(e) => {
                                failed += 1;
                                first.get_or_insert_with(|| e.to_string());
                                thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                    (acked, failed, first, hist.snapshot())
                })
            })
            .collect();
        script(start);
        let left = duration.saturating_sub(start.elapsed());
        thread::sleep(left);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("an appender panicked"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let stats = manager.stats();
    let syncs = stats.writer.as_ref().map_or(0, |m| m.syncs) + stats.totals.syncs;
    let (switches, hedges, standby_bytes) = stats
        .failover
        .map_or((0, 0, 0), |f| (f.switches, f.hedges, f.standby_bytes));
    let log_bytes = writer.close().expect("close log 1");
    let latency = Histogram::new().snapshot();
    let mut run = Run {
        acked: 0,
        failed: 0,
        first_error: None,
        latency,
        secs,
        switches,
        hedges,
        standby_bytes,
        log_bytes,
        syncs,
        per_writer: Vec::new(),
    };
    for (acked, failed, first, hist) in results {
        run.acked += acked;
        run.failed += failed;
        if run.first_error.is_none() {
            run.first_error = first;
        }
        run.latency.merge(&hist);
        run.per_writer.push(acked);
    }
    run
}

fn env(primary_fs: Arc<dyn wal_fs::Fs>, secondary_fs: Arc<dyn wal_fs::Fs>) -> Env {
    Env {
        primary_fs,
        secondary_fs,
        clock: Arc::new(SystemClock::new()),
        driver: Driver::Background,
        archive: None,
    }
}

/// A fresh directory for one run under the target directory.
fn run_dir(name: &str) -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-failover");
    std::fs::create_dir_all(&base).expect("create the bench directory");
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(base)
        .expect("create a run directory")
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

// ---------------------------------------------------------------------------
// Noisy and slow primaries.

/// One round of appends in fresh directories whose primary's syncs
/// `slow_down` delays (given the control and a filter selecting those
/// syncs), through the manager `config` makes of the primary and secondary
/// paths.
fn slow_primary_run(
    name: &str,
    plan: &Plan,
    slow_down: impl FnOnce(&LatencyControl, OpFilter),
    config: impl FnOnce(&Path, &Path) -> Config,
) -> Run {
    let dir = run_dir(name);
    let (primary, secondary) = (dir.path().join("primary"), dir.path().join("secondary"));
    let fs = LatencyFs::new(OsFs::new());
    slow_down(fs.control(), OpFilter::ops([Op::Sync]).in_dir(&primary));
    let config = config(&primary, &secondary);
    let manager = Manager::open_with(&config, env(Arc::new(fs), Arc::new(OsFs::new())))
        .expect("open the manager");
    let run = append_for(&manager, plan.round, |_| {});
    manager.close().expect("close the manager");
    run
}

fn noisy_run(plan: &Plan, hedge: bool, seed: u64) -> Run {
    let (min, max) = (Duration::from_millis(5), Duration::from_millis(30));
    slow_primary_run(
        "noisy",
        plan,
        |control, syncs| {
            control.add_noise(syncs, 10_000, min, max, seed);
        },
        |primary, secondary| {
            let mut config = Config::failover(primary, secondary);
            config.failover.hedge = hedge;
            config
        },
    )
}

/// The two contenders of `round` in the order they run: who goes first
/// alternates.
fn alternate<T: Copy>(round: usize, first: T, second: T) -> [T; 2] {
    if round % 2 == 0 {
        [first, second]
    } else {
        [second, first]
    }
}

fn quantiles(h: &HistogramSnapshot) -> String {
    format!(
        "p50 {:.2} p99 {:.2} p99.9 {:.2} p99.99 {:.2} max {:.2} ms",
        ms(h.quantile(0.5)),
        ms(h.quantile(0.99)),
        ms(h.quantile(0.999)),
        ms(h.quantile(0.9999)),
        ms(h.max)
    )
}

struct Pair {
    on: Run,
    off: Run,
}

fn merge(acc: &mut Option<Run>, run: Run) {
    match acc {
        None => *acc = Some(run),
        Some(a) => a.absorb(&run),
    }
}

fn noisy_case(plan: &Plan, seed: u64) -> Pair {
    let (mut on, mut off) = (None, None);
    for round in 0..plan.rounds {
        let round_seed = seed.wrapping_add(round as u64);
        for hedge in alternate(round, true, false) {
            let run = noisy_run(plan, hedge, round_seed);
            eprintln!(
                "  noisy round {round} hedge {}: {} appends, {} switches, {} hedges, standby {:.2}% of {} bytes, {}",
                if hedge { "on " } else { "off" },
                run.acked,
                run.switches,
                run.hedges,
                run.standby_pct(),
                run.log_bytes,
                quantiles(&run.latency)
            );
            assert_eq!(
                run.failed, 0,
                "noisy: an append failed: {:?}",
                run.first_error
            );
            merge(if hedge { &mut on } else { &mut off }, run);
        }
    }
    Pair {
        on: on.expect("a round"),
        off: off.expect("a round"),
    }
}

fn slow_run(plan: &Plan, failover: bool) -> Run {
    slow_primary_run(
        "slow",
        plan,
        |control, syncs| {
            control.add_delay(syncs, Duration::from_millis(40));
        },
        |primary, secondary| {
            if failover {
                Config::failover(primary, secondary)
            } else {
                Config::standalone(primary)
            }
        },
    )
}

fn slow_case(plan: &Plan) -> (Run, Run, Vec<f64>) {
    let (mut fo, mut sa) = (None, None);
    let mut ratios = Vec::new();
    for round in 0..plan.rounds {
        let mut rates = [0.0; 2];
        for failover in alternate(round, true, false) {
            let run = slow_run(plan, failover);
            eprintln!(
                "  slow round {round} {}: {:.0} appends/s, {:.1} records per sync, {} switches, {} hedges, {}",
                if failover { "failover  " } else { "standalone" },
                run.rate(),
                run.records_per_sync(),
                run.switches,
                run.hedges,
                quantiles(&run.latency)
            );
            assert_eq!(
                run.failed, 0,
                "slow: an append failed: {:?}",
                run.first_error
            );
            rates[usize::from(failover)] = run.rate();
            merge(if failover { &mut fo } else { &mut sa }, run);
        }
        ratios.push(rates[1] / rates[0].max(1e-9));
    }
    (fo.expect("a round"), sa.expect("a round"), ratios)
}

// ---------------------------------------------------------------------------
// Bounce.

struct Bounce {
    run: Run,
    read: u64,
    /// The directory of each segment of the log, by index.
    segments: Vec<String>,
}

fn bounce_case(plan: &Plan) -> Bounce {
    let dir = run_dir("bounce");
    let (primary, secondary) = (dir.path().join("primary"), dir.path().join("secondary"));
    let primary_fs = ErrorFs::new(OsFs::new());
    let injector = primary_fs.injector().clone();
    let secondary_fs = LatencyFs::new(OsFs::new());
    let control = secondary_fs.control().clone();
    let mut config = Config::failover(&primary, &secondary);
    config.failover.segments_per_log_max = 3;
    let manager = Manager::open_with(&config, env(Arc::new(primary_fs), Arc::new(secondary_fs)))
        .expect("open the manager");
    let run = append_for(&manager, plan.end, |start| {
        thread::sleep(plan.eio_at.saturating_sub(start.elapsed()));
        injector.add(Rule::new(
            OpFilter::ops([Op::Sync]).in_dir(&primary),
            Fault::Eio,
        ));
        thread::sleep(plan.stall_at.saturating_sub(start.elapsed()));
        let stall = control.stall(OpFilter::ops([Op::Write, Op::Sync]).in_dir(&secondary));
        thread::sleep(plan.stall);
        stall.release();
    });
    let segments: Vec<String> = manager
        .list()
        .into_iter()
        .find(|l| l.num == LogNum(1))
        .map(|l| l.segments.iter().map(|s| s.dir.to_string()).collect())
        .unwrap_or_default();
    manager.close().expect("close the manager");
    // Read back through a manager with no faults.
    let clean = Manager::open(&config).expect("reopen the directories");
    let recovered = read_all(&clean).unwrap_or_else(|e| panic!("bounce: {e}"));
    let mut next = [0u64; WRITERS];
    let mut read = 0;
    for r in &recovered.records {
        let (tag, _) = parse_payload(&r.payload)
            .unwrap_or_else(|| panic!("bounce: LSN {} holds bytes never written", r.lsn));
        let (w, n) = ((tag >> 32) as usize, tag & 0xffff_ffff);
        assert!(w < WRITERS, "bounce: record from writer {w}");
        // An append that failed may still be in the log (it was written,
        // its wait failed); its counter is then repeated by the next one.
        assert!(
            n == next[w] || n + 1 == next[w],
            "bounce: writer {w} record {n} read after {}",
            next[w]
        );
        next[w] = n + 1;
        read += 1;
    }
    for (w, &acked) in run.per_writer.iter().enumerate() {
        assert!(
            next[w] >= acked,
            "bounce: writer {w} had {acked} records acknowledged, {} read back",
            next[w]
        );
    }
    clean.close().expect("close the reading manager");
    Bounce {
        run,
        read,
        segments,
    }
}

// ---------------------------------------------------------------------------

/// Prints the noisy and slow cases' table; returns the median
/// failover / standalone throughput ratio of the slow case.
fn print_noisy_slow(noisy: &Pair, slow_fo: &Run, slow_sa: &Run, slow_ratios: &[f64]) -> f64 {
    println!("noisy primary (1% of syncs +5-30 ms), {WRITERS} synced writers, {RECORD} B:");
    for (name, r) in [("hedge on ", &noisy.on), ("hedge off", &noisy.off)] {
        println!(
            "  {name}: {} appends, {} switches, {} hedges, standby bytes {:.2}% of the log, {}",
            r.acked,
            r.switches,
            r.hedges,
            r.standby_pct(),
            quantiles(&r.latency)
        );
    }
    let mut sorted = slow_ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    let ratio_median = sorted[sorted.len() / 2];
    println!("slow primary (+40 ms per sync), {WRITERS} synced writers, {RECORD} B:");
    for (name, r) in [("failover  ", slow_fo), ("standalone", slow_sa)] {
        println!(
            "  {name}: {:.0} appends/s, {:.1} records per sync, {}",
            r.rate(),
            r.records_per_sync(),
            quantiles(&r.latency)
        );
    }
    println!(
        "  failover / standalone throughput per round: {} (median {ratio_median:.2})",
        slow_ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ratio_median
}

fn main() {
    let plan = Plan::from_env();
    let seed = seed_from_env("FAILOVER_SEED");
    eprintln!(
        "failover bench: {} mode, noise seed {seed} (FAILOVER_SEED={seed} replays it)",
        if plan.smoke { "smoke" } else { "full" }
    );
    let noisy = noisy_case(&plan, seed);
    let (slow_fo, slow_sa, slow_ratios) = slow_case(&plan);
    let bounce = bounce_case(&plan);

    let ratio_median = print_noisy_slow(&noisy, &slow_fo, &slow_sa, &slow_ratios);
    let b = &bounce.run;
    println!(
        "bounce (segments_per_log_max 3, primary EIO at {:?}, secondary stalled {:?} at {:?}): {} appends acknowledged, {} failed, {} read back, segments in {}, {} switches, {}",
        plan.eio_at,
        plan.stall,
        plan.stall_at,
        b.acked,
        b.failed,
        bounce.read,
        bounce.segments.join(", "),
        b.switches,
        quantiles(&b.latency)
    );
    assert_eq!(
        b.failed, 0,
        "bounce: appends failed although the secondary took records: {:?}",
        b.first_error
    );
    let fields = [
        ("noisy_hedge_on_switches", noisy.on.switches.to_string()),
        ("noisy_hedge_on_hedges", noisy.on.hedges.to_string()),
        (
            "noisy_standby_bytes_pct",
            format!("{:.3}", noisy.on.standby_pct()),
        ),
        (
            "noisy_hedge_on_p9999_ms",
            format!("{:.3}", ms(noisy.on.latency.quantile(0.9999))),
        ),
        (
            "noisy_hedge_off_p9999_ms",
            format!("{:.3}", ms(noisy.off.latency.quantile(0.9999))),
        ),
        (
            "noisy_hedge_on_max_ms",
            format!("{:.3}", ms(noisy.on.latency.max)),
        ),
        (
            "noisy_hedge_off_max_ms",
            format!("{:.3}", ms(noisy.off.latency.max)),
        ),
        ("noisy_hedge_off_switches", noisy.off.switches.to_string()),
        ("slow_failover_vs_standalone", format!("{ratio_median:.3}")),
        (
            "slow_failover_p50_ms",
            format!("{:.3}", ms(slow_fo.latency.quantile(0.5))),
        ),
        (
            "slow_standalone_p50_ms",
            format!("{:.3}", ms(slow_sa.latency.quantile(0.5))),
        ),
        ("bounce_acked", b.acked.to_string()),
        ("bounce_failed", b.failed.to_string()),
        ("bounce_read", bounce.read.to_string()),
        ("bounce_max_ms", format!("{:.3}", ms(b.latency.max))),
        ("bounce_switches", b.switches.to_string()),
    ];
    let mode = if plan.smoke { "smoke" } else { "full" };
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!("{{\"mode\":\"{mode}\",\"seed\":{seed},{}}}", body.join(","));
}
