//! Criterion benchmarks of the real code paths: shared-randomness normals, RCC candidate
//! scoring, index entropy coding, one prior forward pass on a 768x512 image (the engine, and
//! candle's graph for comparison) and one training step (16 crops of 64x64).
//!
//! `cargo bench --bench codec` (add `-- --quick` for a fast pass).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use diffc::prior::Denoiser;
use diffc::prng::{Domain, Philox};
use diffc::rcc::{self, Layout};

fn prng_normals(c: &mut Criterion) {
    let g = Philox::new(1);
    let mut row = vec![0f32; 1 << 16];
    let mut group = c.benchmark_group("prng");
    group.throughput(Throughput::Elements(row.len() as u64));
    group.bench_function("normals_row_65536", |b| {
        let mut r = 0u32;
        b.iter(|| {
            g.fill_normals_row(Domain::Pool, 0, r, &mut row);
            r = r.wrapping_add(1);
        })
    });
    group.finish();
}

fn rcc_scoring(c: &mut Criterion) {
    let g = Philox::new(2);
    // One step of a 256x256 RGB image at ~8 bits per chunk, K = 2^10 .. 2^13 candidates.
    let dims = 256 * 256 * 3;
    let mu: Vec<f32> = (0..dims)
        .map(|i| ((i * 7919) % 101) as f32 * 0.002 - 0.1)
        .collect();
    let kl = rcc::kl_bits(&mu);
    let n_chunks = ((kl / 8.0).ceil() as usize).clamp(1, dims);
    let mut group = c.benchmark_group("rcc");
    group.sample_size(10);
    for log2_k in [10u8, 12, 13] {
        let layout = Layout::new(dims, n_chunks, log2_k, 256).unwrap();
        // candidate-coordinates scored per step = K * D
        group.throughput(Throughput::Elements((layout.k() * dims) as u64));
        group.bench_with_input(
            BenchmarkId::new("encode_step_196608dims", log2_k),
            &layout,
            |b, l| b.iter(|| rcc::encode_step(&g, 0, &mu, l, rcc::Pick::Aligned).unwrap()),
        );
    }
    let layout = Layout::new(dims, n_chunks, 12, 256).unwrap();
    let enc = rcc::encode_step(&g, 0, &mu, &layout, rcc::Pick::Aligned).unwrap();
    group.throughput(Throughput::Elements(dims as u64));
    group.bench_function("decode_step_196608dims", |b| {
        b.iter(|| rcc::decode_step(&g, 0, &layout, &enc.indices).unwrap())
    });
    group.finish();
}

fn index_coding(c: &mut Criterion) {
    let g = Philox::new(3);
    let idx: Vec<u32> = (0..100_000u64)
        .map(|i| {
            let w = g.block(Domain::Arrival, 0, i);
            let e = (w[0] as f64 / 4294967296.0) * 12.0;
            (2f64.powf(e) as u32).saturating_sub(1).min(4095)
        })
        .collect();
    let words = rcc::index_coder::encode_indices(&idx, 12).unwrap();
    let mut group = c.benchmark_group("index_coding");
    group.throughput(Throughput::Elements(idx.len() as u64));
    group.bench_function("encode_100k", |b| {
        b.iter(|| rcc::index_coder::encode_indices(&idx, 12).unwrap())
    });
    group.bench_function("decode_100k", |b| {
        b.iter(|| rcc::index_coder::decode_indices(words.clone(), idx.len(), 12).unwrap())
    });
    group.finish();
}

fn prior_forward(c: &mut Criterion) {
    let model = diffc::prior::load_model(diffc::prior::DEFAULT_MODEL).unwrap();
    let z = diffc::prior::Planes {
        channels: 3,
        height: 512,
        width: 768,
        data: (0..3 * 512 * 768)
            .map(|i| ((i % 255) as f32 / 127.5) - 1.0)
            .collect(),
    };
    let mut group = c.benchmark_group("prior");
    group.sample_size(10);
    group.throughput(Throughput::Elements(512 * 768));
    group.bench_function(format!("{}_forward_768x512", model.name()), |b| {
        b.iter(|| model.predict_x(&z, 3.0).unwrap())
    });
    // The candle graph the engine replaced (the reference path), and one training step.
    let graph = diffc::prior::load_network(diffc::prior::DEFAULT_ARCH)
        .unwrap()
        .without_engine();
    group.bench_function("graph_forward_768x512", |b| {
        b.iter(|| graph.predict_x(&z, 3.0).unwrap())
    });
    let rgb = diffc::bench::synthetic_rgb(768, 512);
    let pool = diffc::data::CropPool::from_images(vec![diffc::data::Rgb8 {
        width: 768,
        height: 512,
        data: rgb,
    }])
    .unwrap();
    let cfg = graph.config().clone();
    group.throughput(Throughput::Elements(16 * 64 * 64));
    use diffc::prior::bf16::Products;
    let mut products = vec![Products::F32];
    if Products::Bf16.available() {
        products.push(Products::Bf16);
    }
    for p in products {
        group.bench_function(format!("train_step_16x64x64_{}", p.name()), |b| {
            b.iter_custom(|iters| {
                let t = diffc::train::time_train_steps(&cfg, &pool, 16, 64, 1, iters as usize, p)
                    .unwrap();
                std::time::Duration::from_secs_f64(t.iter().sum())
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    prng_normals,
    rcc_scoring,
    index_coding,
    prior_forward
);
criterion_main!(benches);
