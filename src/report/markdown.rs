//! `report.md`: a report that renders on GitHub (pull requests, step summaries, wikis).
//!
//! A pure function of [`Results`] and the disagreement sample, so it can be snapshot-tested.
//! Text that comes from data or models is escaped: `|` and line breaks cannot break a table, and
//! `<`/`>` cannot inject HTML.

use std::fmt::Write;

use super::results::{BackendResult, Results};
use crate::gate::{GateVerdict, Verdict};

/// An item on which the two best backends gave different answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement {
    pub id: String,
    pub gold: String,
    pub first: Option<String>,
    pub second: Option<String>,
    /// The item's rendered input, shortened.
    pub input: String,
}

/// What the report shows beyond [`Results`], gathered in the report step's single journal pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    /// The first items on which the two best backends disagree.
    pub disagreements: Vec<Disagreement>,
    /// How many items they disagree on in all (shown or not).
    pub disagreeing: usize,
    /// Per backend with invalid replies, in run order.
    pub invalid_replies: Vec<InvalidReplies>,
}

/// One backend's invalid replies: how many, and the first few.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidReplies {
    pub backend: String,
    pub total: usize,
    pub shown: Vec<InvalidReply>,
}

/// An invalid reply as the model wrote it, shortened (escaped when rendered).
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidReply {
    pub id: String,
    pub reply: String,
}

/// Confusion matrices wider than this are summarised as their largest off-diagonal cells.
const MAX_MATRIX_LABELS: usize = 12;
const MAX_DISAGREEMENTS: usize = 15;
/// Leaked item ids named in the report; the rest are counted.
const MAX_LEAKED_SHOWN: usize = 10;

/// The sentence under the chart: the image is a file beside `report.md`.
const CHART_NOTE: &str = "The chart is `chart.svg`, a file in the run directory beside this report; where the report is pasted without it (a pull request, a step summary) the image does not show.";
/// What replaces the chart in the GitHub step summary, which cannot show files of the run.
const STEP_SUMMARY_CHART_NOTE: &str =
    "*The chart of accuracy against cost is `chart.svg` in the run directory (not shown in step summaries).*";

pub fn render(results: &Results, top_two: Option<(&str, &str)>, details: &Details) -> String {
    let mut md = String::new();
    let _ = write_report(&mut md, results, top_two, details);
    md
}

/// The report for `GITHUB_STEP_SUMMARY`: the chart's image link, which cannot resolve there, is
/// replaced by a one-line note.
pub fn step_summary(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    for line in markdown.split_inclusive('\n') {
        let text = line.trim_end();
        if text.starts_with("![") && text.ends_with("](chart.svg)") {
            out.push_str(STEP_SUMMARY_CHART_NOTE);
            out.push('\n');
        } else if text != CHART_NOTE {
            out.push_str(line);
        }
    }
    // The note's blank lines around the dropped sentence collapse into one.
    out.replace(
        &format!("{STEP_SUMMARY_CHART_NOTE}\n\n\n"),
        &format!("{STEP_SUMMARY_CHART_NOTE}\n\n"),
    )
}

