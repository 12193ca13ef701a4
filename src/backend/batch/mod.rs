//! Batch APIs: a backend's requests sent as one job that the provider answers within a day, at a
//! discount (OpenAI's Batch API in [`openai`]; Anthropic's Message Batches in [`anthropic`]).
//!
//! This module is the wire protocol only, behind one provider-neutral interface,
//! [`BatchApi`]: upload the requests (where the provider needs an input file), create the batch
//! (tagged with a token, so a batch whose create response was lost can be found again), poll it,
//! and read its results as one [`LineOutcome`] per `custom_id`. The request bodies are built by
//! the backend the live path uses (`OpenAiBackend::body`, `AnthropicBackend::body`), and the success bodies that come back
//! are parsed by that same backend ([`super::BackendClient::parse_batch_reply`]), so a batch
//! request and a live one cannot drift apart. The runner's batch driver (`runner::batch`) owns
//! everything else: which samples go into a batch, the state file, retries and journaling.
//!
//! A new provider is a module here with a type implementing [`BatchApi`] and a variant of
//! [`BatchClient`].

pub mod anthropic;
pub mod openai;

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::wire::{error_message, retry_after, transport_error};
use super::{is_retryable, BackendError, ErrorKind};
use crate::text::excerpt;

pub use anthropic::AnthropicBatch;
pub use openai::OpenAiBatch;

/// One request of a batch: a short id that is safe for every provider (`[A-Za-z0-9_-]{1,64}`)
/// and the exact body the live path would send.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub custom_id: String,
    pub body: Box<RawValue>,
}

/// Where a batch is, in the words of OpenAI's Batch API (other providers map onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchPhase {
    Validating,
    InProgress,
    Finalizing,
    Completed,
    Failed,
    Expired,
    Cancelling,
    Cancelled,
}

impl BatchPhase {
    /// Whether the batch is over: nothing in it will change any more.
    pub fn ended(self) -> bool {
        matches!(
            self,
            BatchPhase::Completed
                | BatchPhase::Failed
                | BatchPhase::Expired
                | BatchPhase::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BatchPhase::Validating => "validating",
            BatchPhase::InProgress => "in_progress",
            BatchPhase::Finalizing => "finalizing",
            BatchPhase::Completed => "completed",
            BatchPhase::Failed => "failed",
            BatchPhase::Expired => "expired",
            BatchPhase::Cancelling => "cancelling",
            BatchPhase::Cancelled => "cancelled",
        }
    }

    /// The phase named by [`as_str`](Self::as_str) (OpenAI's `status`); `None` for any other word.
    pub fn parse(name: &str) -> Option<BatchPhase> {
        [
            BatchPhase::Validating,
            BatchPhase::InProgress,
            BatchPhase::Finalizing,
            BatchPhase::Completed,
            BatchPhase::Failed,
            BatchPhase::Expired,
            BatchPhase::Cancelling,
            BatchPhase::Cancelled,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

/// A batch as the provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStatus {
    pub id: String,
    pub phase: BatchPhase,
    /// Requests in the batch, and how many have been answered and have failed so far.
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    /// Why a failed batch failed, in the server's words.
    pub errors: Vec<String>,
    /// Where the results are, in the provider's terms (OpenAI: the output and error file ids);
    /// read only by the provider's [`BatchApi::results`].
    pub results: Vec<String>,
}

/// What became of one request of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum LineOutcome {
    /// A success response; its body is parsed by the backend that built the request.
    Answered { body: String },
    /// The request failed: its status and the server's message.
    Failed(BackendError),
    /// Never processed: the batch expired or was cancelled before it got to the request. It is
    /// sent again in a new batch.
    Unprocessed { reason: String },
}

/// Why a call to a batch API failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// The request failed (transport or HTTP status), with the server's message.
    #[error("cannot {action}: {source}")]
    Request {
        action: &'static str,
        #[source]
        source: BackendError,
    },
    /// The server answered, but not in the shape of the batch API.
    #[error("cannot {action}: the reply is not what the batch API sends ({detail})")]
    Protocol { action: &'static str, detail: String },
}

impl BatchError {
    /// Whether asking again may succeed (the retry policy's rule for requests).
    pub fn is_retryable(&self) -> bool {
        match self {
            BatchError::Request { source, .. } => is_retryable(source),
            BatchError::Protocol { .. } => true,
        }
    }

