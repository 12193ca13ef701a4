//! What an extraction request asks for: the JSON schema of structured output, and the format
//! line that zero- and few-shot prompts end with.

use serde_json::{Map, Value};

use crate::field::{FieldSpec, FieldType};

/// The JSON schema a structured-output request asks for: one property per field, every property
/// listed as required and no others allowed (what OpenAI's strict mode demands); a field that is
/// not `required` may be null.
pub fn json_schema(fields: &[FieldSpec]) -> Value {
    let mut properties = Map::new();
    for f in fields {
        let mut p = Map::new();
        let base = match &f.ty {
            FieldType::String(_) => "string",
            FieldType::Number { .. } => "number",
            FieldType::Date { .. } => "string",
            FieldType::Enum(_) => "string",
            FieldType::List(_) => "array",
        };
        let ty = if f.required { Value::from(base) } else { Value::from(vec![base, "null"]) };
        p.insert("type".into(), ty);
        match &f.ty {
            FieldType::Enum(values) => {
                let mut allowed: Vec<Value> =
                    values.iter().map(|v| Value::from(v.as_str())).collect();
                if !f.required {
                    allowed.push(Value::Null);
                }
                p.insert("enum".into(), Value::Array(allowed));
            }
            FieldType::List(_) => {
                p.insert("items".into(), serde_json::json!({ "type": "string" }));
            }
            _ => {}
        }
        if let Some(d) = field_description(f) {
            p.insert("description".into(), Value::from(d));
        }
        properties.insert(f.name.clone(), Value::Object(p));
    }
    serde_json::json!({
        "type": "object",
        "properties": properties,
        "required": fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        "additionalProperties": false,
    })
}

/// What the model is told about a field beyond its type: the suite's description, and for dates
/// the format replies should use.
fn field_description(f: &FieldSpec) -> Option<String> {
    let hint = match f.ty {
        FieldType::Date { .. } => Some("ISO 8601 date, YYYY-MM-DD"),
        _ => None,
    };
    match (&f.description, hint) {
        (Some(d), Some(h)) => Some(format!("{d} ({h})")),
        (Some(d), None) => Some(d.clone()),
        (None, Some(h)) => Some(h.to_string()),
        (None, None) => None,
    }
}

/// The line appended to zero- and few-shot instructions of an extraction task, so a model without
/// structured output knows the shape to answer in.
pub fn format_instructions(fields: &[FieldSpec]) -> String {
    let keys: Vec<String> = fields
        .iter()
        .map(|f| {
            let ty = match &f.ty {
                FieldType::String(_) => "string".to_string(),
                FieldType::Number { .. } => "number".to_string(),
                FieldType::Date { .. } => "date as YYYY-MM-DD".to_string(),
                FieldType::Enum(values) => format!("one of {}", values.join(", ")),
                FieldType::List(_) => "list of strings".to_string(),
            };
            match &f.description {
                Some(d) => format!("\"{}\" ({ty}; {d})", f.name),
                None => format!("\"{}\" ({ty})", f.name),
            }
        })
        .collect();
    format!(
        "Answer with one JSON object and nothing else, with exactly these keys: {}. Use null for a value the input does not contain.",
        keys.join(", ")
    )
}
