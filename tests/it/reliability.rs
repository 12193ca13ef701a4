//! The runner under load and faults: rate-limit storms, the response cache, shards merged into
//! one run, and request pacing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::support::openai_server::{RecordedRequest, Reply, TestServer};
use crate::support::*;

const LABELS: [&str; 3] = ["billing", "technical", "other"];

fn gold(i: usize) -> &'static str {
    LABELS[i % 3]
}

/// A suite of `n` items (`it-N`, text `item N`) with one openai backend at `base`.
fn workspace(n: usize, base: &str, extra: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let rows: Vec<Row> =
        (0..n).map(|i| row(&format!("it-{i}"), &format!("item {i}"), gold(i))).collect();
    ws.write("test.csv", &rows_csv(&rows));
    let suite = format!(
        "schema_version: 1\nname: reliability\ntask:\n  kind: classification\n  labels: [billing, technical, other]\n  instructions: \"Route it.\"\n  input: \"{{{{ text }}}}\"\ndata:\n  test: test.csv\nbackends:\n  - id: api\n    provider: openai\n    base_url: {base}\n    model: m\n    concurrency: 8\n{extra}"
    );
    let path = ws.write("suite.yaml", &suite);
    (ws, path)
}

/// The gold label of the item a request is about.
fn answer(req: &RecordedRequest) -> Reply {
    let text = req.last_user_text().unwrap_or_default();
    let n: usize = text.trim_start_matches("item ").parse().unwrap_or(0);
    Reply::chat(gold(n))
}

fn run(ws: &Workspace, suite: &Path, out: &Path, extra: &[&str]) -> Outcome {
    let cache = ws.path().join("cache.sqlite");
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(suite)
            .arg("--out")
            .arg(out)
            .arg("--cache")
            .arg(cache)
            .args(extra),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out
}

