//! A one-line progress display on stderr, redrawn in place with `\r`, shown
//! only when stderr is a terminal (so logs and pipes get no control bytes).

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

/// How often the line is redrawn.
pub(crate) const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// The progress line.
#[derive(Debug)]
pub(crate) struct Progress {
    enabled: bool,
    drawn: bool,
}

impl Progress {
    /// A progress line, enabled when stderr is a terminal.
    pub(crate) fn new() -> Progress {
        Progress {
            enabled: io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Redraws the line with `text`.
    pub(crate) fn show(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        let mut err = io::stderr().lock();
        // `\x1b[K` clears what a longer previous line left behind. A failed
        // write to stderr is not worth failing the bench over.
        let _ = write!(err, "\r{text}\x1b[K");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the line.
    pub(crate) fn finish(&mut self) {
        if self.enabled && self.drawn {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// Progress through the bytes of a set of logs, for `verify` and `dump` of
/// large logs: "verify: 1.2 GiB of 4.0 GiB (30%)". Redrawn at most every
/// [`PROGRESS_INTERVAL`], only on a terminal.
#[derive(Debug)]
pub(crate) struct ByteProgress {
    line: Progress,
    what: &'static str,
    total: u64,
    /// Bytes of the logs finished before the current one.
    base: u64,
    /// Sizes of the current log's segments before each position.
    before_segment: Vec<u64>,
    /// The size of the current log.
    current_log_size: u64,
    last_draw: std::time::Instant,
}

impl ByteProgress {
    /// Progress of `what` through the bytes of `logs`.
    pub(crate) fn new(what: &'static str, logs: &[wal_manager::LogicalLog]) -> ByteProgress {
        ByteProgress {
            line: Progress::new(),
            what,
            total: logs.iter().map(wal_manager::LogicalLog::size).sum(),
            base: 0,
            before_segment: Vec::new(),
            current_log_size: 0,
            last_draw: std::time::Instant::now(),
        }
    }

    /// Starts the next of the logs (in the order given to `new`).
    pub(crate) fn start_log(&mut self, log: &wal_manager::LogicalLog) {
        self.base += self.current_log_size;
        self.current_log_size = log.size();
        self.before_segment = log
            .segments
            .iter()
            .scan(0, |acc, s| {
                let before = *acc;
                *acc += s.size;
                Some(before)
            })
            .collect();
    }

    /// The reader is at `offset` in segment position `segment_pos`.
    pub(crate) fn at(&mut self, segment_pos: usize, offset: u64) {
        if self.last_draw.elapsed() < PROGRESS_INTERVAL {
            return;
        }
        self.last_draw = std::time::Instant::now();
        let done = self.base + self.before_segment.get(segment_pos).copied().unwrap_or(0) + offset;
        let pct = (done.min(self.total) * 100)
            .checked_div(self.total)
            .unwrap_or(100);
        self.line.show(&format!(
            "{}: {} of {} ({pct}%)",
            self.what,
            human_bytes(done),
            human_bytes(self.total)
        ));
    }

    /// Erases the line.
    pub(crate) fn finish(&mut self) {
        self.line.finish();
    }
}

/// `1536` as `1.5 KiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_read_like_people_say_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
