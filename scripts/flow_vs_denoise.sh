#!/usr/bin/env bash
# Side-by-side crop (original | flow | denoise | JPEG | WebP) of one image coded at a low rate,
# for the model card. JPEG (libjpeg-turbo `cjpeg -optimize -sample 2x2`, the highest quality that fits) and
# WebP (`cwebp -size`) get at most the diffc stream's bytes; they are left out when their
# encoders are not installed. Crops are enlarged 2x with nearest neighbour.
# Usage: scripts/flow_vs_denoise.sh IMAGE BPP X Y W H OUT.png   (MODEL=name picks the prior)
set -euo pipefail
img=${1:?usage: scripts/flow_vs_denoise.sh IMAGE BPP X Y W H OUT.png}
bpp=$2 x=$3 y=$4 w=$5 h=$6 out=$7
bin=${DIFFC:-target/release/diffc}
sbs=${SIDE_BY_SIDE:-target/release/examples/side_by_side}
model=${MODEL:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" --quiet compress "$img" "$tmp/s.dfc" --bpp "$bpp" ${model:+--model "$model"}
bytes=$(stat -c %s "$tmp/s.dfc")
panels=("$img")
names="original"
for m in flow denoise; do
    "$bin" --quiet decompress "$tmp/s.dfc" "$tmp/$m.png" --method "$m"
    panels+=("$tmp/$m.png")
    names+=" | $m"
done
# cjpeg reads PPM, not PNG: through a lossless WebP when the WebP tools are there.
if command -v cwebp >/dev/null && command -v dwebp >/dev/null; then
    cwebp -quiet -lossless "$img" -o "$tmp/src.webp" && dwebp -quiet -ppm "$tmp/src.webp" -o "$tmp/src.ppm"
fi
if command -v cjpeg >/dev/null && command -v djpeg >/dev/null && [ -f "$tmp/src.ppm" ]; then
    best=""
    for q in $(seq 95 -1 1); do
        cjpeg -optimize -sample 2x2 -quality "$q" "$tmp/src.ppm" >"$tmp/j.jpg" 2>/dev/null
        if [ "$(stat -c %s "$tmp/j.jpg")" -le "$bytes" ]; then best=$q; break; fi
    done
    if [ -n "$best" ]; then
        djpeg -pnm "$tmp/j.jpg" >"$tmp/jpeg.ppm"
        panels+=("$tmp/jpeg.ppm")
        names+=" | JPEG q$best ($(stat -c %s "$tmp/j.jpg") B)"
    fi
fi
if command -v cwebp >/dev/null && command -v dwebp >/dev/null; then
    cwebp -quiet -m 6 -size "$bytes" "$img" -o "$tmp/w.webp"
    if [ "$(stat -c %s "$tmp/w.webp")" -le "$bytes" ]; then
        dwebp -quiet "$tmp/w.webp" -o "$tmp/webp.png"
        panels+=("$tmp/webp.png")
        names+=" | WebP ($(stat -c %s "$tmp/w.webp") B)"
    fi
fi
"$sbs" "$out" "$x" "$y" "$w" "$h" 2 "${panels[@]}"
echo "wrote $out ($bytes bytes coded; $names)"
