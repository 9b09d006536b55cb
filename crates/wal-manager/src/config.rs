//! The manager's configuration, loaded from TOML and validated.
//!
//! Durations and sizes are written the way people say them: `"100ms"`,
//! `"1.5s"`, `"64MiB"`, `"0.5GiB"` (a decimal fraction is fine as long as
//! it comes to a whole number of nanoseconds or bytes). Every key has a
//! default except `primary.dir`; the presence of a `[secondary]` table
//! selects the failover manager. Unknown keys, values of the wrong type,
//! negative numbers, zero intervals, a healthy interval longer than the
//! probe history, a secondary that is the primary (also through `..` or a
//! symlink, dangling or not), and other nonsense are refused with an error
//! that names the key, the value and what is expected.
//! `config/standalone.toml` and `config/failover.toml` document every key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use wal_record::WireFormat;

use crate::error::{Error, Result};

/// How many probe results the prober keeps (Pebble: 128). The healthy
/// interval must fit in this many probe intervals.
pub(crate) const PROBE_HISTORY_LEN: u32 = 128;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The primary directory.
    pub primary: DirConfig,
    /// The secondary directory; its presence selects the failover manager.
    #[serde(default)]
    pub secondary: Option<DirConfig>,
    /// Failover tuning (ignored by the standalone manager).
    #[serde(default)]
    pub failover: FailoverConfig,
    /// Log writer tuning.
    #[serde(default)]
    pub writer: WriterConfig,
    /// The `Wal` API's settings.
    #[serde(default)]
    pub wal: WalConfig,
    /// How records are sequenced.
    #[serde(default)]
    pub log: LogConfig,
    /// Where closed logs are archived, if anywhere (the `[archive]` table).
    /// While it is set, no log is deleted before it is archived (see
    /// [`crate::archive`]).
    #[serde(default)]
    pub archive: Option<ArchiveConfig>,
}

/// The archive of closed logs in object storage (the `[archive]` table).
/// The `wal-archive` crate uploads and restores; the manager only keeps
/// every log until it is archived.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Where: `s3://BUCKET[/PREFIX]` (S3 or an S3-compatible server; the
    /// credentials come from the `AWS_*` environment variables) or
    /// `file:///PATH` (a directory on this machine).
    pub url: String,
    /// The S3 server to talk to, `http://HOST:PORT` or `https://...`, for
    /// S3-compatible servers; without it, AWS's endpoint for the region.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The S3 region (default: `AWS_REGION` or `AWS_DEFAULT_REGION`, else
    /// `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// The backlog bound: once closed logs not yet archived (live or
    /// obsolete) hold more bytes than this, the manager says so loudly (an
    /// ERROR line and the `wal_archive_backlog_full` gauge). It keeps them
    /// all the same: nothing is deleted before it is archived.
    #[serde(default = "ArchiveConfig::default_backlog_bytes_max")]
    pub backlog_bytes_max: HumanSize,
}

impl ArchiveConfig {
    /// The archive at `url`, with every default.
    pub fn new(url: impl Into<String>) -> ArchiveConfig {
        ArchiveConfig {
            url: url.into(),
            endpoint: None,
            region: None,
            backlog_bytes_max: ArchiveConfig::default_backlog_bytes_max(),
        }
    }

    /// 4 GiB: a day of an engine writing ~50 KB/s, or an hour at ~1 MB/s.
    fn default_backlog_bytes_max() -> HumanSize {
        HumanSize(4 << 30)
    }

    /// Checks the table's rules; the message names the key and the value.
    ///
    /// # Errors
    /// The first rule broken, as a message.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let url = &self.url;
        if let Some(rest) = url.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or_default();
            if bucket.is_empty() {
                return Err(format!(
                    "archive.url = \"{url}\": no bucket: expected s3://BUCKET[/PREFIX]"
                ));
            }
            if rest.contains("//") || rest.contains('?') || rest.contains('#') {
                return Err(format!(
                    "archive.url = \"{url}\": expected s3://BUCKET[/PREFIX] (no empty path segment, query or fragment)"
                ));
            }
        } else if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "archive.url = \"{url}\": a file URL needs an absolute path: file:///PATH"
                ));
            }
            if self.endpoint.is_some() || self.region.is_some() {
                return Err(format!(
                    "archive.url = \"{url}\" is a directory: archive.endpoint and archive.region are for s3:// archives"
                ));
            }
        } else {
            return Err(format!(
                "archive.url = \"{url}\": expected s3://BUCKET[/PREFIX] or file:///PATH"
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            let host = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                return Err(format!(
                    "archive.endpoint = \"{endpoint}\": expected http://HOST[:PORT] or https://HOST[:PORT]"
                ));
            }
        }
        if self.region.as_ref().is_some_and(|r| r.trim().is_empty()) {
            return Err("archive.region is empty".into());
        }
        if self.backlog_bytes_max.0 == 0 {
            return Err(format!(
                "archive.backlog_bytes_max = \"{}\": must be greater than zero",
                self.backlog_bytes_max
            ));
        }
        Ok(())
    }
}

