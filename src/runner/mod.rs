//! Running a suite: resolve backends, send every item to every backend concurrently, and append
//! each record to the journal as it completes.

mod limit;
pub mod merge;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::backend::cache::ResponseCache;
use crate::backend::{
    BackendClient, BackendError, Completion, ErrorKind, LocalBackend, OpenAiBackend, RetryPolicy,
};
use crate::error::{Error, Result};
use crate::journal::{
    self, BackendMeta, FewShotMeta, JournalWriter, Record, RecordError, RunMeta, Skipped,
    SuiteMeta, TaskMeta, Tokens,
};
use crate::prompt::{estimate_tokens, ChatMessage, PromptBuilder, PromptTemplates};
use crate::score::judge::{self, Judgement};
use crate::suite::{BackendSpec, Item, Provider, Strategy, Suite, TaskKind};

/// How to run a suite; the CLI's flags, resolved.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run directory; `reports/<suite>/<UTC time>/` when `None`.
    pub out_dir: Option<PathBuf>,
    /// Only these backend ids (all when empty).
    pub backends: Vec<String>,
    /// Only the first N test items.
    pub limit: Option<usize>,
    /// Overrides every backend's concurrency.
    pub concurrency: Option<usize>,
    /// A backend whose key is missing is an error rather than skipped.
    pub require_all: bool,
    /// Backoff, and the attempts of a backend that sets no `max_attempts`; a backend's
    /// `max_retry_delay_secs` replaces `max_delay`.
    pub retry: RetryPolicy,
    /// Refuse to start when the estimated cost is above this, and stop sending once the spend
    /// reaches it (USD; per-token backends only: fixed prices do not grow with a run).
    pub max_cost_usd: Option<f64>,
    /// How long in-flight requests may finish after a stop before they are abandoned.
    pub grace: std::time::Duration,
    /// Continue the run in this directory: send only what has no answer yet.
    pub resume: Option<PathBuf>,
    /// Run only this part of the items.
    pub shard: Option<journal::Shard>,
    /// The response cache's database; `None` turns the cache off.
    pub cache: Option<PathBuf>,
    /// Ask again even when the cache has an answer, and store the new one.
    pub refresh: bool,
}

/// Where the response cache lives unless `--cache` says otherwise.
pub const DEFAULT_CACHE: &str = "reports/.cache/responses.sqlite";

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            out_dir: None,
            backends: Vec::new(),
            limit: None,
            concurrency: None,
            require_all: false,
            retry: RetryPolicy::default(),
            max_cost_usd: None,
            grace: std::time::Duration::from_secs(10),
            resume: None,
            shard: None,
            // Library callers opt in; the CLI turns it on by default.
            cache: None,
            refresh: false,
        }
    }
}

impl StopReason {
    /// For run.json and the report.
    pub fn describe(&self) -> String {
        match self {
            StopReason::Interrupted => "interrupted (Ctrl-C)".to_string(),
            StopReason::Budget { spent_usd, limit_usd } => {
                format!(
                    "stopped at the budget: ${spent_usd:.4} spent of --max-cost-usd {limit_usd}"
                )
            }
        }
    }
}

/// Why a run ended before every item was sent.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// Ctrl-C (SIGINT).
    Interrupted,
    /// The spend reached `--max-cost-usd`.
    Budget { spent_usd: f64, limit_usd: f64 },
}

/// A run directory and whether the run finished.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub stopped: Option<StopReason>,
}

/// Set once, read everywhere: drivers stop sending, retries stop waiting.
#[derive(Default)]
pub struct StopSignal {
    stopped: std::sync::atomic::AtomicBool,
    reason: std::sync::Mutex<Option<StopReason>>,
}

impl StopSignal {
    pub fn stop(&self, reason: StopReason) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}

