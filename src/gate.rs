//! The CI gate: a policy (the suite's `gate:` section, or a `--policy` file) and its verdict on a
//! run. The verdict reads an [`Analysis`] and the statistics of [`crate::stats`]; it computes no
//! figure of its own, only where each interval lies against its threshold.
//!
//! Every check is `pass`, `fail` or `inconclusive`. A check against a threshold judges the
//! two-sided 95% interval (the one the report prints): a floor passes when the lower bound
//! reaches it, fails when the upper bound is below it, and is inconclusive when the interval
//! straddles it — with the number of items that would settle it. `judge: estimate` judges the
//! point estimate alone. Non-inferiority reads the paired interval of candidate − baseline: its
//! lower bound must be above −margin, a one-sided test at level 2.5% (ICH E9 §5.5).
//!
//! A gated backend whose requests failed too often (`max_error_rate`, 5% by default) is not a
//! model that failed the gate but an infrastructure problem: the check is marked
//! [`Check::infrastructure`], and the CLI exits 2 rather than 1.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::error::{Error, Result, SuiteErrors, SuiteProblem};
use crate::journal::RunMeta;
use crate::score::analysis::Analysis;
use crate::score::extraction::Mark;
use crate::score::{compare, BackendScores, Outcome, CONFIDENCE};
use crate::stats::decision::{
    clustered_proportion_interval, items_to_clear_threshold, items_to_show_not_worse,
    items_to_stay_below, paired_design,
};
use crate::stats::{Interval, PairedCounts};
use crate::suite::schema::{GateFile, PolicyFile};
use crate::suite::TaskKind;

/// The error rate above which a backend's results are not trusted, unless the policy (or
/// `run --max-error-rate`) says otherwise.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.05;
/// The power the suite must have to show non-inferiority at the margin, unless `power:` says.
pub const DEFAULT_POWER: f64 = 0.8;

/// What a threshold is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Judge {
    /// The confidence bound on the unfavourable side (the default).
    #[default]
    Bound,
    /// The point estimate alone: pass or fail, never inconclusive.
    Estimate,
}

/// A resolved, validated gate policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GatePolicy {
    pub candidate: String,
    pub baseline: Option<String>,
    pub judge: Judge,
    /// Classification accuracy, or an extraction's exact-record match rate.
    pub min_accuracy: Option<f64>,
    pub non_inferiority_margin: Option<f64>,
    pub superiority: bool,
    pub max_error_rate: Option<f64>,
    pub max_invalid_rate: Option<f64>,
    pub max_cost_per_correct_usd: Option<f64>,
    pub max_latency_p95_ms: Option<f64>,
    pub min_recall: BTreeMap<String, f64>,
    pub min_items: Option<u64>,
    pub power: f64,
    pub min_micro_f1: Option<f64>,
    pub min_field_accuracy: BTreeMap<String, f64>,
}

/// What a policy is checked against: the suite's backends and task.
pub struct PolicyContext<'a> {
    /// The file the section is in (the suite, or the `--policy` file).
    pub path: &'a Path,
    pub backends: Vec<&'a str>,
    pub kind: TaskKind,
    pub labels: &'a [String],
    pub fields: Vec<&'a str>,
}

