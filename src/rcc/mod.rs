//! Reverse channel coding of one diffusion step: each chunk of dimensions sends the index of
//! one candidate of a shared pool.
//!
//! In units of the step's standard deviation the encoder wants to convey `N(mu, I)` while
//! both sides can draw from `N(0, I)`. The `D` dimensions of the step are shuffled by a seeded
//! permutation and cut into `n_chunks` contiguous chunks of nearly equal size; each chunk
//! sends one of `K = 2^log2_k` candidates ([`Pick`]: the most aligned with `mu`, or a
//! truncated Poisson functional representation sample), and its index is entropy coded.
//! The layout depends only on `D`, `n_chunks`, `log2_k` and `max_width` — integers from the
//! stream — never on model outputs (`spec/rcc.md`).
//!
//! Candidates come from one pool of `K` rows per step: segment `j` of chunk `c` sees pool row
//! `(a_g k + b_g) mod K` (an affine permutation keyed by the segment), with per-position
//! random signs. The encoder scores all candidates of a tile of chunks with one integer matrix
//! product ([`scoring`]).

pub mod index_coder;
mod scoring;

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

    /// Peak bytes [`encode_step`] allocates for scoring with this layout: the pool in its
    /// integer forms, one tile's candidate totals (`TILE_CHUNKS K` floats), one block of
    /// segment rows (`BLOCK_ROWS w` floats) and what scoring them takes, whatever the image
    /// size. Encoders check it against their limits.
    pub fn scoring_bytes(&self) -> u64 {
        let (k, w) = (self.k() as u64, self.width as u64);
        let chunks = self.n_chunks.min(TILE_CHUNKS) as u64;
        let rows = (chunks * self.segments as u64).min(BLOCK_ROWS as u64);
        scoring::Pool::bytes(k, w)
            + 4 * k * chunks
            + 4 * rows * w
            + scoring::Pool::score_bytes(k, w, rows)
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

/// Largest number of segment rows scored by one matrix product: bounds the scores buffer
/// (`rows x K` floats) whatever the chunk length, so a step with few, long chunks of a
/// 24-megapixel image needs no more memory than any other.
const BLOCK_ROWS: usize = 1024;

/// How the encoder chooses each chunk's candidate. An encoder choice only: the decoder reads
/// the indices, whichever rule produced them (`spec/rcc.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pick {
    /// The candidate most aligned with the target mean: the largest `<mu, e>`, i.e. the
    /// largest likelihood ratio `q/p`. Not a sample of `N(mu, I)`: along `mu` it carries more
    /// of the target per transmitted bit than a sample, off it the candidate's own noise, so
    /// the decoded latent is closer to the image at the same rate (measured in
    /// [`crate::EncoderOptions`]' defaults).
    #[default]
    Aligned,
    /// Truncated Poisson functional representation: approximately a sample of `N(mu, I)`, as
    /// DiffC's analysis assumes (the realism of `flow` and `ancestral` reconstructions rests
    /// on it); small indices are likely, which the index coder exploits.
    Sample,
}

/// Encoder: choose one candidate per chunk for target mean `mu` (unit-variance units).
///
/// The arrival times ([`Pick::Sample`]) are the encoder's own randomness (seeded for
/// determinism); the decoder never needs them.
pub fn encode_step(
    g: &Philox,
    step: u32,
    mu: &[f32],
    layout: &Layout,
    pick: Pick,
) -> Result<EncodedStep> {
    let mut sample = mu.to_vec();
    let indices = encode_step_in_place(g, step, &mut sample, layout, pick)?;
    Ok(EncodedStep { indices, sample })
}

