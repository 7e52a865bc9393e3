#!/usr/bin/env python3
"""Cross-check the Rust codec against the Python reference decoder on fresh streams.

    python3 scripts/reference_crosscheck.py [--bin target/release/diffc] [--skip-self-check]

For each case: `diffc compress --model gauss` a fixture, then decode the stream (whole, and cut
in the middle of a packet) with `diffc decompress --method M` and with
`spec/reference/decode.py --method M`, both with their default options otherwise, and require
the 8-bit samples to be identical. Also runs `decode.py --self-check` (the pinned examples).
Exits non-zero on the first difference. Standard library only; runs in CI (.ci/run).

What it proves beyond the pinned examples: the encoder as built today writes streams that an
independent decoder of spec/ reads, and the two decoders' defaults (method, flow_steps,
lambda_end) agree, so `diffc decompress IN OUT` is reproducible from the spec alone.
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "spec", "reference", "decode.py")

# (fixture, --bpp): an RGB image at the README's default rate and a gray one with more steps.
CASES = [
    ("dragonfly_96x64.png", "0.5"),
    ("dragonfly_gray_45x31.png", "2"),
]
METHODS = ["denoise", "flow", "ancestral"]


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
                    help="do not run decode.py --self-check first (CI runs it on its own)")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        raise SystemExit("%s: no diffc binary (run `cargo build --release` first)" % args.bin)

    if not args.skip_self_check:
        print(run([sys.executable, REFERENCE, "--self-check"]).strip())
    compared = 0
    with tempfile.TemporaryDirectory(prefix="diffc-xcheck-") as tmp:
        for fixture, bpp in CASES:
            stream = os.path.join(tmp, fixture + ".dfc")
            run([args.bin, "compress", os.path.join(ROOT, "fixtures", fixture), stream,
                 "--model", "gauss", "--bpp", bpp, "--quiet"])
            whole = open(stream, "rb").read()
            # A cut inside the last packet: both decoders must stop at the same packet.
            cut = os.path.join(tmp, fixture + ".cut.dfc")
            open(cut, "wb").write(whole[:len(whole) - 5])
            for name, path, methods in [("whole", stream, METHODS), ("cut", cut, ["flow"])]:
                for method in methods:
                    ours = os.path.join(tmp, "rust.pnm")
                    ref = os.path.join(tmp, "ref.pnm")
                    run([args.bin, "decompress", path, ours, "--method", method, "--quiet"])
                    out = run([sys.executable, REFERENCE, path, ref, "--method", method])
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
                            "%s (%d bytes, %s) %s: diffc decompress and decode.py differ in %d of "
                            "%d samples" % (fixture, len(open(path, "rb").read()), name, method,
                                            diff, len(a[3])))
                    compared += 1
                    print("match: %s at %s bpp, %s stream (%d bytes), %s"
                          % (fixture, bpp, name, len(open(path, "rb").read()), method))
    print("reference_crosscheck: %d fresh decodes identical to the reference" % compared)


if __name__ == "__main__":
    main()
