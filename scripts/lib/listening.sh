# Sourced. `listening_port FILE [TRIES]` prints the port a workspace binary announced in FILE
# with `listening on 127.0.0.1:PORT` (the fixture's `--http 0`, the load generator's `relay`),
# waiting up to TRIES x 0.05 s (default 100) for that line; it prints nothing and fails without it.
listening_port() {
  local file=$1 tries=${2:-100} port=""
  for _ in $(seq "$tries"); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$file" 2>/dev/null)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || return 1
  echo "$port"
}
