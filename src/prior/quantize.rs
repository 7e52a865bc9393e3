//! Post-training quantization: an [`IntNet`] from a float network and calibration images.
//!
//! 1. *Calibrate*: run the float engine on noisy calibration crops over a spread of log-SNRs
//!    and record a high quantile of every activation map (the maps that become skips include
//!    their values after the skip addition, since one scale serves both).
//! 2. *Scales*: each map's scale is its quantile over `amax`; the input is `z * 2^12`; weights
//!    get one scale per output channel ([`weight_scale`]: `max |w| / wmax`). `amax` and `wmax`
//!    may differ per layer ([`LayerMax`]).
//! 3. *Requantization*: `mult / 2^shift ~ s_in s_w / s_out` with `mult` in `[2^30, 2^31)`.
//! 4. *Tables*: at every grid log-SNR the float network's lambda biases, divided by
//!    `s_in s_w`, and the two noise-level planes times `2^12`.
//!
//! Calibration never reads the dev set (the caller passes training images).

use super::engine::{conv_forward, conv_layers, input_map, up_into, Engine, Pool};
use super::intnet::{
    layer_roles, Finish, IntLayerParts, IntNet, LambdaGrid, IN_LOG2, IN_MAX, V_LOG2,
};
use crate::error::Result;

/// What to quantize with.
#[derive(Clone, Debug)]
pub struct QuantOptions {
    /// Largest activation value (255 for 8-bit maps).
    pub amax: i32,
    /// Largest weight magnitude (127 for 8-bit weights).
    pub wmax: i32,
    /// Layers whose weights get another largest magnitude.
    pub layer_wmax: LayerMax,
    /// Layers whose maps get another largest value.
    pub layer_amax: LayerMax,
    /// Quantile of each map's values that maps to `amax`.
    pub quantile: f64,
    /// Log-SNRs calibrated at.
    pub lambdas: Vec<f32>,
    /// The tables' grid.
    pub grid: LambdaGrid,
}

impl Default for QuantOptions {
    fn default() -> Self {
        QuantOptions {
            amax: 2047,
            wmax: 511,
            layer_wmax: LayerMax::default(),
            layer_amax: LayerMax::default(),
            quantile: 0.99999,
            lambdas: (-10..=16).map(|l| l as f32).collect(),
            grid: LambdaGrid {
                first: -12 * 8,
                per_unit: 8,
                points: 28 * 8 + 1,
            },
        }
    }
}

/// The `q` quantile of `v` (by selection on a copy of every 3rd value).
fn quantile(v: &[f32], q: f64) -> f32 {
    let mut s: Vec<f32> = v.iter().step_by(3).copied().collect();
    if s.is_empty() {
        return 0.0;
    }
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    let (_, x, _) = s.select_nth_unstable_by(i, f32::total_cmp);
    *x
}

/// Run the float engine on `z` (planar, one image) at `lambda` and return, per layer in
/// [`conv_layers`] order, the quantile of the map it writes (for skip additions: of the map
/// after the addition).
fn map_quantiles(e: &Engine, z: &[f32], h: usize, w: usize, lambda: f32, q: f64) -> Vec<f32> {
    let mut pool = Pool::default();
    let (_, _, emb) = e.embed(&[lambda]);
    let mut x = input_map(&mut pool, z, 1, h, w, &[lambda], e.cfg.nonlocal);
    let roles = layer_roles(e.config());
    let convs = e.convs();
    let [d0, d1, _] = e.config().depth;
    let mut skips = Vec::new();
    let mut out = Vec::new();
    for (idx, (l, (g, finish))) in convs.iter().zip(roles).enumerate() {
        match finish {
            Finish::Relu => {
                x = conv_forward(&mut pool, l, &emb, &x, g, true);
                out.push(quantile(&x.data, q));
                if idx + 1 == d0 || idx + 1 == d0 + 1 + d1 {
                    skips.push(x.clone());
                }
            }
            Finish::IntoSkip => {
                let mut s = skips.pop().expect("skip");
                up_into(l, &emb, &x, &mut s);
                out.push(quantile(&s.data, q));
                x = s;
            }
            Finish::Output => out.push(0.0),
        }
    }
    out
}

