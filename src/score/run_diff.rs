//! Two runs of the same suite, paired on item ids: what changed between last week's run and
//! today's, or before and after a prompt change.
//!
//! Each backend of run A is paired with the backend of run B with the same id (or the pairs a
//! user names). Over the items both runs answered, the change in accuracy is B − A with
//! Newcombe's paired interval and McNemar's exact test, exactly as two backends of one run are
//! compared (`score::compare`); with `epochs` > 1 on either side, the unit is the item: each
//! item's mean over its answered samples, compared with [`paired_mean_difference`]. Every
//! per-run figure (accuracy over the whole run, cost per correct answer) comes from each run's
//! own [`analyse`], so it equals that run's `results.json`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::journal::{self, RunMeta};
use crate::stats::{mcnemar_exact_p, paired_difference_interval, paired_mean_difference};
use crate::stats::{Interval, PairedCounts};

use super::analysis::{analyse, Analysis};
use super::compare::DifferenceMethod;
use super::{RunScores, CONFIDENCE};

/// Why two runs cannot be compared, or what failed while reading them.
#[derive(Debug, thiserror::Error)]
pub enum RunDiffError {
    /// Different suites, tasks, no shared items or no backends to pair.
    #[error("cannot compare {a} with {b}: {reason}")]
    NotComparable { a: PathBuf, b: PathBuf, reason: String },
    /// A `--pair` names a backend a run does not have.
    #[error("{run}: no backend `{backend}` in this run (it has: {available})")]
    UnknownBackend { run: PathBuf, backend: String, available: String },
    #[error(transparent)]
    Run(#[from] crate::error::Error),
    #[error("statistics: {0}")]
    Stats(#[from] crate::stats::StatsError),
}

/// A backend of run A to compare with a backend of run B, written `A=B` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendPair {
    pub a: String,
    pub b: String,
}

/// A `--pair` that is not `A=B`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{0}`: write the pair as BACKEND_IN_A=BACKEND_IN_B")]
pub struct PairError(String);

impl std::str::FromStr for BackendPair {
    type Err = PairError;
    fn from_str(s: &str) -> Result<Self, PairError> {
        match s.split_once('=') {
            Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                Ok(BackendPair { a: a.trim().to_string(), b: b.trim().to_string() })
            }
            _ => Err(PairError(s.to_string())),
        }
    }
}

/// One run as the comparison read it.
#[derive(Debug, Clone)]
pub struct RunSide {
    pub dir: PathBuf,
    pub meta: RunMeta,
    pub analysis: Analysis,
}

/// The comparison of two runs.
#[derive(Debug, Clone)]
pub struct RunDiff {
    pub a: RunSide,
    pub b: RunSide,
    /// The suite file's SHA-256 differs between the runs (same name and task).
    pub suite_changed: bool,
    /// Items in both runs' item lists.
    pub shared_items: usize,
    /// One per pair of backends, in the order of run A (or of the `--pair` flags).
    pub backends: Vec<BackendDiff>,
    /// Backends with no partner in the other run: `(in_run_a, id)`.
    pub unpaired: Vec<(bool, String)>,
}

impl RunDiff {
    /// Whether any backend got significantly worse: its interval lies entirely below 0.
    pub fn any_regression(&self) -> bool {
        self.backends.iter().any(BackendDiff::regressed)
    }
}

/// A backend of run A against its partner in run B.
#[derive(Debug, Clone)]
pub struct BackendDiff {
    /// Index into run A's (and B's) backends.
    pub index_a: usize,
    pub index_b: usize,
    pub id_a: String,
    pub id_b: String,
    /// Items both runs answered (at least one sample each).
    pub items_compared: u64,
    /// Accuracy over the compared items (mean of per-item accuracies with several samples).
    pub accuracy_a: f64,
    pub accuracy_b: f64,
    /// The 2×2 table (first = A, second = B); `None` with several samples per item.
    pub counts: Option<PairedCounts>,
    /// Accuracy of B minus accuracy of A over the compared items.
    pub difference: Interval,
    pub p_value: f64,
    pub method: DifferenceMethod,
    /// Classification: recall per class over the compared items, in task label order.
    pub classes: Vec<ClassDiff>,
    /// Items whose accuracy fell (right → wrong with one sample), in run A's item order.
    pub worse: Vec<Flip>,
    /// Items whose accuracy rose (wrong → right with one sample).
    pub better: Vec<Flip>,
    /// Cost per correct answer in each run, from each run's analysis.
    pub per_correct_a: Option<Interval>,
    pub per_correct_b: Option<Interval>,
}

