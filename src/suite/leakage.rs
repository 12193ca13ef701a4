//! Train–test leakage: test items whose text also appears in the training data, where a few-shot
//! demonstration or the local baseline would have seen the answer.

use std::collections::HashMap;

use super::{Item, Suite};
use crate::text::normalize;

/// A test item whose text matches a train item.
#[derive(Debug, Clone, PartialEq)]
pub struct Leak {
    pub test_id: String,
    pub test_line: u64,
    pub train_id: String,
    pub train_line: u64,
}

/// Test items whose text equals a train item's once case, spacing and punctuation are ignored
/// (the near-duplicates that matter in practice: re-exports, trailing spaces, changed quotes).
/// Ids and group columns are not text.
pub fn find(suite: &Suite) -> Vec<Leak> {
    let Some(train) = &suite.train else { return Vec::new() };
    let mut seen: HashMap<String, &Item> = HashMap::with_capacity(train.items.len());
    for item in &train.items {
        let key = normalized_text(item);
        if !key.is_empty() {
            seen.entry(key).or_insert(item);
        }
    }
    suite
        .test
        .items
        .iter()
        .filter_map(|item| {
            let twin = seen.get(&normalized_text(item))?;
            Some(Leak {
                test_id: item.id.clone(),
                test_line: item.line,
                train_id: twin.id.clone(),
                train_line: twin.line,
            })
        })
        .collect()
}

fn normalized_text(item: &Item) -> String {
    let mut words = Vec::new();
    for name in item.fields.keys() {
        if name == "id" || name == "group" {
            continue;
        }
        // Text, or lists of text lines (receipts given as OCR lines).
        let texts: Vec<&str> = match item.fields.get(name) {
            Some(serde_json::Value::String(text)) => vec![text],
            Some(serde_json::Value::Array(lines)) => {
                lines.iter().filter_map(|l| l.as_str()).collect()
            }
            _ => Vec::new(),
        };
        words.extend(texts.into_iter().map(normalize).filter(|w| !w.is_empty()));
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::load_str;

    #[test]
    fn finds_texts_that_differ_only_in_case_spacing_and_punctuation() {
        let yaml = r#"schema_version: 1
name: leak
task: { kind: classification, labels: [a, b], instructions: "x", input: "{{ text }}" }
data:
  test:
    - { id: t1, text: "Where is my REFUND?!", label: a }
    - { id: t2, text: "Something new", label: b }
  train:
    - { id: r1, text: "where is my refund", label: a }
    - { id: r2, text: "Something else", label: b }
backends: [{ id: base, provider: local }]
"#;
        let suite = load_str(std::path::Path::new("leak.yaml"), yaml).unwrap();
        let leaks = find(&suite);
        assert_eq!(leaks.len(), 1);
        assert_eq!((leaks[0].test_id.as_str(), leaks[0].train_id.as_str()), ("t1", "r1"));
    }
}
