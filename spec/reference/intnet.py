"""Reference implementation of the integer priors (spec/integer-network.md): `tiny-int`,
`tiny-int8`, `deep-int8` and its earlier releases (MODELS below).

Run: python3 spec/reference/intnet.py --self-check [WEIGHTS]
        -> loads models/shipped/tiny-int.safetensors (or WEIGHTS), checks its model id and
           computes x_hat for a small deterministic latent at several lambdas; the FNV-1a 64
           hashes of the results must equal the Rust code's (`integer_prior_known_answers`
           in tests/conformance.rs pins the same numbers, read from this file).
     python3 spec/reference/intnet.py WEIGHTS
        -> validates a weight file and prints its grid, layers and model id.
     python3 spec/reference/intnet.py --pins WEIGHTS NAME
        -> the hash, model id and known answers to pin a new shipped model NAME with.

Library use (decode.py does this for streams of the integer networks):

    prior = intnet.Prior.from_file(path)        # network + multiscale wrapper, with its id
    x_hat = prior.predict_x(z, lam)             # z: float32 (3, H, W), lam: Python float

Everything here follows spec/integer-network.md; nothing is read from the Rust code. The weight
file is parsed directly (JSON header + numpy.frombuffer; no safetensors or torch package).

Arithmetic:
* Integer parts (input quantization, table interpolation, requantization, finishes) are NumPy
  int64, whose `>>` is an arithmetic (floor) shift like the spec's.
* The accumulations `acc = rows x W^T` are exact integers. By default they are computed as
  float64 matrix products (BLAS, ~10x faster than NumPy's integer matmul): the file's
  validation bounds every partial sum of every output by |acc| <= in_amax * sum|w| < 2^31, so
  every intermediate value of any summation order (fused or not) is an integer below 2^53 and
  float64 represents it exactly. Set INTNET_GEMM=int64 (or pass gemm="int64") to compute them
  in int64 instead; --self-check does one case both ways.
* Float parts (input scale, multiscale averaging and upsampling, the composition
  x_hat = alpha z - sigma v) are np.float32 arrays and np.float32 scalars, one operation per
  NumPy call in the spec's order, so every product, sum and difference is rounded to binary32
  exactly once. Nothing is mixed with float64 arrays (which NumPy would promote to).
* alpha, sigma and the multiscale factor are binary64 expressions of detmath.exp (the `exp`
  of the libm crate 0.2.16, bit for bit), rounded to binary32 at the end.
"""
import json
import math
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import detmath  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_WEIGHTS = os.path.join(ROOT, "models", "shipped", "tiny-int.safetensors")

INT_FORMAT = "diffc-int-v1"
EXPERTS_FORMAT = "diffc-experts-v1"  # spec/reconstruction.md#log-snr-experts
MAX_EXPERTS = 8
IN_LOG2 = 12  # z enters the network as round(z * 2^12)
V_LOG2 = 12  # the network's output V is v * 2^12
IN_MAX = 32767
V_MAX = 1 << 23
FRAC_BITS = 8
STRIDE = 8

ARCHS = {"tiny": dict(channels=(48, 96, 144), depth=(2, 2, 3), up_depth=(2, 2)),
         "deep": dict(channels=(48, 96, 144), depth=(3, 3, 5), up_depth=(3, 3)),
         # `deep` with block matching (spec/integer-network.md#block-matching).
         "deep-nl": dict(channels=(48, 96, 144), depth=(3, 3, 5), up_depth=(3, 3),
                         matching=dict(block=8, radius=16, step=1, k=8, grids=2)),
         # `deep-nl` with a wider search and twice the blocks averaged.
         "deep-nl16": dict(channels=(48, 96, 144), depth=(3, 3, 5), up_depth=(3, 3),
                           matching=dict(block=8, radius=24, step=1, k=16, grids=2))}
# Named models: architecture, multiscale thresholds and mirror images averaged around the
# model (`mirrors`) or inside each network (`net_mirrors`, 1 when absent)
# (spec/reconstruction.md#models).
MODELS = {"tiny-int": dict(arch="tiny", thresholds=(0.125, -1.75), mirrors=1),
          "tiny-int8": dict(arch="tiny", thresholds=(0.125, -1.75), mirrors=1),
          "deep-int8": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                            thresholds=(0.625, -1.25), mirrors=1, net_mirrors=4),
          "deep-int8-fast": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                 thresholds=(0.625, -1.25), mirrors=1, net_mirrors=2),
          "deep-int8-s283862": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                    thresholds=(0.625, -1.25), mirrors=1, net_mirrors=4),
          "deep-int8-s283862-fast": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                         thresholds=(0.625, -1.25), mirrors=1, net_mirrors=2),
          "deep-int8-s269661": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                    thresholds=(0.625, -1.25), mirrors=1, net_mirrors=4),
          "deep-int8-s269661-fast": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                         thresholds=(0.625, -1.25), mirrors=1, net_mirrors=2),
          "deep-int8-s259488": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                    thresholds=(0.625, -1.25), mirrors=1, net_mirrors=4),
          "deep-int8-s259488-fast": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                         thresholds=(0.625, -1.25), mirrors=1, net_mirrors=2),
          "deep-int8-s249215": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                    thresholds=(0.625, -1.25), mirrors=1, net_mirrors=4),
          "deep-int8-s249215-fast": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                         thresholds=(0.625, -1.25), mirrors=1, net_mirrors=2),
          "deep-int8-s239986": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                    thresholds=(0.625, -1.25), mirrors=1, net_mirrors=4),
          "deep-int8-s239986-fast": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                         thresholds=(0.625, -1.25), mirrors=1, net_mirrors=2),
          "deep-int8-s227715": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                    thresholds=(0.625, -1.25), mirrors=1, net_mirrors=4),
          "deep-int8-s227715-fast": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                         thresholds=(0.625, -1.25), mirrors=1, net_mirrors=2),
          "deep-int8-s201925": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                    thresholds=(0.625, -1.25), mirrors=1, net_mirrors=4),
          "deep-int8-s201925-fast": dict(arch="deep-nl16,deep-nl16,deep-nl16,deep",
                                         thresholds=(0.625, -1.25), mirrors=1, net_mirrors=2),
          "deep-int8-s173722": dict(arch="deep-nl,deep-nl,deep-nl,deep",
                                    thresholds=(0.625, -1.25), mirrors=1, net_mirrors=4),
          "deep-int8-s173722-fast": dict(arch="deep-nl,deep-nl,deep-nl,deep",
                                         thresholds=(0.625, -1.25), mirrors=1, net_mirrors=2),
          "deep-int8-s193986": dict(arch="deep,deep-nl,deep-nl,deep",
                                    thresholds=(0.625, -1.25), mirrors=4),
          "deep-int8-s193986-fast": dict(arch="deep,deep-nl,deep-nl,deep",
                                         thresholds=(0.625, -1.25), mirrors=2),
          "deep-int8-s161868": dict(arch="deep", thresholds=(0.625, -1.25), mirrors=4),
          "deep-int8-s161868-fast": dict(arch="deep", thresholds=(0.625, -1.25), mirrors=2),
          "deep-int8-s125732": dict(arch="deep", thresholds=(0.625, -1.25), mirrors=4),
          "deep-int8-s125732-fast": dict(arch="deep", thresholds=(0.625, -1.25), mirrors=2),
          "deep-int8-s95064": dict(arch="deep", thresholds=(0.625, -1.25), mirrors=4),
          "deep-int8-s95064-fast": dict(arch="deep", thresholds=(0.625, -1.25), mirrors=2),
          "deep-int8-s89359": dict(arch="deep", thresholds=(0.625, -1.25), mirrors=2),
          "deep-int8-s83020": dict(arch="deep", thresholds=(0.625, -1.25), mirrors=1)}
