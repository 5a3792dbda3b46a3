#!/usr/bin/env bash
# Runs every cargo-fuzz target of tests/fuzz for a short, bounded time (default 15 s each).
#
#   scripts/fuzz-smoke.sh                 # all targets, 15 s each
#   FUZZ_SECS=600 scripts/fuzz-smoke.sh sse_decode   # one target, longer
#
# Works on the stable toolchain (`-s none`: coverage-guided, no sanitizer). Installs cargo-fuzz
# when it is missing. A crash leaves its input in tests/fuzz/artifacts/<target>/ and fails the
# script; reproduce with `cargo fuzz run --fuzz-dir tests/fuzz -s none <target> <file>`.
set -euo pipefail

cd "$(dirname "$0")/.."
secs="${FUZZ_SECS:-15}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(jsonrpc_decode sse_decode config_load placeholder_resolve upstream_response params_rename)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# The fuzz workspace has its own target dir; a CARGO_TARGET_DIR shared with the main
# workspace would mix instrumented and plain builds.
unset CARGO_TARGET_DIR
cargo fuzz build --fuzz-dir tests/fuzz -s none

for t in "${targets[@]}"; do
    # Generated inputs go to a scratch corpus; the committed seeds (corpus/<t>/seed-*) are read.
    scratch="tests/fuzz/corpus/$t"
    mkdir -p "$scratch"
    echo "== $t (${secs}s)"
    # -rss_limit_mb and -malloc_limit_mb make "allocates without bound" a failure too.
    log="$(mktemp)"
    status=0
    cargo fuzz run --fuzz-dir tests/fuzz -s none "$t" "$scratch" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=512 -timeout=10 \
        -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|==[0-9]+== ERROR)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        echo "FAILED: $t (exit $status); a crashing input is in tests/fuzz/artifacts/$t" >&2
        exit 1
    fi
    rm -f "$log"
done
echo "fuzz smoke: ${#targets[@]} targets, ${secs}s each, no crash"
