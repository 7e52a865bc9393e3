#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 300) and append a line per target to
# fuzz/LOG.md-style output on stdout. Needs cargo-fuzz (`cargo install cargo-fuzz`); on a
# stable toolchain it runs with RUSTC_BOOTSTRAP=1.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
shift || true
targets=${*:-header stream_decode round_trip}
for t in $targets; do
    mkdir -p "corpus/$t"
    cp -n ../tests/fuzz_regressions/"$t"/* "corpus/$t/" 2>/dev/null || true
    log=$(mktemp)
    set +e
    RUSTC_BOOTSTRAP=1 cargo fuzz run -O --debug-assertions "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 > "$log" 2>&1
    code=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "$(date -u +%F) $t: ${secs}s, exit $code, executions ${execs}, corpus $(ls "corpus/$t" | wc -l)"
    if [ "$code" -ne 0 ]; then
        grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5
        ls artifacts/"$t"/ 2>/dev/null | head
    fi
    rm -f "$log"
done
