//! The timeline as an SVG chart (plotters, SVG backend only).
//!
//! x: seconds since the run started; y: append latency in milliseconds on
//! a log scale (a 100 ms stall and 200 µs syncs on one chart). Two lines
//! per bucket: the max (dark) and the mean (light); each event is a
//! vertical line, one colour per kind, counted in the legend. Buckets are
//! merged down to about one per horizontal pixel (maxima stay exact), and
//! markers of one kind falling on one pixel are drawn once, so the file
//! stays small however long the run.

use std::fmt::Write as _;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::buckets::{Buckets, Cell};
use super::events::{Event, EventKind};
use super::{RunInfo, Timeline};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 640;
/// The legend's column, right of the plot.
const LEGEND_WIDTH: u32 = 230;
/// Most points a line has: about one per pixel of the plotting area.
const POINTS_MAX: usize = 1000;
/// The lowest latency the y axis shows, in ms (100 ns).
const LATENCY_MS_MIN: f64 = 1e-4;

const MAX_COLOUR: RGBColor = RGBColor(31, 58, 147);
const MEAN_COLOUR: RGBColor = RGBColor(140, 170, 230);

/// Each event kind's legend label and colour, in legend order.
const MARKERS: [(&str, RGBColor); 5] = [
    ("hedge", RGBColor(245, 150, 20)),
    ("switch", RGBColor(215, 25, 28)),
    ("failback", RGBColor(26, 150, 65)),
    ("stranded", RGBColor(150, 60, 170)),
    ("unstranded", RGBColor(120, 120, 120)),
];

fn ms(ns: f64) -> f64 {
    ns / 1e6
}

/// The latency range shown: from half the lowest mean to twice the highest
/// max, in ms.
fn latency_range(b: &Buckets) -> (f64, f64) {
    let lowest = b
        .cells
        .iter()
        .filter_map(Cell::mean_ns)
        .fold(f64::INFINITY, f64::min);
    let highest = b.cells.iter().map(|c| c.max_ns).max().unwrap_or(0);
    if highest == 0 {
        return (LATENCY_MS_MIN, 1.0);
    }
    let lo = (ms(lowest) / 2.0).max(LATENCY_MS_MIN);
    (lo, (ms(highest as f64) * 2.0).max(lo * 10.0))
}

/// A latency label: "250us", "1.5ms", "2s".
fn latency_label(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}s", v / 1000.0)
    } else if v >= 1.0 {
        format!("{v}ms")
    } else {
        format!("{}us", (v * 1000.0 * 1000.0).round() / 1000.0)
    }
}

/// The row of [`MARKERS`] of an event kind.
fn marker_index(kind: EventKind) -> usize {
    match kind {
        EventKind::Hedge { .. } => 0,
        EventKind::Switch { .. } => 1,
        EventKind::Failback { .. } => 2,
        EventKind::Stranded => 3,
        EventKind::Unstranded => 4,
    }
}

/// The times (s) of the markers of kind `index`: an event less than a
/// pixel after the last marker drawn adds nothing to the picture.
fn marker_times(events: &[Event], index: usize, secs_per_pixel: f64) -> Vec<f64> {
    let mut times: Vec<f64> = Vec::new();
    for e in events.iter().filter(|e| marker_index(e.kind) == index) {
        let t = e.at.as_secs_f64();
        if times.last().is_none_or(|last| t >= last + secs_per_pixel) {
            times.push(t);
        }
    }
    times
}

/// The legend label of marker kind `index` with its count.
fn marker_label(events: &[Event], index: usize) -> String {
    let name = MARKERS[index].0;
    let of_kind = events.iter().filter(|e| marker_index(e.kind) == index);
    if index == 0 {
        let hedges: u64 = of_kind
            .map(|e| match e.kind {
                EventKind::Hedge { added, .. } => added,
                _ => 0,
            })
            .sum();
        format!("{name} ({hedges})")
    } else {
        format!("{name} ({})", of_kind.count())
    }
}

