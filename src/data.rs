//! Image folders for training and validation: listing, decoding, random crops, and a small
//! seedable RNG (candle's CPU `randn` cannot be seeded, and training must resume exactly).

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};

/// An 8-bit RGB image, interleaved, row-major.
#[derive(Clone, Debug)]
pub struct Rgb8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `3 * width * height` bytes.
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// Halve both sides with a 2x2 box filter (odd last row/column dropped).
    pub fn downscale2(&self) -> Rgb8 {
        let (w, h) = (self.width / 2, self.height / 2);
        let mut data = vec![0u8; 3 * w * h];
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let at =
                        |yy: usize, xx: usize| self.data[(yy * self.width + xx) * 3 + c] as u32;
                    let s = at(2 * y, 2 * x)
                        + at(2 * y, 2 * x + 1)
                        + at(2 * y + 1, 2 * x)
                        + at(2 * y + 1, 2 * x + 1);
                    data[(y * w + x) * 3 + c] = ((s + 2) / 4) as u8;
                }
            }
        }
        Rgb8 {
            width: w,
            height: h,
            data,
        }
    }

    /// Write the `size x size` crop at `(x0, y0)`, seen in orientation `o`, into `out` as
    /// planar CHW f32 in `[-1, 1]`.
    pub fn crop_into(&self, x0: usize, y0: usize, size: usize, o: Orientation, out: &mut [f32]) {
        let plane = size * size;
        let last = size - 1;
        for y in 0..size {
            for x in 0..size {
                // Output (x, y) shows crop pixel (sx, sy): mirror, then flip, then transpose.
                let (tx, ty) = if o.transpose { (y, x) } else { (x, y) };
                let sx = if o.mirror { last - tx } else { tx };
                let sy = if o.flip { last - ty } else { ty };
                let px = &self.data[((y0 + sy) * self.width + x0 + sx) * 3..][..3];
                for c in 0..3 {
                    out[c * plane + y * size + x] = px[c] as f32 / 127.5 - 1.0;
                }
            }
        }
    }
}

/// How a training crop is turned before the network sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Orientation {
    /// Mirrored left-right.
    pub mirror: bool,
    /// Flipped upside down.
    pub flip: bool,
    /// Rows and columns swapped.
    pub transpose: bool,
}

/// Which orientations training crops are drawn in, each equally often.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Orientations {
    /// As photographed or mirrored left-right (2): photos keep their up and down.
    #[default]
    Mirror,
    /// All eight turns and mirror images of the square: the test-time images of
    /// [`crate::prior::mirrors`] and their transposes, seen in training.
    All,
}

impl Orientations {
    /// Parse `mirror` or `all`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mirror" => Some(Orientations::Mirror),
            "all" => Some(Orientations::All),
            _ => None,
        }
    }

    /// The orientation coded by the top bits of `r`. The mirror bit is the top one in both
    /// sets, so a run resumed with `All` continues the same random stream as one with `Mirror`.
    fn pick(self, r: u64) -> Orientation {
        let bit = |k: u32| (r >> (63 - k)) & 1 == 1;
        match self {
            Orientations::Mirror => Orientation {
                mirror: bit(0),
                ..Default::default()
            },
            Orientations::All => Orientation {
                mirror: bit(0),
                flip: bit(1),
                transpose: bit(2),
            },
        }
    }
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg" | "webp")
    )
}

/// All image files (png/jpg/jpeg/webp) under `dir`, recursively, sorted by path.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Decode one file to RGB8.
pub fn load_rgb8(path: &Path) -> Result<Rgb8> {
    let img = image::open(path).map_err(|e| Error::Image(format!("{}: {e}", path.display())))?;
    let img = img.into_rgb8();
    Ok(Rgb8 {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.into_raw(),
    })
}

/// Decode every image under `dir` (in parallel), halving any image whose longer side exceeds
/// `max_side` until it fits. Unreadable files are skipped with a warning on stderr. The result
/// is in sorted path order, so it is the same on every run.
pub fn load_folder(dir: &Path, max_side: usize) -> Result<Vec<Rgb8>> {
    let files = list_images(dir)?;
    let imgs: Vec<Option<Rgb8>> = files
        .par_iter()
        .map(|p| match load_rgb8(p) {
            Ok(mut im) => {
                while im.width.max(im.height) > max_side {
                    im = im.downscale2();
                }
                Some(im)
            }
            Err(e) => {
                eprintln!("warning: skipping {}: {e}", p.display());
                None
            }
        })
        .collect();
    let imgs: Vec<Rgb8> = imgs.into_iter().flatten().collect();
    if imgs.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no readable images in {}",
            dir.display()
        )));
    }
    Ok(imgs)
}

/// xoshiro256** seeded by splitmix64: small, fast, and its state can be saved exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    /// The full generator state.
    pub s: [u64; 4],
}

impl Rng {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let r = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Fill with standard normal samples (Box-Muller, both outputs used).
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        let mut i = 0;
        while i < out.len() {
            let u1 = 1.0 - self.uniform(); // (0, 1]
            let u2 = self.uniform();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out[i] = (r * t.cos()) as f32;
            if i + 1 < out.len() {
                out[i + 1] = (r * t.sin()) as f32;
            }
            i += 2;
        }
    }
}

/// A pool of decoded images to cut random training crops from.
pub struct CropPool {
    images: Vec<Rgb8>,
}

