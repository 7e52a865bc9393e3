//! The neural denoiser: a small normalization-free, fully convolutional U-Net in pixel space.
//!
//! Design (see `models/README.md` and the measured notes on CPU training):
//! - Internal layout is `(N, H, W, C)` (channels last) so that every 3x3 convolution is one
//!   im2col (a custom op with its own backward) followed by a single tall 2-D matmul
//!   `cols (N H W, 9 Cin) x W^T (9 Cin, Cout)`; candle's matmul is much faster than its conv2d on
//!   CPU, in the backward pass most of all, and the tall orientation is ~2.5x faster than the
//!   wide one. The weight layout is `(Cout, 9 Cin)` with column `k Cin + c` for tap
//!   `(k / 3 - 1, k % 3 - 1)`.
//! - The input `z` is first folded 2x2 into channels (pixel-unshuffle), so all work happens at
//!   half resolution or below; the output `v` is unfolded (pixel-shuffle) back to full size.
//!   Downsampling is pixel-unshuffle + 1x1, upsampling 1x1 + pixel-shuffle, skips are additive.
//! - The noise level enters twice: two constant input planes (`lambda / 12` and
//!   `sigmoid(-lambda)`, FFDNet-style) and a per-layer additive bias computed from a sinusoidal
//!   embedding of `lambda`. No normalization layers; ReLU activations.
//! - v-prediction: `x_hat = alpha z - sigma v`, `alpha = sqrt(sigmoid(lambda))`,
//!   `sigma = sqrt(sigmoid(-lambda))`.

use std::sync::Arc;

use candle_core::{CpuStorage, DType, Device, Layout, Module, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use super::engine::Engine;
use super::{Denoiser, Planes};
use crate::error::{Error, Result};

pub use super::fnv1a64;
use super::nonlocal::block_mean;
pub use super::nonlocal::NonLocal;

/// Architecture hyper-parameters of a [`DenoiserNet`].
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Channels at 1/2, 1/4 and 1/8 resolution.
    pub channels: [usize; 3],
    /// Number of 3x3 conv layers per level on the way down (the 1/8 level is the middle).
    pub depth: [usize; 3],
    /// Number of 3x3 conv layers at 1/4 and 1/2 resolution on the way up.
    pub up_depth: [usize; 2],
    /// Number of sinusoidal frequencies in the lambda embedding.
    pub n_freq: usize,
    /// Width of the lambda-embedding MLP.
    pub emb_dim: usize,
    /// Block matching on the input ([`NonLocal`]), if any: its mean joins the input planes.
    pub nonlocal: Option<NonLocal>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            channels: [48, 96, 144],
            depth: [2, 2, 3],
            up_depth: [2, 2],
            n_freq: 16,
            emb_dim: 128,
            nonlocal: None,
        }
    }
}

impl NetConfig {
    /// The configuration for a model name (`"tiny"` is the default model), if known.
    pub fn by_name(name: &str) -> Option<NetConfig> {
        match name {
            "tiny" => Some(NetConfig::default()),
            "small" => Some(NetConfig {
                channels: [64, 128, 192],
                depth: [2, 3, 4],
                up_depth: [3, 2],
                ..NetConfig::default()
            }),
            // Prior-v2 pilot: tiny's 1/2 and 1/4 levels, twice the channels and depth at 1/8
            // (more capacity and receptive field where it is cheap); ~1.45x tiny's FLOPs.
            "deep8" => Some(NetConfig {
                channels: [48, 96, 192],
                depth: [2, 2, 6],
                up_depth: [2, 2],
                ..NetConfig::default()
            }),
            // Pilot: `deep-nl16` with a second matched mean, of the 4 nearest of its 16 blocks,
            // as 12 more input channels (`examples/train --grow` from a `deep-nl16` checkpoint
            // starts it as that network).
            "deep-nl16n" => Some(NetConfig {
                nonlocal: Some(NonLocal {
                    near: 4,
                    ..NetConfig::by_name("deep-nl16")?.nonlocal?
                }),
                ..NetConfig::by_name("deep")?
            }),
            // Prior-v2 pilot grown from `tiny` (`examples/train --grow`): one more 3x3 layer
            // per stack at 1/2 and 1/4 resolution and two more at 1/8; ~1.5x tiny's FLOPs.
            "deep" => Some(NetConfig {
                channels: [48, 96, 144],
                depth: [3, 3, 5],
                up_depth: [3, 3],
                ..NetConfig::default()
            }),
            // Non-local pilot: `deep` with the block-matched mean of the latent as input (8x8
            // tiles, the 8 nearest blocks with corners within 16 pixels, at every pixel, and a
            // second grid of tiles half a block inside the first).
            "deep-nl" => Some(NetConfig {
                nonlocal: Some(NonLocal {
                    block: 8,
                    radius: 16,
                    step: 1,
                    k: 8,
                    grids: 2,
                    near: 0,
                }),
                ..NetConfig::by_name("deep")?
            }),
            // `deep-nl` averaging twice the blocks (16) found in a wider search (corners within
            // 24 pixels): more of a façade's repeats per tile, for 2.2x the candidates.
            // The same weights fit both (`examples/train --grow` renames a checkpoint); the
            // middle expert gained 0.02 dB at σ 25 over its `deep-nl` control (model card).
            "deep-nl16" => Some(NetConfig {
                nonlocal: Some(NonLocal {
                    block: 8,
                    radius: 24,
                    step: 1,
                    k: 16,
                    grids: 2,
                    near: 0,
                }),
                ..NetConfig::by_name("deep")?
            }),
            // Prior-v2 pilot grown from `tiny`: 64 channels at 1/2 and 128 at 1/4 resolution
            // (FFDNet-style capacity at high resolution); ~1.6x tiny's FLOPs.
            "wide" => Some(NetConfig {
                channels: [64, 128, 144],
                ..NetConfig::default()
            }),
            // A minute network for unit tests.
            "test" => Some(NetConfig {
                channels: [8, 8, 8],
                depth: [1, 1, 1],
                up_depth: [1, 1],
                n_freq: 4,
                emb_dim: 8,
                nonlocal: None,
            }),
            "test-nl" => Some(NetConfig {
                nonlocal: Some(NonLocal {
                    block: 8,
                    radius: 4,
                    step: 2,
                    k: 3,
                    grids: 1,
                    near: 0,
                }),
                ..NetConfig::by_name("test")?
            }),
            // `test-nl` with a second matched mean (of the 2 nearest of its 3 blocks).
            "test-nl2" => Some(NetConfig {
                nonlocal: Some(NonLocal {
                    near: 2,
                    ..NetConfig::by_name("test-nl")?.nonlocal?
                }),
                ..NetConfig::by_name("test")?
            }),
            _ => None,
        }
    }

