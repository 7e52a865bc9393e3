//! `inspect` and the decoder read packets through the same reader: `inspect` lists exactly the
//! packets the decoder applies and stops where and why it stops, without running a model.

use std::sync::Arc;

use bytes::BytesMut;
use diffc::bitstream::Packet;
use diffc::prior::gauss::{gauss_model_id, GaussDenoiser};
use diffc::schedule::Grid;
use diffc::{
    inspect, DecodeReport, Decoder, Encoder, EncoderOptions, Header, Image, Inspection, Limits,
    Method, RateTarget, ReconstructOptions, Stop,
};

fn denoise() -> ReconstructOptions {
    ReconstructOptions {
        method: Method::Denoise,
        ..Default::default()
    }
}

fn stream() -> Vec<u8> {
    let data = (0..20 * 14 * 3).map(|i| ((i * 41) % 241) as u8).collect();
    let img = Image::new(20, 14, 3, data).unwrap();
    Encoder::new(
        Arc::new(GaussDenoiser::default()),
        EncoderOptions {
            target: RateTarget::Steps(8),
            log2_k: 6,
            ..Default::default()
        },
    )
    .unwrap()
    .encode(&img, &Limits::default(), |_| {})
    .unwrap()
    .bytes
}

/// Inspection and decode agree: same packets (up to timings), same stop.
fn assert_agree(ins: &Inspection, report: &DecodeReport, what: &str) {
    let table = |s: &[diffc::StepReport]| {
        s.iter()
            .map(|r| {
                (
                    r.step,
                    r.lambda,
                    r.bytes,
                    r.cumulative_bytes,
                    r.kl_bits,
                    r.index_bits,
                    r.n_chunks,
                    r.log2_k,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(table(&ins.packets), table(&report.steps), "{what}");
    assert_eq!(ins.stop, report.stop, "{what}");
}

/// Indices that decode to `n > K` pass every framing check; the decoder refuses them, and so
/// does `inspect` now that it decodes indices too.
#[test]
fn inspect_refuses_packets_whose_indices_do_not_decode() {
    let h = Header {
        width: 8,
        height: 8,
        channels: 3,
        model_id: gauss_model_id(),
        seed: 0,
        grid: Grid::new(-4.0, 12.0, 33).unwrap(),
        max_width: 256,
    };
    let mut s = BytesMut::from(&h.to_bytes()[..]);
    Packet {
        final_lambda_q: None,
        n_chunks: 1,
        log2_k: 4,
        kl_bits: 0,
        words: vec![0xDEAD_BEEF],
    }
    .write(&mut s);
    let ins = inspect(&s, &Limits::default()).unwrap();
    match &ins.stop {
        Stop::Corrupt {
            step: 0,
            at_byte: 48,
            detail,
        } => assert!(detail.contains("decoded index 20 >= K = 16"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert!(ins.packets.is_empty());
    let (_, report) = Decoder::new().decode(&s, &denoise()).unwrap();
    assert_agree(&ins, &report, "bad indices");
}

/// Every single-byte corruption and every cut of a stream: the same table and stop reason.
#[test]
fn inspect_matches_the_decoder_on_damaged_streams() {
    let good = stream();
    let mut cases: Vec<(String, Vec<u8>)> = vec![("intact".into(), good.clone())];
    for pos in (48..good.len()).step_by(3) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[pos] ^= flip;
            cases.push((format!("byte {pos} ^ {flip:#04x}"), b));
        }
    }
    for cut in (48..good.len()).step_by(5) {
        cases.push((format!("cut at {cut}"), good[..cut].to_vec()));
    }
    let mut padded = good.clone();
    padded.extend_from_slice(b"trailing");
    cases.push(("trailing".into(), padded));
    for (what, b) in &cases {
        let ins = inspect(b, &Limits::default()).unwrap();
        let (_, report) = Decoder::new().decode(b, &denoise()).unwrap();
        assert_agree(&ins, &report, what);
    }
}

/// The compute budget: `inspect` stops at the packet the decoder stops at.
#[test]
fn inspect_applies_the_compute_budget() {
    let good = stream();
    let limits = Limits {
        max_network_pixel_passes: 5 * 20 * 14,
        ..Limits::default()
    };
    let ins = inspect(&good, &limits).unwrap();
    assert_eq!(ins.packets.len(), 5);
    let (_, report) = Decoder::new()
        .limits(limits)
        .decode(&good, &denoise())
        .unwrap();
    assert_agree(&ins, &report, "budget");
}
