//! The output of `evalgate compare`: the change between two runs of one suite, as markdown or as
//! a versioned JSON object. Pure functions from a [`RunDiff`] to text.
//!
//! JSON, schema version 1 (fields are only ever added):
//! - `run_a`, `run_b`: `dir`, `started_at`, `suite_sha256`, `items`.
//! - `suite`, `suite_changed` (same name and task, another suite file), `shared_items`.
//! - `backends[]`: `a`, `b` (backend ids), `model_a`, `model_b`, `items_compared` (items both
//!   runs answered), `accuracy_a`, `accuracy_b` (over those items), `run_accuracy_a`,
//!   `run_accuracy_b` (over each whole run, as in its `results.json`), `difference` (B − A, with
//!   `method` `newcombe-hybrid-score` or `paired-item-means`), `p_value` (McNemar exact, or the
//!   normal test of the item means), `counts` (`both_correct`, `only_a`, `only_b`, `both_wrong`;
//!   `null` with several samples per item), `regression` / `improvement` (the interval lies
//!   entirely below / above 0), `classes[]` (`label`, `support_a`, `recall_a`, `support_b`,
//!   `recall_b`; classification only), `right_to_wrong` and `wrong_to_right` (`count` and every
//!   `items[]`: `id`, `gold_a`, `gold_b`, `answer_a`, `answer_b`, `reply_a`, `reply_b`,
//!   `accuracy_a`, `accuracy_b`), `per_correct_usd_a`, `per_correct_usd_b` (estimate, low,
//!   high, or `null`), `per_correct_change_usd`, `price_as_of_a`, `price_as_of_b`.
//! - `unpaired[]`: `run` (`a` or `b`) and `backend`, for backends with no partner.
//! - `regression`: whether any backend regressed.

use std::fmt::Write;

use serde::Serialize;

use crate::score::compare::DifferenceMethod;
use crate::score::run_diff::{BackendDiff, Flip, RunDiff, RunSide};
use crate::score::CONFIDENCE;
use crate::stats::Interval;
use crate::text::{excerpt, p_number};

use super::markdown::{cell, money};

