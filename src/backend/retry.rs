//! Retrying: which failures are worth another attempt, and how long to wait before it —
//! exponential backoff with full jitter, or the server's `Retry-After` when it gives one. The
//! runner executes the loop; this module is the one place that decides.

use std::time::Duration;

use rand::Rng;

use super::{BackendError, ErrorKind};

/// How a backend's failed requests are retried. The defaults apply to every backend that does
/// not set its own `max_attempts` or `max_retry_delay_secs`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before another attempt after failed attempt number `attempt` (1-based), or
    /// `None` when there is to be none: the error is not transient, or the attempts are spent.
    pub fn next_delay(&self, attempt: u32, error: &BackendError) -> Option<Duration> {
        (is_retryable(error) && attempt < self.max_attempts).then(|| self.delay(attempt, error))
    }

    /// How long to wait after failed attempt number `attempt` (1-based). A server's requested wait
    /// is honoured up to `max_delay`; otherwise the wait is uniform in [0, min(max, base·2^(n−1))]
    /// ("full jitter"), which spreads out clients that failed together.
    pub fn delay(&self, attempt: u32, error: &BackendError) -> Duration {
        if let Some(wait) = error.retry_after {
            return wait.min(self.max_delay);
        }
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        if cap.is_zero() {
            return cap;
        }
        Duration::from_secs_f64(rand::rng().random_range(0.0..=cap.as_secs_f64()))
    }
}

/// Whether another attempt may succeed: rate limits, overload, server faults and transport
/// failures are transient; other client errors (400, 401, 404, …) will fail the same way.
pub fn is_retryable(error: &BackendError) -> bool {
    match error.kind {
        ErrorKind::Http => matches!(error.status, Some(408 | 409 | 429) | Some(500..=599)),
        ErrorKind::Timeout
        | ErrorKind::Connect
        | ErrorKind::Body
        | ErrorKind::MalformedResponse => true,
        ErrorKind::ApiError | ErrorKind::Internal | ErrorKind::NotSent | ErrorKind::Cancelled => {
            false
        }
    }
}

/// Whether `error` ends its backend at once, whatever the other requests would get: a wrong key
/// or a forbidden one (401, 403), a wrong address or model (404), a host name that does not
/// resolve. A refused connection ends it too, but only before the backend's first answer
/// (`answered_before`): after one, the server is restarting, and that is retried.
pub fn ends_backend(error: &BackendError, answered_before: bool) -> bool {
    match error.kind {
        ErrorKind::Http => matches!(error.status, Some(401 | 403 | 404)),
        ErrorKind::Connect => {
            let message = error.message.to_ascii_lowercase();
            message.contains("dns error")
                || message.contains("failed to lookup address")
                || (!answered_before && message.contains("connection refused"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_its_cap_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let error = BackendError::new(ErrorKind::Timeout, "slow");
        for attempt in 1..10 {
            let cap = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(policy.delay(attempt, &error) <= cap);
        }
        let mut limited = error.clone();
        limited.retry_after = Some(Duration::from_millis(300));
        assert_eq!(policy.delay(1, &limited), Duration::from_millis(300));
        limited.retry_after = Some(Duration::from_secs(100));
        assert_eq!(policy.delay(1, &limited), Duration::from_secs(1));
    }

    #[test]
    fn only_transient_failures_are_retried_and_only_while_attempts_remain() {
        let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        let http = |status| BackendError {
            status: Some(status),
            ..BackendError::new(ErrorKind::Http, "")
        };
        // 529 is Anthropic's "overloaded".
        for status in [408, 409, 429, 500, 503, 529, 599] {
            assert!(is_retryable(&http(status)), "{status}");
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(!is_retryable(&http(status)), "{status}");
        }
        assert!(!is_retryable(&BackendError::new(ErrorKind::ApiError, "")));
        assert!(!is_retryable(&BackendError::new(ErrorKind::Internal, "")));
        let timeout = BackendError::new(ErrorKind::Timeout, "");
        assert!(policy.next_delay(2, &timeout).is_some());
        assert!(policy.next_delay(3, &timeout).is_none(), "the third attempt was the last");
        assert!(policy.next_delay(1, &http(401)).is_none());
    }

    #[test]
    fn wrong_keys_addresses_and_dead_servers_end_a_backend() {
        let http = |status| BackendError {
            status: Some(status),
            ..BackendError::new(ErrorKind::Http, "")
        };
        for status in [401, 403, 404] {
            assert!(ends_backend(&http(status), true), "{status}");
        }
        for status in [400, 422, 429, 500] {
            assert!(!ends_backend(&http(status), false), "{status}");
        }
        let refused = BackendError::new(
            ErrorKind::Connect,
            "error sending request: tcp connect error: Connection refused (os error 111)",
        );
        assert!(ends_backend(&refused, false));
        assert!(!ends_backend(&refused, true), "a server restarting mid-run is waited for");
        let dns = BackendError::new(ErrorKind::Connect, "dns error: failed to lookup address");
        assert!(ends_backend(&dns, true));
        assert!(!ends_backend(&BackendError::new(ErrorKind::Connect, "connection reset"), false));
    }
}
