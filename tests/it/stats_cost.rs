//! The `stats` and `cost` calculators against reference values computed outside evalgate
//! (statsmodels 0.15.0 / scipy 1.17.1, pasted below with the exact call), and the statistics
//! and cost figures of a run recomputed here from its `records.jsonl`.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::support::openai_server::{RecordedRequest, Reply, TestServer, Usage};
use crate::support::*;

/// Runs `evalgate ARGS` in a fresh workspace and returns its outcome.
fn cli(args: &[&str]) -> Outcome {
    let ws = Workspace::new();
    output(evalgate(ws.path()).args(args))
}

/// Runs `evalgate ARGS` (ending in `--json`), expects exit 0, and parses stdout.
fn cli_json(args: &[&str]) -> Value {
    let out = cli(args);
    assert_eq!(out.code, Some(0), "evalgate {args:?}: {}", out.stderr);
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("evalgate {args:?}: stdout is not JSON ({e}): {}", out.stdout))
}

fn close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected} (±{tolerance})"
    );
}

fn close_rel(actual: f64, expected: f64, relative: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= relative * expected.abs(),
        "{what}: got {actual}, expected {expected} (relative {relative})"
    );
}

// ---------------------------------------------------------------------------------------------
// stats proportion
// ---------------------------------------------------------------------------------------------

/// (k, n, confidence, method, low, high). Each row is
/// `statsmodels.stats.proportion.proportion_confint(k, n, alpha=1-confidence, method=M)` with
/// M = 'wilson' for "wilson" and M = 'beta' (Clopper–Pearson) for "exact"; statsmodels 0.15.0.
const PROPORTION: &[(u64, u64, f64, &str, f64, f64)] = &[
    (0, 1, 0.9, "wilson", 0.0, 0.730134051215946),
    (0, 1, 0.9, "exact", 0.0, 0.95),
    (0, 1, 0.95, "wilson", 0.0, 0.7934506856227626),
    (0, 1, 0.95, "exact", 0.0, 0.975),
    (0, 1, 0.99, "wilson", 0.0, 0.8690224567198142),
    (0, 1, 0.99, "exact", 0.0, 0.995),
    (1, 1, 0.9, "wilson", 0.269865948784054, 1.0),
    (1, 1, 0.9, "exact", 0.04999999999999999, 1.0),
    (1, 1, 0.95, "wilson", 0.20654931437723745, 1.0),
    (1, 1, 0.95, "exact", 0.025000000000000022, 1.0),
    (1, 1, 0.99, "wilson", 0.13097754328018596, 1.0),
    (1, 1, 0.99, "exact", 0.0050000000000000044, 1.0),
    (0, 10, 0.9, "wilson", 0.0, 0.2129419700834071),
    (0, 10, 0.9, "exact", 0.0, 0.2588655508930523),
    (0, 10, 0.95, "wilson", 0.0, 0.2775327998628892),
    (0, 10, 0.95, "exact", 0.0, 0.3084971078187607),
    (0, 10, 0.99, "wilson", 0.0, 0.3988540933049081),
    (0, 10, 0.99, "exact", 0.0, 0.4112959813475253),
    (10, 10, 0.9, "wilson", 0.7870580299165928, 1.0),
    (10, 10, 0.9, "exact", 0.7411344491069477, 1.0),
    (10, 10, 0.95, "wilson", 0.7224672001371107, 0.9999999999999999),
    (10, 10, 0.95, "exact", 0.6915028921812392, 1.0),
    (10, 10, 0.99, "wilson", 0.6011459066950919, 1.0),
    (10, 10, 0.99, "exact", 0.5887040186524747, 1.0),
    (3, 10, 0.9, "wilson", 0.12687658390319784, 0.558300204130165),
    (3, 10, 0.9, "exact", 0.0872644339141503, 0.6066242161054123),
    (3, 10, 0.95, "wilson", 0.10779126740630099, 0.6032218525388546),
    (3, 10, 0.95, "exact", 0.0667395111777345, 0.6524528500599973),
    (3, 10, 0.99, "wilson", 0.07956631652306573, 0.6799753207988974),
    (3, 10, 0.99, "exact", 0.03700722109623209, 0.7351139852871307),
    (7, 20, 0.9, "wilson", 0.202260040056761, 0.5334873111515284),
    (7, 20, 0.9, "exact", 0.1773109175744491, 0.5580345113154888),
    (7, 20, 0.95, "wilson", 0.18119182410108206, 0.5671457233147638),
    (7, 20, 0.95, "exact", 0.1539092047845412, 0.5921885345328282),
    (7, 20, 0.99, "wilson", 0.1463934413769388, 0.6283381789526871),
    (7, 20, 0.99, "exact", 0.11387976326673242, 0.6565685842319211),
    (50, 100, 0.9, "wilson", 0.4188477961125295, 0.5811522038874706),
    (50, 100, 0.9, "exact", 0.41362171463091174, 0.5863782853690882),
    (50, 100, 0.95, "wilson", 0.4038315303659956, 0.5961684696340044),
    (50, 100, 0.95, "exact", 0.398321129503301, 0.601678870496699),
    (50, 100, 0.99, "wilson", 0.37527962504483986, 0.6247203749551602),
    (50, 100, 0.99, "exact", 0.3688614373589241, 0.6311385626410759),
    (0, 10000, 0.9, "wilson", 0.0, 0.0002704811655548492),
    (0, 10000, 0.9, "exact", 0.0, 0.00029952835977661206),
    (0, 10000, 0.95, "wilson", 0.0, 0.00038399837067659573),
    (0, 10000, 0.95, "exact", 0.0, 0.0003688199146187622),
    (0, 10000, 0.99, "wilson", 0.0, 0.0006630497334598373),
    (0, 10000, 0.99, "exact", 0.0, 0.0005296914006061454),
    (1, 10000, 0.9, "wilson", 2.2309538222766952e-05, 0.0004481175310989713),
    (1, 10000, 0.9, "exact", 5.129316283767299e-06, 0.0004742976591654369),
    (1, 10000, 0.95, "wilson", 1.765267360112231e-05, 0.0005662688974013381),
    (1, 10000, 0.95, "exact", 2.5317775934746887e-06, 0.0005570369979470473),
    (1, 10000, 0.99, "wilson", 1.1740655287972152e-05, 0.0008511764682251732),
    (1, 10000, 0.99, "exact", 5.01254056726572e-07, 0.0007427741123960361),
    (5000, 10000, 0.9, "wilson", 0.4917768441952793, 0.5082231558047208),
    (5000, 10000, 0.9, "exact", 0.4917265044037394, 0.5082734955962607),
    (5000, 10000, 0.95, "wilson", 0.49020206181540477, 0.5097979381845952),
    (5000, 10000, 0.95, "exact", 0.4901513805899805, 0.5098486194100196),
    (5000, 10000, 0.99, "wilson", 0.4871251239475885, 0.5128748760524116),
    (5000, 10000, 0.99, "exact", 0.48707333515582113, 0.5129266648441788),
    (9999, 10000, 0.9, "wilson", 0.999551882468901, 0.9999776904617773),
    (9999, 10000, 0.9, "exact", 0.9995257023408346, 0.9999948706837163),
    (9999, 10000, 0.95, "wilson", 0.9994337311025987, 0.9999823473263989),
    (9999, 10000, 0.95, "exact", 0.9994429630020529, 0.9999974682224065),
    (9999, 10000, 0.99, "wilson", 0.9991488235317749, 0.999988259344712),
    (9999, 10000, 0.99, "exact", 0.999257225887604, 0.9999994987459433),
    (10000, 10000, 0.9, "wilson", 0.999729518834445, 1.0),
    (10000, 10000, 0.9, "exact", 0.9997004716402234, 1.0),
    (10000, 10000, 0.95, "wilson", 0.9996160016293234, 1.0),
    (10000, 10000, 0.95, "exact", 0.9996311800853812, 1.0),
    (10000, 10000, 0.99, "wilson", 0.9993369502665401, 1.0),
    (10000, 10000, 0.99, "exact", 0.9994703085993939, 1.0),
    (123, 10000, 0.9, "wilson", 0.010614388298550947, 0.01424943903033125),
    (123, 10000, 0.9, "exact", 0.010543169767142688, 0.014272472339310156),
    (123, 10000, 0.95, "wilson", 0.01031929142332744, 0.01465526058743051),
    (123, 10000, 0.95, "exact", 0.010232648807312582, 0.014658171401335757),
    (123, 10000, 0.99, "wilson", 0.009766838825302899, 0.015479899884713828),
    (123, 10000, 0.99, "exact", 0.009643581030532545, 0.015431327779867342),
];

