//! `evalgate export`: a suite's labelled data as fine-tuning JSONL.
//!
//! The prompt of every example is built by [`PromptBuilder`] with [`Strategy::FineTuned`], the
//! same code that builds a `fine-tuned` backend's requests at evaluation time, so the prompt a
//! model is trained on and the prompt it is evaluated with cannot drift apart. The assistant turn
//! is the item's gold answer as scoring reads it back: the label, or for an extraction task the
//! gold object as compact JSON (see [`crate::field::value::display_value`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::prompt::{ChatMessage, PromptBuilder, PromptTemplates, Role};
use crate::suite::leakage::{self, Doc, Leak, Match};
use crate::suite::{Dataset, Strategy, Suite};

/// The line formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// `{"messages": [system?, user, assistant]}`: OpenAI's chat fine-tuning format.
    OpenaiChat,
    /// The same with the item's `id` first: `{"id": …, "messages": […]}`.
    ChatJsonl,
    /// `{"prompt": …, "completion": …}`, the prompt flattened by [`flatten_prompt`].
    PromptCompletion,
}

/// Which split of the suite's data to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    Train,
    Test,
}

/// The separator that ends a flattened prompt, so a completion model learns where the input
/// stops and its answer starts (OpenAI's legacy fine-tuning guidance).
pub const PROMPT_SEPARATOR: &str = "\n\n###\n\n";

/// One training example: the item, its fine-tuned prompt, and its gold answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: String,
    /// The messages sent to a `fine-tuned` backend for this item: the system turn (when the task
    /// has `fine_tuned_instructions`) and the user turn.
    pub prompt: Vec<ChatMessage>,
    /// The gold answer, as the assistant turn.
    pub answer: String,
}

/// The examples of a split, in data order, with prompts built exactly as the `fine-tuned`
/// strategy builds them.
pub fn examples(suite: &Suite, split: Split) -> Result<Vec<Example>, String> {
    let data = dataset(suite, split)?;
    let templates = Arc::new(
        PromptTemplates::compile(&suite.task)
            .map_err(|(name, e)| format!("invalid template `task.{name}`: {e}"))?,
    );
    let builder = PromptBuilder::new(suite, templates, &Strategy::FineTuned)
        .map_err(|e| format!("cannot render the fine-tuned instructions: {e}"))?;
    data.items
        .iter()
        .map(|item| {
            let prompt = builder
                .messages(item)
                .map_err(|e| format!("cannot render item `{}`: {e}", item.id))?;
            Ok(Example { id: item.id.clone(), prompt, answer: item.label.clone() })
        })
        .collect()
}

fn dataset(suite: &Suite, split: Split) -> Result<&Dataset, String> {
    match split {
        Split::Test => Ok(&suite.test),
        Split::Train => suite.train.as_ref().ok_or_else(|| {
            "the suite has no `data.train`; add one or export `--split test`".to_string()
        }),
    }
}

/// The prompt of a prompt–completion example: the system text (if any), a blank line, the user
/// text, then [`PROMPT_SEPARATOR`].
pub fn flatten_prompt(messages: &[ChatMessage]) -> String {
    let parts: Vec<&str> =
        messages.iter().filter(|m| m.role != Role::Assistant).map(|m| m.content.as_str()).collect();
    format!("{}{PROMPT_SEPARATOR}", parts.join("\n\n"))
}

/// One JSONL line (without the newline) of an example in `format`.
pub fn line(format: ExportFormat, example: &Example) -> String {
    let mut messages: Vec<Value> =
        example.prompt.iter().map(|m| json!({ "role": m.role, "content": m.content })).collect();
    messages.push(json!({ "role": "assistant", "content": example.answer }));
    let value = match format {
        ExportFormat::OpenaiChat => json!({ "messages": messages }),
        ExportFormat::ChatJsonl => json!({ "id": example.id, "messages": messages }),
        ExportFormat::PromptCompletion => {
            json!({ "prompt": flatten_prompt(&example.prompt), "completion": example.answer })
        }
    };
    value.to_string()
}

