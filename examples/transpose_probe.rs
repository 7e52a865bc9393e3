//! What averaging over the transposed latent too (eight mirror images instead of four) would add
//! to a model's denoising, on the same noise as `diffc eval --denoise` (its default seed, 1):
//!
//! `transpose_probe MODEL DIR SIGMAS`, e.g. `transpose_probe deep-int8 ../shared/data/dev 15,25,50`
//!
//! Prints each image's PSNR and the means, without and with the transposed pass. Twice the
//! network passes: a measurement, not a model.
use diffc::prior::{load_model, Denoiser, Planes};
use std::sync::Arc;

struct WithTranspose(Arc<dyn Denoiser>);

fn transpose(p: &Planes) -> Planes {
    let (h, w) = (p.height, p.width);
    let mut out = Planes::zeros(p.channels, w, h);
    for c in 0..p.channels {
        for y in 0..h {
            for x in 0..w {
                out.data[(c * w + x) * h + y] = p.data[(c * h + y) * w + x];
            }
        }
    }
    out
}

impl Denoiser for WithTranspose {
    fn name(&self) -> &str {
        "probe"
    }
    fn model_id(&self) -> u64 {
        0
    }
    fn predict_x(&self, z: &Planes, lambda: f64) -> diffc::Result<Planes> {
        let a = self.0.predict_x(z, lambda)?;
        let b = transpose(&self.0.predict_x(&transpose(z), lambda)?);
        let mut out = a.clone();
        for (o, v) in out.data.iter_mut().zip(&b.data) {
            *o = (*o + v) / 2.0;
        }
        Ok(out)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!(
            "usage: transpose_probe MODEL DIR SIGMAS (e.g. deep-int8 ../shared/data/dev 15,25,50)"
        );
        std::process::exit(2);
    }
    let model = load_model(&args[1]).unwrap_or_else(|e| {
        eprintln!("model {}: {e}", args[1]);
        std::process::exit(1)
    });
    let sigmas: Vec<f64> = args[3]
        .split(',')
        .map(|s| s.parse().expect("noise levels are numbers, e.g. 15,25,50"))
        .collect();
    let probe = WithTranspose(model.clone());
    for (name, m) in [
        ("plain", model.as_ref()),
        ("transpose", &probe as &dyn Denoiser),
    ] {
        let rows = diffc::eval::denoise(
            std::path::Path::new(&args[2]),
            m,
            &sigmas,
            None,
            1,
            |r, _| {
                println!("{name} {} {} {:.3}", r.image, r.sigma, r.psnr);
                Ok(())
            },
        )
        .unwrap_or_else(|e| {
            eprintln!("{}: {e}", args[2]);
            std::process::exit(1)
        });
        for (s, _, p, n) in diffc::eval::denoise_means(&rows) {
            println!("MEAN {name} sigma {s} psnr {p:.3} ({n})");
        }
    }
}
