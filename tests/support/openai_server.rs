//! In-process OpenAI-compatible HTTP server for integration tests.
//!
//! Binds `127.0.0.1:0` only and answers `POST /v1/chat/completions` with whatever a test's
//! handler returns: a chat completion in the wire shape of OpenAI, vLLM, Ollama or llama.cpp,
//! an error body of any of those servers, raw bytes, a delayed reply, a reply held until enough
//! requests are in flight at once, a reset connection or a truncated body. Every other method or
//! path gets a 404 with an OpenAI-shaped error. It counts requests in flight and the most there
//! have been at once, so tests check concurrency by counting rather than by timing.
//!
//! Self-contained: uses only tokio, hyper, hyper-util, http-body-util, serde_json and futures
//! (`hyper::body::Bytes` rather than the `bytes` crate), so it can be copied into `tests/support/`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------------
// Recorded requests
// ---------------------------------------------------------------------------------------------

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Header names are lowercase; repeated headers appear once per value, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body parsed as JSON, `None` when it is not valid JSON.
    pub json: Option<Value>,
}

impl RecordedRequest {
    /// First value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Content of the last message with role "user": string content, or the text parts of an
    /// array content concatenated. `None` without such a message.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages()
            .into_iter()
            .rev()
            .find(|(role, _)| role == "user")
            .map(|(_, content)| content)
    }

    /// `(role, content)` of every entry of the body's `messages` array, in order. Content is
    /// the string content, the concatenated `text` of array parts, or "" (null/missing/other).
    pub fn messages(&self) -> Vec<(String, String)> {
        let Some(msgs) =
            self.json.as_ref().and_then(|j| j.get("messages")).and_then(Value::as_array)
        else {
            return Vec::new();
        };
        msgs.iter()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("").to_owned();
                (role, content_text(m.get("content")))
            })
            .collect()
    }

    /// The request's `model`, if any.
    pub fn model(&self) -> Option<&str> {
        self.json.as_ref()?.get("model")?.as_str()
    }

    /// The `type` of the request's `response_format`, if it has one.
    pub fn response_format_type(&self) -> Option<&str> {
        self.json.as_ref()?.get("response_format")?.get("type")?.as_str()
    }
}

/// llama-cpp-python 0.3.36's server on `response_format`: a request asking for `json_schema` gets
/// its 500 (a validation error that names the field and the types it takes); `None` for any
/// other request (`json_object`, with or without a schema, or none), which it answers.
pub fn llama_cpp_python_refusal(req: &RecordedRequest) -> Option<Reply> {
    (req.response_format_type() == Some("json_schema")).then(|| {
        let message = "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}]";
        Reply::openai_error(500, message, "internal_server_error", None)
    })
}

fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    Value::String(s) => out.push_str(s),
                    Value::Object(o) => {
                        let is_text =
                            o.get("type").and_then(Value::as_str).is_none_or(|t| t == "text");
                        if let (true, Some(t)) = (is_text, o.get("text").and_then(Value::as_str)) {
                            out.push_str(t);
                        }
                    }
                    _ => {}
                }
            }
            out
        }
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// Which server's success shape a `Reply::Chat` is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireStyle {
    /// OpenAI: full shape, `refusal`, `logprobs`, `usage` with `total_tokens`,
    /// `system_fingerprint: "fp_test"`. `usage: None` omits the key.
    OpenAi,
    /// vLLM: OpenAI-like plus `stop_reason`, `reasoning_content`, `tool_calls: []`,
    /// `usage.prompt_tokens_details: null`. `usage: None` sends `"usage": null`.
    Vllm,
    /// Ollama's OpenAI-compatible endpoint: `id`/`object` present, no `system_fingerprint`,
    /// no `logprobs`. `usage: None` omits the key.
    Ollama,
    /// llama.cpp server: no `id`, no `object`, adds `timings`. `usage: None` omits the key.
    LlamaCpp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Put in `Reply::Chat::finish_reason` to send `"finish_reason": null`.
/// (`None` means "the style's default", which is `"stop"` for every style.)
pub const FINISH_REASON_NULL: &str = "<null>";

/// Prompt tokens reported by `Reply::chat`.
pub const DEFAULT_PROMPT_TOKENS: u64 = 10;

