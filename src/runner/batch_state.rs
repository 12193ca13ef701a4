//! `batches.json`: what a run has submitted to batch APIs, written the moment anything exists on
//! the server, so a stopped or killed run can be resumed without submitting a request twice.
//!
//! ```json
//! { "schema_version": 1,
//!   "batches": [ { "backend": "mini", "provider": "openai", "round": 1,
//!       "token": "eg-3f…", "input_file_id": "file-…", "batch_id": "batch_…",
//!       "state": "submitted", "status": "in_progress",
//!       "created_at": "2026-12-01T10:00:00Z", "created_unix_ms": 1795…,
//!       "ended_at": null, "ended_unix_ms": null, "error": null,
//!       "requests": { "r1-000000": { "id": "ticket-17", "epoch": 0 } } } ] }
//! ```
//!
//! An entry is written (`submitting`) before its input is uploaded, again when the upload has
//! an id, and again (`submitted`) as soon as the batch has one; `collected` once its results are
//! in the journal, `failed` when the whole batch failed, `abandoned` when it could not be
//! submitted at all. Every write goes to a temporary file that is synced and renamed over the
//! old one, so the file is always whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const BATCHES_FILE: &str = "batches.json";
const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchState {
    pub schema_version: u32,
    pub batches: Vec<BatchEntry>,
}

/// Where a submission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Being submitted: the input may be uploaded, and the batch may exist without its id
    /// here (its create response lost); a resume looks for it by token before creating it.
    Submitting,
    /// The batch exists; its results are not in the journal yet.
    Submitted,
    /// Its results are in the journal.
    Collected,
    /// The whole batch failed; its requests were journaled as failed.
    Failed,
    /// It could not be submitted; its requests were journaled as failed.
    Abandoned,
}

impl EntryState {
    /// Whether a resumed run still has something to do for the entry.
    pub fn open(self) -> bool {
        matches!(self, EntryState::Submitting | EntryState::Submitted)
    }
}

/// The sample a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sample {
    pub id: String,
    pub epoch: u32,
}

/// One batch (or one attempt at submitting one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEntry {
    pub backend: String,
    pub provider: String,
    /// 1 for a backend's first batches; requests a batch left unprocessed go into round + 1.
    pub round: u32,
    /// In the batch's metadata, to find a batch whose create response was lost.
    pub token: String,
    pub input_file_id: Option<String>,
    pub batch_id: Option<String>,
    pub state: EntryState,
    /// The provider's last reported status (`in_progress`, `completed`, …).
    pub status: Option<String>,
    pub created_at: String,
    pub created_unix_ms: u64,
    pub ended_at: Option<String>,
    pub ended_unix_ms: Option<u64>,
    /// Why the batch failed or could not be submitted.
    pub error: Option<String>,
    /// custom_id → the sample it asks for.
    pub requests: BTreeMap<String, Sample>,
}

/// The state file of a run directory, shared by the run's batch drivers.
pub struct BatchStore {
    path: PathBuf,
    state: Mutex<BatchState>,
}

impl BatchStore {
    /// The run's state file, or an empty one for a run that has submitted nothing yet.
    pub fn open(dir: &Path) -> Result<BatchStore> {
        let path = dir.join(BATCHES_FILE);
        let state = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let state: BatchState =
                    serde_json::from_str(&text).map_err(|e| Error::Journal {
                        path: path.clone(),
                        line: e.line() as u64,
                        message: e.to_string(),
                    })?;
                if state.schema_version != SCHEMA_VERSION {
                    return Err(Error::SchemaVersion {
                        path,
                        found: state.schema_version,
                        supported: SCHEMA_VERSION,
                    });
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                BatchState { schema_version: SCHEMA_VERSION, batches: Vec::new() }
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(BatchStore { path, state: Mutex::new(state) })
    }

    /// The run directory the state file is in.
    pub fn dir(&self) -> Option<&Path> {
        self.path.parent()
    }

    /// A backend's entries, in the order they were made.
    pub fn entries(&self, backend: &str) -> Vec<BatchEntry> {
        self.lock().batches.iter().filter(|b| b.backend == backend).cloned().collect()
    }

    /// Adds `entry`, or replaces the entry with its token, and writes the file.
    pub fn save(&self, entry: &BatchEntry) -> Result<()> {
        let mut state = self.lock();
        match state.batches.iter_mut().find(|b| b.token == entry.token) {
            Some(old) => *old = entry.clone(),
            None => state.batches.push(entry.clone()),
        }
        // Written under the lock: two drivers never interleave their writes.
        write_atomically(&self.path, &state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn write_atomically(path: &Path, state: &BatchState) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(state).map_err(|e| Error::io(path, e.into()))?;
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(text.as_bytes()).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(b"\n").map_err(|e| Error::io(&tmp, e))?;
    // Synced before the rename: the batch id must survive even a crash of the machine.
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_saved_whole_and_replaced_by_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = BatchStore::open(dir.path()).unwrap();
        let mut entry = BatchEntry {
            backend: "mini".into(),
            provider: "openai".into(),
            round: 1,
            token: "eg-1".into(),
            input_file_id: None,
            batch_id: None,
            state: EntryState::Submitting,
            status: None,
            created_at: "2026-12-01T10:00:00Z".into(),
            created_unix_ms: 1,
            ended_at: None,
            ended_unix_ms: None,
            error: None,
            requests: [("r1-000000".to_string(), Sample { id: "a".into(), epoch: 0 })].into(),
        };
        store.save(&entry).unwrap();
        entry.batch_id = Some("batch_1".into());
        entry.state = EntryState::Submitted;
        store.save(&entry).unwrap();
        let again = BatchStore::open(dir.path()).unwrap();
        assert_eq!(again.entries("mini"), [entry]);
        assert!(again.entries("other").is_empty());
        assert!(!dir.path().join("batches.json.tmp").exists());
    }
}
