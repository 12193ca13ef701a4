//! In-process server speaking Anthropic's Messages API, for integration tests.
//!
//! It is the OpenAI test server's machinery (`openai_server::TestServer`: 127.0.0.1:0 only,
//! every request recorded, attempts counted per body, requests in flight counted) serving
//! `POST /v1/messages`; this module adds the Messages wire format: [`Message`] builds a reply
//! (text, `tool_use`, `thinking` and `redacted_thinking` blocks, `stop_reason`, usage with cache
//! reads and writes, `anthropic-ratelimit-*` headers), [`error`] Anthropic's error body, and
//! [`system`] reads a request's top-level system prompt. `TestServer::base_url()` is
//! `http://127.0.0.1:PORT/v1`, the form an `anthropic` backend's `base_url` takes.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

pub use super::openai_server::{RecordedRequest, Reply, ServerOptions, TestServer};

/// The path the server answers.
pub const MESSAGES_PATH: &str = "/v1/messages";

fn options() -> ServerOptions {
    ServerOptions { chat_path: MESSAGES_PATH, ..ServerOptions::default() }
}

/// Starts the server on the current runtime (see `TestServer::start`).
pub async fn start<F>(handler: F) -> TestServer
where
    F: Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static,
{
    TestServer::start_with(options(), handler).await
}

/// Starts the server on a runtime of its own, for tests that block (see
/// `TestServer::start_in_thread`).
pub fn start_in_thread<F>(handler: F) -> TestServer
where
    F: Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static,
{
    TestServer::start_in_thread_with(options(), handler)
}

/// The request's top-level `system` prompt: a string, or the text of its blocks joined.
pub fn system(req: &RecordedRequest) -> Option<String> {
    match req.json.as_ref()?.get("system")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => {
            Some(blocks.iter().filter_map(|b| b.get("text")?.as_str()).collect::<String>())
        }
        _ => None,
    }
}

/// Token usage as Anthropic reports it: `input_tokens` excludes the cache reads and writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A 200 Messages API response, built up and turned into a [`Reply`].
#[derive(Clone, Debug)]
pub struct Message {
    pub content: Vec<Value>,
    pub stop_reason: String,
    pub usage: Option<Usage>,
    pub headers: Vec<(String, String)>,
}

impl Message {
    /// One text block, `stop_reason: end_turn`, 10 input tokens and one output token a word.
    pub fn text(text: impl Into<String>) -> Message {
        let text = text.into();
        let output_tokens = text.split_whitespace().count().max(1) as u64;
        Message {
            content: vec![json!({ "type": "text", "text": text })],
            stop_reason: "end_turn".into(),
            usage: Some(Usage { input_tokens: 10, output_tokens, ..Usage::default() }),
            headers: Vec::new(),
        }
    }

    /// One `tool_use` block calling `extraction` with `input`, `stop_reason: tool_use`.
    pub fn tool_use(input: Value) -> Message {
        let id = format!("toolu_test{:08x}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
        Message {
            content: vec![
                json!({ "type": "tool_use", "id": id, "name": "extraction", "input": input }),
            ],
            stop_reason: "tool_use".into(),
            usage: Some(Usage { input_tokens: 200, output_tokens: 20, ..Usage::default() }),
            headers: Vec::new(),
        }
    }

    /// Puts a `thinking` block (with a signature, as the API sends it) before the content.
    pub fn with_thinking(mut self, thinking: &str) -> Message {
        self.content.insert(
            0,
            json!({ "type": "thinking", "thinking": thinking, "signature": "EqQBCgIYAhIM" }),
        );
        self
    }

    /// Puts a `redacted_thinking` block before the content.
    pub fn with_redacted_thinking(mut self) -> Message {
        self.content.insert(0, json!({ "type": "redacted_thinking", "data": "EmwKAhgBEgy3va" }));
        self
    }

    pub fn with_stop_reason(mut self, stop_reason: &str) -> Message {
        self.stop_reason = stop_reason.into();
        self
    }

    pub fn with_usage(mut self, usage: Option<Usage>) -> Message {
        self.usage = usage;
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Message {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The JSON body in the shape the API sends.
    pub fn body(&self, model: &str) -> Value {
        let id = format!("msg_test{:012x}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let mut body = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
        });
        if let Some(u) = self.usage {
            body["usage"] = json!({
                "input_tokens": u.input_tokens,
                "cache_creation_input_tokens": u.cache_creation_input_tokens,
                "cache_read_input_tokens": u.cache_read_input_tokens,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": u.cache_creation_input_tokens,
                    "ephemeral_1h_input_tokens": 0
                },
                "output_tokens": u.output_tokens,
                "service_tier": "standard",
            });
        }
        body
    }

    /// The reply for a request to `model`.
    pub fn reply(self, model: &str) -> Reply {
        let body = self.body(model).to_string();
        // `Reply::Error` sends any status with a JSON body and headers; here a 200.
        Reply::Error { status: 200, body, headers: self.headers }
    }
}

/// `{"type":"error","error":{"type": kind, "message": message}}` with this status, as the API
/// sends for every failure (`authentication_error` 401, `rate_limit_error` 429,
/// `overloaded_error` 529, `invalid_request_error` 400, …).
pub fn error(status: u16, kind: &str, message: &str) -> Reply {
    let body = json!({
        "type": "error",
        "error": { "type": kind, "message": message },
        "request_id": "req_test",
    });
    Reply::Error { status, body: body.to_string(), headers: Vec::new() }
}

/// 529 `overloaded_error`: Anthropic's "try again soon".
pub fn overloaded() -> Reply {
    error(529, "overloaded_error", "Overloaded")
}

/// 429 `rate_limit_error` with `headers` (e.g. `retry-after`, `anthropic-ratelimit-*`).
pub fn rate_limited(headers: &[(&str, &str)]) -> Reply {
    let Reply::Error { status, body, .. } = error(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute.",
    ) else {
        unreachable!("error() builds Reply::Error")
    };
    let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    Reply::Error { status, body, headers }
}
