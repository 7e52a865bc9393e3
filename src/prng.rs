//! Shared randomness: Philox4x32-10 and an exactly specified uniform → normal transform.
//!
//! Encoder and decoder must draw bit-identical candidates on every platform, so this module
//! is part of the format (`spec/prng.md`). It uses only integer arithmetic and IEEE-754
//! `+ - * / sqrt` on `f64` (Rust never contracts these into FMA), never `libm`.

/// What a stream of random numbers is used for; the domain is the counter's last word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Domain {
    /// Candidate pool normals of a step (row, column pair).
    Pool = 1,
    /// Per-position sign flips of a step.
    Sign = 2,
    /// Affine permutation parameters of each segment of a step.
    SegmentPermutation = 3,
    /// Fisher–Yates permutation of the dimensions of a step.
    DimPermutation = 4,
    /// Decoder-side noise of ancestral sampling.
    Ancestral = 5,
    /// Encoder-private arrival times of the Poisson functional representation.
    Arrival = 6,
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// The Philox4x32 block function with 10 rounds (Salmon et al., Random123).
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// A keyed, counter-based random source: `block(domain, step, index)` is a pure function.
#[derive(Clone, Copy, Debug)]
pub struct Philox {
    key: [u32; 2],
}

impl Philox {
    /// Key the generator with the stream seed.
    pub fn new(seed: u64) -> Self {
        Philox {
            key: [seed as u32, (seed >> 32) as u32],
        }
    }

    /// Four random words for counter `(index_lo, index_hi, step, domain)`.
    #[inline]
    pub fn block(&self, domain: Domain, step: u32, index: u64) -> [u32; 4] {
        philox4x32_10(
            [index as u32, (index >> 32) as u32, step, domain as u32],
            self.key,
        )
    }

    /// Two standard normals from the block at `index` (words 0,1 and words 2,3).
    #[inline]
    pub fn normal_pair(&self, domain: Domain, step: u32, index: u64) -> [f64; 2] {
        let w = self.block(domain, step, index);
        [normal_from_words(w[0], w[1]), normal_from_words(w[2], w[3])]
    }

    /// Fill `out` with normals `0..out.len()` of row `row`: normal `j` is element `j % 2` of
    /// `normal_pair(domain, step, (row << 32) | (j / 2))`.
    ///
    /// The encoder draws millions per step (its candidate pool), so the row goes in blocks:
    /// the uniforms first, then [`inverse_normal_cdf`]'s central branch over the whole block as
    /// vector arithmetic, then the tails (about 15%) one by one; the bits are the scalar
    /// function's.
    pub fn fill_normals_row(&self, domain: Domain, step: u32, row: u32, out: &mut [f32]) {
        const BLOCK: usize = 256;
        let base = (row as u64) << 32;
        let mut p = [0f64; BLOCK];
        for (b, out) in out.chunks_mut(BLOCK).enumerate() {
            let p = &mut p[..out.len()];
            for (i, pair) in p.chunks_mut(2).enumerate() {
                let w = self.block(domain, step, base | (b * BLOCK / 2 + i) as u64);
                pair[0] = uniform_open(w[0], w[1]);
                if let Some(second) = pair.get_mut(1) {
                    *second = uniform_open(w[2], w[3]);
                }
            }
            centrals(p, out);
            for (o, &p) in out.iter_mut().zip(p.iter()) {
                let q = p - 0.5;
                if q.abs() > 0.425 {
                    *o = tail(p, q) as f32;
                }
            }
        }
    }
}

/// `out[i] = central(p[i] - 0.5)` for every `i` (meaningless where `|p - 0.5| > 0.425`, which the
/// caller overwrites), as 4-lane vector arithmetic where the CPU has AVX2.
fn centrals(p: &[f64], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only feature the function is compiled for.
        return unsafe { centrals_avx2(p, out) };
    }
    centrals_plain(p, out)
}

#[inline(always)]
fn centrals_plain(p: &[f64], out: &mut [f32]) {
    for (o, &p) in out.iter_mut().zip(p) {
        *o = central(p - 0.5) as f32;
    }
}

/// [`centrals_plain`] compiled for AVX2 (the compiler never fuses a multiply and an add, so
/// the wider vectors change nothing but the speed).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn centrals_avx2(p: &[f64], out: &mut [f32]) {
    centrals_plain(p, out)
}

