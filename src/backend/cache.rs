//! The response cache: answers from LLM backends kept in a SQLite file, keyed by
//! a hash of what was asked, so that re-running a suite does not pay twice.
//!
//! # Key
//! [`cache_key`] hashes the provider, the base URL, the model and the exact
//! request body bytes. Nothing is normalised: `https://h/v1` and `https://h/v1/`
//! are different keys, and so are two bodies that differ only in key order or
//! whitespace. The key never includes an API key, and neither does anything the
//! cache stores: callers pass only those four parts to [`cache_key`] and only
//! provider, model and the completion to [`ResponseCache::put`]. **Callers must
//! never pass a secret (API key, `Authorization` header) to either**; the request
//! body itself must not carry one.
//!
//! # Concurrency
//! One [`ResponseCache`] is shared (`Arc`) by all tasks of a run. It has two
//! SQLite connections, each behind its own mutex with cached prepared
//! statements: one for lookups, one for writes, so that a lookup never waits
//! for a write or a WAL checkpoint. Writes go through an in-memory batch:
//!
//! * [`ResponseCache::put`] serialises the completion outside any lock and
//!   inserts it into the current batch (microseconds; it never touches the
//!   disk). When the batch reaches [`BATCH_SIZE`] entries it is sealed and a
//!   background writer thread writes it; all batches sealed by then go in one
//!   transaction, oldest first, so a later answer for a key wins.
//! * [`ResponseCache::get`] looks in the current and sealed batches first, then
//!   in the database, so an entry is visible as soon as `put` returns. A sealed
//!   batch is dropped from memory only after its transaction has committed, so
//!   there is no gap in which an entry is in neither place.
//! * [`ResponseCache::flush`] seals the current batch and writes everything
//!   pending on the calling thread, returning once it is committed.
//! * Several processes (two evalgate runs) may share one file: the database is in
//!   WAL mode (readers never block the writer) with a 5 s busy timeout on every
//!   connection.
//!
//! Lock order, for maintainers: writer connection, then pending; the reader
//! connection is never held together with another lock.
//!
//! # Errors from writes
//! A batch write that fails (disk full, the file removed, a lock held by another
//! process for more than 5 s) drops the entries of the batches it held: they are
//! asked again next time. Its [`CacheError::Write`] is returned by the next
//! `put` or `flush` call on this handle (one error per failure, not repeated).
//!
//! # Crash semantics
//! The cache is an optimisation, not a record: the run's journal is the durable
//! record. Pending entries are written when a batch fills, on
//! [`ResponseCache::flush`], and on `Drop` (which cannot report errors; call
//! `flush` at the end of a run to see them). A process that is killed loses at
//! most what was not yet committed (the current batch, under [`BATCH_SIZE`]
//! answers, plus any sealed batch the writer had not finished), which only costs
//! asking those requests again next time. With `synchronous=NORMAL` in WAL mode
//! a committed batch survives a process crash; a power loss may also roll back
//! the last committed batches, never corrupting the file.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

/// A batch is sealed and handed to the writer thread at this many entries.
pub const BATCH_SIZE: usize = 64;

/// The schema this code reads and writes, kept in SQLite's `user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes the WAL file is truncated to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

/// Tag hashed first into every key; bump it if the key encoding ever changes.
const KEY_DOMAIN: &[u8] = b"evalgate-response-cache-v1";

/// What a cached answer holds (mirrors the caller's completion type; kept plain data).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CachedCompletion {
    pub text: String,
    /// How long the original request took, so a cached rerun reports the backend's latency.
    #[serde(default)]
    pub latency_ms: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    /// Input tokens written to the provider's prompt cache; absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
    pub finish_reason: Option<String>,
    /// When the answer was stored (seconds since the Unix epoch), filled in by
    /// [`ResponseCache::get`]; not part of the stored JSON, which the row's `created_at` dates.
    #[serde(skip)]
    pub recorded_at: Option<i64>,
}