#[test]
fn stats_proportion_matches_statsmodels() {
    for &(k, n, confidence, method, low, high) in PROPORTION {
        let (ks, ns, cs) = (k.to_string(), n.to_string(), confidence.to_string());
        let v = cli_json(&[
            "stats",
            "proportion",
            "--correct",
            &ks,
            "--total",
            &ns,
            "--confidence",
            &cs,
            "--method",
            method,
            "--json",
        ]);
        let what = format!("{k}/{n} at {confidence} ({method})");
        assert_eq!(v["estimate"].as_f64(), Some(k as f64 / n as f64), "{what}: estimate");
        close(f(&v["low"]), low, 1e-6, &format!("{what}: low"));
        close(f(&v["high"]), high, 1e-6, &format!("{what}: high"));
        assert_eq!(v["method"], method, "{what}");
        assert_eq!(v["confidence"].as_f64(), Some(confidence), "{what}");
        if k == 0 {
            assert_eq!(f(&v["low"]), 0.0, "{what}: k = 0 gives low exactly 0");
        }
        if k == n {
            assert_eq!(f(&v["high"]), 1.0, "{what}: k = n gives high exactly 1");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// stats paired
// ---------------------------------------------------------------------------------------------

/// (a, b, c, d, estimate, low, high, p) of one reference row.
type PairedRow = (u64, u64, u64, u64, f64, f64, f64, f64);

/// (both_correct A, only_first B, only_second C, both_wrong D, confidence, McNemar p, Newcombe low,
/// Newcombe high).
/// - p: `statsmodels.stats.contingency_tables.mcnemar([[A, B], [C, D]], exact=True).pvalue`.
/// - low/high: Newcombe (1998), "Improved confidence intervals for the difference between
///   binomial proportions based on paired data", Stat Med 17:2635–2650, method 10, computed in
///   Python for D = p2 − p1 (p1 = (A+B)/n, p2 = (A+C)/n) with Wilson limits (l, u) from
///   `proportion_confint(.., method='wilson')`:
///   `low = D − sqrt((p2−l2)² − 2φ(p2−l2)(u1−p1) + (u1−p1)²)`,
///   `high = D + sqrt((u2−p2)² − 2φ(u2−p2)(p1−l1) + (p1−l1)²)`,
///   φ = corrected(AD − BC) / sqrt((A+B)(C+D)(A+C)(B+D)), corrected(x) = x − n/2 if x > n/2, 0 if
///   0 ≤ x ≤ n/2, x if x < 0, and φ = 0 when a margin is 0. That Python reproduces the paper's
///   example (a) (e, f, g, h = 36, 12, 2, 0): 0.0569 to 0.3404.
const PAIRED: &[PairedRow] = &[
    (10, 3, 7, 5, 0.95, 0.34375, -0.09037627541723031, 0.3834224863675896),
    (27, 0, 0, 27, 0.95, 1.0, -0.03506966297161304, 0.03506966297161304),
    (0, 0, 0, 1, 0.95, 1.0, -0.7934506856227626, 0.7934506856227626),
    (50, 12, 2, 36, 0.95, 0.012939453125, -0.1709271655117352, -0.026595176157164266),
    (400, 30, 45, 25, 0.9, 0.10534226887460482, 0.0013328908168059976, 0.058934072490427675),
    (0, 5, 0, 0, 0.99, 0.0625, -1.0, -0.19353294834749324),
    (1000, 0, 13, 0, 0.95, 0.000244140625, 0.006309695991133069, 0.02183227896067419),
    (5, 20, 1, 2, 0.95, 2.09808349609375e-05, -0.8166375808510344, -0.42174237165749273),
    (120, 9, 21, 50, 0.99, 0.042773945257067694, -0.010906482721017838, 0.1303469177897283),
];

#[test]
fn stats_paired_matches_mcnemar_and_newcombe() {
    for &(a, b, c, d, confidence, p, low, high) in PAIRED {
        let s = |x: u64| x.to_string();
        let v = cli_json(&[
            "stats",
            "paired",
            "--both-correct",
            &s(a),
            "--only-first",
            &s(b),
            "--only-second",
            &s(c),
            "--both-wrong",
            &s(d),
            "--confidence",
            &confidence.to_string(),
            "--json",
        ]);
        let what = format!("table {a}/{b}/{c}/{d} at {confidence}");
        let n = (a + b + c + d) as f64;
        let diff = &v["difference"];
        let estimate = f(&diff["estimate"]);
        assert_eq!(estimate, (c as f64 - b as f64) / n, "{what}: estimate = (C − B)/N");
        close(f(&v["first"]["estimate"]), (a + b) as f64 / n, 1e-15, &format!("{what}: first"));
        close(f(&v["second"]["estimate"]), (a + c) as f64 / n, 1e-15, &format!("{what}: second"));
        close(f(&v["mcnemar_p"]), p, 1e-9, &format!("{what}: McNemar exact p"));
        let (lo, hi) = (f(&diff["low"]), f(&diff["high"]));
        assert!(
            (-1.0..=1.0).contains(&lo) && (-1.0..=1.0).contains(&hi),
            "{what}: [{lo}, {hi}] leaves [−1, 1]"
        );
        assert!(
            lo <= estimate && estimate <= hi,
            "{what}: [{lo}, {hi}] does not contain {estimate}"
        );
        close(lo, low, 1e-9, &format!("{what}: Newcombe low"));
        close(hi, high, 1e-9, &format!("{what}: Newcombe high"));
        assert_eq!(diff["method"], "newcombe-hybrid-score");
    }
}

// ---------------------------------------------------------------------------------------------
// stats sample-size
// ---------------------------------------------------------------------------------------------

#[test]
fn stats_sample_size_matches_the_formulas() {
    let items = |args: &[&str]| {
        let mut all = vec!["stats", "sample-size"];
        all.extend_from_slice(args);
        all.push("--json");
        u(&cli_json(&all)["items"])
    };
    // Textbook: one proportion, p0 = 0.5 vs p1 = 0.6, 80% power, two-sided 5%: 194 (score-test
    // form, e.g. Lachin 1981, Controlled Clinical Trials 2:93; Chow, Shao & Wang, "Sample Size
    // Calculations in Clinical Research", §4.1).
    assert_eq!(items(&["--baseline", "0.5", "--target", "0.6"]), 194);
    // n = ⌈((z_{1−α/2}·√(p0 q0) + z_power·√(p1 q1)) / (p1 − p0))²⌉ in Python with
    // z = scipy.stats.norm.ppf: (0.8, 0.85, power 0.9, 95%) → 616.62 → 617;
    // (0.3, 0.2, power 0.8, 99%) → 230.14 → 231.
    assert_eq!(items(&["--baseline", "0.8", "--target", "0.85", "--power", "0.9"]), 617);
    assert_eq!(items(&["--baseline", "0.3", "--target", "0.2", "--confidence", "0.99"]), 231);
    // Paired, Connor (1987, Biometrics 43:207): n = ⌈((z_a·√ψ + z_b·√(ψ − d²)) / d)²⌉, same z:
    // (ψ 0.2, d 0.05, power 0.8, 95%) → 625.55 → 626; (ψ 0.1, d −0.03, power 0.9, 95%) →
    // 1163.33 → 1164; (ψ 0.3, d 0.1, power 0.8, 99%) → 347.47 → 348.
    assert_eq!(items(&["--paired", "--discordance", "0.2", "--difference", "0.05"]), 626);
    assert_eq!(
        items(&["--paired", "--discordance", "0.1", "--difference", "-0.03", "--power", "0.9"]),
        1164
    );
    assert_eq!(
        items(&["--paired", "--discordance", "0.3", "--difference", "0.1", "--confidence", "0.99"]),
        348
    );
}

#[test]
fn stats_bad_inputs_exit_two_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["stats", "proportion", "--correct", "11", "--total", "10"], "exceed"),
        (&["stats", "proportion", "--correct", "1", "--total", "10", "--confidence", "1.5"], "1.5"),
        (
            &[
                "stats",
                "paired",
                "--both-correct",
                "1",
                "--only-first",
                "1",
                "--only-second",
                "1",
                "--both-wrong",
                "1",
                "--confidence",
                "1.5",
            ],
            "1.5",
        ),
        (
            &["stats", "sample-size", "--baseline", "0.5", "--target", "0.6", "--power", "0"],
            "power",
        ),
        (&["stats", "sample-size", "--baseline", "0.5", "--target", "0.5"], "difference"),
        (
            &["stats", "proportion", "--correct", "1", "--total", "10", "--frobnicate"],
            "--frobnicate",
        ),
    ];
    for (args, needle) in cases {
        let out = cli(args);
        assert_eq!(out.code, Some(2), "evalgate {args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "evalgate {args:?}: stderr should mention `{needle}`: {}",
            out.stderr
        );
        assert!(
            out.stdout.trim().is_empty(),
            "evalgate {args:?}: nothing on stdout: {}",
            out.stdout
        );
    }
}

