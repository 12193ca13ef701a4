//! The one decision on a reply: the answer it gives, and whether that answer is correct.
//!
//! The runner calls this to annotate each journal record, so `records.jsonl` can be read on its
//! own; scoring never trusts that annotation and decides again from the recorded answer with the
//! same rules ([`super::extraction::rules`] for extraction, label identity for classification).

use crate::field::value::{gold_values, object_text};
use crate::field::FieldSpec;
use crate::parse::json_object::{first_json_object, project};
use crate::parse::LabelParser;

use super::extraction::rules::{exact_match, field_marks};

/// A reply's answer (`None` when it gives none: an invalid reply) and its correctness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub answer: Option<String>,
    pub correct: bool,
}

/// A classification reply: the label it names, right when it is the gold label.
pub fn classification(
    parser: &LabelParser,
    labels: &[String],
    gold: &str,
    reply: &str,
) -> Judgement {
    let answer = parser.parse(reply).map(|i| labels[i].clone());
    let correct = answer.as_deref() == Some(gold);
    Judgement { answer, correct }
}

/// An extraction reply: the declared fields of the first JSON object in it, as a compact object
/// (`None` when the reply holds no object), right when every field matches the gold.
pub fn extraction(fields: &[FieldSpec], gold: &str, reply: &str) -> Judgement {
    let Some(object) = first_json_object(reply) else {
        return Judgement { answer: None, correct: false };
    };
    let predicted = project(fields, &object);
    // The gold was checked when the suite was loaded, so it parses.
    let correct = match gold_values(fields, gold) {
        Ok(gold) => exact_match(&field_marks(fields, &gold, &predicted)),
        Err(_) => false,
    };
    Judgement { answer: Some(object_text(fields, predicted)), correct }
}
