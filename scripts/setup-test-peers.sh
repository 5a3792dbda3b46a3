#!/usr/bin/env bash
# Installs the real MCP peers the test suite talks to, outside the Rust build:
#   - Node 22 (npm package `node`; the conformance suite needs Node >= 22)
#   - @modelcontextprotocol/server-everything (stdio, Streamable HTTP and SSE upstream)
#   - @modelcontextprotocol/conformance 0.1.16 (the official conformance suite)
#   - @modelcontextprotocol/conformance 0.2.0-alpha.12 (the next suite: 2026-07-28 and the
#     authorization extensions), in its own npm directory so both versions stay installed
#   - @modelcontextprotocol/client 2.4.0 (the TypeScript SDK v2, a 2026-07-28 client), in its
#     own npm directory
#   - mcp-hub 4.2.1 (the Node hub, for side-by-side compatibility checks and benchmarks)
#   - a Python venv with the `mcp` SDK (used as a downstream client) and Selenium (which drives
#     the console in Chromium: scripts/browser-test.sh installs the browser itself)
# Everything goes to $MCP_HUB_PEERS (default: <repo>/.cache/peers). Idempotent and quiet.
# Prints shell exports for the paths the tests read.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
P="${MCP_HUB_PEERS:-$repo/.cache/peers}"
mkdir -p "$P/npm" "$P/node22"
log() { printf '[setup-test-peers] %s\n' "$*" >&2; }

if [ ! -f "$P/npm/node_modules/@modelcontextprotocol/server-everything/package.json" ] \
   || [ ! -f "$P/npm/node_modules/@modelcontextprotocol/conformance/package.json" ] \
   || [ ! -f "$P/npm/node_modules/mcp-hub/package.json" ]; then
  log "installing npm peers into $P/npm"
  (cd "$P/npm" && { [ -e package.json ] || npm init -y >/dev/null; } \
    && npm install --no-audit --no-fund --loglevel=error \
         @modelcontextprotocol/conformance@0.1.16 \
         @modelcontextprotocol/server-everything@2026.8.31 \
         mcp-hub@4.2.1 >/dev/null)
fi
if [ ! -f "$P/npm-next/node_modules/@modelcontextprotocol/conformance/package.json" ]; then
  log "installing conformance 0.2.0-alpha.12 into $P/npm-next"
  mkdir -p "$P/npm-next"
  (cd "$P/npm-next" && { [ -e package.json ] || npm init -y >/dev/null; } \
    && npm install --no-audit --no-fund --loglevel=error \
         @modelcontextprotocol/conformance@0.2.0-alpha.12 >/dev/null)
fi
if [ ! -f "$P/npm-sdk2/node_modules/@modelcontextprotocol/client/package.json" ]; then
  log "installing the TypeScript SDK v2 client into $P/npm-sdk2"
  mkdir -p "$P/npm-sdk2"
  (cd "$P/npm-sdk2" && { [ -e package.json ] || npm init -y >/dev/null; } \
    && npm install --no-audit --no-fund --loglevel=error \
         @modelcontextprotocol/client@2.4.0 >/dev/null)
fi
if [ ! -x "$P/node22/node_modules/node/bin/node" ]; then
  log "installing Node 22 into $P/node22"
  (cd "$P/node22" && { [ -e package.json ] || npm init -y >/dev/null; } \
    && npm install --no-audit --no-fund --loglevel=error node@22 >/dev/null)
fi
if [ ! -x "$P/venv/bin/python" ] || ! "$P/venv/bin/python" -c 'import mcp' 2>/dev/null; then
  log "installing the Python mcp SDK into $P/venv"
  python3 -m venv "$P/venv"
  "$P/venv/bin/pip" install -q --disable-pip-version-check 'mcp>=2.3'
fi
if ! "$P/venv/bin/python" -c 'import selenium' 2>/dev/null; then
  log "installing Selenium into $P/venv"
  "$P/venv/bin/pip" install -q --disable-pip-version-check 'selenium>=4.20,<5'
fi
cat <<EOT
export MCP_HUB_PEERS='$P'
export MCP_HUB_NODE22='$P/node22/node_modules/node/bin/node'
export MCP_HUB_SERVER_EVERYTHING='$P/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js'
export MCP_HUB_CONFORMANCE='$P/npm/node_modules/@modelcontextprotocol/conformance/dist/index.js'
export MCP_HUB_CONFORMANCE_NEXT='$P/npm-next/node_modules/@modelcontextprotocol/conformance/dist/index.js'
export MCP_HUB_NODE_HUB='$P/npm/node_modules/mcp-hub/dist/cli.js'
export MCP_HUB_PYTHON='$P/venv/bin/python'
export MCP_HUB_TS_SDK_DIR='$P/npm-sdk2'
EOT
