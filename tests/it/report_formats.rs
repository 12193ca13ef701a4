//! Each report renderer snapshot-tested from a hand-built result, not through a run:
//! `results.json` (serde), `report.md` (`report::markdown`), `chart.svg` (`report::chart`) and
//! `records.csv` (`report::csv`, from a hand-written journal).
//!
//! The results are struct literals, so this file also documents the schema: every figure is
//! written out or computed here from counts in plain sight (Wilson intervals with
//! `support::wilson`, per-class scores from the confusion matrix), and the sentences come from
//! `report::prose` as a run would produce them. Bootstrap bounds, difference intervals and
//! p-values are fixed numbers in the right ranges (the p-values are McNemar's exact test on the
//! discordant counts shown).

use std::collections::BTreeMap;

use evalgate::cost::Pricing;
use evalgate::field::{FieldSpec, FieldType, StringMatch};
use evalgate::gate::{Check, GateVerdict, Verdict};
use evalgate::journal::{
    BackendMeta, BatchSummary, FewShotMeta, Record, RecordError, RunMeta, Skipped, SuiteMeta,
    TaskMeta, Tokens,
};
use evalgate::prompt::ChatMessage;
use evalgate::report::results::ErrorRateResult;
use evalgate::report::results::{
    BackendResult, BatchResult, BreakEvenResult, ClassResult, ComparisonResult, CostInterval,
    CostResult, DifferenceResult, FieldErrorResult, FieldResult, IntervalMethodName,
    IntervalResult, LatencyResult, MetricResult, Results, TaskResult, TokensResult, VolumeResult,
};
use evalgate::report::{
    chart, junit, markdown, prose, Details, Disagreement, InvalidReplies, InvalidReply,
};
use evalgate::score::compare::{Comparison, DifferenceMethod};
use evalgate::stats::decision::Decision;
use evalgate::stats::{Interval, PairedCounts};
use evalgate::suite::{Price, TaskKind};

use crate::support::wilson;

/// Writes snapshots beside the whole-run ones, in `tests/snapshots/`.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

const LABELS: [&str; 3] = ["billing", "technical", "account"];

/// `correct / n` with its 95% Wilson interval.
fn wilson_result(correct: u64, n: u64) -> IntervalResult {
    let (low, high) = wilson(correct, n);
    IntervalResult {
        estimate: correct as f64 / n as f64,
        low,
        high,
        method: IntervalMethodName::Wilson,
        confidence: 0.95,
    }
}

/// A figure with a 95% percentile-bootstrap interval over 2000 resamples.
fn bootstrap(estimate: f64, low: f64, high: f64) -> MetricResult {
    MetricResult {
        estimate,
        low: Some(low),
        high: Some(high),
        method: "bootstrap-percentile".into(),
        confidence: 0.95,
        resamples: 2000,
    }
}

fn paired_bootstrap(estimate: f64, low: f64, high: f64) -> DifferenceResult {
    DifferenceResult {
        estimate,
        low,
        high,
        method: "paired-bootstrap-percentile".into(),
        confidence: 0.95,
    }
}

/// Per-class rows of a confusion matrix (rows gold, columns predicted then invalid), as scoring
/// computes them: support is the row's sum, predicted the column's.
fn classes(confusion: &[Vec<u64>]) -> Vec<ClassResult> {
    LABELS
        .iter()
        .enumerate()
        .map(|(c, label)| {
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
            let tp = confusion[c][c] as f64;
            let precision = tp / predicted as f64;
            let recall = tp / support as f64;
            ClassResult {
                label: label.to_string(),
                support,
                predicted,
                precision,
                recall,
                f1: 2.0 * precision * recall / (precision + recall),
            }
        })
        .collect()
}

fn mean_f1(classes: &[ClassResult]) -> f64 {
    classes.iter().map(|c| c.f1).sum::<f64>() / classes.len() as f64
}

/// A backend with no price: every cost figure unknown, and a note saying why.
fn unpriced(note: &str) -> CostResult {
    CostResult {
        pricing: None,
        price_origin: None,
        price_as_of: None,
        price_source: None,
        price_stale: false,
        total_usd: None,
        per_request_usd: None,
        per_1k_requests_usd: None,
        per_correct_usd: None,
        daily_usd: None,
        annual_usd: None,
        instances_needed: None,
        notes: vec![note.into()],
    }
}

/// The margin of every hand-built comparison: the default.
const MARGIN: f64 = 0.02;

/// A comparison as results.json holds it, its verdict written by `prose::verdict` from the same
/// figures; `pairs` is the number of comparisons in the run (Holm's family).
#[allow(clippy::too_many_arguments)]
fn comparison(
    (first, second): (&str, &str),
    [both_correct, only_first, only_second, both_wrong]: [u64; 4],
    difference: [f64; 3],
    (p_value, p_value_holm): (f64, f64),
    macro_f1_difference: Option<DifferenceResult>,
    micro_f1_difference: Option<DifferenceResult>,
    items_needed_for_3_points: Option<u64>,
    pairs: usize,
) -> ComparisonResult {
    let [estimate, low, high] = difference;
    let interval =
        |d: &DifferenceResult| Interval { estimate: d.estimate, low: d.low, high: d.high };
    // The hand-built intervals stand for the family-level ones a run computes; the decision and
    // the items to settle follow from them as in `score::compare`.
    let confidence = evalgate::stats::decision::family_confidence(0.95, pairs).unwrap();
    let difference_interval = Interval { estimate, low, high };
    let decision = evalgate::stats::decision::classify(&difference_interval, MARGIN).unwrap();
    let items_to_settle = (decision == Decision::Inconclusive).then_some(1_234);
    let stats = Comparison {
        first: 0,
        second: 1,
        counts: PairedCounts { both_correct, only_first, only_second, both_wrong },
        difference: difference_interval,
        confidence,
        margin: MARGIN,
        decision,
        items_to_settle,
        p_value,
        p_value_holm,
        macro_f1_difference: macro_f1_difference.as_ref().map(interval),
        micro_f1_difference: micro_f1_difference.as_ref().map(interval),
        items_needed: items_needed_for_3_points,
        method: DifferenceMethod::NewcombeMcNemar,
    };
    ComparisonResult {
        first: first.into(),
        second: second.into(),
        both_correct,
        only_first,
        only_second,
        both_wrong,
        difference: DifferenceResult {
            estimate,
            low,
            high,
            method: "newcombe-hybrid-score".into(),
            confidence,
        },
        decision,
        margin: MARGIN,
        items_to_settle,
        p_value,
        p_value_holm,
        macro_f1_difference,
        micro_f1_difference,
        items_needed_for_3_points,
        verdict: prose::verdict(first, second, &stats, pairs),
    }
}