/// The cache key: lowercase hex SHA-256 over
/// `part(KEY_DOMAIN) ‖ part(provider) ‖ part(base_url) ‖ part(model) ‖ part(request_body)`
/// where `part(x)` is the length of `x` as a big-endian `u64` followed by the
/// bytes of `x`, and `KEY_DOMAIN` is `b"evalgate-response-cache-v1"`. The length
/// prefixes make the encoding injective, so two different tuples never share an
/// input to the hash.
///
/// Never pass an API key here: the four parts are all the key may depend on.
pub fn cache_key(provider: &str, base_url: &str, model: &str, request_body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for part in
        [KEY_DOMAIN, provider.as_bytes(), base_url.as_bytes(), model.as_bytes(), request_body]
    {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    hex
}

/// The key of one sample of a request: [`cache_key`] over the exact body bytes, with repeated
/// samples (`epoch` > 0) of one prompt under keys of their own.
pub fn sample_key(provider: &str, base_url: &str, model: &str, body: &str, epoch: u32) -> String {
    if epoch == 0 {
        cache_key(provider, base_url, model, body.as_bytes())
    } else {
        cache_key(provider, base_url, model, format!("{body}\n#epoch={epoch}").as_bytes())
    }
}

/// What went wrong with the cache. Every message names the database file and
/// says how to get going again.
///
/// [`CacheError::Corrupt`] concerns one row only: a caller may treat it as a
/// miss (ask the backend again; the fresh answer then replaces the bad row on
/// the next write).
#[derive(Debug)]
pub enum CacheError {
    /// The parent directory of the database could not be created.
    CreateDir { path: PathBuf, source: std::io::Error },
    /// The file could not be opened or set up as a SQLite database (also: it is
    /// not a SQLite database at all).
    Open { path: PathBuf, source: rusqlite::Error },
    /// SQLite would not switch the file to WAL journal mode (e.g. some network
    /// filesystems); sharing it between tasks and processes needs WAL.
    NoWal { path: PathBuf, mode: String },
    /// The file is a cache of another schema version.
    SchemaMismatch { path: PathBuf, found: i64, expected: i64 },
    /// The writer thread could not be started.
    Spawn { path: PathBuf, source: std::io::Error },
    /// A lookup failed.
    Read { path: PathBuf, source: rusqlite::Error },
    /// Writing batches failed; their `entries` are dropped.
    Write { path: PathBuf, entries: usize, source: rusqlite::Error },
    /// A stored row is not a valid cached completion.
    Corrupt { path: PathBuf, key: String, detail: String },
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::CreateDir { path, source } => write!(
                f,
                "response cache {}: cannot create its directory: {source}; \
                 check permissions, choose another cache path, or run without the cache",
                path.display()
            ),
            CacheError::Open { path, source } => write!(
                f,
                "response cache {}: cannot open it as a SQLite database: {source}; \
                 if the file is damaged or not a cache, delete the cache file to start afresh",
                path.display()
            ),
            CacheError::NoWal { path, mode } => write!(
                f,
                "response cache {}: SQLite would not use WAL journal mode (it stayed in {mode:?} mode); \
                 put the cache on a local filesystem, or run without the cache",
                path.display()
            ),
            CacheError::SchemaMismatch { path, found, expected } => write!(
                f,
                "response cache {}: schema version {found}, but this evalgate uses version {expected}; \
                 delete the cache file to start afresh, or point this run at another cache path",
                path.display()
            ),
            CacheError::Spawn { path, source } => write!(
                f,
                "response cache {}: cannot start its writer thread: {source}; \
                 lower the concurrency or run without the cache",
                path.display()
            ),
            CacheError::Read { path, source } => write!(
                f,
                "response cache {}: lookup failed: {source}; \
                 if this persists, delete the cache file to start afresh",
                path.display()
            ),
            CacheError::Write { path, entries, source } => write!(
                f,
                "response cache {}: writing {entries} entries failed (they will be asked again next run): {source}; \
                 check free disk space and permissions, or delete the cache file to start afresh",
                path.display()
            ),
            CacheError::Corrupt { path, key, detail } => write!(
                f,
                "response cache {}: the row for key {key} is corrupt ({detail}); \
                 it can be treated as a miss, or delete the cache file to start afresh",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CacheError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CacheError::CreateDir { source, .. } | CacheError::Spawn { source, .. } => Some(source),
            CacheError::Open { source, .. }
            | CacheError::Read { source, .. }
            | CacheError::Write { source, .. } => Some(source),
            CacheError::NoWal { .. }
            | CacheError::SchemaMismatch { .. }
            | CacheError::Corrupt { .. } => None,
        }
    }
}

