//! 8-bit images in and out, and their conversion to the codec's `[-1, 1]` planes; output
//! formats chosen from a file extension; files replaced atomically.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

    /// Decode PNG/JPEG/WebP/BMP/PNM/TIFF bytes. The EXIF orientation is applied (the image
    /// comes out upright); gray stays gray; alpha is dropped; 16-bit is reduced to 8-bit; ICC
    /// profiles and EXIF are not kept. [`Image::decode_noting`] says which of these happened.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::decode_noting(bytes).map(|(img, _)| img)
    }

    /// [`Image::decode`], plus what decoding changed or dropped (for warnings).
    pub fn decode_noting(bytes: &[u8]) -> Result<(Self, InputNotes)> {
        use image::ImageDecoder;
        let err = |e: image::ImageError| Error::Image(format!("cannot decode input image: {e}"));
        let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::Image(format!("cannot decode input image: {e}")))?
            .into_decoder()
            .map_err(err)?;
        // As `image::load_from_memory` does: the decoded buffer counts against the limits.
        let mut limits = image::Limits::default();
        limits.reserve(decoder.total_bytes()).map_err(err)?;
        decoder.set_limits(limits).map_err(err)?;
        let original = decoder.original_color_type();
        // Metadata is optional: a damaged ICC or EXIF block is not a reason to refuse pixels.
        let icc = decoder.icc_profile().ok().flatten();
        let exif = decoder.exif_metadata().ok().flatten();
        let orientation = decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms);
        let mut dynimg = image::DynamicImage::from_decoder(decoder).map_err(err)?;
        let decoded = dynimg.color();
        let bits = |bits_per_pixel: u16, channels: u8| bits_per_pixel / channels.max(1) as u16;
        let sample_bits = bits(original.bits_per_pixel(), original.channel_count())
            .max(bits(decoded.bits_per_pixel(), decoded.channel_count()));
        let notes = InputNotes {
            alpha_not_opaque: decoded.has_alpha().then(|| not_opaque(&dynimg)),
            sample_bits: (sample_bits > 8).then_some(sample_bits),
            icc_profile_bytes: icc.map(|v| v.len()).filter(|&n| n > 0),
            exif_bytes: exif.map(|v| v.len()).filter(|&n| n > 0),
            orientation: orientation.to_exif(),
        };
        dynimg.apply_orientation(orientation);
        Ok((Self::from_dynamic(dynimg), notes))
    }

    /// Read an image file (errors name the path).
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| io_error_at(path, e))?;
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
        self.encode_as(OutputFormat::Png)
    }

    /// Encode in `format`. [`OutputFormat::Ppm`] expands gray to RGB; [`OutputFormat::Pgm`]
    /// converts RGB to luma (BT.709 weights, as the `image` crate does); every other format
    /// keeps the channels. JPEG is written at quality 95; WebP is lossless.
    pub fn encode_as(&self, format: OutputFormat) -> Result<Vec<u8>> {
        let dynimg = self.to_dynamic()?;
        let (w, h) = (self.width, self.height);
        let pnm = |magic: &str, data: &[u8]| {
            let mut out = format!("{magic}\n{w} {h}\n255\n").into_bytes();
            out.extend_from_slice(data);
            out
        };
        let encoded = match format {
            OutputFormat::Ppm => pnm("P6", dynimg.to_rgb8().as_raw()),
            OutputFormat::Pgm => pnm("P5", dynimg.to_luma8().as_raw()),
            OutputFormat::Pnm if self.channels == 3 => pnm("P6", &self.data),
            OutputFormat::Pnm => pnm("P5", &self.data),
            OutputFormat::Pam => {
                let tupltype = if self.channels == 3 {
                    "RGB"
                } else {
                    "GRAYSCALE"
                };
                let mut out = format!(
                    "P7\nWIDTH {w}\nHEIGHT {h}\nDEPTH {}\nMAXVAL 255\nTUPLTYPE {tupltype}\nENDHDR\n",
                    self.channels
                )
                .into_bytes();
                out.extend_from_slice(&self.data);
                out
            }
            OutputFormat::Jpeg => {
                let mut out = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
                    .encode_image(&dynimg)
                    .map_err(|e| Error::Image(format!("cannot encode JPEG: {e}")))?;
                out
            }
            OutputFormat::Png | OutputFormat::Bmp | OutputFormat::Tiff | OutputFormat::Webp => {
                let fmt = match format {
                    OutputFormat::Png => image::ImageFormat::Png,
                    OutputFormat::Bmp => image::ImageFormat::Bmp,
                    OutputFormat::Tiff => image::ImageFormat::Tiff,
                    _ => image::ImageFormat::WebP,
                };
                let mut out = std::io::Cursor::new(Vec::new());
                dynimg
                    .write_to(&mut out, fmt)
                    .map_err(|e| Error::Image(format!("cannot encode {}: {e}", format.name())))?;
                out.into_inner()
            }
        };
        Ok(encoded)
    }

    /// Write to a file in the format its extension names (an unsupported or missing extension
    /// is an error; see [`OutputFormat::from_path`]). The file is replaced atomically
    /// ([`write_atomic`]): a failure never leaves a partial or emptied file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let format = OutputFormat::from_path(path)?;
        write_atomic(path, &self.encode_as(format)?)
    }

    /// This image as an [`image::DynamicImage`] (`ImageRgb8` or `ImageLuma8`), checking the
    /// invariants of [`Image::new`] first (the `From` conversion panics instead).
    pub fn to_dynamic(&self) -> Result<image::DynamicImage> {
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

/// Any decoded image, as [`Image::decode`] keeps it: gray stays gray (1 channel), everything
/// else becomes RGB (3 channels); alpha is dropped (not composited), samples deeper than 8 bits
/// are reduced to 8. An empty (0-pixel) image converts, but encoders refuse it.
impl From<image::DynamicImage> for Image {
    fn from(img: image::DynamicImage) -> Self {
        Image::from_dynamic(img)
    }
}

/// `ImageRgb8` or `ImageLuma8`, without copying the samples.
///
/// # Panics
/// When the image breaks the invariants of [`Image::new`] (its fields are public); use
/// [`Image::to_dynamic`] to get an error instead.
impl From<Image> for image::DynamicImage {
    fn from(img: Image) -> Self {
        if let Err(e) = img.check() {
            panic!("Image to DynamicImage: {e}");
        }
        let (w, h) = (img.width, img.height);
        if img.channels == 3 {
            image::DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(w, h, img.data).expect("checked size"),
            )
        } else {
            image::DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(w, h, img.data).expect("checked size"),
            )
        }
    }
}

