//! The integer prior: a [`DenoiserNet`](super::net::DenoiserNet) in integer arithmetic, with
//! results defined to the bit (`spec/integer-network.md`).
//!
//! The codec's encoder and decoder must compute the same `x_hat` for their latents to agree. A
//! float network gives the same bits only on one machine with one kernel: another SIMD width,
//! BLAS, thread split or GPU sums in another order, and every step moves the decoder's latent a
//! little further from the encoder's. Here every value that reaches `x_hat` is an integer
//! computed exactly (Ballé, Johnston, Minnen 2019, "Integer networks for data compression with
//! latent-variable models"), so any correct kernel, on any machine, gives the same bits:
//!
//! - weights are small integers (10 bits for `tiny-int`) with one scale per output channel, activations are small non-negative
//!   integers (after ReLU) with one scale per map, accumulation is exact in `i32`;
//! - each layer ends with a requantization `(acc * mult + 2^(shift-1)) >> shift` in `i64`;
//! - everything that depends on `lambda` (the per-layer biases and the two noise-level input
//!   planes) is a table over a grid of log-SNRs, interpolated with integer weights;
//! - `z` stays out of the quantized path: the network outputs `v` on a fixed grid and
//!   `x_hat = alpha z - sigma v` is composed in `f32` with exactly specified operations, so the
//!   network's rounding error is scaled by `sigma` (small at low noise, where precision matters).
//!
//! Load-time validation bounds every product so that no sum can overflow (`validate`): the
//! order of summation is then irrelevant, which is what lets the kernels ([`super::intkernel`])
//! reorder freely and still agree bit for bit.

use std::ops::Range;

use rayon::prelude::*;

use super::engine::{conv_layers, gather_rows, Gather};
pub use super::intkernel::Kernels;
use super::intkernel::{self, PackedWeights, Requant};
use super::mirrors::{Mirror, MODES};
use super::net::NetConfig;
use super::nonlocal::block_mean_int;
use crate::error::{Error, Result};

/// Format version of integer weight files (the `format` entry of their metadata).
pub const INT_FORMAT: &str = "diffc-int-v1";

/// `log2` of the input scale: `z` enters the network as `round(z * 2^12)`.
pub const IN_LOG2: u32 = 12;
/// `log2` of the output grid: the network's `v` is an integer `V` and `v = V / 2^12`.
pub const V_LOG2: u32 = 12;
/// Largest magnitude of an input value (`i16` range, symmetric).
pub const IN_MAX: i32 = 32767;
/// Largest magnitude of the output `V` (exact in `f32`).
pub const V_MAX: i32 = 1 << 23;
/// Fractional bits of the interpolation weight between two grid points.
pub const FRAC_BITS: u32 = 8;

/// Where the log-SNR tables are sampled: `lambda_i = (first + i) / per_unit`, `points` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LambdaGrid {
    /// Numerator of the first grid point.
    pub first: i32,
    /// Grid points per unit of lambda.
    pub per_unit: i32,
    /// Number of grid points (at least 2).
    pub points: usize,
}

/// Where `lambda` falls on the grid: between points `i` and `i + 1`, at `frac / 256` of the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridPos {
    /// Lower grid point.
    pub i: usize,
    /// Interpolation weight of point `i + 1`, in `0..=256`.
    pub frac: i64,
}

impl LambdaGrid {
    /// The grid's log-SNR at point `i`.
    pub fn lambda(&self, i: usize) -> f64 {
        (self.first as f64 + i as f64) / self.per_unit as f64
    }

    /// The position of `lambda`, clamped to the grid (IEEE binary64 operations only).
    pub fn locate(&self, lambda: f64) -> GridPos {
        let last = (self.points - 1) as f64;
        let t = lambda * self.per_unit as f64 - self.first as f64;
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, last) };
        let i = (t.floor() as usize).min(self.points - 2);
        let frac = ((t - i as f64) * (1u32 << FRAC_BITS) as f64).round() as i64;
        GridPos { i, frac }
    }
}

/// `table[i] + floor(((table[i+1] - table[i]) * frac + 128) / 256)` for a row-major
/// `(points, n)` table: the integer interpolation of every column.
pub fn interpolate(table: &[i32], n: usize, p: GridPos) -> Vec<i64> {
    let (a, b) = (
        &table[p.i * n..(p.i + 1) * n],
        &table[(p.i + 1) * n..(p.i + 2) * n],
    );
    a.iter()
        .zip(b)
        .map(|(&a, &b)| {
            let (a, b) = (a as i64, b as i64);
            a + (((b - a) * p.frac + (1 << (FRAC_BITS - 1))) >> FRAC_BITS)
        })
        .collect()
}

/// How a layer's output is finished after requantization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// `clamp(r, 0, amax)`: ReLU into a map of this layer's own.
    Relu,
    /// Pixel-shuffled and added to a skip map: `skip = clamp(skip + r, 0, amax)`.
    IntoSkip,
    /// The output `V = clamp(r, -V_MAX, V_MAX)`.
    Output,
}

/// One convolution of the integer network.
pub struct IntLayer {
    /// Name in the weight file (`enc1.0`, `down1`, ...).
    pub name: String,
    /// Inputs per output value.
    pub k: usize,
    /// Output channels.
    pub cout: usize,
    /// `(cout, k)` weights.
    pub w: Vec<i16>,
    /// Requantization multiplier per output channel, `0 <= mult < 2^31`.
    pub mult: Vec<i32>,
    /// Requantization shift per output channel, `1..=62`.
    pub shift: Vec<u8>,
    /// Bias per grid point and output channel, `(points, cout)`, in accumulator units.
    pub bias: Vec<i32>,
    /// Largest value of the map this layer writes (`Relu`, `IntoSkip`).
    pub amax: i32,
    /// How the output is finished.
    pub finish: Finish,
    packed: PackedWeights,
}

/// An activation map `(H, W, C)`, channels last, of integers that fit `i16`.
#[derive(Clone, Debug)]
pub(crate) struct IMap {
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) c: usize,
    /// Largest magnitude a value can have (`u8` maps take the fast kernels).
    pub(crate) amax: i32,
    pub(crate) data: Vec<i16>,
}

impl IMap {
    /// The same shape with no data.
    fn clone_shape(&self) -> IMap {
        IMap {
            data: Vec::new(),
            ..*self
        }
    }
}

/// The integer network. See the module documentation and `spec/integer-network.md`.
pub struct IntNet {
    cfg: NetConfig,
    grid: LambdaGrid,
    /// The two noise-level input planes per grid point, `(points, 2)`, in input units.
    planes: Vec<i32>,
    layers: Vec<IntLayer>,
    kernels: Kernels,
    /// Activation buffers kept between calls.
    pool: std::sync::Mutex<Vec<Vec<i16>>>,
}

