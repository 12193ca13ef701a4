//! Backends answer one prompt at a time. The runner owns concurrency, retries and journaling;
//! a backend only turns messages into a [`Completion`] or a classified [`BackendError`].

mod local;
mod openai;

use std::time::Duration;

pub use local::LocalBackend;
pub use openai::OpenAiBackend;

use crate::prompt::ChatMessage;

/// A model's answer to one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// Token usage as reported by the server; `None` when it sent none.
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    /// Input tokens served from the provider's prompt cache (a part of `input`).
    pub cached_input: u64,
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
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Http => "http",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Body => "body",
            ErrorKind::MalformedResponse => "malformed_response",
            ErrorKind::ApiError => "api_error",
            ErrorKind::Internal => "internal",
        }
    }
}

impl BackendError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        BackendError { kind, status: None, message: message.into(), retry_after: None }
    }

    /// Whether another attempt may succeed: rate limits, overload, server faults and transport
    /// failures are transient; other client errors (400, 401, 404, …) will fail the same way.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ErrorKind::Http => matches!(self.status, Some(408 | 409 | 429) | Some(500..=599)),
            ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Body | ErrorKind::MalformedResponse => true,
            ErrorKind::ApiError | ErrorKind::Internal => false,
        }
    }
}

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
    Local(LocalBackend),
}

impl BackendClient {
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<Completion, BackendError> {
        match self {
            BackendClient::OpenAi(b) => b.complete(messages).await,
            BackendClient::Local(b) => b.complete(messages),
        }
    }

    // The local backend is never cached: it costs nothing to ask again.
    /// The response-cache key of these messages; `None` for backends that are not cached.
    pub fn cache_key(&self, messages: &[ChatMessage], epoch: u32) -> Option<String> {
        let BackendClient::OpenAi(b) = self else { return None };
        b.cache_key(&b.request(messages), epoch)
    }

    /// The cached answer under `key`, with the original request's latency.
    pub fn cached(cache: &crate::runner::cache::ResponseCache, key: &str) -> Option<(Completion, f64)> {
        // A cache that cannot be read is a miss: the request is simply sent.
        let hit = cache.get(key).ok()??;
        let usage = match (hit.input_tokens, hit.output_tokens) {
            (Some(input), Some(output)) => Some(Usage { input, output, cached_input: hit.cached_input_tokens.unwrap_or(0) }),
            _ => None,
        };
        Some((Completion { text: hit.text, usage, finish_reason: hit.finish_reason }, hit.latency_ms.unwrap_or(0.0)))
    }

    /// Asks the backend and, given a cache and the request's key, stores the answer there.
    pub async fn complete_and_store(
        &self,
        messages: &[ChatMessage],
        cache: Option<&crate::runner::cache::ResponseCache>,
        key: Option<&str>,
    ) -> Result<Completion, BackendError> {
        let BackendClient::OpenAi(b) = self else {
            return self.complete(messages).await;
        };
        let request = b.request(messages);
        let started = std::time::Instant::now();
        let completion = b.send(request).await?;
        if let (Some(cache), Some(key)) = (cache, &key) {
            let stored = crate::runner::cache::CachedCompletion {
                text: completion.text.clone(),
                latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
                input_tokens: completion.usage.map(|u| u.input),
                output_tokens: completion.usage.map(|u| u.output),
                cached_input_tokens: completion.usage.map(|u| u.cached_input),
                finish_reason: completion.finish_reason.clone(),
            };
            // A failed write only means the request is asked again next time.
            let _ = cache.put(key, "openai", b.model(), &stored);
        }
        Ok(completion)
    }
}
