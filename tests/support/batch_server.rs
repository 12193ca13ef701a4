//! In-process server of OpenAI's Files and Batches APIs for the batch-mode tests.
//!
//! Binds `127.0.0.1:0` only, on a runtime of its own in a background thread (so it serves the
//! library and the binary alike), and implements:
//! - `POST /v1/files` (multipart/form-data, `purpose=batch`, a `file` part): stores the file;
//! - `GET /v1/files/{id}/content`: the stored file (input, output or error file);
//! - `POST /v1/batches`: a batch over an uploaded JSONL file, with its `metadata`;
//! - `GET /v1/batches/{id}`: `validating` on the first poll, `in_progress` for
//!   `in_progress_polls` more (and as long as [`BatchServer::hold`] is set), then the batch is
//!   processed line by line with the test's known-answer handler and ends `completed` (or
//!   `expired` when a line expired, or `failed` with `errors` when told to fail);
//! - `GET /v1/batches?limit=N&after=ID`: the batches, newest first.
//!
//! [`BatchServer::lose_next_create`] makes a create whose batch exists but whose response is a
//! 502, as when the response is lost on the way back.
//!
//! The same server speaks Anthropic's Message Batches API ([`BatchServer::anthropic`]), with the
//! same handler, state and recording:
//! - `POST /v1/messages/batches` (`anthropic-version: 2023-06-01` and `x-api-key` required):
//!   a batch of `{"requests": [{"custom_id", "params"}]}`, custom ids checked against
//!   `^[a-zA-Z0-9_-]{1,64}$` and unique, `params` needing `model`, `max_tokens` and `messages`;
//! - `GET /v1/messages/batches/{id}`: `in_progress` for `in_progress_polls` polls (and as long as
//!   held), then every request is processed and the batch is `ended`, with `results_url`;
//! - `GET /v1/messages/batches/{id}/results`: JSONL, one `succeeded`, `errored`, `expired` or
//!   `canceled` result per request, in reverse order (the API promises no order);
//! - `GET /v1/messages/batches?limit=N`: the batches, newest first.
//!
//! [`BatchServer::fail`] makes the next requests to a route answer with an error status (and
//! `retry-after`), in Anthropic's error shape, for whole-call failures: 401, 429, 529.
//!
//! Every request is recorded (with its headers) so tests can check what was sent.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::anthropic_server::{Message, Usage};

/// What the server does with one line of a batch.
#[derive(Clone, Debug)]
pub enum LineReply {
    /// A 200 chat completion with this content and usage.
    Chat { content: String, prompt_tokens: u64, completion_tokens: u64 },
    /// A per-request error: this status and message.
    Error { status: u16, message: String },
    /// The batch expired before it got to the line (`batch_expired` in the error file;
    /// `expired` in a Message Batch's results).
    Expired,
    /// A Message Batch only: a full Messages response (cache usage, tool calls, …).
    Message(Message),
    /// A Message Batch only: the batch was canceled before it got to the line.
    Canceled,
}

impl LineReply {
    pub fn chat(content: &str) -> LineReply {
        LineReply::Chat { content: content.to_string(), prompt_tokens: 10, completion_tokens: 1 }
    }
}

/// The handler: the line's request body and how many times a line with this body was processed
/// before (0 the first time).
type Handler = dyn Fn(&Value, usize) -> LineReply + Send + Sync + 'static;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// With the query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A batch as the server keeps it.
#[derive(Clone, Debug)]
pub struct ServerBatch {
    pub id: String,
    pub input_file_id: String,
    pub metadata: Value,
    /// `(custom_id, body)` of each input line.
    pub lines: Vec<(String, Value)>,
    pub polls: usize,
    pub status: String,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub completed: u64,
    pub failed: u64,
    /// A Message Batch: its results (JSONL) once ended, and the counts OpenAI has no word for.
    pub anthropic: bool,
    pub results: Option<String>,
    pub expired: u64,
    pub canceled: u64,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    batches: Vec<ServerBatch>,
    requests: Vec<Received>,
    /// How many times each body was processed.
    processed: HashMap<String, usize>,
    next: u64,
}

struct Shared {
    handler: Box<Handler>,
    in_progress_polls: usize,
    /// Fail every batch with this message (`status: failed`, `errors`).
    fail_with: Option<String>,
    hold: AtomicBool,
    /// The next create makes the batch but answers 502, as a response lost on the way back.
    lose_create: AtomicBool,
    /// Errors the next requests to a route get instead of an answer (see [`BatchServer::fail`]).
    failures: Mutex<VecDeque<Failure>>,
    state: Mutex<State>,
}

