//! diffc: lossy image compression with Gaussian diffusion (DiffC) and reverse channel coding.
//!
//! ```no_run
//! use diffc::{prior, Decoder, Encoder, EncoderOptions, Image, Limits, RateTarget, ReconstructOptions};
//! let model = prior::load_model(prior::DEFAULT_MODEL)?;
//! let image = Image::open("photo.png".as_ref())?;
//! let opts = EncoderOptions { target: RateTarget::Bpp(0.25), ..Default::default() };
//! let encoded = Encoder::new(model, opts)?.encode(&image, &Limits::default(), |_| {})?;
//! // Any prefix of the stream decodes:
//! let half = &encoded.bytes[..encoded.bytes.len() / 2];
//! let (preview, report) = Decoder::new().decode(half, &ReconstructOptions::default())?;
//! # Ok::<(), diffc::Error>(())
//! ```
//!
//! # Features
//!
//! All on by default. `cli` builds the `diffc` binary (clap, indicatif); `train` holds the
//! trainer (`diffc::train`) and `diffc::bench`; `eval` the rate-distortion evaluator
//! (`diffc::eval`: it runs the classical codecs' command-line encoders and writes SVG);
//! `embedded-model` compiles the shipped weights into the library (the default `deep-int8`,
//! 9.7 MB, and `tiny-int8`, 3.9 MB; builds from the repository also embed the earlier models
//! that `diffc models` lists). With `default-features = false` the library is the
//! codec alone: [`prior::load_model`] knows `gauss` only, and network weights come from a file
//! ([`prior::load_model_file`]). `cuda` (off by default) runs the prior on a GPU.
//!
//! # Stability
//!
//! Before 1.0, the stable surface is what the crate root re-exports — [`Encoder`],
//! [`EncoderOptions`], [`RateTarget`], [`Decoder`], [`StreamingDecoder`], [`ModelChoice`],
//! [`inspect`], the reports ([`Encoded`], [`StepReport`], [`DecodeReport`], [`Stop`],
//! [`Inspection`]), [`ReconstructOptions`], [`Method`], [`Limits`], [`Header`], [`Image`] (and its
//! `image::DynamicImage` conversions), the `Read`/`Write` wrappers ([`compress_to`],
//! [`compress_reader_to`], [`decompress_from`], [`decompress_to`], [`CompressOptions`],
//! [`DecompressOptions`]), [`Error`] (`#[non_exhaustive]`) — plus [`prior::load_model`],
//! [`prior::load_model_file`], [`prior::load_model_by_id`] and the [`prior::Denoiser`] trait. The
//! bitstream (`spec/format.md`) is versioned separately: a stream of version 1 decodes identically
//! in every release that reads version 1. Everything else is public for the tests, benchmarks and
//! tools in this repository (the codec's building blocks: `bitstream`, `rcc`, `prng`, `schedule`,
//! `data`, `metrics`, `train`, `eval`, `bench`, `fuzzing`) and may change in any release.
#![warn(missing_docs)]

#[cfg(feature = "train")]
pub mod bench;
pub mod bitstream;
pub mod codec;
pub mod data;
pub(crate) mod detmath;
pub mod error;
#[cfg(feature = "eval")]
pub mod eval;
#[doc(hidden)]
pub mod fuzzing;
pub mod image_io;
pub mod io;
pub mod metrics;
pub mod prior;
pub mod prng;
pub mod rcc;
pub mod reconstruct;
pub mod schedule;
#[cfg(feature = "train")]
pub mod train;

pub use bitstream::{Header, Limits};
pub use codec::{
    inspect, DecodeReport, Decoder, Encoded, Encoder, EncoderOptions, Inspection, ModelChoice,
    RateTarget, StepReport, Stop, StreamingDecoder,
};
pub use error::{Error, Result};
/// The `image` crate this one converts from and to (`From<image::DynamicImage> for Image` and
/// back), re-exported so callers use the same version.
pub use image;
pub use image_io::{psnr, Image};
pub use io::{
    compress_reader_to, compress_to, decompress_from, decompress_to, CompressOptions,
    DecompressOptions,
};
pub use reconstruct::{Method, ReconstructOptions};
