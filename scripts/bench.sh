#!/usr/bin/env bash
# The hub's benchmark (docs/BENCHMARKS.md): in one run on one machine, the same workloads against
#   direct       the fixture MCP server's own Streamable HTTP endpoint (no hub)
#   direct-stdio the fixture over its stdin/stdout, no hub (workload 1 only: the upstream leg)
#   floor        a bare relay (`mcp-hub-loadgen relay`: HTTP in, the fixture as its stdio child,
#                ids swapped, nothing else a hub does): the floor under any hub on this machine
#   floor-http   the same relay in front of a fixture over Streamable HTTP
#   rust         this hub (Streamable HTTP /mcp), the fixture as a stdio upstream
#   rust-http    this hub (same instance), a second fixture as a Streamable HTTP upstream
#   rust-legacy  this hub over legacy HTTP+SSE (/sse + /messages), same instance
#   node         the Node mcp-hub 4.2.1 (legacy HTTP+SSE on /mcp), the same stdio upstream
# Workloads: 1. sequential tools/call latency, 2. throughput at 1/16/64/256 sessions,
# 3. fan-in of 50 stdio upstreams x 100 tools, 4. idle footprint with 10 upstreams,
# 5. crowd: BENCH_CROWD sessions each holding a GET stream open (RSS per idle session, a
#    tools/list_changed fan-out to all of them, calls from 256 of them with and without the crowd).
# Prints the machine, then Markdown tables with ratios and target verdicts.
#
# Release binaries are built here (CARGO_TARGET_DIR is honoured); the Node hub is installed by
# scripts/setup-test-peers.sh (npm, outside the Rust build). Knobs (environment):
#   BENCH_DURATION=5          seconds per throughput point
#   BENCH_LATENCY_CALLS=2000  sequential calls of workload 1
#   BENCH_SESSIONS="1 16 32 64 256"
#   BENCH_FANIN=50 BENCH_FANIN_TOOLS=100 (per upstream, the fixture's own included)
#   BENCH_IDLE_UPSTREAMS=10
#   BENCH_CROWD=10000 BENCH_CROWD_ACTIVE=256
#   BENCH_TARGETS="direct direct-stdio floor floor-http rust rust-http rust-legacy node"
#   BENCH_WORKLOADS="latency throughput fanin idle crowd"
#   BENCH_OUT=results.jsonl   keep the raw JSON lines (default: a temporary file)
#   BENCH_SKIP_BUILD=1        use the binaries already in $CARGO_TARGET_DIR/release
# Every process it starts listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
. scripts/lib/listening.sh

DURATION=${BENCH_DURATION:-5}
LAT_CALLS=${BENCH_LATENCY_CALLS:-2000}
SESSIONS=${BENCH_SESSIONS:-1 16 32 64 256}
FANIN=${BENCH_FANIN:-50}
FANIN_TOOLS=${BENCH_FANIN_TOOLS:-100}
IDLE_UPSTREAMS=${BENCH_IDLE_UPSTREAMS:-10}
CROWD=${BENCH_CROWD:-10000}
CROWD_ACTIVE=${BENCH_CROWD_ACTIVE:-256}
TARGETS=${BENCH_TARGETS:-direct direct-stdio floor floor-http rust rust-http rust-legacy node}
WORKLOADS=${BENCH_WORKLOADS:-latency throughput fanin idle crowd}

