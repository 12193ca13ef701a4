//! Gold and predicted values in the canonical form they are compared in.
//!
//! * Strings: `Exact` compares after trimming surrounding whitespace; `Normalized` and `Fuzzy`
//!   compare normalized text (a value that normalizes to nothing, e.g. `"--"`, is absent).
//! * Numbers: see [`parse_number`]. Dates: see [`parse_date_ordered`] (day-first by default).
//! * Empty lists are absent; list elements are de-duplicated (compared as sets).

use serde_json::{Map, Value};

use super::date::parse_date_ordered;
use super::number::parse_number;
use super::{FieldSpec, FieldType, StringMatch};
use crate::text::{excerpt, normalize, scalar_text};

/// A value as compared. "Absent" (missing / null / empty) is represented by `None` around it.
#[derive(Debug, Clone, PartialEq)]
pub enum Canonical {
    /// String field: trimmed text for `Exact`, normalized text for `Normalized`/`Fuzzy`.
    Text(String),
    Number(f64),
    /// ISO `YYYY-MM-DD`.
    Date(String),
    /// The declared enum value (as spelled in the declaration) that the input matched.
    Enum(String),
    /// De-duplicated elements, in first-seen order (trimmed or normalized as for `Text`).
    List(Vec<String>),
    /// A *predicted* value that is present but does not fit the type (never matches anything).
    /// Produced only by [`canonicalize_prediction`].
    Invalid(String),
}

