//! The binary: version, exit codes, the quick-start suite, `report` rebuilding a run, skipped
//! backends, and API keys that never leave the Authorization header.

use std::collections::HashSet;
use std::path::Path;

use crate::support::openai_server::{Reply, TestServer};
use crate::support::*;

#[test]
fn version_exits_zero() {
    let ws = Workspace::new();
    let out = output(evalgate(ws.path()).arg("--version"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("evalgate {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_two() {
    let ws = Workspace::new();
    let out = output(evalgate(ws.path()).arg("frobnicate"));
    assert_eq!(out.code, Some(2), "unknown subcommand: {}", out.stderr);
    assert!(out.stderr.contains("frobnicate"), "{}", out.stderr);
    let out = output(evalgate(ws.path()).arg("run"));
    assert_eq!(out.code, Some(2), "missing suite argument: {}", out.stderr);
    let out = output(evalgate(ws.path()).arg("run").arg("no-such-suite.yaml"));
    assert_eq!(out.code, Some(2), "missing suite file: {}", out.stderr);
    assert!(out.stderr.contains("no-such-suite.yaml"), "{}", out.stderr);
}

#[test]
fn quickstart_runs_offline_and_report_rebuilds_it() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/quickstart.yaml");
    let ws = Workspace::new();
    let run = ws.run_dir("run");
    let out = output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run));
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        run.join("report.md").display().to_string(),
        "stdout is the report path"
    );

    let first = results(&run);
    let backends: Vec<&str> =
        first["backends"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(backends, ["baseline", "smollm2-zero-recorded", "smollm2-fewshot-recorded"]);
    // The recorded SmolLM2 replies: every item answered (no error), tokens from the server.
    for id in ["smollm2-zero-recorded", "smollm2-fewshot-recorded"] {
        let b = backend(&first, id);
        assert_eq!((u(&b["items"]), u(&b["answered"]), u(&b["errors"])), (240, 240, 0), "{id}");
    }
    let baseline = backend(&first, "baseline");
    let accuracy = f(&baseline["accuracy"]["estimate"]);
    assert!(accuracy >= 0.8, "baseline accuracy {accuracy}");
    // The fixture test.csv has 240 rows (counted with Python's csv module).
    assert_eq!(
        (u(&baseline["items"]), u(&baseline["answered"]), u(&baseline["errors"])),
        (240, 240, 0)
    );
    let skipped: HashSet<&str> =
        first["skipped"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(skipped, HashSet::from(["mini-zero", "mini-5shot", "ft-mini"]));
    for s in first["skipped"].as_array().unwrap() {
        assert!(s["reason"].as_str().unwrap().contains("OPENAI_API_KEY"), "{s}");
    }
    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap();
    // The suite's gate is judged in the report (and kept for the rebuild below).
    assert!(markdown.contains("## Gate: passed"), "{markdown}");
    assert_eq!(first["gate"]["passed"], true);
    // Every backend is priced (the self-hosting assumption), so the recommendation has a cost
    // conclusion; a backend with no correct answer has no cost per correct answer, and the
    // report says why rather than calling its price unknown.
    assert!(markdown.contains("It is also the cheapest per correct answer"), "{markdown}");
    assert!(
        markdown.contains("`smollm2-zero-recorded` answered no item correctly, so it has no cost per correct answer."),
        "{markdown}"
    );
    assert!(!markdown.contains("No price is known"), "{markdown}");
    let csv_before = std::fs::read(run.join("records.csv")).unwrap();
    assert_eq!(records(&run).len(), 3 * 240);
    assert!(records(&run).iter().all(|r| r["tokens"]["estimated"] == false));

    // `report` rebuilds every output from the journal alone.
    for file in ["results.json", "report.md", "records.csv"] {
        std::fs::remove_file(run.join(file)).unwrap();
    }
    let out = output(evalgate(ws.path()).arg("report").arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(results(&run), first, "results.json rebuilt identically");
    assert_eq!(
        std::fs::read_to_string(run.join("report.md")).unwrap(),
        markdown,
        "report.md rebuilt identically"
    );
    assert_eq!(
        std::fs::read(run.join("records.csv")).unwrap(),
        csv_before,
        "records.csv rebuilt identically"
    );
}

#[test]
fn run_refuses_to_overwrite_a_run() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/quickstart.yaml");
    let ws = Workspace::new();
    let run = ws.run_dir("run");
    ws.write("run/records.jsonl", "");
    let out = output(
        evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).arg("--limit").arg("3"),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("already holds a run"), "{}", out.stderr);
}

