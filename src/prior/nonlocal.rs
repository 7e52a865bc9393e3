//! Block matching on the network's input: the non-local half of CBM3D, as extra input planes.
//!
//! A convolutional network sees a repeated structure (a façade's windows, a fence) only through
//! its receptive field, and never learns to line repeats up. CBM3D's advantage on such photos is
//! exactly that: it averages every block with the blocks most like it. Here the noisy latent is
//! cut into `block x block` tiles; each tile is compared with every block whose corner lies
//! within `radius` pixels of its own (on a grid of `step` pixels) by the squared distance of
//! their pixels, and the mean of the `k` nearest (the tile itself first, always) takes its
//! place. The network receives that matched mean beside the latent and learns how far to trust
//! it. It depends on the latent only, so no gradient flows through it.

use rayon::prelude::*;

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
}

/// The block-matched mean of `z`, planar `(n, 3, h, w)` like `z`; `h` and `w` are multiples of
/// `nl.block`.
pub(crate) fn block_mean(z: &[f32], n: usize, h: usize, w: usize, nl: NonLocal) -> Vec<f32> {
    let b = nl.block;
    assert!(b > 0 && nl.step > 0 && nl.k > 0 && h.is_multiple_of(b) && w.is_multiple_of(b));
    assert_eq!(z.len(), n * 3 * h * w);
    let (th, tw) = (h / b, w / b);
    // The k corners (y, x) matched to each tile, row-major over (n, th, tw).
    let mut corners = vec![(0u32, 0u32); n * th * tw * nl.k];
    corners
        .par_chunks_mut(tw * nl.k)
        .enumerate()
        .for_each_init(Vec::new, |best, (row, out)| {
            let (img, ty) = (row / th, row % th);
            let zi = &z[img * 3 * h * w..(img + 1) * 3 * h * w];
            for tx in 0..tw {
                let o = &mut out[tx * nl.k..(tx + 1) * nl.k];
                match_tile(zi, h, w, nl, (ty * b, tx * b), best, o);
            }
        });
    let mut out = vec![0f32; z.len()];
    let inv = 1.0 / nl.k as f32;
    out.par_chunks_mut(w).enumerate().for_each(|(r, row)| {
        let (img, ch, y) = (r / (3 * h), (r / h) % 3, r % h);
        let plane = &z[(img * 3 + ch) * h * w..(img * 3 + ch + 1) * h * w];
        let (ty, dy) = (y / b, y % b);
        for tx in 0..tw {
            let at = ((img * th + ty) * tw + tx) * nl.k;
            let dst = &mut row[tx * b..(tx + 1) * b];
            for &(cy, cx) in &corners[at..at + nl.k] {
                let src = (cy as usize + dy) * w + cx as usize;
                for (d, s) in dst.iter_mut().zip(&plane[src..src + b]) {
                    *d += s;
                }
            }
            for d in dst.iter_mut() {
                *d *= inv;
            }
        }
    });
    out
}

