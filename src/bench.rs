//! `diffc bench`: the engine's speed on this machine, measured on the real code paths.
//!
//! - one forward pass of the float network `tiny` on a 768x512 image at lambda = 3 (full
//!   resolution, no multiscale shortcut), through the engine and through candle's graph, and
//!   of the default integer model (`deep-int8`) with its fastest and its portable kernels;
//! - one training step (fwd + bwd + AdamW + EMA) on 16 crops of 64x64;
//! - the codec's own work per step (shared-randomness pool, permutation, candidate scoring,
//!   index coding) with the closed-form `gauss` prior, whose "network pass" costs nothing.
//!
//! Every figure is the best of several runs (noise on a shared machine only adds time); GFLOP/s count the network's multiply-adds x 2
//! ([`NetConfig::flops_per_pixel`]), training as 3x the forward.

use std::time::Instant;

use crate::codec::{Decoder, Encoder, EncoderOptions, RateTarget};
use crate::data::{CropPool, Rgb8};
use crate::error::Result;
use crate::image_io::Image;
use crate::prior::bf16::Products;
use crate::prior::{self, Denoiser, Planes};
use crate::reconstruct::{Method, ReconstructOptions};
use crate::Limits;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Timed repetitions of each measurement (the fastest is reported).
    pub repeats: usize,
    /// Also time candle's graph (the reference path) for the forward pass.
    pub graph: bool,
    /// Also time the integer network, with its fastest and its portable kernels.
    pub integer: bool,
    /// Time a training step.
    pub train: bool,
    /// Time the codec's per-step work.
    pub codec: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            repeats: 5,
            graph: true,
            integer: true,
            train: true,
            codec: true,
        }
    }
}

/// Results; `None` where not measured. Seconds are the best of the repeats.
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    /// Network measured.
    pub model: String,
    /// Threads rayon uses.
    pub threads: usize,
    /// GFLOP of one forward pass on 768x512.
    pub forward_gflop: f64,
    /// Engine forward pass, 768x512.
    pub forward_seconds: f64,
    /// Its rate.
    pub forward_gflops: f64,
    /// Candle-graph forward pass, 768x512.
    pub graph_forward_seconds: Option<f64>,
    /// Integer model measured: the default, as the codec runs it.
    pub integer_model: Option<String>,
    /// Kernels it ran with.
    pub integer_kernels: Option<String>,
    /// GFLOP of its pass (its architecture's multiply-adds x 2, as for the float network).
    pub integer_gflop: Option<f64>,
    /// Its forward pass, 768x512.
    pub integer_forward_seconds: Option<f64>,
    /// The same with the portable kernel (one run: it is slow).
    pub integer_portable_seconds: Option<f64>,
    /// Block matching of the expert timed above, if it matches blocks (its extra input planes,
    /// integer, exact) on 768x512: what a pass of such a network adds besides its wider first
    /// layer.
    pub block_matching_seconds: Option<f64>,
    /// Training step, 16x64x64.
    pub train_step_seconds: Option<f64>,
    /// Its rate (3x the forward FLOPs).
    pub train_step_gflops: Option<f64>,
    /// The same step with bf16 products (f32 sums), where the CPU has AVX-512 BF16.
    pub train_step_bf16_seconds: Option<f64>,
    /// The kernel of those products: `amx` (AMX-BF16 tiles) or `avx512`.
    pub train_bf16_kernel: Option<String>,
    /// Encoder work per coded step besides the network, 768x512.
    pub encode_step_seconds: Option<f64>,
    /// Decoder work per step besides the network, 768x512 (`denoise`).
    pub decode_step_seconds: Option<f64>,
}

/// The fastest run: on a shared machine, noise only ever adds time (as in
/// `../shared/tools/yardstick.py`, which reports the best of five).
fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

fn time<T>(repeats: usize, mut f: impl FnMut() -> Result<T>) -> Result<f64> {
    f()?; // warm-up: buffers, caches, lazily built state
    let mut t = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let t0 = Instant::now();
        std::hint::black_box(f()?);
        t.push(t0.elapsed().as_secs_f64());
    }
    Ok(best(t))
}

/// A deterministic photo-like test image: smooth gradients, edges and fine texture.
pub fn synthetic_rgb(width: usize, height: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(3 * width * height);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for y in 0..height {
        for x in 0..width {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let grain = (s % 17) as f64 - 8.0;
            let (fx, fy) = (x as f64 / width as f64, y as f64 / height as f64);
            let disc = if (fx - 0.6).powi(2) + (fy - 0.4).powi(2) < 0.04 {
                60.0
            } else {
                0.0
            };
            let wave = 30.0 * ((x as f64 * 0.21).sin() * (y as f64 * 0.13).cos());
            for c in 0..3 {
                let base = 40.0 + 150.0 * (fx * (c as f64 + 1.0) / 3.0 + fy * 0.5) / 1.5;
                v.push(
                    (base + disc + wave * (c == 1) as u8 as f64 + grain).clamp(0.0, 255.0) as u8,
                );
            }
        }
    }
    v
}

