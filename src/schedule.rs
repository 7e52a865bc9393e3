//! Variance-preserving diffusion math in log-SNR form.
//!
//! `z = alpha x + sigma eps`, `alpha^2 = sigmoid(lambda)`, `sigma^2 = sigmoid(-lambda)`,
//! `lambda = log(alpha^2 / sigma^2)`. The coding steps go from high noise (low lambda) to low
//! noise (high lambda); step 0 starts from pure noise (`lambda = -inf`).
//!
//! Normative (`spec/rcc.md#transition-coefficients`): `exp` and `expm1` are those of
//! [`crate::detmath`], so every coefficient has the same bits on every platform.

use crate::detmath;
use crate::error::{Error, Result};

/// Fixed-point unit of lambda values in the stream: 1/256.
pub const LAMBDA_UNIT: f64 = 1.0 / 256.0;

/// `alpha = sqrt(sigmoid(lambda))`.
pub fn alpha(lambda: f64) -> f64 {
    (1.0 / (1.0 + detmath::exp(-lambda))).sqrt()
}

/// `sigma = sqrt(sigmoid(-lambda))`.
pub fn sigma(lambda: f64) -> f64 {
    (1.0 / (1.0 + detmath::exp(lambda))).sqrt()
}

/// The step grid written in the stream header: `steps` log-SNR values evenly spaced from
/// `start` to `stop` (both in units of 1/256).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    /// First lambda, in 1/256 units.
    pub start_q: i32,
    /// Last lambda, in 1/256 units.
    pub stop_q: i32,
    /// Number of steps (packets) in the grid.
    pub steps: u16,
}

/// Largest |lambda| a grid may contain (in lambda units); beyond it float math degenerates.
pub const MAX_ABS_LAMBDA: f64 = 30.0;

impl Grid {
    /// Build a grid from lambda values, rounding them to the stream's fixed point.
    pub fn new(start: f64, stop: f64, steps: u16) -> Result<Self> {
        if !(start.is_finite() && stop.is_finite()) {
            return Err(Error::InvalidArgument("lambda range must be finite".into()));
        }
        let g = Grid {
            start_q: (start / LAMBDA_UNIT).round() as i32,
            stop_q: (stop / LAMBDA_UNIT).round() as i32,
            steps,
        };
        g.validate()
            .map_err(|e| Error::InvalidArgument(format!("step grid: {e}")))?;
        Ok(g)
    }

    /// Check the grid read from a stream: at least one step, strictly increasing, bounded.
    pub fn validate(&self) -> Result<()> {
        let lim = (MAX_ABS_LAMBDA / LAMBDA_UNIT) as i32;
        if self.steps == 0 {
            return Err(Error::format("steps", "grid has zero steps"));
        }
        // `unsigned_abs`: `i32::MIN.abs()` overflows (and would wrap past the check).
        if self.start_q.unsigned_abs() > lim as u32 || self.stop_q.unsigned_abs() > lim as u32 {
            return Err(Error::format(
                "lambda_start/lambda_stop",
                format!(
                    "({}, {}) outside ±{MAX_ABS_LAMBDA}",
                    self.start_q as f64 * LAMBDA_UNIT,
                    self.stop_q as f64 * LAMBDA_UNIT
                ),
            ));
        }
        if self.steps > 1 && self.stop_q <= self.start_q {
            return Err(Error::format(
                "lambda_stop",
                "must be greater than lambda_start when steps > 1",
            ));
        }
        Ok(())
    }

    /// Lambda reached after step `i` (0-based).
    pub fn lambda(&self, i: usize) -> f64 {
        let a = self.start_q as f64 * LAMBDA_UNIT;
        if self.steps <= 1 {
            return a;
        }
        let b = self.stop_q as f64 * LAMBDA_UNIT;
        a + (b - a) * (i as f64) / ((self.steps - 1) as f64)
    }

    /// Lambda the step `i` starts from (`None` = pure noise for step 0).
    pub fn lambda_from(&self, i: usize) -> Option<f64> {
        if i == 0 {
            None
        } else {
            Some(self.lambda(i - 1))
        }
    }
}