/// How each layer of [`conv_layers`] reads its input and finishes its output, in order.
pub(crate) fn layer_roles(cfg: &NetConfig) -> Vec<(Gather, Finish)> {
    let mut v = Vec::new();
    let stack =
        |v: &mut Vec<_>, n: usize| v.extend((0..n).map(|_| (Gather::Taps3x3, Finish::Relu)));
    stack(&mut v, cfg.depth[0]);
    v.push((Gather::Unshuffle, Finish::Relu));
    stack(&mut v, cfg.depth[1]);
    v.push((Gather::Unshuffle, Finish::Relu));
    stack(&mut v, cfg.depth[2]);
    v.push((Gather::Pointwise, Finish::IntoSkip));
    stack(&mut v, cfg.up_depth[0]);
    v.push((Gather::Pointwise, Finish::IntoSkip));
    stack(&mut v, cfg.up_depth[1]);
    v.push((Gather::Taps3x3, Finish::Output));
    v
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::Model(format!("integer weights: {msg}"))
}

impl IntNet {
    /// Assemble and validate a network (see [`IntNet::validate`]).
    pub fn new(
        cfg: NetConfig,
        grid: LambdaGrid,
        planes: Vec<i32>,
        layers: Vec<IntLayerParts>,
    ) -> Result<IntNet> {
        let kernels = Kernels::detect();
        let layers = layers
            .into_iter()
            .map(|p| {
                // Packed after validation (below), which checks the sizes first.
                let packed = PackedWeights::empty();
                IntLayer {
                    name: p.name,
                    k: p.k,
                    cout: p.cout,
                    w: p.w,
                    mult: p.mult,
                    shift: p.shift,
                    bias: p.bias,
                    amax: p.amax,
                    finish: p.finish,
                    packed,
                }
            })
            .collect();
        let mut net = IntNet {
            cfg,
            grid,
            planes,
            layers,
            kernels,
            pool: Default::default(),
        };
        net.validate()?;
        for l in &mut net.layers {
            l.packed = PackedWeights::new(&l.w, l.cout, l.k);
        }
        Ok(net)
    }

    /// Run with another kernel set (tests and benchmarks compare them); an error if this CPU
    /// cannot run it.
    pub fn with_kernels(mut self, k: Kernels) -> Result<Self> {
        if !k.supported() {
            return Err(Error::InvalidArgument(format!(
                "this CPU cannot run the {} kernels",
                k.name()
            )));
        }
        self.kernels = k;
        Ok(self)
    }

    /// The architecture.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// The kernels this network runs with.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The log-SNR grid of the tables.
    pub fn grid(&self) -> LambdaGrid {
        self.grid
    }

    /// The layers in forward order.
    pub fn layers(&self) -> &[IntLayer] {
        &self.layers
    }

    /// The noise-level planes table.
    pub fn planes(&self) -> &[i32] {
        &self.planes
    }

    /// Check shapes, roles and every range the arithmetic relies on: with these bounds no
    /// accumulator can overflow `i32` and no requantization (product plus rounding term) can
    /// overflow `i64`.
    fn validate(&self) -> Result<()> {
        let g = self.grid;
        if g.points < 2 || g.points > 4096 || g.per_unit < 1 || g.per_unit > 256 {
            return Err(bad(format!("bad lambda grid {g:?}")));
        }
        if g.first.unsigned_abs() > 64 * g.per_unit as u32 {
            return Err(bad(format!("lambda grid starts too far out: {g:?}")));
        }
        if self.planes.len() != 2 * g.points
            || self.planes.iter().any(|v| v.unsigned_abs() > IN_MAX as u32)
        {
            return Err(bad("noise planes: wrong size or outside the input range"));
        }
        let shapes = conv_layers(&self.cfg);
        let roles = layer_roles(&self.cfg);
        if self.layers.len() != shapes.len() {
            return Err(bad(format!(
                "{} layers, architecture has {}",
                self.layers.len(),
                shapes.len()
            )));
        }
        // Largest input value of each layer: the input map, then what each map may hold.
        let mut skip_amax = [0i32; 2];
        let mut prev_amax = IN_MAX;
        let mut skips = 0;
        let [d0, d1, _] = self.cfg.depth;
        for (idx, ((l, (name, k, cout)), (gather, finish))) in
            self.layers.iter().zip(&shapes).zip(&roles).enumerate()
        {
            if l.name != *name || l.k != *k || l.cout != *cout || l.finish != *finish {
                return Err(bad(format!(
                    "layer {idx} is {} ({}x{}, {:?}), architecture needs {name} ({k}x{cout}, {finish:?})",
                    l.name, l.cout, l.k, l.finish
                )));
            }
            let _ = gather;
            if l.w.len() != k * cout
                || l.mult.len() != *cout
                || l.shift.len() != *cout
                || l.bias.len() != cout * g.points
            {
                return Err(bad(format!("layer {name}: tensor sizes do not match")));
            }
            if l.w.contains(&i16::MIN) {
                return Err(bad(format!(
                    "layer {name}: weight -32768 (range is ±32767)"
                )));
            }
            if l.mult.iter().any(|&m| m < 0) || l.shift.iter().any(|&s| !(1..=62).contains(&s)) {
                return Err(bad(format!(
                    "layer {name}: multiplier or shift out of range"
                )));
            }
            if l.bias.contains(&i32::MIN) {
                return Err(bad(format!("layer {name}: bias -2^31")));
            }
            // Every partial sum of an output is at most (largest input) x (sum of |weights|).
            let in_amax = prev_amax as i64;
            let l1 =
                l.w.chunks(*k)
                    .map(|r| r.iter().map(|&v| (v as i64).abs()).sum::<i64>())
                    .max()
                    .unwrap_or(0);
            if in_amax * l1 >= 1 << 31 {
                return Err(bad(format!(
                    "layer {name}: inputs up to {in_amax} times weights of absolute sum {l1} could overflow i32"
                )));
            }
            // And requantization stays inside i64: |acc + bias| * mult + 2^(shift-1) < 2^63
            // for every channel (interpolated biases lie between two table values).
            for o in 0..*cout {
                let row_l1: i128 = l.w[o * k..(o + 1) * k]
                    .iter()
                    .map(|&v| (v as i128).abs())
                    .sum();
                let bmax = (0..g.points)
                    .map(|j| (l.bias[j * cout + o] as i128).abs())
                    .max()
                    .unwrap_or(0);
                let worst = (in_amax as i128 * row_l1 + bmax) * l.mult[o] as i128
                    + (1i128 << (l.shift[o] - 1));
                if worst >= 1i128 << 63 {
                    return Err(bad(format!(
                        "layer {name}: channel {o}'s requantization could overflow i64"
                    )));
                }
            }
            match finish {
                Finish::Relu | Finish::IntoSkip if !(1..=i16::MAX as i32).contains(&l.amax) => {
                    return Err(bad(format!("layer {name}: amax {} out of range", l.amax)));
                }
                _ => {}
            }
            // Which map the next layer reads.
            prev_amax = match finish {
                Finish::Relu => l.amax,
                Finish::IntoSkip => {
                    let s = skip_amax[1 - skips];
                    skips += 1;
                    if l.amax != s {
                        return Err(bad(format!(
                            "layer {name}: writes a skip map whose range is {s}, not {}",
                            l.amax
                        )));
                    }
                    s
                }
                Finish::Output => 0,
            };
            // The maps that become skips: the last layer at 1/2 and at 1/4 resolution.
            if idx + 1 == d0 {
                skip_amax[0] = l.amax;
            }
            if idx + 1 == d0 + 1 + d1 {
                skip_amax[1] = l.amax;
            }
        }
        Ok(())
    }

