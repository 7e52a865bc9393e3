//! Reduced-resolution evaluation of a denoiser at high noise.
//!
//! Below some log-SNR the posterior mean `E[x | z]` is smooth: the fine detail of `x` is buried
//! in noise and a good denoiser outputs little of it. There the network can run on the 2x2
//! box-averaged latent, at a quarter of the cost, and its prediction be upsampled. Averaging four
//! pixels keeps the signal and quarters the noise variance, so the small latent is itself a
//! variance-preserving latent at `lambda + ln 4` once rescaled:
//!
//! ```text
//! z_d = mean of 2x2 = alpha x_d + (sigma / 2) eps'
//! c   = 1 / sqrt(alpha^2 + sigma^2 / 4)
//! c z_d is VP at lambda_d = lambda + ln 4
//! ```
//!
//! (At an odd right or bottom edge the last pixel is replicated, so there the noise is only
//! halved; the network is told a slightly higher log-SNR than it gets on that one row or
//! column.)
//!
//! Applied twice, the latent is 4x4-averaged at `lambda + 2 ln 4`, and so on. Measured on whole
//! dev images (`models/README.md`), the shipped network predicts *better* this way at low
//! log-SNR (it saw few such noise levels in training, and the averaged latent lands where it
//! is strong), at a quarter or a sixteenth of the cost.
//!
//! The same wrapper runs on both sides of the codec, so it only changes the prior (and the model
//! id), never the parsing. `spec/reconstruction.md#models` pins the arithmetic.

use std::sync::Arc;

use super::{Denoiser, Planes};
use crate::detmath;
use crate::error::{Error, Result};

/// `ln 4`, the log-SNR gained by one 2x2 averaging (bits `0x3FF62E42FEFA39EF`, =
/// `detmath::ln(4.0)`, tested).
const LN_4: f64 = 1.3862943611198906;

/// Extra bytes per image pixel the multiscale planes may take on top of the inner model's.
pub const MULTISCALE_BYTES_PER_PIXEL: u64 = 32;

/// A denoiser that runs `inner` on the latent averaged down by `2^levels`, where `levels` is the
/// number of `thresholds` that `lambda` lies strictly below, and upsamples the prediction back.
pub struct Multiscale {
    name: String,
    id: u64,
    inner: Arc<dyn Denoiser>,
    thresholds: Vec<f64>,
}

impl Multiscale {
    /// Wrap `inner`; `id` is the stream id of the wrapped model.
    pub fn new(name: &str, id: u64, inner: Arc<dyn Denoiser>, thresholds: &[f64]) -> Self {
        Multiscale {
            name: name.to_string(),
            id,
            inner,
            thresholds: thresholds.to_vec(),
        }
    }

    /// How many times a latent at `lambda` is halved before the network sees it.
    pub fn levels(&self, lambda: f64) -> usize {
        self.thresholds.iter().filter(|&&t| lambda < t).count()
    }
}

/// 2x2 box average, odd sizes edge-replicated: `(C, ceil(H/2), ceil(W/2))`, scaled by `scale`.
pub fn downsample2(z: &Planes, scale: f32) -> Planes {
    let (h, w) = (z.height, z.width);
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = Planes::zeros(z.channels, h2, w2);
    for c in 0..z.channels {
        let src = &z.data[c * h * w..(c + 1) * h * w];
        for y in 0..h2 {
            let (y0, y1) = (2 * y, (2 * y + 1).min(h - 1));
            for x in 0..w2 {
                let (x0, x1) = (2 * x, (2 * x + 1).min(w - 1));
                let s = src[y0 * w + x0] + src[y0 * w + x1] + src[y1 * w + x0] + src[y1 * w + x1];
                out.data[(c * h2 + y) * w2 + x] = s * 0.25 * scale;
            }
        }
    }
    out
}

