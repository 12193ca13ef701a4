//! Every sentence a report says: verdicts, the recommendation, break-even and warnings. Each
//! reads figures computed in `score`; none computes its own.

use crate::journal::Skipped;
use crate::score::compare::Comparison;
use crate::score::CONFIDENCE;
use crate::stats::decision::{classify, Decision};
use crate::stats::Interval;
use crate::text::group_thousands;

use super::results::{BackendResult, BatchResult, ComparisonResult};

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

/// A backend that ran in batch mode: the provider's batch API, the price its requests were
/// charged at, and each batch with its id, size, status and how long it took from submission to
/// its end.
pub fn batch_mode(id: &str, batch: &BatchResult) -> String {
    let provider = &batch.provider;
    let price = match batch.price_multiplier {
        Some(m) => {
            let pct = format!("{:.1}", m * 100.0);
            format!(
                "priced at {}% of the listed price (the {provider} batch discount)",
                pct.strip_suffix(".0").unwrap_or(&pct)
            )
        }
        None => format!("priced as listed (the price table has no batch discount for {provider})"),
    };
    let batches: Vec<String> = batch
        .batches
        .iter()
        .map(|b| {
            let took = match b.seconds {
                Some(s) => format!("took {}", duration(s)),
                None => "had not ended when the run stopped".to_string(),
            };
            // The id is the server's: only the characters batch ids are made of reach markdown.
            let id: String =
                b.id.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.:".contains(*c)).collect();
            format!(
                "`{id}` ({} request{}, {}) {took}",
                group_thousands(b.requests),
                if b.requests == 1 { "" } else { "s" },
                b.status.replace('_', " ")
            )
        })
        .collect();
    match batches.as_slice() {
        [] => format!("`{id}` ran in batch mode through the {provider} batch API, {price}; every answer came from the response cache, so no batch was submitted."),
        [one] => format!("`{id}` ran in batch mode through the {provider} batch API, {price}: batch {one}."),
        many => format!(
            "`{id}` ran in batch mode through the {provider} batch API, {price}, in {} batches: {}.",
            many.len(),
            many.join("; ")
        ),
    }
}

/// A span of time in words: "3.2 s", "4 min 12 s", "2 h 5 min".
pub fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        return format!("{} min {} s", whole / 60, whole % 60);
    }
    format!("{} h {} min", whole / 3600, (whole % 3600) / 60)
}

/// A confidence level in percent with at most one decimal: "95%", "97.5%", "98.3%".
pub fn level(confidence: f64) -> String {
    let pct = format!("{:.1}", confidence * 100.0);
    format!("{}%", pct.strip_suffix(".0").unwrap_or(&pct))
}

/// A margin in points: "2-point", "1.5-point".
fn margin_points(margin: f64) -> String {
    let pts = format!("{:.1}", margin * 100.0);
    format!("{}-point", pts.strip_suffix(".0").unwrap_or(&pts))
}

/// "97.5% CI 0.9 to 10.1; 95% family-wise over 2 comparisons, Bonferroni" (points), naming the
/// family when several pairs share the report's confidence.
fn ci_text(confidence: f64, pairs: usize, lo: f64, hi: f64) -> String {
    let family = if pairs > 1 {
        format!("; {} family-wise over {pairs} comparisons, Bonferroni", level(CONFIDENCE))
    } else {
        String::new()
    };
    format!("{} CI {lo:.1} to {hi:.1}{family}", level(confidence))
}

/// How `candidate` stands against `best`: the interval of candidate − best and its decision
/// against the margin, read from whichever orientation the comparison was made in.
struct Standing<'a> {
    comparison: &'a ComparisonResult,
    /// Accuracy of the candidate minus accuracy of the best, in points.
    difference: Interval,
    decision: Decision,
}

fn standing<'a>(
    candidate: &str,
    best: &str,
    comparisons: &'a [ComparisonResult],
) -> Option<Standing<'a>> {
    comparisons.iter().find_map(|c| {
        let d = &c.difference;
        // `difference` is second − first.
        let difference = if c.second == candidate && c.first == best {
            Interval { estimate: d.estimate, low: d.low, high: d.high }
        } else if c.first == candidate && c.second == best {
            Interval { estimate: -d.estimate, low: -d.high, high: -d.low }
        } else {
            return None;
        };
        let decision = classify(&difference, c.margin).ok()?;
        Some(Standing { comparison: c, difference, decision })
    })
}

