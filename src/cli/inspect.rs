//! `diffc inspect`.

use diffc::Stop;

use super::limits::LimitArgs;
use super::{about, check_stream, read_input, shown, write_output, Result};

/// The arguments of `diffc inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// Input stream, or `-` for stdin.
    pub input: String,
    /// Machine-readable JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Run `diffc inspect`.
pub fn run(args: InspectArgs) -> Result<()> {
    let InspectArgs {
        input,
        json,
        limits,
    } = args;
    let limits = limits.limits();
    let name = shown(&input, "stdin");
    let data = read_input(&input)?;
    check_stream(&name, &data)?;
    let ins = diffc::inspect(&data, &limits).map_err(|e| about(&name, e))?;
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
        Stop::Limit {
            step,
            at_byte,
            what,
            value,
            max,
        } => format!(
            "step {step} at byte {at_byte} refused by a limit: {what} = {value}, maximum is {max}"
        ),
        Stop::DecoderFailed {
            step,
            at_byte,
            detail,
        } => format!("step {step} at byte {at_byte}: decoder failed: {detail}"),
    }
}
