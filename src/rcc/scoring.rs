//! The encoder's candidate scores `<m, e_k>` in integers: every pool row and every segment row
//! of the target rounded to 8 bits, their products summed exactly in `i32` (AVX-512 VNNI
//! `u8 x i8` where the CPU has it, else AVX2 `i16` pairs, else plain Rust — the same
//! integers either way).
//!
//! Why integers: a float matrix product's sums depend on the kernel's order, hence on the CPU,
//! and with them the chosen candidates and the stream's bytes; exact integer sums make an
//! encode the same bytes on every machine, and 8-bit products are fast enough that `2^13`
//! candidates encode faster than `2^12` did with `f32` products (`models/README.md`).
//! Scores only choose candidates (the decoder never computes one), so their rounding costs a
//! little alignment, never correctness (`spec/rcc.md`, informative part).

use rayon::prelude::*;

use crate::prior::intkernel::{self, Kernels, PackedWeights};
use crate::prng::{Domain, Philox};

/// Pool values are rounded to multiples of `1 / POOL_SCALE` (clamped at about ±4σ).
const POOL_SCALE: f32 = 32.0;

/// Target values map to `0..=255` around this zero.
const ZERO: i32 = 128;

/// Candidates per block of the product: a block's packed rows (`COLS w` bytes) and a task's
/// target rows stay in the first-level cache while the kernel passes over them, instead of
/// the whole pool streaming from memory once per few target rows.
const COLS: usize = 64;

/// Target rows per parallel task (each task passes over every block).
const TASK_ROWS: usize = 96;

/// A step's pool of `K` candidate rows of width `w`, rounded to `i8` and packed for the
/// product in blocks of [`COLS`] candidates.
pub(super) struct Pool {
    k: usize,
    w: usize,
    blocks: Vec<PackedWeights>,
    /// `ZERO` times each row's sum: what the offset of the `u8` targets adds to its scores.
    offset: Vec<i32>,
    kernels: Kernels,
}

impl Pool {
    /// Draw the pool of `step` (row `r` = `fill_normals_row(Pool, step, r)`, as the decoder
    /// regenerates it) and round it.
    pub(super) fn new(g: &Philox, step: u32, k: usize, w: usize) -> Pool {
        let mut q = vec![0i16; k * w];
        q.par_chunks_mut(w)
            .enumerate()
            .for_each_init(Vec::new, |buf: &mut Vec<f32>, (r, row)| {
                buf.resize(w, 0.0);
                g.fill_normals_row(Domain::Pool, step, r as u32, buf);
                for (o, &v) in row.iter_mut().zip(buf.iter()) {
                    *o = round((v * POOL_SCALE).clamp(-127.0, 127.0)) as i16;
                }
            });
        let offset = q
            .chunks(w)
            .map(|row| ZERO * row.iter().map(|&v| v as i32).sum::<i32>())
            .collect();
        let blocks = q
            .chunks(COLS * w)
            .map(|b| PackedWeights::new(b, b.len() / w, w))
            .collect();
        Pool {
            k,
            w,
            blocks,
            offset,
            kernels: Kernels::detect(),
        }
    }

    /// Bytes [`Pool::new`] holds at its peak: the rounded rows and their packed copies
    /// (`7 K w`) and the offsets.
    pub(super) fn bytes(k: u64, w: u64) -> u64 {
        7 * k * w + 4 * k
    }

    /// Bytes [`Pool::score`] allocates for `rows` target rows of width `w`: their `u8` form
    /// (and `i16`, for the portable kernel), their steps and the `i32` sums ([`Scores`]).
    pub(super) fn score_bytes(k: u64, w: u64, rows: u64) -> u64 {
        let stride = intkernel::u8_stride(w as usize) as u64;
        rows * (stride + 2 * w + 4 + 4 * k)
    }

    /// Scores of `rows` target rows (`m`, row-major `rows x w`) against every pool row, into
    /// `out` (its buffers are reused: fresh ones this size are fresh pages to fault in).
    /// Each target row is rounded to `0..=255` on its own scale (`127 / max |m_r|`); a score
    /// is the exact integer sum times that row's step, the same `f32` on every machine.
    pub(super) fn score(&self, m: &[f32], rows: usize, out: &mut Scores) {
        let (k, w) = (self.k, self.w);
        assert_eq!(m.len(), rows * w);
        let vnni = self.kernels == Kernels::Avx512Vnni && self.blocks.iter().all(|b| b.has_quads());
        let stride = if vnni { intkernel::u8_stride(w) } else { w };
        out.steps.clear();
        out.steps.resize(rows, 0.0);
        let mut u = vec![ZERO as u8; rows * stride];
        u.par_chunks_mut(stride)
            .zip(m.par_chunks(w))
            .zip(&mut out.steps)
            .for_each(|((dst, row), step)| {
                let max = row.iter().fold(0f32, |a, &v| a.max(v.abs()));
                if max > 0.0 {
                    let scale = 127.0 / max;
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = (round(v * scale) + ZERO) as u8;
                    }
                    *step = max / (127.0 * POOL_SCALE);
                }
            });
        let wide: Vec<i16> = if vnni {
            Vec::new()
        } else {
            u.iter().map(|&v| v as i16).collect()
        };
        out.sums.resize(rows * k, 0);
        out.sums[..rows * k]
            .par_chunks_mut(TASK_ROWS * k)
            .enumerate()
            .for_each(|(t, sums)| {
                let (r0, mr) = (t * TASK_ROWS, sums.len() / k);
                let mut acc = Vec::new();
                for (b, block) in self.blocks.iter().enumerate() {
                    let (c0, n) = (b * COLS, (k - b * COLS).min(COLS));
                    if vnni {
                        intkernel::gemm_u8_strided(
                            &u[r0 * stride..],
                            mr,
                            block,
                            &mut sums[c0..],
                            k,
                        );
                    } else {
                        acc.resize(mr * n, 0);
                        let r = &wide[r0 * w..(r0 + mr) * w];
                        intkernel::gemm(self.kernels, r, mr, block, &mut acc);
                        for (dst, src) in sums.chunks_mut(k).zip(acc.chunks(n)) {
                            dst[c0..c0 + n].copy_from_slice(src);
                        }
                    }
                }
            });
    }
}

