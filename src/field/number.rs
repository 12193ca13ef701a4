//! Numbers as people and models write them: currencies, thousands separators, decimal commas.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
