//! Any OpenAI-compatible chat-completions server: OpenAI, Azure's OpenAI-compatible endpoint,
//! vLLM, Ollama, llama.cpp, TGI.
//!
//! Requests are built with async-openai's types and sent with `create_byot`, but the reply is
//! parsed into [`LenientResponse`]: real servers omit `id`, `object` or `usage`, send
//! `finish_reason` values outside OpenAI's list and other error-body shapes, and none of that may
//! cost an answer. The client is built over our own HTTP service, which removes async-openai's
//! retry layer (the runner owns retries) and keeps the status, `Retry-After` and body of every
//! failed response.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequest, ResponseFormat, ResponseFormatJsonSchema,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::wire::{error_message, retry_after, transport_error};
use super::{BackendError, Completion, ErrorKind, Usage};
use crate::prompt::{ChatMessage, Role};
use crate::suite::{BackendSpec, StructuredOutput};
use crate::text::excerpt;

pub struct OpenAiBackend {
    client: async_openai::Client<OpenAIConfig>,
    model: String,
    temperature: f32,
    max_tokens: Option<u32>,
    timeout: Duration,
    /// The server address as configured, for cache keys.
    base_url: String,
    /// The JSON schema replies must follow (structured output), for extraction tasks.
    schema: Option<serde_json::Value>,
    /// `structured_output: auto`: the form falls back when the server refuses it.
    negotiate: bool,
    /// Tags of a leading reasoning block taken off replies.
    reasoning_tags: Vec<String>,
    /// The form requests carry now: [`JSON_SCHEMA`], [`JSON_OBJECT`] or [`OFF`].
    form: AtomicU8,
    /// A request with the current form was answered: it is kept, whatever fails later.
    form_confirmed: AtomicBool,
}

/// The forms of structured output, in the order `auto` tries them.
const JSON_SCHEMA: u8 = 0;
const JSON_OBJECT: u8 = 1;
const OFF: u8 = 2;

/// Whether `error` is the server refusing the request's `response_format` itself: a client
/// error other than a key, address or rate problem, or a server error whose message names the
/// format (llama-cpp-python 0.3.36 answers `json_schema` with a 500 "Input should be 'text' or
/// 'json_object'").
pub fn refuses_format(error: &BackendError) -> bool {
    let names_format = || {
        let m = error.message.to_ascii_lowercase();
        ["response_format", "json_schema", "json_object"].iter().any(|k| m.contains(k))
    };
    match (error.kind, error.status) {
        (ErrorKind::Http, Some(401 | 403 | 404 | 408 | 409 | 429)) => false,
        (ErrorKind::Http, Some(400..=499)) => true,
        (ErrorKind::Http | ErrorKind::ApiError, _) => names_format(),
        _ => false,
    }
}

impl OpenAiBackend {
    /// The provider name in cache keys and cache rows.
    pub const PROVIDER: &'static str = "openai";

    /// `api_key` is read from the environment by the caller; it goes only into the
    /// `Authorization` header.
    pub fn new(
        spec: &BackendSpec,
        api_key: Option<&str>,
        http: reqwest::Client,
        schema: Option<serde_json::Value>,
    ) -> Self {
        // Set base and key explicitly: the default config reads OPENAI_BASE_URL and
        // OPENAI_API_KEY from the environment, which would send requests (and a key) elsewhere.
        // Trim the key: a trailing newline makes the header builder panic.
        let config = OpenAIConfig::new()
            .with_api_base(spec.base_url.clone().unwrap_or_default())
            .with_api_key(api_key.map(str::trim).unwrap_or_default())
            .with_org_id("")
            .with_project_id("");
        let client = async_openai::Client::with_config(config)
            .with_http_service(StatusKeepingService { http });
        OpenAiBackend {
            client,
            model: spec.model.clone().unwrap_or_default(),
            temperature: spec.temperature as f32,
            max_tokens: spec.max_tokens,
            timeout: spec.timeout,
            base_url: spec.base_url.clone().unwrap_or_default(),
            negotiate: spec.structured_output == StructuredOutput::Auto && schema.is_some(),
            reasoning_tags: spec.reasoning_tags.clone(),
            form: AtomicU8::new(match spec.structured_output {
                StructuredOutput::JsonObject => JSON_OBJECT,
                StructuredOutput::Off => OFF,
                StructuredOutput::JsonSchema | StructuredOutput::Auto => JSON_SCHEMA,
            }),
            form_confirmed: AtomicBool::new(false),
            schema,
        }
    }

