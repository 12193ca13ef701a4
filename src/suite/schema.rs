//! The suite file as written: serde types that mirror YAML/JSON one to one. Every struct denies
//! unknown keys, so a misspelt key is an error with its line rather than a silently ignored
//! setting. Values that later checks may reject are `Spanned`, so those errors can name a line.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The version of the suite format this build reads.
pub const SCHEMA_VERSION: u64 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub schema_version: Spanned<u64>,
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub task: TaskFile,
    pub data: DataFile,
    pub backends: Spanned<Vec<BackendFile>>,
    /// The volume the business runs at, for cost projections.
    #[serde(default)]
    pub volume: Option<Spanned<VolumeFile>>,
    /// Pairs of backend ids to compare; every pair when absent.
    #[serde(default)]
    pub compare: Option<Spanned<Vec<Vec<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeFile {
    pub requests_per_day: f64,
}

/// A backend's price: per token (`input_per_mtok`, `output_per_mtok`, optional
/// `cached_input_per_mtok`, all USD per million tokens) or fixed (`monthly_usd`, optional
/// `capacity_rps` per instance). One struct rather than an untagged enum so a typo gets a
/// precise error.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PricingFile {
    #[serde(default)]
    pub input_per_mtok: Option<f64>,
    #[serde(default)]
    pub output_per_mtok: Option<f64>,
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
    #[serde(default)]
    pub monthly_usd: Option<f64>,
    #[serde(default)]
    pub capacity_rps: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub kind: Spanned<TaskKind>,
    #[serde(default)]
    pub labels: Option<Spanned<Vec<Spanned<String>>>>,
    pub instructions: Spanned<String>,
    pub input: Spanned<String>,
    /// The short system prompt a fine-tuned model was trained with; none by default, so the
    /// fine-tuned prompt is the rendered `input` alone.
    #[serde(default)]
    pub fine_tuned_instructions: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    Classification,
    Extraction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// Items to score: a path to CSV/TSV/JSONL, or a list of rows.
    #[serde(default)]
    pub test: Option<Spanned<DataSource>>,
    /// Pool for few-shot demonstrations and for training the local baseline.
    #[serde(default)]
    pub train: Option<Spanned<DataSource>>,
    /// Inline test rows (the same as `test:` given a list).
    #[serde(default)]
    pub examples: Option<Spanned<Vec<BTreeMap<String, serde_json::Value>>>>,
    /// Column with the gold label; `label` by default.
    #[serde(default)]
    pub label_column: Option<Spanned<String>>,
    /// Column with a unique item id; `id` by default, and row numbers when the column is absent.
    #[serde(default)]
    pub id_column: Option<Spanned<String>>,
    /// Column naming the cluster an item belongs to (items drawn from the same document or
    /// conversation); `group` by default when present. Intervals then use clustered errors.
    #[serde(default)]
    pub group_column: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DataSource {
    Path(String),
    Inline(Vec<BTreeMap<String, serde_json::Value>>),
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Openai,
    Local,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    pub id: Spanned<String>,
    pub provider: Spanned<ProviderKind>,
    #[serde(default)]
    pub model: Option<Spanned<String>>,
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
    /// Name of the environment variable holding the API key; never the key itself.
    #[serde(default)]
    pub api_key_env: Option<Spanned<String>>,
    #[serde(default)]
    pub strategy: Option<Spanned<StrategyFile>>,
    #[serde(default)]
    pub concurrency: Option<Spanned<usize>>,
    #[serde(default)]
    pub temperature: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_tokens: Option<Spanned<u32>>,
    #[serde(default)]
    pub timeout_secs: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_attempts: Option<Spanned<u32>>,
    /// The longest wait between attempts, whatever the backoff or `Retry-After` says.
    #[serde(default)]
    pub max_retry_delay_secs: Option<Spanned<f64>>,
    /// At most this many requests a minute.
    #[serde(default)]
    pub requests_per_minute: Option<Spanned<f64>>,
    /// At most this many tokens (estimated prompt plus reply allowance) a minute.
    #[serde(default)]
    pub tokens_per_minute: Option<Spanned<f64>>,
    /// Times each item is asked (repeated sampling, meaningful at temperature > 0).
    #[serde(default)]
    pub epochs: Option<Spanned<u32>>,
    /// Overrides (or supplies) the built-in price of `model`.
    #[serde(default)]
    pub pricing: Option<Spanned<PricingFile>>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyFile {
    ZeroShot,
    FewShot(FewShotFile),
    FineTuned,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FewShotFile {
    #[serde(default)]
    pub k: Option<usize>,
    #[serde(default)]
    pub select: Option<Selection>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Train ids, for `select: fixed`.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    Fixed,
    Random,
    Stratified,
}
