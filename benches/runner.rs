//! Throughput and memory benchmark of `evalgate run` against the in-process OpenAI-compatible
//! test server on 127.0.0.1.
//!
//! `cargo bench --bench runner` (from the crate root). Each scenario runs the release `evalgate`
//! binary as a child process under GNU time (`/usr/bin/time -f "%M %e %U %S"`: peak RSS in KB,
//! elapsed, user and system CPU seconds) against the server, which runs in this process on a
//! tokio runtime of its own (2 worker threads) and answers every request with the correct label.
//!
//! The binary is the one cargo builds for benchmarks (`CARGO_BIN_EXE_evalgate`: the `bench`
//! profile, which inherits `release`); `EVALGATE_BENCH_BIN=PATH` runs another one instead.
//!
//! Scenarios (all one `provider: openai` backend, concurrency 32, zero-shot, no key):
//!   1. 2,000 items, server latency 0 ms: wall time, requests/s, peak RSS.
//!   2. 2,000 items, server latency 50 ms: wall time against the ideal (items × latency /
//!      concurrency) and against a raw HTTP load generator (hyper's HTTP/1 client, 32
//!      keep-alive connections, the same request bodies), run in this process.
//!   3. 100,000 items, latency 0 ms: peak RSS and throughput.
//!   5. Extraction: `EVALGATE_BENCH_EXTRACTION` items (default 20,000) with five typed fields,
//!      latency 0 ms; the report phase holds per-field scoring and the bootstrap of six pooled
//!      metrics (2,000 resamples).
//!   4. Scenario 1's suite run a second time with the response cache on (only when
//!      `evalgate run --help` lists `--no-cache`): requests reaching the server, wall time.
//!      When `run --help` lists `--cache FILE`, every run gets `--cache <suite dir>/cache.sqlite`.
//!
//! Environment:
//!   EVALGATE_BENCH_SCENARIOS  which scenarios, e.g. `1,3` (default `1,2,3,4,5`)
//!   EVALGATE_BENCH_EXTRACTION items of scenario 5 (default 20000)
//!   EVALGATE_BENCH_ITEMS      items of scenario 3 (default 100000)
//!   EVALGATE_BENCH_SMALL      items of scenarios 1, 2 and 4 (default 2000)
//!   EVALGATE_BENCH_LATENCY_MS server latency of scenario 2 (default 50)
//!   EVALGATE_BENCH_CONCURRENCY requests in flight (default 32)
//!   EVALGATE_BENCH_REPEATS    runs of scenarios 1 and 2 and of the load generator; the median
//!                             wall time is reported (default 3)
//!   EVALGATE_BENCH_BIN        the evalgate binary to run
//!   EVALGATE_BENCH_KEEP=1     keep the temporary suite and run directories and print them
//!   EVALGATE_BENCH_ARGS       extra arguments for every `evalgate run`, whitespace-separated
//!                             (e.g. `--no-cache`, to measure what the cache costs)
//!
//! Every run checks correctness: exit code 0, `records.jsonl` has exactly one line per item,
//! `results.json` has accuracy 1.0 with no errors. A failed check aborts the benchmark.
//!
//! Item texts carry a per-invocation nonce and the repeat number, so no run is served from a
//! response cache left by an earlier one (the cold scenarios stay cold once a cache exists);
//! the child also runs with its working directory, `HOME` and `XDG_CACHE_HOME` inside the temp
//! dir, so a cache it writes is thrown away with it.
//!
//! The server and the load generator share the machine with evalgate: on 2 cores every number
//! here includes the server's own CPU time. Other work on the machine (a cargo build) changes
//! the results severalfold; the load average is printed before and after.

#[path = "../tests/support/openai_server.rs"]
mod openai_server;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use openai_server::{Reply, ServerOptions, TestServer};
use serde_json::{json, Value};