/// The `k` blocks of one image (planar `(3, h, w)`) nearest to the tile at `(y0, x0)`: the
/// tile itself first, then by increasing squared distance, ties to the earlier candidate in
/// row-major order of the search grid. Fewer than `k` candidates repeat the tile.
fn match_tile(
    z: &[f32],
    h: usize,
    w: usize,
    nl: NonLocal,
    (y0, x0): (usize, usize),
    best: &mut Vec<(f32, (u32, u32))>,
    out: &mut [(u32, u32)],
) {
    let (b, r, k) = (nl.block, nl.radius as isize, nl.k);
    let own = (y0 as u32, x0 as u32);
    best.clear();
    best.push((f32::NEG_INFINITY, own));
    let offsets = || (-r..=r).step_by(nl.step);
    for dy in offsets() {
        let cy = y0 as isize + dy;
        if cy < 0 || cy as usize + b > h {
            continue;
        }
        for dx in offsets() {
            let cx = x0 as isize + dx;
            if cx < 0 || cx as usize + b > w || (dy == 0 && dx == 0) {
                continue;
            }
            let (cy, cx) = (cy as usize, cx as usize);
            let mut acc = [0f32; 8];
            for ch in 0..3 {
                for i in 0..b {
                    let a = &z[(ch * h + y0 + i) * w + x0..][..b];
                    let c = &z[(ch * h + cy + i) * w + cx..][..b];
                    for (j, (a, c)) in a.iter().zip(c).enumerate() {
                        acc[j % 8] += (a - c) * (a - c);
                    }
                }
            }
            let dist: f32 = acc.iter().sum();
            if best.len() == k && dist >= best[k - 1].0 {
                continue;
            }
            // After every entry at most as far: earlier candidates win ties.
            let at = best.partition_point(|e| e.0 <= dist);
            if best.len() == k {
                best.pop();
            }
            best.insert(at, (dist, (cy as u32, cx as u32)));
        }
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = best.get(i).map_or(own, |e| e.1);
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
    };

    /// One image `(3, h, w)` whose every channel is `f(y, x)`.
    fn image(h: usize, w: usize, f: impl Fn(usize, usize) -> f32) -> Vec<f32> {
        (0..3 * h * w).map(|i| f((i / w) % h, i % w)).collect()
    }

    #[test]
    fn repeats_are_averaged_and_unique_blocks_kept() {
        // Columns 0-1 and 4-5 hold the same pattern plus opposite offsets; 2-3 are far away.
        let f = |y: usize, x: usize| match x {
            0 | 1 => (y * 2 + x) as f32 + 0.5,
            4 | 5 => (y * 2 + x - 4) as f32 - 0.5,
            _ => 100.0 + (y * 7 + x) as f32,
        };
        let z = image(2, 6, f);
        let m = block_mean(&z, 1, 2, 6, NL);
        // The two repeats meet in their mean; the far block's nearest is a repeat, so it moves
        // (k = 2 always averages two), but towards the nearer one.
        let at = |y: usize, x: usize| m[y * 6 + x];
        for (y, x) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            assert_eq!(at(y, x), (y * 2 + x) as f32);
            assert_eq!(at(y, x + 4), (y * 2 + x) as f32);
        }
        // k = 1 is the identity.
        assert_eq!(block_mean(&z, 1, 2, 6, NonLocal { k: 1, ..NL }), z);
    }

    #[test]
    fn ties_go_to_the_earlier_candidate_and_images_stay_apart() {
        // A flat image: every candidate ties, so the tile at (2, 2) takes (0, 0) first.
        let mut out = [(9, 9); 3];
        let z = image(6, 6, |_, _| 1.0);
        match_tile(
            &z,
            6,
            6,
            NonLocal { k: 3, ..NL },
            (2, 2),
            &mut Vec::new(),
            &mut out,
        );
        assert_eq!(out, [(2, 2), (0, 0), (0, 2)]);
        // Two images: a batch gives each the mean it gives alone.
        let a = image(4, 4, |y, x| (y * 4 + x) as f32);
        let b = image(4, 4, |y, x| ((y * 5 + x * 3) % 7) as f32);
        let both = block_mean(&[a.clone(), b.clone()].concat(), 2, 4, 4, NL);
        assert_eq!(
            both,
            [block_mean(&a, 1, 4, 4, NL), block_mean(&b, 1, 4, 4, NL)].concat()
        );
    }

    #[test]
    fn candidates_stay_inside_the_radius_and_the_image() {
        let z = image(8, 8, |y, x| ((y * 13 + x * 7) % 11) as f32);
        let mut out = [(0, 0); 9];
        let nl = NonLocal { k: 9, ..NL };
        match_tile(&z, 8, 8, nl, (0, 6), &mut Vec::new(), &mut out);
        for (cy, cx) in out {
            assert!(cy as usize + 2 <= 8 && cx as usize + 2 <= 8);
            assert!((cy as isize).abs() <= 4 && (cx as isize - 6).abs() <= 4);
        }
    }
}
