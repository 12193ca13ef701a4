//! What every HTTP backend reads off a failed exchange, whatever the API: the wait a server asks
//! for, the message inside an error body, and what kind of transport failure a `reqwest` error
//! is. The OpenAI-compatible and the Anthropic backends share these, so a 429 or a reset
//! connection is classified the same way (and retried by the same policy) for both.

use std::time::Duration;

use super::{BackendError, ErrorKind};
use crate::text::excerpt;

/// The wait a server asks for: `retry-after-ms`, or `Retry-After` in (fractional) seconds or as
/// an HTTP date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = crate::time::parse_http_date(value)?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// A transport failure (no HTTP status): a timeout, a refused or reset connection, a body cut
/// off. The message keeps the whole source chain, since hyper's top-level text ("error sending
/// request") says nothing on its own.
pub(crate) fn transport_error(e: &reqwest::Error) -> BackendError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_body() || e.is_decode() {
        ErrorKind::Body
    } else if e.is_request() {
        // Reset or closed connections surface as request errors in hyper.
        ErrorKind::Connect
    } else {
        ErrorKind::Internal
    };
    BackendError::new(kind, error_chain(e))
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The message of an error body in any of the shapes servers use: OpenAI's and Anthropic's
/// `{"error": {"message": …}}` (Anthropic wraps it in `{"type": "error", …}`), vLLM's
/// `{"object": "error", "message": …}`, Ollama's `{"error": "…"}`, or plain text.
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        let message = value
            .pointer("/error/message")
            .or_else(|| value.get("message"))
            .or_else(|| value.get("error"))
            .or_else(|| value.get("detail"));
        if let Some(serde_json::Value::String(m)) = message {
            return m.clone();
        }
    }
    excerpt(body, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_fractions_milliseconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", "0.25".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn anthropic_error_bodies_keep_their_message() {
        let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        assert_eq!(error_message(overloaded), "Overloaded");
    }
}