/// `ImageRgb8` or `ImageLuma8` (a copy of the samples).
///
/// # Panics
/// When the image breaks the invariants of [`Image::new`] (its fields are public); use
/// [`Image::to_dynamic`] to get an error instead.
impl From<&Image> for image::DynamicImage {
    fn from(img: &Image) -> Self {
        img.to_dynamic()
            .unwrap_or_else(|e| panic!("Image to DynamicImage: {e}"))
    }
}

/// What [`Image::decode_noting`] changed or dropped while reading an image file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputNotes {
    /// The file had an alpha channel (dropped): how many pixels were not fully opaque.
    pub alpha_not_opaque: Option<u64>,
    /// Bits per sample of the file when more than 8 (reduced to 8).
    pub sample_bits: Option<u16>,
    /// Size of the ICC profile the file carried (not kept).
    pub icc_profile_bytes: Option<usize>,
    /// Size of the EXIF block the file carried (not kept).
    pub exif_bytes: Option<usize>,
    /// The EXIF orientation (1..=8; 1 = as stored) that was applied to the pixels.
    pub orientation: u8,
}

impl InputNotes {
    /// One sentence per thing lost or changed, for warnings (empty when nothing was).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(n) = self.alpha_not_opaque.filter(|&n| n > 0) {
            w.push(format!(
                "the alpha channel is dropped ({n} pixels are not fully opaque; their stored colour is coded, not blended)"
            ));
        }
        if let Some(b) = self.sample_bits {
            w.push(format!("{b}-bit samples are reduced to 8 bits"));
        }
        if let Some(n) = self.icc_profile_bytes {
            w.push(format!(
                "the ICC colour profile ({n} bytes) is dropped; the decoded image has none (viewers assume sRGB)"
            ));
        }
        if let Some(n) = self.exif_bytes {
            let rotated = if self.orientation > 1 {
                format!(
                    " (its orientation {} was applied to the pixels)",
                    self.orientation
                )
            } else {
                String::new()
            };
            w.push(format!("EXIF metadata ({n} bytes) is dropped{rotated}"));
        }
        w
    }
}