const LABELS: [&str; 4] = ["billing", "technical", "account", "shipping"];
const INSTRUCTIONS: &str = "Classify the support ticket into one of: {{ labels | join(\", \") }}. Answer with the label only.";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().unwrap_or_else(|_| panic!("{name}={v}: not a valid value"))
        }
        _ => default,
    }
}

struct Config {
    scenarios: Vec<u32>,
    big: usize,
    extraction: usize,
    small: usize,
    latency: Duration,
    concurrency: usize,
    repeats: usize,
    bin: PathBuf,
    keep: bool,
    nonce: String,
    cache_flag: bool,
    extra_args: Vec<String>,
}

/// One run of the evalgate binary.
#[derive(Clone, Debug)]
struct Measured {
    wall: f64,
    /// From process start to the "running N items" line (suite load, validation, setup).
    startup: f64,
    /// From "running N items" to the last progress line (every record journaled).
    send: f64,
    /// From the last progress line to exit (scoring, bootstrap, report, records.csv).
    report: f64,
    rss_mb: f64,
    /// Highest sampled RSS (MB) in the startup, sending and report phases.
    rss_phases: [f64; 3],
    cpu_user: f64,
    cpu_sys: f64,
    server_requests: usize,
}

/// A row of the final table.
struct Row {
    scenario: String,
    items: usize,
    m: Measured,
    target: String,
    pass: Option<bool>,
}