/// One answer waiting to be written.
struct PendingEntry {
    provider: String,
    model: String,
    /// The completion as stored (JSON), serialised outside any lock.
    json: String,
    /// Kept to answer `get` without parsing.
    completion: CachedCompletion,
    created_at: i64,
}

type Batch = HashMap<String, PendingEntry>;

/// What is not yet committed.
struct Pending {
    /// Filling; a later put of a key replaces the earlier entry.
    current: Batch,
    /// Full batches waiting for (or in) a write, oldest first. Removed from
    /// here only once committed.
    sealed: VecDeque<Arc<Batch>>,
    /// Tells the writer thread to stop once `sealed` is empty.
    shutdown: bool,
}

impl Pending {
    fn seal(&mut self) {
        if !self.current.is_empty() {
            let batch = std::mem::replace(&mut self.current, HashMap::with_capacity(BATCH_SIZE));
            self.sealed.push_back(Arc::new(batch));
        }
    }
}

/// What the handle shares with its writer thread.
struct Shared {
    path: PathBuf,
    pending: Mutex<Pending>,
    /// Signalled (with `pending`) when a batch is sealed or on shutdown.
    wake: Condvar,
    writer: Mutex<Connection>,
    /// The first write failure not yet returned to a caller.
    failure: Mutex<Option<CacheError>>,
    has_failure: AtomicBool,
}

/// A SQLite-backed response cache, safe to share between threads (`Arc`).
pub struct ResponseCache {
    shared: Arc<Shared>,
    reader: Mutex<Connection>,
    writer_thread: Option<JoinHandle<()>>,
}

const SQL_GET: &str = "SELECT completion, created_at FROM responses WHERE key = ?1";
const SQL_PUT: &str =
    "INSERT OR REPLACE INTO responses (key, provider, model, completion, created_at) \
                       VALUES (?1, ?2, ?3, ?4, ?5)";
const SQL_EXISTS: &str = "SELECT 1 FROM responses WHERE key = ?1";
const SQL_COUNT: &str = "SELECT COUNT(*) FROM responses";

/// A poisoned lock only means another thread panicked while holding it; the
/// data behind it (a connection, a map) is still usable for a cache.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn open_connection(path: &Path) -> Result<Connection, CacheError> {
    let open_err = |source| CacheError::Open { path: path.to_path_buf(), source };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.set_prepared_statement_cache_capacity(8);
    Ok(conn)
}

impl Shared {
    /// Writes every sealed batch in one transaction, oldest first, then drops
    /// them from memory. Records a failure for the next `put`/`flush`.
    fn write_sealed(&self) {
        let mut conn = lock(&self.writer);
        let batches: Vec<Arc<Batch>> = lock(&self.pending).sealed.iter().cloned().collect();
        if batches.is_empty() {
            return; // another thread wrote them while we waited for the connection
        }
        let entries = batches.iter().map(|b| b.len()).sum();
        let write_err = |source| CacheError::Write { path: self.path.clone(), entries, source };
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(SQL_PUT)?;
                for batch in &batches {
                    for (key, e) in batch.iter() {
                        stmt.execute(params![key, e.provider, e.model, e.json, e.created_at])?;
                    }
                }
            }
            tx.commit() // on error the transaction rolls back when dropped
        })()
        .map_err(write_err);
        {
            // Only the holder of the writer connection removes batches, and new
            // ones go to the back: ours are the oldest.
            let mut pending = lock(&self.pending);
            for batch in &batches {
                let front = pending.sealed.pop_front();
                debug_assert!(front.is_some_and(|f| Arc::ptr_eq(&f, batch)));
            }
        }
        if let Err(e) = result {
            let mut failure = lock(&self.failure);
            if failure.is_none() {
                *failure = Some(e);
            }
            self.has_failure.store(true, Ordering::Release);
        }
    }

    fn take_failure(&self) -> Result<(), CacheError> {
        if !self.has_failure.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut failure = lock(&self.failure);
        self.has_failure.store(false, Ordering::Release);
        match failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn writer_loop(&self) {
        loop {
            {
                let mut pending = lock(&self.pending);
                while pending.sealed.is_empty() && !pending.shutdown {
                    pending = self.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
                }
                if pending.sealed.is_empty() {
                    return; // shut down with nothing left
                }
            }
            self.write_sealed();
        }
    }
}

