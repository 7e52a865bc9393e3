//! The container: a fixed header followed by one self-delimiting, checksummed packet per step.
//!
//! Any byte prefix of a stream is a valid stream: the decoder uses the header once it is
//! complete and every packet whose length, payload and CRC have fully arrived (`spec/format.md`).

use byteorder::{ByteOrder, LittleEndian as LE};
use bytes::{BufMut, BytesMut};

use crate::error::{Error, Result};
use crate::schedule::Grid;

/// First four bytes of every diffc stream.
pub const MAGIC: [u8; 4] = *b"DIFC";
/// Format version written by this library.
pub const VERSION: u8 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 48;

/// Decoder resource limits, checked before any allocation whose size comes from the stream and
/// before any work the stream asks for: memory when the header arrives, packet size and
/// network passes as each packet arrives. The encoder checks the same limits, so a stream it
/// writes under some limits decodes under them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest `width * height` accepted.
    pub max_pixels: u64,
    /// Largest number of packets (steps) accepted: the header's grid may not have more steps.
    pub max_packets: u64,
    /// Largest single packet payload in bytes.
    pub max_packet_bytes: u64,
    /// Largest memory the codec may allocate for its own buffers, in bytes (estimated as
    /// [`BYTES_PER_DIM`] per coded dimension, checked when the header arrives).
    pub max_alloc_bytes: u64,
    /// Compute budget: the most network pixel-passes a stream may ask for. Each packet counts
    /// `width * height` when it arrives, before the prior runs on it (one full-resolution
    /// evaluation of the denoiser per step, an upper bound of its work), so a stream of `n`
    /// packets costs `n * width * height`. The reconstruction's own passes (`flow_steps`) are
    /// a decoder option and not counted here.
    pub max_network_pixel_passes: u64,
}

/// The codec's own buffers per coded dimension (latent, sample, permutation, signs, x_hat,
/// staging copies): an upper estimate used by [`Limits::max_alloc_bytes`].
pub const BYTES_PER_DIM: u64 = 40;

impl Default for Limits {
    fn default() -> Self {
        const MAX_PIXELS: u64 = 1 << 26;
        Limits {
            max_pixels: MAX_PIXELS,
            // 30x the default grid's 33 steps. Finer grids buy nothing (a stream's rate is the
            // KL summed over its steps, about the same however finely the lambda range is cut,
            // while each packet adds ~10 bytes of framing), and the encoder refuses grids with
            // more steps than this, so it never writes a stream the default decoder refuses.
            max_packets: 1024,
            max_packet_bytes: 1 << 28,
            max_alloc_bytes: 8 << 30,
            // 64 full-resolution passes of the largest image `max_pixels` admits (about 170 of
            // a 24-megapixel photo): twice the default grid. Before this budget a 40 KB stream
            // of 9-byte packets could ask for 4096 passes.
            max_network_pixel_passes: 64 * MAX_PIXELS,
        }
    }
}

impl Limits {
    /// The compute budget check for a stream of `packets` packets of a `pixels`-pixel image.
    pub fn check_network_passes(&self, packets: u64, pixels: u64) -> Result<()> {
        let passes = packets.saturating_mul(pixels);
        if passes > self.max_network_pixel_passes {
            return Err(Error::Limits {
                what: "network pixel-passes (packets x width*height)",
                value: passes,
                max: self.max_network_pixel_passes,
            });
        }
        Ok(())
    }
}

/// The stream header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// 1 (grayscale) or 3 (RGB).
    pub channels: u8,
    /// Identifier of the denoiser the stream was coded with.
    pub model_id: u64,
    /// Seed of the shared randomness.
    pub seed: u64,
    /// Step grid.
    pub grid: Grid,
    /// Largest pool-row width used by the chunk layout.
    pub max_width: u16,
}

impl Header {
    /// Number of coded dimensions `width * height * channels`.
    pub fn dims(&self) -> usize {
        self.width as usize * self.height as usize * self.channels as usize
    }

