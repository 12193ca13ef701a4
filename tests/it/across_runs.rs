//! `evalgate compare` and `evalgate history`: runs of one suite against the test server, with a
//! backend that flips known items between runs; every figure against hand counts and each run's
//! results.json.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::support::openai_server::{Reply, TestServer};
use crate::support::*;

const ITEMS: usize = 30;

/// Item `i` (1-based): odd items are billing, even ones technical.
fn gold(i: usize) -> &'static str {
    if i % 2 == 1 {
        "billing"
    } else {
        "technical"
    }
}

fn item_rows(prefix: &str) -> Vec<Row> {
    (1..=ITEMS)
        .map(|i| row(&format!("{prefix}-{i:02}"), &format!("ticket {prefix} {i}"), gold(i)))
        .collect()
}

const SUITE: &str = r#"schema_version: 1
name: @NAME@
task:
  kind: classification
  labels: [billing, technical]
  instructions: "Answer with {{ labels | join(' or ') }}."
  input: "{{ text }}"
data:
  test: test.csv
backends:
  - id: bot
    provider: openai
    base_url: @BASE@
    model: m-bot
    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }
  - id: steady
    provider: openai
    base_url: @BASE@
    model: gpt-4o-mini
"#;

/// The reply to item `i` of a backend that gets the items in `wrong` wrong. Item 10's wrong
/// reply is markdown- and HTML-hostile, and names no label (invalid, so wrong).
fn reply(i: usize, wrong: &HashSet<usize>) -> String {
    if !wrong.contains(&i) {
        gold(i).to_string()
    } else if i == 10 {
        "it's | <b>technical</b>\nreally".to_string()
    } else if gold(i) == "billing" {
        "technical".to_string()
    } else {
        "billing".to_string()
    }
}

/// One server for every run (so the suite files, which hold its address, are the same), with
/// the items `bot` gets wrong set before each run.
struct Scripted {
    server: TestServer,
    bot_wrong: Arc<Mutex<HashSet<usize>>>,
}

fn scripted() -> Scripted {
    let bot_wrong = Arc::new(Mutex::new(HashSet::new()));
    let wrong = bot_wrong.clone();
    let server = TestServer::start_in_thread(move |req, _| {
        let text = req.last_user_text().unwrap_or_default();
        let i: usize = text.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        match req.model() {
            Some("m-bot") => Reply::chat(reply(i, &wrong.lock().unwrap())),
            _ => Reply::chat(reply(i, &HashSet::from([30]))),
        }
    });
    Scripted { server, bot_wrong }
}

/// What one run is: a run of suite `suite` (its file edited when `edited`) over items
/// `prefix-01…30`, in which `bot` is wrong on `bot_wrong` and `steady` only on item 30. The run's
/// started_at is set to `started_at`, so the history's order and chart do not depend on the clock.
#[derive(Clone, Copy)]
struct RunSpec<'a> {
    suite: &'a str,
    edited: bool,
    prefix: &'a str,
    bot_wrong: &'a [usize],
    started_at: &'a str,
}

impl<'a> RunSpec<'a> {
    fn drift(bot_wrong: &'a [usize], started_at: &'a str) -> Self {
        RunSpec { suite: "drift", edited: false, prefix: "t", bot_wrong, started_at }
    }
}

fn make_run(ws: &Workspace, s: &Scripted, spec: RunSpec, run: &Path) {
    let RunSpec { suite: name, edited, prefix, bot_wrong, started_at } = spec;
    *s.bot_wrong.lock().unwrap() = bot_wrong.iter().copied().collect();
    let server = &s.server;
    let folder = format!("suite-{name}-{prefix}-{edited}");
    let text = SUITE.replace("@NAME@", name).replace("@BASE@", &server.base_url());
    let text = if edited { text.replace("task:", "description: edited\ntask:") } else { text };
    ws.write(&format!("{folder}/test.csv"), &rows_csv(&item_rows(prefix)));
    let suite = ws.write(&format!("{folder}/suite.yaml"), &text);
    let out = output(
        evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(run).args(["--no-cache", "-q"]),
    );
    assert_eq!(out.code, Some(0), "run failed: {}", out.stderr);
    let meta_path = run.join("run.json");
    let mut meta = read_json(&meta_path);
    meta["started_at"] = Value::from(started_at);
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
}