    /// Channels of the half-resolution input map: the unshuffled latent and two noise-level
    /// planes, and each unshuffled block-matched mean with [`NonLocal`].
    pub fn in_channels(&self) -> usize {
        super::nonlocal::input_channels(self.nonlocal)
    }

    /// Total spatial down-sampling factor: input height and width must be multiples of it.
    pub fn stride(&self) -> usize {
        8
    }

    /// An upper bound on how far (in pixels, per axis) an input pixel can move an output pixel:
    /// 3x3 layers at scale 1/2, 1/4, 1/8 and the 2x2 (un)shuffles, traced from the output back.
    pub fn receptive_radius(&self) -> usize {
        let r_half = 1 + self.up_depth[1];
        let r_quarter = r_half.div_ceil(2) + self.up_depth[0];
        let r_eighth = r_quarter.div_ceil(2) + self.depth[2];
        let r_quarter = 2 * r_eighth + 1 + self.depth[1];
        let r_half = 2 * r_quarter + 1 + self.depth[0];
        // A tile's mean reads the blocks within `radius` of it; the second grid's tiles only
        // match inside the image without its frame of half a block.
        let frame = |nl: NonLocal| if nl.grids == 2 { nl.block / 2 } else { 0 };
        2 * r_half
            + 1
            + self
                .nonlocal
                .map_or(0, |nl| nl.radius + nl.block + frame(nl))
    }

    /// Multiply-adds x 2 per input pixel of one forward pass (convolutions and 1x1 layers only).
    pub fn flops_per_pixel(&self) -> f64 {
        let [c1, c2, c3] = self.channels;
        let conv = |cin: usize, cout: usize, area: f64| 2.0 * 9.0 * (cin * cout) as f64 / area;
        let pw = |cin: usize, cout: usize, area: f64| 2.0 * (cin * cout) as f64 / area;
        let mut f = conv(self.in_channels(), c1, 4.0);
        if let Some(nl) = self.nonlocal {
            // Distances to every candidate: a multiply-add (after a subtraction) per value.
            let side = (2 * nl.radius / nl.step + 1) as f64;
            f += 2.0 * 3.0 * side * side;
        }
        f += (self.depth[0] - 1) as f64 * conv(c1, c1, 4.0);
        f += pw(4 * c1, c2, 16.0) + self.depth[1] as f64 * conv(c2, c2, 16.0);
        f += pw(4 * c2, c3, 64.0) + self.depth[2] as f64 * conv(c3, c3, 64.0);
        f += pw(c3, 4 * c2, 64.0) + self.up_depth[0] as f64 * conv(c2, c2, 16.0);
        f += pw(c2, 4 * c1, 16.0) + self.up_depth[1] as f64 * conv(c1, c1, 4.0);
        f += conv(c1, 12, 4.0);
        f
    }
}

// ---------------------------------------------------------------------------------------------
// im2col for 3x3 convolutions in (N, H, W, C) layout, with zero padding.

/// `(N, H, W, C)` -> `(N, H, W, 9 C)`: channel `k C + c` holds channel `c` of the pixel at
/// offset `(k / 3 - 1, k % 3 - 1)`, zero outside.
struct Im2col;
/// The adjoint of [`Im2col`]: `(N, H, W, 9 C)` -> `(N, H, W, C)`.
struct Col2im;

fn dims4(layout: &Layout) -> candle_core::Result<(usize, usize, usize, usize)> {
    layout.shape().dims4()
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(d) => d,
        _ => candle_core::bail!("im2col: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("im2col: input must be contiguous"),
    }
}

impl candle_core::CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        "diffc-im2col3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, h, w, c) = dims4(l)?;
        let src = contiguous_f32(s, l)?;
        let mut out = vec![0f32; 9 * n * h * w * c];
        out.par_chunks_mut(9 * w * c)
            .enumerate()
            .for_each(|(r, o)| {
                let (ni, y) = (r / h, r % h);
                for x in 0..w {
                    for k in 0..9 {
                        let sy = y as isize + (k / 3) as isize - 1;
                        let sx = x as isize + (k % 3) as isize - 1;
                        let d = &mut o[(x * 9 + k) * c..(x * 9 + k + 1) * c];
                        if sy < 0 || sy >= h as isize || sx < 0 || sx >= w as isize {
                            d.fill(0.0);
                        } else {
                            let at = ((ni * h + sy as usize) * w + sx as usize) * c;
                            d.copy_from_slice(&src[at..at + c]);
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((n, h, w, 9 * c))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Col2im)?))
    }
}

