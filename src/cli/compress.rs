//! `diffc compress`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use diffc::image_io;
use diffc::prior::{self, Denoiser};
use diffc::schedule::Grid;
use diffc::{Encoder, EncoderOptions, Error, Image, Limits, RateTarget};

use super::batch::{self, BatchArgs, Mode};
use super::limits::LimitArgs;
use super::PickArg;
use super::{
    about, check_output, pick_model, read_input, say, shown, write_output, CliError, Result, Ui,
};

/// The arguments of `diffc compress`.
#[derive(clap::Args)]
pub struct CompressArgs {
    /// IN OUT: the input image (or `-` for stdin) and the output stream (or `-` for stdout).
    /// With --out-dir: any number of input images and folders of images.
    #[arg(value_name = "PATHS", required = true)]
    pub paths: Vec<String>,
    /// Target bits per pixel (the last step is shortened to land on it). Default 0.5.
    #[arg(long, conflicts_with_all = ["steps", "quality"])]
    pub bpp: Option<f64>,
    /// Quality 1..100, the same on every image: the stream ends at log-SNR
    /// lambda = 0.09 Q - 1.1 (Q 50 = lambda 3.4, about 0.5 bpp on typical photos; the rate
    /// roughly doubles every 15 points and depends on the image).
    #[arg(short, long, conflicts_with = "steps",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: Option<u8>,
    /// Encode this many diffusion steps instead of targeting a rate.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of the shared randomness (same image + options + seed => same bytes).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Prior: an embedded model name (see `diffc models`).
    #[arg(long, default_value = prior::DEFAULT_MODEL)]
    pub model: String,
    /// Load the prior's weights from this safetensors file (architecture from --model).
    #[arg(long)]
    pub model_file: Option<PathBuf>,
    /// Steps in the log-SNR grid.
    #[arg(long, default_value_t = EncoderOptions::default().grid_steps)]
    pub grid_steps: u16,
    /// First log-SNR of the grid.
    #[arg(long, default_value_t = EncoderOptions::default().lambda_start, allow_hyphen_values = true)]
    pub lambda_start: f64,
    /// Last log-SNR of the grid.
    #[arg(long, default_value_t = EncoderOptions::default().lambda_stop, allow_hyphen_values = true)]
    pub lambda_stop: f64,
    /// log2 of the candidates per chunk (encode time grows as 2^N).
    #[arg(long, default_value_t = EncoderOptions::default().log2_k)]
    pub log2_k: u8,
    /// Target ideal bits per chunk.
    #[arg(long, default_value_t = EncoderOptions::default().chunk_bits)]
    pub chunk_bits: f64,
    /// How each chunk's candidate is chosen (an encoder choice: every decoder reads both).
    #[arg(long, value_enum, default_value = "aligned")]
    pub pick: PickArg,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The input extensions taken from a folder in batch mode.
const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "webp", "bmp", "ppm", "pgm", "pnm", "pam", "tif", "tiff",
];

/// What every file of one `diffc compress` run is coded with: checked, and the model loaded,
/// once before any input is read.
struct Plan {
    model: Arc<dyn Denoiser>,
    opts: EncoderOptions,
    grid: Grid,
    limits: Limits,
    /// `--quality` asks for a lambda past the grid's end (said once per run).
    quality_warning: Option<String>,
}

impl Plan {
    fn new(args: &CompressArgs) -> Result<Plan> {
        let target = match (args.bpp, args.steps, args.quality) {
            (_, Some(n), _) => RateTarget::Steps(n),
            (Some(b), None, _) => RateTarget::Bpp(b),
            (None, None, Some(q)) => RateTarget::Lambda(quality_lambda(q)),
            (None, None, None) => RateTarget::Bpp(0.5),
        };
        let opts = EncoderOptions {
            target,
            seed: args.seed,
            lambda_start: args.lambda_start,
            lambda_stop: args.lambda_stop,
            grid_steps: args.grid_steps,
            log2_k: args.log2_k,
            chunk_bits: args.chunk_bits,
            pick: args.pick.into(),
            ..Default::default()
        };
        let grid = opts.validate()?;
        let model = pick_model(&args.model, args.model_file.as_deref())?;
        let last_lambda = grid.lambda(grid.steps as usize - 1);
        let quality_warning = match (args.quality, target) {
            (Some(q), RateTarget::Lambda(l)) if l > last_lambda + 1e-9 => Some(format!(
                "--quality {q} asks for lambda {l:.2}, beyond the grid's last lambda {last_lambda:.2}: the whole grid is encoded (raise --lambda-stop for more)"
            )),
            _ => None,
        };
        Ok(Plan {
            model,
            opts,
            grid,
            limits: args.limits.limits(),
            quality_warning,
        })
    }
}

