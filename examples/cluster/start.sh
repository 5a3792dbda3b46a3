#!/usr/bin/env bash
# Starts a three-replica mcp-hub cluster on loopback: Redis, three replicas sharing it
# (--cluster), and HAProxy in front. Clients use http://127.0.0.1:$LB_PORT/mcp.
# Ctrl-C (or SIGTERM) stops everything it started.
#
# Needs Debian's redis-server and haproxy (apt-get install redis-server haproxy) and the built
# binaries (cargo build --workspace --bins). Ports: LB_PORT (37373), REPLICA{1,2,3}_PORT
# (37381-37383), REDIS_PORT (6390). The replicas' shared secret comes from
# MCP_HUB_CLUSTER_SECRET, or is drawn at random for this run.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LB_PORT=${LB_PORT:-37373}
export REPLICA1_PORT=${REPLICA1_PORT:-37381} REPLICA2_PORT=${REPLICA2_PORT:-37382} REPLICA3_PORT=${REPLICA3_PORT:-37383}
REDIS_PORT=${REDIS_PORT:-6390}
BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug"
for b in redis-server haproxy; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || { echo "start.sh: $b is not installed (apt-get install redis-server haproxy)" >&2; exit 1; }
done
[ -x "$BIN/mcp-hub" ] || { echo "start.sh: build first: cargo build --workspace --bins" >&2; exit 1; }
export MCP_HUB_CLUSTER_SECRET=${MCP_HUB_CLUSTER_SECRET:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}

work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-hub-cluster.XXXXXX")
pids=()
stop() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

for i in 1 2 3; do
  port_var="REPLICA${i}_PORT"
  mkdir -p "$work/r$i"
  # Each replica its own HOME (logs, workspace cache), the same config and cluster, and the
  # balancer's OAuth callback (a login's callback may then reach any replica).
  HOME="$work/r$i" XDG_STATE_HOME="$work/r$i/state" "$BIN/mcp-hub" --port "${!port_var}" \
    --config examples/cluster/servers.json --cluster "redis://127.0.0.1:$REDIS_PORT" \
    --oauth-redirect-url "http://127.0.0.1:$LB_PORT/api/oauth/callback" \
    >"$work/r$i/stdout" 2>"$work/r$i/stderr" &
  pids+=($!)
  echo "replica $i: pid $! on 127.0.0.1:${!port_var} (log $work/r$i/stderr)"
done
for i in 1 2 3; do
  port_var="REPLICA${i}_PORT"
  for _ in $(seq 200); do curl -fsS "http://127.0.0.1:${!port_var}/api/health" >/dev/null 2>&1 && break; sleep 0.05; done
done

haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
# The config names its ports as environment variables, which HAProxy expands itself.
"$haproxy_bin" -db -f examples/cluster/haproxy.cfg >"$work/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$LB_PORT/api/health" >/dev/null 2>&1 && break; sleep 0.05; done
echo "cluster ready: http://127.0.0.1:$LB_PORT/mcp (Redis on 127.0.0.1:$REDIS_PORT); Ctrl-C stops it"
if [ "${CLUSTER_READY_FILE:-}" ]; then
  printf '%s\n' "${pids[@]:1:3}" >"$CLUSTER_READY_FILE"
fi
wait
