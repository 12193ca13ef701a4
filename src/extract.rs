//! Extraction-task support: find the JSON object in a model reply, turn gold and
//! predicted field values into comparable canonical forms, and score one field.
//!
//! Summary of documented choices (see the individual functions for details):
//!
//! * `first_json_object`: whole reply → ```` ```json ```` / ```` ``` ```` fences → first balanced
//!   `{...}` span. Arrays are never returned as such (an object *inside* an array can still be
//!   found by the brace scan). A balanced span that does not parse is skipped as a whole (objects
//!   nested inside a broken object are not returned). serde_json's recursion limit (128) applies,
//!   and the brace scan stops after [`SCAN_BUDGET`] byte-steps so hostile replies stay linear-ish.
//! * Strings: `Exact` compares after trimming surrounding whitespace; `Normalized` and `Fuzzy`
//!   compare normalized text (a value that normalizes to nothing, e.g. `"--"`, is absent).
//! * Fuzzy similarity uses char-level Levenshtein over normalized strings, each truncated to
//!   [`FUZZY_MAX_CHARS`] chars first.
//! * Numbers: see [`parse_number`]. Dates: see [`parse_date`] (day-first by default).
//! * Empty lists are absent; list elements are de-duplicated (compared as sets).

use std::str::FromStr;

use serde_json::{Map, Value};

use crate::text::{excerpt, scalar_text};

/// Work limit (byte-steps) for the brace scan in [`first_json_object`].
pub const SCAN_BUDGET: usize = 4_000_000;
/// Fuzzy matching truncates each normalized string to this many chars before Levenshtein.
pub const FUZZY_MAX_CHARS: usize = 2_000;
/// Absolute slack added to every numeric tolerance (scaled by magnitude for large values).
const NUM_EPSILON: f64 = 1e-9;

// ---------------------------------------------------------------------------------------------
// JSON object extraction
// ---------------------------------------------------------------------------------------------

/// The first JSON object in a model reply: the whole reply if it parses as an object; else the
/// contents of the first ```` ```json ```` / ```` ``` ```` code fence that parses as an object;
/// else the first balanced `{...}` span (respecting strings and escapes) that parses as an object.
/// `None` when there is none.
pub fn first_json_object(reply: &str) -> Option<Map<String, Value>> {
    let trimmed = reply.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if let Some(m) = parse_object(trimmed) {
        return Some(m);
    }
    for body in fence_bodies(reply) {
        if let Some(m) = parse_object(body.trim()) {
            return Some(m);
        }
    }
    brace_scan(reply)
}

fn parse_object(s: &str) -> Option<Map<String, Value>> {
    if !s.starts_with('{') {
        return None;
    }
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Bodies of code fences whose info string is empty or starts with "json" (case-insensitive).
/// An unclosed fence runs to the end of the reply (truncated replies).
fn fence_bodies(reply: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = reply;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let (info, body_start) = match after.find('\n') {
            Some(nl) => (&after[..nl], nl + 1),
            None => (after, after.len()),
        };
        let info = info.trim();
        let body_all = &after[body_start..];
        let (body, next) = match body_all.find("```") {
            Some(end) => (&body_all[..end], &body_all[end + 3..]),
            None => (body_all, ""),
        };
        let info_ok = info.is_empty() || info.to_ascii_lowercase().starts_with("json");
        if info_ok && after.contains('\n') {
            out.push(body);
            rest = next;
        } else {
            // Not a fence we understand: skip past this opener only.
            rest = after;
        }
    }
    out
}

/// First balanced `{...}` span that parses as an object. Strings (double-quoted, with
/// backslash escapes) are respected from each candidate `{` onward.
fn brace_scan(reply: &str) -> Option<Map<String, Value>> {
    let bytes = reply.as_bytes();
    let mut budget = SCAN_BUDGET;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        let mut depth = 0usize;
        let mut in_str = false;
        let mut escaped = false;
        let mut end = None;
        let mut j = i;
        while j < bytes.len() {
            if budget == 0 {
                return None;
            }
            budget -= 1;
            let b = bytes[j];
            if in_str {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_str = false;
                }
            } else if b == b'"' {
                in_str = true;
            } else if b == b'{' {
                depth += 1;
            } else if b == b'}' {
                depth -= 1;
                if depth == 0 {
                    end = Some(j);
                    break;
                }
            }
            j += 1;
        }
        match end {
            Some(e) => {
                // '{' and '}' are ASCII, so these are char boundaries.
                if let Some(m) = parse_object(&reply[i..=e]) {
                    return Some(m);
                }
                i = e + 1; // skip the whole broken span
            }
            None => i += 1, // unbalanced from here: try the next '{'
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Field types
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    String(StringMatch),
    Number {
        tolerance: f64,
    },
    /// `day_first`: how `03/04/2018` reads (3 April when true, the default; March 4 when false).
    Date {
        day_first: bool,
    },
    Enum(Vec<String>),
    List(StringMatch),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StringMatch {
    Exact,
    Normalized,
    /// Threshold in (0, 1].
    Fuzzy(f64),
}

impl FromStr for StringMatch {
    type Err = String;
    /// `exact` | `normalized` | `fuzzy` (= 0.9) | `fuzzy(<t>)` with t in (0, 1].
    /// Case-insensitive; surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "exact" => return Ok(StringMatch::Exact),
            "normalized" => return Ok(StringMatch::Normalized),
            "fuzzy" => return Ok(StringMatch::Fuzzy(0.9)),
            _ => {}
        }
        let expected = "expected exact, normalized, fuzzy or fuzzy(<threshold in (0,1]>)";
        if let Some(inner) = t.strip_prefix("fuzzy").map(str::trim_start) {
            if let Some(num) = inner.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
                let num = num.trim();
                return match num.parse::<f64>() {
                    Ok(v) if v.is_finite() && v > 0.0 && v <= 1.0 => Ok(StringMatch::Fuzzy(v)),
                    Ok(_) => Err(format!(
                        "fuzzy threshold {num} in match rule '{}' is out of range: must be in (0,1]",
                        s.trim()
                    )),
                    Err(_) => Err(format!(
                        "fuzzy threshold '{num}' in match rule '{}' is not a number; {expected}",
                        s.trim()
                    )),
                };
            }
        }
        Err(format!("unknown match rule '{}': {expected}", s.trim()))
    }
}

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