/// How records are stored and sequenced (the `[log]` table).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `"lsn"` (default): failwal's LSN envelope; `"pebble-batch"`: every
    /// record is a Pebble batch, stored as it is (see
    /// [`crate::Sequencing`]).
    pub sequencing: crate::envelope::Sequencing,
}

/// The `Wal` API's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// The `Wal` starts a new log when the current one reaches this size.
    pub log_size_max: HumanSize,
    /// When `Wal::append` makes records durable (see [`SyncPolicy`]).
    pub sync: SyncPolicy,
    /// `periodic`: how often the background sync runs. `grouped`: the
    /// window: at most one sync per window.
    pub sync_interval: HumanDuration,
    /// `periodic`: also sync once this many records were appended since the
    /// last sync (0: only by time).
    pub sync_every_records: u64,
    /// Keep at most this many logs (0: no limit); see the retention rule.
    pub retention_logs_max: u32,
    /// Keep at most this many bytes of logs (0: no limit).
    pub retention_bytes_max: HumanSize,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            log_size_max: HumanSize(64 << 20),
            sync: SyncPolicy::Immediate,
            sync_interval: HumanDuration::millis(100),
            sync_every_records: 0,
            retention_logs_max: 0,
            retention_bytes_max: HumanSize(0),
        }
    }
}

/// When `Wal::append` makes records durable.
///
/// | policy | `append` returns | a record is durable | a crash may lose |
/// |---|---|---|---|
/// | `none` | at once | never (nothing is ever fsynced) | anything the OS had not written back |
/// | `immediate` | once the record is durable | when `append` returns | nothing acknowledged |
/// | `periodic` | at once | within `sync_interval` (or `sync_every_records`) | the records of the last interval |
/// | `grouped` | once the record is durable | when `append` returns | nothing acknowledged |
///
/// `immediate` and `grouped` both wait; concurrent appends share syncs
/// (group commit) either way, and `grouped` also spaces syncs at least
/// `sync_interval` apart, so that more appends join each one under load.
/// `append_sync` always waits, whatever the policy (`none`: its sync does
/// nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Never fsync (tests, scratch data).
    None,
    /// Each append waits for its own durability.
    Immediate,
    /// A background sync every interval (or every N records); appends never
    /// wait.
    Periodic,
    /// Appends wait; syncs at most once per window.
    Grouped,
}

/// One directory.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirConfig {
    /// The directory's path; created if missing.
    pub dir: PathBuf,
    /// Secondary only: accept a secondary whose identity file is missing
    /// although the primary remembers one (a replaced disk). Off by default,
    /// because a wrong or empty disk mounted there would hide logs that hold
    /// acknowledged records.
    #[serde(default)]
    pub accept_new_identity: bool,
}

/// Failover tuning. Defaults are Pebble's.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverConfig {
    /// Whether the monitor may switch directories at all.
    pub enabled: bool,
    /// An operation on the current directory running longer than this is
    /// unhealthy and triggers a switch.
    pub unhealthy_op_latency_threshold: HumanDuration,
    /// How often the monitor samples the current writer.
    pub unhealthy_sampling_interval: HumanDuration,
    /// Failback needs the primary's probe mean and max below this.
    pub healthy_probe_latency_threshold: HumanDuration,
    /// The window of probes that must all be healthy before failback.
    pub healthy_interval: HumanDuration,
    /// How often the prober probes the primary while on the secondary.
    pub probe_interval: HumanDuration,
    /// Bytes each probe writes and syncs.
    pub probe_size: HumanSize,
    /// After a failback, `Manager::elevate_write_stall_threshold` stays true
    /// this long.
    pub elevated_write_stall_threshold_lag: HumanDuration,
    /// Most segments one log may have, standbys included; a latency,
    /// failback or forced switch beyond is refused ("exceeded switching
    /// limit"). A switch away from a failed directory may go beyond it: a
    /// writer must not fail while the other directory takes its records.
    pub segments_per_log_max: u32,
    /// Most bytes of not-yet-durable records the failover writer keeps for
    /// replay; appenders wait beyond it. Half of it triggers a sync.
    pub queue_bytes_max: HumanSize,
    /// Keep a standby segment open in the other directory (in the
    /// secondary while appends go to the primary; in the primary while
    /// they go to the secondary, once nothing of the log is stuck there),
    /// so that a switch or a hedge never waits for a file to be created.
    /// An unused standby is removed when its log closes.
    pub standby: bool,
    /// Hedge: when a wait for durability passes the hedge deadline, write
    /// and sync the records not yet durable into the standby too, and
    /// acknowledge them from whichever copy is durable first. Needs
    /// `standby`.
    pub hedge: bool,
    /// The least hedge deadline. The deadline is four times the current
    /// directory's recent p99 operation latency, at least this, at most
    /// half of `unhealthy_op_latency_threshold`.
    pub hedge_latency_min: HumanDuration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            enabled: true,
            unhealthy_op_latency_threshold: HumanDuration::millis(100),
            unhealthy_sampling_interval: HumanDuration::millis(100),
            healthy_probe_latency_threshold: HumanDuration::millis(25),
            healthy_interval: HumanDuration::millis(15_000),
            probe_interval: HumanDuration::millis(1000),
            probe_size: HumanSize(100 << 10),
            elevated_write_stall_threshold_lag: HumanDuration::millis(60_000),
            segments_per_log_max: 10,
            queue_bytes_max: HumanSize(256 << 20),
            standby: true,
            hedge: true,
            hedge_latency_min: HumanDuration::millis(5),
        }
    }
}

