//! Pricing and cost projection: what a backend costs per request, per day,
//! per year at a given volume, and per correct answer.
//!
//! Two pricing shapes are supported:
//! * per-token API pricing (USD per million input/output tokens), looked up
//!   in a built-in table compiled from `data/prices.json`;
//! * fixed monthly pricing for self-hosted backends, optionally with a
//!   per-instance capacity so that volume beyond it needs more instances.
//!
//! Every function validates its numeric inputs and reports bad ones as a
//! [`CostError`] (or `None`) instead of panicking or producing a silent zero
//! price: a cost report that quietly says "$0" is worse than one that says
//! "unknown".

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::time::{days_from_civil, is_valid_date};

/// A price whose `as_of` date is more than this many days before today is
/// flagged as stale in reports.
pub const STALE_AFTER_DAYS: i64 = 180;

const TOKENS_PER_MTOK: f64 = 1_000_000.0;
const SECONDS_PER_DAY: f64 = 86_400.0;
const DAYS_PER_YEAR: f64 = 365.0;
const MONTHS_PER_YEAR: f64 = 12.0;

/// Relative slack when turning load into an instance count, so that a volume
/// exactly at capacity that picks up float noise (e.g. `x / (86400 * 0.1)`
/// landing one ulp above an integer) does not pay for an extra instance.
const CAPACITY_SLACK: f64 = 1e-12;

/// Instance counts above this are not representable exactly in `f64`; no real
/// deployment gets near it, so treat it as an input error.
const MAX_INSTANCES: f64 = 9_007_199_254_740_992.0; // 2^53

/// Beyond this many instances a sustained break-even is reported as never.
const MAX_BREAK_EVEN_INSTANCES: f64 = 1_000_000.0;

const BUILTIN_PRICES_JSON: &str = include_str!("../data/prices.json");

/// Why a cost could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    /// A quantity (tokens, requests, price) was negative, NaN or infinite.
    #[error("{what} must be a finite non-negative number, got {value}")]
    InvalidQuantity { what: &'static str, value: f64 },
    /// Cached input tokens exceeded total input tokens.
    #[error("cached input tokens ({cached}) exceed total input tokens ({input})")]
    CachedExceedsInput { cached: f64, input: f64 },
    /// Input tokens read from and written to the prompt cache together exceeded total input
    /// tokens.
    #[error("cache reads ({read}) and cache writes ({write}) exceed total input tokens ({input})")]
    CacheTokensExceedInput { read: f64, write: f64, input: f64 },
    /// The operation needs the other pricing shape (e.g. token costs of a
    /// fixed-price backend).
    #[error("expected {expected} pricing")]
    WrongPricingKind { expected: &'static str },
    /// Per-request cost of a fixed-price backend at zero volume is undefined.
    #[error("requests per day must be above zero to spread a fixed cost per request")]
    ZeroRequestsPerDay,
    /// `capacity_rps` was zero, negative or NaN.
    #[error("capacity_rps must be a positive number, got {0}")]
    InvalidCapacity(f64),
    /// The volume needs more instances than can be counted exactly.
    #[error("volume needs {0} instances, which is beyond any sensible deployment")]
    TooManyInstances(f64),
    /// The price table could not be parsed or failed validation.
    #[error("invalid price table: {0}")]
    PriceTable(String),
}

/// How a backend is billed.
///
/// Untagged so that a price-table entry or config block is just the fields:
/// `{"input_per_mtok": .., "output_per_mtok": ..}` or `{"monthly_usd": ..}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pricing {
    /// Pay per token, in USD per million tokens.
    PerToken {
        input_per_mtok: f64,
        output_per_mtok: f64,
        /// Price of input tokens served from the provider's prompt cache;
        /// `None` means no cache discount (cached tokens bill as input).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cached_input_per_mtok: Option<f64>,
        /// Price of input tokens written to the provider's prompt cache (Anthropic's 5-minute
        /// cache writes, 1.25× input); `None` means writes bill as input.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_write_per_mtok: Option<f64>,
    },
    /// A flat monthly cost per instance (self-hosted GPU box, reserved
    /// endpoint). `capacity_rps` is the sustained requests per second one
    /// instance handles; `None` means one instance is assumed to suffice.
    Fixed {
        monthly_usd: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capacity_rps: Option<f64>,
    },
}

impl Pricing {
    /// Checks that every price is finite and non-negative and that a given
    /// capacity is positive.
    pub fn validate(&self) -> Result<(), CostError> {
        match *self {
            Pricing::PerToken {
                input_per_mtok,
                output_per_mtok,
                cached_input_per_mtok,
                cache_write_per_mtok,
            } => {
                non_negative("input price per million tokens", input_per_mtok)?;
                non_negative("output price per million tokens", output_per_mtok)?;
                if let Some(cached) = cached_input_per_mtok {
                    non_negative("cached input price per million tokens", cached)?;
                }
                if let Some(write) = cache_write_per_mtok {
                    non_negative("cache write price per million tokens", write)?;
                }
                Ok(())
            }
            Pricing::Fixed { monthly_usd, capacity_rps } => {
                non_negative("monthly cost", monthly_usd)?;
                if let Some(cap) = capacity_rps {
                    check_capacity(cap)?;
                }
                Ok(())
            }
        }
    }
}

/// One row of the price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceEntry {
    /// Canonical model id, e.g. `gpt-4o-mini`; fine-tuned inference rows are
    /// named `ft:<base model id>`.
    pub model: String,
    /// Other ids that bill at the same price (dated snapshots, `-latest`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Always [`Pricing::PerToken`] in a validated table.
    #[serde(flatten)]
    pub pricing: Pricing,
    /// USD per million training tokens for fine-tuning this model (on `ft:<base>` rows); the
    /// tokens are those of the training file times the epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_per_mtok: Option<f64>,
    /// Date (YYYY-MM-DD) the price was last verified against `source`.
    pub as_of: String,
    /// Public pricing page the price was taken from.
    pub source: String,
}

#[derive(Deserialize)]
struct RawPriceTable {
    schema_version: u32,
    currency: String,
    unit: String,
    models: Vec<PriceEntry>,
    #[serde(default)]
    batch_discounts: Vec<BatchDiscount>,
}

/// What a provider's batch API (OpenAI's Batch API, Anthropic's Message Batches) charges, as a
/// share of the standard per-token price of the same model: requests that wait up to a day are
/// billed at `price_multiplier` times the input, cached-input and output prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchDiscount {
    /// The backend provider it applies to (`openai`, `anthropic`).
    pub provider: String,
    /// The share of the standard price a batch request costs, in (0, 1].
    pub price_multiplier: f64,
    /// Date (YYYY-MM-DD) the discount was last verified against `source`.
    pub as_of: String,
    /// Public page that states the discount.
    pub source: String,
}