#[derive(Clone, Debug)]
pub enum Reply {
    /// A 200 chat.completion with this assistant content.
    Chat {
        content: String,
        usage: Option<Usage>,
        style: WireStyle,
        /// Overrides the style's default ("stop"); any string goes ("", "eos_token", "abort"),
        /// `FINISH_REASON_NULL` sends JSON null.
        finish_reason: Option<String>,
    },
    /// An error status with a body and extra headers (e.g. 429 + Retry-After; any status goes, so
    /// the Anthropic server sends its 200 messages this way). Content-Type is
    /// application/json unless `headers` sets one; Content-Length/Transfer-Encoding in
    /// `headers` are ignored (hyper computes them).
    Error { status: u16, body: String, headers: Vec<(String, String)> },
    /// Anything: status, content type, raw body bytes.
    Raw { status: u16, content_type: String, body: Vec<u8> },
    /// Wait, then reply (the request is recorded before the wait).
    Delay(Duration, Box<Reply>),
    /// Hold the reply until `n` requests have been in flight at once (this one included), then
    /// reply; a hold that lasts `HOLD_LIMIT` gives up, and so does every later hold, so a test
    /// whose client never gets there fails in seconds rather than hanging.
    HoldUntilInFlight(usize, Box<Reply>),
    /// Accept the request, then drop the TCP connection without any response (RST: SO_LINGER 0).
    ResetConnection,
    /// 200 + `content-type: application/json` + `content-length: body.len() + 100`; writes all
    /// of `body`, then closes the connection (FIN), so the client sees a body error.
    Truncated { body: Vec<u8> },
}

impl Reply {
    /// OpenAI-style completion, finish_reason "stop", usage fixed at
    /// `DEFAULT_PROMPT_TOKENS` prompt tokens and (whitespace-separated words, at least 1)
    /// completion tokens.
    pub fn chat(content: impl Into<String>) -> Reply {
        let content = content.into();
        let completion_tokens = content.split_whitespace().count().max(1) as u64;
        Reply::Chat {
            content,
            usage: Some(Usage { prompt_tokens: DEFAULT_PROMPT_TOKENS, completion_tokens }),
            style: WireStyle::OpenAi,
            finish_reason: None,
        }
    }

    /// `Reply::chat` in another wire style.
    pub fn chat_styled(content: impl Into<String>, style: WireStyle) -> Reply {
        Reply::chat(content).with_style(style)
    }

    /// Builder: set the wire style of a `Chat` (no-op on other variants, looks through `Delay`).
    pub fn with_style(mut self, new: WireStyle) -> Reply {
        if let Reply::Chat { style, .. } = self.chat_mut() {
            *style = new;
        }
        self
    }

    /// Builder: set the usage of a `Chat` (`None` omits it / sends null per style).
    pub fn with_usage(mut self, new: Option<Usage>) -> Reply {
        if let Reply::Chat { usage, .. } = self.chat_mut() {
            *usage = new;
        }
        self
    }

    /// Builder: set the finish_reason of a `Chat`; `None` sends JSON null.
    pub fn with_finish_reason(mut self, new: Option<&str>) -> Reply {
        if let Reply::Chat { finish_reason, .. } = self.chat_mut() {
            *finish_reason = Some(new.unwrap_or(FINISH_REASON_NULL).to_owned());
        }
        self
    }

    /// Builder: wrap in `Delay`.
    pub fn delayed(self, d: Duration) -> Reply {
        Reply::Delay(d, Box::new(self))
    }

    /// Builder: wrap in `HoldUntilInFlight`.
    pub fn held_until_in_flight(self, n: usize) -> Reply {
        Reply::HoldUntilInFlight(n, Box::new(self))
    }

    fn chat_mut(&mut self) -> &mut Reply {
        match self {
            Reply::Delay(_, inner) | Reply::HoldUntilInFlight(_, inner) => inner.chat_mut(),
            other => other,
        }
    }

    /// `{"error":{"message","type","param":null,"code"}}` with this status.
    pub fn openai_error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Reply {
        let body = json!({
            "error": { "message": message, "type": kind, "param": null, "code": code }
        });
        Reply::Error { status, body: body.to_string(), headers: Vec::new() }
    }

    /// 429 with `Retry-After: retry_after` and OpenAI's rate-limit error body.
    pub fn rate_limited(retry_after: &str) -> Reply {
        let body = json!({
            "error": {
                "message": "Rate limit reached for requests. Please try again later.",
                "type": "requests",
                "param": null,
                "code": "rate_limit_exceeded"
            }
        });
        Reply::Error {
            status: 429,
            body: body.to_string(),
            headers: vec![("retry-after".to_owned(), retry_after.to_owned())],
        }
    }

