//! Rate–distortion evaluation through the real bitstream, with classical codecs measured in the
//! same run (`diffc eval`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use crate::codec::{Decoder, Encoder, EncoderOptions, RateTarget};
use crate::error::{Error, Result};
use crate::image_io::{psnr, Image};
use crate::metrics::ms_ssim;
use crate::prior::{Denoiser, Planes};
use crate::reconstruct::{Method, ReconstructOptions};
use crate::Limits;

/// What to evaluate.
pub struct EvalOptions {
    /// Folder of images (png/jpg/jpeg/webp/ppm/bmp).
    pub data: PathBuf,
    /// Target rates in bits per pixel.
    pub bpps: Vec<f64>,
    /// The prior.
    pub model: Arc<dyn Denoiser>,
    /// Base encoder settings (the target is replaced per rate).
    pub encoder: EncoderOptions,
    /// Reconstructions to measure.
    pub methods: Vec<Method>,
    /// Flow / ancestral denoiser evaluations.
    pub flow_steps: usize,
    /// Use only the first N images (sorted by name).
    pub limit: Option<usize>,
    /// Also measure JPEG / WebP / AVIF with Debian's command-line encoders when installed.
    pub baselines: bool,
}

/// One measured point.
#[derive(Clone, Debug)]
pub struct Row {
    /// Image file name.
    pub image: String,
    /// `diffc-flow`, `diffc-denoise`, `diffc-ancestral`, `jpeg`, `webp`, `avif`.
    pub codec: String,
    /// Requested rate.
    pub target_bpp: f64,
    /// Rate from the file size.
    pub bpp: f64,
    /// Ideal rate (sum of KL) for diffc; NaN for classical codecs.
    pub ideal_bpp: f64,
    /// PSNR in dB (8-bit RGB).
    pub psnr: f64,
    /// MS-SSIM (NaN if the image is too small).
    pub ms_ssim: f64,
    /// Encode wall time, seconds.
    pub encode_s: f64,
    /// Decode wall time, seconds.
    pub decode_s: f64,
}

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .map(|e| {
                    matches!(
                        e.to_ascii_lowercase().as_str(),
                        "png" | "jpg" | "jpeg" | "webp" | "ppm" | "bmp"
                    )
                })
                .unwrap_or(false)
        })
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no images in {}",
            dir.display()
        )));
    }
    Ok(v)
}

