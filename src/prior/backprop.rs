//! The network's loss gradient by hand, on the engine's kernels: what the trainer runs.
//!
//! Candle's autograd (the reference, compared in `tests`) spends most of a training step outside
//! the GEMMs: each elementwise op is a separate pass and a separate dispatch, the im2col matrix
//! of every layer is materialised twice, and the input gradient goes through a scattering
//! col2im. Here the backward pass of every layer is two GEMMs over cache-sized blocks:
//!
//! - the weight gradient `dW = dA^T gather(x)` (each thread sums its blocks, then one reduction),
//!   with the bias gradient (per image: every sample has its own lambda) from the same blocks;
//! - the input gradient as a forward pass of the adjoint layer: a 3x3 convolution with the
//!   mirrored taps, an unshuffle for the pixel-shuffled up layers, a shuffle for the down layers,
//!   so no scatter ever crosses a block.
//!
//! The lambda-embedding MLP is small and done in plain loops.

use std::collections::HashMap;

use rayon::prelude::*;

use super::bf16::Products;
use super::engine::{
    compose_x, conv_forward, conv_layers, gathered_gemm, input_map, up_into, weight_grad, Conv,
    Engine, Gather, Map, Pool,
};
use super::net::sigma_f;

/// One training batch: clean images `x` and noisy `z`, planar `(N, 3, H, W)`, per-sample
/// log-SNR and loss weight. The loss is `mean_n weight_n * mean((x_hat_n - x_n)^2)`.
pub struct Batch<'a> {
    /// Clean images.
    pub x: &'a [f32],
    /// Noisy latents `alpha x + sigma eps`.
    pub z: &'a [f32],
    /// Log-SNR of each sample.
    pub lambdas: &'a [f32],
    /// Loss weight of each sample.
    pub weights: &'a [f32],
    /// Samples.
    pub n: usize,
    /// Height (a multiple of the network's stride).
    pub h: usize,
    /// Width (a multiple of the network's stride).
    pub w: usize,
}

/// Gradients by weight-file tensor name (`enc1.0.w`, `enc1.0.emb.b`, ...), row-major.
pub type Gradients = HashMap<String, Vec<f32>>;

/// Activations kept for the backward pass (every layer's output after its ReLU).
struct Acts {
    x0: Map,
    enc1: Vec<Map>,
    d1: Map,
    enc2: Vec<Map>,
    d2: Map,
    mid: Vec<Map>,
    u2: Map,
    dec2: Vec<Map>,
    u1: Map,
    dec1: Vec<Map>,
}

fn stack_forward(pool: &mut Pool, layers: &[Conv], emb: &[f32], input: &Map) -> Vec<Map> {
    let mut outs: Vec<Map> = Vec::with_capacity(layers.len());
    for l in layers {
        let x = outs.last().unwrap_or(input);
        let y = conv_forward(pool, l, emb, x, Gather::Taps3x3, true);
        outs.push(y);
    }
    outs
}

/// `dy *= (0 < y < cap)`: through a ReLU whose output was `y`, clipped at `cap` when the map
/// is fake-quantized ([`Conv::act_cap`]). A clipped value gets no gradient: the straight-through
/// estimator passing one anyway lets the float weights drift where the clip hides them, which
/// made quantization-aware training diverge.
fn relu_back(dy: &mut Map, y: &Map, cap: f32) {
    dy.data
        .par_chunks_mut(1 << 14)
        .zip(y.data.par_chunks(1 << 14))
        .for_each(|(d, y)| {
            for (d, &y) in d.iter_mut().zip(y) {
                if y <= 0.0 || y >= cap {
                    *d = 0.0;
                }
            }
        });
}