impl Pricing {
    /// This price under a batch discount: per-token prices times the multiplier; a fixed price
    /// is what it is however requests are sent.
    pub fn with_batch_discount(&self, discount: &BatchDiscount) -> Pricing {
        let m = discount.price_multiplier;
        match *self {
            Pricing::PerToken {
                input_per_mtok,
                output_per_mtok,
                cached_input_per_mtok,
                cache_write_per_mtok,
            } => Pricing::PerToken {
                input_per_mtok: input_per_mtok * m,
                output_per_mtok: output_per_mtok * m,
                cached_input_per_mtok: cached_input_per_mtok.map(|c| c * m),
                // Anthropic's Message Batches discount prompt-cache writes alike.
                cache_write_per_mtok: cache_write_per_mtok.map(|w| w * m),
            },
            Pricing::Fixed { .. } => self.clone(),
        }
    }
}

/// A validated price table with an index over model ids and aliases.
#[derive(Debug, Clone)]
pub struct PriceTable {
    currency: String,
    unit: String,
    models: Vec<PriceEntry>,
    /// Model id or alias → index into `models`.
    index: HashMap<String, usize>,
    batch_discounts: Vec<BatchDiscount>,
}

impl PriceTable {
    /// The only `schema_version` this code understands.
    pub const SCHEMA_VERSION: u32 = 1;

    /// Parses and validates a price table in the `data/prices.json` format.
    ///
    /// Rejects: another schema version, currency or unit (all arithmetic here
    /// assumes USD per million tokens), non-per-token entries, invalid prices
    /// or `as_of` dates, and an id or alias that appears twice (lookup would
    /// otherwise depend on row order).
    pub fn from_json(json: &str) -> Result<PriceTable, CostError> {
        let raw: RawPriceTable =
            serde_json::from_str(json).map_err(|e| CostError::PriceTable(e.to_string()))?;
        if raw.schema_version != Self::SCHEMA_VERSION {
            return Err(CostError::PriceTable(format!(
                "schema_version {} is not supported (expected {})",
                raw.schema_version,
                Self::SCHEMA_VERSION
            )));
        }
        if raw.currency != "USD" {
            return Err(CostError::PriceTable(format!(
                "currency {:?} is not supported (expected \"USD\")",
                raw.currency
            )));
        }
        if raw.unit != "per million tokens" {
            return Err(CostError::PriceTable(format!(
                "unit {:?} is not supported (expected \"per million tokens\")",
                raw.unit
            )));
        }

        let mut index = HashMap::new();
        for (i, entry) in raw.models.iter().enumerate() {
            let bad = |msg: String| CostError::PriceTable(format!("{}: {msg}", entry.model));
            if entry.model.trim().is_empty() {
                return Err(CostError::PriceTable(format!("entry {i} has an empty model id")));
            }
            if !matches!(entry.pricing, Pricing::PerToken { .. }) {
                return Err(bad("price table entries must be per-token".into()));
            }
            entry.pricing.validate().map_err(|e| bad(e.to_string()))?;
            if parse_date(&entry.as_of).is_none() {
                return Err(bad(format!("as_of {:?} is not a YYYY-MM-DD date", entry.as_of)));
            }
            for key in std::iter::once(&entry.model).chain(&entry.aliases) {
                if index.insert(key.clone(), i).is_some() {
                    return Err(bad(format!("id {key:?} is listed more than once")));
                }
            }
        }

        for (i, d) in raw.batch_discounts.iter().enumerate() {
            let bad = |msg: String| {
                CostError::PriceTable(format!("batch_discounts[{i}] ({}): {msg}", d.provider))
            };
            if !(d.price_multiplier.is_finite()
                && d.price_multiplier > 0.0
                && d.price_multiplier <= 1.0)
            {
                return Err(bad(format!(
                    "price_multiplier {} is not in (0, 1]",
                    d.price_multiplier
                )));
            }
            if parse_date(&d.as_of).is_none() {
                return Err(bad(format!("as_of {:?} is not a YYYY-MM-DD date", d.as_of)));
            }
            if raw.batch_discounts[..i].iter().any(|o| o.provider == d.provider) {
                return Err(bad("the provider is listed more than once".into()));
            }
        }

        Ok(PriceTable {
            currency: raw.currency,
            unit: raw.unit,
            models: raw.models,
            index,
            batch_discounts: raw.batch_discounts,
        })
    }

    /// The batch discount of `provider`'s batch API; `None` when the table has none (its batch
    /// requests are then priced like the others).
    pub fn batch_discount(&self, provider: &str) -> Option<&BatchDiscount> {
        self.batch_discounts.iter().find(|d| d.provider == provider)
    }

    /// The table shipped in the binary (`data/prices.json`), parsed once.
    pub fn builtin() -> &'static PriceTable {
        static BUILTIN: OnceLock<PriceTable> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The JSON is compiled in and checked by the `builtin_table_is_sane`
            // test, so failure here is a build defect, not bad user input.
            PriceTable::from_json(BUILTIN_PRICES_JSON)
                .unwrap_or_else(|e| panic!("built-in data/prices.json is invalid: {e}"))
        })
    }

    /// All entries, in file order.
    pub fn models(&self) -> &[PriceEntry] {
        &self.models
    }

    /// Currency of every price (always `USD`).
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// Unit of every price (always `per million tokens`).
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// Looks up a model's price.
    ///
    /// Resolution order:
    /// 1. exact model id or alias;
    /// 2. OpenAI fine-tune ids `ft:<base>:<org>[:<suffix>]:<id>`: resolve
    ///    `<base>` by rules 1 and 3, then take the `ft:<canonical base>` row
    ///    (fine-tuned inference is priced higher than the base model, so
    ///    there is deliberately no fallback to the base price);
    /// 3. a dated snapshot `<id>-YYYY-MM-DD` with no row of its own bills
    ///    like `<id>` (e.g. `gpt-4o-2024-11-20` → `gpt-4o`). Snapshots priced
    ///    differently (like `gpt-4o-2024-05-13`) need their own row.
    ///
    /// Unknown models give `None`, never a zero price.
    pub fn lookup(&self, model: &str) -> Option<&PriceEntry> {
        let model = model.trim();
        if let Some(entry) = self.exact(model) {
            return Some(entry);
        }
        if let Some(rest) = model.strip_prefix("ft:") {
            // `split` always yields at least one item, possibly empty.
            let base = rest.split(':').next().unwrap_or_default();
            let base_entry = self.lookup_base(base)?;
            if base_entry.model.starts_with("ft:") {
                return None; // `ft:ft:...` is not a real id
            }
            return self.exact(&format!("ft:{}", base_entry.model));
        }
        self.lookup_base(model)
    }

    /// The price of fine-tuning `model` (a base model such as `gpt-4o-mini`, or its `ft:` row),
    /// USD per million training tokens; `None` when the table has none.
    pub fn training_price(&self, model: &str) -> Option<(&PriceEntry, f64)> {
        let model = model.trim();
        let key = if model.starts_with("ft:") { model.to_string() } else { format!("ft:{model}") };
        let entry = self.lookup(&key)?;
        Some((entry, entry.training_per_mtok?))
    }

    fn exact(&self, key: &str) -> Option<&PriceEntry> {
        self.index.get(key).and_then(|&i| self.models.get(i))
    }

    fn lookup_base(&self, model: &str) -> Option<&PriceEntry> {
        self.exact(model).or_else(|| strip_date_suffix(model).and_then(|base| self.exact(base)))
    }
}

