//! Statistics for evaluation reports: interval estimates for accuracies and paired accuracy
//! differences, exact McNemar tests, Holm's multiplicity adjustment, seeded (cluster) bootstrap
//! intervals, clustered standard errors and sample-size planning.
//!
//! Conventions used throughout:
//! * Every public function validates its arguments and returns [`StatsError`] instead of
//!   panicking or returning NaN. A `confidence` is a two-sided level in the open interval (0, 1).
//! * Proportion intervals always satisfy `0 <= low <= estimate <= high <= 1`; difference intervals
//!   satisfy `-1 <= low <= estimate <= high <= 1`. Final clamps only absorb floating-point rounding.
//! * `n == 0` (no items) gives the vacuous interval: estimate 0 with `[0, 1]` for a proportion and
//!   `[-1, 1]` for a paired difference. Callers that render reports should say "no items" rather
//!   than print the estimate.
//! * Randomness comes only from [`ChaCha8Rng::seed_from_u64`], so a seed reproduces the same
//!   bootstrap resamples on every platform (for the same rand 0.9 / rand_chacha 0.9 versions).

use serde::{Deserialize, Serialize};

mod binomial;
mod bootstrap;
mod clustered;
pub mod decision;
mod normal;
mod paired;
mod power;
mod proportion;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use bootstrap::*;
pub use clustered::*;
pub use normal::*;
pub use paired::*;
pub use power::*;
pub use proportion::*;

/// Why a statistic could not be computed. Every public function in this module reports invalid
/// input through this type rather than panicking or returning NaN.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// A confidence level outside the open interval (0, 1), or not finite.
    #[error("confidence level must be strictly between 0 and 1, got {0}")]
    InvalidConfidence(f64),
    /// A power outside the open interval (0, 1) (or below 0.5 where a function requires that).
    #[error("power must be strictly between 0 and 1, got {0}")]
    InvalidPower(f64),
    /// A probability or proportion outside its allowed range; `name` says which argument.
    #[error("{name} is not a valid probability here: {value}")]
    InvalidProbability { name: &'static str, value: f64 },
    /// More successes than trials.
    #[error("{successes} successes exceed {trials} trials")]
    SuccessesExceedTrials { successes: u64, trials: u64 },
    /// Counts whose total does not fit in a `u64`.
    #[error("counts overflow a 64-bit total")]
    CountOverflow,
    /// Two per-item slices that must have the same length do not.
    #[error("{name} has {actual} entries, expected {expected}")]
    LengthMismatch { name: &'static str, expected: usize, actual: usize },
    /// A per-item value that is NaN or infinite.
    #[error("{name}[{index}] is NaN or infinite")]
    NonFiniteValue { name: &'static str, index: usize },
    /// Fewer items than the method needs.
    #[error("need at least {needed} items, got {actual}")]
    TooFewItems { needed: usize, actual: usize },
    /// Fewer clusters than the method needs.
    #[error("need at least {needed} clusters, got {actual}")]
    TooFewClusters { needed: usize, actual: usize },
    /// A bootstrap configuration asking for fewer than two resamples.
    #[error("bootstrap needs at least 2 resamples, got {0}")]
    TooFewResamples(usize),
    /// The bootstrap statistic is NaN or infinite on the observed (un-resampled) data.
    #[error("the statistic is undefined on the observed data (got {0})")]
    UndefinedStatistic(f64),
    /// Fewer than two bootstrap resamples gave a finite statistic.
    #[error("only {defined} of {resamples} bootstrap resamples gave a finite statistic")]
    TooFewDefinedResamples { defined: usize, resamples: usize },
    /// A planned difference of exactly zero, which no sample size can detect.
    #[error("a difference of zero cannot be detected at any sample size")]
    ZeroDifference,
    /// A paired difference larger in size than the discordant proportion allows (|delta| > psi).
    #[error("a paired difference of {difference} is impossible with discordant proportion {discordance} (need |difference| <= discordance)")]
    DifferenceNotAchievable { discordance: f64, difference: f64 },
    /// A computed sample size too large to represent exactly (above 2^53).
    #[error("required sample size {0:e} is too large to represent")]
    SampleSizeOverflow(f64),
    /// No difference within the achievable range reaches the requested power with `n` items.
    #[error("with {n} items no achievable difference reaches the requested power")]
    NoDetectableDifference { n: u64 },
}

/// Which single-proportion interval to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntervalMethod {
    /// Wilson (1927) score interval: close to nominal coverage on average, the default.
    Wilson,
    /// Clopper & Pearson (1934) "exact" interval: coverage never below nominal, wider.
    #[serde(rename = "exact", alias = "clopper-pearson")]
    ClopperPearson,
}

/// A point estimate with a two-sided interval around it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// `high - low`.
    pub fn width(&self) -> f64 {
        self.high - self.low
    }

    /// Whether `value` lies in the closed interval `[low, high]`.
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// Orders and bounds an interval. Used only to absorb floating-point rounding (a bound that is
/// mathematically inside its range but lands one ulp outside); it never moves a bound by more.
fn tidy(estimate: f64, low: f64, high: f64, floor: f64, ceiling: f64) -> Interval {
    let estimate = estimate.clamp(floor, ceiling);
    Interval { estimate, low: low.clamp(floor, estimate), high: high.clamp(estimate, ceiling) }
}

fn check_confidence(confidence: f64) -> Result<f64, StatsError> {
    if confidence.is_finite() && confidence > 0.0 && confidence < 1.0 {
        Ok(confidence)
    } else {
        Err(StatsError::InvalidConfidence(confidence))
    }
}

fn check_power(power: f64) -> Result<f64, StatsError> {
    if power.is_finite() && power > 0.0 && power < 1.0 {
        Ok(power)
    } else {
        Err(StatsError::InvalidPower(power))
    }
}

/// The two-sided critical value z_{1-alpha/2} for a confidence level.
fn two_sided_z(confidence: f64) -> Result<f64, StatsError> {
    let alpha = 1.0 - check_confidence(confidence)?;
    // Evaluating the lower tail and negating keeps full relative precision in alpha/2, which
    // 1 - alpha/2 would round away at confidence levels such as 0.999999.
    Ok(-as241(alpha / 2.0))
}