    /// The requantization of every layer (with its interpolated biases) and the two noise
    /// planes at `lambda`.
    fn conditioning(&self, lambda: f64) -> (Vec<Requant>, [i16; 2]) {
        let p = self.grid.locate(lambda);
        let biases = self
            .layers
            .iter()
            .map(|l| Requant::new(interpolate(&l.bias, l.cout, p), &l.mult, &l.shift))
            .collect();
        let pl = interpolate(&self.planes, 2, p);
        // Interpolating between two values in the input range stays in it.
        (biases, [pl[0] as i16, pl[1] as i16])
    }

    /// Predict `x_hat` from `z`, both planar `(3, H, W)`, at log-SNR `lambda`. `H` and `W` must
    /// be non-zero multiples of [`NetConfig::stride`].
    pub fn predict_x(&self, z: &[f32], h: usize, w: usize, lambda: f64) -> Vec<f32> {
        self.predict_x_mirrored(z, h, w, lambda, 1)
    }

    /// [`Self::predict_x`] averaged over the first `mirrors` (1, 2 or 4) mirror images of `z`:
    /// composed once, from the summed outputs of [`Self::predict_v_mirrored`].
    pub fn predict_x_mirrored(
        &self,
        z: &[f32],
        h: usize,
        w: usize,
        lambda: f64,
        mirrors: usize,
    ) -> Vec<f32> {
        let v = self.predict_v_mirrored(z, h, w, lambda, mirrors);
        compose_x(z, &v, mirrors, lambda)
    }

    /// The network's output `V` at full resolution, planar `(3, H, W)`: `v = V / 2^12`.
    pub fn predict_v(&self, z: &[f32], h: usize, w: usize, lambda: f64) -> Vec<i32> {
        self.predict_v_mirrored(z, h, w, lambda, 1)
    }

    /// The sum of the network's outputs `V` (planar `(3, H, W)`) on the first `mirrors` (1, 2 or
    /// 4) mirror images of `z` (in [`super::mirrors`]' order), each mirrored back. With block
    /// matching the blocks are matched once, on `z`, and each image sees the matched means
    /// mirrored with it: the images share one matching (`spec/integer-network.md#mirror-images`).
    /// Every `|V| <= 2^23`, so a sum of four fits `i32`.
    pub fn predict_v_mirrored(
        &self,
        z: &[f32],
        h: usize,
        w: usize,
        lambda: f64,
        mirrors: usize,
    ) -> Vec<i32> {
        let s = self.cfg.stride();
        assert!(
            h.is_multiple_of(s) && w.is_multiple_of(s) && h > 0 && w > 0 && z.len() == 3 * h * w
        );
        assert!(matches!(mirrors, 1 | 2 | 4), "{mirrors} mirror images");
        let (rq, planes) = self.conditioning(lambda);
        let q: Vec<i16> = z.par_iter().map(|&v| quantize_input(v)).collect();
        let matched = self
            .cfg
            .nonlocal
            .map_or_else(Vec::new, |nl| block_mean_int(&q, h, w, nl));
        let mut sum = vec![0i32; 3 * h * w];
        let mut pool = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
        for &m in &MODES[..mirrors] {
            let buf = take(&mut pool, (h / 2) * (w / 2) * self.cfg.in_channels());
            let x = input_map(&q, &matched, h, w, planes, m, buf);
            let v = self.layers_on(x, &rq, &mut pool);
            add_unshuffled(&v, h, w, m, &mut sum);
        }
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = pool;
        sum
    }

    /// The layers on an input map: the output `V`, `(H/2, W/2, 12)`.
    fn layers_on(&self, mut x: IMap, rq: &[Requant], pool: &mut Vec<Vec<i16>>) -> Vec<i32> {
        let roles = layer_roles(&self.cfg);
        let [d0, d1, _] = self.cfg.depth;
        let mut skips: Vec<IMap> = Vec::new();
        let mut out = None;
        for (idx, (l, (gather, finish))) in self.layers.iter().zip(roles).enumerate() {
            match finish {
                Finish::Relu => {
                    let (oh, ow) = gather.out_size(x.h, x.w);
                    let y = self.conv(l, &rq[idx], &x, gather, take(pool, oh * ow * l.cout));
                    pool.push(std::mem::replace(&mut x, y).data);
                    if idx + 1 == d0 || idx + 1 == d0 + 1 + d1 {
                        let mut copy = take(pool, x.data.len());
                        copy.copy_from_slice(&x.data);
                        skips.push(IMap {
                            data: copy,
                            ..x.clone_shape()
                        });
                    }
                }
                Finish::IntoSkip => {
                    let mut skip = skips.pop().expect("skip map");
                    self.up_into(l, &rq[idx], &x, &mut skip);
                    pool.push(std::mem::replace(&mut x, skip).data);
                }
                Finish::Output => out = Some(self.output(l, &rq[idx], &x)),
            }
        }
        pool.push(x.data);
        pool.extend(skips.into_iter().map(|s| s.data));
        out.expect("output layer")
    }

    /// One ReLU layer: a new map.
    fn conv(&self, l: &IntLayer, rq: &Requant, x: &IMap, g: Gather, mut data: Vec<i16>) -> IMap {
        let (oh, ow) = g.out_size(x.h, x.w);
        let n = l.cout;
        debug_assert_eq!(data.len(), oh * ow * n);
        let amax = l.amax as i64;
        let rows_per_block = block_rows(g.width(x.c), ow);
        data.par_chunks_mut(rows_per_block * ow * n)
            .enumerate()
            .for_each_init(Scratch::default, |s, (bi, out)| {
                let p0 = bi * rows_per_block * ow;
                let m = out.len() / n;
                self.block(l, x, g, p0..p0 + m, s);
                intkernel::requant_relu(self.kernels, &s.acc, rq, amax, out);
            });
        IMap {
            h: oh,
            w: ow,
            c: n,
            amax: l.amax,
            data,
        }
    }

