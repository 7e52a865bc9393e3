//! Log-SNR experts: one model made of several networks of one architecture, each evaluated on
//! its own band of log-SNRs.
//!
//! A network of fixed size denoises better when it only has to cover part of the noise range
//! (eDiff-I's experts; measured here in `models/README.md`), and routing costs nothing per pass:
//! every call still runs exactly one network. The experts are trained apart, on overlapping
//! bands (`examples/train --lambda-band`), and packed into one file.
//!
//! The file is a safetensors file whose metadata `format` is [`FORMAT`], holding
//!
//! - `bounds`: `F64`, shape `(n - 1,)`, finite and strictly increasing;
//! - `expert.0` .. `expert.{n-1}`: `U8`, shape `(len,)`, each the whole weight file of one
//!   network (integer or float; not itself a routed file), `2 <= n <=` [`MAX_EXPERTS`].
//!
//! Expert `k` predicts at the log-SNRs `bounds[k-1] <= lambda < bounds[k]` (`lambda` as the
//! network receives it: inside a [`super::multiscale::Multiscale`] wrapper, after its shifts).
//! The stream id is the same rule as any network's: FNV-1a 64 of the file's bytes, so the bounds
//! and every expert are in it. `spec/reconstruction.md#log-snr-experts` is the normative text.

use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};

use super::{Denoiser, Planes};
use crate::error::{Error, Result};

/// The metadata `format` of an experts file.
pub const FORMAT: &str = "diffc-experts-v1";

/// Most experts one file may hold (bounds the work of loading a hostile file).
pub const MAX_EXPERTS: usize = 8;

/// True when `bytes` is an experts file (by its metadata; not validated).
pub fn is_experts_file(bytes: &[u8]) -> bool {
    SafeTensors::read_metadata(bytes).is_ok_and(|(_, m)| {
        m.metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .is_some_and(|f| f == FORMAT)
    })
}

/// The parts of an experts file: the bounds and each expert's weight bytes.
pub struct Parts<'a> {
    /// `n - 1` finite, strictly increasing log-SNRs.
    pub bounds: Vec<f64>,
    /// `n` weight files.
    pub experts: Vec<&'a [u8]>,
}

/// Split an experts file into its parts, checking everything but the experts' own weights.
pub fn parse(bytes: &[u8]) -> Result<Parts<'_>> {
    let bad = |m: String| Error::Model(format!("experts file: {m}"));
    if !is_experts_file(bytes) {
        return Err(bad(format!("metadata format is not {FORMAT}")));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let n = st.len();
    if !(3..=MAX_EXPERTS + 1).contains(&n) {
        return Err(bad(format!(
            "{} tensors; want bounds and 2 to {MAX_EXPERTS} experts",
            n
        )));
    }
    let experts_n = n - 1;
    let b = st
        .tensor("bounds")
        .map_err(|_| bad("no tensor `bounds`".into()))?;
    if b.dtype() != Dtype::F64 || b.shape() != [experts_n - 1] {
        return Err(bad(format!(
            "`bounds` must be F64 of shape [{}], is {:?} {:?}",
            experts_n - 1,
            b.dtype(),
            b.shape()
        )));
    }
    let bounds: Vec<f64> = b
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if bounds.iter().any(|v| !v.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad(format!(
            "bounds {bounds:?} must be finite and strictly increasing"
        )));
    }
    let experts = (0..experts_n)
        .map(|k| {
            let t = st
                .tensor(&format!("expert.{k}"))
                .map_err(|_| bad(format!("no tensor `expert.{k}`")))?;
            if t.dtype() != Dtype::U8 || t.shape().len() != 1 {
                return Err(bad(format!("`expert.{k}` must be a U8 vector")));
            }
            if is_experts_file(t.data()) {
                return Err(bad(format!("`expert.{k}` is itself an experts file")));
            }
            Ok(t.data())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Parts { bounds, experts })
}

/// Pack weight files and their bounds into an experts file (the inverse of [`parse`]).
pub fn pack(experts: &[Vec<u8>], bounds: &[f64]) -> Result<Vec<u8>> {
    use safetensors::tensor::TensorView;
    let bounds_bytes: Vec<u8> = bounds.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut views = vec![(
        "bounds".to_string(),
        TensorView::new(Dtype::F64, vec![bounds.len()], &bounds_bytes)
            .map_err(|e| Error::Model(e.to_string()))?,
    )];
    for (k, e) in experts.iter().enumerate() {
        views.push((
            format!("expert.{k}"),
            TensorView::new(Dtype::U8, vec![e.len()], e)
                .map_err(|e| Error::Model(e.to_string()))?,
        ));
    }
    let meta = std::collections::HashMap::from([("format".to_string(), FORMAT.to_string())]);
    let bytes =
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::Model(e.to_string()))?;
    parse(&bytes)?;
    Ok(bytes)
}

/// Networks routed by log-SNR, as a codec prior.
pub struct Experts {
    name: String,
    id: u64,
    bounds: Vec<f64>,
    experts: Vec<Arc<dyn Denoiser>>,
}

impl Experts {
    /// Route `lambda` to `experts[k]` for `bounds[k-1] <= lambda < bounds[k]`; `id` is the
    /// model's stream id.
    pub fn new(name: &str, id: u64, bounds: Vec<f64>, experts: Vec<Arc<dyn Denoiser>>) -> Self {
        assert_eq!(bounds.len() + 1, experts.len(), "one bound between experts");
        Experts {
            name: name.to_string(),
            id,
            bounds,
            experts,
        }
    }