/// `(layer writing a skip map, up layer adding into it)`, as indices into `conv_layers`.
fn skip_pairs(cfg: &super::net::NetConfig) -> [(usize, usize); 2] {
    let roles = layer_roles(cfg);
    let [d0, d1, _] = cfg.depth;
    let up2 = roles
        .iter()
        .position(|r| r.1 == Finish::IntoSkip)
        .expect("an up layer");
    let up1 = up2 + 1 + cfg.up_depth[0];
    [(d0 - 1, up1), (d0 + d1, up2)]
}

/// `(mult, shift)` with `mult / 2^shift` closest to `r` and `mult < 2^31`.
fn multiplier(r: f64) -> (i32, u8) {
    if r.is_nan() || r <= 0.0 {
        return (0, 1);
    }
    let mut shift = 62u8;
    while shift > 1 && (r * (1u64 << shift) as f64).round() >= (1u64 << 31) as f64 {
        shift -= 1;
    }
    let m = (r * (1u64 << shift) as f64)
        .round()
        .min(((1u64 << 31) - 1) as f64);
    (m as i32, shift)
}

/// The scale of one output channel's weights (a row of `k` values) in integers of at most
/// `wmax`: `max |w| / wmax` (1 for a row of zeros). A clipping point of least squared error
/// instead measured no better (σ 50 denoising of an 8-bit low-noise expert: 26.63 against
/// 26.64 dB): the 8-bit loss is spread over every weight of a few layers, see [`LayerMax`].
pub fn weight_scale(row: &[f32], wmax: f32) -> f64 {
    let mx = row.iter().fold(0f32, |a, &v| a.max(v.abs())) as f64;
    if mx > 0.0 {
        mx / wmax as f64
    } else {
        1.0
    }
}

/// Per-layer exceptions to a network's largest integer of weights (`wmax`) or of the maps
/// layers write (`amax`): `(layer name, largest)`. 8-bit weights in the half-resolution layers
/// next to the output cost an 8-bit `deep` most of its quantization loss, and their 8-bit maps
/// most of the rest; 10-bit weights (511, stored as I16) and 11-bit maps (2047) there win it
/// back, and those layers run on the 16-bit kernels (`models/README.md`). Written
/// `NAME=MAX,NAME=MAX`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerMax(pub Vec<(String, i32)>);

impl LayerMax {
    /// Parse `NAME=MAX[,NAME=MAX...]` (empty: no exceptions).
    pub fn parse(text: &str) -> Result<Self> {
        let mut v = Vec::new();
        for item in text.split(',').filter(|t| !t.trim().is_empty()) {
            let bad = || {
                crate::Error::InvalidArgument(format!(
                    "layer limit `{item}`: want NAME=MAX, MAX in 1..=32767"
                ))
            };
            let (name, m) = item.trim().split_once('=').ok_or_else(bad)?;
            let m: i32 = m.parse().map_err(|_| bad())?;
            if name.is_empty() || !(1..=32767).contains(&m) {
                return Err(bad());
            }
            v.push((name.to_string(), m));
        }
        Ok(LayerMax(v))
    }

    /// The largest integer of layer `name`, `default` unless it is an exception.
    pub fn of(&self, name: &str, default: i32) -> i32 {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or(default, |&(_, m)| m)
    }

    /// An error naming the first exception that is not a layer of `cfg`.
    pub fn check(&self, cfg: &super::net::NetConfig) -> Result<()> {
        let layers = conv_layers(cfg);
        match self
            .0
            .iter()
            .find(|(n, _)| !layers.iter().any(|(l, _, _)| l == n))
        {
            Some((n, _)) => Err(crate::Error::InvalidArgument(format!(
                "layer limit for `{n}`: the network has no such layer"
            ))),
            None => Ok(()),
        }
    }

