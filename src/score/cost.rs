//! What a run cost, and what each backend would cost at the suite's volume.
//!
//! Per-token backends are priced per record from the tokens the server reported (cached input
//! at the cached price when the provider gives one). Fixed-price backends cost the same whatever
//! they answer, so their cost per request depends on volume: `annual = monthly × 12 × instances`,
//! `per request = annual / 365 / requests per day`. An unknown price stays unknown.

use crate::cost::{self, Pricing, Projection};
use crate::journal::{BackendMeta, RunMeta};
use crate::stats::{bootstrap_interval, BootstrapConfig, Interval};

use super::{BackendScores, RunScores};

#[derive(Debug, Clone, PartialEq)]
pub struct CostSummary {
    /// What the run's requests cost; `None` when the price (or, for fixed prices, the volume) is
    /// unknown.
    pub total_usd: Option<f64>,
    pub per_request_usd: Option<f64>,
    pub per_correct: Option<Interval>,
    /// At the suite's volume.
    pub projection: Option<Projection>,
    /// Why a figure is missing, or what to keep in mind.
    pub notes: Vec<String>,
    /// Days since the built-in price was checked, when it is older than the staleness limit.
    pub stale_days: Option<i64>,
}

/// The cost of backend `index` in the run.
pub fn summarize(
    meta: &RunMeta,
    scores: &RunScores,
    index: usize,
    bootstrap: &BootstrapConfig,
) -> CostSummary {
    let backend = &meta.backends[index];
    let s = &scores.backends[index];
    let mut notes = Vec::new();
    let Some(price) = &backend.price else {
        notes.push(unknown_price_note(backend));
        return CostSummary {
            total_usd: None,
            per_request_usd: None,
            per_correct: None,
            projection: None,
            notes,
            stale_days: None,
        };
    };
    let stale_days = price.as_of.as_deref().and_then(|as_of| {
        let age = cost::price_age_days(as_of, cost::today_days_since_epoch()?)?;
        (age > cost::STALE_AFTER_DAYS).then_some(age)
    });
    if let Some(days) = stale_days {
        notes.push(format!("the built-in price is {days} days old; check it and set `pricing:` on the backend if it changed"));
    }
    if s.tokens.estimated {
        notes.push("some token counts are estimates (the server sent no usage)".into());
    }
    let rpd = meta.requests_per_day;
    // A backend that ran in batch mode pays its provider's batch price for every request.
    let pricing = match backend.batch.as_ref().and_then(|b| b.discount.as_ref()) {
        Some(discount) => price.pricing.with_batch_discount(discount),
        None => price.pricing.clone(),
    };
    let item_costs: Option<Vec<f64>> = match &pricing {
        Pricing::PerToken { .. } => s
            .item_tokens
            .iter()
            .map(|t| cost::request_tokens_cost_usd(&pricing, &t.billed()))
            .collect(),
        Pricing::Fixed { .. } => {
            match rpd.and_then(|r| cost::project(&price.pricing, 0.0, 0.0, r).ok()) {
                Some(p) => Some(
                    s.outcomes
                        .iter()
                        .map(|o| if o.correct().is_some() { p.per_request_usd } else { 0.0 })
                        .collect(),
                ),
                None => {
                    notes.push(
                        "a fixed price has no cost per request without `volume.requests_per_day`"
                            .into(),
                    );
                    None
                }
            }
        }
    };
    let Some(item_costs) = item_costs else {
        return CostSummary {
            total_usd: None,
            per_request_usd: None,
            per_correct: None,
            projection: None,
            notes,
            stale_days,
        };
    };
    let total: f64 = item_costs.iter().sum();
    let per_request = (s.answered > 0).then(|| total / s.answered as f64);
    let per_correct = per_correct_interval(&item_costs, s, bootstrap);
    let projection = match (rpd, per_request, &price.pricing) {
        (Some(r), Some(per), Pricing::PerToken { .. }) => {
            // Project from the measured cost per request, which includes any cache discount.
            let daily = per * r;
            Some(Projection {
                per_request_usd: per,
                daily_usd: daily,
                annual_usd: daily * 365.0,
                instances_needed: None,
            })
        }
        (Some(r), _, Pricing::Fixed { .. }) => cost::project(&price.pricing, 0.0, 0.0, r).ok(),
        _ => None,
    };
    CostSummary {
        total_usd: Some(total),
        per_request_usd: per_request,
        per_correct,
        projection,
        notes,
        stale_days,
    }
}

fn unknown_price_note(backend: &BackendMeta) -> String {
    match &backend.model {
        Some(model) => format!("no price is known for `{model}`; add `pricing:` to the backend"),
        None => {
            "no price given; add `pricing:` to the backend (e.g. `monthly_usd` for self-hosted)"
                .into()
        }
    }
}

/// Cost per correct answer, `Σ cost / Σ correct`, with a percentile bootstrap over items.
fn per_correct_interval(
    item_costs: &[f64],
    s: &BackendScores,
    bootstrap: &BootstrapConfig,
) -> Option<Interval> {
    if s.correct == 0 {
        return None;
    }
    // Resample items, not samples: the samples of one item are not independent.
    let epochs = s.epochs.max(1);
    let items = item_costs.len() / epochs;
    let mut correct = vec![0.0; items];
    let mut costs = vec![0.0; items];
    for (sample, (o, c)) in s.outcomes.iter().zip(item_costs).enumerate() {
        correct[sample / epochs] += if o.correct() == Some(true) { 1.0 } else { 0.0 };
        costs[sample / epochs] += c;
    }
    let ratio = |idx: &[usize]| {
        let c: f64 = idx.iter().map(|&i| correct[i]).sum();
        let t: f64 = idx.iter().map(|&i| costs[i]).sum();
        if c > 0.0 {
            t / c
        } else {
            f64::NAN
        }
    };
    match bootstrap_interval(items, bootstrap, ratio) {
        Ok(b) => Some(b.interval),
        Err(_) => {
            let estimate = item_costs.iter().sum::<f64>() / s.correct as f64;
            Some(Interval { estimate, low: estimate, high: estimate })
        }
    }
}

/// Requests per day above which the fixed-price backend `fixed` is first cheaper than the
/// per-token backend `per_token` (at the latter's measured tokens per request), and above which it
/// stays cheaper whatever number of instances the volume needs.
pub fn break_even(
    meta: &RunMeta,
    scores: &RunScores,
    per_token: usize,
    fixed: usize,
) -> (Option<f64>, Option<f64>) {
    let (Some(pt), Some(fx)) =
        (meta.backends[per_token].price.as_ref(), meta.backends[fixed].price.as_ref())
    else {
        return (None, None);
    };
    let s = &scores.backends[per_token];
    if s.answered == 0 {
        return (None, None);
    }
    let n = s.answered as f64;
    let (input, output) = (s.tokens.input as f64 / n, s.tokens.output as f64 / n);
    (
        cost::break_even_requests_per_day(&pt.pricing, input, output, &fx.pricing),
        cost::sustained_break_even_requests_per_day(&pt.pricing, input, output, &fx.pricing),
    )
}
