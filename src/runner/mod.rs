//! Executing a run plan: send every item to every backend concurrently, within each backend's
//! concurrency and rate limits, retry what the retry policy says to, and append each record to
//! the journal as it completes. Everything is decided beforehand by [`crate::plan::RunPlan`]; the
//! runner knows backends only through [`BackendClient`] and never names a provider.

mod batch;
mod batch_state;
mod limit;
pub mod merge;

pub use batch_state::BATCHES_FILE;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backend::cache::ResponseCache;
use crate::backend::{
    ends_backend, is_retryable, BackendClient, BackendError, Completion, ErrorKind, RetryPolicy,
};
use crate::error::{Error, Result};
use crate::journal::{JournalWriter, Record, RecordError, Tokens};
use crate::plan::{BackendPlan, RateLimits, RunPlan};
use crate::prompt::{estimate_tokens, ChatMessage, PromptBuilder};
use crate::score::judge::{self, Judgement};
use crate::suite::{BackendSpec, Item, Suite, TaskKind};

impl StopReason {
    /// For run.json and the report.
    pub fn describe(&self) -> String {
        match self {
            StopReason::Interrupted => "interrupted (Ctrl-C)".to_string(),
            StopReason::Terminated => "terminated (SIGTERM)".to_string(),
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
    /// SIGTERM: what CI runners and container stops send; handled like Ctrl-C.
    Terminated,
    /// The spend reached `--max-cost-usd`.
    Budget { spent_usd: f64, limit_usd: f64 },
}

/// A run directory and whether the run finished.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub stopped: Option<StopReason>,
}

/// Set once, read everywhere: drivers stop sending, retries and rate limits stop waiting, and
/// requests still in flight a grace period later are cancelled.
#[derive(Default)]
pub struct StopSignal {
    stopped: std::sync::atomic::AtomicBool,
    reason: std::sync::Mutex<Option<StopReason>>,
    at: std::sync::OnceLock<tokio::time::Instant>,
    notify: tokio::sync::Notify,
}

impl StopSignal {
    pub fn stop(&self, reason: StopReason) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        let _ = self.at.set(tokio::time::Instant::now());
        self.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }

    /// Resolves once the run is stopped (at once if it already is).
    pub async fn stopped(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a stop in between is not missed.
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves `grace` after the stop: requests still in flight then are cancelled.
    pub async fn grace_over(&self, grace: Duration) {
        self.stopped().await;
        let at = self.at.get().copied().unwrap_or_else(tokio::time::Instant::now);
        tokio::time::sleep_until(at + grace).await;
    }

    /// `work`'s output, or `None` when the run is (or gets) stopped first. `work` is polled
    /// before the stop is watched, so work that is ready at once (a free slot, no rate limit)
    /// costs no waiter on the signal.
    pub async fn unless_stopped<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        if self.is_stopped() {
            return None;
        }
        tokio::select! {
            biased;
            out = work => Some(out),
            _ = self.stopped() => None,
        }
    }

    /// `work`'s output, or `None` when the grace period after a stop runs out first.
    pub async fn within_grace<F: std::future::Future>(
        &self,
        grace: Duration,
        work: F,
    ) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = work => Some(out),
            _ = self.grace_over(grace) => None,
        }
    }
}

/// What the runner reports while it works, for a progress display.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Skipped {
        id: String,
        reason: String,
    },
    Trained {
        id: String,
        items: usize,
        seconds: f64,
    },
    Started {
        dir: PathBuf,
        backends: usize,
        items: usize,
    },
    /// A record was journaled. `done` counts records (of `total` samples): `errors` of them
    /// failed, and `cancelled` more were cut short by a stop of the run.
    Progress {
        backend: String,
        done: usize,
        total: usize,
        errors: usize,
        cancelled: usize,
    },
    Warning(String),
    /// A backend was stopped by an error no retry can fix; its remaining items are recorded as
    /// not sent. `reason` quotes the server.
    BackendStopped {
        backend: String,
        reason: String,
    },
    /// A batch of a backend in batch mode was submitted (`status: submitted`) or polled: its
    /// provider's status (`validating`, `in_progress`, `finalizing`, `completed`, `expired`,
    /// `failed`, …) and request counts.
    Batch {
        backend: String,
        batch: String,
        status: String,
        completed: u64,
        failed: u64,
        total: u64,
    },
    /// Something the plan decided that the user should know (not a problem).
    Note(String),
}

