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
mod fuzz {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::parse_label;

    /// Random replies built from label fragments, quotes, punctuation and odd Unicode: the parser
    /// returns a declared label or nothing, and never panics.
    #[test]
    fn random_replies_never_panic_and_map_only_to_labels() {
        let labels: Vec<String> =
            ["billing", "tech?", "a", "**", "\"x\""].iter().map(|s| s.to_string()).collect();
        let pieces = [
            "billing", "tech", "?", "*", "\"", "'", "`", "“", "”", "(", ")", "[", "]", ".", " ",
            "\n", "é", "🙂", "\u{0}", "a", "x",
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20_000 {
            let reply: String = (0..rng.random_range(0..8))
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            if let Some(label) = parse_label(&reply, &labels) {
                assert!(labels.iter().any(|l| l == label));
            }
        }
    }
}
