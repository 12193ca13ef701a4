//! Requests-per-minute and tokens-per-minute limits: a token bucket per backend and limit.
//!
//! The bucket holds at most one second's worth (at least one request, or one request's tokens),
//! so a run starts at the limited pace instead of spending a whole minute's allowance in a burst
//! that the provider would answer with 429s.

use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Mutex;

pub struct RateLimiter {
    bucket: Mutex<Bucket>,
}

struct Bucket {
    per_second: f64,
    capacity: f64,
    available: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` units a minute.
    pub fn per_minute(per_minute: f64) -> Self {
        let per_second = per_minute / 60.0;
        let capacity = per_second.max(1.0);
        RateLimiter {
            bucket: Mutex::new(Bucket {
                per_second,
                capacity,
                available: capacity,
                refilled: Instant::now(),
            }),
        }
    }

    /// Waits until `units` are available and takes them. A request larger than the bucket waits
    /// for a full bucket and then overdraws it, so it is slowed, never refused.
    pub async fn acquire(&self, units: f64) {
        loop {
            let wait = {
                let mut b = self.bucket.lock().await;
                let now = Instant::now();
                let elapsed = now.duration_since(b.refilled).as_secs_f64();
                b.available = (b.available + elapsed * b.per_second).min(b.capacity);
                b.refilled = now;
                let needed = units.min(b.capacity);
                if b.available >= needed {
                    b.available -= units;
                    return;
                }
                Duration::from_secs_f64((needed - b.available) / b.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_requests_at_the_limit() {
        // 120 a minute = 2 a second, with a bucket of 2: 10 requests take about 4 s.
        let limiter = RateLimiter::per_minute(120.0);
        let started = tokio::time::Instant::now();
        for _ in 0..10 {
            limiter.acquire(1.0).await;
        }
        let took = started.elapsed().as_secs_f64();
        assert!((3.9..=4.1).contains(&took), "took {took} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_larger_than_the_bucket_is_slowed_not_refused() {
        let limiter = RateLimiter::per_minute(600.0); // 10 tokens a second
        limiter.acquire(50.0).await;
        let started = tokio::time::Instant::now();
        limiter.acquire(10.0).await;
        // The overdraft of 40 tokens, then 10 more: 5 s.
        let took = started.elapsed().as_secs_f64();
        assert!((4.9..=5.1).contains(&took), "took {took} s");
    }
}
