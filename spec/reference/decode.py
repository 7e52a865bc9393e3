"""Reference decoder of whole diffc streams coded with the built-in `gauss` prior or one of
the integer networks (`tiny-int`, `deep-int8` and the others listed under Models below).

Run: python3 spec/reference/decode.py STREAM [OUT.pnm] [--method denoise|flow|ancestral]
     [--flow-steps N] [--model-file WEIGHTS]
                        -> prints the header, one line per packet and the stop reason, and
                           writes the reconstruction as binary PGM/PPM. The defaults (flow,
                           4 flow steps, lambda_end 14) are the Rust decoder's, so the output
                           equals `diffc decompress STREAM OUT` bit for bit.
     python3 spec/reference/decode.py --self-check
                        -> decodes the example*.difc streams of this folder (whole and cut)
                           with every method and compares with the Rust decoder's output
                           pinned in this file.

It implements spec/format.md, spec/index-coding.md, spec/rcc.md and spec/reconstruction.md
with exact f32 emulation (every f32 operation is computed in double and rounded to f32, which
is exact for + - * / of f32 operands). `exp`/`expm1` are those of detmath.py, a bit-exact port
of the Rust code's (the `libm` crate 0.2.16), not Python's `math` (the platform libm), so the
coefficients have the Rust decoder's bits on every platform.

Models: `gauss` (id 0x98209D16F94A2017, standard library only) and the integer networks of
spec/integer-network.md, `deep-int8` (log-SNR experts, each network averaging four mirror
images, spec/reconstruction.md), its faster variant `deep-int8-fast` (the same weights over two
mirror images), its earlier releases `deep-int8-s283862` (and `deep-int8-s283862-fast`),
`deep-int8-s269661` (and `deep-int8-s269661-fast`),
`deep-int8-s259488` (and `deep-int8-s259488-fast`),
`deep-int8-s249215` (and `deep-int8-s249215-fast`),
`deep-int8-s239986` (and `deep-int8-s239986-fast`),
`deep-int8-s227715` (and `deep-int8-s227715-fast`),
`deep-int8-s201925` (and `deep-int8-s201925-fast`),
`deep-int8-s173722` (and `deep-int8-s173722-fast`),
`deep-int8-s193986` (and `deep-int8-s193986-fast`),
`deep-int8-s161868` (and `deep-int8-s161868-fast`),
`deep-int8-s125732` (and `deep-int8-s125732-fast`),
`deep-int8-s95064` (and `deep-int8-s95064-fast`),
`deep-int8-s89359` and `deep-int8-s83020`,
`tiny-int8` and `tiny-int`
(intnet.py, which needs NumPy; the model is found by the stream's model id among these names
and their files in models/shipped/, or given with --model-file, whose id must be the
stream's). Integer-network outputs are
exactly specified, so these decodes are bit-exact too.
Streams of the float networks (`tiny`, ...) cannot be reproduced outside the Rust code.
"""
import math
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detmath  # noqa: E402
import index_coder  # noqa: E402
import prng  # noqa: E402
import rcc  # noqa: E402

GAUSS_ID = 0x98209D16F94A2017
HEADER_LEN = 48


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


class Truncated(Exception):
    pass


class Corrupt(Exception):
    pass


# ------------------------------------------------------------------ container


def get_varint(b, pos, end):
    v = 0
    for i in range(10):
        if pos + i >= end:
            raise Truncated("varint")
        byte = b[pos + i]
        if i == 9 and byte > 1:
            raise Corrupt("varint overflows 64 bits")
        v |= (byte & 0x7F) << (7 * i)
        if byte & 0x80 == 0:
            return v, pos + i + 1
    raise Corrupt("varint longer than 10 bytes")


def parse_header(b):
    if b[:4] != b"DIFC"[: min(4, len(b))]:
        raise Corrupt("magic")
    if len(b) < HEADER_LEN:
        raise Truncated("header")
    if zlib.crc32(b[:44]) != struct.unpack_from("<I", b, 44)[0]:
        raise Corrupt("header_crc")
    version, channels, flags, width, height, model_id, seed, q0, q1, steps, max_width = \
        struct.unpack_from("<BBHIIQQiiHH", b, 4)
    if version != 1:
        raise Corrupt("version")
    if flags != 0:
        raise Corrupt("flags")
    if channels not in (1, 3):
        raise Corrupt("channels")
    if width == 0 or height == 0:
        raise Corrupt("width/height")
    if steps == 0:
        raise Corrupt("steps")
    if abs(q0) > 7680 or abs(q1) > 7680:
        raise Corrupt("lambda_start/lambda_stop")
    if steps > 1 and q1 <= q0:
        raise Corrupt("lambda_stop")
    if not 1 <= max_width <= 4096:
        raise Corrupt("max_width")
    return dict(channels=channels, width=width, height=height, model_id=model_id, seed=seed,
                q0=q0, q1=q1, steps=steps, max_width=max_width)


