//! Match rules: whether a predicted field value matches the gold one, and each field's
//! [`Mark`] for a reply.
//!
//! Fuzzy similarity uses char-level Levenshtein over normalized strings, each truncated to
//! [`FUZZY_MAX_CHARS`] chars first.

use serde_json::Value;

use crate::field::value::{canonicalize_prediction, Canonical};
use crate::field::{FieldSpec, FieldType, StringMatch};
use crate::text::normalize;

/// Fuzzy matching truncates each normalized string to this many chars before Levenshtein.
pub const FUZZY_MAX_CHARS: usize = 2_000;
/// Absolute slack added to every numeric tolerance (scaled by magnitude for large values).
const NUM_EPSILON: f64 = 1e-9;

/// Each field's outcome for a reply's projected values (see [`project`]).
pub fn field_marks(
    fields: &[FieldSpec],
    gold: &[Option<Canonical>],
    predicted: &[Value],
) -> Vec<Mark> {
    fields
        .iter()
        .zip(gold)
        .zip(predicted)
        .map(|((f, g), p)| compare(g.as_ref(), canonicalize_prediction(p, &f.ty).as_ref(), &f.ty))
        .collect()
}

/// A record matches exactly when every field is right or absent on both sides.
pub fn exact_match(marks: &[Mark]) -> bool {
    marks.iter().all(|o| matches!(o, Mark::Correct | Mark::BothAbsent))
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

/// What one sample says about one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// No answer: the request failed, or the run did not reach the item.
    Unscored,
    /// Both present and matching: a true positive.
    Correct,
    /// Both present, not matching: a false positive and a false negative.
    Wrong,
    /// Gold present, prediction missing: a false negative.
    Missed,
    /// Gold absent, prediction present: a false positive.
    Spurious,
    /// Neither present: not counted.
    BothAbsent,
    /// The reply had no JSON object; the gold has a value for the field.
    InvalidWithGold,
    /// The reply had no JSON object; the gold has no value for the field.
    InvalidWithoutGold,
}

impl Mark {
    /// Whether the sample enters the field's accuracy.
    pub fn counted(self) -> bool {
        !matches!(self, Mark::Unscored | Mark::BothAbsent)
    }

    /// True positives, false positives and false negatives.
    pub fn confusion(self) -> [u32; 3] {
        match self {
            Mark::Correct => [1, 0, 0],
            Mark::Wrong => [0, 1, 1],
            Mark::Missed | Mark::InvalidWithGold => [0, 0, 1],
            Mark::Spurious => [0, 1, 0],
            Mark::Unscored | Mark::BothAbsent | Mark::InvalidWithoutGold => [0, 0, 0],
        }
    }

    /// The marks of a reply without a JSON object, given which fields the gold has.
    pub fn invalid(gold_present: bool) -> Mark {
        if gold_present {
            Mark::InvalidWithGold
        } else {
            Mark::InvalidWithoutGold
        }
    }
}

