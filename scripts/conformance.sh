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
. scripts/lib/hub.sh
start_hub main tests/fixtures/conformance.json

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
start_fixture http --name conformance-fixture
cat >"$work/http.json" <<JSON
{"mcpServers": {"conformance": {"url": "http://127.0.0.1:$fx_port/mcp", "type": "streamable-http", "prefix": false}}}
JSON
start_hub http "$work/http.json"
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
