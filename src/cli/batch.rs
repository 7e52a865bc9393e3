//! Batch mode of `compress` and `decompress`: several inputs (files, or folders of them) into
//! `--out-dir`, output names from the input stems, `-j` files at a time. A file that fails is
//! reported with its path and the others are still written; the run fails if any did.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use diffc::image_io::io_error_at;

use super::{check_output, CliError, Result, Ui};

/// `--out-dir` and `-j`, shared by `compress` and `decompress`.
#[derive(clap::Args, Clone, Debug)]
pub struct BatchArgs {
    /// Batch mode: every path is an input (a file, or a folder whose files of the input kind
    /// are taken, not recursively) and each output goes to DIR (created if missing), named
    /// after its input's stem.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Files coded at once in batch mode. Each file's work is already spread over every core,
    /// so more than 1 mainly helps with many small images (memory grows with N).
    #[arg(short, long, value_name = "N", default_value_t = 1, requires = "out_dir",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
}

/// The two positional forms: `IN OUT`, or with `--out-dir`, `IN...`.
pub enum Mode<'a> {
    /// One input, one output (either may be `-`).
    Single { input: &'a str, output: &'a str },
    /// Inputs (files and folders) into a folder.
    Batch {
        inputs: &'a [String],
        out_dir: &'a Path,
        jobs: usize,
    },
}

impl BatchArgs {
    /// Which form `paths` take with these flags (`command` names the subcommand in errors).
    pub fn mode<'a>(&'a self, command: &str, paths: &'a [String]) -> Result<Mode<'a>> {
        match (&self.out_dir, paths) {
            (None, [input, output]) => Ok(Mode::Single { input, output }),
            (None, _) => Err(CliError::Msg(format!(
                "{command} takes IN OUT, or any number of inputs with --out-dir DIR (got {} path{})",
                paths.len(),
                if paths.len() == 1 { "" } else { "s" }
            ))),
            (Some(dir), inputs) => Ok(Mode::Batch {
                inputs,
                out_dir: dir,
                jobs: self.jobs as usize,
            }),
        }
    }
}

/// One file of a batch.
pub struct Job {
    /// Input path.
    pub input: PathBuf,
    /// Output path: `out_dir/STEM.ext`.
    pub output: PathBuf,
}

/// The jobs for `inputs`: each file as given, each folder's files whose extension is one of
/// `folder_exts` (any case; hidden files skipped) in name order; outputs `out_dir/STEM.out_ext`.
/// Refused before any work: `-`, a missing input, an empty batch, two inputs with one output
/// name, an output folder that cannot be created or written.
pub fn plan(
    inputs: &[String],
    folder_exts: &[&str],
    out_dir: &Path,
    out_ext: &str,
) -> Result<Vec<Job>> {
    let mut files = Vec::new();
    for input in inputs {
        if input == "-" {
            return Err(CliError::Msg(
                "-: stdin cannot be one of several inputs (--out-dir); give file or folder paths"
                    .into(),
            ));
        }
        let path = PathBuf::from(input);
        let meta = std::fs::metadata(&path).map_err(|e| io_error_at(&path, e))?;
        if !meta.is_dir() {
            files.push(path);
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
            .map_err(|e| io_error_at(&path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let hidden = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                let ext = p
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase());
                !hidden && ext.is_some_and(|e| folder_exts.contains(&e.as_str())) && p.is_file()
            })
            .collect();
        if found.is_empty() {
            return Err(CliError::Msg(format!(
                "{input}: no input files in this folder (looked for .{})",
                folder_exts.join(" .")
            )));
        }
        found.sort();
        files.extend(found);
    }
    if files.is_empty() {
        return Err(CliError::Msg("no inputs given for --out-dir".into()));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| io_error_at(out_dir, e))?;
    let mut jobs = Vec::with_capacity(files.len());
    let mut seen: HashMap<PathBuf, PathBuf> = HashMap::new();
    for input in files {
        let stem = input.file_stem().unwrap_or(input.as_os_str());
        let mut name = stem.to_os_string();
        name.push(".");
        name.push(out_ext);
        let output = out_dir.join(name);
        if let Some(first) = seen.insert(output.clone(), input.clone()) {
            return Err(CliError::Msg(format!(
                "{} and {} would both be written to {} (rename one, or run them separately)",
                first.display(),
                input.display(),
                output.display()
            )));
        }
        jobs.push(Job { input, output });
    }
    check_output(&jobs[0].output.to_string_lossy())?;
    Ok(jobs)
}

/// Run `work` on every job, `parallel` at a time (in order with 1). Each failure is printed
/// when it happens, naming its input; the others go on. Ends with a summary line (unless
/// `--quiet`), and an error if any file failed.
pub fn run_all(
    jobs: &[Job],
    parallel: usize,
    ui: &Ui,
    verb: &str,
    work: impl Fn(&Job, &Ui) -> Result<()> + Sync,
) -> Result<()> {
    let t0 = Instant::now();
    // Bars of several files would tear each other: each file says one line instead.
    let file_ui = Ui { bars: false, ..*ui };
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(job) = jobs.get(i) else { break };
        if let Err(e) = work(job, &file_ui) {
            let input = job.input.to_string_lossy();
            let msg = e.with_limit_hint().to_string();
            // Errors name their path almost always; make sure of it.
            if msg.contains(input.as_ref()) {
                eprintln!("diffc: error: {msg}");
            } else {
                eprintln!("diffc: error: {input}: {msg}");
            }
            failed.lock().unwrap_or_else(|p| p.into_inner()).push(i);
        }
    };
    let parallel = parallel.clamp(1, jobs.len().max(1));
    if parallel == 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..parallel {
                s.spawn(worker);
            }
        });
    }
    let mut failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    failed.sort();
    if failed.is_empty() {
        if !ui.quiet {
            eprintln!(
                "{verb} {} file{} in {:.2} s",
                jobs.len(),
                if jobs.len() == 1 { "" } else { "s" },
                t0.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }
    let names: Vec<String> = failed
        .iter()
        .map(|&i| jobs[i].input.display().to_string())
        .collect();
    Err(CliError::Msg(format!(
        "{} of {} files failed ({}); the other {} {} written",
        failed.len(),
        jobs.len(),
        names.join(", "),
        jobs.len() - failed.len(),
        if jobs.len() - failed.len() == 1 {
            "was"
        } else {
            "were"
        }
    )))
}
