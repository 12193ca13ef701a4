//! Extraction scores: each field, all fields together, and whole records.
//!
//! For every answered sample and field, the gold and the predicted value are compared under the
//! field's type and match rule ([`rules::compare`]):
//! - *correct*: both present and matching — a true positive;
//! - *wrong*: both present, not matching — a false positive and a false negative;
//! - *missed*: gold present, prediction absent (missing key, null, empty) — a false negative;
//! - *spurious*: gold absent, prediction present — a false positive;
//! - both absent: not counted anywhere.
//!
//! A reply with no JSON object is *invalid*: it counts as wrong on every field (in field
//! accuracy and in the exact-record match) and as a false negative for each field with a gold
//! value; having predicted nothing, it adds no false positive.
//!
//! Field accuracy is correct / counted, where counted is every answered sample except those with
//! the field absent on both sides. Precision, recall and F1 are 0 when their denominator is 0.
//! Micro figures pool the true and false positives and negatives of all fields; macro figures
//! average the fields' own, over the fields with any of them. A record matches exactly when every
//! field is correct or absent on both sides; that rate is the backend's accuracy.

use serde_json::Value;

use crate::field::value::{gold_values, ValueError};
use crate::field::FieldSpec;
use crate::parse::json_object::project;
use crate::stats::{bootstrap_intervals, wilson_interval, BootstrapConfig, Interval};

use super::{AccuracyMethod, BackendScores, Outcome, CONFIDENCE};
use crate::journal::RunMeta;

pub mod rules;

