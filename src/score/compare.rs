//! Paired comparisons between backends, and bootstrap intervals for metrics without a closed
//! form. Backends answer the same items, so every comparison is paired: the 2×2 table of
//! right/wrong over the items both answered, Newcombe's hybrid score interval for the difference
//! in accuracy, McNemar's exact test on the discordant pairs, and Holm's correction across all
//! pairs of a run. Bootstrap resamples item indices with one seed for every backend, so the
//! resamples are the same items for all of them (a joint, paired bootstrap).

use crate::error::Result;
use crate::stats::{
    bootstrap_interval, holm_adjust, mcnemar_exact_p, paired_difference_interval,
    sample_size_paired, BootstrapConfig, Interval, PairedCounts,
};

use super::{Outcome, RunScores};

/// The smallest difference in accuracy a comparison is expected to resolve, for the "items
/// needed" estimate: 3 points.
pub const PLANNING_DIFFERENCE: f64 = 0.03;
/// The power used for sample-size estimates.
pub const PLANNING_POWER: f64 = 0.8;
/// The difference in accuracy that matters when a suite does not say (`decision.margin`): 2 points.
pub const DEFAULT_MARGIN: f64 = 0.02;

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub first: usize,
    pub second: usize,
    /// Over the items both backends answered.
    pub counts: PairedCounts,
    /// Accuracy of second minus accuracy of first, over the shared items.
    pub difference: Interval,
    pub p_value: f64,
    pub p_value_holm: f64,
    /// Macro-F1 of second minus first, paired percentile bootstrap (classification).
    pub macro_f1_difference: Option<Interval>,
    /// Micro-F1 over fields of second minus first, paired percentile bootstrap (extraction).
    pub micro_f1_difference: Option<Interval>,
    /// Items needed to detect [`PLANNING_DIFFERENCE`] with [`PLANNING_POWER`], given the
    /// observed share of discordant items; `None` when nothing is discordant.
    pub items_needed: Option<u64>,
    pub method: DifferenceMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DifferenceMethod {
    /// One sample per item: Newcombe's interval and McNemar's exact test.
    NewcombeMcNemar,
    /// Several samples per item: the mean over items of the per-item difference in accuracy,
    /// with a normal interval and test (the item is the unit, as in Miller 2024).
    PairedItemMeans,
}

/// Compares each pair `(first, second)` of backend indices.
pub fn compare(
    scores: &RunScores,
    pairs: &[(usize, usize)],
    confidence: f64,
    bootstrap: &BootstrapConfig,
) -> Result<Vec<Comparison>> {
    let mut out = Vec::with_capacity(pairs.len());
    for &(a, b) in pairs {
        let (ea, eb) = (scores.backends[a].epochs, scores.backends[b].epochs);
        let (oa, ob) = (&scores.backends[a].outcomes, &scores.backends[b].outcomes);
        let mut counts = PairedCounts::default();
        // Samples are paired by item and epoch; with different epoch counts, by item and the
        // epochs both have.
        let shared = ea.min(eb);
        let pairs_of_samples = (0..scores.items.len())
            .flat_map(|i| (0..shared).map(move |e| (i * ea + e, i * eb + e)));
        for (x, y) in pairs_of_samples.map(|(sa, sb)| (oa[sa], ob[sb])) {
            match (x.correct(), y.correct()) {
                (Some(true), Some(true)) => counts.both_correct += 1,
                (Some(true), Some(false)) => counts.only_first += 1,
                (Some(false), Some(true)) => counts.only_second += 1,
                (Some(false), Some(false)) => counts.both_wrong += 1,
                _ => {}
            }
        }
        let n = counts.total()?;
        let discordant = counts.only_first + counts.only_second;
        let items_needed = if n > 0 && discordant > 0 {
            let psi = discordant as f64 / n as f64;
            sample_size_paired(
                psi.max(PLANNING_DIFFERENCE),
                PLANNING_DIFFERENCE,
                PLANNING_POWER,
                confidence,
            )
            .ok()
        } else {
            None
        };
        let (macro_f1_difference, micro_f1_difference) = match &scores.extraction {
            Some(e) => (
                None,
                super::extraction::micro_f1_difference(
                    (&e.backends[a], ea),
                    (&e.backends[b], eb),
                    e.fields.len(),
                    bootstrap,
                ),
            ),
            None => {
                let d = bootstrap_interval(scores.items.len(), bootstrap, |idx| {
                    macro_f1_of(
                        &scores.backends[b].outcomes,
                        eb,
                        &scores.gold,
                        scores.labels.len(),
                        idx,
                    ) - macro_f1_of(
                        &scores.backends[a].outcomes,
                        ea,
                        &scores.gold,
                        scores.labels.len(),
                        idx,
                    )
                });
                (d.ok().map(|b| b.interval), None)
            }
        };
        let (difference, p_value, method) = if ea == 1 && eb == 1 {
            (
                paired_difference_interval(&counts, confidence)?,
                mcnemar_exact_p(counts.only_first, counts.only_second)?,
                DifferenceMethod::NewcombeMcNemar,
            )
        } else {
            let (d, p) = crate::stats::paired_mean_difference(
                &item_differences(oa, ea, ob, eb, scores.items.len()),
                confidence,
            )?;
            (d, p, DifferenceMethod::PairedItemMeans)
        };
        out.push(Comparison {
            first: a,
            second: b,
            counts,
            difference,
            p_value,
            p_value_holm: f64::NAN,
            macro_f1_difference,
            micro_f1_difference,
            items_needed,
            method,
        });
    }
    let adjusted = holm_adjust(&out.iter().map(|c| c.p_value).collect::<Vec<_>>())?;
    for (c, p) in out.iter_mut().zip(adjusted) {
        c.p_value_holm = p;
    }
    Ok(out)
}