/// Parse a gold or predicted JSON value for a field type. `Ok(None)` means absent (null, empty
/// or whitespace-only string, empty list, or text that normalizes to nothing). `Err` explains
/// why the value does not fit the type (for gold values the caller reports file/line; for
/// predictions use [`canonicalize_prediction`]).
pub fn canonicalize(value: &Value, ty: &FieldType) -> Result<Option<Canonical>, String> {
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
                .ok_or_else(|| format!("expected a string, got {}", describe(value)))?;
            Ok(text_form(&s, *rule).map(Canonical::Text))
        }
        FieldType::Number { .. } => match value {
            Value::Number(n) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| Some(Canonical::Number(f)))
                .ok_or_else(|| format!("number {n} is out of range")),
            Value::String(s) => parse_number(s)
                .map(|f| Some(Canonical::Number(f)))
                .ok_or_else(|| format!("'{}' is not a number", excerpt(s, 60))),
            other => Err(format!("expected a number, got {}", describe(other))),
        },
        FieldType::Date { day_first } => match value {
            Value::String(s) => parse_date_ordered(s, *day_first)
                .map(|d| Some(Canonical::Date(d)))
                .ok_or_else(|| {
                    format!(
                        "'{}' is not a recognised date (e.g. 2018-03-14, 14/03/2018, 30 Dec 2017)",
                        excerpt(s, 60)
                    )
                }),
            other => Err(format!("expected a date string, got {}", describe(other))),
        },
        FieldType::Enum(allowed) => {
            let s = scalar_text(value).ok_or_else(|| {
                format!("expected one of [{}], got {}", allowed.join(", "), describe(value))
            })?;
            let n = normalize(&s);
            allowed
                .iter()
                .find(|a| normalize(a) == n)
                .map(|a| Some(Canonical::Enum(a.clone())))
                .ok_or_else(|| {
                    format!(
                        "'{}' is not one of the declared values [{}]",
                        excerpt(&s, 60),
                        allowed.join(", ")
                    )
                })
        }
        FieldType::List(rule) => {
            let items: Vec<&Value> = match value {
                Value::Array(a) => a.iter().collect(),
                Value::String(_) => vec![value],
                other => {
                    return Err(format!("expected a list of strings, got {}", describe(other)))
                }
            };
            let mut out: Vec<String> = Vec::new();
            for (k, item) in items.iter().enumerate() {
                if item.is_null() {
                    continue;
                }
                let s = scalar_text(item).ok_or_else(|| {
                    format!("list element {k} should be a string, got {}", describe(item))
                })?;
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

// ---------------------------------------------------------------------------------------------
// Declared fields
// ---------------------------------------------------------------------------------------------

impl std::fmt::Display for StringMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StringMatch::Exact => f.write_str("exact"),
            StringMatch::Normalized => f.write_str("normalized"),
            StringMatch::Fuzzy(t) => write!(f, "fuzzy({t})"),
        }
    }
}

impl FieldType {
    /// The type's name in a suite: `string`, `number`, `date`, `enum` or `list`.
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::String(_) => "string",
            FieldType::Number { .. } => "number",
            FieldType::Date { .. } => "date",
            FieldType::Enum(_) => "enum",
            FieldType::List(_) => "list",
        }
    }
}

/// One field an extraction task asks for, as declared in the suite.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "FieldMeta", try_from = "FieldMeta")]
pub struct FieldSpec {
    pub name: String,
    pub ty: FieldType,
    /// Every item has a gold value, and the model must give one (not null).
    pub required: bool,
    /// Shown to the model in the format line and the JSON schema.
    pub description: Option<String>,
}

/// [`FieldSpec`] as written to `run.json`: the suite's own spelling, so a report can be rebuilt
/// and read without the suite.
#[derive(serde::Serialize, serde::Deserialize)]
struct FieldMeta {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    match_rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tolerance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<String>>,
    /// Dates only, and only when numeric dates are read month first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    day_first: Option<bool>,
    required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl From<FieldSpec> for FieldMeta {
    fn from(f: FieldSpec) -> Self {
        let (match_rule, tolerance, values) = match &f.ty {
            FieldType::String(m) | FieldType::List(m) => (Some(m.to_string()), None, None),
            FieldType::Number { tolerance } => (None, Some(*tolerance), None),
            FieldType::Date { .. } => (None, None, None),
            FieldType::Enum(values) => (None, None, Some(values.clone())),
        };
        let day_first = matches!(f.ty, FieldType::Date { day_first: false }).then_some(false);
        FieldMeta {
            ty: f.ty.name().to_string(),
            name: f.name,
            match_rule,
            tolerance,
            values,
            day_first,
            required: f.required,
            description: f.description,
        }
    }
}

impl TryFrom<FieldMeta> for FieldSpec {
    type Error = String;
    fn try_from(m: FieldMeta) -> Result<Self, String> {
        let rule = || m.match_rule.as_deref().map_or(Ok(StringMatch::Normalized), str::parse);
        let ty = match m.ty.as_str() {
            "string" => FieldType::String(rule()?),
            "list" => FieldType::List(rule()?),
            "number" => FieldType::Number { tolerance: m.tolerance.unwrap_or(0.0) },
            "date" => FieldType::Date { day_first: m.day_first.unwrap_or(true) },
            "enum" => FieldType::Enum(m.values.clone().unwrap_or_default()),
            other => return Err(format!("unknown field type `{other}`")),
        };
        Ok(FieldSpec { name: m.name, ty, required: m.required, description: m.description })
    }
}

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

/// The declared fields' values in a reply's JSON object, in declared order: the key as declared,
/// else the only key equal to it ignoring case, spaces, `_` and `-` (models write `Company` or
/// `total_amount` for `total-amount`); `null` when the object has none.
pub fn project(fields: &[FieldSpec], object: &Map<String, Value>) -> Vec<Value> {
    let fold = |k: &str| {
        k.chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    fields
        .iter()
        .map(|f| {
            if let Some(v) = object.get(&f.name) {
                return v.clone();
            }
            let wanted = fold(&f.name);
            let mut matches = object.iter().filter(|(k, _)| fold(k) == wanted);
            match (matches.next(), matches.next()) {
                (Some((_, v)), None) => v.clone(),
                _ => Value::Null,
            }
        })
        .collect()
}

/// The gold values of one item, canonical, parsed from the gold object text a record carries.
pub fn gold_values(fields: &[FieldSpec], gold: &str) -> Result<Vec<Option<Canonical>>, String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(gold) else {
        return Err("the gold value is not a JSON object".into());
    };
    fields
        .iter()
        .map(|f| {
            canonicalize(map.get(&f.name).unwrap_or(&Value::Null), &f.ty)
                .map_err(|e| format!("gold `{}`: {e}", f.name))
        })
        .collect()
}

/// Each field's outcome for a reply's projected values (see [`project`]).
pub fn field_outcomes(
    fields: &[FieldSpec],
    gold: &[Option<Canonical>],
    predicted: &[Value],
) -> Vec<FieldOutcome> {
    fields
        .iter()
        .zip(gold)
        .zip(predicted)
        .map(|((f, g), p)| compare(g.as_ref(), canonicalize_prediction(p, &f.ty).as_ref(), &f.ty))
        .collect()
}

/// A record matches exactly when every field is right or absent on both sides.
pub fn exact_match(outcomes: &[FieldOutcome]) -> bool {
    outcomes.iter().all(|o| matches!(o, FieldOutcome::Correct | FieldOutcome::BothAbsent))
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOutcome {
    Correct,
    /// Both present, not matching: counts as both FP and FN.
    Wrong,
    /// Gold present, prediction missing: FN.
    Missed,
    /// Gold absent, prediction present: FP.
    Spurious,
    /// Neither present: not counted.
    BothAbsent,
}

/// Compare one field (see [`FieldOutcome`] for the semantics).
pub fn compare(
    gold: Option<&Canonical>,
    predicted: Option<&Canonical>,
    ty: &FieldType,
) -> FieldOutcome {
    match (gold, predicted) {
        (None, None) => FieldOutcome::BothAbsent,
        (Some(_), None) => FieldOutcome::Missed,
        (None, Some(_)) => FieldOutcome::Spurious,
        (Some(g), Some(p)) => {
            if values_match(g, p, ty) {
                FieldOutcome::Correct
            } else {
                FieldOutcome::Wrong
            }
        }
    }
}

fn values_match(g: &Canonical, p: &Canonical, ty: &FieldType) -> bool {
    use Canonical as C;
    match (g, p) {
        (C::Invalid(_), _) | (_, C::Invalid(_)) => false,
        (C::Text(a), C::Text(b)) => {
            let rule = match ty {
                FieldType::String(r) | FieldType::List(r) => *r,
                _ => StringMatch::Normalized,
            };
            strings_match(a, b, rule)
        }
        (C::Number(a), C::Number(b)) => {
            let tol = match ty {
                FieldType::Number { tolerance } if tolerance.is_finite() && *tolerance > 0.0 => {
                    *tolerance
                }
                _ => 0.0,
            };
            let eps = NUM_EPSILON * 1f64.max(a.abs()).max(b.abs());
            (a - b).abs() <= tol + eps
        }
        (C::Date(a), C::Date(b)) => a == b,
        (C::Enum(a), C::Enum(b)) => normalize(a) == normalize(b),
        (C::List(a), C::List(b)) => {
            let rule = match ty {
                FieldType::List(r) | FieldType::String(r) => *r,
                _ => StringMatch::Normalized,
            };
            lists_match(a, b, rule)
        }
        _ => false,
    }
}

fn strings_match(a: &str, b: &str, rule: StringMatch) -> bool {
    match rule {
        StringMatch::Exact => a.trim() == b.trim(),
        StringMatch::Normalized => normalize(a) == normalize(b),
        StringMatch::Fuzzy(t) => similarity(&normalize(a), &normalize(b)) >= t,
    }
}

/// Set equality under the rule; for Fuzzy, a greedy one-to-one matching (best-similarity pairs
/// first) must pair every element on both sides.
fn lists_match(a: &[String], b: &[String], rule: StringMatch) -> bool {
    let prep = |v: &[String]| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in v {
            let t = match rule {
                StringMatch::Exact => s.trim().to_string(),
                _ => normalize(s),
            };
            if !t.is_empty() && !out.contains(&t) {
                out.push(t);
            }
        }
        out
    };
    let (a, b) = (prep(a), prep(b));
    if a.len() != b.len() {
        return false;
    }
    match rule {
        StringMatch::Exact | StringMatch::Normalized => a.iter().all(|x| b.contains(x)),
        StringMatch::Fuzzy(t) => {
            let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
            for (i, x) in a.iter().enumerate() {
                for (j, y) in b.iter().enumerate() {
                    let s = similarity(x, y);
                    if s >= t {
                        pairs.push((s, i, j));
                    }
                }
            }
            pairs.sort_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)).then(p.2.cmp(&q.2)));
            let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
            let mut matched = 0;
            for (_, i, j) in pairs {
                if !used_a[i] && !used_b[j] {
                    used_a[i] = true;
                    used_b[j] = true;
                    matched += 1;
                }
            }
            matched == a.len()
        }
    }
}

