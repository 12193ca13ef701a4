//! Runs through the `openai` backend against the in-process OpenAI-compatible test server:
//! request bodies per strategy, counts against hand computation, server dialects, error bodies,
//! retries, and a `report.md` snapshot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::openai_server::{RecordedRequest, Reply, TestServer, WireStyle};
use crate::support::*;

const INSTRUCTIONS_RENDERED: &str = "Classify the support ticket into one of: billing, technical, account. Answer with the label only.";

/// Train pool: 4 billing, 4 technical, 2 account (a small group, so leakage would be likely).
fn train_rows() -> Vec<Row> {
    vec![
        row("tr-01", "I was charged twice for my subscription", "billing"),
        row("tr-02", "Where can I download last month's invoice?", "billing"),
        row("tr-03", "Please update the card on file", "billing"),
        row("tr-04", "Do you offer a discount on the yearly plan?", "billing"),
        row("tr-05", "The app crashes when I open settings", "technical"),
        row("tr-06", "Sync fails with error 503", "technical"),
        row("tr-07", "Export to CSV produces an empty file", "technical"),
        row("tr-08", "Pages load very slowly since the update", "technical"),
        row("tr-09", "I cannot log in after resetting my password", "account"),
        row("tr-10", "How do I enable two-factor authentication?", "account"),
    ]
}

/// The text of te-02 is full of template syntax: it must reach the model verbatim.
const TEMPLATE_LIKE: &str =
    "Hi {{ customer_name }}, the dashboard shows {% if x %}nothing{% endif %} & <b>{{ 1 + 1 }}</b>";

/// Test items; te-03 and te-04 have the same text as train items tr-09 and tr-05.
fn test_rows() -> Vec<Row> {
    vec![
        row("te-01", "My invoice shows the wrong VAT number", "billing"),
        row("te-02", TEMPLATE_LIKE, "technical"),
        row("te-03", "I cannot log in after resetting my password", "account"),
        row("te-04", "The app crashes when I open settings", "technical"),
        row("te-05", "Can I get a receipt for my last payment?", "billing"),
        row("te-06", "I want to change the email on my profile", "account"),
    ]
}

fn prompt_of(text: &str) -> String {
    format!("Ticket: {text}")
}

/// Rendered input → gold label, for every row given.
fn gold_by_prompt(rows: &[Row]) -> Arc<HashMap<String, String>> {
    Arc::new(rows.iter().map(|r| (prompt_of(&r.text), r.label.clone())).collect())
}

/// A server that answers every request with the gold label of its last user message.
fn oracle(
    gold: Arc<HashMap<String, String>>,
) -> impl Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static {
    move |req, _| {
        let text = req.last_user_text().unwrap_or_default();
        match gold.get(&text) {
            Some(label) => Reply::chat(label.clone()),
            None => Reply::openai_error(
                400,
                &format!("unknown item {text:?}"),
                "invalid_request_error",
                None,
            ),
        }
    }
}

const STRATEGY_SUITE: &str = r#"schema_version: 1
name: strategies
task:
  kind: classification
  labels: [billing, technical, account]
  instructions: |
    Classify the support ticket into one of: {{ labels | join(", ") }}. Answer with the label only.
  input: "Ticket: {{ text }}"
data:
  test: test.csv
  train: train.csv
backends:
  - id: zero
    provider: openai
    base_url: @BASE@
    model: m-zero
    strategy: zero-shot
  - id: few
    provider: openai
    base_url: @BASE@
    model: m-few
    strategy: { few-shot: { k: 3, select: stratified, seed: 7 } }
  - id: fixed
    provider: openai
    base_url: @BASE@
    model: m-fixed
    strategy: { few-shot: { select: fixed, ids: [tr-06, tr-01, tr-09] } }
  - id: random
    provider: openai
    base_url: @BASE@
    model: m-random
    strategy: { few-shot: { k: 9, select: random, seed: 3 } }
  - id: tuned
    provider: openai
    base_url: @BASE@
    model: m-tuned
    strategy: fine-tuned
"#;

fn write_strategy_workspace(base_url: &str, suite: &str) -> (Workspace, std::path::PathBuf) {
    let ws = Workspace::new();
    ws.write("train.csv", &rows_csv(&train_rows()));
    ws.write("test.csv", &rows_csv(&test_rows()));
    let path = ws.write("suite.yaml", &suite.replace("@BASE@", base_url));
    (ws, path)
}

/// Splits a request's messages into (system, demo pairs, final user turn), checking the shape.
fn split_messages(
    messages: &[(String, String)],
    with_system: bool,
) -> (Option<String>, Vec<(String, String)>, String) {
    let mut rest = messages;
    let system = if with_system {
        assert_eq!(rest[0].0, "system", "first message should be the system prompt: {messages:?}");
        let s = rest[0].1.clone();
        rest = &rest[1..];
        Some(s)
    } else {
        assert!(
            rest.iter().all(|(role, _)| role != "system"),
            "no system message expected: {messages:?}"
        );
        None
    };
    let (last, demos) = rest.split_last().expect("at least the user turn");
    assert_eq!(last.0, "user", "last message should be the item: {messages:?}");
    assert_eq!(demos.len() % 2, 0, "demonstrations come in user/assistant pairs: {messages:?}");
    let pairs = demos
        .chunks(2)
        .map(|pair| {
            assert_eq!(
                (pair[0].0.as_str(), pair[1].0.as_str()),
                ("user", "assistant"),
                "{messages:?}"
            );
            (pair[0].1.clone(), pair[1].1.clone())
        })
        .collect();
    (system, pairs, last.1.clone())
}