pub use rules::Mark;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    fn of([tp, fp, fn_]: [u64; 3]) -> Prf {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Prf {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldScores {
    pub name: String,
    /// Answered samples in the field's accuracy (all but those absent on both sides).
    pub counted: u64,
    pub correct: u64,
    pub wrong: u64,
    pub missed: u64,
    pub spurious: u64,
    pub both_absent: u64,
    /// Invalid replies counted against this field.
    pub invalid: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
    pub accuracy: Interval,
    pub accuracy_method: AccuracyMethod,
    pub prf: Prf,
}

/// One field a backend got wrong, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub id: String,
    pub field: String,
    pub gold: Value,
    /// Null when the reply had no value for the field.
    pub predicted: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendExtraction {
    pub fields: Vec<FieldScores>,
    pub micro: Prf,
    pub macro_avg: Prf,
    /// Samples × fields, sample-major.
    pub marks: Vec<Mark>,
    pub examples: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunExtraction {
    pub fields: Vec<FieldSpec>,
    pub backends: Vec<BackendExtraction>,
}

/// The six overall metrics with bootstrap intervals, in this order.
pub const OVERALL: [&str; 6] =
    ["micro_precision", "micro_recall", "micro_f1", "macro_precision", "macro_recall", "macro_f1"];

/// How many field errors the report shows per backend.
const EXAMPLES: usize = 6;

/// The gold and answer objects of the first samples with a field error, by sample index: what
/// the report's examples are drawn from, without keeping every answer of a large run.
#[derive(Debug, Default)]
pub struct Candidates(std::collections::BTreeMap<usize, (JsonObject, JsonObject)>);

type JsonObject = serde_json::Map<String, Value>;

/// How many candidates are kept; more than [`EXAMPLES`] so several fields can show.
const CANDIDATES: usize = 64;

impl Candidates {
    /// Keeps sample `s` if it is among the first [`CANDIDATES`] offered.
    pub fn offer(&mut self, s: usize, gold: JsonObject, answer: JsonObject) {
        if self.0.len() >= CANDIDATES && self.0.last_key_value().is_some_and(|(&last, _)| last < s)
        {
            return;
        }
        self.0.insert(s, (gold, answer));
        if self.0.len() > CANDIDATES {
            self.0.pop_last();
        }
    }

    /// Forgets sample `s` (a later record replaced it).
    pub fn remove(&mut self, s: usize) {
        self.0.remove(&s);
    }
}

/// Scores one backend from its samples' marks; `ids` are the item ids.
pub fn summarize(
    fields: &[FieldSpec],
    marks: Vec<Mark>,
    epochs: usize,
    candidates: &Candidates,
    ids: &[String],
) -> crate::Result<BackendExtraction> {
    let n_fields = fields.len();
    let samples = marks.len() / n_fields.max(1);
    let mut scores = Vec::with_capacity(n_fields);
    let mut totals = [0u64; 3];
    for (f, spec) in fields.iter().enumerate() {
        let column: Vec<Mark> = (0..samples).map(|s| marks[s * n_fields + f]).collect();
        let count = |m: Mark| column.iter().filter(|&&x| x == m).count() as u64;
        let counted = column.iter().filter(|m| m.counted()).count() as u64;
        let correct = count(Mark::Correct);
        let mut confusion = [0u64; 3];
        for m in &column {
            for (t, c) in confusion.iter_mut().zip(m.confusion()) {
                *t += u64::from(c);
            }
        }
        for (t, c) in totals.iter_mut().zip(confusion) {
            *t += c;
        }
        let (accuracy, accuracy_method) = field_accuracy(&column, epochs, correct, counted)?;
        scores.push(FieldScores {
            name: spec.name.clone(),
            counted,
            correct,
            wrong: count(Mark::Wrong),
            missed: count(Mark::Missed),
            spurious: count(Mark::Spurious),
            both_absent: count(Mark::BothAbsent),
            invalid: count(Mark::InvalidWithGold) + count(Mark::InvalidWithoutGold),
            true_positives: confusion[0],
            false_positives: confusion[1],
            false_negatives: confusion[2],
            accuracy,
            accuracy_method,
            prf: Prf::of(confusion),
        });
    }
    let micro = Prf::of(totals);
    let macro_avg =
        macro_of(scores.iter().map(|s| [s.true_positives, s.false_positives, s.false_negatives]));
    let examples = examples(fields, &marks, epochs, candidates, ids);
    Ok(BackendExtraction { fields: scores, micro, macro_avg, marks, examples })
}

/// Field marks of an extraction run, as records are read, and the gold and answer of the first
/// few samples with a field error (for the report's examples). Gold is parsed again per record
/// rather than kept per item, so memory grows with items × fields marks only.
pub struct Tally {
    fields: Vec<FieldSpec>,
    /// Per backend: samples × fields marks.
    marks: Vec<Vec<Mark>>,
    /// Per backend: first samples (epoch 0) with a wrong, missed or spurious field.
    candidates: Vec<Candidates>,
}

impl Tally {
    pub fn new(meta: &RunMeta) -> Self {
        let n_fields = meta.task.fields.len();
        let samples = |b: &crate::journal::BackendMeta| meta.items.len() * b.epochs.max(1) as usize;
        Tally {
            fields: meta.task.fields.clone(),
            marks: meta
                .backends
                .iter()
                .map(|b| vec![Mark::Unscored; samples(b) * n_fields])
                .collect(),
            candidates: meta.backends.iter().map(|_| Candidates::default()).collect(),
        }
    }

    /// Scores one record again from its gold and answer, rather than trusting stored flags. A
    /// later record of the same sample replaces the earlier one's marks (a resumed run).
    pub fn record(
        &mut self,
        b: usize,
        s: usize,
        epoch: u32,
        gold: &str,
        answer: Option<&str>,
        failed: bool,
    ) -> Result<Outcome, ValueError> {
        use Mark;
        let n = self.fields.len();
        let marks = &mut self.marks[b][s * n..(s + 1) * n];
        self.candidates[b].remove(s);
        if failed {
            marks.fill(Mark::Unscored);
            return Ok(Outcome::Error);
        }
        let canonical = gold_values(&self.fields, gold)?;
        let object = match answer.map(serde_json::from_str::<serde_json::Value>) {
            Some(Ok(serde_json::Value::Object(object))) => Some(object),
            Some(_) => return Err(ValueError::AnswerNotObject),
            None => None,
        };
        let correct = match object {
            Some(object) => {
                let predicted = project(&self.fields, &object);
                marks.copy_from_slice(&rules::field_marks(&self.fields, &canonical, &predicted));
                if epoch == 0
                    && marks
                        .iter()
                        .any(|m| matches!(m, Mark::Wrong | Mark::Missed | Mark::Spurious))
                {
                    if let Ok(serde_json::Value::Object(gold)) = serde_json::from_str(gold) {
                        self.candidates[b].offer(s, gold, object);
                    }
                }
                return Ok(Outcome::Answered {
                    predicted: Some(0),
                    correct: rules::exact_match(marks),
                });
            }
            None => {
                for (m, g) in marks.iter_mut().zip(&canonical) {
                    *m = Mark::invalid(g.is_some());
                }
                false
            }
        };
        Ok(Outcome::Answered { predicted: None, correct })
    }

    pub fn finish(
        self,
        meta: &RunMeta,
        backends: &[BackendScores],
    ) -> crate::Result<RunExtraction> {
        let mut out = Vec::with_capacity(backends.len());
        for ((scores, marks), candidates) in backends.iter().zip(self.marks).zip(self.candidates) {
            out.push(summarize(&self.fields, marks, scores.epochs, &candidates, &meta.items)?);
        }
        Ok(RunExtraction { fields: self.fields, backends: out })
    }
}

/// Mean of the fields' precision, recall and F1 over the fields with any true or false positive
/// or negative (a field absent from gold and predictions alike says nothing).
fn macro_of(confusions: impl Iterator<Item = [u64; 3]>) -> Prf {
    let mut sum = Prf::default();
    let mut n = 0usize;
    for c in confusions.filter(|c| c.iter().any(|&x| x > 0)) {
        let p = Prf::of(c);
        sum.precision += p.precision;
        sum.recall += p.recall;
        sum.f1 += p.f1;
        n += 1;
    }
    if n == 0 {
        return Prf::default();
    }
    let n = n as f64;
    Prf { precision: sum.precision / n, recall: sum.recall / n, f1: sum.f1 / n }
}

/// Wilson over the counted samples; with several samples per item, Wilson on the effective
/// sample size with samples clustered by item.
fn field_accuracy(
    column: &[Mark],
    epochs: usize,
    correct: u64,
    counted: u64,
) -> crate::Result<(Interval, AccuracyMethod)> {
    if epochs > 1 {
        let as_outcomes: Vec<Outcome> = column
            .iter()
            .map(|&m| {
                if m.counted() {
                    Outcome::Answered { predicted: None, correct: m == Mark::Correct }
                } else {
                    Outcome::Missing
                }
            })
            .collect();
        return Ok((
            super::repeated_samples_accuracy(&as_outcomes, epochs)?,
            AccuracyMethod::Clustered,
        ));
    }
    Ok((wilson_interval(correct, counted, CONFIDENCE)?, AccuracyMethod::Wilson))
}

/// A few field errors in item order (the first sample of an item stands for it), at most two per
/// field so several fields show.
fn examples(
    fields: &[FieldSpec],
    marks: &[Mark],
    epochs: usize,
    candidates: &Candidates,
    ids: &[String],
) -> Vec<FieldError> {
    let n_fields = fields.len();
    let per_field = 2;
    let mut taken = vec![0usize; n_fields];
    let mut out = Vec::new();
    for (&s, (gold, answer)) in &candidates.0 {
        for (f, spec) in fields.iter().enumerate() {
            if out.len() >= EXAMPLES || taken[f] >= per_field {
                continue;
            }
            if matches!(marks[s * n_fields + f], Mark::Wrong | Mark::Missed | Mark::Spurious) {
                let value = |m: &JsonObject| m.get(&spec.name).cloned().unwrap_or(Value::Null);
                out.push(FieldError {
                    id: ids[s / epochs].clone(),
                    field: spec.name.clone(),
                    gold: value(gold),
                    predicted: value(answer),
                });
                taken[f] += 1;
            }
        }
    }
    out
}

/// Per item, per field: true positives, false positives, false negatives over the item's samples.
fn item_confusions(marks: &[Mark], epochs: usize, n_fields: usize) -> Vec<[u32; 3]> {
    let items = marks.len() / (n_fields * epochs).max(1);
    let mut out = vec![[0u32; 3]; items * n_fields];
    for (k, m) in marks.iter().enumerate() {
        let (s, f) = (k / n_fields, k % n_fields);
        let cell = &mut out[(s / epochs) * n_fields + f];
        for (t, c) in cell.iter_mut().zip(m.confusion()) {
            *t += c;
        }
    }
    out
}

/// Micro and macro precision, recall and F1 over the items in `indices` (with repeats).
fn overall_of(confusions: &[[u32; 3]], n_fields: usize, indices: &[usize], out: &mut [f64]) {
    let mut per_field = vec![[0u64; 3]; n_fields];
    for &i in indices {
        for (f, total) in per_field.iter_mut().enumerate() {
            for (t, c) in total.iter_mut().zip(confusions[i * n_fields + f]) {
                *t += u64::from(c);
            }
        }
    }
    let mut totals = [0u64; 3];
    for c in &per_field {
        for (t, x) in totals.iter_mut().zip(c) {
            *t += x;
        }
    }
    let micro = Prf::of(totals);
    let macro_avg = macro_of(per_field.into_iter());
    out.copy_from_slice(&[
        micro.precision,
        micro.recall,
        micro.f1,
        macro_avg.precision,
        macro_avg.recall,
        macro_avg.f1,
    ]);
}

/// The [`OVERALL`] metrics with percentile bootstrap intervals, resampling items (an item's
/// samples stay together); `None` where there is nothing to resample.
pub fn overall_intervals(
    backend: &BackendExtraction,
    epochs: usize,
    n_fields: usize,
    bootstrap: &BootstrapConfig,
) -> [Option<Interval>; 6] {
    let confusions = item_confusions(&backend.marks, epochs, n_fields);
    let items = confusions.len() / n_fields.max(1);
    let mut out = [None; 6];
    let answered = backend.marks.iter().any(|m| *m != Mark::Unscored);
    if !answered || n_fields == 0 {
        return out;
    }
    if let Ok(results) = bootstrap_intervals(items, bootstrap, 6, |idx, values| {
        overall_of(&confusions, n_fields, idx, values)
    }) {
        for (slot, r) in out.iter_mut().zip(results) {
            *slot = r.ok().map(|b| b.interval);
        }
    }
    out
}

/// Micro-F1 of `second` minus `first`, paired percentile bootstrap over the items.
pub fn micro_f1_difference(
    first: (&BackendExtraction, usize),
    second: (&BackendExtraction, usize),
    n_fields: usize,
    bootstrap: &BootstrapConfig,
) -> Option<Interval> {
    let a = item_confusions(&first.0.marks, first.1, n_fields);
    let b = item_confusions(&second.0.marks, second.1, n_fields);
    let items = a.len() / n_fields.max(1);
    let micro = |c: &[[u32; 3]], idx: &[usize]| {
        let mut totals = [0u64; 3];
        for &i in idx {
            for cell in &c[i * n_fields..(i + 1) * n_fields] {
                for (t, x) in totals.iter_mut().zip(cell) {
                    *t += u64::from(*x);
                }
            }
        }
        Prf::of(totals).f1
    };
    crate::stats::bootstrap_interval(items, bootstrap, |idx| micro(&b, idx) - micro(&a, idx))
        .ok()
        .map(|r| r.interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::FieldType;

    fn spec(name: &str) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            ty: FieldType::Date { day_first: true },
            required: false,
            description: None,
        }
    }

    /// Random marks: the counts add up, P/R/F1 follow from TP/FP/FN, and the bootstrap's
    /// estimates are the point estimates.
    #[test]
    fn counts_add_up_on_random_marks() {
        use rand::{Rng, SeedableRng};
        use Mark::*;
        let all = [
            Unscored,
            Correct,
            Wrong,
            Missed,
            Spurious,
            BothAbsent,
            InvalidWithGold,
            InvalidWithoutGold,
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut checked = 0;
        for round in 0..50 {
            let (items, n_fields, epochs) =
                (rng.random_range(1..40), rng.random_range(1..5), rng.random_range(1..3));
            let fields: Vec<FieldSpec> = (0..n_fields).map(|f| spec(&format!("f{f}"))).collect();
            let marks: Vec<Mark> = (0..items * epochs * n_fields)
                .map(|_| all[rng.random_range(0..all.len())])
                .collect();
            let ids: Vec<String> = (0..items).map(|i| i.to_string()).collect();
            let b =
                summarize(&fields, marks.clone(), epochs, &Candidates::default(), &ids).unwrap();
            let (mut tp, mut fp, mut fn_) = (0, 0, 0);
            for (f, s) in b.fields.iter().enumerate() {
                let column: Vec<Mark> = marks.iter().skip(f).step_by(n_fields).copied().collect();
                assert_eq!(
                    s.counted,
                    s.correct + s.wrong + s.missed + s.spurious + s.invalid,
                    "round {round}"
                );
                assert_eq!(
                    s.counted
                        + s.both_absent
                        + column.iter().filter(|m| **m == Unscored).count() as u64,
                    column.len() as u64
                );
                assert_eq!(s.true_positives, s.correct);
                assert_eq!(s.false_positives, s.wrong + s.spurious);
                assert_eq!(
                    s.false_negatives,
                    s.wrong
                        + s.missed
                        + column.iter().filter(|m| **m == InvalidWithGold).count() as u64
                );
                (tp, fp, fn_) =
                    (tp + s.true_positives, fp + s.false_positives, fn_ + s.false_negatives);
            }
            assert_eq!(b.micro, Prf::of([tp, fp, fn_]));
            let intervals = overall_intervals(
                &b,
                epochs,
                n_fields,
                &BootstrapConfig { seed: round, resamples: 50, confidence: 0.95 },
            );
            let point = [
                b.micro.precision,
                b.micro.recall,
                b.micro.f1,
                b.macro_avg.precision,
                b.macro_avg.recall,
                b.macro_avg.f1,
            ];
            for (i, p) in intervals.iter().zip(point) {
                if let Some(i) = i {
                    assert!((i.estimate - p).abs() < 1e-12, "round {round}: {} vs {p}", i.estimate);
                    checked += 1;
                }
            }
        }
        assert!(checked > 200, "only {checked} bootstrap estimates were compared");
    }

    /// Two fields, five items, hand-counted.
    #[test]
    fn counts_follow_the_documented_semantics() {
        use Mark::*;
        let marks = vec![
            Correct,
            Correct, //
            Wrong,
            Missed, //
            InvalidWithGold,
            InvalidWithoutGold, //
            Spurious,
            BothAbsent, //
            Correct,
            Unscored, // the second field of an unanswered item cannot happen alone, but is ignored
        ];
        let ids: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        let b = summarize(&[spec("a"), spec("b")], marks, 1, &Candidates::default(), &ids).unwrap();
        let (a, bb) = (&b.fields[0], &b.fields[1]);
        // a: correct 2, wrong 1, invalid 1, spurious 1 → counted 5; TP 2, FP 2, FN 2.
        assert_eq!(
            (a.counted, a.correct, a.true_positives, a.false_positives, a.false_negatives),
            (5, 2, 2, 2, 2)
        );
        assert_eq!(a.accuracy.estimate, 0.4);
        assert_eq!(a.prf, Prf { precision: 0.5, recall: 0.5, f1: 0.5 });
        // b: correct 1, missed 1, invalid 1 (no gold), both absent 1 → counted 3; TP 1, FP 0, FN 1.
        assert_eq!(
            (bb.counted, bb.correct, bb.true_positives, bb.false_positives, bb.false_negatives),
            (3, 1, 1, 0, 1)
        );
        assert_eq!(bb.prf, Prf { precision: 1.0, recall: 0.5, f1: 2.0 / 3.0 });
        // Micro: TP 3, FP 2, FN 3.
        assert_eq!(b.micro, Prf { precision: 0.6, recall: 0.5, f1: 6.0 / 11.0 });
        assert!((b.macro_avg.f1 - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-15);
        let intervals =
            overall_intervals(&b, 1, 2, &BootstrapConfig { seed: 1, ..BootstrapConfig::default() });
        assert_eq!(intervals[2].unwrap().estimate, 6.0 / 11.0);
        assert!(intervals
            .iter()
            .all(|i| i.is_some_and(|i| i.low <= i.estimate && i.estimate <= i.high)));
    }
}
