//! `evalgate gate` end to end against the in-process OpenAI-compatible server: pass, fail and
//! inconclusive verdicts with their exit codes, missing credentials and dead servers (exit 2),
//! `--run DIR` without a request, `--policy`, the JUnit file, the step summary, and the
//! validation of the `gate:` section.

use std::path::{Path, PathBuf};

use crate::support::openai_server::{RecordedRequest, Reply, TestServer};
use crate::support::*;

const LABELS: [&str; 2] = ["spam", "ham"];

fn gold(i: usize) -> &'static str {
    LABELS[i % 2]
}

fn wrong(i: usize) -> &'static str {
    LABELS[(i + 1) % 2]
}

/// A server on which model `m-<id>` answers item `i` right when `(i % 100) < percent(id)`, so
/// every backend's accuracy over a multiple of 100 items is exactly its percentage.
fn server(percent: fn(&str) -> usize) -> TestServer {
    TestServer::start_in_thread(move |req: &RecordedRequest, _| {
        let i = item_number(req).expect("numbered item");
        let id = req.model().unwrap_or_default().trim_start_matches("m-").to_string();
        Reply::chat(if i % 100 < percent(&id) { gold(i) } else { wrong(i) })
    })
}

/// A suite over `n` numbered items with the given backends and gate section.
fn workspace(n: usize, backends: &str, gate: &str) -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let rows: Vec<Row> =
        (0..n).map(|i| row(&format!("it-{i}"), &format!("item {i}"), gold(i))).collect();
    ws.write("test.csv", &rows_csv(&rows));
    let suite = format!(
        r#"schema_version: 1
name: gated
task:
  kind: classification
  labels: [spam, ham]
  instructions: "Answer with spam or ham."
  input: "Message: {{{{ text }}}}"
data:
  test: test.csv
backends:
{backends}{gate}"#
    );
    let path = ws.write("suite.yaml", &suite);
    (ws, path)
}

fn backend_yaml(id: &str, base: &str, extra: &str) -> String {
    format!(
        "  - id: {id}\n    provider: openai\n    base_url: {base}\n    model: m-{id}\n    max_attempts: 1\n{extra}"
    )
}

fn gate_cmd(ws: &Workspace, suite: &Path) -> std::process::Command {
    let mut cmd = evalgate(ws.path());
    cmd.arg("gate").arg(suite).arg("--out").arg(ws.run_dir("run")).arg("--quiet");
    cmd
}

fn check<'a>(results: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    results["gate"]["checks"]
        .as_array()
        .expect("gate checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {}", results["gate"]))
}

/// 95% of 200 items right against a floor of 80%: the lower bound (≈ 91%) clears it. The JUnit
/// file, the step summary, results.json and the top of report.md all carry the verdict.
#[test]
fn a_candidate_clearly_above_the_floor_passes() {
    let server = server(|_| 95);
    let gate = "gate:\n  candidate: cand\n  min_accuracy: 0.8\n  max_invalid_rate: 0.1\n";
    let (ws, suite) = workspace(200, &backend_yaml("cand", &server.base_url(), ""), gate);
    let junit = ws.run_dir("junit.xml");
    let summary = ws.write("summary.md", "earlier step\n");
    let out = output(
        gate_cmd(&ws, &suite).arg("--junit").arg(&junit).env("GITHUB_STEP_SUMMARY", &summary),
    );
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("min_accuracy") && out.stdout.contains("PASS"), "{}", out.stdout);
    assert!(out.stdout.contains("gate PASSED"), "{}", out.stdout);

    let results = results(&ws.run_dir("run"));
    assert_eq!(results["gate"]["passed"], true);
    assert_eq!(results["gate"]["candidate"], "cand");
    let acc = check(&results, "min_accuracy");
    assert_eq!(acc["verdict"], "pass");
    assert_close(f(&acc["value"]), 0.95, "accuracy");
    assert_close(f(&acc["low"]), wilson(190, 200).0, "Wilson lower bound");
    assert_eq!(f(&acc["threshold"]), 0.8);
    assert_eq!(check(&results, "max_error_rate.candidate")["verdict"], "pass");

    let report = std::fs::read_to_string(ws.run_dir("run").join("report.md")).unwrap();
    let gate_at = report.find("## Gate: passed").expect("gate section");
    assert!(gate_at < report.find("## Summary").unwrap(), "the gate comes first");

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_junit_well_formed(&xml);
    let checks = results["gate"]["checks"].as_array().unwrap().len();
    assert_eq!(xml.matches("<testcase ").count(), checks, "one testcase per check");
    assert_eq!(xml.matches("<failure ").count(), 0);
    assert!(xml.contains("<testsuite name=\"evalgate gate\""));

    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(summary.starts_with("earlier step\n"), "appended, not replaced");
    assert!(summary.contains("## Gate: passed") && summary.contains("| min_accuracy |"));
}