/// Candidate scores of a block of target rows: exact integer sums and each row's step.
#[derive(Default)]
pub(super) struct Scores {
    /// `rows x K` sums of the rounded values (`u8` targets, offset included).
    sums: Vec<i32>,
    /// Each row's step: score = (sum - offset) x step.
    steps: Vec<f32>,
}

impl Scores {
    /// The scores of target row `r` (against `pool`, the pool that computed them).
    #[inline]
    pub(super) fn row<'a>(&'a self, pool: &'a Pool, r: usize) -> ScoreRow<'a> {
        ScoreRow {
            sums: &self.sums[r * pool.k..(r + 1) * pool.k],
            offset: &pool.offset,
            step: self.steps[r],
        }
    }
}

/// One target row's scores, computed on access.
pub(super) struct ScoreRow<'a> {
    sums: &'a [i32],
    offset: &'a [i32],
    step: f32,
}

impl ScoreRow<'_> {
    /// Score of candidate `k` (the encoder takes them all at once, [`ScoreRow::write`]).
    #[cfg(test)]
    pub(super) fn get(&self, k: usize) -> f32 {
        (self.sums[k] - self.offset[k]) as f32 * self.step
    }

    /// Every candidate's score ([`ScoreRow::get`] of each), into `out` (`K` long).
    #[inline]
    pub(super) fn write(&self, out: &mut [f32]) {
        for ((o, &s), &z) in out.iter_mut().zip(self.sums).zip(self.offset) {
            *o = (s - z) as f32 * self.step;
        }
    }
}

/// `x` rounded to the nearest integer, ties to even (exact for `|x| < 2^22`): the same on
/// every machine, and without a library call where the target lacks a rounding instruction.
#[inline]
fn round(x: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    ((x + MAGIC) - MAGIC) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer scores are the exact sums of the rounded values (checked against a plain
    /// loop), within rounding of the float products, and the same with the portable kernel.
    #[test]
    fn scores_are_exact_sums_of_rounded_values() {
        let g = Philox::new(9);
        let (k, w, rows) = (128, 37, 100);
        let pool = Pool::new(&g, 2, k, w);
        let m: Vec<f32> = (0..rows * w)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let mut scores = Scores::default();
        pool.score(&m, rows, &mut scores);
        let (mut e, mut all) = (vec![0f32; w], vec![0f32; k]);
        for r in 0..rows {
            let row = &m[r * w..(r + 1) * w];
            let max = row.iter().fold(0f32, |a, &v| a.max(v.abs()));
            scores.row(&pool, r).write(&mut all);
            for (kk, written) in all.iter().enumerate() {
                assert_eq!(written.to_bits(), scores.row(&pool, r).get(kk).to_bits());
                g.fill_normals_row(Domain::Pool, 2, kk as u32, &mut e);
                let step = max / (127.0 * POOL_SCALE);
                let (mut exact, mut float, mut bound) = (0i32, 0f64, 0f64);
                for (&v, &p) in row.iter().zip(&e) {
                    let pq = (p * POOL_SCALE).clamp(-127.0, 127.0).round_ties_even() as i32;
                    let vq = (v * (127.0 / max)).round_ties_even() as i32;
                    exact += vq * pq;
                    float += (v * p) as f64;
                    // v p - v' p' = v (p - p') + p' (v - v'), with v' p' the rounded values.
                    let (p1, v1) = (
                        pq as f64 / POOL_SCALE as f64,
                        vq as f64 * (max as f64 / 127.0),
                    );
                    bound += (v as f64 * (p as f64 - p1)).abs() + (p1 * (v as f64 - v1)).abs();
                }
                let s = scores.row(&pool, r).get(kk);
                assert_eq!(s, exact as f32 * step);
                assert!((s as f64 - float).abs() <= bound + 1e-5, "{s} vs {float}");
            }
        }
        for kernels in Kernels::available() {
            let pool = Pool {
                kernels,
                ..Pool::new(&g, 2, k, w)
            };
            let mut other = Scores::default();
            pool.score(&m, rows, &mut other);
            assert_eq!(
                (&other.sums, &other.steps),
                (&scores.sums, &scores.steps),
                "{}",
                kernels.name()
            );
        }
    }

    /// An all-zero row scores zero against every candidate.
    #[test]
    fn zero_rows_score_zero() {
        let pool = Pool::new(&Philox::new(1), 0, 16, 8);
        let mut scores = Scores::default();
        pool.score(&[0.0; 16], 2, &mut scores);
        assert!((0..16)
            .all(|k| scores.row(&pool, 0).get(k) == 0.0 && scores.row(&pool, 1).get(k) == 0.0));
    }
}