/// Unicode lowercase; every char that is not alphanumeric or whitespace becomes a space;
/// whitespace runs collapsed to one space; trimmed.
pub fn normalize(s: &str) -> String {
    let mapped: String = s
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() || c.is_whitespace() { c } else { ' ' })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `1 − Levenshtein(a, b) / max(len a, len b)` over chars (both empty → 1). Callers pass
/// normalized strings. Each string is truncated to [`FUZZY_MAX_CHARS`] chars first, which bounds
/// the cost at 4M cell updates.
pub fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().take(FUZZY_MAX_CHARS).collect();
    let b: Vec<char> = b.chars().take(FUZZY_MAX_CHARS).collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    1.0 - levenshtein(&a, &b) as f64 / longest as f64
}

/// Two-row Levenshtein distance, O(n·m) time, O(m) space.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    if a.is_empty() {
        return b.len();
    }
    if b.is_empty() {
        return a.len();
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

/// Case-insensitive currency words accepted before/after a number besides any all-uppercase
/// three-letter code (ISO 4217 style, e.g. `MYR`, `USD`).
const CURRENCY_WORDS: &[&str] = &["rm", "rp", "rs", "us", "s", "hk", "nz", "a", "c", "r", "kr"];
const CURRENCY_SYMBOLS: &[char] =
    &['$', '€', '£', '¥', '₹', '₩', '₽', '₺', '₫', '฿', '¢', '₱', '₪', '₦'];

/// Parse a number written as text. Accepted:
/// * optional sign `-`/`+`/`−` before or after a currency prefix (`-RM 9`, `RM -9`), or the whole
///   thing in parentheses for a negative (`(12.00)`, `(RM 12.00)`);
/// * an optional currency prefix and/or suffix: symbols (`$ € £ ¥ ₹ …`) and codes — any
///   all-uppercase 3-letter code (`MYR`, `USD`) or one of `RM Rp Rs US S HK NZ A C R kr`
///   (case-insensitive), optionally combined with a symbol (`US$`, `S$`); spaces allowed between;
/// * digits with `,` thousands separators and `.` decimal (`1,234.50`), the default;
/// * European `1.234,50` only when unambiguous: both separators present (the last one is the
///   decimal mark), or a single `,` followed by 1–2 digits (`12,50`), or several `.` forming
///   valid thousands groups (`1.234.567`). A lone `,` + 3 digits (`1,234`) is read as thousands.
///
/// Rejected: anything else, including exponents, spaces inside the digits, bad grouping
/// (`1,23,4`), trailing minus signs, empty digits, and non-finite results.
pub fn parse_number(s: &str) -> Option<f64> {
    let mut t = s.trim();
    let mut neg = false;
    if let Some(inner) = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        neg = true;
        t = inner.trim();
    }
    let mut signed = neg;
    let take_sign = |t: &mut &str, neg: &mut bool, signed: &mut bool| {
        if *signed {
            return;
        }
        for (p, n) in [("-", true), ("−", true), ("+", false)] {
            if let Some(r) = t.strip_prefix(p) {
                *t = r.trim_start();
                *neg = n;
                *signed = true;
                return;
            }
        }
    };
    take_sign(&mut t, &mut neg, &mut signed);
    t = strip_currency_prefix(t).trim_start();
    take_sign(&mut t, &mut neg, &mut signed);
    t = strip_currency_suffix(t).trim_end();
    let v = parse_plain_number(t)?;
    let v = if neg { -v } else { v };
    if v.is_finite() {
        Some(v)
    } else {
        None
    }
}

fn is_currency_word(w: &str) -> bool {
    (w.len() == 3 && w.chars().all(|c| c.is_ascii_uppercase()))
        || CURRENCY_WORDS.iter().any(|c| c.eq_ignore_ascii_case(w))
}

fn strip_currency_prefix(t: &str) -> &str {
    let letters = t.chars().take_while(|c| c.is_ascii_alphabetic()).count();
    let mut rest = t;
    if letters > 0 {
        if !is_currency_word(&t[..letters]) {
            return t;
        }
        rest = &t[letters..];
    }
    if let Some(c) = rest.chars().next() {
        if CURRENCY_SYMBOLS.contains(&c) {
            rest = &rest[c.len_utf8()..];
        }
    }
    rest
}

fn strip_currency_suffix(t: &str) -> &str {
    let mut rest = t;
    if let Some(c) = rest.chars().next_back() {
        if CURRENCY_SYMBOLS.contains(&c) {
            return rest[..rest.len() - c.len_utf8()].trim_end();
        }
    }
    let letters = rest.chars().rev().take_while(|c| c.is_ascii_alphabetic()).count();
    if letters > 0 {
        let w = &rest[rest.len() - letters..];
        if is_currency_word(w) {
            rest = &rest[..rest.len() - letters];
            // e.g. "12 US$" is unusual; only a bare code/word is accepted as a suffix.
        }
    }
    rest
}