/// One request to fail: the first request whose method is `method` and whose path (with query)
/// starts with `path` gets `status`, with `retry-after` when given.
#[derive(Clone, Debug)]
struct Failure {
    method: String,
    path: String,
    status: u16,
    retry_after: Option<String>,
}

pub struct BatchServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _guard: std::sync::mpsc::Sender<()>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BatchServer {
    /// A server whose batches stay `in_progress` for `in_progress_polls` polls after
    /// `validating`, answering each line with `handler`.
    pub fn start<F>(in_progress_polls: usize, handler: F) -> BatchServer
    where
        F: Fn(&Value, usize) -> LineReply + Send + Sync + 'static,
    {
        Self::start_with(in_progress_polls, None, handler)
    }

    /// A server whose every batch fails as a whole with `message`.
    pub fn failing(message: &str) -> BatchServer {
        Self::start_with(0, Some(message.to_string()), |_, _| LineReply::chat("unused"))
    }

    fn start_with<F>(in_progress_polls: usize, fail_with: Option<String>, handler: F) -> BatchServer
    where
        F: Fn(&Value, usize) -> LineReply + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            in_progress_polls,
            fail_with,
            hold: AtomicBool::new(false),
            lose_create: AtomicBool::new(false),
            failures: Mutex::new(VecDeque::new()),
            state: Mutex::new(State::default()),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (guard_tx, guard_rx) = std::sync::mpsc::channel::<()>();
        let serving = shared.clone();
        std::thread::Builder::new()
            .name("batch-test-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("batch server runtime");
                let listener =
                    rt.block_on(TcpListener::bind(("127.0.0.1", 0))).expect("bind 127.0.0.1:0");
                addr_tx.send(listener.local_addr().expect("local addr")).expect("send addr");
                rt.spawn(async move {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else { continue };
                        let shared = serving.clone();
                        tokio::spawn(async move {
                            let service = service_fn(move |req| handle(shared.clone(), req));
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
                // Serve until the BatchServer is dropped.
                let _ = guard_rx.recv();
                rt.shutdown_background();
            })
            .expect("spawn batch server");
        let addr = addr_rx.recv().expect("batch server address");
        BatchServer { addr, shared, _guard: guard_tx }
    }

    /// A server for Message Batches: each batch is `in_progress` for `in_progress_polls`
    /// polls, then ended with every request answered by `handler` (given the request's
    /// `params`). Only the Message Batches routes are meant to be used, though both are served.
    pub fn anthropic<F>(in_progress_polls: usize, handler: F) -> BatchServer
    where
        F: Fn(&Value, usize) -> LineReply + Send + Sync + 'static,
    {
        Self::start_with(in_progress_polls, None, handler)
    }

    /// The next `times` requests with this method and path prefix (e.g. `POST`,
    /// `/v1/messages/batches`) get `status` and an Anthropic-shaped error body, with
    /// `retry-after` when given.
    pub fn fail(
        &self,
        method: &str,
        path: &str,
        status: u16,
        retry_after: Option<&str>,
        times: usize,
    ) {
        let mut failures = self.shared.failures.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..times {
            failures.push_back(Failure {
                method: method.to_string(),
                path: path.to_string(),
                status,
                retry_after: retry_after.map(str::to_string),
            });
        }
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// While set, batches stay `in_progress` however often they are polled.
    pub fn hold(&self, on: bool) {
        self.shared.hold.store(on, Ordering::SeqCst);
    }

    /// The next create makes its batch but answers 502 Bad Gateway.
    pub fn lose_next_create(&self) {
        self.shared.lose_create.store(true, Ordering::SeqCst);
    }

    pub fn batches(&self) -> Vec<ServerBatch> {
        lock(&self.shared.state).batches.clone()
    }

    pub fn requests(&self) -> Vec<Received> {
        lock(&self.shared.state).requests.clone()
    }

    /// The lines of every uploaded input file (`purpose=batch`), per file, in upload order.
    pub fn uploads(&self) -> Vec<Vec<Value>> {
        let state = lock(&self.shared.state);
        let mut ids: Vec<&String> =
            state.files.keys().filter(|k| k.starts_with("file-in")).collect();
        ids.sort();
        ids.iter()
            .map(|id| {
                String::from_utf8_lossy(&state.files[*id])
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).expect("input line is JSON"))
                    .collect()
            })
            .collect()
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn not_found(what: &str) -> Response<Full<Bytes>> {
    reply(
        404,
        json!({"error": {"message": format!("No such {what}"), "type": "invalid_request_error"}}),
    )
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut state = lock(&shared.state);
    state.requests.push(Received {
        method: parts.method.to_string(),
        path: if query.is_empty() { path.clone() } else { format!("{path}?{query}") },
        headers: headers.clone(),
        body: body.clone(),
    });
    let full_path = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
    if let Some(failure) = take_failure(&shared, parts.method.as_str(), &full_path) {
        return Ok(failure);
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let response = match (parts.method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "messages", "batches"]) => {
            message_batches::create(&mut state, &headers, &body)
        }
        ("GET", ["v1", "messages", "batches"]) => message_batches::list(&state, &query),
        ("GET", ["v1", "messages", "batches", id]) => {
            let id = id.to_string();
            message_batches::poll(&shared, &mut state, &id, &base_of(&headers))
        }
        ("GET", ["v1", "messages", "batches", id, "results"]) => {
            message_batches::results(&state, id)
        }
        ("POST", ["v1", "files"]) => upload(&mut state, &headers, &body),
        ("GET", ["v1", "files", id, "content"]) => match state.files.get(*id) {
            Some(content) => Response::builder()
                .status(200)
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from(content.clone())))
                .expect("response"),
            None => not_found("file"),
        },
        ("POST", ["v1", "batches"]) => {
            let made = create(&mut state, &body);
            if made.status() == 200 && shared.lose_create.swap(false, Ordering::SeqCst) {
                reply(502, json!({"error": {"message": "upstream connect error"}}))
            } else {
                made
            }
        }
        ("GET", ["v1", "batches"]) => list(&state, &query),
        ("GET", ["v1", "batches", id]) => {
            let id = id.to_string();
            poll(&shared, &mut state, &id)
        }
        _ => not_found("route"),
    };
    Ok(response)
}