    /// The output layer: `V` at half resolution, `(H/2, W/2, 12)`.
    fn output(&self, l: &IntLayer, rq: &Requant, x: &IMap) -> Vec<i32> {
        let n = l.cout;
        let mut data = vec![0i32; x.h * x.w * n];
        let rows_per_block = block_rows(Gather::Taps3x3.width(x.c), x.w);
        data.par_chunks_mut(rows_per_block * x.w * n)
            .enumerate()
            .for_each_init(Scratch::default, |s, (bi, out)| {
                let p0 = bi * rows_per_block * x.w;
                let m = out.len() / n;
                self.block(l, x, Gather::Taps3x3, p0..p0 + m, s);
                s.r.resize(m * n, 0);
                intkernel::requant(self.kernels, &s.acc, rq, &mut s.r);
                for (o, &r) in out.iter_mut().zip(&s.r) {
                    *o = r.clamp(-V_MAX as i64, V_MAX as i64) as i32;
                }
            });
        data
    }

    /// `skip = clamp(skip + shuffle(requant(l(x))), 0, amax)`.
    fn up_into(&self, l: &IntLayer, rq: &Requant, x: &IMap, skip: &mut IMap) {
        let (n, c) = (l.cout, skip.c);
        assert!(n == 4 * c && skip.h == 2 * x.h && skip.w == 2 * x.w);
        let amax = l.amax as i64;
        let w = x.w;
        // One row of x makes two rows of the skip map.
        skip.data
            .par_chunks_mut(2 * skip.w * c)
            .enumerate()
            .for_each_init(Scratch::default, |s, (y, sk)| {
                self.block(l, x, Gather::Pointwise, y * w..(y + 1) * w, s);
                s.r.resize(w * n, 0);
                intkernel::requant(self.kernels, &s.acc, rq, &mut s.r);
                for (xx, px) in s.r.chunks(n).enumerate() {
                    for (q, r) in px.chunks(c).enumerate() {
                        let (dy, dx) = (q / 2, q % 2);
                        let at = (dy * 2 * w + 2 * xx + dx) * c;
                        for (v, &r) in sk[at..at + c].iter_mut().zip(r) {
                            *v = (*v as i64 + r).clamp(0, amax) as i16;
                        }
                    }
                }
            });
    }

    /// Gather output pixels `px` and multiply: `s.acc` holds `(m, cout)` sums.
    fn block(&self, l: &IntLayer, x: &IMap, g: Gather, px: Range<usize>, s: &mut Scratch) {
        let (p0, m) = (px.start, px.len());
        let k = g.width(x.c);
        debug_assert_eq!(k, l.k);
        s.acc.resize(m * l.cout, 0);
        if self.kernels == Kernels::Avx512Vnni && l.packed.has_quads() && x.amax <= 255 {
            // Inputs and weights fit 8 bits: u8 x i8 products at twice the rate.
            let st = intkernel::u8_stride(k);
            s.bytes.resize(m * st, 0);
            let src: &[i16] = if g == Gather::Pointwise {
                &x.data[p0 * k..(p0 + m) * k]
            } else {
                s.rows.resize(m * k, 0);
                gather_rows(g, (x.h, x.w, x.c), &x.data, p0, &mut s.rows);
                &s.rows
            };
            intkernel::pack_u8(self.kernels, src, k, &mut s.bytes);
            intkernel::gemm_u8(&s.bytes, m, &l.packed, &mut s.acc);
        } else if g == Gather::Pointwise {
            let rows = &x.data[p0 * k..(p0 + m) * k];
            intkernel::gemm(self.kernels, rows, m, &l.packed, &mut s.acc);
        } else {
            s.rows.resize(m * k, 0);
            gather_rows(g, (x.h, x.w, x.c), &x.data, p0, &mut s.rows);
            intkernel::gemm(self.kernels, &s.rows, m, &l.packed, &mut s.acc);
        }
    }
}

/// A buffer of exactly `len` values from the pool (contents unspecified: every user overwrites
/// all of it).
fn take(pool: &mut Vec<Vec<i16>>, len: usize) -> Vec<i16> {
    let mut v = match pool.iter().position(|b| b.capacity() >= len) {
        Some(i) => pool.swap_remove(i),
        None => Vec::with_capacity(len),
    };
    v.truncate(len);
    v.resize(len, 0);
    v
}

/// Per-thread buffers.
#[derive(Default)]
struct Scratch {
    rows: Vec<i16>,
    bytes: Vec<u8>,
    acc: Vec<i32>,
    r: Vec<i64>,
}

/// Output rows per block: about 64 KB of gathered input, at least one row.
fn block_rows(k: usize, ow: usize) -> usize {
    ((64 << 10) / (2 * k * ow).max(1)).max(1)
}

/// `round(v * 2^12)` (half away from zero), clamped to the input range.
#[inline]
pub fn quantize_input(v: f32) -> i16 {
    (v * (1u32 << IN_LOG2) as f32)
        .round()
        .clamp(-IN_MAX as f32, IN_MAX as f32) as i16
}

/// The input map at half resolution of the mirror image `m` of the quantized latent `q`
/// (planar `(3, H, W)`): 12 unshuffled channels of `m(q)`, channel `(dy 2 + dx) 3 + c`, the two
/// noise planes, and with block matching 12 unshuffled channels of `m(matched)` for each of the
/// latent's block-matched means.
fn input_map(
    q: &[i16],
    matched: &[Vec<i16>],
    h: usize,
    w: usize,
    planes: [i16; 2],
    m: Mirror,
    mut data: Vec<i16>,
) -> IMap {
    let (h2, w2) = (h / 2, w / 2);
    let c = 14 + 12 * matched.len();
    debug_assert_eq!(data.len(), h2 * w2 * c);
    data.par_chunks_mut(w2 * c)
        .enumerate()
        .for_each(|(y, row)| {
            for (xx, px) in row.chunks_mut(c).enumerate() {
                for dy in 0..2 {
                    for dx in 0..2 {
                        let (sy, sx) = m.source(2 * y + dy, 2 * xx + dx, h, w);
                        for ch in 0..3 {
                            let i = (ch * h + sy) * w + sx;
                            px[(dy * 2 + dx) * 3 + ch] = q[i];
                            for (j, mm) in matched.iter().enumerate() {
                                px[14 + 12 * j + (dy * 2 + dx) * 3 + ch] = mm[i];
                            }
                        }
                    }
                }
                px[12..14].copy_from_slice(&planes);
            }
        });
    IMap {
        h: h2,
        w: w2,
        c,
        amax: IN_MAX,
        data,
    }
}

/// `sum += m(Vp)`: the output `v` of the network on mirror image `m` (`(H/2, W/2, 12)`),
/// pixel-shuffled to planar `(3, H, W)` (channel `(dy 2 + dx) 3 + c`) and mirrored back.
fn add_unshuffled(v: &[i32], h: usize, w: usize, m: Mirror, sum: &mut [i32]) {
    let w2 = w / 2;
    sum.par_chunks_mut(w).enumerate().for_each(|(r, row)| {
        let (c, y) = (r / h, r % h);
        for (xx, o) in row.iter_mut().enumerate() {
            // The mirror image's sample that lands at (y, xx) once mirrored back.
            let (my, mx) = m.source(y, xx, h, w);
            *o += v[((my / 2) * w2 + mx / 2) * 12 + ((my % 2) * 2 + mx % 2) * 3 + c];
        }
    });
}

