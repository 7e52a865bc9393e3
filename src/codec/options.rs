//! Encoder options: where to stop ([`RateTarget`]) and the stream's coding parameters
//! ([`EncoderOptions`]), checked once before any work.

use crate::error::{Error, Result};
use crate::rcc;
use crate::schedule::{Grid, MAX_ABS_LAMBDA};

/// When the encoder stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateTarget {
    /// Land on this many bits per pixel: the step that would overshoot becomes the last one and
    /// is shortened (its lambda is written in the packet) to fit the remaining budget.
    Bpp(f64),
    /// Encode this many steps of the grid.
    Steps(usize),
    /// Stop at this log-SNR: the first grid step whose lambda reaches it becomes the last one
    /// and is shortened to end exactly there (to the stream's 1/256 fixed point; its lambda is
    /// written in the packet). A quality setting that means the same noise level on every
    /// image. A target beyond the grid's last lambda encodes the whole grid.
    Lambda(f64),
    /// Encode the whole grid.
    All,
}

/// Encoder settings. `Default` gives the recommended values.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderOptions {
    /// Where to stop.
    pub target: RateTarget,
    /// Seed of the shared randomness (written in the header).
    pub seed: u64,
    /// First lambda of the step grid.
    pub lambda_start: f64,
    /// Last lambda of the step grid.
    pub lambda_stop: f64,
    /// Steps in the grid.
    pub grid_steps: u16,
    /// `log2` of the candidates per chunk.
    pub log2_k: u8,
    /// Target ideal KL per chunk in bits; the chunk count is `ceil(KL / chunk_bits)`.
    pub chunk_bits: f64,
    /// Largest pool-row width.
    pub max_width: u16,
    /// How each chunk's candidate is chosen (not transmitted: decoders read any choice).
    pub pick: rcc::Pick,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            target: RateTarget::Bpp(0.5),
            seed: 0,
            // Measured with `diffc eval` on the 256x192 fixture: starting at -4 instead of -6
            // costs nothing at 0.25-1 bpp and saves four network evaluations; 0.5 spacing.
            lambda_start: -4.0,
            lambda_stop: 12.0,
            grid_steps: 33,
            // Measured on dev photos (deep-int8-fast, 0.5 bpp, `denoise`; models/README.md):
            // with the aligned pick, 2^12 candidates and 14-bit chunks are +0.66 dB over PFR's
            // 2^10 and 16 bits (the defaults measured with `tiny`), 2^13 and 15 bits +0.07 dB
            // more; with integer scoring 2^13 encodes faster than 2^12 did in floats, 2^14
            // (+0.05 dB more) would take 1.4x the encode time.
            log2_k: 13,
            chunk_bits: 15.0,
            max_width: 256,
            pick: rcc::Pick::Aligned,
        }
    }
}

impl EncoderOptions {
    /// Check the options once, with errors that carry the offending value.
    pub fn validate(&self) -> Result<Grid> {
        let grid = Grid::new(self.lambda_start, self.lambda_stop, self.grid_steps)?;
        match self.target {
            RateTarget::Bpp(b) if !(b.is_finite() && b > 0.0) => {
                return Err(Error::InvalidArgument(format!("bpp = {b}, must be > 0")))
            }
            RateTarget::Steps(0) => {
                return Err(Error::InvalidArgument("steps must be at least 1".into()))
            }
            RateTarget::Lambda(l) if !(l.is_finite() && l.abs() < MAX_ABS_LAMBDA) => {
                return Err(Error::InvalidArgument(format!(
                    "target lambda = {l}, must be inside ±{MAX_ABS_LAMBDA}"
                )))
            }
            _ => {}
        }
        if self.log2_k == 0 || self.log2_k > rcc::index_coder::MAX_LOG2_K {
            return Err(Error::InvalidArgument(format!(
                "log2_k = {}, must be in 1..={}",
                self.log2_k,
                rcc::index_coder::MAX_LOG2_K
            )));
        }
        if !(self.chunk_bits.is_finite() && self.chunk_bits >= 0.5) {
            return Err(Error::InvalidArgument(format!(
                "chunk_bits = {}, must be >= 0.5",
                self.chunk_bits
            )));
        }
        if self.max_width == 0 || self.max_width as usize > rcc::MAX_WIDTH_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "max_width = {}, must be in 1..={}",
                self.max_width,
                rcc::MAX_WIDTH_LIMIT
            )));
        }
        Ok(grid)
    }
}
