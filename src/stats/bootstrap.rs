//! Seeded percentile bootstrap intervals, item-level and clustered.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::{check_confidence, Interval, StatsError};

/// Resamples used when the caller has no reason to choose otherwise.
pub const DEFAULT_BOOTSTRAP_RESAMPLES: usize = 2000;

/// Settings for [`bootstrap_interval`] and [`cluster_bootstrap_interval`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Number of bootstrap resamples (at least 2; 2000 by default).
    pub resamples: usize,
    /// Two-sided confidence level in (0, 1).
    pub confidence: f64,
    /// Seed for `ChaCha8Rng::seed_from_u64`; the same seed reproduces the same interval.
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig { resamples: DEFAULT_BOOTSTRAP_RESAMPLES, confidence: 0.95, seed: 0 }
    }
}

/// A bootstrap interval together with how many resamples it rests on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BootstrapInterval {
    /// Statistic on the observed data, with the percentile limits.
    pub interval: Interval,
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples on which the statistic was NaN or infinite; they are left out of the
    /// percentiles, so the interval is conditional on the statistic being defined. Reports
    /// should show this count whenever it is not zero.
    pub undefined_resamples: usize,
}

/// Percentile bootstrap interval over items.
///
/// B. Efron & R. Tibshirani (1993), An Introduction to the Bootstrap, ch. 13. Draws
/// `config.resamples` resamples of n item indices (0..n, with replacement) from
/// `ChaCha8Rng::seed_from_u64(config.seed)` and evaluates `statistic` on each index slice; the
/// limits are the alpha/2 and 1 − alpha/2 sample quantiles of those values (linear
/// interpolation between order statistics, numpy's default / Hyndman–Fan type 7). The
/// estimate is `statistic` on the identity indices 0..n.
///
/// Because the closure receives indices, several per-item arrays (e.g. two classifiers'
/// correctness on the same items) are resampled jointly, which is what a paired comparison needs.
///
/// Resamples on which the statistic is NaN or infinite (e.g. a subgroup accuracy whose subgroup
/// was not drawn) are dropped and counted in [`BootstrapInterval::undefined_resamples`]. It is an
/// error if the statistic is not finite on the observed data or fewer than two resamples are
/// finite. The percentile interval need not contain the estimate when the bootstrap
/// distribution is strongly skewed; it is reported as computed.
pub fn bootstrap_interval(
    n: usize,
    config: &BootstrapConfig,
    statistic: impl Fn(&[usize]) -> f64,
) -> Result<BootstrapInterval, StatsError> {
    check_bootstrap(config)?;
    if n == 0 {
        return Err(StatsError::TooFewItems { needed: 1, actual: 0 });
    }
    let identity: Vec<usize> = (0..n).collect();
    let estimate = statistic(&identity);
    if !estimate.is_finite() {
        return Err(StatsError::UndefinedStatistic(estimate));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut indices = identity;
    let mut replicates = Vec::with_capacity(config.resamples);
    for _ in 0..config.resamples {
        for slot in indices.iter_mut() {
            *slot = rng.random_range(0..n);
        }
        replicates.push(statistic(&indices));
    }
    percentile_interval(estimate, replicates, config)
}

/// [`bootstrap_interval`] for several statistics of the same resamples at once: `statistics`
/// fills one value per statistic for an index slice. The resamples are the ones
/// [`bootstrap_interval`] draws with the same seed, so each interval equals the one it would
/// give alone; drawing them once is what makes six F1-type metrics affordable on large suites.
/// A statistic that cannot be computed (not finite on the data, too few defined resamples) gets
/// its error in its slot.
pub fn bootstrap_intervals(
    n: usize,
    config: &BootstrapConfig,
    count: usize,
    statistics: impl Fn(&[usize], &mut [f64]),
) -> Result<Vec<Result<BootstrapInterval, StatsError>>, StatsError> {
    check_bootstrap(config)?;
    if n == 0 {
        return Err(StatsError::TooFewItems { needed: 1, actual: 0 });
    }
    let identity: Vec<usize> = (0..n).collect();
    let mut estimates = vec![0.0; count];
    statistics(&identity, &mut estimates);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut indices = identity;
    let mut replicates: Vec<Vec<f64>> = vec![Vec::with_capacity(config.resamples); count];
    let mut values = vec![0.0; count];
    for _ in 0..config.resamples {
        for slot in indices.iter_mut() {
            *slot = rng.random_range(0..n);
        }
        statistics(&indices, &mut values);
        for (r, v) in replicates.iter_mut().zip(&values) {
            r.push(*v);
        }
    }
    Ok(estimates
        .into_iter()
        .zip(replicates)
        .map(|(estimate, replicates)| {
            if !estimate.is_finite() {
                return Err(StatsError::UndefinedStatistic(estimate));
            }
            percentile_interval(estimate, replicates, config)
        })
        .collect())
}

/// Percentile bootstrap interval resampling whole clusters.
///
/// `cluster_of_item[i]` is the cluster label of item i (any `usize` values). Each resample draws
/// as many clusters as there are, with replacement, and passes the concatenated item indices of
/// the drawn clusters to `statistic` (so resamples can differ in length when clusters differ in
/// size; the statistic should not depend on item order). This respects within-cluster correlation
/// (Davison & Hinkley 1997, Bootstrap Methods and their Application, §3.8; Field & Welsh 2007,
/// JRSS B 69:369–390). Clusters are numbered in order of first appearance, so with one item per
/// cluster this reproduces [`bootstrap_interval`] exactly for the same seed. Otherwise as
/// [`bootstrap_interval`], including the handling of undefined resamples.
pub fn cluster_bootstrap_interval(
    cluster_of_item: &[usize],
    config: &BootstrapConfig,
    statistic: impl Fn(&[usize]) -> f64,
) -> Result<BootstrapInterval, StatsError> {
    check_bootstrap(config)?;
    let n = cluster_of_item.len();
    if n == 0 {
        return Err(StatsError::TooFewItems { needed: 1, actual: 0 });
    }
    let clusters = group_by_cluster(cluster_of_item);
    let identity: Vec<usize> = (0..n).collect();
    let estimate = statistic(&identity);
    if !estimate.is_finite() {
        return Err(StatsError::UndefinedStatistic(estimate));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut indices = identity;
    let mut replicates = Vec::with_capacity(config.resamples);
    for _ in 0..config.resamples {
        indices.clear();
        for _ in 0..clusters.len() {
            indices.extend_from_slice(&clusters[rng.random_range(0..clusters.len())]);
        }
        replicates.push(statistic(&indices));
    }
    percentile_interval(estimate, replicates, config)
}

pub(super) fn check_bootstrap(config: &BootstrapConfig) -> Result<(), StatsError> {
    check_confidence(config.confidence)?;
    if config.resamples < 2 {
        return Err(StatsError::TooFewResamples(config.resamples));
    }
    Ok(())
}

/// Item indices grouped by cluster label, clusters in order of first appearance.
pub(super) fn group_by_cluster(cluster_of_item: &[usize]) -> Vec<Vec<usize>> {
    let mut position: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (item, &label) in cluster_of_item.iter().enumerate() {
        let next = groups.len();
        let slot = *position.entry(label).or_insert(next);
        if slot == next {
            groups.push(Vec::new());
        }
        groups[slot].push(item);
    }
    groups
}

pub(super) fn percentile_interval(
    estimate: f64,
    replicates: Vec<f64>,
    config: &BootstrapConfig,
) -> Result<BootstrapInterval, StatsError> {
    let resamples = replicates.len();
    let mut defined: Vec<f64> = replicates.into_iter().filter(|v| v.is_finite()).collect();
    if defined.len() < 2 {
        return Err(StatsError::TooFewDefinedResamples { defined: defined.len(), resamples });
    }
    defined.sort_by(f64::total_cmp);
    let alpha = 1.0 - config.confidence;
    Ok(BootstrapInterval {
        interval: Interval {
            estimate,
            low: quantile_sorted(&defined, alpha / 2.0),
            high: quantile_sorted(&defined, 1.0 - alpha / 2.0),
        },
        resamples,
        undefined_resamples: resamples - defined.len(),
    })
}

/// Type-7 sample quantile of sorted, non-empty data.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let below = h.floor();
    let i = below as usize;
    match sorted.get(i + 1) {
        Some(&next) => sorted[i] + (h - below) * (next - sorted[i]),
        None => sorted[sorted.len() - 1],
    }
}

/// Type-7 sample quantile of unsorted data, `None` when there is none (latency percentiles).
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(quantile_sorted(&sorted, q))
}
