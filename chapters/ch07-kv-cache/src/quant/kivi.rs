//! KIVI: asymmetric 2- and 4-bit group quantisation with a full-precision window
//! (Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache", ICML 2024).
//!
//! A group of `G` numbers with minimum `m` and maximum `M` is stored as `b`-bit codes on the
//! grid from `m` to `M` in `2^b − 1` steps:
//!
//! ```text
//! s = (M − m) / (2^b − 1),   q = clamp(round((x − m) / s), 0, 2^b − 1),   x̂ = q·s + m
//! ```
//!
//! (round half to even; the zero point is the minimum itself, kept as an f32 rather than an
//! integer offset). Each element is within `s/2` of its value, and the extremes are exact. With
//! two bits there are only four levels, so the groups must be small and follow the structure of
//! the data: K per channel over `G` consecutive tokens (its outlier channels get their own
//! range, as in [`super::int8`]), V per token over `G` consecutive channels (the error of each
//! value row stays local to it). A constant group has `s = 0`: codes 0, decoded exactly as `m`.
//!
//! **The full-precision window.** Per-channel groups of K span `G` tokens, so a key can only
//! be quantised once its group is complete; and the newest tokens matter most to the next
//! query. So the `R` most recent tokens stay in full precision, and older keys are quantised in
//! whole groups of `G` as they leave that window ([`KiviConfig::split`]): between `R` and
//! `R + G − 1` recent keys are exact. Values are grouped across channels, so each value can be
//! quantised alone the moment it leaves the window ([`KiviConfig::split_values`]: exactly `R`
//! exact). KIVI's code (`models/llama_kivi.py`) does the same for V but flushes K
//! differently: its key residual fills up to `R` tokens (`R` a multiple of `G`) and is then
//! quantised all at once, so after a decoding step between 0 and `R − 1` recent keys are exact
//! there. It also stores scales and minima in fp16, where this module keeps f32.
//!
//! Codes are bit-packed, `8 / b` per byte, a row (token) at a time ([`super::packing`]); scales
//! and minima are f32, so a full group costs `b + 64 / G` bits per element.

use super::check_finite;
use super::packing::{pack_codes, packed_len, unpack_codes};
use attn_support::ndarray::{Array2, ArrayView2, Zip};
use attn_support::{Error, Result};

/// The parameters of a KIVI cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KiviConfig {
    /// Bits per code: 2 or 4.
    pub bits: u32,
    /// Elements per group `G` (tokens for K, channels for V).
    pub group: usize,
    /// Recent tokens kept in full precision `R`.
    pub residual: usize,
}

/// How a length-`T` KIVI cache is split: the oldest `quantised` tokens (a multiple of `G`),
/// then `full_precision` recent ones (at least `min(R, T)`, fewer than `R + G`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KiviSplit {
    pub quantised: usize,
    pub full_precision: usize,
}

impl KiviConfig {
    /// Checks the parameters: `bits` 2 or 4, `group ≥ 1`.
    pub fn new(bits: u32, group: usize, residual: usize) -> Result<Self> {
        if bits != 2 && bits != 4 {
            return Err(Error::InvalidArgument(format!("KIVI codes are 2 or 4 bits, not {bits}")));
        }
        if group == 0 {
            return Err(Error::InvalidArgument(
                "KIVI group size is 0; a group needs at least one element".into(),
            ));
        }
        Ok(KiviConfig { bits, group, residual })
    }

    /// The number of levels minus one, `2^b − 1`.
    pub fn max_code(&self) -> u32 {
        (1 << self.bits) - 1
    }

    /// Which keys of a length-`len` cache are quantised: those older than the window of `R`,
    /// rounded down to whole groups of `G`.
    pub fn split(&self, len: usize) -> KiviSplit {
        let outside_window = len.saturating_sub(self.residual);
        let quantised = outside_window / self.group * self.group;
        KiviSplit { quantised, full_precision: len - quantised }
    }

    /// The same for values, which need no whole groups of tokens: everything older than the
    /// window is quantised.
    pub fn split_values(&self, len: usize) -> KiviSplit {
        let quantised = len.saturating_sub(self.residual);
        KiviSplit { quantised, full_precision: len - quantised }
    }

    /// Bits per quantised element with the f32 scale and minimum of its group: `b + 64 / G`.
    pub fn bits_per_element(&self) -> f64 {
        self.bits as f64 + 64.0 / self.group as f64
    }
}

/// Which elements of a `(tokens, head_dim)` block form a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KiviAxis {
    /// One channel over `G` consecutive tokens (for K).
    PerChannel,
    /// `G` consecutive channels of one token (for V).
    PerToken,
}

/// The step of the grid from `min` to `max` in `2^bits − 1` steps.
pub fn kivi_scale(min: f32, max: f32, bits: u32) -> f32 {
    (max - min) / ((1u32 << bits) - 1) as f32
}

/// The code of `x` in the group with minimum `min` and step `scale` (0 when the step is 0).
pub fn kivi_code(x: f32, min: f32, scale: f32, bits: u32) -> u8 {
    if scale == 0.0 {
        return 0;
    }
    let max_code = ((1u32 << bits) - 1) as f32;
    ((x - min) / scale).round_ties_even().clamp(0.0, max_code) as u8
}

