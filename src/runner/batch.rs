//! The driver of a backend in batch mode: its samples go to the provider's batch API
//! ([`crate::backend::batch`]) as one job instead of one request each, and come back as the same
//! records the live path journals.
//!
//! 1. Samples a resumed run already answered are skipped, and so are those in a batch the run
//!    submitted before (`batches.json`): that batch is polled and collected, never resubmitted.
//! 2. The response cache is read first: a cached answer is journaled at once (`cached: true`),
//!    exactly as the live path does, and only the others go into a batch.
//! 3. Each batch is recorded in `batches.json` before its input is uploaded, and again the
//!    moment it has an id. Its metadata carries a token, so a batch whose create response was
//!    lost is found again (by listing the provider's batches) rather than made twice, where the
//!    provider keeps metadata (OpenAI; Anthropic's batches have none, see `AnthropicBatch::find`).
//! 4. The batch is polled with backoff ([`PollBackoff`]) until it ends. A stop (Ctrl-C, the
//!    budget) ends the polling at once: the batch runs on at the provider, its samples get no
//!    record, and `--resume` collects it.
//! 5. Each result is parsed by the backend that built the request, and journaled with
//!    `answered_record` or `failed_record`. Requests the batch did not process (expired,
//!    cancelled, missing) and failures worth another attempt go into a new, smaller batch, up to
//!    the backend's `max_attempts` rounds; then they are recorded as failed with the reason.
//! 6. A batch that fails as a whole stops the backend with the server's message, as an error no
//!    retry can fix does on the live path: its samples are journaled as failed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::batch_state::{BatchEntry, BatchStore, EntryState, Sample};
use super::{
    answered_record, cached_record, error_message, failed_record, DriverEnd, RunContext, RunEvent,
};
use crate::backend::batch::{
    BatchApi, BatchClient, BatchError, BatchRequest, BatchStatus, LineOutcome, PollBackoff,
};
use crate::backend::{is_retryable, BackendClient, BackendError, ErrorKind, Prepared, RetryPolicy};
use crate::journal::{BatchSummary, Record};
use crate::plan::BackendPlan;
use crate::prompt::{ChatMessage, PromptBuilder};
use crate::suite::BackendSpec;

/// A sample ready for a batch: its place in the test data, its epoch and the request body.
struct Pending {
    index: usize,
    epoch: u32,
    body: Box<RawValue>,
}

/// A sample to send again in the next round, with the error it is recorded with if there is
/// none.
struct Retry {
    sample: Sample,
    round: u32,
    error: BackendError,
}

pub(super) struct BatchDriver {
    spec: BackendSpec,
    client: BackendClient,
    prompts: PromptBuilder,
    retry: RetryPolicy,
    /// Samples a resumed run already answered.
    done: HashSet<(String, u32)>,
    api: BatchClient,
    poll: Duration,
    context: Arc<RunContext>,
    records: mpsc::Sender<Record>,
    store: Arc<BatchStore>,
    /// Item id → index into the suite's test data, for the run's items.
    index: HashMap<String, usize>,
    /// Samples this driver journaled: none is journaled twice.
    written: HashSet<(String, u32)>,
    /// Samples an earlier run journaled from a batch it marked collected: a batch read again
    /// (see `drive`) skips them.
    recorded: HashSet<(String, u32)>,
    /// Why the backend stopped, when it did.
    stopped: Option<String>,
    /// Something was left for a resumed run to collect or send.
    left_unsent: bool,
}

impl BatchDriver {
    pub(super) fn new(
        plan: BackendPlan,
        context: Arc<RunContext>,
        records: mpsc::Sender<Record>,
        store: Arc<BatchStore>,
    ) -> Option<Self> {
        let BackendPlan { spec, client, prompts, retry, done, batch, .. } = plan;
        let batch = batch?;
        let items = &context.suite.test.items;
        let index = context.items.iter().map(|&i| (items[i].id.clone(), i)).collect();
        Some(BatchDriver {
            spec,
            client,
            prompts,
            retry,
            done,
            api: batch.client,
            poll: batch.poll,
            context,
            records,
            store,
            index,
            written: HashSet::new(),
            recorded: HashSet::new(),
            stopped: None,
            left_unsent: false,
        })
    }

