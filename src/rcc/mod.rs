//! Reverse channel coding of one diffusion step: chunked, truncated Poisson functional
//! representation (PFR) over a shared candidate pool.
//!
//! In units of the step's standard deviation the encoder wants a sample of `N(mu, I)` while
//! both sides can draw from `N(0, I)`. The `D` dimensions of the step are shuffled by a seeded
//! permutation and cut into `n_chunks` contiguous chunks of nearly equal size; each chunk is
//! coded as one PFR sample among `K = 2^log2_k` candidates, and its index is entropy coded.
//! The layout depends only on `D`, `n_chunks`, `log2_k` and `max_width` — integers from the
//! stream — never on model outputs (`spec/rcc.md`).
//!
//! Candidates come from one pool of `K` rows per step: segment `j` of chunk `c` sees pool row
//! `(a_g k + b_g) mod K` (an affine permutation keyed by the segment), with per-position
//! random signs. The encoder scores all candidates of a tile of chunks with one matrix product.

pub mod index_coder;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::prng::{uniform_below, Domain, Philox};

/// Largest pool row width the format allows.
pub const MAX_WIDTH_LIMIT: usize = 4096;

/// How the dimensions of one step are cut into chunks and segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Number of coded dimensions `D` (pixels × channels).
    pub dims: usize,
    /// Number of chunks (one index each).
    pub n_chunks: usize,
    /// `log2` of the number of candidates per chunk.
    pub log2_k: u8,
    /// Segments per chunk.
    pub segments: usize,
    /// Width of a segment (= used width of a pool row).
    pub width: usize,
}

impl Layout {
    /// Derive the layout from the transmitted integers; errors name the offending field.
    pub fn new(dims: usize, n_chunks: usize, log2_k: u8, max_width: usize) -> Result<Self> {
        if dims == 0 {
            return Err(Error::format("dims", "zero dimensions"));
        }
        if n_chunks == 0 || n_chunks > dims {
            return Err(Error::format(
                "n_chunks",
                format!("{n_chunks} outside 1..={dims}"),
            ));
        }
        if log2_k == 0 || log2_k > index_coder::MAX_LOG2_K {
            return Err(Error::format(
                "log2_k",
                format!("{log2_k} outside 1..={}", index_coder::MAX_LOG2_K),
            ));
        }
        if max_width == 0 || max_width > MAX_WIDTH_LIMIT {
            return Err(Error::format(
                "max_width",
                format!("{max_width} outside 1..={MAX_WIDTH_LIMIT}"),
            ));
        }
        let d_max = dims.div_ceil(n_chunks);
        let segments = d_max.div_ceil(max_width);
        let width = d_max.div_ceil(segments);
        Ok(Layout {
            dims,
            n_chunks,
            log2_k,
            segments,
            width,
        })
    }

    /// Number of candidates `K`.
    pub fn k(&self) -> usize {
        1 << self.log2_k
    }

    /// Peak bytes [`encode_step`] allocates for scoring with this layout: the pool and its
    /// transpose (`2 K w` floats) plus one tile of scores and its copy
    /// (`2 * TILE_CHUNKS * segments * K` floats). Encoders check it against their limits.
    pub fn scoring_bytes(&self) -> u64 {
        let k = self.k() as u64;
        let rows = self.n_chunks.min(TILE_CHUNKS) as u64 * self.segments as u64;
        4u64.saturating_mul(
            (2 * k * self.width as u64).saturating_add(rows.saturating_mul(k).saturating_mul(2)),
        )
    }

    /// Positions `[start, end)` of chunk `c` in the permuted order: `floor(c D / n)`.
    pub fn chunk_bounds(&self, c: usize) -> (usize, usize) {
        let f = |c: usize| ((c as u128 * self.dims as u128) / self.n_chunks as u128) as usize;
        (f(c), f(c + 1))
    }

