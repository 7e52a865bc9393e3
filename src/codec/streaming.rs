//! The streaming decoder: bytes in as they arrive, the best image so far out at any time.
//!
//! A state machine (`spec/reconstruction.md#decoder-state-machine`): wait for the header, then
//! read, check and apply one packet at a time through the shared packet reader, until the
//! stream is complete, cut or fails. Input goes through a cursor, so the work is linear in the
//! input however it is split.

use std::sync::Arc;
use std::time::Instant;

use super::reader::{check_budget, read_packet, ReadPacket};
use super::report::{DecodeReport, Failure, StepReport, Stop};
use super::{advance, check_model_memory};
use crate::bitstream::{Header, Limits, HEADER_LEN};
use crate::error::{Error, Result};
use crate::image_io::Image;
use crate::prior::{Denoiser, Planes};
use crate::prng::Philox;
use crate::rcc;
use crate::reconstruct::{self, Latent, ReconstructOptions};
use crate::schedule::Transition;

/// The decoder's latent after the packets so far.
struct Progress {
    header: Header,
    z: Vec<f32>,
    /// Lambda of `z` (`None` before the first packet).
    lambda: Option<f64>,
    /// A final packet (with its own lambda) arrived; nothing may follow.
    finished: bool,
}

enum State {
    NeedHeader,
    Steps(Progress),
    Failed {
        progress: Option<Progress>,
        failure: Failure,
    },
}

/// Which model a decoder uses.
#[derive(Clone)]
pub enum ModelChoice {
    /// Pick the embedded model whose id the stream header names.
    ByStreamId,
    /// Use this model; a stream coded with another id is refused.
    Fixed(Arc<dyn Denoiser>),
}

/// Push decoder: feed bytes as they arrive, render the best image so far at any time.
///
/// Identical results whether bytes arrive whole, one at a time, or in any split. After a
/// corrupt packet it stays failed (further pushes return [`Error::Poisoned`]) but still renders
/// the image of the last good packet.
pub struct StreamingDecoder {
    choice: ModelChoice,
    model: Option<Arc<dyn Denoiser>>,
    limits: Limits,
    /// Bytes received and not yet used: `pending[start..]` (the prefix before `start` was
    /// used and is dropped now and then, so each byte is copied O(1) times on average).
    pending: Vec<u8>,
    start: usize,
    consumed: usize,
    state: State,
    steps: Vec<StepReport>,
    trailing: usize,
}

impl StreamingDecoder {
    /// A decoder with the given model choice and limits.
    pub fn new(choice: ModelChoice, limits: Limits) -> Self {
        StreamingDecoder {
            choice,
            model: None,
            limits,
            pending: Vec::new(),
            start: 0,
            consumed: 0,
            state: State::NeedHeader,
            steps: Vec::new(),
            trailing: 0,
        }
    }

    /// Feed more bytes; decodes every packet they complete. Returns the steps decoded so far.
    ///
    /// A corrupt header or packet is returned as an error once; the decoder then keeps what it
    /// had and refuses further input.
    pub fn push(&mut self, bytes: &[u8]) -> Result<usize> {
        if let State::Failed { failure, .. } = &self.state {
            return Err(Error::Poisoned(failure.reason()));
        }
        if self.is_complete() {
            self.trailing += bytes.len();
            return Ok(self.steps.len());
        }
        // Drop the used prefix once it is at least half the buffer: each byte is moved at most
        // once on average, whatever the number of packets or the size of the pushes.
        if self.start > 0 && self.start >= self.pending.len() - self.start {
            self.pending.drain(..self.start);
            self.start = 0;
        }
        self.pending.extend_from_slice(bytes);
        let r = self.advance();
        if let Err(e) = &r {
            let failure = Failure::of(e);
            let progress = match std::mem::replace(&mut self.state, State::NeedHeader) {
                State::Steps(p) => Some(p),
                State::NeedHeader => None,
                State::Failed { progress, .. } => progress,
            };
            self.state = State::Failed { progress, failure };
            self.pending = Vec::new();
            self.start = 0;
        }
        r
    }

    /// Every step arrived, or a final packet did.
    fn is_complete(&self) -> bool {
        match &self.state {
            State::Steps(p) => p.finished || self.steps.len() >= p.header.grid.steps as usize,
            _ => false,
        }
    }