impl ResponseCache {
    /// Open or create the cache database at `path`, creating parent directories.
    ///
    /// Sets WAL journal mode, `synchronous=NORMAL` and a 5 s busy timeout, and
    /// checks the schema version (`PRAGMA user_version`): a new file gets the
    /// schema and version [`SCHEMA_VERSION`]; a file of another version gives
    /// [`CacheError::SchemaMismatch`]. Starts one writer thread per handle.
    pub fn open(path: &Path) -> Result<ResponseCache, CacheError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .map_err(|source| CacheError::CreateDir { path: path.to_path_buf(), source })?;
            }
        }
        let open_err = |source| CacheError::Open { path: path.to_path_buf(), source };
        let mut writer = open_connection(path)?;
        // Reports the mode in force; a file that is not a database fails here.
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(CacheError::NoWal { path: path.to_path_buf(), mode });
        }
        writer.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        // Truncate the WAL back to this size after a checkpoint (it can grow
        // past it while readers hold old snapshots).
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(open_err)?;

        // Check-and-create under the write lock, so two processes opening a new
        // file at once agree on one schema.
        let tx =
            writer.transaction_with_behavior(TransactionBehavior::Immediate).map_err(open_err)?;
        let version: i64 =
            tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open_err)?;
        if version == 0 {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS responses (
                     key TEXT PRIMARY KEY,
                     provider TEXT NOT NULL,
                     model TEXT NOT NULL,
                     completion TEXT NOT NULL,
                     created_at INTEGER NOT NULL
                 );",
            )
            .map_err(open_err)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(open_err)?;
        } else if version != SCHEMA_VERSION {
            return Err(CacheError::SchemaMismatch {
                path: path.to_path_buf(),
                found: version,
                expected: SCHEMA_VERSION,
            });
        }
        tx.commit().map_err(open_err)?;

        let reader = open_connection(path)?;
        reader.pragma_update(None, "query_only", true).map_err(open_err)?;

        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            pending: Mutex::new(Pending {
                current: HashMap::with_capacity(BATCH_SIZE),
                sealed: VecDeque::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
            writer: Mutex::new(writer),
            failure: Mutex::new(None),
            has_failure: AtomicBool::new(false),
        });
        let for_thread = Arc::clone(&shared);
        let writer_thread = std::thread::Builder::new()
            .name("evalgate-cache-writer".into())
            .spawn(move || for_thread.writer_loop())
            .map_err(|source| CacheError::Spawn { path: path.to_path_buf(), source })?;
        Ok(ResponseCache { shared, reader: Mutex::new(reader), writer_thread: Some(writer_thread) })
    }

    /// The database file this cache lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The cached answer for `key`, pending or written; `None` on a miss.
    ///
    /// A row that does not parse gives [`CacheError::Corrupt`], which the
    /// caller may treat as a miss.
    pub fn get(&self, key: &str) -> Result<Option<CachedCompletion>, CacheError> {
        {
            let pending = lock(&self.shared.pending);
            let newest_first =
                std::iter::once(&pending.current).chain(pending.sealed.iter().rev().map(|b| &**b));
            for batch in newest_first {
                if let Some(entry) = batch.get(key) {
                    let mut hit = entry.completion.clone();
                    hit.recorded_at = Some(entry.created_at);
                    return Ok(Some(hit));
                }
            }
        }
        // Not pending: either absent, or committed before it left `sealed`.
        let path = &self.shared.path;
        let json: Option<(String, i64)> = {
            let conn = lock(&self.reader);
            let read_err = |source| CacheError::Read { path: path.clone(), source };
            let mut stmt = conn.prepare_cached(SQL_GET).map_err(read_err)?;
            stmt.query_row([key], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
                .optional()
                .map_err(|e| match e {
                    // A non-text value, or text that is not UTF-8.
                    rusqlite::Error::FromSqlConversionFailure(..)
                    | rusqlite::Error::InvalidColumnType(..) => CacheError::Corrupt {
                        path: path.clone(),
                        key: key.to_string(),
                        detail: e.to_string(),
                    },
                    other => read_err(other),
                })?
        };
        match json {
            None => Ok(None),
            Some((json, created_at)) => serde_json::from_str::<CachedCompletion>(&json)
                .map(|hit| Some(CachedCompletion { recorded_at: Some(created_at), ..hit }))
                .map_err(|e| CacheError::Corrupt {
                    path: path.clone(),
                    key: key.to_string(),
                    detail: format!("not a cached completion: {e}"),
                }),
        }
    }

    /// Remember `completion` under `key`. Cheap and never blocks on the disk:
    /// the entry joins the current batch, visible to `get` at once; a full
    /// batch is handed to the writer thread. A later put of the same key
    /// replaces the earlier answer.
    ///
    /// An error here reports an earlier batch write that failed (its entries
    /// were dropped); this entry was still taken. Never pass secrets in any
    /// argument.
    pub fn put(
        &self,
        key: &str,
        provider: &str,
        model: &str,
        completion: &CachedCompletion,
    ) -> Result<(), CacheError> {
        let json = serde_json::to_string(completion)
            .expect("a CachedCompletion (strings and integers) always serialises");
        let entry = PendingEntry {
            provider: provider.to_string(),
            model: model.to_string(),
            json,
            completion: completion.clone(),
            created_at: unix_now(),
        };
        {
            let mut pending = lock(&self.shared.pending);
            pending.current.insert(key.to_string(), entry);
            if pending.current.len() >= BATCH_SIZE {
                pending.seal();
                self.shared.wake.notify_one();
            }
        }
        self.shared.take_failure()
    }

    /// Write everything pending now, on this thread, and return once it is
    /// committed. Returns the error of this write, or of an earlier batch
    /// write not yet reported.
    pub fn flush(&self) -> Result<(), CacheError> {
        lock(&self.shared.pending).seal();
        self.shared.write_sealed();
        self.shared.take_failure()
    }

    /// How many distinct keys the cache holds, written or pending.
    pub fn len(&self) -> Result<u64, CacheError> {
        // Holding the writer connection stops commits, so nothing is counted
        // twice or missed.
        let conn = lock(&self.shared.writer);
        let pending = lock(&self.shared.pending);
        let read_err = |source| CacheError::Read { path: self.shared.path.clone(), source };
        let written: i64 = conn
            .prepare_cached(SQL_COUNT)
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(read_err)?;
        let pending_keys: HashSet<&str> = pending
            .sealed
            .iter()
            .flat_map(|b| b.keys())
            .chain(pending.current.keys())
            .map(String::as_str)
            .collect();
        let mut only_pending = 0u64;
        let mut exists = conn.prepare_cached(SQL_EXISTS).map_err(read_err)?;
        for key in pending_keys {
            if !exists.exists([key]).map_err(read_err)? {
                only_pending += 1;
            }
        }
        Ok(u64::try_from(written).unwrap_or(0) + only_pending)
    }

    /// Whether the cache holds no entry at all.
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }
}

