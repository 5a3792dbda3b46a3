#!/usr/bin/env bash
# Runs the official conformance suite's client scenarios with the hub as the client: for each
# scenario the runner starts a server and calls scripts/conformance_client.py with its URL, which
# puts the hub in front of it (OAuth completed headlessly, tools called through the hub's /mcp).
# Required: every 2025-11-25 and 2025-06-18 auth scenario plus initialize, tools_call, sse-retry
# and elicitation-sep1034-client-defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MCP_HUB_NODE22:?run scripts/setup-test-peers.sh first}" "${MCP_HUB_CONFORMANCE:?}" "${MCP_HUB_PYTHON:?}"
target="${CARGO_TARGET_DIR:-target}/debug"
[[ "$target" = /* ]] || target="$PWD/$target"
export MCP_HUB_BIN="$target/mcp-hub"
export NODE_OPTIONS="--require=$PWD/scripts/loopback-only.cjs ${NODE_OPTIONS:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
scenarios=(initialize tools_call sse-retry elicitation-sep1034-client-defaults
  auth/metadata-default auth/metadata-var1 auth/metadata-var2 auth/metadata-var3 auth/basic-cimd
  auth/scope-from-www-authenticate auth/scope-from-scopes-supported auth/scope-omitted-when-undefined
  auth/scope-step-up auth/scope-retry-limit auth/token-endpoint-auth-basic auth/token-endpoint-auth-post
  auth/token-endpoint-auth-none auth/pre-registration)
failed=()
for s in "${scenarios[@]}"; do
  out="$work/${s//\//_}"
  if "$MCP_HUB_NODE22" "$MCP_HUB_CONFORMANCE" client --scenario "$s" -o "$out" \
      --command "$MCP_HUB_PYTHON $PWD/scripts/conformance_client.py" >"$out.log" 2>&1 \
     && grep -q 'OVERALL: PASSED' "$out.log"; then
    echo "ok   $s: $(grep -Eo 'Passed: [0-9]+/[0-9]+, [0-9]+ failed, [0-9]+ warnings' "$out.log" | tail -1)"
  else
    echo "FAIL $s"
    tail -n 30 "$out.log" | sed 's/^/     /'
    failed+=("$s")
  fi
done
echo "conformance (client): $(( ${#scenarios[@]} - ${#failed[@]} ))/${#scenarios[@]} scenarios passed"
[ "${#failed[@]}" = 0 ]
