//! Non-local aggregation at the network's coarsest level: block matching on learned features.
//!
//! A convolutional network sees a repeated structure (a façade's windows, a fence) only through
//! its receptive field, and never learns to line repeats up. CBM3D's advantage on such photos is
//! exactly that: it averages every block with the blocks most like it. Here each position of the
//! 1/8-resolution map is matched against the positions within `radius` of it by the squared
//! distance of their feature vectors; the mean of the `k` nearest (itself first, always) is
//! handed to the next layer beside the position's own features. The choice is a hard top-k, so
//! the gradient flows through the averaged features, not through the choice.

use rayon::prelude::*;

/// Where and how a network aggregates: before layer `layer` of the 1/8-resolution stack, the
/// mean of the `k` nearest positions within `radius` (in 1/8-resolution positions, per axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonLocal {
    /// Index of the 1/8-resolution layer that receives `[x, mean]` (twice the channels).
    pub layer: usize,
    /// Positions averaged, the position itself included.
    pub k: usize,
    /// Search radius per axis.
    pub radius: usize,
}

/// Shape of a channels-last batch of maps `(N, H, W, C)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

/// For every position (row-major over `N H W`), the flat indices of its `k` nearest positions
/// in the same image: itself first, then by increasing squared feature distance, ties to the
/// earlier offset in row-major order of the search window. Fewer than `k` candidates (a map
/// smaller than the window) repeat the position itself.
pub(crate) fn matches(x: &[f32], d: Dims, nl: NonLocal) -> Vec<u32> {
    let Dims { n, h, w, c } = d;
    assert_eq!(x.len(), n * h * w * c);
    assert!(nl.k >= 1);
    let r = nl.radius as isize;
    let k = nl.k;
    let mut idx = vec![0u32; n * h * w * k];
    idx.par_chunks_mut(w * k).enumerate().for_each_init(
        Vec::new,
        |best: &mut Vec<(f32, u32)>, (row, out)| {
            let (img, y) = (row / h, row % h);
            let base = img * h * w;
            for xx in 0..w {
                let p = base + y * w + xx;
                let xp = &x[p * c..(p + 1) * c];
                best.clear();
                best.push((f32::NEG_INFINITY, p as u32));
                for dy in -r..=r {
                    let qy = y as isize + dy;
                    if qy < 0 || qy >= h as isize {
                        continue;
                    }
                    for dx in -r..=r {
                        let qx = xx as isize + dx;
                        if qx < 0 || qx >= w as isize || (dy == 0 && dx == 0) {
                            continue;
                        }
                        let q = base + qy as usize * w + qx as usize;
                        let dist = squared_distance(xp, &x[q * c..(q + 1) * c]);
                        if best.len() == k && dist >= best[k - 1].0 {
                            continue;
                        }
                        // Insert after every entry at most as far (earlier offsets win ties).
                        let at = best.partition_point(|e| e.0 <= dist);
                        if best.len() == k {
                            best.pop();
                        }
                        best.insert(at, (dist, q as u32));
                    }
                }
                let o = &mut out[xx * k..(xx + 1) * k];
                for (i, slot) in o.iter_mut().enumerate() {
                    *slot = best.get(i).map_or(p as u32, |e| e.1);
                }
            }
        },
    );
    idx
}

/// `|a - b|^2`, summed in 16 lanes so that it vectorizes (a float sum in order would not).
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `[x, mean of x over each position's matches]`: `(N, H, W, 2 C)`.
pub(crate) fn concat_mean(x: &[f32], d: Dims, idx: &[u32], k: usize, out: &mut [f32]) {
    let c = d.c;
    assert_eq!(out.len(), 2 * x.len());
    let inv = 1.0 / k as f32;
    out.par_chunks_mut(2 * c).enumerate().for_each(|(p, o)| {
        let (own, mean) = o.split_at_mut(c);
        own.copy_from_slice(&x[p * c..(p + 1) * c]);
        mean.fill(0.0);
        for &q in &idx[p * k..(p + 1) * k] {
            let q = q as usize;
            for (m, v) in mean.iter_mut().zip(&x[q * c..(q + 1) * c]) {
                *m += v;
            }
        }
        for m in mean.iter_mut() {
            *m *= inv;
        }
    });
}

