//! The run plan: a suite, the run's options and the environment resolved into every decision a
//! run needs, before any request is sent.
//!
//! [`RunPlan::resolve`] chooses the backends (and which are skipped for a missing key, with the
//! reason), builds their clients (training the local classifier), prompt builders, retry policies
//! and rate limits, loads a resumed run's state, selects the items (`--limit`, a shard), keeps
//! the budget (`--max-cost-usd`) and prepares run.json. The runner (`runner::run`) then only
//! executes the plan, and `evalgate validate` resolves one to say which backends a run would skip
//! and what it would cost. The plan imports the suite, prompt and backend modules, never the
//! runner.
//!
//! ```no_run
//! # async fn example() -> evalgate::Result<()> {
//! use std::sync::Arc;
//! use evalgate::plan::{self, ProcessEnv, RunOptions, RunPlan};
//! use evalgate::runner::{self, StopSignal};
//!
//! let suite = Arc::new(plan::load_suite(std::path::Path::new("suites/quickstart.yaml"))?);
//! let plan = RunPlan::resolve(suite, &RunOptions::default(), &ProcessEnv)?;
//! let outcome = runner::run(plan, Arc::new(|_| {}), Arc::new(StopSignal::default())).await?;
//! println!("{}", outcome.dir.display());
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::backend::batch::{AnthropicBatch, BatchClient, OpenAiBatch, PollBackoff};
use crate::backend::cache::ResponseCache;
use crate::backend::{
    AnthropicBackend, BackendClient, LocalBackend, OpenAiBackend, ReplayBackend, RetryPolicy,
};
use crate::cost::{BatchDiscount, PriceTable, Pricing};
use crate::error::{Error, Result, SuiteErrors};
use crate::journal::{
    self, BackendMeta, FewShotMeta, RecordError, RunMeta, Shard, Skipped, SuiteMeta, TaskMeta,
};
use crate::prompt::{self, PromptBuilder, PromptTemplates};
use crate::suite::{self, BackendSpec, Provider, Strategy, Suite, TaskKind};

/// How to run a suite; the CLI's flags, parsed.
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
    pub grace: Duration,
    /// Continue the run in this directory: send only what has no answer yet.
    pub resume: Option<PathBuf>,
    /// Run only this part of the items.
    pub shard: Option<Shard>,
    /// The response cache's database; `None` turns the cache off.
    pub cache: Option<PathBuf>,
    /// Ask again even when the cache has an answer, and store the new one.
    pub refresh: bool,
    /// Cached answers older than this are asked again; the suite's `cache.max_age` when `None`.
    pub cache_max_age: Option<Duration>,
    /// `--batch`: every backend whose provider has a batch API runs in batch mode (a resumed
    /// run keeps the mode each backend ran in).
    pub batch: bool,
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
            grace: Duration::from_secs(10),
            resume: None,
            shard: None,
            // Library callers opt in; the CLI turns it on by default.
            cache: None,
            refresh: false,
            cache_max_age: None,
            batch: false,
        }
    }
}

