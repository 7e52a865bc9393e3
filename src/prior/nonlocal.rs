//! Block matching on the network's input: the non-local half of CBM3D, as extra input planes.
//!
//! A convolutional network sees a repeated structure (a façade's windows, a fence) only through
//! its receptive field, and never learns to line repeats up. CBM3D's advantage on such photos is
//! exactly that: it averages every block with the blocks most like it. Here the noisy latent is
//! cut into `block x block` tiles; each tile is compared with every block whose corner lies
//! within `radius` pixels of its own (on a grid of `step` pixels) by the squared distance of
//! their pixels, and the mean of the `k` nearest (the tile itself first, always) takes its
//! place. The network receives that matched mean beside the latent and learns how far to trust
//! it (and, with [`NonLocal::near`], a second mean of only the nearest blocks). It depends on
//! the latent only, so no gradient flows through it.
//!
//! Matching is on integers so that the float network (training) and the integer network (the
//! codec, bit-exact everywhere) pick the same blocks: the *guide* is the sum of the three
//! quantized channels ([`quantize_input`]) shifted right by [`GUIDE_SHIFT`], matched on luma
//! as CBM3D does (measured on the block means alone: as good as the three channels, at a third
//! of the work). Every distance then fits `i32` exactly, so their order is defined to the bit
//! (`spec/integer-network.md#block-matching`).

use rayon::prelude::*;

use super::intkernel::Kernels;
use super::intnet::quantize_input;

/// Block matching's parameters (all in pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonLocal {
    /// Side of the tiles and of the blocks compared (it divides the network's stride).
    pub block: usize,
    /// How far a candidate's corner may lie from its tile's, per axis.
    pub radius: usize,
    /// Grid of the candidates' corners.
    pub step: usize,
    /// Blocks averaged, the tile itself included.
    pub k: usize,
    /// Tile grids: 1, or 2 with a second grid half a block inside the first, so that a pixel
    /// averages the blocks of two overlapping tiles.
    pub grids: usize,
    /// With `near` in `1..k`, a second mean of only the `near` nearest of those blocks (the tile
    /// first): where the two means differ, the farther blocks are not repeats, and the network
    /// can learn from the difference how far to trust the wide mean. 0: none.
    pub near: usize,
}

impl NonLocal {
    /// Blocks averaged per tile by each matched mean the network receives: `k`, then `near`.
    pub(crate) fn takes(self) -> Vec<usize> {
        assert!(
            self.near < self.k,
            "the near mean takes fewer blocks than k"
        );
        if self.near > 0 {
            vec![self.k, self.near]
        } else {
            vec![self.k]
        }
    }
}

/// Channels of the network's half-resolution input map: 12 of the unshuffled latent, the two
/// noise-level planes, and with block matching 12 of each unshuffled block-matched mean.
pub(crate) fn input_channels(nl: Option<NonLocal>) -> usize {
    14 + nl.map_or(0, |nl| 12 * nl.takes().len())
}

/// The guide is `floor((q0 + q1 + q2) / 2^GUIDE_SHIFT)`: values in `[-1536, 1535]`, so a
/// difference squared is below `3071^2` and a distance over `block^2 <= 64` pixels below `2^31`.
pub const GUIDE_SHIFT: u32 = 6;

/// Largest block side for which every distance fits `i32` (see [`GUIDE_SHIFT`]).
pub const MAX_BLOCK: usize = 8;

/// The guide of one quantized image, planar `(3, h, w)` in, `(h, w)` out.
pub(crate) fn guide(q: &[i16], h: usize, w: usize) -> Vec<i16> {
    let n = h * w;
    assert_eq!(q.len(), 3 * n);
    (0..n)
        .map(|i| ((q[i] as i32 + q[n + i] as i32 + q[2 * n + i] as i32) >> GUIDE_SHIFT) as i16)
        .collect()
}

/// The block-matched means of `z` ([`NonLocal::takes`]), each planar `(n, 3, h, w)` like `z`;
/// `h` and `w` are multiples of `nl.block`. The float network's input: blocks chosen on the
/// quantized latent's guide, their float values averaged.
pub(crate) fn block_mean(z: &[f32], n: usize, h: usize, w: usize, nl: NonLocal) -> Vec<Vec<f32>> {
    assert_eq!(z.len(), n * 3 * h * w);
    let takes = nl.takes();
    let mut out = vec![vec![0f32; z.len()]; takes.len()];
    for (i, zi) in z.chunks(3 * h * w).enumerate() {
        let q: Vec<i16> = zi.iter().map(|&v| quantize_input(v)).collect();
        let sums: Vec<Vec<f32>> = block_sums(zi, &guide(&q, h, w), h, w, nl);
        for ((s, o), &take) in sums.iter().zip(&mut out).zip(&takes) {
            let oi = &mut o[i * 3 * h * w..(i + 1) * 3 * h * w];
            finish_means(s, h, w, nl, take, oi, |s, n| s / n as f32);
        }
    }
    out
}