fn main() {
    let nonce = format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
    );
    let mut config = Config {
        scenarios: std::env::var("EVALGATE_BENCH_SCENARIOS")
            .unwrap_or_else(|_| "1,2,3,4,5".into())
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim().parse().expect("EVALGATE_BENCH_SCENARIOS: numbers 1-5, comma-separated")
            })
            .collect(),
        big: env_or("EVALGATE_BENCH_ITEMS", 100_000),
        extraction: env_or("EVALGATE_BENCH_EXTRACTION", 20_000),
        small: env_or("EVALGATE_BENCH_SMALL", 2_000),
        latency: Duration::from_millis(env_or("EVALGATE_BENCH_LATENCY_MS", 50)),
        concurrency: env_or("EVALGATE_BENCH_CONCURRENCY", 32),
        repeats: env_or::<usize>("EVALGATE_BENCH_REPEATS", 3).max(1),
        bin: std::env::var_os("EVALGATE_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_evalgate"))),
        keep: std::env::var("EVALGATE_BENCH_KEEP").is_ok_and(|v| v == "1"),
        nonce,
        cache_flag: false,
        extra_args: std::env::var("EVALGATE_BENCH_ARGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    };
    assert!(Path::new("/usr/bin/time").exists(), "GNU time (/usr/bin/time) is needed for peak RSS");
    assert!(
        config.bin.exists(),
        "{}: no such binary; build it with `cargo build --release --bin evalgate`",
        config.bin.display()
    );
    // target/release/evalgate is shared with every other cargo build of this checkout: run a
    // private copy so a rebuild in the middle of the benchmark cannot change what is measured.
    let snapshot =
        tempfile::Builder::new().prefix("evalgate-bench-bin-").tempdir().expect("temp dir");
    let source = config.bin.clone();
    config.bin = snapshot.path().join("evalgate");
    std::fs::copy(&source, &config.bin).expect("copy the evalgate binary");
    let help = Command::new(&config.bin)
        .args(["run", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let has_cache = help.contains("--no-cache");
    // With a `--cache FILE` option, every run of one suite dir uses `<dir>/cache.sqlite`.
    config.cache_flag = help.contains("--cache <");
    if !config.extra_args.is_empty() {
        eprintln!("evalgate bench: extra run arguments: {}", config.extra_args.join(" "));
    }
    eprintln!(
        "evalgate bench: binary {} ({}, copied to {}), {} cores, concurrency {}, repeats {}, response cache: {}",
        source.display(),
        binary_age(&source),
        config.bin.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        config.concurrency,
        config.repeats,
        if has_cache { "yes (--no-cache listed)" } else { "no (--no-cache not in `run --help`)" }
    );

    let load_before = loadavg();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let c = config.concurrency;

    // Scenarios 1 and 4 share one server (a cache may key on the base URL) and one suite.
    if config.scenarios.contains(&1) || config.scenarios.contains(&4) {
        let server = start_server(Duration::ZERO);
        let mut runs = Vec::new();
        let mut last_dir = None;
        for rep in 0..config.repeats {
            let dir = make_suite(&config, &server, config.small, &format!("s1-r{rep}"));
            let m = run_evalgate(&config, &server, &dir, "run", config.small);
            eprintln!("  scenario 1 run {}: {}", rep + 1, describe(&m, config.small));
            runs.push(m);
            if let Some(old) = last_dir.replace(dir) {
                finish_dir(&config, old);
            }
        }
        let m = median(runs);
        let rps = config.small as f64 / m.wall;
        if config.scenarios.contains(&1) {
            rows.push(Row {
                scenario: "1. latency 0 ms".into(),
                items: config.small,
                target: "≥ 5,000 req/s; ≤ 50 MB".into(),
                pass: Some(rps >= 5000.0 && m.rss_mb <= 50.0),
                m,
            });
        }
        if config.scenarios.contains(&4) {
            let dir = last_dir.take().expect("scenario 1 ran");
            if has_cache {
                let m = run_evalgate(&config, &server, &dir, "run-cached", config.small);
                eprintln!("  scenario 4: {}", describe(&m, config.small));
                rows.push(Row {
                    scenario: "4. cached re-run".into(),
                    items: config.small,
                    target: "0 server requests; ≤ 50 MB".into(),
                    pass: Some(m.server_requests == 0 && m.rss_mb <= 50.0),
                    m,
                });
            } else {
                notes.push("scenario 4 skipped: this evalgate has no response cache (`--no-cache` is not in `evalgate run --help`)".to_string());
            }
            finish_dir(&config, dir);
        } else if let Some(dir) = last_dir.take() {
            finish_dir(&config, dir);
        }
    }

    if config.scenarios.contains(&2) {
        let server = start_server(config.latency);
        let ideal = config.small as f64 * config.latency.as_secs_f64() / c as f64;
        let mut base = Vec::new();
        for rep in 0..config.repeats {
            let w =
                load_generator(&server, config.small, c, &format!("{}-base{rep}", config.nonce));
            eprintln!(
                "  load generator run {}: {:.3} s, {:.0} req/s",
                rep + 1,
                w,
                config.small as f64 / w
            );
            base.push(w);
        }
        base.sort_by(f64::total_cmp);
        let base = base[base.len() / 2];
        let mut runs = Vec::new();
        for rep in 0..config.repeats {
            let dir = make_suite(&config, &server, config.small, &format!("s2-r{rep}"));
            let m = run_evalgate(&config, &server, &dir, "run", config.small);
            eprintln!("  scenario 2 run {}: {}", rep + 1, describe(&m, config.small));
            runs.push(m);
            finish_dir(&config, dir);
        }
        let m = median(runs);
        let lat = config.latency.as_millis();
        rows.push(Row {
            scenario: format!("2b. load generator, {lat} ms"),
            items: config.small,
            m: Measured {
                wall: base,
                startup: 0.0,
                send: base,
                report: 0.0,
                rss_mb: f64::NAN,
                rss_phases: [f64::NAN; 3],
                cpu_user: f64::NAN,
                cpu_sys: f64::NAN,
                server_requests: config.small,
            },
            target: format!("ideal {ideal:.3} s (×{:.3})", base / ideal),
            pass: None,
        });
        rows.push(Row {
            scenario: format!("2. latency {lat} ms"),
            items: config.small,
            target: format!(
                "≤ 1.05 × load gen (×{:.3}); ideal ×{:.3}; ≤ 50 MB",
                m.wall / base,
                m.wall / ideal
            ),
            pass: Some(m.wall <= 1.05 * base && m.rss_mb <= 50.0),
            m,
        });
        notes.push(format!(
            "scenario 2: evalgate {:.3} s end to end ({:.3} s sending) vs load generator {base:.3} s vs ideal {ideal:.3} s",
            rows.last().unwrap().m.wall,
            rows.last().unwrap().m.send
        ));
    }

    if config.scenarios.contains(&3) {
        let server = start_server(Duration::ZERO);
        let base = load_generator(&server, config.small, c, &format!("{}-base0", config.nonce));
        notes.push(format!(
            "load generator against the same server at 0 ms: {:.0} req/s ({} requests, {base:.3} s): the ceiling for scenarios 1 and 3 on this machine",
            config.small as f64 / base,
            config.small
        ));
        let dir = make_suite(&config, &server, config.big, "s3");
        let m = run_evalgate(&config, &server, &dir, "run", config.big);
        eprintln!("  scenario 3: {}", describe(&m, config.big));
        let rps = config.big as f64 / m.wall;
        rows.push(Row {
            scenario: "3. latency 0 ms".into(),
            items: config.big,
            target: "≥ 5,000 req/s; ≤ 150 MB".into(),
            pass: Some(rps >= 5000.0 && m.rss_mb <= 150.0),
            m,
        });
        finish_dir(&config, dir);
    }

    if config.scenarios.contains(&5) {
        let server = start_server(Duration::ZERO);
        let dir = make_extraction_suite(&config, &server, config.extraction);
        let m = run_evalgate(&config, &server, &dir, "run", config.extraction);
        eprintln!("  scenario 5: {}", describe(&m, config.extraction));
        rows.push(Row {
            scenario: "5. extraction, 5 fields, 0 ms".into(),
            items: config.extraction,
            target: "none set (measured)".into(),
            pass: None,
            m,
        });
        finish_dir(&config, dir);
    }

    print_table(&rows, &notes);
    println!("- load average before: {load_before}; after: {}", loadavg());
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or("unknown".into(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn binary_age(bin: &Path) -> String {
    std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or("age unknown".into(), |d| format!("built {} s ago", d.as_secs()))
}

fn start_server(latency: Duration) -> TestServer {
    TestServer::start_in_thread_with(
        ServerOptions { record_requests: false, ..ServerOptions::default() },
        move |req, _attempt| {
            let text = req.last_user_text().unwrap_or_default();
            // An extraction item carries its answer after `ANSWER `; a ticket names its label.
            let reply = match text.split_once("ANSWER ") {
                Some((_, answer)) => Reply::chat(answer),
                None => Reply::chat(
                    LABELS.iter().find(|l| text.contains(*l)).copied().unwrap_or("unknown"),
                ),
            };
            if latency.is_zero() {
                reply
            } else {
                Reply::Delay(latency, Box::new(reply))
            }
        },
    )
}

/// A ticket's text; it names its label once and no other.
fn item_text(nonce: &str, tag: &str, i: usize) -> (String, &'static str) {
    let label = LABELS[i % LABELS.len()];
    (
        format!(
            "Hello, I have a {label} question about order {i} (ref {nonce}-{tag}). Can you help?"
        ),
        label,
    )
}

/// Writes `data.csv` and `suite.yaml` for `items` items into a new temp dir.
fn make_suite(config: &Config, server: &TestServer, items: usize, tag: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("evalgate-bench-").tempdir().expect("temp dir");
    let mut csv =
        std::io::BufWriter::new(std::fs::File::create(dir.path().join("data.csv")).unwrap());
    writeln!(csv, "id,text,label").unwrap();
    for i in 0..items {
        let (text, label) = item_text(&config.nonce, tag, i);
        writeln!(csv, "t{i},\"{text}\",{label}").unwrap();
    }
    csv.flush().unwrap();
    let suite = format!(
        "schema_version: 1\nname: bench\ntask:\n  kind: classification\n  labels: [{labels}]\n  instructions: '{INSTRUCTIONS}'\n  input: 'Ticket: {{{{ text }}}}'\ndata:\n  test: data.csv\nbackends:\n  - id: bench\n    provider: openai\n    base_url: {base}\n    model: bench\n    strategy: zero-shot\n    concurrency: {c}\n",
        labels = LABELS.join(", "),
        base = server.base_url(),
        c = config.concurrency,
    );
    std::fs::write(dir.path().join("suite.yaml"), suite).unwrap();
    dir
}

/// Writes `data.jsonl` (gold in an `expected` object) and an extraction `suite.yaml`. Each text
/// ends with the JSON the server answers: the gold in other forms (a day-first date, a total with
/// a currency and thousands separator), so every field goes through its parser.
fn make_extraction_suite(config: &Config, server: &TestServer, items: usize) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("evalgate-bench-").tempdir().expect("temp dir");
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(dir.path().join("data.jsonl")).unwrap());
    for i in 0..items {
        let (day, month, cents) = (1 + i % 28, 1 + i % 12, 1000 + (i * 7919) % 500_000);
        let total = format!("{}.{:02}", cents / 100, cents % 100);
        let gold = json!({
            "vendor": format!("Vendor {} Ltd", i % 997),
            "date": format!("2024-{month:02}-{day:02}"),
            "total": total,
            "status": if i % 3 == 0 { "paid" } else { "open" },
            "lines": [format!("item {}", i % 13), format!("item {}", (i + 5) % 13)],
        });
        let mut answer = gold.clone();
        answer["date"] = json!(format!("{day:02}/{month:02}/2024"));
        answer["total"] = json!(format!(
            "RM {}.{:02}",
            evalgate::text::group_thousands((cents / 100) as u64),
            cents % 100
        ));
        answer["vendor"] = json!(format!("VENDOR {} LTD.", i % 997));
        let text = format!("Invoice {i} ref {} ANSWER {answer}", config.nonce);
        writeln!(out, "{}", json!({ "id": format!("x{i}"), "text": text, "expected": gold }))
            .unwrap();
    }
    out.flush().unwrap();
    let suite = format!(
        "schema_version: 1\nname: bench-extraction\ntask:\n  kind: extraction\n  fields:\n    vendor: {{ type: string, match: normalized }}\n    date: {{ type: date }}\n    total: {{ type: number, tolerance: 0.01 }}\n    status: {{ type: enum, values: [open, paid] }}\n    lines: {{ type: list }}\n  instructions: Extract the invoice fields.\n  input: '{{{{ text }}}}'\ndata:\n  test: data.jsonl\nbackends:\n  - id: bench\n    provider: openai\n    base_url: {base}\n    model: bench\n    concurrency: {c}\n",
        base = server.base_url(),
        c = config.concurrency,
    );
    std::fs::write(dir.path().join("suite.yaml"), suite).unwrap();
    dir
}

fn finish_dir(config: &Config, dir: tempfile::TempDir) {
    if config.keep {
        eprintln!("  kept {}", dir.keep().display());
    }
}

/// Runs `evalgate run suite.yaml --out <dir>/<out>` under GNU time and checks its outputs.
fn run_evalgate(
    config: &Config,
    server: &TestServer,
    dir: &tempfile::TempDir,
    out: &str,
    items: usize,
) -> Measured {
    let root = dir.path();
    let time_file = root.join(format!("{out}.time"));
    let run_dir = root.join(out);
    let before = server.request_count();
    let started = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M %e %U %S")
        .arg("-o")
        .arg(&time_file)
        .arg(&config.bin)
        .arg("run")
        .arg(root.join("suite.yaml"))
        .arg("--out")
        .arg(&run_dir)
        .args(&config.extra_args)
        .args(if config.cache_flag {
            vec![std::ffi::OsString::from("--cache"), root.join("cache.sqlite").into()]
        } else {
            vec![]
        })
        .current_dir(root)
        .env("XDG_CACHE_HOME", root.join("xdg-cache"))
        .env("HOME", root)
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn /usr/bin/time evalgate");
    // Progress lines go to stderr when it is not a terminal: "running N items …" when sending
    // starts, "bench: K/N done, E errors" at every tenth; their arrival times split the run.
    let stderr = child.stderr.take().unwrap();
    let lines: Arc<Mutex<Vec<(f64, String)>>> = Arc::default();
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push((started.elapsed().as_secs_f64(), line));
            }
        })
    };
    // Resident memory over time (VmRSS of the evalgate process, the child of GNU time, every
    // 10 ms), to tell which phase reaches the peak; GNU time's %M is the authoritative peak.
    let samples: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let sampler_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (samples, done, time_pid) = (samples.clone(), sampler_done.clone(), child.id());
        std::thread::spawn(move || {
            let mut pid = None;
            while !done.load(Ordering::Relaxed) {
                if pid.is_none() {
                    pid = std::fs::read_to_string(format!(
                        "/proc/{time_pid}/task/{time_pid}/children"
                    ))
                    .ok()
                    .and_then(|c| c.split_whitespace().next().map(str::to_string));
                }
                if let Some(rss) = pid.as_ref().and_then(|p| proc_status_kb(p, "VmRSS:")) {
                    samples.lock().unwrap().push((started.elapsed().as_secs_f64(), rss / 1024.0));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let output = child.wait_with_output().expect("wait for evalgate");
    let wall = started.elapsed().as_secs_f64();
    sampler_done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    reader.join().unwrap();
    let samples = samples.lock().unwrap().clone();
    let lines = lines.lock().unwrap().clone();
    let server_requests = server.request_count() - before;
    if !output.status.success() {
        for (_, l) in &lines {
            eprintln!("    | {l}");
        }
        panic!("evalgate exited with {} in {}", output.status, root.display());
    }
    let started_at = lines.iter().find(|(_, l)| l.starts_with("running ")).map_or(0.0, |(t, _)| *t);
    let finished_at = lines
        .iter()
        .rev()
        .find(|(_, l)| l.contains(&format!("{items}/{items} done")))
        .map_or(wall, |(t, _)| *t);

    let time = std::fs::read_to_string(&time_file).expect("GNU time output");
    let fields: Vec<f64> = time
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    assert!(fields.len() == 4, "unexpected GNU time output: {time:?}");

    // Correctness: one journal line per item, every answer right, no errors.
    let journal = std::fs::read(run_dir.join("records.jsonl")).expect("records.jsonl");
    let journal_lines = journal.iter().filter(|b| **b == b'\n').count();
    assert_eq!(journal_lines, items, "records.jsonl should hold exactly one line per item");
    let results: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("results.json")).expect("results.json"))
            .unwrap();
    let backend = &results["backends"][0];
    let accuracy = backend["accuracy"]["estimate"].as_f64().unwrap_or(f64::NAN);
    assert_eq!(backend["errors"].as_u64(), Some(0), "errors in {}", run_dir.display());
    assert_eq!(backend["answered"].as_u64(), Some(items as u64));
    assert!(accuracy == 1.0, "accuracy {accuracy}, expected 1.0");
    eprintln!("    correctness: accuracy {accuracy:.3}, records.jsonl {journal_lines} lines, {server_requests} requests reached the server");

    let phase_max = |from: f64, to: f64| {
        samples.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, r)| *r).fold(0.0, f64::max)
    };
    Measured {
        rss_phases: [
            phase_max(0.0, started_at),
            phase_max(started_at, finished_at),
            phase_max(finished_at, f64::INFINITY),
        ],
        wall,
        startup: started_at,
        send: finished_at - started_at,
        report: wall - finished_at,
        rss_mb: fields[0] / 1024.0,
        cpu_user: fields[2],
        cpu_sys: fields[3],
        server_requests,
    }
}