/// Where a plan reads environment variables (the backends' API keys): [`ProcessEnv`], or in
/// tests any `Fn(&str) -> Option<String>`.
pub trait Env {
    /// The variable's value; `None` when it is unset (or not Unicode).
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Loads the suite at `path` and checks its templates: everything `evalgate validate` checks
/// before a plan is resolved.
pub fn load_suite(path: &Path) -> Result<Suite, SuiteErrors> {
    let suite = suite::load(path)?;
    prompt::check_templates(&suite)?;
    Ok(suite)
}

/// Everything a run does, decided: the runner only executes it.
pub struct RunPlan {
    pub suite: Arc<Suite>,
    /// The backends that run, in suite order.
    pub backends: Vec<BackendPlan>,
    /// The backends this run leaves out for a missing key, in suite order. A resumed run skips
    /// none (a missing key is an error); its run.json keeps the skips of the original run.
    pub skipped: Vec<Skipped>,
    /// The items to send, as indices into the suite's test data, in run order: items are never
    /// copied, so a large suite is held in memory once.
    pub items: Vec<usize>,
    /// The run directory: a new one (created when the run starts), or the resumed run's.
    pub dir: PathBuf,
    pub resumed: bool,
    /// run.json as written before the first request; the runner adds how the run ended.
    pub meta: RunMeta,
    pub cache: Option<Arc<ResponseCache>>,
    /// Ask again even when the cache has an answer.
    pub refresh: bool,
    /// Cached answers older than this are asked again.
    pub cache_max_age: Option<Duration>,
    /// Stop sending once the per-token spend reaches this (USD).
    pub max_cost_usd: Option<f64>,
    /// How long in-flight requests may finish after a stop.
    pub grace: Duration,
    /// What the display should tell the user about the plan (e.g. backends `--batch` could not
    /// put in batch mode).
    pub notes: Vec<String>,
}

/// One backend ready to run.
pub struct BackendPlan {
    /// The backend as the suite has it, with `--concurrency` applied.
    pub spec: BackendSpec,
    pub client: BackendClient,
    pub prompts: PromptBuilder,
    pub retry: RetryPolicy,
    pub limits: RateLimits,
    /// The samples (item id, epoch) a resumed run already answered: they are not sent again.
    pub done: HashSet<(String, u32)>,
    /// How the local classifier was trained, for the progress display.
    pub trained: Option<Training>,
    /// Batch mode: the requests go through the provider's batch API.
    pub batch: Option<BatchPlan>,
}

/// A backend in batch mode.
pub struct BatchPlan {
    pub client: BatchClient,
    /// The first wait between polls (`batch_poll_secs`).
    pub poll: Duration,
    /// The price table's discount for the provider's batch API.
    pub discount: Option<BatchDiscount>,
}

impl BackendPlan {
    /// The per-token price the backend's requests cost: its price, at the batch discount in
    /// batch mode; `None` when unknown.
    pub fn request_pricing(&self) -> Option<Pricing> {
        let pricing = &self.spec.price.as_ref()?.pricing;
        Some(match self.batch.as_ref().and_then(|b| b.discount.as_ref()) {
            Some(discount) => pricing.with_batch_discount(discount),
            None => pricing.clone(),
        })
    }
}

/// A backend's rate limits, and the reply allowance counted against its token limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub requests_per_minute: Option<f64>,
    pub tokens_per_minute: Option<f64>,
    /// The reply tokens a request is assumed to use, for token limits and the cost estimate:
    /// `max_tokens`, or the longest gold answer.
    pub reply_tokens: u64,
}

/// The local classifier's training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Training {
    pub items: usize,
    pub seconds: f64,
}

/// What a run is expected to cost, before it starts: every prompt rendered and counted (about
/// four characters a token), every reply as long as the reply allowance, and only what will be
/// sent: every epoch of every selected item, less what a resumed run already has.
#[derive(Debug, Clone, PartialEq)]
pub struct CostEstimate {
    /// Each backend of the plan, in order.
    pub backends: Vec<(String, EstimatedCost)>,
    /// The sum over the priced per-token backends, USD.
    pub total_usd: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EstimatedCost {
    /// Local and fixed-price backends: their cost does not grow with a run.
    Free,
    /// A per-token backend with no known price.
    Unpriced,
    /// A per-token backend: USD for what this run sends.
    Usd(f64),
}

impl RunPlan {
    /// Resolves `suite` and `options` into a plan, reading API keys from `env`. Sends nothing;
    /// opens the response cache, trains the local classifier and, for `--resume`, repairs the
    /// resumed journal's tail. Fails on what would make the run fail: an unknown `--backend`, a
    /// missing key under `--require-all` or `--resume`, an estimate above `--max-cost-usd`, an
    /// `--out` that already holds a run.
    pub fn resolve(suite: Arc<Suite>, options: &RunOptions, env: &dyn Env) -> Result<RunPlan> {
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
        let http = OpenAiBackend::http_client()
            .map_err(|e| Error::Backend(format!("cannot build the HTTP client: {e}")))?;
        let cache = match &options.cache {
            Some(path) => Some(Arc::new(ResponseCache::open(path)?)),
            None => None,
        };
        let mut backends = Vec::new();
        let mut skipped = Vec::new();
        let mut notes = Vec::new();
        for spec in specs {
            let api_key = match api_key(&spec, env, options.require_all || previous.is_some())? {
                Key::Given(key) => key,
                Key::Missing(reason) => {
                    skipped.push(Skipped { id: spec.id.clone(), reason });
                    continue;
                }
            };
            let (client, trained) = client(&spec, api_key.as_deref(), &suite, &templates, &http)?;
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
            let limits = RateLimits {
                requests_per_minute: spec.requests_per_minute,
                tokens_per_minute: spec.tokens_per_minute,
                reply_tokens: reply_allowance(&spec, &suite),
            };
            let done =
                previous.as_ref().and_then(|p| p.done.get(&spec.id).cloned()).unwrap_or_default();
            // A resumed run keeps the mode each backend ran in: its batches are collected, and
            // what it sent one by one is not put in a batch now.
            let batch_mode = match &previous {
                Some(p) => p.meta.backends.iter().any(|b| b.id == spec.id && b.batch.is_some()),
                None => spec.batch || (options.batch && spec.provider.has_batch_api()),
            };
            if options.batch && previous.is_none() && !spec.provider.has_batch_api() {
                notes.push(format!(
                    "--batch: backend `{}` ({}) has no batch API; it runs as usual",
                    spec.id,
                    spec.provider.as_str()
                ));
            }
            let batch = match batch_mode {
                true => Some(batch_plan(&spec, api_key.as_deref(), &http)?),
                false => None,
            };
            backends.push(BackendPlan {
                spec,
                client,
                prompts,
                retry,
                limits,
                done,
                trained,
                batch,
            });
        }

        let selection = select_items(&suite, options, previous.as_ref())?;
        for b in &mut backends {
            bind_replay(&suite, b, &selection.items)?;
        }
        let cache_max_age = options.cache_max_age.or(suite.cache_max_age);
        let cached =
            CacheUse { cache: cache.as_deref(), refresh: options.refresh, max_age: cache_max_age };
        if let Some(limit) = options.max_cost_usd {
            check_budget(estimate_cost(&suite, &backends, &selection.items, &cached)?, limit)?;
        }
        let dir = match &previous {
            Some(p) => p.dir.clone(),
            None => new_run_dir(&suite, options.out_dir.as_deref())?,
        };
        let meta = run_meta(&suite, &backends, &skipped, &selection, previous.as_ref());
        Ok(RunPlan {
            suite,
            backends,
            skipped,
            items: selection.items,
            dir,
            resumed: previous.is_some(),
            meta,
            cache,
            refresh: options.refresh,
            cache_max_age,
            max_cost_usd: options.max_cost_usd,
            grace: options.grace,
            notes,
        })
    }