    /// Positions `[start, end)` of segment `j` within a chunk of length `len`.
    pub fn segment_bounds(&self, len: usize, j: usize) -> (usize, usize) {
        let s = (j * self.width).min(len);
        let e = ((j + 1) * self.width).min(len);
        (s, e)
    }
}

/// The step's dimension permutation: position `p` of the permuted order is dimension `perm[p]`.
///
/// Fisher–Yates from the last position down: for `i = D-1 .. 1`, swap `i` with
/// `j = uniform_below(r_i, i + 1)`, where `r_i` is 64-bit word `i % 2` of block
/// `(DimPermutation, step, i / 2)` (low word first).
pub fn dim_permutation(g: &Philox, step: u32, dims: usize) -> Vec<u32> {
    // The swap target of position i depends on i alone: draw them in parallel (the Philox
    // blocks are most of the cost), a window at a time from the top so that the extra memory
    // stays small, then do the window's swaps in their normative (descending) order.
    const WINDOW: usize = 1 << 20;
    let mut perm: Vec<u32> = (0..dims as u32).collect();
    let mut targets = vec![0u32; WINDOW.min(dims)];
    let mut hi = dims;
    while hi > 1 {
        let lo = hi.saturating_sub(WINDOW).max(1);
        let t = &mut targets[..hi - lo];
        t.par_chunks_mut(1 << 12)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (o, t) in chunk.iter_mut().enumerate() {
                    let i = lo + (c << 12) + o;
                    let w = g.block(Domain::DimPermutation, step, (i / 2) as u64);
                    let r = if i.is_multiple_of(2) {
                        w[0] as u64 | (w[1] as u64) << 32
                    } else {
                        w[2] as u64 | (w[3] as u64) << 32
                    };
                    *t = uniform_below(r, i as u64 + 1) as u32;
                }
            });
        for i in (lo..hi).rev() {
            perm.swap(i, t[i - lo] as usize);
        }
        hi = lo;
    }
    perm
}

/// Sign of permuted position `p`: bit `p % 32` of word `(p % 128) / 32` of block
/// `(Sign, step, p / 128)`; a set bit means −1.
pub fn signs(g: &Philox, step: u32, dims: usize) -> Vec<f32> {
    let bits = SignBits::new(g, step, dims);
    (0..dims).map(|p| bits.get(p)).collect()
}

/// The signs of a step as bits (1 = −1), 1/32 of the memory of `signs`.
struct SignBits(Vec<u32>);

impl SignBits {
    fn new(g: &Philox, step: u32, dims: usize) -> Self {
        let mut words = vec![0u32; dims.div_ceil(128) * 4];
        words.par_chunks_mut(4).enumerate().for_each(|(blk, w)| {
            w.copy_from_slice(&g.block(Domain::Sign, step, blk as u64));
        });
        SignBits(words)
    }

    #[inline]
    fn get(&self, p: usize) -> f32 {
        if (self.0[p / 32] >> (p % 32)) & 1 == 1 {
            -1.0
        } else {
            1.0
        }
    }
}

/// Affine permutation of segment `g` (global index `c * segments + j`): `k -> (a k + b) mod K`
/// with `a = word0 | 1`, `b = word1`, both masked to `K - 1`, from block `(SegmentPermutation, step, g)`.
#[derive(Clone, Copy, Debug)]
pub struct SegmentPermutation {
    a: u32,
    b: u32,
    mask: u32,
}

impl SegmentPermutation {
    /// Parameters of global segment `seg`.
    pub fn new(g: &Philox, step: u32, seg: u64, log2_k: u8) -> Self {
        let w = g.block(Domain::SegmentPermutation, step, seg);
        let mask = ((1u64 << log2_k) - 1) as u32;
        SegmentPermutation {
            a: (w[0] | 1) & mask,
            b: w[1] & mask,
            mask,
        }
    }

    /// Pool row of candidate `k`.
    #[inline]
    pub fn row(&self, k: u32) -> u32 {
        (self.a.wrapping_mul(k).wrapping_add(self.b)) & self.mask
    }
}

