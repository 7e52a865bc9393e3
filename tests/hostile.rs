//! Inputs found by reviewing the decode and encode paths for panics, silent errors and
//! unbounded allocation (one test per finding).

use std::sync::Arc;

use bytes::BytesMut;
use diffc::bitstream::Packet;
use diffc::prior::gauss::{gauss_model_id, GaussDenoiser};
use diffc::prior::{Denoiser, Planes};
use diffc::schedule::Grid;
use diffc::{
    Decoder, Encoder, EncoderOptions, Error, Header, Image, Limits, Method, RateTarget,
    ReconstructOptions, Stop,
};

fn fixture(name: &str) -> Image {
    Image::open(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR")).as_ref()).unwrap()
}

fn gauss() -> Arc<dyn Denoiser> {
    Arc::new(GaussDenoiser::default())
}

fn denoise() -> ReconstructOptions {
    ReconstructOptions {
        method: Method::Denoise,
        ..Default::default()
    }
}

fn small_header() -> Header {
    Header {
        width: 8,
        height: 8,
        channels: 3,
        model_id: gauss_model_id(),
        seed: 0,
        grid: Grid::new(-4.0, 12.0, 33).unwrap(),
        max_width: 256,
    }
}

/// `i32::MIN` as lambda_start used to overflow `abs()` (wrapping past the range check in
/// release builds, then decoding NaNs into a black image reported as complete).
#[test]
fn lambda_start_i32_min_is_a_format_error() {
    let mut h = small_header();
    h.grid = Grid {
        start_q: i32::MIN,
        stop_q: 0,
        steps: 2,
    };
    let r = Decoder::new().decode(&h.to_bytes(), &denoise());
    assert!(
        matches!(
            r,
            Err(Error::Format {
                field: "lambda_start/lambda_stop",
                ..
            })
        ),
        "{r:?}"
    );
    // And the encoder cannot be asked for such a grid.
    let opts = EncoderOptions {
        lambda_start: -1e12,
        ..Default::default()
    };
    assert!(matches!(
        Encoder::new(gauss(), opts),
        Err(Error::InvalidArgument(_))
    ));
}

/// A denoiser that would need a lot of working memory per pixel.
struct Hungry;
impl Denoiser for Hungry {
    fn name(&self) -> &str {
        "hungry"
    }
    fn model_id(&self) -> u64 {
        gauss_model_id()
    }
    fn predict_x(&self, z: &Planes, _lambda: f64) -> diffc::Result<Planes> {
        panic!(
            "must be refused before any prediction ({}x{})",
            z.height, z.width
        )
    }
    fn working_bytes(&self, height: usize, width: usize) -> u64 {
        (height * width) as u64 * 1000
    }
}

/// The allocation limit counts the model's working memory, not only the codec's buffers.
#[test]
fn model_working_memory_is_checked_from_the_header() {
    let h = Header {
        width: 4096,
        height: 4096,
        ..small_header()
    };
    let r = Decoder::with_model(Arc::new(Hungry)).decode(&h.to_bytes(), &denoise());
    assert!(
        matches!(
            r,
            Err(Error::Limits {
                value: 16_777_216_000..,
                ..
            })
        ),
        "{r:?}"
    );
    // The shipped network declares its working memory. It evaluates large images in tiles, so
    // its own share is its output plus one tile window, far below the pixels' full activations;
    // the decoder still counts it: with the limit set to the network's share alone, a
    // 1 x 2^26 image (whose codec planes need more) is refused before anything is allocated.
    let tiny = diffc::prior::load_model(diffc::prior::DEFAULT_MODEL).unwrap();
    let wb = tiny.working_bytes(1 << 26, 1);
    assert!(
        wb >= 12 << 26,
        "the output image alone is 12 bytes per pixel: {wb}"
    );
    // Per pixel: the output, the multiscale planes, the mirror averaging's sum and mirrored
    // latent, and a tile's activations amortised, not the 512 bytes per pixel of a
    // whole-image pass.
    assert!(wb < 128 << 26, "tiled: not whole-image activations: {wb}");
    let h = Header {
        width: 1,
        height: 1 << 26,
        model_id: tiny.model_id(),
        ..small_header()
    };
    let limits = Limits {
        max_alloc_bytes: wb,
        ..Limits::default()
    };
    let r = Decoder::with_model(tiny)
        .limits(limits)
        .decode(&h.to_bytes(), &denoise());
    assert!(matches!(r, Err(Error::Limits { .. })), "{r:?}");
}

/// Huge candidate pools are refused by the encoder's allocation limit instead of allocating.
#[test]
fn encoder_scoring_memory_is_limited() {
    let img = fixture("dragonfly_96x64.png");
    let opts = EncoderOptions {
        target: RateTarget::Steps(2),
        log2_k: 20,
        chunk_bits: 1e9,
        ..Default::default()
    };
    let limits = Limits {
        max_alloc_bytes: 1 << 30,
        ..Limits::default()
    };
    let r = Encoder::new(gauss(), opts)
        .unwrap()
        .encode(&img, &limits, |_| {});
    assert!(matches!(r, Err(Error::Limits { .. })), "{r:?}");
}

/// `inspect` applies the same packet checks as the decoder.
#[test]
fn inspect_reports_packets_the_decoder_rejects() {
    let h = small_header();
    for bad in [
        Packet {
            final_lambda_q: None,
            n_chunks: 0,
            log2_k: 10,
            kl_bits: 0,
            words: vec![],
        },
        Packet {
            final_lambda_q: Some(100_000),
            n_chunks: 1,
            log2_k: 10,
            kl_bits: 0,
            words: vec![0],
        },
        Packet {
            final_lambda_q: None,
            n_chunks: 1,
            log2_k: 0,
            kl_bits: 0,
            words: vec![0],
        },
    ] {
        let mut s = BytesMut::from(&h.to_bytes()[..]);
        bad.write(&mut s);
        let ins = diffc::inspect(&s, &Limits::default()).unwrap();
        assert!(
            matches!(ins.stop, Stop::Corrupt { step: 0, .. }),
            "{bad:?}: {:?}",
            ins.stop
        );
        assert!(ins.packets.is_empty());
        let (_, report) = Decoder::new().decode(&s, &denoise()).unwrap();
        assert!(matches!(report.stop, Stop::Corrupt { step: 0, .. }));
    }
}

/// A grid finer than the stream's lambda fixed point still ends with a final packet, so the
/// decoder reports a complete stream rather than a truncated one.
#[test]
fn fine_grids_still_end_with_a_final_packet() {
    let img = fixture("dragonfly_gray_45x31.png");
    for target in [RateTarget::Bpp(0.3), RateTarget::Steps(40)] {
        let opts = EncoderOptions {
            target,
            lambda_start: 0.0,
            lambda_stop: 1.0,
            grid_steps: 1000,
            log2_k: 8,
            ..Default::default()
        };
        let enc = Encoder::new(gauss(), opts)
            .unwrap()
            .encode(&img, &Limits::default(), |_| {})
            .unwrap();
        let (_, report) = Decoder::new().decode(&enc.bytes, &denoise()).unwrap();
        assert_eq!(report.stop, Stop::Complete, "{target:?}");
        assert_eq!(report.steps_decoded, enc.steps.len());
    }
}

/// Absurd reconstruction settings are refused instead of running for days.
#[test]
fn flow_steps_are_bounded() {
    let img = fixture("dragonfly_gray_45x31.png");
    let enc = Encoder::new(gauss(), EncoderOptions::default())
        .unwrap()
        .encode(&img, &Limits::default(), |_| {})
        .unwrap();
    let opts = ReconstructOptions {
        method: Method::Flow,
        flow_steps: 1_000_000_000,
        ..Default::default()
    };
    let r = Decoder::new().decode(&enc.bytes, &opts);
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

/// An `Image` built field by field with a wrong buffer is an error, not a panic or a silent
/// zero-filled encode / empty PNG.
#[test]
fn inconsistent_image_buffers_are_errors() {
    let img = Image {
        width: 10,
        height: 10,
        channels: 3,
        data: vec![0; 400],
    };
    let r = Encoder::new(gauss(), EncoderOptions::default())
        .unwrap()
        .encode(&img, &Limits::default(), |_| {});
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    assert!(matches!(img.to_png(), Err(Error::InvalidArgument(_))));
}
