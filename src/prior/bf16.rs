//! Matrix products of bf16-rounded operands summed in f32, for training.
//!
//! Training spends most of its time in the engine's GEMMs. With AVX-512 BF16 one `vdpbf16ps`
//! does 32 multiply-adds where an f32 FMA does 16, so rounding both operands to bf16 (8-bit
//! mantissa, round to nearest even) and keeping f32 sums about doubles the GEMM rate: the
//! mixed precision of accelerator training, on this CPU. Inference never takes this path: the
//! codec's priors are the integer networks, and float evaluation stays f32.
//!
//! Operands are packed in pairs along the summed dimension (`u32` = two bf16, the low half
//! first), which is what `vdpbf16ps` multiplies: the left operand by rows (`(m, k)` as
//! `(m, ceil(k / 2))` pairs), the right by columns of pairs (`(k, n)` as
//! `(ceil(k / 2), n)` pairs, `n` padded to 16 lanes).
//!
//! Where the CPU has AMX (AMX-BF16 tiles) and the OS lets the process use them, the same
//! packed operands go through `tdpbf16ps`, 16 x 16 outputs over 32 products per instruction,
//! several times `vdpbf16ps`'s rate: the packing above is already the tiles' layout (a row of
//! 16 pairs is a 64-byte tile row). `DIFFC_AMX=off` keeps AVX-512 BF16.

/// How the training engine multiplies matrices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Products {
    /// f32 products and sums (the `gemm` crate).
    #[default]
    F32,
    /// bf16 products, f32 sums (AVX-512 BF16 only; see [`Products::available`]).
    Bf16,
}

impl Products {
    /// `Bf16` where the CPU has AVX-512 BF16, else `F32`.
    pub fn best() -> Products {
        if Products::Bf16.available() {
            Products::Bf16
        } else {
            Products::F32
        }
    }

    /// Whether this CPU can run these products.
    pub fn available(self) -> bool {
        match self {
            Products::F32 => true,
            Products::Bf16 => cpu_has_bf16(),
        }
    }

    /// The name used on the command line (`f32`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            Products::F32 => "f32",
            Products::Bf16 => "bf16",
        }
    }

    /// Parse a command-line name.
    pub fn parse(s: &str) -> Option<Products> {
        match s {
            "f32" => Some(Products::F32),
            "bf16" => Some(Products::Bf16),
            _ => None,
        }
    }
}

fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The kernels that multiply packed operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// `vdpbf16ps`: 16 lanes, one pair each.
    Avx512,
    /// `tdpbf16ps` on AMX tiles.
    Amx,
}

impl Kernel {
    /// AMX where it can run (unless `DIFFC_AMX=off`), else AVX-512 BF16.
    fn best() -> Kernel {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let off = std::env::var("DIFFC_AMX").is_ok_and(|v| v == "off");
            if !off && amx_ready() {
                Kernel::Amx
            } else {
                Kernel::Avx512
            }
        })
    }

    /// The kernels this machine can run (for tests and benchmarks).
    #[cfg(test)]
    fn available() -> Vec<Kernel> {
        let mut k = vec![Kernel::Avx512];
        if amx_ready() {
            k.push(Kernel::Amx);
        }
        k
    }
}

/// The kernel bf16 products run on here: `amx` or `avx512` (for reports).
pub fn kernel_name() -> &'static str {
    match Kernel::best() {
        Kernel::Amx => "amx",
        Kernel::Avx512 => "avx512",
    }
}

/// Whether this process may run AMX-BF16 tiles: the CPU has them and, on Linux, the kernel
/// granted the tile data state (asked once; other systems keep AVX-512).
fn amx_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READY.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            cpu_has_bf16() && amx::request()
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            false
        }
    })
}

/// Zero values after a packed left operand: AMX reads the summed dimension 16 pairs at a
/// time, so the last row's last tile may read up to 15 pairs past the end (multiplied by the
/// zero rows that pad [`PackedB`]).
const SLACK: usize = 16;

