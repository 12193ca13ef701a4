//! Extraction suites on the project's own receipts (`fixtures/receipts`, no outside data): the
//! example suite scored against hand counts through the test server, gold from a column per
//! field, and every extraction-specific validation error naming its file, line and key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::support::openai_server::{RecordedRequest, Reply, TestServer};
use crate::support::*;

const FIELDS: [&str; 7] =
    ["company", "date", "address", "total", "payment", "items", "loyalty_number"];

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/receipts").join(name)
}

/// The receipts example suite, with its backends replaced by two on the test server and its data
/// paths made absolute.
fn receipts_suite(base: &str) -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/receipts.yaml"))
            .unwrap();
    let head = &text[..text.find("backends:").expect("backends section")];
    let head = head.replace("../fixtures/receipts/", &format!("{}/", fixture("").display()));
    format!(
        "{head}backends:\n  - {{ id: schema, provider: openai, model: m-schema, base_url: {base}, structured_output: on }}\n  - {{ id: shots, provider: openai, model: m-shots, base_url: {base}, strategy: {{ few-shot: {{ k: 2, seed: 5 }} }} }}\n"
    )
}

/// Receipt number (from `rcpt-NNN`) and gold object, by the user turn the suite renders.
/// Receipt number and gold object, by the user turn the suite renders.
type Receipts = Arc<HashMap<String, (u32, serde_json::Map<String, Value>)>>;

fn receipts_by_prompt() -> Receipts {
    let text = std::fs::read_to_string(fixture("test.jsonl")).unwrap();
    let mut out = HashMap::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let n: u32 = row["id"].as_str().unwrap()[5..].parse().unwrap();
        out.insert(
            format!("Receipt:\n{}", row["text"].as_str().unwrap()),
            (n, row["expected"].as_object().unwrap().clone()),
        );
    }
    Arc::new(out)
}

/// What the test expects of one field of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Correct,
    Wrong,
    Missed,
    Spurious,
    BothAbsent,
    Invalid,
}

/// The reply a backend gives receipt `n`, and what each field of it should score. The
/// perturbations are fixed by `n`, so the counts below follow from them by hand.
fn reply_for(model: &str, n: u32, gold: &serde_json::Map<String, Value>) -> (String, Vec<Expect>) {
    let (invalid, bad_total, drop_company, spurious_loyalty) = match model {
        "m-schema" => (n.is_multiple_of(11), n.is_multiple_of(5), n.is_multiple_of(7), n % 4 == 1),
        _ => (n.is_multiple_of(13), n.is_multiple_of(3), n.is_multiple_of(8), n % 6 == 1),
    };
    let mut expect: Vec<Expect> = FIELDS
        .iter()
        .map(|f| if gold[*f].is_null() { Expect::BothAbsent } else { Expect::Correct })
        .collect();
    if invalid {
        return (
            "I'm sorry, the receipt is unreadable.".into(),
            vec![Expect::Invalid; FIELDS.len()],
        );
    }
    let mut reply = gold.clone();
    // Right answers in other forms: an ISO date, a number for the total, shouted text.
    let date = gold["date"].as_str().unwrap();
    reply.insert("date".into(), json!(format!("{}-{}-{}", &date[6..], &date[3..5], &date[..2])));
    let total: f64 = gold["total"].as_str().unwrap().parse().unwrap();
    reply.insert("total".into(), json!(total));
    reply.insert("payment".into(), json!(gold["payment"].as_str().unwrap().to_uppercase()));
    if bad_total {
        reply.insert("total".into(), json!(format!("RM {:.2}", total + 1.0)));
        expect[3] = Expect::Wrong;
    }
    if drop_company {
        reply.remove("company");
        expect[0] = Expect::Missed;
    }
    if spurious_loyalty {
        reply.insert("loyalty_number".into(), json!("LY-000000"));
        expect[6] = if gold["loyalty_number"].is_null() { Expect::Spurious } else { Expect::Wrong };
    }
    let body = Value::Object(reply).to_string();
    let text = if n.is_multiple_of(2) {
        format!("Here are the fields:\n```json\n{body}\n```\nAnything else?")
    } else {
        body
    };
    (text, expect)
}