/// (model, final user text) → request, for the requests of one run.
fn by_model_and_item(requests: &[RecordedRequest]) -> BTreeMap<(String, String), RecordedRequest> {
    let mut out = BTreeMap::new();
    for r in requests {
        let key =
            (r.model().unwrap_or_default().to_string(), r.last_user_text().unwrap_or_default());
        assert!(out.insert(key.clone(), r.clone()).is_none(), "two requests for {key:?}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_follow_each_strategy() {
    let mut all = train_rows();
    all.extend(test_rows());
    let server = TestServer::start(oracle(gold_by_prompt(&all))).await;
    let (ws, suite) = write_strategy_workspace(&server.base_url(), STRATEGY_SUITE);
    let run = run_library(&suite, &ws.run_dir("run")).await;

    let tests = test_rows();
    let train = train_rows();
    let train_by_prompt: HashMap<String, &Row> =
        train.iter().map(|r| (prompt_of(&r.text), r)).collect();
    let requests = server.requests();
    // Exactly one request per item and backend: 6 items × 5 backends.
    assert_eq!(requests.len(), tests.len() * 5);
    for r in &requests {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/chat/completions"));
        let body = r.json.as_ref().expect("JSON body");
        assert_eq!(body["temperature"].as_f64(), Some(0.0), "temperature 0 by default: {body}");
    }
    let sent = by_model_and_item(&requests);
    let demo_ids = |pairs: &[(String, String)]| -> Vec<String> {
        pairs
            .iter()
            .map(|(input, label)| {
                let r = train_by_prompt
                    .get(input)
                    .unwrap_or_else(|| panic!("demo {input:?} is not a train item"));
                assert_eq!(&r.label, label, "a demo's answer is its gold label");
                r.id.clone()
            })
            .collect()
    };

    for item in &tests {
        let input = prompt_of(&item.text);
        let get = |model: &str| {
            let r = sent
                .get(&(model.to_string(), input.clone()))
                .unwrap_or_else(|| panic!("no {model} request for {}", item.id));
            assert_eq!(r.model(), Some(model));
            r.messages()
        };

        // zero-shot: [system, user].
        let zero = get("m-zero");
        assert_eq!(
            zero,
            vec![
                ("system".to_string(), INSTRUCTIONS_RENDERED.to_string()),
                ("user".to_string(), input.clone())
            ]
        );

        // few-shot, stratified, k = 3 over 3 labels: one demonstration per label, never the item.
        let (system, pairs, last) = split_messages(&get("m-few"), true);
        assert_eq!(system.as_deref(), Some(INSTRUCTIONS_RENDERED));
        assert_eq!(last, input);
        assert_eq!(pairs.len(), 3, "k = 3 demonstrations for {}", item.id);
        let ids = demo_ids(&pairs);
        assert!(
            pairs.iter().all(|(demo, _)| demo != &input),
            "{}: the item itself is a demonstration",
            item.id
        );
        let labels: HashSet<&str> = pairs.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(
            labels.len(),
            3,
            "stratified demos should cover the 3 labels for {}: {ids:?}",
            item.id
        );
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "demos repeat for {}", item.id);

        // few-shot, fixed: exactly the listed ids in the listed order, minus the item itself.
        let (system, pairs, last) = split_messages(&get("m-fixed"), true);
        assert_eq!(system.as_deref(), Some(INSTRUCTIONS_RENDERED));
        assert_eq!(last, input);
        let expected: Vec<&str> = match item.id.as_str() {
            "te-03" => vec!["tr-06", "tr-01"], // te-03's text is tr-09's
            _ => vec!["tr-06", "tr-01", "tr-09"],
        };
        assert_eq!(demo_ids(&pairs), expected, "fixed demos for {}", item.id);

        // few-shot, random, k = 9 of 10: every train item but the item's own text.
        let (_, pairs, last) = split_messages(&get("m-random"), true);
        assert_eq!(last, input);
        let ids: HashSet<String> = demo_ids(&pairs).into_iter().collect();
        assert_eq!(ids.len(), 9, "9 distinct demos for {}", item.id);
        let leaked = train.iter().find(|t| t.text == item.text).map(|t| t.id.clone());
        if let Some(own) = &leaked {
            let others: HashSet<String> =
                train.iter().filter(|t| &t.id != own).map(|t| t.id.clone()).collect();
            assert_eq!(ids, others, "{}: random demos must be every train item but {own}", item.id);
        }

        // fine-tuned without fine_tuned_instructions: the user input alone.
        assert_eq!(get("m-tuned"), vec![("user".to_string(), input.clone())]);
    }

    // Template syntax in an example is data: sent exactly as written.
    let verbatim =
        sent.get(&("m-zero".to_string(), prompt_of(TEMPLATE_LIKE))).expect("te-02 request");
    assert_eq!(
        verbatim.json.as_ref().unwrap()["messages"][1]["content"],
        json!(format!("Ticket: {TEMPLATE_LIKE}"))
    );
    assert!(String::from_utf8_lossy(&verbatim.body).contains("{{ customer_name }}"));

    // The oracle answers every item right.
    let results = results(&run);
    for id in ["zero", "few", "fixed", "random", "tuned"] {
        let b = backend(&results, id);
        assert_eq!((u(&b["answered"]), u(&b["correct"])), (6, 6), "{id}: {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn few_shot_requests_are_byte_identical_across_runs() {
    let mut all = train_rows();
    all.extend(test_rows());
    let server = TestServer::start(oracle(gold_by_prompt(&all))).await;
    let (ws, suite) = write_strategy_workspace(&server.base_url(), STRATEGY_SUITE);
    run_library(&suite, &ws.run_dir("first")).await;
    let first = server.requests();
    run_library(&suite, &ws.run_dir("second")).await;
    let second: Vec<RecordedRequest> = server.requests().split_off(first.len());

    let bodies = |rs: &[RecordedRequest]| -> BTreeMap<(String, String), Vec<u8>> {
        by_model_and_item(rs).into_iter().map(|(k, r)| (k, r.body)).collect()
    };
    let (a, b) = (bodies(&first), bodies(&second));
    assert_eq!(a.len(), 30);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (key, body) in &a {
        assert!(
            body == &b[key],
            "request for {key:?} differs between runs:\n{}\n{}",
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&b[key])
        );
    }
    // Selection depends on the item: not every item got the same random demonstrations.
    let demo_sets: HashSet<Vec<(String, String)>> = a
        .iter()
        .filter(|((model, _), _)| model == "m-few")
        .map(|(_, body)| {
            let v: Value = serde_json::from_slice(body).unwrap();
            v["messages"].as_array().unwrap()[1..7]
                .iter()
                .map(|m| (m["role"].to_string(), m["content"].to_string()))
                .collect()
        })
        .collect();
    assert!(demo_sets.len() > 1, "every item drew the same demonstrations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fine_tuned_instructions_become_the_only_system_message() {
    let server = TestServer::start(oracle(gold_by_prompt(&test_rows()))).await;
    let suite = r#"schema_version: 1
name: tuned-with-system
task:
  kind: classification
  labels: [billing, technical, account]
  instructions: "Long instructions: {{ labels | join(', ') }}"
  input: "Ticket: {{ text }}"
  fine_tuned_instructions: "Route the ticket ({{ labels | join('/') }})."
data:
  test: test.csv
backends:
  - id: tuned
    provider: openai
    base_url: @BASE@
    model: ft:acme-1
    strategy: fine-tuned
    temperature: 0.5
    max_tokens: 8
"#;
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&test_rows()));
    let path = ws.write("suite.yaml", &suite.replace("@BASE@", &server.base_url()));
    run_library(&path, &ws.run_dir("run")).await;
    let requests = server.requests();
    assert_eq!(requests.len(), 6);
    for r in &requests {
        assert_eq!(r.model(), Some("ft:acme-1"));
        let body = r.json.as_ref().unwrap();
        assert_eq!(
            (body["temperature"].as_f64(), body["max_tokens"].as_u64()),
            (Some(0.5), Some(8)),
            "{body}"
        );
        let messages = r.messages();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(
            messages[0],
            ("system".to_string(), "Route the ticket (billing/technical/account).".to_string())
        );
        assert_eq!(messages[1].0, "user");
        assert!(test_rows().iter().any(|t| prompt_of(&t.text) == messages[1].1));
    }
}

// ---------------------------------------------------------------------------------------------
// Counts
// ---------------------------------------------------------------------------------------------

const LABELS4: [&str; 4] = ["billing", "technical", "account", "shipping"];

/// What the server does for backend `a` with item number `i` (1-based).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Plan {
    Right,
    Wrong,
    Unsure,
    Fail,
}

