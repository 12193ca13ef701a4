//! Suites: the declarative description of a task, its labelled data and the backends to compare.
//!
//! [`load`] turns a suite file into a validated [`Suite`]; nothing downstream sees the raw file.

mod data;
pub mod leakage;
mod load;
pub mod schema;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use load::{load, load_str};
pub use schema::{Selection, TaskKind};

/// A loaded, validated suite.
#[derive(Debug, Clone)]
pub struct Suite {
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    /// SHA-256 of the suite file's bytes, so a report names exactly what was run.
    pub sha256: String,
    /// SHA-256 of the loaded data (every test and train item: id, label and fields), so a run
    /// cannot be resumed against changed data.
    pub data_sha256: String,
    pub task: Task,
    pub test: Dataset,
    pub train: Option<Dataset>,
    pub backends: Vec<BackendSpec>,
    /// Maps replies to `task.labels`, prepared once for every reply of a run.
    pub label_parser: crate::parse::LabelParser,
    /// Requests per day the cost projections assume, when the suite gives one.
    pub requests_per_day: Option<f64>,
    /// Backend pairs to compare, `(first, second)`; empty means every pair.
    pub compare: Vec<(String, String)>,
    /// `decision.margin`: the difference in accuracy that matters.
    pub margin: f64,
    /// The columns holding the gold answer in either split (the label, or an extraction task's
    /// gold columns): they are not item fields, and a template must not name them.
    pub gold_columns: Vec<String>,
    /// The CI gate's policy, from the suite's `gate:` section.
    pub gate: Option<crate::gate::GatePolicy>,
    /// `cache.max_age`: cached answers older than this are asked again (`--cache-max-age`
    /// overrides it).
    pub cache_max_age: Option<std::time::Duration>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub kind: TaskKind,
    pub labels: Vec<String>,
    /// Template source of the system instructions.
    pub instructions: String,
    /// Template source of the user turn for one item.
    pub input: String,
    pub fine_tuned_instructions: Option<String>,
    /// The fields of an extraction task, in declared order; empty for classification.
    pub fields: Vec<crate::field::FieldSpec>,
    /// Where each template is written in the suite, for problems that name its line.
    pub template_lines: TemplateLines,
}

/// The suite lines of a task's templates (0 where unknown, as for a task built in code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplateLines {
    pub instructions: u64,
    pub input: u64,
    /// `None` when the suite has no `fine_tuned_instructions`.
    pub fine_tuned_instructions: Option<u64>,
}

impl Task {
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }
}

/// One split of labelled data.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where the rows came from: a path, or the suite itself for inline rows.
    pub origin: PathBuf,
    pub items: Vec<Item>,
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    /// Every column except the gold (the label, or an extraction task's gold columns), by header
    /// name; what templates see.
    pub fields: Fields,
    /// The gold answer as the model should write it: the label, or for an extraction task the
    /// gold object as compact JSON (see [`crate::field::value::display_value`]).
    pub label: String,
    /// 1-based line in the data file (or in the suite, for inline rows).
    pub line: u64,
    /// The item's cluster, from the group column.
    pub group: Option<String>,
}

/// An item's columns. The names are shared by every row of a table and only the values are per
/// row: a suite of 100,000 items holds its data, not 100,000 maps. Serialises as a map of the
/// columns the row has.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    names: Arc<[String]>,
    /// Aligned with `names`; `None` where a JSONL row lacks the key.
    values: Box<[Option<serde_json::Value>]>,
}

impl Fields {
    pub fn new(names: Arc<[String]>, values: Box<[Option<serde_json::Value>]>) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Fields { names, values }
    }

    /// Fields from name–value pairs (for tests and inline construction).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, serde_json::Value)>) -> Self {
        let (names, values): (Vec<String>, Vec<Option<serde_json::Value>>) =
            pairs.into_iter().map(|(n, v)| (n.to_string(), Some(v))).unzip();
        Fields { names: names.into(), values: values.into() }
    }

    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        let i = self.names.iter().position(|n| n == name)?;
        self.values[i].as_ref()
    }

    /// Names of the columns this row has, in column order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .zip(self.values.iter())
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| n.as_str())
    }
}

impl serde::Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.names.iter().zip(self.values.iter()) {
            if let Some(v) = value {
                map.serialize_entry(name, v)?;
            }
        }
        map.end()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    Local,
    /// Replies read from a file (an earlier run's journal or predictions made elsewhere).
    Replay,
}

