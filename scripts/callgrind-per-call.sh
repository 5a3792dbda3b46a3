#!/usr/bin/env bash
# Instructions the hub process executes per `tools/call` (docs/BENCHMARKS.md): the hub runs under
# callgrind with the fixture as its upstream, the load generator makes SMALL and then BIG
# sequential calls on one session, and per call = (total at BIG - total at SMALL) / (BIG - SMALL),
# so start-up, the handshake and shutdown cancel out. Instruction counts do not move with other
# tenants' load, unlike wall-clock figures on a shared machine.
#
# Usage: scripts/callgrind-per-call.sh [extra hub arguments...]
# Environment:
#   BIN=target/release          where mcp-hub, mcp-hub-fixture and mcp-hub-loadgen are
#   HUB=$BIN/mcp-hub            the hub binary measured (e.g. a build of another commit)
#   UPSTREAM=stdio|http         the fixture as a stdio child (default) or over Streamable HTTP
#   SMALL=200 BIG=2200          the two run lengths
#   SESSIONS=1                  concurrent sessions of the load generator (calls are per session)
#   TRANSPORT=streamable        the load generator's transport (stateless: 2026-07-28 calls)
#   KEEP=dir                    keep the callgrind.out files there (for callgrind_annotate)
#   FLOOR=1                     measure the bare relay (`mcp-hub-loadgen relay`, the benchmark's
#                               `floor` / `floor-http`) in front of the same upstream instead of
#                               the hub
# Prints one line per run and then `per call: N instructions`. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/listening.sh
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release}
HUB=${HUB:-$BIN/mcp-hub}
FIXTURE=$BIN/mcp-hub-fixture
LOADGEN=$BIN/mcp-hub-loadgen
UPSTREAM=${UPSTREAM:-stdio}
SMALL=${SMALL:-200}
BIG=${BIG:-2200}
SESSIONS=${SESSIONS:-1}
TRANSPORT=${TRANSPORT:-streamable}
for b in "$HUB" "$FIXTURE" "$LOADGEN"; do
  [ -x "$b" ] || { echo "callgrind-per-call: $b is missing (cargo build --release)" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "callgrind-per-call: valgrind is not installed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-hub-callgrind.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export HOME=$work/home XDG_STATE_HOME=$work/home/state XDG_CONFIG_HOME=$work/home/config \
  XDG_DATA_HOME=$work/home/data XDG_CACHE_HOME=$work/home/cache
mkdir -p "$HOME"

if [ "$UPSTREAM" = http ]; then
  "$FIXTURE" --http 0 >"$work/fixture.out" 2>"$work/fixture.err" &
  pids+=($!)
  fport=$(listening_port "$work/fixture.out") || { echo "callgrind-per-call: the fixture did not start" >&2; exit 1; }
  printf '{"mcpServers":{"fx":{"url":"http://127.0.0.1:%s/mcp"}}}\n' "$fport" >"$work/config.json"
else
  printf '{"mcpServers":{"fx":{"command":"%s","args":[]}}}\n' "$FIXTURE" >"$work/config.json"
fi

total() { # total N: runs the hub under callgrind for N calls, prints its instruction total
  local n=$1 out=$work/callgrind.out.$1 port hub
  local tool=fx__echo
  port=$("$LOADGEN" free-port)
  if [ "${FLOOR:-0}" = 1 ]; then
    local upstream=(-- "$FIXTURE")
    [ "$UPSTREAM" = http ] && upstream=(--url "http://127.0.0.1:$fport/mcp")
    valgrind --tool=callgrind --callgrind-out-file="$out" "$LOADGEN" --threads "$(nproc)" relay \
      --port "$port" "${upstream[@]}" >"$work/hub-$n.out" 2>"$work/hub-$n.err" &
    hub=$!
    tool=echo
    # Under valgrind: up to a minute.
    listening_port "$work/hub-$n.out" 1200 >/dev/null \
      || { echo "callgrind-per-call: the bare relay did not start" >&2; exit 1; }
  else
    valgrind --tool=callgrind --callgrind-out-file="$out" "$HUB" --port "$port" \
      --config "$work/config.json" "${@:2}" >"$work/hub-$n.out" 2>"$work/hub-$n.err" &
    hub=$!
    "$LOADGEN" wait-ready --base "http://127.0.0.1:$port" --timeout 120
  fi
  "$LOADGEN" run --url "http://127.0.0.1:$port/mcp" --transport "$TRANSPORT" --tool "$tool" \
    --sessions "$SESSIONS" \
    --calls "$n" --timeout 120 >/dev/null 2>"$work/loadgen-$n.err" \
    || { cat "$work/loadgen-$n.err" >&2; exit 1; }
  kill -TERM "$hub"
  wait "$hub" || true
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$out" "$KEEP/"
  sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out" | head -1
}

a=$(total "$SMALL" "$@")
echo "$SMALL calls: $a instructions" >&2
b=$(total "$BIG" "$@")
echo "$BIG calls: $b instructions" >&2
echo "per call: $(((b - a) / ((BIG - SMALL) * SESSIONS))) instructions"