/// Digits with separators, no sign, no currency.
fn parse_plain_number(t: &str) -> Option<f64> {
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == ',' || c == '.') {
        return None;
    }
    let commas = t.matches(',').count();
    let dots = t.matches('.').count();
    let (int_part, frac_part, thousands): (&str, Option<&str>, Option<char>) = match (commas, dots)
    {
        (0, 0) => (t, None, None),
        (0, 1) => {
            let (i, f) = t.split_once('.').unwrap();
            (i, Some(f), None)
        }
        (0, _) => (t, None, Some('.')), // 1.234.567
        (1, 0) => {
            let (i, f) = t.split_once(',').unwrap();
            if (1..=2).contains(&f.len()) {
                (i, Some(f), None) // 12,50 (European decimal; cannot be thousands)
            } else if valid_groups(t, ',') {
                (t, None, Some(','))
            } else if i == "0" || i.is_empty() {
                (i, Some(f), None) // 0,125
            } else {
                return None;
            }
        }
        (_, 0) => (t, None, Some(',')), // 1,234,567
        _ => {
            // Both present: the last separator is the decimal mark and occurs once.
            let last_comma = t.rfind(',').unwrap();
            let last_dot = t.rfind('.').unwrap();
            let (dec, th) = if last_dot > last_comma { ('.', ',') } else { (',', '.') };
            if t.matches(dec).count() != 1 {
                return None;
            }
            let (i, f) = t.split_once(dec).unwrap();
            if f.contains(th) {
                return None;
            }
            (i, Some(f), Some(th))
        }
    };
    let int_digits: String = match thousands {
        Some(sep) if int_part.contains(sep) => {
            if !valid_groups(int_part, sep) {
                return None;
            }
            int_part.chars().filter(|c| *c != sep).collect()
        }
        _ => int_part.to_string(),
    };
    if !int_digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let text = match frac_part {
        Some(f) => {
            if f.is_empty() || !f.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let i = if int_digits.is_empty() { "0" } else { int_digits.as_str() };
            format!("{i}.{f}")
        }
        None => {
            if int_digits.is_empty() {
                return None;
            }
            int_digits
        }
    };
    text.parse::<f64>().ok()
}

/// `1,234,567`: first group 1–3 digits not starting with 0, then groups of exactly 3.
fn valid_groups(s: &str, sep: char) -> bool {
    let mut groups = s.split(sep);
    let first = groups.next().unwrap_or("");
    if first.is_empty() || first.len() > 3 || first.starts_with('0') {
        return false;
    }
    let mut n = 0;
    for g in groups {
        if g.len() != 3 || !g.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
        n += 1;
    }
    n > 0 && first.chars().all(|c| c.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] =
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

fn month_from_word(w: &str) -> Option<u32> {
    let w = w.to_ascii_lowercase();
    if w == "sept" {
        return Some(9);
    }
    MONTHS.iter().position(|m| *m == w || (w.len() == 3 && m.starts_with(&w))).map(|i| i as u32 + 1)
}

fn is_weekday(w: &str) -> bool {
    let w = w.to_ascii_lowercase();
    WEEKDAYS.iter().any(|d| *d == w || (w.len() == 3 && d.starts_with(&w)))
}

#[derive(Debug)]
enum Tok {
    Num(String),
    Word(String),
}

/// Parse a date to ISO `YYYY-MM-DD`. Accepted (case-insensitive, English month names, full or
/// 3-letter, plus `Sept`):
/// * `2018-03-14`, `2018/03/14`, `2018.03.14` (4-digit year first → Y-M-D);
/// * `14/03/2018`, `14-03-2018`, `14.03.2018`, `14/03/18` — **day first** (SROIE / Malaysian
///   receipts). Only if the day-first reading is invalid and the month-first one is valid
///   (`12/30/2017`) is it read month-first. Separators must be the same on both sides;
/// * `30 DEC 17`, `30-Dec-2017`, `30 December 2017`, `30th Dec 2017`;
/// * `Dec 30, 2017`, `December 30 2017`, `Dec. 30th, 2017`;
/// * `2017 Dec 30`;
/// * an optional leading weekday (`Sat, 30 Dec 2017`) and a trailing time
///   (`2018-03-14T10:00:00Z`, `25/12/2018 10:30 PM`) are ignored.
///
/// Two-digit years mean 2000+yy. Years must be 1000–9999; months and days are range-checked
/// with leap years. Also accepted: the compact forms `20171230` and `30122017` (years 1900–2099
/// only, so other 8-digit numbers are not read as dates), and any of the above wrapped in parentheses or
/// brackets (`(14/03/2018)`, as some receipts print it). Everything else (e.g. `31/02/2018`,
/// `Dec 2017`, `2017123`) is rejected.
pub fn parse_date(s: &str) -> Option<String> {
    parse_date_ordered(s, true)
}

/// [`parse_date`], reading all-numeric dates month first when `day_first` is false
/// (`03/04/2018` is March 4, `03042018` too; `30/12/2017`, invalid that way, is still read day
/// first). Dates with a month name or a 4-digit year first are read the same either way.
pub fn parse_date_ordered(s: &str, day_first: bool) -> Option<String> {
    let mut s = s.trim();
    while let Some(inner) = s.strip_prefix(['(', '[']).and_then(|r| r.strip_suffix([')', ']'])) {
        s = inner.trim();
    }
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        // YYYYMMDD, else DDMMYYYY. Both readings cannot be valid with years in 1900–2099: the
        // last four digits of a YYYYMMDD date are a month and day, never such a year.
        let ymd = (num(&s[..4])?, num(&s[4..6])?, num(&s[6..])?);
        let (first, second) = (num(&s[..2])?, num(&s[2..4])?);
        let dmy =
            if day_first { (num(&s[4..])?, second, first) } else { (num(&s[4..])?, first, second) };
        return [ymd, dmy]
            .into_iter()
            .find(|&(y, m, d)| (1900..=2099).contains(&y) && valid_ymd(y, m, d))
            .map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"));
    }
    let s = strip_time(s);
    let (toks, seps) = tokenize_date(s)?;
    let (y, m, d) = match toks.as_slice() {
        [Tok::Num(a), Tok::Num(b), Tok::Num(c)] => {
            let sep = seps[0].trim();
            if sep != seps[1].trim() || !matches!(sep, "/" | "-" | ".") {
                return None;
            }
            if a.len() == 4 && (1..=2).contains(&b.len()) && (1..=2).contains(&c.len()) {
                (year(a)?, num(b)?, num(c)?)
            } else if (1..=2).contains(&a.len()) && (1..=2).contains(&b.len()) {
                let y = year(c)?;
                // (day, month) in the preferred order, the other order as a fallback.
                let (p, q) = if day_first { (num(a)?, num(b)?) } else { (num(b)?, num(a)?) };
                if valid_ymd(y, q, p) {
                    (y, q, p)
                } else {
                    (y, p, q) // the other reading; validated below
                }
            } else {
                return None;
            }
        }
        [Tok::Num(a), Tok::Word(w), Tok::Num(c)] => {
            let m = month_from_word(w)?;
            if (1..=2).contains(&a.len()) {
                (year(c)?, m, num(a)?)
            } else if a.len() == 4 && (1..=2).contains(&c.len()) {
                (year(a)?, m, num(c)?)
            } else {
                return None;
            }
        }
        [Tok::Word(w), Tok::Num(b), Tok::Num(c)] if (1..=2).contains(&b.len()) => {
            (year(c)?, month_from_word(w)?, num(b)?)
        }
        _ => return None,
    };
    if !valid_ymd(y, m, d) {
        return None;
    }
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

fn num(s: &str) -> Option<u32> {
    s.parse().ok()
}

fn year(s: &str) -> Option<u32> {
    match s.len() {
        2 => Some(2000 + num(s)?),
        4 => num(s).filter(|y| (1000..=9999).contains(y)),
        _ => None,
    }
}

// `%` rather than `is_multiple_of` (stable only since 1.87; evalgate's rust-version is 1.85).
#[allow(clippy::manual_is_multiple_of)]
fn valid_ymd(y: u32, m: u32, d: u32) -> bool {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=dim).contains(&d)
}

