//! Decisions read from intervals: classifying a paired difference against a margin, the number of
//! items that would settle a comparison or a threshold, intervals for repeated sampling of the
//! same items that never collapse to zero width, and the confidence level for a family of
//! intervals.
//!
//! Differences here are always **first minus second** (positive: the first is better), unlike
//! [`paired_difference_interval`], which returns second minus first; [`first_minus_second`]
//! converts. Every function is pure and validates its arguments like the rest of
//! [`crate::stats`].

use serde::{Deserialize, Serialize};

use super::{
    as241, ceil_count, check_confidence, check_counts, check_power, paired_difference_interval,
    sample_size_one_proportion, tidy, two_sided_z, Interval, PairedCounts, StatsError,
};

// =================================================================================================
// Decisions against a margin
// =================================================================================================

/// What an interval for the difference `first − second` says, given a margin m ≥ 0 below which
/// a difference does not matter.
///
/// The regions are those of the CONSORT extension for non-inferiority and equivalence trials
/// (Piaggio et al. 2012, JAMA 308:2594–2604, Figure 1) with the interval for first − second
/// placed against −m, 0 and m:
///
/// ```text
///                        -m         0         m
/// Better                  :         : (====)  :         low > 0
/// Equivalent              : (====)  :         :         -m < low <= 0, high < m
///                         :     (=======)     :
/// NotWorse                :    (==================)     -m < low <= 0, high >= m
/// Worse           (===========)     :         :         low <= -m, high < 0
/// Inconclusive        (=================)     :         low <= -m, high >= 0
/// ```
///
/// With a two-sided interval at confidence c, each bound is a one-sided test at level (1 − c)/2:
/// `Better` and `Worse` reject equality, `NotWorse` is a non-inferiority test at margin m (ICH E9,
/// 1998, §3.3.2 and §5.5: a two-sided 95% interval whose lower bound clears −m), and
/// `Equivalent` is the two one-sided tests procedure (Schuirmann 1987, J. Pharmacokinetics and
/// Biopharmaceutics 15:657–680) at level (1 − c)/2. With m = 0 only `Better`, `Worse` and
/// `Inconclusive` occur.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// The whole interval is above 0: the first is detectably better.
    Better,
    /// The whole interval is below 0 and reaches −m or beyond: the first is detectably worse,
    /// possibly by more than the margin.
    Worse,
    /// The whole interval lies strictly between −m and m. This includes intervals entirely below
    /// 0 but above −m: detectably worse, but by less than the margin.
    Equivalent,
    /// The interval starts above −m but reaches m or beyond: the first is not worse by the margin,
    /// and may be better by more than it.
    NotWorse,
    /// The interval reaches −m (or beyond) and 0 (or beyond): more items are needed.
    Inconclusive,
}

impl Decision {
    /// Whether the first was shown not worse than the second by more than the margin:
    /// true for [`Decision::Better`], [`Decision::Equivalent`] and [`Decision::NotWorse`].
    pub fn is_not_worse(self) -> bool {
        matches!(self, Decision::Better | Decision::Equivalent | Decision::NotWorse)
    }

    /// A short phrase for reports ("the first is …").
    pub fn phrase(self) -> &'static str {
        match self {
            Decision::Better => "better",
            Decision::Worse => "worse",
            Decision::Equivalent => "equivalent within the margin",
            Decision::NotWorse => "not worse than the margin",
            Decision::Inconclusive => "inconclusive",
        }
    }
}

fn check_margin(margin: f64) -> Result<f64, StatsError> {
    if margin.is_finite() && (0.0..1.0).contains(&margin) {
        Ok(margin)
    } else {
        Err(StatsError::InvalidProbability { name: "margin", value: margin })
    }
}

/// Classifies the interval `[difference.low, difference.high]` for `first − second` against the
/// margin m; see [`Decision`] for the regions. Each boundary belongs to the less favourable
/// side: low = 0 is not `Better`, low = −m is neither `Equivalent` nor `NotWorse`, high = m is
/// not `Equivalent` (it is `NotWorse` when low > −m) and high = 0 is not `Worse`.
///
/// The margin must satisfy 0 ≤ m < 1 and the bounds must be finite with low ≤ high; otherwise
/// [`StatsError::InvalidProbability`] names the offending value. The estimate is not used.
pub fn classify(difference: &Interval, margin: f64) -> Result<Decision, StatsError> {
    let m = check_margin(margin)?;
    let Interval { low, high, .. } = *difference;
    if !low.is_finite() {
        return Err(StatsError::InvalidProbability { name: "difference.low", value: low });
    }
    if !high.is_finite() || high < low {
        return Err(StatsError::InvalidProbability { name: "difference.high", value: high });
    }
    // The tests are ordered so that each region is reached only when the earlier ones failed;
    // together they partition every interval (low ≤ 0 from the second test on).
    Ok(if low > 0.0 {
        Decision::Better
    } else if low > -m {
        if high < m {
            Decision::Equivalent
        } else {
            Decision::NotWorse
        }
    } else if high < 0.0 {
        Decision::Worse
    } else {
        Decision::Inconclusive
    })
}

/// The interval for the paired accuracy difference **first minus second**: Newcombe's interval
/// from [`paired_difference_interval`] (which is second minus first) reflected through 0.
pub fn first_minus_second(counts: &PairedCounts, confidence: f64) -> Result<Interval, StatsError> {
    let d = paired_difference_interval(counts, confidence)?;
    Ok(Interval { estimate: -d.estimate, low: -d.high, high: -d.low })
}

// =================================================================================================
// Items needed to settle a comparison or a threshold
// =================================================================================================

/// The observed paired design of a 2×2 table: the discordant proportion ψ = (b + c)/n and the
/// difference δ = (b − c)/n, **first minus second** (b: only the first right, c: only the second
/// right). These are the inputs of [`items_to_show_not_worse`]. No items gives
/// [`StatsError::TooFewItems`].
pub fn paired_design(counts: &PairedCounts) -> Result<(f64, f64), StatsError> {
    let n = counts.total()?;
    if n == 0 {
        return Err(StatsError::TooFewItems { needed: 1, actual: 0 });
    }
    let (b, c, nf) = (counts.only_first as f64, counts.only_second as f64, n as f64);
    Ok(((b + c) / nf, (b - c) / nf))
}

/// The restricted maximum-likelihood discordant proportion ψ̃ under the non-inferiority null
/// δ = −m, evaluated at the expected cell proportions p₁₀ = (ψ + δ)/2 (only the first right) and
/// p₀₁ = (ψ − δ)/2 (only the second right).
///
/// Under the null, p₁₀ = x − m with x = p₀₁; maximising p₁₀ ln(x − m) + p₀₁ ln x +
/// (1 − ψ) ln(1 − 2x + m) gives 2x² − Bx + C = 0 with B = ψ(1 + m) + 2m(p₀₁ + 1 − ψ) and
/// C = p₀₁ m(1 + m) (Nam 1997, Biometrics 53:1422–1430; Tango 1998, Stat Med 17:891–908, in
/// the orientation used here). The score equation is decreasing on the admissible range
/// m ≤ x ≤ (1 + m)/2 and the quadratic changes sign from − to + there, so the larger root is
/// the maximum. ψ̃ = 2x − m.
fn restricted_discordance(discordance: f64, difference: f64, margin: f64) -> f64 {
    let (psi, m) = (discordance, margin);
    let p01 = (psi - difference) / 2.0;
    let b = psi * (1.0 + m) + 2.0 * m * (p01 + 1.0 - psi);
    let c = p01 * m * (1.0 + m);
    let x = (b + (b * b - 8.0 * c).max(0.0).sqrt()) / 4.0;
    // The clamp only absorbs rounding at the ends of the admissible range.
    2.0 * x.clamp(m, (1.0 + m) / 2.0) - m
}

