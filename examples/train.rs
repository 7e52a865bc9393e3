//! Train the neural prior without the CLI, or benchmark the network.
//!
//! `cargo run --release --example train -- --data DIR --out MODEL [--resume CKPT | --grow SMALLER_CKPT] [--minutes M | --steps N] [--lambda-band LO,HI] [--orientations mirror|all]
//!  [--model NAME] [--val DIR] [--batch B] [--crop C] [--seed S] [--products bf16|f32]`
//!
//! `cargo run --release --example train -- --bench [--model NAME] [--batch B] [--crop C]`
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use diffc::prior::net::{DenoiserNet, NetConfig};
use diffc::train::{run, TrainOptions};

fn bench(model: &str, batch: usize, crop: usize) -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let cfg = NetConfig::by_name(model).expect("model");
    let vm = VarMap::new();
    let net = DenoiserNet::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), &cfg)?;
    let np: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
    println!(
        "{model}: {np} params, {:.1} kFLOPs/px",
        cfg.flops_per_pixel() / 1e3
    );
    let z = Tensor::randn(0f32, 1.0, (1, 3, 512, 768), &dev)?;
    let l = Tensor::new(&[3f32], &dev)?;
    // Inference weights are plain tensors (not Vars), as when loaded from a file.
    let plain: std::collections::HashMap<String, Tensor> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    let inet = DenoiserNet::new(VarBuilder::from_tensors(plain, DType::F32, &dev), &cfg)?;
    for i in 0..3 {
        let t = Instant::now();
        let y = inet.forward(&z, &l)?;
        let _ = y.sum_all()?.to_scalar::<f32>()?;
        println!(
            "forward 1x3x512x768 #{i}: {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
    if std::env::var("BENCH_FWD_ONLY").is_ok() {
        return Ok(());
    }
    let z = Tensor::randn(0f32, 1.0, (batch, 3, crop, crop), &dev)?;
    let l = Tensor::new(vec![1f32; batch].as_slice(), &dev)?;
    for i in 0..3 {
        let t = Instant::now();
        let y = net.forward(&z, &l)?;
        let loss = y.sqr()?.mean_all()?;
        let t1 = t.elapsed().as_secs_f64();
        let g = loss.backward()?;
        let _ = g.get(&vm.all_vars()[0]).is_some();
        println!(
            "train {batch}x{crop}^2 #{i}: fwd {t1:.3} s, fwd+bwd {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn prof() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for (c, h, w) in [(48usize, 256usize, 384usize), (96, 128, 192), (144, 64, 96)] {
        let x = Tensor::randn(0f32, 1.0, (c, 1, h, w), &dev)?;
        let wt = Tensor::randn(0f32, 0.1, (c, 9 * c), &dev)?;
        let t = Instant::now();
        let cols = diffc::prior::net::im2col_pub(&x)?;
        let t1 = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let y = wt.matmul(&cols.reshape((9 * c, h * w))?)?;
        let t2 = t.elapsed().as_secs_f64();
        let cm = cols.reshape((9 * c, h * w))?;
        for chunk in [4096usize, 16384] {
            let t = Instant::now();
            let mut parts = vec![];
            let mut o = 0;
            while o < h * w {
                let l = chunk.min(h * w - o);
                parts.push(wt.matmul(&cm.narrow(1, o, l)?)?);
                o += l;
            }
            let _ = Tensor::cat(&parts, 1)?;
            println!("  chunk {chunk}: {:.3}", t.elapsed().as_secs_f64());
        }
        let t = Instant::now();
        let _yt = cm.t()?.matmul(&wt.t()?)?;
        println!("  transposed: {:.3}", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let y = y.relu()?;
        let t3 = t.elapsed().as_secs_f64();
        let x4 = x.transpose(0, 1)?.contiguous()?;
        let wc = Tensor::randn(0f32, 0.1, (c, c, 3, 3), &dev)?;
        let t = Instant::now();
        let _ = x4.conv2d(&wc, 1, 1, 1, 1)?;
        let t4 = t.elapsed().as_secs_f64();
        let gf = 2.0 * 9.0 * (c * c * h * w) as f64 / 1e9;
        println!("c{c} {h}x{w}: im2col {t1:.3} matmul {t2:.3} ({:.1} GF/s) relu {t3:.3} conv2d {t4:.3} {}", gf / t2, y.dim(0)?);
    }
    Ok(())
}

fn prof2() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let (c, n) = (48usize, 16 * 32 * 32usize);
    let cols = Tensor::randn(0f32, 1.0, (9 * c, n), &dev)?;
    let dy = Tensor::randn(0f32, 1.0, (c, n), &dev)?;
    let w = Tensor::randn(0f32, 1.0, (c, 9 * c), &dev)?;
    let gf = 2.0 * (9 * c * c * n) as f64 / 1e9;
    for _ in 0..2 {
        let t = Instant::now();
        let _ = w.matmul(&cols)?;
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = dy.matmul(&cols.t()?)?;
        let b = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = cols.matmul(&dy.t()?)?;
        let b2 = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = w.t()?.matmul(&dy)?;
        let cc = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = dy.relu()?.ge(0f32)?;
        let d = t.elapsed().as_secs_f64();
        let colst = cols.t()?.contiguous()?;
        let wt = w.t()?.contiguous()?;
        let t = Instant::now();
        let _ = colst.matmul(&wt)?;
        let e = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = colst.matmul(&w.t()?)?;
        let f = t.elapsed().as_secs_f64();
        println!("NHWC fwd {:.1} GF/s, with w^T view {:.1}", gf / e, gf / f);
        println!(
            "fwd {:.1} GF/s  dW {:.1} GF/s  dW^T {:.1} GF/s  dcols {:.1} GF/s  relu+ge {d:.4}s",
            gf / a,
            gf / b,
            gf / b2,
            gf / cc
        );
    }
    Ok(())
}

/// Relative x-MSE of a weights file on whole images (through `NetDenoiser::predict_x`).
fn check(weights: &str, dir: &str) -> diffc::Result<()> {
    use diffc::prior::{Denoiser, Planes};
    let bytes = std::fs::read(weights)?;
    // CHECK_MODEL=NAME: the architecture (default `tiny`).
    let arch = std::env::var("CHECK_MODEL").unwrap_or_else(|_| "tiny".into());
    let net = diffc::prior::net::NetDenoiser::from_safetensors_bytes(&arch, &bytes, &Device::Cpu)?;
    // The network alone by default. CHECK_MULTISCALE=t1,t2,.. evaluates it the way the codec
    // may (halved once per threshold lambda lies below; `prior::multiscale`);
    // CHECK_LAMBDAS=a,b,c picks the log-SNRs (default: the validation bands).
    let d: std::sync::Arc<dyn Denoiser> = match std::env::var("CHECK_MULTISCALE") {
        Ok(v) => {
            let t: Vec<f64> = v
                .split(',')
                .map(|t| t.parse().expect("CHECK_MULTISCALE: numbers"))
                .collect();
            std::sync::Arc::new(diffc::prior::multiscale::Multiscale::new(
                "tiny",
                0,
                std::sync::Arc::new(net),
                &t,
            ))
        }
        Err(_) => std::sync::Arc::new(net),
    };
    let lambdas: Vec<f32> = match std::env::var("CHECK_LAMBDAS") {
        Ok(v) => v
            .split(',')
            .map(|t| t.parse().expect("CHECK_LAMBDAS: numbers"))
            .collect(),
        Err(_) => diffc::train::VAL_LAMBDAS.to_vec(),
    };
    let files = diffc::data::list_images(dir.as_ref())?;
    for &l in &lambdas {
        let (a, s) = (diffc::prior::net::alpha_f(l), diffc::prior::net::sigma_f(l));
        let (mut num, mut den, mut secs) = (0f64, 0f64, 0f64);
        let mut rng = diffc::data::Rng::new(7);
        for f in &files {
            let im = diffc::data::load_rgb8(f)?;
            let (h, w) = (im.height, im.width);
            let mut x = Planes::zeros(3, h, w);
            for (i, p) in im.data.chunks(3).enumerate() {
                for (c, &v) in p.iter().enumerate() {
                    x.data[c * h * w + i] = v as f32 / 127.5 - 1.0;
                }
            }
            let mut z = x.clone();
            rng.fill_normal(&mut z.data);
            for (zv, &xv) in z.data.iter_mut().zip(&x.data) {
                *zv = a * xv + s * *zv;
            }
            let t = Instant::now();
            let xh = d.predict_x(&z, l as f64)?;
            secs += t.elapsed().as_secs_f64();
            for i in 0..x.data.len() {
                num += ((xh.data[i] - x.data[i]) as f64).powi(2);
                den += ((z.data[i] / a - x.data[i]) as f64).powi(2);
            }
        }
        println!(
            "lambda {l}: relative x-MSE {:.4} ({:.2} s per image)",
            num / den,
            secs / files.len() as f64
        );
    }
    Ok(())
}

fn main() {
    if let Some(i) = std::env::args().position(|a| a == "--check") {
        let a: Vec<String> = std::env::args().collect();
        check(&a[i + 1], &a[i + 2]).expect("check");
        return;
    }
    if std::env::args().any(|a| a == "--prof2") {
        prof2().expect("prof");
        return;
    }
    if std::env::args().any(|a| a == "--prof") {
        prof().expect("prof");
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = TrainOptions::default();
    let mut is_bench = false;
    let mut i = 0;
    while i < args.len() {
        let v = || args.get(i + 1).cloned().expect("missing value");
        match args[i].as_str() {
            "--bench" => {
                is_bench = true;
                i -= 1;
            }
            "--data" => o.data = PathBuf::from(v()),
            "--out" => o.out = PathBuf::from(v()),
            "--resume" => o.resume = Some(PathBuf::from(v())),
            "--grow" => o.grow = Some(PathBuf::from(v())),
            "--lambda-band" => {
                let b: Vec<f32> = v()
                    .split(',')
                    .map(|t| t.parse().expect("--lambda-band LO,HI"))
                    .collect();
                assert!(b.len() == 2, "--lambda-band LO,HI");
                o.lambda_band = Some((b[0], b[1]));
            }
            // `mirror` (left-right, the default) or `all` (the eight turns and mirror images).
            "--orientations" => {
                let s = v();
                o.orientations = diffc::data::Orientations::parse(&s)
                    .unwrap_or_else(|| panic!("--orientations {s}: want mirror or all"));
            }
            "--minutes" => o.minutes = v().parse().expect("minutes"),
            "--steps" => o.steps = Some(v().parse().expect("steps")),
            "--model" => o.model = v(),
            "--val" => o.val = Some(PathBuf::from(v())),
            "--batch" => o.batch = v().parse().expect("batch"),
            "--crop" => o.crop = v().parse().expect("crop"),
            "--seed" => o.seed = v().parse().expect("seed"),
            "--lr-scale" => o.lr_scale = v().parse().expect("lr-scale"),
            // `bf16` (the default where the CPU has AVX-512 BF16) or `f32`.
            "--products" => {
                let p = v();
                o.products = diffc::prior::bf16::Products::parse(&p)
                    .unwrap_or_else(|| panic!("--products {p}: want f32 or bf16"));
            }
            // Quantization-aware fine-tuning with the map ranges of `examples/quantize
            // --write-ranges FILE`: `--qat FILE AMAX WMAX` (e.g. 255 127 for 8 bits).
            "--qat" => {
                let text = std::fs::read_to_string(v()).expect("--qat ranges file");
                let num = |j: usize| -> f32 {
                    args.get(i + j)
                        .expect("--qat FILE AMAX WMAX")
                        .parse()
                        .expect("number")
                };
                o.qat = Some(diffc::train::Qat {
                    ranges: diffc::prior::quantize::read_ranges(&text).expect("ranges"),
                    amax: num(2),
                    wmax: num(3),
                    layer_wmax: Default::default(),
                    layer_amax: Default::default(),
                });
                i += 2;
            }
            // After --qat: layers whose weights (maps) round to another largest integer,
            // `NAME=MAX,...` (e.g. `enc1.2=511` for 10-bit weights, `enc1.2=2047` for 11-bit
            // maps).
            flag @ ("--layer-wmax" | "--layer-amax") => {
                let q = o
                    .qat
                    .as_mut()
                    .expect("--layer-wmax and --layer-amax come after --qat");
                let m = diffc::prior::quantize::LayerMax::parse(&v()).expect(flag);
                if flag == "--layer-wmax" {
                    q.layer_wmax = m;
                } else {
                    q.layer_amax = m;
                }
            }
            a => panic!("unknown argument {a}"),
        }
        i += 2;
    }
    if is_bench {
        bench(&o.model, o.batch, o.crop).expect("bench");
        return;
    }
    if let Err(e) = run(&o) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
