//! Backends answer one prompt at a time. The runner owns concurrency, the retry loop and
//! journaling; a backend only turns messages into a [`Completion`] or a classified
//! [`BackendError`]. Beside the backends: the [response cache](cache) (each backend files its
//! own rows under its provider name) and the [retry policy](RetryPolicy), which decides which
//! errors are worth another attempt.
//!
//! [`BackendClient`] is the one interface the runner sees. It is an enum rather than a trait
//! object: backends are a closed set known to the plan, and an enum keeps `send` a plain
//! `async fn` with no boxed futures on the hot path.

mod anthropic;
pub mod batch;
pub mod cache;
pub mod local;
mod openai;
pub mod replay;
mod retry;
mod wire;

use std::time::Duration;

pub use anthropic::AnthropicBackend;
pub use local::LocalBackend;
pub use openai::OpenAiBackend;
pub use replay::ReplayBackend;
pub use retry::{ends_backend, is_retryable, RetryPolicy};

use crate::prompt::ChatMessage;

/// A model's answer to one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// Token usage as reported by the server; `None` when it sent none.
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// The model's reasoning, never the answer: a leading `<think>…</think>` block taken off the
    /// reply, or the message's `reasoning_content` / `reasoning` field.
    pub reasoning: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    /// Input tokens served from the provider's prompt cache (a part of `input`).
    pub cached_input: u64,
    /// Reasoning tokens (`completion_tokens_details.reasoning_tokens`), a part of `output`.
    pub reasoning: u64,
    /// Input tokens written to the provider's prompt cache (a part of `input`, and not of
    /// `cached_input`): Anthropic bills them above the input price.
    pub cache_write: u64,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendError {
    pub kind: ErrorKind,
    pub status: Option<u16>,
    pub message: String,
    /// How long the server asked us to wait (`Retry-After`, `retry-after-ms`).
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server answered with a non-success HTTP status.
    Http,
    Timeout,
    Connect,
    /// The response body was cut off or could not be read.
    Body,
    /// A success status whose body is not a chat completion.
    MalformedResponse,
    /// A success status whose body is an error object.
    ApiError,
    Internal,
    /// Never sent: its backend was stopped by an error no retry can fix (see
    /// [`ends_backend`]); a resumed run sends it.
    NotSent,
    /// Not answered because the run was stopped (Ctrl-C, SIGTERM, the budget): cancelled in
    /// flight after the grace period, or never sent. Not a failure of the backend: scoring
    /// counts the sample as missing, and a resumed run sends it.
    Cancelled,
}

impl ErrorKind {
    /// The kind named by [`as_str`](Self::as_str), as a journal has it.
    pub fn parse(name: &str) -> Option<ErrorKind> {
        [
            ErrorKind::Http,
            ErrorKind::Timeout,
            ErrorKind::Connect,
            ErrorKind::Body,
            ErrorKind::MalformedResponse,
            ErrorKind::ApiError,
            ErrorKind::Internal,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Http => "http",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Body => "body",
            ErrorKind::MalformedResponse => "malformed_response",
            ErrorKind::ApiError => "api_error",
            ErrorKind::Internal => "internal",
            ErrorKind::NotSent => "not_sent",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl BackendError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        BackendError { kind, status: None, message: message.into(), retry_after: None }
    }
}

impl std::error::Error for BackendError {}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} {}: {}", self.kind.as_str(), status, self.message),
            None => write!(f, "{}: {}", self.kind.as_str(), self.message),
        }
    }
}

/// A ready-to-use backend.
pub enum BackendClient {
    OpenAi(OpenAiBackend),
    /// Anthropic's Messages API.
    Anthropic(AnthropicBackend),
    Local(LocalBackend),
    /// Replies read from a file; nothing is sent.
    Replay(ReplayBackend),
}

/// A request ready to send, built once for all its attempts.
pub enum Prepared {
    /// For an OpenAI-compatible server or Anthropic's API: the exact body, serialised once.
    Body(Box<serde_json::value::RawValue>),
    /// The local backend reads the messages themselves.
    Messages,
    /// For a replay: the recorded answer to this sample.
    Replay(Box<replay::Recorded>),
}

impl Prepared {
    /// The latency recorded with a replayed answer, which its record keeps; `None` for live
    /// requests, whose latency is measured.
    pub fn recorded_latency_ms(&self) -> Option<f64> {
        match self {
            Prepared::Replay(r) => Some(r.latency_ms),
            _ => None,
        }
    }
}

impl BackendClient {
    pub fn prepare(&self, messages: &[ChatMessage]) -> Result<Prepared, BackendError> {
        match self {
            BackendClient::OpenAi(b) => b.body(messages).map(Prepared::Body),
            BackendClient::Anthropic(b) => b.body(messages).map(Prepared::Body),
            BackendClient::Local(_) => Ok(Prepared::Messages),
            BackendClient::Replay(b) => b.take(messages).map(|r| Prepared::Replay(Box::new(r))),
        }
    }