    /// The structured output requests carry now (`json_schema`, `json_object` or `off`);
    /// `None` when the backend asks for none.
    pub fn structured_output_used(&self) -> Option<&'static str> {
        self.schema.as_ref()?;
        Some(match self.form.load(Ordering::SeqCst) {
            JSON_SCHEMA => "json_schema",
            JSON_OBJECT => "json_object",
            _ => "off",
        })
    }

    /// Whether requests negotiate their structured output (`structured_output: auto`).
    pub fn negotiates(&self) -> bool {
        self.negotiate
    }

    /// One attempt under `structured_output: auto`: a server that refuses the form is asked
    /// again at once with the next one (`json_schema` → `json_object` → none), and the form
    /// that works is kept for the backend's other requests.
    pub async fn send_negotiating(
        &self,
        messages: &[ChatMessage],
    ) -> Result<Completion, BackendError> {
        loop {
            let form = self.form.load(Ordering::SeqCst);
            let body = self.body_with(messages, form)?;
            match self.send(&body).await {
                // A refusal of a form other requests have already moved past (they were in
                // flight together) is resent in the current form; the current form is given up
                // only while no request has been answered in it.
                Err(e)
                    if form < OFF
                        && refuses_format(&e)
                        && (self.form.load(Ordering::SeqCst) != form
                            || !self.form_confirmed.load(Ordering::SeqCst)) =>
                {
                    let _ = self.form.compare_exchange(
                        form,
                        form + 1,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
                Ok(c) => {
                    if self.form.load(Ordering::SeqCst) == form {
                        self.form_confirmed.store(true, Ordering::SeqCst);
                    }
                    return Ok(c);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The HTTP client every OpenAI-compatible backend of a run shares (one connection pool).
    pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
        // rustls needs a process-wide crypto provider; ring builds far faster than aws-lc.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
    }

    /// Whether `key` can be sent in the `Authorization` header; one that cannot (a line break or
    /// control character inside it) would fail every request.
    pub fn accepts_key(key: &str) -> bool {
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.trim())).is_ok()
    }

    /// The request body for `messages`, serialised once: the same bytes are hashed for the cache
    /// key and sent, on every attempt.
    pub fn body(&self, messages: &[ChatMessage]) -> Result<Box<RawValue>, BackendError> {
        self.body_with(messages, self.form.load(Ordering::SeqCst))
    }

    fn body_with(&self, messages: &[ChatMessage], form: u8) -> Result<Box<RawValue>, BackendError> {
        let failed = |e: serde_json::Error| {
            BackendError::new(ErrorKind::Internal, format!("cannot serialise the request: {e}"))
        };
        let request = self.request(messages, form);
        let json = match (form, &self.schema) {
            // async-openai's json_object takes no schema: add it beside the type.
            (JSON_OBJECT, Some(schema)) => {
                let mut value = serde_json::to_value(&request).map_err(failed)?;
                value["response_format"] =
                    serde_json::json!({ "type": "json_object", "schema": schema });
                serde_json::to_string(&value)
            }
            _ => serde_json::to_string(&request),
        }
        .map_err(failed)?;
        RawValue::from_string(json)
            .map_err(|e| BackendError::new(ErrorKind::Internal, e.to_string()))
    }

    fn request(&self, messages: &[ChatMessage], form: u8) -> CreateChatCompletionRequest {
        // `max_tokens` rather than `max_completion_tokens`: vLLM, Ollama and llama.cpp read it.
        #[allow(deprecated)]
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: messages.iter().map(to_openai_message).collect(),
            temperature: Some(self.temperature),
            max_tokens: self.max_tokens,
            // Strict: the reply must have every key and no other (optional fields are nullable).
            response_format: self.schema.as_ref().filter(|_| form == JSON_SCHEMA).map(|schema| {
                ResponseFormat::JsonSchema {
                    json_schema: ResponseFormatJsonSchema {
                        description: None,
                        name: "extraction".into(),
                        schema: schema.clone(),
                        strict: Some(true),
                    },
                }
            }),
            ..Default::default()
        }
    }

    /// The response-cache key of a request: provider, server, model and the exact body bytes
    /// (never the key). Repeated samples (`epoch` > 0) of one prompt get keys of their own.
    pub fn cache_key(&self, body: &RawValue, epoch: u32) -> String {
        super::cache::sample_key(Self::PROVIDER, &self.base_url, &self.model, body.get(), epoch)
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub async fn send(&self, body: &RawValue) -> Result<Completion, BackendError> {
        let chat = self.client.chat();
        let call = chat.create_byot::<_, LenientResponse>(body);
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(BackendError::new(
                ErrorKind::Timeout,
                format!("no complete response within {:?}", self.timeout),
            )),
            Ok(Err(e)) => Err(classify(e)),
            Ok(Ok(response)) => self.completion(response),
        }
    }

    /// A chat completion's body as the server wrote it, parsed as a live reply is: the batch
    /// API hands back the same body a live request gets, so both read it the same way.
    pub fn parse_completion(&self, body: &str) -> Result<Completion, BackendError> {
        let response: LenientResponse = serde_json::from_str(body).map_err(|e| {
            BackendError::new(
                ErrorKind::MalformedResponse,
                format!("response is not a chat completion ({e}): {}", excerpt(body, 200)),
            )
        })?;
        self.completion(response)
    }

    /// The answer in a parsed response, with a leading reasoning block taken off.
    fn completion(&self, response: LenientResponse) -> Result<Completion, BackendError> {
        response.into_completion().map(|mut c| {
            if let Some((reasoning, answer)) = split_reasoning(&c.text, &self.reasoning_tags) {
                c.text = answer;
                c.reasoning = Some(match c.reasoning.take() {
                    Some(field) => format!("{field}\n\n{reasoning}"),
                    None => reasoning,
                });
            }
            c
        })
    }
}

/// A reply's leading reasoning block and the answer after it: `<think>…</think>answer` (any of
/// `tags`), or `…</think>answer` when the chat template already opened the block. A block that
/// never closes (the reply was cut inside it) leaves no answer. `None` when there is no block.
pub fn split_reasoning(text: &str, tags: &[String]) -> Option<(String, String)> {
    let trimmed = text.trim_start();
    for tag in tags {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let (body, opened) = match trimmed.strip_prefix(&open) {
            Some(rest) => (rest, true),
            None => (trimmed, false),
        };
        match body.find(&close) {
            // A block opened later in the reply is not a leading one.
            Some(end) if !opened && body[..end].contains(&open) => {}
            Some(end) => {
                let answer = body[end + close.len()..].trim_start().to_string();
                return Some((body[..end].trim().to_string(), answer));
            }
            None if opened => return Some((body.trim().to_string(), String::new())),
            None => {}
        }
    }
    None
}

fn to_openai_message(m: &ChatMessage) -> ChatCompletionRequestMessage {
    match m.role {
        Role::System => {
            ChatCompletionRequestSystemMessage { content: m.content.clone().into(), name: None }
                .into()
        }
        Role::User => {
            ChatCompletionRequestUserMessage { content: m.content.clone().into(), name: None }
                .into()
        }
        Role::Assistant => ChatCompletionRequestAssistantMessage {
            content: Some(m.content.clone().into()),
            ..Default::default()
        }
        .into(),
    }
}

/// The reqwest transport, minus async-openai's retry layer, turning a non-success status into a
/// [`HttpFailure`] that keeps what the retry policy needs to decide on another attempt.
#[derive(Clone)]
struct StatusKeepingService {
    http: reqwest::Client,
}

#[derive(Debug)]
struct HttpFailure {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.body)
    }
}

