#!/usr/bin/env python3
"""Cross-check the Rust codec against the Python reference decoder on fresh streams.

    python3 scripts/reference_crosscheck.py [--bin target/release/diffc] [--skip-self-check]
                                            [--gauss-only]

For each case: `diffc compress --model M` a fixture, then decode the stream (whole, and cut
in the middle of a packet) with `diffc decompress --method M` and with
`spec/reference/decode.py --method M`, both with their default options otherwise, and require
the 8-bit samples to be identical. Models: the closed-form `gauss` prior, and the integer
network `tiny-int` (spec/integer-network.md) on a 64x48 crop and a small gray image, whose
reference (spec/reference/intnet.py) needs NumPy; `--gauss-only` leaves those out. Also runs
`decode.py --self-check` and `intnet.py --self-check` (the pinned examples and known answers).
Exits non-zero on the first difference. Standard library only (plus NumPy in the reference
for tiny-int); runs in CI (.ci/run).

What it proves beyond the pinned examples: the encoder as built today writes streams that an
independent decoder of spec/ reads, and the two decoders' defaults (method, flow_steps,
lambda_end) agree, so `diffc decompress IN OUT` is reproducible from the spec alone; with
tiny-int, including the neural prior.
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "spec", "reference", "decode.py")
INTNET = os.path.join(ROOT, "spec", "reference", "intnet.py")

# (model, image, --bpp). gauss: an RGB image at the README's default rate and a gray one with
# more steps. tiny-int (a Python decode takes seconds per stream at these sizes): a 64x48 crop
# at a low rate (every step at high noise, so through the multiscale wrapper's halvings) and a
# higher one (ending at full resolution), and the odd-sized gray fixture (padding to a multiple
# of 8, gray through three identical planes). tiny-int8 (8-bit: the Rust decoder runs it on
# its u8 x i8 kernels) at the higher rate. deep-int8 (the default: log-SNR experts of integer
# networks that mix 8-bit layers with wider half-resolution ones, over four mirror images) at
# both rates, so that every expert and the halvings are reached, and its faster variant (the same
# file over two mirror images) once.
CROP = ("dragonfly_96x64.png", 16, 8, 64, 48)  # fixture, x0, y0, width, height
CASES = [
    ("gauss", "dragonfly_96x64.png", "0.5"),
    ("gauss", "dragonfly_gray_45x31.png", "2"),
    ("tiny-int", "crop", "0.5"),
    ("tiny-int", "crop", "1.5"),
    ("tiny-int", "dragonfly_gray_45x31.png", "2"),
    ("tiny-int8", "crop", "1.5"),
    ("deep-int8", "crop", "0.5"),
    ("deep-int8", "crop", "1.5"),
    ("deep-int8-fast", "crop", "0.5"),
]
METHODS = ["denoise", "flow", "ancestral"]


def read_png(path):
    """(width, height, channels, samples) of an 8-bit gray or RGB non-interlaced PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit("%s: not a PNG file" % path)
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (0, 2) or interlace:
        raise SystemExit("%s: only 8-bit gray/RGB non-interlaced PNG files" % path)
    c = 3 if ctype == 2 else 1
    raw, stride = zlib.decompress(idat), w * c
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - c] if i >= c else 0
            b = prev[i]
            d = prev[i - c] if i >= c else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - d
                pa, pb, pd = abs(p - a), abs(p - b), abs(p - d)
                line[i] = (line[i] + (a if pa <= pb and pa <= pd else b if pb <= pd else d)) & 255
        out += line
        prev = line
    return w, h, c, bytes(out)


def write_crop(path):
    """The CROP of its fixture as a binary PPM."""
    fixture, x0, y0, cw, ch = CROP
    w, _, c, s = read_png(os.path.join(ROOT, "fixtures", fixture))
    rows = [s[((y0 + y) * w + x0) * c:((y0 + y) * w + x0 + cw) * c] for y in range(ch)]
    open(path, "wb").write(b"P6\n%d %d\n255\n" % (cw, ch) + b"".join(rows))