/// Paired items needed for the lower bound of the two-sided `confidence` interval for
/// `first − second` to clear −m (a one-sided non-inferiority test at level (1 − confidence)/2)
/// with probability `power`, if the true difference were `difference` (δ) with a fraction
/// `discordance` (ψ) of items discordant — typically the values observed so far, from
/// [`paired_design`]. `None` when δ ≤ −m: no number of items would show it.
///
/// The score-test form for paired proportions of Nam (1997), "Establishing equivalence of two
/// treatments and sample size requirements in matched-pairs design", Biometrics 53:1422–1430
/// (also Liu, Hsueh, Hsieh & Chen 2002, Stat Med 21:231–245):
///
/// ```text
/// n = ⌈((z_{1−α/2} σ₀ + z_power σ₁) / (δ + m))²⌉,   σ₁² = ψ − δ²,   σ₀² = ψ̃ − m²
/// ```
///
/// where σ₁² is the variance of one item's difference (−1, 0 or 1) at the planned values and σ₀²
/// the same under the null δ = −m, with ψ̃ the restricted maximum-likelihood discordance (see
/// `restricted_discordance`). With m = 0 it reduces to Connor's McNemar formula
/// ([`super::sample_size_paired`]). The null variance keeps the answer sensible when the planned
/// variance vanishes (no discordance, or all discordant items favouring the first), where the
/// Wald form n = (z_{1−α/2} + z_power)²(ψ − δ²)/(δ + m)² would answer a single item.
///
/// This is a normal approximation to the score test; the decision itself reads Newcombe's
/// interval ([`first_minus_second`]). The module's tests check by simulation that at the returned
/// n the Newcombe lower bound clears −m in about `power` of runs.
///
/// Requires 0 ≤ ψ ≤ 1, |δ| ≤ ψ, 0 ≤ m < 1, power and confidence in (0, 1).
pub fn items_to_show_not_worse(
    discordance: f64,
    difference: f64,
    margin: f64,
    power: f64,
    confidence: f64,
) -> Result<Option<u64>, StatsError> {
    let z_a = two_sided_z(confidence)?;
    let z_b = as241(check_power(power)?);
    let m = check_margin(margin)?;
    if !(discordance.is_finite() && (0.0..=1.0).contains(&discordance)) {
        return Err(StatsError::InvalidProbability { name: "discordance", value: discordance });
    }
    if !difference.is_finite() {
        return Err(StatsError::InvalidProbability { name: "difference", value: difference });
    }
    if difference.abs() > discordance {
        return Err(StatsError::DifferenceNotAchievable { discordance, difference });
    }
    if difference <= -m {
        return Ok(None);
    }
    let null_sd = (restricted_discordance(discordance, difference, m) - m * m).max(0.0).sqrt();
    let planned_sd = (discordance - difference * difference).max(0.0).sqrt();
    let numerator = z_a * null_sd + z_b * planned_sd;
    if numerator <= 0.0 {
        // Only possible with power below 1/2: a single item already meets the target.
        return Ok(Some(1));
    }
    ceil_count((numerator / (difference + m)).powi(2)).map(Some)
}

/// Items needed for the lower bound of the two-sided `confidence` Wilson interval of one accuracy
/// to clear `threshold` with probability `power` when the true accuracy is `accuracy`. `None`
/// when accuracy ≤ threshold.
///
/// The Wilson interval inverts the score test, so its lower bound clears p₀ exactly when the
/// one-sided score test of p ≤ p₀ rejects at level (1 − confidence)/2; the items needed are
/// therefore [`sample_size_one_proportion`]`(threshold, accuracy, …)` (Lachin 1981, which uses
/// z_{1−α/2} and ignores the far tail, i.e. this one-sided test). At accuracy = 1 every run is
/// perfect, power plays no part, and the answer is exact: the smallest n with
/// n/(n + z²) > threshold, i.e. n > z²·threshold/(1 − threshold).
///
/// Requires 0 < threshold < 1, 0 ≤ accuracy ≤ 1, power and confidence in (0, 1).
pub fn items_to_clear_threshold(
    accuracy: f64,
    threshold: f64,
    power: f64,
    confidence: f64,
) -> Result<Option<u64>, StatsError> {
    let z = two_sided_z(confidence)?;
    check_power(power)?;
    if !(threshold.is_finite() && threshold > 0.0 && threshold < 1.0) {
        return Err(StatsError::InvalidProbability { name: "threshold", value: threshold });
    }
    if !(accuracy.is_finite() && (0.0..=1.0).contains(&accuracy)) {
        return Err(StatsError::InvalidProbability { name: "accuracy", value: accuracy });
    }
    if accuracy <= threshold {
        return Ok(None);
    }
    if accuracy == 1.0 {
        let bound = z * z * threshold / (1.0 - threshold);
        if !bound.is_finite() || bound >= 9.007_199_254_740_992e15 {
            return Err(StatsError::SampleSizeOverflow(bound));
        }
        return Ok(Some(bound.floor() as u64 + 1));
    }
    sample_size_one_proportion(threshold, accuracy, power, confidence).map(Some)
}

/// Items needed for the upper bound of the two-sided `confidence` Wilson interval of a rate (an
/// error rate, say) to stay below `ceiling` with probability `power` when the true rate is
/// `rate`. `None` when rate ≥ ceiling. The Wilson interval is symmetric under p ↦ 1 − p, so this
/// is [`items_to_clear_threshold`]`(1 − rate, 1 − ceiling, …)`.
pub fn items_to_stay_below(
    rate: f64,
    ceiling: f64,
    power: f64,
    confidence: f64,
) -> Result<Option<u64>, StatsError> {
    if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
        return Err(StatsError::InvalidProbability { name: "rate", value: rate });
    }
    if !(ceiling.is_finite() && ceiling > 0.0 && ceiling < 1.0) {
        return Err(StatsError::InvalidProbability { name: "ceiling", value: ceiling });
    }
    items_to_clear_threshold(1.0 - rate, 1.0 - ceiling, power, confidence)
}

// =================================================================================================
// Proportions from repeated sampling of the same items
// =================================================================================================

/// An accuracy from several samples per item, with an interval that accounts for the samples of
/// one item being correlated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClusteredProportion {
    /// The pooled accuracy (correct samples over all samples) and its interval.
    pub interval: Interval,
    /// Variance of the pooled accuracy relative to independent samples, as used (after the
    /// clamps described in [`clustered_proportion_interval`]).
    pub design_effect: f64,
    /// Samples divided by the design effect: the number of independent samples the data are
    /// worth.
    pub effective_sample_size: f64,
    /// Items with at least one sample.
    pub clusters: usize,
    /// Samples over all items.
    pub samples: u64,
}

