//! The rotary position embedding (RoPE, Su et al., *RoFormer*, 2021) on the CPU, in f32.
//!
//! RoPE splits the first `d_rot` dims of each query and key vector into `d_rot/2` pairs and
//! rotates pair `i` of the token at position `m` by the angle `m·θ_i`, with
//!
//! ```text
//! θ_i = base^(−2i/d_rot),   i = 0 … d_rot/2 − 1          (base 10 000 in Llama 2, 500 000 in Llama 3)
//! (a, b) ↦ (a·cos mθ_i − b·sin mθ_i,  b·cos mθ_i + a·sin mθ_i)
//! ```
//!
//! A rotation preserves dot products and rotations compose by adding angles, so for a query at
//! position `m` and a key at position `n`, `R(mθ)q · R(nθ)k = q · R((n−m)θ)k`: the score sees only
//! the offset `m − n`, never the absolute positions. That is the whole point of RoPE, and
//! `tests/rope.rs` checks it.
//!
//! **Layouts.** Which two dims form pair `i` is a convention of the checkpoint ([`RopeLayout`]):
//! GPT-NeoX and Hugging Face Llama (`rotate_half`) pair dim `i` with dim `i + d_rot/2`; GPT-J,
//! Meta's original Llama code (complex multiplication over adjacent dims) and GGUF files pair
//! `2i` with `2i + 1`. Same rotation, different addresses; [`crate::layout`] converts weights.
//!
//! **Partial rotary** (`rotary_pct` in GPT-NeoX/Pythia, `partial_rotary_factor` in Hugging
//! Face, e.g. 0.25): only the first `d_rot = ⌊head_dim · factor⌋` dims rotate, the rest pass
//! through, and the frequencies use `d_rot` (not `head_dim`) in their exponent.
//!
//! **Order of operations, as Hugging Face transformers does it.** `_compute_default_rope_parameters`
//! (`src/transformers/modeling_rope_utils.py`, read at commit 0044e3b3) computes
//! `inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))` — the
//! exponent `2i/d_rot` divided in f32, the power and the reciprocal in f32 — and
//! `LlamaRotaryEmbedding.forward` (`src/transformers/models/llama/modeling_llama.py`, commit
//! 00227283) forms the angles as `inv_freq.float() @ position_ids.float()` with autocast
//! disabled ("Force float32 since bfloat16 loses precision on long contexts", transformers PR
//! 29285), then `emb.cos()` and `emb.sin()` in f32 (later versions multiply them by an
//! `attention_scaling` that is 1 without YaRN-style scaling); `apply_rotary_pos_emb` computes
//! `q * cos + rotate_half(q) * sin`. We follow the same steps ([`RopeConfig::inv_freq`],
//! [`RopeConfig::angle`], [`RopeConfig::cos_sin`], `rotate_rows`). transformers 5.17, the
//! version on the GPU machine and the one [`crate::scaling`] follows, computes the same values:
//! `LlamaRotaryEmbedding.compute_default_rope_parameters` divides `arange(0, dim, 2,
//! dtype=torch.float)` by `dim` (the same f32 exponents), and `forward` multiplies `emb.cos()`
//! and `emb.sin()` by `attention_scaling` (YaRN's attention factor, 1 otherwise).
//!
//! Why f32 from integer positions: every integer up to 2²⁴ is an f32, so the position itself is
//! exact and the angle `m·θ_i` carries one rounding (relative 2⁻²⁴) on top of θ_i's own few; in
//! bf16 (8 significant bits) position 1001 would already round to 1000. The angle's absolute
//! error still grows like `m · 2⁻²⁴` (bounded by `5·m·2⁻²⁴`, see `tests/rope.rs`; measured at
//! most 2.3·10⁻³ rad over positions 32 768 … 32 831 for head_dim 128, base 500 000), which is
//! what long contexts pay for f32 angles; the tests derive their tolerances from that. The last
//! bits of `cos`, `sin` and `powf` are the C library's here and SLEEF's or CUDA's in PyTorch, so
//! results may differ from PyTorch's in the last bits; `tests/hf_fixtures.rs` bounds by how
//! much, against values transformers 5.17 produced.
//!
//! **Cache or on the fly.** [`RopeCache`] tabulates `cos mθ_i` and `sin mθ_i` for positions
//! `0 … max_positions − 1` (one value per pair: Hugging Face's `cat((freqs, freqs))` duplicates
//! them only to fit its elementwise formula); [`apply_rope`] computes each angle when it needs
//! it. Both evaluate the same f32 expressions, so they agree bit for bit.
//!
//! Inputs are `(batch, heads, seq, head_dim)` f32 arrays rotated in place; token `s` sits at
//! position `offset + s`, as in a decoder whose KV cache already holds `offset` tokens.

