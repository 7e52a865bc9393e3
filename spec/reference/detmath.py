"""Deterministic exp, expm1 and log: the ones the codec's normative path uses.

Run: python3 spec/reference/detmath.py  -> checks the known answers pinned in src/detmath.rs.

The schedule's coefficients (alpha, sigma, the transition and DDIM coefficients, the
multiscale rescale) and the encoder's rate control need `exp`, `expm1` and `ln`. IEEE-754
`+ - * /` and `sqrt` are correctly rounded on every platform; library transcendentals are not
(two libms may differ in the last bit). So diffc takes them from one software implementation,
the pure-Rust `libm` crate, pinned at version 0.2.16 (`src/detmath.rs`), whose `exp`, `expm1`
and `log` are ports of musl's / FreeBSD msun's `e_exp.c`, `s_expm1.c` and `e_log.c`.

This file is a line-by-line port of those three functions of libm 0.2.16
(src/math/{exp,expm1,log}.rs, and `scalbn` from src/math/generic/scalbn.rs): same constants,
same branches, same operations in the same order. Python floats are IEEE doubles, evaluated
one rounding per operation (Python never fuses a multiply-add, nor does Rust), so the results
are the Rust code's bit for bit. Bit manipulations go through struct (to_bits / from_bits);
integers are masked where the Rust code relies on fixed widths. Side effects that only raise
floating-point flags (`force_eval!`) are left out; they do not change results. NaN payloads
(and the sign of a NaN) are not pinned; the codec never computes with NaN.

Standard library only.
"""
import struct

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF


def to_bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def from_bits(u):
    return struct.unpack("<d", struct.pack("<Q", u & MASK64))[0]


X1P1023 = from_bits(0x7FE0000000000000)  # 2^1023


# ------------------------------------------------------------------ scalbn (generic, f64)


def scalbn(x, n):
    """x * 2^n, as libm's generic scalbn for f64 (prescaled so that it rounds once)."""
    exp_max, exp_min = 1023, -1022
    if n > exp_max:
        x *= X1P1023
        n -= exp_max
        if n > exp_max:
            x *= X1P1023
            n -= exp_max
            if n > exp_max:
                n = exp_max
    elif n < exp_min:
        mul = from_bits(1 << 52) * from_bits((53 + 1023) << 52)  # 2^-1022 * 2^53
        add = -exp_min - 53
        x *= mul
        n += add
        if n < exp_min:
            x *= mul
            n += add
            if n < exp_min:
                n = exp_min
    return x * from_bits((1023 + n) << 52)


# ------------------------------------------------------------------ exp (e_exp.c)

HALF = [0.5, -0.5]
LN2HI = 6.93147180369123816490e-01  # 0x3fe62e42, 0xfee00000
LN2LO = 1.90821492927058770002e-10  # 0x3dea39ef, 0x35793c76
INVLN2 = 1.44269504088896338700e+00  # 0x3ff71547, 0x652b82fe
P1 = 1.66666666666666019037e-01  # 0x3FC55555, 0x5555553E
P2 = -2.77777777770155933842e-03  # 0xBF66C16C, 0x16BEBD93
P3 = 6.61375632143793436117e-05  # 0x3F11566A, 0xAF25DE2C
P4 = -1.65339022054652515390e-06  # 0xBEBBBD41, 0xC5D26BF1
P5 = 4.13813679705723846039e-08  # 0x3E663769, 0x72BEA4D0


def exp(x):
    """e^x (libm 0.2.16 `exp`)."""
    x = float(x)
    hx = (to_bits(x) >> 32) & MASK32
    sign = hx >> 31
    hx &= 0x7FFFFFFF  # high word of |x|

    # special cases
    if hx >= 0x4086232B:  # |x| >= 708.39...
        if x != x:
            return x
        if x > 709.782712893383973096:  # overflow if x != inf
            x *= X1P1023
            return x
        if x < -708.39641853226410622:  # underflow if x != -inf
            if x < -745.13321910194110842:
                return 0.0

    # argument reduction
    if hx > 0x3FD62E42:  # |x| > 0.5 ln2
        if hx >= 0x3FF0A2B2:  # |x| >= 1.5 ln2
            k = int(INVLN2 * x + HALF[sign])  # `as i32`: truncation toward zero
        else:
            k = 1 - sign - sign
        hi = x - float(k) * LN2HI  # k*ln2hi is exact here
        lo = float(k) * LN2LO
        x = hi - lo
    elif hx > 0x3E300000:  # |x| > 2**-28
        k = 0
        hi = x
        lo = 0.0
    else:
        return 1.0 + x

    # x is now in primary range
    xx = x * x
    c = x - xx * (P1 + xx * (P2 + xx * (P3 + xx * (P4 + xx * P5))))
    y = 1.0 + (x * c / (2.0 - c) - lo + hi)
    if k == 0:
        return y
    return scalbn(y, k)