impl candle_core::CustomOp1 for Col2im {
    fn name(&self) -> &'static str {
        "diffc-col2im3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, h, w, c9) = dims4(l)?;
        let c = c9 / 9;
        let src = contiguous_f32(s, l)?;
        let mut out = vec![0f32; n * h * w * c];
        out.par_chunks_mut(w * c).enumerate().for_each(|(r, o)| {
            let (ni, y) = (r / h, r % h);
            // in[y][x] += cols[y - dy][x - dx][k]
            for k in 0..9 {
                let sy = y as isize - ((k / 3) as isize - 1);
                if sy < 0 || sy >= h as isize {
                    continue;
                }
                let dx = (k % 3) as isize - 1;
                let row =
                    &src[(ni * h + sy as usize) * w * c9..(ni * h + sy as usize + 1) * w * c9];
                for x in 0..w {
                    let sx = x as isize - dx;
                    if sx < 0 || sx >= w as isize {
                        continue;
                    }
                    let g = &row[(sx as usize * 9 + k) * c..(sx as usize * 9 + k + 1) * c];
                    o[x * c..(x + 1) * c]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(a, b)| *a += b);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, h, w, c))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2col)?))
    }
}

/// im2col of a `(N, H, W, C)` tensor (any device; the CPU path uses the custom op).
fn im2col(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1(Im2col)
    } else {
        let (_, h, w, _) = x.dims4()?;
        let p = x.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
        let mut parts = Vec::with_capacity(9);
        for k in 0..9 {
            parts.push(p.narrow(1, k / 3, h)?.narrow(2, k % 3, w)?);
        }
        Tensor::cat(&parts, 3)
    }
}

/// im2col of a `(N, H, W, C)` tensor, `(N, H, W, 9 C)` out (exposed for benchmarks).
pub fn im2col_pub(x: &Tensor) -> candle_core::Result<Tensor> {
    im2col(x)
}

/// Fused `relu(y + b[n])` for `y` `(N, P, C)` and a per-sample bias `b` `(N, C)`.
struct BiasRelu;
/// `grad * (res > 0)`: the backward of [`BiasRelu`] with respect to `y`.
struct ReluMask;

const FUSE_CHUNK: usize = 512;

impl candle_core::CustomOp2 for BiasRelu {
    fn name(&self) -> &'static str {
        "diffc-bias-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, p, c) = l1.shape().dims3()?;
        let y = contiguous_f32(s1, l1)?;
        let b = contiguous_f32(s2, l2)?;
        if b.len() != n * c {
            candle_core::bail!("bias-relu: bias has {} values for {n}x{c}", b.len());
        }
        let mut out = vec![0f32; n * p * c];
        out.par_chunks_mut(FUSE_CHUNK * c)
            .zip(y.par_chunks(FUSE_CHUNK * c))
            .enumerate()
            .for_each(|(i, (o, yi))| {
                for (j, (orow, yrow)) in o.chunks_mut(c).zip(yi.chunks(c)).enumerate() {
                    let ni = (i * FUSE_CHUNK + j) / p;
                    let brow = &b[ni * c..(ni + 1) * c];
                    for ((ov, &yv), &bv) in orow.iter_mut().zip(yrow).zip(brow) {
                        *ov = (yv + bv).max(0.0);
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((n, p, c))))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let gy = grad.contiguous()?.apply_op2_no_bwd(res, &ReluMask)?;
        let gb = gy.sum(1)?;
        Ok((Some(gy), Some(gb)))
    }
}

impl candle_core::CustomOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "diffc-relu-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(s1, l1)?;
        let r = contiguous_f32(s2, l2)?;
        if g.len() != r.len() {
            candle_core::bail!("relu-mask: size mismatch");
        }
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(1 << 16)
            .zip(g.par_chunks(1 << 16).zip(r.par_chunks(1 << 16)))
            .for_each(|(o, (g, r))| {
                for ((ov, &gv), &rv) in o.iter_mut().zip(g).zip(r) {
                    *ov = if rv > 0.0 { gv } else { 0.0 };
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `relu(y + b)` with `y` `(N, P, C)` and `b` `(N, C)` broadcast over `P`.
fn bias_relu(y: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if y.device().is_cpu() {
        y.contiguous()?.apply_op2(&b.contiguous()?, BiasRelu)
    } else {
        let (n, _, c) = y.dims3()?;
        y.broadcast_add(&b.reshape((n, 1, c))?)?.relu()
    }
}

/// `(N, H, W, C)` -> `(N, H / 2, W / 2, 4 C)`; channel `(dy * 2 + dx) C + c`.
fn unshuffle(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, h, w, c) = x.dims4()?;
    x.reshape(vec![n, h / 2, 2, w / 2, 2, c])?
        .permute(vec![0, 1, 3, 2, 4, 5])?
        .contiguous()?
        .reshape((n, h / 2, w / 2, 4 * c))
}

/// Inverse of [`unshuffle`].
fn shuffle(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, h, w, c4) = x.dims4()?;
    let c = c4 / 4;
    x.reshape(vec![n, h, w, 2, 2, c])?
        .permute(vec![0, 1, 3, 2, 4, 5])?
        .contiguous()?
        .reshape((n, 2 * h, 2 * w, c))
}

// ---------------------------------------------------------------------------------------------
// Layers.

/// A dense layer `y = x W^T + b` on `(N, in)`.
pub(crate) struct Dense {
    pub(crate) w: Tensor,
    pub(crate) b: Tensor,
}

impl Dense {
    fn new(vb: VarBuilder, cin: usize, cout: usize, std: f64) -> candle_core::Result<Self> {
        let w = vb.get_with_hints(
            (cout, cin),
            "w",
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        )?;
        let b = vb.get_with_hints(cout, "b", Init::Const(0.0))?;
        Ok(Dense { w, b })
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w.t()?)?.broadcast_add(&self.b)
    }
}

/// Largest im2col buffer (in f32 elements) of one band in [`conv3x3_banded`].
const BAND_ELEMS: usize = 1 << 21;

/// 3x3 convolution (zero padding) of `x` `(N, H, W, Cin)` with `w` `(Cout, 9 Cin)`, computed in
/// bands of rows whose im2col buffer holds at most `band_elems` values. `(N, H, W, Cout)` out.
fn conv3x3_banded(x: &Tensor, w: &Tensor, band_elems: usize) -> candle_core::Result<Tensor> {
    let (n, h, wd, cin) = x.dims4()?;
    let cout = w.dim(0)?;
    let wt = w.t()?;
    let rows = (band_elems / (n * wd * 9 * cin).max(1)).clamp(1, h);
    let mut outs = Vec::with_capacity(h.div_ceil(rows));
    let mut r0 = 0;
    while r0 < h {
        let r1 = (r0 + rows).min(h);
        let (a, b) = (r0.saturating_sub(1), (r1 + 1).min(h));
        let cols = im2col(&x.narrow(1, a, b - a)?)?
            .narrow(1, r0 - a, r1 - r0)?
            .contiguous()?;
        let m = n * (r1 - r0) * wd;
        outs.push(
            cols.reshape((m, 9 * cin))?
                .matmul(&wt)?
                .reshape((n, r1 - r0, wd, cout))?,
        );
        r0 = r1;
    }
    Tensor::cat(&outs, 1)
}

/// A 3x3 (`k3`) or 1x1 convolution on `(N, H, W, C)` with a lambda-dependent bias.
pub(crate) struct Conv {
    pub(crate) w: Tensor,
    k3: bool,
    cout: usize,
    pub(crate) bias: Dense,
}

impl Conv {
    fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        k3: bool,
        emb_dim: usize,
        zero: bool,
    ) -> candle_core::Result<Self> {
        let fan_in = if k3 { 9 * cin } else { cin };
        let init = if zero {
            Init::Const(0.0)
        } else {
            Init::Randn {
                mean: 0.0,
                stdev: (2.0 / fan_in as f64).sqrt(),
            }
        };
        let w = vb.get_with_hints((cout, fan_in), "w", init)?;
        let bias = Dense::new(vb.pp("emb"), emb_dim, cout, 0.02 / (emb_dim as f64).sqrt())?;
        Ok(Conv { w, k3, cout, bias })
    }