impl Provider {
    /// Whether the provider has a batch API evalgate can send a backend's requests through
    /// (`batch: true`, `--batch`).
    pub fn has_batch_api(self) -> bool {
        match self {
            Provider::Openai | Provider::Anthropic => true,
            Provider::Local | Provider::Replay => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Local => "local",
            Provider::Replay => "replay",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    ZeroShot,
    FewShot(FewShot),
    FineTuned,
    /// The built-in classifier; it has no prompt strategy.
    Local,
}

impl Strategy {
    /// The name used in results.json.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::ZeroShot => "zero-shot",
            Strategy::FewShot(_) => "few-shot",
            Strategy::FineTuned => "fine-tuned",
            Strategy::Local => "local",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FewShot {
    pub k: usize,
    pub select: Selection,
    pub seed: u64,
    /// Train ids for `Selection::Fixed`, in order.
    pub ids: Vec<String>,
}

/// One backend to evaluate, resolved and validated.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    pub id: String,
    pub provider: Provider,
    pub model: Option<String>,
    pub base_url: Option<String>,
    /// Environment variable with the key; `None` means the server needs no key.
    pub api_key_env: Option<String>,
    pub strategy: Strategy,
    pub concurrency: usize,
    pub temperature: f64,
    pub max_tokens: Option<u32>,
    pub timeout: Duration,
    /// Attempts per request; the retry policy's default when `None`.
    pub max_attempts: Option<u32>,
    /// Cap on the wait between attempts; the retry policy's default when `None`.
    pub max_retry_delay: Option<Duration>,
    /// Line of the backend's `id` in the suite.
    pub line: u64,
    /// The price, and where it came from; `None` when unknown (never assumed to be zero).
    pub price: Option<Price>,
    /// Samples per item (1 unless the suite asks for repeated sampling).
    pub epochs: u32,
    pub requests_per_minute: Option<f64>,
    pub tokens_per_minute: Option<f64>,
    /// The fine-tuning file the model was trained on, resolved against the suite's folder.
    pub trained_on: Option<PathBuf>,
    /// Extraction: how requests carry a JSON schema made from the fields (`response_format`;
    /// for Anthropic, a forced tool call, or `Off`).
    pub structured_output: StructuredOutput,
    /// Tags of a leading reasoning block (`<think>…</think>`) taken off replies before parsing.
    pub reasoning_tags: Vec<String>,
    /// The suite's `reasoning:`, when it says.
    pub reasoning: Option<bool>,
    /// For `provider: replay`: the file its replies come from.
    pub replay: Option<ReplaySource>,
    /// The suite's `batch: true`: requests go through the provider's batch API (`--batch` turns
    /// it on for every backend whose provider has one; see [`Provider::has_batch_api`]).
    pub batch: bool,
    /// `batch_poll_secs`: the first wait between polls of a submitted batch; the default when
    /// `None`.
    pub batch_poll: Option<Duration>,
}

/// Where a `replay` backend's replies come from (see [`crate::backend::ReplayBackend`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaySource {
    /// The file, resolved against the suite's folder.
    pub file: std::path::PathBuf,
    /// In a `records.jsonl`: the backend whose records are replayed.
    pub from_backend: Option<String>,
}

/// The reasoning blocks taken off replies unless a backend names its own `reasoning_tags`.
pub const DEFAULT_REASONING_TAGS: [&str; 3] = ["think", "thinking", "reasoning"];

/// How an extraction request asks for replies that follow the fields' JSON schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuredOutput {
    /// Not at all: the instructions describe the object and the reply is parsed.
    Off,
    /// `response_format: {"type": "json_schema", "json_schema": {…, "strict": true}}` (OpenAI).
    JsonSchema,
    /// `response_format: {"type": "json_object", "schema": …}` (llama-cpp-python).
    JsonObject,
    /// `json_schema` first; a server that refuses the `response_format` itself is asked with
    /// `json_object`, then with none, and the form that worked is kept for the rest of the run.
    Auto,
}

/// Default per-backend concurrency.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// The OpenAI API, used when an `openai` backend names no `base_url`.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// The key variable for the OpenAI API when a backend names none.
pub const OPENAI_KEY_ENV: &str = "OPENAI_API_KEY";
/// The Anthropic API, used when an `anthropic` backend names no `base_url`. Like an OpenAI
/// `base_url`, it ends with the API version: requests go to `{base_url}/messages`.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";
/// The key variable for the Anthropic API when a backend names none.
pub const ANTHROPIC_KEY_ENV: &str = "ANTHROPIC_API_KEY";

/// A backend's price with its provenance.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Price {
    pub pricing: crate::cost::Pricing,
    /// `suite`, or `built-in` when taken from the compiled-in table.
    pub origin: String,
    /// The table entry's date and public source, for built-in prices.
    pub as_of: Option<String>,
    pub source: Option<String>,
}
