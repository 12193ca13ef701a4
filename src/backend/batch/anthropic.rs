//! Anthropic's Message Batches API: the requests sent in the create call itself
//! (`POST {base_url}/messages/batches`, `{"requests": [{"custom_id", "params"}]}`, each `params`
//! the exact Messages body the live path sends), polled with `GET …/messages/batches/{id}`, and
//! its results read as JSONL from `GET …/messages/batches/{id}/results`.
//!
//! Headers as on the live path: the key only in `x-api-key` (marked sensitive), and
//! `anthropic-version`. The results are always fetched from `base_url`, never from the
//! `results_url` the batch names: it points at Anthropic's own host, and a `base_url` that is a
//! proxy should see the key, not a host the configuration never named.
//!
//! Anthropic's batches carry no metadata, and the list of batches says nothing that ties one to
//! the run that made it (only ids, times and counts), so [`AnthropicBatch::find`] finds nothing:
//! see its documentation for the duplicate window that leaves.

use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::Value;

use super::{BatchApi, BatchError, BatchPhase, BatchRequest, BatchStatus, LineOutcome};
use crate::backend::anthropic::{authorized, key_header};
use crate::backend::{BackendError, ErrorKind};

/// Results come as one JSONL download of up to the whole batch; it gets longer than a call.
const RESULTS_TIMEOUT: Duration = Duration::from_secs(600);

pub struct AnthropicBatch {
    http: reqwest::Client,
    /// The server address as configured (`…/v1`), without a trailing slash.
    base_url: String,
    /// The `x-api-key` header, marked sensitive so it is never printed.
    api_key: Option<HeaderValue>,
    /// Per call, for calls other than the results download.
    timeout: Duration,
}

impl AnthropicBatch {
    /// Anthropic's limits per batch: 100,000 requests or 256 MB of request body.
    pub const MAX_REQUESTS: usize = 100_000;
    pub const MAX_BYTES: usize = 256 * 1024 * 1024;

    /// `api_key` is read from the environment by the caller; it goes only into the
    /// `x-api-key` header.
    pub fn new(
        base_url: &str,
        api_key: Option<&str>,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Self {
        AnthropicBatch {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: key_header(api_key),
            timeout,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/messages/batches{path}", self.base_url)
    }

    /// Sends `request` with the API's headers and returns the body of a success response.
    async fn call(
        &self,
        action: &'static str,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<String, BatchError> {
        super::exchange(action, authorized(request, self.api_key.as_ref()), timeout).await
    }
}

/// The create call's body: `{"requests": [{"custom_id", "params"}, …]}`, each `params` written as
/// the exact bytes the live path would send.
pub fn create_body(requests: &[BatchRequest]) -> String {
    let mut out = String::from(r#"{"requests":["#);
    for (n, r) in requests.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"custom_id":{},"params":{}}}"#,
            Value::from(r.custom_id.as_str()),
            r.body.get()
        ));
    }
    out.push_str("]}");
    out
}

/// A Message Batch object, every field but `id` optional.
#[derive(Deserialize)]
struct MessageBatch {
    id: String,
    #[serde(default)]
    processing_status: Option<String>,
    #[serde(default)]
    request_counts: Option<Counts>,
    #[serde(default)]
    results_url: Option<String>,
}

#[derive(Deserialize, Default)]
struct Counts {
    #[serde(default)]
    processing: u64,
    #[serde(default)]
    succeeded: u64,
    #[serde(default)]
    errored: u64,
    #[serde(default)]
    canceled: u64,
    #[serde(default)]
    expired: u64,
}

