#!/usr/bin/env bash
# API stability and packaging of the library crates (the crates an embedding program depends on):
#   1. `cargo package` succeeds for each of them, packaged together so that their path
#      dependencies resolve to each other (no upload, no verify build: the tests cover the code);
#   2. once a release tag `v*` exists, cargo-semver-checks compares each against the last one
#      (installed here when missing). Before the first tag there is nothing to compare against,
#      and the step says so.
set -euo pipefail
cd "$(dirname "$0")/.."

LIBS=(mcp-hub-protocol mcp-hub-config mcp-hub-cluster mcp-hub-transport mcp-hub-auth mcp-hub-registry mcp-hub-api mcp-hub-core)
args=()
for c in "${LIBS[@]}"; do args+=(-p "$c"); done

echo "== cargo package (${LIBS[*]})"
cargo package --no-verify --allow-dirty --quiet "${args[@]}"
for c in "${LIBS[@]}"; do
  f=$(ls target/package/"$c"-*.crate 2>/dev/null | head -1)
  [ -n "$f" ] || { echo "no package for $c"; exit 1; }
  echo "packaged $(basename "$f")"
done

tag=$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true)
if [ -z "$tag" ]; then
  echo "== cargo-semver-checks: no release tag (v*) yet, nothing to compare against; skipped"
  exit 0
fi
echo "== cargo-semver-checks against $tag"
if ! command -v cargo-semver-checks >/dev/null 2>&1; then
  cargo install cargo-semver-checks --locked --quiet
fi
cargo semver-checks check-release --baseline-rev "$tag" "${args[@]}"
