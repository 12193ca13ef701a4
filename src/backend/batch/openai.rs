//! OpenAI's Batch API (and servers that copy it): the requests as a JSONL file uploaded with
//! `POST /files` (`purpose=batch`), a batch made from it with `POST /batches`, polled with
//! `GET /batches/{id}`, and its output and error files read with `GET /files/{id}/content`.
//!
//! Plain reqwest over the run's shared HTTP client, with the multipart upload written by hand
//! (one file and one field need no multipart dependency). The key goes only into the
//! `Authorization` header.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{BatchApi, BatchError, BatchPhase, BatchRequest, BatchStatus, LineOutcome};
use crate::backend::wire::error_message;
use crate::backend::{BackendError, ErrorKind};

/// The metadata key that carries a batch's token (see [`BatchApi::create`]).
pub const TOKEN_KEY: &str = "evalgate_token";
/// The metadata key that carries the backend id, for a person reading the batch list.
pub const BACKEND_KEY: &str = "evalgate_backend";
/// The batch's endpoint: every line is a chat completion.
pub const ENDPOINT: &str = "/v1/chat/completions";
/// How many recent batches [`OpenAiBatch::find`] looks through (pages of 100).
const FIND_PAGES: usize = 5;
/// File transfers carry up to the whole suite; they get longer than a chat request.
const FILE_TIMEOUT: Duration = Duration::from_secs(600);

pub struct OpenAiBatch {
    http: reqwest::Client,
    /// The server address as configured (`…/v1`).
    base_url: String,
    api_key: Option<String>,
    /// Per call, for calls other than file transfers.
    timeout: Duration,
}

