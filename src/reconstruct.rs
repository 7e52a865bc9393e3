//! Turning the last received latent `z` at log-SNR `lambda` into an image.
//!
//! - `denoise`: the posterior mean `x_hat(z, lambda)`.
//! - `flow`: integrate the probability-flow ODE (DDIM, eta = 0) from `lambda` up to
//!   [`ReconstructOptions::lambda_end`] in `flow_steps` steps evenly spaced in lambda, then denoise.
//! - `ancestral`: sample `p(z_s | z_t)` on the same lambda path, with noise from the stream's
//!   seed (domain `Ancestral`), then denoise.

use crate::error::{Error, Result};
use crate::prior::{Denoiser, Planes};
use crate::prng::{Domain, Philox};
use crate::schedule::{ddim_coefficients, Transition};

/// How to reconstruct from a (possibly truncated) stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    /// Probability-flow ODE (DDIM eta = 0): sharper at low rates.
    #[default]
    Flow,
    /// Ancestral sampling: a sample of the prior given what arrived.
    Ancestral,
    /// Posterior mean: best PSNR at high rates.
    Denoise,
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "flow" => Ok(Method::Flow),
            "ancestral" => Ok(Method::Ancestral),
            "denoise" => Ok(Method::Denoise),
            _ => Err(Error::InvalidArgument(format!(
                "unknown method {s:?} (flow, ancestral, denoise)"
            ))),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Flow => "flow",
            Method::Ancestral => "ancestral",
            Method::Denoise => "denoise",
        })
    }
}

/// Most denoiser evaluations `flow` / `ancestral` may take (each is a full network pass).
pub const MAX_FLOW_STEPS: usize = 1000;

/// Reconstruction settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReconstructOptions {
    /// Which reconstruction.
    pub method: Method,
    /// Denoiser evaluations of `flow` / `ancestral` before the final denoise.
    pub flow_steps: usize,
    /// Log-SNR where `flow` / `ancestral` stop and denoise.
    pub lambda_end: f64,
}

impl Default for ReconstructOptions {
    fn default() -> Self {
        ReconstructOptions {
            method: Method::Flow,
            flow_steps: 4,
            lambda_end: 14.0,
        }
    }
}

/// Run the denoiser on a `channels x height x width` latent. Gray latents are replicated to
/// three channels and the prediction averaged back to one.
pub fn predict(
    model: &dyn Denoiser,
    z: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    lambda: f64,
) -> Result<Vec<f32>> {
    let n = height * width;
    let planes = if channels == 3 {
        Planes {
            channels: 3,
            height,
            width,
            data: z.to_vec(),
        }
    } else {
        let mut d = Vec::with_capacity(3 * n);
        for _ in 0..3 {
            d.extend_from_slice(z);
        }
        Planes {
            channels: 3,
            height,
            width,
            data: d,
        }
    };
    let out = model.predict_x(&planes, lambda)?;
    if out.data.len() != 3 * n {
        return Err(Error::Model(format!(
            "denoiser returned {} values for a 3x{height}x{width} input",
            out.data.len()
        )));
    }
    if channels == 3 {
        Ok(out.data)
    } else {
        Ok((0..n)
            .map(|i| (out.data[i] + out.data[n + i] + out.data[2 * n + i]) / 3.0)
            .collect())
    }
}

/// Where the decoder stands: latent `z` after `steps_done` steps, reached at `lambda`.
pub struct Latent<'a> {
    /// The latent (`channels * height * width` values); unused when `lambda` is `None`.
    pub z: &'a [f32],
    /// Log-SNR of `z`; `None` before any step arrived.
    pub lambda: Option<f64>,
    /// Channels, height, width.
    pub shape: (usize, usize, usize),
    /// Stream seed (for ancestral noise).
    pub seed: u64,
}

/// Reconstruct `x` (`[-1, 1]`, planar) from a latent.
pub fn reconstruct(
    model: &dyn Denoiser,
    latent: &Latent<'_>,
    opts: &ReconstructOptions,
) -> Result<Vec<f32>> {
    let (c, h, w) = latent.shape;
    let Some(lambda) = latent.lambda else {
        // Nothing received: the same x_hat = 0 that step 0 is coded against (mid-gray).
        return Ok(vec![0.0; c * h * w]);
    };
    if opts.flow_steps > MAX_FLOW_STEPS || !opts.lambda_end.is_finite() {
        return Err(crate::error::Error::InvalidArgument(format!(
            "flow_steps {} (at most {MAX_FLOW_STEPS}) / lambda_end {} (must be finite)",
            opts.flow_steps, opts.lambda_end
        )));
    }
    let x0 = predict(model, latent.z, c, h, w, lambda)?;
    if opts.method == Method::Denoise || opts.flow_steps == 0 || lambda >= opts.lambda_end {
        return Ok(x0);
    }
    let g = Philox::new(latent.seed);
    let n = opts.flow_steps;
    let mut z = latent.z.to_vec();
    let mut x_hat = x0;
    let mut lt = lambda;
    for i in 1..=n {
        let ls = lambda + (opts.lambda_end - lambda) * i as f64 / n as f64;
        if opts.method == Method::Flow {
            let (cz, cx) = ddim_coefficients(lt, ls);
            let (cz, cx) = (cz as f32, cx as f32);
            for (zv, &xv) in z.iter_mut().zip(&x_hat) {
                *zv = cz * *zv + cx * xv;
            }
        } else {
            let tr = Transition::new(Some(lt), ls);
            let (cz, cx, sd) = (tr.coef_z as f32, tr.coef_x as f32, tr.std as f32);
            let mut noise = vec![0f32; z.len()];
            g.fill_normals_row(Domain::Ancestral, i as u32, 0, &mut noise);
            for ((zv, &xv), &e) in z.iter_mut().zip(&x_hat).zip(&noise) {
                *zv = cz * *zv + cx * xv + sd * e;
            }
        }
        x_hat = predict(model, &z, c, h, w, ls)?;
        lt = ls;
    }
    Ok(x_hat)
}
