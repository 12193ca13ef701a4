//! Small, stable text functions shared by the engine and its reports.

/// The first `max_chars` characters of `text`, with `…` when something was cut.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// The text of a scalar JSON value (a label, an id, a field value): strings as they are, numbers
/// and booleans by their JSON text; `None` for objects, arrays and null.
pub fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The one text normaliser, for comparing what people would call the same text: Unicode
/// lowercase; every char that is not alphanumeric or whitespace becomes a space; whitespace runs
/// collapsed to one space; trimmed. Extraction's `normalized` match rule and the train–test
/// leakage check both use it.
pub fn normalize(s: &str) -> String {
    let mapped: String = s
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() || c.is_whitespace() { c } else { ' ' })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// FNV-1a over `text`'s bytes: a hash that is the same on every machine and in every release,
/// for choices that must be reproducible (few-shot draws, shard membership).
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `1234567` as `1,234,567`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A p-value as a report prints it: three decimals, or `< 0.001`.
pub fn p_number(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_string()
    } else {
        format!("{p:.3}")
    }
}

/// A p-value in a sentence: `p < 0.001` or `p = 0.042`.
pub fn p_phrase(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_string()
    } else {
        format!("p = {p:.3}")
    }
}

/// Levenshtein distance between two strings, counted in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The candidate closest to `word` by edit distance (ignoring case), when it is close enough to
/// be a typo: within a third of the word's length, and at least 1 edit. Ties go to the first.
pub fn closest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = (lower.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_rules() {
        assert_eq!(normalize("  ACME  Sdn. Bhd.,  (M) "), "acme sdn bhd m");
        assert_eq!(normalize("Ünï—Cödé"), "ünï cödé");
        assert_eq!(normalize("---"), "");
        assert_eq!(normalize("a\t\nb"), "a b");
    }

    #[test]
    fn excerpts_and_hashes() {
        assert_eq!(excerpt("héllo", 3), "hél…");
        assert_eq!(excerpt("abc", 3), "abc");
        // FNV-1a reference values (Fowler–Noll–Vo test vectors).
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            (p_number(0.0004), p_phrase(0.04211)),
            ("< 0.001".to_string(), "p = 0.042".to_string())
        );
    }

    #[test]
    fn a_typo_finds_its_label() {
        let labels: Vec<String> = ["billing", "technical", "account"].map(String::from).to_vec();
        assert_eq!(edit_distance("billling", "billing"), 1);
        assert_eq!(closest("billling", &labels), Some("billing"));
        assert_eq!(closest("Technicl", &labels), Some("technical"));
        assert_eq!(closest("refunds", &labels), None);
    }
}
