//! Anthropic's Messages API (`POST {base_url}/messages`, `base_url` ending in `/v1` as for the
//! OpenAI-compatible backend; `https://api.anthropic.com/v1` by default).
//!
//! Sent over the run's shared `reqwest` client with no SDK in between, so the runner keeps its
//! own retry policy and sees every status, `Retry-After` and error body. What differs from an
//! OpenAI-compatible server, and how it maps onto evalgate's types:
//!
//! - The system prompt is a top-level `system` string; `messages` hold only user and assistant
//!   turns (consecutive turns of one role are merged: the API wants them alternating), and
//!   `max_tokens` is required, so every request carries one.
//! - Structured output is a forced tool call: a tool named `extraction` whose `input_schema` is
//!   the fields' JSON schema, and `tool_choice: {"type": "tool", "name": "extraction"}`. The
//!   answer is the `tool_use` block's `input` as JSON text, so the JSON-object parser and the
//!   field scores work unchanged.
//! - `thinking` and `redacted_thinking` blocks are the model's reasoning, never the answer.
//! - `usage.input_tokens` excludes cache reads and writes; [`Usage::input`] is every input token,
//!   so reads and writes are added to it (and kept apart as `cached_input` and `cache_write`).
//! - `stop_reason` is kept as the record's `finish_reason` (`max_tokens` counts as truncated).
//! - `anthropic-ratelimit-*` headers that say a limit is spent (`…-remaining: 0`) pause the
//!   backend's sending until that limit's `…-reset` time, and a 429 pauses it for as long as
//!   the server asks; the runner's own limits and retries are unchanged by this.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::openai::split_reasoning;
use super::wire::{error_message, retry_after, transport_error};
use super::{BackendError, Completion, ErrorKind, Usage};
use crate::prompt::{ChatMessage, Role};
use crate::suite::{BackendSpec, StructuredOutput};
use crate::text::excerpt;

/// The API version every request names (`anthropic-version`); the wire format below is its.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The key as the `x-api-key` header: trimmed (a trailing newline is not part of a key) and
/// marked sensitive, so it is never printed; `None` without a key or for one no header can hold.
pub fn key_header(api_key: Option<&str>) -> Option<HeaderValue> {
    let mut key = HeaderValue::from_str(api_key?.trim()).ok()?;
    key.set_sensitive(true);
    Some(key)
}

/// `request` with the API version every call names and, when there is one, the key.
pub fn authorized(
    request: reqwest::RequestBuilder,
    key: Option<&HeaderValue>,
) -> reqwest::RequestBuilder {
    let request = request.header("anthropic-version", ANTHROPIC_VERSION);
    match key {
        Some(key) => request.header("x-api-key", key.clone()),
        None => request,
    }
}

/// `max_tokens` of a request whose backend sets none and that has no default of its own (an
/// extraction task; classification gets room for its longest label, as for the OpenAI-compatible
/// backend). The API requires a value; 4,096 is generous for one extracted object and the
/// largest every Claude model accepts (Claude 3 Haiku's limit).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The name of the tool that carries structured output.
const TOOL_NAME: &str = "extraction";

/// The longest a rate-limit header or a 429 may pause the backend's sending: a reset further
/// away than this is taken for a clock problem, and the runner's retries take over.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// The limits Anthropic reports, each as `anthropic-ratelimit-{limit}-remaining` and
/// `anthropic-ratelimit-{limit}-reset` (RFC 3339).
const RATE_LIMITS: [&str; 4] = ["requests", "tokens", "input-tokens", "output-tokens"];

pub struct AnthropicBackend {
    http: reqwest::Client,
    /// `{base_url}/messages`.
    url: String,
    /// The server address as configured, for cache keys.
    base_url: String,
    /// The `x-api-key` header, marked sensitive so it is never printed; `None` for a server that
    /// needs no key.
    api_key: Option<HeaderValue>,
    model: String,
    temperature: f64,
    max_tokens: u32,
    timeout: Duration,
    /// The fields' JSON schema, when requests carry structured output (the forced tool call).
    schema: Option<serde_json::Value>,
    /// Tags of a leading reasoning block taken off text replies (a proxy in front of another
    /// model may send them).
    reasoning_tags: Vec<String>,
    /// No request is sent before this instant: a rate limit the server said is spent.
    paused_until: Mutex<Option<Instant>>,
}