fn write_report(
    md: &mut String,
    r: &Results,
    top_two: Option<(&str, &str)>,
    details: &Details,
) -> std::fmt::Result {
    let extraction = !r.task.fields.is_empty();
    writeln!(md, "# evalgate report: {}\n", cell(&r.suite))?;
    writeln!(
        md,
        "{} test items · {} · suite sha256 `{}` · started {} · finished {} · evalgate {}\n",
        r.items,
        if extraction {
            format!("{} fields", r.task.fields.len())
        } else {
            format!("{} labels", r.task.labels.len())
        },
        &r.suite_sha256[..r.suite_sha256.len().min(12)],
        r.started_at,
        r.finished_at.as_deref().unwrap_or("(not finished)"),
        r.evalgate_version
    )?;

    for e in &r.error_rate_exceeded {
        writeln!(
            md,
            "**Errors above the limit:** {} of {} requests to `{}` failed ({:.1}%, the limit is {:.1}%); its figures do not describe the model. Fix the backend and run again.\n",
            e.errors,
            e.requests,
            cell(&e.backend),
            e.error_rate * 100.0,
            e.max_error_rate * 100.0
        )?;
    }
    // The verdict first: the gate's when there is one, else the recommendation.
    match &r.gate {
        Some(gate) => md.push_str(&gate_section(gate)),
        None => writeln!(md, "**Recommendation.** {}\n", prose(&r.recommendation))?,
    }

    writeln!(md, "## Summary\n")?;
    if extraction {
        writeln!(md, "Exact match is the share of answered items with every field right (or absent in both gold and reply), with a 95% Wilson interval; micro-F1 pools all fields (95% bootstrap interval). Errors (requests that failed after retries) are counted apart, never as wrong answers; invalid replies held no JSON object and are wrong on every field. Cost per correct is per exactly matched item.\n")?;
        writeln!(md, "| backend | strategy | model | exact match (95% CI) | micro-F1 (95% CI) | answered | invalid JSON | errors | tokens in / out per request | latency p50 / p95 | cost / 1k requests | cost per correct (95% CI) |")?;
    } else {
        writeln!(md, "Accuracy is over answered items (95% Wilson interval); errors (requests that failed after retries) are counted apart, never as wrong answers; invalid replies named no label and count as wrong.\n")?;
        writeln!(md, "| backend | strategy | model | accuracy (95% CI) | macro-F1 (95% CI) | answered | invalid | errors | tokens in / out per request | latency p50 / p95 | cost / 1k requests | cost per correct (95% CI) |")?;
    }
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    let mut ranked: Vec<&BackendResult> = r.backends.iter().collect();
    ranked.sort_by(|a, b| {
        // A backend with no answers has no accuracy: it goes last, not by its zero.
        (b.answered > 0)
            .cmp(&(a.answered > 0))
            .then(b.accuracy.estimate.total_cmp(&a.accuracy.estimate))
            .then(a.id.cmp(&b.id))
    });
    for b in &ranked {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {}/{} | {} | {} | {}{:.0} / {:.0} | {} | {} | {} |",
            cell(&b.id),
            b.strategy,
            b.model.as_deref().map_or("—".to_string(), cell),
            interval_pct(b.accuracy.estimate, b.accuracy.low, b.accuracy.high, b.answered),
            match &b.micro_f1 {
                Some(m) => metric(m.estimate, m.low, m.high),
                None => metric(b.macro_f1.estimate, b.macro_f1.low, b.macro_f1.high),
            },
            b.answered,
            b.items,
            b.invalid,
            b.errors,
            if b.tokens.estimated { "~" } else { "" },
            b.tokens.input_per_request,
            b.tokens.output_per_request,
            // Cached answers are left out of the percentiles: with only those, there are none.
            if b.answered > b.cached {
                format!("{} / {}", ms(b.latency_ms.p50), ms(b.latency_ms.p95))
            } else {
                "— (cached)".to_string()
            },
            match b.cost.per_1k_requests_usd {
                Some(c) => money(c),
                // A monthly price is spread over the suite's volume; without one there is no
                // cost per request.
                None if b.cost.pricing.is_some() => "— (no volume)".to_string(),
                None => "unknown".to_string(),
            },
            match b.cost.per_correct_usd {
                Some(c) => format!("{} ({}–{})", money(c.estimate), money(c.low), money(c.high)),
                // Priced, but nothing answered correctly: no cost per correct answer exists.
                None if b.cost.pricing.is_some() && b.answered > 0 && b.correct == 0 =>
                    "— (none correct)".to_string(),
                None if b.cost.pricing.is_some() => "— (no volume)".to_string(),
                None => "unknown".to_string(),
            },
        )?;
    }
    writeln!(md)?;
    if r.backends.iter().any(|b| b.tokens.estimated) {
        writeln!(
            md,
            "~ the server reported no token usage for some requests; those counts are estimates.\n"
        )?;
    }
    if r.gate.is_some() {
        writeln!(md, "**Recommendation.** {}\n", prose(&r.recommendation))?;
    }
    write_notes(md, r, &ranked)?;
    if r.backends.is_empty() {
        writeln!(md, "No backend was run.")?;
        return Ok(());
    }

    if !r.comparisons.is_empty() {
        write_comparisons(md, r, extraction)?;
    }

    write_costs(md, r, &ranked)?;

    writeln!(md, "## Details\n")?;
    if extraction {
        write_fields(md, &ranked)?;
    } else {
        write_classes(md, r, &ranked)?;
    }

    if let Some((first, second)) = top_two {
        let shown = details.disagreements.len().min(MAX_DISAGREEMENTS);
        if details.disagreeing == 0 {
            writeln!(
                md,
                "`{}` and `{}` gave the same answer on every item both answered.\n",
                cell(first),
                cell(second)
            )?;
        } else {
            writeln!(
                md,
                "<details><summary>Where {} and {} disagree: {} of {} item{} shown</summary>\n",
                cell(first),
                cell(second),
                shown,
                details.disagreeing,
                if details.disagreeing == 1 { "" } else { "s" }
            )?;
            writeln!(md, "| item | gold | {} | {} | input |", cell(first), cell(second))?;
            writeln!(md, "|---|---|---|---|---|")?;
            for d in details.disagreements.iter().take(MAX_DISAGREEMENTS) {
                writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    cell(&d.id),
                    cell(&d.gold),
                    answer(&d.first, &d.gold),
                    answer(&d.second, &d.gold),
                    cell(&d.input)
                )?;
            }
            writeln!(md, "\n</details>\n")?;
        }
    }

    if !details.invalid_replies.is_empty() {
        let counts: Vec<String> = details
            .invalid_replies
            .iter()
            .map(|i| format!("{} {}", cell(&i.backend), i.total))
            .collect();
        writeln!(md, "<details><summary>Invalid replies ({}): the first of each backend, as written</summary>\n", counts.join(", "))?;
        writeln!(md, "| backend | item | reply |")?;
        writeln!(md, "|---|---|---|")?;
        for backend in &details.invalid_replies {
            for i in &backend.shown {
                let reply =
                    if i.reply.is_empty() { "*(empty)*".to_string() } else { cell(&i.reply) };
                writeln!(md, "| {} | {} | {} |", cell(&backend.backend), cell(&i.id), reply)?;
            }
        }
        writeln!(md, "\n</details>\n")?;
    }

    let with_errors: Vec<&&BackendResult> = ranked.iter().filter(|b| b.errors > 0).collect();
    if !with_errors.is_empty() {
        writeln!(md, "## Errors\n")?;
        for b in with_errors {
            let kinds: Vec<String> =
                b.error_kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            writeln!(
                md,
                "- `{}`: {} of {} items failed after retries ({})",
                cell(&b.id),
                b.errors,
                b.items,
                kinds.join(", ")
            )?;
            if let Some(reason) = &b.stopped {
                writeln!(
                    md,
                    "  - stopped at once on {}: its remaining items were not sent (`--resume` sends them)",
                    cell(reason)
                )?;
            }
            for e in &b.error_messages {
                writeln!(md, "  - {} × {}", e.count, cell(&e.message))?;
            }
        }
        writeln!(md)?;
    }
    let truncated: Vec<&&BackendResult> = ranked.iter().filter(|b| b.truncated > 0).collect();
    if !truncated.is_empty() {
        writeln!(
            md,
            "## Replies cut by the token limit
"
        )?;
        for b in truncated {
            writeln!(
                md,
                "- `{}`: {} of {} answered replies ended at `max_tokens` (`finish_reason: length`, or `stop_reason: max_tokens` from Anthropic); raise its `max_tokens` if the answers were cut short",
                cell(&b.id),
                b.truncated,
                b.answered
            )?;
        }
        writeln!(md)?;
    }
    Ok(())
}

