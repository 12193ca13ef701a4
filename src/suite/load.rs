//! Load a suite file, read its data, and check everything that can be checked before a request
//! is sent. Problems are collected, not returned one at a time.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::data::{self, RawTable};
use super::schema::{
    self, DataSource, FewShotFile, FieldTypeName, ProviderKind, StrategyFile, StructuredOutputFile,
    SuiteFile,
};
use super::{
    BackendSpec, Dataset, FewShot, Fields, Item, Price, Provider, ReplaySource, Selection,
    Strategy, StructuredOutput, Suite, Task, TaskKind, TemplateLines, ANTHROPIC_BASE_URL,
    ANTHROPIC_KEY_ENV, DEFAULT_CONCURRENCY, OPENAI_BASE_URL, OPENAI_KEY_ENV,
};
use crate::cost::{PriceTable, Pricing};
use crate::error::{SuiteErrors, SuiteProblem};
use crate::field::{FieldSpec, FieldType, StringMatch};

/// At most this many problems of one kind are listed for a data file; a file with thousands of
/// bad rows needs one fix, not a thousand lines of output.
const MAX_ROW_PROBLEMS: usize = 10;

/// Reads and validates the suite at `path`.
pub fn load(path: &Path) -> Result<Suite, SuiteErrors> {
    let bytes = std::fs::read(path).map_err(|e| {
        let problem = SuiteProblem::new(path, format!("cannot read suite: {e}"));
        SuiteErrors::from(problem)
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| SuiteProblem::new(path, "suite is not valid UTF-8"))?;
    load_str(path, &text)
}

/// Validates suite text as if read from `path` (data paths resolve against its folder).
pub fn load_str(path: &Path, text: &str) -> Result<Suite, SuiteErrors> {
    let sha256 = hex(&Sha256::digest(text.as_bytes()));
    let file: SuiteFile = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let message = e.without_snippet().to_string();
        SuiteProblem::new(path, message)
            .line(line)
            .hint("check the key names and value types against the suite format in the README")
    })?;
    Resolver { path: path.to_path_buf(), problems: Vec::new(), gold_columns: Vec::new() }
        .resolve(file, sha256)
}

