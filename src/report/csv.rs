//! `records.csv`: one row per item and backend (per sample, with `epochs` > 1), for spreadsheets.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::journal::{self, Record, RunMeta};

const HEADER: [&str; 15] = [
    "id",
    "backend",
    "gold",
    "answer",
    "correct",
    "invalid",
    "error_kind",
    "error_status",
    "error_message",
    "tokens_input",
    "tokens_output",
    "tokens_estimated",
    "latency_ms",
    "attempts",
    "reply",
];

/// Writes `records.csv` from the journal in `dir`, streaming. When a backend of the run takes
/// several samples per item, an `epoch` column (0-based, as in `records.jsonl`) follows `backend`;
/// without one the columns stay as they were.
pub fn write(dir: &Path, meta: &RunMeta) -> Result<()> {
    let path = dir.join("records.csv");
    let mut out = csv::Writer::from_path(&path).map_err(|e| Error::io(&path, e.into()))?;
    let fail = |e: csv::Error| Error::io(dir.join("records.csv"), e.into());
    let sampled = meta.backends.iter().any(|b| b.epochs > 1);
    let mut header: Vec<&str> = HEADER.to_vec();
    if sampled {
        header.insert(2, "epoch");
    }
    out.write_record(&header).map_err(fail)?;
    // A resumed run may hold several records for one sample (a failure, then an answer); like
    // scoring, the CSV keeps the last. Each sample of an item is a row of its own.
    #[derive(serde::Deserialize)]
    struct Key {
        id: String,
        backend: String,
        #[serde(default)]
        epoch: u32,
    }
    let mut last: HashMap<(String, String, u32), usize> = HashMap::new();
    let mut n = 0usize;
    journal::read_records(dir, |k: Key| {
        last.insert((k.backend, k.id, k.epoch), n);
        n += 1;
    })?;
    let mut result = Ok(());
    let mut index = 0usize;
    journal::read_records(dir, |r: Record| {
        let this = index;
        index += 1;
        if result.is_err() || last.get(&(r.backend.clone(), r.id.clone(), r.epoch)) != Some(&this) {
            return;
        }
        let error = r.error.as_ref();
        let mut row = vec![
            r.id,
            r.backend,
            r.gold,
            r.answer.unwrap_or_default(),
            r.correct.map_or(String::new(), |c| c.to_string()),
            r.invalid.to_string(),
            error.map_or(String::new(), |e| e.kind.clone()),
            error.and_then(|e| e.status).map_or(String::new(), |s| s.to_string()),
            error.map_or(String::new(), |e| e.message.clone()),
            r.tokens.input.to_string(),
            r.tokens.output.to_string(),
            r.tokens.estimated.to_string(),
            format!("{:.3}", r.latency_ms),
            r.attempts.to_string(),
            r.reply.unwrap_or_default(),
        ];
        if sampled {
            row.insert(2, r.epoch.to_string());
        }
        result = out.write_record(&row).map_err(fail);
    })?;
    result?;
    out.flush().map_err(|e| Error::io(&path, e))
}