/// The value a code stands for: `q·s + m`.
pub fn kivi_value(code: u8, min: f32, scale: f32) -> f32 {
    f32::from(code) * scale + min
}

/// A `(tokens, head_dim)` block in KIVI's format.
#[derive(Clone, Debug, PartialEq)]
pub struct KiviBlock {
    pub bits: u32,
    pub group: usize,
    pub axis: KiviAxis,
    pub tokens: usize,
    pub head_dim: usize,
    /// The codes, row by row, each row `⌈head_dim·bits/8⌉` bytes.
    pub packed: Vec<u8>,
    /// Per channel: `(⌈tokens / G⌉, head_dim)`; per token: `(tokens, ⌈head_dim / G⌉)`.
    pub scales: Array2<f32>,
    /// The minima, shaped like `scales`.
    pub minima: Array2<f32>,
}

impl KiviBlock {
    /// The index into `scales` / `minima` of element `(token, channel)`'s group.
    pub fn group_of(&self, token: usize, channel: usize) -> (usize, usize) {
        group_index(self.axis, self.group, token, channel)
    }

    /// Bytes of one packed row.
    pub fn row_bytes(&self) -> usize {
        packed_len(self.head_dim, self.bits)
    }

    /// The codes unpacked, `(tokens, head_dim)`.
    pub fn codes(&self) -> Result<Array2<u8>> {
        let row_bytes = self.row_bytes();
        let mut codes = Array2::zeros((self.tokens, self.head_dim));
        for t in 0..self.tokens {
            let row = unpack_codes(&self.packed[t * row_bytes..], self.bits, self.head_dim)?;
            codes.row_mut(t).iter_mut().zip(row).for_each(|(c, r)| *c = r);
        }
        Ok(codes)
    }

    /// The block read back: `x̂ = q·s + m`.
    pub fn dequantize(&self) -> Result<Array2<f32>> {
        let codes = self.codes()?;
        Ok(Array2::from_shape_fn(codes.dim(), |(t, c)| {
            let g = self.group_of(t, c);
            kivi_value(codes[(t, c)], self.minima[g], self.scales[g])
        }))
    }

    /// Bytes the block takes: packed codes, scales and minima.
    pub fn bytes(&self) -> usize {
        self.packed.len() + 4 * (self.scales.len() + self.minima.len())
    }
}

/// Quantises a `(tokens, head_dim)` block in groups of `config.group` along `axis` (the last
/// group of each row or column may be shorter).
pub fn quantize_kivi(block: ArrayView2<'_, f32>, axis: KiviAxis, config: &KiviConfig) -> Result<KiviBlock> {
    KiviConfig::new(config.bits, config.group, config.residual)?;
    check_finite(block, "KIVI")?;
    let (tokens, head_dim) = block.dim();
    let g = config.group;
    let groups_shape = match axis {
        KiviAxis::PerChannel => (tokens.div_ceil(g), head_dim),
        KiviAxis::PerToken => (tokens, head_dim.div_ceil(g)),
    };
    // Every group holds at least one element, so no infinity survives the folds.
    let mut minima = Array2::from_elem(groups_shape, f32::INFINITY);
    let mut maxima = Array2::from_elem(groups_shape, f32::NEG_INFINITY);
    for ((t, c), &x) in block.indexed_iter() {
        let group = group_index(axis, g, t, c);
        minima[group] = minima[group].min(x);
        maxima[group] = maxima[group].max(x);
    }
    let scales = Zip::from(&minima).and(&maxima).map_collect(|&min, &max| kivi_scale(min, max, config.bits));
    if let Some(((i, j), min)) =
        scales.indexed_iter().find(|(_, s)| !s.is_finite()).map(|(group, _)| (group, minima[group]))
    {
        return Err(Error::InvalidArgument(format!(
            "KIVI: group ({i}, {j}) spans from {min} to {}, a range that overflows f32",
            maxima[(i, j)]
        )));
    }
    let mut packed = Vec::with_capacity(tokens * packed_len(head_dim, config.bits));
    for (t, row) in block.rows().into_iter().enumerate() {
        let codes: Vec<u8> = row
            .iter()
            .enumerate()
            .map(|(c, &x)| {
                let group = group_index(axis, g, t, c);
                kivi_code(x, minima[group], scales[group], config.bits)
            })
            .collect();
        packed.extend(pack_codes(&codes, config.bits)?);
    }
    Ok(KiviBlock { bits: config.bits, group: g, axis, tokens, head_dim, packed, scales, minima })
}

/// The index of element `(token, channel)`'s group: per channel `(token / G, channel)`, per
/// token `(token, channel / G)`.
fn group_index(axis: KiviAxis, group: usize, token: usize, channel: usize) -> (usize, usize) {
    match axis {
        KiviAxis::PerChannel => (token / group, channel),
        KiviAxis::PerToken => (token, channel / group),
    }
}