/// What the runner reports while it works, for a progress display.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Skipped { id: String, reason: String },
    Trained { id: String, items: usize, seconds: f64 },
    Started { dir: PathBuf, backends: usize, items: usize },
    Progress { backend: String, done: usize, total: usize, errors: usize },
    Warning(String),
}

pub type EventSink = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// One backend ready to run.
struct PlannedBackend {
    spec: BackendSpec,
    client: Arc<BackendClient>,
    prompts: Arc<PromptBuilder>,
    retry: RetryPolicy,
    cache: Option<Arc<ResponseCache>>,
    refresh: bool,
    limits: Arc<Limits>,
}

/// A backend's rate limits, shared by its requests.
#[derive(Default)]
struct Limits {
    requests: Option<limit::RateLimiter>,
    tokens: Option<limit::RateLimiter>,
    /// Reply allowance counted against the token limit: `max_tokens`, or a label's length.
    reply_tokens: u64,
}

/// Runs `suite` and returns the run directory; every record is in its journal.
pub async fn run(
    suite: Arc<Suite>,
    options: &RunOptions,
    events: EventSink,
    stop: Arc<StopSignal>,
) -> Result<RunOutcome> {
    let previous = match &options.resume {
        Some(dir) => Some(Previous::load(dir, &suite)?),
        None => None,
    };
    let specs = match &previous {
        Some(p) => select_backends(
            &suite,
            &p.meta.backends.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        )?,
        None => select_backends(&suite, &options.backends)?,
    };
    let templates = Arc::new(
        PromptTemplates::compile(&suite.task)
            .map_err(|(name, e)| Error::Usage(format!("template `{name}`: {e}")))?,
    );
    let http = http_client()?;
    let cache = match &options.cache {
        Some(path) => {
            Some(Arc::new(ResponseCache::open(path).map_err(|e| Error::Usage(e.to_string()))?))
        }
        None => None,
    };
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    for spec in specs {
        let api_key = match &spec.api_key_env {
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => {
                    // A key that cannot be an HTTP header would fail every request; say so now.
                    if !OpenAiBackend::accepts_key(&key) {
                        return Err(Error::Usage(format!(
                            "backend `{}`: the key in {var} contains characters not allowed in an HTTP header (a line break or control character inside it?)",
                            spec.id
                        )));
                    }
                    Some(key)
                }
                _ => {
                    let reason = format!("environment variable {var} is not set");
                    if options.require_all || previous.is_some() {
                        return Err(Error::Usage(format!(
                            "backend `{}`: {reason}; set it, or drop --require-all to skip the backend",
                            spec.id
                        )));
                    }
                    events(RunEvent::Skipped { id: spec.id.clone(), reason: reason.clone() });
                    skipped.push(Skipped { id: spec.id.clone(), reason });
                    continue;
                }
            },
            None => None,
        };
        let client = match spec.provider {
            Provider::Openai => {
                let schema = spec
                    .structured_output
                    .then(|| crate::prompt::schema::json_schema(&suite.task.fields));
                BackendClient::OpenAi(OpenAiBackend::new(
                    &spec,
                    api_key.as_deref(),
                    http.clone(),
                    schema,
                ))
            }
            Provider::Local => {
                let started = Instant::now();
                let local = LocalBackend::train(&suite, &templates)
                    .map_err(|e| Error::Usage(format!("backend `{}`: {e}", spec.id)))?;
                let items = suite.train.as_ref().map_or(0, |t| t.items.len());
                events(RunEvent::Trained {
                    id: spec.id.clone(),
                    items,
                    seconds: started.elapsed().as_secs_f64(),
                });
                BackendClient::Local(local)
            }
        };
        let prompts = PromptBuilder::new(&suite, templates.clone(), &spec.strategy)
            .map_err(|e| Error::Usage(format!("backend `{}`: {e}", spec.id)))?;
        let mut spec = spec;
        if let Some(c) = options.concurrency {
            spec.concurrency = c.max(1);
        }
        let retry = RetryPolicy {
            max_attempts: spec.max_attempts.unwrap_or(options.retry.max_attempts),
            max_delay: spec.max_retry_delay.unwrap_or(options.retry.max_delay),
            ..options.retry
        };
        let limits = Arc::new(Limits {
            requests: spec.requests_per_minute.map(limit::RateLimiter::per_minute),
            tokens: spec.tokens_per_minute.map(limit::RateLimiter::per_minute),
            reply_tokens: reply_allowance(&spec, &suite),
        });
        planned.push(PlannedBackend {
            spec,
            client: Arc::new(client),
            prompts: Arc::new(prompts),
            retry,
            cache: None,
            refresh: false,
            limits,
        });
    }

    // The run's items as indices into the suite's test data: items are never copied, so a
    // large suite is held in memory once.
    let selected: Vec<usize> = match (&previous, options.limit) {
        (Some(p), _) => {
            let by_id: std::collections::HashMap<&str, usize> = suite
                .test
                .items
                .iter()
                .enumerate()
                .map(|(i, item)| (item.id.as_str(), i))
                .collect();
            let mut selected = Vec::with_capacity(p.meta.items.len());
            for id in &p.meta.items {
                let i = by_id.get(id.as_str()).ok_or_else(|| {
                    Error::Usage(format!("item `{id}` of the run is not in the suite's test data"))
                })?;
                selected.push(*i);
            }
            selected
        }
        (None, Some(n)) => (0..n.min(suite.test.items.len())).collect(),
        (None, None) => (0..suite.test.items.len()).collect(),
    };
    let shard = previous.as_ref().map_or(options.shard, |p| p.meta.shard);
    let positions: Vec<usize> = match &previous {
        Some(p) => p.meta.positions.clone().unwrap_or_else(|| (0..selected.len()).collect()),
        None => selected.clone(),
    };
    let (selected, positions): (Vec<usize>, Vec<usize>) = match (shard, &previous) {
        (Some(s), None) => selected
            .into_iter()
            .zip(positions)
            .filter(|&(i, _)| s.holds(&suite.test.items[i].id))
            .unzip(),
        _ => (selected, positions),
    };
    let selected = Arc::new(selected);
    let items = || selected.iter().map(|&i| &suite.test.items[i]);
    if let Some(limit) = options.max_cost_usd {
        let estimate = estimate_cost_usd(&planned, items(), previous.as_ref())?;
        if estimate > limit {
            return Err(Error::Usage(format!(
                "the run would cost about ${estimate:.4}, above --max-cost-usd {limit}; raise the limit, or use --limit or --backend to run less"
            )));
        }
    }
    let dir = match &previous {
        Some(p) => p.dir.clone(),
        None => prepare_dir(&suite, options.out_dir.as_deref())?,
    };
    let mut meta = RunMeta {
        schema_version: 1,
        evalgate_version: env!("CARGO_PKG_VERSION").to_string(),
        suite: SuiteMeta {
            name: suite.name.clone(),
            path: suite.path.display().to_string(),
            sha256: suite.sha256.clone(),
            data_sha256: suite.data_sha256.clone(),
            description: suite.description.clone(),
        },
        task: TaskMeta {
            kind: suite.task.kind.name().into(),
            labels: suite.task.labels.clone(),
            fields: suite.task.fields.clone(),
        },
        backends: planned.iter().map(|p| backend_meta(&p.spec)).collect(),
        skipped,
        items: items().map(|i| i.id.clone()).collect(),
        started_at: crate::time::rfc3339(SystemTime::now()),
        finished_at: None,
        requests_per_day: suite.requests_per_day,
        compare: suite.compare.clone(),
        groups: items().map(|i| i.group.clone()).collect::<Option<Vec<String>>>(),
        stopped: None,
        shard,
        positions: shard.map(|_| positions),
    };
    if let Some(p) = &previous {
        meta.started_at = p.meta.started_at.clone();
        meta.skipped = p.meta.skipped.clone();
    }
    meta.write(&dir)?;
    events(RunEvent::Started { dir: dir.clone(), backends: planned.len(), items: selected.len() });

    let (tx, rx) = mpsc::channel::<Record>(1024);
    let budget = options.max_cost_usd.map(|limit| Budget {
        limit_usd: limit,
        prices: planned
            .iter()
            .map(|p| (p.spec.id.clone(), p.spec.price.as_ref().map(|p| p.pricing.clone())))
            .collect(),
        stop: stop.clone(),
    });
    // Progress counts samples: items × epochs, less what a resumed run already has.
    let progress: Vec<(String, usize, usize)> = planned
        .iter()
        .map(|p| {
            let already =
                previous.as_ref().and_then(|prev| prev.done.get(&p.spec.id)).map_or(0, |d| d.len());
            (p.spec.id.clone(), already, selected.len() * p.spec.epochs as usize)
        })
        .collect();
    let writer = spawn_journal_writer(&dir, rx, progress, events.clone(), budget)?;
    let mut drivers = JoinSet::new();
    for mut backend in planned {
        backend.cache = cache.clone();
        backend.refresh = options.refresh;
        let done = Arc::new(
            previous
                .as_ref()
                .and_then(|p| p.done.get(&backend.spec.id).cloned())
                .unwrap_or_default(),
        );
        drivers.spawn(drive_backend(
            backend,
            suite.clone(),
            selected.clone(),
            done,
            tx.clone(),
            stop.clone(),
            options.grace,
        ));
    }
    drop(tx);
    // A stop that came after the last item was sent (the budget reached by the last record)
    // leaves a complete run: only a driver that left items unsent makes it incomplete.
    let mut incomplete = false;
    while let Some(result) = drivers.join_next().await {
        incomplete |= result.map_err(|e| Error::Backend(format!("a backend task failed: {e}")))?;
    }
    writer.await.map_err(|e| Error::Backend(format!("the journal writer failed: {e}")))??;
    if let Some(cache) = &cache {
        if let Err(e) = cache.flush() {
            events(RunEvent::Warning(format!("the response cache could not be saved: {e}")));
        }
    }

    meta.finished_at = Some(crate::time::rfc3339(SystemTime::now()));
    let stopped = if incomplete { stop.reason() } else { None };
    meta.stopped = stopped.as_ref().map(|r| r.describe());
    meta.write(&dir)?;
    Ok(RunOutcome { dir, stopped })
}

