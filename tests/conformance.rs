//! Conformance: the format is pinned by the specification's own vectors, not only by the Rust
//! code agreeing with itself.
//!
//! - the header and packet bytes of `spec/format.md` (read from the spec text);
//! - the index-coding known answers of `spec/index-coding.md` (parsed from its table);
//! - the `spec/reference/example-*.difc` streams, whole and cut, decoded by every method against
//!   the SHA-256 table that `spec/reference/decode.py --self-check` asserts for the Python
//!   reference (parsed from that file, so both decoders are held to the same pins);
//! - frozen encoder streams: fixed images and options with the closed-form `gauss` prior must
//!   give exactly these bytes. A dependency upgrade (constriction, rayon) or a change of the
//!   encoder that moves a single bit fails here; if the change is intended, it is a new format
//!   version or a new encoder choice, and the pins below change in the same commit;
//! - the integer prior `tiny-int` (`spec/integer-network.md`): known answers of `x_hat` and
//!   weight-file validation vectors, the same that `spec/reference/intnet.py --self-check`
//!   asserts for the Python reference (read from that file). New weights for `tiny-int` change
//!   the pins here, in intnet.py and in the spec, in the same commit.

use diffc::bitstream::{Header, Packet, HEADER_LEN};
use diffc::rcc::index_coder::{decode_indices, encode_indices};
use diffc::rcc::Pick;
use diffc::schedule::Grid;
use diffc::{
    inspect, Decoder, Encoder, EncoderOptions, Error, Image, Limits, Method, RateTarget,
    ReconstructOptions, Stop,
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read_text(rel: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn read_bytes(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{ROOT}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Bytes of a hex dump: every run of hex digits, whitespace and `|` separators ignored.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| b.is_ascii_hexdigit())
        .map(|b| (b as char).to_digit(16).unwrap() as u8)
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd hex dump {s:?}");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|v| format!("{v:02x}")).collect()
}

/// The text of the first fenced code block in `doc` that follows the line containing `after`.
fn code_block_after(doc: &str, after: &str) -> String {
    let start = doc
        .find(after)
        .unwrap_or_else(|| panic!("spec text {after:?} not found"));
    let rest = &doc[start..];
    let open = rest.find("```").expect("code block") + 3;
    let body = &rest[open..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let close = body.find("```").expect("end of code block");
    body[..close].to_string()
}

// ------------------------------------------------------------------------------ SHA-256

/// SHA-256 (FIPS 180-4), for comparing with the reference's `hashlib.sha256` pins.
fn sha256(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for (a, b) in h.iter_mut().zip(v) {
            *a = a.wrapping_add(b);
        }
    }
    h.iter().map(|v| format!("{v:08x}")).collect()
}

#[test]
fn sha256_known_answers() {
    assert_eq!(
        sha256(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // Two blocks.
    assert_eq!(
        sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}

// ------------------------------------------------------------------------------ format.md

fn example_header() -> Header {
    Header {
        width: 33,
        height: 7,
        channels: 3,
        model_id: 0x1234,
        seed: 99,
        grid: Grid::new(-6.0, 12.0, 37).unwrap(),
        max_width: 256,
    }
}

#[test]
fn header_bytes_of_the_spec_example() {
    let spec = read_text("spec/format.md");
    let want = hex(&code_block_after(
        &spec,
        "Header of `width=33, height=7, channels=3, model_id=0x1234, seed=99`",
    ));
    assert_eq!(want.len(), HEADER_LEN);
    let h = example_header();
    assert_eq!(
        hex_string(&h.to_bytes()),
        hex_string(&want),
        "Header::to_bytes differs from spec/format.md's example"
    );
    assert_eq!(Header::parse(&want, &Limits::default()).unwrap(), h);
    // The CRC named in the text is the last four bytes.
    assert!(spec.contains("CRC `0x9D8F3EA4`"));
    assert_eq!(&want[44..], &0x9D8F_3EA4u32.to_le_bytes());
}

#[test]
fn packet_bytes_of_the_spec_examples() {
    let spec = read_text("spec/format.md");
    let block = code_block_after(&spec, "Packet `n_chunks=300, log2_k=12, kl_bits=2400");
    // Two lines of bytes, then the legend line (no hex-only content: it starts with "L").
    let lines: Vec<&str> = block
        .lines()
        .filter(|l| !l.trim_start().starts_with('L'))
        .collect();
    assert_eq!(lines.len(), 2, "{block}");
    for (line, final_lambda_q) in lines.iter().zip([None, Some(-1000)]) {
        let want = hex(line);
        let p = Packet {
            final_lambda_q,
            n_chunks: 300,
            log2_k: 12,
            kl_bits: 2400,
            words: vec![1, 2, 0xDEAD_BEEF],
        };
        let mut out = bytes::BytesMut::new();
        p.write(&mut out);
        assert_eq!(hex_string(&out), hex_string(&want), "{final_lambda_q:?}");
        let (back, n) = Packet::read(&want, &Limits::default(), 1 << 20).unwrap();
        assert_eq!((back, n), (p, want.len()));
    }
}

#[test]
fn complete_example_stream_of_the_spec() {
    let spec = read_text("spec/format.md");
    let block = code_block_after(&spec, "`reference/example-rgb.difc` (89 bytes");
    // The dump: a label ("header", "step 0"), then hex groups and `|` separators, then an
    // annotation (which starts at the first other word).
    let mut dump = Vec::new();
    for line in block.lines() {
        let mut tokens = line.split_whitespace().peekable();
        if tokens.peek() == Some(&"header") {
            tokens.next();
        } else if tokens.peek() == Some(&"step") {
            tokens.next();
            tokens.next();
        }
        for t in tokens {
            if t == "|" {
                continue;
            }
            if !t.chars().all(|c| c.is_ascii_hexdigit()) {
                break;
            }
            dump.extend(hex(t));
        }
    }
    let file = read_bytes("spec/reference/example-rgb.difc");
    assert_eq!(file.len(), 89);
    assert_eq!(hex_string(&dump), hex_string(&file));

    let header = Header::parse(&file, &Limits::default()).unwrap();
    assert_eq!(
        (header.width, header.height, header.channels, header.seed),
        (8, 6, 3, 42)
    );
    assert_eq!(header.model_id, 0x9820_9D16_F94A_2017, "gauss prior");
    assert_eq!(header.grid, Grid::new(-4.0, 10.0, 8).unwrap());
    // Packets: n_chunks, kl_bits, final lambda, indices as the spec annotates them.
    let want: [(u64, u64, Option<i32>, Vec<u32>); 3] = [
        (1, 1, None, vec![0]),
        (1, 3, None, vec![2]),
        (4, 15, Some(-110), vec![25, 1, 1, 142]),
    ];
    let mut pos = HEADER_LEN;
    for (n_chunks, kl, fl, indices) in want {
        let (p, n) = Packet::read(&file[pos..], &Limits::default(), 1 << 20).unwrap();
        assert_eq!((p.n_chunks, p.log2_k, p.kl_bits), (n_chunks, 8, kl));
        assert_eq!(p.final_lambda_q, fl);
        assert_eq!(
            decode_indices(p.words.clone(), p.n_chunks as usize, p.log2_k).unwrap(),
            indices
        );
        pos += n;
    }
    assert_eq!(pos, file.len());
    let ins = inspect(&file, &Limits::default()).unwrap();
    assert_eq!(ins.stop, Stop::Complete);
    assert_eq!(ins.packets.len(), 3);
    assert_eq!(ins.packets[2].lambda, -0.4296875);
}

// ------------------------------------------------------------------------------ index-coding.md

#[test]
fn index_coding_known_answers_of_the_spec() {
    let spec = read_text("spec/index-coding.md");
    let table = &spec[spec
        .find("## Known answers")
        .expect("known answers section")..];
    let mut rows = 0;
    for line in table.lines() {
        // | 4 | `0 1 2 3 15 7 0 0 0 14` | `2a8da42b 23af6a8f` |
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() != 5 || !cells[1].chars().all(|c| c.is_ascii_digit()) || cells[1].is_empty()
        {
            continue;
        }
        let log2_k: u8 = cells[1].parse().unwrap();
        let indices: Vec<u32> = cells[2]
            .trim_matches('`')
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        let words: Vec<u32> = cells[3]
            .trim_matches('`')
            .split_whitespace()
            .map(|v| u32::from_str_radix(v, 16).unwrap())
            .collect();
        assert_eq!(
            encode_indices(&indices, log2_k).unwrap(),
            words,
            "encode, log2_k {log2_k}, {indices:?}"
        );
        assert_eq!(
            decode_indices(words.clone(), indices.len(), log2_k).unwrap(),
            indices,
            "decode, log2_k {log2_k}"
        );
        rows += 1;
    }
    assert_eq!(rows, 5, "known-answer rows found in spec/index-coding.md");
}

#[test]
fn index_coding_end_of_stream_and_errors_of_the_spec() {
    let spec = read_text("spec/index-coding.md");
    // Missing words read as 0: an empty body decodes to zeros.
    assert!(spec.contains("`log2_k = 4`, 3 chunks → `[0, 0, 0]`"));
    assert_eq!(decode_indices(vec![], 3, 4).unwrap(), vec![0, 0, 0]);
    // Extra words are ignored.
    let mut words = encode_indices(&[5, 9], 4).unwrap();
    words.extend([0xFFFF_FFFF, 7]);
    assert_eq!(decode_indices(words, 2, 4).unwrap(), vec![5, 9]);
    // The two decoder errors of the table.
    let err = decode_indices(vec![0xFFFF_FFFF, 0xFFFF_FFFF], 1, 4).unwrap_err();
    assert!(
        matches!(&err, Error::Format { field: "indices", detail } if detail.contains("InvalidData")),
        "{err}"
    );
    assert!(spec.contains("decoded index 20 >= K = 16"));
    let err = decode_indices(vec![0xDEAD_BEEF], 1, 4).unwrap_err();
    assert!(
        matches!(&err, Error::Format { field: "indices", detail } if detail == "decoded index 20 >= K = 16"),
        "{err}"
    );
}

// ------------------------------------------------------------------------------ reference examples

/// `((stream, cut, method), sha256)` of the table `EXPECTED` in `spec/reference/decode.py`.
fn reference_pins() -> Vec<((String, usize, String), String)> {
    let py = read_text("spec/reference/decode.py");
    let start = py
        .find("EXPECTED = {")
        .expect("EXPECTED table in decode.py");
    let end = start + py[start..].find("\n}").unwrap();
    let mut pins = Vec::new();
    for line in py[start..end].lines().skip(1) {
        // ('example-rgb.difc', 48, 'denoise'): '7053...',
        let parts: Vec<&str> = line
            .split(['(', ')', ',', ':', '\''])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(parts.len(), 4, "{line}");
        pins.push((
            (
                parts[0].to_string(),
                parts[1].parse().unwrap(),
                parts[2].to_string(),
            ),
            parts[3].to_string(),
        ));
    }
    pins
}

/// The flow_steps the pins were made with (`--self-check` passes the same value).
fn reference_pin_flow_steps() -> usize {
    let py = read_text("spec/reference/decode.py");
    let key = "SELF_CHECK_FLOW_STEPS = ";
    let at = py.find(key).expect("SELF_CHECK_FLOW_STEPS in decode.py") + key.len();
    py[at..].lines().next().unwrap().trim().parse().unwrap()
}

#[test]
fn example_streams_decode_to_the_pinned_images() {
    let pins = reference_pins();
    assert_eq!(pins.len(), 27, "3 streams x 3 cuts x 3 methods");
    let flow_steps = reference_pin_flow_steps();
    for ((name, cut, method), want) in pins {
        let file = read_bytes(&format!("spec/reference/{name}"));
        assert!(cut <= file.len());
        let opts = ReconstructOptions {
            method: method.parse::<Method>().unwrap(),
            flow_steps,
            lambda_end: 14.0,
        };
        let (img, report) = Decoder::new().decode(&file[..cut], &opts).unwrap();
        assert_eq!(
            sha256(&img.data),
            want,
            "{name} cut at {cut} bytes, {method}: the Rust decoder no longer gives the pinned image"
        );
        if cut == file.len() {
            assert_eq!(report.stop, Stop::Complete, "{name}");
        } else {
            assert!(report.bytes_used <= cut, "{name}: used bytes past the cut");
        }
    }
}

// ------------------------------------------------------------------------------ frozen encoder

fn gauss_encode(img: &Image, opts: EncoderOptions) -> Vec<u8> {
    let model = diffc::prior::load_model("gauss").unwrap();
    Encoder::new(model, opts)
        .unwrap()
        .encode(img, &Limits::default(), |_| {})
        .unwrap()
        .bytes
}

/// A 16x12 RGB test card (no file needed): gradients and a hard edge.
fn card() -> Image {
    let (w, h) = (16u32, 12u32);
    let mut data = Vec::new();
    for y in 0..h {
        for x in 0..w {
            data.push((x * 16) as u8);
            data.push((y * 21) as u8);
            data.push(if x >= 8 { 230 } else { 20 });
        }
    }
    Image::new(w, h, 3, data).unwrap()
}

/// Frozen streams: `(what, bytes length, sha256)`. They change only with a format change (new
/// version) or a deliberate change of an encoder choice; update them in that commit and say so.
const FROZEN: [(&str, usize, &str); 4] = [
    (
        "card_bpp",
        89,
        "95e182edbbfe97369346a6cafb2524cfa41671c789078c6251a83ac88f81832e",
    ),
    (
        "gray_fixture_lambda",
        360,
        "8b6905e3d8c7c2f756024c797095af59afeea4dcc779286c54de488c9139728a",
    ),
    (
        "rgb_fixture_steps",
        383,
        "837106b3cc418f125fdaec7103aefd2d1a309e55657818b12ab5c7106832ff16",
    ),
    (
        "rgb_fixture_default",
        753,
        "8edcbb8248e7cd9568e42025884ab22c19aed970ca0bf29765b77b0c84351324",
    ),
];

#[test]
fn frozen_encoder_streams() {
    let card_bpp = gauss_encode(
        &card(),
        EncoderOptions {
            target: RateTarget::Bpp(4.0),
            seed: 2024,
            log2_k: 8,
            chunk_bits: 16.0,
            pick: Pick::Sample,
            ..Default::default()
        },
    );
    let gray = Image::open(format!("{ROOT}/fixtures/dragonfly_gray_45x31.png").as_ref()).unwrap();
    let gray_lambda = gauss_encode(
        &gray,
        EncoderOptions {
            target: RateTarget::Lambda(2.5),
            seed: 7,
            log2_k: 10,
            chunk_bits: 16.0,
            pick: Pick::Sample,
            ..Default::default()
        },
    );
    let rgb = Image::open(format!("{ROOT}/fixtures/dragonfly_96x64.png").as_ref()).unwrap();
    let rgb_steps = gauss_encode(
        &rgb,
        EncoderOptions {
            target: RateTarget::Steps(5),
            seed: 1,
            log2_k: 6,
            chunk_bits: 8.0,
            grid_steps: 12,
            lambda_start: -5.0,
            lambda_stop: 9.0,
            max_width: 64,
            pick: Pick::Sample,
        },
    );
    // The default pick (aligned) and the default candidates and chunk size.
    let rgb_default = gauss_encode(
        &rgb,
        EncoderOptions {
            target: RateTarget::Bpp(1.0),
            seed: 3,
            ..Default::default()
        },
    );
    let got = [
        ("card_bpp", card_bpp),
        ("gray_fixture_lambda", gray_lambda),
        ("rgb_fixture_steps", rgb_steps),
        ("rgb_fixture_default", rgb_default),
    ];
    let mut bad = Vec::new();
    for ((name, bytes), (pname, len, hash)) in got.iter().zip(FROZEN) {
        assert_eq!(*name, pname);
        let h = sha256(bytes);
        if bytes.len() != len || h != hash {
            bad.push(format!("(\"{name}\", {}, \"{h}\")", bytes.len()));
        }
        // Frozen or not, every stream decodes as complete.
        let (_, report) = Decoder::new()
            .decode(bytes, &ReconstructOptions::default())
            .unwrap();
        assert_eq!(report.stop, Stop::Complete, "{name}");
    }
    assert!(
        bad.is_empty(),
        "the encoder's output changed (a dependency upgrade or an encoder change); if intended, \
         the new pins are:\n{}",
        bad.join(",\n")
    );
}

// ------------------------------------------------------------------------------ integer prior

/// FNV-1a 64 (the model-id hash), for the integer prior's known answers.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The known answers' latent: `z[i] = (((i * 7919) mod 2003) - 1001) / 512` (exact in f32).
fn int_test_latent(h: usize, w: usize) -> diffc::prior::Planes {
    let data = (0..3 * h * w)
        .map(|i| ((i * 7919) % 2003) as f32 - 1001.0)
        .map(|v| v / 512.0)
        .collect();
    diffc::prior::Planes {
        channels: 3,
        height: h,
        width: w,
        data,
    }
}

/// FNV-1a 64 of the little-endian f32 bytes of `x_hat`.
fn x_hash(x: &diffc::prior::Planes) -> u64 {
    let bytes: Vec<u8> = x.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    fnv1a64(&bytes)
}

/// Whether `models/shipped/tiny-int.safetensors` is here: the repository has it, the crates.io
/// package leaves it out (build.rs), and then its pins cannot be checked.
fn tiny_int_present() -> bool {
    shipped_present("tiny-int.safetensors")
}

/// Whether `models/shipped/FILE` is here (the crates.io package has only the default's).
fn shipped_present(file: &str) -> bool {
    let p = format!("{}/models/shipped/{file}", env!("CARGO_MANIFEST_DIR"));
    let here = std::path::Path::new(&p).exists();
    if !here {
        eprintln!("skipped: {p} is not in this build (crates.io package)");
    }
    here
}

/// `models/shipped/tiny-int.safetensors`: FNV-1a 64 of its bytes and its model id.
const TINY_INT_WEIGHTS_FNV: u64 = 0x4A03_FD20_5574_9242;
const TINY_INT_MODEL_ID: u64 = 0x27A8_34E9_D6F9_F1EE;

/// One known answer: `(H, W, lambda, FNV-1a 64 of x_hat)`.
type KnownAnswer = (usize, usize, f64, u64);

/// `(H, W, lambda)` → FNV-1a 64 of `x_hat` = `tiny-int`'s `predict_x(int_test_latent(H, W),
/// lambda)`, multiscale wrapper included. `spec/reference/intnet.py --self-check` asserts the
/// same table (`KNOWN_ANSWERS`, compared below).
const INT_KNOWN_ANSWERS: [KnownAnswer; 12] = [
    (24, 40, -20.0, 0xA742_F3CB_595B_1880),
    (24, 40, -4.0, 0x76D9_F888_4559_226C),
    (24, 40, -1.75, 0xF807_D18D_1C2D_1745),
    (24, 40, -1.0, 0x0B1D_2392_8D5E_BB89),
    (24, 40, 0.125, 0xB5B9_1531_CB01_0F10),
    (24, 40, 0.5, 0x424F_A17C_CFA3_4ADA),
    (24, 40, 3.26, 0x40D0_D713_CD30_36CA),
    (24, 40, 9.0, 0xDF2B_D7DE_6279_B1DF),
    (24, 40, 20.0, 0xF6F1_CB25_E341_3198),
    (13, 29, -4.0, 0x975E_D623_2BD3_4C37),
    (13, 29, -1.0, 0x3009_A5EE_F9CC_C3B8),
    (13, 29, 3.26, 0x04AE_E025_7D1D_FC4B),
];

/// `KNOWN_ANSWERS` and the id constants of `spec/reference/intnet.py`.
fn intnet_py_pins() -> (u64, u64, Vec<KnownAnswer>) {
    intnet_py_pins_of("")
}

/// The same for the table and constants whose names start with `prefix` (`INT8_`).
fn intnet_py_pins_of(prefix: &str) -> (u64, u64, Vec<KnownAnswer>) {
    let py = read_text("spec/reference/intnet.py");
    let constant = |key: &str| -> u64 {
        let key = format!("{prefix}{key}");
        let key = key.as_str();
        // At the start of a line: `WEIGHTS_FNV` is also the end of `INT8_WEIGHTS_FNV`.
        let at = py
            .find(&format!("\n{key}"))
            .unwrap_or_else(|| panic!("{key} in intnet.py"))
            + 1
            + key.len();
        let v = py[at..].lines().next().unwrap().trim();
        u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
    };
    let start = py
        .find(&format!("\n{prefix}KNOWN_ANSWERS = {{"))
        .expect("KNOWN_ANSWERS table in intnet.py")
        + 1;
    let end = start + py[start..].find("\n}").unwrap();
    let mut pins = Vec::new();
    for line in py[start..end].lines().skip(1) {
        // (24, 40, -4.0): 0x76D9F8884559226C,
        let parts: Vec<&str> = line
            .split(['(', ')', ',', ':'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(parts.len(), 4, "{line}");
        pins.push((
            parts[0].parse().unwrap(),
            parts[1].parse().unwrap(),
            parts[2].parse().unwrap(),
            u64::from_str_radix(parts[3].trim_start_matches("0x"), 16).unwrap(),
        ));
    }
    (constant("WEIGHTS_FNV = "), constant("MODEL_ID = "), pins)
}

/// `models/shipped/tiny-int8.safetensors`, the default prior: FNV-1a 64 of its bytes, its model
/// id, and known answers as [`INT_KNOWN_ANSWERS`] (`INT8_KNOWN_ANSWERS` in `intnet.py`).
const TINY_INT8_WEIGHTS_FNV: u64 = 0xB0D2_9BC4_91F1_8B28;
const TINY_INT8_MODEL_ID: u64 = 0xC05D_7110_0491_E8C0;
const INT8_KNOWN_ANSWERS: [KnownAnswer; 5] = [
    (24, 40, -1.0, 0xAC9A_DE01_9181_178E),
    (24, 40, 0.5, 0x8B4B_B4C0_F180_3DAF),
    (24, 40, 3.26, 0xE7FD_483D_1CAB_1363),
    (24, 40, 9.0, 0xE94F_5E2B_776F_8754),
    (13, 29, 3.26, 0xCB8E_1D75_9804_7FEC),
];

/// The 8-bit default runs most layers on the `u8 x i8` kernels where the CPU has them; the
/// NumPy reference, the portable kernels and the SIMD kernels agree on its bits.
#[test]
fn eight_bit_prior_known_answers() {
    use diffc::prior::intkernel::Kernels;
    use diffc::prior::{intnet::IntDenoiser, multiscale::Multiscale, Denoiser};
    use std::sync::Arc;
    assert_eq!(
        intnet_py_pins_of("INT8_"),
        (
            TINY_INT8_WEIGHTS_FNV,
            TINY_INT8_MODEL_ID,
            INT8_KNOWN_ANSWERS.to_vec()
        ),
        "intnet.py's INT8_ pins differ from this file's"
    );
    let weights = read_bytes("models/shipped/tiny-int8.safetensors");
    assert_eq!(
        fnv1a64(&weights),
        TINY_INT8_WEIGHTS_FNV,
        "the shipped file changed"
    );
    let shipped = diffc::prior::load_model("tiny-int8").unwrap();
    assert_eq!(shipped.model_id(), TINY_INT8_MODEL_ID);
    let mut priors: Vec<(String, Arc<dyn Denoiser>)> = vec![("load_model".into(), shipped)];
    for k in Kernels::available() {
        let net = IntDenoiser::from_safetensors_bytes("tiny-int8", "tiny", &weights)
            .unwrap()
            .with_kernels(k)
            .unwrap();
        let t = diffc::prior::multiscale_thresholds("tiny-int8");
        let wrapped = Multiscale::new("tiny-int8", TINY_INT8_MODEL_ID, Arc::new(net), t);
        priors.push((k.name().to_string(), Arc::new(wrapped)));
    }
    for &(h, w, lambda, want) in &INT8_KNOWN_ANSWERS {
        let z = int_test_latent(h, w);
        for (name, p) in &priors {
            let got = x_hash(&p.predict_x(&z, lambda).unwrap());
            assert_eq!(
                got, want,
                "8-bit prior, ({h}, {w}, {lambda:?}) [{name}]: 0x{got:016X}"
            );
        }
    }
}

/// Four mirror images (as the default averages them) on a small network: `tiny-int8` averaged
/// over all four agrees with the NumPy reference (`MIRROR4_` in `intnet.py`), rows-reversed
/// mirrors included.
#[test]
fn four_mirror_images_known_answers() {
    use diffc::prior::{fnv1a64_continue, mirrors::Mirrors, Denoiser};
    let (weights_fnv, id, pins) = intnet_py_pins_of("MIRROR4_");
    assert_eq!(weights_fnv, TINY_INT8_WEIGHTS_FNV);
    assert_eq!(
        id,
        fnv1a64_continue(TINY_INT8_MODEL_ID, b"diffc-mirrors-v1\x04"),
        "the id rule of spec/reconstruction.md#models"
    );
    let inner = diffc::prior::load_model("tiny-int8").unwrap();
    let four = Mirrors::new("tiny-int8", id, inner, 4).unwrap();
    assert_eq!(pins.len(), 2);
    for (h, w, lambda, want) in pins {
        let got = x_hash(&four.predict_x(&int_test_latent(h, w), lambda).unwrap());
        assert_eq!(
            got, want,
            "four mirrors, ({h}, {w}, {lambda:?}): 0x{got:016X}"
        );
    }
}

/// The file `NETMIRROR4_` pins (`NETMIRROR4_WEIGHTS` in `intnet.py`).
const NETMIRROR4_FILE: &str = "deep-int8-s193986.safetensors";

/// Mirror images inside each network (spec/integer-network.md#mirror-images): the sixth
/// release's experts (`deep,deep-nl,deep-nl,deep`, which average their mirror images around
/// the model) in the default's multiscale wrapper, each network averaging four mirror images
/// of its padded latent with one block matching, agree with the NumPy reference (`NETMIRROR4_`
/// in `intnet.py`).
#[test]
fn network_mirror_images_known_answers() {
    use diffc::prior::{experts, fnv1a64, intnet::IntDenoiser, multiscale::Multiscale, Denoiser};
    use std::sync::Arc;
    if !shipped_present(NETMIRROR4_FILE) {
        return;
    }
    let name = "deep-int8";
    let (weights_fnv, id, pins) = intnet_py_pins_of("NETMIRROR4_");
    let bytes = read_bytes(&format!("models/shipped/{NETMIRROR4_FILE}"));
    assert_eq!(fnv1a64(&bytes), weights_fnv, "the sixth release's file");
    let parts = experts::parse(&bytes).unwrap();
    let archs = ["deep", "deep-nl", "deep-nl", "deep"];
    let nets: Vec<Arc<dyn Denoiser>> = parts
        .experts
        .iter()
        .zip(archs)
        .map(|(b, a)| {
            let net = IntDenoiser::from_safetensors_bytes(name, a, b).unwrap();
            Arc::new(net.with_mirrors(4).unwrap()) as Arc<dyn Denoiser>
        })
        .collect();
    let thresholds = diffc::prior::multiscale_thresholds(name);
    let model = Multiscale::new(
        name,
        0,
        Arc::new(experts::Experts::new(name, 0, parts.bounds, nets)),
        thresholds,
    );
    let mut tail = b"diffc-multiscale-v1".to_vec();
    thresholds
        .iter()
        .for_each(|t| tail.extend_from_slice(&t.to_le_bytes()));
    let want_id =
        diffc::prior::net_mirrors_suffix(diffc::prior::fnv1a64_continue(weights_fnv, &tail), 4);
    assert_eq!(id, want_id, "the id rule of spec/reconstruction.md#models");
    assert_eq!(pins.len(), 3);
    for (h, w, lambda, want) in pins {
        let got = x_hash(&model.predict_x(&int_test_latent(h, w), lambda).unwrap());
        assert_eq!(
            got, want,
            "mirrors in each network, ({h}, {w}, {lambda:?}): 0x{got:016X}"
        );
    }
}

/// The default prior (`models/shipped/deep-int8.safetensors`): four networks, `deep-nl16`,
/// `deep-nl16`, `deep-nl16`, `deep` (8-bit, with 10-bit weights and 11-bit maps at half
/// resolution), log-SNR experts (spec/reconstruction.md#log-snr-experts), each averaging four
/// mirror images of its latent with one block matching. Its file hash, model id and known
/// answers (`DEEP8_` in `intnet.py`, which computes them from the spec alone).
const DEEP_INT8_WEIGHTS_FNV: u64 = 0x1DE1_6A72_62C8_A526;
const DEEP_INT8_MODEL_ID: u64 = 0x567B_EDB8_EF90_E257;
const DEEP8_KNOWN_ANSWERS: [KnownAnswer; 10] = [
    (24, 40, -4.0, 0x0859_3A3E_7B37_9D64),
    (24, 40, -1.0, 0xD3C6_F0DA_6870_A8FD),
    (24, 40, 0.5, 0x08A6_09F3_2496_1C58),
    (24, 40, 1.0, 0x5CD4_57D1_08AC_7B46),
    (24, 40, 3.0, 0x058A_5C43_D8CE_E4A0),
    (24, 40, 3.26, 0xFB24_0E98_F2F9_3D25),
    (24, 40, 4.0, 0x80E9_B3E6_ACD8_81E5),
    (24, 40, 4.5, 0x25E0_3AB3_44B3_9A3E),
    (24, 40, 9.0, 0x5C50_F099_BC22_5F4C),
    (13, 29, 3.26, 0x1CE3_8094_BE49_602F),
];

/// Routing, the multiscale wrapper and every expert's integer network on the portable and the
/// SIMD kernels agree with the NumPy reference bit for bit.
#[test]
fn experts_prior_known_answers() {
    use diffc::prior::experts::{self, Experts};
    use diffc::prior::intkernel::Kernels;
    use diffc::prior::{intnet::IntDenoiser, multiscale::Multiscale, Denoiser, Mirroring};
    use std::sync::Arc;
    assert_eq!(
        intnet_py_pins_of("DEEP8_"),
        (
            DEEP_INT8_WEIGHTS_FNV,
            DEEP_INT8_MODEL_ID,
            DEEP8_KNOWN_ANSWERS.to_vec()
        ),
        "intnet.py's DEEP8_ pins differ from this file's"
    );
    let weights = read_bytes("models/shipped/deep-int8.safetensors");
    assert_eq!(
        fnv1a64(&weights),
        DEEP_INT8_WEIGHTS_FNV,
        "the shipped file changed"
    );
    let shipped = diffc::prior::load_model("deep-int8").unwrap();
    assert_eq!(shipped.model_id(), DEEP_INT8_MODEL_ID);
    let mut priors: Vec<(String, Arc<dyn Denoiser>)> = vec![("load_model".into(), shipped)];
    let parts = experts::parse(&weights).unwrap();
    assert_eq!(parts.bounds, [3.0, 4.0, 4.5]);
    // The high expert is a `deep` file, which holds all of `tiny`'s layers: not a `tiny` file.
    let err = IntDenoiser::from_safetensors_bytes("x", "tiny", parts.experts[3])
        .err()
        .expect("a deep file refused as tiny")
        .to_string();
    assert!(err.contains("not part of architecture tiny"), "{err}");
    let archs: Vec<&str> = diffc::prior::arch("deep-int8").split(',').collect();
    assert_eq!(archs, ["deep-nl16", "deep-nl16", "deep-nl16", "deep"]);
    assert_eq!(diffc::prior::mirroring("deep-int8"), Mirroring::Network(4));
    for k in Kernels::available() {
        let nets: Vec<Arc<dyn Denoiser>> = parts
            .experts
            .iter()
            .zip(&archs)
            .map(|(b, &arch)| {
                let net = IntDenoiser::from_safetensors_bytes("deep-int8", arch, b)
                    .unwrap()
                    .with_kernels(k)
                    .unwrap()
                    .with_mirrors(4)
                    .unwrap();
                Arc::new(net) as Arc<dyn Denoiser>
            })
            .collect();
        let routed = Experts::new("deep-int8", 0, parts.bounds.clone(), nets);
        let t = diffc::prior::multiscale_thresholds("deep-int8");
        let scaled = Multiscale::new("deep-int8", DEEP_INT8_MODEL_ID, Arc::new(routed), t);
        priors.push((k.name().to_string(), Arc::new(scaled)));
    }
    for &(h, w, lambda, want) in &DEEP8_KNOWN_ANSWERS {
        let z = int_test_latent(h, w);
        for (name, p) in &priors {
            let got = x_hash(&p.predict_x(&z, lambda).unwrap());
            assert_eq!(
                got, want,
                "experts prior, ({h}, {w}, {lambda:?}) [{name}]: 0x{got:016X}"
            );
        }
    }
}

#[test]
fn integer_prior_known_answers() {
    if !tiny_int_present() {
        return;
    }
    use diffc::prior::intkernel::Kernels;
    use diffc::prior::{intnet::IntDenoiser, multiscale::Multiscale, Denoiser};
    use std::sync::Arc;

    // The Python reference pins the same numbers.
    let (py_fnv, py_id, py_pins) = intnet_py_pins();
    assert_eq!(
        (py_fnv, py_id),
        (TINY_INT_WEIGHTS_FNV, TINY_INT_MODEL_ID),
        "intnet.py's WEIGHTS_FNV / MODEL_ID differ from this file's"
    );
    assert_eq!(
        py_pins,
        INT_KNOWN_ANSWERS.to_vec(),
        "intnet.py's KNOWN_ANSWERS differ from this file's"
    );

    let weights = read_bytes("models/shipped/tiny-int.safetensors");
    assert_eq!(
        fnv1a64(&weights),
        TINY_INT_WEIGHTS_FNV,
        "the shipped file changed"
    );
    let shipped = diffc::prior::load_model("tiny-int").unwrap();
    assert_eq!(shipped.model_id(), TINY_INT_MODEL_ID);
    assert_eq!(
        diffc::prior::network_model_id("tiny-int", &weights),
        TINY_INT_MODEL_ID
    );
    // The shipped prior, and the bare network with every kernel set this CPU has in the same
    // multiscale wrapper: all must give the pinned bits.
    let mut priors: Vec<(String, Arc<dyn Denoiser>)> = vec![("load_model".into(), shipped)];
    let kernels = Kernels::available();
    let thresholds = diffc::prior::multiscale_thresholds("tiny-int");
    assert_eq!(thresholds, &[0.125, -1.75]);
    for k in kernels {
        let net = IntDenoiser::from_safetensors_bytes("tiny-int", "tiny", &weights)
            .unwrap()
            .with_kernels(k)
            .unwrap();
        let wrapped = Multiscale::new("tiny-int", TINY_INT_MODEL_ID, Arc::new(net), thresholds);
        priors.push((k.name().to_string(), Arc::new(wrapped)));
    }
    let mut bad = Vec::new();
    for &(h, w, lambda, want) in &INT_KNOWN_ANSWERS {
        let z = int_test_latent(h, w);
        for (name, p) in &priors {
            let got = x_hash(&p.predict_x(&z, lambda).unwrap());
            if got != want {
                bad.push(format!("({h}, {w}, {lambda:?}): 0x{got:016X} [{name}]"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the integer prior no longer gives the pinned x_hat (expected the table \
         INT_KNOWN_ANSWERS):\n{}",
        bad.join("\n")
    );
}

/// `(what, mutation of the shipped file, rejected)`: the weight-file validation vectors of
/// `spec/integer-network.md#validation`, the same as `MUTATIONS` in
/// `spec/reference/intnet.py`.
type Mutation = (&'static str, Mutate, bool);

/// A change to a weight file.
type Mutate = Box<dyn Fn(&mut Vec<u8>)>;

fn weight_file_mutations() -> Vec<Mutation> {
    fn tensor_at(b: &[u8], name: &str) -> (usize, usize) {
        let (n, meta) = safetensors::SafeTensors::read_metadata(b).unwrap();
        let info = meta.info(name).unwrap();
        let size = info.dtype.bitsize() / 8;
        (8 + n + info.data_offsets.0, size)
    }
    fn poke(name: &'static str, index: usize, value: i64) -> Mutate {
        Box::new(move |b: &mut Vec<u8>| {
            let (at, size) = tensor_at(b, name);
            let le = value.to_le_bytes();
            b[at + index * size..at + (index + 1) * size].copy_from_slice(&le[..size]);
        })
    }
    fn replace(old: &'static [u8], new: &'static [u8]) -> Mutate {
        assert_eq!(old.len(), new.len());
        Box::new(move |b: &mut Vec<u8>| {
            let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
            let at = 8 + b[8..8 + n]
                .windows(old.len())
                .position(|w| w == old)
                .unwrap();
            b[at..at + new.len()].copy_from_slice(new);
        })
    }
    vec![
        (
            "format diffc-int-v2",
            replace(b"diffc-int-v1", b"diffc-int-v2"),
            true,
        ),
        (
            "last byte missing",
            Box::new(|b: &mut Vec<u8>| {
                b.pop();
            }),
            true,
        ),
        (
            "tensor out.amax missing",
            replace(b"\"out.amax\"", b"\"out.amay\""),
            true,
        ),
        (
            "planes shape [150, 3]",
            replace(b"\"shape\":[225,2]", b"\"shape\":[150,3]"),
            true,
        ),
        ("weight -32768", poke("enc1.0.w", 0, -32768), true),
        ("shift 0", poke("mid.1.shift", 5, 0), true),
        ("shift 63", poke("mid.1.shift", 5, 63), true),
        ("negative multiplier", poke("down1.mult", 0, -1), true),
        ("bias -2^31", poke("dec2.0.bias", 3, -(1 << 31)), true),
        ("noise plane 32768", poke("planes", 7, 32768), true),
        ("noise plane -32768", poke("planes", 8, -32768), true),
        ("grid per_unit 0", poke("grid", 1, 0), true),
        ("grid per_unit 257", poke("grid", 1, 257), true),
        ("grid first 513 (> 64 per_unit)", poke("grid", 0, 513), true),
        ("relu amax 0", poke("enc2.1.amax", 0, 0), true),
        ("relu amax 32768", poke("enc2.1.amax", 0, 32768), true),
        ("up1 amax != enc1.1 amax", poke("up1.amax", 0, 2046), true),
        (
            "sum could overflow i32",
            Box::new(|b: &mut Vec<u8>| {
                for j in 0..126 {
                    poke("enc1.0.w", j, 1000)(b);
                }
            }),
            true,
        ),
        ("noise plane -2^31", poke("planes", 9, -(1 << 31)), true),
        (
            "requantization could overflow i64",
            Box::new(|b: &mut Vec<u8>| {
                for j in 0..1296 {
                    poke("mid.0.w", 3 * 1296 + j, 800)(b);
                }
                poke("mid.0.bias", 3, (1 << 31) - 1)(b);
                poke("mid.0.mult", 3, (1 << 31) - 1)(b);
                poke("mid.0.shift", 3, 62)(b);
            }),
            true,
        ),
        // Accepted: not checked (out.amax is unused; arch comes from the model, not the file).
        ("output amax -5", poke("out.amax", 0, -5), false),
        (
            "metadata arch tinz",
            replace(b"\"arch\":\"tiny\"", b"\"arch\":\"tinz\""),
            false,
        ),
        (
            "shift 62, multiplier 0",
            Box::new(|b: &mut Vec<u8>| {
                poke("out.shift", 0, 62)(b);
                poke("out.mult", 0, 0)(b);
            }),
            false,
        ),
    ]
}

#[test]
fn integer_weight_files_are_validated() {
    if !tiny_int_present() {
        return;
    }
    use diffc::prior::intnet::IntDenoiser;
    let weights = read_bytes("models/shipped/tiny-int.safetensors");
    assert!(IntDenoiser::from_safetensors_bytes("tiny-int", "tiny", &weights).is_ok());
    let py = read_text("spec/reference/intnet.py");
    let mutations = weight_file_mutations();
    for (what, mutate, reject) in &mutations {
        assert!(
            py.contains(&format!("(\"{what}\"")),
            "intnet.py's MUTATIONS lack {what:?}"
        );
        let mut b = weights.clone();
        mutate(&mut b);
        let got = IntDenoiser::from_safetensors_bytes("tiny-int", "tiny", &b);
        assert_eq!(
            got.is_err(),
            *reject,
            "{what}: {}",
            got.err().map_or("accepted".to_string(), |e| e.to_string())
        );
    }
    assert_eq!(
        py.matches(", True),").count() + py.matches(", False),").count(),
        mutations.len(),
        "intnet.py's MUTATIONS and this list differ in length"
    );
}
