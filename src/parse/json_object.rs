//! The JSON object in a model reply, and the declared fields' values in it.
//!
//! `first_json_object`: whole reply → ```` ```json ```` / ```` ``` ```` fences → first balanced
//! `{...}` span. Arrays are never returned as such (an object *inside* an array can still be
//! found by the brace scan). A balanced span that does not parse is skipped as a whole (objects
//! nested inside a broken object are not returned). serde_json's recursion limit (128) applies,
//! and the brace scan stops after [`SCAN_BUDGET`] byte-steps so hostile replies stay linear-ish.

use serde_json::{Map, Value};

use crate::field::FieldSpec;

/// Work limit (byte-steps) for the brace scan in [`first_json_object`].
pub const SCAN_BUDGET: usize = 4_000_000;

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
/// An unclosed fence runs to the end of the reply (truncated replies). A fence closes, as in
/// Markdown, at the first line that starts with ```` ``` ```` (after spaces or tabs); a ```` ``` ````
/// inside a line, such as in a JSON string, does not close it. When that is not the first
/// ```` ``` ```` after the opener, the body up to the first one follows as a second candidate,
/// for replies that close the fence on the object's own line.
fn fence_bodies(reply: &str) -> Vec<&str> {
    let closers = line_start_fences(reply);
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
            let body_at = reply.len() - body_all.len();
            let first_closer = closers.partition_point(|&c| c < body_at);
            if let Some(&end) = closers.get(first_closer) {
                if end - body_at != body.len() {
                    out.push(&reply[body_at..end]);
                }
            }
            out.push(body);
            rest = next;
        } else {
            // Not a fence we understand: skip past this opener only.
            rest = after;
        }
    }
    out
}