/// Uniform double from two words: `((a >> 5) * 2^26 + (b >> 6) + 0.5) / 2^53`, in `(0, 1)`
/// except that the top 2^-53 of inputs round to exactly `1.0` (deterministically; see
/// `spec/prng.md`).
#[inline]
pub fn uniform_open(a: u32, b: u32) -> f64 {
    let m = ((a >> 5) as u64) << 26 | (b >> 6) as u64;
    (m as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
}

/// Uniform integer in `[0, n)` from a 64-bit word by multiply-shift (`(r * n) >> 64`).
#[inline]
pub fn uniform_below(r: u64, n: u64) -> u64 {
    ((r as u128 * n as u128) >> 64) as u64
}

/// Natural logarithm of a positive normal `f64`, built from `+ - * /` only.
///
/// `x = 2^e * m` with `m` in `[sqrt(1/2), sqrt(2))`; `ln m = 2 atanh(s)`, `s = (m-1)/(m+1)`,
/// summed as a Horner polynomial in `s^2` with 11 terms (error < 1e-16 relative).
pub fn det_ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    (e as f64) * std::f64::consts::LN_2 + 2.0 * s * p
}

/// Inverse standard normal CDF, Wichura's AS241 (PPND16), with [`det_ln`] for the logarithm.
pub fn inverse_normal_cdf(p: f64) -> f64 {
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        return central(q);
    }
    tail(p, q)
}

/// [`inverse_normal_cdf`] where `|q| = |p - 0.5| <= 0.425`: a rational function of `q`, no
/// branch, so a loop over many compiles to vector arithmetic (`+ - * /` in the same order,
/// the same bits).
// Coefficients grouped as printed in AS241, not by thousands.
#[allow(clippy::inconsistent_digit_grouping, clippy::excessive_precision)]
#[inline(always)]
fn central(q: f64) -> f64 {
    let r = 0.180625 - q * q;
    let num =
        ((((((2509.080_928_730_122_7 * r + 33430.575_583_588_13) * r + 67265.770_927_008_7) * r
            + 45921.953_931_549_87)
            * r
            + 13731.693_765_509_461)
            * r
            + 1971.590_950_306_551_3)
            * r
            + 133.141_667_891_784_38)
            * r
            + 3.387_132_872_796_366_5;
    let den =
        ((((((5226.495_278_852_546 * r + 28729.085_735_721_943) * r + 39307.895_800_092_71) * r
            + 21213.794_301_586_597)
            * r
            + 5394.196_021_424_751)
            * r
            + 687.187_007_492_057_9)
            * r
            + 42.313_330_701_600_91)
            * r
            + 1.0;
    q * num / den
}

/// [`inverse_normal_cdf`] where `|q| = |p - 0.5| > 0.425`.
#[allow(clippy::inconsistent_digit_grouping, clippy::excessive_precision)]
fn tail(p: f64, q: f64) -> f64 {
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let mut r = (-det_ln(tail)).sqrt();
    let val = if r <= 5.0 {
        r -= 1.6;
        let num = ((((((7.745_450_142_783_414e-4 * r + 0.022_723_844_989_269_184) * r
            + 0.241_780_725_177_450_6)
            * r
            + 1.270_458_252_452_368_4)
            * r
            + 3.647_848_324_763_204_6)
            * r
            + 5.769_497_221_460_691)
            * r
            + 4.630_337_846_156_545)
            * r
            + 1.423_437_110_749_683_6;
        let den = ((((((1.050_750_071_644_416_8e-9 * r + 5.475_938_084_995_345e-4) * r
            + 0.015_198_666_563_616_457)
            * r
            + 0.148_103_976_427_480_07)
            * r
            + 0.689_767_334_985_1)
            * r
            + 1.676_384_830_183_803_8)
            * r
            + 2.053_191_626_637_759)
            * r
            + 1.0;
        num / den
    } else {
        r -= 5.0;
        let num = ((((((2.010_334_399_292_288e-7 * r + 2.711_555_568_743_487_6e-5) * r
            + 0.001_242_660_947_388_078_4)
            * r
            + 0.026_532_189_526_576_124)
            * r
            + 0.296_560_571_828_504_9)
            * r
            + 1.784_826_539_917_291_3)
            * r
            + 5.463_784_911_164_114)
            * r
            + 6.657_904_643_501_103;
        let den = ((((((2.044_263_103_389_939_8e-15 * r + 1.421_511_758_316_446e-7) * r
            + 1.846_318_317_510_054_8e-5)
            * r
            + 7.868_691_311_456_133e-4)
            * r
            + 0.014_875_361_290_850_615)
            * r
            + 0.136_929_880_922_735_8)
            * r
            + 0.599_832_206_555_887_9)
            * r
            + 1.0;
        num / den
    };
    if q < 0.0 {
        -val
    } else {
        val
    }
}

