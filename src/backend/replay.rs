//! The `replay` backend: replies read from a file instead of a server, scored exactly like live
//! ones (each becomes a [`Completion`] that goes through the same judge).
//!
//! Two kinds of file:
//! - **a run's journal** (`records.jsonl`, or the run directory holding it): the records of one
//!   backend (`replay.from_backend`, needed when the journal holds several). Each record keeps the
//!   prompt it was sent with, its reply (or error), tokens and latency.
//! - **predictions made elsewhere**: JSONL (one object a line) or CSV (with a header), one row
//!   per item: `id` and `reply` (or `answer`; in JSONL an object is taken as its JSON text), and
//!   optionally `input_tokens`, `output_tokens`, `latency_ms`, `model`, `prompt_sha256` and
//!   `epoch` (0-based, for repeated sampling).
//!
//! Before the run starts ([`ReplayBackend::bind`]) every item the run asks is looked up by id:
//! - an item with no row is **missing**, and the run is refused, naming the items;
//! - a row that holds the prompt (a journal) or its hash (`prompt_sha256`) must match the prompt
//!   the suite would send today ([`prompt_sha256`]); otherwise the recording is **stale** and the
//!   run is refused, naming the items. A row with neither is taken on trust.
//!
//! A recorded failure is replayed as the same failure (an error, not a wrong answer), and a
//! replay never retries.
//! Tokens come from the file (estimated from the text when it has none); the latency is the
//! recorded one (0 when the file has none). Nothing is sent, so a replay needs no key and no
//! network, and it costs nothing unless the suite gives the backend a `pricing`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{BackendError, Completion, ErrorKind, Usage};
use crate::journal::{Record, RunMeta, RECORDS_FILE};
use crate::prompt::ChatMessage;
use crate::suite::ReplaySource;

/// The SHA-256 (lowercase hex) of the canonical JSON of `messages`: the messages as evalgate
/// sends them, in order, each `{"role":…,"content":…}` with these two keys in this order, no
/// whitespace, UTF-8, non-ASCII characters unescaped. In Python:
/// `hashlib.sha256(json.dumps([{"role": r, "content": c}, …], ensure_ascii=False,
/// separators=(",", ":")).encode()).hexdigest()`.
pub fn prompt_sha256(messages: &[ChatMessage]) -> String {
    let json = serde_json::to_string(messages).unwrap_or_default();
    Sha256::digest(json.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// One recorded answer, ready to be replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub outcome: Result<Completion, BackendError>,
    /// The latency when it was recorded, in milliseconds.
    pub latency_ms: f64,
}

#[derive(Debug, Clone)]
struct Entry {
    /// The recorded prompt's hash, when the file has it.
    prompt_sha256: Option<String>,
    recorded: Recorded,
}

/// Which kind of file a replay reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFormat {
    Journal,
    PredictionsJsonl,
    PredictionsCsv,
}

pub struct ReplayBackend {
    file: PathBuf,
    format: ReplayFormat,
    /// Entries by item id, then epoch.
    by_id: HashMap<String, BTreeMap<u32, Entry>>,
    /// The model the file names, if it names one.
    model: Option<String>,
    /// After [`bind`](Self::bind): the recorded answers for each prompt (by its hash), in item
    /// and epoch order. Identical prompts share a queue.
    queues: Mutex<HashMap<String, VecDeque<Recorded>>>,
}

