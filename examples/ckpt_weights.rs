//! Extract the raw (non-EMA) or EMA weights from a training checkpoint into a model file, or
//! make a slim checkpoint (EMA weights and progress, a third of the size; training resumes from
//! it with Adam's moments restarted).
//! `cargo run --release --example ckpt_weights -- CKPT OUT [param|ema|slim]`
use std::collections::HashMap;

fn main() -> candle_core::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        eprintln!("usage: ckpt_weights CKPT OUT [param|ema|slim]");
        std::process::exit(2);
    }
    let which = a.get(3).map(String::as_str).unwrap_or("param");
    let prefix = format!("{which}.");
    let all = candle_core::safetensors::load(&a[1], &candle_core::Device::Cpu)?;
    if which == "slim" {
        let kept: HashMap<String, candle_core::Tensor> = all
            .into_iter()
            .filter(|(k, _)| k.starts_with("ema.") || k.starts_with("meta."))
            .filter(|(k, _)| k != "meta.moments_from")
            .collect();
        eprintln!("{} tensors (EMA weights and progress)", kept.len());
        return candle_core::safetensors::save(&kept, &a[2]);
    }
    let picked: HashMap<String, candle_core::Tensor> = all
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|n| (n.to_string(), v)))
        .collect();
    eprintln!("{} tensors with prefix {prefix}", picked.len());
    candle_core::safetensors::save(&picked, &a[2])
}
