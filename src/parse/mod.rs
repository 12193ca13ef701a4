//! Model replies to answers: a label ([`LabelParser`]), or the JSON object of an extraction
//! reply ([`json_object`]).

pub mod json_object;

/// Maps a classification reply to one of `labels`, or `None` when it names none of them.
///
/// The rule is deliberately strict, so a sloppy model is measured as sloppy: the whole reply,
/// trimmed, compared without case, after removing wrapping quotes, backticks or bold markers and
/// trailing punctuation. "Billing." and `"billing"` match `billing`; "I think billing" does not.
pub fn parse_label<'a>(reply: &str, labels: &'a [String]) -> Option<&'a str> {
    LabelParser::new(labels).parse(reply).map(|i| labels[i].as_str())
}

/// [`parse_label`] with the labels' comparison forms computed once, for the per-reply path.
#[derive(Debug, Clone)]
pub struct LabelParser {
    /// Each label trimmed and lowercased.
    exact: Vec<String>,
    /// Each label normalised like a reply, then lowercased.
    normalized: Vec<String>,
}

impl LabelParser {
    pub fn new(labels: &[String]) -> Self {
        LabelParser {
            exact: labels.iter().map(|l| l.trim().to_lowercase()).collect(),
            normalized: labels.iter().map(|l| normalize(l).to_lowercase()).collect(),
        }
    }

    /// The index of the label `reply` names.
    pub fn parse(&self, reply: &str) -> Option<usize> {
        // An exact match first: a label may itself end in punctuation (banking77 has
        // `reverted_card_payment?`), which normalising would strip from the reply.
        let trimmed = reply.trim().to_lowercase();
        if let Some(i) = self.exact.iter().position(|l| *l == trimmed) {
            return Some(i);
        }
        let wanted = normalize(reply).to_lowercase();
        if wanted.is_empty() {
            return None;
        }
        self.normalized.iter().position(|l| *l == wanted)
    }
}