def grid_lambda(h, i):
    a = h["q0"] / 256.0
    if h["steps"] <= 1:
        return a
    b = h["q1"] / 256.0
    return a + (b - a) * float(i) / float(h["steps"] - 1)


def read_packet(b, pos, dims):
    """Returns (fields, next_pos); raises Truncated or Corrupt."""
    length, p = get_varint(b, pos, len(b))
    if length > 6 * dims + 64:
        raise Corrupt("packet length")
    end = p + length
    if len(b) < end + 4:
        raise Truncated("packet")
    if zlib.crc32(b[pos:end]) != struct.unpack_from("<I", b, end)[0]:
        raise Corrupt("packet_crc")
    if length == 0:
        raise Corrupt("flags: empty packet")
    flags = b[p]
    if flags & ~1:
        raise Corrupt("flags")
    p += 1
    try:
        n_chunks, p = get_varint(b, p, end)
        if p >= end:
            raise Corrupt("log2_k missing")
        log2_k = b[p]
        p += 1
        kl_bits, p = get_varint(b, p, end)
        final_q = None
        if flags & 1:
            z, p = get_varint(b, p, end)
            if z > 0xFFFFFFFF:
                raise Corrupt("final_lambda")
            final_q = (z >> 1) ^ -(z & 1)
    except Truncated:
        raise Corrupt("field runs past the end of its packet")
    if (end - p) % 4:
        raise Corrupt("packet payload")
    words = list(struct.unpack_from("<%dI" % ((end - p) // 4), b, p))
    return dict(n_chunks=n_chunks, log2_k=log2_k, kl_bits=kl_bits, final_q=final_q,
                words=words), end + 4


# ------------------------------------------------------------------ schedule and model


def alpha(l):
    return math.sqrt(1.0 / (1.0 + detmath.exp(-l)))


def sigma(l):
    return math.sqrt(1.0 / (1.0 + detmath.exp(l)))


def transition(lt, ls):
    a_s, s_s = alpha(ls), sigma(ls)
    if lt is None:
        return 0.0, a_s, s_s
    c = -detmath.expm1(lt - ls)
    a_t = alpha(lt)
    return a_s / a_t * (1.0 - c), a_s * c, s_s * math.sqrt(c)


def ddim(lt, ls):
    a_t, s_t, a_s, s_s = alpha(lt), sigma(lt), alpha(ls), sigma(ls)
    return s_s / s_t, a_s - s_s * a_t / s_t


def gauss_predict3(z3, lam):
    mean, var = f32(-0.05), f32(0.25)
    a, s = f32(alpha(lam)), f32(sigma(lam))
    gain = f32(f32(a * var) / f32(f32(f32(a * a) * var) + f32(s * s)))
    am = f32(a * mean)
    return [f32(mean + f32(gain * f32(v - am))) for v in z3]


def predict(h, z, lam):
    """x_hat of the stream's model (spec/reconstruction.md#predict): gray latents are given
    to the model as three identical planes and its outputs averaged."""
    channels, n = h["channels"], h["height"] * h["width"]
    prior = h["prior"]
    if prior is not None:
        return int_predict(prior, z, channels, h["height"], h["width"], lam)
    if channels == 3:
        return gauss_predict3(z, lam)
    o = gauss_predict3(z * 3, lam)
    return [f32(f32(f32(o[i] + o[n + i]) + o[2 * n + i]) / 3.0) for i in range(n)]


def int_predict(prior, z, channels, height, width, lam):
    """The same through the integer prior (intnet.py, NumPy binary32 arrays)."""
    import numpy as np
    zz = np.array(z, dtype=np.float32).reshape(channels, height, width)
    if channels == 1:
        zz = np.concatenate([zz, zz, zz])
    o = prior.predict_x(zz, lam)
    if channels == 1:
        o = np.divide(np.add(np.add(o[0], o[1]), o[2]), np.float32(3.0))
    return o.reshape(-1).tolist()


# The shipped integer priors (relative to the repository root), tried in turn for a stream's
# model id: the default (log-SNR experts of `deep-nl16` and `deep`, mostly 8-bit, four mirror
# images in each network), its faster
# variant (the same file, two mirror images), its earlier releases, then `tiny` in 8 and 11
# bits. (name, file).
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "models", "shipped")
INTEGER_MODELS = [(n, os.path.join(SHIPPED, f + ".safetensors"))
                  for n, f in (("deep-int8", "deep-int8"), ("deep-int8-fast", "deep-int8"),
                               ("deep-int8-s283862", "deep-int8-s283862"),
                               ("deep-int8-s283862-fast", "deep-int8-s283862"),
                               ("deep-int8-s269661", "deep-int8-s269661"),
                               ("deep-int8-s269661-fast", "deep-int8-s269661"),
                               ("deep-int8-s259488", "deep-int8-s259488"),
                               ("deep-int8-s259488-fast", "deep-int8-s259488"),
                               ("deep-int8-s249215", "deep-int8-s249215"),
                               ("deep-int8-s249215-fast", "deep-int8-s249215"),
                               ("deep-int8-s239986", "deep-int8-s239986"),
                               ("deep-int8-s239986-fast", "deep-int8-s239986"),
                               ("deep-int8-s227715", "deep-int8-s227715"),
                               ("deep-int8-s227715-fast", "deep-int8-s227715"),
                               ("deep-int8-s201925", "deep-int8-s201925"),
                               ("deep-int8-s201925-fast", "deep-int8-s201925"),
                               ("deep-int8-s173722", "deep-int8-s173722"),
                               ("deep-int8-s173722-fast", "deep-int8-s173722"),
                               ("deep-int8-s193986", "deep-int8-s193986"),
                               ("deep-int8-s193986-fast", "deep-int8-s193986"),
                               ("deep-int8-s161868", "deep-int8-s161868"),
                               ("deep-int8-s161868-fast", "deep-int8-s161868"),
                               ("deep-int8-s125732", "deep-int8-s125732"),
                               ("deep-int8-s125732-fast", "deep-int8-s125732"),
                               ("deep-int8-s95064", "deep-int8-s95064"),
                               ("deep-int8-s95064-fast", "deep-int8-s95064"),
                               ("deep-int8-s89359", "deep-int8-s89359"),
                               ("deep-int8-s83020", "deep-int8-s83020"),
                               ("tiny-int8", "tiny-int8"), ("tiny-int", "tiny-int"))]
INTEGER_WEIGHTS = list(dict.fromkeys(path for _, path in INTEGER_MODELS))
_PRIORS = {}


def resolve_model(model_id, model_file=None):
    """None for gauss, else the integer prior whose id is model_id (intnet.Prior)."""
    if model_id == GAUSS_ID:
        return None
    models = [(None, model_file)] if model_file else \
        [(n, p) for n, p in INTEGER_MODELS if os.path.exists(p)]
    if not models:
        raise SystemExit("decode.py: stream needs model %016x; no integer weights found (%s)"
                         % (model_id, ", ".join(INTEGER_WEIGHTS)))
    tried = []
    for name, path in models:
        if (name, path) not in _PRIORS:
            try:
                import intnet
            except ImportError as e:
                raise SystemExit("decode.py: stream needs model %016x; the integer prior needs "
                                 "NumPy (%s)" % (model_id, e))
            if not os.path.exists(path):
                raise SystemExit("decode.py: stream needs model %016x; no weights at %s"
                                 % (model_id, path))
            try:
                _PRIORS[(name, path)] = intnet.Prior.from_file(path, name)
            except OSError as e:
                raise SystemExit("decode.py: cannot read %s: %s" % (path, e.strerror))
            except intnet.WeightError as e:
                raise SystemExit("decode.py: %s: %s" % (path, e))
        prior = _PRIORS[(name, path)]
        if prior.model_id == model_id:
            return prior
        tried.append("%s is %016x" % (path, prior.model_id))
    raise SystemExit("decode.py: stream needs model %016x, but %s (this reference decodes gauss, "
                     "%016x, and the integer networks)" % (model_id, "; ".join(tried), GAUSS_ID))


def update(z, x_hat, e, cz, cx, sd):
    cz, cx, sd = f32(cz), f32(cx), f32(sd)
    return [f32(f32(f32(cz * zv) + f32(cx * xv)) + f32(sd * ev)) for zv, xv, ev in zip(z, x_hat, e)]


# ------------------------------------------------------------------ decoder


def decode(b, model_file=None):
    h = parse_header(b)  # Truncated / Corrupt here: no image
    h["prior"] = resolve_model(h["model_id"], model_file)
    dims = h["channels"] * h["height"] * h["width"]
    z, lam = [0.0] * dims, None
    pos, i, finished, stop, packets = HEADER_LEN, 0, False, None, []
    while True:
        if finished or i >= h["steps"]:
            stop = ("TrailingBytes", len(b) - pos) if pos < len(b) else ("Complete",)
            break
        try:
            pk, nxt = read_packet(b, pos, dims)
            if not 1 <= pk["n_chunks"] <= dims:
                raise Corrupt("n_chunks")
            if not 1 <= pk["log2_k"] <= 20:
                raise Corrupt("log2_k")
            if pk["final_q"] is None:
                ls = grid_lambda(h, i)
            else:
                ls = pk["final_q"] / 256.0
                if abs(ls) > 30.0 or (lam is not None and ls <= lam):
                    raise Corrupt("final_lambda")
            try:
                idx = index_coder.decode_indices(pk["words"], pk["n_chunks"], pk["log2_k"])
            except index_coder.FormatError as err:
                raise Corrupt("indices: %s" % err)
            e = rcc.decode_step(h["seed"], i, dims, pk["n_chunks"], pk["log2_k"],
                                h["max_width"], idx)
        except Truncated:
            stop = ("Truncated", pos)
            break
        except Corrupt as err:
            stop = ("Corrupt", i, pos, str(err))
            break
        x_hat = [0.0] * dims if lam is None else predict(h, z, lam)
        cz, cx, sd = transition(lam, ls)
        z = update(z, x_hat, e, cz, cx, sd)
        lam, finished = ls, pk["final_q"] is not None
        packets.append((i, ls, nxt - pos, pk["n_chunks"], pk["log2_k"], pk["kl_bits"], idx))
        pos, i = nxt, i + 1
    return h, z, lam, packets, stop


# Reconstruction defaults: the Rust decoder's (`ReconstructOptions::default()` in
# src/reconstruct.rs, `diffc decompress` without options).
DEFAULT_METHOD = "flow"
DEFAULT_FLOW_STEPS = 4
DEFAULT_LAMBDA_END = 14.0


def reconstruct(h, z, lam, method=DEFAULT_METHOD, flow_steps=DEFAULT_FLOW_STEPS,
                lambda_end=DEFAULT_LAMBDA_END):
    dims = h["channels"] * h["height"] * h["width"]
    if lam is None:
        return [0.0] * dims
    x = predict(h, z, lam)
    if method == "denoise" or flow_steps == 0 or lam >= lambda_end:
        return x
    zz, lt = list(z), lam
    for i in range(1, flow_steps + 1):
        ls = lam + (lambda_end - lam) * float(i) / float(flow_steps)
        if method == "flow":
            cz, cx = (f32(v) for v in ddim(lt, ls))
            zz = [f32(f32(cz * zv) + f32(cx * xv)) for zv, xv in zip(zz, x)]
        else:
            cz, cx, sd = transition(lt, ls)
            noise = [f32(v) for v in prng.normals_row_exact(h["seed"], 5, i, 0, dims)]
            zz = update(zz, x, noise, cz, cx, sd)
        x = predict(h, zz, ls)
        lt = ls
    return x


def to_8bit(h, x):
    c, n = h["channels"], h["height"] * h["width"]
    out = bytearray(c * n)
    for ch in range(c):
        for p in range(n):
            v = f32(f32(x[ch * n + p] + 1.0) * 127.5)
            r = math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)
            out[p * c + ch] = int(min(max(r, 0), 255)) if v == v else 0
    return bytes(out)


def pnm(h, data):
    magic = b"P6" if h["channels"] == 3 else b"P5"
    return magic + b"\n%d %d\n255\n" % (h["width"], h["height"]) + data


USAGE = """usage: python3 spec/reference/decode.py STREAM [OUT.pnm]
           [--method denoise|flow|ancestral] [--flow-steps N] [--model-file WEIGHTS]
       python3 spec/reference/decode.py --self-check"""


def usage_error(message):
    """Exits with status 2 (as diffc's command line does for usage errors)."""
    sys.stderr.write("decode.py: %s\n%s\n" % (message, USAGE))
    sys.exit(2)


def main(argv):
    if argv[:1] == ["--self-check"]:
        return self_check()
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    method, flow_steps, model_file, args = DEFAULT_METHOD, DEFAULT_FLOW_STEPS, None, []
    it = iter(argv)
    for a in it:
        if a in ("--method", "--flow-steps", "--model-file"):
            value = next(it, None)
            if value is None or value.startswith("--"):
                usage_error("%s needs a value" % a)
            if a == "--method":
                if value not in ("denoise", "flow", "ancestral"):
                    usage_error("unknown method %r" % value)
                method = value
            elif a == "--flow-steps":
                if not (value.isascii() and value.isdigit()) or int(value) > 1000:
                    usage_error("--flow-steps takes an integer 0..1000 (as diffc's), not %r"
                                % value)
                flow_steps = int(value)
            else:
                model_file = value
        elif a.startswith("--"):
            usage_error("unknown option %s (a file named so: ./%s)" % (a, a))
        else:
            args.append(a)
    if not args:
        usage_error("missing STREAM")
    if len(args) > 2:
        usage_error("too many arguments")
    try:
        b = open(args[0], "rb").read()
    except OSError as e:
        sys.exit("decode.py: cannot read %s: %s" % (args[0], e.strerror))
    try:
        h, z, lam, packets, stop = decode(b, model_file)
    except (Truncated, Corrupt) as e:
        sys.exit("decode.py: %s: %s (%s)" % (args[0], type(e).__name__.lower(), e))
    prior = h["prior"]
    print("header", {k: v for k, v in h.items() if k != "prior"})
    print("model", "gauss" if prior is None else "%s (%016x)" % (prior.name, prior.model_id))
    for p in packets:
        print("step %d lambda %.6f bytes %d n_chunks %d log2_k %d kl_bits %d" % p[:6])
    print("stop", stop)
    if len(args) > 1:
        img = to_8bit(h, reconstruct(h, z, lam, method, flow_steps))
        open(args[1], "wb").write(pnm(h, img))


HERE = os.path.dirname(os.path.abspath(__file__))
# The pins below were made with 6 flow steps (not the default 4), which --self-check passes.
# tests/conformance.rs reads this table and this constant and holds the Rust decoder to them.
SELF_CHECK_FLOW_STEPS = 6
# SHA-256 of the 8-bit samples (interleaved, as written to the image) that the Rust decoder
# (`diffc decompress --method M --bytes CUT --flow-steps 6`, lambda_end = 14) produced
# for the example streams of this folder, encoded by `diffc compress --model gauss`:
#   example-rgb.difc        8x6 RGB, seed 42, grid (-4, 10, 8), log2_k 8, chunk_bits 4, bpp 30
#                           (3 packets, the last one with a final lambda q = -110)
#   example-rgb-16x12.difc  16x12 RGB, seed 12345, grid (-5, 7, 10), log2_k 10, chunk_bits 6,
#                           bpp 8 (4 packets, final lambda; step 0 has 3 segments of 192)
#   example-gray.difc       8x6 gray, seed 7, grid (-3, 9, 5), log2_k 6, steps 5 (complete grid)
EXPECTED = {
    ('example-rgb.difc', 48, 'denoise'): '7053108d4e37b600ae17d35890c69102ee6484d79a3a5cd622afca6f5606c543',
    ('example-rgb.difc', 48, 'flow'): '7053108d4e37b600ae17d35890c69102ee6484d79a3a5cd622afca6f5606c543',
    ('example-rgb.difc', 48, 'ancestral'): '7053108d4e37b600ae17d35890c69102ee6484d79a3a5cd622afca6f5606c543',
    ('example-rgb.difc', 62, 'denoise'): '8b0088f08531d4dad4c3d461288f89a7dee5e3ef7a8224328087a590ad1cb01f',
    ('example-rgb.difc', 62, 'flow'): '8bf1d511b12555f2fda590f6fa1f32258a0d86cb91ad6da40c61b7beb6e6eeeb',
    ('example-rgb.difc', 62, 'ancestral'): 'b984bc99db9fd5f1f34ac66e9aac773426d6287b2aeaf1613220971d7a6890e5',
    ('example-rgb.difc', 89, 'denoise'): '0d01d912f108bae515a7db37c45618a5a501990884df18e1a8cec525858d1787',
    ('example-rgb.difc', 89, 'flow'): '54afe21b56a6e02a3708c19890d02be681da950daabd5b8096c1ef57f8a40991',
    ('example-rgb.difc', 89, 'ancestral'): '118fbebe7a5a55e6057beee58b63fb08be81ae658af3f3f1f9596607b52d29a7',
    ('example-rgb-16x12.difc', 48, 'denoise'): 'af1857bf5516aa3e2e39b6842559746fa7b45daa8dc4cc6675ad86e0cfe425b9',
    ('example-rgb-16x12.difc', 48, 'flow'): 'af1857bf5516aa3e2e39b6842559746fa7b45daa8dc4cc6675ad86e0cfe425b9',
    ('example-rgb-16x12.difc', 48, 'ancestral'): 'af1857bf5516aa3e2e39b6842559746fa7b45daa8dc4cc6675ad86e0cfe425b9',
    ('example-rgb-16x12.difc', 62, 'denoise'): '1c7e96c309ea8113f5378f98e3710d1c3cd8810182f2160ce6e7452784ae6830',
    ('example-rgb-16x12.difc', 62, 'flow'): 'd7534071db69a53de1d6e602e4804955a5958c2a4b594ee55aabe20ef41c3d17',
    ('example-rgb-16x12.difc', 62, 'ancestral'): '10885b4a683956f5e855ae8ecb8ef0c3d913084ff3929ece54de539f0071429a',
    ('example-rgb-16x12.difc', 106, 'denoise'): '6bb97722d49b66b7ada420da7735b3fdaa2f03ec0f4a399587fd703cbce4de46',
    ('example-rgb-16x12.difc', 106, 'flow'): '98c9ac036bfd0c6900d62489bc318e838e6c1091144ed834eda0e14b1f29e1f9',
    ('example-rgb-16x12.difc', 106, 'ancestral'): '80f3176b2b68bc5ffc3cfac5865949c8021590bbc675f39e433eadbcf4ea60d1',
    ('example-gray.difc', 48, 'denoise'): '2ac4dd6f486e2f061ebe8ce8b651dbdf25d71b88184d0bf308608cdcaae05309',
    ('example-gray.difc', 48, 'flow'): '2ac4dd6f486e2f061ebe8ce8b651dbdf25d71b88184d0bf308608cdcaae05309',
    ('example-gray.difc', 48, 'ancestral'): '2ac4dd6f486e2f061ebe8ce8b651dbdf25d71b88184d0bf308608cdcaae05309',
    ('example-gray.difc', 62, 'denoise'): 'f00fadab9903cddbec07295bbd8efb0e527bd1a89c6588642d0e4491f33a1ec2',
    ('example-gray.difc', 62, 'flow'): '9b72d61d6a4a63075f577b79e221b423dcc9c88e27cec6b88e9c708b65280e9d',
    ('example-gray.difc', 62, 'ancestral'): 'f78aed4551737e8f7b7c53fba3498000552b8f84209b321f7db4494580376605',
    ('example-gray.difc', 192, 'denoise'): 'a097f830ba2407decd490a1880a8e3954c5989694d48ada98472f347242f7523',
    ('example-gray.difc', 192, 'flow'): 'a097f830ba2407decd490a1880a8e3954c5989694d48ada98472f347242f7523',
    ('example-gray.difc', 192, 'ancestral'): 'bf6d50e48ea4c933ee285fe77f54d3daf30ad5e8128fc9d03eb076ee10ee30f6',
}


def self_check():
    import hashlib
    for (name, cut, method), want in EXPECTED.items():
        b = open(os.path.join(HERE, name), "rb").read()[:cut]
        h, z, lam, packets, stop = decode(b)
        x = reconstruct(h, z, lam, method, SELF_CHECK_FLOW_STEPS)
        got = hashlib.sha256(to_8bit(h, x)).hexdigest()
        assert got == want, (name, cut, method)
    print("decode.py: %d example decodes match the Rust decoder" % len(EXPECTED))


if __name__ == "__main__":
    main(sys.argv[1:])
