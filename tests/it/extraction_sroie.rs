//! Extraction on the real SROIE 2019 receipts (`../shared/datasets/sroie2019`), run through the
//! binary against the in-process OpenAI-compatible server. The server answers each receipt with
//! its gold fields, perturbed by fixed rules (item index modulo small numbers) into wrong, missed
//! and invalid answers; every count in `results.json`, `records.jsonl` and `report.md` is checked
//! against counts computed here from those rules. Ignored by default, so a clone without the
//! datasets folder counts them as skipped; run them with `cargo test -- --ignored
//! extraction_sroie::` (they fail, naming the folder, when it is absent).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::support::openai_server::{Reply, TestServer};
use crate::support::*;

const FIELDS: [&str; 4] = ["company", "date", "address", "total"];

/// `sroie2019/<split>/metadata.jsonl` in `../shared/datasets`; fails naming it when absent.
fn sroie_split(split: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets/sroie2019")
        .join(split)
        .join("metadata.jsonl");
    assert!(
        path.is_file(),
        "this test needs ../shared/datasets, and {} is not a file",
        path.display()
    );
    path.canonicalize().expect("canonical dataset path")
}

/// One receipt: its id, its text lines joined by '\n' (the rendered input), and its gold fields.
struct Receipt {
    key: String,
    text: String,
    entities: Map<String, Value>,
}

impl Receipt {
    /// A gold field as written, `None` when the key is missing.
    fn gold(&self, field: &str) -> Option<&str> {
        self.entities.get(field).map(|v| {
            v.as_str().unwrap_or_else(|| panic!("{}: `{field}` is not a string", self.key))
        })
    }

    fn gold_total(&self) -> f64 {
        let raw = self.gold("total").expect("total");
        plain_number(raw).unwrap_or_else(|| panic!("{}: total `{raw}` is not a number", self.key))
    }
}

fn load(path: &Path) -> Vec<Receipt> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("metadata line is JSON");
            let words: Vec<&str> = v["words"]
                .as_array()
                .expect("words list")
                .iter()
                .map(|w| w.as_str().expect("word is a string"))
                .collect();
            Receipt {
                key: v["key"].as_str().expect("key").to_string(),
                text: words.join("\n"),
                entities: v["entities"].as_object().expect("entities object").clone(),
            }
        })
        .collect()
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// SROIE totals as printed: optional `RM` or `$`, optional sign, digits with `,` thousands.
fn plain_number(raw: &str) -> Option<f64> {
    let t = raw.trim().trim_start_matches("RM").trim_start_matches('$').trim().replace(',', "");
    if t.is_empty() {
        return None;
    }
    t.parse().ok()
}

/// The documented `normalized` text form, written out again: lowercase, anything but letters,
/// digits and whitespace becomes a space, whitespace collapsed, trimmed.
fn norm(s: &str) -> String {
    let mapped: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c.is_whitespace() { c } else { ' ' })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// ISO form of a numeric day-first date (`dd/mm/yyyy`, `d-m-yy`, ...) when the reading is plainly
/// valid (month 1–12, day 1–28); `None` for everything else.
fn iso_of(date: &str) -> Option<String> {
    let sep = if date.contains('/') { '/' } else { '-' };
    let parts: Vec<&str> = date.trim().split(sep).collect();
    let [d, m, y] = parts.as_slice() else { return None };
    let digits =
        |s: &str, lens: &[usize]| lens.contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit());
    if !(digits(d, &[1, 2]) && digits(m, &[1, 2]) && digits(y, &[2, 4])) {
        return None;
    }
    let (d, m, y): (u32, u32, u32) = (d.parse().ok()?, m.parse().ok()?, y.parse().ok()?);
    let y = if y < 100 { 2000 + y } else { y };
    ((1..=12).contains(&m) && (1..=28).contains(&d)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

// ---------------------------------------------------------------------------------------------
// The perturbation rules
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    A,
    B,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Correct,
    Wrong,
    Missed,
}

