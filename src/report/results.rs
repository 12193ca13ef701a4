//! `results.json`: the versioned, machine-readable summary of a run.
//!
//! Schema version 1. Fields are only ever added; none is renamed or changes meaning.
//! - `accuracy.estimate` = `correct / answered`; `errors` are items whose request failed after
//!   every retry and are never counted as wrong; `missing` are items with no record at all.
//! - Intervals carry their `method` and `confidence`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::journal::{RunMeta, Skipped};
use crate::score::{RunScores, CONFIDENCE};
use crate::stats::Interval;

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
    pub macro_f1: PointResult,
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

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    pub estimate: f64,
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
pub fn build(meta: &RunMeta, scores: &RunScores) -> Results {
    let backends = meta
        .backends
        .iter()
        .zip(&scores.backends)
        .map(|(m, s)| {
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
                macro_f1: PointResult { estimate: s.macro_f1 },
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
    Results {
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
    }
}
