//! The `diffc` command-line tool: a thin layer over the library API.

use std::fmt;
use std::io::IsTerminal;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use diffc::image_io::{self, io_error_at, OutputFormat, OUTPUT_EXTENSIONS};
use diffc::prior::{self, Denoiser};
use diffc::{
    DecodeReport, Encoder, EncoderOptions, Error, Image, Limits, Method, ModelChoice, RateTarget,
    ReconstructOptions, Stop, StreamingDecoder,
};

#[derive(Parser)]
#[command(
    name = "diffc",
    version,
    about = "Lossy image compression with Gaussian diffusion (DiffC) and reverse channel coding",
    long_about = "Lossy image compression with Gaussian diffusion (DiffC). The stream is progressive: \
                  any byte prefix decodes to the best image its complete packets allow."
)]
struct Cli {
    /// Print nothing but errors and warnings (no progress, no summary).
    #[arg(long, global = true)]
    quiet: bool,
    /// Say more: compress's per-step table, eval's per-measurement lines.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    Flow,
    Ancestral,
    Denoise,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Flow => Method::Flow,
            MethodArg::Ancestral => Method::Ancestral,
            MethodArg::Denoise => Method::Denoise,
        }
    }
}

/// `--format`: the image format to write, overriding the output's extension.
#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Png,
    Ppm,
    Pgm,
    Pam,
    Bmp,
    #[value(alias = "tif")]
    Tiff,
    #[value(alias = "jpg")]
    Jpeg,
    Webp,
}