/// Three runs of suite `drift` under `runs/`, in folders whose names sort against their order:
/// A (wrong on 1, 2, 3), B (wrong on 3 and 10–14: 5 right → wrong, 2 wrong → right) and C
/// (wrong on 3 to 15: 12 right → wrong, 2 wrong → right).
struct Runs {
    ws: Workspace,
    scripted: Scripted,
    a: PathBuf,
    b: PathBuf,
    c: PathBuf,
}

fn three_runs() -> Runs {
    let ws = Workspace::new();
    let s = scripted();
    let (a, b, c) =
        (ws.run_dir("runs/z-first"), ws.run_dir("runs/a-second"), ws.run_dir("runs/m-third"));
    make_run(&ws, &s, RunSpec::drift(&[1, 2, 3], "2026-01-05T09:00:00Z"), &a);
    make_run(&ws, &s, RunSpec::drift(&[3, 10, 11, 12, 13, 14], "2026-04-06T09:00:00Z"), &b);
    let c_wrong: Vec<usize> = (3..=15).collect();
    make_run(&ws, &s, RunSpec::drift(&c_wrong, "2026-07-06T09:00:00Z"), &c);
    Runs { ws, scripted: s, a, b, c }
}

fn compare(ws: &Workspace, a: &Path, b: &Path, extra: &[&str]) -> Outcome {
    output(evalgate(ws.path()).arg("compare").arg(a).arg(b).args(extra))
}

fn compare_json(ws: &Workspace, a: &Path, b: &Path, extra: &[&str]) -> Value {
    let out = compare(ws, a, b, &[&["--json"], extra].concat());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", out.stdout))
}

fn entry<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["backends"].as_array().unwrap().iter().find(|b| b["a"] == id).expect("backend in compare")
}