// ---------------------------------------------------------------------------------------------
// cost
// ---------------------------------------------------------------------------------------------

#[test]
fn cost_calculator_reproduces_hand_arithmetic() {
    let cost = |args: &[&str]| {
        let mut all = vec!["cost", "--requests-per-day", "50000"];
        all.extend_from_slice(args);
        all.push("--json");
        cli_json(&all)
    };
    // 500 tokens × $10/M = $0.005 a request; × 50,000 = $250 a day; × 365 = $91,250.
    let v = cost(&["--input-tokens", "500", "--input-price", "10"]);
    assert_eq!(
        (f(&v["per_request_usd"]), f(&v["daily_usd"]), f(&v["annual_usd"])),
        (0.005, 250.0, 91250.0)
    );
    // 500 × $0.15/M × 50,000 = $3.75 a day, $1,368.75 a year (exact in decimal; must print exactly).
    let v = cost(&["--input-tokens", "500", "--input-price", "0.15"]);
    assert_eq!((f(&v["daily_usd"]), f(&v["annual_usd"])), (3.75, 1368.75));
    // $300 a month = $3,600 a year; per request 3600/365/50000 = 0.000197 < $0.001.
    let v = cost(&["--monthly-usd", "300"]);
    assert_eq!(f(&v["annual_usd"]), 3600.0);
    assert!(f(&v["per_request_usd"]) < 0.001, "{v}");
    close_rel(f(&v["per_request_usd"]), 3600.0 / 365.0 / 50000.0, 1e-12, "fixed per request");
    assert_eq!(u(&v["instances_needed"]), 1);
    let v = cost(&["--monthly-usd", "600"]);
    assert_eq!(f(&v["annual_usd"]), 7200.0);
    // 50,000 / 86,400 s = 0.579 req/s over 0.5 req/s per instance → 2 instances × 450 × 12 = 10,800.
    let v = cost(&["--monthly-usd", "450", "--capacity-rps", "0.5"]);
    assert_eq!((u(&v["instances_needed"]), f(&v["annual_usd"])), (2, 10800.0));
    // gpt-4o-mini: $0.15 in / $0.60 out per M (https://openai.com/api/pricing/):
    // 500 × 0.15 + 100 × 0.60 = 135 µ$ a request → $6.75 a day → $2,463.75 a year.
    let v = cost(&["--model", "gpt-4o-mini", "--input-tokens", "500", "--output-tokens", "100"]);
    close(f(&v["per_request_usd"]), 0.000135, 1e-15, "gpt-4o-mini per request");
    close(f(&v["daily_usd"]), 6.75, 1e-9, "gpt-4o-mini daily");
    close(f(&v["annual_usd"]), 2463.75, 1e-9, "gpt-4o-mini annual");
    assert_eq!(v["model"]["model"], "gpt-4o-mini");
    // Only input tokens: 0.15 × 500 × 50,000 / 1e6 = 3.75, the same as --input-price 0.15.
    let v = cost(&["--model", "gpt-4o-mini", "--input-tokens", "500"]);
    close(f(&v["daily_usd"]), 3.75, 1e-9, "gpt-4o-mini input-only daily");

    let out = cli(&["cost", "--requests-per-day", "50000", "--model", "unknown-model", "--json"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("unknown-model"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// A run with three backends: numbered items, a server that knows each backend's answers
// ---------------------------------------------------------------------------------------------

const LABELS: [&str; 2] = ["spam", "ham"];

fn gold(i: usize) -> &'static str {
    LABELS[i % 2]
}

fn other(label: &str) -> &'static str {
    if label == LABELS[0] {
        LABELS[1]
    } else {
        LABELS[0]
    }
}

/// Test rows `it-0 .. it-{n-1}` with text `item N`, gold alternating spam/ham.
fn numbered_rows(n: usize) -> Vec<Row> {
    (0..n).map(|i| row(&format!("it-{i}"), &format!("item {i}"), gold(i))).collect()
}

const RUN_HEAD: &str = r#"schema_version: 1
name: numbered
task:
  kind: classification
  labels: [spam, ham]
  instructions: "Answer with spam or ham."
  input: "Message: {{ text }}"
data:
  test: test.csv
"#;

/// An openai backend against `base`.
fn openai_backend(id: &str, model: &str, base: &str, extra: &str) -> String {
    format!("  - id: {id}\n    provider: openai\n    base_url: {base}\n    model: {model}\n{extra}")
}

fn run_ok(ws: &Workspace, suite: &std::path::Path, run: &std::path::Path) {
    // Some of these suites fail 10% of requests on purpose.
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(suite)
            .arg("--out")
            .arg(run)
            .arg("--quiet")
            .args(["--max-error-rate", "0.5"]),
    );
    assert_eq!(out.code, Some(0), "run failed: {}", out.stderr);
}

/// The records of `backend`, by item id (the last record per item, as scoring keeps).
fn records_of(run: &std::path::Path, backend: &str) -> BTreeMap<String, Value> {
    records(run)
        .into_iter()
        .filter(|r| r["backend"] == backend)
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect()
}

/// Usage the server reports for item i of the per-token backend.
fn usage_of(i: usize) -> Usage {
    Usage { prompt_tokens: 100 + 13 * i as u64, completion_tokens: 1 + (i % 3) as u64 }
}

/// Thousands separators, written here for the break-even sentence.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[test]
fn run_cost_is_recomputed_from_the_journal() {
    const N: usize = 24;
    // `priced` is right unless i % 4 == 0, with known usage per item; `unpriced` and `fixed`
    // always answer right with the default usage.
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        let i = item_number(req).expect("numbered item");
        match req.model() {
            Some("acme-priced") => {
                let answer = if i.is_multiple_of(4) { other(gold(i)) } else { gold(i) };
                Reply::chat(answer).with_usage(Some(usage_of(i)))
            }
            _ => Reply::chat(gold(i)),
        }
    });
    let base = server.base_url();
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&numbered_rows(N)));
    let suite = format!(
        "{RUN_HEAD}backends:\n{}{}{}volume: {{ requests_per_day: 10000 }}\n",
        openai_backend(
            "priced",
            "acme-priced",
            &base,
            "    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }\n"
        ),
        openai_backend("unpriced", "my-llama", &base, ""),
        openai_backend(
            "fixed",
            "my-ft",
            &base,
            "    pricing: { monthly_usd: 450, capacity_rps: 25 }\n"
        ),
    );
    let suite = ws.write("suite.yaml", &suite);
    let run = ws.run_dir("run");
    run_ok(&ws, &suite, &run);
    let results = results(&run);

    // Per-token backend: every figure from the journal's tokens.
    let recs = records_of(&run, "priced");
    assert_eq!(recs.len(), N);
    let mut total = 0.0;
    let mut correct = 0u64;
    for (id, r) in &recs {
        let i: usize = id.trim_start_matches("it-").parse().unwrap();
        let (input, out) = (u(&r["tokens"]["input"]), u(&r["tokens"]["output"]));
        assert_eq!(
            (input, out),
            (usage_of(i).prompt_tokens, usage_of(i).completion_tokens),
            "{id}: journal tokens are the server's usage"
        );
        total += (input as f64 * 2.5 + out as f64 * 10.0) / 1e6;
        correct += u64::from(r["correct"] == true);
    }
    assert_eq!(correct, 18, "i % 4 != 0 for 18 of 24 items");
    let priced = backend(&results, "priced");
    let c = &priced["cost"];
    let answered = u(&priced["answered"]);
    assert_eq!(answered, N as u64);
    close(f(&c["total_usd"]), total, 1e-12, "total_usd");
    let per_request = total / answered as f64;
    close(f(&c["per_request_usd"]), per_request, 1e-12, "per_request_usd");
    close(f(&c["per_1k_requests_usd"]), per_request * 1000.0, 1e-12, "per_1k_requests_usd");
    let pc = &c["per_correct_usd"];
    close(f(&pc["estimate"]), total / correct as f64, 1e-12, "per_correct_usd.estimate");
    assert!(
        f(&pc["low"]) <= f(&pc["estimate"]) && f(&pc["estimate"]) <= f(&pc["high"]),
        "per_correct interval: {pc}"
    );
    close(f(&c["daily_usd"]), per_request * 10000.0, 1e-9, "daily_usd");
    close(f(&c["annual_usd"]), per_request * 10000.0 * 365.0, 1e-9, "annual_usd");
    assert_eq!(c["price_origin"], "suite");

    // No price: every figure is null, never 0.
    let unpriced = &backend(&results, "unpriced")["cost"];
    for key in [
        "pricing",
        "total_usd",
        "per_request_usd",
        "per_1k_requests_usd",
        "per_correct_usd",
        "daily_usd",
        "annual_usd",
        "instances_needed",
    ] {
        assert!(unpriced[key].is_null(), "unpriced `{key}` should be null: {unpriced}");
    }
    let notes: Vec<&str> =
        unpriced["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(notes.iter().any(|n| n.contains("pricing") && n.contains("my-llama")), "{notes:?}");

    // Fixed price: $450 a month, one instance (10,000/day ≪ 25 req/s × 86,400 s).
    let fixed = &backend(&results, "fixed")["cost"];
    assert_eq!(f(&fixed["annual_usd"]), 5400.0);
    assert_eq!(u(&fixed["instances_needed"]), 1);
    close_rel(f(&fixed["daily_usd"]), 5400.0 / 365.0, 1e-12, "fixed daily_usd");
    close_rel(
        f(&fixed["per_request_usd"]),
        5400.0 / 365.0 / 10000.0,
        1e-12,
        "fixed per_request_usd",
    );
    close_rel(
        f(&fixed["total_usd"]),
        N as f64 * 5400.0 / 365.0 / 10000.0,
        1e-12,
        "fixed total_usd",
    );

    // Break-even: 450 × 12 / 365 dollars a day over the per-token backend's cost per request.
    let be = results["break_even"].as_array().unwrap();
    assert_eq!(be.len(), 1, "{be:?}");
    assert_eq!(
        (be[0]["per_token"].as_str(), be[0]["fixed"].as_str()),
        (Some("priced"), Some("fixed"))
    );
    let volume = 450.0 * 12.0 / 365.0 / per_request;
    close_rel(f(&be[0]["requests_per_day"]), volume, 1e-6, "break_even.requests_per_day");
    // One instance serves 25 req/s (2.16 M a day), far above the crossing: no later step lets the
    // per-token backend win again, so the fixed one stays cheaper from the first crossing on.
    close_rel(
        f(&be[0]["sustained_requests_per_day"]),
        volume,
        1e-6,
        "break_even.sustained_requests_per_day",
    );
    let sentence = be[0]["sentence"].as_str().unwrap();
    assert!(
        sentence
            .contains(&format!("Above about {} requests a day", thousands(volume.ceil() as u64))),
        "{sentence}"
    );

    let svg = std::fs::read_to_string(run.join("chart.svg")).expect("chart.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    assert!(
        svg.contains("priced") && svg.contains("fixed") && !svg.contains(">unpriced<"),
        "one point per priced backend:\n{svg}"
    );
    // The chart is a pure function of the results: the same run draws the same bytes.
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("chart_svg", svg);
    });
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("## Cost"), "{md}");
    assert!(md.contains(sentence), "report.md lacks the break-even sentence `{sentence}`:\n{md}");
}

