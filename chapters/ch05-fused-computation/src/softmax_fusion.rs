//! Scale + mask + softmax over a (batch, heads, Nq, Nk) score tensor, unfused and fused.
//!
//! Between the two GEMMs of attention sit three element-wise steps:
//!
//! `P = softmax(S · scale + M)`, with `M_ij = 0` where query i may see key j and `−∞` elsewhere.
//!
//! Written as three framework operations — multiply, add a mask tensor, softmax — each one
//! reads a full (B, H, Nq, Nk) tensor from memory and writes another. None of them does more
//! than a few flops per element, so on a GPU each is bound by memory bandwidth, and the chain
//! costs about 7 tensor-sized transfers ([`SoftmaxPipeline::bytes_moved`]) where 2 would do.
//! The fused version reads each row of scores once, keeps it on chip (registers or shared
//! memory on a GPU; here a row of the output, which stays in the CPU's cache), and writes the
//! probabilities once.
//!
//! Fusion also removes the mask tensor. Every mask used here makes the visible keys of one
//! query a *contiguous interval* `[lo, hi)` computed from indices ([`MaskSpec::visible_keys`]):
//!
//! - **causal**, bottom-right aligned as in chapter 2 ([`SdpaMask::causal_end`]): query `i` sits
//!   at position `p = i + Nk − Nq` of the key sequence and sees keys `j ≤ p`, so `hi ≤ p + 1`;
//! - **key padding** from per-batch valid lengths: batch entry `b` has `key_lengths[b]` real keys
//!   followed by padding, so `hi ≤ key_lengths[b]`;
//! - **sliding window** `W` (with causal): key `j` is visible iff `p − W < j ≤ p`, so
//!   `lo = max(0, p − W + 1)`: a query sees itself and the `W − 1` keys before it, `W` keys in
//!   all. This is the convention of Mistral as Hugging Face transformers implements it
//!   (`kv_idx > q_idx − sliding_window`) and FlashAttention's `window_size = (W − 1, 0)`; some
//!   code bases count the window without the query itself (`p − W ≤ j`), one key more — check
//!   which one a checkpoint was trained with.
//!
//! A query whose interval is empty (every key padded, or `Nq > Nk` under the causal rule) has
//! no weights to normalise; both versions give it a row of **zeros**, never NaN (the formula
//! would give 0/0). Zeros are what FlashAttention returns. Hugging Face's eager path has filled
//! masked scores with `torch.finfo(dtype).min`, the most negative finite value, instead of
//! −∞, which turns such a row into uniform weights `1/Nk`: a third answer to the same
//! question, and one reason to say which convention a kernel follows.
//!
//! The two versions are equal bit for bit: they do the same f32 operations on the visible
//! entries in the same order, and a masked entry contributes `exp(−∞) = 0` exactly to the sum
//! of the unfused softmax (and `x + 0 = x` in the mask pass, up to the sign of a zero, which
//! the softmax does not see). The tests check this with `==`.

use crate::bytes::BytesMoved;
use attn_support::ndarray::{Array4, ArrayView4, Zip, s};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::{SdpaMask, softmax_row_in_place};
use std::ops::Range;

/// The dimensions of a score tensor: (batch, heads, queries, keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreShape {
    pub batch: usize,
    pub heads: usize,
    pub nq: usize,
    pub nk: usize,
}

impl ScoreShape {
    /// The shape of a (B, H, Nq, Nk) array.
    pub fn of(scores: &ArrayView4<f32>) -> ScoreShape {
        let (batch, heads, nq, nk) = scores.dim();
        ScoreShape { batch, heads, nq, nk }
    }

    /// B · H · Nq · Nk.
    pub fn elements(&self) -> u64 {
        (self.batch * self.heads) as u64 * (self.nq * self.nk) as u64
    }
}

// ANCHOR: mask_spec
/// Which keys each query may see, described by rules instead of a stored tensor.
/// The default masks nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaskSpec {
    /// Bottom-right aligned causal mask (chapter 2's rule): query `i` sees keys `j ≤ i + Nk − Nq`.
    pub causal: bool,
    /// One length per batch entry: keys at positions `≥ key_lengths[b]` are padding.
    pub key_lengths: Option<Vec<usize>>,
    /// Sliding window (needs `causal`): key `j` visible iff `p − window < j ≤ p`, `p = i + Nk − Nq`.
    pub window: Option<usize>,
}
// ANCHOR_END: mask_spec