/// Coefficients of one transition from `t` (noisier) to `s` (cleaner).
///
/// Posterior `q(z_s | z_t, x) = N(coef_z z_t + coef_x x, var)`; the prior is the same with `x`
/// replaced by `x_hat(z_t)`. In units of the step's standard deviation the two means differ by
/// `mu_scale * (x - x_hat)`, so `KL = 0.5 * mu_scale^2 * ||x - x_hat||^2` nats.
#[derive(Clone, Copy, Debug)]
pub struct Transition {
    /// Weight of `z_t` in the posterior mean.
    pub coef_z: f64,
    /// Weight of `x` (or `x_hat`) in the posterior mean.
    pub coef_x: f64,
    /// Posterior standard deviation.
    pub std: f64,
    /// `(mu_q - mu_p) / std = mu_scale * (x - x_hat)`; `mu_scale^2 = SNR(s) - SNR(t)`.
    pub mu_scale: f64,
}

impl Transition {
    /// Transition from `lambda_t` (`None` = pure noise) to `lambda_s > lambda_t`.
    pub fn new(lambda_t: Option<f64>, lambda_s: f64) -> Self {
        let a_s = alpha(lambda_s);
        let s_s = sigma(lambda_s);
        match lambda_t {
            None => Transition {
                coef_z: 0.0,
                coef_x: a_s,
                std: s_s,
                mu_scale: a_s / s_s,
            },
            Some(lt) => {
                // c = sigma_{t|s}^2 / sigma_t^2 = 1 - exp(lambda_t - lambda_s)
                let c = -detmath::expm1(lt - lambda_s);
                let a_t = alpha(lt);
                Transition {
                    coef_z: a_s / a_t * (1.0 - c),
                    coef_x: a_s * c,
                    std: s_s * c.sqrt(),
                    mu_scale: (c * detmath::exp(lambda_s)).sqrt(),
                }
            }
        }
    }
}

