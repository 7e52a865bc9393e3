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

use super::net::{alpha_f, lambda_features, sigma_f, DenoiserNet, NetConfig};

/// Bytes of gathered input one block may hold (a block is at least 16 pixels).
const BLOCK_BYTES: usize = 96 << 10;

/// A dense layer `y = W x + b`, `w` row-major `(out, in)`.
struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
    cin: usize,
}

impl Dense {
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        self.w
            .chunks(self.cin)
            .zip(&self.b)
            .map(|(row, b)| row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + b)
            .collect()
    }
}

/// How a layer reads its input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gather {
    /// 3x3 taps, zero padding: column `k Cin + c` is channel `c` at offset `(k/3 - 1, k%3 - 1)`.
    Taps3x3,
    /// 2x2 pixel-unshuffle of an input twice the size: column `(dy 2 + dx) Cin + c`.
    Unshuffle,
}

/// One convolution: weights transposed to `(K, Cout)` for the GEMM, plus its lambda-bias layer.
struct Conv {
    wt: Vec<f32>,
    k: usize,
    cout: usize,
    bias: Dense,
}

impl Conv {
    fn from_graph(w: &Tensor, bias_w: &Tensor, bias_b: &Tensor) -> candle_core::Result<Conv> {
        let (cout, k) = w.dims2()?;
        let wt = w.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let (_, cin) = bias_w.dims2()?;
        Ok(Conv {
            wt,
            k,
            cout,
            bias: Dense {
                w: bias_w.flatten_all()?.to_vec1()?,
                b: bias_b.to_vec1()?,
                cin,
            },
        })
    }
}

/// An activation map `(H, W, C)`, channels last.
struct Map {
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

/// Buffers kept between calls.
#[derive(Default)]
struct Pool(Vec<Vec<f32>>);

impl Pool {
    /// A buffer of exactly `len` values (contents unspecified: every user overwrites it).
    fn take(&mut self, len: usize) -> Vec<f32> {
        let mut v = match self.0.iter().position(|b| b.capacity() >= len) {
            Some(i) => self.0.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        v.resize(len, 0.0);
        v
    }

    fn give(&mut self, v: Vec<f32>) {
        self.0.push(v);
    }
}

/// The network compiled for CPU inference. See the module documentation.
pub struct Engine {
    cfg: NetConfig,
    emb1: Dense,
    emb2: Dense,
    enc1: Vec<Conv>,
    down1: Conv,
    enc2: Vec<Conv>,
    down2: Conv,
    mid: Vec<Conv>,
    up2: Conv,
    dec2: Vec<Conv>,
    up1: Conv,
    dec1: Vec<Conv>,
    out: Conv,
    pool: Mutex<Pool>,
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
            pool: Mutex::new(Pool::default()),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// Predict `x_hat` from `z`, both planar `(3, H, W)`, at log-SNR `lambda`. `H` and `W` must
    /// be non-zero multiples of [`NetConfig::stride`].
    pub fn predict_x(&self, z: &[f32], h: usize, w: usize, lambda: f32) -> Vec<f32> {
        let s = self.cfg.stride();
        assert!(h % s == 0 && w % s == 0 && h > 0 && w > 0 && z.len() == 3 * h * w);
        let mut pool = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));

        let feats = lambda_features(&[lambda], self.cfg.n_freq);
        let relu = |v: Vec<f32>| v.into_iter().map(|x| x.max(0.0)).collect::<Vec<_>>();
        let emb = relu(self.emb2.apply(&relu(self.emb1.apply(&feats))));

        // Half resolution: 12 unshuffled channels of z and the two noise-level planes.
        let (h2, w2) = (h / 2, w / 2);
        let mut x = Map {
            h: h2,
            w: w2,
            c: 14,
            data: pool.take(h2 * w2 * 14),
        };
        let planes = [lambda / 12.0, (1.0 / (1.0 + (lambda as f64).exp())) as f32];
        x.data
            .par_chunks_mut(w2 * 14)
            .enumerate()
            .for_each(|(y, row)| {
                for (xx, px) in row.chunks_mut(14).enumerate() {
                    for dy in 0..2 {
                        for dx in 0..2 {
                            for c in 0..3 {
                                px[(dy * 2 + dx) * 3 + c] =
                                    z[(c * h + 2 * y + dy) * w + 2 * xx + dx];
                            }
                        }
                    }
                    px[12..].copy_from_slice(&planes);
                }
            });

