//! `Read`/`Write` entry points: compress an image to any writer, decompress from any reader.
//!
//! Thin wrappers over [`Encoder`] and [`StreamingDecoder`] for callers who hold files, sockets
//! or buffers rather than byte slices:
//!
//! ```
//! use std::io::Cursor;
//! use diffc::{prior, CompressOptions, DecompressOptions, Image, RateTarget};
//!
//! let image = Image::new(32, 24, 3, (0..32 * 24 * 3).map(|i| (i * 7 % 256) as u8).collect())?;
//! let mut opts = CompressOptions::new(prior::load_model("gauss")?);
//! opts.encoder.target = RateTarget::Bpp(1.0);
//! let mut stream = Vec::new();
//! diffc::compress_to(&image, &mut stream, &opts)?;
//!
//! let (decoded, report) = diffc::decompress_from(Cursor::new(&stream), &DecompressOptions::default())?;
//! assert_eq!((decoded.width, decoded.height), (32, 24));
//! assert_eq!(report.stop, diffc::Stop::Complete);
//! # Ok::<(), diffc::Error>(())
//! ```
//!
//! With files and the `image` crate (re-exported as `diffc::image`):
//!
//! ```no_run
//! use diffc::{image_io::OutputFormat, prior, CompressOptions, DecompressOptions, Image};
//!
//! let photo = diffc::image::open("photo.jpg").map_err(|e| diffc::Error::Image(e.to_string()))?;
//! let image = Image::from(photo); // gray stays gray, else RGB; alpha dropped, 16-bit reduced
//! let mut opts = CompressOptions::new(prior::load_model(prior::DEFAULT_MODEL)?);
//! opts.encoder.target = diffc::RateTarget::Bpp(0.25);
//! diffc::compress_to(&image, std::fs::File::create("photo.dfc")?, &opts)?;
//!
//! let stream = std::fs::File::open("photo.dfc")?; // decoded as it is read
//! let (decoded, report) = diffc::decompress_from(stream, &DecompressOptions::default())?;
//! let back: diffc::image::DynamicImage = decoded.into();
//! // Or straight to an image file:
//! let png = std::fs::File::create("photo.png")?;
//! diffc::decompress_to(std::fs::File::open("photo.dfc")?, png, OutputFormat::Png, &DecompressOptions::default())?;
//! # let _ = (report, back);
//! # Ok::<(), diffc::Error>(())
//! ```

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use crate::codec::{DecodeReport, Encoded, Encoder, EncoderOptions, ModelChoice, StreamingDecoder};
use crate::error::{Error, Result};
use crate::image_io::{Image, OutputFormat};
use crate::prior::Denoiser;
use crate::reconstruct::ReconstructOptions;
use crate::Limits;

/// How [`compress_to`] codes: the prior, the encoder's options and the limits.
#[derive(Clone)]
pub struct CompressOptions {
    /// The prior (e.g. [`crate::prior::load_model`]); the decoder needs the same model.
    pub model: Arc<dyn Denoiser>,
    /// Rate target, seed, grid and the expert knobs.
    pub encoder: EncoderOptions,
    /// What the encoder may take on (it refuses images the same limits would refuse to decode).
    pub limits: Limits,
}

impl CompressOptions {
    /// Default encoder options (0.5 bpp, seed 0) and limits with `model` as the prior.
    pub fn new(model: Arc<dyn Denoiser>) -> Self {
        CompressOptions {
            model,
            encoder: EncoderOptions::default(),
            limits: Limits::default(),
        }
    }
}

/// How [`decompress_from`] decodes: which model, how to reconstruct, and the limits.
#[derive(Clone)]
pub struct DecompressOptions {
    /// The model: by the stream's id among the embedded ones (default), or a given one.
    pub model: ModelChoice,
    /// Reconstruction method and its evaluations.
    pub reconstruct: ReconstructOptions,
    /// What a stream may ask for.
    pub limits: Limits,
}

impl Default for DecompressOptions {
    /// The model the stream names ([`ModelChoice::ByStreamId`]), default reconstruction
    /// (flow) and limits.
    fn default() -> Self {
        DecompressOptions {
            model: ModelChoice::ByStreamId,
            reconstruct: ReconstructOptions::default(),
            limits: Limits::default(),
        }
    }
}

/// Compress `image` and write the stream to `writer` (flushed at the end). Returns the
/// encoding, with its per-step report; nothing is written if coding fails.
///
/// ```no_run
/// use diffc::{prior, CompressOptions, Image};
/// let image = Image::open("photo.png".as_ref())?;
/// let opts = CompressOptions::new(prior::load_model(prior::DEFAULT_MODEL)?);
/// let file = std::io::BufWriter::new(std::fs::File::create("photo.dfc")?);
/// diffc::compress_to(&image, file, &opts)?;
/// # Ok::<(), diffc::Error>(())
/// ```
pub fn compress_to(
    image: &Image,
    mut writer: impl Write,
    opts: &CompressOptions,
) -> Result<Encoded> {
    let encoded = Encoder::new(opts.model.clone(), opts.encoder.clone())?.encode(
        image,
        &opts.limits,
        |_| {},
    )?;
    writer.write_all(&encoded.bytes)?;
    writer.flush()?;
    Ok(encoded)
}

/// [`compress_to`] of an image file read from `reader` (PNG, JPEG, WebP, BMP, PNM or TIFF, as
/// [`Image::decode`] reads them).
pub fn compress_reader_to(
    mut reader: impl Read,
    writer: impl Write,
    opts: &CompressOptions,
) -> Result<Encoded> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    let image = Image::decode(&bytes)?;
    drop(bytes);
    compress_to(&image, writer, opts)
}

/// Read a stream from `reader` to its end and reconstruct it, as [`crate::Decoder::decode`]
/// does with a slice: a cut or damaged stream gives the image of its last good packet and a
/// report saying where and why it stopped; only a missing or unusable header is an error
/// (`Truncated` for an empty or short reader). Bytes are decoded as they arrive, and reading
/// stops at the first packet the decoder rejects.
pub fn decompress_from(
    mut reader: impl Read,
    opts: &DecompressOptions,
) -> Result<(Image, DecodeReport)> {
    let mut sd = StreamingDecoder::new(opts.model.clone(), opts.limits);
    let mut buf = vec![0u8; 1 << 16];
    let mut pushed = Ok(0);
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io(e)),
        };
        pushed = sd.push(&buf[..n]);
        if pushed.is_err() {
            break;
        }
    }
    if sd.header().is_none() {
        pushed?;
        return Err(Error::Truncated { what: "header" });
    }
    let image = sd.render(&opts.reconstruct)?;
    Ok((image, sd.report()))
}

/// [`decompress_from`], then the image written to `writer` in `format` (flushed at the end).
///
/// ```no_run
/// use diffc::{image_io::OutputFormat, DecompressOptions};
/// let stream = std::fs::File::open("photo.dfc")?;
/// let out = std::io::BufWriter::new(std::fs::File::create("photo.png")?);
/// let report = diffc::decompress_to(stream, out, OutputFormat::Png, &DecompressOptions::default())?;
/// println!("{} of {} bytes used", report.bytes_used, std::fs::metadata("photo.dfc")?.len());
/// # Ok::<(), diffc::Error>(())
/// ```
pub fn decompress_to(
    reader: impl Read,
    mut writer: impl Write,
    format: OutputFormat,
    opts: &DecompressOptions,
) -> Result<DecodeReport> {
    let (image, report) = decompress_from(reader, opts)?;
    writer.write_all(&image.encode_as(format)?)?;
    writer.flush()?;
    Ok(report)
}
