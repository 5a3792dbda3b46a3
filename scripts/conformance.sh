#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance 0.1.16, Node 22)
# against the hub's /mcp with the workspace fixture server behind it (no prefix).
# Fails unless every active scenario passes; also runs the pending ones and reports them.
# Then runs `--suite all` once more through a hub whose fixture is a Streamable HTTP upstream,
# right after a call whose upstream stream could not be resumed (the upstream lost the answer it
# produced while the hub waited out `retry`): that call must fail at once with a clear error and
# leave nothing behind, so every scenario (32) must pass.
# Needs: scripts/setup-test-peers.sh exports (run by scripts/test.sh) and built binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MCP_HUB_NODE22:?run scripts/setup-test-peers.sh first}" "${MCP_HUB_CONFORMANCE:?}"
target="${CARGO_TARGET_DIR:-target}/debug"
export MCP_HUB_FIXTURE="$PWD/$target/mcp-hub-fixture"
[[ "$target" = /* ]] && export MCP_HUB_FIXTURE="$target/mcp-hub-fixture"
hub="${MCP_HUB_FIXTURE%/*}/mcp-hub"
work="$(mktemp -d)"
hub_pid="" hub2_pid="" fx_pid=""
trap 'for p in $hub_pid $hub2_pid $fx_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

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

echo "== conformance: all scenarios over a Streamable HTTP upstream, after a call that could not be resumed"
"$MCP_HUB_FIXTURE" --http 0 --name conformance-fixture >"$work/fx.out" 2>"$work/fx.err" &
fx_pid=$!
for _ in $(seq 100); do
  fx_port="$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/fx.out")"
  [ -n "$fx_port" ] && break
  sleep 0.1
done
[ -n "${fx_port:-}" ] || { echo "the HTTP fixture did not start"; exit 1; }
cat >"$work/http.json" <<JSON
{"mcpServers": {"conformance": {"url": "http://127.0.0.1:$fx_port/mcp", "type": "streamable-http", "prefix": false}}}
JSON
HOME="$work/home2" XDG_STATE_HOME="$work/state2" XDG_DATA_HOME="$work/data2" \
  "$hub" --port 0 --config "$work/http.json" >"$work/stdout2" 2>"$work/stderr2" &
hub2_pid=$!
for _ in $(seq 100); do
  port="$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$work/stdout2" | head -1)"
  [ -n "$port" ] && break
  sleep 0.1
done
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/api/servers" 2>/dev/null | grep -q '"status":"connected"' && break
  sleep 0.1
done
mcp_post() { # session, body -> response body
  curl -sS -m 60 "http://127.0.0.1:$port/mcp" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' ${1:+-H "mcp-session-id: $1"} \
    -H 'mcp-protocol-version: 2025-11-25' -d "$2"
}
sid="$(curl -sS -D - -o /dev/null "http://127.0.0.1:$port/mcp" -H 'content-type: application/json' \
  -H 'accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}' \
  | tr -d '\r' | sed -n 's/^mcp-session-id: //Ip')"
mcp_post "$sid" '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
started=$(date +%s)
lost="$(mcp_post "$sid" '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_reconnection","arguments":{"lose_answer":true}}}')"
took=$(( $(date +%s) - started ))
echo "the unresumable call failed after ${took}s: $(echo "$lost" | grep -o '"message":"[^"]*"' | head -1)"
if ! echo "$lost" | grep -q 'brought nothing' || [ "$took" -gt 20 ]; then
  echo "conformance: a call whose stream cannot be resumed must fail promptly with a clear error; got: $lost" >&2
  exit 1
fi
run http --suite all
read -r http_ok http_bad http_checks <<<"$(summary http)"
echo "conformance: all scenarios over Streamable HTTP after an unresumable call: $http_ok passed, $http_bad failed (failed checks: ${http_checks:-?})"
if [ "$http_bad" != 0 ] || [ "$http_ok" -lt 32 ]; then
  echo "conformance: every scenario must pass after an unresumable call" >&2
  exit 1
fi