        let run = |pool: &mut Pool, x: Map, layers: &[Conv]| -> Map {
            layers.iter().fold(x, |x, l| {
                let y = conv(pool, l, &emb, &x, Gather::Taps3x3, true);
                pool.give(x.data);
                y
            })
        };
        let x = run(&mut pool, x, &self.enc1);
        let mut s1 = x;
        let x = conv(&mut pool, &self.down1, &emb, &s1, Gather::Unshuffle, true);
        let x = run(&mut pool, x, &self.enc2);
        let mut s2 = x;
        let x = conv(&mut pool, &self.down2, &emb, &s2, Gather::Unshuffle, true);
        let x = run(&mut pool, x, &self.mid);
        up_into(&mut pool, &self.up2, &emb, &x, &mut s2);
        pool.give(x.data);
        let x = run(&mut pool, s2, &self.dec2);
        up_into(&mut pool, &self.up1, &emb, &x, &mut s1);
        pool.give(x.data);
        let x = run(&mut pool, s1, &self.dec1);
        let v = conv(&mut pool, &self.out, &emb, &x, Gather::Taps3x3, false);
        pool.give(x.data);

        // x_hat = alpha z - sigma v, v pixel-shuffled from (h2, w2, 12) to planar (3, h, w).
        let (a, sg) = (alpha_f(lambda), sigma_f(lambda));
        let mut out = vec![0f32; 3 * h * w];
        out.par_chunks_mut(w).enumerate().for_each(|(r, row)| {
            let (c, y) = (r / h, r % h);
            let (y2, dy) = (y / 2, y % 2);
            let zr = &z[r * w..(r + 1) * w];
            for (xx, o) in row.iter_mut().enumerate() {
                let vv = v.data[(y2 * w2 + xx / 2) * 12 + (dy * 2 + xx % 2) * 3 + c];
                *o = zr[xx] * a - vv * sg;
            }
        });
        pool.give(v.data);
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = pool;
        out
    }
}

/// Per-pixel bias of a layer at this lambda.
fn layer_bias(l: &Conv, emb: &[f32]) -> Vec<f32> {
    l.bias.apply(emb)
}