use crate::scaling::RopeScaling;
use attn_support::ndarray::{Array2, ArrayView2, ArrayViewMut4};
use attn_support::{Error, Result};

/// Every integer up to 2²⁴ converts to f32 exactly; past it, positions would be rounded.
pub const MAX_EXACT_POSITION: usize = 1 << 24;

/// Which two dims of a head vector form rotation pair `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pair `i` is `(i, i + d_rot/2)`: GPT-NeoX, Hugging Face Llama (`rotate_half`).
    HalfRotation,
    /// Pair `i` is `(2i, 2i + 1)`: GPT-J, Meta's original Llama checkpoints, GGUF.
    Interleaved,
}

impl RopeLayout {
    /// The dims `(a, b)` of pair `i` when the first `rotary_dim` dims rotate.
    pub fn pair(self, i: usize, rotary_dim: usize) -> (usize, usize) {
        match self {
            RopeLayout::HalfRotation => (i, i + rotary_dim / 2),
            RopeLayout::Interleaved => (2 * i, 2 * i + 1),
        }
    }
}

/// What a model's config says about its RoPE: head dim, rotary dims, base, layout and scaling.
/// Built through [`RopeConfig::new`], [`RopeConfig::partial`] and
/// [`RopeConfig::from_partial_rotary_factor`], which reject what cannot rotate; a scaling is
/// added with [`RopeConfig::with_scaling`]. The frequencies and the attention factor are
/// computed once, when the config is built.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeConfig {
    head_dim: usize,
    rotary_dim: usize,
    base: f32,
    layout: RopeLayout,
    scaling: RopeScaling,
    inv_freq: Vec<f32>,
    attention_factor: f32,
}

impl RopeConfig {
    /// Full rotary: all `head_dim` dims rotate, so `head_dim` must be even. `base` is
    /// `rope_theta` (10 000, 500 000, …).
    pub fn new(head_dim: usize, base: f32, layout: RopeLayout) -> Result<Self> {
        Self::partial(head_dim, head_dim, base, layout)
    }