/// Log writer tuning.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WriterConfig {
    /// Chunk format: `"wal-sync"` (default) or `"recyclable"`.
    pub format: FormatName,
    /// No sync starts sooner than this after the previous one.
    pub min_sync_interval: HumanDuration,
    /// Records longer than this are refused.
    pub record_size_max: HumanSize,
    /// Encoded bytes waiting for the flush thread before appenders block
    /// (standalone manager).
    pub pending_bytes_max: HumanSize,
    /// Obsolete log files kept for reuse by new logs (0 disables recycling).
    pub recycle_logs_max: u32,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            format: FormatName(WireFormat::WalSync),
            min_sync_interval: HumanDuration(Duration::ZERO),
            record_size_max: HumanSize(64 << 20),
            pending_bytes_max: HumanSize(1 << 20),
            recycle_logs_max: 4,
        }
    }
}

/// A chunk format name in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatName(pub WireFormat);

impl<'de> Deserialize<'de> for FormatName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "wal-sync" => Ok(FormatName(WireFormat::WalSync)),
            "recyclable" => Ok(FormatName(WireFormat::Recyclable)),
            "legacy" => Err(serde::de::Error::custom(
                "format \"legacy\" has no log number, so recycled files could not be told apart: use \"wal-sync\" or \"recyclable\"",
            )),
            other => Err(serde::de::Error::custom(format!(
                "unknown format {other:?}: expected \"wal-sync\" or \"recyclable\""
            ))),
        }
    }
}

/// A duration written with a unit: `"250us"`, `"100ms"`, `"15s"`, `"2m"`,
/// `"1h"`. Plain numbers are refused (which unit would they be?).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `ms` milliseconds.
    pub const fn millis(ms: u64) -> HumanDuration {
        HumanDuration(Duration::from_millis(ms))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let ns = d.as_nanos();
        for (unit, per) in [
            ("h", 3_600_000_000_000u128),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
        ] {
            if ns % per == 0 {
                return write!(f, "{}{unit}", ns / per);
            }
        }
        write!(f, "{ns}ns")
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let (number, unit) = split_number(s)?;
        let nanos_per: u64 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "{s:?} has no unit: write e.g. \"{s}ms\" or \"{s}s\""
                ));
            }
            other => {
                return Err(format!(
                    "{s:?} has unknown unit {other:?}: use ns, us, ms, s, m or h"
                ));
            }
        };
        let nanos = number
            .scale(nanos_per)
            .map_err(|why| format!("{s:?} {why} nanoseconds"))?;
        let nanos = u64::try_from(nanos).map_err(|_| format!("{s:?} is too long"))?;
        Ok(HumanDuration(Duration::from_nanos(nanos)))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(HumanVisitor::<HumanDuration>::new())
    }
}

/// A size in bytes written with a unit: `"512B"`, `"4KiB"`, `"64MiB"`,
/// `"1GiB"` (or decimal `KB`, `MB`, `GB`). A plain integer means bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, per) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= per && n % per == 0 {
                return write!(f, "{}{unit}", n / per);
            }
        }
        write!(f, "{n}B")
    }
}

impl FromStr for HumanSize {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let (number, unit) = split_number(s)?;
        let per: u64 = match unit {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!(
                    "{s:?} has unknown unit {other:?}: use B, KiB, MiB, GiB, KB, MB or GB"
                ));
            }
        };
        let bytes = number
            .scale(per)
            .map_err(|why| format!("{s:?} {why} bytes"))?;
        u64::try_from(bytes)
            .map(HumanSize)
            .map_err(|_| format!("{s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(HumanVisitor::<HumanSize>::new())
    }
}

