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
    /// Upper estimate of the bytes one `predict_x` call allocates for a `height x width` image
    /// (activations, padding). Codecs check it against [`crate::Limits::max_alloc_bytes`]
    /// before decoding, so a header cannot make the model allocate without bound.
    fn working_bytes(&self, height: usize, width: usize) -> u64 {
        let _ = (height, width);
        0
    }
}

pub mod backprop;
pub mod bf16;
pub mod engine;
pub mod experts;
pub mod gauss;
pub mod intkernel;
pub mod intnet;
pub mod mirrors;
pub mod multiscale;
pub mod net;
pub mod nonlocal;
#[cfg(feature = "train")]
pub mod quantize;

use std::sync::Arc;

use crate::error::Error;
pub use mirrors::Mirroring;

/// FNV-1a 64-bit hash (offset basis 0xcbf29ce484222325, prime 0x100000001b3): the model id.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_continue(0xcbf2_9ce4_8422_2325, bytes)
}

/// Name of the model used when none is chosen: prior v2, log-SNR experts of the `deep` network
/// in integer arithmetic (8-bit, wider next to the output), whose decodes are the same bits on
/// every machine (`models/README.md`).
pub const DEFAULT_MODEL: &str = "deep-int8";

/// The float architecture trained by default (and the float network `diffc bench` measures).
pub const DEFAULT_ARCH: &str = "tiny";

/// What defines a named network: its architecture ([`net::NetConfig::by_name`]), the log-SNR
/// thresholds of its multiscale evaluation (part of its definition and stream id), and, for
/// embedded models, the weights compiled into the binary. Adding a model is one entry here.
pub struct ModelEntry {
    /// Name users select it by.
    pub name: &'static str,
    /// Architecture name; for log-SNR experts of several architectures, one per expert,
    /// comma-separated (`deep,deep-nl,deep-nl,deep`).
    pub arch: &'static str,
    /// Thresholds below which the network runs on a 2x-averaged latent, once per threshold
    /// passed ([`multiscale::Multiscale`]); measured for `tiny` with `examples/train --check` on
    /// whole dev images (`models/README.md`).
    pub thresholds: &'static [f64],
    /// How many mirror images of the latent each prediction averages, and where
    /// ([`Mirroring`]); part of the model's definition and stream id.
    pub mirrors: Mirroring,
    /// Safetensors weights compiled in (`models/shipped/`), or `None`.
    pub weights: Option<&'static [u8]>,
}

macro_rules! shipped {
    ($file:literal) => {{
        #[cfg(feature = "embedded-model")]
        {
            Some(include_bytes!(concat!("../../models/shipped/", $file)).as_slice())
        }
        #[cfg(not(feature = "embedded-model"))]
        {
            None
        }
    }};
}

/// The default's weights, shared by its faster variant.
const DEEP_INT8_WEIGHTS: Option<&[u8]> = shipped!("deep-int8.safetensors");

/// The fourteenth release's weights, shared by its faster variant.
#[cfg(diffc_deep_s283862)]
const DEEP_INT8_S283862_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s283862.safetensors");

/// The thirteenth release's weights, shared by its faster variant.
#[cfg(diffc_deep_s269661)]
const DEEP_INT8_S269661_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s269661.safetensors");

/// The twelfth release's weights, shared by its faster variant.
#[cfg(diffc_deep_s259488)]
const DEEP_INT8_S259488_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s259488.safetensors");

/// The eleventh release's weights, shared by its faster variant.
#[cfg(diffc_deep_s249215)]
const DEEP_INT8_S249215_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s249215.safetensors");

/// The tenth release's weights, shared by its faster variant.
#[cfg(diffc_deep_s239986)]
const DEEP_INT8_S239986_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s239986.safetensors");

/// The ninth release's weights, shared by its faster variant.
#[cfg(diffc_deep_s227715)]
const DEEP_INT8_S227715_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s227715.safetensors");

/// The eighth release's weights, shared by its faster variant.
#[cfg(diffc_deep_s201925)]
const DEEP_INT8_S201925_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s201925.safetensors");

/// The seventh release's weights, shared by its faster variant.
#[cfg(diffc_deep_s173722)]
const DEEP_INT8_S173722_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s173722.safetensors");

/// The sixth release's weights, shared by its faster variant.
#[cfg(diffc_deep_s193986)]
const DEEP_INT8_S193986_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s193986.safetensors");

