//! `diffc train`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use diffc::image_io::io_error_at;
use diffc::prior;

use super::{check_dir, say, CliError, Result, Ui};

/// The arguments of `diffc train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Folder of training images (png/jpg/jpeg/webp, recursive).
    #[arg(long)]
    pub data: PathBuf,
    /// Output weights (safetensors); the checkpoint goes to MODEL.ckpt.safetensors and the
    /// validation log to MODEL.val.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Resume exactly from this checkpoint.
    #[arg(long, conflicts_with = "grow")]
    pub resume: Option<PathBuf>,
    /// Start `--model` from the checkpoint of a smaller network of the same shape (fewer layers
    /// per stack or channels per level): the grown network begins as the smaller one.
    #[arg(long)]
    pub grow: Option<PathBuf>,
    /// Wall-clock budget in minutes.
    #[arg(long, default_value_t = 60.0)]
    pub minutes: f64,
    /// Architecture name.
    #[arg(long, default_value = prior::DEFAULT_ARCH)]
    pub model: String,
    /// Held-out validation folder (never trained on).
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Crops per step.
    #[arg(long, default_value_t = diffc::train::TrainOptions::default().batch)]
    pub batch: usize,
    /// Crop side in pixels (multiple of 8).
    #[arg(long, default_value_t = diffc::train::TrainOptions::default().crop)]
    pub crop: usize,
    /// Seed of the run (ignored when resuming).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Products of the backward pass's GEMMs: `bf16` (f32 sums; CPUs with AVX-512 BF16 only,
    /// on AMX tiles where the CPU has them: 1.25x the steps per second on AMD Zen 4, 1.65x with
    /// AMX) or `f32`. Default: bf16 where the CPU has it. A resumed run continues bit-exactly
    /// only with the products it was trained with.
    #[arg(long, value_parser = parse_products)]
    pub products: Option<prior::bf16::Products>,
    /// Orientations of the training crops: `mirror` (as photographed or mirrored left-right) or
    /// `all` (the eight turns and mirror images). Not saved in the checkpoint: give it again
    /// when resuming.
    #[arg(long, default_value = "mirror", value_parser = parse_orientations)]
    pub orientations: diffc::data::Orientations,
}

fn parse_orientations(s: &str) -> std::result::Result<diffc::data::Orientations, String> {
    diffc::data::Orientations::parse(s).ok_or_else(|| format!("`{s}`: want mirror or all"))
}

fn parse_products(s: &str) -> std::result::Result<prior::bf16::Products, String> {
    prior::bf16::Products::parse(s).ok_or_else(|| format!("`{s}`: want f32 or bf16"))
}

/// Run `diffc train`.
pub fn run(args: TrainArgs, ui: &Ui) -> Result<()> {
    let TrainArgs {
        data,
        out,
        resume,
        grow,
        minutes,
        model,
        val,
        batch,
        crop,
        seed,
        products,
        orientations,
    } = args;
    check_dir(&data)?;
    if let Some(v) = &val {
        check_dir(v)?;
    }
    for r in resume.iter().chain(&grow) {
        std::fs::metadata(r).map_err(|e| io_error_at(r, e))?;
    }
    if ui.bars && std::env::var_os(TRAIN_CHILD_ENV).is_none() {
        return train_with_bar(ui, minutes);
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
        qat: None,
        lr_scale: 1.0,
        grow,
        lambda_band: None,
        orientations,
        products: products.unwrap_or_else(prior::bf16::Products::best),
    })?)
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