/// Splits off about `fraction` of the examples for validation, stratified by answer (label) and
/// seeded: each label's examples are shuffled with the seed and the first
/// `round(fraction × count)` go to validation (at least one for a label with two or more
/// examples, when the fraction is positive). Both parts keep data order.
pub fn split_validation(
    examples: Vec<Example>,
    fraction: f64,
    seed: u64,
) -> (Vec<Example>, Vec<Example>) {
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in examples.iter().enumerate() {
        by_label.entry(e.answer.as_str()).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut held = vec![false; examples.len()];
    for indices in by_label.values_mut() {
        indices.shuffle(&mut rng);
        let mut n = (fraction * indices.len() as f64).round() as usize;
        if fraction > 0.0 && n == 0 && indices.len() >= 2 {
            n = 1;
        }
        // Every label keeps at least one example in training.
        for &i in indices.iter().take(n.min(indices.len().saturating_sub(1))) {
            held[i] = true;
        }
    }
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (e, held) in examples.into_iter().zip(held) {
        if held {
            validation.push(e);
        } else {
            train.push(e);
        }
    }
    (train, validation)
}

/// What a set of examples amounts to, for the summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub items: usize,
    /// Each answer with its count, most frequent first (ties by answer). For an extraction task
    /// every answer is an object, so the list is as long as the items.
    pub labels: Vec<(String, usize)>,
    /// The mean characters per example (every message, the answer included) divided by four: an
    /// approximation of tokens, not a tokenizer's count.
    pub approx_tokens_per_example: f64,
    pub approx_tokens_total: u64,
}

pub fn summarize(examples: &[Example]) -> Summary {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut chars = 0u64;
    for e in examples {
        *counts.entry(e.answer.as_str()).or_default() += 1;
        chars += e.prompt.iter().map(|m| m.content.chars().count() as u64).sum::<u64>();
        chars += e.answer.chars().count() as u64;
    }
    let mut labels: Vec<(String, usize)> =
        counts.into_iter().map(|(l, n)| (l.to_string(), n)).collect();
    labels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total = chars.div_ceil(4);
    Summary {
        items: examples.len(),
        labels,
        approx_tokens_per_example: if examples.is_empty() {
            0.0
        } else {
            chars as f64 / 4.0 / examples.len() as f64
        },
        approx_tokens_total: total,
    }
}

/// Where the validation part of `out` goes: `<out stem>.validation.jsonl` beside it.
pub fn validation_path(out: &std::path::Path) -> std::path::PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!("{stem}.validation.jsonl"))
}

/// What part of a test item a fine-tuning file's line is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// A chat line's last user turn: the item's rendered input.
    Input,
    /// A prompt–completion line's prompt: the item's flattened fine-tuned prompt.
    Prompt,
    /// A plain `text` field: the item's text columns.
    Text,
}

/// The texts of a fine-tuning file: any `export` format, or JSONL with a `text` field. Each
/// line's id is its `id` field, else `line N`.
fn read_reference_file(path: &std::path::Path) -> Result<Vec<(View, Doc)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| format!("{}:{n}: not a JSON line: {e}", path.display()))?;
        let id = value
            .get("id")
            .and_then(crate::text::scalar_text)
            .unwrap_or_else(|| format!("line {n}"));
        let (view, text) = if let Some(messages) = value.get("messages").and_then(Value::as_array) {
            let user = messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|m| m.get("content").and_then(Value::as_str));
            (View::Input, user)
        } else if let Some(prompt) = value.get("prompt").and_then(Value::as_str) {
            (View::Prompt, Some(prompt))
        } else {
            (View::Text, value.get("text").and_then(Value::as_str))
        };
        let text = text.ok_or_else(|| {
            format!(
                "{}:{n}: no text found; lines need `messages` with a user turn, a `prompt`, or a `text`",
                path.display()
            )
        })?;
        out.push((view, Doc::new(id, n, text)));
    }
    Ok(out)
}