    /// Every layer's largest map integer, `conv_layers` order (0 for the output layer, which
    /// writes no map): `amax` or the exception, and for a skip map the larger of its writer's
    /// and its up layer's, since one scale serves both.
    pub fn map_amax(&self, cfg: &super::net::NetConfig, amax: i32) -> Vec<i32> {
        let roles = layer_roles(cfg);
        let mut v: Vec<i32> = conv_layers(cfg)
            .iter()
            .zip(&roles)
            .map(|((name, _, _), (_, finish))| match finish {
                Finish::Output => 0,
                _ => self.of(name, amax),
            })
            .collect();
        for (skip, up) in skip_pairs(cfg) {
            let m = v[skip].max(v[up]);
            v[skip] = m;
            v[up] = m;
        }
        v
    }
}

/// Fake-quantize `(cout, k)` weights in place, as the quantizer will: per output channel, to
/// integers of at most `wmax` times [`weight_scale`].
pub fn fake_quantize_weights(w: &mut [f32], cout: usize, wmax: f32) {
    let k = w.len() / cout;
    let m = wmax as f64;
    for row in w.chunks_mut(k) {
        let s = weight_scale(row, wmax);
        for v in row.iter_mut() {
            *v = ((*v as f64 / s).round().clamp(-m, m) * s) as f32;
        }
    }
}

/// Read a ranges file: one `NAME RANGE` line per layer, in forward order.
pub fn read_ranges(text: &str) -> Result<Vec<f32>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| crate::Error::InvalidArgument(format!("bad ranges line {l:?}")))
        })
        .collect()
}

/// Write a ranges file (see [`read_ranges`]).
pub fn write_ranges(cfg: &super::net::NetConfig, ranges: &[f32]) -> String {
    conv_layers(cfg)
        .iter()
        .zip(ranges)
        .map(|((n, _, _), r)| format!("{n} {r:e}\n"))
        .collect()
}

/// Quantize `e` with calibration crops `calib` (planar `(3, size, size)` each, `[-1, 1]`).
pub fn quantize(
    e: &Engine,
    calib: &[Vec<f32>],
    size: usize,
    opts: &QuantOptions,
) -> Result<IntNet> {
    let ranges = calibrate(e, calib, size, opts);
    quantize_with_ranges(e, &ranges, opts)
}

/// The range of every layer's output map (`conv_layers` order; 0 for the output layer): the
/// largest calibrated quantile, one range for a skip map before and after its addition. A
/// map's scale is its range over `amax`.
pub fn calibrate(e: &Engine, calib: &[Vec<f32>], size: usize, opts: &QuantOptions) -> Vec<f32> {
    let cfg = e.config().clone();
    let roles = layer_roles(&cfg);
    let nl = roles.len();
    // 1. Calibration.
    let mut qmax = vec![0f32; nl];
    let mut rng = crate::data::Rng::new(0x9a17_c0de);
    for (ci, x) in calib.iter().enumerate() {
        for (li, &l) in opts.lambdas.iter().enumerate() {
            if (ci + li) % 2 == 1 {
                continue; // every crop at half the lambdas: variety at half the cost
            }
            let (a, s) = (super::net::alpha_f(l), super::net::sigma_f(l));
            let mut z = vec![0f32; x.len()];
            rng.fill_normal(&mut z);
            z.iter_mut().zip(x).for_each(|(z, &x)| *z = a * x + s * *z);
            let q = map_quantiles(e, &z, size, size, l, opts.quantile);
            for (m, v) in qmax.iter_mut().zip(q) {
                *m = m.max(v);
            }
        }
    }
    // Skip maps: one scale for the map before and after the addition.
    for (skip, up) in skip_pairs(&cfg) {
        let m = qmax[skip].max(qmax[up]);
        qmax[skip] = m;
        qmax[up] = m;
    }
    qmax
}