pub const COMPARE_SCHEMA_VERSION: u32 = 1;
/// Flipped items shown per direction in markdown; JSON lists them all.
pub const FLIPS_SHOWN: usize = 20;
/// Characters of a reply shown in a markdown cell.
const REPLY_CHARS: usize = 160;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareJson {
    pub schema_version: u32,
    pub suite: String,
    pub suite_changed: bool,
    pub run_a: RunJson,
    pub run_b: RunJson,
    pub shared_items: usize,
    pub backends: Vec<BackendDiffJson>,
    pub unpaired: Vec<UnpairedJson>,
    pub regression: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunJson {
    pub dir: String,
    pub started_at: String,
    pub suite_sha256: String,
    pub items: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnpairedJson {
    pub run: &'static str,
    pub backend: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendDiffJson {
    pub a: String,
    pub b: String,
    pub model_a: Option<String>,
    pub model_b: Option<String>,
    pub items_compared: u64,
    pub accuracy_a: f64,
    pub accuracy_b: f64,
    pub run_accuracy_a: f64,
    pub run_accuracy_b: f64,
    pub difference: DifferenceJson,
    pub p_value: f64,
    pub counts: Option<CountsJson>,
    pub regression: bool,
    pub improvement: bool,
    pub classes: Vec<ClassJson>,
    pub right_to_wrong: FlipsJson,
    pub wrong_to_right: FlipsJson,
    pub per_correct_usd_a: Option<UsdInterval>,
    pub per_correct_usd_b: Option<UsdInterval>,
    pub per_correct_change_usd: Option<f64>,
    pub price_as_of_a: Option<String>,
    pub price_as_of_b: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DifferenceJson {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub method: &'static str,
    pub confidence: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CountsJson {
    pub both_correct: u64,
    pub only_a: u64,
    pub only_b: u64,
    pub both_wrong: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassJson {
    pub label: String,
    pub support_a: u64,
    pub recall_a: Option<f64>,
    pub support_b: u64,
    pub recall_b: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlipsJson {
    pub count: usize,
    /// Every flip, with both replies (the markdown shows at most 20).
    pub items: Vec<Flip>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UsdInterval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

fn method_name(m: DifferenceMethod) -> &'static str {
    match m {
        DifferenceMethod::NewcombeMcNemar => "newcombe-hybrid-score",
        DifferenceMethod::PairedItemMeans => "paired-item-means",
    }
}

fn run_json(side: &RunSide) -> RunJson {
    RunJson {
        dir: side.dir.display().to_string(),
        started_at: side.meta.started_at.clone(),
        suite_sha256: side.meta.suite.sha256.clone(),
        items: side.meta.items.len(),
    }
}

fn usd(i: Option<Interval>) -> Option<UsdInterval> {
    i.map(|i| UsdInterval { estimate: i.estimate, low: i.low, high: i.high })
}

fn flips_json(flips: &[Flip]) -> FlipsJson {
    FlipsJson { count: flips.len(), items: flips.to_vec() }
}

/// The JSON object of a comparison.
pub fn json(diff: &RunDiff) -> CompareJson {
    let backends = diff
        .backends
        .iter()
        .map(|d| {
            let (ma, mb) = (&diff.a.meta.backends[d.index_a], &diff.b.meta.backends[d.index_b]);
            let as_of = |m: &crate::journal::BackendMeta| m.price.as_ref()?.as_of.clone();
            BackendDiffJson {
                a: d.id_a.clone(),
                b: d.id_b.clone(),
                model_a: ma.model.clone(),
                model_b: mb.model.clone(),
                items_compared: d.items_compared,
                accuracy_a: d.accuracy_a,
                accuracy_b: d.accuracy_b,
                run_accuracy_a: diff.a.analysis.scores.backends[d.index_a].accuracy.estimate,
                run_accuracy_b: diff.b.analysis.scores.backends[d.index_b].accuracy.estimate,
                difference: DifferenceJson {
                    estimate: d.difference.estimate,
                    low: d.difference.low,
                    high: d.difference.high,
                    method: method_name(d.method),
                    confidence: CONFIDENCE,
                },
                p_value: d.p_value,
                counts: d.counts.map(|c| CountsJson {
                    both_correct: c.both_correct,
                    only_a: c.only_first,
                    only_b: c.only_second,
                    both_wrong: c.both_wrong,
                }),
                regression: d.regressed(),
                improvement: d.improved(),
                classes: d
                    .classes
                    .iter()
                    .map(|c| ClassJson {
                        label: c.label.clone(),
                        support_a: c.support_a,
                        recall_a: c.recall_a,
                        support_b: c.support_b,
                        recall_b: c.recall_b,
                    })
                    .collect(),
                right_to_wrong: flips_json(&d.worse),
                wrong_to_right: flips_json(&d.better),
                per_correct_usd_a: usd(d.per_correct_a),
                per_correct_usd_b: usd(d.per_correct_b),
                per_correct_change_usd: d.per_correct_change(),
                price_as_of_a: as_of(ma),
                price_as_of_b: as_of(mb),
            }
        })
        .collect();
    CompareJson {
        schema_version: COMPARE_SCHEMA_VERSION,
        suite: diff.b.meta.suite.name.clone(),
        suite_changed: diff.suite_changed,
        run_a: run_json(&diff.a),
        run_b: run_json(&diff.b),
        shared_items: diff.shared_items,
        backends,
        unpaired: diff
            .unpaired
            .iter()
            .map(|(in_a, id)| UnpairedJson {
                run: if *in_a { "a" } else { "b" },
                backend: id.clone(),
            })
            .collect(),
        regression: diff.any_regression(),
    }
}

/// The comparison as GitHub markdown; model text is escaped.
pub fn markdown(diff: &RunDiff) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail.
    let _ = write_markdown(&mut md, diff);
    md
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn points(v: f64) -> String {
    format!("{:+.1}", v * 100.0)
}

fn label_of(d: &BackendDiff) -> String {
    if d.id_a == d.id_b {
        format!("`{}`", cell(&d.id_a))
    } else {
        format!("`{}` → `{}`", cell(&d.id_a), cell(&d.id_b))
    }
}

fn write_markdown(md: &mut String, diff: &RunDiff) -> std::fmt::Result {
    let (a, b) = (&diff.a, &diff.b);
    writeln!(md, "# {}: run A against run B\n", cell(&b.meta.suite.name))?;
    writeln!(
        md,
        "- **A**: `{}`, started {}",
        cell(&a.dir.display().to_string()),
        a.meta.started_at
    )?;
    writeln!(
        md,
        "- **B**: `{}`, started {}",
        cell(&b.dir.display().to_string()),
        b.meta.started_at
    )?;
    writeln!(
        md,
        "- {} items in both runs (A has {}, B has {})",
        diff.shared_items,
        a.meta.items.len(),
        b.meta.items.len()
    )?;
    if diff.suite_changed {
        writeln!(
            md,
            "- **Suite changed**: the suite file differs (SHA-256 `{}…` in A, `{}…` in B); items are paired by id",
            excerpt(&a.meta.suite.sha256, 12).trim_end_matches('…'),
            excerpt(&b.meta.suite.sha256, 12).trim_end_matches('…')
        )?;
    }
    for (in_a, id) in &diff.unpaired {
        let (here, there) = if *in_a { ("A", "B") } else { ("B", "A") };
        writeln!(
            md,
            "- `{}` is only in run {here}; pair it with --pair if it has another id in run {there}",
            cell(id)
        )?;
    }
    writeln!(md)?;

    writeln!(
        md,
        "Change = accuracy in B − accuracy in A over the items both runs answered, with a 95% paired interval (Newcombe; with several samples per item, the mean of per-item differences). A change is significant when its interval excludes 0.\n"
    )?;
    writeln!(md, "| backend | items | A | B | change (points, 95% CI) | p | verdict | cost per correct A → B |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for d in &diff.backends {
        let verdict = if d.items_compared == 0 {
            "no shared answers"
        } else if d.regressed() {
            "**worse**"
        } else if d.improved() {
            "better"
        } else {
            "no detectable change"
        };
        let cost = match (d.per_correct_a, d.per_correct_b) {
            (Some(x), Some(y)) => format!("{} → {}", money(x.estimate), money(y.estimate)),
            (Some(x), None) => format!("{} → —", money(x.estimate)),
            (None, Some(y)) => format!("— → {}", money(y.estimate)),
            (None, None) => "—".into(),
        };
        let i = &d.difference;
        writeln!(
            md,
            "| {} | {} | {} | {} | {} ({}…{}) | {} | {verdict} | {cost} |",
            label_of(d),
            d.items_compared,
            pct(d.accuracy_a),
            pct(d.accuracy_b),
            points(i.estimate),
            points(i.low),
            points(i.high),
            p_number(d.p_value),
        )?;
    }
    writeln!(md)?;

    for d in &diff.backends {
        writeln!(md, "## {}\n", label_of(d))?;
        let (wa, wb) =
            (&a.analysis.scores.backends[d.index_a], &b.analysis.scores.backends[d.index_b]);
        writeln!(
            md,
            "Whole-run accuracy (as in each results.json): {} of {} answered in A, {} of {} in B.\n",
            pct(wa.accuracy.estimate),
            wa.answered,
            pct(wb.accuracy.estimate),
            wb.answered
        )?;
        if let Some(c) = d.counts {
            writeln!(
                md,
                "Over {} items: {} right in both, {} right only in A, {} right only in B, {} wrong in both.\n",
                d.items_compared, c.both_correct, c.only_first, c.only_second, c.both_wrong
            )?;
        }
        if let (Some(x), Some(y)) = (d.per_correct_a, d.per_correct_b) {
            writeln!(
                md,
                "Cost per correct answer: {} in A ({}–{}), {} in B ({}–{}); change {}{}.\n",
                money(x.estimate),
                money(x.low),
                money(x.high),
                money(y.estimate),
                money(y.low),
                money(y.high),
                if y.estimate > x.estimate {
                    "+"
                } else if y.estimate < x.estimate {
                    "−"
                } else {
                    "±"
                },
                money((y.estimate - x.estimate).abs())
            )?;
        }
        if !d.classes.is_empty() {
            writeln!(md, "| class | items A | recall A | items B | recall B | change |")?;
            writeln!(md, "|---|---|---|---|---|---|")?;
            for c in &d.classes {
                let r = |v: Option<f64>| v.map_or("—".to_string(), pct);
                let change = match (c.recall_a, c.recall_b) {
                    (Some(x), Some(y)) => points(y - x),
                    _ => "—".into(),
                };
                writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {change} |",
                    cell(&c.label),
                    c.support_a,
                    r(c.recall_a),
                    c.support_b,
                    r(c.recall_b)
                )?;
            }
            writeln!(md)?;
        }
        write_flips(md, "Right in A, wrong in B", &d.worse)?;
        write_flips(md, "Wrong in A, right in B", &d.better)?;
    }
    Ok(())
}

fn write_flips(md: &mut String, title: &str, flips: &[Flip]) -> std::fmt::Result {
    if flips.is_empty() {
        return writeln!(md, "{title}: none.\n");
    }
    let shown = flips.len().min(FLIPS_SHOWN);
    writeln!(md, "{title} ({shown} of {} shown):\n", flips.len())?;
    writeln!(md, "| item | gold | reply in A | reply in B |")?;
    writeln!(md, "|---|---|---|---|")?;
    for f in &flips[..shown] {
        let gold = if f.gold_a == f.gold_b || f.gold_b.is_empty() {
            cell(&f.gold_a)
        } else {
            format!("{} → {}", cell(&f.gold_a), cell(&f.gold_b))
        };
        let reply = |r: &Option<String>| match r {
            Some(text) => cell(&excerpt(text, REPLY_CHARS)),
            None => "*(no reply)*".to_string(),
        };
        writeln!(
            md,
            "| {} | {gold} | {} | {} |",
            cell(&f.id),
            reply(&f.reply_a),
            reply(&f.reply_b)
        )?;
    }
    writeln!(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_twenty_flips_are_shown_with_their_count() {
        let flips: Vec<Flip> = (0..57)
            .map(|i| Flip {
                id: format!("item-{i}"),
                gold_a: "a".into(),
                gold_b: "a".into(),
                answer_a: Some("a".into()),
                answer_b: None,
                reply_a: Some("a".into()),
                reply_b: Some("`rm -rf` | <img>".into()),
                accuracy_a: 1.0,
                accuracy_b: 0.0,
            })
            .collect();
        let mut md = String::new();
        write_flips(&mut md, "Right in A, wrong in B", &flips).unwrap();
        assert!(md.starts_with("Right in A, wrong in B (20 of 57 shown):"), "{md}");
        assert_eq!(md.matches("| item-").count(), 20);
        assert!(md.contains("| item-19 |") && !md.contains("| item-20 |"));
        assert!(md.contains("'rm -rf' \\| &lt;img&gt;"), "{md}");
    }
}