/// Bilinear 2x upsampling (pixel centres: output `i` samples input `(i - 0.5) / 2`, clamped to
/// the edge) to exactly `(C, height, width)`; `s` is the `ceil(height/2) x ceil(width/2)`
/// image [`downsample2`] made (other sizes are clamped at the edges, never read out of bounds).
pub fn upsample2(s: &Planes, height: usize, width: usize) -> Planes {
    // Output coordinate i maps to input i/2 - 1/4: even i → 3/4 of floor(i/2) + 1/4 of the
    // previous one, odd i → 3/4 of floor(i/2) + 1/4 of the next one (clamped).
    let taps = |i: usize, n: usize| -> (usize, usize) {
        let j = i / 2;
        let other = if i.is_multiple_of(2) {
            j.saturating_sub(1)
        } else {
            j + 1
        };
        (j.min(n - 1), other.min(n - 1))
    };
    let (hs, ws) = (s.height, s.width);
    let mut out = Planes::zeros(s.channels, height, width);
    if hs == 0 || ws == 0 || s.data.len() < s.channels * hs * ws {
        return out;
    }
    for c in 0..s.channels {
        let src = &s.data[c * hs * ws..(c + 1) * hs * ws];
        for y in 0..height {
            let (ya, yb) = taps(y, hs);
            for x in 0..width {
                let (xa, xb) = taps(x, ws);
                let v = 0.5625 * src[ya * ws + xa]
                    + 0.1875 * src[ya * ws + xb]
                    + 0.1875 * src[yb * ws + xa]
                    + 0.0625 * src[yb * ws + xb];
                out.data[(c * height + y) * width + x] = v;
            }
        }
    }
    out
}

impl Denoiser for Multiscale {
    fn name(&self) -> &str {
        &self.name
    }

    fn model_id(&self) -> u64 {
        self.id
    }

    fn working_bytes(&self, height: usize, width: usize) -> u64 {
        // Bounded by the full-resolution pass of the inner model plus, on top, the smaller
        // latents and predictions (3 f32 planes each; at most 3/4 of a full image per kind even
        // for one-row images, whose halvings only shrink one side) and the full-size upsampled
        // output: 12 + 9 + 9 bytes per pixel, rounded up.
        self.inner.working_bytes(height, width).saturating_add(
            MULTISCALE_BYTES_PER_PIXEL * (height as u64).saturating_mul(width as u64),
        )
    }