impl MaskSpec {
    /// No mask.
    pub fn none() -> MaskSpec {
        MaskSpec::default()
    }

    /// The causal mask alone.
    pub fn causal() -> MaskSpec {
        MaskSpec { causal: true, ..MaskSpec::default() }
    }

    /// A causal sliding window of `window` keys (the query itself included).
    pub fn sliding_window(window: usize) -> MaskSpec {
        MaskSpec { causal: true, window: Some(window), ..MaskSpec::default() }
    }

    /// This mask with per-batch valid key lengths added.
    pub fn with_key_lengths(self, key_lengths: Vec<usize>) -> MaskSpec {
        MaskSpec { key_lengths: Some(key_lengths), ..self }
    }

    /// Check the mask against a score shape: one length per batch entry, none above Nk, a
    /// window of at least one key and only together with the causal rule.
    pub fn check(&self, shape: ScoreShape) -> Result<()> {
        if let Some(lengths) = &self.key_lengths {
            if lengths.len() != shape.batch {
                return Err(Error::shapes(
                    "key_lengths needs one length per batch entry",
                    "key_lengths",
                    &[lengths.len()],
                    "batch",
                    &[shape.batch],
                ));
            }
            if let Some((b, &len)) = lengths.iter().enumerate().find(|&(_, &len)| len > shape.nk) {
                return Err(Error::InvalidArgument(format!(
                    "key_lengths[{b}] = {len} exceeds the {} keys of the score tensor",
                    shape.nk
                )));
            }
        }
        match self.window {
            Some(0) => Err(Error::InvalidArgument(
                "window = 0 would let no query see any key; a window counts the query itself, so use ≥ 1"
                    .into(),
            )),
            Some(w) if !self.causal => Err(Error::InvalidArgument(format!(
                "window = {w} needs causal = true: the sliding window here is Mistral's causal band"
            ))),
            _ => Ok(()),
        }
    }

    // ANCHOR: visible_keys
    /// The keys query `i` of batch entry `b` may see, as an interval `lo..hi` (empty when it
    /// sees none). Assumes [`MaskSpec::check`] passed.
    pub fn visible_keys(&self, b: usize, i: usize, nq: usize, nk: usize) -> Range<usize> {
        // Chapter 2's rule: hi = clamp(i + 1 + Nk − Nq, 0, Nk) when causal, Nk otherwise.
        let causal = SdpaMask { causal: self.causal, key_padding: None };
        let padded_end = self.key_lengths.as_ref().map_or(nk, |lengths| lengths[b]);
        let hi = causal.causal_end(i, nq, nk).min(padded_end);
        // The window starts W − 1 keys before the query's position p = i + Nk − Nq.
        let lo = self.window.map_or(0, |w| {
            let start = (i + 1 + nk) as isize - nq as isize - w as isize;
            start.clamp(0, nk as isize) as usize
        });
        lo..hi.max(lo)
    }
    // ANCHOR_END: visible_keys

    /// Chapter 2's [`SdpaMask`] for the same rule, to run [`ch02_scaled_dot_product::sdpa()`]
    /// with it; `None` for a sliding window, which chapter 2 does not have.
    pub fn to_sdpa_mask(&self, nk: usize) -> Option<SdpaMask> {
        if self.window.is_some() {
            return None;
        }
        let key_padding =
            self.key_lengths.as_ref().map(|lengths| SdpaMask::padding_from_lengths(lengths, nk));
        Some(SdpaMask { causal: self.causal, key_padding })
    }