/// What a reader must know before trusting the table: an incomplete run, small suites, skipped
/// backends, answers from the cache, leaked items, stale prices, grouped items.
fn write_notes(md: &mut String, r: &Results, ranked: &[&BackendResult]) -> std::fmt::Result {
    if let Some(why) = &r.stopped {
        writeln!(md, "**Incomplete run:** {}. Items without a record are not scored; `evalgate run --resume` sends them.\n", prose(why))?;
    } else if r.backends.iter().any(|b| b.missing > 0) {
        writeln!(
            md,
            "**Incomplete run:** some items have no record yet (answered + errors < items).\n"
        )?;
    }
    for w in &r.warnings {
        writeln!(md, "> **Warning:** {}\n", prose(w))?;
    }
    if !r.skipped.is_empty() {
        let skipped: Vec<String> =
            r.skipped.iter().map(|s| format!("`{}` ({})", cell(&s.id), cell(&s.reason))).collect();
        writeln!(md, "**Skipped backends** (not run, not scored): {}.\n", skipped.join("; "))?;
    }
    let cached: Vec<String> = ranked
        .iter()
        .filter(|b| b.cached > 0)
        .map(|b| {
            let when = match &b.cached_between {
                Some([lo, hi]) if lo.get(..10) == hi.get(..10) => {
                    format!(" (answered on {})", lo.get(..10).unwrap_or(lo))
                }
                Some([lo, hi]) => format!(
                    " (answered {} to {})",
                    lo.get(..10).unwrap_or(lo),
                    hi.get(..10).unwrap_or(hi)
                ),
                None => String::new(),
            };
            format!("`{}` {} of {}{when}", cell(&b.id), b.cached, b.answered)
        })
        .collect();
    if !cached.is_empty() {
        writeln!(md, "**Response cache:** answers from the cache, not from the server in this run: {}. They are left out of the latency percentiles; `--refresh` asks again, and `--cache-max-age 7d` refuses answers older than a week.\n", cached.join("; "))?;
    }
    let batched: Vec<String> = ranked
        .iter()
        .filter_map(|b| b.batch.as_ref().map(|batch| super::prose::batch_mode(&cell(&b.id), batch)))
        .collect();
    if !batched.is_empty() {
        writeln!(md, "**Batch mode:** {} The latency of a batch answer is its batch's time from submission to its end.\n", batched.join(" "))?;
    }
    if !r.leaked.is_empty() {
        let n = r.leaked.len();
        let mut ids: Vec<String> =
            r.leaked.iter().take(MAX_LEAKED_SHOWN).map(|id| format!("`{}`", cell(id))).collect();
        if n > MAX_LEAKED_SHOWN {
            ids.push(format!("and {} more", n - MAX_LEAKED_SHOWN));
        }
        writeln!(md, "**Leakage:** {n} test item{} also in the training data ({}); few-shot prompts and the local baseline could have seen {} answer{}.\n", if n == 1 { " is" } else { "s are" }, ids.join(", "), if n == 1 { "its" } else { "their" }, if n == 1 { "" } else { "s" })?;
    }
    let stale: Vec<String> = ranked
        .iter()
        .filter(|b| b.cost.price_stale)
        .map(|b| match &b.cost.price_as_of {
            Some(as_of) => format!("`{}` (as of {})", cell(&b.id), cell(as_of)),
            None => format!("`{}`", cell(&b.id)),
        })
        .collect();
    if !stale.is_empty() {
        writeln!(md, "**Stale prices:** {}; the costs use them. Check them and set `pricing:` on the backend if they changed.\n", stale.join(", "))?;
    }
    let clustered: Vec<&&BackendResult> =
        ranked.iter().filter(|b| b.accuracy_clustered.is_some()).collect();
    if !clustered.is_empty() {
        writeln!(md, "Items share groups, so answers within a group are not independent; accuracy with a clustered standard error (Miller 2024):\n")?;
        for b in clustered {
            if let Some(c) = &b.accuracy_clustered {
                writeln!(
                    md,
                    "- `{}`: {:.1}% (95% CI {:.1}–{:.1}, SE {:.2} points, {} groups)",
                    cell(&b.id),
                    c.estimate * 100.0,
                    c.low * 100.0,
                    c.high * 100.0,
                    c.standard_error * 100.0,
                    c.clusters
                )?;
            }
        }
        writeln!(md)?;
    }
    Ok(())
}

