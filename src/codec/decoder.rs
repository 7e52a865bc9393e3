//! The convenience decoder: a whole (possibly cut or damaged) stream in memory to an image and
//! a report, through the streaming decoder.

use std::sync::Arc;

use super::report::DecodeReport;
use super::streaming::{ModelChoice, StreamingDecoder};
use crate::bitstream::Limits;
use crate::error::{Error, Result};
use crate::image_io::Image;
use crate::prior::Denoiser;
use crate::reconstruct::ReconstructOptions;

/// Convenience decoder for a whole (possibly truncated or damaged) stream in memory.
pub struct Decoder {
    choice: ModelChoice,
    limits: Limits,
}

impl Decoder {
    /// A decoder choosing the model by the stream's id among the embedded models.
    pub fn new() -> Self {
        Decoder {
            choice: ModelChoice::ByStreamId,
            limits: Limits::default(),
        }
    }

    /// A decoder that uses `model` (streams coded with another model are refused).
    pub fn with_model(model: Arc<dyn Denoiser>) -> Self {
        Decoder {
            choice: ModelChoice::Fixed(model),
            limits: Limits::default(),
        }
    }

    /// Replace the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Decode every complete, intact packet and reconstruct. A damaged or cut stream gives the
    /// image of its last good packet and a report saying where and why it stopped; only an
    /// unusable header is an error.
    pub fn decode(&self, bytes: &[u8], opts: &ReconstructOptions) -> Result<(Image, DecodeReport)> {
        let mut sd = StreamingDecoder::new(self.choice.clone(), self.limits);
        let pushed = sd.push(bytes);
        if sd.header().is_none() {
            pushed?;
            return Err(Error::Truncated { what: "header" });
        }
        let img = sd.render(opts)?;
        Ok((img, sd.report()))
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}
