//! The library's `Read`/`Write` entry points and the `image::DynamicImage` conversions.

use std::io::{Cursor, Read};

use diffc::image::{DynamicImage, GrayImage, ImageBuffer, Luma, Rgb, Rgba, RgbaImage};
use diffc::image_io::OutputFormat;
use diffc::{
    prior, CompressOptions, Decoder, DecompressOptions, Error, Image, Method, ModelChoice,
    RateTarget, ReconstructOptions, Stop,
};

fn fixture(name: &str) -> Image {
    Image::open(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR")).as_ref()).unwrap()
}

fn gauss_options(bpp: f64) -> CompressOptions {
    let mut opts = CompressOptions::new(prior::load_model("gauss").unwrap());
    opts.encoder.target = RateTarget::Bpp(bpp);
    opts.encoder.seed = 5;
    opts
}

fn denoise() -> DecompressOptions {
    DecompressOptions {
        reconstruct: ReconstructOptions {
            method: Method::Denoise,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn round_trip_through_cursors() {
    let image = fixture("dragonfly_96x64.png");
    let opts = gauss_options(1.0);
    // To a Write: the same bytes as the Encoder, and the encoding is returned.
    let mut out = Cursor::new(Vec::new());
    let encoded = diffc::compress_to(&image, &mut out, &opts).unwrap();
    let stream = out.into_inner();
    assert_eq!(stream, encoded.bytes);
    let direct = diffc::Encoder::new(opts.model.clone(), opts.encoder.clone())
        .unwrap()
        .encode(&image, &opts.limits, |_| {})
        .unwrap();
    assert_eq!(stream, direct.bytes);
    // From an image file's bytes: the same stream.
    let png = std::fs::read(format!(
        "{}/fixtures/dragonfly_96x64.png",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut again = Vec::new();
    diffc::compress_reader_to(Cursor::new(png), &mut again, &opts).unwrap();
    assert_eq!(again, stream);

    // From a Read: the same image and report as Decoder::decode on the whole slice.
    let (img, report) = diffc::decompress_from(Cursor::new(&stream), &denoise()).unwrap();
    let (want, want_report) = Decoder::new()
        .decode(&stream, &denoise().reconstruct)
        .unwrap();
    assert_eq!(img, want);
    // (Reports equal but for the steps' wall times.)
    assert_eq!(
        (report.header, report.steps_decoded, report.bytes_used),
        (
            want_report.header,
            want_report.steps_decoded,
            want_report.bytes_used
        )
    );
    assert_eq!(report.steps.len(), want_report.steps.len());
    assert_eq!(report.stop, Stop::Complete);
    assert_eq!((img.width, img.height, img.channels), (96, 64, 3));
    let psnr = diffc::psnr(&image, &img).unwrap();
    assert!(psnr > 12.0, "{psnr}");

    // A reader that hands out a few bytes at a time decodes the same.
    struct Dribble<'a>(&'a [u8]);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let (slow, _) = diffc::decompress_from(Dribble(&stream), &denoise()).unwrap();
    assert_eq!(slow, img);

    // To a Write in a chosen format.
    let mut png = Vec::new();
    let report = diffc::decompress_to(
        Cursor::new(&stream),
        &mut png,
        OutputFormat::Png,
        &denoise(),
    )
    .unwrap();
    assert_eq!(report.stop, Stop::Complete);
    assert_eq!(Image::decode(&png).unwrap(), img);
}

#[test]
fn cut_empty_and_failing_readers() {
    let image = fixture("dragonfly_gray_45x31.png");
    let mut stream = Vec::new();
    diffc::compress_to(&image, &mut stream, &gauss_options(2.0)).unwrap();
    // A cut stream is a success with a partial report, as with a slice.
    let cut = &stream[..stream.len() * 2 / 3];
    let (img, report) = diffc::decompress_from(Cursor::new(cut), &denoise()).unwrap();
    assert!(matches!(report.stop, Stop::Truncated { .. }), "{report:?}");
    assert_eq!((img.width, img.height, img.channels), (45, 31, 1));
    // No header: an error.
    let r = diffc::decompress_from(Cursor::new(&stream[..20]), &denoise());
    assert!(
        matches!(r, Err(Error::Truncated { what: "header" })),
        "{r:?}"
    );
    let r = diffc::decompress_from(std::io::empty(), &denoise());
    assert!(matches!(r, Err(Error::Truncated { .. })), "{r:?}");
    // A failing reader: its error, typed as I/O.
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let r = diffc::decompress_from(Broken, &denoise());
    assert!(
        matches!(&r, Err(Error::Io(e)) if e.to_string() == "disk on fire"),
        "{r:?}"
    );
    // A fixed model that is not the stream's: refused.
    if cfg!(feature = "embedded-model") {
        let opts = DecompressOptions {
            model: ModelChoice::Fixed(prior::load_model("tiny").unwrap()),
            ..denoise()
        };
        let r = diffc::decompress_from(Cursor::new(&stream), &opts);
        assert!(matches!(r, Err(Error::WrongModel { .. })), "{r:?}");
    }
    // Not an image: compress_reader_to says so and writes nothing.
    let mut out = Vec::new();
    let r = diffc::compress_reader_to(Cursor::new(b"not an image"), &mut out, &gauss_options(1.0));
    assert!(matches!(r, Err(Error::Image(_))), "{r:?}");
    assert!(out.is_empty());
}

#[test]
fn dynamic_image_conversions() {
    // RGB and gray round-trip exactly; by value and by reference.
    let rgb = fixture("dragonfly_96x64.png");
    let dynimg = DynamicImage::from(&rgb);
    assert!(matches!(dynimg, DynamicImage::ImageRgb8(_)));
    assert_eq!(Image::from(dynimg), rgb);
    let gray = fixture("dragonfly_gray_45x31.png");
    let dynimg: DynamicImage = gray.clone().into();
    assert!(matches!(dynimg, DynamicImage::ImageLuma8(_)));
    assert_eq!(Image::from(dynimg), gray);
    // Alpha is dropped (not composited): RGBA becomes RGB with the same color samples.
    let rgba = RgbaImage::from_fn(3, 2, |x, y| Rgba([x as u8 * 80, y as u8 * 100, 7, 0]));
    let img = Image::from(DynamicImage::ImageRgba8(rgba));
    assert_eq!((img.width, img.height, img.channels), (3, 2, 3));
    assert_eq!(&img.data[..6], &[0, 0, 7, 80, 0, 7]);
    // Gray with alpha stays gray; 16-bit samples are reduced to 8 bits.
    let la =
        ImageBuffer::<diffc::image::LumaA<u8>, _>::from_pixel(2, 2, diffc::image::LumaA([9, 0]));
    let img = Image::from(DynamicImage::ImageLumaA8(la));
    assert_eq!((img.channels, img.data.clone()), (1, vec![9; 4]));
    let deep = ImageBuffer::<Rgb<u16>, _>::from_pixel(2, 1, Rgb([65535, 0, 32896]));
    let img = Image::from(DynamicImage::ImageRgb16(deep));
    assert_eq!(img.data, vec![255, 0, 128, 255, 0, 128]);
    let g16 = ImageBuffer::<Luma<u16>, _>::from_pixel(1, 1, Luma([257 * 200]));
    assert_eq!(Image::from(DynamicImage::ImageLuma16(g16)).data, vec![200]);
    // The converted image codes like any other.
    let small = GrayImage::from_fn(16, 12, |x, y| Luma([(x * 13 + y * 7) as u8]));
    let mut stream = Vec::new();
    diffc::compress_to(
        &Image::from(DynamicImage::ImageLuma8(small)),
        &mut stream,
        &gauss_options(2.0),
    )
    .unwrap();
    assert!(!stream.is_empty());
}

#[test]
fn broken_image_fields_error_or_panic() {
    let bad = Image {
        width: 4,
        height: 4,
        channels: 3,
        data: vec![0; 5],
    };
    assert!(matches!(bad.to_dynamic(), Err(Error::InvalidArgument(_))));
    let r = std::panic::catch_unwind(|| DynamicImage::from(&bad));
    assert!(r.is_err());
}