/// `x` rounded to bf16 (nearest, ties to even), as the high half of its bits. NaNs stay NaNs.
fn bf16(x: f32) -> u32 {
    let b = x.to_bits();
    if x.is_nan() {
        return (b >> 16) | 0x40;
    }
    (b + 0x7FFF + ((b >> 16) & 1)) >> 16
}

fn pair(lo: f32, hi: f32) -> u32 {
    bf16(lo) | bf16(hi) << 16
}

/// The right operand `(k, n)`, packed: `data[q * stride + j]` holds rows `2q` and `2q + 1` of
/// column `j` (zero past `k` and `n`, and in the pair rows up to a multiple of 16).
#[derive(Default)]
pub(crate) struct PackedB {
    k: usize,
    pairs: usize,
    cols: usize,
    stride: usize,
    data: Vec<u32>,
}

impl PackedB {
    /// Pack `b`, row-major `(k, n)`.
    pub(crate) fn from_rows(b: &[f32], k: usize, n: usize) -> PackedB {
        let mut p = PackedB::default();
        p.repack(b, k, n);
        p
    }

    /// Pack `b`, row-major `(k, n)`, reusing this one's buffer.
    pub(crate) fn repack(&mut self, b: &[f32], k: usize, n: usize) {
        assert!(b.len() >= k * n);
        assert!(cpu_has_bf16(), "bf16 products need AVX-512 BF16");
        let (pairs, stride) = (k.div_ceil(2), n.div_ceil(16) * 16);
        (self.k, self.pairs, self.cols, self.stride) = (k, pairs, n, stride);
        self.data.clear();
        self.data.resize(pairs.div_ceil(16) * 16 * stride, 0);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512 F/BW/BF16 (asserted); sizes as asserted above.
        unsafe {
            avx512::pack_b(b, k, n, stride, &mut self.data)
        }
    }

    /// Rows of the operand (the summed dimension).
    pub(crate) fn k(&self) -> usize {
        self.k
    }
}

/// Pack the left operand `a`, row-major `(m, k)`, into `dst` as `(m, ceil(k / 2))` pairs
/// (and [`SLACK`] zeros). Needs [`Products::Bf16`] to be available (as does [`PackedB`]).
pub(crate) fn pack_rows(a: &[f32], m: usize, k: usize, dst: &mut Vec<u32>) {
    assert!(a.len() >= m * k);
    assert!(cpu_has_bf16(), "bf16 products need AVX-512 BF16");
    let pairs = k.div_ceil(2);
    dst.clear();
    dst.resize(m * pairs + SLACK, 0);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512 F/BW/BF16 (asserted); sizes as asserted above.
    unsafe {
        avx512::pack_rows(a, m, k, dst)
    }
}

/// Pack the transpose of `a`, row-major `(m, n)`, into `dst` as `(n, ceil(m / 2))` pairs (and
/// [`SLACK`] zeros).
pub(crate) fn pack_transposed(a: &[f32], m: usize, n: usize, dst: &mut Vec<u32>) {
    assert!(a.len() >= m * n);
    let pairs = m.div_ceil(2);
    dst.clear();
    dst.resize(n * pairs + SLACK, 0);
    for q in 0..pairs {
        let lo = &a[2 * q * n..(2 * q + 1) * n];
        let hi = (2 * q + 1 < m).then(|| &a[(2 * q + 1) * n..(2 * q + 2) * n]);
        for (r, &l) in lo.iter().enumerate() {
            dst[r * pairs + q] = pair(l, hi.map_or(0.0, |h| h[r]));
        }
    }
}

/// `dst (rows, b.cols) = a x b`, or `+=` when `accumulate`; `a` is `(rows, b.pairs)` packed by
/// [`pack_rows`] or [`pack_transposed`]. Needs [`Products::Bf16`] to be available.
pub(crate) fn gemm(dst: &mut [f32], a: &[u32], rows: usize, b: &PackedB, accumulate: bool) {
    gemm_with(Kernel::best(), dst, a, rows, b, accumulate)
}

