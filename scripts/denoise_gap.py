#!/usr/bin/env python3
"""Where the prior loses to CBM3D as a denoiser, on the very same noise.

`diffc eval --data DATA --denoise SIGMAS --save-images SAVE` writes every noisy image
(NAME.sS.noisy.pfm, NAME the photo's file name) and the prior's result (NAME.sS.png). This runs
`bm3d.bm3d_rgb` on each noisy image (cached as NAME.sS.cbm3d.png beside it, redone when the
noisy image is newer) and splits both errors against the clean photo DATA/NAME:

  - by edge strength: the largest luma gradient of the clean photo within 2 pixels (8-bit
    units per pixel), in bands; each band's share of the pixels, both MSEs and the band's
    contribution to the difference of the whole image's MSE;
  - by colour: luma (R+G+B)/3 and the two opponent channels (R-B)/2, (R-2G+B)/4 (CBM3D's
    own colour transform, up to scale).

Needs: pip install numpy pillow bm3d   (~40-60 s of CBM3D per 768x512 image)
Usage: python3 scripts/denoise_gap.py DATA SAVE [NAME ...]
"""
import glob
import os
import sys

import numpy as np
from PIL import Image

BANDS = [(0, 2), (2, 5), (5, 15), (15, 40), (40, np.inf)]
OPPONENT = np.array([[1 / 3, 1 / 3, 1 / 3], [1 / 2, 0, -1 / 2], [1 / 4, -1 / 2, 1 / 4]])


def read_pfm(path):
    with open(path, "rb") as f:
        kind = f.readline().strip()
        w, h = map(int, f.readline().split())
        scale = float(f.readline())
        c = 3 if kind == b"PF" else 1
        v = np.frombuffer(f.read(), dtype="<f4" if scale < 0 else ">f4").reshape(h, w, c)
    return v[::-1].astype(np.float64)  # rows bottom to top


def cbm3d(noisy_pfm, sigma):
    out = noisy_pfm[: -len(".noisy.pfm")] + ".cbm3d.png"
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(noisy_pfm):
        import bm3d

        y = read_pfm(noisy_pfm)
        x = bm3d.bm3d_rgb(y, sigma / 255.0)
        Image.fromarray(np.clip(np.round(x * 255), 0, 255).astype(np.uint8)).save(out)
    return np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)


def edge_strength(clean):
    gy, gx = np.gradient(clean.mean(2))
    g = np.pad(np.hypot(gx, gy), 2, mode="edge")
    h, w = clean.shape[:2]
    return np.max([g[dy:dy + h, dx:dx + w] for dy in range(5) for dx in range(5)], axis=0)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    data, save = sys.argv[1], sys.argv[2]
    only = set(sys.argv[3:])
    psnr = lambda mse: 10 * np.log10(255.0 ** 2 / mse)
    for noisy in sorted(glob.glob(os.path.join(save, "*.noisy.pfm"))):
        base = os.path.basename(noisy)[: -len(".noisy.pfm")]
        name, s = base.rsplit(".s", 1)
        if only and name not in only:
            continue
        sigma = float(s)
        src = os.path.join(data, name)
        if not os.path.isfile(src):
            sys.exit("%s: no clean photo %s for it" % (noisy, src))
        clean = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64)
        ours = np.asarray(Image.open(os.path.join(save, base + ".png")).convert("RGB"),
                          dtype=np.float64)
        theirs = cbm3d(noisy, sigma)
        eo, eb = ((ours - clean) ** 2).mean(2), ((theirs - clean) ** 2).mean(2)
        print("%s sigma %g: prior %.2f dB, CBM3D %.2f dB" % (name, sigma, psnr(eo.mean()),
                                                           psnr(eb.mean())))
        g = edge_strength(clean)
        for lo, hi in BANDS:
            m = (g >= lo) & (g < hi)
            if m.any():
                print("  edge %4g..%-4g %5.1f%% of pixels: MSE %7.2f vs %7.2f, %+6.2f of the "
                      "image's MSE" % (lo, hi, 100 * m.mean(), eo[m].mean(), eb[m].mean(),
                                       (eo[m].sum() - eb[m].sum()) / eo.size))
        po = (((ours - clean) @ OPPONENT.T) ** 2).mean((0, 1))
        pb = (((theirs - clean) @ OPPONENT.T) ** 2).mean((0, 1))
        print("  MSE luma / R-B / R-2G+B: %.2f / %.2f / %.2f vs %.2f / %.2f / %.2f"
              % (*po, *pb))


if __name__ == "__main__":
    main()