impl Drop for ResponseCache {
    /// Writes what is pending and stops the writer thread. Errors cannot be
    /// reported from here: call [`ResponseCache::flush`] at the end of a run to
    /// see them.
    fn drop(&mut self) {
        let _ = self.flush();
        lock(&self.shared.pending).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn completion(text: &str) -> CachedCompletion {
        CachedCompletion {
            text: text.to_string(),
            input_tokens: Some(12),
            output_tokens: Some(3),
            cached_input_tokens: None,
            cache_write_input_tokens: None,
            finish_reason: Some("stop".to_string()),
            latency_ms: Some(1.5),
            recorded_at: None,
        }
    }

    /// A cache hit without the time it was stored, to compare with what was put.
    fn undated(hit: CachedCompletion) -> CachedCompletion {
        CachedCompletion { recorded_at: None, ..hit }
    }

    #[test]
    fn a_hit_is_dated_when_it_was_stored() {
        let (_dir, _path, cache) = temp_cache();
        let before = unix_now();
        cache.put("k", "p", "m", &completion("x")).unwrap();
        let pending = cache.get("k").unwrap().unwrap().recorded_at.unwrap();
        cache.flush().unwrap();
        let written = cache.get("k").unwrap().unwrap().recorded_at.unwrap();
        assert_eq!(pending, written);
        assert!((before..=unix_now()).contains(&written), "{before} {written}");
    }

    fn temp_cache() -> (tempfile::TempDir, PathBuf, ResponseCache) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("cache.sqlite");
        let cache = ResponseCache::open(&path).unwrap();
        (dir, path, cache)
    }

