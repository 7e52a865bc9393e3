//! Quantize a float network (`--model ARCH`, default `tiny`) into the integer prior and compare
//! the two.
//!
//! ```text
//! cargo run --release --example quantize -- --weights models/shipped/tiny.safetensors \
//!     --calib ../shared/data/train --out models/shipped/tiny-int.safetensors \
//!     [--model ARCH] [--amax 2047] [--wmax 511] [--layer-wmax NAME=WMAX,...]
//!     [--layer-amax NAME=AMAX,...] [--crops 24] [--band LO,HI]
//!     [--write-ranges F | --ranges F] [--check DIR] [--bench IMG]
//! ```
//!
//! `--check DIR` prints the relative x-MSE (network / identity) of both networks on two 256x256
//! crops of every image in DIR with the same noise, at the validation log-SNRs and a few more.
//! `--band LO,HI` calibrates at the log-SNRs in that band only (for a log-SNR expert).

use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use diffc::prior::engine::Engine;
use diffc::prior::intnet::{self, IntNet};
use diffc::prior::net::{alpha_f, sigma_f, DenoiserNet, NetConfig};
use diffc::prior::quantize::QuantOptions;

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter().position(|x| x == name).map(|i| a[i + 1].clone())
}

/// Two `size x size` crops (left and right of centre) of every `step`-th image of `dir`.
fn crops(dir: &str, size: usize, max: usize) -> diffc::Result<Vec<Vec<f32>>> {
    let files = diffc::data::list_images(dir.as_ref())?;
    let step = (2 * files.len() / max.max(1)).max(1);
    let mut out = Vec::new();
    for f in files.iter().step_by(step) {
        let im = diffc::data::load_rgb8(f)?;
        if im.width < size || im.height < size {
            continue;
        }
        let y0 = (im.height - size) / 2;
        for x0 in [(im.width - size) / 4, 3 * (im.width - size) / 4] {
            let mut c = vec![0f32; 3 * size * size];
            im.crop_into(x0, y0, size, Default::default(), &mut c);
            out.push(c);
        }
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

fn check(e: &Engine, q: &IntNet, dir: &str) -> diffc::Result<()> {
    let size = 256;
    let xs = crops(dir, size, usize::MAX)?;
    println!("{} check crops of {dir}", xs.len());
    let mut rng = diffc::data::Rng::new(0x5eed_da7a);
    let (mut tf, mut ti) = (0f64, 0f64);
    for l in [
        -6.0f32, -3.0, -2.9375, 0.0, 0.0625, 1.5, 3.0, 3.0625, 4.5, 6.0, 6.0625, 7.5, 9.0, 11.0,
        13.0,
    ] {
        let (a, s) = (alpha_f(l), sigma_f(l));
        let (mut nf, mut ni, mut den) = (0f64, 0f64, 0f64);
        for x in &xs {
            let mut z = vec![0f32; x.len()];
            rng.fill_normal(&mut z);
            z.iter_mut().zip(x).for_each(|(z, &x)| *z = a * x + s * *z);
            let t = Instant::now();
            let f = e.predict_x(&z, size, size, l);
            tf += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let i = q.predict_x(&z, size, size, l as f64);
            ti += t.elapsed().as_secs_f64();
            for j in 0..x.len() {
                nf += ((f[j] - x[j]) as f64).powi(2);
                ni += ((i[j] - x[j]) as f64).powi(2);
                den += ((z[j] / a - x[j]) as f64).powi(2);
            }
        }
        println!(
            "lambda {l:5.1}: relative x-MSE float {:.5}  integer {:.5}  ({:+.2}%)",
            nf / den,
            ni / den,
            100.0 * (ni / nf - 1.0)
        );
    }
    println!(
        "time: float {tf:.2} s, integer {ti:.2} s ({})",
        diffc::prior::intkernel::Kernels::detect().name()
    );
    Ok(())
}

fn main() -> diffc::Result<()> {
    let weights = arg("--weights").unwrap_or("models/shipped/tiny.safetensors".into());
    let arch = arg("--model").unwrap_or("tiny".into());
    let cfg = NetConfig::by_name(&arch).ok_or_else(|| diffc::Error::UnknownModel(arch.clone()))?;
    let bytes = std::fs::read(&weights)?;
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?;
    let net = DenoiserNet::new(vb, &cfg)?;
    let e = Engine::new(&net)?;
    let mut opts = QuantOptions::default();
    if let Some(a) = arg("--amax") {
        opts.amax = a.parse().expect("--amax N");
    }
    if let Some(w) = arg("--wmax") {
        opts.wmax = w.parse().expect("--wmax N");
    }
    if let Some(l) = arg("--layer-wmax") {
        opts.layer_wmax = diffc::prior::quantize::LayerMax::parse(&l)?;
    }
    if let Some(l) = arg("--layer-amax") {
        opts.layer_amax = diffc::prior::quantize::LayerMax::parse(&l)?;
    }
    if let Some(q) = arg("--quantile") {
        opts.quantile = q.parse().expect("--quantile Q");
    }
    if let Some(b) = arg("--band") {
        // A log-SNR expert (`diffc::prior::experts`) only ever runs inside its band: calibrate
        // there, so that its maps' ranges are not set by inputs it never sees.
        let b: Vec<f32> = b
            .split(',')
            .map(|t| t.parse().expect("--band LO,HI"))
            .collect();
        assert!(b.len() == 2, "--band LO,HI");
        opts.lambdas.retain(|l| (b[0]..=b[1]).contains(l));
        assert!(
            !opts.lambdas.is_empty(),
            "--band holds no calibration log-SNR"
        );
        // Its tables need only cover the band (with a unit of margin): a third of the bytes
        // for a third of the range. Outside the grid the network sees its edge's values.
        let full = opts.grid;
        let lo = (b[0].floor() as i32 - 1) * full.per_unit;
        let hi = (b[1].ceil() as i32 + 1) * full.per_unit;
        let (first, last) = (
            lo.max(full.first),
            hi.min(full.first + full.points as i32 - 1),
        );
        assert!(first < last, "--band outside the grid");
        opts.grid.first = first;
        opts.grid.points = (last - first + 1) as usize;
    }
    let q = if let Some(f) = arg("--int") {
        intnet::from_safetensors(&arch, &std::fs::read(f)?)?
    } else {
        let t = Instant::now();
        let ranges = match arg("--ranges") {
            // The ranges a quantization-aware fine-tuning trained with.
            Some(f) => diffc::prior::quantize::read_ranges(&std::fs::read_to_string(f)?)?,
            None => {
                let calib = arg("--calib").expect("--calib DIR (training images)");
                let n: usize = arg("--crops").map_or(24, |v| v.parse().expect("--crops N"));
                let xs = crops(&calib, 256, n)?;
                diffc::prior::quantize::calibrate(&e, &xs, 256, &opts)
            }
        };
        if let Some(f) = arg("--write-ranges") {
            std::fs::write(&f, diffc::prior::quantize::write_ranges(&cfg, &ranges))?;
        }
        let q = diffc::prior::quantize::quantize_with_ranges(&e, &ranges, &opts)?;
        println!("quantized in {:.1} s", t.elapsed().as_secs_f64());
        q
    };
    if let Some(out) = arg("--out") {
        let b = intnet::to_safetensors(&q, &arch)?;
        std::fs::write(&out, &b)?;
        // The stream id adds the model's multiscale thresholds (`diffc models`).
        let h = diffc::prior::fnv1a64(&b);
        println!("wrote {out} ({} bytes, FNV-1a 64 {h:016x})", b.len());
    }
    if let Some(dir) = arg("--check") {
        check(&e, &q, &dir)?;
    }
    if let Some(img) = arg("--bench") {
        let im = diffc::data::load_rgb8(img.as_ref())?;
        let (h, w) = (im.height / 8 * 8, im.width / 8 * 8);
        let mut x = vec![0f32; 3 * h * w];
        for c in 0..3 {
            for y in 0..h {
                for xx in 0..w {
                    x[(c * h + y) * w + xx] =
                        im.data[(y * im.width + xx) * 3 + c] as f32 / 127.5 - 1.0;
                }
            }
        }
        let l = 3.0f32;
        let (a, s) = (alpha_f(l), sigma_f(l));
        let mut z = vec![0f32; x.len()];
        diffc::data::Rng::new(1).fill_normal(&mut z);
        z.iter_mut().zip(&x).for_each(|(z, &x)| *z = a * x + s * *z);
        let best = |f: &dyn Fn()| {
            f();
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::MAX, f64::min)
        };
        let tf = if std::env::args().any(|a| a == "--no-float") {
            f64::NAN
        } else {
            best(&|| {
                e.predict_x(&z, h, w, l);
            })
        };
        println!("{w}x{h} forward: float engine {tf:.3} s");
        let mut ks = vec![diffc::prior::intkernel::Kernels::best()];
        if arg("--portable").is_some() || std::env::args().any(|a| a == "--portable") {
            ks.push(diffc::prior::intkernel::Kernels::Portable);
        }
        for k in ks {
            let q2 = intnet::from_safetensors(&arch, &intnet::to_safetensors(&q, &arch)?)?
                .with_kernels(k)?;
            let ti = best(&|| {
                q2.predict_x(&z, h, w, l as f64);
            });
            println!(
                "{w}x{h} forward: integer ({}) {ti:.3} s ({:.2}x float)",
                k.name(),
                tf / ti
            );
        }
    }
    Ok(())
}
