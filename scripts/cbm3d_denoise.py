#!/usr/bin/env python3
"""CBM3D as a denoising baseline on the same terms as `diffc eval --denoise`.

Adds seeded Gaussian noise (8-bit units, not clipped) to every image of DIR, runs
`bm3d.bm3d_rgb` with the true sigma, rounds to 8 bits and prints CSV rows
`image,sigma,noisy_psnr,psnr,seconds` plus the mean PSNR per sigma. The noise realisation differs
from diffc's (numpy's generator, not the codec's); on 768x512 photos that moves PSNR by ~0.01 dB.
For exactly diffc's noise, `diffc eval --denoise S --save-images SAVE` and
scripts/denoise_gap.py.

Needs: pip install numpy pillow bm3d   (~40 s per 768x512 image at sigma 25 on this CPU)
Usage: python3 scripts/cbm3d_denoise.py DIR [SIGMAS] [LIMIT] > cbm3d.csv
"""
import sys, time, glob, os
import numpy as np
from PIL import Image
import bm3d

d = sys.argv[1]
sigmas = [float(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "15,25,50").split(",")]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
files = sorted(f for f in glob.glob(os.path.join(d, "*"))
               if f.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".ppm", ".bmp")))[:limit]
print("image,sigma,noisy_psnr,psnr,seconds")
means = {}
for i, f in enumerate(files):
    x = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64)
    for j, s in enumerate(sigmas):
        rng = np.random.default_rng(1000 * i + j)
        y = x + s * rng.standard_normal(x.shape)
        t = time.perf_counter()
        out = bm3d.bm3d_rgb(y / 255.0, s / 255.0) * 255.0
        dt = time.perf_counter() - t
        out = np.clip(np.round(out), 0, 255)
        psnr = lambda a: 10 * np.log10(255.0 ** 2 / np.mean((a - x) ** 2))
        row = (os.path.basename(f), s, psnr(y), psnr(out), dt)
        print("%s,%g,%.3f,%.3f,%.1f" % row, flush=True)
        means.setdefault(s, []).append(row[3])
for s, v in sorted(means.items()):
    print("# sigma %g: mean CBM3D PSNR %.2f dB over %d images" % (s, np.mean(v), len(v)), file=sys.stderr)
