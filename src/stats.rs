//! Placeholder until the statistics engine lands.
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

pub fn wilson_interval(successes: u64, n: u64, confidence: f64) -> Interval {
    if n == 0 {
        return Interval { estimate: 0.0, low: 0.0, high: 1.0 };
    }
    let z = statrs::distribution::ContinuousCDF::inverse_cdf(&statrs::distribution::Normal::standard(), 1.0 - (1.0 - confidence) / 2.0);
    let n = n as f64;
    let p = successes as f64 / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    Interval { estimate: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0) }
}