/// Result of coding one step on the encoder side.
pub struct EncodedStep {
    /// Chosen candidate index per chunk.
    pub indices: Vec<u32>,
    /// The transmitted sample in dimension order (unit variance scale).
    pub sample: Vec<f32>,
}

/// Chunks whose candidates are scored together and share one arrival-time sequence.
const TILE_CHUNKS: usize = 64;

/// Encoder: choose one candidate per chunk for target mean `mu` (unit-variance units).
///
/// The arrival times are the encoder's own randomness (seeded for determinism); the decoder
/// never needs them.
pub fn encode_step(g: &Philox, step: u32, mu: &[f32], layout: &Layout) -> Result<EncodedStep> {
    let mut sample = mu.to_vec();
    let indices = encode_step_in_place(g, step, &mut sample, layout)?;
    Ok(EncodedStep { indices, sample })
}

/// [`encode_step`] without a second image-sized buffer: `mu` is replaced by the transmitted
/// sample (dimension order, unit variance); returns the chosen indices.
pub fn encode_step_in_place(
    g: &Philox,
    step: u32,
    mu: &mut [f32],
    layout: &Layout,
) -> Result<Vec<u32>> {
    if mu.len() != layout.dims {
        return Err(Error::InvalidArgument(format!(
            "mu has {} values, layout expects {}",
            mu.len(),
            layout.dims
        )));
    }
    let k = layout.k();
    let w = layout.width;
    let perm = dim_permutation(g, step, layout.dims);
    let sgn = SignBits::new(g, step, layout.dims);
    // Pool, transposed (w x K) for the product M (segments x w) * P^T (w x K).
    let mut pool = vec![0f32; k * w];
    pool.par_chunks_mut(w)
        .enumerate()
        .for_each(|(r, row)| g.fill_normals_row(Domain::Pool, step, r as u32, row));
    let mut pool_t = vec![0f32; k * w];
    for r in 0..k {
        for i in 0..w {
            pool_t[i * k + r] = pool[r * w + i];
        }
    }
    drop(pool);
    let pool_t = candle_core::Tensor::from_vec(pool_t, (w, k), &candle_core::Device::Cpu)?;

    let n_tiles = layout.n_chunks.div_ceil(TILE_CHUNKS);
    let mut indices = vec![0u32; layout.n_chunks];
    for tile in 0..n_tiles {
        let c0 = tile * TILE_CHUNKS;
        let c1 = (c0 + TILE_CHUNKS).min(layout.n_chunks);
        let rows = (c1 - c0) * layout.segments;
        let mut m = vec![0f32; rows * w];
        for c in c0..c1 {
            let (s, e) = layout.chunk_bounds(c);
            for j in 0..layout.segments {
                let (a, b) = layout.segment_bounds(e - s, j);
                let base = ((c - c0) * layout.segments + j) * w;
                for p in a..b {
                    m[base + p - a] = mu[perm[s + p] as usize] * sgn.get(s + p);
                }
            }
        }
        let mt = candle_core::Tensor::from_vec(m, (rows, w), &candle_core::Device::Cpu)?;
        let scores: Vec<f32> = mt.matmul(&pool_t)?.flatten_all()?.to_vec1()?;
        let log_t = arrival_log_times(g, step, tile as u64, k);
        let chosen: Vec<u32> = (c0..c1)
            .into_par_iter()
            .map(|c| {
                let perms: Vec<SegmentPermutation> = (0..layout.segments)
                    .map(|j| {
                        SegmentPermutation::new(
                            g,
                            step,
                            (c * layout.segments + j) as u64,
                            layout.log2_k,
                        )
                    })
                    .collect();
                let base = (c - c0) * layout.segments * k;
                let mut best = f32::INFINITY;
                let mut best_k = 0u32;
                for (kk, &lt) in log_t.iter().enumerate() {
                    let mut s = 0f32;
                    for (j, p) in perms.iter().enumerate() {
                        s += scores[base + j * k + p.row(kk as u32) as usize];
                    }
                    let v = lt - s;
                    if v < best {
                        best = v;
                        best_k = kk as u32;
                    }
                }
                best_k
            })
            .collect();
        indices[c0..c1].copy_from_slice(&chosen);
    }
    // Materialize the chosen candidates exactly as the decoder will, over mu.
    regenerate(g, step, layout, &indices, &sgn, &perm, mu);
    Ok(indices)
}