impl BackendDiff {
    /// Significantly worse in B: the interval for B − A lies entirely below 0.
    pub fn regressed(&self) -> bool {
        self.items_compared > 0 && self.difference.high < 0.0
    }

    /// Significantly better in B.
    pub fn improved(&self) -> bool {
        self.items_compared > 0 && self.difference.low > 0.0
    }

    /// Change in cost per correct answer, B − A, in USD.
    pub fn per_correct_change(&self) -> Option<f64> {
        Some(self.per_correct_b?.estimate - self.per_correct_a?.estimate)
    }
}

/// One class's recall over the compared items, in each run.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassDiff {
    pub label: String,
    /// Compared items whose gold (in that run) is this label.
    pub support_a: u64,
    pub support_b: u64,
    /// `None` without support.
    pub recall_a: Option<f64>,
    pub recall_b: Option<f64>,
}

/// An item that changed between the runs, with what each run replied (its first sample).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Flip {
    pub id: String,
    pub gold_a: String,
    pub gold_b: String,
    pub answer_a: Option<String>,
    pub answer_b: Option<String>,
    pub reply_a: Option<String>,
    pub reply_b: Option<String>,
    /// The item's accuracy in each run (0 or 1 with one sample).
    pub accuracy_a: f64,
    pub accuracy_b: f64,
}

