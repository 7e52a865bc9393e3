//! The command line's shared parts: errors, terminal output (progress bars, `--quiet`/`-v`),
//! reading inputs and writing outputs, and the arguments several subcommands take.

use std::fmt;
use std::io::IsTerminal;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use diffc::image_io::{self, io_error_at, OutputFormat, OUTPUT_EXTENSIONS};
use diffc::prior::{self, Denoiser};
use diffc::{rcc, Error, Image, Method};

pub mod batch;
#[cfg(feature = "train")]
pub mod bench;
pub mod compress;
pub mod decompress;
#[cfg(feature = "eval")]
pub mod eval;
pub mod inspect;
pub mod limits;
pub mod models;
pub mod progressive;
#[cfg(feature = "train")]
pub mod train;

/// `--method`: the reconstruction from the last received step.
#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
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

/// `--pick`: how the encoder chooses each chunk's candidate ([`rcc::Pick`]).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PickArg {
    /// The candidate most aligned with the posterior mean (the lowest distortion per bit).
    Aligned,
    /// A sample of the posterior (Poisson functional representation), as DiffC assumes.
    Sample,
}

impl From<PickArg> for rcc::Pick {
    fn from(p: PickArg) -> rcc::Pick {
        match p {
            PickArg::Aligned => rcc::Pick::Aligned,
            PickArg::Sample => rcc::Pick::Sample,
        }
    }
}

/// `--format`: the image format to write, overriding the output's extension.
#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
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

/// A command-line failure: a library error, or a message of the CLI's own (already complete,
/// usually starting with the path it is about).
pub enum CliError {
    Lib(Error),
    /// A library error about the named input.
    At(String, Error),
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
            CliError::At(name, e) => write!(f, "{name}: {e}"),
            CliError::Msg(m) => f.write_str(m),
            #[cfg(feature = "train")]
            CliError::Exit(code) => write!(f, "exit code {code}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

/// How much to say on stderr, and whether progress bars can be drawn there.
#[derive(Clone, Copy)]
pub struct Ui {
    quiet: bool,
    verbose: bool,
    /// stderr is a terminal and not --quiet: draw bars (otherwise at most a few plain lines).
    bars: bool,
}

impl Ui {
    pub fn new(quiet: bool, verbose: bool) -> Ui {
        Ui {
            quiet,
            verbose,
            bars: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A bar of `len` units on stderr, or `None` when bars are not drawn.
    pub fn bar(&self, prefix: &'static str, len: u64) -> Option<ProgressBar> {
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
    pub fn spinner(&self, prefix: &'static str, msg: &'static str) -> Option<ProgressBar> {
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

/// A line on stderr: above the bar when one is drawn.
pub fn say(bar: Option<&ProgressBar>, line: &str) {
    match bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    }
}

/// How a path is named in messages (`-` is stdin or stdout).
pub fn shown(path: &str, stdio: &str) -> String {
    if path == "-" {
        stdio.into()
    } else {
        path.into()
    }
}

pub fn read_input(path: &str) -> Result<Vec<u8>> {
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
/// folder, fsync, rename; nothing partial is ever left at `path`). A reader that closes the
/// pipe early (`diffc models | head -1`) wants no more: that ends the write quietly.
pub fn write_output(path: &str, bytes: &[u8]) -> Result<()> {
    if path == "-" {
        let mut out = std::io::stdout().lock();
        match out.write_all(bytes).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(io_error_at(Path::new("stdout"), e))?
            }
            _ => {}
        }
        Ok(())
    } else {
        Ok(image_io::write_atomic(Path::new(path), bytes)?)
    }
}

/// Before any work: the output can be created (its folder exists and is writable, it is not a
/// folder or a read-only file).
pub fn check_output(path: &str) -> Result<()> {
    if path != "-" {
        image_io::check_writable(Path::new(path))?;
    }
    Ok(())
}

/// The image format to write to `path`: `--format`, else the extension (PNG for stdout and
/// for a device or pipe without one, e.g. `/dev/null`).
pub fn output_format(path: &str, format: Option<FormatArg>) -> Result<OutputFormat> {
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
pub fn encode_image(img: &Image, format: OutputFormat, quiet: bool) -> Result<Vec<u8>> {
    if format == OutputFormat::Pgm && img.channels == 3 && !quiet {
        eprintln!("warning: PGM is grayscale: the RGB image is converted to luma (BT.709 weights)");
    }
    Ok(img.encode_as(format)?)
}

/// Refuse, before parsing, an input that is not a diffc stream — naming what it is when its
/// magic bytes say (a PNG given to `decompress`, say).
pub fn check_stream(name: &str, data: &[u8]) -> Result<()> {
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
pub fn about(name: &str, e: Error) -> CliError {
    match e {
        e @ Error::Io(_) => CliError::Lib(e),
        e => CliError::At(name.to_string(), e),
    }
}

pub fn pick_model(name: &str, file: Option<&Path>) -> Result<Arc<dyn Denoiser>> {
    match file {
        Some(f) => {
            std::fs::File::open(f).map_err(|e| io_error_at(f, e))?;
            // The loader's errors name the file.
            Ok(prior::load_model_file(name, f)?)
        }
        None => Ok(prior::load_model(name)?),
    }
}

#[cfg(any(feature = "train", feature = "eval"))]
/// A folder that must exist and be readable (`--data`).
pub fn check_dir(dir: &Path) -> Result<()> {
    std::fs::read_dir(dir).map_err(|e| io_error_at(dir, e))?;
    Ok(())
}

#[cfg(feature = "eval")]
/// Write a file through `write` into a temporary name next to `path`, then rename it over
/// `path` (removing the temporary file on failure).
pub fn write_via_temp(path: &Path, write: impl FnOnce(&Path) -> diffc::Result<()>) -> Result<()> {
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