    /// Where the answer to a prepared request is filed in the response cache; `None` for the
    /// local backend, which costs nothing to ask again.
    pub fn cache_slot(&self, prepared: &Prepared, epoch: u32) -> Option<CacheSlot<'_>> {
        match (self, prepared) {
            (BackendClient::OpenAi(b), Prepared::Body(body)) => Some(CacheSlot {
                key: b.cache_key(body, epoch),
                provider: OpenAiBackend::PROVIDER,
                model: b.model(),
            }),
            (BackendClient::Anthropic(b), Prepared::Body(body)) => Some(CacheSlot {
                key: b.cache_key(body, epoch),
                provider: AnthropicBackend::PROVIDER,
                model: b.model(),
            }),
            _ => None,
        }
    }

    /// The form of structured output the backend's requests carry now (`json_schema`,
    /// `json_object` or `off`; `tool` for Anthropic's forced tool call); `None` when it asks for
    /// none.
    pub fn structured_output_used(&self) -> Option<&'static str> {
        match self {
            BackendClient::OpenAi(b) => b.structured_output_used(),
            BackendClient::Anthropic(b) => b.structured_output_used(),
            BackendClient::Local(_) | BackendClient::Replay(_) => None,
        }
    }

    /// A success body the backend's batch API returned for one request, parsed as a live reply
    /// of this backend is; only a backend with a batch API has such bodies.
    pub fn parse_batch_reply(&self, body: &str) -> Result<Completion, BackendError> {
        match self {
            BackendClient::OpenAi(b) => b.parse_completion(body),
            BackendClient::Anthropic(b) => b.parse_message(body),
            BackendClient::Local(_) | BackendClient::Replay(_) => Err(BackendError::new(
                ErrorKind::Internal,
                "this backend has no batch API, so it has no batch replies",
            )),
        }
    }

    /// One attempt at the prepared request.
    pub async fn send(
        &self,
        prepared: &Prepared,
        messages: &[ChatMessage],
    ) -> Result<Completion, BackendError> {
        match (self, prepared) {
            (BackendClient::OpenAi(b), _) if b.negotiates() => b.send_negotiating(messages).await,
            (BackendClient::OpenAi(b), Prepared::Body(body)) => b.send(body).await,
            (BackendClient::OpenAi(b), _) => b.send(&b.body(messages)?).await,
            (BackendClient::Anthropic(b), Prepared::Body(body)) => b.send(body).await,
            (BackendClient::Anthropic(b), _) => b.send(&b.body(messages)?).await,
            (BackendClient::Local(b), _) => b.complete(messages),
            (BackendClient::Replay(_), Prepared::Replay(r)) => r.outcome.clone(),
            (BackendClient::Replay(b), _) => b.take(messages)?.outcome,
        }
    }
}

/// One request's place in the response cache: its key, and the provider and model its row is
/// filed under. The backend that made the request supplies all three.
pub struct CacheSlot<'a> {
    pub key: String,
    provider: &'static str,
    model: &'a str,
}

impl CacheSlot<'_> {
    /// The cached answer, if any and no older than `max_age`. A cache that cannot be read is a
    /// miss: the request is simply sent; so is one whose answer is too old, and the new answer
    /// replaces it.
    pub fn lookup(
        &self,
        cache: &cache::ResponseCache,
        max_age: Option<Duration>,
    ) -> Option<cache::CachedCompletion> {
        let hit = cache.get(&self.key).ok().flatten()?;
        match (max_age, hit.recorded_at) {
            (Some(max_age), Some(at)) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let age = now.saturating_sub(at).max(0) as u64;
                (age <= max_age.as_secs()).then_some(hit)
            }
            _ => Some(hit),
        }
    }

    /// Keeps `completion` for next time. A failed write only means the request is asked again.
    pub fn store(&self, cache: &cache::ResponseCache, completion: &Completion, latency_ms: f64) {
        let _ = cache.put(&self.key, self.provider, self.model, &completion.to_cached(latency_ms));
    }
}

impl From<cache::CachedCompletion> for Completion {
    fn from(hit: cache::CachedCompletion) -> Self {
        let usage = match (hit.input_tokens, hit.output_tokens) {
            (Some(input), Some(output)) => Some(Usage {
                input,
                output,
                cached_input: hit.cached_input_tokens.unwrap_or(0),
                reasoning: 0,
                cache_write: hit.cache_write_input_tokens.unwrap_or(0),
            }),
            _ => None,
        };
        Completion { text: hit.text, usage, finish_reason: hit.finish_reason, reasoning: None }
    }
}

impl Completion {
    /// The row the response cache keeps for this answer.
    pub fn to_cached(&self, latency_ms: f64) -> cache::CachedCompletion {
        cache::CachedCompletion {
            text: self.text.clone(),
            latency_ms: Some(latency_ms),
            input_tokens: self.usage.map(|u| u.input),
            output_tokens: self.usage.map(|u| u.output),
            cached_input_tokens: self.usage.map(|u| u.cached_input),
            // Absent unless there were writes, so rows of other providers stay as they were.
            cache_write_input_tokens: self.usage.map(|u| u.cache_write).filter(|&w| w > 0),
            finish_reason: self.finish_reason.clone(),
            recorded_at: None,
        }
    }
}
