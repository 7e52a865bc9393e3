//! `diffc eval`.

use std::path::{Path, PathBuf};

use diffc::image_io::io_error_at;
use diffc::prior;
use diffc::{EncoderOptions, Method, ReconstructOptions};

use super::{
    check_dir, check_output, pick_model, say, write_output, write_via_temp, CliError, MethodArg,
    PickArg, Result, Ui,
};

/// The arguments of `diffc eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Folder of images.
    #[arg(long)]
    pub data: PathBuf,
    /// Comma-separated target rates (bits per pixel).
    #[arg(long, value_delimiter = ',', default_value = "0.125,0.25,0.5,1.0")]
    pub bpp: Vec<f64>,
    /// CSV output (the plot goes next to it as .svg).
    #[arg(long, default_value = "eval.csv")]
    pub out: PathBuf,
    /// Prior: an embedded model name.
    #[arg(long, default_value = prior::DEFAULT_MODEL)]
    pub model: String,
    /// Load the prior's weights from this safetensors file.
    #[arg(long)]
    pub model_file: Option<PathBuf>,
    /// Comma-separated reconstructions to measure.
    #[arg(long, value_delimiter = ',', default_value = "denoise,flow,ancestral")]
    pub methods: Vec<MethodArg>,
    /// Use only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip the classical codecs.
    #[arg(long)]
    pub no_baselines: bool,
    /// Denoiser evaluations for flow/ancestral.
    #[arg(long, default_value_t = ReconstructOptions::default().flow_steps as u16,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub flow_steps: u16,
    /// log2 of the candidates per chunk.
    #[arg(long, default_value_t = EncoderOptions::default().log2_k)]
    pub log2_k: u8,
    /// Steps in the log-SNR grid.
    #[arg(long, default_value_t = EncoderOptions::default().grid_steps)]
    pub grid_steps: u16,
    /// Target ideal bits per chunk.
    #[arg(long, default_value_t = EncoderOptions::default().chunk_bits)]
    pub chunk_bits: f64,
    /// How each chunk's candidate is chosen.
    #[arg(long, value_enum, default_value = "aligned")]
    pub pick: PickArg,
    /// First log-SNR of the grid.
    #[arg(long, default_value_t = EncoderOptions::default().lambda_start, allow_hyphen_values = true)]
    pub lambda_start: f64,
    /// Last log-SNR of the grid.
    #[arg(long, default_value_t = EncoderOptions::default().lambda_stop, allow_hyphen_values = true)]
    pub lambda_stop: f64,
    /// Measure the prior as a plain Gaussian denoiser instead, at these noise levels (8-bit
    /// units, comma-separated, e.g. 15,25,50); the CSV has image,sigma,lambda,noisy_psnr,psnr,
    /// seconds.
    #[arg(long, value_delimiter = ',')]
    pub denoise: Vec<f64>,
    /// Seed of the added noise (--denoise). An image's noise at a level also depends on the
    /// level's place in the list: `--denoise 25` draws what `--denoise 15,25,50` draws for 15,
    /// so compare runs made with the same list.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// With --denoise: also write each noisy image (DIR/NAME.sSIGMA.noisy.pfm, NAME the image's
    /// file name; a float map, unclipped, in [0, 1]) and its denoised result
    /// (DIR/NAME.sSIGMA.png), e.g. to run another denoiser on the same noise. Not the --data
    /// folder (the results would become inputs).
    #[arg(long, value_name = "DIR", requires = "denoise")]
    pub save_images: Option<PathBuf>,
}

