//! Embeds earlier releases' weights only where they exist: the repository keeps them (so old
//! streams decode), the crates.io package leaves them out (its 10 MB limit).
fn main() {
    let previous = "models/shipped/tiny-s39032.safetensors";
    println!("cargo:rerun-if-changed={previous}");
    println!("cargo:rustc-check-cfg=cfg(diffc_previous_tiny)");
    if std::path::Path::new(previous).exists() {
        println!("cargo:rustc-cfg=diffc_previous_tiny");
    }
}