fn plan(i: usize) -> Plan {
    match i {
        1..=10 => Plan::Right,
        11..=14 => Plan::Wrong,
        15..=17 => Plan::Unsure,
        _ => Plan::Fail,
    }
}

fn count_rows() -> Vec<Row> {
    (1..=20)
        .map(|i| row(&format!("c-{i:02}"), &format!("Customer case number {i}"), LABELS4[i % 4]))
        .collect()
}

fn wrong_label(gold: &str) -> &'static str {
    let g = LABELS4.iter().position(|l| *l == gold).unwrap();
    LABELS4[(g + 1) % 4]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_wilson_interval_match_hand_computation() {
    let rows = count_rows();
    let by_text: Arc<HashMap<String, (usize, String)>> = Arc::new(
        rows.iter()
            .enumerate()
            .map(|(i, r)| (prompt_of(&r.text), (i + 1, r.label.clone())))
            .collect(),
    );
    let server = TestServer::start(move |req, _| {
        let (i, gold) = by_text[&req.last_user_text().unwrap()].clone();
        if req.model() == Some("m-b") {
            return Reply::chat(gold);
        }
        match plan(i) {
            Plan::Right => Reply::chat(gold),
            Plan::Wrong => Reply::chat(wrong_label(&gold)),
            Plan::Unsure => Reply::chat("I am not sure"),
            Plan::Fail => Reply::vllm_error(400, "prompt is too long for this model"),
        }
    })
    .await;
    let suite = r#"schema_version: 1
name: counts
task:
  kind: classification
  labels: [billing, technical, account, shipping]
  instructions: "Answer with one of {{ labels | join(', ') }}."
  input: "Ticket: {{ text }}"
data:
  test: test.csv
backends:
  - id: a
    provider: openai
    base_url: @BASE@
    model: m-a
  - id: b
    provider: openai
    base_url: @BASE@
    model: m-b
"#;
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&rows));
    let path = ws.write("suite.yaml", &suite.replace("@BASE@", &server.base_url()));
    let run = run_library(&path, &ws.run_dir("run")).await;
    assert_eq!(
        server.requests().len(),
        40,
        "4xx errors are not retried; one request per item and backend"
    );

    let results = results(&run);
    assert_eq!(results["items"], 20);
    // Backend a, by hand: 10 right, 4 wrong, 3 "I am not sure", 3 failed with HTTP 400.
    let a = backend(&results, "a");
    let counts = |b: &Value| {
        ["items", "answered", "correct", "invalid", "errors", "missing"].map(|k| u(&b[k]))
    };
    assert_eq!(counts(a), [20, 17, 10, 3, 3, 0]);
    assert_close(f(&a["accuracy"]["estimate"]), 10.0 / 17.0, "accuracy = correct / answered");
    let (low, high) = wilson(10, 17);
    assert_close(f(&a["accuracy"]["low"]), low, "Wilson low (10/17)");
    assert_close(f(&a["accuracy"]["high"]), high, "Wilson high (10/17)");
    // statsmodels.stats.proportion.proportion_confint(10, 17, alpha=0.05, method="wilson").
    assert_close(low, 0.3600544264299978, "reference Wilson low");
    assert_close(high, 0.7838894320978518, "reference Wilson high");
    assert_eq!(a["accuracy"]["method"], "wilson");
    assert_close(f(&a["accuracy"]["confidence"]), 0.95, "confidence");
    assert_close(
        f(&a["error_rate"]["estimate"]),
        3.0 / 20.0,
        "error rate = errors / (answered + errors)",
    );
    assert_eq!(a["error_kinds"], json!({ "http": 3 }));
    // Tokens: 17 answered × 10 prompt tokens; completions: 14 one-word labels + 3 × 4 words.
    assert_eq!((u(&a["tokens"]["input"]), u(&a["tokens"]["output"])), (170, 26));
    assert_close(
        f(&a["tokens"]["output_per_request"]),
        26.0 / 17.0,
        "output tokens per answered request",
    );
    assert_eq!(a["tokens"]["estimated"], false);
    // Confusion matrix by hand: rows gold, columns predicted then invalid.
    let mut confusion = vec![vec![0u64; 5]; 4];
    for (i, r) in rows.iter().enumerate() {
        let g = LABELS4.iter().position(|l| *l == r.label).unwrap();
        match plan(i + 1) {
            Plan::Right => confusion[g][g] += 1,
            Plan::Wrong => confusion[g][(g + 1) % 4] += 1,
            Plan::Unsure => confusion[g][4] += 1,
            Plan::Fail => {}
        }
    }
    assert_eq!(a["confusion"], json!(confusion));

    // Backend b answers everything right: 20/20 and the Wilson bound at 1.
    let b = backend(&results, "b");
    assert_eq!(counts(b), [20, 20, 20, 0, 0, 0]);
    assert_close(f(&b["accuracy"]["estimate"]), 1.0, "b accuracy");
    let (low, high) = wilson(20, 20);
    assert_close(low, 0.8388748419471804, "reference Wilson low (20/20)");
    assert_close(f(&b["accuracy"]["low"]), low, "b Wilson low");
    assert_close(f(&b["accuracy"]["high"]), high, "b Wilson high");

    // records.jsonl: exactly one record per item and backend, with every documented key.
    let records = records(&run);
    assert_eq!(records.len(), 40);
    let pairs: HashSet<(String, String)> = records
        .iter()
        .map(|r| {
            (r["id"].as_str().unwrap().to_string(), r["backend"].as_str().unwrap().to_string())
        })
        .collect();
    let expected: HashSet<(String, String)> =
        rows.iter().flat_map(|r| ["a", "b"].map(|b| (r.id.clone(), b.to_string()))).collect();
    assert_eq!(pairs, expected);
    for r in &records {
        for key in [
            "id",
            "backend",
            "prompt",
            "reply",
            "answer",
            "gold",
            "correct",
            "tokens",
            "latency_ms",
            "error",
        ] {
            assert!(r.get(key).is_some(), "record lacks `{key}`: {r}");
        }
        assert!(r["tokens"].get("input").is_some() && r["tokens"].get("output").is_some(), "{r}");
        assert!(f(&r["latency_ms"]) >= 0.0);
    }
    let record = |id: &str| records.iter().find(|r| r["id"] == id && r["backend"] == "a").unwrap();
    let wrong = record("c-11");
    assert_eq!(
        (&wrong["gold"], &wrong["answer"], &wrong["correct"]),
        (&json!(LABELS4[11 % 4]), &json!(wrong_label(LABELS4[11 % 4])), &json!(false))
    );
    let unsure = record("c-15");
    assert_eq!(
        (&unsure["reply"], &unsure["answer"], &unsure["correct"], &unsure["invalid"]),
        (&json!("I am not sure"), &Value::Null, &json!(false), &json!(true))
    );
    let failed = record("c-18");
    assert_eq!(
        (&failed["reply"], &failed["answer"], &failed["correct"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(failed["error"]["status"], 400);
    assert_eq!(failed["error"]["message"], "prompt is too long for this model");
    let right = record("c-01");
    assert_eq!(
        (&right["answer"], &right["correct"], &right["error"]),
        (&json!(LABELS4[1]), &json!(true), &Value::Null)
    );
    assert_eq!(
        right["prompt"].as_array().unwrap().last().unwrap()["content"],
        "Ticket: Customer case number 1"
    );

    // records.csv: the same rows.
    let rows_csv = csv_rows(&run);
    assert_eq!(rows_csv.len(), 40);
}

// ---------------------------------------------------------------------------------------------
// Server dialects and error bodies
// ---------------------------------------------------------------------------------------------

fn four_rows() -> Vec<Row> {
    LABELS4
        .iter()
        .enumerate()
        .map(|(i, l)| row(&format!("v-{i}"), &format!("Variant ticket {i}"), l))
        .collect()
}

fn suite_with_models(name: &str, base: &str, models: &[&str], extra: &str) -> String {
    let mut s = format!(
        "schema_version: 1\nname: {name}\ntask:\n  kind: classification\n  labels: [billing, technical, account, shipping]\n  instructions: \"Answer with one label.\"\n  input: \"Ticket: {{{{ text }}}}\"\ndata:\n  test: test.csv\nbackends:\n"
    );
    for m in models {
        s.push_str(&format!(
            "  - id: {m}\n    provider: openai\n    base_url: {base}\n    model: m-{m}\n{extra}"
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_survive_every_server_dialect() {
    let rows = four_rows();
    let gold = gold_by_prompt(&rows);
    let server = TestServer::start(move |req, _| {
        let label = gold[&req.last_user_text().unwrap()].clone();
        match req.model().unwrap() {
            "m-vllm" => Reply::chat(label).with_style(WireStyle::Vllm).with_finish_reason(Some("abort")),
            "m-ollama" => Reply::chat(label).with_style(WireStyle::Ollama).with_usage(None),
            "m-llamacpp" => Reply::chat(label).with_style(WireStyle::LlamaCpp).with_finish_reason(Some("")),
            "m-tgi" => Reply::chat(label).with_finish_reason(Some("eos_token")),
            "m-nullfinish" => Reply::chat(label).with_style(WireStyle::LlamaCpp).with_finish_reason(None),
            "m-parts" => {
                let (head, tail) = label.split_at(3);
                let body = json!({
                    "choices": [{
                        "index": 0,
                        "message": { "role": "assistant", "content": [ { "type": "text", "text": head }, { "type": "text", "text": tail } ] },
                        "finish_reason": "eos_token"
                    }],
                    "usage": { "prompt_tokens": 7, "completion_tokens": 2 }
                });
                Reply::Raw { status: 200, content_type: "application/json".into(), body: body.to_string().into_bytes() }
            }
            other => panic!("unexpected model {other}"),
        }
    })
    .await;
    let models = ["vllm", "ollama", "llamacpp", "tgi", "nullfinish", "parts"];
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&rows));
    let path =
        ws.write("suite.yaml", &suite_with_models("dialects", &server.base_url(), &models, ""));
    let run = run_library(&path, &ws.run_dir("run")).await;
    assert_eq!(server.requests().len(), 4 * models.len());

    let results = results(&run);
    for m in models {
        let b = backend(&results, m);
        let counts = ["answered", "correct", "invalid", "errors"].map(|k| u(&b[k]));
        assert_eq!(counts, [4, 4, 0, 0], "{m}: every answer kept: {b}");
        assert_eq!(
            b["tokens"]["estimated"],
            m == "ollama",
            "{m}: tokens are estimated only without usage"
        );
    }
    assert_eq!(u(&backend(&results, "vllm")["tokens"]["input"]), 40);
    assert_eq!(u(&backend(&results, "parts")["tokens"]["input"]), 28);
    assert!(u(&backend(&results, "ollama")["tokens"]["input"]) > 0, "estimated, not zero");

    let records = records(&run);
    let finish = |m: &str| -> HashSet<Value> {
        records.iter().filter(|r| r["backend"] == m).map(|r| r["finish_reason"].clone()).collect()
    };
    assert_eq!(finish("vllm"), HashSet::from([json!("abort")]));
    assert_eq!(finish("parts"), HashSet::from([json!("eos_token")]));
    assert_eq!(finish("tgi"), HashSet::from([json!("eos_token")]));
    assert_eq!(finish("nullfinish"), HashSet::from([Value::Null]));
    for r in records.iter().filter(|r| r["backend"] == "ollama") {
        assert_eq!(r["tokens"]["estimated"], true, "{r}");
    }
    for r in records.iter().filter(|r| r["backend"] == "parts") {
        assert_eq!(r["reply"], r["gold"], "content parts are joined: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_keep_status_and_message() {
    const OPENAI_MSG: &str = "The model `gpt-9` does not exist or you do not have access to it.";
    const VLLM_MSG: &str =
        "This model's maximum context length is 2048 tokens. However, you requested 4000 tokens.";
    const OLLAMA_MSG: &str = "model \"llama9\" not found, try pulling it first";
    let server = TestServer::start(|req, _| match req.model().unwrap() {
        "m-openai" => {
            Reply::openai_error(404, OPENAI_MSG, "invalid_request_error", Some("model_not_found"))
        }
        "m-vllm" => Reply::vllm_error(400, VLLM_MSG),
        "m-ollama" => Reply::ollama_error(404, OLLAMA_MSG),
        // A proxy's HTML page with status 200, and a 200 whose JSON body is an error.
        "m-html" => Reply::Raw {
            status: 200,
            content_type: "text/html".into(),
            body: b"<html><body>502 Bad Gateway</body></html>".to_vec(),
        },
        "m-apierr" => Reply::Raw {
            status: 200,
            content_type: "application/json".into(),
            body: br#"{"error":{"message":"backend exploded"}}"#.to_vec(),
        },
        other => panic!("unexpected model {other}"),
    })
    .await;
    let rows = four_rows();
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&rows));
    let models = ["openai", "vllm", "ollama", "html", "apierr"];
    let path = ws.write(
        "suite.yaml",
        &suite_with_models("errors", &server.base_url(), &models, "    max_attempts: 1\n"),
    );
    let run = run_library(&path, &ws.run_dir("run")).await;
    // One attempt each; a 404 stops its backend, so its items not yet sent are never sent.
    assert!(server.requests().len() <= 4 * models.len(), "one attempt each");

    let results = results(&run);
    let records = records(&run);
    for (m, status, message) in
        [("openai", 404, OPENAI_MSG), ("vllm", 400, VLLM_MSG), ("ollama", 404, OLLAMA_MSG)]
    {
        let b = backend(&results, m);
        assert_eq!(["answered", "correct", "errors"].map(|k| u(&b[k])), [0, 0, 4], "{m}: {b}");
        let mine: Vec<&Value> = records.iter().filter(|r| r["backend"] == m).collect();
        assert_eq!(mine.len(), 4);
        for r in mine.into_iter().filter(|r| r["error"]["kind"] != "not_sent") {
            assert_eq!(r["error"]["kind"], "http", "{r}");
            assert_eq!(r["error"]["status"], status, "{r}");
            assert_eq!(r["error"]["message"], message, "{r}");
            assert_eq!((&r["correct"], r["attempts"].as_u64()), (&Value::Null, Some(1)), "{r}");
        }
    }
    for (m, kind) in [("html", "malformed_response"), ("apierr", "api_error")] {
        let b = backend(&results, m);
        assert_eq!(
            ["answered", "correct", "errors"].map(|k| u(&b[k])),
            [0, 0, 4],
            "{m}: an error, not a wrong answer: {b}"
        );
        // The same error on the first 3 requests stops the backend: a 4th may be not sent.
        for r in records.iter().filter(|r| r["backend"] == m && r["error"]["kind"] != "not_sent") {
            assert_eq!(r["error"]["kind"], kind, "{r}");
        }
    }
    let apierr = records.iter().find(|r| r["backend"] == "apierr").unwrap();
    assert_eq!(apierr["error"]["message"], "backend exploded");
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_persistent_ones_are_errors() {
    let rows: Vec<Row> = four_rows().into_iter().take(3).collect();
    let gold = gold_by_prompt(&rows);
    let server = TestServer::start(move |req, attempt| {
        let label = gold[&req.last_user_text().unwrap()].clone();
        let model = req.model().unwrap();
        if model == "m-r503" {
            return Reply::vllm_error(503, "Service overloaded");
        }
        if attempt > 1 {
            return Reply::chat(label);
        }
        match model {
            "m-r429" => Reply::rate_limited("0"),
            "m-r500" => Reply::openai_error(500, "The server had an error while processing your request.", "server_error", None),
            "m-reset" => Reply::ResetConnection,
            "m-trunc" => Reply::Truncated { body: br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{"content":"bil"#.to_vec() },
            other => panic!("unexpected model {other}"),
        }
    })
    .await;
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&rows));
    let mut suite =
        suite_with_models("retries", &server.base_url(), &["r429", "r500", "reset", "trunc"], "");
    suite.push_str(&format!("  - id: r503\n    provider: openai\n    base_url: {}\n    model: m-r503\n    max_attempts: 2\n", server.base_url()));
    let path = ws.write("suite.yaml", &suite);
    let run = run_library(&path, &ws.run_dir("run")).await;

    let requests = server.requests();
    let per_model = |m: &str| requests.iter().filter(|r| r.model() == Some(m)).count();
    let results = results(&run);
    let records = records(&run);
    for m in ["r429", "r500", "reset", "trunc"] {
        assert_eq!(per_model(&format!("m-{m}")), 6, "{m}: two attempts per item");
        let b = backend(&results, m);
        assert_eq!(["answered", "correct", "errors"].map(|k| u(&b[k])), [3, 3, 0], "{m}: {b}");
        for r in records.iter().filter(|r| r["backend"] == m) {
            assert_eq!(r["attempts"], 2, "{m}: {r}");
            assert_eq!(r["error"], Value::Null);
        }
    }
    // Every attempt 503, max_attempts 2: an error with its status, never a wrong answer.
    assert_eq!(per_model("m-r503"), 6, "max_attempts: 2 means two requests per item");
    let b = backend(&results, "r503");
    assert_eq!(["answered", "correct", "invalid", "errors"].map(|k| u(&b[k])), [0, 0, 0, 3], "{b}");
    for r in records.iter().filter(|r| r["backend"] == "r503") {
        assert_eq!(
            (&r["error"]["status"], &r["error"]["message"]),
            (&json!(503), &json!("Service overloaded")),
            "{r}"
        );
        assert_eq!(
            (&r["correct"], &r["answer"], &r["attempts"]),
            (&Value::Null, &Value::Null, &json!(2)),
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let rows: Vec<Row> = four_rows().into_iter().take(1).collect();
    let gold = gold_by_prompt(&rows);
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = seen.clone();
    let server = TestServer::start(move |req, attempt| {
        log.lock().unwrap().push(Instant::now());
        if attempt == 1 {
            Reply::rate_limited("0.4")
        } else {
            Reply::chat(gold[&req.last_user_text().unwrap()].clone())
        }
    })
    .await;
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&rows));
    let path = ws.write(
        "suite.yaml",
        &suite_with_models("retry-after", &server.base_url(), &["limited"], ""),
    );
    // Backoff alone would wait at most 1 ms: only Retry-After explains a longer wait.
    let policy = evalgate::backend::RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_secs(5),
    };
    let run = run_library_with(&path, &ws.run_dir("run"), policy).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let waited = seen[1] - seen[0];
    assert!(waited >= Duration::from_millis(380), "waited {waited:?}, the server asked for 400 ms");
    assert_eq!(u(&backend(&results(&run), "limited")["correct"]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_slower_than_the_timeout_is_retried() {
    // The first attempt of each item is answered only after a minute, far beyond the run: the run
    // ends without those answers only if the client cuts each first attempt off at its timeout
    // and sends it again.
    const SLOW: Duration = Duration::from_secs(60);
    let rows: Vec<Row> = four_rows().into_iter().take(2).collect();
    let gold = gold_by_prompt(&rows);
    let server = TestServer::start(move |req, attempt| {
        let reply = Reply::chat(gold[&req.last_user_text().unwrap()].clone());
        if attempt == 1 {
            reply.delayed(SLOW)
        } else {
            reply
        }
    })
    .await;
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&rows));
    // A timeout of 1 s leaves a second attempt, answered at once, ample time even under load.
    let path = ws.write(
        "suite.yaml",
        &suite_with_models("timeouts", &server.base_url(), &["slow"], "    timeout_secs: 1\n"),
    );
    let run = run_library(&path, &ws.run_dir("run")).await;
    assert_eq!(server.requests().len(), 4);
    // Counted, not timed: the run has finished with only the two second attempts answered, so
    // it did not wait for the slow replies.
    assert_eq!(server.responses(), 2, "the slow replies were not cut off");
    let results = results(&run);
    let b = backend(&results, "slow");
    assert_eq!(["answered", "correct", "errors"].map(|k| u(&b[k])), [2, 2, 0], "{b}");
    for r in records(&run) {
        assert_eq!(r["attempts"], 2, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bounds_requests_in_flight() {
    const LIMIT: usize = 2;
    let rows: Vec<Row> = (0..6)
        .map(|i| row(&format!("p-{i}"), &format!("Parallel ticket {i}"), LABELS4[i % 4]))
        .collect();
    let gold = gold_by_prompt(&rows);
    // Each reply is held until LIMIT requests have been in flight at once, so the limit is
    // reached whatever the scheduling: the client needs no reply to send its second request.
    // The 100 ms after the hold only widens each request's window, so that a client sending more
    // than LIMIT at once would have them overlap at the server; no assertion depends on it.
    let server = TestServer::start(move |req, _| {
        Reply::chat(gold[&req.last_user_text().unwrap()].clone())
            .delayed(Duration::from_millis(100))
            .held_until_in_flight(LIMIT)
    })
    .await;
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&rows));
    let path = ws.write(
        "suite.yaml",
        &suite_with_models(
            "parallel",
            &server.base_url(),
            &["pair"],
            &format!("    concurrency: {LIMIT}\n"),
        ),
    );
    let run = run_library(&path, &ws.run_dir("run")).await;
    assert_eq!(server.request_count(), 6);
    assert_eq!(u(&backend(&results(&run), "pair")["correct"]), 6);
    // The server has a request in flight for part of the time the client has it in flight, so
    // its count is at most the client's: never above LIMIT if the cap holds, and LIMIT (not 1,
    // which a hold given up after HOLD_LIMIT would give) if the client sent LIMIT at once.
    assert_eq!(server.max_in_flight(), LIMIT, "requests in flight at once");
}

// ---------------------------------------------------------------------------------------------
// report.md snapshot
// ---------------------------------------------------------------------------------------------

/// Replaces what changes from run to run with fixed placeholders, as nextest's `redact.rs` does:
/// timestamps, the suite hash (the suite names the server's random port), the version, run
/// paths, and the latency column of the summary table.
pub(crate) fn redact_report(markdown: &str, run_dir: &std::path::Path) -> String {
    let mut out = Vec::new();
    let mut latency_column: Option<usize> = None;
    for line in markdown.replace(&run_dir.display().to_string(), "<run-dir>").lines() {
        let mut line = line.to_string();
        if let Some(start) = line.find("suite sha256 `") {
            let from = start + "suite sha256 `".len();
            let end = from + line[from..].find('`').unwrap();
            line.replace_range(from..end, "<sha256>");
        }
        line = redact_timestamps(&line);
        if let Some(pos) = line.find("· evalgate ") {
            line.replace_range(pos + "· evalgate ".len().., "<version>");
        }
        if line.starts_with("| backend |") && line.contains("latency") {
            // Find the latency column by its header, so added columns do not shift it.
            latency_column = line.split('|').position(|h| h.trim().starts_with("latency"));
        } else if let (Some(col), true) = (latency_column, line.starts_with("| ")) {
            if !line.starts_with("|---") {
                let mut cells: Vec<String> = line.split('|').map(str::to_string).collect();
                cells[col] = " <duration> / <duration> ".to_string();
                line = cells.join("|");
            }
        } else if !line.starts_with('|') {
            latency_column = None;
        }
        out.push(line);
    }
    out.join("\n") + "\n"
}

/// `2026-11-27T21:14:05Z` → `XXXX-XX-XXTXX:XX:XXZ`.
fn redact_timestamps(line: &str) -> String {
    let shape = "dddd-dd-ddTdd:dd:ddZ";
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let fits = i + shape.len() <= chars.len()
            && shape.chars().zip(&chars[i..]).all(|(s, c)| {
                if s == 'd' {
                    c.is_ascii_digit()
                } else {
                    s == *c
                }
            });
        if fits {
            out.push_str("XXXX-XX-XXTXX:XX:XXZ");
            i += shape.len();
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_markdown_snapshot() {
    let rows = vec![
        row("s-1", "I was billed twice this month", "billing"),
        row("s-2", "The export button | does nothing", "technical"),
        row("s-3", "Reset my password please", "account"),
        row("s-4", "Where is my parcel? <script>alert(1)</script>", "shipping"),
        row("s-5", "Refund the annual plan", "billing"),
        row("s-6", "App crashes on start", "technical"),
    ];
    // Fixed answers per backend and item: `good` gets 5 of 6 right ("Billing." counts); `weak`
    // gets 2 of 5 answered right, with one invalid reply (a `|` and a line break) and one error.
    fn answer(model: &str, id: &str) -> &'static str {
        match (model, id) {
            ("m-good", "s-1") | ("m-good", "s-5") | ("m-weak", "s-1") | ("m-weak", "s-3") => {
                if id == "s-5" {
                    "Billing."
                } else {
                    "billing"
                }
            }
            ("m-good", "s-2") | ("m-weak", "s-6") => "technical",
            ("m-good", "s-3") | ("m-good", "s-6") => "account",
            ("m-good", "s-4") => "shipping",
            ("m-weak", "s-4") => "technical",
            ("m-weak", "s-2") => "I think | technical\nmaybe",
            ("m-weak", "s-5") => "FAIL",
            other => panic!("unexpected {other:?}"),
        }
    }
    let ids: HashMap<String, String> =
        rows.iter().map(|r| (prompt_of(&r.text), r.id.clone())).collect();
    let server = TestServer::start(move |req, _| {
        let id = &ids[&req.last_user_text().unwrap()];
        match answer(req.model().unwrap(), id) {
            "FAIL" => Reply::vllm_error(400, "context length exceeded"),
            a => Reply::chat(a),
        }
    })
    .await;
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&rows));
    let path = ws.write(
        "suite.yaml",
        &suite_with_models(
            "snapshot-suite",
            &server.base_url(),
            &["good", "weak"],
            "    concurrency: 1\n",
        ),
    );
    let run = run_library(&path, &ws.run_dir("run")).await;
    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap();
    let redacted = redact_report(&markdown, &run);
    assert!(
        !redacted.contains(" ms |") || redacted.contains("<duration>"),
        "latencies must be redacted"
    );
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("report_md", redacted);
    });

    // results.json, with what varies between runs replaced.
    let mut results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    for key in ["started_at", "finished_at", "suite_sha256", "evalgate_version"] {
        results[key] = serde_json::Value::String(format!("<{key}>"));
    }
    for b in results["backends"].as_array_mut().unwrap() {
        b["latency_ms"] = serde_json::json!({ "p50": "<ms>", "p95": "<ms>" });
    }
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("results_json", serde_json::to_string_pretty(&results).unwrap());
    });

    // records.csv, sorted (records arrive in completion order), latency column redacted.
    let text = std::fs::read_to_string(run.join("records.csv")).unwrap();
    let mut reader = csv_reader(&text);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let latency = header.iter().position(|h| h == "latency_ms").unwrap();
    let mut rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            r.unwrap()
                .iter()
                .enumerate()
                .map(|(i, v)| if i == latency { "<ms>".to_string() } else { v.to_string() })
                .collect()
        })
        .collect();
    rows.sort();
    let mut out = header.join(",") + "\n";
    for row in rows {
        out.push_str(&row.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("records_csv", out);
    });
}