/// A run being resumed: its metadata and, per backend, the items already answered.
struct Previous {
    dir: PathBuf,
    meta: RunMeta,
    done: std::collections::HashMap<String, std::collections::HashSet<(String, u32)>>,
}

impl Previous {
    fn load(dir: &Path, suite: &Suite) -> Result<Previous> {
        let meta = RunMeta::read(dir)?;
        if meta.suite.sha256 != suite.sha256 {
            return Err(Error::Usage(format!(
                "{} was run with a different suite file (sha256 {} now {}); resume needs the same suite, or start a new run",
                dir.display(),
                &meta.suite.sha256[..12.min(meta.suite.sha256.len())],
                &suite.sha256[..12]
            )));
        }
        if meta.suite.data_sha256 != suite.data_sha256 {
            return Err(Error::Usage(format!(
                "the test or train data of {} changed since it was run; resume needs the same data, or start a new run",
                dir.display()
            )));
        }
        journal::repair_tail(dir)?;
        #[derive(serde::Deserialize)]
        struct Done {
            id: String,
            backend: String,
            error: Option<RecordError>,
            #[serde(default)]
            epoch: u32,
        }
        let mut done: std::collections::HashMap<String, std::collections::HashSet<(String, u32)>> =
            Default::default();
        // Failed items are sent again: a resumed run is a chance to answer them.
        journal::read_records(dir, |r: Done| {
            if r.error.is_none() {
                done.entry(r.backend).or_default().insert((r.id, r.epoch));
            }
        })?;
        Ok(Previous { dir: dir.to_path_buf(), meta, done })
    }
}