def read_pnm(path):
    """(width, height, channels, samples) of a binary P5/P6 file."""
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(data[start:pos])
    pos += 1  # the single whitespace byte after maxval
    magic, w, h, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic not in (b"P5", b"P6") or maxval != 255:
        raise SystemExit("%s: not an 8-bit binary P5/P6 file (%r)" % (path, fields))
    c = 3 if magic == b"P6" else 1
    samples = data[pos:pos + w * h * c]
    if len(samples) != w * h * c:
        raise SystemExit("%s: short sample data" % path)
    return w, h, c, samples


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.stderr.write(r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"))
        raise SystemExit("failed (exit %d): %s" % (r.returncode, " ".join(cmd)))
    return r.stdout.decode(errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "diffc"))
    ap.add_argument("--skip-self-check", action="store_true",
                    help="do not run decode.py --self-check and intnet.py --self-check first "
                    "(CI runs them on their own)")
    ap.add_argument("--gauss-only", action="store_true",
                    help="only the gauss cases (the tiny-int reference needs NumPy)")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        raise SystemExit("%s: no diffc binary (run `cargo build --release` first)" % args.bin)
    cases = [c for c in CASES if c[0] == "gauss" or not args.gauss_only]
    if any(c[0] != "gauss" for c in cases):
        try:
            import numpy  # noqa: F401
        except ImportError:
            raise SystemExit("the tiny-int cases need NumPy for spec/reference/intnet.py "
                             "(python3 -m pip install numpy), or pass --gauss-only")

    if not args.skip_self_check:
        print(run([sys.executable, REFERENCE, "--self-check"]).strip())
        if not args.gauss_only:
            print(run([sys.executable, INTNET, "--self-check"]).strip())
    compared = 0
    with tempfile.TemporaryDirectory(prefix="diffc-xcheck-") as tmp:
        for model, fixture, bpp in cases:
            if fixture == "crop":
                fixture = "%s_crop_%dx%d.ppm" % (CROP[0][:-4], CROP[3], CROP[4])
                image = os.path.join(tmp, fixture)
                write_crop(image)
            else:
                image = os.path.join(ROOT, "fixtures", fixture)
            stream = os.path.join(tmp, "%s.%s.%s.dfc" % (fixture, model, bpp))
            run([args.bin, "compress", image, stream, "--model", model, "--bpp", bpp,
                 "--quiet"])
            whole = open(stream, "rb").read()
            # A cut inside the last packet: both decoders must stop at the same packet.
            cut = stream[:-4] + ".cut.dfc"
            open(cut, "wb").write(whole[:len(whole) - 5])
            for name, path, methods in [("whole", stream, METHODS), ("cut", cut, ["flow"])]:
                for method in methods:
                    ours = os.path.join(tmp, "rust.pnm")
                    ref = os.path.join(tmp, "ref.pnm")
                    run([args.bin, "decompress", path, ours, "--method", method, "--quiet"])
                    t0 = time.time()
                    out = run([sys.executable, REFERENCE, path, ref, "--method", method])
                    seconds = time.time() - t0
                    said = [l for l in out.splitlines() if l.startswith("model ")]
                    if not said or said[0].split()[1] != model:
                        raise SystemExit("%s: the reference decoded with %r, expected %s"
                                         % (fixture, said, model))
                    stop = [l for l in out.splitlines() if l.startswith("stop")]
                    want_stop = "Complete" if name == "whole" else "Truncated"
                    if not stop or want_stop not in stop[0]:
                        raise SystemExit("%s %s: reference says %r, expected %s"
                                         % (fixture, name, stop, want_stop))
                    a, b = read_pnm(ours), read_pnm(ref)
                    if a[:3] != b[:3]:
                        raise SystemExit("%s %s %s: shapes differ: %r vs %r"
                                         % (fixture, name, method, a[:3], b[:3]))
                    if a[3] != b[3]:
                        diff = sum(1 for x, y in zip(a[3], b[3]) if x != y)
                        raise SystemExit(
                            "%s, %s (%d bytes, %s) %s: diffc decompress and decode.py differ in "
                            "%d of %d samples" % (fixture, model, len(open(path, "rb").read()),
                                                  name, method, diff, len(a[3])))
                    compared += 1
                    print("match: %s, %s at %s bpp, %s stream (%d bytes), %s (reference %.1f s)"
                          % (fixture, model, bpp, name, len(open(path, "rb").read()), method,
                             seconds))
    print("reference_crosscheck: %d fresh decodes identical to the reference" % compared)


if __name__ == "__main__":
    main()
