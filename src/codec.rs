//! The library API: [`Encoder`], [`Decoder`], [`StreamingDecoder`] and [`inspect`].

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::bitstream::{Header, Limits, Packet, HEADER_LEN};
use crate::error::{Error, Result};
use crate::image_io::Image;
use crate::prior::{Denoiser, Planes};
use crate::prng::Philox;
use crate::rcc::{self, Layout};
use crate::reconstruct::{self, Latent, ReconstructOptions};
use crate::schedule::{Grid, Transition, LAMBDA_UNIT, MAX_ABS_LAMBDA};

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
            // Measured with `diffc eval` on the 256x192 fixture: K = 2^10 matches K = 2^12 within
            // 0.05 dB at 0.25-1 bpp and scores candidates 4x faster.
            log2_k: 10,
            // Measured likewise: 16-bit chunks beat 8-bit ones by ~1 dB at 1 bpp for every
            // reconstruction. Truncated PFR then conveys less than the chunk's KL
            // (spent < ideal), but the rate–distortion trade is better.
            chunk_bits: 16.0,
            max_width: 256,
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

/// A finished encoding.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The stream.
    pub bytes: Vec<u8>,
    /// Per-step costs of the packets in `bytes`.
    pub steps: Vec<StepReport>,
}

impl Encoded {
    /// Bits per pixel of the whole stream.
    pub fn bpp(&self, width: u32, height: u32) -> f64 {
        self.bytes.len() as f64 * 8.0 / (width as f64 * height as f64)
    }
}

/// DiffC encoder.
pub struct Encoder {
    model: Arc<dyn Denoiser>,
    opts: EncoderOptions,
    grid: Grid,
}

impl Encoder {
    /// An encoder using `model` as the prior.
    pub fn new(model: Arc<dyn Denoiser>, opts: EncoderOptions) -> Result<Self> {
        let grid = opts.validate()?;
        Ok(Encoder { model, opts, grid })
    }

    /// Encode an image; `progress` is called after every coded step.
    pub fn encode(
        &self,
        image: &Image,
        limits: &Limits,
        mut progress: impl FnMut(&StepReport),
    ) -> Result<Encoded> {
        self.encode_until(image, limits, |s| {
            progress(s);
            ControlFlow::Continue(())
        })
    }

