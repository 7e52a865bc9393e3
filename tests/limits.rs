//! Bounded work: the decoder's compute budget, the packet-count limit, and input handling that
//! stays linear in the input whatever the number of packets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diffc::prior::gauss::GaussDenoiser;
use diffc::prior::{Denoiser, Planes};
use diffc::schedule::Grid;
use diffc::{
    Decoder, Encoder, EncoderOptions, Error, Header, Image, Limits, Method, ModelChoice,
    RateTarget, ReconstructOptions, Stop, StreamingDecoder,
};

/// The Gaussian prior, counting its evaluations.
#[derive(Default)]
struct Counting {
    inner: GaussDenoiser,
    calls: AtomicUsize,
}

impl Denoiser for Counting {
    fn name(&self) -> &str {
        "counting-gauss"
    }
    fn model_id(&self) -> u64 {
        self.inner.model_id()
    }
    fn predict_x(&self, z: &Planes, lambda: f64) -> diffc::Result<Planes> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.predict_x(z, lambda)
    }
}

fn gauss() -> Arc<dyn Denoiser> {
    Arc::new(GaussDenoiser::default())
}

fn card(w: u32, h: u32) -> Image {
    let data = (0..w * h * 3).map(|i| ((i * 29) % 253) as u8).collect();
    Image::new(w, h, 3, data).unwrap()
}

fn encode(img: &Image, opts: EncoderOptions) -> Vec<u8> {
    Encoder::new(gauss(), opts)
        .unwrap()
        .encode(img, &Limits::default(), |_| {})
        .unwrap()
        .bytes
}

#[test]
fn defaults_bound_packets_and_network_passes() {
    let l = Limits::default();
    assert_eq!(l.max_packets, 1024);
    // 64 full passes of the largest image the pixel limit admits.
    assert_eq!(l.max_network_pixel_passes, 64 * l.max_pixels);
    // A header whose grid has more steps than max_packets is refused when it arrives.
    let h = Header {
        width: 8,
        height: 8,
        channels: 3,
        model_id: diffc::prior::gauss::gauss_model_id(),
        seed: 0,
        grid: Grid::new(-4.0, 12.0, 1025).unwrap(),
        max_width: 256,
    };
    let r = Decoder::new().decode(&h.to_bytes(), &ReconstructOptions::default());
    assert!(
        matches!(
            r,
            Err(Error::Limits {
                what: "steps",
                value: 1025,
                max: 1024
            })
        ),
        "{r:?}"
    );
    // The encoder refuses such a grid too, so it never writes what the decoder refuses.
    let opts = EncoderOptions {
        grid_steps: 1025,
        ..Default::default()
    };
    let r = Encoder::new(gauss(), opts)
        .unwrap()
        .encode(&card(8, 8), &Limits::default(), |_| {});
    assert!(
        matches!(r, Err(Error::Limits { what: "steps", .. })),
        "{r:?}"
    );
}

