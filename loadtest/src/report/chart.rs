//! The chart: end-to-end latency per second (p50, p99 and max, log scale) over the run, above
//! the events observed per second, drawn by plotters' SVG backend into a string.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Report, Second};

const SIZE: (u32, u32) = (900, 560);
/// Height of the latency panel (title included); the events panel takes the rest.
const LATENCY_PANEL: u32 = 300;
const P50: RGBColor = RGBColor(0x2b, 0x6c, 0xb0);
const P99: RGBColor = RGBColor(0xe8, 0x87, 0x1e);
const MAX: RGBColor = RGBColor(0x99, 0x99, 0x99);
const EVENTS: RGBColor = RGBColor(0x4c, 0x9a, 0x5b);
/// The axis descriptions.
pub(super) const LATENCY_AXIS: &str = "latency (ms, log scale)";
pub(super) const EVENTS_AXIS: &str = "events / s";
pub(super) const TIME_AXIS: &str = "seconds since start";
/// An MLLP run without a consumer charts its ACKs instead of events.
pub(super) const ACKS_AXIS: &str = "AAs / s";
/// The lowest latency the log scale shows; lower values are drawn on it.
const FLOOR_MS: f64 = 0.1;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// One latency value of a second.
type Value = fn(&Second) -> f64;

impl Report {
    /// Latency (p50, p99, max per second, log scale) over time above events per second, as an
    /// SVG document.
    pub fn svg(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
            self.draw(&root)?;
            root.present()?;
        }
        Ok(out)
    }

    /// Whether the timeline is of MLLP ACKs (an `[mllp]` run without hl7-ingest).
    fn charts_acks(&self) -> bool {
        self.mllp.as_ref().is_some_and(|m| !m.ingest)
    }

    fn draw(&self, root: &Area<'_>) -> anyhow::Result<()> {
        root.fill(&WHITE)?;
        let acks = self.charts_acks();
        let title = match &self.mllp {
            Some(m) if acks => format!(
                "{} — {} backend, MLLP, {} connections, {} messages: {:.0} msg/s, ACK p99 {:.2} ms, ACKed but lost {}",
                self.scenario,
                self.backend,
                m.send.connections,
                self.messages_sent,
                m.send.messages_per_s,
                m.send.ack_latency_ms.p99,
                m.acked_but_lost
            ),
            _ => format!(
                "{} — {} backend, {} mode, {} messages: {:.0} msg/s, p99 {:.1} ms, lost {}",
                self.scenario,
                self.backend,
                self.mode,
                self.messages_sent,
                self.throughput_per_s,
                self.latency_ms.p99,
                self.lost
            ),
        };
        let body = root.titled(
            &title,
            ("sans-serif", 15).into_font().style(FontStyle::Bold),
        )?;
        let (top, bottom) = body.split_vertically(LATENCY_PANEL);
        // Second i spans [i, i + 1) on both panels' x axes.
        let seconds = self.timeline.len().max(1) as f64;
        latency_panel(&top, &self.timeline, seconds, acks)?;
        events_panel(&bottom, &self.timeline, seconds, acks)?;
        Ok(())
    }
}

/// One line per series over the seconds that had events, on a log scale from 0.1 ms to the
/// decade above the highest max.
fn latency_panel(
    area: &Area<'_>,
    timeline: &[Second],
    seconds: f64,
    acks: bool,
) -> anyhow::Result<()> {
    let max_ms = timeline
        .iter()
        .map(|s| s.latency_max_ms)
        .fold(1.0_f64, f64::max);
    let decades = max_ms.log10().ceil().max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{} latency per second (ms, log scale): p50 blue, p99 orange, max grey",
                if acks { "MLLP ACK" } else { "end-to-end" }
            ),
            ("sans-serif", 12),
        )
        .margin(10)
        .x_label_area_size(20)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..seconds, (FLOOR_MS..10f64.powf(decades)).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(timeline.len().clamp(2, 11))
        .x_label_formatter(&|s| format!("{}s", number(*s)))
        .y_label_formatter(&|ms| number(*ms))
        .y_desc(LATENCY_AXIS)
        .draw()?;
    let series: [(RGBColor, Value); 3] = [
        (MAX, |s| s.latency_max_ms),
        (P99, |s| s.latency_p99_ms),
        (P50, |s| s.latency_p50_ms),
    ];
    for (color, value) in series {
        let points = timeline
            .iter()
            .enumerate()
            .filter(|(_, s)| s.events > 0)
            .map(|(i, s)| (i as f64 + 0.5, value(s).max(FLOOR_MS)));
        chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
    }
    Ok(())
}

/// A bar per second, 80 % of its width.
fn events_panel(
    area: &Area<'_>,
    timeline: &[Second],
    seconds: f64,
    acks: bool,
) -> anyhow::Result<()> {
    let max_events = timeline.iter().map(|s| s.events).max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{} per second (max {max_events})",
                if acks {
                    "AAs received"
                } else {
                    "events observed"
                }
            ),
            ("sans-serif", 12),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..seconds, 0.0..max_events as f64)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(timeline.len().clamp(2, 11))
        .y_labels(5)
        .x_label_formatter(&|s| format!("{}s", number(*s)))
        .y_label_formatter(&|v| number(*v))
        .x_desc(TIME_AXIS)
        .y_desc(if acks { ACKS_AXIS } else { EVENTS_AXIS })
        .draw()?;
    chart.draw_series(timeline.iter().enumerate().map(|(i, s)| {
        let x = i as f64;
        Rectangle::new(
            [(x + 0.1, 0.0), (x + 0.9, s.events as f64)],
            EVENTS.filled(),
        )
    }))?;
    Ok(())
}

/// A tick label: whole numbers without decimals, others with as few as they need.
fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}
