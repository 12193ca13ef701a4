//! Runs that do not end normally: killed (SIGKILL) and resumed, a torn journal line, a changed
//! suite, errors retried on resume, the cost budget, and Ctrl-C (SIGINT).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::openai_server::{RecordedRequest, Reply, TestServer, Usage};
use crate::support::*;

const LABELS: [&str; 2] = ["spam", "ham"];

fn gold(i: usize) -> &'static str {
    LABELS[i % 2]
}

const INSTRUCTIONS: &str = "Answer with spam or ham.";

/// A suite over `n` numbered items (`it-N`, text `item N`) with the given backends.
fn workspace(n: usize, backends: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let rows: Vec<Row> =
        (0..n).map(|i| row(&format!("it-{i}"), &format!("item {i}"), gold(i))).collect();
    ws.write("test.csv", &rows_csv(&rows));
    let suite = format!(
        r#"schema_version: 1
name: resilience
task:
  kind: classification
  labels: [spam, ham]
  instructions: "{INSTRUCTIONS}"
  input: "Message: {{{{ text }}}}"
data:
  test: test.csv
backends:
{backends}"#
    );
    let path = ws.write("suite.yaml", &suite);
    (ws, path)
}

fn backend_yaml(id: &str, base: &str, extra: &str) -> String {
    format!("  - id: {id}\n    provider: openai\n    base_url: {base}\n    model: m-{id}\n{extra}")
}

/// The binary running `suite` into `run` in the background, output discarded.
fn spawn_run(ws: &Workspace, suite: &Path, run: &Path) -> Child {
    evalgate(ws.path())
        .arg("run")
        .arg(suite)
        .arg("--out")
        .arg(run)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn evalgate")
}

fn resume(ws: &Workspace, suite: &Path, run: &Path) -> Outcome {
    output(evalgate(ws.path()).arg("run").arg(suite).arg("--resume").arg(run).arg("--quiet"))
}

/// How many records each (backend, id) has in the journal.
fn record_counts(run: &Path) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for r in records(run) {
        *counts
            .entry((
                r["backend"].as_str().unwrap().to_string(),
                r["id"].as_str().unwrap().to_string(),
            ))
            .or_insert(0) += 1;
    }
    counts
}

/// Complete lines of the journal (a torn last line excluded).
fn journal_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("records.jsonl")).map_or(0, |t| t.matches('\n').count())
}

fn assert_accounted(results: &Value, items: u64) {
    for b in results["backends"].as_array().unwrap() {
        let (answered, errors, missing) = (u(&b["answered"]), u(&b["errors"]), u(&b["missing"]));
        assert_eq!(
            answered + errors + missing,
            items,
            "every item is answered, an error or missing: {b}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// kill -9, then --resume
// ---------------------------------------------------------------------------------------------

const KILL_ITEMS: usize = 200;
const KILL_CONCURRENCY: usize = 4;

/// Kills a run `after` its first request reached the server, optionally tears the journal's last
/// line, resumes, and checks that every item ends with exactly one record.
fn kill_and_resume(after: Duration, tear: bool) {
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        let i = item_number(req).expect("numbered item");
        Reply::chat(gold(i)).delayed(Duration::from_millis(20))
    });
    let (ws, suite) = workspace(
        KILL_ITEMS,
        &backend_yaml("m", &server.base_url(), &format!("    concurrency: {KILL_CONCURRENCY}\n")),
    );
    let run = ws.run_dir("run");
    let mut child = spawn_run(&ws, &suite, &run);
    wait_until(Duration::from_secs(20), "the first request", || server.request_count() > 0);
    std::thread::sleep(after);
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed after {after:?}: {status:?}");
    // 200 items × 20 ms at 4 in flight take at least a second after the first request.
    let before = journal_lines(&run);
    assert!(before < KILL_ITEMS, "killed after {after:?}, yet {before} records were journaled");
    let sent_before = server.request_count();

    let mut torn_id = None;
    if tear {
        // Half a record for an item without one, no newline: what a kill mid-write leaves.
        let have: HashSet<String> =
            records(&run).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        let id = (0..KILL_ITEMS)
            .map(|i| format!("it-{i}"))
            .find(|id| !have.contains(id))
            .expect("a missing item");
        let full = serde_json::json!({ "id": id, "backend": "m", "prompt": [], "reply": "spam", "answer": "spam", "gold": "spam", "correct": true }).to_string();
        use std::io::Write;
        let mut file =
            std::fs::OpenOptions::new().append(true).open(run.join("records.jsonl")).unwrap();
        file.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
        torn_id = Some(id);
    }

    let out = resume(&ws, &suite, &run);
    assert_eq!(out.code, Some(0), "resume after a kill at {after:?}: {}", out.stderr);
    let text = std::fs::read_to_string(run.join("records.jsonl")).unwrap();
    assert!(text.ends_with('\n'), "the journal ends with a complete line");
    for (n, line) in text.lines().enumerate() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("records.jsonl line {}: {e}: {line}", n + 1));
    }
    let counts = record_counts(&run);
    assert_eq!(counts.len(), KILL_ITEMS, "one (backend, id) per item");
    assert!(
        counts.values().all(|&c| c == 1),
        "an item answered twice: {:?}",
        counts.iter().filter(|(_, &c)| c > 1).collect::<Vec<_>>()
    );
    let results = results(&run);
    let m = backend(&results, "m");
    assert_eq!((u(&m["answered"]), u(&m["errors"]), u(&m["missing"])), (KILL_ITEMS as u64, 0, 0));
    assert!(results["stopped"].is_null(), "{}", results["stopped"]);
    // The resumed run sent exactly the items without a complete record: not one more. (How many
    // the killed run had sent beyond its journal depends on timing: those in flight and the
    // answers not yet flushed; a bound on that flaked under load.)
    let resent = server.request_count() - sent_before;
    assert_eq!(
        resent,
        KILL_ITEMS - before,
        "killed after {after:?} with {before} complete records and {sent_before} requests sent"
    );
    if let Some(id) = torn_id {
        let sent = server
            .requests()
            .iter()
            .filter(|r| item_number(r) == Some(id.trim_start_matches("it-").parse().unwrap()))
            .count();
        assert!(sent >= 1, "the item of the torn line ({id}) was sent on resume");
    }
}