    /// vLLM's shape: `{"object":"error","message","type","param":null,"code":<status int>}`;
    /// type is BadRequestError / NotFoundError / InternalServerError by status.
    pub fn vllm_error(status: u16, message: &str) -> Reply {
        let kind = match status {
            404 => "NotFoundError",
            500..=599 => "InternalServerError",
            _ => "BadRequestError",
        };
        let body = json!({
            "object": "error", "message": message, "type": kind, "param": null, "code": status
        });
        Reply::Error { status, body: body.to_string(), headers: Vec::new() }
    }

    /// Ollama's shape: `{"error":"..."}`.
    pub fn ollama_error(status: u16, message: &str) -> Reply {
        Reply::Error { status, body: json!({ "error": message }).to_string(), headers: Vec::new() }
    }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Keep every request for `requests()` (default true). `request_count()` and the attempt
    /// counter work either way.
    pub record_requests: bool,
    /// The path whose POSTs the handler answers (default `/v1/chat/completions`; the Anthropic
    /// test server serves `/v1/messages` with this machinery).
    pub chat_path: &'static str,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { record_requests: true, chat_path: "/v1/chat/completions" }
    }
}

/// How long a `Reply::HoldUntilInFlight` waits at most: far longer than any test needs.
pub const HOLD_LIMIT: Duration = Duration::from_secs(10);

type Handler = dyn Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static;

struct Shared {
    handler: Box<Handler>,
    record: bool,
    chat_path: &'static str,
    requests: Mutex<Vec<RecordedRequest>>,
    count: AtomicUsize,
    attempts: Mutex<HashMap<Bytes, usize>>,
    /// Requests received whose response has not been produced yet (any path).
    in_flight: AtomicUsize,
    /// The most requests there have been in flight at once; held replies wait on it.
    max_in_flight: watch::Sender<usize>,
    /// Set when a hold reached `HOLD_LIMIT`: later holds give up at once.
    hold_expired: AtomicBool,
    /// Responses produced (resets and aborted connections are not responses).
    responses: AtomicUsize,
}

/// Counts a request in flight from its arrival until its response is produced or it is dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: Arc<Shared>) -> InFlight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.send_if_modified(|max| {
            let more = now > *max;
            if more {
                *max = now;
            }
            more
        });
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping it tells the accept loop and every connection to stop.
    shutdown: Option<watch::Sender<()>>,
    /// For `start_in_thread`: dropping it lets the server's own runtime thread end.
    thread_guard: Option<std::sync::mpsc::Sender<()>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TestServer {
    /// Bind 127.0.0.1:0 on the current tokio runtime and serve `POST /v1/chat/completions` (or
    /// `ServerOptions::chat_path`)
    /// with `handler` (anything else: 404, OpenAI-shaped). The handler gets the request and the
    /// 1-based count of chat requests so far with the same body.
    ///
    /// The server runs on the caller's runtime: a test that blocks its thread (e.g. runs the
    /// CLI with `std::process::Command`) must use `start_in_thread` instead.
    pub async fn start<F>(handler: F) -> TestServer
    where
        F: Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static,
    {
        Self::start_with(ServerOptions::default(), handler).await
    }

    pub async fn start_with<F>(options: ServerOptions, handler: F) -> TestServer
    where
        F: Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            record: options.record_requests,
            chat_path: options.chat_path,
            requests: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            attempts: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: watch::Sender::new(0),
            hold_expired: AtomicBool::new(false),
            responses: AtomicUsize::new(0),
        });
        let (tx, rx) = watch::channel(());
        tokio::spawn(accept_loop(listener, shared.clone(), rx));
        TestServer { addr, shared, shutdown: Some(tx), thread_guard: None }
    }

    /// Like `start`, but on a runtime of its own in a background thread: for synchronous
    /// tests and tests that block (subprocesses). Callable with or without a runtime.
    pub fn start_in_thread<F>(handler: F) -> TestServer
    where
        F: Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static,
    {
        Self::start_in_thread_with(ServerOptions::default(), handler)
    }

    pub fn start_in_thread_with<F>(options: ServerOptions, handler: F) -> TestServer
    where
        F: Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static,
    {
        let (server_tx, server_rx) = std::sync::mpsc::channel();
        let (guard_tx, guard_rx) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("openai-test-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("test server runtime");
                let server = rt.block_on(TestServer::start_with(options, handler));
                let _ = server_tx.send(server);
                // Wait until the TestServer (holding guard_tx) is dropped, then drop the
                // runtime, which ends every task of the server.
                let _ = guard_rx.recv();
                rt.shutdown_background();
            })
            .expect("spawn test server thread");
        let mut server = server_rx.recv().expect("test server thread failed to start");
        server.thread_guard = Some(guard_tx);
        server
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received (any path), in arrival order; empty if recording is off.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Number of requests received (any path), recorded or not.
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// The most requests that have been in flight at once (any path). A request is in flight at
    /// the server from its arrival until its response is produced: within the time the client
    /// has it in flight, so this never exceeds what the client had in flight.
    pub fn max_in_flight(&self) -> usize {
        *self.shared.max_in_flight.borrow()
    }

    /// Number of responses produced so far (any path; resets and aborted connections are not
    /// responses). A response counts before it is written, so one the client has received is
    /// counted.
    pub fn responses(&self) -> usize {
        self.shared.responses.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Closing the watch channel stops the accept loop (the listener is dropped) and asks
        // open connections to finish their in-flight request and close.
        self.shutdown.take();
        self.thread_guard.take();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, shared.clone(), shutdown.clone()));
                }
                // e.g. EMFILE: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    let reset = Arc::new(AtomicBool::new(false));
    let io = ConnIo { inner: TokioIo::new(stream), reset: reset.clone() };
    let service = service_fn(move |req| handle(shared.clone(), req, reset.clone()));
    let conn = http1::Builder::new().keep_alive(true).serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// Returned by the service to make hyper drop the connection without writing a response.