fn normalize(text: &str) -> String {
    let mut s = text.trim();
    loop {
        let before = s;
        s = s.trim_end_matches(['.', '!', ',', ';', ':', '?']).trim();
        for (open, close) in [
            ("\"", "\""),
            ("'", "'"),
            ("`", "`"),
            ("**", "**"),
            ("*", "*"),
            ("“", "”"),
            ("‘", "’"),
            ("[", "]"),
            ("(", ")"),
        ] {
            if s.len() >= open.len() + close.len() && s.starts_with(open) && s.ends_with(close) {
                s = s[open.len()..s.len() - close.len()].trim();
            }
        }
        if s == before {
            return s.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["billing", "technical", "Account", "refund_request"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn accepts_the_label_with_case_quotes_and_punctuation() {
        let l = labels();
        for reply in [
            "billing",
            " Billing\n",
            "BILLING.",
            "\"billing\"",
            "'billing'",
            "`billing`",
            "**billing**",
            "“billing”.",
            "billing!",
            "account",
            "\"Refund_Request.\"",
        ] {
            assert!(parse_label(reply, &l).is_some(), "{reply:?} should parse");
        }
        assert_eq!(parse_label("ACCOUNT", &l), Some("Account"));
        let odd: Vec<String> = vec!["reverted_card_payment?".into(), "card_arrival".into()];
        assert_eq!(parse_label("reverted_card_payment?", &odd), Some("reverted_card_payment?"));
        assert_eq!(
            parse_label("\"reverted_card_payment?\".", &odd),
            Some("reverted_card_payment?")
        );
    }

    #[test]
    fn rejects_anything_else() {
        let l = labels();
        for reply in [
            "",
            "   ",
            "I think billing",
            "billing or technical",
            "bill",
            "billing\ntechnical",
            "\"\"",
            "refund",
        ] {
            assert_eq!(parse_label(reply, &l), None, "{reply:?} should not parse");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::{normalize, parse_label, LabelParser};
    use crate::testing::proptest_config;

    /// A label as suites declare them: letters (a few accented), digits, `_`, `-` and inner
    /// spaces, with a letter or digit at each end.
    fn label() -> impl Strategy<Value = String> {
        "[a-zA-Zéüñ][a-zA-Z0-9éüñ_ -]{0,12}[a-zA-Z0-9éüñ]|[a-zA-Zéüñ]"
    }

    /// One to five labels, no two equal ignoring case.
    fn labels() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(label(), 1..6).prop_map(|mut v| {
            let mut seen = Vec::new();
            v.retain(|l| {
                let k = l.to_lowercase();
                let new = !seen.contains(&k);
                seen.push(k);
                new
            });
            v
        })
    }

    const WRAPPERS: [(&str, &str); 9] = [
        ("\"", "\""),
        ("'", "'"),
        ("`", "`"),
        ("**", "**"),
        ("*", "*"),
        ("“", "”"),
        ("‘", "’"),
        ("[", "]"),
        ("(", ")"),
    ];

    /// Layers around a reply, innermost first: a wrapper (or none), spaces inside it, and
    /// trailing punctuation after it; then whitespace around the whole.
    #[derive(Debug, Clone)]
    struct Dress {
        layers: Vec<(Option<usize>, bool, String)>,
        before: String,
        after: String,
    }

    fn dress() -> impl Strategy<Value = Dress> {
        let layer = (prop::option::of(0..WRAPPERS.len()), any::<bool>(), "[.!,;:?]{0,2}");
        (prop::collection::vec(layer, 0..4), "[ \t\n]{0,2}", "[ \t\n]{0,2}")
            .prop_map(|(layers, before, after)| Dress { layers, before, after })
    }

    fn put_on(core: &str, d: &Dress) -> String {
        let mut s = core.to_string();
        for (wrapper, spaced, punct) in &d.layers {
            if let Some(w) = wrapper {
                let (open, close) = WRAPPERS[*w];
                let pad = if *spaced { " " } else { "" };
                s = format!("{open}{pad}{s}{pad}{close}");
            }
            s.push_str(punct);
        }
        format!("{}{s}{}", d.before, d.after)
    }

    /// Upper- or lowercases each char by the bits of `case`.
    fn recase(s: &str, case: u64) -> String {
        s.chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let upper = case >> (i % 64) & 1 == 1;
                let mapped: Vec<char> =
                    if upper { c.to_uppercase().collect() } else { c.to_lowercase().collect() };
                mapped
            })
            .collect()
    }

    /// Replies built from label fragments, wrappers, punctuation and odd Unicode (the former
    /// hand-rolled fuzz test's alphabet), or any string at all.
    fn reply() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "billing", "tech", "?", "*", "**", "\"", "'", "`", "“", "”", "(", ")", "[", "]", ".",
            " ", "\n", "é", "🙂", "\u{0}", "a", "x", "Account", "refund", "ß", "İ",
        ]);
        prop_oneof![prop::collection::vec(pieces, 0..10).prop_map(|v| v.concat()), any::<String>()]
    }

    proptest! {
        #![proptest_config(proptest_config(512))]

        /// A label in any case, wrapped in any mix of quotes, backticks, bold and brackets, with
        /// trailing punctuation and whitespace, names that label.
        #[test]
        fn dressed_label_parses_to_itself(
            labels in labels(),
            pick in any::<Index>(),
            case in any::<u64>(),
            dress in dress(),
        ) {
            let wanted = &labels[pick.index(labels.len())];
            let reply = put_on(&recase(wanted, case), &dress);
            prop_assert_eq!(parse_label(&reply, &labels), Some(wanted.as_str()), "{:?}", reply);
        }

        /// A label with words before or after it names nothing, however it is dressed.
        #[test]
        fn label_with_extra_words_does_not_parse(
            labels in labels(),
            pick in any::<Index>(),
            word in "[a-zA-Z]{1,8}",
            sep in prop::sample::select(vec![" ", "\n", ", ", " - ", " or ", ": "]),
            word_first in any::<bool>(),
            dress in dress(),
        ) {
            let label = &labels[pick.index(labels.len())];
            let core = if word_first {
                format!("{word}{sep}{label}")
            } else {
                format!("{label}{sep}{word}")
            };
            prop_assume!(!labels.iter().any(|l| l.to_lowercase() == core.to_lowercase()));
            let reply = put_on(&core, &dress);
            prop_assert_eq!(parse_label(&reply, &labels), None, "{:?}", reply);
        }

        /// Any reply: no panic; an answer is a declared label that the reply spells out
        /// (ignoring case), and neither ASCII case nor surrounding whitespace changes it.
        #[test]
        fn any_reply_maps_to_a_label_it_spells_or_to_none(reply in reply()) {
            let labels: Vec<String> =
                ["billing", "tech?", "a", "**", "\"x\"", "Account", "refund request"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            let parser = LabelParser::new(&labels);
            let got = parser.parse(&reply);
            if let Some(i) = got {
                prop_assert!(i < labels.len());
                prop_assert_eq!(parse_label(&reply, &labels), Some(labels[i].as_str()));
                if reply.is_ascii() {
                    let core = normalize(&labels[i]).to_lowercase();
                    let spelled = reply.to_lowercase().contains(&core);
                    prop_assert!(spelled, "{:?} -> {:?}", reply, labels[i]);
                }
            }
            if reply.is_ascii() {
                prop_assert_eq!(parser.parse(&reply.to_ascii_uppercase()), got);
                prop_assert_eq!(parser.parse(&reply.to_ascii_lowercase()), got);
            }
            prop_assert_eq!(parser.parse(&format!(" \n{reply}\t ")), got);
        }
    }
}
