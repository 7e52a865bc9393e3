//! `diffc progressive`.

use std::path::PathBuf;

use diffc::image_io::{self, io_error_at, OutputFormat};
use diffc::ReconstructOptions;

use super::limits::LimitArgs;
use super::{
    about, check_output, check_stream, encode_image, read_input, shown, FormatArg, MethodArg,
    Result, Ui,
};

/// The arguments of `diffc progressive`.
#[derive(clap::Args)]
pub struct ProgressiveArgs {
    /// Input stream.
    pub input: String,
    /// Output folder (created if missing).
    pub outdir: PathBuf,
    /// Image format of the written files.
    #[arg(long, value_enum, default_value = "png")]
    pub format: FormatArg,
    /// Reconstruction.
    #[arg(long, value_enum, default_value = "flow")]
    pub method: MethodArg,
    /// Write every N-th step (the last one is always written).
    #[arg(long, default_value_t = 1)]
    pub every: usize,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Run `diffc progressive`.
pub fn run(args: ProgressiveArgs, ui: &Ui) -> Result<()> {
    let ProgressiveArgs {
        input,
        outdir,
        format,
        method,
        every,
        limits,
    } = args;
    let limits = limits.limits();
    let quiet = ui.quiet;
    let format = OutputFormat::from(format);
    let ext = format.extension();
    let name = shown(&input, "stdin");
    std::fs::create_dir_all(&outdir).map_err(|e| io_error_at(&outdir, e))?;
    check_output(&outdir.join(format!("step_000.{ext}")).to_string_lossy())?;
    let data = read_input(&input)?;
    check_stream(&name, &data)?;
    let ins = diffc::inspect(&data, &limits).map_err(|e| about(&name, e))?;
    let opts = ReconstructOptions {
        method: method.into(),
        ..Default::default()
    };
    let mut sd = diffc::StreamingDecoder::new(diffc::ModelChoice::ByStreamId, limits);
    let mut pos = 0;
    let n = ins.packets.len();
    for (i, p) in ins.packets.iter().enumerate() {
        sd.push(&data[pos..p.cumulative_bytes])?;
        pos = p.cumulative_bytes;
        if i % every.max(1) == 0 || i + 1 == n {
            let img = sd.render(&opts)?;
            let path = outdir.join(format!("step_{i:03}.{ext}"));
            image_io::write_atomic(&path, &encode_image(&img, format, quiet)?)?;
            if !quiet {
                eprintln!(
                    "{}: {} bytes ({:.4} bpp), lambda {:.2}",
                    path.display(),
                    p.cumulative_bytes,
                    p.cumulative_bytes as f64 * 8.0 / (img.width as f64 * img.height as f64),
                    p.lambda
                );
            }
        }
    }
    Ok(())
}
