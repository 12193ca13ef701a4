//! `results.json`: the versioned, machine-readable summary of a run.
//!
//! Schema version 1. Fields are only ever added; none is renamed or changes meaning.
//! - `accuracy.estimate` = `correct / answered`; `errors` are items whose request failed after
//!   every retry and are never counted as wrong; `missing` are items with no record at all.
//! - Intervals carry their `method` and `confidence`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::journal::{RunMeta, Skipped};
use crate::score::compare::{self, Comparison};
use crate::score::{RunScores, CONFIDENCE};
use crate::stats::{BootstrapConfig, Interval};

pub const RESULTS_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    pub suite: String,
    pub suite_sha256: String,
    pub evalgate_version: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub task: TaskResult,
    pub items: usize,
    pub backends: Vec<BackendResult>,
    pub skipped: Vec<Skipped>,
    /// Paired comparisons of every pair of backends (or the pairs the suite lists).
    pub comparisons: Vec<ComparisonResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonResult {
    pub first: String,
    pub second: String,
    pub both_correct: u64,
    pub only_first: u64,
    pub only_second: u64,
    pub both_wrong: u64,
    /// Accuracy of `second` minus accuracy of `first`, over the items both answered.
    pub difference: DifferenceResult,
    /// McNemar's exact two-sided test on the discordant pairs.
    pub p_value: f64,
    /// Holm-adjusted across all comparisons of the run.
    pub p_value_holm: f64,
    /// Macro-F1 of `second` minus `first`, paired percentile bootstrap.
    pub macro_f1_difference: Option<DifferenceResult>,
    /// Items needed to detect a 3-point difference at 80% power, given the observed discordance.
    pub items_needed_for_3_points: Option<u64>,
    /// The comparison in one sentence.
    pub verdict: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifferenceResult {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub method: String,
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub kind: String,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendResult {
    pub id: String,
    pub provider: String,
    pub model: Option<String>,
    pub strategy: String,
    pub items: u64,
    pub answered: u64,
    pub correct: u64,
    pub invalid: u64,
    pub errors: u64,
    pub missing: u64,
    pub accuracy: IntervalResult,
    pub error_rate: IntervalResult,
    pub macro_f1: MetricResult,
    pub tokens: TokensResult,
    pub latency_ms: LatencyResult,
    pub classes: Vec<ClassResult>,
    /// Rows: gold labels in task order; columns: predicted labels in task order, then invalid.
    pub confusion: Vec<Vec<u64>>,
    pub error_kinds: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntervalResult {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub method: IntervalMethodName,
    pub confidence: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntervalMethodName {
    Wilson,
}

impl IntervalResult {
    fn wilson(interval: Interval) -> Self {
        IntervalResult {
            estimate: interval.estimate,
            low: interval.low,
            high: interval.high,
            method: IntervalMethodName::Wilson,
            confidence: CONFIDENCE,
        }
    }
}

/// A metric with a bootstrap interval; `low`/`high` are null when there is nothing to resample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    pub estimate: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub method: String,
    pub confidence: f64,
    pub resamples: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokensResult {
    pub input: u64,
    pub output: u64,
    /// Mean per answered request.
    pub input_per_request: f64,
    pub output_per_request: f64,
    /// True when some server sent no usage and counts were estimated.
    pub estimated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyResult {
    pub p50: f64,
    pub p95: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassResult {
    pub label: String,
    pub support: u64,
    pub predicted: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Builds the results of a run from its metadata and scores.
pub fn build(meta: &RunMeta, scores: &RunScores) -> Result<Results> {
    let bootstrap = BootstrapConfig { seed: BOOTSTRAP_SEED, confidence: CONFIDENCE, ..BootstrapConfig::default() };
    let backends = meta
        .backends
        .iter()
        .zip(&scores.backends)
        .enumerate()
        .map(|(index, (m, s))| {
            let f1 = compare::macro_f1_interval(scores, index, &bootstrap);
            let per = |total: u64| if s.answered == 0 { 0.0 } else { total as f64 / s.answered as f64 };
            BackendResult {
                id: m.id.clone(),
                provider: m.provider.clone(),
                model: m.model.clone(),
                strategy: m.strategy.clone(),
                items: s.items,
                answered: s.answered,
                correct: s.correct,
                invalid: s.invalid,
                errors: s.errors,
                missing: s.missing,
                accuracy: IntervalResult::wilson(s.accuracy),
                error_rate: IntervalResult::wilson(s.error_rate),
                macro_f1: MetricResult {
                    estimate: s.macro_f1,
                    low: f1.map(|i| i.low),
                    high: f1.map(|i| i.high),
                    method: "bootstrap-percentile".into(),
                    confidence: CONFIDENCE,
                    resamples: bootstrap.resamples,
                },
                tokens: TokensResult {
                    input: s.tokens.input,
                    output: s.tokens.output,
                    input_per_request: per(s.tokens.input),
                    output_per_request: per(s.tokens.output),
                    estimated: s.tokens.estimated,
                },
                latency_ms: LatencyResult { p50: s.latency_p50_ms, p95: s.latency_p95_ms },
                classes: s
                    .classes
                    .iter()
                    .map(|c| ClassResult {
                        label: c.label.clone(),
                        support: c.support,
                        predicted: c.predicted,
                        precision: c.precision,
                        recall: c.recall,
                        f1: c.f1,
                    })
                    .collect(),
                confusion: s.confusion.clone(),
                error_kinds: s.error_kinds.clone(),
            }
        })
        .collect();
    let pairs = compare::all_pairs(scores);
    let comparisons = compare::compare(scores, &pairs, CONFIDENCE, &bootstrap)?
        .iter()
        .map(|c| comparison_result(c, scores, pairs.len()))
        .collect();
    Ok(Results {
        comparisons,
        schema_version: RESULTS_SCHEMA_VERSION,
        suite: meta.suite.name.clone(),
        suite_sha256: meta.suite.sha256.clone(),
        evalgate_version: meta.evalgate_version.clone(),
        started_at: meta.started_at.clone(),
        finished_at: meta.finished_at.clone(),
        task: TaskResult { kind: meta.task.kind.clone(), labels: meta.task.labels.clone() },
        items: meta.items.len(),
        backends,
        skipped: meta.skipped.clone(),
    })
}

/// Seed of every bootstrap in a report, so a rebuilt report has identical intervals.
pub const BOOTSTRAP_SEED: u64 = 20_261_127;

fn comparison_result(c: &Comparison, scores: &RunScores, pairs: usize) -> ComparisonResult {
    let first = scores.backends[c.first].id.clone();
    let second = scores.backends[c.second].id.clone();
    let verdict = verdict(&first, &second, c, pairs);
    ComparisonResult {
        both_correct: c.counts.both_correct,
        only_first: c.counts.only_first,
        only_second: c.counts.only_second,
        both_wrong: c.counts.both_wrong,
        difference: DifferenceResult {
            estimate: c.difference.estimate,
            low: c.difference.low,
            high: c.difference.high,
            method: "newcombe-hybrid-score".into(),
            confidence: CONFIDENCE,
        },
        p_value: c.p_value,
        p_value_holm: c.p_value_holm,
        macro_f1_difference: c.macro_f1_difference.map(|i| DifferenceResult {
            estimate: i.estimate,
            low: i.low,
            high: i.high,
            method: "paired-bootstrap-percentile".into(),
            confidence: CONFIDENCE,
        }),
        items_needed_for_3_points: c.items_needed,
        verdict,
        first,
        second,
    }
}

/// One sentence a reader can act on. The decision uses the Holm-adjusted p-value.
pub fn verdict(first: &str, second: &str, c: &Comparison, pairs: usize) -> String {
    let n = c.counts.total().unwrap_or(0);
    if n == 0 {
        return format!("`{first}` and `{second}` answered no item in common, so they cannot be compared.");
    }
    let p = if pairs > 1 {
        format!("{}, Holm-adjusted {}", p_text(c.p_value), p_text(c.p_value_holm).trim_start_matches("p ").trim_start_matches("= "))
    } else {
        p_text(c.p_value)
    };
    let (d, lo, hi) = (c.difference.estimate * 100.0, c.difference.low * 100.0, c.difference.high * 100.0);
    let level = (CONFIDENCE * 100.0).round();
    if c.p_value_holm < 1.0 - CONFIDENCE {
        let (winner, loser, d, lo, hi) = if d > 0.0 { (second, first, d, lo, hi) } else { (first, second, -d, -hi, -lo) };
        format!("`{winner}` beats `{loser}` by {d:.1} points ({level}% CI {lo:.1} to {hi:.1}, {p}).")
    } else {
        let need = match c.items_needed {
            Some(items) if items > n => format!("; about {} items would be needed to detect 3 points", group_thousands(items)),
            Some(_) => "; the suite is large enough to detect 3 points, so any real difference is likely smaller".to_string(),
            None => String::new(),
        };
        format!("No detectable difference between `{first}` and `{second}` ({d:+.1} points, {level}% CI {lo:.1} to {hi:.1}, {p}){need}.")
    }
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_string()
    } else {
        format!("p = {p:.3}")
    }
}

pub(crate) fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
