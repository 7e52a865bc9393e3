//! Embeds some weights only where they exist: the repository keeps them (so their streams
//! decode), the crates.io package leaves them out (its 10 MB limit): the float network `tiny`
//! (training, benchmarks and its own streams), its previous release, the 11-bit integer
//! network `tiny-int` and the earlier releases of the default, `deep-int8-s83020`,
//! `deep-int8-s89359`, `deep-int8-s95064`, `deep-int8-s125732`, `deep-int8-s161868`,
//! `deep-int8-s193986`, `deep-int8-s173722`, `deep-int8-s201925`, `deep-int8-s227715`,
//! `deep-int8-s239986`, `deep-int8-s249215`, `deep-int8-s259488`, `deep-int8-s269661` and
//! `deep-int8-s283862` (each of the last twelve with its `-fast` variant).
fn main() {
    for (file, cfg) in [
        ("models/shipped/tiny.safetensors", "diffc_tiny_float"),
        (
            "models/shipped/tiny-s39032.safetensors",
            "diffc_previous_tiny",
        ),
        ("models/shipped/tiny-int.safetensors", "diffc_tiny_int"),
        (
            "models/shipped/deep-int8-s83020.safetensors",
            "diffc_deep_s83020",
        ),
        (
            "models/shipped/deep-int8-s89359.safetensors",
            "diffc_deep_s89359",
        ),
        (
            "models/shipped/deep-int8-s95064.safetensors",
            "diffc_deep_s95064",
        ),
        (
            "models/shipped/deep-int8-s125732.safetensors",
            "diffc_deep_s125732",
        ),
        (
            "models/shipped/deep-int8-s161868.safetensors",
            "diffc_deep_s161868",
        ),
        (
            "models/shipped/deep-int8-s193986.safetensors",
            "diffc_deep_s193986",
        ),
        (
            "models/shipped/deep-int8-s173722.safetensors",
            "diffc_deep_s173722",
        ),
        (
            "models/shipped/deep-int8-s201925.safetensors",
            "diffc_deep_s201925",
        ),
        (
            "models/shipped/deep-int8-s227715.safetensors",
            "diffc_deep_s227715",
        ),
        (
            "models/shipped/deep-int8-s239986.safetensors",
            "diffc_deep_s239986",
        ),
        (
            "models/shipped/deep-int8-s249215.safetensors",
            "diffc_deep_s249215",
        ),
        (
            "models/shipped/deep-int8-s259488.safetensors",
            "diffc_deep_s259488",
        ),
        (
            "models/shipped/deep-int8-s269661.safetensors",
            "diffc_deep_s269661",
        ),
        (
            "models/shipped/deep-int8-s283862.safetensors",
            "diffc_deep_s283862",
        ),
    ] {
        println!("cargo:rerun-if-changed={file}");
        println!("cargo:rustc-check-cfg=cfg({cfg})");
        if std::path::Path::new(file).exists() {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}