/// The error a queued [`Failure`] for this request makes, if one is queued.
fn take_failure(shared: &Shared, method: &str, path: &str) -> Option<Response<Full<Bytes>>> {
    let mut failures = shared.failures.lock().unwrap_or_else(|e| e.into_inner());
    let at = failures.iter().position(|f| f.method == method && path.starts_with(&f.path))?;
    let f = failures.remove(at)?;
    let (kind, message) = match f.status {
        401 => ("authentication_error", "invalid x-api-key"),
        429 => ("rate_limit_error", "Number of concurrent batches exceeds your rate limit."),
        529 => ("overloaded_error", "Overloaded"),
        _ => ("api_error", "Internal server error"),
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_test"});
    let mut response =
        Response::builder().status(f.status).header("content-type", "application/json");
    if let Some(wait) = &f.retry_after {
        response = response.header("retry-after", wait.as_str());
    }
    Some(response.body(Full::new(Bytes::from(body.to_string()))).expect("response"))
}

/// `http://HOST` as the request addressed it, for `results_url`.
fn base_of(headers: &[(String, String)]) -> String {
    let host = headers.iter().find(|(n, _)| n == "host").map(|(_, v)| v.as_str()).unwrap_or("");
    format!("http://{host}")
}

/// Reads a multipart/form-data body by hand: the `purpose` field and the `file` part.
fn upload(state: &mut State, headers: &[(String, String)], body: &[u8]) -> Response<Full<Bytes>> {
    let content_type = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let Some(boundary) = content_type.split("boundary=").nth(1) else {
        return reply(400, json!({"error": {"message": "not multipart/form-data"}}));
    };
    let text = String::from_utf8_lossy(body).into_owned();
    let delimiter = format!("--{boundary}");
    let mut purpose = None;
    let mut file = None;
    for part in text.split(&delimiter).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let Some((head, content)) = part.split_once("\r\n\r\n") else { continue };
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        if head.contains("name=\"purpose\"") {
            purpose = Some(content.to_string());
        } else if head.contains("name=\"file\"") {
            file = Some(content.to_string());
        }
    }
    if purpose.as_deref() != Some("batch") {
        return reply(400, json!({"error": {"message": "purpose must be batch"}}));
    }
    let Some(file) = file else {
        return reply(400, json!({"error": {"message": "no file part"}}));
    };
    state.next += 1;
    let id = format!("file-in{:04}", state.next);
    state.files.insert(id.clone(), file.into_bytes());
    reply(200, json!({"id": id, "object": "file", "purpose": "batch"}))
}