impl From<FormatArg> for OutputFormat {
    fn from(f: FormatArg) -> OutputFormat {
        match f {
            FormatArg::Png => OutputFormat::Png,
            FormatArg::Ppm => OutputFormat::Ppm,
            FormatArg::Pgm => OutputFormat::Pgm,
            FormatArg::Pam => OutputFormat::Pam,
            FormatArg::Bmp => OutputFormat::Bmp,
            FormatArg::Tiff => OutputFormat::Tiff,
            FormatArg::Jpeg => OutputFormat::Jpeg,
            FormatArg::Webp => OutputFormat::Webp,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Compress an image (PNG, JPEG, WebP, BMP, PNM, TIFF; 8-bit gray or RGB) to a diffc stream.
    #[command(alias = "encode")]
    Compress {
        /// Input image, or `-` for stdin.
        input: String,
        /// Output stream, or `-` for stdout.
        output: String,
        /// Target bits per pixel (the last step is shortened to land on it). Default 0.5.
        #[arg(long, conflicts_with_all = ["steps", "quality"])]
        bpp: Option<f64>,
        /// Quality 1..100, the same on every image: the stream ends at log-SNR
        /// lambda = 0.09 Q - 1.1 (Q 50 = lambda 3.4, about 0.5 bpp on typical photos; the rate
        /// roughly doubles every 13 points and depends on the image).
        #[arg(short, long, conflicts_with = "steps",
              value_parser = clap::value_parser!(u8).range(1..=100))]
        quality: Option<u8>,
        /// Encode this many diffusion steps instead of targeting a rate.
        #[arg(long)]
        steps: Option<usize>,
        /// Seed of the shared randomness (same image + options + seed => same bytes).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Prior: an embedded model name (see `diffc models`).
        #[arg(long, default_value = prior::DEFAULT_MODEL)]
        model: String,
        /// Load the prior's weights from this safetensors file (architecture from --model).
        #[arg(long)]
        model_file: Option<PathBuf>,
        /// Steps in the log-SNR grid.
        #[arg(long, default_value_t = EncoderOptions::default().grid_steps)]
        grid_steps: u16,
        /// First log-SNR of the grid.
        #[arg(long, default_value_t = EncoderOptions::default().lambda_start, allow_hyphen_values = true)]
        lambda_start: f64,
        /// Last log-SNR of the grid.
        #[arg(long, default_value_t = EncoderOptions::default().lambda_stop, allow_hyphen_values = true)]
        lambda_stop: f64,
        /// log2 of the candidates per chunk (encode time grows as 2^N).
        #[arg(long, default_value_t = EncoderOptions::default().log2_k)]
        log2_k: u8,
        /// Target ideal bits per chunk.
        #[arg(long, default_value_t = EncoderOptions::default().chunk_bits)]
        chunk_bits: f64,
    },
    /// Decompress a diffc stream (complete or cut anywhere) to an image in the format OUT's
    /// extension names (.png .ppm .pgm .pam .pnm .bmp .tif .tiff .jpg .jpeg .webp) or --format.
    /// OUT is replaced atomically, never left partial; the report says whether the stream was
    /// complete, partial (cut) or corrupt.
    #[command(alias = "decode")]
    Decompress {
        /// Input stream, or `-` for stdin.
        input: String,
        /// Output image, or `-` for stdout (PNG unless --format).
        output: String,
        /// Image format to write, whatever OUT's extension (.ppm = binary P6, .pgm = binary P5
        /// (RGB converted to luma), .pam = P7; WebP is lossless, JPEG quality 95).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Reconstruction from the last received step.
        #[arg(long, value_enum, default_value = "flow")]
        method: MethodArg,
        /// Decode only the first N bytes of the input.
        #[arg(long)]
        bytes: Option<usize>,
        /// Denoiser evaluations for flow/ancestral reconstruction.
        #[arg(long, default_value_t = ReconstructOptions::default().flow_steps as u16,
              value_parser = clap::value_parser!(u16).range(0..=1000))]
        flow_steps: u16,
        /// Use this embedded model instead of the one the stream names.
        #[arg(long)]
        model: Option<String>,
        /// Load the model weights from this file (architecture from --model, default tiny).
        #[arg(long)]
        model_file: Option<PathBuf>,
        /// Fail (exit code 1, no output written) unless the stream is complete: a partial
        /// (cut) stream, a corrupt packet or trailing bytes after the last packet are errors.
        #[arg(long)]
        strict: bool,
    },
    /// Show a stream's header and per-packet table (no model needed).
    Inspect {
        /// Input stream, or `-` for stdin.
        input: String,
        /// Machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    #[cfg(feature = "eval")]
    /// Measure rate–distortion on a folder of images through the real bitstream (CSV + SVG
    /// plot), with JPEG/WebP/AVIF from Debian's encoders in the same run when installed.
    Eval {
        /// Folder of images.
        #[arg(long)]
        data: PathBuf,
        /// Comma-separated target rates (bits per pixel).
        #[arg(long, value_delimiter = ',', default_value = "0.125,0.25,0.5,1.0")]
        bpp: Vec<f64>,
        /// CSV output (the plot goes next to it as .svg).
        #[arg(long, default_value = "eval.csv")]
        out: PathBuf,
        /// Prior: an embedded model name.
        #[arg(long, default_value = prior::DEFAULT_MODEL)]
        model: String,
        /// Load the prior's weights from this safetensors file.
        #[arg(long)]
        model_file: Option<PathBuf>,
        /// Comma-separated reconstructions to measure.
        #[arg(long, value_delimiter = ',', default_value = "denoise,flow,ancestral")]
        methods: Vec<MethodArg>,
        /// Use only the first N images.
        #[arg(long)]
        limit: Option<usize>,
        /// Skip the classical codecs.
        #[arg(long)]
        no_baselines: bool,
        /// Denoiser evaluations for flow/ancestral.
        #[arg(long, default_value_t = ReconstructOptions::default().flow_steps as u16,
              value_parser = clap::value_parser!(u16).range(0..=1000))]
        flow_steps: u16,
        /// log2 of the candidates per chunk.
        #[arg(long, default_value_t = EncoderOptions::default().log2_k)]
        log2_k: u8,
        /// Steps in the log-SNR grid.
        #[arg(long, default_value_t = EncoderOptions::default().grid_steps)]
        grid_steps: u16,
        /// Target ideal bits per chunk.
        #[arg(long, default_value_t = EncoderOptions::default().chunk_bits)]
        chunk_bits: f64,
        /// First log-SNR of the grid.
        #[arg(long, default_value_t = EncoderOptions::default().lambda_start, allow_hyphen_values = true)]
        lambda_start: f64,
        /// Last log-SNR of the grid.
        #[arg(long, default_value_t = EncoderOptions::default().lambda_stop, allow_hyphen_values = true)]
        lambda_stop: f64,
    },
    #[cfg(feature = "train")]
    /// Train the neural prior on a folder of photos (checkpoints every few minutes; resumable).
    Train {
        /// Folder of training images (png/jpg/jpeg/webp, recursive).
        #[arg(long)]
        data: PathBuf,
        /// Output weights (safetensors); the checkpoint goes to MODEL.ckpt.safetensors and the
        /// validation log to MODEL.val.csv.
        #[arg(long)]
        out: PathBuf,
        /// Resume exactly from this checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Wall-clock budget in minutes.
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
        /// Architecture name.
        #[arg(long, default_value = prior::DEFAULT_MODEL)]
        model: String,
        /// Held-out validation folder (never trained on).
        #[arg(long)]
        val: Option<PathBuf>,
        /// Crops per step.
        #[arg(long, default_value_t = diffc::train::TrainOptions::default().batch)]
        batch: usize,
        /// Crop side in pixels (multiple of 8).
        #[arg(long, default_value_t = diffc::train::TrainOptions::default().crop)]
        crop: usize,
        /// Seed of the run (ignored when resuming).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Decode a stream packet by packet and write one image per prefix (a visual check of
    /// progressive decoding): OUTDIR/step_NNN.png (or the --format extension).
    Progressive {
        /// Input stream.
        input: String,
        /// Output folder (created if missing).
        outdir: PathBuf,
        /// Image format of the written files.
        #[arg(long, value_enum, default_value = "png")]
        format: FormatArg,
        /// Reconstruction.
        #[arg(long, value_enum, default_value = "flow")]
        method: MethodArg,
        /// Write every N-th step (the last one is always written).
        #[arg(long, default_value_t = 1)]
        every: usize,
    },
    /// List the models built into this binary.
    Models,
    #[cfg(feature = "train")]
    /// Measure this machine: the network's forward pass (768x512), a training step and the
    /// codec's own per-step work (medians; JSON with --json).
    Bench {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Timed repetitions of each measurement (the median is reported).
        #[arg(long, default_value_t = diffc::bench::BenchOptions::default().repeats as u16,
              value_parser = clap::value_parser!(u16).range(1..=1000))]
        repeats: u16,
        /// Skip the training step.
        #[arg(long)]
        no_train: bool,
        /// Skip candle's reference graph.
        #[arg(long)]
        no_graph: bool,
        /// Skip the codec's per-step work.
        #[arg(long)]
        no_codec: bool,
    },
}