    /// The error as a failed request's record keeps it.
    pub fn as_backend_error(&self) -> BackendError {
        match self {
            BatchError::Request { action, source } => BackendError {
                message: format!("cannot {action}: {}", source.message),
                ..source.clone()
            },
            BatchError::Protocol { .. } => {
                BackendError::new(super::ErrorKind::MalformedResponse, self.to_string())
            }
        }
    }

    /// How long the server asked to wait before asking again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BatchError::Request { source, .. } => source.retry_after,
            BatchError::Protocol { .. } => None,
        }
    }
}

/// What a provider's batch API must do for the batch driver. Every call is one attempt; the
/// driver retries what [`BatchError::is_retryable`] allows.
pub trait BatchApi {
    /// The provider's name, as the state file and run.json record it (`openai`).
    fn provider(&self) -> &'static str;

    /// The most requests one batch may hold; larger sets are split.
    fn max_requests(&self) -> usize;

    /// The most bytes of request bodies one batch may hold; larger sets are split. Unlimited
    /// unless the provider says otherwise.
    fn max_bytes(&self) -> usize {
        usize::MAX
    }

    /// Stores the requests where the batch will read them, and returns a reference to pass to
    /// [`create`](Self::create) (OpenAI: the id of the uploaded JSONL file); `None` for a
    /// provider that takes the requests in the create call itself. Creates no batch.
    fn upload(
        &self,
        requests: &[BatchRequest],
    ) -> impl Future<Output = Result<Option<String>, BatchError>> + Send;

    /// Creates the batch and returns its id. `token` goes into the batch's metadata (with the
    /// backend id), so [`find`](Self::find) can recognise it, where the provider has metadata.
    fn create(
        &self,
        requests: &[BatchRequest],
        input: Option<&str>,
        token: &str,
        backend: &str,
    ) -> impl Future<Output = Result<String, BatchError>> + Send;

    /// The id of a batch created with `token`, if there is one: a create whose response was
    /// lost may still have made the batch, and it must not be made twice. A provider that
    /// cannot tie a batch to its token answers `None` (see [`AnthropicBatch::find`]).
    fn find(&self, token: &str) -> impl Future<Output = Result<Option<String>, BatchError>> + Send;

    /// The batch's phase and counts.
    fn status(&self, id: &str) -> impl Future<Output = Result<BatchStatus, BatchError>> + Send;

    /// The outcome of every request the batch has a result for, by `custom_id`; a request
    /// without a line is for the caller to treat as unprocessed.
    fn results(
        &self,
        status: &BatchStatus,
    ) -> impl Future<Output = Result<Vec<(String, LineOutcome)>, BatchError>> + Send;
}

/// The batch API of a backend, as the plan builds it: one variant per provider.
pub enum BatchClient {
    OpenAi(OpenAiBatch),
    Anthropic(AnthropicBatch),
}

impl BatchApi for BatchClient {
    fn provider(&self) -> &'static str {
        match self {
            BatchClient::OpenAi(b) => b.provider(),
            BatchClient::Anthropic(b) => b.provider(),
        }
    }

    fn max_requests(&self) -> usize {
        match self {
            BatchClient::OpenAi(b) => b.max_requests(),
            BatchClient::Anthropic(b) => b.max_requests(),
        }
    }

    fn max_bytes(&self) -> usize {
        match self {
            BatchClient::OpenAi(b) => b.max_bytes(),
            BatchClient::Anthropic(b) => b.max_bytes(),
        }
    }

    async fn upload(&self, requests: &[BatchRequest]) -> Result<Option<String>, BatchError> {
        match self {
            BatchClient::OpenAi(b) => b.upload(requests).await,
            BatchClient::Anthropic(b) => b.upload(requests).await,
        }
    }

    async fn create(
        &self,
        requests: &[BatchRequest],
        input: Option<&str>,
        token: &str,
        backend: &str,
    ) -> Result<String, BatchError> {
        match self {
            BatchClient::OpenAi(b) => b.create(requests, input, token, backend).await,
            BatchClient::Anthropic(b) => b.create(requests, input, token, backend).await,
        }
    }

    async fn find(&self, token: &str) -> Result<Option<String>, BatchError> {
        match self {
            BatchClient::OpenAi(b) => b.find(token).await,
            BatchClient::Anthropic(b) => b.find(token).await,
        }
    }

    async fn status(&self, id: &str) -> Result<BatchStatus, BatchError> {
        match self {
            BatchClient::OpenAi(b) => b.status(id).await,
            BatchClient::Anthropic(b) => b.status(id).await,
        }
    }

    async fn results(
        &self,
        status: &BatchStatus,
    ) -> Result<Vec<(String, LineOutcome)>, BatchError> {
        match self {
            BatchClient::OpenAi(b) => b.results(status).await,
            BatchClient::Anthropic(b) => b.results(status).await,
        }
    }
}

