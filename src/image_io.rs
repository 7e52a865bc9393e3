//! 8-bit images in and out, and their conversion to the codec's `[-1, 1]` planes.

use std::path::Path;

use crate::error::{Error, Result};
use crate::prior::Planes;

/// An 8-bit image, interleaved samples, 1 (gray) or 3 (RGB) channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 or 3.
    pub channels: u8,
    /// `width * height * channels` samples, row-major, channels interleaved.
    pub data: Vec<u8>,
}

impl Image {
    /// Build an image, checking the buffer size.
    pub fn new(width: u32, height: u32, channels: u8, data: Vec<u8>) -> Result<Self> {
        let img = Image {
            width,
            height,
            channels,
            data,
        };
        img.check()?;
        Ok(img)
    }

    /// Check the invariants [`Image::new`] establishes (the fields are public, so an image
    /// built field by field is checked again before it is encoded or saved).
    pub fn check(&self) -> Result<()> {
        let (width, height, channels) = (self.width, self.height, self.channels);
        if channels != 1 && channels != 3 {
            return Err(Error::InvalidArgument(format!(
                "channels = {channels}, must be 1 or 3"
            )));
        }
        if width == 0 || height == 0 {
            return Err(Error::InvalidArgument(format!(
                "image size {width}x{height} is empty"
            )));
        }
        let want = width as u64 * height as u64 * channels as u64;
        if self.data.len() as u64 != want {
            return Err(Error::InvalidArgument(format!(
                "buffer has {} samples, {width}x{height}x{channels} needs {want}",
                self.data.len()
            )));
        }
        Ok(())
    }

    /// Decode PNG/JPEG/WebP/BMP/PNM/TIFF bytes. Gray stays gray; alpha is dropped; 16-bit is
    /// reduced to 8-bit.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let dynimg = image::load_from_memory(bytes)
            .map_err(|e| Error::Image(format!("cannot decode input image: {e}")))?;
        Ok(Self::from_dynamic(dynimg))
    }

    /// Read an image file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)?;
        Self::decode(&bytes).map_err(|e| match e {
            Error::Image(m) => Error::Image(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    fn from_dynamic(img: image::DynamicImage) -> Self {
        let (w, h) = (img.width(), img.height());
        if img.color().has_color() {
            Image {
                width: w,
                height: h,
                channels: 3,
                data: img.into_rgb8().into_raw(),
            }
        } else {
            Image {
                width: w,
                height: h,
                channels: 1,
                data: img.into_luma8().into_raw(),
            }
        }
    }

    /// Encode as PNG.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.to_dynamic()?
            .write_to(&mut out, image::ImageFormat::Png)
            .map_err(|e| Error::Image(format!("cannot encode PNG: {e}")))?;
        Ok(out.into_inner())
    }

    /// Write to a file; the format follows the extension (PNG when unknown).
    pub fn save(&self, path: &Path) -> Result<()> {
        let fmt = image::ImageFormat::from_path(path).unwrap_or(image::ImageFormat::Png);
        self.to_dynamic()?
            .save_with_format(path, fmt)
            .map_err(|e| Error::Image(format!("cannot write {}: {e}", path.display())))
    }

    fn to_dynamic(&self) -> Result<image::DynamicImage> {
        self.check()?;
        let (w, h) = (self.width, self.height);
        let bad = || Error::InvalidArgument("image buffer does not match its size".into());
        Ok(if self.channels == 3 {
            image::DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(w, h, self.data.clone()).ok_or_else(bad)?,
            )
        } else {
            image::DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(w, h, self.data.clone()).ok_or_else(bad)?,
            )
        })
    }

    /// Planar `[-1, 1]` samples: `v / 127.5 - 1`.
    pub fn to_planes(&self) -> Planes {
        let (w, h, c) = (
            self.width as usize,
            self.height as usize,
            self.channels as usize,
        );
        let mut p = Planes::zeros(c, h, w);
        for (i, px) in self.data.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                p.data[ch * w * h + i] = v as f32 / 127.5 - 1.0;
            }
        }
        p
    }

    /// Quantize planar `[-1, 1]` samples back to 8 bits (clamped, rounded).
    pub fn from_planes(p: &Planes) -> Result<Self> {
        let (w, h, c) = (p.width, p.height, p.channels);
        let mut data = vec![0u8; w * h * c];
        for ch in 0..c {
            for i in 0..w * h {
                let v = (p.data[ch * w * h + i] + 1.0) * 127.5;
                data[i * c + ch] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
        Image::new(w as u32, h as u32, c as u8, data)
    }
}

/// Peak signal-to-noise ratio in dB between two 8-bit images of the same shape.
pub fn psnr(a: &Image, b: &Image) -> Result<f64> {
    if (a.width, a.height, a.channels) != (b.width, b.height, b.channels) {
        return Err(Error::InvalidArgument(
            "PSNR of images of different shapes".into(),
        ));
    }
    let se: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum();
    let mse = se / a.data.len() as f64;
    Ok(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    })
}