/// A command-line failure: a library error, or a message of the CLI's own (already complete,
/// usually starting with the path it is about).
enum CliError {
    Lib(Error),
    Msg(String),
    /// A child process already reported its failure on stderr: exit with its code.
    #[cfg(feature = "train")]
    Exit(u8),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Lib(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Lib(e) => e.fmt(f),
            CliError::Msg(m) => f.write_str(m),
            #[cfg(feature = "train")]
            CliError::Exit(code) => write!(f, "exit code {code}"),
        }
    }
}

type Result<T> = std::result::Result<T, CliError>;

/// How much to say on stderr, and whether progress bars can be drawn there.
#[derive(Clone, Copy)]
struct Ui {
    quiet: bool,
    verbose: bool,
    /// stderr is a terminal and not --quiet: draw bars (otherwise at most a few plain lines).
    bars: bool,
}

impl Ui {
    fn new(quiet: bool, verbose: bool) -> Ui {
        Ui {
            quiet,
            verbose,
            bars: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A bar of `len` units on stderr, or `None` when bars are not drawn.
    fn bar(&self, prefix: &'static str, len: u64) -> Option<ProgressBar> {
        if !self.bars {
            return None;
        }
        let style = ProgressStyle::with_template("{prefix} [{bar:24}] {msg} ({elapsed})")
            .expect("valid progress template")
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(prefix);
        // Redraw while a long step runs, so the elapsed time keeps moving.
        bar.enable_steady_tick(Duration::from_millis(250));
        Some(bar)
    }
}

#[cfg(feature = "train")]
impl Ui {
    /// A spinner with a message, or `None` when bars are not drawn.
    fn spinner(&self, prefix: &'static str, msg: &'static str) -> Option<ProgressBar> {
        if !self.bars {
            return None;
        }
        let style = ProgressStyle::with_template("{prefix} {spinner} {msg} ({elapsed})")
            .expect("valid progress template");
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(prefix)
            .with_message(msg);
        bar.enable_steady_tick(Duration::from_millis(250));
        Some(bar)
    }
}

#[cfg(feature = "train")]
/// Set in the environment of the child that [`train_with_bar`] starts.
const TRAIN_CHILD_ENV: &str = "DIFFC_TRAIN_UNDER_BAR";

#[cfg(feature = "train")]
/// `diffc train` under a bar of its time budget. Training prints its own log lines on stderr
/// (which would tear a bar drawn beside them), so the same command runs as a child whose
/// stderr comes here: step lines move the bar (shown with -v), every other line (data,
/// validation, checkpoints, errors) is printed above it. Exits with the child's code.
fn train_with_bar(ui: &Ui, minutes: f64) -> Result<()> {
    use std::io::BufRead;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Msg(format!("cannot find this program to run training: {e}")))?;
    let mut child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(TRAIN_CHILD_ENV, "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CliError::Msg(format!("cannot start training: {e}")))?;
    let bar = ui.bar("train", (minutes * 60.0).round().max(1.0) as u64);
    if let Some(b) = &bar {
        b.set_message(format!("0.0 of {minutes} min (loading)"));
    }
    // When the budget started (training logs elapsed minutes to 0.1 only).
    let mut budget_start: Option<Instant> = None;
    if let Some(err) = child.stderr.take() {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            // "step N loss L gnorm G lr R S steps/s elapsed E min (trained T min)"
            let field = |key: &str| {
                line.split_once(key)
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .map(str::to_string)
            };
            let step_line = line.starts_with("step ");
            if let (true, Some(b), Some(el)) = (
                step_line,
                &bar,
                field(" elapsed ").and_then(|v| v.parse::<f64>().ok()),
            ) {
                let start = *budget_start.get_or_insert_with(|| {
                    Instant::now()
                        .checked_sub(Duration::from_secs_f64(el * 60.0))
                        .unwrap_or_else(Instant::now)
                });
                let el = start.elapsed().as_secs_f64() / 60.0;
                b.set_position((el * 60.0) as u64);
                b.set_message(format!(
                    "{el:.1} of {minutes} min, step {}, loss {}",
                    field("step ").unwrap_or_default(),
                    field(" loss ").unwrap_or_default()
                ));
            }
            if !step_line || ui.verbose {
                say(bar.as_ref(), &line);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| CliError::Msg(format!("training: {e}")))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if status.success() {
        Ok(())
    } else {
        Err(CliError::Exit(
            status.code().unwrap_or(1).clamp(1, 255) as u8
        ))
    }
}

/// A line on stderr: above the bar when one is drawn.
fn say(bar: Option<&ProgressBar>, line: &str) {
    match bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    }
}

/// `--quality Q` as the final log-SNR of the stream: `0.09 Q - 1.1` (Q 1 = -1.01, Q 50 = 3.4,
/// where the default model gives about 0.5 bpp on typical photos, Q 100 = 7.9). Each lambda
/// unit costs roughly 1.8x more bits, so the rate doubles about every 13 points.
fn quality_lambda(q: u8) -> f64 {
    0.09 * q as f64 - 1.1
}

/// How a path is named in messages (`-` is stdin or stdout).
fn shown(path: &str, stdio: &str) -> String {
    if path == "-" {
        stdio.into()
    } else {
        path.into()
    }
}

fn read_input(path: &str) -> Result<Vec<u8>> {
    if path == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .read_to_end(&mut v)
            .map_err(|e| io_error_at(Path::new("stdin"), e))?;
        Ok(v)
    } else {
        Ok(std::fs::read(path).map_err(|e| io_error_at(Path::new(path), e))?)
    }
}

/// Write `bytes` to stdout (`-`) or replace the file atomically (temporary file in the same
/// folder, fsync, rename; nothing partial is ever left at `path`).
fn write_output(path: &str, bytes: &[u8]) -> Result<()> {
    if path == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|e| io_error_at(Path::new("stdout"), e))?;
        Ok(())
    } else {
        Ok(image_io::write_atomic(Path::new(path), bytes)?)
    }
}