/// Test items that appear in a fine-tuning file, exactly or as near-duplicates (see
/// [`crate::suite::leakage`]): a chat line's user turn is compared with each item's rendered
/// input, a prompt with its flattened fine-tuned prompt, and a `text` with its text columns.
pub fn leaks_against(suite: &Suite, path: &std::path::Path) -> Result<Vec<Leak>, String> {
    let refs = read_reference_file(path)?;
    let examples = examples(suite, Split::Test)?;
    let mut best: BTreeMap<usize, Leak> = BTreeMap::new();
    for view in [View::Input, View::Prompt, View::Text] {
        let docs: Vec<Doc> =
            refs.iter().filter(|(v, _)| *v == view).map(|(_, d)| d.clone()).collect();
        if docs.is_empty() {
            continue;
        }
        let tests: Vec<Doc> = suite
            .test
            .items
            .iter()
            .zip(&examples)
            .map(|(item, e)| match view {
                View::Input => {
                    let user = e.prompt.last().map_or("", |m| m.content.as_str());
                    Doc::new(item.id.clone(), item.line, user)
                }
                View::Prompt => Doc::new(item.id.clone(), item.line, &flatten_prompt(&e.prompt)),
                View::Text => Doc::of_item(item),
            })
            .collect();
        let position: BTreeMap<&str, usize> =
            suite.test.items.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
        for leak in leakage::find_docs(&tests, &docs) {
            let at = position[leak.test_id.as_str()];
            let better = match (best.get(&at).map(|l| l.kind), leak.kind) {
                (None, _) => true,
                (Some(Match::Exact), _) => false,
                (Some(_), Match::Exact) => true,
                (Some(Match::Near { jaccard: a }), Match::Near { jaccard: b }) => b > a,
            };
            if better {
                best.insert(at, leak);
            }
        }
    }
    Ok(best.into_values().collect())
}

/// The leakage warnings of a run, for the top of its report: test items found in each backend's
/// `trained_on` file.
pub fn run_warnings(suite: &Suite) -> Vec<String> {
    // Test items in the training split are listed by the run itself (`RunMeta::leaked`, the
    // report's leakage note); here only what a backend declares it was trained on.
    let mut warnings = Vec::new();
    for backend in &suite.backends {
        let Some(file) = &backend.trained_on else { continue };
        match leaks_against(suite, file) {
            Ok(leaks) if leaks.is_empty() => {}
            Ok(leaks) => warnings.push(format!(
                "Backend `{}` was trained on {}, which holds {} of the {} test items, so its score overstates it: {}.",
                backend.id,
                file.display(),
                leaks.len(),
                suite.test.items.len(),
                leakage::describe(&leaks, 20)
            )),
            Err(e) => warnings.push(format!(
                "Backend `{}`: its `trained_on` file could not be checked for test items: {e}.",
                backend.id
            )),
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: &str, answer: &str) -> Example {
        Example {
            id: id.into(),
            prompt: vec![ChatMessage::system("Route."), ChatMessage::user(format!("T: {id}"))],
            answer: answer.into(),
        }
    }

    #[test]
    fn lines_in_each_format() {
        let e = example("a1", "billing");
        assert_eq!(
            line(ExportFormat::OpenaiChat, &e),
            r#"{"messages":[{"role":"system","content":"Route."},{"role":"user","content":"T: a1"},{"role":"assistant","content":"billing"}]}"#
        );
        assert!(line(ExportFormat::ChatJsonl, &e).starts_with(r#"{"id":"a1","messages":["#));
        assert_eq!(
            line(ExportFormat::PromptCompletion, &e),
            r#"{"prompt":"Route.\n\nT: a1\n\n###\n\n","completion":"billing"}"#
        );
    }

    #[test]
    fn validation_is_stratified_seeded_and_disjoint() {
        let examples: Vec<Example> = (0..100)
            .map(|i| example(&format!("e{i}"), if i % 4 == 0 { "rare" } else { "common" }))
            .collect();
        let (train, val) = split_validation(examples.clone(), 0.2, 7);
        assert_eq!(train.len() + val.len(), 100);
        assert_eq!(val.iter().filter(|e| e.answer == "rare").count(), 5);
        assert_eq!(val.iter().filter(|e| e.answer == "common").count(), 15);
        let again = split_validation(examples.clone(), 0.2, 7).1;
        assert_eq!(val, again);
        assert_ne!(val, split_validation(examples, 0.2, 8).1);
        assert!(val.iter().all(|v| train.iter().all(|t| t.id != v.id)));
    }
}