    /// Largest payload a valid packet of this stream can have: at most one index per
    /// dimension, each at most 6 bytes of range-coder output, plus fixed fields.
    pub fn max_packet_payload(&self) -> u64 {
        (self.dims() as u64).saturating_mul(6).saturating_add(64)
    }

    /// Serialize to the 48 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.channels;
        LE::write_u16(&mut b[6..8], 0);
        LE::write_u32(&mut b[8..12], self.width);
        LE::write_u32(&mut b[12..16], self.height);
        LE::write_u64(&mut b[16..24], self.model_id);
        LE::write_u64(&mut b[24..32], self.seed);
        LE::write_i32(&mut b[32..36], self.grid.start_q);
        LE::write_i32(&mut b[36..40], self.grid.stop_q);
        LE::write_u16(&mut b[40..42], self.grid.steps);
        LE::write_u16(&mut b[42..44], self.max_width);
        let crc = crc32(&b[0..44]);
        LE::write_u32(&mut b[44..48], crc);
        b
    }

    /// Parse and validate a header from the start of `bytes`.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Header> {
        let n = bytes.len().min(4);
        if bytes[..n] != MAGIC[..n] {
            return Err(Error::format("magic", "not a diffc stream"));
        }
        // The version comes before the checksum: another version may lay out its header
        // differently, and saying "unsupported version" is more useful than "bad checksum".
        if let Some(&v) = bytes.get(4) {
            if v != VERSION {
                return Err(Error::format(
                    "version",
                    format!("{v} (this decoder reads version {VERSION})"),
                ));
            }
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated { what: "header" });
        }
        let b = &bytes[..HEADER_LEN];
        let crc = LE::read_u32(&b[44..48]);
        if crc != crc32(&b[0..44]) {
            return Err(Error::format("header_crc", "header checksum mismatch"));
        }
        let flags = LE::read_u16(&b[6..8]);
        if flags != 0 {
            return Err(Error::format("flags", format!("{flags:#06x}, must be 0")));
        }
        let h = Header {
            channels: b[5],
            width: LE::read_u32(&b[8..12]),
            height: LE::read_u32(&b[12..16]),
            model_id: LE::read_u64(&b[16..24]),
            seed: LE::read_u64(&b[24..32]),
            grid: Grid {
                start_q: LE::read_i32(&b[32..36]),
                stop_q: LE::read_i32(&b[36..40]),
                steps: LE::read_u16(&b[40..42]),
            },
            max_width: LE::read_u16(&b[42..44]),
        };
        h.validate(limits)?;
        Ok(h)
    }

    /// Check every field against the format and the limits.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::format(
                "channels",
                format!("{}, must be 1 or 3", self.channels),
            ));
        }
        if self.width == 0 || self.height == 0 {
            return Err(Error::format(
                "width/height",
                format!("{}x{} is empty", self.width, self.height),
            ));
        }
        let pixels = self.width as u64 * self.height as u64;
        if pixels > limits.max_pixels {
            return Err(Error::Limits {
                what: "pixels (width*height)",
                value: pixels,
                max: limits.max_pixels,
            });
        }
        // Saturating: callers may raise the limits to u64::MAX; an overflow must still refuse.
        let dims = pixels.saturating_mul(self.channels as u64);
        let alloc = dims.saturating_mul(BYTES_PER_DIM);
        if alloc > limits.max_alloc_bytes {
            return Err(Error::Limits {
                what: "allocation bytes",
                value: alloc,
                max: limits.max_alloc_bytes,
            });
        }
        if dims > u32::MAX as u64 {
            // Dimension indices (the per-step permutation) are 32-bit in the format.
            return Err(Error::Limits {
                what: "coded dimensions (width*height*channels)",
                value: dims,
                max: u32::MAX as u64,
            });
        }
        if self.grid.steps as u64 > limits.max_packets {
            return Err(Error::Limits {
                what: "steps",
                value: self.grid.steps as u64,
                max: limits.max_packets,
            });
        }
        self.grid.validate()?;
        if self.max_width == 0 || self.max_width as usize > crate::rcc::MAX_WIDTH_LIMIT {
            return Err(Error::format(
                "max_width",
                format!(
                    "{} outside 1..={}",
                    self.max_width,
                    crate::rcc::MAX_WIDTH_LIMIT
                ),
            ));
        }
        Ok(())
    }
}