/// A `kB` field of `/proc/PID/status`.
fn proc_status_kb(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

fn describe(m: &Measured, items: usize) -> String {
    format!(
        "{:.3} s ({:.0} req/s; startup {:.3} s, sending {:.3} s = {:.0} req/s, report {:.3} s), peak RSS {:.1} MB (sampled max by phase: startup {:.1}, sending {:.1}, report {:.1}), CPU {:.2} user + {:.2} sys s",
        m.wall,
        items as f64 / m.wall,
        m.startup,
        m.send,
        items as f64 / m.send,
        m.report,
        m.rss_mb,
        m.rss_phases[0],
        m.rss_phases[1],
        m.rss_phases[2],
        m.cpu_user,
        m.cpu_sys
    )
}

/// The run with the median wall time, with the highest peak RSS of all runs.
fn median(mut runs: Vec<Measured>) -> Measured {
    let rss = runs.iter().map(|m| m.rss_mb).fold(0.0, f64::max);
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let mut m = runs[runs.len() / 2].clone();
    m.rss_mb = rss;
    m
}

/// A minimal load generator: `concurrency` keep-alive HTTP/1.1 connections (hyper's client),
/// each sending the next request as soon as its previous response body has been read. The
/// bodies are what evalgate sends for the same items (model, system and user messages,
/// temperature). Returns the wall time of `items` requests, connection setup included.
fn load_generator(server: &TestServer, items: usize, concurrency: usize, tag: &str) -> f64 {
    let system = format!(
        "Classify the support ticket into one of: {}. Answer with the label only.",
        LABELS.join(", ")
    );
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..items)
            .map(|i| {
                let (text, _) = item_text(tag, "lg", i);
                let body = json!({
                    "messages": [
                        { "role": "system", "content": system },
                        { "role": "user", "content": format!("Ticket: {text}") },
                    ],
                    "model": "bench",
                    "temperature": 0.0,
                });
                Bytes::from(body.to_string())
            })
            .collect(),
    );
    let addr = server.addr();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let wall = runtime.block_on(async move {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (next, bodies) = (next.clone(), bodies.clone());
            tasks.spawn(async move { connection(addr, next, bodies).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("load generator task");
        }
        started.elapsed().as_secs_f64()
    });
    runtime.shutdown_background();
    wall
}

