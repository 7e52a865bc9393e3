//! Put the same crop of several images side by side (for the model card's
//! flow-vs-denoise comparison), each enlarged by an integer factor with nearest-neighbour
//! so individual pixels stay visible.
//! `cargo run --release --example side_by_side -- OUT X Y W H SCALE IMG...`
use image::{Rgb, RgbImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 8 {
        return Err("usage: side_by_side OUT X Y W H SCALE IMG...".into());
    }
    let n = |i: usize| a[i].parse::<u32>();
    let (x, y, w, h, s) = (n(2)?, n(3)?, n(4)?, n(5)?, n(6)?.max(1));
    let imgs = &a[7..];
    let gap = 4;
    let k = imgs.len() as u32;
    let mut out = RgbImage::from_pixel(k * w * s + (k - 1) * gap, h * s, Rgb([255, 255, 255]));
    for (i, path) in imgs.iter().enumerate() {
        let img = image::open(path)?.into_rgb8();
        if x + w > img.width() || y + h > img.height() {
            return Err(format!("{path}: crop outside the image").into());
        }
        let x0 = i as u32 * (w * s + gap);
        for dy in 0..h * s {
            for dx in 0..w * s {
                out.put_pixel(x0 + dx, dy, *img.get_pixel(x + dx / s, y + dy / s));
            }
        }
    }
    out.save(&a[1])?;
    Ok(())
}
