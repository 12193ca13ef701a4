//! `evalgate export`: fine-tuning JSONL whose prompts are byte-identical to what a `fine-tuned`
//! backend sends at evaluation time, checked against a run through the in-process test server.

use std::path::Path;

use serde_json::Value;

use crate::support::openai_server::{Reply, TestServer};
use crate::support::*;

fn export(ws: &Path, suite: &Path, format: &str, split: &str, out: &str) -> Outcome {
    let o = output(evalgate(ws).args([
        "export",
        suite.to_str().unwrap(),
        "--format",
        format,
        "--split",
        split,
        "--out",
        out,
    ]));
    assert_eq!(o.code, Some(0), "export failed: {}", o.stderr);
    o
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// For every test item: the exported messages, less the assistant turn, equal the record's
/// prompt byte for byte; the assistant turn equals the record's gold.
fn assert_prompts_match(ws: &Workspace, suite: &Path, expect_system: bool) {
    let run = ws.run_dir("run");
    let records = records(&run);
    let o = export(ws.path(), suite, "chat-jsonl", "test", "exported.jsonl");
    assert!(o.stderr.contains("characters / 4"), "{}", o.stderr);
    let exported = lines(&ws.path().join("exported.jsonl"));
    assert_eq!(exported.len(), records.len());
    for line in &exported {
        let id = line["id"].as_str().unwrap();
        let record = records.iter().find(|r| r["id"] == id).expect("a record per item");
        let messages = line["messages"].as_array().unwrap();
        let (assistant, prompt) = messages.split_last().unwrap();
        assert_eq!(
            serde_json::to_string(prompt).unwrap(),
            serde_json::to_string(&record["prompt"]).unwrap(),
            "item {id}"
        );
        assert_eq!(assistant["role"], "assistant");
        assert_eq!(assistant["content"], record["gold"], "item {id}");
        assert_eq!(prompt[0]["role"] == "system", expect_system, "item {id}");
    }
    // openai-chat is the same without ids; prompt-completion flattens the same prompt.
    export(ws.path(), suite, "openai-chat", "test", "chat.jsonl");
    let chat = lines(&ws.path().join("chat.jsonl"));
    for (c, e) in chat.iter().zip(&exported) {
        assert_eq!(c["messages"], e["messages"]);
        assert!(c.get("id").is_none());
    }
    export(ws.path(), suite, "prompt-completion", "test", "pc.jsonl");
    for (p, e) in lines(&ws.path().join("pc.jsonl")).iter().zip(&exported) {
        let messages = e["messages"].as_array().unwrap();
        let user = messages[messages.len() - 2]["content"].as_str().unwrap();
        let prompt = p["prompt"].as_str().unwrap();
        assert!(prompt.ends_with(&format!("{user}\n\n###\n\n")), "{prompt:?}");
        assert_eq!(p["completion"], messages.last().unwrap()["content"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_prompts_equal_the_fine_tuned_prompts_classification() {
    let server = TestServer::start(|_, _| Reply::chat("billing")).await;
    let ws = Workspace::new();
    let rows: Vec<Row> = (0..12)
        .map(|i| {
            let label = ["billing", "technical", "account"][i % 3];
            row(
                &format!("t{i}"),
                &format!("Ticket {i} with {{{{ braces }}}} & <b>\"quotes\"</b>"),
                label,
            )
        })
        .collect();
    ws.write("test.csv", &rows_csv(&rows));
    ws.write("train.csv", &rows_csv(&rows[..6]));
    let suite = ws.write(
        "suite.yaml",
        &format!(
            r#"schema_version: 1
name: export-cls
task:
  kind: classification
  labels: [billing, technical, account]
  instructions: "Long: {{{{ labels | join(', ') }}}}"
  input: "Ticket:\n{{{{ text }}}}"
  fine_tuned_instructions: "Route ({{{{ labels | join('/') }}}})."
data: {{ test: test.csv, train: train.csv }}
backends:
  - {{ id: tuned, provider: openai, base_url: "{}", model: ft:x, strategy: fine-tuned }}
"#,
            server.base_url()
        ),
    );
    run_library(&suite, &ws.run_dir("run")).await;
    assert_prompts_match(&ws, &suite, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_prompts_equal_the_fine_tuned_prompts_extraction() {
    let server = TestServer::start(|_, _| Reply::chat("{}")).await;
    let ws = Workspace::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let receipts = std::fs::read_to_string(root.join("suites/receipts.yaml")).unwrap();
    let task = &receipts[receipts.find("task:").unwrap()..receipts.find("data:").unwrap()];
    // No fine_tuned_instructions: the prompt is the user turn alone.
    let task: String = task
        .lines()
        .filter(|l| !l.contains("fine_tuned_instructions"))
        .map(|l| format!("{l}\n"))
        .collect();
    ws.write(
        "test.jsonl",
        &std::fs::read_to_string(root.join("fixtures/receipts/test.jsonl")).unwrap(),
    );
    let suite = ws.write(
        "suite.yaml",
        &format!(
            "schema_version: 1\nname: export-ext\n{task}data: {{ test: test.jsonl }}\nbackends:\n  - {{ id: tuned, provider: openai, base_url: \"{}\", model: ft:x, strategy: fine-tuned }}\n",
            server.base_url()
        ),
    );
    run_library(&suite, &ws.run_dir("run")).await;
    assert_prompts_match(&ws, &suite, false);
}

#[test]
fn validation_file_is_written_beside_the_output_and_costs_are_estimated() {
    let ws = Workspace::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = root.join("suites/quickstart.yaml");
    let o = output(evalgate(ws.path()).args([
        "export",
        suite.to_str().unwrap(),
        "--format",
        "openai-chat",
        "--validation",
        "0.1",
        "--seed",
        "3",
        "--model",
        "gpt-4o-mini",
        "--out",
        "ft.jsonl",
    ]));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let (train, val) =
        (lines(&ws.path().join("ft.jsonl")), lines(&ws.path().join("ft.validation.jsonl")));
    assert_eq!(train.len() + val.len(), 480);
    assert!((40..=56).contains(&val.len()), "{}", val.len());
    assert!(o.stderr.contains("estimated training cost for gpt-4o-mini"), "{}", o.stderr);
    let o = output(evalgate(ws.path()).args([
        "export",
        suite.to_str().unwrap(),
        "--format",
        "openai-chat",
        "--model",
        "some-local-model",
        "--out",
        "ft2.jsonl",
    ]));
    assert!(o.stderr.contains("no training price is known for some-local-model"), "{}", o.stderr);
}
