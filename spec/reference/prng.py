"""Independent reference of diffc's shared randomness (spec/prng.md), for cross-checking.

Run: python3 spec/reference/prng.py  -> prints the known-answer vectors pinned in src/prng.rs.
`normals_row` uses Python's statistics.NormalDist().inv_cdf (also Wichura AS241, with libm's
log), so agreement to f32 precision checks the Rust implementation independently.
`normals_row_exact` is a bit-exact port of the normative transform (det_ln + AS241) and is
checked against f64 bit patterns pinned from the Rust code, together with the dimension
permutation, signs and segment permutations of spec/rcc.md.
"""
import math
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


# ---------------------------------------------------------------- bit-exact transform
# A port of src/prng.rs's det_ln and AS241 using only IEEE-754 double + - * / sqrt (Python
# floats are IEEE doubles and Python never fuses operations), so it must agree BIT FOR BIT.

SQRT_2 = 1.4142135623730951  # 0x3FF6A09E667F3BCD
LN_2 = 0.6931471805599453    # 0x3FE62E42FEFA39EF


def det_ln(x):
    bits = struct.unpack("<Q", struct.pack("<d", x))[0]
    e = ((bits >> 52) & 0x7FF) - 1023
    m = struct.unpack("<d", struct.pack("<Q", (bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000))[0]
    if m > SQRT_2:
        m *= 0.5
        e += 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = 1.0 / 21.0
    for d in (19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0):
        p = p * s2 + 1.0 / d
    return float(e) * LN_2 + 2.0 * s * p


def horner(coefs, r):
    v = coefs[0]
    for c in coefs[1:]:
        v = v * r + c
    return v


A = (2509.0809287301227, 33430.57558358813, 67265.7709270087, 45921.95393154987,
     13731.693765509461, 1971.5909503065513, 133.14166789178438, 3.3871328727963665)
B = (5226.495278852546, 28729.085735721943, 39307.89580009271, 21213.794301586597,
     5394.196021424751, 687.1870074920579, 42.31333070160091, 1.0)
C = (7.745450142783414e-4, 0.022723844989269184, 0.2417807251774506, 1.2704582524523684,
     3.6478483247632046, 5.769497221460691, 4.630337846156545, 1.4234371107496836)
D = (1.0507500716444168e-9, 5.475938084995345e-4, 0.015198666563616457, 0.14810397642748007,
     0.6897673349851, 1.6763848301838038, 2.053191626637759, 1.0)
E = (2.010334399292288e-7, 2.7115555687434876e-5, 0.0012426609473880784, 0.026532189526576124,
     0.2965605718285049, 1.7848265399172913, 5.463784911164114, 6.657904643501103)
F = (2.0442631033899398e-15, 1.421511758316446e-7, 1.8463183175100548e-5, 7.868691311456133e-4,
     0.014875361290850615, 0.1369298809227358, 0.5998322065558879, 1.0)


def inverse_normal_cdf(p):
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * horner(A, r) / horner(B, r)
    tail = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-det_ln(tail))
    if r <= 5.0:
        r -= 1.6
        val = horner(C, r) / horner(D, r)
    else:
        r -= 5.0
        val = horner(E, r) / horner(F, r)
    return -val if q < 0.0 else val


def f64_bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def normals_row_exact(seed, domain, step, row, n):
    out = []
    j = 0
    while len(out) < n:
        w = block(seed, domain, step, (row << 32) | j)
        out.append(inverse_normal_cdf(uniform_open(w[0], w[1])))
        out.append(inverse_normal_cdf(uniform_open(w[2], w[3])))
        j += 1
    return out[:n]


def uniform_below(r, n):
    return (r * n) >> 64


def dim_permutation(seed, step, dims):
    perm = list(range(dims))
    for i in range(dims - 1, 0, -1):
        w = block(seed, 4, step, i // 2)
        r = (w[0] | (w[1] << 32)) if i % 2 == 0 else (w[2] | (w[3] << 32))
        j = uniform_below(r, i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def signs(seed, step, dims):
    out = []
    for p in range(dims):
        w = block(seed, 2, step, p // 128)
        out.append(-1 if (w[(p % 128) // 32] >> (p % 32)) & 1 else 1)
    return out


def segment_permutation(seed, step, seg, log2_k):
    w = block(seed, 3, step, seg)
    mask = (1 << log2_k) - 1
    return (w[0] | 1) & mask, w[1] & mask


# Pinned by the Rust implementation (see spec/prng.md, "Known answers").
KNOWN_F64 = [
    ("det_ln", 0.3, 0xBFF34378FCBDA720),
    ("det_ln", 1e-10, 0xC037069E2AA2AA5A),
    ("det_ln", 0.7071067811865476, 0xBFD62E42FEFA39ED),
    ("det_ln", 123.456, 0x401343774F3E2362),
    ("inv", 0.975, 0x3FFF5C0331EEFF82),
    ("inv", 0.1, 0xBFF4813C36E26D34),
    ("inv", 1e-10, 0xC0197203597A2154),
    ("inv", 0.999999, 0x40130381A97985F1),
    ("inv", 2.0 ** -54, 0xC02095B059D67C4C),
    ("inv", 0.7, 0x3FE0C7E39582C5FA),
    ("inv", 0.55, 0x3FC015ABC78E92D4),
]


if __name__ == "__main__":
    assert philox4x32_10([0] * 4, [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    row = normals_row(0x0123456789ABCDEF, 1, 7, 3, 5)
    print("row", row)
    print("bits", [f32_bits(v) for v in row])
    assert [f32_bits(v) for v in row] == [1067726286, 1069345059, 3198381641, 3202183992, 3196077465]
    # Bit-exact port.
    for name, x, want in KNOWN_F64:
        got = f64_bits(det_ln(x) if name == "det_ln" else inverse_normal_cdf(x))
        assert got == want, (name, x, hex(got), hex(want))
    exact = normals_row_exact(0x0123456789ABCDEF, 1, 7, 3, 5)
    assert [f32_bits(v) for v in exact] == [1067726286, 1069345059, 3198381641, 3202183992, 3196077465]
    assert uniform_open(0xFFFFFFFF, 0xFFFFFFFF) == 1.0  # the one value that is not < 1
    assert inverse_normal_cdf(1.0) == 37.537836095576054
    seed = 0x0123456789ABCDEF
    assert block(seed, 1, 7, (3 << 32) | 1) == [0x5FF20CA6, 0x6CCCE894, 0x552AA3AF, 0x49D2470D]
    assert dim_permutation(seed, 2, 10) == [5, 9, 3, 1, 6, 8, 0, 2, 4, 7]
    assert signs(seed, 2, 10) == [-1, -1, -1, 1, -1, -1, -1, 1, 1, 1]
    assert [segment_permutation(seed, 2, g, 12) for g in range(3)] == [(2357, 128), (3511, 3975), (181, 2969)]
    print("prng.py: bit-exact known answers OK")