/// What the TOML reader needs to know of a human-written quantity.
trait Human: FromStr<Err = String> {
    /// What a value looks like, for "expected ..." messages.
    const EXPECTED: &'static str;
    /// A bare integer, if it means something.
    fn from_integer(n: u64) -> std::result::Result<Self, String>;
}

impl Human for HumanDuration {
    const EXPECTED: &'static str = "a duration with a unit, such as \"100ms\" or \"1.5s\"";

    fn from_integer(n: u64) -> std::result::Result<Self, String> {
        Err(format!(
            "{n} has no unit: write it as a string with one, such as \"{n}ms\" or \"{n}s\""
        ))
    }
}

impl Human for HumanSize {
    const EXPECTED: &'static str =
        "a size: a whole number of bytes, or a string with a unit, such as \"64MiB\"";

    fn from_integer(n: u64) -> std::result::Result<Self, String> {
        Ok(HumanSize(n))
    }
}

/// Reads a [`Human`] quantity from a string, or an integer where that
/// means something, with a message for every other kind of value.
struct HumanVisitor<T>(std::marker::PhantomData<T>);

impl<T> HumanVisitor<T> {
    fn new() -> Self {
        HumanVisitor(std::marker::PhantomData)
    }
}

impl<T: Human> serde::de::Visitor<'_> for HumanVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<T, E> {
        T::from_integer(v).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<T, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "{v} is negative: expected {}",
                T::EXPECTED
            ))),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<T, E> {
        Err(E::custom(format!(
            "{v} is a bare number: expected {}",
            T::EXPECTED
        )))
    }
}

/// A decimal number as written: its integer part and its fraction's digits.
#[derive(Clone, Copy, Debug)]
struct Decimal {
    whole: u64,
    /// The fraction's digits as an integer, and how many there were.
    fraction: (u64, u32),
}

impl Decimal {
    /// The number times `per`, which must come out whole.
    fn scale(self, per: u64) -> std::result::Result<u128, &'static str> {
        let (digits, len) = self.fraction;
        let denominator = 10u128.pow(len);
        let fraction = u128::from(digits) * u128::from(per);
        if fraction % denominator != 0 {
            return Err("is not a whole number of");
        }
        Ok(u128::from(self.whole) * u128::from(per) + fraction / denominator)
    }
}

/// Splits `"1.5ms"` into `(1.5, "ms")`.
fn split_number(s: &str) -> std::result::Result<(Decimal, &str), String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("{s:?} does not start with a number"));
    }
    let (whole, rest) = t.split_at(digits);
    let too_large = || format!("{s:?}: the number is too large");
    let whole = whole.parse().map_err(|_| too_large())?;
    let (fraction, unit) = match rest.strip_prefix('.') {
        Some(rest) => {
            let len = rest.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 || len > 9 {
                return Err(format!(
                    "{s:?}: write a fraction with 1 to 9 digits after the point"
                ));
            }
            let (fraction, unit) = rest.split_at(len);
            (
                (fraction.parse().map_err(|_| too_large())?, len as u32),
                unit,
            )
        }
        None => ((0, 0), rest),
    };
    Ok((Decimal { whole, fraction }, unit.trim()))
}

impl Config {
    /// A standalone configuration for `dir` with every default.
    pub fn standalone(dir: impl Into<PathBuf>) -> Config {
        Config {
            primary: DirConfig {
                dir: dir.into(),
                accept_new_identity: false,
            },
            secondary: None,
            failover: FailoverConfig::default(),
            writer: WriterConfig::default(),
            wal: WalConfig::default(),
            log: LogConfig::default(),
            archive: None,
        }
    }

    /// A failover configuration with every default.
    pub fn failover(primary: impl Into<PathBuf>, secondary: impl Into<PathBuf>) -> Config {
        Config {
            secondary: Some(DirConfig {
                dir: secondary.into(),
                accept_new_identity: false,
            }),
            ..Config::standalone(primary)
        }
    }

