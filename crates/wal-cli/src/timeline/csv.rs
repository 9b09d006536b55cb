//! The timeline as CSV: the columns are [`HEADER`], documented in
//! `wal bench --help` (the `--timeline` option).
//!
//! Rows are in time order; at one time, latency rows come before events.
//! Latency rows exist for every bucket from the first to the last in which
//! an append was acknowledged: a bucket with a count of 0 (and empty
//! latency fields) is time in which no append finished, as in a stall.

use std::io::{self, Write};

use super::Timeline;
use super::events::Event;

/// The header line.
pub(crate) const HEADER: &str = "t_s,kind,latency_ms_max,latency_ms_mean,count,detail";

/// Writes `t` as CSV.
pub(crate) fn write(t: &Timeline, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    let no_events: &[Event] = &[];
    let mut events = t.events.as_deref().unwrap_or(no_events).iter().peekable();
    let ms = |ns: f64| ns / 1e6;
    for (i, c) in t.buckets.cells.iter().enumerate() {
        let start = t.buckets.start_of(i);
        while let Some(e) = events.next_if(|e| e.at < start) {
            event_row(e, out)?;
        }
        write!(out, "{:.6},latency,", start.as_secs_f64())?;
        match c.mean_ns() {
            Some(mean) => write!(out, "{:.6},{:.6},", ms(c.max_ns as f64), ms(mean))?,
            None => write!(out, ",,")?,
        }
        writeln!(out, "{},", c.count)?;
    }
    for e in events {
        event_row(e, out)?;
    }
    Ok(())
}

fn event_row(e: &Event, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:.6},{},,,,{}",
        e.at.as_secs_f64(),
        e.kind.name(),
        e.kind.detail()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::buckets::{Buckets, Cell};
    use super::super::events::EventKind;
    use super::*;

    #[test]
    fn rows_interleave_buckets_and_events_in_time_order() {
        let t = Timeline {
            buckets: Buckets {
                width: Duration::from_millis(1),
                cells: vec![
                    Cell {
                        count: 2,
                        sum_ns: 500_000,
                        max_ns: 300_001,
                    },
                    Cell::default(),
                    Cell {
                        count: 1,
                        sum_ns: 1_800_000,
                        max_ns: 1_800_000,
                    },
                ],
            },
            events: Some(vec![
                Event {
                    at: Duration::from_micros(1_500),
                    kind: EventKind::Switch { n: 1 },
                },
                Event {
                    at: Duration::from_millis(9),
                    kind: EventKind::Hedge { added: 3, total: 3 },
                },
            ]),
            events_dropped: 0,
        };
        let mut out = Vec::new();
        write(&t, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "t_s,kind,latency_ms_max,latency_ms_mean,count,detail\n\
             0.000000,latency,0.300001,0.250000,2,\n\
             0.001000,latency,,,0,\n\
             0.001500,switch,,,,to secondary (switch 1)\n\
             0.002000,latency,1.800000,1.800000,1,\n\
             0.009000,hedge,,,,+3 (total 3)\n"
        );
    }
}