    /// Only the first `rotary_dim` dims rotate (GPT-J's `rotary_dim`); it must be even, > 0 and
    /// at most `head_dim` (which may be odd).
    pub fn partial(head_dim: usize, rotary_dim: usize, base: f32, layout: RopeLayout) -> Result<Self> {
        if !(base.is_finite() && base > 1.0) {
            return Err(Error::InvalidArgument(format!(
                "RoPE base (rope_theta) {base} must be finite and > 1 so that the frequencies decrease"
            )));
        }
        if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) || rotary_dim > head_dim {
            return Err(Error::InvalidArgument(format!(
                "rotary dims {rotary_dim} must be even, > 0 and at most head_dim {head_dim}"
            )));
        }
        let scaling = RopeScaling::Default;
        let (inv_freq, attention_factor) = scaling.inv_freq_and_attention_factor(base, rotary_dim)?;
        Ok(Self { head_dim, rotary_dim, base, layout, scaling, inv_freq, attention_factor })
    }

    /// The same RoPE with a scaling ([`crate::scaling`]): its frequencies and attention factor
    /// replace the unscaled ones. Errors name a bad factor or parameter.
    pub fn with_scaling(self, scaling: RopeScaling) -> Result<Self> {
        let (inv_freq, attention_factor) =
            scaling.inv_freq_and_attention_factor(self.base, self.rotary_dim)?;
        Ok(Self { scaling, inv_freq, attention_factor, ..self })
    }

    /// `rotary_pct` / `partial_rotary_factor`: `d_rot = int(head_dim · factor)` as Hugging Face
    /// computes it (truncation), e.g. 0.25 of 128 → 32. The factor must be in (0, 1].
    pub fn from_partial_rotary_factor(
        head_dim: usize,
        factor: f64,
        base: f32,
        layout: RopeLayout,
    ) -> Result<Self> {
        if !(factor > 0.0 && factor <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "partial rotary factor {factor} must be in (0, 1] (head_dim {head_dim})"
            )));
        }
        Self::partial(head_dim, (head_dim as f64 * factor) as usize, base, layout)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }
    pub fn rotary_dim(&self) -> usize {
        self.rotary_dim
    }
    pub fn base(&self) -> f32 {
        self.base
    }
    pub fn layout(&self) -> RopeLayout {
        self.layout
    }
    pub fn scaling(&self) -> &RopeScaling {
        &self.scaling
    }
    /// What multiplies cos and sin (Hugging Face's `attention_scaling`): 1 except for YaRN.
    pub fn attention_factor(&self) -> f32 {
        self.attention_factor
    }
    /// Number of rotation pairs, `d_rot / 2`.
    pub fn pairs(&self) -> usize {
        self.rotary_dim / 2
    }

    /// The frequencies `θ_i` of the pairs, scaled if the config has a scaling. Unscaled,
    /// `θ_i = 1 / base^(2i/d_rot)` in f32, step by step as transformers'
    /// `compute_default_rope_parameters`: integer `2i` to f32, divided by `d_rot` in f32,
    /// `base ** exponent` in f32, reciprocal in f32 (`crate::scaling`'s `default_inv_freq`).
    pub fn inv_freq(&self) -> Vec<f32> {
        self.inv_freq.clone()
    }

    /// The angle `m·θ_i` as `LlamaRotaryEmbedding.forward` forms it: the integer position
    /// converted to f32 (exact up to [`MAX_EXACT_POSITION`]) times the f32 `θ_i`, one rounding.
    pub fn angle(inv_freq: f32, position: usize) -> f32 {
        inv_freq * position as f32
    }

    /// `(cos mθ_i, sin mθ_i)` times the attention factor, as `LlamaRotaryEmbedding.forward`:
    /// `emb.cos() * attention_scaling` in f32 (the Python float factor converted to f32, one
    /// more rounding; none when the factor is 1). The table and the on-the-fly path both call
    /// this, so they agree bit for bit.
    pub fn cos_sin(&self, pair: usize, position: usize) -> (f32, f32) {
        let angle = Self::angle(self.inv_freq[pair], position);
        (angle.cos() * self.attention_factor, angle.sin() * self.attention_factor)
    }

    /// The positions `offset … offset + seq − 1` must be integers f32 holds exactly.
    fn check_positions(&self, offset: usize, seq: usize) -> Result<()> {
        let last = offset.checked_add(seq.saturating_sub(1));
        match last {
            Some(last) if last <= MAX_EXACT_POSITION => Ok(()),
            _ => Err(Error::InvalidArgument(format!(
                "positions {offset}..{offset}+{seq} go past 2^24 = {MAX_EXACT_POSITION}, the last \
                 integer position f32 holds exactly"
            ))),
        }
    }

    /// `x` must be `(batch, heads, seq, head_dim)` with this config's `head_dim`.
    fn check_input(&self, x: &ArrayViewMut4<f32>, offset: usize) -> Result<()> {
        let shape = x.shape();
        if shape[3] != self.head_dim {
            return Err(Error::InvalidArgument(format!(
                "x of shape {shape:?} has head_dim {} but the RoPE config has head_dim {} \
                 (rotary dims {})",
                shape[3], self.head_dim, self.rotary_dim
            )));
        }
        self.check_positions(offset, shape[2])
    }
}

