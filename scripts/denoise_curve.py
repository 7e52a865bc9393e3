#!/usr/bin/env python3
"""Denoising PSNR of a training run against its training steps, and where the trend goes.

  scripts/denoise_curve.py measure [--arch tiny] [--csv models/denoise-curve-tiny.csv] [CKPT ...]
      Every training checkpoint committed in git history (`models/tiny.ckpt.safetensors`),
      or the given checkpoint files: its EMA weights (`examples/ckpt_weights`) are measured
      as a Gaussian denoiser on the 12 dev photos (`diffc eval --denoise 15,25,50`), and the
      mean PSNR per sigma is written to the CSV (step, trainer minutes, sigma, psnr).
  scripts/denoise_curve.py fit [--csv ...] [--cbm3d models/cbm3d-dev12.csv]
      Fits MSE(steps) = E + k steps^-b per sigma (a scaling law in the error, least squares in
      log-MSE over a grid of b) and a straight line in log2(steps) over the last four checkpoints, and prints the steps
      each fit needs to reach CBM3D's mean PSNR on the same photos.

Needs release builds of `diffc` and `examples/ckpt_weights` (`cargo build --release --features
train --examples`) and NumPy. The minutes are the trainer's counter, which includes paused time
(see models/README.md); steps are the comparable unit (batch 16 of 64x64 crops throughout).
"""
import argparse
import csv
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGMAS = (15, 25, 50)


def ckpt_meta(path):
    """(step, trainer minutes) from a checkpoint's meta tensors."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8 : 8 + n])

    def raw(k):
        o = h[k]["data_offsets"]
        return b[8 + n + o[0] : 8 + n + o[1]]

    st = struct.unpack("<10I", raw("meta.state"))
    return st[0] | st[1] << 32, struct.unpack("<d", raw("meta.seconds"))[0] / 60


def committed_checkpoints(tmp):
    log = subprocess.run(
        ["git", "log", "--format=%h", "--", "models/tiny.ckpt.safetensors"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    out = []
    for h in reversed(log):
        path = os.path.join(tmp, f"{h}.ckpt.safetensors")
        with open(path, "wb") as f:
            f.write(subprocess.run(
                ["git", "show", f"{h}:models/tiny.ckpt.safetensors"],
                cwd=ROOT, capture_output=True, check=True,
            ).stdout)
        out.append(path)
    return out


def measure(args):
    tmp = tempfile.mkdtemp(prefix="diffc-curve-")
    ckpts = args.ckpt or committed_checkpoints(tmp)
    done = set()
    if os.path.exists(args.csv):
        done = {int(r["step"]) for r in csv.DictReader(open(args.csv))}
    new = not os.path.exists(args.csv)
    with open(args.csv, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["step", "minutes", "sigma", "psnr"])
        for c in ckpts:
            try:
                step, minutes = ckpt_meta(c)
            except (KeyError, ValueError, struct.error) as e:
                print(f"{c}: not a training checkpoint ({e}); skipped", file=sys.stderr)
                continue
            if step in done:
                continue
            weights = os.path.join(tmp, f"s{step}.safetensors")
            subprocess.run([os.path.join(ROOT, "target/release/examples/ckpt_weights"),
                            c, weights, "ema"], check=True, capture_output=True)
            out = os.path.join(tmp, f"s{step}.csv")
            subprocess.run([os.path.join(ROOT, "target/release/diffc"), "eval", "--quiet",
                            "--data", args.data, "--denoise", ",".join(map(str, SIGMAS)),
                            "--model", args.arch, "--model-file", weights, "--out", out],
                           check=True, stdout=subprocess.DEVNULL)
            rows = list(csv.DictReader(open(out)))
            for s in SIGMAS:
                p = [float(r["psnr"]) for r in rows if int(r["sigma"]) == s]
                w.writerow([step, f"{minutes:.1f}", s, f"{np.mean(p):.3f}"])
                print(f"step {step} ({minutes:.0f} min): sigma {s}: {np.mean(p):.2f} dB")
            f.flush()
            done.add(step)


def fit(args):
    rows = list(csv.DictReader(open(args.csv)))
    ref = {}
    for r in csv.DictReader(open(args.cbm3d)):
        ref.setdefault(int(r["sigma"]), []).append(float(r["psnr"]))
    print(f"fits over checkpoints from step {args.min_step}")
    print(f"{'sigma':>5} {'CBM3D':>6} {'last':>6} | power law in MSE: limit dB, exponent,"
          f" steps to CBM3D | log-linear (last 4): dB per doubling, steps to CBM3D")
    for s in SIGMAS:
        pts = sorted((int(r["step"]), float(r["psnr"])) for r in rows
                     if int(r["sigma"]) == s and int(r["step"]) >= args.min_step)
        x = np.array([p[0] for p in pts], float) / 1e4
        y = np.array([p[1] for p in pts])
        target = float(np.mean(ref[s]))
        # Scaling-law form in the error itself: MSE(steps) = E + k steps^-b (MSE in units of
        # 255^2, from the mean PSNR; least squares in log-MSE over a grid of b).
        mse = 10 ** (-y / 10)
        best = None
        for b in np.linspace(0.02, 3.0, 597):
            A = np.stack([np.ones_like(x), x ** -b], 1)
            coef, *_ = np.linalg.lstsq(A, mse, rcond=None)
            if coef[0] <= 0 or coef[1] <= 0:
                continue
            err = float(np.sum((np.log(A @ coef) - np.log(mse)) ** 2))
            if best is None or err < best[0]:
                best = (err, coef[0], coef[1], b)
        if best is None:
            print(f"{s:>5} {target:6.2f} {y[-1]:6.2f} | no fit with a positive limit")
            continue
        _, e_inf, k, b = best
        limit = -10 * np.log10(e_inf)
        t_mse = 10 ** (-target / 10)
        need_s = f"{((t_mse - e_inf) / k) ** (-1 / b) * 1e4:,.0f}" if t_mse > e_inf else "never"
        line = np.polyfit(np.log2(x[-4:]), y[-4:], 1)
        need_lin = 2 ** ((target - line[1]) / line[0]) * 1e4 if line[0] > 0 else float("inf")
        print(f"{s:>5} {target:6.2f} {y[-1]:6.2f} | {limit:12.2f} {b:5.2f} {need_s:>15}"
              f" | {line[0]:8.2f} {need_lin:>14,.0f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["measure", "fit"])
    ap.add_argument("ckpt", nargs="*")
    ap.add_argument("--csv", default=os.path.join(ROOT, "models/denoise-curve-tiny.csv"))
    ap.add_argument("--cbm3d", default=os.path.join(ROOT, "models/cbm3d-dev12.csv"))
    ap.add_argument("--data", default=os.path.join(ROOT, "../shared/data/dev"))
    ap.add_argument("--arch", default="tiny")
    ap.add_argument("--min-step", type=int, default=6000,
                    help="fit only checkpoints from this step (the recipe settled at 1404)")
    args = ap.parse_args()
    measure(args) if args.mode == "measure" else fit(args)


if __name__ == "__main__":
    main()