/// What backend `which` answers for receipt `i` (0-based, file order): `None` for a reply with no
/// JSON object, else the mark of each field in `FIELDS` order.
fn plan(which: Which, i: usize) -> Option<[Mark; 4]> {
    use Mark::*;
    match which {
        Which::A => {
            if i % 10 == 3 {
                return None;
            }
            Some([
                if i % 6 == 2 { Wrong } else { Correct },
                if i % 8 == 5 { Wrong } else { Correct },
                if i % 9 == 4 { Missed } else { Correct },
                if i % 7 == 1 { Wrong } else { Correct },
            ])
        }
        Which::B => {
            if i % 11 == 5 {
                return None;
            }
            Some([
                if i % 13 == 7 {
                    Wrong
                } else if i.is_multiple_of(17) {
                    Missed
                } else {
                    Correct
                },
                if i % 7 == 3 { Wrong } else { Correct },
                if i % 4 == 1 {
                    Wrong
                } else if i % 12 == 6 {
                    Missed
                } else {
                    Correct
                },
                if i.is_multiple_of(5) { Wrong } else { Correct },
            ])
        }
    }
}

const A_INVALID: &str = "I could not read this receipt.";
/// Braces, but no JSON object: still invalid.
const B_INVALID: &str = "I found {no fields} on this receipt, sorry.";
const WRONG_COMPANY: &str = "ACME TRADING";
const WRONG_ADDRESS: &str = "NO 1, JALAN PALSU, 00000 NOWHERE";

/// A field's value in the reply; `None` leaves the key out.
fn value_for(which: Which, i: usize, r: &Receipt, field: &str, mark: Mark) -> Option<Value> {
    let gold = r.gold(field).expect("test gold has every field");
    match (field, mark) {
        // Correct values, in forms that must still match.
        ("company", Mark::Correct) => Some(json!(match i % 3 {
            0 => gold.to_string(),
            1 => gold.to_lowercase(),
            _ => format!("  {}.", gold.replace(' ', "  ")),
        })),
        ("address", Mark::Correct) => Some(json!(if i.is_multiple_of(2) {
            gold.to_string()
        } else {
            gold.replace(',', " ").to_lowercase()
        })),
        ("date", Mark::Correct) => Some(json!(if i % 2 == 1 {
            iso_of(gold).unwrap_or_else(|| gold.to_string())
        } else {
            gold.to_string()
        })),
        ("total", Mark::Correct) => {
            let v = r.gold_total();
            Some(match i % 4 {
                0 => json!(gold),
                1 => json!(v),
                2 => json!(format!("RM {v:.2}")),
                _ => json!(format!("{v}")),
            })
        }
        // Wrong values.
        ("company", Mark::Wrong) => Some(json!(WRONG_COMPANY)),
        ("address", Mark::Wrong) => Some(json!(WRONG_ADDRESS)),
        ("date", Mark::Wrong) => {
            Some(json!(if which == Which::A { "1999-01-01" } else { "31/12/1999" }))
        }
        ("total", Mark::Wrong) => Some(match which {
            Which::A => json!(r.gold_total() + 1.0),
            Which::B => json!(format!("RM {:.2}", r.gold_total() + 2.5)),
        }),
        // Missing values: the key left out, null, empty, or text that normalizes to nothing.
        ("address", Mark::Missed) if which == Which::A => (i / 9 % 2 == 1).then_some(Value::Null),
        ("address", Mark::Missed) => Some(json!("")),
        ("company", Mark::Missed) => Some(json!("--")),
        other => unreachable!("no rule for {other:?}"),
    }
}