/// Sends one call of a batch API (authentication already on `request`) and returns the body of
/// a success response. Failures read as the live clients read them (`wire.rs`: status, the
/// server's message, `Retry-After`), so the retry policy treats batch calls and live requests
/// alike.
async fn exchange(
    action: &'static str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<String, BatchError> {
    let failed = |source: BackendError| BatchError::Request { action, source };
    let response =
        request.timeout(timeout).send().await.map_err(|e| failed(transport_error(&e)))?;
    let status = response.status().as_u16();
    let wait = retry_after(response.headers());
    let body = response.text().await.map_err(|e| failed(transport_error(&e)))?;
    if !(200..300).contains(&status) {
        return Err(failed(BackendError {
            kind: ErrorKind::Http,
            status: Some(status),
            message: error_message(&body),
            retry_after: wait,
        }));
    }
    Ok(body)
}

/// A success body read as the JSON object `action` expects.
fn parse_reply<T: for<'de> Deserialize<'de>>(
    action: &'static str,
    body: &str,
) -> Result<T, BatchError> {
    serde_json::from_str(body).map_err(|e| BatchError::Protocol {
        action,
        detail: format!("{e}: {}", excerpt(body, 200)),
    })
}

/// The wait between polls of a batch: `first` (the backend's `batch_poll_secs`, 30 s by default),
/// growing by half after each poll that shows no progress, up to ten times `first` and never
/// beyond [`PollBackoff::MAX_WAIT`] unless `first` itself is longer. Progress resets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollBackoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl PollBackoff {
    /// The poll interval when a backend sets none.
    pub const DEFAULT_FIRST: Duration = Duration::from_secs(30);
    /// The longest wait between polls (unless the first is longer).
    pub const MAX_WAIT: Duration = Duration::from_secs(300);

    pub fn new(first: Duration) -> Self {
        let cap = first.saturating_mul(10).min(Self::MAX_WAIT).max(first);
        PollBackoff { first, cap, next: first }
    }

    /// The wait before the next poll, after a poll that did (`progress`) or did not show
    /// progress.
    pub fn after_poll(&mut self, progress: bool) -> Duration {
        let wait = if progress { self.first } else { self.next };
        self.next = wait.mul_f64(1.5).min(self.cap);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_backs_off_while_nothing_changes_and_starts_over_on_progress() {
        let mut b = PollBackoff::new(Duration::from_secs(30));
        let waits: Vec<u64> = (0..8).map(|_| b.after_poll(false).as_secs()).collect();
        assert_eq!(waits, [30, 45, 67, 101, 151, 227, 300, 300]);
        assert_eq!(b.after_poll(true), Duration::from_secs(30));
        assert_eq!(b.after_poll(false), Duration::from_secs(45));
        // A short interval (tests) caps at ten times itself; a long one is never shortened.
        let mut quick = PollBackoff::new(Duration::from_millis(20));
        let last = (0..20).map(|_| quick.after_poll(false)).last().unwrap();
        assert_eq!(last, Duration::from_millis(200));
        let mut slow = PollBackoff::new(Duration::from_secs(900));
        assert_eq!(slow.after_poll(false), Duration::from_secs(900));
        assert_eq!(slow.after_poll(false), Duration::from_secs(900));
    }

    #[test]
    fn phases_read_back_from_their_names() {
        for name in ["validating", "in_progress", "finalizing", "completed", "failed", "expired"] {
            assert_eq!(BatchPhase::parse(name).map(BatchPhase::as_str), Some(name));
        }
        assert_eq!(BatchPhase::parse("ended"), None);
        assert!(BatchPhase::Expired.ended() && !BatchPhase::Finalizing.ended());
    }
}
