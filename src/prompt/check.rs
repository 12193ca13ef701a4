//! The template step of suite validation: compile the task's templates, check the variables they
//! read against the data, and render every item's input. It lives here rather than in `suite`
//! because only this module compiles templates; the suite records where each template is written
//! and which columns hold gold, so the problems name the same file, line and key.

use super::PromptTemplates;
use crate::error::{SuiteErrors, SuiteProblem};
use crate::suite::{Suite, TaskKind};

/// Checks the templates of a loaded suite; every problem names the suite file, the template's
/// line and its key (`task.input`), or the data file and line of an item that cannot be rendered.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let suite = evalgate::suite::load(std::path::Path::new("suites/quickstart.yaml"))?;
/// evalgate::prompt::check_templates(&suite)?;
/// # Ok(())
/// # }
/// ```
pub fn check_templates(suite: &Suite) -> Result<(), SuiteErrors> {
    let problems = problems(suite);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SuiteErrors(problems))
    }
}

/// Empty input cells reported at most; one is enough to fix the data, a few show a pattern.
const MAX_EMPTY_CELLS: usize = 20;

fn problems(suite: &Suite) -> Vec<SuiteProblem> {
    let task = &suite.task;
    let lines = task.template_lines;
    let problem = |line: u64, name: &str, message: String, hint: String| {
        SuiteProblem::new(&suite.path, message).line(line).key(format!("task.{name}")).hint(hint)
    };
    let templates = match PromptTemplates::compile(task) {
        Ok(templates) => templates,
        Err((name, e)) => {
            let line = match name {
                "input" => lines.input,
                "instructions" => lines.instructions,
                _ => lines.fine_tuned_instructions.unwrap_or(lines.input),
            };
            return vec![problem(
                line,
                name,
                format!("invalid template: {e}"),
                "templates use Jinja syntax, e.g. `Ticket: {{ text }}`".to_string(),
            )];
        }
    };
    let mut problems = Vec::new();
    let mut columns: Vec<&str> =
        suite.test.items.first().map(|i| i.fields.keys().collect()).unwrap_or_default();
    columns.sort_unstable();
    let checked = [
        ("input", Some(lines.input)),
        ("instructions", Some(lines.instructions)),
        ("fine_tuned_instructions", lines.fine_tuned_instructions),
    ];
    for (name, line) in checked.into_iter().filter_map(|(n, l)| Some((n, l?))) {
        for var in templates.variables(name) {
            if (var == "labels" || var == "fields") && name != "input" {
                continue;
            }
            let (message, hint) = if suite.gold_columns.contains(&var) {
                (
                    format!(
                        "template uses `{var}`, which holds the gold {}",
                        if task.kind == TaskKind::Extraction { "fields" } else { "label" }
                    ),
                    "the prompt must not contain the answer; remove it".to_string(),
                )
            } else if name != "input" {
                (format!("template uses `{var}`, which instructions do not have"), "instructions see only `labels` (and `fields` in extraction tasks); put item columns in `input`".to_string())
            } else if !columns.contains(&var.as_str()) {
                (
                    format!("template uses `{var}`, which is not a column of the test data"),
                    format!("columns are: {}", columns.join(", ")),
                )
            } else {
                continue;
            };
            problems.push(problem(line, name, message, hint));
        }
    }
    if problems.is_empty() {
        // An item column the input shows must hold text: an empty cell sends the model an empty
        // item, whose answer says nothing.
        let shown: Vec<String> = templates
            .variables("input")
            .into_iter()
            .filter(|v| v != "labels" && v != "fields" && columns.contains(&v.as_str()))
            .collect();
        for data in std::iter::once(&suite.test).chain(&suite.train) {
            for item in &data.items {
                for var in &shown {
                    let empty = match item.fields.get(var) {
                        Some(serde_json::Value::String(text)) => text.trim().is_empty(),
                        Some(serde_json::Value::Null) => true,
                        _ => false,
                    };
                    if empty && problems.len() < MAX_EMPTY_CELLS {
                        problems.push(
                            SuiteProblem::new(
                                &data.origin,
                                format!("item `{}` has an empty `{var}`, which `task.input` shows the model", item.id),
                            )
                            .line(item.line)
                            .key(var.as_str())
                            .hint("give every row its text, or remove the row"),
                        );
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        // Render every item: strict undefined catches what static analysis cannot (a column
        // missing from some JSONL rows, an attribute of a string).
        for data in std::iter::once(&suite.test).chain(&suite.train) {
            for item in &data.items {
                if let Err(e) = templates.render_input(item) {
                    problems.push(
                        SuiteProblem::new(
                            &data.origin,
                            format!("cannot render `task.input` for item `{}`: {e}", item.id),
                        )
                        .line(item.line)
                        .hint("every column the template uses must be present in every row"),
                    );
                    return problems;
                }
            }
        }
    }
    problems
}
