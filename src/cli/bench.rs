//! `diffc bench`.

use super::{write_output, Result, Ui};

/// The arguments of `diffc bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed repetitions of each measurement (the fastest is reported).
    #[arg(long, default_value_t = diffc::bench::BenchOptions::default().repeats as u16,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub repeats: u16,
    /// Skip the training step.
    #[arg(long)]
    pub no_train: bool,
    /// Skip candle's reference graph.
    #[arg(long)]
    pub no_graph: bool,
    /// Skip the codec's per-step work.
    #[arg(long)]
    pub no_codec: bool,
    /// Skip the integer network.
    #[arg(long)]
    pub no_integer: bool,
}

/// Run `diffc bench`.
pub fn run(args: BenchArgs, ui: &Ui) -> Result<()> {
    let BenchArgs {
        json,
        repeats,
        no_train,
        no_graph,
        no_codec,
        no_integer,
    } = args;
    let spinner = ui.spinner("bench", "measuring (best of repeated runs)");
    let report = diffc::bench::run(&diffc::bench::BenchOptions {
        repeats: repeats as usize,
        graph: !no_graph,
        integer: !no_integer,
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
