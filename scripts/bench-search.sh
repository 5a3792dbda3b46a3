#!/usr/bin/env bash
# What a profile and search mode cost the hub per call (docs/BENCHMARKS.md, "Profiles and search
# mode"): hub CPU per tools/call of the fixture's echo, sequentially, three ways on one hub:
#   direct     POST /mcp, tools/call fx__echo
#   profile    POST /mcp/all (a full-mode profile), tools/call fx__echo (view lookup + gate)
#   call_tool  POST /mcp/find (a search-mode profile), tools/call call_tool {name: fx__echo}
# each in both protocol eras (handshake-era sessions, then stateless 2026-07-28 requests), and the
# time of search_tools over the benchmark's 6,000+ tools (50 upstreams x --tools 100).
# Measurements are interleaved (direct, profile, call_tool, repeated) so drift hits all three.
# Knobs: BENCH_CALLS (default 20000 per measurement), BENCH_ROUNDS (3), BENCH_SKIP_BUILD=1,
# BENCH_ERAS ("streamable stateless": the loadgen transports to measure).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
CALLS=${BENCH_CALLS:-20000}
ROUNDS=${BENCH_ROUNDS:-3}
ERAS=${BENCH_ERAS:-streamable stateless}

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked -p mcp-hub -p mcp-hub-fixture -p mcp-hub-loadgen >&2
fi
BIN="${CARGO_TARGET_DIR:-$repo/target}/release"
HUB=$BIN/mcp-hub FIXTURE=$BIN/mcp-hub-fixture LOADGEN=$BIN/mcp-hub-loadgen
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/one.json" <<EOF
{"mcpServers": {"fx": {"command": "$FIXTURE"}},
 "profiles": {"all": {"servers": ["fx"]}, "find": {"mode": "search", "servers": ["fx"]}}}
EOF
port=$("$LOADGEN" free-port)
"$HUB" --port "$port" --config "$work/one.json" >"$work/hub.out" 2>"$work/hub.err" &
hub=$!; pids+=("$hub")
"$LOADGEN" wait-ready --base "http://127.0.0.1:$port" --timeout 30

cpu() { # cpu PATH TOOL ARGS → hub CPU µs per call, over $era
  "$LOADGEN" run --transport "$era" --url "http://127.0.0.1:$port$1" --tool "$2" --arguments "$3" \
    --calls "$CALLS" --warmup 500 --pid "$hub" \
    | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); print("%.2f %.1f %d" % (r["hub"]["cpu_us_per_call"], r["latency_us"]["p50"], r["errors"]))'
}
echo "| era | round | direct µs/call | profile µs/call | call_tool µs/call | call_tool − direct | p50 µs (direct / profile / call_tool) | errors |"
echo "|---|---:|---:|---:|---:|---:|---|---:|"
for era in $ERAS; do
for r in $(seq "$ROUNDS"); do
  read -r d dl de < <(cpu /mcp fx__echo '{"text":"hello"}')
  read -r p pl pe < <(cpu /mcp/all fx__echo '{"text":"hello"}')
  read -r c cl ce < <(cpu /mcp/find call_tool '{"name":"fx__echo","arguments":{"text":"hello"}}')
  diff=$(python3 -c "print('%.2f' % ($c - $d))")
  echo "| $era | $r | $d | $p | $c | $diff | $dl / $pl / $cl | $((de + pe + ce)) |"
done
done
kill -TERM "$hub"; wait "$hub" 2>/dev/null || true

# search_tools over the fan-in catalogue.
{
  printf '{"mcpServers":{'
  for i in $(seq 0 49); do
    [ "$i" -gt 0 ] && printf ','
    printf '"fx%d":{"command":"%s","args":["--tools","100"]}' "$i" "$FIXTURE"
  done
  printf '},"profiles":{"find":{"mode":"search","servers":["*"]}}}\n'
} >"$work/fanin.json"
port=$("$LOADGEN" free-port)
"$HUB" --port "$port" --config "$work/fanin.json" >"$work/hub2.out" 2>"$work/hub2.err" &
hub=$!; pids+=("$hub")
"$LOADGEN" wait-ready --base "http://127.0.0.1:$port" --timeout 120
echo
echo "search_tools over the fan-in catalogue (query \"extra tool number 42 echoes text\", limit 5):"
"$LOADGEN" run --url "http://127.0.0.1:$port/mcp/find" --tool search_tools \
  --arguments '{"query":"extra tool number 42 echoes text","limit":5}' \
  --calls 500 --warmup 20 --pid "$hub" \
  | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); print("p50 %.0f µs, p99 %.0f µs, hub CPU %.0f µs/call, errors %d" % (r["latency_us"]["p50"], r["latency_us"]["p99"], r["hub"]["cpu_us_per_call"], r["errors"]))'
