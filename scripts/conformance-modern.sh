#!/usr/bin/env bash
# The 2026-07-28 (stateless) conformance run: @modelcontextprotocol/conformance 0.2.0-alpha.12
# `--requirements 2026-07-28` against the workspace fixture directly (`--http --era dual`) and
# through the hub (the fixture behind it as a stdio upstream, as in scripts/conformance.sh).
# Fails unless the hub passes every required scenario the fixture passes directly, and unless
# `--requirements 2025-11-25` through the same hub passes every scored scenario (the handshake
# era on the same endpoint must not regress).
# Needs: scripts/setup-test-peers.sh exports (run by scripts/test.sh) and built binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MCP_HUB_NODE22:?run scripts/setup-test-peers.sh first}" "${MCP_HUB_CONFORMANCE_NEXT:?}"
target="${CARGO_TARGET_DIR:-target}/debug"
export MCP_HUB_FIXTURE="$PWD/$target/mcp-hub-fixture"
[[ "$target" = /* ]] && export MCP_HUB_FIXTURE="$target/mcp-hub-fixture"
hub="${MCP_HUB_FIXTURE%/*}/mcp-hub"
work="$(mktemp -d)"
. scripts/lib/hub.sh
export NODE_OPTIONS="--require=$PWD/scripts/loopback-only.cjs ${NODE_OPTIONS:-}"
suite() { "$MCP_HUB_NODE22" "$MCP_HUB_CONFORMANCE_NEXT" "$@"; }

start_fixture dual --era dual --name conformance-fixture
start_hub main tests/fixtures/conformance.json

# The required server scenarios of a revision, one per line.
required() {
  suite list --requirements "$1" | sed -n '/^Server scenarios/,/^$/s/^  - \([a-z0-9-]*\)$/\1/p' | sort -u
}
# Scenarios of a run's log that passed / failed, one per line.
passed() { sed -n 's/^✓ \([a-z0-9-]*\):.*/\1/p' "$1" | sort -u; }
failed() { sed -n 's/^✗ \([a-z0-9-]*\):.*/\1/p' "$1" | sort -u; }
run() { # name url requirements
  suite server --url "$2" --requirements "$3" -o "$work/$1" >"$work/$1.log" 2>&1 || true
}

required 2026-07-28 >"$work/req-modern"
required 2025-11-25 >"$work/req-legacy"
# The handshake era first: a 2026-07-28 call the suite leaves parked (an input request it never
# answers) keeps its stdio upstream's server-to-client requests ambiguous until it expires, and
# the hub then refuses them rather than guess (docs/ARCHITECTURE.md, "What servers send back").
echo "== conformance 2025-11-25: through the hub"
run legacy "http://127.0.0.1:$port/mcp" 2025-11-25
echo "== conformance 2026-07-28: the fixture directly"
run direct "http://127.0.0.1:$fx_port/mcp" 2026-07-28
echo "== conformance 2026-07-28: through the hub"
run hub "http://127.0.0.1:$port/mcp" 2026-07-28

direct_ok="$(passed "$work/direct.log" | comm -12 - "$work/req-modern")"
hub_ok="$(passed "$work/hub.log" | comm -12 - "$work/req-modern")"
total="$(wc -l <"$work/req-modern")"
n_direct="$(printf '%s' "$direct_ok" | grep -c . || true)"
n_hub="$(printf '%s' "$hub_ok" | grep -c . || true)"
missing="$(comm -23 <(printf '%s\n' "$direct_ok") <(printf '%s\n' "$hub_ok") | grep . || true)"
legacy_bad="$(failed "$work/legacy.log" | comm -12 - "$work/req-legacy")"
legacy_ok="$(passed "$work/legacy.log" | comm -12 - "$work/req-legacy" | grep -c . || true)"
echo "conformance 2026-07-28 (required $total): fixture directly $n_direct passed; through the hub $n_hub passed"
echo "conformance 2025-11-25 through the hub: $legacy_ok of $(wc -l <"$work/req-legacy") required scenarios passed"
echo "2026-07-28 scenarios failing directly (the hub is not held to these):"
comm -23 "$work/req-modern" <(printf '%s\n' "$direct_ok") | sed 's/^/  /'
status=0
if [ -n "$missing" ]; then
  echo "conformance-modern: the hub fails scenarios the fixture passes directly:" >&2
  echo "$missing" >&2
  status=1
fi
# A fixture that broke would make the comparison vacuous: hold it to what it reached.
if [ "$n_direct" -lt 27 ]; then
  echo "conformance-modern: the fixture passes only $n_direct of the 2026-07-28 scenarios directly (expected 27 or more)" >&2
  status=1
fi
if [ -n "$legacy_bad" ]; then
  echo "conformance-modern: 2025-11-25 scenarios fail through the hub:" >&2
  echo "$legacy_bad" >&2
  status=1
fi
[ "$status" = 0 ] || { tail -n 40 "$work/hub.log"; exit 1; }