impl CropPool {
    /// Load `dir`; every image is kept at (at most) `max_side`, and images large enough also get
    /// a 2x-downscaled copy (cleaner, more content per crop). Images smaller than `crop` are
    /// dropped.
    pub fn load(dir: &Path, crop: usize, max_side: usize) -> Result<Self> {
        let base = load_folder(dir, max_side)?;
        let mut images = Vec::with_capacity(2 * base.len());
        for im in base {
            if im.width.min(im.height) >= 2 * crop {
                images.push(im.downscale2());
            }
            if im.width.min(im.height) >= crop {
                images.push(im);
            }
        }
        if images.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no image in {} is at least {crop}x{crop}",
                dir.display()
            )));
        }
        Ok(CropPool { images })
    }

    /// A pool of images already in memory (e.g. synthetic ones for benchmarks).
    pub fn from_images(images: Vec<Rgb8>) -> Result<Self> {
        if images.is_empty() {
            return Err(Error::InvalidArgument("crop pool: no images".into()));
        }
        Ok(CropPool { images })
    }

    /// Number of images (including downscaled copies).
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when empty (never, after a successful [`CropPool::load`]).
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Total pixels held.
    pub fn pixels(&self) -> usize {
        self.images.iter().map(|i| i.width * i.height).sum()
    }

    /// Fill `out` (`batch x 3 x crop x crop`) with random crops in random `orientations`.
    pub fn sample(
        &self,
        rng: &mut Rng,
        batch: usize,
        crop: usize,
        orientations: Orientations,
        out: &mut [f32],
    ) {
        let n = 3 * crop * crop;
        for b in 0..batch {
            let im = &self.images[rng.below(self.images.len())];
            let x0 = rng.below(im.width - crop + 1);
            let y0 = rng.below(im.height - crop + 1);
            let o = orientations.pick(rng.next_u64());
            im.crop_into(x0, y0, crop, o, &mut out[b * n..(b + 1) * n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_reproducible_and_normal() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut v = vec![0f32; 20001];
        a.fill_normal(&mut v);
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(m.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{m} {var}");
        for _ in 0..1000 {
            assert!(a.below(5) < 5);
        }
    }

    #[test]
    fn crop_and_flip() {
        let im = Rgb8 {
            width: 4,
            height: 2,
            data: (0..24).map(|i| i as u8 * 10).collect(),
        };
        let mut o = vec![0f32; 12];
        im.crop_into(1, 0, 2, Orientation::default(), &mut o);
        let mut f = vec![0f32; 12];
        let mirror = Orientation {
            mirror: true,
            ..Default::default()
        };
        im.crop_into(1, 0, 2, mirror, &mut f);
        assert_eq!(o[0], f[1]);
        assert_eq!(o[0], 30.0 / 127.5 - 1.0);
        // The crop's red channel, row by row: 30 60 / 150 180.
        let red = |o: Orientation| {
            let mut c = vec![0f32; 12];
            im.crop_into(1, 0, 2, o, &mut c);
            c[..4]
                .iter()
                .map(|v| ((v + 1.0) * 127.5).round() as u8)
                .collect::<Vec<_>>()
        };
        let turn = |mirror, flip, transpose| Orientation {
            mirror,
            flip,
            transpose,
        };
        assert_eq!(red(turn(false, false, false)), [30, 60, 150, 180]);
        assert_eq!(red(turn(false, true, false)), [150, 180, 30, 60]);
        assert_eq!(red(turn(false, false, true)), [30, 150, 60, 180]);
        assert_eq!(red(turn(true, true, true)), [180, 60, 150, 30]);
        // Eight distinct images, and `All` draws each of them.
        let mut seen = std::collections::HashSet::new();
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            seen.insert(red(Orientations::All.pick(rng.next_u64())));
        }
        assert_eq!(seen.len(), 8);
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let r = rng.next_u64();
            assert_eq!(
                Orientations::Mirror.pick(r).mirror,
                Orientations::All.pick(r).mirror
            );
            assert!(!Orientations::Mirror.pick(r).flip && !Orientations::Mirror.pick(r).transpose);
        }
        let d = im.downscale2();
        assert_eq!((d.width, d.height), (2, 1));
    }

    #[test]
    fn mirror_sampling_is_the_recipe_before_orientations() {
        // Runs trained before `Orientations` resume bit-exactly only if `Mirror` draws the same
        // crops from the same random stream: one image, x0, y0 and one u64 whose top bit mirrors.
        let im = |w: usize, h: usize, k: u8| Rgb8 {
            width: w,
            height: h,
            data: (0..3 * w * h).map(|i| (i as u8).wrapping_mul(k)).collect(),
        };
        let pool = CropPool::from_images(vec![im(9, 7, 3), im(6, 11, 5)]).unwrap();
        let (batch, crop) = (6, 4);
        let n = 3 * crop * crop;
        let mut got = vec![0f32; batch * n];
        pool.sample(
            &mut Rng::new(11),
            batch,
            crop,
            Orientations::Mirror,
            &mut got,
        );
        let mut rng = Rng::new(11);
        let mut want = vec![0f32; batch * n];
        for b in 0..batch {
            let im = &pool.images[rng.below(pool.images.len())];
            let x0 = rng.below(im.width - crop + 1);
            let y0 = rng.below(im.height - crop + 1);
            let flip = rng.next_u64() >> 63 == 1;
            for y in 0..crop {
                for x in 0..crop {
                    let sx = if flip { crop - 1 - x } else { x };
                    for c in 0..3 {
                        want[b * n + c * crop * crop + y * crop + x] =
                            im.data[((y0 + y) * im.width + x0 + sx) * 3 + c] as f32 / 127.5 - 1.0;
                    }
                }
            }
        }
        assert_eq!(got, want);
    }
}
