//! `evalgate init`: a commented starter suite and tiny train/test files, so a new user's first
//! `evalgate run suite.yaml` works at once on the built-in `local` backend.

use std::path::{Path, PathBuf};

pub const SUITE_FILE: &str = "suite.yaml";

const SUITE: &str = r#"# A starter evalgate suite: route a customer message to one of three queues.
# Run it with `evalgate run suite.yaml`; check it without running with `evalgate validate suite.yaml`.
# Replace train.csv and test.csv with your own labelled data (columns: id, text, label).
schema_version: 1
name: starter
task:
  kind: classification
  labels: [billing, technical, account]
  # The system prompt (optional); it sees `labels`.
  instructions: |
    Classify the customer message into one of: {{ labels | join(", ") }}. Answer with the label only.
  # The user turn; it sees every data column except the label.
  input: "Message: {{ text }}"
data:
  test: test.csv      # the items to score
  train: train.csv    # few-shot demonstrations and the local baseline's training set
backends:
  # The built-in classifier: trained on train.csv in a moment, no network, no key. It is the line a
  # language model has to beat.
  - id: baseline
    provider: local
  # Add a language model: uncomment, set OPENAI_API_KEY, and run again. Any OpenAI-compatible
  # server works: add `base_url: http://localhost:8000/v1` for vLLM, `http://localhost:11434/v1`
  # for Ollama.
  # - id: mini-zero
  #   provider: openai
  #   model: gpt-4o-mini
  #   strategy: zero-shot
  # - id: mini-3shot
  #   provider: openai
  #   model: gpt-4o-mini
  #   strategy: { few-shot: { k: 3, select: similar } }
"#;

const TRAIN: &str = "id,text,label
tr-01,I was charged twice for my subscription this month,billing
tr-02,Where can I download my invoice for March?,billing
tr-03,Please refund the payment I made by mistake,billing
tr-04,Why is there an extra fee on my bill?,billing
tr-05,How do I update the credit card on file?,billing
tr-06,My payment was declined but the money left my bank,billing
tr-07,Can I get a receipt for my last payment?,billing
tr-08,The price on my invoice is higher than the plan price,billing
tr-09,The app crashes every time I open the settings page,technical
tr-10,Sync fails with error 503 since this morning,technical
tr-11,Export to CSV produces an empty file,technical
tr-12,The page loads forever and then shows a blank screen,technical
tr-13,Notifications stopped working after the latest update,technical
tr-14,I get an error when uploading a photo,technical
tr-15,The search button does nothing when I click it,technical
tr-16,The website is very slow since yesterday,technical
tr-17,I cannot log in after resetting my password,account
tr-18,How do I enable two-factor authentication?,account
tr-19,Please change the email address on my profile,account
tr-20,I want to delete my account and all my data,account
tr-21,Someone else logged into my account,account
tr-22,How do I change my username?,account
tr-23,My account is locked after too many attempts,account
tr-24,Can I add a second user to my account?,account
";

const TEST: &str = "id,text,label
te-01,I was billed twice for the same order,billing
te-02,Please send me the invoice for last month,billing
te-03,There is a fee on my bill I do not understand,billing
te-04,The app crashes when I open my profile photo,technical
te-05,Upload fails with an error every time,technical
te-06,The site shows a blank page after login,technical
te-07,I forgot my password and cannot log in,account
te-08,How do I change the email on my account?,account
te-09,Please delete my account,account
";

/// The files `init` writes, relative to its folder.
pub fn files() -> [(&'static str, &'static str); 3] {
    [(SUITE_FILE, SUITE), ("train.csv", TRAIN), ("test.csv", TEST)]
}

/// Writes the starter files into `dir` (created if needed). Refuses, naming the file, when any
/// of them exists already: nothing is overwritten, and nothing is written at all then.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let paths: Vec<PathBuf> = files().iter().map(|(name, _)| dir.join(name)).collect();
    if let Some(taken) = paths.iter().find(|p| p.exists()) {
        return Err(format!(
            "{} already exists; evalgate init never overwrites a file (choose an empty folder: `evalgate init DIR`)",
            taken.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for ((_, text), path) in files().iter().zip(&paths) {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(paths)
}