/// The batch as [`BatchStatus`] has it. `ended` becomes `expired` when a request expired and
/// `cancelled` when one was canceled, as OpenAI names such batches; either way the results say
/// which requests were answered, and the others are sent again. `failed` counts the errored
/// requests only: expired and canceled ones were never tried.
fn status_of(batch: MessageBatch) -> Result<BatchStatus, BatchError> {
    let counts = batch.request_counts.unwrap_or_default();
    let word = batch.processing_status.unwrap_or_default();
    let phase = match word.as_str() {
        "in_progress" => BatchPhase::InProgress,
        "canceling" => BatchPhase::Cancelling,
        "ended" if counts.expired > 0 => BatchPhase::Expired,
        "ended" if counts.canceled > 0 => BatchPhase::Cancelled,
        "ended" => BatchPhase::Completed,
        _ => {
            return Err(BatchError::Protocol {
                action: "poll the batch",
                detail: format!("unknown processing_status `{word}`"),
            })
        }
    };
    // An ended batch has results (`results_url`); they are read from `base_url` by id (see the
    // module documentation), so only their presence matters here.
    let results = match (phase.ended(), batch.results_url) {
        (true, Some(_)) => vec![batch.id.clone()],
        _ => Vec::new(),
    };
    Ok(BatchStatus {
        total: counts.processing
            + counts.succeeded
            + counts.errored
            + counts.canceled
            + counts.expired,
        completed: counts.succeeded,
        failed: counts.errored,
        errors: Vec::new(),
        results,
        id: batch.id,
        phase,
    })
}

/// The HTTP status the live API answers an error of this `type` with, so a request that errored
/// in a batch is retried (or not) exactly as the same error on the live path would be:
/// `api_error` and `overloaded_error` go into the next batch, `invalid_request_error` is
/// recorded as failed at once.
fn status_of_error(kind: &str) -> Option<u16> {
    Some(match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "overloaded_error" => 529,
        _ => return None,
    })
}

/// One line of the results: `{"custom_id", "result": {"type": …}}`.
fn line_outcome(line: &Value) -> LineOutcome {
    let result = line.get("result");
    let kind = result.and_then(|r| r.get("type")).and_then(Value::as_str).unwrap_or_default();
    match kind {
        "succeeded" => match result.and_then(|r| r.get("message")) {
            Some(message) => LineOutcome::Answered { body: message.to_string() },
            None => LineOutcome::Failed(BackendError::new(
                ErrorKind::MalformedResponse,
                "a succeeded result without a message",
            )),
        },
        "errored" => {
            // `error` is the error body the live API would send: `{"type": "error", "error": {…}}`.
            let error = result.and_then(|r| r.get("error"));
            let inner = error.and_then(|e| e.get("error")).or(error);
            let error_type = inner.and_then(|e| e.get("type")).and_then(Value::as_str);
            let message = inner
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("the request failed in the batch");
            let status = error_type.and_then(status_of_error);
            LineOutcome::Failed(BackendError {
                kind: if status.is_some() { ErrorKind::Http } else { ErrorKind::ApiError },
                status,
                message: match error_type {
                    Some(t) => format!("{message} ({t})"),
                    None => message.to_string(),
                },
                retry_after: None,
            })
        }
        // The batch ended (24 hours) or was canceled before it got to the request: nothing was
        // wrong with the request itself.
        "expired" => LineOutcome::Unprocessed {
            reason: "the batch expired before the request was processed".to_string(),
        },
        "canceled" => LineOutcome::Unprocessed {
            reason: "the batch was canceled before the request was processed".to_string(),
        },
        other => LineOutcome::Failed(BackendError::new(
            ErrorKind::MalformedResponse,
            format!("unknown result type `{other}`"),
        )),
    }
}