    /// [`Encoder::encode`] with a progress callback that can stop the work: after any coded
    /// step, `ControlFlow::Break(())` ends the encoding there and returns the packets coded so
    /// far — a valid stream prefix, which decoders report as partial (or drop it to cancel).
    pub fn encode_until(
        &self,
        image: &Image,
        limits: &Limits,
        mut progress: impl FnMut(&StepReport) -> ControlFlow<()>,
    ) -> Result<Encoded> {
        image.check()?;
        let header = Header {
            width: image.width,
            height: image.height,
            channels: image.channels,
            model_id: self.model.model_id(),
            seed: self.opts.seed,
            grid: self.grid,
            max_width: self.opts.max_width,
        };
        header.validate(limits).map_err(|e| match e {
            Error::Limits { .. } => e,
            e => Error::InvalidArgument(e.to_string()),
        })?;
        check_model_memory(self.model.as_ref(), &header, limits)?;
        let n_steps = match self.opts.target {
            RateTarget::Steps(n) => n.min(self.grid.steps as usize),
            _ => self.grid.steps as usize,
        };
        // The decoder's compute budget, checked up front for the most packets this encoding
        // can write, so that the encoder never writes a stream its limits would refuse.
        limits.check_network_passes(n_steps as u64, image.width as u64 * image.height as u64)?;
        let x = image.to_planes();
        let (c, h, w) = (x.channels, x.height, x.width);
        let dims = x.len();
        let pixels = image.width as f64 * image.height as f64;
        let g = Philox::new(self.opts.seed);

        let mut out = BytesMut::new();
        out.extend_from_slice(&header.to_bytes());
        let mut steps = Vec::new();
        let mut z = vec![0f32; dims];
        let target_bits = match self.opts.target {
            RateTarget::Bpp(b) => Some(b * pixels),
            _ => None,
        };
        let (mut kl_sum, mut spent_sum) = (0.0f64, 0.0f64);
        let mut lambda_prev: Option<f64> = None;
        for i in 0..n_steps {
            let t0 = Instant::now();
            let lt = lambda_prev;
            let mut ls = self.grid.lambda(i);
            let x_hat = match lt {
                None => vec![0f32; dims],
                Some(l) => reconstruct::predict(self.model.as_ref(), &z, c, h, w, l)?,
            };
            let diff: Vec<f32> = x.data.iter().zip(&x_hat).map(|(&a, &b)| a - b).collect();
            let err2: f64 = diff.iter().map(|&d| d as f64 * d as f64).sum();
            let kl_of =
                |tr: &Transition| 0.5 * tr.mu_scale * tr.mu_scale * err2 / std::f64::consts::LN_2;
            let mut tr = Transition::new(lt, ls);
            let mut kl = kl_of(&tr);
            let mut final_lambda_q = None;
            if let Some(tb) = target_bits {
                // Would this step overshoot the target? Then make it the last step and shorten
                // it (a lambda between the previous one and the grid's) to land on the target.
                let ratio = if kl_sum > 0.0 {
                    spent_sum / kl_sum
                } else {
                    1.2
                };
                let have = out.len() as f64 * 8.0;
                const PACKET_OVERHEAD_BITS: f64 = 96.0;
                if have + kl * ratio + PACKET_OVERHEAD_BITS > tb {
                    // Even when almost nothing is affordable, end with a (minimal) final packet
                    // so that decoders see a complete stream.
                    let afford = ((tb - have - PACKET_OVERHEAD_BITS) / ratio).max(0.0);
                    let frac = if kl > 0.0 {
                        (afford / kl).min(1.0)
                    } else {
                        1.0
                    };
                    let snr_t = lt.map(f64::exp).unwrap_or(0.0);
                    let snr_new = snr_t + (ls.exp() - snr_t) * frac;
                    let Some(q_min) = first_q_above(lt) else {
                        break;
                    };
                    // Grid steps finer than the fixed point can leave no representable lambda
                    // between the previous step and this one; then take the next representable
                    // one (decoders only require the final lambda to exceed the previous one).
                    let q_max = ((ls / LAMBDA_UNIT).round() as i32).max(q_min);
                    let q = ((snr_new.ln() / LAMBDA_UNIT).round() as i32).clamp(q_min, q_max);
                    ls = q as f64 * LAMBDA_UNIT;
                    final_lambda_q = Some(q);
                    tr = Transition::new(lt, ls);
                    kl = kl_of(&tr);
                }
            }
            if let (RateTarget::Lambda(t), None) = (self.opts.target, final_lambda_q) {
                // The step that reaches the target lambda ends exactly on it (rounded to the
                // fixed point, and past the previous lambda).
                if ls >= t - LAMBDA_UNIT / 2.0 {
                    if let Some(q_min) = first_q_above(lt) {
                        let q = ((t / LAMBDA_UNIT).round() as i32).max(q_min);
                        ls = q as f64 * LAMBDA_UNIT;
                        final_lambda_q = Some(q);
                        tr = Transition::new(lt, ls);
                        kl = kl_of(&tr);
                    }
                }
            }
            if final_lambda_q.is_none() && i + 1 == n_steps && n_steps < self.grid.steps as usize {
                // Encoding stops before the grid's end: mark the last packet final so decoders
                // report a complete stream (its lambda rounded to the stream's fixed point).
                // Rounded up past the previous lambda if the grid is finer than the fixed point.
                if let Some(q) =
                    first_q_above(lt).map(|q_min| ((ls / LAMBDA_UNIT).round() as i32).max(q_min))
                {
                    ls = q as f64 * LAMBDA_UNIT;
                    final_lambda_q = Some(q);
                    tr = Transition::new(lt, ls);
                    kl = kl_of(&tr);
                }
            }
            let scale = tr.mu_scale as f32;
            let mu: Vec<f32> = diff.iter().map(|&d| scale * d).collect();
            let n_chunks = ((kl / self.opts.chunk_bits).ceil() as usize).clamp(1, dims);
            let layout = Layout::new(
                dims,
                n_chunks,
                self.opts.log2_k,
                self.opts.max_width as usize,
            )?;
            if layout.scoring_bytes() > limits.max_alloc_bytes {
                return Err(Error::Limits {
                    what: "reverse channel coding scoring bytes (lower --log2-k or --chunk-bits)",
                    value: layout.scoring_bytes(),
                    max: limits.max_alloc_bytes,
                });
            }
            let coded = rcc::encode_step(&g, i as u32, &mu, &layout)?;
            let words = rcc::index_coder::encode_indices(&coded.indices, self.opts.log2_k)?;
            let packet = Packet {
                final_lambda_q,
                n_chunks: n_chunks as u64,
                log2_k: self.opts.log2_k,
                kl_bits: kl.round() as u64,
                words,
            };
            let before = out.len();
            packet.write(&mut out);
            advance(&mut z, &x_hat, &coded.sample, &tr);
            lambda_prev = Some(ls);
            let report = StepReport {
                step: i,
                lambda: ls,
                bytes: out.len() - before,
                cumulative_bytes: out.len(),
                kl_bits: kl,
                index_bits: packet.words.len() as u64 * 32,
                n_chunks: n_chunks as u64,
                log2_k: self.opts.log2_k,
                seconds: t0.elapsed().as_secs_f64(),
            };
            kl_sum += kl;
            spent_sum += report.bytes as f64 * 8.0;
            let flow = progress(&report);
            steps.push(report);
            if final_lambda_q.is_some() || flow.is_break() {
                break;
            }
        }
        Ok(Encoded {
            bytes: out.to_vec(),
            steps,
        })
    }
}