/// Lower Wilson limit for real-valued counts: `successes` and `failures` out of
/// `n = successes + failures`. The same arithmetic, in the same order, as the integer
/// `wilson_lower` in the parent module, so that integer inputs give bit-identical limits.
fn wilson_lower_real(successes: f64, failures: f64, n: f64, z: f64) -> f64 {
    if successes <= 0.0 {
        return 0.0;
    }
    let p = successes / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let var = successes * failures / (n * n * n);
    let half = z * (var + z2 / (4.0 * n * n)).sqrt() / denom;
    p * p / (denom * (center + half))
}

/// The design effect Var_clustered / Var_binomial of the pooled accuracy, computed after adding
/// two pseudo-items of `pseudo` samples each, one always right and one always wrong (`pseudo` 0:
/// the data alone, which then needs 0 < successes < samples and samples ≥ 2).
///
/// Miller (2024, Appendix A): with d_i = s_i − p, Var_clustered = (1/N²) Σ_k (Σ_{i∈k} d_i)² +
/// Σ_i d_i² / (N²(N − 1)), which is the square of the standard error of
/// [`super::clustered_mean_interval`] (tested). For 0/1 scores Σ_{i∈k} d_i = c_k − m_k p and
/// Σ_i d_i² = N p(1 − p), so dividing by p(1 − p)/N gives
/// deff = Σ_k (c_k − m_k p)² / (N p (1 − p)) + 1/(N − 1).
fn augmented_design_effect(
    counts: &[(u64, u64)],
    successes: u64,
    samples: u64,
    pseudo: f64,
) -> f64 {
    let n = samples as f64 + 2.0 * pseudo;
    let p = (successes as f64 + pseudo) / n;
    let q = 1.0 - p;
    let real: f64 = counts
        .iter()
        .map(|&(c, m)| {
            let d = c as f64 - m as f64 * p;
            d * d
        })
        .sum();
    // The always-right item deviates by pseudo·q, the always-wrong one by −pseudo·p.
    let between = real + pseudo * pseudo * (q * q + p * p);
    between / (n * p * q) + 1.0 / (n - 1.0)
}

/// Interval for an accuracy measured with several samples of each item (epochs), from
/// `(correct, samples)` per item: the Wilson score interval on the effective sample size.
///
/// ```text
/// p̂ = Σ c_k / N,   N = Σ m_k,   deff = Var_clustered / Var_binomial  (see below),
/// n_eff = N / deff,   x_eff = p̂ · n_eff,   interval = Wilson(x_eff, n_eff)
/// ```
///
/// with Wilson's closed form evaluated at real n_eff (no rounding), and Var_clustered the
/// clustered variance of Miller (2024), "Adding Error Bars to Evals", arXiv:2411.00640 (as in
/// [`super::clustered_mean_interval`]). The design effect is Kish's (1965, *Survey Sampling*);
/// turning a binomial interval into one for clustered data through the effective sample size is
/// the approach of Korn & Graubard (1998, Survey Methodology 24:193–201, who apply it to
/// Clopper–Pearson), and Dean & Pagano (2015, J. Survey Statistics and Methodology 3:484–503)
/// compare such design-effect-adjusted intervals, Wilson's among them.
///
/// Why not the clustered Wald interval p̂ ± z·SE: at p̂ = 0 or 1 every score equals the mean, the
/// SE is 0 and the interval collapses to a point ("100.0% (95% CI 100.0–100.0)"), and near 0 or
/// 1 it undercovers. Wilson keeps positive width and stays within [0, 1].
///
/// **The design effect is estimated with two pseudo-items**, one always right and one always
/// wrong, each with m̄ = N/K samples (K: items with samples), added to the data for the design
/// effect only — never to the estimate. Why: when failures are rare (accuracy near 1) they sit
/// in a handful of items, Miller's between-item variance rests on those few items and is often
/// far too small; one failure among 30 items × 5 samples gives deff ≈ 1 and a lower bound of
/// 0.963, above the 0.886 of no failure at all (0.889 with the pseudo-items). In a seeded
/// beta-binomial simulation like this module's coverage test (4,000 replications, intra-item
/// correlation 0.3) the unaugmented design effect gave 95% intervals that covered 90% of the
/// time at 30 items × 5 samples, accuracy 0.95, and 91% at 200 × 10, accuracy 0.99; with the
/// pseudo-items, 97% and 98%. The pseudo pair is the cluster-level analogue of adding two
/// successes and two failures to a binomial (Agresti & Coull 1998, Am. Statistician
/// 52:119–126): one item's worth of evidence that items can be all-or-nothing, which matters
/// when few items fail and fades as failing items accumulate. The price is caution with few,
/// nearly independent items (coverage 0.96–1.00 at 30 items with correlation 0.05, intervals up
/// to twice as wide as unaugmented at 10 samples per item); with 200 items it costs little.
///
/// The design effect is then clamped to [1, m̃] with m̃ = Σ m_k² / N (m̄ when every item has the
/// same number of samples):
/// * below 1 would claim more information than independent samples;
/// * m̃ is its value when the samples of an item are perfectly correlated — the variance of the
///   pooled mean is then Σ m_k² σ² / N², i.e. deff = 1 + (m̃ − 1)ρ at ρ = 1 (Eldridge, Ashby &
///   Kerry 2006, Int. J. Epidemiology 35:1292–1300, with m̃ = m̄(1 + CV²)) — and within-item
///   correlation cannot exceed 1. At the cap the items count once each (n_eff = N²/Σ m_k², which
///   is the number of items when they have equal samples).
///
/// When the design effect cannot be estimated from the data — p̂ = 0 or 1 (0/0), or a single
/// item — it is taken at the cap m̃: the conservative choice, treating all samples of an item as
/// one observation. So 30 items × 3 samples all correct give the single-sample Wilson interval
/// on 30 items (low 0.886 at 95%), not a point. With one sample per item, m̃ = 1 and the result
/// is exactly [`super::wilson_interval`].
///
/// Assumes items are a sample from a population of items and the samples of one item are
/// exchangeable (repeated runs of the same prompt); the estimand is the population accuracy.
/// Items with no samples are ignored. No samples at all give the vacuous interval (estimate 0,
/// [0, 1]) with design effect 1 and effective sample size 0. Errors: more correct than samples
/// for an item, totals overflowing `u64`, an invalid confidence.
pub fn clustered_proportion_interval(
    successes_per_cluster: &[(u64, u64)],
    confidence: f64,
) -> Result<ClusteredProportion, StatsError> {
    let z = two_sided_z(confidence)?;
    let mut successes: u64 = 0;
    let mut samples: u64 = 0;
    let mut clusters = 0usize;
    // Σ m_k² in f64: only used as a ratio, and exact up to 2^53.
    let mut sum_sq_sizes = 0.0;
    for &(c, m) in successes_per_cluster {
        check_counts(c, m)?;
        successes = successes.checked_add(c).ok_or(StatsError::CountOverflow)?;
        samples = samples.checked_add(m).ok_or(StatsError::CountOverflow)?;
        if m > 0 {
            clusters += 1;
            sum_sq_sizes += m as f64 * m as f64;
        }
    }
    if samples == 0 {
        return Ok(ClusteredProportion {
            interval: Interval { estimate: 0.0, low: 0.0, high: 1.0 },
            design_effect: 1.0,
            effective_sample_size: 0.0,
            clusters,
            samples,
        });
    }
    let n = samples as f64;
    let cap = (sum_sq_sizes / n).max(1.0);
    let design_effect = if cap == 1.0 {
        // One sample per item: nothing to correlate.
        1.0
    } else if successes == 0 || successes == samples || clusters < 2 {
        cap
    } else {
        let pseudo = n / clusters as f64;
        augmented_design_effect(successes_per_cluster, successes, samples, pseudo).clamp(1.0, cap)
    };
    // Division by exactly 1.0 leaves the counts unchanged, so with one sample per item the
    // limits are bit-identical to wilson_interval's.
    let effective = n / design_effect;
    let x = successes as f64 / design_effect;
    let f = (samples - successes) as f64 / design_effect;
    let estimate = successes as f64 / n;
    let low = wilson_lower_real(x, f, effective, z);
    let high = 1.0 - wilson_lower_real(f, x, effective, z);
    Ok(ClusteredProportion {
        interval: tidy(estimate, low, high, 0.0, 1.0),
        design_effect,
        effective_sample_size: effective,
        clusters,
        samples,
    })
}