// ANCHOR: rotate_pair
/// Rotate every pair of every row of `x` in place; `cos_sin(position, pair)` supplies the
/// cosine and sine. Written as `a·c − b·s`, `b·c + a·s`: the same products and sums (and
/// roundings) as Hugging Face's `q * cos + rotate_half(q) * sin`, whose `rotate_half` negates
/// exactly. Dims past `rotary_dim` are never touched.
fn rotate_rows(
    mut x: ArrayViewMut4<f32>,
    offset: usize,
    config: &RopeConfig,
    mut cos_sin: impl FnMut(usize, usize) -> (f32, f32),
) {
    for mut batch in x.outer_iter_mut() {
        for mut head in batch.outer_iter_mut() {
            for (s, mut row) in head.outer_iter_mut().enumerate() {
                let position = offset + s;
                for i in 0..config.pairs() {
                    let (ia, ib) = config.layout.pair(i, config.rotary_dim);
                    let (c, sn) = cos_sin(position, i);
                    let (a, b) = (row[ia], row[ib]);
                    row[ia] = a * c - b * sn;
                    row[ib] = b * c + a * sn;
                }
            }
        }
    }
}
// ANCHOR_END: rotate_pair

/// RoPE with the angles computed on the fly (what a GPU kernel does with `sincosf` instead of
/// reading a table): `x` is `(batch, heads, seq, head_dim)`, token `s` at `offset + s`.
pub fn apply_rope(config: &RopeConfig, x: ArrayViewMut4<f32>, offset: usize) -> Result<()> {
    config.check_input(&x, offset)?;
    rotate_rows(x, offset, config, |position, i| config.cos_sin(i, position));
    Ok(())
}

/// `cos mθ_i` and `sin mθ_i` (times the attention factor) tabulated for positions
/// `0 … max_positions − 1`, one entry per pair: `(max_positions, d_rot/2)` each. A decoder
/// builds it once for its context length.
#[derive(Clone, Debug)]
pub struct RopeCache {
    config: RopeConfig,
    cos: Array2<f32>,
    sin: Array2<f32>,
}

impl RopeCache {
    pub fn new(config: &RopeConfig, max_positions: usize) -> Result<Self> {
        if max_positions == 0 {
            return Err(Error::InvalidArgument("a RoPE cache of 0 positions holds nothing".into()));
        }
        config.check_positions(0, max_positions)?;
        let cos_sin = Array2::from_shape_fn((max_positions, config.pairs()), |(m, i)| config.cos_sin(i, m));
        Ok(Self { config: config.clone(), cos: cos_sin.mapv(|(c, _)| c), sin: cos_sin.mapv(|(_, s)| s) })
    }

    pub fn config(&self) -> &RopeConfig {
        &self.config
    }
    pub fn max_positions(&self) -> usize {
        self.cos.nrows()
    }
    /// `(max_positions, d_rot/2)`.
    pub fn cos(&self) -> ArrayView2<'_, f32> {
        self.cos.view()
    }
    pub fn sin(&self) -> ArrayView2<'_, f32> {
        self.sin.view()
    }

    /// RoPE from the table; positions `offset … offset + seq − 1` must be inside it.
    pub fn apply(&self, x: ArrayViewMut4<f32>, offset: usize) -> Result<()> {
        self.config.check_input(&x, offset)?;
        let seq = x.shape()[2];
        if seq > 0 && offset + seq > self.max_positions() {
            return Err(Error::InvalidArgument(format!(
                "positions {offset}..{} (offset {offset}, seq {seq}) run past the cos/sin cache of \
                 {} positions",
                offset + seq,
                self.max_positions()
            )));
        }
        rotate_rows(x, offset, &self.config, |position, i| {
            (self.cos[[position, i]], self.sin[[position, i]])
        });
        Ok(())
    }
}