/// A backend whose first this many requests fail with the same error that is not transient
/// (e.g. the same 400 "model does not support …") is stopped: every other request would fail
/// the same way.
pub const SAME_ERROR_LIMIT: usize = 3;

pub type EventSink = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// Executes `plan` and returns the run directory; every record is in its journal.
pub async fn run(plan: RunPlan, events: EventSink, stop: Arc<StopSignal>) -> Result<RunOutcome> {
    announce_setup(&plan, &events);
    let RunPlan {
        suite,
        backends,
        items,
        dir,
        resumed,
        mut meta,
        cache,
        refresh,
        cache_max_age,
        max_cost_usd,
        grace,
        notes,
        ..
    } = plan;
    for note in notes {
        events(RunEvent::Note(note));
    }
    if !resumed {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    meta.write(&dir)?;
    events(RunEvent::Started { dir: dir.clone(), backends: backends.len(), items: items.len() });

    let (tx, rx) = mpsc::channel::<Record>(1024);
    let budget = max_cost_usd.map(|limit| Budget {
        limit_usd: limit,
        prices: backends.iter().map(|b| (b.spec.id.clone(), b.request_pricing())).collect(),
        stop: stop.clone(),
    });
    // Progress counts samples: items × epochs, less what a resumed run already has.
    let progress: Vec<(String, usize, usize)> = backends
        .iter()
        .map(|b| (b.spec.id.clone(), b.done.len(), items.len() * b.spec.epochs as usize))
        .collect();
    let writer = spawn_journal_writer(&dir, rx, progress, events.clone(), budget)?;
    let context = Arc::new(RunContext {
        suite,
        items,
        stop: stop.clone(),
        cache,
        refresh,
        cache_max_age,
        grace,
        events: events.clone(),
    });
    // The state file of batch mode, read back when a run is resumed.
    let store = match backends.iter().any(|b| b.batch.is_some()) {
        true => Some(Arc::new(batch_state::BatchStore::open(&dir)?)),
        false => None,
    };
    let mut drivers = JoinSet::new();
    for backend in backends {
        match (&backend.batch, &store) {
            (Some(_), Some(store)) => {
                if let Some(driver) =
                    batch::BatchDriver::new(backend, context.clone(), tx.clone(), store.clone())
                {
                    drivers.spawn(driver.run());
                }
            }
            _ => {
                drivers.spawn(Driver::new(backend, context.clone(), tx.clone()).run());
            }
        }
    }
    drop(tx);
    // A stop that came after the last item was sent (the budget reached by the last record)
    // leaves a complete run: only a driver that left items unsent makes it incomplete.
    let mut incomplete = false;
    while let Some(result) = drivers.join_next().await {
        let end = result.map_err(|e| Error::Backend(format!("a backend task failed: {e}")))?;
        incomplete |= end.left_unsent;
        if let Some(b) = meta.backends.iter_mut().find(|b| b.id == end.backend) {
            b.stopped = end.stopped;
            b.structured_output_used = end.structured_output_used;
            if let (Some(batch), Some(store)) = (b.batch.as_mut(), &store) {
                batch.batches = batch::summaries(store, &b.id);
            }
        }
    }
    writer.await.map_err(|e| Error::Backend(format!("the journal writer failed: {e}")))??;
    if let Some(cache) = &context.cache {
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

/// Tells the display what resolving the plan did, in suite order: the backends skipped for a
/// missing key, and the local classifier's training.
fn announce_setup(plan: &RunPlan, events: &EventSink) {
    for spec in &plan.suite.backends {
        if let Some(s) = plan.skipped.iter().find(|s| s.id == spec.id) {
            events(RunEvent::Skipped { id: s.id.clone(), reason: s.reason.clone() });
        } else if let Some(t) =
            plan.backends.iter().find(|b| b.spec.id == spec.id).and_then(|b| b.trained)
        {
            events(RunEvent::Trained { id: spec.id.clone(), items: t.items, seconds: t.seconds });
        }
    }
}

/// What every backend's requests share.
struct RunContext {
    suite: Arc<Suite>,
    /// Indices into the suite's test data.
    items: Vec<usize>,
    stop: Arc<StopSignal>,
    cache: Option<Arc<ResponseCache>>,
    refresh: bool,
    cache_max_age: Option<Duration>,
    grace: Duration,
    events: EventSink,
}

/// What answering one item of one backend needs; shared by that backend's requests.
struct BackendRun {
    spec: BackendSpec,
    client: BackendClient,
    retry: RetryPolicy,
    limits: Limits,
    context: Arc<RunContext>,
    health: Health,
    concurrency: limit::AdaptiveConcurrency,
}

/// Whether a backend is still worth asking: set once by an error no retry can fix.
#[derive(Default)]
struct Health {
    stopped: std::sync::OnceLock<String>,
    answered: std::sync::atomic::AtomicBool,
    /// How the first requests ended: `None` for an answer, the error for a failure that is not
    /// transient (up to [`SAME_ERROR_LIMIT`]).
    first: std::sync::Mutex<Vec<Option<String>>>,
}

impl Health {
    fn stopped(&self) -> Option<&str> {
        self.stopped.get().map(String::as_str)
    }

    fn answered(&self) {
        self.answered.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut first) = self.first.lock() {
            if first.len() < SAME_ERROR_LIMIT {
                first.push(None);
            }
        }
    }

    /// Notes a failed attempt; returns the reason when it stops the backend (the first time).
    fn failed(&self, error: &BackendError, last_attempt: bool) -> Option<String> {
        if ends_backend(error, self.answered.load(std::sync::atomic::Ordering::SeqCst)) {
            return self.stop(error_message(error));
        }
        if !last_attempt || is_retryable(error) {
            return None;
        }
        let same = {
            let Ok(mut first) = self.first.lock() else { return None };
            if first.len() >= SAME_ERROR_LIMIT {
                return None;
            }
            first.push(Some(error_message(error)));
            first.len() == SAME_ERROR_LIMIT && first.iter().all(|e| e == &first[0])
        };
        if same {
            self.stop(format!(
                "{} (the same on the first {SAME_ERROR_LIMIT} requests)",
                error_message(error)
            ))
        } else {
            None
        }
    }

    fn stop(&self, reason: String) -> Option<String> {
        let mut set = false;
        self.stopped.get_or_init(|| {
            set = true;
            reason.clone()
        });
        set.then_some(reason)
    }
}

/// An error as the report lists it: the status and the server's own message.
pub fn error_message(error: &BackendError) -> String {
    match (error.kind, error.status) {
        (_, Some(status)) => format!("HTTP {status}: {}", error.message),
        (ErrorKind::Connect, None) => format!("cannot connect: {}", error.message),
        (ErrorKind::Timeout, None) => format!("timeout: {}", error.message),
        _ => error.message.clone(),
    }
}

/// How one backend's driver ended.
struct DriverEnd {
    backend: String,
    /// A stop of the run left some samples unsent.
    left_unsent: bool,
    /// Why the backend was stopped, when it was.
    stopped: Option<String>,
    /// The structured output its requests used in the end.
    structured_output_used: Option<String>,
}

/// A backend's rate limits, shared by its requests.
struct Limits {
    requests: Option<limit::RateLimiter>,
    tokens: Option<limit::RateLimiter>,
    /// Reply allowance counted against the token limit: `max_tokens`, or a label's length.
    reply_tokens: u64,
}

impl Limits {
    fn new(limits: &RateLimits) -> Self {
        Limits {
            requests: limits.requests_per_minute.map(limit::RateLimiter::per_minute),
            tokens: limits.tokens_per_minute.map(limit::RateLimiter::per_minute),
            reply_tokens: limits.reply_tokens,
        }
    }
}

/// Sends every item to one backend, at most `concurrency` at a time.
struct Driver {
    backend: Arc<BackendRun>,
    prompts: PromptBuilder,
    /// Samples a resumed run already has.
    done: HashSet<(String, u32)>,
    records: mpsc::Sender<Record>,
}

impl Driver {
    fn new(plan: BackendPlan, context: Arc<RunContext>, records: mpsc::Sender<Record>) -> Self {
        let BackendPlan { spec, client, prompts, retry, limits, done, .. } = plan;
        let limits = Limits::new(&limits);
        let concurrency = limit::AdaptiveConcurrency::new(spec.concurrency);
        Driver {
            backend: Arc::new(BackendRun {
                spec,
                client,
                retry,
                limits,
                context,
                health: Health::default(),
                concurrency,
            }),
            prompts,
            done,
            records,
        }
    }

    /// Sends the items and says whether a stop left some unsent. Prompts are rendered just
    /// before sending, so memory holds only the requests in flight.
    async fn run(self) -> DriverEnd {
        let Driver { backend, prompts, done, records } = self;
        let context = backend.context.clone();
        let spec = &backend.spec;
        let mut tasks = JoinSet::new();
        let mut left_unsent = false;
        let items = &context.suite.test.items;
        let samples = context.items.iter().flat_map(|&i| (0..spec.epochs).map(move |e| (i, e)));
        for (index, epoch) in samples {
            // Only a resumed run has answers to skip; a new one allocates nothing here.
            if !done.is_empty() && done.contains(&(items[index].id.clone(), epoch)) {
                continue;
            }
            // A stop must not wait for a place to free up: with a hung server that can take a
            // whole request timeout.
            let permit = context.stop.unless_stopped(backend.concurrency.acquire()).await;
            let Some(permit) = permit.flatten() else {
                left_unsent |= context.stop.is_stopped();
                break;
            };
            if context.stop.is_stopped() {
                left_unsent = true;
                break;
            }
            if let Some(reason) = backend.health.stopped() {
                // Recorded without a request: a resumed run sends it.
                let mut r = not_sent_record(&spec.id, &items[index], reason);
                r.epoch = epoch;
                backend.concurrency.release(permit);
                let _ = records.send(r).await;
                continue;
            }
            while let Some(r) = tasks.try_join_next() {
                left_unsent |= r.unwrap_or(true);
            }
            let item = &items[index];
            let record = match prompts.messages(item) {
                Ok(messages) => {
                    let (backend, records) = (backend.clone(), records.clone());
                    tasks.spawn(async move {
                        let item = &backend.context.suite.test.items[index];
                        // A panic below must still leave a record: an item is never silently lost.
                        let answer = std::panic::AssertUnwindSafe(answer_item(
                            &backend, item, messages, epoch,
                        ));
                        let context = &backend.context;
                        // A request still in flight when the grace period after a stop is over
                        // is cancelled, whatever the server does, and recorded as not sent.
                        let answer = context
                            .stop
                            .within_grace(context.grace, futures::FutureExt::catch_unwind(answer))
                            .await
                            .unwrap_or_else(|| {
                                let why = format!(
                                    "no answer within the {} s grace period after the run was {}",
                                    context.grace.as_secs_f64(),
                                    stop_words(&context.stop),
                                );
                                Ok(Answer::Cut(stopped_record(&backend.spec.id, item, &why)))
                            });
                        let (mut record, cut) = match answer {
                            Ok(Answer::Done(record)) => (record, false),
                            Ok(Answer::Cut(record)) => (record, true),
                            Err(panic) => {
                                let what = panic
                                    .downcast_ref::<&str>()
                                    .map(|s| s.to_string())
                                    .or_else(|| panic.downcast_ref::<String>().cloned())
                                    .unwrap_or_default();
                                let record = failed_record(
                                    &backend.spec.id,
                                    item,
                                    Vec::new(),
                                    BackendError::new(
                                        ErrorKind::Internal,
                                        format!("internal error: {what}"),
                                    ),
                                    0.0,
                                    0,
                                );
                                (record, false)
                            }
                        };
                        record.epoch = epoch;
                        backend.concurrency.release(permit);
                        let _ = records.send(record).await;
                        cut
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
            let _ = records.send(record).await;
        }
        // Requests in flight cancel themselves when the grace period after a stop is over; a
        // task that does not (a panic in progress, a blocked thread) is aborted a second later.
        let give_up = context.stop.grace_over(context.grace + Duration::from_secs(1));
        tokio::pin!(give_up);
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    Some(r) => left_unsent |= r.unwrap_or(true),
                    None => break,
                },
                _ = &mut give_up => {
                    tasks.abort_all();
                    left_unsent = true;
                    break;
                }
            }
        }
        while let Some(r) = tasks.join_next().await {
            left_unsent |= r.unwrap_or(true);
        }
        DriverEnd {
            backend: spec.id.clone(),
            left_unsent,
            stopped: backend.health.stopped().map(str::to_string),
            structured_output_used: backend.client.structured_output_used().map(str::to_string),
        }
    }
}

/// How answering one item ended.
enum Answer {
    /// An answer, or a failure the retry policy gave up on.
    Done(Record),
    /// Cut short by a stop of the run: recorded as not sent, and a resumed run sends it.
    Cut(Record),
}

/// "interrupted (Ctrl-C)", "stopped at the budget: …": why the run stopped, for a record.
fn stop_words(stop: &StopSignal) -> String {
    stop.reason().map(|r| r.describe()).unwrap_or_else(|| "stopped".to_string())
}

/// Sends one item with retries and turns the outcome into a record.
async fn answer_item(
    backend: &BackendRun,
    item: &Item,
    messages: Vec<ChatMessage>,
    epoch: u32,
) -> Answer {
    let BackendRun { spec, client, retry, limits, context, health, concurrency } = backend;
    let started = Instant::now();
    let mut attempt = 0;
    let prepared = match client.prepare(&messages) {
        Ok(p) => p,
        Err(error) => return Answer::Done(failed_record(&spec.id, item, messages, error, 0.0, 0)),
    };
    let cache = context.cache.as_deref();
    let slot = cache.and_then(|_| client.cache_slot(&prepared, epoch));
    if let (Some(cache), Some(slot), false) = (cache, &slot, context.refresh) {
        if let Some(hit) = slot.lookup(cache, context.cache_max_age) {
            return Answer::Done(cached_record(&spec.id, &context.suite, item, messages, hit));
        }
    }
    let request_tokens = limits.tokens.as_ref().map(|_| {
        estimate_tokens(messages.iter().map(|m| m.content.as_str())) + limits.reply_tokens
    });
    loop {
        if let Some(reason) = health.stopped() {
            return Answer::Done(not_sent_record(&spec.id, item, reason));
        }
        attempt += 1;
        // Every attempt counts against the limits: the provider counts retries too. A stop ends
        // the wait: a request that has not gone out by then is not sent.
        let limited = async {
            if let Some(limiter) = &limits.requests {
                limiter.acquire(1.0).await;
            }
            if let (Some(limiter), Some(tokens)) = (&limits.tokens, request_tokens) {
                limiter.acquire(tokens as f64).await;
            }
        };
        if context.stop.unless_stopped(limited).await.is_none() {
            let why = format!("the run was {} before it went out", stop_words(&context.stop));
            return Answer::Cut(stopped_record(&spec.id, item, &why));
        }
        let (_, window) = concurrency.current();
        match client.send(&prepared, &messages).await {
            Ok(completion) => {
                health.answered();
                concurrency.succeeded();
                // A replayed reply keeps the latency it was recorded with.
                let latency_ms = prepared
                    .recorded_latency_ms()
                    .unwrap_or_else(|| started.elapsed().as_secs_f64() * 1000.0);
                if let (Some(cache), Some(slot)) = (cache, &slot) {
                    slot.store(cache, &completion, latency_ms);
                }
                return Answer::Done(answered_record(
                    &spec.id,
                    &context.suite,
                    item,
                    messages,
                    completion,
                    latency_ms,
                    attempt,
                ));
            }
            Err(error) => {
                if error.status == Some(429) {
                    concurrency.rate_limited(window);
                }
                let wait = retry.next_delay(attempt, &error);
                if let Some(reason) = health.failed(&error, wait.is_none()) {
                    (context.events)(RunEvent::BackendStopped { backend: spec.id.clone(), reason });
                }
                // A stopped backend waits for nothing more: this request keeps its error.
                match wait.filter(|_| health.stopped().is_none()) {
                    Some(wait) => {
                        // A stopped run retries nothing: the item is resent on resume.
                        let why = || {
                            format!(
                                "the run was {} while a retry waited (last: {})",
                                stop_words(&context.stop),
                                error_message(&error)
                            )
                        };
                        if context.stop.unless_stopped(tokio::time::sleep(wait)).await.is_none() {
                            return Answer::Cut(stopped_record(&spec.id, item, &why()));
                        }
                    }
                    None => {
                        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                        return Answer::Done(failed_record(
                            &spec.id, item, messages, error, latency_ms, attempt,
                        ));
                    }
                }
            }
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
            reasoning: u.reasoning,
            cache_write_input: u.cache_write,
        },
        None => Tokens {
            input: estimate_tokens(prompt.iter().map(|m| m.content.as_str())),
            output: estimate_tokens(
                std::iter::once(completion.text.as_str()).chain(completion.reasoning.as_deref()),
            ),
            cached_input: 0,
            estimated: true,
            reasoning: 0,
            cache_write_input: 0,
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
        cached_at: None,
        reasoning: completion.reasoning,
    }
}

/// The record of an answer the response cache held: it keeps the original latency (left out of
/// the report's percentiles) and says when the server gave it.
fn cached_record(
    backend: &str,
    suite: &Suite,
    item: &Item,
    messages: Vec<ChatMessage>,
    hit: crate::backend::cache::CachedCompletion,
) -> Record {
    let latency_ms = hit.latency_ms.unwrap_or(0.0);
    let cached_at = hit.recorded_at.map(|at| {
        crate::time::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(at.max(0) as u64))
    });
    let mut record = answered_record(backend, suite, item, messages, hit.into(), latency_ms, 0);
    record.cached = true;
    record.cached_at = cached_at;
    record
}

/// The record of a sample a stop of the run left without an answer; a resumed run sends it.
fn stopped_record(backend: &str, item: &Item, why: &str) -> Record {
    failed_record(
        backend,
        item,
        Vec::new(),
        BackendError::new(ErrorKind::Cancelled, format!("not sent: {why}")),
        0.0,
        0,
    )
}

/// The record of a sample its stopped backend never sent.
fn not_sent_record(backend: &str, item: &Item, reason: &str) -> Record {
    failed_record(
        backend,
        item,
        Vec::new(),
        BackendError::new(ErrorKind::NotSent, format!("not sent: the backend stopped on {reason}")),
        0.0,
        0,
    )
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
        reasoning: None,
        error: Some(RecordError {
            kind: error.kind.as_str().to_string(),
            status: error.status,
            message: error.message,
        }),
        epoch: 0,
        cached: false,
        cached_at: None,
    }
}

/// Stops the run when the per-token spend reaches the limit.
struct Budget {
    limit_usd: f64,
    prices: Vec<(String, Option<crate::cost::Pricing>)>,
    stop: Arc<StopSignal>,
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
        let mut cancelled = vec![0usize; backends.len()];
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
                        spent +=
                            crate::cost::request_tokens_cost_usd(pricing, &record.tokens.billed())
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
                    let cut = record
                        .error
                        .as_ref()
                        .is_some_and(|e| e.kind == ErrorKind::Cancelled.as_str());
                    cancelled[b] += usize::from(cut);
                    errors[b] += usize::from(record.error.is_some() && !cut);
                    let total = backends[b].2;
                    events(RunEvent::Progress {
                        backend: record.backend.clone(),
                        done: done[b].min(total),
                        total,
                        errors: errors[b],
                        cancelled: cancelled[b],
                    });
                }
                next = rx.try_recv().ok();
            }
            journal.flush()?;
        }
        journal.flush()
    }))
}