/// Quantize `e` with given map ranges (from [`calibrate`], or the ones a quantization-aware
/// fine-tuning used).
pub fn quantize_with_ranges(e: &Engine, ranges: &[f32], opts: &QuantOptions) -> Result<IntNet> {
    let cfg = e.config().clone();
    opts.layer_wmax.check(&cfg)?;
    let shapes = conv_layers(&cfg);
    let roles = layer_roles(&cfg);
    let nl = shapes.len();
    if ranges.len() != nl {
        return Err(crate::Error::InvalidArgument(format!(
            "{} map ranges for {nl} layers",
            ranges.len()
        )));
    }
    // An up layer adds into its skip map, so the two share one scale (as `calibrate` makes
    // them; ranges from elsewhere are tied here the same way).
    let mut ranges = ranges.to_vec();
    for (skip, up) in skip_pairs(&cfg) {
        let m = ranges[skip].max(ranges[up]);
        ranges[skip] = m;
        ranges[up] = m;
    }
    opts.layer_amax.check(&cfg)?;
    let amax = opts.layer_amax.map_amax(&cfg, opts.amax);
    let map_scale: Vec<f64> = ranges
        .iter()
        .zip(&amax)
        .map(|(&m, &a)| (m.max(1e-6) as f64) / a.max(1) as f64)
        .collect();

    // 2-4. Scales, requantization, tables.
    let convs = e.convs();
    let grid = opts.grid;
    let grid_lambdas: Vec<f32> = (0..grid.points).map(|i| grid.lambda(i) as f32).collect();
    let embs: Vec<Vec<f32>> = grid_lambdas.iter().map(|&l| e.embed(&[l]).2).collect();
    let in_scale = 1.0 / (1u32 << IN_LOG2) as f64;
    let mut s_in = in_scale;
    let mut layers = Vec::with_capacity(nl);
    for (idx, ((name, k, cout), (_, finish))) in shapes.into_iter().zip(&roles).enumerate() {
        let c = convs[idx];
        let s_out = match finish {
            Finish::Output => 1.0 / (1u32 << V_LOG2) as f64,
            _ => map_scale[idx],
        };
        let mut w = vec![0i16; cout * k];
        let mut mult = vec![0i32; cout];
        let mut shift = vec![1u8; cout];
        let mut s_w = vec![0f64; cout];
        for o in 0..cout {
            let row = &c.w[o * k..(o + 1) * k];
            let wmax = opts.layer_wmax.of(&name, opts.wmax);
            let sw = weight_scale(row, wmax as f32);
            let wmax = wmax as f64;
            s_w[o] = sw;
            for (d, &v) in w[o * k..(o + 1) * k].iter_mut().zip(row) {
                *d = (v as f64 / sw).round().clamp(-wmax, wmax) as i16;
            }
            (mult[o], shift[o]) = multiplier(s_in * sw / s_out);
        }
        let mut bias = vec![0i32; grid.points * cout];
        for (gi, emb) in embs.iter().enumerate() {
            let b = super::engine::layer_bias(c, emb);
            for o in 0..cout {
                let v = (b[o] as f64 / (s_in * s_w[o])).round();
                bias[gi * cout + o] = v.clamp(-(i32::MAX as f64), i32::MAX as f64) as i32;
            }
        }
        layers.push(IntLayerParts {
            name,
            k,
            cout,
            w,
            mult,
            shift,
            bias,
            amax: amax[idx],
            finish: *finish,
        });
        // The next layer reads this layer's map (a skip map after an addition: same scale).
        s_in = s_out;
    }
    let mut planes = vec![0i32; 2 * grid.points];
    for (i, &l) in grid_lambdas.iter().enumerate() {
        let p = [l / 12.0, (1.0 / (1.0 + (l as f64).exp())) as f32];
        for j in 0..2 {
            planes[2 * i + j] = ((p[j] as f64) * (1u32 << IN_LOG2) as f64)
                .round()
                .clamp(-IN_MAX as f64, IN_MAX as f64) as i32;
        }
    }
    IntNet::new(cfg, grid, planes, layers)
}