/// The fifth release's weights, shared by its faster variant.
#[cfg(diffc_deep_s161868)]
const DEEP_INT8_S161868_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s161868.safetensors");

/// The fourth release's weights, shared by its faster variant.
#[cfg(diffc_deep_s125732)]
const DEEP_INT8_S125732_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s125732.safetensors");

/// The third release's weights, shared by its faster variant.
#[cfg(diffc_deep_s95064)]
const DEEP_INT8_S95064_WEIGHTS: Option<&[u8]> = shipped!("deep-int8-s95064.safetensors");

/// The model table. `models/shipped/` holds released snapshots of training runs (training
/// itself writes `models/NAME.safetensors`). Without the `embedded-model` feature no weights
/// are compiled in (then only `gauss` loads by name).
pub const MODELS: &[ModelEntry] = &[
    // Prior v2 (fifteenth release, experts at steps 206,620 / 268,449 / 293,993 / 92,765): four
    // networks, each the expert of a band of log-SNRs ([`experts`]; it hands over at 3, 4 and
    // 4.5), fine-tuned from one `deep` run on overlapping bands; the first three are `deep-nl16`
    // (they also see the means of the 16 best-matched blocks, [`nonlocal`]). In integer arithmetic
    // (`scripts/make_int8.sh`: 8-bit, with 10-bit weights and 11-bit maps in the
    // half-resolution layers); every network averages the latent and its three mirror images,
    // which share one block matching ([`Mirroring::Network`]).
    ModelEntry {
        name: "deep-int8",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(4),
        weights: DEEP_INT8_WEIGHTS,
    },
    // The default's weights averaged over the latent and its left-right mirror only: half the
    // network passes (1.8-1.9x faster to decode, 1.1-1.35x to encode) for about 0.1 dB
    // (models/README.md). Its own stream id.
    ModelEntry {
        name: "deep-int8-fast",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(2),
        weights: DEEP_INT8_WEIGHTS,
    },
    // The fourteenth release of prior v2 (experts at steps 196,455 / 268,449 / 283,862 / 92,765;
    // the first three `deep-nl16`, each network averaging four mirror images with one block
    // matching) and its two-mirror variant, kept so that their streams still decode (in builds
    // from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s283862)]
    ModelEntry {
        name: "deep-int8-s283862",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(4),
        weights: DEEP_INT8_S283862_WEIGHTS,
    },
    #[cfg(diffc_deep_s283862)]
    ModelEntry {
        name: "deep-int8-s283862-fast",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(2),
        weights: DEEP_INT8_S283862_WEIGHTS,
    },
    // The thirteenth release of prior v2 (experts at steps 196,455 / 251,590 / 269,661 / 92,765;
    // the first three `deep-nl16`, each network averaging four mirror images with one block
    // matching) and its two-mirror variant, kept so that their streams still decode (in builds
    // from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s269661)]
    ModelEntry {
        name: "deep-int8-s269661",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(4),
        weights: DEEP_INT8_S269661_WEIGHTS,
    },
    #[cfg(diffc_deep_s269661)]
    ModelEntry {
        name: "deep-int8-s269661-fast",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(2),
        weights: DEEP_INT8_S269661_WEIGHTS,
    },
    // The twelfth release of prior v2 (experts at steps 196,455 / 251,590 / 259,488 / 92,765;
    // the first three `deep-nl16`, each network averaging four mirror images with one block
    // matching) and its two-mirror variant, kept so that their streams still decode (in builds
    // from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s259488)]
    ModelEntry {
        name: "deep-int8-s259488",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(4),
        weights: DEEP_INT8_S259488_WEIGHTS,
    },
    #[cfg(diffc_deep_s259488)]
    ModelEntry {
        name: "deep-int8-s259488-fast",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(2),
        weights: DEEP_INT8_S259488_WEIGHTS,
    },
    // The eleventh release of prior v2 (experts at steps 196,455 / 239,986 / 249,215 / 92,765;
    // the first three `deep-nl16`, each network averaging four mirror images with one block
    // matching) and its two-mirror variant, kept so that their streams still decode (in builds
    // from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s249215)]
    ModelEntry {
        name: "deep-int8-s249215",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(4),
        weights: DEEP_INT8_S249215_WEIGHTS,
    },
    #[cfg(diffc_deep_s249215)]
    ModelEntry {
        name: "deep-int8-s249215-fast",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(2),
        weights: DEEP_INT8_S249215_WEIGHTS,
    },
    // The tenth release of prior v2 (experts at steps 186,063 / 239,986 / 237,872 / 92,765;
    // the first three `deep-nl16`, each network averaging four mirror images with one block
    // matching) and its two-mirror variant, kept so that their streams still decode (in builds
    // from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s239986)]
    ModelEntry {
        name: "deep-int8-s239986",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(4),
        weights: DEEP_INT8_S239986_WEIGHTS,
    },
    #[cfg(diffc_deep_s239986)]
    ModelEntry {
        name: "deep-int8-s239986-fast",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(2),
        weights: DEEP_INT8_S239986_WEIGHTS,
    },
    // The ninth release of prior v2 (experts at steps 186,063 / 227,715 / 225,473 / 92,765;
    // the first three `deep-nl16`, each network averaging four mirror images with one block
    // matching) and its two-mirror variant, kept so that their streams still decode (in builds
    // from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s227715)]
    ModelEntry {
        name: "deep-int8-s227715",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(4),
        weights: DEEP_INT8_S227715_WEIGHTS,
    },
    #[cfg(diffc_deep_s227715)]
    ModelEntry {
        name: "deep-int8-s227715-fast",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(2),
        weights: DEEP_INT8_S227715_WEIGHTS,
    },
    // The eighth release of prior v2 (experts at steps 186,063 / 201,925 / 211,750 / 92,765;
    // the first three `deep-nl16`, each network averaging four mirror images with one block
    // matching) and its two-mirror variant, kept so that their streams still decode (in builds
    // from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s201925)]
    ModelEntry {
        name: "deep-int8-s201925",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(4),
        weights: DEEP_INT8_S201925_WEIGHTS,
    },
    #[cfg(diffc_deep_s201925)]
    ModelEntry {
        name: "deep-int8-s201925-fast",
        arch: "deep-nl16,deep-nl16,deep-nl16,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(2),
        weights: DEEP_INT8_S201925_WEIGHTS,
    },
    // The seventh release of prior v2 (experts at steps 173,722 / 193,986 / 191,989 / 92,765;
    // the first three `deep-nl`, each network averaging four mirror images with one block
    // matching) and its two-mirror variant, kept so that their streams still decode (in builds
    // from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s173722)]
    ModelEntry {
        name: "deep-int8-s173722",
        arch: "deep-nl,deep-nl,deep-nl,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(4),
        weights: DEEP_INT8_S173722_WEIGHTS,
    },
    #[cfg(diffc_deep_s173722)]
    ModelEntry {
        name: "deep-int8-s173722-fast",
        arch: "deep-nl,deep-nl,deep-nl,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Network(2),
        weights: DEEP_INT8_S173722_WEIGHTS,
    },
    // The sixth release of prior v2 (experts at steps 161,868 / 193,986 / 191,989 / 92,765; the
    // two middle ones `deep-nl`, averaged over the latent and its three mirror images around
    // the model) and its two-mirror variant, kept so that their streams still decode (in builds
    // from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s193986)]
    ModelEntry {
        name: "deep-int8-s193986",
        arch: "deep,deep-nl,deep-nl,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Model(4),
        weights: DEEP_INT8_S193986_WEIGHTS,
    },
    #[cfg(diffc_deep_s193986)]
    ModelEntry {
        name: "deep-int8-s193986-fast",
        arch: "deep,deep-nl,deep-nl,deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Model(2),
        weights: DEEP_INT8_S193986_WEIGHTS,
    },
    // The fifth release of prior v2 (four `deep` experts at training steps 161,868 / 169,963 /
    // 169,600 / 92,765, handing over at 3, 4 and 4.5, averaged over the latent and its three
    // mirror images) and its two-mirror variant, kept so that their streams still decode (in
    // builds from the repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s161868)]
    ModelEntry {
        name: "deep-int8-s161868",
        arch: "deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Model(4),
        weights: DEEP_INT8_S161868_WEIGHTS,
    },
    #[cfg(diffc_deep_s161868)]
    ModelEntry {
        name: "deep-int8-s161868-fast",
        arch: "deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Model(2),
        weights: DEEP_INT8_S161868_WEIGHTS,
    },
    // The fourth release of prior v2 (three experts at training steps 125,732 / 120,790 /
    // 92,765, handing over at 3 and 4.5, averaged over the latent and its three mirror images)
    // and its two-mirror variant, kept so that their streams still decode (in builds from the
    // repository; the crates.io package leaves them out, see build.rs).
    #[cfg(diffc_deep_s125732)]
    ModelEntry {
        name: "deep-int8-s125732",
        arch: "deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Model(4),
        weights: DEEP_INT8_S125732_WEIGHTS,
    },
    #[cfg(diffc_deep_s125732)]
    ModelEntry {
        name: "deep-int8-s125732-fast",
        arch: "deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Model(2),
        weights: DEEP_INT8_S125732_WEIGHTS,
    },
    // The third release of prior v2 (the experts at training steps 95,064 / 99,178 / 92,765,
    // averaged over the latent and its three mirror images) and its two-mirror variant, kept so
    // that their streams still decode (in builds from the repository; the crates.io package
    // leaves them out, see build.rs).
    #[cfg(diffc_deep_s95064)]
    ModelEntry {
        name: "deep-int8-s95064",
        arch: "deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Model(4),
        weights: DEEP_INT8_S95064_WEIGHTS,
    },
    #[cfg(diffc_deep_s95064)]
    ModelEntry {
        name: "deep-int8-s95064-fast",
        arch: "deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Model(2),
        weights: DEEP_INT8_S95064_WEIGHTS,
    },
    // The second release of prior v2 (the experts at training steps 89,359 / 89,426 / 89,372,
    // averaged over the latent and its left-right mirror), kept so that its streams still
    // decode (in builds from the repository; the crates.io package leaves it out, see build.rs).
    #[cfg(diffc_deep_s89359)]
    ModelEntry {
        name: "deep-int8-s89359",
        arch: "deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::Model(2),
        weights: shipped!("deep-int8-s89359.safetensors"),
    },
    // The first release of prior v2 (the experts at training steps 83,020 / 83,059 / 82,992,
    // without mirrors), kept so that its streams still decode (in builds from the repository;
    // the crates.io package leaves it out, see build.rs).
    #[cfg(diffc_deep_s83020)]
    ModelEntry {
        name: "deep-int8-s83020",
        arch: "deep",
        thresholds: &[0.625, -1.25],
        mirrors: Mirroring::None,
        weights: shipped!("deep-int8-s83020.safetensors"),
    },
    // The float network (in builds from the repository; the crates.io package leaves it out,
    // see build.rs).
    #[cfg(diffc_tiny_float)]
    ModelEntry {
        name: "tiny",
        arch: "tiny",
        thresholds: &[0.125, -1.75],
        mirrors: Mirroring::None,
        weights: shipped!("tiny.safetensors"),
    },
    // `tiny` in 8-bit integer arithmetic (src/prior/intnet.rs, spec/integer-network.md): the
    // same bits on every machine, on VNNI `u8 x i8` kernels. Quantization-aware fine-tuning
    // (3000 steps) of the step-56,929 training state, then `examples/quantize`. The default
    // until prior v2 (2026-11-30).
    ModelEntry {
        name: "tiny-int8",
        arch: "tiny",
        thresholds: &[0.125, -1.75],
        mirrors: Mirroring::None,
        weights: shipped!("tiny-int8.safetensors"),
    },
    // `tiny` (step 53,486) in integer arithmetic with 11-bit maps and 10-bit weights: the same
    // bits on every machine at the float network's quality (in builds from the repository;
    // the crates.io package leaves it out, see build.rs).
    #[cfg(diffc_tiny_int)]
    ModelEntry {
        name: "tiny-int",
        arch: "tiny",
        thresholds: &[0.125, -1.75],
        mirrors: Mirroring::None,
        weights: shipped!("tiny-int.safetensors"),
    },
    // The previous release (training step 39,032), kept so that its streams still decode
    // (in builds from the repository; the crates.io package leaves it out, see build.rs).
    #[cfg(diffc_previous_tiny)]
    ModelEntry {
        name: "tiny-s39032",
        arch: "tiny",
        thresholds: &[0.125, -1.75],
        mirrors: Mirroring::None,
        weights: shipped!("tiny-s39032.safetensors"),
    },
];