fn server(receipts: Receipts) -> TestServer {
    TestServer::start_in_thread(move |req: &RecordedRequest, _| {
        let model = req.model().unwrap_or_default().to_string();
        match receipts.get(&req.last_user_text().unwrap_or_default()) {
            Some((n, gold)) => Reply::chat(reply_for(&model, *n, gold).0),
            None => Reply::openai_error(400, "unknown receipt", "invalid_request_error", None),
        }
    })
}

#[derive(Default, Debug, PartialEq)]
struct FieldCounts {
    correct: u64,
    counted: u64,
    tp: u64,
    fp: u64,
    fn_: u64,
    invalid: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[test]
fn receipts_example_scores_every_field_against_hand_counts() {
    let receipts = receipts_by_prompt();
    let server = server(receipts.clone());
    let ws = Workspace::new();
    ws.write("receipts.yaml", &receipts_suite(&server.base_url()));
    let run = ws.run_dir("run");
    let out = output(evalgate(ws.path()).args(["run", "receipts.yaml", "--out"]).arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let results = results(&run);
    assert_eq!(results["task"]["kind"], "extraction");

    for (id, model) in [("schema", "m-schema"), ("shots", "m-shots")] {
        let b = backend(&results, id);
        let mut counts: Vec<FieldCounts> = FIELDS.iter().map(|_| FieldCounts::default()).collect();
        let (mut exact, mut invalid) = (0u64, 0u64);
        for (n, gold) in receipts.values() {
            let (_, expect) = reply_for(model, *n, gold);
            invalid += u64::from(expect[0] == Expect::Invalid);
            exact +=
                u64::from(expect.iter().all(|e| matches!(e, Expect::Correct | Expect::BothAbsent)));
            for (c, (e, name)) in counts.iter_mut().zip(expect.iter().zip(FIELDS)) {
                let gold_present = !gold[name].is_null();
                match e {
                    Expect::Correct => {
                        (c.correct, c.counted, c.tp) = (c.correct + 1, c.counted + 1, c.tp + 1)
                    }
                    Expect::Wrong => {
                        (c.counted, c.fp, c.fn_) = (c.counted + 1, c.fp + 1, c.fn_ + 1)
                    }
                    Expect::Missed => (c.counted, c.fn_) = (c.counted + 1, c.fn_ + 1),
                    Expect::Spurious => (c.counted, c.fp) = (c.counted + 1, c.fp + 1),
                    Expect::BothAbsent => {}
                    Expect::Invalid => {
                        c.counted += 1;
                        c.invalid += 1;
                        c.fn_ += u64::from(gold_present);
                    }
                }
            }
        }
        let n = receipts.len() as u64;
        assert_eq!(u(&b["answered"]), n);
        assert_eq!(u(&b["invalid"]), invalid, "{id}: invalid replies");
        assert!(
            invalid > 0 && exact > 0 && exact < n - invalid,
            "{id}: the perturbations must bite"
        );
        assert_close(f(&b["invalid_json"]), invalid as f64 / n as f64, "invalid_json");
        assert_close(
            f(&b["accuracy"]["estimate"]),
            exact as f64 / n as f64,
            "exact-match accuracy",
        );
        assert_eq!(b["exact_match"], b["accuracy"]);
        let (lo, hi) = wilson(exact, n);
        assert_close(f(&b["exact_match"]["low"]), lo, "exact match low");
        assert_close(f(&b["exact_match"]["high"]), hi, "exact match high");
        let (mut tp, mut fp, mut fn_) = (0, 0, 0);
        for (c, name) in counts.iter().zip(FIELDS) {
            let field = &b["fields"][name];
            assert_eq!(u(&field["correct"]), c.correct, "{id}.{name} correct");
            assert_eq!(u(&field["counted"]), c.counted, "{id}.{name} counted");
            assert_eq!(u(&field["invalid"]), c.invalid, "{id}.{name} invalid");
            assert_eq!(
                (
                    u(&field["true_positives"]),
                    u(&field["false_positives"]),
                    u(&field["false_negatives"])
                ),
                (c.tp, c.fp, c.fn_),
                "{id}.{name}"
            );
            assert_close(
                f(&field["accuracy"]["estimate"]),
                ratio(c.correct, c.counted),
                "field accuracy",
            );
            let (lo, hi) = wilson(c.correct, c.counted);
            assert_close(f(&field["accuracy"]["low"]), lo, "field accuracy low");
            assert_close(f(&field["accuracy"]["high"]), hi, "field accuracy high");
            assert_close(f(&field["precision"]), ratio(c.tp, c.tp + c.fp), "precision");
            assert_close(f(&field["recall"]), ratio(c.tp, c.tp + c.fn_), "recall");
            assert_close(f(&field["f1"]), ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn_), "f1");
            (tp, fp, fn_) = (tp + c.tp, fp + c.fp, fn_ + c.fn_);
        }
        assert_close(f(&b["micro_f1"]["estimate"]), ratio(2 * tp, 2 * tp + fp + fn_), "micro-F1");
        assert_close(f(&b["micro_precision"]["estimate"]), ratio(tp, tp + fp), "micro precision");
        assert_close(f(&b["micro_recall"]["estimate"]), ratio(tp, tp + fn_), "micro recall");
        let low = f(&b["micro_f1"]["low"]);
        let high = f(&b["micro_f1"]["high"]);
        assert!(low < high && low > 0.5 && high <= 1.0, "{id}: micro-F1 interval {low}–{high}");
    }

    // The exact-match comparison is paired over items, counted by hand.
    let c = &results["comparisons"][0];
    let (mut both, mut only_schema, mut only_shots, mut neither) = (0, 0, 0, 0);
    for (n, gold) in receipts.values() {
        let right = |m| {
            reply_for(m, *n, gold)
                .1
                .iter()
                .all(|e| matches!(e, Expect::Correct | Expect::BothAbsent))
        };
        match (right("m-schema"), right("m-shots")) {
            (true, true) => both += 1,
            (true, false) => only_schema += 1,
            (false, true) => only_shots += 1,
            (false, false) => neither += 1,
        }
    }
    assert_eq!((c["first"].as_str(), c["second"].as_str()), (Some("schema"), Some("shots")));
    assert_eq!(
        (u(&c["both_correct"]), u(&c["only_first"]), u(&c["only_second"]), u(&c["both_wrong"])),
        (both, only_schema, only_shots, neither)
    );
    assert!(c["micro_f1_difference"]["estimate"].is_f64() && c["macro_f1_difference"].is_null());

    // Requests: a JSON schema for one backend; instructions and gold-JSON demonstrations for the other.
    let requests = server.requests();
    let schema_req =
        requests.iter().find(|r| r.model() == Some("m-schema")).unwrap().json.clone().unwrap();
    let format = &schema_req["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    let schema = &format["json_schema"]["schema"];
    let keys: Vec<&str> =
        schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, FIELDS);
    assert_eq!(schema["required"], json!(FIELDS));
    assert_eq!(schema["properties"]["total"]["type"], json!("number"));
    assert_eq!(schema["properties"]["address"]["type"], json!(["string", "null"]));
    assert_eq!(schema["properties"]["payment"]["enum"], json!(["cash", "card", "e-wallet", null]));
    assert_eq!(schema["properties"]["items"]["type"], json!(["array", "null"]));
    let shots = requests.iter().find(|r| r.model() == Some("m-shots")).unwrap();
    assert!(shots.json.as_ref().unwrap().get("response_format").is_none());
    let messages = shots.messages();
    assert_eq!(messages.len(), 6, "system, two demonstrations, the receipt");
    assert!(messages[0].1.contains("Answer with one JSON object"), "{}", messages[0].1);
    assert!(
        messages[0].1.contains("\"total\" (number; the amount paid, without currency)"),
        "{}",
        messages[0].1
    );
    let train: Vec<Value> = std::fs::read_to_string(fixture("train.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for pair in messages[1..5].chunks(2) {
        let demo = train
            .iter()
            .find(|t| format!("Receipt:\n{}", t["text"].as_str().unwrap()) == pair[0].1)
            .expect("a demonstration is a train receipt");
        let shown: Value =
            serde_json::from_str(&pair[1].1).expect("the demonstration answer is JSON");
        let gold = &demo["expected"];
        // Gold as the model should write it: dates in ISO 8601, numbers as numbers.
        let date = gold["date"].as_str().unwrap();
        assert_eq!(shown["date"], json!(format!("{}-{}-{}", &date[6..], &date[3..5], &date[..2])));
        let total: f64 = gold["total"].as_str().unwrap().parse().unwrap();
        assert_eq!(shown["total"].as_f64(), Some(total), "{shown}");
        assert_eq!(shown["company"], gold["company"]);
        assert_eq!(shown["loyalty_number"], gold["loyalty_number"]);
        assert_eq!(
            shown.as_object().unwrap().keys().collect::<Vec<_>>(),
            FIELDS.iter().collect::<Vec<_>>()
        );
    }

    // The report: per-field tables, weakest first, and field errors beside their gold.
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("<summary>Per-field results of schema:"), "{md}");
    let schema = backend(&results, "schema");
    let weakest = FIELDS
        .iter()
        .min_by(|a, b| {
            let acc = |n: &&str| f(&schema["fields"][*n]["accuracy"]["estimate"]);
            acc(a)
                .total_cmp(&acc(b))
                .then_with(|| {
                    f(&schema["fields"][**a]["f1"]).total_cmp(&f(&schema["fields"][**b]["f1"]))
                })
                .then(a.cmp(b))
        })
        .unwrap();
    let table = &md[md.find("Per-field results of schema").unwrap()..];
    let first_row =
        table.lines().find(|l| l.starts_with("| ") && !l.starts_with("| field")).unwrap();
    assert!(first_row.starts_with(&format!("| {weakest} |")), "weakest field first: {first_row}");
    assert!(table.contains("Example field errors"), "{table}");
    assert!(md.contains("| RM "), "a wrong total is shown as the model wrote it:\n{md}");

    // Rebuilding from the journal gives the same results.
    let before = std::fs::read_to_string(run.join("results.json")).unwrap();
    let out = output(evalgate(ws.path()).arg("report").arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(run.join("results.json")).unwrap(), before);
}

/// Gold in a column per field (a CSV), a record per item in the journal with gold and answer.
#[test]
fn gold_from_csv_columns_and_a_record_per_item() {
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        let text = req.last_user_text().unwrap_or_default();
        Reply::chat(if text.contains("ACME") {
            r#"{"vendor": "Acme", "amount": "1,250.00", "when": "3 Feb 2024"}"#
        } else {
            r#"{"Vendor": "Bolt Ltd", "amount": 12}"#
        })
    });
    let ws = Workspace::new();
    ws.write("test.csv", "id,text,vendor,amount,when\nr1,ACME invoice,ACME,$1250,02/03/2024\nr2,Bolt receipt,Bolt Ltd,12.50,\n");
    let suite = format!(
        r#"schema_version: 1
name: invoices
task:
  kind: extraction
  fields:
    vendor: {{ type: string, match: normalized }}
    amount: {{ type: number, tolerance: 0.01 }}
    when: {{ type: date, day_first: false }}
  instructions: Extract the invoice fields.
  input: "{{{{ text }}}}"
data: {{ test: test.csv }}
backends:
  - {{ id: m, provider: openai, model: m, base_url: {} }}
"#,
        server.base_url()
    );
    ws.write("suite.yaml", &suite);
    let run = ws.run_dir("run");
    let out = output(evalgate(ws.path()).args(["run", "suite.yaml", "--out"]).arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let records = records(&run);
    assert_eq!(records.len(), 2);
    let r1 = records.iter().find(|r| r["id"] == "r1").unwrap();
    assert_eq!(r1["gold"], r#"{"vendor":"ACME","amount":1250,"when":"2024-02-03"}"#);
    assert_eq!(r1["correct"], true);
    let r2 = records.iter().find(|r| r["id"] == "r2").unwrap();
    // `Vendor` matches `vendor` ignoring case; 12 is not 12.50; `when` absent on both sides.
    assert_eq!(r2["answer"], r#"{"vendor":"Bolt Ltd","amount":12,"when":null}"#);
    assert_eq!(r2["correct"], false);
    let results = results(&run);
    let b = backend(&results, "m");
    assert_eq!(
        (
            u(&b["fields"]["vendor"]["correct"]),
            u(&b["fields"]["amount"]["correct"]),
            u(&b["fields"]["when"]["correct"])
        ),
        (2, 1, 1)
    );
    assert_eq!(u(&b["fields"]["when"]["counted"]), 1, "absent on both sides is not counted");
    // The gold columns are not item columns: a template may not use them.
    let leaked = suite.replace(r#"input: "{{ text }}""#, r#"input: "{{ text }} {{ amount }}""#);
    ws.write("leak.yaml", &leaked);
    let out = output(evalgate(ws.path()).args(["validate", "leak.yaml"]));
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("template uses `amount`, which holds the gold fields"),
        "{}",
        out.stderr
    );
}

const SUITE: &str = r#"schema_version: 1
name: receipts
task:
  kind: extraction
  fields:
    company: { type: string, match: normalized, required: true }
    date: { type: date }
    total: { type: number, tolerance: 0.01 }
  instructions: Extract the fields.
  input: "{{ text }}"
data:
  test: test.jsonl
backends:
  - id: m
    provider: openai
    model: m
    base_url: http://127.0.0.1:9/v1
"#;

const DATA: &str = r#"{"id": "a", "text": "ACME 14/03/2018 9.90", "expected": {"company": "ACME", "date": "14/03/2018", "total": "9.90"}}
{"id": "b", "text": "BOLT 30 DEC 17 RM 1,200.00", "expected": {"company": "BOLT", "date": "30 DEC 17", "total": "RM 1,200.00"}}
"#;

fn validate_with(suite_edits: &[(&str, &str)], data: &str) -> Outcome {
    let mut suite = SUITE.to_string();
    for (from, to) in suite_edits {
        assert!(suite.contains(from), "`{from}` not in the suite");
        suite = suite.replacen(from, to, 1);
    }
    let ws = Workspace::new();
    ws.write("suite.yaml", &suite);
    ws.write("test.jsonl", data);
    let out = output(evalgate(ws.path()).args(["validate", "suite.yaml"]));
    drop(ws);
    out
}

#[test]
fn extraction_validation_errors_name_file_line_and_key() {
    let ok = validate_with(&[], DATA);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(ok.stdout.contains("3 fields"), "{}", ok.stdout);
    assert!(
        ok.stdout.contains("  company (string, normalized, required): gold in 2 of 2 test items"),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout.contains("  total (number, tolerance 0.01): gold in 2 of 2 test items"),
        "{}",
        ok.stdout
    );

    // A gold value that does not fit its type: the data file, its line and the key.
    let bad_date = DATA.replace("\"30 DEC 17\"", "\"next tuesday\"");
    assert_problem(
        &validate_with(&[], &bad_date),
        "test.jsonl:2",
        &["expected.date", "does not fit its type `date`", "next tuesday"],
    );
    let bad_total = DATA.replace("\"9.90\"", "\"nine\"");
    assert_problem(
        &validate_with(&[], &bad_total),
        "test.jsonl:1",
        &["expected.total", "not a number"],
    );
    // A required field without gold on a row.
    let no_company = DATA.replace("\"company\": \"BOLT\", ", "");
    assert_problem(
        &validate_with(&[], &no_company),
        "test.jsonl:2",
        &["expected.company", "required"],
    );
    // A field no row has gold for (a misspelt name).
    assert_problem(
        &validate_with(&[("    total:", "    totl:")], DATA),
        "test.jsonl:1",
        &["expected.totl", "no test row has a gold value for field `totl`"],
    );
    // No gold object at all, and no column named after a field.
    let flat = DATA.replace("\"expected\"", "\"gold\"");
    assert_problem(
        &validate_with(&[], &flat),
        "test.jsonl:1",
        &["no gold for field `company`", "set `data.expected_column: gold`"],
    );
    let no_gold = "{\"id\": \"a\", \"text\": \"x\", \"other\": {\"k\": 1}}\n";
    assert_problem(
        &validate_with(&[], no_gold),
        "test.jsonl:1",
        &["no gold for field `company`", "columns are: id, text, other"],
    );
    // The expected column holds text, not an object.
    let text_gold = "{\"id\": \"a\", \"text\": \"x\", \"expected\": \"ACME\"}\n";
    assert_problem(
        &validate_with(&[], text_gold),
        "test.jsonl:1",
        &["expected", "not a JSON object"],
    );
    // Suite-level declarations: the suite file, its line and the key.
    assert_problem(
        &validate_with(&[("match: normalized", "match: fuzzy(1.5)")], DATA),
        "suite.yaml:6",
        &["task.fields.company.match", "out of range"],
    );
    assert_problem(
        &validate_with(&[("{ type: date }", "{ type: date, tolerance: 1 }")], DATA),
        "suite.yaml:7",
        &["task.fields.date.tolerance", "number fields"],
    );
    assert_problem(
        &validate_with(&[("{ type: date }", "{ type: enum }")], DATA),
        "suite.yaml:7",
        &["task.fields.date.values", "needs its `values`"],
    );
    assert_problem(
        &validate_with(
            &[("{ type: number, tolerance: 0.01 }", "{ type: number, day_first: false }")],
            DATA,
        ),
        "suite.yaml:8",
        &["task.fields.total.day_first", "date fields"],
    );
    assert_problem(
        &validate_with(&[("  kind: extraction\n", "  kind: extraction\n  labels: [a, b]\n")], DATA),
        "suite.yaml:5",
        &["task.labels", "fields"],
    );
    assert_problem(&validate_with(&[("    company: { type: string, match: normalized, required: true }\n    date: { type: date }\n    total: { type: number, tolerance: 0.01 }\n", "")], DATA), "suite.yaml", &["task.fields"]);
    // The local backend classifies; it cannot extract.
    let local = validate_with(
        &[(
            "  - id: m\n    provider: openai\n    model: m\n    base_url: http://127.0.0.1:9/v1\n",
            "  - id: baseline\n    provider: local\n",
        )],
        DATA,
    );
    assert_problem(
        &local,
        "suite.yaml:14",
        &["backends[0].provider", "cannot answer extraction tasks"],
    );
    // Stratified demonstrations need classes.
    let stratified = validate_with(
        &[("data:\n  test: test.jsonl\n", "data:\n  test: test.jsonl\n  train: test.jsonl\n"), ("    base_url: http://127.0.0.1:9/v1\n", "    base_url: http://127.0.0.1:9/v1\n    strategy: { few-shot: { k: 1, select: stratified } }\n")],
        DATA,
    );
    assert_problem(&stratified, "suite.yaml", &["select", "stratified"]);
    // A template that uses the gold object would hand the model the answer.
    assert_problem(
        &validate_with(&[("input: \"{{ text }}\"", "input: \"{{ text }} {{ expected }}\"")], DATA),
        "suite.yaml:10",
        &["task.input", "`expected`, which holds the gold fields"],
    );
    // structured_output is an extraction setting with three values.
    assert_problem(
        &validate_with(
            &[(
                "    base_url: http://127.0.0.1:9/v1\n",
                "    base_url: http://127.0.0.1:9/v1\n    structured_output: sometimes\n",
            )],
            DATA,
        ),
        "suite.yaml",
        &["structured_output", "auto, json_schema (on), json_object or off"],
    );
}

/// `report.md` and `results.json` of an extraction run, snapshot: fixed replies per backend with
/// a wrong, a missed, a spurious and an invalid answer among them.
#[test]
fn extraction_report_snapshot() {
    fn reply(model: &str, id: &str) -> &'static str {
        match (model, id) {
            (_, "inv-1") => {
                r#"{"vendor": "Acme Ltd", "amount": 120.5, "due": "2024-03-01", "status": "paid"}"#
            }
            ("m-a", "inv-2") => {
                r#"Sure: {"vendor": "Bolt", "amount": "$99.00", "due": null, "status": "open"}"#
            }
            ("m-b", "inv-2") => {
                r#"{"vendor": "Bolt", "amount": 98, "due": "2024-04-02", "status": "open"}"#
            }
            ("m-a", "inv-3") => {
                r#"{"vendor": "Cobalt | Sons", "amount": 10, "due": "5 May 2024", "status": "overdue"}"#
            }
            ("m-b", "inv-3") => "I cannot help with that.",
            ("m-a", "inv-4") => r#"{"vendor": "Dyna", "amount": 7, "due": null, "status": "paid"}"#,
            ("m-b", "inv-4") => {
                r#"```json
{"vendor": "Dyna", "amount": 7, "due": null, "status": "paid"}
```"#
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let server = TestServer::start_in_thread(|req: &RecordedRequest, _| {
        let text = req.last_user_text().unwrap_or_default();
        let id = text.split_whitespace().next().unwrap_or_default().to_string();
        Reply::chat(reply(req.model().unwrap_or_default(), &id))
    });
    let ws = Workspace::new();
    ws.write(
        "test.jsonl",
        concat!(
            r#"{"id": "inv-1", "text": "inv-1 ACME LTD 120.50 due 01/03/2024 PAID", "expected": {"vendor": "ACME Ltd", "amount": "120.50", "due": "01/03/2024", "status": "paid"}}"#, "\n",
            r#"{"id": "inv-2", "text": "inv-2 BOLT 99.00 OPEN", "expected": {"vendor": "Bolt", "amount": "99.00", "due": null, "status": "open"}}"#, "\n",
            r#"{"id": "inv-3", "text": "inv-3 COBALT & SONS 10.00 due 05/05/2024", "expected": {"vendor": "Cobalt & Sons", "amount": "10.00", "due": "05/05/2024", "status": "open"}}"#, "\n",
            r#"{"id": "inv-4", "text": "inv-4 DYNA 7.00 PAID", "expected": {"vendor": "Dyna", "amount": "7", "due": null, "status": "paid"}}"#, "\n",
        ),
    );
    let suite = format!(
        r#"schema_version: 1
name: invoices-snapshot
task:
  kind: extraction
  fields:
    vendor: {{ type: string, match: normalized }}
    amount: {{ type: number, tolerance: 0.01 }}
    due: {{ type: date }}
    status: {{ type: enum, values: [open, paid, overdue] }}
  instructions: Extract the invoice fields.
  input: "{{{{ text }}}}"
data: {{ test: test.jsonl }}
backends:
  - {{ id: a, provider: openai, model: m-a, base_url: {base}, concurrency: 1, structured_output: on, pricing: {{ input_per_mtok: 0.15, output_per_mtok: 0.6 }} }}
  - {{ id: b, provider: openai, model: m-b, base_url: {base}, concurrency: 1, pricing: {{ input_per_mtok: 2.5, output_per_mtok: 10 }} }}
"#,
        base = server.base_url()
    );
    ws.write("suite.yaml", &suite);
    let run = ws.run_dir("run");
    let out = output(evalgate(ws.path()).args(["run", "suite.yaml", "--out"]).arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let markdown = std::fs::read_to_string(run.join("report.md")).unwrap();
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("extraction_report_md", crate::run_openai::redact_report(&markdown, &run));
    });
    let mut results: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    for key in ["started_at", "finished_at", "suite_sha256", "evalgate_version"] {
        results[key] = Value::String(format!("<{key}>"));
    }
    for b in results["backends"].as_array_mut().unwrap() {
        b["latency_ms"] = json!({ "p50": "<ms>", "p95": "<ms>" });
    }
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("extraction_results_json", serde_json::to_string_pretty(&results).unwrap());
    });
}

/// Repeated sampling: every sample is scored, and field intervals cluster by item.
#[test]
fn repeated_samples_are_scored_per_sample_and_clustered_by_item() {
    use std::sync::Mutex;
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let server = TestServer::start_in_thread(move |req: &RecordedRequest, _| {
        let text = req.last_user_text().unwrap_or_default();
        let mut seen = seen.lock().unwrap();
        let n = seen.entry(text.clone()).or_default();
        *n += 1;
        // The first sample of every item gets the total wrong; the other two are right.
        let total = if *n == 1 { 1.0 } else { 9.9 };
        Reply::chat(json!({ "company": text, "total": total }).to_string())
    });
    let ws = Workspace::new();
    ws.write("test.jsonl", "{\"text\": \"A\", \"expected\": {\"company\": \"A\", \"total\": 9.9}}\n{\"text\": \"B\", \"expected\": {\"company\": \"B\", \"total\": 9.9}}\n{\"text\": \"C\", \"expected\": {\"company\": \"C\", \"total\": 9.9}}\n");
    ws.write(
        "suite.yaml",
        &format!(
            "schema_version: 1\nname: epochs\ntask:\n  kind: extraction\n  fields: {{ company: {{ type: string }}, total: {{ type: number }} }}\n  instructions: x\n  input: \"{{{{ text }}}}\"\ndata: {{ test: test.jsonl }}\nbackends:\n  - {{ id: m, provider: openai, model: m, base_url: {}, epochs: 3, temperature: 1, concurrency: 1 }}\n",
            server.base_url()
        ),
    );
    let run = ws.run_dir("run");
    let out = output(evalgate(ws.path()).args(["run", "suite.yaml", "--out"]).arg(&run));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(records(&run).len(), 9);
    let results = results(&run);
    let b = backend(&results, "m");
    assert_eq!(u(&b["answered"]), 9);
    assert_close(f(&b["exact_match"]["estimate"]), 6.0 / 9.0, "exact match over samples");
    let total = &b["fields"]["total"];
    assert_eq!((u(&total["correct"]), u(&total["counted"])), (6, 9));
    assert_eq!(total["accuracy"]["method"], "clustered");
    assert_eq!(b["fields"]["company"]["accuracy"]["estimate"], json!(1.0));
}
