//! Servers as they really are: dead ports and wrong keys end a backend fast, structured output
//! negotiated per server, adaptive concurrency under 429 storms, reasoning replies and replies
//! cut by the token limit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::openai_server::{llama_cpp_python_refusal, RecordedRequest, Reply, TestServer};
use crate::support::*;

const LABELS: [&str; 3] = ["billing", "technical", "other"];

fn gold(i: usize) -> &'static str {
    LABELS[i % 3]
}

/// A classification suite of `n` items (`it-N`, text `item N`) with the given backends.
fn workspace(n: usize, backends: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let rows: Vec<Row> =
        (0..n).map(|i| row(&format!("it-{i}"), &format!("item {i}"), gold(i))).collect();
    ws.write("test.csv", &rows_csv(&rows));
    let suite = format!(
        "schema_version: 1\nname: real-servers\ntask:\n  kind: classification\n  labels: [billing, technical, other]\n  instructions: \"Route it.\"\n  input: \"{{{{ text }}}}\"\ndata:\n  test: test.csv\nbackends:\n{backends}"
    );
    let path = ws.write("suite.yaml", &suite);
    (ws, path)
}

fn backend_yaml(id: &str, base: &str, extra: &str) -> String {
    format!("  - id: {id}\n    provider: openai\n    base_url: {base}\n    model: m-{id}\n{extra}")
}

/// The number in `item N`.
fn item_number(req: &RecordedRequest) -> usize {
    let text = req.last_user_text().unwrap_or_default();
    text.trim_start_matches("item ").trim().parse().unwrap_or(0)
}

fn run(ws: &Workspace, suite: &Path, out: &Path, extra: &[&str]) -> Outcome {
    output(
        evalgate(ws.path())
            .arg("run")
            .arg(suite)
            .arg("--out")
            .arg(out)
            .arg("--no-cache")
            .args(extra),
    )
}

/// A loopback port with nothing listening on it.
fn dead_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/v1")
}

fn first_message(b: &Value) -> String {
    b["error_messages"][0]["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_dead_port_and_a_wrong_key_end_their_backends_fast_and_the_run_exits_2() {
    let good = TestServer::start_in_thread(|req, _| Reply::chat(gold(item_number(req))));
    let key_fixed = Arc::new(AtomicBool::new(false));
    let fixed = key_fixed.clone();
    let unauthorized = TestServer::start_in_thread(move |req, _| {
        if fixed.load(Ordering::SeqCst) {
            return Reply::chat(gold(item_number(req)));
        }
        Reply::openai_error(
            401,
            "Incorrect API key provided: sk-te***",
            "invalid_request_error",
            None,
        )
    });
    let n = 200;
    let backends = [
        backend_yaml("good", &good.base_url(), "    concurrency: 4\n"),
        backend_yaml("dead", &dead_port(), "    concurrency: 4\n"),
        backend_yaml("nokey", &unauthorized.base_url(), "    concurrency: 4\n"),
    ]
    .concat();
    let (ws, suite) = workspace(n, &backends);
    let out_dir = ws.run_dir("run");
    let started = Instant::now();
    let out = run(&ws, &suite, &out_dir, &[]);
    let took = started.elapsed();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        out.stderr.contains("backend `nokey` stopped: HTTP 401: Incorrect API key"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("backend `dead` stopped"), "{}", out.stderr);
    // No retries after the cause is known: at most the requests already in flight.
    assert!(unauthorized.request_count() <= 4, "{}", unauthorized.request_count());

    let results = results(&out_dir);
    let good_b = backend(&results, "good");
    assert_eq!(u(&good_b["answered"]), n as u64);
    assert!(good_b.get("error_messages").is_none() && good_b.get("stopped").is_none());
    for (id, cause) in [("dead", "Connection refused"), ("nokey", "HTTP 401: Incorrect API key")] {
        let b = backend(&results, id);
        assert_eq!(u(&b["errors"]) + u(&b["answered"]), n as u64, "{b}");
        assert!(b["stopped"].as_str().unwrap().contains(cause), "{b}");
        assert!(u(&b["error_kinds"]["not_sent"]) > 0, "{b}");
        assert!(first_message(b).contains(cause), "{b}");
        assert!(b["error_messages"].as_array().unwrap().len() <= 5);
    }
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("stopped at once on HTTP 401: Incorrect API key"), "{report}");
    let meta = read_json(&out_dir.join("run.json"));
    assert!(meta["backends"][2]["stopped"].as_str().unwrap().contains("401"));

    // Once the cause is fixed, --resume sends what was not sent.
    key_fixed.store(true, Ordering::SeqCst);
    let resumed = output(
        evalgate(ws.path()).args(["run", "--no-cache", "--resume"]).arg(&out_dir).arg(&suite),
    );
    let results = crate::support::results(&out_dir);
    assert_eq!(u(&backend(&results, "nokey")["answered"]), n as u64, "{}", resumed.stderr);
}