// ---------------------------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------------------------

/// Who is right on item i (None: the request fails with a 400, an error record).
/// a: i < 50 (70..75 answered with an invalid reply); b: i % 4 != 0; c: error when i % 10 == 9,
/// else right when i ≥ 10.
fn verdicts(model: &str, i: usize) -> Option<bool> {
    match model {
        "m-a" => Some(i < 50),
        "m-b" => Some(!i.is_multiple_of(4)),
        "m-c" => (i % 10 != 9).then_some(i >= 10),
        other => panic!("unknown model {other}"),
    }
}

fn three_backend_server() -> TestServer {
    TestServer::start_in_thread(|req: &RecordedRequest, _| {
        let i = item_number(req).expect("numbered item");
        let model = req.model().unwrap_or_default().to_string();
        match verdicts(&model, i) {
            None => Reply::openai_error(400, "rejected", "invalid_request_error", None),
            Some(true) => Reply::chat(gold(i)),
            Some(false) if model == "m-a" && (70..75).contains(&i) => Reply::chat("no idea"),
            Some(false) => Reply::chat(other(gold(i))),
        }
    })
}

fn three_backend_suite(ws: &Workspace, base: &str, extra: &str) -> std::path::PathBuf {
    let suite = format!(
        "{RUN_HEAD}backends:\n{}{}{}{extra}",
        openai_backend("a", "m-a", base, ""),
        openai_backend("b", "m-b", base, ""),
        openai_backend("c", "m-c", base, ""),
    );
    ws.write("suite.yaml", &suite)
}

