//! Helpers shared by the integration tests: temp dirs with a suite and its data, running the
//! binary, reading a run's outputs, and reference statistics computed independently of evalgate.
#![allow(dead_code)]

pub mod anthropic_server;
pub mod batch_server;
pub mod openai_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// z for a two-sided 95% interval: the 0.975 quantile of the standard normal distribution,
/// `scipy.stats.norm.ppf(0.975)` = 1.959963984540054.
pub const Z95: f64 = 1.959963984540054;

/// The Wilson score interval (Wilson 1927; Newcombe 1998, method 3), written out here from the
/// textbook formula rather than taken from evalgate:
/// centre = (p + z²/2n) / (1 + z²/n), half-width = z / (1 + z²/n) · √(p(1−p)/n + z²/4n²).
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    let (k, n) = (successes as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

pub fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!((actual - expected).abs() < 1e-9, "{what}: got {actual}, expected {expected}");
}

/// A temporary folder holding a suite and its data files; deleted on drop.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::Builder::new().prefix("evalgate-it-").tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `name` inside the workspace and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// A run directory that does not exist yet.
    pub fn run_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A CSV file with a header and rows, quoting every field (RFC 4180: quotes doubled).
pub fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = header.join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&row.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// One labelled row: id, text, label.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub text: String,
    pub label: String,
}

pub fn row(id: &str, text: &str, label: &str) -> Row {
    Row { id: id.to_string(), text: text.to_string(), label: label.to_string() }
}

/// `id,text,label` CSV of rows.
pub fn rows_csv(rows: &[Row]) -> String {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|r| vec![r.id.clone(), r.text.clone(), r.label.clone()]).collect();
    csv(&["id", "text", "label"], &rows)
}

/// The binary, with a clean environment for what evalgate reads: no OpenAI or Anthropic key, no
/// OpenAI base URL and no step summary from the machine running the tests, run from `cwd`.
pub fn evalgate(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evalgate"));
    cmd.current_dir(cwd)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("NO_COLOR", "1");
    cmd
}

/// What a finished process did.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn output(cmd: &mut Command) -> Outcome {
    let out = cmd.output().expect("run evalgate");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

pub fn results(run: &Path) -> Value {
    read_json(&run.join("results.json"))
}

/// Every line of `records.jsonl`, parsed.
pub fn records(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("records.jsonl")).expect("read records.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("record is JSON"))
        .collect()
}

/// Data rows of `records.csv` (header excluded), parsed as CSV so quoted line breaks count once.
pub fn csv_rows(run: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(run.join("records.csv")).expect("open records.csv");
    reader.records().map(|r| r.expect("CSV row").iter().map(str::to_string).collect()).collect()
}

/// The backend named `id` in results.json.
pub fn backend<'a>(results: &'a Value, id: &str) -> &'a Value {
    results["backends"]
        .as_array()
        .expect("backends array")
        .iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("no backend `{id}` in results.json: {results:#}"))
}

pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A name no other test (or the machine) uses, for environment variables and keys.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Every file under `dir`, recursively.
/// Panics naming the first file under `dir` whose bytes hold `secret` (an API key).
#[track_caller]
pub fn assert_no_file_holds(dir: &Path, secret: &str) {
    for file in files_under(dir) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the key is in {}",
            file.display()
        );
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs a suite through the library (load, run, write outputs) into `out`, with a fast retry
/// policy, and returns the run directory.
pub async fn run_library(suite: &Path, out: &Path) -> PathBuf {
    let policy = evalgate::backend::RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(200),
    };
    run_library_with(suite, out, policy).await
}