/// Run the evaluation; `log` receives one progress line per measurement.
pub fn run(opts: &EvalOptions, mut log: impl FnMut(&str)) -> Result<Vec<Row>> {
    let mut images = list_images(&opts.data)?;
    if let Some(n) = opts.limit {
        images.truncate(n);
    }
    let tmp = std::env::temp_dir().join(format!("diffc-eval-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut rows = Vec::new();
    for path in &images {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let img = Image::open(path)?;
        let pixels = img.width as f64 * img.height as f64;
        for &target in &opts.bpps {
            let eopts = EncoderOptions {
                target: RateTarget::Bpp(target),
                ..opts.encoder.clone()
            };
            let t0 = Instant::now();
            let enc = Encoder::new(opts.model.clone(), eopts)?.encode(
                &img,
                &Limits::default(),
                |_| {},
            )?;
            let encode_s = t0.elapsed().as_secs_f64();
            let bpp = enc.bytes.len() as f64 * 8.0 / pixels;
            let ideal_bpp = enc.steps.iter().map(|s| s.kl_bits).sum::<f64>() / pixels;
            for &method in &opts.methods {
                let t1 = Instant::now();
                let ropts = ReconstructOptions {
                    method,
                    flow_steps: opts.flow_steps,
                    ..Default::default()
                };
                let (out, _) =
                    Decoder::with_model(opts.model.clone()).decode(&enc.bytes, &ropts)?;
                let row = Row {
                    image: name.clone(),
                    codec: format!("diffc-{method}"),
                    target_bpp: target,
                    bpp,
                    ideal_bpp,
                    psnr: psnr(&img, &out)?,
                    ms_ssim: ms_ssim(&img, &out).unwrap_or(f64::NAN),
                    encode_s,
                    decode_s: t1.elapsed().as_secs_f64(),
                };
                log(&format_row(&row));
                rows.push(row);
            }
            if opts.baselines {
                for codec in [Classical::Jpeg, Classical::Webp, Classical::Avif] {
                    match codec.at_rate(&img, target, &tmp) {
                        Ok(Some((out, bpp, es, ds))) => {
                            let row = Row {
                                image: name.clone(),
                                codec: codec.name().into(),
                                target_bpp: target,
                                bpp,
                                ideal_bpp: f64::NAN,
                                psnr: psnr(&img, &out)?,
                                ms_ssim: ms_ssim(&img, &out).unwrap_or(f64::NAN),
                                encode_s: es,
                                decode_s: ds,
                            };
                            log(&format_row(&row));
                            rows.push(row);
                        }
                        Ok(None) => {}
                        Err(e) => log(&format!("{}: skipped: {e}", codec.name())),
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(rows)
}

fn format_row(r: &Row) -> String {
    format!(
        "{:<14} {:<16} target {:.3}  bpp {:.4}  PSNR {:.2} dB  MS-SSIM {:.4}  enc {:.2}s  dec {:.2}s",
        r.image, r.codec, r.target_bpp, r.bpp, r.psnr, r.ms_ssim, r.encode_s, r.decode_s
    )
}

#[derive(Clone, Copy)]
enum Classical {
    Jpeg,
    Webp,
    Avif,
}

impl Classical {
    fn name(self) -> &'static str {
        match self {
            Classical::Jpeg => "jpeg",
            Classical::Webp => "webp",
            Classical::Avif => "avif",
        }
    }

    /// Quality range, ordered from smallest file to largest.
    fn qualities(self) -> Vec<u32> {
        match self {
            Classical::Jpeg => (1..=100).collect(),
            Classical::Webp => (0..=100).collect(),
            Classical::Avif => (0..=63).rev().collect(), // quantizer: 63 = smallest
        }
    }

    fn tool(self) -> &'static str {
        match self {
            Classical::Jpeg => "cjpeg",
            Classical::Webp => "cwebp",
            Classical::Avif => "avifenc",
        }
    }

    fn encode(self, q: u32, src_png: &Path, src_ppm: &Path, out: &Path) -> Result<()> {
        let qs = q.to_string();
        let mut cmd = match self {
            Classical::Jpeg => {
                let mut c = Command::new("cjpeg");
                c.args(["-quality", &qs, "-optimize", "-sample", "2x2", "-outfile"])
                    .arg(out)
                    .arg(src_ppm);
                c
            }
            Classical::Webp => {
                let mut c = Command::new("cwebp");
                c.args(["-quiet", "-m", "6", "-q", &qs])
                    .arg(src_png)
                    .arg("-o")
                    .arg(out);
                c
            }
            Classical::Avif => {
                let mut c = Command::new("avifenc");
                c.args(["--speed", "6", "--min", &qs, "--max", &qs])
                    .arg(src_png)
                    .arg(out);
                c
            }
        };
        run_tool(&mut cmd)
    }

    fn decode(self, src: &Path, out_png: &Path, out_ppm: &Path) -> Result<Image> {
        match self {
            Classical::Jpeg => {
                run_tool(
                    Command::new("djpeg")
                        .arg("-pnm")
                        .arg("-outfile")
                        .arg(out_ppm)
                        .arg(src),
                )?;
                Image::open(out_ppm)
            }
            Classical::Webp => {
                run_tool(
                    Command::new("dwebp")
                        .arg(src)
                        .arg("-ppm")
                        .arg("-o")
                        .arg(out_ppm),
                )?;
                Image::open(out_ppm)
            }
            Classical::Avif => {
                run_tool(Command::new("avifdec").arg(src).arg(out_png))?;
                Image::open(out_png)
            }
        }
    }

    /// Binary search on quality for the file whose rate is closest (in ratio) to `target`.
    fn at_rate(
        self,
        img: &Image,
        target: f64,
        tmp: &Path,
    ) -> Result<Option<(Image, f64, f64, f64)>> {
        if Command::new(self.tool()).arg("-h").output().is_err() {
            return Ok(None);
        }
        let src_png = tmp.join("src.png");
        let src_ppm = tmp.join("src.bmp");
        img.save(&src_png)?;
        img.save(&src_ppm)?;
        let out = tmp.join(format!("out.{}", self.name()));
        let pixels = img.width as f64 * img.height as f64;
        let qs = self.qualities();
        let rate = |q: u32| -> Result<f64> {
            self.encode(q, &src_png, &src_ppm, &out)?;
            Ok(std::fs::metadata(&out)?.len() as f64 * 8.0 / pixels)
        };
        let (mut lo, mut hi) = (0usize, qs.len() - 1);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if rate(qs[mid])? < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (rl, rh) = (rate(qs[lo])?, rate(qs[hi])?);
        let q = if (target / rl.max(1e-9)) < (rh / target) {
            qs[lo]
        } else {
            qs[hi]
        };
        let t0 = Instant::now();
        self.encode(q, &src_png, &src_ppm, &out)?;
        let enc_s = t0.elapsed().as_secs_f64();
        let bpp = std::fs::metadata(&out)?.len() as f64 * 8.0 / pixels;
        let t1 = Instant::now();
        let mut dec = self.decode(&out, &tmp.join("dec.png"), &tmp.join("dec.ppm"))?;
        let dec_s = t1.elapsed().as_secs_f64();
        if dec.channels != img.channels {
            dec = match img.channels {
                1 => Image::new(
                    dec.width,
                    dec.height,
                    1,
                    dec.data.chunks_exact(3).map(|p| p[0]).collect(),
                )?,
                _ => Image::new(
                    dec.width,
                    dec.height,
                    3,
                    dec.data.iter().flat_map(|&v| [v, v, v]).collect(),
                )?,
            };
        }
        Ok(Some((dec, bpp, enc_s, dec_s)))
    }
}

fn run_tool(cmd: &mut Command) -> Result<()> {
    let o = cmd.output()?;
    if !o.status.success() {
        return Err(Error::Image(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(())
}

/// Write rows as CSV.
pub fn write_csv(rows: &[Row], path: &Path) -> Result<()> {
    let mut s = String::from(
        "image,codec,target_bpp,bpp,ideal_bpp,spent_over_ideal,psnr_db,ms_ssim,encode_s,decode_s\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{:.5},{:.5},{:.4},{:.4},{:.5},{:.3},{:.3}\n",
            r.image,
            r.codec,
            r.target_bpp,
            r.bpp,
            r.ideal_bpp,
            r.bpp / r.ideal_bpp,
            r.psnr,
            r.ms_ssim,
            r.encode_s,
            r.decode_s
        ));
    }
    std::fs::write(path, s)?;
    Ok(())
}

/// Mean of each (codec, target) group: `(codec, target, bpp, ideal_bpp, psnr, ms_ssim, enc, dec)`.
pub fn summarize(rows: &[Row]) -> Vec<(String, f64, [f64; 6])> {
    let mut keys: Vec<(String, f64)> = Vec::new();
    for r in rows {
        if !keys
            .iter()
            .any(|(c, t)| *c == r.codec && *t == r.target_bpp)
        {
            keys.push((r.codec.clone(), r.target_bpp));
        }
    }
    keys.into_iter()
        .map(|(c, t)| {
            let g: Vec<&Row> = rows
                .iter()
                .filter(|r| r.codec == c && r.target_bpp == t)
                .collect();
            let n = g.len() as f64;
            let m = |f: &dyn Fn(&Row) -> f64| g.iter().map(|r| f(r)).sum::<f64>() / n;
            let v = [
                m(&|r| r.bpp),
                m(&|r| r.ideal_bpp),
                m(&|r| r.psnr),
                m(&|r| r.ms_ssim),
                m(&|r| r.encode_s),
                m(&|r| r.decode_s),
            ];
            (c, t, v)
        })
        .collect()
}

/// A rate–distortion plot (mean PSNR vs mean bpp per codec) as SVG.
pub fn write_svg(rows: &[Row], path: &Path) -> Result<()> {
    let sum = summarize(rows);
    let mut codecs: Vec<String> = Vec::new();
    for (c, _, _) in &sum {
        if !codecs.contains(c) {
            codecs.push(c.clone());
        }
    }
    let (w, h, m) = (720.0, 480.0, 60.0);
    let xs: Vec<f64> = sum.iter().map(|s| s.2[0]).collect();
    let ys: Vec<f64> = sum
        .iter()
        .map(|s| s.2[2])
        .filter(|v| v.is_finite())
        .collect();
    let (x0, x1) = (0.0, xs.iter().cloned().fold(0.1, f64::max) * 1.1);
    let (y0, y1) = (
        ys.iter().cloned().fold(f64::INFINITY, f64::min).floor() - 1.0,
        ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max).ceil() + 1.0,
    );
    let px = |x: f64| m + (x - x0) / (x1 - x0) * (w - 2.0 * m);
    let py = |y: f64| h - m - (y - y0) / (y1 - y0) * (h - 2.0 * m);
    let colors = [
        "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
    ];
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n"
    );
    s.push_str(&format!(
        "<line x1='{m}' y1='{}' x2='{}' y2='{}' stroke='black'/><line x1='{m}' y1='{m}' x2='{m}' y2='{}' stroke='black'/>\n",
        h - m, w - m, h - m, h - m
    ));
    for i in 0..=5 {
        let xv = x0 + (x1 - x0) * i as f64 / 5.0;
        let yv = y0 + (y1 - y0) * i as f64 / 5.0;
        s.push_str(&format!(
            "<text x='{}' y='{}' text-anchor='middle'>{xv:.2}</text><text x='{}' y='{}' text-anchor='end'>{yv:.1}</text>\n",
            px(xv), h - m + 16.0, m - 6.0, py(yv) + 4.0
        ));
    }
    s.push_str(&format!(
        "<text x='{}' y='{}' text-anchor='middle'>bits per pixel</text><text x='16' y='{}' transform='rotate(-90 16 {})' text-anchor='middle'>PSNR (dB)</text>\n",
        w / 2.0, h - 20.0, h / 2.0, h / 2.0
    ));
    for (i, c) in codecs.iter().enumerate() {
        let col = colors[i % colors.len()];
        let mut pts: Vec<(f64, f64)> = sum
            .iter()
            .filter(|s| &s.0 == c)
            .map(|s| (s.2[0], s.2[2]))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        s.push_str(&format!(
            "<polyline fill='none' stroke='{col}' stroke-width='2' points='{}'/>\n",
            path.join(" ")
        ));
        for (x, y) in &pts {
            s.push_str(&format!(
                "<circle cx='{:.1}' cy='{:.1}' r='3' fill='{col}'/>\n",
                px(*x),
                py(*y)
            ));
        }
        let ly = m + 16.0 * i as f64;
        s.push_str(&format!(
            "<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='{col}' stroke-width='3'/><text x='{}' y='{}' fill='{col}'>{c}</text>\n",
            m + 10.0,
            ly - 4.0,
            m + 30.0,
            ly - 4.0,
            m + 36.0,
            ly
        ));
    }
    s.push_str("</svg>\n");
    std::fs::write(path, s)?;
    Ok(())
}

/// One denoising measurement: the codec's prior as a plain Gaussian denoiser.
#[derive(Clone, Debug)]
pub struct DenoiseRow {
    /// Image file name.
    pub image: String,
    /// Noise standard deviation in 8-bit units.
    pub sigma: f64,
    /// Log-SNR the prior was run at, `2 ln(127.5 / sigma)`.
    pub lambda: f64,
    /// PSNR of the noisy image (unclipped noise, 8-bit scale), dB.
    pub noisy_psnr: f64,
    /// PSNR of the denoised 8-bit image, dB.
    pub psnr: f64,
    /// Seconds of the prior's pass.
    pub seconds: f64,
}

/// The images behind one [`DenoiseRow`], for callers that keep them.
pub struct DenoiseImages<'a> {
    /// The noisy image `y / 127.5 - 1`, planar, unclipped (three channels).
    pub noisy: &'a Planes,
    /// The denoised 8-bit result the PSNR was measured on.
    pub denoised: &'a Image,
}

/// Denoise every image of `dir` at each noise level: `y = x + sigma n` (8-bit units, seeded
/// Gaussian `n`, not clipped), the prior run exactly as the codec runs it (multiscale included)
/// on the VP latent `z = alpha (y / 127.5 - 1)` at `lambda = 2 ln(127.5 / sigma)`, the result
/// rounded to 8 bits. The noise of the `i`-th image at the `j`-th level is seeded by
/// `seed ^ (i << 32) ^ j`: the same list of levels draws the same noise; another list (`[25]`
/// alone) draws the first level's noise for its first level. Gray images are denoised as three
/// equal channels. `log` sees each row with its images as soon as it is measured; an error
/// from it ends the run with that error.
pub fn denoise(
    dir: &Path,
    model: &dyn Denoiser,
    sigmas: &[f64],
    limit: Option<usize>,
    seed: u64,
    mut log: impl FnMut(&DenoiseRow, &DenoiseImages) -> Result<()>,
) -> Result<Vec<DenoiseRow>> {
    let mut images = list_images(dir)?;
    if let Some(n) = limit {
        images.truncate(n);
    }
    if sigmas
        .iter()
        .any(|s| !(s.is_finite() && *s > 0.0 && *s < 1000.0))
    {
        return Err(Error::InvalidArgument(format!(
            "noise levels must be in (0, 1000) 8-bit units, got {sigmas:?}"
        )));
    }
    let mut rows = Vec::new();
    for (i, path) in images.iter().enumerate() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut img = Image::open(path)?;
        if img.channels == 1 {
            img = Image::new(
                img.width,
                img.height,
                3,
                img.data.iter().flat_map(|&v| [v, v, v]).collect(),
            )?;
        }
        let clean = img.to_planes();
        for (j, &sigma) in sigmas.iter().enumerate() {
            let lambda = 2.0 * (127.5 / sigma).ln();
            let alpha = crate::prior::net::alpha_f(lambda as f32);
            let mut rng = crate::data::Rng::new(seed ^ ((i as u64) << 32) ^ j as u64);
            let mut noise = vec![0f32; clean.data.len()];
            rng.fill_normal(&mut noise);
            let s = (sigma / 127.5) as f32;
            let mut noisy = clean.clone();
            let mut se = 0f64;
            for (v, n) in noisy.data.iter_mut().zip(&noise) {
                se += ((n * s * 127.5) as f64).powi(2);
                *v += s * n;
            }
            let mut z = noisy.clone();
            z.data.iter_mut().for_each(|v| *v *= alpha);
            let noisy_psnr = 10.0 * (255f64.powi(2) / (se / noise.len() as f64)).log10();
            let t = Instant::now();
            let xhat = model.predict_x(&z, lambda)?;
            let seconds = t.elapsed().as_secs_f64();
            let out = Image::from_planes(&xhat)?;
            let row = DenoiseRow {
                image: name.clone(),
                sigma,
                lambda,
                noisy_psnr,
                psnr: psnr(&img, &out)?,
                seconds,
            };
            log(
                &row,
                &DenoiseImages {
                    noisy: &noisy,
                    denoised: &out,
                },
            )?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Mean PSNR per noise level: `(sigma, mean noisy PSNR, mean denoised PSNR, images)`.
pub fn denoise_means(rows: &[DenoiseRow]) -> Vec<(f64, f64, f64, usize)> {
    let mut sigmas: Vec<f64> = rows.iter().map(|r| r.sigma).collect();
    sigmas.sort_by(f64::total_cmp);
    sigmas.dedup();
    sigmas
        .into_iter()
        .map(|s| {
            let v: Vec<&DenoiseRow> = rows.iter().filter(|r| r.sigma == s).collect();
            let n = v.len();
            let mean = |f: fn(&DenoiseRow) -> f64| v.iter().map(|r| f(r)).sum::<f64>() / n as f64;
            (s, mean(|r| r.noisy_psnr), mean(|r| r.psnr), n)
        })
        .collect()
}

/// Write denoising rows as CSV (`image,sigma,lambda,noisy_psnr,psnr,seconds`), atomically.
pub fn write_denoise_csv(rows: &[DenoiseRow], path: &Path) -> Result<()> {
    let mut s = String::from("image,sigma,lambda,noisy_psnr,psnr,seconds\n");
    for r in rows {
        s += &format!(
            "{},{},{:.4},{:.3},{:.3},{:.3}\n",
            r.image, r.sigma, r.lambda, r.noisy_psnr, r.psnr, r.seconds
        );
    }
    crate::image_io::write_atomic(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denoising_beats_the_noisy_input() {
        let dir = std::env::temp_dir().join(format!("diffc-denoise-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A smooth image: the shipped prior removes most of the noise.
        let mut img = image::RgbImage::new(48, 40);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(60 + 2 * x) as u8, (40 + 3 * y) as u8, 128]);
        }
        img.save(dir.join("a.png")).unwrap();
        let model = crate::prior::load_model(crate::prior::DEFAULT_MODEL).unwrap();
        let rows = denoise(&dir, model.as_ref(), &[15.0, 50.0], None, 7, |_, _| Ok(())).unwrap();
        assert_eq!(rows.len(), 2);
        for r in &rows {
            // Noisy PSNR matches the noise level: 20 log10(255 / sigma) within sampling error.
            let want = 20.0 * (255.0 / r.sigma).log10();
            assert!((r.noisy_psnr - want).abs() < 0.2, "{r:?}");
            assert!(r.psnr > r.noisy_psnr + 5.0, "{r:?}");
            assert!((r.lambda - 2.0 * (127.5 / r.sigma).ln()).abs() < 1e-12);
        }
        // The images handed out are the ones measured.
        let clean = Image::open(&dir.join("a.png")).unwrap();
        let mut seen = Vec::new();
        denoise(&dir, model.as_ref(), &[15.0], None, 7, |r, im| {
            let se: f64 = im
                .noisy
                .data
                .iter()
                .zip(&clean.to_planes().data)
                .map(|(a, b)| ((a - b) as f64 * 127.5).powi(2))
                .sum();
            let noisy_psnr = 10.0 * (255f64.powi(2) / (se / im.noisy.data.len() as f64)).log10();
            seen.push((
                r.noisy_psnr - noisy_psnr,
                r.psnr - psnr(&clean, im.denoised)?,
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].0.abs() < 1e-6 && seen[0].1 == 0.0, "{seen:?}");
        // Same seed, same noise, same result.
        let again = denoise(&dir, model.as_ref(), &[15.0, 50.0], None, 7, |_, _| Ok(())).unwrap();
        assert_eq!(rows[1].psnr, again[1].psnr);
        let means = denoise_means(&rows);
        assert_eq!(means.len(), 2);
        assert!(denoise(&dir, model.as_ref(), &[0.0], None, 7, |_, _| Ok(())).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
