//! End-to-end behaviour of the codec through the public API, with the closed-form prior so the
//! suite runs in seconds. The shipped network is exercised in `tests/model.rs`.

use std::sync::Arc;

use diffc::prior::gauss::GaussDenoiser;
use diffc::prior::{Denoiser, Planes};
use diffc::rcc::Pick;
use diffc::{
    psnr, Decoder, Encoder, EncoderOptions, Error, Image, Limits, Method, ModelChoice, RateTarget,
    ReconstructOptions, Stop, StreamingDecoder,
};

fn fixture(name: &str) -> Image {
    Image::open(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR")).as_ref()).unwrap()
}

fn gauss() -> Arc<dyn Denoiser> {
    Arc::new(GaussDenoiser::default())
}

fn encode(img: &Image, target: RateTarget, seed: u64) -> diffc::Encoded {
    let opts = EncoderOptions {
        target,
        seed,
        log2_k: 10,
        ..Default::default()
    };
    Encoder::new(gauss(), opts)
        .unwrap()
        .encode(img, &Limits::default(), |_| {})
        .unwrap()
}

fn denoise() -> ReconstructOptions {
    ReconstructOptions {
        method: Method::Denoise,
        ..Default::default()
    }
}

#[test]
fn round_trip_rgb_gray_and_odd_sizes() {
    let tiny = Image::new(1, 1, 3, vec![200, 10, 90]).unwrap();
    let odd = Image::new(5, 3, 1, (0..15).map(|v| v * 17).collect()).unwrap();
    for img in [
        fixture("dragonfly_96x64.png"),
        fixture("dragonfly_gray_45x31.png"),
        tiny,
        odd,
    ] {
        let enc = encode(&img, RateTarget::Steps(30), 1);
        for method in [Method::Denoise, Method::Flow, Method::Ancestral] {
            let opts = ReconstructOptions {
                method,
                ..Default::default()
            };
            let (out, report) = Decoder::new().decode(&enc.bytes, &opts).unwrap();
            assert_eq!(
                (out.width, out.height, out.channels),
                (img.width, img.height, img.channels)
            );
            assert_eq!(report.steps_decoded, 30);
            // The encoder marks its last packet final: the stream reads as complete.
            assert_eq!(report.stop, Stop::Complete);
            let p = psnr(&img, &out).unwrap();
            assert!(
                p > 24.0,
                "{method} PSNR {p:.2} dB on {}x{}",
                img.width,
                img.height
            );
        }
    }
}

#[test]
fn full_grid_stream_is_complete_and_sharp() {
    let img = fixture("dragonfly_96x64.png");
    let enc = encode(&img, RateTarget::All, 3);
    let (out, report) = Decoder::new().decode(&enc.bytes, &denoise()).unwrap();
    assert_eq!(report.stop, Stop::Complete);
    assert!(psnr(&img, &out).unwrap() > 40.0);
}

#[test]
fn every_packet_prefix_decodes_and_denoise_psnr_never_drops() {
    let img = fixture("dragonfly_96x64.png");
    let enc = encode(&img, RateTarget::Steps(34), 5);
    let boundaries: Vec<usize> = std::iter::once(diffc::bitstream::HEADER_LEN)
        .chain(enc.steps.iter().map(|s| s.cumulative_bytes))
        .collect();
    let mut last = f64::NEG_INFINITY;
    for (n, &b) in boundaries.iter().enumerate() {
        let (out, report) = Decoder::new().decode(&enc.bytes[..b], &denoise()).unwrap();
        assert_eq!(report.steps_decoded, n);
        assert_eq!(report.bytes_used, b);
        let p = psnr(&img, &out).unwrap();
        // In expectation every packet lowers the MSE; one realization of an almost-free early
        // step (KL of a bit or two) may wiggle a flat estimate by a few thousandths of a dB.
        assert!(
            p >= last - 0.02,
            "PSNR dropped from {last:.3} to {p:.3} at packet {n}"
        );
        last = p;
    }
    assert!(last > 30.0);
}

#[test]
fn random_byte_prefixes_decode_to_the_last_complete_packet() {
    let img = fixture("dragonfly_gray_45x31.png");
    let enc = encode(&img, RateTarget::Steps(25), 8);
    let g = diffc::prng::Philox::new(2024);
    for t in 0..40u64 {
        let cut = diffc::prng::uniform_below(
            g.block(diffc::prng::Domain::Arrival, 0, t)[0] as u64 | 1 << 40,
            enc.bytes.len() as u64 + 1,
        ) as usize;
        let r = Decoder::new().decode(&enc.bytes[..cut], &denoise());
        if cut < diffc::bitstream::HEADER_LEN {
            assert!(
                matches!(r, Err(Error::Truncated { .. })),
                "cut {cut}: {r:?}"
            );
            continue;
        }
        let (_, report) = r.unwrap();
        let complete = enc
            .steps
            .iter()
            .filter(|s| s.cumulative_bytes <= cut)
            .count();
        assert_eq!(report.steps_decoded, complete, "cut at {cut}");
    }
}

#[test]
fn same_input_and_seed_give_identical_bytes() {
    let img = fixture("dragonfly_96x64.png");
    let a = encode(&img, RateTarget::Bpp(1.0), 11);
    let b = encode(&img, RateTarget::Bpp(1.0), 11);
    let c = encode(&img, RateTarget::Bpp(1.0), 12);
    assert_eq!(a.bytes, b.bytes);
    assert_ne!(a.bytes, c.bytes);
}

#[test]
fn bpp_target_is_met_within_15_percent_on_768x512() {
    // A 768x512 photo: the shared dev set when present, else the fixture mirrored to size.
    let dev = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/dev/dev01.png");
    let img = match Image::open(&dev) {
        Ok(i) if i.width * i.height == 768 * 512 => i,
        _ => {
            let f = fixture("dragonfly_256x192.png");
            let (w, h) = (768u32, 512u32);
            let mut data = Vec::with_capacity((w * h * 3) as usize);
            for y in 0..h {
                let (ty, ry) = (y / f.height, y % f.height);
                let sy = if ty % 2 == 0 { ry } else { f.height - 1 - ry };
                for x in 0..w {
                    let (tx, rx) = (x / f.width, x % f.width);
                    let sx = if tx % 2 == 0 { rx } else { f.width - 1 - rx };
                    let i = ((sy * f.width + sx) * 3) as usize;
                    data.extend_from_slice(&f.data[i..i + 3]);
                }
            }
            Image::new(w, h, 3, data).unwrap()
        }
    };
    for target in [0.25, 1.0] {
        let enc = encode(&img, RateTarget::Bpp(target), 0);
        let bpp = enc.bpp(img.width, img.height);
        assert!(
            (bpp / target - 1.0).abs() <= 0.15,
            "target {target} bpp, got {bpp:.4}"
        );
    }
}

fn render_bytes(sd: &StreamingDecoder) -> Vec<u8> {
    sd.render(&denoise()).unwrap().data
}

#[test]
fn streaming_decoder_is_split_invariant() {
    let img = fixture("dragonfly_gray_45x31.png");
    let enc = encode(&img, RateTarget::Steps(20), 4);
    let mut whole = StreamingDecoder::new(ModelChoice::ByStreamId, Limits::default());
    whole.push(&enc.bytes).unwrap();
    let mut bytewise = StreamingDecoder::new(ModelChoice::ByStreamId, Limits::default());
    let mut renders = 0;
    for (i, b) in enc.bytes.iter().enumerate() {
        let before = bytewise.steps_decoded();
        bytewise.push(std::slice::from_ref(b)).unwrap();
        if bytewise.steps_decoded() > before && i % 3 == 0 {
            let _ = render_bytes(&bytewise); // rendering mid-stream must not disturb decoding
            renders += 1;
        }
    }
    assert!(renders > 0);
    let mut split = StreamingDecoder::new(ModelChoice::ByStreamId, Limits::default());
    let mut pos = 0;
    let mut step = 1;
    while pos < enc.bytes.len() {
        let end = (pos + step).min(enc.bytes.len());
        split.push(&enc.bytes[pos..end]).unwrap();
        pos = end;
        step = step * 7 % 23 + 1;
    }
    assert_eq!(whole.steps_decoded(), 20);
    assert_eq!(render_bytes(&whole), render_bytes(&bytewise));
    assert_eq!(render_bytes(&whole), render_bytes(&split));
    let strip = |mut r: diffc::DecodeReport| {
        r.steps.iter_mut().for_each(|s| s.seconds = 0.0);
        r
    };
    assert_eq!(strip(whole.report()), strip(split.report()));
    assert_eq!(strip(whole.report()), strip(bytewise.report()));
}

#[test]
fn corrupt_packet_stops_at_last_good_packet_and_says_so() {
    let img = fixture("dragonfly_96x64.png");
    let enc = encode(&img, RateTarget::Steps(12), 6);
    let good_end = enc.steps[6].cumulative_bytes;
    let mut bad = enc.bytes.clone();
    bad[good_end + 3] ^= 0x10; // inside packet 7
    let (img_bad, report) = Decoder::new().decode(&bad, &denoise()).unwrap();
    assert_eq!(report.steps_decoded, 7);
    assert!(
        matches!(report.stop, Stop::Corrupt { step: 7, .. }),
        "{:?}",
        report.stop
    );
    let (img_cut, _) = Decoder::new()
        .decode(&enc.bytes[..good_end], &denoise())
        .unwrap();
    assert_eq!(img_bad, img_cut);
    // The streaming decoder stays failed.
    let mut sd = StreamingDecoder::new(ModelChoice::ByStreamId, Limits::default());
    assert!(sd.push(&bad).is_err());
    assert!(matches!(sd.push(&[0]), Err(Error::Poisoned(_))));
    assert_eq!(render_bytes(&sd), img_cut.data);
}

#[test]
fn single_bit_flips_never_panic_and_never_decode_silently_wrong() {
    let img = fixture("dragonfly_gray_45x31.png");
    let enc = encode(&img, RateTarget::Steps(6), 9);
    for pos in 0..enc.bytes.len() {
        for bit in [0u8, 3, 7] {
            let mut b = enc.bytes.clone();
            b[pos] ^= 1 << bit;
            match Decoder::new().decode(&b, &denoise()) {
                // Header damage: refused with a typed error.
                Err(e) => assert!(pos < diffc::bitstream::HEADER_LEN, "flip at {pos}: {e}"),
                // Packet damage: every bit is under a CRC, so decoding must stop and say so,
                // with exactly the image of the packets before the damaged one. (A flip that
                // lengthens the last packet's length field looks like a cut stream.)
                Ok((out, report)) => {
                    let step = match report.stop {
                        Stop::Corrupt { step, .. } => step,
                        Stop::Truncated { .. } if report.steps_decoded < 6 => report.steps_decoded,
                        s => panic!("flip at byte {pos} bit {bit} decoded silently: {s:?}"),
                    };
                    let good = if step == 0 {
                        diffc::bitstream::HEADER_LEN
                    } else {
                        enc.steps[step - 1].cumulative_bytes
                    };
                    let (want, _) = Decoder::new()
                        .decode(&enc.bytes[..good], &denoise())
                        .unwrap();
                    assert_eq!(out, want);
                }
            }
        }
    }
}

#[test]
fn garbage_and_hostile_headers_are_typed_errors() {
    let d = Decoder::new();
    let o = denoise();
    assert!(matches!(d.decode(&[], &o), Err(Error::Truncated { .. })));
    assert!(matches!(
        d.decode(b"PNG\x89 not a diffc file at all, not at all......", &o),
        Err(Error::Format { .. })
    ));
    // A well-formed header (valid CRC) that claims 65535 x 65535 pixels.
    let h = diffc::Header {
        width: 65535,
        height: 65535,
        channels: 3,
        model_id: diffc::prior::gauss::gauss_model_id(),
        seed: 0,
        grid: diffc::schedule::Grid::new(-6.0, 12.0, 37).unwrap(),
        max_width: 256,
    };
    assert!(matches!(
        d.decode(&h.to_bytes(), &o),
        Err(Error::Limits { .. })
    ));
    // Unknown model id.
    let h2 = diffc::Header {
        width: 4,
        height: 4,
        model_id: 42,
        ..h
    };
    assert!(matches!(
        d.decode(&h2.to_bytes(), &o),
        Err(Error::UnknownModel(_))
    ));
    // Random bytes after a valid header: decode what is valid, never panic.
    let h3 = diffc::Header {
        width: 8,
        height: 8,
        ..h
    };
    let g = diffc::prng::Philox::new(3);
    for t in 0..300u64 {
        let mut s = h3.to_bytes().to_vec();
        for i in 0..(t % 64) {
            s.extend_from_slice(&g.block(diffc::prng::Domain::Sign, t as u32, i)[0].to_le_bytes());
        }
        let r = d.decode(&s, &o);
        assert!(r.is_ok(), "{r:?}");
    }
}

struct OtherModel;
impl Denoiser for OtherModel {
    fn name(&self) -> &str {
        "other"
    }
    fn model_id(&self) -> u64 {
        7
    }
    fn predict_x(&self, z: &Planes, _lambda: f64) -> diffc::Result<Planes> {
        Ok(z.clone())
    }
}

#[test]
fn wrong_model_is_a_clear_error() {
    let img = fixture("dragonfly_gray_45x31.png");
    let enc = encode(&img, RateTarget::Steps(3), 0);
    let r = Decoder::with_model(Arc::new(OtherModel)).decode(&enc.bytes, &denoise());
    assert!(
        matches!(r, Err(Error::WrongModel { decoder: 7, .. })),
        "{r:?}"
    );
}

#[test]
fn limits_refuse_large_images_before_encoding() {
    let img = fixture("dragonfly_96x64.png");
    let limits = Limits {
        max_pixels: 1000,
        ..Limits::default()
    };
    let r = Encoder::new(gauss(), EncoderOptions::default())
        .unwrap()
        .encode(&img, &limits, |_| {});
    assert!(matches!(r, Err(Error::Limits { .. })));
    let enc = encode(&img, RateTarget::Steps(2), 0);
    let r = Decoder::new().limits(limits).decode(&enc.bytes, &denoise());
    assert!(
        matches!(
            r,
            Err(Error::Limits {
                value: 6144,
                max: 1000,
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn allocation_limit_is_checked_from_the_header() {
    let img = fixture("dragonfly_96x64.png");
    let enc = encode(&img, RateTarget::Steps(2), 0);
    let limits = Limits {
        max_alloc_bytes: 100_000,
        ..Limits::default()
    };
    let r = Decoder::new().limits(limits).decode(&enc.bytes, &denoise());
    assert!(
        matches!(
            r,
            Err(Error::Limits {
                what: "allocation bytes",
                max: 100_000,
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn inspect_reports_ideal_and_spent_bits() {
    let img = fixture("dragonfly_256x192.png");
    // Chunks well inside the candidate budget (6 bits of KL, K = 2^10): PFR spends a little
    // more than the KL, the index coder's overhead.
    let opts = EncoderOptions {
        target: RateTarget::Bpp(1.0),
        log2_k: 10,
        chunk_bits: 6.0,
        pick: Pick::Sample,
        ..Default::default()
    };
    let enc = Encoder::new(gauss(), opts)
        .unwrap()
        .encode(&img, &Limits::default(), |_| {})
        .unwrap();
    let ins = diffc::inspect(&enc.bytes, &Limits::default()).unwrap();
    assert_eq!(ins.packets.len(), enc.steps.len());
    assert_eq!(ins.stop, Stop::Complete);
    for (p, s) in ins.packets.iter().zip(&enc.steps) {
        assert_eq!(p.bytes, s.bytes);
        assert_eq!(p.kl_bits, s.kl_bits.round());
        assert!((p.lambda - s.lambda).abs() < 1e-12);
    }
    let kl: f64 = ins.packets.iter().map(|p| p.kl_bits).sum();
    let spent: f64 = ins.packets.iter().map(|p| p.bytes as f64 * 8.0).sum();
    assert!(spent > kl && spent < 1.6 * kl, "spent {spent} ideal {kl}");
}
