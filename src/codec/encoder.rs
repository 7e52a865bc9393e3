//! The encoder: noise the image along the grid and, step by step, send a sample of
//! `q(z_s | z_t, x)` by reverse channel coding under the prior `p(z_s | z_t)`, one packet per
//! step, until the [`RateTarget`] is met.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rayon::prelude::*;

use super::options::{EncoderOptions, RateTarget};
use super::reader::read_packet;
use super::report::StepReport;
use super::{advance, check_model_memory};
use crate::bitstream::{Header, Limits, Packet};
use crate::detmath;
use crate::error::{Error, Result};
use crate::image_io::Image;
use crate::prior::Denoiser;
use crate::prng::Philox;
use crate::rcc::{self, Layout};
use crate::reconstruct;
use crate::schedule::{Grid, Transition, LAMBDA_UNIT, MAX_ABS_LAMBDA};

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
        self.encode_packets(image, limits, |_, report| progress(report))
    }

    /// [`Encoder::encode_until`] that also hands out the stream as it is produced: after each
    /// coded step, `on_packet(bytes, report)` gets that step's packet (the first call's bytes
    /// start with the header), so the pieces concatenated are the stream — to send or write
    /// while the next step is coded. Returning `ControlFlow::Break(())` stops after that packet.
    pub fn encode_packets(
        &self,
        image: &Image,
        limits: &Limits,
        mut on_packet: impl FnMut(&[u8], &StepReport) -> ControlFlow<()>,
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
        // The image stays 8-bit: its [-1, 1] planes are computed where needed (exactly as
        // `Image::to_planes`), one image-sized f32 buffer fewer for large photos.
        let (c, h, w) = (
            image.channels as usize,
            image.height as usize,
            image.width as usize,
        );
        let dims = c * h * w;
        let x_at = |i: usize| {
            let (ch, p) = (i / (h * w), i % (h * w));
            image.data[p * c + ch] as f32 / 127.5 - 1.0
        };
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
            let mut diff: Vec<f32> = x_hat
                .par_iter()
                .enumerate()
                .map(|(i, &b)| x_at(i) - b)
                .collect();
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
                    // detmath, not the platform's libm: the same image and options give the
                    // same bytes on every machine.
                    let snr_t = lt.map(detmath::exp).unwrap_or(0.0);
                    let snr_new = snr_t + (detmath::exp(ls) - snr_t) * frac;
                    let Some(q_min) = first_q_above(lt) else {
                        break;
                    };
                    // Grid steps finer than the fixed point can leave no representable lambda
                    // between the previous step and this one; then take the next representable
                    // one (decoders only require the final lambda to exceed the previous one).
                    let q_max = ((ls / LAMBDA_UNIT).round() as i32).max(q_min);
                    let q =
                        ((detmath::ln(snr_new) / LAMBDA_UNIT).round() as i32).clamp(q_min, q_max);
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
            // mu, in place of the difference (then the coded sample, in place of mu).
            diff.iter_mut().for_each(|d| *d *= scale);
            let mut mu = diff;
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
            let indices =
                rcc::encode_step_in_place(&g, i as u32, &mut mu, &layout, self.opts.pick)?;
            let sample = mu;
            let words = rcc::index_coder::encode_indices(&indices, self.opts.log2_k)?;
            let packet = Packet {
                final_lambda_q,
                n_chunks: n_chunks as u64,
                log2_k: self.opts.log2_k,
                kl_bits: kl.round() as u64,
                words,
            };
            let before = out.len();
            packet.write(&mut out);
            // Debug builds (and the unit tests, which run in release) read every packet back
            // through the decoders' reader: a debug_assert, not a release cost.
            if cfg!(any(debug_assertions, test)) {
                if let Err(e) =
                    check_own_packet(&header, i, lt, &out, before, limits, &packet, &indices, ls)
                {
                    panic!("the encoder wrote a packet its own reader does not read back: {e}");
                }
            }
            advance(&mut z, &x_hat, &sample, &tr);
            lambda_prev = Some(ls);
            let report = StepReport {
                // The exact KL, not the whole bits written in the packet.
                kl_bits: kl,
                ..StepReport::of_packet(
                    i,
                    ls,
                    &packet,
                    out.len() - before,
                    out.len(),
                    t0.elapsed().as_secs_f64(),
                )
            };
            kl_sum += kl;
            spent_sum += report.bytes as f64 * 8.0;
            let from = if i == 0 { 0 } else { before };
            let flow = on_packet(&out[from..], &report);
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

/// The smallest fixed-point lambda (1/256 units) a step after `lt` may reach: just above the
/// previous lambda, or the format's lower bound at step 0; `None` when nothing representable
/// is left above `lt`.
fn first_q_above(lt: Option<f64>) -> Option<i32> {
    let lim = (MAX_ABS_LAMBDA / LAMBDA_UNIT) as i32;
    let q = lt.map_or(-lim, |l| (l / LAMBDA_UNIT).floor() as i32 + 1);
    (q <= lim).then_some(q)
}

/// The encoder's self-check: the packet just written at `out[at..]` reads back through the
/// decoders' packet reader as exactly what was meant (fields, framed length, lambda, indices).
/// Run on every packet in debug builds; the error says what differs.
#[allow(clippy::too_many_arguments)]
fn check_own_packet(
    header: &Header,
    step: usize,
    prev_lambda: Option<f64>,
    out: &[u8],
    at: usize,
    limits: &Limits,
    packet: &Packet,
    indices: &[u32],
    lambda: f64,
) -> std::result::Result<(), String> {
    let read = read_packet(header, step, prev_lambda, &out[at..], at, limits)
        .map_err(|e| format!("step {step}: {e}"))?;
    if read.len != out.len() - at {
        return Err(format!(
            "step {step}: framed {} bytes, read {}",
            out.len() - at,
            read.len
        ));
    }
    if &read.packet != packet {
        return Err(format!(
            "step {step}: wrote {packet:?}, read {:?}",
            read.packet
        ));
    }
    if read.indices != indices {
        return Err(format!(
            "step {step}: coded indices differ from the decoded ones"
        ));
    }
    if read.lambda != lambda {
        return Err(format!(
            "step {step}: coded to lambda {lambda}, read {}",
            read.lambda
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Decoder, Stop};
    use crate::reconstruct::{Method, ReconstructOptions};

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

    /// A gauss-prior encoder of the whole grid with few candidates (fast).
    fn whole_grid_encoder() -> Encoder {
        let model = crate::prior::load_model("gauss").unwrap();
        let opts = EncoderOptions {
            target: RateTarget::All,
            log2_k: 6,
            ..Default::default()
        };
        Encoder::new(model, opts).unwrap()
    }

    #[test]
    fn progress_callback_can_stop_the_encoder() {
        let enc = whole_grid_encoder();
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

    #[test]
    fn packets_are_handed_out_as_they_are_produced() {
        let enc = whole_grid_encoder();
        let mut streamed = Vec::new();
        let mut sizes = Vec::new();
        let whole = enc
            .encode_packets(&image(), &Limits::default(), |bytes, report| {
                streamed.extend_from_slice(bytes);
                sizes.push(bytes.len());
                // Each piece arrives with its own report, and all so far are the prefix.
                assert_eq!(streamed.len(), report.cumulative_bytes);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(streamed, whole.bytes);
        assert!(sizes.len() > 2);
        assert_eq!(
            sizes[0],
            crate::bitstream::HEADER_LEN + whole.steps[0].bytes
        );
    }

    #[test]
    fn own_packet_check_accepts_what_was_written_and_nothing_else() {
        let enc = encode(RateTarget::Bpp(2.0));
        let limits = Limits::default();
        let header = Header::parse(&enc.bytes, &limits).unwrap();
        let (mut at, mut prev) = (crate::bitstream::HEADER_LEN, None);
        for (i, s) in enc.steps.iter().enumerate() {
            let end = s.cumulative_bytes;
            let r = read_packet(&header, i, prev, &enc.bytes[at..end], at, &limits).unwrap();
            let check = |packet: &Packet, indices: &[u32], lambda: f64| {
                check_own_packet(
                    &header,
                    i,
                    prev,
                    &enc.bytes[..end],
                    at,
                    &limits,
                    packet,
                    indices,
                    lambda,
                )
            };
            assert_eq!(check(&r.packet, &r.indices, s.lambda), Ok(()));
            assert!(check(&r.packet, &r.indices, s.lambda + 0.5).is_err());
            let mut other = r.indices.clone();
            other[0] ^= 1;
            assert!(check(&r.packet, &other, s.lambda).is_err());
            let wrong = Packet {
                kl_bits: r.packet.kl_bits + 1,
                ..r.packet.clone()
            };
            assert!(check(&wrong, &r.indices, s.lambda).is_err());
            (at, prev) = (end, Some(s.lambda));
        }
        assert_eq!(at, enc.bytes.len());
    }
}