impl std::error::Error for HttpFailure {}

impl tower::Service<HttpRequestFactory> for StatusKeepingService {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<reqwest::Response, OpenAIError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = http.execute(request).await.map_err(OpenAIError::Reqwest)?;
            if response.status().is_success() {
                return Ok(response);
            }
            let status = response.status().as_u16();
            let retry_after = retry_after(response.headers());
            let body = response.text().await.unwrap_or_default();
            Err(OpenAIError::Boxed(Box::new(HttpFailure { status, retry_after, body })))
        })
    }
}

fn classify(error: OpenAIError) -> BackendError {
    match error {
        OpenAIError::Boxed(inner) => match inner.downcast::<HttpFailure>() {
            Ok(failure) => BackendError {
                kind: ErrorKind::Http,
                status: Some(failure.status),
                message: error_message(&failure.body),
                retry_after: failure.retry_after,
            },
            Err(other) => BackendError::new(ErrorKind::Internal, other.to_string()),
        },
        OpenAIError::Reqwest(e) => transport_error(&e),
        OpenAIError::JSONDeserialize(e, content) => BackendError::new(
            ErrorKind::MalformedResponse,
            format!("response is not a chat completion ({e}): {}", excerpt(&content, 200)),
        ),
        other => BackendError::new(ErrorKind::Internal, other.to_string()),
    }
}