/// Packet flag: the packet carries its own target lambda and is the last one of the stream.
pub const FLAG_FINAL_LAMBDA: u8 = 1;

/// One step's packet payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// When set, this step goes to this lambda (1/256 units) instead of the grid's, and the
    /// stream ends with it (used to land exactly on a target rate).
    pub final_lambda_q: Option<i32>,
    /// Number of chunks (= coded indices) of the step.
    pub n_chunks: u64,
    /// `log2` of the candidate count.
    pub log2_k: u8,
    /// The encoder's ideal cost of the step, `KL(q||p)` in whole bits (informational).
    pub kl_bits: u64,
    /// Range-coder words (little-endian u32 on the wire).
    pub words: Vec<u32>,
}

impl Packet {
    /// Append the framed packet (`varint len | payload | crc32`) to `out`.
    pub fn write(&self, out: &mut BytesMut) {
        let mut payload = BytesMut::new();
        payload.put_u8(if self.final_lambda_q.is_some() {
            FLAG_FINAL_LAMBDA
        } else {
            0
        });
        put_varint(&mut payload, self.n_chunks);
        payload.put_u8(self.log2_k);
        put_varint(&mut payload, self.kl_bits);
        if let Some(l) = self.final_lambda_q {
            // zigzag
            put_varint(&mut payload, ((l << 1) ^ (l >> 31)) as u32 as u64);
        }
        for &w in &self.words {
            payload.put_u32_le(w);
        }
        let start = out.len();
        put_varint(out, payload.len() as u64);
        out.extend_from_slice(&payload);
        let crc = crc32(&out[start..]);
        out.put_u32_le(crc);
    }

    /// Read one framed packet from the start of `bytes`, returning it and its framed length.
    ///
    /// `Truncated` means more bytes may complete it; `Format` means it is corrupt.
    pub fn read(bytes: &[u8], limits: &Limits, max_payload: u64) -> Result<(Packet, usize)> {
        let (len, n) = get_varint(bytes, "packet length")?;
        if len > max_payload {
            return Err(Error::format(
                "packet length",
                format!("{len} bytes exceeds the largest possible packet ({max_payload}) for this image"),
            ));
        }
        if len > limits.max_packet_bytes {
            return Err(Error::Limits {
                what: "packet bytes",
                value: len,
                max: limits.max_packet_bytes,
            });
        }
        let len = len as usize;
        let total = n + len + 4;
        if bytes.len() < total {
            return Err(Error::Truncated { what: "packet" });
        }
        let crc = LE::read_u32(&bytes[n + len..total]);
        if crc != crc32(&bytes[..n + len]) {
            return Err(Error::format("packet_crc", "packet checksum mismatch"));
        }
        let p = &bytes[n..n + len];
        let flags = *p
            .first()
            .ok_or_else(|| Error::format("flags", "empty packet"))?;
        if flags & !FLAG_FINAL_LAMBDA != 0 {
            return Err(Error::format(
                "flags",
                format!("{flags:#04x} has unknown bits"),
            ));
        }
        let mut pos = 1;
        let (n_chunks, a) = get_varint(&p[pos..], "n_chunks").map_err(truncated_is_corrupt)?;
        pos += a;
        let log2_k = *p
            .get(pos)
            .ok_or_else(|| Error::format("log2_k", "missing"))?;
        pos += 1;
        let (kl_bits, b) = get_varint(&p[pos..], "kl_bits").map_err(truncated_is_corrupt)?;
        pos += b;
        let final_lambda_q = if flags & FLAG_FINAL_LAMBDA != 0 {
            let (z, c) = get_varint(&p[pos..], "final_lambda").map_err(truncated_is_corrupt)?;
            pos += c;
            if z > u32::MAX as u64 {
                return Err(Error::format("final_lambda", "does not fit 32 bits"));
            }
            let z = z as u32;
            Some(((z >> 1) as i32) ^ -((z & 1) as i32))
        } else {
            None
        };
        let rest = &p[pos..];
        if !rest.len().is_multiple_of(4) {
            return Err(Error::format(
                "packet payload",
                format!("{} coder bytes is not a multiple of 4", rest.len()),
            ));
        }
        let words = rest.chunks_exact(4).map(LE::read_u32).collect();
        Ok((
            Packet {
                final_lambda_q,
                n_chunks,
                log2_k,
                kl_bits,
                words,
            },
            total,
        ))
    }
}