impl BatchApi for AnthropicBatch {
    fn provider(&self) -> &'static str {
        "anthropic"
    }

    fn max_requests(&self) -> usize {
        Self::MAX_REQUESTS
    }

    fn max_bytes(&self) -> usize {
        Self::MAX_BYTES
    }

    /// Nothing to upload: the requests go in the create call.
    async fn upload(&self, _requests: &[BatchRequest]) -> Result<Option<String>, BatchError> {
        Ok(None)
    }

    /// Anthropic's batches take no metadata, so `token` and `backend` are not sent.
    async fn create(
        &self,
        requests: &[BatchRequest],
        _input: Option<&str>,
        _token: &str,
        _backend: &str,
    ) -> Result<String, BatchError> {
        let action = "create the batch";
        let request = self
            .http
            .post(self.url(""))
            .header(CONTENT_TYPE, "application/json")
            .body(create_body(requests));
        // The body carries every request: as long a transfer as the results.
        let text = self.call(action, request, RESULTS_TIMEOUT).await?;
        let batch: MessageBatch = super::parse_reply(action, &text)?;
        Ok(batch.id)
    }

    /// Always `None`, without a call: a Message Batch has no metadata to carry the token, and
    /// `GET /messages/batches` lists only ids, times and counts, which cannot tell this run's
    /// batch from another made at the same moment with as many requests. Adopting a look-alike
    /// would journal another job's answers, so nothing is guessed. What that leaves: a create
    /// whose response was lost (a dropped connection, a proxy's 502, a kill between the send and
    /// the save of the id) is created again, and the first batch runs on unread and is billed.
    async fn find(&self, _token: &str) -> Result<Option<String>, BatchError> {
        Ok(None)
    }

    async fn status(&self, id: &str) -> Result<BatchStatus, BatchError> {
        let action = "poll the batch";
        let text =
            self.call(action, self.http.get(self.url(&format!("/{id}"))), self.timeout).await?;
        status_of(super::parse_reply(action, &text)?)
    }

    async fn results(
        &self,
        status: &BatchStatus,
    ) -> Result<Vec<(String, LineOutcome)>, BatchError> {
        let action = "read the batch's results";
        let mut out = Vec::new();
        for id in &status.results {
            let request = self.http.get(self.url(&format!("/{id}/results")));
            let content = self.call(action, request, RESULTS_TIMEOUT).await?;
            for (n, line) in content.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let value: Value =
                    serde_json::from_str(line).map_err(|e| BatchError::Protocol {
                        action,
                        detail: format!("line {} of the results of batch {id}: {e}", n + 1),
                    })?;
                let Some(custom_id) = value.get("custom_id").and_then(Value::as_str) else {
                    return Err(BatchError::Protocol {
                        action,
                        detail: format!(
                            "line {} of the results of batch {id} has no custom_id",
                            n + 1
                        ),
                    });
                };
                out.push((custom_id.to_string(), line_outcome(&value)));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::value::RawValue;

    #[test]
    fn the_create_body_carries_each_body_as_the_live_path_sends_it() {
        let body = r#"{"model":"claude-haiku-4-5","max_tokens":16,"system":"S","messages":[{"role":"user","content":"a \"quoted\" ticket"}],"temperature":0.0}"#;
        let requests: Vec<BatchRequest> = ["r1-000000", "r1-000001"]
            .into_iter()
            .map(|id| BatchRequest {
                custom_id: id.into(),
                body: RawValue::from_string(body.into()).unwrap(),
            })
            .collect();
        assert_eq!(
            create_body(&requests),
            format!(
                r#"{{"requests":[{{"custom_id":"r1-000000","params":{body}}},{{"custom_id":"r1-000001","params":{body}}}]}}"#
            )
        );
        assert_eq!(create_body(&[]), r#"{"requests":[]}"#);
    }

    fn batch(status: &str, counts: Value, results_url: Value) -> MessageBatch {
        serde_json::from_value(json!({
            "id": "msgbatch_01", "type": "message_batch", "processing_status": status,
            "request_counts": counts, "ended_at": null, "created_at": "2026-12-01T00:00:00Z",
            "expires_at": "2026-12-02T00:00:00Z", "cancel_initiated_at": null,
            "results_url": results_url,
        }))
        .unwrap()
    }

    #[test]
    fn processing_status_and_counts_map_onto_the_batch_phases() {
        let counts = |p: u64, s: u64, e: u64, c: u64, x: u64| json!({"processing": p, "succeeded": s, "errored": e, "canceled": c, "expired": x});
        let url = json!("https://api.anthropic.com/v1/messages/batches/msgbatch_01/results");
        let running = status_of(batch("in_progress", counts(7, 2, 1, 0, 0), Value::Null)).unwrap();
        assert_eq!(
            (running.phase, running.total, running.completed, running.failed),
            (BatchPhase::InProgress, 10, 2, 1)
        );
        assert!(running.results.is_empty());
        let cases = [
            ("canceling", counts(8, 2, 0, 0, 0), BatchPhase::Cancelling),
            ("ended", counts(0, 9, 1, 0, 0), BatchPhase::Completed),
            ("ended", counts(0, 6, 1, 0, 3), BatchPhase::Expired),
            ("ended", counts(0, 6, 0, 4, 0), BatchPhase::Cancelled),
        ];
        for (word, counts, phase) in cases {
            let s = status_of(batch(word, counts, url.clone())).unwrap();
            assert_eq!((s.phase, s.total), (phase, 10), "{word}");
            // Results are read by id from base_url once the batch has ended.
            let expected: Vec<String> =
                if phase.ended() { vec!["msgbatch_01".into()] } else { Vec::new() };
            assert_eq!(s.results, expected);
        }
        let e = status_of(batch("validating", counts(1, 0, 0, 0, 0), Value::Null)).unwrap_err();
        assert!(e.to_string().contains("unknown processing_status `validating`"), "{e}");
    }

    #[test]
    fn result_lines_become_answers_failures_or_unprocessed_requests() {
        let message = json!({"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "spam"}]});
        let ok = json!({"custom_id": "a", "result": {"type": "succeeded", "message": message}});
        assert_eq!(line_outcome(&ok), LineOutcome::Answered { body: message.to_string() });

        let errored = |kind: &str| {
            json!({"custom_id": "b", "result": {"type": "errored", "error": {"type": "error",
                "error": {"type": kind, "message": "max_tokens: Field required"}}}})
        };
        let LineOutcome::Failed(e) = line_outcome(&errored("invalid_request_error")) else {
            panic!("a failure")
        };
        assert_eq!(
            (e.kind, e.status, e.message.as_str()),
            (ErrorKind::Http, Some(400), "max_tokens: Field required (invalid_request_error)")
        );
        assert!(!crate::backend::is_retryable(&e), "a bad request is not sent again");
        for kind in ["overloaded_error", "api_error"] {
            let LineOutcome::Failed(e) = line_outcome(&errored(kind)) else { panic!("{kind}") };
            assert!(crate::backend::is_retryable(&e), "{kind} goes into the next batch");
        }
        let LineOutcome::Failed(e) = line_outcome(&errored("something_new")) else { panic!() };
        assert_eq!((e.kind, e.status), (ErrorKind::ApiError, None));

        for (kind, word) in [("expired", "expired"), ("canceled", "canceled")] {
            let line = json!({"custom_id": "c", "result": {"type": kind}});
            let LineOutcome::Unprocessed { reason } = line_outcome(&line) else { panic!("{kind}") };
            assert!(reason.contains(word), "{reason}");
        }
        let odd = json!({"custom_id": "d", "result": {"type": "paused"}});
        assert!(
            matches!(line_outcome(&odd), LineOutcome::Failed(e) if e.kind == ErrorKind::MalformedResponse)
        );
    }

    #[test]
    fn the_key_is_trimmed_and_never_printed() {
        let http = crate::backend::OpenAiBackend::http_client().unwrap();
        let b =
            AnthropicBatch::new("http://x/v1/", Some(" sk-ant-k\n"), http, Duration::from_secs(1));
        let key = b.api_key.as_ref().unwrap();
        assert_eq!(key.to_str().unwrap(), "sk-ant-k");
        assert!(key.is_sensitive() && !format!("{key:?}").contains("sk-ant"));
        assert_eq!(b.url("/msgbatch_1/results"), "http://x/v1/messages/batches/msgbatch_1/results");
    }
}