#[cfg(all(test, feature = "embedded-model"))]
mod tests {
    use super::*;
    use crate::prior::net::{DenoiserNet, NetConfig};
    use candle_core::{DType, Device};
    use candle_nn::VarBuilder;

    fn dist(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// What quantization-aware training simulates (fake-quantized weights and maps in the float
    /// engine) is what the integer network computes, up to the rounding of biases and inputs
    /// and values that round the other way (measured: the simulation is 4-7x closer to the
    /// integer network than the float network is, at 8 and 11 bits).
    #[test]
    fn fake_quantization_simulates_the_integer_network() {
        let cfg = NetConfig::by_name("tiny").unwrap();
        let Some(bytes) = crate::prior::embedded("tiny") else {
            return; // a build without `tiny` (the crates.io package)
        };
        let vb = VarBuilder::from_buffered_safetensors(bytes.to_vec(), DType::F32, &Device::Cpu);
        let e = Engine::new(&DenoiserNet::new(vb.unwrap(), &cfg).unwrap()).unwrap();
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).unwrap();
        let size = 32;
        let crops: Vec<Vec<f32>> = (0..2)
            .map(|c| {
                (0..3 * size * size)
                    .map(|i| (((i * 37 + c * 11) % 97) as f32 / 48.0 - 1.0) * 0.8)
                    .collect()
            })
            .collect();
        // 8 bits, 11 / 10 bits, and 8 bits with 10-bit weights and 11-bit maps next to the
        // output.
        let wide = LayerMax::parse("enc1.1=511,dec1.1=511,out=511").unwrap();
        let wide_maps = LayerMax::parse("enc1.1=2047,dec1.0=2047").unwrap();
        let mut eight_bit_float = [0f64; 2];
        for (amax, wmax, layer_wmax, layer_amax) in [
            (255, 127, LayerMax::default(), LayerMax::default()),
            (2047, 511, LayerMax::default(), LayerMax::default()),
            (255, 127, wide, wide_maps),
        ] {
            let opts = QuantOptions {
                amax,
                wmax,
                layer_wmax: layer_wmax.clone(),
                layer_amax,
                lambdas: vec![-2.0, 1.0, 4.0],
                ..QuantOptions::default()
            };
            let ranges = calibrate(&e, &crops, size, &opts);
            let q = quantize_with_ranges(&e, &ranges, &opts).unwrap();
            let mut w: std::collections::HashMap<String, Vec<f32>> = tensors
                .iter()
                .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
                .collect();
            for (name, _, cout) in conv_layers(&cfg) {
                let ws = w.get_mut(&format!("{name}.w")).unwrap();
                fake_quantize_weights(ws, cout, layer_wmax.of(&name, wmax) as f32);
            }
            let mut fq = Engine::from_named(&cfg, |k| w[k].as_slice());
            fq.set_act_quant(&ranges, &opts.layer_amax.map_amax(&cfg, amax));
            for (li, lambda) in [0.0f32, 4.0].into_iter().enumerate() {
                let z = &crops[1];
                let xi = q.predict_x(z, size, size, lambda as f64);
                let xf = fq.predict_x(z, size, size, lambda);
                let x0 = e.predict_x(z, size, size, lambda);
                let (sim, float) = (dist(&xi, &xf), dist(&xi, &x0));
                assert!(float > 0.0);
                if layer_wmax.0.is_empty() {
                    assert!(
                        sim < 0.4 * float,
                        "{amax}/{wmax}, lambda {lambda}: integer vs simulation {sim:.4}, \
                         vs float {float:.4}"
                    );
                    if amax == 255 {
                        eight_bit_float[li] = float;
                    }
                } else {
                    // Wider weights in a few layers: the simulation is as close as at 8 bits
                    // (the maps' rounding is the same), the network closer to the float one.
                    let f8 = eight_bit_float[li];
                    assert!(
                        sim < 0.4 * f8 && float < f8,
                        "{layer_wmax:?}, lambda {lambda}: integer vs simulation {sim:.4}, vs \
                         float {float:.4}; 8-bit vs float {f8:.4}"
                    );
                }
            }
        }
    }