    /// What the run is expected to cost (see [`CostEstimate`]); `--max-cost-usd` refuses a run
    /// whose estimate is above it, or that has an unpriced per-token backend.
    pub fn estimate(&self) -> Result<CostEstimate> {
        let cached = CacheUse {
            cache: self.cache.as_deref(),
            refresh: self.refresh,
            max_age: self.cache_max_age,
        };
        estimate_cost(&self.suite, &self.backends, &self.items, &cached)
    }
}

/// A backend's API key, or why it has none.
enum Key {
    /// The key, or `None` for a server that needs none.
    Given(Option<String>),
    /// The reason the backend is skipped.
    Missing(String),
}

/// Reads `spec`'s key from `env`. A missing key skips the backend, or is an error when
/// `required` (`--require-all`, or a resumed run, which must run the backends it ran).
fn api_key(spec: &BackendSpec, env: &dyn Env, required: bool) -> Result<Key> {
    let Some(var) = &spec.api_key_env else { return Ok(Key::Given(None)) };
    match env.var(var) {
        Some(key) if !key.trim().is_empty() => {
            // A key that cannot be an HTTP header would fail every request; say so now.
            if !OpenAiBackend::accepts_key(&key) {
                return Err(Error::Usage(format!(
                    "backend `{}`: the key in {var} contains characters not allowed in an HTTP header (a line break or control character inside it?)",
                    spec.id
                )));
            }
            Ok(Key::Given(Some(key)))
        }
        _ => {
            let reason = format!("environment variable {var} is not set");
            if required {
                return Err(Error::Usage(format!(
                    "backend `{}`: {reason}; set it, or drop --require-all to skip the backend",
                    spec.id
                )));
            }
            Ok(Key::Missing(reason))
        }
    }
}

/// The client for `spec`; for the local backend, the classifier trained on the suite's train
/// split, and how long that took.
fn client(
    spec: &BackendSpec,
    api_key: Option<&str>,
    suite: &Suite,
    templates: &PromptTemplates,
    http: &reqwest::Client,
) -> Result<(BackendClient, Option<Training>)> {
    Ok(match spec.provider {
        Provider::Openai => {
            let mut spec = spec.clone();
            if suite.task.kind == TaskKind::Classification {
                spec.max_tokens = spec.max_tokens.or(Some(default_max_tokens(&spec, suite)));
            }
            let spec = &spec;
            let schema = (spec.structured_output != suite::StructuredOutput::Off)
                .then(|| prompt::schema::json_schema(&suite.task.fields));
            let client = OpenAiBackend::new(spec, api_key, http.clone(), schema);
            (BackendClient::OpenAi(client), None)
        }
        Provider::Anthropic => {
            // The API requires `max_tokens`: classification gets the same default as above, and
            // extraction the backend's own (`anthropic::DEFAULT_MAX_TOKENS`).
            let mut spec = spec.clone();
            if suite.task.kind == TaskKind::Classification {
                spec.max_tokens = spec.max_tokens.or(Some(default_max_tokens(&spec, suite)));
            }
            let schema = (suite.task.kind == TaskKind::Extraction)
                .then(|| prompt::schema::json_schema(&suite.task.fields));
            let client = AnthropicBackend::new(&spec, api_key, http.clone(), schema);
            (BackendClient::Anthropic(client), None)
        }
        Provider::Local => {
            let started = Instant::now();
            let local = LocalBackend::train(suite, templates)
                .map_err(|source| Error::Training { backend: spec.id.clone(), source })?;
            let trained = Training {
                items: suite.train.as_ref().map_or(0, |t| t.items.len()),
                seconds: started.elapsed().as_secs_f64(),
            };
            (BackendClient::Local(local), Some(trained))
        }
        Provider::Replay => {
            let source = spec.replay.as_ref().ok_or_else(|| {
                Error::Usage(format!("backend `{}`: `replay.file` is missing", spec.id))
            })?;
            let replay = ReplayBackend::load(source)
                .map_err(|e| Error::Usage(format!("backend `{}`: {e}", spec.id)))?;
            (BackendClient::Replay(replay), None)
        }
    })
}

/// The batch API of a backend in batch mode, and the discount its requests are priced at.
fn batch_plan(
    spec: &BackendSpec,
    api_key: Option<&str>,
    http: &reqwest::Client,
) -> Result<BatchPlan> {
    let client = match spec.provider {
        Provider::Openai => BatchClient::OpenAi(OpenAiBatch::new(
            spec.base_url.as_deref().unwrap_or_default(),
            api_key,
            http.clone(),
            spec.timeout,
        )),
        Provider::Anthropic => BatchClient::Anthropic(AnthropicBatch::new(
            spec.base_url.as_deref().unwrap_or_default(),
            api_key,
            http.clone(),
            spec.timeout,
        )),
        Provider::Local | Provider::Replay => {
            return Err(Error::Usage(format!(
                "backend `{}`: the {} provider has no batch API",
                spec.id,
                spec.provider.as_str()
            )))
        }
    };
    Ok(BatchPlan {
        client,
        poll: spec.batch_poll.unwrap_or(PollBackoff::DEFAULT_FIRST),
        discount: PriceTable::builtin().batch_discount(spec.provider.as_str()).cloned(),
    })
}

/// A replay backend checks its recording against the prompts of the items the run asks, and
/// refuses a stale or incomplete one before anything runs; it also takes the recording's model
/// name when the suite gives none.
fn bind_replay(suite: &Suite, backend: &mut BackendPlan, items: &[usize]) -> Result<()> {
    let BackendClient::Replay(replay) = &mut backend.client else { return Ok(()) };
    let prompts = &backend.prompts;
    let asked = items.iter().map(|&i| {
        let item = &suite.test.items[i];
        (item.id.as_str(), prompts.messages(item).map_err(|e| e.to_string()))
    });
    replay.bind(&backend.spec.id, asked, backend.spec.epochs).map_err(Error::Usage)?;
    // A recorded failure fails the same way every time: asking again only waits.
    backend.retry.max_attempts = 1;
    if backend.spec.model.is_none() {
        backend.spec.model = replay.model().map(str::to_string);
    }
    Ok(())
}

/// `--max-cost-usd`: every per-token backend needs a price, and the estimate must be within
/// the limit.
fn check_budget(estimate: CostEstimate, limit: f64) -> Result<()> {
    if let Some((id, _)) =
        estimate.backends.iter().find(|(_, cost)| *cost == EstimatedCost::Unpriced)
    {
        return Err(Error::Usage(format!(
            "backend `{id}` has no known price, so --max-cost-usd cannot be kept; add `pricing:` to it"
        )));
    }
    let estimate = estimate.total_usd;
    if estimate > limit {
        return Err(Error::Usage(format!(
            "the run would cost about ${estimate:.4}, above --max-cost-usd {limit}; raise the limit, or use --limit or --backend to run less"
        )));
    }
    Ok(())
}

/// The items a run sends.
struct Selection {
    /// Indices into the suite's test data, in run order.
    items: Vec<usize>,
    shard: Option<Shard>,
    /// Each item's position in the test data (aligned with `items`).
    positions: Vec<usize>,
}

/// run.json as a run starts; a resumed run keeps its start time and its skipped backends.
fn run_meta(
    suite: &Suite,
    backends: &[BackendPlan],
    skipped: &[Skipped],
    selection: &Selection,
    previous: Option<&Previous>,
) -> RunMeta {
    let run_items = || selection.items.iter().map(|&i| &suite.test.items[i]);
    let shard = selection.shard;
    let mut meta = RunMeta {
        schema_version: crate::journal::RUN_SCHEMA_VERSION,
        evalgate_version: env!("CARGO_PKG_VERSION").to_string(),
        suite: SuiteMeta {
            name: suite.name.clone(),
            path: suite.path.display().to_string(),
            sha256: suite.sha256.clone(),
            data_sha256: suite.data_sha256.clone(),
            description: suite.description.clone(),
        },
        task: TaskMeta {
            kind: suite.task.kind,
            labels: suite.task.labels.clone(),
            fields: suite.task.fields.clone(),
        },
        backends: backends
            .iter()
            .map(|b| BackendMeta {
                batch: b.batch.as_ref().map(|batch| journal::BatchMeta {
                    provider: b.spec.provider.as_str().to_string(),
                    discount: batch.discount.clone(),
                    batches: Vec::new(),
                }),
                ..backend_meta(&b.spec)
            })
            .collect(),
        skipped: skipped.to_vec(),
        items: run_items().map(|i| i.id.clone()).collect(),
        started_at: crate::time::rfc3339(SystemTime::now()),
        finished_at: None,
        requests_per_day: suite.requests_per_day,
        compare: suite.compare.clone(),
        margin: suite.margin,
        groups: run_items().map(|i| i.group.clone()).collect::<Option<Vec<String>>>(),
        stopped: None,
        shard,
        positions: shard.map(|_| selection.positions.clone()),
        leaked: Vec::new(),
        warnings: crate::export::run_warnings(suite),
    };
    let run_ids: std::collections::HashSet<&str> = meta.items.iter().map(String::as_str).collect();
    meta.leaked = crate::suite::leakage::find(suite)
        .into_iter()
        .map(|l| l.test_id)
        .filter(|id| run_ids.contains(id.as_str()))
        .collect();
    if let Some(p) = previous {
        meta.started_at = p.meta.started_at.clone();
        meta.skipped = p.meta.skipped.clone();
    }
    meta
}

/// The run's items (indices into the test data), its shard, and each item's position in the
/// test data: a resumed run's, or the first `--limit` items, less those outside the shard.
fn select_items(
    suite: &Suite,
    options: &RunOptions,
    previous: Option<&Previous>,
) -> Result<Selection> {
    let selected: Vec<usize> = match (previous, options.limit) {
        (Some(p), _) => {
            let by_id: HashMap<&str, usize> = suite
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
    let shard = previous.map_or(options.shard, |p| p.meta.shard);
    let positions: Vec<usize> = match previous {
        Some(p) => p.meta.positions.clone().unwrap_or_else(|| (0..selected.len()).collect()),
        None => selected.clone(),
    };
    let (selected, positions): (Vec<usize>, Vec<usize>) = match (shard, previous) {
        (Some(s), None) => selected
            .into_iter()
            .zip(positions)
            .filter(|&(i, _)| s.holds(&suite.test.items[i].id))
            .unzip(),
        _ => (selected, positions),
    };
    Ok(Selection { items: selected, shard, positions })
}

/// A run being resumed: its metadata and, per backend, the samples already answered.
struct Previous {
    dir: PathBuf,
    meta: RunMeta,
    done: HashMap<String, HashSet<(String, u32)>>,
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
        let mut done: HashMap<String, HashSet<(String, u32)>> = Default::default();
        // Failed items are sent again: a resumed run is a chance to answer them.
        journal::read_records(dir, |r: Done| {
            if r.error.is_none() {
                done.entry(r.backend).or_default().insert((r.id, r.epoch));
            }
        })?;
        Ok(Previous { dir: dir.to_path_buf(), meta, done })
    }
}

/// How a run will use the response cache: what the budget estimate needs to leave out the
/// requests the cache will answer.
struct CacheUse<'a> {
    cache: Option<&'a ResponseCache>,
    refresh: bool,
    max_age: Option<Duration>,
}

impl CacheUse<'_> {
    /// Whether the cache will answer this sample, so it is not sent (and costs nothing).
    fn answers(&self, backend: &BackendPlan, messages: &[prompt::ChatMessage], epoch: u32) -> bool {
        let Some(cache) = self.cache.filter(|_| !self.refresh) else { return false };
        let Ok(prepared) = backend.client.prepare(messages) else { return false };
        backend
            .client
            .cache_slot(&prepared, epoch)
            .is_some_and(|slot| slot.lookup(cache, self.max_age).is_some())
    }
}

