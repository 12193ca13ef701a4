//! Batch mode against the in-process Files + Batches server (`support::batch_server`): scores
//! equal to the server's known answers, the cache consulted before a batch is made, a run
//! stopped or killed after its batch was created and then resumed (one batch on the server, every
//! item answered once), expired lines sent again in a smaller batch, per-line errors, a batch
//! that fails as a whole, the batch price, and the key kept out of every file.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::anthropic_server::{self, Message, Usage};
use crate::support::batch_server::{BatchServer, LineReply};
use crate::support::*;

const LABELS: [&str; 2] = ["spam", "ham"];

fn gold(i: usize) -> &'static str {
    LABELS[i % 2]
}

/// The item number of a batch line's body (`Message: item N` in its last user turn).
fn item_of(body: &Value) -> usize {
    let messages = body["messages"].as_array().expect("messages");
    let text = messages.iter().rev().find(|m| m["role"] == "user").expect("a user turn")["content"]
        .as_str()
        .expect("text content")
        .to_string();
    let rest = &text[text.find("item ").expect("numbered item") + 5..];
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// Every item's gold label, except every fourth, which gets the other label: 3 in 4 correct.
fn known_answer(body: &Value) -> &'static str {
    let i = item_of(body);
    if i.is_multiple_of(4) {
        LABELS[(i + 1) % 2]
    } else {
        gold(i)
    }
}

/// What `known_answer` makes the accuracy of items `0..n`.
fn known_correct(n: usize) -> usize {
    (0..n).filter(|i| !i.is_multiple_of(4)).count()
}

struct Setup {
    ws: Workspace,
    suite: PathBuf,
    key_var: String,
    key: String,
}

/// A suite of `n` numbered items and one `gpt-4o-mini` backend (the built-in price) on `server`
/// in batch mode, polled every 20 ms; its key is a distinctive value in a variable of its own.
fn setup(n: usize, server: &BatchServer, extra: &str) -> Setup {
    let backend = format!(
        "  - id: mini\n    provider: openai\n    model: gpt-4o-mini\n    base_url: {}\n",
        server.base_url()
    );
    setup_backend(n, &backend, extra)
}

/// The suite of [`setup`] with `backend` (its first lines: id, provider, model, base_url) in
/// batch mode.
fn setup_backend(n: usize, backend: &str, extra: &str) -> Setup {
    let ws = Workspace::new();
    let rows: Vec<Row> =
        (0..n).map(|i| row(&format!("it-{i}"), &format!("item {i}"), gold(i))).collect();
    ws.write("test.csv", &rows_csv(&rows));
    let key_var = unique("EVALGATE_BATCH_KEY");
    let key = format!("sk-batch-{}", unique("secret"));
    let suite = format!(
        r#"schema_version: 1
name: batch
task:
  kind: classification
  labels: [spam, ham]
  instructions: "Answer with spam or ham."
  input: "Message: {{{{ text }}}}"
data:
  test: test.csv
backends:
{backend}    api_key_env: {key_var}
    batch: true
    batch_poll_secs: 0.02
    max_retry_delay_secs: 0.05
{extra}"#
    );
    let suite = ws.write("suite.yaml", &suite);
    Setup { ws, suite, key_var, key }
}

impl Setup {
    fn cache(&self) -> PathBuf {
        self.ws.path().join("cache.sqlite")
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = evalgate(self.ws.path());
        cmd.arg("run").arg(&self.suite).args(args).arg("--cache").arg(self.cache());
        cmd.env(&self.key_var, &self.key);
        cmd
    }

    fn run(&self, out: &Path) -> Outcome {
        output(self.command(&[]).arg("--out").arg(out))
    }

    fn resume(&self, dir: &Path) -> Outcome {
        output(self.command(&[]).arg("--resume").arg(dir))
    }

    fn spawn(&self, out: &Path) -> Child {
        self.command(&["--quiet"])
            .arg("--out")
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn evalgate")
    }
}