fn data_hash(test: &Dataset, train: Option<&Dataset>) -> String {
    let mut hasher = Sha256::new();
    for (split, data) in [("test", Some(test)), ("train", train)] {
        hasher.update(split.as_bytes());
        for item in data.map_or(&[][..], |d| &d.items[..]) {
            // JSON of (id, label, fields): an unambiguous encoding of everything a prompt or a
            // score can depend on.
            let encoded =
                serde_json::to_vec(&(&item.id, &item.label, &item.fields)).unwrap_or_default();
            hasher.update((encoded.len() as u64).to_be_bytes());
            hasher.update(&encoded);
        }
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Resolver {
    path: PathBuf,
    problems: Vec<SuiteProblem>,
    /// The columns holding the gold answer: a template that names one would leak the answer.
    gold_columns: Vec<String>,
}

impl Resolver {
    fn problem(
        &mut self,
        line: u64,
        key: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let hint = hint.into();
        let mut problem = SuiteProblem::new(&self.path, message).line(line).key(key);
        if !hint.is_empty() {
            problem = problem.hint(hint);
        }
        self.problems.push(problem);
    }

    fn resolve(mut self, file: SuiteFile, sha256: String) -> Result<Suite, SuiteErrors> {
        if file.schema_version.value != schema::SCHEMA_VERSION {
            self.problem(
                line(&file.schema_version),
                "schema_version",
                format!("unsupported schema_version {}", file.schema_version.value),
                format!("this evalgate reads schema_version {}", schema::SCHEMA_VERSION),
            );
        }
        let name = file.name.value.trim().to_string();
        if name.is_empty() {
            self.problem(
                line(&file.name),
                "name",
                "the suite name is empty",
                "name the suite, e.g. `name: support-tickets`",
            );
        }
        let task = self.resolve_task(&file.task);
        let (test, train) = self.resolve_data(&file.data, &task);
        let backends = self.resolve_backends(&file.backends, &task, train.as_ref());
        let compare = self.resolve_compare(file.compare.as_ref(), &backends);
        if let Some(volume) = &file.volume {
            let rpd = volume.value.requests_per_day;
            if !(rpd.is_finite() && rpd > 0.0) {
                self.problem(
                    line(volume),
                    "volume.requests_per_day",
                    "requests per day must be a positive number",
                    "e.g. `volume: { requests_per_day: 50000 }`",
                );
            }
        }

        if let Some(decision) = &file.decision {
            let m = decision.value.margin;
            if !(m.is_finite() && (0.0..0.5).contains(&m)) {
                self.problem(
                    line(decision),
                    "decision.margin",
                    "the margin must be a difference in accuracy from 0 to below 0.5",
                    "e.g. `decision: { margin: 0.02 }` for 2 points",
                );
            }
        }

        let cache_max_age = file.cache.as_ref().and_then(|c| {
            let parsed = match &c.value.max_age {
                schema::DurationText::Seconds(s) => crate::time::parse_duration(&s.to_string()),
                schema::DurationText::Text(t) => crate::time::parse_duration(t),
            };
            if parsed.is_none() {
                self.problem(
                    line(c),
                    "cache.max_age",
                    "the cache's maximum age is not a duration",
                    "write a number with s, m, h or d, e.g. `cache: { max_age: 7d }`",
                );
            }
            parsed
        });

        // Templates are checked by the prompt module (`check_templates`), which compiles them: the
        // suite only records where they are written and which columns hold gold.
        let gate = match (&file.gate, &task) {
            (Some(section), Some(task)) => {
                let ctx = crate::gate::PolicyContext {
                    path: &self.path,
                    backends: backends.iter().map(|b| b.id.as_str()).collect(),
                    kind: task.kind,
                    labels: &task.labels,
                    fields: task.fields.iter().map(|f| f.name.as_str()).collect(),
                };
                match crate::gate::resolve(section, &ctx) {
                    Ok(policy) => Some(policy),
                    Err(problems) => {
                        self.problems.extend(problems);
                        None
                    }
                }
            }
            _ => None,
        };
        match (self.problems.is_empty(), task, test) {
            (true, Some(task), Some(test)) => Ok(Suite {
                data_sha256: data_hash(&test, train.as_ref()),
                requests_per_day: file.volume.as_ref().map(|v| v.value.requests_per_day),
                compare,
                margin: file
                    .decision
                    .as_ref()
                    .map_or(crate::score::DEFAULT_MARGIN, |d| d.value.margin),
                gold_columns: self.gold_columns,
                gate,
                cache_max_age,
                label_parser: crate::parse::LabelParser::new(&task.labels),
                path: self.path,
                name,
                description: file.description,
                sha256,
                task,
                test,
                train,
                backends,
            }),
            _ => Err(SuiteErrors(self.problems)),
        }
    }

    fn resolve_task(&mut self, task: &schema::TaskFile) -> Option<Task> {
        if task.kind.value == TaskKind::Extraction {
            return self.resolve_extraction(task);
        }
        if let Some(fields) = &task.fields {
            self.problem(
                line(fields),
                "task.fields",
                "`fields` belong to extraction tasks",
                "use `kind: extraction`, or remove `fields` and list `labels`",
            );
        }
        let Some(labels) = &task.labels else {
            self.problem(
                line(&task.kind),
                "task.labels",
                "a classification task needs `labels`",
                "list the labels, e.g. `labels: [billing, technical, other]`",
            );
            return None;
        };
        let mut seen = HashSet::new();
        let mut names = Vec::with_capacity(labels.value.len());
        for (i, label) in labels.value.iter().enumerate() {
            let value = label.value.trim().to_string();
            if value.is_empty() {
                self.problem(
                    line(label),
                    &format!("task.labels[{i}]"),
                    "a label is empty",
                    "remove it or name it",
                );
            } else if !seen.insert(value.clone()) {
                self.problem(
                    line(label),
                    &format!("task.labels[{i}]"),
                    format!("label `{value}` is listed twice"),
                    "",
                );
            }
            names.push(value);
        }
        if names.len() < 2 {
            self.problem(
                line(labels),
                "task.labels",
                "a classification task needs at least two labels",
                "",
            );
        }
        Some(Task {
            kind: task.kind.value,
            labels: names,
            instructions: task.instructions.as_ref().map(|i| i.value.clone()).unwrap_or_default(),
            input: task.input.value.clone(),
            fine_tuned_instructions: task.fine_tuned_instructions.as_ref().map(|s| s.value.clone()),
            template_lines: template_lines(task),
            fields: Vec::new(),
        })
    }

    fn resolve_extraction(&mut self, task: &schema::TaskFile) -> Option<Task> {
        if let Some(labels) = &task.labels {
            self.problem(
                line(labels),
                "task.labels",
                "an extraction task has `fields`, not `labels`",
                "remove `labels`, or use `kind: classification`",
            );
        }
        let Some(fields) = &task.fields else {
            self.problem(
                line(&task.kind),
                "task.fields",
                "an extraction task needs `fields`",
                "declare them, e.g. `fields: { total: { type: number, tolerance: 0.01 }, date: { type: date } }`",
            );
            return None;
        };
        if fields.value.0.is_empty() {
            self.problem(
                line(fields),
                "task.fields",
                "an extraction task needs at least one field",
                "",
            );
        }
        let mut specs: Vec<FieldSpec> = Vec::with_capacity(fields.value.0.len());
        for (name, f) in &fields.value.0 {
            let l = line(name);
            let field = name.value.trim().to_string();
            let key = format!("task.fields.{field}");
            if field.is_empty() {
                self.problem(l, "task.fields", "a field name is empty", "name every field");
                continue;
            }
            if specs.iter().any(|s| s.name == field) {
                self.problem(l, &key, format!("field `{field}` is declared twice"), "");
                continue;
            }
            let ty_name = f.ty.value;
            let is_text = matches!(ty_name, FieldTypeName::String | FieldTypeName::List);
            let rule = match &f.match_rule {
                Some(m) if !is_text => {
                    self.problem(
                        line(m),
                        &format!("{key}.match"),
                        "`match` applies to string and list fields",
                        "remove `match`",
                    );
                    StringMatch::Normalized
                }
                Some(m) => m.value.parse::<StringMatch>().unwrap_or_else(|e| {
                    self.problem(
                        line(m),
                        &format!("{key}.match"),
                        e.to_string(),
                        "e.g. `match: exact`, `match: normalized` or `match: fuzzy(0.85)`",
                    );
                    StringMatch::Normalized
                }),
                None => StringMatch::Normalized,
            };
            let tolerance = match &f.tolerance {
                Some(t) if ty_name != FieldTypeName::Number => {
                    self.problem(
                        line(t),
                        &format!("{key}.tolerance"),
                        "`tolerance` applies to number fields",
                        "remove `tolerance`",
                    );
                    0.0
                }
                Some(t) if !(t.value.is_finite() && t.value >= 0.0) => {
                    self.problem(
                        line(t),
                        &format!("{key}.tolerance"),
                        "tolerance must be a number, 0 or more",
                        "e.g. `tolerance: 0.01`",
                    );
                    0.0
                }
                Some(t) => t.value,
                None => 0.0,
            };
            if let Some(d) = f.day_first.as_ref().filter(|_| ty_name != FieldTypeName::Date) {
                self.problem(
                    line(d),
                    &format!("{key}.day_first"),
                    "`day_first` applies to date fields",
                    "remove `day_first`",
                );
            }
            let values = match (&f.values, ty_name) {
                (Some(v), FieldTypeName::Enum) => {
                    let mut seen = HashSet::new();
                    for value in &v.value {
                        let folded = crate::text::normalize(value);
                        if folded.is_empty() {
                            self.problem(
                                line(v),
                                &format!("{key}.values"),
                                "an enum value is empty",
                                "",
                            );
                        } else if !seen.insert(folded) {
                            self.problem(line(v), &format!("{key}.values"), format!("`{value}` is listed twice (values are compared ignoring case and punctuation)"), "");
                        }
                    }
                    if v.value.is_empty() {
                        self.problem(
                            line(v),
                            &format!("{key}.values"),
                            "an enum needs at least one value",
                            "",
                        );
                    }
                    v.value.iter().map(|x| x.trim().to_string()).collect()
                }
                (Some(v), _) => {
                    self.problem(
                        line(v),
                        &format!("{key}.values"),
                        "`values` applies to enum fields",
                        "remove `values`, or use `type: enum`",
                    );
                    Vec::new()
                }
                (None, FieldTypeName::Enum) => {
                    self.problem(
                        line(&f.ty),
                        &format!("{key}.values"),
                        "an enum field needs its `values`",
                        "e.g. `values: [card, cash, transfer]`",
                    );
                    Vec::new()
                }
                (None, _) => Vec::new(),
            };
            let ty = match ty_name {
                FieldTypeName::String => FieldType::String(rule),
                FieldTypeName::List => FieldType::List(rule),
                FieldTypeName::Number => FieldType::Number { tolerance },
                FieldTypeName::Date => {
                    FieldType::Date { day_first: f.day_first.as_ref().is_none_or(|d| d.value) }
                }
                FieldTypeName::Enum => FieldType::Enum(values),
            };
            specs.push(FieldSpec {
                name: field,
                ty,
                required: f.required.as_ref().is_some_and(|r| r.value),
                description: f
                    .description
                    .as_ref()
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty()),
            });
        }
        Some(Task {
            kind: TaskKind::Extraction,
            labels: Vec::new(),
            instructions: task.instructions.as_ref().map(|i| i.value.clone()).unwrap_or_default(),
            input: task.input.value.clone(),
            fine_tuned_instructions: task.fine_tuned_instructions.as_ref().map(|s| s.value.clone()),
            template_lines: template_lines(task),
            fields: specs,
        })
    }

    fn resolve_data(
        &mut self,
        data: &schema::DataFile,
        task: &Option<Task>,
    ) -> (Option<Dataset>, Option<Dataset>) {
        let label_column =
            data.label_column.as_ref().map_or("label".to_string(), |c| c.value.clone());
        let id_column = data.id_column.as_ref().map_or("id".to_string(), |c| c.value.clone());
        let extraction = task.as_ref().filter(|t| t.kind == TaskKind::Extraction);
        if let (Some(_), Some(c)) = (extraction, &data.label_column) {
            self.problem(
                line(c),
                "data.label_column",
                "an extraction task has no label column",
                "remove `label_column`; gold comes from `expected_column` or a column per field",
            );
        }
        if let (None, Some(c)) = (extraction, &data.expected_column) {
            self.problem(
                line(c),
                "data.expected_column",
                "`expected_column` is for extraction tasks",
                "remove it, or use `kind: extraction`",
            );
        }
        let gold = match extraction {
            Some(task) => Gold::Fields {
                fields: task.fields.clone(),
                expected: data
                    .expected_column
                    .as_ref()
                    .map_or("expected".to_string(), |c| c.value.trim().to_string()),
                expected_explicit: data.expected_column.is_some(),
            },
            None => Gold::Label { labels: task.as_ref().map(|t| t.labels.clone()) },
        };
        let columns = Columns {
            label: label_column,
            id: id_column,
            id_explicit: data.id_column.is_some(),
            group: data.group_column.as_ref().map_or("group".to_string(), |c| c.value.clone()),
            group_explicit: data.group_column.is_some(),
        };

        let test_table = match (&data.test, &data.examples) {
            (Some(_), Some(examples)) => {
                self.problem(
                    line(examples),
                    "data.examples",
                    "both `test` and `examples` are given",
                    "keep one of them",
                );
                None
            }
            (Some(source), None) => self.read_source(source, "data.test"),
            (None, Some(examples)) => {
                Some(data::inline_table(&self.path, line(examples), examples.value.clone()))
            }
            (None, None) => {
                self.problem(
                    0,
                    "data.test",
                    "the suite has no test data",
                    "add `data: { test: path/to/test.csv }`",
                );
                None
            }
        };
        let train_table =
            data.train.as_ref().and_then(|source| self.read_source(source, "data.train"));
        let test = test_table.and_then(|t| self.build_dataset(t, &columns, &gold, "test"));
        let train = train_table.and_then(|t| self.build_dataset(t, &columns, &gold, "train"));
        (test, train)
    }

    fn read_source(&mut self, source: &Spanned<DataSource>, key: &str) -> Option<RawTable> {
        match &source.value {
            DataSource::Path(rel) => {
                let base = self.path.parent().unwrap_or(Path::new("."));
                let path = base.join(rel);
                match data::read_table(&path) {
                    Ok(table) => Some(table),
                    Err(mut problem) => {
                        problem.key = Some(format!("{key} (suite line {})", line(source)));
                        self.problems.push(problem);
                        None
                    }
                }
            }
            DataSource::Inline(rows) => {
                Some(data::inline_table(&self.path, line(source), rows.clone()))
            }
        }
    }

    fn build_dataset(
        &mut self,
        table: RawTable,
        columns: &Columns,
        gold: &Gold,
        split: &str,
    ) -> Option<Dataset> {
        let origin = table.origin.clone();
        if table.rows.is_empty() {
            self.problems.push(
                SuiteProblem::new(&origin, format!("the {split} data has no rows"))
                    .hint("add labelled examples"),
            );
            return None;
        }
        let index_of = |name: &str| table.columns.iter().position(|c| c == name);
        let reader = match gold {
            Gold::Label { labels } => {
                let Some(at) = index_of(&columns.label) else {
                    self.problems.push(
                        SuiteProblem::new(
                            &origin,
                            format!("no `{}` column with the gold label", columns.label),
                        )
                        .line(1)
                        .key(&columns.label)
                        .hint(format!(
                            "columns are: {}; set `data.label_column` to the one holding the label",
                            table.columns.join(", ")
                        )),
                    );
                    return None;
                };
                GoldReader::Label { at, labels: labels.as_deref(), unknown: BTreeMap::new() }
            }
            Gold::Fields { fields, expected, expected_explicit } => {
                let source = match index_of(expected) {
                    Some(at) => FieldSource::Object(at),
                    None if *expected_explicit => {
                        self.problems.push(
                            SuiteProblem::new(&origin, format!("no `{expected}` column with the gold objects"))
                                .line(1)
                                .key(expected)
                                .hint(format!("columns are: {}; set `data.expected_column` to the one holding the gold", table.columns.join(", "))),
                        );
                        return None;
                    }
                    None => {
                        let at: Vec<Option<usize>> =
                            fields.iter().map(|f| index_of(&f.name)).collect();
                        let missing: Vec<&str> = fields
                            .iter()
                            .zip(&at)
                            .filter(|(_, a)| a.is_none())
                            .map(|(f, _)| f.name.as_str())
                            .collect();
                        if !missing.is_empty() {
                            // A column of objects with the fields' names is most likely the gold
                            // under another name (SROIE calls it `entities`): say so.
                            let holds_fields = |i: usize| {
                                table.rows.iter().take(20).any(|r| match r.values.get(i) {
                                    Some(Some(serde_json::Value::Object(m))) => {
                                        fields.iter().any(|f| m.contains_key(&f.name))
                                    }
                                    _ => false,
                                })
                            };
                            let suggestion = (0..table.columns.len())
                                .find(|&i| holds_fields(i))
                                .map(|i| &table.columns[i]);
                            for name in &missing {
                                self.problems.push(
                                    SuiteProblem::new(&origin, format!("no gold for field `{name}`: the data has no `{expected}` object and no `{name}` column"))
                                        .line(1)
                                        .key(*name)
                                        .hint(match suggestion {
                                            Some(column) => format!("the `{column}` column holds objects with the fields' names; set `data.expected_column: {column}`"),
                                            None => format!(
                                                "columns are: {}; give each field a column of its own, or put the gold in an object column (set `data.expected_column` if it is not called `{expected}`)",
                                                table.columns.join(", ")
                                            ),
                                        }),
                                );
                            }
                            return None;
                        }
                        FieldSource::Columns(at.into_iter().flatten().collect())
                    }
                };
                GoldReader::Fields {
                    fields,
                    source,
                    expected: expected.clone(),
                    test: split == "test",
                    present: vec![0; fields.len()],
                }
            }
        };
        // A column the suite names must exist; an unnamed one is optional.
        for (name, explicit, what) in [
            (&columns.id, columns.id_explicit, "id"),
            (&columns.group, columns.group_explicit, "group"),
        ] {
            if explicit && !table.columns.contains(name) {
                self.problems.push(
                    SuiteProblem::new(&origin, format!("no `{name}` {what} column"))
                        .line(1)
                        .key(name.as_str())
                        .hint(format!("columns are: {}", table.columns.join(", "))),
                );
                return None;
            }
        }
        let mut reader = reader;
        let gold_at = reader.columns();
        // Both splits' gold columns: a template may name neither.
        for &i in &gold_at {
            if !self.gold_columns.contains(&table.columns[i]) {
                self.gold_columns.push(table.columns[i].clone());
            }
        }
        let has_group = table.columns.contains(&columns.group);
        let has_id = table.columns.contains(&columns.id);
        let (id_at, group_at) = (index_of(&columns.id), index_of(&columns.group));
        // Every item shares one list of column names: the table's, less the gold.
        let kept: Vec<usize> = (0..table.columns.len()).filter(|i| !gold_at.contains(i)).collect();
        let names: Arc<[String]> = kept.iter().map(|&i| table.columns[i].clone()).collect();
        let mut ids: BTreeMap<String, u64> = BTreeMap::new();
        let mut row_problems = Vec::new();
        let mut items = Vec::with_capacity(table.rows.len());
        for (index, mut row) in table.rows.into_iter().enumerate() {
            let Some(label) = reader.read(&mut row, &origin, &columns.label, &mut row_problems)
            else {
                continue;
            };
            let id = if has_id {
                match row.get(id_at).and_then(crate::text::scalar_text) {
                    Some(id) if !id.trim().is_empty() => id.trim().to_string(),
                    _ => {
                        row_problems.push(
                            SuiteProblem::new(
                                &origin,
                                format!("row has an empty `{}`", columns.id),
                            )
                            .line(row.line)
                            .key(&columns.id)
                            .hint(
                                "give every row a unique id, or drop the id column to number rows",
                            ),
                        );
                        continue;
                    }
                }
            } else {
                format!("{split}-{}", index + 1)
            };
            if let Some(first) = ids.get(&id) {
                row_problems.push(
                    SuiteProblem::new(
                        &origin,
                        format!("duplicate id `{id}` (first on line {first})"),
                    )
                    .line(row.line)
                    .key(&columns.id)
                    .hint("ids must be unique within a split"),
                );
                continue;
            }
            ids.insert(id.clone(), row.line);
            let group = if has_group {
                match row
                    .get(group_at)
                    .and_then(crate::text::scalar_text)
                    .map(|g| g.trim().to_string())
                {
                    Some(g) if !g.is_empty() => Some(g),
                    _ => {
                        row_problems.push(
                            SuiteProblem::new(
                                &origin,
                                format!("row has an empty `{}`", columns.group),
                            )
                            .line(row.line)
                            .key(&columns.group)
                            .hint("every row needs its group when the data has a group column"),
                        );
                        continue;
                    }
                }
            } else {
                None
            };
            let values: Box<[Option<serde_json::Value>]> =
                kept.iter().map(|&i| row.values.get_mut(i).and_then(Option::take)).collect();
            items.push(Item {
                id,
                fields: Fields::new(names.clone(), values),
                label,
                line: row.line,
                group,
            });
        }
        self.problems.extend(reader.finish(&origin, &columns.label));
        let total = row_problems.len();
        self.problems.extend(row_problems.into_iter().take(MAX_ROW_PROBLEMS));
        if total > MAX_ROW_PROBLEMS {
            self.problems.push(SuiteProblem::new(
                &origin,
                format!("… and {} more row problems like these", total - MAX_ROW_PROBLEMS),
            ));
        }
        Some(Dataset { origin, items })
    }

    fn resolve_backends(
        &mut self,
        backends: &Spanned<Vec<schema::BackendFile>>,
        task: &Option<Task>,
        train: Option<&Dataset>,
    ) -> Vec<BackendSpec> {
        if backends.value.is_empty() {
            self.problem(
                line(backends),
                "backends",
                "the suite has no backends",
                "add at least one, e.g. `- { id: baseline, provider: local }`",
            );
        }
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, b) in backends.value.iter().enumerate() {
            let key = format!("backends[{i}]");
            let id = b.id.value.trim().to_string();
            let id_line = line(&b.id);
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                self.problem(
                    id_line,
                    &format!("{key}.id"),
                    format!("backend id `{id}` is not allowed"),
                    "use letters, digits, `-`, `_` and `.` only",
                );
            }
            if let Some(first) = seen.insert(id.clone(), id_line) {
                self.problem(
                    id_line,
                    &format!("{key}.id"),
                    format!("backend id `{id}` is used twice (first on line {first})"),
                    "give each backend a unique id",
                );
            }
            if let Some(spec) = self.resolve_backend(b, &key, id, task, train) {
                out.push(spec);
            }
        }
        out
    }

    fn resolve_backend(
        &mut self,
        b: &schema::BackendFile,
        key: &str,
        id: String,
        task: &Option<Task>,
        train: Option<&Dataset>,
    ) -> Option<BackendSpec> {
        let id_line = line(&b.id);
        let concurrency = b.concurrency.as_ref().map_or(DEFAULT_CONCURRENCY, |c| c.value);
        if let Some(c) = &b.concurrency {
            if c.value == 0 {
                self.problem(
                    line(c),
                    &format!("{key}.concurrency"),
                    "concurrency must be at least 1",
                    "",
                );
            }
        }
        let timeout_secs = b.timeout_secs.as_ref().map_or(60.0, |t| t.value);
        if !(timeout_secs.is_finite() && timeout_secs > 0.0) {
            let l = b.timeout_secs.as_ref().map_or(id_line, line);
            self.problem(
                l,
                &format!("{key}.timeout_secs"),
                "timeout must be a positive number of seconds",
                "",
            );
        }
        let max_attempts = b.max_attempts.as_ref().map(|m| m.value);
        if max_attempts == Some(0) {
            self.problem(
                id_line,
                &format!("{key}.max_attempts"),
                "max_attempts must be at least 1",
                "",
            );
        }
        let temperature = b.temperature.as_ref().map_or(0.0, |t| t.value);
        if !(0.0..=2.0).contains(&temperature) {
            let l = b.temperature.as_ref().map_or(id_line, line);
            self.problem(
                l,
                &format!("{key}.temperature"),
                "temperature must be between 0 and 2",
                "",
            );
        }
        let provider = match b.provider.value {
            ProviderKind::Openai => Provider::Openai,
            ProviderKind::Anthropic => Provider::Anthropic,
            ProviderKind::Local => Provider::Local,
            ProviderKind::Replay => Provider::Replay,
        };
        let replay = self.resolve_replay(b, key, provider);
        let strategy = match provider {
            Provider::Local => {
                if let Some(s) = &b.strategy {
                    self.problem(
                        line(s),
                        &format!("{key}.strategy"),
                        "the local backend takes no strategy",
                        "remove `strategy`; it is a trained classifier, not a prompt",
                    );
                }
                for (name, given) in [
                    ("model", b.model.is_some()),
                    ("base_url", b.base_url.is_some()),
                    ("api_key_env", b.api_key_env.is_some()),
                ] {
                    if given {
                        self.problem(
                            id_line,
                            &format!("{key}.{name}"),
                            format!("the local backend takes no `{name}`"),
                            format!("remove `{name}`"),
                        );
                    }
                }
                if task.as_ref().is_some_and(|t| t.kind == TaskKind::Extraction) {
                    self.problem(
                        id_line,
                        &format!("{key}.provider"),
                        "the local backend is a classifier; it cannot answer extraction tasks",
                        "remove this backend, or use an `openai` backend (any OpenAI-compatible server, e.g. vLLM or Ollama on your own machine)",
                    );
                } else if train.is_none() {
                    self.problem(
                        id_line,
                        key,
                        "the local backend needs training data",
                        "add `data.train`",
                    );
                }
                Strategy::Local
            }
            Provider::Replay => match &b.strategy {
                None => Strategy::ZeroShot,
                Some(s) => self.resolve_strategy(s, key, task, train),
            },
            Provider::Openai | Provider::Anthropic => {
                let anthropic = provider == Provider::Anthropic;
                if b.model.as_ref().is_none_or(|m| m.value.trim().is_empty()) {
                    self.problem(
                        id_line,
                        &format!("{key}.model"),
                        format!("an {} backend needs a `model`", provider.as_str()),
                        if anthropic {
                            "e.g. `model: claude-haiku-4-5`"
                        } else {
                            "e.g. `model: gpt-4o-mini`"
                        },
                    );
                }
                if let Some(url) = &b.base_url {
                    let u = url.value.trim();
                    let parsed = reqwest::Url::parse(u);
                    if !(u.starts_with("http://") || u.starts_with("https://")) || parsed.is_err() {
                        self.problem(
                            line(url),
                            &format!("{key}.base_url"),
                            format!("`{u}` is not an http(s) URL"),
                            if anthropic {
                                "e.g. `base_url: https://api.anthropic.com/v1`"
                            } else {
                                "e.g. `base_url: http://localhost:8000/v1`"
                            },
                        );
                    } else if anthropic
                        && parsed.is_ok_and(|p| p.path().trim_matches('/').is_empty())
                    {
                        // Requests go to `{base_url}/messages`: a bare host would miss `/v1`.
                        self.problem(
                            line(url),
                            &format!("{key}.base_url"),
                            format!("`{u}` has no path; an anthropic `base_url` ends with the API version"),
                            format!("e.g. `base_url: {}/v1` (requests go to `{{base_url}}/messages`)", u.trim_end_matches('/')),
                        );
                    }
                }
                if let Some(env) = &b.api_key_env {
                    let name = env.value.trim();
                    if name.is_empty()
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        let example = if anthropic { ANTHROPIC_KEY_ENV } else { OPENAI_KEY_ENV };
                        self.problem(line(env), &format!("{key}.api_key_env"), format!("`{name}` is not an environment variable name"), format!("name the variable that holds the key (e.g. {example}), never the key itself"));
                    }
                }
                // The Messages API takes a temperature from 0 to 1.
                if let Some(t) =
                    b.temperature.as_ref().filter(|t| anthropic && t.value > 1.0 && t.value <= 2.0)
                {
                    self.problem(
                        line(t),
                        &format!("{key}.temperature"),
                        "an anthropic backend's temperature must be between 0 and 1",
                        "Anthropic's API takes 0 to 1 (1 is its default)",
                    );
                }
                match &b.strategy {
                    None => Strategy::ZeroShot,
                    Some(s) => self.resolve_strategy(s, key, task, train),
                }
            }
        };
        let base_url = match provider {
            Provider::Openai | Provider::Anthropic => {
                let default =
                    if provider == Provider::Openai { OPENAI_BASE_URL } else { ANTHROPIC_BASE_URL };
                Some(b.base_url.as_ref().map_or(default.to_string(), |u| {
                    u.value.trim().trim_end_matches('/').to_string()
                }))
            }
            Provider::Local | Provider::Replay => None,
        };
        // The OpenAI key is only assumed for the OpenAI API itself; self-hosted servers usually
        // need none, and sending an OpenAI key to them would leak it. Likewise the Anthropic key
        // goes only to the Anthropic API unless the suite names a variable for another server.
        let api_key_env = match (&b.api_key_env, provider, &b.base_url) {
            (Some(env), _, _) => Some(env.value.trim().to_string()),
            (None, Provider::Openai, None) => Some(OPENAI_KEY_ENV.to_string()),
            (None, Provider::Anthropic, None) => Some(ANTHROPIC_KEY_ENV.to_string()),
            (None, Provider::Anthropic, Some(url))
                if url.value.trim().trim_end_matches('/') == ANTHROPIC_BASE_URL =>
            {
                Some(ANTHROPIC_KEY_ENV.to_string())
            }
            _ => None,
        };
        let price = self.resolve_price(b, key, provider);
        let epochs = b.epochs.as_ref().map_or(1, |e| e.value);
        if let Some(e) = &b.epochs {
            if e.value == 0 || e.value > 100 {
                self.problem(
                    line(e),
                    &format!("{key}.epochs"),
                    "epochs must be between 1 and 100",
                    "",
                );
            } else if e.value > 1 && provider == Provider::Local {
                self.problem(
                    line(e),
                    &format!("{key}.epochs"),
                    "the local backend is deterministic; repeated sampling adds nothing",
                    "remove `epochs`",
                );
            }
        }
        for (name, limit) in [
            ("requests_per_minute", &b.requests_per_minute),
            ("tokens_per_minute", &b.tokens_per_minute),
        ] {
            if let Some(l) = limit {
                if !(l.value.is_finite() && l.value > 0.0) {
                    self.problem(
                        line(l),
                        &format!("{key}.{name}"),
                        format!("{name} must be a positive number"),
                        "",
                    );
                }
            }
        }
        let max_retry_delay = match &b.max_retry_delay_secs {
            Some(d) if d.value.is_finite() && d.value >= 0.0 => {
                Some(Duration::from_secs_f64(d.value))
            }
            Some(d) => {
                self.problem(
                    line(d),
                    &format!("{key}.max_retry_delay_secs"),
                    "the delay must be a number of seconds, 0 or more",
                    "",
                );
                None
            }
            None => None,
        };
        let extraction = task.as_ref().is_some_and(|t| t.kind == TaskKind::Extraction);
        let structured_output = match (&b.structured_output, extraction) {
            (Some(s), false) => {
                self.problem(
                    line(s),
                    &format!("{key}.structured_output"),
                    "`structured_output` applies to extraction tasks",
                    "remove it",
                );
                StructuredOutput::Off
            }
            (Some(s), true) if !matches!(provider, Provider::Openai | Provider::Anthropic) => {
                self.problem(
                    line(s),
                    &format!("{key}.structured_output"),
                    format!("the {} backend takes no `structured_output`", provider.as_str()),
                    "remove it",
                );
                StructuredOutput::Off
            }
            // Anthropic has no JSON mode without a schema: structured output is a tool call.
            (Some(s), true)
                if provider == Provider::Anthropic
                    && s.value == StructuredOutputFile::JsonObject =>
            {
                self.problem(
                    line(s),
                    &format!("{key}.structured_output"),
                    "an anthropic backend has no `json_object` form",
                    "use `json_schema` (the fields' schema as a forced tool call, the default) or `off`",
                );
                StructuredOutput::Off
            }
            // One form only, so nothing to negotiate: `auto` is the tool call.
            (Some(s), true) if provider == Provider::Anthropic => match s.value {
                StructuredOutputFile::Off => StructuredOutput::Off,
                _ => StructuredOutput::JsonSchema,
            },
            (Some(s), true) => match s.value {
                StructuredOutputFile::JsonSchema => StructuredOutput::JsonSchema,
                StructuredOutputFile::JsonObject => StructuredOutput::JsonObject,
                StructuredOutputFile::Off => StructuredOutput::Off,
                StructuredOutputFile::Auto => StructuredOutput::Auto,
            },
            (None, true)
                if provider == Provider::Openai && supports_json_schema(base_url.as_deref()) =>
            {
                StructuredOutput::JsonSchema
            }
            // Tool use is part of the Messages API itself, on every server that speaks it.
            (None, true) if provider == Provider::Anthropic => StructuredOutput::JsonSchema,
            (None, _) => StructuredOutput::Off,
        };
        let trained_on = b.trained_on.as_ref().and_then(|t| {
            let path = self.path.parent().unwrap_or(Path::new(".")).join(t.value.trim());
            if path.is_file() {
                Some(path)
            } else {
                self.problem(
                    line(t),
                    &format!("{key}.trained_on"),
                    format!("cannot find the fine-tuning file `{}`", path.display()),
                    "paths are relative to the suite file's folder",
                );
                None
            }
        });
        let (batch, batch_poll) = self.resolve_batch(b, key, provider);
        Some(BackendSpec {
            batch,
            batch_poll,
            trained_on,
            reasoning: b.reasoning,
            reasoning_tags: b.reasoning_tags.clone().unwrap_or_else(|| {
                super::DEFAULT_REASONING_TAGS.iter().map(|t| t.to_string()).collect()
            }),
            replay,
            structured_output,
            max_retry_delay,
            requests_per_minute: b
                .requests_per_minute
                .as_ref()
                .map(|l| l.value)
                .filter(|v| *v > 0.0),
            tokens_per_minute: b.tokens_per_minute.as_ref().map(|l| l.value).filter(|v| *v > 0.0),
            epochs: epochs.max(1),
            price,
            id,
            provider,
            model: b.model.as_ref().map(|m| m.value.trim().to_string()),
            base_url,
            api_key_env,
            strategy,
            concurrency: concurrency.max(1),
            temperature,
            max_tokens: b.max_tokens.as_ref().map(|m| m.value),
            timeout: Duration::from_secs_f64(if timeout_secs.is_finite() && timeout_secs > 0.0 {
                timeout_secs
            } else {
                60.0
            }),
            max_attempts: max_attempts.map(|m| m.max(1)),
            line: id_line,
        })
    }

    fn resolve_compare(
        &mut self,
        compare: Option<&Spanned<Vec<Vec<String>>>>,
        backends: &[BackendSpec],
    ) -> Vec<(String, String)> {
        let Some(compare) = compare else { return Vec::new() };
        let mut pairs = Vec::new();
        for (i, pair) in compare.value.iter().enumerate() {
            let key = format!("compare[{i}]");
            let [a, b] = pair.as_slice() else {
                self.problem(
                    line(compare),
                    &key,
                    "each comparison is a pair of backend ids",
                    "e.g. `compare: [[mini-zero, mini-5shot]]`",
                );
                continue;
            };
            for id in [a, b] {
                if !backends.iter().any(|s| &s.id == id) {
                    self.problem(
                        line(compare),
                        &key,
                        format!("no backend has id `{id}`"),
                        "use ids from `backends`",
                    );
                }
            }
            if a == b {
                self.problem(
                    line(compare),
                    &key,
                    "a backend compared with itself",
                    "name two different backends",
                );
            }
            pairs.push((a.clone(), b.clone()));
        }
        pairs
    }

    /// `batch` and `batch_poll_secs`: only for a provider with a batch API, and a poll interval
    /// that is a positive number of seconds.
    fn resolve_batch(
        &mut self,
        b: &schema::BackendFile,
        key: &str,
        provider: Provider,
    ) -> (bool, Option<Duration>) {
        let batch = b.batch.as_ref().is_some_and(|v| v.value);
        if !provider.has_batch_api() {
            for (name, given) in [
                ("batch", b.batch.as_ref().map(line)),
                ("batch_poll_secs", b.batch_poll_secs.as_ref().map(line)),
            ] {
                if let Some(l) = given {
                    self.problem(
                        l,
                        &format!("{key}.{name}"),
                        format!("the {} backend has no batch API", provider.as_str()),
                        format!(
                            "remove `{name}`; batch mode is for backends whose provider has a batch API (openai, anthropic)"
                        ),
                    );
                }
            }
            return (false, None);
        }
        let poll = match &b.batch_poll_secs {
            Some(p) if p.value.is_finite() && p.value > 0.0 => {
                Some(Duration::from_secs_f64(p.value))
            }
            Some(p) => {
                self.problem(
                    line(p),
                    &format!("{key}.batch_poll_secs"),
                    "the poll interval must be a positive number of seconds",
                    "e.g. `batch_poll_secs: 30`",
                );
                None
            }
            None => None,
        };
        (batch, poll)
    }

    /// `replay:` for a `replay` backend: the file must exist; the other providers take none, and
    /// a replay backend takes no server settings.
    fn resolve_replay(
        &mut self,
        b: &schema::BackendFile,
        key: &str,
        provider: Provider,
    ) -> Option<ReplaySource> {
        let id_line = line(&b.id);
        if provider != Provider::Replay {
            if let Some(r) = &b.replay {
                self.problem(
                    line(r),
                    &format!("{key}.replay"),
                    format!("the {} backend takes no `replay`", provider.as_str()),
                    "use `provider: replay` to score replies from a file",
                );
            }
            return None;
        }
        for (name, given) in
            [("base_url", b.base_url.is_some()), ("api_key_env", b.api_key_env.is_some())]
        {
            if given {
                self.problem(
                    id_line,
                    &format!("{key}.{name}"),
                    format!("a replay backend takes no `{name}`: it sends no request"),
                    format!("remove `{name}`"),
                );
            }
        }
        let Some(r) = &b.replay else {
            self.problem(
                id_line,
                &format!("{key}.replay"),
                "a replay backend needs `replay: { file: ... }`",
                "e.g. `replay: { file: ../reports/my-suite/20261201T100000Z/records.jsonl, from_backend: mini-zero }`, or a predictions CSV with columns id, reply",
            );
            return None;
        };
        let rel = r.value.file.value.trim();
        let base = self.path.parent().unwrap_or(Path::new("."));
        let file = base.join(rel);
        if rel.is_empty() || !file.exists() {
            self.problem(
                line(&r.value.file),
                &format!("{key}.replay.file"),
                format!("`{}` does not exist", file.display()),
                "the path is relative to the suite file",
            );
            return None;
        }
        Some(ReplaySource {
            file,
            from_backend: r.value.from_backend.as_ref().map(|f| f.value.trim().to_string()),
        })
    }

    /// The suite's price if it gives one, else the built-in table's for the model, else unknown.
    fn resolve_price(
        &mut self,
        b: &schema::BackendFile,
        key: &str,
        provider: Provider,
    ) -> Option<Price> {
        let key = format!("{key}.pricing");
        if let Some(p) = &b.pricing {
            let f = &p.value;
            let per_token = f.input_per_mtok.is_some()
                || f.output_per_mtok.is_some()
                || f.cached_input_per_mtok.is_some()
                || f.cache_write_per_mtok.is_some();
            let fixed = f.monthly_usd.is_some() || f.capacity_rps.is_some();
            let pricing = match (per_token, fixed) {
                (true, true) => {
                    self.problem(
                        line(p),
                        &key,
                        "pricing mixes per-token and fixed prices",
                        "give either input_per_mtok/output_per_mtok or monthly_usd/capacity_rps",
                    );
                    return None;
                }
                (true, false) => match (f.input_per_mtok, f.output_per_mtok) {
                    (Some(input), Some(output)) => Pricing::PerToken {
                        input_per_mtok: input,
                        output_per_mtok: output,
                        cached_input_per_mtok: f.cached_input_per_mtok,
                        cache_write_per_mtok: f.cache_write_per_mtok,
                    },
                    _ => {
                        self.problem(
                            line(p),
                            &key,
                            "per-token pricing needs both input_per_mtok and output_per_mtok",
                            "prices are USD per million tokens",
                        );
                        return None;
                    }
                },
                (false, true) => match f.monthly_usd {
                    Some(monthly) => {
                        Pricing::Fixed { monthly_usd: monthly, capacity_rps: f.capacity_rps }
                    }
                    None => {
                        self.problem(
                            line(p),
                            &key,
                            "fixed pricing needs monthly_usd",
                            "e.g. `pricing: { monthly_usd: 450, capacity_rps: 25 }`",
                        );
                        return None;
                    }
                },
                (false, false) => {
                    self.problem(
                        line(p),
                        &key,
                        "pricing is empty",
                        "give input_per_mtok and output_per_mtok, or monthly_usd",
                    );
                    return None;
                }
            };
            if let Err(e) = pricing.validate() {
                self.problem(
                    line(p),
                    &key,
                    format!("invalid price: {e}"),
                    "prices must be finite and not negative",
                );
                return None;
            }
            return Some(Price { pricing, origin: "suite".into(), as_of: None, source: None });
        }
        // A replay costs nothing to run; its price is only what the suite says it would cost.
        if !matches!(provider, Provider::Openai | Provider::Anthropic) {
            return None;
        }
        let model = b.model.as_ref()?.value.trim();
        PriceTable::builtin().lookup(model).map(|entry| Price {
            pricing: entry.pricing.clone(),
            origin: "built-in".into(),
            as_of: Some(entry.as_of.clone()),
            source: Some(entry.source.clone()),
        })
    }

    fn resolve_strategy(
        &mut self,
        s: &Spanned<StrategyFile>,
        key: &str,
        task: &Option<Task>,
        train: Option<&Dataset>,
    ) -> Strategy {
        let key = format!("{key}.strategy");
        match &s.value {
            StrategyFile::ZeroShot => Strategy::ZeroShot,
            StrategyFile::FineTuned => Strategy::FineTuned,
            StrategyFile::FewShot(f) => self.resolve_few_shot(f, line(s), &key, task, train),
        }
    }

    fn resolve_few_shot(
        &mut self,
        f: &FewShotFile,
        l: u64,
        key: &str,
        task: &Option<Task>,
        train: Option<&Dataset>,
    ) -> Strategy {
        let extraction = task.as_ref().is_some_and(|t| t.kind == TaskKind::Extraction);
        // Extraction has no classes to stratify by: its demonstrations are drawn at random.
        let default = if f.ids.is_some() {
            Selection::Fixed
        } else if extraction {
            Selection::Random
        } else {
            Selection::Stratified
        };
        let select = f.select.unwrap_or(default);
        if extraction && select == Selection::Stratified {
            self.problem(
                l,
                &format!("{key}.select"),
                "`stratified` needs classes; an extraction task has none",
                "use `select: random` or `select: fixed`",
            );
        }
        let Some(train) = train else {
            self.problem(l, key, "few-shot needs a pool of demonstrations", "add `data.train`");
            return Strategy::ZeroShot;
        };
        let ids = f.ids.clone().unwrap_or_default();
        let k = match select {
            Selection::Fixed => {
                if ids.is_empty() {
                    self.problem(
                        l,
                        &format!("{key}.ids"),
                        "`select: fixed` needs the train ids to show",
                        "e.g. `ids: [tr-0001, tr-0042]`",
                    );
                }
                let known: HashSet<&str> = train.items.iter().map(|i| i.id.as_str()).collect();
                for id in &ids {
                    if !known.contains(id.as_str()) {
                        self.problem(
                            l,
                            &format!("{key}.ids"),
                            format!("train has no item with id `{id}`"),
                            format!("ids come from {}", train.origin.display()),
                        );
                    }
                }
                if let Some(k) = f.k {
                    if k != ids.len() {
                        self.problem(
                            l,
                            &format!("{key}.k"),
                            format!("k is {k} but {} ids are listed", ids.len()),
                            "drop `k` or make it match",
                        );
                    }
                }
                ids.len()
            }
            Selection::Random | Selection::Stratified | Selection::Similar => {
                if !ids.is_empty() {
                    self.problem(
                        l,
                        &format!("{key}.ids"),
                        "`ids` only applies to `select: fixed`",
                        "remove `ids` or use `select: fixed`",
                    );
                }
                let k = f.k.unwrap_or(5);
                if k == 0 {
                    self.problem(
                        l,
                        &format!("{key}.k"),
                        "k must be at least 1",
                        "use zero-shot for no demonstrations",
                    );
                } else if k >= train.items.len() {
                    self.problem(
                        l,
                        &format!("{key}.k"),
                        format!("k is {k} but train has only {} items", train.items.len()),
                        "use a smaller k",
                    );
                }
                k
            }
        };
        Strategy::FewShot(FewShot { k, select, seed: f.seed.unwrap_or(0), ids })
    }
}

