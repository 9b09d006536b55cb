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