impl AnthropicBackend {
    /// The provider name in cache keys and cache rows.
    pub const PROVIDER: &'static str = "anthropic";

    /// `api_key` is read from the environment by the caller (and checked to be a valid header
    /// value); it goes only into the `x-api-key` header. `schema` is the fields' JSON schema for
    /// an extraction task, sent as the tool's input schema unless `structured_output` is off.
    pub fn new(
        spec: &BackendSpec,
        api_key: Option<&str>,
        http: reqwest::Client,
        schema: Option<serde_json::Value>,
    ) -> Self {
        let base_url = spec.base_url.clone().unwrap_or_default();
        let api_key = key_header(api_key);
        AnthropicBackend {
            http,
            url: format!("{}/messages", base_url.trim_end_matches('/')),
            base_url,
            api_key,
            model: spec.model.clone().unwrap_or_default(),
            temperature: spec.temperature,
            max_tokens: spec.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            timeout: spec.timeout,
            schema: schema.filter(|_| spec.structured_output != StructuredOutput::Off),
            reasoning_tags: spec.reasoning_tags.clone(),
            paused_until: Mutex::new(None),
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// `tool` when requests carry the extraction tool; `None` when they ask for no structured
    /// output.
    pub fn structured_output_used(&self) -> Option<&'static str> {
        self.schema.as_ref().map(|_| "tool")
    }

    /// The request body for `messages`, serialised once: the same bytes are hashed for the cache
    /// key and sent, on every attempt.
    pub fn body(&self, messages: &[ChatMessage]) -> Result<Box<RawValue>, BackendError> {
        let (system, turns) = split_turns(messages);
        let request = MessagesRequest {
            model: &self.model,
            max_tokens: self.max_tokens,
            system,
            messages: turns,
            temperature: self.temperature,
            tools: self.schema.as_ref().map(|schema| {
                [Tool {
                    name: TOOL_NAME,
                    description: "Record the fields extracted from the input.",
                    input_schema: schema,
                }]
            }),
            tool_choice: self.schema.as_ref().map(|_| ToolChoice { kind: "tool", name: TOOL_NAME }),
        };
        let json = serde_json::to_string(&request).map_err(|e| {
            BackendError::new(ErrorKind::Internal, format!("cannot serialise the request: {e}"))
        })?;
        RawValue::from_string(json)
            .map_err(|e| BackendError::new(ErrorKind::Internal, e.to_string()))
    }

    /// The response-cache key of a request: provider, server, model and the exact body bytes
    /// (never the key). Repeated samples (`epoch` > 0) of one prompt get keys of their own.
    pub fn cache_key(&self, body: &RawValue, epoch: u32) -> String {
        super::cache::sample_key(Self::PROVIDER, &self.base_url, &self.model, body.get(), epoch)
    }

    /// One attempt: waits out a spent rate limit, then sends `body` and reads the reply within
    /// the backend's timeout.
    pub async fn send(&self, body: &RawValue) -> Result<Completion, BackendError> {
        self.wait_for_rate_limit().await;
        let request = self
            .http
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.get().to_owned());
        let request = authorized(request, self.api_key.as_ref());
        let exchange = async {
            let response = request.send().await.map_err(|e| transport_error(&e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.map_err(|e| transport_error(&e))?;
            Ok::<_, BackendError>((status, headers, text))
        };
        let (status, headers, text) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => {
                return Err(BackendError::new(
                    ErrorKind::Timeout,
                    format!("no complete response within {:?}", self.timeout),
                ))
            }
            Ok(result) => result?,
        };
        let limits = RateLimitHeaders::read(&headers, SystemTime::now());
        if let Some(wait) = limits.exhausted_for {
            self.pause_for(wait);
        }
        if !status.is_success() {
            let code = status.as_u16();
            // A 429 without Retry-After still says when the spent limit comes back.
            let wait = retry_after(&headers)
                .or_else(|| (code == 429).then_some(limits.wait_hint()).flatten());
            if let (429, Some(wait)) = (code, wait) {
                self.pause_for(wait);
            }
            return Err(BackendError {
                kind: ErrorKind::Http,
                status: Some(code),
                message: error_message(&text),
                retry_after: wait,
            });
        }
        self.parse_message(&text)
    }

    /// A Messages API response body, live or a succeeded line of a Message Batch (whose
    /// `message` is the same object), read into the answer.
    pub fn parse_message(&self, text: &str) -> Result<Completion, BackendError> {
        let message: LenientMessage = serde_json::from_str(text).map_err(|e| {
            BackendError::new(
                ErrorKind::MalformedResponse,
                format!("response is not a message ({e}): {}", excerpt(text, 200)),
            )
        })?;
        let mut completion = message.into_completion(self.schema.is_some())?;
        if self.schema.is_none() {
            if let Some((reasoning, answer)) =
                split_reasoning(&completion.text, &self.reasoning_tags)
            {
                completion.text = answer;
                completion.reasoning = Some(match completion.reasoning.take() {
                    Some(blocks) => format!("{blocks}\n\n{reasoning}"),
                    None => reasoning,
                });
            }
        }
        Ok(completion)
    }

    /// Holds every request of this backend back for `wait` (at most [`MAX_PAUSE`]), or longer
    /// if an earlier pause ends later.
    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait.min(MAX_PAUSE);
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    async fn wait_for_rate_limit(&self) {
        // Another response may push the pause further while this one waits: check again.
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::time::sleep_until(until).await;
                }
                _ => return,
            }
        }
    }
}