/// (first, second, a, b, c, d, p, Holm p) of one expected comparison.
type ComparisonRow = (&'static str, &'static str, u64, u64, u64, u64, f64, f64);

/// (first, second, both_correct, only_first, only_second, both_wrong, p, Holm p), by construction
/// from `verdicts` over the 80 items (72 for pairs with c, which fails on 8). p:
/// `statsmodels.stats.contingency_tables.mcnemar([[A, B], [C, D]], exact=True).pvalue`; Holm:
/// `statsmodels.stats.multitest.multipletests([p_ab, p_ac, p_bc], method='holm')[1]`.
const COMPARISONS: &[ComparisonRow] = &[
    ("a", "b", 37, 13, 23, 7, 0.13249816396273675, 0.13249816396273675),
    ("a", "c", 36, 9, 27, 0, 0.00393317302223295, 0.01179951906669885),
    ("b", "c", 46, 6, 17, 3, 0.03468966484069824, 0.06937932968139648),
];

#[test]
fn comparisons_are_recomputed_from_the_journal() {
    const N: usize = 80;
    let server = three_backend_server();
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&numbered_rows(N)));
    let suite = three_backend_suite(&ws, &server.base_url(), "");
    let run = ws.run_dir("run");
    run_ok(&ws, &suite, &run);
    let results = results(&run);

    // Rebuild each table from the journal: correct (true/false) per item, errors excluded.
    let correct: HashMap<&str, HashMap<String, bool>> = ["a", "b", "c"]
        .iter()
        .map(|&b| {
            let by_id = records_of(&run, b)
                .into_iter()
                .filter_map(|(id, r)| r["correct"].as_bool().map(|c| (id, c)))
                .collect();
            (b, by_id)
        })
        .collect();
    assert_eq!(correct["c"].len(), 72, "c fails on the 8 items with i % 10 == 9");
    let comparisons = results["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 3);
    for (c, &(first, second, a, b, cc, d, p, holm)) in comparisons.iter().zip(COMPARISONS) {
        assert_eq!(
            (c["first"].as_str(), c["second"].as_str()),
            (Some(first), Some(second)),
            "pairs in run order"
        );
        let mut table = [0u64; 4];
        for (id, &x) in &correct[first] {
            if let Some(&y) = correct[second].get(id) {
                table[match (x, y) {
                    (true, true) => 0,
                    (true, false) => 1,
                    (false, true) => 2,
                    (false, false) => 3,
                }] += 1;
            }
        }
        assert_eq!(
            table,
            [a, b, cc, d],
            "{first} vs {second}: the journal's table is the constructed one"
        );
        let got =
            [u(&c["both_correct"]), u(&c["only_first"]), u(&c["only_second"]), u(&c["both_wrong"])];
        assert_eq!(got, table, "{first} vs {second}: results.json table");
        let n = table.iter().sum::<u64>() as f64;
        close(
            f(&c["difference"]["estimate"]),
            (cc as f64 - b as f64) / n,
            1e-12,
            "difference.estimate",
        );
        let (lo, hi) = (f(&c["difference"]["low"]), f(&c["difference"]["high"]));
        assert!(
            -1.0 <= lo
                && lo <= f(&c["difference"]["estimate"])
                && f(&c["difference"]["estimate"]) <= hi
                && hi <= 1.0,
            "{c}"
        );
        close(f(&c["p_value"]), p, 1e-9, &format!("{first} vs {second}: p_value"));
        close(f(&c["p_value_holm"]), holm, 1e-9, &format!("{first} vs {second}: p_value_holm"));
        // Three pairs: each interval at the Bonferroni level, and the verdict read from it.
        close(f(&c["difference"]["confidence"]), 1.0 - 0.05 / 3.0, 1e-12, "family confidence");
        let verdict = c["verdict"].as_str().unwrap();
        assert!(verdict.contains("98.3% CI") && verdict.contains("Bonferroni"), "{verdict}");
        assert_eq!(verdict.contains("beats"), lo > 0.0 || hi < 0.0, "{c}");
        let settled = c["decision"] != "inconclusive";
        assert_eq!(c["items_to_settle"].is_null(), settled, "{c}");
    }
    for id in ["a", "b", "c"] {
        let b = backend(&results, id);
        let m = &b["macro_f1"];
        let (lo, est, hi) = (f(&m["low"]), f(&m["estimate"]), f(&m["high"]));
        assert!(lo <= est && est <= hi, "{id}: macro_f1 {m}");
    }
    assert_eq!(u(&backend(&results, "a")["invalid"]), 5);
    assert_eq!(u(&backend(&results, "c")["errors"]), 8);

    // The bootstrap is seeded: a rebuilt report is byte-identical.
    let before = std::fs::read(run.join("results.json")).unwrap();
    let out = output(evalgate(ws.path()).arg("report").arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read(run.join("results.json")).unwrap(),
        before,
        "results.json rebuilt byte for byte"
    );
}