#[test]
fn resume_after_kill_9_sends_only_what_is_missing() {
    for (after, tear) in [(0, false), (250, true), (550, false)] {
        kill_and_resume(Duration::from_millis(after), tear);
    }
}

#[test]
fn resume_refuses_a_changed_suite() {
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        Reply::chat(gold(item_number(req).unwrap()))
    });
    let (ws, suite) = workspace(3, &backend_yaml("m", &server.base_url(), ""));
    let run = ws.run_dir("run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).arg("--quiet"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let journal = std::fs::read(run.join("records.jsonl")).unwrap();
    let mut text = std::fs::read_to_string(&suite).unwrap();
    text.push_str("# edited after the run\n");
    std::fs::write(&suite, text).unwrap();
    let sent = server.request_count();
    let out = resume(&ws, &suite, &run);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("different suite"), "{}", out.stderr);
    assert_eq!(server.request_count(), sent, "nothing sent");
    assert_eq!(std::fs::read(run.join("records.jsonl")).unwrap(), journal, "journal untouched");
}

#[test]
fn errors_are_retried_on_resume() {
    const N: usize = 12;
    let healed = Arc::new(AtomicBool::new(false));
    let flag = healed.clone();
    let server = TestServer::start_in_thread(move |req: &RecordedRequest, _| {
        let i = item_number(req).expect("numbered item");
        if i.is_multiple_of(3) && !flag.load(Ordering::SeqCst) {
            // 400 is not retried: an error record on the first attempt.
            Reply::openai_error(400, "bad request", "invalid_request_error", None)
        } else {
            Reply::chat(gold(i))
        }
    });
    let base = server.base_url();
    let (ws, suite) =
        workspace(N, &format!("{}{}", backend_yaml("x", &base, ""), backend_yaml("y", &base, "")));
    let run = ws.run_dir("run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).arg("--quiet"));
    // 4 of 12 requests failed: above the default 5% error limit, so the run exits 2.
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let first = results(&run);
    for id in ["x", "y"] {
        assert_eq!(u(&backend(&first, id)["errors"]), 4, "i % 3 == 0 fails: 4 of 12");
    }
    assert_eq!(server.request_count(), 2 * N);

    healed.store(true, Ordering::SeqCst);
    let out = resume(&ws, &suite, &run);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(server.request_count(), 2 * N + 8, "only the 8 failed items are sent again");
    let results = results(&run);
    for id in ["x", "y"] {
        let b = backend(&results, id);
        assert_eq!(
            (u(&b["answered"]), u(&b["correct"]), u(&b["errors"]), u(&b["missing"])),
            (N as u64, N as u64, 0, 0),
            "{b}"
        );
    }
    let rows = csv_rows(&run);
    assert_eq!(rows.len(), 2 * N, "records.csv: one row per item and backend");
    let keys: HashSet<(String, String)> =
        rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(keys.len(), 2 * N);
    assert!(rows.iter().all(|r| r[6].is_empty()), "no error left in records.csv");
    // The journal keeps the history: the 8 error records and their answers.
    assert_eq!(records(&run).len(), 2 * N + 8);
}

// ---------------------------------------------------------------------------------------------
// --max-cost-usd
// ---------------------------------------------------------------------------------------------

const PRICED: &str = "    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }\n";

#[test]
fn a_budget_below_the_estimate_refuses_to_start() {
    const N: usize = 5;
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        Reply::chat(gold(item_number(req).unwrap()))
    });
    let (ws, suite) = workspace(N, &backend_yaml("m", &server.base_url(), PRICED));
    // The estimate as the runner documents it: about 4 characters a token plus 4 per message,
    // and a reply of ⌈longest label / 4⌉ + 4 tokens (no max_tokens).
    let tokens = |s: &str| (s.chars().count() as u64).div_ceil(4) + 4;
    let estimate: f64 = (0..N)
        .map(|i| {
            let input = tokens(INSTRUCTIONS) + tokens(&format!("Message: item {i}"));
            let output = 4u64.div_ceil(4) + 4;
            (input as f64 * 2.5 + output as f64 * 10.0) / 1e6
        })
        .sum();
    let run = ws.run_dir("run");
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(&run)
            .args(["--max-cost-usd", "0.0000001"]),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("${estimate:.4}")),
        "the message names the estimate ${estimate:.4}: {}",
        out.stderr
    );
    assert!(out.stderr.contains("--max-cost-usd"), "{}", out.stderr);
    assert_eq!(server.request_count(), 0);
    assert!(!run.join("records.jsonl").exists());

    // A backend without a price cannot be kept within a budget.
    let (ws, suite) = workspace(N, &backend_yaml("free", &server.base_url(), ""));
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(ws.run_dir("run"))
            .args(["--max-cost-usd", "1"]),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("pricing") && out.stderr.contains("free"), "{}", out.stderr);
    assert_eq!(server.request_count(), 0);
}