fn write_comparisons(md: &mut String, r: &Results, extraction: bool) -> std::fmt::Result {
    writeln!(md, "## Comparisons\n")?;
    let (rate, f1_name) =
        if extraction { ("exact-match rate", "Micro-F1") } else { ("accuracy", "Macro-F1") };
    // The method of each comparison's interval, as results.json names it.
    let mut methods: Vec<&str> = Vec::new();
    for c in &r.comparisons {
        if !methods.contains(&c.difference.method.as_str()) {
            methods.push(&c.difference.method);
        }
    }
    let described: Vec<String> = methods
        .iter()
        .map(|m| match *m {
            "paired-item-means" => "the mean over items of the per-item difference (several samples per item: each item's samples averaged, the item as the unit) with a normal interval and test".to_string(),
            "newcombe-hybrid-score" => "Newcombe's hybrid score interval and McNemar's exact test on the items where exactly one is right".to_string(),
            other => format!("the `{}` interval", cell(other)),
        })
        .collect();
    let k = r.comparisons.len();
    let holm = if k == 1 {
        "; with one comparison there is nothing to correct for, so Holm's p equals p".to_string()
    } else {
        format!(", and Holm's correction across the {k} comparisons")
    };
    writeln!(md, "Paired over the items both backends answered: difference in {rate} (second − first) by {}{holm}. {f1_name} differences use a paired bootstrap ({} resamples).\n",
        described.join("; or, "), r.backends.first().map_or(0, |b| b.macro_f1.resamples))?;
    let (rate, f1_name) =
        if extraction { ("exact match", "micro-F1") } else { ("accuracy", "macro-F1") };
    let first = &r.comparisons[0];
    let family = if k > 1 {
        format!("Each difference interval is at {}, so that the {k} verdicts hold together at {} (Bonferroni)", super::prose::level(first.difference.confidence), super::prose::level(crate::score::CONFIDENCE))
    } else {
        format!(
            "The difference interval is at {}",
            super::prose::level(first.difference.confidence)
        )
    };
    writeln!(md, "{family}; the decision reads it against the suite's margin of {:.1} points. The p-values are supplementary.\n", first.margin * 100.0)?;
    writeln!(md, "| first | second | only first right | only second right | Δ {rate} ({} CI) | decision (second vs first) | p | Holm p | Δ {f1_name} (95% CI) |", super::prose::level(first.difference.confidence))?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    for c in &r.comparisons {
        let f1 = c
            .micro_f1_difference
            .as_ref()
            .or(c.macro_f1_difference.as_ref())
            .map_or("—".to_string(), |d| {
                format!("{:+.3} ({:+.3} to {:+.3})", d.estimate, d.low, d.high)
            });
        writeln!(
            md,
            "| {} | {} | {} | {} | {:+.1} pts ({:+.1} to {:+.1}) | {} | {} | {} | {} |",
            cell(&c.first),
            cell(&c.second),
            c.only_first,
            c.only_second,
            c.difference.estimate * 100.0,
            c.difference.low * 100.0,
            c.difference.high * 100.0,
            c.decision.phrase(),
            crate::text::p_number(c.p_value),
            crate::text::p_number(c.p_value_holm),
            f1
        )?;
    }
    writeln!(md)?;
    for c in &r.comparisons {
        writeln!(md, "- {}", prose(&c.verdict))?;
    }
    writeln!(md)
}