/// Run `diffc compress`: one image to one stream, or a batch into `--out-dir`.
pub fn run(args: CompressArgs, ui: &Ui) -> Result<()> {
    let plan = Plan::new(&args)?;
    match args.batch.mode("compress", &args.paths)? {
        Mode::Single { input, output } => compress_file(&plan, input, output, ui, false),
        Mode::Batch {
            inputs,
            out_dir,
            jobs,
        } => {
            let files = batch::plan(inputs, IMAGE_EXTENSIONS, out_dir, "dfc")?;
            if let Some(w) = &plan.quality_warning {
                eprintln!("warning: {w}");
            }
            batch::run_all(&files, jobs, ui, "compressed", |job, ui| {
                let (input, output) = (job.input.to_string_lossy(), job.output.to_string_lossy());
                compress_file(&plan, &input, &output, ui, true)
            })
        }
    }
}

/// Compress `input` to `output` (`-` for stdin/stdout). In a batch, lines name the input and
/// the run's own warnings are not repeated.
fn compress_file(plan: &Plan, input: &str, output: &str, ui: &Ui, in_batch: bool) -> Result<()> {
    let quiet = ui.quiet;
    let t0 = Instant::now();
    check_output(output)?;
    let name = shown(input, "stdin");
    let bytes = read_input(input)?;
    if image_io::sniff(&bytes) == Some("diffc stream") {
        return Err(CliError::Msg(format!(
            "{name}: this is a diffc stream, not an image; did you mean `diffc decompress`?"
        )));
    }
    let (image, notes) = Image::decode_noting(&bytes).map_err(|e| about(&name, e))?;
    drop(bytes);
    // Warnings come after the checks that can fail, before the work.
    for w in notes.warnings() {
        eprintln!("warning: {name}: {w}");
    }
    if let (Some(w), false) = (&plan.quality_warning, in_batch) {
        eprintln!("warning: {w}");
    }
    let (target, grid) = (plan.opts.target, &plan.grid);
    let pixels = image.width as f64 * image.height as f64;
    // The bar counts steps (to the step that reaches the quality's lambda), or for a
    // --bpp target thousandths of the target's bits.
    let grid_len = grid.steps as usize;
    let len = match target {
        RateTarget::Steps(n) => n.min(grid_len),
        RateTarget::Lambda(t) => (0..grid_len)
            .find(|&i| grid.lambda(i) >= t - diffc::schedule::LAMBDA_UNIT / 2.0)
            .map_or(grid_len, |i| i + 1),
        RateTarget::All => grid_len,
        RateTarget::Bpp(_) => 1000,
    };
    let bar = ui.bar("compress", len as u64);
    let enc = Encoder::new(plan.model.clone(), plan.opts.clone())?;
    let encoded = enc.encode(&image, &plan.limits, |s| {
        let bpp_now = s.cumulative_bytes as f64 * 8.0 / pixels;
        if let Some(b) = &bar {
            if let RateTarget::Bpp(t) = target {
                b.set_position(((bpp_now / t * 1000.0) as u64).min(1000));
                b.set_message(format!(
                    "step {}  {bpp_now:.3}/{t} bpp  lambda {:.2}",
                    s.step + 1,
                    s.lambda
                ));
            } else {
                b.set_position(s.step as u64 + 1);
                b.set_message(format!(
                    "step {}/{len}  {bpp_now:.3} bpp  lambda {:.2}",
                    s.step + 1,
                    s.lambda
                ));
            }
        }
        if ui.verbose {
            say(
                bar.as_ref(),
                &format!(
                    "step {:>3}  lambda {:>6.2}  {:>8} B  {:>7.4} bpp  KL {:>9.0} bit  spent {:>9} bit  {:.2}s",
                    s.step,
                    s.lambda,
                    s.bytes,
                    bpp_now,
                    s.kl_bits,
                    s.bytes * 8,
                    s.seconds
                ),
            );
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // A limit the image exceeds is about the input (main adds the flag that raises it).
    let encoded = encoded.map_err(|e| match e {
        e @ Error::Limits { .. } => about(&name, e),
        e => e.into(),
    })?;
    write_output(output, &encoded.bytes)?;
    // In a batch the summary and warnings name the file.
    let label = if in_batch {
        format!("{name}: ")
    } else {
        String::new()
    };
    if !quiet {
        let kl: f64 = encoded.steps.iter().map(|s| s.kl_bits).sum();
        let spent = encoded.bytes.len() as f64 * 8.0;
        let last = encoded.steps.last().map_or(f64::NAN, |s| s.lambda);
        eprintln!(
            "{label}{}x{}: {} bytes, {:.4} bpp, {} step{} to lambda {last:.2}, spent/ideal {:.3}, {:.2} s",
            image.width,
            image.height,
            encoded.bytes.len(),
            encoded.bpp(image.width, image.height),
            encoded.steps.len(),
            if encoded.steps.len() == 1 { "" } else { "s" },
            spent / kl.max(1.0),
            t0.elapsed().as_secs_f64()
        );
    }
    for w in rate_warnings(&encoded, target, grid, (image.width, image.height)) {
        eprintln!("warning: {label}{w}");
    }
    Ok(())
}

/// `--quality Q` as the final log-SNR of the stream: `0.09 Q - 1.1` (Q 1 = -1.01, Q 50 = 3.4,
/// where the default model gives about 0.5 bpp on typical photos, Q 100 = 7.9). The median
/// rate over the dev photos (README's presets table) doubles about every 15 points.
fn quality_lambda(q: u8) -> f64 {
    0.09 * q as f64 - 1.1
}

/// Warnings about the rate `compress` reached: a `--bpp` target that cannot be met (the
/// smallest stream is larger, or the grid ends below it), or a stream whose fixed costs
/// (header, packet framing) are half of it or more.
fn rate_warnings(
    encoded: &diffc::Encoded,
    target: RateTarget,
    grid: &diffc::schedule::Grid,
    (width, height): (u32, u32),
) -> Vec<String> {
    let header = diffc::bitstream::HEADER_LEN;
    let total = encoded.bytes.len();
    let bpp = |bytes: usize| bytes as f64 * 8.0 / (width as f64 * height as f64);
    let achieved = bpp(total);
    let mut w = Vec::new();
    if let RateTarget::Bpp(t) = target {
        let smallest = encoded.steps.first().map_or(total, |s| s.cumulative_bytes);
        let last_grid_lambda = grid.lambda(grid.steps as usize - 1);
        let grid_ended = encoded.steps.len() == grid.steps as usize
            && encoded
                .steps
                .last()
                .is_some_and(|s| (s.lambda - last_grid_lambda).abs() < 1e-9);
        if bpp(smallest) > t {
            w.push(format!(
                "--bpp {t} cannot be met on this {width}x{height} image: the {header}-byte header and the smallest first packet ({} bytes) already make {:.4} bpp; the stream is {achieved:.4} bpp",
                smallest - header,
                bpp(smallest)
            ));
        } else if achieved > t * 1.1 {
            w.push(format!(
                "--bpp {t} overshot: the stream is {achieved:.4} bpp (its last step could not be shortened enough)"
            ));
        } else if grid_ended && achieved < t * 0.95 {
            w.push(format!(
                "--bpp {t} not reached: the grid ends at lambda {last_grid_lambda:.2} after {} steps, at {achieved:.4} bpp (raise --lambda-stop for more)",
                encoded.steps.len()
            ));
        }
    }
    // Fixed costs: the header and each packet's framing (everything but the coded indices).
    let index_bytes: u64 = encoded.steps.iter().map(|s| s.index_bits / 8).sum();
    let fixed = total.saturating_sub(index_bytes as usize);
    if w.is_empty() && 2 * fixed >= total {
        w.push(format!(
            "fixed costs dominate on this {width}x{height} image: the {header}-byte header and the framing of {} packets ({} bytes) are {:.0}% of the stream ({:.4} of its {achieved:.4} bpp)",
            encoded.steps.len(),
            fixed - header.min(fixed),
            100.0 * fixed as f64 / total as f64,
            bpp(fixed)
        ));
    }
    w
}
