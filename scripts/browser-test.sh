#!/usr/bin/env bash
# Drives the web console (/ui) in a real headless Chromium against the real hub binary and real
# upstreams (scripts/browser_test.py), with an OAuth-protected upstream and its authorization
# server supplied by the official conformance suite's client runner (scenario
# auth/metadata-default): the console's "Authorize" button completes that flow.
# Installs the Debian packages `chromium` and `chromium-driver` with apt-get when they are
# missing; when that is impossible (not root, no apt-get, no package) it says so and skips.
# Screenshots of every step go to $MCP_HUB_SCREENSHOTS (default: a new temporary directory),
# printed at the start and the end.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MCP_HUB_NODE22:?run scripts/setup-test-peers.sh first}" "${MCP_HUB_CONFORMANCE:?}" "${MCP_HUB_PYTHON:?}"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium and chromium-driver (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 || true
  fi
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "SKIP browser test: Chromium and chromedriver are not installed and could not be (the Debian packages chromium and chromium-driver, installed as root with apt-get)"
  exit 0
fi
if ! "$MCP_HUB_PYTHON" -c 'import selenium' 2>/dev/null; then
  echo "browser test: Selenium is missing from $MCP_HUB_PYTHON (run scripts/setup-test-peers.sh)" >&2
  exit 1
fi

target="${CARGO_TARGET_DIR:-target}/debug"
[[ "$target" = /* ]] || target="$PWD/$target"
export MCP_HUB_BIN="$target/mcp-hub" MCP_HUB_FIXTURE="$target/mcp-hub-fixture"
export MCP_HUB_SCREENSHOTS="${MCP_HUB_SCREENSHOTS:-$(mktemp -d "${TMPDIR:-/tmp}/mcp-hub-console-XXXXXX")}"
export NODE_OPTIONS="--require=$PWD/scripts/loopback-only.cjs ${NODE_OPTIONS:-}"
# Selenium must use the chromedriver given, never download one.
export SE_OFFLINE=true
echo "console screenshots: $MCP_HUB_SCREENSHOTS"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
"$MCP_HUB_NODE22" "$MCP_HUB_CONFORMANCE" client --scenario auth/metadata-default --timeout 300000 -o "$out" \
  --command "$MCP_HUB_PYTHON $PWD/scripts/browser_test.py" >"$out/runner.log" 2>&1 || status=$?
stderr="$(find "$out" -name stderr.txt | head -1)"
if [ "$status" = 0 ] && grep -q 'OVERALL: PASSED' "$out/runner.log" \
   && [ -n "$stderr" ] && grep -q 'all console checks passed' "$stderr"; then
  grep -h '^\[browser\] screenshot' "$stderr" | sed 's/^\[browser\] /  /'
  echo "browser test passed: $(ls "$MCP_HUB_SCREENSHOTS" | wc -l) screenshots in $MCP_HUB_SCREENSHOTS"
else
  echo "browser test FAILED (runner exit $status)"
  tail -n 40 "$out/runner.log" | sed 's/^/     /'
  [ -n "$stderr" ] && tail -n 60 "$stderr" | sed 's/^/     /'
  exit 1
fi