fn entry(name: &str) -> Option<&'static ModelEntry> {
    MODELS.iter().find(|m| m.name == name)
}

/// Embedded `(name, weights)` pairs.
fn embedded_weights() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    MODELS.iter().filter_map(|m| m.weights.map(|w| (m.name, w)))
}

/// The weight bytes of an embedded model (`None` when this build does not embed it).
pub(crate) fn embedded(name: &str) -> Option<&'static [u8]> {
    embedded_weights().find(|(n, _)| *n == name).map(|(_, b)| b)
}

/// [`embedded`], or an `UnknownModel` error naming it.
fn embedded_or_err(name: &str) -> Result<&'static [u8]> {
    embedded(name).ok_or_else(|| Error::UnknownModel(name.to_string()))
}

/// Names of every model this build can use without files: the closed-form `gauss` and the
/// embedded networks.
pub fn available_models() -> Vec<&'static str> {
    let mut v = vec!["gauss"];
    v.extend(embedded_weights().map(|(n, _)| n));
    v
}

/// Log-SNR thresholds of the named network's multiscale evaluation (empty when it has none,
/// e.g. architectures without a table entry, loaded from files).
pub fn multiscale_thresholds(name: &str) -> &'static [f64] {
    entry(name).map_or(&[], |m| m.thresholds)
}