/// Tokens (digit runs, ASCII-letter runs) and the separator text between consecutive tokens.
/// Drops ordinal suffixes glued to numbers and a leading weekday. Other characters → None.
fn tokenize_date(s: &str) -> Option<(Vec<Tok>, Vec<String>)> {
    let mut toks: Vec<Tok> = Vec::new();
    let mut seps: Vec<String> = Vec::new();
    let mut sep = String::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() || c.is_ascii_alphabetic() {
            let digit = c.is_ascii_digit();
            let mut run = String::new();
            while let Some(&c2) = chars.peek() {
                if (digit && c2.is_ascii_digit()) || (!digit && c2.is_ascii_alphabetic()) {
                    run.push(c2);
                    chars.next();
                } else {
                    break;
                }
            }
            if run.len() > 9 {
                return None;
            }
            let is_ordinal = !digit
                && sep.is_empty()
                && matches!(toks.last(), Some(Tok::Num(_)))
                && matches!(run.to_ascii_lowercase().as_str(), "st" | "nd" | "rd" | "th");
            if is_ordinal {
                continue;
            }
            if !toks.is_empty() {
                seps.push(std::mem::take(&mut sep));
            } else {
                sep.clear();
            }
            toks.push(if digit { Tok::Num(run) } else { Tok::Word(run) });
        } else if c.is_whitespace() || matches!(c, '/' | '-' | '.' | ',') {
            sep.push(c);
            chars.next();
        } else {
            return None;
        }
        if toks.len() > 4 {
            return None;
        }
    }
    if let Some(Tok::Word(w)) = toks.first() {
        if is_weekday(w) && toks.len() > 1 {
            toks.remove(0);
            seps.remove(0);
        }
    }
    Some((toks, seps))
}

/// Remove a trailing time of day: the first whitespace (or `T` after a digit) followed by text
/// that starts like `H:MM` and contains only time characters.
fn strip_time(s: &str) -> &str {
    let mut prev: Option<char> = None;
    for (i, c) in s.char_indices() {
        let cut = c.is_whitespace() || (c == 'T' && prev.is_some_and(|p| p.is_ascii_digit()));
        if cut {
            let rest = s[i + c.len_utf8()..].trim();
            if is_time_like(rest) {
                return s[..i].trim_end();
            }
        }
        prev = Some(c);
    }
    s
}