fn write_classes(md: &mut String, r: &Results, ranked: &[&BackendResult]) -> std::fmt::Result {
    for b in ranked {
        writeln!(
            md,
            "<details><summary>Per-class results of {}: {} labels, worst F1 first</summary>\n",
            cell(&b.id),
            b.classes.len()
        )?;
        writeln!(md, "| label | support | predicted | precision | recall | F1 |")?;
        writeln!(md, "|---|---|---|---|---|---|")?;
        for c in worst_first(&b.classes) {
            writeln!(
                md,
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} |",
                cell(&c.label),
                c.support,
                c.predicted,
                c.precision,
                c.recall,
                c.f1
            )?;
        }
        writeln!(md)?;
        write_confusion(md, &r.task.labels, b)?;
        writeln!(md, "</details>\n")?;
    }
    Ok(())
}

/// Classes by F1, worst first (more support first among equals); labels neither in the gold nor
/// predicted say nothing about the model and go last.
pub fn worst_first(classes: &[super::results::ClassResult]) -> Vec<&super::results::ClassResult> {
    let mut sorted: Vec<_> = classes.iter().collect();
    sorted.sort_by(|a, b| {
        let absent = |c: &super::results::ClassResult| c.support == 0 && c.predicted == 0;
        absent(a)
            .cmp(&absent(b))
            .then(a.f1.total_cmp(&b.f1))
            .then(b.support.cmp(&a.support))
            .then(a.label.cmp(&b.label))
    });
    sorted
}