# ------------------------------------------------------------------ expm1 (s_expm1.c)

O_THRESHOLD = 7.09782712893383973096e+02  # 0x40862E42, 0xFEFA39EF
LN2_HI = 6.93147180369123816490e-01  # 3fe62e42 fee00000
LN2_LO = 1.90821492927058770002e-10  # 3dea39ef 35793c76
Q1 = -3.33333333333331316428e-02  # BFA11111 111110F4
Q2 = 1.58730158725481460165e-03  # 3F5A01A0 19FE5585
Q3 = -7.93650757867487942473e-05  # BF14CE19 9EAADBB7
Q4 = 4.00821782732936239552e-06  # 3ED0CFCA 86E65239
Q5 = -2.01099218183624371326e-07  # BE8AFDB7 6E09C32D


def expm1(x):
    """e^x - 1 (libm 0.2.16 `expm1`)."""
    x = float(x)
    ui = to_bits(x)
    hx = (ui >> 32) & 0x7FFFFFFF
    sign = ui >> 63

    # filter out huge and non-finite argument
    if hx >= 0x4043687A:  # |x| >= 56*ln2
        if x != x:
            return x
        if sign != 0:
            return -1.0
        if x > O_THRESHOLD:
            x *= X1P1023
            return x

    # argument reduction
    if hx > 0x3FD62E42:  # |x| > 0.5 ln2
        if hx < 0x3FF0A2B2:  # and |x| < 1.5 ln2
            if sign == 0:
                hi = x - LN2_HI
                lo = LN2_LO
                k = 1
            else:
                hi = x + LN2_HI
                lo = -LN2_LO
                k = -1
        else:
            k = int(INVLN2 * x + (-0.5 if sign != 0 else 0.5))
            t = float(k)
            hi = x - t * LN2_HI  # t*ln2_hi is exact here
            lo = t * LN2_LO
        x = hi - lo
        c = (hi - x) - lo
    elif hx < 0x3C900000:  # |x| < 2**-54, return x
        return x
    else:
        c = 0.0
        k = 0

    # x is now in primary range
    hfx = 0.5 * x
    hxs = x * hfx
    r1 = 1.0 + hxs * (Q1 + hxs * (Q2 + hxs * (Q3 + hxs * (Q4 + hxs * Q5))))
    t = 3.0 - r1 * hfx
    e = hxs * ((r1 - t) / (6.0 - x * t))
    if k == 0:  # c is 0
        return x - (x * e - hxs)
    e = x * (e - c) - c
    e -= hxs
    # exp(x) ~ 2^k (x_reduced - e + 1)
    if k == -1:
        return 0.5 * (x - e) - 0.5
    if k == 1:
        if x < -0.25:
            return -2.0 * (e - (x + 0.5))
        return 1.0 + 2.0 * (x - e)
    twopk = from_bits((0x3FF + k) << 52)  # 2^k
    if not 0 <= k <= 56:  # suffice to return exp(x)-1
        y = x - e + 1.0
        if k == 1024:
            y = y * 2.0 * X1P1023
        else:
            y = y * twopk
        return y - 1.0
    uf = from_bits((0x3FF - k) << 52)  # 2^-k
    if k < 20:
        y = (x - e + (1.0 - uf)) * twopk
    else:
        y = (x - (e + uf) + 1.0) * twopk
    return y


# ------------------------------------------------------------------ log (e_log.c)

LG1 = 6.666666666666735130e-01  # 3FE55555 55555593
LG2 = 3.999999999940941908e-01  # 3FD99999 9997FA04
LG3 = 2.857142874366239149e-01  # 3FD24924 94229359
LG4 = 2.222219843214978396e-01  # 3FCC71C5 1D8E78AF
LG5 = 1.818357216161805012e-01  # 3FC74664 96CB03DE
LG6 = 1.531383769920937332e-01  # 3FC39A09 D078C69F
LG7 = 1.479819860511658591e-01  # 3FC2F112 DF3E5244


def log(x):
    """Natural logarithm (libm 0.2.16 `log`)."""
    x = float(x)
    ui = to_bits(x)
    hx = ui >> 32
    k = 0

    if hx < 0x00100000 or (hx >> 31) != 0:  # x < 2**-1022 (or negative)
        if (ui << 1) & MASK64 == 0:
            return float("-inf")  # -1/(x*x): log(+-0) = -inf
        if hx >> 31 != 0:
            return float("nan")  # (x-x)/0: log(-#) = NaN
        # subnormal number, scale x up
        k -= 54
        x *= from_bits(0x4350000000000000)  # 2^54
        ui = to_bits(x)
        hx = ui >> 32
    elif hx >= 0x7FF00000:
        return x
    elif hx == 0x3FF00000 and (ui << 32) & MASK64 == 0:
        return 0.0

    # reduce x into [sqrt(2)/2, sqrt(2)]
    hx = (hx + (0x3FF00000 - 0x3FE6A09E)) & MASK32
    k += (hx >> 20) - 0x3FF
    hx = (hx & 0x000FFFFF) + 0x3FE6A09E
    ui = (hx << 32) | (ui & MASK32)
    x = from_bits(ui)

    f = x - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG2 + w * (LG4 + w * LG6))
    t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
    r = t2 + t1
    dk = float(k)
    return s * (hfsq + r) + dk * LN2_LO - hfsq + f + dk * LN2_HI


