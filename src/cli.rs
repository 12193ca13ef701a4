//! The command line: parse flags, call the library, print what happened. The only module that
//! writes to the terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;
use crate::plan::{self, RunOptions, RunPlan};
use crate::report;
use crate::runner::{self, RunEvent};
use crate::suite;

/// Documented exit codes.
pub mod exit {
    /// Success, or the gate passed.
    pub const SUCCESS: u8 = 0;
    /// The gate failed.
    pub const GATE_FAILED: u8 = 1;
    /// Usage, suite or infrastructure error.
    pub const ERROR: u8 = 2;
    /// Stopped by Ctrl-C; every output covers what finished.
    pub const INTERRUPTED: u8 = 130;
    /// Stopped by SIGTERM (a CI runner's timeout, a container stop); every output covers what
    /// finished.
    pub const TERMINATED: u8 = 143;
}

#[derive(Parser, Debug)]
#[command(
    name = "evalgate",
    version,
    about = "Is prompting enough, or does a fine-tuned model do better, and at what cost per correct answer?"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a suite against its backends and write a report.
    Run(RunArgs),
    /// Judge a suite's candidate backend by its gate policy: run the suite (or read a run with
    /// --run) and exit 0 when every check passes, 1 when any fails or is inconclusive, 2 when the
    /// run cannot be judged.
    Gate(GateArgs),
    /// Write a commented starter suite with tiny train/test files into DIR (default: here), ready
    /// for `evalgate run suite.yaml`; never overwrites a file.
    Init {
        /// The folder to write into.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Check a suite and its data without sending any request.
    Validate(ValidateArgs),
    /// Write a split of the suite's data as fine-tuning JSONL, with the exact prompt the
    /// `fine-tuned` strategy sends.
    Export(ExportArgs),
    /// Rebuild results.json, records.csv and report.md of a run from its journal.
    Report {
        /// A run directory (holding run.json and records.jsonl).
        run_dir: PathBuf,
    },
    /// Join shard runs into one run and write its reports.
    Merge {
        /// Shard run directories.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The merged run's directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Project cost from prices and volume alone (prices in USD per million tokens).
    Cost(CostArgs),
    /// What changed between two runs of one suite: accuracy per backend (B − A) on the items
    /// both answered, per-class recall, the items that flipped, and cost per correct answer.
    Compare(CompareArgs),
    /// Every run of one suite under a folder, oldest first: accuracy and cost per correct answer
    /// per backend over time, as a table and a chart.
    History(HistoryArgs),
    /// A calculator for checking the report's statistics by hand.
    Stats {
        #[command(subcommand)]
        command: StatsCommand,
    },
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The suite file (YAML or JSON).
    pub suite: PathBuf,
    /// A fine-tuning file (any `export` format, or JSONL with a `text` field) to check the test
    /// split against for exact and near-duplicate leaks (repeatable).
    #[arg(long, value_name = "FILE")]
    pub against: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The suite file (YAML or JSON).
    pub suite: PathBuf,
    /// The line format.
    #[arg(long, value_enum)]
    pub format: crate::export::ExportFormat,
    /// The split to export.
    #[arg(long, value_enum, default_value = "train")]
    pub split: crate::export::Split,
    /// Hold out this share of the examples (stratified by label) in `<out stem>.validation.jsonl`.
    #[arg(long, value_name = "F")]
    pub validation: Option<f64>,
    /// Seed of the validation draw.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// The JSONL file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The base model to be fine-tuned, for a training-cost estimate from the price table.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Training epochs assumed by the cost estimate.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub epochs: u32,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("price").required(true).args(["input_price", "model", "monthly_usd"])))]
pub struct CostArgs {
    #[arg(long, value_name = "N")]
    pub requests_per_day: f64,
    /// Mean input tokens per request.
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    pub input_tokens: f64,
    /// Mean output tokens per request.
    #[arg(long, value_name = "U", default_value_t = 0.0)]
    pub output_tokens: f64,
    /// USD per million input tokens.
    #[arg(long, value_name = "P")]
    pub input_price: Option<f64>,
    /// USD per million output tokens.
    #[arg(long, value_name = "Q", requires = "input_price")]
    pub output_price: Option<f64>,
    /// A model from the built-in price table.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// A fixed monthly price per instance (self-hosted).
    #[arg(long, value_name = "M")]
    pub monthly_usd: Option<f64>,
    /// Requests per second one instance serves.
    #[arg(long, value_name = "R", requires = "monthly_usd")]
    pub capacity_rps: Option<f64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The earlier run directory (A).
    pub run_a: PathBuf,
    /// The later run directory (B); changes are B − A.
    pub run_b: PathBuf,
    /// Compare backend A_ID of run A with backend B_ID of run B (repeatable) instead of pairing
    /// backends by id.
    #[arg(long = "pair", value_name = "A_ID=B_ID")]
    pub pairs: Vec<crate::score::run_diff::BackendPair>,
    /// Write the output to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print one versioned JSON object instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when any backend got significantly worse (its interval lies entirely below 0).
    #[arg(long)]
    pub fail_on_regression: bool,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// A folder searched recursively for run directories (holding run.json and records.jsonl).
    pub dir: PathBuf,
    /// The suite to show, when runs of several suites are found.
    #[arg(long, value_name = "NAME")]
    pub suite: Option<String>,
    /// Write the markdown table to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write the trend chart (SVG) to FILE.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum StatsCommand {
    /// Interval for one proportion (accuracy, error rate).
    Proportion {
        #[arg(long, value_name = "K")]
        correct: u64,
        #[arg(long, value_name = "N")]
        total: u64,
        #[arg(long, value_enum, default_value = "wilson")]
        method: MethodArg,
        #[arg(long, default_value_t = 0.95, value_name = "C")]
        confidence: f64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Paired comparison of two backends from their 2×2 table (difference = second − first).
    Paired {
        #[arg(long, value_name = "A")]
        both_correct: u64,
        #[arg(long, value_name = "B")]
        only_first: u64,
        #[arg(long, value_name = "C")]
        only_second: u64,
        #[arg(long, value_name = "D")]
        both_wrong: u64,
        #[arg(long, default_value_t = 0.95, value_name = "C")]
        confidence: f64,
        #[arg(long)]
        json: bool,
    },
    /// Items needed to detect a difference: one rate against a baseline rate (two-sided), or a
    /// paired comparison (McNemar) with --paired.
    SampleSize {
        /// The rate under the null hypothesis.
        #[arg(long, value_name = "P0", required_unless_present = "paired")]
        baseline: Option<f64>,
        /// The true rate to detect.
        #[arg(long, value_name = "P1", required_unless_present = "paired")]
        target: Option<f64>,
        #[arg(long, default_value_t = 0.8)]
        power: f64,
        #[arg(long, default_value_t = 0.95, value_name = "C")]
        confidence: f64,
        /// Paired design: give --discordance and --difference.
        #[arg(long, requires_all = ["discordance", "difference"])]
        paired: bool,
        /// Expected share of items on which exactly one backend is right.
        #[arg(long, value_name = "PSI")]
        discordance: Option<f64>,
        /// Difference in accuracy to detect.
        #[arg(long, value_name = "D", allow_negative_numbers = true)]
        difference: Option<f64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum MethodArg {
    Wilson,
    /// Clopper–Pearson.
    Exact,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The suite file (YAML or JSON).
    pub suite: PathBuf,
    /// Run directory [default: reports/<suite name>/<UTC time>].
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue a stopped or killed run in DIR: items already answered are not sent again;
    /// items that failed are retried.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["backends", "limit"])]
    pub resume: Option<PathBuf>,
    /// Run only this backend (repeatable).
    #[arg(long = "backend", value_name = "ID")]
    pub backends: Vec<String>,
    /// Run only the first N test items.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Requests in flight per backend, overriding the suite.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,
    /// Fail (exit 2) when a backend's API key is missing instead of skipping it.
    #[arg(long)]
    pub require_all: bool,
    /// Run only part K of N of the items (by a hash of the item id); join the parts with
    /// `evalgate merge`.
    #[arg(long, value_name = "K/N", conflicts_with = "resume")]
    pub shard: Option<crate::journal::Shard>,
    /// Estimate the cost first and refuse to start above this many USD; stop sending once the
    /// spend reaches it.
    #[arg(long, value_name = "USD")]
    pub max_cost_usd: Option<f64>,
    /// Do not read or write the response cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Ask every request again, replacing what the cache holds.
    #[arg(long, conflicts_with = "no_cache")]
    pub refresh: bool,
    /// The response cache's database file.
    #[arg(long, value_name = "FILE", default_value = plan::DEFAULT_CACHE)]
    pub cache: PathBuf,
    /// Exit 2 (after writing the report) when a backend's share of failed requests is above
    /// this; a backend whose every request failed is always above it.
    #[arg(long, value_name = "R", default_value_t = crate::gate::DEFAULT_MAX_ERROR_RATE)]
    pub max_error_rate: f64,
    /// Refuse cached answers older than this (e.g. 12h, 7d): they are asked again. Overrides the
    /// suite's `cache_max_age`.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, conflicts_with = "no_cache")]
    pub cache_max_age: Option<Duration>,
    /// After Ctrl-C or SIGTERM, how long requests in flight may still finish before they are
    /// cancelled and recorded as not sent (e.g. 10s, 0).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg, default_value = "10s")]
    pub grace: Duration,
    /// Send every backend whose provider has a batch API (openai) through it: billed at the
    /// batch discount, answered within a day. A resumed run keeps each backend's mode.
    #[arg(long, conflicts_with = "resume")]
    pub batch: bool,
    /// Print nothing but errors and the report path.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `10s`, `500ms`, `12h`, `7d` or a number of seconds.
fn duration_arg(text: &str) -> Result<Duration, String> {
    crate::time::parse_duration(text).ok_or_else(|| {
        format!(
            "`{text}` is not a duration; write a number with s, ms, m, h or d (e.g. 10s, 12h, 7d)"
        )
    })
}

#[derive(Args, Debug)]
pub struct GateArgs {
    /// The suite file (YAML or JSON); its `gate:` section is the policy unless --policy is given.
    pub suite: PathBuf,
    /// Judge this existing run directory instead of running the suite (no request is sent).
    #[arg(long, value_name = "DIR")]
    pub run: Option<PathBuf>,
    /// A YAML file holding the gate section (with or without the `gate:` key), replacing the
    /// suite's.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Write the verdict as JUnit XML, one test case per check.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run directory [default: reports/<suite name>/<UTC time>].
    #[arg(long, conflicts_with = "run")]
    pub out: Option<PathBuf>,
    /// Requests in flight per backend, overriding the suite.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "run")]
    pub concurrency: Option<u32>,
    /// Do not read or write the response cache.
    #[arg(long, conflicts_with = "run")]
    pub no_cache: bool,
    /// The response cache's database file.
    #[arg(long, value_name = "FILE", default_value = plan::DEFAULT_CACHE)]
    pub cache: PathBuf,
    /// Print nothing but errors and the verdict table.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the CLI with the process arguments and returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::ERROR } else { exit::SUCCESS };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let mut stdout = std::io::stdout();
    let outcome = dispatch(cli, &mut stdout).and_then(|code| {
        stdout.flush()?;
        Ok(code)
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        // The library returns its own errors; a bare io::Error can only come from writing stdout.
        Err(e) => match e.downcast_ref::<std::io::Error>() {
            // The reader closed the pipe (`evalgate … | head`): it has what it wanted, so this is
            // not an error (as in ripgrep).
            Some(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
                ExitCode::from(exit::SUCCESS)
            }
            Some(io) => {
                eprintln!("error: cannot write to standard output: {io}");
                ExitCode::from(exit::ERROR)
            }
            None => {
                eprintln!("error: {e}");
                ExitCode::from(exit::ERROR)
            }
        },
    }
}

/// Runs one command, writing its output to `out`; an error writing `out` ends it as an
/// `io::Error`.
fn dispatch(cli: Cli, out: &mut impl Write) -> anyhow::Result<u8> {
    match cli.command {
        Command::Validate(args) => validate(&args.suite, &args.against, out),
        Command::Export(args) => export(args, out),
        Command::Init { dir } => {
            let written = crate::init::init(&dir).map_err(Error::Usage)?;
            for path in &written {
                writeln!(out, "{}", path.display())?;
            }
            let suite = &written[0];
            eprintln!(
                "next: `evalgate run {}` (the local baseline runs offline); add a language model in its `backends:`",
                suite.display()
            );
            Ok(exit::SUCCESS)
        }
        Command::Run(args) => run(args, out),
        Command::Gate(args) => gate(args, out),
        Command::Stats { command } => stats_calculator(command, out),
        Command::Cost(args) => cost_calculator(args, out),
        Command::Merge { runs, out: dir } => {
            runner::merge::merge(&runs, &dir)?;
            let (_, markdown) = report::write_outputs(&dir)?;
            write_step_summary(&markdown);
            writeln!(out, "{}", dir.join(report::REPORT_FILE).display())?;
            Ok(exit::SUCCESS)
        }
        Command::Compare(args) => compare_runs(args, out),
        Command::History(args) => history(args, out),
        Command::Report { run_dir } => {
            let (_, markdown) = report::write_outputs(&run_dir)?;
            write_step_summary(&markdown);
            writeln!(out, "{}", run_dir.join(report::REPORT_FILE).display())?;
            Ok(exit::SUCCESS)
        }
    }
}

fn compare_runs(args: CompareArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    use crate::report::run_diff;
    let diff = crate::score::run_diff::diff_runs(&args.run_a, &args.run_b, &args.pairs)?;
    let text = if args.json {
        let value = run_diff::json(&diff);
        serde_json::to_string_pretty(&value)? + "\n"
    } else {
        run_diff::markdown(&diff)
    };
    write_output(args.out.as_deref(), &text, out)?;
    if args.fail_on_regression && diff.any_regression() {
        let worse: Vec<String> = diff
            .backends
            .iter()
            .filter(|d| d.regressed())
            .map(|d| format!("`{}`", d.id_b))
            .collect();
        eprintln!("regression: {} got significantly worse in run B", worse.join(", "));
        return Ok(exit::GATE_FAILED);
    }
    Ok(exit::SUCCESS)
}

fn history(args: HistoryArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    use crate::report::history as report_history;
    let history = crate::score::history::history(&args.dir, args.suite.as_deref())?;
    let trend = report_history::trend(&history);
    if let Some(path) = &args.chart {
        match report_history::chart(&trend) {
            Some(svg) => std::fs::write(path, svg).map_err(|e| Error::io(path, e))?,
            None => eprintln!(
                "warning: no backend answered any item; no chart written to {}",
                path.display()
            ),
        }
    }
    write_output(args.out.as_deref(), &report_history::markdown(&trend), out)?;
    Ok(exit::SUCCESS)
}

/// Writes `text` to `path`, printing the path, or to `out` when there is no path.
fn write_output(
    path: Option<&std::path::Path>,
    text: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match path {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
            writeln!(out, "{}", path.display())?;
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}

fn cost_calculator(args: CostArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    use crate::cost::{self, PriceTable, Pricing};
    let bad = Error::Cost;
    let (pricing, entry) = if let Some(input) = args.input_price {
        (
            Pricing::PerToken {
                input_per_mtok: input,
                output_per_mtok: args.output_price.unwrap_or(0.0),
                cached_input_per_mtok: None,
                cache_write_per_mtok: None,
            },
            None,
        )
    } else if let Some(model) = &args.model {
        let entry = PriceTable::builtin().lookup(model).ok_or_else(|| {
            Error::Usage(format!("no built-in price for `{model}`; give --input-price and --output-price (USD per million tokens)"))
        })?;
        (entry.pricing.clone(), Some(entry))
    } else {
        (
            Pricing::Fixed {
                monthly_usd: args.monthly_usd.unwrap_or_default(),
                capacity_rps: args.capacity_rps,
            },
            None,
        )
    };
    pricing.validate().map_err(bad)?;
    let p = cost::project(&pricing, args.input_tokens, args.output_tokens, args.requests_per_day)
        .map_err(bad)?;
    if args.json {
        let mut value = serde_json::json!({ "per_request_usd": p.per_request_usd, "daily_usd": p.daily_usd, "annual_usd": p.annual_usd });
        if let Some(n) = p.instances_needed {
            value["instances_needed"] = n.into();
        }
        if let Some(e) = entry {
            value["model"] =
                serde_json::json!({ "model": e.model, "as_of": e.as_of, "source": e.source });
        }
        writeln!(out, "{value}")?;
    } else {
        if let Some(e) = entry {
            writeln!(out, "{}: price as of {} ({})", e.model, e.as_of, e.source)?;
        }
        writeln!(
            out,
            "per request ${:.6} · per day ${:.2} · per year ${:.2}",
            p.per_request_usd, p.daily_usd, p.annual_usd
        )?;
        if let Some(n) = p.instances_needed {
            writeln!(out, "instances needed: {n}")?;
        }
    }
    Ok(exit::SUCCESS)
}

fn stats_calculator(command: StatsCommand, out: &mut impl Write) -> anyhow::Result<u8> {
    use crate::stats;
    let (json, text) = match command {
        StatsCommand::Proportion { correct, total, method, confidence, json } => {
            let (m, name) = match method {
                MethodArg::Wilson => (stats::IntervalMethod::Wilson, "wilson"),
                MethodArg::Exact => (stats::IntervalMethod::ClopperPearson, "exact"),
            };
            let i = stats::proportion_interval(correct, total, confidence, m)?;
            let value = serde_json::json!({ "estimate": i.estimate, "low": i.low, "high": i.high, "method": name, "confidence": confidence });
            let text = format!(
                "{correct}/{total} = {:.6}, {}% {name} interval [{:.6}, {:.6}]",
                i.estimate,
                confidence * 100.0,
                i.low,
                i.high
            );
            (json.then_some(value), text)
        }
        StatsCommand::Paired {
            both_correct,
            only_first,
            only_second,
            both_wrong,
            confidence,
            json,
        } => {
            let counts = stats::PairedCounts { both_correct, only_first, only_second, both_wrong };
            let n = counts.total()?;
            let d = stats::paired_difference_interval(&counts, confidence)?;
            let p = stats::mcnemar_exact_p(only_first, only_second)?;
            let rate = |k: u64| if n == 0 { 0.0 } else { k as f64 / n as f64 };
            let (first, second) =
                (rate(both_correct + only_first), rate(both_correct + only_second));
            let value = serde_json::json!({
                "first": { "estimate": first },
                "second": { "estimate": second },
                "difference": { "estimate": d.estimate, "low": d.low, "high": d.high, "method": "newcombe-hybrid-score", "confidence": confidence },
                "mcnemar_p": p,
            });
            let text = format!(
                "first {first:.6}, second {second:.6}; difference (second − first) {:.6}, {}% CI [{:.6}, {:.6}] (Newcombe hybrid score); McNemar exact p = {p:.6}",
                d.estimate, confidence * 100.0, d.low, d.high
            );
            (json.then_some(value), text)
        }
        StatsCommand::SampleSize {
            baseline,
            target,
            power,
            confidence,
            paired,
            discordance,
            difference,
            json,
        } => {
            let items = if paired {
                let (psi, d) = (discordance.unwrap_or_default(), difference.unwrap_or_default());
                stats::sample_size_paired(psi, d, power, confidence)?
            } else {
                let (p0, p1) = (baseline.unwrap_or_default(), target.unwrap_or_default());
                stats::sample_size_one_proportion(p0, p1, power, confidence)?
            };
            let text = format!(
                "{items} items ({}% power, {}% confidence, two-sided)",
                power * 100.0,
                confidence * 100.0
            );
            (json.then_some(serde_json::json!({ "items": items })), text)
        }
    };
    match json {
        Some(value) => writeln!(out, "{value}")?,
        None => writeln!(out, "{text}")?,
    }
    Ok(exit::SUCCESS)
}

fn export(args: ExportArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    use crate::export;
    if let Some(f) = args.validation {
        if !(f.is_finite() && (0.0..1.0).contains(&f)) {
            return Err(Error::Usage(format!(
                "--validation {f}: give a share from 0 to below 1, e.g. 0.1"
            ))
            .into());
        }
    }
    let suite = plan::load_suite(&args.suite)?;
    // Never write over the suite's own data.
    let same = |a: &std::path::Path, b: &std::path::Path| {
        a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok().is_some_and(|b| a == b))
    };
    for data in std::iter::once(&suite.test).chain(&suite.train) {
        for out in [args.out.clone(), export::validation_path(&args.out)] {
            if same(&out, &data.origin) {
                return Err(Error::Usage(format!(
                    "--out {}: that is the suite's data file; choose another name",
                    out.display()
                ))
                .into());
            }
        }
    }
    let examples = export::examples(&suite, args.split).map_err(Error::Usage)?;
    let (train, validation) = match args.validation {
        Some(f) => export::split_validation(examples, f, args.seed),
        None => (examples, Vec::new()),
    };
    let write = |path: &std::path::Path, examples: &[export::Example]| -> anyhow::Result<()> {
        let mut text = String::new();
        for e in examples {
            text.push_str(&export::line(args.format, e));
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
        Ok(())
    };
    write(&args.out, &train)?;
    writeln!(out, "{}", args.out.display())?;
    if args.validation.is_some() {
        let path = export::validation_path(&args.out);
        write(&path, &validation)?;
        writeln!(out, "{}", path.display())?;
    }
    let summary = export::summarize(&train);
    let labels = match suite.task.kind {
        suite::TaskKind::Classification => {
            summary.labels.iter().map(|(l, n)| format!("{l} {n}")).collect::<Vec<_>>().join(", ")
        }
        suite::TaskKind::Extraction => format!("{} gold objects", summary.items),
    };
    eprintln!(
        "exported {} example{} ({} labels: {labels}){}; about {:.0} tokens per example, {} in all (characters / 4, not a tokenizer's count)",
        summary.items,
        if summary.items == 1 { "" } else { "s" },
        summary.labels.len(),
        if args.validation.is_some() {
            format!(", {} held out for validation", validation.len())
        } else {
            String::new()
        },
        summary.approx_tokens_per_example,
        summary.approx_tokens_total,
    );
    if let Some(model) = &args.model {
        match crate::cost::PriceTable::builtin().training_price(model) {
            Some((entry, per_mtok)) => eprintln!(
                "estimated training cost for {model}: ${:.4} ({} epochs × {} tokens at ${per_mtok}/M training tokens, {} price as of {})",
                summary.approx_tokens_total as f64 * f64::from(args.epochs) * per_mtok / 1e6,
                args.epochs,
                summary.approx_tokens_total,
                entry.model,
                entry.as_of
            ),
            None => eprintln!("no training price is known for {model}; the table has training prices for OpenAI's fine-tunable models (e.g. gpt-4o-mini)"),
        }
    }
    Ok(exit::SUCCESS)
}

fn validate(
    path: &std::path::Path,
    against: &[PathBuf],
    out: &mut impl Write,
) -> anyhow::Result<u8> {
    let suite = plan::load_suite(path)?;
    report_leakage(&suite);
    for file in against {
        if !report_leakage_against(&suite, file)? {
            eprintln!("{}: no test item found in it", file.display());
        }
    }
    for backend in &suite.backends {
        if let Some(file) = &backend.trained_on {
            report_leakage_against(&suite, file)?;
        }
    }
    let train = suite.train.as_ref().map_or(0, |t| t.items.len());
    let task = match suite.task.kind {
        suite::TaskKind::Classification => format!("{} labels", suite.task.labels.len()),
        suite::TaskKind::Extraction => format!("{} fields", suite.task.fields.len()),
    };
    writeln!(
        out,
        "{}: ok — suite `{}`, {task}, {} test items, {} train items, {} backends",
        path.display(),
        suite.name,
        suite.test.items.len(),
        train,
        suite.backends.len()
    )?;
    // Each field with how many test items have gold for it: a field most items lack is scored on
    // few of them, which a reader should know before trusting its accuracy.
    let mut with_gold = vec![0usize; suite.task.fields.len()];
    for item in &suite.test.items {
        if let Ok(gold) = crate::field::value::gold_values(&suite.task.fields, &item.label) {
            for (n, g) in with_gold.iter_mut().zip(gold) {
                *n += usize::from(g.is_some());
            }
        }
    }
    for (field, with_gold) in suite.task.fields.iter().zip(with_gold) {
        let rule = match &field.ty {
            crate::field::FieldType::String(m) | crate::field::FieldType::List(m) => {
                format!(", {m}")
            }
            crate::field::FieldType::Number { tolerance } if *tolerance > 0.0 => {
                format!(", tolerance {tolerance}")
            }
            crate::field::FieldType::Date { day_first: false } => ", month first".to_string(),
            crate::field::FieldType::Enum(values) => format!(": {}", values.join(", ")),
            _ => String::new(),
        };
        let required = if field.required { ", required" } else { "" };
        writeln!(
            out,
            "  {} ({}{rule}{required}): gold in {with_gold} of {} test items",
            field.name,
            field.ty.name(),
            suite.test.items.len()
        )?;
    }
    // What `evalgate run` would do here: the backends it would skip, and what it would cost.
    let resolved = RunPlan::resolve(Arc::new(suite), &RunOptions::default(), &plan::ProcessEnv)?;
    // A backend whose key variable is unset is not an error (`run` skips it), but the reader
    // must know before a run that it would not be compared.
    for skipped in &resolved.skipped {
        eprintln!(
            "warning: backend `{}` would be skipped by `evalgate run`: {}",
            skipped.id, skipped.reason
        );
    }
    let estimate = resolved.estimate()?;
    let costs: Vec<String> = estimate
        .backends
        .iter()
        .map(|(id, cost)| match cost {
            plan::EstimatedCost::Free => format!("{id} free"),
            plan::EstimatedCost::Unpriced => format!("{id} no known price"),
            plan::EstimatedCost::Usd(usd) => format!("{id} ${usd:.4}"),
        })
        .collect();
    if !costs.is_empty() {
        println!("  estimated cost of a run: ${:.4} ({})", estimate.total_usd, costs.join(", "));
    }
    Ok(exit::SUCCESS)
}

/// Warns about test items that also appear in the training data, exactly or as
/// near-duplicates; not an error, since a suite may mean it, but a reader must know.
fn report_leakage(suite: &suite::Suite) {
    let leaks = suite::leakage::find(suite);
    if leaks.is_empty() {
        return;
    }
    let train = suite.train.as_ref().map(|t| t.origin.display().to_string()).unwrap_or_default();
    eprintln!(
        "warning: {} test item{} of {} also appear in the training data {train}: {}",
        leaks.len(),
        if leaks.len() == 1 { "" } else { "s" },
        suite.test.origin.display(),
        suite::leakage::describe(&leaks, 10)
    );
    eprintln!("  hint: remove them from one split; few-shot prompts and the local baseline could have seen the answers");
}

/// Warns about test items found in a fine-tuning file; true when there are some.
fn report_leakage_against(suite: &suite::Suite, file: &std::path::Path) -> anyhow::Result<bool> {
    let leaks = crate::export::leaks_against(suite, file).map_err(Error::Usage)?;
    if leaks.is_empty() {
        return Ok(false);
    }
    eprintln!(
        "warning: {} test item{} of {} appear in the fine-tuning file {}: {}",
        leaks.len(),
        if leaks.len() == 1 { "" } else { "s" },
        suite.test.origin.display(),
        file.display(),
        suite::leakage::describe(&leaks, 10)
    );
    Ok(true)
}

fn run(args: RunArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let suite = Arc::new(plan::load_suite(&args.suite)?);
    if !args.quiet {
        report_leakage(&suite);
    }
    if !(args.max_error_rate.is_finite() && (0.0..=1.0).contains(&args.max_error_rate)) {
        return Err(Error::Usage(format!(
            "--max-error-rate {}: give a proportion from 0 to 1, e.g. 0.05",
            args.max_error_rate
        ))
        .into());
    }
    if args.limit == Some(0) {
        return Err(Error::Usage(
            "--limit 0 would run no item; give the number of test items to run (1 or more), or leave --limit out to run them all".to_string(),
        )
        .into());
    }
    let options = RunOptions {
        out_dir: args.out,
        backends: args.backends,
        limit: args.limit,
        concurrency: args.concurrency.map(|c| c as usize),
        require_all: args.require_all,
        max_cost_usd: args.max_cost_usd,
        resume: args.resume,
        shard: args.shard,
        cache: (!args.no_cache).then_some(args.cache),
        refresh: args.refresh,
        cache_max_age: args.cache_max_age,
        grace: args.grace,
        batch: args.batch,
        ..RunOptions::default()
    };
    if let Some(limit) = args.max_cost_usd {
        if !(limit.is_finite() && limit >= 0.0) {
            return Err(Error::Usage(format!(
                "--max-cost-usd {limit}: give a number of dollars, 0 or more"
            ))
            .into());
        }
    }
    let outcome = execute(suite.clone(), &options, args.quiet)?;
    let dir = outcome.dir;
    // A suite with a gate has its verdict in the report; it does not change `run`'s exit code.
    let policy = suite.gate.clone().map(|mut p| {
        p.max_error_rate = p.max_error_rate.or(Some(args.max_error_rate));
        p
    });
    // The report reads the journal, not the suite: freeing the items first lets the report's
    // allocations reuse their memory (at 100,000 items, the run's peak).
    drop(suite);
    let mut options =
        report::OutputOptions { gate: policy.as_ref(), max_error_rate: Some(args.max_error_rate) };
    let (results, markdown) = match report::write_outputs_with(&dir, &options) {
        Err(Error::Gate(why)) => {
            if !args.quiet {
                eprintln!("note: the report has no gate verdict: {why}");
            }
            options.gate = None;
            report::write_outputs_with(&dir, &options)?
        }
        written => written?,
    };
    write_step_summary(&markdown);
    if !args.quiet {
        print_backends(&results);
    }
    writeln!(out, "{}", dir.join(report::REPORT_FILE).display())?;
    match outcome.stopped {
        Some(runner::StopReason::Interrupted) => {
            eprintln!("interrupted: the report covers the items that finished");
            return Ok(exit::INTERRUPTED);
        }
        Some(runner::StopReason::Terminated) => {
            eprintln!("terminated: the report covers the items that finished");
            return Ok(exit::TERMINATED);
        }
        Some(reason @ runner::StopReason::Budget { .. }) => {
            eprintln!("warning: {}; the report covers the items that finished", reason.describe());
        }
        None => {}
    }
    if report_error_rates(&results) {
        return Ok(exit::ERROR);
    }
    Ok(exit::SUCCESS)
}

/// Prints each backend whose errors are above the limit; true when there is one.
fn report_error_rates(results: &report::Results) -> bool {
    for e in &results.error_rate_exceeded {
        eprintln!(
            "error: {} of {} requests to `{}` failed ({:.1}%, above the {:.1}% limit); the report is written, but its figures for `{}` do not describe the model",
            e.errors,
            e.requests,
            e.backend,
            e.error_rate * 100.0,
            e.max_error_rate * 100.0,
            e.backend
        );
    }
    !results.error_rate_exceeded.is_empty()
}

/// One line per backend on stderr: its headline figure with interval.
fn print_backends(results: &report::Results) {
    for b in &results.backends {
        let a = &b.accuracy;
        // Extraction: the exact-match rate, with micro-F1 over fields beside it.
        let (what, extra) = match &b.micro_f1 {
            Some(f1) => ("exact match", format!(", micro-F1 {:.3}", f1.estimate)),
            None => ("accuracy", String::new()),
        };
        // As in report.md: a backend that answered nothing has no accuracy, not 0%.
        if b.answered == 0 {
            eprintln!(
                "{:<20} {what} — (no answers) over 0 answered, {} invalid, {} errors",
                b.id, b.invalid, b.errors
            );
            continue;
        }
        eprintln!(
            "{:<20} {what} {:>5.1}% (95% CI {:.1}–{:.1}){extra} over {} answered, {} invalid, {} errors",
            b.id,
            a.estimate * 100.0,
            a.low * 100.0,
            a.high * 100.0,
            b.answered,
            b.invalid,
            b.errors
        );
    }
}

/// Runs a suite with progress on stderr and Ctrl-C handling; every record is journaled.
fn execute(
    suite: Arc<suite::Suite>,
    options: &RunOptions,
    quiet: bool,
) -> anyhow::Result<runner::RunOutcome> {
    let display = Arc::new(Mutex::new(ProgressDisplay::new(quiet)));
    let sink = display.clone();
    let events: runner::EventSink = Arc::new(move |event| {
        if let Ok(mut d) = sink.lock() {
            d.on_event(event);
        }
    });
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Error::Runtime)?;
    let stop = Arc::new(runner::StopSignal::default());
    let grace = options.grace;
    let outcome = runtime.block_on(async {
        let on_ctrl_c = stop.clone();
        // The first Ctrl-C stops sending and lets requests in flight finish for the grace
        // period; a second one exits at once (what has been journaled is kept either way).
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\nstopping: requests in flight have {} s to finish, then are recorded as not sent (Ctrl-C again to quit now)",
                    grace.as_secs_f64()
                );
                on_ctrl_c.stop(runner::StopReason::Interrupted);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(exit::INTERRUPTED));
                }
            }
        });
        // SIGTERM, what a CI runner sends on timeout, is handled like Ctrl-C: the outputs are
        // written before the exit.
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut terminate) = signal(SignalKind::terminate()) {
                let on_term = stop.clone();
                tokio::spawn(async move {
                    if terminate.recv().await.is_some() {
                        eprintln!(
                            "\nterminating (SIGTERM): requests in flight have {} s to finish",
                            grace.as_secs_f64()
                        );
                        on_term.stop(runner::StopReason::Terminated);
                        if terminate.recv().await.is_some() {
                            std::process::exit(i32::from(exit::TERMINATED));
                        }
                    }
                });
            }
        }
        let resolved = RunPlan::resolve(suite, options, &plan::ProcessEnv)?;
        runner::run(resolved, events, stop.clone()).await
    })?;
    runtime.shutdown_background();
    if let Ok(mut d) = display.lock() {
        d.finish(outcome.stopped.is_some());
    }
    Ok(outcome)
}

