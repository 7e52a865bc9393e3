//! Cut a small crop out of an image (used to make the test fixtures).
//! `cargo run --release --example crop -- IN OUT X Y W H [gray]`
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let img = image::open(&a[1]).expect("open");
    let p = |i: usize| a[i].parse::<u32>().expect("number");
    let c = img.crop_imm(p(3), p(4), p(5), p(6));
    if a.get(7).map(|s| s == "gray").unwrap_or(false) {
        c.into_luma8().save(&a[2]).expect("save");
    } else {
        c.into_rgb8().save(&a[2]).expect("save");
    }
}
