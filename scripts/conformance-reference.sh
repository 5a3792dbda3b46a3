#!/usr/bin/env bash
# Opt-in: @modelcontextprotocol/conformance 0.2.0-alpha.12 `--requirements 2026-07-28` (and
# 2025-11-25) against the suite's own dual-era reference server (`examples/servers/typescript`
# of the conformance repository), directly and through the hub (the reference server behind it
# as a Streamable HTTP upstream). Fails unless the hub passes every 2026-07-28 scenario the
# reference server passes directly. The 2025-11-25 run is reported, not held: the reference
# server's `server/discover` lists only 2026-07-28, so the hub uses it in that era, where it
# serves test_sampling and the eliciting tools without asking for input (docs/API.md, "Protocol
# eras on /mcp"). The checkout is never part of this repository:
#   git clone https://github.com/modelcontextprotocol/conformance /tmp/conf-ref
#   (cd /tmp/conf-ref/examples/servers/typescript && npm ci)
#   scripts/conformance-reference.sh /tmp/conf-ref
# Needs: scripts/setup-test-peers.sh exports and built binaries (cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."
checkout="${1:?usage: scripts/conformance-reference.sh <conformance checkout>}"
server_dir="$checkout/examples/servers/typescript"
[ -x "$server_dir/node_modules/.bin/tsx" ] || { echo "run npm ci in $server_dir first" >&2; exit 2; }
: "${MCP_HUB_NODE22:?run scripts/setup-test-peers.sh first}" "${MCP_HUB_CONFORMANCE_NEXT:?}"
target="${CARGO_TARGET_DIR:-target}/debug"
[[ "$target" = /* ]] || target="$PWD/$target"
hub="$target/mcp-hub"
work="$(mktemp -d)"
. scripts/lib/hub.sh
export NODE_OPTIONS="--require=$PWD/scripts/loopback-only.cjs ${NODE_OPTIONS:-}"
suite() { "$MCP_HUB_NODE22" "$MCP_HUB_CONFORMANCE_NEXT" "$@"; }
free_port() { "$MCP_HUB_NODE22" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

ref_port="$(free_port)"
(cd "$server_dir" && PORT="$ref_port" PATH="$(dirname "$MCP_HUB_NODE22"):$PATH" \
  exec "$MCP_HUB_NODE22" node_modules/.bin/tsx everything-server.ts) >"$work/ref.out" 2>"$work/ref.err" &
started_pids+=("$!")
for _ in $(seq 300); do
  curl -s -o /dev/null "http://127.0.0.1:$ref_port/mcp" 2>/dev/null && break
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$ref_port/mcp" || { echo "the reference server did not start"; cat "$work/ref.err"; exit 1; }

cat >"$work/hub.json" <<JSON
{"mcpServers": {"reference": {"url": "http://127.0.0.1:$ref_port/mcp", "prefix": false}}}
JSON
start_hub main "$work/hub.json" 200
curl -fsS "http://127.0.0.1:$port/api/servers" | grep -q '"status":"connected"' \
  || { echo "the reference server did not connect behind the hub:"; cat "$work/.hub-main/stderr"; exit 1; }

passed() { sed -n 's/^✓ \([a-z0-9-]*\):.*/\1/p' "$1" | sort -u; }
run() { # name url requirements
  suite server --url "$2" --requirements "$3" -o "$work/$1" >"$work/$1.log" 2>&1 || true
}
status=0
for req in 2026-07-28 2025-11-25; do
  echo "== conformance $req: the reference server directly"
  run "direct-$req" "http://127.0.0.1:$ref_port/mcp" "$req"
  echo "== conformance $req: through the hub"
  run "hub-$req" "http://127.0.0.1:$port/mcp" "$req"
  direct_ok="$(passed "$work/direct-$req.log")"
  hub_ok="$(passed "$work/hub-$req.log")"
  total="$(grep -c '^[✓✗] ' "$work/direct-$req.log" || true)"
  n_direct="$(printf '%s' "$direct_ok" | grep -c . || true)"
  n_hub="$(printf '%s' "$hub_ok" | grep -c . || true)"
  echo "conformance $req ($total scenarios run): reference directly $n_direct passed; through the hub $n_hub passed"
  missing="$(comm -23 <(printf '%s\n' "$direct_ok") <(printf '%s\n' "$hub_ok") | grep . || true)"
  if [ -n "$missing" ]; then
    echo "conformance-reference: through the hub, $req scenarios fail that pass directly:" >&2
    echo "$missing" | sed 's/^/  /' >&2
    [ "$req" = 2026-07-28 ] && status=1
  fi
  [ -n "${KEEP_LOGS:-}" ] && cp "$work/direct-$req.log" "$work/hub-$req.log" "$KEEP_LOGS/"
done
[ -n "${KEEP_LOGS:-}" ] && cp "$work/.hub-main/stderr" "$KEEP_LOGS/hub.stderr" && cp "$work/ref.out" "$KEEP_LOGS/ref.out"
exit "$status"