// ---------------------------------------------------------------------------------------------
// A classification run: 40 support tickets, three labels, three backends
// ---------------------------------------------------------------------------------------------

/// The built-in local classifier: no price, no tokens, 24 of 40 right, 2 invalid.
fn local_backend() -> BackendResult {
    // Gold billing 16, technical 14, account 10; the last column is invalid replies.
    let confusion = vec![vec![11, 3, 1, 1], vec![3, 8, 2, 1], vec![2, 3, 5, 0]];
    let classes = classes(&confusion);
    BackendResult {
        id: "local".into(),
        provider: "local".into(),
        model: None,
        strategy: "local".into(),
        epochs: 1,
        items: 40,
        answered: 40,
        correct: 24,
        invalid: 2,
        errors: 0,
        missing: 0,
        cached: 0,
        cached_between: None,
        accuracy: wilson_result(24, 40),
        accuracy_clustered: None,
        error_rate: wilson_result(0, 40),
        macro_f1: bootstrap(mean_f1(&classes), 0.452, 0.757),
        tokens: TokensResult {
            input: 0,
            output: 0,
            input_per_request: 0.0,
            output_per_request: 0.0,
            estimated: false,
        },
        latency_ms: LatencyResult { p50: 0.42, p95: 1.3 },
        cost: unpriced(
            "no price given; add `pricing:` to the backend (e.g. `monthly_usd` for self-hosted)",
        ),
        classes,
        confusion,
        error_kinds: BTreeMap::new(),
        error_messages: vec![],
        truncated: 0,
        stopped: None,
        structured_output_used: None,
        batch: None,
        fields: None,
        exact_match: None,
        invalid_json: None,
        micro_precision: None,
        micro_recall: None,
        micro_f1: None,
        macro_precision: None,
        macro_recall: None,
        field_errors: None,
    }
}

/// An API model priced per token (a stale built-in price): 34 of 38 answered right, two items
/// failed after retries (one HTTP error, one timeout).
fn gpt_backend() -> BackendResult {
    // The failed items were one billing and one technical ticket: support 15, 13, 10.
    let confusion = vec![vec![14, 1, 0, 0], vec![1, 12, 0, 0], vec![1, 1, 8, 0]];
    let classes = classes(&confusion);
    BackendResult {
        id: "gpt".into(),
        provider: "openai".into(),
        model: Some("gpt-4o".into()),
        strategy: "few-shot".into(),
        epochs: 1,
        items: 40,
        answered: 38,
        correct: 34,
        invalid: 0,
        errors: 2,
        missing: 0,
        cached: 30,
        cached_between: Some(["2026-11-28T09:12:40Z".into(), "2026-11-30T17:03:05Z".into()]),
        accuracy: wilson_result(34, 38),
        accuracy_clustered: None,
        error_rate: wilson_result(2, 40),
        macro_f1: bootstrap(mean_f1(&classes), 0.781, 0.975),
        // 120 tokens in and 2 out per answered request.
        tokens: TokensResult {
            input: 4560,
            output: 76,
            input_per_request: 120.0,
            output_per_request: 2.0,
            estimated: false,
        },
        latency_ms: LatencyResult { p50: 612.0, p95: 1840.5 },
        // $2.50 / $10 per M tokens: 120 × 2.5e-6 + 2 × 10e-6 = $0.00032 a request; 38 requests
        // cost $0.01216, $0.000358 per correct answer; 10,000 a day cost $3.20, $1,168 a year.
        cost: CostResult {
            pricing: Some(Pricing::PerToken {
                input_per_mtok: 2.5,
                output_per_mtok: 10.0,
                cached_input_per_mtok: None,
                cache_write_per_mtok: None,
            }),
            price_origin: Some("built-in".into()),
            price_as_of: Some("2025-01-15".into()),
            price_source: Some("https://openai.com/api/pricing/".into()),
            price_stale: true,
            total_usd: Some(0.01216),
            per_request_usd: Some(0.00032),
            per_1k_requests_usd: Some(0.32),
            per_correct_usd: Some(CostInterval {
                estimate: 0.000357647,
                low: 0.000338,
                high: 0.000382,
            }),
            daily_usd: Some(3.2),
            annual_usd: Some(1168.0),
            instances_needed: None,
            notes: vec!["the built-in price is 412 days old; check it and set `pricing:` on the backend if it changed".into()],
        },
        classes,
        confusion,
        error_kinds: BTreeMap::from([("http".to_string(), 1), ("timeout".to_string(), 1)]),
        error_messages: vec![],
        truncated: 0,
        stopped: None,
        structured_output_used: None,
        batch: None,
        fields: None,
        exact_match: None,
        invalid_json: None,
        micro_precision: None,
        micro_recall: None,
        micro_f1: None,
        macro_precision: None,
        macro_recall: None,
        field_errors: None,
    }
}