/// Each backend's fields, weakest first, then a few of its field errors.
fn write_fields(md: &mut String, ranked: &[&BackendResult]) -> std::fmt::Result {
    writeln!(md, "Per field, accuracy is over the answered items where gold or reply has a value (95% Wilson interval). Wrong values count as a false positive and a false negative, missing values as a false negative, values where the gold has none as a false positive; an invalid reply is wrong on every field.\n")?;
    for b in ranked {
        let Some(fields) = &b.fields else { continue };
        if b.answered == 0 {
            writeln!(md, "`{}` answered no item.\n", cell(&b.id))?;
            continue;
        }
        writeln!(
            md,
            "<details><summary>Per-field results of {}: {} fields, weakest first</summary>\n",
            cell(&b.id),
            fields.len()
        )?;
        let mut weakest: Vec<(&String, &super::results::FieldResult)> = fields.iter().collect();
        weakest.sort_by(|a, b| {
            a.1.accuracy
                .estimate
                .total_cmp(&b.1.accuracy.estimate)
                .then(a.1.f1.total_cmp(&b.1.f1))
                .then(a.0.cmp(b.0))
        });
        writeln!(md, "| field | type | accuracy (95% CI) | precision | recall | F1 | correct / counted | wrong | missed | spurious | invalid |")?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
        for (name, f) in weakest {
            writeln!(
                md,
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {}/{} | {} | {} | {} | {} |",
                cell(name),
                f.ty,
                interval_pct(f.accuracy.estimate, f.accuracy.low, f.accuracy.high, f.counted),
                f.precision,
                f.recall,
                f.f1,
                f.correct,
                f.counted,
                f.wrong,
                f.missed,
                f.spurious,
                f.invalid
            )?;
        }
        writeln!(md)?;
        let pooled = |name: &str,
                      p: &Option<super::results::MetricResult>,
                      r: &Option<super::results::MetricResult>,
                      f: Option<&super::results::MetricResult>| match (p, r, f)
        {
            (Some(p), Some(r), Some(f)) => format!(
                "{name} precision {}, recall {}, F1 {}",
                metric(p.estimate, p.low, p.high),
                metric(r.estimate, r.low, r.high),
                metric(f.estimate, f.low, f.high)
            ),
            _ => String::new(),
        };
        writeln!(
            md,
            "{}; {}. Exact match {}; invalid JSON {} of {} answered.\n",
            pooled("Micro", &b.micro_precision, &b.micro_recall, b.micro_f1.as_ref()),
            pooled("macro", &b.macro_precision, &b.macro_recall, Some(&b.macro_f1)),
            interval_pct(b.accuracy.estimate, b.accuracy.low, b.accuracy.high, b.answered),
            b.invalid,
            b.answered
        )?;
        if let Some(errors) = b.field_errors.as_ref().filter(|e| !e.is_empty()) {
            writeln!(md, "Example field errors:\n")?;
            writeln!(md, "| item | field | gold | predicted |")?;
            writeln!(md, "|---|---|---|---|")?;
            for e in errors {
                writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    cell(&e.id),
                    cell(&e.field),
                    json_cell(&e.gold),
                    json_cell(&e.predicted)
                )?;
            }
            writeln!(md)?;
        }
        writeln!(md, "</details>\n")?;
    }
    Ok(())
}

