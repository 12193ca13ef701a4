//! `results.json`: the versioned, machine-readable summary of a run.
//!
//! Schema version 1. Fields are only ever added; none is renamed or changes meaning.
//! - `accuracy.estimate` = `correct / answered`; `errors` are items whose request failed after
//!   every retry and are never counted as wrong; `missing` are items with no record at all.
//! - Intervals carry their `method` and `confidence`. Comparison differences are at the report's
//!   confidence shared among the compared pairs (Bonferroni), and each comparison's `decision`
//!   reads that interval against the suite's `margin`.
//! - With `epochs` > 1, `accuracy.method` is `clustered`: Wilson's interval on the effective
//!   sample size, samples clustered by item.
//! - Extraction: `accuracy` is the exact-record match rate (every field right, or absent on both
//!   sides), also given as `exact_match`; `invalid` counts replies with no JSON object and
//!   `invalid_json` is their share of answered items; `fields` scores each field, and
//!   `micro_*`/`macro_*` pool the fields (see `score::extraction` for the semantics).
//! - `cached` counts a backend's answers from the response cache (the latest record of each
//!   sample), and `cached_between` gives when the oldest and newest of them were answered (RFC
//!   3339). `latency_ms` percentiles are over answers the server gave in this run: cached answers
//!   keep their original latency in the journal but are left out.
//! - `leaked` lists test items whose text is also in the training data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::journal::{RunMeta, Skipped};
use crate::score::analysis::Analysis;
use crate::score::compare::{self, Comparison};
use crate::score::cost::CostSummary;
use crate::score::extraction as score_extraction;
use crate::score::{RunScores, CONFIDENCE};
use crate::stats::decision::Decision;
use crate::stats::Interval;

use super::prose;

pub const RESULTS_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    pub suite: String,
    pub suite_sha256: String,
    pub evalgate_version: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Why the run ended before every item was answered, when it did.
    pub stopped: Option<String>,
    /// Backends whose requests failed more often than `run --max-error-rate` (or the gate's
    /// `max_error_rate`) allows; absent when none did, or when no limit was given (`report`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_rate_exceeded: Vec<ErrorRateResult>,
    /// The CI gate's verdict, when the run was judged by a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::gate::GateVerdict>,
    pub task: TaskResult,
    pub items: usize,
    pub backends: Vec<BackendResult>,
    pub skipped: Vec<Skipped>,
    /// Ids of test items whose text is also in the training data (few-shot prompts and the local
    /// baseline could have seen their answers); absent when none is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaked: Vec<String>,
    /// Paired comparisons of every pair of backends (or the pairs the suite lists).
    pub comparisons: Vec<ComparisonResult>,
    /// Things a reader must know before trusting a decision, e.g. a suite too small for it.
    pub warnings: Vec<String>,
    /// The decision in plain words: which backend to use, and why.
    pub recommendation: String,
    /// The suite's volume, for cost projections.
    pub volume: Option<VolumeResult>,
    /// For each per-token backend against each fixed-price one: the volume above which the fixed
    /// one is cheaper.
    pub break_even: Vec<BreakEvenResult>,
}

