//! The retry policy: exponential backoff with full jitter, and the server's `Retry-After` when
//! it gives one.

use std::time::Duration;

use rand::Rng;

use crate::backend::BackendError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ErrorKind;

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
}