/// Stops the run when the per-token spend reaches the limit.
struct Budget {
    limit_usd: f64,
    prices: Vec<(String, Option<crate::cost::Pricing>)>,
    stop: Arc<StopSignal>,
}

/// The run's cost before it starts: every prompt rendered and counted (about four characters a
/// token), and the reply as long as `max_tokens` or the longest label. Fixed-price and local
/// backends add nothing: their cost does not grow with a run.
fn estimate_cost_usd<'a>(
    planned: &[PlannedBackend],
    items: impl Iterator<Item = &'a Item> + Clone,
    previous: Option<&Previous>,
) -> Result<f64> {
    let mut total = 0.0;
    for p in planned {
        let pricing = match (&p.spec.price, p.spec.provider) {
            (_, Provider::Local) => continue,
            (Some(price), _) if matches!(price.pricing, crate::cost::Pricing::Fixed { .. }) => continue,
            (Some(price), _) => &price.pricing,
            (None, _) => {
                return Err(Error::Usage(format!(
                    "backend `{}` has no known price, so --max-cost-usd cannot be kept; add `pricing:` to it",
                    p.spec.id
                )))
            }
        };
        let output = p.limits.reply_tokens;
        // Only what will be sent: every epoch of every item, less what a resumed run has.
        let done = previous.and_then(|prev| prev.done.get(&p.spec.id));
        for item in items.clone() {
            let to_send = (0..p.spec.epochs)
                .filter(|&e| done.is_none_or(|d| !d.contains(&(item.id.clone(), e))))
                .count();
            if to_send == 0 {
                continue;
            }
            let messages = p
                .prompts
                .messages(item)
                .map_err(|e| Error::Usage(format!("backend `{}`: {e}", p.spec.id)))?;
            let input = estimate_tokens(messages.iter().map(|m| m.content.as_str()));
            total += to_send as f64
                * crate::cost::request_cost_usd(pricing, input as f64, output as f64, 0.0)
                    .unwrap_or(0.0);
        }
    }
    Ok(total)
}

