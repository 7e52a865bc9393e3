//! Mirror averaging: a model evaluated on `z` and on its mirror images, the predictions
//! mirrored back and averaged (`spec/reconstruction.md#mirror-averaging`).
//!
//! A denoiser trained on flipped crops predicts a mirrored latent about as well as the latent
//! itself, but its errors on the two differ; their mean is a better estimate of `E[x | z]`.
//! Each mirror costs one more pass, so the table of models sets how many a model uses, and
//! where ([`Mirroring`]): around the whole model ([`Mirrors`], this module), or inside each
//! integer network, where the mirror images share one block matching
//! ([`super::intnet::IntNet::predict_v_mirrored`]).

use std::sync::Arc;

use super::{Denoiser, Planes};
use crate::error::{Error, Result};

/// How a model averages mirror images of its latent: part of its definition and stream id
/// (`spec/reconstruction.md#mirror-averaging`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mirroring {
    /// One pass on the latent itself.
    None,
    /// Around the whole model: each of the 2 or 4 mirror images is a full evaluation
    /// (multiscale, experts, block matching), the predictions averaged in binary32 ([`Mirrors`];
    /// id tag `diffc-mirrors-v1`).
    Model(usize),
    /// Inside each network, on its padded latent: blocks are matched once and mirrored with the
    /// latent, and the networks' integer outputs are summed before the composition (id tag
    /// `diffc-net-mirrors-v1`). Matching is then a quarter of the work with four images.
    Network(usize),
}

impl Mirroring {
    /// Passes per prediction (1 without mirrors).
    pub fn count(self) -> usize {
        match self {
            Mirroring::None => 1,
            Mirroring::Model(n) | Mirroring::Network(n) => n,
        }
    }
}

/// `count` when a network may average that many mirror images of its latent itself (1, 2 or 4;
/// [`Mirroring::Network`]), else a `Model` error naming the network.
pub(crate) fn network_count(name: &str, count: usize) -> Result<usize> {
    if matches!(count, 1 | 2 | 4) {
        Ok(count)
    } else {
        Err(Error::Model(format!(
            "{name}: {count} mirror images (a network averages 1, 2 or 4)"
        )))
    }
}

/// The mirror images, in the order their predictions are summed: the latent itself, columns
/// reversed, rows reversed, both.
pub(crate) const MODES: [Mirror; 4] = [
    Mirror {
        columns: false,
        rows: false,
    },
    Mirror {
        columns: true,
        rows: false,
    },
    Mirror {
        columns: false,
        rows: true,
    },
    Mirror {
        columns: true,
        rows: true,
    },
];

/// Which axes a mirror image reverses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mirror {
    pub(crate) columns: bool,
    pub(crate) rows: bool,
}

impl Mirror {
    /// The coordinate of `h x w` planes that `(y, x)` of the mirror image reads (and, the
    /// mirror being its own inverse, where its value goes back to).
    pub(crate) fn source(self, y: usize, x: usize, h: usize, w: usize) -> (usize, usize) {
        (
            if self.rows { h - 1 - y } else { y },
            if self.columns { w - 1 - x } else { x },
        )
    }

    /// `p` with its columns and/or rows reversed (every plane alike). Its own inverse.
    pub(crate) fn apply(self, p: &Planes) -> Planes {
        let mut out = Planes::zeros(p.channels, p.height, p.width);
        self.each_row(p, &mut out, |d, s| *d = s);
        out
    }

    /// `sum += self.apply(y)`, without the mirrored copy.
    pub(crate) fn add_mirrored(self, y: &Planes, sum: &mut Planes) {
        self.each_row(y, sum, |d, s| *d += s);
    }

    /// `f(dst, src)` for every sample of `dst` and the sample of `src` it mirrors.
    fn each_row(self, src: &Planes, dst: &mut Planes, f: impl Fn(&mut f32, f32)) {
        let (h, w) = (src.height, src.width);
        if h == 0 || w == 0 {
            return;
        }
        // Row r of the planes is row r % h of plane r / h.
        for (r, d) in dst.data.chunks_exact_mut(w).enumerate() {
            let (plane, y) = (r / h, r % h);
            let from = plane * h + if self.rows { h - 1 - y } else { y };
            let s = &src.data[from * w..(from + 1) * w];
            if self.columns {
                d.iter_mut().zip(s.iter().rev()).for_each(|(d, &s)| f(d, s));
            } else {
                d.iter_mut().zip(s).for_each(|(d, &s)| f(d, s));
            }
        }
    }
}

/// A model averaged over its first `count` mirror images (see the module documentation).
pub struct Mirrors {
    name: String,
    id: u64,
    inner: Arc<dyn Denoiser>,
    count: usize,
}

impl Mirrors {
    /// `inner` averaged over `count` mirror images (2 or 4), reporting stream id `id`.
    pub fn new(name: &str, id: u64, inner: Arc<dyn Denoiser>, count: usize) -> Result<Self> {
        if !matches!(count, 2 | 4) {
            return Err(Error::Model(format!(
                "{name}: {count} mirror images (a model averages 2 or 4)"
            )));
        }
        Ok(Mirrors {
            name: name.to_string(),
            id,
            inner,
            count,
        })
    }
}