// =================================================================================================
// Families of intervals
// =================================================================================================

/// The confidence level at which each of `family_size` intervals must be computed so that
/// decisions read from all of them together are wrong with probability at most
/// 1 − `confidence`: the Bonferroni level 1 − (1 − confidence)/k (Dunn 1961, "Multiple
/// comparisons among means", JASA 56:52–64).
///
/// Verdicts read from such intervals (say with [`classify`]) are all right together with
/// probability at least `confidence` by the Bonferroni inequality: the same family-wise error
/// control that the adjusted p-values of [`super::holm_adjust`] give. Holm's step-down procedure
/// rejects everything Bonferroni rejects and sometimes more, and the simultaneous bounds
/// compatible with it are uninformative for rejected hypotheses unless all are rejected
/// (Strassburger & Bretz 2008, Stat Med 27:4914–4927), so interval verdicts at this level are
/// as cautious as Bonferroni: a comparison can be significant by its Holm p-value and still
/// read `Inconclusive`. (The intervals and the exact McNemar p-values are different methods, so
/// near the boundary they can also disagree for that reason.)
///
/// `family_size` 0 or 1 returns `confidence` unchanged (nothing to share the error rate with).
pub fn family_confidence(confidence: f64, family_size: usize) -> Result<f64, StatsError> {
    let c = check_confidence(confidence)?;
    let k = family_size.max(1) as f64;
    Ok(1.0 - (1.0 - c) / k)
}