/// Run `diffc eval`.
pub fn run(args: EvalArgs, ui: &Ui) -> Result<()> {
    let EvalArgs {
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
        pick,
        lambda_start,
        lambda_stop,
        denoise,
        seed,
        save_images,
    } = args;
    let quiet = ui.quiet;
    check_dir(&data)?;
    if !denoise.is_empty() {
        return run_denoise(
            &data,
            &denoise,
            &out,
            &model,
            model_file.as_deref(),
            limit,
            seed,
            save_images.as_deref(),
            ui,
        );
    }
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
            pick: pick.into(),
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
        if !diffc_rows.is_multiple_of(n_methods) {
            return;
        }
        let done = diffc_rows / n_methods;
        match &bar {
            Some(b) => {
                b.set_position(done as u64);
                b.set_message(point_name(done));
            }
            // Without a terminal: one line per image.
            None if !quiet && !ui.verbose && done.is_multiple_of(n_rates) => eprintln!(
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
    if quiet {
        return Ok(());
    }
    let mut table = format!(
        "{:<16} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}\n",
        "codec", "target", "bpp", "ideal", "spent/id", "PSNR", "MS-SSIM", "enc s", "dec s"
    );
    for (codec, target, v) in diffc::eval::summarize(&rows) {
        table += &format!(
            "{:<16} {:>7.3} {:>8.4} {:>9.4} {:>8.3} {:>8.2} {:>8.4} {:>8.2} {:>7.2}\n",
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
    write_output("-", table.as_bytes())?;
    eprintln!("wrote {} and {}", out.display(), svg.display());
    Ok(())
}

/// `diffc eval --denoise`: the prior as a Gaussian denoiser; a CSV and a table of means.
#[allow(clippy::too_many_arguments)]
fn run_denoise(
    data: &Path,
    sigmas: &[f64],
    out: &Path,
    model: &str,
    model_file: Option<&Path>,
    limit: Option<usize>,
    seed: u64,
    save_images: Option<&Path>,
    ui: &Ui,
) -> Result<()> {
    check_output(&out.to_string_lossy())?;
    if let Some(d) = save_images {
        std::fs::create_dir_all(d).map_err(|e| io_error_at(d, e))?;
        let canon = |p: &Path| std::fs::canonicalize(p).map_err(|e| io_error_at(p, e));
        if canon(d)? == canon(data)? {
            return Err(CliError::Msg(format!(
                "--save-images {}: not the --data folder (the results would become inputs)",
                d.display()
            )));
        }
    }
    let mut names = eval_images(data);
    if let Some(n) = limit {
        names.truncate(n);
    }
    let prior = pick_model(model, model_file)?;
    let bar = ui.bar("denoise", (names.len() * sigmas.len()) as u64);
    let rows = diffc::eval::denoise(data, prior.as_ref(), sigmas, limit, seed, |r, im| {
        if let Some(d) = save_images {
            // The whole file name: a.png and a.jpg must not overwrite each other's.
            let at = |ext: &str| d.join(format!("{}.s{}.{ext}", r.image, r.sigma));
            diffc::image_io::write_pfm(im.noisy, &at("noisy.pfm"))?;
            im.denoised.save(&at("png"))?;
        }
        let line = format!(
            "{} sigma {}: noisy {:.2} dB -> {:.2} dB ({:.2} s)",
            r.image, r.sigma, r.noisy_psnr, r.psnr, r.seconds
        );
        if ui.verbose {
            say(bar.as_ref(), &line);
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
        Ok(())
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let rows = rows?;
    write_via_temp(out, |p| diffc::eval::write_denoise_csv(&rows, p))?;
    if ui.quiet {
        return Ok(());
    }
    let mut table = format!(
        "{:>6} {:>8} {:>10} {:>10} {:>7}\n",
        "sigma", "lambda", "noisy dB", "PSNR dB", "images"
    );
    for (s, noisy, psnr, n) in diffc::eval::denoise_means(&rows) {
        table += &format!(
            "{:>6} {:>8.3} {:>10.2} {:>10.2} {:>7}\n",
            s,
            2.0 * (127.5 / s).ln(),
            noisy,
            psnr,
            n
        );
    }
    write_output("-", table.as_bytes())?;
    eprintln!("wrote {}", out.display());
    Ok(())
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
