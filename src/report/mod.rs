//! Outputs of a run, rebuilt at any time from its journal: `results.json`, `records.csv` and
//! `report.md` (plus the GitHub step summary when `GITHUB_STEP_SUMMARY` is set, by the CLI).

pub mod chart;
pub mod csv;
pub mod history;
pub mod junit;
pub mod markdown;
pub mod prose;
pub mod results;
pub mod run_diff;

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use markdown::{Details, Disagreement, InvalidReplies, InvalidReply};
pub use results::Results;

use crate::error::{Error, Result};
use crate::gate::{self, GatePolicy};
use crate::journal::{self, Record, RunMeta};
use crate::prompt::Role;
use crate::score::{self, Outcome};

/// The files written for a run.
pub const RESULTS_FILE: &str = "results.json";
pub const REPORT_FILE: &str = "report.md";
pub const CHART_FILE: &str = "chart.svg";

/// Where [`write_outputs_with`] keeps its options beside the journal, so that `evalgate report`
/// rebuilds the same outputs (the gate verdict and the error-rate notices included).
pub const OPTIONS_FILE: &str = "report-options.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedOptions {
    gate: Option<GatePolicy>,
    max_error_rate: Option<f64>,
}

/// What a run's outputs say beyond its scores.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputOptions<'a> {
    /// Judge the run by this policy; the verdict goes at the top of `report.md` and into
    /// `results.json`.
    pub gate: Option<&'a GatePolicy>,
    /// Name, at the top of the report, every backend whose error rate is above this.
    pub max_error_rate: Option<f64>,
}