    /// The convolution without bias, `(N, H W, Cout)`.
    fn linear(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, _) = x.dims4()?;
        if self.k3 && !x.track_op() && !self.w.track_op() && x.device().is_cpu() {
            // Inference: bands of rows keep the im2col buffers small (no huge allocations, far
            // fewer page faults); the result is the same.
            return conv3x3_banded(x, &self.w, BAND_ELEMS)?.reshape((n, h * w, self.cout));
        }
        let cols = if self.k3 { im2col(x)? } else { x.clone() };
        let k = cols.dim(3)?;
        cols.reshape((n * h * w, k))?
            .matmul(&self.w.t()?)?
            .reshape((n, h * w, self.cout))
    }

    /// `x` is `(N, H, W, Cin)`, `emb` is `(N, emb_dim)`.
    fn forward(&self, x: &Tensor, emb: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, _) = x.dims4()?;
        let b = self.bias.forward(emb)?.reshape((n, 1, self.cout))?;
        self.linear(x)?
            .broadcast_add(&b)?
            .reshape((n, h, w, self.cout))
    }

    /// `relu(forward(x, emb))`, fused.
    fn forward_relu(&self, x: &Tensor, emb: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, _) = x.dims4()?;
        let b = self.bias.forward(emb)?;
        bias_relu(&self.linear(x)?, &b)?.reshape((n, h, w, self.cout))
    }
}

/// The denoising network. See the module documentation for the architecture.
pub struct DenoiserNet {
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
}

impl DenoiserNet {
    /// Build (or load, depending on `vb`) a network with configuration `cfg`.
    pub fn new(vb: VarBuilder, cfg: &NetConfig) -> candle_core::Result<Self> {
        let [c1, c2, c3] = cfg.channels;
        let e = cfg.emb_dim;
        let ne = 2 * cfg.n_freq + 1;
        let emb1 = Dense::new(vb.pp("emb1"), ne, e, (2.0 / ne as f64).sqrt())?;
        let emb2 = Dense::new(vb.pp("emb2"), e, e, (2.0 / e as f64).sqrt())?;
        let stack =
            |name: &str, cin: usize, c: usize, n: usize| -> candle_core::Result<Vec<Conv>> {
                (0..n)
                    .map(|i| {
                        let ci = if i == 0 { cin } else { c };
                        Conv::new(vb.pp(format!("{name}.{i}")), ci, c, true, e, false)
                    })
                    .collect()
            };
        Ok(DenoiserNet {
            cfg: cfg.clone(),
            emb1,
            emb2,
            enc1: stack("enc1", cfg.in_channels(), c1, cfg.depth[0])?,
            down1: Conv::new(vb.pp("down1"), 4 * c1, c2, false, e, false)?,
            enc2: stack("enc2", c2, c2, cfg.depth[1])?,
            down2: Conv::new(vb.pp("down2"), 4 * c2, c3, false, e, false)?,
            mid: stack("mid", c3, c3, cfg.depth[2])?,
            up2: Conv::new(vb.pp("up2"), c3, 4 * c2, false, e, false)?,
            dec2: stack("dec2", c2, c2, cfg.up_depth[0])?,
            up1: Conv::new(vb.pp("up1"), c2, 4 * c1, false, e, false)?,
            dec1: stack("dec1", c1, c1, cfg.up_depth[1])?,
            out: Conv::new(vb.pp("out"), c1, 12, true, e, true)?,
        })
    }

    /// The configuration this network was built with.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// Sinusoidal lambda features `(N, 2 n_freq + 1)`.
    fn lambda_features(&self, lam: &[f32], dev: &Device) -> candle_core::Result<Tensor> {
        let v = lambda_features(lam, self.cfg.n_freq);
        Tensor::from_vec(v, (lam.len(), 2 * self.cfg.n_freq + 1), dev)
    }

