#!/usr/bin/env bash
# A real Prometheus scrapes the hub's /metrics during a short load run, and the PromQL queries of
# docs/OBSERVABILITY.md (per-tool call rate, p99 latency) return the series they should;
# `promtool check metrics` accepts the hub's output.
#
# Installs the Debian package `prometheus` with apt-get when `prometheus` or `promtool` is
# missing; when that is impossible (not root, no apt-get, no package) it says so and skips.
# Everything listens on 127.0.0.1 and is stopped on exit. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing prometheus (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null 2>&1 || true
  fi
fi
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "SKIP prometheus test: prometheus and promtool are not installed and could not be (the Debian package prometheus, installed as root with apt-get)"
  exit 0
fi

cargo build --locked -p mcp-hub -p mcp-hub-fixture -p mcp-hub-loadgen
BIN="${CARGO_TARGET_DIR:-$repo/target}/debug"
work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-hub-prometheus.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "prometheus test FAILED: $*" >&2
  for f in hub.err prometheus.log; do
    [ -f "$work/$f" ] && { echo "--- $f" >&2; tail -n 20 "$work/$f" >&2; }
  done
  exit 1
}

export HOME=$work/home XDG_STATE_HOME=$work/home/state XDG_CONFIG_HOME=$work/home/config \
  XDG_DATA_HOME=$work/home/data XDG_CACHE_HOME=$work/home/cache
mkdir -p "$HOME"
printf '{"mcpServers":{"fx":{"command":"%s","args":[]}}}\n' "$BIN/mcp-hub-fixture" >"$work/config.json"

port=$("$BIN/mcp-hub-loadgen" free-port)
mport=$("$BIN/mcp-hub-loadgen" free-port)
pport=$("$BIN/mcp-hub-loadgen" free-port)
"$BIN/mcp-hub" --port "$port" --config "$work/config.json" --metrics-listen "127.0.0.1:$mport" \
  >"$work/hub.out" 2>"$work/hub.err" &
pids+=($!)
hub_pid=$!
"$BIN/mcp-hub-loadgen" wait-ready --base "http://127.0.0.1:$port" --timeout 20 \
  || fail "the hub did not become ready"

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mcp-hub
    static_configs:
      - targets: ["127.0.0.1:$mport"]
EOF
promtool check config "$work/prometheus.yml" >/dev/null || fail "promtool rejects the scrape config"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
pids+=($!)

# Load: 4 sessions calling fx__echo for 8 s, and a tool that always fails.
timeout 60 "$BIN/mcp-hub-loadgen" run --url "http://127.0.0.1:$port/mcp" --tool fx__echo \
  --sessions 4 --duration 8 --pid "$hub_pid" --label prometheus/rust --out "$work/load.jsonl" >/dev/null \
  || fail "the load run failed"
timeout 30 "$BIN/mcp-hub-loadgen" run --url "http://127.0.0.1:$port/mcp" --tool fx__fail \
  --arguments '{}' --calls 20 --warmup 0 --label prometheus/fail --out "$work/fail.jsonl" >/dev/null 2>&1 || true

curl -fsS "http://127.0.0.1:$mport/metrics" >"$work/metrics.txt" || fail "no /metrics on the metrics address"
promtool check metrics <"$work/metrics.txt" || fail "promtool check metrics rejects the hub's output"
echo "promtool check metrics: ok ($(grep -vc '^#' "$work/metrics.txt") samples)"

# PromQL through the HTTP API; prints "labels value" per series.
query() {
  curl -fsS "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["status"] == "success", r
for s in r["data"]["result"]:
    m = s["metric"]
    print(m.get("server", ""), m.get("tool", ""), m.get("kind", ""), s["value"][1])
'
}
rate_q='sum by (server, tool) (rate(mcp_hub_tool_calls_total[15s]))'
p99_q='histogram_quantile(0.99, sum by (le, server, tool) (rate(mcp_hub_tool_call_duration_seconds_bucket[15s])))'
err_q='sum by (server, tool, kind) (mcp_hub_tool_errors_total{kind="tool_error"})'
ok=""
for _ in $(seq 40); do
  rates=$(query "$rate_q" 2>/dev/null || true)
  if echo "$rates" | awk '$1 == "fx" && $2 == "echo" && $3 > 0 { found = 1 } END { exit !found }'; then
    ok=1
    break
  fi
  sleep 0.5
done
[ -n "$ok" ] || fail "no per-tool call rate for fx/echo: $rate_q → ${rates:-nothing}"
echo "rate: $(echo "$rates" | awk '$1 == "fx" && $2 == "echo"')"
p99=$(query "$p99_q")
echo "$p99" | awk '$1 == "fx" && $2 == "echo" && $3 > 0 && $3 != "NaN" && $3 != "+Inf" { found = 1 } END { exit !found }' \
  || fail "no p99 for fx/echo: $p99_q → ${p99:-nothing}"
echo "p99 (s): $(echo "$p99" | awk '$1 == "fx" && $2 == "echo"')"
# The failing calls came last: wait for a scrape that saw them.
ok=""
for _ in $(seq 20); do
  errs=$(query "$err_q")
  if echo "$errs" | awk '$1 == "fx" && $2 == "fail" && $4 > 0 { found = 1 } END { exit !found }'; then
    ok=1
    break
  fi
  sleep 0.5
done
[ -n "$ok" ] || fail "no tool errors for fx/fail: $err_q → ${errs:-nothing}"
echo "tool errors: $(echo "$errs" | awk '$1 == "fx" && $2 == "fail"')"
echo "prometheus test passed"
