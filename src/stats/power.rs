//! Sample size and power for one proportion and for paired comparisons.

use super::normal::{as241, normal_cdf};
use super::{check_power, two_sided_z, StatsError};

/// Rounds a required sample size up. The 1e-12 relative slack keeps a value that is an integer
/// up to floating-point rounding (e.g. 626.0000000000001) from being bumped by one.
pub(super) fn ceil_count(n: f64) -> Result<u64, StatsError> {
    if !n.is_finite() || n > 9.007_199_254_740_992e15 {
        return Err(StatsError::SampleSizeOverflow(n));
    }
    Ok((n * (1.0 - 1e-12)).ceil().max(1.0) as u64)
}

pub(super) fn check_open_probability(name: &'static str, value: f64) -> Result<f64, StatsError> {
    if value.is_finite() && value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(StatsError::InvalidProbability { name, value })
    }
}

/// Items needed for a two-sided test of one proportion against `p0` to reach `power` when the
/// true accuracy is `p1`, at the given confidence (normal approximation):
///
/// ```text
/// n = ⌈((z_{1−α/2} √(p0 q0) + z_power √(p1 q1)) / (p1 − p0))²⌉
/// ```
///
/// This is the score-test form, with the null variance in the critical value and the
/// alternative variance in the power term (Lachin 1981, "Introduction to sample size
/// determination and power analysis for clinical trials", Controlled Clinical Trials 2:93–113);
/// the far rejection tail is ignored, as is standard. (The Wald form, which uses p1 q1 in both
/// places, gives 189 instead of 194 for the example below.) Check: p0 = 0.5, p1 = 0.6, power 0.8,
/// confidence 0.95 → 194. Both proportions must be strictly between 0 and 1 and differ.
pub fn sample_size_one_proportion(
    p0: f64,
    p1: f64,
    power: f64,
    confidence: f64,
) -> Result<u64, StatsError> {
    let z_a = two_sided_z(confidence)?;
    let z_b = as241(check_power(power)?);
    check_open_probability("p0", p0)?;
    check_open_probability("p1", p1)?;
    if p0 == p1 {
        return Err(StatsError::ZeroDifference);
    }
    let numerator = z_a * (p0 * (1.0 - p0)).sqrt() + z_b * (p1 * (1.0 - p1)).sqrt();
    if numerator <= 0.0 {
        // Only possible with power below 1/2: a single item already meets the target.
        return Ok(1);
    }
    ceil_count((numerator / (p1 - p0)).powi(2))
}

pub(super) fn check_paired_design(discordance: f64, difference: f64) -> Result<(), StatsError> {
    if !(discordance.is_finite() && discordance > 0.0 && discordance <= 1.0) {
        return Err(StatsError::InvalidProbability { name: "discordance", value: discordance });
    }
    if !difference.is_finite() {
        return Err(StatsError::InvalidProbability { name: "difference", value: difference });
    }
    if difference == 0.0 {
        return Err(StatsError::ZeroDifference);
    }
    // The discordant cells are (psi - delta)/2 and (psi + delta)/2; both must be >= 0.
    if difference.abs() > discordance {
        return Err(StatsError::DifferenceNotAchievable { discordance, difference });
    }
    Ok(())
}

/// Paired items needed for a two-sided McNemar test to detect an accuracy difference
/// `difference` (δ = p₂ − p₁, either sign) when a fraction `discordance` (ψ) of items are
/// discordant (exactly one classifier right):
///
/// ```text
/// n = ⌈((z_{1−α/2} √ψ + z_power √(ψ − δ²)) / δ)²⌉
/// ```
///
/// R. J. Connor (1987), "Sample size for testing differences in proportions for the
/// paired-sample design", Biometrics 43:207–211 (also Lachin 1992, Stat Med 11:1239–1251). The
/// formula targets the asymptotic McNemar test; the exact conditional test of
/// [`mcnemar_exact_p`] is more conservative: at Connor's n its exact power is 1–2.5 points below
/// the target in the cases printed by reference/gen_reference.py. Requires 0 < ψ ≤ 1 and 0 < |δ| ≤ ψ.
pub fn sample_size_paired(
    discordance: f64,
    difference: f64,
    power: f64,
    confidence: f64,
) -> Result<u64, StatsError> {
    let z_a = two_sided_z(confidence)?;
    let z_b = as241(check_power(power)?);
    check_paired_design(discordance, difference)?;
    let spread = (discordance - difference * difference).max(0.0).sqrt();
    let numerator = z_a * discordance.sqrt() + z_b * spread;
    if numerator <= 0.0 {
        return Ok(1);
    }
    ceil_count((numerator / difference).powi(2))
}

/// The smallest paired accuracy difference |δ| that `n` items detect with the given power and
/// confidence when a fraction `discordance` (ψ) of items are discordant: the inverse of
/// [`sample_size_paired`] (Connor 1987), so that
/// `sample_size_paired(ψ, detectable_difference_paired(n, ψ, …)?, …)? <= n`.
///
/// Solves √n·δ = z_{1−α/2}√ψ + z_power√(ψ − δ²) in closed form:
/// δ = (z_a √(ψ n) + z_b √(ψ (n + z_b² − z_a²))) / (n + z_b²).
/// Requires power ≥ 0.5 (where the equation has this single root) and fails with
/// [`StatsError::NoDetectableDifference`] when even δ = ψ is not detectable with n items.
pub fn detectable_difference_paired(
    n: u64,
    discordance: f64,
    power: f64,
    confidence: f64,
) -> Result<f64, StatsError> {
    let z_a = two_sided_z(confidence)?;
    let power = check_power(power)?;
    if power < 0.5 {
        return Err(StatsError::InvalidPower(power));
    }
    let z_b = as241(power);
    if !(discordance.is_finite() && discordance > 0.0 && discordance <= 1.0) {
        return Err(StatsError::InvalidProbability { name: "discordance", value: discordance });
    }
    if n == 0 {
        return Err(StatsError::TooFewItems { needed: 1, actual: 0 });
    }
    let nf = n as f64;
    let radicand = discordance * (nf + z_b * z_b - z_a * z_a);
    if radicand < 0.0 {
        return Err(StatsError::NoDetectableDifference { n });
    }
    let delta = (z_a * (discordance * nf).sqrt() + z_b * radicand.sqrt()) / (nf + z_b * z_b);
    if delta > discordance {
        return Err(StatsError::NoDetectableDifference { n });
    }
    Ok(delta)
}

/// Approximate power of the two-sided McNemar test with `n` paired items, discordant proportion
/// ψ and difference δ (Connor 1987): Φ((√n |δ| − z_{1−α/2} √ψ) / √(ψ − δ²)).
pub fn power_paired(
    n: u64,
    discordance: f64,
    difference: f64,
    confidence: f64,
) -> Result<f64, StatsError> {
    let z_a = two_sided_z(confidence)?;
    check_paired_design(discordance, difference)?;
    let shift = (n as f64).sqrt() * difference.abs() - z_a * discordance.sqrt();
    let spread = (discordance - difference * difference).max(0.0).sqrt();
    if spread == 0.0 {
        // psi = |delta| = 1: every item is discordant in the same direction.
        return Ok(if shift > 0.0 { 1.0 } else { 0.0 });
    }
    Ok(normal_cdf(shift / spread))
}