/// Reads and analyses both runs and compares them; `pairs` empty pairs backends by id.
pub fn diff_runs(a: &Path, b: &Path, pairs: &[BackendPair]) -> Result<RunDiff, RunDiffError> {
    let read = |dir: &Path| -> Result<RunSide, RunDiffError> {
        let meta = RunMeta::read(dir)?;
        let analysis = analyse(dir, &meta)?;
        Ok(RunSide { dir: dir.to_path_buf(), meta, analysis })
    };
    let (a, b) = (read(a)?, read(b)?);
    let refuse =
        |reason: String| RunDiffError::NotComparable { a: a.dir.clone(), b: b.dir.clone(), reason };
    let (ma, mb) = (&a.meta, &b.meta);
    if ma.suite.name != mb.suite.name {
        return Err(refuse(format!(
            "they are runs of different suites (`{}` and `{}`)",
            ma.suite.name, mb.suite.name
        )));
    }
    if ma.task.kind != mb.task.kind {
        return Err(refuse(format!(
            "suite `{}` changed its task kind ({:?} and {:?})",
            ma.suite.name, ma.task.kind, mb.task.kind
        )));
    }
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    if set(&ma.task.labels) != set(&mb.task.labels) {
        return Err(refuse(format!(
            "suite `{}` changed its labels ([{}] and [{}])",
            ma.suite.name,
            ma.task.labels.join(", "),
            mb.task.labels.join(", ")
        )));
    }
    let field_names =
        |m: &RunMeta| m.task.fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    if field_names(ma) != field_names(mb) {
        return Err(refuse(format!("suite `{}` changed its fields", ma.suite.name)));
    }
    let in_b: HashMap<&str, usize> =
        mb.items.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    // (index in A, index in B), in A's item order.
    let shared: Vec<(usize, usize)> = ma
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, id)| Some((i, *in_b.get(id.as_str())?)))
        .collect();
    if shared.is_empty() {
        return Err(refuse(format!(
            "they share no item ids ({} items in the first, {} in the second)",
            ma.items.len(),
            mb.items.len()
        )));
    }

    let index_of = |m: &RunMeta, id: &str| m.backends.iter().position(|x| x.id == id);
    let mut unpaired = Vec::new();
    let pairs: Vec<(usize, usize)> = if pairs.is_empty() {
        let mut out = Vec::new();
        for (i, backend) in ma.backends.iter().enumerate() {
            match index_of(mb, &backend.id) {
                Some(j) => out.push((i, j)),
                None => unpaired.push((true, backend.id.clone())),
            }
        }
        for backend in &mb.backends {
            if index_of(ma, &backend.id).is_none() {
                unpaired.push((false, backend.id.clone()));
            }
        }
        out
    } else {
        let find = |side: &RunSide, id: &str| {
            index_of(&side.meta, id).ok_or_else(|| RunDiffError::UnknownBackend {
                run: side.dir.clone(),
                backend: id.to_string(),
                available: side
                    .meta
                    .backends
                    .iter()
                    .map(|x| format!("`{}`", x.id))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        };
        pairs
            .iter()
            .map(|p| Ok((find(&a, &p.a)?, find(&b, &p.b)?)))
            .collect::<Result<_, RunDiffError>>()?
    };
    if pairs.is_empty() {
        return Err(refuse(
            "no backend id is in both runs; name the pairs with --pair BACKEND_IN_A=BACKEND_IN_B"
                .into(),
        ));
    }

    let mut backends = pairs
        .iter()
        .map(|&(i, j)| backend_diff(&a, &b, i, j, &shared))
        .collect::<Result<Vec<_>, _>>()?;
    attach_replies(&a, &b, &mut backends)?;
    Ok(RunDiff {
        suite_changed: ma.suite.sha256 != mb.suite.sha256,
        shared_items: shared.len(),
        a,
        b,
        backends,
        unpaired,
    })
}

/// Each item's accuracy over its answered samples; `None` when no sample was answered.
fn item_means(scores: &RunScores, backend: usize) -> Vec<Option<f64>> {
    let s = &scores.backends[backend];
    let epochs = s.epochs.max(1);
    (0..scores.items.len())
        .map(|i| {
            let answered: Vec<bool> = s.outcomes[i * epochs..(i + 1) * epochs]
                .iter()
                .filter_map(|o| o.correct())
                .collect();
            (!answered.is_empty())
                .then(|| answered.iter().filter(|&&c| c).count() as f64 / answered.len() as f64)
        })
        .collect()
}

fn backend_diff(
    a: &RunSide,
    b: &RunSide,
    i: usize,
    j: usize,
    shared: &[(usize, usize)],
) -> Result<BackendDiff, RunDiffError> {
    let (sa, sb) = (&a.analysis.scores, &b.analysis.scores);
    let (ma, mb) = (item_means(sa, i), item_means(sb, j));
    // (index in A, index in B, mean in A, mean in B) for items both runs answered.
    let compared: Vec<(usize, usize, f64, f64)> =
        shared.iter().filter_map(|&(x, y)| Some((x, y, ma[x]?, mb[y]?))).collect();
    let n = compared.len();
    let mean = |v: &mut dyn Iterator<Item = f64>| {
        if n == 0 {
            0.0
        } else {
            v.sum::<f64>() / n as f64
        }
    };
    let accuracy_a = mean(&mut compared.iter().map(|c| c.2));
    let accuracy_b = mean(&mut compared.iter().map(|c| c.3));
    let single = sa.backends[i].epochs <= 1 && sb.backends[j].epochs <= 1;
    let (counts, difference, p_value, method) = if single {
        let mut counts = PairedCounts::default();
        for &(_, _, x, y) in &compared {
            match (x == 1.0, y == 1.0) {
                (true, true) => counts.both_correct += 1,
                (true, false) => counts.only_first += 1,
                (false, true) => counts.only_second += 1,
                (false, false) => counts.both_wrong += 1,
            }
        }
        (
            Some(counts),
            paired_difference_interval(&counts, CONFIDENCE)?,
            mcnemar_exact_p(counts.only_first, counts.only_second)?,
            DifferenceMethod::NewcombeMcNemar,
        )
    } else {
        let differences: Vec<f64> = compared.iter().map(|c| c.3 - c.2).collect();
        let (d, p) = paired_mean_difference(&differences, CONFIDENCE)?;
        (None, d, p, DifferenceMethod::PairedItemMeans)
    };

    let classes = if sa.extraction.is_none() {
        sa.labels
            .iter()
            .map(|label| {
                let recall = |scores: &RunScores, picks: &mut dyn Iterator<Item = (usize, f64)>| {
                    let g = scores.labels.iter().position(|l| l == label).map(|g| g as u16);
                    let (mut support, mut sum) = (0u64, 0.0);
                    for (item, m) in picks {
                        if g.is_some() && scores.gold[item] == g {
                            support += 1;
                            sum += m;
                        }
                    }
                    (support, (support > 0).then(|| sum / support as f64))
                };
                let (support_a, recall_a) = recall(sa, &mut compared.iter().map(|c| (c.0, c.2)));
                let (support_b, recall_b) = recall(sb, &mut compared.iter().map(|c| (c.1, c.3)));
                ClassDiff { label: label.clone(), support_a, support_b, recall_a, recall_b }
            })
            .collect()
    } else {
        Vec::new()
    };

    let flip = |&(x, _, mx, my): &(usize, usize, f64, f64)| Flip {
        id: sa.items[x].clone(),
        gold_a: String::new(),
        gold_b: String::new(),
        answer_a: None,
        answer_b: None,
        reply_a: None,
        reply_b: None,
        accuracy_a: mx,
        accuracy_b: my,
    };
    Ok(BackendDiff {
        index_a: i,
        index_b: j,
        id_a: sa.backends[i].id.clone(),
        id_b: sb.backends[j].id.clone(),
        items_compared: n as u64,
        accuracy_a,
        accuracy_b,
        counts,
        difference,
        p_value,
        method,
        classes,
        worse: compared.iter().filter(|c| c.3 < c.2).map(flip).collect(),
        better: compared.iter().filter(|c| c.3 > c.2).map(flip).collect(),
        per_correct_a: a.analysis.backends[i].cost.per_correct,
        per_correct_b: b.analysis.backends[j].cost.per_correct,
    })
}

/// The journal fields a flip shows.
#[derive(Deserialize)]
struct ReplyRecord {
    id: String,
    backend: String,
    reply: Option<String>,
    answer: Option<String>,
    gold: String,
    #[serde(default)]
    epoch: u32,
}

/// Fills in each flip's gold, answers and replies from both journals (the first sample of each
/// item; a later record of the same sample replaces an earlier one, as in scoring).
fn attach_replies(a: &RunSide, b: &RunSide, diffs: &mut [BackendDiff]) -> Result<(), RunDiffError> {
    type Seen = (String, Option<String>, Option<String>);
    let read = |side: &RunSide, wanted: &HashMap<(&str, &str), ()>| {
        let mut found: HashMap<(String, String), Seen> = HashMap::new();
        journal::read_records(&side.dir, |r: ReplyRecord| {
            if r.epoch == 0 && wanted.contains_key(&(r.backend.as_str(), r.id.as_str())) {
                found.insert((r.backend, r.id), (r.gold, r.answer, r.reply));
            }
        })
        .map(|()| found)
    };
    let mut wanted_a = HashMap::new();
    let mut wanted_b = HashMap::new();
    for d in diffs.iter() {
        for flip in d.worse.iter().chain(&d.better) {
            wanted_a.insert((d.id_a.as_str(), flip.id.as_str()), ());
            wanted_b.insert((d.id_b.as_str(), flip.id.as_str()), ());
        }
    }
    let found_a = read(a, &wanted_a)?;
    let found_b = read(b, &wanted_b)?;
    for d in diffs.iter_mut() {
        let (id_a, id_b) = (d.id_a.clone(), d.id_b.clone());
        for flip in d.worse.iter_mut().chain(d.better.iter_mut()) {
            if let Some((gold, answer, reply)) = found_a.get(&(id_a.clone(), flip.id.clone())) {
                flip.gold_a.clone_from(gold);
                flip.answer_a.clone_from(answer);
                flip.reply_a.clone_from(reply);
            }
            if let Some((gold, answer, reply)) = found_b.get(&(id_b.clone(), flip.id.clone())) {
                flip.gold_b.clone_from(gold);
                flip.answer_b.clone_from(answer);
                flip.reply_b.clone_from(reply);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A run of suite `s` with one backend `m` of `epochs` samples: `right[i]` is how many
    /// samples of item `i` (ids `i0`, `i1`, …, gold `yes`) are right.
    fn run(dir: &Path, labels: &[&str], epochs: u32, right: &[u32]) {
        let items: Vec<String> = (0..right.len()).map(|i| format!("i{i}")).collect();
        let meta = json!({
            "schema_version": 1, "evalgate_version": "0", "started_at": "2026-01-01T00:00:00Z",
            "finished_at": null, "skipped": [], "items": items,
            "suite": { "name": "s", "path": "s.yaml", "sha256": "x", "description": null },
            "task": { "kind": "classification", "labels": labels },
            "backends": [{ "id": "m", "provider": "openai", "model": "m", "strategy": "zero-shot",
                           "base_url": null, "few_shot": null, "epochs": epochs }],
        });
        std::fs::write(dir.join(journal::META_FILE), meta.to_string()).unwrap();
        let mut lines = String::new();
        for (i, &k) in right.iter().enumerate() {
            for e in 0..epochs {
                let answer = if e < k { "yes" } else { "no" };
                let record = json!({
                    "id": format!("i{i}"), "backend": "m", "prompt": [], "reply": answer,
                    "answer": answer, "gold": "yes", "correct": answer == "yes", "invalid": false,
                    "tokens": { "input": 1, "output": 1 }, "latency_ms": 1.0, "attempts": 1,
                    "error": null, "epoch": e,
                });
                lines.push_str(&format!("{record}\n"));
            }
        }
        std::fs::write(dir.join(journal::RECORDS_FILE), lines).unwrap();
    }

    #[test]
    fn with_several_samples_items_are_compared_by_their_means() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run(a.path(), &["yes", "no"], 3, &[3, 3, 0, 1]);
        run(b.path(), &["yes", "no"], 3, &[3, 1, 3, 1]);
        let diff = diff_runs(a.path(), b.path(), &[]).unwrap();
        let d = &diff.backends[0];
        assert_eq!(
            (d.method, d.counts, d.items_compared),
            (DifferenceMethod::PairedItemMeans, None, 4)
        );
        let (expected, p) =
            paired_mean_difference(&[0.0, -2.0 / 3.0, 1.0, 0.0], CONFIDENCE).unwrap();
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12;
        assert!(close(d.difference.low, expected.low) && close(d.difference.high, expected.high));
        assert!(close(d.p_value, p));
        assert!((d.difference.estimate - 1.0 / 12.0).abs() < 1e-12);
        assert_eq!(d.worse.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["i1"]);
        assert_eq!(d.better.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["i2"]);
        // The flip shows the first sample's reply.
        assert_eq!(d.worse[0].reply_b.as_deref(), Some("yes"));
        assert!((d.worse[0].accuracy_b - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn other_labels_and_unknown_backends_are_refused() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run(a.path(), &["yes", "no"], 1, &[1, 0]);
        run(b.path(), &["yes", "no", "maybe"], 1, &[1, 1]);
        let e = diff_runs(a.path(), b.path(), &[]).unwrap_err().to_string();
        assert!(
            e.contains("changed its labels") && e.contains(&a.path().display().to_string()),
            "{e}"
        );
        run(b.path(), &["no", "yes"], 1, &[1, 1]);
        let pair = BackendPair { a: "m".into(), b: "gone".into() };
        let e = diff_runs(a.path(), b.path(), &[pair]).unwrap_err().to_string();
        assert!(e.contains("`gone`") && e.contains("`m`"), "{e}");
        let diff = diff_runs(a.path(), b.path(), &[]).unwrap();
        let d = &diff.backends[0];
        assert_eq!(d.counts.map(|c| (c.both_correct, c.only_second)), Some((1, 1)));
        assert!(!diff.suite_changed && !diff.any_regression());
    }

    #[test]
    fn pairs_parse_from_the_command_line() {
        assert_eq!(
            "old=new".parse::<BackendPair>(),
            Ok(BackendPair { a: "old".into(), b: "new".into() })
        );
        assert!("old".parse::<BackendPair>().is_err());
        assert!("=new".parse::<BackendPair>().is_err());
    }
}