/// The reply text of backend `which` for receipt `i`.
fn reply_for(which: Which, i: usize, r: &Receipt) -> String {
    let Some(marks) = plan(which, i) else {
        return if which == Which::A { A_INVALID } else { B_INVALID }.to_string();
    };
    let style = match which {
        Which::A => i % 5,
        Which::B => (i + 2) % 5,
    };
    let mut entries: Vec<(String, Value)> = FIELDS
        .iter()
        .zip(marks)
        .filter_map(|(f, m)| value_for(which, i, r, f, m).map(|v| (f.to_string(), v)))
        .collect();
    match style {
        1 => entries.reverse(),
        4 => entries
            .iter_mut()
            .for_each(|(k, _)| *k = format!("{}{}", k[..1].to_uppercase(), &k[1..])),
        _ => {}
    }
    let object = |sep: &str| {
        let parts: Vec<String> =
            entries.iter().map(|(k, v)| format!("{}: {v}", quoted(k))).collect();
        format!("{{{}}}", parts.join(sep))
    };
    match style {
        2 => format!("Here is what I found on the receipt:\n```json\n{}\n```\nLet me know if anything is unclear.", object(",\n  ")),
        3 => format!("Sure - the extracted fields are {} as requested.", object(", ")),
        _ => object(", "),
    }
}

// ---------------------------------------------------------------------------------------------
// Hand counts
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
struct FieldCount {
    correct: u64,
    wrong: u64,
    missed: u64,
    invalid: u64,
}

impl FieldCount {
    /// Documented semantics: wrong = FP + FN, missed = FN, invalid = FN only, correct = TP.
    fn confusion(&self) -> (u64, u64, u64) {
        (self.correct, self.wrong, self.wrong + self.missed + self.invalid)
    }

    fn counted(&self) -> u64 {
        self.correct + self.wrong + self.missed + self.invalid
    }
}

fn prf((tp, fp, fn_): (u64, u64, u64)) -> (f64, f64, f64) {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    (ratio(tp, tp + fp), ratio(tp, tp + fn_), ratio(2 * tp, 2 * tp + fp + fn_))
}

struct Expected {
    fields: [FieldCount; 4],
    exact: u64,
    invalid: u64,
    /// Per item: (exact match, invalid).
    items: Vec<(bool, bool)>,
}

fn expected(which: Which, n: usize) -> Expected {
    let mut fields = [FieldCount::default(); 4];
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        match plan(which, i) {
            None => {
                fields.iter_mut().for_each(|c| c.invalid += 1);
                items.push((false, true));
            }
            Some(marks) => {
                for (c, m) in fields.iter_mut().zip(marks) {
                    match m {
                        Mark::Correct => c.correct += 1,
                        Mark::Wrong => c.wrong += 1,
                        Mark::Missed => c.missed += 1,
                    }
                }
                items.push((marks.iter().all(|m| *m == Mark::Correct), false));
            }
        }
    }
    let exact = items.iter().filter(|(e, _)| *e).count() as u64;
    let invalid = items.iter().filter(|(_, inv)| *inv).count() as u64;
    Expected { fields, exact, invalid, items }
}

/// Fields from weakest to strongest, as the report orders them: accuracy, then F1, then name.
fn weakest_first(e: &Expected) -> Vec<&'static str> {
    let mut order: Vec<(usize, f64, f64)> = e
        .fields
        .iter()
        .enumerate()
        .map(|(k, c)| (k, c.correct as f64 / c.counted() as f64, prf(c.confusion()).2))
        .collect();
    order.sort_by(|x, y| {
        x.1.total_cmp(&y.1).then(x.2.total_cmp(&y.2)).then(FIELDS[x.0].cmp(FIELDS[y.0]))
    });
    order.into_iter().map(|(k, _, _)| FIELDS[k]).collect()
}

/// The SROIE task both suites share: the four fields, the receipt's lines as the input.
const TASK: &str = r#"task:
  kind: extraction
  fields:
    company: { type: string, match: normalized }
    date:    { type: date }
    address: { type: string, match: normalized }
    total:   { type: number, tolerance: 0.01 }
  instructions: "Extract the receipt fields."
  input: "{{ words | join('\n') }}"
"#;

/// A suite named `name` with [`TASK`] and the given `data:` and `backends:` sections.
fn sroie_suite(name: &str, rest: &str) -> String {
    format!("schema_version: 1\nname: {name}\n{TASK}{rest}")
}