    /// The explicit additive mask the unfused version reads: (B, 1, Nq, Nk), `0` where visible
    /// and `−∞` where masked, shared by the heads through broadcasting (as frameworks store it).
    pub fn mask_tensor(&self, shape: ScoreShape) -> Result<Array4<f32>> {
        self.check(shape)?;
        Ok(Array4::from_shape_fn((shape.batch, 1, shape.nq, shape.nk), |(b, _, i, j)| {
            if self.visible_keys(b, i, shape.nq, shape.nk).contains(&j) { 0.0 } else { f32::NEG_INFINITY }
        }))
    }
}

/// Check a score tensor, its scale and its mask; returns the tensor's shape.
pub fn check_scores(scores: &ArrayView4<f32>, scale: f32, mask: &MaskSpec) -> Result<ScoreShape> {
    if scores.is_empty() {
        return Err(Error::InvalidArgument(format!("empty score tensor of shape {:?}", scores.shape())));
    }
    if !scale.is_finite() {
        return Err(Error::InvalidArgument(format!("scale = {scale} is not finite")));
    }
    let shape = ScoreShape::of(scores);
    mask.check(shape)?;
    Ok(shape)
}

// ANCHOR: unfused
/// Pass 1 of the unfused chain: `S · scale`, a new tensor.
pub fn scale_pass(scores: ArrayView4<f32>, scale: f32) -> Array4<f32> {
    scores.mapv(|s| s * scale)
}

/// Pass 2: add a (B, 1, Nq, Nk) mask tensor, broadcast over the heads; a new tensor.
pub fn add_mask_pass(scaled: ArrayView4<f32>, mask: ArrayView4<f32>) -> Result<Array4<f32>> {
    let (batch, _, nq, nk) = scaled.dim();
    if mask.dim() != (batch, 1, nq, nk) {
        return Err(Error::shapes(
            "the mask tensor is (B, 1, Nq, Nk)",
            "mask",
            mask.shape(),
            "scores",
            scaled.shape(),
        ));
    }
    let broadcast =
        mask.broadcast(scaled.raw_dim()).expect("a length-1 head axis broadcasts to any head count");
    Ok(&scaled + &broadcast)
}

/// Pass 3: the stable softmax of chapter 2 on every row; a new tensor. All-−∞ rows become zeros.
pub fn softmax_pass(masked: ArrayView4<f32>) -> Array4<f32> {
    // `zeros` allocates in standard layout, so every row of `probs` is a contiguous slice.
    let mut probs = Array4::<f32>::zeros(masked.raw_dim());
    probs.assign(&masked);
    for mut row in probs.rows_mut() {
        softmax_row_in_place(row.as_slice_mut().expect("rows of a standard-layout array are contiguous"));
    }
    probs
}

/// Scale, add the mask tensor, softmax: three passes, each reading and writing a full tensor.
pub fn scale_mask_softmax_unfused(
    scores: ArrayView4<f32>,
    scale: f32,
    mask: &MaskSpec,
) -> Result<Array4<f32>> {
    let shape = check_scores(&scores, scale, mask)?;
    let scaled = scale_pass(scores, scale);
    let mask_tensor = mask.mask_tensor(shape)?;
    let masked = add_mask_pass(scaled.view(), mask_tensor.view())?;
    Ok(softmax_pass(masked.view()))
}
// ANCHOR_END: unfused

// ANCHOR: fused
/// Scale + mask + softmax in one pass per row: the visible interval comes from the indices,
/// only its scores are read, and the row of probabilities is written once (zeros outside).
pub fn scale_mask_softmax_fused(scores: ArrayView4<f32>, scale: f32, mask: &MaskSpec) -> Result<Array4<f32>> {
    let shape = check_scores(&scores, scale, mask)?;
    let mut probs = Array4::<f32>::zeros(scores.raw_dim());
    for b in 0..shape.batch {
        for h in 0..shape.heads {
            for i in 0..shape.nq {
                let keys = mask.visible_keys(b, i, shape.nq, shape.nk);
                let mut row = probs.slice_mut(s![b, h, i, keys.clone()]);
                Zip::from(&mut row).and(scores.slice(s![b, h, i, keys])).for_each(|p, &s| *p = s * scale);
                // An empty interval leaves the row's zeros: a fully masked query, never NaN.
                softmax_row_in_place(
                    row.as_slice_mut().expect("a slice of one row of `probs` is contiguous"),
                );
            }
        }
    }
    Ok(probs)
}
// ANCHOR_END: fused

