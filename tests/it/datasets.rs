//! The local baseline on real public datasets (BANKING77, SNIPS 2017) from `../shared/datasets`.
//! Ignored by default, so a clone without that folder counts them as skipped; run them with
//! `cargo test -- --ignored datasets::` (they fail, naming the folder, when it is absent).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::*;

/// `../shared/datasets/<name>`; fails naming it when absent.
fn dataset_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets").join(name);
    assert!(
        dir.is_dir(),
        "this test needs ../shared/datasets, and {} is not a folder",
        dir.display()
    );
    dir.canonicalize().expect("canonical datasets path")
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared/datasets"]
async fn banking77_local_baseline() {
    let dir = dataset_dir("banking77");
    let labels: Vec<String> = serde_json::from_value(read_json(&dir.join("categories.json")))
        .expect("categories.json is a list of strings");
    assert_eq!(labels.len(), 77);
    let suite = format!(
        "schema_version: 1
name: banking77
task:
  kind: classification
  labels: {labels}
  instructions: \"Classify the banking query into one of: {{{{ labels | join(', ') }}}}.\"
  input: \"{{{{ text }}}}\"
data:
  test: {test}
  train: {train}
  label_column: category
backends:
  - id: baseline
    provider: local
",
        labels = serde_json::to_string(&labels).unwrap(),
        test = quoted(&dir.join("test.csv").display().to_string()),
        train = quoted(&dir.join("train.csv").display().to_string()),
    );
    let ws = Workspace::new();
    let path = ws.write("banking77.yaml", &suite);
    let run = run_library(&path, &ws.run_dir("run")).await;
    let results = results(&run);
    let b = backend(&results, "baseline");
    let accuracy = f(&b["accuracy"]["estimate"]);
    println!("banking77: local baseline accuracy {accuracy:.4} over {} items", b["answered"]);
    assert_eq!(results["items"], 3080);
    assert_eq!((u(&b["answered"]), u(&b["errors"])), (3080, 0));
    assert!(accuracy >= 0.90, "banking77 local baseline accuracy {accuracy}");
}

/// `{"Intent": [{"data": [{"text": ...}, ...]}, ...]}` → one utterance per entry, chunks joined.
fn snips_texts(path: &Path, intent: &str) -> Vec<String> {
    let v = read_json(path);
    v[intent]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no `{intent}` list", path.display()))
        .iter()
        .map(|entry| {
            entry["data"]
                .as_array()
                .expect("data chunks")
                .iter()
                .map(|c| c["text"].as_str().expect("chunk text"))
                .collect::<String>()
        })
        .collect()
}

const SNIPS_INTENTS: [&str; 7] = [
    "AddToPlaylist",
    "BookRestaurant",
    "GetWeather",
    "PlayMusic",
    "RateBook",
    "SearchCreativeWork",
    "SearchScreeningEvent",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ../shared/datasets"]
async fn snips_intents_local_baseline() {
    let dir = dataset_dir("snips2017");
    let ws = Workspace::new();
    let mut train = String::new();
    let mut test = String::new();
    let (mut n_train, mut n_test) = (0, 0);
    for intent in SNIPS_INTENTS {
        for (split, out, n) in
            [("train", &mut train, &mut n_train), ("validate", &mut test, &mut n_test)]
        {
            let texts =
                snips_texts(&dir.join(intent).join(format!("{split}_{intent}.json")), intent);
            for (i, text) in texts.iter().enumerate() {
                let line = json!({ "id": format!("{split}-{intent}-{i}"), "text": text.trim(), "label": intent });
                out.push_str(&line.to_string());
                out.push('\n');
                *n += 1;
            }
        }
    }
    assert_eq!((n_train, n_test), (2100, 700), "counts from the dataset README");
    ws.write("train.jsonl", &train);
    ws.write("test.jsonl", &test);
    let suite = format!(
        "schema_version: 1
name: snips-intents
task:
  kind: classification
  labels: {labels}
  instructions: \"Which intent? One of: {{{{ labels | join(', ') }}}}.\"
  input: \"{{{{ text }}}}\"
data:
  test: test.jsonl
  train: train.jsonl
backends:
  - id: baseline
    provider: local
",
        labels = serde_json::to_string(&SNIPS_INTENTS).unwrap(),
    );
    let path = ws.write("snips.yaml", &suite);
    let run = run_library(&path, &ws.run_dir("run")).await;
    let results: Value = results(&run);
    let b = backend(&results, "baseline");
    let accuracy = f(&b["accuracy"]["estimate"]);
    println!("snips2017: local baseline accuracy {accuracy:.4} over {} items", b["answered"]);
    assert_eq!((u(&b["items"]), u(&b["answered"])), (700, 700));
    assert!(accuracy >= 0.9, "SNIPS local baseline accuracy {accuracy}");
}

/// A banking77 suite (the local baseline only) in `ws`, with few-shot backends when asked.
fn banking77_suite(ws: &Workspace, backends: &str) -> PathBuf {
    let dir = dataset_dir("banking77");
    let labels: Vec<String> = serde_json::from_value(read_json(&dir.join("categories.json")))
        .expect("categories.json is a list of strings");
    let suite = format!(
        "schema_version: 1
name: banking77
task:
  kind: classification
  labels: {labels}
  instructions: \"Classify the banking query into one of: {{{{ labels | join(', ') }}}}.\"
  input: \"{{{{ text }}}}\"
data:
  test: {test}
  train: {train}
  label_column: category
backends:
  - id: baseline
    provider: local
{backends}",
        labels = serde_json::to_string(&labels).unwrap(),
        test = quoted(&dir.join("test.csv").display().to_string()),
        train = quoted(&dir.join("train.csv").display().to_string()),
    );
    ws.write("banking77.yaml", &suite)
}

/// Exact and near-duplicate leakage between banking77's 10,003 train and 3,080 test queries:
/// well under a second in release (a few seconds in a debug build).
#[test]
#[ignore = "needs ../shared/datasets"]
fn banking77_leakage_check_is_fast() {
    let ws = Workspace::new();
    let suite = evalgate::plan::load_suite(&banking77_suite(&ws, "")).expect("suite loads");
    let started = std::time::Instant::now();
    let leaks = evalgate::suite::leakage::find(&suite);
    let took = started.elapsed();
    let exact = leaks.iter().filter(|l| l.kind == evalgate::suite::leakage::Match::Exact).count();
    println!(
        "banking77 leakage: {} test items match train ({exact} exactly) in {:.3} s",
        leaks.len(),
        took.as_secs_f64()
    );
    let limit = if cfg!(debug_assertions) { 20.0 } else { 1.0 };
    assert!(took.as_secs_f64() < limit, "took {took:?}");
}

/// `select: similar` on banking77: its demonstrations are nearer their item than random ones,
/// and never the item or a near-copy of it.
#[test]
#[ignore = "needs ../shared/datasets"]
fn banking77_similar_demonstrations_are_nearer_than_random_ones() {
    let ws = Workspace::new();
    let suite = evalgate::plan::load_suite(&banking77_suite(&ws, "")).expect("suite loads");
    let started = std::time::Instant::now();
    let (similar, random) = similar_vs_random_cosine(&suite, 5, 1000);
    println!(
        "banking77: mean cosine similar {similar:.3}, random {random:.3} over 1,000 items ({:.2} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(similar > random + 0.2, "similar {similar} vs random {random}");
}