// =================================================================================================
// Tests
// =================================================================================================

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::{clustered_mean_interval, sample_size_paired, wilson_interval};
    use super::*;

    fn iv(low: f64, high: f64) -> Interval {
        Interval { estimate: (low + high) / 2.0, low, high }
    }

    #[test]
    fn classify_covers_each_region() {
        let m = 0.05;
        let cases = [
            (0.01, 0.08, Decision::Better),
            (0.01, 0.02, Decision::Better),
            (-0.03, 0.04, Decision::Equivalent),
            // Detectably worse, but by less than the margin.
            (-0.04, -0.01, Decision::Equivalent),
            (-0.03, 0.20, Decision::NotWorse),
            (-0.20, -0.01, Decision::Worse),
            (-0.20, -0.10, Decision::Worse),
            (-0.10, 0.03, Decision::Inconclusive),
            (-0.10, 0.20, Decision::Inconclusive),
        ];
        for (low, high, expected) in cases {
            assert_eq!(classify(&iv(low, high), m).unwrap(), expected, "[{low}, {high}]");
        }
    }

    #[test]
    fn classify_boundaries_go_to_the_less_favourable_side() {
        let m = 0.05;
        let cases = [
            // low exactly 0: not better.
            (0.0, 0.03, Decision::Equivalent),
            (0.0, 0.05, Decision::NotWorse),
            (0.0, 0.0, Decision::Equivalent),
            // low exactly −m: neither equivalent nor not worse.
            (-0.05, -0.01, Decision::Worse),
            (-0.05, 0.0, Decision::Inconclusive),
            (-0.05, 0.03, Decision::Inconclusive),
            (-0.05, 0.05, Decision::Inconclusive),
            // high exactly m with low above −m: not worse, not equivalent.
            (-0.03, 0.05, Decision::NotWorse),
            // high exactly 0: not worse-than-zero.
            (-0.03, 0.0, Decision::Equivalent),
            (-0.08, 0.0, Decision::Inconclusive),
            // A point interval at −m.
            (-0.05, -0.05, Decision::Worse),
        ];
        for (low, high, expected) in cases {
            assert_eq!(classify(&iv(low, high), m).unwrap(), expected, "[{low}, {high}]");
        }
        // Just inside each boundary flips to the favourable side.
        let eps = 1e-12;
        assert_eq!(classify(&iv(eps, 0.03), m).unwrap(), Decision::Better);
        assert_eq!(classify(&iv(-0.05 + eps, 0.0), m).unwrap(), Decision::Equivalent);
        assert_eq!(classify(&iv(-0.03, 0.05 - eps), m).unwrap(), Decision::Equivalent);
        assert_eq!(classify(&iv(-0.08, -eps), m).unwrap(), Decision::Worse);
    }

    #[test]
    fn classify_with_zero_margin_is_a_two_sided_test() {
        for (low, high, expected) in [
            (0.01, 0.2, Decision::Better),
            (0.0, 0.2, Decision::Inconclusive),
            (-0.2, 0.0, Decision::Inconclusive),
            (-0.2, -0.01, Decision::Worse),
            (0.0, 0.0, Decision::Inconclusive),
        ] {
            assert_eq!(classify(&iv(low, high), 0.0).unwrap(), expected, "[{low}, {high}]");
        }
    }

    #[test]
    fn classify_rejects_bad_input() {
        for m in [-0.01, 1.0, 2.0, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(
                    classify(&iv(-0.1, 0.1), m),
                    Err(StatsError::InvalidProbability { name: "margin", .. })
                ),
                "margin {m}"
            );
        }
        assert!(classify(&iv(f64::NAN, 0.1), 0.05).is_err());
        assert!(classify(&iv(-0.1, f64::NAN), 0.05).is_err());
        assert!(classify(&iv(-0.1, f64::INFINITY), 0.05).is_err());
        assert!(classify(&Interval { estimate: 0.0, low: 0.1, high: -0.1 }, 0.05).is_err());
    }

    #[test]
    fn decision_helpers_and_names() {
        use Decision::*;
        let all = [Better, Worse, Equivalent, NotWorse, Inconclusive];
        let not_worse: Vec<_> = all.iter().map(|d| d.is_not_worse()).collect();
        assert_eq!(not_worse, [true, false, true, true, false]);
        let phrases: Vec<_> = all.iter().map(|d| d.phrase()).collect();
        assert_eq!(
            phrases,
            [
                "better",
                "worse",
                "equivalent within the margin",
                "not worse than the margin",
                "inconclusive"
            ]
        );
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(json, r#"["better","worse","equivalent","not-worse","inconclusive"]"#);
    }

    #[test]
    fn first_minus_second_reflects_newcombe() {
        let counts =
            PairedCounts { both_correct: 50, only_first: 12, only_second: 4, both_wrong: 9 };
        let d = paired_difference_interval(&counts, 0.95).unwrap();
        let f = first_minus_second(&counts, 0.95).unwrap();
        assert_eq!((f.estimate, f.low, f.high), (-d.estimate, -d.high, -d.low));
        assert!(f.estimate > 0.0);
        assert_eq!(paired_design(&counts).unwrap(), (16.0 / 75.0, 8.0 / 75.0));
        assert!(paired_design(&PairedCounts::default()).is_err());
    }

    #[test]
    fn items_to_show_not_worse_matches_hand_values() {
        // Nam's formula with the restricted MLE found independently, by golden-section search on
        // the expected log-likelihood (python, z from statistics.NormalDist), confidence 0.95,
        // power 0.8, z_a = 1.959964, z_b = 0.841621:
        //   ψ = 0.14, δ = 0.02,  m = 0.05: x̃ = 0.104416, n = 242.20 → 243 (Wald form: 223.6)
        //   ψ = 0.30, δ = −0.02, m = 0.10: x̃ = 0.208868, n = 374.39 → 375 (Wald form: 367.4)
        //   ψ = 0.20, δ = 0,     m = 0.05: x̃ = 0.129772, n = 643.34 → 644 (Wald form: 627.9)
        //   ψ = 0.10, δ = 0.10,  m = 0.05: x̃ = 0.097500, n = 43.77 → 44 (Wald form: 31.4)
        //   ψ = 0,    δ = 0,     m = 0.05: x̃ = m, n = z_a²(1 − m)/m = 72.99 → 73 (Wald: 0)
        let cases = [
            (0.14, 0.02, 0.05, 0.104_416_120_889, 243),
            (0.30, -0.02, 0.10, 0.208_868_161_544, 375),
            (0.20, 0.0, 0.05, 0.129_772_253_115, 644),
            (0.10, 0.10, 0.05, 0.097_499_999_215, 44),
            (0.0, 0.0, 0.05, 0.05, 73),
        ];
        for (psi, delta, m, x, n) in cases {
            let psi_tilde = restricted_discordance(psi, delta, m);
            assert!(((psi_tilde + m) / 2.0 - x).abs() < 1e-8, "x̃ for ({psi}, {delta}, {m})");
            assert_eq!(
                items_to_show_not_worse(psi, delta, m, 0.8, 0.95).unwrap(),
                Some(n),
                "({psi}, {delta}, {m})"
            );
        }
    }

    #[test]
    fn items_to_show_not_worse_reduces_to_connor_at_zero_margin() {
        for (psi, delta) in [(0.2, 0.05), (0.1, 0.03), (0.5, 0.2), (0.3, 0.3)] {
            for (power, confidence) in [(0.8, 0.95), (0.9, 0.99)] {
                assert_eq!(
                    items_to_show_not_worse(psi, delta, 0.0, power, confidence).unwrap(),
                    Some(sample_size_paired(psi, delta, power, confidence).unwrap()),
                    "ψ = {psi}, δ = {delta}"
                );
            }
        }
        // 626: Connor's n for ψ = 0.2, δ = 0.05 (python: 625.547).
        assert_eq!(items_to_show_not_worse(0.2, 0.05, 0.0, 0.8, 0.95).unwrap(), Some(626));
    }

    #[test]
    fn items_to_show_not_worse_edges() {
        // Never shown when the true difference is at or below −m.
        assert_eq!(items_to_show_not_worse(0.2, -0.05, 0.05, 0.8, 0.95).unwrap(), None);
        assert_eq!(items_to_show_not_worse(0.2, -0.1, 0.05, 0.8, 0.95).unwrap(), None);
        assert_eq!(items_to_show_not_worse(0.2, 0.0, 0.0, 0.8, 0.95).unwrap(), None);
        // More items for more power, a smaller margin, a worse first.
        let n = |psi, delta, m, power| items_to_show_not_worse(psi, delta, m, power, 0.95).unwrap();
        assert!(n(0.2, 0.0, 0.05, 0.9) > n(0.2, 0.0, 0.05, 0.8));
        assert!(n(0.2, 0.0, 0.03, 0.8) > n(0.2, 0.0, 0.05, 0.8));
        assert!(n(0.2, -0.02, 0.05, 0.8) > n(0.2, 0.0, 0.05, 0.8));
        assert!(n(0.3, 0.0, 0.05, 0.8) > n(0.2, 0.0, 0.05, 0.8));
        assert!(matches!(
            items_to_show_not_worse(0.1, 0.2, 0.05, 0.8, 0.95),
            Err(StatsError::DifferenceNotAchievable { .. })
        ));
        assert!(items_to_show_not_worse(1.1, 0.0, 0.05, 0.8, 0.95).is_err());
        assert!(items_to_show_not_worse(f64::NAN, 0.0, 0.05, 0.8, 0.95).is_err());
        assert!(items_to_show_not_worse(0.2, f64::NAN, 0.05, 0.8, 0.95).is_err());
        assert!(items_to_show_not_worse(0.2, 0.0, 1.0, 0.8, 0.95).is_err());
        assert!(items_to_show_not_worse(0.2, 0.0, 0.05, 1.0, 0.95).is_err());
        assert!(items_to_show_not_worse(0.2, 0.0, 0.05, 0.8, 1.0).is_err());
    }

    #[test]
    fn items_to_clear_threshold_matches_hand_values() {
        // ((1.959964·√(0.8·0.2) + 0.841621·√(0.9·0.1)) / 0.1)² = 107.427 → 108.
        assert_eq!(items_to_clear_threshold(0.9, 0.8, 0.8, 0.95).unwrap(), Some(108));
        // Lachin's example in sample_size_one_proportion: 0.6 against 0.5 → 194.
        assert_eq!(items_to_clear_threshold(0.6, 0.5, 0.8, 0.95).unwrap(), Some(194));
        // Perfect accuracy: n > 1.959964²·0.9/0.1 = 34.573 → 35, whatever the power; and
        // Wilson confirms 35/35 clears 0.9 while 34/34 does not.
        for power in [0.5, 0.8, 0.99] {
            assert_eq!(items_to_clear_threshold(1.0, 0.9, power, 0.95).unwrap(), Some(35));
        }
        assert!(wilson_interval(35, 35, 0.95).unwrap().low > 0.9);
        assert!(wilson_interval(34, 34, 0.95).unwrap().low < 0.9);
        assert_eq!(items_to_clear_threshold(0.8, 0.8, 0.8, 0.95).unwrap(), None);
        assert_eq!(items_to_clear_threshold(0.0, 0.8, 0.8, 0.95).unwrap(), None);
        assert!(items_to_clear_threshold(0.9, 0.0, 0.8, 0.95).is_err());
        assert!(items_to_clear_threshold(0.9, 1.0, 0.8, 0.95).is_err());
        assert!(items_to_clear_threshold(1.5, 0.8, 0.8, 0.95).is_err());
        assert!(items_to_clear_threshold(0.9, 0.8, 0.0, 0.95).is_err());
        // The mirror for rates.
        assert_eq!(items_to_stay_below(0.1, 0.2, 0.8, 0.95).unwrap(), Some(108));
        assert_eq!(items_to_stay_below(0.0, 0.1, 0.8, 0.95).unwrap(), Some(35));
        assert_eq!(items_to_stay_below(0.2, 0.2, 0.8, 0.95).unwrap(), None);
        assert!(items_to_stay_below(0.1, 0.0, 0.8, 0.95).is_err());
        assert!(items_to_stay_below(-0.1, 0.2, 0.8, 0.95).is_err());
    }

    /// Fraction of `runs` seeded simulations of `n` paired items with cell probabilities
    /// (both right, only first, only second, both wrong) in which the lower bound of the 95%
    /// Newcombe interval for first − second clears −m.
    fn simulated_not_worse_power(cells: [f64; 4], n: u64, m: f64, runs: usize, seed: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut shown = 0;
        for _ in 0..runs {
            let mut t = PairedCounts::default();
            for _ in 0..n {
                let u: f64 = rng.random();
                if u < cells[0] {
                    t.both_correct += 1;
                } else if u < cells[0] + cells[1] {
                    t.only_first += 1;
                } else if u < cells[0] + cells[1] + cells[2] {
                    t.only_second += 1;
                } else {
                    t.both_wrong += 1;
                }
            }
            if first_minus_second(&t, 0.95).unwrap().low > -m {
                shown += 1;
            }
        }
        shown as f64 / runs as f64
    }

    #[test]
    fn simulated_power_at_items_to_show_not_worse() {
        // (cells, margin): first ≈ 0.81 vs second ≈ 0.79 accuracy; first ≈ 0.62 vs 0.64.
        let settings = [([0.73, 0.08, 0.06, 0.13], 0.05), ([0.48, 0.14, 0.16, 0.22], 0.10)];
        for (i, (cells, m)) in settings.into_iter().enumerate() {
            let (psi, delta) = (cells[1] + cells[2], cells[1] - cells[2]);
            let n = items_to_show_not_worse(psi, delta, m, 0.8, 0.95).unwrap().unwrap();
            let power = simulated_not_worse_power(cells, n, m, 2000, 20 + i as u64);
            println!(
                "not worse: ψ = {psi:.2}, δ = {delta:+.2}, m = {m}: n = {n}, power {power:.4}"
            );
            assert!((power - 0.8).abs() <= 0.04, "power {power} at n = {n} for {cells:?}");
        }
    }

    #[test]
    fn simulated_power_at_items_to_clear_threshold() {
        for (i, (p, threshold, target)) in
            [(0.9, 0.8, 0.8), (0.75, 0.7, 0.9)].into_iter().enumerate()
        {
            let n = items_to_clear_threshold(p, threshold, target, 0.95).unwrap().unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(40 + i as u64);
            let runs = 2000;
            let mut cleared = 0;
            for _ in 0..runs {
                let x = (0..n).filter(|_| rng.random::<f64>() < p).count() as u64;
                if wilson_interval(x, n, 0.95).unwrap().low > threshold {
                    cleared += 1;
                }
            }
            let power = cleared as f64 / runs as f64;
            println!("threshold {threshold}, p = {p}: n = {n}, power {power:.4} (target {target})");
            assert!((power - target).abs() <= 0.04, "power {power} at n = {n}");
        }
    }

    #[test]
    fn clustered_with_one_sample_per_item_is_wilson_exactly() {
        for (x, n) in
            [(0u64, 1u64), (1, 1), (0, 30), (30, 30), (17, 30), (1, 200), (199, 200), (123, 457)]
        {
            let counts: Vec<(u64, u64)> = (0..n).map(|i| (u64::from(i < x), 1)).collect();
            let c = clustered_proportion_interval(&counts, 0.95).unwrap();
            let w = wilson_interval(x, n, 0.95).unwrap();
            assert_eq!(c.interval, w, "{x}/{n}");
            assert_eq!((c.design_effect, c.effective_sample_size), (1.0, n as f64));
            assert_eq!((c.clusters, c.samples), (n as usize, n));
        }
    }

    #[test]
    fn clustered_all_correct_does_not_collapse() {
        // The reported bug: 30 items × 3 epochs, all correct. The clustered Wald interval is
        // [1, 1]; here deff = 3, n_eff = 30 and the interval is Wilson's for 30/30:
        // low = 30/(30 + 1.959964²) = 0.88650.
        let c = clustered_proportion_interval(&[(3, 3); 30], 0.95).unwrap();
        assert_eq!(c.design_effect, 3.0);
        assert_eq!(c.effective_sample_size, 30.0);
        assert_eq!(c.interval.estimate, 1.0);
        assert_eq!(c.interval.high, 1.0);
        assert!((c.interval.low - 30.0 / (30.0 + 1.959_963_984_540_054f64.powi(2))).abs() < 1e-12);
        assert!((c.interval.low - wilson_interval(30, 30, 0.95).unwrap().low).abs() < 1e-15);
        // The old route: zero width.
        let scores = vec![1.0; 90];
        let clusters: Vec<usize> = (0..90).map(|i| i / 3).collect();
        let (wald, se) = clustered_mean_interval(&scores, &clusters, 0.95).unwrap();
        assert_eq!((se, wald.width()), (0.0, 0.0));
        // All wrong mirrors it.
        let c = clustered_proportion_interval(&[(0, 5); 30], 0.95).unwrap();
        assert_eq!(c.design_effect, 5.0);
        assert!((c.interval.high - wilson_interval(0, 30, 0.95).unwrap().high).abs() < 1e-15);
        // A single item is one observation, whatever its samples.
        let c = clustered_proportion_interval(&[(4, 10)], 0.95).unwrap();
        assert_eq!((c.design_effect, c.effective_sample_size), (10.0, 1.0));
    }

    #[test]
    fn clustered_design_effect_follows_miller_and_is_clamped() {
        // Items that are always right or always wrong: perfectly correlated samples, the raw
        // design effect is about m (slightly above, by the n − 1 term) and is clamped to m.
        let mut counts = vec![(4u64, 4u64); 20];
        counts.extend([(0, 4); 10]);
        let c = clustered_proportion_interval(&counts, 0.95).unwrap();
        assert_eq!(c.design_effect, 4.0);
        assert_eq!(c.effective_sample_size, 30.0);
        let w = wilson_interval(20, 30, 0.95).unwrap();
        assert!((c.interval.low - w.low).abs() < 1e-12 && (c.interval.high - w.high).abs() < 1e-12);
        // Every item exactly half right: less variable than binomial, clamped up to 1.
        let c = clustered_proportion_interval(&[(2, 4); 30], 0.95).unwrap();
        assert_eq!(c.design_effect, 1.0);
        assert_eq!(c.interval, wilson_interval(60, 120, 0.95).unwrap());
        // In between: without the pseudo-items, the design effect is Miller's variance over the
        // binomial one; the function uses it with the pseudo-items (3 samples each here).
        let counts = [(3u64, 3u64), (2, 3), (3, 3), (0, 3), (1, 3), (3, 3), (2, 3), (3, 3)];
        let mut scores = Vec::new();
        let mut clusters = Vec::new();
        for (k, &(c, m)) in counts.iter().enumerate() {
            for j in 0..m {
                scores.push(if j < c { 1.0 } else { 0.0 });
                clusters.push(k);
            }
        }
        let (_, se) = clustered_mean_interval(&scores, &clusters, 0.95).unwrap();
        let p: f64 = 17.0 / 24.0;
        let miller = se * se / (p * (1.0 - p) / 24.0);
        let deff = augmented_design_effect(&counts, 17, 24, 0.0);
        assert!((deff - miller).abs() < 1e-12, "{deff} vs {miller}");
        // By hand: p' = 20/30, Σ(c − 3p')² = 4·1 + 2·0 + 4 + 1 = 9 over the items, plus
        // 1 + 4 for the pseudo-items; deff = 14/(30·(2/9)) + 1/29 = 2.1 + 0.0345.
        let augmented = augmented_design_effect(&counts, 17, 24, 3.0);
        assert!((augmented - (2.1 + 1.0 / 29.0)).abs() < 1e-12, "{augmented}");
        let c = clustered_proportion_interval(&counts, 0.95).unwrap();
        assert_eq!(c.design_effect, augmented);
        assert!((c.effective_sample_size - 24.0 / augmented).abs() < 1e-12);
        assert!(c.interval.low < p && p < c.interval.high);
    }

    #[test]
    fn clustered_one_failure_does_not_tighten_the_interval() {
        // Without the pseudo-items, one failure among 30 items × 5 samples gave deff ≈ 1 and a
        // lower bound of 0.963, far above the 0.886 of no failure. With them it stays near 0.886.
        let none = clustered_proportion_interval(&[(5, 5); 30], 0.95).unwrap().interval.low;
        for m in [3u64, 5, 10] {
            let mut counts = vec![(m, m); 30];
            counts[0].0 = m - 1;
            let c = clustered_proportion_interval(&counts, 0.95).unwrap();
            let raw = augmented_design_effect(&counts, 30 * m - 1, 30 * m, 0.0);
            println!(
                "30 × {m}, one failure: deff {:.3} (without pseudo-items {raw:.3}), low {:.4} \
                 (no failure: {none:.4})",
                c.design_effect, c.interval.low
            );
            assert!(raw < 1.05);
            assert!(c.interval.low < none + 0.005, "m = {m}: {}", c.interval.low);
        }
    }

    #[test]
    fn clustered_unequal_samples_cap_and_edges() {
        // Unequal samples per item: the cap is Σm²/N = (4·16 + 4·4)/24 = 80/24.
        let counts = [(4u64, 4u64), (4, 4), (4, 4), (4, 4), (2, 2), (2, 2), (2, 2), (2, 2)];
        let c = clustered_proportion_interval(&counts, 0.95).unwrap();
        assert!((c.design_effect - 80.0 / 24.0).abs() < 1e-12);
        assert!((c.effective_sample_size - 24.0 * 24.0 / 80.0).abs() < 1e-12);
        // Items without samples are ignored; nothing at all is the vacuous interval.
        let with_empty =
            [(4u64, 4u64), (0, 0), (4, 4), (4, 4), (4, 4), (2, 2), (2, 2), (2, 2), (2, 2)];
        assert_eq!(clustered_proportion_interval(&with_empty, 0.95).unwrap(), c);
        let none = clustered_proportion_interval(&[(0, 0), (0, 0)], 0.95).unwrap();
        assert_eq!(none.interval, Interval { estimate: 0.0, low: 0.0, high: 1.0 });
        assert_eq!(clustered_proportion_interval(&[], 0.95).unwrap().samples, 0);
        assert!(matches!(
            clustered_proportion_interval(&[(3, 2)], 0.95),
            Err(StatsError::SuccessesExceedTrials { successes: 3, trials: 2 })
        ));
        assert!(matches!(
            clustered_proportion_interval(&[(0, u64::MAX), (0, 1)], 0.95),
            Err(StatsError::CountOverflow)
        ));
        assert!(clustered_proportion_interval(&[(1, 2)], 1.0).is_err());
    }

    /// A Gamma(shape, 1) variate: Marsaglia & Tsang (2000), "A simple method for generating gamma
    /// variables", ACM TOMS 26:363–372, with their boost G(a) = G(a + 1)·U^(1/a) for a < 1.
    fn gamma(rng: &mut ChaCha8Rng, shape: f64) -> f64 {
        if shape < 1.0 {
            let u: f64 = 1.0 - rng.random::<f64>();
            return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            // Box–Muller standard normal.
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
            let x = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u: f64 = 1.0 - rng.random::<f64>();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Coverage of the 95% interval for the population accuracy `p` over `reps` seeded
    /// replications of `items` items × `epochs` samples, each item's probability of a correct
    /// sample drawn from Beta(p·s, (1 − p)·s) with s = 1/ρ − 1, so that two samples of one item
    /// have correlation ρ (the beta-binomial model). Returns (coverage, smallest width).
    fn clustered_coverage(
        items: usize,
        epochs: u64,
        p: f64,
        rho: f64,
        reps: usize,
        seed: u64,
    ) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let s = 1.0 / rho - 1.0;
        let mut covered = 0;
        let mut min_width = f64::INFINITY;
        let mut counts = vec![(0u64, epochs); items];
        for _ in 0..reps {
            for slot in counts.iter_mut() {
                let q = if p == 1.0 {
                    1.0
                } else {
                    let a = gamma(&mut rng, p * s);
                    let b = gamma(&mut rng, (1.0 - p) * s);
                    a / (a + b)
                };
                slot.0 = (0..epochs).filter(|_| rng.random::<f64>() < q).count() as u64;
            }
            let c = clustered_proportion_interval(&counts, 0.95).unwrap();
            if c.interval.contains(p) {
                covered += 1;
            }
            min_width = min_width.min(c.interval.width());
        }
        (covered as f64 / reps as f64, min_width)
    }

    #[test]
    fn clustered_interval_covers_under_repeated_sampling() {
        // 2,000 seeded replications per setting; the estimand is the population accuracy p.
        let mut seed = 100;
        for rho in [0.1, 0.3, 0.6] {
            for items in [30, 200] {
                for epochs in [3, 5] {
                    for p in [1.0, 0.95, 0.7] {
                        seed += 1;
                        let (coverage, narrowest) =
                            clustered_coverage(items, epochs, p, rho, 2000, seed);
                        println!(
                            "ρ {rho} items {items:3} epochs {epochs} p {p:.2}: coverage \
                             {coverage:.4}, narrowest {narrowest:.4}"
                        );
                        assert!(
                            coverage >= 0.93,
                            "coverage {coverage} at ρ {rho}, {items}×{epochs}, p = {p}"
                        );
                        assert!(narrowest > 0.0);
                    }
                }
            }
        }
    }

    #[test]
    fn family_confidence_is_bonferroni() {
        assert_eq!(family_confidence(0.95, 1).unwrap(), 0.95);
        assert_eq!(family_confidence(0.95, 0).unwrap(), 0.95);
        assert!((family_confidence(0.95, 5).unwrap() - 0.99).abs() < 1e-15);
        assert!((family_confidence(0.9, 4).unwrap() - 0.975).abs() < 1e-15);
        // k intervals at the adjusted level: the union bound gives the family's error rate back.
        for k in [2usize, 3, 10, 100] {
            let c = family_confidence(0.95, k).unwrap();
            assert!((k as f64 * (1.0 - c) - 0.05).abs() < 1e-12);
        }
        assert!(family_confidence(1.0, 3).is_err());
        assert!(family_confidence(f64::NAN, 3).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::stats::wilson_interval;
    use crate::testing::proptest_config;

    /// Decisions from least to most favourable to the first. Shifting an interval up never
    /// moves it down this order (Equivalent → NotWorse happens when the upper bound crosses m;
    /// the reverse cannot, as NotWorse's high ≥ m only grows).
    fn rank(d: Decision) -> u8 {
        match d {
            Decision::Worse => 0,
            Decision::Inconclusive => 1,
            Decision::Equivalent => 2,
            Decision::NotWorse => 3,
            Decision::Better => 4,
        }
    }

    /// A bound or margin: on a grid of 1/32 (exact in binary, so bounds land on −m, 0 and m
    /// exactly), or anywhere in [−1, 1].
    fn bound() -> impl Strategy<Value = f64> {
        prop_oneof![(-32i32..=32).prop_map(|k| f64::from(k) / 32.0), -1.0f64..=1.0]
    }

    fn margin() -> impl Strategy<Value = f64> {
        prop_oneof![Just(0.0), (0i32..32).prop_map(|k| f64::from(k) / 32.0), 0.0f64..1.0]
    }

    fn interval() -> impl Strategy<Value = Interval> {
        (bound(), bound()).prop_map(|(a, b)| Interval {
            estimate: (a + b) / 2.0,
            low: a.min(b),
            high: a.max(b),
        })
    }

    fn negated(iv: &Interval) -> Interval {
        Interval { estimate: -iv.estimate, low: -iv.high, high: -iv.low }
    }

    /// Per-item (correct, samples) counts: up to 6 samples, some items without any.
    fn clusters(max_samples: u64) -> impl Strategy<Value = Vec<(u64, u64)>> {
        let item = (0..=max_samples, any::<u64>()).prop_map(|(m, k)| (k % (m + 1), m));
        prop::collection::vec(item, 0..40)
    }

    proptest! {
        #![proptest_config(proptest_config(512))]

        /// `classify` takes any floats without panicking: a decision exactly when the margin is
        /// in [0, 1) and the bounds are finite and ordered.
        #[test]
        fn classify_accepts_exactly_the_valid_inputs(
            low in prop_oneof![bound(), any::<f64>()],
            high in prop_oneof![bound(), any::<f64>()],
            margin in prop_oneof![margin(), any::<f64>()],
        ) {
            let valid = low.is_finite()
                && high.is_finite()
                && low <= high
                && (0.0..1.0).contains(&margin);
            let got = classify(&Interval { estimate: low, low, high }, margin);
            prop_assert_eq!(got.is_ok(), valid, "[{}, {}] m = {}: {:?}", low, high, margin, got);
        }

        /// Shifting an interval up never makes the decision less favourable.
        #[test]
        fn classify_is_monotone_in_a_shift(iv in interval(), shift in margin(), m in margin()) {
            let up = Interval {
                estimate: iv.estimate + shift,
                low: iv.low + shift,
                high: iv.high + shift,
            };
            let (before, after) = (classify(&iv, m).unwrap(), classify(&up, m).unwrap());
            let what = format!("{before:?} → {after:?} by {shift} at m = {m}");
            prop_assert!(rank(after) >= rank(before), "{}", what);
        }

        /// Negating the interval (exchanging the two backends) mirrors the decision as far as the
        /// regions allow: Better and Worse swap when m = 0; with a margin, the boundaries go to
        /// the less favourable side on both sides, so the mirror is a set of possible decisions.
        #[test]
        fn classify_of_the_negated_interval_mirrors(iv in interval(), m in margin()) {
            let d = classify(&iv, m).unwrap();
            let mirrored = classify(&negated(&iv), m).unwrap();
            let allowed: &[Decision] = match d {
                Decision::Better => &[Decision::Worse, Decision::Equivalent],
                Decision::Worse => &[Decision::Better],
                Decision::Equivalent => &[Decision::Equivalent, Decision::Better],
                Decision::NotWorse => &[Decision::Inconclusive],
                Decision::Inconclusive => &[Decision::Inconclusive, Decision::NotWorse],
            };
            let what = format!("{d:?} mirrored to {mirrored:?} at m = {m}");
            prop_assert!(allowed.contains(&mirrored), "{}", what);
            let at_zero = (classify(&iv, 0.0).unwrap(), classify(&negated(&iv), 0.0).unwrap());
            let swap = match at_zero.0 {
                Decision::Better => Decision::Worse,
                Decision::Worse => Decision::Better,
                other => other,
            };
            prop_assert_eq!(at_zero.1, swap);
        }

        /// One sample per item is Wilson's interval, bit for bit.
        #[test]
        fn clustered_with_one_sample_per_item_is_wilson(
            outcomes in prop::collection::vec(any::<bool>(), 0..300),
            confidence in 0.5f64..0.9999,
        ) {
            let counts: Vec<(u64, u64)> = outcomes.iter().map(|&o| (u64::from(o), 1)).collect();
            let x = outcomes.iter().filter(|&&o| o).count() as u64;
            let n = outcomes.len() as u64;
            let c = clustered_proportion_interval(&counts, confidence).unwrap();
            prop_assert_eq!(c.interval, wilson_interval(x, n, confidence).unwrap());
        }

        /// Any items: 0 ≤ low ≤ estimate ≤ high ≤ 1 with positive width when there are samples,
        /// a design effect between 1 and Σm²/N, never narrower than Wilson's interval for the
        /// pooled samples, wider at a higher confidence, and blind to the order of the items.
        #[test]
        fn clustered_interval_properties(
            counts in clusters(6),
            confidence in 0.5f64..0.999,
            rotate in any::<prop::sample::Index>(),
        ) {
            let c = clustered_proportion_interval(&counts, confidence).unwrap();
            let iv = c.interval;
            let what = format!("{counts:?} at {confidence}: {c:?}");
            prop_assert!(0.0 <= iv.low && iv.low <= iv.estimate, "{}", what);
            prop_assert!(iv.estimate <= iv.high && iv.high <= 1.0, "{}", what);
            let successes: u64 = counts.iter().map(|c| c.0).sum();
            let samples: u64 = counts.iter().map(|c| c.1).sum();
            prop_assert_eq!(c.samples, samples);
            prop_assert_eq!(c.clusters, counts.iter().filter(|c| c.1 > 0).count());
            if samples > 0 {
                prop_assert!(iv.width() > 0.0, "{}", what);
                prop_assert_eq!(iv.estimate, successes as f64 / samples as f64);
                let cap = counts.iter().map(|c| (c.1 * c.1) as f64).sum::<f64>() / samples as f64;
                let deff = c.design_effect;
                prop_assert!(1.0 <= deff && deff <= cap.max(1.0) * (1.0 + 1e-12), "{}", what);
                let pooled = wilson_interval(successes, samples, confidence).unwrap();
                let contains = iv.low <= pooled.low + 1e-12 && iv.high >= pooled.high - 1e-12;
                prop_assert!(contains, "{} vs {:?}", what, pooled);
            }
            let higher = 1.0 - (1.0 - confidence) / 2.0;
            let wider = clustered_proportion_interval(&counts, higher).unwrap().interval;
            let contains = wider.low <= iv.low && wider.high >= iv.high;
            prop_assert!(contains, "{} vs {:?}", what, wider);
            let mut rotated = counts.clone();
            if !rotated.is_empty() {
                rotated.rotate_left(rotate.index(counts.len()));
            }
            let again = clustered_proportion_interval(&rotated, confidence).unwrap();
            prop_assert!((again.interval.low - iv.low).abs() <= 1e-12, "{} vs {:?}", what, again);
            prop_assert!((again.interval.high - iv.high).abs() <= 1e-12, "{} vs {:?}", what, again);
        }
    }
}