/// The two versions of scale + mask + softmax, for the byte model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxPipeline {
    /// Three passes: scale, add a mask tensor, softmax.
    Unfused,
    /// One pass, mask from indices.
    Fused,
}

impl SoftmaxPipeline {
    // ANCHOR: bytes_moved
    /// Bytes moved to and from memory, counting tensors of `shape` with elements of
    /// `dtype_bytes` (the mask tensor in the same dtype, as frameworks build it).
    ///
    /// With `T` = one score-sized tensor: unfused, scale reads S and writes S₁, the mask pass
    /// reads S₁ and the mask and writes S₂, softmax reads S₂ and writes P — 3T read plus the
    /// mask, 3T written. The mask is (B, 1, Nq, Nk) in memory but each head's pass reads it
    /// again, so it counts B·H·Nq·Nk elements (a cache may serve some repeats; Nsight Compute's
    /// DRAM counters will tell). Fused: S read once, P written once, 2T. Each softmax row is
    /// assumed to stay on chip between its max, sum and normalise sweeps (it does for rows of
    /// thousands of keys in registers or shared memory). The fused kernel could skip reading
    /// masked scores (about half of a causal tensor); the model does not count that saving.
    pub fn bytes_moved(self, shape: ScoreShape, dtype_bytes: u64) -> BytesMoved {
        let tensor = shape.elements() * dtype_bytes;
        match self {
            SoftmaxPipeline::Unfused => BytesMoved { read: 3 * tensor + tensor, written: 3 * tensor },
            SoftmaxPipeline::Fused => BytesMoved { read: tensor, written: tensor },
        }
    }
    // ANCHOR_END: bytes_moved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_each_rule() {
        let keys =
            |m: &MaskSpec, b, nq, nk| (0..nq).map(|i| m.visible_keys(b, i, nq, nk)).collect::<Vec<_>>();
        // Causal, bottom-right aligned: 2 queries at positions 3 and 4 of 5 keys.
        assert_eq!(keys(&MaskSpec::causal(), 0, 2, 5), [0..4, 0..5]);
        // Window of 2: the query and the key before it.
        assert_eq!(keys(&MaskSpec::sliding_window(2), 0, 3, 3), [0..1, 0..2, 1..3]);
        // Window of 1: the query's own key only.
        assert_eq!(keys(&MaskSpec::sliding_window(1), 0, 3, 3), [0..1, 1..2, 2..3]);
        // More queries than keys: the first two see nothing (empty intervals).
        assert!(keys(&MaskSpec::sliding_window(9), 0, 4, 2)[..2].iter().all(|r| r.is_empty()));
        // Padding: batch entry 1 has one real key, entry 0 none.
        let padded = MaskSpec::none().with_key_lengths(vec![0, 1]);
        assert_eq!(keys(&padded, 1, 2, 3), [0..1, 0..1]);
        assert!(keys(&padded, 0, 2, 3).iter().all(|r| r.is_empty()));
    }

    #[test]
    fn byte_model_matches_a_hand_count() {
        // (2, 3, 5, 7) in bf16: 210 elements, T = 420 bytes.
        let shape = ScoreShape { batch: 2, heads: 3, nq: 5, nk: 7 };
        assert_eq!(SoftmaxPipeline::Unfused.bytes_moved(shape, 2), BytesMoved { read: 1680, written: 1260 });
        assert_eq!(SoftmaxPipeline::Fused.bytes_moved(shape, 2), BytesMoved { read: 420, written: 420 });
        // Llama-3-8B prefill, one layer: 32 heads × 4096² bf16 scores = 1 GiB per tensor;
        // the unfused chain moves 7 GiB, the fused pass 2 GiB.
        let llama = ScoreShape { batch: 1, heads: 32, nq: 4096, nk: 4096 };
        assert_eq!(SoftmaxPipeline::Unfused.bytes_moved(llama, 2).total(), 7 << 30);
        assert_eq!(SoftmaxPipeline::Fused.bytes_moved(llama, 2).total(), 2 << 30);
    }
}
