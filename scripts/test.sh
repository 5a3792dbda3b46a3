#!/usr/bin/env bash
# The test command of the README. On a fresh machine it installs the real MCP peers the tests talk
# to (Node 22, server-everything, the conformance suite, the Node mcp-hub, the Python `mcp` SDK;
# see scripts/setup-test-peers.sh), builds every binary, and runs:
#   1. the unit, integration and end-to-end tests (cargo nextest, or cargo test when nextest is absent)
#   2. the doc tests, and the embedding examples (scripts/embed-check.sh)
#   3. the official MCP conformance suite against the hub's /mcp (scripts/conformance.sh), and its
#      2026-07-28 (stateless) requirements directly against the fixture and through the hub
#      (scripts/conformance-modern.sh)
#   4. the Python SDK as a client through the hub (scripts/py-client.sh)
#   5. the stdio door: the Python SDK and the conformance client scenarios through `mcp-hub stdio`
#      (scripts/stdio-client.sh)
#   6. the web console driven in headless Chromium (scripts/browser-test.sh; skipped, saying so,
#      when Chromium cannot be installed)
#   7. a real Prometheus scraping /metrics during a short load run, PromQL and promtool checks
#      (scripts/prometheus-test.sh; skipped, saying so, when Debian's prometheus cannot be installed)
#   8. cluster mode against a real Redis and HAProxy: the cluster end-to-end tests and the
#      examples/cluster deployment (scripts/cluster-test.sh; skipped, saying so, when Debian's
#      redis-server and haproxy cannot be installed)
#   plus a benchmark smoke run and a short run of every fuzz target
# Set MCP_HUB_SKIP_PEERS=1 to run only the hermetic Rust tests (no downloads).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${MCP_HUB_SKIP_PEERS:-0}" != 1 ]; then
  eval "$(scripts/setup-test-peers.sh)"
fi

echo "== cargo build (all binaries: the hub and the fixture server the tests spawn)"
cargo build --workspace --bins --locked

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile ci
else
  cargo test --workspace --locked
fi

echo "== doc tests"
cargo test --doc --workspace --locked

echo "== embedding examples (config crate standalone, hub embedded and mounted in axum)"
bash scripts/embed-check.sh

echo "== benchmark smoke (bench binaries build; a 2-second load-generator run)"
bash scripts/bench-smoke.sh

echo "== fuzz smoke (every target, briefly)"
FUZZ_SECS="${FUZZ_SECS:-10}" bash scripts/fuzz-smoke.sh

if [ "${MCP_HUB_SKIP_PEERS:-0}" != 1 ]; then
  for s in conformance conformance-modern conformance-client py-client stdio-client browser-test prometheus-test cluster-test; do
    if [ -x "scripts/$s.sh" ]; then
      echo "== scripts/$s.sh"
      bash "scripts/$s.sh"
    fi
  done
fi
echo "== all tests passed"
