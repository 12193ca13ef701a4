//! Every figure a report shows, computed once from a run's journal: per-backend scores and their
//! bootstrap and clustered intervals, costs, pairwise comparisons, the comparisons too small to
//! decide, and break-even volumes. Reports and the gate read an [`Analysis`]; they compute
//! nothing of their own.

use std::collections::HashMap;
use std::path::Path;

use crate::error::Result;
use crate::journal::RunMeta;
use crate::stats::decision::family_confidence;
use crate::stats::{BootstrapConfig, Interval};

use super::compare::{self, Comparison};
use super::cost::{self, CostSummary};
use super::extraction;
use super::{clustered_accuracy, score_run, ClusteredAccuracy, RunScores, CONFIDENCE};

/// Seed of every bootstrap in a report, so a rebuilt report has identical intervals.
pub const BOOTSTRAP_SEED: u64 = 20_261_127;

/// The bootstrap every report figure uses: seeded, at the report's confidence.
pub fn bootstrap_config() -> BootstrapConfig {
    BootstrapConfig { seed: BOOTSTRAP_SEED, confidence: CONFIDENCE, ..BootstrapConfig::default() }
}

/// A run's scores with everything derived from them.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub scores: RunScores,
    pub bootstrap: BootstrapConfig,
    /// Aligned with `scores.backends`.
    pub backends: Vec<BackendFigures>,
    pub comparisons: Vec<Comparison>,
    /// How many pairs were compared: the family of the Holm adjustment and of the Bonferroni
    /// level of the difference intervals.
    pub pairs_compared: usize,
    /// Comparisons with no significant difference whose suite is too small to detect 3 points.
    pub underpowered: Vec<Underpowered>,
    pub break_even: Vec<BreakEven>,
}

/// One backend's derived figures.
#[derive(Debug, Clone)]
pub struct BackendFigures {
    /// Extraction only: micro precision, recall, F1, macro precision, recall, F1 intervals.
    pub overall: Option<[Option<Interval>; 6]>,
    /// Bootstrap interval of the macro-F1 (over classes, or over fields for extraction).
    pub macro_f1: Option<Interval>,
    /// Accuracy with errors clustered by the data's `group` column.
    pub clustered_by_group: Option<ClusteredAccuracy>,
    pub cost: CostSummary,
}

/// A comparison that found no difference on a suite too small to detect one of 3 points.
#[derive(Debug, Clone, PartialEq)]
pub struct Underpowered {
    pub first: usize,
    pub second: usize,
    pub answered_by_both: u64,
    pub items_needed: u64,
}

/// The volume above which a fixed-price backend costs less than a per-token one.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakEven {
    pub per_token: usize,
    pub fixed: usize,
    /// Requests a day; `None` when the fixed one never costs less within one instance.
    pub requests_per_day: Option<f64>,
    /// Requests a day above which the fixed one stays cheaper at every volume.
    pub sustained_requests_per_day: Option<f64>,
}

/// Scores the run in `dir` and derives every figure its reports show.
pub fn analyse(dir: &Path, meta: &RunMeta) -> Result<Analysis> {
    let scores = score_run(dir, meta)?;
    derive(meta, scores)
}

/// Every figure derived from a run's scores (for a reader that scored the journal itself).
pub fn derive(meta: &RunMeta, scores: RunScores) -> Result<Analysis> {
    let bootstrap = bootstrap_config();
    let backends = (0..scores.backends.len())
        .map(|index| backend_figures(meta, &scores, index, &bootstrap))
        .collect();
    let pairs = if meta.compare.is_empty() {
        compare::all_pairs(&scores)
    } else {
        let index = |id: &str| scores.backends.iter().position(|b| b.id == id && b.answered > 0);
        meta.compare.iter().filter_map(|(a, b)| Some((index(a)?, index(b)?))).collect()
    };
    // The pairs compared are one family: each interval at the Bonferroni level, so that the
    // verdicts and decisions read from them hold together at the report's confidence.
    let confidence = family_confidence(CONFIDENCE, pairs.len())?;
    let comparisons = compare::compare(&scores, &pairs, confidence, meta.margin, &bootstrap)?;
    let underpowered = comparisons
        .iter()
        .filter_map(|c| {
            let n = c.counts.total().unwrap_or(0);
            // "No detectable difference" is read from the same interval as the verdict.
            let no_difference = c.difference.low <= 0.0 && c.difference.high >= 0.0;
            let needed = c.items_needed.filter(|&needed| needed > n && no_difference)?;
            Some(Underpowered {
                first: c.first,
                second: c.second,
                answered_by_both: n,
                items_needed: needed,
            })
        })
        .collect();
    let break_even = break_even(meta, &scores);
    Ok(Analysis {
        pairs_compared: pairs.len(),
        scores,
        bootstrap,
        backends,
        comparisons,
        underpowered,
        break_even,
    })
}

fn backend_figures(
    meta: &RunMeta,
    scores: &RunScores,
    index: usize,
    bootstrap: &BootstrapConfig,
) -> BackendFigures {
    let s = &scores.backends[index];
    let overall = scores.extraction.as_ref().map(|e| {
        extraction::overall_intervals(&e.backends[index], s.epochs, e.fields.len(), bootstrap)
    });
    let macro_f1 = match &overall {
        Some(o) => o[5],
        None => compare::macro_f1_interval(scores, index, bootstrap),
    };
    let clustered_by_group =
        meta.groups.as_ref().and_then(|groups| clustered_by_group(groups, &s.outcomes, s.epochs));
    BackendFigures {
        overall,
        macro_f1,
        clustered_by_group,
        cost: cost::summarize(meta, scores, index, bootstrap),
    }
}

/// Accuracy over answered items with errors clustered by group; `None` with fewer than two groups.
fn clustered_by_group(
    groups: &[String],
    outcomes: &[super::Outcome],
    epochs: usize,
) -> Option<ClusteredAccuracy> {
    // Groups as small integers, in order of first appearance.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let cluster_of_item: Vec<usize> = groups
        .iter()
        .map(|g| {
            let next = ids.len();
            *ids.entry(g.as_str()).or_insert(next)
        })
        .collect();
    if cluster_of_item.len() * epochs.max(1) != outcomes.len() {
        return None;
    }
    clustered_accuracy(outcomes, |s| cluster_of_item[s / epochs.max(1)])
}

/// Break-even volumes for every pair of a per-token and a fixed-price backend.
fn break_even(meta: &RunMeta, scores: &RunScores) -> Vec<BreakEven> {
    let fixed_price = |i: usize| {
        meta.backends[i]
            .price
            .as_ref()
            .map(|p| matches!(p.pricing, crate::cost::Pricing::Fixed { .. }))
    };
    let mut out = Vec::new();
    for pt in 0..meta.backends.len() {
        for fx in 0..meta.backends.len() {
            if fixed_price(pt) != Some(false)
                || fixed_price(fx) != Some(true)
                || scores.backends[pt].answered == 0
            {
                continue;
            }
            let (requests_per_day, sustained_requests_per_day) =
                cost::break_even(meta, scores, pt, fx);
            out.push(BreakEven {
                per_token: pt,
                fixed: fx,
                requests_per_day,
                sustained_requests_per_day,
            });
        }
    }
    out
}