    /// The layers, for [`super::engine::Engine`].
    pub(crate) fn parts(&self) -> NetParts<'_> {
        NetParts {
            emb1: &self.emb1,
            emb2: &self.emb2,
            enc1: &self.enc1,
            down1: &self.down1,
            enc2: &self.enc2,
            down2: &self.down2,
            mid: &self.mid,
            up2: &self.up2,
            dec2: &self.dec2,
            up1: &self.up1,
            dec1: &self.dec1,
            out: &self.out,
        }
    }

    /// Predict `x_hat` `(B, 3, H, W)` from `z` `(B, 3, H, W)` at log-SNR `lambda` `(B,)`.
    /// `H` and `W` must be multiples of [`NetConfig::stride`].
    pub fn forward(&self, z: &Tensor, lambda: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = z.dims4()?;
        let s = self.cfg.stride();
        if c != 3 || h % s != 0 || w % s != 0 || h == 0 || w == 0 {
            candle_core::bail!(
                "DenoiserNet: input must be (B, 3, H, W) with H, W multiples of {s}, got {:?}",
                z.dims()
            );
        }
        let dev = z.device();
        let lam: Vec<f32> = lambda.to_dtype(DType::F32)?.to_vec1()?;
        if lam.len() != b {
            candle_core::bail!(
                "DenoiserNet: lambda has {} entries for batch {b}",
                lam.len()
            );
        }
        let emb = self
            .emb1
            .forward(&self.lambda_features(&lam, dev)?)?
            .relu()?;
        let emb = self.emb2.forward(&emb)?.relu()?;

        // Noise-level planes at half resolution.
        let mut planes = Vec::with_capacity(2 * b);
        planes.extend(lam.iter().map(|&l| l / 12.0));
        planes.extend(lam.iter().map(|&l| 1.0 / (1.0 + (l as f64).exp()) as f32));
        let planes = Tensor::from_vec(planes, (2, b, 1, 1), dev)?
            .permute((1, 2, 3, 0))?
            .broadcast_as((b, h / 2, w / 2, 2))?;

        let zt = z.permute((0, 2, 3, 1))?.contiguous()?; // (B, H, W, 3)
        let mut x = Tensor::cat(&[unshuffle(&zt)?, planes.contiguous()?], 3)?;
        if let Some(nl) = self.cfg.nonlocal {
            // A function of the input alone: no gradient flows through the matching.
            let zv: Vec<f32> = z.flatten_all()?.to_vec1()?;
            for m in block_mean(&zv, b, h, w, nl) {
                let m = Tensor::from_vec(m, (b, 3, h, w), dev)?
                    .permute((0, 2, 3, 1))?
                    .contiguous()?;
                x = Tensor::cat(&[x, unshuffle(&m)?], 3)?;
            }
        }
        for l in &self.enc1 {
            x = l.forward_relu(&x, &emb)?;
        }
        let s1 = x.clone();
        x = self.down1.forward_relu(&unshuffle(&x)?, &emb)?;
        for l in &self.enc2 {
            x = l.forward_relu(&x, &emb)?;
        }
        let s2 = x.clone();
        x = self.down2.forward_relu(&unshuffle(&x)?, &emb)?;
        for l in &self.mid {
            x = l.forward_relu(&x, &emb)?;
        }
        x = (shuffle(&self.up2.forward(&x, &emb)?)? + s2)?.relu()?;
        for l in &self.dec2 {
            x = l.forward_relu(&x, &emb)?;
        }
        x = (shuffle(&self.up1.forward(&x, &emb)?)? + s1)?.relu()?;
        for l in &self.dec1 {
            x = l.forward_relu(&x, &emb)?;
        }
        let v = shuffle(&self.out.forward(&x, &emb)?)?.permute((0, 3, 1, 2))?; // (B, 3, H, W)

        let mut ab = Vec::with_capacity(2 * b);
        ab.extend(lam.iter().map(|&l| alpha_f(l)));
        ab.extend(lam.iter().map(|&l| sigma_f(l)));
        let ab = Tensor::from_vec(ab, (2, b, 1, 1, 1), dev)?;
        let (a, sg) = (ab.get(0)?, ab.get(1)?);
        z.broadcast_mul(&a)? - v.broadcast_mul(&sg)?
    }
}

/// Borrowed layers of a [`DenoiserNet`].
pub(crate) struct NetParts<'a> {
    pub emb1: &'a Dense,
    pub emb2: &'a Dense,
    pub enc1: &'a [Conv],
    pub down1: &'a Conv,
    pub enc2: &'a [Conv],
    pub down2: &'a Conv,
    pub mid: &'a [Conv],
    pub up2: &'a Conv,
    pub dec2: &'a [Conv],
    pub up1: &'a Conv,
    pub dec1: &'a [Conv],
    pub out: &'a Conv,
}

/// Sinusoidal features of each lambda, `2 n_freq + 1` per entry: `lambda / 12`, then `sin` and
/// `cos` of `lambda` times angular frequencies spaced geometrically from 0.02 to 3.
pub(crate) fn lambda_features(lam: &[f32], nf: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(lam.len() * (2 * nf + 1));
    for &l in lam {
        v.push(l / 12.0);
        for i in 0..nf {
            let t = if nf > 1 {
                i as f64 / (nf - 1) as f64
            } else {
                0.0
            };
            let f = (0.02f64.ln() + t * (3.0f64.ln() - 0.02f64.ln())).exp();
            let a = l as f64 * f;
            v.push(a.sin() as f32);
            v.push(a.cos() as f32);
        }
    }
    v
}

/// `sqrt(sigmoid(lambda))` in f64, rounded to f32.
pub fn alpha_f(lambda: f32) -> f32 {
    (1.0 / (1.0 + (-lambda as f64).exp())).sqrt() as f32
}

