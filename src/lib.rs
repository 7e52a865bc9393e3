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
#![warn(missing_docs)]

pub mod bench;
pub mod bitstream;
pub mod codec;
pub mod data;
pub mod error;
pub mod eval;
#[doc(hidden)]
pub mod fuzzing;
pub mod image_io;
pub mod metrics;
pub mod prior;
pub mod prng;
pub mod rcc;
pub mod reconstruct;
pub mod schedule;
pub mod train;

pub use bitstream::{Header, Limits};
pub use codec::{
    inspect, DecodeReport, Decoder, Encoded, Encoder, EncoderOptions, Inspection, ModelChoice,
    RateTarget, StepReport, Stop, StreamingDecoder,
};
pub use error::{Error, Result};
pub use image_io::{psnr, Image};
pub use reconstruct::{Method, ReconstructOptions};