impl ReplayBackend {
    /// Reads the recording. Errors name the file and line.
    pub fn load(source: &ReplaySource) -> Result<Self, String> {
        let mut file = source.file.clone();
        if file.is_dir() {
            file = file.join(RECORDS_FILE);
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let is_csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let journal = !is_csv
            && serde_json::from_str::<serde_json::Value>(first)
                .is_ok_and(|v| v.get("backend").is_some() && v.get("prompt").is_some());
        let (format, by_id, model) = if is_csv {
            let (by_id, model) = read_csv(&file, &text)?;
            (ReplayFormat::PredictionsCsv, by_id, model)
        } else if journal {
            let (by_id, model) = read_journal(&file, &text, source.from_backend.as_deref())?;
            (ReplayFormat::Journal, by_id, model)
        } else {
            let (by_id, model) = read_jsonl(&file, &text)?;
            (ReplayFormat::PredictionsJsonl, by_id, model)
        };
        if source.from_backend.is_some() && format != ReplayFormat::Journal {
            return Err(format!(
                "{}: `replay.from_backend` applies to a run's records.jsonl; this is a predictions file",
                file.display()
            ));
        }
        Ok(ReplayBackend { file, format, by_id, model, queues: Mutex::default() })
    }

    pub fn format(&self) -> ReplayFormat {
        self.format
    }

    /// The model the recording names (a journal's run.json, or a predictions file's `model`
    /// column when every row gives the same one).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Checks the recording against the prompts the suite sends today and lines up the replies.
    /// `items` are the run's items in order, each with its id and prompt; `epochs` samples of each
    /// are needed. Refuses a recording that misses an item or was made with another prompt,
    /// naming the items.
    pub fn bind<'a>(
        &mut self,
        backend: &str,
        items: impl IntoIterator<Item = (&'a str, Result<Vec<ChatMessage>, String>)>,
        epochs: u32,
    ) -> Result<(), String> {
        let mut missing = Vec::new();
        let mut stale = Vec::new();
        let mut queues: HashMap<String, VecDeque<Recorded>> = HashMap::new();
        let mut asked = 0usize;
        for (id, messages) in items {
            asked += 1;
            let messages = messages.map_err(|e| format!("item `{id}`: {e}"))?;
            let today = prompt_sha256(&messages);
            let Some(entries) = self.by_id.get(id) else {
                missing.push(id.to_string());
                continue;
            };
            let mut is_stale = false;
            for epoch in 0..epochs {
                match entries.get(&epoch) {
                    None => {
                        missing.push(if epochs > 1 {
                            format!("{id} (epoch {epoch})")
                        } else {
                            id.to_string()
                        });
                    }
                    Some(e) => {
                        if e.prompt_sha256.as_ref().is_some_and(|h| *h != today) {
                            is_stale = true;
                        }
                        queues.entry(today.clone()).or_default().push_back(e.recorded.clone());
                    }
                }
            }
            if is_stale {
                stale.push(id.to_string());
            }
        }
        let file = self.file.display();
        if !stale.is_empty() {
            let how = match self.format {
                ReplayFormat::Journal => format!(
                    "re-record it: run the live backend again on this suite and point `replay.file` at the new run's {RECORDS_FILE}"
                ),
                _ => "re-record it with the prompts the suite sends now (`prompt_sha256` is the SHA-256 of their canonical JSON; see the README's \"Replay\")".to_string(),
            };
            return Err(format!(
                "backend `{backend}`: {file} is stale: it was recorded with other prompts than this suite sends for {} of {asked} items ({}). The instructions, input template, strategy or data changed since; {how}",
                stale.len(),
                name_some(&stale),
            ));
        }
        if !missing.is_empty() {
            return Err(format!(
                "backend `{backend}`: {file} has no reply for {} of the {asked} items this run asks ({}); record them, or leave them out of the run (--limit, --shard)",
                missing.len(),
                name_some(&missing),
            ));
        }
        self.queues = Mutex::new(queues);
        Ok(())
    }

    /// The next recorded answer to `messages`.
    pub fn take(&self, messages: &[ChatMessage]) -> Result<Recorded, BackendError> {
        let hash = prompt_sha256(messages);
        let mut queues = self
            .queues
            .lock()
            .map_err(|_| BackendError::new(ErrorKind::Internal, "the replay queue is poisoned"))?;
        queues.get_mut(&hash).and_then(VecDeque::pop_front).ok_or_else(|| {
            BackendError::new(
                ErrorKind::Internal,
                format!("{} holds no (more) replies to this prompt", self.file.display()),
            )
        })
    }
}

/// The first five ids, and how many more.
fn name_some(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
    match ids.len().saturating_sub(5) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

type Loaded = (HashMap<String, BTreeMap<u32, Entry>>, Option<String>);

fn read_journal(file: &Path, text: &str, from_backend: Option<&str>) -> Result<Loaded, String> {
    let mut records: Vec<Record> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: not a journal record: {e}", file.display(), n + 1))?;
        records.push(record);
    }
    let mut backends: Vec<&str> = records.iter().map(|r| r.backend.as_str()).collect();
    backends.sort_unstable();
    backends.dedup();
    let backend = match from_backend {
        Some(b) if backends.contains(&b) => b.to_string(),
        Some(b) => {
            return Err(format!(
                "{} holds no records of backend `{b}`; it has: {}",
                file.display(),
                backends.join(", ")
            ))
        }
        None if backends.len() == 1 => backends[0].to_string(),
        None => {
            return Err(format!(
            "{} holds the records of several backends ({}); say which with `replay.from_backend`",
            file.display(),
            backends.join(", ")
        ))
        }
    };
    let mut by_id: HashMap<String, BTreeMap<u32, Entry>> = HashMap::new();
    // A resumed run appends a later answer for an item that failed: the last record wins. A
    // request that was never answered because its backend or the run stopped (`not_sent`,
    // `cancelled`) holds no reply and no prompt: the item is missing from the recording, not
    // recorded with another prompt.
    let unsent = [ErrorKind::NotSent.as_str(), ErrorKind::Cancelled.as_str()];
    let sent = |r: &Record| !r.error.as_ref().is_some_and(|e| unsent.contains(&e.kind.as_str()));
    for r in records.into_iter().filter(|r| r.backend == backend && sent(r)) {
        let outcome = match (&r.error, r.reply) {
            (None, Some(text)) => Ok(Completion {
                text,
                usage: (!r.tokens.estimated).then_some(Usage {
                    input: r.tokens.input,
                    output: r.tokens.output,
                    cached_input: r.tokens.cached_input,
                    reasoning: r.tokens.reasoning,
                    cache_write: r.tokens.cache_write_input,
                }),
                finish_reason: r.finish_reason,
                reasoning: r.reasoning,
            }),
            (Some(e), _) => Err(BackendError {
                kind: ErrorKind::parse(&e.kind).unwrap_or(ErrorKind::Internal),
                status: e.status,
                message: e.message.clone(),
                retry_after: None,
            }),
            (None, None) => Err(BackendError::new(ErrorKind::Internal, "recorded with no reply")),
        };
        let entry = Entry {
            prompt_sha256: Some(prompt_sha256(&r.prompt)),
            recorded: Recorded { outcome, latency_ms: r.latency_ms },
        };
        by_id.entry(r.id).or_default().insert(r.epoch, entry);
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let model = RunMeta::read(dir)
        .ok()
        .and_then(|m| m.backends.into_iter().find(|b| b.id == backend))
        .and_then(|b| b.model);
    Ok((by_id, model))
}

/// One predictions row, whatever the file's format.
#[derive(Default)]
struct Row {
    id: Option<String>,
    reply: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    latency_ms: Option<f64>,
    model: Option<String>,
    prompt_sha256: Option<String>,
    epoch: Option<u32>,
}

impl Row {
    /// Sets column `key` from its text; unknown columns are ignored.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(());
        }
        let number = |what: &str| format!("`{key}` must be {what}, not `{value}`");
        match key {
            "id" => self.id = Some(value.to_string()),
            "reply" => self.reply = Some(value.to_string()),
            "answer" if self.reply.is_none() => self.reply = Some(value.to_string()),
            "input_tokens" => {
                self.input_tokens = Some(value.parse().map_err(|_| number("a whole number"))?)
            }
            "output_tokens" => {
                self.output_tokens = Some(value.parse().map_err(|_| number("a whole number"))?)
            }
            "latency_ms" => {
                self.latency_ms = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                        .ok_or_else(|| number("a number of milliseconds"))?,
                )
            }
            "model" => self.model = Some(value.to_string()),
            "prompt_sha256" => {
                let h = value.to_ascii_lowercase();
                if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(number("64 hexadecimal digits"));
                }
                self.prompt_sha256 = Some(h);
            }
            "epoch" => self.epoch = Some(value.parse().map_err(|_| number("a whole number"))?),
            _ => {}
        }
        Ok(())
    }
}