fn select_backends(suite: &Suite, wanted: &[String]) -> Result<Vec<BackendSpec>> {
    for id in wanted {
        if !suite.backends.iter().any(|b| &b.id == id) {
            let known: Vec<&str> = suite.backends.iter().map(|b| b.id.as_str()).collect();
            return Err(Error::Usage(format!(
                "--backend {id}: the suite has no such backend; it has: {}",
                known.join(", ")
            )));
        }
    }
    Ok(suite
        .backends
        .iter()
        .filter(|b| wanted.is_empty() || wanted.contains(&b.id))
        .cloned()
        .collect())
}

fn backend_meta(spec: &BackendSpec) -> BackendMeta {
    BackendMeta {
        id: spec.id.clone(),
        provider: spec.provider.as_str().to_string(),
        model: spec.model.clone(),
        strategy: spec.strategy.name().to_string(),
        base_url: spec.base_url.as_deref().map(journal::redact_url),
        few_shot: match &spec.strategy {
            Strategy::FewShot(f) => Some(FewShotMeta {
                k: f.k,
                select: serde_json::to_value(f.select)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                seed: f.seed,
            }),
            _ => None,
        },
        price: spec.price.clone(),
        epochs: spec.epochs,
        structured_output: spec.structured_output,
    }
}

fn http_client() -> Result<reqwest::Client> {
    OpenAiBackend::http_client()
        .map_err(|e| Error::Backend(format!("cannot build the HTTP client: {e}")))
}

