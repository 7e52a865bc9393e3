//! What `compress` does with what a pixel codec cannot carry: EXIF orientation is applied (a
//! portrait photo stored sideways comes back upright); alpha, 16-bit samples, ICC profiles and
//! EXIF are dropped with a warning.

use std::process::Command;

use diffc::Image;
use image::{ImageEncoder, Rgb, RgbImage};

fn diffc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffc"))
}

fn tmp(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("diffc-input-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).to_string_lossy().into_owned()
}

/// A raw EXIF block (big-endian TIFF) holding only an Orientation tag.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut v = b"MM\0*\0\0\0\x08".to_vec();
    v.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    v.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    v.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    v.extend_from_slice(&1u32.to_be_bytes()); // count
    v.extend_from_slice(&value.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    v
}

/// 40x24 gray with a red 8x8 block in the stored top-left corner.
fn marked() -> RgbImage {
    RgbImage::from_fn(40, 24, |x, y| {
        if x < 8 && y < 8 {
            Rgb([230, 20, 20])
        } else {
            Rgb([120, 120, 120])
        }
    })
}

fn is_red(img: &Image, x: u32, y: u32) -> bool {
    let i = ((y * img.width + x) * 3) as usize;
    let p = &img.data[i..i + 3];
    p[0] > 180 && p[1] < 90 && p[2] < 90
}

fn jpeg_with_exif(exif: Vec<u8>) -> Vec<u8> {
    let img = marked();
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
    enc.set_exif_metadata(exif).unwrap();
    enc.write_image(img.as_raw(), 40, 24, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn png(
    raw: &[u8],
    (w, h): (u32, u32),
    color: image::ExtendedColorType,
    icc: Option<Vec<u8>>,
    exif: Option<Vec<u8>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    if let Some(icc) = icc {
        enc.set_icc_profile(icc).unwrap();
    }
    if let Some(exif) = exif {
        enc.set_exif_metadata(exif).unwrap();
    }
    enc.write_image(raw, w, h, color).unwrap();
    out
}

/// compress (closed-form prior) then decompress; returns the decoded image and compress's
/// stderr.
fn round_trip(name: &str, bytes: &[u8]) -> (Image, String) {
    let input = tmp(name);
    std::fs::write(&input, bytes).unwrap();
    let (s, out) = (tmp(&format!("{name}.dfc")), tmp(&format!("{name}.out.png")));
    let o = diffc()
        .args(["compress", &input, &s, "--model", "gauss", "--bpp", "4"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let d = diffc()
        .args(["decompress", &s, &out, "--method", "denoise"])
        .output()
        .unwrap();
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    (Image::open(out.as_ref()).unwrap(), err)
}

#[test]
fn exif_orientation_6_jpeg_comes_back_upright() {
    let bytes = jpeg_with_exif(exif_orientation(6));
    let (img, notes) = Image::decode_noting(&bytes).unwrap();
    // Orientation 6: stored sideways, shown rotated 90 degrees clockwise.
    assert_eq!((img.width, img.height), (24, 40));
    assert_eq!(notes.orientation, 6);
    assert!(notes.exif_bytes.is_some());
    // The stored top-left corner is now the top-right one.
    assert!(is_red(&img, 20, 3) && !is_red(&img, 3, 3) && !is_red(&img, 3, 36));
    assert_eq!(Image::decode(&bytes).unwrap(), img);
    let (out, err) = round_trip("rot6.jpg", &bytes);
    assert_eq!((out.width, out.height), (24, 40));
    assert!(
        err.contains("warning:") && err.contains("EXIF metadata") && err.contains("orientation 6"),
        "{err}"
    );
}

#[test]
fn exif_orientation_8_png_and_plain_files() {
    let raw = marked();
    let bytes = png(
        raw.as_raw(),
        (40, 24),
        image::ExtendedColorType::Rgb8,
        None,
        Some(exif_orientation(8)),
    );
    let (img, notes) = Image::decode_noting(&bytes).unwrap();
    // Orientation 8: rotated 90 degrees counter-clockwise; top-left goes to bottom-left.
    assert_eq!((img.width, img.height), (24, 40));
    assert_eq!(notes.orientation, 8);
    assert!(is_red(&img, 3, 36) && !is_red(&img, 3, 3));
    // Orientation 1 changes nothing; no metadata, no warnings.
    let plain = png(
        raw.as_raw(),
        (40, 24),
        image::ExtendedColorType::Rgb8,
        None,
        None,
    );
    let (img, notes) = Image::decode_noting(&plain).unwrap();
    assert_eq!((img.width, img.height, notes.orientation), (40, 24, 1));
    assert!(notes.warnings().is_empty(), "{:?}", notes.warnings());
    let (_, err) = round_trip("plain.png", &plain);
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn alpha_16_bit_and_icc_profiles_are_warned_about() {
    // 16x8 RGBA, 16 bits: the right half is semi-transparent.
    let (w, h) = (16u32, 8u32);
    let mut raw = Vec::new();
    for _y in 0..h {
        for x in 0..w {
            let a: u16 = if x >= 8 { 30000 } else { u16::MAX };
            for v in [40000u16, 1000, 20000, a] {
                raw.extend_from_slice(&v.to_ne_bytes());
            }
        }
    }
    let icc = vec![7u8; 300];
    let bytes = png(
        &raw,
        (w, h),
        image::ExtendedColorType::Rgba16,
        Some(icc),
        None,
    );
    let (img, notes) = Image::decode_noting(&bytes).unwrap();
    assert_eq!((img.width, img.height, img.channels), (16, 8, 3));
    assert_eq!(notes.alpha_not_opaque, Some(64));
    assert_eq!(notes.sample_bits, Some(16));
    assert_eq!(notes.icc_profile_bytes, Some(300));
    let (_, err) = round_trip("rgba16.png", &bytes);
    for want in [
        "alpha channel is dropped (64 pixels are not fully opaque",
        "16-bit samples are reduced to 8 bits",
        "ICC colour profile (300 bytes) is dropped",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    // Warnings are not progress: --quiet keeps them.
    let o = diffc()
        .args(["--quiet", "compress", &tmp("rgba16.png"), &tmp("q.dfc")])
        .args(["--model", "gauss"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("alpha channel is dropped"));
    // An opaque alpha channel loses nothing: no warning.
    let opaque: Vec<u8> = (0..w * h).flat_map(|i| [i as u8, 50, 90, 255]).collect();
    let bytes = png(&opaque, (w, h), image::ExtendedColorType::Rgba8, None, None);
    let (_, notes) = Image::decode_noting(&bytes).unwrap();
    assert_eq!(notes.alpha_not_opaque, Some(0));
    assert!(notes.warnings().is_empty(), "{:?}", notes.warnings());
}
