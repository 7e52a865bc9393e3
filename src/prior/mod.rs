//! Priors: denoisers that predict the clean image `x` from a noisy `z` at log-SNR `lambda`.
//!
//! The diffusion prior of DiffC is `p(z_s | z_t) = q(z_s | z_t, x_hat(z_t))`, so a prior is
//! exactly a denoiser. Everything the codec needs is the [`Denoiser`] trait.

use crate::error::Result;

/// A planar image of `f32` samples, channel-major (`C x H x W`), in the `[-1, 1]` pixel scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Planes {
    /// Number of channels (1 or 3).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// `channels * height * width` samples, channel-major then row-major.
    pub data: Vec<f32>,
}

impl Planes {
    /// A zero-filled image.
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Planes {
            channels,
            height,
            width,
            data: vec![0.0; channels * height * width],
        }
    }

    /// Number of samples (`C * H * W`).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the image has no samples.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A denoiser predicts `x_hat = E[x | z]` for `z = alpha x + sigma eps` at log-SNR
/// `lambda = log(alpha^2 / sigma^2)`.
///
/// Implementations must accept any image size (they pad internally if they need to) and
/// three-channel input. They must be deterministic on one machine: the encoder and the decoder
/// call them on the same inputs and must get the same outputs to reconstruct identical samples.
pub trait Denoiser: Send + Sync {
    /// Short name users select the model by (e.g. `"gauss"`, `"tiny"`).
    fn name(&self) -> &str;
    /// 64-bit identifier written in the stream header; a decoder refuses streams whose id differs.
    fn model_id(&self) -> u64;
    /// Predict `x_hat` (3 channels, same size as `z`, `[-1, 1]` scale) from `z` at `lambda`.
    fn predict_x(&self, z: &Planes, lambda: f64) -> Result<Planes>;
}

pub mod net;