/// Before any work: the output can be created (its folder exists and is writable, it is not a
/// folder or a read-only file).
fn check_output(path: &str) -> Result<()> {
    if path != "-" {
        image_io::check_writable(Path::new(path))?;
    }
    Ok(())
}

/// The image format to write to `path`: `--format`, else the extension (PNG for stdout and
/// for a device or pipe without one, e.g. `/dev/null`).
fn output_format(path: &str, format: Option<FormatArg>) -> Result<OutputFormat> {
    if let Some(f) = format {
        return Ok(f.into());
    }
    let p = Path::new(path);
    let special = std::fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir());
    if path == "-" || (special && p.extension().is_none()) {
        // stdout, or a device or pipe such as /dev/null.
        return Ok(OutputFormat::Png);
    }
    match p.extension().map(|e| e.to_string_lossy()) {
        Some(ext) => OutputFormat::from_extension(&ext).ok_or_else(|| {
            CliError::Msg(format!(
                "{path}: cannot write .{ext} images (supported extensions: {OUTPUT_EXTENSIONS}; or choose one with --format png|ppm|pgm|pam|bmp|tiff|jpeg|webp)"
            ))
        }),
        None => Err(CliError::Msg(format!(
            "{path}: no file extension to choose the image format from (supported extensions: {OUTPUT_EXTENSIONS}; or choose one with --format png|ppm|pgm|pam|bmp|tiff|jpeg|webp)"
        ))),
    }
}