/// Validates a `gate:` section; each problem names the file, the key and the line.
pub fn resolve(
    section: &Spanned<GateFile>,
    ctx: &PolicyContext,
) -> std::result::Result<GatePolicy, Vec<SuiteProblem>> {
    let mut problems = Vec::new();
    let mut problem = |line: u64, key: &str, message: String, hint: &str| {
        let mut p = SuiteProblem::new(ctx.path, message).line(line).key(format!("gate.{key}"));
        if !hint.is_empty() {
            p = p.hint(hint.to_string());
        }
        problems.push(p);
    };
    let g = &section.value;
    let line_of = |s: &Spanned<f64>| s.referenced.line();
    let ids = ctx.backends.join(", ");
    let candidate = g.candidate.value.clone();
    if !ctx.backends.contains(&candidate.as_str()) {
        problem(
            g.candidate.referenced.line(),
            "candidate",
            format!("no backend has id `{candidate}`"),
            &format!("use one of: {ids}"),
        );
    }
    let baseline = g.baseline.as_ref().map(|b| b.value.clone());
    if let (Some(b), Some(spanned)) = (&baseline, &g.baseline) {
        if !ctx.backends.contains(&b.as_str()) {
            problem(
                spanned.referenced.line(),
                "baseline",
                format!("no backend has id `{b}`"),
                &format!("use one of: {ids}"),
            );
        } else if *b == candidate {
            problem(
                spanned.referenced.line(),
                "baseline",
                "the baseline is the candidate".into(),
                "name the backend the candidate would replace",
            );
        }
    }
    let judge = match g.judge.as_ref().map(|j| (j.value.trim(), j.referenced.line())) {
        None | Some(("bound", _)) => Judge::Bound,
        Some(("estimate", _)) => Judge::Estimate,
        Some((other, line)) => {
            problem(
                line,
                "judge",
                format!("`{other}` is not a way to judge"),
                "write `judge: bound` (the confidence bound, the default) or `judge: estimate`",
            );
            Judge::Bound
        }
    };
    // A floor of 1 (or a ceiling of 0) can be met by an estimate but never by a bound.
    let edge_ok = judge == Judge::Estimate;
    let mut rate = |value: Option<&Spanned<f64>>, key: &str, floor: bool| -> Option<f64> {
        let s = value?;
        let v = s.value;
        let inside = v.is_finite() && v > 0.0 && v < 1.0;
        let edge = edge_ok && ((floor && v == 1.0) || (!floor && v == 0.0));
        if !(inside || edge) {
            problem(
                line_of(s),
                key,
                format!("{v} is out of range"),
                if floor {
                    "give a proportion strictly between 0 and 1, e.g. 0.85 (1 only with `judge: estimate`)"
                } else {
                    "give a proportion strictly between 0 and 1, e.g. 0.02 (0 only with `judge: estimate`)"
                },
            );
        }
        Some(v)
    };
    let min_accuracy = rate(g.min_accuracy.as_ref(), "min_accuracy", true);
    let max_invalid_rate = rate(g.max_invalid_rate.as_ref(), "max_invalid_rate", false);
    let min_micro_f1 = rate(g.min_micro_f1.as_ref(), "min_micro_f1", true);
    let max_error_rate = g.max_error_rate.as_ref().map(|s| {
        if !(s.value.is_finite() && (0.0..=1.0).contains(&s.value)) {
            problem(
                line_of(s),
                "max_error_rate",
                format!("{} is out of range", s.value),
                "give a proportion from 0 to 1, e.g. 0.01",
            );
        }
        s.value
    });
    let non_inferiority_margin = g.non_inferiority_margin.as_ref().map(|s| {
        if !(s.value.is_finite() && s.value > 0.0 && s.value < 1.0) {
            problem(
                line_of(s),
                "non_inferiority_margin",
                format!("{} is out of range", s.value),
                "give a difference in accuracy strictly between 0 and 1, e.g. 0.02 (two points)",
            );
        }
        s.value
    });
    let superiority = g.superiority.as_ref().is_some_and(|s| s.value);
    for (wanted, key, line) in [
        (
            non_inferiority_margin.is_some(),
            "non_inferiority_margin",
            g.non_inferiority_margin.as_ref().map(|s| s.referenced.line()),
        ),
        (superiority, "superiority", g.superiority.as_ref().map(|s| s.referenced.line())),
    ] {
        if wanted && baseline.is_none() {
            problem(
                line.unwrap_or(0),
                key,
                "compares the candidate with a baseline, and the gate has no baseline".into(),
                "add `baseline: <backend id>` to the gate",
            );
        }
    }
    let mut positive = |value: Option<&Spanned<f64>>, key: &str, hint: &str| {
        let s = value?;
        if !(s.value.is_finite() && s.value > 0.0) {
            problem(line_of(s), key, format!("{} is out of range", s.value), hint);
        }
        Some(s.value)
    };
    let max_cost_per_correct_usd = positive(
        g.max_cost_per_correct_usd.as_ref(),
        "max_cost_per_correct_usd",
        "give a positive number of dollars, e.g. 0.001",
    );
    let max_latency_p95_ms = positive(
        g.max_latency_p95_ms.as_ref(),
        "max_latency_p95_ms",
        "give a positive number of milliseconds, e.g. 1500",
    );
    let power = match &g.power {
        Some(s) if !(s.value.is_finite() && s.value >= 0.5 && s.value < 1.0) => {
            problem(
                line_of(s),
                "power",
                format!("{} is out of range", s.value),
                "give a power from 0.5 up to (not including) 1, e.g. 0.8",
            );
            DEFAULT_POWER
        }
        Some(s) => s.value,
        None => DEFAULT_POWER,
    };
    let min_items = g.min_items.as_ref().map(|s| {
        if s.value == 0 {
            problem(
                s.referenced.line(),
                "min_items",
                "0 items is no requirement".into(),
                "give a positive number of items, or drop the key",
            );
        }
        s.value
    });
    let per_key = |map: Option<&Spanned<BTreeMap<String, f64>>>,
                   key: &str,
                   known: &[&str],
                   what: &str,
                   allowed: bool,
                   problem: &mut dyn FnMut(u64, &str, String, &str)|
     -> BTreeMap<String, f64> {
        let Some(s) = map else { return BTreeMap::new() };
        let line = s.referenced.line();
        if !allowed {
            problem(
                line,
                key,
                format!("applies to {what}s, and this task has none"),
                "drop the key",
            );
            return BTreeMap::new();
        }
        for (name, &v) in &s.value {
            if !known.contains(&name.as_str()) {
                problem(
                    line,
                    &format!("{key}.{name}"),
                    format!("the task has no {what} `{name}`"),
                    &format!("use one of: {}", known.join(", ")),
                );
            }
            let inside = v.is_finite() && v > 0.0 && v < 1.0;
            if !(inside || (edge_ok && v == 1.0)) {
                problem(
                    line,
                    &format!("{key}.{name}"),
                    format!("{v} is out of range"),
                    "give a proportion strictly between 0 and 1 (1 only with `judge: estimate`)",
                );
            }
        }
        s.value.clone()
    };
    let labels: Vec<&str> = ctx.labels.iter().map(String::as_str).collect();
    let min_recall = per_key(
        g.min_recall.as_ref(),
        "min_recall",
        &labels,
        "label",
        ctx.kind == TaskKind::Classification,
        &mut problem,
    );
    let min_field_accuracy = per_key(
        g.min_field_accuracy.as_ref(),
        "min_field_accuracy",
        &ctx.fields,
        "field",
        ctx.kind == TaskKind::Extraction,
        &mut problem,
    );
    if min_micro_f1.is_some() && ctx.kind != TaskKind::Extraction {
        problem(
            g.min_micro_f1.as_ref().map_or(0, |s| s.referenced.line()),
            "min_micro_f1",
            "micro-F1 over fields applies to extraction tasks".into(),
            "use `min_accuracy` (and `min_recall`) for classification",
        );
    }
    let policy = GatePolicy {
        candidate,
        baseline,
        judge,
        min_accuracy,
        non_inferiority_margin,
        superiority,
        max_error_rate,
        max_invalid_rate,
        max_cost_per_correct_usd,
        max_latency_p95_ms,
        min_recall,
        min_items,
        power,
        min_micro_f1,
        min_field_accuracy,
    };
    let has_check = policy.min_accuracy.is_some()
        || policy.non_inferiority_margin.is_some()
        || policy.superiority
        || policy.max_error_rate.is_some()
        || policy.max_invalid_rate.is_some()
        || policy.max_cost_per_correct_usd.is_some()
        || policy.max_latency_p95_ms.is_some()
        || !policy.min_recall.is_empty()
        || policy.min_items.is_some()
        || policy.min_micro_f1.is_some()
        || !policy.min_field_accuracy.is_empty();
    if !has_check {
        problem(
            section.referenced.line(),
            "",
            "the gate has no check".into(),
            "add at least one, e.g. `min_accuracy: 0.85` or `non_inferiority_margin: 0.02`",
        );
    }
    if problems.is_empty() {
        Ok(policy)
    } else {
        Err(problems)
    }
}

