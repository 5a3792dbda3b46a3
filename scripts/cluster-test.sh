#!/usr/bin/env bash
# Cluster mode (issue 20, docs/SCALE-OUT.md) against a real Redis and a real HAProxy:
#   1. the `cluster*` end-to-end tests (replicas of the real binary sharing a redis-server on a
#      loopback port: forwarding, 404 for a dead replica's sessions, a replica SIGKILLed under
#      load, directly and behind HAProxy; MRTR retries on another replica; OAuth logins,
#      refreshes and machine grants shared by replicas; rediss:// with a test CA) and the
#      `cluster_ops` ones (every replica's statuses in /api/servers, the others' events on
#      /api/events, commands applied everywhere, forged messages ignored);
#   2. examples/cluster/start.sh as a user runs it (Redis, three replicas, HAProxy), driven with
#      curl: a session opened through the balancer and used through it, a stateless call, the
#      cluster-wide /api/servers.
# Installs Debian's redis-server and haproxy with apt-get when missing; when that is impossible
# (not root, no apt-get) it says so and skips. Everything listens on 127.0.0.1 and is stopped on
# exit. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

missing() { ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || { ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; }; }
if missing && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing redis-server and haproxy (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server haproxy openssl; } >/dev/null 2>&1 || true
fi
if missing; then
  echo "SKIP cluster test: redis-server, redis-cli and haproxy are not installed and could not be (Debian packages redis-server and haproxy, installed as root with apt-get)"
  exit 0
fi

cargo build --locked -p mcp-hub -p mcp-hub-fixture
echo "== cluster end-to-end tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked -p mcp-hub-tests --test e2e cluster
else
  cargo test --locked -p mcp-hub-tests --test e2e cluster
fi
# The crate tests that need Redis (the shared lock and values, one refresh for many replicas'
# token managers) skip in the main test run when redis-server was not installed yet: run them
# here, where it is.
echo "== cluster and auth crate tests against redis-server"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked -p mcp-hub-cluster -p mcp-hub-auth
else
  cargo test --locked -p mcp-hub-cluster -p mcp-hub-auth
fi

echo "== examples/cluster/start.sh"
read -r LB_PORT REPLICA1_PORT REPLICA2_PORT REPLICA3_PORT REDIS_PORT < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
export LB_PORT REPLICA1_PORT REPLICA2_PORT REPLICA3_PORT REDIS_PORT
work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-hub-cluster-test.XXXXXX")
export CLUSTER_READY_FILE="$work/ready"
examples/cluster/start.sh >"$work/start.log" 2>&1 &
starter=$!
cleanup() {
  kill -TERM "$starter" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$starter" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$starter" 2>/dev/null || true
  wait "$starter" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 300); do [ -s "$CLUSTER_READY_FILE" ] && break; sleep 0.1; done
[ -s "$CLUSTER_READY_FILE" ] || { cat "$work/start.log"; echo "cluster test FAILED: the example cluster did not start" >&2; exit 1; }

lb="http://127.0.0.1:$LB_PORT/mcp"
accept='Accept: application/json, text/event-stream'
init='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"cluster-test","version":"1"}}}'
sid=$(curl -fsS -D - -o /dev/null -H "$accept" -H 'Content-Type: application/json' --data "$init" "$lb" | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
[ -n "$sid" ] || { echo "cluster test FAILED: no session through the balancer" >&2; exit 1; }
curl -fsS -o /dev/null -H "$accept" -H 'Content-Type: application/json' -H "Mcp-Session-Id: $sid" \
  --data '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$lb"
# Three calls: round robin sends them to three different replicas; two are forwarded.
for i in 1 2 3; do
  out=$(curl -fsS -H "$accept" -H 'Content-Type: application/json' -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25' \
    --data "{\"jsonrpc\":\"2.0\",\"id\":$i,\"method\":\"tools/call\",\"params\":{\"name\":\"fixture__echo\",\"arguments\":{\"text\":\"hop $i\"}}}" "$lb")
  grep -q "hop $i" <<<"$out" || { echo "cluster test FAILED: session call $i through the balancer: $out" >&2; exit 1; }
done
out=$(curl -fsS -H "$accept" -H 'Content-Type: application/json' -H 'MCP-Protocol-Version: 2026-07-28' \
  -H 'Mcp-Method: tools/call' -H 'Mcp-Name: fixture__echo' \
  --data '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"fixture__echo","arguments":{"text":"stateless"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"cluster-test","version":"1"}}}}' "$lb")
grep -q '"stateless"' <<<"$out" || { echo "cluster test FAILED: stateless call through the balancer: $out" >&2; exit 1; }
replicas=$(redis-cli -p "$REDIS_PORT" --raw keys 'mcp-hub:replica:*' | grep -c . || true)
[ "$replicas" = 3 ] || { echo "cluster test FAILED: $replicas replicas registered in Redis, expected 3" >&2; exit 1; }
# Operators see one hub: whichever replica answers, /api/servers lists every replica's status
# of each server (docs/SCALE-OUT.md). Statuses are published within a heartbeat of starting.
api="http://127.0.0.1:$LB_PORT/api/servers"
seen=0
for _ in $(seq 50); do
  seen=$(curl -fsS "$api" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(min(len([r for r in s.get("replicas",[]) if r.get("status")=="connected"]) for s in v["servers"]))' 2>/dev/null || echo 0)
  [ "$seen" = 3 ] && break
  sleep 0.1
done
[ "$seen" = 3 ] || { echo "cluster test FAILED: /api/servers through the balancer lists $seen connected replicas per server, expected 3" >&2; exit 1; }
echo "cluster test passed (a session, a stateless call and the cluster-wide server list through HAProxy over 3 replicas)"
