//! The inference engine: [`DenoiserNet`]'s forward pass in plain Rust on the `gemm` crate.
//!
//! Candle's graph (kept for training and for CUDA) materialises every intermediate: the im2col
//! matrix of a whole layer, the matmul output, then the bias, the ReLU, the pixel (un)shuffle and
//! the skip addition, each a separate pass over memory. Here one layer is a loop over blocks of
//! output pixels, each block small enough to stay in the core's L2 cache:
//!
//! 1. *gather* the block's input rows into a small matrix (the 3x3 taps of im2col, the 2x2
//!    pixels of an unshuffle, or nothing for a plain 1x1 layer),
//! 2. one GEMM `(pixels, K) x (K, Cout)` into the block's output,
//! 3. an *epilogue* while the output is still in cache: bias + ReLU, or bias + pixel-shuffle +
//!    skip + ReLU straight into the skip buffer, or bias alone.
//!
//! Blocks are shared out over rayon's threads, each GEMM single-threaded: on two cores this
//! beats splitting every GEMM, and it keeps each core's working set private. Buffers live in a
//! pool reused across calls (no page faults per pass).
//!
//! The arithmetic is the graph's up to float summation order (`tests` compare the two); the
//! model id, and so the format, does not depend on which path ran.

use std::sync::Mutex;

use candle_core::Tensor;
use gemm::Parallelism;
use rayon::prelude::*;

use super::bf16::{self, PackedB, Products};
use super::net::{alpha_f, lambda_features, sigma_f, DenoiserNet, NetConfig};
use super::nonlocal::{block_mean, input_channels, NonLocal};

/// Bytes of gathered input one block may hold (a block is at least 16 pixels).
const BLOCK_BYTES: usize = 96 << 10;

/// A dense layer `y = W x + b`, `w` row-major `(out, in)`.
pub(crate) struct Dense {
    pub(crate) w: Vec<f32>,
    pub(crate) b: Vec<f32>,
    pub(crate) cin: usize,
}

impl Dense {
    /// `y = W x + b` for each of the rows of `x` (`rows x cin`), `rows x out` out.
    pub(crate) fn apply(&self, x: &[f32]) -> Vec<f32> {
        x.chunks(self.cin)
            .flat_map(|x| {
                self.w
                    .chunks(self.cin)
                    .zip(&self.b)
                    .map(move |(row, b)| row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + b)
            })
            .collect()
    }
}

/// How a layer reads its input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Gather {
    /// 3x3 taps, zero padding: column `k Cin + c` is channel `c` at offset `(k/3 - 1, k%3 - 1)`.
    Taps3x3,
    /// 2x2 pixel-unshuffle of an input twice the size: column `(dy 2 + dx) Cin + c`.
    Unshuffle,
    /// The input rows themselves (a 1x1 layer).
    Pointwise,
}

impl Gather {
    /// Values per output pixel when reading a map of `c` channels.
    pub(crate) fn width(self, c: usize) -> usize {
        match self {
            Gather::Taps3x3 => 9 * c,
            Gather::Unshuffle => 4 * c,
            Gather::Pointwise => c,
        }
    }

    /// Output size `(H, W)` for an input of `(h, w)`.
    pub(crate) fn out_size(self, h: usize, w: usize) -> (usize, usize) {
        match self {
            Gather::Unshuffle => (h / 2, w / 2),
            _ => (h, w),
        }
    }
}

/// One convolution: weights `(Cout, K)` as stored, transposed `(K, Cout)` for the forward GEMM,
/// and its lambda-bias layer.
pub(crate) struct Conv {
    pub(crate) w: Vec<f32>,
    pub(crate) wt: Vec<f32>,
    pub(crate) k: usize,
    pub(crate) cout: usize,
    pub(crate) bias: Dense,
    /// Quantization-aware training: round the map this layer writes (after ReLU) to
    /// `scale` times an integer in `0..=amax`, as the integer network will (`None`: float).
    pub(crate) act_quant: Option<ActQuant>,
}

/// The grid an activation map is fake-quantized to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ActQuant {
    pub(crate) scale: f32,
    pub(crate) amax: f32,
}

impl ActQuant {
    #[inline]
    fn apply(self, v: f32) -> f32 {
        (v / self.scale).round().min(self.amax) * self.scale
    }

    /// The largest value [`apply`](Self::apply) returns.
    fn cap(self) -> f32 {
        self.amax * self.scale
    }
}

