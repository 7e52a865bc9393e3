//! The shipped network: it loads from the embedded weights, is deterministic, actually denoises,
//! and as a prior beats the closed-form Gaussian prior at the same rate.

use diffc::prior::{self, Planes};
use diffc::{
    psnr, Decoder, Encoder, EncoderOptions, Image, Limits, Method, RateTarget, ReconstructOptions,
};

/// The stream id of the shipped default model (`models/shipped/deep-int8.safetensors`, four
/// 8-bit integer networks as log-SNR experts, with its multiscale thresholds; `diffc models`
/// prints it). Streams name their model by this id, so
/// changing it orphans every stream coded with the old weights.
///
/// It changes ONLY when `models/shipped/` (or the model's multiscale thresholds) changes: a
/// commit that ships new weights updates this constant in the same commit, and nothing else
/// may move it.
const SHIPPED_MODEL_ID: u64 = 0x567B_EDB8_EF90_E257;

/// Id of `deep-int8-fast`: the default's weights over two mirror images instead of four. Moves
/// with [`SHIPPED_MODEL_ID`].
const FAST_MODEL_ID: u64 = 0x567B_EBB8_EF90_DEF1;

/// Ids of other models this build embeds, so their streams decode: the first to fourteenth releases
/// of prior v2 (the last twelve with their two-mirror variants), the previous default `tiny-int8` (until prior v2,
/// 2026-11-30), the float network it was made from (the default before it), the 11-bit integer
/// network and earlier releases. `(name, id)`; an entry leaves only when its weights leave
/// `models/shipped/`.
const EARLIER_MODEL_IDS: &[(&str, u64)] = &[
    ("deep-int8-s83020", 0x4EA0_20BD_FCB7_8059),
    ("deep-int8-s89359", 0x4FEB_3980_6751_3A36),
    ("deep-int8-s283862", 0xD020_A83E_E37B_D16C),
    ("deep-int8-s283862-fast", 0xD020_A63E_E37B_CE06),
    ("deep-int8-s269661", 0x4E19_2DD5_4347_1103),
    ("deep-int8-s269661-fast", 0x4E19_33D5_4347_1B35),
    ("deep-int8-s259488", 0xFF1E_6CA1_C277_C5E6),
    ("deep-int8-s259488-fast", 0xFF1E_6EA1_C277_C94C),
    ("deep-int8-s249215", 0x246E_E4DC_B04F_0C5C),
    ("deep-int8-s249215-fast", 0x246E_E2DC_B04F_08F6),
    ("deep-int8-s239986", 0x036A_74A5_EA88_ED88),
    ("deep-int8-s239986-fast", 0x036A_7AA5_EA88_F7BA),
    ("deep-int8-s227715", 0x2916_BED3_180B_166C),
    ("deep-int8-s227715-fast", 0x2916_BCD3_180B_1306),
    ("deep-int8-s201925", 0x6DEA_E4F9_0785_02BF),
    ("deep-int8-s201925-fast", 0x6DEA_E2F9_0784_FF59),
    ("deep-int8-s173722", 0xBF86_D746_8060_05E2),
    ("deep-int8-s173722-fast", 0xBF86_D146_805F_FBB0),
    ("deep-int8-s193986", 0x63B5_0E6D_385C_BE32),
    ("deep-int8-s193986-fast", 0x63B5_086D_385C_B400),
    ("deep-int8-s161868", 0x55DB_FD4E_45B2_2D7E),
    ("deep-int8-s161868-fast", 0x55DB_FF4E_45B2_30E4),
    ("deep-int8-s125732", 0xCC46_DA1F_88E6_16BF),
    ("deep-int8-s125732-fast", 0xCC46_D81F_88E6_1359),
    ("deep-int8-s95064", 0x2393_78C7_6E30_92D9),
    ("deep-int8-s95064-fast", 0x2393_7AC7_6E30_963F),
    ("tiny-int8", 0xC05D_7110_0491_E8C0),
    ("tiny", 0xB026_8FF8_0190_F7C8),
    ("tiny-int", 0x27A8_34E9_D6F9_F1EE),
    ("tiny-s39032", 0xF887_13D7_B012_5B9E),
];