/// Byte offsets of the ```` ``` ```` that start a line of `reply` (after spaces or tabs), in order.
fn line_start_fences(reply: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in reply.split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if line[indent..].starts_with("```") {
            out.push(offset + indent);
        }
        offset += line.len();
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(reply: &str) -> Option<Value> {
        first_json_object(reply).map(Value::Object)
    }

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
    fn backticks_in_a_string_do_not_close_the_fence() {
        // Found by `a_fenced_object_beats_braces_in_prose` (shrunk): the fence used to end at
        // the ``` inside the string, so the object in the prose before it won.
        let r = "Format is {\"decoy\": true}.```json\n{\"\\\"\":{\"```\":null}}\n```";
        assert_eq!(obj(r), Some(json!({"\"": {"```": null}})));
        let r =
            "Format: {\"x\": 0}\n```json\n{\n  \"note\": \"fence with ``` then\"\n}\n  ```\nDone.";
        assert_eq!(obj(r), Some(json!({"note": "fence with ``` then"})));
        // A fence closed on the object's line still counts.
        let r = "Format: {\"x\": 0}\n```json\n{\"a\": 1}```";
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
        assert_eq!(m["total"].as_str().and_then(crate::field::number::parse_number), Some(12.5));
        let r = "\u{feff}{\"a\": \"\\u00e9\"}";
        assert_eq!(obj(r), Some(json!({"a": "é"})));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::{first_json_object, project};
    use crate::field::{FieldSpec, FieldType, StringMatch};
    use crate::testing::proptest_config;

    /// Text for keys and string values: JSON's troublemakers (braces, quotes, backslashes, fences)
    /// and odd Unicode, or any string.
    fn text() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "{",
            "}",
            "\"",
            "\\",
            "\n",
            " ",
            "a",
            "key",
            "é",
            "🍜",
            "\u{0}",
            "\u{feff}",
            "[",
            ":",
            "```",
            "```json\n",
            "`",
        ]);
        prop_oneof![prop::collection::vec(pieces, 0..6).prop_map(|v| v.concat()), any::<String>()]
    }

    /// Any JSON value, a few levels deep. Floats are short dyadic fractions, whose decimal form
    /// parses back to the same f64 (serde_json's default float parsing is not always exact).
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (any::<i16>(), 0u32..8)
                .prop_map(|(m, e)| Value::from(f64::from(m) / f64::from(1 << e))),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                object_of(inner).prop_map(Value::Object),
            ]
        })
    }

    fn object_of(
        values: impl Strategy<Value = Value>,
    ) -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::vec((text(), values), 0..5).prop_map(|kv| kv.into_iter().collect())
    }

    fn object() -> impl Strategy<Value = Map<String, Value>> {
        object_of(value())
    }

    fn serialise(m: &Map<String, Value>, pretty: bool) -> String {
        if pretty {
            serde_json::to_string_pretty(m).unwrap()
        } else {
            serde_json::to_string(m).unwrap()
        }
    }

    /// Prose around an object: words, quotes, backticks, fences, brackets, newlines and any other
    /// text, never a brace.
    fn prose() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "Here is the JSON:",
            " ",
            "\n",
            "\"",
            "\\",
            "`",
            "```",
            "```json\n",
            "```\n",
            "[",
            "]",
            "json",
            "é",
            "\u{feff}",
        ]);
        prop_oneof![
            prop::collection::vec(pieces, 0..6).prop_map(|v| v.concat()),
            any::<String>().prop_map(|s| s.replace(['{', '}'], "")),
        ]
    }

    /// Prose before a fence: anything without a backtick, braces and whole objects included.
    fn prose_with_braces() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "Format is {\"decoy\": true}.",
            "{\"a\": 1}",
            "{",
            "}",
            "{}",
            " ",
            "\n",
            "\"",
            "[",
            "]",
        ]);
        prop_oneof![
            prop::collection::vec(pieces, 0..6).prop_map(|v| v.concat()),
            any::<String>().prop_map(|s| s.replace('`', "")),
        ]
    }

    fn fragments() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            "\"",
            "\\",
            ":",
            ",",
            "1",
            "null",
            "\"a\"",
            "```",
            "```json\n",
            "\n",
            " ",
            "é",
            "\u{feff}",
            "{\"a\":1}",
        ]);
        prop_oneof![prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat()), any::<String>(),]
    }

    proptest! {
        #![proptest_config(proptest_config(256))]

        /// An object alone, or in prose without braces, bare or in a fence, is found as it was.
        #[test]
        fn an_object_in_brace_free_prose_is_found(
            m in object(),
            pretty in any::<bool>(),
            fenced in any::<bool>(),
            before in prose(),
            after in prose(),
        ) {
            let mut body = serialise(&m, pretty);
            if fenced {
                body = format!("```json\n{body}\n```");
            }
            let reply = format!("{before}{body}{after}");
            prop_assert_eq!(first_json_object(&reply), Some(m), "{:?}", reply);
        }

        /// A ```` ```json ```` fence wins over objects and braces in the prose before it, whatever
        /// its object's strings hold and whatever follows it.
        #[test]
        fn a_fenced_object_beats_braces_in_prose(
            m in object(),
            pretty in any::<bool>(),
            before in prose_with_braces(),
            after in fragments(),
        ) {
            let reply = format!("{before}```json\n{}\n```{after}", serialise(&m, pretty));
            prop_assert_eq!(first_json_object(&reply), Some(m), "{:?}", reply);
        }

        /// No panic on any input, and no object without a brace.
        #[test]
        fn any_reply_is_handled(reply in fragments()) {
            let found = first_json_object(&reply);
            if !reply.contains('{') {
                prop_assert_eq!(found, None);
            }
        }

        /// One value per declared field: the value under the field's own name if there is one,
        /// else under the only key equal to it ignoring case, spaces, `_` and `-`, else null.
        #[test]
        fn project_gives_one_value_per_field(
            names in prop::collection::vec("[aAbB _-]{1,4}", 0..6),
            keys in prop::collection::vec("[aAbB _-]{1,4}", 0..6),
        ) {
            let fold = |k: &str| -> String {
                k.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase()
            };
            let object: Map<String, Value> =
                keys.iter().enumerate().map(|(i, k)| (k.clone(), Value::from(i))).collect();
            let fields: Vec<FieldSpec> = names
                .iter()
                .map(|n| FieldSpec {
                    name: n.clone(),
                    ty: FieldType::String(StringMatch::Exact),
                    required: false,
                    description: None,
                })
                .collect();
            let values = project(&fields, &object);
            prop_assert_eq!(values.len(), fields.len());
            for (f, v) in fields.iter().zip(&values) {
                let close: Vec<&Value> = object
                    .iter()
                    .filter(|(k, _)| fold(k) == fold(&f.name))
                    .map(|(_, v)| v)
                    .collect();
                let want = match object.get(&f.name) {
                    Some(exact) => exact,
                    None if close.len() == 1 => close[0],
                    None => &Value::Null,
                };
                prop_assert_eq!(v, want, "field {:?} in {:?}", f.name, object);
            }
        }
    }
}