fn create(state: &mut State, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return reply(400, json!({"error": {"message": "body is not JSON"}}));
    };
    let input = request["input_file_id"].as_str().unwrap_or_default().to_string();
    if request["endpoint"] != "/v1/chat/completions" || request["completion_window"] != "24h" {
        return reply(400, json!({"error": {"message": "bad endpoint or completion_window"}}));
    }
    let Some(content) = state.files.get(&input) else { return not_found("input file") };
    let mut lines = Vec::new();
    for line in String::from_utf8_lossy(content).lines().filter(|l| !l.trim().is_empty()) {
        let Ok(line) = serde_json::from_str::<Value>(line) else {
            return reply(400, json!({"error": {"message": "input line is not JSON"}}));
        };
        if line["method"] != "POST" || line["url"] != "/v1/chat/completions" {
            return reply(400, json!({"error": {"message": "bad method or url in a line"}}));
        }
        let id = line["custom_id"].as_str().unwrap_or_default().to_string();
        lines.push((id, line["body"].clone()));
    }
    state.next += 1;
    let batch = ServerBatch {
        id: format!("batch_{:04}", state.next),
        input_file_id: input,
        metadata: request["metadata"].clone(),
        lines,
        polls: 0,
        status: "validating".into(),
        output_file_id: None,
        error_file_id: None,
        completed: 0,
        failed: 0,
        anthropic: false,
        results: None,
        expired: 0,
        canceled: 0,
    };
    let object = batch_object(&batch);
    state.batches.push(batch);
    reply(200, object)
}

fn batch_object(b: &ServerBatch) -> Value {
    json!({
        "id": b.id, "object": "batch", "endpoint": "/v1/chat/completions",
        "input_file_id": b.input_file_id, "completion_window": "24h", "status": b.status,
        "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
        "request_counts": { "total": b.lines.len(), "completed": b.completed, "failed": b.failed },
        "metadata": b.metadata,
    })
}