/// A backend whose requests failed more often than the limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateResult {
    pub backend: String,
    pub errors: u64,
    /// Requests sent: answered plus failed.
    pub requests: u64,
    pub error_rate: f64,
    pub max_error_rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VolumeResult {
    pub requests_per_day: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakEvenResult {
    pub per_token: String,
    pub fixed: String,
    /// `None` when the fixed backend is never cheaper within one instance's capacity.
    pub requests_per_day: Option<f64>,
    /// The volume above which the fixed backend stays cheaper, across instance steps.
    pub sustained_requests_per_day: Option<f64>,
    pub sentence: String,
}

/// Cost figures of one backend, in USD. Every figure is `null` when it cannot be known (no
/// price, or a fixed price without a volume); never a made-up zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostResult {
    pub pricing: Option<crate::cost::Pricing>,
    /// `suite` or `built-in`.
    pub price_origin: Option<String>,
    pub price_as_of: Option<String>,
    pub price_source: Option<String>,
    pub price_stale: bool,
    pub total_usd: Option<f64>,
    pub per_request_usd: Option<f64>,
    pub per_1k_requests_usd: Option<f64>,
    pub per_correct_usd: Option<CostInterval>,
    pub daily_usd: Option<f64>,
    pub annual_usd: Option<f64>,
    pub instances_needed: Option<u64>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostInterval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonResult {
    pub first: String,
    pub second: String,
    pub both_correct: u64,
    pub only_first: u64,
    pub only_second: u64,
    pub both_wrong: u64,
    /// Accuracy of `second` minus accuracy of `first`, over the items both answered, at the
    /// report's confidence shared among the comparisons (Bonferroni: 97.5% for two pairs).
    pub difference: DifferenceResult,
    /// What `difference` says about `second` against `first` given `margin`: `better`, `worse`,
    /// `equivalent` (within the margin), `not-worse` (not worse by more than the margin) or
    /// `inconclusive`.
    pub decision: Decision,
    /// The difference in accuracy that matters (the suite's `decision.margin`).
    pub margin: f64,
    /// For an inconclusive decision, the items both must answer to settle it at 80% power if the
    /// observed discordance and difference held: the fewer of those that would show the backend
    /// behind within the margin (`items_to_show_not_worse`) and those that would show the one
    /// ahead better; `null` when settled.
    pub items_to_settle: Option<u64>,
    /// McNemar's exact two-sided test on the discordant pairs (supplementary: verdicts and
    /// decisions read the `difference` interval).
    pub p_value: f64,
    /// Holm-adjusted across all comparisons of the run (supplementary).
    pub p_value_holm: f64,
    /// Macro-F1 of `second` minus `first`, paired percentile bootstrap (classification).
    pub macro_f1_difference: Option<DifferenceResult>,
    /// Micro-F1 over fields of `second` minus `first`, paired percentile bootstrap (extraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_f1_difference: Option<DifferenceResult>,
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
    /// An extraction task's fields, in declared order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<crate::field::FieldSpec>,
}

/// One error message and how many samples failed with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessageResult {
    pub message: String,
    pub count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendResult {
    pub id: String,
    pub provider: String,
    pub model: Option<String>,
    pub strategy: String,
    /// Samples per item; counts below are of samples when above 1.
    pub epochs: usize,
    pub items: u64,
    pub answered: u64,
    pub correct: u64,
    pub invalid: u64,
    pub errors: u64,
    pub missing: u64,
    /// Answers that came from the response cache rather than from the server in this run.
    #[serde(default)]
    pub cached: u64,
    /// When the oldest and the newest cached answer were given; absent without cached answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_between: Option<[String; 2]>,
    pub accuracy: IntervalResult,
    /// Accuracy with a clustered standard error, when items carry a group (Miller 2024).
    pub accuracy_clustered: Option<ClusteredResult>,
    pub error_rate: IntervalResult,
    pub macro_f1: MetricResult,
    pub tokens: TokensResult,
    pub latency_ms: LatencyResult,
    pub cost: CostResult,
    pub classes: Vec<ClassResult>,
    /// Rows: gold labels in task order; columns: predicted labels in task order, then invalid.
    pub confusion: Vec<Vec<u64>>,
    pub error_kinds: BTreeMap<String, u64>,
    /// The most frequent error messages, most frequent first (at most five); absent when no
    /// request failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_messages: Vec<ErrorMessageResult>,
    /// Answered samples whose reply was cut by the token limit (`finish_reason: length`, or
    /// Anthropic's `stop_reason: max_tokens`); absent when none was.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated: u64,
    /// Why the run stopped sending to this backend (an error no retry can fix), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Extraction: the structured output the backend's requests used in the end (`json_schema`,
    /// `json_object` or `off`; `tool` for Anthropic's forced tool call); absent when it asked for
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_output_used: Option<String>,
    /// Extraction: each field's scores, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, FieldResult>>,
    /// Extraction: the exact-record match rate (the same as `accuracy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<IntervalResult>,
    /// Extraction: the share of answered items whose reply held no JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_json: Option<f64>,
    /// Extraction: precision, recall and F1 pooled over fields (micro) and averaged over fields
    /// (macro, whose F1 is `macro_f1`), with bootstrap intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_precision: Option<MetricResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_recall: Option<MetricResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_f1: Option<MetricResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_precision: Option<MetricResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_recall: Option<MetricResult>,
    /// Extraction: a few fields this backend got wrong, gold beside predicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_errors: Option<Vec<FieldErrorResult>>,
    /// Batch mode: the batches the backend's requests went in and the price they cost; absent
    /// for a backend that sent its requests one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchResult>,
}

/// A backend that ran in batch mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// The batch API's provider (`openai`).
    pub provider: String,
    /// The share of the listed per-token price a batch request costs (the price table's batch
    /// discount); `None` when the table has none, and requests are priced as listed.
    pub price_multiplier: Option<f64>,
    /// Where the discount is stated, and when it was last checked.
    pub discount_source: Option<String>,
    pub discount_as_of: Option<String>,
    /// Every batch, in order: id, requests, last status, submitted and ended times, seconds.
    pub batches: Vec<crate::journal::BatchSummary>,
}

