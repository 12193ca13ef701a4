//! `records.csv`: one row per item and backend (per sample, with `epochs` > 1), for spreadsheets.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal::{self, Record, RunMeta};

/// The file name.
pub const RECORDS_CSV: &str = "records.csv";

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

/// Writes `records.csv` from the journal in `dir` (the report step feeds a [`RowWriter`] from its
/// own single pass instead).
pub fn write(dir: &Path, meta: &RunMeta) -> Result<()> {
    let mut rows = RowWriter::create(dir, meta)?;
    journal::read_records(dir, |r: Record| rows.add(r))?;
    rows.finish()
}

/// Streams `records.csv` one journal record at a time. When a backend of the run takes several
/// samples per item, an `epoch` column (0-based, as in `records.jsonl`) follows `backend`;
/// without one the columns stay as they were.
///
/// A resumed run may hold several records for one sample (a failure, then an answer); like
/// scoring, the CSV keeps the last, in the place of the last. Rows are written as they come, with
/// their byte ranges; only when a sample was recorded twice is the file copied once more without
/// the rows that were replaced, so memory stays flat whatever the run's size.
pub struct RowWriter<'m> {
    sampled: bool,
    path: PathBuf,
    tmp: PathBuf,
    out: csv::Writer<CountingWriter>,
    /// Byte range of each row written, and whether a later record replaced it.
    rows: Vec<(u64, u64, bool)>,
    /// Row of each (backend, item, epoch) written so far, by position in `run.json`.
    row_of: HashMap<(usize, usize, u32), usize>,
    backend_index: HashMap<&'m str, usize>,
    item_index: HashMap<&'m str, usize>,
    replaced: bool,
    error: Option<Error>,
}

impl<'m> RowWriter<'m> {
    pub fn create(dir: &Path, meta: &'m RunMeta) -> Result<Self> {
        let path = dir.join(RECORDS_CSV);
        let tmp = dir.join(format!("{RECORDS_CSV}.tmp"));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut out =
            csv::Writer::from_writer(CountingWriter { inner: BufWriter::new(file), written: 0 });
        let sampled = meta.backends.iter().any(|b| b.epochs > 1);
        let mut header: Vec<&str> = HEADER.to_vec();
        if sampled {
            header.insert(2, "epoch");
        }
        out.write_record(&header).map_err(|e| Error::io(&tmp, e.into()))?;
        out.flush().map_err(|e| Error::io(&tmp, e))?;
        let header_end = out.get_ref().written;
        Ok(RowWriter {
            sampled,
            path,
            tmp,
            out,
            rows: vec![(0, header_end, false)],
            row_of: HashMap::new(),
            backend_index: meta
                .backends
                .iter()
                .enumerate()
                .map(|(i, b)| (b.id.as_str(), i))
                .collect(),
            item_index: meta.items.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect(),
            replaced: false,
            error: None,
        })
    }

    /// Writes one record's row; a row written earlier for the same sample is dropped.
    pub fn add(&mut self, r: Record) {
        if self.error.is_some() {
            return;
        }
        let key = match (
            self.backend_index.get(r.backend.as_str()),
            self.item_index.get(r.id.as_str()),
        ) {
            (Some(&b), Some(&i)) => Some((b, i, r.epoch)),
            // Scoring refuses such a record; the CSV shows it as it is.
            _ => None,
        };
        let error = r.error.as_ref();
        let mut row = vec![
            r.id.clone(),
            r.backend.clone(),
            r.gold.clone(),
            r.answer.clone().unwrap_or_default(),
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
            r.reply.clone().unwrap_or_default(),
        ];
        if self.sampled {
            row.insert(2, r.epoch.to_string());
        }
        let start = self.out.get_ref().written;
        // The counting writer's flush does not reach the file, so flushing per row is cheap and
        // makes `written` exact.
        if let Err(e) = self.out.write_record(&row).and_then(|()| Ok(self.out.flush()?)) {
            self.error = Some(Error::io(&self.tmp, e.into()));
            return;
        }
        let index = self.rows.len();
        self.rows.push((start, self.out.get_ref().written, false));
        if let Some(key) = key {
            if let Some(earlier) = self.row_of.insert(key, index) {
                self.rows[earlier].2 = true;
                self.replaced = true;
            }
        }
    }

    /// Completes `records.csv`.
    pub fn finish(self) -> Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let tmp = self.tmp;
        let counting = self.out.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        let mut file = counting.inner.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.flush().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        if self.replaced {
            let bytes = std::fs::read(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let mut kept = Vec::with_capacity(bytes.len());
            for &(start, end, replaced) in &self.rows {
                if !replaced {
                    kept.extend_from_slice(&bytes[start as usize..end as usize]);
                }
            }
            std::fs::write(&tmp, kept).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// Counts the bytes written through it; its `flush` only empties the csv writer's buffer into
/// this one, leaving the file to the `BufWriter`.
struct CountingWriter {
    inner: BufWriter<File>,
    written: u64,
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The per-class file: every class of every backend, in the task's label order.
pub const CLASSES_CSV: &str = "classes.csv";

/// Writes `classes.csv` in `dir`: one row per backend and label with its support, predictions,
/// precision, recall and F1 (the report shows them folded, worst first; this file keeps them all).
pub fn write_classes(dir: &Path, results: &super::Results) -> Result<()> {
    let path = dir.join(CLASSES_CSV);
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = ["backend", "label", "support", "predicted", "precision", "recall", "f1"];
    out.write_record(header).map_err(|e| Error::io(&path, e.into()))?;
    for b in &results.backends {
        for c in &b.classes {
            out.write_record([
                b.id.clone(),
                c.label.clone(),
                c.support.to_string(),
                c.predicted.to_string(),
                format!("{:.6}", c.precision),
                format!("{:.6}", c.recall),
                format!("{:.6}", c.f1),
            ])
            .map_err(|e| Error::io(&path, e.into()))?;
        }
    }
    let bytes = out.into_inner().map_err(|e| Error::io(&path, e.into_error()))?;
    std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
}