fn list(state: &State, query: &str) -> Response<Full<Bytes>> {
    let param = |name: &str| {
        query.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
    };
    let limit: usize = param("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
    let newest_first: Vec<&ServerBatch> =
        state.batches.iter().rev().filter(|b| !b.anthropic).collect();
    let start = match param("after") {
        Some(after) => newest_first.iter().position(|b| b.id == after).map_or(0, |i| i + 1),
        None => 0,
    };
    let page: Vec<Value> =
        newest_first.iter().skip(start).take(limit).map(|b| batch_object(b)).collect();
    let has_more = start + page.len() < newest_first.len();
    let last = page.last().and_then(|b| b["id"].as_str()).map(str::to_string);
    reply(200, json!({"object": "list", "data": page, "has_more": has_more, "last_id": last}))
}

fn poll(shared: &Shared, state: &mut State, id: &str) -> Response<Full<Bytes>> {
    let Some(i) = state.batches.iter().position(|b| b.id == id) else {
        return not_found("batch");
    };
    if matches!(state.batches[i].status.as_str(), "completed" | "expired" | "failed") {
        return reply(200, batch_object(&state.batches[i]));
    }
    state.batches[i].polls += 1;
    let polls = state.batches[i].polls;
    if polls == 1 {
        state.batches[i].status = "validating".into();
    } else if polls <= 1 + shared.in_progress_polls || shared.hold.load(Ordering::SeqCst) {
        state.batches[i].status = "in_progress".into();
    } else if let Some(message) = &shared.fail_with {
        let b = &mut state.batches[i];
        b.status = "failed".into();
        let mut object = batch_object(b);
        object["errors"] = json!({"object": "list", "data": [
            {"code": "invalid_request", "message": message, "param": null, "line": 1}
        ]});
        return reply(200, object);
    } else {
        process(shared, state, i);
    }
    reply(200, batch_object(&state.batches[i]))
}

/// Runs every line of batch `i` through the handler and writes the output and error files.
fn process(shared: &Shared, state: &mut State, i: usize) {
    let lines = state.batches[i].lines.clone();
    let (mut output, mut errors) = (String::new(), String::new());
    let (mut completed, mut failed, mut expired) = (0, 0, false);
    for (n, (custom_id, body)) in lines.iter().enumerate() {
        let key = body.to_string();
        let seen = state.processed.get(&key).copied().unwrap_or(0);
        state.processed.insert(key, seen + 1);
        let request_id = format!("req_{i}_{n}");
        match (shared.handler)(body, seen) {
            LineReply::Chat { content, prompt_tokens, completion_tokens } => {
                completed += 1;
                let response = json!({
                    "id": format!("chatcmpl-{i}-{n}"), "object": "chat.completion",
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
                });
                let line = json!({"id": format!("batch_req_{i}_{n}"), "custom_id": custom_id,
                    "response": {"status_code": 200, "request_id": request_id, "body": response}, "error": null});
                output.push_str(&format!("{line}\n"));
            }
            LineReply::Error { status, message } => {
                failed += 1;
                let line = json!({"id": format!("batch_req_{i}_{n}"), "custom_id": custom_id,
                    "response": {"status_code": status, "request_id": request_id,
                        "body": {"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}},
                    "error": null});
                errors.push_str(&format!("{line}\n"));
            }
            LineReply::Message(_) | LineReply::Canceled => {
                panic!("a Message Batches reply in an OpenAI batch")
            }
            LineReply::Expired => {
                expired = true;
                let line = json!({"id": format!("batch_req_{i}_{n}"), "custom_id": custom_id, "response": null,
                    "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}});
                errors.push_str(&format!("{line}\n"));
            }
        }
    }
    state.next += 1;
    let out_id = format!("file-out{:04}", state.next);
    let err_id = format!("file-err{:04}", state.next);
    let b = &mut state.batches[i];
    b.status = if expired { "expired" } else { "completed" }.into();
    b.completed = completed;
    b.failed = failed;
    b.output_file_id = (!output.is_empty()).then(|| out_id.clone());
    b.error_file_id = (!errors.is_empty()).then(|| err_id.clone());
    if !output.is_empty() {
        state.files.insert(out_id, output.into_bytes());
    }
    if !errors.is_empty() {
        state.files.insert(err_id, errors.into_bytes());
    }
}

/// Anthropic's Message Batches on the same state.
mod message_batches {
    use super::*;

    fn error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
        reply(status, json!({"type": "error", "error": {"type": kind, "message": message}}))
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn safe_id(id: &str) -> bool {
        (1..=64).contains(&id.len())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    pub(super) fn create(
        state: &mut State,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        if header(headers, "x-api-key").is_none_or(str::is_empty) {
            return error(401, "authentication_error", "x-api-key header is required");
        }
        if header(headers, "anthropic-version") != Some("2023-06-01") {
            return error(400, "invalid_request_error", "anthropic-version header is required");
        }
        let Ok(request) = serde_json::from_slice::<Value>(body) else {
            return error(400, "invalid_request_error", "body is not JSON");
        };
        let Some(requests) = request["requests"].as_array().filter(|r| !r.is_empty()) else {
            return error(400, "invalid_request_error", "requests: a non-empty list is required");
        };
        if requests.len() > 100_000 {
            return error(400, "invalid_request_error", "requests: at most 100,000");
        }
        let mut lines = Vec::new();
        for r in requests {
            let id = r["custom_id"].as_str().unwrap_or_default().to_string();
            if !safe_id(&id) || lines.iter().any(|(seen, _)| seen == &id) {
                return error(
                    400,
                    "invalid_request_error",
                    &format!("custom_id `{id}` is invalid or repeated"),
                );
            }
            let params = &r["params"];
            if !params["model"].is_string()
                || !params["max_tokens"].is_u64()
                || !params["messages"].is_array()
            {
                return error(
                    400,
                    "invalid_request_error",
                    "params: model, max_tokens and messages are required",
                );
            }
            lines.push((id, params.clone()));
        }
        state.next += 1;
        let batch = ServerBatch {
            id: format!("msgbatch_{:04}", state.next),
            input_file_id: String::new(),
            metadata: Value::Null,
            lines,
            polls: 0,
            status: "in_progress".into(),
            output_file_id: None,
            error_file_id: None,
            completed: 0,
            failed: 0,
            anthropic: true,
            results: None,
            expired: 0,
            canceled: 0,
        };
        let object = batch_object(&batch, "");
        state.batches.push(batch);
        reply(200, object)
    }

    fn batch_object(b: &ServerBatch, base: &str) -> Value {
        let ended = b.status == "ended";
        let processing = if ended { 0 } else { b.lines.len() };
        json!({
            "id": b.id, "type": "message_batch", "processing_status": b.status,
            "request_counts": {
                "processing": processing, "succeeded": b.completed, "errored": b.failed,
                "canceled": b.canceled, "expired": b.expired,
            },
            "ended_at": if ended { json!("2026-12-01T01:00:00Z") } else { Value::Null },
            "created_at": "2026-12-01T00:00:00Z",
            "expires_at": "2026-12-02T00:00:00Z",
            "archived_at": null,
            "cancel_initiated_at": null,
            "results_url": if ended { json!(format!("{base}/v1/messages/batches/{}/results", b.id)) } else { Value::Null },
        })
    }

    pub(super) fn list(state: &State, query: &str) -> Response<Full<Bytes>> {
        let limit: usize = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("limit="))
            .and_then(|l| l.parse().ok())
            .unwrap_or(20);
        let page: Vec<Value> = state
            .batches
            .iter()
            .rev()
            .filter(|b| b.anthropic)
            .take(limit)
            .map(|b| batch_object(b, ""))
            .collect();
        let total = state.batches.iter().filter(|b| b.anthropic).count();
        let first = page.first().and_then(|b| b["id"].as_str()).map(str::to_string);
        let last = page.last().and_then(|b| b["id"].as_str()).map(str::to_string);
        reply(
            200,
            json!({"data": page, "has_more": total > page.len(), "first_id": first, "last_id": last}),
        )
    }

    pub(super) fn poll(
        shared: &Shared,
        state: &mut State,
        id: &str,
        base: &str,
    ) -> Response<Full<Bytes>> {
        let Some(i) = state.batches.iter().position(|b| b.anthropic && b.id == id) else {
            return error(404, "not_found_error", "No such batch");
        };
        if state.batches[i].status != "ended" {
            state.batches[i].polls += 1;
            let held = shared.hold.load(Ordering::SeqCst);
            if state.batches[i].polls > shared.in_progress_polls && !held {
                process(shared, state, i);
            }
        }
        reply(200, batch_object(&state.batches[i], base))
    }

    pub(super) fn results(state: &State, id: &str) -> Response<Full<Bytes>> {
        match state.batches.iter().find(|b| b.anthropic && b.id == id) {
            Some(ServerBatch { results: Some(jsonl), .. }) => Response::builder()
                .status(200)
                .header("content-type", "application/binary")
                .body(Full::new(Bytes::from(jsonl.clone())))
                .expect("response"),
            Some(_) => error(400, "invalid_request_error", "the batch has not ended"),
            None => error(404, "not_found_error", "No such batch"),
        }
    }

    /// The error type the API gives a status.
    fn error_type(status: u16) -> &'static str {
        match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        }
    }

    /// Runs every request of batch `i` through the handler and ends the batch.
    fn process(shared: &Shared, state: &mut State, i: usize) {
        let lines = state.batches[i].lines.clone();
        let mut out = Vec::new();
        let (mut succeeded, mut errored, mut expired, mut canceled) = (0, 0, 0, 0);
        for (custom_id, params) in &lines {
            let key = params.to_string();
            let seen = state.processed.get(&key).copied().unwrap_or(0);
            state.processed.insert(key, seen + 1);
            let model = params["model"].as_str().unwrap_or_default();
            let result = match (shared.handler)(params, seen) {
                LineReply::Chat { content, prompt_tokens, completion_tokens } => {
                    succeeded += 1;
                    let usage = Usage {
                        input_tokens: prompt_tokens,
                        output_tokens: completion_tokens,
                        ..Usage::default()
                    };
                    let message = Message::text(content).with_usage(Some(usage));
                    json!({"type": "succeeded", "message": message.body(model)})
                }
                LineReply::Message(message) => {
                    succeeded += 1;
                    json!({"type": "succeeded", "message": message.body(model)})
                }
                LineReply::Error { status, message } => {
                    errored += 1;
                    json!({"type": "errored", "error": {"type": "error",
                        "error": {"type": error_type(status), "message": message}}})
                }
                LineReply::Expired => {
                    expired += 1;
                    json!({"type": "expired"})
                }
                LineReply::Canceled => {
                    canceled += 1;
                    json!({"type": "canceled"})
                }
            };
            out.push(json!({"custom_id": custom_id, "result": result}).to_string());
        }
        out.reverse();
        let b = &mut state.batches[i];
        b.status = "ended".into();
        (b.completed, b.failed, b.expired, b.canceled) = (succeeded, errored, expired, canceled);
        b.results = Some(out.iter().map(|l| format!("{l}\n")).collect());
    }
}
