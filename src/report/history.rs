//! The output of `evalgate history`: a trend table per backend and a trend chart, from the runs
//! of one suite. Each run's figures are its `results.json` figures: [`trend`] builds them with
//! [`results::build`] from the run's analysis, the same path `evalgate report` takes.

use std::fmt::Write;

use crate::score::history::History;

use super::markdown::{cell, money};
use super::results::{self, BackendResult};

/// One run's row: when it ran and the results of each of its backends.
#[derive(Debug, Clone)]
pub struct TrendRun {
    pub dir: String,
    pub started_at: String,
    /// The suite file differs from the previous run's.
    pub suite_changed: bool,
    pub backends: Vec<BackendResult>,
}

/// The runs of a history with their results, oldest first.
#[derive(Debug, Clone)]
pub struct Trend {
    pub suite: String,
    pub runs: Vec<TrendRun>,
    /// Backend ids in order of first appearance.
    pub backends: Vec<String>,
}

/// Builds each run's results exactly as `results.json` does.
pub fn trend(history: &History) -> Trend {
    let mut previous: Option<&str> = None;
    let runs = history
        .runs
        .iter()
        .map(|run| {
            let sha = run.meta.suite.sha256.as_str();
            let suite_changed = previous.is_some_and(|p| p != sha);
            previous = Some(sha);
            TrendRun {
                dir: run.dir.display().to_string(),
                started_at: run.meta.started_at.clone(),
                suite_changed,
                backends: results::build(&run.meta, &run.analysis).backends,
            }
        })
        .collect();
    Trend {
        suite: history.suite.clone(),
        runs,
        backends: history.backend_ids().into_iter().map(str::to_string).collect(),
    }
}

/// The date part of an RFC 3339 time.
fn date(started_at: &str) -> &str {
    started_at.get(..10).unwrap_or(started_at)
}

/// The trend tables, one per backend, oldest run first.
pub fn markdown(trend: &Trend) -> String {
    let mut md = String::new();
    let _ = write_markdown(&mut md, trend);
    md
}

fn write_markdown(md: &mut String, t: &Trend) -> std::fmt::Result {
    let n = t.runs.len();
    let plural = if n == 1 { "" } else { "s" };
    writeln!(md, "# {}: {n} run{plural}, oldest first\n", cell(&t.suite))?;
    writeln!(
        md,
        "Accuracy with its 95% interval and cost per correct answer, as in each run's results.json. *Price as of* is the date of the price used.\n"
    )?;
    writeln!(md, "| # | started | run |")?;
    writeln!(md, "|---|---|---|")?;
    for (n, run) in t.runs.iter().enumerate() {
        let changed = if run.suite_changed { " (suite changed)" } else { "" };
        writeln!(md, "| {} | {} | `{}`{changed} |", n + 1, cell(&run.started_at), cell(&run.dir))?;
    }
    writeln!(md)?;
    for id in &t.backends {
        writeln!(md, "## `{}`\n", cell(id))?;
        writeln!(
            md,
            "| # | date | accuracy (95% CI) | answered | cost per correct | price as of | model |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|")?;
        for (n, run) in t.runs.iter().enumerate() {
            let Some(b) = run.backends.iter().find(|b| &b.id == id) else {
                writeln!(md, "| {} | {} | not run | | | | |", n + 1, date(&run.started_at))?;
                continue;
            };
            let accuracy = if b.answered == 0 {
                "—".to_string()
            } else {
                let a = &b.accuracy;
                format!("{:.1}% ({:.1}–{:.1})", a.estimate * 100.0, a.low * 100.0, a.high * 100.0)
            };
            let cost = b.cost.per_correct_usd.map_or("—".to_string(), |c| money(c.estimate));
            writeln!(
                md,
                "| {} | {} | {accuracy} | {} | {cost} | {} | {} |",
                n + 1,
                date(&run.started_at),
                b.answered,
                price_date(b),
                b.model.as_deref().map_or("—".to_string(), cell),
            )?;
        }
        writeln!(md)?;
    }
    Ok(())
}