/// The block-matched means of one quantized image (planar `(3, h, w)`), in integers: the sum
/// of the values of every block chosen for a pixel (`take` per tile covering it), `floor((sum
/// + n/2) / n)` for `n` values. The integer network's input.
pub fn block_mean_int(q: &[i16], h: usize, w: usize, nl: NonLocal) -> Vec<Vec<i16>> {
    let sums: Vec<Vec<i32>> = block_sums(q, &guide(q, h, w), h, w, nl);
    sums.iter()
        .zip(nl.takes())
        .map(|(s, take)| {
            let mut out = vec![0i16; q.len()];
            // The mean of values in the i16 range stays in it. `n` is `take` or `2 take`, a
            // power of two for the shipped `k`: then the floor division is a shift (an integer
            // divide per value was a tenth of the matching's time).
            finish_means(s, h, w, nl, take, &mut out, |s, n| {
                let t = s + n as i32 / 2;
                if n.is_power_of_two() {
                    (t >> n.trailing_zeros()) as i16
                } else {
                    t.div_euclid(n as i32) as i16
                }
            });
            out
        })
        .collect()
}

/// Half a block: how far the second tile grid ([`NonLocal::grids`] 2) lies inside the first.
fn frame(nl: NonLocal) -> usize {
    nl.block / 2
}

/// Whether the second grid exists for an `h x w` image (at least one tile of it fits).
fn second_grid(nl: NonLocal, h: usize, w: usize) -> bool {
    nl.grids == 2 && h >= 2 * nl.block && w >= 2 * nl.block
}

/// `out` = the mean of the chosen blocks' values at every pixel: `finish(sum, n)` with `n` =
/// `take` per tile covering the pixel.
fn finish_means<T: Send, S: Copy + Sync>(
    sums: &[S],
    h: usize,
    w: usize,
    nl: NonLocal,
    take: usize,
    out: &mut [T],
    finish: impl Fn(S, u32) -> T + Sync,
) {
    let (o, two) = (frame(nl), second_grid(nl, h, w));
    let k = take as u32;
    // Runs of pixels with the same count, so that each is one plain loop.
    let run = |d: &mut [T], s: &[S], n: u32| {
        for (d, &v) in d.iter_mut().zip(s) {
            *d = finish(v, n);
        }
    };
    out.par_chunks_mut(w)
        .zip(sums.par_chunks(w))
        .enumerate()
        .for_each(|(r, (row, s))| {
            let y = r % h;
            if two && y >= o && y < h - o {
                run(&mut row[..o], &s[..o], k);
                run(&mut row[o..w - o], &s[o..w - o], 2 * k);
                run(&mut row[w - o..], &s[w - o..], k);
            } else {
                run(row, s, k);
            }
        });
}

/// The sums of the values of the blocks chosen for every pixel's tiles, planar `(3, h, w)`,
/// one per [`NonLocal::takes`] (the first `take` of each tile's blocks): the tiles of the grid
/// from the image's corner, and with [`NonLocal::grids`] 2 those of the same grid on the image
/// without its outer frame of half a block (matched inside that smaller image), so that a pixel
/// inside the frame averages two tiles' blocks.
fn block_sums<T, S>(src: &[T], g: &[i16], h: usize, w: usize, nl: NonLocal) -> Vec<Vec<S>>
where
    T: Copy + Send + Sync + Into<S>,
    S: Copy + Default + Send + std::ops::AddAssign,
{
    let takes = nl.takes();
    let mut sums = vec![vec![S::default(); src.len()]; takes.len()];
    let corners = match_blocks(g, h, w, nl);
    for (s, &take) in sums.iter_mut().zip(&takes) {
        add_block_sums(src, (h, w), (0, 0), (h, w), &corners, nl, take, s);
    }
    if second_grid(nl, h, w) {
        let o = frame(nl);
        let (ih, iw) = (h - 2 * o, w - 2 * o);
        let inner: Vec<i16> = (o..h - o)
            .flat_map(|y| g[y * w + o..y * w + w - o].iter().copied())
            .collect();
        let corners: Vec<(u32, u32)> = match_blocks(&inner, ih, iw, nl)
            .into_iter()
            .map(|(y, x)| (y + o as u32, x + o as u32))
            .collect();
        for (s, &take) in sums.iter_mut().zip(&takes) {
            add_block_sums(src, (h, w), (o, o), (ih, iw), &corners, nl, take, s);
        }
    }
    sums
}

