//! `provider: replay`: a live run against the in-process test server, then replays of its
//! journal and of a predictions CSV "from another tool", scored with the same figures; a stale
//! recording (the suite's instructions edited) and missing items refused before the run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::openai_server::{Reply, TestServer};
use crate::support::*;

fn train() -> Vec<Row> {
    vec![
        row("tr-1", "I was charged twice", "billing"),
        row("tr-2", "Please send the invoice", "billing"),
        row("tr-3", "The app crashes on start", "technical"),
        row("tr-4", "Sync fails with error 503", "technical"),
        row("tr-5", "I cannot log in", "account"),
        row("tr-6", "How do I reset my password?", "account"),
    ]
}

/// Twelve items; the server answers some wrongly, one with a reply that is no label, and (for
/// model `m-err`) one with a 400.
fn test() -> Vec<Row> {
    let labels = ["billing", "technical", "account"];
    (1..=12)
        .map(|i| row(&format!("te-{i:02}"), &format!("ticket number {i}"), labels[i % 3]))
        .collect()
}

fn reply_for(item: usize, gold: &str) -> String {
    match item {
        2 | 7 => "billing".to_string(),
        4 => "I am not sure, sorry".to_string(),
        9 => "Technical.".to_string(),
        _ => gold.to_string(),
    }
}

const SUITE: &str = r#"schema_version: 1
name: replay-it
task:
  kind: classification
  labels: [billing, technical, account]
  instructions: "Classify the ticket into one of: {{ labels | join(', ') }}. Answer with the label only."
  input: "Ticket: {{ text }}"
data:
  test: test.csv
  train: train.csv
backends:
BACKENDS"#;

fn live_backends(url: &str) -> String {
    format!(
        "  - id: live\n    provider: openai\n    base_url: {url}\n    model: m\n    strategy: {{ few-shot: {{ k: 3, select: stratified, seed: 1 }} }}\n  - id: live-err\n    provider: openai\n    base_url: {url}\n    model: m-err\n    max_attempts: 1\n"
    )
}

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("train.csv", &rows_csv(&train()));
    ws.write("test.csv", &rows_csv(&test()));
    ws
}

async fn live_run(ws: &Workspace) -> PathBuf {
    let gold: Arc<Vec<Row>> = Arc::new(test());
    let server = TestServer::start(move |req, _| {
        let text = req.last_user_text().unwrap_or_default();
        let Some(i) = gold.iter().position(|r| format!("Ticket: {}", r.text) == text) else {
            return Reply::openai_error(400, "unknown item", "invalid_request_error", None);
        };
        if i + 1 == 5 && req.model() == Some("m-err") {
            return Reply::openai_error(400, "content filtered", "invalid_request_error", None);
        }
        let reply = Reply::chat(reply_for(i + 1, &gold[i].label));
        Reply::Delay(Duration::from_millis(3 * (i as u64 % 4)), Box::new(reply))
    })
    .await;
    let suite =
        ws.write("live.yaml", &SUITE.replace("BACKENDS", &live_backends(&server.base_url())));
    run_library(&suite, &ws.run_dir("live")).await
}