/// The embedded float network `name`, or, in builds without its weights (the crates.io
/// package), one freshly initialised: a pass costs the same whatever the weights.
fn float_network(name: &str) -> Result<prior::net::NetDenoiser> {
    if let Ok(n) = prior::load_network(name) {
        return Ok(n);
    }
    let cfg = prior::net::NetConfig::by_name(name)
        .ok_or_else(|| crate::error::Error::UnknownModel(name.to_string()))?;
    let dev = candle_core::Device::Cpu;
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &dev);
    let net = prior::net::DenoiserNet::new(vb, &cfg)?;
    prior::net::NetDenoiser::from_net(name, 0, net, &dev)
}

/// Run the measurements.
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    let (w, h) = (768usize, 512usize);
    let name = prior::DEFAULT_ARCH;
    let net = float_network(name)?;
    let cfg = net.config().clone();
    let gflop = cfg.flops_per_pixel() * (w * h) as f64 / 1e9;
    let rgb = synthetic_rgb(w, h);
    let mut z = Planes::zeros(3, h, w);
    for (i, px) in rgb.chunks(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            z.data[c * h * w + i] = v as f32 / 127.5 - 1.0;
        }
    }
    let mut r = BenchReport {
        model: name.to_string(),
        threads: rayon::current_num_threads(),
        forward_gflop: gflop,
        ..Default::default()
    };
    r.forward_seconds = time(opts.repeats, || net.predict_x(&z, 3.0))?;
    r.forward_gflops = gflop / r.forward_seconds;
    if opts.graph {
        let graph = float_network(name)?.without_engine();
        r.graph_forward_seconds = Some(time(opts.repeats.min(3), || graph.predict_x(&z, 3.0))?);
    }
    if opts.integer {
        // The default model as the codec runs it (at lambda 3: full resolution, one expert, a
        // pass per mirror image; the expert there matches blocks, once for its mirror images,
        // so the time includes the matching).
        use crate::prior::intkernel::Kernels;
        let int_name = prior::DEFAULT_MODEL;
        let k = Kernels::detect();
        let q = prior::load_model_on(int_name, k)?;
        r.integer_model = Some(int_name.to_string());
        r.integer_kernels = Some(k.name().to_string());
        // The expert that runs at lambda 3 (experts may differ in architecture).
        let expert = prior::expert_bounds(int_name)
            .iter()
            .filter(|&&b| 3.0 >= b)
            .count();
        let arch = prior::arch(int_name);
        let arch = arch.split(',').nth(expert).unwrap_or(arch);
        r.integer_gflop = prior::net::NetConfig::by_name(arch)
            .map(|c| c.flops_per_pixel() * (w * h * prior::mirror_count(int_name)) as f64 / 1e9);
        r.integer_forward_seconds = Some(time(opts.repeats, || q.predict_x(&z, 3.0))?);
        if k != Kernels::Portable {
            let p = prior::load_model_on(int_name, Kernels::Portable)?;
            r.integer_portable_seconds = Some(time(1, || p.predict_x(&z, 3.0))?);
        }
        // The same expert's block matching alone, if it matches blocks.
        if let Some(nl) = prior::net::NetConfig::by_name(arch).and_then(|c| c.nonlocal) {
            let q: Vec<i16> = z
                .data
                .iter()
                .map(|&v| prior::intnet::quantize_input(v))
                .collect();
            r.block_matching_seconds = Some(time(opts.repeats, || {
                Ok(prior::nonlocal::block_mean_int(&q, h, w, nl))
            })?);
        }
    }
    if opts.train {
        let pool = CropPool::from_images(vec![Rgb8 {
            width: w,
            height: h,
            data: rgb.clone(),
        }])?;
        let step =
            |p| crate::train::time_train_steps(&cfg, &pool, 16, 64, 2, opts.repeats.max(3), p);
        let s = best(step(Products::F32)?);
        r.train_step_seconds = Some(s);
        r.train_step_gflops = Some(3.0 * cfg.flops_per_pixel() * (16 * 64 * 64) as f64 / 1e9 / s);
        if Products::Bf16.available() {
            r.train_step_bf16_seconds = Some(best(step(Products::Bf16)?));
            r.train_bf16_kernel = Some(crate::prior::bf16::kernel_name().into());
        }
    }
    if opts.codec {
        let image = Image::new(w as u32, h as u32, 3, rgb)?;
        let gauss = prior::load_model("gauss")?;
        let eo = EncoderOptions {
            target: RateTarget::Bpp(0.5),
            ..Default::default()
        };
        let mut steps = 0usize;
        let mut bytes = Vec::new();
        let enc = time(opts.repeats.min(3), || {
            let e = Encoder::new(gauss.clone(), eo.clone())?.encode(
                &image,
                &Limits::default(),
                |_| {},
            )?;
            steps = e.steps.len();
            bytes = e.bytes.clone();
            Ok(())
        })?;
        let steps = steps.max(1) as f64;
        r.encode_step_seconds = Some(enc / steps);
        let ro = ReconstructOptions {
            method: Method::Denoise,
            ..Default::default()
        };
        let dec = time(opts.repeats.min(3), || Decoder::new().decode(&bytes, &ro))?;
        r.decode_step_seconds = Some(dec / steps);
    }
    Ok(r)
}