impl Conv {
    /// Where this layer's output map is clipped (infinite unless fake-quantized).
    pub(crate) fn act_cap(&self) -> f32 {
        self.act_quant.map_or(f32::INFINITY, ActQuant::cap)
    }

    pub(crate) fn new(w: Vec<f32>, cout: usize, bias: Dense) -> Conv {
        let k = w.len() / cout;
        let mut wt = vec![0f32; w.len()];
        for o in 0..cout {
            for j in 0..k {
                wt[j * cout + o] = w[o * k + j];
            }
        }
        Conv {
            w,
            wt,
            k,
            cout,
            bias,
            act_quant: None,
        }
    }

    fn from_graph(w: &Tensor, bias_w: &Tensor, bias_b: &Tensor) -> candle_core::Result<Conv> {
        let (cout, _) = w.dims2()?;
        let (_, cin) = bias_w.dims2()?;
        Ok(Conv::new(
            w.flatten_all()?.to_vec1::<f32>()?,
            cout,
            Dense {
                w: bias_w.flatten_all()?.to_vec1()?,
                b: bias_b.to_vec1()?,
                cin,
            },
        ))
    }

    /// The weights of the adjoint 3x3 convolution as a `(9 Cout, Cin)` GEMM operand: row
    /// `k Cout + o`, column `c` holds `w[o][(8 - k) Cin + c]` (the taps mirrored).
    pub(crate) fn mirrored_taps(&self) -> Vec<f32> {
        let cin = self.k / 9;
        let mut m = vec![0f32; self.w.len()];
        for k in 0..9 {
            for o in 0..self.cout {
                let src = &self.w[o * self.k + (8 - k) * cin..o * self.k + (9 - k) * cin];
                m[(k * self.cout + o) * cin..(k * self.cout + o + 1) * cin].copy_from_slice(src);
            }
        }
        m
    }
}

/// A batch of activation maps `(N, H, W, C)`, channels last.
#[derive(Clone)]
pub(crate) struct Map {
    pub(crate) n: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) c: usize,
    pub(crate) data: Vec<f32>,
}

/// Buffers kept between calls.
#[derive(Default)]
pub(crate) struct Pool(Vec<Vec<f32>>);

impl Pool {
    /// A buffer of exactly `len` values (contents unspecified: every user overwrites it).
    pub(crate) fn take(&mut self, len: usize) -> Vec<f32> {
        let mut v = match self.0.iter().position(|b| b.capacity() >= len) {
            Some(i) => self.0.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        v.resize(len, 0.0);
        v
    }

    pub(crate) fn give(&mut self, v: Vec<f32>) {
        self.0.push(v);
    }
}

/// The network compiled for CPU inference. See the module documentation.
pub struct Engine {
    pub(crate) cfg: NetConfig,
    pub(crate) emb1: Dense,
    pub(crate) emb2: Dense,
    pub(crate) enc1: Vec<Conv>,
    pub(crate) down1: Conv,
    pub(crate) enc2: Vec<Conv>,
    pub(crate) down2: Conv,
    pub(crate) mid: Vec<Conv>,
    pub(crate) up2: Conv,
    pub(crate) dec2: Vec<Conv>,
    pub(crate) up1: Conv,
    pub(crate) dec1: Vec<Conv>,
    pub(crate) out: Conv,
    /// How the trainer's backward pass multiplies (every forward pass is f32).
    pub(crate) products: Products,
    pool: Mutex<Pool>,
}

/// Names of a network's layers in forward order, as in its weight files (`NAME.w`,
/// `NAME.emb.w`, `NAME.emb.b`), with `(K, Cout)` of each.
pub(crate) fn conv_layers(cfg: &NetConfig) -> Vec<(String, usize, usize)> {
    let [c1, c2, c3] = cfg.channels;
    let mut v = Vec::new();
    let stack = |v: &mut Vec<_>, name: &str, cin: usize, c: usize, n: usize| {
        for i in 0..n {
            v.push((format!("{name}.{i}"), 9 * if i == 0 { cin } else { c }, c));
        }
    };
    stack(&mut v, "enc1", cfg.in_channels(), c1, cfg.depth[0]);
    v.push(("down1".into(), 4 * c1, c2));
    stack(&mut v, "enc2", c2, c2, cfg.depth[1]);
    v.push(("down2".into(), 4 * c2, c3));
    stack(&mut v, "mid", c3, c3, cfg.depth[2]);
    v.push(("up2".into(), c3, 4 * c2));
    stack(&mut v, "dec2", c2, c2, cfg.up_depth[0]);
    v.push(("up1".into(), c2, 4 * c1));
    stack(&mut v, "dec1", c1, c1, cfg.up_depth[1]);
    v.push(("out".into(), 9 * c1, 12));
    v
}

impl Engine {
    /// Copy the weights of a network (on any device) into an engine.
    pub fn new(net: &DenoiserNet) -> candle_core::Result<Engine> {
        let dense = |d: &super::net::Dense| -> candle_core::Result<Dense> {
            let (_, cin) = d.w.dims2()?;
            Ok(Dense {
                w: d.w.flatten_all()?.to_vec1()?,
                b: d.b.to_vec1()?,
                cin,
            })
        };
        let conv = |c: &super::net::Conv| Conv::from_graph(&c.w, &c.bias.w, &c.bias.b);
        let stack = |s: &[super::net::Conv]| s.iter().map(conv).collect::<candle_core::Result<_>>();
        let p = net.parts();
        Ok(Engine {
            cfg: net.config().clone(),
            emb1: dense(p.emb1)?,
            emb2: dense(p.emb2)?,
            enc1: stack(p.enc1)?,
            down1: conv(p.down1)?,
            enc2: stack(p.enc2)?,
            down2: conv(p.down2)?,
            mid: stack(p.mid)?,
            up2: conv(p.up2)?,
            dec2: stack(p.dec2)?,
            up1: conv(p.up1)?,
            dec1: stack(p.dec1)?,
            out: conv(p.out)?,
            products: Products::F32,
            pool: Mutex::new(Pool::default()),
        })
    }