/// Pixels whose alpha is below the maximum.
fn not_opaque(img: &image::DynamicImage) -> u64 {
    use image::DynamicImage as D;
    let n = match img {
        D::ImageLumaA8(b) => b.pixels().filter(|p| p[1] < u8::MAX).count(),
        D::ImageRgba8(b) => b.pixels().filter(|p| p[3] < u8::MAX).count(),
        D::ImageLumaA16(b) => b.pixels().filter(|p| p[1] < u16::MAX).count(),
        D::ImageRgba16(b) => b.pixels().filter(|p| p[3] < u16::MAX).count(),
        D::ImageRgba32F(b) => b.pixels().filter(|p| p[3] < 1.0).count(),
        _ => 0,
    };
    n as u64
}

/// An image file format this crate can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// PNG (lossless, gray or RGB).
    Png,
    /// Binary PPM (`P6`); gray images are expanded to RGB.
    Ppm,
    /// Binary PGM (`P5`); RGB images are converted to luma.
    Pgm,
    /// PAM (`P7`), `TUPLTYPE GRAYSCALE` or `RGB`.
    Pam,
    /// `P5` for gray images, `P6` for RGB (the `.pnm` extension).
    Pnm,
    /// BMP.
    Bmp,
    /// TIFF.
    Tiff,
    /// Baseline JPEG, quality 95.
    Jpeg,
    /// Lossless WebP.
    Webp,
}

/// The extensions [`OutputFormat::from_extension`] knows, for messages.
pub const OUTPUT_EXTENSIONS: &str = ".png .ppm .pgm .pam .pnm .bmp .tif .tiff .jpg .jpeg .webp";

impl OutputFormat {
    /// The format a file extension (without the dot, any case) names, if it can be written.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "png" => Self::Png,
            "ppm" => Self::Ppm,
            "pgm" => Self::Pgm,
            "pam" => Self::Pam,
            "pnm" => Self::Pnm,
            "bmp" => Self::Bmp,
            "tif" | "tiff" => Self::Tiff,
            "jpg" | "jpeg" => Self::Jpeg,
            "webp" => Self::Webp,
            _ => return None,
        })
    }

    /// The format of `path`'s extension; an error naming the path and the supported
    /// extensions when it has none or one that cannot be written (`.gif`, `.avif`, `.jxl`, ...).
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().map(|e| e.to_string_lossy()) {
            Some(ext) => Self::from_extension(&ext).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{}: cannot write .{ext} images (supported extensions: {OUTPUT_EXTENSIONS})",
                    path.display()
                ))
            }),
            None => Err(Error::InvalidArgument(format!(
                "{}: no file extension to choose the image format from (supported extensions: {OUTPUT_EXTENSIONS})",
                path.display()
            ))),
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Ppm => "ppm",
            Self::Pgm => "pgm",
            Self::Pam => "pam",
            Self::Pnm => "pnm",
            Self::Bmp => "bmp",
            Self::Tiff => "tif",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    /// Short name, e.g. `PNG`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Ppm => "PPM",
            Self::Pgm => "PGM",
            Self::Pam => "PAM",
            Self::Pnm => "PNM",
            Self::Bmp => "BMP",
            Self::Tiff => "TIFF",
            Self::Jpeg => "JPEG",
            Self::Webp => "WebP",
        }
    }
}

/// What kind of file `bytes` look like, from their magic bytes: `Some("PNG")`, `Some("diffc
/// stream")`, ... or `None` when unknown. Recognises more formats than this crate reads, so
/// a wrong input can be named.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let b = bytes;
    let at = |off: usize, m: &[u8]| b.len() >= off + m.len() && &b[off..off + m.len()] == m;
    Some(if at(0, &crate::bitstream::MAGIC) {
        "diffc stream"
    } else if at(0, b"\x89PNG\r\n\x1a\n") {
        "PNG"
    } else if at(0, &[0xFF, 0xD8, 0xFF]) {
        "JPEG"
    } else if at(0, b"GIF87a") || at(0, b"GIF89a") {
        "GIF"
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        "WebP"
    } else if at(0, b"II*\0") || at(0, b"MM\0*") {
        "TIFF"
    } else if at(0, b"BM") && b.len() >= 26 {
        "BMP"
    } else if at(4, b"ftypavif") || at(4, b"ftypavis") {
        "AVIF"
    } else if at(4, b"ftypheic") || at(4, b"ftypheix") || at(4, b"ftypmif1") {
        "HEIF"
    } else if at(0, &[0xFF, 0x0A]) || at(0, b"\0\0\0\x0cJXL \r\n\x87\n") {
        "JPEG XL"
    } else if at(0, b"qoif") {
        "QOI"
    } else if at(0, b"\x76\x2f\x31\x01") {
        "OpenEXR"
    } else if at(0, b"#?RADIANCE") || at(0, b"#?RGBE") {
        "Radiance HDR"
    } else if b.len() >= 3
        && b[0] == b'P'
        && (b'1'..=b'7').contains(&b[1])
        && b[2].is_ascii_whitespace()
    {
        "PNM"
    } else {
        return None;
    })
}