/// A chat completion as servers really send it: every field optional.
#[derive(Debug, Deserialize)]
struct LenientResponse {
    #[serde(default)]
    choices: Option<Vec<LenientChoice>>,
    #[serde(default)]
    usage: Option<LenientUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    message: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct LenientChoice {
    #[serde(default)]
    message: Option<LenientMessage>,
    /// Legacy completions put the text here.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct LenientMessage {
    #[serde(default)]
    content: Option<serde_json::Value>,
    #[serde(default)]
    refusal: Option<String>,
    /// vLLM, DeepSeek and others put a reasoning model's thinking here: never the answer.
    #[serde(default)]
    reasoning_content: Option<serde_json::Value>,
    #[serde(default)]
    reasoning: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct LenientUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Deserialize)]
struct CompletionTokensDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl LenientResponse {
    fn into_completion(self) -> Result<Completion, BackendError> {
        if let Some(error) = self.error.filter(|e| !e.is_null()) {
            let body = serde_json::json!({ "error": error }).to_string();
            return Err(BackendError::new(ErrorKind::ApiError, error_message(&body)));
        }
        if self.object.as_deref() == Some("error") {
            let message = self
                .message
                .map(|m| m.as_str().map(str::to_string).unwrap_or_else(|| m.to_string()));
            return Err(BackendError::new(
                ErrorKind::ApiError,
                message.unwrap_or_else(|| "error object".into()),
            ));
        }
        let choice = self.choices.and_then(|c| c.into_iter().next()).ok_or_else(|| {
            BackendError::new(ErrorKind::MalformedResponse, "response has no choices")
        })?;
        let reasoning = choice.message.as_ref().and_then(|m| {
            [&m.reasoning_content, &m.reasoning]
                .into_iter()
                .flatten()
                .find_map(|r| r.as_str().filter(|r| !r.trim().is_empty()).map(str::to_string))
        });
        let text = match choice.message {
            Some(message) => match message.content {
                Some(serde_json::Value::String(s)) => s,
                // Content given as parts: join their text.
                Some(serde_json::Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                    .collect::<Vec<_>>()
                    .join(""),
                // A refusal or an empty message is an answer (an invalid one), not a failure.
                _ => message.refusal.unwrap_or_default(),
            },
            None => choice.text.unwrap_or_default(),
        };
        let finish_reason = choice.finish_reason.and_then(|f| match f {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        });
        let usage = self.usage.and_then(|u| match (u.prompt_tokens, u.completion_tokens) {
            (Some(input), Some(output)) => {
                let cached_input =
                    u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0).min(input);
                let reasoning = u
                    .completion_tokens_details
                    .and_then(|d| d.reasoning_tokens)
                    .unwrap_or(0)
                    .min(output);
                Some(Usage { input, output, cached_input, reasoning, cache_write: 0 })
            }
            _ => None,
        });
        Ok(Completion { text, usage, finish_reason, reasoning })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Completion, BackendError> {
        serde_json::from_str::<LenientResponse>(body).unwrap().into_completion()
    }

    #[test]
    fn lenient_parsing_keeps_answers_from_every_server_shape() {
        let vllm = r#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"billing","reasoning_content":null,"tool_calls":[]},"logprobs":null,"finish_reason":"abort","stop_reason":null}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"prompt_tokens_details":null}}"#;
        let c = parse(vllm).unwrap();
        assert_eq!((c.text.as_str(), c.finish_reason.as_deref()), ("billing", Some("abort")));
        assert_eq!(
            c.usage,
            Some(Usage { input: 10, output: 2, cached_input: 0, reasoning: 0, cache_write: 0 })
        );

        let llama =
            r#"{"choices":[{"message":{"content":"other"},"finish_reason":""}],"timings":{}}"#;
        let c = parse(llama).unwrap();
        assert_eq!((c.text.as_str(), c.usage), ("other", None));

        let parts = r#"{"choices":[{"message":{"content":[{"type":"text","text":"bil"},{"type":"text","text":"ling"}]},"finish_reason":"eos_token"}]}"#;
        assert_eq!(parse(parts).unwrap().text, "billing");
    }

    #[test]
    fn reasoning_is_kept_apart_from_the_answer() {
        let tags: Vec<String> = ["think", "thinking", "reasoning"].map(String::from).to_vec();
        let split = |t: &str| split_reasoning(t, &tags);
        assert_eq!(
            split("<think>\nhmm, billing?\n</think>\n\nbilling"),
            Some(("hmm, billing?".into(), "billing".into()))
        );
        assert_eq!(split("  <reasoning>x</reasoning>other"), Some(("x".into(), "other".into())));
        assert_eq!(split("so…</think> billing"), Some(("so…".into(), "billing".into())));
        assert_eq!(split("<think>cut off"), Some(("cut off".into(), String::new())));
        assert_eq!(split("billing"), None);
        assert_eq!(split("billing <think>x</think>").map(|(_, a)| a), None, "only a leading block");

        let deepseek = r#"{"choices":[{"message":{"content":"billing","reasoning_content":"The ticket mentions an invoice."},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":40,"completion_tokens_details":{"reasoning_tokens":38}}}"#;
        let c = parse(deepseek).unwrap();
        assert_eq!(c.text, "billing");
        assert_eq!(c.reasoning.as_deref(), Some("The ticket mentions an invoice."));
        assert_eq!(c.usage.unwrap().reasoning, 38);
        // Reasoning alone is no answer: an empty reply, not the reasoning.
        let only = r#"{"choices":[{"message":{"content":null,"reasoning":"thinking…"}}]}"#;
        assert_eq!(parse(only).unwrap().text, "");
    }

    #[test]
    fn error_bodies_in_every_shape_keep_their_message() {
        assert_eq!(
            error_message(r#"{"error":{"message":"Rate limit","type":"requests","code":null}}"#),
            "Rate limit"
        );
        assert_eq!(
            error_message(
                r#"{"object":"error","message":"too long","type":"BadRequestError","code":400}"#
            ),
            "too long"
        );
        assert_eq!(error_message(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_message("upstream connect error"), "upstream connect error");
        assert_eq!(parse(r#"{"error":"model not found"}"#).unwrap_err().kind, ErrorKind::ApiError);
        assert_eq!(
            parse(r#"{"object":"error","message":"bad","code":400}"#).unwrap_err().message,
            "bad"
        );
        assert_eq!(parse(r#"{"choices":[]}"#).unwrap_err().kind, ErrorKind::MalformedResponse);
    }

    /// Mangled response bodies: parsed or rejected, never a panic.
    #[test]
    fn mangled_bodies_never_panic() {
        use rand::{Rng, SeedableRng};
        let good = r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"billing"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
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
            if let Ok(response) = serde_json::from_slice::<LenientResponse>(&body) {
                let _ = response.into_completion();
            }
            let _ = error_message(&String::from_utf8_lossy(&body));
        }
    }
}
