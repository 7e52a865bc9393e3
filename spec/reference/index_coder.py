"""Independent reference of diffc's index coding (spec/index-coding.md), for cross-checking.

Run: python3 spec/reference/index_coder.py
  -> checks the known-answer vectors produced by the Rust implementation
     (src/rcc/index_coder.rs on top of constriction 0.5.0's DefaultRangeEncoder/Decoder),
     then round-trips random index sequences through the Python encoder and decoder.

Only integer arithmetic; no dependency beyond the standard library.
"""
import random

PRECISION = 24
TOTAL = 1 << PRECISION
INIT_COUNT = 2
INCREMENT = 32
RESCALE_LIMIT = 1 << 16
MAX_LOG2_K = 20

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


class FormatError(Exception):
    pass


# ---------------------------------------------------------------- adaptive bucket model


class Buckets:
    """log2_k + 1 buckets with integer counts, quantized to 2^24 after every update."""

    def __init__(self, log2_k):
        self.counts = [INIT_COUNT] * (log2_k + 1)
        self.cum = [0] * (log2_k + 2)
        self.quantize()

    def quantize(self):
        n = len(self.counts)
        total = sum(self.counts)
        free = TOTAL - n
        p = [1 + c * free // total for c in self.counts]
        # remainder to the FIRST bucket holding the largest count
        argmax = self.counts.index(max(self.counts))
        p[argmax] += TOTAL - sum(p)
        self.cum[0] = 0
        for i in range(n):
            self.cum[i + 1] = self.cum[i] + p[i]

    def update(self, b):
        self.counts[b] += INCREMENT
        if sum(self.counts) > RESCALE_LIMIT:
            self.counts = [(c + 1) // 2 for c in self.counts]
        self.quantize()

    def interval(self, s):
        return self.cum[s], self.cum[s + 1] - self.cum[s]

    def lookup(self, quantile):
        s = 0
        while s + 1 < len(self.counts) and self.cum[s + 1] <= quantile:
            s += 1
        return s, self.cum[s], self.cum[s + 1] - self.cum[s]


# ---------------------------------------------------------------- range coder (constriction)


class RangeEncoder:
    """Equivalent to constriction's RangeEncoder<u32, u64>: carries are propagated into the
    already produced words, which yields the same words as constriction's 'inverted' state."""

    def __init__(self):
        self.lower = 0
        self.range = M64
        self.words = []
        self.pending = 0  # words owed to the output whose value may still change by a carry

    def _carry(self):
        i = len(self.words) - 1
        while True:
            self.words[i] = (self.words[i] + 1) & M32
            if self.words[i] != 0:
                return
            i -= 1

    def encode(self, left, prob):
        scale = self.range >> PRECISION
        self.range = scale * prob
        new_lower = self.lower + scale * left
        if new_lower > M64:  # carry into the words already written
            self._carry()
        self.lower = new_lower & M64
        if self.range < (1 << 32):
            self.range <<= 32
            self.words.append(self.lower >> 32)
            self.lower = (self.lower << 32) & M64

    def finish(self):
        if self.range == M64:  # nothing encoded
            return []
        point = self.lower + M32
        upper = (self.lower + self.range) & M64
        if point > M64:
            self._carry()
        point &= M64
        out = list(self.words) + [point >> 32]
        if (upper >> 32) == (point >> 32):
            out.append(0)
        return out


class RangeDecoder:
    def __init__(self, words):
        self.words = list(words)
        self.pos = 0
        self.lower = 0
        self.range = M64
        self.point = (self._next() << 32) | self._next()

    def _next(self):
        if self.pos < len(self.words):
            w = self.words[self.pos]
            self.pos += 1
            return w
        return 0  # past the end: zero words

    def decode(self, lookup):
        scale = self.range >> PRECISION
        quantile = ((self.point - self.lower) & M64) // scale
        if quantile >= TOTAL:
            raise FormatError("range decoder: invalid data")
        s, left, prob = lookup(quantile)
        self.lower = (self.lower + scale * left) & M64
        self.range = scale * prob
        if self.range < (1 << 32):
            self.lower = (self.lower << 32) & M64
            self.range <<= 32
            self.point = ((self.point << 32) & M64) | self._next()
        return s


# ---------------------------------------------------------------- index coding


def encode_indices(indices, log2_k):
    assert 1 <= log2_k <= MAX_LOG2_K
    model = Buckets(log2_k)
    enc = RangeEncoder()
    for k in indices:
        assert 0 <= k < (1 << log2_k)
        n = k + 1
        b = n.bit_length() - 1
        enc.encode(*model.interval(b))
        if b > 0:
            per = TOTAL >> b  # uniform over 2^b raw values
            enc.encode((n - (1 << b)) * per, per)
        model.update(b)
    return enc.finish()


def decode_indices(words, count, log2_k):
    if not 1 <= log2_k <= MAX_LOG2_K:
        raise FormatError("log2_k")
    model = Buckets(log2_k)
    dec = RangeDecoder(words)
    out = []
    for _ in range(count):
        b = dec.decode(model.lookup)
        n = 1 << b
        if b > 0:
            per = TOTAL >> b
            n += dec.decode(lambda q: (q // per, (q // per) * per, per))
        if n > (1 << log2_k):
            raise FormatError("decoded index %d >= K" % (n - 1))
        out.append(n - 1)
        model.update(b)
    return out


# Produced by the Rust implementation (constriction 0.5.0): (log2_k, indices, words).
KNOWN_ANSWERS = [
    (4, [0, 1, 2, 3, 15, 7, 0, 0, 0, 14], [0x2A8DA42B, 0x23AF6A8F]),
    (1, [0, 1, 1, 0], [0x7AAAAA80]),
    (12, [4095, 0, 17, 300, 1, 2, 3, 2047], [0xEC4EC9DE, 0x6D873383, 0xCEDF5CE2]),
    (20, [1048575, 0, 999999], [0xF3CF3D03, 0x90FDE443]),
    (3, [0], [0x00000000]),
]


def self_check():
    for log2_k, idx, words in KNOWN_ANSWERS:
        got = encode_indices(idx, log2_k)
        assert got == words, (log2_k, idx, [hex(w) for w in got])
        assert decode_indices(words, len(idx), log2_k) == idx
    # Edge cases of the decoder, also checked against Rust.
    assert decode_indices([], 3, 4) == [0, 0, 0]  # missing words read as zeros
    for bad in ([0xFFFFFFFF, 0xFFFFFFFF],):
        try:
            decode_indices(bad, 2, 4)
            raise AssertionError("should fail")
        except FormatError:
            pass
    try:
        decode_indices([0xDEADBEEF], 1, 4)  # decodes n = 21 > K = 16
        raise AssertionError("should fail")
    except FormatError:
        pass
    # Random round trips, including long runs (rescaling) and carries.
    rng = random.Random(1)
    for trial in range(300):
        log2_k = rng.randint(1, MAX_LOG2_K)
        count = rng.choice([1, 2, 5, 50, 3000])
        skew = rng.random()
        idx = []
        for _ in range(count):
            e = rng.random() ** (1 + 3 * skew) * log2_k
            idx.append(min(int(2 ** e) - 1, (1 << log2_k) - 1))
        words = encode_indices(idx, log2_k)
        assert decode_indices(words, count, log2_k) == idx, trial
    print("index_coder.py: known answers and %d round trips OK" % 300)


if __name__ == "__main__":
    self_check()
