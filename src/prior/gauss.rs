//! A closed-form prior: every pixel an independent Gaussian `x ~ N(m, v)`.
//!
//! Its posterior mean is a per-pixel shrinkage `x_hat = m + alpha v (z - alpha m) / (alpha^2 v + sigma^2)`.
//! It needs no weights and runs in microseconds, so tests of the whole codec use it.

use super::{Denoiser, Planes};
use crate::error::Result;
use crate::schedule::{alpha, sigma};

/// The Gaussian prior with mean `mean` and variance `var` in the `[-1, 1]` scale.
#[derive(Clone, Debug)]
pub struct GaussDenoiser {
    mean: f32,
    var: f32,
}

/// Model id of the default Gaussian prior (FNV-1a 64 of `"diffc-gauss-v1"`).
pub fn gauss_model_id() -> u64 {
    crate::prior::fnv1a64(b"diffc-gauss-v1")
}

impl Default for GaussDenoiser {
    fn default() -> Self {
        // Natural photos in [-1, 1]: mean ~ -0.05, variance ~ 0.25.
        GaussDenoiser {
            mean: -0.05,
            var: 0.25,
        }
    }
}

impl Denoiser for GaussDenoiser {
    fn name(&self) -> &str {
        "gauss"
    }

    fn model_id(&self) -> u64 {
        gauss_model_id()
    }

    fn predict_x(&self, z: &Planes, lambda: f64) -> Result<Planes> {
        let (a, s) = (alpha(lambda) as f32, sigma(lambda) as f32);
        let gain = a * self.var / (a * a * self.var + s * s);
        let (m, am) = (self.mean, a * self.mean);
        Ok(Planes {
            channels: z.channels,
            height: z.height,
            width: z.width,
            data: z.data.iter().map(|&v| m + gain * (v - am)).collect(),
        })
    }
}
