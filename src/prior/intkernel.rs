//! Integer GEMM kernels of the integer prior: `acc (m, n) = rows (m, k) x W^T`, `i16` inputs and
//! weights, exact `i32` sums.
//!
//! [`super::intnet`] validates at load time that no sum can overflow, so every kernel computes
//! the same exact integers whatever order it adds in. There are three:
//!
//! - `Portable`: plain Rust loops (the compiler vectorizes them for whatever the target has);
//! - `Avx2`: `vpmaddwd` (8 lanes, two `i16` products per lane, added in `i32`), for x86-64
//!   CPUs without AVX-512 VNNI (AMD Zen 1-3, Intel's client CPUs, Skylake-SP), where the
//!   portable loops are several times slower (8x for a prediction of the default on Zen 3);
//! - `Avx512Vnni`: `vpdpwssd` (16 lanes, two `i16` products per lane and instruction), chosen
//!   at run time when the CPU has AVX-512 F/BW and VNNI.
//!
//! `DIFFC_KERNELS=portable` forces the portable kernel, so anyone can check that a decode does
//! not depend on the CPU; `DIFFC_KERNELS=avx2` the AVX2 one where the CPU has AVX2.

/// Which kernel set runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Plain Rust.
    Portable,
    /// AVX2 (`vpmaddwd`).
    Avx2,
    /// AVX-512 VNNI (`vpdpwssd`).
    Avx512Vnni,
}

impl Kernels {
    /// The fastest set this CPU supports, unless `DIFFC_KERNELS` names another that it
    /// supports (`portable`, `avx2`, `avx512`; any other value, or none, means the fastest).
    pub fn detect() -> Kernels {
        let asked = std::env::var("DIFFC_KERNELS").ok();
        Kernels::available()
            .into_iter()
            .find(|k| asked.as_deref() == Some(k.env_name()))
            .unwrap_or_else(Kernels::best)
    }

    /// [`Kernels::detect`] read once per process: for code without a kernel choice of its own
    /// (the block matching), so that `DIFFC_KERNELS=portable` makes a whole run portable.
    pub fn detected() -> Kernels {
        static DETECTED: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(Kernels::detect)
    }

    /// Every set this CPU supports, the portable one first and the fastest last.
    pub fn available() -> Vec<Kernels> {
        [Kernels::Portable, Kernels::Avx2, Kernels::Avx512Vnni]
            .into_iter()
            .filter(|k| k.supported())
            .collect()
    }

    /// The value of `DIFFC_KERNELS` that asks for this set.
    fn env_name(self) -> &'static str {
        match self {
            Kernels::Portable => "portable",
            Kernels::Avx2 => "avx2",
            Kernels::Avx512Vnni => "avx512",
        }
    }

    /// The fastest set this CPU supports (detected once).
    pub fn best() -> Kernels {
        static BEST: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        *BEST.get_or_init(Kernels::probe)
    }

    /// Whether this CPU can run the set.
    pub fn supported(self) -> bool {
        match self {
            Kernels::Portable => true,
            Kernels::Avx2 => {
                #[cfg(target_arch = "x86_64")]
                {
                    std::arch::is_x86_feature_detected!("avx2")
                }
                #[cfg(not(target_arch = "x86_64"))]
                false
            }
            Kernels::Avx512Vnni => Kernels::best() == Kernels::Avx512Vnni,
        }
    }

    fn probe() -> Kernels {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Kernels::Avx512Vnni;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernels::Avx2;
            }
        }
        Kernels::Portable
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Portable => "portable",
            Kernels::Avx2 => "avx2",
            Kernels::Avx512Vnni => "avx512-vnni",
        }
    }
}

/// Output channels per SIMD vector.
const LANES: usize = 16;