/// 60% of 200 against a floor of 80%: the upper bound (≈ 66%) is below it.
#[test]
fn a_candidate_clearly_below_the_floor_fails() {
    let server = server(|_| 60);
    let (ws, suite) = workspace(
        200,
        &backend_yaml("cand", &server.base_url(), ""),
        "gate:\n  candidate: cand\n  min_accuracy: 0.8\n",
    );
    let junit = ws.run_dir("junit.xml");
    let out = output(gate_cmd(&ws, &suite).arg("--junit").arg(&junit));
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAIL"), "{}", out.stdout);
    let results = results(&ws.run_dir("run"));
    assert_eq!(results["gate"]["passed"], false);
    let acc = check(&results, "min_accuracy");
    assert_eq!(acc["verdict"], "fail");
    assert!(f(&acc["high"]) < 0.8);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_junit_well_formed(&xml);
    assert_eq!(xml.matches("<failure ").count(), 1);
    assert!(xml.contains("type=\"fail\""));
}

/// 17 of 20 right (85%) against a floor of 80%: the interval straddles it, and the verdict says
/// how many items would settle it.
#[test]
fn a_candidate_near_the_floor_on_few_items_is_inconclusive() {
    // (i % 100) < 85 on items 0..20 is every item; answer wrong on 3 of them instead.
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        let i = item_number(req).expect("numbered item");
        Reply::chat(if [2, 9, 15].contains(&i) { wrong(i) } else { gold(i) })
    });
    let (ws, suite) = workspace(
        20,
        &backend_yaml("cand", &server.base_url(), ""),
        "gate:\n  candidate: cand\n  min_accuracy: 0.8\n",
    );
    let junit = ws.run_dir("junit.xml");
    let out = output(gate_cmd(&ws, &suite).arg("--junit").arg(&junit));
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("INCONCLUSIVE"), "{}", out.stdout);
    let results = results(&ws.run_dir("run"));
    let acc = check(&results, "min_accuracy");
    assert_eq!(acc["verdict"], "inconclusive");
    assert!(f(&acc["low"]) < 0.8 && f(&acc["high"]) > 0.8);
    let detail = acc["detail"].as_str().unwrap();
    // items_to_clear_threshold(0.85, 0.8, 0.8, 0.95) = sample_size_one_proportion(0.8, 0.85) = 471:
    // ((1.96·√(0.8·0.2) + 0.8416·√(0.85·0.15)) / 0.05)² = 470.5, rounded up (Lachin 1981).
    assert!(detail.contains("about 471 items would settle it"), "{detail}");
    assert!(detail.contains("the run has 20"), "{detail}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_junit_well_formed(&xml);
    assert!(xml.contains("type=\"inconclusive\""), "{xml}");
}

/// The candidate's key is missing: it is skipped by the run, and the gate cannot judge (exit 2).
#[test]
fn a_missing_key_for_the_candidate_exits_2() {
    let server = server(|_| 95);
    let var = unique("EVALGATE_GATE_UNSET_KEY");
    let backends = format!(
        "{}{}",
        backend_yaml("cand", &server.base_url(), &format!("    api_key_env: {var}\n")),
        backend_yaml("base", &server.base_url(), "")
    );
    let gate = "gate:\n  candidate: cand\n  baseline: base\n  non_inferiority_margin: 0.05\n";
    let (ws, suite) = workspace(100, &backends, gate);
    let out = output(gate_cmd(&ws, &suite).env_remove(&var));
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("`cand` was skipped") && out.stderr.contains(&var),
        "{}",
        out.stderr
    );
}