/// How many records each item has.
fn records_per_item(run: &Path) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for r in records(run) {
        *counts.entry(r["id"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    counts
}

/// The batch ids the run directory's state file holds.
fn state_batch_ids(run: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(run.join("batches.json")) else { return Vec::new() };
    let Ok(state) = serde_json::from_str::<Value>(&text) else { return Vec::new() };
    state["batches"]
        .as_array()
        .map(|b| b.iter().filter_map(|e| e["batch_id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn a_batch_run_scores_the_servers_known_answers_at_the_batch_price() {
    const N: usize = 20;
    // 200,000 prompt and 50,000 completion tokens a request: at gpt-4o-mini's batch price
    // ($0.075 and $0.30 per million, half the listed $0.15 and $0.60) that is
    // 0.2 × $0.075 + 0.05 × $0.30 = $0.015 + $0.015 = $0.03 a request, $0.60 for 20.
    let server = BatchServer::start(2, |body, _| LineReply::Chat {
        content: known_answer(body).to_string(),
        prompt_tokens: 200_000,
        completion_tokens: 50_000,
    });
    let s = setup(N, &server, "");
    let run = s.ws.run_dir("run");
    let out = s.run(&run);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let batches = server.batches();
    assert_eq!(batches.len(), 1, "one batch for the whole suite");
    assert_eq!(batches[0].lines.len(), N);
    assert_eq!(batches[0].metadata["evalgate_backend"], "mini");
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1);
    for line in &uploads[0] {
        let id = line["custom_id"].as_str().unwrap();
        assert!(
            !id.is_empty()
                && id.len() <= 64
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)),
            "custom_id `{id}` is short and safe"
        );
        assert_eq!(line["body"]["model"], "gpt-4o-mini");
        assert_eq!(line["body"]["temperature"], 0.0);
    }
    // Progress in plain lines (stderr is not a terminal here).
    assert!(out.stderr.contains("mini: batch batch_"), "{}", out.stderr);
    assert!(out.stderr.contains("in progress"), "{}", out.stderr);
    assert!(out.stderr.contains("completed 20/20"), "{}", out.stderr);

    let results = results(&run);
    let b = backend(&results, "mini");
    assert_eq!((u(&b["answered"]), u(&b["errors"]), u(&b["missing"])), (N as u64, 0, 0));
    assert_eq!(u(&b["correct"]), known_correct(N) as u64);
    assert_close(f(&b["accuracy"]["estimate"]), known_correct(N) as f64 / N as f64, "accuracy");
    assert_close(f(&b["cost"]["per_request_usd"]), 0.03, "cost per request");
    assert_close(f(&b["cost"]["total_usd"]), 0.60, "total cost");
    assert_eq!(f(&b["batch"]["price_multiplier"]), 0.5);
    let summary = &b["batch"]["batches"][0];
    assert_eq!(summary["id"], batches[0].id.as_str());
    assert_eq!((u(&summary["requests"]), summary["status"].as_str()), (20, Some("completed")));
    assert!(f(&summary["seconds"]) >= 0.0);
    assert_eq!(state_batch_ids(&run), [batches[0].id.clone()]);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let sentence = format!(
        "`mini` ran in batch mode through the openai batch API, priced at 50% of the listed price (the openai batch discount): batch `{}` (20 requests, completed) took ",
        batches[0].id
    );
    assert!(report.contains("**Batch mode:**") && report.contains(&sentence), "{report}");

    // Every request to the server carried the key, and no file the run wrote holds it.
    let requests = server.requests();
    assert!(requests.iter().all(|r| r
        .headers
        .iter()
        .any(|(n, v)| n == "authorization" && v == &format!("Bearer {}", s.key))));
    assert_no_file_holds(s.ws.path(), &s.key);

    // Again with the cache: every answer is cached, so nothing is uploaded and no batch made.
    let again = s.ws.run_dir("again");
    let out = s.run(&again);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(server.batches().len(), 1, "no second batch");
    assert_eq!(server.uploads().len(), 1, "no second upload");
    let records = records(&again);
    assert_eq!(records.len(), N);
    assert!(records.iter().all(|r| r["cached"] == true));
    let results = crate::support::results(&again);
    assert_eq!(u(&backend(&results, "mini")["correct"]), known_correct(N) as u64);
}

#[test]
fn only_the_requests_the_cache_lacks_go_into_the_batch() {
    let server = BatchServer::start(0, |body, _| LineReply::chat(known_answer(body)));
    let s = setup(12, &server, "");
    let first = s.ws.run_dir("first");
    let out = output(s.command(&["--limit", "5"]).arg("--out").arg(&first));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = s.run(&s.ws.run_dir("second"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let uploads = server.uploads();
    assert_eq!(uploads.iter().map(Vec::len).collect::<Vec<_>>(), [5, 7]);
    let second: Vec<usize> = uploads[1].iter().map(|l| item_of(&l["body"])).collect();
    assert!(second.iter().all(|&i| i >= 5), "cached items 0–4 are not sent again: {second:?}");
    let records = records(&s.ws.run_dir("second"));
    assert_eq!(records.iter().filter(|r| r["cached"] == true).count(), 5);
    let results = results(&s.ws.run_dir("second"));
    assert_eq!(u(&backend(&results, "mini")["correct"]), known_correct(12) as u64);
}

/// Stops a run (`signal`: `INT` for Ctrl-C, `KILL` for kill -9) once its batch is recorded in
/// the run directory, resumes it, and checks that the server has exactly one batch and every
/// item one record; on an OpenAI backend, or an Anthropic one (`anthropic`).
fn stop_after_the_batch_is_created_then_resume(signal: &str, anthropic: bool) {
    const N: usize = 16;
    let handler = |body: &Value, _| LineReply::chat(known_answer(body));
    let server =
        if anthropic { BatchServer::anthropic(0, handler) } else { BatchServer::start(0, handler) };
    server.hold(true);
    let s = if anthropic { anthropic_setup(N, &server, "") } else { setup(N, &server, "") };
    let id_of_backend = if anthropic { "claude" } else { "mini" };
    let run = s.ws.run_dir("run");
    let mut child = s.spawn(&run);
    wait_until(Duration::from_secs(30), "the batch id in batches.json", || {
        !state_batch_ids(&run).is_empty()
    });
    // Polled at least once while held: the batch is in progress on the server.
    wait_until(Duration::from_secs(30), "a poll", || {
        server.batches().first().is_some_and(|b| b.polls >= 2)
    });
    let kill = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = wait_child(&mut child, Duration::from_secs(30));
    if signal == "INT" {
        assert_eq!(status.code(), Some(130), "Ctrl-C exits 130");
        let meta = read_json(&run.join("run.json"));
        assert_eq!(meta["stopped"], "interrupted (Ctrl-C)");
        assert_eq!(meta["backends"][0]["batch"]["batches"][0]["status"], "in_progress");
        assert!(records(&run).is_empty(), "nothing is recorded for a batch still running");
    } else {
        assert!(!status.success());
    }
    assert_eq!(server.batches().len(), 1);
    let id = server.batches()[0].id.clone();
    assert_eq!(state_batch_ids(&run), std::slice::from_ref(&id));

    server.hold(false);
    let out = s.resume(&run);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let batches = server.batches();
    assert_eq!(batches.len(), 1, "the resumed run collected the batch, and submitted none");
    if anthropic {
        let creates: Vec<String> = server
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.path.clone())
            .collect();
        assert_eq!(creates, ["/v1/messages/batches"], "one create in all");
    } else {
        assert_eq!(server.uploads().len(), 1);
    }
    let counts = records_per_item(&run);
    assert_eq!(counts.len(), N);
    assert!(counts.values().all(|&c| c == 1), "every item once: {counts:?}");
    let results = results(&run);
    let b = backend(&results, id_of_backend);
    assert_eq!((u(&b["answered"]), u(&b["correct"])), (N as u64, known_correct(N) as u64));
    assert_eq!(b["batch"]["batches"][0]["id"], id.as_str());
    assert_eq!(b["batch"]["batches"][0]["status"], "completed");
}

#[test]
fn ctrl_c_after_the_batch_is_created_leaves_it_running_and_a_resume_collects_it() {
    stop_after_the_batch_is_created_then_resume("INT", false);
}

#[test]
fn a_run_killed_after_its_batch_was_created_is_resumed_without_a_second_batch() {
    stop_after_the_batch_is_created_then_resume("KILL", false);
}

/// A kill between marking a batch collected and the journal writer's flush loses records of a
/// collected batch: the resume reads them again from the same batch and submits nothing.
#[test]
fn records_lost_after_a_batch_was_collected_are_read_again_from_the_same_batch() {
    let server = BatchServer::start(0, |body, _| LineReply::chat(known_answer(body)));
    let s = setup(6, &server, "");
    let run = s.ws.run_dir("run");
    assert_eq!(s.run(&run).code, Some(0));
    let journal = std::fs::read_to_string(run.join("records.jsonl")).unwrap();
    let kept: String = journal.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(run.join("records.jsonl"), kept).unwrap();
    // Without the cache, which would answer them too.
    let out = output(s.command(&["--no-cache"]).arg("--resume").arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(server.batches().len(), 1, "no second batch");
    let counts = records_per_item(&run);
    assert_eq!(counts.len(), 6);
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
    assert_eq!(u(&backend(&results(&run), "mini")["correct"]), known_correct(6) as u64);
}

#[test]
fn a_create_whose_response_was_lost_is_found_by_its_token_not_made_twice() {
    let server = BatchServer::start(0, |body, _| LineReply::chat(known_answer(body)));
    server.lose_next_create();
    let s = setup(6, &server, "");
    let run = s.ws.run_dir("run");
    let out = s.run(&run);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let batches = server.batches();
    assert_eq!(batches.len(), 1, "the batch made by the failed create is the one used");
    let token = batches[0].metadata["evalgate_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("eg-"), "{token}");
    let listed = server.requests().iter().filter(|r| r.path.starts_with("/v1/batches?")).count();
    assert!(listed >= 1, "the batches were listed to find it");
    let state = read_json(&run.join("batches.json"));
    assert_eq!(state["batches"][0]["token"], token.as_str());
    assert_eq!(state["batches"][0]["batch_id"], batches[0].id.as_str());
    let results = results(&run);
    assert_eq!(u(&backend(&results, "mini")["correct"]), known_correct(6) as u64);
}

#[test]
fn expired_lines_are_sent_again_in_a_smaller_batch() {
    const N: usize = 20;
    // Items 0, 5, 10 and 15 expire the first time they are processed.
    let server = BatchServer::start(1, |body, seen| {
        if item_of(body).is_multiple_of(5) && seen == 0 {
            LineReply::Expired
        } else {
            LineReply::chat(known_answer(body))
        }
    });
    let s = setup(N, &server, "");
    let run = s.ws.run_dir("run");
    let out = s.run(&run);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let batches = server.batches();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].status, "expired");
    let again: Vec<usize> = batches[1].lines.iter().map(|(_, b)| item_of(b)).collect();
    assert_eq!(again, [0, 5, 10, 15]);
    let records = records(&run);
    assert_eq!(records.len(), N);
    for r in &records {
        let i: usize = r["id"].as_str().unwrap()[3..].parse().unwrap();
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(u(&r["attempts"]), if i.is_multiple_of(5) { 2 } else { 1 }, "{r}");
    }
    let results = results(&run);
    let b = backend(&results, "mini");
    assert_eq!(u(&b["correct"]), known_correct(N) as u64);
    let summaries = b["batch"]["batches"].as_array().unwrap();
    assert_eq!(
        summaries
            .iter()
            .map(|s| (u(&s["requests"]), s["status"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [(20, "expired"), (4, "completed")]
    );
}

#[test]
fn lines_that_never_get_processed_are_recorded_as_failed_after_max_attempts_batches() {
    // Item 3 expires every time; with max_attempts 2 there are two batches, then a record.
    let server = BatchServer::start(0, |body, _| {
        if item_of(body) == 3 {
            LineReply::Expired
        } else {
            LineReply::chat(known_answer(body))
        }
    });
    let s = setup(6, &server, "    max_attempts: 2\n");
    let run = s.ws.run_dir("run");
    let out = s.run(&run);
    assert_eq!(server.batches().len(), 2, "{}", out.stderr);
    let records = records(&run);
    let failed: Vec<&Value> = records.iter().filter(|r| !r["error"].is_null()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], "it-3");
    let message = failed[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("completion window expired") && message.contains("after 2 batches"),
        "{message}"
    );
    // One failure in six is above the default --max-error-rate of 5%.
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}

#[test]
fn a_per_line_error_is_a_failed_record_with_the_servers_status_and_message() {
    let server = BatchServer::start(0, |body, _| {
        if item_of(body) == 2 {
            LineReply::Error { status: 400, message: "Invalid value for 'max_tokens'".into() }
        } else {
            LineReply::chat(known_answer(body))
        }
    });
    let s = setup(8, &server, "");
    let run = s.ws.run_dir("run");
    let out = output(s.command(&["--max-error-rate", "0.5"]).arg("--out").arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(server.batches().len(), 1, "a client error is not sent again");
    let records = records(&run);
    let failed: Vec<&Value> = records.iter().filter(|r| !r["error"].is_null()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], "it-2");
    assert_eq!(failed[0]["error"]["status"], 400);
    assert_eq!(failed[0]["error"]["message"], "Invalid value for 'max_tokens'");
    let results = results(&run);
    assert_eq!(u(&backend(&results, "mini")["answered"]), 7);
}

#[test]
fn a_batch_that_fails_as_a_whole_stops_the_backend_with_the_servers_message() {
    let server = BatchServer::failing("The input file contains an invalid request on line 1");
    let s = setup(4, &server, "");
    let run = s.ws.run_dir("run");
    let out = s.run(&run);
    assert_eq!(out.code, Some(2), "every request failed: {}", out.stderr);
    assert!(out.stderr.contains("error: backend `mini` stopped"), "{}", out.stderr);
    assert!(out.stderr.contains("The input file contains an invalid request"), "{}", out.stderr);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("The input file contains an invalid request on line 1"), "{report}");
    let results = results(&run);
    let b = backend(&results, "mini");
    assert_eq!((u(&b["errors"]), u(&b["answered"])), (4, 0));
    assert!(b["stopped"].as_str().unwrap().contains("failed: The input file contains"));
    assert_eq!(b["batch"]["batches"][0]["status"], "failed");
}

#[test]
fn the_budget_estimate_uses_the_batch_price_and_batch_flags_are_checked() {
    let server = BatchServer::start(0, |body, _| LineReply::chat(known_answer(body)));
    let s = setup(10, &server, "");
    let suite = Arc::new(evalgate::plan::load_suite(&s.suite).unwrap());
    let env = |name: &str| (name == s.key_var).then(|| s.key.clone());
    let batch = evalgate::plan::RunPlan::resolve(suite.clone(), &Default::default(), &env)
        .unwrap()
        .estimate()
        .unwrap();
    // The same backend sending one by one: the suite without `batch: true`.
    let text = std::fs::read_to_string(&s.suite).unwrap().replace("    batch: true\n", "");
    let live_suite = s.ws.write("live.yaml", &text);
    let live = Arc::new(evalgate::plan::load_suite(&live_suite).unwrap());
    let live = evalgate::plan::RunPlan::resolve(live, &Default::default(), &env)
        .unwrap()
        .estimate()
        .unwrap();
    assert!(live.total_usd > 0.0);
    assert_close(batch.total_usd, live.total_usd * 0.5, "the batch estimate is half");

    // `--batch` turns batch mode on for the backends that have a batch API, with a note for
    // the others; `batch: true` on a local backend is a suite error naming file, line and key.
    let text = text
        .replace("backends:\n", "backends:\n  - id: base\n    provider: local\n")
        .replace("data:\n  test: test.csv\n", "data:\n  test: test.csv\n  train: test.csv\n");
    let mixed = s.ws.write("mixed.yaml", &text);
    let options = evalgate::plan::RunOptions { batch: true, ..Default::default() };
    let plan = evalgate::plan::RunPlan::resolve(
        Arc::new(evalgate::plan::load_suite(&mixed).unwrap()),
        &options,
        &env,
    )
    .unwrap();
    let modes: Vec<(&str, bool)> =
        plan.backends.iter().map(|b| (b.spec.id.as_str(), b.batch.is_some())).collect();
    assert_eq!(modes, [("base", false), ("mini", true)]);
    assert_eq!(plan.notes, ["--batch: backend `base` (local) has no batch API; it runs as usual"]);
    let wrong_text =
        text.replace("    provider: local\n", "    provider: local\n    batch: true\n");
    let wrong = s.ws.write("wrong.yaml", &wrong_text);
    let out = output(evalgate(s.ws.path()).arg("validate").arg(&wrong));
    let at = format!("wrong.yaml:{}", line_of(&wrong_text, "batch: true"));
    assert_problem(&out, &at, &["backends[0].batch", "the local backend has no batch API"]);
}

// Anthropic's Message Batches: the same driver through `provider: anthropic`.

/// The suite of [`setup`] with one `claude-haiku-4-5` backend (the built-in price) on `server`.
fn anthropic_setup(n: usize, server: &BatchServer, extra: &str) -> Setup {
    let backend = format!(
        "  - id: claude\n    provider: anthropic\n    model: claude-haiku-4-5\n    base_url: {}\n",
        server.base_url()
    );
    setup_backend(n, &backend, extra)
}

/// Each request's `params` in the batches on the server, by item number.
fn params_by_item(server: &BatchServer) -> std::collections::BTreeMap<usize, Value> {
    server.batches().iter().flat_map(|b| b.lines.clone()).map(|(_, p)| (item_of(&p), p)).collect()
}

#[test]
fn an_anthropic_batch_run_scores_the_known_answers_at_the_claude_batch_price() {
    const N: usize = 12;
    // claude-haiku-4-5 lists $1 input, $0.10 cache reads, $1.25 cache writes and $5 output per
    // million tokens; Message Batches cost half: $0.50, $0.05, $0.625 and $2.50. A request of
    // 200,000 uncached input tokens, 400,000 read and 80,000 written, and 40,000 output costs
    // 0.2 × 0.50 + 0.4 × 0.05 + 0.08 × 0.625 + 0.04 × 2.50 = 0.10 + 0.02 + 0.05 + 0.10 = $0.27,
    // $3.24 for 12.
    let usage = Usage {
        input_tokens: 200_000,
        cache_read_input_tokens: 400_000,
        cache_creation_input_tokens: 80_000,
        output_tokens: 40_000,
    };
    let server = BatchServer::anthropic(2, move |params, _| {
        LineReply::Message(Message::text(known_answer(params)).with_usage(Some(usage)))
    });
    let s = anthropic_setup(N, &server, "");
    let run = s.ws.run_dir("run");
    let out = s.run(&run);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let batches = server.batches();
    assert_eq!(batches.len(), 1, "one batch for the whole suite");
    assert!(batches[0].id.starts_with("msgbatch_") && batches[0].lines.len() == N);
    for (id, params) in &batches[0].lines {
        assert!(
            id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        );
        assert_eq!(params["model"], "claude-haiku-4-5");
        assert!(params["max_tokens"].as_u64().is_some_and(|m| m > 0), "{params}");
        assert!(params["system"].as_str().unwrap().contains("Answer with spam or ham."));
        let roles: Vec<&str> = params["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert!(!roles.contains(&"system"), "the system prompt is top-level: {roles:?}");
    }
    // Every call carried the key in x-api-key (never Authorization) and the API version, and no
    // call left the configured server (the results were read from it, not from a results_url).
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.path.ends_with("/results")));
    for r in &requests {
        assert!(r.path.starts_with("/v1/messages/batches"), "{}", r.path);
        let header =
            |name: &str| r.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(header("x-api-key"), Some(s.key.as_str()));
        assert_eq!(header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(header("authorization"), None);
    }
    assert!(out.stderr.contains("claude: batch msgbatch_"), "{}", out.stderr);
    assert!(out.stderr.contains("in progress"), "{}", out.stderr);

    let results = results(&run);
    let b = backend(&results, "claude");
    assert_eq!((u(&b["answered"]), u(&b["errors"]), u(&b["missing"])), (N as u64, 0, 0));
    assert_eq!(u(&b["correct"]), known_correct(N) as u64);
    assert_close(f(&b["accuracy"]["estimate"]), known_correct(N) as f64 / N as f64, "accuracy");
    assert_close(f(&b["cost"]["per_request_usd"]), 0.27, "cost per request");
    assert_close(f(&b["cost"]["total_usd"]), 3.24, "total cost");
    assert_eq!(f(&b["batch"]["price_multiplier"]), 0.5);
    let summary = &b["batch"]["batches"][0];
    assert_eq!(summary["id"], batches[0].id.as_str());
    assert_eq!(
        (u(&summary["requests"]), summary["status"].as_str()),
        (N as u64, Some("completed"))
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let sentence = format!(
        "`claude` ran in batch mode through the anthropic batch API, priced at 50% of the listed price (the anthropic batch discount): batch `{}` (12 requests, completed) took ",
        batches[0].id
    );
    assert!(report.contains("**Batch mode:**") && report.contains(&sentence), "{report}");

    // The same suite sent live (no `batch: true`) to a Messages server: each request body is
    // exactly the batch request's `params`.
    let live_server = anthropic_server::start_in_thread(|req, _| {
        let body = req.json.as_ref().expect("a JSON body");
        Message::text(known_answer(body)).reply(body["model"].as_str().unwrap())
    });
    let text = std::fs::read_to_string(&s.suite)
        .unwrap()
        .replace("    batch: true\n", "")
        .replace(&server.base_url(), &live_server.base_url());
    let live_suite = s.ws.write("live.yaml", &text);
    let live = output(
        evalgate(s.ws.path())
            .arg("run")
            .arg(&live_suite)
            .arg("--no-cache")
            .arg("--out")
            .arg(s.ws.run_dir("live"))
            .env(&s.key_var, &s.key),
    );
    assert_eq!(live.code, Some(0), "{}", live.stderr);
    let sent: std::collections::BTreeMap<usize, Value> = live_server
        .requests()
        .iter()
        .map(|r| r.json.clone().unwrap())
        .map(|body| (item_of(&body), body))
        .collect();
    assert_eq!(sent.len(), N);
    assert_eq!(sent, params_by_item(&server), "batch params are the live bodies");

    // No output, cache, stdout or stderr holds the key.
    for text in [&out.stdout, &out.stderr, &live.stdout, &live.stderr] {
        assert!(!text.contains(&s.key), "output holds the key");
    }
    assert_no_file_holds(s.ws.path(), &s.key);

    // Again with the cache: every answer is cached, so no batch is made.
    let again = s.ws.run_dir("again");
    let out = s.run(&again);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(server.batches().len(), 1, "no second batch");
    let records = records(&again);
    assert!(records.len() == N && records.iter().all(|r| r["cached"] == true));
}

#[test]
fn only_the_requests_the_cache_lacks_go_into_an_anthropic_batch() {
    let server = BatchServer::anthropic(0, |params, _| LineReply::chat(known_answer(params)));
    let s = anthropic_setup(12, &server, "");
    let out = output(s.command(&["--limit", "5"]).arg("--out").arg(s.ws.run_dir("first")));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = s.run(&s.ws.run_dir("second"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let batches = server.batches();
    assert_eq!(batches.iter().map(|b| b.lines.len()).collect::<Vec<_>>(), [5, 7]);
    let second: Vec<usize> = batches[1].lines.iter().map(|(_, p)| item_of(p)).collect();
    assert!(second.iter().all(|&i| i >= 5), "cached items 0–4 are not sent again: {second:?}");
    let records = records(&s.ws.run_dir("second"));
    assert_eq!(records.iter().filter(|r| r["cached"] == true).count(), 5);
    let results = results(&s.ws.run_dir("second"));
    assert_eq!(u(&backend(&results, "claude")["correct"]), known_correct(12) as u64);
}

#[test]
fn ctrl_c_after_an_anthropic_batch_is_created_and_a_resume_collect_it_once() {
    stop_after_the_batch_is_created_then_resume("INT", true);
}

#[test]
fn an_anthropic_run_killed_after_its_batch_was_created_is_resumed_without_a_second_batch() {
    stop_after_the_batch_is_created_then_resume("KILL", true);
}

#[test]
fn anthropic_expired_canceled_and_overloaded_lines_go_into_a_smaller_batch_bad_ones_do_not() {
    const N: usize = 20;
    // The first time through: items 0, 5, 10, 15 expire, 7 is canceled, 9 is overloaded; item
    // 2 is a bad request every time.
    let server = BatchServer::anthropic(1, |params, seen| match item_of(params) {
        i if i.is_multiple_of(5) && seen == 0 => LineReply::Expired,
        7 if seen == 0 => LineReply::Canceled,
        9 if seen == 0 => LineReply::Error { status: 529, message: "Overloaded".into() },
        2 => LineReply::Error { status: 400, message: "max_tokens: Field required".into() },
        _ => LineReply::chat(known_answer(params)),
    });
    let s = anthropic_setup(N, &server, "");
    let run = s.ws.run_dir("run");
    let out = output(s.command(&["--max-error-rate", "0.5"]).arg("--out").arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let batches = server.batches();
    assert_eq!(batches.len(), 2, "{}", out.stderr);
    let again: Vec<usize> = batches[1].lines.iter().map(|(_, p)| item_of(p)).collect();
    assert_eq!(again, [0, 5, 7, 9, 10, 15], "the bad request (item 2) is not sent again");
    let records = records(&run);
    assert_eq!(records.len(), N);
    for r in &records {
        let i: usize = r["id"].as_str().unwrap()[3..].parse().unwrap();
        if i == 2 {
            assert_eq!(r["error"]["status"], 400, "{r}");
            let message = r["error"]["message"].as_str().unwrap();
            assert!(message.contains("max_tokens: Field required"), "{message}");
            assert_eq!(u(&r["attempts"]), 1);
        } else {
            assert!(r["error"].is_null(), "{r}");
            assert_eq!(u(&r["attempts"]), if again.contains(&i) { 2 } else { 1 }, "{r}");
        }
    }
    let results = results(&run);
    let b = backend(&results, "claude");
    // Item 2 would have been answered correctly (2 is not a multiple of 4).
    assert_eq!((u(&b["correct"]), u(&b["errors"])), (known_correct(N) as u64 - 1, 1));
    let summaries: Vec<(u64, &str)> = b["batch"]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (u(&s["requests"]), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(summaries, [(20, "expired"), (6, "completed")]);
}

#[test]
fn anthropic_batch_calls_refused_with_429_or_529_are_retried_and_a_401_stops_the_backend() {
    let server = BatchServer::anthropic(1, |params, _| LineReply::chat(known_answer(params)));
    server.fail("POST", "/v1/messages/batches", 429, Some("0.01"), 1);
    server.fail("GET", "/v1/messages/batches/", 529, None, 2);
    let s = anthropic_setup(6, &server, "");
    let run = s.ws.run_dir("run");
    let out = s.run(&run);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(server.batches().len(), 1, "a refused create made no batch, and one was made after");
    let posts = server.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 2, "the 429 and the create that succeeded");
    assert_eq!(u(&backend(&results(&run), "claude")["correct"]), known_correct(6) as u64);

    let refused = BatchServer::anthropic(0, |params, _| LineReply::chat(known_answer(params)));
    refused.fail("POST", "/v1/messages/batches", 401, None, 1);
    let s = anthropic_setup(4, &refused, "");
    let run = s.ws.run_dir("run");
    let out = s.run(&run);
    assert_eq!(out.code, Some(2), "every request failed: {}", out.stderr);
    assert!(out.stderr.contains("error: backend `claude` stopped"), "{}", out.stderr);
    assert!(out.stderr.contains("invalid x-api-key"), "{}", out.stderr);
    assert!(refused.batches().is_empty());
    assert_eq!(refused.requests().len(), 1, "a wrong key is not retried");
    let b = &backend(&results(&run), "claude").clone();
    assert_eq!((u(&b["errors"]), u(&b["answered"])), (4, 0));
}

#[test]
fn batch_flag_puts_anthropic_backends_in_batch_mode_at_half_the_estimate() {
    let server = BatchServer::anthropic(0, |params, _| LineReply::chat(known_answer(params)));
    let s = anthropic_setup(10, &server, "");
    let env = |name: &str| (name == s.key_var).then(|| s.key.clone());
    // `batch: true` on an anthropic backend validates.
    let out = output(evalgate(s.ws.path()).arg("validate").arg(&s.suite));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let text = std::fs::read_to_string(&s.suite).unwrap().replace("    batch: true\n", "");
    let live_suite = Arc::new(evalgate::plan::load_suite(&s.ws.write("live.yaml", &text)).unwrap());
    let live =
        evalgate::plan::RunPlan::resolve(live_suite.clone(), &Default::default(), &env).unwrap();
    assert!(live.backends[0].batch.is_none());
    let options = evalgate::plan::RunOptions { batch: true, ..Default::default() };
    let batch = evalgate::plan::RunPlan::resolve(live_suite, &options, &env).unwrap();
    assert!(batch.backends[0].batch.is_some() && batch.notes.is_empty(), "{:?}", batch.notes);
    let (live, batch) = (live.estimate().unwrap(), batch.estimate().unwrap());
    assert!(live.total_usd > 0.0);
    assert_close(batch.total_usd, live.total_usd * 0.5, "the batch estimate is half");
}

#[test]
fn shards_run_in_batch_mode_merge_with_every_shards_batches() {
    const N: usize = 16;
    let server = BatchServer::start(1, |body, _| LineReply::Chat {
        content: known_answer(body).to_string(),
        prompt_tokens: 10,
        completion_tokens: 1,
    });
    let s = setup(N, &server, "");
    let parts = [s.ws.run_dir("part1"), s.ws.run_dir("part2")];
    for (k, dir) in parts.iter().enumerate() {
        let shard = format!("{}/2", k + 1);
        let out = output(s.command(&["--shard", &shard]).arg("--out").arg(dir));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    assert_eq!(server.batches().len(), 2, "one batch per shard");
    let merged = s.ws.run_dir("merged");
    let out = output(evalgate(s.ws.path()).arg("merge").args(&parts).arg("--out").arg(&merged));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("run.json")).unwrap()).unwrap();
    let ids: Vec<&str> = meta["backends"][0]["batch"]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    let mut on_server: Vec<String> = server.batches().iter().map(|b| b.id.clone()).collect();
    on_server.sort();
    let mut merged_ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    merged_ids.sort();
    assert_eq!(merged_ids, on_server, "the merged run names both shards' batches");
    let results = results(&merged);
    let b = backend(&results, "mini");
    assert_eq!((u(&b["answered"]), u(&b["correct"])), (N as u64, known_correct(N) as u64));
}

#[test]
fn an_anthropic_extraction_batch_carries_the_tool_and_scores_its_input() {
    // Receipts whose gold is (company, total); the reply to the third is off by one.
    const RECEIPTS: [(&str, &str, f64); 3] =
        [("R-1", "ACME Trading", 12.5), ("R-2", "Cafe Nine", 23.4), ("R-3", "Bookshop", 41.0)];
    let server = BatchServer::anthropic(1, |params, _| {
        let text = params["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string();
        let i = RECEIPTS.iter().position(|(id, ..)| text.contains(id)).expect("a receipt");
        let (_, company, total) = RECEIPTS[i];
        let total = if i == 2 { total + 1.0 } else { total };
        let object = serde_json::json!({ "company": company, "total": total });
        assert!(params.get("tools").is_some(), "the batch carries the extraction tool: {params}");
        LineReply::Message(Message::tool_use(object))
    });
    let ws = Workspace::new();
    let data: String = RECEIPTS
        .iter()
        .map(|(id, company, total)| {
            serde_json::json!({
                "id": id,
                "text": format!("Receipt {id}: {company}, total {total:.2}"),
                "expected": { "company": company, "total": total },
            })
            .to_string()
                + "\n"
        })
        .collect();
    ws.write("test.jsonl", &data);
    let key_var = unique("EVALGATE_BATCH_KEY");
    let suite = ws.write(
        "suite.yaml",
        &format!(
            r#"schema_version: 1
name: batch-receipts
task:
  kind: extraction
  fields:
    company: {{ type: string, match: normalized }}
    total: {{ type: number, tolerance: 0.01 }}
  instructions: Extract the receipt fields.
  input: "{{{{ text }}}}"
data:
  test: test.jsonl
backends:
  - id: claude
    provider: anthropic
    model: claude-haiku-4-5
    base_url: {}
    api_key_env: {key_var}
    batch: true
    batch_poll_secs: 0.02
"#,
            server.base_url()
        ),
    );
    let run = ws.run_dir("run");
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(&run)
            .arg("--no-cache")
            .env(&key_var, "sk-ant-extraction"),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let batches = server.batches();
    assert_eq!(batches.len(), 1);
    for (_, params) in &batches[0].lines {
        assert_eq!(params["tool_choice"]["name"], "extraction", "{params}");
        let schema = &params["tools"][0]["input_schema"];
        assert!(schema["properties"].get("company").is_some(), "{schema}");
    }
    let results = results(&run);
    let b = backend(&results, "claude");
    assert_eq!((u(&b["answered"]), u(&b["correct"]), u(&b["invalid"])), (3, 2, 0), "{b}");
    assert_eq!(u(&b["fields"]["company"]["correct"]), 3, "{b}");
    assert_eq!(u(&b["fields"]["total"]["correct"]), 2, "{b}");
}