fn gemm_with(
    kernel: Kernel,
    dst: &mut [f32],
    a: &[u32],
    rows: usize,
    b: &PackedB,
    accumulate: bool,
) {
    assert!(dst.len() >= rows * b.cols && a.len() >= rows * b.pairs + SLACK);
    assert!(cpu_has_bf16(), "bf16 products need AVX-512 BF16");
    #[cfg(target_arch = "x86_64")]
    match kernel {
        // SAFETY: the CPU has AVX-512 F/BW/BF16 (asserted); sizes as asserted above.
        Kernel::Avx512 => unsafe { avx512::gemm(dst, a, rows, b, accumulate) },
        #[cfg(target_os = "linux")]
        Kernel::Amx => {
            assert!(amx_ready(), "AMX tiles are not available");
            // SAFETY: tiles granted (asserted); `a` has its slack and `b` its zero pair rows
            // up to a multiple of 16 (asserted above, and by construction).
            unsafe { amx::gemm(dst, a, rows, b, accumulate) }
        }
        #[cfg(not(target_os = "linux"))]
        Kernel::Amx => unreachable!("AMX is only used on Linux"),
    }
}

/// AMX-BF16 tiles through inline assembly (stable Rust has no AMX intrinsics). Tile registers
/// are this module's alone: every [`gemm`] loads its configuration and releases the tiles.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    use std::arch::asm;

    use super::PackedB;

    /// Whether the CPU has AMX-TILE and AMX-BF16 and Linux granted this process the tile data
    /// state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`; kernels before 5.16 refuse).
    pub(super) fn request() -> bool {
        use std::arch::x86_64::__cpuid_count;
        // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86-64 CPU.
        let (max, edx) = unsafe { (__cpuid_count(0, 0).eax, __cpuid_count(7, 0).edx) };
        if max < 7 || edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
            return false;
        }
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
        const XFEATURE_XTILEDATA: u64 = 18;
        let ret: i64;
        // SAFETY: a plain Linux system call with integer arguments; it only changes which
        // register state the kernel saves for this process.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }

    /// The 64-byte tile configuration (palette 1): `tmm0`-`tmm3` outputs and `tmm4` the left
    /// operand, `rows` x 16 values; `tmm5` the right, 16 pair rows x 16 columns.
    #[repr(C, align(64))]
    struct Config {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    impl Config {
        fn new(rows: usize) -> Config {
            let mut c = Config {
                palette: 1,
                start_row: 0,
                reserved: [0; 14],
                colsb: [0; 16],
                rows: [0; 16],
            };
            for t in 0..6 {
                c.colsb[t] = 64;
                c.rows[t] = if t == 5 { 16 } else { rows as u8 };
            }
            c
        }
    }

    /// Output columns per pass: four 16-column tiles.
    const COLS: usize = 64;

    /// `tmm{T} += tmm4 x (the 16 x 16 pair tile at p, row stride s bytes)`.
    macro_rules! product {
        ($t:literal, $p:expr, $s:expr) => {
            asm!(
                "tileloadd tmm5, [{p} + {s}*1]",
                concat!("tdpbf16ps tmm", $t, ", tmm4, tmm5"),
                p = in(reg) $p,
                s = in(reg) $s,
                options(nostack, readonly),
            )
        };
    }

    /// Store `tmm{T}` to the 16 x 16 floats at `p` (row stride `s` bytes).
    macro_rules! store {
        ($t:literal, $p:expr, $s:expr) => {
            asm!(
                concat!("tilestored [{p} + {s}*1], tmm", $t),
                p = in(reg) $p,
                s = in(reg) $s,
                options(nostack),
            )
        };
    }

    /// `$op!` on the first `$tiles` of `tmm0`-`tmm3`, the tile `t` at `$p + 16 t` (asm names
    /// tile registers literally, hence the unrolling).
    macro_rules! on_tiles {
        ($tiles:expr, $op:ident, $p:expr, $s:expr) => {
            $op!("0", $p, $s);
            if $tiles > 1 {
                $op!("1", $p.add(16), $s);
            }
            if $tiles > 2 {
                $op!("2", $p.add(32), $s);
            }
            if $tiles > 3 {
                $op!("3", $p.add(48), $s);
            }
        };
    }

    /// [`super::gemm`] on tiles: 16 output rows x up to 64 columns at a time over all pairs,
    /// then added to (or written over) `dst`. Columns outside, rows inside: a 64-column panel
    /// of `b` stays in cache while every row block passes over it.
    pub(super) unsafe fn gemm(dst: &mut [f32], a: &[u32], rows: usize, b: &PackedB, acc: bool) {
        let (n, lda, ldb) = (b.cols, b.pairs, b.stride);
        let chunks = b.pairs.div_ceil(16);
        let mut out = [0f32; 16 * COLS];
        let mut configured = 0;
        for j in (0..n).step_by(COLS) {
            let tiles = (n - j).div_ceil(16).min(4);
            for i in (0..rows).step_by(16) {
                let r = 16.min(rows - i);
                if r != configured {
                    let cfg = Config::new(r);
                    asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly));
                    configured = r;
                }
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                );
                for q in 0..chunks {
                    let ap = a.as_ptr().add(i * lda + 16 * q);
                    asm!(
                        "tileloadd tmm4, [{p} + {s}*1]",
                        p = in(reg) ap,
                        s = in(reg) lda * 4,
                        options(nostack, readonly),
                    );
                    let bp = b.data.as_ptr().add(16 * q * ldb + j);
                    on_tiles!(tiles, product, bp, ldb * 4);
                }
                let op = out.as_mut_ptr();
                on_tiles!(tiles, store, op, COLS * 4);
                let w = COLS.min(n - j);
                for (y, got) in out.chunks(COLS).take(r).enumerate() {
                    let d = &mut dst[(i + y) * n + j..(i + y) * n + j + w];
                    if acc {
                        d.iter_mut().zip(got).for_each(|(d, v)| *d += v);
                    } else {
                        d.copy_from_slice(&got[..w]);
                    }
                }
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::PackedB;

    /// Rows of the output per micro-kernel call, and 16-lane column vectors.
    const MR: usize = 8;
    const NR: usize = 3;

    /// `(1 << n) - 1` for `n` in `0..=16`.
    fn mask(n: usize) -> u16 {
        if n >= 16 {
            u16::MAX
        } else {
            (1u16 << n) - 1
        }
    }

    /// 32 floats (`lo` then `hi`) as 32 bf16 in order.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    fn convert(lo: __m512, hi: __m512) -> __m512i {
        // SAFETY: same size, any bits are valid.
        unsafe { std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo)) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_rows(a: &[f32], m: usize, k: usize, dst: &mut [u32]) {
        let pairs = k.div_ceil(2);
        for i in 0..m {
            let src = a.as_ptr().add(i * k);
            let out = dst.as_mut_ptr().add(i * pairs);
            for j in (0..k).step_by(32) {
                let lo = _mm512_maskz_loadu_ps(mask(k - j), src.add(j));
                let hi = _mm512_maskz_loadu_ps(mask((k - j).saturating_sub(16)), src.add(j + 16));
                let v = convert(lo, hi);
                _mm512_mask_storeu_epi32(out.add(j / 2) as *mut i32, mask((k - j).div_ceil(2)), v);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_b(b: &[f32], k: usize, n: usize, stride: usize, dst: &mut [u32]) {
        // Lane 2j of the result is element j of `lo`, lane 2j + 1 element j of `hi`.
        let idx: [i16; 32] = std::array::from_fn(|l| (l / 2 + 16 * (l % 2)) as i16);
        let idx = _mm512_loadu_si512(idx.as_ptr() as *const _);
        for q in 0..k.div_ceil(2) {
            let r0 = b.as_ptr().add(2 * q * n);
            let r1 = b.as_ptr().add((2 * q + 1) * n);
            let odd = 2 * q + 1 < k;
            for j in (0..n).step_by(16) {
                let mk = mask(n - j);
                let lo = _mm512_maskz_loadu_ps(mk, r0.add(j));
                let hi = if odd {
                    _mm512_maskz_loadu_ps(mk, r1.add(j))
                } else {
                    _mm512_setzero_ps()
                };
                let v = _mm512_permutexvar_epi16(idx, convert(lo, hi));
                _mm512_storeu_si512(dst.as_mut_ptr().add(q * stride + j) as *mut _, v);
            }
        }
    }

    /// One output block and where its operands are.
    #[derive(Clone, Copy)]
    struct Block {
        /// The block's first output value, and the output's row stride.
        dst: *mut f32,
        ldd: usize,
        /// The block's first row of `a` pairs, and their row stride.
        a: *const u32,
        lda: usize,
        /// The block's first column of `b` pairs, and their row stride.
        b: *const u32,
        ldb: usize,
        pairs: usize,
        /// Lanes of the last column vector that are inside the output.
        last: u16,
        accumulate: bool,
    }

    /// `R x 16 C` outputs over all pairs.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn block<const R: usize, const C: usize>(k: Block) {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let mk = |j: usize| if j + 1 == C { k.last } else { u16::MAX };
        if k.accumulate {
            for (i, row) in acc.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = _mm512_maskz_loadu_ps(mk(j), k.dst.add(i * k.ldd + 16 * j));
                }
            }
        }
        for q in 0..k.pairs {
            let bq = k.b.add(q * k.ldb);
            let bv: [__m512bh; C] = std::array::from_fn(|j| {
                std::mem::transmute(_mm512_loadu_si512(bq.add(16 * j) as *const _))
            });
            for (i, row) in acc.iter_mut().enumerate() {
                let a = k.a.add(i * k.lda + q).read() as i32;
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(a));
                for (v, &bj) in row.iter_mut().zip(&bv) {
                    *v = _mm512_dpbf16_ps(*v, av, bj);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                _mm512_mask_storeu_ps(k.dst.add(i * k.ldd + 16 * j), mk(j), *v);
            }
        }
    }

    unsafe fn block_rows<const R: usize>(c: usize, k: Block) {
        match c {
            1 => block::<R, 1>(k),
            2 => block::<R, 2>(k),
            _ => block::<R, NR>(k),
        }
    }

    pub(super) unsafe fn gemm(dst: &mut [f32], a: &[u32], rows: usize, b: &PackedB, acc: bool) {
        let (n, pairs) = (b.cols, b.pairs);
        for i in (0..rows).step_by(MR) {
            for j in (0..n).step_by(16 * NR) {
                let c = NR.min((n - j).div_ceil(16));
                let k = Block {
                    dst: dst.as_mut_ptr().add(i * n + j),
                    ldd: n,
                    a: a.as_ptr().add(i * pairs),
                    lda: pairs,
                    b: b.data.as_ptr().add(j),
                    ldb: b.stride,
                    pairs,
                    last: mask(n - j - 16 * (c - 1)),
                    accumulate: acc,
                };
                match MR.min(rows - i) {
                    1 => block_rows::<1>(c, k),
                    2 => block_rows::<2>(c, k),
                    3 => block_rows::<3>(c, k),
                    4 => block_rows::<4>(c, k),
                    5 => block_rows::<5>(c, k),
                    6 => block_rows::<6>(c, k),
                    7 => block_rows::<7>(c, k),
                    _ => block_rows::<MR>(c, k),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values exactly representable in bf16 whose products and sums are exact in f32, so the
    /// bf16 path must equal an exact reference: any packing or indexing slip shows.
    fn exact(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 17) as f32 / 4.0 - 2.0)
            .collect()
    }

    fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|q| a[i * k + q] * b[q * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_match_exact_sums_at_every_edge() {
        if !Products::Bf16.available() {
            eprintln!("skipped: this CPU lacks AVX-512 BF16");
            return;
        }
        // Every kernel this machine has (AMX tiles too, where they run); the shapes cross
        // each kernel's block edges: rows by 8 and 16, pairs by 16, columns by 16, 48 and 64.
        for kernel in Kernel::available() {
            eprintln!("kernel {kernel:?}");
            products_at_every_edge(kernel);
        }
    }

    fn products_at_every_edge(kernel: Kernel) {
        let gemm = |dst: &mut [f32], a: &[u32], rows, b: &PackedB, acc| {
            gemm_with(kernel, dst, a, rows, b, acc)
        };
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 3, 5),
            (8, 32, 48),
            (9, 33, 49),
            (17, 126, 12),
            (56, 432, 48),
            (3, 64, 144),
            (21, 96, 100),
            (40, 300, 200),
            (16, 31, 64),
        ] {
            let (a, b) = (exact(m * k, 1), exact(k * n, 2));
            let want = reference(&a, &b, m, k, n);
            let mut pa = Vec::new();
            pack_rows(&a, m, k, &mut pa);
            let pb = PackedB::from_rows(&b, k, n);
            let mut got = vec![f32::NAN; m * n];
            gemm(&mut got, &pa, m, &pb, false);
            assert_eq!(got, want, "{kernel:?}: a x b, m {m} k {k} n {n}");
            // Accumulating adds to what is there.
            gemm(&mut got, &pa, m, &pb, true);
            let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
            assert_eq!(
                got, twice,
                "{kernel:?}: a x b accumulated, m {m} k {k} n {n}"
            );
            // The weight gradient: a^T b over the rows of b, from (k, m)-shaped `a`.
            let at = exact(k * m, 3);
            let mut dw = vec![1.0f32; m * n];
            pack_transposed(&at, k, m, &mut pa);
            gemm(&mut dw, &pa, m, &PackedB::from_rows(&b, k, n), true);
            let mut want_t = vec![1.0f32; m * n];
            for i in 0..m {
                for j in 0..n {
                    want_t[i * n + j] += (0..k).map(|q| at[q * m + i] * b[q * n + j]).sum::<f32>();
                }
            }
            assert_eq!(dw, want_t, "{kernel:?}: a^T b, m {m} k {k} n {n}");
        }
    }

    #[test]
    fn vector_and_scalar_rounding_agree() {
        if !Products::Bf16.available() {
            eprintln!("skipped: this CPU lacks AVX-512 BF16");
            return;
        }
        let xs: Vec<f32> = (0..1000)
            .map(|i| ((i as f32) * 0.7311).sin() * 10f32.powi(i % 9 - 4))
            .chain([
                0.0,
                -0.0,
                1.0 + f32::EPSILON * 128.0,
                1.0 + f32::EPSILON * 384.0,
                65504.0,
                -3.0,
            ])
            .collect();
        let scalar: Vec<u32> = xs.chunks(2).map(|p| pair(p[0], p[1])).collect();
        let mut packed = Vec::new();
        pack_rows(&xs, 1, xs.len(), &mut packed);
        assert_eq!(packed[..scalar.len()], scalar);
        assert_eq!(packed[scalar.len()..], [0; SLACK]);
    }

    #[test]
    fn rounding_ties_to_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: down to the even 1; 1 + 3 * 2^-8 up to
        // the even 1 + 2^-6.
        assert_eq!(bf16(1.0 + f32::EPSILON * 32768.0), 0x3F80);
        assert_eq!(bf16(1.0 + 3.0 * f32::EPSILON * 32768.0), 0x3F82);
        assert_eq!(bf16(f32::MAX), 0x7F80, "overflow rounds to infinity");
        assert_eq!(bf16(f32::NAN) & 0x7FC0, 0x7FC0, "NaN stays a quiet NaN");
    }
}