fn fixture(name: &str) -> Image {
    Image::open(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR")).as_ref()).unwrap()
}

#[test]
fn embedded_default_model_loads_and_is_pinned_by_id() {
    let m = prior::load_model(prior::DEFAULT_MODEL).unwrap();
    assert_eq!(m.name(), prior::DEFAULT_MODEL);
    assert_eq!(
        m.model_id(),
        SHIPPED_MODEL_ID,
        "the shipped model's id is {:#018X}, tests/model.rs pins {SHIPPED_MODEL_ID:#018X}: \
         if models/shipped/ (or its multiscale thresholds) changed on purpose, update \
         SHIPPED_MODEL_ID in tests/model.rs in the same commit; otherwise the embedded model \
         changed by accident (old streams would no longer decode)",
        m.model_id()
    );
    let again = prior::load_model_by_id(m.model_id()).unwrap();
    assert_eq!(again.model_id(), m.model_id());
    assert!(prior::available_models().contains(&prior::DEFAULT_MODEL));
    // Its faster variant: the same weights, fewer mirror images, its own id.
    let fast = prior::load_model_by_id(FAST_MODEL_ID).unwrap();
    assert_eq!(
        (fast.name(), prior::mirror_count(fast.name())),
        ("deep-int8-fast", 2)
    );
    let default_file = format!(
        "{}/models/shipped/deep-int8.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let default_weights = std::fs::read(default_file).unwrap();
    assert_eq!(
        prior::network_model_id("deep-int8-fast", &default_weights),
        FAST_MODEL_ID
    );
    // Streams of earlier releases find their weights by id.
    for &(name, id) in EARLIER_MODEL_IDS {
        // Embedded wherever its file is (the repository; not the crates.io package); a
        // `-fast` variant shares its release's file.
        let stem = name.strip_suffix("-fast").unwrap_or(name);
        let file = format!(
            "{}/models/shipped/{stem}.safetensors",
            env!("CARGO_MANIFEST_DIR")
        );
        if !std::path::Path::new(&file).exists() {
            continue;
        }
        let old = prior::load_model_by_id(id).unwrap();
        assert_eq!((old.name(), old.model_id()), (name, id));
        assert_ne!(id, SHIPPED_MODEL_ID);
    }
}

/// The default decodes to the same bits whatever kernels run it (`DIFFC_KERNELS=portable`
/// against the SIMD kernels this CPU has, both through the whole codec).
#[test]
fn default_model_decodes_identically_with_portable_kernels() {
    use diffc::prior::intkernel::Kernels;
    let image = fixture("dragonfly_96x64.png");
    let fast = prior::load_model(prior::DEFAULT_MODEL).unwrap();
    let enc = Encoder::new(
        fast.clone(),
        EncoderOptions {
            target: RateTarget::Bpp(0.5),
            ..Default::default()
        },
    )
    .unwrap()
    .encode(&image, &Limits::default(), |_| {})
    .unwrap();
    let portable = prior::load_model_on(prior::DEFAULT_MODEL, Kernels::Portable).unwrap();
    assert_eq!(portable.model_id(), fast.model_id());
    for method in [Method::Flow, Method::Denoise] {
        let ro = ReconstructOptions {
            method,
            ..Default::default()
        };
        let (a, _) = Decoder::with_model(fast.clone())
            .decode(&enc.bytes, &ro)
            .unwrap();
        let (b, _) = Decoder::with_model(portable.clone())
            .decode(&enc.bytes, &ro)
            .unwrap();
        assert!(
            a == b,
            "{method:?}: portable and {:?} kernels differ",
            Kernels::best()
        );
    }
}

#[test]
fn multiscale_evaluation_is_part_of_the_model_id() {
    let bytes = std::fs::read(format!(
        "{}/models/shipped/tiny.safetensors",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let embedded = prior::load_model("tiny").unwrap();
    assert!(!prior::multiscale_thresholds("tiny").is_empty());
    assert_ne!(embedded.model_id(), prior::fnv1a64(&bytes));
    assert_eq!(embedded.model_id(), prior::network_model_id("tiny", &bytes));
    // The same weights from a file are the same model, so its streams decode with either.
    let dir = std::env::temp_dir().join(format!("diffc-ms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let from_file = prior::load_model_file("tiny", &path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(from_file.model_id(), embedded.model_id());
    // Below the first threshold the prediction is smooth (upsampled from a smaller latent) yet
    // still the right size; above it the network sees the full latent.
    let x = fixture("dragonfly_96x64.png").to_planes();
    for lambda in [-3.0, -1.0, 2.0] {
        let out = embedded.predict_x(&x, lambda).unwrap();
        assert_eq!(
            (out.channels, out.height, out.width),
            (3, x.height, x.width)
        );
        assert!(out.data.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn denoiser_is_deterministic_and_beats_identity_at_lambda_3() {
    let m = prior::load_model(prior::DEFAULT_MODEL).unwrap();
    let x = fixture("dragonfly_96x64.png").to_planes();
    let lambda = 3.0f64;
    let (a, s) = (
        diffc::schedule::alpha(lambda) as f32,
        diffc::schedule::sigma(lambda) as f32,
    );
    let g = diffc::prng::Philox::new(1);
    let mut noise = vec![0f32; x.len()];
    g.fill_normals_row(diffc::prng::Domain::Ancestral, 0, 0, &mut noise);
    let z = Planes {
        data: x
            .data
            .iter()
            .zip(&noise)
            .map(|(&v, &e)| a * v + s * e)
            .collect(),
        ..x.clone()
    };
    let out1 = m.predict_x(&z, lambda).unwrap();
    let out2 = m.predict_x(&z, lambda).unwrap();
    assert_eq!(out1, out2, "same input, same output");
    let mse = |p: &[f32]| {
        p.iter()
            .zip(&x.data)
            .map(|(&u, &v)| ((u - v) as f64).powi(2))
            .sum::<f64>()
            / x.len() as f64
    };
    let identity: Vec<f32> = z.data.iter().map(|&v| v / a).collect();
    let rel = mse(&out1.data) / mse(&identity);
    assert!(
        rel < 0.6,
        "relative x-MSE at lambda=3 is {rel:.3}; the prior does not denoise"
    );
}

#[test]
fn trained_prior_beats_gaussian_prior_at_equal_rate() {
    let img = fixture("dragonfly_96x64.png");
    let run = |model: std::sync::Arc<dyn diffc::prior::Denoiser>| {
        let opts = EncoderOptions {
            target: RateTarget::Bpp(1.0),
            log2_k: 10,
            ..Default::default()
        };
        let enc = Encoder::new(model.clone(), opts)
            .unwrap()
            .encode(&img, &Limits::default(), |_| {})
            .unwrap();
        let ro = ReconstructOptions {
            method: Method::Denoise,
            ..Default::default()
        };
        let (out, _) = Decoder::with_model(model).decode(&enc.bytes, &ro).unwrap();
        (enc.bpp(img.width, img.height), psnr(&img, &out).unwrap())
    };
    let (bpp_net, psnr_net) = run(prior::load_model(prior::DEFAULT_MODEL).unwrap());
    let (bpp_gauss, psnr_gauss) = run(prior::load_model("gauss").unwrap());
    assert!(
        (bpp_net / bpp_gauss - 1.0).abs() < 0.15,
        "{bpp_net} vs {bpp_gauss}"
    );
    assert!(
        psnr_net > psnr_gauss + 3.0,
        "network {psnr_net:.2} dB vs gaussian {psnr_gauss:.2} dB at ~1 bpp"
    );
}