/// The date of the price a backend's cost used; a price the suite gave has none of its own.
fn price_date(b: &BackendResult) -> String {
    match (&b.cost.price_as_of, &b.cost.price_origin, &b.cost.pricing) {
        (Some(as_of), _, _) => cell(as_of),
        (None, Some(origin), Some(_)) => format!("({})", cell(origin)),
        _ => "—".to_string(),
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Colours for backends in order of first appearance (colour-blind safe, Okabe–Ito).
const PALETTE: [&str; 8] =
    ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"];

/// Accuracy over time per backend with interval whiskers; runs evenly spaced, oldest left.
/// `None` when no run has an answered backend.
pub fn chart(t: &Trend) -> Option<String> {
    let answered = |b: &&BackendResult| b.answered > 0;
    let lows =
        t.runs.iter().flat_map(|r| r.backends.iter().filter(answered).map(|b| b.accuracy.low));
    let amin = lows.fold(f64::INFINITY, f64::min);
    if !amin.is_finite() {
        return None;
    }
    let amin = ((amin * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    // Runs are evenly spaced inside a margin, so the outermost whiskers stay in the plot.
    let inner_left = LEFT + 30.0;
    let inner_w = WIDTH - RIGHT - 30.0 - inner_left;
    let n = t.runs.len();
    let slot = if n > 1 { inner_w / (n - 1) as f64 } else { inner_w };
    let centre = |run: usize| {
        if n > 1 {
            inner_left + run as f64 * slot
        } else {
            inner_left + inner_w / 2.0
        }
    };
    // Backends are drawn a little apart so the whiskers of one run do not overlap.
    let nb = t.backends.len();
    let spread = (slot * 0.3).min(24.0);
    let x = |run: usize, backend: usize| {
        let offset = if nb > 1 { (backend as f64 / (nb - 1) as f64 - 0.5) * spread } else { 0.0 };
        centre(run) + offset
    };
    let y = |a: f64| TOP + (1.0 - (a - amin) / (1.0 - amin)) * (HEIGHT - TOP - BOTTOM);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">{}: accuracy (95% CI) by run</text>
"##,
        (LEFT + WIDTH - RIGHT) / 2.0,
        xml(&t.suite)
    );
    super::chart::axes(&mut svg, (LEFT, WIDTH - RIGHT), (TOP, HEIGHT - BOTTOM));
    super::chart::accuracy_gridlines(&mut svg, amin, (LEFT, WIDTH - RIGHT), y);
    for (r, run) in t.runs.iter().enumerate() {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"##,
            centre(r),
            HEIGHT - BOTTOM + 18.0,
            xml(date(&run.started_at))
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle">run (oldest left)</text>"##,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">accuracy</text>"##,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    for (k, id) in t.backends.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let points: Vec<(usize, &BackendResult)> = t
            .runs
            .iter()
            .enumerate()
            .filter_map(|(r, run)| {
                Some((r, run.backends.iter().find(|b| &b.id == id && b.answered > 0)?))
            })
            .collect();
        if points.len() > 1 {
            let path: Vec<String> = points
                .iter()
                .map(|(r, b)| format!("{:.1},{:.1}", x(*r, k), y(b.accuracy.estimate)))
                .collect();
            let _ = writeln!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
                path.join(" ")
            );
        }
        for (r, b) in &points {
            let px = x(*r, k);
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{colour}" stroke-width="1.5"/>"##,
                y(b.accuracy.high),
                y(b.accuracy.low)
            );
            let _ = writeln!(
                svg,
                r##"<circle cx="{px:.1}" cy="{:.1}" r="4" fill="{colour}"/>"##,
                y(b.accuracy.estimate)
            );
        }
        // Legend.
        let ly = TOP + 10.0 + k as f64 * 18.0;
        let lx = WIDTH - RIGHT + 16.0;
        let _ = writeln!(
            svg,
            r##"<rect x="{lx}" y="{:.1}" width="12" height="12" fill="{colour}"/>"##,
            ly - 10.0
        );
        let _ = writeln!(svg, r##"<text x="{}" y="{ly:.1}">{}</text>"##, lx + 18.0, xml(id));
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