impl BenchReport {
    /// One JSON object (no external serializer needed: flat numbers and one string).
    pub fn to_json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:.6}"));
        let ostr = |v: &Option<String>| {
            v.as_ref()
                .map_or("null".to_string(), |x| format!("\"{x}\""))
        };
        format!(
            concat!(
                "{{\"model\":\"{}\",\"threads\":{},\"forward_gflop\":{:.3},",
                "\"forward_seconds\":{:.6},\"forward_gflops\":{:.2},",
                "\"graph_forward_seconds\":{},\"integer_model\":{},\"integer_kernels\":{},",
                "\"integer_gflop\":{},",
                "\"integer_forward_seconds\":{},\"integer_portable_seconds\":{},",
                "\"block_matching_seconds\":{},",
                "\"train_step_seconds\":{},",
                "\"train_step_gflops\":{},\"train_step_bf16_seconds\":{},",
                "\"train_bf16_kernel\":{},",
                "\"encode_step_seconds\":{},",
                "\"decode_step_seconds\":{}}}"
            ),
            self.model,
            self.threads,
            self.forward_gflop,
            self.forward_seconds,
            self.forward_gflops,
            opt(self.graph_forward_seconds),
            ostr(&self.integer_model),
            ostr(&self.integer_kernels),
            opt(self.integer_gflop),
            opt(self.integer_forward_seconds),
            opt(self.integer_portable_seconds),
            opt(self.block_matching_seconds),
            opt(self.train_step_seconds),
            opt(self.train_step_gflops),
            opt(self.train_step_bf16_seconds),
            ostr(&self.train_bf16_kernel),
            opt(self.encode_step_seconds),
            opt(self.decode_step_seconds),
        )
    }

    /// A human-readable table.
    pub fn to_text(&self) -> String {
        let line =
            |label: &str, secs: f64, rest: String| format!("{label:<34}{secs:8.3} s  {rest}\n");
        let mut s = format!(
            "model {} ({} threads), 768x512 forward = {:.1} GFLOP\n",
            self.model, self.threads, self.forward_gflop
        );
        s += &line(
            "forward (f32 engine)",
            self.forward_seconds,
            format!("{:6.1} GFLOP/s", self.forward_gflops),
        );
        if let Some(g) = self.graph_forward_seconds {
            s += &line(
                "forward (f32 candle graph)",
                g,
                format!(
                    "{:6.1} GFLOP/s  (the engine is {:.2}x faster)",
                    self.forward_gflop / g,
                    g / self.forward_seconds
                ),
            );
        }
        if let (Some(m), Some(k), Some(t)) = (
            &self.integer_model,
            &self.integer_kernels,
            self.integer_forward_seconds,
        ) {
            s += &line(
                &format!("forward ({m}, {k})"),
                t,
                match self.integer_gflop {
                    Some(g) => format!(
                        "{:6.1} GOP/s ({g:.1} GOP); the same bits on every machine",
                        g / t
                    ),
                    None => "the same bits on every machine".into(),
                },
            );
            if let Some(p) = self.integer_portable_seconds {
                s += &line(
                    &format!("forward ({m}, portable)"),
                    p,
                    "DIFFC_KERNELS=portable".into(),
                );
            }
            if let Some(b) = self.block_matching_seconds {
                // A share of the whole prediction: models that average mirror images inside
                // each network match once for all their passes.
                s += &line(
                    "block matching (integer)",
                    b,
                    format!("{:.0}% of a prediction of {m}", 100.0 * b / t),
                );
            }
        }
        if let (Some(t), Some(g)) = (self.train_step_seconds, self.train_step_gflops) {
            s += &line("train step 16x64²", t, format!("{g:6.1} GFLOP/s"));
            if let Some(b) = self.train_step_bf16_seconds {
                let kernel = self.train_bf16_kernel.as_deref().unwrap_or("?");
                s += &line(
                    &format!("train step 16x64², bf16 ({kernel})"),
                    b,
                    format!("{:6.1} GFLOP/s, {:.2}x f32", g * t / b, t / b),
                );
            }
        }
        if let Some(e) = self.encode_step_seconds {
            s += &line(
                "encode, per step",
                e,
                "codec work besides the network".into(),
            );
        }
        if let Some(d) = self.decode_step_seconds {
            s += &line(
                "decode, per step",
                d,
                "codec work besides the network".into(),
            );
        }
        s
    }
}