#[derive(Debug)]
struct AbortConnection;

impl std::fmt::Display for AbortConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("test server: connection aborted on purpose")
    }
}

impl std::error::Error for AbortConnection {}

type ResponseBody = Either<Full<Bytes>, UnsyncBoxBody<Bytes, std::io::Error>>;

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    reset: Arc<AtomicBool>,
) -> Result<Response<ResponseBody>, AbortConnection> {
    shared.count.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::enter(shared.clone());
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(AbortConnection),
    };
    let is_chat = parts.method == Method::POST && parts.uri.path() == shared.chat_path;
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
            })
            .collect(),
        json: serde_json::from_slice(&body).ok(),
        body: body.to_vec(),
    };

    let reply = if is_chat {
        let attempt = {
            let mut attempts = lock(&shared.attempts);
            let n = attempts.entry(body).or_insert(0);
            *n += 1;
            *n
        };
        let handler = &shared.handler;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&recorded, attempt)))
        {
            Ok(reply) => reply,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Reply::openai_error(
                    500,
                    &format!("test server handler panicked: {msg}"),
                    "server_error",
                    None,
                )
            }
        }
    } else {
        Reply::openai_error(
            404,
            &format!(
                "Unknown request URL: {} {}. Please check the URL for typos.",
                recorded.method, recorded.path
            ),
            "invalid_request_error",
            Some("unknown_url"),
        )
    };
    let model = recorded.model().unwrap_or("unknown").to_owned();
    if shared.record {
        lock(&shared.requests).push(recorded);
    }
    let response = render(reply, &model, &reset, &shared).await;
    if response.is_ok() {
        shared.responses.fetch_add(1, Ordering::SeqCst);
    }
    response
}

