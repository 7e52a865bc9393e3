"""Independent reference of diffc's shared randomness (spec/prng.md), for cross-checking.

Run: python3 spec/reference/prng.py  -> prints the known-answer vectors pinned in src/prng.rs.
Uses Python's statistics.NormalDist().inv_cdf (also Wichura AS241) for the normal transform,
so agreement to f32 precision checks the Rust implementation independently.
"""
import struct
from statistics import NormalDist

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    c = list(ctr)
    k = list(key)
    for r in range(10):
        if r > 0:
            k = [(k[0] + W0) & MASK, (k[1] + W1) & MASK]
        p0 = M0 * c[0]
        p1 = M1 * c[2]
        hi0, lo0 = p0 >> 32, p0 & MASK
        hi1, lo1 = p1 >> 32, p1 & MASK
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
    return c


def block(seed, domain, step, index):
    return philox4x32_10([index & MASK, index >> 32, step, domain], [seed & MASK, seed >> 32])


def uniform_open(a, b):
    m = ((a >> 5) << 26) | (b >> 6)
    return (m + 0.5) / 9007199254740992.0


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def normals_row(seed, domain, step, row, n):
    out = []
    j = 0
    while len(out) < n:
        w = block(seed, domain, step, (row << 32) | j)
        out.append(NormalDist().inv_cdf(uniform_open(w[0], w[1])))
        out.append(NormalDist().inv_cdf(uniform_open(w[2], w[3])))
        j += 1
    return out[:n]


if __name__ == "__main__":
    assert philox4x32_10([0] * 4, [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    row = normals_row(0x0123456789ABCDEF, 1, 7, 3, 5)
    print("row", row)
    print("bits", [f32_bits(v) for v in row])