/// One standard normal from two words: `inverse_normal_cdf(uniform_open(a, b))`.
#[inline]
pub fn normal_from_words(a: u32, b: u32) -> f64 {
    inverse_normal_cdf(uniform_open(a, b))
}

/// Standard exponential from two words: `-det_ln(uniform_open(a, b))`.
#[inline]
pub fn exponential_from_words(a: u32, b: u32) -> f64 {
    -det_ln(uniform_open(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answers_random123() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn det_ln_matches_libm() {
        for &x in &[
            1e-300, 1e-16, 0.001, 0.3, 0.5, 0.7, 0.99999, 1.0, 1.5, 2.0, 1e10,
        ] {
            let a = det_ln(x);
            let b = x.ln();
            assert!((a - b).abs() <= 4e-16 * b.abs().max(1.0), "{x}: {a} vs {b}");
        }
    }

    #[test]
    fn inverse_cdf_matches_reference_values() {
        // Reference quantiles (Python statistics.NormalDist().inv_cdf, also AS241).
        let cases = [
            (0.975, 1.959_963_984_540_054),
            (0.5, 0.0),
            (0.1, -1.281_551_565_544_600_4),
            (1e-10, -6.361_340_902_404_056),
            (0.999_999, 4.753_424_308_817_089),
        ];
        for (p, want) in cases {
            let got = inverse_normal_cdf(p);
            assert!((got - want).abs() < 1e-13, "p={p}: {got} vs {want}");
        }
    }

    /// Pinned outputs of the full normal pipeline: these are part of the format.
    #[test]
    fn normal_known_answers() {
        let g = Philox::new(0x0123_4567_89ab_cdef);
        let mut row = [0f32; 5];
        g.fill_normals_row(Domain::Pool, 7, 3, &mut row);
        let bits: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, KNOWN_ROW_BITS.to_vec(), "row values {row:?}");
    }

    /// A row filled in blocks (vector central branch, scalar tails) is normal by normal what
    /// [`Philox::normal_pair`] gives, across block edges, odd lengths and both branches; and
    /// the plain and the AVX2 central loops agree bit for bit.
    #[test]
    fn row_fill_is_the_scalar_pipeline() {
        let g = Philox::new(77);
        for (row, len) in [
            (0, 1),
            (1, 2),
            (2, 255),
            (3, 256),
            (4, 257),
            (5, 1001),
            (6, 4096),
        ] {
            let mut out = vec![0f32; len];
            g.fill_normals_row(Domain::Pool, 5, row, &mut out);
            for (j, &v) in out.iter().enumerate() {
                let pair = g.normal_pair(Domain::Pool, 5, ((row as u64) << 32) | (j / 2) as u64);
                assert_eq!(
                    v.to_bits(),
                    (pair[j % 2] as f32).to_bits(),
                    "row {row} j {j}"
                );
            }
        }
        let p: Vec<f64> = (0..10_000).map(|i| (i as f64 + 0.5) / 10_000.0).collect();
        let mut plain = vec![0f32; p.len()];
        centrals_plain(&p, &mut plain);
        let mut best = vec![0f32; p.len()];
        centrals(&p, &mut best);
        for ((a, b), p) in plain.iter().zip(&best).zip(&p) {
            assert_eq!(a.to_bits(), b.to_bits(), "p {p}");
            if (p - 0.5).abs() <= 0.425 {
                assert_eq!(
                    a.to_bits(),
                    (inverse_normal_cdf(*p) as f32).to_bits(),
                    "p {p}"
                );
            }
        }
    }

    // Cross-checked with the independent Python reference `spec/reference/prng.py`.
    const KNOWN_ROW_BITS: [u32; 5] = [1067726286, 1069345059, 3198381641, 3202183992, 3196077465];

    #[test]
    fn normals_have_unit_moments() {
        let g = Philox::new(42);
        let n = 200_000u64;
        let (mut s1, mut s2, mut s4) = (0.0, 0.0, 0.0);
        for i in 0..n / 2 {
            for v in g.normal_pair(Domain::Pool, 0, i) {
                s1 += v;
                s2 += v * v;
                s4 += v * v * v * v;
            }
        }
        let nf = n as f64;
        assert!((s1 / nf).abs() < 0.01);
        assert!((s2 / nf - 1.0).abs() < 0.02);
        assert!((s4 / nf - 3.0).abs() < 0.1);
    }

    #[test]
    fn uniform_below_stays_in_range() {
        for r in [0u64, 1, u64::MAX, 0x8000_0000_0000_0000] {
            for n in [1u64, 2, 3, 1000, u32::MAX as u64] {
                assert!(uniform_below(r, n) < n);
            }
        }
    }
}
