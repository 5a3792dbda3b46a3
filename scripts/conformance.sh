#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance 0.1.16, Node 22)
# against the hub's /mcp with the workspace fixture server behind it (no prefix).
# Fails unless every active scenario passes; also runs the pending ones and reports them.
# Needs: scripts/setup-test-peers.sh exports (run by scripts/test.sh) and built binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MCP_HUB_NODE22:?run scripts/setup-test-peers.sh first}" "${MCP_HUB_CONFORMANCE:?}"
target="${CARGO_TARGET_DIR:-target}/debug"
export MCP_HUB_FIXTURE="$PWD/$target/mcp-hub-fixture"
[[ "$target" = /* ]] && export MCP_HUB_FIXTURE="$target/mcp-hub-fixture"
hub="${MCP_HUB_FIXTURE%/*}/mcp-hub"
work="$(mktemp -d)"
trap 'kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

HOME="$work/home" XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" \
  "$hub" --port 0 --config tests/fixtures/conformance.json >"$work/stdout" 2>"$work/stderr" &
hub_pid=$!
for _ in $(seq 100); do
  port="$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$work/stdout" | head -1)"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "${port:-}" ] || { echo "the hub did not start:"; cat "$work/stderr"; exit 1; }
# Wait until the fixture is connected.
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/api/servers" 2>/dev/null | grep -q '"status":"connected"' && break
  sleep 0.1
done

# Keep every server the suite starts on loopback.
export NODE_OPTIONS="--require=$PWD/scripts/loopback-only.cjs ${NODE_OPTIONS:-}"
run() {
  local name="$1"; shift
  local out="$work/$name"
  "$MCP_HUB_NODE22" "$MCP_HUB_CONFORMANCE" server --url "http://127.0.0.1:$port/mcp" -o "$out" "$@" >"$out.log" 2>&1 || true
  tail -n 25 "$out.log"
}
echo "== conformance: active server scenarios"
run active
echo "== conformance: all scenarios (including pending)"
run all --suite all
summary() { # scenarios passed, scenarios failed, checks failed
  local log="$work/$1.log"
  echo "$(grep -c '^✓' "$log" || true) $(grep -c '^✗' "$log" || true) $(sed -n 's/^Total: [0-9]* passed, \([0-9]*\) failed.*/\1/p' "$log" | tail -1)"
}
read -r ok bad checks <<<"$(summary active)"
read -r all_ok all_bad all_checks <<<"$(summary all)"
echo "conformance: active suite $ok passed, $bad failed (failed checks: ${checks:-?}); all scenarios $all_ok passed, $all_bad failed"
if [ "$bad" != 0 ] || [ "${checks:-1}" != 0 ] || [ "$ok" -lt 30 ]; then
  echo "conformance: the active suite must pass all 30 scenarios" >&2
  exit 1
fi