    /// Parses and validates a TOML document. `origin` names it in errors (a
    /// file path, or something like `"<inline>"`). Relative directories are
    /// taken as given (relative to the process's working directory).
    ///
    /// # Errors
    /// [`Error::Config`] naming the origin, and the key and value at fault.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        let config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| Error::Config {
                origin: origin.to_owned(),
                message: toml_message(text, &e),
            })?;
        config.validate().map_err(|message| Error::Config {
            origin: origin.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file. Relative directories in it
    /// are resolved against the file's own directory, so a configuration can
    /// be used from anywhere.
    ///
    /// # Errors
    /// [`Error::ConfigRead`] if the file cannot be read; [`Error::Config`] if
    /// it is not a valid configuration.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_toml(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.primary.dir = base.join(&config.primary.dir);
        if let Some(s) = &mut config.secondary {
            s.dir = base.join(&s.dir);
        }
        config.validate().map_err(|message| Error::Config {
            origin: path.display().to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Checks every rule; the message names the key and the value.
    ///
    /// # Errors
    /// The first rule broken, as a message.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.primary.dir.as_os_str().is_empty() {
            return Err("primary.dir is empty".into());
        }
        if self.primary.accept_new_identity {
            return Err(
                "primary.accept_new_identity = true: only the secondary has an identity to accept"
                    .into(),
            );
        }
        if let Some(s) = &self.secondary {
            if s.dir.as_os_str().is_empty() {
                return Err("secondary.dir is empty".into());
            }
            if same_dir(&self.primary.dir, &s.dir) {
                return Err(format!(
                    "secondary.dir = \"{}\" is the same directory as primary.dir = \"{}\": the secondary must be another directory, ideally on another disk",
                    s.dir.display(),
                    self.primary.dir.display()
                ));
            }
        }
        let f = &self.failover;
        for (key, value) in [
            (
                "failover.unhealthy_op_latency_threshold",
                f.unhealthy_op_latency_threshold,
            ),
            (
                "failover.unhealthy_sampling_interval",
                f.unhealthy_sampling_interval,
            ),
            (
                "failover.healthy_probe_latency_threshold",
                f.healthy_probe_latency_threshold,
            ),
            ("failover.healthy_interval", f.healthy_interval),
            ("failover.probe_interval", f.probe_interval),
        ] {
            if value.0.is_zero() {
                return Err(format!("{key} = \"{value}\": must be greater than zero"));
            }
        }
        if f.healthy_interval < f.probe_interval {
            return Err(format!(
                "failover.healthy_interval = \"{}\" is shorter than failover.probe_interval = \"{}\": failback needs at least one probe",
                f.healthy_interval, f.probe_interval
            ));
        }
        if f.healthy_interval.0 > f.probe_interval.0 * PROBE_HISTORY_LEN {
            return Err(format!(
                "failover.healthy_interval = \"{}\" is longer than the probe history ({PROBE_HISTORY_LEN} probes of failover.probe_interval = \"{}\")",
                f.healthy_interval, f.probe_interval
            ));
        }
        if !(2..=1000).contains(&f.segments_per_log_max) {
            return Err(format!(
                "failover.segments_per_log_max = {}: must be between 2 and 1000",
                f.segments_per_log_max
            ));
        }
        if f.probe_size.0 == 0 || f.probe_size.0 > 64 << 20 {
            return Err(format!(
                "failover.probe_size = \"{}\": must be between 1B and 64MiB",
                f.probe_size
            ));
        }
        validate_hedging(f)?;
        if f.queue_bytes_max.0 < 1 << 20 {
            return Err(format!(
                "failover.queue_bytes_max = \"{}\": must be at least 1MiB",
                f.queue_bytes_max
            ));
        }
        let w = &self.writer;
        if w.record_size_max.0 == 0 || w.record_size_max.0 > 1 << 30 {
            return Err(format!(
                "writer.record_size_max = \"{}\": must be between 1B and 1GiB",
                w.record_size_max
            ));
        }
        if w.pending_bytes_max.0 < 64 << 10 {
            return Err(format!(
                "writer.pending_bytes_max = \"{}\": must be at least 64KiB",
                w.pending_bytes_max
            ));
        }
        if w.recycle_logs_max > 1000 {
            return Err(format!(
                "writer.recycle_logs_max = {}: must be at most 1000",
                w.recycle_logs_max
            ));
        }
        if let Some(archive) = &self.archive {
            archive.validate()?;
        }
        self.validate_wal()
    }

    /// The `[wal]` table's rules.
    fn validate_wal(&self) -> std::result::Result<(), String> {
        if matches!(self.wal.sync, SyncPolicy::Periodic | SyncPolicy::Grouped)
            && self.wal.sync_interval.0.is_zero()
        {
            return Err(format!(
                "wal.sync_interval = \"{}\": must be greater than zero with wal.sync = \"{}\"",
                self.wal.sync_interval,
                format!("{:?}", self.wal.sync).to_lowercase()
            ));
        }
        if self.wal.sync_every_records > 0 && self.wal.sync != SyncPolicy::Periodic {
            return Err(format!(
                "wal.sync_every_records = {}: only used with wal.sync = \"periodic\"",
                self.wal.sync_every_records
            ));
        }
        if self.wal.log_size_max.0 < 64 << 10 {
            return Err(format!(
                "wal.log_size_max = \"{}\": must be at least 64KiB",
                self.wal.log_size_max
            ));
        }
        Ok(())
    }

    /// Whether this configuration selects the failover manager.
    pub fn is_failover(&self) -> bool {
        self.secondary.is_some()
    }
}

/// A TOML error as one line: where, which key, the value and what was
/// expected (`line 4: failover.probe_interval = -1: ...`).
fn toml_message(text: &str, e: &serde_path_to_error::Error<toml::de::Error>) -> String {
    use std::fmt::Write as _;
    let inner = e.inner();
    let key = e.path().to_string();
    let value = inner
        .span()
        .and_then(|span| text.get(span))
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.contains('\n'))
        // An unknown key's span is the key itself.
        .filter(|v| !key.ends_with(&format!(".{v}")));
    // Writing to a String cannot fail.
    let mut out = String::new();
    if let Some(span) = inner.span() {
        let before = text.get(..span.start).unwrap_or(text);
        let _ = write!(out, "line {}: ", before.matches('\n').count() + 1);
    }
    if key != "." {
        out.push_str(&key);
        match value {
            Some(v) => {
                let _ = write!(out, " = {v}: ");
            }
            None => out.push_str(": "),
        }
    }
    out.push_str(inner.message().trim_end());
    out
}