fn truncated_is_corrupt(e: Error) -> Error {
    match e {
        Error::Truncated { what } => Error::format(what, "runs past the end of its packet"),
        e => e,
    }
}

/// LEB128 unsigned varint.
pub(crate) fn put_varint(out: &mut BytesMut, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// Read a LEB128 varint (at most 10 bytes, no overflow, canonical not required).
pub(crate) fn get_varint(bytes: &[u8], what: &'static str) -> Result<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate() {
        if i == 9 && b > 1 {
            return Err(Error::format(what, "varint overflows 64 bits"));
        }
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
        if i == 9 {
            return Err(Error::format(what, "varint longer than 10 bytes"));
        }
    }
    Err(Error::Truncated { what })
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            width: 33,
            height: 7,
            channels: 3,
            model_id: 0x1234,
            seed: 99,
            grid: Grid::new(-6.0, 12.0, 37).unwrap(),
            max_width: 256,
        }
    }

    #[test]
    fn crc32_known_answer() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn header_round_trip_and_truncation() {
        let h = header();
        let b = h.to_bytes();
        assert_eq!(Header::parse(&b, &Limits::default()).unwrap(), h);
        for n in 0..HEADER_LEN {
            assert!(matches!(
                Header::parse(&b[..n], &Limits::default()),
                Err(Error::Truncated { .. })
            ));
        }
        let mut bad = b;
        bad[9] ^= 1;
        assert!(matches!(
            Header::parse(&bad, &Limits::default()),
            Err(Error::Format { .. })
        ));
    }

    #[test]
    fn huge_header_is_refused_by_limits() {
        let mut h = header();
        h.width = 65535;
        h.height = 65535;
        assert!(matches!(
            Header::parse(&h.to_bytes(), &Limits::default()),
            Err(Error::Limits { .. })
        ));
    }

    #[test]
    fn packet_round_trip_and_every_truncation() {
        for final_lambda_q in [
            None,
            Some(-1000),
            Some(2560),
            Some(i32::MIN),
            Some(i32::MAX),
        ] {
            let p = Packet {
                final_lambda_q,
                n_chunks: 300,
                log2_k: 12,
                kl_bits: 2400,
                words: vec![1, 2, 0xdead_beef],
            };
            let mut out = BytesMut::new();
            p.write(&mut out);
            let (q, n) = Packet::read(&out, &Limits::default(), 1 << 20).unwrap();
            assert_eq!((q, n), (p, out.len()));
            for cut in 0..out.len() {
                assert!(matches!(
                    Packet::read(&out[..cut], &Limits::default(), 1 << 20),
                    Err(Error::Truncated { .. })
                ));
            }
        }
    }

    #[test]
    fn varint_edge_cases() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(get_varint(&b, "v").unwrap(), (v, b.len()));
        }
        assert!(get_varint(&[0xff; 11], "v").is_err());
        assert!(matches!(
            get_varint(&[0x80], "v"),
            Err(Error::Truncated { .. })
        ));
    }
}