#[test]
fn compare_restricts_and_validates_pairs() {
    const N: usize = 20;
    let server = three_backend_server();
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&numbered_rows(N)));
    let suite = three_backend_suite(&ws, &server.base_url(), "compare: [[c, a]]\n");
    let run = ws.run_dir("run");
    run_ok(&ws, &suite, &run);
    let comparisons = results(&run)["comparisons"].as_array().unwrap().clone();
    assert_eq!(comparisons.len(), 1, "{comparisons:?}");
    assert_eq!(
        (comparisons[0]["first"].as_str(), comparisons[0]["second"].as_str()),
        (Some("c"), Some("a"))
    );
    // One comparison: Holm changes nothing.
    assert_eq!(f(&comparisons[0]["p_value_holm"]), f(&comparisons[0]["p_value"]));

    let requests = server.request_count();
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("compare: [[c, a]]", "compare: [[a, nope]]");
    let bad = ws.write("bad.yaml", &text);
    let line = line_of(&text, "compare:");
    for command in ["validate", "run"] {
        let mut cmd = evalgate(ws.path());
        cmd.arg(command).arg(&bad);
        if command == "run" {
            cmd.arg("--out").arg(ws.run_dir("bad-run"));
        }
        let out = output(&mut cmd);
        assert_eq!(out.code, Some(2), "{command}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("bad.yaml:{line}")),
            "{command}: names the line {line}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("nope"), "{command}: {}", out.stderr);
    }
    assert_eq!(server.request_count(), requests, "an invalid suite sends nothing");
}