fn one_record_per_item(run: &Path, n: usize) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in records(run) {
        *seen.entry(r["id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(seen.len(), n, "every item has a record");
    assert!(seen.values().all(|&c| c == 1), "no item has two records");
}

#[test]
fn a_storm_of_429s_ends_with_every_item_answered_once() {
    // Every request whose body hash falls in 30% is refused with 429 on its first two attempts.
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    let server = TestServer::start_in_thread(move |req, attempt| {
        let storm = req.body.iter().map(|&b| b as usize).sum::<usize>() % 10 < 3;
        if storm && attempt <= 2 {
            counter.fetch_add(1, Ordering::SeqCst);
            return Reply::rate_limited("0");
        }
        answer(req)
    });
    let n = 120;
    let (ws, suite) = workspace(n, &server.base_url(), "");
    let dir = ws.run_dir("run");
    run(&ws, &suite, &dir, &["--no-cache"]);
    one_record_per_item(&dir, n);
    let results = results(&dir);
    let b = backend(&results, "api");
    assert_eq!((u(&b["answered"]), u(&b["correct"]), u(&b["errors"])), (n as u64, n as u64, 0));
    let storms = refused.load(Ordering::SeqCst);
    assert!(storms > n / 10, "the storm hit {storms} requests");
    assert_eq!(server.request_count(), n + storms, "each refusal was retried exactly once more");
}

#[test]
fn a_second_run_is_answered_from_the_cache_without_a_request() {
    let server = TestServer::start_in_thread(|req, _| answer(req));
    let n = 40;
    let (ws, suite) = workspace(n, &server.base_url(), "");
    let (first, second) = (ws.run_dir("first"), ws.run_dir("second"));
    run(&ws, &suite, &first, &[]);
    assert_eq!(server.request_count(), n);
    run(&ws, &suite, &second, &[]);
    assert_eq!(server.request_count(), n, "the second run sent no request");
    assert!(records(&second).iter().all(|r| r["cached"] == Value::Bool(true)));
    let (a, b) = (results(&first), results(&second));
    // The report step counts them: in results.json and in report.md.
    assert_eq!(u(&backend(&a, "api")["cached"]), 0);
    assert_eq!(u(&backend(&b, "api")["cached"]), n as u64);
    let md = std::fs::read_to_string(second.join("report.md")).unwrap();
    let today = &evalgate::time::rfc3339(std::time::SystemTime::now())[..10];
    assert!(
        md.contains(&format!(
            "**Response cache:** answers from the cache, not from the server in this run: `api` {n} of {n} (answered on {today})"
        )),
        "{md}"
    );
    // Their latency is another run's: the table shows none.
    assert!(md.contains("— (cached)"), "{md}");
    let between = &backend(&b, "api")["cached_between"];
    assert!(between[0].as_str().unwrap().starts_with(today), "{between}");
    let md = std::fs::read_to_string(first.join("report.md")).unwrap();
    assert!(!md.contains("Response cache"), "{md}");
    assert_eq!(backend(&a, "api")["accuracy"], backend(&b, "api")["accuracy"]);
    assert_eq!(backend(&a, "api")["cost"], backend(&b, "api")["cost"]);
    // --refresh asks again; --no-cache neither reads nor writes.
    run(&ws, &suite, &ws.run_dir("third"), &["--refresh"]);
    assert_eq!(server.request_count(), 2 * n);
    run(&ws, &suite, &ws.run_dir("fourth"), &["--no-cache"]);
    assert_eq!(server.request_count(), 3 * n);
}

#[test]
fn the_cache_never_holds_the_api_key() {
    let server = TestServer::start_in_thread(|req, _| answer(req));
    let var = unique("EVALGATE_TEST_CACHE_KEY");
    let key = unique("sk-evalgate-cache-secret");
    let (ws, suite) = workspace(10, &server.base_url(), &format!("    api_key_env: {var}\n"));
    let dir = ws.run_dir("run");
    let cache = ws.path().join("cache.sqlite");
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(&dir)
            .arg("--cache")
            .arg(&cache)
            .env(&var, &key),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(server
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some(&format!("Bearer {key}"))));
    assert_no_file_holds(ws.path(), &key);
}

#[test]
fn shards_merged_give_the_results_of_one_run() {
    let server = TestServer::start_in_thread(|req, _| {
        // Wrong on every fifth item, so accuracy, comparisons and the bootstrap have work.
        let text = req.last_user_text().unwrap_or_default();
        let n: usize = text.trim_start_matches("item ").parse().unwrap_or(0);
        if n.is_multiple_of(5) {
            Reply::chat("other")
        } else {
            answer(req)
        }
    });
    let n = 90;
    let (ws, suite) = workspace(
        n,
        &server.base_url(),
        "  - id: second\n    provider: openai\n    base_url: BASE\n    model: m2\n"
            .replace("BASE", &server.base_url())
            .as_str(),
    );
    let single = ws.run_dir("single");
    run(&ws, &suite, &single, &["--no-cache"]);
    let mut parts = Vec::new();
    for k in 1..=3 {
        let dir = ws.run_dir(&format!("shard-{k}"));
        run(&ws, &suite, &dir, &["--no-cache", "--shard", &format!("{k}/3")]);
        parts.push(dir);
    }
    let sizes: Vec<usize> = parts
        .iter()
        .map(|p| read_json(&p.join("run.json"))["items"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), n);
    assert!(sizes.iter().all(|&s| s > 0 && s < n), "each shard holds a part: {sizes:?}");
    let merged = ws.run_dir("merged");
    let out = output(evalgate(ws.path()).arg("merge").args(&parts).arg("--out").arg(&merged));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let strip = |mut v: Value| {
        for key in ["started_at", "finished_at"] {
            v.as_object_mut().unwrap().remove(key);
        }
        for b in v["backends"].as_array_mut().unwrap() {
            b.as_object_mut().unwrap().remove("latency_ms");
        }
        v
    };
    assert_eq!(strip(results(&single)), strip(results(&merged)));
    // Merging the same shard twice is refused.
    let out = output(
        evalgate(ws.path())
            .arg("merge")
            .arg(&parts[0])
            .arg(&parts[0])
            .arg("--out")
            .arg(ws.run_dir("twice")),
    );
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("more than one run"), "{}", out.stderr);
}

#[test]
fn requests_per_minute_paces_the_run() {
    let server = TestServer::start_in_thread(|req, _| answer(req));
    // 1,200 a minute is 20 a second with a one-second bucket: 50 requests need at least 1.5 s.
    let (ws, suite) = workspace(50, &server.base_url(), "    requests_per_minute: 1200\n");
    let started = Instant::now();
    run(&ws, &suite, &ws.run_dir("run"), &["--no-cache"]);
    let took = started.elapsed().as_secs_f64();
    assert!(took >= 1.4, "50 requests at 20/s took only {took:.2} s");
    assert_eq!(server.request_count(), 50);
}