/// A fine-tuned model on a rented GPU at a fixed monthly price: 35 of 40 right; the server
/// reports no token usage, so the counts are estimates.
fn ft_backend() -> BackendResult {
    let confusion = vec![vec![15, 1, 0, 0], vec![1, 12, 1, 0], vec![1, 1, 8, 0]];
    let classes = classes(&confusion);
    BackendResult {
        id: "ft".into(),
        provider: "openai".into(),
        model: Some("ft:support-v2".into()),
        strategy: "fine-tuned".into(),
        epochs: 1,
        items: 40,
        answered: 40,
        correct: 35,
        invalid: 0,
        errors: 0,
        missing: 0,
        cached: 0,
        cached_between: None,
        accuracy: wilson_result(35, 40),
        accuracy_clustered: None,
        error_rate: wilson_result(0, 40),
        macro_f1: bootstrap(mean_f1(&classes), 0.756, 0.962),
        tokens: TokensResult {
            input: 1800,
            output: 80,
            input_per_request: 45.0,
            output_per_request: 2.0,
            estimated: true,
        },
        latency_ms: LatencyResult { p50: 85.3, p95: 240.0 },
        // $600 a month for 1 req/s: at 10,000 a day one instance, $7,200 a year, $19.73 a day,
        // $0.0019726 a request; 40 requests cost $0.0789, $0.0022544 per correct answer.
        cost: CostResult {
            pricing: Some(Pricing::Fixed { monthly_usd: 600.0, capacity_rps: Some(1.0) }),
            price_origin: Some("suite".into()),
            price_as_of: None,
            price_source: None,
            price_stale: false,
            total_usd: Some(0.0789041095890411),
            per_request_usd: Some(0.0019726027397260273),
            per_1k_requests_usd: Some(1.9726027397260273),
            per_correct_usd: Some(CostInterval {
                estimate: 0.00225440313111546,
                low: 0.00208,
                high: 0.00252,
            }),
            daily_usd: Some(19.726027397260275),
            annual_usd: Some(7200.0),
            instances_needed: Some(1),
            notes: vec!["some token counts are estimates (the server sent no usage)".into()],
        },
        classes,
        confusion,
        error_kinds: BTreeMap::new(),
        error_messages: vec![],
        truncated: 0,
        stopped: None,
        structured_output_used: None,
        batch: None,
        fields: None,
        exact_match: None,
        invalid_json: None,
        micro_precision: None,
        micro_recall: None,
        micro_f1: None,
        macro_precision: None,
        macro_recall: None,
        field_errors: None,
    }
}

fn classification_results() -> Results {
    let backends = vec![local_backend(), gpt_backend(), ft_backend()];
    let skipped =
        vec![Skipped { id: "claude".into(), reason: "ANTHROPIC_API_KEY is not set".into() }];
    // Paired over the items both answered (38 with `gpt`, which failed on two): the difference
    // is (only second − only first) / n with Newcombe's interval; McNemar's p for 1 against 12
    // discordant items is 2 × 14 / 2¹³. Holm over the three: 0.00342 × 3 and × 2 (raised to the
    // larger), then 1.
    let comparisons = vec![
        comparison(
            ("local", "gpt"),
            [22, 1, 12, 3],
            [11.0 / 38.0, 0.1115, 0.4500],
            (0.00341796875, 0.01025390625),
            Some(paired_bootstrap(0.289, 0.112, 0.468)),
            None,
            Some(2982),
            3,
        ),
        comparison(
            ("local", "ft"),
            [23, 1, 12, 4],
            [11.0 / 40.0, 0.1060, 0.4288],
            (0.00341796875, 0.01025390625),
            Some(paired_bootstrap(0.265, 0.095, 0.437)),
            None,
            Some(2832),
            3,
        ),
        comparison(
            ("gpt", "ft"),
            [31, 3, 2, 2],
            [-1.0 / 38.0, -0.1666, 0.1116],
            (1.0, 1.0),
            Some(paired_bootstrap(-0.024, -0.142, 0.089)),
            None,
            Some(1146),
            3,
        ),
    ];
    let warnings = vec![prose::underpowered("gpt", "ft", 38, 1146)];
    // $600 × 12 / (365 × $0.00032) = 61,644 requests a day; one instance carries 86,400, and from
    // three instances on (3 × 61,644) the fixed price stays cheaper.
    let break_even = vec![BreakEvenResult {
        per_token: "gpt".into(),
        fixed: "ft".into(),
        requests_per_day: Some(61643.83561643835),
        sustained_requests_per_day: Some(184931.50684931505),
        sentence: prose::break_even("gpt", "ft", Some(61643.83561643835), Some(184931.50684931505)),
    }];
    let recommendation = prose::recommendation(&backends, &comparisons, Some(10_000.0), &skipped);
    Results {
        error_rate_exceeded: Vec::new(),
        gate: None,
        schema_version: 1,
        suite: "support-tickets".into(),
        suite_sha256: "3f2a9c41d07be5a8e6f1c0d94b7a21e58c3d6f0a9b8e7d6c5b4a39281706f5e4".into(),
        evalgate_version: "0.1.0".into(),
        started_at: "2026-03-02T09:15:00Z".into(),
        finished_at: Some("2026-03-02T09:21:40Z".into()),
        stopped: None,
        task: TaskResult {
            kind: "classification".into(),
            labels: LABELS.iter().map(|l| l.to_string()).collect(),
            fields: vec![],
        },
        items: 40,
        backends,
        skipped,
        leaked: vec!["t-31".into(), "t-<38>".into()],
        comparisons,
        warnings,
        recommendation,
        volume: Some(VolumeResult { requests_per_day: 10_000.0 }),
        break_even,
    }
}

/// Items where the two best backends (`gpt`, `ft`) answered differently. Text from the data or
/// the model must not break the table: a `|`, line breaks, HTML and backticks.
fn disagreements() -> Vec<Disagreement> {
    vec![
        Disagreement {
            id: "t-07".into(),
            gold: "billing".into(),
            first: Some("billing".into()),
            second: Some("technical".into()),
            input: "I was charged twice | once in March\nand again in April".into(),
        },
        Disagreement {
            id: "t-19".into(),
            gold: "account".into(),
            first: Some("technical".into()),
            second: None,
            input: "Can't log in <script>alert(1)</script> after the `reset` link".into(),
        },
        Disagreement {
            id: "t-23".into(),
            gold: "technical".into(),
            first: Some("account".into()),
            second: Some("technical | account\nnot sure".into()),
            input: "The app crashes on start\r\n".into(),
        },
    ]
}