LN4 = 1.3862943611198906  # bits 0x3FF62E42FEFA39EF

F32 = np.float32


class WeightError(ValueError):
    """The weight file is not a valid integer weight file."""


# ------------------------------------------------------------------ model ids


def fnv1a64(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def model_id(weight_bytes, thresholds, mirrors=1, net_mirrors=1):
    h = fnv1a64(weight_bytes)
    if thresholds:
        tail = b"diffc-multiscale-v1" + b"".join(struct.pack("<d", t) for t in thresholds)
        h = fnv1a64(tail, h)
    if mirrors > 1:
        h = fnv1a64(b"diffc-mirrors-v1" + bytes([mirrors]), h)
    if net_mirrors > 1:
        h = fnv1a64(b"diffc-net-mirrors-v1" + bytes([net_mirrors]), h)
    return h


# ------------------------------------------------------------------ safetensors

N_LEN = 8
MAX_HEADER = 100_000_000
DTYPE_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8,
    "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16,
    "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64,
    "U64": 64,
}
NUMPY_DTYPE = {"U8": "<u1", "I8": "<i1", "I16": "<i2", "I32": "<i4"}


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def parse_safetensors(b):
    """(metadata dict or None, {name: (dtype, shape, data bytes)}) of a safetensors file, with
    the structural checks of the format (spec/integer-network.md#the-container)."""
    if len(b) < N_LEN:
        raise WeightError("safetensors: header too small")
    n = struct.unpack_from("<Q", b, 0)[0]
    if n > MAX_HEADER:
        raise WeightError("safetensors: header too large")
    if N_LEN + n > len(b):
        raise WeightError("safetensors: invalid header length")
    try:
        header = json.loads(bytes(b[N_LEN:N_LEN + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise WeightError("safetensors: header is not UTF-8 JSON: %s" % e)
    if not isinstance(header, dict):
        raise WeightError("safetensors: header is not a JSON object")
    meta = header.get("__metadata__")
    if meta is not None:
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise WeightError("safetensors: __metadata__ is not a map of strings")
    infos = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise WeightError("safetensors: tensor %s: not an object" % name)
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BITS:
            raise WeightError("safetensors: tensor %s: unknown dtype %r" % (name, dtype))
        if not isinstance(shape, list) or not all(_uint(d) for d in shape):
            raise WeightError("safetensors: tensor %s: bad shape" % name)
        if not (isinstance(offs, list) and len(offs) == 2 and all(_uint(o) for o in offs)):
            raise WeightError("safetensors: tensor %s: bad data_offsets" % name)
        infos.append((tuple(offs), name, dtype, tuple(shape)))
    infos.sort(key=lambda t: t[0])
    start, tensors = 0, {}
    data0 = N_LEN + n
    for (s, e), name, dtype, shape in infos:
        if s != start or e < s:
            raise WeightError("safetensors: invalid offset for tensor %s" % name)
        start = e
        count = 1
        for d in shape:
            count *= d
        bits = count * DTYPE_BITS[dtype]
        if bits % 8:
            raise WeightError("safetensors: tensor %s: misaligned slice" % name)
        if e - s != bits // 8:
            raise WeightError("safetensors: tensor %s: size does not match shape and dtype"
                              % name)
        tensors[name] = (dtype, shape, b[data0 + s:data0 + e])
    if data0 + start != len(b):
        raise WeightError("safetensors: incomplete metadata, file not fully covered")
    return meta, tensors


# ------------------------------------------------------------------ architecture


def conv_layers(arch):
    """[(name, k, cout, gather, finish)] in forward order."""
    a = ARCHS[arch]
    c1, c2, c3 = a["channels"]
    d0, d1, d2 = a["depth"]
    u0, u1 = a["up_depth"]
    v = []

    def stack(name, cin, c, n):
        for i in range(n):
            v.append(("%s.%d" % (name, i), 9 * (cin if i == 0 else c), c, "taps3x3", "relu"))

    stack("enc1", 26 if a.get("matching") else 14, c1, d0)
    v.append(("down1", 4 * c1, c2, "unshuffle", "relu"))
    stack("enc2", c2, c2, d1)
    v.append(("down2", 4 * c2, c3, "unshuffle", "relu"))
    stack("mid", c3, c3, d2)
    v.append(("up2", c3, 4 * c2, "pointwise", "into_skip"))
    stack("dec2", c2, c2, u0)
    v.append(("up1", c2, 4 * c1, "pointwise", "into_skip"))
    stack("dec1", c1, c1, u1)
    v.append(("out", 9 * c1, 12, "taps3x3", "output"))
    return v


def block_mean(q, block, radius, step, k, grids=1):
    """The block-matched mean M (int64, planar (3, H, W)) of the quantized latent q (int64,
    planar (3, H, W), H and W multiples of block): spec/integer-network.md#block-matching."""
    _, h, w = q.shape
    s = block_sums(q, block, radius, step, k)
    n = np.full((h, w), k, dtype=np.int64)
    o = block // 2
    if grids == 2 and h >= 2 * block and w >= 2 * block:
        # The second grid: the first on the image without its frame of half a block.
        s[:, o:h - o, o:w - o] += block_sums(q[:, o:h - o, o:w - o], block, radius, step, k)
        n[o:h - o, o:w - o] += k
    return (s + n // 2) // n


def block_sums(q, block, radius, step, k):
    """Per sample, the sum of the values of the k blocks chosen for its tile (int64)."""
    _, h, w = q.shape
    b = block
    g = (q[0] + q[1] + q[2]) >> 6
    th, tw = h // b, w // b
    offsets = [(dy, dx) for dy in range(-radius, radius + 1, step)
               for dx in range(-radius, radius + 1, step) if (dy, dx) != (0, 0)]
    ty = np.arange(th)[:, None] * b
    tx = np.arange(tw)[None, :] * b
    # Distances of every tile to the candidate at each offset (in candidate order); outside the
    # image: no candidate (int64 max sorts last, and is then dropped).
    none = np.iinfo(np.int64).max
    pad = ((radius, radius + b), (radius, radius + b))
    gp = np.pad(g, pad)
    dist = np.empty((len(offsets), th, tw), dtype=np.int64)
    for n, (dy, dx) in enumerate(offsets):
        d = (gp[radius + dy:radius + dy + h, radius + dx:radius + dx + w] - g) ** 2
        d = d.reshape(th, b, tw, b).sum(axis=(1, 3))
        inside = (ty + dy >= 0) & (ty + dy + b <= h) & (tx + dx >= 0) & (tx + dx + b <= w)
        dist[n] = np.where(inside, d, none)
    # The tile first, then the candidates by distance, ties in candidate order (stable sort);
    # missing ones are the tile again.
    order = np.argsort(dist, axis=0, kind="stable")[:k - 1]
    chosen = [(np.zeros((th, tw), dtype=np.int64), np.zeros((th, tw), dtype=np.int64))]
    offs = np.array(offsets + [(0, 0)], dtype=np.int64)
    for m in range(k - 1):
        if m < len(offsets):
            sel = order[m]
            real = np.take_along_axis(dist, sel[None], axis=0)[0] != none
            sel = np.where(real, sel, len(offsets))
        else:
            sel = np.full((th, tw), len(offsets))
        chosen.append((offs[sel, 0], offs[sel, 1]))
    s = np.zeros_like(q)
    ys = np.arange(h)[:, None]
    xs = np.arange(w)[None, :]
    for dy, dx in chosen:
        s += q[:, ys + np.repeat(np.repeat(dy, b, 0), b, 1), xs + np.repeat(np.repeat(dx, b, 0),
                                                                           b, 1)]
    return s


def round_half_away(x):
    """Round a binary64 to the nearest integer, halves away from zero (exact)."""
    if x < 0:
        return -round_half_away(-x)
    f = math.floor(x)
    return f + 1 if x - f >= 0.5 else f  # x - floor(x) is exact


# ------------------------------------------------------------------ the network


class IntNet:
    """An integer weight file, parsed and validated (spec/integer-network.md)."""

    def __init__(self, data, arch="tiny", gemm=None):
        if arch not in ARCHS:
            raise WeightError("unknown architecture %r" % arch)
        self.arch = arch
        self.gemm = gemm or os.environ.get("INTNET_GEMM", "float64")
        if self.gemm not in ("float64", "int64"):
            raise ValueError("gemm must be float64 or int64")
        meta, t = parse_safetensors(data)
        fmt = (meta or {}).get("format", "")
        if fmt != INT_FORMAT:
            raise WeightError("format is %r, expected %r" % (fmt, INT_FORMAT))
        self.metadata = meta

        def get(name, dtype, shape):
            if name not in t:
                raise WeightError("missing tensor %s" % name)
            dt, sh, raw = t[name]
            if dt != dtype or sh != tuple(shape):
                raise WeightError("tensor %s is %s %s, expected %s %s"
                                  % (name, dt, list(sh), dtype, list(shape)))
            return np.frombuffer(bytes(raw), dtype=NUMPY_DTYPE[dtype]).astype(np.int64) \
                .reshape(shape)

        g = get("grid", "I32", [2])
        if "planes" not in t:
            raise WeightError("missing tensor planes")
        points = t["planes"][1][0] if t["planes"][1] else 0
        if not 2 <= points <= 4096:
            raise WeightError("%d grid points" % points)
        self.first, self.per_unit, self.points = int(g[0]), int(g[1]), points
        self.planes = get("planes", "I32", [points, 2])
        self.layers = []
        for name, k, cout, gather, finish in conv_layers(arch):
            self.layers.append(dict(
                name=name, k=k, cout=cout, gather=gather, finish=finish,
                w=get(name + ".w", "I8" if t.get(name + ".w", ("",))[0] == "I8" else "I16",
                      [cout, k]),
                mult=get(name + ".mult", "I32", [cout]),
                shift=get(name + ".shift", "U8", [cout]),
                bias=get(name + ".bias", "I32", [points, cout]),
                amax=int(get(name + ".amax", "I32", [1])[0])))
        # Exactly the architecture's tensors (a `deep` file holds all of `tiny`'s layers).
        listed = {"grid", "planes"} | {l["name"] + "." + p for l in self.layers
                                       for p in ("w", "mult", "shift", "bias", "amax")}
        extra = sorted(set(t) - listed)
        if extra:
            raise WeightError("tensor %s is not part of architecture %s" % (extra[0], arch))
        self._validate()
        for l in self.layers:
            l["wt"] = l["w"].T.astype(np.float64 if self.gemm == "float64" else np.int64).copy()
            l["round"] = np.left_shift(np.int64(1), l["shift"] - 1)

    def _validate(self):
        if not (1 <= self.per_unit <= 256):
            raise WeightError("bad lambda grid: per_unit %d" % self.per_unit)
        if abs(self.first) > 64 * self.per_unit:
            raise WeightError("lambda grid starts too far out")
        if np.any(np.abs(self.planes.astype(np.int64)) > IN_MAX):
            raise WeightError("noise planes outside the input range")
        a = ARCHS[self.arch]
        d0, d1 = a["depth"][0], a["depth"][1]
        skip_amax = [0, 0]
        skips = 0
        in_amax = IN_MAX
        for idx, l in enumerate(self.layers):
            name = l["name"]
            if np.any(l["w"] == -32768):
                raise WeightError("layer %s: weight -32768 (range is +-32767)" % name)
            if np.any(l["mult"] < 0) or np.any(l["shift"] < 1) or np.any(l["shift"] > 62):
                raise WeightError("layer %s: multiplier or shift out of range" % name)
            if np.any(l["bias"] == -(1 << 31)):
                raise WeightError("layer %s: bias -2^31" % name)
            l1 = int(np.abs(l["w"]).sum(axis=1).max())
            if in_amax * l1 >= 1 << 31:
                raise WeightError("layer %s: inputs up to %d times weights of absolute sum %d "
                                  "could overflow i32" % (name, in_amax, l1))
            # Requantization (product and rounding term) stays inside i64 for every channel.
            row_l1 = np.abs(l["w"].astype(np.int64)).sum(axis=1)
            bmax = np.abs(l["bias"].astype(np.int64)).max(axis=0)
            for o in range(len(row_l1)):
                worst = ((in_amax * int(row_l1[o]) + int(bmax[o])) * int(l["mult"][o])
                         + (1 << (int(l["shift"][o]) - 1)))
                if worst >= 1 << 63:
                    raise WeightError("layer %s: channel %d's requantization could overflow "
                                      "i64" % (name, o))
            if l["finish"] in ("relu", "into_skip") and not 1 <= l["amax"] <= 32767:
                raise WeightError("layer %s: amax %d out of range" % (name, l["amax"]))
            if l["finish"] == "relu":
                in_amax = l["amax"]
            elif l["finish"] == "into_skip":
                s = skip_amax[1 - skips]
                skips += 1
                if l["amax"] != s:
                    raise WeightError("layer %s: writes a skip map whose range is %d, not %d"
                                      % (name, s, l["amax"]))
                in_amax = s
            else:
                in_amax = 0
            if idx + 1 == d0:
                skip_amax[0] = l["amax"]
            if idx + 1 == d0 + 1 + d1:
                skip_amax[1] = l["amax"]

    # -------------------------------------------------------------- conditioning

    def locate(self, lam):
        """(i, frac): lam lies between grid points i and i + 1, at frac / 256 (binary64)."""
        last = float(self.points - 1)
        t = lam * float(self.per_unit) - float(self.first)
        if t != t:
            t = 0.0
        t = min(max(t, 0.0), last)
        i = min(int(math.floor(t)), self.points - 2)
        frac = round_half_away((t - float(i)) * float(1 << FRAC_BITS))
        return i, int(frac)

    @staticmethod
    def interpolate(table, pos):
        i, frac = pos
        a, b = table[i], table[i + 1]
        return a + (((b - a) * np.int64(frac) + (1 << (FRAC_BITS - 1))) >> FRAC_BITS)

    # -------------------------------------------------------------- layers

    def _gemm(self, rows, l):
        if self.gemm == "float64":
            return (rows.astype(np.float64) @ l["wt"]).astype(np.int64)
        return rows.astype(np.int64) @ l["wt"]

    def _layer(self, l, bias, x):
        """Requantized outputs r (int64, (h', w', cout)) of layer l on map x (h, w, c)."""
        h, w, c = x.shape
        if l["gather"] == "taps3x3":
            xp = np.zeros((h + 2, w + 2, c), dtype=x.dtype)
            xp[1:-1, 1:-1] = x
            rows = np.empty((h, w, 9, c), dtype=x.dtype)
            for k in range(9):
                rows[:, :, k, :] = xp[k // 3:k // 3 + h, k % 3:k % 3 + w]
            oh, ow = h, w
        elif l["gather"] == "unshuffle":
            oh, ow = h // 2, w // 2
            rows = x.reshape(oh, 2, ow, 2, c).transpose(0, 2, 1, 3, 4)
        else:
            oh, ow = h, w
            rows = x
        acc = self._gemm(rows.reshape(oh * ow, l["k"]), l)
        r = ((acc + bias) * l["mult"] + l["round"]) >> l["shift"]
        return r.reshape(oh, ow, l["cout"])

    def predict_v(self, z, lam, mirrors=1):
        """V (int64, planar (3, H, W)) for z float32 (3, H, W), H and W multiples of 8: summed
        over the first `mirrors` mirror images of z, each mirrored back, the blocks matched
        once on z (spec/integer-network.md#mirror-images)."""
        _, h, w = z.shape
        assert z.dtype == np.float32 and h % STRIDE == 0 and w % STRIDE == 0 and h and w
        # Input quantization: round(z * 2^12) half away from zero, clamped, NaN -> 0. The f32
        # product is exact (a power of two) unless it overflows, and clamping comes first here
        # (equivalent: the bounds are integers), so binary64 does it exactly.
        q = quantize(z)
        nl = ARCHS[self.arch].get("matching")
        m = block_mean(q, **nl) if nl else None
        v = np.zeros((3, h, w), dtype=np.int64)
        for flip in MIRRORS[:mirrors]:
            v += flip(self.network_v(flip(q), None if m is None else flip(m), lam))
        return v

    def network_v(self, q, m, lam):
        """V (int64, planar (3, H, W)) of one pass: the quantized latent q and, with block
        matching, the block-matched mean m (both int64 (3, H, W))."""
        _, h, w = q.shape
        pos = self.locate(lam)
        pl = self.interpolate(self.planes, pos)
        a = ARCHS[self.arch]
        x = np.empty((h // 2, w // 2, 26 if m is not None else 14), dtype=np.int64)

        def unshuffle(p):
            return p.reshape(3, h // 2, 2, w // 2, 2).transpose(1, 3, 2, 4, 0) \
                .reshape(h // 2, w // 2, 12)
        x[:, :, :12] = unshuffle(q)
        x[:, :, 12] = pl[0]
        x[:, :, 13] = pl[1]
        if m is not None:
            x[:, :, 14:] = unshuffle(m)
        d0, d1 = a["depth"][0], a["depth"][1]
        skips = []
        out = None
        for idx, l in enumerate(self.layers):
            r = self._layer(l, self.interpolate(l["bias"], pos), x)
            if l["finish"] == "relu":
                x = np.clip(r, 0, l["amax"])
                if idx + 1 == d0 or idx + 1 == d0 + 1 + d1:
                    skips.append(x)
            elif l["finish"] == "into_skip":
                skip = skips.pop()
                sh, sw, sc = skip.shape
                r = r.reshape(sh // 2, sw // 2, 2, 2, sc).transpose(0, 2, 1, 3, 4) \
                    .reshape(sh, sw, sc)
                x = np.clip(skip + r, 0, l["amax"])
            else:
                out = np.clip(r, -V_MAX, V_MAX)
        # Pixel shuffle of the output: channel (dy 2 + dx) 3 + c -> planar (c, 2y + dy, 2x + dx).
        return out.reshape(h // 2, w // 2, 2, 2, 3).transpose(4, 0, 2, 1, 3).reshape(3, h, w)

    def predict_x_window(self, z, lam, mirrors=1):
        """x_hat = alpha z - sigma (V / (mirrors 2^12)) for an 8-aligned window (spec:
        composition); V, a sum over `mirrors` images, rounds to binary32 (nearest even)."""
        v = self.predict_v(z, lam, mirrors)
        a = F32(alpha(lam))
        s = F32(sigma(lam))
        unit = F32(1.0 / ((1 << V_LOG2) * mirrors))
        return np.subtract(np.multiply(a, z), np.multiply(s, np.multiply(v.astype(F32), unit)))

    def predict_x(self, z, lam, mirrors=1):
        """The network on a whole image of any size: edge-replicated to multiples of 8, then
        cropped back (tiles of any size give the same result; this evaluates one window)."""
        _, h, w = z.shape
        hp, wp = -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE
        zp = np.pad(z, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")
        return self.predict_x_window(zp, lam, mirrors)[:, :h, :w]


# The mirror images (spec/reconstruction.md#mirror-averaging), in the order their predictions
# are summed: the planes themselves, columns reversed, rows reversed, both. Each is its own
# inverse.
MIRRORS = [lambda a: a, lambda a: a[:, :, ::-1], lambda a: a[:, ::-1, :],
           lambda a: a[:, ::-1, ::-1]]


def alpha(lam):
    return math.sqrt(1.0 / (1.0 + detmath.exp(-lam)))


def sigma(lam):
    return math.sqrt(1.0 / (1.0 + detmath.exp(lam)))


# ------------------------------------------------------------------ multiscale wrapper


def downsample2(z, scale):
    """2x2 average, odd sizes edge-replicated, times scale (float32; spec/reconstruction.md)."""
    _, h, w = z.shape
    h2, w2 = -(-h // 2), -(-w // 2)
    y0 = 2 * np.arange(h2)
    y1 = np.minimum(y0 + 1, h - 1)
    x0 = 2 * np.arange(w2)
    x1 = np.minimum(x0 + 1, w - 1)

    def at(ys, xs):
        return z[:, ys[:, None], xs[None, :]]

    s = np.add(np.add(np.add(at(y0, x0), at(y0, x1)), at(y1, x0)), at(y1, x1))
    return np.multiply(np.multiply(s, F32(0.25)), F32(scale))


def upsample2(s, h, w):
    """Bilinear 2x upsampling of (C, ceil(h/2), ceil(w/2)) to (C, h, w) (float32)."""
    _, hs, ws = s.shape

    def taps(n, m):
        i = np.arange(n)
        j = i // 2
        other = np.where(i % 2 == 0, np.maximum(j - 1, 0), j + 1)
        return np.minimum(j, m - 1), np.minimum(other, m - 1)

    ya, yb = taps(h, hs)
    xa, xb = taps(w, ws)

    def at(ys, xs):
        return s[:, ys[:, None], xs[None, :]]

    t = np.add(np.multiply(F32(0.5625), at(ya, xa)), np.multiply(F32(0.1875), at(ya, xb)))
    t = np.add(t, np.multiply(F32(0.1875), at(yb, xa)))
    return np.add(t, np.multiply(F32(0.0625), at(yb, xb)))


def parse_experts(data):
    """(bounds, [expert weight bytes]) of a log-SNR experts file
    (spec/reconstruction.md#log-snr-experts), or None when data is not one."""
    meta, t = parse_safetensors(data)
    if (meta or {}).get("format") != EXPERTS_FORMAT:
        return None
    n = len(t) - 1
    if not 2 <= n <= MAX_EXPERTS:
        raise WeightError("experts file: %d tensors; want bounds and 2 to %d experts"
                          % (len(t), MAX_EXPERTS))
    if t.get("bounds", (None, None))[:2] != ("F64", (n - 1,)):
        raise WeightError("experts file: bounds must be F64 of shape [%d]" % (n - 1))
    bounds = list(struct.unpack("<%dd" % (n - 1), bytes(t["bounds"][2])))
    if not all(math.isfinite(b) for b in bounds) or \
            any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise WeightError("experts file: bounds %r must be finite and strictly increasing"
                          % bounds)
    experts = []
    for k in range(n):
        name = "expert.%d" % k
        if name not in t or t[name][0] != "U8" or len(t[name][1]) != 1:
            raise WeightError("experts file: %s must be a U8 vector" % name)
        raw = bytes(t[name][2])
        try:
            inner = parse_safetensors(raw)[0] or {}
        except WeightError:
            inner = {}
        if inner.get("format") == EXPERTS_FORMAT:
            raise WeightError("experts file: %s is itself an experts file" % name)
        experts.append(raw)
    return bounds, experts


class Prior:
    """A named integer model as the codec uses it: the network (or its log-SNR experts, each
    an integer network) in its multiscale wrapper, with its stream id."""

    def __init__(self, data, name="tiny-int", gemm=None):
        m = MODELS[name]
        self.name = name
        self.thresholds = m["thresholds"]
        self.mirrors = m["mirrors"]
        self.net_mirrors = m.get("net_mirrors", 1)
        parts = parse_experts(data)
        self.bounds, files = parts if parts else ([], [data])
        # One architecture for every expert, or one per expert ("deep,deep-nl,...").
        archs = m["arch"].split(",")
        if len(archs) == 1:
            archs = archs * len(files)
        if len(archs) != len(files):
            raise WeightError("%d experts, but the architectures %s name %d"
                              % (len(files), m["arch"], len(archs)))
        self.nets = [IntNet(f, a, gemm) for f, a in zip(files, archs)]
        self.net = self.nets[0]
        self.model_id = model_id(data, self.thresholds, self.mirrors, self.net_mirrors)

    @classmethod
    def from_file(cls, path=DEFAULT_WEIGHTS, name=None, gemm=None):
        """name: the model's (default: the file's name, e.g. tiny-int8.safetensors ->
        tiny-int8, when it is one of MODELS, else the first of MODELS whose architecture is
        the one the file's metadata names, then any that parses it)."""
        with open(path, "rb") as f:
            data = f.read()
        stem = os.path.basename(path).rsplit(".", 1)[0]
        if name is not None or stem in MODELS:
            return cls(data, name or stem, gemm)
        # The metadata `arch` is informative, but it is the right first guess.
        parts = parse_experts(data)
        meta = parse_safetensors(parts[1][0] if parts else data)[0] or {}
        order = sorted(MODELS, key=lambda n: MODELS[n]["arch"] != meta.get("arch"))
        for n in order:
            try:
                return cls(data, n, gemm)
            except WeightError:
                pass
        raise WeightError("not the weights of any of %s" % ", ".join(MODELS))

    def predict_x(self, z, lam):
        """x_hat (float32 (3, H, W)) of z (float32 (3, H, W)) at log-SNR lam (a float):
        the mean over the model's mirror images (spec/reconstruction.md#mirror-averaging)."""
        z = np.asarray(z)
        assert z.dtype == np.float32 and z.ndim == 3 and z.shape[0] == 3
        x = self.predict_one(z, lam)
        # Columns reversed, rows reversed, both: each mirrored back and summed in this order.
        for flip in MIRRORS[1:self.mirrors]:
            x = np.add(x, flip(self.predict_one(np.ascontiguousarray(flip(z)), lam)))
        if self.mirrors > 1:
            x = np.multiply(x, F32(1.0 / self.mirrors))
        return np.ascontiguousarray(x, dtype=F32)

    def predict_one(self, z, lam):
        """x_hat of one latent: the multiscale wrapper around the network (or experts)."""
        levels = sum(1 for t in self.thresholds if lam < t)
        sizes, l = [], lam
        for _ in range(levels):
            sizes.append(z.shape[1:])
            a2 = 1.0 / (1.0 + detmath.exp(-l))
            s2 = 1.0 / (1.0 + detmath.exp(l))
            c = math.sqrt(1.0 / (a2 + s2 / 4.0))
            z = downsample2(z, F32(c))
            l = l + LN4
        # The expert whose band holds the log-SNR the network receives (bounds[k-1] <= l <
        # bounds[k]).
        x = self.nets[sum(1 for b in self.bounds if l >= b)].predict_x(z, l, self.net_mirrors)
        for h, w in reversed(sizes):
            x = upsample2(x, h, w)
        return x


# ------------------------------------------------------------------ known answers


def test_latent(h, w):
    """z[i] = (((i * 7919) mod 2003) - 1001) / 512, i = 0 .. 3 H W - 1 (exact in binary32)."""
    i = np.arange(3 * h * w, dtype=np.int64)
    return (((i * 7919) % 2003 - 1001).astype(F32) / F32(512)).reshape(3, h, w)


def x_hash(x):
    return fnv1a64(np.ascontiguousarray(x, dtype="<f4").tobytes())


def repeats_latent(h, w):
    """z[c][y][x] = ((((x mod 12) 37 + (y mod 10) 11 + 5 c) mod 64) - 32) / 64: a pattern
    that repeats every 12 columns and 10 rows, so block matching meets exact ties."""
    y = np.arange(h)[:, None]
    x = np.arange(w)[None, :]
    return np.stack([((((x % 12) * 37 + (y % 10) * 11 + 5 * c) % 64) - 32).astype(F32) / F32(64)
                     for c in range(3)])


def quantize(z):
    """q(z) of the input map: round(z * 2^12) half away from zero, clamped, NaN -> 0."""
    v = np.clip(z.astype(np.float64) * float(1 << IN_LOG2), -IN_MAX, IN_MAX)
    q = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.where(np.isnan(q), 0.0, q).astype(np.int64)


# Block matching alone, with the parameters of each architecture that matches blocks
# (spec/integer-network.md#block-matching): (architecture, latent, H, W) -> FNV-1a 64 of the
# mean M of the quantized latent, planar, each value as 4 little-endian bytes (int32).
# `block_matching_known_answers` in src/prior/nonlocal.rs reads this table.
BLOCK_MEAN_KNOWN_ANSWERS = {
    ("deep-nl", "test", 24, 40): 0xAC092CF6BA10096C,
    ("deep-nl", "test", 48, 64): 0xAB22CA809EB02643,
    ("deep-nl", "repeats", 48, 64): 0xCD40ED3B81CF4C6E,
    ("deep-nl16", "test", 24, 40): 0x345C926B072028E1,
    ("deep-nl16", "test", 48, 64): 0xBB0967DA89E2DD55,
    ("deep-nl16", "repeats", 48, 64): 0xB690DBEEDAFB12C6,
}


def check_block_means():
    for (arch, latent, h, w), want in BLOCK_MEAN_KNOWN_ANSWERS.items():
        z = (test_latent if latent == "test" else repeats_latent)(h, w)
        got = fnv1a64(block_mean(quantize(z), **ARCHS[arch]["matching"]).astype("<i4").tobytes())
        assert got == want, "block mean of %s %s %dx%d: %016x" % (arch, latent, h, w, got)


# The shipped file models/shipped/tiny-int.safetensors: FNV-1a 64 of its bytes, its model id.
WEIGHTS_FNV = 0x4A03FD2055749242
MODEL_ID = 0x27A834E9D6F9F1EE
# (H, W, lambda) -> FNV-1a 64 of the little-endian binary32 bytes of x_hat = the prior's
# predict_x(test_latent(H, W), lambda) (multiscale wrapper included). tests/conformance.rs
# (`integer_prior_known_answers`) reads this table and holds the Rust code to it.
KNOWN_ANSWERS = {
    (24, 40, -20.0): 0xA742F3CB595B1880,
    (24, 40, -4.0): 0x76D9F8884559226C,
    (24, 40, -1.75): 0xF807D18D1C2D1745,
    (24, 40, -1.0): 0x0B1D23928D5EBB89,
    (24, 40, 0.125): 0xB5B91531CB010F10,
    (24, 40, 0.5): 0x424FA17CCFA34ADA,
    (24, 40, 3.26): 0x40D0D713CD3036CA,
    (24, 40, 9.0): 0xDF2BD7DE6279B1DF,
    (24, 40, 20.0): 0xF6F1CB25E3413198,
    (13, 29, -4.0): 0x975ED6232BD34C37,
    (13, 29, -1.0): 0x3009A5EEF9CCC3B8,
    (13, 29, 3.26): 0x04AEE0257D1DFC4B,
}

# The default prior, models/shipped/tiny-int8.safetensors (8-bit maps and weights: the Rust
# decoder runs it on its u8 x i8 kernels), pinned the same way (`eight_bit_prior_known_answers`
# in tests/conformance.rs).
INT8_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "models", "shipped", "tiny-int8.safetensors")
INT8_WEIGHTS_FNV = 0xB0D29BC491F18B28
INT8_MODEL_ID = 0xC05D71100491E8C0
INT8_KNOWN_ANSWERS = {
    (24, 40, -1.0): 0xAC9ADE019181178E,
    (24, 40, 0.5): 0x8B4BB4C0F1803DAF,
    (24, 40, 3.26): 0xE7FD483D1CAB1363,
    (24, 40, 9.0): 0xE94F5E2B776F8754,
    (13, 29, 3.26): 0xCB8E1D7598047FEC,
}


# The default prior, models/shipped/deep-int8.safetensors: log-SNR experts of `deep-nl16` and
# `deep`, 8-bit with 10-bit weights and 11-bit maps at half resolution
# (spec/reconstruction.md#log-snr-experts, spec/integer-network.md), each network over four
# mirror images sharing one block matching, pinned the same way (`experts_prior_known_answers`
# in tests/conformance.rs). The log-SNRs reach every expert, directly and through the
# multiscale halvings, and every bound exactly.
DEEP8_WEIGHTS = os.path.join(ROOT, "models", "shipped", "deep-int8.safetensors")
DEEP8_WEIGHTS_FNV = 0x1DE16A7262C8A526
DEEP8_MODEL_ID = 0x567BEDB8EF90E257
DEEP8_KNOWN_ANSWERS = {
    (24, 40, -4.0): 0x08593A3E7B379D64,
    (24, 40, -1.0): 0xD3C6F0DA6870A8FD,
    (24, 40, 0.5): 0x08A609F324961C58,
    (24, 40, 1.0): 0x5CD457D108AC7B46,
    (24, 40, 3.0): 0x058A5C43D8CEE4A0,
    (24, 40, 3.26): 0xFB240E98F2F93D25,
    (24, 40, 4.0): 0x80E9B3E6ACD881E5,
    (24, 40, 4.5): 0x25E03AB344B39A3E,
    (24, 40, 9.0): 0x5C50F099BC225F4C,
    (13, 29, 3.26): 0x1CE38094BE49602F,
}


# Four mirror images (spec/reconstruction.md#mirror-averaging, as the default averages them)
# on a small network, pinning the rows-reversed mirrors: tiny-int8 averaged over all four
# (`four_mirror_images_known_answers` in tests/conformance.rs).
MIRROR4_WEIGHTS_FNV = 0xB0D29BC491F18B28
MIRROR4_MODEL_ID = 0x426753FBFC55218B
MIRROR4_KNOWN_ANSWERS = {
    (24, 40, 3.26): 0xF46B6DA323192AEE,
    (13, 29, -1.0): 0x0C6CF8C32F3A099F,
}


# Mirror images inside each network (spec/integer-network.md#mirror-images): the sixth
# release's experts (`deep,deep-nl,deep-nl,deep`, which average their mirror images around the
# model as `deep-int8-s193986`) in the default's multiscale wrapper, four
# mirror images per network sharing one block matching, through a `deep-nl` expert at an
# aligned and an odd size (padding mirrored with the latent) and a `deep` one after a halving
# (`network_mirror_images_known_answers` in tests/conformance.rs).
NETMIRROR4_WEIGHTS = os.path.join(ROOT, "models", "shipped", "deep-int8-s193986.safetensors")
NETMIRROR4_WEIGHTS_FNV = 0x57FF68499C284521
NETMIRROR4_MODEL_ID = 0x22E478A3B405B268
NETMIRROR4_KNOWN_ANSWERS = {
    (24, 40, 3.26): 0x4D5594943F29FEA7,
    (13, 29, 4.2): 0xABD96DB4088ED8A3,
    (13, 29, -1.0): 0x44E2068B3D929278,
}


def _tensor_at(data, name):
    """(byte offset, dtype) of a tensor's data in a safetensors file."""
    n = struct.unpack_from("<Q", data, 0)[0]
    info = json.loads(bytes(data[8:8 + n]))[name]
    return 8 + n + info["data_offsets"][0], info["dtype"]


def _poke(name, index, value):
    """A mutation: element `index` of tensor `name` set to `value`."""
    def f(data):
        at, dtype = _tensor_at(data, name)
        fmt, size = {"I32": ("<i", 4), "I16": ("<h", 2), "I8": ("<b", 1), "U8": ("<B", 1),
                     "F64": ("<d", 8)}[dtype]
        struct.pack_into(fmt, data, at + index * size, value)
    return f


def _replace(old, new):
    """A mutation of the JSON header: `old` replaced by `new` (same length)."""
    def f(data):
        n = struct.unpack_from("<Q", data, 0)[0]
        at = bytes(data[8:8 + n]).index(old)
        data[8 + at:8 + at + len(new)] = new
    return f


def _fill_row(name, row, k, value):
    def f(data):
        for j in range(k):
            _poke(name, row * k + j, value)(data)
    return f


# Weight-file validation vectors (spec/integer-network.md#validation): each mutation of the
# shipped file must be rejected (True) or accepted (False). tests/conformance.rs
# (`integer_weight_files_are_validated`) applies the same mutations to the Rust loader.
MUTATIONS = [
    ("format diffc-int-v2", _replace(b"diffc-int-v1", b"diffc-int-v2"), True),
    ("last byte missing", lambda d: d.__delitem__(slice(len(d) - 1, None)), True),
    ("tensor out.amax missing", _replace(b'"out.amax"', b'"out.amay"'), True),
    ("planes shape [150, 3]", _replace(b'"shape":[225,2]', b'"shape":[150,3]'), True),
    ("weight -32768", _poke("enc1.0.w", 0, -32768), True),
    ("shift 0", _poke("mid.1.shift", 5, 0), True),
    ("shift 63", _poke("mid.1.shift", 5, 63), True),
    ("negative multiplier", _poke("down1.mult", 0, -1), True),
    ("bias -2^31", _poke("dec2.0.bias", 3, -(1 << 31)), True),
    ("noise plane 32768", _poke("planes", 7, 32768), True),
    ("noise plane -32768", _poke("planes", 8, -32768), True),
    ("grid per_unit 0", _poke("grid", 1, 0), True),
    ("grid per_unit 257", _poke("grid", 1, 257), True),
    ("grid first 513 (> 64 per_unit)", _poke("grid", 0, 513), True),
    ("relu amax 0", _poke("enc2.1.amax", 0, 0), True),
    ("relu amax 32768", _poke("enc2.1.amax", 0, 32768), True),
    ("up1 amax != enc1.1 amax", _poke("up1.amax", 0, 2046), True),
    ("sum could overflow i32", _fill_row("enc1.0.w", 0, 126, 1000), True),
    ("noise plane -2^31", _poke("planes", 9, -(1 << 31)), True),
    ("requantization could overflow i64", lambda d: (_fill_row("mid.0.w", 3, 1296, 800)(d),
                                                     _poke("mid.0.bias", 3, (1 << 31) - 1)(d),
                                                     _poke("mid.0.mult", 3, (1 << 31) - 1)(d),
                                                     _poke("mid.0.shift", 3, 62)(d)), True),
    # Accepted: not checked (out.amax is unused; arch comes from the model, not the file).
    ("output amax -5", _poke("out.amax", 0, -5), False),
    ("metadata arch tinz", _replace(b'"arch":"tiny"', b'"arch":"tinz"'), False),
    ("shift 62, multiplier 0", lambda d: (_poke("out.shift", 0, 62)(d),
                                           _poke("out.mult", 0, 0)(d)), False),
]


# Experts files that must be refused (spec/reconstruction.md#log-snr-experts).
EXPERTS_MUTATIONS = [
    ("a NaN bound", _poke("bounds", 0, float("nan"))),
    ("decreasing bounds", _poke("bounds", 1, -20.0)),
    ("equal bounds", _poke("bounds", 1, 2.5)),
    ("an unknown format version", _replace(b"diffc-experts-v1", b"diffc-experts-v2")),
]


def check_pins(data, name, weights_fnv, model_id_, known):
    """The file's hash and model id, and every known answer, as the Rust code pins them."""
    prior = Prior(data, name)
    assert fnv1a64(data) == weights_fnv, "%s: weights hash %016x" % (name, fnv1a64(data))
    assert prior.model_id == model_id_, "%s: model id %016x" % (name, prior.model_id)
    for (h, w, lam), want in known.items():
        got = x_hash(prior.predict_x(test_latent(h, w), lam))
        assert got == want, "%s, %dx%d at lambda %r: x_hat hash %016x, expected %016x" % (
            name, h, w, lam, got, want)
    return prior


def self_check(path=DEFAULT_WEIGHTS):
    import time
    t0 = time.time()
    # The model-id test vectors of spec/reconstruction.md#models.
    assert model_id(b"abc", (0.125, -1.75)) == 0x0394261BAE8B8C5D
    assert model_id(b"abc", (), 2) == 0x5AE817EC9F504058
    assert model_id(b"abc", (0.625, -1.25), 2) == 0xC2991E199CE05C0A
    assert model_id(b"abc", (), 1, 4) == 0x55051A1C185B2E60
    assert model_id(b"abc", (0.625, -1.25), 1, 4) == 0x235DC5B2F0D9CEFA
    data = open(path, "rb").read()
    prior = check_pins(data, "tiny-int", WEIGHTS_FNV, MODEL_ID, KNOWN_ANSWERS)
    prior8 = check_pins(open(INT8_WEIGHTS, "rb").read(), "tiny-int8", INT8_WEIGHTS_FNV,
                        INT8_MODEL_ID, INT8_KNOWN_ANSWERS)
    experts = open(DEEP8_WEIGHTS, "rb").read()
    prior_x = check_pins(experts, "deep-int8", DEEP8_WEIGHTS_FNV, DEEP8_MODEL_ID,
                         DEEP8_KNOWN_ANSWERS)
    assert len(prior_x.nets) == 4 and prior_x.bounds == [3.0, 4.0, 4.5], prior_x.bounds
    # The high expert is a `deep` file, which holds all of `tiny`'s layers: not a `tiny` file.
    try:
        IntNet(parse_experts(experts)[1][3], "tiny")
        raise AssertionError("a deep weight file accepted as tiny")
    except WeightError:
        pass
    for what, mutate in EXPERTS_MUTATIONS:
        bad = bytearray(experts)
        mutate(bad)
        try:
            Prior(bytes(bad), "deep-int8")
            raise AssertionError("experts file with %s accepted" % what)
        except WeightError:
            pass
    check_block_means()
    four = Prior(open(INT8_WEIGHTS, "rb").read(), "tiny-int8")
    four.mirrors = 4
    assert model_id(open(INT8_WEIGHTS, "rb").read(), four.thresholds, 4) == MIRROR4_MODEL_ID
    for (h, w, lam), want in MIRROR4_KNOWN_ANSWERS.items():
        got = x_hash(four.predict_x(test_latent(h, w), lam))
        assert got == want, "four mirrors, %dx%d at %r: %016x" % (h, w, lam, got)
    net4 = Prior(open(NETMIRROR4_WEIGHTS, "rb").read(), "deep-int8-s193986")
    net4.mirrors, net4.net_mirrors = 1, 4
    assert fnv1a64(open(NETMIRROR4_WEIGHTS, "rb").read()) == NETMIRROR4_WEIGHTS_FNV
    assert model_id(open(NETMIRROR4_WEIGHTS, "rb").read(), net4.thresholds, 1, 4) == \
        NETMIRROR4_MODEL_ID
    for (h, w, lam), want in NETMIRROR4_KNOWN_ANSWERS.items():
        got = x_hash(net4.predict_x(test_latent(h, w), lam))
        assert got == want, "mirrors in each network, %dx%d at %r: %016x" % (h, w, lam, got)
    # The float64 accumulation equals the int64 one (one case, all layers).
    other = Prior(data, gemm="int64" if prior.net.gemm == "float64" else "float64")
    z = test_latent(24, 40)
    assert np.array_equal(other.net.predict_v(z, 3.26), prior.net.predict_v(z, 3.26))
    for what, mutate, reject in MUTATIONS:
        bad = bytearray(data)
        mutate(bad)
        try:
            IntNet(bad)
            rejected = False
        except WeightError:
            rejected = True
        assert rejected == reject, "%s: %s" % (what, "rejected" if rejected else "accepted")
    print("intnet.py: model ids %016x, %016x and %016x, %d + %d + %d known answers match the "
          "Rust priors, %d + %d with mirror images, %d block-matching known answers, %d + %d "
          "weight-file validation vectors (%.1f s)"
          % (prior.model_id, prior8.model_id, prior_x.model_id, len(KNOWN_ANSWERS),
             len(INT8_KNOWN_ANSWERS), len(DEEP8_KNOWN_ANSWERS), len(MIRROR4_KNOWN_ANSWERS),
             len(NETMIRROR4_KNOWN_ANSWERS), len(BLOCK_MEAN_KNOWN_ANSWERS),
             len(MUTATIONS),
             len(EXPERTS_MUTATIONS), time.time() - t0))


# Where new pins are computed (`--pins`): every expert, directly and through the multiscale
# halvings, every default bound exactly, an odd size.
PIN_CASES = [(24, 40, -4.0), (24, 40, -1.0), (24, 40, 0.5), (24, 40, 1.0), (24, 40, 3.0),
             (24, 40, 3.26), (24, 40, 4.0),
             (24, 40, 4.5), (24, 40, 9.0), (13, 29, 3.26)]


def print_pins(path, name):
    """The pin lines of a new shipped model (its hash, id and known answers) for this file
    and tests/conformance.rs."""
    data = open(path, "rb").read()
    prior = Prior(data, name)
    print("WEIGHTS_FNV = 0x%016X" % fnv1a64(data))
    print("MODEL_ID = 0x%016X" % prior.model_id)
    for h, w, lam in PIN_CASES:
        print("    (%d, %d, %r): 0x%016X," % (h, w, lam, x_hash(prior.predict_x(test_latent(h, w),
                                                                            lam))))


def main(argv):
    if argv[:1] == ["--self-check"]:
        return self_check(*argv[1:2])
    if argv[:1] == ["--pins"] and len(argv) == 3:
        return print_pins(argv[1], argv[2])
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return
    if len(argv) != 1 or argv[0].startswith("--"):
        raise SystemExit(__doc__)
    try:
        data = open(argv[0], "rb").read()
        prior = Prior.from_file(argv[0])
    except OSError as e:
        raise SystemExit("intnet.py: cannot read %s: %s" % (argv[0], e.strerror))
    except WeightError as e:
        raise SystemExit("intnet.py: %s: %s" % (argv[0], e))
    n = prior.net
    print("format %s, metadata %s" % (INT_FORMAT, n.metadata))
    print("grid: first %d, per_unit %d, points %d (lambda %g .. %g)" % (
        n.first, n.per_unit, n.points, n.first / n.per_unit,
        (n.first + n.points - 1) / n.per_unit))
    for l in n.layers:
        print("%-7s %-9s %-9s k %4d cout %3d amax %5d shift %d..%d" % (
            l["name"], l["gather"], l["finish"], l["k"], l["cout"], l["amax"],
            l["shift"].min(), l["shift"].max()))
    print("weights fnv1a64 %016x, model id %016x" % (fnv1a64(data), prior.model_id))


if __name__ == "__main__":
    main(sys.argv[1:])