/// `x_hat = alpha z - sigma (V / (count 2^12))` in `f32`, for `V` the sum of the network's
/// outputs on `count` (a power of two) mirror images: `alpha` and `sigma` are the schedule's
/// (binary64, rounded to binary32); `V` is rounded to binary32 (to nearest even: exact below
/// 2^24) and scaled exactly; then one product, one product and one difference, each rounded to
/// nearest.
pub fn compose_x(z: &[f32], v: &[i32], count: usize, lambda: f64) -> Vec<f32> {
    debug_assert!(count.is_power_of_two() && z.len() == v.len());
    let a = crate::schedule::alpha(lambda) as f32;
    let s = crate::schedule::sigma(lambda) as f32;
    let unit = 1.0 / ((1u32 << V_LOG2) as usize * count) as f32;
    z.iter()
        .zip(v)
        .map(|(&z, &v)| a * z - s * (v as f32 * unit))
        .collect()
}

/// The parts of one layer, before packing (what a weight file or the quantizer provides).
pub struct IntLayerParts {
    /// Name in the weight file.
    pub name: String,
    /// Inputs per output value.
    pub k: usize,
    /// Output channels.
    pub cout: usize,
    /// `(cout, k)` weights.
    pub w: Vec<i16>,
    /// Multiplier per output channel.
    pub mult: Vec<i32>,
    /// Shift per output channel.
    pub shift: Vec<u8>,
    /// `(points, cout)` biases.
    pub bias: Vec<i32>,
    /// Largest value of the map written.
    pub amax: i32,
    /// How the output is finished.
    pub finish: Finish,
}

// ---------------------------------------------------------------------------------------------
// Weight files: safetensors with integer tensors and a metadata block.