    fn predict_x(&self, z: &Planes, lambda: f64) -> Result<Planes> {
        let levels = self.levels(lambda);
        if levels == 0 {
            return self.inner.predict_x(z, lambda);
        }
        if z.height == 0 || z.width == 0 || z.data.len() != z.channels * z.height * z.width {
            return Err(Error::InvalidArgument(format!(
                "multiscale prior needs a non-empty image, got {}x{}x{} with {} samples",
                z.channels,
                z.height,
                z.width,
                z.data.len()
            )));
        }
        let mut sizes = Vec::with_capacity(levels);
        let mut small = None;
        let mut lam = lambda;
        for _ in 0..levels {
            let cur = small.as_ref().unwrap_or(z);
            sizes.push((cur.height, cur.width));
            let a2 = 1.0 / (1.0 + detmath::exp(-lam));
            let s2 = 1.0 / (1.0 + detmath::exp(lam));
            let c = (1.0 / (a2 + s2 / 4.0)).sqrt();
            small = Some(downsample2(cur, c as f32));
            lam += LN_4;
        }
        let small = small.as_ref().unwrap_or(z);
        let mut x = self.inner.predict_x(small, lam)?;
        if (x.channels, x.height, x.width) != (small.channels, small.height, small.width)
            || x.data.len() != x.channels * x.height * x.width
        {
            return Err(Error::Model(format!(
                "denoiser returned {}x{}x{} ({} samples) for a {}x{}x{} latent",
                x.channels,
                x.height,
                x.width,
                x.data.len(),
                small.channels,
                small.height,
                small.width
            )));
        }
        for &(h, w) in sizes.iter().rev() {
            x = upsample2(&x, h, w);
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_then_up_keeps_constants_and_sizes() {
        for (h, w) in [(1, 1), (1, 5), (7, 3), (8, 8), (9, 16)] {
            let mut z = Planes::zeros(3, h, w);
            z.data.iter_mut().enumerate().for_each(|(i, v)| {
                *v = [0.25f32, -0.5, 1.0][i / (h * w)];
            });
            let d = downsample2(&z, 2.0);
            assert_eq!((d.height, d.width), (h.div_ceil(2), w.div_ceil(2)));
            let u = upsample2(&d, h, w);
            assert_eq!((u.height, u.width), (h, w));
            for (i, v) in u.data.iter().enumerate() {
                assert!((v - 2.0 * z.data[i]).abs() < 1e-6, "{h}x{w} at {i}");
            }
        }
    }

    #[test]
    fn ln_4_is_detmath_ln_4() {
        assert_eq!(LN_4.to_bits(), 0x3FF62E42FEFA39EF);
        assert_eq!(detmath::ln(4.0).to_bits(), LN_4.to_bits());
    }

    #[test]
    fn downsample_averages_blocks() {
        let z = Planes {
            channels: 1,
            height: 2,
            width: 4,
            data: vec![1.0, 3.0, 0.0, 4.0, 5.0, 7.0, 8.0, 0.0],
        };
        assert_eq!(downsample2(&z, 1.0).data, vec![4.0, 3.0]);
    }

    #[test]
    fn upsample_interpolates_between_centres() {
        let s = Planes {
            channels: 1,
            height: 1,
            width: 2,
            data: vec![0.0, 4.0],
        };
        // Output centres sit at input coordinates -0.25, 0.25, 0.75, 1.25 (clamped).
        assert_eq!(upsample2(&s, 1, 4).data, vec![0.0, 1.0, 3.0, 4.0]);
    }

    #[test]
    fn full_resolution_above_threshold() {
        let inner: Arc<dyn Denoiser> = Arc::new(crate::prior::gauss::GaussDenoiser::default());
        let m = Multiscale::new("t", 1, inner.clone(), &[0.0, -1.0]);
        assert_eq!(
            (
                m.levels(0.0),
                m.levels(-0.5),
                m.levels(-1.0),
                m.levels(-1.5)
            ),
            (0, 1, 1, 2)
        );
        let mut z = Planes::zeros(3, 4, 6);
        z.data.iter_mut().enumerate().for_each(|(i, v)| {
            *v = (i as f32 * 0.37).sin();
        });
        assert_eq!(
            m.predict_x(&z, 0.5).unwrap(),
            inner.predict_x(&z, 0.5).unwrap()
        );
        for l in [-0.5, -1.5] {
            let (a, b) = (m.predict_x(&z, l).unwrap(), inner.predict_x(&z, l).unwrap());
            assert_eq!((a.height, a.width), (4, 6));
            assert_ne!(a, b);
        }
    }

    /// Returns a fixed-size image whatever it is given.
    struct WrongSize;
    impl Denoiser for WrongSize {
        fn name(&self) -> &str {
            "wrong"
        }
        fn model_id(&self) -> u64 {
            0
        }
        fn predict_x(&self, _z: &Planes, _lambda: f64) -> Result<Planes> {
            Ok(Planes::zeros(3, 1, 1))
        }
    }

    #[test]
    fn bad_inner_output_and_bad_input_are_errors_not_panics() {
        let m = Multiscale::new("t", 1, Arc::new(WrongSize), &[0.0]);
        let z = Planes::zeros(3, 9, 7);
        assert!(matches!(m.predict_x(&z, -1.0), Err(Error::Model(_))));
        let bad = Planes {
            data: vec![0.0; 5],
            ..z.clone()
        };
        assert!(matches!(
            m.predict_x(&bad, -1.0),
            Err(Error::InvalidArgument(_))
        ));
        // Upsampling from a mismatched size clamps instead of reading out of bounds.
        let u = upsample2(&Planes::zeros(3, 1, 1), 9, 7);
        assert_eq!(u.data.len(), 3 * 9 * 7);
    }
}