#[test]
fn classes_csv_holds_every_class_of_every_backend() {
    let server = TestServer::start_in_thread(|req, _| answer(req));
    let n = 12;
    let (ws, suite) = workspace(n, &server.base_url(), "");
    let dir = ws.run_dir("run");
    run(&ws, &suite, &dir, &["--no-cache"]);
    let text = std::fs::read_to_string(dir.join("classes.csv")).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "backend,label,support,predicted,precision,recall,f1");
    assert_eq!(
        rows[1..],
        [
            "api,billing,4,4,1.000000,1.000000,1.000000",
            "api,technical,4,4,1.000000,1.000000,1.000000",
            "api,other,4,4,1.000000,1.000000,1.000000",
        ]
    );
}

#[test]
fn console_and_report_agree_on_a_backend_with_no_answers() {
    // Every request is refused with a 400, which is not retried: no answer at all.
    let server = TestServer::start_in_thread(|_, _| {
        Reply::openai_error(400, "bad request", "invalid_request_error", None)
    });
    let (ws, suite) = workspace(6, &server.base_url(), "");
    let dir = ws.run_dir("run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&dir).arg("--no-cache"));
    let b = &results(&dir)["backends"][0];
    assert_eq!((u(&b["answered"]), u(&b["errors"])), (0, 6));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let row = md.lines().find(|l| l.starts_with("| api |")).expect("a summary row");
    assert!(row.contains("| — |"), "the report shows no accuracy: {row}");
    let line = out.stderr.lines().find(|l| l.starts_with("api ")).expect("a console line");
    assert!(line.contains("accuracy — (no answers)"), "{line}");
    assert!(!out.stderr.contains(" 0.0% (95% CI"), "no 0.0% accuracy:\n{}", out.stderr);
}

/// Moves every answer in the cache `days` into the past.
fn age_cache(ws: &Workspace, days: i64) {
    let db = rusqlite::Connection::open(ws.path().join("cache.sqlite")).unwrap();
    let aged =
        db.execute("UPDATE responses SET created_at = created_at - ?1", [days * 86_400]).unwrap();
    assert!(aged > 0);
}

#[test]
fn cached_answers_older_than_the_max_age_are_asked_again() {
    let server = TestServer::start_in_thread(|req, _| answer(req));
    let n = 12;
    let (ws, suite) = workspace(n, &server.base_url(), "");
    run(&ws, &suite, &ws.run_dir("first"), &[]);
    assert_eq!(server.request_count(), n);
    age_cache(&ws, 10);

    // Ten days old, a week allowed: asked again, and the fresh answers replace the old.
    let second = ws.run_dir("second");
    run(&ws, &suite, &second, &["--cache-max-age", "7d"]);
    assert_eq!(server.request_count(), 2 * n);
    assert_eq!(u(&backend(&results(&second), "api")["cached"]), 0);

    // The suite's own default: ten days old, thirty allowed.
    age_cache(&ws, 10);
    let suite_text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(&suite, format!("{suite_text}cache: {{ max_age: 30d }}\n")).unwrap();
    let third = ws.run_dir("third");
    run(&ws, &suite, &third, &[]);
    assert_eq!(server.request_count(), 2 * n, "all answered from the cache");
    let results = results(&third);
    let b = backend(&results, "api");
    assert_eq!(u(&b["cached"]), n as u64);
    let ten_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86_400);
    let day = &evalgate::time::rfc3339(ten_days_ago)[..10];
    assert!(b["cached_between"][0].as_str().unwrap().starts_with(day), "{b}");
    // Each record says when its answer was given.
    assert!(records(&third).iter().all(|r| r["cached_at"].as_str().unwrap().starts_with(day)));
    // And the flag overrides the suite.
    let fourth = ws.run_dir("fourth");
    run(&ws, &suite, &fourth, &["--cache-max-age", "1d"]);
    assert_eq!(server.request_count(), 3 * n);
}

#[test]
fn the_budget_counts_only_requests_the_cache_will_not_answer() {
    let server = TestServer::start_in_thread(|req, _| answer(req));
    let n = 10;
    let priced = "    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }\n";
    let (ws, suite) = workspace(n, &server.base_url(), priced);
    run(&ws, &suite, &ws.run_dir("first"), &[]);
    assert_eq!(server.request_count(), n);
    // Everything is cached: nothing will be sent, so nothing will be spent.
    run(&ws, &suite, &ws.run_dir("second"), &["--max-cost-usd", "0"]);
    assert_eq!(server.request_count(), n);
    // With --refresh every request goes out again, and the estimate says so.
    let cache = ws.path().join("cache.sqlite");
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(ws.run_dir("third"))
            .arg("--cache")
            .arg(&cache)
            .args(["--refresh", "--max-cost-usd", "0"]),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("would cost about"), "{}", out.stderr);
    assert_eq!(server.request_count(), n);
}