/// Why a value does not fit its field's type. The messages name the value and what was expected;
/// the caller adds the file, line and key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}, got {got}")]
    WrongType { expected: &'static str, got: &'static str },
    #[error("number {0} is out of range")]
    OutOfRange(String),
    #[error("'{0}' is not a number")]
    NotANumber(String),
    #[error("'{0}' is not a recognised date (e.g. 2018-03-14, 14/03/2018, 30 Dec 2017)")]
    NotADate(String),
    #[error("expected one of [{allowed}], got {got}")]
    EnumWrongType { allowed: String, got: &'static str },
    #[error("'{value}' is not one of the declared values [{allowed}]")]
    NotInEnum { value: String, allowed: String },
    #[error("list element {index} should be a string, got {got}")]
    ListElement { index: usize, got: &'static str },
    #[error("the gold value is not a JSON object")]
    GoldNotObject,
    #[error("the answer is not a JSON object")]
    AnswerNotObject,
    #[error("gold `{field}`: {source}")]
    GoldField { field: String, source: Box<ValueError> },
}

/// Parse a gold or predicted JSON value for a field type. `Ok(None)` means absent (null, empty
/// or whitespace-only string, empty list, or text that normalizes to nothing). `Err` explains
/// why the value does not fit the type (for gold values the caller reports file/line; for
/// predictions use [`canonicalize_prediction`]).
pub fn canonicalize(value: &Value, ty: &FieldType) -> Result<Option<Canonical>, ValueError> {
    if value.is_null() {
        return Ok(None);
    }
    if let Value::String(s) = value {
        if s.trim().is_empty() {
            return Ok(None);
        }
    }
    match ty {
        FieldType::String(rule) => {
            let s = scalar_text(value)
                .ok_or(ValueError::WrongType { expected: "a string", got: describe(value) })?;
            Ok(text_form(&s, *rule).map(Canonical::Text))
        }
        FieldType::Number { .. } => match value {
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| Some(Canonical::Number(f)))
                .ok_or_else(|| ValueError::OutOfRange(n.to_string())),
            Value::String(s) => parse_number(s)
                .map(|f| Some(Canonical::Number(f)))
                .ok_or_else(|| ValueError::NotANumber(excerpt(s, 60))),
            other => Err(ValueError::WrongType { expected: "a number", got: describe(other) }),
        },
        FieldType::Date { day_first } => match value {
            Value::String(s) => parse_date_ordered(s, *day_first)
                .map(|d| Some(Canonical::Date(d)))
                .ok_or_else(|| ValueError::NotADate(excerpt(s, 60))),
            other => Err(ValueError::WrongType { expected: "a date string", got: describe(other) }),
        },
        FieldType::Enum(allowed) => {
            let s = scalar_text(value).ok_or_else(|| ValueError::EnumWrongType {
                allowed: allowed.join(", "),
                got: describe(value),
            })?;
            let n = normalize(&s);
            allowed
                .iter()
                .find(|a| normalize(a) == n)
                .map(|a| Some(Canonical::Enum(a.clone())))
                .ok_or_else(|| ValueError::NotInEnum {
                    value: excerpt(&s, 60),
                    allowed: allowed.join(", "),
                })
        }
        FieldType::List(rule) => {
            let items: Vec<&Value> = match value {
                Value::Array(a) => a.iter().collect(),
                Value::String(_) => vec![value],
                other => {
                    return Err(ValueError::WrongType {
                        expected: "a list of strings",
                        got: describe(other),
                    })
                }
            };
            let mut out: Vec<String> = Vec::new();
            for (k, item) in items.iter().enumerate() {
                if item.is_null() {
                    continue;
                }
                let s = scalar_text(item)
                    .ok_or(ValueError::ListElement { index: k, got: describe(item) })?;
                if let Some(t) = text_form(&s, *rule) {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
            Ok(if out.is_empty() { None } else { Some(Canonical::List(out)) })
        }
    }
}

/// Like [`canonicalize`], for predictions: a present value that does not fit the type becomes
/// [`Canonical::Invalid`] (so it scores as Wrong against a gold value, Spurious against none)
/// instead of an error.
pub fn canonicalize_prediction(value: &Value, ty: &FieldType) -> Option<Canonical> {
    match canonicalize(value, ty) {
        Ok(c) => c,
        Err(_) => Some(Canonical::Invalid(value.to_string())),
    }
}

fn text_form(s: &str, rule: StringMatch) -> Option<String> {
    let t = match rule {
        StringMatch::Exact => s.trim().to_string(),
        StringMatch::Normalized | StringMatch::Fuzzy(_) => normalize(s),
    };
    if t.is_empty() {
        None
    } else {
        Some(t)
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A gold value in the form the model is asked to write, for few-shot demonstrations and the
/// journal: strings and list elements as written (trimmed), numbers as JSON numbers, dates in
/// ISO 8601, enum values as declared, and null when absent. Scoring it again gives the same
/// canonical value.
pub fn display_value(raw: &Value, canonical: Option<&Canonical>) -> Value {
    match canonical {
        None => Value::Null,
        // Whole numbers as integers (`99`, not `99.0`), as people write them.
        Some(Canonical::Number(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
            Value::from(*n as i64)
        }
        Some(Canonical::Number(n)) => {
            serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
        }
        Some(Canonical::Date(d) | Canonical::Enum(d)) => Value::from(d.as_str()),
        Some(Canonical::List(_)) => match raw {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .filter_map(scalar_text)
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .map(Value::from)
                    .collect(),
            ),
            other => Value::Array(
                scalar_text(other).map(|s| Value::from(s.trim())).into_iter().collect(),
            ),
        },
        Some(Canonical::Text(_) | Canonical::Invalid(_)) => {
            scalar_text(raw).map_or(Value::Null, |s| Value::from(s.trim()))
        }
    }
}

/// A JSON object of the declared fields, in declared order, as compact text.
pub fn object_text(fields: &[FieldSpec], values: impl IntoIterator<Item = Value>) -> String {
    let map: Map<String, Value> = fields.iter().map(|f| f.name.clone()).zip(values).collect();
    Value::Object(map).to_string()
}

/// The gold values of one item, canonical, parsed from the gold object text a record carries.
pub fn gold_values(fields: &[FieldSpec], gold: &str) -> Result<Vec<Option<Canonical>>, ValueError> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(gold) else {
        return Err(ValueError::GoldNotObject);
    };
    fields
        .iter()
        .map(|f| {
            canonicalize(map.get(&f.name).unwrap_or(&Value::Null), &f.ty)
                .map_err(|e| ValueError::GoldField { field: f.name.clone(), source: Box::new(e) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: Value, ty: &FieldType) -> Option<Canonical> {
        canonicalize(&v, ty).expect("gold should canonicalize")
    }

    #[test]
    fn string_non_string_values() {
        let ty = FieldType::String(StringMatch::Normalized);
        assert_eq!(canon(json!(45600), &ty), Some(Canonical::Text("45600".into())));
        assert_eq!(canon(json!("  "), &ty), None);
        assert_eq!(canon(json!("--"), &ty), None);
        assert!(canonicalize(&json!({"a": 1}), &ty).unwrap_err().to_string().contains("an object"));
        assert!(canonicalize(&json!(["a"]), &ty).unwrap_err().to_string().contains("a list"));
    }
}