const TEST_SUITE: &str = r#"data:
  test: @TEST@
  expected_column: entities
  id_column: key
backends:
  - id: a
    provider: openai
    model: m-a
    base_url: @BASE@
    structured_output: on
  - id: b
    provider: openai
    model: m-b
    base_url: @BASE@
    structured_output: off
"#;

#[test]
#[ignore = "needs ../shared/datasets"]
fn sroie_test_split_field_scores_match_hand_counts() {
    let test_path = sroie_split("test");
    let receipts = Arc::new(load(&test_path));
    let n = receipts.len();
    assert_eq!(n, 361, "receipts in the SROIE test split (dataset README)");
    // The rules rely on: every gold field present, and the wrong values matching no gold.
    for r in receipts.iter() {
        for f in FIELDS {
            let g = r.gold(f).unwrap_or_else(|| panic!("{}: no `{f}`", r.key));
            assert!(!norm(g).is_empty(), "{}: `{f}` is empty", r.key);
        }
        r.gold_total();
        assert_ne!(norm(r.gold("company").unwrap()), norm(WRONG_COMPANY));
        assert_ne!(norm(r.gold("address").unwrap()), norm(WRONG_ADDRESS));
        assert!(!r.gold("date").unwrap().contains("1999"), "{}", r.key);
    }
    let by_text: Arc<HashMap<String, usize>> =
        Arc::new(receipts.iter().enumerate().map(|(i, r)| (r.text.clone(), i)).collect());
    assert_eq!(by_text.len(), n, "receipt texts are distinct");

    let server = {
        let (receipts, by_text) = (receipts.clone(), by_text.clone());
        TestServer::start_in_thread(move |req, _| {
            let text = req.last_user_text().unwrap_or_default();
            let Some(&i) = by_text.get(&text) else {
                return Reply::openai_error(400, "unknown receipt", "invalid_request_error", None);
            };
            let which = match req.model() {
                Some("m-a") => Which::A,
                Some("m-b") => Which::B,
                other => {
                    return Reply::openai_error(
                        400,
                        &format!("unknown model {other:?}"),
                        "invalid_request_error",
                        None,
                    )
                }
            };
            Reply::chat(reply_for(which, i, &receipts[i]))
        })
    };
    let ws = Workspace::new();
    let suite = ws.write(
        "sroie.yaml",
        &sroie_suite("sroie", TEST_SUITE)
            .replace("@TEST@", &quoted(&test_path.display().to_string()))
            .replace("@BASE@", &quoted(&server.base_url())),
    );
    let run = ws.run_dir("run");
    let out =
        output(evalgate(ws.path()).arg("run").arg(&suite).arg("--out").arg(&run).arg("--no-cache"));
    assert_eq!(out.code, Some(0), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);

    // Requests: one per receipt and backend; the input is the words joined by '\n'.
    let requests = server.requests();
    assert_eq!(requests.len(), 2 * n, "no retries: every reply is a 200");
    for (model, which) in [("m-a", Which::A), ("m-b", Which::B)] {
        let mine: Vec<_> = requests.iter().filter(|r| r.model() == Some(model)).collect();
        let texts: HashSet<String> = mine.iter().map(|r| r.last_user_text().unwrap()).collect();
        assert_eq!(texts.len(), n, "{model}: one request per receipt");
        assert!(
            texts.iter().all(|t| by_text.contains_key(t)),
            "{model}: every user turn is a receipt's words joined by '\\n'"
        );
        for req in mine {
            let messages = req.messages();
            assert_eq!(messages.len(), 2, "{model}: system + user: {messages:?}");
            assert_eq!(messages[0].0, "system");
            assert!(messages[0].1.starts_with("Extract the receipt fields."), "{}", messages[0].1);
            let body = req.json.as_ref().unwrap();
            match which {
                Which::A => {
                    let format = &body["response_format"];
                    assert_eq!(format["type"], "json_schema", "{format}");
                    assert_eq!(format["json_schema"]["strict"], true, "{format}");
                    let schema = &format["json_schema"]["schema"];
                    let keys: Vec<&str> = schema["properties"]
                        .as_object()
                        .expect("schema properties")
                        .keys()
                        .map(String::as_str)
                        .collect();
                    assert_eq!(keys, FIELDS, "{schema}");
                    assert_eq!(
                        schema["required"],
                        json!(FIELDS),
                        "strict mode lists every key as required"
                    );
                    assert_eq!(schema["additionalProperties"], false);
                    assert_eq!(
                        schema["properties"]["total"]["type"],
                        json!(["number", "null"]),
                        "optional fields are nullable"
                    );
                    assert_eq!(schema["properties"]["company"]["type"], json!(["string", "null"]));
                }
                Which::B => {
                    assert!(
                        body.get("response_format").is_none(),
                        "structured_output: off sends no response_format: {body}"
                    );
                    assert!(
                        messages[0].1.contains("Answer with one JSON object"),
                        "{}",
                        messages[0].1
                    );
                }
            }
        }
    }

    let results = results(&run);
    assert_eq!(results["items"], n);
    assert_eq!(results["task"]["kind"], "extraction");
    let ea = expected(Which::A, n);
    let eb = expected(Which::B, n);
    for (id, e) in [("a", &ea), ("b", &eb)] {
        let b = backend(&results, id);
        assert_eq!(
            (u(&b["items"]), u(&b["answered"]), u(&b["errors"]), u(&b["missing"])),
            (n as u64, n as u64, 0, 0),
            "{id}"
        );
        let mut totals = (0, 0, 0);
        let mut f1s = 0.0;
        for (k, name) in FIELDS.iter().enumerate() {
            let c = e.fields[k];
            let got = &b["fields"][name];
            let what = |s: &str| format!("{id}.{name}.{s}");
            assert_eq!(c.counted(), n as u64, "all gold is present: every answered item counts");
            assert_eq!(
                ["correct", "counted", "wrong", "missed", "spurious", "both_absent", "invalid"]
                    .map(|key| u(&got[key])),
                [c.correct, c.counted(), c.wrong, c.missed, 0, 0, c.invalid],
                "{id}.{name}: {got:#}"
            );
            let (tp, fp, fn_) = c.confusion();
            assert_eq!(
                [u(&got["true_positives"]), u(&got["false_positives"]), u(&got["false_negatives"])],
                [tp, fp, fn_],
                "{id}.{name}"
            );
            assert_eq!(
                f(&got["accuracy"]["estimate"]),
                c.correct as f64 / c.counted() as f64,
                "{}",
                what("accuracy")
            );
            let (low, high) = wilson(c.correct, c.counted());
            assert_close(f(&got["accuracy"]["low"]), low, &what("accuracy.low"));
            assert_close(f(&got["accuracy"]["high"]), high, &what("accuracy.high"));
            assert_eq!(got["accuracy"]["method"], "wilson");
            let (p, r, f1) = prf((tp, fp, fn_));
            assert_close(f(&got["precision"]), p, &what("precision"));
            assert_close(f(&got["recall"]), r, &what("recall"));
            assert_close(f(&got["f1"]), f1, &what("f1"));
            totals = (totals.0 + tp, totals.1 + fp, totals.2 + fn_);
            f1s += f1;
        }
        let (p, r, f1) = prf(totals);
        assert_close(f(&b["micro_precision"]["estimate"]), p, &format!("{id} micro precision"));
        assert_close(f(&b["micro_recall"]["estimate"]), r, &format!("{id} micro recall"));
        assert_close(f(&b["micro_f1"]["estimate"]), f1, &format!("{id} micro F1"));
        assert_close(f(&b["macro_f1"]["estimate"]), f1s / 4.0, &format!("{id} macro F1"));
        let exact = e.exact as f64 / n as f64;
        assert_eq!(u(&b["correct"]), e.exact, "{id}: exact matches");
        assert_close(f(&b["exact_match"]["estimate"]), exact, &format!("{id} exact match"));
        assert_close(f(&b["accuracy"]["estimate"]), exact, &format!("{id} accuracy = exact match"));
        let (low, high) = wilson(e.exact, n as u64);
        assert_close(f(&b["exact_match"]["low"]), low, &format!("{id} exact match low"));
        assert_close(f(&b["exact_match"]["high"]), high, &format!("{id} exact match high"));
        assert_eq!(u(&b["invalid"]), e.invalid, "{id}: invalid replies");
        assert_close(
            f(&b["invalid_json"]),
            e.invalid as f64 / n as f64,
            &format!("{id} invalid_json"),
        );
        println!(
            "sroie {id}: exact {}/{n}, invalid {}, fields {:?}",
            e.exact,
            e.invalid,
            FIELDS
                .iter()
                .zip(&e.fields)
                .map(|(name, c)| format!("{name} {}/{}", c.correct, c.counted()))
                .collect::<Vec<_>>()
        );
    }

    // The paired comparison of exact matches, a against b.
    let cmp = &results["comparisons"][0];
    assert_eq!((&cmp["first"], &cmp["second"]), (&json!("a"), &json!("b")));
    let mut table = [0u64; 4];
    for (x, y) in ea.items.iter().zip(&eb.items) {
        table[match (x.0, y.0) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        }] += 1;
    }
    assert_eq!(
        ["both_correct", "only_first", "only_second", "both_wrong"].map(|k| u(&cmp[k])),
        table,
        "{cmp:#}"
    );
    assert!(table[1] > 0 && table[2] > 0, "the rules give discordant items both ways");

    // records.jsonl: one record per receipt and backend, flags as planned.
    let index: HashMap<&str, usize> =
        receipts.iter().enumerate().map(|(i, r)| (r.key.as_str(), i)).collect();
    let records = records(&run);
    assert_eq!(records.len(), 2 * n);
    let mut seen = HashSet::new();
    for rec in &records {
        let id = rec["id"].as_str().unwrap();
        let i = index[id];
        let e = match rec["backend"].as_str().unwrap() {
            "a" => &ea,
            "b" => &eb,
            other => panic!("unexpected backend {other}"),
        };
        assert!(
            seen.insert((id.to_string(), rec["backend"].as_str().unwrap().to_string())),
            "duplicate record {id}"
        );
        let (exact, invalid) = e.items[i];
        assert_eq!(
            (&rec["correct"], &rec["invalid"]),
            (&json!(exact), &json!(invalid)),
            "item {i} ({id}): {rec}"
        );
        assert_eq!(rec["answer"].is_null(), invalid, "an invalid reply has no answer: {rec}");
        assert!(rec["error"].is_null(), "{rec}");
    }

    // report.md: each backend's folded per-field table lists its fields weakest first.
    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap();
    let section = markdown.as_str();
    for (id, e) in [("a", &ea), ("b", &eb)] {
        let start = section
            .find(&format!("<details><summary>Per-field results of {id}:"))
            .unwrap_or_else(|| panic!("no per-field fold for `{id}` in:\n{section}"));
        let rows: Vec<&str> = section[start..]
            .lines()
            .skip_while(|l| !l.starts_with("|---"))
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .collect();
        let names: Vec<&str> = rows
            .iter()
            .map(|row| row.trim_start_matches('|').split('|').next().unwrap().trim())
            .collect();
        let order = weakest_first(e);
        assert_eq!(names, order, "{id}: fields weakest first:\n{}", rows.join("\n"));
        let k = FIELDS.iter().position(|f| *f == order[0]).unwrap();
        assert!(rows[0].contains(&format!("| {}/{n} |", e.fields[k].correct)), "{}", rows[0]);
    }
    assert_eq!(weakest_first(&ea)[0], "company", "a's weakest field by the rules (1 in 6 wrong)");
}

