#!/usr/bin/env bash
# Side-by-side crop (original | denoise | flow | ancestral) of one image coded at a low rate,
# for the model card. Crops are enlarged 2x with nearest neighbour.
# Usage: scripts/flow_vs_denoise.sh IMAGE BPP X Y W H OUT.png
set -euo pipefail
img=${1:?usage: scripts/flow_vs_denoise.sh IMAGE BPP X Y W H OUT.png}
bpp=$2 x=$3 y=$4 w=$5 h=$6 out=$7
bin=${DIFFC:-target/release/diffc}
sbs=${SIDE_BY_SIDE:-target/release/examples/side_by_side}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" --quiet compress "$img" "$tmp/s.dfc" --bpp "$bpp"
for m in denoise flow ancestral; do
    "$bin" --quiet decompress "$tmp/s.dfc" "$tmp/$m.png" --method "$m"
done
"$sbs" "$out" "$x" "$y" "$w" "$h" 2 "$img" "$tmp/denoise.png" "$tmp/flow.png" "$tmp/ancestral.png"
echo "wrote $out ($(stat -c %s "$tmp/s.dfc") bytes coded; original | denoise | flow | ancestral)"