#[test]
fn the_same_validation_error_on_the_first_requests_ends_the_backend() {
    let server = TestServer::start_in_thread(|_, _| {
        Reply::vllm_error(400, "This model's maximum context length is 10 tokens")
    });
    let (ws, suite) =
        workspace(60, &backend_yaml("small", &server.base_url(), "    concurrency: 1\n"));
    let out_dir = ws.run_dir("run");
    let out = run(&ws, &suite, &out_dir, &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(server.request_count(), 3, "stopped after {} requests", 3);
    let results = results(&out_dir);
    let b = backend(&results, "small");
    assert_eq!(u(&b["errors"]), 60);
    assert_eq!(u(&b["error_kinds"]["not_sent"]), 57);
    assert_eq!(u(&b["error_kinds"]["http"]), 3);
    assert!(first_message(b).contains("not sent"), "{b}");
    assert_eq!(b["error_messages"][0]["count"], 57);
    assert_eq!(
        b["error_messages"][1]["message"],
        "HTTP 400: This model's maximum context length is 10 tokens"
    );
    assert!(b["stopped"].as_str().unwrap().contains("the same on the first 3 requests"));
}

/// An extraction suite of `n` receipts (`r-N`, text `receipt N`, company `Shop N`, total `N`).
fn extraction_workspace(n: usize, backends: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let rows: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\": \"r-{i}\", \"text\": \"receipt {i}\", \"expected\": {{\"company\": \"Shop {i}\", \"total\": {i}}}}}\n"
            )
        })
        .collect();
    ws.write("test.jsonl", &rows);
    let suite = format!(
        "schema_version: 1\nname: negotiation\ntask:\n  kind: extraction\n  fields:\n    company: {{ type: string, match: normalized }}\n    total: {{ type: number, tolerance: 0.01 }}\n  instructions: Extract the fields.\n  input: \"{{{{ text }}}}\"\ndata:\n  test: test.jsonl\nbackends:\n{backends}"
    );
    let path = ws.write("suite.yaml", &suite);
    (ws, path)
}

fn receipt_reply(req: &RecordedRequest) -> Reply {
    let text = req.last_user_text().unwrap_or_default();
    let n: usize = text.trim_start_matches("receipt ").trim().parse().unwrap_or(0);
    Reply::chat(format!("{{\"company\": \"Shop {n}\", \"total\": {n}}}"))
}