# ------------------------------------------------------------------ known answers

# (function, input bits, output bits), produced by the Rust code (src/detmath.rs, whose test
# `known_answers` holds the same table). Inputs: lambdas from -30 to 30 (grid points, the
# multiscale thresholds), multiples of ln 2 / 2 (the argument-reduction boundaries), tiny and
# small arguments of expm1 of both signs (transition steps), large ones, and ln of typical
# SNRs, powers of two, a value next to 1 and the smallest subnormal. exp(-10), exp(-3.75) and
# exp(-1.75) are among the values where glibc's exp (Python's math.exp on Linux) rounds
# differently.
KNOWN_ANSWERS = [
    ("exp", 0xC03E000000000000, 0x3D3A56E0C2AC7F75),  # exp(-30.0) = 9.357622968840175e-14
    ("exp", 0xC024000000000000, 0x3F07CD79B5647C9A),  # exp(-10.0) = 4.539992976248485e-05
    ("exp", 0xC00E000000000000, 0x3F981509354F0D2A),  # exp(-3.75) = 0.02351774585600911
    ("exp", 0xBFFC000000000000, 0x3FC63E397E022072),  # exp(-1.75) = 0.1737739434504451
    ("exp", 0xBFE62E42FEFA39EF, 0x3FE0000000000000),  # exp(-0.6931471805599453) = 0.5
    ("exp", 0x3DDB7CDFD9D7BDBB, 0x3FF000000006DF38),  # exp(1e-10) = 1.0000000001
    ("exp", 0xBDDB7CDFD9D7BDBB, 0x3FEFFFFFFFF24190),  # exp(-1e-10) = 0.9999999999
    ("exp", 0x3FC0000000000000, 0x3FF2216045B6F5CD),  # exp(0.125) = 1.1331484530668263
    ("exp", 0x3FD62E42FEFA39EF, 0x3FF6A09E667F3BCC),  # exp(0.34657359027997264) = 1.414213562373095
    ("exp", 0x3FF0A2B23F3BAB73, 0x4006A09E667F3BCC),  # exp(1.0397207708399179) = 2.82842712474619
    ("exp", 0x3FE62E42FEFA39EF, 0x4000000000000000),  # exp(0.6931471805599453) = 2.0
    ("exp", 0x4000A2B23F3BAB73, 0x401FFFFFFFFFFFFE),  # exp(2.0794415416798357) = 7.999999999999998
    ("exp", 0x400A147AE147AE14, 0x403A0CAE77570DB5),  # exp(3.26) = 26.049537142518336
    ("exp", 0x4022000000000000, 0x40BFA7157C470F82),  # exp(9.0) = 8103.083927575384
    ("exp", 0x402C000000000000, 0x413259AC48BF05D7),  # exp(14.0) = 1202604.2841647768
    ("exp", 0x403E000000000000, 0x42A370470AEC28ED),  # exp(30.0) = 10686474581524.463
    ("expm1", 0x3DDB7CDFD9D7BDBB, 0x3DDB7CDFD9DDA4E3),  # expm1(1e-10) = 1.00000000005e-10
    ("expm1", 0xBDDB7CDFD9D7BDBB, 0xBDDB7CDFD9D1D693),  # expm1(-1e-10) = -9.999999999500001e-11
    ("expm1", 0x3C670EF54646D497, 0x3C670EF54646D497),  # expm1(1e-17) = 1e-17
    ("expm1", 0xBFD3333333333333, 0xBFD0966F2C7907F6),  # expm1(-0.3) = -0.2591817793182821
    ("expm1", 0x3F40624DD2F1A9FC, 0x3F40635A4DE01B21),  # expm1(0.0005) = 0.0005001250208359378
    ("expm1", 0xBF40624DD2F1A9FC, 0xBF4061416EEB48BC),  # expm1(-0.0005) = -0.0004998750208307294
    ("expm1", 0xBF70000000000000, 0xBF6FF00554004439),  # expm1(-0.00390625) = -0.00389863052988251
    ("expm1", 0x3FD999999999999A, 0x3FDF7A0E4BEEFF80),  # expm1(0.4) = 0.49182469764127035
    ("expm1", 0x3FE6666666666666, 0x3FF03854C24D130D),  # expm1(0.7) = 1.0137527074704764
    ("expm1", 0xBFE62E42FEFA39EF, 0xBFE0000000000000),  # expm1(-0.6931471805599453) = -0.5
    ("expm1", 0xBFECCCCCCCCCCCCD, 0xBFE2FD619FFBC8F1),  # expm1(-0.9) = -0.5934303402594009
    ("expm1", 0x3FF3333333333333, 0x40028F99761065A4),  # expm1(1.2) = 2.3201169227365472
    ("expm1", 0xC004000000000000, 0xBFED5F8F47ED617C),  # expm1(-2.5) = -0.9179150013761013
    ("expm1", 0xC03E000000000000, 0xBFEFFFFFFFFFFCB5),  # expm1(-30.0) = -0.9999999999999064
    ("expm1", 0x4039000000000000, 0x4230C3D3920862C9),  # expm1(25.0) = 72004899336.38588
    ("expm1", 0x4044000000000000, 0x438A220D397972EA),  # expm1(40.0) = 2.3538526683701997e+17
    ("expm1", 0xC044000000000000, 0xBFF0000000000000),  # expm1(-40.0) = -1.0
    ("ln", 0x3FE0000000000000, 0xBFE62E42FEFA39EF),  # ln(0.5) = -0.6931471805599453
    ("ln", 0x4000000000000000, 0x3FE62E42FEFA39EF),  # ln(2.0) = 0.6931471805599453
    ("ln", 0x4010000000000000, 0x3FF62E42FEFA39EF),  # ln(4.0) = 1.3862943611198906
    ("ln", 0x4024000000000000, 0x40026BB1BBB55516),  # ln(10.0) = 2.302585092994046
    ("ln", 0x3FB999999999999A, 0xC0026BB1BBB55515),  # ln(0.1) = -2.3025850929940455
    ("ln", 0x3F50624DD2F1A9FC, 0xC01BA18A998FFFA0),  # ln(0.001) = -6.907755278982137
    ("ln", 0x3FF8000000000000, 0x3FD9F323ECBF984C),  # ln(1.5) = 0.4054651081081644
    ("ln", 0x3FEFFFFFFAA19C47, 0xBE45798EE5CD2B2A),  # ln(0.99999999) = -1.0000000100247594e-08
    ("ln", 0x3D3A56E0C2AC7F75, 0xC03E000000000000),  # ln(9.357622968840175e-14) = -30.0
    ("ln", 0x403A0C868730403A, 0x400A146E9D553717),  # ln(26.048927735595704) = 3.2599766055708517
    ("ln", 0x42A370470AEC28ED, 0x403E000000000000),  # ln(10686474581524.463) = 30.0
    ("ln", 0x0000000000000001, 0xC0874385446D71C3),  # ln(5e-324) = -744.4400719213812
]