/// The report's details: the disagreements above, of 66 in all, and invalid replies whose text
/// must be escaped.
fn details() -> Details {
    Details {
        disagreements: disagreements(),
        disagreeing: 66,
        invalid_replies: vec![InvalidReplies {
            backend: "ft".into(),
            total: 7,
            shown: vec![
                InvalidReply {
                    id: "t-19".into(),
                    reply: "I think <b>account</b> | technical\nnot sure".into(),
                },
                InvalidReply { id: "t-40".into(), reply: String::new() },
            ],
        }],
    }
}

/// results.json reads back into `Results`. Not compared with `==`: serde_json parses floats
/// without its `float_roundtrip` feature, so a figure can come back one ulp off.
fn reads_back(json: &str, results: &Results) {
    let back: Results = serde_json::from_str(json).expect("results.json reads back");
    assert_eq!(back.backends.len(), results.backends.len());
    assert_eq!(back.comparisons.len(), results.comparisons.len());
    for (b, r) in back.comparisons.iter().zip(&results.comparisons) {
        assert!((b.difference.confidence - r.difference.confidence).abs() < 1e-15);
        let mut b = b.clone();
        b.difference.confidence = r.difference.confidence;
        assert_eq!(&b, r);
    }
    assert_eq!(back.recommendation, results.recommendation);
    assert_eq!(back.task, results.task);
}

#[test]
fn results_json_of_a_hand_built_run() {
    let results = classification_results();
    let json = serde_json::to_string_pretty(&results).unwrap();
    reads_back(&json, &results);
    snapshot!("formats_results_json", json);
}

#[test]
fn markdown_of_a_hand_built_run() {
    let results = classification_results();
    let md = markdown::render(&results, Some(("gpt", "ft")), &details());
    for line in md.lines().filter(|l| l.starts_with("| t-")) {
        // Five cells: the escaped `|` and line breaks stay inside theirs.
        assert_eq!(line.matches(" | ").count(), 4, "a disagreement row broke its table: {line}");
    }
    assert!(!md.contains("<script>"), "HTML must be escaped:\n{md}");
    snapshot!("formats_report_md", md);

    let md = markdown::render(&results, Some(("gpt", "ft")), &Details::default());
    assert!(md.contains("`gpt` and `ft` gave the same answer on every item both answered."));
    snapshot!("formats_report_md_no_disagreements", md);
}

/// `gpt` of the hand-built run in batch mode: two batches (the second sent again what the first
/// left when it expired), at OpenAI's batch discount.
#[test]
fn report_md_and_results_json_of_a_batch_run() {
    let mut results = classification_results();
    let gpt = results.backends.iter_mut().find(|b| b.id == "gpt").expect("gpt");
    gpt.batch = Some(BatchResult {
        provider: "openai".into(),
        price_multiplier: Some(0.5),
        discount_source: Some("https://platform.openai.com/docs/guides/batch".into()),
        discount_as_of: Some("2026-12-01".into()),
        batches: vec![
            BatchSummary {
                id: "batch_6740a1f2c3".into(),
                requests: 120,
                status: "expired".into(),
                submitted_at: "2026-03-02T09:15:00Z".into(),
                ended_at: Some("2026-03-02T10:02:41Z".into()),
                seconds: Some(2861.0),
            },
            BatchSummary {
                id: "batch_6740ad9e01".into(),
                requests: 7,
                status: "completed".into(),
                submitted_at: "2026-03-02T10:02:42Z".into(),
                ended_at: Some("2026-03-02T10:03:20Z".into()),
                seconds: Some(38.4),
            },
        ],
    });
    let json = serde_json::to_string_pretty(&results.backends[1]).unwrap();
    assert!(json.contains("\"price_multiplier\": 0.5"), "{json}");
    snapshot!("formats_results_json_batch_backend", json);
    let md = markdown::render(&results, Some(("gpt", "ft")), &details());
    assert!(md.contains("**Batch mode:** `gpt` ran in batch mode through the openai batch API, priced at 50% of the listed price (the openai batch discount), in 2 batches: `batch_6740a1f2c3` (120 requests, expired) took 47 min 41 s; `batch_6740ad9e01` (7 requests, completed) took 38.4 s."), "{md}");
    snapshot!("formats_report_md_batch", md);
}

#[test]
fn chart_of_a_hand_built_run() {
    let results = classification_results();
    let svg = chart::render(&results).expect("two backends have a cost per correct answer");
    // One point per priced backend that answered; `local` has no price.
    assert_eq!(svg.matches("<circle").count(), 2);
    snapshot!("formats_chart_svg", svg);

    // No backend with a cost per correct answer: no chart, and the report links none.
    let mut unpriced_run = results.clone();
    for b in &mut unpriced_run.backends {
        b.cost = unpriced("no price given");
    }
    assert_eq!(chart::render(&unpriced_run), None);
    assert!(!markdown::render(&unpriced_run, None, &Details::default()).contains("chart.svg"));

    // A price, but nothing answered: no point to draw either.
    let mut unanswered = results;
    unanswered.backends.retain(|b| b.id == "gpt");
    unanswered.backends[0].answered = 0;
    assert_eq!(chart::render(&unanswered), None);
}

// ---------------------------------------------------------------------------------------------
// An extraction run: 20 receipts, three fields, two backends
// ---------------------------------------------------------------------------------------------

