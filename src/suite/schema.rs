//! The suite file as written: serde types that mirror YAML/JSON one to one. Every struct denies
//! unknown keys, so a misspelt key is an error with its line rather than a silently ignored
//! setting. Values that later checks may reject are `Spanned`, so those errors can name a line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
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
    /// What difference in accuracy matters when comparing backends.
    #[serde(default)]
    pub decision: Option<Spanned<DecisionFile>>,
    /// The CI gate's policy: which backend is judged, and the checks it must pass.
    #[serde(default)]
    pub gate: Option<Spanned<GateFile>>,
    /// The response cache's defaults for runs of this suite.
    #[serde(default)]
    pub cache: Option<Spanned<CacheFile>>,
}

/// `cache: { max_age: 7d }`: cached answers older than this are asked again.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    pub max_age: DurationText,
}

/// A duration as `7d`, `12h`, `90s`, or a number of seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DurationText {
    Seconds(f64),
    Text(String),
}

/// `decision: { margin: 0.02 }`: differences in accuracy smaller than the margin do not matter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionFile {
    pub margin: f64,
}

/// The `gate:` section (also the whole of a `--policy` file). Every threshold is optional; a
/// gate with no check is an error, caught when the section is resolved.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateFile {
    pub candidate: Spanned<String>,
    #[serde(default)]
    pub baseline: Option<Spanned<String>>,
    /// `bound` (the default: the confidence bound must clear the threshold) or `estimate`.
    #[serde(default)]
    pub judge: Option<Spanned<String>>,
    #[serde(default)]
    pub min_accuracy: Option<Spanned<f64>>,
    #[serde(default)]
    pub non_inferiority_margin: Option<Spanned<f64>>,
    #[serde(default)]
    pub superiority: Option<Spanned<bool>>,
    #[serde(default)]
    pub max_error_rate: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_invalid_rate: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_cost_per_correct_usd: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_latency_p95_ms: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_recall: Option<Spanned<BTreeMap<String, f64>>>,
    #[serde(default)]
    pub min_items: Option<Spanned<u64>>,
    /// The power the suite must have to show non-inferiority at the margin (0.8 by default).
    #[serde(default)]
    pub power: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_micro_f1: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_field_accuracy: Option<Spanned<BTreeMap<String, f64>>>,
}

/// A `--policy` file written as a suite's section, `gate:` and all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub gate: Spanned<GateFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeFile {
    pub requests_per_day: f64,
}

/// A backend's price: per token (`input_per_mtok`, `output_per_mtok`, optional
/// `cached_input_per_mtok` and `cache_write_per_mtok`, all USD per million tokens) or fixed (`monthly_usd`, optional
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
    /// Input written to the prompt cache (Anthropic's 5-minute writes); input price when unset.
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
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
    /// The system prompt; optional, for suites whose `input` carries the whole prompt.
    #[serde(default)]
    pub instructions: Option<Spanned<String>>,
    pub input: Spanned<String>,
    /// The short system prompt a fine-tuned model was trained with; none by default, so the
    /// fine-tuned prompt is the rendered `input` alone.
    #[serde(default)]
    pub fine_tuned_instructions: Option<Spanned<String>>,
    /// The fields of an extraction task, in the order they are asked for.
    #[serde(default)]
    pub fields: Option<Spanned<FieldsFile>>,
}

/// `fields:` as written: a mapping from field name to its declaration, kept in file order (the
/// order the model is asked for them and the reports list them).
#[derive(Debug)]
pub struct FieldsFile(pub Vec<(Spanned<String>, FieldFile)>);

impl<'de> Deserialize<'de> for FieldsFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FieldsFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a mapping of field names to declarations, e.g. `total: { type: number }`",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<FieldsFile, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<Spanned<String>, FieldFile>()? {
                    out.push(entry);
                }
                Ok(FieldsFile(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// One field's declaration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldFile {
    #[serde(rename = "type")]
    pub ty: Spanned<FieldTypeName>,
    /// For `string` and `list`: `exact`, `normalized` (the default) or `fuzzy(threshold)`.
    #[serde(rename = "match", default)]
    pub match_rule: Option<Spanned<String>>,
    /// For `number`: the largest difference still counted as right (0 by default).
    #[serde(default)]
    pub tolerance: Option<Spanned<f64>>,
    /// For `enum`: the allowed values.
    #[serde(default)]
    pub values: Option<Spanned<Vec<String>>>,
    /// For `date`: whether `03/04/2018` is 3 April (true, the default) or March 4.
    #[serde(default)]
    pub day_first: Option<Spanned<bool>>,
    /// Every test item must have a gold value, and the model must give one (false by default:
    /// the value may be absent, and the model may answer null).
    #[serde(default)]
    pub required: Option<Spanned<bool>>,
    /// Told to the model in the format line and the JSON schema.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FieldTypeName {
    String,
    Number,
    Date,
    Enum,
    List,
}

#[derive(Debug, Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    Classification,
    Extraction,
}