/// A gold or predicted value in a table cell: text as itself, null as a dash, others as JSON.
fn json_cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".to_string(),
        serde_json::Value::String(s) => cell(&crate::text::excerpt(s, 80)),
        other => cell(&crate::text::excerpt(&other.to_string(), 80)),
    }
}

fn write_costs(md: &mut String, r: &Results, ranked: &[&BackendResult]) -> std::fmt::Result {
    writeln!(md, "## Cost\n")?;
    if r.backends.iter().any(|b| b.cost.per_correct_usd.is_some()) {
        let what = if r.task.fields.is_empty() { "Accuracy" } else { "Exact match" };
        writeln!(md, "![{what} against cost per correct answer](chart.svg)\n")?;
        writeln!(md, "{CHART_NOTE}\n")?;
    }
    match r.volume {
        Some(v) => {
            writeln!(md, "At your volume of {} requests a day:\n", crate::text::group_thousands(v.requests_per_day.round() as u64))?;
            writeln!(md, "| backend | price | per request | per day | per year | instances |")?;
            writeln!(md, "|---|---|---|---|---|---|")?;
            for b in ranked {
                let c = &b.cost;
                writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    cell(&b.id),
                    price_text(c),
                    c.per_request_usd.map_or("unknown".into(), money),
                    c.daily_usd.map_or("unknown".into(), money),
                    c.annual_usd.map_or("unknown".into(), money),
                    c.instances_needed.map_or("—".into(), |n| n.to_string()),
                )?;
            }
            writeln!(md)?;
        }
        None => writeln!(md, "Add `volume: {{ requests_per_day: N }}` to the suite to project daily and annual cost.\n")?,
    }
    for be in &r.break_even {
        writeln!(md, "- {}", prose(&be.sentence))?;
    }
    let notes: Vec<String> = ranked
        .iter()
        .flat_map(|b| b.cost.notes.iter().map(move |n| format!("`{}`: {}", b.id, n)))
        .collect();
    for note in &notes {
        writeln!(md, "- {}", prose(note))?;
    }
    if !r.break_even.is_empty() || !notes.is_empty() {
        writeln!(md)?;
    }
    Ok(())
}

fn price_text(c: &super::results::CostResult) -> String {
    let stale = if c.price_stale { " (stale)" } else { "" };
    match &c.pricing {
        Some(crate::cost::Pricing::PerToken { input_per_mtok, output_per_mtok, .. }) => {
            format!("${input_per_mtok} / ${output_per_mtok} per M tokens{stale}")
        }
        Some(crate::cost::Pricing::Fixed { monthly_usd, capacity_rps }) => match capacity_rps {
            Some(rps) => format!("${monthly_usd}/month per instance of {rps} req/s"),
            None => format!("${monthly_usd}/month"),
        },
        None => "unknown".into(),
    }
}

/// Dollars with enough digits to tell small per-request costs apart.
pub(crate) fn money(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "$0".into()
    } else if a >= 100.0 {
        format!("${}", crate::text::group_thousands(v.round() as u64))
    } else if a >= 1.0 {
        format!("${v:.2}")
    } else {
        // Three significant digits.
        let digits = ((-a.log10()).floor() as usize) + 3;
        format!("${v:.digits$}")
    }
}

