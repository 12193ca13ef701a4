//! evalgate's integration tests: one test binary (as ripgrep does), modules under `tests/it/`.
//!
//! - `run_openai`: runs against the in-process OpenAI-compatible server (`support::openai_server`)
//! - `anthropic`: `provider: anthropic` against the in-process Messages API server
//!   (`support::anthropic_server`): request shape, tool-call extraction, cache tokens and cost,
//!   retries and rate-limit headers, a wrong key, truncation, thinking, key hygiene, validation
//! - `export`: fine-tuning JSONL against the prompts a fine-tuned backend sends
//! - `validate`: suite and data errors from `evalgate validate`
//! - `cli`: the binary's flags, exit codes, skipped backends and credential hygiene
//! - `extraction`: extraction suites on the project's receipts: per-field scores against hand
//!   counts, gold from columns, and extraction validation errors
//! - `extraction_sroie`: the SROIE receipts (`../shared/datasets`) through the test server, every
//!   per-field number against hand counts, and gold demonstrations
//! - `datasets`: the local baseline on public datasets in `../shared/datasets`
//!
//! The tests of `datasets` and `extraction_sroie` need `../shared/datasets`, so they are ignored
//! by default (counted as skipped); `cargo test -- --ignored datasets:: extraction_sroie::` runs
//! them, and `.ci/run` does when the folder exists.
//! - `across_runs`: `compare` and `history` over runs of one suite with known flips
//! - `gate`: `evalgate gate` verdicts and exit codes, `--run`, `--policy`, JUnit, step summary
//! - `stats_cost`: the calculators, and statistics and cost recomputed from the journal
//! - `resilience`: kill -9 and resume, budget, Ctrl-C
//! - `real_servers`: dead ports and wrong keys, structured output negotiation, adaptive
//!   concurrency, reasoning replies, replies cut by the token limit
//! - `reliability`: 429 storms, the response cache, shards merged, rate limits
//! - `replay`: `provider: replay` of a run's journal and of a predictions CSV, scored like the
//!   live run; stale and incomplete recordings refused
//! - `batch`: batch mode against the in-process Files + Batches server
//!   (`support::batch_server`): known answers, the cache, stop/kill and resume, expired lines,
//!   per-line and whole-batch failures, the batch price
//! - `report_formats`: each renderer (results.json, report.md, chart.svg, records.csv) snapshot
//!   from a hand-built result or journal, not through a run

mod support;

#[path = "it/across_runs.rs"]
mod across_runs;
#[path = "it/anthropic.rs"]
mod anthropic;
#[path = "it/batch.rs"]
mod batch;
#[path = "it/cli.rs"]
mod cli;
#[path = "it/datasets.rs"]
mod datasets;
#[path = "it/export.rs"]
mod export;
#[path = "it/extraction.rs"]
mod extraction;
#[path = "it/extraction_sroie.rs"]
mod extraction_sroie;
#[path = "it/gate.rs"]
mod gate;
#[path = "it/real_servers.rs"]
mod real_servers;
#[path = "it/reliability.rs"]
mod reliability;
#[path = "it/replay.rs"]
mod replay;
#[path = "it/report_formats.rs"]
mod report_formats;
#[path = "it/resilience.rs"]
mod resilience;
#[path = "it/run_openai.rs"]
mod run_openai;
#[path = "it/stats_cost.rs"]
mod stats_cost;
#[path = "it/validate.rs"]
mod validate;