#[test]
fn a_budget_reached_during_the_run_stops_sending() {
    const N: usize = 40;
    // Every reply bills 1,000,000 prompt tokens at $2.5/M: $2.50001 a request, so $10 is spent
    // after the 4th record.
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        Reply::chat(gold(item_number(req).unwrap()))
            .with_usage(Some(Usage { prompt_tokens: 1_000_000, completion_tokens: 1 }))
            .delayed(Duration::from_millis(20))
    });
    let (ws, suite) = workspace(
        N,
        &backend_yaml("m", &server.base_url(), &format!("{PRICED}    concurrency: 2\n")),
    );
    let run = ws.run_dir("run");
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(&run)
            .args(["--max-cost-usd", "10"]),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let results = results(&run);
    let stopped =
        results["stopped"].as_str().unwrap_or_else(|| panic!("stopped is set: {results}"));
    assert!(stopped.contains("budget"), "{stopped}");
    let sent = server.request_count();
    assert!(sent < N, "{sent} requests of {N}: the budget stops sending");
    let m = backend(&results, "m");
    assert!(u(&m["answered"]) >= 4, "{m}");
    assert!(u(&m["missing"]) > 0, "{m}");
    assert_accounted(&results, N as u64);
    let counts = record_counts(&run);
    assert!(counts.values().all(|&c| c == 1));
    // A request the stop caught before it went out is recorded as cancelled and scored as
    // missing; every other record is an answer or an error.
    let cancelled = records(&run).iter().filter(|r| r["error"]["kind"] == "cancelled").count();
    assert_eq!(
        (counts.len() - cancelled) as u64,
        u(&m["answered"]) + u(&m["errors"]),
        "every item with a record is counted"
    );
    assert!(u(&m["missing"]) >= cancelled as u64, "{m}");
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("Incomplete run"), "{md}");
}

// ---------------------------------------------------------------------------------------------
// Ctrl-C
// ---------------------------------------------------------------------------------------------

#[test]
fn ctrl_c_stops_with_130_and_a_report_of_what_finished() {
    const N: usize = 40;
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        Reply::chat(gold(item_number(req).unwrap())).delayed(Duration::from_millis(100))
    });
    let (ws, suite) = workspace(N, &backend_yaml("m", &server.base_url(), "    concurrency: 2\n"));
    let run = ws.run_dir("run");
    let mut child = spawn_run(&ws, &suite, &run);
    wait_until(Duration::from_secs(20), "the first request", || server.request_count() > 0);
    std::thread::sleep(Duration::from_millis(150));
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = wait_child(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(run.join("report.md").exists() && run.join("records.csv").exists());
    let results = results(&run);
    let stopped =
        results["stopped"].as_str().unwrap_or_else(|| panic!("stopped is set: {results}"));
    assert!(stopped.contains("interrupted"), "{stopped}");
    assert_accounted(&results, N as u64);
    let m = backend(&results, "m");
    assert!(u(&m["answered"]) > 0 && u(&m["answered"]) < N as u64, "{m}");
    assert!(server.request_count() < N);
}