/// `ds += shuffle(du)`: `du` `(N, h, w, 4 C)` scattered to `(N, 2h, 2w, C)`.
fn shuffle_add(ds: &mut Map, du: &Map) {
    let c = ds.c;
    let (w, hh) = (du.w, du.h);
    debug_assert!(du.c == 4 * c && ds.h == 2 * hh && ds.w == 2 * w);
    ds.data
        .par_chunks_mut(ds.w * c)
        .enumerate()
        .for_each(|(r, row)| {
            // Output row r (over N 2h) comes from du row r / 2, sub-row dy = r % 2.
            let (y, dy) = (r / 2, r % 2);
            let src = &du.data[y * w * 4 * c..(y + 1) * w * 4 * c];
            for xx in 0..2 * w {
                let (x2, dx) = (xx / 2, xx % 2);
                let q = dy * 2 + dx;
                let from = &src[x2 * 4 * c + q * c..x2 * 4 * c + (q + 1) * c];
                for (d, s) in row[xx * c..(xx + 1) * c].iter_mut().zip(from) {
                    *d += s;
                }
            }
        });
}

/// Collects weight gradients and per-image bias gradients (folded into the embedding later).
struct Collector {
    grads: Gradients,
    dbias: Vec<(String, Vec<f32>)>,
}

impl Collector {
    fn layer(&mut self, name: &str, dw: Vec<f32>, db: Vec<f32>) {
        self.grads.insert(format!("{name}.w"), dw);
        self.dbias.push((name.to_string(), db));
    }
}

/// Backward through a stack of ReLU 3x3 layers: `dy` is the gradient at the last output;
/// returns the gradient at the stack's input when `need_dx`.
#[allow(clippy::too_many_arguments)]
fn stack_backward(
    pool: &mut Pool,
    col: &mut Collector,
    names: &[String],
    layers: &[Conv],
    input: &Map,
    outs: &[Map],
    mut dy: Map,
    need_dx: bool,
    products: Products,
) -> Option<Map> {
    for i in (0..layers.len()).rev() {
        relu_back(&mut dy, &outs[i], layers[i].act_cap());
        let x = if i == 0 { input } else { &outs[i - 1] };
        let (dw, db) = weight_grad(&dy, Gather::Pointwise, x, Gather::Taps3x3, products);
        col.layer(&names[i], dw, db);
        if i == 0 && !need_dx {
            return None;
        }
        let adj = layers[i].mirrored_taps();
        let dx = gathered_gemm(pool, &dy, Gather::Taps3x3, &adj, x.c, products, |_, _| {});
        pool.give(std::mem::replace(&mut dy, dx).data);
    }
    Some(dy)
}