fn estimate_cost(
    suite: &Suite,
    backends: &[BackendPlan],
    items: &[usize],
    cached: &CacheUse,
) -> Result<CostEstimate> {
    let mut estimate =
        CostEstimate { backends: Vec::with_capacity(backends.len()), total_usd: 0.0 };
    for b in backends {
        let cost = match (&b.spec.price, b.spec.provider) {
            // Nothing is sent: a replay costs nothing to run.
            (_, Provider::Local | Provider::Replay) => EstimatedCost::Free,
            (Some(price), _) if matches!(price.pricing, Pricing::Fixed { .. }) => {
                EstimatedCost::Free
            }
            (None, _) => EstimatedCost::Unpriced,
            (Some(price), _) => {
                // One running sum over backends and items, in that order; batch mode at its
                // discount.
                let pricing = b.request_pricing().unwrap_or_else(|| price.pricing.clone());
                let before = estimate.total_usd;
                estimate.total_usd = add_request_costs(suite, b, &pricing, items, cached, before)?;
                EstimatedCost::Usd(estimate.total_usd - before)
            }
        };
        estimate.backends.push((b.spec.id.clone(), cost));
    }
    Ok(estimate)
}

/// `total` plus the cost of every sample `backend` will send.
fn add_request_costs(
    suite: &Suite,
    backend: &BackendPlan,
    pricing: &Pricing,
    items: &[usize],
    cached: &CacheUse,
    mut total: f64,
) -> Result<f64> {
    let output = backend.limits.reply_tokens;
    let done = &backend.done;
    for item in items.iter().map(|&i| &suite.test.items[i]) {
        let unanswered: Vec<u32> = (0..backend.spec.epochs)
            .filter(|&e| done.is_empty() || !done.contains(&(item.id.clone(), e)))
            .collect();
        if unanswered.is_empty() {
            continue;
        }
        let messages = backend
            .prompts
            .messages(item)
            .map_err(|e| Error::Usage(format!("backend `{}`: {e}", backend.spec.id)))?;
        // Only what the server will be asked costs anything: cached answers are free.
        let to_send =
            unanswered.iter().filter(|&&e| !cached.answers(backend, &messages, e)).count();
        let input = prompt::estimate_tokens(messages.iter().map(|m| m.content.as_str()));
        total += to_send as f64
            * crate::cost::request_cost_usd(pricing, input as f64, output as f64, 0.0)
                .unwrap_or(0.0);
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

/// Model families that think before they answer, by a part of the model name.
const REASONING_FAMILIES: [&str; 9] =
    ["deepseek-r1", "qwq", "qwen3", "o1", "o3", "o4", "gpt-5", "r1-distill", "thinking"];

/// A classification request's `max_tokens` when the backend sets none: room for the longest
/// label, ⌈characters / 3⌉ + 2 tokens, four times over and at least 16; for a reasoning model
/// (`reasoning: true`, or a model name of a known reasoning family) eight times that, and at
/// least 1,024, for its thinking.
fn default_max_tokens(spec: &BackendSpec, suite: &Suite) -> u32 {
    let longest = suite.task.labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    let bound = (4 * (longest.div_ceil(3) + 2)).max(16);
    let model = spec.model.as_deref().unwrap_or_default().to_ascii_lowercase();
    let reasoning = spec.reasoning.unwrap_or_else(|| {
        REASONING_FAMILIES.iter().any(|f| {
            model.split(['/', ':', '-', '_', '.', ' ']).any(|part| part == *f)
                || model.contains(&format!("{f}-"))
                || model.starts_with(f)
                || model.contains(&format!("/{f}"))
        })
    });
    if reasoning {
        (8 * bound).max(1024)
    } else {
        bound
    }
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
        structured_output: spec.structured_output != suite::StructuredOutput::Off,
        stopped: None,
        structured_output_used: None,
        batch: None,
    }
}

/// A new run's directory: `out`, or `reports/<suite>/<UTC time>` (with a suffix when taken).
/// Decided here, created when the run starts.
fn new_run_dir(suite: &Suite, out: Option<&Path>) -> Result<PathBuf> {
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
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six test items with the same text (so every request costs the same), a local baseline
    /// and two priced OpenAI-compatible backends that need `KEY_A` and `KEY_B`.
    const SUITE: &str = r#"schema_version: 1
name: plan
task:
  kind: classification
  labels: [yes, no]
  instructions: "Answer {{ labels | join(' or ') }}."
  input: "Q: {{ text }}"
data:
  test:
    - { id: a, text: same, label: "yes" }
    - { id: b, text: same, label: "no" }
    - { id: c, text: same, label: "yes" }
    - { id: d, text: same, label: "no" }
    - { id: e, text: same, label: "yes" }
    - { id: f, text: same, label: "no" }
  train:
    - { text: "yes please", label: "yes" }
    - { text: "no thanks", label: "no" }
backends:
  - id: local
    provider: local
  - id: a
    provider: openai
    model: m
    base_url: http://127.0.0.1:9/v1
    api_key_env: KEY_A
    max_attempts: 2
    pricing: { input_per_mtok: 1, output_per_mtok: 2 }
  - id: b
    provider: openai
    model: m
    base_url: http://127.0.0.1:9/v1
    api_key_env: KEY_B
    epochs: 2
    pricing: { input_per_mtok: 1, output_per_mtok: 2 }
"#;

    fn suite(text: &str) -> Arc<Suite> {
        Arc::new(suite::load_str(Path::new("plan.yaml"), text).unwrap())
    }

    fn keys(name: &str) -> Option<String> {
        matches!(name, "KEY_A" | "KEY_B").then(|| "sk-test".to_string())
    }

    fn resolve(options: &RunOptions, env: &dyn Env) -> Result<RunPlan> {
        RunPlan::resolve(suite(SUITE), options, env)
    }

    fn usd(estimate: &CostEstimate, id: &str) -> f64 {
        match estimate.backends.iter().find(|(b, _)| b == id).map(|(_, c)| *c) {
            Some(EstimatedCost::Usd(usd)) => usd,
            other => panic!("{id}: {other:?}"),
        }
    }

    #[test]
    fn a_missing_key_skips_the_backend_or_fails_under_require_all() {
        let only_a = |name: &str| (name == "KEY_A").then(|| "sk-test".to_string());
        let plan = resolve(&RunOptions::default(), &only_a).unwrap();
        let ids: Vec<&str> = plan.backends.iter().map(|b| b.spec.id.as_str()).collect();
        assert_eq!(ids, ["local", "a"]);
        assert_eq!(
            plan.skipped,
            [Skipped { id: "b".into(), reason: "environment variable KEY_B is not set".into() }]
        );
        assert_eq!(plan.meta.skipped, plan.skipped);
        assert!(plan.backends[0].trained.is_some_and(|t| t.items == 2));

        let strict = RunOptions { require_all: true, ..RunOptions::default() };
        let Err(e) = resolve(&strict, &only_a) else { panic!("--require-all must fail") };
        assert!(e.to_string().contains("backend `b`: environment variable KEY_B"), "{e}");

        let broken = |_: &str| Some("sk-test\nsecond line".to_string());
        let Err(e) = resolve(&RunOptions::default(), &broken) else { panic!("a bad key") };
        assert!(e.to_string().contains("not allowed in an HTTP header"), "{e}");
    }

    #[test]
    fn retry_defaults_come_from_the_policy_unless_the_backend_sets_them() {
        let options = RunOptions {
            retry: RetryPolicy { max_attempts: 4, ..RetryPolicy::default() },
            concurrency: Some(3),
            ..RunOptions::default()
        };
        let plan = resolve(&options, &keys).unwrap();
        let attempts: Vec<u32> = plan.backends.iter().map(|b| b.retry.max_attempts).collect();
        assert_eq!(attempts, [4, 2, 4]);
        assert!(plan.backends.iter().all(|b| b.spec.concurrency == 3));
        // Labels `yes`/`no`: at most 3 characters, one token, plus 4 of chat formatting.
        assert!(plan.backends.iter().all(|b| b.limits.reply_tokens == 5));
    }

    #[test]
    fn the_estimate_counts_only_what_will_be_sent() {
        let all = resolve(&RunOptions::default(), &keys).unwrap().estimate().unwrap();
        assert_eq!(all.backends[0], ("local".to_string(), EstimatedCost::Free));
        // Every item's prompt is the same, so cost is proportional to the samples sent.
        let per_request = usd(&all, "a") / 6.0;
        assert!(per_request > 0.0);
        assert!((usd(&all, "b") - 12.0 * per_request).abs() < 1e-12, "two epochs");
        assert!((all.total_usd - 18.0 * per_request).abs() < 1e-12);

        let two = RunOptions { limit: Some(2), ..RunOptions::default() };
        let two = resolve(&two, &keys).unwrap();
        assert_eq!(two.items.as_slice(), [0, 1]);
        assert!((two.estimate().unwrap().total_usd - 6.0 * per_request).abs() < 1e-12);

        // A shard sends only its items; the shards together send everything once.
        let mut held = Vec::new();
        for index in 1..=2 {
            let options =
                RunOptions { shard: Some(Shard { index, count: 2 }), ..RunOptions::default() };
            let plan = resolve(&options, &keys).unwrap();
            let n = plan.items.len() as f64;
            assert!((plan.estimate().unwrap().total_usd - 3.0 * n * per_request).abs() < 1e-12);
            assert_eq!(plan.meta.positions.as_deref(), Some(plan.items.as_slice()));
            held.extend(plan.items.iter().copied());
        }
        held.sort_unstable();
        assert_eq!(held, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn max_cost_usd_refuses_a_run_above_it_or_an_unpriced_backend() {
        let per_run = resolve(&RunOptions::default(), &keys).unwrap().estimate().unwrap().total_usd;
        let within = RunOptions { max_cost_usd: Some(per_run * 1.01), ..RunOptions::default() };
        assert!(resolve(&within, &keys).is_ok());
        let below = RunOptions { max_cost_usd: Some(per_run * 0.99), ..RunOptions::default() };
        let Err(e) = resolve(&below, &keys) else { panic!("above the limit") };
        assert!(e.to_string().contains("above --max-cost-usd"), "{e}");

        let unpriced =
            SUITE.replacen("    pricing: { input_per_mtok: 1, output_per_mtok: 2 }\n", "", 1);
        let options = RunOptions { max_cost_usd: Some(100.0), ..RunOptions::default() };
        let Err(e) = RunPlan::resolve(suite(&unpriced), &options, &keys) else {
            panic!("an unpriced backend cannot be kept within a budget")
        };
        assert!(e.to_string().contains("backend `a` has no known price"), "{e}");
    }

    #[test]
    fn classification_replies_are_bounded_more_loosely_for_reasoning_models() {
        let s = suite(SUITE);
        let spec = |model: &str, reasoning: Option<bool>| BackendSpec {
            model: Some(model.into()),
            reasoning,
            ..s.backends[1].clone()
        };
        // Labels `yes`/`no`: 1 + 2 tokens, four times over, at least 16.
        assert_eq!(default_max_tokens(&spec("gpt-4o-mini", None), &s), 16);
        for model in [
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
            "qwq:32b",
            "Qwen/Qwen3-8B",
            "o3-mini",
            "gpt-5",
        ] {
            assert_eq!(default_max_tokens(&spec(model, None), &s), 1024, "{model}");
        }
        assert_eq!(default_max_tokens(&spec("llama3", Some(true)), &s), 1024);
        assert_eq!(default_max_tokens(&spec("qwen3", Some(false)), &s), 16);
    }

    #[test]
    fn an_anthropic_backend_is_keyed_priced_and_estimated_like_any_paid_api() {
        let text = SUITE.replacen(
            "  - id: a\n    provider: openai\n    model: m\n    base_url: http://127.0.0.1:9/v1\n    api_key_env: KEY_A\n    max_attempts: 2\n    pricing: { input_per_mtok: 1, output_per_mtok: 2 }\n",
            "  - id: a\n    provider: anthropic\n    model: claude-haiku-4-5\n",
            1,
        );
        let s = suite(&text);
        assert_eq!(s.backends[1].api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
        assert_eq!(s.backends[1].base_url.as_deref(), Some("https://api.anthropic.com/v1"));
        let price = s.backends[1].price.as_ref().expect("a built-in price");
        assert_eq!(price.origin, "built-in");
        // No key: skipped like any backend whose key is missing, before anything is sent.
        let plan = RunPlan::resolve(s.clone(), &RunOptions::default(), &keys).unwrap();
        assert_eq!(plan.skipped[0].reason, "environment variable ANTHROPIC_API_KEY is not set");
        let with_key = |name: &str| {
            matches!(name, "ANTHROPIC_API_KEY" | "KEY_B").then(|| "sk-test".to_string())
        };
        let plan = RunPlan::resolve(s, &RunOptions::default(), &with_key).unwrap();
        assert!(matches!(plan.backends[1].client, BackendClient::Anthropic(_)));
        // $1 / $5 per million: six prompts of the same length, a 5-token reply allowance each.
        let estimate = plan.estimate().unwrap();
        let per_request = usd(&estimate, "a") / 6.0;
        let input = (per_request * 1e6 - 5.0 * 5.0) / 1.0;
        assert!(input > 0.0 && (input - input.round()).abs() < 1e-6, "{input} input tokens");
    }

    #[test]
    fn an_unknown_backend_is_an_error_naming_those_there_are() {
        let options = RunOptions { backends: vec!["nope".into()], ..RunOptions::default() };
        let Err(e) = resolve(&options, &keys) else { panic!("no such backend") };
        assert!(e.to_string().contains("it has: local, a, b"), "{e}");
    }
}