/// Add to `sums` (planar `(3, h, w)`) the first `take` chosen blocks of every tile of the grid
/// whose tiles cover `size` pixels from `origin`; `corners` are absolute, `k` per tile,
/// row-major.
#[allow(clippy::too_many_arguments)]
fn add_block_sums<T, S>(
    src: &[T],
    (h, w): (usize, usize),
    (oy, ox): (usize, usize),
    (gh, gw): (usize, usize),
    corners: &[(u32, u32)],
    nl: NonLocal,
    take: usize,
    sums: &mut [S],
) where
    T: Copy + Send + Sync + Into<S>,
    S: Copy + Default + Send + std::ops::AddAssign,
{
    let (b, k) = (nl.block, nl.k);
    let tw = gw / b;
    sums.par_chunks_mut(w).enumerate().for_each(|(r, row)| {
        let (ch, y) = (r / h, r % h);
        if y < oy || y >= oy + gh {
            return;
        }
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        let (ty, dy) = ((y - oy) / b, (y - oy) % b);
        for tx in 0..tw {
            let at = (ty * tw + tx) * k;
            let dst = &mut row[ox + tx * b..ox + (tx + 1) * b];
            let rows = corners[at..at + take].iter().map(|&(cy, cx)| {
                let from = (cy as usize + dy) * w + cx as usize;
                &plane[from..from + b]
            });
            if let Ok(dst) = <&mut [S; 8]>::try_from(&mut *dst) {
                // The shipped block: fixed-length rows summed in registers, which the
                // compiler vectorizes.
                let mut acc = [S::default(); 8];
                for src in rows {
                    let src: &[T; 8] = src.try_into().expect("8 values");
                    for (a, &v) in acc.iter_mut().zip(src) {
                        *a += v.into();
                    }
                }
                for (s, a) in dst.iter_mut().zip(acc) {
                    *s += a;
                }
            } else {
                for src in rows {
                    for (s, &v) in dst.iter_mut().zip(src) {
                        *s += v.into();
                    }
                }
            }
        }
    });
}

/// The `k` blocks matched to every tile of a guide `(h, w)`, row-major over the tiles: the tile
/// itself first, then the other candidates by increasing distance, ties to the earlier candidate
/// in row-major order of the offsets `(dy, dx)`, each in `-radius..=radius` on the `step` grid;
/// candidates lie inside the image; fewer than `k` candidates repeat the tile.
pub(crate) fn match_blocks(g: &[i16], h: usize, w: usize, nl: NonLocal) -> Vec<(u32, u32)> {
    let b = nl.block;
    assert!(b > 0 && b <= MAX_BLOCK && nl.step > 0 && nl.k > 0);
    assert!(h.is_multiple_of(b) && w.is_multiple_of(b) && g.len() == h * w);
    let (th, tw) = (h / b, w / b);
    let padded = Padded::new(g, h, w, nl.radius);
    let mut corners = vec![(0u32, 0u32); th * tw * nl.k];
    corners
        .par_chunks_mut(tw * nl.k)
        .enumerate()
        .for_each_init(Band::default, |band, (ty, out)| {
            band.run(&padded, h, w, nl, ty, out)
        });
    corners
}

/// The guide with `pad` columns on either side, so that a row of tiles can be compared with
/// the blocks at any horizontal offset up to `pad` without bounds per tile: the distances of
/// candidates outside the image are computed on the padding and never used.
struct Padded {
    g: Vec<i16>,
    /// Row length: `w + 2 pad`.
    stride: usize,
    pad: usize,
}

impl Padded {
    fn new(g: &[i16], h: usize, w: usize, pad: usize) -> Self {
        let stride = w + 2 * pad;
        let mut p = vec![0i16; h * stride];
        for (row, src) in p.chunks_mut(stride).zip(g.chunks(w)) {
            row[pad..pad + w].copy_from_slice(src);
        }
        Padded { g: p, stride, pad }
    }

    /// Index of image pixel `(y, x)`; `x` may lie up to `pad` outside the image.
    fn at(&self, y: usize, x: isize) -> usize {
        y * self.stride + (x + self.pad as isize) as usize
    }
}

/// One row of tiles being matched: every offset is tried on the whole row at once, so the
/// distances are sums of squared differences along contiguous image rows.
#[derive(Default)]
struct Band {
    /// For the current vertical offset: every tile's distance to its candidate at every
    /// horizontal offset, `[dx][tile]`.
    table: Vec<i32>,
    /// Per tile: a candidate may enter its list only if its distance is below this.
    bound: Vec<i32>,
    /// The tiles (from the first of the current offset) that may take their candidate.
    hits: Vec<u32>,
    /// Per tile: the best candidates so far, `k` slots, `len` used, as sort keys (the
    /// distance, then the candidate's place in the specification's order of offsets: see
    /// [`Band::key`]) and corners.
    keys: Vec<i64>,
    at: Vec<(u32, u32)>,
    len: Vec<usize>,
}

impl Band {
    /// The order of the specification, distance first and ties to the earlier offset, as one
    /// number: candidates may then be tried in any order (the nearest offsets first, which
    /// fill the lists with good candidates early and keep most later ones out).
    fn key(d: i32, offset: usize) -> i64 {
        ((d as i64) << 32) | offset as i64
    }