/// Reads a `--policy` file: the gate section alone, or a mapping with the one key `gate:`.
pub fn load_policy(path: &Path, suite: &crate::suite::Suite) -> Result<GatePolicy, SuiteErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SuiteProblem::new(path, format!("cannot read the policy: {e}")))?;
    let parse_error = |e: serde_saphyr::Error| {
        let line = e.location().map(|l| l.line());
        SuiteProblem::new(path, e.without_snippet().to_string()).line(line).hint(
            "the policy holds the keys of a suite's `gate:` section; see \"CI gate\" in the README",
        )
    };
    let wrapped = text.lines().any(|l| l.starts_with("gate:"));
    let section: Spanned<GateFile> = if wrapped {
        serde_saphyr::from_str::<PolicyFile>(&text).map_err(parse_error)?.gate
    } else {
        serde_saphyr::from_str(&text).map_err(parse_error)?
    };
    resolve(&section, &context(path, suite)).map_err(SuiteErrors)
}

/// What a policy in `path` is validated against, from a loaded suite.
pub fn context<'a>(path: &'a Path, suite: &'a crate::suite::Suite) -> PolicyContext<'a> {
    PolicyContext {
        path,
        backends: suite.backends.iter().map(|b| b.id.as_str()).collect(),
        kind: suite.task.kind,
        labels: &suite.task.labels,
        fields: suite.task.fields.iter().map(|f| f.name.as_str()).collect(),
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One check of the gate, as `results.json` and the JUnit file carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The policy key, with the class, field or backend it applies to (`min_recall.fraud`).
    pub name: String,
    pub passed: bool,
    pub verdict: Verdict,
    /// The figure judged; `null` when it is unknown (a cost without a price).
    pub value: Option<f64>,
    /// Its 95% interval, when it has one.
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub threshold: f64,
    /// Why: the comparison made, and for an inconclusive check the items that would settle it.
    pub detail: String,
    /// A failure of the run rather than of the model (errors above `max_error_rate`): the CLI
    /// exits 2.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub infrastructure: bool,
}

impl Check {
    /// The value with its interval, in the check's unit.
    pub fn shown_value(&self) -> String {
        let Some(v) = self.value else { return "unknown".into() };
        let unit = Unit::of(&self.name);
        match (self.low, self.high) {
            (Some(lo), Some(hi)) if matches!(unit, Unit::Points) => {
                format!("{:+.1} pts ({:+.1} to {:+.1})", v * 100.0, lo * 100.0, hi * 100.0)
            }
            (Some(lo), Some(hi)) => {
                format!("{} ({}–{})", unit.show(v), unit.show(lo), unit.show(hi))
            }
            _ => unit.show(v),
        }
    }

    /// The threshold with the side that passes.
    pub fn shown_threshold(&self) -> String {
        let unit = Unit::of(&self.name);
        let op = match unit {
            Unit::Points => ">",
            _ if self.name.starts_with("max_") => "≤",
            _ => "≥",
        };
        format!("{op} {}", unit.show(self.threshold))
    }
}

/// How a check's figures read, from its name.
#[derive(Clone, Copy)]
enum Unit {
    Proportion,
    Points,
    Items,
    Usd,
    Ms,
}

impl Unit {
    fn of(name: &str) -> Unit {
        match name {
            "non_inferiority_margin" | "superiority" => Unit::Points,
            "min_items" | "power" => Unit::Items,
            "max_cost_per_correct_usd" => Unit::Usd,
            "max_latency_p95_ms" => Unit::Ms,
            _ => Unit::Proportion,
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Unit::Proportion => pct(v),
            Unit::Points => format!("{:+.1} pts", v * 100.0),
            Unit::Items if v >= u64::MAX as f64 => "no number of items".into(),
            Unit::Items => format!("{v:.0}"),
            Unit::Usd => format!("${v:.6}"),
            Unit::Ms => format!("{v:.0} ms"),
        }
    }
}

/// The gate's verdict on a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// Every check passed.
    pub passed: bool,
    pub candidate: String,
    pub baseline: Option<String>,
    pub checks: Vec<Check>,
}