/// Regression: records.csv kept one row per item and backend, so with `epochs` > 1 it dropped all
/// but the last sample of each item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_csv_keeps_every_sample() {
    const EPOCHS: usize = 3;
    let rows = four_rows();
    let gold = gold_by_prompt(&rows);
    // Only the second sample (by arrival) of each item and model is right, so the samples differ.
    let seen: Arc<Mutex<HashMap<(String, String), usize>>> = Arc::default();
    let server = TestServer::start(move |req, _| {
        let text = req.last_user_text().unwrap();
        let mut seen = seen.lock().unwrap();
        let n = seen.entry((req.model().unwrap().to_string(), text.clone())).or_default();
        *n += 1;
        Reply::chat(if *n == 2 { gold[&text].as_str() } else { wrong_label(&gold[&text]) })
    })
    .await;
    let ws = Workspace::new();
    ws.write("test.csv", &rows_csv(&rows));
    let extra = format!("    epochs: {EPOCHS}\n    temperature: 1\n");
    let path = ws.write(
        "suite.yaml",
        &suite_with_models("sampled", &server.base_url(), &["a", "b"], &extra),
    );
    let run = run_library(&path, &ws.run_dir("run")).await;

    let text = std::fs::read_to_string(run.join("records.csv")).unwrap();
    let mut reader = csv_reader(&text);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let samples: Vec<Vec<String>> =
        reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    assert_eq!(samples.len(), rows.len() * EPOCHS * 2, "items × epochs × backends");
    assert_eq!(header[..3], ["id", "backend", "epoch"], "{header:?}");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (id, backend, epoch, answer) = (0, 1, 2, column("answer"));
    // Each row is one sample, once, and says what that sample's journal record says.
    let journal: HashMap<(String, String, String), String> = records(&run)
        .iter()
        .map(|r| {
            let key = (r["backend"].as_str().unwrap(), r["id"].as_str().unwrap());
            let epoch = r.get("epoch").map_or(0, |e| e.as_u64().unwrap());
            ((key.0.to_string(), key.1.to_string(), epoch.to_string()), r["answer"].to_string())
        })
        .collect();
    assert_eq!(journal.len(), rows.len() * EPOCHS * 2);
    let mut keys = HashSet::new();
    for row in &samples {
        let key = (row[backend].clone(), row[id].clone(), row[epoch].clone());
        assert!(keys.insert(key.clone()), "{key:?} appears twice");
        let recorded = journal.get(&key).unwrap_or_else(|| panic!("{key:?} is not in the journal"));
        assert_eq!(&json!(row[answer]).to_string(), recorded, "{key:?}");
    }
    assert_eq!(keys.len(), journal.len());
}

fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().from_reader(text.as_bytes())
}

#[test]
fn redaction_replaces_what_varies() {
    let md = "3 test items · 2 labels · suite sha256 `0123456789ab` · started 2026-11-27T21:14:05Z · finished 2026-11-27T21:14:06Z · evalgate 0.1.0\n\
| backend | strategy | model | accuracy (95% CI) | macro-F1 | answered | invalid | errors | tokens in / out per request | latency p50 / p95 |\n\
|---|---|---|---|---|---|---|---|---|---|\n\
| a | zero-shot | m | 50.0% (1.0–99.0) | 0.500 | 2/2 | 0 | 0 | 10 / 1 | 3.21 ms / 1.20 s |\n\
\n\
| label | support |\n\
| x | 3 |\n";
    let r = redact_report(md, std::path::Path::new("/nonexistent"));
    assert!(r.starts_with("3 test items · 2 labels · suite sha256 `<sha256>` · started XXXX-XX-XXTXX:XX:XXZ · finished XXXX-XX-XXTXX:XX:XXZ · evalgate <version>\n"), "{r}");
    assert!(r.contains("| 10 / 1 | <duration> / <duration> |"), "{r}");
    assert!(r.contains("| x | 3 |"), "other tables are untouched: {r}");
}