    pub(super) async fn run(mut self) -> DriverEnd {
        self.drive().await;
        DriverEnd {
            backend: self.spec.id.clone(),
            left_unsent: self.left_unsent,
            stopped: self.stopped.clone(),
            structured_output_used: self.client.structured_output_used().map(str::to_string),
        }
    }

    async fn drive(&mut self) {
        let entries = self.store.entries(&self.spec.id);
        // A batch is marked collected once its records are handed to the journal writer; a run
        // killed before the writer flushed them leaves samples without a record. They are read
        // again from the same batch, never submitted anew.
        let recorded = match entries.iter().any(|e| e.state == EntryState::Collected) {
            true => self.recorded(),
            false => HashSet::new(),
        };
        let mut open: Vec<BatchEntry> = Vec::new();
        for mut e in entries {
            let unrecorded =
                || e.requests.values().any(|s| !recorded.contains(&(s.id.clone(), s.epoch)));
            if e.state == EntryState::Collected && e.batch_id.is_some() && unrecorded() {
                e.state = EntryState::Submitted;
                open.push(e);
            } else if e.state.open() {
                open.push(e);
            }
        }
        self.recorded = recorded;
        let claimed: HashSet<(String, u32)> = open
            .iter()
            .flat_map(|e| e.requests.values().map(|s| (s.id.clone(), s.epoch)))
            .collect();
        let mut fresh = Vec::new();
        let epochs = self.spec.epochs;
        for position in 0..self.context.items.len() {
            let index = self.context.items[position];
            for epoch in 0..epochs {
                let key = (self.context.suite.test.items[index].id.clone(), epoch);
                if self.done.contains(&key) || claimed.contains(&key) {
                    continue;
                }
                if let Some(pending) = self.prepare(index, epoch).await {
                    fresh.push(pending);
                }
            }
        }
        if !fresh.is_empty() {
            if self.context.stop.is_stopped() {
                self.left_unsent = true;
                return;
            }
            self.submit(fresh, 1, &mut open).await;
        }
        while !open.is_empty() {
            let Some(retries) = self.wait_and_collect(&mut open).await else {
                self.left_unsent = true;
                return;
            };
            let mut again: Vec<(Pending, u32)> = Vec::new();
            let max_rounds = self.retry.max_attempts.max(1);
            for mut r in retries {
                let index = self.index.get(&r.sample.id).copied();
                let body = match index {
                    Some(index) if r.round <= max_rounds && self.stopped.is_none() => {
                        self.request(index).ok().map(|body| (index, body))
                    }
                    _ => None,
                };
                match body {
                    Some((index, body)) => {
                        again.push((Pending { index, epoch: r.sample.epoch, body }, r.round))
                    }
                    None => {
                        let batches = r.round - 1;
                        r.error.message = format!(
                            "{} (after {batches} batch{})",
                            r.error.message,
                            if batches == 1 { "" } else { "es" }
                        );
                        self.record_failed(&r.sample, r.error, 0.0, batches).await;
                    }
                }
            }
            if again.is_empty() {
                continue;
            }
            if self.context.stop.is_stopped() {
                self.left_unsent = true;
                return;
            }
            let round = again.iter().map(|(_, r)| *r).max().unwrap_or(2);
            self.submit(again.into_iter().map(|(p, _)| p).collect(), round, &mut open).await;
        }
    }

    /// The samples of this backend the run's journal already has a record of (answered or not).
    fn recorded(&self) -> HashSet<(String, u32)> {
        #[derive(serde::Deserialize)]
        struct Seen {
            id: String,
            backend: String,
            #[serde(default)]
            epoch: u32,
        }
        let mut seen = HashSet::new();
        let Some(dir) = self.store.dir() else { return seen };
        let _ = crate::journal::read_records(dir, |r: Seen| {
            if r.backend == self.spec.id {
                seen.insert((r.id, r.epoch));
            }
        });
        seen
    }