/// "-1.2 points, 97.5% CI -4.0 to 1.6"
fn difference_phrase(s: &Standing) -> String {
    format!(
        "{:+.1} points, {} CI {:.1} to {:.1}",
        s.difference.estimate * 100.0,
        level(s.comparison.difference.confidence),
        s.difference.low * 100.0,
        s.difference.high * 100.0
    )
}

/// The most accurate backend, and the cheapest per correct answer among those shown not worse
/// than it by more than the suite's margin: the choice the report exists to support. Savings are
/// promised only for such a backend; a cheaper one that is worse, or that the suite cannot yet
/// place within the margin, is named with the reason. Unpriced backends are left out of cost
/// conclusions with one note.
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
    let margin = comparisons.first().map_or(crate::score::DEFAULT_MARGIN, |c| c.margin);
    let margin_text = format!("the {} margin", margin_points(margin));
    let per_correct = |b: &BackendResult| b.cost.per_correct_usd.map(|c| c.estimate);
    let shown_not_worse = |b: &BackendResult| {
        b.id == best.id
            || standing(&b.id, &best.id, comparisons).is_some_and(|s| s.decision.is_not_worse())
    };
    let cheapest = answered
        .iter()
        .copied()
        .filter(|b| shown_not_worse(b))
        .filter_map(|b| Some((b, per_correct(b)?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let mut text = if extraction {
        format!("`{}` has the most exactly matched records ({}).", best.id, pct(best))
    } else {
        format!("`{}` is the most accurate backend ({}).", best.id, pct(best))
    };
    match cheapest {
        Some((c, cost)) if c.id == best.id => text.push_str(&format!(
            " It is also the cheapest per correct answer (${cost:.6}) among the backends shown not worse than it by more than {margin_text}."
        )),
        Some((c, cost)) => {
            let s = standing(&c.id, &best.id, comparisons).expect("shown not worse");
            text.push_str(&format!(
                " `{}` ({}) is shown not worse than `{}` by more than {margin_text} ({}) and costs ${cost:.6} per correct answer",
                c.id,
                pct(c),
                best.id,
                difference_phrase(&s)
            ));
            match per_correct(best) {
                Some(best_cost) => text.push_str(&format!(" against ${best_cost:.6}")),
                None => text.push_str(&format!(" (the price of `{}` is unknown)", best.id)),
            }
            if let (Some(rpd), Some(a), Some(b)) =
                (requests_per_day, best.cost.annual_usd, c.cost.annual_usd)
            {
                if b < a {
                    text.push_str(&format!(
                        "; at {} requests a day it would save about ${} a year",
                        group_thousands(rpd.round() as u64),
                        group_thousands((a - b).round() as u64)
                    ));
                }
            }
            text.push_str(". Prefer it unless a difference within the margin matters for the task.");
        }
        None if answered.iter().any(|b| per_correct(b).is_some()) => text.push_str(&format!(
            " No backend shown not worse than it by more than {margin_text} has a known price, so no cost conclusion is drawn."
        )),
        None => {}
    }
    // The cheapest priced backend below the chosen cost that is not shown within the margin:
    // say why no savings are promised for it.
    let limit = cheapest.map_or(f64::INFINITY, |(_, cost)| cost);
    let passed_over = answered
        .iter()
        .copied()
        .filter(|b| !shown_not_worse(b))
        .filter_map(|b| Some((b, per_correct(b)?)))
        .filter(|&(_, cost)| cost < limit)
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((b, cost)) = passed_over {
        let lead = if cheapest.is_some() {
            format!("`{}` costs less (${cost:.6} per correct answer, {})", b.id, pct(b))
        } else {
            format!("`{}` has a known price (${cost:.6} per correct answer, {})", b.id, pct(b))
        };
        match standing(&b.id, &best.id, comparisons) {
            Some(s) if s.decision == Decision::Worse => text.push_str(&format!(
                " {lead} but is worse than `{}` ({}), so no savings are claimed for it.",
                best.id,
                difference_phrase(&s)
            )),
            Some(s) => {
                let c = s.comparison;
                let n = c.both_correct + c.only_first + c.only_second + c.both_wrong;
                let need = match c.items_to_settle {
                    Some(items) => format!(
                        "; about {} items answered by both would settle it ({} now)",
                        group_thousands(items),
                        group_thousands(n)
                    ),
                    None => String::new(),
                };
                text.push_str(&format!(
                    " {lead}, but the suite cannot yet tell whether it is within {margin_text} of `{}` ({}){need}, so no savings are claimed for it.",
                    best.id,
                    difference_phrase(&s)
                ));
            }
            None => text.push_str(&format!(
                " {lead}, but it was not compared with `{}`, so no savings are claimed for it.",
                best.id
            )),
        }
    }
    let names = |bs: &[String]| match bs.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => bs.join(""),
    };
    let unpriced: Vec<String> = answered
        .iter()
        .filter(|b| per_correct(b).is_none() && b.cost.pricing.is_none())
        .map(|b| format!("`{}`", b.id))
        .collect();
    if !unpriced.is_empty() {
        text.push_str(&format!(
            " No price is known for {}, so {} left out of cost conclusions; add `pricing:` to include {}.",
            names(&unpriced),
            if unpriced.len() == 1 { "it is" } else { "they are" },
            if unpriced.len() == 1 { "it" } else { "them" }
        ));
    }
    // Priced, but with nothing to divide by: a cost per correct answer does not exist.
    let none_correct: Vec<String> = answered
        .iter()
        .filter(|b| per_correct(b).is_none() && b.cost.pricing.is_some() && b.correct == 0)
        .map(|b| format!("`{}`", b.id))
        .collect();
    if !none_correct.is_empty() {
        text.push_str(&format!(
            " {} answered no item correctly, so {} no cost per correct answer.",
            names(&none_correct),
            if none_correct.len() == 1 { "it has" } else { "they have" }
        ));
    }
    // Priced per month, but no volume to spread the month over.
    let no_volume: Vec<String> = answered
        .iter()
        .filter(|b| per_correct(b).is_none() && b.cost.pricing.is_some() && b.correct > 0)
        .map(|b| format!("`{}`", b.id))
        .collect();
    if !no_volume.is_empty() {
        text.push_str(&format!(
            " {} {} a monthly price but no cost per request without `volume.requests_per_day`, so {} left out of cost conclusions.",
            names(&no_volume),
            if no_volume.len() == 1 { "has" } else { "have" },
            if no_volume.len() == 1 { "it is" } else { "they are" }
        ));
    }
    // The comparisons the warnings call too small: no detectable difference, fewer items than a
    // 3-point difference needs.
    if comparisons.iter().any(|c| {
        c.difference.low <= 0.0
            && c.difference.high >= 0.0
            && c.items_needed_for_3_points
                .is_some_and(|n| n > c.both_correct + c.only_first + c.only_second + c.both_wrong)
    }) {
        text.push_str(" Some comparisons are underpowered (see the warnings): more items would sharpen this choice.");
    }
    text
}

/// One sentence a reader can act on, read from the difference interval beside it (at the
/// family level when several pairs are compared): "beats" exactly when the interval excludes
/// 0, and the margin decision from the same interval.
pub fn verdict(first: &str, second: &str, c: &Comparison, pairs: usize) -> String {
    let n = c.counts.total().unwrap_or(0);
    if n == 0 {
        return format!(
            "`{first}` and `{second}` answered no item in common, so they cannot be compared."
        );
    }
    let (d, lo, hi) =
        (c.difference.estimate * 100.0, c.difference.low * 100.0, c.difference.high * 100.0);
    let margin = format!("the {} margin", margin_points(c.margin));
    if c.difference.low > 0.0 || c.difference.high < 0.0 {
        let (winner, loser, d, lo, hi) =
            if d > 0.0 { (second, first, d, lo, hi) } else { (first, second, -d, -hi, -lo) };
        let within = if c.decision == Decision::Equivalent {
            format!(", a difference within {margin}")
        } else {
            String::new()
        };
        let ci = ci_text(c.confidence, pairs, lo, hi);
        format!("`{winner}` beats `{loser}` by {d:.1} points ({ci}){within}.")
    } else {
        let decision = match c.decision {
            Decision::Equivalent => format!("they are equivalent within {margin}"),
            Decision::NotWorse => {
                format!("`{second}` is not worse than `{first}` by more than {margin}")
            }
            _ => match c.items_to_settle {
                Some(items) => format!(
                    "the suite cannot yet tell whether they are within {margin}, and about {} items would settle it",
                    group_thousands(items)
                ),
                None => format!("the suite cannot yet tell whether they are within {margin}"),
            },
        };
        let ci = ci_text(c.confidence, pairs, lo, hi);
        format!("No detectable difference between `{first}` and `{second}` ({d:+.1} points, {ci}); {decision}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::compare::DifferenceMethod;
    use crate::stats::PairedCounts;

    fn comparison(low: f64, estimate: f64, high: f64, confidence: f64) -> Comparison {
        let difference = Interval { estimate, low, high };
        let margin = 0.02;
        Comparison {
            first: 0,
            second: 1,
            counts: PairedCounts {
                both_correct: 90,
                only_first: 4,
                only_second: 10,
                both_wrong: 6,
            },
            difference,
            confidence,
            margin,
            decision: classify(&difference, margin).unwrap(),
            items_to_settle: Some(400),
            p_value: 0.037,
            p_value_holm: 0.074,
            macro_f1_difference: None,
            micro_f1_difference: None,
            items_needed: Some(300),
            method: DifferenceMethod::NewcombeMcNemar,
        }
    }

    /// The verdict is read from the interval beside it, whatever the Holm p-value says: an
    /// interval that excludes 0 "beats", one that includes it is "no detectable difference".
    #[test]
    fn the_verdict_never_contradicts_its_interval() {
        // "+5.5 points, CI 0.9 to 10.1, Holm 0.074": the interval excludes 0.
        let v = verdict("a", "b", &comparison(0.009, 0.055, 0.101, 0.975), 2);
        assert_eq!(
            v,
            "`b` beats `a` by 5.5 points (97.5% CI 0.9 to 10.1; 95% family-wise over 2 comparisons, Bonferroni)."
        );
        // The same difference at the family level, wider and including 0.
        let v = verdict("a", "b", &comparison(-0.004, 0.055, 0.112, 0.975), 2);
        assert!(v.starts_with("No detectable difference") && v.contains("97.5% CI -0.4"), "{v}");
        assert!(v.ends_with("`b` is not worse than `a` by more than the 2-point margin."), "{v}");
        let v = verdict("a", "b", &comparison(-0.03, 0.01, 0.05, 0.975), 2);
        assert!(v.contains("cannot yet tell") && v.contains("about 400 items"), "{v}");
        // One pair: the report's own level.
        let v = verdict("a", "b", &comparison(-0.01, 0.002, 0.012, 0.95), 1);
        assert!(
            v.contains(
                "(+0.2 points, 95% CI -1.0 to 1.2); they are equivalent within the 2-point margin"
            ),
            "{v}"
        );
        for (lo, hi) in [(-0.05, -0.001), (-0.001, 0.05), (0.0, 0.03), (-0.03, 0.0), (0.001, 0.01)]
        {
            let v = verdict("a", "b", &comparison(lo, (lo + hi) / 2.0, hi, 0.95), 1);
            assert_eq!(v.contains("beats"), lo > 0.0 || hi < 0.0, "[{lo}, {hi}]: {v}");
        }
    }

    #[test]
    fn levels_and_margins_read_naturally() {
        assert_eq!(level(0.95), "95%");
        assert_eq!(level(0.975), "97.5%");
        assert_eq!(level(1.0 - 0.05 / 3.0), "98.3%");
        assert_eq!(margin_points(0.02), "2-point");
        assert_eq!(margin_points(0.015), "1.5-point");
    }
}