# The constants above, as the bit patterns their msun comments give.
CONSTANT_BITS = [
    (LN2HI, 0x3FE62E42FEE00000), (LN2LO, 0x3DEA39EF35793C76), (INVLN2, 0x3FF71547652B82FE),
    (P1, 0x3FC555555555553E), (P2, 0xBF66C16C16BEBD93), (P3, 0x3F11566AAF25DE2C),
    (P4, 0xBEBBBD41C5D26BF1), (P5, 0x3E66376972BEA4D0), (O_THRESHOLD, 0x40862E42FEFA39EF),
    (Q1, 0xBFA11111111110F4), (Q2, 0x3F5A01A019FE5585), (Q3, 0xBF14CE199EAADBB7),
    (Q4, 0x3ED0CFCA86E65239), (Q5, 0xBE8AFDB76E09C32D), (LG1, 0x3FE5555555555593),
    (LG2, 0x3FD999999997FA04), (LG3, 0x3FD2492494229359), (LG4, 0x3FCC71C51D8E78AF),
    (LG5, 0x3FC7466496CB03DE), (LG6, 0x3FC39A09D078C69F), (LG7, 0x3FC2F112DF3E5244),
]

FUNCTIONS = {"exp": exp, "expm1": expm1, "ln": log}


def self_check():
    for value, bits in CONSTANT_BITS:
        assert to_bits(value) == bits, (value, hex(to_bits(value)), hex(bits))
    assert KNOWN_ANSWERS
    for name, x_bits, want in KNOWN_ANSWERS:
        x = from_bits(x_bits)
        got = to_bits(FUNCTIONS[name](x))
        assert got == want, (name, x, hex(got), hex(want))
    # ln 4, the multiscale step in lambda (spec/reconstruction.md#multiscale-evaluation).
    assert to_bits(log(4.0)) == 0x3FF62E42FEFA39EF
    print("detmath.py: %d known answers OK" % len(KNOWN_ANSWERS))


if __name__ == "__main__":
    self_check()