/// How many mirror images of the latent the named network's predictions average (1: none;
/// [`mirrors`]).
pub fn mirror_count(name: &str) -> usize {
    mirroring(name).count()
}

/// How the named network averages mirror images ([`Mirroring::None`] without a table entry).
pub fn mirroring(name: &str) -> Mirroring {
    entry(name).map_or(Mirroring::None, |m| m.mirrors)
}

/// The log-SNRs where an embedded model hands over from one expert to the next (empty for a
/// single network; [`experts`]).
pub fn expert_bounds(name: &str) -> Vec<f64> {
    embedded(name)
        .and_then(|b| experts::parse(b).ok())
        .map_or_else(Vec::new, |p| p.bounds)
}

/// The architecture of a named network: its table entry's, or the name itself.
pub fn arch(name: &str) -> &str {
    entry(name).map_or(name, |m| m.arch)
}

/// The architecture of each of a named model's `n` experts: [`arch`] for all of them, or its
/// comma-separated list, which must name `n`.
fn expert_archs(name: &str, n: usize) -> Result<Vec<&str>> {
    let a = arch(name);
    if !a.contains(',') {
        return Ok(vec![a; n]);
    }
    let list: Vec<&str> = a.split(',').collect();
    if list.len() != n {
        return Err(Error::Model(format!(
            "{n} experts, but the architectures {a} name {}",
            list.len()
        )));
    }
    Ok(list)
}