/// Whether two paths name the same directory, as they will once created:
/// each is resolved as the kernel would resolve it (symlinks followed,
/// dangling ones too, then `..`), so that `b/../a` and a link to `a` are
/// `a` even before `a` exists.
fn same_dir(a: &Path, b: &Path) -> bool {
    resolve_dir(a) == resolve_dir(b)
}

/// `path` made absolute, with every symlink on the way replaced by its
/// target (whether or not the target exists) and `.` and `..` applied in
/// order, as path lookup would. Components that do not exist are taken as
/// they are (they cannot be symlinks).
fn resolve_dir(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = if path.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().unwrap_or_default()
    };
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    let push_components = |p: &Path, pending: &mut Vec<std::ffi::OsString>, out: &mut PathBuf| {
        // Pushed in reverse: `pending` is a stack.
        for c in p.components().rev() {
            match c {
                Component::RootDir | Component::Prefix(_) => {
                    *out = PathBuf::from(c.as_os_str());
                }
                Component::CurDir => {}
                Component::ParentDir | Component::Normal(_) => pending.push(c.as_os_str().into()),
            }
        }
    };
    push_components(path, &mut pending, &mut out);
    let mut links_followed = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            out.pop();
            continue;
        }
        out.push(&name);
        let is_link = std::fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink());
        // A loop of links resolves to nothing real; stop following.
        if is_link && links_followed < 40 {
            links_followed += 1;
            if let Ok(target) = std::fs::read_link(&out) {
                out.pop();
                push_components(&target, &mut pending, &mut out);
            }
        }
    }
    out
}