/// `sqrt(sigmoid(-lambda))` in f64, rounded to f32.
pub fn sigma_f(lambda: f32) -> f32 {
    (1.0 / (1.0 + (lambda as f64).exp())).sqrt() as f32
}

// ---------------------------------------------------------------------------------------------
// The Denoiser implementation.

/// Upper estimate of the bytes a forward pass allocates per (padded) pixel. Measured: peak RSS
/// of `diffc decompress` grows by ~370 bytes per pixel between a 256x256 and a 768x512 image,
/// ~250 of which are the network's (the rest are the codec's own buffers); doubled for margin.
pub const NET_BYTES_PER_PIXEL: u64 = 512;

/// Side of the square tiles the engine evaluates large images in (a multiple of the stride).
pub(crate) const TILE: usize = 768;
/// Context around each tile: the network's receptive-field radius rounded up to the stride
/// (64 pixels for `tiny`, whose measured radius is 57: `tiles_match_whole_image`).
pub(crate) fn halo(cfg: &NetConfig) -> usize {
    cfg.receptive_radius().next_multiple_of(cfg.stride())
}

/// Rows `y0..y1` and columns `x0..x1` of `z` (planar, 3 channels), reading past the bottom and
/// right edges as the last row and column (the stride padding).
fn window(z: &Planes, y0: usize, y1: usize, x0: usize, x1: usize) -> Vec<f32> {
    let (h, w) = (z.height, z.width);
    let ww = x1 - x0;
    let mut out = vec![0f32; 3 * (y1 - y0) * ww];
    for c in 0..3 {
        for y in y0..y1 {
            let src = &z.data[(c * h + y.min(h - 1)) * w..(c * h + y.min(h - 1) + 1) * w];
            let dst = &mut out[(c * (y1 - y0) + y - y0) * ww..(c * (y1 - y0) + y - y0 + 1) * ww];
            for (x, d) in (x0..x1).zip(dst) {
                *d = src[x.min(w - 1)];
            }
        }
    }
    out
}

/// `x_hat` of a whole image through the engine: in one pass when the padded image is at most
/// `(tile + 2 halo)^2` pixels, otherwise in `tile x tile` tiles, each evaluated with [`halo`]
/// pixels of context on every side, so that every output pixel sees the same input as in one
/// pass (the results agree up to float summation order). Memory is then bounded by the tile.
///
/// `f(window, h, w)` evaluates the network on one planar window (any exact network: the integer
/// prior's tiles equal its whole-image pass bit for bit).
pub(crate) fn predict_tiled(cfg: &NetConfig, z: &Planes, tile: usize, f: &WindowFn) -> Vec<f32> {
    let s = cfg.stride();
    let halo = halo(cfg);
    let (h, w) = (z.height, z.width);
    let (hp, wp) = (h.div_ceil(s) * s, w.div_ceil(s) * s);
    let mut data = vec![0f32; 3 * h * w];
    let whole = hp * wp <= (tile + 2 * halo) * (tile + 2 * halo);
    let step = if whole { hp.max(wp) } else { tile };
    for ty in (0..hp).step_by(step) {
        for tx in (0..wp).step_by(step) {
            let (y0, y1) = (ty.saturating_sub(halo), (ty + step + halo).min(hp));
            let (x0, x1) = (tx.saturating_sub(halo), (tx + step + halo).min(wp));
            let (y0, y1, x0, x1) = if whole {
                (0, hp, 0, wp)
            } else {
                (y0, y1, x0, x1)
            };
            let out = f(&window(z, y0, y1, x0, x1), y1 - y0, x1 - x0);
            let ww = x1 - x0;
            for c in 0..3 {
                for y in ty..(ty + step).min(h) {
                    let xe = (tx + step).min(w);
                    if tx >= xe {
                        continue;
                    }
                    let src = (c * (y1 - y0) + y - y0) * ww + tx - x0;
                    let dst = (c * h + y) * w + tx;
                    data[dst..dst + xe - tx].copy_from_slice(&out[src..src + xe - tx]);
                }
            }
        }
    }
    data
}

/// The input every network prior accepts: three channels, non-empty, as many samples as that.
pub(crate) fn check_network_input(z: &Planes) -> Result<()> {
    if z.channels != 3 || z.height == 0 || z.width == 0 || z.data.len() != 3 * z.height * z.width {
        return Err(Error::InvalidArgument(format!(
            "network prior needs a non-empty 3-channel image, got {}x{}x{}",
            z.channels, z.height, z.width
        )));
    }
    Ok(())
}

/// Working memory of a network evaluated by [`predict_tiled`]: the output image plus one tile
/// window's input, activations and output at `per_pixel` bytes per window pixel.
pub(crate) fn tiled_working_bytes(
    cfg: &NetConfig,
    height: usize,
    width: usize,
    per_pixel: u64,
) -> u64 {
    let s = cfg.stride() as u64;
    let padded = (height as u64).div_ceil(s) * s * (width as u64).div_ceil(s) * s;
    let side = (TILE + 2 * halo(cfg)) as u64;
    (12 * height as u64 * width as u64)
        .saturating_add(padded.min(side * side).saturating_mul(per_pixel))
}

/// A network evaluated on one planar `(3, h, w)` window: `f(window, h, w)`.
pub(crate) type WindowFn<'a> = dyn Fn(&[f32], usize, usize) -> Vec<f32> + 'a;

/// Upper estimate of the bytes the engine holds per pixel of the window it evaluates: the
/// activations at 1/2, 1/4 and 1/8 resolution that are alive at once (~290 B for `tiny`), the
/// window's input and output (24 B), with margin.
pub const ENGINE_BYTES_PER_PIXEL: u64 = 400;

