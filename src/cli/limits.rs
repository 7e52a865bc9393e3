//! `--max-pixels`, `--max-memory`, `--max-pixel-passes`: the codec's [`Limits`] from the command
//! line, and which flag raises a limit an error names.

use diffc::{Error, Limits};

use super::CliError;

/// The limits `compress`, `decompress`, `inspect` and `progressive` work under; each flag
/// raises (or lowers) one of [`Limits::default`].
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct LimitArgs {
    /// Largest image accepted, in pixels (width x height) [default: 67108864, i.e. 2^26].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub max_pixels: Option<u64>,
    /// Most memory the codec may plan for its buffers and the network's working memory: bytes,
    /// or with a K, M, G or T suffix (powers of 1024) [default: 8G].
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, help_heading = "Limits")]
    pub max_memory: Option<u64>,
    /// Compute budget: the most network pixel-passes (packets x width x height) a stream may
    /// ask for [default: 64 x --max-pixels].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub max_pixel_passes: Option<u64>,
}

impl LimitArgs {
    /// [`Limits::default`] with the flags given applied. Raising `--max-pixels` alone keeps the
    /// default number of full-resolution passes of the largest image.
    pub fn limits(&self) -> Limits {
        let mut l = Limits::default();
        let passes_per_image = l.max_network_pixel_passes / l.max_pixels.max(1);
        if let Some(p) = self.max_pixels {
            l.max_pixels = p;
            l.max_network_pixel_passes = l
                .max_network_pixel_passes
                .max(p.saturating_mul(passes_per_image));
        }
        if let Some(m) = self.max_memory {
            l.max_alloc_bytes = m;
        }
        if let Some(p) = self.max_pixel_passes {
            l.max_network_pixel_passes = p;
        }
        l
    }
}

/// A byte count: digits, optionally followed by K, M, G or T (powers of 1024; `KiB`, `GB`
/// and lower case are read the same).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || {
        format!("`{s}` is not a byte count: a whole number, optionally followed by K, M, G or T (e.g. 4096, 512M, 16G)")
    };
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// The flag that raises the limit named `what` (an [`Error::Limits`] field), with a value that
/// would admit `value`; `None` for limits without a flag (steps, packet bytes, the format's own
/// 32-bit dimension bound).
pub fn raise_hint(what: &str, value: u64) -> Option<String> {
    if what.starts_with("pixels") {
        Some(format!("raise it with --max-pixels {value}"))
    } else if what.contains("allocation bytes") || what.contains("scoring bytes") {
        let g = value.div_ceil(1 << 30);
        let size = if g > 1 {
            format!("{g}G")
        } else {
            format!("{}M", value.div_ceil(1 << 20))
        };
        Some(format!("raise it with --max-memory {size}"))
    } else if what.starts_with("network pixel-passes") {
        Some(format!("raise it with --max-pixel-passes {value}"))
    } else {
        None
    }
}

impl CliError {
    /// A limit error, with the flag that raises it added to its message.
    pub fn with_limit_hint(self) -> CliError {
        let (name, e) = match &self {
            CliError::Lib(e) => (None, e),
            CliError::At(name, e) => (Some(name), e),
            _ => return self,
        };
        let Error::Limits { what, value, .. } = e else {
            return self;
        };
        let Some(hint) = raise_hint(what, *value) else {
            return self;
        };
        CliError::Msg(match name {
            Some(name) => format!("{name}: {e} ({hint})"),
            None => format!("{e} ({hint})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("16G"), Ok(16 << 30));
        assert_eq!(parse_bytes("16gib"), Ok(16 << 30));
        assert_eq!(parse_bytes("2T"), Ok(2 << 40));
        assert!(parse_bytes("1.5G").is_err());
        assert!(parse_bytes("G").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn flags_set_limits() {
        let d = Limits::default();
        assert_eq!(LimitArgs::default().limits(), d);
        let l = LimitArgs {
            max_pixels: Some(d.max_pixels * 4),
            ..Default::default()
        }
        .limits();
        assert_eq!(l.max_network_pixel_passes, d.max_network_pixel_passes * 4);
        let l = LimitArgs {
            max_pixels: Some(100),
            max_memory: Some(1 << 20),
            max_pixel_passes: Some(7),
        }
        .limits();
        assert_eq!(
            (l.max_pixels, l.max_alloc_bytes, l.max_network_pixel_passes),
            (100, 1 << 20, 7)
        );
    }

    #[test]
    fn hints_name_the_flag() {
        let e = CliError::At(
            "big.dfc".into(),
            Error::Limits {
                what: "allocation bytes",
                value: 15_936_000_000,
                max: 8 << 30,
            },
        );
        let text = e.with_limit_hint().to_string();
        assert!(text.starts_with("big.dfc: limit exceeded: allocation bytes"));
        assert!(text.ends_with("(raise it with --max-memory 15G)"), "{text}");
        assert_eq!(raise_hint("steps", 5000), None);
    }
}