fn is_time_like(r: &str) -> bool {
    let digits = r.chars().take_while(|c| c.is_ascii_digit()).count();
    (1..=2).contains(&digits)
        && r[digits..].starts_with(':')
        && r.chars().all(|c| {
            c.is_ascii_digit()
                || c.is_whitespace()
                || matches!(
                    c,
                    ':' | '.' | '+' | '-' | 'Z' | 'z' | 'a' | 'A' | 'p' | 'P' | 'm' | 'M'
                )
        })
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(reply: &str) -> Option<Value> {
        first_json_object(reply).map(Value::Object)
    }

    fn canon(v: Value, ty: &FieldType) -> Option<Canonical> {
        canonicalize(&v, ty).expect("gold should canonicalize")
    }

    fn outcome(gold: Value, pred: Value, ty: &FieldType) -> FieldOutcome {
        let g = canon(gold, ty);
        let p = canonicalize_prediction(&pred, ty);
        compare(g.as_ref(), p.as_ref(), ty)
    }

    // ---- first_json_object ----

    #[test]
    fn plain_object() {
        assert_eq!(
            obj(r#"{"company": "ACME", "total": 9.0}"#),
            Some(json!({"company": "ACME", "total": 9.0}))
        );
        assert_eq!(obj("  \n{\"a\":1}\n "), Some(json!({"a": 1})));
    }

    #[test]
    fn fenced_with_prose() {
        let r = "Sure! Here is the data:\n```json\n{\"company\": \"ACME SDN BHD\", \"total\": \"9.00\"}\n```\nLet me know if you need more.";
        assert_eq!(obj(r), Some(json!({"company": "ACME SDN BHD", "total": "9.00"})));
        let r = "Result:\n```\n{\"a\": [1, 2]}\n```";
        assert_eq!(obj(r), Some(json!({"a": [1, 2]})));
        let r = "```JSON\n{\"a\": 1}\n```";
        assert_eq!(obj(r), Some(json!({"a": 1})));
    }

    #[test]
    fn fence_contents_beat_earlier_prose_braces() {
        // Prose mentions a valid object before the fence; the fence wins per the documented order.
        let r = "Format is {\"x\": 0}.\n```json\n{\"a\": 1}\n```";
        assert_eq!(obj(r), Some(json!({"a": 1})));
    }

    #[test]
    fn prose_then_object_with_braces_in_strings() {
        let r = r#"The answer is {"note": "use {braces} and \"quotes\" } here", "n": {"k": "}"}} thanks"#;
        assert_eq!(
            obj(r),
            Some(json!({"note": "use {braces} and \"quotes\" } here", "n": {"k": "}"}}))
        );
    }

    #[test]
    fn two_objects_first_wins() {
        assert_eq!(obj(r#"first {"a": 1} then {"b": 2}"#), Some(json!({"a": 1})));
        assert_eq!(obj("{\"a\": 1}\n{\"b\": 2}"), Some(json!({"a": 1})));
    }

    #[test]
    fn no_object() {
        assert_eq!(obj(""), None);
        assert_eq!(obj("I could not find any fields."), None);
        assert_eq!(obj("{ not json }"), None);
        assert_eq!(obj("{\"a\": 1"), None);
        assert_eq!(obj("```json\n```"), None);
    }

    #[test]
    fn invalid_fence_then_valid_object_later() {
        let r = "```json\n{\"a\": 1,, }\n```\nCorrected: {\"a\": 2}";
        assert_eq!(obj(r), Some(json!({"a": 2})));
        // A broken outer object is skipped as a whole, not mined for inner fragments.
        let r = "{\"a\": {\"inner\": 1}, oops} and then {\"b\": 3}";
        assert_eq!(obj(r), Some(json!({"b": 3})));
    }

    #[test]
    fn arrays_ignored() {
        assert_eq!(obj("[1, 2, 3]"), None);
        assert_eq!(obj("```json\n[1, 2]\n```"), None);
        assert_eq!(obj("list [1, 2] then {\"a\": 1}"), Some(json!({"a": 1})));
        // An object inside an array can still be found by the brace scan (documented).
        assert_eq!(obj("[{\"a\": 1}]"), Some(json!({"a": 1})));
        assert_eq!(obj("42"), None);
        assert_eq!(obj(r#""{\"a\": 1}""#), None); // a JSON string holding an object
    }

    #[test]
    fn deeply_nested() {
        let depth = 100;
        let s = format!("prose {}1{} end", "{\"a\":".repeat(depth), "}".repeat(depth));
        let v = obj(&s).expect("depth 100 parses");
        let mut cur = &v;
        for _ in 0..depth {
            cur = &cur["a"];
        }
        assert_eq!(cur, &json!(1));
        // Beyond serde_json's recursion limit: no panic, no stack overflow.
        let s = format!("{}1{}", "{\"a\":".repeat(20_000), "}".repeat(20_000));
        assert_eq!(obj(&s), None);
        let s = "{".repeat(50_000);
        assert_eq!(obj(&s), None);
    }

    #[test]
    fn unicode() {
        let r =
            "Voilà — résultat : {\"société\": \"Café Ünïcödé 東京 🍜\", \"total\": \"€ 12,50\"} ✓";
        let m = first_json_object(r).unwrap();
        assert_eq!(m["société"], json!("Café Ünïcödé 東京 🍜"));
        assert_eq!(
            canon(m["total"].clone(), &FieldType::Number { tolerance: 0.0 }),
            Some(Canonical::Number(12.5))
        );
        let r = "\u{feff}{\"a\": \"\\u00e9\"}";
        assert_eq!(obj(r), Some(json!({"a": "é"})));
    }

    // ---- StringMatch parsing ----

    #[test]
    fn string_match_from_str() {
        assert_eq!("exact".parse::<StringMatch>(), Ok(StringMatch::Exact));
        assert_eq!(" Normalized ".parse::<StringMatch>(), Ok(StringMatch::Normalized));
        assert_eq!("fuzzy".parse::<StringMatch>(), Ok(StringMatch::Fuzzy(0.9)));
        assert_eq!("fuzzy(0.85)".parse::<StringMatch>(), Ok(StringMatch::Fuzzy(0.85)));
        assert_eq!("fuzzy( 1 )".parse::<StringMatch>(), Ok(StringMatch::Fuzzy(1.0)));
        for bad in ["fuzzy(0)", "fuzzy(1.5)", "fuzzy(-0.2)", "fuzzy(NaN)"] {
            let e = bad.parse::<StringMatch>().unwrap_err();
            assert!(e.contains("(0,1]"), "{bad}: {e}");
        }
        let e = "fuzzy(abc)".parse::<StringMatch>().unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let e = "regex".parse::<StringMatch>().unwrap_err();
        assert!(e.contains("unknown match rule 'regex'") && e.contains("exact"), "{e}");
        assert!("fuzzy(0.8".parse::<StringMatch>().is_err());
        assert!("".parse::<StringMatch>().is_err());
    }

    // ---- strings ----

    #[test]
    fn normalize_rules() {
        assert_eq!(normalize("  ACME  Sdn. Bhd.,  (M) "), "acme sdn bhd m");
        assert_eq!(normalize("Ünï—Cödé"), "ünï cödé");
        assert_eq!(normalize("---"), "");
        assert_eq!(normalize("a\t\nb"), "a b");
    }

    #[test]
    fn company_names_normalized() {
        let ty = FieldType::String(StringMatch::Normalized);
        assert_eq!(
            outcome(
                json!("BOOK TA .K (TAMAN DAYA) SDN BHD"),
                json!("Book Ta.K (Taman Daya) Sdn. Bhd."),
                &ty
            ),
            FieldOutcome::Correct
        );
        // Punctuation becomes a space, it is not deleted: "TA.K" ≠ "TAK".
        assert_eq!(
            outcome(json!("BOOK TA.K SDN BHD"), json!("BOOK TAK SDN BHD"), &ty),
            FieldOutcome::Wrong
        );
        assert_eq!(
            outcome(json!("OJC MARKETING SDN BHD"), json!("ojc marketing sdn. bhd."), &ty),
            FieldOutcome::Correct
        );
        assert_eq!(
            outcome(
                json!("SYARIKAT PERNIAGAAN GIN KEE"),
                json!("Syarikat Perniagaan Gin-Kee!"),
                &ty
            ),
            FieldOutcome::Correct
        );
        assert_eq!(
            outcome(json!("UNIHAKKA INTERNATIONAL SDN BHD"), json!("UNIHAKKA SDN BHD"), &ty),
            FieldOutcome::Wrong
        );
    }

    #[test]
    fn exact_strings() {
        let ty = FieldType::String(StringMatch::Exact);
        assert_eq!(outcome(json!("ACME"), json!("  ACME "), &ty), FieldOutcome::Correct);
        assert_eq!(outcome(json!("ACME"), json!("Acme"), &ty), FieldOutcome::Wrong);
        assert_eq!(outcome(json!("ACME."), json!("ACME"), &ty), FieldOutcome::Wrong);
    }

    #[test]
    fn addresses_fuzzy() {
        let ty = FieldType::String("fuzzy(0.85)".parse().unwrap());
        let gold = json!("NO 53, JALAN BESAR, 45600 BATANG BERJUNTAI, SELANGOR");
        // One typo (BERJUNTAI → BERJUNTEI), plus punctuation/case differences.
        assert_eq!(
            outcome(gold.clone(), json!("No 53 Jalan Besar 45600 Batang Berjuntei Selangor"), &ty),
            FieldOutcome::Correct
        );
        // A different address.
        assert_eq!(
            outcome(
                gold.clone(),
                json!("LOT 1851-A, JALAN KPB 6, 43300 SERI KEMBANGAN, SELANGOR"),
                &ty
            ),
            FieldOutcome::Wrong
        );
        // Same street, different number and town: still below 0.85.
        assert_eq!(
            outcome(gold, json!("NO 12, JALAN BESAR, 43000 KAJANG, SELANGOR"), &ty),
            FieldOutcome::Wrong
        );
    }

    #[test]
    fn similarity_and_levenshtein() {
        assert_eq!(similarity("", ""), 1.0);
        assert_eq!(similarity("abc", ""), 0.0);
        assert_eq!(similarity("kitten", "sitting"), 1.0 - 3.0 / 7.0);
        assert_eq!(similarity("café", "cafe"), 0.75); // chars, not bytes
        assert_eq!(levenshtein(&['a', 'b'], &['b', 'a']), 2);
        // Long strings are truncated, so this is fast and identical prefixes match.
        let a = "x".repeat(10_000);
        let b = format!("{}{}", "x".repeat(FUZZY_MAX_CHARS), "y".repeat(8_000));
        assert_eq!(similarity(&a, &b), 1.0);
        // Threshold boundary is inclusive.
        let ty = FieldType::String(StringMatch::Fuzzy(0.75));
        assert_eq!(outcome(json!("abcd"), json!("abcx"), &ty), FieldOutcome::Correct);
        let ty = FieldType::String(StringMatch::Fuzzy(0.76));
        assert_eq!(outcome(json!("abcd"), json!("abcx"), &ty), FieldOutcome::Wrong);
    }

    #[test]
    fn string_non_string_values() {
        let ty = FieldType::String(StringMatch::Normalized);
        assert_eq!(canon(json!(45600), &ty), Some(Canonical::Text("45600".into())));
        assert_eq!(canon(json!("  "), &ty), None);
        assert_eq!(canon(json!("--"), &ty), None);
        assert!(canonicalize(&json!({"a": 1}), &ty).unwrap_err().contains("an object"));
        assert!(canonicalize(&json!(["a"]), &ty).unwrap_err().contains("a list"));
    }

    // ---- numbers ----

    #[test]
    fn sroie_totals() {
        let ty = FieldType::Number { tolerance: 0.0 };
        assert_eq!(outcome(json!("RM 9.00"), json!(9), &ty), FieldOutcome::Correct);
        assert_eq!(outcome(json!("9.00"), json!("RM9"), &ty), FieldOutcome::Correct);
        assert_eq!(outcome(json!("9.00"), json!("9.01"), &ty), FieldOutcome::Wrong);
        let ty = FieldType::Number { tolerance: 0.01 };
        assert_eq!(outcome(json!("9.00"), json!("9.01"), &ty), FieldOutcome::Correct);
        assert_eq!(outcome(json!("9.00"), json!("9.02"), &ty), FieldOutcome::Wrong);
        // Float noise is absorbed.
        let ty = FieldType::Number { tolerance: 0.0 };
        assert_eq!(outcome(json!(0.1 + 0.2), json!("0.3"), &ty), FieldOutcome::Correct);
    }

    #[test]
    fn number_formats() {
        let cases: &[(&str, f64)] = &[
            ("RM 1,234.50", 1234.5),
            ("$12", 12.0),
            ("12.30", 12.3),
            ("1.234,50", 1234.5),
            ("1.234.567,89", 1234567.89),
            ("1.234.567", 1234567.0),
            ("12,50", 12.5),
            ("1,234", 1234.0),
            ("1,234,567", 1234567.0),
            ("0,125", 0.125),
            (".50", 0.5),
            ("-12.5", -12.5),
            ("−3", -3.0),
            ("+7", 7.0),
            ("-RM 9.00", -9.0),
            ("RM -9.00", -9.0),
            ("(12.00)", -12.0),
            ("(RM 1,000.00)", -1000.0),
            ("9.00 RM", 9.0),
            ("12.00 MYR", 12.0),
            ("USD 5", 5.0),
            ("US$ 5", 5.0),
            ("S$5.20", 5.2),
            ("€ 3,50", 3.5),
            ("12€", 12.0),
            ("rm9.90", 9.9),
            ("0", 0.0),
        ];
        for (s, want) in cases {
            assert_eq!(parse_number(s), Some(*want), "{s}");
        }
        let rejects = [
            "",
            "abc",
            "12abc",
            "abc12",
            "1e5",
            "1 234",
            "1,23,4",
            "1,2345",
            "12.",
            "1.2.3,4,5",
            "1,234.5.6",
            "--5",
            "5-",
            "RM",
            "$",
            "(5",
            "NaN",
            "inf",
            "1.234,567.8",
            ",",
            ".",
            "0,1234,5",
        ];
        for s in rejects {
            assert_eq!(parse_number(s), None, "{s} should be rejected");
        }
    }

    #[test]
    fn number_errors() {
        let ty = FieldType::Number { tolerance: 0.0 };
        assert!(canonicalize(&json!("twelve"), &ty)
            .unwrap_err()
            .contains("'twelve' is not a number"));
        assert!(canonicalize(&json!(true), &ty).unwrap_err().contains("boolean"));
        assert_eq!(canon(json!(""), &ty), None);
        assert_eq!(canon(json!(null), &ty), None);
        assert_eq!(
            canonicalize_prediction(&json!("about ten"), &ty),
            Some(Canonical::Invalid("\"about ten\"".into()))
        );
        assert_eq!(outcome(json!("10"), json!("about ten"), &ty), FieldOutcome::Wrong);
        assert_eq!(outcome(json!(null), json!("about ten"), &ty), FieldOutcome::Spurious);
    }

    // ---- dates ----

    #[test]
    fn sroie_dates() {
        assert_eq!(
            outcome(json!("25/12/2018"), json!("2018-12-25"), &FieldType::Date { day_first: true }),
            FieldOutcome::Correct
        );
        assert_eq!(
            outcome(json!("2017-12-30"), json!("30 DEC 17"), &FieldType::Date { day_first: true }),
            FieldOutcome::Correct
        );
        assert_eq!(
            outcome(json!("25/12/2018"), json!("2018-12-26"), &FieldType::Date { day_first: true }),
            FieldOutcome::Wrong
        );
        // Day first: 03/04/2018 is 3 April, not 4 March.
        assert_eq!(
            outcome(json!("03/04/2018"), json!("2018-04-03"), &FieldType::Date { day_first: true }),
            FieldOutcome::Correct
        );
        assert_eq!(
            outcome(json!("03/04/2018"), json!("2018-03-04"), &FieldType::Date { day_first: true }),
            FieldOutcome::Wrong
        );
    }

    #[test]
    fn date_formats() {
        let cases: &[(&str, &str)] = &[
            ("2018-03-14", "2018-03-14"),
            ("14/03/2018", "2018-03-14"),
            ("14-03-2018", "2018-03-14"),
            ("14.03.2018", "2018-03-14"),
            ("14/03/18", "2018-03-14"),
            ("4/3/18", "2018-03-04"),
            ("30 DEC 17", "2017-12-30"),
            ("30 Dec 2017", "2017-12-30"),
            ("30-Dec-2017", "2017-12-30"),
            ("30th December 2017", "2017-12-30"),
            ("Dec 30, 2017", "2017-12-30"),
            ("December 30 2017", "2017-12-30"),
            ("Dec. 1st, 2017", "2017-12-01"),
            ("Sept 9 2019", "2019-09-09"),
            ("2017/12/30", "2017-12-30"),
            ("2017.12.30", "2017-12-30"),
            ("2017 Dec 30", "2017-12-30"),
            ("Sat, 30 Dec 2017", "2017-12-30"),
            ("2018-03-14T10:00:00Z", "2018-03-14"),
            ("25/12/2018 10:30 PM", "2018-12-25"),
            ("30 Dec 2017 09:15:01", "2017-12-30"),
            ("12/30/2017", "2017-12-30"), // day-first invalid, month-first valid
            ("29/02/2020", "2020-02-29"),
            ("29/02/2000", "2000-02-29"),
            (" 2018 - 03 - 14 ", "2018-03-14"),
        ];
        for (s, want) in cases {
            assert_eq!(parse_date(s).as_deref(), Some(*want), "{s}");
        }
    }

    #[test]
    fn invalid_dates_rejected() {
        let rejects = [
            "31/02/2018",
            "29/02/2019",
            "29/02/1900",
            "32/01/2018",
            "00/01/2018",
            "13/13/2018",
            "31/04/2018",
            "2018-13-01",
            "2018-00-10",
            "30 Foo 2017",
            "Dec 2017",
            "2017123",
            "12345678",
            "20171332",
            "14/03-2018",
            "14 03 2018",
            "14/03/218",
            "2018/3",
            "yesterday",
            "",
            "12:30",
            "30 Dec 17 garbage",
            "0999-01-01",
            "1/2/3",
            "Monday",
            "30 Dec 2017 T",
            "3O/12/2017",
        ];
        for s in rejects {
            assert_eq!(parse_date(s), None, "{s} should be rejected");
        }
        // Forms SROIE's train split uses.
        assert_eq!(parse_date("20171230").as_deref(), Some("2017-12-30"));
        assert_eq!(parse_date("25032018").as_deref(), Some("2018-03-25"));
        assert_eq!(parse_date("(14/03/2018)").as_deref(), Some("2018-03-14"));
        // Month first, for US-style data.
        for (s, want) in [
            ("03/04/2018", "2018-03-04"),
            ("12/30/2017", "2017-12-30"),
            ("30/12/2017", "2017-12-30"),
            ("03042018", "2018-03-04"),
            ("4 Mar 2018", "2018-03-04"),
            ("2018-03-04", "2018-03-04"),
        ] {
            assert_eq!(parse_date_ordered(s, false).as_deref(), Some(want), "{s}");
        }
        let us = FieldType::Date { day_first: false };
        assert_eq!(
            canonicalize(&json!("03/04/2018"), &us).unwrap(),
            Some(Canonical::Date("2018-03-04".into()))
        );
        let e =
            canonicalize(&json!("31/02/2018"), &FieldType::Date { day_first: true }).unwrap_err();
        assert!(e.contains("'31/02/2018' is not a recognised date"), "{e}");
        assert!(canonicalize(&json!(20171230), &FieldType::Date { day_first: true })
            .unwrap_err()
            .contains("a number"));
    }

    // ---- enums ----

    #[test]
    fn enums() {
        let ty = FieldType::Enum(vec!["Cash".into(), "Credit Card".into(), "E-Wallet".into()]);
        assert_eq!(canon(json!("credit-card"), &ty), Some(Canonical::Enum("Credit Card".into())));
        assert_eq!(outcome(json!("CASH"), json!("cash."), &ty), FieldOutcome::Correct);
        assert_eq!(outcome(json!("e wallet"), json!("E-Wallet"), &ty), FieldOutcome::Correct);
        assert_eq!(outcome(json!("Cash"), json!("Credit card"), &ty), FieldOutcome::Wrong);
        // Prediction outside the declared values: present but wrong.
        assert_eq!(outcome(json!("Cash"), json!("Cheque"), &ty), FieldOutcome::Wrong);
        // Gold outside the declared values: error naming value and choices.
        let e = canonicalize(&json!("Cheque"), &ty).unwrap_err();
        assert!(
            e.contains("'Cheque' is not one of the declared values [Cash, Credit Card, E-Wallet]"),
            "{e}"
        );
        assert!(canonicalize(&json!(["Cash"]), &ty).is_err());
        assert_eq!(canon(json!(null), &ty), None);
    }

    // ---- lists ----

    #[test]
    fn lists() {
        let ty = FieldType::List(StringMatch::Normalized);
        assert_eq!(
            outcome(json!(["Milk", "Bread"]), json!(["bread.", "MILK"]), &ty),
            FieldOutcome::Correct
        );
        assert_eq!(outcome(json!(["Milk", "Bread"]), json!(["Milk"]), &ty), FieldOutcome::Wrong);
        assert_eq!(outcome(json!(["Milk"]), json!(["Milk", "Eggs"]), &ty), FieldOutcome::Wrong);
        assert_eq!(outcome(json!(["Milk", "milk!"]), json!("Milk"), &ty), FieldOutcome::Correct); // set + single string
        assert_eq!(outcome(json!([]), json!(["Milk"]), &ty), FieldOutcome::Spurious);
        assert_eq!(outcome(json!(["Milk"]), json!([]), &ty), FieldOutcome::Missed);
        assert_eq!(canon(json!(["", null, "  "]), &ty), None);
        assert!(canonicalize(&json!(["a", {"b": 1}]), &ty).unwrap_err().contains("list element 1"));
        assert!(canonicalize(&json!(5), &ty).is_err());

        let ty = FieldType::List(StringMatch::Exact);
        assert_eq!(
            outcome(json!(["Milk", "Bread"]), json!(["Bread", "Milk"]), &ty),
            FieldOutcome::Correct
        );
        assert_eq!(outcome(json!(["Milk"]), json!(["milk"]), &ty), FieldOutcome::Wrong);
    }

    #[test]
    fn fuzzy_lists_one_to_one() {
        let ty = FieldType::List(StringMatch::Fuzzy(0.8));
        assert_eq!(
            outcome(
                json!(["chocolate milk", "white bread"]),
                json!(["white bred", "chocolate mlk"]),
                &ty
            ),
            FieldOutcome::Correct
        );
        // Two gold items both close to one predicted item: one-to-one means no full match.
        assert_eq!(
            outcome(
                json!(["apple pie a", "apple pie b"]),
                json!(["apple pie c", "zzzzzzzzzzz"]),
                &ty
            ),
            FieldOutcome::Wrong
        );
        // Greedy best-first: "abcdefghij" pairs with its exact twin, leaving the near one for the other.
        assert_eq!(
            outcome(json!(["abcdefghij", "abcdefghiX"]), json!(["abcdefghiY", "abcdefghij"]), &ty),
            FieldOutcome::Correct
        );
    }

    // ---- every FieldOutcome branch ----

    #[test]
    fn all_outcomes() {
        let ty = FieldType::String(StringMatch::Normalized);
        assert_eq!(outcome(json!("a"), json!("A"), &ty), FieldOutcome::Correct);
        assert_eq!(outcome(json!("a"), json!("b"), &ty), FieldOutcome::Wrong);
        assert_eq!(outcome(json!("a"), json!(null), &ty), FieldOutcome::Missed);
        assert_eq!(outcome(json!("a"), json!(""), &ty), FieldOutcome::Missed);
        assert_eq!(outcome(json!(null), json!("b"), &ty), FieldOutcome::Spurious);
        assert_eq!(outcome(json!(""), json!(null), &ty), FieldOutcome::BothAbsent);
        // Direct use with hand-built values, and mismatched variants never match.
        assert_eq!(
            compare(None, None, &FieldType::Date { day_first: true }),
            FieldOutcome::BothAbsent
        );
        let d = Canonical::Date("2018-01-01".into());
        assert_eq!(
            compare(Some(&d), Some(&Canonical::Number(1.0)), &FieldType::Date { day_first: true }),
            FieldOutcome::Wrong
        );
        assert_eq!(
            compare(Some(&d), Some(&d), &FieldType::Date { day_first: true }),
            FieldOutcome::Correct
        );
        assert_eq!(
            compare(Some(&d), None, &FieldType::Date { day_first: true }),
            FieldOutcome::Missed
        );
        assert_eq!(
            compare(None, Some(&d), &FieldType::Date { day_first: true }),
            FieldOutcome::Spurious
        );
    }

    #[test]
    fn reply_to_outcomes_end_to_end() {
        let reply = "Here you go:\n```json\n{\"company\": \"Ojc Marketing Sdn. Bhd.\", \"date\": \"15/01/2019\", \"total\": \"RM 193.00\", \"address\": null}\n```";
        let m = first_json_object(reply).unwrap();
        let fields = [
            (
                "company",
                FieldType::String(StringMatch::Normalized),
                json!("OJC MARKETING SDN BHD"),
                FieldOutcome::Correct,
            ),
            (
                "date",
                FieldType::Date { day_first: true },
                json!("2019-01-15"),
                FieldOutcome::Correct,
            ),
            (
                "total",
                FieldType::Number { tolerance: 0.01 },
                json!("193.00"),
                FieldOutcome::Correct,
            ),
            (
                "address",
                FieldType::String(StringMatch::Fuzzy(0.85)),
                json!("NO 2 JALAN"),
                FieldOutcome::Missed,
            ),
            ("phone", FieldType::String(StringMatch::Exact), json!(null), FieldOutcome::BothAbsent),
        ];
        for (name, ty, gold, want) in fields {
            let g = canon(gold, &ty);
            let p = canonicalize_prediction(m.get(name).unwrap_or(&Value::Null), &ty);
            assert_eq!(compare(g.as_ref(), p.as_ref(), &ty), want, "{name}");
        }
    }

    // ---- robustness ----

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn no_panic_on_random_input() {
        const ALPHABET: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            "\"",
            "\\",
            ":",
            ",",
            ".",
            "-",
            "/",
            "(",
            ")",
            "`",
            "```",
            "```json\n",
            "\n",
            " ",
            "0",
            "1",
            "9",
            "12",
            "2018",
            "RM",
            "$",
            "€",
            "é",
            "東",
            "🍜",
            "Dec",
            "T",
            ":30",
            "a",
            "true",
            "null",
            "{\"a\":1}",
            "st",
            "Sat",
            "\u{0}",
            "−",
            "İ",
        ];
        let types = [
            FieldType::String(StringMatch::Exact),
            FieldType::String(StringMatch::Normalized),
            FieldType::String(StringMatch::Fuzzy(0.85)),
            FieldType::Number { tolerance: 0.01 },
            FieldType::Date { day_first: true },
            FieldType::Enum(vec!["Cash".into(), "Card".into()]),
            FieldType::List(StringMatch::Fuzzy(0.5)),
            FieldType::List(StringMatch::Normalized),
        ];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut found = 0;
        let mut parsed = 0;
        for _ in 0..4000 {
            let len = rng.below(40);
            let s: String = (0..len).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect();
            if first_json_object(&s).is_some() {
                found += 1;
            }
            let values =
                [Value::String(s.clone()), json!([s.clone(), "x"]), json!(rng.next() as f64 / 7.0)];
            for ty in &types {
                for v in &values {
                    let a = canonicalize(v, ty);
                    if matches!(a, Ok(Some(_))) {
                        parsed += 1;
                    }
                    let p = canonicalize_prediction(v, ty);
                    let _ = compare(a.ok().flatten().as_ref(), p.as_ref(), ty);
                }
            }
            let _ = parse_date(&s);
            let _ = parse_number(&s);
            let _ = s.parse::<StringMatch>();
        }
        // The generator is not degenerate: some inputs hit the success paths.
        assert!(found > 0 && parsed > 0, "found={found} parsed={parsed}");
    }
}