/// A [`DenoiserNet`] with its weights, usable as a codec prior.
pub struct NetDenoiser {
    name: String,
    id: u64,
    net: Arc<DenoiserNet>,
    /// The fast CPU path; `None` on other devices, where the graph runs.
    engine: Option<Arc<Engine>>,
    device: Device,
}

impl NetDenoiser {
    /// Load safetensors weights for the architecture `NetConfig::by_name(name)`.
    pub fn from_safetensors_bytes(name: &str, bytes: &[u8], device: &Device) -> Result<Self> {
        let cfg = NetConfig::by_name(name).ok_or_else(|| Error::UnknownModel(name.to_string()))?;
        let vb = VarBuilder::from_slice_safetensors(bytes, DType::F32, device)
            .map_err(|e| Error::Model(format!("bad weights for {name}: {e}")))?;
        let net = DenoiserNet::new(vb, &cfg)
            .map_err(|e| Error::Model(format!("bad weights for {name}: {e}")))?;
        Self::with_engine(name, fnv1a64(bytes), net, device)
    }

    fn with_engine(name: &str, id: u64, net: DenoiserNet, device: &Device) -> Result<Self> {
        let engine = if device.is_cpu() {
            Some(Arc::new(Engine::new(&net).map_err(|e| {
                Error::Model(format!("cannot build the engine for {name}: {e}"))
            })?))
        } else {
            None
        };
        Ok(NetDenoiser {
            name: name.to_string(),
            id,
            net: Arc::new(net),
            engine,
            device: device.clone(),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &NetConfig {
        self.net.config()
    }

    /// The same network under another model name (e.g. an older snapshot of an architecture).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Use candle's graph even on CPU (the reference path; slower). For comparisons.
    pub fn without_engine(mut self) -> Self {
        self.engine = None;
        self
    }

    /// Wrap an already built network (e.g. an all-zero one in tests).
    pub fn from_net(name: &str, id: u64, net: DenoiserNet, device: &Device) -> Result<Self> {
        Self::with_engine(name, id, net, device)
    }
}

impl Denoiser for NetDenoiser {
    fn name(&self) -> &str {
        &self.name
    }

    fn model_id(&self) -> u64 {
        self.id
    }

    fn working_bytes(&self, height: usize, width: usize) -> u64 {
        let s = self.net.cfg.stride() as u64;
        let padded = (height as u64).div_ceil(s) * s * (width as u64).div_ceil(s) * s;
        if self.engine.is_none() {
            return padded.saturating_mul(NET_BYTES_PER_PIXEL);
        }
        tiled_working_bytes(&self.net.cfg, height, width, ENGINE_BYTES_PER_PIXEL)
    }

    fn predict_x(&self, z: &Planes, lambda: f64) -> Result<Planes> {
        check_network_input(z)?;
        let (h, w) = (z.height, z.width);
        let data = match &self.engine {
            Some(e) => predict_tiled(e.config(), z, TILE, &|win, wh, ww| {
                e.predict_x(win, wh, ww, lambda as f32)
            }),
            None => {
                let s = self.net.cfg.stride();
                let (hp, wp) = (h.div_ceil(s) * s, w.div_ceil(s) * s);
                let padded = window(z, 0, hp, 0, wp);
                let zt = Tensor::from_vec(padded, (1, 3, hp, wp), &self.device)?;
                let lt = Tensor::from_vec(vec![lambda as f32], 1, &self.device)?;
                let out: Vec<f32> = self.net.forward(&zt, &lt)?.flatten_all()?.to_vec1()?;
                let mut data = Vec::with_capacity(3 * h * w);
                for c in 0..3 {
                    for y in 0..h {
                        data.extend_from_slice(&out[(c * hp + y) * wp..(c * hp + y) * wp + w]);
                    }
                }
                data
            }
        };
        Ok(Planes {
            channels: 3,
            height: h,
            width: w,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_net(zero: bool) -> NetDenoiser {
        let dev = Device::Cpu;
        let cfg = NetConfig::by_name("test").unwrap();
        let net = if zero {
            DenoiserNet::new(VarBuilder::zeros(DType::F32, &dev), &cfg).unwrap()
        } else {
            let vm = candle_nn::VarMap::new();
            let net =
                DenoiserNet::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), &cfg).unwrap();
            // Make the output layer non-zero so the test sees the whole network.
            for (k, v) in vm.data().lock().unwrap().iter() {
                if k.starts_with("out.") && k.ends_with(".w") {
                    let t = Tensor::full(0.01f32, v.shape(), &dev).unwrap();
                    v.set(&t).unwrap();
                }
            }
            net
        };
        NetDenoiser::from_net("test", 1, net, &dev).unwrap()
    }

    fn ramp(h: usize, w: usize) -> Planes {
        let mut p = Planes::zeros(3, h, w);
        for (i, v) in p.data.iter_mut().enumerate() {
            *v = ((i * 7919) % 200) as f32 / 100.0 - 1.0;
        }
        p
    }

    #[test]
    fn odd_sizes_pad_and_crop() {
        let d = test_net(true);
        for (h, w) in [(13, 21), (1, 1), (8, 8), (9, 17)] {
            let z = ramp(h, w);
            let x = d.predict_x(&z, 2.0).unwrap();
            assert_eq!((x.channels, x.height, x.width), (3, h, w));
            // All-zero weights: v = 0, so x_hat = alpha z.
            let a = alpha_f(2.0);
            for (o, i) in x.data.iter().zip(&z.data) {
                assert!((o - a * i).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn deterministic() {
        let d = test_net(false);
        let z = ramp(24, 40);
        let a = d.predict_x(&z, 1.5).unwrap();
        let b = d.predict_x(&z, 1.5).unwrap();
        assert_eq!(a, b);
        let c = d.predict_x(&z, -1.5).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn im2col_matches_conv2d_and_adjoint() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 5, 7), &dev).unwrap(); // NCHW
        let w = Tensor::randn(0f32, 1.0, (4, 3, 3, 3), &dev).unwrap();
        let r = x.conv2d(&w, 1, 1, 1, 1).unwrap(); // (2, 4, 5, 7)
                                                   // Ours: NHWC, weight (Cout, 9 Cin) with column k Cin + c.
        let xn = x.permute((0, 2, 3, 1)).unwrap().contiguous().unwrap();
        let wk = w.permute((0, 2, 3, 1)).unwrap().reshape((4, 27)).unwrap();
        let cols = im2col(&xn).unwrap().reshape((70, 27)).unwrap();
        let o = cols
            .matmul(&wk.t().unwrap())
            .unwrap()
            .reshape((2, 5, 7, 4))
            .unwrap()
            .permute((0, 3, 1, 2))
            .unwrap();
        let d = (o - r).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-4);
        // <im2col(x), g> == <x, col2im(g)>
        let g = Tensor::randn(0f32, 1.0, (2, 5, 7, 27), &dev).unwrap();
        let lhs = (im2col(&xn).unwrap() * &g).unwrap().sum_all().unwrap();
        let rhs = (xn * g.apply_op1(Col2im).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let (l, r) = (
            lhs.to_scalar::<f32>().unwrap(),
            rhs.to_scalar::<f32>().unwrap(),
        );
        assert!((l - r).abs() < 1e-3 * l.abs().max(1.0));
    }

    #[test]
    fn fused_bias_relu_matches_unfused_with_gradients() {
        let dev = Device::Cpu;
        let y = candle_core::Var::randn(0f32, 1.0, (2, 700, 5), &dev).unwrap();
        let b = candle_core::Var::randn(0f32, 1.0, (2, 5), &dev).unwrap();
        let wgt = Tensor::randn(0f32, 1.0, (2, 700, 5), &dev).unwrap();
        let f = bias_relu(&y, &b).unwrap();
        let u = y
            .broadcast_add(&b.reshape((2, 1, 5)).unwrap())
            .unwrap()
            .relu()
            .unwrap();
        let d = (&f - &u).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
        let gf = (f * &wgt).unwrap().sum_all().unwrap().backward().unwrap();
        let gu = (u * &wgt).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [y.as_tensor(), b.as_tensor()] {
            let a = gf.get(v).unwrap();
            let c = gu.get(v).unwrap();
            let d = (a - c).unwrap().abs().unwrap().max_all().unwrap();
            // The bias gradient sums 700 products in another order: f32 rounding alone is
            // ~4e-5 (one standard deviation), so 1e-4 failed now and then.
            assert!(d.to_scalar::<f32>().unwrap() < 1e-3);
        }
    }

    #[test]
    fn banded_conv_matches_whole() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 11, 9, 4), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (5, 36), &dev).unwrap();
        let whole = conv3x3_banded(&x, &w, usize::MAX).unwrap();
        let cols = im2col(&x).unwrap().reshape((2 * 11 * 9, 36)).unwrap();
        let direct = cols
            .matmul(&w.t().unwrap())
            .unwrap()
            .reshape((2, 11, 9, 5))
            .unwrap();
        for band in [1, 2 * 9 * 36 * 2, 2 * 9 * 36 * 3] {
            let b = conv3x3_banded(&x, &w, band).unwrap();
            for r in [&whole, &direct] {
                let d = (&b - r).unwrap().abs().unwrap().max_all().unwrap();
                assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
            }
        }
    }

    #[test]
    fn tiles_match_whole_image() {
        // Random weights everywhere, so every layer widens the receptive field; the image is
        // several tiles wide and not a multiple of the stride.
        let cfg = NetConfig::by_name("tiny").unwrap();
        let (net, _) = crate::prior::engine::tests::random_net(&cfg);
        let e = Engine::new(&net).unwrap();
        let f = |w: &[f32], h: usize, ww: usize| e.predict_x(w, h, ww, 2.5);
        let z = ramp(301, 283);
        let whole = predict_tiled(&cfg, &z, 1 << 20, &f);
        for tile in [64, 128] {
            let tiled = predict_tiled(&cfg, &z, tile, &f);
            let d = whole
                .iter()
                .zip(&tiled)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(d <= 1e-5, "tile {tile}: max diff {d}");
        }
        // A halo narrower than the receptive field would show: shifting one input pixel far
        // from a tile edge changes outputs up to ~59 pixels away, and no further.
        let mut z2 = z.clone();
        z2.data[150 * 283 + 140] += 1.0;
        let moved = predict_tiled(&cfg, &z2, 1 << 20, &f);
        let reach = (0..301 * 283)
            .filter(|&i| (moved[i] - whole[i]).abs() > 0.0)
            .map(|i| {
                ((i / 283) as i64 - 150)
                    .abs()
                    .max(((i % 283) as i64 - 140).abs())
            })
            .max()
            .unwrap();
        let bound = cfg.receptive_radius() as i64;
        assert!(
            (bound - 8..=bound).contains(&reach),
            "radius {reach}, bound {bound}"
        );
        assert_eq!(halo(&cfg), 64);
    }

    #[test]
    fn shuffle_inverts_unshuffle() {
        let x = Tensor::randn(0f32, 1.0, (2, 4, 6, 3), &Device::Cpu).unwrap();
        let y = shuffle(&unshuffle(&x).unwrap()).unwrap();
        let d = (x - y).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn unknown_name_and_bad_weights() {
        let dev = Device::Cpu;
        assert!(matches!(
            NetDenoiser::from_safetensors_bytes("nope", b"", &dev),
            Err(Error::UnknownModel(_))
        ));
        assert!(matches!(
            NetDenoiser::from_safetensors_bytes("tiny", b"garbage", &dev),
            Err(Error::Model(_))
        ));
    }
}
