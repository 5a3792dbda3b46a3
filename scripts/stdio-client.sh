#!/usr/bin/env bash
# The stdio door (`mcp-hub stdio`) as desktop clients use it:
#   1. the Python SDK spawns `mcp-hub stdio` and reaches the fixture and server-everything through
#      it; two concurrent `mcp-hub stdio` processes share one hub (one process per upstream)
#      (scripts/stdio_client_test.py);
#   2. the official conformance suite's client scenarios with the hub reached through stdio
#      (scripts/conformance_stdio_client.py), OAuth scenarios included.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MCP_HUB_NODE22:?run scripts/setup-test-peers.sh first}" "${MCP_HUB_CONFORMANCE:?}" "${MCP_HUB_PYTHON:?}" "${MCP_HUB_SERVER_EVERYTHING:?}"
target="${CARGO_TARGET_DIR:-target}/debug"
[[ "$target" = /* ]] || target="$PWD/$target"
export MCP_HUB_BIN="$target/mcp-hub" MCP_HUB_FIXTURE="$target/mcp-hub-fixture"
export NODE_OPTIONS="--require=$PWD/scripts/loopback-only.cjs ${NODE_OPTIONS:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "-- Python SDK through mcp-hub stdio"
if ! "$MCP_HUB_PYTHON" scripts/stdio_client_test.py >"$work/py.log" 2>&1; then
  grep -E '^(ok|FAIL)' "$work/py.log" || true
  tail -n 40 "$work/py.log" | sed 's/^/     /'
  exit 1
fi
grep -E '^(ok|FAIL)' "$work/py.log"

echo "-- conformance client scenarios through mcp-hub stdio"
scenarios=(initialize tools_call sse-retry elicitation-sep1034-client-defaults
  auth/metadata-default auth/metadata-var1 auth/basic-cimd auth/scope-from-www-authenticate
  auth/scope-step-up auth/token-endpoint-auth-basic auth/token-endpoint-auth-post auth/pre-registration)
failed=()
for s in "${scenarios[@]}"; do
  out="$work/${s//\//_}"
  if "$MCP_HUB_NODE22" "$MCP_HUB_CONFORMANCE" client --scenario "$s" -o "$out" \
      --command "$MCP_HUB_PYTHON $PWD/scripts/conformance_stdio_client.py" >"$out.log" 2>&1 \
     && grep -q 'OVERALL: PASSED' "$out.log" \
     && grep -rq 'through mcp-hub stdio' "$out"; then
    echo "ok   $s: $(grep -Eo 'Passed: [0-9]+/[0-9]+, [0-9]+ failed, [0-9]+ warnings' "$out.log" | tail -1)"
  else
    echo "FAIL $s"
    tail -n 30 "$out.log" | sed 's/^/     /'
    find "$out" -name stderr.txt -exec tail -n 30 {} \; 2>/dev/null | sed 's/^/     /'
    failed+=("$s")
  fi
done
echo "conformance (client, through stdio): $(( ${#scenarios[@]} - ${#failed[@]} ))/${#scenarios[@]} scenarios passed"
[ "${#failed[@]}" = 0 ]
