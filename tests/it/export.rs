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

/// A suite whose train split holds an exact, a re-cased and a lightly edited copy of three test
/// items, beside a clean suite with the same test items.
fn leaky_workspace() -> (Workspace, std::path::PathBuf, std::path::PathBuf) {
    let ws = Workspace::new();
    let test = vec![
        row("te-1", "I was charged twice for the same card payment at the supermarket", "billing"),
        row("te-2", "The mobile app crashes every time I open the settings page", "technical"),
        row("te-3", "How do I change the email address on my profile please", "account"),
        row("te-4", "Where can I download the invoice for last month", "billing"),
        row("te-5", "My password reset link has expired before I could use it", "account"),
    ];
    let mut clean = vec![
        row("tr-1", "Do you offer a discount on the yearly plan", "billing"),
        row("tr-2", "Sync fails with error 503 since this morning", "technical"),
        row("tr-3", "I cannot log in after the latest update", "account"),
        row("tr-4", "Please update the card on file for my subscription", "billing"),
        row("tr-5", "Export to CSV produces an empty file", "technical"),
        row("tr-6", "How do I enable two-factor authentication", "account"),
    ];
    ws.write("clean.csv", &rows_csv(&clean));
    clean.push(row(
        "tr-7",
        "I was charged twice for the same card payment at the supermarket",
        "billing",
    ));
    clean.push(row(
        "tr-8",
        "THE MOBILE APP CRASHES EVERY TIME I OPEN THE SETTINGS PAGE!!",
        "technical",
    ));
    clean.push(row("tr-9", "How do I change the e-mail address on my profile please", "account"));
    ws.write("leaky.csv", &rows_csv(&clean));
    ws.write("test.csv", &rows_csv(&test));
    let suite = |train: &str, extra: &str| {
        format!(
            r#"schema_version: 1
name: leak
task:
  kind: classification
  labels: [billing, technical, account]
  instructions: "Pick one of {{{{ labels | join(', ') }}}}."
  input: "Ticket: {{{{ text }}}}"
  fine_tuned_instructions: Route the ticket.
data: {{ test: test.csv, train: {train} }}
backends:
  - id: baseline
    provider: local
{extra}"#
        )
    };
    let leaky = ws.write("leaky.yaml", &suite("leaky.csv", ""));
    let clean = ws.write("clean.yaml", &suite("clean.csv", ""));
    (ws, leaky, clean)
}

#[test]
fn validate_finds_planted_duplicates_in_the_train_split_and_in_fine_tuning_files() {
    let (ws, leaky, clean) = leaky_workspace();
    let planted = ["te-1 (= tr-7)", "te-2 (= tr-8)", "te-3 (~ tr-9"];
    let o = output(evalgate(ws.path()).args(["validate", leaky.to_str().unwrap()]));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    for p in planted {
        assert!(o.stderr.contains(p), "{p} not in {}", o.stderr);
    }
    assert!(
        o.stderr.contains("2 exactly after normalisation, 1 as near-duplicates"),
        "{}",
        o.stderr
    );
    // The leaky train split as a fine-tuning file, in every format and as plain `text` JSONL.
    for format in ["openai-chat", "chat-jsonl", "prompt-completion"] {
        let file = format!("ft-{format}.jsonl");
        export(ws.path(), &leaky, format, "train", &file);
        let o = output(evalgate(ws.path()).args([
            "validate",
            clean.to_str().unwrap(),
            "--against",
            &file,
        ]));
        assert_eq!(o.code, Some(0), "{}", o.stderr);
        assert!(!o.stderr.contains("training data"), "the clean split leaks: {}", o.stderr);
        assert!(o.stderr.contains("3 test items of"), "{format}: {}", o.stderr);
        for id in ["te-1", "te-2", "te-3"] {
            assert!(o.stderr.contains(&format!("{id} (")), "{format}: {id} in {}", o.stderr);
        }
    }
    ws.write(
        "texts.jsonl",
        "{\"text\": \"how do i change the email address on my profile, please?\"}\n{\"text\": \"unrelated\"}\n",
    );
    let o = output(evalgate(ws.path()).args([
        "validate",
        clean.to_str().unwrap(),
        "--against",
        "texts.jsonl",
    ]));
    assert!(o.stderr.contains("te-3 (= line 1)"), "{}", o.stderr);
    // A file without the test items: nothing found.
    export(ws.path(), &clean, "openai-chat", "train", "clean-ft.jsonl");
    let o = output(evalgate(ws.path()).args([
        "validate",
        clean.to_str().unwrap(),
        "--against",
        "clean-ft.jsonl",
    ]));
    assert!(o.stderr.contains("no test item found"), "{}", o.stderr);
    assert!(!o.stderr.contains("warning"), "{}", o.stderr);
}