fn ids(flips: &Value) -> Vec<&str> {
    flips["items"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect()
}

#[test]
fn compare_figures_equal_hand_counts_and_each_results_json() {
    let runs = three_runs();
    let ws = &runs.ws;
    let (ra, rb) = (results(&runs.a), results(&runs.b));

    // A against B: hand counts 22 / 5 / 2 / 1 for `bot`.
    let v = compare_json(ws, &runs.a, &runs.b, &[]);
    assert_eq!(v["schema_version"], 1);
    assert_eq!((v["suite"].as_str(), v["suite_changed"].as_bool()), (Some("drift"), Some(false)));
    assert_eq!(u(&v["shared_items"]), 30);
    let bot = entry(&v, "bot");
    assert_eq!(bot["b"], "bot");
    assert_eq!(u(&bot["items_compared"]), 30);
    let c = &bot["counts"];
    assert_eq!(
        (u(&c["both_correct"]), u(&c["only_a"]), u(&c["only_b"]), u(&c["both_wrong"])),
        (22, 5, 2, 1)
    );
    assert_close(f(&bot["accuracy_a"]), 27.0 / 30.0, "accuracy A");
    assert_close(f(&bot["accuracy_b"]), 24.0 / 30.0, "accuracy B");
    assert_close(f(&bot["difference"]["estimate"]), -3.0 / 30.0, "B − A");
    // McNemar exact, two-sided: 2 · P(X ≤ 2 | 7, ½) = 2 · (1 + 7 + 21) / 128.
    assert_close(f(&bot["p_value"]), 58.0 / 128.0, "McNemar p");
    assert_eq!(bot["difference"]["method"], "newcombe-hybrid-score");
    assert!(f(&bot["difference"]["low"]) < 0.0 && f(&bot["difference"]["high"]) > 0.0, "{bot}");
    assert_eq!(
        (bot["regression"].as_bool(), bot["improvement"].as_bool()),
        (Some(false), Some(false))
    );
    // The interval is the calculator's for the same table.
    let stats = output(evalgate(ws.path()).args([
        "stats",
        "paired",
        "--both-correct",
        "22",
        "--only-first",
        "5",
        "--only-second",
        "2",
        "--both-wrong",
        "1",
        "--json",
    ]));
    let stats: Value = serde_json::from_str(&stats.stdout).unwrap();
    for key in ["estimate", "low", "high"] {
        assert_close(f(&bot["difference"][key]), f(&stats["difference"][key]), key);
    }
    // Whole-run accuracy and cost per correct answer are each run's results.json.
    let (ba, bb) = (backend(&ra, "bot"), backend(&rb, "bot"));
    assert_close(f(&bot["run_accuracy_a"]), f(&ba["accuracy"]["estimate"]), "results A");
    assert_close(f(&bot["run_accuracy_b"]), f(&bb["accuracy"]["estimate"]), "results B");
    let (ca, cb) = (
        f(&ba["cost"]["per_correct_usd"]["estimate"]),
        f(&bb["cost"]["per_correct_usd"]["estimate"]),
    );
    assert_close(f(&bot["per_correct_usd_a"]["estimate"]), ca, "cost per correct A");
    assert_close(f(&bot["per_correct_usd_b"]["estimate"]), cb, "cost per correct B");
    assert_close(f(&bot["per_correct_change_usd"]), cb - ca, "cost change");
    // Recall per class over the 30 items: billing 13/15 → 12/15, technical 14/15 → 12/15.
    let classes = bot["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 2);
    for (class, (label, ra_, rb_)) in
        classes.iter().zip([("billing", 13.0, 12.0), ("technical", 14.0, 12.0)])
    {
        assert_eq!(class["label"], label);
        assert_eq!((u(&class["support_a"]), u(&class["support_b"])), (15, 15));
        assert_close(f(&class["recall_a"]), ra_ / 15.0, label);
        assert_close(f(&class["recall_b"]), rb_ / 15.0, label);
    }
    // The flips, with both replies from the journals.
    assert_eq!(u(&bot["right_to_wrong"]["count"]), 5);
    assert_eq!(ids(&bot["right_to_wrong"]), ["t-10", "t-11", "t-12", "t-13", "t-14"]);
    assert_eq!(ids(&bot["wrong_to_right"]), ["t-01", "t-02"]);
    let t10 = &bot["right_to_wrong"]["items"][0];
    assert_eq!(t10["reply_a"], "technical");
    assert_eq!(t10["reply_b"], "it's | <b>technical</b>\nreally");
    assert!(t10["answer_b"].is_null(), "invalid reply: {t10}");
    assert_eq!(bot["wrong_to_right"]["items"][0]["reply_a"], "technical");
    // `steady` did not change.
    let steady = entry(&v, "steady");
    assert_eq!(u(&steady["counts"]["both_wrong"]), 1);
    assert_eq!(u(&steady["counts"]["both_correct"]), 29);
    assert_eq!(u(&steady["right_to_wrong"]["count"]) + u(&steady["wrong_to_right"]["count"]), 0);
    let as_of = &backend(&ra, "steady")["cost"]["price_as_of"];
    assert!(as_of.is_string(), "built-in prices are dated");
    assert_eq!((&steady["price_as_of_a"], &steady["price_as_of_b"]), (as_of, as_of));
    assert_eq!(v["regression"], false);

    // Markdown: escaped model text and counted flips.
    let out = compare(ws, &runs.a, &runs.b, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let md = out.stdout;
    assert!(md.contains("Right in A, wrong in B (5 of 5 shown)"), "{md}");
    assert!(md.contains("Wrong in A, right in B (2 of 2 shown)"), "{md}");
    assert!(md.contains("it's \\| &lt;b&gt;technical&lt;/b&gt; ↵ really"), "{md}");
    assert!(!md.contains("<b>"), "model text must not reach markdown as HTML:\n{md}");
    assert!(md.contains("| billing | 15 | 86.7% | 15 | 80.0% | -6.7 |"), "{md}");
    let md = md.replace(&ws.path().display().to_string(), "[WS]");
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("compare_md", md);
    });
}

#[test]
fn fail_on_regression_exits_1_only_when_a_backend_is_significantly_worse() {
    let runs = three_runs();
    let ws = &runs.ws;

    // --fail-on-regression: B is not significantly worse (exit 0); C is (exit 1).
    let out = compare(ws, &runs.a, &runs.b, &["--fail-on-regression"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = compare(ws, &runs.a, &runs.c, &["--fail-on-regression"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("`bot`"), "{}", out.stderr);
    let out = compare(ws, &runs.a, &runs.c, &[]);
    assert_eq!(out.code, Some(0), "without the flag a regression is reported, not failed");
    let vc = compare_json(ws, &runs.a, &runs.c, &[]);
    let bot_c = entry(&vc, "bot");
    assert_eq!(u(&bot_c["counts"]["only_a"]), 12);
    // 2 · P(X ≤ 2 | 14, ½) = 2 · (1 + 14 + 91) / 16384.
    assert_close(f(&bot_c["p_value"]), 212.0 / 16384.0, "McNemar p, A against C");
    assert!(f(&bot_c["difference"]["high"]) < 0.0 && bot_c["regression"] == true, "{bot_c}");
    assert_eq!(vc["regression"], true);
}

#[test]
fn pair_names_the_partners_and_out_writes_a_file() {
    let runs = three_runs();
    let ws = &runs.ws;

    // --pair names the partners; --out writes the file and prints its path.
    let file = ws.path().join("diff.md");
    let out =
        compare(ws, &runs.a, &runs.b, &["--pair", "bot=steady", "--out", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), file.display().to_string());
    assert!(std::fs::read_to_string(&file).unwrap().contains("`bot` → `steady`"));
    let paired = compare_json(ws, &runs.a, &runs.b, &["--pair", "bot=steady"]);
    assert_eq!(paired["backends"].as_array().unwrap().len(), 1);
    assert_eq!(
        u(&entry(&paired, "bot")["counts"]["only_a"]),
        1,
        "bot wrong on 3 of A; steady on 30"
    );
    let out = compare(ws, &runs.a, &runs.b, &["--pair", "bot=nobody"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("nobody") && out.stderr.contains("a-second"), "{}", out.stderr);
}

#[test]
fn history_is_oldest_first_with_each_results_json_figures_and_a_deterministic_chart() {
    let runs = three_runs();
    let ws = &runs.ws;

    // History: oldest first by started_at, not by folder name; figures are results.json's.
    let chart = ws.path().join("trend.svg");
    let out = output(
        evalgate(ws.path()).arg("history").arg(ws.path().join("runs")).arg("--chart").arg(&chart),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let md = out.stdout;
    let positions: Vec<usize> = ["z-first", "a-second", "m-third"]
        .iter()
        .map(|name| md.find(name).unwrap_or_else(|| panic!("{name} missing:\n{md}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "oldest first:\n{md}");
    for (n, (run, date)) in
        [(&runs.a, "2026-01-05"), (&runs.b, "2026-04-06"), (&runs.c, "2026-07-06")]
            .iter()
            .enumerate()
    {
        let r = results(run);
        for id in ["bot", "steady"] {
            let b = backend(&r, id);
            let a = &b["accuracy"];
            let row = format!(
                "| {} | {date} | {:.1}% ({:.1}–{:.1}) | 30 |",
                n + 1,
                f(&a["estimate"]) * 100.0,
                f(&a["low"]) * 100.0,
                f(&a["high"]) * 100.0
            );
            assert!(md.contains(&row), "{row} missing:\n{md}");
            // `bot` has the suite's price; `steady` the built-in one, with its date.
            let price = match b["cost"]["price_as_of"].as_str() {
                Some(as_of) => format!("| {as_of} | gpt-4o-mini |"),
                None => "| (suite) | m-bot |".to_string(),
            };
            assert!(md.contains(&price), "{price} missing:\n{md}");
        }
    }
    assert!(md.contains("| (suite) | m-bot |") && md.contains("| gpt-4o-mini |"), "{md}");
    // The same figures through the library, to full precision.
    let history = evalgate::score::history::history(&ws.path().join("runs"), None).unwrap();
    let trend = evalgate::report::history::trend(&history);
    assert_eq!(trend.backends, ["bot", "steady"]);
    assert_eq!(trend.runs.len(), 3);
    for (run, dir) in trend.runs.iter().zip([&runs.a, &runs.b, &runs.c]) {
        assert_eq!(Path::new(&run.dir), dir.as_path());
        let r = results(dir);
        for b in &run.backends {
            let expected = backend(&r, &b.id);
            for key in ["estimate", "low", "high"] {
                let what = format!("{} {} accuracy {key}", dir.display(), b.id);
                let actual = match key {
                    "estimate" => b.accuracy.estimate,
                    "low" => b.accuracy.low,
                    _ => b.accuracy.high,
                };
                assert_close(actual, f(&expected["accuracy"][key]), &what);
            }
            let cost = b.cost.per_correct_usd.expect("priced").estimate;
            assert_close(cost, f(&expected["cost"]["per_correct_usd"]["estimate"]), "per correct");
        }
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert_eq!(evalgate::report::history::chart(&trend).as_deref(), Some(svg.as_str()));
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("history_chart_svg", svg);
    });
}

#[test]
fn compare_refuses_other_suites_and_runs_without_shared_items_but_notes_an_edited_suite() {
    let runs = three_runs();
    let ws = &runs.ws;

    // Runs of another suite and runs sharing no item are refused, naming both run dirs.
    let other = ws.run_dir("other/run");
    let spec = RunSpec { suite: "other", ..RunSpec::drift(&[], "2026-02-01T09:00:00Z") };
    make_run(ws, &runs.scripted, spec, &other);
    let out = compare(ws, &runs.a, &other, &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("different suites")
            && out.stderr.contains(&runs.a.display().to_string())
            && out.stderr.contains(&other.display().to_string()),
        "{}",
        out.stderr
    );
    let disjoint = ws.run_dir("disjoint/run");
    let spec = RunSpec { prefix: "x", ..RunSpec::drift(&[], "2026-03-01T09:00:00Z") };
    make_run(ws, &runs.scripted, spec, &disjoint);
    let out = compare(ws, &runs.a, &disjoint, &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("share no item")
            && out.stderr.contains(&runs.a.display().to_string())
            && out.stderr.contains(&disjoint.display().to_string()),
        "{}",
        out.stderr
    );

    // The same suite name with an edited suite file is compared, and noted.
    let edited = ws.run_dir("edited/run");
    let spec = RunSpec { edited: true, ..RunSpec::drift(&[1, 2, 3], "2026-03-02T09:00:00Z") };
    make_run(ws, &runs.scripted, spec, &edited);
    let v = compare_json(ws, &runs.a, &edited, &[]);
    assert_eq!(v["suite_changed"], true);
    assert_ne!(v["run_a"]["suite_sha256"], v["run_b"]["suite_sha256"]);
    assert_eq!(u(&entry(&v, "bot")["counts"]["both_correct"]), 27);
    let out = compare(ws, &runs.a, &edited, &[]);
    assert!(out.stdout.contains("**Suite changed**"), "{}", out.stdout);
}

#[test]
fn history_of_a_folder_with_several_suites_needs_suite() {
    let runs = three_runs();
    let ws = &runs.ws;

    // History over a folder holding two suites needs --suite.
    let other = ws.run_dir("other/run");
    let spec = RunSpec { suite: "other", ..RunSpec::drift(&[], "2026-02-01T09:00:00Z") };
    make_run(ws, &runs.scripted, spec, &other);
    let out = output(evalgate(ws.path()).arg("history").arg(ws.path()));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("`drift` (3 runs)") && out.stderr.contains("`other` (1 run)"),
        "{}",
        out.stderr
    );
    let out = output(evalgate(ws.path()).arg("history").arg(ws.path()).args(["--suite", "other"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("# other: 1 run, oldest first"), "{}", out.stdout);
}