impl Denoiser for Mirrors {
    fn name(&self) -> &str {
        &self.name
    }

    fn model_id(&self) -> u64 {
        self.id
    }

    fn predict_x(&self, z: &Planes, lambda: f64) -> Result<Planes> {
        let mut sum = self.inner.predict_x(z, lambda)?;
        for &m in &MODES[1..self.count] {
            let y = self.inner.predict_x(&m.apply(z), lambda)?;
            if y.len() != sum.len() {
                return Err(Error::Model(format!(
                    "{}: {} values predicted for {}",
                    self.name,
                    y.len(),
                    sum.len()
                )));
            }
            m.add_mirrored(&y, &mut sum);
        }
        // A power of two: the scaling is exact.
        let scale = 1.0 / self.count as f32;
        sum.data.iter_mut().for_each(|s| *s *= scale);
        Ok(sum)
    }

    fn working_bytes(&self, height: usize, width: usize) -> u64 {
        // The sum and the mirrored latent, beside one pass (which counts its own output).
        self.inner.working_bytes(height, width) + 2 * 3 * 4 * (height * width) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Predicts each sample's column index plus a tenth of its row index: not mirror-symmetric.
    struct Coordinates;

    impl Denoiser for Coordinates {
        fn name(&self) -> &str {
            "coordinates"
        }
        fn model_id(&self) -> u64 {
            0
        }
        fn predict_x(&self, z: &Planes, _: f64) -> Result<Planes> {
            let mut p = Planes::zeros(z.channels, z.height, z.width);
            for (i, v) in p.data.iter_mut().enumerate() {
                let (y, x) = ((i / z.width) % z.height, i % z.width);
                *v = x as f32 + 0.1 * y as f32 + z.data[i];
            }
            Ok(p)
        }
    }

    fn ramp(c: usize, h: usize, w: usize) -> Planes {
        let mut p = Planes::zeros(c, h, w);
        for (i, v) in p.data.iter_mut().enumerate() {
            *v = i as f32;
        }
        p
    }

    #[test]
    fn mirrors_reverse_rows_and_columns_of_every_plane() {
        let p = ramp(2, 2, 3); // planes [0 1 2; 3 4 5] and [6 7 8; 9 10 11]
        let cols = MODES[1].apply(&p);
        assert_eq!(
            cols.data,
            [2., 1., 0., 5., 4., 3., 8., 7., 6., 11., 10., 9.]
        );
        let rows = MODES[2].apply(&p);
        assert_eq!(
            rows.data,
            [3., 4., 5., 0., 1., 2., 9., 10., 11., 6., 7., 8.]
        );
        let both = MODES[3].apply(&p);
        assert_eq!(
            both.data,
            [5., 4., 3., 2., 1., 0., 11., 10., 9., 8., 7., 6.]
        );
        for m in MODES {
            assert_eq!(m.apply(&m.apply(&p)), p, "{m:?} is its own inverse");
            let mut sum = Planes::zeros(2, 2, 3);
            m.add_mirrored(&p, &mut sum);
            assert_eq!(sum, m.apply(&p), "{m:?} added in place");
        }
    }

    #[test]
    fn averages_the_predictions_mirrored_back() {
        let z = ramp(3, 3, 4);
        let two = Mirrors::new("m", 7, Arc::new(Coordinates), 2).unwrap();
        let x = two.predict_x(&z, 0.0).unwrap();
        // Columns averaged: x + (w - 1 - x) = w - 1; rows untouched; z is its own average.
        for (i, v) in x.data.iter().enumerate() {
            let y = (i / 4) % 3;
            let want = 1.5 + 0.1 * y as f32 + z.data[i];
            assert!((v - want).abs() < 1e-5, "sample {i}: {v}, want {want}");
        }
        let four = Mirrors::new("m", 7, Arc::new(Coordinates), 4).unwrap();
        let x = four.predict_x(&z, 0.0).unwrap();
        for (i, v) in x.data.iter().enumerate() {
            assert!(
                (v - (1.5 + 0.1 + z.data[i])).abs() < 1e-5,
                "sample {i}: {v}"
            );
        }
        assert_eq!(two.model_id(), 7);
    }

    #[test]
    fn a_pointwise_model_is_unchanged_bit_for_bit() {
        // gauss predicts each sample from itself alone: its mirrors agree exactly.
        let g: Arc<dyn Denoiser> = Arc::new(super::super::gauss::GaussDenoiser::default());
        let z = ramp(3, 5, 7);
        let z = Planes {
            data: z.data.iter().map(|v| (v * 0.37).sin()).collect(),
            ..z
        };
        let want = g.predict_x(&z, 1.3).unwrap();
        for count in [2, 4] {
            let m = Mirrors::new("g", 0, g.clone(), count).unwrap();
            assert_eq!(m.predict_x(&z, 1.3).unwrap(), want, "{count}");
        }
    }

    #[test]
    fn only_two_or_four_mirrors() {
        for count in [0, 1, 3, 8] {
            assert!(Mirrors::new("m", 0, Arc::new(Coordinates), count).is_err());
        }
    }
}