#[test]
fn a_budget_reached_by_the_last_record_does_not_mark_a_complete_run_stopped() {
    // 4 items at $2.50001 each against a $10 budget: the 4th record reaches the budget, but
    // nothing is left to send. `stopped` is documented as "why the run ended before every item
    // was answered", and report.md then says "Incomplete run ... `evalgate run --resume` sends
    // them" although no item is missing.
    const N: usize = 4;
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        Reply::chat(gold(item_number(req).unwrap()))
            .with_usage(Some(Usage { prompt_tokens: 1_000_000, completion_tokens: 1 }))
    });
    let (ws, suite) = workspace(
        N,
        &backend_yaml("m", &server.base_url(), &format!("{PRICED}    concurrency: 1\n")),
    );
    let run = ws.run_dir("run");
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(&run)
            .args(["--max-cost-usd", "10"]),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let results = results(&run);
    let m = backend(&results, "m");
    assert_eq!((u(&m["answered"]), u(&m["missing"])), (N as u64, 0), "{m}");
    assert!(
        results["stopped"].is_null(),
        "every item was answered, yet stopped = {}",
        results["stopped"]
    );
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(!md.contains("Incomplete run"), "{md}");
}

#[test]
fn resume_refuses_changed_test_data() {
    // run.json records the SHA-256 of the suite file only, so editing test.csv (here: the gold
    // label and text of an item that was already answered) is not noticed: the resumed run mixes
    // records made against the old data with the new data and exits 0.
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        Reply::chat(gold(item_number(req).unwrap()))
    });
    let (ws, suite) = workspace(4, &backend_yaml("m", &server.base_url(), ""));
    let run = ws.run_dir("run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).arg("--quiet"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows = vec![
        row("it-0", "item 0 rewritten", "ham"),
        row("it-1", "item 1", "ham"),
        row("it-2", "item 2", "spam"),
        row("it-3", "item 3", "ham"),
    ];
    ws.write("test.csv", &rows_csv(&rows));
    let out = resume(&ws, &suite, &run);
    assert_eq!(out.code, Some(2), "resume over changed data should be refused: {}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// Bounded shutdown
// ---------------------------------------------------------------------------------------------

/// Items below this are answered at once; the rest hang far longer than the test waits.
const QUICK: usize = 3;

/// A stop with requests hanging at the server: they are cancelled when the grace period is over
/// and recorded as not sent, the outputs are written, and the exit code names the signal.
fn stop_with_a_hung_server(signal: &str, code: i32, reason: &str) {
    const N: usize = 20;
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        let i = item_number(req).unwrap();
        let reply = Reply::chat(gold(i));
        if i < QUICK {
            reply
        } else {
            reply.delayed(Duration::from_secs(40))
        }
    });
    let (ws, suite) = workspace(N, &backend_yaml("m", &server.base_url(), "    concurrency: 4\n"));
    let run = ws.run_dir("run");
    let mut child = evalgate(ws.path())
        .arg("run")
        .arg(&suite)
        .arg("--out")
        .arg(&run)
        .args(["--grace", "1s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evalgate");
    // The quick items answered, and four requests hanging (the concurrency).
    wait_until(Duration::from_secs(20), "4 hung requests", || server.request_count() == QUICK + 4);
    let kill = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status();
    assert!(kill.expect("run kill").success());
    // Far less than the 40 s the server holds its replies: the process did not wait for them.
    let status = wait_child(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(code), "{status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();

    assert!(run.join("report.md").exists() && run.join("records.csv").exists());
    let results = results(&run);
    assert!(results["stopped"].as_str().unwrap().contains(reason), "{}", results["stopped"]);
    let m = backend(&results, "m");
    assert_eq!(u(&m["answered"]), QUICK as u64, "{m}");
    // The cancelled requests are not failures of the backend: their items are missing, and a
    // resumed run sends them.
    assert_eq!((u(&m["errors"]), u(&m["missing"])), (0, (N - QUICK) as u64), "{m}");
    let cut: Vec<Value> =
        records(&run).into_iter().filter(|r| r["error"]["kind"] == "cancelled").collect();
    assert_eq!(cut.len(), 4);
    for r in &cut {
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains("within the 1 s grace period"), "{message}");
    }
    // Progress tells what happened, not a full bar.
    assert!(
        stderr.contains(&format!(
            "m: {QUICK} answered, 0 failed, {} not sent (4 cancelled by the stop) of {N}",
            N - QUICK
        )),
        "{stderr}"
    );
    assert!(stderr.contains("have 1 s to finish"), "{stderr}");
}

#[test]
fn ctrl_c_with_a_hung_server_cancels_requests_in_flight_after_the_grace_period() {
    stop_with_a_hung_server("-INT", 130, "interrupted (Ctrl-C)");
}

#[test]
fn sigterm_is_handled_like_ctrl_c_and_exits_143() {
    stop_with_a_hung_server("-TERM", 143, "terminated (SIGTERM)");
}