fn gate(args: GateArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let suite = Arc::new(plan::load_suite(&args.suite)?);
    let policy = match &args.policy {
        Some(path) => crate::gate::load_policy(path, &suite)?,
        None => suite.gate.clone().ok_or_else(|| {
            Error::Usage(format!(
                "{}: the suite has no `gate:` section; add one, or give --policy FILE (see \"CI gate\" in the README)",
                args.suite.display()
            ))
        })?,
    };
    let (dir, stopped) = match &args.run {
        Some(dir) => {
            let meta = crate::journal::RunMeta::read(dir)?;
            if meta.suite.sha256 != suite.sha256 && !args.quiet {
                eprintln!(
                    "note: {} was run from a different version of {} (suite sha256 {} there); judging it by this policy",
                    dir.display(),
                    args.suite.display(),
                    &meta.suite.sha256[..meta.suite.sha256.len().min(12)]
                );
            }
            (dir.clone(), None)
        }
        None => {
            if !args.quiet {
                report_leakage(&suite);
            }
            let options = RunOptions {
                out_dir: args.out.clone(),
                concurrency: args.concurrency.map(|c| c as usize),
                cache: (!args.no_cache).then_some(args.cache.clone()),
                ..RunOptions::default()
            };
            let outcome = execute(suite.clone(), &options, args.quiet)?;
            (outcome.dir, outcome.stopped)
        }
    };
    // As in `run`: the report reads the journal, and may reuse the items' memory.
    drop(suite);
    let options = report::OutputOptions { gate: Some(&policy), max_error_rate: None };
    let (results, _) = report::write_outputs_with(&dir, &options)?;
    let verdict = results.gate.as_ref().ok_or_else(|| Error::Gate("no verdict".into()))?;
    write_gate_table(verdict, out)?;
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit::render(verdict)).map_err(|e| Error::io(path, e))?;
    }
    write_step_summary(&report::markdown::gate_section(verdict));
    if !args.quiet {
        eprintln!("report: {}", dir.join(report::REPORT_FILE).display());
    }
    match stopped {
        Some(runner::StopReason::Interrupted) => {
            eprintln!("interrupted: the gate judged only the items that finished");
            return Ok(exit::INTERRUPTED);
        }
        Some(runner::StopReason::Terminated) => {
            eprintln!("terminated: the gate judged only the items that finished");
            return Ok(exit::TERMINATED);
        }
        _ => {}
    }
    if report_error_rates(&results) {
        return Ok(exit::ERROR);
    }
    Ok(if verdict.passed { exit::SUCCESS } else { exit::GATE_FAILED })
}