/// A stream asking for more network passes than the budget stops with a typed `Limits` error
/// at the packet that would exceed it, before the prior runs on that packet.
#[test]
fn compute_budget_stops_before_running_the_prior() {
    let img = card(8, 8);
    let bytes = encode(
        &img,
        EncoderOptions {
            target: RateTarget::All,
            log2_k: 6,
            ..Default::default()
        },
    );
    let pixels = 64u64;
    let limits = Limits {
        max_network_pixel_passes: 10 * pixels,
        ..Limits::default()
    };
    let model = Arc::new(Counting::default());
    let mut sd = StreamingDecoder::new(ModelChoice::Fixed(model.clone()), limits);
    let r = sd.push(&bytes);
    assert!(
        matches!(
            r,
            Err(Error::Limits {
                what: "network pixel-passes (packets x width*height)",
                value: 704,
                max: 640
            })
        ),
        "{r:?}"
    );
    // Ten packets were applied; the prior ran for packets 1..=9 (packet 0 is coded against
    // x_hat = 0) and never for the eleventh.
    assert_eq!(sd.steps_decoded(), 10);
    assert_eq!(model.calls.load(Ordering::SeqCst), 9);
    let report = sd.report();
    assert_eq!(report.steps_decoded, 10);
    assert_eq!(report.bytes_used, report.steps[9].cumulative_bytes);
    assert!(
        matches!(
            report.stop,
            Stop::Limit {
                step: 10,
                value: 704,
                max: 640,
                ..
            }
        ),
        "{:?}",
        report.stop
    );
    // Further input is refused, and the image of the ten packets still renders.
    assert!(matches!(sd.push(&[0]), Err(Error::Poisoned(_))));
    sd.render(&ReconstructOptions {
        method: Method::Denoise,
        ..Default::default()
    })
    .unwrap();

    // Exactly at the budget the whole stream decodes.
    let n = 33u64;
    let limits = Limits {
        max_network_pixel_passes: n * pixels,
        ..Limits::default()
    };
    let (_, report) = Decoder::with_model(gauss())
        .limits(limits)
        .decode(&bytes, &ReconstructOptions::default())
        .unwrap();
    assert_eq!(report.stop, Stop::Complete);
    assert_eq!(report.steps_decoded, n as usize);

    // The encoder checks the same budget before any work.
    let counting = Arc::new(Counting::default());
    let r = Encoder::new(
        counting.clone(),
        EncoderOptions {
            target: RateTarget::All,
            log2_k: 6,
            ..Default::default()
        },
    )
    .unwrap()
    .encode(
        &img,
        &Limits {
            max_network_pixel_passes: 32 * pixels,
            ..Limits::default()
        },
        |_| {},
    );
    assert!(matches!(r, Err(Error::Limits { value: 2112, .. })), "{r:?}");
    assert_eq!(counting.calls.load(Ordering::SeqCst), 0);
}

/// Megabytes of trailing garbage after many packets cost time linear in the input, not
/// packets x input (the decoder used to shift its whole buffer after every packet).
#[test]
fn trailing_garbage_costs_linear_time() {
    // 1000 tiny packets (a 1x1 image on a fine grid).
    let img = Image::new(1, 1, 1, vec![77]).unwrap();
    let bytes = encode(
        &img,
        EncoderOptions {
            target: RateTarget::All,
            grid_steps: 1000,
            lambda_start: -4.0,
            lambda_stop: 12.0,
            log2_k: 2,
            ..Default::default()
        },
    );
    let garbage_len = 24 << 20;
    let mut with_garbage = bytes.clone();
    with_garbage.extend((0..garbage_len).map(|i| (i * 131 % 251) as u8));

    let decode = |b: &[u8]| {
        let t0 = Instant::now();
        let mut sd = StreamingDecoder::new(ModelChoice::Fixed(gauss()), Limits::default());
        sd.push(b).unwrap();
        (t0.elapsed(), sd.report())
    };
    let (t_clean, clean) = decode(&bytes);
    assert_eq!(clean.stop, Stop::Complete);
    assert_eq!(clean.steps_decoded, 1000);
    let (t_garbage, report) = decode(&with_garbage);
    assert_eq!(
        report.stop,
        Stop::TrailingBytes {
            count: garbage_len as usize
        }
    );
    let timeless = |r: &diffc::DecodeReport| {
        r.steps
            .iter()
            .map(|s| (s.step, s.lambda, s.bytes, s.cumulative_bytes))
            .collect::<Vec<_>>()
    };
    assert_eq!(timeless(&report), timeless(&clean));
    // Shifting 24 MB after each of 1000 packets is 24 GB of memmove (seconds); once is ~ms.
    assert!(
        t_garbage < t_clean * 2 + Duration::from_millis(400),
        "{t_garbage:?} with {garbage_len} trailing bytes vs {t_clean:?} without"
    );

    // The same in pushes of 64 KiB (the decoder compacts its buffer as it goes) and of odd
    // sizes: same packets, same trailing count.
    for chunk in [65536usize, 7919] {
        let mut sd = StreamingDecoder::new(ModelChoice::Fixed(gauss()), Limits::default());
        let t0 = Instant::now();
        for c in with_garbage.chunks(chunk) {
            sd.push(c).unwrap();
        }
        let r = sd.report();
        assert_eq!(r.steps_decoded, 1000);
        assert_eq!(r.stop, report.stop, "pushes of {chunk}");
        assert_eq!(r.bytes_used, report.bytes_used);
        assert!(
            t0.elapsed() < t_clean * 2 + Duration::from_secs(2),
            "{:?} in pushes of {chunk}",
            t0.elapsed()
        );
    }
}