/// Rows into entries by id; a repeated (id, epoch) is an error, naming both lines.
fn collect(file: &Path, rows: Vec<(usize, Row)>) -> Result<Loaded, String> {
    let mut by_id: HashMap<String, BTreeMap<u32, (usize, Entry)>> = HashMap::new();
    let mut models: Vec<String> = Vec::new();
    for (line, row) in rows {
        let at = format!("{}:{line}", file.display());
        let id = row.id.ok_or_else(|| format!("{at}: the row has no `id`"))?;
        let reply = row.reply.ok_or_else(|| {
            format!("{at}: item `{id}` has no `reply` (or `answer`); every row needs one")
        })?;
        if let Some(m) = row.model {
            if !models.contains(&m) {
                models.push(m);
            }
        }
        let usage = match (row.input_tokens, row.output_tokens) {
            (Some(input), Some(output)) => Some(Usage { input, output, ..Usage::default() }),
            _ => None,
        };
        let entry = Entry {
            prompt_sha256: row.prompt_sha256,
            recorded: Recorded {
                outcome: Ok(Completion {
                    text: reply,
                    usage,
                    finish_reason: None,
                    reasoning: None,
                }),
                latency_ms: row.latency_ms.unwrap_or(0.0),
            },
        };
        let epoch = row.epoch.unwrap_or(0);
        if let Some((first, _)) = by_id.entry(id.clone()).or_default().insert(epoch, (line, entry))
        {
            return Err(format!(
                "{at}: item `{id}` (epoch {epoch}) is also on line {first}; give each item one row"
            ));
        }
    }
    let model = (models.len() == 1).then(|| models.remove(0));
    let by_id = by_id
        .into_iter()
        .map(|(id, epochs)| (id, epochs.into_iter().map(|(e, (_, entry))| (e, entry)).collect()))
        .collect();
    Ok((by_id, model))
}