/// The verdict as a terminal table: each check, its value with interval, its threshold and its
/// verdict, then the reasons of the checks that did not pass.
fn write_gate_table(
    verdict: &crate::gate::GateVerdict,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let rows: Vec<[String; 4]> = verdict
        .checks
        .iter()
        .map(|c| {
            [c.name.clone(), c.shown_value(), c.shown_threshold(), c.verdict.name().to_uppercase()]
        })
        .collect();
    let header = ["check", "value (95% CI)", "threshold", "verdict"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let against =
        verdict.baseline.as_deref().map(|b| format!(" against `{b}`")).unwrap_or_default();
    writeln!(out, "gate: candidate `{}`{against}", verdict.candidate)?;
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let pad = w - cell.chars().count();
            line.push_str(cell);
            line.push_str(&" ".repeat(pad + 2));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    for c in verdict.checks.iter().filter(|c| !c.passed) {
        writeln!(out, "  {} ({}): {}", c.name, c.verdict.name(), c.detail)?;
    }
    let summary = if verdict.passed {
        "PASSED".to_string()
    } else if verdict.infrastructure_failures().next().is_some() {
        "CANNOT JUDGE: the run's requests failed too often".to_string()
    } else {
        let failed =
            verdict.checks.iter().filter(|c| c.verdict == crate::gate::Verdict::Fail).count();
        let open = verdict
            .checks
            .iter()
            .filter(|c| c.verdict == crate::gate::Verdict::Inconclusive)
            .count();
        format!("FAILED ({failed} failed, {open} inconclusive)")
    };
    writeln!(out, "gate {summary}")?;
    Ok(())
}

/// Appends the report to the GitHub Actions step summary when running there.
fn write_step_summary(markdown: &str) {
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        // The chart is a file of the run directory, which a step summary cannot show.
        let markdown = report::markdown::step_summary(markdown);
        use std::io::Write;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(markdown.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "warning: cannot write the step summary to {}: {e}",
                PathBuf::from(path).display()
            );
        }
    }
}