/// `log T_k` for `T_k = E_1 + ... + E_k`, `E_i = -ln U` from block `(Arrival, step, tile << 32 | i)`
/// (`detmath::ln`: the encoder's choice of index, hence its bytes, is the same on every machine).
fn arrival_log_times(g: &Philox, step: u32, tile: u64, k: usize) -> Vec<f32> {
    let mut t = 0f64;
    (0..k)
        .map(|i| {
            let w = g.block(Domain::Arrival, step, tile << 32 | i as u64);
            t += crate::prng::exponential_from_words(w[0], w[1]);
            crate::detmath::ln(t) as f32
        })
        .collect()
}

/// Write the chosen candidates of every chunk, with their signs, into `sample` in dimension
/// order (unit variance); every value of `sample` is overwritten.
fn regenerate(
    g: &Philox,
    step: u32,
    layout: &Layout,
    indices: &[u32],
    sgn: &SignBits,
    perm: &[u32],
    sample: &mut [f32],
) {
    /// `perm` is a bijection, so chunks (disjoint position ranges) write disjoint outputs.
    struct Out(*mut f32);
    // SAFETY: shared across threads only for writes to distinct indices (see `Out`).
    unsafe impl Sync for Out {}
    assert!(perm.len() == layout.dims && sample.len() == layout.dims);
    let out = Out(sample.as_mut_ptr());
    (0..layout.n_chunks)
        .into_par_iter()
        .for_each_init(Vec::new, |buf, c| {
            let (s, e) = layout.chunk_bounds(c);
            buf.resize(e - s, 0f32);
            for j in 0..layout.segments {
                let (a, b) = layout.segment_bounds(e - s, j);
                if a == b {
                    continue;
                }
                let p = SegmentPermutation::new(
                    g,
                    step,
                    (c * layout.segments + j) as u64,
                    layout.log2_k,
                );
                g.fill_normals_row(Domain::Pool, step, p.row(indices[c]), &mut buf[a..b]);
            }
            let out = &out;
            for (i, &v) in buf.iter().enumerate() {
                let d = perm[s + i] as usize;
                assert!(d < layout.dims);
                // SAFETY: `d` is in bounds (checked) and, `perm` being a permutation of
                // `0..dims` (built by `dim_permutation`), no other position writes it.
                unsafe { *out.0.add(d) = v * sgn.get(s + i) };
            }
        });
}

/// Decoder: rebuild the step's sample (dimension order, unit variance) from the indices.
pub fn decode_step(g: &Philox, step: u32, layout: &Layout, indices: &[u32]) -> Result<Vec<f32>> {
    if indices.len() != layout.n_chunks {
        return Err(Error::format(
            "indices",
            format!("{} indices for {} chunks", indices.len(), layout.n_chunks),
        ));
    }
    if let Some(&bad) = indices.iter().find(|&&i| i as usize >= layout.k()) {
        return Err(Error::format("indices", format!("index {bad} >= K")));
    }
    let perm = dim_permutation(g, step, layout.dims);
    let sgn = SignBits::new(g, step, layout.dims);
    let mut sample = vec![0f32; layout.dims];
    regenerate(g, step, layout, indices, &sgn, &perm, &mut sample);
    Ok(sample)
}

