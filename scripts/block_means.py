#!/usr/bin/env python3
"""How good is block matching alone? PSNR of the block-matched mean (`src/prior/nonlocal.rs`:
8x8 tiles, each replaced by the mean of the k nearest 8x8 blocks whose corner lies within
`radius` pixels of its own on a grid of `step` pixels, itself included) against the clean photo,
with the matches found on the noisy photo and, as an upper bound, on the clean one.

  scripts/block_means.py [--sigma 15] [--k 8] [--radius 16] [--steps 2,1] [--guide rgb|luma]
                         [--grids 1|2] DIR [IMAGE ...]

--guide luma matches on the sum of the three channels (what the network does since session 17,
on the quantized latent; `rgb`, the default, on all three). --grids 2 adds a second grid of
tiles half a block inside the first (the same matching on the image without its 4-pixel frame),
so that a pixel inside the frame averages two tiles' blocks (`deep-nl` since session 17).

Same seeded noise for every image (NumPy, seed 0, in the codec's [-1, 1] scale). This is an
analysis aid in float; the network's own matching is the Rust one.
Needs: pip install numpy pillow
"""
import argparse
import glob
import os

import numpy as np
from PIL import Image

BLOCK = 8


def block_mean(z, guide, radius, step, k):
    """The block-matched mean of z (3, h, w); matches by squared distance on `guide`."""
    _, h, w = z.shape
    th, tw = h // BLOCK, w // BLOCK
    offs = [(dy, dx) for dy in range(-radius, radius + 1, step)
            for dx in range(-radius, radius + 1, step)]
    ty = np.arange(th)[:, None] * BLOCK
    tx = np.arange(tw)[None, :] * BLOCK
    pad = ((0, 0), (radius, radius + BLOCK), (radius, radius + BLOCK))
    gp, zp = np.pad(guide, pad), np.pad(z, pad)
    shifted = lambda a, dy, dx: a[:, radius + dy:radius + dy + h, radius + dx:radius + dx + w]
    dist = np.full((len(offs), th, tw), np.inf)
    for i, (dy, dx) in enumerate(offs):
        d = ((shifted(gp, dy, dx) - guide) ** 2).sum(0)
        d = d[:th * BLOCK, :tw * BLOCK].reshape(th, BLOCK, tw, BLOCK).sum((1, 3))
        inside = (ty + dy >= 0) & (ty + dy + BLOCK <= h) & (tx + dx >= 0) & (tx + dx + BLOCK <= w)
        dist[i] = np.where(inside, d, np.inf)
        if dy == 0 and dx == 0:
            dist[i] = -1.0  # the tile itself, always first
    chosen = np.argsort(dist, axis=0, kind="stable")[:k]
    total = np.zeros_like(z)
    count = np.zeros((th, tw))
    tile = np.ones((BLOCK, BLOCK))
    for i, (dy, dx) in enumerate(offs):
        sel = (chosen == i).any(0) & np.isfinite(dist[i])
        if sel.any():
            count += sel
            total[:, :th * BLOCK, :tw * BLOCK] += (
                shifted(zp, dy, dx)[:, :th * BLOCK, :tw * BLOCK] * np.kron(sel, tile)[None])
    out = z.copy()
    out[:, :th * BLOCK, :tw * BLOCK] = total[:, :th * BLOCK, :tw * BLOCK] / np.kron(count, tile)[None]
    return out


def two_grids(z, guide, radius, step, k):
    """block_mean with a second grid half a block inside the first, averaged where it covers."""
    o = BLOCK // 2
    _, h, w = z.shape
    out = block_mean(z, guide, radius, step, k)
    inner = block_mean(z[:, o:h - o, o:w - o], guide[:, o:h - o, o:w - o], radius, step, k)
    out[:, o:h - o, o:w - o] = (out[:, o:h - o, o:w - o] + inner) / 2
    return out


def psnr(a, b):
    return 10 * np.log10(4.0 / np.mean((a - b) ** 2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("images", nargs="*")
    ap.add_argument("--sigma", type=float, default=15.0)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--radius", type=int, default=16)
    ap.add_argument("--steps", default="2,1")
    ap.add_argument("--guide", choices=("rgb", "luma"), default="rgb")
    ap.add_argument("--grids", type=int, choices=(1, 2), default=1)
    a = ap.parse_args()
    files = [os.path.join(a.dir, f) for f in a.images] or sorted(glob.glob(os.path.join(a.dir, "*.png")))
    steps = [int(s) for s in a.steps.split(",")]
    rng = np.random.default_rng(0)
    head = ["image", "noisy"] + [f"step{s}_{m}" for s in steps for m in ("noisy_match", "clean_match")]
    print(" ".join(f"{c:>18}" for c in head))
    for f in files:
        x = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 127.5 - 1
        z = x + a.sigma / 127.5 * rng.standard_normal(x.shape)
        row = [psnr(z, x)]
        for s in steps:
            for guide in (z, x):
                if a.guide == "luma":
                    guide = guide.sum(0, keepdims=True)
                mean = two_grids if a.grids == 2 else block_mean
                row.append(psnr(mean(z, guide, a.radius, s, a.k), x))
        print(f"{os.path.basename(f):>18} " + " ".join(f"{v:18.2f}" for v in row))


if __name__ == "__main__":
    main()
