#!/usr/bin/env bash
# The Python `mcp` SDK as a client through the hub, over Streamable HTTP and legacy SSE, with two
# upstreams at once (the fixture and server-everything). See scripts/py_client_test.py. Then the
# SDK pinned to 2026-07-28 (stateless) lists and calls tools of the same upstreams, including
# server-everything's sampling and eliciting tools through the hub's MRTR bridge
# (scripts/py_modern_test.py), does the same through call_tool on a search-mode profile, and so
# does the TypeScript SDK v2 pinned to 2026-07-28 (scripts/ts_modern_test.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MCP_HUB_PYTHON:?run scripts/setup-test-peers.sh first}" "${MCP_HUB_SERVER_EVERYTHING:?}"
target="${CARGO_TARGET_DIR:-target}/debug"
[[ "$target" = /* ]] || target="$PWD/$target"
work="$(mktemp -d)"
trap 'kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cat >"$work/servers.json" <<JSON
{"mcpServers": {
  "fixture": {"command": "$target/mcp-hub-fixture", "args": ["--name", "fixture"]},
  "everything": {"command": "node", "args": ["$MCP_HUB_SERVER_EVERYTHING", "stdio"]}
},
 "profiles": {"agent": {"mode": "search", "servers": {"everything": {"tools": {"exclude": ["echo"]}}}}}}
JSON
HOME="$work/home" XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" \
  "$target/mcp-hub" --port 0 --config "$work/servers.json" >"$work/stdout" 2>"$work/stderr" &
hub_pid=$!
for _ in $(seq 100); do
  port="$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$work/stdout" 2>/dev/null | head -1)"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "${port:-}" ] || { echo "the hub did not start:"; cat "$work/stderr"; exit 1; }
for _ in $(seq 200); do
  n="$(curl -fsS "http://127.0.0.1:$port/api/servers" 2>/dev/null | grep -o '"status":"connected"' | wc -l)"
  [ "$n" -ge 2 ] && break
  sleep 0.1
done
status=0
"$MCP_HUB_PYTHON" scripts/py_client_test.py "http://127.0.0.1:$port/mcp" streamable-http || status=1
"$MCP_HUB_PYTHON" scripts/py_client_test.py "http://127.0.0.1:$port/sse" sse || status=1
"$MCP_HUB_PYTHON" scripts/py_modern_test.py "http://127.0.0.1:$port/mcp" \
  "http://127.0.0.1:$port/mcp/agent" || status=1
: "${MCP_HUB_NODE22:?}" "${MCP_HUB_TS_SDK_DIR:?run scripts/setup-test-peers.sh again (the TypeScript SDK v2)}"
MCP_HUB_TS_SDK_DIR="$MCP_HUB_TS_SDK_DIR" "$MCP_HUB_NODE22" scripts/ts_modern_test.mjs "http://127.0.0.1:$port/mcp" || status=1
[ "$status" = 0 ] || { echo "--- hub stderr"; tail -n 50 "$work/stderr"; }
exit "$status"
