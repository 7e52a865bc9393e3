//! The `diffc` command-line tool: a thin layer over the library API. Each subcommand lives in
//! its own module under `src/cli/` (its arguments and one `run` function); `src/cli/mod.rs`
//! holds what they share (errors, progress bars, reading and writing files).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

use cli::{CliError, Result, Ui};

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

#[derive(Subcommand)]
enum Command {
    /// Compress an image (PNG, JPEG, WebP, BMP, PNM, TIFF; 8-bit gray or RGB) to a diffc stream,
    /// or with --out-dir, many images (files or folders) to DIR/STEM.dfc.
    #[command(
        alias = "encode",
        override_usage = "diffc compress [OPTIONS] <IN> <OUT>\n       diffc compress [OPTIONS] --out-dir <DIR> [-j N] <IN>..."
    )]
    Compress(cli::compress::CompressArgs),
    /// Decompress a diffc stream (complete or cut anywhere) to an image in the format OUT's
    /// extension names (.png .ppm .pgm .pam .pnm .bmp .tif .tiff .jpg .jpeg .webp) or --format.
    /// OUT is replaced atomically, never left partial; the report says whether the stream was
    /// complete, partial (cut) or corrupt. With --out-dir, many streams (files or folders of
    /// .dfc) to DIR/STEM.png (or --format's extension).
    #[command(
        alias = "decode",
        override_usage = "diffc decompress [OPTIONS] <IN> <OUT>\n       diffc decompress [OPTIONS] --out-dir <DIR> [-j N] <IN>..."
    )]
    Decompress(cli::decompress::DecompressArgs),
    /// Show a stream's header and per-packet table (no model needed).
    Inspect(cli::inspect::InspectArgs),
    /// Measure rate–distortion on a folder of images through the real bitstream (CSV + SVG
    /// plot), with JPEG/WebP/AVIF from Debian's encoders in the same run when installed.
    #[cfg(feature = "eval")]
    Eval(cli::eval::EvalArgs),
    /// Train the neural prior on a folder of photos (checkpoints every few minutes; resumable).
    #[cfg(feature = "train")]
    Train(cli::train::TrainArgs),
    /// Decode a stream packet by packet and write one image per prefix (a visual check of
    /// progressive decoding): OUTDIR/step_NNN.png (or the --format extension).
    Progressive(cli::progressive::ProgressiveArgs),
    /// List the models built into this binary.
    Models,
    /// Measure this machine: the network's forward pass (768x512), a training step and the
    /// codec's own per-step work (the best of --repeats runs; JSON with --json).
    #[cfg(feature = "train")]
    Bench(cli::bench::BenchArgs),
}

fn run(cli: Cli) -> Result<()> {
    let ui = Ui::new(cli.quiet, cli.verbose);
    match cli.command {
        Command::Compress(args) => cli::compress::run(args, &ui).map_err(CliError::with_limit_hint),
        Command::Decompress(args) => {
            cli::decompress::run(args, &ui).map_err(CliError::with_limit_hint)
        }
        Command::Inspect(args) => cli::inspect::run(args).map_err(CliError::with_limit_hint),
        #[cfg(feature = "eval")]
        Command::Eval(args) => cli::eval::run(args, &ui),
        #[cfg(feature = "train")]
        Command::Train(args) => cli::train::run(args, &ui),
        Command::Progressive(args) => {
            cli::progressive::run(args, &ui).map_err(CliError::with_limit_hint)
        }
        Command::Models => cli::models::run(),
        #[cfg(feature = "train")]
        Command::Bench(args) => cli::bench::run(args, &ui),
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