fn prepare_dir(suite: &Suite, out: Option<&Path>) -> Result<PathBuf> {
    let dir = match out {
        Some(dir) => dir.to_path_buf(),
        None => {
            let name: String = suite
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' })
                .collect();
            let base = Path::new("reports").join(name);
            let stamp = crate::time::compact(SystemTime::now());
            let mut dir = base.join(&stamp);
            let mut n = 2;
            while dir.exists() {
                dir = base.join(format!("{stamp}-{n}"));
                n += 1;
            }
            dir
        }
    };
    if dir.join(journal::RECORDS_FILE).exists() {
        return Err(Error::Usage(format!(
            "{} already holds a run; choose another --out, or delete it",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// Sends every item to one backend, at most `concurrency` at a time. Prompts are rendered just
/// before sending, so memory holds only the requests in flight.
async fn drive_backend(
    backend: PlannedBackend,
    suite: Arc<Suite>,
    selected: Arc<Vec<usize>>,
    done: Arc<std::collections::HashSet<(String, u32)>>,
    tx: mpsc::Sender<Record>,
    stop: Arc<StopSignal>,
    grace: std::time::Duration,
) -> bool {
    let PlannedBackend { spec, client, prompts, retry, cache, refresh, limits } = backend;
    let spec = Arc::new(spec);
    let semaphore = Arc::new(Semaphore::new(spec.concurrency));
    let mut tasks = JoinSet::new();
    let mut left_unsent = false;
    let items = &suite.test.items;
    let samples = selected.iter().flat_map(|&i| (0..spec.epochs).map(move |e| (i, e)));
    for (index, epoch) in samples {
        // Only a resumed run has answers to skip; a new one allocates nothing here.
        if !done.is_empty() && done.contains(&(items[index].id.clone(), epoch)) {
            continue;
        }
        let Ok(permit) = semaphore.clone().acquire_owned().await else { break };
        if stop.is_stopped() {
            left_unsent = true;
            break;
        }
        while let Some(r) = tasks.try_join_next() {
            left_unsent |= r.unwrap_or(true);
        }
        let item = &items[index];
        let record = match prompts.messages(item) {
            Ok(messages) => {
                let (client, spec, tx, suite, stop, cache, limits) = (
                    client.clone(),
                    spec.clone(),
                    tx.clone(),
                    suite.clone(),
                    stop.clone(),
                    cache.clone(),
                    limits.clone(),
                );
                tasks.spawn(async move {
                    let item = &suite.test.items[index];
                    // A panic below must still leave a record: an item is never silently lost.
                    let ask = Ask {
                        client: &client,
                        spec: &spec,
                        suite: &suite,
                        retry,
                        stop: &stop,
                        cache: cache.as_deref(),
                        refresh,
                        epoch,
                        limits: &limits,
                    };
                    let answer = std::panic::AssertUnwindSafe(answer_item(&ask, item, messages));
                    let mut record = match futures::FutureExt::catch_unwind(answer).await {
                        Ok(record) => record,
                        Err(panic) => {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            Some(failed_record(
                                &spec.id,
                                item,
                                Vec::new(),
                                BackendError::new(
                                    ErrorKind::Internal,
                                    format!("internal error: {what}"),
                                ),
                                0.0,
                                0,
                            ))
                        }
                    };
                    if let Some(r) = &mut record {
                        r.epoch = epoch;
                    }
                    drop(permit);
                    // No record for an item abandoned by a stop: it is missing, and a resumed
                    // run sends it again.
                    let abandoned = record.is_none();
                    if let Some(record) = record {
                        let _ = tx.send(record).await;
                    }
                    abandoned
                });
                continue;
            }
            Err(e) => {
                let mut r = failed_record(
                    &spec.id,
                    item,
                    Vec::new(),
                    BackendError::new(
                        ErrorKind::Internal,
                        format!("cannot render the prompt: {e}"),
                    ),
                    0.0,
                    0,
                );
                r.epoch = epoch;
                r
            }
        };
        let _ = tx.send(record).await;
    }
    if stop.is_stopped() {
        // Let requests in flight finish for a grace period, then abandon them.
        let drain = async {
            let mut abandoned = false;
            while let Some(r) = tasks.join_next().await {
                abandoned |= r.unwrap_or(true);
            }
            abandoned
        };
        match tokio::time::timeout(grace, drain).await {
            Ok(abandoned) => left_unsent |= abandoned,
            Err(_) => {
                tasks.abort_all();
                left_unsent = true;
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        left_unsent |= r.unwrap_or(true);
    }
    left_unsent
}

/// Sends one item with retries and turns the outcome into a record.
/// What answering one item needs.
struct Ask<'a> {
    client: &'a BackendClient,
    spec: &'a BackendSpec,
    suite: &'a Suite,
    retry: RetryPolicy,
    stop: &'a StopSignal,
    cache: Option<&'a ResponseCache>,
    refresh: bool,
    epoch: u32,
    limits: &'a Limits,
}

async fn answer_item(ask: &Ask<'_>, item: &Item, messages: Vec<ChatMessage>) -> Option<Record> {
    let Ask { client, spec, suite, retry, stop, .. } = *ask;
    let started = Instant::now();
    let mut attempt = 0;
    let prepared = match client.prepare(&messages) {
        Ok(p) => p,
        Err(error) => return Some(failed_record(&spec.id, item, messages, error, 0.0, 0)),
    };
    let slot = ask.cache.and_then(|_| client.cache_slot(&prepared, ask.epoch));
    if let (Some(cache), Some(slot), false) = (ask.cache, &slot, ask.refresh) {
        if let Some(hit) = slot.lookup(cache) {
            let latency_ms = hit.latency_ms.unwrap_or(0.0);
            let mut record =
                answered_record(&spec.id, suite, item, messages, hit.into(), latency_ms, 0);
            record.cached = true;
            return Some(record);
        }
    }
    let request_tokens = ask.limits.tokens.as_ref().map(|_| {
        estimate_tokens(messages.iter().map(|m| m.content.as_str())) + ask.limits.reply_tokens
    });
    loop {
        attempt += 1;
        // Every attempt counts against the limits: the provider counts retries too.
        if let Some(limiter) = &ask.limits.requests {
            limiter.acquire(1.0).await;
        }
        if let (Some(limiter), Some(tokens)) = (&ask.limits.tokens, request_tokens) {
            limiter.acquire(tokens as f64).await;
        }
        match client.send(&prepared, &messages).await {
            Ok(completion) => {
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                if let (Some(cache), Some(slot)) = (ask.cache, &slot) {
                    slot.store(cache, &completion, latency_ms);
                }
                return Some(answered_record(
                    &spec.id, suite, item, messages, completion, latency_ms, attempt,
                ));
            }
            Err(error) => match retry.next_delay(attempt, &error) {
                Some(wait) => {
                    if stop.is_stopped() {
                        return None;
                    }
                    tokio::time::sleep(wait).await;
                }
                None => {
                    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                    return Some(failed_record(
                        &spec.id, item, messages, error, latency_ms, attempt,
                    ));
                }
            },
        }
    }
}

fn answered_record(
    backend: &str,
    suite: &Suite,
    item: &Item,
    prompt: Vec<ChatMessage>,
    completion: Completion,
    latency_ms: f64,
    attempts: u32,
) -> Record {
    let Judgement { answer, correct } = match suite.task.kind {
        TaskKind::Classification => judge::classification(
            &suite.label_parser,
            &suite.task.labels,
            &item.label,
            &completion.text,
        ),
        TaskKind::Extraction => {
            judge::extraction(&suite.task.fields, &item.label, &completion.text)
        }
    };
    let tokens = match completion.usage {
        Some(u) => Tokens {
            input: u.input,
            output: u.output,
            cached_input: u.cached_input,
            estimated: false,
        },
        None => Tokens {
            input: estimate_tokens(prompt.iter().map(|m| m.content.as_str())),
            output: estimate_tokens(std::iter::once(completion.text.as_str())),
            cached_input: 0,
            estimated: true,
        },
    };
    Record {
        id: item.id.clone(),
        backend: backend.to_string(),
        prompt,
        invalid: answer.is_none(),
        answer,
        reply: Some(completion.text),
        gold: item.label.clone(),
        correct: Some(correct),
        tokens,
        latency_ms,
        attempts,
        finish_reason: completion.finish_reason,
        error: None,
        epoch: 0,
        cached: false,
    }
}

fn failed_record(
    backend: &str,
    item: &Item,
    prompt: Vec<ChatMessage>,
    error: BackendError,
    latency_ms: f64,
    attempts: u32,
) -> Record {
    Record {
        id: item.id.clone(),
        backend: backend.to_string(),
        prompt,
        reply: None,
        answer: None,
        gold: item.label.clone(),
        correct: None,
        invalid: false,
        tokens: Tokens::default(),
        latency_ms,
        attempts,
        finish_reason: None,
        error: Some(RecordError {
            kind: error.kind.as_str().to_string(),
            status: error.status,
            message: error.message,
        }),
        epoch: 0,
        cached: false,
    }
}

/// The reply tokens a request is assumed to use, for budgets and token limits: `max_tokens`, or
/// the longest gold answer (label or extraction object) at about four characters a token plus
/// the chat formatting.
fn reply_allowance(spec: &BackendSpec, suite: &Suite) -> u64 {
    let longest_label = match suite.task.kind {
        TaskKind::Classification => {
            suite.task.labels.iter().map(|l| l.chars().count() as u64).max().unwrap_or(0)
        }
        TaskKind::Extraction => {
            suite.test.items.iter().map(|i| i.label.chars().count() as u64).max().unwrap_or(0)
        }
    };
    spec.max_tokens.map_or(longest_label.div_ceil(4) + 4, u64::from)
}

/// Writes records on a blocking thread as they arrive, flushing whenever the queue is drained,
/// so a killed run loses at most what was still in flight.
fn spawn_journal_writer(
    dir: &Path,
    mut rx: mpsc::Receiver<Record>,
    backends: Vec<(String, usize, usize)>,
    events: EventSink,
    budget: Option<Budget>,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let mut journal = JournalWriter::create(dir)?;
    Ok(tokio::task::spawn_blocking(move || {
        let mut done: Vec<usize> = backends.iter().map(|(_, already, _)| *already).collect();
        let mut errors = vec![0usize; backends.len()];
        let mut spent = 0.0;
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(record) = next {
                journal.append(&record)?;
                // A cached answer costs nothing this time.
                if let Some(budget) = budget.as_ref().filter(|_| !record.cached) {
                    let pricing = budget
                        .prices
                        .iter()
                        .find(|(id, _)| id == &record.backend)
                        .and_then(|(_, p)| p.as_ref());
                    if let Some(pricing) = pricing {
                        let t = &record.tokens;
                        spent += crate::cost::request_cost_usd(
                            pricing,
                            t.input as f64,
                            t.output as f64,
                            t.cached_input as f64,
                        )
                        .unwrap_or(0.0);
                    }
                    if spent >= budget.limit_usd && !budget.stop.is_stopped() {
                        budget.stop.stop(StopReason::Budget {
                            spent_usd: spent,
                            limit_usd: budget.limit_usd,
                        });
                    }
                }
                if let Some(b) = backends.iter().position(|(id, _, _)| id == &record.backend) {
                    done[b] += 1;
                    errors[b] += usize::from(record.error.is_some());
                    let total = backends[b].2;
                    events(RunEvent::Progress {
                        backend: record.backend.clone(),
                        done: done[b].min(total),
                        total,
                        errors: errors[b],
                    });
                }
                next = rx.try_recv().ok();
            }
            journal.flush()?;
        }
        journal.flush()
    }))
}