/// Scores the run in `dir` and writes every output; returns the results and the markdown. The
/// options of the last [`write_outputs_with`] on `dir`, if any, apply again.
pub fn write_outputs(dir: &Path) -> Result<(Results, String)> {
    let path = dir.join(OPTIONS_FILE);
    let saved: SavedOptions = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Error::io(&path, e.into()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedOptions::default(),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let options = OutputOptions { gate: saved.gate.as_ref(), max_error_rate: saved.max_error_rate };
    write_with(dir, &options)
}

/// [`write_outputs`], with a gate verdict and error-rate limit, which are kept in
/// [`OPTIONS_FILE`] for rebuilds. A gate that cannot judge the run (a gated backend skipped or
/// absent) is an error, returned after the other outputs are written.
pub fn write_outputs_with(dir: &Path, options: &OutputOptions) -> Result<(Results, String)> {
    let saved =
        SavedOptions { gate: options.gate.cloned(), max_error_rate: options.max_error_rate };
    let path = dir.join(OPTIONS_FILE);
    let json = serde_json::to_string_pretty(&saved).map_err(|e| Error::io(&path, e.into()))?;
    write_file(&path, &(json + "\n"))?;
    write_with(dir, options)
}

fn write_with(dir: &Path, options: &OutputOptions) -> Result<(Results, String)> {
    let meta = RunMeta::read(dir)?;
    // One pass over the journal feeds scoring, records.csv and the inputs the report quotes.
    let mut scoring = score::RunScoring::new(&meta);
    let mut rows = csv::RowWriter::create(dir, &meta)?;
    let mut inputs = ItemInputs::new(&meta);
    let mut invalid = InvalidCollector::new(&meta);
    journal::read_numbered_records(dir, |r: Record, line| {
        scoring.add((&r).into(), line);
        inputs.add(&r);
        invalid.add(&r);
        rows.add(r);
    })?;
    let analysis = score::analysis::derive(&meta, scoring.finish(dir)?)?;
    rows.finish()?;
    let mut results = results::build(&meta, &analysis);
    let scores = &analysis.scores;
    let (gate, gate_error) = match options.gate.map(|p| gate::evaluate(p, &meta, &analysis)) {
        Some(Ok(verdict)) => (Some(verdict), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    // A gated backend's limit is the policy's (5% by default); any other's is the run's, if any.
    let limit_of = |id: &str| {
        let gated =
            options.gate.is_some_and(|p| p.candidate == id || p.baseline.as_deref() == Some(id));
        match options.gate.and_then(|p| p.max_error_rate) {
            Some(limit) if gated => Some(limit),
            _ if gated => Some(options.max_error_rate.unwrap_or(gate::DEFAULT_MAX_ERROR_RATE)),
            _ => options.max_error_rate,
        }
    };
    results.error_rate_exceeded = scores
        .backends
        .iter()
        .filter_map(|b| {
            let limit = limit_of(&b.id)?;
            gate::error_rate_exceeded(b, limit).then(|| results::ErrorRateResult {
                backend: b.id.clone(),
                errors: b.errors,
                requests: b.answered + b.errors,
                error_rate: b.error_rate.estimate,
                max_error_rate: limit,
            })
        })
        .collect();
    results.gate = gate;

    // Extraction answers differ field by field; the report shows field errors instead.
    let top_two = top_two(&results).filter(|_| scores.extraction.is_none());
    let (disagreements, disagreeing) = match top_two {
        Some((a, b)) => disagreements(&meta, scores, &inputs, a, b),
        None => (Vec::new(), 0),
    };
    let details =
        Details { disagreements, disagreeing, invalid_replies: invalid.finish(&meta, scores) };
    let markdown = markdown::render(&results, top_two, &details);

    let results_path = dir.join(RESULTS_FILE);
    let json =
        serde_json::to_string_pretty(&results).map_err(|e| Error::io(&results_path, e.into()))?;
    write_file(&results_path, &(json + "\n"))?;
    write_file(&dir.join(REPORT_FILE), &markdown)?;
    if scores.extraction.is_none() {
        csv::write_classes(dir, &results)?;
    }
    let chart_path = dir.join(CHART_FILE);
    match chart::render(&results) {
        Some(svg) => write_file(&chart_path, &svg)?,
        // A rebuilt report must not keep a chart its results no longer support.
        None if chart_path.exists() => {
            std::fs::remove_file(&chart_path).map_err(|e| Error::io(&chart_path, e))?
        }
        None => {}
    }
    match gate_error {
        Some(e) => Err(e),
        None => Ok((results, markdown)),
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// The two most accurate backends, best first.
fn top_two(results: &Results) -> Option<(&str, &str)> {
    let mut ranked: Vec<_> = results.backends.iter().filter(|b| b.answered > 0).collect();
    ranked
        .sort_by(|a, b| b.accuracy.estimate.total_cmp(&a.accuracy.estimate).then(a.id.cmp(&b.id)));
    match ranked.as_slice() {
        [a, b, ..] => Some((a.id.as_str(), b.id.as_str())),
        _ => None,
    }
}

const DISAGREEMENT_SAMPLE: usize = 15;

/// Each item's input as the report quotes it: the last user turn of the item's first record (the
/// item itself, rendered by the task's input template), cut to 120 characters.
struct ItemInputs<'m> {
    index: HashMap<&'m str, usize>,
    inputs: Vec<Option<String>>,
}

impl<'m> ItemInputs<'m> {
    fn new(meta: &'m RunMeta) -> Self {
        ItemInputs {
            index: meta.items.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect(),
            inputs: vec![None; meta.items.len()],
        }
    }

    fn add(&mut self, r: &Record) {
        let Some(&i) = self.index.get(r.id.as_str()) else { return };
        if self.inputs[i].is_none() {
            self.inputs[i] = r
                .prompt
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| crate::text::excerpt(&m.content, 120));
        }
    }
}

fn disagreements(
    meta: &RunMeta,
    scores: &score::RunScores,
    inputs: &ItemInputs<'_>,
    first: &str,
    second: &str,
) -> (Vec<Disagreement>, usize) {
    let index = |id: &str| meta.backends.iter().position(|b| b.id == id);
    let (Some(a), Some(b)) = (index(first), index(second)) else { return (Vec::new(), 0) };
    let (oa, ob) = (&scores.backends[a].outcomes, &scores.backends[b].outcomes);
    // With repeated sampling, the first sample of each item stands for it here.
    let (ea, eb) = (scores.backends[a].epochs, scores.backends[b].epochs);
    let label = |p: Option<u16>| p.map(|p| scores.labels[usize::from(p)].clone());
    let mut picked: Vec<Disagreement> = Vec::new();
    let mut disagreeing = 0;
    for i in 0..scores.items.len() {
        if let (Outcome::Answered { predicted: pa, .. }, Outcome::Answered { predicted: pb, .. }) =
            (oa[i * ea], ob[i * eb])
        {
            disagreeing += usize::from(pa != pb);
            if pa != pb && picked.len() < DISAGREEMENT_SAMPLE {
                picked.push(Disagreement {
                    id: scores.items[i].clone(),
                    gold: scores.gold[i]
                        .map(|g| scores.labels[usize::from(g)].clone())
                        .unwrap_or_default(),
                    first: label(pa),
                    second: label(pb),
                    input: inputs.inputs[i].clone().unwrap_or_default(),
                });
            }
        }
    }
    (picked, disagreeing)
}

/// Invalid replies shown per backend.
const INVALID_SAMPLE: usize = 5;

/// The reply text of invalid answers, gathered in the report step's journal pass: per backend and
/// sample, the latest record's reply when that record is invalid (a resumed run's later record
/// replaces an earlier one, as in scoring).
struct InvalidCollector<'m> {
    labels: std::collections::HashSet<&'m str>,
    extraction: bool,
    backend_index: HashMap<&'m str, usize>,
    item_index: HashMap<&'m str, usize>,
    epochs: Vec<usize>,
    /// (backend, sample) → the reply, cut short.
    replies: HashMap<(usize, usize), String>,
}

impl<'m> InvalidCollector<'m> {
    fn new(meta: &'m RunMeta) -> Self {
        InvalidCollector {
            labels: meta.task.labels.iter().map(String::as_str).collect(),
            extraction: meta.task.kind == crate::suite::TaskKind::Extraction,
            backend_index: meta
                .backends
                .iter()
                .enumerate()
                .map(|(i, b)| (b.id.as_str(), i))
                .collect(),
            item_index: meta.items.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect(),
            epochs: meta.backends.iter().map(|b| b.epochs.max(1) as usize).collect(),
            replies: HashMap::new(),
        }
    }

    fn add(&mut self, r: &Record) {
        let (Some(&b), Some(&i)) =
            (self.backend_index.get(r.backend.as_str()), self.item_index.get(r.id.as_str()))
        else {
            return;
        };
        let sample = i * self.epochs[b] + r.epoch as usize;
        // The same rule as scoring: an answered record whose answer is no label (no JSON object
        // for extraction).
        let invalid = r.error.is_none()
            && match r.answer.as_deref() {
                None => true,
                Some(a) => !self.extraction && !self.labels.contains(a),
            };
        if invalid {
            let reply = r.reply.as_deref().unwrap_or_default();
            self.replies.insert((b, sample), crate::text::excerpt(reply.trim(), 120));
        } else {
            self.replies.remove(&(b, sample));
        }
    }

    /// Per backend with any invalid reply: the count and the first few, in item order.
    fn finish(self, meta: &RunMeta, scores: &score::RunScores) -> Vec<InvalidReplies> {
        let mut per_backend: Vec<Vec<(usize, String)>> = vec![Vec::new(); meta.backends.len()];
        for ((b, sample), reply) in self.replies {
            per_backend[b].push((sample, reply));
        }
        per_backend
            .into_iter()
            .enumerate()
            .filter(|(_, replies)| !replies.is_empty())
            .map(|(b, mut replies)| {
                replies.sort_by_key(|(sample, _)| *sample);
                let epochs = self.epochs[b];
                InvalidReplies {
                    backend: meta.backends[b].id.clone(),
                    total: replies.len(),
                    shown: replies
                        .into_iter()
                        .take(INVALID_SAMPLE)
                        .map(|(sample, reply)| InvalidReply {
                            id: scores.items[sample / epochs].clone(),
                            reply,
                        })
                        .collect(),
                }
            })
            .collect()
    }
}