    /// Build from named weights (`get(name)` returns the row-major values of a weight file's
    /// tensor `name`), e.g. the trainer's flat parameters.
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn from_named<'a>(cfg: &NetConfig, get: impl Fn(&str) -> &'a [f32]) -> Engine {
        let e = cfg.emb_dim;
        let ne = 2 * cfg.n_freq + 1;
        let dense = |name: &str, cin: usize| Dense {
            w: get(&format!("{name}.w")).to_vec(),
            b: get(&format!("{name}.b")).to_vec(),
            cin,
        };
        let mut convs = conv_layers(cfg).into_iter().map(|(name, _, cout)| {
            Conv::new(
                get(&format!("{name}.w")).to_vec(),
                cout,
                dense(&format!("{name}.emb"), e),
            )
        });
        let mut take = |n: usize| {
            (0..n)
                .map(|_| convs.next().expect("layer"))
                .collect::<Vec<_>>()
        };
        let enc1 = take(cfg.depth[0]);
        let down1 = take(1).remove(0);
        let enc2 = take(cfg.depth[1]);
        let down2 = take(1).remove(0);
        let mid = take(cfg.depth[2]);
        let up2 = take(1).remove(0);
        let dec2 = take(cfg.up_depth[0]);
        let up1 = take(1).remove(0);
        let dec1 = take(cfg.up_depth[1]);
        let out = take(1).remove(0);
        Engine {
            cfg: cfg.clone(),
            emb1: dense("emb1", ne),
            emb2: dense("emb2", e),
            enc1,
            down1,
            enc2,
            down2,
            mid,
            up2,
            dec2,
            up1,
            dec1,
            out,
            products: Products::F32,
            pool: Mutex::new(Pool::default()),
        }
    }

    /// The architecture.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// Make the trainer's backward pass multiply with `products` (which must be available).
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn set_products(&mut self, products: Products) {
        assert!(
            products.available(),
            "{} products need a CPU that has them",
            products.name()
        );
        self.products = products;
    }

    /// Fake-quantize every layer's output map to `ranges[i] / amax[i]` times `0..=amax[i]`
    /// (quantization-aware training; `conv_layers` order, the output layer is left alone).
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn set_act_quant(&mut self, ranges: &[f32], amax: &[i32]) {
        let mut convs: Vec<&mut Conv> = self.enc1.iter_mut().collect();
        convs.push(&mut self.down1);
        convs.extend(self.enc2.iter_mut());
        convs.push(&mut self.down2);
        convs.extend(self.mid.iter_mut());
        convs.push(&mut self.up2);
        convs.extend(self.dec2.iter_mut());
        convs.push(&mut self.up1);
        convs.extend(self.dec1.iter_mut());
        let n = convs.len();
        for ((c, &r), &a) in convs.into_iter().zip(ranges).zip(amax).take(n) {
            let a = a as f32;
            c.act_quant = (r > 0.0 && a > 0.0).then_some(ActQuant {
                scale: r / a,
                amax: a,
            });
        }
    }