/// An undeclared label's problem lists the declared labels only when there are at most this many.
const MAX_LABELS_LISTED: usize = 10;

/// Where a split's gold answers come from.
enum Gold {
    /// Classification: the label column, checked against the declared labels.
    Label { labels: Option<Vec<String>> },
    /// Extraction: an object column, or else one column per field.
    Fields { fields: Vec<FieldSpec>, expected: String, expected_explicit: bool },
}

enum FieldSource {
    /// The column holding each row's gold object.
    Object(usize),
    /// The column of each field, in field order.
    Columns(Vec<usize>),
}

/// Reads each row's gold answer and collects what is wrong with it.
enum GoldReader<'a> {
    Label {
        at: usize,
        labels: Option<&'a [String]>,
        /// Undeclared labels, grouped: the first line and the number of rows of each.
        unknown: BTreeMap<String, (u64, usize)>,
    },
    Fields {
        fields: &'a [FieldSpec],
        source: FieldSource,
        expected: String,
        /// Required fields must have gold in the test split; a demonstration may lack a value.
        test: bool,
        /// Rows with a gold value, per field.
        present: Vec<usize>,
    },
}

impl GoldReader<'_> {
    /// The columns that hold the gold, which prompts must not see.
    fn columns(&self) -> Vec<usize> {
        match self {
            GoldReader::Label { at, .. } => vec![*at],
            GoldReader::Fields { source: FieldSource::Object(at), .. } => vec![*at],
            GoldReader::Fields { source: FieldSource::Columns(at), .. } => at.clone(),
        }
    }

    /// The row's gold as the item's `label` text, taken out of the row; `None` after recording a
    /// problem.
    fn read(
        &mut self,
        row: &mut data::RawRow,
        origin: &Path,
        label_column: &str,
        problems: &mut Vec<SuiteProblem>,
    ) -> Option<String> {
        match self {
            GoldReader::Label { at, labels, unknown } => {
                let label = row
                    .take(Some(*at))
                    .as_ref()
                    .and_then(crate::text::scalar_text)
                    .map(|s| s.trim().to_string());
                let Some(label) = label.filter(|l| !l.is_empty()) else {
                    problems.push(
                        SuiteProblem::new(origin, format!("row has no `{label_column}` value"))
                            .line(row.line)
                            .key(label_column)
                            .hint("every row needs its gold label"),
                    );
                    return None;
                };
                if labels.is_some_and(|labels| !labels.contains(&label)) {
                    unknown.entry(label.clone()).or_insert((row.line, 0)).1 += 1;
                }
                Some(label)
            }
            GoldReader::Fields { fields, source, expected, test, present } => {
                // The key a problem names: `expected.total` for an object column, `total` for a column.
                let (raw, prefix): (Vec<serde_json::Value>, Option<&str>) = match source {
                    FieldSource::Object(at) => match row.take(Some(*at)) {
                        Some(serde_json::Value::Object(mut map)) => {
                            let values = fields
                                .iter()
                                .map(|f| map.remove(&f.name).unwrap_or(serde_json::Value::Null))
                                .collect();
                            (values, Some(expected.as_str()))
                        }
                        other => {
                            let what = match other {
                                None | Some(serde_json::Value::Null) => "is missing".to_string(),
                                Some(serde_json::Value::String(_)) => {
                                    "is text, not a JSON object".to_string()
                                }
                                Some(_) => "is not a JSON object".to_string(),
                            };
                            problems.push(
                                SuiteProblem::new(origin, format!("the gold `{expected}` {what}"))
                                    .line(row.line)
                                    .key(expected.as_str())
                                    .hint("give every row its gold as an object, e.g. {\"total\": \"9.90\", \"date\": \"2018-03-14\"}"),
                            );
                            return None;
                        }
                    },
                    FieldSource::Columns(at) => {
                        let values = at
                            .iter()
                            .map(|&i| row.take(Some(i)).unwrap_or(serde_json::Value::Null))
                            .collect();
                        (values, None)
                    }
                };
                let key_of =
                    |name: &str| prefix.map_or(name.to_string(), |p| format!("{p}.{name}"));
                let mut shown = Vec::with_capacity(fields.len());
                let mut ok = true;
                for (i, (f, value)) in fields.iter().zip(&raw).enumerate() {
                    match crate::field::value::canonicalize(value, &f.ty) {
                        Ok(canonical) => {
                            if canonical.is_some() {
                                present[i] += 1;
                            } else if f.required && *test {
                                problems.push(
                                    SuiteProblem::new(origin, format!("the gold `{}` is empty, but the field is required", f.name))
                                        .line(row.line)
                                        .key(key_of(&f.name))
                                        .hint("give every test row a value, or declare the field with `required: false`"),
                                );
                                ok = false;
                            }
                            shown.push(crate::field::value::display_value(
                                value,
                                canonical.as_ref(),
                            ));
                        }
                        Err(e) => {
                            problems.push(
                                SuiteProblem::new(
                                    origin,
                                    format!(
                                        "the gold `{}` does not fit its type `{}`: {e}",
                                        f.name,
                                        f.ty.name()
                                    ),
                                )
                                .line(row.line)
                                .key(key_of(&f.name))
                                .hint(
                                    "fix the value, or change the field's `type` in `task.fields`",
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then(|| crate::field::value::object_text(fields, shown))
            }
        }
    }

    /// Problems found across rows: undeclared labels, and fields no test row has gold for.
    fn finish(self, origin: &Path, label_column: &str) -> Vec<SuiteProblem> {
        match self {
            GoldReader::Label { labels, unknown, .. } => unknown
                .into_iter()
                .map(|(label, (first_line, rows))| {
                    let declared = labels.unwrap_or_default();
                    let rows = if rows == 1 { "1 row".to_string() } else { format!("{rows} rows, the first shown") };
                    // A typo gets the label it was meant to be; the whole list only when short.
                    let hint = match crate::text::closest(&label, declared) {
                        Some(near) => format!("did you mean `{near}`? Fix the data, or add `{label}` to `task.labels`"),
                        None if declared.len() <= MAX_LABELS_LISTED => format!("add it to `task.labels` or fix the data; declared labels are: {}", declared.join(", ")),
                        None => format!("add it to `task.labels` or fix the data ({} labels are declared under `task.labels`)", declared.len()),
                    };
                    SuiteProblem::new(origin, format!("label `{label}` is not one of the task's labels ({rows})"))
                        .line(first_line)
                        .key(label_column)
                        .hint(hint)
                })
                .collect(),
            GoldReader::Fields { fields, present, test: true, expected, source } => fields
                .iter()
                .zip(present)
                .filter(|(_, n)| *n == 0)
                .map(|(f, _)| {
                    let key = match source {
                        FieldSource::Object(_) => format!("{expected}.{}", f.name),
                        FieldSource::Columns(_) => f.name.clone(),
                    };
                    SuiteProblem::new(origin, format!("no test row has a gold value for field `{}`", f.name))
                        .line(1)
                        .key(key)
                        .hint("check that the field's name matches the key or column in the data; a field no item has cannot be scored")
                })
                .collect(),
            GoldReader::Fields { .. } => Vec::new(),
        }
    }
}

struct Columns {
    label: String,
    id: String,
    id_explicit: bool,
    group: String,
    group_explicit: bool,
}

/// Whether a backend that does not set `structured_output` asks this server for a JSON schema: only servers known to
/// accept OpenAI's `response_format: json_schema` (OpenAI and Azure OpenAI). Self-hosted servers
/// differ by version and flags, so they get the instructions and the reply is parsed, unless
/// the suite says `structured_output: on`.
fn supports_json_schema(base_url: Option<&str>) -> bool {
    let Some(host) = base_url
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    host == "api.openai.com" || host.ends_with(".openai.azure.com")
}

fn line<T>(s: &Spanned<T>) -> u64 {
    s.referenced.line()
}

fn template_lines(task: &schema::TaskFile) -> TemplateLines {
    TemplateLines {
        instructions: task.instructions.as_ref().map_or(0, line),
        input: line(&task.input),
        fine_tuned_instructions: task.fine_tuned_instructions.as_ref().map(line),
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const VALID: &str = r#"schema_version: 1
name: fuzz
task:
  kind: classification
  labels: [billing, technical, other]
  instructions: "Pick one of {{ labels | join(', ') }}."
  input: "Ticket: {{ text }}"
data:
  test:
    - { id: a, text: "I was charged twice", label: billing }
    - { id: b, text: "The app crashes {{ x }}", label: technical }
    - { id: c, text: "Hello", label: other }
  train:
    - { text: "Invoice missing", label: billing }
    - { text: "Login page errors", label: technical }
    - { text: "Thanks!", label: other }
    - { text: "Refund the charge", label: billing }
backends:
  - id: baseline
    provider: local
  - id: mini
    provider: openai
    model: gpt-4o-mini
    strategy: { few-shot: { k: 2, select: stratified, seed: 7 } }
    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
volume: { requests_per_day: 1000 }
"#;

    #[test]
    fn the_cache_max_age_is_a_duration() {
        assert_eq!(load_str(Path::new("fuzz.yaml"), VALID).unwrap().cache_max_age, None);
        let text = format!("{VALID}cache: {{ max_age: 7d }}\n");
        let suite = load_str(Path::new("fuzz.yaml"), &text).unwrap();
        assert_eq!(suite.cache_max_age, Some(Duration::from_secs(7 * 86_400)));
        let text = format!("{VALID}cache: {{ max_age: 3600 }}\n");
        let suite = load_str(Path::new("fuzz.yaml"), &text).unwrap();
        assert_eq!(suite.cache_max_age, Some(Duration::from_secs(3600)));
        let text = format!("{VALID}cache: {{ max_age: a week }}\n");
        let errors = load_str(Path::new("fuzz.yaml"), &text).unwrap_err().to_string();
        assert!(errors.contains("cache.max_age") && errors.contains("7d"), "{errors}");
    }

    #[test]
    fn the_decision_margin_defaults_to_two_points_and_is_checked() {
        let suite = load_str(Path::new("fuzz.yaml"), VALID).unwrap();
        assert_eq!(suite.margin, 0.02);
        let text = format!("{VALID}decision: {{ margin: 0.05 }}\n");
        assert_eq!(load_str(Path::new("fuzz.yaml"), &text).unwrap().margin, 0.05);
        let text = format!("{VALID}decision: {{ margin: 0.7 }}\n");
        let errors = load_str(Path::new("fuzz.yaml"), &text).unwrap_err().to_string();
        assert!(errors.contains("decision.margin"), "{errors}");
        let text = format!("{VALID}decision: {{ margn: 0.05 }}\n");
        let errors = load_str(Path::new("fuzz.yaml"), &text).unwrap_err().to_string();
        assert!(errors.contains("margn"), "an unknown key is an error: {errors}");
    }

    #[test]
    fn the_fuzz_seed_suite_is_valid() {
        let suite = load_str(Path::new("fuzz.yaml"), VALID).unwrap();
        assert_eq!(suite.test.items.len(), 3);
        assert_eq!(suite.backends.len(), 2);
    }

    /// Thousands of random edits of a valid suite: every one loads or fails with located
    /// problems; none panics.
    #[test]
    fn mutated_suites_never_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let alphabet: Vec<char> =
            "{}[]:-\"'\n\t #&*!|>%@`,?\\0123456789abcxyzé🙂\u{0}".chars().collect();
        for _ in 0..3000 {
            let mut text: Vec<char> = VALID.chars().collect();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..text.len());
                match rng.random_range(0..4) {
                    0 => {
                        text.remove(at);
                    }
                    1 => text.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                    2 => {
                        let end = (at + rng.random_range(1..40)).min(text.len());
                        text.drain(at..end);
                    }
                    _ => {
                        let end = (at + rng.random_range(1..40)).min(text.len());
                        let copy: Vec<char> = text[at..end].to_vec();
                        let to = rng.random_range(0..text.len());
                        text.splice(to..to, copy);
                    }
                }
            }
            let text: String = text.into_iter().collect();
            if let Err(errors) = load_str(Path::new("fuzz.yaml"), &text) {
                assert!(!errors.0.is_empty());
                for problem in &errors.0 {
                    assert!(!problem.message.is_empty(), "an empty message for:\n{text}");
                }
            }
        }
    }

    /// Random bytes as CSV and JSONL data files: an error naming the file, never a panic.
    #[test]
    fn random_data_files_never_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let dir = std::env::temp_dir().join(format!("evalgate-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pieces: [&[u8]; 10] = [
            b"id,text,label\n",
            b"a,b,c\n",
            b"\"",
            b",",
            b"\n",
            b"\xff\xfe",
            b"{\"text\": 1}",
            b"label",
            b"billing",
            b"\r\n",
        ];
        for i in 0..400 {
            let mut bytes = Vec::new();
            for _ in 0..rng.random_range(0..30) {
                bytes.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
            }
            let ext = if i % 2 == 0 { "csv" } else { "jsonl" };
            let path = dir.join(format!("test.{ext}"));
            std::fs::write(&path, &bytes).unwrap();
            let suite = VALID.replace(
                "  test:\n    - { id: a, text: \"I was charged twice\", label: billing }\n    - { id: b, text: \"The app crashes {{ x }}\", label: technical }\n    - { id: c, text: \"Hello\", label: other }\n",
                &format!("  test: test.{ext}\n"),
            );
            if let Err(errors) = load_str(&dir.join("suite.yaml"), &suite) {
                assert!(errors.0.iter().all(|p| !p.message.is_empty()));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod line_numbers {
    use super::*;

    /// CRLF files (Excel exports, banking77) must name the same lines as LF ones.
    #[test]
    fn data_errors_name_the_right_line_with_crlf_and_quoted_line_breaks() {
        let dir = std::env::temp_dir().join(format!("evalgate-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let suite = "schema_version: 1\nname: t\ntask: { kind: classification, labels: [x, z], instructions: \"x\", input: \"{{ text }}\" }\ndata: { test: t.csv }\nbackends: [{ id: b, provider: local }]\n";
        for (csv, line) in [
            ("id,text,label\r\na,hello,x\r\nb,bye,y\r\n", 3),
            ("id,text,label\na,hello,x\nb,bye,y\n", 3),
            ("id,text,label\n\"a\",\"two\nlines\",x\nb,bye,y\n", 4),
        ] {
            std::fs::write(dir.join("t.csv"), csv).unwrap();
            let errors = load_str(&dir.join("suite.yaml"), suite).unwrap_err();
            let problem = errors
                .0
                .iter()
                .find(|p| p.message.contains("`y`"))
                .expect("the undeclared label is reported");
            assert_eq!(problem.line, Some(line), "{csv:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