/// Loss and its gradient with respect to every weight of `engine`'s network.
pub fn loss_and_gradients(engine: &Engine, b: &Batch) -> (f64, Gradients) {
    let cfg = engine.config();
    let (n, h, w) = (b.n, b.h, b.w);
    let s = cfg.stride();
    assert!(h % s == 0 && w % s == 0 && n > 0);
    assert!(b.x.len() == n * 3 * h * w && b.z.len() == b.x.len());
    assert!(b.lambdas.len() == n && b.weights.len() == n);
    assert!(cfg.depth.iter().chain(&cfg.up_depth).all(|&d| d > 0));
    let mut pool = Pool::default();
    let p = engine.products;
    let (feats, e1, emb) = engine.embed(b.lambdas);

    // Forward, keeping every activation.
    let x0 = input_map(&mut pool, b.z, n, h, w, b.lambdas, cfg.nonlocal);
    let enc1 = stack_forward(&mut pool, &engine.enc1, &emb, &x0);
    let s1 = enc1.last().expect("depth > 0");
    let d1 = conv_forward(&mut pool, &engine.down1, &emb, s1, Gather::Unshuffle, true);
    let enc2 = stack_forward(&mut pool, &engine.enc2, &emb, &d1);
    let s2 = enc2.last().expect("depth > 0");
    let d2 = conv_forward(&mut pool, &engine.down2, &emb, s2, Gather::Unshuffle, true);
    let mid = stack_forward(&mut pool, &engine.mid, &emb, &d2);
    let mut u2 = s2.clone();
    up_into(&engine.up2, &emb, mid.last().expect("depth > 0"), &mut u2);
    let dec2 = stack_forward(&mut pool, &engine.dec2, &emb, &u2);
    let mut u1 = s1.clone();
    up_into(&engine.up1, &emb, dec2.last().expect("depth > 0"), &mut u1);
    let dec1 = stack_forward(&mut pool, &engine.dec1, &emb, &u1);
    let last = dec1.last().expect("depth > 0");
    let v = conv_forward(&mut pool, &engine.out, &emb, last, Gather::Taps3x3, false);
    let xhat = compose_x(b.z, &v, n, h, w, b.lambdas);
    let a = Acts {
        x0,
        enc1,
        d1,
        enc2,
        d2,
        mid,
        u2,
        dec2,
        u1,
        dec1,
    };

    // Loss, and its gradient at v (N, h/2, w/2, 12).
    let per = 3 * h * w;
    let mut loss = 0f64;
    let mut dv = Map {
        data: vec![0.0; v.data.len()],
        ..v.clone()
    };
    for img in 0..n {
        let xs = &b.x[img * per..(img + 1) * per];
        let xh = &xhat[img * per..(img + 1) * per];
        let mse: f64 = xs
            .iter()
            .zip(xh)
            .map(|(&x, &y)| ((y - x) as f64).powi(2))
            .sum::<f64>()
            / per as f64;
        loss += b.weights[img] as f64 * mse / n as f64;
        // d loss / d v_full = -sigma * 2 weight (x_hat - x) / (per n)
        let k = -sigma_f(b.lambdas[img]) * 2.0 * b.weights[img] / (per * n) as f32;
        let (h2, w2) = (h / 2, w / 2);
        for c in 0..3 {
            for y in 0..h {
                for xx in 0..w {
                    let i = (c * h + y) * w + xx;
                    let at =
                        ((img * h2 + y / 2) * w2 + xx / 2) * 12 + ((y % 2) * 2 + xx % 2) * 3 + c;
                    dv.data[at] = k * (xh[i] - xs[i]);
                }
            }
        }
    }

    // Backward.
    let names: Vec<String> = conv_layers(cfg).into_iter().map(|(n, _, _)| n).collect();
    let [n1, n2, n3] = [cfg.depth[0], cfg.depth[1], cfg.depth[2]];
    let [m2, m1] = cfg.up_depth;
    let (i_down1, i_down2) = (n1, n1 + 1 + n2);
    let i_up2 = i_down2 + 1 + n3;
    let i_up1 = i_up2 + 1 + m2;
    let i_out = i_up1 + 1 + m1;
    let mut col = Collector {
        grads: HashMap::new(),
        dbias: Vec::new(),
    };

    let last = a.dec1.last().expect("depth > 0");
    let (dw, db) = weight_grad(&dv, Gather::Pointwise, last, Gather::Taps3x3, p);
    col.layer(&names[i_out], dw, db);
    let adj = engine.out.mirrored_taps();
    let dy = gathered_gemm(&mut pool, &dv, Gather::Taps3x3, &adj, last.c, p, |_, _| {});
    let du1 = stack_backward(
        &mut pool,
        &mut col,
        &names[i_up1 + 1..i_out],
        &engine.dec1,
        &a.u1,
        &a.dec1,
        dy,
        true,
        p,
    )
    .expect("need_dx");

    // u1 = relu(s1 + shuffle(up1(dec2) + b)).
    let up = |pool: &mut Pool,
              col: &mut Collector,
              name: &str,
              l: &Conv,
              mut du: Map,
              u: &Map,
              x: &Map|
     -> (Map, Map) {
        relu_back(&mut du, u, l.act_cap());
        let (dw, db) = weight_grad(&du, Gather::Unshuffle, x, Gather::Pointwise, p);
        col.layer(name, dw, db);
        let dx = gathered_gemm(pool, &du, Gather::Unshuffle, &l.w, x.c, p, |_, _| {});
        (du, dx) // du is now the gradient at the skip input
    };
    let (mut ds1, ddec2) = up(
        &mut pool,
        &mut col,
        &names[i_up1],
        &engine.up1,
        du1,
        &a.u1,
        a.dec2.last().expect("depth > 0"),
    );
    let du2 = stack_backward(
        &mut pool,
        &mut col,
        &names[i_up2 + 1..i_up1],
        &engine.dec2,
        &a.u2,
        &a.dec2,
        ddec2,
        true,
        p,
    )
    .expect("need_dx");
    let (mut ds2, dmid) = up(
        &mut pool,
        &mut col,
        &names[i_up2],
        &engine.up2,
        du2,
        &a.u2,
        a.mid.last().expect("depth > 0"),
    );
    let dd2 = stack_backward(
        &mut pool,
        &mut col,
        &names[i_down2 + 1..i_up2],
        &engine.mid,
        &a.d2,
        &a.mid,
        dmid,
        true,
        p,
    )
    .expect("need_dx");

    // d = relu(down(unshuffle(s)) + b): gradient to s is shuffle(dA W).
    let down = |pool: &mut Pool,
                col: &mut Collector,
                name: &str,
                l: &Conv,
                mut dd: Map,
                d: &Map,
                s: &Map,
                ds: &mut Map| {
        relu_back(&mut dd, d, l.act_cap());
        let (dw, db) = weight_grad(&dd, Gather::Pointwise, s, Gather::Unshuffle, p);
        col.layer(name, dw, db);
        let du = gathered_gemm(pool, &dd, Gather::Pointwise, &l.w, 4 * s.c, p, |_, _| {});
        shuffle_add(ds, &du);
    };
    down(
        &mut pool,
        &mut col,
        &names[i_down2],
        &engine.down2,
        dd2,
        &a.d2,
        a.enc2.last().expect("depth > 0"),
        &mut ds2,
    );
    let dd1 = stack_backward(
        &mut pool,
        &mut col,
        &names[i_down1 + 1..i_down2],
        &engine.enc2,
        &a.d1,
        &a.enc2,
        ds2,
        true,
        p,
    )
    .expect("need_dx");
    down(
        &mut pool,
        &mut col,
        &names[i_down1],
        &engine.down1,
        dd1,
        &a.d1,
        a.enc1.last().expect("depth > 0"),
        &mut ds1,
    );
    stack_backward(
        &mut pool,
        &mut col,
        &names[..i_down1],
        &engine.enc1,
        &a.x0,
        &a.enc1,
        ds1,
        false,
        p,
    );

    // The per-image biases come from the lambda embedding: fold them into it.
    let e = cfg.emb_dim;
    let convs: HashMap<&str, &Conv> = names
        .iter()
        .map(|s| s.as_str())
        .zip(engine.convs())
        .collect();
    let mut demb = vec![0f32; n * e];
    for (name, db) in &col.dbias {
        let l = convs[name.as_str()];
        let cout = l.cout;
        let mut gw = vec![0f32; cout * e];
        let mut gb = vec![0f32; cout];
        for img in 0..n {
            let dbi = &db[img * cout..(img + 1) * cout];
            let ei = &emb[img * e..(img + 1) * e];
            for o in 0..cout {
                gb[o] += dbi[o];
                let row = &mut gw[o * e..(o + 1) * e];
                for (g, &x) in row.iter_mut().zip(ei) {
                    *g += dbi[o] * x;
                }
                let wrow = &l.bias.w[o * e..(o + 1) * e];
                for (d, &wv) in demb[img * e..(img + 1) * e].iter_mut().zip(wrow) {
                    *d += dbi[o] * wv;
                }
            }
        }
        col.grads.insert(format!("{name}.emb.w"), gw);
        col.grads.insert(format!("{name}.emb.b"), gb);
    }
    // emb = relu(W2 e1 + b2), e1 = relu(W1 f + b1).
    let dense_back = |dy: &mut [f32], y: &[f32], x: &[f32], wmat: &[f32], cin: usize| {
        let cout = wmat.len() / cin;
        for (d, &y) in dy.iter_mut().zip(y) {
            if y <= 0.0 {
                *d = 0.0;
            }
        }
        let mut gw = vec![0f32; cout * cin];
        let mut gb = vec![0f32; cout];
        let mut dx = vec![0f32; n * cin];
        for img in 0..n {
            for o in 0..cout {
                let g = dy[img * cout + o];
                gb[o] += g;
                for j in 0..cin {
                    gw[o * cin + j] += g * x[img * cin + j];
                    dx[img * cin + j] += g * wmat[o * cin + j];
                }
            }
        }
        (gw, gb, dx)
    };
    let (gw2, gb2, mut de1) = dense_back(&mut demb, &emb, &e1, &engine.emb2.w, e);
    let (gw1, gb1, _) = dense_back(&mut de1, &e1, &feats, &engine.emb1.w, engine.emb1.cin);
    col.grads.insert("emb2.w".into(), gw2);
    col.grads.insert("emb2.b".into(), gb2);
    col.grads.insert("emb1.w".into(), gw1);
    col.grads.insert("emb1.b".into(), gb1);
    (loss, col.grads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prior::net::{alpha_f, NetConfig};
    use candle_core::{Device, Tensor};

    /// A random network's weights by name.
    fn named_weights(vm: &candle_nn::VarMap) -> HashMap<String, Vec<f32>> {
        vm.data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.flatten_all().unwrap().to_vec1().unwrap()))
            .collect()
    }

    /// Hand gradients against candle's autograd on the same random network and batch.
    /// The engine's loss and gradients against candle's autograd, within `tol` of the largest
    /// gradient of each tensor (and of the loss).
    fn compare(cfg: &NetConfig, (n, h, w): (usize, usize, usize), products: Products, tol: f32) {
        let dev = Device::Cpu;
        let (net, vm) = crate::prior::engine::tests::random_net(cfg);
        let named = named_weights(&vm);
        let per = 3 * h * w;
        let x: Vec<f32> = (0..n * per)
            .map(|i| ((i * 7919 % 2003) as f32 / 1001.0) - 1.0)
            .collect();
        let eps: Vec<f32> = (0..n * per)
            .map(|i| ((i * 104729 % 1999) as f32 / 999.0) - 1.0)
            .collect();
        let lambdas: Vec<f32> = (0..n).map(|i| -3.0 + 4.0 * i as f32).collect();
        let weights: Vec<f32> = (0..n).map(|i| 0.5 + i as f32).collect();
        let mut z = vec![0f32; n * per];
        for (img, &l) in lambdas.iter().enumerate() {
            let (a, s) = (alpha_f(l), sigma_f(l));
            for i in img * per..(img + 1) * per {
                z[i] = a * x[i] + s * eps[i];
            }
        }
        // Reference: the graph, as the old trainer computed it.
        let xt = Tensor::from_vec(x.clone(), (n, 3, h, w), &dev).unwrap();
        let zt = Tensor::from_vec(z.clone(), (n, 3, h, w), &dev).unwrap();
        let lt = Tensor::from_vec(lambdas.clone(), n, &dev).unwrap();
        let wt = Tensor::from_vec(weights.clone(), n, &dev).unwrap();
        let xhat = net.forward(&zt, &lt).unwrap();
        let mse = (xhat - xt)
            .unwrap()
            .sqr()
            .unwrap()
            .reshape((n, per))
            .unwrap()
            .mean(1)
            .unwrap();
        let loss = (mse * wt).unwrap().mean_all().unwrap();
        let want_loss = loss.to_scalar::<f32>().unwrap() as f64;
        let g = loss.backward().unwrap();

        let mut engine = Engine::from_named(cfg, |k| named[k].as_slice());
        engine.set_products(products);
        let batch = Batch {
            x: &x,
            z: &z,
            lambdas: &lambdas,
            weights: &weights,
            n,
            h,
            w,
        };
        let (got_loss, grads) = loss_and_gradients(&engine, &batch);
        assert!(
            (got_loss - want_loss).abs() <= 0.1 * tol as f64 * want_loss.abs(),
            "{got_loss} vs {want_loss}"
        );
        let data = vm.data().lock().unwrap();
        assert_eq!(grads.len(), data.len());
        for (k, v) in data.iter() {
            let want: Vec<f32> = g
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got = &grads[k];
            assert_eq!(got.len(), want.len(), "{k}");
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(scale > 0.0, "{k}: zero gradient in the reference");
            let l2 = |v: &mut dyn Iterator<Item = f32>| {
                v.map(|x| (x as f64).powi(2)).sum::<f64>().sqrt()
            };
            eprintln!(
                "REL {k} {:.2e} max {:.2e}",
                l2(&mut got.iter().zip(&want).map(|(a, b)| a - b)) / l2(&mut want.iter().copied()),
                diff / scale
            );
            assert!(
                diff <= tol * scale + 1e-7,
                "{k}: max diff {diff}, scale {scale}"
            );
        }
    }

    /// With every fake-quantized map clipped (or zero), no gradient reaches the layers before
    /// the output: only `out` and the embedding (through `out`'s bias) learn.
    #[test]
    fn clipped_maps_pass_no_gradient() {
        let cfg = NetConfig::by_name("test").unwrap();
        let named = named_weights(&crate::prior::engine::tests::random_net(&cfg).1);
        let (n, h, w) = (2, 16, 16);
        let x: Vec<f32> = (0..n * 3 * h * w)
            .map(|i| ((i * 7919 % 2003) as f32 / 1001.0) - 1.0)
            .collect();
        let z: Vec<f32> = x.iter().map(|v| 0.5 * v + 0.1).collect();
        let batch = Batch {
            x: &x,
            z: &z,
            lambdas: &[-1.0, 2.0],
            weights: &[1.0, 1.0],
            n,
            h,
            w,
        };
        let layers = crate::prior::engine::conv_layers(&cfg);
        let grads_with = |range: Option<f32>| {
            let mut engine = Engine::from_named(&cfg, |k| named[k].as_slice());
            if let Some(r) = range {
                engine.set_act_quant(&vec![r; layers.len()], &vec![255; layers.len()]);
            }
            loss_and_gradients(&engine, &batch).1
        };
        let norm = |g: &[f32]| g.iter().map(|v| v.abs()).sum::<f32>();
        // A range far below any activation clips every positive value.
        let clipped = grads_with(Some(1e-20));
        let open = grads_with(None);
        let (out, hidden) = layers.split_last().unwrap();
        for (name, _, _) in hidden {
            let k = format!("{name}.w");
            assert!(norm(&open[&k]) > 0.0, "{k}");
            assert_eq!(norm(&clipped[&k]), 0.0, "{k}");
        }
        assert!(norm(&clipped[&format!("{}.w", out.0)]) > 0.0);
    }

    /// The test networks against autograd.
    fn compare_nets(products: Products, tol: f32) {
        for (name, shape) in [
            ("test", (3, 16, 24)),
            ("test-nl", (2, 32, 40)),
            ("test-nl2", (2, 32, 40)),
            ("tiny", (2, 16, 16)),
        ] {
            compare(&NetConfig::by_name(name).unwrap(), shape, products, tol);
        }
    }

    #[test]
    fn gradients_match_autograd() {
        compare_nets(Products::F32, 1e-3);
    }

    /// bf16 products in the backward pass (8-bit mantissas, f32 sums) keep every gradient
    /// within 2% of its largest value (0.9% seen): a slip in packing or indexing would be far
    /// off.
    #[test]
    fn bf16_gradients_match_autograd() {
        if !Products::Bf16.available() {
            eprintln!("skipped: this CPU lacks AVX-512 BF16");
            return;
        }
        compare_nets(Products::Bf16, 2e-2);
    }
}
