//! The one calendar: UTC timestamps (RFC 3339), HTTP dates, civil dates and month names,
//! without a date-time dependency. Receipt dates, price-table dates and `Retry-After` all use it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-27T21:14:05Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `20261127T211405Z`: sortable and safe in a path on every system.
pub fn compact(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, (rem / 3600) as u32, ((rem % 3600) / 60) as u32, (rem % 60) as u32)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in `month` (1–12) of `year` in the proleptic Gregorian calendar; 0 for a month out of
/// range.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        _ => 0,
    }
}

/// Whether `year-month-day` is a real date.
pub fn is_valid_date(year: i64, month: u32, day: u32) -> bool {
    (1..=days_in_month(year, month)).contains(&day)
}

const MONTH_NAMES: [&str; 12] = [
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

const WEEKDAY_NAMES: [&str; 7] =
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// The month (1–12) an English month name or its three-letter abbreviation names, in any case;
/// `Sept` too.
pub fn month_from_name(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    if w == "sept" {
        return Some(9);
    }
    MONTH_NAMES
        .iter()
        .position(|m| *m == w || (w.len() == 3 && m.starts_with(&w)))
        .map(|i| i as u32 + 1)
}

/// Whether `word` is an English weekday name or its three-letter abbreviation, in any case.
pub fn is_weekday_name(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    WEEKDAY_NAMES.iter().any(|d| *d == w || (w.len() == 3 && d.starts_with(&w)))
}

/// Parses an IMF-fixdate HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`), the form `Retry-After` uses.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, clock, "GMT"] = parts.as_slice() else { return None };
    // IMF-fixdate spells months as capitalised three-letter abbreviations, and nothing else.
    let month = month_from_name(month)
        .filter(|_| month.len() == 3 && month.starts_with(char::is_uppercase))?;
    let day: u32 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = clock.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, mi, s] = hms.as_slice() else { return None };
    if !is_valid_date(year, month, day) || *h > 23 || *mi > 59 || *s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// A duration as people write it: `90` or `90s` (seconds), `500ms`, `15m`, `12h`, `30d`, with a
/// fraction allowed (`1.5h`). `None` for anything else, including negative or absurd values.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.trim().parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return None,
    };
    // Under a hundred years: anything longer is a typo, and would overflow an Instant.
    (seconds.is_finite() && (0.0..3.2e9).contains(&seconds))
        .then(|| Duration::from_secs_f64(seconds))
}

/// Parses an RFC 3339 timestamp (`2026-12-01T12:00:30Z`, `2026-12-01T12:00:30.5+01:00`), the form
/// Anthropic's `anthropic-ratelimit-*-reset` headers use. Leap seconds read as the next second.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let [year, month, day] = fields::<3>(date, '-')?;
    let (year, month, day) = (year as i64, u32::try_from(month).ok()?, u32::try_from(day).ok()?);
    // The offset starts at the first `Z`, `+` or `-` after the seconds.
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (clock, fraction) = match clock.split_once('.') {
        Some((c, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (c, f),
        Some(_) => return None,
        None => (clock, ""),
    };
    let [h, mi, s] = fields::<3>(clock, ':')?;
    if !is_valid_date(year, month, day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let offset_secs: i64 = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let [oh, om] = fields::<2>(&zone[1..], ':')?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh as i64 * 3600 + om as i64 * 60)
        }
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + (h * 3600 + mi * 60 + s) as i64 - offset_secs;
    let nanos = if fraction.is_empty() {
        0
    } else {
        // Nanosecond precision is plenty; further digits are dropped.
        let digits: String = fraction.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse::<u32>().ok()?
    };
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `N` unsigned decimal fields separated by `sep`, each of two digits or more.
fn fields<const N: usize>(text: &str, sep: char) -> Option<[u64; N]> {
    let parts: Vec<&str> = text.split(sep).collect();
    if parts.len() != N {
        return None;
    }
    let mut out = [0u64; N];
    for (slot, part) in out.iter_mut().zip(parts) {
        if part.len() < 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        let d = |t: &str| parse_duration(t);
        assert_eq!(d("90"), Some(Duration::from_secs(90)));
        assert_eq!(d("90s"), Some(Duration::from_secs(90)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("15m"), Some(Duration::from_secs(900)));
        assert_eq!(d("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(d(" 30d "), Some(Duration::from_secs(30 * 86_400)));
        for bad in ["", "d", "-1s", "10 parsecs", "1e99d", "NaN", "3w"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_and_parses_known_instants() {
        let t = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(rfc3339(t), "2015-10-21T07:28:00Z");
        assert_eq!(compact(t), "20151021T072800Z");
        assert_eq!(parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"), Some(t));
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(parse_http_date("21 Oct 2015"), None);
        assert_eq!(parse_http_date("Wed, 21 oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn parses_rfc3339_with_fractions_and_offsets() {
        let t = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_rfc3339("2015-10-21T07:28:00Z"), Some(t));
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("2015-10-21T09:28:00+02:00"), Some(t));
        assert_eq!(parse_rfc3339("2015-10-21T06:58:00-00:30"), Some(t));
        assert_eq!(parse_rfc3339("2015-10-21T07:28:00.25Z"), Some(t + Duration::from_millis(250)));
        for bad in ["2015-10-21", "2015-10-21T07:28:00", "2015-13-21T07:28:00Z", "soon", ""] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(parse_rfc3339("2015-10-21T07:28:00.Z"), None);
    }

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 1, 1), 20_454);
        assert_eq!(
            (days_in_month(2024, 2), days_in_month(2025, 2), days_in_month(1900, 2)),
            (29, 28, 28)
        );
        assert_eq!(days_in_month(2000, 2), 29);
        assert!(
            !is_valid_date(2025, 2, 29)
                && is_valid_date(2024, 2, 29)
                && !is_valid_date(2024, 13, 1)
        );
        assert_eq!(
            (month_from_name("Sept"), month_from_name("DEC"), month_from_name("ju")),
            (Some(9), Some(12), None)
        );
        assert!(is_weekday_name("Tue") && is_weekday_name("sunday") && !is_weekday_name("sun day"));
    }
}