    /// The convolutions in forward order (the order of [`conv_layers`]).
    pub(crate) fn convs(&self) -> Vec<&Conv> {
        let mut v: Vec<&Conv> = self.enc1.iter().collect();
        v.push(&self.down1);
        v.extend(&self.enc2);
        v.push(&self.down2);
        v.extend(&self.mid);
        v.push(&self.up2);
        v.extend(&self.dec2);
        v.push(&self.up1);
        v.extend(&self.dec1);
        v.push(&self.out);
        v
    }

    /// The lambda embeddings `(N, emb_dim)` and the first MLP layer's output (for backprop).
    pub(crate) fn embed(&self, lambdas: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let feats = lambda_features(lambdas, self.cfg.n_freq);
        let relu = |v: Vec<f32>| v.into_iter().map(|x| x.max(0.0)).collect::<Vec<_>>();
        let e1 = relu(self.emb1.apply(&feats));
        let emb = relu(self.emb2.apply(&e1));
        (feats, e1, emb)
    }

    /// Predict `x_hat` from `z`, both planar `(3, H, W)`, at log-SNR `lambda`. `H` and `W` must
    /// be non-zero multiples of [`NetConfig::stride`].
    pub fn predict_x(&self, z: &[f32], h: usize, w: usize, lambda: f32) -> Vec<f32> {
        let s = self.cfg.stride();
        assert!(
            h.is_multiple_of(s) && w.is_multiple_of(s) && h > 0 && w > 0 && z.len() == 3 * h * w
        );
        let mut pool = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
        let (_, _, emb) = self.embed(&[lambda]);
        let mut x = input_map(&mut pool, z, 1, h, w, &[lambda], self.cfg.nonlocal);

        let run = |pool: &mut Pool, x: Map, layers: &[Conv]| -> Map {
            layers.iter().fold(x, |x, l| {
                let y = conv(pool, l, &emb, &x, Gather::Taps3x3, true);
                pool.give(x.data);
                y
            })
        };
        x = run(&mut pool, x, &self.enc1);
        let mut s1 = x;
        let x = conv(&mut pool, &self.down1, &emb, &s1, Gather::Unshuffle, true);
        let x = run(&mut pool, x, &self.enc2);
        let mut s2 = x;
        let x = conv(&mut pool, &self.down2, &emb, &s2, Gather::Unshuffle, true);
        let x = run(&mut pool, x, &self.mid);
        up_into(&self.up2, &emb, &x, &mut s2);
        pool.give(x.data);
        let x = run(&mut pool, s2, &self.dec2);
        up_into(&self.up1, &emb, &x, &mut s1);
        pool.give(x.data);
        let x = run(&mut pool, s1, &self.dec1);
        let v = conv(&mut pool, &self.out, &emb, &x, Gather::Taps3x3, false);
        pool.give(x.data);
        let out = compose_x(z, &v, 1, h, w, &[lambda]);
        pool.give(v.data);
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = pool;
        out
    }
}

/// The network's input at half resolution: 12 unshuffled channels of `z` (planar
/// `(N, 3, H, W)`), the two noise-level planes, and with block matching ([`NonLocal`]) 12
/// unshuffled channels of each of `z`'s block-matched means.
pub(crate) fn input_map(
    pool: &mut Pool,
    z: &[f32],
    n: usize,
    h: usize,
    w: usize,
    lambdas: &[f32],
    nl: Option<NonLocal>,
) -> Map {
    let (h2, w2) = (h / 2, w / 2);
    let matched = nl.map_or_else(Vec::new, |nl| block_mean(z, n, h, w, nl));
    let c = input_channels(nl);
    let mut data = pool.take(n * h2 * w2 * c);
    data.par_chunks_mut(w2 * c)
        .enumerate()
        .for_each(|(r, row)| {
            let (img, y) = (r / h2, r % h2);
            let l = lambdas[img];
            let planes = [l / 12.0, (1.0 / (1.0 + (l as f64).exp())) as f32];
            let at = img * 3 * h * w..(img + 1) * 3 * h * w;
            let zi = &z[at.clone()];
            for (xx, px) in row.chunks_mut(c).enumerate() {
                for dy in 0..2 {
                    for dx in 0..2 {
                        for ch in 0..3 {
                            let i = (ch * h + 2 * y + dy) * w + 2 * xx + dx;
                            px[(dy * 2 + dx) * 3 + ch] = zi[i];
                            for (j, m) in matched.iter().enumerate() {
                                px[14 + 12 * j + (dy * 2 + dx) * 3 + ch] = m[at.start + i];
                            }
                        }
                    }
                }
                px[12..14].copy_from_slice(&planes);
            }
        });
    Map {
        n,
        h: h2,
        w: w2,
        c,
        data,
    }
}