/// [`encode_step`] without a second image-sized buffer: `mu` is replaced by the transmitted
/// sample (dimension order, unit variance); returns the chosen indices.
pub fn encode_step_in_place(
    g: &Philox,
    step: u32,
    mu: &mut [f32],
    layout: &Layout,
    pick: Pick,
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
    let segs = layout.segments;
    let perm = dim_permutation(g, step, layout.dims);
    let sgn = SignBits::new(g, step, layout.dims);
    let pool = scoring::Pool::new(g, step, k, w);

    let mut scores = scoring::Scores::default();
    let n_tiles = layout.n_chunks.div_ceil(TILE_CHUNKS);
    let mut indices = vec![0u32; layout.n_chunks];
    for tile in 0..n_tiles {
        let c0 = tile * TILE_CHUNKS;
        let c1 = (c0 + TILE_CHUNKS).min(layout.n_chunks);
        // Each candidate's score, summed over its chunk's segments in segment order: row
        // `(c - c0) * K + k` is chunk c's candidate k.
        let mut totals = vec![0f32; (c1 - c0) * k];
        let rows = (c1 - c0) * segs;
        let mut r0 = 0;
        while r0 < rows {
            let r1 = (r0 + BLOCK_ROWS).min(rows);
            let mut m = vec![0f32; (r1 - r0) * w];
            for r in r0..r1 {
                let (c, j) = (c0 + r / segs, r % segs);
                let (s, e) = layout.chunk_bounds(c);
                let (a, b) = layout.segment_bounds(e - s, j);
                let base = (r - r0) * w;
                for p in a..b {
                    m[base + p - a] = mu[perm[s + p] as usize] * sgn.get(s + p);
                }
            }
            pool.score(&m, r1 - r0, &mut scores);
            drop(m);
            // Add each segment's scores, permuted to its candidates, into its chunk's totals.
            // A row's scores are written out as floats first (one sequential pass, into a
            // buffer of `K` per thread), then gathered through the segment's permutation: the
            // same additions in the same order as reading each score where it is needed, with
            // less work per candidate.
            totals.par_chunks_mut(k).enumerate().for_each_init(
                || vec![0f32; k],
                |vals: &mut Vec<f32>, (ci, tot)| {
                    let c = c0 + ci;
                    let (ra, rb) = ((ci * segs).max(r0), ((ci + 1) * segs).min(r1));
                    for r in ra..rb {
                        scores.row(&pool, r - r0).write(vals);
                        let seg = (c * segs + r % segs) as u64;
                        let p = SegmentPermutation::new(g, step, seg, layout.log2_k);
                        for (kk, t) in tot.iter_mut().enumerate() {
                            *t += vals[p.row(kk as u32) as usize];
                        }
                    }
                },
            );
            r0 = r1;
        }
        let log_t = match pick {
            Pick::Sample => arrival_log_times(g, step, tile as u64, k),
            Pick::Aligned => Vec::new(),
        };
        let chosen: Vec<u32> = totals
            .par_chunks(k)
            .map(|tot| match pick {
                // The first largest score (the smallest index wins ties).
                Pick::Aligned => first_min_by(tot.iter().map(|&s| -s)),
                // PFR: argmin of ln T_k - <mu, e_k>.
                Pick::Sample => first_min_by(log_t.iter().zip(tot).map(|(&lt, &s)| lt - s)),
            })
            .collect();
        indices[c0..c1].copy_from_slice(&chosen);
    }
    // Materialize the chosen candidates exactly as the decoder will, over mu.
    regenerate(g, step, layout, &indices, &sgn, &perm, mu);
    Ok(indices)
}

/// Index of the first smallest value.
fn first_min_by(values: impl Iterator<Item = f32>) -> u32 {
    let mut best = f32::INFINITY;
    let mut best_k = 0u32;
    for (kk, v) in values.enumerate() {
        if v < best {
            best = v;
            best_k = kk as u32;
        }
    }
    best_k
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
        let enc = encode_step(&g, 4, &mu, &layout, Pick::Aligned).unwrap();
        let dec = decode_step(&g, 4, &layout, &enc.indices).unwrap();
        assert_eq!(enc.sample, dec);
    }

    /// The aligned pick sends, per chunk, the candidate of largest `<mu, e>` (brute force over
    /// every candidate through the decoder) up to the scores' 8-bit rounding, also when a
    /// chunk's segments span several scoring blocks (1,050 segments of width 1 per chunk,
    /// against blocks of 1,024 rows).
    #[test]
    fn aligned_pick_is_the_largest_score() {
        let g = Philox::new(5);
        for (dims, n_chunks, log2_k, width) in [(2100, 2, 6, 1), (3000, 7, 5, 64)] {
            let mu: Vec<f32> = (0..dims)
                .map(|i| ((i * 7919 % 23) as f32 - 11.0) * 0.05)
                .collect();
            let layout = Layout::new(dims, n_chunks, log2_k, width).unwrap();
            assert!(layout.segments > BLOCK_ROWS || n_chunks > 2);
            let enc = encode_step(&g, 3, &mu, &layout, Pick::Aligned).unwrap();
            let dot = |e: &[f32]| -> f64 { e.iter().zip(&mu).map(|(&a, &b)| (a * b) as f64).sum() };
            for c in 0..n_chunks {
                let mut idx = enc.indices.clone();
                let scores: Vec<f64> = (0..layout.k() as u32)
                    .map(|k| {
                        idx[c] = k;
                        dot(&decode_step(&g, 3, &layout, &idx).unwrap())
                    })
                    .collect();
                let best = scores.iter().cloned().fold(f64::MIN, f64::max);
                let chosen = scores[enc.indices[c] as usize];
                assert!(
                    chosen >= best - 0.01 * best.abs(),
                    "chunk {c}: chose {chosen}, best {best}"
                );
            }
            // Never less aligned than the PFR sample of the same layout.
            let pfr = encode_step(&g, 3, &mu, &layout, Pick::Sample).unwrap();
            assert!(dot(&enc.sample) >= dot(&pfr.sample));
        }
    }

    /// Scoring memory does not grow with the chunk length: 24-megapixel planes in one chunk.
    #[test]
    fn scoring_bytes_are_bounded() {
        let huge = Layout::new(3 * 6000 * 4000, 1, 12, 256).unwrap();
        let small = Layout::new(3 * 512 * 512, 1, 12, 256).unwrap();
        assert!(huge.scoring_bytes() < 32 << 20, "{}", huge.scoring_bytes());
        assert_eq!(huge.scoring_bytes(), small.scoring_bytes());
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
            let enc = encode_step(&g, step, &mu, &layout, Pick::Sample).unwrap();
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