impl GateVerdict {
    /// The checks that failed because the run's requests failed, not the model.
    pub fn infrastructure_failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.infrastructure && !c.passed)
    }
}

/// Whether a backend's errors exceed `max_error_rate`: errors over requests sent (answered plus
/// failed) above the limit; a backend whose every request failed is always over it.
pub fn error_rate_exceeded(b: &BackendScores, max_error_rate: f64) -> bool {
    b.errors > 0 && (b.answered == 0 || b.error_rate.estimate > max_error_rate)
}

/// Per item, (samples for which `hit` holds, samples counted), over answered samples of the
/// items `keep` selects.
fn per_item(
    b: &BackendScores,
    keep: impl Fn(usize) -> bool,
    hit: impl Fn(Outcome) -> bool,
) -> Vec<(u64, u64)> {
    let epochs = b.epochs.max(1);
    (0..b.outcomes.len() / epochs)
        .filter(|&i| keep(i))
        .map(|i| {
            let samples = &b.outcomes[i * epochs..(i + 1) * epochs];
            let answered = samples.iter().filter(|o| o.correct().is_some()).count() as u64;
            let hits = samples.iter().filter(|&&o| o.correct().is_some() && hit(o)).count() as u64;
            (hits, answered)
        })
        .collect()
}

/// A proportion over items with several samples each: the clustered interval (exactly Wilson's
/// with one sample per item), and the factor turning independent samples into items.
struct Proportion {
    interval: Interval,
    /// Items with an answer.
    items: u64,
    /// Design effect over samples per item: items needed = samples needed × this.
    items_per_sample: f64,
}

fn proportion(counts: &[(u64, u64)]) -> Result<Proportion> {
    let c = clustered_proportion_interval(counts, CONFIDENCE)?;
    let items = counts.iter().filter(|(_, m)| *m > 0).count() as u64;
    let per_item = if items == 0 { 1.0 } else { c.samples as f64 / items as f64 };
    Ok(Proportion {
        interval: c.interval,
        items,
        items_per_sample: c.design_effect / per_item.max(1.0),
    })
}

fn pct(v: f64) -> String {
    let s = format!("{:.1}%", v * 100.0);
    s.replace(".0%", "%")
}

fn pct_interval(i: &Interval) -> String {
    format!("{} (95% CI {}–{})", pct(i.estimate), pct(i.low), pct(i.high))
}

/// Which side of a threshold is good.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    AtLeast,
    AtMost,
}

/// The verdict of an interval against a threshold.
fn judge_interval(i: &Interval, threshold: f64, side: Side, judge: Judge) -> Verdict {
    let (good, bad) = match (judge, side) {
        (Judge::Estimate, Side::AtLeast) => (i.estimate >= threshold, true),
        (Judge::Estimate, Side::AtMost) => (i.estimate <= threshold, true),
        (Judge::Bound, Side::AtLeast) => (i.low >= threshold, i.high < threshold),
        (Judge::Bound, Side::AtMost) => (i.high <= threshold, i.low > threshold),
    };
    if good {
        Verdict::Pass
    } else if bad {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    }
}

fn check(
    name: String,
    verdict: Verdict,
    i: Option<&Interval>,
    threshold: f64,
    detail: String,
) -> Check {
    Check {
        name,
        passed: verdict == Verdict::Pass,
        verdict,
        value: i.map(|i| i.estimate),
        low: i.map(|i| i.low),
        high: i.map(|i| i.high),
        threshold,
        detail,
        infrastructure: false,
    }
}