    /// The request body of a sample, or its failed record when the prompt cannot be made, or its
    /// cached answer's record: `None` when the sample is journaled already.
    async fn prepare(&mut self, index: usize, epoch: u32) -> Option<Pending> {
        let item = &self.context.suite.test.items[index];
        let messages = match self.prompts.messages(item) {
            Ok(m) => m,
            Err(e) => {
                let error = BackendError::new(
                    ErrorKind::Internal,
                    format!("cannot render the prompt: {e}"),
                );
                let mut r = failed_record(&self.spec.id, item, Vec::new(), error, 0.0, 0);
                r.epoch = epoch;
                self.journal(r).await;
                return None;
            }
        };
        let prepared = match self.client.prepare(&messages) {
            Ok(p) => p,
            Err(error) => {
                let mut r = failed_record(&self.spec.id, item, messages, error, 0.0, 0);
                r.epoch = epoch;
                self.journal(r).await;
                return None;
            }
        };
        // The cache first, exactly as the live path reads it.
        let cache = self.context.cache.as_deref().filter(|_| !self.context.refresh);
        let slot = cache.and_then(|_| self.client.cache_slot(&prepared, epoch));
        if let (Some(cache), Some(slot)) = (cache, &slot) {
            if let Some(hit) = slot.lookup(cache, self.context.cache_max_age) {
                let mut record =
                    cached_record(&self.spec.id, &self.context.suite, item, messages, hit);
                record.epoch = epoch;
                self.journal(record).await;
                return None;
            }
        }
        match prepared {
            Prepared::Body(body) => Some(Pending { index, epoch, body }),
            // Only a backend whose requests are bodies has a batch API (the plan checks).
            _ => None,
        }
    }

    /// The messages and request body of a sample, made again (they are deterministic).
    fn messages_and_body(
        &self,
        index: usize,
    ) -> Result<(Vec<ChatMessage>, Box<RawValue>), BackendError> {
        let item = &self.context.suite.test.items[index];
        let messages = self.prompts.messages(item).map_err(|e| {
            BackendError::new(ErrorKind::Internal, format!("cannot render the prompt: {e}"))
        })?;
        match self.client.prepare(&messages)? {
            Prepared::Body(body) => Ok((messages, body)),
            _ => Err(BackendError::new(ErrorKind::Internal, "the backend has no request body")),
        }
    }

    fn request(&self, index: usize) -> Result<Box<RawValue>, BackendError> {
        self.messages_and_body(index).map(|(_, body)| body)
    }

    /// Submits `pending` in batches of at most the provider's size, adding each to `open`.
    async fn submit(&mut self, pending: Vec<Pending>, round: u32, open: &mut Vec<BatchEntry>) {
        let size = self.api.max_requests().max(1);
        let max_bytes = self.api.max_bytes();
        let mut pending = pending;
        while !pending.is_empty() {
            // As many requests as fit both limits, and always at least one (a single request
            // too large for a batch is the server's to refuse, with its message).
            let mut bytes = 0usize;
            let fit = pending
                .iter()
                .take(size)
                .take_while(|p| {
                    // The body and room for its envelope (`custom_id`, keys, separators).
                    bytes = bytes.saturating_add(p.body.get().len() + 100);
                    bytes <= max_bytes
                })
                .count()
                .max(1);
            let rest = pending.split_off(fit);
            let chunk = std::mem::replace(&mut pending, rest);
            let items = &self.context.suite.test.items;
            let (requests, samples): (Vec<BatchRequest>, Vec<(String, Sample)>) = chunk
                .into_iter()
                .enumerate()
                .map(|(n, p)| {
                    // Short and safe for every provider (`[A-Za-z0-9_-]{1,64}`), unlike item ids.
                    let custom_id = format!("r{round}-{n:06}");
                    let sample = Sample { id: items[p.index].id.clone(), epoch: p.epoch };
                    (
                        BatchRequest { custom_id: custom_id.clone(), body: p.body },
                        (custom_id, sample),
                    )
                })
                .unzip();
            let (created_at, created_unix_ms) = now();
            let mut entry = BatchEntry {
                backend: self.spec.id.clone(),
                provider: self.api.provider().to_string(),
                round,
                token: token(&self.spec.id, round),
                input_file_id: None,
                batch_id: None,
                state: EntryState::Submitting,
                status: None,
                created_at,
                created_unix_ms,
                ended_at: None,
                ended_unix_ms: None,
                error: None,
                requests: samples.into_iter().collect(),
            };
            if self.save(&entry).await && self.establish(&mut entry, &requests, false).await {
                open.push(entry);
            }
        }
    }