/// One field's scores. `accuracy` is over the answered items where gold or prediction has a
/// value; `true_positives` … `false_negatives` give precision, recall and F1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldResult {
    #[serde(rename = "type")]
    pub ty: String,
    pub accuracy: IntervalResult,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub counted: u64,
    pub correct: u64,
    pub wrong: u64,
    pub missed: u64,
    pub spurious: u64,
    pub both_absent: u64,
    pub invalid: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldErrorResult {
    pub id: String,
    pub field: String,
    pub gold: serde_json::Value,
    pub predicted: serde_json::Value,
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
    /// Repeated samples (epochs > 1): Wilson's interval on the effective sample size, with the
    /// design effect of samples clustered by item; never of zero width, even at 0% or 100%.
    Clustered,
}

impl IntervalResult {
    fn new(interval: Interval, method: IntervalMethodName) -> Self {
        IntervalResult {
            estimate: interval.estimate,
            low: interval.low,
            high: interval.high,
            method,
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

/// A mean with a cluster-robust standard error and its normal-approximation interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusteredResult {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub standard_error: f64,
    pub clusters: usize,
    pub confidence: f64,
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

/// The results of a run from its metadata and analysis: a mapping, with the sentences from
/// [`super::prose`].
pub fn build(meta: &RunMeta, analysis: &Analysis) -> Results {
    let scores = &analysis.scores;
    let bootstrap = &analysis.bootstrap;
    let backends: Vec<BackendResult> = meta
        .backends
        .iter()
        .zip(&scores.backends)
        .enumerate()
        .map(|(index, (m, s))| {
            let extraction = scores.extraction.as_ref().map(|e| (e, &e.backends[index]));
            let figures = &analysis.backends[index];
            let overall = figures.overall;
            let f1 = figures.macro_f1;
            let metric = |estimate: f64, interval: Option<Interval>| MetricResult {
                estimate,
                low: interval.map(|i| i.low),
                high: interval.map(|i| i.high),
                method: "bootstrap-percentile".into(),
                confidence: CONFIDENCE,
                resamples: bootstrap.resamples,
            };
            let accuracy = IntervalResult::new(
                s.accuracy,
                match s.accuracy_method {
                    crate::score::AccuracyMethod::Wilson => IntervalMethodName::Wilson,
                    crate::score::AccuracyMethod::Clustered => IntervalMethodName::Clustered,
                },
            );
            let clustered = figures.clustered_by_group.map(|c| ClusteredResult {
                estimate: c.interval.estimate,
                low: c.interval.low,
                high: c.interval.high,
                standard_error: c.standard_error,
                clusters: c.clusters,
                confidence: CONFIDENCE,
            });
            let cost = cost_result(m, &figures.cost);
            let per =
                |total: u64| if s.answered == 0 { 0.0 } else { total as f64 / s.answered as f64 };
            BackendResult {
                id: m.id.clone(),
                provider: m.provider.clone(),
                model: m.model.clone(),
                // Few-shot backends say how they chose their demonstrations.
                strategy: match &m.few_shot {
                    Some(f) => format!("{} ({}, k={})", m.strategy, f.select, f.k),
                    None => m.strategy.clone(),
                },
                items: s.items,
                answered: s.answered,
                correct: s.correct,
                invalid: s.invalid,
                errors: s.errors,
                missing: s.missing,
                cached: s.cached,
                cached_between: s.cached_between.clone().map(|(lo, hi)| [lo, hi]),
                accuracy,
                epochs: s.epochs,
                accuracy_clustered: clustered,
                cost,
                error_rate: IntervalResult::new(s.error_rate, IntervalMethodName::Wilson),
                macro_f1: metric(s.macro_f1, f1),
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
                error_messages: s
                    .error_messages
                    .iter()
                    .map(|(message, count)| ErrorMessageResult {
                        message: message.clone(),
                        count: *count,
                    })
                    .collect(),
                truncated: s.truncated,
                stopped: m.stopped.clone(),
                structured_output_used: m.structured_output_used.clone(),
                batch: m.batch.as_ref().map(|b| BatchResult {
                    provider: b.provider.clone(),
                    price_multiplier: b.discount.as_ref().map(|d| d.price_multiplier),
                    discount_source: b.discount.as_ref().map(|d| d.source.clone()),
                    discount_as_of: b.discount.as_ref().map(|d| d.as_of.clone()),
                    batches: b.batches.clone(),
                }),
                fields: extraction.map(|(e, b)| {
                    e.fields
                        .iter()
                        .zip(&b.fields)
                        .map(|(spec, f)| (f.name.clone(), field_result(spec, f)))
                        .collect()
                }),
                exact_match: extraction.map(|_| accuracy),
                invalid_json: extraction.map(|_| {
                    if s.answered == 0 {
                        0.0
                    } else {
                        s.invalid as f64 / s.answered as f64
                    }
                }),
                micro_precision: extraction
                    .zip(overall)
                    .map(|((_, b), o)| metric(b.micro.precision, o[0])),
                micro_recall: extraction
                    .zip(overall)
                    .map(|((_, b), o)| metric(b.micro.recall, o[1])),
                micro_f1: extraction.zip(overall).map(|((_, b), o)| metric(b.micro.f1, o[2])),
                macro_precision: extraction
                    .zip(overall)
                    .map(|((_, b), o)| metric(b.macro_avg.precision, o[3])),
                macro_recall: extraction
                    .zip(overall)
                    .map(|((_, b), o)| metric(b.macro_avg.recall, o[4])),
                field_errors: extraction.map(|(_, b)| {
                    b.examples
                        .iter()
                        .map(|x| FieldErrorResult {
                            id: x.id.clone(),
                            field: x.field.clone(),
                            gold: x.gold.clone(),
                            predicted: x.predicted.clone(),
                        })
                        .collect()
                }),
            }
        })
        .collect();
    let id = |i: usize| scores.backends[i].id.as_str();
    let warnings = meta
        .warnings
        .iter()
        .cloned()
        .chain(analysis.underpowered.iter().map(|u| {
            prose::underpowered(id(u.first), id(u.second), u.answered_by_both, u.items_needed)
        }))
        .collect();
    let comparisons: Vec<ComparisonResult> = analysis
        .comparisons
        .iter()
        .map(|c| comparison_result(c, scores, analysis.pairs_compared))
        .collect();
    let break_even = analysis
        .break_even
        .iter()
        .map(|b| {
            let (per_token, fixed) = (id(b.per_token), id(b.fixed));
            BreakEvenResult {
                per_token: per_token.to_string(),
                fixed: fixed.to_string(),
                requests_per_day: b.requests_per_day,
                sustained_requests_per_day: b.sustained_requests_per_day,
                sentence: prose::break_even(
                    per_token,
                    fixed,
                    b.requests_per_day,
                    b.sustained_requests_per_day,
                ),
            }
        })
        .collect();
    let recommendation =
        prose::recommendation(&backends, &comparisons, meta.requests_per_day, &meta.skipped);
    Results {
        error_rate_exceeded: Vec::new(),
        gate: None,
        recommendation,
        break_even,
        volume: meta.requests_per_day.map(|requests_per_day| VolumeResult { requests_per_day }),
        comparisons,
        warnings,
        schema_version: RESULTS_SCHEMA_VERSION,
        suite: meta.suite.name.clone(),
        suite_sha256: meta.suite.sha256.clone(),
        evalgate_version: meta.evalgate_version.clone(),
        started_at: meta.started_at.clone(),
        finished_at: meta.finished_at.clone(),
        stopped: meta.stopped.clone(),
        task: TaskResult {
            kind: meta.task.kind.name().to_string(),
            labels: meta.task.labels.clone(),
            fields: meta.task.fields.clone(),
        },
        items: meta.items.len(),
        backends,
        skipped: meta.skipped.clone(),
        leaked: meta.leaked.clone(),
    }
}

fn field_result(spec: &crate::field::FieldSpec, f: &score_extraction::FieldScores) -> FieldResult {
    let method = match f.accuracy_method {
        crate::score::AccuracyMethod::Wilson => IntervalMethodName::Wilson,
        crate::score::AccuracyMethod::Clustered => IntervalMethodName::Clustered,
    };
    FieldResult {
        ty: spec.ty.name().to_string(),
        accuracy: IntervalResult::new(f.accuracy, method),
        precision: f.prf.precision,
        recall: f.prf.recall,
        f1: f.prf.f1,
        counted: f.counted,
        correct: f.correct,
        wrong: f.wrong,
        missed: f.missed,
        spurious: f.spurious,
        both_absent: f.both_absent,
        invalid: f.invalid,
        true_positives: f.true_positives,
        false_positives: f.false_positives,
        false_negatives: f.false_negatives,
    }
}

fn cost_result(m: &crate::journal::BackendMeta, c: &CostSummary) -> CostResult {
    CostResult {
        pricing: m.price.as_ref().map(|p| p.pricing.clone()),
        price_origin: m.price.as_ref().map(|p| p.origin.clone()),
        price_as_of: m.price.as_ref().and_then(|p| p.as_of.clone()),
        price_source: m.price.as_ref().and_then(|p| p.source.clone()),
        price_stale: c.stale_days.is_some(),
        total_usd: c.total_usd,
        per_request_usd: c.per_request_usd,
        per_1k_requests_usd: c.per_request_usd.map(|p| p * 1000.0),
        per_correct_usd: c.per_correct.map(|i| CostInterval {
            estimate: i.estimate,
            low: i.low,
            high: i.high,
        }),
        daily_usd: c.projection.map(|p| p.daily_usd),
        annual_usd: c.projection.map(|p| p.annual_usd),
        instances_needed: c.projection.and_then(|p| p.instances_needed),
        notes: c.notes.clone(),
    }
}

fn comparison_result(c: &Comparison, scores: &RunScores, pairs: usize) -> ComparisonResult {
    let first = scores.backends[c.first].id.clone();
    let second = scores.backends[c.second].id.clone();
    let verdict = prose::verdict(&first, &second, c, pairs);
    ComparisonResult {
        both_correct: c.counts.both_correct,
        only_first: c.counts.only_first,
        only_second: c.counts.only_second,
        both_wrong: c.counts.both_wrong,
        difference: DifferenceResult {
            estimate: c.difference.estimate,
            low: c.difference.low,
            high: c.difference.high,
            method: match c.method {
                compare::DifferenceMethod::NewcombeMcNemar => "newcombe-hybrid-score".into(),
                compare::DifferenceMethod::PairedItemMeans => "paired-item-means".into(),
            },
            confidence: c.confidence,
        },
        decision: c.decision,
        margin: c.margin,
        items_to_settle: c.items_to_settle,
        p_value: c.p_value,
        p_value_holm: c.p_value_holm,
        macro_f1_difference: c.macro_f1_difference.map(|i| DifferenceResult {
            estimate: i.estimate,
            low: i.low,
            high: i.high,
            method: "paired-bootstrap-percentile".into(),
            confidence: CONFIDENCE,
        }),
        micro_f1_difference: c.micro_f1_difference.map(|i| DifferenceResult {
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