// ---------------------------------------------------------------------------------------------
// Clustered accuracy
// ---------------------------------------------------------------------------------------------

#[test]
fn a_group_column_gives_clustered_accuracy() {
    const N: usize = 30;
    // Right when (7·i mod 11) < 7: 19 of 30. Groups g0..g6 by i mod 7 (sizes 5, 5, 4, 4, 4, 4, 4).
    let right = |i: usize| (i * 7 % 11) < 7;
    let server = TestServer::start_in_thread(move |req: &RecordedRequest, _| {
        let i = item_number(req).expect("numbered item");
        Reply::chat(if right(i) { gold(i) } else { other(gold(i)) })
    });
    let ws = Workspace::new();
    let rows: Vec<Vec<String>> = (0..N)
        .map(|i| {
            vec![format!("it-{i}"), format!("item {i}"), gold(i).to_string(), format!("g{}", i % 7)]
        })
        .collect();
    ws.write("test.csv", &csv(&["id", "text", "label", "group"], &rows));
    let suite = ws.write(
        "suite.yaml",
        &format!("{RUN_HEAD}backends:\n{}", openai_backend("m", "m-1", &server.base_url(), "")),
    );
    let run = ws.run_dir("run");
    run_ok(&ws, &suite, &run);
    let results = results(&run);
    let clustered = &backend(&results, "m")["accuracy_clustered"];
    assert_eq!(u(&clustered["clusters"]), 7);

    // Miller (2024), "Adding Error Bars to Evals", arXiv:2411.00640, clustered SE of a mean:
    // SE² = (1/n)·(1/(n−1))·Σ_i d_i² + (1/n²)·Σ_c Σ_{i≠j ∈ c} d_i d_j, with d_i = s_i − s̄.
    let s: Vec<f64> = (0..N).map(|i| if right(i) { 1.0 } else { 0.0 }).collect();
    let n = N as f64;
    let mean = s.iter().sum::<f64>() / n;
    let d: Vec<f64> = s.iter().map(|x| x - mean).collect();
    let clt = d.iter().map(|x| x * x).sum::<f64>() / (n - 1.0) / n;
    let mut cross = 0.0;
    for i in 0..N {
        for j in 0..N {
            if i != j && i % 7 == j % 7 {
                cross += d[i] * d[j];
            }
        }
    }
    let se = (clt + cross / (n * n)).sqrt();
    // Cross-check in Python: statsmodels OLS(y, ones).fit(cov_type='cluster',
    // cov_kwds={'groups': i % 7, 'use_correction': False}).bse[0] = 0.04727121641373921 (CR0, the
    // (1/n²) Σ_c (Σ_{i∈c} d_i)² form); Miller's SE adds Σ d_i² / (n²(n−1)): 0.05001489773800271.
    close(se, 0.05001489773800271, 1e-12, "Miller SE in the test");
    close(f(&clustered["estimate"]), 19.0 / 30.0, 1e-12, "clustered estimate");
    close(f(&clustered["standard_error"]), se, 1e-12, "clustered standard error");
    close(f(&clustered["low"]), (mean - Z95 * se).max(0.0), 1e-9, "clustered low");
    close(f(&clustered["high"]), (mean + Z95 * se).min(1.0), 1e-9, "clustered high");

    // Without a group column there is no clustered accuracy.
    let plain = numbered_rows(N);
    let ws2 = Workspace::new();
    ws2.write("test.csv", &rows_csv(&plain));
    let suite2 = ws2.write(
        "suite.yaml",
        &format!("{RUN_HEAD}backends:\n{}", openai_backend("m", "m-1", &server.base_url(), "")),
    );
    let run2 = ws2.run_dir("run");
    run_ok(&ws2, &suite2, &run2);
    assert!(backend(&crate::support::results(&run2), "m")["accuracy_clustered"].is_null());
}

