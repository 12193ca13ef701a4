//! Runs through `provider: anthropic` against the in-process Messages API server
//! (`support::anthropic_server`): counts against hand computation, the request's wire shape,
//! structured output as a forced tool call, cache reads and writes in records and cost,
//! retries on 429 and 529, rate-limit headers, a wrong key, truncation, thinking blocks, key
//! hygiene, and suite validation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::support::anthropic_server::{self as server, Message, RecordedRequest, Usage};
use crate::support::*;

const INSTRUCTIONS: &str =
    "Classify the support ticket into one of: billing, technical, account. Answer with the label only.";

fn train_rows() -> Vec<Row> {
    vec![
        row("tr-01", "I was charged twice for my subscription", "billing"),
        row("tr-02", "Where can I download last month's invoice?", "billing"),
        row("tr-03", "The app crashes when I open settings", "technical"),
        row("tr-04", "Sync fails with error 503", "technical"),
        row("tr-05", "I cannot log in after resetting my password", "account"),
        row("tr-06", "How do I enable two-factor authentication?", "account"),
    ]
}

fn test_rows() -> Vec<Row> {
    vec![
        row("te-01", "My invoice shows the wrong VAT number", "billing"),
        row("te-02", "Export to CSV produces an empty file", "technical"),
        row("te-03", "I want to change the email on my profile", "account"),
        row("te-04", "Pages load very slowly since the update", "technical"),
        row("te-05", "Can I get a receipt for my last payment?", "billing"),
        row("te-06", "Please close my account", "account"),
    ]
}

/// Rendered user turn → (item id, gold label), for every row.
fn by_prompt() -> Arc<HashMap<String, (String, String)>> {
    let rows = train_rows().into_iter().chain(test_rows());
    Arc::new(rows.map(|r| (format!("Ticket: {}", r.text), (r.id, r.label))).collect())
}

/// A classification suite over the tickets with `backends` (YAML list items).
fn ticket_suite(backends: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    ws.write("train.csv", &rows_csv(&train_rows()));
    ws.write("test.csv", &rows_csv(&test_rows()));
    let suite = format!(
        r#"schema_version: 1
name: anthropic-tickets
task:
  kind: classification
  labels: [billing, technical, account]
  instructions: |
    Classify the support ticket into one of: {{{{ labels | join(", ") }}}}. Answer with the label only.
  input: "Ticket: {{{{ text }}}}"
data:
  test: test.csv
  train: train.csv
backends:
{backends}"#
    );
    let path = ws.write("suite.yaml", &suite);
    (ws, path)
}

fn anthropic_backend(id: &str, base_url: &str, key_env: &str, extra: &str) -> String {
    format!(
        "  - id: {id}\n    provider: anthropic\n    model: claude-haiku-4-5\n    base_url: {base_url}\n    api_key_env: {key_env}\n{extra}"
    )
}

/// A fresh environment variable holding `key`, for `api_key_env`.
fn key_var(key: &str) -> String {
    let name = unique("EVALGATE_ANTHROPIC_KEY");
    // The name is unique to this test, so no other test reads or writes it.
    std::env::set_var(&name, key);
    name
}

/// The item and gold label of a request, from its last user turn.
fn item_of(
    req: &RecordedRequest,
    items: &HashMap<String, (String, String)>,
) -> Option<(String, String)> {
    items.get(&req.last_user_text()?).cloned()
}

