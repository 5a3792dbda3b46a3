# Sourced by the scripts that run a peer against the hub (conformance*.sh): starts the hub and
# the workspace fixture on ephemeral loopback ports, each with its own HOME and state under
# $work, and stops them all on exit. The caller sets `work` (a temporary directory, removed on
# exit) and `hub` (the binary), and MCP_HUB_FIXTURE for start_fixture.

. "$(dirname "${BASH_SOURCE[0]}")/listening.sh"

started_pids=()
stop_started() {
  local p
  for p in "${started_pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap stop_started EXIT

# start_hub NAME CONFIG [TRIES]: a hub whose logs are $work/.hub-NAME/{stdout,stderr}. Sets
# `port`, then waits up to TRIES x 0.1 s (default 100) for a server to be connected; it does not
# fail if none is, since a scenario may need a server that connects late.
start_hub() {
  local d="$work/.hub-$1" tries="${3:-100}"
  mkdir -p "$d"
  HOME="$d/home" XDG_STATE_HOME="$d/state" XDG_DATA_HOME="$d/data" \
    "$hub" --port 0 --config "$2" >"$d/stdout" 2>"$d/stderr" &
  started_pids+=("$!")
  port=""
  for _ in $(seq 100); do
    port="$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$d/stdout" | head -1)"
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "the hub did not start:"; cat "$d/stderr"; exit 1; }
  for _ in $(seq "$tries"); do
    curl -fsS "http://127.0.0.1:$port/api/servers" 2>/dev/null | grep -q '"status":"connected"' && break
    sleep 0.1
  done
}

# start_fixture NAME ARGS...: the workspace fixture over Streamable HTTP (`--http 0 ARGS`), logs
# in $work/.fixture-NAME.{out,err}. Sets `fx_port`.
start_fixture() {
  local name="$1"
  shift
  "$MCP_HUB_FIXTURE" --http 0 "$@" >"$work/.fixture-$name.out" 2>"$work/.fixture-$name.err" &
  started_pids+=("$!")
  fx_port=$(listening_port "$work/.fixture-$name.out" 200) \
    || { echo "the fixture did not start:"; cat "$work/.fixture-$name.err"; exit 1; }
}