// ---------------------------------------------------------------------------------------------
// Decisions with a margin: the recommendation promises savings only within the margin
// ---------------------------------------------------------------------------------------------

/// Runs `best` (expensive) and `cheap` (cheap) over `n` numbered items, each right where the
/// predicate says, plus an unpriced `free` backend; returns results.json.
fn best_and_cheap(n: usize, best: fn(usize) -> bool, cheap: fn(usize) -> bool) -> Value {
    let server = TestServer::start_in_thread(move |req: &RecordedRequest, _| {
        let i = item_number(req).expect("numbered item");
        let right = match req.model() {
            Some("m-best") => best(i),
            Some("m-cheap") => cheap(i),
            _ => !i.is_multiple_of(3),
        };
        Reply::chat(if right { gold(i) } else { other(gold(i)) })
    });
    let base = server.base_url();
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&numbered_rows(n)));
    let suite = format!(
        "{RUN_HEAD}backends:\n{}{}{}volume: {{ requests_per_day: 10000 }}\n",
        openai_backend(
            "best",
            "m-best",
            &base,
            "    concurrency: 8\n    pricing: { input_per_mtok: 10, output_per_mtok: 30 }\n"
        ),
        openai_backend(
            "cheap",
            "m-cheap",
            &base,
            "    concurrency: 8\n    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 }\n"
        ),
        openai_backend("free", "my-llama", &base, "    concurrency: 8\n"),
    );
    let suite = ws.write("suite.yaml", &suite);
    let run = ws.run_dir("run");
    run_ok(&ws, &suite, &run);
    results(&run)
}

fn comparison_of<'a>(results: &'a Value, first: &str, second: &str) -> &'a Value {
    results["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["first"] == first && c["second"] == second)
        .unwrap_or_else(|| panic!("no comparison {first} vs {second}"))
}

#[test]
fn a_clearly_worse_cheaper_backend_is_not_recommended() {
    // 55 items: best wrong on 4 (92.7%), cheap wrong on those and 8 more (78.2%).
    let results = best_and_cheap(55, |i| i % 14 != 0, |i| i % 14 != 0 && i % 7 != 1);
    let c = comparison_of(&results, "best", "cheap");
    assert_eq!(c["decision"], "worse", "{c}");
    assert_eq!(c["margin"], 0.02);
    assert!(c["items_to_settle"].is_null(), "{c}");
    // Three pairs: each interval at 1 − 0.05/3.
    close(f(&c["difference"]["confidence"]), 1.0 - 0.05 / 3.0, 1e-12, "family confidence");
    let text = results["recommendation"].as_str().unwrap();
    eprintln!("{text}\n{}", c["verdict"]);
    assert!(text.starts_with("`best` is the most accurate backend (92.7%)."), "{text}");
    assert!(!text.contains("save"), "no savings for a worse backend: {text}");
    assert!(!text.contains("as good") && !text.contains("not detectably worse"), "{text}");
    assert!(
        text.contains("`cheap` costs less") && text.contains("but is worse than `best`"),
        "{text}"
    );
    assert!(text.contains("no savings are claimed for it"), "{text}");
    assert!(
        text.contains("No price is known for `free`, so it is left out of cost conclusions"),
        "{text}"
    );
}

#[test]
fn an_equivalent_cheaper_backend_is_recommended_with_savings() {
    // 1,000 items: best right unless i % 10 == 0 (90%); cheap the same, but wrong on 10 more
    // items and right on 5 of best's misses (89.5%): 15 discordant items.
    let results =
        best_and_cheap(1000, |i| i % 10 != 0, |i| (i % 10 != 0 && i % 100 != 5) || i % 200 == 50);
    let c = comparison_of(&results, "best", "cheap");
    assert_eq!(c["decision"], "equivalent", "{c}");
    assert!(c["items_to_settle"].is_null(), "{c}");
    let text = results["recommendation"].as_str().unwrap();
    eprintln!("{text}\n{}", c["verdict"]);
    assert!(
        text.contains("`cheap` (89.5%) is shown not worse than `best` by more than the 2-point margin (-0.5 points, 98.3% CI"),
        "{text}"
    );
    assert!(text.contains("it would save about $"), "{text}");
    assert!(!text.contains("underpowered"), "every pair is settled: {text}");
    assert!(
        text.contains("No price is known for `free`, so it is left out of cost conclusions"),
        "{text}"
    );
    // `free` is worse than both by far: its verdicts say so, from the same interval.
    for c in results["comparisons"].as_array().unwrap() {
        let (lo, hi) = (f(&c["difference"]["low"]), f(&c["difference"]["high"]));
        let verdict = c["verdict"].as_str().unwrap();
        assert_eq!(verdict.contains("beats"), lo > 0.0 || hi < 0.0, "{c}");
        assert!(verdict.contains("98.3% CI"), "{verdict}");
    }
}

/// The suite's margin reaches every comparison through run.json, and a run.json written before
/// the margin existed still rebuilds its report, with the default margin.
#[test]
fn the_margin_is_kept_in_run_json_with_a_default_for_old_runs() {
    let server = three_backend_server();
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&numbered_rows(40)));
    let suite = three_backend_suite(&ws, &server.base_url(), "decision: { margin: 0.05 }\n");
    let run = ws.run_dir("run");
    run_ok(&ws, &suite, &run);
    let margins = |results: &Value| -> Vec<f64> {
        results["comparisons"].as_array().unwrap().iter().map(|c| f(&c["margin"])).collect()
    };
    assert_eq!(margins(&results(&run)), vec![0.05; 3]);
    let meta_path = run.join("run.json");
    let mut meta = read_json(&meta_path);
    assert_eq!(meta["margin"], 0.05);
    meta.as_object_mut().unwrap().remove("margin");
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    let out = output(evalgate(ws.path()).arg("report").arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(margins(&results(&run)), vec![0.02; 3]);
}