/// `x_hat = alpha z - sigma v`, `v` pixel-shuffled from `(N, H/2, W/2, 12)` to planar
/// `(N, 3, H, W)`.
pub(crate) fn compose_x(
    z: &[f32],
    v: &Map,
    n: usize,
    h: usize,
    w: usize,
    lambdas: &[f32],
) -> Vec<f32> {
    let mut out = vec![0f32; n * 3 * h * w];
    let w2 = w / 2;
    out.par_chunks_mut(w).enumerate().for_each(|(r, row)| {
        let (img, c, y) = (r / (3 * h), (r / h) % 3, r % h);
        let (a, sg) = (alpha_f(lambdas[img]), sigma_f(lambdas[img]));
        let (y2, dy) = (y / 2, y % 2);
        let zr = &z[r * w..(r + 1) * w];
        let vrow = &v.data[(img * (h / 2) + y2) * w2 * 12..(img * (h / 2) + y2 + 1) * w2 * 12];
        for (xx, o) in row.iter_mut().enumerate() {
            let vv = vrow[(xx / 2) * 12 + (dy * 2 + xx % 2) * 3 + c];
            *o = zr[xx] * a - vv * sg;
        }
    });
    out
}

/// Per-image bias `(N, Cout)` of a layer at these embeddings `(N, emb_dim)`.
pub(crate) fn layer_bias(l: &Conv, emb: &[f32]) -> Vec<f32> {
    l.bias.apply(emb)
}

