//! `--junit FILE`: the gate as a JUnit XML report, one `<testcase>` per check in one
//! `<testsuite name="evalgate gate">`, which GitLab (`artifacts:reports:junit`) and GitHub test
//! reporters read. A failed or inconclusive check is a `<failure>` whose `message` carries the
//! reason. Written by hand: the format is small, and every text is escaped here.

use std::fmt::Write;

use crate::gate::{GateVerdict, Verdict};

/// The JUnit XML document for a gate verdict.
pub fn render(gate: &GateVerdict) -> String {
    let tests = gate.checks.len();
    let failures = gate.checks.iter().filter(|c| !c.passed).count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"evalgate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\">"
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"evalgate gate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">"
    );
    let classname = escape(&format!("evalgate.gate.{}", gate.candidate));
    for c in &gate.checks {
        let name = escape(&c.name);
        if c.passed {
            let _ = writeln!(xml, "    <testcase name=\"{name}\" classname=\"{classname}\">");
            let _ = writeln!(xml, "      <system-out>{}</system-out>", escape(&summary(c)));
            let _ = writeln!(xml, "    </testcase>");
        } else {
            let kind = match c.verdict {
                Verdict::Inconclusive => "inconclusive",
                _ if c.infrastructure => "infrastructure",
                _ => "fail",
            };
            let _ = writeln!(xml, "    <testcase name=\"{name}\" classname=\"{classname}\">");
            let _ = writeln!(
                xml,
                "      <failure message=\"{}\" type=\"{kind}\">{}</failure>",
                escape(&format!("{kind}: {}", c.detail)),
                escape(&summary(c))
            );
            let _ = writeln!(xml, "    </testcase>");
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

fn summary(c: &crate::gate::Check) -> String {
    format!(
        "{}: {} against {} ({}): {}",
        c.name,
        c.shown_value(),
        c.shown_threshold(),
        c.verdict.name(),
        c.detail
    )
}

/// Escapes text for XML content and attribute values, and drops the characters XML 1.0 cannot
/// hold (control characters other than tab, line feed and carriage return).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Line breaks in attributes would be normalised to spaces by a parser; keep them.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push('\t'),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Check;

    #[test]
    fn every_special_character_is_escaped() {
        assert_eq!(escape("a&b<c>d\"e'f\u{1}g\nh"), "a&amp;b&lt;c&gt;d&quot;e&apos;fg&#10;h");
    }

    #[test]
    fn one_testcase_per_check_and_failures_for_the_rest() {
        let check = |name: &str, verdict: Verdict| Check {
            name: name.into(),
            passed: verdict == Verdict::Pass,
            verdict,
            value: Some(0.9),
            low: Some(0.8),
            high: Some(0.95),
            threshold: 0.85,
            detail: "<why> & \"how\"".into(),
            infrastructure: false,
        };
        let gate = GateVerdict {
            passed: false,
            candidate: "ft<8b>".into(),
            baseline: None,
            checks: vec![
                check("min_accuracy", Verdict::Pass),
                check("min_recall.a&b", Verdict::Inconclusive),
                check("max_invalid_rate", Verdict::Fail),
            ],
        };
        let xml = render(&gate);
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert_eq!(xml.matches("<failure ").count(), 2);
        assert!(xml.contains("tests=\"3\" failures=\"2\""));
        assert!(xml.contains("classname=\"evalgate.gate.ft&lt;8b&gt;\""));
        assert!(xml.contains("name=\"min_recall.a&amp;b\""));
        assert!(xml.contains("message=\"inconclusive: &lt;why&gt; &amp; &quot;how&quot;\""));
        assert!(!xml.contains("<why>"));
    }
}