fn records_by_id(run: &Path, backend_id: &str) -> HashMap<String, Value> {
    records(run)
        .into_iter()
        .filter(|r| r["backend"] == backend_id)
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classification_run_scores_what_the_server_answered_in_the_messages_wire_shape() {
    let key = "sk-ant-test-classification";
    let items = by_prompt();
    let answers = items.clone();
    let srv = server::start(move |req, _| {
        if req.header("x-api-key") != Some("sk-ant-test-classification") {
            return server::error(401, "authentication_error", "invalid x-api-key");
        }
        let model = req.model().unwrap_or_default().to_string();
        match item_of(req, &answers) {
            // te-05 and te-06 get a wrong label: 4 of 6 are right.
            Some((id, _)) if id == "te-05" || id == "te-06" => {
                Message::text("technical").reply(&model)
            }
            Some((_, gold)) => Message::text(gold).reply(&model),
            None => server::error(400, "invalid_request_error", "unknown ticket"),
        }
    })
    .await;
    let var = key_var(key);
    let backends = [
        anthropic_backend("zero", &srv.base_url(), &var, ""),
        anthropic_backend(
            "few",
            &srv.base_url(),
            &var,
            "    temperature: 0.5\n    max_tokens: 64\n    strategy: { few-shot: { k: 3, select: stratified, seed: 7 } }\n",
        ),
    ]
    .concat();
    let (ws, suite) = ticket_suite(&backends);
    let run = run_library(&suite, &ws.run_dir("run")).await;

    let results = results(&run);
    for id in ["zero", "few"] {
        let b = backend(&results, id);
        assert_eq!(b["provider"], "anthropic");
        assert_eq!((u(&b["answered"]), u(&b["correct"]), u(&b["errors"])), (6, 4, 0), "{id}");
        assert_close(f(&b["accuracy"]["estimate"]), 4.0 / 6.0, "accuracy");
        let (lo, hi) = wilson(4, 6);
        assert_close(f(&b["accuracy"]["low"]), lo, "accuracy low");
        assert_close(f(&b["accuracy"]["high"]), hi, "accuracy high");
        for r in records_by_id(&run, id).values() {
            assert_eq!(r["finish_reason"], "end_turn", "{r}");
        }
    }

    let requests = srv.requests();
    assert_eq!(requests.len(), 12, "one request per item and backend");
    let train: HashMap<String, String> =
        train_rows().into_iter().map(|r| (format!("Ticket: {}", r.text), r.label)).collect();
    let mut few_shot = 0;
    for req in &requests {
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/v1/messages"));
        assert_eq!(req.header("x-api-key"), Some(key));
        assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("authorization"), None, "the key goes in x-api-key only");
        let body = req.json.as_ref().unwrap();
        assert_eq!(body["model"], "claude-haiku-4-5");
        assert_eq!(server::system(req).as_deref().map(str::trim), Some(INSTRUCTIONS));
        let messages = req.messages();
        let roles: Vec<&str> = messages.iter().map(|(r, _)| r.as_str()).collect();
        assert!(
            roles.iter().enumerate().all(|(i, r)| *r == ["user", "assistant"][i % 2])
                && roles.last() == Some(&"user"),
            "turns alternate from user to user: {roles:?}"
        );
        if messages.len() == 1 {
            // Zero-shot: the default classification allowance, room for "technical" four times
            // over (4 × (⌈9 / 3⌉ + 2) = 20), and temperature 0.
            assert_eq!(
                (body["max_tokens"].as_u64(), body["temperature"].as_f64()),
                (Some(20), Some(0.0))
            );
        } else {
            few_shot += 1;
            assert_eq!(messages.len(), 7, "three demonstrations, then the item");
            assert_eq!(
                (body["max_tokens"].as_u64(), body["temperature"].as_f64()),
                (Some(64), Some(0.5))
            );
            for pair in messages[..6].chunks(2) {
                assert_eq!(train.get(&pair[0].1), Some(&pair[1].1), "a demo answers its gold");
            }
        }
        assert!(body.get("tools").is_none(), "classification sends no tool");
    }
    assert_eq!(few_shot, 6);
}

/// Receipts with (company, total, date) gold; the fourth reply's total is off.
const RECEIPTS: [(&str, &str, f64, &str); 4] = [
    ("R-1", "ACME Trading", 12.5, "2024-03-14"),
    ("R-2", "Kedai Runcit Ali", 8.9, "2024-03-15"),
    ("R-3", "Bookshop Pte Ltd", 41.0, "2024-04-01"),
    ("R-4", "Cafe Nine", 23.4, "2024-04-02"),
];

