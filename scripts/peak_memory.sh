#!/usr/bin/env bash
# Peak resident memory (and wall time) of compressing and decompressing one image.
# Usage: scripts/peak_memory.sh IMAGE [BPP] [MODEL]
set -euo pipefail
img=${1:?usage: scripts/peak_memory.sh IMAGE [BPP] [MODEL]}
bpp=${2:-0.5}
model=${3:-tiny}
bin=${DIFFC:-target/release/diffc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
measure() {
    /usr/bin/time -f "%M %e" -o "$tmp/t" "$@" 2>/dev/null
    read -r kb secs < "$tmp/t"
    echo "$((kb / 1024)) MiB peak RSS, ${secs} s"
}
echo "compress   ($bpp bpp, $model): $(measure "$bin" --quiet compress "$img" "$tmp/s.dfc" --bpp "$bpp" --model "$model")"
for m in denoise flow ancestral; do
    echo "decompress ($m): $(measure "$bin" --quiet decompress "$tmp/s.dfc" "$tmp/o.png" --method "$m")"
done