/// How one field's answered samples fell; the scores follow (see `score::extraction`).
struct Marks {
    correct: u64,
    wrong: u64,
    missed: u64,
    spurious: u64,
    both_absent: u64,
    /// Invalid replies (no JSON object) on items with and without a gold value.
    invalid_with_gold: u64,
    invalid_without_gold: u64,
}

/// A field's scores: counted is every answered sample but those absent on both sides; a wrong
/// value is a false positive and a false negative, a missed one or an invalid reply (with gold) a
/// false negative, a spurious one a false positive.
fn field(ty: &str, m: Marks) -> FieldResult {
    let invalid = m.invalid_with_gold + m.invalid_without_gold;
    let counted = m.correct + m.wrong + m.missed + m.spurious + invalid;
    let tp = m.correct;
    let fp = m.wrong + m.spurious;
    let fn_ = m.wrong + m.missed + m.invalid_with_gold;
    FieldResult {
        ty: ty.into(),
        accuracy: wilson_result(m.correct, counted),
        precision: tp as f64 / (tp + fp) as f64,
        recall: tp as f64 / (tp + fn_) as f64,
        f1: (2 * tp) as f64 / (2 * tp + fp + fn_) as f64,
        counted,
        correct: m.correct,
        wrong: m.wrong,
        missed: m.missed,
        spurious: m.spurious,
        both_absent: m.both_absent,
        invalid,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fn_,
    }
}

/// Micro (pooled) and macro (averaged) precision, recall and F1 of the fields, with fixed
/// bootstrap bounds `±spread` around each.
fn pooled(b: &mut BackendResult, spread: f64) {
    let fields: Vec<&FieldResult> = b.fields.as_ref().unwrap().values().collect();
    let sum = |f: fn(&FieldResult) -> u64| fields.iter().map(|x| f(x)).sum::<u64>() as f64;
    let (tp, fp, fn_) =
        (sum(|f| f.true_positives), sum(|f| f.false_positives), sum(|f| f.false_negatives));
    let mean = |f: fn(&FieldResult) -> f64| fields.iter().map(|x| f(x)).sum::<f64>() / 3.0;
    let with_bounds = |e: f64| bootstrap(e, e - spread, (e + spread).min(1.0));
    b.micro_precision = Some(with_bounds(tp / (tp + fp)));
    b.micro_recall = Some(with_bounds(tp / (tp + fn_)));
    b.micro_f1 = Some(with_bounds(2.0 * tp / (2.0 * tp + fp + fn_)));
    b.macro_precision = Some(with_bounds(mean(|f| f.precision)));
    b.macro_recall = Some(with_bounds(mean(|f| f.recall)));
    b.macro_f1 = with_bounds(mean(|f| f.f1));
}

fn receipt_fields() -> Vec<FieldSpec> {
    vec![
        FieldSpec {
            name: "vendor".into(),
            ty: FieldType::String(StringMatch::Normalized),
            required: true,
            description: Some("the shop's name as printed".into()),
        },
        FieldSpec {
            name: "total".into(),
            ty: FieldType::Number { tolerance: 0.01 },
            required: true,
            description: None,
        },
        FieldSpec {
            name: "date".into(),
            ty: FieldType::Date { day_first: true },
            required: false,
            description: None,
        },
    ]
}