/// Asserts that two backends' figures are equal, naming the keys that differ.
fn assert_same(replayed: Value, live: Value) {
    let (a, b) = (replayed.as_object().unwrap(), live.as_object().unwrap());
    let differ: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: replayed {:?}, live {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// The figures a replay must reproduce: everything in results.json's entry for the backend but
/// its identity.
fn figures(results: &Value, id: &str) -> Value {
    let mut b = backend(results, id).clone();
    let o = b.as_object_mut().unwrap();
    for key in ["id", "provider", "model", "base_url", "price"] {
        o.remove(key);
    }
    b
}

fn plan_error(suite: &Path) -> String {
    let suite = Arc::new(evalgate::plan::load_suite(suite).unwrap_or_else(|e| panic!("{e}")));
    let options = evalgate::plan::RunOptions::default();
    match evalgate::plan::RunPlan::resolve(suite, &options, &evalgate::plan::ProcessEnv) {
        Ok(_) => panic!("the plan should be refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_journal_scores_like_the_live_run() {
    let ws = workspace();
    let live = live_run(&ws).await;
    let live_results = results(&live);
    assert_eq!(u(&backend(&live_results, "live-err")["errors"]), 1, "{live_results:#}");

    let journal = live.join("records.jsonl");
    let backends = format!(
        "  - id: live-recorded\n    provider: replay\n    replay: {{ file: {j}, from_backend: live }}\n    model: m\n    strategy: {{ few-shot: {{ k: 3, select: stratified, seed: 1 }} }}\n  - id: err-recorded\n    provider: replay\n    replay: {{ file: {d}, from_backend: live-err }}\n",
        j = journal.display(),
        d = live.display(),
    );
    let suite = ws.write("replay.yaml", &SUITE.replace("BACKENDS", &backends));
    let replay = run_library(&suite, &ws.run_dir("replay")).await;
    let replayed = results(&replay);
    assert_same(figures(&replayed, "live-recorded"), figures(&live_results, "live"));
    assert_same(figures(&replayed, "err-recorded"), figures(&live_results, "live-err"));
    // The model name comes from the recorded run when the suite gives none.
    assert_eq!(backend(&replayed, "err-recorded")["model"], "m-err");

    // Each record keeps the live reply, tokens and latency.
    let key = |r: &Value| {
        (
            r["id"].as_str().unwrap().to_string(),
            match r["backend"].as_str().unwrap() {
                "live-recorded" => "live",
                "err-recorded" => "live-err",
                other => other,
            }
            .to_string(),
        )
    };
    let mut live_records = records(&live);
    let mut replay_records = records(&replay);
    live_records.sort_by_key(key);
    replay_records.sort_by_key(key);
    assert_eq!(live_records.len(), replay_records.len());
    for (a, b) in live_records.iter().zip(&replay_records) {
        // A replayed failure is not retried, so only an answer's latency is the recorded one.
        let mut fields = vec!["id", "reply", "answer", "correct", "invalid", "tokens", "prompt"];
        if a["error"].is_null() {
            fields.push("latency_ms");
        }
        for field in fields {
            assert_eq!(a[field], b[field], "{field} of {}", a["id"]);
        }
        assert_eq!(a["error"].is_null(), b["error"].is_null());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_from_another_tool_score_like_the_live_run_and_gaps_are_refused() {
    let ws = workspace();
    let live = live_run(&ws).await;
    let live_results = results(&live);
    let live_records: Vec<Value> =
        records(&live).into_iter().filter(|r| r["backend"] == "live").collect();
    let csv_of = |rows: &[&Value]| {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let prompt: Vec<evalgate::prompt::ChatMessage> =
                    serde_json::from_value(r["prompt"].clone()).unwrap();
                vec![
                    r["id"].as_str().unwrap().to_string(),
                    r["reply"].as_str().unwrap().to_string(),
                    r["tokens"]["input"].to_string(),
                    r["tokens"]["output"].to_string(),
                    r["latency_ms"].to_string(),
                    evalgate::backend::replay::prompt_sha256(&prompt),
                ]
            })
            .collect();
        csv(&["id", "reply", "input_tokens", "output_tokens", "latency_ms", "prompt_sha256"], &rows)
    };
    let all: Vec<&Value> = live_records.iter().collect();
    ws.write("predictions.csv", &csv_of(&all));
    let backends = "  - id: other-tool\n    provider: replay\n    replay: { file: predictions.csv }\n    model: m\n    strategy: { few-shot: { k: 3, select: stratified, seed: 1 } }\n";
    let suite = ws.write("csv.yaml", &SUITE.replace("BACKENDS", backends));
    let replay = run_library(&suite, &ws.run_dir("csv")).await;
    assert_same(figures(&results(&replay), "other-tool"), figures(&live_results, "live"));

    // Two items left out: refused before the run, naming them.
    let some: Vec<&Value> = live_records
        .iter()
        .filter(|r| !["te-03", "te-11"].contains(&r["id"].as_str().unwrap()))
        .collect();
    ws.write("predictions.csv", &csv_of(&some));
    let e = plan_error(&suite);
    assert!(e.contains("has no reply for 2 of the 12 items this run asks (te-03, te-11)"), "{e}");

    // The hash is checked too: the same predictions against a zero-shot prompt are stale.
    ws.write("predictions.csv", &csv_of(&all));
    let zero = SUITE.replace(
        "BACKENDS",
        &backends
            .replace("    strategy: { few-shot: { k: 3, select: stratified, seed: 1 } }\n", ""),
    );
    let e = plan_error(&ws.write("csv-zero.yaml", &zero));
    assert!(e.contains("is stale") && e.contains("for 12 of 12 items"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_of_other_instructions_is_refused_naming_the_items() {
    let ws = workspace();
    let live = live_run(&ws).await;
    let backends = format!(
        "  - id: live-recorded\n    provider: replay\n    replay: {{ file: {} , from_backend: live }}\n    strategy: {{ few-shot: {{ k: 3, select: stratified, seed: 1 }} }}\n",
        live.join("records.jsonl").display()
    );
    let edited = SUITE
        .replace("Answer with the label only.", "Answer with one word.")
        .replace("BACKENDS", &backends);
    let e = plan_error(&ws.write("edited.yaml", &edited));
    assert!(e.contains("backend `live-recorded`"), "{e}");
    assert!(e.contains("is stale"), "{e}");
    assert!(e.contains("for 12 of 12 items (te-01, te-02, te-03, te-04, te-05 and 7 more)"), "{e}");
    assert!(e.contains("re-record it"), "{e}");
    // The CLI refuses it too, before any output, with exit code 2.
    let out = output(evalgate(ws.path()).args(["run", "edited.yaml", "--out", "never"]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("is stale"), "{out:?}");
    assert!(!ws.path().join("never").exists());

    // A journal with several backends needs `from_backend`.
    let unnamed = SUITE.replace("BACKENDS", &backends.replace(" , from_backend: live", ""));
    let e = plan_error(&ws.write("unnamed.yaml", &unnamed));
    assert!(
        e.contains("several backends (live, live-err)") && e.contains("replay.from_backend"),
        "{e}"
    );
}

#[test]
fn replay_keys_are_checked_with_file_line_and_key() {
    let ws = workspace();
    let errors = |backends: &str| {
        let suite = ws.write("keys.yaml", &SUITE.replace("BACKENDS", backends));
        match evalgate::plan::load_suite(&suite) {
            Ok(_) => panic!("{backends} should not load"),
            Err(e) => e.to_string(),
        }
    };
    let e = errors("  - id: r\n    provider: replay\n    replay: { file: nowhere.csv }\n");
    assert!(e.contains("backends[0].replay.file") && e.contains("nowhere.csv"), "{e}");
    let e = errors("  - id: r\n    provider: replay\n");
    assert!(e.contains("backends[0].replay") && e.contains("needs `replay:"), "{e}");
    let e = errors(
        "  - id: r\n    provider: replay\n    base_url: http://localhost:1/v1\n    replay: { file: test.csv }\n",
    );
    assert!(e.contains("backends[0].base_url") && e.contains("sends no request"), "{e}");
    let e =
        errors("  - id: o\n    provider: openai\n    model: m\n    replay: { file: test.csv }\n");
    assert!(e.contains("backends[0].replay") && e.contains("takes no `replay`"), "{e}");
}

/// Every reply SmolLM2-135M gave on the quick-start suite (fixtures/recorded/smollm2/), parsed
/// again: the label it maps to, or invalid, is pinned by the recording itself, and the counts
/// are pinned below. A change to the label parser that reads a real reply differently fails here.
#[test]
fn every_recorded_smollm2_reply_parses_to_its_pinned_outcome() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = evalgate::plan::load_suite(&root.join("suites/quickstart.yaml")).unwrap();
    let text = std::fs::read_to_string(root.join("fixtures/recorded/smollm2/records.jsonl"))
        .expect("the recording is committed");
    let mut counts: std::collections::BTreeMap<String, (u32, u32, u32)> = Default::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let r: Value = serde_json::from_str(line).unwrap();
        let reply = r["reply"].as_str().expect("no errors in the recording");
        let judged = evalgate::score::judge::classification(
            &suite.label_parser,
            &suite.task.labels,
            r["gold"].as_str().unwrap(),
            reply,
        );
        assert_eq!(judged.answer.as_deref(), r["answer"].as_str(), "{} {reply:?}", r["id"]);
        assert_eq!(judged.answer.is_none(), r["invalid"] == true);
        let c = counts.entry(r["backend"].as_str().unwrap().to_string()).or_default();
        c.0 += 1;
        c.1 += u32::from(judged.correct);
        c.2 += u32::from(judged.answer.is_none());
    }
    // (items, correct, invalid): zero-shot SmolLM2-135M chats instead of naming a label.
    assert_eq!(
        format!("{counts:?}"),
        r#"{"smollm2-fewshot": (240, 37, 119), "smollm2-zero": (240, 0, 240)}"#
    );
}