/// Serialize to safetensors bytes (deterministically: keys in name order, no whitespace): per
/// layer `NAME.w` (`(cout, k)`; I8 when every weight fits, else I16), `NAME.mult` (I32),
/// `NAME.shift` (U8), `NAME.bias` (I32, `(points, cout)`), `NAME.amax` (I32, `(1,)`); `planes`
/// (I32, `(points, 2)`); `grid` (I32, `[first, per_unit]`). Metadata `format` = [`INT_FORMAT`],
/// `arch` = the architecture name. Tensors are written in name order.
pub fn to_safetensors(net: &IntNet, arch: &str) -> Result<Vec<u8>> {
    use safetensors::tensor::Dtype;
    let mut blobs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let le32 = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for l in &net.layers {
        let n = &l.name;
        // 8-bit weights take one byte each (I8); wider ones two (I16).
        let w = if l.w.iter().all(|&v| i8::try_from(v).is_ok()) {
            (Dtype::I8, l.w.iter().map(|&v| v as i8 as u8).collect())
        } else {
            (
                Dtype::I16,
                l.w.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        };
        blobs.push((format!("{n}.w"), w.0, vec![l.cout, l.k], w.1));
        blobs.push((format!("{n}.mult"), Dtype::I32, vec![l.cout], le32(&l.mult)));
        blobs.push((
            format!("{n}.shift"),
            Dtype::U8,
            vec![l.cout],
            l.shift.clone(),
        ));
        blobs.push((
            format!("{n}.bias"),
            Dtype::I32,
            vec![net.grid.points, l.cout],
            le32(&l.bias),
        ));
        blobs.push((format!("{n}.amax"), Dtype::I32, vec![1], le32(&[l.amax])));
    }
    blobs.push((
        "planes".into(),
        Dtype::I32,
        vec![net.grid.points, 2],
        le32(&net.planes),
    ));
    blobs.push((
        "grid".into(),
        Dtype::I32,
        vec![2],
        le32(&[net.grid.first, net.grid.per_unit]),
    ));
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    // Written by hand rather than with `safetensors::serialize`, whose metadata is a HashMap:
    // the bytes (and so the model id) must not depend on a hash seed.
    let mut header =
        format!("{{\"__metadata__\":{{\"arch\":\"{arch}\",\"format\":\"{INT_FORMAT}\"}}");
    let mut offset = 0usize;
    for (name, dtype, shape, data) in &blobs {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let dt = match dtype {
            Dtype::I8 => "I8",
            Dtype::I16 => "I16",
            Dtype::I32 => "I32",
            Dtype::U8 => "U8",
            _ => unreachable!("only these are written"),
        };
        header += &format!(
            ",\"{name}\":{{\"dtype\":\"{dt}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            dims.join(","),
            offset + data.len()
        );
        offset += data.len();
    }
    header.push('}');
    // The data starts 8-byte aligned (the format pads the header with spaces).
    while (8 + header.len()) % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, _, _, data) in &blobs {
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// Parse and validate an integer weight file for architecture `arch`.
pub fn from_safetensors(arch: &str, bytes: &[u8]) -> Result<IntNet> {
    use safetensors::tensor::Dtype;
    use safetensors::SafeTensors;
    let cfg = NetConfig::by_name(arch).ok_or_else(|| Error::UnknownModel(arch.to_string()))?;
    if cfg.nonlocal.is_some_and(|nl| nl.near > 0) {
        // A float pilot only: spec/integer-network.md defines one matched mean.
        return Err(Error::Model(format!(
            "{arch} has no integer form (a second matched mean is not in the specification)"
        )));
    }
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let fmt = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("format").cloned())
        .unwrap_or_default();
    if fmt != INT_FORMAT {
        return Err(bad(format!(
            "format is {fmt:?}, expected {INT_FORMAT:?} (is this a float weight file?)"
        )));
    }
    let st = SafeTensors::deserialize(bytes).map_err(bad)?;
    let get = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<&[u8]> {
        let t = st
            .tensor(name)
            .map_err(|_| bad(format!("missing tensor {name}")))?;
        if t.dtype() != dtype || t.shape() != shape {
            return Err(bad(format!(
                "tensor {name} is {:?} {:?}, expected {dtype:?} {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(t.data())
    };
    let i32s = |b: &[u8]| -> Vec<i32> {
        b.chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let g = i32s(get("grid", Dtype::I32, &[2])?);
    let pt = st
        .tensor("planes")
        .map_err(|_| bad("missing tensor planes"))?
        .shape()
        .first()
        .copied()
        .unwrap_or(0);
    let grid = LambdaGrid {
        first: g[0],
        per_unit: g[1],
        points: pt,
    };
    if !(2..=4096).contains(&pt) {
        return Err(bad(format!("{pt} grid points")));
    }
    let planes = i32s(get("planes", Dtype::I32, &[pt, 2])?);
    let roles = layer_roles(&cfg);
    let mut layers = Vec::new();
    for ((name, k, cout), (_, finish)) in conv_layers(&cfg).into_iter().zip(roles) {
        let wname = format!("{name}.w");
        let w = match st.tensor(&wname).map(|t| t.dtype()) {
            Ok(Dtype::I8) => get(&wname, Dtype::I8, &[cout, k])?
                .iter()
                .map(|&b| b as i8 as i16)
                .collect(),
            _ => get(&wname, Dtype::I16, &[cout, k])?
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect(),
        };
        let mult = i32s(get(&format!("{name}.mult"), Dtype::I32, &[cout])?);
        let shift = get(&format!("{name}.shift"), Dtype::U8, &[cout])?.to_vec();
        let bias = i32s(get(&format!("{name}.bias"), Dtype::I32, &[pt, cout])?);
        let amax = i32s(get(&format!("{name}.amax"), Dtype::I32, &[1])?)[0];
        layers.push(IntLayerParts {
            name,
            k,
            cout,
            w,
            mult,
            shift,
            bias,
            amax,
            finish,
        });
    }
    // Exactly the architecture's tensors: a `deep` file holds all of `tiny`'s layers, and
    // must not load as `tiny`.
    let listed = |n: &str| {
        n == "grid"
            || n == "planes"
            || n.rsplit_once('.').is_some_and(|(layer, t)| {
                ["w", "mult", "shift", "bias", "amax"].contains(&t)
                    && layers.iter().any(|l| l.name == layer)
            })
    };
    if let Some(extra) = st.names().into_iter().find(|n| !listed(n)) {
        return Err(bad(format!(
            "tensor {extra} is not part of architecture {arch} (a weight file of another one?)"
        )));
    }
    IntNet::new(cfg, grid, planes, layers)
}

/// True when `bytes` look like an integer weight file: safetensors whose metadata `format`
/// starts with `diffc-int` (a version this build does not know is then refused by
/// [`from_safetensors`] with a message saying so, not read as float weights).
pub fn is_integer_file(bytes: &[u8]) -> bool {
    safetensors::SafeTensors::read_metadata(bytes).is_ok_and(|(_, m)| {
        m.metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .is_some_and(|f| f.starts_with("diffc-int"))
    })
}

/// Upper estimate of the bytes the integer network holds per pixel of the window it evaluates:
/// `i16` activations at 1/2, 1/4 and 1/8 resolution alive at once, the skip copies, the input
/// map and the `i32` output (~170 B for `tiny`), with margin.
pub const INT_BYTES_PER_PIXEL: u64 = 256;

/// An [`IntNet`] as a codec prior.
pub struct IntDenoiser {
    name: String,
    id: u64,
    net: IntNet,
    /// Mirror images of the padded latent each prediction averages (1, 2 or 4;
    /// [`IntNet::predict_x_mirrored`]).
    mirrors: usize,
}

impl IntDenoiser {
    /// Load an integer weight file for architecture `arch`; `id` is its stream id.
    pub fn from_safetensors_bytes(name: &str, arch: &str, bytes: &[u8]) -> Result<Self> {
        Ok(IntDenoiser {
            name: name.to_string(),
            id: super::fnv1a64(bytes),
            net: from_safetensors(arch, bytes)?,
            mirrors: 1,
        })
    }

    /// Average `count` (1, 2 or 4) mirror images of the padded latent in every prediction,
    /// sharing one block matching ([`IntNet::predict_v_mirrored`]). The stream id is the
    /// model's business ([`super::Mirroring::Network`]).
    pub fn with_mirrors(mut self, count: usize) -> Result<Self> {
        self.mirrors = super::mirrors::network_count(&self.name, count)?;
        Ok(self)
    }

    /// The network.
    pub fn net(&self) -> &IntNet {
        &self.net
    }

    /// Force a kernel set (tests compare them).
    pub fn with_kernels(mut self, k: Kernels) -> Result<Self> {
        self.net = self.net.with_kernels(k)?;
        Ok(self)
    }
}

impl super::Denoiser for IntDenoiser {
    fn name(&self) -> &str {
        &self.name
    }

    fn model_id(&self) -> u64 {
        self.id
    }

    fn working_bytes(&self, height: usize, width: usize) -> u64 {
        super::net::tiled_working_bytes(&self.net.cfg, height, width, INT_BYTES_PER_PIXEL)
    }

    fn predict_x(&self, z: &super::Planes, lambda: f64) -> Result<super::Planes> {
        super::net::check_network_input(z)?;
        // Tiles equal the whole-image pass exactly: the halo covers the receptive field and the
        // arithmetic is exact.
        let data = super::net::predict_tiled(&self.net.cfg, z, super::net::TILE, &|w, h, ww| {
            self.net.predict_x_mirrored(w, h, ww, lambda, self.mirrors)
        });
        Ok(super::Planes {
            channels: 3,
            height: z.height,
            width: z.width,
            data,
        })
    }
}

#[cfg(all(test, feature = "embedded-model", diffc_tiny_int))]
mod tests {
    use super::*;
    use crate::prior::{Denoiser, Planes};

    fn shipped() -> &'static [u8] {
        crate::prior::embedded("tiny-int").expect("tiny-int is embedded")
    }

    fn ramp(h: usize, w: usize) -> Planes {
        let mut p = Planes::zeros(3, h, w);
        for (i, v) in p.data.iter_mut().enumerate() {
            *v = ((i * 7919) % 2003) as f32 / 1001.0 - 1.0;
        }
        p
    }

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    #[test]
    fn kernels_and_thread_counts_give_the_same_bits() {
        let z = ramp(48, 72);
        let simd = from_safetensors("tiny", shipped())
            .unwrap()
            .with_kernels(Kernels::best())
            .unwrap();
        let portable = from_safetensors("tiny", shipped())
            .unwrap()
            .with_kernels(Kernels::Portable)
            .unwrap();
        for lambda in [-4.0, 0.5, 3.26, 9.0, 40.0] {
            let want = in_pool(1, || portable.predict_v(&z.data, 48, 72, lambda));
            assert!(
                want.iter().any(|&v| v != 0),
                "lambda {lambda}: all-zero output"
            );
            for threads in [1, 2, 3] {
                let got = in_pool(threads, || simd.predict_v(&z.data, 48, 72, lambda));
                assert_eq!(got, want, "lambda {lambda}, {threads} threads");
            }
        }
    }

    #[test]
    fn tiles_equal_the_whole_image_exactly() {
        let d = IntDenoiser::from_safetensors_bytes("tiny-int", "tiny", shipped()).unwrap();
        let z = ramp(301, 283);
        let cfg = d.net().config().clone();
        let f = |w: &[f32], h: usize, ww: usize| d.net().predict_x(w, h, ww, 2.5);
        let whole = crate::prior::net::predict_tiled(&cfg, &z, 1 << 20, &f);
        let tiled = crate::prior::net::predict_tiled(&cfg, &z, 64, &f);
        assert!(whole == tiled, "tiles differ from the whole image");
        assert_eq!(d.predict_x(&z, 2.5).unwrap().data, whole);
    }

    /// An integer network of architecture `arch` with pseudo-random weights whose maps are
    /// neither empty nor saturated.
    fn synthetic(cfg: NetConfig) -> IntNet {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let layers = conv_layers(&cfg)
            .into_iter()
            .zip(layer_roles(&cfg))
            .enumerate()
            .map(|(i, ((name, k, cout), (_, finish)))| IntLayerParts {
                name,
                k,
                cout,
                w: (0..k * cout).map(|_| (next() % 15) as i16 - 7).collect(),
                mult: vec![1 << 30; cout],
                // Inputs of ~2^13 (the latent) or ~2^7 (maps), ~sqrt(k) * 4 weights: ~2^7 out.
                shift: vec![if i == 0 { 44 } else { 37 }; cout],
                bias: (0..2 * cout)
                    .map(|_| (next() % 4001) as i32 - 2000)
                    .collect(),
                amax: 255,
                finish,
            })
            .collect();
        let grid = LambdaGrid {
            first: 0,
            per_unit: 1,
            points: 2,
        };
        IntNet::new(cfg, grid, vec![100, -200, 300, 400], layers).unwrap()
    }

    #[test]
    fn block_matching_tiles_and_threads_give_the_same_bits() {
        // A search radius much larger than the network's own receptive field, so that a halo
        // without it would show.
        let mut cfg = NetConfig::by_name("test-nl").unwrap();
        cfg.nonlocal = cfg.nonlocal.map(|nl| crate::prior::nonlocal::NonLocal {
            radius: 40,
            step: 5,
            grids: 2,
            near: 2,
            ..nl
        });
        let net = synthetic(cfg.clone());
        // Repeats every 24 columns and 40 rows, so blocks match far off.
        let mut z = ramp(301, 283);
        let (h, w) = (301, 283);
        for (i, v) in z.data.iter_mut().enumerate() {
            let (y, x) = ((i / w) % h, i % w);
            *v = 0.5 * *v + 0.02 * ((y % 40) as f32 - 20.0) + 0.03 * ((x % 24) as f32 - 12.0);
        }
        for mirrors in [1, 4] {
            let f = |win: &[f32], hh: usize, ww: usize| {
                net.predict_x_mirrored(win, hh, ww, 0.7, mirrors)
            };
            let whole = crate::prior::net::predict_tiled(&cfg, &z, 1 << 20, &f);
            let tiled = crate::prior::net::predict_tiled(&cfg, &z, 64, &f);
            assert!(whole == tiled, "{mirrors} mirror images: tiles differ");
        }
        let v = |threads, mirrors| {
            in_pool(threads, || {
                net.predict_v_mirrored(&z.data[..3 * 48 * 72], 48, 72, 0.3, mirrors)
            })
        };
        assert_eq!(v(3, 4), v(1, 4));
        let one = v(1, 1);
        assert_eq!(v(3, 1), one);
        // The network is not trivial: its output varies.
        assert!(one.iter().any(|&x| x != one[0]));
    }

    /// `a` (planar `(c, h, w)`) with its rows and/or columns reversed, written out.
    fn flip<T: Copy>(a: &[T], h: usize, w: usize, m: Mirror) -> Vec<T> {
        (0..a.len())
            .map(|i| {
                let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
                let y = if m.rows { h - 1 - y } else { y };
                let x = if m.columns { w - 1 - x } else { x };
                a[(c * h + y) * w + x]
            })
            .collect()
    }

    #[test]
    fn mirror_images_share_one_matching() {
        // The definition, step by step: the network on each mirror image of the quantized
        // latent beside the mirror image of the latent's own matched mean, mirrored back, summed.
        let cfg = NetConfig::by_name("test-nl").unwrap();
        let net = synthetic(cfg.clone());
        let (h, w) = (24, 40);
        let z = ramp(h, w);
        let q: Vec<i16> = z.data.iter().map(|&v| quantize_input(v)).collect();
        let matched = block_mean_int(&q, h, w, cfg.nonlocal.unwrap()).remove(0);
        let (rq, planes) = net.conditioning(0.7);
        let mut want = vec![0i32; 3 * h * w];
        let mut sums = Vec::new();
        for m in MODES {
            let buf = vec![0i16; (h / 2) * (w / 2) * cfg.in_channels()];
            let (qm, mm) = (flip(&q, h, w, m), flip(&matched, h, w, m));
            let x = input_map(&qm, &[mm], h, w, planes, MODES[0], buf);
            let v = net.layers_on(x, &rq, &mut Vec::new());
            let mut planar = vec![0i32; 3 * h * w];
            add_unshuffled(&v, h, w, MODES[0], &mut planar);
            for (s, p) in want.iter_mut().zip(flip(&planar, h, w, m)) {
                *s += p;
            }
            sums.push(want.clone());
        }
        assert_eq!(net.predict_v_mirrored(&z.data, h, w, 0.7, 1), sums[0]);
        assert_eq!(net.predict_v_mirrored(&z.data, h, w, 0.7, 2), sums[1]);
        assert_eq!(net.predict_v_mirrored(&z.data, h, w, 0.7, 4), sums[3]);
        // Each image contributes: the sums differ from one pass scaled.
        let scaled: Vec<i32> = sums[0].iter().map(|v| 4 * v).collect();
        assert_ne!(sums[3], scaled);
        // The composition divides by the count exactly.
        let x4 = net.predict_x_mirrored(&z.data, h, w, 0.7, 4);
        assert_eq!(x4, compose_x(&z.data, &sums[3], 4, 0.7));
        let one = net.predict_x(&z.data, h, w, 0.7);
        let twice: Vec<i32> = sums[0].iter().map(|v| 2 * v).collect();
        assert_eq!(compose_x(&z.data, &twice, 2, 0.7), one);
    }

    #[test]
    fn a_second_matched_mean_has_no_integer_form() {
        let bytes = to_safetensors(
            &synthetic(NetConfig::by_name("test-nl").unwrap()),
            "test-nl",
        )
        .unwrap();
        assert!(from_safetensors("test-nl", &bytes).is_ok());
        let err = from_safetensors("test-nl2", &bytes)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no integer form"), "{err}");
    }

    #[test]
    fn experts_may_mix_architectures() {
        let plain =
            to_safetensors(&synthetic(NetConfig::by_name("test").unwrap()), "test").unwrap();
        let nl = NetConfig::by_name("test-nl").unwrap();
        let matched = to_safetensors(&synthetic(nl), "test-nl").unwrap();
        let both = crate::prior::experts::pack(&[plain.clone(), matched.clone()], &[1.0]).unwrap();
        let mixed = crate::prior::network_prior("test,test-nl", &both).unwrap();
        let z = ramp(24, 40);
        for (lambda, alone) in [(0.5, ("test", &plain)), (2.0, ("test-nl", &matched))] {
            let want = crate::prior::network_prior(alone.0, alone.1).unwrap();
            assert_eq!(
                mixed.predict_x(&z, lambda).unwrap().data,
                want.predict_x(&z, lambda).unwrap().data
            );
        }
        // A list of another length, or one architecture for both, is refused.
        let err = |arch: &str| {
            crate::prior::network_prior(arch, &both)
                .err()
                .map(|e| e.to_string())
        };
        assert!(err("test,test-nl,test").unwrap().contains("name 3"));
        assert!(
            err("test").is_some(),
            "a block-matching network loaded as plain"
        );
    }

    #[test]
    fn files_round_trip_byte_for_byte() {
        let net = from_safetensors("tiny", shipped()).unwrap();
        assert_eq!(to_safetensors(&net, "tiny").unwrap(), shipped());
        assert!(is_integer_file(shipped()));
        // An 8-bit network (the shipped one stores I16) is written with I8 weights (half their
        // bytes) and reads back as the same network.
        let int8 = crate::prior::embedded("tiny-int8").expect("tiny-int8 is embedded");
        let a = from_safetensors("tiny", int8).unwrap();
        let bytes = to_safetensors(&a, "tiny").unwrap();
        assert!(bytes.len() < int8.len() * 3 / 4, "{} bytes", bytes.len());
        let b = from_safetensors("tiny", &bytes).unwrap();
        for (x, y) in a.layers().iter().zip(b.layers()) {
            assert_eq!(
                (&x.w, &x.bias, &x.mult, &x.shift),
                (&y.w, &y.bias, &y.mult, &y.shift)
            );
        }
        assert_eq!(to_safetensors(&b, "tiny").unwrap(), bytes);
    }

    #[test]
    fn hostile_files_are_refused_with_a_reason() {
        let parts = || {
            let n = from_safetensors("tiny", shipped()).unwrap();
            let layers: Vec<IntLayerParts> = n
                .layers
                .iter()
                .map(|l| IntLayerParts {
                    name: l.name.clone(),
                    k: l.k,
                    cout: l.cout,
                    w: l.w.clone(),
                    mult: l.mult.clone(),
                    shift: l.shift.clone(),
                    bias: l.bias.clone(),
                    amax: l.amax,
                    finish: l.finish,
                })
                .collect();
            (n.cfg.clone(), n.grid, n.planes.clone(), layers)
        };
        let refuse = |f: &dyn Fn(&mut Vec<IntLayerParts>, &mut LambdaGrid), what: &str| {
            let (cfg, mut grid, planes, mut layers) = parts();
            f(&mut layers, &mut grid);
            let e = IntNet::new(cfg, grid, planes, layers).err().expect(what);
            let msg = e.to_string();
            assert!(msg.contains(what), "{msg:?} should mention {what:?}");
        };
        refuse(&|l, _| l[3].mult[0] = -1, "multiplier or shift");
        refuse(&|l, _| l[3].shift[0] = 63, "multiplier or shift");
        refuse(&|l, _| l[0].w[0] = i16::MIN, "-32768");
        refuse(
            &|l, _| l[5].w.iter_mut().for_each(|w| *w = 30000),
            "overflow",
        );
        refuse(&|l, _| l[2].amax = 0, "amax");
        refuse(
            &|l, _| {
                // mid.0 (inputs up to 2047): sums just inside i32, then the largest bias,
                // multiplier and rounding term.
                let k = l[6].k;
                l[6].w[3 * k..4 * k].fill(800);
                l[6].bias[3] = i32::MAX;
                l[6].mult[3] = i32::MAX;
                l[6].shift[3] = 62;
            },
            "overflow i64",
        );
        refuse(&|l, _| l[1].amax = 7, "skip map"); // enc1.1 writes the skip up1 adds into
        refuse(&|l, _| l[4].bias.pop().map(|_| ()).unwrap(), "sizes");
        refuse(&|_, g| g.per_unit = 0, "grid");
        refuse(&|l, _| l.truncate(3), "layers");
        // Files: not integer weights, truncated, or for another architecture.
        if let Some(float) = crate::prior::embedded("tiny") {
            let e = from_safetensors("tiny", float).err().unwrap().to_string();
            assert!(e.contains("format"), "{e}");
        }
        assert!(from_safetensors("tiny", &shipped()[..1000]).is_err());
        assert!(from_safetensors("small", shipped()).is_err());
        assert!(from_safetensors("tiny", b"").is_err());
    }

    #[test]
    fn grid_positions_and_interpolation_are_exact() {
        let g = LambdaGrid {
            first: -96,
            per_unit: 8,
            points: 225,
        };
        assert_eq!(g.locate(-12.0), GridPos { i: 0, frac: 0 });
        assert_eq!(g.locate(-100.0), GridPos { i: 0, frac: 0 });
        assert_eq!(g.locate(f64::NAN), GridPos { i: 0, frac: 0 });
        assert_eq!(g.locate(16.0), GridPos { i: 223, frac: 256 });
        assert_eq!(g.locate(f64::INFINITY), GridPos { i: 223, frac: 256 });
        assert_eq!(g.locate(0.0), GridPos { i: 96, frac: 0 });
        assert_eq!(g.locate(0.0625), GridPos { i: 96, frac: 128 });
        assert_eq!(g.locate(-0.01), GridPos { i: 95, frac: 236 }); // 0.92 * 256 = 235.52
        let t = [10, -7, 1000, 1001];
        assert_eq!(interpolate(&t, 2, GridPos { i: 0, frac: 128 }), [505, 497]);
        assert_eq!(interpolate(&t, 2, GridPos { i: 0, frac: 1 }), [14, -3]); // +3.87, +3.94
        assert_eq!(
            interpolate(&t, 2, GridPos { i: 0, frac: 256 }),
            [1000, 1001]
        );
        // Negative differences round half up too (floor of x + 1/2).
        let t = [0, 0, -3, -1];
        assert_eq!(interpolate(&t, 2, GridPos { i: 0, frac: 128 }), [-1, 0]); // -1.5 -> -1; -0.5 -> 0
    }

    #[test]
    fn inputs_round_half_away_from_zero_and_clamp() {
        assert_eq!(quantize_input(0.5 / 4096.0), 1);
        assert_eq!(quantize_input(-0.5 / 4096.0), -1);
        assert_eq!(quantize_input(0.49 / 4096.0), 0);
        assert_eq!(quantize_input(100.0), 32767);
        assert_eq!(quantize_input(-100.0), -32767);
        assert_eq!(quantize_input(f32::NAN), 0);
    }
}