fn extraction_results() -> Results {
    // `gpt`: all 20 answered, one reply without JSON; 14 records exactly right.
    let mut gpt = BackendResult {
        id: "gpt".into(),
        provider: "openai".into(),
        model: Some("gpt-4o-mini".into()),
        strategy: "zero-shot".into(),
        epochs: 1,
        items: 20,
        answered: 20,
        correct: 14,
        invalid: 1,
        errors: 0,
        missing: 0,
        cached: 0,
        cached_between: None,
        accuracy: wilson_result(14, 20),
        accuracy_clustered: None,
        error_rate: wilson_result(0, 20),
        macro_f1: bootstrap(0.0, 0.0, 0.0), // set by `pooled`
        tokens: TokensResult {
            input: 17_000,
            output: 1_200,
            input_per_request: 850.0,
            output_per_request: 60.0,
            estimated: false,
        },
        latency_ms: LatencyResult { p50: 1432.0, p95: 3012.7 },
        // $0.15 / $0.60 per M tokens: 850 × 0.15e-6 + 60 × 0.6e-6 = $0.0001635 a request.
        cost: CostResult {
            pricing: Some(Pricing::PerToken {
                input_per_mtok: 0.15,
                output_per_mtok: 0.6,
                cached_input_per_mtok: Some(0.075),
                cache_write_per_mtok: None,
            }),
            price_origin: Some("suite".into()),
            price_as_of: None,
            price_source: None,
            price_stale: false,
            total_usd: Some(0.00327),
            per_request_usd: Some(0.0001635),
            per_1k_requests_usd: Some(0.1635),
            per_correct_usd: Some(CostInterval {
                estimate: 0.00023357142857142855,
                low: 0.000187,
                high: 0.000315,
            }),
            daily_usd: None,
            annual_usd: None,
            instances_needed: None,
            notes: vec![],
        },
        classes: vec![],
        confusion: vec![],
        error_kinds: BTreeMap::new(),
        error_messages: vec![],
        truncated: 0,
        stopped: None,
        structured_output_used: None,
        batch: None,
        fields: Some(BTreeMap::from([
            (
                "vendor".to_string(),
                field(
                    "string",
                    Marks {
                        correct: 17,
                        wrong: 2,
                        missed: 0,
                        spurious: 0,
                        both_absent: 0,
                        invalid_with_gold: 1,
                        invalid_without_gold: 0,
                    },
                ),
            ),
            (
                "total".to_string(),
                field(
                    "number",
                    Marks {
                        correct: 18,
                        wrong: 1,
                        missed: 0,
                        spurious: 0,
                        both_absent: 0,
                        invalid_with_gold: 1,
                        invalid_without_gold: 0,
                    },
                ),
            ),
            (
                "date".to_string(),
                field(
                    "date",
                    Marks {
                        correct: 12,
                        wrong: 1,
                        missed: 1,
                        spurious: 1,
                        both_absent: 4,
                        invalid_with_gold: 1,
                        invalid_without_gold: 0,
                    },
                ),
            ),
        ])),
        exact_match: Some(wilson_result(14, 20)),
        invalid_json: Some(1.0 / 20.0),
        micro_precision: None,
        micro_recall: None,
        micro_f1: None,
        macro_precision: None,
        macro_recall: None,
        field_errors: Some(vec![
            FieldErrorResult {
                id: "r-03".into(),
                field: "vendor".into(),
                gold: "ACME | Supplies Ltd".into(),
                predicted: "Acme Supplies\nLimited".into(),
            },
            FieldErrorResult {
                id: "r-07".into(),
                field: "total".into(),
                gold: serde_json::json!(1234.5),
                predicted: serde_json::json!(1243.5),
            },
            FieldErrorResult {
                id: "r-11".into(),
                field: "date".into(),
                gold: "2024-03-05".into(),
                predicted: serde_json::Value::Null,
            },
            FieldErrorResult {
                id: "r-15".into(),
                field: "date".into(),
                gold: serde_json::Value::Null,
                predicted: "2024-01-01".into(),
            },
        ]),
    };
    pooled(&mut gpt, 0.06);

    // `qwen`: self-hosted at a fixed price, but the suite gives no volume, so no cost per
    // request; 19 answered (one timeout), 11 exactly right.
    let mut qwen = BackendResult {
        id: "qwen".into(),
        provider: "openai".into(),
        model: Some("qwen2.5-7b-instruct".into()),
        strategy: "few-shot".into(),
        items: 20,
        answered: 19,
        correct: 11,
        invalid: 0,
        errors: 1,
        accuracy: wilson_result(11, 19),
        error_rate: wilson_result(1, 20),
        tokens: TokensResult {
            input: 24_700,
            output: 1_140,
            input_per_request: 1300.0,
            output_per_request: 60.0,
            estimated: false,
        },
        latency_ms: LatencyResult { p50: 402.5, p95: 955.0 },
        cost: CostResult {
            pricing: Some(Pricing::Fixed { monthly_usd: 400.0, capacity_rps: None }),
            price_origin: Some("suite".into()),
            notes: vec![
                "a fixed price has no cost per request without `volume.requests_per_day`".into()
            ],
            ..unpriced("")
        },
        error_kinds: BTreeMap::from([("timeout".to_string(), 1)]),
        error_messages: vec![],
        truncated: 0,
        stopped: None,
        structured_output_used: None,
        batch: None,
        fields: Some(BTreeMap::from([
            (
                "vendor".to_string(),
                field(
                    "string",
                    Marks {
                        correct: 16,
                        wrong: 3,
                        missed: 0,
                        spurious: 0,
                        both_absent: 0,
                        invalid_with_gold: 0,
                        invalid_without_gold: 0,
                    },
                ),
            ),
            (
                "total".to_string(),
                field(
                    "number",
                    Marks {
                        correct: 15,
                        wrong: 2,
                        missed: 2,
                        spurious: 0,
                        both_absent: 0,
                        invalid_with_gold: 0,
                        invalid_without_gold: 0,
                    },
                ),
            ),
            (
                "date".to_string(),
                field(
                    "date",
                    Marks {
                        correct: 11,
                        wrong: 2,
                        missed: 1,
                        spurious: 0,
                        both_absent: 5,
                        invalid_with_gold: 0,
                        invalid_without_gold: 0,
                    },
                ),
            ),
        ])),
        exact_match: Some(wilson_result(11, 19)),
        invalid_json: Some(0.0),
        field_errors: Some(vec![]),
        ..gpt.clone()
    };
    pooled(&mut qwen, 0.07);

    let comparisons = vec![comparison(
        ("gpt", "qwen"),
        [10, 3, 1, 5],
        [-2.0 / 19.0, -0.3085, 0.1132],
        (0.625, 0.625),
        None,
        Some(paired_bootstrap(-0.043, -0.118, 0.031)),
        Some(1834),
        1,
    )];
    let warnings = vec![prose::underpowered("gpt", "qwen", 19, 1834)];
    // $400 × 12 / (365 × $0.0001635) = 80,433 requests a day; no capacity given, so one
    // instance carries any volume and the fixed price stays cheaper from there.
    let break_even = vec![BreakEvenResult {
        per_token: "gpt".into(),
        fixed: "qwen".into(),
        requests_per_day: Some(80432.32374010306),
        sustained_requests_per_day: Some(80432.32374010306),
        sentence: prose::break_even(
            "gpt",
            "qwen",
            Some(80432.32374010306),
            Some(80432.32374010306),
        ),
    }];
    let backends = vec![gpt, qwen];
    let recommendation = prose::recommendation(&backends, &comparisons, None, &[]);
    Results {
        error_rate_exceeded: Vec::new(),
        gate: None,
        schema_version: 1,
        suite: "receipts".into(),
        suite_sha256: "9d4c1b7e05a3f28c6e1d0b9a8f7e6d5c4b3a29180f7e6d5c4b3a291807f6e5d4".into(),
        evalgate_version: "0.1.0".into(),
        started_at: "2026-03-02T10:00:00Z".into(),
        finished_at: Some("2026-03-02T10:04:12Z".into()),
        stopped: None,
        task: TaskResult { kind: "extraction".into(), labels: vec![], fields: receipt_fields() },
        items: 20,
        backends,
        skipped: vec![],
        leaked: vec![],
        comparisons,
        warnings,
        recommendation,
        volume: None,
        break_even,
    }
}

