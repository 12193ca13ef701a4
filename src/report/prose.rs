//! Every sentence a report says: verdicts, the recommendation, break-even and warnings. Each
//! reads figures computed in `score`; none computes its own.

use crate::journal::Skipped;
use crate::score::compare::Comparison;
use crate::score::CONFIDENCE;
use crate::text::{group_thousands, p_number, p_phrase};

use super::results::{BackendResult, ComparisonResult};

/// A comparison too small to decide, as a warning.
pub fn underpowered(first: &str, second: &str, answered_by_both: u64, needed: u64) -> String {
    format!(
        "The suite is too small to tell `{first}` and `{second}` apart: {} items were answered by both, and detecting a 3-point difference at 80% power needs about {}.",
        group_thousands(answered_by_both),
        group_thousands(needed)
    )
}

/// Where a fixed-price backend `b` starts to cost less than a per-token backend `a`.
pub fn break_even(a: &str, b: &str, volume: Option<f64>, sustained: Option<f64>) -> String {
    let mut sentence = match volume {
        Some(v) => format!(
            "Above about {} requests a day, `{b}` (fixed price) costs less than `{a}` (per token) at `{a}`'s measured tokens per request",
            group_thousands(v.ceil() as u64)
        ),
        None => format!("`{b}` (fixed price) never costs less than `{a}` (per token) within one instance's capacity"),
    };
    // Each extra instance is a step in the fixed cost, so the per-token backend can win
    // again just past a step; say from where the fixed one stays cheaper.
    match sustained {
        Some(s) if volume.is_none_or(|v| s > v * (1.0 + 1e-9)) => {
            sentence.push_str(&format!(
                "; it stays cheaper at every volume above about {} a day",
                group_thousands(s.ceil() as u64)
            ));
        }
        _ => {}
    }
    sentence.push('.');
    sentence
}

/// The most accurate backend, and the cheapest per correct answer among those not detectably
/// worse than it: the choice the report exists to support.
pub fn recommendation(
    backends: &[BackendResult],
    comparisons: &[ComparisonResult],
    requests_per_day: Option<f64>,
    skipped: &[Skipped],
) -> String {
    let answered: Vec<&BackendResult> = backends.iter().filter(|b| b.answered > 0).collect();
    let Some(best) = answered
        .iter()
        .copied()
        .max_by(|a, b| a.accuracy.estimate.total_cmp(&b.accuracy.estimate).then(b.id.cmp(&a.id)))
    else {
        return "No backend answered any item, so there is nothing to recommend.".into();
    };
    // For extraction, accuracy is the exact-match rate; say so.
    let extraction = best.exact_match.is_some();
    let pct = |b: &BackendResult| {
        format!(
            "{:.1}%{}",
            b.accuracy.estimate * 100.0,
            if extraction { " exact match" } else { "" }
        )
    };
    if answered.len() == 1 {
        let more = if skipped.is_empty() {
            String::new()
        } else {
            " Set the key variables of the skipped backends to compare them with it.".to_string()
        };
        let what = if extraction { pct(best) } else { format!("{} accurate", pct(best)) };
        return format!(
            "Only `{}` ran ({what}); there is nothing to compare it with.{more}",
            best.id
        );
    }
    let not_worse = |b: &BackendResult| {
        b.id == best.id
            || comparisons.iter().any(|c| {
                ((c.first == b.id && c.second == best.id)
                    || (c.first == best.id && c.second == b.id))
                    && c.p_value_holm >= 1.0 - CONFIDENCE
            })
    };
    let per_correct = |b: &BackendResult| b.cost.per_correct_usd.map(|c| c.estimate);
    let cheapest = answered
        .iter()
        .copied()
        .filter(|b| not_worse(b))
        .filter_map(|b| Some((b, per_correct(b)?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let mut text = if extraction {
        format!("`{}` has the most exactly matched records ({}).", best.id, pct(best))
    } else {
        format!("`{}` is the most accurate backend ({}).", best.id, pct(best))
    };
    match cheapest {
        Some((c, cost)) if c.id == best.id => text.push_str(&format!(" It is also the cheapest per correct answer among those not detectably worse (${cost:.6}).")),
        Some((c, cost)) => {
            text.push_str(&format!(
                " `{}` ({}) is not detectably worse and costs ${cost:.6} per correct answer",
                c.id,
                pct(c)
            ));
            match per_correct(best) {
                Some(best_cost) => text.push_str(&format!(" against ${best_cost:.6}")),
                None => text.push_str(&format!(" (the price of `{}` is unknown)", best.id)),
            }
            if let (Some(rpd), Some(a), Some(b)) = (requests_per_day, best.cost.annual_usd, c.cost.annual_usd) {
                if b < a {
                    text.push_str(&format!(
                        "; at {} requests a day it would save about ${} a year",
                        group_thousands(rpd.round() as u64),
                        group_thousands((a - b).round() as u64)
                    ));
                }
            }
            text.push_str(". Prefer it unless the remaining difference matters for the task.");
        }
        None => text.push_str(&format!(
            " No price is known for `{}` or for the backends not detectably worse than it; add `pricing:` to compare their costs.",
            best.id
        )),
    }
    if comparisons.iter().any(|c| {
        c.items_needed_for_3_points
            .is_some_and(|n| n > c.both_correct + c.only_first + c.only_second + c.both_wrong)
    }) {
        text.push_str(" Some comparisons are underpowered (see the warnings): more items would sharpen this choice.");
    }
    text
}

/// One sentence a reader can act on. The decision uses the Holm-adjusted p-value.
pub fn verdict(first: &str, second: &str, c: &Comparison, pairs: usize) -> String {
    let n = c.counts.total().unwrap_or(0);
    if n == 0 {
        return format!(
            "`{first}` and `{second}` answered no item in common, so they cannot be compared."
        );
    }
    let p = if pairs > 1 {
        format!("{}, Holm-adjusted {}", p_phrase(c.p_value), p_number(c.p_value_holm))
    } else {
        p_phrase(c.p_value)
    };
    let (d, lo, hi) =
        (c.difference.estimate * 100.0, c.difference.low * 100.0, c.difference.high * 100.0);
    let level = (CONFIDENCE * 100.0).round();
    if c.p_value_holm < 1.0 - CONFIDENCE {
        let (winner, loser, d, lo, hi) =
            if d > 0.0 { (second, first, d, lo, hi) } else { (first, second, -d, -hi, -lo) };
        format!(
            "`{winner}` beats `{loser}` by {d:.1} points ({level}% CI {lo:.1} to {hi:.1}, {p})."
        )
    } else {
        let need = match c.items_needed {
            Some(items) if items > n => format!("; about {} items would be needed to detect 3 points", group_thousands(items)),
            Some(_) => "; the suite is large enough to detect 3 points, so any real difference is likely smaller".to_string(),
            None => String::new(),
        };
        format!("No detectable difference between `{first}` and `{second}` ({d:+.1} points, {level}% CI {lo:.1} to {hi:.1}, {p}){need}.")
    }
}