    fn run(
        &mut self,
        g: &Padded,
        h: usize,
        w: usize,
        nl: NonLocal,
        ty: usize,
        out: &mut [(u32, u32)],
    ) {
        let (b, k, r) = (nl.block, nl.k, nl.radius as isize);
        let (tw, y0) = (w / b, ty * b);
        let own = |tx: usize| (y0 as u32, (tx * b) as u32);
        self.keys.clear();
        self.keys.resize(tw * k, 0);
        self.at.clear();
        self.at
            .extend((0..tw).flat_map(|tx| std::iter::repeat_n(own(tx), k)));
        self.len.clear();
        self.len.resize(tw, 1);
        // The tile itself is first whatever its distance: -1 sorts before every other.
        for tx in 0..tw {
            self.keys[tx * k] = -1;
        }
        // Anything may enter while slots are free.
        self.bound.clear();
        self.bound.resize(tw, if k > 1 { i32::MAX } else { -1 });
        let dxs: Vec<isize> = (-r..=r).step_by(nl.step).collect();
        // Offsets are numbered in the key's low 32 bits.
        assert!((dxs.len() as u64).pow(2) < 1 << 32);
        // Vertical offsets nearest first; `iy` is the offset's row in the specification's order.
        let mut dys: Vec<(usize, isize)> = dxs.iter().copied().enumerate().collect();
        dys.sort_by_key(|&(_, dy)| (dy.abs(), dy));
        self.table.resize(dxs.len() * tw, 0);
        for (iy, dy) in dys {
            let cy = y0 as isize + dy;
            if cy < 0 || cy as usize + b > h {
                continue;
            }
            let cy = cy as usize;
            row_distances(g, b, tw, y0, cy, &dxs, &mut self.table);
            for (ix, &dx) in dxs.iter().enumerate() {
                if dy == 0 && dx == 0 {
                    continue;
                }
                // Tiles whose candidate `(cy, tx b + dx)` lies inside the image.
                let lo = if dx < 0 {
                    (-dx as usize).div_ceil(b)
                } else {
                    0
                };
                let hi = (w as isize - b as isize - dx).div_euclid(b as isize) + 1;
                let hi = (hi.max(0) as usize).min(tw);
                if lo >= hi {
                    continue;
                }
                let near = &self.table[ix * tw..(ix + 1) * tw];
                nearer(&near[lo..hi], &self.bound[lo..hi], &mut self.hits);
                for &j in &self.hits {
                    let tx = lo + j as usize;
                    let key = Self::key(near[tx], iy * dxs.len() + ix);
                    let (keys, at) = (
                        &mut self.keys[tx * k..(tx + 1) * k],
                        &mut self.at[tx * k..(tx + 1) * k],
                    );
                    let len = &mut self.len[tx];
                    if *len == k && key > keys[k - 1] {
                        // As near as the last, but a later offset.
                        continue;
                    }
                    // The farther ones move up a slot, the last one out when the list is full.
                    let end = (*len + 1).min(k);
                    let mut pos = end - 1;
                    while keys[pos - 1] > key {
                        keys[pos] = keys[pos - 1];
                        at[pos] = at[pos - 1];
                        pos -= 1;
                    }
                    keys[pos] = key;
                    at[pos] = (cy as u32, (tx as isize * b as isize + dx) as u32);
                    *len = end;
                    if end == k {
                        // Distances below 2^31 - 1 (see GUIDE_SHIFT): equal ones still
                        // compete on their offsets.
                        self.bound[tx] = (keys[k - 1] >> 32) as i32 + 1;
                    }
                }
            }
        }
        // Unused slots still hold the tile's own corner.
        out.copy_from_slice(&self.at);
    }
}