log() { printf '[bench] %s\n' "$*" >&2; }
has() { case " $2 " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building release binaries"
  cargo build --release --locked -p mcp-hub -p mcp-hub-fixture -p mcp-hub-loadgen >&2
fi
BIN="${CARGO_TARGET_DIR:-$repo/target}/release"
HUB=$BIN/mcp-hub
FIXTURE=$BIN/mcp-hub-fixture
LOADGEN=$BIN/mcp-hub-loadgen
for b in "$HUB" "$FIXTURE" "$LOADGEN"; do
  [ -x "$b" ] || { echo "bench: $b is missing" >&2; exit 1; }
done

if has node "$TARGETS"; then
  eval "$(scripts/setup-test-peers.sh)"
  NODE_HUB=$MCP_HUB_NODE_HUB
  [ -f "$NODE_HUB" ] || { echo "bench: the Node hub is not installed" >&2; exit 1; }
fi

machine() {
  echo "### Machine"
  echo
  echo '```'
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel:  $(uname -sr)"
  echo "nproc:   $(nproc)"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|CPU max MHz|Hypervisor vendor)' || true
  echo "memory:  $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "rustc:   $(rustc --version)"
  if has node "$TARGETS"; then echo "node:    $(node --version), mcp-hub $(node -p "require('$(dirname "$(dirname "$NODE_HUB")")/package.json').version")"; fi
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo '```'
  echo
}

machine_report=$(machine)
printf '%s\n' "$machine_report" >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-hub-bench.XXXXXX")
results=${BENCH_OUT:-$work/results.jsonl}
: >"$results"
pids=()
cleanup() {
  for p in "${pids[@]}"; do stop "$p"; done
  rm -rf "$work"
}
trap cleanup EXIT

# Both hubs write workspace caches, logs and token stores under HOME/XDG: keep them in $work.
export HOME=$work/home XDG_STATE_HOME=$work/home/state XDG_CONFIG_HOME=$work/home/config \
  XDG_DATA_HOME=$work/home/data XDG_CACHE_HOME=$work/home/cache
mkdir -p "$HOME"
# The Node hub binds every interface unless told otherwise; this preload forces loopback.
export NODE_OPTIONS="--require=$repo/scripts/loopback-only.cjs"