/// The top-level `system` text (the system messages joined by a blank line) and the user and
/// assistant turns, consecutive turns of one role merged the same way: the API takes one system
/// prompt and strictly alternating turns.
fn split_turns(messages: &[ChatMessage]) -> (Option<String>, Vec<Turn>) {
    let mut system: Vec<&str> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for m in messages {
        let role = match m.role {
            Role::System => {
                system.push(&m.content);
                continue;
            }
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        match turns.last_mut() {
            Some(last) if last.role == role => {
                last.content.push_str("\n\n");
                last.content.push_str(&m.content);
            }
            _ => turns.push(Turn { role, content: m.content.clone() }),
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    (system, turns)
}

/// A Messages API request, in the field order the API documents.
#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Turn>,
    temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[Tool<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice>,
}

#[derive(Serialize)]
struct Turn {
    role: &'static str,
    content: String,
}

#[derive(Serialize)]
struct Tool<'a> {
    name: &'static str,
    description: &'static str,
    input_schema: &'a serde_json::Value,
}

#[derive(Serialize)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
}

/// What the `anthropic-ratelimit-*` headers of one response say.
#[derive(Debug, Default, PartialEq)]
struct RateLimitHeaders {
    /// How long until the latest reset of a limit whose `…-remaining` is 0; `None` when no
    /// limit is spent.
    exhausted_for: Option<Duration>,
    /// How long until the soonest reset of any limit.
    soonest_reset: Option<Duration>,
}

impl RateLimitHeaders {
    fn read(headers: &HeaderMap, now: SystemTime) -> RateLimitHeaders {
        let text = |name: String| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let mut out = RateLimitHeaders::default();
        for limit in RATE_LIMITS {
            let Some(reset) = text(format!("anthropic-ratelimit-{limit}-reset"))
                .and_then(crate::time::parse_rfc3339)
            else {
                continue;
            };
            // A reset already past means the limit is back now.
            let wait = reset.duration_since(now).unwrap_or(Duration::ZERO);
            out.soonest_reset = Some(out.soonest_reset.map_or(wait, |s| s.min(wait)));
            let spent = text(format!("anthropic-ratelimit-{limit}-remaining"))
                .and_then(|r| r.parse::<u64>().ok())
                == Some(0);
            if spent {
                out.exhausted_for = Some(out.exhausted_for.map_or(wait, |e| e.max(wait)));
            }
        }
        out
    }

    /// The wait a 429 without `Retry-After` implies: until the spent limit resets, else until
    /// the soonest reset.
    fn wait_hint(&self) -> Option<Duration> {
        self.exhausted_for.or(self.soonest_reset)
    }
}

fn block_type(block: &serde_json::Value) -> Option<&str> {
    block.get("type").and_then(|t| t.as_str())
}

/// A Messages API response as servers send it: every field optional, content blocks read one
/// by one so an unknown block type costs nothing.
#[derive(Debug, Deserialize)]
struct LenientMessage {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    content: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    stop_reason: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<LenientUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct LenientUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl LenientMessage {
    /// The answer: with the extraction tool, the `tool_use` block's input as JSON (the text
    /// blocks when the model answered without the tool); otherwise the text blocks joined.
    fn into_completion(self, tool: bool) -> Result<Completion, BackendError> {
        if self.kind.as_deref() == Some("error")
            || self.error.as_ref().is_some_and(|e| !e.is_null())
        {
            let body = serde_json::json!({ "error": self.error }).to_string();
            return Err(BackendError::new(ErrorKind::ApiError, error_message(&body)));
        }
        let blocks = self.content.ok_or_else(|| {
            BackendError::new(ErrorKind::MalformedResponse, "response has no content")
        })?;
        let text: String = blocks
            .iter()
            .filter(|b| block_type(b) == Some("text"))
            .filter_map(|b| b.get("text").and_then(|t| t.as_str()))
            .collect();
        let tool_uses = || blocks.iter().filter(|b| block_type(b) == Some("tool_use"));
        // The extraction tool's call, else the first call of any tool.
        let tool_input = tool_uses()
            .find(|b| b.get("name").and_then(|n| n.as_str()) == Some(TOOL_NAME))
            .or_else(|| tool_uses().next())
            .and_then(|b| b.get("input"));
        let text = match tool_input {
            Some(input) if tool => input.to_string(),
            _ => text,
        };
        let thoughts: Vec<String> = blocks
            .iter()
            .filter_map(|b| match block_type(b) {
                Some("thinking") => b.get("thinking").and_then(|t| t.as_str()).map(str::to_string),
                // Encrypted: only its presence is worth keeping.
                Some("redacted_thinking") => Some("[redacted thinking]".to_string()),
                _ => None,
            })
            .filter(|t| !t.trim().is_empty())
            .collect();
        let reasoning = (!thoughts.is_empty()).then(|| thoughts.join("\n\n"));
        let finish_reason = self.stop_reason.and_then(|s| match s {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        });
        let usage = self.usage.and_then(|u| {
            let (read, write) = (
                u.cache_read_input_tokens.unwrap_or(0),
                u.cache_creation_input_tokens.unwrap_or(0),
            );
            Some(Usage {
                // `input_tokens` counts only the input after the last cache breakpoint.
                input: u.input_tokens?.saturating_add(read).saturating_add(write),
                output: u.output_tokens?,
                cached_input: read,
                cache_write: write,
                reasoning: 0,
            })
        });
        Ok(Completion { text, usage, finish_reason, reasoning })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::ChatMessage;

    fn spec(structured_output: StructuredOutput) -> BackendSpec {
        let suite = crate::suite::load_str(
            std::path::Path::new("a.yaml"),
            r#"schema_version: 1
name: a
task: { kind: classification, labels: [yes, no], instructions: "Answer.", input: "{{ text }}" }
data: { test: [{ id: a, text: t, label: "yes" }] }
backends: [{ id: c, provider: anthropic, model: claude-haiku-4-5, temperature: 0.5 }]
"#,
        )
        .unwrap();
        BackendSpec { structured_output, ..suite.backends[0].clone() }
    }

    fn backend(
        structured_output: StructuredOutput,
        schema: Option<serde_json::Value>,
    ) -> AnthropicBackend {
        let http = super::super::OpenAiBackend::http_client().unwrap();
        AnthropicBackend::new(&spec(structured_output), Some(" sk-ant-test\n"), http, schema)
    }

    fn parse(body: &str, tool: bool) -> Result<Completion, BackendError> {
        serde_json::from_str::<LenientMessage>(body).unwrap().into_completion(tool)
    }

    #[test]
    fn the_body_has_a_top_level_system_prompt_alternating_turns_and_max_tokens() {
        let b = backend(StructuredOutput::Off, None);
        let messages = [
            ChatMessage::system("Classify."),
            ChatMessage::system("Answer with the label only."),
            ChatMessage::user("Q: a"),
            ChatMessage::assistant("yes"),
            ChatMessage::user("Q: b"),
            ChatMessage::user("Q: c"),
        ];
        let body = b.body(&messages).unwrap();
        assert_eq!(
            body.get(),
            r#"{"model":"claude-haiku-4-5","max_tokens":4096,"system":"Classify.\n\nAnswer with the label only.","messages":[{"role":"user","content":"Q: a"},{"role":"assistant","content":"yes"},{"role":"user","content":"Q: b\n\nQ: c"}],"temperature":0.5}"#
        );
        // No system message: no `system` key at all.
        let body = b.body(&[ChatMessage::user("Q")]).unwrap();
        assert!(!body.get().contains("system"), "{}", body.get());
        assert_eq!(b.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(b.structured_output_used(), None);
        // The key is trimmed and never printed.
        let key = b.api_key.as_ref().unwrap();
        assert_eq!(key.to_str().unwrap(), "sk-ant-test");
        assert!(key.is_sensitive() && !format!("{key:?}").contains("sk-ant"));
    }

    #[test]
    fn structured_output_is_a_forced_tool_call_unless_off() {
        let schema = serde_json::json!({ "type": "object", "properties": { "total": { "type": "number" } } });
        let b = backend(StructuredOutput::JsonSchema, Some(schema.clone()));
        let body: serde_json::Value =
            serde_json::from_str(b.body(&[ChatMessage::user("R")]).unwrap().get()).unwrap();
        assert_eq!(body["tools"][0]["name"], "extraction");
        assert_eq!(body["tools"][0]["input_schema"], schema);
        assert_eq!(
            body["tool_choice"],
            serde_json::json!({ "type": "tool", "name": "extraction" })
        );
        assert_eq!(b.structured_output_used(), Some("tool"));
        let off = backend(StructuredOutput::Off, Some(schema));
        assert!(!off.body(&[ChatMessage::user("R")]).unwrap().get().contains("tools"));
    }

    #[test]
    fn text_blocks_are_the_answer_and_thinking_is_kept_apart() {
        let reply = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"thinking","thinking":"An invoice: billing.","signature":"sig"},{"type":"redacted_thinking","data":"xyz"},{"type":"text","text":"bill"},{"type":"text","text":"ing"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":30}}"#;
        let c = parse(reply, false).unwrap();
        assert_eq!(c.text, "billing");
        assert_eq!(c.reasoning.as_deref(), Some("An invoice: billing.\n\n[redacted thinking]"));
        assert_eq!(c.finish_reason.as_deref(), Some("end_turn"));
        // Thinking alone is no answer.
        let only = r#"{"type":"message","content":[{"type":"thinking","thinking":"hmm"}],"stop_reason":"max_tokens"}"#;
        let c = parse(only, false).unwrap();
        assert_eq!((c.text.as_str(), c.finish_reason.as_deref()), ("", Some("max_tokens")));
    }

    #[test]
    fn the_tool_input_is_the_answer_of_a_structured_request() {
        let reply = r#"{"type":"message","content":[{"type":"tool_use","id":"toolu_1","name":"extraction","input":{"company":"ACME","total":9.9}}],"stop_reason":"tool_use","usage":{"input_tokens":400,"output_tokens":40}}"#;
        let c = parse(reply, true).unwrap();
        assert_eq!(c.text, r#"{"company":"ACME","total":9.9}"#);
        assert_eq!(c.finish_reason.as_deref(), Some("tool_use"));
        // A model that answered in text anyway: its text is parsed like any reply.
        let text = r#"{"type":"message","content":[{"type":"text","text":"{\"total\": 1}"}]}"#;
        assert_eq!(parse(text, true).unwrap().text, r#"{"total": 1}"#);
    }

    #[test]
    fn usage_counts_cache_reads_and_writes_as_input() {
        let reply = r#"{"type":"message","content":[{"type":"text","text":"yes"}],"usage":{"input_tokens":50,"cache_creation_input_tokens":1000,"cache_read_input_tokens":2000,"output_tokens":3,"service_tier":"standard"}}"#;
        let usage = parse(reply, false).unwrap().usage.unwrap();
        assert_eq!(
            usage,
            Usage { input: 3050, output: 3, cached_input: 2000, cache_write: 1000, reasoning: 0 }
        );
        let nulls = r#"{"type":"message","content":[],"usage":{"input_tokens":5,"output_tokens":1,"cache_creation_input_tokens":null,"cache_read_input_tokens":null}}"#;
        assert_eq!(
            parse(nulls, false).unwrap().usage,
            Some(Usage { input: 5, output: 1, ..Usage::default() })
        );
        let none = r#"{"type":"message","content":[]}"#;
        assert_eq!(parse(none, false).unwrap().usage, None);
    }

    #[test]
    fn error_objects_and_bodies_without_content_are_failures() {
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = parse(overloaded, false).unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::ApiError, "Overloaded"));
        let e = parse(r#"{"id":"msg_1","type":"message"}"#, false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedResponse);
    }

    #[test]
    fn rate_limit_headers_say_how_long_a_spent_limit_lasts() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |secs: u64| crate::time::rfc3339(now + Duration::from_secs(secs));
        let headers = |pairs: &[(&str, String)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.insert(
                    reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            h
        };
        let plenty = headers(&[
            ("anthropic-ratelimit-requests-remaining", "49".into()),
            ("anthropic-ratelimit-requests-reset", at(2)),
            ("anthropic-ratelimit-tokens-remaining", "10000".into()),
            ("anthropic-ratelimit-tokens-reset", at(5)),
        ]);
        let read = RateLimitHeaders::read(&plenty, now);
        assert_eq!(read.exhausted_for, None);
        assert_eq!(read.wait_hint(), Some(Duration::from_secs(2)), "the soonest reset");

        let spent = headers(&[
            ("anthropic-ratelimit-requests-remaining", "3".into()),
            ("anthropic-ratelimit-requests-reset", at(1)),
            ("anthropic-ratelimit-input-tokens-remaining", "0".into()),
            ("anthropic-ratelimit-input-tokens-reset", at(7)),
            ("anthropic-ratelimit-output-tokens-remaining", "0".into()),
            ("anthropic-ratelimit-output-tokens-reset", at(4)),
        ]);
        let read = RateLimitHeaders::read(&spent, now);
        assert_eq!(read.exhausted_for, Some(Duration::from_secs(7)), "the latest spent reset");
        assert_eq!(read.wait_hint(), Some(Duration::from_secs(7)));

        // A reset already past, or one that does not parse, pauses nothing.
        let past = headers(&[
            ("anthropic-ratelimit-tokens-remaining", "0".into()),
            (
                "anthropic-ratelimit-tokens-reset",
                crate::time::rfc3339(now - Duration::from_secs(3)),
            ),
            ("anthropic-ratelimit-requests-remaining", "0".into()),
            ("anthropic-ratelimit-requests-reset", "soon".into()),
        ]);
        assert_eq!(RateLimitHeaders::read(&past, now).exhausted_for, Some(Duration::ZERO));
        assert_eq!(RateLimitHeaders::read(&HeaderMap::new(), now), RateLimitHeaders::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_request_back_until_it_ends() {
        let b = backend(StructuredOutput::Off, None);
        let started = tokio::time::Instant::now();
        b.wait_for_rate_limit().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        b.pause_for(Duration::from_secs(3));
        b.pause_for(Duration::from_secs(1)); // a shorter pause does not cut a longer one
        b.wait_for_rate_limit().await;
        assert!(started.elapsed() >= Duration::from_secs(3), "{:?}", started.elapsed());
        b.pause_for(Duration::from_secs(3600));
        let before = tokio::time::Instant::now();
        b.wait_for_rate_limit().await;
        assert!(before.elapsed() <= MAX_PAUSE + Duration::from_millis(10), "capped");
    }

    /// Mangled response bodies: parsed or rejected, never a panic.
    #[test]
    fn mangled_bodies_never_panic() {
        use rand::{Rng, SeedableRng};
        let good = r#"{"type":"message","content":[{"type":"thinking","thinking":"t"},{"type":"text","text":"billing"},{"type":"tool_use","name":"extraction","input":{"a":1}}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":2,"cache_read_input_tokens":4,"cache_creation_input_tokens":1}}"#;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let alphabet = b"{}[]:,\"0123456789nulltruefalse -.eE\\";
        for _ in 0..5000 {
            let mut body = good.as_bytes().to_vec();
            for _ in 0..rng.random_range(1..5) {
                let at = rng.random_range(0..body.len());
                if rng.random_bool(0.5) {
                    body.remove(at);
                } else {
                    body.insert(at, alphabet[rng.random_range(0..alphabet.len())]);
                }
            }
            if let Ok(message) = serde_json::from_slice::<LenientMessage>(&body) {
                let _ = message.into_completion(rng.random_bool(0.5));
            }
        }
    }
}