/// `dst (m, n) = lhs (m, k) x rhs (k, n)`, all row-major and dense, single-threaded.
pub(crate) fn gemm_rows(dst: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    // SAFETY: the three slices hold the (m, n), (m, k) and (k, n) row-major matrices described
    // by the strides below (checked above), and `dst` does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// `dst (n, k) += a^T b` for `a` `(m, n)` and `b` `(m, k)` row-major: the weight gradient.
fn gemm_at_b(dst: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize) {
    assert!(dst.len() >= n * k && a.len() >= m * n && b.len() >= m * k);
    // SAFETY: as in `gemm_rows`; `a` is read transposed through its strides.
    unsafe {
        gemm::gemm(
            n,
            k,
            m,
            dst.as_mut_ptr(),
            1,
            k as isize,
            true,
            a.as_ptr(),
            n as isize,
            1,
            b.as_ptr(),
            1,
            k as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// Pixels per block for a layer reading `k` values per pixel.
fn block_pixels(k: usize) -> usize {
    (BLOCK_BYTES / (4 * k)).max(16)
}

/// Gather the input rows of output pixels `p0 .. p0 + rows.len() / width` (pixels numbered
/// over the output's `(N, oh, ow)`).
fn gather(g: Gather, x: &Map, p0: usize, rows: &mut [f32]) {
    gather_rows(g, (x.h, x.w, x.c), &x.data, p0, rows)
}

/// [`gather`] for any element type: `data` holds `(N, H, W, C)` maps with `shape = (H, W, C)`.
/// The integer network gathers its `i16` maps with it too.
pub(crate) fn gather_rows<T: Copy + Default>(
    g: Gather,
    shape: (usize, usize, usize),
    data: &[T],
    p0: usize,
    rows: &mut [T],
) {
    let (xh, xw, c) = shape;
    let (oh, ow) = g.out_size(xh, xw);
    match g {
        Gather::Taps3x3 => {
            let (h, w) = (xh as isize, xw as isize);
            for (i, r) in rows.chunks_mut(9 * c).enumerate() {
                let p = p0 + i;
                let (img, q) = (p / (oh * ow), p % (oh * ow));
                let (y, xx) = ((q / ow) as isize, (q % ow) as isize);
                let base = img * xh * xw;
                // Each row of taps is three neighbouring pixels: one copy away from the edges.
                for (dy, d3) in r.chunks_mut(3 * c).enumerate() {
                    let sy = y + dy as isize - 1;
                    if sy < 0 || sy >= h {
                        d3.fill(T::default());
                    } else if xx >= 1 && xx + 1 < w {
                        let at = (base + (sy * w + xx - 1) as usize) * c;
                        d3.copy_from_slice(&data[at..at + 3 * c]);
                    } else {
                        for (dx, d) in d3.chunks_mut(c).enumerate() {
                            let sx = xx + dx as isize - 1;
                            if sx < 0 || sx >= w {
                                d.fill(T::default());
                            } else {
                                let at = (base + (sy * w + sx) as usize) * c;
                                d.copy_from_slice(&data[at..at + c]);
                            }
                        }
                    }
                }
            }
        }
        Gather::Unshuffle => {
            // Image rows stack, so output row r (over N oh) reads input rows 2r and 2r + 1.
            for (i, r) in rows.chunks_mut(4 * c).enumerate() {
                let p = p0 + i;
                let (y, xx) = (p / ow, p % ow);
                for (k, d) in r.chunks_mut(c).enumerate() {
                    let at = ((2 * y + k / 2) * xw + 2 * xx + k % 2) * c;
                    d.copy_from_slice(&data[at..at + c]);
                }
            }
        }
        Gather::Pointwise => {
            rows.copy_from_slice(&data[p0 * c..p0 * c + rows.len()]);
        }
    }
}

/// A GEMM's right operand `(K, n)`, as its products need it.
enum Rhs<'a> {
    F32 { w: &'a [f32], k: usize, n: usize },
    Bf16(PackedB),
}

impl<'a> Rhs<'a> {
    fn new(w: &'a [f32], k: usize, n: usize, products: Products) -> Rhs<'a> {
        match products {
            Products::F32 => Rhs::F32 { w, k, n },
            Products::Bf16 => Rhs::Bf16(PackedB::from_rows(w, k, n)),
        }
    }

    /// `dst (m, n) = lhs (m, K) x rhs`; `pairs` is scratch for bf16 operands.
    fn gemm(&self, dst: &mut [f32], lhs: &[f32], m: usize, pairs: &mut Vec<u32>) {
        match self {
            Rhs::F32 { w, k, n } => gemm_rows(dst, lhs, w, m, *k, *n),
            Rhs::Bf16(b) => {
                bf16::pack_rows(lhs, m, b.k(), pairs);
                bf16::gemm(dst, pairs, m, b, false);
            }
        }
    }
}

/// Per-thread buffers of a layer's blocks.
#[derive(Default)]
struct Scratch {
    rows: Vec<f32>,
    pairs: Vec<u32>,
}

/// `gather(x) x rhs` with `rhs` `(K, n)`, then `epilogue(first pixel, block)` on each block of
/// the `(N, oh, ow, n)` result while it is in cache.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gathered_gemm(
    pool: &mut Pool,
    x: &Map,
    g: Gather,
    rhs: &[f32],
    n: usize,
    products: Products,
    epilogue: impl Fn(usize, &mut [f32]) + Sync,
) -> Map {
    let (oh, ow) = g.out_size(x.h, x.w);
    let k = g.width(x.c);
    assert_eq!(rhs.len(), k * n, "GEMM operand has the wrong size");
    let bp = block_pixels(k);
    let mut data = pool.take(x.n * oh * ow * n);
    let rhs = Rhs::new(rhs, k, n, products);
    data.par_chunks_mut(bp * n).enumerate().for_each_init(
        Scratch::default,
        |s: &mut Scratch, (bi, out)| {
            let m = out.len() / n;
            let p0 = bi * bp;
            if g == Gather::Pointwise {
                rhs.gemm(out, &x.data[p0 * k..(p0 + m) * k], m, &mut s.pairs);
            } else {
                s.rows.resize(m * k, 0.0);
                gather(g, x, p0, &mut s.rows);
                rhs.gemm(out, &s.rows, m, &mut s.pairs);
            }
            epilogue(p0, out);
        },
    );
    Map {
        n: x.n,
        h: oh,
        w: ow,
        c: n,
        data,
    }
}

/// One layer: `(N, oh, ow, Cout)` out, per-image bias, and ReLU when `relu`.
fn conv(pool: &mut Pool, l: &Conv, emb: &[f32], x: &Map, g: Gather, relu: bool) -> Map {
    assert_eq!(l.k, g.width(x.c), "layer expects {} inputs per pixel", l.k);
    let bias = layer_bias(l, emb);
    let n = l.cout;
    let (oh, ow) = g.out_size(x.h, x.w);
    let per_image = oh * ow;
    let q = l.act_quant.filter(|_| relu);
    gathered_gemm(pool, x, g, &l.wt, n, Products::F32, |p0, out| {
        for (i, px) in out.chunks_mut(n).enumerate() {
            let img = (p0 + i) / per_image;
            let b = &bias[img * n..(img + 1) * n];
            for (o, b) in px.iter_mut().zip(b) {
                *o = if relu { (*o + b).max(0.0) } else { *o + b };
                if let Some(q) = q {
                    *o = q.apply(*o);
                }
            }
        }
    })
}

/// Forward of one layer for the trainer (same as inference, with the batch's biases).
pub(crate) fn conv_forward(
    pool: &mut Pool,
    l: &Conv,
    emb: &[f32],
    x: &Map,
    g: Gather,
    relu: bool,
) -> Map {
    conv(pool, l, emb, x, g, relu)
}

/// `skip = relu(skip + shuffle(l(x) + bias))`: a 1x1 layer to `4 C` channels, pixel-shuffled
/// to twice the size and added to the skip connection in place.
pub(crate) fn up_into(l: &Conv, emb: &[f32], x: &Map, skip: &mut Map) {
    let (k, n, c) = (l.k, l.cout, skip.c);
    assert!(k == x.c && n == 4 * c && skip.h == 2 * x.h && skip.w == 2 * x.w && skip.n == x.n);
    let bias = layer_bias(l, emb);
    let w = x.w;
    // One input row of x (over N h) makes two output rows of skip.
    skip.data
        .par_chunks_mut(2 * skip.w * c)
        .enumerate()
        .for_each_init(Vec::new, |out: &mut Vec<f32>, (y, sk)| {
            let img = y / x.h;
            let bias = &bias[img * n..(img + 1) * n];
            out.resize(w * n, 0.0);
            gemm_rows(out, &x.data[y * w * k..(y + 1) * w * k], &l.wt, w, k, n);
            for (xx, px) in out.chunks(n).enumerate() {
                for dy in 0..2 {
                    for dx in 0..2 {
                        let q = dy * 2 + dx;
                        let at = (dy * 2 * w + 2 * xx + dx) * c;
                        let s = &mut sk[at..at + c];
                        let v = &px[q * c..(q + 1) * c];
                        let b = &bias[q * c..(q + 1) * c];
                        for ((s, v), b) in s.iter_mut().zip(v).zip(b) {
                            *s = (*s + (v + b)).max(0.0);
                            if let Some(q) = l.act_quant {
                                *s = q.apply(*s);
                            }
                        }
                    }
                }
            }
        });
}

/// The weight gradient `dW (n, K) = sum over pixels of ga(a)^T gb(b)` and the per-image column
/// sums of `ga(a)` (`(N, n)`, the bias gradient), where `ga(a)` has `n` and `gb(b)` has `K`
/// values per output pixel.
pub(crate) fn weight_grad(
    a: &Map,
    ga: Gather,
    b: &Map,
    gb: Gather,
    products: Products,
) -> (Vec<f32>, Vec<f32>) {
    let (n, k) = (ga.width(a.c), gb.width(b.c));
    let (oh, ow) = ga.out_size(a.h, a.w);
    assert_eq!((oh, ow), gb.out_size(b.h, b.w));
    let (imgs, per_image) = (a.n, oh * ow);
    let total = imgs * per_image;
    let bp = block_pixels(n.max(k)) * 2;
    let blocks = total.div_ceil(bp);
    /// One thread's partial sums and buffers.
    struct Part {
        dw: Vec<f32>,
        db: Vec<f32>,
        ra: Vec<f32>,
        rb: Vec<f32>,
        pairs: Vec<u32>,
        packed: PackedB,
    }
    let part = || Part {
        dw: vec![0f32; n * k],
        db: vec![0f32; imgs * n],
        ra: Vec::new(),
        rb: Vec::new(),
        pairs: Vec::new(),
        packed: PackedB::default(),
    };
    let sum = (0..blocks)
        .into_par_iter()
        .fold(part, |mut s, bi| {
            let p0 = bi * bp;
            let m = bp.min(total - p0);
            s.ra.resize(m * n, 0.0);
            s.rb.resize(m * k, 0.0);
            gather(ga, a, p0, &mut s.ra);
            gather(gb, b, p0, &mut s.rb);
            match products {
                Products::F32 => gemm_at_b(&mut s.dw, &s.ra, &s.rb, m, n, k),
                Products::Bf16 => {
                    bf16::pack_transposed(&s.ra, m, n, &mut s.pairs);
                    s.packed.repack(&s.rb, m, k);
                    bf16::gemm(&mut s.dw, &s.pairs, n, &s.packed, true);
                }
            }
            for (i, row) in s.ra.chunks(n).enumerate() {
                let img = (p0 + i) / per_image;
                for (d, v) in s.db[img * n..(img + 1) * n].iter_mut().zip(row) {
                    *d += v;
                }
            }
            s
        })
        .reduce(part, |mut x, y| {
            x.dw.iter_mut().zip(&y.dw).for_each(|(a, b)| *a += b);
            x.db.iter_mut().zip(&y.db).for_each(|(a, b)| *a += b);
            x
        });
    (sum.dw, sum.db)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    /// A network with random weights everywhere (including the zero-initialised output layer
    /// and the lambda biases), so every path of the engine is exercised; also its weights by
    /// name. Scaled to keep activations O(1) through the depth.
    ///
    /// The weights are the same on every run (seeded by each tensor's name): with fresh ones
    /// per run, a pre-activation that happens to sit at a ReLU's kink rounds to different
    /// sides in the engine and in candle once in a while, and one flipped pixel of a 4×4 map
    /// moved a gradient by 4% (seen once in CI, on `tiny`'s `mid.0.w`).
    pub(crate) fn random_net(cfg: &NetConfig) -> (DenoiserNet, VarMap) {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let net = DenoiserNet::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), cfg).unwrap();
        for (name, v) in vm.data().lock().unwrap().iter() {
            let g = crate::prng::Philox::new(crate::prior::fnv1a64(name.as_bytes()));
            let normals: Vec<f32> = (0..v.elem_count().div_ceil(2) as u64)
                .flat_map(|i| g.normal_pair(crate::prng::Domain::Pool, 0, i))
                .take(v.elem_count())
                .map(|x| x as f32)
                .collect();
            let t = Tensor::from_vec(normals, v.shape(), &dev).unwrap();
            let fan_in = *v.shape().dims().last().unwrap() as f64;
            let scale: f64 = if v.rank() == 1 {
                0.1
            } else {
                (1.5 / fan_in).sqrt()
            };
            v.set(&(t * scale).unwrap()).unwrap();
        }
        (net, vm)
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn compare(cfg: &NetConfig, h: usize, w: usize) {
        let (net, _) = random_net(cfg);
        let eng = Engine::new(&net).unwrap();
        let z: Vec<f32> = (0..3 * h * w)
            .map(|i| ((i * 7919 % 2003) as f32 / 1001.0 - 1.0) * 1.3)
            .collect();
        for lambda in [-4.0f32, 0.3, 6.0] {
            let zt = Tensor::from_vec(z.clone(), (1, 3, h, w), &Device::Cpu).unwrap();
            let lt = Tensor::from_vec(vec![lambda], 1, &Device::Cpu).unwrap();
            let want: Vec<f32> = net
                .forward(&zt, &lt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got = eng.predict_x(&z, h, w, lambda);
            let d = max_diff(&got, &want);
            assert!(d <= 1e-4, "{cfg:?} {h}x{w} lambda {lambda}: max diff {d}");
            // The output really depends on the network (not just alpha z).
            let a = alpha_f(lambda);
            let plain: Vec<f32> = z.iter().map(|v| v * a).collect();
            assert!(max_diff(&got, &plain) > 1e-2);
            // Reused buffers give the same answer.
            assert_eq!(eng.predict_x(&z, h, w, lambda), got);
        }
    }

    #[test]
    fn matches_graph_on_random_weights() {
        compare(&NetConfig::by_name("test").unwrap(), 24, 40);
        compare(&NetConfig::by_name("test-nl").unwrap(), 32, 48);
        compare(&NetConfig::by_name("test-nl2").unwrap(), 32, 48);
        compare(&NetConfig::by_name("tiny").unwrap(), 48, 72);
    }
}