#[test]
fn a_run_warns_when_a_backend_was_trained_on_test_items() {
    let (ws, leaky, _) = leaky_workspace();
    export(ws.path(), &leaky, "openai-chat", "train", "ft.jsonl");
    let text =
        std::fs::read_to_string(&leaky).unwrap().replace("train: leaky.csv", "train: clean.csv")
            + "  - { id: tuned, provider: local, trained_on: ft.jsonl }\n";
    let suite = ws.write("trained.yaml", &text);
    let o = output(evalgate(ws.path()).args([
        "run",
        suite.to_str().unwrap(),
        "--out",
        "run",
        "--no-cache",
    ]));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let results = results(&ws.path().join("run"));
    let warnings: Vec<&str> =
        results["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    let trained: Vec<&&str> =
        warnings.iter().filter(|w| w.contains("`tuned` was trained on")).collect();
    assert_eq!(trained.len(), 1, "{warnings:?}");
    for id in ["te-1", "te-2", "te-3"] {
        assert!(trained[0].contains(id), "{}", trained[0]);
    }
    assert!(!warnings.iter().any(|w| w.contains("`baseline` was trained")));
    let report = std::fs::read_to_string(ws.path().join("run/report.md")).unwrap();
    assert!(report.contains("`tuned` was trained on"), "{report}");
}

/// `select: similar` on the quick-start tickets: its demonstrations are nearer their item than
/// random ones, and never the item or a near-copy of it.
#[test]
fn similar_demonstrations_are_nearer_than_random_ones_on_the_tickets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = evalgate::plan::load_suite(&root.join("suites/quickstart.yaml")).unwrap();
    let (similar, random) = similar_vs_random_cosine(&suite, 5, usize::MAX);
    println!("tickets: mean cosine similar {similar:.3}, random {random:.3}");
    assert!(similar > random + 0.1, "similar {similar} vs random {random}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_similar_few_shot_backend_says_so_in_the_report() {
    let server = TestServer::start(|_, _| Reply::chat("billing")).await;
    let (ws, leaky, _) = leaky_workspace();
    let text = std::fs::read_to_string(&leaky).unwrap().replace(
        "  - id: baseline\n    provider: local\n",
        &format!(
            "  - {{ id: near, provider: openai, base_url: \"{}\", model: m, strategy: {{ few-shot: {{ k: 2, select: similar }} }} }}\n",
            server.base_url()
        ),
    );
    let suite = ws.write("similar.yaml", &text);
    let run = run_library(&suite, &ws.run_dir("run")).await;
    let results = results(&run);
    assert_eq!(backend(&results, "near")["strategy"], "few-shot (similar, k=2)");
    // Never the item itself nor its re-cased or edited copy (tr-7, tr-8, tr-9).
    for r in records(&run) {
        let prompt = r["prompt"].as_array().unwrap();
        assert_eq!(prompt.len(), 6);
        let item = prompt[5]["content"].as_str().unwrap().to_lowercase();
        for demo in [&prompt[1], &prompt[3]] {
            let demo = demo["content"].as_str().unwrap().to_lowercase();
            assert_ne!(demo, item);
            assert!(!evalgate::suite::leakage::near_duplicates(
                &evalgate::text::normalize(&demo),
                &evalgate::text::normalize(&item)
            ));
        }
    }
}
