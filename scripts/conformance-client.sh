#!/usr/bin/env bash
# Runs the official conformance suite's client scenarios with the hub as the client: for each
# scenario the runner starts a server and calls scripts/conformance_client.py with its URL, which
# puts the hub in front of it (OAuth completed headlessly, or the configured machine-to-machine
# grant, and tools called through the hub's /mcp).
#
# 0.1.16: all 26 client scenarios. 0.2.0-alpha.12 ($MCP_HUB_CONFORMANCE_NEXT): every scenario of
# 2025-11-25 (and the 2025-03-26 back-compat ones, at their own revision), every extension, and the
# authorization scenarios introduced with 2026-07-28 run at the 2025-11-25 wire (`--force`: what
# they test is the hub's OAuth client, which is the same in both eras). The scenarios of the hub's
# 2026-07-28 upstream client run at that revision.
# A scenario passes when the runner says OVERALL: PASSED with at least one check and none failed:
# a scenario whose checks were all skipped is reported as a failure, not a pass.
# Usage: scripts/conformance-client.sh [0.1.16|next]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MCP_HUB_NODE22:?run scripts/setup-test-peers.sh first}" "${MCP_HUB_CONFORMANCE:?}" "${MCP_HUB_PYTHON:?}"
: "${MCP_HUB_CONFORMANCE_NEXT:?run scripts/setup-test-peers.sh first}"
target="${CARGO_TARGET_DIR:-target}/debug"
[[ "$target" = /* ]] || target="$PWD/$target"
export MCP_HUB_BIN="$target/mcp-hub"
export NODE_OPTIONS="--require=$PWD/scripts/loopback-only.cjs ${NODE_OPTIONS:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
which="${1:-all}"

auth_2025=(auth/metadata-default auth/metadata-var1 auth/metadata-var2 auth/metadata-var3 auth/basic-cimd
  auth/scope-from-www-authenticate auth/scope-from-scopes-supported auth/scope-omitted-when-undefined
  auth/scope-step-up auth/scope-retry-limit auth/token-endpoint-auth-basic auth/token-endpoint-auth-post
  auth/token-endpoint-auth-none auth/pre-registration)
backcompat=(auth/2025-03-26-oauth-metadata-backcompat auth/2025-03-26-oauth-endpoint-fallback)
# Tagged draft in 0.1.16, 2026-07-28 in 0.2.0: the hub's OAuth client, whatever the wire.
auth_new=(auth/resource-mismatch auth/offline-access-scope auth/offline-access-not-supported)

runs=() # "<label>|<cli>|<scenario>|<extra args>"
if [ "$which" = all ] || [ "$which" = 0.1.16 ]; then
  for s in initialize tools_call sse-retry elicitation-sep1034-client-defaults "${auth_2025[@]}" \
      "${backcompat[@]}" "${auth_new[@]}" \
      auth/client-credentials-jwt auth/client-credentials-basic auth/cross-app-access-complete-flow; do
    runs+=("0.1.16|$MCP_HUB_CONFORMANCE|$s|")
  done
fi
if [ "$which" = all ] || [ "$which" = next ]; then
  for s in initialize tools_call elicitation-sep1034-client-defaults sse-retry "${auth_2025[@]}" \
      json-schema-2020-12-preservation; do
    runs+=("0.2.0 2025-11-25|$MCP_HUB_CONFORMANCE_NEXT|$s|--spec-version 2025-11-25")
  done
  for s in "${backcompat[@]}"; do
    runs+=("0.2.0 2025-03-26|$MCP_HUB_CONFORMANCE_NEXT|$s|--spec-version 2025-03-26")
  done
  # SEP-2640 (skills): the hub relays skills and verifies every skill file it relays against the
  # listed entry's digest, size and frontmatter; it never reads a skill file ahead of need.
  for s in auth/client-credentials-jwt auth/client-credentials-basic auth/enterprise-managed-authorization \
      auth/dpop auth/dpop-nonce auth/wif-jwt-bearer sep-2640-client-no-prefetch sep-2640-client-verify-digest \
      sep-2640-client-verify-size sep-2640-client-verify-frontmatter; do
    runs+=("0.2.0 extension|$MCP_HUB_CONFORMANCE_NEXT|$s|")
  done
  for s in "${auth_new[@]}" auth/authorization-server-migration auth/iss-supported auth/iss-not-advertised \
      auth/iss-supported-missing auth/iss-wrong-issuer auth/iss-unexpected auth/iss-normalized \
      auth/metadata-issuer-mismatch; do
    runs+=("0.2.0 2026-07-28 auth at 2025-11-25|$MCP_HUB_CONFORMANCE_NEXT|$s|--spec-version 2025-11-25 --force")
  done
  # The hub's 2026-07-28 upstream client: per-request _meta and the standard headers, the
  # version retry, Mcp-Param-* from x-mcp-header (invalid tools dropped), MRTR answered through
  # the calling client (sep-2322), schemas kept verbatim.
  for s in request-metadata http-standard-headers http-custom-headers http-invalid-tool-headers \
      json-schema-ref-no-deref sep-2322-client-request-state; do
    runs+=("0.2.0 2026-07-28|$MCP_HUB_CONFORMANCE_NEXT|$s|--spec-version 2026-07-28")
  done
fi

# One scenario run: its result line (and, on failure, the runner's last lines) go to $work/<i>.out.
one() {
  local i="$1" label cli s extra out
  IFS='|' read -r label cli s extra <<<"$2"
  out="$work/$i"
  # shellcheck disable=SC2086 # $extra is a list of flags
  # The runner's default patience (30 s per scenario) is short for a debug hub logging at TRACE
  # on a busy 2-core machine; what is checked does not depend on it.
  if "$MCP_HUB_NODE22" "$cli" client --scenario "$s" $extra --timeout 90000 -o "$out" \
      --command "$MCP_HUB_PYTHON $PWD/scripts/conformance_client.py" >"$out.log" 2>&1 \
     && grep -q 'OVERALL: PASSED' "$out.log" \
     && grep -Eq 'Passed: ([1-9][0-9]*)/\1, 0 failed' "$out.log"; then
    echo "ok   [$label] $s: $(grep -Eo 'Passed: [0-9]+/[0-9]+, [0-9]+ failed, [0-9]+ warnings' "$out.log" | tail -1)" >"$out.out"
  else
    { echo "FAIL [$label] $s"; tail -n 30 "$out.log" | sed 's/^/     /'; } >"$out.out"
  fi
}

# Scenarios are independent (every server and hub on its own ephemeral port): run a few at once.
jobs_max="${MCP_HUB_CONFORMANCE_JOBS:-2}"
for i in "${!runs[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  one "$i" "${runs[$i]}" &
done
wait
failed=0
for i in "${!runs[@]}"; do
  cat "$work/$i.out"
  grep -q '^FAIL' "$work/$i.out" && failed=$((failed + 1))
done
echo "conformance (client): $(( ${#runs[@]} - failed ))/${#runs[@]} scenario runs passed"
[ "$failed" = 0 ]