/// `z_s = coef_z z_t + coef_x x_hat + std * e`.
fn advance(z: &mut [f32], x_hat: &[f32], e: &[f32], tr: &Transition) {
    let (cz, cx, sd) = (tr.coef_z as f32, tr.coef_x as f32, tr.std as f32);
    for ((zv, &xv), &ev) in z.iter_mut().zip(x_hat).zip(e) {
        *zv = cz * *zv + cx * xv + sd * ev;
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

/// Why a decoder stopped for good, by blame: only a malformed stream is corruption.
#[derive(Clone, Debug)]
enum Failure {
    /// The stream breaks a format rule ([`Error::Format`]).
    Format(String),
    /// The stream asks for more than the decoder's [`Limits`] ([`Error::Limits`]).
    Limit {
        what: &'static str,
        value: u64,
        max: u64,
    },
    /// The decoder could not go on (its model failed, or it lacks the model).
    Decoder(String),
}

impl Failure {
    fn of(e: &Error) -> Self {
        match e {
            Error::Format { .. } => Failure::Format(e.to_string()),
            &Error::Limits { what, value, max } => Failure::Limit { what, value, max },
            e => Failure::Decoder(e.to_string()),
        }
    }

    fn reason(&self) -> String {
        match self {
            Failure::Format(s) | Failure::Decoder(s) => s.clone(),
            &Failure::Limit { what, value, max } => Error::Limits { what, value, max }.to_string(),
        }
    }
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
                    let (packet, n) = match Packet::read(
                        unread,
                        &self.limits,
                        progress.header.max_packet_payload(),
                    ) {
                        Err(Error::Truncated { .. }) => return Ok(done),
                        Err(e) => return Err(corrupt(done, self.consumed, e)),
                        Ok(p) => p,
                    };
                    // The compute budget, counted as the packet arrives and before the prior
                    // runs on it.
                    let h = &progress.header;
                    self.limits
                        .check_network_passes(done as u64 + 1, h.width as u64 * h.height as u64)?;
                    let t0 = Instant::now();
                    let model = self
                        .model
                        .clone()
                        .ok_or_else(|| Error::InvalidArgument("decoder has no model".into()))?;
                    let lambda = decode_packet(model.as_ref(), done, &packet, progress)
                        .map_err(|e| corrupt(done, self.consumed, e))?;
                    self.consumed += n;
                    self.start += n;
                    self.steps.push(StepReport {
                        step: done,
                        lambda,
                        bytes: n,
                        cumulative_bytes: self.consumed,
                        kl_bits: packet.kl_bits as f64,
                        index_bits: packet.words.len() as u64 * 32,
                        n_chunks: packet.n_chunks,
                        log2_k: packet.log2_k,
                        seconds: t0.elapsed().as_secs_f64(),
                    });
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
            .map(|p| p.finished || self.steps.len() >= p.header.grid.steps as usize)
            .unwrap_or(false);
        let stop = match &self.state {
            State::Failed { failure, .. } => Stop::Corrupt {
                step: self.steps.len(),
                at_byte: self.consumed,
                detail: failure.reason(),
            },
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

/// The smallest fixed-point lambda (1/256 units) a step after `lt` may reach: just above the
/// previous lambda, or the format's lower bound at step 0; `None` when nothing representable
/// is left above `lt`.
fn first_q_above(lt: Option<f64>) -> Option<i32> {
    let lim = (MAX_ABS_LAMBDA / LAMBDA_UNIT) as i32;
    let q = lt.map_or(-lim, |l| (l / LAMBDA_UNIT).floor() as i32 + 1);
    (q <= lim).then_some(q)
}

/// Refuse images whose codec buffers plus the model's working memory exceed the limits.
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

fn corrupt(step: usize, at: usize, e: Error) -> Error {
    match e {
        Error::Format { field, detail } => Error::Format {
            field,
            detail: format!("{detail} (packet of step {step} at byte {at})"),
        },
        e => e,
    }
}

/// The decode-time checks of a packet against its stream (spec: packet checks 8-11): chunk
/// count, layout and final lambda. Returns the chunk layout and the lambda the step reaches.
/// Shared by the decoder and `inspect` so both report the same packets as corrupt.
fn check_packet(
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
    let ls = match packet.final_lambda_q {
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
    Ok((layout, ls))
}

/// Apply one packet to the latent; returns the lambda reached.
fn decode_packet(
    model: &dyn Denoiser,
    step: usize,
    packet: &Packet,
    progress: &mut Progress,
) -> Result<f64> {
    let header = progress.header;
    let dims = header.dims();
    let lt = progress.lambda;
    let (layout, ls) = check_packet(&header, step, lt, packet)?;
    // The work below is bounded by the chunk count, itself bounded by dims (limited by
    // max_pixels), whatever the packet's length.
    let indices =
        rcc::index_coder::decode_indices(packet.words.clone(), layout.n_chunks, packet.log2_k)?;
    let g = Philox::new(header.seed);
    let e = rcc::decode_step(&g, step as u32, &layout, &indices)?;
    let (c, h, w) = (
        header.channels as usize,
        header.height as usize,
        header.width as usize,
    );
    let tr = Transition::new(lt, ls);
    let x_hat = match lt {
        None => vec![0f32; dims],
        Some(l) => reconstruct::predict(model, &progress.z, c, h, w, l)?,
    };
    advance(&mut progress.z, &x_hat, &e, &tr);
    progress.lambda = Some(ls);
    progress.finished = packet.final_lambda_q.is_some();
    Ok(ls)
}

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
    let mut packets = Vec::new();
    let mut finished = false;
    let stop = loop {
        if packets.len() >= header.grid.steps as usize {
            break if pos < bytes.len() {
                Stop::TrailingBytes {
                    count: bytes.len() - pos,
                }
            } else {
                Stop::Complete
            };
        }
        if finished {
            break if pos < bytes.len() {
                Stop::TrailingBytes {
                    count: bytes.len() - pos,
                }
            } else {
                Stop::Complete
            };
        }
        let step = packets.len();
        let prev_lambda = packets.last().map(|r: &StepReport| r.lambda);
        let read =
            Packet::read(&bytes[pos..], limits, header.max_packet_payload()).and_then(|(p, n)| {
                check_packet(&header, step, prev_lambda, &p).map(|(_, ls)| (p, n, ls))
            });
        match read {
            Ok((p, n, lambda)) => {
                pos += n;
                finished = p.final_lambda_q.is_some();
                packets.push(StepReport {
                    step,
                    lambda,
                    bytes: n,
                    cumulative_bytes: pos,
                    kl_bits: p.kl_bits as f64,
                    index_bits: p.words.len() as u64 * 32,
                    n_chunks: p.n_chunks,
                    log2_k: p.log2_k,
                    seconds: 0.0,
                });
            }
            Err(Error::Truncated { .. }) => break Stop::Truncated { at_byte: pos },
            Err(e) => {
                break Stop::Corrupt {
                    step: packets.len(),
                    at_byte: pos,
                    detail: e.to_string(),
                }
            }
        }
    };
    Ok(Inspection {
        header,
        packets,
        stop,
        total_bytes: bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconstruct::Method;

    fn image() -> Image {
        let data = (0..24 * 16 * 3)
            .map(|i| ((i * 37) % 251) as u8)
            .collect::<Vec<u8>>();
        Image::new(24, 16, 3, data).unwrap()
    }

    fn encode(target: RateTarget) -> Encoded {
        let opts = EncoderOptions {
            target,
            log2_k: 6,
            ..Default::default()
        };
        let model = crate::prior::load_model("gauss").unwrap();
        Encoder::new(model, opts)
            .unwrap()
            .encode(&image(), &Limits::default(), |_| {})
            .unwrap()
    }

    #[test]
    fn lambda_target_ends_exactly_on_it_and_decodes_complete() {
        let grid = EncoderOptions::default().validate().unwrap();
        for target in [3.3, 5.0, -4.7, 0.01] {
            let enc = encode(RateTarget::Lambda(target));
            let last = enc.steps.last().unwrap();
            assert!(
                (last.lambda - target).abs() <= LAMBDA_UNIT / 2.0 + 1e-12,
                "{target}: ended at {}",
                last.lambda
            );
            // Stops at the first grid step that reaches the target, not before or after.
            let first = (0..grid.steps as usize)
                .find(|&i| grid.lambda(i) >= target - LAMBDA_UNIT / 2.0)
                .unwrap();
            assert_eq!(enc.steps.len(), first + 1, "{target}");
            let opts = ReconstructOptions {
                method: Method::Denoise,
                ..Default::default()
            };
            let (_, report) = Decoder::new().decode(&enc.bytes, &opts).unwrap();
            assert_eq!(report.stop, Stop::Complete, "{target}");
            assert_eq!(report.steps_decoded, enc.steps.len());
            assert_eq!(report.steps.last().unwrap().lambda, last.lambda);
        }
        // Beyond the grid: the whole grid, same bytes as RateTarget::All.
        assert_eq!(
            encode(RateTarget::Lambda(20.0)).bytes,
            encode(RateTarget::All).bytes
        );
        // A higher target never costs less.
        assert!(
            encode(RateTarget::Lambda(6.0)).bytes.len()
                > encode(RateTarget::Lambda(2.0)).bytes.len()
        );
        for bad in [f64::NAN, 31.0, -40.0] {
            let opts = EncoderOptions {
                target: RateTarget::Lambda(bad),
                ..Default::default()
            };
            assert!(opts.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn progress_callback_can_stop_the_encoder() {
        let model = crate::prior::load_model("gauss").unwrap();
        let enc = Encoder::new(
            model,
            EncoderOptions {
                target: RateTarget::All,
                log2_k: 6,
                ..Default::default()
            },
        )
        .unwrap();
        let mut seen = 0;
        let cut = enc
            .encode_until(&image(), &Limits::default(), |s| {
                seen += 1;
                if s.step == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!((seen, cut.steps.len()), (3, 3));
        // A prefix of the full stream, decoded as partial.
        let full = encode(RateTarget::All);
        assert_eq!(&full.bytes[..cut.bytes.len()], &cut.bytes[..]);
        let (_, report) = Decoder::new()
            .decode(&cut.bytes, &ReconstructOptions::default())
            .unwrap();
        assert_eq!(report.steps_decoded, 3);
        assert!(matches!(report.stop, Stop::Truncated { .. }), "{report:?}");
    }
}