/// A port nothing listens on: every request fails. `run` writes its report, says so at the top
/// and exits 2; `gate` exits 2 (the run cannot be judged), not 1.
#[test]
fn a_dead_port_exits_2_for_run_and_gate() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}/v1");
    let (ws, suite) = workspace(
        10,
        &backend_yaml("cand", &base, "    timeout_secs: 5\n"),
        "gate:\n  candidate: cand\n  min_accuracy: 0.8\n",
    );
    let run = ws.run_dir("dead-run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).arg("--quiet"));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("10 of 10 requests to `cand` failed"), "{}", out.stderr);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let alert = report.find("**Errors above the limit:** 10 of 10 requests to `cand`").unwrap();
    assert!(alert < report.find("## Summary").unwrap(), "said at the top");
    assert_eq!(results(&run)["error_rate_exceeded"][0]["backend"], "cand");

    // Even a limit of 100% does not pass a backend whose every request failed.
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(ws.run_dir("dead-run-2"))
            .arg("--quiet")
            .args(["--max-error-rate", "1"]),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);

    let out = output(&mut gate_cmd(&ws, &suite));
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("CANNOT JUDGE"), "{}", out.stdout);
    let results = results(&ws.run_dir("run"));
    let errors = check(&results, "max_error_rate.candidate");
    assert_eq!(errors["verdict"], "fail");
    assert_eq!(errors["infrastructure"], true);

    // The same run judged with --run: exit 2 as well.
    let out = output(evalgate(ws.path()).arg("gate").arg(&suite).arg("--run").arg(&run));
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
}