#[test]
fn auto_structured_output_falls_back_per_server_and_says_which_form_it_used() {
    let server = TestServer::start_in_thread(|req, _| match req.model() {
        // llama-cpp-python: json_schema is a 500, json_object with a schema is answered.
        Some("m-llamapy") => llama_cpp_python_refusal(req).unwrap_or_else(|| receipt_reply(req)),
        // A server that takes no response_format at all.
        Some("m-plain") if req.response_format_type().is_some() => {
            Reply::vllm_error(400, "response_format is not supported by this model")
        }
        _ => receipt_reply(req),
    });
    let n = 40;
    let backends = [
        backend_yaml(
            "llamapy",
            &server.base_url(),
            "    concurrency: 4\n    structured_output: auto\n",
        ),
        backend_yaml(
            "plain",
            &server.base_url(),
            "    concurrency: 4\n    structured_output: auto\n",
        ),
        backend_yaml(
            "openai",
            &server.base_url(),
            "    concurrency: 4\n    structured_output: auto\n",
        ),
        backend_yaml("object", &server.base_url(), "    structured_output: json_object\n"),
    ]
    .concat();
    let (ws, suite) = extraction_workspace(n, &backends);
    let out_dir = ws.run_dir("run");
    let out = run(&ws, &suite, &out_dir, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let results = results(&out_dir);
    let meta = read_json(&out_dir.join("run.json"));
    for (i, (id, used)) in [
        ("llamapy", "json_object"),
        ("plain", "off"),
        ("openai", "json_schema"),
        ("object", "json_object"),
    ]
    .into_iter()
    .enumerate()
    {
        let b = backend(&results, id);
        assert_eq!(
            (u(&b["answered"]), u(&b["correct"]), u(&b["errors"])),
            (n as u64, n as u64, 0),
            "{b}"
        );
        assert_eq!(b["structured_output_used"], used, "{b}");
        assert_eq!(meta["backends"][i]["structured_output_used"], used);
    }
    let requests = server.requests();
    let llamapy: Vec<&RecordedRequest> =
        requests.iter().filter(|r| r.model() == Some("m-llamapy")).collect();
    // At most the requests in flight were refused before the fall back was kept.
    let refused =
        llamapy.iter().filter(|r| r.response_format_type() == Some("json_schema")).count();
    assert!((1..=4).contains(&refused), "{refused}");
    assert_eq!(llamapy.len(), n + refused);
    let object = llamapy.iter().find(|r| r.response_format_type() == Some("json_object")).unwrap();
    let format = &object.json.as_ref().unwrap()["response_format"];
    assert!(format["schema"]["properties"]["total"].is_object(), "{format}");
}

/// A 30% storm of 429s (`Retry-After: 0`) over 1,000 items with default settings: the backend's
/// in-flight limit is cut and grows back, and every item ends answered, whatever the seed.
#[test]
fn a_429_storm_over_1000_items_ends_with_every_item_answered() {
    use rand::{Rng, SeedableRng};
    for seed in [1u64, 2, 3] {
        let rng = std::sync::Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = refused.clone();
        // A storm, not an outage: a request is refused at most three times in a row.
        let server = TestServer::start_in_thread(move |req, attempt| {
            if attempt <= 3 && rng.lock().unwrap().random_bool(0.3) {
                counter.fetch_add(1, Ordering::SeqCst);
                return Reply::rate_limited("0");
            }
            Reply::chat(gold(item_number(req)))
        });
        let n = 1000;
        let (ws, suite) = workspace(n, &backend_yaml("api", &server.base_url(), ""));
        let out_dir = ws.run_dir("run");
        let out = run(&ws, &suite, &out_dir, &[]);
        assert_eq!(out.code, Some(0), "seed {seed}: {}", out.stderr);
        let results = results(&out_dir);
        let b = backend(&results, "api");
        assert_eq!(
            (u(&b["answered"]), u(&b["correct"]), u(&b["errors"])),
            (n as u64, n as u64, 0),
            "seed {seed}: {b}"
        );
        let storms = refused.load(Ordering::SeqCst);
        assert!(storms > n / 5, "seed {seed}: the storm hit {storms} requests");
        assert_eq!(server.request_count(), n + storms, "seed {seed}");
    }
}

#[test]
fn think_blocks_and_reasoning_fields_are_kept_apart_and_score_as_their_answers() {
    let server = TestServer::start_in_thread(|req, _| {
        let n = item_number(req);
        let label = gold(n);
        match req.model() {
            Some("m-think") => Reply::chat(format!(
                "<think>\nThe user asks about item {n}. Maybe other? No.\n</think>\n\n{label}"
            )),
            _ => Reply::Raw {
                status: 200,
                content_type: "application/json".into(),
                body: serde_json::json!({
                    "choices": [{ "index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": label,
                        "reasoning_content": format!("Item {n}: it is {label}.") } }],
                    "usage": { "prompt_tokens": 10, "completion_tokens": 30,
                        "completion_tokens_details": { "reasoning_tokens": 28 } }
                })
                .to_string()
                .into_bytes(),
            },
        }
    });
    let n = 30;
    let backends = [
        backend_yaml("think", &server.base_url(), ""),
        backend_yaml("field", &server.base_url(), ""),
    ]
    .concat();
    let (ws, suite) = workspace(n, &backends);
    let out_dir = ws.run_dir("run");
    let out = run(&ws, &suite, &out_dir, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let results = results(&out_dir);
    for id in ["think", "field"] {
        let b = backend(&results, id);
        assert_eq!(
            (u(&b["answered"]), u(&b["correct"]), u(&b["invalid"])),
            (n as u64, n as u64, 0)
        );
    }
    for r in records(&out_dir) {
        assert_eq!(r["reply"], r["gold"], "{r}");
        assert!(
            r["reasoning"].as_str().unwrap().contains("item")
                || r["reasoning"].as_str().unwrap().contains("Item"),
            "{r}"
        );
        if r["backend"] == "field" {
            assert_eq!(r["tokens"]["reasoning"], 28, "{r}");
            assert_eq!(r["tokens"]["output"], 30, "reasoning tokens are a part of output: {r}");
        } else {
            assert!(r["tokens"].get("reasoning").is_none(), "{r}");
        }
    }
}

#[test]
fn a_rambling_server_is_cut_at_the_default_limit_and_the_report_counts_the_cut_replies() {
    // Rambles for as many tokens (words) as it may, then stops with `finish_reason: length`.
    let server = TestServer::start_in_thread(|req, _| {
        let limit = req.json.as_ref().and_then(|j| j["max_tokens"].as_u64()).unwrap_or(4096);
        let words: Vec<&str> = std::iter::repeat_n("well", limit as usize).collect();
        Reply::chat(words.join(" ")).with_finish_reason(Some("length"))
    });
    let n = 12;
    let (ws, suite) = workspace(n, &backend_yaml("chatty", &server.base_url(), ""));
    let out_dir = ws.run_dir("run");
    let out = run(&ws, &suite, &out_dir, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // `technical` is 9 characters: (3 + 2) × 4 = 20 tokens.
    for r in server.requests() {
        assert_eq!(r.json.as_ref().unwrap()["max_tokens"], 20);
    }
    let results = results(&out_dir);
    let b = backend(&results, "chatty");
    assert_eq!((u(&b["truncated"]), u(&b["invalid"])), (n as u64, n as u64), "{b}");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("## Replies cut by the token limit"), "{report}");
    assert!(
        report.contains("`chatty`: 12 of 12 answered replies ended at `max_tokens`"),
        "{report}"
    );
}