// ---------------------------------------------------------------------------------------------
// Few-shot demonstrations from the train split
// ---------------------------------------------------------------------------------------------

/// Every gold date of the train split must be read, including the compact day-first `25032018`
/// (line 62, X51005715010): a gold value that does not fit its type stops the suite from loading.
const FEW_SHOT_SUITE: &str = r#"data:
  test: @TEST@
  train: @TRAIN@
  expected_column: entities
  id_column: key
backends:
  - id: random
    provider: openai
    model: m-random
    base_url: @BASE@
    structured_output: off
    strategy: { few-shot: { k: 2, select: random, seed: 3 } }
  - id: fixed
    provider: openai
    model: m-fixed
    base_url: @BASE@
    structured_output: off
    strategy: { few-shot: { select: fixed, ids: @FIXED@ } }
"#;

/// The demonstration `demo` (an assistant turn) is the gold of train receipt `r`, as the model is
/// asked to write it: strings trimmed, the date in ISO 8601, the total a number, null where the gold
/// has none.
fn demo_matches(demo: &Map<String, Value>, r: &Receipt) -> bool {
    let text = |field: &str| match r.gold(field).map(str::trim) {
        None | Some("") => Value::Null,
        Some(s) => json!(s),
    };
    let total_ok = match r.gold("total").and_then(plain_number) {
        None => demo["total"].is_null(),
        Some(v) => demo["total"].as_f64().is_some_and(|t| (t - v).abs() < 1e-9),
    };
    // Dates with a month name are not converted here; they must still come out as ISO 8601.
    let date_ok = match r.gold("date").and_then(iso_of) {
        Some(iso) => demo["date"] == json!(iso),
        None => demo["date"]
            .as_str()
            .is_some_and(|d| d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-'),
    };
    ["company", "address"].iter().all(|f| demo[*f] == text(f)) && total_ok && date_ok
}

#[test]
#[ignore = "needs ../shared/datasets"]
fn sroie_train_split_feeds_gold_demonstrations() {
    let (test_path, train_path) = (sroie_split("test"), sroie_split("train"));
    let test = Arc::new(load(&test_path));
    let train = load(&train_path);
    assert_eq!(train.len(), 626, "receipts in the SROIE train split (dataset README)");
    let no_address: Vec<&Receipt> = train.iter().filter(|r| r.gold("address").is_none()).collect();
    let no_total: Vec<&Receipt> =
        train.iter().filter(|r| r.gold("total").is_some_and(|t| t.trim().is_empty())).collect();
    assert_eq!(
        (no_address.len(), no_total.len()),
        (1, 1),
        "dataset README: one receipt lacks `address`, one has an empty `total`"
    );
    let mut train_by_text: HashMap<&str, Vec<&Receipt>> = HashMap::new();
    for r in &train {
        train_by_text.entry(r.text.as_str()).or_default().push(r);
    }

    const LIMIT: usize = 20;
    let test_by_text: Arc<HashMap<String, usize>> =
        Arc::new(test.iter().enumerate().map(|(i, r)| (r.text.clone(), i)).collect());
    let server = {
        let (test, test_by_text) = (test.clone(), test_by_text.clone());
        // The gold fields exactly as the dataset writes them.
        TestServer::start_in_thread(move |req, _| {
            match test_by_text.get(&req.last_user_text().unwrap_or_default()) {
                Some(&i) => Reply::chat(Value::Object(test[i].entities.clone()).to_string()),
                None => Reply::openai_error(400, "unknown receipt", "invalid_request_error", None),
            }
        })
    };
    let ws = Workspace::new();
    let fixed_ids = json!([no_address[0].key, no_total[0].key]).to_string();
    let suite = ws.write(
        "sroie.yaml",
        &sroie_suite("sroie-few-shot", FEW_SHOT_SUITE)
            .replace("@TEST@", &quoted(&test_path.display().to_string()))
            .replace("@TRAIN@", &quoted(&train_path.display().to_string()))
            .replace("@BASE@", &quoted(&server.base_url()))
            .replace("@FIXED@", &fixed_ids),
    );
    let run = ws.run_dir("run");
    let out = output(
        evalgate(ws.path())
            .arg("run")
            .arg(&suite)
            .arg("--out")
            .arg(&run)
            .arg("--no-cache")
            .arg("--limit")
            .arg(LIMIT.to_string()),
    );
    assert_eq!(out.code, Some(0), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);

    let requests = server.requests();
    assert_eq!(requests.len(), 2 * LIMIT);
    let first: HashSet<&str> = test[..LIMIT].iter().map(|r| r.text.as_str()).collect();
    let mut demo_sets = HashSet::new();
    for (model, k) in [("m-random", 2), ("m-fixed", 2)] {
        let mine: Vec<_> = requests.iter().filter(|r| r.model() == Some(model)).collect();
        assert_eq!(mine.len(), LIMIT, "{model}");
        let items: HashSet<String> = mine.iter().map(|r| r.last_user_text().unwrap()).collect();
        assert_eq!(
            items.iter().map(String::as_str).collect::<HashSet<_>>(),
            first,
            "{model}: --limit runs the first {LIMIT} test receipts"
        );
        for req in mine {
            let messages = req.messages();
            let roles: Vec<&str> = messages.iter().map(|(role, _)| role.as_str()).collect();
            let mut expected_roles = vec!["system"];
            expected_roles.extend(std::iter::repeat_n(["user", "assistant"], k).flatten());
            expected_roles.push("user");
            assert_eq!(roles, expected_roles, "{model}");
            let mut demos = Vec::new();
            for pair in messages[1..messages.len() - 1].chunks(2) {
                let (input, answer) = (&pair[0].1, &pair[1].1);
                let candidates = train_by_text.get(input.as_str()).unwrap_or_else(|| {
                    panic!(
                        "{model}: a demonstration input is not a train receipt's words:\n{input}"
                    )
                });
                let demo: Value = serde_json::from_str(answer).unwrap_or_else(|e| {
                    panic!("{model}: demonstration answer is not JSON ({e}): {answer}")
                });
                let demo = demo.as_object().unwrap_or_else(|| {
                    panic!("{model}: demonstration answer is not an object: {answer}")
                });
                assert_eq!(
                    demo.keys().map(String::as_str).collect::<Vec<_>>(),
                    FIELDS,
                    "{model}: exactly the four keys, in order: {answer}"
                );
                let r = candidates.iter().find(|r| demo_matches(demo, r)).unwrap_or_else(|| {
                    panic!("{model}: {answer} is not the gold of {}", candidates[0].key)
                });
                demos.push(r.key.clone());
            }
            assert_ne!(demos[0], demos[1], "{model}: two different demonstrations");
            if model == "m-fixed" {
                assert_eq!(
                    demos,
                    [no_address[0].key.clone(), no_total[0].key.clone()],
                    "fixed ids, in order"
                );
                let answers: Vec<Value> =
                    [2, 4].map(|m| serde_json::from_str(&messages[m].1).unwrap()).to_vec();
                assert!(
                    answers[0]["address"].is_null(),
                    "a missing gold key is shown as null: {}",
                    messages[2].1
                );
                assert!(
                    answers[1]["total"].is_null(),
                    "an empty gold value is shown as null: {}",
                    messages[4].1
                );
            } else {
                demo_sets.insert(demos);
            }
        }
    }
    assert!(demo_sets.len() > 1, "random demonstrations differ between items");

    // The server answered with the gold as the dataset writes it: every field right.
    let results = results(&run);
    assert_eq!(results["items"], LIMIT);
    for id in ["random", "fixed"] {
        let b = backend(&results, id);
        assert_eq!(
            (u(&b["answered"]), u(&b["correct"]), u(&b["invalid"]), u(&b["errors"])),
            (LIMIT as u64, LIMIT as u64, 0, 0),
            "{id}"
        );
        for name in FIELDS {
            assert_eq!(
                (u(&b["fields"][name]["correct"]), u(&b["fields"][name]["counted"])),
                (LIMIT as u64, LIMIT as u64),
                "{id}.{name}"
            );
        }
    }
}
