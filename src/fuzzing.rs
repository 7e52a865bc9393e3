//! Fuzz harnesses, kept in the library so that `fuzz/` targets are one-line wrappers and every
//! crash found becomes a regression file replayed by `tests/fuzz_regressions.rs`.
//!
//! The harnesses panic only when the library misbehaves (a panic inside the library, or an
//! invariant of the results broken); any `Err` from the library is an acceptable outcome.

use std::sync::Arc;

use bytes::BytesMut;

use crate::bitstream::{crc32, put_varint, Header, Limits};
use crate::codec::{Decoder, Encoder, EncoderOptions, ModelChoice, RateTarget, StreamingDecoder};
use crate::image_io::Image;
use crate::prior::gauss::GaussDenoiser;
use crate::rcc::Pick;
use crate::reconstruct::{Method, ReconstructOptions};
use crate::schedule::Grid;

fn small_limits() -> Limits {
    Limits {
        max_pixels: 64 * 64,
        max_packets: 256,
        ..Limits::default()
    }
}

fn opts(method_byte: u8) -> ReconstructOptions {
    ReconstructOptions {
        method: match method_byte % 3 {
            0 => Method::Denoise,
            1 => Method::Flow,
            _ => Method::Ancestral,
        },
        flow_steps: 2,
        ..Default::default()
    }
}

/// Build a stream from fuzzer bytes: either the raw bytes, or a valid header (correct CRC,
/// gauss model id) followed by packets framed with correct lengths and CRCs around
/// fuzzer-chosen payloads, so the fuzzer reaches the index decoder and the step decoder.
pub fn stream_from_fuzz(data: &[u8]) -> Vec<u8> {
    if data.len() < 12 || data[0] & 3 == 0 {
        return data.to_vec();
    }
    let header = Header {
        width: 1 + (data[1] % 24) as u32,
        height: 1 + (data[2] % 24) as u32,
        channels: if data[3] & 1 == 0 { 1 } else { 3 },
        model_id: crate::prior::gauss::gauss_model_id(),
        seed: u64::from_le_bytes([data[4], data[5], data[6], data[7], 0, 0, 0, 0]),
        grid: Grid {
            start_q: -(data[8] as i32) * 16,
            stop_q: (data[9] as i32) * 16 + 16,
            steps: 1 + (data[10] % 40) as u16,
        },
        max_width: 1 + (data[11] as u16) * 3,
    };
    let mut out = BytesMut::new();
    out.extend_from_slice(&header.to_bytes());
    let mut rest = &data[12..];
    while !rest.is_empty() {
        let n = (rest[0] as usize).min(rest.len() - 1);
        let payload = &rest[1..1 + n];
        rest = &rest[1 + n..];
        let start = out.len();
        put_varint(&mut out, payload.len() as u64);
        out.extend_from_slice(payload);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    out.to_vec()
}

/// Streaming decode of arbitrary bytes in fuzzer-chosen splits; checks split invariance.
pub fn stream_decode(data: &[u8]) {
    let stream = stream_from_fuzz(data);
    let model = Arc::new(GaussDenoiser::default());
    let method = opts(data.first().copied().unwrap_or(0) >> 2);
    let whole = Decoder::with_model(model.clone())
        .limits(small_limits())
        .decode(&stream, &method);
    let mut sd = StreamingDecoder::new(ModelChoice::Fixed(model), small_limits());
    let split = 1 + data.get(1).copied().unwrap_or(0) as usize % 17;
    let mut failed = false;
    for piece in stream.chunks(split) {
        if sd.push(piece).is_err() {
            failed = true;
            break;
        }
    }
    match (&whole, failed) {
        (Ok((img, report)), _) => {
            assert_eq!(
                report.steps_decoded,
                sd.steps_decoded(),
                "split changed the result"
            );
            if let Ok(img2) = sd.render(&method) {
                assert_eq!(img, &img2, "split changed the image");
            }
        }
        (Err(_), _) => assert!(sd.header().is_none() || failed || sd.steps_decoded() == 0),
    }
}

/// Encode a small fuzzer-chosen image with the gauss prior and decode every packet prefix.
pub fn round_trip(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let w = 1 + (data[0] % 12) as u32;
    let h = 1 + (data[1] % 12) as u32;
    let c = if data[2] & 1 == 0 { 1u8 } else { 3 };
    let n = (w * h * c as u32) as usize;
    let pixels: Vec<u8> = (0..n).map(|i| data[(6 + i) % data.len()]).collect();
    let Ok(img) = Image::new(w, h, c, pixels) else {
        panic!("valid image refused");
    };
    let eopts = EncoderOptions {
        target: if data[3] & 1 == 0 {
            RateTarget::Steps(1 + (data[3] as usize >> 1) % 20)
        } else {
            RateTarget::Bpp(0.05 + (data[3] >> 1) as f64 * 0.1)
        },
        seed: data[4] as u64,
        log2_k: 1 + data[5] % 8,
        chunk_bits: 0.5 + (data[5] >> 3) as f64,
        // Both of the encoder's rules (the seed's low bit picks; decoders read either).
        pick: if data[4] & 1 == 0 {
            Pick::Aligned
        } else {
            Pick::Sample
        },
        ..Default::default()
    };
    let model = Arc::new(GaussDenoiser::default());
    let enc = Encoder::new(model.clone(), eopts)
        .and_then(|e| e.encode(&img, &Limits::default(), |_| {}))
        .unwrap_or_else(|e| panic!("encoding a valid image failed: {e}"));
    let dec = Decoder::with_model(model);
    let method = opts(data[2] >> 1);
    let mut prev = crate::bitstream::HEADER_LEN;
    for s in &enc.steps {
        let (out, report) = dec
            .decode(&enc.bytes[..s.cumulative_bytes], &method)
            .unwrap_or_else(|e| panic!("valid prefix failed: {e}"));
        assert_eq!(report.steps_decoded, s.step + 1);
        assert_eq!((out.width, out.height, out.channels), (w, h, c));
        // A cut inside the packet decodes to the previous packet.
        let mid = (prev + s.cumulative_bytes) / 2;
        let (_, r2) = dec
            .decode(&enc.bytes[..mid], &method)
            .unwrap_or_else(|e| panic!("cut prefix failed: {e}"));
        assert_eq!(
            r2.steps_decoded,
            s.step + usize::from(mid == s.cumulative_bytes)
        );
        prev = s.cumulative_bytes;
    }
}