    /// Which expert predicts at `lambda` (NaN goes to the first).
    pub fn route(&self, lambda: f64) -> usize {
        self.bounds.iter().filter(|&&b| lambda >= b).count()
    }
}

impl Denoiser for Experts {
    fn name(&self) -> &str {
        &self.name
    }

    fn model_id(&self) -> u64 {
        self.id
    }

    fn working_bytes(&self, height: usize, width: usize) -> u64 {
        self.experts
            .iter()
            .map(|e| e.working_bytes(height, width))
            .max()
            .unwrap_or(0)
    }

    fn predict_x(&self, z: &Planes, lambda: f64) -> Result<Planes> {
        self.experts[self.route(lambda)].predict_x(z, lambda)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Constant(f32);

    impl Denoiser for Constant {
        fn name(&self) -> &str {
            "constant"
        }
        fn model_id(&self) -> u64 {
            0
        }
        fn predict_x(&self, z: &Planes, _: f64) -> Result<Planes> {
            let mut x = Planes::zeros(3, z.height, z.width);
            x.data.fill(self.0);
            Ok(x)
        }
    }

    #[test]
    fn routes_half_open_bands() {
        let e = Experts::new(
            "x",
            7,
            vec![2.5, 5.0],
            vec![
                Arc::new(Constant(0.0)),
                Arc::new(Constant(1.0)),
                Arc::new(Constant(2.0)),
            ],
        );
        let z = Planes::zeros(3, 2, 3);
        for (lambda, want) in [
            (-20.0, 0.0),
            (2.4999, 0.0),
            (2.5, 1.0),
            (4.99, 1.0),
            (5.0, 2.0),
            (16.0, 2.0),
            (f64::NAN, 0.0),
        ] {
            let x = e.predict_x(&z, lambda).unwrap();
            assert!(x.data.iter().all(|&v| v == want), "lambda {lambda}");
        }
    }

    #[test]
    fn pack_and_parse_round_trip() {
        let experts = vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()];
        let bytes = pack(&experts, &[2.5, 5.0]).unwrap();
        assert!(is_experts_file(&bytes));
        let p = parse(&bytes).unwrap();
        assert_eq!(p.bounds, [2.5, 5.0]);
        assert_eq!(p.experts, [&b"first"[..], b"second", b"third"]);
        // Deterministic: the same parts give the same bytes (and so the same id).
        assert_eq!(pack(&experts, &[2.5, 5.0]).unwrap(), bytes);
    }

    #[test]
    fn malformed_files_are_refused() {
        let two = vec![b"a".to_vec(), b"b".to_vec()];
        for (experts, bounds, why) in [
            (two.clone(), vec![f64::NAN], "finite"),
            (two.clone(), vec![1.0, 2.0], "bounds"),
            (vec![b"a".to_vec()], vec![], "tensors"),
            (
                vec![b"a".to_vec(); MAX_EXPERTS + 1],
                (0..MAX_EXPERTS).map(|i| i as f64).collect(),
                "tensors",
            ),
            (
                vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
                vec![3.0, 3.0],
                "increasing",
            ),
        ] {
            let err = pack(&experts, &bounds).expect_err(why).to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        let inner = pack(&two, &[0.0]).unwrap();
        let err = pack(&[inner, b"b".to_vec()], &[0.0])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("itself an experts file"), "{err}");
        assert!(parse(b"not safetensors").is_err());
    }

    #[cfg(feature = "embedded-model")]
    #[test]
    fn an_experts_file_is_its_networks_routed() {
        let w = |n: &str| crate::prior::embedded(n).map(<[u8]>::to_vec);
        let (Some(int8), Some(float)) = (w("tiny-int8"), w("tiny")) else {
            return; // a build without them (the crates.io package leaves `tiny` out)
        };
        let bytes = pack(&[int8.clone(), float.clone()], &[3.0]).unwrap();
        let routed = crate::prior::network_prior("tiny", &bytes).unwrap();
        let (a, b) = (
            crate::prior::network_prior("tiny", &int8).unwrap(),
            crate::prior::network_prior("tiny", &float).unwrap(),
        );
        assert_eq!(
            routed.model_id(),
            crate::prior::with_multiscale_suffix("tiny", crate::prior::fnv1a64(&bytes))
        );
        let mut z = Planes::zeros(3, 24, 40);
        for (i, v) in z.data.iter_mut().enumerate() {
            *v = ((i * 7919) % 2003) as f32 / 1001.0 - 1.0;
        }
        // -1.0 is evaluated at -1.0 + ln 4 < 3 by the multiscale wrapper: the first expert.
        for (lambda, want) in [(-1.0, &a), (2.9, &a), (3.0, &b), (6.0, &b)] {
            let got = routed.predict_x(&z, lambda).unwrap();
            assert_eq!(got, want.predict_x(&z, lambda).unwrap(), "lambda {lambda}");
        }
        assert_ne!(
            a.predict_x(&z, 3.0).unwrap(),
            b.predict_x(&z, 3.0).unwrap(),
            "the two experts must differ for the test to mean anything"
        );
    }
}