fn receipt_of(req: &RecordedRequest) -> Option<usize> {
    let text = req.last_user_text()?;
    RECEIPTS.iter().position(|(id, ..)| text.contains(&format!("Receipt {id}:")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extraction_asks_for_a_forced_tool_call_and_scores_its_input() {
    let srv = server::start(|req, _| {
        let model = req.model().unwrap_or_default().to_string();
        let Some(i) = receipt_of(req) else {
            return server::error(400, "invalid_request_error", "unknown receipt");
        };
        let (_, company, total, date) = RECEIPTS[i];
        let total = if i == 3 { total + 1.0 } else { total };
        let object = json!({ "company": company, "total": total, "date": date });
        if req.json.as_ref().is_some_and(|b| b.get("tools").is_some()) {
            Message::tool_use(object).reply(&model)
        } else {
            // Without the tool the model answers in prose around a fence.
            Message::text(format!("Here you are:\n```json\n{object}\n```")).reply(&model)
        }
    })
    .await;
    let var = key_var("sk-ant-test-extraction");
    let ws = Workspace::new();
    let data: String = RECEIPTS
        .iter()
        .map(|(id, company, total, date)| {
            json!({
                "id": id,
                "text": format!("Receipt {id}: {company}, total RM {total:.2}, dated {date}"),
                "expected": { "company": company, "total": total, "date": date },
            })
            .to_string()
                + "\n"
        })
        .collect();
    ws.write("test.jsonl", &data);
    let base = srv.base_url();
    let suite = ws.write(
        "suite.yaml",
        &format!(
            r#"schema_version: 1
name: anthropic-receipts
task:
  kind: extraction
  fields:
    company: {{ type: string, match: normalized }}
    total: {{ type: number, tolerance: 0.01 }}
    date: {{ type: date }}
  instructions: Extract the receipt fields.
  input: "{{{{ text }}}}"
data:
  test: test.jsonl
backends:
  - {{ id: tool, provider: anthropic, model: claude-haiku-4-5, base_url: {base}, api_key_env: {var} }}
  - {{ id: plain, provider: anthropic, model: claude-haiku-4-5, base_url: {base}, api_key_env: {var}, structured_output: off }}
"#
        ),
    );
    let run = run_library(&suite, &ws.run_dir("run")).await;
    let results = results(&run);
    for id in ["tool", "plain"] {
        let b = backend(&results, id);
        assert_eq!((u(&b["answered"]), u(&b["correct"]), u(&b["invalid"])), (4, 3, 0), "{id}");
        assert_close(f(&b["exact_match"]["estimate"]), 0.75, "exact match");
        assert_eq!(u(&b["fields"]["total"]["correct"]), 3, "{id}");
        assert_eq!(u(&b["fields"]["company"]["correct"]), 4, "{id}");
        assert_eq!(u(&b["fields"]["date"]["correct"]), 4, "{id}");
    }
    assert_eq!(backend(&results, "tool")["structured_output_used"], "tool");
    assert!(backend(&results, "plain").get("structured_output_used").is_none());
    // The tool's input is the reply, as JSON text.
    let tool_records = records_by_id(&run, "tool");
    let reply: Value =
        serde_json::from_str(tool_records["R-1"]["reply"].as_str().unwrap()).unwrap();
    assert_eq!(reply, json!({ "company": "ACME Trading", "total": 12.5, "date": "2024-03-14" }));
    assert_eq!(tool_records["R-1"]["finish_reason"], "tool_use");

    let requests = srv.requests();
    assert_eq!(requests.len(), 8);
    for req in &requests {
        let body = req.json.as_ref().unwrap();
        // Extraction's own default: the API requires max_tokens.
        assert_eq!(body["max_tokens"], 4096);
        match body.get("tools") {
            Some(tools) => {
                assert_eq!(tools[0]["name"], "extraction");
                let schema = &tools[0]["input_schema"];
                assert_eq!(schema["type"], "object");
                assert_eq!(schema["required"], json!(["company", "total", "date"]));
                assert_eq!(schema["properties"]["total"]["type"], json!(["number", "null"]));
                assert_eq!(body["tool_choice"], json!({ "type": "tool", "name": "extraction" }));
            }
            None => assert!(body.get("tool_choice").is_none()),
        }
    }
    assert_eq!(
        requests.iter().filter(|r| r.json.as_ref().unwrap().get("tools").is_some()).count(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_reads_and_writes_are_recorded_and_priced_at_the_built_in_prices() {
    // The first ticket writes the prompt cache; the others read it.
    let items = by_prompt();
    let srv = server::start(move |req, _| {
        let model = req.model().unwrap_or_default().to_string();
        let Some((id, gold)) = item_of(req, &items) else {
            return server::error(400, "invalid_request_error", "unknown ticket");
        };
        let (write, read) = if id == "te-01" { (1000, 0) } else { (0, 1000) };
        let usage = Usage {
            input_tokens: 100,
            output_tokens: 5,
            cache_creation_input_tokens: write,
            cache_read_input_tokens: read,
        };
        Message::text(gold).with_usage(Some(usage)).reply(&model)
    })
    .await;
    let var = key_var("sk-ant-test-cost");
    let backends = format!(
        "  - id: sonnet\n    provider: anthropic\n    model: claude-sonnet-4-6\n    base_url: {}\n    api_key_env: {var}\n",
        srv.base_url()
    );
    let (ws, suite) = ticket_suite(&backends);
    let run = run_library(&suite, &ws.run_dir("run")).await;

    let by_id = records_by_id(&run, "sonnet");
    assert_eq!(
        by_id["te-01"]["tokens"],
        json!({ "input": 1100, "output": 5, "cached_input": 0, "estimated": false, "cache_write_input": 1000 })
    );
    assert_eq!(
        by_id["te-02"]["tokens"],
        json!({ "input": 1100, "output": 5, "cached_input": 1000, "estimated": false })
    );
    // Claude Sonnet 4.6: $3 input, $15 output, $0.30 cache read, $3.75 cache write per million.
    // te-01: 100 × 3 + 1,000 × 3.75 + 5 × 15 = 4,125 micro-dollars; each of the five others:
    // 100 × 3 + 1,000 × 0.30 + 5 × 15 = 675. Total 4,125 + 5 × 675 = 7,500: $0.0075.
    let results = results(&run);
    let cost = &backend(&results, "sonnet")["cost"];
    assert_eq!(cost["price_origin"], "built-in");
    assert_eq!(cost["pricing"]["cache_write_per_mtok"], 3.75);
    assert!((f(&cost["total_usd"]) - 0.0075).abs() < 1e-12, "{cost}");
    assert!((f(&cost["per_request_usd"]) - 0.00125).abs() < 1e-12, "{cost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_and_rate_limits_are_retried_and_a_bad_request_is_quoted_in_the_report() {
    let items = by_prompt();
    let srv = server::start(move |req, attempt| {
        let model = req.model().unwrap_or_default().to_string();
        let Some((id, gold)) = item_of(req, &items) else {
            return server::error(400, "invalid_request_error", "unknown ticket");
        };
        match (id.as_str(), attempt) {
            ("te-01", 1) => server::rate_limited(&[("retry-after", "0.05")]),
            ("te-02", 1 | 2) => server::overloaded(),
            ("te-03", _) => server::error(
                400,
                "invalid_request_error",
                "prompt is too long: 212000 tokens > 200000 maximum",
            ),
            _ => Message::text(gold).reply(&model),
        }
    })
    .await;
    let var = key_var("sk-ant-test-retries");
    let (ws, suite) = ticket_suite(&anthropic_backend("claude", &srv.base_url(), &var, ""));
    let run = run_library(&suite, &ws.run_dir("run")).await;

    let by_id = records_by_id(&run, "claude");
    let attempts = |id: &str| u(&by_id[id]["attempts"]);
    assert_eq!((attempts("te-01"), attempts("te-02"), attempts("te-03")), (2, 3, 1));
    assert_eq!(by_id["te-01"]["correct"], true);
    assert_eq!(by_id["te-02"]["correct"], true);
    assert_eq!(by_id["te-03"]["error"]["status"], 400);
    let results = results(&run);
    let b = backend(&results, "claude");
    assert_eq!((u(&b["answered"]), u(&b["errors"])), (5, 1));
    assert!(b.get("stopped").is_none(), "a bad request does not end the backend");
    let message = "prompt is too long: 212000 tokens > 200000 maximum";
    assert_eq!(b["error_messages"][0]["message"].as_str().map(|m| m.contains(message)), Some(true));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    // Quoted as the server wrote it (with `>` escaped for the Markdown).
    assert!(report.contains("HTTP 400: prompt is too long: 212000 tokens"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_rate_limit_holds_the_next_request_until_its_reset() {
    // In seconds, so the reset is 1 to 2 s away when it is read.
    let reset_in_2s = || evalgate::time::rfc3339(SystemTime::now() + Duration::from_secs(2));
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let items = by_prompt();
    let srv = server::start(move |req, _| {
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push(Instant::now());
            seen.len()
        };
        let model = req.model().unwrap_or_default().to_string();
        let gold = item_of(req, &items).map(|(_, g)| g).unwrap_or_default();
        match n {
            // Answered, but the requests of this minute are spent.
            1 => Message::text(gold)
                .with_header("anthropic-ratelimit-requests-remaining", "0")
                .with_header("anthropic-ratelimit-requests-reset", &reset_in_2s())
                .reply(&model),
            // A 429 with no Retry-After: the spent limit's reset says how long to wait.
            2 => {
                let reset = reset_in_2s();
                server::rate_limited(&[
                    ("anthropic-ratelimit-tokens-remaining", "0"),
                    ("anthropic-ratelimit-tokens-reset", &reset),
                ])
            }
            _ => Message::text(gold).reply(&model),
        }
    })
    .await;
    let var = key_var("sk-ant-test-limits");
    let (ws, suite) =
        ticket_suite(&anthropic_backend("claude", &srv.base_url(), &var, "    concurrency: 1\n"));
    // `--limit 3`'s worth of items, through the library with its fast retry policy (at most
    // 200 ms between attempts): only the backend's pause can make the waits below.
    std::fs::write(
        &suite,
        std::fs::read_to_string(&suite).unwrap().replace("test.csv", "test3.csv"),
    )
    .unwrap();
    ws.write("test3.csv", &rows_csv(&test_rows()[..3]));
    let run = run_library(&suite, &ws.run_dir("run")).await;

    let results = results(&run);
    let b = backend(&results, "claude");
    assert_eq!((u(&b["answered"]), u(&b["correct"])), (3, 3));
    let t = arrivals.lock().unwrap().clone();
    assert_eq!(t.len(), 4, "three items and one retry");
    for (gap, why) in [(t[1] - t[0], "after a spent limit"), (t[2] - t[1], "after a 429")] {
        assert!(gap >= Duration::from_millis(900), "{why}: the next request came {gap:?} later");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_stops_count_as_truncated_and_thinking_stays_out_of_the_answer() {
    let items = by_prompt();
    let srv = server::start(move |req, _| {
        let model = req.model().unwrap_or_default().to_string();
        let (id, gold) = item_of(req, &items).unwrap_or_default();
        match id.as_str() {
            "te-01" => Message::text(gold)
                .with_thinking("An invoice, though maybe technical? No: billing.")
                .reply(&model),
            "te-02" => Message::text(gold).with_redacted_thinking().reply(&model),
            "te-03" => Message::text("Based on the").with_stop_reason("max_tokens").reply(&model),
            "te-04" => Message::text("")
                .with_thinking("Let me think about every label in turn")
                .with_stop_reason("max_tokens")
                .reply(&model),
            _ => Message::text(gold).reply(&model),
        }
    })
    .await;
    let var = key_var("sk-ant-test-thinking");
    let (ws, suite) = ticket_suite(&anthropic_backend("claude", &srv.base_url(), &var, ""));
    let run = run_library(&suite, &ws.run_dir("run")).await;

    let results = results(&run);
    let b = backend(&results, "claude");
    assert_eq!((u(&b["answered"]), u(&b["correct"]), u(&b["invalid"])), (6, 4, 2));
    assert_eq!(u(&b["truncated"]), 2, "stop_reason max_tokens counts as truncated");
    let by_id = records_by_id(&run, "claude");
    assert_eq!(by_id["te-01"]["reply"], "billing");
    assert_eq!(by_id["te-01"]["answer"], "billing");
    assert!(by_id["te-01"]["reasoning"].as_str().unwrap().contains("maybe technical"));
    assert_eq!(by_id["te-02"]["reasoning"], "[redacted thinking]");
    assert_eq!(by_id["te-03"]["finish_reason"], "max_tokens");
    assert_eq!(by_id["te-04"]["reply"], "", "thinking alone is no answer");
    assert!(by_id["te-05"].get("reasoning").is_none());
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("2 of 6 answered replies ended at `max_tokens`"), "{report}");
}

#[test]
fn a_wrong_key_stops_the_backend_the_rest_is_not_sent_and_the_run_exits_2() {
    let srv = server::start_in_thread(|_, _| {
        server::error(401, "authentication_error", "invalid x-api-key")
    });
    let var = key_var("sk-ant-wrong");
    let (ws, suite) =
        ticket_suite(&anthropic_backend("claude", &srv.base_url(), &var, "    concurrency: 1\n"));
    let run = ws.run_dir("run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).arg("--no-cache"));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("backend `claude` stopped: HTTP 401: invalid x-api-key"),
        "{}",
        out.stderr
    );
    assert_eq!(srv.request_count(), 1, "no retry, no further request");
    let by_id = records_by_id(&run, "claude");
    assert_eq!(by_id.len(), 6, "every item is recorded");
    let kinds: Vec<&str> = by_id.values().map(|r| r["error"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "http").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "not_sent").count(), 5, "{kinds:?}");
    let results = results(&run);
    let b = backend(&results, "claude");
    assert!(b["stopped"].as_str().unwrap().contains("401"), "{b}");
}

#[test]
fn the_api_key_goes_only_into_the_x_api_key_header() {
    let key = "sk-ant-api03-EVALGATE-CANARY-7f3a9c1e";
    let items = by_prompt();
    let srv = server::start_in_thread(move |req, _| {
        let model = req.model().unwrap_or_default().to_string();
        if req.header("x-api-key") != Some("sk-ant-api03-EVALGATE-CANARY-7f3a9c1e") {
            return server::error(401, "authentication_error", "invalid x-api-key");
        }
        let gold = item_of(req, &items).map(|(_, g)| g).unwrap_or_default();
        let usage = Usage {
            input_tokens: 40,
            output_tokens: 1,
            cache_creation_input_tokens: 7,
            cache_read_input_tokens: 0,
        };
        Message::text(gold).with_usage(Some(usage)).reply(&model)
    });
    let var = unique("EVALGATE_ANTHROPIC_CANARY");
    let (ws, suite) = ticket_suite(&anthropic_backend("claude", &srv.base_url(), &var, ""));
    let cache = ws.path().join("cache/responses.sqlite");
    let run_once = |name: &str| {
        let run = ws.run_dir(name);
        // A trailing newline, as `export KEY=$(cat file)` leaves it: trimmed, never sent.
        let out = output(
            evalgate(ws.path())
                .env(&var, format!("{key}\n"))
                .arg("run")
                .arg(&suite)
                .arg("--out")
                .arg(&run)
                .arg("--cache")
                .arg(&cache),
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        for text in [&out.stdout, &out.stderr] {
            assert!(!text.contains(key) && !text.contains("EVALGATE-CANARY"), "{text}");
        }
        run
    };
    let first = run_once("first");
    assert_eq!(srv.request_count(), 6);
    assert!(srv.requests().iter().all(|r| r.header("x-api-key") == Some(key)));
    // The second run is answered from the cache, cache-write tokens and all.
    let second = run_once("second");
    assert_eq!(srv.request_count(), 6, "nothing is sent again");
    for r in records_by_id(&second, "claude").values() {
        assert_eq!(r["cached"], true);
        assert_eq!(r["tokens"]["cache_write_input"], 7, "{r}");
        assert_eq!(r["tokens"]["input"], 47, "{r}");
    }
    let mut files = files_under(&first);
    files.extend(files_under(&second));
    files.extend(files_under(cache.parent().unwrap()));
    assert!(files.iter().any(|p| p.ends_with("responses.sqlite")));
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let found = bytes.windows(key.len()).any(|w| w == key.as_bytes())
            || bytes.windows(15).any(|w| w == b"EVALGATE-CANARY");
        assert!(!found, "the key is in {}", file.display());
    }
}

#[test]
fn anthropic_suite_problems_name_their_line_and_key() {
    let ws = Workspace::new();
    ws.write("train.csv", &rows_csv(&train_rows()));
    ws.write("test.csv", &rows_csv(&test_rows()));
    let suite = r#"schema_version: 1
name: anthropic-problems
task:
  kind: classification
  labels: [billing, technical, account]
  instructions: Classify the ticket.
  input: "Ticket: {{ text }}"
data:
  test: test.csv
  train: train.csv
backends:
  - id: no-model
    provider: anthropic
  - id: hot
    provider: anthropic
    model: claude-haiku-4-5
    temperature: 1.5
  - id: bare-host
    provider: anthropic
    model: claude-haiku-4-5
    base_url: https://proxy.example.com
"#;
    ws.write("suite.yaml", suite);
    let out = output(evalgate(ws.path()).arg("validate").arg("suite.yaml"));
    assert_problem(
        &out,
        &format!("suite.yaml:{}", line_of(suite, "id: no-model")),
        &["an anthropic backend needs a `model`", "claude-haiku-4-5"],
    );
    for (needle, message) in [
        ("temperature: 1.5", "temperature must be between 0 and 1"),
        ("base_url: https://proxy", "ends with the API version"),
    ] {
        let at = format!("suite.yaml:{}", line_of(suite, needle));
        assert!(
            out.stderr.contains(&at) && out.stderr.contains(message),
            "{at} {message}:\n{}",
            out.stderr
        );
    }

    // Extraction: `json_object` has no Anthropic form.
    let extraction = r#"schema_version: 1
name: anthropic-json-object
task:
  kind: extraction
  fields:
    total: { type: number }
  input: "{{ text }}"
data:
  test:
    - { id: r1, text: "Total 9.90", expected: { total: 9.9 } }
backends:
  - id: claude
    provider: anthropic
    model: claude-haiku-4-5
    structured_output: json_object
"#;
    ws.write("extraction.yaml", extraction);
    let out = output(evalgate(ws.path()).arg("validate").arg("extraction.yaml"));
    assert_problem(
        &out,
        &format!("extraction.yaml:{}", line_of(extraction, "structured_output")),
        &["json_object", "structured_output", "tool call"],
    );

    // A valid backend for the Anthropic API reads ANTHROPIC_API_KEY by default, and is priced.
    let valid = extraction.replace("    structured_output: json_object\n", "");
    ws.write("valid.yaml", &valid);
    let out = output(evalgate(ws.path()).arg("validate").arg("valid.yaml"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("environment variable ANTHROPIC_API_KEY is not set"), "{said}");
}