stop() {
  local p=$1
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

# config FILE N [fixture args...]: N stdio upstreams fx0..fx{N-1} (one upstream is named fx).
config() {
  local file=$1 n=$2; shift 2
  local args="" a
  for a in "$@"; do args+="${args:+,}\"$a\""; done
  {
    printf '{"mcpServers":{'
    if [ "$n" = 1 ]; then
      printf '"fx":{"command":"%s","args":[%s]}' "$FIXTURE" "$args"
    else
      for i in $(seq 0 $((n - 1))); do
        [ "$i" -gt 0 ] && printf ','
        printf '"fx%d":{"command":"%s","args":[%s]}' "$i" "$FIXTURE" "$args"
      done
    fi
    printf '}}\n'
  } >"$file"
}


# ---- workloads 1 and 2: one upstream, all targets up at once, interleaved per measurement ----
if has latency "$WORKLOADS" || has throughput "$WORKLOADS"; then
  config "$work/one.json" 1
  declare -A url transport tool pid
  if has direct "$TARGETS"; then
    "$FIXTURE" --http 0 >"$work/direct.out" 2>"$work/direct.err" &
    p=$!; pids+=("$p")
    port=$(listening_port "$work/direct.out") || { echo "bench: the fixture did not start" >&2; exit 1; }
    url[direct]=http://127.0.0.1:$port/mcp transport[direct]=streamable tool[direct]=echo pid[direct]=$p
  fi
  if has floor "$TARGETS"; then
    # As many worker threads as the hub's runtime has (one per core).
    "$LOADGEN" --threads "$(nproc)" relay -- "$FIXTURE" >"$work/floor.out" 2>"$work/floor.err" &
    p=$!; pids+=("$p")
    port=$(listening_port "$work/floor.out") || { echo "bench: the bare relay did not start" >&2; exit 1; }
    url[floor]=http://127.0.0.1:$port/mcp transport[floor]=streamable tool[floor]=echo pid[floor]=$p
  fi
  if has floor-http "$TARGETS"; then
    # A fixture of its own, as the hub's HTTP upstream has.
    "$FIXTURE" --http 0 >"$work/floor-up.out" 2>"$work/floor-up.err" &
    pids+=("$!")
    fport=$(listening_port "$work/floor-up.out") || { echo "bench: the floor's HTTP fixture did not start" >&2; exit 1; }
    "$LOADGEN" --threads "$(nproc)" relay --url "http://127.0.0.1:$fport/mcp" \
      >"$work/floor-http.out" 2>"$work/floor-http.err" &
    p=$!; pids+=("$p")
    port=$(listening_port "$work/floor-http.out") || { echo "bench: the bare HTTP relay did not start" >&2; exit 1; }
    url[floor-http]=http://127.0.0.1:$port/mcp transport[floor-http]=streamable tool[floor-http]=echo pid[floor-http]=$p
  fi
  if has rust-http "$TARGETS"; then
    # The hub's HTTP upstream is a fixture of its own, so direct runs never touch its sessions.
    "$FIXTURE" --http 0 >"$work/upstream.out" 2>"$work/upstream.err" &
    pids+=("$!")
    uport=$(listening_port "$work/upstream.out") || { echo "bench: the HTTP upstream fixture did not start" >&2; exit 1; }
    # Same hub, one more upstream: fh, over Streamable HTTP.
    sed -i "s|}}\$|,\"fh\":{\"url\":\"http://127.0.0.1:$uport/mcp\"}}}|" "$work/one.json"
  fi
  if has rust "$TARGETS" || has rust-http "$TARGETS" || has rust-legacy "$TARGETS"; then
    port=$("$LOADGEN" free-port)
    "$HUB" --port "$port" --config "$work/one.json" >"$work/rust.out" 2>"$work/rust.err" &
    p=$!; pids+=("$p")
    "$LOADGEN" wait-ready --base "http://127.0.0.1:$port" --timeout 30
    url[rust]=http://127.0.0.1:$port/mcp transport[rust]=streamable tool[rust]=fx__echo pid[rust]=$p
    url[rust-http]=http://127.0.0.1:$port/mcp transport[rust-http]=streamable tool[rust-http]=fh__echo pid[rust-http]=$p
    url[rust-legacy]=http://127.0.0.1:$port/sse transport[rust-legacy]=legacy tool[rust-legacy]=fx__echo pid[rust-legacy]=$p
  fi
  if has node "$TARGETS"; then
    port=$("$LOADGEN" free-port)
    node "$NODE_HUB" --port "$port" --config "$work/one.json" >"$work/node.out" 2>"$work/node.err" &
    p=$!; pids+=("$p")
    "$LOADGEN" wait-ready --base "http://127.0.0.1:$port" --timeout 60
    url[node]=http://127.0.0.1:$port/mcp transport[node]=legacy tool[node]=fx__echo pid[node]=$p
  fi

  measure() { # measure LABEL TARGET ARGS...
    local label=$1 t=$2; shift 2
    "$LOADGEN" run --transport "${transport[$t]}" --url "${url[$t]}" --tool "${tool[$t]}" \
      --pid "${pid[$t]}" --label "$label/$t" --out "$results" "$@" >/dev/null \
      || log "$label/$t reported errors (see the table)"
    sleep 0.5
  }
  if has latency "$WORKLOADS"; then
    for t in $TARGETS; do
      if [ "$t" = direct-stdio ]; then
        "$LOADGEN" run --transport stdio --calls "$LAT_CALLS" --warmup 200 \
          --label latency/direct-stdio --out "$results" -- "$FIXTURE" >/dev/null
        sleep 0.5
      elif [ -n "${url[$t]:-}" ]; then
        measure latency "$t" --calls "$LAT_CALLS" --warmup 200
      fi
    done
  fi
  if has throughput "$WORKLOADS"; then
    for n in $SESSIONS; do
      for t in $TARGETS; do
        if [ -n "${url[$t]:-}" ]; then
          measure "throughput-$n" "$t" --sessions "$n" --duration "$DURATION" --warmup 20
        fi
      done
    done
  fi
  for p in "${pids[@]}"; do stop "$p"; done
  pids=()
fi

# ---- workload 3: fan-in ----
if has fanin "$WORKLOADS"; then
  # BENCH_FANIN_TOOLS counts each upstream's tools, the fixture's own included: `--tools` adds
  # the rest, so 50 x 100 is the 5,000 tools the tools/list target names.
  own=$("$LOADGEN" direct-start --upstreams 1 -- "$FIXTURE" 2>/dev/null |
    sed -n 's/.*"tools":\([0-9]*\).*/\1/p')
  [ -n "$own" ] || { echo "bench: the fixture did not list its tools" >&2; exit 1; }
  extra=$((FANIN_TOOLS - own))
  if [ "$extra" -lt 0 ]; then
    echo "bench: BENCH_FANIN_TOOLS=$FANIN_TOOLS is fewer than the fixture's own $own tools" >&2
    exit 1
  fi
  config "$work/fanin.json" "$FANIN" --tools "$extra"
  direct_json=$("$LOADGEN" direct-start --upstreams "$FANIN" --label fanin/direct --out "$results" \
    -- "$FIXTURE" --tools "$extra")
  tools=$(printf '%s' "$direct_json" | sed -n 's/.*"tools":\([0-9]*\).*/\1/p')
  for t in rust node; do
    has "$t" "$TARGETS" || continue
    port=$("$LOADGEN" free-port)
    if [ "$t" = rust ]; then cmd=("$HUB"); tr=streamable; else cmd=(node "$NODE_HUB"); tr=legacy; fi
    "$LOADGEN" startup --base "http://127.0.0.1:$port" --mcp-url "http://127.0.0.1:$port/mcp" \
      --transport "$tr" --expect-tools "$tools" --list-calls 200 --idle 1 \
      --label "fanin/$t" --out "$results" --log "$work/fanin-$t.log" \
      -- "${cmd[@]}" --port "$port" --config "$work/fanin.json" >/dev/null
    sleep 1
  done
fi

# ---- workload 4: idle footprint ----
if has idle "$WORKLOADS"; then
  config "$work/idle.json" "$IDLE_UPSTREAMS"
  one_json=$("$LOADGEN" direct-start --upstreams 1 -- "$FIXTURE" 2>/dev/null)
  per=$(printf '%s' "$one_json" | sed -n 's/.*"tools":\([0-9]*\).*/\1/p')
  for t in rust node; do
    has "$t" "$TARGETS" || continue
    port=$("$LOADGEN" free-port)
    if [ "$t" = rust ]; then cmd=("$HUB"); tr=streamable; else cmd=(node "$NODE_HUB"); tr=legacy; fi
    "$LOADGEN" startup --base "http://127.0.0.1:$port" --mcp-url "http://127.0.0.1:$port/mcp" \
      --transport "$tr" --expect-tools $((per * IDLE_UPSTREAMS)) --list-calls 0 --idle 3 \
      --label "idle/$t" --out "$results" --log "$work/idle-$t.log" \
      -- "${cmd[@]}" --port "$port" --config "$work/idle.json" >/dev/null
  done
fi

# ---- workload 5: a crowd of sessions holding their GET stream open ----
if has crowd "$WORKLOADS" && has rust "$TARGETS"; then
  config "$work/crowd.json" 1
  port=$("$LOADGEN" free-port)
  # Every session is a connection (two for the calling ones): raise the hub's caps with it. The
  # hub raises its own soft descriptor limit to the hard one; the load generator does too.
  "$HUB" --port "$port" --config "$work/crowd.json" --max-sessions $((CROWD + 16)) \
    --max-sessions-per-client $((CROWD + 16)) --max-connections $((CROWD + CROWD_ACTIVE + 64)) \
    >"$work/crowd.out" 2>"$work/crowd.err" &
  p=$!; pids+=("$p")
  "$LOADGEN" wait-ready --base "http://127.0.0.1:$port" --timeout 30
  "$LOADGEN" crowd --url "http://127.0.0.1:$port/mcp" --sessions "$CROWD" --active "$CROWD_ACTIVE" \
    --duration "$DURATION" --pid "$p" --label "crowd-$CROWD/rust" --out "$results" >/dev/null \
    || log "crowd-$CROWD/rust reported errors (see the table)"
  grep -m1 'descriptor limit' "$work/crowd.err" >&2 || true
  stop "$p"
fi

echo
printf '%s\n' "$machine_report"
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$LOADGEN" report "$results"