impl OpenAiBatch {
    /// `api_key` is read from the environment by the caller; it goes only into the
    /// `Authorization` header.
    pub fn new(
        base_url: &str,
        api_key: Option<&str>,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Self {
        OpenAiBatch {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            // Trimmed as the live client trims it: a trailing newline is not part of a key.
            api_key: api_key.map(|k| k.trim().to_string()).filter(|k| !k.is_empty()),
            timeout,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }

    /// Sends `request` with the key and returns the body of a success response.
    async fn call(
        &self,
        action: &'static str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<String, BatchError> {
        let request = match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        super::exchange(action, request, timeout).await
    }

    async fn call_json<T: for<'de> Deserialize<'de>>(
        &self,
        action: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, BatchError> {
        let body = self.call(action, request, self.timeout).await?;
        super::parse_reply(action, &body)
    }

    async fn file_content(&self, id: &str) -> Result<String, BatchError> {
        let request = self.http.get(self.url(&format!("files/{id}/content")));
        self.call("download the batch's results", request, FILE_TIMEOUT).await
    }
}

/// The batch input file: one `{custom_id, method, url, body}` line per request.
pub fn input_jsonl(requests: &[BatchRequest]) -> String {
    let mut out = String::new();
    for r in requests {
        // The body is written as the exact bytes the live path would send.
        out.push_str(&format!(
            r#"{{"custom_id":{},"method":"POST","url":"{ENDPOINT}","body":{}}}"#,
            Value::from(r.custom_id.as_str()),
            r.body.get()
        ));
        out.push('\n');
    }
    out
}

/// A `multipart/form-data` body with the field `purpose=batch` and `content` as the file
/// `batch.jsonl`, and its boundary: one that the content does not contain.
pub fn multipart(content: &str) -> (String, Vec<u8>) {
    let mut n = crate::text::stable_hash(content);
    let mut boundary = format!("evalgate-batch-{n:016x}");
    while content.contains(&boundary) {
        n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        boundary = format!("evalgate-batch-{n:016x}");
    }
    let mut body = Vec::with_capacity(content.len() + 400);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch.jsonl\"\r\n\
             Content-Type: application/jsonl\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// A batch object, every field but `id` optional (compatible servers leave some out).
#[derive(Deserialize)]
struct Batch {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    request_counts: Option<Counts>,
    #[serde(default)]
    output_file_id: Option<String>,
    #[serde(default)]
    error_file_id: Option<String>,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize, Default)]
struct Counts {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    completed: u64,
    #[serde(default)]
    failed: u64,
}

#[derive(Deserialize)]
struct BatchList {
    #[serde(default)]
    data: Vec<Batch>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

/// The messages of a failed batch's `errors` (`{"data": [{"code", "message", "line"}]}`).
fn batch_errors(errors: Option<&Value>) -> Vec<String> {
    let Some(list) = errors.and_then(|e| e.get("data")).and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let message = e.get("message").and_then(Value::as_str).unwrap_or("no message");
            match (e.get("code").and_then(Value::as_str), e.get("line").and_then(Value::as_u64)) {
                (Some(code), Some(line)) => format!("{message} ({code}, input line {line})"),
                (Some(code), None) => format!("{message} ({code})"),
                _ => message.to_string(),
            }
        })
        .collect()
}

/// One line of an output or error file.
fn line_outcome(line: &Value) -> LineOutcome {
    let response = line.get("response").filter(|r| !r.is_null());
    let status = response.and_then(|r| r.get("status_code")).and_then(Value::as_u64);
    let body = response.and_then(|r| r.get("body"));
    let error = line.get("error").filter(|e| !e.is_null());
    match (status, body) {
        (Some(200..=299), Some(body)) => return LineOutcome::Answered { body: body.to_string() },
        (Some(status), body) => {
            let text = body.map(Value::to_string).unwrap_or_default();
            let status = u16::try_from(status).unwrap_or(u16::MAX);
            return LineOutcome::Failed(BackendError {
                kind: ErrorKind::Http,
                status: Some(status),
                message: error_message(&text),
                retry_after: None,
            });
        }
        _ => {}
    }
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or_default();
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("the batch returned no response for the request")
        .to_string();
    match code {
        // The batch ended before it got to the request: nothing was wrong with the request.
        "batch_expired" | "batch_cancelled" => LineOutcome::Unprocessed { reason: message },
        _ => LineOutcome::Failed(BackendError::new(
            ErrorKind::ApiError,
            if code.is_empty() { message } else { format!("{message} ({code})") },
        )),
    }
}

impl BatchApi for OpenAiBatch {
    fn provider(&self) -> &'static str {
        "openai"
    }

    /// OpenAI's limit per batch.
    fn max_requests(&self) -> usize {
        50_000
    }

    async fn upload(&self, requests: &[BatchRequest]) -> Result<Option<String>, BatchError> {
        let (boundary, body) = multipart(&input_jsonl(requests));
        let request = self
            .http
            .post(self.url("files"))
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        let action = "upload the batch input";
        let text = self.call(action, request, FILE_TIMEOUT).await?;
        let created: Created = super::parse_reply(action, &text)?;
        Ok(Some(created.id))
    }

    async fn create(
        &self,
        _requests: &[BatchRequest],
        input: Option<&str>,
        token: &str,
        backend: &str,
    ) -> Result<String, BatchError> {
        let action = "create the batch";
        let input = input.ok_or(BatchError::Protocol {
            action,
            detail: "no input file was uploaded".to_string(),
        })?;
        let body = json!({
            "input_file_id": input,
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            "metadata": { TOKEN_KEY: token, BACKEND_KEY: backend },
        });
        let created: Created =
            self.call_json(action, self.http.post(self.url("batches")).json(&body)).await?;
        Ok(created.id)
    }

    async fn find(&self, token: &str) -> Result<Option<String>, BatchError> {
        let mut after: Option<String> = None;
        for _ in 0..FIND_PAGES {
            let mut request = self.http.get(self.url("batches")).query(&[("limit", "100")]);
            if let Some(a) = &after {
                request = request.query(&[("after", a.as_str())]);
            }
            let page: BatchList = self.call_json("list the batches", request).await?;
            if let Some(b) = page.data.iter().find(|b| {
                b.metadata.as_ref().and_then(|m| m.get(TOKEN_KEY)).and_then(Value::as_str)
                    == Some(token)
            }) {
                return Ok(Some(b.id.clone()));
            }
            match (page.has_more, page.last_id.or_else(|| page.data.last().map(|b| b.id.clone()))) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        Ok(None)
    }

    async fn status(&self, id: &str) -> Result<BatchStatus, BatchError> {
        let action = "poll the batch";
        let batch: Batch =
            self.call_json(action, self.http.get(self.url(&format!("batches/{id}")))).await?;
        let status = batch.status.unwrap_or_default();
        let phase = BatchPhase::parse(&status).ok_or_else(|| BatchError::Protocol {
            action,
            detail: format!("unknown batch status `{status}`"),
        })?;
        let counts = batch.request_counts.unwrap_or_default();
        Ok(BatchStatus {
            id: batch.id,
            phase,
            total: counts.total,
            completed: counts.completed,
            failed: counts.failed,
            errors: batch_errors(batch.errors.as_ref()),
            results: [batch.output_file_id, batch.error_file_id].into_iter().flatten().collect(),
        })
    }

    async fn results(
        &self,
        status: &BatchStatus,
    ) -> Result<Vec<(String, LineOutcome)>, BatchError> {
        let mut out = Vec::new();
        for file in &status.results {
            let content = self.file_content(file).await?;
            for (n, line) in content.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let value: Value =
                    serde_json::from_str(line).map_err(|e| BatchError::Protocol {
                        action: "read the batch's results",
                        detail: format!("line {} of file {file}: {e}", n + 1),
                    })?;
                let Some(id) = value.get("custom_id").and_then(Value::as_str) else {
                    return Err(BatchError::Protocol {
                        action: "read the batch's results",
                        detail: format!("line {} of file {file} has no custom_id", n + 1),
                    });
                };
                out.push((id.to_string(), line_outcome(&value)));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn the_input_file_carries_each_body_as_the_live_path_sends_it() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"a \"quoted\" ticket"}]}"#;
        let requests = [BatchRequest {
            custom_id: "r1-0".into(),
            body: RawValue::from_string(body.into()).unwrap(),
        }];
        let jsonl = input_jsonl(&requests);
        assert_eq!(
            jsonl,
            format!(
                r#"{{"custom_id":"r1-0","method":"POST","url":"/v1/chat/completions","body":{body}}}"#
            ) + "\n"
        );
        let (boundary, bytes) = multipart(&jsonl);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"purpose\"\r\n\r\nbatch\r\n"));
        assert!(text.contains(&format!("filename=\"batch.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{jsonl}\r\n--{boundary}--\r\n")));
        // A boundary is never part of the content.
        let tricky = format!("x{boundary}y");
        let (other, _) = multipart(&tricky);
        assert!(!tricky.contains(&other));
    }

    #[test]
    fn result_lines_become_answers_failures_or_unprocessed_requests() {
        let ok = json!({"custom_id": "a", "response": {"status_code": 200, "body": {"choices": []}}, "error": null});
        assert_eq!(line_outcome(&ok), LineOutcome::Answered { body: r#"{"choices":[]}"#.into() });
        let bad = json!({"custom_id": "b", "response": {"status_code": 400, "body": {"error": {"message": "bad max_tokens"}}}, "error": null});
        let LineOutcome::Failed(e) = line_outcome(&bad) else { panic!("a failure") };
        assert_eq!((e.status, e.message.as_str()), (Some(400), "bad max_tokens"));
        let expired = json!({"custom_id": "c", "response": null, "error": {"code": "batch_expired", "message": "not executed before the window expired"}});
        assert_eq!(
            line_outcome(&expired),
            LineOutcome::Unprocessed { reason: "not executed before the window expired".into() }
        );
        let errors = json!({"data": [{"code": "invalid_json", "message": "bad line", "line": 3}]});
        assert_eq!(batch_errors(Some(&errors)), ["bad line (invalid_json, input line 3)"]);
    }
}