/// `evalgate … | head -0`: stdout is a pipe nobody reads. Every write fails with a broken pipe,
/// which must end the command quietly with exit 0 (as in ripgrep), not with a panic (exit 101).
#[test]
fn broken_pipe_on_stdout_exits_zero_quietly() {
    // None of these writes a file: they run in the repository, where `suites/` is.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let commands: [&[&str]; 3] = [
        &["stats", "proportion", "--correct", "90", "--total", "100"],
        &["validate", "suites/quickstart.yaml"],
        &["cost", "--requests-per-day", "1000", "--input-price", "0.15"],
    ];
    for args in commands {
        // The read end is closed before the child starts, so its first write fails: no race.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = output(evalgate(repo).args(args).stdout(writer));
        assert!(!out.stderr.contains("panicked"), "{args:?} panicked:\n{}", out.stderr);
        assert_eq!(out.code, Some(0), "{args:?}: stderr:\n{}", out.stderr);
        assert_eq!(out.stderr, "", "{args:?}: a closed stdout is not an error");
    }
}

const KEYED_SUITE: &str = r#"schema_version: 1
name: keyed
task:
  kind: classification
  labels: [billing, technical]
  instructions: "Answer with {{ labels | join(' or ') }}."
  input: "Ticket: {{ text }}"
data:
  test: test.csv
backends:
  - id: served
    provider: openai
    base_url: @BASE@
    model: m-served
  - id: locked
    provider: openai
    base_url: @BASE@
    api_key_env: @VAR@
    model: m-locked
"#;

fn keyed_workspace(base: &str, var: &str) -> (Workspace, std::path::PathBuf) {
    let ws = Workspace::new();
    ws.write(
        "test.csv",
        &rows_csv(&[
            row("k-1", "charged twice", "billing"),
            row("k-2", "app crashes", "technical"),
            row("k-3", "refund please", "billing"),
        ]),
    );
    let suite = ws.write("suite.yaml", &KEYED_SUITE.replace("@BASE@", base).replace("@VAR@", var));
    (ws, suite)
}

fn answer_billing(
) -> impl Fn(&crate::support::openai_server::RecordedRequest, usize) -> Reply + Send + Sync + 'static
{
    |_, _| Reply::chat("billing")
}

#[test]
fn a_backend_without_its_key_is_skipped_or_fails_with_require_all() {
    let server = TestServer::start_in_thread(answer_billing());
    let var = unique("EVALGATE_TEST_UNSET_KEY");
    let (ws, suite) = keyed_workspace(&server.base_url(), &var);
    let run = ws.run_dir("run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).env_remove(&var));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("locked") && out.stderr.contains(&var),
        "a visible note: {}",
        out.stderr
    );
    assert_eq!(server.request_count(), 3, "only `served` sends requests");
    assert!(server.requests().iter().all(|r| r.model() == Some("m-served")));

    let results = results(&run);
    let skipped = results["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{results}");
    assert_eq!(skipped[0]["id"], "locked");
    assert!(skipped[0]["reason"].as_str().unwrap().contains(&var), "{}", skipped[0]);
    let ids: Vec<&str> =
        results["backends"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["served"]);
    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        markdown.contains("`locked`") && markdown.contains(&var),
        "report.md mentions the skipped backend:\n{markdown}"
    );

    let strict = ws.run_dir("strict");
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(&strict)
            .arg("--require-all")
            .env_remove(&var),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("locked") && out.stderr.contains(&var), "{}", out.stderr);
    assert_eq!(server.request_count(), 3, "--require-all fails before any request");
    assert!(!strict.join("records.jsonl").exists());
}

/// Every file of `dir` and the process output are free of `secret`.
fn assert_nowhere(secret: &str, dir: &Path, out: &Outcome) {
    assert!(!out.stdout.contains(secret), "key in stdout");
    assert!(!out.stderr.contains(secret), "key in stderr");
    let files = files_under(dir);
    assert!(files.len() >= 5, "expected a full run directory, got {files:?}");
    assert_no_file_holds(dir, secret);
}

