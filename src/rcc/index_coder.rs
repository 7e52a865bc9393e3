//! Entropy coding of the per-chunk candidate indices of one step.
//!
//! Index `k` (0-based, `k < K = 2^log2_k`) is written as `n = k + 1` split into a *bucket*
//! `b = floor(log2 n)` and `b` raw low bits `n - 2^b`. Truncated PFR makes small indices
//! likely (roughly Zipf, `P(n) ∝ n^-(1+1/I)`), which is nearly uniform over buckets; the
//! aligned pick makes indices near uniform, i.e. buckets weighted `2^b`; an adaptive
//! integer-count model learns the real bucket distribution of the step. Everything is
//! integer arithmetic, so encoder and decoder agree exactly (`spec/index-coding.md`).

use std::num::NonZeroU32;

use constriction::stream::model::{DecoderModel, EncoderModel, EntropyModel, UniformModel};
use constriction::stream::queue::{DefaultRangeDecoder, DefaultRangeEncoder};
use constriction::stream::{Decode, Encode};

use crate::error::{Error, Result};

const PRECISION: usize = 24;
const TOTAL: u64 = 1 << PRECISION;
/// Initial count of every bucket.
pub const INIT_COUNT: u32 = 2;
/// Count added to the coded bucket after each symbol.
pub const INCREMENT: u32 = 32;
/// When the sum of counts exceeds this, every count is halved (rounding up).
pub const RESCALE_LIMIT: u32 = 1 << 16;
/// Largest supported `log2_k`.
pub const MAX_LOG2_K: u8 = 20;

/// Adaptive bucket model: `log2_k + 1` buckets with integer counts.
struct AdaptiveBuckets {
    counts: Vec<u32>,
    cum: Vec<u32>,
}

impl AdaptiveBuckets {
    fn new(log2_k: u8) -> Self {
        let n = log2_k as usize + 1;
        let mut m = AdaptiveBuckets {
            counts: vec![INIT_COUNT; n],
            cum: vec![0; n + 1],
        };
        m.quantize();
        m
    }

    /// `p_i = 1 + floor(c_i * (2^24 - n) / sum c)`; the remainder goes to the first largest count.
    fn quantize(&mut self) {
        let n = self.counts.len() as u64;
        let total: u64 = self.counts.iter().map(|&c| c as u64).sum();
        let free = TOTAL - n;
        let mut sum = 0u64;
        let mut argmax = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > self.counts[argmax] {
                argmax = i;
            }
            let p = 1 + (c as u64 * free) / total;
            self.cum[i + 1] = p as u32;
            sum += p;
        }
        self.cum[argmax + 1] += (TOTAL - sum) as u32;
        for i in 0..self.counts.len() {
            self.cum[i + 1] += self.cum[i];
        }
    }

    fn update(&mut self, bucket: usize) {
        self.counts[bucket] += INCREMENT;
        let total: u32 = self.counts.iter().sum();
        if total > RESCALE_LIMIT {
            for c in &mut self.counts {
                *c = c.div_ceil(2);
            }
        }
        self.quantize();
    }
}

impl EntropyModel<PRECISION> for &AdaptiveBuckets {
    type Symbol = usize;
    type Probability = u32;
}

impl EncoderModel<PRECISION> for &AdaptiveBuckets {
    fn left_cumulative_and_probability(
        &self,
        symbol: impl std::borrow::Borrow<usize>,
    ) -> Option<(u32, NonZeroU32)> {
        let s = *symbol.borrow();
        let left = *self.cum.get(s)?;
        let right = *self.cum.get(s + 1)?;
        Some((left, NonZeroU32::new(right - left)?))
    }
}

impl DecoderModel<PRECISION> for &AdaptiveBuckets {
    fn quantile_function(&self, quantile: u32) -> (usize, u32, NonZeroU32) {
        // cum[0] = 0 <= quantile < 2^24 = cum[n]; every bucket has probability >= 1.
        let n = self.cum.len() - 1;
        let mut s = 0;
        while s + 1 < n && self.cum[s + 1] <= quantile {
            s += 1;
        }
        let left = self.cum[s];
        let p = self.cum[s + 1] - left;
        (s, left, NonZeroU32::new(p).unwrap_or(NonZeroU32::MIN))
    }
}

fn bucket_of(n: u32) -> usize {
    (31 - n.leading_zeros()) as usize
}