/// `gate --run DIR` judges a finished run from its journal alone, with a `--policy` file
/// (written as a suite section) replacing the suite's: a candidate that answers exactly like its
/// baseline on 400 items is not worse by 5 points, and the suite has the power to show it.
#[test]
fn gate_with_run_dir_sends_no_request() {
    let server = server(|_| 90);
    let backends = format!(
        "{}{}",
        backend_yaml("cand", &server.base_url(), ""),
        backend_yaml("base", &server.base_url(), "")
    );
    // The suite's own gate would fail; the policy file replaces it.
    let (ws, suite) = workspace(400, &backends, "gate:\n  candidate: cand\n  min_accuracy: 0.99\n");
    let run = ws.run_dir("run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).arg("--quiet"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let sent = server.request_count();
    assert_eq!(sent, 800);

    let policy = ws.write(
        "policy.yaml",
        "gate:\n  candidate: cand\n  baseline: base\n  non_inferiority_margin: 0.05\n  min_accuracy: 0.85\n",
    );
    let out = output(
        evalgate(ws.path())
            .arg("gate")
            .arg(&suite)
            .arg("--run")
            .arg(&run)
            .arg("--policy")
            .arg(&policy),
    );
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(server.request_count(), sent, "no request for a gate on a run directory");
    let results = results(&run);
    assert_eq!(results["gate"]["baseline"], "base");
    let ni = check(&results, "non_inferiority_margin");
    assert_eq!(ni["verdict"], "pass");
    assert_eq!(f(&ni["threshold"]), -0.05);
    assert_eq!(f(&ni["value"]), 0.0);
    assert_eq!(check(&results, "power")["verdict"], "pass");
    assert_eq!(check(&results, "max_error_rate.baseline")["verdict"], "pass");

    // The suite's own policy, on the same run: 90% is clearly below 99%.
    let out = output(evalgate(ws.path()).arg("gate").arg(&suite).arg("--run").arg(&run));
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(server.request_count(), sent);
}

/// An extraction suite sampled twice per item: the same checks on the exact-record match, with
/// the interval clustered by item, plus micro-F1 and per-field accuracy.
#[test]
fn extraction_checks_with_repeated_samples() {
    // Every tenth item gets the total wrong, on both samples: 90% exact match, perfectly
    // correlated within items.
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        let i = item_number(req).expect("numbered item");
        let total = if i.is_multiple_of(10) { i + 1 } else { i };
        Reply::chat(format!(r#"{{"company": "C{i}", "total": {total}}}"#))
    });
    let ws = Workspace::new();
    let data: String = (0..60)
        .map(|i| format!(
            "{{\"id\": \"r{i}\", \"text\": \"item {i}\", \"expected\": {{\"company\": \"C{i}\", \"total\": {i}}}}}\n"
        ))
        .collect();
    ws.write("test.jsonl", &data);
    let suite = format!(
        "schema_version: 1\nname: receipts\ntask:\n  kind: extraction\n  fields: {{ company: {{ type: string }}, total: {{ type: number }} }}\n  instructions: x\n  input: \"{{{{ text }}}}\"\ndata: {{ test: test.jsonl }}\nbackends:\n  - {{ id: m, provider: openai, model: m, base_url: {}, epochs: 2, temperature: 1, max_attempts: 1 }}\ngate:\n  candidate: m\n  min_accuracy: 0.6\n  min_micro_f1: 0.8\n  min_field_accuracy: {{ company: 0.9, total: 0.99 }}\n",
        server.base_url()
    );
    let suite = ws.write("suite.yaml", &suite);
    let out = output(&mut gate_cmd(&ws, &suite));
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    let results = results(&ws.run_dir("run"));
    let acc = check(&results, "min_accuracy");
    assert_eq!(acc["verdict"], "pass");
    assert_close(f(&acc["value"]), 0.9, "exact match");
    // Two samples that always agree are worth one: the clustered interval is Wilson's on the 60
    // items, not on the 120 samples.
    let (low, high) = wilson(54, 60);
    assert_close(f(&acc["low"]), low, "clustered lower bound");
    assert_close(f(&acc["high"]), high, "clustered upper bound");
    assert_eq!(check(&results, "min_micro_f1")["verdict"], "pass");
    assert_eq!(check(&results, "min_field_accuracy.company")["verdict"], "pass");
    let total = check(&results, "min_field_accuracy.total");
    assert_eq!(total["verdict"], "fail", "{total}");
    let b = backend(&results, "m");
    assert_close(
        f(&total["value"]),
        f(&b["fields"]["total"]["accuracy"]["estimate"]),
        "the field's accuracy as scored",
    );
}

/// The gate section is validated like the rest of the suite: file, key and line, before any
/// request is sent.
#[test]
fn gate_policy_errors_name_file_key_and_line() {
    let backends = backend_yaml("cand", "http://127.0.0.1:9/v1", "");
    let gate = "gate:\n  candidate: nobody\n  min_accuracy: 1.5\n  min_recall: { fraud: 0.9 }\n  non_inferiority_margin: 0.02\n";
    let (ws, suite) = workspace(10, &backends, gate);
    let text = std::fs::read_to_string(&suite).unwrap();
    let out = output(evalgate(ws.path()).arg("validate").arg(&suite));
    let at = |needle: &str| format!("suite.yaml:{}", line_of(&text, needle));
    assert_problem(&out, &at("candidate: nobody"), &["gate.candidate", "`nobody`"]);
    assert_problem(&out, &at("min_accuracy: 1.5"), &["gate.min_accuracy", "out of range"]);
    assert_problem(&out, &at("min_recall"), &["gate.min_recall.fraud", "no label `fraud`"]);
    assert_problem(&out, &at("non_inferiority_margin"), &["no baseline", "baseline:"]);

    // An unknown key is an error too, with its line.
    let (ws, suite) = workspace(10, &backends, "gate:\n  candidate: cand\n  min_acuracy: 0.8\n");
    let out = output(evalgate(ws.path()).arg("gate").arg(&suite));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("min_acuracy"), "{}", out.stderr);

    // A suite without a gate, and no --policy: a usage error.
    let (ws, suite) = workspace(10, &backends, "");
    let out = output(evalgate(ws.path()).arg("gate").arg(&suite));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("no `gate:` section"), "{}", out.stderr);

    // A --policy file is checked the same way, and its errors name the policy file.
    let policy =
        ws.write("policy.yaml", "# the release gate\ncandidate: cnad\nmin_accuracy: 0.8\n");
    let out = output(evalgate(ws.path()).arg("gate").arg(&suite).arg("--policy").arg(&policy));
    assert_problem(&out, "policy.yaml:2", &["gate.candidate", "`cnad`", "cand"]);
}

/// A minimal well-formedness check: every tag closes in order, attribute values are quoted and
/// hold no raw `<` or `&` that is not an entity, and there is one root.
fn assert_junit_well_formed(xml: &str) {
    let body = xml.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n").expect("prolog");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    let mut roots = 0;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open]);
        let close = rest[open..].find('>').expect("unclosed tag") + open;
        let tag = &rest[open + 1..close];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else {
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag.split_whitespace().next().expect("tag name").to_string();
            let attrs = &tag[name.len()..];
            assert_eq!(attrs.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
            for value in attrs.split('"').skip(1).step_by(2) {
                check_text(value);
            }
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name);
            }
        }
        rest = &rest[close + 1..];
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    assert_eq!(roots, 1, "one root element");
}

fn check_text(text: &str) {
    assert!(!text.contains('<'), "raw < in {text:?}");
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        let entity = &rest[amp..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#10;", "&#13;"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "raw & in {text:?}"
        );
        rest = &rest[amp + 1..];
    }
}