/// `gpt-4o-2024-08-06` → `Some("gpt-4o")`; anything without a valid trailing
/// `-YYYY-MM-DD` → `None`.
fn strip_date_suffix(model: &str) -> Option<&str> {
    let split = model.len().checked_sub(11)?;
    // `get` rather than indexing: `split` may fall inside a multi-byte char.
    let (base, suffix) = (model.get(..split)?, model.get(split..)?);
    let date = suffix.strip_prefix('-')?;
    if base.is_empty() || parse_date(date).is_none() {
        return None;
    }
    Some(base)
}

/// Days since 1970-01-01 of a strict `YYYY-MM-DD` date, or `None` if the
/// string is not one (wrong shape, month 13, 2025-02-29, ...).
fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None; // rejects signs and spaces that `parse` would accept
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (month, day) = (u32::try_from(month).ok()?, u32::try_from(day).ok()?);
    if !is_valid_date(year, month, day) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Today (UTC) as days since 1970-01-01, for [`price_age_days`]. `None` if the
/// system clock is before the epoch.
pub fn today_days_since_epoch() -> Option<i64> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs / 86_400).ok()
}

/// Age of a price in days: `today - as_of`, with `today` given as days since
/// the Unix epoch so callers (and tests) control the clock. Negative when
/// `as_of` is in the future; `None` when `as_of` is not a valid `YYYY-MM-DD`.
pub fn price_age_days(as_of: &str, today_days_since_epoch: i64) -> Option<i64> {
    parse_date(as_of).map(|d| today_days_since_epoch - d)
}

/// Whether a price is older than [`STALE_AFTER_DAYS`]; `None` for an invalid date.
pub fn is_stale(as_of: &str, today_days_since_epoch: i64) -> Option<bool> {
    price_age_days(as_of, today_days_since_epoch).map(|age| age > STALE_AFTER_DAYS)
}

fn non_negative(what: &'static str, value: f64) -> Result<f64, CostError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(CostError::InvalidQuantity { what, value })
    }
}

fn check_capacity(capacity_rps: f64) -> Result<f64, CostError> {
    // Infinite capacity is allowed: one instance carries any volume.
    if capacity_rps.is_nan() || capacity_rps <= 0.0 {
        return Err(CostError::InvalidCapacity(capacity_rps));
    }
    Ok(capacity_rps)
}

/// USD for one request under per-token pricing:
/// `((input − cached) × input_price + cached × cached_price + output × output_price) / 1e6`.
fn per_token_request_usd(
    pricing: &Pricing,
    input_tokens: f64,
    output_tokens: f64,
    cached_input_tokens: f64,
) -> Result<f64, CostError> {
    let tokens = RequestTokens {
        input: input_tokens,
        output: output_tokens,
        cached_input: cached_input_tokens,
        cache_write_input: 0.0,
    };
    Ok(per_token_request_micro_usd(pricing, &tokens)? / TOKENS_PER_MTOK)
}

/// The token counts one request is billed for; `cached_input` and `cache_write_input` are
/// parts of `input`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestTokens {
    pub input: f64,
    pub output: f64,
    /// Read from the provider's prompt cache.
    pub cached_input: f64,
    /// Written to the provider's prompt cache (Anthropic bills these above the input price).
    pub cache_write_input: f64,
}

/// The cost of one request in millionths of a dollar (USD per million tokens × tokens).
fn per_token_request_micro_usd(
    pricing: &Pricing,
    tokens: &RequestTokens,
) -> Result<f64, CostError> {
    let Pricing::PerToken {
        input_per_mtok,
        output_per_mtok,
        cached_input_per_mtok,
        cache_write_per_mtok,
    } = *pricing
    else {
        return Err(CostError::WrongPricingKind { expected: "per-token" });
    };
    pricing.validate()?;
    let input = non_negative("input tokens", tokens.input)?;
    let output = non_negative("output tokens", tokens.output)?;
    let cached = non_negative("cached input tokens", tokens.cached_input)?;
    let written = non_negative("cache write tokens", tokens.cache_write_input)?;
    if cached > input {
        return Err(CostError::CachedExceedsInput { cached, input });
    }
    if cached + written > input {
        return Err(CostError::CacheTokensExceedInput { read: cached, write: written, input });
    }
    // No published cache price means no discount (or surcharge), not free tokens.
    let cached_price = cached_input_per_mtok.unwrap_or(input_per_mtok);
    let write_price = cache_write_per_mtok.unwrap_or(input_per_mtok);
    // Sum the dollar-per-million products first and divide once: the
    // products are exact for typical inputs, so the only rounding is the
    // final division.
    let micro_usd = (input - cached - written) * input_per_mtok
        + cached * cached_price
        + written * write_price
        + output * output_per_mtok;
    Ok(micro_usd)
}

/// Cost in USD of one request under [`Pricing::PerToken`]:
///
/// `((input − cached) × input_per_mtok + cached × cached_input_per_mtok + output × output_per_mtok) / 1e6`
///
/// `cached_input_tokens` is the part of `input_tokens` served from the prompt
/// cache; without a cached price those tokens bill at the input price.
/// `None` for fixed pricing, negative/NaN/infinite counts or prices, or
/// cached > input.
pub fn request_cost_usd(
    pricing: &Pricing,
    input_tokens: f64,
    output_tokens: f64,
    cached_input_tokens: f64,
) -> Option<f64> {
    per_token_request_usd(pricing, input_tokens, output_tokens, cached_input_tokens).ok()
}

/// Cost in USD of one request under [`Pricing::PerToken`], prompt-cache writes included:
///
/// `((input − cached − written) × input_per_mtok + cached × cached_input_per_mtok
///   + written × cache_write_per_mtok + output × output_per_mtok) / 1e6`
///
/// Without a cache-write price, written tokens bill at the input price. `None` where
/// [`request_cost_usd`] is, and when reads and writes together exceed the input.
pub fn request_tokens_cost_usd(pricing: &Pricing, tokens: &RequestTokens) -> Option<f64> {
    per_token_request_micro_usd(pricing, tokens).ok().map(|micro| micro / TOKENS_PER_MTOK)
}

/// Projected spend of one backend at a given volume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Projection {
    pub per_request_usd: f64,
    pub daily_usd: f64,
    pub annual_usd: f64,
    /// Instances a fixed-price backend needs for the volume; `None` for
    /// per-token pricing.
    pub instances_needed: Option<u64>,
}