fn read_jsonl(file: &Path, text: &str) -> Result<Loaded, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", file.display(), n + 1);
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{at}: not JSON: {e}"))?;
        let object =
            value.as_object().ok_or_else(|| format!("{at}: each line must be an object"))?;
        let mut row = Row::default();
        for (key, v) in object {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            row.set(key, &text).map_err(|e| format!("{at}: {e}"))?;
        }
        rows.push((n + 1, row));
    }
    collect(file, rows)
}

fn read_csv(file: &Path, text: &str) -> Result<Loaded, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{}: {e}", file.display()))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    for needed in ["id"] {
        if !headers.iter().any(|h| h == needed) {
            return Err(format!(
                "{}: no `{needed}` column; the columns are: {}",
                file.display(),
                headers.join(", ")
            ));
        }
    }
    if !headers.iter().any(|h| h == "reply" || h == "answer") {
        return Err(format!(
            "{}: no `reply` (or `answer`) column; the columns are: {}",
            file.display(),
            headers.join(", ")
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("{}: {e}", file.display()))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let mut row = Row::default();
        for (key, value) in headers.iter().zip(record.iter()) {
            row.set(key, value).map_err(|e| format!("{}:{line}: {e}", file.display()))?;
        }
        rows.push((line, row));
    }
    collect(file, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::Role;

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage { role, content: content.to_string() }
    }

    #[test]
    fn the_prompt_hash_is_of_the_documented_canonical_json() {
        let messages = [msg(Role::System, "Answer yes or no."), msg(Role::User, "Q: café?\n")];
        let json = serde_json::to_string(&messages).unwrap();
        assert_eq!(
            json,
            r#"[{"role":"system","content":"Answer yes or no."},{"role":"user","content":"Q: café?\n"}]"#
        );
        // hashlib.sha256(json.dumps([...], ensure_ascii=False, separators=(",", ":")).encode())
        assert_eq!(
            prompt_sha256(&messages),
            "b656d2f4a440bb40fafef2140e35b85fc7b3cb69a5c0a4c8bdac9099c18a4d2f"
        );
    }

    #[test]
    fn unsent_records_are_missing_items_not_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let m = vec![msg(Role::User, "x")];
        let record = |id: &str, error: Option<&str>| {
            let prompt = if error.is_some() { vec![] } else { m.clone() };
            serde_json::json!({
                "id": id, "backend": "b", "prompt": prompt, "gold": "yes",
                "reply": if error.is_some() { None } else { Some("yes") },
                "answer": null, "correct": null, "invalid": false,
                "tokens": {"input": 1, "output": 1}, "latency_ms": 5.0, "attempts": 1,
                "error": error.map(|k| serde_json::json!({"kind": k, "status": null, "message": "not sent: …"})),
            })
            .to_string()
        };
        let lines = [
            record("a", None),
            record("b", Some("not_sent")),
            record("c", Some("cancelled")),
            // A later cancelled record does not hide an earlier answer.
            record("a", Some("cancelled")),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let source = ReplaySource { file: path.clone(), from_backend: None };
        let mut r = ReplayBackend::load(&source).unwrap();
        r.bind("p", [("a", Ok(m.clone()))], 1).unwrap();
        assert_eq!(r.take(&m).unwrap().outcome.unwrap().text, "yes");

        let mut r = ReplayBackend::load(&source).unwrap();
        let e = r.bind("p", [("a", Ok(m.clone())), ("b", Ok(m.clone())), ("c", Ok(m))], 1);
        let e = e.unwrap_err();
        assert!(e.contains("has no reply for 2 of the 3 items") && !e.contains("stale"), "{e}");
    }

    #[test]
    fn a_csv_is_read_by_column_name_and_a_repeated_item_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(
            &path,
            "answer,id,latency_ms,input_tokens,output_tokens\nyes,a,12.5,10,1\nno,b,,,\n",
        )
        .unwrap();
        let source = ReplaySource { file: path.clone(), from_backend: None };
        let mut r = ReplayBackend::load(&source).unwrap();
        assert_eq!(r.format(), ReplayFormat::PredictionsCsv);
        let m = vec![msg(Role::User, "x")];
        r.bind("p", [("a", Ok(m.clone())), ("b", Ok(m.clone()))], 1).unwrap();
        let a = r.take(&m).unwrap();
        assert_eq!(a.latency_ms, 12.5);
        let a = a.outcome.unwrap();
        assert_eq!((a.text.as_str(), a.usage.map(|u| u.input)), ("yes", Some(10)));
        assert_eq!(r.take(&m).unwrap().outcome.unwrap().usage, None);
        assert!(r.take(&m).is_err(), "two rows, two replies");

        std::fs::write(&path, "id,reply\na,yes\na,no\n").unwrap();
        let Err(e) = ReplayBackend::load(&source) else { panic!("a repeated id") };
        assert!(e.contains("p.csv:3: item `a` (epoch 0) is also on line 2"), "{e}");
    }
}