/// Per item, the accuracy of second minus the accuracy of first on that item's answered samples;
/// items either backend left unanswered are left out.
fn item_differences(
    oa: &[Outcome],
    ea: usize,
    ob: &[Outcome],
    eb: usize,
    items: usize,
) -> Vec<f64> {
    let mean_of = |o: &[Outcome], e: usize, i: usize| {
        let answered: Vec<bool> =
            o[i * e..(i + 1) * e].iter().filter_map(|x| x.correct()).collect();
        (!answered.is_empty())
            .then(|| answered.iter().filter(|&&c| c).count() as f64 / answered.len() as f64)
    };
    (0..items).filter_map(|i| Some(mean_of(ob, eb, i)? - mean_of(oa, ea, i)?)).collect()
}

/// Every unordered pair of backends that answered at least one item, in run order.
pub fn all_pairs(scores: &RunScores) -> Vec<(usize, usize)> {
    let active: Vec<usize> =
        (0..scores.backends.len()).filter(|&i| scores.backends[i].answered > 0).collect();
    let mut pairs = Vec::new();
    for (i, &a) in active.iter().enumerate() {
        for &b in &active[i + 1..] {
            pairs.push((a, b));
        }
    }
    pairs
}

/// Macro-F1 with its percentile bootstrap interval.
pub fn macro_f1_interval(
    scores: &RunScores,
    backend: usize,
    bootstrap: &BootstrapConfig,
) -> Option<Interval> {
    let (outcomes, epochs) = (&scores.backends[backend].outcomes, scores.backends[backend].epochs);
    bootstrap_interval(scores.items.len(), bootstrap, |idx| {
        macro_f1_of(outcomes, epochs, &scores.gold, scores.labels.len(), idx)
    })
    .ok()
    .map(|b| b.interval)
}

/// Macro-F1 over the answered items among `indices` (with repeats), averaged over the labels
/// present as gold or prediction — the same definition as the point estimate.
pub fn macro_f1_of(
    outcomes: &[Outcome],
    epochs: usize,
    gold: &[Option<u16>],
    n_labels: usize,
    indices: &[usize],
) -> f64 {
    let mut tp = vec![0u32; n_labels];
    let mut predicted = vec![0u32; n_labels];
    let mut support = vec![0u32; n_labels];
    let mut any = false;
    for s in indices.iter().flat_map(|&i| i * epochs..(i + 1) * epochs) {
        if let (Outcome::Answered { predicted: p, .. }, Some(g)) = (outcomes[s], gold[s / epochs]) {
            any = true;
            let g = usize::from(g);
            support[g] += 1;
            if let Some(p) = p {
                let p = usize::from(p);
                predicted[p] += 1;
                if p == g {
                    tp[g] += 1;
                }
            }
        }
    }
    if !any {
        return f64::NAN;
    }
    let mut sum = 0.0;
    let mut present = 0usize;
    for c in 0..n_labels {
        if support[c] == 0 && predicted[c] == 0 {
            continue;
        }
        present += 1;
        let precision =
            if predicted[c] == 0 { 0.0 } else { f64::from(tp[c]) / f64::from(predicted[c]) };
        let recall = if support[c] == 0 { 0.0 } else { f64::from(tp[c]) / f64::from(support[c]) };
        if precision + recall > 0.0 {
            sum += 2.0 * precision * recall / (precision + recall);
        }
    }
    if present == 0 {
        f64::NAN
    } else {
        sum / present as f64
    }
}