pub async fn run_library_with(
    suite: &Path,
    out: &Path,
    retry: evalgate::backend::RetryPolicy,
) -> PathBuf {
    let suite = Arc::new(
        evalgate::plan::load_suite(suite).unwrap_or_else(|e| panic!("suite should load: {e}")),
    );
    let options = evalgate::plan::RunOptions {
        out_dir: Some(out.to_path_buf()),
        retry,
        ..Default::default()
    };
    let events: evalgate::runner::EventSink = Arc::new(|_| {});
    let stop = Arc::new(evalgate::runner::StopSignal::default());
    let plan = evalgate::plan::RunPlan::resolve(suite, &options, &evalgate::plan::ProcessEnv)
        .unwrap_or_else(|e| panic!("plan failed: {e}"));
    let dir = evalgate::runner::run(plan, events, stop)
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"))
        .dir;
    evalgate::report::write_outputs(&dir).unwrap_or_else(|e| panic!("write_outputs failed: {e}"));
    dir
}

/// 1-based number of the first line of `text` that contains `needle`.
pub fn line_of(text: &str, needle: &str) -> u64 {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{text}")) as u64
        + 1
}

/// Polls `condition` every 5 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for a spawned process; kills it and panics if it outlives `limit`.
pub fn wait_child(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("evalgate (pid {}) still running after {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The number `N` of a request whose last user message contains `item N` (the numbered test rows
/// of `stats_cost` and `resilience`).
pub fn item_number(req: &openai_server::RecordedRequest) -> Option<usize> {
    let text = req.last_user_text()?;
    let rest = &text[text.find("item ")? + 5..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Exit 2, and stderr names `location` (`file:line`, or a file), each of `parts`, and a hint.
#[track_caller]
pub fn assert_problem(out: &Outcome, location: &str, parts: &[&str]) {
    assert_eq!(out.code, Some(2), "exit code 2 expected; stderr:\n{}", out.stderr);
    assert!(out.stderr.contains(location), "stderr should name `{location}`:\n{}", out.stderr);
    for part in parts {
        assert!(out.stderr.contains(part), "stderr should mention `{part}`:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("hint:"), "stderr should give a hint:\n{}", out.stderr);
}

/// Mean TF-IDF cosine between each test item and its `similar` and its `random` few-shot
/// demonstrations (k of each), over the first `limit` test items; asserts on the way that no
/// demonstration is the item itself or a near-duplicate of it.
pub fn similar_vs_random_cosine(
    suite: &evalgate::suite::Suite,
    k: usize,
    limit: usize,
) -> (f64, f64) {
    use evalgate::prompt::{similar::TfIdf, FewShotSelector, PromptTemplates};
    use evalgate::suite::{leakage, FewShot, Selection};
    let train = suite.train.as_ref().expect("a train split");
    let templates = PromptTemplates::compile(&suite.task).expect("templates");
    let inputs: Vec<String> =
        train.items.iter().map(|i| templates.render_input(i).unwrap()).collect();
    let tfidf = TfIdf::fit(inputs.iter().map(String::as_str));
    let index: HashMap<&str, usize> =
        train.items.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
    let selector = |select| {
        FewShotSelector::new(FewShot { k, select, seed: 7, ids: vec![] }, train, &templates)
            .expect("selector")
    };
    let (similar, random) = (selector(Selection::Similar), selector(Selection::Random));
    let (mut sum_similar, mut sum_random, mut n) = (0.0, 0.0, 0usize);
    for item in suite.test.items.iter().take(limit) {
        let input = templates.render_input(item).unwrap();
        let normal = evalgate::text::normalize(&input);
        for (selector, sum) in [(&similar, &mut sum_similar), (&random, &mut sum_random)] {
            let demos = selector.select(&item.id, &input);
            assert_eq!(demos.len(), k);
            for d in demos {
                if std::ptr::eq(selector, &similar) {
                    assert!(
                        !leakage::near_duplicates(&normal, &evalgate::text::normalize(&d.input)),
                        "item {} got its near-copy {}",
                        item.id,
                        d.id
                    );
                }
                *sum += f64::from(tfidf.cosine(&input, index[d.id.as_str()]));
            }
        }
        n += k;
    }
    (sum_similar / n as f64, sum_random / n as f64)
}
