#!/usr/bin/env bash
# CI's share of the benchmark (the full one, scripts/bench.sh, is too noisy and slow for CI):
#   1. builds the load generator, the hub and the fixture (debug) and the criterion benches,
#      and runs each criterion bench once as a test (`cargo test --benches`);
#   2. starts the hub with one stdio fixture upstream and a second fixture as a Streamable HTTP
#      upstream and drives it with the load generator for 2 s (Streamable HTTP, 4 sessions, stdio
#      upstream), 1 s through the HTTP upstream, plus 50 calls over legacy HTTP+SSE;
#   3. the bare relay (the benchmark's `floor` and `floor-http` targets) in front of a stdio
#      fixture and of the HTTP fixture, 4 sessions for 1 s each, sending the same request ids;
#   4. the crowd workload at a reduced size: 500 sessions each holding a GET stream, 16 of them
#      calling for 1 s without and with the others, one tools/list_changed fan-out to all.
# Exits non-zero if anything fails or any call errs. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/listening.sh
repo=$PWD

cargo build --locked -p mcp-hub -p mcp-hub-fixture -p mcp-hub-loadgen
cargo test --locked --benches -p mcp-hub-protocol -p mcp-hub-registry

BIN="${CARGO_TARGET_DIR:-$repo/target}/debug"
work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-hub-bench-smoke.XXXXXX")
hub_pid=""
fixture_pid=""
relay_pid=""
relay_http_pid=""
cleanup() {
  for p in $relay_pid $relay_http_pid; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "$fixture_pid" ]; then kill -TERM "$fixture_pid" 2>/dev/null || true; wait "$fixture_pid" 2>/dev/null || true; fi
  if [ -n "$hub_pid" ]; then
    kill -TERM "$hub_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$hub_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$hub_pid" 2>/dev/null || true
    wait "$hub_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export HOME=$work/home XDG_STATE_HOME=$work/home/state XDG_CONFIG_HOME=$work/home/config \
  XDG_DATA_HOME=$work/home/data XDG_CACHE_HOME=$work/home/cache
mkdir -p "$HOME"
"$BIN/mcp-hub-fixture" --http 0 >"$work/fixture.out" 2>"$work/fixture.err" &
fixture_pid=$!
fport=$(listening_port "$work/fixture.out") || { echo "bench-smoke: the HTTP fixture did not start" >&2; exit 1; }
printf '{"mcpServers":{"fx":{"command":"%s","args":[]},"fh":{"url":"http://127.0.0.1:%s/mcp"}}}\n' \
  "$BIN/mcp-hub-fixture" "$fport" >"$work/config.json"

port=$("$BIN/mcp-hub-loadgen" free-port)
"$BIN/mcp-hub" --port "$port" --config "$work/config.json" --max-sessions 1000 \
  --max-sessions-per-client 1000 --max-connections 1200 >"$work/hub.out" 2>"$work/hub.err" &
hub_pid=$!
if ! "$BIN/mcp-hub-loadgen" wait-ready --base "http://127.0.0.1:$port" --timeout 20; then
  echo "bench-smoke: the hub did not become ready" >&2
  tail -20 "$work/hub.err" >&2
  exit 1
fi

timeout 30 "$BIN/mcp-hub-loadgen" run --url "http://127.0.0.1:$port/mcp" --tool fx__echo \
  --sessions 4 --duration 2 --pid "$hub_pid" --label throughput-4/rust --out "$work/results.jsonl" >/dev/null
timeout 30 "$BIN/mcp-hub-loadgen" run --transport legacy --url "http://127.0.0.1:$port/sse" \
  --tool fx__echo --calls 50 --pid "$hub_pid" --label latency/rust-legacy \
  --out "$work/results.jsonl" >/dev/null
timeout 30 "$BIN/mcp-hub-loadgen" run --url "http://127.0.0.1:$port/mcp" --tool fh__echo \
  --sessions 4 --duration 1 --pid "$hub_pid" --label throughput-4/rust-http \
  --out "$work/results.jsonl" >/dev/null

"$BIN/mcp-hub-loadgen" relay -- "$BIN/mcp-hub-fixture" >"$work/relay.out" 2>"$work/relay.err" &
relay_pid=$!
rport=$(listening_port "$work/relay.out") || { echo "bench-smoke: the bare relay did not start" >&2; cat "$work/relay.err" >&2; exit 1; }
timeout 30 "$BIN/mcp-hub-loadgen" run --url "http://127.0.0.1:$rport/mcp" --tool echo \
  --sessions 4 --duration 1 --pid "$relay_pid" --label throughput-4/floor \
  --out "$work/results.jsonl" >/dev/null
"$BIN/mcp-hub-loadgen" relay --url "http://127.0.0.1:$fport/mcp" >"$work/relay-http.out" 2>"$work/relay-http.err" &
relay_http_pid=$!
rport=$(listening_port "$work/relay-http.out") || { echo "bench-smoke: the bare HTTP relay did not start" >&2; cat "$work/relay-http.err" >&2; exit 1; }
timeout 30 "$BIN/mcp-hub-loadgen" run --url "http://127.0.0.1:$rport/mcp" --tool echo \
  --sessions 4 --duration 1 --pid "$relay_http_pid" --label throughput-4/floor-http \
  --out "$work/results.jsonl" >/dev/null

timeout 60 "$BIN/mcp-hub-loadgen" crowd --url "http://127.0.0.1:$port/mcp" --sessions 500 \
  --active 16 --duration 1 --pid "$hub_pid" --label crowd-500/rust --out "$work/results.jsonl" >/dev/null
"$BIN/mcp-hub-loadgen" report "$work/results.jsonl" | tee "$work/report.md"
for t in floor floor-http; do
  grep -q "^| 4 | $t | " "$work/report.md" || { echo "bench-smoke: no $t row in the report" >&2; exit 1; }
done
echo "bench-smoke: ok"
