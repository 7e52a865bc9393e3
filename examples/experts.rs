//! Pack log-SNR experts into one model file (`diffc::prior::experts`).
//!
//! ```text
//! cargo run --release --example experts -- --bounds B1,B2,... --out OUT.safetensors \
//!     EXPERT0.safetensors EXPERT1.safetensors ...
//! ```
//!
//! Expert `k` predicts at the log-SNRs `B_k <= lambda < B_{k+1}` (as the network receives them,
//! after any multiscale shift); there is one bound fewer than experts. An expert given as
//! `FILE#K` is expert `K` of the experts file `FILE`, taken unchanged (a release that retrains
//! only some of its experts).

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> diffc::Result<()> {
    let usage = || {
        diffc::Error::InvalidArgument(
            "usage: experts --bounds B1,B2,... --out OUT EXPERT0 EXPERT1 ...".into(),
        )
    };
    let mut args = std::env::args().skip(1);
    let (mut bounds, mut out, mut files) = (None, None, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bounds" => {
                let v = args.next().ok_or_else(usage)?;
                let b = v
                    .split(',')
                    .map(|t| t.trim().parse::<f64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| diffc::Error::InvalidArgument(format!("--bounds {v}: {e}")))?;
                bounds = Some(b);
            }
            "--out" => out = Some(args.next().ok_or_else(usage)?),
            _ => files.push(a),
        }
    }
    let (bounds, out) = (bounds.ok_or_else(usage)?, out.ok_or_else(usage)?);
    if files.len() != bounds.len() + 1 {
        return Err(diffc::Error::InvalidArgument(format!(
            "{} experts need {} bounds, got {}",
            files.len(),
            files.len().saturating_sub(1),
            bounds.len()
        )));
    }
    let experts = files
        .iter()
        .map(|f| read_expert(f))
        .collect::<diffc::Result<Vec<_>>>()?;
    let bytes = diffc::prior::experts::pack(&experts, &bounds)?;
    std::fs::write(&out, &bytes)
        .map_err(|e| diffc::Error::Io(std::io::Error::new(e.kind(), format!("{out}: {e}"))))?;
    println!(
        "wrote {out} ({} bytes, {} experts, FNV-1a 64 {:016x})",
        bytes.len(),
        experts.len(),
        diffc::prior::fnv1a64(&bytes)
    );
    Ok(())
}

/// The bytes of one expert: a weight file, or `FILE#K` for expert `K` of an experts file.
fn read_expert(arg: &str) -> diffc::Result<Vec<u8>> {
    let (path, k) = match arg.rsplit_once('#') {
        Some((p, k)) => {
            let k = k.parse::<usize>().map_err(|e| {
                diffc::Error::InvalidArgument(format!("{arg}: expert number {k:?}: {e}"))
            })?;
            (p, Some(k))
        }
        None => (arg, None),
    };
    let bytes = std::fs::read(path)
        .map_err(|e| diffc::Error::Io(std::io::Error::new(e.kind(), format!("{path}: {e}"))))?;
    let Some(k) = k else {
        return Ok(bytes);
    };
    let parts = diffc::prior::experts::parse(&bytes)
        .map_err(|e| diffc::Error::InvalidArgument(format!("{path}: {e}")))?;
    parts.experts.get(k).map(|e| e.to_vec()).ok_or_else(|| {
        diffc::Error::InvalidArgument(format!(
            "{path} has {} experts, no expert {k}",
            parts.experts.len()
        ))
    })
}