/// A proportion against a floor or a ceiling, with the items that would settle an inconclusive
/// verdict (`what` names the proportion, `unit` the items counted).
fn proportion_check(
    name: String,
    p: &Proportion,
    threshold: f64,
    side: Side,
    policy: &GatePolicy,
    unit: &str,
) -> Result<Check> {
    let i = &p.interval;
    let verdict = judge_interval(i, threshold, side, policy.judge);
    let (op, bound) = match side {
        Side::AtLeast => ("≥", i.low),
        Side::AtMost => ("≤", i.high),
    };
    let detail = if p.items == 0 {
        format!("no answered {unit}")
    } else {
        match (verdict, policy.judge) {
            (Verdict::Pass | Verdict::Fail, Judge::Estimate) => {
                format!(
                    "judged on the estimate: {} {} {op} {} (95% CI {}–{}, not judged)",
                    pct(i.estimate),
                    if verdict == Verdict::Pass { "is" } else { "is not" },
                    pct(threshold),
                    pct(i.low),
                    pct(i.high)
                )
            }
            (Verdict::Pass, Judge::Bound) => format!(
                "{} {} {}: the {} bound is {}",
                pct_interval(i),
                if side == Side::AtLeast { "clears" } else { "stays within" },
                pct(threshold),
                if side == Side::AtLeast { "lower" } else { "upper" },
                pct(bound)
            ),
            (Verdict::Fail, Judge::Bound) => format!(
                "{}: the whole interval is on the wrong side of {}",
                pct_interval(i),
                pct(threshold)
            ),
            (Verdict::Inconclusive, _) => {
                let more = settle(i.estimate, threshold, side, policy.power, p, unit)?;
                format!("{} straddles {}; {more}", pct_interval(i), pct(threshold))
            }
        }
    };
    Ok(check(name, verdict, Some(i), threshold, detail))
}

/// The items that would settle a proportion straddling its threshold, at the observed estimate.
fn settle(
    estimate: f64,
    threshold: f64,
    side: Side,
    power: f64,
    p: &Proportion,
    unit: &str,
) -> Result<String> {
    // Above the threshold, more items would show it above (a pass for a floor, a fail for a
    // ceiling); below, more items would show it below.
    let (needed, outcome) = if estimate > threshold {
        let pass = side == Side::AtLeast;
        (items_to_clear_threshold(estimate, threshold, power, CONFIDENCE)?, pass)
    } else if estimate < threshold {
        let pass = side == Side::AtMost;
        (items_to_stay_below(estimate, threshold, power, CONFIDENCE)?, pass)
    } else {
        (None, false)
    };
    Ok(match needed {
        Some(samples) => {
            let items = (samples as f64 * p.items_per_sample).ceil() as u64;
            format!(
                "about {items} {unit} would settle it ({} with {}% power if the rate stays at {}); the run has {}",
                if outcome { "pass" } else { "fail" },
                power * 100.0,
                pct(estimate),
                p.items
            )
        }
        None => "the estimate sits on the threshold: no number of items would settle it".into(),
    })
}