/// Progress bars on a terminal; a plain line per 10% otherwise (CI logs). Both show the rate and
/// the time left, and after a stop, what was answered, failed and not sent.
struct ProgressDisplay {
    quiet: bool,
    terminal: bool,
    multi: MultiProgress,
    backends: Vec<BackendProgress>,
    /// Per batch: the status and the tenth of its requests done last shown in plain lines.
    batches: Vec<(String, String, u64)>,
}

/// What the display knows of one backend.
struct BackendProgress {
    id: String,
    bar: Option<ProgressBar>,
    done: usize,
    total: usize,
    errors: usize,
    cancelled: usize,
    /// Records a resumed run already had, and when this run's first record came: the rate is
    /// this run's.
    started: (usize, std::time::Instant),
    last_decile: usize,
}

impl BackendProgress {
    /// `12.5/s, 31 s left`, once there is a rate to speak of.
    fn pace(&self) -> String {
        let elapsed = self.started.1.elapsed().as_secs_f64();
        let done = self.done.saturating_sub(self.started.0);
        if done == 0 || elapsed < 0.05 {
            return String::new();
        }
        let rate = done as f64 / elapsed;
        let left = self.total.saturating_sub(self.done) as f64 / rate;
        if self.done >= self.total {
            format!("{rate:.1}/s")
        } else {
            format!("{rate:.1}/s, {} left", report::prose::duration(left))
        }
    }
}

