//! Binomial probabilities (Loader 2000), accurate for any count.

//
// statrs' regularised incomplete beta stops its continued fraction after 140 terms and computes
// its prefactor from differences of ln Γ values near 1e8, so for n in the millions it silently
// loses accuracy; its inverse panics for tiny tail probabilities. The exact interval and the
// exact McNemar test therefore use binomial tail sums instead, with each sum anchored on a pmf
// computed by Loader's saddle-point method (C. Loader, "Fast and accurate computation of binomial
// probabilities", 2000; the algorithm behind R's dbinom), which keeps ~1e-15 relative accuracy
// for any n. Sums run away from the mode, so terms decrease and a tail needs O(sqrt(n)) terms.

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Stirling-series error ln(n!) - (n + 1/2) ln n + n - ln sqrt(2π) for n = 0..=15
/// (40-digit mpmath values printed by reference/gen_reference.py; n = 0 is unused).
#[allow(clippy::excessive_precision)]
const STIRLERR_SMALL: [f64; 16] = [
    0.0,
    0.08106146679532726,
    0.0413406959554093,
    0.02767792568499834,
    0.020790672103765093,
    0.016644691189821193,
    0.013876128823070748,
    0.01189670994589177,
    0.010411265261972096,
    0.009255462182712733,
    0.00833056343336287,
    0.007573675487951841,
    0.00694284010720953,
    0.006408994188004207,
    0.0059513701127588475,
    0.005554733551962801,
];

pub(super) fn stirlerr(n: u64) -> f64 {
    if n <= 15 {
        return STIRLERR_SMALL[n as usize];
    }
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    let n = n as f64;
    let nn = n * n;
    if n > 500.0 {
        (S0 - S1 / nn) / n
    } else if n > 80.0 {
        (S0 - (S1 - S2 / nn) / nn) / n
    } else if n > 35.0 {
        (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n
    }
}

/// Deviance term x ln(x / np) + np - x, computed without cancellation when x is close to np.
pub(super) fn bd0(x: f64, np: f64) -> f64 {
    if (x - np).abs() < 0.1 * (x + np) {
        let mut v = (x - np) / (x + np);
        let mut s = (x - np) * v;
        if s.abs() < f64::MIN_POSITIVE {
            return s;
        }
        let mut ej = 2.0 * x * v;
        v *= v;
        for j in 1..1000 {
            ej *= v;
            let s1 = s + ej / f64::from(2 * j + 1);
            if s1 == s {
                return s1;
            }
            s = s1;
        }
        return s;
    }
    x * (x / np).ln() + np - x
}

/// ln P(X = k) for X ~ Binomial(n, p), 0 <= k <= n, 0 <= p <= 1.
pub(super) fn ln_binom_pmf(k: u64, n: u64, p: f64) -> f64 {
    // For p >= 0.5, 1 - p is exact (Sterbenz); for p < 0.5 it is within one rounding of q >= 0.5.
    let q = 1.0 - p;
    if p == 0.0 {
        return if k == 0 { 0.0 } else { f64::NEG_INFINITY };
    }
    if q == 0.0 {
        return if k == n { 0.0 } else { f64::NEG_INFINITY };
    }
    let nf = n as f64;
    if k == 0 {
        if n == 0 {
            return 0.0;
        }
        return if p < 0.1 { -bd0(nf, nf * q) - nf * p } else { nf * q.ln() };
    }
    if k == n {
        return if q < 0.1 { -bd0(nf, nf * p) - nf * q } else { nf * p.ln() };
    }
    let kf = k as f64;
    let mf = (n - k) as f64;
    let lc = stirlerr(n) - stirlerr(k) - stirlerr(n - k) - bd0(kf, nf * p) - bd0(mf, nf * q);
    // ln(2π k (n − k) / n) from exact integer logs; R's log1p(−k/n) rounds k/n first, which
    // costs ~1e-12 when k is close to n.
    let lf = LN_2PI + kf.ln() + mf.ln() - nf.ln();
    lc - 0.5 * lf
}

/// ln P(X >= k) for X ~ Binomial(n, p), for k at or above the mode, where successive pmf terms
/// from k upward have ratios below 1 that keep decreasing.
pub(super) fn ln_binom_upper_tail(k: u64, n: u64, p: f64) -> f64 {
    let ln_first = ln_binom_pmf(k, n, p);
    if ln_first == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let odds = p / (1.0 - p);
    let (mut term, mut sum, mut j) = (1.0_f64, 1.0_f64, k);
    while j < n {
        let ratio = (n - j) as f64 / (j + 1) as f64 * odds;
        term *= ratio;
        sum += term;
        j += 1;
        // Later ratios are smaller than this one, so the rest of the tail is at most the
        // geometric series term * ratio / (1 - ratio); stop once that is below double precision.
        if term == 0.0 || (ratio < 1.0 && term * ratio / (1.0 - ratio) <= sum * 1e-17) {
            break;
        }
    }
    ln_first + sum.ln()
}

/// Clopper–Pearson lower limit for 1 <= x <= n: the p at which P(X >= x | n, p) = tail.
pub(super) fn clopper_pearson_lower(x: u64, n: u64, tail: f64) -> f64 {
    if x == n {
        // P(X >= n) = p^n has the closed form root tail^(1/n).
        return (tail.ln() / n as f64).exp();
    }
    let ln_tail = tail.ln();
    // P(X >= x) increases with p, and at p = x/n (where x is the median) it is at least 1/2 >
    // tail, so the root lies in (0, x/n]. Within that bracket x is at or above the mode, which
    // ln_binom_upper_tail requires.
    let (mut lo, mut hi) = (0.0_f64, x as f64 / n as f64);
    // Bisection: slower than Newton but cannot leave the bracket; each halving costs one tail
    // sum of O(sqrt(n)) terms and ~60-120 halvings reach full double precision.
    for _ in 0..2000 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if ln_binom_upper_tail(x, n, mid) < ln_tail {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= hi * 2.0 * f64::EPSILON {
            break;
        }
    }
    0.5 * (lo + hi)
}