/// A layer's weights in the layouts the kernels read.
pub(crate) struct PackedWeights {
    /// Output channels.
    n: usize,
    /// Inputs per output.
    k: usize,
    /// `(n, k)` row-major (portable kernel).
    rows: Vec<i16>,
    /// `ceil(n / 16)` panels of `ceil(k / 2)` pairs x 16 channels x 2: panel `j`, pair `p`,
    /// lane `o`, half `h` holds `W[16 j + o][2 p + h]` (zero past `n` or `k`).
    panels: Vec<i16>,
    /// When every weight fits `i8`: `ceil(n / 16)` panels of `ceil(k / 4)` quads x 16
    /// channels x 4, for `u8 x i8` products (`vpdpbusd`, twice the rate of `i16` pairs).
    quads: Option<Vec<i8>>,
}

impl PackedWeights {
    /// No weights (a placeholder until a layer is validated).
    pub(crate) fn empty() -> PackedWeights {
        PackedWeights::new(&[], 0, 0)
    }

    /// Pack `(n, k)` row-major weights.
    pub(crate) fn new(w: &[i16], n: usize, k: usize) -> PackedWeights {
        assert_eq!(w.len(), n * k);
        let rows = w.to_vec();
        let (nv, kp) = (n.div_ceil(LANES), k.div_ceil(2));
        let mut panels = vec![0i16; nv * kp * LANES * 2];
        for o in 0..n {
            for kk in 0..k {
                let (j, lane) = (o / LANES, o % LANES);
                panels[((j * kp + kk / 2) * LANES + lane) * 2 + kk % 2] = rows[o * k + kk];
            }
        }
        let quads = w.iter().all(|&v| (-128..=127).contains(&v)).then(|| {
            let kq = k.div_ceil(4);
            let mut q = vec![0i8; nv * kq * LANES * 4];
            for o in 0..n {
                for kk in 0..k {
                    let (j, lane) = (o / LANES, o % LANES);
                    q[((j * kq + kk / 4) * LANES + lane) * 4 + kk % 4] = rows[o * k + kk] as i8;
                }
            }
            q
        });
        PackedWeights {
            n,
            k,
            rows,
            panels,
            quads,
        }
    }

    /// True when the weights fit `i8`, so inputs that fit `u8` can use [`gemm_u8`].
    pub(crate) fn has_quads(&self) -> bool {
        self.quads.is_some()
    }
}

/// Row stride of the `u8` input rows [`gemm_u8`] reads: `k` rounded up to a multiple of 4
/// (the padding meets zero weights, so its contents do not matter).
pub(crate) fn u8_stride(k: usize) -> usize {
    k.div_ceil(4) * 4
}

/// `acc (m, n) = rows (m, k) x W^T` for inputs in `0..=255` (rows of [`u8_stride`] bytes) and
/// weights in `i8`, with AVX-512 VNNI `vpdpbusd`. The same exact sums as [`gemm`]; only for
/// [`Kernels::Avx512Vnni`] and weights with [`PackedWeights::has_quads`].
pub(crate) fn gemm_u8(rows: &[u8], m: usize, w: &PackedWeights, acc: &mut [i32]) {
    gemm_u8_strided(rows, m, w, acc, w.n)
}

/// [`gemm_u8`] into rows of `ld >= n` sums: row `i` at `acc[i ld..i ld + n]` (the rest of
/// each row untouched), so that blocks of outputs can fill a wider matrix in place.
pub(crate) fn gemm_u8_strided(
    rows: &[u8],
    m: usize,
    w: &PackedWeights,
    acc: &mut [i32],
    ld: usize,
) {
    let q = w.quads.as_ref().expect("weights do not fit i8");
    assert!(ld >= w.n && rows.len() >= m * u8_stride(w.k));
    assert!(m == 0 || acc.len() >= (m - 1) * ld + w.n);
    #[cfg(target_arch = "x86_64")]
    {
        assert!(
            Kernels::best() == Kernels::Avx512Vnni,
            "CPU lacks AVX-512 VNNI"
        );
        // SAFETY: the CPU has the features and the sizes are checked (above).
        unsafe { vnni::gemm_u8(rows, m, (w.n, w.k, ld), q, acc) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, rows, m, acc);
        panic!("no u8 kernel on this architecture (Kernels::supported is false)")
    }
}

