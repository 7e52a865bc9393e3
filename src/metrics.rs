//! Distortion metrics: PSNR (in `image_io`) and MS-SSIM (Wang, Simoncelli, Bovik 2003).

use crate::error::{Error, Result};
use crate::image_io::Image;

const WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
const K1: f64 = 0.01;
const K2: f64 = 0.03;
const L: f64 = 255.0;

fn gaussian_window() -> Vec<f64> {
    let sigma = 1.5f64;
    let w: Vec<f64> = (-5..=5)
        .map(|i| (-(i as f64 * i as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Separable 11-tap Gaussian filter, "valid" region only.
fn filter(x: &[f64], w: usize, h: usize, k: &[f64]) -> (Vec<f64>, usize, usize) {
    let n = k.len();
    let (ow, oh) = (w + 1 - n, h + 1 - n);
    let mut tmp = vec![0.0; ow * h];
    for y in 0..h {
        for xo in 0..ow {
            tmp[y * ow + xo] = (0..n).map(|i| k[i] * x[y * w + xo + i]).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for yo in 0..oh {
        for xo in 0..ow {
            out[yo * ow + xo] = (0..n).map(|i| k[i] * tmp[(yo + i) * ow + xo]).sum();
        }
    }
    (out, ow, oh)
}

/// Mean SSIM and mean contrast-structure term of one channel.
fn ssim_cs(a: &[f64], b: &[f64], w: usize, h: usize, k: &[f64]) -> (f64, f64) {
    let (c1, c2) = ((K1 * L).powi(2), (K2 * L).powi(2));
    let prod = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(x, y)| x * y).collect::<Vec<f64>>();
    let (mu_a, ow, oh) = filter(a, w, h, k);
    let (mu_b, _, _) = filter(b, w, h, k);
    let (saa, _, _) = filter(&prod(a, a), w, h, k);
    let (sbb, _, _) = filter(&prod(b, b), w, h, k);
    let (sab, _, _) = filter(&prod(a, b), w, h, k);
    let n = (ow * oh) as f64;
    let (mut ssim, mut cs) = (0.0, 0.0);
    for i in 0..ow * oh {
        let (ma, mb) = (mu_a[i], mu_b[i]);
        let va = saa[i] - ma * ma;
        let vb = sbb[i] - mb * mb;
        let cov = sab[i] - ma * mb;
        let c = (2.0 * cov + c2) / (va + vb + c2);
        cs += c;
        ssim += c * (2.0 * ma * mb + c1) / (ma * ma + mb * mb + c1);
    }
    (ssim / n, cs / n)
}

fn downsample(x: &[f64], w: usize, h: usize) -> (Vec<f64>, usize, usize) {
    let (ow, oh) = (w / 2, h / 2);
    let mut out = vec![0.0; ow * oh];
    for y in 0..oh {
        for xx in 0..ow {
            out[y * ow + xx] = 0.25
                * (x[2 * y * w + 2 * xx]
                    + x[2 * y * w + 2 * xx + 1]
                    + x[(2 * y + 1) * w + 2 * xx]
                    + x[(2 * y + 1) * w + 2 * xx + 1]);
        }
    }
    (out, ow, oh)
}

/// MS-SSIM over 5 scales (2x2 average pooling), averaged over channels. Images must be at
/// least 176 pixels on their short side (11-tap window at the coarsest scale).
pub fn ms_ssim(a: &Image, b: &Image) -> Result<f64> {
    if (a.width, a.height, a.channels) != (b.width, b.height, b.channels) {
        return Err(Error::InvalidArgument(
            "MS-SSIM of images of different shapes".into(),
        ));
    }
    let (w, h, c) = (a.width as usize, a.height as usize, a.channels as usize);
    if w.min(h) < 176 {
        return Err(Error::InvalidArgument(format!(
            "MS-SSIM needs at least 176x176 pixels, image is {w}x{h}"
        )));
    }
    let k = gaussian_window();
    let mut total = 0.0;
    for ch in 0..c {
        let mut pa: Vec<f64> = a
            .data
            .iter()
            .skip(ch)
            .step_by(c)
            .map(|&v| v as f64)
            .collect();
        let mut pb: Vec<f64> = b
            .data
            .iter()
            .skip(ch)
            .step_by(c)
            .map(|&v| v as f64)
            .collect();
        let (mut cw, mut chh) = (w, h);
        let mut value = 1.0;
        for (s, &wt) in WEIGHTS.iter().enumerate() {
            let (ssim, cs) = ssim_cs(&pa, &pb, cw, chh, &k);
            if s == WEIGHTS.len() - 1 {
                value *= ssim.max(0.0).powf(wt);
            } else {
                value *= cs.max(0.0).powf(wt);
                let (na, nw, nh) = downsample(&pa, cw, chh);
                let (nb, _, _) = downsample(&pb, cw, chh);
                pa = na;
                pb = nb;
                cw = nw;
                chh = nh;
            }
        }
        total += value;
    }
    Ok(total / c as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(f: impl Fn(u32, u32) -> u8) -> Image {
        let (w, h) = (192u32, 180u32);
        let mut d = Vec::new();
        for y in 0..h {
            for x in 0..w {
                d.push(f(x, y));
            }
        }
        Image::new(w, h, 1, d).unwrap()
    }

    #[test]
    fn identical_is_one_and_noise_lowers_it() {
        let a = img(|x, y| ((x * 3 + y * 5) % 256) as u8);
        assert!((ms_ssim(&a, &a).unwrap() - 1.0).abs() < 1e-9);
        let b = img(|x, y| {
            (((x * 3 + y * 5) % 256) as u8).saturating_add(((x * 7 + y * 13) % 9) as u8 * 3)
        });
        let v = ms_ssim(&a, &b).unwrap();
        assert!(v < 0.999 && v > 0.5, "{v}");
        let small = Image::new(10, 10, 1, vec![0; 100]).unwrap();
        assert!(ms_ssim(&small, &small).is_err());
    }
}