/// Ideal cost of a step in bits: `0.5 ||mu||^2 / ln 2`.
pub fn kl_bits(mu: &[f32]) -> f64 {
    mu.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() * 0.5 / std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_covers_every_dimension_once() {
        for (d, n, w) in [
            (10, 3, 4),
            (1000, 7, 64),
            (5, 5, 1),
            (1, 1, 4096),
            (777, 2, 100),
        ] {
            let l = Layout::new(d, n, 8, w).unwrap();
            let mut covered = 0;
            for c in 0..n {
                let (s, e) = l.chunk_bounds(c);
                assert!(e - s <= l.segments * l.width);
                for j in 0..l.segments {
                    let (a, b) = l.segment_bounds(e - s, j);
                    assert!(b - a <= l.width);
                    covered += b - a;
                }
            }
            assert_eq!(covered, d);
        }
        assert!(Layout::new(10, 11, 8, 4).is_err());
        assert!(Layout::new(10, 0, 8, 4).is_err());
        assert!(Layout::new(10, 2, 0, 4).is_err());
        assert!(Layout::new(10, 2, 21, 4).is_err());
    }

    #[test]
    fn permutation_and_signs_known_answers() {
        // spec/prng.md#known-answers
        let g = Philox::new(0x0123_4567_89AB_CDEF);
        assert_eq!(dim_permutation(&g, 2, 10), [5, 9, 3, 1, 6, 8, 0, 2, 4, 7]);
        let want = [-1., -1., -1., 1., -1., -1., -1., 1., 1., 1.];
        assert_eq!(signs(&g, 2, 10), want);
        // Across the parallel chunks: the plain sequential Fisher-Yates of the spec.
        for dims in [4095, 4096, 4097, 20_001] {
            let mut perm: Vec<u32> = (0..dims as u32).collect();
            for i in (1..dims).rev() {
                let w = g.block(Domain::DimPermutation, 9, (i / 2) as u64);
                let r = if i % 2 == 0 {
                    w[0] as u64 | (w[1] as u64) << 32
                } else {
                    w[2] as u64 | (w[3] as u64) << 32
                };
                perm.swap(i, uniform_below(r, i as u64 + 1) as usize);
            }
            assert_eq!(dim_permutation(&g, 9, dims), perm, "D = {dims}");
        }
    }

    #[test]
    fn permutation_is_a_bijection() {
        let g = Philox::new(5);
        let p = dim_permutation(&g, 3, 1001);
        let mut seen = vec![false; 1001];
        for &v in &p {
            assert!(!seen[v as usize]);
            seen[v as usize] = true;
        }
        assert_ne!(p, (0..1001).collect::<Vec<u32>>());
    }

    #[test]
    fn decoder_regenerates_encoder_sample() {
        let g = Philox::new(77);
        let dims = 3000;
        let mu: Vec<f32> = (0..dims).map(|i| ((i % 17) as f32 - 8.0) * 0.02).collect();
        let layout = Layout::new(dims, 9, 10, 128).unwrap();
        let enc = encode_step(&g, 4, &mu, &layout).unwrap();
        let dec = decode_step(&g, 4, &layout, &enc.indices).unwrap();
        assert_eq!(enc.sample, dec);
    }

    /// The coded sample must move toward the target: its projection on mu is close to ||mu||^2.
    #[test]
    fn sample_follows_target_distribution() {
        let g = Philox::new(11);
        let dims = 4096;
        let mu: Vec<f32> = (0..dims)
            .map(|i| if i % 2 == 0 { 0.06 } else { -0.03 })
            .collect();
        let kl = kl_bits(&mu); // ~ 6.6 bits total
        let layout = Layout::new(dims, 1, 12, 512).unwrap();
        let mut proj_sum = 0.0;
        let trials = 40;
        for step in 0..trials {
            let enc = encode_step(&g, step, &mu, &layout).unwrap();
            let dot: f64 = enc
                .sample
                .iter()
                .zip(&mu)
                .map(|(&e, &m)| (e * m) as f64)
                .sum();
            let mm: f64 = mu.iter().map(|&m| (m * m) as f64).sum();
            proj_sum += dot / mm;
        }
        let proj = proj_sum / trials as f64;
        assert!(kl > 5.0 && kl < 8.0, "kl {kl}");
        assert!(proj > 0.7 && proj < 1.3, "mean projection {proj}");
    }
}
