//! What coding and decoding report: one [`StepReport`] per packet (built in one place for the
//! encoder, the decoder and `inspect`), the [`Stop`] reason and the [`DecodeReport`].

use crate::bitstream::{Header, Packet};
use crate::error::Error;

/// What one coded step cost.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// Step index (0-based).
    pub step: usize,
    /// Log-SNR reached by the step.
    pub lambda: f64,
    /// Framed packet size in bytes.
    pub bytes: usize,
    /// Stream size up to and including this packet.
    pub cumulative_bytes: usize,
    /// Ideal cost KL(q||p) in bits (as written in the packet when read back).
    pub kl_bits: f64,
    /// Bits of the entropy-coded indices (range-coder words × 32).
    pub index_bits: u64,
    /// Chunks (indices) in the step.
    pub n_chunks: u64,
    /// `log2` candidate count.
    pub log2_k: u8,
    /// Wall time of the step (encoder or decoder side), seconds.
    pub seconds: f64,
}

impl StepReport {
    /// The report of packet `step`, framed in `bytes` bytes and ending the stream's first
    /// `cumulative_bytes`, reaching `lambda`; `kl_bits` as written in the packet.
    pub(crate) fn of_packet(
        step: usize,
        lambda: f64,
        packet: &Packet,
        bytes: usize,
        cumulative_bytes: usize,
        seconds: f64,
    ) -> Self {
        StepReport {
            step,
            lambda,
            bytes,
            cumulative_bytes,
            kl_bits: packet.kl_bits as f64,
            index_bits: packet.words.len() as u64 * 32,
            n_chunks: packet.n_chunks,
            log2_k: packet.log2_k,
            seconds,
        }
    }
}

/// Why decoding stopped where it did.
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    /// Every step of the grid arrived.
    Complete,
    /// The bytes ended inside the header or a packet (a clean cut is also reported here when
    /// fewer packets than the grid's steps arrived).
    Truncated {
        /// Byte offset where the incomplete part starts.
        at_byte: usize,
    },
    /// A packet was corrupt; everything before it was used, nothing after it.
    Corrupt {
        /// Step whose packet is corrupt.
        step: usize,
        /// Byte offset of that packet.
        at_byte: usize,
        /// What was wrong.
        detail: String,
    },
    /// A packet asked for more than the decoder's [`crate::Limits`] allow (e.g. the compute
    /// budget ran out); the stream may be fine, a decoder with higher limits would go on.
    Limit {
        /// Step whose packet was refused.
        step: usize,
        /// Byte offset of that packet.
        at_byte: usize,
        /// Which limit.
        what: &'static str,
        /// What the stream asked for.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// The decoder could not go on (its model failed); the stream is not to blame.
    DecoderFailed {
        /// Step at which it failed.
        step: usize,
        /// Byte offset of that packet.
        at_byte: usize,
        /// What went wrong.
        detail: String,
    },
    /// Bytes followed the last step of the grid; they were ignored.
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

/// What a decode used and where it stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeReport {
    /// The stream header, once complete.
    pub header: Option<Header>,
    /// Steps decoded.
    pub steps_decoded: usize,
    /// Bytes of the stream that were used (header + complete good packets).
    pub bytes_used: usize,
    /// Why decoding stopped.
    pub stop: Stop,
    /// Per-step reports of decoded packets (`seconds` = decode time).
    pub steps: Vec<StepReport>,
}

/// Why a decoder (or `inspect`) stopped for good, by blame: only a malformed stream is
/// corruption; a stream asking for more than the limits, or a decoder that cannot go on, is not.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Failure {
    /// The stream breaks a format rule ([`Error::Format`]).
    Format(String),
    /// The stream asks for more than the decoder's [`crate::Limits`] ([`Error::Limits`]).
    Limit {
        what: &'static str,
        value: u64,
        max: u64,
    },
    /// The decoder could not go on: its model failed, or it lacks the model.
    Decoder(String),
}

impl Failure {
    /// Classify an error by blame.
    pub(crate) fn of(e: &Error) -> Self {
        match e {
            Error::Format { .. } => Failure::Format(e.to_string()),
            &Error::Limits { what, value, max } => Failure::Limit { what, value, max },
            e => Failure::Decoder(e.to_string()),
        }
    }

    /// The error's message.
    pub(crate) fn reason(&self) -> String {
        match self {
            Failure::Format(s) | Failure::Decoder(s) => s.clone(),
            &Failure::Limit { what, value, max } => Error::Limits { what, value, max }.to_string(),
        }
    }

    /// The stop reason of a decode that failed at packet `step`, which starts at `at_byte`.
    pub(crate) fn stop(&self, step: usize, at_byte: usize) -> Stop {
        match self {
            Failure::Format(detail) => Stop::Corrupt {
                step,
                at_byte,
                detail: detail.clone(),
            },
            &Failure::Limit { what, value, max } => Stop::Limit {
                step,
                at_byte,
                what,
                value,
                max,
            },
            Failure::Decoder(detail) => Stop::DecoderFailed {
                step,
                at_byte,
                detail: detail.clone(),
            },
        }
    }
}
