//! Symmetric INT8 with absmax scales, per channel (for K) or per token (for V).
//!
//! A group of numbers sharing one scale `s = absmax / 127` is stored as codes
//! `q = clamp(round(x / s), −127, 127)` (round half to even) and read back as `x̂ = q·s`; every
//! element is then within `s/2` of its value: the grid spacing is `s` and `|x| ≤ 127·s` never
//! needs the clamp (except in degenerate cases: a scale so small it is a subnormal f32). −128 is
//! left unused, so the grid is symmetric around an exact zero.
//!
//! **Why two granularities.** Keys of trained models have a few *outlier channels* whose
//! magnitude is many times the rest in every token (KIVI, Liu et al. 2024, fig. 2; the
//! chapter shows SmolLM2's). One scale per token would be set by the outlier and
//! leave the ordinary channels a handful of levels; one scale per channel — shared over a group
//! of `G` consecutive tokens — gives each channel a grid of its own size. Values have no such
//! channels, and each output is a weighted sum over tokens of whole value rows, so a per-token
//! scale (one per row of `head_dim` values) keeps the error of each row proportional to that row.
//!
//! The arithmetic is f32 as a kernel does it: `s = fl(absmax / 127)`, `q = RNE(fl(x / s))`.
//! A group that is all zero gets `s = 0` and codes 0 (never `0 / 0`).

use super::{absmax, check_finite};
use attn_support::ndarray::{Array2, ArrayView2, Axis};
use attn_support::{Error, Result};

/// The largest code; the grid is `−127..=127` steps of the scale.
pub const INT8_MAX_CODE: f32 = 127.0;

/// Which elements of a `(tokens, head_dim)` block share a scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Granularity {
    /// One scale per channel over each group of `tokens_per_group` consecutive tokens (the last
    /// group may be shorter): for K, whose outlier channels would ruin a per-token scale.
    PerChannel { tokens_per_group: usize },
    /// One scale per token over its `head_dim` channels: for V.
    PerToken,
}

impl Int8Granularity {
    /// Elements that share one scale (a full group).
    pub fn elements_per_scale(self, head_dim: usize) -> usize {
        match self {
            Int8Granularity::PerChannel { tokens_per_group } => tokens_per_group,
            Int8Granularity::PerToken => head_dim,
        }
    }

    /// Bytes per element with the f32 scales: `1 + 4 / (elements per scale)`.
    pub fn bytes_per_element(self, head_dim: usize) -> f64 {
        1.0 + 4.0 / self.elements_per_scale(head_dim) as f64
    }
}

/// The scale of a group whose largest magnitude is `absmax`.
pub fn int8_scale(absmax: f32) -> f32 {
    absmax / INT8_MAX_CODE
}

/// The code of `x` on the grid of `scale` (0 when the scale is 0).
pub fn int8_code(x: f32, scale: f32) -> i8 {
    if scale == 0.0 {
        return 0;
    }
    (x / scale).round_ties_even().clamp(-INT8_MAX_CODE, INT8_MAX_CODE) as i8
}

/// The value a code stands for.
pub fn int8_value(code: i8, scale: f32) -> f32 {
    f32::from(code) * scale
}

/// A `(tokens, head_dim)` block in INT8.
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Block {
    pub granularity: Int8Granularity,
    /// `(tokens, head_dim)` codes.
    pub codes: Array2<i8>,
    /// Per channel: `(⌈tokens / G⌉, head_dim)`, row `g` for tokens `g·G ..`; per token:
    /// `(tokens, 1)`.
    pub scales: Array2<f32>,
}

impl Int8Block {
    /// The scale element `(token, channel)` was quantised with.
    pub fn scale_of(&self, token: usize, channel: usize) -> f32 {
        match self.granularity {
            Int8Granularity::PerChannel { tokens_per_group } => {
                self.scales[(token / tokens_per_group, channel)]
            }
            Int8Granularity::PerToken => self.scales[(token, 0)],
        }
    }

    /// The block read back: `x̂ = q·s`.
    pub fn dequantize(&self) -> Array2<f32> {
        Array2::from_shape_fn(self.codes.dim(), |(t, c)| int8_value(self.codes[(t, c)], self.scale_of(t, c)))
    }
}

/// Quantises a `(tokens, head_dim)` block with one scale per group of `granularity`.
pub fn quantize_int8(block: ArrayView2<'_, f32>, granularity: Int8Granularity) -> Result<Int8Block> {
    check_finite(block, "INT8")?;
    let (tokens, head_dim) = block.dim();
    let scales = match granularity {
        Int8Granularity::PerChannel { tokens_per_group } => {
            if tokens_per_group == 0 {
                return Err(Error::InvalidArgument(
                    "INT8 per channel: tokens_per_group is 0; a group needs at least one token".into(),
                ));
            }
            let groups: Vec<_> = block.axis_chunks_iter(Axis(0), tokens_per_group).collect();
            Array2::from_shape_fn((groups.len(), head_dim), |(g, c)| int8_scale(absmax(groups[g].column(c))))
        }
        Int8Granularity::PerToken => {
            Array2::from_shape_fn((tokens, 1), |(t, _)| int8_scale(absmax(block.row(t))))
        }
    };
    let mut quantised = Int8Block { granularity, codes: Array2::zeros((tokens, head_dim)), scales };
    for ((t, c), &x) in block.indexed_iter() {
        quantised.codes[(t, c)] = int8_code(x, quantised.scale_of(t, c));
    }
    Ok(quantised)
}