impl TaskKind {
    /// The kind as written in suites and results.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Classification => "classification",
            TaskKind::Extraction => "extraction",
        }
    }
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
    /// Extraction: the column holding each item's gold object; `expected` by default. Without it,
    /// the gold of each field is the column named after the field.
    #[serde(default)]
    pub expected_column: Option<Spanned<String>>,
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
    /// Anthropic's Messages API.
    Anthropic,
    Local,
    Replay,
}

/// `replay: { file: PATH, from_backend: ID }`: where a `replay` backend's replies come from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayFile {
    /// A run's `records.jsonl` (or its directory), or a predictions file (JSONL or CSV with
    /// `id` and `reply` or `answer`); relative to the suite file.
    pub file: Spanned<String>,
    /// In a `records.jsonl`: the backend whose records are replayed (needed when it holds
    /// several).
    #[serde(default)]
    pub from_backend: Option<Spanned<String>>,
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
    /// Extraction: how replies are held to a JSON schema made from the fields: `json_schema`
    /// (OpenAI's `response_format`; `on`/`true` are aliases), `json_object` (with the schema
    /// beside it, as llama-cpp-python takes it), `off` (`false`), or `auto`: negotiated with the
    /// server on the first requests. Unset: `json_schema` for OpenAI and Azure, `off` elsewhere.
    /// For `anthropic`: `json_schema`, `on` and `auto` send a forced tool call with the schema
    /// (also the default), `off` none, and `json_object` is refused.
    #[serde(default)]
    pub structured_output: Option<Spanned<StructuredOutputFile>>,
    /// The fine-tuning file the model was trained on (relative to the suite): a run warns when
    /// it holds test items.
    #[serde(default)]
    pub trained_on: Option<Spanned<String>>,
    /// Tags of a leading reasoning block taken off replies before parsing (default: `think`,
    /// `thinking`, `reasoning`).
    #[serde(default)]
    pub reasoning_tags: Option<Vec<String>>,
    /// The model thinks before it answers: classification replies get a larger default
    /// `max_tokens`. Unset: known reasoning families by model name.
    #[serde(default)]
    pub reasoning: Option<bool>,
    /// For `provider: replay`: the recording to replay.
    #[serde(default)]
    pub replay: Option<Spanned<ReplayFile>>,
    /// Send the requests through the provider's batch API (OpenAI's Batch API): billed at its
    /// batch discount, answered within a day rather than at once.
    #[serde(default)]
    pub batch: Option<Spanned<bool>>,
    /// Seconds between polls of a submitted batch (default 30); the wait grows while a batch
    /// shows no progress (see `backend::batch::PollBackoff`).
    #[serde(default)]
    pub batch_poll_secs: Option<Spanned<f64>>,
}

/// `auto`, `json_schema` (`on`), `json_object` or `off`; YAML 1.1 readers may hand `on` and
/// `off` over as booleans, so those are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuredOutputFile {
    Auto,
    JsonSchema,
    JsonObject,
    Off,
}

impl<'de> Deserialize<'de> for StructuredOutputFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bool(true) => Ok(StructuredOutputFile::JsonSchema),
            Raw::Bool(false) => Ok(StructuredOutputFile::Off),
            Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "auto" => Ok(StructuredOutputFile::Auto),
                "json_schema" | "json-schema" | "on" | "true" | "yes" => {
                    Ok(StructuredOutputFile::JsonSchema)
                }
                "json_object" | "json-object" => Ok(StructuredOutputFile::JsonObject),
                "off" | "false" | "no" => Ok(StructuredOutputFile::Off),
                other => Err(serde::de::Error::custom(format!(
                    "structured_output must be auto, json_schema (on), json_object or off, not `{other}`"
                ))),
            },
        }
    }
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
    /// The k train items nearest to each test item by TF-IDF cosine.
    Similar,
}