/// `acc (m, n) = rows (m, k) x W^T` (every value overwritten).
pub(crate) fn gemm(kern: Kernels, rows: &[i16], m: usize, w: &PackedWeights, acc: &mut [i32]) {
    assert!(rows.len() >= m * w.k && acc.len() >= m * w.n);
    match kern {
        Kernels::Portable => portable(rows, m, w, acc),
        Kernels::Avx2 => {
            #[cfg(target_arch = "x86_64")]
            {
                assert!(Kernels::Avx2.supported(), "CPU lacks AVX2");
                // SAFETY: the CPU has AVX2 (checked above); sizes checked above.
                unsafe { avx2::gemm(rows, m, w, acc) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            portable(rows, m, w, acc)
        }
        Kernels::Avx512Vnni => {
            #[cfg(target_arch = "x86_64")]
            {
                assert!(
                    Kernels::best() == Kernels::Avx512Vnni,
                    "CPU lacks AVX-512 VNNI"
                );
                // SAFETY: the CPU has the features (checked above); sizes checked above.
                unsafe { vnni::gemm(rows, m, w, acc) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            portable(rows, m, w, acc)
        }
    }
}

/// A layer's requantization at one log-SNR: `r = ((acc + bias) * mult + round) >> shift` per
/// output channel, in `i64`.
pub(crate) struct Requant {
    /// Interpolated bias per channel.
    bias: Vec<i64>,
    /// Multiplier per channel.
    mult: Vec<i64>,
    /// `2^(shift - 1)` per channel.
    round: Vec<i64>,
    /// Shift per channel.
    shift: Vec<i64>,
}

impl Requant {
    /// From a layer's multipliers, shifts (`1..=62`, validated) and biases.
    pub(crate) fn new(bias: Vec<i64>, mult: &[i32], shift: &[u8]) -> Requant {
        assert!(
            shift.iter().all(|s| (1..=62).contains(s)),
            "shift out of range"
        );
        Requant {
            bias,
            mult: mult.iter().map(|&m| m as i64).collect(),
            round: shift.iter().map(|&s| 1i64 << (s - 1)).collect(),
            shift: shift.iter().map(|&s| s as i64).collect(),
        }
    }
}

/// `out (m, n) = requant(acc (m, n))` (see [`Requant`]).
pub(crate) fn requant(kern: Kernels, acc: &[i32], rq: &Requant, out: &mut [i64]) {
    assert!(
        kern.supported(),
        "this CPU cannot run the {} kernels",
        kern.name()
    );
    match kern {
        Kernels::Portable => requant_rows(acc, rq, out),
        Kernels::Avx2 => {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 (`supported`, asserted above).
            unsafe {
                requant_avx2(acc, rq, out)
            }
            #[cfg(not(target_arch = "x86_64"))]
            requant_rows(acc, rq, out)
        }
        Kernels::Avx512Vnni => {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512 F/BW/DQ/VL/VNNI (`supported`, asserted above).
            unsafe {
                requant_avx512(acc, rq, out)
            }
            #[cfg(not(target_arch = "x86_64"))]
            requant_rows(acc, rq, out)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn requant_avx512(acc: &[i32], rq: &Requant, out: &mut [i64]) {
    requant_rows(acc, rq, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn requant_avx2(acc: &[i32], rq: &Requant, out: &mut [i64]) {
    requant_rows(acc, rq, out)
}

/// `out (m, n) = clamp(requant(acc (m, n)), 0, amax)` straight to a map (a ReLU layer).
pub(crate) fn requant_relu(kern: Kernels, acc: &[i32], rq: &Requant, amax: i64, out: &mut [i16]) {
    assert!(
        kern.supported(),
        "this CPU cannot run the {} kernels",
        kern.name()
    );
    match kern {
        Kernels::Portable => requant_relu_rows(acc, rq, amax, out),
        Kernels::Avx2 => {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 (asserted above).
            unsafe {
                requant_relu_avx2(acc, rq, amax, out)
            }
            #[cfg(not(target_arch = "x86_64"))]
            requant_relu_rows(acc, rq, amax, out)
        }
        Kernels::Avx512Vnni => {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has the features (asserted above).
            unsafe {
                requant_relu_avx512(acc, rq, amax, out)
            }
            #[cfg(not(target_arch = "x86_64"))]
            requant_relu_rows(acc, rq, amax, out)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn requant_relu_avx512(acc: &[i32], rq: &Requant, amax: i64, out: &mut [i16]) {
    requant_relu_rows(acc, rq, amax, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn requant_relu_avx2(acc: &[i32], rq: &Requant, amax: i64, out: &mut [i16]) {
    requant_relu_rows(acc, rq, amax, out)
}

#[inline(always)]
fn requant_relu_rows(acc: &[i32], rq: &Requant, amax: i64, out: &mut [i16]) {
    let n = rq.mult.len();
    for (a, o) in acc.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        for ((((o, &a), &b), (&m, &r)), &s) in o
            .iter_mut()
            .zip(a)
            .zip(&rq.bias)
            .zip(rq.mult.iter().zip(&rq.round))
            .zip(&rq.shift)
        {
            *o = (((a as i64 + b) * m + r) >> s).clamp(0, amax) as i16;
        }
    }
}

/// Copy `(m, k)` values known to lie in `0..=255` into rows of [`u8_stride`] bytes.
pub(crate) fn pack_u8(kern: Kernels, src: &[i16], k: usize, dst: &mut [u8]) {
    assert!(
        kern.supported(),
        "this CPU cannot run the {} kernels",
        kern.name()
    );
    match kern {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has the features (asserted above).
        Kernels::Avx512Vnni => unsafe { pack_u8_avx512(src, k, dst) },
        _ => pack_u8_rows(src, k, dst),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn pack_u8_avx512(src: &[i16], k: usize, dst: &mut [u8]) {
    pack_u8_rows(src, k, dst)
}

#[inline(always)]
fn pack_u8_rows(src: &[i16], k: usize, dst: &mut [u8]) {
    for (d, r) in dst.chunks_exact_mut(u8_stride(k)).zip(src.chunks_exact(k)) {
        for (d, &v) in d.iter_mut().zip(r) {
            *d = v as u8;
        }
    }
}

#[inline(always)]
fn requant_rows(acc: &[i32], rq: &Requant, out: &mut [i64]) {
    let n = rq.mult.len();
    for (a, o) in acc.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        for ((((o, &a), &b), (&m, &r)), &s) in o
            .iter_mut()
            .zip(a)
            .zip(&rq.bias)
            .zip(rq.mult.iter().zip(&rq.round))
            .zip(&rq.shift)
        {
            *o = ((a as i64 + b) * m + r) >> s;
        }
    }
}

fn portable(rows: &[i16], m: usize, w: &PackedWeights, acc: &mut [i32]) {
    let (n, k) = (w.n, w.k);
    for i in 0..m {
        let r = &rows[i * k..(i + 1) * k];
        for (o, a) in acc[i * n..(i + 1) * n].iter_mut().enumerate() {
            let wr = &w.rows[o * k..(o + 1) * k];
            *a = r
                .iter()
                .zip(wr)
                .map(|(&x, &y)| x as i32 * y as i32)
                .sum::<i32>();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{PackedWeights, LANES};
    use std::arch::x86_64::*;

    /// Rows per micro-tile.
    const MR: usize = 6;

    /// The pair `(rows[i][2p], rows[i][2p+1])` as one `i32` (low half first), zero past `k`.
    #[inline(always)]
    unsafe fn pair(r: &[i16], p: usize) -> i32 {
        let lo = *r.get_unchecked(2 * p) as u16 as u32;
        let hi = r.get(2 * p + 1).map_or(0, |&v| v as u16 as u32);
        (lo | (hi << 16)) as i32
    }

    /// Write the first `mr` rows of a micro-tile's sums to `acc` rows `i0..` (row `i` from
    /// `acc[i ld]`), channels from `16 j0` (the last vector may stop short of 16 channels).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store<const NV: usize>(
        c: &[[__m512i; NV]; MR],
        (i0, mr): (usize, usize),
        j0: usize,
        (n, ld): (usize, usize),
        acc: &mut [i32],
    ) {
        let mut buf = [0i32; LANES];
        for (r, cr) in c.iter().enumerate().take(mr) {
            for (j, &cv) in cr.iter().enumerate() {
                let o0 = (j0 + j) * LANES;
                let dst = &mut acc[(i0 + r) * ld..(i0 + r) * ld + n];
                if o0 + LANES <= n {
                    _mm512_storeu_si512(dst.as_mut_ptr().add(o0) as *mut _, cv);
                } else {
                    _mm512_storeu_si512(buf.as_mut_ptr() as *mut _, cv);
                    dst[o0..n].copy_from_slice(&buf[..n - o0]);
                }
            }
        }
    }

    /// Visit the micro-tiles of an `(m, n)` result: `f(i0, mr, j0, nv)` for `mr <= MR` rows
    /// from `i0` and `nv <= 4` vectors of 16 channels from vector `j0`.
    fn for_tiles(m: usize, n: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        let nv = n.div_ceil(LANES);
        let mut i0 = 0;
        while i0 < m {
            let mr = MR.min(m - i0);
            let mut j0 = 0;
            while j0 < nv {
                let v = (nv - j0).min(4);
                f(i0, mr, j0, v);
                j0 += v;
            }
            i0 += mr;
        }
    }

    /// One micro-tile: `MR` (or fewer) rows x `NV` vectors of 16 channels from panel `j0`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile<const NV: usize>(
        rows: &[i16],
        i0: usize,
        mr: usize,
        w: &PackedWeights,
        j0: usize,
        acc: &mut [i32],
    ) {
        let (n, k) = (w.n, w.k);
        let kp = k.div_ceil(2);
        let full = k / 2;
        let mut c = [[_mm512_setzero_si512(); NV]; MR];
        let base = w.panels.as_ptr();
        let rp: [*const i32; MR] =
            std::array::from_fn(|r| rows.as_ptr().add((i0 + r.min(mr - 1)) * k) as *const i32);
        for p in 0..full {
            let mut wv = [_mm512_setzero_si512(); NV];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(base.add(((j0 + j) * kp + p) * LANES * 2) as *const _);
            }
            for r in 0..MR {
                let b = _mm512_set1_epi32(rp[r].add(p).read_unaligned());
                for j in 0..NV {
                    c[r][j] = _mm512_dpwssd_epi32(c[r][j], b, wv[j]);
                }
            }
        }
        if kp > full {
            // Odd k: the last input alone.
            let mut wv = [_mm512_setzero_si512(); NV];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(base.add(((j0 + j) * kp + full) * LANES * 2) as *const _);
            }
            for r in 0..mr {
                let b = _mm512_set1_epi32(pair(&rows[(i0 + r) * k..(i0 + r + 1) * k], full));
                for j in 0..NV {
                    c[r][j] = _mm512_dpwssd_epi32(c[r][j], b, wv[j]);
                }
            }
        }
        store(&c, (i0, mr), j0, (n, n), acc);
    }

    /// One `u8 x i8` micro-tile: `MR` (or fewer) rows x `NV` vectors from panel `j0`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_u8<const NV: usize>(
        rows: &[u8],
        i0: usize,
        mr: usize,
        (n, k, ld): (usize, usize, usize),
        q: &[i8],
        j0: usize,
        acc: &mut [i32],
    ) {
        let kq = k.div_ceil(4);
        let stride = kq * 4;
        let mut c = [[_mm512_setzero_si512(); NV]; MR];
        let base = q.as_ptr();
        let rp: [*const i32; MR] =
            std::array::from_fn(|r| rows.as_ptr().add((i0 + r.min(mr - 1)) * stride) as *const i32);
        for p in 0..kq {
            let mut wv = [_mm512_setzero_si512(); NV];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(base.add(((j0 + j) * kq + p) * LANES * 4) as *const _);
            }
            for r in 0..MR {
                let b = _mm512_set1_epi32(rp[r].add(p).read_unaligned());
                for j in 0..NV {
                    c[r][j] = _mm512_dpbusd_epi32(c[r][j], b, wv[j]);
                }
            }
        }
        store(&c, (i0, mr), j0, (n, ld), acc);
    }

    /// `acc = rows x W^T` for `u8` rows and `i8` weights, output rows `ld` apart.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn gemm_u8(
        rows: &[u8],
        m: usize,
        nkl: (usize, usize, usize),
        q: &[i8],
        acc: &mut [i32],
    ) {
        for_tiles(m, nkl.0, |i0, mr, j0, nv| match nv {
            1 => tile_u8::<1>(rows, i0, mr, nkl, q, j0, acc),
            2 => tile_u8::<2>(rows, i0, mr, nkl, q, j0, acc),
            3 => tile_u8::<3>(rows, i0, mr, nkl, q, j0, acc),
            _ => tile_u8::<4>(rows, i0, mr, nkl, q, j0, acc),
        });
    }

    /// `acc = rows x W^T` with AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn gemm(rows: &[i16], m: usize, w: &PackedWeights, acc: &mut [i32]) {
        for_tiles(m, w.n, |i0, mr, j0, nv| match nv {
            1 => tile::<1>(rows, i0, mr, w, j0, acc),
            2 => tile::<2>(rows, i0, mr, w, j0, acc),
            3 => tile::<3>(rows, i0, mr, w, j0, acc),
            _ => tile::<4>(rows, i0, mr, w, j0, acc),
        });
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PackedWeights, LANES};
    use std::arch::x86_64::*;

    /// Rows per micro-tile: 6 rows x 2 vectors of sums, 2 of weights and a broadcast input
    /// take 15 of the 16 `ymm` registers.
    const MR: usize = 6;

    /// Channels per `ymm` vector of sums.
    const HALF: usize = LANES / 2;

    /// One micro-tile: `mr <= MR` rows from `i0` x the 16 channels of panel `j` (the
    /// AVX-512 kernel's panels, read as two 8-lane halves).
    #[target_feature(enable = "avx2")]
    unsafe fn tile(
        rows: &[i16],
        i0: usize,
        mr: usize,
        w: &PackedWeights,
        j: usize,
        acc: &mut [i32],
    ) {
        let (n, k) = (w.n, w.k);
        let kp = k.div_ceil(2);
        let full = k / 2;
        let mut lo = [_mm256_setzero_si256(); MR];
        let mut hi = [_mm256_setzero_si256(); MR];
        let panel = w.panels.as_ptr().add(j * kp * LANES * 2);
        let rp: [*const i32; MR] =
            std::array::from_fn(|r| rows.as_ptr().add((i0 + r.min(mr - 1)) * k) as *const i32);
        for p in 0..full {
            let wl = _mm256_loadu_si256(panel.add(p * LANES * 2) as *const __m256i);
            let wh = _mm256_loadu_si256(panel.add(p * LANES * 2 + LANES) as *const __m256i);
            for r in 0..MR {
                let b = _mm256_set1_epi32(rp[r].add(p).read_unaligned());
                lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(b, wl));
                hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(b, wh));
            }
        }
        if kp > full {
            // Odd k: the last input alone (its pair's second half is zero).
            let wl = _mm256_loadu_si256(panel.add(full * LANES * 2) as *const __m256i);
            let wh = _mm256_loadu_si256(panel.add(full * LANES * 2 + LANES) as *const __m256i);
            for r in 0..mr {
                let last = *rows.get_unchecked((i0 + r) * k + k - 1) as u16 as i32;
                let b = _mm256_set1_epi32(last);
                lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(b, wl));
                hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(b, wh));
            }
        }
        let o0 = j * LANES;
        let mut buf = [0i32; LANES];
        for r in 0..mr {
            let dst = &mut acc[(i0 + r) * n..(i0 + r + 1) * n];
            if o0 + LANES <= n {
                _mm256_storeu_si256(dst.as_mut_ptr().add(o0) as *mut __m256i, lo[r]);
                _mm256_storeu_si256(dst.as_mut_ptr().add(o0 + HALF) as *mut __m256i, hi[r]);
            } else {
                _mm256_storeu_si256(buf.as_mut_ptr() as *mut __m256i, lo[r]);
                _mm256_storeu_si256(buf.as_mut_ptr().add(HALF) as *mut __m256i, hi[r]);
                dst[o0..n].copy_from_slice(&buf[..n - o0]);
            }
        }
    }

    /// `acc = rows x W^T` with AVX2. Panels outside, rows inside: a panel's weights stay in
    /// the first-level cache while every row passes over them.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gemm(rows: &[i16], m: usize, w: &PackedWeights, acc: &mut [i32]) {
        for j in 0..w.n.div_ceil(LANES) {
            for i0 in (0..m).step_by(MR) {
                tile(rows, i0, MR.min(m - i0), w, j, acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_bit_for_bit() {
        let mut seed = 0x1234_5678u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 12, 126),
            (13, 48, 432),
            (6, 96, 384),
            (25, 17, 9),
            (64, 144, 1296),
        ] {
            let w: Vec<i16> = (0..n * k).map(|_| (next() % 1023 - 511) as i16).collect();
            let rows: Vec<i16> = (0..m * k).map(|_| (next() % 4095 - 2047) as i16).collect();
            let pw = PackedWeights::new(&w, n, k);
            let mut a = vec![0i32; m * n];
            if Kernels::best() == Kernels::Avx512Vnni {
                // 8-bit operands: the u8 x i8 kernel against the portable one.
                let w8: Vec<i16> = w.iter().map(|&v| v.clamp(-128, 127)).collect();
                let r8: Vec<i16> = rows.iter().map(|&v| v.clamp(0, 255)).collect();
                let pw8 = PackedWeights::new(&w8, n, k);
                let s = u8_stride(k);
                let mut ru = vec![0u8; m * s];
                for i in 0..m {
                    for j in 0..k {
                        ru[i * s + j] = r8[i * k + j] as u8;
                    }
                }
                gemm(Kernels::Portable, &r8, m, &pw8, &mut a);
                let mut b = vec![1i32; m * n];
                gemm_u8(&ru, m, &pw8, &mut b);
                assert_eq!(a, b, "u8 {m}x{n}x{k}");
            }
            gemm(Kernels::Portable, &rows, m, &pw, &mut a);
            for kern in Kernels::available() {
                let mut b = vec![7i32; m * n];
                gemm(kern, &rows, m, &pw, &mut b);
                assert_eq!(a, b, "{} {m}x{n}x{k}", kern.name());
            }
            // The portable kernel is the definition: check one entry by hand.
            let want: i64 = (0..k).map(|j| rows[j] as i64 * w[j] as i64).sum();
            assert_eq!(a[0] as i64, want);
        }
    }
}
