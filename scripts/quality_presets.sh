#!/usr/bin/env bash
# The README's --quality table: for each Q, `diffc compress -q Q` then `decompress --method
# flow` on every image of a folder; prints bpp and PSNR as median (range). Needs python3 with
# numpy and Pillow for the PSNR.
# Usage: scripts/quality_presets.sh DIR [Q ...]   (default Q: 10 25 50 75 90 100)
set -euo pipefail
dir=${1:?usage: scripts/quality_presets.sh DIR [Q ...]}
shift
qs=${*:-10 25 50 75 90 100}
bin=${DIFFC:-target/release/diffc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for q in $qs; do
    for img in "$dir"/*.png; do
        "$bin" --quiet compress "$img" "$tmp/s.dfc" -q "$q"
        "$bin" --quiet decompress "$tmp/s.dfc" "$tmp/out.png" --method flow
        echo "$q $img $(stat -c %s "$tmp/s.dfc") $tmp/out.png"
        python3 - "$img" "$tmp/out.png" "$q" "$(stat -c %s "$tmp/s.dfc")" >> "$tmp/rows" <<'P'
import sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB"), dtype=np.float64)
b = np.asarray(Image.open(sys.argv[2]).convert("RGB"), dtype=np.float64)
mse = ((a - b) ** 2).mean()
bpp = int(sys.argv[4]) * 8 / (a.shape[0] * a.shape[1])
print(sys.argv[3], bpp, 10 * np.log10(255 ** 2 / mse))
P
    done >&2
done
python3 - "$tmp/rows" <<'P'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
print("| Q | bpp: median (range) | PSNR dB: median (range) |")
print("|---|---|---|")
for q in dict.fromkeys(r[0] for r in rows):
    b = [float(r[1]) for r in rows if r[0] == q]
    p = [float(r[2]) for r in rows if r[0] == q]
    print("| %s | %.3g (%.3g–%.3g) | %.1f (%.1f–%.1f) |"
          % (q, statistics.median(b), min(b), max(b), statistics.median(p), min(p), max(p)))
P