/// The gate's verdict on the run described by `meta` and `analysis`.
///
/// Errors (the CLI exits 2): a gated backend that is not in the run, or was skipped (its
/// credentials were missing).
pub fn evaluate(policy: &GatePolicy, meta: &RunMeta, analysis: &Analysis) -> Result<GateVerdict> {
    let scores = &analysis.scores;
    let index = |id: &str| -> Result<usize> {
        if let Some(s) = meta.skipped.iter().find(|s| s.id == id) {
            return Err(Error::Gate(format!(
                "backend `{id}` was skipped ({}), and the gate needs it",
                s.reason
            )));
        }
        scores.backends.iter().position(|b| b.id == id).ok_or_else(|| {
            Error::Gate(format!(
                "the run has no backend `{id}`; the gate needs it (run the suite with it)"
            ))
        })
    };
    let c = index(&policy.candidate)?;
    let base = policy.baseline.as_deref().map(index).transpose()?;
    let cand = &scores.backends[c];
    let mut checks = Vec::new();

    // The run's own health first: a gate on a run whose requests failed judges nothing.
    let max_error_rate = policy.max_error_rate.unwrap_or(DEFAULT_MAX_ERROR_RATE);
    for (role, i) in [("candidate", Some(c)), ("baseline", base)] {
        let Some(i) = i else { continue };
        let b = &scores.backends[i];
        let over = error_rate_exceeded(b, max_error_rate);
        let requests = b.answered + b.errors;
        let detail = format!(
            "{} of {requests} requests to `{}` failed ({}); {}",
            b.errors,
            b.id,
            pct(b.error_rate.estimate),
            if over {
                "above the limit: the run cannot be judged (fix the backend and run again)"
            } else {
                "within the limit (judged on what this run saw: errors measure the infrastructure, not the model)"
            }
        );
        let verdict = if over { Verdict::Fail } else { Verdict::Pass };
        let mut ch = check(
            format!("max_error_rate.{role}"),
            verdict,
            Some(&b.error_rate),
            max_error_rate,
            detail,
        );
        ch.infrastructure = true;
        checks.push(ch);
    }

    if let Some(min) = policy.min_items {
        let items = proportion(&per_item(cand, |_| true, |_| true))?.items;
        let verdict = if items >= min { Verdict::Pass } else { Verdict::Fail };
        let interval = Interval { estimate: items as f64, low: items as f64, high: items as f64 };
        let mut ch = check(
            "min_items".into(),
            verdict,
            Some(&interval),
            min as f64,
            format!("`{}` answered {items} items; the policy asks for at least {min}", cand.id),
        );
        (ch.low, ch.high) = (None, None);
        checks.push(ch);
    }

    if let Some(min) = policy.min_accuracy {
        let p = proportion(&per_item(cand, |_| true, |o| o.correct() == Some(true)))?;
        checks.push(proportion_check(
            "min_accuracy".into(),
            &p,
            min,
            Side::AtLeast,
            policy,
            "items",
        )?);
    }

    if let Some(max) = policy.max_invalid_rate {
        let invalid = |o: Outcome| matches!(o, Outcome::Answered { predicted: None, .. });
        let p = proportion(&per_item(cand, |_| true, invalid))?;
        checks.push(proportion_check(
            "max_invalid_rate".into(),
            &p,
            max,
            Side::AtMost,
            policy,
            "items",
        )?);
    }

    for (label, &min) in &policy.min_recall {
        let Some(k) = scores.labels.iter().position(|l| l == label) else { continue };
        let of_class = |i: usize| scores.gold.get(i).copied().flatten() == Some(k as u16);
        let p = proportion(&per_item(cand, of_class, |o| o.correct() == Some(true)))?;
        checks.push(proportion_check(
            format!("min_recall.{label}"),
            &p,
            min,
            Side::AtLeast,
            policy,
            &format!("`{label}` items"),
        )?);
    }

    if let Some(ex) = &scores.extraction {
        if let Some(min) = policy.min_micro_f1 {
            let f1 = analysis.backends[c].overall.as_ref().and_then(|o| o[2]);
            checks.push(bootstrap_check("min_micro_f1", f1, min, Side::AtLeast, policy, pct));
        }
        for (field, &min) in &policy.min_field_accuracy {
            let Some(f) = ex.fields.iter().position(|spec| &spec.name == field) else {
                continue;
            };
            // Per item, the samples with the field right over those that count for it (the
            // field's accuracy as scored), clustered by item like `min_accuracy`.
            let n_fields = ex.fields.len();
            let marks = &ex.backends[c].marks;
            let epochs = cand.epochs.max(1);
            let counts: Vec<(u64, u64)> = (0..marks.len() / (n_fields * epochs).max(1))
                .map(|i| {
                    let of_item = (i * epochs..(i + 1) * epochs).map(|s| marks[s * n_fields + f]);
                    of_item.fold((0, 0), |(right, counted), m| {
                        (right + u64::from(m == Mark::Correct), counted + u64::from(m.counted()))
                    })
                })
                .collect();
            checks.push(proportion_check(
                format!("min_field_accuracy.{field}"),
                &proportion(&counts)?,
                min,
                Side::AtLeast,
                policy,
                "items with the field",
            )?);
        }
    }

    if let Some(max) = policy.max_cost_per_correct_usd {
        let cost = analysis.backends[c].cost.per_correct;
        let usd = |v: f64| format!("${v:.6}");
        let mut ch =
            bootstrap_check("max_cost_per_correct_usd", cost, max, Side::AtMost, policy, usd);
        if cost.is_none() {
            ch.detail = format!(
                "the cost of `{}` is unknown: {}",
                cand.id,
                analysis.backends[c].cost.notes.join("; ")
            );
        }
        checks.push(ch);
    }

    if let Some(max) = policy.max_latency_p95_ms {
        let v = cand.latency_p95_ms;
        let verdict = if cand.answered == 0 {
            Verdict::Inconclusive
        } else if v <= max {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        let i = Interval { estimate: v, low: v, high: v };
        let mut ch = check(
            "max_latency_p95_ms".into(),
            verdict,
            Some(&i),
            max,
            format!(
                "p95 latency {v:.0} ms over {} answered requests (observed, no interval)",
                cand.answered
            ),
        );
        (ch.low, ch.high) = (None, None);
        checks.push(ch);
    }

    if let Some(b) = base {
        if policy.non_inferiority_margin.is_some() || policy.superiority {
            paired_checks(policy, analysis, c, b, &mut checks)?;
        }
    }

    Ok(GateVerdict {
        passed: checks.iter().all(|c| c.passed),
        candidate: policy.candidate.clone(),
        baseline: policy.baseline.clone(),
        checks,
    })
}

/// A figure with a bootstrap interval (micro-F1, cost per correct) against a threshold. No
/// closed form says how many items would settle it.
fn bootstrap_check(
    name: &str,
    interval: Option<Interval>,
    threshold: f64,
    side: Side,
    policy: &GatePolicy,
    show: impl Fn(f64) -> String,
) -> Check {
    let Some(i) = interval else {
        return check(name.into(), Verdict::Inconclusive, None, threshold, "unknown".into());
    };
    let verdict = judge_interval(&i, threshold, side, policy.judge);
    let shown = format!("{} (95% bootstrap CI {}–{})", show(i.estimate), show(i.low), show(i.high));
    let detail = match verdict {
        Verdict::Pass => format!("{shown} meets {}", show(threshold)),
        Verdict::Fail => format!("{shown} misses {}", show(threshold)),
        Verdict::Inconclusive => {
            format!("{shown} straddles {}; more items would narrow the interval", show(threshold))
        }
    };
    check(name.into(), verdict, Some(&i), threshold, detail)
}

/// Candidate − baseline against −margin (margin 0: superiority): pass when the lower bound is
/// above it, fail when the whole interval is at or below it.
fn paired_verdict(candidate_minus_baseline: &Interval, margin: f64) -> Verdict {
    let d = candidate_minus_baseline;
    if d.low > -margin {
        Verdict::Pass
    } else if d.high <= -margin {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    }
}

/// Non-inferiority, the power to show it, and superiority: candidate − baseline on the items
/// both answered, from the run's paired comparison.
fn paired_checks(
    policy: &GatePolicy,
    analysis: &Analysis,
    c: usize,
    b: usize,
    checks: &mut Vec<Check>,
) -> Result<()> {
    // The gate's paired checks are their own test, made by the same function as the report's
    // comparisons but always at the gate's 95% level: the report's intervals are widened for its
    // family of comparisons, and a gate passes only when every check passes (an intersection of
    // tests needs no adjustment), so its stated error rate is that of one 95% interval.
    let margin = policy.non_inferiority_margin.unwrap_or(crate::score::DEFAULT_MARGIN);
    let comparison =
        compare::compare(&analysis.scores, &[(b, c)], CONFIDENCE, margin, &analysis.bootstrap)?
            .pop()
            .ok_or_else(|| Error::Gate("no comparison of candidate and baseline".into()))?;
    // `difference` is second − first; orient both the interval and the table candidate-first.
    let (difference, counts) = if comparison.second == c {
        (comparison.difference, comparison.counts)
    } else {
        let d = comparison.difference;
        let k = comparison.counts;
        (
            Interval { estimate: -d.estimate, low: -d.high, high: -d.low },
            PairedCounts { only_first: k.only_second, only_second: k.only_first, ..k },
        )
    };
    let n = counts.total()?;
    let epochs = analysis.scores.backends[c].epochs.min(analysis.scores.backends[b].epochs).max(1);
    let items = n / epochs as u64;
    let design = if n > 0 { Some(paired_design(&counts)?) } else { None };
    let shown = |d: &Interval| {
        format!(
            "{:+.1} points (95% CI {:+.1} to {:+.1})",
            d.estimate * 100.0,
            d.low * 100.0,
            d.high * 100.0
        )
    };
    let to_items = |samples: u64| samples.div_ceil(epochs as u64);
    let paired = |name: &str, margin: f64| -> Result<Check> {
        let threshold = -margin;
        let verdict =
            if n == 0 { Verdict::Inconclusive } else { paired_verdict(&difference, margin) };
        let goal = if margin > 0.0 {
            format!("not worse than the baseline by {} points or more", margin * 100.0)
        } else {
            "better than the baseline".to_string()
        };
        let detail = match (verdict, design) {
            (_, None) => "no item answered by both".to_string(),
            (Verdict::Pass, _) => format!(
                "candidate − baseline {} on {items} items: the lower bound is above {:+.1}, so the candidate is {goal}",
                shown(&difference),
                threshold * 100.0
            ),
            (Verdict::Fail, _) => format!(
                "candidate − baseline {} on {items} items: the whole interval is at or below {:+.1}",
                shown(&difference),
                threshold * 100.0
            ),
            (Verdict::Inconclusive, Some((psi, delta))) => {
                let needed =
                    items_to_show_not_worse(psi, delta, margin, policy.power, CONFIDENCE)?;
                let more = match needed {
                    Some(k) => format!(
                        "about {} items would show it {goal} ({}% power if the difference stays at {:+.1} points with {:.0}% of items discordant)",
                        to_items(k),
                        policy.power * 100.0,
                        delta * 100.0,
                        psi * 100.0
                    ),
                    None => format!(
                        "at the observed difference no number of items would show it {goal}"
                    ),
                };
                format!(
                    "candidate − baseline {} on {items} items straddles {:+.1}; {more}",
                    shown(&difference),
                    threshold * 100.0
                )
            }
        };
        Ok(check(name.into(), verdict, Some(&difference), threshold, detail))
    };
    if let Some(margin) = policy.non_inferiority_margin {
        checks.push(paired("non_inferiority_margin", margin)?);
        // Power: would this many items show non-inferiority if the two were equally accurate,
        // with the discordance observed?
        if let Some((psi, _)) = design {
            let needed = items_to_show_not_worse(psi, 0.0, margin, policy.power, CONFIDENCE)?
                .map(to_items)
                .unwrap_or(u64::MAX);
            let verdict = if items >= needed { Verdict::Pass } else { Verdict::Fail };
            let i = Interval { estimate: items as f64, low: items as f64, high: items as f64 };
            let mut ch = check(
                "power".into(),
                verdict,
                Some(&i),
                needed as f64,
                format!(
                    "{items} items answered by both; {needed} would show non-inferiority at a margin of {} points with {}% power if candidate and baseline were equally accurate ({:.0}% of items discordant, as observed)",
                    margin * 100.0,
                    policy.power * 100.0,
                    psi * 100.0
                ),
            );
            (ch.low, ch.high) = (None, None);
            checks.push(ch);
        }
    }
    if policy.superiority {
        checks.push(paired("superiority", 0.0)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::stats::paired_difference_interval;

    #[test]
    fn bounds_decide_unless_the_estimate_is_asked_for() {
        let i = Interval { estimate: 0.85, low: 0.78, high: 0.9 };
        assert_eq!(judge_interval(&i, 0.8, Side::AtLeast, Judge::Bound), Verdict::Inconclusive);
        assert_eq!(judge_interval(&i, 0.8, Side::AtLeast, Judge::Estimate), Verdict::Pass);
        assert_eq!(judge_interval(&i, 0.78, Side::AtLeast, Judge::Bound), Verdict::Pass);
        assert_eq!(judge_interval(&i, 0.91, Side::AtLeast, Judge::Bound), Verdict::Fail);
        assert_eq!(judge_interval(&i, 0.9, Side::AtMost, Judge::Bound), Verdict::Pass);
        assert_eq!(judge_interval(&i, 0.77, Side::AtMost, Judge::Bound), Verdict::Fail);
        assert_eq!(judge_interval(&i, 0.8, Side::AtMost, Judge::Estimate), Verdict::Fail);
        // Non-inferiority: the lower bound strictly above −margin; at or below it all the way
        // up is a fail.
        let d = Interval { estimate: -0.01, low: -0.02, high: 0.01 };
        assert_eq!(paired_verdict(&d, 0.02), Verdict::Inconclusive);
        assert_eq!(paired_verdict(&d, 0.03), Verdict::Pass);
        let worse = Interval { estimate: -0.1, low: -0.15, high: -0.05 };
        assert_eq!(paired_verdict(&worse, 0.05), Verdict::Fail);
        assert_eq!(paired_verdict(&worse, 0.0), Verdict::Fail);
    }

    /// A candidate truly worse than its baseline by exactly the margin must pass the
    /// non-inferiority check (lower bound of candidate − baseline above −margin) at most 2.5% of
    /// the time: the one-sided level of a two-sided 95% interval.
    ///
    /// Paired Bernoulli model: baseline right with p = 0.85, candidate right with 0.80
    /// (margin 0.05), discordance ψ = 0.15 (P(only baseline) = 0.10, P(only candidate) = 0.05),
    /// 400 items, 2,000 replications, ChaCha8 seed 2026. Observed false-pass rate: 0.0225
    /// (45 of 2,000); the bound allows 0.025 plus three binomial standard errors (0.0105).
    #[test]
    fn non_inferiority_false_pass_rate_is_at_most_the_one_sided_level() {
        let (margin, n, reps) = (0.05, 400, 2_000);
        let (p_only_base, p_only_cand, p_both) = (0.10, 0.05, 0.75);
        let mut rng = ChaCha8Rng::seed_from_u64(2026);
        let mut passes = 0u32;
        for _ in 0..reps {
            let mut k = PairedCounts::default();
            for _ in 0..n {
                let u: f64 = rng.random();
                // As the gate compares them: first = baseline, second = candidate, so the
                // interval is candidate − baseline.
                if u < p_both {
                    k.both_correct += 1;
                } else if u < p_both + p_only_base {
                    k.only_first += 1;
                } else if u < p_both + p_only_base + p_only_cand {
                    k.only_second += 1;
                } else {
                    k.both_wrong += 1;
                }
            }
            let d = paired_difference_interval(&k, CONFIDENCE).unwrap();
            if paired_verdict(&d, margin) == Verdict::Pass {
                passes += 1;
            }
        }
        let rate = f64::from(passes) / f64::from(reps);
        let slack = 3.0 * (0.025f64 * 0.975 / f64::from(reps)).sqrt();
        assert!(rate <= 0.025 + slack, "false-pass rate {rate}");
    }
}