    /// Makes sure the batch of `entry` exists and its id is saved: found by its token when an
    /// earlier attempt may have made it (`resumed`, or a create that failed), else created from
    /// the uploaded input. On failure its samples are journaled as failed, the backend stops, and
    /// the entry is abandoned. Returns whether the batch exists.
    async fn establish(
        &mut self,
        entry: &mut BatchEntry,
        requests: &[BatchRequest],
        resumed: bool,
    ) -> bool {
        if entry.batch_id.is_some() {
            return true;
        }
        match self.create(entry, requests, resumed).await {
            Ok(()) => {
                let total = entry.requests.len() as u64;
                (self.context.events)(RunEvent::Batch {
                    backend: self.spec.id.clone(),
                    batch: entry.batch_id.clone().unwrap_or_default(),
                    status: "submitted".to_string(),
                    completed: 0,
                    failed: 0,
                    total,
                });
                true
            }
            Err(_) if self.context.stop.is_stopped() => {
                // Stopped while submitting: the entry stays `submitting`, and a resume finds or
                // creates its batch.
                self.left_unsent = true;
                false
            }
            Err(e) => {
                let error = e.as_backend_error();
                let reason = format!("cannot submit a batch: {}", error_message(&error));
                entry.state = EntryState::Abandoned;
                entry.error = Some(reason.clone());
                self.save(entry).await;
                let samples: Vec<Sample> = entry.requests.values().cloned().collect();
                for sample in samples {
                    self.record_failed(&sample, error.clone(), 0.0, 1).await;
                }
                self.stop_backend(reason);
                false
            }
        }
    }

