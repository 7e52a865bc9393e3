//! `diffc models`.

use diffc::prior;

use super::Result;

/// Run `diffc models`: one line per model this build can load by name, with its stream id.
pub fn run() -> Result<()> {
    for name in prior::available_models() {
        let m = prior::load_model(name)?;
        let t = prior::multiscale_thresholds(name);
        let scales = if t.is_empty() {
            String::new()
        } else {
            let t: Vec<String> = t.iter().map(|v| v.to_string()).collect();
            format!("  (half resolution below lambda {})", t.join(", then "))
        };
        println!("{name:<8} id {:016x}{scales}", m.model_id());
    }
    Ok(())
}