/// The gradient at `x` from the gradient `g` at `[x, mean]` `(N, H, W, 2 C)`: the first half
/// as it is, the second spread evenly over each position's matches.
pub(crate) fn concat_mean_back(g: &[f32], d: Dims, idx: &[u32], k: usize) -> Vec<f32> {
    let Dims { n, h, w, c } = d;
    let per = h * w;
    assert_eq!(g.len(), 2 * n * per * c);
    let inv = 1.0 / k as f32;
    let mut dx = vec![0f32; n * per * c];
    // One image per task: matches never leave their image, so the scatter stays inside it.
    dx.par_chunks_mut(per * c)
        .enumerate()
        .for_each(|(img, dxi)| {
            for pl in 0..per {
                let p = img * per + pl;
                let gp = &g[p * 2 * c..(p + 1) * 2 * c];
                for (a, b) in dxi[pl * c..(pl + 1) * c].iter_mut().zip(&gp[..c]) {
                    *a += b;
                }
                for &q in &idx[p * k..(p + 1) * k] {
                    let ql = q as usize - img * per;
                    for (a, b) in dxi[ql * c..(ql + 1) * c].iter_mut().zip(&gp[c..]) {
                        *a += b * inv;
                    }
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(n: usize, h: usize, w: usize, c: usize) -> Dims {
        Dims { n, h, w, c }
    }

    #[test]
    fn nearest_positions_in_order_and_within_the_image() {
        // One channel: values 0, 10, 1, 11 along a row; a second image of the same.
        let x = [0.0, 10.0, 1.0, 11.0, 0.0, 10.0, 1.0, 11.0];
        let d = dims(2, 1, 4, 1);
        let nl = NonLocal {
            layer: 0,
            k: 2,
            radius: 3,
        };
        let idx = matches(&x, d, nl);
        assert_eq!(&idx[..8], &[0, 2, 1, 3, 2, 0, 3, 1]);
        assert_eq!(&idx[8..], &[4, 6, 5, 7, 6, 4, 7, 5]);
        // Radius 1: position 0 sees only position 1.
        let idx = matches(&x, d, NonLocal { radius: 1, ..nl });
        assert_eq!(&idx[..2], &[0, 1]);
        // More matches than candidates: the position itself repeats.
        let idx = matches(&x[..2], dims(1, 1, 2, 1), NonLocal { k: 3, ..nl });
        assert_eq!(idx, [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn ties_go_to_the_earlier_offset() {
        let x = [5.0; 9];
        let idx = matches(
            &x,
            dims(1, 3, 3, 1),
            NonLocal {
                layer: 0,
                k: 3,
                radius: 1,
            },
        );
        // Centre (4): itself, then (0,0) and (0,1) come first in the window's order.
        assert_eq!(&idx[4 * 3..5 * 3], &[4, 0, 1]);
    }

    #[test]
    fn backward_is_the_adjoint_of_forward() {
        let d = dims(2, 3, 4, 2);
        let len = d.n * d.h * d.w * d.c;
        let x: Vec<f32> = (0..len).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let g: Vec<f32> = (0..2 * len).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
        let nl = NonLocal {
            layer: 0,
            k: 3,
            radius: 2,
        };
        let idx = matches(&x, d, nl);
        let mut y = vec![0f32; 2 * len];
        concat_mean(&x, d, &idx, nl.k, &mut y);
        let dx = concat_mean_back(&g, d, &idx, nl.k);
        // <g, F x> = <F^T g, x> for the linear map F (the matches held fixed).
        let lhs: f64 = g.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = dx.iter().zip(&x).map(|(a, b)| (a * b) as f64).sum();
        assert!(
            (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
        assert_ne!(y[..len], y[len..]);
    }
}