#[test]
fn the_api_key_goes_only_into_the_authorization_header() {
    // One item fails with 401 so that error paths are covered too.
    let server = TestServer::start_in_thread(|req, _| {
        if req.last_user_text().as_deref() == Some("Ticket: refund please") {
            Reply::openai_error(
                401,
                "Incorrect API key provided.",
                "invalid_request_error",
                Some("invalid_api_key"),
            )
        } else {
            Reply::chat("billing")
        }
    });
    let var = unique("EVALGATE_TEST_KEY");
    let key = unique("sk-evalgate-secret");
    let (ws, suite) = keyed_workspace(&server.base_url(), &var);
    let run = ws.run_dir("run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).env(&var, &key));
    // One request of three fails on each backend: above the default 5% error limit, so the run
    // writes its report and exits 2.
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(run.join("report.md").exists());

    let requests = server.requests();
    assert_eq!(requests.len(), 6);
    let bearer = format!("Bearer {key}");
    for r in requests.iter().filter(|r| r.model() == Some("m-locked")) {
        assert_eq!(r.header("authorization"), Some(bearer.as_str()));
    }
    for r in requests.iter().filter(|r| r.model() == Some("m-served")) {
        assert!(
            !r.header("authorization").unwrap_or_default().contains(&key),
            "key sent to a backend that names no key"
        );
    }
    assert_eq!(u(&backend(&results(&run), "locked")["errors"]), 1);
    assert_nowhere(&key, &run, &out);

    let again = output(evalgate(ws.path()).arg("report").arg(&run).env(&var, &key));
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_nowhere(&key, &run, &again);
}

#[test]
fn a_key_with_a_trailing_newline_is_trimmed() {
    let server = TestServer::start_in_thread(answer_billing());
    let var = unique("EVALGATE_TEST_KEY_NL");
    let key = unique("sk-evalgate-newline");
    let (ws, suite) = keyed_workspace(&server.base_url(), &var);
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(ws.run_dir("run"))
            .env(&var, format!("{key}\n")),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let bearer = format!("Bearer {key}");
    let locked: Vec<_> =
        server.requests().into_iter().filter(|r| r.model() == Some("m-locked")).collect();
    assert_eq!(locked.len(), 3);
    for r in locked {
        assert_eq!(r.header("authorization"), Some(bearer.as_str()));
    }
}

#[test]
fn the_openai_key_is_not_sent_to_a_self_hosted_server() {
    let server = TestServer::start_in_thread(answer_billing());
    let var = unique("EVALGATE_TEST_KEY_OTHER");
    let openai_key = unique("sk-evalgate-openai");
    let (ws, suite) = keyed_workspace(&server.base_url(), &var);
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(ws.run_dir("run"))
            .arg("--backend")
            .arg("served")
            .env("OPENAI_API_KEY", &openai_key),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for r in requests {
        for (name, value) in &r.headers {
            assert!(
                !value.contains(&openai_key),
                "OPENAI_API_KEY leaked to a self-hosted server in `{name}`"
            );
        }
    }
}

#[test]
fn limit_and_backend_choose_items_and_backends() {
    let server = TestServer::start_in_thread(answer_billing());
    let var = unique("EVALGATE_TEST_UNUSED");
    let (ws, suite) = keyed_workspace(&server.base_url(), &var);
    let run = ws.run_dir("run");
    let out = output(
        evalgate(ws.path())
            .args(["run", "--limit", "2", "--backend", "served", "--quiet", "--out"])
            .arg(&run)
            .arg(&suite),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(server.request_count(), 2);
    let results = results(&run);
    assert_eq!(results["items"], 2);
    assert_eq!(results["skipped"], serde_json::json!([]), "an unselected backend is not skipped");
    let ids: Vec<&str> =
        results["backends"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["served"]);
    let out = output(
        evalgate(ws.path())
            .args(["run", "--backend", "nope", "--out"])
            .arg(ws.run_dir("other"))
            .arg(&suite),
    );
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("nope") && out.stderr.contains("served"), "{}", out.stderr);
}

#[test]
fn a_key_that_cannot_be_a_header_is_an_error_not_a_dropped_item() {
    // A key with a line break inside (a two-line secrets file, a bad paste). Today
    // async-openai's `OpenAIConfig::headers` (config.rs:208) unwraps InvalidHeaderValue and
    // panics inside the request task; `drive_backend` (src/runner/mod.rs) ignores the JoinError,
    // so no record is written: results.json says answered 0, errors 0, missing 3, exit 0.
    let server = TestServer::start_in_thread(answer_billing());
    let var = unique("EVALGATE_TEST_KEY_BAD");
    let key = unique("sk-evalgate-bad");
    let (ws, suite) = keyed_workspace(&server.base_url(), &var);
    let run = ws.run_dir("run");
    let out = output(
        evalgate(ws.path())
            .args(["run", "--backend", "locked", "--out"])
            .arg(&run)
            .arg(&suite)
            .env(&var, format!("{key}\nsecond-line")),
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!out.stderr.contains(&key), "the key must not be printed");
    match out.code {
        // Refused up front, naming the variable...
        Some(2) => assert!(out.stderr.contains(&var), "{}", out.stderr),
        // ...or every item recorded as an error: never dropped.
        Some(0) => {
            let b = results(&run);
            let b = backend(&b, "locked");
            assert_eq!((u(&b["errors"]), u(&b["missing"])), (3, 0), "{b}");
        }
        other => panic!("exit {other:?}: {}", out.stderr),
    }
}

#[test]
fn init_then_run_in_an_empty_folder_writes_a_report_and_init_never_overwrites() {
    let ws = Workspace::new();
    let o = output(evalgate(ws.path()).arg("init"));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    for name in ["suite.yaml", "train.csv", "test.csv"] {
        assert!(ws.path().join(name).is_file(), "{name}");
    }
    let o = output(evalgate(ws.path()).args(["run", "suite.yaml"]));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let report = ws.path().join(o.stdout.trim());
    assert!(report.ends_with("report.md") && report.is_file(), "{}", o.stdout);
    // A second init refuses, naming the file, and changes nothing.
    std::fs::write(ws.path().join("test.csv"), "mine").unwrap();
    let o = output(evalgate(ws.path()).arg("init"));
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("suite.yaml already exists"), "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(ws.path().join("test.csv")).unwrap(), "mine");
    // Into a new folder.
    let o = output(evalgate(ws.path()).args(["init", "sub/dir"]));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(ws.path().join("sub/dir/suite.yaml").is_file());
}