    #[test]
    fn cache_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ResponseCache>();
        assert_send_sync::<CacheError>();
    }

    /// The expected digest was computed independently with Python's hashlib:
    /// ```python
    /// import hashlib, struct
    /// def part(b): return struct.pack(">Q", len(b)) + b
    /// body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}'
    /// parts = [b"evalgate-response-cache-v1", b"openai",
    ///          b"https://api.openai.com/v1", b"gpt-4o-mini", body]
    /// print(hashlib.sha256(b"".join(part(p) for p in parts)).hexdigest())
    /// ```
    #[test]
    fn key_is_stable() {
        let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#;
        assert_eq!(
            cache_key("openai", "https://api.openai.com/v1", "gpt-4o-mini", body),
            "9287b36434e3a7bd04613539689be9bc867df78b473acc77b85491f47b7ae888"
        );
        // Empty parts too (python: same with all four parts b"").
        assert_eq!(
            cache_key("", "", "", b""),
            "d7898fa6c5ce5bf5a91bffe852082eac2dbfe25c1aa82234aa7808789b8614c9"
        );
    }

    #[test]
    fn key_differs_when_any_part_differs() {
        let base = cache_key("openai", "https://a/v1", "m", b"{}");
        assert_ne!(base, cache_key("openai", "https://b/v1", "m", b"{}"));
        assert_ne!(base, cache_key("openai", "https://a/v1/", "m", b"{}"));
        assert_ne!(base, cache_key("openai", "https://a/v1", "m2", b"{}"));
        assert_ne!(base, cache_key("openai", "https://a/v1", "m", b"{ }"));
        assert_ne!(base, cache_key("vllm", "https://a/v1", "m", b"{}"));
        // Shifting bytes between parts must not collide (length prefixes).
        assert_ne!(cache_key("ab", "c", "m", b""), cache_key("a", "bc", "m", b""));
        assert_ne!(cache_key("a", "", "m", b""), cache_key("", "a", "m", b""));
        assert_eq!(base.len(), 64);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn round_trip_and_miss() {
        let (_dir, _path, cache) = temp_cache();
        let key = cache_key("openai", "http://x", "m", b"body");
        assert_eq!(cache.get(&key).unwrap().map(undated), None);
        let c = CachedCompletion {
            text: "héllo \"quoted\"\nnew line".to_string(),
            input_tokens: Some(u64::MAX),
            output_tokens: None,
            cached_input_tokens: Some(0),
            cache_write_input_tokens: None,
            finish_reason: None,
            latency_ms: None,
            recorded_at: None,
        };
        cache.put(&key, "openai", "m", &c).unwrap();
        assert_eq!(cache.get(&key).unwrap().map(undated), Some(c.clone()));
        cache.flush().unwrap();
        assert_eq!(cache.get(&key).unwrap().map(undated), Some(c));
        assert_eq!(cache.get("no-such-key").unwrap().map(undated), None);
        assert_eq!(cache.len().unwrap(), 1);
    }

    #[test]
    fn pending_entries_are_visible_before_flush() {
        let (_dir, path, cache) = temp_cache();
        let key = cache_key("p", "u", "m", b"pending");
        cache.put(&key, "p", "m", &completion("pending answer")).unwrap();
        // Nothing written yet: another handle does not see it...
        let other = ResponseCache::open(&path).unwrap();
        assert_eq!(other.get(&key).unwrap().map(undated), None);
        // ...but this one does, and counts it.
        assert_eq!(cache.get(&key).unwrap().map(undated), Some(completion("pending answer")));
        assert_eq!(cache.len().unwrap(), 1);
        cache.flush().unwrap();
        assert_eq!(other.get(&key).unwrap().map(undated), Some(completion("pending answer")));
    }

    #[test]
    fn a_full_batch_is_written_without_flush() {
        let (_dir, path, cache) = temp_cache();
        let other = ResponseCache::open(&path).unwrap();
        for i in 0..BATCH_SIZE {
            let key = cache_key("p", "u", "m", format!("{i}").as_bytes());
            cache.put(&key, "p", "m", &completion(&format!("a{i}"))).unwrap();
        }
        // The 64th put sealed the batch; the writer thread writes it soon.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while other.len().unwrap() < BATCH_SIZE as u64 {
            assert!(std::time::Instant::now() < deadline, "the full batch was never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        let key = cache_key("p", "u", "m", b"0");
        assert_eq!(other.get(&key).unwrap().map(undated), Some(completion("a0")));
    }

    #[test]
    fn reopen_after_drop_sees_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let keys: Vec<String> =
            (0..100).map(|i| cache_key("p", "u", "m", format!("{i}").as_bytes())).collect();
        {
            let cache = ResponseCache::open(&path).unwrap();
            for (i, k) in keys.iter().enumerate() {
                cache.put(k, "p", "m", &completion(&format!("a{i}"))).unwrap();
            }
            // 64 written by the batch, 36 left pending for Drop.
        }
        let cache = ResponseCache::open(&path).unwrap();
        assert_eq!(cache.len().unwrap(), 100);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(cache.get(k).unwrap().map(undated), Some(completion(&format!("a{i}"))));
        }
    }

    #[test]
    fn later_put_replaces_earlier() {
        let (_dir, _path, cache) = temp_cache();
        cache.put("k", "p", "m", &completion("old")).unwrap();
        cache.flush().unwrap();
        cache.put("k", "p", "m", &completion("new")).unwrap();
        assert_eq!(cache.len().unwrap(), 1);
        assert_eq!(cache.get("k").unwrap().map(undated), Some(completion("new")));
        cache.flush().unwrap();
        assert_eq!(cache.get("k").unwrap().map(undated), Some(completion("new")));
        assert_eq!(cache.len().unwrap(), 1);
    }

    #[test]
    fn two_handles_on_one_file() {
        let (_dir, path, a) = temp_cache();
        let a = Arc::new(a);
        let b = Arc::new(ResponseCache::open(&path).unwrap());
        // Both write concurrently, in batches, from two threads each.
        let mut threads = Vec::new();
        for (name, cache) in [("a", a.clone()), ("b", b.clone())] {
            for t in 0..2 {
                let cache = cache.clone();
                threads.push(std::thread::spawn(move || {
                    for i in 0..500 {
                        let key = format!("{name}-{t}-{i}");
                        cache.put(&key, "p", "m", &completion(&key)).unwrap();
                    }
                    cache.flush().unwrap();
                }));
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(a.len().unwrap(), 2000);
        assert_eq!(b.len().unwrap(), 2000);
        assert_eq!(a.get("b-1-499").unwrap().map(undated), Some(completion("b-1-499")));
        assert_eq!(b.get("a-0-0").unwrap().map(undated), Some(completion("a-0-0")));
    }

    #[test]
    fn concurrent_get_never_misses_a_put_entry() {
        // Readers race the batch writes: an entry, once put, must stay visible
        // through the hand-over from the pending batch to the database.
        let (_dir, _path, cache) = temp_cache();
        let cache = Arc::new(cache);
        let mut threads = Vec::new();
        for t in 0..4 {
            let cache = cache.clone();
            threads.push(std::thread::spawn(move || {
                for i in 0..2000 {
                    let key = format!("{t}-{i}");
                    cache.put(&key, "p", "m", &completion(&key)).unwrap();
                    assert_eq!(
                        cache.get(&key).unwrap().map(undated),
                        Some(completion(&key)),
                        "{key}"
                    );
                    let earlier = format!("{t}-{}", i / 2);
                    assert!(cache.get(&earlier).unwrap().map(undated).is_some(), "{earlier}");
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cache.len().unwrap(), 8000);
    }

    #[test]
    fn schema_version_mismatch_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        drop(ResponseCache::open(&path).unwrap());
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
        }
        let err = ResponseCache::open(&path).err().expect("a schema mismatch");
        assert!(matches!(err, CacheError::SchemaMismatch { found: 2, expected: 1, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("delete the cache file"), "{msg}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = ResponseCache::open(&path).err().expect("an open error");
        assert!(matches!(err, CacheError::Open { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("delete the cache file"), "{msg}");
    }

    #[test]
    fn a_corrupt_row_is_a_corrupt_error() {
        let (_dir, path, cache) = temp_cache();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute("INSERT INTO responses VALUES ('bad', 'p', 'm', 'not json {', 0)", [])
                .unwrap();
            conn.execute(
                "INSERT INTO responses VALUES ('wrong-shape', 'p', 'm', '{\"text\": 5}', 0)",
                [],
            )
            .unwrap();
            conn.execute("INSERT INTO responses VALUES ('blob', 'p', 'm', x'00ff', 0)", [])
                .unwrap();
        }
        for key in ["bad", "wrong-shape", "blob"] {
            let err = cache.get(key).expect_err("a corrupt row");
            assert!(matches!(&err, CacheError::Corrupt { key: k, .. } if k == key), "{err:?}");
            assert!(err.to_string().contains("treated as a miss"), "{err}");
        }
        // A fresh answer replaces the bad row.
        cache.put("bad", "p", "m", &completion("fixed")).unwrap();
        cache.flush().unwrap();
        assert_eq!(cache.get("bad").unwrap().map(undated), Some(completion("fixed")));
    }

    #[test]
    fn the_file_never_holds_a_secret_passed_nowhere() {
        // The API key lives in the caller's client; the cache is never given it.
        // Sanity check: store realistic entries, then grep every file of the
        // database (main file, WAL, shared memory) for it.
        let secret = "sk-test-PLANTED-SECRET-4f9a2c71e0";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        {
            let cache = ResponseCache::open(&path).unwrap();
            for i in 0..200 {
                let body =
                    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"q{i}"}}]}}"#);
                let key = cache_key("openai", "https://api.example/v1", "m", body.as_bytes());
                cache.put(&key, "openai", "m", &completion(&format!("answer {i}"))).unwrap();
            }
            cache.flush().unwrap();
            let mut found_wal = false;
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let entry = entry.unwrap();
                found_wal |= entry.file_name().to_string_lossy().ends_with("-wal");
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds the secret",
                    entry.path().display()
                );
                // The check itself can find things: the answers are there.
                if entry.file_name().to_string_lossy().ends_with("-wal") {
                    let needle = b"answer 199";
                    assert!(bytes.windows(needle.len()).any(|w| w == needle));
                }
            }
            assert!(found_wal, "expected a WAL file while the cache is open");
        }
    }

    #[test]
    fn a_failed_write_is_reported_once() {
        let (_dir, path, cache) = temp_cache();
        Connection::open(&path).unwrap().execute_batch("DROP TABLE responses").unwrap();
        cache.put("k", "p", "m", &completion("lost")).unwrap();
        let err = cache.flush().expect_err("a write error");
        assert!(matches!(err, CacheError::Write { entries: 1, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()) && msg.contains("asked again"), "{msg}");
        // Reported once; the dropped entry is gone from memory.
        cache.flush().unwrap();
        assert!(matches!(cache.get("k"), Err(CacheError::Read { .. })));
        // A failure in the writer thread surfaces on a later put (possibly the
        // very put that filled the batch, if the writer is quick).
        for i in 0..BATCH_SIZE - 1 {
            cache.put(&format!("k{i}"), "p", "m", &completion("x")).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            // The same key each time: it fills the batch once, then only replaces.
            match cache.put("last", "p", "m", &completion("x")) {
                Err(CacheError::Write { entries, .. }) => {
                    assert_eq!(entries, BATCH_SIZE);
                    break;
                }
                Err(other) => panic!("{other:?}"),
                Ok(()) => {
                    assert!(std::time::Instant::now() < deadline, "the failure was never reported");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    #[test]
    fn open_creates_parent_directories_and_sets_wal() {
        let (_dir, path, cache) = temp_cache();
        assert!(path.exists());
        let conn = lock(&cache.shared.writer);
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
        assert_eq!(sync, 1, "NORMAL");
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