/// The standby and hedging keys, checked against each other and the
/// threshold.
fn validate_hedging(f: &FailoverConfig) -> std::result::Result<(), String> {
    if f.hedge && !f.standby {
        return Err(
            "failover.hedge = true needs failover.standby = true: a hedge writes into the standby segment"
                .to_owned(),
        );
    }
    if f.hedge_latency_min.0.is_zero()
        || f.hedge_latency_min.0 > f.unhealthy_op_latency_threshold.0 / 2
    {
        return Err(format!(
            "failover.hedge_latency_min = \"{}\": must be greater than zero and at most half of failover.unhealthy_op_latency_threshold = \"{}\"",
            f.hedge_latency_min, f.unhealthy_op_latency_threshold
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::from_toml(text, "test.toml")
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn durations_and_sizes_read_like_people_write_them() {
        let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(d("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(d("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(d(" 1h "), Ok(Duration::from_secs(3600)));
        assert!(d("100").unwrap_err().contains("no unit"));
        assert!(
            d("ms")
                .unwrap_err()
                .contains("does not start with a number")
        );
        assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("0.25ms"), Ok(Duration::from_micros(250)));
        assert!(d("1.5ns").unwrap_err().contains("not a whole number"));
        assert!(d("1.s").unwrap_err().contains("digits after the point"));
        assert!(d("1.5x").unwrap_err().contains("unknown unit"));
        assert!(d("-1s").is_err());
        let s = |s: &str| s.parse::<HumanSize>().map(|s| s.0);
        assert_eq!(s("64MiB"), Ok(64 << 20));
        assert_eq!(s("4KiB"), Ok(4096));
        assert_eq!(s("512"), Ok(512));
        assert_eq!(s("1GB"), Ok(1_000_000_000));
        assert!(s("1TiB").unwrap_err().contains("unknown unit"));
        assert_eq!(s("0.5MiB"), Ok(512 << 10));
        assert_eq!(s("1.5KB"), Ok(1500));
        assert!(
            s("1.5B")
                .unwrap_err()
                .contains("not a whole number of bytes")
        );
        assert!(s("99999999999GiB").unwrap_err().contains("too large"));
        assert_eq!(HumanDuration::millis(1500).to_string(), "1500ms");
        assert_eq!(HumanDuration::millis(15_000).to_string(), "15s");
        assert_eq!(HumanSize(64 << 20).to_string(), "64MiB");
    }

    #[test]
    fn hedging_settings_are_checked_against_each_other() {
        let base = "[primary]\ndir = \"a\"\n[secondary]\ndir = \"b\"\n[failover]\n";
        let e = err(&format!("{base}standby = false\n"));
        assert!(
            e.contains("failover.hedge = true needs failover.standby = true"),
            "{e}"
        );
        assert!(parse(&format!("{base}standby = false\nhedge = false\n")).is_ok());
        let e = err(&format!("{base}hedge_latency_min = \"60ms\"\n"));
        assert!(e.contains("failover.hedge_latency_min = \"60ms\""), "{e}");
        assert!(e.contains("at most half"), "{e}");
        let e = err(&format!("{base}hedge_latency_min = \"0s\"\n"));
        assert!(e.contains("greater than zero"), "{e}");
        let c = parse(&format!(
            "{base}unhealthy_op_latency_threshold = \"200ms\"\nhedge_latency_min = \"60ms\"\n"
        ))
        .unwrap();
        assert_eq!(c.failover.hedge_latency_min, HumanDuration::millis(60));
    }

    #[test]
    fn fractions_are_exact() {
        let c = parse(
            "[primary]\ndir = \"a\"\n[failover]\nunhealthy_op_latency_threshold = \"0.05s\"\n[wal]\nlog_size_max = \"1.5MiB\"\n",
        )
        .unwrap();
        assert_eq!(
            c.failover.unhealthy_op_latency_threshold,
            HumanDuration::millis(50)
        );
        assert_eq!(c.wal.log_size_max, HumanSize(3 << 19));
    }

    #[test]
    fn a_secondary_reaching_the_primary_through_dots_or_a_dangling_symlink_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let primary = root.path().join("wal/primary");
        // Neither directory exists yet.
        let dotted = root.path().join("wal/secondary/../primary");
        assert!(
            Config::failover(&primary, &dotted)
                .validate()
                .unwrap_err()
                .contains("same directory")
        );
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&primary, &link).unwrap();
        let e = Config::failover(&primary, &link).validate().unwrap_err();
        assert!(e.contains("same directory"), "{e}");
        // `..` after a symlink leaves the link's target, not the link.
        let e = Config::failover(&primary, link.join("../primary")).validate();
        assert!(e.unwrap_err().contains("same directory"));
        // A relative link, and a link to the directory's parent.
        std::os::unix::fs::symlink("wal", root.path().join("rel")).unwrap();
        let e = Config::failover(&primary, root.path().join("rel/primary")).validate();
        assert!(e.unwrap_err().contains("same directory"));
        assert!(
            !root.path().join("wal").exists(),
            "validation created nothing"
        );
        Config::failover(&primary, root.path().join("wal/secondary"))
            .validate()
            .unwrap();
    }

    #[test]
    fn a_minimal_standalone_config_gets_every_default() {
        let c = parse("[primary]\ndir = \"wal\"\n").unwrap();
        assert_eq!(c, Config::standalone("wal"));
        assert!(!c.is_failover());
    }

    #[test]
    fn an_archive_table_is_read_with_its_defaults() {
        let c = parse(
            "[primary]\ndir = \"a\"\n[archive]\nurl = \"s3://bucket/wal/one\"\nendpoint = \"http://127.0.0.1:9000\"\n",
        )
        .unwrap();
        let archive = c.archive.expect("the table is read");
        assert_eq!(archive.url, "s3://bucket/wal/one");
        assert_eq!(archive.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(archive.backlog_bytes_max, HumanSize(4 << 30));
        assert_eq!(
            parse("[primary]\ndir = \"a\"\n[archive]\nurl = \"file:///var/wal-archive\"\n")
                .unwrap()
                .archive,
            Some(ArchiveConfig::new("file:///var/wal-archive"))
        );
    }

    #[test]
    fn the_secondary_table_selects_failover() {
        let c = parse(
            "[primary]\ndir = \"a\"\n[secondary]\ndir = \"b\"\n[failover]\nprobe_interval = \"100ms\"\nhealthy_interval = \"200ms\"\n",
        )
        .unwrap();
        assert!(c.is_failover());
        assert_eq!(c.failover.probe_interval, HumanDuration::millis(100));
    }

    #[test]
    fn bad_configs_name_the_key_and_the_value() {
        let base = "[primary]\ndir = \"a\"\n";
        let cases = [
            (
                format!("{base}[failover]\nprobe_interval = \"0s\"\n"),
                "failover.probe_interval = \"0s\"",
            ),
            (
                format!("{base}[wal]\nsync = \"periodic\"\nsync_interval = \"0s\"\n"),
                "wal.sync_interval = \"0s\"",
            ),
            (
                format!("{base}[wal]\nsync = \"sometimes\"\n"),
                "unknown variant `sometimes`",
            ),
            (
                format!("{base}[wal]\nsync_every_records = 5\n"),
                "only used with wal.sync = \"periodic\"",
            ),
            (
                format!("{base}[wal]\nlog_size_max = \"1KiB\"\n"),
                "wal.log_size_max = \"1KiB\"",
            ),
            (
                format!("{base}[failover]\nhealthy_interval = \"10m\"\n"),
                "longer than the probe history",
            ),
            (
                format!("{base}[failover]\nhealthy_interval = \"100ms\"\n"),
                "shorter than failover.probe_interval",
            ),
            (
                format!("{base}[failover]\nprobe_interval = 100\n"),
                "no unit",
            ),
            (format!("{base}[failover]\nbogus = 1\n"), "bogus"),
            (
                format!("{base}[secondary]\ndir = \"a\"\n"),
                "same directory",
            ),
            (
                format!("{base}[secondary]\ndir = \"./a/\"\n"),
                "same directory",
            ),
            (
                format!("{base}[writer]\nformat = \"legacy\"\n"),
                "no log number",
            ),
            (
                format!("{base}[writer]\nformat = \"fancy\"\n"),
                "unknown format",
            ),
            (
                format!("{base}[writer]\nrecord_size_max = \"2GiB\"\n"),
                "writer.record_size_max = \"2GiB\"",
            ),
            (
                format!("{base}[failover]\nsegments_per_log_max = 1\n"),
                "segments_per_log_max = 1",
            ),
            ("[primary]\ndir = \"\"\n".to_owned(), "primary.dir is empty"),
            (
                format!("{base}[archive]\nurl = \"http://x/y\"\n"),
                "archive.url = \"http://x/y\": expected s3://BUCKET[/PREFIX] or file:///PATH",
            ),
            (
                format!("{base}[archive]\nurl = \"s3:///prefix\"\n"),
                "archive.url = \"s3:///prefix\": no bucket",
            ),
            (
                format!("{base}[archive]\nurl = \"file://rel/dir\"\n"),
                "needs an absolute path",
            ),
            (
                format!("{base}[archive]\nurl = \"s3://b\"\nendpoint = \"127.0.0.1:9000\"\n"),
                "archive.endpoint = \"127.0.0.1:9000\": expected http://HOST[:PORT]",
            ),
            (
                format!("{base}[archive]\nurl = \"s3://b\"\nbacklog_bytes_max = 0\n"),
                "archive.backlog_bytes_max = \"0B\"",
            ),
            (
                format!("{base}[archive]\nendpoint = \"http://h\"\n"),
                "missing field `url`",
            ),
            (
                format!("{base}[archive]\nurl = \"s3://b\"\nbucket = \"b\"\n"),
                "archive.bucket: unknown field `bucket`",
            ),
            ("[secondary]\ndir = \"b\"\n".to_owned(), "primary"),
            ("primary = 3\n".to_owned(), "primary"),
        ];
        assert_errors(&cases);
    }

    #[test]
    fn wrong_types_and_negative_numbers_name_the_key_the_value_and_what_is_expected() {
        let base = "[primary]\ndir = \"a\"\n";
        let cases = [
            (
                format!("{base}[failover]\nprobe_interval = -1\n"),
                "failover.probe_interval = -1: -1 is negative: expected a duration",
            ),
            (
                format!("{base}[failover]\nprobe_interval = 1.5\n"),
                "failover.probe_interval = 1.5: 1.5 is a bare number",
            ),
            (
                format!("{base}[failover]\nprobe_interval = true\n"),
                "failover.probe_interval = true: invalid type: boolean `true`, expected a duration",
            ),
            (
                format!("{base}[writer]\nrecord_size_max = -5\n"),
                "writer.record_size_max = -5: -5 is negative: expected a size",
            ),
            (
                format!("{base}[writer]\npending_bytes_max = \"1.5B\"\n"),
                "writer.pending_bytes_max = \"1.5B\": \"1.5B\" is not a whole number of bytes",
            ),
            (
                format!("{base}[failover]\nsegments_per_log_max = -2\n"),
                "failover.segments_per_log_max = -2",
            ),
            (
                format!("{base}[writer]\nbogus = 3\n"),
                "line 4: writer.bogus: unknown field `bogus`",
            ),
            (
                format!("{base}[secondary]\ndir = \"c/../a\"\n"),
                "same directory",
            ),
        ];
        assert_errors(&cases);
    }

    fn assert_errors(cases: &[(String, &str)]) {
        for (text, want) in cases {
            let e = err(text);
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
            assert!(e.contains("test.toml"), "{e:?} names the file");
        }
    }
}
