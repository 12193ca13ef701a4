//! `chart.svg`: accuracy (with its interval) against cost per correct answer, one point per
//! priced backend. Hand-written SVG: small, deterministic, and rendered by GitHub beside the
//! report. Up and to the left is better.

use std::fmt::Write;

use super::results::Results;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

struct Point<'a> {
    id: &'a str,
    cost: f64,
    accuracy: f64,
    low: f64,
    high: f64,
}

/// The chart, or `None` when no backend has both an accuracy and a cost per correct answer.
pub fn render(results: &Results) -> Option<String> {
    let points: Vec<Point> = results
        .backends
        .iter()
        .filter(|b| b.answered > 0)
        .filter_map(|b| {
            let cost = b.cost.per_correct_usd?.estimate;
            (cost.is_finite() && cost > 0.0).then_some(Point {
                id: &b.id,
                cost,
                accuracy: b.accuracy.estimate,
                low: b.accuracy.low,
                high: b.accuracy.high,
            })
        })
        .collect();
    if points.is_empty() {
        return None;
    }
    // Costs span orders of magnitude between a self-hosted model and a frontier API: a log axis
    // keeps both readable.
    let (mut cmin, mut cmax) =
        points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.cost), hi.max(p.cost)));
    cmin = 10f64.powf(cmin.log10().floor());
    cmax = 10f64.powf(cmax.log10().ceil());
    if cmax <= cmin {
        cmax = cmin * 10.0;
    }
    let amin = points.iter().map(|p| p.low).fold(1.0, f64::min);
    let amin = ((amin * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    let x = |c: f64| {
        LEFT + (c.log10() - cmin.log10()) / (cmax.log10() - cmin.log10()) * (WIDTH - LEFT - RIGHT)
    };
    let y = |a: f64| TOP + (1.0 - (a - amin) / (1.0 - amin)) * (HEIGHT - TOP - BOTTOM);

    // An extraction run's accuracy is its exact-match rate.
    let (title, axis) = if results.task.fields.is_empty() {
        ("Accuracy", "accuracy")
    } else {
        ("Exact match", "exact match")
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">{title} (95% CI) against cost per correct answer</text>
"##,
        WIDTH / 2.0
    );
    // Axes and grid.
    axes(&mut svg, (LEFT, WIDTH - RIGHT), (TOP, HEIGHT - BOTTOM));
    let mut decade = cmin;
    while decade <= cmax * 1.0001 {
        let px = x(decade);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#ddd"/>"##,
            HEIGHT - BOTTOM
        );
        let _ = writeln!(
            svg,
            r##"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            HEIGHT - BOTTOM + 18.0,
            usd(decade)
        );
        decade *= 10.0;
    }
    accuracy_gridlines(&mut svg, amin, (LEFT, WIDTH - RIGHT), y);
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle">cost per correct answer (USD, log scale)</text>"##,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{axis}</text>"##,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    for p in &points {
        let (px, py) = (x(p.cost), y(p.accuracy));
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#1f6feb" stroke-width="2"/>"##,
            y(p.high),
            y(p.low)
        );
        let _ = writeln!(svg, r##"<circle cx="{px:.1}" cy="{py:.1}" r="5" fill="#1f6feb"/>"##);
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}">{}</text>"##,
            px + 8.0,
            py - 6.0,
            xml(p.id)
        );
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

fn usd(v: f64) -> String {
    if v >= 1.0 {
        format!("${v:.0}")
    } else {
        let digits = (-v.log10()).ceil() as usize;
        format!("${v:.digits$}")
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The x axis along the plot's bottom and the y axis along its left side, for a plot spanning
/// `x` = (left, right) and `y` = (top, bottom) in SVG units (both charts draw them alike).
pub(crate) fn axes(svg: &mut String, (left, right): (f64, f64), (top, bottom): (f64, f64)) {
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>"##
    );
}

/// Horizontal gridlines labelled with percentages, every 10 points from `from` to 100%, across
/// the plot from `left` to `right` (both charts of accuracy draw them alike).
pub(crate) fn accuracy_gridlines(
    svg: &mut String,
    from: f64,
    (left, right): (f64, f64),
    y: impl Fn(f64) -> f64,
) {
    let mut tick = from;
    while tick <= 1.0001 {
        let py = y(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{py:.1}" x2="{right}" y2="{py:.1}" stroke="#ddd"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{:.0}%</text>"##,
            left - 6.0,
            py + 4.0,
            tick * 100.0
        );
        tick += 0.1;
    }
}