/// Encode the indices (each `< 2^log2_k`) of one step into range-coder words.
pub fn encode_indices(indices: &[u32], log2_k: u8) -> Result<Vec<u32>> {
    if log2_k == 0 || log2_k > MAX_LOG2_K {
        return Err(Error::InvalidArgument(format!(
            "log2_k = {log2_k} outside 1..={MAX_LOG2_K}"
        )));
    }
    let k_max = 1u32 << log2_k;
    let mut model = AdaptiveBuckets::new(log2_k);
    let mut enc = DefaultRangeEncoder::new();
    fn internal(e: impl std::fmt::Debug) -> Error {
        Error::InvalidArgument(format!("range coder: {e:?}"))
    }
    for &k in indices {
        if k >= k_max {
            return Err(Error::InvalidArgument(format!("index {k} >= K = {k_max}")));
        }
        let n = k + 1;
        let b = bucket_of(n);
        enc.encode_symbol(b, &model).map_err(internal)?;
        if b > 0 {
            let raw = (n - (1 << b)) as usize;
            enc.encode_symbol(raw, UniformModel::<u32, PRECISION>::new(1usize << b))
                .map_err(internal)?;
        }
        model.update(b);
    }
    enc.into_compressed().map_err(internal)
}

/// Decode `count` indices from the words of one packet.
pub fn decode_indices(words: Vec<u32>, count: usize, log2_k: u8) -> Result<Vec<u32>> {
    if log2_k == 0 || log2_k > MAX_LOG2_K {
        return Err(Error::format(
            "log2_k",
            format!("{log2_k} outside 1..={MAX_LOG2_K}"),
        ));
    }
    let k_max = 1u32 << log2_k;
    let mut model = AdaptiveBuckets::new(log2_k);
    let mut dec = DefaultRangeDecoder::from_compressed(words)
        .map_err(|_| Error::format("indices", "range coder could not start"))?;
    let mut out = Vec::with_capacity(count);
    let bad = |e| Error::format("indices", format!("range decoder: {e:?}"));
    for _ in 0..count {
        let b = dec.decode_symbol(&model).map_err(bad)?;
        let mut n = 1u32 << b;
        if b > 0 {
            let raw = dec
                .decode_symbol(UniformModel::<u32, PRECISION>::new(1usize << b))
                .map_err(bad)?;
            n += raw as u32;
        }
        if n > k_max {
            return Err(Error::format(
                "indices",
                format!("decoded index {} >= K = {k_max}", n - 1),
            ));
        }
        out.push(n - 1);
        model.update(b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prng::{Domain, Philox};

    fn zipf_like(n: usize, log2_k: u8) -> Vec<u32> {
        let g = Philox::new(9);
        (0..n)
            .map(|i| {
                let w = g.block(Domain::Arrival, 0, i as u64);
                // n ~ 2^(U * log2_k): log-uniform, like Zipf with exponent ~1
                let e = (w[0] as f64 / 4294967296.0) * log2_k as f64;
                ((2f64.powf(e)) as u32)
                    .saturating_sub(1)
                    .min((1 << log2_k) - 1)
            })
            .collect()
    }

    #[test]
    fn round_trip_and_rate_close_to_entropy() {
        for log2_k in [1u8, 4, 12, 16] {
            let idx = zipf_like(5000, log2_k);
            let words = encode_indices(&idx, log2_k).unwrap();
            let back = decode_indices(words.clone(), idx.len(), log2_k).unwrap();
            assert_eq!(back, idx);
            if log2_k == 12 {
                // log-uniform over 12 buckets: ~ log2(12) + mean bucket bits ≈ 3.6 + 5.5
                let bits = words.len() as f64 * 32.0 / idx.len() as f64;
                assert!(bits < 9.6, "bits per index {bits}");
            }
        }
    }

    #[test]
    fn rejects_out_of_range_indices() {
        assert!(encode_indices(&[16], 4).is_err());
        assert!(encode_indices(&[0], 0).is_err());
    }

    #[test]
    fn garbage_words_never_panic() {
        let g = Philox::new(1);
        for t in 0..200u64 {
            let w: Vec<u32> = (0..(t % 7))
                .map(|i| g.block(Domain::Sign, 1, t * 8 + i)[0])
                .collect();
            let _ = decode_indices(w, 50, 12);
        }
    }
}