/// Encode `img` as `format`, saying so on stderr when the format changes the channels.
fn encode_image(img: &Image, format: OutputFormat, quiet: bool) -> Result<Vec<u8>> {
    if format == OutputFormat::Pgm && img.channels == 3 && !quiet {
        eprintln!("warning: PGM is grayscale: the RGB image is converted to luma (BT.709 weights)");
    }
    Ok(img.encode_as(format)?)
}

/// Refuse, before parsing, an input that is not a diffc stream — naming what it is when its
/// magic bytes say (a PNG given to `decompress`, say).
fn check_stream(name: &str, data: &[u8]) -> Result<()> {
    let magic = &diffc::bitstream::MAGIC;
    let n = data.len().min(magic.len());
    if data[..n] == magic[..n] {
        return Ok(());
    }
    Err(CliError::Msg(match image_io::sniff(data) {
        Some(kind) => format!(
            "{name}: not a diffc stream (this looks like a {kind} image; did you mean `diffc compress`?)"
        ),
        None => format!("{name}: not a diffc stream (it does not start with the DIFC magic bytes)"),
    }))
}

/// A library error about the input stream, with the input's name in front.
fn about(name: &str, e: Error) -> CliError {
    match e {
        e @ Error::Io(_) => CliError::Lib(e),
        e => CliError::Msg(format!("{name}: {e}")),
    }
}

fn pick_model(name: &str, file: Option<&Path>) -> Result<Arc<dyn Denoiser>> {
    match file {
        Some(f) => {
            // Name the path in I/O errors (the loader reports only the OS error).
            std::fs::File::open(f).map_err(|e| io_error_at(f, e))?;
            prior::load_model_file(name, f).map_err(|e| match e {
                Error::Io(e) => CliError::Lib(io_error_at(f, e)),
                Error::Model(m) => CliError::Msg(format!("{}: model error: {m}", f.display())),
                e => CliError::Lib(e),
            })
        }
        None => Ok(prior::load_model(name)?),
    }
}

#[cfg(feature = "eval")]
/// The images `diffc eval` measures in `dir` (its rule: these extensions, sorted by name);
/// only for progress, so an unreadable folder gives none here (eval reports it).
fn eval_images(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "png" | "jpg" | "jpeg" | "webp" | "ppm" | "bmp"
                )
            })
        })
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    v.sort();
    v
}

#[cfg(any(feature = "train", feature = "eval"))]
/// A folder that must exist and be readable (`--data`).
fn check_dir(dir: &Path) -> Result<()> {
    std::fs::read_dir(dir).map_err(|e| io_error_at(dir, e))?;
    Ok(())
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
    }
}