    fn advance(&mut self) -> Result<usize> {
        loop {
            let unread = &self.pending[self.start..];
            match &mut self.state {
                State::Failed { failure, .. } => return Err(Error::Poisoned(failure.reason())),
                State::NeedHeader => {
                    let header = match Header::parse(unread, &self.limits) {
                        Err(Error::Truncated { .. }) => return Ok(0),
                        r => r?,
                    };
                    let model = match &self.choice {
                        ModelChoice::ByStreamId => crate::prior::load_model_by_id(header.model_id)?,
                        ModelChoice::Fixed(m) => {
                            if m.model_id() != header.model_id {
                                return Err(Error::WrongModel {
                                    stream: header.model_id,
                                    decoder: m.model_id(),
                                });
                            }
                            m.clone()
                        }
                    };
                    check_model_memory(model.as_ref(), &header, &self.limits)?;
                    self.model = Some(model);
                    self.start += HEADER_LEN;
                    self.consumed = HEADER_LEN;
                    self.state = State::Steps(Progress {
                        header,
                        z: vec![0f32; header.dims()],
                        lambda: None,
                        finished: false,
                    });
                }
                State::Steps(progress) => {
                    let done = self.steps.len();
                    if progress.finished || done >= progress.header.grid.steps as usize {
                        self.trailing += unread.len();
                        self.pending = Vec::new();
                        self.start = 0;
                        return Ok(done);
                    }
                    let read = match read_packet(
                        &progress.header,
                        done,
                        progress.lambda,
                        unread,
                        self.consumed,
                        &self.limits,
                    ) {
                        Err(Error::Truncated { .. }) => return Ok(done),
                        r => r?,
                    };
                    // The compute budget, counted as the packet arrives and before the prior
                    // runs on it.
                    check_budget(&progress.header, done, &self.limits)?;
                    let t0 = Instant::now();
                    let model = self
                        .model
                        .clone()
                        .ok_or_else(|| Error::InvalidArgument("decoder has no model".into()))?;
                    apply_packet(model.as_ref(), done, &read, progress)?;
                    self.consumed += read.len;
                    self.start += read.len;
                    self.steps.push(StepReport::of_packet(
                        done,
                        read.lambda,
                        &read.packet,
                        read.len,
                        self.consumed,
                        t0.elapsed().as_secs_f64(),
                    ));
                }
            }
        }
    }

    fn progress(&self) -> Option<&Progress> {
        match &self.state {
            State::Steps(p) => Some(p),
            State::Failed { progress, .. } => progress.as_ref(),
            State::NeedHeader => None,
        }
    }

    /// The header, once it has arrived.
    pub fn header(&self) -> Option<&Header> {
        self.progress().map(|p| &p.header)
    }

    /// Steps decoded so far.
    pub fn steps_decoded(&self) -> usize {
        self.steps.len()
    }

    /// Where decoding stands.
    pub fn report(&self) -> DecodeReport {
        let header = self.header().copied();
        let complete = self
            .progress()
            .is_some_and(|p| p.finished || self.steps.len() >= p.header.grid.steps as usize);
        let stop = match &self.state {
            State::Failed { failure, .. } => failure.stop(self.steps.len(), self.consumed),
            _ if complete && self.trailing > 0 => Stop::TrailingBytes {
                count: self.trailing,
            },
            _ if complete => Stop::Complete,
            _ => Stop::Truncated {
                at_byte: self.consumed,
            },
        };
        DecodeReport {
            header,
            steps_decoded: self.steps.len(),
            bytes_used: self.consumed,
            stop,
            steps: self.steps.clone(),
        }
    }

    /// Render the best image so far. Fails only if the header has not arrived.
    pub fn render(&self, opts: &ReconstructOptions) -> Result<Image> {
        let p = self.progress().ok_or(Error::Truncated { what: "header" })?;
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("decoder has no model".into()))?;
        let h = &p.header;
        let (c, hh, w) = (h.channels as usize, h.height as usize, h.width as usize);
        let latent = Latent {
            z: &p.z,
            lambda: p.lambda,
            shape: (c, hh, w),
            seed: h.seed,
        };
        let x = reconstruct::reconstruct(model.as_ref(), &latent, opts)?;
        Image::from_planes(&Planes {
            channels: c,
            height: hh,
            width: w,
            data: x,
        })
    }
}

/// Apply one read packet to the latent as step `step` (`spec/reconstruction.md`: regenerate the
/// sample, predict `x_hat` from the previous latent, update).
fn apply_packet(
    model: &dyn Denoiser,
    step: usize,
    read: &ReadPacket,
    progress: &mut Progress,
) -> Result<()> {
    let header = progress.header;
    let lt = progress.lambda;
    let g = Philox::new(header.seed);
    let (c, h, w) = (
        header.channels as usize,
        header.height as usize,
        header.width as usize,
    );
    let tr = Transition::new(lt, read.lambda);
    // The prediction first, then the sample: the network's buffers and the sample's are never
    // alive at once (large images).
    let x_hat = match lt {
        None => vec![0f32; header.dims()],
        Some(l) => reconstruct::predict(model, &progress.z, c, h, w, l)?,
    };
    let e = rcc::decode_step(&g, step as u32, &read.layout, &read.indices)?;
    advance(&mut progress.z, &x_hat, &e, &tr);
    progress.lambda = Some(read.lambda);
    progress.finished = read.packet.final_lambda_q.is_some();
    Ok(())
}