    /// An 8-bit network (maps in `0..=255`, weights in `-127..=127`) runs its layers on the
    /// `u8 x i8` kernel where the CPU has it; the results are the portable kernel's, bit for bit.
    #[test]
    fn eight_bit_networks_give_the_same_bits_on_every_kernel() {
        use crate::prior::intnet::Kernels;
        let cfg = NetConfig::by_name("tiny").unwrap();
        let Some(bytes) = crate::prior::embedded("tiny") else {
            return; // a build without `tiny` (the crates.io package)
        };
        let vb = VarBuilder::from_buffered_safetensors(bytes.to_vec(), DType::F32, &Device::Cpu);
        let e = Engine::new(&DenoiserNet::new(vb.unwrap(), &cfg).unwrap()).unwrap();
        let size = 32;
        let crop: Vec<f32> = (0..3 * size * size)
            .map(|i| ((i * 37 % 97) as f32 / 48.0 - 1.0) * 0.8)
            .collect();
        let opts = QuantOptions {
            amax: 255,
            wmax: 127,
            lambdas: vec![-2.0, 1.0, 4.0],
            ..QuantOptions::default()
        };
        let ranges = calibrate(&e, std::slice::from_ref(&crop), size, &opts);
        let bytes = crate::prior::intnet::to_safetensors(
            &quantize_with_ranges(&e, &ranges, &opts).unwrap(),
            "tiny",
        )
        .unwrap();
        let load = |k: Kernels| {
            crate::prior::intnet::from_safetensors("tiny", &bytes)
                .unwrap()
                .with_kernels(k)
                .unwrap()
        };
        let (fast, portable) = (load(Kernels::best()), load(Kernels::Portable));
        assert!(fast
            .layers()
            .iter()
            .skip(1)
            .all(|l| l.w.iter().all(|w| w.abs() <= 127)));
        assert!(fast.layers().iter().all(|l| l.amax <= 255));
        let z: Vec<f32> = (0..3 * 48 * 72)
            .map(|i| ((i * 7919) % 2003) as f32 / 1001.0 - 1.0)
            .collect();
        for lambda in [-1.0, 2.5, 8.0] {
            let a = fast.predict_v(&z, 48, 72, lambda);
            assert_eq!(a, portable.predict_v(&z, 48, 72, lambda), "lambda {lambda}");
            assert!(a.iter().any(|&v| v != 0));
        }
    }

    #[test]
    fn layer_weight_widths_parse_and_name_real_layers() {
        let w = LayerMax::parse("enc1.2=511, out=511").unwrap();
        assert_eq!(w.of("enc1.2", 127), 511);
        assert_eq!(w.of("out", 127), 511);
        assert_eq!(w.of("mid.0", 127), 127);
        assert_eq!(LayerMax::parse("").unwrap(), LayerMax::default());
        for bad in ["enc1.2", "enc1.2=0", "enc1.2=32768", "enc1.2=x", "=5"] {
            assert!(LayerMax::parse(bad).is_err(), "{bad} parsed");
        }
        let cfg = NetConfig::by_name("tiny").unwrap();
        assert!(LayerMax::parse("enc1.1=511,out=511")
            .unwrap()
            .check(&cfg)
            .is_ok());
        let e = LayerMax::parse("enc1.9=511")
            .unwrap()
            .check(&cfg)
            .unwrap_err();
        assert!(e.to_string().contains("enc1.9"), "{e}");
        // A skip map has one scale: widening its writer widens the up layer adding into it.
        let names: Vec<String> = conv_layers(&cfg).into_iter().map(|l| l.0).collect();
        let amax = LayerMax::parse("enc1.1=2047").unwrap().map_amax(&cfg, 255);
        for (n, a) in names.iter().zip(&amax) {
            let want = match n.as_str() {
                "enc1.1" | "up1" => 2047,
                "out" => 0,
                _ => 255,
            };
            assert_eq!(*a, want, "{n}");
        }
    }
}
