#!/usr/bin/env bash
# The embedding examples, run as a user would: the config crate on its own (several files, the
# real environment, a `${cmd:}`; no resolved secret may be printed), and the core crate embedded
# with its own listener and mounted in an axum application, against the fixture server.
# Needs the binaries built (`cargo build --workspace --bins`).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== config crate standalone: examples/resolve"
secret=tok-ci-$RANDOM$RANDOM$RANDOM
out=$(EXAMPLE_SEARCH_TOKEN=$secret cargo run -q --locked -p mcp-hub-config --example resolve -- \
  crates/config/examples/resolve/global.json crates/config/examples/resolve/project.json5)
echo "$out"
grep -qF 'Authorization: Bearer [redacted]' <<<"$out"
grep -qF 'DB_URL=postgres://app:[redacted]@localhost/app' <<<"$out"
grep -qF "command: db-mcp" <<<"$out"
if grep -qF -e "$secret" -e example-db-password <<<"$out"; then
  echo "a resolved secret was printed"
  exit 1
fi
# A server that does not resolve makes it fail, naming the variable, not a value.
bad=$(mktemp)
trap 'rm -f "$bad"' EXIT
echo '{"mcpServers": {"x": {"command": "c", "env": {"T": "${MCP_HUB_UNSET_FOR_CHECK}"}}}}' >"$bad"
if err=$(cargo run -q --locked -p mcp-hub-config --example resolve -- "$bad" 2>&1); then
  echo "an unresolvable server did not fail"
  exit 1
fi
grep -qF MCP_HUB_UNSET_FOR_CHECK <<<"$err"

echo "== core embedded: examples/embed and examples/embed_axum"
cargo run -q --locked -p mcp-hub-core --example embed -- target/debug/mcp-hub-fixture
out=$(cargo run -q --locked -p mcp-hub-core --example embed_axum -- target/debug/mcp-hub-fixture)
echo "$out"
grep -qF 'GET /hub/api/servers: "demo" is "connected"' <<<"$out"