/// Stream id of a network: FNV-1a 64 of its safetensors bytes, continued over
/// `"diffc-multiscale-v1"` and each threshold as 8 little-endian bytes of its f64 when the
/// network is evaluated at several scales, then over `"diffc-mirrors-v1"` (around the model) or
/// `"diffc-net-mirrors-v1"` (inside each network) and the count as one byte when it averages
/// mirror images (`spec/reconstruction.md#models`).
pub fn network_model_id(name: &str, weights: &[u8]) -> u64 {
    with_mirrors_suffix(name, with_multiscale_suffix(name, fnv1a64(weights)))
}

/// Continue a network's hash over its mirroring (unchanged without mirrors).
fn with_mirrors_suffix(name: &str, hash: u64) -> u64 {
    match mirroring(name) {
        Mirroring::None => hash,
        Mirroring::Model(n) => mirrors_suffix(hash, n),
        Mirroring::Network(n) => net_mirrors_suffix(hash, n),
    }
}

/// `hash` continued over `"diffc-mirrors-v1"` and `count` as one byte.
fn mirrors_suffix(hash: u64, count: usize) -> u64 {
    let mut tail = b"diffc-mirrors-v1".to_vec();
    tail.push(count as u8);
    fnv1a64_continue(hash, &tail)
}

/// `hash` continued over `"diffc-net-mirrors-v1"` and `count` as one byte.
pub fn net_mirrors_suffix(hash: u64, count: usize) -> u64 {
    let mut tail = b"diffc-net-mirrors-v1".to_vec();
    tail.push(count as u8);
    fnv1a64_continue(hash, &tail)
}

