//! Classification scores from the journal.
//!
//! Accuracy is over *answered* items: a request that failed after its retries is an error,
//! counted and shown beside accuracy, never a wrong answer. An answered reply that names no
//! label is *invalid* and counts as wrong.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::journal::{self, Record, RecordError, RunMeta, Tokens};
use crate::stats::{quantile, wilson_interval, Interval};
use crate::suite::TaskKind;

// Samples are stored item-major: sample `s` is item `s / epochs`, epoch `s % epochs`.

/// The confidence level of every interval unless a user asks otherwise.
pub const CONFIDENCE: f64 = 0.95;

/// What one backend did with one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No record: the run did not reach this item.
    Missing,
    /// The request failed after every attempt.
    Error,
    /// Answered: the predicted label's index (`None` when invalid) and whether it is right.
    Answered { predicted: Option<u16>, correct: bool },
}

impl Outcome {
    pub fn correct(self) -> Option<bool> {
        match self {
            Outcome::Answered { correct, .. } => Some(correct),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccuracyMethod {
    Wilson,
    /// Several samples per item (epochs > 1): Wilson's interval on the effective sample size,
    /// with the design effect of samples clustered by item
    /// ([`crate::stats::decision::clustered_proportion_interval`]); never of zero width.
    Clustered,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassScores {
    pub label: String,
    /// Answered items whose gold is this label.
    pub support: u64,
    /// Answered items predicted as this label.
    pub predicted: u64,
    pub true_positives: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendScores {
    pub id: String,
    pub items: u64,
    pub answered: u64,
    pub correct: u64,
    pub invalid: u64,
    pub errors: u64,
    pub missing: u64,
    pub accuracy: Interval,
    pub accuracy_method: AccuracyMethod,
    /// Samples per item; `outcomes` holds `items × epochs` samples, item-major.
    pub epochs: usize,
    pub error_rate: Interval,
    pub macro_f1: f64,
    pub classes: Vec<ClassScores>,
    /// Rows: gold label; columns: predicted label, then a last column for invalid replies.
    pub confusion: Vec<Vec<u64>>,
    pub tokens: Tokens,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Answers (latest record per sample) that came from the response cache.
    pub cached: u64,
    /// When the oldest and the newest of those answers were given (RFC 3339), as the cache
    /// dated them; `None` without cached answers (or from journals that did not record it).
    pub cached_between: Option<(String, String)>,
    /// The most frequent error messages (at most [`TOP_ERROR_MESSAGES`]), most frequent first.
    pub error_messages: Vec<(String, u64)>,
    /// Answered samples whose reply was cut by the token limit (`finish_reason: length`).
    pub truncated: u64,
    /// Per item, in run order.
    pub outcomes: Vec<Outcome>,
    /// Tokens per item, in run order (zero for items without an answer).
    pub item_tokens: Vec<Tokens>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunScores {
    pub labels: Vec<String>,
    pub items: Vec<String>,
    /// Classification: each item's gold label; `None` throughout for extraction.
    pub gold: Vec<Option<u16>>,
    pub backends: Vec<BackendScores>,
    /// Field scores of an extraction task, aligned with `backends`. Each backend's `outcomes`
    /// then say whether a sample's record matched exactly (`predicted` is `None` for a reply
    /// with no JSON object), and `macro_f1` is over fields.
    pub extraction: Option<super::extraction::RunExtraction>,
}

/// The journal fields scoring needs; the prompt and reply are skipped.
#[derive(Deserialize)]
struct ScoredRecord {
    id: String,
    backend: String,
    answer: Option<String>,
    gold: String,
    tokens: Tokens,
    latency_ms: f64,
    error: Option<RecordError>,
    #[serde(default)]
    epoch: u32,
    #[serde(default)]
    cached: bool,
    #[serde(default)]
    cached_at: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// What scoring reads of one journal record, borrowed from whichever record type a reader
/// deserialised (scoring alone skips prompts and replies; the report step reads whole records).
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub id: &'a str,
    pub backend: &'a str,
    pub answer: Option<&'a str>,
    pub gold: &'a str,
    pub tokens: Tokens,
    pub latency_ms: f64,
    pub epoch: u32,
    /// Answered from the response cache.
    pub cached: bool,
    /// When a cached answer was given.
    pub cached_at: Option<&'a str>,
    /// The failure (its kind and message), when the request failed.
    pub error: Option<&'a RecordError>,
    /// The reply was cut by the token limit (see [`cut_by_token_limit`]).
    pub truncated: bool,
}

/// Both record types (the whole record, and scoring's lighter read of it) give the same view.
macro_rules! record_view_from {
    ($($record:ty),*) => {$(
        impl<'a> From<&'a $record> for RecordView<'a> {
            fn from(r: &'a $record) -> Self {
                RecordView {
                    id: &r.id,
                    backend: &r.backend,
                    answer: r.answer.as_deref(),
                    gold: &r.gold,
                    tokens: r.tokens,
                    latency_ms: r.latency_ms,
                    epoch: r.epoch,
                    cached: r.cached,
                    cached_at: r.cached_at.as_deref(),
                    error: r.error.as_ref(),
                    truncated: cut_by_token_limit(r.finish_reason.as_deref()),
                }
            }
        }
    )*};
}

record_view_from!(Record, ScoredRecord);

/// Whether a reply ended at the token limit: OpenAI's `finish_reason: "length"` or Anthropic's
/// `stop_reason: "max_tokens"` (records keep the server's own word).
pub fn cut_by_token_limit(finish_reason: Option<&str>) -> bool {
    matches!(finish_reason, Some("length" | "max_tokens"))
}

/// How many of a backend's most frequent error messages the report lists.
pub const TOP_ERROR_MESSAGES: usize = 5;

/// Per-item results of one backend, latest record per item.
#[derive(Default)]
struct Tally {
    outcomes: Vec<Outcome>,
    /// Latency of answered items, except those from the cache: their latency is another run's.
    latencies: Vec<Option<f64>>,
    /// When each cached answer was given.
    cached_at: Vec<Option<Box<str>>>,
    tokens: Vec<Tokens>,
    error_kinds: Vec<Option<String>>,
    cached: Vec<bool>,
    /// Each failed sample's error as the report lists it.
    error_messages: Vec<Option<String>>,
    truncated: Vec<bool>,
    epochs: usize,
}

/// Scores every backend of the run in `dir`.
pub fn score_run(dir: &Path, meta: &RunMeta) -> Result<RunScores> {
    let mut scoring = RunScoring::new(meta);
    journal::read_numbered_records(dir, |r: ScoredRecord, line| scoring.add((&r).into(), line))?;
    scoring.finish(dir)
}

/// A journal record that does not fit the run it is in.
#[derive(Debug, thiserror::Error)]
enum RecordProblem {
    #[error("record for backend `{backend}` and item `{id}` is not part of this run")]
    NotInRun { backend: String, id: String },
    #[error(
        "record for item `{id}` has epoch {epoch}, but backend `{backend}` runs {epochs} epochs"
    )]
    EpochOutOfRange { id: String, epoch: u32, backend: String, epochs: usize },
    #[error("item `{id}`, backend `{backend}`: {source}")]
    Gold { id: String, backend: String, source: crate::field::value::ValueError },
    #[error("item `{id}` has gold label `{gold}`, which the task does not declare")]
    UndeclaredLabel { id: String, gold: String },
}

/// Scores a run from its journal records, fed one at a time in file order, so that a reader
/// that also does other work with each record (the report step) reads the journal once.
pub struct RunScoring<'m> {
    meta: &'m RunMeta,
    label_index: HashMap<&'m str, u16>,
    item_index: HashMap<&'m str, usize>,
    backend_index: HashMap<&'m str, usize>,
    tallies: Vec<Tally>,
    gold: Vec<Option<u16>>,
    /// The first problem found, with its journal line.
    problem: Option<(u64, String)>,
    extraction: Option<super::extraction::Tally>,
}

impl<'m> RunScoring<'m> {
    pub fn new(meta: &'m RunMeta) -> Self {
        let labels = &meta.task.labels;
        RunScoring {
            meta,
            label_index: labels.iter().enumerate().map(|(i, l)| (l.as_str(), i as u16)).collect(),
            item_index: meta.items.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect(),
            backend_index: meta
                .backends
                .iter()
                .enumerate()
                .map(|(i, b)| (b.id.as_str(), i))
                .collect(),
            tallies: meta
                .backends
                .iter()
                .map(|b| {
                    let samples = meta.items.len() * b.epochs.max(1) as usize;
                    Tally {
                        outcomes: vec![Outcome::Missing; samples],
                        latencies: vec![None; samples],
                        cached_at: vec![None; samples],
                        tokens: vec![Tokens::default(); samples],
                        error_kinds: vec![None; samples],
                        cached: vec![false; samples],
                        error_messages: vec![None; samples],
                        truncated: vec![false; samples],
                        epochs: b.epochs.max(1) as usize,
                    }
                })
                .collect(),
            gold: vec![None; meta.items.len()],
            problem: None,
            extraction: (meta.task.kind == TaskKind::Extraction)
                .then(|| super::extraction::Tally::new(meta)),
        }
    }

    /// Takes one record, found on journal line `line`; a later record for the same sample
    /// replaces an earlier one (a resumed run).
    pub fn add(&mut self, r: RecordView<'_>, line: u64) {
        if self.problem.is_some() {
            return;
        }
        if let Err(message) = self.try_add(r) {
            self.problem = Some((line, message.to_string()));
        }
    }

    fn try_add(&mut self, r: RecordView<'_>) -> std::result::Result<(), RecordProblem> {
        let (Some(&b), Some(&i)) = (self.backend_index.get(r.backend), self.item_index.get(r.id))
        else {
            return Err(RecordProblem::NotInRun { backend: r.backend.into(), id: r.id.into() });
        };
        let tally = &mut self.tallies[b];
        if r.epoch as usize >= tally.epochs {
            return Err(RecordProblem::EpochOutOfRange {
                id: r.id.into(),
                epoch: r.epoch,
                backend: r.backend.into(),
                epochs: tally.epochs,
            });
        }
        // A request a stop of the run cancelled has no outcome: the sample stays as it was
        // (missing, unless an earlier run answered it), and a resumed run sends it.
        if r.error.is_some_and(|e| e.kind == crate::backend::ErrorKind::Cancelled.as_str()) {
            return Ok(());
        }
        let s = i * tally.epochs + r.epoch as usize;
        let failed = r.error.is_some();
        // Correctness is recomputed from gold and answer rather than trusting the stored flag.
        let outcome = match self.extraction.as_mut() {
            Some(ex) => ex.record(b, s, r.epoch, r.gold, r.answer, failed).map_err(|source| {
                RecordProblem::Gold { id: r.id.into(), backend: r.backend.into(), source }
            })?,
            None => {
                let Some(&g) = self.label_index.get(r.gold) else {
                    return Err(RecordProblem::UndeclaredLabel {
                        id: r.id.into(),
                        gold: r.gold.into(),
                    });
                };
                self.gold[i] = Some(g);
                if failed {
                    Outcome::Error
                } else {
                    let predicted = r.answer.and_then(|a| self.label_index.get(a).copied());
                    Outcome::Answered { predicted, correct: predicted == Some(g) }
                }
            }
        };
        tally.outcomes[s] = outcome;
        tally.error_kinds[s] = r.error.map(|e| e.kind.clone());
        tally.error_messages[s] = r.error.map(|e| match e.status {
            Some(status) => format!("HTTP {status}: {}", e.message),
            None => e.message.clone(),
        });
        tally.truncated[s] = !failed && r.truncated;
        tally.latencies[s] = (!failed && !r.cached).then_some(r.latency_ms);
        tally.cached_at[s] = r.cached_at.filter(|_| r.cached && !failed).map(Box::from);
        tally.tokens[s] = r.tokens;
        tally.cached[s] = r.cached && !failed;
        Ok(())
    }

    /// The scores, or the first problem found, naming the journal of the run in `dir`.
    pub fn finish(self, dir: &Path) -> Result<RunScores> {
        if let Some((line, message)) = self.problem {
            return Err(Error::Journal { path: dir.join(journal::RECORDS_FILE), line, message });
        }
        let meta = self.meta;
        let labels = &meta.task.labels;
        let gold = self.gold;
        let mut backends: Vec<BackendScores> = meta
            .backends
            .iter()
            .zip(self.tallies)
            .map(|(backend, tally)| summarize(&backend.id, labels, &gold, tally))
            .collect::<Result<_, _>>()?;
        let extraction = match self.extraction {
            Some(ex) => {
                let run = ex.finish(meta, &backends)?;
                for (b, e) in backends.iter_mut().zip(&run.backends) {
                    b.macro_f1 = e.macro_avg.f1;
                }
                Some(run)
            }
            None => None,
        };
        Ok(RunScores {
            labels: labels.clone(),
            items: meta.items.clone(),
            gold,
            backends,
            extraction,
        })
    }
}

fn summarize(
    id: &str,
    labels: &[String],
    gold: &[Option<u16>],
    tally: Tally,
) -> Result<BackendScores> {
    let n_labels = labels.len();
    let mut confusion = vec![vec![0u64; n_labels + 1]; n_labels];
    let (mut answered, mut correct, mut invalid, mut errors, mut missing) = (0, 0, 0, 0, 0);
    let epochs = tally.epochs.max(1);
    for (s, outcome) in tally.outcomes.iter().enumerate() {
        let i = s / epochs;
        match *outcome {
            Outcome::Missing => missing += 1,
            Outcome::Error => errors += 1,
            Outcome::Answered { predicted, correct: right } => {
                answered += 1;
                correct += u64::from(right);
                invalid += u64::from(predicted.is_none());
                if let Some(g) = gold[i] {
                    let column = predicted.map_or(n_labels, usize::from);
                    confusion[usize::from(g)][column] += 1;
                }
            }
        }
    }
    let classes: Vec<ClassScores> = labels
        .iter()
        .enumerate()
        .map(|(c, label)| {
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
            let tp = confusion[c][c];
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassScores {
                label: label.clone(),
                support,
                predicted,
                true_positives: tp,
                precision,
                recall,
                f1,
            }
        })
        .collect();
    // Macro-F1 over the labels that occur as gold or as a prediction, as scikit-learn does when
    // no label list is given: a label absent from both says nothing about the model.
    let present: Vec<&ClassScores> =
        classes.iter().filter(|c| c.support > 0 || c.predicted > 0).collect();
    let macro_f1 = if present.is_empty() {
        0.0
    } else {
        present.iter().map(|c| c.f1).sum::<f64>() / present.len() as f64
    };
    let items = tally.outcomes.len() as u64;
    let mut tokens = Tokens::default();
    for t in &tally.tokens {
        tokens.input += t.input;
        tokens.output += t.output;
        tokens.cached_input += t.cached_input;
        tokens.cache_write_input += t.cache_write_input;
        tokens.estimated |= t.estimated;
    }
    let latencies: Vec<f64> = tally.latencies.iter().flatten().copied().collect();
    let mut error_kinds: BTreeMap<String, u64> = BTreeMap::new();
    for kind in tally.error_kinds.iter().flatten() {
        *error_kinds.entry(kind.clone()).or_default() += 1;
    }
    let mut messages: HashMap<&str, u64> = HashMap::new();
    for message in tally.error_messages.iter().flatten() {
        *messages.entry(message.as_str()).or_default() += 1;
    }
    let mut error_messages: Vec<(String, u64)> =
        messages.into_iter().map(|(m, n)| (m.to_string(), n)).collect();
    error_messages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    error_messages.truncate(TOP_ERROR_MESSAGES);
    let truncated = tally.truncated.iter().filter(|&&t| t).count() as u64;
    // One sample per item: a binomial proportion. Several: samples of an item are correlated,
    // so the interval clusters by item (Miller 2024).
    let (accuracy, accuracy_method) = if epochs == 1 {
        (wilson_interval(correct, answered, CONFIDENCE)?, AccuracyMethod::Wilson)
    } else {
        (repeated_samples_accuracy(&tally.outcomes, epochs)?, AccuracyMethod::Clustered)
    };
    Ok(BackendScores {
        id: id.to_string(),
        items,
        answered,
        correct,
        invalid,
        errors,
        missing,
        accuracy,
        accuracy_method,
        epochs,
        error_rate: wilson_interval(errors, answered + errors, CONFIDENCE)?,
        macro_f1,
        classes,
        confusion,
        tokens,
        latency_p50_ms: quantile(&latencies, 0.50).unwrap_or(0.0),
        latency_p95_ms: quantile(&latencies, 0.95).unwrap_or(0.0),
        error_kinds,
        cached: tally.cached.iter().filter(|&&c| c).count() as u64,
        cached_between: {
            let mut at = tally.cached_at.iter().flatten();
            at.next()
                .map(|first| at.fold((first, first), |(lo, hi), t| (lo.min(t), hi.max(t))))
                .map(|(lo, hi)| (lo.to_string(), hi.to_string()))
        },
        error_messages,
        truncated,
        item_tokens: tally.tokens,
        outcomes: tally.outcomes,
    })
}

/// Accuracy over the answered samples of `epochs` samples per item (item-major): Wilson's interval
/// on the effective sample size, the samples of an item clustered, so it keeps a positive width
/// at 0% and 100% ([`crate::stats::decision::clustered_proportion_interval`]).
pub fn repeated_samples_accuracy(outcomes: &[Outcome], epochs: usize) -> Result<Interval> {
    let per_item: Vec<(u64, u64)> = outcomes
        .chunks(epochs.max(1))
        .map(|samples| {
            let answered: Vec<bool> = samples.iter().filter_map(|o| o.correct()).collect();
            (answered.iter().filter(|&&c| c).count() as u64, answered.len() as u64)
        })
        .collect();
    Ok(crate::stats::decision::clustered_proportion_interval(&per_item, CONFIDENCE)?.interval)
}

/// Accuracy over the answered samples with a standard error clustered by `cluster_of(sample)`
/// (Miller 2024), the interval kept within [0, 1]; `None` with fewer than two clusters.
pub fn clustered_accuracy(
    outcomes: &[Outcome],
    cluster_of: impl Fn(usize) -> usize,
) -> Option<ClusteredAccuracy> {
    let mut scores = Vec::new();
    let mut clusters = Vec::new();
    for (s, o) in outcomes.iter().enumerate() {
        if let Some(c) = o.correct() {
            scores.push(if c { 1.0 } else { 0.0 });
            clusters.push(cluster_of(s));
        }
    }
    let (i, standard_error) =
        crate::stats::clustered_mean_interval(&scores, &clusters, CONFIDENCE).ok()?;
    clusters.sort_unstable();
    clusters.dedup();
    Some(ClusteredAccuracy {
        interval: Interval { estimate: i.estimate, low: i.low.max(0.0), high: i.high.min(1.0) },
        standard_error,
        clusters: clusters.len(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusteredAccuracy {
    pub interval: Interval,
    pub standard_error: f64,
    pub clusters: usize,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [50, 95]) == [3.0, 8.8]
        let v = [10.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert!((quantile(&v, 0.95).unwrap() - 8.8).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn per_class_metrics_match_hand_counts() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        // gold:      a a a b b c
        // predicted: a a b b - c   ("-" is invalid), plus one error on a seventh item
        let gold = vec![Some(0), Some(0), Some(0), Some(1), Some(1), Some(2), Some(2)];
        let ans =
            |p: Option<u16>, g: u16| Outcome::Answered { predicted: p, correct: p == Some(g) };
        let outcomes = vec![
            ans(Some(0), 0),
            ans(Some(0), 0),
            ans(Some(1), 0),
            ans(Some(1), 1),
            ans(None, 1),
            ans(Some(2), 2),
            Outcome::Error,
        ];
        let tally = Tally {
            tokens: vec![Tokens::default(); outcomes.len()],
            latencies: vec![Some(1.0); outcomes.len()],
            cached_at: vec![None; outcomes.len()],
            error_kinds: vec![None; outcomes.len()],
            cached: vec![false; outcomes.len()],
            error_messages: vec![None; outcomes.len()],
            truncated: vec![false; outcomes.len()],
            epochs: 1,
            outcomes,
        };
        let s = summarize("x", &labels, &gold, tally).unwrap();
        assert_eq!((s.items, s.answered, s.correct, s.invalid, s.errors), (7, 6, 4, 1, 1));
        assert!((s.accuracy.estimate - 4.0 / 6.0).abs() < 1e-12);
        // a: P = 2/2, R = 2/3; b: P = 1/2, R = 1/2; c: P = 1, R = 1
        let f1 = |p: f64, r: f64| 2.0 * p * r / (p + r);
        let expected = (f1(1.0, 2.0 / 3.0) + f1(0.5, 0.5) + 1.0) / 3.0;
        assert!((s.macro_f1 - expected).abs() < 1e-12);
        assert_eq!(s.confusion[1], vec![0, 1, 0, 1]);
    }

    #[test]
    fn both_apis_words_for_a_reply_cut_at_max_tokens_count_as_truncated() {
        assert!(cut_by_token_limit(Some("length")));
        assert!(cut_by_token_limit(Some("max_tokens")));
        for other in [Some("stop"), Some("end_turn"), Some("tool_use"), Some(""), None] {
            assert!(!cut_by_token_limit(other), "{other:?}");
        }
    }
}

#[cfg(test)]
mod repeated_sampling_tests {
    use super::*;

    #[test]
    fn all_correct_samples_keep_a_positive_width() {
        // 30 items × 3 samples, all right: the Wilson interval on 30 items, low ≈ 0.886.
        let outcomes = vec![Outcome::Answered { predicted: Some(0), correct: true }; 90];
        let i = repeated_samples_accuracy(&outcomes, 3).unwrap();
        assert_eq!(i.estimate, 1.0);
        assert!(i.low < 1.0 && (i.low - 0.8865).abs() < 1e-3, "{i:?}");
        assert_eq!(i.high, 1.0);
        // All wrong: the mirror image.
        let outcomes = vec![Outcome::Answered { predicted: Some(1), correct: false }; 90];
        let i = repeated_samples_accuracy(&outcomes, 3).unwrap();
        assert!(i.high > 0.0 && (i.high - 0.1135).abs() < 1e-3, "{i:?}");
        // Errors are left out of an item's samples.
        let mut outcomes = vec![Outcome::Answered { predicted: Some(0), correct: true }; 90];
        outcomes[1] = Outcome::Error;
        let j = repeated_samples_accuracy(&outcomes, 3).unwrap();
        assert!(j.low < 1.0 && j.estimate == 1.0, "{j:?}");
    }
}