fn run(cli: Cli) -> Result<()> {
    let ui = Ui::new(cli.quiet, cli.verbose);
    let quiet = ui.quiet;
    match cli.command {
        Command::Compress {
            input,
            output,
            bpp,
            quality,
            steps,
            seed,
            model,
            model_file,
            grid_steps,
            lambda_start,
            lambda_stop,
            log2_k,
            chunk_bits,
        } => {
            let t0 = Instant::now();
            check_output(&output)?;
            let name = shown(&input, "stdin");
            let bytes = read_input(&input)?;
            if image_io::sniff(&bytes) == Some("diffc stream") {
                return Err(CliError::Msg(format!(
                    "{name}: this is a diffc stream, not an image; did you mean `diffc decompress`?"
                )));
            }
            let (image, notes) = Image::decode_noting(&bytes).map_err(|e| about(&name, e))?;
            drop(bytes);
            let target = match (bpp, steps, quality) {
                (_, Some(n), _) => RateTarget::Steps(n),
                (Some(b), None, _) => RateTarget::Bpp(b),
                (None, None, Some(q)) => RateTarget::Lambda(quality_lambda(q)),
                (None, None, None) => RateTarget::Bpp(0.5),
            };
            let opts = EncoderOptions {
                target,
                seed,
                lambda_start,
                lambda_stop,
                grid_steps,
                log2_k,
                chunk_bits,
                ..Default::default()
            };
            let grid = opts.validate()?;
            let model = pick_model(&model, model_file.as_deref())?;
            // Warnings come after the checks that can fail, before the work.
            for w in notes.warnings() {
                eprintln!("warning: {name}: {w}");
            }
            let last_lambda = grid.lambda(grid.steps as usize - 1);
            if let (Some(q), RateTarget::Lambda(l)) = (quality, target) {
                if l > last_lambda + 1e-9 {
                    eprintln!(
                        "warning: --quality {q} asks for lambda {l:.2}, beyond the grid's last lambda {last_lambda:.2}: the whole grid is encoded (raise --lambda-stop for more)"
                    );
                }
            }
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
            let enc = Encoder::new(model, opts)?;
            let encoded = enc.encode(&image, &Limits::default(), |s| {
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
            let encoded = encoded?;
            write_output(&output, &encoded.bytes)?;
            if !quiet {
                let kl: f64 = encoded.steps.iter().map(|s| s.kl_bits).sum();
                let spent = encoded.bytes.len() as f64 * 8.0;
                let last = encoded.steps.last().map_or(f64::NAN, |s| s.lambda);
                eprintln!(
                    "{}x{}: {} bytes, {:.4} bpp, {} step{} to lambda {last:.2}, spent/ideal {:.3}, {:.2} s",
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
            for w in rate_warnings(&encoded, target, &grid, (image.width, image.height)) {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        Command::Decompress {
            input,
            output,
            format,
            method,
            bytes,
            flow_steps,
            model,
            model_file,
            strict,
        } => {
            let t0 = Instant::now();
            // Everything that can be checked without decoding is checked first.
            let format = output_format(&output, format)?;
            check_output(&output)?;
            let name = shown(&input, "stdin");
            let mut data = read_input(&input)?;
            if let Some(n) = bytes {
                data.truncate(n);
            }
            check_stream(&name, &data)?;
            let choice = match (model, model_file) {
                (None, None) => ModelChoice::ByStreamId,
                (m, f) => ModelChoice::Fixed(pick_model(
                    m.as_deref().unwrap_or(prior::DEFAULT_MODEL),
                    f.as_deref(),
                )?),
            };
            let opts = ReconstructOptions {
                method: method.into(),
                flow_steps: flow_steps as usize,
                ..Default::default()
            };
            // Packet boundaries (no model needed), to push the stream packet by packet and show
            // progress; the result is the same as pushing it whole.
            let ends: Vec<usize> = diffc::inspect(&data, &Limits::default())
                .map(|ins| ins.packets.iter().map(|p| p.cumulative_bytes).collect())
                .unwrap_or_default();
            let bar = ui.bar("decompress", ends.len() as u64 + 1);
            let mut sd = StreamingDecoder::new(choice, Limits::default());
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
            let img = sd.render(&opts);
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            let img = img?;
            write_output(&output, &encode_image(&img, format, quiet)?)?;
            // Partial decoding is the point of a progressive format: a success, but said so.
            // A corrupt packet or trailing bytes are warnings, printed even with -q.
            let worrying = matches!(
                report.stop,
                Stop::Corrupt { .. } | Stop::TrailingBytes { .. }
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
                    shown(&output, "stdout"),
                    t0.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Inspect { input, json } => {
            let name = shown(&input, "stdin");
            let data = read_input(&input)?;
            check_stream(&name, &data)?;
            let ins = diffc::inspect(&data, &Limits::default()).map_err(|e| about(&name, e))?;
            let mut out = String::new();
            let h = &ins.header;
            let pixels = h.width as f64 * h.height as f64;
            if json {
                out.push_str(&format!(
                    "{{\"width\":{},\"height\":{},\"channels\":{},\"model_id\":\"{:016x}\",\"seed\":{},\"lambda_start\":{},\"lambda_stop\":{},\"grid_steps\":{},\"max_width\":{},\"total_bytes\":{},\"stop\":\"{}\",\"packets\":[",
                    h.width, h.height, h.channels, h.model_id, h.seed,
                    h.grid.lambda(0), h.grid.lambda(h.grid.steps as usize - 1), h.grid.steps,
                    h.max_width, ins.total_bytes, stop_text(&ins.stop).replace('"', "'")
                ));
                for (i, p) in ins.packets.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&format!(
                        "{{\"step\":{},\"lambda\":{},\"bytes\":{},\"cumulative_bpp\":{},\"ideal_kl_bits\":{},\"spent_bits\":{},\"index_bits\":{},\"chunks\":{},\"log2_k\":{}}}",
                        p.step, p.lambda, p.bytes, p.cumulative_bytes as f64 * 8.0 / pixels,
                        p.kl_bits, p.bytes * 8, p.index_bits, p.n_chunks, p.log2_k
                    ));
                }
                out.push_str("]}\n");
            } else {
                out.push_str(&format!(
                    "diffc stream v{}: {}x{}x{} model {:016x} seed {} grid lambda {:.3}..{:.3} in {} steps, max_width {}\n",
                    diffc::bitstream::VERSION, h.width, h.height, h.channels, h.model_id, h.seed,
                    h.grid.lambda(0), h.grid.lambda(h.grid.steps as usize - 1), h.grid.steps, h.max_width
                ));
                out.push_str(" step   lambda     bytes   cum_bpp   ideal_KL_bits   spent_bits  spent/ideal   chunks  log2K\n");
                let (mut kl, mut spent) = (0.0, 0u64);
                for p in &ins.packets {
                    kl += p.kl_bits;
                    spent += p.bytes as u64 * 8;
                    out.push_str(&format!(
                        "{:>5} {:>8.3} {:>9} {:>9.4} {:>15.0} {:>12} {:>12.3} {:>8} {:>6}\n",
                        p.step,
                        p.lambda,
                        p.bytes,
                        p.cumulative_bytes as f64 * 8.0 / pixels,
                        p.kl_bits,
                        p.bytes * 8,
                        p.bytes as f64 * 8.0 / p.kl_bits.max(1.0),
                        p.n_chunks,
                        p.log2_k
                    ));
                }
                out.push_str(&format!(
                    "total: {} bytes ({:.4} bpp), {} packets, ideal {:.0} bits, spent {} bits in packets (ratio {:.3}); {}\n",
                    ins.total_bytes, ins.total_bytes as f64 * 8.0 / pixels, ins.packets.len(), kl, spent,
                    spent as f64 / kl.max(1.0), stop_text(&ins.stop)
                ));
            }
            write_output("-", out.as_bytes())
        }
        #[cfg(feature = "eval")]
        Command::Eval {
            data,
            bpp,
            out,
            model,
            model_file,
            methods,
            limit,
            no_baselines,
            flow_steps,
            log2_k,
            grid_steps,
            chunk_bits,
            lambda_start,
            lambda_stop,
        } => {
            check_dir(&data)?;
            let csv = out.to_string_lossy().into_owned();
            let svg = out.with_extension("svg");
            check_output(&csv)?;
            check_output(&svg.to_string_lossy())?;
            // Progress: images x rates points; each point gives one row per method first.
            let mut names = eval_images(&data);
            if let Some(n) = limit {
                names.truncate(n);
            }
            let (n_rates, n_methods) = (bpp.len().max(1), methods.len().max(1));
            let rates = bpp.clone();
            let points = (names.len() * n_rates) as u64;
            let opts = diffc::eval::EvalOptions {
                data,
                bpps: bpp,
                model: pick_model(&model, model_file.as_deref())?,
                encoder: EncoderOptions {
                    log2_k,
                    grid_steps,
                    chunk_bits,
                    lambda_start,
                    lambda_stop,
                    ..Default::default()
                },
                methods: methods.into_iter().map(Method::from).collect(),
                flow_steps: flow_steps as usize,
                limit,
                baselines: !no_baselines,
            };
            let bar = ui.bar("eval", points);
            let point_name = |p: usize| match names.get(p / n_rates) {
                Some(image) => format!(
                    "{image} at {} bpp",
                    rates.get(p % n_rates).unwrap_or(&f64::NAN)
                ),
                None => "writing results".to_string(),
            };
            if let Some(b) = &bar {
                b.set_message(point_name(0));
            }
            let mut diffc_rows = 0usize;
            let rows = diffc::eval::run(&opts, |line| {
                // Rows with -v; a classical codec that could not be measured always.
                if ui.verbose || (!quiet && line.contains(": skipped: ")) {
                    say(bar.as_ref(), line);
                }
                if !line.contains(" diffc-") {
                    return;
                }
                diffc_rows += 1;
                if diffc_rows % n_methods != 0 {
                    return;
                }
                let done = diffc_rows / n_methods;
                match &bar {
                    Some(b) => {
                        b.set_position(done as u64);
                        b.set_message(point_name(done));
                    }
                    // Without a terminal: one line per image.
                    None if !quiet && !ui.verbose && done % n_rates == 0 => eprintln!(
                        "eval: {}/{} images measured ({})",
                        done / n_rates,
                        names.len(),
                        names.get(done / n_rates - 1).map_or("", String::as_str)
                    ),
                    None => {}
                }
            });
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            let rows = rows?;
            write_via_temp(&out, |p| diffc::eval::write_csv(&rows, p))?;
            write_via_temp(&svg, |p| diffc::eval::write_svg(&rows, p))?;
            println!(
                "{:<16} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}",
                "codec", "target", "bpp", "ideal", "spent/id", "PSNR", "MS-SSIM", "enc s", "dec s"
            );
            for (codec, target, v) in diffc::eval::summarize(&rows) {
                println!(
                    "{:<16} {:>7.3} {:>8.4} {:>9.4} {:>8.3} {:>8.2} {:>8.4} {:>8.2} {:>7.2}",
                    codec,
                    target,
                    v[0],
                    v[1],
                    v[0] / v[1],
                    v[2],
                    v[3],
                    v[4],
                    v[5]
                );
            }
            if !quiet {
                eprintln!("wrote {} and {}", out.display(), svg.display());
            }
            Ok(())
        }
        #[cfg(feature = "train")]
        Command::Train {
            data,
            out,
            resume,
            minutes,
            model,
            val,
            batch,
            crop,
            seed,
        } => {
            check_dir(&data)?;
            if let Some(v) = &val {
                check_dir(v)?;
            }
            if let Some(r) = &resume {
                std::fs::metadata(r).map_err(|e| io_error_at(r, e))?;
            }
            if ui.bars && std::env::var_os(TRAIN_CHILD_ENV).is_none() {
                return train_with_bar(&ui, minutes);
            }
            Ok(diffc::train::run(&diffc::train::TrainOptions {
                data,
                out,
                resume,
                minutes,
                steps: None,
                model,
                val,
                batch,
                crop,
                seed,
            })?)
        }
        Command::Progressive {
            input,
            outdir,
            format,
            method,
            every,
        } => {
            let format = OutputFormat::from(format);
            let ext = format.extension();
            let name = shown(&input, "stdin");
            std::fs::create_dir_all(&outdir).map_err(|e| io_error_at(&outdir, e))?;
            check_output(&outdir.join(format!("step_000.{ext}")).to_string_lossy())?;
            let data = read_input(&input)?;
            check_stream(&name, &data)?;
            let ins = diffc::inspect(&data, &Limits::default()).map_err(|e| about(&name, e))?;
            let opts = ReconstructOptions {
                method: method.into(),
                ..Default::default()
            };
            let mut sd =
                diffc::StreamingDecoder::new(diffc::ModelChoice::ByStreamId, Limits::default());
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
                            p.cumulative_bytes as f64 * 8.0
                                / (img.width as f64 * img.height as f64),
                            p.lambda
                        );
                    }
                }
            }
            Ok(())
        }
        #[cfg(feature = "train")]
        Command::Bench {
            json,
            repeats,
            no_train,
            no_graph,
            no_codec,
        } => {
            let spinner = ui.spinner("bench", "measuring (medians of repeated runs)");
            let report = diffc::bench::run(&diffc::bench::BenchOptions {
                repeats: repeats as usize,
                graph: !no_graph,
                train: !no_train,
                codec: !no_codec,
            });
            if let Some(s) = &spinner {
                s.finish_and_clear();
            }
            let report = report?;
            let text = if json {
                report.to_json() + "\n"
            } else {
                report.to_text()
            };
            write_output("-", text.as_bytes())
        }
        Command::Models => {
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
    }
}

#[cfg(feature = "eval")]
/// Write a file through `write` into a temporary name next to `path`, then rename it over
/// `path` (removing the temporary file on failure).
fn write_via_temp(path: &Path, write: impl FnOnce(&Path) -> diffc::Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.diffc-tmp-{}", std::process::id()));
    let r =
        write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_error_at(path, e)));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(r?)
}

fn stop_text(s: &Stop) -> String {
    match s {
        Stop::Complete => "complete".into(),
        Stop::Truncated { at_byte } => format!("partial: stream ends at byte {at_byte}"),
        Stop::Corrupt {
            step,
            at_byte,
            detail,
        } => format!("corrupt packet of step {step} at byte {at_byte}: {detail}"),
        Stop::TrailingBytes { count } => {
            format!("complete; {count} trailing bytes after the last packet")
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        #[cfg(feature = "train")]
        Err(CliError::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("diffc: error: {e}");
            ExitCode::FAILURE
        }
    }
}