/// Compare one field (see [`Mark`] for the semantics).
pub fn compare(gold: Option<&Canonical>, predicted: Option<&Canonical>, ty: &FieldType) -> Mark {
    match (gold, predicted) {
        (None, None) => Mark::BothAbsent,
        (Some(_), None) => Mark::Missed,
        (None, Some(_)) => Mark::Spurious,
        (Some(g), Some(p)) => {
            if values_match(g, p, ty) {
                Mark::Correct
            } else {
                Mark::Wrong
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::date::parse_date;
    use crate::field::number::parse_number;
    use crate::field::value::canonicalize;
    use crate::parse::json_object::first_json_object;
    use serde_json::json;

    fn canon(v: Value, ty: &FieldType) -> Option<Canonical> {
        canonicalize(&v, ty).expect("gold should canonicalize")
    }

    fn outcome(gold: Value, pred: Value, ty: &FieldType) -> Mark {
        let g = canon(gold, ty);
        let p = canonicalize_prediction(&pred, ty);
        compare(g.as_ref(), p.as_ref(), ty)
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
            Mark::Correct
        );
        // Punctuation becomes a space, it is not deleted: "TA.K" ≠ "TAK".
        assert_eq!(
            outcome(json!("BOOK TA.K SDN BHD"), json!("BOOK TAK SDN BHD"), &ty),
            Mark::Wrong
        );
        assert_eq!(
            outcome(json!("OJC MARKETING SDN BHD"), json!("ojc marketing sdn. bhd."), &ty),
            Mark::Correct
        );
        assert_eq!(
            outcome(
                json!("SYARIKAT PERNIAGAAN GIN KEE"),
                json!("Syarikat Perniagaan Gin-Kee!"),
                &ty
            ),
            Mark::Correct
        );
        assert_eq!(
            outcome(json!("UNIHAKKA INTERNATIONAL SDN BHD"), json!("UNIHAKKA SDN BHD"), &ty),
            Mark::Wrong
        );
    }

    #[test]
    fn exact_strings() {
        let ty = FieldType::String(StringMatch::Exact);
        assert_eq!(outcome(json!("ACME"), json!("  ACME "), &ty), Mark::Correct);
        assert_eq!(outcome(json!("ACME"), json!("Acme"), &ty), Mark::Wrong);
        assert_eq!(outcome(json!("ACME."), json!("ACME"), &ty), Mark::Wrong);
    }

    #[test]
    fn addresses_fuzzy() {
        let ty = FieldType::String("fuzzy(0.85)".parse().unwrap());
        let gold = json!("NO 53, JALAN BESAR, 45600 BATANG BERJUNTAI, SELANGOR");
        // One typo (BERJUNTAI → BERJUNTEI), plus punctuation/case differences.
        assert_eq!(
            outcome(gold.clone(), json!("No 53 Jalan Besar 45600 Batang Berjuntei Selangor"), &ty),
            Mark::Correct
        );
        // A different address.
        assert_eq!(
            outcome(
                gold.clone(),
                json!("LOT 1851-A, JALAN KPB 6, 43300 SERI KEMBANGAN, SELANGOR"),
                &ty
            ),
            Mark::Wrong
        );
        // Same street, different number and town: still below 0.85.
        assert_eq!(
            outcome(gold, json!("NO 12, JALAN BESAR, 43000 KAJANG, SELANGOR"), &ty),
            Mark::Wrong
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
        assert_eq!(outcome(json!("abcd"), json!("abcx"), &ty), Mark::Correct);
        let ty = FieldType::String(StringMatch::Fuzzy(0.76));
        assert_eq!(outcome(json!("abcd"), json!("abcx"), &ty), Mark::Wrong);
    }

    #[test]
    fn sroie_totals() {
        let ty = FieldType::Number { tolerance: 0.0 };
        assert_eq!(outcome(json!("RM 9.00"), json!(9), &ty), Mark::Correct);
        assert_eq!(outcome(json!("9.00"), json!("RM9"), &ty), Mark::Correct);
        assert_eq!(outcome(json!("9.00"), json!("9.01"), &ty), Mark::Wrong);
        let ty = FieldType::Number { tolerance: 0.01 };
        assert_eq!(outcome(json!("9.00"), json!("9.01"), &ty), Mark::Correct);
        assert_eq!(outcome(json!("9.00"), json!("9.02"), &ty), Mark::Wrong);
        // Float noise is absorbed.
        let ty = FieldType::Number { tolerance: 0.0 };
        assert_eq!(outcome(json!(0.1 + 0.2), json!("0.3"), &ty), Mark::Correct);
    }

    #[test]
    fn number_errors() {
        let ty = FieldType::Number { tolerance: 0.0 };
        assert!(canonicalize(&json!("twelve"), &ty)
            .unwrap_err()
            .to_string()
            .contains("'twelve' is not a number"));
        assert!(canonicalize(&json!(true), &ty).unwrap_err().to_string().contains("boolean"));
        assert_eq!(canon(json!(""), &ty), None);
        assert_eq!(canon(json!(null), &ty), None);
        assert_eq!(
            canonicalize_prediction(&json!("about ten"), &ty),
            Some(Canonical::Invalid("\"about ten\"".into()))
        );
        assert_eq!(outcome(json!("10"), json!("about ten"), &ty), Mark::Wrong);
        assert_eq!(outcome(json!(null), json!("about ten"), &ty), Mark::Spurious);
    }

    #[test]
    fn sroie_dates() {
        assert_eq!(
            outcome(json!("25/12/2018"), json!("2018-12-25"), &FieldType::Date { day_first: true }),
            Mark::Correct
        );
        assert_eq!(
            outcome(json!("2017-12-30"), json!("30 DEC 17"), &FieldType::Date { day_first: true }),
            Mark::Correct
        );
        assert_eq!(
            outcome(json!("25/12/2018"), json!("2018-12-26"), &FieldType::Date { day_first: true }),
            Mark::Wrong
        );
        // Day first: 03/04/2018 is 3 April, not 4 March.
        assert_eq!(
            outcome(json!("03/04/2018"), json!("2018-04-03"), &FieldType::Date { day_first: true }),
            Mark::Correct
        );
        assert_eq!(
            outcome(json!("03/04/2018"), json!("2018-03-04"), &FieldType::Date { day_first: true }),
            Mark::Wrong
        );
    }

    #[test]
    fn enums() {
        let ty = FieldType::Enum(vec!["Cash".into(), "Credit Card".into(), "E-Wallet".into()]);
        assert_eq!(canon(json!("credit-card"), &ty), Some(Canonical::Enum("Credit Card".into())));
        assert_eq!(outcome(json!("CASH"), json!("cash."), &ty), Mark::Correct);
        assert_eq!(outcome(json!("e wallet"), json!("E-Wallet"), &ty), Mark::Correct);
        assert_eq!(outcome(json!("Cash"), json!("Credit card"), &ty), Mark::Wrong);
        // Prediction outside the declared values: present but wrong.
        assert_eq!(outcome(json!("Cash"), json!("Cheque"), &ty), Mark::Wrong);
        // Gold outside the declared values: error naming value and choices.
        let e = canonicalize(&json!("Cheque"), &ty).unwrap_err();
        assert!(
            e.to_string().contains(
                "'Cheque' is not one of the declared values [Cash, Credit Card, E-Wallet]"
            ),
            "{e}"
        );
        assert!(canonicalize(&json!(["Cash"]), &ty).is_err());
        assert_eq!(canon(json!(null), &ty), None);
    }

    #[test]
    fn lists() {
        let ty = FieldType::List(StringMatch::Normalized);
        assert_eq!(
            outcome(json!(["Milk", "Bread"]), json!(["bread.", "MILK"]), &ty),
            Mark::Correct
        );
        assert_eq!(outcome(json!(["Milk", "Bread"]), json!(["Milk"]), &ty), Mark::Wrong);
        assert_eq!(outcome(json!(["Milk"]), json!(["Milk", "Eggs"]), &ty), Mark::Wrong);
        assert_eq!(outcome(json!(["Milk", "milk!"]), json!("Milk"), &ty), Mark::Correct); // set + single string
        assert_eq!(outcome(json!([]), json!(["Milk"]), &ty), Mark::Spurious);
        assert_eq!(outcome(json!(["Milk"]), json!([]), &ty), Mark::Missed);
        assert_eq!(canon(json!(["", null, "  "]), &ty), None);
        assert!(canonicalize(&json!(["a", {"b": 1}]), &ty)
            .unwrap_err()
            .to_string()
            .contains("list element 1"));
        assert!(canonicalize(&json!(5), &ty).is_err());

        let ty = FieldType::List(StringMatch::Exact);
        assert_eq!(outcome(json!(["Milk", "Bread"]), json!(["Bread", "Milk"]), &ty), Mark::Correct);
        assert_eq!(outcome(json!(["Milk"]), json!(["milk"]), &ty), Mark::Wrong);
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
            Mark::Correct
        );
        // Two gold items both close to one predicted item: one-to-one means no full match.
        assert_eq!(
            outcome(
                json!(["apple pie a", "apple pie b"]),
                json!(["apple pie c", "zzzzzzzzzzz"]),
                &ty
            ),
            Mark::Wrong
        );
        // Greedy best-first: "abcdefghij" pairs with its exact twin, leaving the near one for the other.
        assert_eq!(
            outcome(json!(["abcdefghij", "abcdefghiX"]), json!(["abcdefghiY", "abcdefghij"]), &ty),
            Mark::Correct
        );
    }

    #[test]
    fn all_outcomes() {
        let ty = FieldType::String(StringMatch::Normalized);
        assert_eq!(outcome(json!("a"), json!("A"), &ty), Mark::Correct);
        assert_eq!(outcome(json!("a"), json!("b"), &ty), Mark::Wrong);
        assert_eq!(outcome(json!("a"), json!(null), &ty), Mark::Missed);
        assert_eq!(outcome(json!("a"), json!(""), &ty), Mark::Missed);
        assert_eq!(outcome(json!(null), json!("b"), &ty), Mark::Spurious);
        assert_eq!(outcome(json!(""), json!(null), &ty), Mark::BothAbsent);
        // Direct use with hand-built values, and mismatched variants never match.
        assert_eq!(compare(None, None, &FieldType::Date { day_first: true }), Mark::BothAbsent);
        let d = Canonical::Date("2018-01-01".into());
        assert_eq!(
            compare(Some(&d), Some(&Canonical::Number(1.0)), &FieldType::Date { day_first: true }),
            Mark::Wrong
        );
        assert_eq!(
            compare(Some(&d), Some(&d), &FieldType::Date { day_first: true }),
            Mark::Correct
        );
        assert_eq!(compare(Some(&d), None, &FieldType::Date { day_first: true }), Mark::Missed);
        assert_eq!(compare(None, Some(&d), &FieldType::Date { day_first: true }), Mark::Spurious);
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
                Mark::Correct,
            ),
            ("date", FieldType::Date { day_first: true }, json!("2019-01-15"), Mark::Correct),
            ("total", FieldType::Number { tolerance: 0.01 }, json!("193.00"), Mark::Correct),
            (
                "address",
                FieldType::String(StringMatch::Fuzzy(0.85)),
                json!("NO 2 JALAN"),
                Mark::Missed,
            ),
            ("phone", FieldType::String(StringMatch::Exact), json!(null), Mark::BothAbsent),
        ];
        for (name, ty, gold, want) in fields {
            let g = canon(gold, &ty);
            let p = canonicalize_prediction(m.get(name).unwrap_or(&Value::Null), &ty);
            assert_eq!(compare(g.as_ref(), p.as_ref(), &ty), want, "{name}");
        }
    }

    #[test]
    fn no_panic_on_random_input() {
        use proptest::prelude::*;
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
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
        let text =
            prop::collection::vec(prop::sample::select(ALPHABET), 0..40).prop_map(|v| v.concat());
        let (found, parsed) = (AtomicUsize::new(0), AtomicUsize::new(0));
        proptest!(crate::testing::proptest_config(1000), |(s in text, x in any::<f64>())| {
            if first_json_object(&s).is_some() {
                found.fetch_add(1, Relaxed);
            }
            let values = [Value::String(s.clone()), json!([s.clone(), "x"]), json!(x)];
            for ty in &types {
                for v in &values {
                    let a = canonicalize(v, ty);
                    if matches!(a, Ok(Some(_))) {
                        parsed.fetch_add(1, Relaxed);
                    }
                    let gold = a.ok().flatten();
                    let p = canonicalize_prediction(v, ty);
                    let mark = compare(gold.as_ref(), p.as_ref(), ty);
                    // A prediction that does not fit the type never scores.
                    if matches!(p, Some(Canonical::Invalid(_))) {
                        prop_assert!(matches!(mark, Mark::Wrong | Mark::Spurious), "{:?}", mark);
                    }
                }
            }
            let _ = parse_date(&s);
            let _ = parse_number(&s);
            // A rule that parses prints as text that parses to it again.
            if let Ok(rule) = s.parse::<StringMatch>() {
                prop_assert_eq!(rule.to_string().parse::<StringMatch>(), Ok(rule));
            }
        });
        // The generator is not degenerate: some inputs hit the success paths.
        let (found, parsed) = (found.into_inner(), parsed.into_inner());
        assert!(found > 0 && parsed > 0, "found={found} parsed={parsed}");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::{compare, Mark};
    use crate::field::value::{canonicalize, canonicalize_prediction, Canonical};
    use crate::field::{FieldType, StringMatch};
    use crate::testing::proptest_config;

    fn rule() -> impl Strategy<Value = StringMatch> {
        prop_oneof![
            Just(StringMatch::Exact),
            Just(StringMatch::Normalized),
            (0.05f64..=1.0).prop_map(StringMatch::Fuzzy),
            prop::sample::select(vec![0.5, 0.75, 0.8, 0.85, 0.9]).prop_map(StringMatch::Fuzzy),
        ]
    }

    /// Short texts over a small alphabet (case, punctuation and spacing variants of the same
    /// words are common, so matches are), or any string.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![4 => "[abAB .,-]{0,6}", 1 => any::<String>()]
    }

    /// The mark seen from the other side: gold and prediction exchanged.
    fn swapped(mark: Mark) -> Mark {
        match mark {
            Mark::Missed => Mark::Spurious,
            Mark::Spurious => Mark::Missed,
            other => other,
        }
    }

    fn canon(v: &Value, ty: &FieldType) -> Option<Canonical> {
        canonicalize_prediction(v, ty)
    }

    proptest! {
        #![proptest_config(proptest_config(512))]

        /// Comparing strings, or lists of strings, does not depend on which side is the gold.
        #[test]
        fn comparison_is_symmetric(
            rule in rule(),
            list in any::<bool>(),
            a in prop::collection::vec(text(), 1..4),
            b in prop::collection::vec(text(), 1..4),
        ) {
            let (ty, va, vb) = if list {
                (FieldType::List(rule), json!(a), json!(b))
            } else {
                (FieldType::String(rule), json!(a[0]), json!(b[0]))
            };
            let (ca, cb) = (canon(&va, &ty), canon(&vb, &ty));
            let ab = compare(ca.as_ref(), cb.as_ref(), &ty);
            let ba = compare(cb.as_ref(), ca.as_ref(), &ty);
            prop_assert_eq!(ab, swapped(ba), "{:?} vs {:?} under {:?}", ca, cb, ty);
        }

        /// A value that reads as a gold value matches itself, and matches itself read as a
        /// prediction.
        #[test]
        fn a_value_matches_itself(
            (ty, v) in prop_oneof![
                (rule(), text()).prop_map(|(r, s)| (FieldType::String(r), json!(s))),
                (rule(), prop::collection::vec(text(), 0..4))
                    .prop_map(|(r, s)| (FieldType::List(r), json!(s))),
                (0.0f64..1.0, any::<f64>().prop_filter("finite", |x| x.is_finite()))
                    .prop_map(|(t, x)| (FieldType::Number { tolerance: t }, json!(x))),
                (0.0f64..1.0, "(RM ?|\\$)?-?[0-9]{1,7}(\\.[0-9]{1,2})?")
                    .prop_map(|(t, s)| (FieldType::Number { tolerance: t }, json!(s))),
                (any::<bool>(), 1u32..=28, 1u32..=12, 1900u32..2100).prop_map(
                    |(day_first, d, m, y)| {
                        (FieldType::Date { day_first }, json!(format!("{d}/{m}/{y}")))
                    }
                ),
                (prop::collection::vec(text(), 1..4), any::<prop::sample::Index>())
                    .prop_map(|(values, pick)| {
                        let v = json!(values[pick.index(values.len())].to_uppercase());
                        (FieldType::Enum(values), v)
                    }),
            ],
        ) {
            if let Ok(Some(gold)) = canonicalize(&v, &ty) {
                let itself = compare(Some(&gold), Some(&gold), &ty);
                prop_assert_eq!(itself, Mark::Correct, "{:?}", gold);
                let predicted = canonicalize_prediction(&v, &ty);
                prop_assert_eq!(
                    compare(Some(&gold), predicted.as_ref(), &ty),
                    Mark::Correct,
                    "{:?} vs {:?}",
                    gold,
                    predicted
                );
            }
        }
    }
}