/// Instances of a fixed-price backend needed for a volume:
///
/// `max(1, ceil(requests_per_day / 86400 / capacity_rps))`, or 1 when the
/// capacity is unknown. A load within 1e-12 (relative) of a whole number of
/// instances counts as that number, to absorb float noise at exact capacity.
pub fn instances_needed(
    requests_per_day: f64,
    capacity_rps: Option<f64>,
) -> Result<u64, CostError> {
    let rpd = non_negative("requests per day", requests_per_day)?;
    let Some(cap) = capacity_rps else {
        return Ok(1);
    };
    let cap = check_capacity(cap)?;
    let load = rpd / (SECONDS_PER_DAY * cap); // in instances; 0 for infinite capacity
    let instances = (load * (1.0 - CAPACITY_SLACK)).ceil().max(1.0);
    if instances > MAX_INSTANCES {
        return Err(CostError::TooManyInstances(instances));
    }
    // In range [1, 2^53] and integral, so the cast is exact.
    Ok(instances as u64)
}

/// Projects the cost of serving `requests_per_day` requests.
///
/// * Per-token: `per_request = (mean_input × input_per_mtok + mean_output ×
///   output_per_mtok) / 1e6`; `daily = per_request × requests_per_day`;
///   `annual = daily × 365`. No prompt-cache discount is assumed (use
///   [`request_cost_usd`] for that).
/// * Fixed: `instances` from [`instances_needed`]; `annual = monthly_usd × 12
///   × instances`; `daily = annual / 365`; `per_request = daily /
///   requests_per_day` (so zero volume is an error here).
pub fn project(
    pricing: &Pricing,
    mean_input_tokens: f64,
    mean_output_tokens: f64,
    requests_per_day: f64,
) -> Result<Projection, CostError> {
    let rpd = non_negative("requests per day", requests_per_day)?;
    match *pricing {
        Pricing::PerToken { .. } => {
            let per_request_usd =
                per_token_request_usd(pricing, mean_input_tokens, mean_output_tokens, 0.0)?;
            // Multiply before dividing by a million: with round prices the products are exact,
            // so $0.15/M × 500 tokens × 50,000 requests is exactly $3.75, not 3.7499999999999996.
            let mean = RequestTokens {
                input: mean_input_tokens,
                output: mean_output_tokens,
                ..RequestTokens::default()
            };
            let micro = per_token_request_micro_usd(pricing, &mean)?;
            let daily_usd = micro * rpd / TOKENS_PER_MTOK;
            Ok(Projection {
                per_request_usd,
                daily_usd,
                annual_usd: daily_usd * DAYS_PER_YEAR,
                instances_needed: None,
            })
        }
        Pricing::Fixed { monthly_usd, capacity_rps } => {
            // Token counts do not change a fixed bill, but garbage in them
            // still signals a caller bug worth reporting.
            non_negative("mean input tokens", mean_input_tokens)?;
            non_negative("mean output tokens", mean_output_tokens)?;
            pricing.validate()?;
            if rpd == 0.0 {
                return Err(CostError::ZeroRequestsPerDay);
            }
            let instances = instances_needed(rpd, capacity_rps)?;
            let annual_usd = monthly_usd * MONTHS_PER_YEAR * instances as f64;
            let daily_usd = annual_usd / DAYS_PER_YEAR;
            Ok(Projection {
                per_request_usd: daily_usd / rpd,
                daily_usd,
                annual_usd,
                instances_needed: Some(instances),
            })
        }
    }
}

/// Per-request cost `c` of the per-token side, one-instance break-even
/// volume `B = monthly × 12 / (365 × c)`, and the fixed side's capacity.
/// `None` when either side is the wrong shape or invalid, or `c == 0`.
fn break_even_parts(
    per_token: &Pricing,
    mean_input: f64,
    mean_output: f64,
    fixed: &Pricing,
) -> Option<(f64, Option<f64>)> {
    let c = per_token_request_usd(per_token, mean_input, mean_output, 0.0).ok()?;
    if c <= 0.0 {
        return None;
    }
    let Pricing::Fixed { monthly_usd, capacity_rps } = *fixed else {
        return None;
    };
    fixed.validate().ok()?;
    let b = monthly_usd * MONTHS_PER_YEAR / (DAYS_PER_YEAR * c);
    b.is_finite().then_some((b, capacity_rps))
}

/// Smallest volume (requests/day) at which the fixed-price backend's annual
/// cost is at most the per-token backend's.
///
/// With per-token cost `c` per request, one-instance break-even
/// `B = monthly × 12 / (365 × c)` and per-instance capacity
/// `C = capacity_rps × 86400` requests/day, fixed cost is the step function
/// `12 × monthly × n` on the volume range `((n−1)·C, n·C]`. Within that step
/// fixed ≤ per-token iff `v ≥ n·B`, which lies inside the step iff `B ≤ C`:
/// the condition is the same for every instance count `n`, so the search over
/// `n` ends at `n = 1`. Hence the result is `B` when one instance can carry
/// `B` (or capacity is unknown), and `None` otherwise: a fully loaded
/// instance then costs more per request than the API, at any volume.
///
/// Note that above `B` the per-token backend can win again just past each
/// instance boundary; see [`sustained_break_even_requests_per_day`] for the
/// volume above which the fixed backend stays cheaper.
///
/// `None` also when the per-token request cost is 0, or either pricing is the
/// wrong shape or invalid.
pub fn break_even_requests_per_day(
    per_token: &Pricing,
    mean_input: f64,
    mean_output: f64,
    fixed: &Pricing,
) -> Option<f64> {
    let (b, capacity_rps) = break_even_parts(per_token, mean_input, mean_output, fixed)?;
    // Same instance rule as `project`, so `project(fixed, .., B)` agrees.
    (instances_needed(b, capacity_rps).ok()? == 1).then_some(b)
}

/// Smallest volume `V` such that the fixed-price backend is at most as
/// expensive as the per-token one at every volume `≥ V`.
///
/// With `B` and `C` as in [`break_even_requests_per_day`]: in step `n` the
/// per-token backend is cheaper on `((n−1)·C, n·B)`, which is non-empty iff
/// `n·B > (n−1)·C`, i.e. `n < C / (C − B)`. So `V = N·B` for the largest such
/// `N ≥ 1`. `B` itself when capacity is unknown; `None` when `B ≥ C` (every
/// step has a region where the API is cheaper), when `N` would exceed a
/// million instances (B within about a millionth of C: effectively never), or
/// for the same reasons as [`break_even_requests_per_day`].
pub fn sustained_break_even_requests_per_day(
    per_token: &Pricing,
    mean_input: f64,
    mean_output: f64,
    fixed: &Pricing,
) -> Option<f64> {
    let (b, capacity_rps) = break_even_parts(per_token, mean_input, mean_output, fixed)?;
    let Some(cap) = capacity_rps else {
        return Some(b);
    };
    let c = cap * SECONDS_PER_DAY;
    if !c.is_finite() {
        return Some(b); // unbounded capacity: one instance forever
    }
    if b >= c {
        return None;
    }
    let api_cheaper_in_step = |n: f64| n * b > (n - 1.0) * c;
    // Closed form; when B is a hair below C it explodes, and such a volume
    // is "never" for any real deployment.
    let mut n = ((c / (c - b)).ceil() - 1.0).max(1.0);
    if !n.is_finite() || n > MAX_BREAK_EVEN_INSTANCES {
        return None;
    }
    // The division may be off by a rounding step; fix up by direct test.
    // Bounded so that no float quirk can turn this into a long loop.
    for _ in 0..4 {
        if n > 1.0 && !api_cheaper_in_step(n) {
            n -= 1.0;
        } else if api_cheaper_in_step(n + 1.0) {
            n += 1.0;
        } else {
            break;
        }
    }
    Some(n * b)
}