/// `table[i tw + t]` = the distance of tile `t` of the row at `y0` (a `b x b` block of the
/// guide) to the block at `(cy, t b + dxs[i])`. The hot loop of matching, vectorized for the
/// widest instructions this CPU has (integers: every version gives the same sums).
fn row_distances(
    g: &Padded,
    b: usize,
    tw: usize,
    y0: usize,
    cy: usize,
    dxs: &[isize],
    table: &mut [i32],
) {
    assert!(table.len() >= dxs.len() * tw);
    assert!(
        tw * b + 2 * g.pad <= g.stride,
        "the row of tiles lies in the image"
    );
    assert!(dxs.iter().all(|d| d.unsigned_abs() <= g.pad));
    assert!((y0.max(cy) + b) * g.stride <= g.g.len());
    // Tiles already measured (by pairs, with AVX2).
    let done = match Kernels::detected() {
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx512Vnni if b == 8 && std::arch::is_x86_feature_detected!("avx512bw") => {
            // SAFETY: the CPU has AVX-512 BW (checked above); every row read lies in the
            // padded guide (asserted above: offsets within the padding, rows inside the image).
            return unsafe { avx512::row_distances8(g, tw, y0, cy, dxs, table) };
        }
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx2 | Kernels::Avx512Vnni if b == 8 => {
            // SAFETY: both sets mean the CPU has AVX2; every row read lies in the padded guide
            // (asserted above).
            unsafe { avx2::row_distances8(g, tw, y0, cy, dxs, table) }
        }
        _ => 0,
    };
    for (i, &dx) in dxs.iter().enumerate() {
        for (t, o) in table[i * tw..(i + 1) * tw]
            .iter_mut()
            .enumerate()
            .skip(done)
        {
            let x = (t * b) as isize;
            let mut d = 0i32;
            for r in 0..b {
                let (ra, rc) = (g.at(y0 + r, x), g.at(cy + r, x + dx));
                for (&p, &q) in g.g[ra..ra + b].iter().zip(&g.g[rc..rc + b]) {
                    let e = p as i32 - q as i32;
                    d += e * e;
                }
            }
            *o = d;
        }
    }
}

