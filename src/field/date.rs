//! Dates as receipts and models write them, read to ISO 8601.

use crate::time::{is_valid_date, is_weekday_name, month_from_name};

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
            .find(|&(y, m, d)| (1900..=2099).contains(&y) && is_valid_date(i64::from(y), m, d))
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
                if is_valid_date(i64::from(y), q, p) {
                    (y, q, p)
                } else {
                    (y, p, q) // the other reading; validated below
                }
            } else {
                return None;
            }
        }
        [Tok::Num(a), Tok::Word(w), Tok::Num(c)] => {
            let m = month_from_name(w)?;
            if (1..=2).contains(&a.len()) {
                (year(c)?, m, num(a)?)
            } else if a.len() == 4 && (1..=2).contains(&c.len()) {
                (year(a)?, m, num(c)?)
            } else {
                return None;
            }
        }
        [Tok::Word(w), Tok::Num(b), Tok::Num(c)] if (1..=2).contains(&b.len()) => {
            (year(c)?, month_from_name(w)?, num(b)?)
        }
        _ => return None,
    };
    if !is_valid_date(i64::from(y), m, d) {
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
        if is_weekday_name(w) && toks.len() > 1 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::value::{canonicalize, Canonical};
    use crate::field::FieldType;
    use serde_json::json;

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
        assert!(e.to_string().contains("'31/02/2018' is not a recognised date"), "{e}");
        assert!(canonicalize(&json!(20171230), &FieldType::Date { day_first: true })
            .unwrap_err()
            .to_string()
            .contains("a number"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::{parse_date, parse_date_ordered};
    use crate::testing::proptest_config;

    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];

    /// Days in a month of the proleptic Gregorian calendar, written out again here so the
    /// parser's own check is not the reference.
    fn days_in(y: u32, m: u32) -> u32 {
        match m {
            2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// A valid date with a year in `years`.
    fn date(years: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = (u32, u32, u32)> {
        (years, 1u32..=12, any::<Index>())
            .prop_map(|(y, m, d)| (y, m, d.index(days_in(y, m) as usize) as u32 + 1))
    }

    fn iso((y, m, d): (u32, u32, u32)) -> String {
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// `n`, zero-padded to two digits or not.
    fn pad(n: u32, padded: bool) -> String {
        if padded {
            format!("{n:02}")
        } else {
            n.to_string()
        }
    }

    /// A month's name: full, three letters or `Sept`, in upper, lower or title case.
    fn month_name(m: u32, form: u8, case: u8) -> String {
        let full = MONTHS[m as usize - 1];
        let name = match form {
            0 => full.to_string(),
            _ if m == 9 && form == 2 => "Sept".to_string(),
            _ => full[..3].to_string(),
        };
        match case {
            0 => name.to_uppercase(),
            1 => name.to_lowercase(),
            _ => name,
        }
    }

    proptest! {
        #![proptest_config(proptest_config(512))]

        /// All-numeric dates, `Y-m-d`, `d/m/Y` (day first by default, month first on request),
        /// `d/m/yy` and the compact 8-digit forms, read to their ISO form.
        #[test]
        fn numeric_dates_read_back(
            (y, m, d) in date(1000..=9999),
            sep in prop::sample::select(vec!["/", "-", "."]),
            padded in any::<bool>(),
            wrapped in any::<bool>(),
        ) {
            let want = iso((y, m, d));
            let (mm, dd) = (pad(m, padded), pad(d, padded));
            let wrap = |s: String| if wrapped { format!("({s})") } else { s };
            let ymd = wrap(format!("{y}{sep}{mm}{sep}{dd}"));
            prop_assert_eq!(parse_date(&ymd), Some(want.clone()), "{}", ymd);
            prop_assert_eq!(parse_date_ordered(&ymd, false), Some(want.clone()), "{}", ymd);
            let dmy = wrap(format!("{dd}{sep}{mm}{sep}{y}"));
            prop_assert_eq!(parse_date(&dmy), Some(want.clone()), "{}", dmy);
            let mdy = wrap(format!("{mm}{sep}{dd}{sep}{y}"));
            prop_assert_eq!(parse_date_ordered(&mdy, false), Some(want.clone()), "{}", mdy);
            if (2000..=2099).contains(&y) {
                let short = format!("{dd}{sep}{mm}{sep}{:02}", y % 100);
                prop_assert_eq!(parse_date(&short), Some(want.clone()), "{}", short);
            }
            if (1900..=2099).contains(&y) {
                let compact = format!("{y}{m:02}{d:02}");
                prop_assert_eq!(parse_date(&compact), Some(want.clone()), "{}", compact);
                let compact = format!("{d:02}{m:02}{y}");
                prop_assert_eq!(parse_date(&compact), Some(want.clone()), "{}", compact);
                let compact = format!("{m:02}{d:02}{y}");
                prop_assert_eq!(parse_date_ordered(&compact, false), Some(want), "{}", compact);
            }
        }

        /// Dates with a month name (`30th Dec 2017`, `30-DEC-17`, `December 30, 2017`,
        /// `2017 Dec 30`), optionally after a weekday and before a time, read to their ISO form in
        /// either numeric order.
        #[test]
        fn named_month_dates_read_back(
            (y, m, d) in date(1000..=9999),
            form in 0u8..3,
            case in 0u8..3,
            layout in 0u8..4,
            ordinal in prop::sample::select(vec!["", "st", "nd", "rd", "th", "TH"]),
            two_digit_year in any::<bool>(),
            weekday in prop::sample::select(vec!["", "Sat, ", "monday ", "Wed. "]),
            time in prop::sample::select(vec!["", " 10:30", " 9:05 PM", "T10:00:00Z"]),
        ) {
            let name = month_name(m, form, case);
            let year = if two_digit_year && (2000..=2099).contains(&y) {
                format!("{:02}", y % 100)
            } else {
                y.to_string()
            };
            let core = match layout {
                0 => format!("{d}{ordinal} {name} {year}"),
                1 => format!("{d}-{name}-{year}"),
                2 => format!("{name} {d}{ordinal}, {year}"),
                _ => format!("{y} {name} {d}"),
            };
            let text = format!("{weekday}{core}{time}");
            let want = iso((y, m, d));
            prop_assert_eq!(parse_date(&text), Some(want.clone()), "{}", text);
            prop_assert_eq!(parse_date_ordered(&text, false), Some(want), "{}", text);
        }

        /// A day past the end of its month is rejected in every form and either order.
        #[test]
        fn days_past_the_month_are_rejected(
            y in 1000u32..=9999,
            m in 1u32..=12,
            past in any::<Index>(),
        ) {
            // From the day after the last to the 32nd.
            let last = days_in(y, m);
            let d = last + 1 + past.index((32 - last) as usize) as u32;
            let name = &MONTHS[m as usize - 1][..3];
            for text in [
                format!("{d}/{m}/{y}"),
                format!("{y}-{m:02}-{d:02}"),
                format!("{d} {name} {y}"),
                format!("{name} {d}, {y}"),
                format!("{d:02}{m:02}{y}"),
            ] {
                prop_assert_eq!(parse_date(&text), None, "{}", text);
                prop_assert_eq!(parse_date_ordered(&text, false), None, "{}", text);
            }
        }

        /// No panic on any text, and what is read is a valid ISO date that reads as itself.
        #[test]
        fn any_text_is_handled(text in prop_oneof![
            prop::collection::vec(
                prop::sample::select(vec![
                    "1", "12", "30", "2018", "18", "0", "/", "-", ".", ",", " ", "Dec", "sept",
                    "Sat", "st", "T", ":", "10:30", "PM", "(", ")", "[", "]", "é", "\u{0}",
                ]),
                0..10,
            )
            .prop_map(|v| v.concat()),
            any::<String>(),
        ]) {
            for day_first in [true, false] {
                if let Some(iso) = parse_date_ordered(&text, day_first) {
                    let parts: Vec<u32> = iso.split('-').map(|p| p.parse().unwrap()).collect();
                    prop_assert_eq!(iso.len(), 10);
                    prop_assert!((1000..=9999).contains(&parts[0]), "{:?} -> {}", text, iso);
                    prop_assert!((1..=12).contains(&parts[1]), "{:?} -> {}", text, iso);
                    let days = days_in(parts[0], parts[1]);
                    prop_assert!((1..=days).contains(&parts[2]), "{:?} -> {}", text, iso);
                    prop_assert_eq!(parse_date(&iso), Some(iso.clone()));
                    prop_assert_eq!(parse_date_ordered(&iso, false), Some(iso.clone()));
                }
            }
        }
    }
}