/// Continue a network's weight hash over its multiscale thresholds (unchanged without any).
fn with_multiscale_suffix(name: &str, weights_hash: u64) -> u64 {
    let t = multiscale_thresholds(name);
    if t.is_empty() {
        return weights_hash;
    }
    let mut tail = b"diffc-multiscale-v1".to_vec();
    for v in t {
        tail.extend_from_slice(&v.to_le_bytes());
    }
    fnv1a64_continue(weights_hash, &tail)
}

/// Continue an FNV-1a 64 hash `h` over more bytes.
pub fn fnv1a64_continue(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Build the codec prior of a named network from its weight bytes: the network (or its log-SNR
/// experts, [`experts`]), wrapped in its multiscale evaluation when it has one, and in its
/// mirror averaging when that is around the model ([`Mirroring`]).
fn network_prior(name: &str, bytes: &[u8]) -> Result<Arc<dyn Denoiser>> {
    network_prior_on(name, bytes, None)
}

/// [`network_prior`], with integer networks on the given kernels (`None`: the default,
/// [`intkernel::Kernels::detect`]).
fn network_prior_on(
    name: &str,
    bytes: &[u8],
    kernels: Option<intkernel::Kernels>,
) -> Result<Arc<dyn Denoiser>> {
    let mirroring = mirroring(name);
    let inside = match mirroring {
        Mirroring::Network(n) => n,
        _ => 1,
    };
    let net: Arc<dyn Denoiser> = if experts::is_experts_file(bytes) {
        let parts = experts::parse(bytes)?;
        let archs = expert_archs(name, parts.experts.len())?;
        let nets = parts
            .experts
            .iter()
            .zip(archs)
            .enumerate()
            .map(|(k, (b, a))| {
                bare_network(name, a, b, kernels, inside).map_err(|e| match e {
                    Error::Model(m) => Error::Model(format!("expert {k} ({a}): {m}")),
                    other => other,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Arc::new(experts::Experts::new(
            name,
            fnv1a64(bytes),
            parts.bounds,
            nets,
        ))
    } else {
        bare_network(name, arch(name), bytes, kernels, inside)?
    };
    // The network already hashed its weights; each wrapper adds its suffix.
    let t = multiscale_thresholds(name);
    let net: Arc<dyn Denoiser> = if t.is_empty() {
        net
    } else {
        let id = with_multiscale_suffix(name, net.model_id());
        Arc::new(multiscale::Multiscale::new(name, id, net, t))
    };
    let id = with_mirrors_suffix(name, net.model_id());
    match mirroring {
        Mirroring::None => Ok(net),
        Mirroring::Model(n) => Ok(Arc::new(mirrors::Mirrors::new(name, id, net, n)?)),
        Mirroring::Network(_) => Ok(Arc::new(WithId { id, inner: net })),
    }
}

/// A model under another stream id (a suffix its wrappers do not add themselves).
struct WithId {
    id: u64,
    inner: Arc<dyn Denoiser>,
}

impl Denoiser for WithId {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn model_id(&self) -> u64 {
        self.id
    }

    fn predict_x(&self, z: &Planes, lambda: f64) -> Result<Planes> {
        self.inner.predict_x(z, lambda)
    }

    fn working_bytes(&self, height: usize, width: usize) -> u64 {
        self.inner.working_bytes(height, width)
    }
}

/// One network (integer or float, told apart by the file's metadata) averaging `mirrors`
/// mirror images of its latent itself (1: none), without the model's wrappers.
fn bare_network(
    name: &str,
    arch: &str,
    bytes: &[u8],
    kernels: Option<intkernel::Kernels>,
    mirrors: usize,
) -> Result<Arc<dyn Denoiser>> {
    Ok(if intnet::is_integer_file(bytes) {
        let net = intnet::IntDenoiser::from_safetensors_bytes(name, arch, bytes)?;
        let net = match kernels {
            Some(k) => net.with_kernels(k)?,
            None => net,
        };
        Arc::new(net.with_mirrors(mirrors)?)
    } else {
        let net =
            net::NetDenoiser::from_safetensors_bytes(arch, bytes, &default_device()?)?.named(name);
        // Float networks are only deterministic on one machine: they average their mirror
        // images around themselves, each image matching its own blocks.
        let id = net.model_id();
        match mirrors {
            1 => Arc::new(net),
            n => Arc::new(mirrors::Mirrors::new(name, id, Arc::new(net), n)?),
        }
    })
}

/// Load a model by name (embedded weights, or the closed-form `gauss`).
pub fn load_model(name: &str) -> Result<Arc<dyn Denoiser>> {
    if name == "gauss" {
        return Ok(Arc::new(gauss::GaussDenoiser::default()));
    }
    let bytes = embedded(name).ok_or_else(|| {
        Error::UnknownModel(format!(
            "{name} (available: {})",
            available_models().join(", ")
        ))
    })?;
    network_prior(name, bytes)
}

/// An embedded integer model (network or experts, in its multiscale and mirror wrappers) on the given
/// integer kernels: every choice computes the same bits, so tests and benchmarks compare them.
/// Float networks in the model ignore the choice.
pub fn load_model_on(name: &str, kernels: intkernel::Kernels) -> Result<Arc<dyn Denoiser>> {
    let bytes = embedded_or_err(name)?;
    network_prior_on(name, bytes, Some(kernels))
}

/// The bare network of an embedded model (no multiscale wrapper): for benchmarks and tests.
pub fn load_network(name: &str) -> Result<net::NetDenoiser> {
    let bytes = embedded_or_err(name)?;
    Ok(
        net::NetDenoiser::from_safetensors_bytes(arch(name), bytes, &candle_core::Device::Cpu)?
            .named(name),
    )
}

/// The bare integer network of an embedded integer model (no multiscale wrapper): for
/// benchmarks and tests.
pub fn load_integer_network(name: &str) -> Result<intnet::IntDenoiser> {
    let bytes = embedded_or_err(name)?;
    intnet::IntDenoiser::from_safetensors_bytes(name, arch(name), bytes)
}

/// Load network weights from a safetensors file; `name` picks the architecture (and the
/// multiscale evaluation).
///
/// Errors name the file: a file that cannot be read, or weights that are not a valid network of
/// that architecture (float or integer weights are told apart by the file's metadata).
pub fn load_model_file(name: &str, path: &std::path::Path) -> Result<Arc<dyn Denoiser>> {
    let at = |e: String| format!("{}: {e}", path.display());
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Io(std::io::Error::new(e.kind(), at(e.to_string()))))?;
    network_prior(name, &bytes).map_err(|e| match e {
        Error::Model(m) => Error::Model(at(m)),
        Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), at(io.to_string()))),
        other => other,
    })
}

/// Find the model a stream was coded with among the embedded ones, by its id.
pub fn load_model_by_id(id: u64) -> Result<Arc<dyn Denoiser>> {
    if id == gauss::gauss_model_id() {
        return load_model("gauss");
    }
    for (name, bytes) in embedded_weights() {
        if network_model_id(name, bytes) == id {
            return load_model(name);
        }
    }
    Err(Error::UnknownModel(format!(
        "stream needs model {id:016x}, which is not embedded in this build (have: {}); pass the weights with --model-file",
        available_models().join(", ")
    )))
}

/// CPU by default; the first CUDA device when built with the `cuda` feature.
pub fn default_device() -> Result<candle_core::Device> {
    #[cfg(feature = "cuda")]
    {
        Ok(candle_core::Device::new_cuda(0)?)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Ok(candle_core::Device::Cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_id_known_answers() {
        // spec/reconstruction.md#models
        assert_eq!(fnv1a64(b"abc"), 0xE71F_A219_0541_574B);
        assert_eq!(network_model_id("tiny", b"abc"), 0x0394_261B_AE8B_8C5D);
        assert_eq!(network_model_id("test", b"abc"), fnv1a64(b"abc"));
        assert_eq!(mirrors_suffix(fnv1a64(b"abc"), 2), 0x5AE8_17EC_9F50_4058);
        let deep = with_multiscale_suffix("deep-int8", fnv1a64(b"abc"));
        assert_eq!(mirrors_suffix(deep, 2), 0xC299_1E19_9CE0_5C0A);
        assert_eq!(
            net_mirrors_suffix(fnv1a64(b"abc"), 4),
            0x5505_1A1C_185B_2E60
        );
        assert_eq!(net_mirrors_suffix(deep, 4), 0x235D_C5B2_F0D9_CEFA);
        assert_eq!(gauss::gauss_model_id(), 0x9820_9D16_F94A_2017);
    }
}
