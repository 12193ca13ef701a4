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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::parse_number;
    use crate::testing::proptest_config;

    /// `digits` with `sep` between groups of three from the right.
    fn grouped(digits: &str, sep: char) -> String {
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(ch);
        }
        out
    }

    const PREFIXES: [&str; 9] = ["", "RM ", "RM", "rm", "$", "US$ ", "S$", "€ ", "MYR "];
    const SUFFIXES: [&str; 4] = ["", " MYR", "€", " RM"];

    proptest! {
        #![proptest_config(proptest_config(512))]

        /// Rust prints every finite f64 in plain decimal, which reads back exactly, alone or
        /// after a currency.
        #[test]
        fn displayed_floats_read_back_exactly(
            x in any::<f64>().prop_filter("finite", |x| x.is_finite()),
        ) {
            prop_assert_eq!(parse_number(&x.to_string()), Some(x));
            prop_assert_eq!(parse_number(&format!("RM {x}")), Some(x));
        }

        /// An amount rounded to 0–4 decimals and written with or without thousands separators,
        /// in the US (`1,234.5`) or the unambiguous European (`1.234,5`) style, with a currency
        /// and a sign or parentheses, reads back as the written value, within rounding of `x`.
        #[test]
        fn formatted_amounts_read_back(
            x in -1e12f64..1e12,
            decimals in 0usize..=4,
            european in any::<bool>(),
            thousands in any::<bool>(),
            prefix in prop::sample::select(PREFIXES.to_vec()),
            suffix in prop::sample::select(SUFFIXES.to_vec()),
            sign_style in 0u8..4,
        ) {
            let (thousands_sep, decimal_sep) = if european { ('.', ',') } else { (',', '.') };
            // The written digits: the plain rounded value, and the value with separators.
            let write = |decimals: usize, thousands: bool| {
                let plain = format!("{:.decimals$}", x.abs());
                let (int, frac) = plain.split_once('.').unwrap_or((&plain, ""));
                let int_text =
                    if thousands { grouped(int, thousands_sep) } else { int.to_string() };
                let groups = int_text.matches(thousands_sep).count();
                let digits = if frac.is_empty() {
                    int_text
                } else {
                    format!("{int_text}{decimal_sep}{frac}")
                };
                let ambiguous = european
                    && ((decimals == 0 && groups == 1)
                        || (decimals >= 3 && groups == 0 && int != "0"));
                (plain, digits, ambiguous)
            };
            // European forms the parser documents as ambiguous (`1.234` is 1.234, `12,345` is
            // 12345, `1234,567` is rejected) are written without the separator or with two
            // decimals instead.
            let (mut decimals, mut thousands) = (decimals, thousands);
            let (mut plain, mut digits, ambiguous) = write(decimals, thousands);
            if ambiguous {
                (decimals, thousands) = if decimals == 0 { (0, false) } else { (2, thousands) };
                (plain, digits, _) = write(decimals, thousands);
            }
            let negative = x < 0.0;
            let text = match (negative, sign_style) {
                (false, _) => format!("{prefix}{digits}{suffix}"),
                (true, 0) => format!("-{prefix}{digits}{suffix}"),
                (true, 1) => format!("{prefix}-{digits}{suffix}"),
                (true, 2) => format!("−{prefix}{digits}{suffix}"),
                (true, _) => format!("({prefix}{digits}{suffix})"),
            };
            let written: f64 = plain.parse().unwrap();
            let want = if negative { -written } else { written };
            let got = parse_number(&text);
            prop_assert_eq!(got, Some(want), "{:?}", text);
            let tolerance = 0.5 * 10f64.powi(-(decimals as i32)) + x.abs() * 1e-15;
            prop_assert!((want - x).abs() <= tolerance, "{} vs {}", want, x);
        }

        /// No panic on any text; a number read is finite and came from a text with a digit.
        #[test]
        fn any_text_is_handled(text in prop_oneof![
            prop::collection::vec(
                prop::sample::select(vec![
                    "1", "0", "9", "123", ",", ".", "-", "−", "+", "(", ")", " ", "RM", "$",
                    "€", "US", "MYR", "e", "é", "\u{0}",
                ]),
                0..12,
            )
            .prop_map(|v| v.concat()),
            any::<String>(),
        ]) {
            if let Some(v) = parse_number(&text) {
                prop_assert!(v.is_finite());
                prop_assert!(text.chars().any(|c| c.is_ascii_digit()), "{:?} -> {}", text, v);
            }
        }
    }
}