impl ProgressDisplay {
    fn new(quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let target = if terminal && !quiet {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        ProgressDisplay {
            quiet,
            terminal,
            multi: MultiProgress::with_draw_target(target),
            backends: Vec::new(),
            batches: Vec::new(),
        }
    }

    /// The display's entry for `backend`, made (with its bar on a terminal) on first sight.
    fn entry(&mut self, backend: &str, done: usize, total: usize) -> &mut BackendProgress {
        let b = match self.backends.iter().position(|b| b.id == backend) {
            Some(b) => b,
            None => {
                let bar = (self.terminal && !self.quiet).then(|| {
                    let bar = self.multi.add(ProgressBar::new(total as u64));
                    if let Ok(style) = ProgressStyle::with_template(
                        "{prefix:>20} {bar:30} {pos}/{len} {msg} [{elapsed}]",
                    ) {
                        bar.set_style(style);
                    }
                    bar.set_prefix(backend.to_string());
                    bar
                });
                self.backends.push(BackendProgress {
                    id: backend.to_string(),
                    bar,
                    done,
                    total,
                    errors: 0,
                    cancelled: 0,
                    // This record is the first of this run.
                    started: (done.saturating_sub(1), std::time::Instant::now()),
                    last_decile: 0,
                });
                self.backends.len() - 1
            }
        };
        &mut self.backends[b]
    }

    /// A batch's status: on a terminal, the message of the backend's bar; in plain output, a
    /// line when the status changes or another tenth of its requests is done.
    fn on_batch(
        &mut self,
        backend: &str,
        batch: &str,
        status: &str,
        completed: u64,
        failed: u64,
        total: u64,
    ) {
        if self.quiet {
            return;
        }
        let words = status.replace('_', " ");
        let counts = match failed {
            0 => format!("{completed}/{total}"),
            f => format!("{completed}/{total}, {f} failed"),
        };
        let text = format!("batch {batch} {words} {counts}");
        if self.terminal {
            if let Some(bar) = &self.entry(backend, 0, total as usize).bar {
                bar.set_message(text);
            }
            return;
        }
        let decile = completed * 10 / total.max(1);
        let shown = self.batches.iter_mut().find(|(id, _, _)| id == batch);
        let changed = match shown {
            Some((_, last_status, last_decile)) => {
                let changed = last_status != status || *last_decile != decile;
                *last_status = status.to_string();
                *last_decile = decile;
                changed
            }
            None => {
                self.batches.push((batch.to_string(), status.to_string(), decile));
                true
            }
        };
        if changed {
            eprintln!("{backend}: {text}");
        }
    }

    fn note(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    fn on_event(&mut self, event: RunEvent) {
        match event {
            RunEvent::Skipped { id, reason } => {
                self.note(&format!("note: skipping backend `{id}`: {reason}"))
            }
            RunEvent::Trained { id, items, seconds } => {
                self.note(&format!("trained `{id}` on {items} items in {seconds:.2} s"))
            }
            RunEvent::Warning(text) => self.note(&format!("warning: {text}")),
            RunEvent::Note(text) => self.note(&format!("note: {text}")),
            RunEvent::Batch { backend, batch, status, completed, failed, total } => {
                self.on_batch(&backend, &batch, &status, completed, failed, total)
            }
            // An error, shown even with --quiet.
            RunEvent::BackendStopped { backend, reason } => {
                let text = format!(
                    "error: backend `{backend}` stopped: {reason}; its remaining items are recorded as not sent (--resume sends them)"
                );
                if self.terminal {
                    let _ = self.multi.println(&text);
                } else {
                    eprintln!("{text}");
                }
            }
            RunEvent::Started { dir, backends, items } => self.note(&format!(
                "running {items} items × {backends} backends into {}",
                dir.display()
            )),
            RunEvent::Progress { backend, done, total, errors, cancelled } => {
                self.progress(backend, done, total, errors, cancelled)
            }
        }
    }

    fn progress(
        &mut self,
        backend: String,
        done: usize,
        total: usize,
        errors: usize,
        cancelled: usize,
    ) {
        let quiet = self.quiet;
        let p = self.entry(&backend, done, total);
        (p.done, p.total, p.errors, p.cancelled) = (done, total, errors, cancelled);
        if quiet {
            return;
        }
        let failed = match errors {
            0 => String::new(),
            n => format!("{n} errors"),
        };
        if let Some(bar) = &p.bar {
            bar.set_position(done as u64);
            let pace = p.pace();
            let sep = if failed.is_empty() || pace.is_empty() { "" } else { ", " };
            bar.set_message(format!("{failed}{sep}{pace}"));
        } else {
            let decile = done * 10 / total.max(1);
            if decile > p.last_decile || done == total {
                p.last_decile = decile;
                let pace = p.pace();
                let pace = if pace.is_empty() { pace } else { format!(", {pace}") };
                eprintln!("{}: {done}/{total} done, {errors} errors{pace}", p.id);
            }
        }
    }

    /// Leaves each bar where it is (a stopped run's bars stay short of the end) and, when the
    /// run stopped early, says per backend what was answered, what failed and what was not sent.
    fn finish(&mut self, stopped: bool) {
        for p in &self.backends {
            if let Some(bar) = &p.bar {
                bar.abandon();
            }
        }
        if !stopped || self.quiet {
            return;
        }
        for p in &self.backends {
            // Records of requests a stop cancelled are not answers: they join the unsent.
            let answered = p.done.saturating_sub(p.errors + p.cancelled);
            let not_sent = p.cancelled + p.total.saturating_sub(p.done);
            let cut = match p.cancelled {
                0 => String::new(),
                n => format!(" ({n} cancelled by the stop)"),
            };
            eprintln!(
                "{}: {answered} answered, {} failed, {not_sent} not sent{cut} of {}{}",
                p.id,
                p.errors,
                p.total,
                if not_sent > 0 { "; --resume sends what was not sent" } else { "" }
            );
        }
    }
}
