//! The library API: [`Encoder`], [`Decoder`], [`StreamingDecoder`] and [`inspect`].
//!
//! | Module | Role |
//! |---|---|
//! | `options` | [`EncoderOptions`] and [`RateTarget`]: what the encoder is asked for |
//! | `encoder` | [`Encoder`]: image → steps → packets, with rate targeting |
//! | `reader` | the one packet reader: parse and check a packet (indices included) |
//! | `streaming` | [`StreamingDecoder`]: bytes → packets → latent, incrementally |
//! | `decoder` | [`Decoder`]: a whole stream in memory → image + report |
//! | `inspect` | [`inspect`]: header and packet table, no model |
//! | `report` | [`StepReport`] (built once for all three), [`Stop`], [`DecodeReport`] |
//!
//! The latent update and the memory check shared by the encoder and the decoder are here.

mod decoder;
mod encoder;
mod inspect;
mod options;
mod reader;
mod report;
mod streaming;

pub use decoder::Decoder;
pub use encoder::{Encoded, Encoder};
pub use inspect::{inspect, Inspection};
pub use options::{EncoderOptions, RateTarget};
pub use report::{DecodeReport, StepReport, Stop};
pub use streaming::{ModelChoice, StreamingDecoder};

use crate::bitstream::{Header, Limits};
use crate::error::{Error, Result};
use crate::prior::Denoiser;
use crate::schedule::Transition;

/// The latent update of one step, identical in the encoder and the decoder
/// (`spec/rcc.md#applying-the-sample`): `z_s = (coef_z z_t + coef_x x_hat) + std * e`, in f32.
fn advance(z: &mut [f32], x_hat: &[f32], e: &[f32], tr: &Transition) {
    let (cz, cx, sd) = (tr.coef_z as f32, tr.coef_x as f32, tr.std as f32);
    for ((zv, &xv), &ev) in z.iter_mut().zip(x_hat).zip(e) {
        *zv = cz * *zv + cx * xv + sd * ev;
    }
}

/// Refuse images whose codec buffers plus the model's working memory exceed the limits
/// (`spec/format.md` header check 14; the encoder checks the same).
fn check_model_memory(model: &dyn Denoiser, header: &Header, limits: &Limits) -> Result<()> {
    let bytes = (header.dims() as u64)
        .saturating_mul(crate::bitstream::BYTES_PER_DIM)
        .saturating_add(model.working_bytes(header.height as usize, header.width as usize));
    if bytes > limits.max_alloc_bytes {
        return Err(Error::Limits {
            what: "allocation bytes (codec buffers + denoiser working memory)",
            value: bytes,
            max: limits.max_alloc_bytes,
        });
    }
    Ok(())
}