async fn connection(addr: SocketAddr, next: Arc<AtomicUsize>, bodies: Arc<Vec<Bytes>>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let host = addr.to_string();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= bodies.len() {
            break;
        }
        let request = hyper::Request::post("/v1/chat/completions")
            .header(hyper::header::HOST, &host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bodies[i].clone()))
            .unwrap();
        sender.ready().await.expect("connection ready");
        let response = sender.send_request(request).await.expect("send");
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.expect("body").to_bytes();
        assert!(!body.is_empty());
    }
}

fn print_table(rows: &[Row], notes: &[String]) {
    println!();
    println!("| scenario | items | wall s | req/s | sending s | report s | peak RSS MB | CPU s (user+sys) | target | result |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for r in rows {
        let m = &r.m;
        let rss = if m.rss_mb.is_nan() { "–".to_string() } else { format!("{:.1}", m.rss_mb) };
        let cpu = if m.cpu_user.is_nan() {
            "–".to_string()
        } else {
            format!("{:.2}", m.cpu_user + m.cpu_sys)
        };
        let verdict = match r.pass {
            Some(true) => "pass",
            Some(false) => "FAIL",
            None => "baseline",
        };
        println!(
            "| {} | {} | {:.3} | {:.0} | {:.3} | {:.3} | {} | {} | {} | {} |",
            r.scenario,
            r.items,
            m.wall,
            r.items as f64 / m.wall,
            m.send,
            m.report,
            rss,
            cpu,
            r.target,
            verdict
        );
    }
    for n in notes {
        println!("- {n}");
    }
}
