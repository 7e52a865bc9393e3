//! `diffc decompress`.

use std::path::PathBuf;
use std::time::Instant;

use diffc::image_io::OutputFormat;
use diffc::prior;
use diffc::{DecodeReport, Error, Limits, ModelChoice, ReconstructOptions, Stop, StreamingDecoder};

use super::batch::{self, BatchArgs, Mode};
use super::limits::LimitArgs;
use super::{
    about, check_output, check_stream, encode_image, output_format, pick_model, read_input, shown,
    write_output, CliError, FormatArg, MethodArg, Result, Ui,
};

/// The arguments of `diffc decompress`.
#[derive(clap::Args)]
pub struct DecompressArgs {
    /// IN OUT: the input stream (or `-` for stdin) and the output image (or `-` for stdout, PNG
    /// unless --format). With --out-dir: any number of streams and folders of `.dfc` streams.
    #[arg(value_name = "PATHS", required = true)]
    pub paths: Vec<String>,
    /// Image format to write, whatever OUT's extension (.ppm = binary P6, .pgm = binary P5
    /// (RGB converted to luma), .pam = P7; WebP is lossless, JPEG quality 95); with --out-dir,
    /// the format of every output (default PNG).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Reconstruction from the last received step.
    #[arg(long, value_enum, default_value = "flow")]
    pub method: MethodArg,
    /// Decode only the first N bytes of the input.
    #[arg(long)]
    pub bytes: Option<usize>,
    /// Denoiser evaluations for flow/ancestral reconstruction.
    #[arg(long, default_value_t = ReconstructOptions::default().flow_steps as u16,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub flow_steps: u16,
    /// Use this embedded model instead of the one the stream names.
    #[arg(long)]
    pub model: Option<String>,
    /// Load the model weights from this file, run as the model --model names (default: the
    /// default model).
    #[arg(long)]
    pub model_file: Option<PathBuf>,
    /// Fail (exit code 1, no output written) unless the stream is complete: a partial
    /// (cut) stream, a corrupt packet or trailing bytes after the last packet are errors.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// What every stream of one `diffc decompress` run is decoded with.
struct Plan {
    choice: ModelChoice,
    opts: ReconstructOptions,
    limits: Limits,
    bytes: Option<usize>,
    strict: bool,
}

/// Run `diffc decompress`: one stream to one image, or a batch into `--out-dir`.
pub fn run(args: DecompressArgs, ui: &Ui) -> Result<()> {
    let mode = args.batch.mode("decompress", &args.paths)?;
    // Everything that can be checked without decoding is checked first.
    let single_format = match mode {
        Mode::Single { output, .. } => {
            let format = output_format(output, args.format)?;
            check_output(output)?;
            Some(format)
        }
        Mode::Batch { .. } => None,
    };
    let choice = match (&args.model, &args.model_file) {
        (None, None) => ModelChoice::ByStreamId,
        (m, f) => ModelChoice::Fixed(pick_model(
            m.as_deref().unwrap_or(prior::DEFAULT_MODEL),
            f.as_deref(),
        )?),
    };
    let plan = Plan {
        choice,
        opts: ReconstructOptions {
            method: args.method.into(),
            flow_steps: args.flow_steps as usize,
            ..Default::default()
        },
        limits: args.limits.limits(),
        bytes: args.bytes,
        strict: args.strict,
    };
    match (mode, single_format) {
        (Mode::Single { input, output }, Some(format)) => {
            decompress_file(&plan, input, output, format, ui)
        }
        (
            Mode::Batch {
                inputs,
                out_dir,
                jobs,
            },
            _,
        ) => {
            let format = args.format.map_or(OutputFormat::Png, OutputFormat::from);
            let files = batch::plan(inputs, &["dfc"], out_dir, format.extension())?;
            batch::run_all(&files, jobs, ui, "decompressed", |job, ui| {
                let (input, output) = (job.input.to_string_lossy(), job.output.to_string_lossy());
                decompress_file(&plan, &input, &output, format, ui)
            })
        }
        (Mode::Single { .. }, None) => unreachable!("a single output's format is checked above"),
    }
}

/// Decompress `input` to `output` (`-` for stdin/stdout) in `format`, checked writable.
fn decompress_file(
    plan: &Plan,
    input: &str,
    output: &str,
    format: OutputFormat,
    ui: &Ui,
) -> Result<()> {
    let quiet = ui.quiet;
    let (opts, limits, strict) = (&plan.opts, plan.limits, plan.strict);
    let t0 = Instant::now();
    let name = shown(input, "stdin");
    check_output(output)?;
    let mut data = read_input(input)?;
    if let Some(n) = plan.bytes {
        data.truncate(n);
    }
    check_stream(&name, &data)?;
    // Packet boundaries (no model needed), to push the stream packet by packet and show
    // progress; the result is the same as pushing it whole.
    let ends: Vec<usize> = diffc::inspect(&data, &limits)
        .map(|ins| ins.packets.iter().map(|p| p.cumulative_bytes).collect())
        .unwrap_or_default();
    let bar = ui.bar("decompress", ends.len() as u64 + 1);
    let mut sd = StreamingDecoder::new(plan.choice.clone(), limits);
    let mut pos = 0;
    let mut pushed = Ok(0);
    for (i, &end) in ends.iter().enumerate() {
        if let Some(b) = &bar {
            b.set_message(format!("decoding step {}/{}", i + 1, ends.len()));
        }
        pushed = sd.push(&data[pos..end]);
        pos = end;
        if pushed.is_err() {
            break;
        }
        if let Some(b) = &bar {
            b.set_position(i as u64 + 1);
        }
    }
    if pushed.is_ok() {
        pushed = sd.push(&data[pos..]);
    }
    if sd.header().is_none() {
        pushed.map_err(|e| about(&name, e))?;
        return Err(about(&name, Error::Truncated { what: "header" }));
    }
    // A limit (pixels, memory, compute) is the user's to raise, not a fault of the stream: an
    // error that names the flag (main adds it), not a "corrupt" report.
    if let Err(e @ Error::Limits { .. }) = pushed {
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        return Err(about(&name, e));
    }
    let report = sd.report();
    let status = decode_status(&report, data.len());
    let clean = matches!(report.stop, Stop::Complete);
    if strict && !clean {
        return Err(CliError::Msg(format!(
            "{name}: {status} (--strict: nothing written)"
        )));
    }
    if let Some(b) = &bar {
        b.set_position(report.steps_decoded as u64);
        b.set_message(format!("reconstruction ({})", opts.method));
    }
    let img = sd.render(opts);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let img = img?;
    write_output(output, &encode_image(&img, format, quiet)?)?;
    // Partial decoding is the point of a progressive format: a success, but said so.
    // A corrupt packet or trailing bytes are warnings, printed even with -q.
    let worrying = matches!(
        report.stop,
        Stop::Corrupt { .. }
            | Stop::TrailingBytes { .. }
            | Stop::Limit { .. }
            | Stop::DecoderFailed { .. }
    );
    if worrying || !quiet {
        eprintln!(
            "{}{name}: {}x{} {status}; {:.4} bpp, {} reconstruction, {} written to {}, {:.2} s",
            if worrying { "warning: " } else { "" },
            img.width,
            img.height,
            report.bytes_used as f64 * 8.0 / (img.width as f64 * img.height as f64),
            opts.method,
            format.name(),
            shown(output, "stdout"),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// What a decode was, in one phrase: complete, partial or corrupt, plus trailing bytes.
fn decode_status(report: &DecodeReport, input_len: usize) -> String {
    let n = report.steps_decoded;
    let grid = report.header.map(|h| h.grid.steps as usize).unwrap_or(0);
    match &report.stop {
        Stop::Complete => format!("complete ({n}/{n} steps, {} bytes)", report.bytes_used),
        Stop::TrailingBytes { count } => format!(
            "complete ({n}/{n} steps, {} bytes); {count} trailing bytes after the last packet",
            report.bytes_used
        ),
        Stop::Truncated { .. } => {
            let after = if n == 0 {
                "the header".to_string()
            } else {
                format!("packet {n}")
            };
            let rest = input_len.saturating_sub(report.bytes_used);
            let incomplete = if rest > 0 {
                format!("; {rest} bytes of an incomplete packet ignored")
            } else {
                String::new()
            };
            format!(
                "partial: stream ends after {after} at byte {} ({n} of up to {grid} steps{incomplete})",
                report.bytes_used
            )
        }
        Stop::Corrupt {
            step,
            at_byte,
            detail,
        } => format!(
            "corrupt: stopped at packet {} (byte {at_byte}): {}; the image is from the {n} good packets before it",
            step + 1,
            detail.strip_prefix("corrupt stream: ").unwrap_or(detail)
        ),
        Stop::Limit {
            step,
            at_byte,
            what,
            value,
            max,
        } => format!(
            "stopped at packet {} (byte {at_byte}) by a limit: {what} = {value}, maximum is {max}; the image is from the {n} packets before it",
            step + 1
        ),
        Stop::DecoderFailed {
            step,
            at_byte,
            detail,
        } => format!(
            "stopped at packet {} (byte {at_byte}): the decoder failed: {detail}; the image is from the {n} packets before it",
            step + 1
        ),
    }
}
