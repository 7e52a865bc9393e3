"""Independent reference of diffc's step sample regeneration (spec/rcc.md).

Run: python3 spec/reference/rcc.py  -> checks known answers produced by the Rust code
(src/rcc/mod.rs: Layout, dim_permutation, signs, SegmentPermutation, decode_step).
Uses the bit-exact PRNG port of prng.py (same folder).
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prng  # noqa: E402

MAX_WIDTH_LIMIT = 4096
MAX_LOG2_K = 20


def ceil_div(a, b):
    return -(-a // b)


def layout(dims, n_chunks, log2_k, max_width):
    assert dims >= 1 and 1 <= n_chunks <= dims
    assert 1 <= log2_k <= MAX_LOG2_K and 1 <= max_width <= MAX_WIDTH_LIMIT
    d_max = ceil_div(dims, n_chunks)
    segments = ceil_div(d_max, max_width)
    width = ceil_div(d_max, segments)
    return segments, width


def chunk_bounds(dims, n_chunks, c):
    return c * dims // n_chunks, (c + 1) * dims // n_chunks


def segment_bounds(width, length, j):
    return min(j * width, length), min((j + 1) * width, length)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def decode_step(seed, step, dims, n_chunks, log2_k, max_width, indices):
    """The step's unit-variance sample e in dimension order, as f32 values."""
    segments, width = layout(dims, n_chunks, log2_k, max_width)
    assert len(indices) == n_chunks and all(0 <= k < (1 << log2_k) for k in indices)
    perm = prng.dim_permutation(seed, step, dims)
    sgn = prng.signs(seed, step, dims)
    e_perm = [0.0] * dims
    for c in range(n_chunks):
        s, e = chunk_bounds(dims, n_chunks, c)
        for j in range(segments):
            a, b = segment_bounds(width, e - s, j)
            if a == b:
                continue
            pa, pb = prng.segment_permutation(seed, step, c * segments + j, log2_k)
            row = (pa * indices[c] + pb) & ((1 << log2_k) - 1)
            vals = prng.normals_row_exact(seed, 1, step, row, b - a)
            for t in range(b - a):
                e_perm[s + a + t] = f32(vals[t]) * sgn[s + a + t]
    out = [0.0] * dims
    for p, d in enumerate(perm):
        out[d] = e_perm[p]
    return out


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


SEED = 0x0123456789ABCDEF
# (step, dims, n_chunks, log2_k, max_width, indices) -> (segments, width, f32 bits of e)
KNOWN_ANSWERS = [
    ((2, 10, 3, 4, 2, [3, 0, 15]), (2, 2, [
        1062937693, 3221923710, 3221298493, 1062937693, 3194621582,
        1067362147, 1069197230, 3214313194, 1062139848, 1073071074])),
]


def self_check():
    for (step, dims, n, l, mw, idx), (segs, width, bits) in KNOWN_ANSWERS:
        assert layout(dims, n, l, mw) == (segs, width)
        got = [f32_bits(v) for v in decode_step(SEED, step, dims, n, l, mw, idx)]
        assert got == bits, got
    # Layout covers every position exactly once.
    for dims, n, mw in [(10, 3, 4), (1000, 7, 64), (5, 5, 1), (1, 1, 4096), (777, 2, 100), (3, 1, 2)]:
        segs, width = layout(dims, n, 8, mw)
        assert width <= mw
        covered = 0
        for c in range(n):
            s, e = chunk_bounds(dims, n, c)
            for j in range(segs):
                a, b = segment_bounds(width, e - s, j)
                covered += b - a
        assert covered == dims
    print("rcc.py: known answers OK")


if __name__ == "__main__":
    self_check()
