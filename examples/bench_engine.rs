//! `cargo run --release --example bench_engine [-- --json]`: the same measurements as
//! `diffc bench`, without the CLI.
fn main() -> Result<(), diffc::Error> {
    let json = std::env::args().any(|a| a == "--json");
    let only = |k: &str| std::env::args().any(|a| a == format!("--only-{k}"));
    let any_only = std::env::args().any(|a| a.starts_with("--only-"));
    let opts = diffc::bench::BenchOptions {
        repeats: 5,
        graph: !any_only || only("graph"),
        integer: !any_only || only("integer"),
        train: !any_only || only("train"),
        codec: !any_only || only("codec"),
    };
    let r = diffc::bench::run(&opts)?;
    if json {
        println!("{}", r.to_json());
    } else {
        print!("{}", r.to_text());
    }
    Ok(())
}