/// `hits` = the indices `j` with `d[j] < bound[j]`, in order.
fn nearer(d: &[i32], bound: &[i32], hits: &mut Vec<u32>) {
    hits.clear();
    let done = match Kernels::detected() {
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx512Vnni => {
            // SAFETY: the set means the CPU has AVX-512 F.
            return unsafe { avx512::nearer(d, bound, hits) };
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the set means the CPU has AVX2.
        Kernels::Avx2 => unsafe { avx2::nearer(d, bound, hits) },
        _ => 0,
    };
    hits.extend(
        (done as u32..d.len().min(bound.len()) as u32)
            .filter(|&j| d[j as usize] < bound[j as usize]),
    );
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::row_distances`] for 8x8 blocks on the tiles it can take two at a time (16
    /// values of a row): as the AVX-512 version, with the two tiles' pair sums added
    /// horizontally. Returns how many tiles it measured (the rest are the caller's).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn row_distances8(
        g: &super::Padded,
        tw: usize,
        y0: usize,
        cy: usize,
        dxs: &[isize],
        table: &mut [i32],
    ) -> usize {
        let p = g.g.as_ptr();
        let pairs = tw / 2;
        for t in (0..2 * pairs).step_by(2) {
            let x = (8 * t) as isize;
            let mut a = [_mm256_setzero_si256(); 8];
            for (i, ai) in a.iter_mut().enumerate() {
                // SAFETY (caller): the row lies in the guide, 16 values from `x`.
                *ai = _mm256_loadu_si256(p.add(g.at(y0 + i, x)) as *const __m256i);
            }
            for (j, &dx) in dxs.iter().enumerate() {
                let mut acc = _mm256_setzero_si256();
                for (i, &ai) in a.iter().enumerate() {
                    // SAFETY (caller): `dx` lies within the padding.
                    let c = _mm256_loadu_si256(p.add(g.at(cy + i, x + dx)) as *const __m256i);
                    let d = _mm256_sub_epi16(ai, c);
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(d, d));
                }
                // Each 128-bit half (a tile) summed into all of its lanes.
                let s = _mm256_hadd_epi32(acc, acc);
                let s = _mm256_hadd_epi32(s, s);
                table[j * tw + t] = _mm256_extract_epi32::<0>(s);
                table[j * tw + t + 1] = _mm256_extract_epi32::<4>(s);
            }
        }
        2 * pairs
    }

    /// [`super::nearer`] over the first multiple of eight entries, eight at a time; returns
    /// how many it looked at (the rest are the caller's).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn nearer(d: &[i32], bound: &[i32], hits: &mut Vec<u32>) -> usize {
        let n = d.len().min(bound.len()) / 8 * 8;
        for j in (0..n).step_by(8) {
            // SAFETY: `j + 8 <= n`, inside both slices.
            let x = _mm256_loadu_si256(d.as_ptr().add(j) as *const __m256i);
            let y = _mm256_loadu_si256(bound.as_ptr().add(j) as *const __m256i);
            let mut bits = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(y, x))) as u32;
            while bits != 0 {
                hits.push(j as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
        n
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// [`super::row_distances`] for 8x8 blocks, four tiles (32 values of a row) at a time: the
    /// tiles' eight rows stay in registers across the horizontal offsets; differences in `i16`
    /// (guides lie in `[-1536, 1535]`), squared and summed in pairs into `i32` (`vpmaddwd`),
    /// over the 8 rows, then each tile's four pair sums added.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn row_distances8(
        g: &super::Padded,
        tw: usize,
        y0: usize,
        cy: usize,
        dxs: &[isize],
        table: &mut [i32],
    ) {
        let p = g.g.as_ptr();
        let mut t = 0;
        while t < tw {
            let tiles = (tw - t).min(4);
            let mask: __mmask32 = if tiles == 4 {
                !0
            } else {
                (1u32 << (8 * tiles)) - 1
            };
            let keep: __mmask16 = (1u16 << tiles) - 1;
            let x = (8 * t) as isize;
            let mut a = [_mm512_setzero_si512(); 8];
            for (i, ai) in a.iter_mut().enumerate() {
                // SAFETY (caller): the row lies in the guide, `8 tiles` values from `x`.
                *ai = _mm512_maskz_loadu_epi16(mask, p.add(g.at(y0 + i, x)));
            }
            for (j, &dx) in dxs.iter().enumerate() {
                let mut acc = _mm512_setzero_si512();
                for (i, &ai) in a.iter().enumerate() {
                    // SAFETY (caller): `dx` lies within the padding.
                    let c = _mm512_maskz_loadu_epi16(mask, p.add(g.at(cy + i, x + dx)));
                    let d = _mm512_sub_epi16(ai, c);
                    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(d, d));
                }
                // Each tile's four lanes summed into its first: add the neighbour, then the pair.
                let acc = _mm512_add_epi32(acc, _mm512_shuffle_epi32::<0b10_11_00_01>(acc));
                let acc = _mm512_add_epi32(acc, _mm512_shuffle_epi32::<0b01_00_11_10>(acc));
                let sums = _mm512_maskz_compress_epi32(0x1111, acc);
                // SAFETY: `table[j tw + t..][..tiles]` is in bounds (the caller's assert).
                _mm512_mask_storeu_epi32(table.as_mut_ptr().add(j * tw + t), keep, sums);
            }
            t += tiles;
        }
    }

    /// [`super::nearer`], sixteen at a time: most candidates are rejected by one compare.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn nearer(d: &[i32], bound: &[i32], hits: &mut Vec<u32>) {
        let n = d.len().min(bound.len());
        let mut j = 0;
        while j < n {
            let m: __mmask16 = if n - j >= 16 {
                !0
            } else {
                (1u16 << (n - j)) - 1
            };
            // SAFETY: the masked lanes lie inside both slices.
            let x = _mm512_maskz_loadu_epi32(m, d.as_ptr().add(j));
            let y = _mm512_maskz_loadu_epi32(m, bound.as_ptr().add(j));
            let mut bits = _mm512_mask_cmplt_epi32_mask(m, x, y);
            while bits != 0 {
                hits.push(j as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
            j += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NL: NonLocal = NonLocal {
        block: 2,
        radius: 4,
        step: 2,
        k: 2,
        grids: 1,
        near: 0,
    };

    /// One image `(3, h, w)` whose every channel is `f(y, x)`.
    fn image(h: usize, w: usize, f: impl Fn(usize, usize) -> f32) -> Vec<f32> {
        (0..3 * h * w).map(|i| f((i / w) % h, i % w)).collect()
    }

    /// The matching as the specification states it, one tile at a time: every candidate's
    /// distance, a stable sort with the tile itself first, the first `k`, the tile repeated.
    fn reference(g: &[i16], h: usize, w: usize, nl: NonLocal) -> Vec<(u32, u32)> {
        let (b, r) = (nl.block, nl.radius as isize);
        let mut out = Vec::new();
        for y0 in (0..h).step_by(b) {
            for x0 in (0..w).step_by(b) {
                let mut cands = vec![(-1i64, (y0 as u32, x0 as u32))];
                for dy in (-r..=r).step_by(nl.step) {
                    for dx in (-r..=r).step_by(nl.step) {
                        let (cy, cx) = (y0 as isize + dy, x0 as isize + dx);
                        let inside =
                            cy >= 0 && cx >= 0 && cy as usize + b <= h && cx as usize + b <= w;
                        if !inside || (dy == 0 && dx == 0) {
                            continue;
                        }
                        let mut d = 0i64;
                        for i in 0..b {
                            for j in 0..b {
                                let a = g[(y0 + i) * w + x0 + j] as i64;
                                let c = g[(cy as usize + i) * w + cx as usize + j] as i64;
                                d += (a - c) * (a - c);
                            }
                        }
                        cands.push((d, (cy as u32, cx as u32)));
                    }
                }
                cands.sort_by_key(|c| c.0);
                out.extend((0..nl.k).map(|i| cands.get(i).map_or(cands[0].1, |c| c.1)));
            }
        }
        out
    }

    /// `deep-nl`'s matching on one grid.
    const SHIPPED: NonLocal = NonLocal {
        block: 8,
        radius: 16,
        step: 1,
        k: 8,
        grids: 1,
        near: 0,
    };

    #[test]
    fn matching_agrees_with_the_specification() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for (h, w, nl) in [
            (16, 24, NL),
            (16, 16, NonLocal { k: 40, ..NL }),
            (
                24,
                32,
                NonLocal {
                    block: 8,
                    radius: 5,
                    step: 1,
                    k: 8,
                    grids: 1,
                    near: 0,
                },
            ),
            // One block per tile; a search wider than the image (every offset outside).
            (8, 16, NonLocal { k: 1, ..NL }),
            (8, 8, SHIPPED),
            // Tile rows of several groups of four and a remainder, offsets past both edges.
            (40, 72, SHIPPED),
            (
                8,
                40,
                NonLocal {
                    block: 4,
                    radius: 9,
                    step: 3,
                    k: 5,
                    grids: 1,
                    near: 0,
                },
            ),
        ] {
            for coarse in [1i16, 400] {
                // Few distinct values make ties; extreme ones the largest distances.
                let g: Vec<i16> = (0..h * w)
                    .map(|_| match next() % 7 {
                        0 => -1536,
                        1 => 1535,
                        _ => ((next() % 3071) as i16 - 1536) / coarse * coarse,
                    })
                    .collect();
                assert_eq!(
                    match_blocks(&g, h, w, nl),
                    reference(&g, h, w, nl),
                    "{nl:?}"
                );
            }
        }
    }

    /// `BLOCK_MEAN_KNOWN_ANSWERS` of `spec/reference/intnet.py`: `(arch, latent, h, w, hash)`.
    fn reference_pins() -> Vec<(String, String, usize, usize, u64)> {
        let py = include_str!("../../spec/reference/intnet.py");
        let at = py
            .find("BLOCK_MEAN_KNOWN_ANSWERS = {")
            .expect("table in intnet.py");
        let table = &py[at..at + py[at..].find('}').expect("end of table")];
        table
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l
                    .split(|c: char| "(),:\" ".contains(c))
                    .filter(|f| !f.is_empty())
                    .collect();
                let hash = u64::from_str_radix(f[4].trim_start_matches("0x"), 16).unwrap();
                (
                    f[0].to_string(),
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    hash,
                )
            })
            .collect()
    }

    #[test]
    fn block_matching_known_answers() {
        let pins = reference_pins();
        assert_eq!(pins.len(), 6);
        for (arch, latent, h, w, want) in pins {
            let nl = crate::prior::net::NetConfig::by_name(&arch)
                .and_then(|c| c.nonlocal)
                .unwrap_or_else(|| panic!("{arch} matches blocks"));
            // intnet.py's test_latent and repeats_latent.
            let z: Vec<f32> = (0..3 * h * w)
                .map(|i| match latent.as_str() {
                    "test" => ((i * 7919) % 2003) as f32 - 1001.0,
                    _ => {
                        let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
                        (((x % 12) * 37 + (y % 10) * 11 + 5 * c) % 64) as f32 - 32.0
                    }
                } / if latent == "test" { 512.0 } else { 64.0 })
                .collect();
            let q: Vec<i16> = z.iter().map(|&v| quantize_input(v)).collect();
            let m = block_mean_int(&q, h, w, nl).remove(0);
            let bytes: Vec<u8> = m.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect();
            let got = crate::prior::fnv1a64(&bytes);
            assert_eq!(got, want, "{arch} {latent} {h}x{w}: {got:#018X}");
        }
    }

    #[test]
    fn a_second_grid_averages_two_tiles_inside_its_frame() {
        let (h, w) = (24, 32);
        let one = NonLocal {
            block: 8,
            radius: 5,
            step: 1,
            k: 3,
            grids: 1,
            near: 0,
        };
        let q: Vec<i16> = (0..3 * h * w)
            .map(|i| (((i * 7919) % 2003) as i32 * 13 - 13_000) as i16)
            .collect();
        // The second grid is the first on the image without its 4-pixel frame.
        let (ih, iw) = (h - 8, w - 8);
        let inner: Vec<i16> = (0..3 * ih * iw)
            .map(|i| q[((i / (ih * iw)) * h + 4 + (i / iw) % ih) * w + 4 + i % iw])
            .collect();
        let outer: Vec<i32> = block_sums(&q, &guide(&q, h, w), h, w, one).remove(0);
        let inside: Vec<i32> = block_sums(&inner, &guide(&inner, ih, iw), ih, iw, one).remove(0);
        let got = block_mean_int(&q, h, w, NonLocal { grids: 2, ..one }).remove(0);
        for (i, &m) in got.iter().enumerate() {
            let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
            let inner_at = (4..h - 4).contains(&y) && (4..w - 4).contains(&x);
            let (s, n) = if inner_at {
                (outer[i] + inside[(c * ih + y - 4) * iw + x - 4], 6)
            } else {
                (outer[i], 3)
            };
            assert_eq!(m as i32, (s + n / 2).div_euclid(n), "({c}, {y}, {x})");
        }
        // Too small for a second tile: the first grid alone.
        assert_eq!(
            block_mean_int(&q[..3 * 8 * 32], 8, 32, NonLocal { grids: 2, ..one }),
            block_mean_int(&q[..3 * 8 * 32], 8, 32, one)
        );
    }

    #[test]
    fn the_guide_is_the_shifted_channel_sum() {
        let q = [100i16, -32767, 32767, 5, -32767, 32767, -37, -32767, 32767];
        // (100 + 5 - 37) >> 6 = 1; the extremes at -1536 and 1535.
        assert_eq!(guide(&q, 1, 3), [1, -1536, 1535]);
    }

    #[test]
    fn repeats_are_averaged_and_unique_blocks_kept() {
        // Columns 0-1 and 4-5 hold the same pattern plus opposite offsets; 2-3 are far away.
        let f = |y: usize, x: usize| {
            (match x {
                0 | 1 => (y * 2 + x) as f32 + 0.5,
                4 | 5 => (y * 2 + x - 4) as f32 - 0.5,
                _ => 100.0 + (y * 7 + x) as f32,
            }) / 128.0
        };
        let z = image(2, 6, f);
        let m = block_mean(&z, 1, 2, 6, NL).remove(0);
        // The two repeats meet in their mean.
        let at = |y: usize, x: usize| m[y * 6 + x];
        for (y, x) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            assert_eq!(at(y, x), (y * 2 + x) as f32 / 128.0);
            assert_eq!(at(y, x + 4), (y * 2 + x) as f32 / 128.0);
        }
        // k = 1 is the identity, in floats and in integers.
        assert_eq!(
            block_mean(&z, 1, 2, 6, NonLocal { k: 1, ..NL }).remove(0),
            z
        );
        let q: Vec<i16> = z.iter().map(|&v| quantize_input(v)).collect();
        assert_eq!(block_mean_int(&q, 2, 6, NonLocal { k: 1, ..NL }), [q]);
        // The integer mean rounds halves up: (32 + 33) / 2 -> 33, (-32 - 33) / 2 -> -32.
        let q = [32i16, 0, 33, 0, -32, 0, -33, 0, 0, 0, 0, 0];
        let m = block_mean_int(
            &q,
            1,
            4,
            NonLocal {
                block: 1,
                radius: 2,
                step: 2,
                k: 2,
                grids: 1,
                near: 0,
            },
        );
        assert_eq!(m, [[33, 0, 33, 0, -32, 0, -32, 0, 0, 0, 0, 0]]);
    }

    #[test]
    fn ties_go_to_the_earlier_candidate_and_images_stay_apart() {
        // A flat image: every candidate ties, so the tile at (2, 2) takes (0, 0) next.
        let g = vec![7i16; 36];
        let m = match_blocks(&g, 6, 6, NonLocal { k: 3, ..NL });
        assert_eq!(m[(3 + 1) * 3..(3 + 2) * 3], [(2, 2), (0, 0), (0, 2)]);
        // Two images: a batch gives each the mean it gives alone.
        let a = image(4, 4, |y, x| (y * 4 + x) as f32 / 16.0);
        let b = image(4, 4, |y, x| ((y * 5 + x * 3) % 7) as f32 / 8.0);
        let both = block_mean(&[a.clone(), b.clone()].concat(), 2, 4, 4, NL);
        assert_eq!(
            both,
            [[
                block_mean(&a, 1, 4, 4, NL).remove(0),
                block_mean(&b, 1, 4, 4, NL).remove(0)
            ]
            .concat()]
        );
    }

    #[test]
    fn the_near_mean_is_the_mean_of_the_nearest_blocks() {
        // The first `near` of the `k` nearest blocks are the `near` nearest: the second mean is
        // what matching `near` blocks alone gives, in floats and in integers.
        let (h, w) = (32, 40);
        let z: Vec<f32> = (0..3 * h * w)
            .map(|i| ((i * 7919) % 2003) as f32 / 1001.0 - 1.0)
            .collect();
        let q: Vec<i16> = z.iter().map(|&v| quantize_input(v)).collect();
        let nl = NonLocal {
            block: 8,
            radius: 6,
            step: 1,
            k: 8,
            grids: 2,
            near: 3,
        };
        let alone = NonLocal {
            k: 3,
            near: 0,
            ..nl
        };
        let wide = NonLocal { near: 0, ..nl };
        let two = block_mean(&z, 1, h, w, nl);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0], block_mean(&z, 1, h, w, wide).remove(0));
        assert_eq!(two[1], block_mean(&z, 1, h, w, alone).remove(0));
        assert_ne!(two[0], two[1]);
        let two = block_mean_int(&q, h, w, nl);
        assert_eq!(two[1], block_mean_int(&q, h, w, alone).remove(0));
        assert_eq!(input_channels(Some(nl)), 38);
        assert_eq!(input_channels(Some(wide)), 26);
        assert_eq!(input_channels(None), 14);
    }
}
