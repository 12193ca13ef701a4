//! The run directory's primary artifact: `run.json` (what was run) and `records.jsonl` (one line
//! per item and backend, appended as each completes). Every report is a pure function of these
//! two files, so `evalgate report DIR` rebuilds all outputs without calling a model.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::prompt::ChatMessage;

pub const META_FILE: &str = "run.json";
pub const RECORDS_FILE: &str = "records.jsonl";
/// The version of `run.json` and `records.jsonl` this build writes and reads.
pub const RUN_SCHEMA_VERSION: u32 = 1;

/// What one backend produced for one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub backend: String,
    /// The messages as sent; for the local backend, the one user turn it classified.
    pub prompt: Vec<ChatMessage>,
    /// The model's text, exactly as returned; `None` when the request failed.
    pub reply: Option<String>,
    /// The label the reply maps to; `None` when it maps to none (invalid) or the request failed.
    pub answer: Option<String>,
    pub gold: String,
    /// `None` when the request failed: an error is not a wrong answer.
    pub correct: Option<bool>,
    /// Answered, but the reply is not one of the labels.
    pub invalid: bool,
    pub tokens: Tokens,
    pub latency_ms: f64,
    pub attempts: u32,
    #[serde(default)]
    pub finish_reason: Option<String>,
    pub error: Option<RecordError>,
    /// Which sample of the item this is, for backends with `epochs` > 1 (0-based).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u32,
    /// Answered from the response cache rather than by the server in this run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// For a cached answer: when the server gave it (RFC 3339), as the cache dated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_at: Option<String>,
    /// The model's reasoning, kept apart from the reply: a leading `<think>` block or the
    /// message's `reasoning_content`; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    /// Input tokens served from the provider's prompt cache (a part of `input`).
    #[serde(default)]
    pub cached_input: u64,
    /// True when the server sent no usage and the counts are estimates.
    #[serde(default)]
    pub estimated: bool,
    /// Reasoning tokens, as the server reports them (`completion_tokens_details`): a part of
    /// `output`, priced as output; absent when 0.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub reasoning: u64,
    /// Input tokens written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`): a part of `input`, priced at the cache-write price;
    /// absent when 0.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub cache_write_input: u64,
}

impl Tokens {
    /// The counts a per-token price is applied to.
    pub fn billed(&self) -> crate::cost::RequestTokens {
        crate::cost::RequestTokens {
            input: self.input as f64,
            output: self.output as f64,
            cached_input: self.cached_input as f64,
            cache_write_input: self.cache_write_input as f64,
        }
    }
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordError {
    /// `http`, `timeout`, `connect`, `malformed_response`, `body`, `api_error`, `internal`,
    /// `not_sent` (its backend was stopped), `cancelled` (the run was stopped; counted as missing).
    pub kind: String,
    pub status: Option<u16>,
    pub message: String,
}

/// What was run: written when the run starts and rewritten when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub schema_version: u32,
    pub evalgate_version: String,
    pub suite: SuiteMeta,
    pub task: TaskMeta,
    pub backends: Vec<BackendMeta>,
    pub skipped: Vec<Skipped>,
    /// Test item ids in suite order (after `--limit`): the items every backend must answer.
    pub items: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The suite's `volume.requests_per_day`.
    #[serde(default)]
    pub requests_per_day: Option<f64>,
    /// Backend pairs the suite asks to compare; every pair when empty.
    #[serde(default)]
    pub compare: Vec<(String, String)>,
    /// The suite's `decision.margin`; run.json files written before it existed get the default.
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Each item's cluster (aligned with `items`), when the data has a group column.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Why the run ended early, when it did.
    #[serde(default)]
    pub stopped: Option<String>,
    /// For a shard run: which part of the items it holds.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// Each item's position in the suite's test data (aligned with `items`), so merged shards
    /// restore the order of an unsharded run.
    #[serde(default)]
    pub positions: Option<Vec<usize>>,
    /// Ids of the run's test items whose text is also in the training data (`suite::leakage`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaked: Vec<String>,
    /// Warnings decided before the run (test items found in the training data or in a
    /// backend's `trained_on` file), shown at the top of the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn default_margin() -> f64 {
    crate::score::DEFAULT_MARGIN
}

/// Part `index` (1-based) of `count`: the items whose id hashes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the item with `id` belongs to this shard: FNV-1a of the id, so the split is the
    /// same on every machine and does not depend on item order.
    pub fn holds(&self, id: &str) -> bool {
        crate::text::stable_hash(id) % u64::from(self.count) == u64::from(self.index - 1)
    }
}

/// A `--shard` that is not `K/N` with 1 ≤ K ≤ N.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{text}`: {problem}")]
pub struct ShardError {
    text: String,
    problem: &'static str,
}