/// The chart of `t` as an SVG document.
pub(crate) fn render(t: &Timeline, info: &RunInfo) -> Result<String, String> {
    let b = t.buckets.coarsened(POINTS_MAX);
    let width_s = b.width.as_secs_f64();
    let last_event = t
        .events
        .iter()
        .flatten()
        .map(|e| e.at.as_secs_f64())
        .fold(0.0, f64::max);
    let x_max = (b.cells.len() as f64 * width_s).max(last_event).max(1e-3);
    let (y_lo, y_hi) = latency_range(&b);
    let mut svg = String::new();
    draw(&mut svg, t, info, &b, (x_max, y_lo, y_hi)).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    t: &Timeline,
    info: &RunInfo,
    b: &Buckets,
    (x_max, y_lo, y_hi): (f64, f64, f64),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut caption = format!("wal bench: append latency, {}", info.describe());
    if t.events_dropped > 0 {
        let _ = write!(caption, " ({} events not drawn)", t.events_dropped);
    }
    let root = root.titled(&caption, ("sans-serif", 22))?;
    // The legend has its own column, so that it never hides a spike.
    let (plot, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(84)
        .build_cartesian_2d(0.0..x_max, (y_lo..y_hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start")
        .y_desc("append latency (log scale)")
        .y_label_formatter(&|v| latency_label(*v))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    let per_bucket = format!("{} ms", b.width.as_millis());
    let mut legend = vec![
        (
            format!("max per {per_bucket} (exact)"),
            MAX_COLOUR.stroke_width(2),
            false,
        ),
        (
            format!("mean per {per_bucket}"),
            MEAN_COLOUR.stroke_width(2),
            false,
        ),
    ];
    // Markers first: the latency lines are drawn over them.
    if let Some(events) = &t.events {
        let secs_per_pixel = x_max / f64::from(WIDTH - LEGEND_WIDTH);
        for (index, (_, colour)) in MARKERS.iter().enumerate() {
            let style = colour
                .mix(if index == 0 { 0.55 } else { 0.9 })
                .stroke_width(2);
            let lines = marker_times(events, index, secs_per_pixel)
                .into_iter()
                .map(move |x| PathElement::new([(x, y_lo), (x, y_hi)], style));
            chart.draw_series(lines)?;
            legend.push((marker_label(events, index), style, true));
        }
    }
    let width_s = b.width.as_secs_f64();
    let point = |i: usize, v: f64| ((i as f64 + 0.5) * width_s, ms(v).max(y_lo));
    let means = b
        .cells
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.mean_ns().map(|m| point(i, m)));
    chart.draw_series(LineSeries::new(means, MEAN_COLOUR.stroke_width(1)))?;
    let maxima = b
        .cells
        .iter()
        .enumerate()
        .filter(|(_, c)| c.count > 0)
        .map(|(i, c)| point(i, c.max_ns as f64));
    chart.draw_series(LineSeries::new(maxima, MAX_COLOUR.stroke_width(1)))?;

    for (row, (label, style, marker)) in (0i32..).zip(legend) {
        let y = 30 + row * 26;
        let sample = if marker {
            PathElement::new([(22, y - 8), (22, y + 8)], style)
        } else {
            PathElement::new([(10, y), (34, y)], style)
        };
        legend_area.draw(&sample)?;
        legend_area.draw(&Text::new(
            label,
            (44, y),
            ("sans-serif", 16)
                .into_text_style(&legend_area)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timeline() -> Timeline {
        let mut cells = vec![
            Cell {
                count: 4,
                sum_ns: 1_000_000,
                max_ns: 400_000
            };
            300
        ];
        cells[120] = Cell::default();
        cells[121].max_ns = 95_000_000;
        Timeline {
            buckets: Buckets {
                width: Duration::from_millis(1),
                cells,
            },
            events: Some(vec![
                Event {
                    at: Duration::from_millis(100),
                    kind: EventKind::Hedge { added: 2, total: 2 },
                },
                Event {
                    at: Duration::from_millis(110),
                    kind: EventKind::Switch { n: 1 },
                },
                Event {
                    at: Duration::from_millis(250),
                    kind: EventKind::Failback { n: 2 },
                },
            ]),
            events_dropped: 0,
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            writers: 8,
            record_size: 128,
            sync: true,
            manager: "failover",
        }
    }

    #[test]
    fn the_chart_has_a_title_axes_a_legend_and_a_marker_per_event() {
        let svg = render(&timeline(), &info()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for text in [
            "8 writers, 128-byte records, synced, failover manager",
            "seconds since the start",
            "max per 1 ms (exact)",
            "mean per 1 ms",
            "hedge (2)",
            "switch (1)",
            "failback (1)",
            "stranded (0)",
        ] {
            assert!(svg.contains(text), "{text:?} missing");
        }
    }

    #[test]
    fn markers_of_one_kind_on_one_pixel_are_drawn_once() {
        let at = |ms| Event {
            at: Duration::from_millis(ms),
            kind: EventKind::Hedge { added: 1, total: 1 },
        };
        let events = [at(0), at(1), at(2), at(10), at(11)];
        assert_eq!(marker_times(&events, 0, 0.005), [0.0, 0.01]);
        assert_eq!(marker_times(&events, 1, 0.005), Vec::<f64>::new());
        assert_eq!(marker_label(&events, 0), "hedge (5)");
    }

    #[test]
    fn an_empty_timeline_still_renders() {
        let t = Timeline {
            buckets: Buckets::new(Duration::from_millis(1)),
            events: None,
            events_dropped: 0,
        };
        let svg = render(&t, &info()).unwrap();
        assert!(svg.contains("max per 1 ms"));
        assert!(!svg.contains("failback"));
    }

    #[test]
    fn latency_labels_pick_a_unit() {
        assert_eq!(latency_label(0.25), "250us");
        assert_eq!(latency_label(1.5), "1.5ms");
        assert_eq!(latency_label(2000.0), "2s");
    }
}
