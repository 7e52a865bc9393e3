//! `inspect`: the header and packet table of a stream without running any model. It reads
//! packets through the decoders' packet reader (indices included) and applies the same compute
//! budget, so it lists exactly the packets a decoder with the same limits applies, and stops
//! where and why that decoder stops (a model failure aside: no model runs here).

use super::reader::{check_budget, read_packet};
use super::report::{Failure, StepReport, Stop};
use crate::bitstream::{Header, Limits, HEADER_LEN};
use crate::error::{Error, Result};

/// Header and packet table of a stream, without running any model.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The header.
    pub header: Header,
    /// One report per complete, intact packet (`seconds` is 0).
    pub packets: Vec<StepReport>,
    /// Where reading stopped.
    pub stop: Stop,
    /// Total stream length in bytes.
    pub total_bytes: usize,
}

/// Read the header and packet table of a stream.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<Inspection> {
    let header = Header::parse(bytes, limits)?;
    let mut pos = HEADER_LEN;
    let mut packets: Vec<StepReport> = Vec::new();
    let mut finished = false;
    let stop = loop {
        let step = packets.len();
        if finished || step >= header.grid.steps as usize {
            break if pos < bytes.len() {
                Stop::TrailingBytes {
                    count: bytes.len() - pos,
                }
            } else {
                Stop::Complete
            };
        }
        let prev_lambda = packets.last().map(|r| r.lambda);
        let read = read_packet(&header, step, prev_lambda, &bytes[pos..], pos, limits)
            .and_then(|r| check_budget(&header, step, limits).map(|()| r));
        match read {
            Ok(r) => {
                pos += r.len;
                finished = r.packet.final_lambda_q.is_some();
                packets.push(StepReport::of_packet(
                    step, r.lambda, &r.packet, r.len, pos, 0.0,
                ));
            }
            Err(Error::Truncated { .. }) => break Stop::Truncated { at_byte: pos },
            Err(e) => break Failure::of(&e).stop(step, pos),
        }
    };
    Ok(Inspection {
        header,
        packets,
        stop,
        total_bytes: bytes.len(),
    })
}