impl std::str::FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> std::result::Result<Self, ShardError> {
        let bad = |problem| ShardError { text: s.to_string(), problem };
        let (k, n) = s.split_once('/').ok_or_else(|| bad("write the shard as K/N, e.g. 2/4"))?;
        let index: u32 = k.trim().parse().map_err(|_| bad("K must be a whole number"))?;
        let count: u32 = n.trim().parse().map_err(|_| bad("N must be a whole number"))?;
        if count == 0 || index == 0 || index > count {
            return Err(bad("need 1 ≤ K ≤ N"));
        }
        Ok(Shard { index, count })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteMeta {
    pub name: String,
    pub path: String,
    pub sha256: String,
    /// SHA-256 of the loaded test and train data.
    #[serde(default)]
    pub data_sha256: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMeta {
    pub kind: crate::suite::TaskKind,
    pub labels: Vec<String>,
    /// An extraction task's fields, with their types and match rules, so the run can be scored
    /// again without the suite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<crate::field::FieldSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendMeta {
    pub id: String,
    pub provider: String,
    pub model: Option<String>,
    pub strategy: String,
    /// Server address with any user, password or query removed.
    pub base_url: Option<String>,
    pub few_shot: Option<FewShotMeta>,
    /// The price used for cost figures; `None` when unknown.
    #[serde(default)]
    pub price: Option<crate::suite::Price>,
    /// Samples per item.
    #[serde(default = "one")]
    pub epochs: u32,
    /// Requests asked for a JSON schema (extraction with structured output).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub structured_output: bool,
    /// Why the run stopped sending to this backend (an error no retry can fix), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The form of structured output the backend's requests used in the end: `json_schema`,
    /// `json_object` or `off` (negotiated with `structured_output: auto`); absent when the
    /// backend asked for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_output_used: Option<String>,
    /// Batch mode: the backend's requests went through its provider's batch API; absent for a
    /// backend that sent them one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchMeta>,
}

/// How a backend ran in batch mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchMeta {
    /// The batch API's provider (`openai`).
    pub provider: String,
    /// The price table's discount for the provider's batch API, applied to every per-token cost
    /// of the backend; `None` when the table has none (requests are then priced as listed).
    pub discount: Option<crate::cost::BatchDiscount>,
    /// Every batch submitted for the backend, resumed runs' included, in order.
    #[serde(default)]
    pub batches: Vec<BatchSummary>,
}

/// One batch of a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSummary {
    /// The provider's batch id.
    pub id: String,
    /// Requests in the batch.
    pub requests: u64,
    /// The provider's last reported status (`completed`, `expired`, `failed`, `in_progress` …).
    pub status: String,
    pub submitted_at: String,
    /// When the run saw it end; `None` while it runs.
    pub ended_at: Option<String>,
    /// Submitted to ended, in seconds.
    pub seconds: Option<f64>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShotMeta {
    pub k: usize,
    pub select: String,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

impl RunMeta {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(META_FILE);
        let tmp = dir.join(format!("{META_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::io(&path, e.into()))?;
        // Write then rename, so a crash never leaves a half-written run.json.
        std::fs::write(&tmp, text + "\n").map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    pub fn read(dir: &Path) -> Result<RunMeta> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        // The version is checked first, so a run.json of another schema is refused with its
        // version rather than with whatever field it lacks.
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let parse_error = |e: serde_json::Error| Error::Journal {
            path: path.clone(),
            line: e.line() as u64,
            message: e.to_string(),
        };
        let version: Version = serde_json::from_str(&text).map_err(parse_error)?;
        if version.schema_version != RUN_SCHEMA_VERSION {
            return Err(Error::SchemaVersion {
                path,
                found: version.schema_version,
                supported: RUN_SCHEMA_VERSION,
            });
        }
        serde_json::from_str(&text).map_err(parse_error)
    }
}

/// Appends records to `records.jsonl`.
pub struct JournalWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JournalWriter {
    pub fn create(dir: &Path) -> Result<Self> {
        let path = dir.join(RECORDS_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(JournalWriter { path, out: BufWriter::with_capacity(1 << 16, file) })
    }

    /// Buffers one record; call [`flush`](Self::flush) to hand buffered records to the OS.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)
            .map_err(|e| Error::io(&self.path, e.into()))?;
        self.out.write_all(b"\n").map_err(|e| Error::io(&self.path, e))
    }

    /// After a flush the records survive the process being killed.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Reads every record of a journal, calling `visit` for each in file order. A torn last line (the
/// process died mid-write) is skipped; a broken line elsewhere is an error naming it.
pub fn read_records<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    mut visit: impl FnMut(T),
) -> Result<()> {
    read_numbered_records(dir, |record, _| visit(record))
}

/// [`read_records`], with each record's 1-based line number, for errors that name the line.
pub fn read_numbered_records<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    mut visit: impl FnMut(T, u64),
) -> Result<()> {
    let path = dir.join(RECORDS_FILE);
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| Error::io(&path, e))?;
        if n == 0 {
            break;
        }
        number += 1;
        let complete = line.ends_with('\n');
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(text) {
            Ok(record) => visit(record, number),
            Err(_) if !complete => break,
            Err(e) => return Err(Error::Journal { path, line: number, message: e.to_string() }),
        }
    }
    Ok(())
}

/// Cuts a torn last line (the process died mid-write) off the journal, so records appended by a
/// resumed run start on a line of their own. Returns how many bytes were cut.
pub fn repair_tail(dir: &Path) -> Result<u64> {
    let path = dir.join(RECORDS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(&path, e)),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(0);
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let file =
        std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
    file.set_len(keep as u64).map_err(|e| Error::io(&path, e))?;
    file.sync_all().map_err(|e| Error::io(&path, e))?;
    Ok((bytes.len() - keep) as u64)
}

/// `url` without user, password, query or fragment, for display and for run.json.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_json_of_another_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), r#"{"schema_version": 2, "other": true}"#)
            .unwrap();
        let e = RunMeta::read(dir.path()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::SchemaVersion { found: 2, supported: 1, .. }), "{text}");
        assert!(text.contains("run.json") && text.contains("schema version 2"), "{text}");
    }
}