#[test]
fn markdown_of_a_hand_built_extraction_run() {
    let results = extraction_results();
    let json = serde_json::to_string_pretty(&results).unwrap();
    reads_back(&json, &results);
    // The pipeline shows field errors instead of disagreements for extraction.
    let md = markdown::render(&results, None, &Details::default());
    assert!(md.contains("| r-03 | vendor | ACME \\| Supplies Ltd | Acme Supplies ↵ Limited |"));
    snapshot!("formats_extraction_report_md", md);
    let svg = chart::render(&results).expect("`gpt` has a cost per correct answer");
    assert!(svg.contains("Exact match (95% CI) against cost per correct answer"));
}

// ---------------------------------------------------------------------------------------------
// records.csv from a hand-written journal
// ---------------------------------------------------------------------------------------------

fn backend_meta(id: &str, model: &str, strategy: &str, epochs: u32) -> BackendMeta {
    BackendMeta {
        id: id.into(),
        provider: "openai".into(),
        model: Some(model.into()),
        strategy: strategy.into(),
        base_url: Some("http://127.0.0.1:8000/v1".into()),
        few_shot: (strategy == "few-shot").then(|| FewShotMeta {
            k: 4,
            select: "stratified".into(),
            seed: 7,
        }),
        price: None,
        epochs,
        structured_output: false,
        stopped: None,
        structured_output_used: None,
        batch: None,
    }
}

fn run_meta() -> RunMeta {
    RunMeta {
        margin: MARGIN,
        schema_version: 1,
        evalgate_version: "0.1.0".into(),
        suite: SuiteMeta {
            name: "support-tickets".into(),
            path: "suite.yaml".into(),
            sha256: "3f2a9c41d07be5a8e6f1c0d94b7a21e58c3d6f0a9b8e7d6c5b4a39281706f5e4".into(),
            data_sha256: "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c".into(),
            description: None,
        },
        task: TaskMeta {
            kind: TaskKind::Classification,
            labels: LABELS.iter().map(|l| l.to_string()).collect(),
            fields: vec![],
        },
        backends: vec![
            BackendMeta {
                price: Some(Price {
                    pricing: Pricing::PerToken {
                        input_per_mtok: 2.5,
                        output_per_mtok: 10.0,
                        cached_input_per_mtok: None,
                        cache_write_per_mtok: None,
                    },
                    origin: "suite".into(),
                    as_of: None,
                    source: None,
                }),
                ..backend_meta("gpt", "gpt-4o", "few-shot", 1)
            },
            // Two samples per item: the CSV gains an `epoch` column.
            backend_meta("ft", "ft:support-v2", "fine-tuned", 2),
        ],
        skipped: vec![],
        items: vec!["t-1".into(), "t-2".into()],
        started_at: "2026-03-02T09:15:00Z".into(),
        finished_at: Some("2026-03-02T09:15:09Z".into()),
        requests_per_day: None,
        compare: vec![],
        groups: None,
        stopped: None,
        shard: None,
        positions: None,
        leaked: vec![],
        warnings: vec![],
    }
}

/// An answered record; `answer` is `None` for a reply that names no label.
fn answered(
    id: &str,
    backend: &str,
    epoch: u32,
    gold: &str,
    reply: &str,
    answer: Option<&str>,
) -> Record {
    Record {
        id: id.into(),
        backend: backend.into(),
        prompt: vec![
            ChatMessage::system("Classify the ticket as billing, technical or account."),
            ChatMessage::user(format!("Ticket {id}")),
        ],
        reply: Some(reply.into()),
        answer: answer.map(str::to_string),
        gold: gold.into(),
        correct: Some(answer == Some(gold)),
        invalid: answer.is_none(),
        tokens: Tokens {
            input: 48,
            output: 3,
            cached_input: 0,
            estimated: backend == "ft",
            reasoning: 0,
            cache_write_input: 0,
        },
        latency_ms: 412.3456,
        attempts: 1,
        finish_reason: Some("stop".into()),
        error: None,
        epoch,
        cached: false,
        cached_at: None,
        reasoning: None,
    }
}

/// A request that failed after its retries: no reply, no answer, neither right nor wrong.
fn failed(id: &str, backend: &str, epoch: u32, gold: &str, error: RecordError) -> Record {
    Record {
        reply: None,
        answer: None,
        correct: None,
        invalid: false,
        tokens: Tokens::default(),
        latency_ms: 60000.0,
        attempts: 6,
        finish_reason: None,
        error: Some(error),
        ..answered(id, backend, epoch, gold, "", None)
    }
}

#[test]
fn records_csv_of_a_hand_written_journal() {
    let dir = tempfile::Builder::new().prefix("evalgate-formats-").tempdir().unwrap();
    run_meta().write(dir.path()).unwrap();
    let records = [
        // Rate-limited until the run stopped; the resumed run answers it (the last record below).
        failed(
            "t-1",
            "gpt",
            0,
            "billing",
            RecordError {
                kind: "http".into(),
                status: Some(429),
                message: "Rate limit reached, retry in 20s".into(),
            },
        ),
        answered("t-1", "ft", 0, "billing", "billing", Some("billing")),
        answered("t-1", "ft", 1, "billing", "technical", Some("technical")),
        // A reply with a comma, a quote and a line break, which CSV must quote.
        answered(
            "t-2",
            "gpt",
            0,
            "account",
            "He wrote \"locked out, again\"\nso: account",
            Some("account"),
        ),
        answered("t-2", "ft", 0, "account", "Account.", Some("account")),
        failed(
            "t-2",
            "ft",
            1,
            "account",
            RecordError {
                kind: "timeout".into(),
                status: None,
                message: "no reply within 60 s".into(),
            },
        ),
        answered("t-1", "gpt", 0, "billing", "refund?", None),
    ];
    let mut jsonl = String::new();
    for r in &records {
        jsonl.push_str(&serde_json::to_string(r).unwrap());
        jsonl.push('\n');
    }
    std::fs::write(dir.path().join("records.jsonl"), jsonl).unwrap();

    let meta = RunMeta::read(dir.path()).unwrap();
    evalgate::report::csv::write(dir.path(), &meta).unwrap();
    let text = std::fs::read_to_string(dir.path().join("records.csv")).unwrap();

    // One row per item, backend and sample; the resumed `t-1`/`gpt` keeps its last record.
    let rows = crate::support::csv_rows(dir.path());
    assert_eq!(rows.len(), 6, "{text}");
    let t1_gpt: Vec<&Vec<String>> =
        rows.iter().filter(|r| r[0] == "t-1" && r[1] == "gpt").collect();
    assert_eq!(t1_gpt.len(), 1);
    assert_eq!(t1_gpt[0][15], "refund?");
    assert!(rows.iter().any(|r| r[15] == "He wrote \"locked out, again\"\nso: account"));
    snapshot!("formats_records_csv", text);
}

