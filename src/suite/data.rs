//! Reading labelled rows from CSV, TSV, JSONL or inline suite rows into a uniform table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::SuiteProblem;

/// One row as read, before the label and id columns are taken out; values aligned with the
/// table's columns (`None` where a JSONL row lacks a key).
#[derive(Debug)]
pub(crate) struct RawRow {
    pub line: u64,
    pub values: Vec<Option<Value>>,
}

/// Rows of one data source with the columns they may have.
#[derive(Debug)]
pub(crate) struct RawTable {
    pub origin: PathBuf,
    pub columns: Vec<String>,
    pub rows: Vec<RawRow>,
}

/// Reads a data file, choosing the format by extension.
pub(crate) fn read_table(path: &Path) -> Result<RawTable, SuiteProblem> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "csv" => read_delimited(path, b','),
        "tsv" => read_delimited(path, b'\t'),
        "jsonl" | "ndjson" => read_jsonl(path),
        _ => Err(SuiteProblem::new(path, "unsupported data file type")
            .hint("use a .csv, .tsv or .jsonl file (one JSON object per line)")),
    }
}

fn open(path: &Path) -> Result<std::fs::File, SuiteProblem> {
    std::fs::File::open(path).map_err(|e| {
        let problem = SuiteProblem::new(path, format!("cannot open data file: {e}"));
        if e.kind() == std::io::ErrorKind::NotFound {
            problem.hint("data paths are relative to the suite file's folder")
        } else {
            problem
        }
    })
}

fn read_delimited(path: &Path, delimiter: u8) -> Result<RawTable, SuiteProblem> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut open(path)?, &mut bytes)
        .map_err(|e| SuiteProblem::new(path, format!("cannot read data file: {e}")))?;
    // Line numbers from byte offsets: the csv crate's own line count is off by one after
    // CRLF line endings (Windows and Excel exports, banking77).
    let newlines: Vec<usize> =
        bytes.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i).collect();
    let line_at = |byte: u64| {
        // A record's position can point at the line break that ends the previous one.
        let mut at = byte as usize;
        while at < bytes.len() && (bytes[at] == b'\n' || bytes[at] == b'\r') {
            at += 1;
        }
        newlines.partition_point(|&n| n < at) as u64 + 1
    };
    let csv_problem = |e: csv::Error| {
        let line = e.position().map(|p| line_at(p.byte()));
        csv_problem(path, e).line(line)
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(&bytes[..]);
    let headers = reader.headers().map_err(csv_problem)?.clone();
    let mut columns: Vec<String> = Vec::with_capacity(headers.len());
    for (i, header) in headers.iter().enumerate() {
        // A UTF-8 byte-order mark (Excel's CSV export) is not part of the first column's name.
        let name = if i == 0 { header.trim_start_matches('\u{feff}') } else { header };
        let name = name.trim().to_string();
        if name.is_empty() {
            return Err(SuiteProblem::new(path, format!("column {} has an empty header", i + 1))
                .line(1)
                .hint("give every column a name in the header row"));
        }
        if columns.contains(&name) {
            return Err(SuiteProblem::new(
                path,
                format!("column `{name}` appears twice in the header"),
            )
            .line(1)
            .hint("column names must be unique"));
        }
        columns.push(name);
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_problem)?;
        let line = record.position().map_or(0, |p| line_at(p.byte()));
        let values = record.iter().map(|v| Some(Value::String(v.to_string()))).collect();
        rows.push(RawRow { line, values });
    }
    Ok(RawTable { origin: path.to_path_buf(), columns, rows })
}

fn csv_problem(path: &Path, error: csv::Error) -> SuiteProblem {
    let line = error.position().map(|p| p.line());
    let message = match error.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("row has {len} fields but the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "text is not valid UTF-8".to_string(),
        _ => format!("cannot read CSV: {error}"),
    };
    SuiteProblem::new(path, message)
        .line(line)
        .hint("quote fields that contain the delimiter, quotes or line breaks (RFC 4180)")
}

fn read_jsonl(path: &Path) -> Result<RawTable, SuiteProblem> {
    let text = std::fs::read(path)
        .map_err(|e| SuiteProblem::new(path, format!("cannot read data file: {e}")))?;
    let text = String::from_utf8(text).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        SuiteProblem::new(path, "text is not valid UTF-8").line(line as u64)
    })?;
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for (i, line_text) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let trimmed = line_text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(trimmed).map_err(|e| {
            SuiteProblem::new(path, format!("invalid JSON: {e}"))
                .line(line)
                .hint("each line must be one JSON object")
        })?;
        let Value::Object(map) = value else {
            return Err(SuiteProblem::new(path, "line is not a JSON object").line(line).hint(
                "each line must be one JSON object, like {\"text\": \"...\", \"label\": \"...\"}",
            ));
        };
        rows.push(RawRow { line, values: align(&mut columns, map) });
    }
    Ok(RawTable { origin: path.to_path_buf(), columns, rows })
}

/// Rows written inline in the suite; they all carry the line of the list that holds them.
pub(crate) fn inline_table(
    suite_path: &Path,
    line: u64,
    rows: Vec<BTreeMap<String, Value>>,
) -> RawTable {
    let mut columns: Vec<String> = Vec::new();
    let rows =
        rows.into_iter().map(|row| RawRow { line, values: align(&mut columns, row) }).collect();
    RawTable { origin: suite_path.to_path_buf(), columns, rows }
}

/// A keyed row as values aligned with `columns`, adding columns it is the first to have. Rows
/// read earlier are shorter; [`RawRow::take`] reads past their end as absent.
fn align(
    columns: &mut Vec<String>,
    row: impl IntoIterator<Item = (String, Value)>,
) -> Vec<Option<Value>> {
    let mut values: Vec<Option<Value>> = vec![None; columns.len()];
    for (key, value) in row {
        let i = match columns.iter().position(|c| *c == key) {
            Some(i) => i,
            None => {
                columns.push(key);
                values.push(None);
                columns.len() - 1
            }
        };
        values[i] = Some(value);
    }
    values
}

impl RawRow {
    /// The value of column `i`, taken out of the row.
    pub(crate) fn take(&mut self, i: Option<usize>) -> Option<Value> {
        self.values.get_mut(i?)?.take()
    }

    pub(crate) fn get(&self, i: Option<usize>) -> Option<&Value> {
        self.values.get(i?)?.as_ref()
    }
}