async fn render(
    mut reply: Reply,
    model: &str,
    reset: &AtomicBool,
    shared: &Shared,
) -> Result<Response<ResponseBody>, AbortConnection> {
    loop {
        match reply {
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::HoldUntilInFlight(n, inner) => {
                if !shared.hold_expired.load(Ordering::SeqCst) {
                    let mut max = shared.max_in_flight.subscribe();
                    let reached = tokio::time::timeout(HOLD_LIMIT, max.wait_for(|&m| m >= n));
                    if reached.await.is_err() {
                        shared.hold_expired.store(true, Ordering::SeqCst);
                    }
                }
                reply = *inner;
            }
            Reply::Chat { content, usage, style, finish_reason } => {
                let body = chat_body(&content, usage, style, finish_reason.as_deref(), model);
                return Ok(full(200, "application/json", body.to_string().into_bytes(), &[]));
            }
            Reply::Error { status, body, headers } => {
                return Ok(full(status, "application/json", body.into_bytes(), &headers));
            }
            Reply::Raw { status, content_type, body } => {
                return Ok(full(status, &content_type, body, &[]));
            }
            Reply::ResetConnection => {
                // ConnIo's Drop sets SO_LINGER 0, so closing sends RST rather than FIN.
                reset.store(true, Ordering::SeqCst);
                return Err(AbortConnection);
            }
            Reply::Truncated { body } => {
                let declared = body.len() + 100;
                let data = Bytes::from(body);
                let first = (!data.is_empty()).then(|| Ok(Frame::data(data)));
                // Pending for a moment after the data so hyper flushes it before the error
                // makes it close the connection.
                let fail = futures::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Err(std::io::Error::other("test server: truncated body"))
                });
                let stream = futures::StreamExt::chain(futures::stream::iter(first), fail);
                let mut resp =
                    Response::new(Either::Right(UnsyncBoxBody::new(StreamBody::new(stream))));
                *resp.status_mut() = StatusCode::OK;
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(declared));
                return Ok(resp);
            }
        }
    }
}

fn full(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> Response<ResponseBody> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    let mut custom_type = false;
    for (name, value) in headers {
        let (Ok(n), Ok(v)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
        else {
            continue;
        };
        // A Content-Length that disagrees with the body trips a debug assertion in hyper.
        if n == CONTENT_LENGTH || n == TRANSFER_ENCODING {
            continue;
        }
        if n == CONTENT_TYPE && !custom_type {
            custom_type = true;
            h.remove(CONTENT_TYPE);
        }
        h.append(n, v);
    }
    resp
}

fn chat_body(
    content: &str,
    usage: Option<Usage>,
    style: WireStyle,
    finish: Option<&str>,
    model: &str,
) -> Value {
    let finish_reason = match finish {
        None => Value::from("stop"),
        Some(FINISH_REASON_NULL) => Value::Null,
        Some(s) => Value::from(s),
    };
    let id = format!("chatcmpl-test{:012x}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let usage_json = |details: bool| {
        usage.map(|u| {
            let mut v = json!({
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.prompt_tokens + u.completion_tokens,
            });
            if details {
                v["prompt_tokens_details"] = Value::Null;
            }
            v
        })
    };
    let mut body = match style {
        WireStyle::OpenAi => json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": content, "refusal": null, "annotations": [] },
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "service_tier": "default",
            "system_fingerprint": "fp_test",
        }),
        WireStyle::Vllm => json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant", "content": content, "refusal": null, "annotations": null,
                    "audio": null, "function_call": null, "tool_calls": [], "reasoning_content": null,
                },
                "logprobs": null,
                "finish_reason": finish_reason,
                "stop_reason": null,
            }],
            "service_tier": null,
            "system_fingerprint": null,
            "usage": usage_json(true),
            "prompt_logprobs": null,
            "kv_transfer_params": null,
        }),
        WireStyle::Ollama => json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": content },
                "finish_reason": finish_reason,
            }],
        }),
        WireStyle::LlamaCpp => {
            let (p, c) = usage.map(|u| (u.prompt_tokens, u.completion_tokens)).unwrap_or((0, 0));
            json!({
                "choices": [{
                    "finish_reason": finish_reason,
                    "index": 0,
                    "message": { "role": "assistant", "content": content },
                }],
                "created": created,
                "model": model,
                "system_fingerprint": "b0000-test",
                "timings": {
                    "prompt_n": p, "prompt_ms": p as f64 * 0.5,
                    "prompt_per_token_ms": 0.5, "prompt_per_second": 2000.0,
                    "predicted_n": c, "predicted_ms": c as f64 * 10.0,
                    "predicted_per_token_ms": 10.0, "predicted_per_second": 100.0,
                },
            })
        }
    };
    if style != WireStyle::Vllm {
        if let Some(u) = usage_json(false) {
            body["usage"] = u;
        }
    }
    body
}

// ---------------------------------------------------------------------------------------------
// Connection IO: TokioIo plus "send RST on close" for Reply::ResetConnection
// ---------------------------------------------------------------------------------------------

struct ConnIo {
    inner: TokioIo<TcpStream>,
    reset: Arc<AtomicBool>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // Zero linger: close() discards unsent data and sends RST. Never blocks.
            let _ = self.inner.inner().set_zero_linger();
        }
    }
}

impl hyper::rt::Read for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}
