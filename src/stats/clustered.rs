//! Cluster-robust standard errors for repeated samples and grouped items.

use std::collections::HashMap;

use super::{two_sided_z, Interval, StatsError};

/// Mean of per-item scores with a cluster-robust standard error and a normal interval.
///
/// E. Miller (2024), "Adding Error Bars to Evals: A Statistical Approach to Language Model
/// Evaluations", arXiv:2411.00640, clustered standard errors (derivation in its Appendix A):
///
/// ```text
/// SE_clustered² = SE_CLT² + (1/n²) Σ_c Σ_{i≠j ∈ c} (s_i − s̄)(s_j − s̄),
/// SE_CLT² = (1/n) · (1/(n−1)) Σ_i (s_i − s̄)²
/// ```
///
/// i.e. the Liang–Zeger (CR0) sandwich for a mean, except that the i = j terms use the n − 1
/// sample variance, so that with one item per cluster it reduces exactly to the usual SE. It is
/// computed in the equivalent form (1/n²) Σ_c (Σ_{i∈c} d_i)² + Σ d_i² / (n²(n−1)), which is never
/// negative. No small-number-of-clusters correction is applied (as in the paper); with fewer than
/// about 30–50 clusters this SE is optimistic (Cameron & Miller 2015, J. Human Resources
/// 50:317–372) and the cluster bootstrap is a useful cross-check.
///
/// The interval is mean ± z·SE, not clamped: the scores' range is the caller's to know (clamp
/// to [0, 1] when the scores are accuracies). Needs at least 2 items and 2 distinct clusters,
/// finite scores and one label per score. Returns `(interval, se)`.
pub fn clustered_mean_interval(
    scores: &[f64],
    cluster_of_item: &[usize],
    confidence: f64,
) -> Result<(Interval, f64), StatsError> {
    let z = two_sided_z(confidence)?;
    let n = scores.len();
    if cluster_of_item.len() != n {
        return Err(StatsError::LengthMismatch {
            name: "cluster_of_item",
            expected: n,
            actual: cluster_of_item.len(),
        });
    }
    if n < 2 {
        return Err(StatsError::TooFewItems { needed: 2, actual: n });
    }
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(StatsError::NonFiniteValue { name: "scores", index });
    }
    let nf = n as f64;
    let mean = scores.iter().sum::<f64>() / nf;
    let mut cluster_sums: HashMap<usize, f64> = HashMap::new();
    let mut sum_sq = 0.0;
    for (&s, &c) in scores.iter().zip(cluster_of_item) {
        let d = s - mean;
        sum_sq += d * d;
        *cluster_sums.entry(c).or_insert(0.0) += d;
    }
    if cluster_sums.len() < 2 {
        return Err(StatsError::TooFewClusters { needed: 2, actual: cluster_sums.len() });
    }
    let between: f64 = cluster_sums.values().map(|s| s * s).sum();
    let variance = between / (nf * nf) + sum_sq / (nf * nf * (nf - 1.0));
    let se = variance.sqrt();
    let interval = Interval { estimate: mean, low: mean - z * se, high: mean + z * se };
    Ok((interval, se))
}