/// DDIM (eta = 0) / probability-flow step: `z_s = (sigma_s/sigma_t) z_t + (alpha_s - sigma_s alpha_t / sigma_t) x_hat`.
pub fn ddim_coefficients(lambda_t: f64, lambda_s: f64) -> (f64, f64) {
    let (a_t, s_t) = (alpha(lambda_t), sigma(lambda_t));
    let (a_s, s_s) = (alpha(lambda_s), sigma(lambda_s));
    (s_s / s_t, a_s - s_s * a_t / s_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_sigma_are_variance_preserving() {
        for l in [-20.0, -3.0, 0.0, 2.5, 12.0] {
            let (a, s) = (alpha(l), sigma(l));
            assert!((a * a + s * s - 1.0).abs() < 1e-12);
            assert!(((a * a / (s * s)).ln() - l).abs() < 1e-9);
        }
    }

    #[test]
    fn transition_matches_direct_posterior_formula() {
        let (lt, ls) = (1.0f64, 2.0f64);
        let tr = Transition::new(Some(lt), ls);
        let (a_t, s_t, a_s, s_s) = (alpha(lt), sigma(lt), alpha(ls), sigma(ls));
        let a_ts = a_t / a_s;
        let s2_ts = s_t * s_t - a_ts * a_ts * s_s * s_s;
        assert!((tr.coef_z - a_ts * s_s * s_s / (s_t * s_t)).abs() < 1e-12);
        assert!((tr.coef_x - a_s * s2_ts / (s_t * s_t)).abs() < 1e-12);
        assert!((tr.std * tr.std - s2_ts * s_s * s_s / (s_t * s_t)).abs() < 1e-12);
        let snr = |l: f64| l.exp();
        assert!((tr.mu_scale.powi(2) - (snr(ls) - snr(lt))).abs() < 1e-9);
        // mu_scale * (x - x_hat) == coef_x * (x - x_hat) / std
        assert!((tr.mu_scale - tr.coef_x / tr.std).abs() < 1e-12);
    }

    #[test]
    fn first_step_is_the_marginal() {
        let tr = Transition::new(None, -4.0);
        assert_eq!(tr.coef_z, 0.0);
        assert!((tr.coef_x - alpha(-4.0)).abs() < 1e-15);
        assert!((tr.std - sigma(-4.0)).abs() < 1e-15);
    }

    /// Bit patterns of the coefficients (normative: they move the decoder's latent), so that a
    /// change of `detmath`, or of an operation's order, shows here first.
    #[test]
    #[rustfmt::skip]
    fn coefficients_are_pinned_to_the_bit() {
        let alpha_sigma: &[(f64, u64, u64)] = &[
            (-10.0, 0x3F7B9916D1AFACEA, 0x3FEFFFD06576CF56),
            (-1.75, 0x3FD8A00E3C594927, 0x3FED89525609A9A2),
            (0.0, 0x3FE6A09E667F3BCD, 0x3FE6A09E667F3BCD),
            (0.125, 0x3FE752AA9B04D822, 0x3FE5E8EC0A8E5778),
            (3.26, 0x3FEF6725EAA53935, 0x3FC89C6D6E3E712A),
            (9.0, 0x3FEFFF7E9B7FB49D, 0x3F86BFF447DDF5D5),
            (14.0, 0x3FEFFFFF20C9D132, 0x3F4DE16ACBB72B8C),
        ];
        for &(l, a, s) in alpha_sigma {
            assert_eq!((alpha(l).to_bits(), sigma(l).to_bits()), (a, s), "lambda {l}");
        }
        // (lambda_t, lambda_s, [coef_z, coef_x, std, mu_scale])
        let transitions: &[(Option<f64>, f64, [u64; 4])] = &[
            (None, -10.0, [0x0000000000000000, 0x3F7B9916D1AFACEA, 0x3FEFFFD06576CF56, 0x3F7B993FE00D5376]),
            (Some(-10.0), -1.75, [0x3F8E8E1706F70D29, 0x3FD89E689B4FEB11, 0x3FED885575EFC8C6, 0x3FDAACF99F988BFB]),
            (Some(-1.75), 0.0, [0x3FD4704321ABDFEF, 0x3FE2B203365AB215, 0x3FE49150BC9EECFD, 0x3FED1647C977F2C1]),
            (Some(0.0), 0.125, [0x3FED1BA0059E8667, 0x3FB5EC930B4EEA10, 0x3FCE0AAAF4BA5A29, 0x3FD75A71164A31CB]),
            (Some(0.125), 3.26, [0x3FADFCDDA33605AB, 0x3FEE097278473B61, 0x3FC811DED1D385AC, 0x4013F76E580F143E]),
            (Some(3.26), 9.0, [0x3F6AD59EA96CAD24, 0x3FEFE5292A691DE6, 0x3F86B695D9C6407B, 0x405677D422A893AF]),
            (Some(9.0), 14.0, [0x3F7B99AEB9C1EA00, 0x3FEFC8CCA28ABBEB, 0x3F4DC79A599E665A, 0x409113BAC36143B4]),
        ];
        for &(lt, ls, want) in transitions {
            let t = Transition::new(lt, ls);
            let got = [t.coef_z, t.coef_x, t.std, t.mu_scale].map(f64::to_bits);
            assert_eq!(got, want, "{lt:?} -> {ls}");
        }
        // (lambda_t, lambda_s, ddim_coefficients)
        let ddim: &[(f64, f64, [u64; 2])] = &[
            (-10.0, -1.75, [0x3FED897E469F72A0, 0x3FD83A28F85B9C77]),
            (-1.75, 0.0, [0x3FE883C5B57DDA02, 0x3FDA63CAC072A633]),
            (0.0, 0.125, [0x3FEEFC36AF634B65, 0x3FA69BE907680AA0]),
            (0.125, 3.26, [0x3FD1F8FB769CED00, 0x3FE8DA74A0F08AA4]),
            (3.26, 9.0, [0x3FAD9479BE4A02C8, 0x3FEE2F0BAD333E03]),
            (9.0, 14.0, [0x3FB503DA27888D65, 0x3FED5F8E7B09B6C6]),
        ];
        for &(lt, ls, want) in ddim {
            let (cz, cx) = ddim_coefficients(lt, ls);
            assert_eq!([cz.to_bits(), cx.to_bits()], want, "{lt} -> {ls}");
        }
    }

    #[test]
    fn grid_validation_rejects_bad_grids() {
        assert!(Grid::new(0.0, 10.0, 0).is_err());
        assert!(Grid::new(5.0, 1.0, 4).is_err());
        assert!(Grid::new(-40.0, 1.0, 4).is_err());
        let g = Grid::new(-6.0, 12.0, 37).unwrap();
        assert_eq!(g.lambda(0), -6.0);
        assert_eq!(g.lambda(36), 12.0);
        assert!((g.lambda(1) + 5.5).abs() < 1e-12);
    }
}
