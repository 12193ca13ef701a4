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

/// A backend's in-flight limit that adapts to rate limiting (AIMD, as TCP does): a 429 halves
/// it (never below 1), and it grows back by one after as many answers in a row as the limit,
/// never above the configured concurrency. Only the first 429 of a window cuts: a request that
/// started before the last cut says nothing about the new limit.
pub struct AdaptiveConcurrency {
    semaphore: std::sync::Arc<tokio::sync::Semaphore>,
    max: usize,
    state: std::sync::Mutex<Adaptive>,
}

struct Adaptive {
    limit: usize,
    /// Answers since the limit last changed.
    successes: usize,
    /// Permits to take out of circulation as requests in flight finish.
    owed: usize,
    /// Cuts so far: a request remembers the count it started under.
    window: u64,
}

impl AdaptiveConcurrency {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        AdaptiveConcurrency {
            semaphore: std::sync::Arc::new(tokio::sync::Semaphore::new(max)),
            max,
            state: std::sync::Mutex::new(Adaptive { limit: max, successes: 0, owed: 0, window: 0 }),
        }
    }

    /// Waits for a place within the limit; `None` when the semaphore is closed.
    pub async fn acquire(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.semaphore.clone().acquire_owned().await.ok()
    }

    /// Gives a place back, unless the limit was cut while it was in use.
    pub fn release(&self, permit: tokio::sync::OwnedSemaphorePermit) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.owed > 0 {
            s.owed -= 1;
            permit.forget();
        }
    }

    /// The limit now, and the window a request starting now belongs to.
    pub fn current(&self) -> (usize, u64) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (s.limit, s.window)
    }

    /// A request of `window` was rate limited: halve the limit, once per window.
    pub fn rate_limited(&self, window: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if window != s.window || s.limit == 1 {
            return;
        }
        let cut = s.limit - (s.limit / 2).max(1);
        s.limit -= cut;
        s.successes = 0;
        s.window += 1;
        let forgotten = self.semaphore.forget_permits(cut);
        s.owed += cut - forgotten;
    }

    /// A request was answered: after `limit` answers, one more place.
    pub fn succeeded(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.limit >= self.max {
            return;
        }
        s.successes += 1;
        if s.successes >= s.limit {
            s.successes = 0;
            s.limit += 1;
            if s.owed > 0 {
                s.owed -= 1;
            } else {
                self.semaphore.add_permits(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_429_halves_the_limit_and_answers_grow_it_back_one_at_a_time() {
        let c = AdaptiveConcurrency::new(16);
        let held: Vec<_> = futures::future::join_all((0..16).map(|_| c.acquire())).await;
        let (limit, window) = c.current();
        assert_eq!(limit, 16);
        c.rate_limited(window);
        c.rate_limited(window); // the same window: one cut
        assert_eq!(c.current().0, 8);
        c.rate_limited(c.current().1);
        c.rate_limited(c.current().1);
        c.rate_limited(c.current().1);
        c.rate_limited(c.current().1);
        assert_eq!(c.current().0, 1, "never below 1");
        // Every permit was in use: they leave circulation as they come back.
        for permit in held.into_iter().flatten() {
            c.release(permit);
        }
        assert_eq!(c.semaphore.available_permits(), 1);
        for _ in 0..1 {
            c.succeeded();
        }
        assert_eq!(c.current().0, 2);
        for _ in 0..2 {
            c.succeeded();
        }
        assert_eq!(c.current().0, 3);
        assert_eq!(c.semaphore.available_permits(), 3);
        for _ in 0..1000 {
            c.succeeded();
        }
        assert_eq!(c.current().0, 16, "never above the configured concurrency");
        assert_eq!(c.semaphore.available_permits(), 16);
    }

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
