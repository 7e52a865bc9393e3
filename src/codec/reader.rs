//! The one packet reader: parse a packet and apply every check of `spec/format.md` to it
//! (framing, CRC and fields, then the checks against its stream, then its indices), so the
//! streaming decoder, `inspect` and the encoder's self-check accept and refuse exactly the same
//! packets, with the same errors.

use crate::bitstream::{Header, Limits, Packet};
use crate::error::{Error, Result};
use crate::rcc::{self, Layout};
use crate::schedule::{LAMBDA_UNIT, MAX_ABS_LAMBDA};

/// A packet read from a stream and found valid: everything needed to apply it.
#[derive(Debug)]
pub(crate) struct ReadPacket {
    /// The packet's fields.
    pub packet: Packet,
    /// Framed length in bytes (`varint(L) + L + 4`).
    pub len: usize,
    /// The step's chunk layout.
    pub layout: Layout,
    /// The lambda the step reaches (the grid's, or the packet's final lambda).
    pub lambda: f64,
    /// The decoded candidate indices, one per chunk.
    pub indices: Vec<u32>,
}

/// Read packet `step` (previous lambda `prev_lambda`) of a stream with `header` from the start
/// of `bytes`, which starts at byte `at_byte` of the stream.
///
/// `Truncated` means more bytes may complete it; `Format` means it is corrupt (the message
/// names the step and the byte offset); `Limits` means it is larger than `max_packet_bytes`.
/// Checks 1-11 of `spec/format.md#packet-parsing-and-errors`, in order.
pub(crate) fn read_packet(
    header: &Header,
    step: usize,
    prev_lambda: Option<f64>,
    bytes: &[u8],
    at_byte: usize,
    limits: &Limits,
) -> Result<ReadPacket> {
    let located = |e: Error| match e {
        Error::Format { field, detail } => Error::Format {
            field,
            detail: format!("{detail} (packet of step {step} at byte {at_byte})"),
        },
        e => e,
    };
    // Checks 1-7: framing, CRC, fields.
    let (packet, len) =
        Packet::read(bytes, limits, header.max_packet_payload()).map_err(located)?;
    // Checks 8-10: against the stream.
    let (layout, lambda) =
        check_against_stream(header, step, prev_lambda, &packet).map_err(located)?;
    // Check 11: the indices. Work bounded by the chunk count (at most D), whatever the
    // packet's length.
    let indices =
        rcc::index_coder::decode_indices(packet.words.clone(), layout.n_chunks, packet.log2_k)
            .map_err(located)?;
    Ok(ReadPacket {
        packet,
        len,
        layout,
        lambda,
        indices,
    })
}

/// Checks 8-10: chunk count, layout (`log2_k`) and final lambda. Returns the chunk layout and
/// the lambda the step reaches.
fn check_against_stream(
    header: &Header,
    step: usize,
    prev_lambda: Option<f64>,
    packet: &Packet,
) -> Result<(Layout, f64)> {
    let dims = header.dims();
    if packet.n_chunks == 0 || packet.n_chunks > dims as u64 {
        return Err(Error::format(
            "n_chunks",
            format!("{} outside 1..={dims}", packet.n_chunks),
        ));
    }
    let layout = Layout::new(
        dims,
        packet.n_chunks as usize,
        packet.log2_k,
        header.max_width as usize,
    )?;
    let lambda = match packet.final_lambda_q {
        None => header.grid.lambda(step),
        Some(q) => {
            let l = q as f64 * LAMBDA_UNIT;
            if l.abs() > MAX_ABS_LAMBDA || prev_lambda.is_some_and(|t| l <= t) {
                return Err(Error::format(
                    "final_lambda",
                    format!(
                        "{l} is not above the previous step's lambda or outside ±{MAX_ABS_LAMBDA}"
                    ),
                ));
            }
            l
        }
    };
    Ok((layout, lambda))
}

/// The compute budget check for packet `step` (check 12): `(step + 1) * width * height`
/// network pixel-passes against [`Limits::max_network_pixel_passes`], before the prior runs.
pub(crate) fn check_budget(header: &Header, step: usize, limits: &Limits) -> Result<()> {
    limits.check_network_passes(step as u64 + 1, header.width as u64 * header.height as u64)
}
