//! `diffc models`.

use diffc::prior;

use std::fmt::Write;

use super::{write_output, Result};

/// Run `diffc models`: one line per model this build can load by name, with its stream id.
pub fn run() -> Result<()> {
    let names = prior::available_models();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut text = String::new();
    for name in names {
        let m = prior::load_model(name)?;
        let t = prior::multiscale_thresholds(name);
        let scales = if t.is_empty() {
            String::new()
        } else {
            let t: Vec<String> = t.iter().map(|v| v.to_string()).collect();
            format!("  (half resolution below lambda {})", t.join(", then "))
        };
        let b = prior::expert_bounds(name);
        let experts = if b.is_empty() {
            String::new()
        } else {
            let b: Vec<String> = b.iter().map(|v| v.to_string()).collect();
            format!("  ({} experts, from lambda {})", b.len() + 1, b.join(", "))
        };
        let mirrors = match prior::mirroring(name) {
            prior::Mirroring::None => String::new(),
            prior::Mirroring::Model(n) => format!("  (averaged over {n} mirror images)"),
            prior::Mirroring::Network(n) => {
                format!("  (averaged over {n} mirror images in each network)")
            }
        };
        let default = if name == prior::DEFAULT_MODEL {
            "  [default]"
        } else {
            ""
        };
        writeln!(
            text,
            "{name:<width$} id {:016x}{experts}{scales}{mirrors}{default}",
            m.model_id()
        )
        .expect("a String takes any text");
    }
    write_output("-", text.as_bytes())
}