    async fn create(
        &mut self,
        entry: &mut BatchEntry,
        requests: &[BatchRequest],
        resumed: bool,
    ) -> Result<(), BatchError> {
        if resumed {
            if let Some(id) =
                with_retries(&self.retry, &self.context, || self.api.find(&entry.token)).await?
            {
                return self.adopt(entry, id).await;
            }
        }
        if entry.input_file_id.is_none() {
            let input =
                with_retries(&self.retry, &self.context, || self.api.upload(requests)).await?;
            if input.is_some() {
                entry.input_file_id = input;
                self.save(entry).await;
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let input = entry.input_file_id.as_deref();
            match self.api.create(requests, input, &entry.token, &self.spec.id).await {
                Ok(id) => return self.adopt(entry, id).await,
                Err(e) if e.is_retryable() && attempt < self.retry.max_attempts => {
                    let wait = self.retry.delay(attempt, &e.as_backend_error());
                    if self.context.stop.unless_stopped(tokio::time::sleep(wait)).await.is_none() {
                        return Err(e);
                    }
                    // The failed create may have made the batch all the same (a response lost
                    // on the way back): look for it before creating another.
                    if let Ok(Some(id)) = self.api.find(&entry.token).await {
                        return self.adopt(entry, id).await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn adopt(&mut self, entry: &mut BatchEntry, id: String) -> Result<(), BatchError> {
        entry.batch_id = Some(id);
        entry.state = EntryState::Submitted;
        self.save(entry).await;
        Ok(())
    }

    /// Polls the open batches until every one has ended and been collected; returns what is to
    /// be sent again, or `None` when a stop (or a batch that cannot be polled) ended the wait.
    async fn wait_and_collect(&mut self, open: &mut Vec<BatchEntry>) -> Option<Vec<Retry>> {
        let mut backoff = PollBackoff::new(self.poll);
        let mut seen: HashMap<String, (String, u64, u64)> = HashMap::new();
        let mut retries = Vec::new();
        loop {
            let mut progress = false;
            let mut i = 0;
            while i < open.len() {
                if self.context.stop.is_stopped() {
                    return None;
                }
                if open[i].batch_id.is_none() {
                    // Left `submitting` by an earlier run: find its batch, or create it.
                    let mut entry = open.remove(i);
                    let requests = self.requests_of(&entry);
                    if self.establish(&mut entry, &requests, true).await {
                        open.insert(i, entry);
                    } else if self.context.stop.is_stopped() {
                        return None;
                    } else {
                        continue;
                    }
                }
                let id = open[i].batch_id.clone().unwrap_or_default();
                let status = match with_retries(&self.retry, &self.context, || self.api.status(&id))
                    .await
                {
                    Ok(s) => s,
                    Err(_) if self.context.stop.is_stopped() => return None,
                    Err(e) => {
                        self.stop_backend(format!(
                            "cannot poll batch {id}: {}; it runs on at the provider, and `--resume` collects it",
                            error_message(&e.as_backend_error())
                        ));
                        return None;
                    }
                };
                let now = (status.phase.as_str().to_string(), status.completed, status.failed);
                if seen.get(&id) != Some(&now) {
                    progress = true;
                    (self.context.events)(RunEvent::Batch {
                        backend: self.spec.id.clone(),
                        batch: id.clone(),
                        status: now.0.clone(),
                        completed: status.completed,
                        failed: status.failed,
                        total: status.total.max(open[i].requests.len() as u64),
                    });
                    if open[i].status.as_deref() != Some(now.0.as_str()) {
                        open[i].status = Some(now.0.clone());
                        self.save(&open[i]).await;
                    }
                    seen.insert(id.clone(), now);
                }
                if status.phase.ended() {
                    let entry = open.remove(i);
                    match self.collect(entry, &status).await {
                        Some(r) => retries.extend(r),
                        None => return None,
                    }
                    continue;
                }
                i += 1;
            }
            if open.is_empty() {
                return Some(retries);
            }
            let wait = tokio::time::sleep(backoff.after_poll(progress));
            self.context.stop.unless_stopped(wait).await?;
        }
    }

    /// The requests of an entry, made again from its samples.
    fn requests_of(&self, entry: &BatchEntry) -> Vec<BatchRequest> {
        entry
            .requests
            .iter()
            .filter_map(|(custom_id, sample)| {
                let index = *self.index.get(&sample.id)?;
                let body = self.request(index).ok()?;
                Some(BatchRequest { custom_id: custom_id.clone(), body })
            })
            .collect()
    }

    /// Journals the results of an ended batch; returns the samples to send again, or `None` when
    /// the results cannot be read (the entry stays open for a resumed run).
    async fn collect(&mut self, mut entry: BatchEntry, status: &BatchStatus) -> Option<Vec<Retry>> {
        let (ended_at, ended_unix_ms) = now();
        let latency_ms = ended_unix_ms.saturating_sub(entry.created_unix_ms) as f64;
        let attempts = entry.round;
        entry.status = Some(status.phase.as_str().to_string());
        entry.ended_at = Some(ended_at);
        entry.ended_unix_ms = Some(ended_unix_ms);
        let id = status.id.clone();
        let has_results = !status.results.is_empty();
        if status.phase == crate::backend::batch::BatchPhase::Failed && !has_results {
            // The whole batch failed (its input was refused): no request in it was run.
            let why = if status.errors.is_empty() {
                "no reason given".to_string()
            } else {
                status.errors.join("; ")
            };
            let reason = format!("batch {id} failed: {why}");
            entry.state = EntryState::Failed;
            entry.error = Some(reason.clone());
            self.save(&entry).await;
            let samples: Vec<Sample> = entry.requests.values().cloned().collect();
            for sample in samples {
                let error = BackendError::new(ErrorKind::ApiError, reason.clone());
                self.record_failed(&sample, error, latency_ms, attempts).await;
            }
            self.stop_backend(reason);
            return Some(Vec::new());
        }
        let lines =
            match with_retries(&self.retry, &self.context, || self.api.results(status)).await {
                Ok(lines) => lines,
                Err(_) if self.context.stop.is_stopped() => return None,
                Err(e) => {
                    self.stop_backend(format!(
                        "cannot read the results of batch {id}: {}; `--resume` reads them again",
                        error_message(&e.as_backend_error())
                    ));
                    return None;
                }
            };
        let mut outcomes: HashMap<String, LineOutcome> = lines.into_iter().collect();
        let unprocessed = format!(
            "batch {id} ended ({}) without a result for the request",
            status.phase.as_str()
        );
        let mut retries = Vec::new();
        for (custom_id, sample) in entry.requests.clone() {
            let key = (sample.id.clone(), sample.epoch);
            if self.done.contains(&key)
                || self.written.contains(&key)
                || self.recorded.contains(&key)
            {
                continue;
            }
            let Some(&index) = self.index.get(&sample.id) else { continue };
            let outcome = outcomes
                .remove(&custom_id)
                .unwrap_or(LineOutcome::Unprocessed { reason: unprocessed.clone() });
            let retry = |error: BackendError| Retry {
                sample: sample.clone(),
                round: entry.round + 1,
                error,
            };
            match outcome {
                LineOutcome::Answered { body } => match self.client.parse_batch_reply(&body) {
                    Ok(completion) => {
                        let (messages, request) = match self.messages_and_body(index) {
                            Ok(made) => made,
                            Err(error) => {
                                self.record_failed(&sample, error, latency_ms, attempts).await;
                                continue;
                            }
                        };
                        if let Some(cache) = self.context.cache.as_deref() {
                            let prepared = Prepared::Body(request);
                            if let Some(slot) = self.client.cache_slot(&prepared, sample.epoch) {
                                slot.store(cache, &completion, latency_ms);
                            }
                        }
                        let item = &self.context.suite.test.items[index];
                        let mut record = answered_record(
                            &self.spec.id,
                            &self.context.suite,
                            item,
                            messages,
                            completion,
                            latency_ms,
                            attempts,
                        );
                        record.epoch = sample.epoch;
                        self.journal(record).await;
                    }
                    Err(error) if is_retryable(&error) => retries.push(retry(error)),
                    Err(error) => self.record_failed(&sample, error, latency_ms, attempts).await,
                },
                LineOutcome::Failed(error) if is_retryable(&error) => retries.push(retry(error)),
                LineOutcome::Failed(error) => {
                    self.record_failed(&sample, error, latency_ms, attempts).await
                }
                LineOutcome::Unprocessed { reason } => {
                    let message = format!("not processed: {reason}");
                    retries.push(retry(BackendError::new(ErrorKind::Timeout, message)));
                }
            }
        }
        entry.state = EntryState::Collected;
        self.save(&entry).await;
        Some(retries)
    }

    async fn record_failed(
        &mut self,
        sample: &Sample,
        error: BackendError,
        latency_ms: f64,
        attempts: u32,
    ) {
        let Some(&index) = self.index.get(&sample.id) else { return };
        let messages = self.messages_and_body(index).map(|(m, _)| m).unwrap_or_default();
        let item = &self.context.suite.test.items[index];
        let mut r = failed_record(&self.spec.id, item, messages, error, latency_ms, attempts);
        r.epoch = sample.epoch;
        self.journal(r).await;
    }

    async fn journal(&mut self, record: Record) {
        if self.written.insert((record.id.clone(), record.epoch)) {
            let _ = self.records.send(record).await;
        }
    }

    /// Saves an entry; a state file that cannot be written stops the backend before anything
    /// more is submitted (a batch whose id is not on disk could be submitted twice).
    async fn save(&mut self, entry: &BatchEntry) -> bool {
        match self.store.save(entry) {
            Ok(()) => true,
            Err(e) => {
                self.stop_backend(format!("cannot record the batch state: {e}"));
                false
            }
        }
    }

    fn stop_backend(&mut self, reason: String) {
        if self.stopped.is_none() {
            self.stopped = Some(reason.clone());
            (self.context.events)(RunEvent::BackendStopped {
                backend: self.spec.id.clone(),
                reason,
            });
        }
    }
}

/// One call, attempted again as the retry policy allows (a stop ends the waiting).
async fn with_retries<T, F, Fut>(
    retry: &RetryPolicy,
    context: &RunContext,
    mut call: F,
) -> Result<T, BatchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BatchError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < retry.max_attempts => {
                let wait = e
                    .retry_after()
                    .map(|w| w.min(retry.max_delay))
                    .unwrap_or_else(|| retry.delay(attempt, &e.as_backend_error()));
                if context.stop.unless_stopped(tokio::time::sleep(wait)).await.is_none() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Now, as RFC 3339 and as milliseconds since the epoch.
fn now() -> (String, u64) {
    let t = SystemTime::now();
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    (crate::time::rfc3339(t), ms)
}

/// A token no other batch has: the backend, the round, the time and the process.
fn token(backend: &str, round: u32) -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{backend}\n{round}\n{nanos}\n{}\n{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let digest = Sha256::digest(seed.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("eg-{hex}")
}

/// run.json's account of a backend's batches, from the state file.
pub(super) fn summaries(store: &BatchStore, backend: &str) -> Vec<BatchSummary> {
    store
        .entries(backend)
        .into_iter()
        .filter_map(|e| {
            let id = e.batch_id?;
            let seconds =
                e.ended_unix_ms.map(|end| end.saturating_sub(e.created_unix_ms) as f64 / 1000.0);
            Some(BatchSummary {
                id,
                requests: e.requests.len() as u64,
                status: e.status.unwrap_or_else(|| "submitted".to_string()),
                submitted_at: e.created_at,
                ended_at: e.ended_at,
                seconds,
            })
        })
        .collect()
}