/// `dst (m, n) = lhs (m, k) x rhs (k, n)`, all row-major and dense, single-threaded.
fn gemm_rows(dst: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) {
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

/// Pixels per block for a layer reading `k` values per pixel.
fn block_pixels(k: usize) -> usize {
    (BLOCK_BYTES / (4 * k)).max(16)
}

/// Gather the input rows of output pixels `p0 .. p0 + rows.len() / k` of an `(oh, ow)` output.
fn gather(g: Gather, x: &Map, ow: usize, p0: usize, rows: &mut [f32]) {
    let c = x.c;
    match g {
        Gather::Taps3x3 => {
            let (h, w) = (x.h as isize, x.w as isize);
            for (i, r) in rows.chunks_mut(9 * c).enumerate() {
                let p = p0 + i;
                let (y, xx) = ((p / ow) as isize, (p % ow) as isize);
                for (k, d) in r.chunks_mut(c).enumerate() {
                    let (sy, sx) = (y + k as isize / 3 - 1, xx + k as isize % 3 - 1);
                    if sy < 0 || sy >= h || sx < 0 || sx >= w {
                        d.fill(0.0);
                    } else {
                        let at = (sy * w + sx) as usize * c;
                        d.copy_from_slice(&x.data[at..at + c]);
                    }
                }
            }
        }
        Gather::Unshuffle => {
            for (i, r) in rows.chunks_mut(4 * c).enumerate() {
                let p = p0 + i;
                let (y, xx) = (p / ow, p % ow);
                for (k, d) in r.chunks_mut(c).enumerate() {
                    let at = ((2 * y + k / 2) * x.w + 2 * xx + k % 2) * c;
                    d.copy_from_slice(&x.data[at..at + c]);
                }
            }
        }
    }
}

/// One layer `(oh, ow, Cout)` out: bias, and ReLU when `relu`.
fn conv(pool: &mut Pool, l: &Conv, emb: &[f32], x: &Map, g: Gather, relu: bool) -> Map {
    let (oh, ow) = match g {
        Gather::Unshuffle => (x.h / 2, x.w / 2),
        Gather::Taps3x3 => (x.h, x.w),
    };
    let (k, n) = (l.k, l.cout);
    let expect_k = match g {
        Gather::Taps3x3 => 9 * x.c,
        Gather::Unshuffle => 4 * x.c,
    };
    assert_eq!(k, expect_k, "layer expects {k} inputs per pixel");
    let bias = layer_bias(l, emb);
    let bp = block_pixels(k);
    let mut data = pool.take(oh * ow * n);
    data.par_chunks_mut(bp * n).enumerate().for_each_init(
        Vec::new,
        |rows: &mut Vec<f32>, (bi, out)| {
            let m = out.len() / n;
            rows.resize(m * k, 0.0);
            gather(g, x, ow, bi * bp, rows);
            gemm_rows(out, rows, &l.wt, m, k, n);
            for px in out.chunks_mut(n) {
                for (o, b) in px.iter_mut().zip(&bias) {
                    *o = if relu { (*o + b).max(0.0) } else { *o + b };
                }
            }
        },
    );
    Map {
        h: oh,
        w: ow,
        c: n,
        data,
    }
}

/// `skip = relu(skip + shuffle(l(x) + bias))`: a 1x1 layer to `4 C` channels, pixel-shuffled
/// to twice the size and added to the skip connection in place.
fn up_into(pool: &mut Pool, l: &Conv, emb: &[f32], x: &Map, skip: &mut Map) {
    let (k, n, c) = (l.k, l.cout, skip.c);
    assert!(k == x.c && n == 4 * c && skip.h == 2 * x.h && skip.w == 2 * x.w);
    let bias = layer_bias(l, emb);
    let w = x.w;
    let _ = pool;
    // One input row of x makes two output rows of skip.
    skip.data
        .par_chunks_mut(2 * skip.w * c)
        .enumerate()
        .for_each_init(Vec::new, |out: &mut Vec<f32>, (y, sk)| {
            out.resize(w * n, 0.0);
            gemm_rows(out, &x.data[y * w * k..(y + 1) * w * k], &l.wt, w, k, n);
            for (xx, px) in out.chunks(n).enumerate() {
                for dy in 0..2 {
                    for dx in 0..2 {
                        let q = dy * 2 + dx;
                        let at = (dy * skip.w + 2 * xx + dx) * c;
                        let s = &mut sk[at..at + c];
                        let v = &px[q * c..(q + 1) * c];
                        let b = &bias[q * c..(q + 1) * c];
                        for ((s, v), b) in s.iter_mut().zip(v).zip(b) {
                            *s = (*s + (v + b)).max(0.0);
                        }
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    /// A network with random weights everywhere (including the zero-initialised output layer
    /// and the lambda biases), so every path of the engine is exercised.
    fn random_net(cfg: &NetConfig) -> DenoiserNet {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let net = DenoiserNet::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), cfg).unwrap();
        for (_, v) in vm.data().lock().unwrap().iter() {
            let t = Tensor::randn(0f32, 1.0, v.shape(), &dev).unwrap();
            let fan_in = *v.shape().dims().last().unwrap() as f64;
            // Keep activations O(1) through the depth; biases get a visible size too.
            let scale: f64 = if v.rank() == 1 {
                0.1
            } else {
                (1.5 / fan_in).sqrt()
            };
            v.set(&(t * scale).unwrap()).unwrap();
        }
        net
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn compare(cfg: &NetConfig, h: usize, w: usize) {
        let net = random_net(cfg);
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
        compare(&NetConfig::by_name("tiny").unwrap(), 48, 72);
    }
}