/// Cost per correct answer: `total_usd / correct`. `None` when nothing was
/// correct (the cost per correct answer is unbounded) or `total_usd` is
/// negative, NaN or infinite.
pub fn cost_per_correct(total_usd: f64, correct: u64) -> Option<f64> {
    if correct == 0 || !total_usd.is_finite() || total_usd < 0.0 {
        return None;
    }
    Some(total_usd / correct as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-9;

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= EPS,
            "expected {expected}, got {actual} (diff {})",
            (actual - expected).abs()
        );
    }

    fn per_token(input: f64, output: f64) -> Pricing {
        Pricing::PerToken {
            input_per_mtok: input,
            output_per_mtok: output,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        }
    }

    fn fixed(monthly_usd: f64, capacity_rps: Option<f64>) -> Pricing {
        Pricing::Fixed { monthly_usd, capacity_rps }
    }

    fn prices(entry: &PriceEntry) -> (f64, f64, Option<f64>) {
        match entry.pricing {
            Pricing::PerToken {
                input_per_mtok, output_per_mtok, cached_input_per_mtok, ..
            } => (input_per_mtok, output_per_mtok, cached_input_per_mtok),
            Pricing::Fixed { .. } => panic!("{} is not per-token", entry.model),
        }
    }

    #[test]
    fn builtin_table_is_sane() {
        let table = PriceTable::builtin();
        assert_eq!(table.currency(), "USD");
        assert_eq!(table.unit(), "per million tokens");
        assert!(table.models().len() >= 18);
        for entry in table.models() {
            let (input, output, cached) = prices(entry);
            assert!(input > 0.0 && output > 0.0, "{}: prices must be > 0", entry.model);
            assert!(output >= input, "{}: output cheaper than input", entry.model);
            if let Some(cached) = cached {
                assert!(cached > 0.0 && cached < input, "{}: cached price", entry.model);
            }
            if let Pricing::PerToken { cache_write_per_mtok: Some(write), .. } = entry.pricing {
                assert!(write > input, "{}: a cache write costs more than input", entry.model);
            }
            assert!(parse_date(&entry.as_of).is_some(), "{}: as_of", entry.model);
            assert!(entry.source.starts_with("https://"), "{}: source", entry.model);
            // Every row must be reachable through lookup by its own id and aliases.
            for key in std::iter::once(&entry.model).chain(&entry.aliases) {
                assert_eq!(table.lookup(key).map(|e| &e.model), Some(&entry.model));
            }
        }
    }

    #[test]
    fn batch_requests_cost_the_listed_share_of_the_standard_price() {
        let table = PriceTable::builtin();
        let openai = table.batch_discount("openai").expect("OpenAI's Batch API discount");
        assert_eq!(openai.price_multiplier, 0.5);
        assert!(openai.source.starts_with("https://") && parse_date(&openai.as_of).is_some());
        assert!(table.batch_discount("local").is_none());
        let mini = &table.lookup("gpt-4o-mini").unwrap().pricing;
        let batch = mini.with_batch_discount(openai);
        assert_eq!(
            batch,
            Pricing::PerToken {
                input_per_mtok: 0.075,
                output_per_mtok: 0.3,
                cached_input_per_mtok: Some(0.0375),
                cache_write_per_mtok: None,
            }
        );
        // 1M input and 1M output tokens: $0.075 + $0.30.
        assert_close(request_cost_usd(&batch, 1e6, 1e6, 0.0).unwrap(), 0.375);
        assert_eq!(fixed(300.0, None).with_batch_discount(openai), fixed(300.0, None));

        let table = |multiplier: &str| {
            PriceTable::from_json(&format!(
                r#"{{"schema_version":1,"currency":"USD","unit":"per million tokens","models":[],"batch_discounts":[{{"provider":"openai","price_multiplier":{multiplier},"as_of":"2026-12-01","source":"https://x"}}]}}"#
            ))
        };
        assert!(table("0.5").is_ok());
        for bad in ["0", "1.5", "-0.5"] {
            let e = table(bad).unwrap_err().to_string();
            assert!(e.contains("batch_discounts[0] (openai)") && e.contains("(0, 1]"), "{e}");
        }
    }

    #[test]
    fn builtin_table_has_required_prices() {
        let table = PriceTable::builtin();
        let expect = [
            ("gpt-4", 30.0, 60.0, None),
            ("gpt-4-turbo", 10.0, 30.0, None),
            ("gpt-4o", 2.50, 10.0, Some(1.25)),
            ("gpt-4o-mini", 0.15, 0.60, Some(0.075)),
            ("gpt-4.1", 2.00, 8.00, Some(0.50)),
            ("gpt-4.1-mini", 0.40, 1.60, Some(0.10)),
            ("gpt-4.1-nano", 0.10, 0.40, Some(0.025)),
            ("gpt-3.5-turbo", 0.50, 1.50, None),
            ("ft:gpt-4o-mini", 0.30, 1.20, Some(0.15)),
            ("ft:gpt-4o", 3.75, 15.0, Some(1.875)),
            ("ft:gpt-4.1", 3.00, 12.0, Some(0.75)),
            ("ft:gpt-4.1-mini", 0.80, 3.20, Some(0.20)),
            ("ft:gpt-4.1-nano", 0.20, 0.80, Some(0.05)),
            ("claude-haiku-4-5", 1.0, 5.0, Some(0.10)),
            ("claude-sonnet-4-5", 3.0, 15.0, Some(0.30)),
            ("claude-sonnet-4-20250514", 3.0, 15.0, Some(0.30)),
            ("claude-3-5-haiku-20241022", 0.80, 4.0, Some(0.08)),
            ("claude-3-haiku-20240307", 0.25, 1.25, Some(0.03)),
        ];
        for (model, input, output, cached) in expect {
            let entry = table.lookup(model).unwrap_or_else(|| panic!("{model} missing"));
            assert_eq!(prices(entry), (input, output, cached), "{model}");
        }
        // Anthropic's list prices (platform.claude.com/docs/en/about-claude/pricing): input,
        // output, cache read and 5-minute cache write (1.25x input), per million tokens.
        let anthropic = [
            ("claude-opus-4-6", 5.0, 25.0, 0.50, 6.25),
            ("claude-opus-4-5-20251101", 5.0, 25.0, 0.50, 6.25),
            ("claude-opus-4-1", 15.0, 75.0, 1.50, 18.75),
            ("claude-opus-4-20250514", 15.0, 75.0, 1.50, 18.75),
            ("claude-sonnet-4-6", 3.0, 15.0, 0.30, 3.75),
            ("claude-sonnet-4-5", 3.0, 15.0, 0.30, 3.75),
            ("claude-haiku-4-5-20251001", 1.0, 5.0, 0.10, 1.25),
            ("claude-3-5-haiku-20241022", 0.80, 4.0, 0.08, 1.0),
            ("claude-3-haiku-20240307", 0.25, 1.25, 0.03, 0.30),
        ];
        for (model, input, output, cached, write) in anthropic {
            let entry = table.lookup(model).unwrap_or_else(|| panic!("{model} missing"));
            let expected = Pricing::PerToken {
                input_per_mtok: input,
                output_per_mtok: output,
                cached_input_per_mtok: Some(cached),
                cache_write_per_mtok: Some(write),
            };
            assert_eq!(entry.pricing, expected, "{model}");
        }
    }

    #[test]
    fn lookup_exact_alias_finetune_snapshot_unknown() {
        let table = PriceTable::builtin();
        let model_of = |id: &str| table.lookup(id).map(|e| e.model.as_str());

        assert_eq!(model_of("gpt-4o-mini"), Some("gpt-4o-mini"));
        assert_eq!(model_of("gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini"));
        assert_eq!(model_of("claude-haiku-4-5-20251001"), Some("claude-haiku-4-5"));
        assert_eq!(model_of("claude-sonnet-4-5-20250929"), Some("claude-sonnet-4-5"));
        assert_eq!(model_of("claude-3-5-haiku-latest"), Some("claude-3-5-haiku-latest"));

        let ft = table.lookup("ft:gpt-4o-mini-2024-07-18:acme::abc123");
        assert_eq!(ft.map(prices), Some((0.30, 1.20, Some(0.15))));
        assert_eq!(
            model_of("ft:gpt-4o-mini-2024-07-18:acme:my-suffix:abc123"),
            Some("ft:gpt-4o-mini")
        );
        assert_eq!(model_of("ft:gpt-4.1-nano-2025-04-14:acme::x"), Some("ft:gpt-4.1-nano"));
        assert_eq!(model_of("ft:gpt-4o-2024-08-06:acme::x"), Some("ft:gpt-4o"));
        // No fine-tune row for the base → unknown, not the base model's price.
        assert_eq!(model_of("ft:gpt-4-0613:acme::x"), None);
        assert_eq!(model_of("ft:"), None);
        assert_eq!(model_of("ft:my-llama:acme::x"), None);

        assert_eq!(model_of("gpt-4o-2024-11-20"), Some("gpt-4o"));
        // Date stripping proper (no alias row for this made-up snapshot).
        assert_eq!(model_of("gpt-4.1-mini-2031-01-02"), Some("gpt-4.1-mini"));
        // An exact row beats stripping: the first gpt-4o snapshot cost more.
        assert_eq!(table.lookup("gpt-4o-2024-05-13").map(prices), Some((5.0, 15.0, None)));
        // Not a valid date → no stripping.
        assert_eq!(model_of("gpt-4o-2024-13-01"), None);

        assert_eq!(model_of("my-llama"), None);
        assert_eq!(model_of(""), None);
        assert_eq!(model_of("-2024-01-01"), None);
        assert_eq!(model_of("ééééééééééééé"), None); // multi-byte: no slicing panic
    }

    #[test]
    fn from_json_rejects_bad_tables() {
        let entry = |extra: &str| {
            format!(
                r#"{{"schema_version":1,"currency":"USD","unit":"per million tokens","models":[{extra}]}}"#
            )
        };
        let ok = r#"{"model":"m","aliases":["m2"],"input_per_mtok":1,"output_per_mtok":2,"as_of":"2025-01-01","source":"https://x"}"#;
        assert!(PriceTable::from_json(&entry(ok)).is_ok());

        let bad = [
            entry(r#"{"model":"m","monthly_usd":1,"as_of":"2025-01-01","source":"https://x"}"#),
            entry(
                r#"{"model":"m","input_per_mtok":-1,"output_per_mtok":2,"as_of":"2025-01-01","source":"s"}"#,
            ),
            entry(
                r#"{"model":"m","input_per_mtok":1,"output_per_mtok":2,"as_of":"2025-02-29","source":"s"}"#,
            ),
            entry(&format!("{ok},{ok}")),
            entry(""),
        ];
        // The empty table is valid, the rest are not.
        let results: Vec<bool> = bad.iter().map(|j| PriceTable::from_json(j).is_ok()).collect();
        assert_eq!(results, [false, false, false, false, true]);

        assert!(PriceTable::from_json(&entry(ok).replace("\"USD\"", "\"EUR\"")).is_err());
        assert!(PriceTable::from_json(
            &entry(ok).replace("\"schema_version\":1", "\"schema_version\":2")
        )
        .is_err());
        assert!(PriceTable::from_json("not json").is_err());
    }

    #[test]
    fn pricing_serde_round_trip() {
        let p: Pricing = serde_json::from_str(r#"{"monthly_usd": 300, "capacity_rps": 0.5}"#)
            .expect("fixed pricing parses");
        assert_eq!(p, fixed(300.0, Some(0.5)));
        let p: Pricing = serde_json::from_str(r#"{"input_per_mtok": 1, "output_per_mtok": 2}"#)
            .expect("per-token pricing parses");
        assert_eq!(p, per_token(1.0, 2.0));
        let json = serde_json::to_string(&p).expect("serializes");
        assert_eq!(json, r#"{"input_per_mtok":1.0,"output_per_mtok":2.0}"#);
    }

    #[test]
    fn price_age_and_staleness() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        for bad in
            ["2025-02-29", "2025-13-01", "2025-00-10", "2025-1-01", "+025-01-01", "2025/01/01", ""]
        {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        let today = days_from_civil(2026, 1, 1);
        assert_eq!(price_age_days("2025-12-31", today), Some(1));
        assert_eq!(price_age_days("2025-01-01", today), Some(365));
        assert_eq!(price_age_days("2026-01-02", today), Some(-1));
        assert_eq!(price_age_days("soon", today), None);
        // Exactly 180 days is not yet stale; 181 is.
        assert_eq!(is_stale("2025-07-05", today), Some(false));
        assert_eq!(price_age_days("2025-07-05", today), Some(STALE_AFTER_DAYS));
        assert_eq!(is_stale("2025-07-04", today), Some(true));
        assert!(today_days_since_epoch().is_some_and(|d| d > days_from_civil(2025, 1, 1)));
    }

    #[test]
    fn request_cost_with_cache() {
        let gpt4o_mini = Pricing::PerToken {
            input_per_mtok: 0.15,
            output_per_mtok: 0.60,
            cached_input_per_mtok: Some(0.075),
            cache_write_per_mtok: None,
        };
        // 1000 in (400 cached), 200 out: (600×0.15 + 400×0.075 + 200×0.60)/1e6 = 240/1e6.
        assert_close(
            request_cost_usd(&gpt4o_mini, 1000.0, 200.0, 400.0).unwrap_or(f64::NAN),
            0.000_24,
        );
        // Without a cached price the cached tokens bill at the input price.
        assert_close(
            request_cost_usd(&per_token(0.15, 0.60), 1000.0, 200.0, 400.0).unwrap_or(f64::NAN),
            0.000_27,
        );
        assert_eq!(request_cost_usd(&gpt4o_mini, 100.0, 0.0, 101.0), None);
        assert_eq!(request_cost_usd(&gpt4o_mini, -1.0, 0.0, 0.0), None);
        assert_eq!(request_cost_usd(&gpt4o_mini, f64::NAN, 0.0, 0.0), None);
        assert_eq!(request_cost_usd(&fixed(300.0, None), 1.0, 1.0, 0.0), None);
    }

    #[test]
    fn request_cost_with_cache_writes() {
        // Claude Sonnet 4.6's list prices: $3 in, $15 out, $0.30 cache read, $3.75 5-minute
        // cache write. 2,000 input tokens of which 1,200 read and 500 written, 100 out:
        // 300 × 3 + 1,200 × 0.30 + 500 × 3.75 + 100 × 15 = 900 + 360 + 1,875 + 1,500
        // = 4,635 micro-dollars.
        let sonnet = Pricing::PerToken {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
            cached_input_per_mtok: Some(0.30),
            cache_write_per_mtok: Some(3.75),
        };
        let tokens = RequestTokens {
            input: 2000.0,
            output: 100.0,
            cached_input: 1200.0,
            cache_write_input: 500.0,
        };
        assert_close(request_tokens_cost_usd(&sonnet, &tokens).unwrap_or(f64::NAN), 0.004_635);
        // Without a write price, writes bill as input: 800 × 3 + 360 + 1,500 = 4,260.
        let no_write = Pricing::PerToken {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
            cached_input_per_mtok: Some(0.30),
            cache_write_per_mtok: None,
        };
        assert_close(request_tokens_cost_usd(&no_write, &tokens).unwrap_or(f64::NAN), 0.004_26);
        // No writes: the same as `request_cost_usd`.
        let plain = RequestTokens { cache_write_input: 0.0, ..tokens };
        assert_eq!(
            request_tokens_cost_usd(&sonnet, &plain),
            request_cost_usd(&sonnet, 2000.0, 100.0, 1200.0)
        );
        let too_many = RequestTokens { cache_write_input: 801.0, ..tokens };
        assert_eq!(request_tokens_cost_usd(&sonnet, &too_many), None);
        let negative = RequestTokens { cache_write_input: -1.0, ..tokens };
        assert_eq!(request_tokens_cost_usd(&sonnet, &negative), None);
    }

    #[test]
    fn per_token_projection_matches_published_figures() {
        // 50,000 requests/day × 500 input tokens at $10/M → $250/day, $91,250/year.
        let p = project(&per_token(10.0, 30.0), 500.0, 0.0, 50_000.0).expect("valid");
        assert_close(p.per_request_usd, 0.005);
        assert_close(p.daily_usd, 250.0);
        assert_close(p.annual_usd, 91_250.0);
        assert_eq!(p.instances_needed, None);

        // Same at $0.15/M → $3.75/day, $1,368.75/year.
        let p = project(&per_token(0.15, 0.60), 500.0, 0.0, 50_000.0).expect("valid");
        assert_close(p.daily_usd, 3.75);
        assert_close(p.annual_usd, 1_368.75);

        // Output tokens count too: (500×0.15 + 100×0.60)/1e6 = 135/1e6 per request.
        let p = project(&per_token(0.15, 0.60), 500.0, 100.0, 50_000.0).expect("valid");
        assert_close(p.daily_usd, 6.75);
        assert_close(p.annual_usd, 2_463.75);

        // Zero volume is fine for per-token pricing.
        assert_close(
            project(&per_token(1.0, 1.0), 10.0, 10.0, 0.0)
                .map(|p| p.annual_usd)
                .unwrap_or(f64::NAN),
            0.0,
        );
    }

    #[test]
    fn fixed_projection_matches_published_figures() {
        for (monthly, annual) in [(300.0, 3_600.0), (600.0, 7_200.0)] {
            let p = project(&fixed(monthly, Some(10.0)), 500.0, 50.0, 50_000.0).expect("valid");
            assert_eq!(p.instances_needed, Some(1));
            assert_close(p.annual_usd, annual);
            assert_close(p.daily_usd, annual / 365.0);
            assert_close(p.per_request_usd, annual / 365.0 / 50_000.0);
            assert!(p.per_request_usd < 0.001);
        }
        // 3600 / 365 / 50000 = 0.000197260273972...
        let p = project(&fixed(300.0, None), 0.0, 0.0, 50_000.0).expect("valid");
        assert_close(p.per_request_usd, 0.000_197_260_273_972_602_7);
        assert_eq!(p.instances_needed, Some(1));
    }

    #[test]
    fn instance_counts() {
        // 50,000/day = 0.5787 rps over a 0.5 rps instance → 2 instances.
        assert_eq!(instances_needed(50_000.0, Some(0.5)), Ok(2));
        let p = project(&fixed(300.0, Some(0.5)), 0.0, 0.0, 50_000.0).expect("valid");
        assert_eq!(p.instances_needed, Some(2));
        assert_close(p.annual_usd, 7_200.0);
        // Exactly at capacity stays at one; one request more needs two.
        assert_eq!(instances_needed(43_200.0, Some(0.5)), Ok(1));
        assert_eq!(instances_needed(43_201.0, Some(0.5)), Ok(2));
        // 0.1 rps is not exact in binary; exact capacity must not round up.
        assert_eq!(instances_needed(8_640.0, Some(0.1)), Ok(1));
        assert_eq!(instances_needed(86_400.0, Some(0.1)), Ok(10));
        assert_eq!(instances_needed(0.0, Some(0.5)), Ok(1));
        assert_eq!(instances_needed(1e9, None), Ok(1));
        assert_eq!(instances_needed(1e9, Some(f64::INFINITY)), Ok(1));
        assert_eq!(instances_needed(1.0, Some(0.0)), Err(CostError::InvalidCapacity(0.0)));
        assert!(instances_needed(1.0, Some(f64::NAN)).is_err());
        assert!(instances_needed(1e300, Some(1e-300)).is_err());
    }

    #[test]
    fn projection_rejects_bad_input() {
        let f = fixed(300.0, Some(1.0));
        assert_eq!(project(&f, 0.0, 0.0, 0.0), Err(CostError::ZeroRequestsPerDay));
        assert!(project(&f, 0.0, 0.0, -1.0).is_err());
        assert!(project(&f, f64::NAN, 0.0, 1.0).is_err());
        assert!(project(&fixed(-1.0, None), 0.0, 0.0, 1.0).is_err());
        assert!(project(&fixed(1.0, Some(-2.0)), 0.0, 0.0, 1.0).is_err());
        assert!(project(&per_token(1.0, 1.0), 1.0, 1.0, f64::INFINITY).is_err());
        assert!(project(&per_token(f64::NAN, 1.0), 1.0, 1.0, 1.0).is_err());
        assert!(project(&per_token(1.0, 1.0), -1.0, 1.0, 1.0).is_err());
        // Errors render as readable messages.
        assert_eq!(
            CostError::ZeroRequestsPerDay.to_string(),
            "requests per day must be above zero to spread a fixed cost per request"
        );
    }

    /// Per-token pricing costing exactly $0.0002 per request at 200 input tokens.
    fn api_0002() -> Pricing {
        per_token(1.0, 4.0)
    }

    #[test]
    fn break_even_one_instance() {
        // 450 × 12 / 365 / 0.0002 = 5400 / 0.073 = 73,972.602739726...
        let expected = 5_400.0 / 0.073;
        assert_close(expected, 73_972.602_739_726_03);
        let v = break_even_requests_per_day(&api_0002(), 200.0, 0.0, &fixed(450.0, None));
        assert_close(v.unwrap_or(f64::NAN), expected);
        // 2 rps = 172,800/day: one instance carries it.
        let v = break_even_requests_per_day(&api_0002(), 200.0, 0.0, &fixed(450.0, Some(2.0)));
        assert_close(v.unwrap_or(f64::NAN), expected);
        // And the two projections agree there.
        let api = project(&api_0002(), 200.0, 0.0, expected).expect("valid");
        let own = project(&fixed(450.0, Some(2.0)), 200.0, 0.0, expected).expect("valid");
        assert_close(api.annual_usd, own.annual_usd);
        assert_close(own.annual_usd, 5_400.0);
    }

    #[test]
    fn break_even_where_the_instance_step_matters() {
        // 0.5 rps = 43,200/day per instance < 73,972.6: a full instance costs
        // 5400/365/43200 = $0.000342 per request > $0.0002, so at every
        // volume the instances needed cost more than the API. Never breaks even.
        let half_rps = fixed(450.0, Some(0.5));
        assert_eq!(break_even_requests_per_day(&api_0002(), 200.0, 0.0, &half_rps), None);
        assert_eq!(sustained_break_even_requests_per_day(&api_0002(), 200.0, 0.0, &half_rps), None);

        // 1 rps = 86,400/day per instance. First break-even is B = 73,972.6
        // with one instance; but at 86,401/day a second instance doubles the
        // bill ($10,800/yr) while the API costs 86,401 × 0.073 = $6,307/yr.
        // In step n the API wins on ((n−1)·86400, n·B); that is non-empty
        // while n < 86400 / (86400 − B) = 6.95, so the last such step is 6
        // and the fixed backend stays cheaper from 6·B = 443,835.6/day.
        let one_rps = fixed(450.0, Some(1.0));
        let b = 5_400.0 / 0.073;
        let first = break_even_requests_per_day(&api_0002(), 200.0, 0.0, &one_rps);
        assert_close(first.unwrap_or(f64::NAN), b);
        let sustained = sustained_break_even_requests_per_day(&api_0002(), 200.0, 0.0, &one_rps);
        assert_close(sustained.unwrap_or(f64::NAN), 6.0 * b);
        assert_close(6.0 * b, 443_835.616_438_356_2);

        let cheaper = |v: f64| -> bool {
            let api = project(&api_0002(), 200.0, 0.0, v).expect("valid").annual_usd;
            let own = project(&one_rps, 200.0, 0.0, v).expect("valid").annual_usd;
            own <= api
        };
        assert!(!cheaper(86_401.0));
        assert!(!cheaper(443_835.0));
        assert!(cheaper(443_836.0));

        // Brute force over whole request counts agrees with both closed forms.
        let first_cheaper = (1..700_000u32).map(f64::from).find(|&v| cheaper(v));
        assert_eq!(first_cheaper, Some(b.ceil()));
        let last_dearer = (1..700_000u32).rev().map(f64::from).find(|&v| !cheaper(v));
        assert_eq!(last_dearer, Some((6.0 * b).floor()));
    }

    #[test]
    fn break_even_edge_cases() {
        // Free API calls: fixed never wins.
        assert_eq!(
            break_even_requests_per_day(&per_token(0.0, 0.0), 200.0, 0.0, &fixed(450.0, None)),
            None
        );
        assert_eq!(break_even_requests_per_day(&api_0002(), 0.0, 0.0, &fixed(450.0, None)), None);
        // Free fixed backend wins from zero volume.
        assert_eq!(
            break_even_requests_per_day(&api_0002(), 200.0, 0.0, &fixed(0.0, Some(1.0))),
            Some(0.0)
        );
        assert_eq!(
            sustained_break_even_requests_per_day(&api_0002(), 200.0, 0.0, &fixed(0.0, Some(1.0))),
            Some(0.0)
        );
        // Wrong shapes and bad numbers.
        assert_eq!(
            break_even_requests_per_day(&fixed(1.0, None), 200.0, 0.0, &fixed(450.0, None)),
            None
        );
        assert_eq!(break_even_requests_per_day(&api_0002(), 200.0, 0.0, &api_0002()), None);
        assert_eq!(
            break_even_requests_per_day(&api_0002(), f64::NAN, 0.0, &fixed(450.0, None)),
            None
        );
        assert_eq!(
            break_even_requests_per_day(&api_0002(), 200.0, 0.0, &fixed(f64::INFINITY, None)),
            None
        );
        // Capacity exactly at B: first break-even exists, sustained never does.
        let b = 5_400.0 / 0.073;
        let at_b = fixed(450.0, Some(b / 86_400.0));
        assert!(break_even_requests_per_day(&api_0002(), 200.0, 0.0, &at_b).is_some());
        assert_eq!(sustained_break_even_requests_per_day(&api_0002(), 200.0, 0.0, &at_b), None);
    }

    #[test]
    fn cost_per_correct_answer() {
        assert_close(cost_per_correct(12.5, 50).unwrap_or(f64::NAN), 0.25);
        assert_eq!(cost_per_correct(0.0, 10), Some(0.0));
        assert_eq!(cost_per_correct(12.5, 0), None);
        assert_eq!(cost_per_correct(-1.0, 10), None);
        assert_eq!(cost_per_correct(f64::NAN, 10), None);
    }
}
