#!/usr/bin/env bash
# Cluster mode's benchmark (issue 20): release builds of three replicas sharing a redis-server,
# HAProxy in front, the workspace's load generator driving them. Reports
#   1. stateless (2026-07-28) calls/s through the balancer to one, two and three replicas;
#   2. the cost of a forwarded request: the latency of one session's calls when the balancer
#      sends each call to the session's own replica (sticky, on Mcp-Session-Id) and when it sends
#      them round robin (two calls in three are then forwarded by another replica).
# Figures depend on the machine: on a 2-core machine shared with the load generator, HAProxy
# and Redis, more replicas add no CPU, so (1) shows the cost of the hop more than scaling.
# Needs redis-server and haproxy (scripts/cluster-test.sh installs them). DURATION (seconds,
# default 5) and SESSIONS (default 8) tune the throughput runs. Everything on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
DURATION=${DURATION:-5}
SESSIONS=${SESSIONS:-8}
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
command -v redis-server >/dev/null && [ -x "$haproxy_bin" ] || { echo "bench-cluster: needs redis-server and haproxy (scripts/cluster-test.sh installs them)" >&2; exit 1; }

cargo build --release --locked -p mcp-hub -p mcp-hub-fixture -p mcp-hub-loadgen
BIN="${CARGO_TARGET_DIR:-$repo/target}/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-hub-bench-cluster.XXXXXX")
pids=()
lb_pid=
cleanup() {
  [ -n "$lb_pid" ] && kill -TERM "$lb_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" $lb_pid; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
read -r LB R1 R2 R3 REDIS < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
redis-server --port "$REDIS" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS" ping >/dev/null 2>&1 && break; sleep 0.05; done
printf '{"mcpServers":{"fx":{"command":"%s","args":["--name","fx"]}}}' "$BIN/mcp-hub-fixture" >"$work/config.json"
export MCP_HUB_CLUSTER_SECRET=bench-cluster-secret-0123456789
for p in $R1 $R2 $R3; do
  mkdir -p "$work/$p"
  HOME="$work/$p" "$BIN/mcp-hub" --port "$p" --config "$work/config.json" \
    --cluster "redis://127.0.0.1:$REDIS" --log-level warn >"$work/$p/out" 2>"$work/$p/err" &
  pids+=($!)
done
for p in $R1 $R2 $R3; do
  "$BIN/mcp-hub-loadgen" wait-ready --base "http://127.0.0.1:$p" --timeout 30
done

# $1: the backend's servers; $2: "sticky" to keep each session on its own replica.
balancer() {
  if [ -n "$lb_pid" ]; then
    kill -TERM "$lb_pid" 2>/dev/null || true
    wait "$lb_pid" 2>/dev/null || true
  fi
  {
    printf 'global\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n'
    printf 'frontend mcp\n  bind 127.0.0.1:%s\n  default_backend replicas\nbackend replicas\n  balance roundrobin\n' "$LB"
    if [ "${2:-}" = sticky ]; then
      printf '  stick-table type string len 64 size 100k expire 30m\n  stick on req.hdr(mcp-session-id)\n  stick store-response res.hdr(mcp-session-id)\n'
    fi
    i=0
    for p in $1; do i=$((i + 1)); printf '  server r%s 127.0.0.1:%s\n' "$i" "$p"; done
  } >"$work/haproxy.cfg"
  "$haproxy_bin" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  lb_pid=$!
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$LB/api/health" >/dev/null 2>&1 && break; sleep 0.05; done
}

out="$work/results.jsonl"
servers="$R1"
for n in 1 2 3; do
  [ "$n" = 2 ] && servers="$R1 $R2"
  [ "$n" = 3 ] && servers="$R1 $R2 $R3"
  balancer "$servers"
  "$BIN/mcp-hub-loadgen" --threads 2 run --transport stateless --url "http://127.0.0.1:$LB/mcp" \
    --tool fx__echo --sessions "$SESSIONS" --duration "$DURATION" \
    --label "cluster-stateless/$n-replicas" --out "$out"
done
balancer "$R1 $R2 $R3" sticky
"$BIN/mcp-hub-loadgen" run --url "http://127.0.0.1:$LB/mcp" --tool fx__echo --calls 2000 \
  --label "cluster-session/sticky" --out "$out"
balancer "$R1 $R2 $R3"
"$BIN/mcp-hub-loadgen" run --url "http://127.0.0.1:$LB/mcp" --tool fx__echo --calls 2000 \
  --label "cluster-session/round-robin" --out "$out"
"$BIN/mcp-hub-loadgen" report "$out"