// ---------------------------------------------------------------------------------------------
// The gate: its section at the top of report.md, and the JUnit file
// ---------------------------------------------------------------------------------------------

fn gate_verdict() -> GateVerdict {
    let check =
        |name: &str, verdict: Verdict, value: [f64; 3], threshold: f64, detail: &str| Check {
            name: name.into(),
            passed: verdict == Verdict::Pass,
            verdict,
            value: Some(value[0]),
            low: Some(value[1]),
            high: Some(value[2]),
            threshold,
            detail: detail.into(),
            infrastructure: name.starts_with("max_error_rate"),
        };
    GateVerdict {
        passed: false,
        candidate: "ft|8b".into(),
        baseline: Some("mini-5shot".into()),
        checks: vec![
            check("max_error_rate.candidate", Verdict::Pass, [0.0, 0.0, 0.016], 0.05, "0 of 240 requests to `ft|8b` failed"),
            check("min_accuracy", Verdict::Pass, [0.892, 0.846, 0.925], 0.8, "89.2% (95% CI 84.6%–92.5%) clears 80%"),
            check("non_inferiority_margin", Verdict::Inconclusive, [-0.01, -0.04, 0.02], -0.02, "candidate − baseline straddles −2.0; about 2100 items would show it <not worse> & settle it"),
            check("min_recall.billing", Verdict::Fail, [0.6, 0.45, 0.73], 0.9, "the whole interval is on the wrong side of 90%"),
        ],
    }
}

#[test]
fn gated_report_md_snapshot() {
    let mut r = classification_results();
    r.gate = Some(gate_verdict());
    r.error_rate_exceeded = vec![ErrorRateResult {
        backend: "mini-zero".into(),
        errors: 40,
        requests: 240,
        error_rate: 40.0 / 240.0,
        max_error_rate: 0.05,
    }];
    let md = markdown::render(&r, None, &Details::default());
    snapshot!("formats_gated_report_md", md);
}

#[test]
fn gate_junit_snapshot() {
    snapshot!("formats_gate_junit_xml", junit::render(&gate_verdict()));
}

#[test]
fn per_class_tables_are_worst_f1_first() {
    let md = markdown::render(&classification_results(), Some(("gpt", "ft")), &details());
    // ft: account F1 0.842, technical 0.857, billing 0.909.
    let section = &md[md.find("<summary>Per-class results of ft").unwrap()..];
    let labels: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| label"))
        .take(3)
        .map(|l| l.split(" | ").next().unwrap())
        .collect();
    assert_eq!(labels, ["| account", "| technical", "| billing"]);
    // A label neither in the gold nor predicted says nothing and goes last, whatever its F1.
    let class = |label: &str, support: u64, f1: f64| ClassResult {
        label: label.into(),
        support,
        predicted: support,
        precision: f1,
        recall: f1,
        f1,
    };
    let classes = [class("absent", 0, 0.0), class("good", 5, 0.9), class("bad", 5, 0.2)];
    let order: Vec<&str> =
        markdown::worst_first(&classes).iter().map(|c| c.label.as_str()).collect();
    assert_eq!(order, ["bad", "good", "absent"]);
}

#[test]
fn disagreements_are_counted_and_invalid_replies_escaped() {
    let md = markdown::render(&classification_results(), Some(("gpt", "ft")), &details());
    assert!(
        md.contains("<summary>Where gpt and ft disagree: 3 of 66 items shown</summary>"),
        "{md}"
    );
    assert!(md.contains("<summary>Invalid replies (ft 7)"), "{md}");
    assert!(
        md.contains("| ft | t-19 | I think &lt;b&gt;account&lt;/b&gt; \\| technical ↵ not sure |"),
        "{md}"
    );
    assert!(md.contains("| ft | t-40 | *(empty)* |"), "{md}");
    assert!(!md.contains("<b>"), "model text must be escaped:\n{md}");
}

#[test]
fn comparisons_name_the_method_of_their_intervals() {
    let mut r = classification_results();
    for c in &mut r.comparisons {
        c.difference.method = "paired-item-means".into();
    }
    let md = markdown::render(&r, None, &Details::default());
    assert!(
        md.contains("(second − first) by the mean over items of the per-item difference"),
        "{md}"
    );
    assert!(!md.contains("Newcombe"), "epochs > 1 do not use Newcombe's interval:\n{md}");
    assert!(md.contains("Holm's correction across the 3 comparisons"), "{md}");
    r.comparisons.truncate(1);
    let md = markdown::render(&r, None, &Details::default());
    assert!(!md.contains("across the 1 comparison"), "{md}");
    assert!(md.contains("with one comparison there is nothing to correct for"), "{md}");
}

#[test]
fn the_step_summary_has_no_chart_image() {
    let md = markdown::render(&classification_results(), Some(("gpt", "ft")), &details());
    assert!(md.contains("](chart.svg)") && md.contains("a file in the run directory"));
    let summary = markdown::step_summary(&md);
    assert!(!summary.contains("](chart.svg)"), "{summary}");
    assert!(summary.contains("`chart.svg` in the run directory (not shown in step summaries)"));
    assert!(!summary.contains("\n\n\n"), "{summary}");
}