/// `e` with `path` in front of its message, as `diffc::Error::Io`.
pub fn io_error_at(path: &Path, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

/// Where [`write_atomic`] puts the bytes in the end: a symlink is followed (the link stays).
fn final_target(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).unwrap_or(path.to_owned()),
        _ => path.to_owned(),
    }
}

/// `.<name>.diffc-tmp-<pid>-<n>` next to `target`.
fn temp_path(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".{name}.diffc-tmp-{}-{n}", std::process::id()))
}

/// Whether an existing `target` is something other than a regular file we may replace:
/// `Ok(true)` for devices and pipes (written in place), an error for a folder or a read-only
/// file, `Ok(false)` for a regular file or no file.
fn written_in_place(path: &Path, target: &Path) -> Result<bool> {
    match fs::metadata(target) {
        Ok(m) if m.is_dir() => Err(io_error_at(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a folder"),
        )),
        Ok(m) if m.is_file() && m.permissions().readonly() => Err(io_error_at(
            path,
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "file is read-only; not replaced",
            ),
        )),
        Ok(m) => Ok(!m.is_file()),
        Err(_) => Ok(false),
    }
}

/// Check, before any work, that [`write_atomic`] can write `path`: its folder exists and
/// accepts a new file, and `path` is not a folder or a read-only file. Leaves nothing behind.
pub fn check_writable(path: &Path) -> Result<()> {
    let target = final_target(path);
    if written_in_place(path, &target)? {
        return Ok(());
    }
    let tmp = temp_path(&target);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| io_error_at(path, e))?;
    let _ = fs::remove_file(&tmp);
    Ok(())
}

/// Planar `[-1, 1]` samples (1 or 3 channels) as a Portable Float Map, unclipped, in `[0, 1]`
/// units (`(v + 1) / 2`): little-endian binary32, rows bottom to top, as the format has it.
/// For values 8 bits cannot hold, such as a noisy image before clipping. Atomic like
/// [`write_atomic`].
pub fn write_pfm(p: &Planes, path: &Path) -> Result<()> {
    let (w, h, c) = (p.width, p.height, p.channels);
    if !(c == 1 || c == 3) || p.data.len() != w * h * c {
        return Err(Error::InvalidArgument(format!(
            "{}: a float map has 1 or 3 channels of {w}x{h} samples",
            path.display()
        )));
    }
    let mut bytes = format!("{}\n{w} {h}\n-1.0\n", if c == 3 { "PF" } else { "Pf" }).into_bytes();
    bytes.reserve(4 * w * h * c);
    for y in (0..h).rev() {
        for x in 0..w {
            for ch in 0..c {
                let v = (p.data[(ch * h + y) * w + x] + 1.0) / 2.0;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    write_atomic(path, &bytes)
}

/// Replace `path` with `bytes` atomically: write a temporary file in the same folder
/// (`.<name>.diffc-tmp-<pid>-<n>`), flush it to disk, then rename it over `path`. On any error
/// the temporary file is removed and `path` is untouched — never partial, never emptied. A
/// symlink is followed; a device or pipe (e.g. `/dev/null`) is written directly; an existing
/// file keeps its permissions; a read-only file or a folder is refused. Errors name `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = final_target(path);
    if written_in_place(path, &target)? {
        return fs::write(&target, bytes).map_err(|e| io_error_at(path, e));
    }
    let tmp = temp_path(&target);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        if let Ok(m) = fs::metadata(&target) {
            f.set_permissions(m.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &target)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(io_error_at(path, e));
    }
    // Make the rename itself durable (best effort: not every platform can open a folder).
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
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
