//! Typed fields of an extraction task: what a suite declares (this file), how a gold or
//! predicted value of each type is read into a canonical form ([`value`]), and the number and
//! date readers that uses. Suite validation, few-shot demonstrations, reply parsing and scoring
//! all read values through here, so a gold value is validated exactly as it will be scored.

use std::str::FromStr;

pub mod date;
pub mod number;
pub mod value;

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

/// A field declaration that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldSpecError {
    #[error(
        "fuzzy threshold {threshold} in match rule '{rule}' is out of range: must be in (0,1]"
    )]
    FuzzyOutOfRange { threshold: String, rule: String },
    #[error("fuzzy threshold '{threshold}' in match rule '{rule}' is not a number; {MATCH_RULES}")]
    FuzzyNotANumber { threshold: String, rule: String },
    #[error("unknown match rule '{0}': {MATCH_RULES}")]
    UnknownMatchRule(String),
    #[error("unknown field type `{0}`")]
    UnknownType(String),
}

const MATCH_RULES: &str = "expected exact, normalized, fuzzy or fuzzy(<threshold in (0,1]>)";

impl FromStr for StringMatch {
    type Err = FieldSpecError;
    /// `exact` | `normalized` | `fuzzy` (= 0.9) | `fuzzy(<t>)` with t in (0, 1].
    /// Case-insensitive; surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, FieldSpecError> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "exact" => return Ok(StringMatch::Exact),
            "normalized" => return Ok(StringMatch::Normalized),
            "fuzzy" => return Ok(StringMatch::Fuzzy(0.9)),
            _ => {}
        }
        if let Some(inner) = t.strip_prefix("fuzzy").map(str::trim_start) {
            if let Some(num) = inner.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
                let num = num.trim();
                return match num.parse::<f64>() {
                    Ok(v) if v.is_finite() && v > 0.0 && v <= 1.0 => Ok(StringMatch::Fuzzy(v)),
                    Ok(_) => Err(FieldSpecError::FuzzyOutOfRange {
                        threshold: num.to_string(),
                        rule: s.trim().to_string(),
                    }),
                    Err(_) => Err(FieldSpecError::FuzzyNotANumber {
                        threshold: num.to_string(),
                        rule: s.trim().to_string(),
                    }),
                };
            }
        }
        Err(FieldSpecError::UnknownMatchRule(s.trim().to_string()))
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
    type Error = FieldSpecError;
    fn try_from(m: FieldMeta) -> Result<Self, FieldSpecError> {
        let rule = || m.match_rule.as_deref().map_or(Ok(StringMatch::Normalized), str::parse);
        let ty = match m.ty.as_str() {
            "string" => FieldType::String(rule()?),
            "list" => FieldType::List(rule()?),
            "number" => FieldType::Number { tolerance: m.tolerance.unwrap_or(0.0) },
            "date" => FieldType::Date { day_first: m.day_first.unwrap_or(true) },
            "enum" => FieldType::Enum(m.values.clone().unwrap_or_default()),
            other => return Err(FieldSpecError::UnknownType(other.to_string())),
        };
        Ok(FieldSpec { name: m.name, ty, required: m.required, description: m.description })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_match_from_str() {
        assert_eq!("exact".parse::<StringMatch>(), Ok(StringMatch::Exact));
        assert_eq!(" Normalized ".parse::<StringMatch>(), Ok(StringMatch::Normalized));
        assert_eq!("fuzzy".parse::<StringMatch>(), Ok(StringMatch::Fuzzy(0.9)));
        assert_eq!("fuzzy(0.85)".parse::<StringMatch>(), Ok(StringMatch::Fuzzy(0.85)));
        assert_eq!("fuzzy( 1 )".parse::<StringMatch>(), Ok(StringMatch::Fuzzy(1.0)));
        for bad in ["fuzzy(0)", "fuzzy(1.5)", "fuzzy(-0.2)", "fuzzy(NaN)"] {
            let e = bad.parse::<StringMatch>().unwrap_err();
            assert!(e.to_string().contains("(0,1]"), "{bad}: {e}");
        }
        let e = "fuzzy(abc)".parse::<StringMatch>().unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        let e = "regex".parse::<StringMatch>().unwrap_err();
        assert!(
            e.to_string().contains("unknown match rule 'regex'") && e.to_string().contains("exact"),
            "{e}"
        );
        assert!("fuzzy(0.8".parse::<StringMatch>().is_err());
        assert!("".parse::<StringMatch>().is_err());
    }
}