fn write_confusion(md: &mut String, labels: &[String], b: &BackendResult) -> std::fmt::Result {
    let n = labels.len();
    if n <= MAX_MATRIX_LABELS {
        writeln!(md, "Confusion matrix (rows: gold, columns: predicted):\n")?;
        let header: Vec<String> = labels.iter().map(|l| cell(l)).collect();
        writeln!(md, "| gold \\ predicted | {} | invalid |", header.join(" | "))?;
        writeln!(md, "|---|{}---|", "---|".repeat(n))?;
        for (g, row) in b.confusion.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(p, v)| if p == g { format!("**{v}**") } else { v.to_string() })
                .collect();
            writeln!(md, "| {} | {} |", cell(&labels[g]), cells.join(" | "))?;
        }
    } else {
        let mut off: Vec<(u64, usize, usize)> = Vec::new();
        for (g, row) in b.confusion.iter().enumerate() {
            for (p, &v) in row.iter().enumerate() {
                if p != g && v > 0 {
                    off.push((v, g, p));
                }
            }
        }
        off.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        writeln!(md, "Most frequent confusions ({n} labels: too many for a matrix):\n")?;
        writeln!(md, "| gold | predicted | items |")?;
        writeln!(md, "|---|---|---|")?;
        for (v, g, p) in off.into_iter().take(10) {
            let predicted = labels.get(p).map_or("(invalid)".to_string(), |l| cell(l));
            writeln!(md, "| {} | {} | {} |", cell(&labels[g]), predicted, v)?;
        }
    }
    writeln!(md)
}

fn answer(a: &Option<String>, gold: &str) -> String {
    match a {
        None => "*(invalid)*".to_string(),
        Some(a) if a == gold => format!("{} ✓", cell(a)),
        Some(a) => cell(a),
    }
}

fn metric(estimate: f64, low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("{estimate:.3} ({l:.3}–{h:.3})"),
        _ => format!("{estimate:.3}"),
    }
}

fn interval_pct(estimate: f64, low: f64, high: f64, n: u64) -> String {
    if n == 0 {
        return "—".to_string();
    }
    format!("{:.1}% ({:.1}–{:.1})", estimate * 100.0, low * 100.0, high * 100.0)
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// The gate's verdict: a heading and one table row per check. Also what the gate appends to the
/// GitHub step summary.
pub fn gate_section(gate: &GateVerdict) -> String {
    let mut md = String::new();
    let verdict = if gate.passed {
        "passed"
    } else if gate.infrastructure_failures().next().is_some() {
        "could not judge the run"
    } else {
        "failed"
    };
    let _ = writeln!(md, "## Gate: {verdict}\n");
    let against = match &gate.baseline {
        Some(b) => format!(" against baseline `{}`", cell(b)),
        None => String::new(),
    };
    let _ = writeln!(md, "Candidate `{}`{against}.\n", cell(&gate.candidate));
    let _ = writeln!(md, "| check | value (95% CI) | threshold | verdict | detail |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for c in &gate.checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(&c.name),
            cell(&c.shown_value()),
            cell(&c.shown_threshold()),
            match c.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "**fail**",
                Verdict::Inconclusive => "**inconclusive**",
            },
            cell(&c.detail)
        );
    }
    md.push('\n');
    md
}

/// Escapes a sentence of ours that may quote data: no HTML, one line.
fn prose(text: &str) -> String {
    text.replace('<', "&lt;").replace('>', "&gt;").replace(['\n', '\r'], " ")
}

/// Escapes text for a GitHub table cell.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' => out.push_str(" ↵ "),
            '\r' => {}
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push('\''),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_tables_or_inject_html() {
        assert_eq!(cell("a|b\nc<script>"), "a\\|b ↵ c&lt;script&gt;");
        assert_eq!(cell(" `x` \r\n"), "'x'");
    }
}
