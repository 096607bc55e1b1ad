//! RoPE scalings: how a model trained on `L₀` tokens is stretched to longer contexts by changing
//! its frequencies `θ_i`, computed exactly as Hugging Face transformers 5.17 computes them
//! (`src/transformers/modeling_rope_utils.py`, the `ROPE_INIT_FUNCTIONS`, and
//! `LlamaRotaryEmbedding.compute_default_rope_parameters` in `models/llama/modeling_llama.py`).
//!
//! | `rope_type` | what it does to `θ_i = base^(−2i/d)` | attention factor |
//! | --- | --- | --- |
//! | `default` | nothing | 1 |
//! | `linear` (position interpolation, Chen et al. 2023) | every `θ_i / s`: position `m` looks like `m/s` | 1 |
//! | `dynamic` (dynamic NTK, bloc97 / Reddit 2023) | a larger base `b·(s·n/L − (s − 1))^(d/(d−2))` once the length `n` passes `L` | 1 |
//! | `yarn` (Peng et al. 2023) | fast pairs kept, slow pairs `θ_i / s`, a linear ramp between | `0.1·ln s + 1` (or from mscale) |
//! | `llama3` (Meta, Llama 3.1) | wavelengths below `L₀/high` kept, above `L₀/low` divided by `s`, smooth between | 1 |
//!
//! The attention factor multiplies `cos` and `sin` (Hugging Face's `attention_scaling`), so it
//! multiplies every rotated q and k and therefore every logit by its square: YaRN's way of
//! sharpening attention again at long range.
//!
//! **Which arithmetic, where.** transformers mixes Python floats (f64, `math.log`, `**`) with
//! f32 tensors, and we reproduce each step in the same precision, because a frequency that
//! differs by one f32 ulp moves the angle at position 131 071 by up to 10⁻² rad:
//!
//! - every exponent `2i/d` is an f32 division and `base ** exponent` an f32 power: the Python
//!   float base is converted to f32 first (exact for any integer θ up to 2²⁴);
//! - `1.0 / t` is PyTorch's `t.reciprocal() * 1.0` (`Tensor.__rtruediv__`), an f32 reciprocal;
//! - a tensor combined with a Python number (`t / factor`, `factor * t`, `t > 8192.0`) converts
//!   the number to f32 and rounds once in f32;
//! - pure Python arithmetic (dynamic NTK's new base, YaRN's correction range and attention
//!   factor) is f64 with the C library's `log` and `pow`, as CPython calls them.
//!
//! The last bits of `powf` are the C library's here; PyTorch's CPU kernel computes most
//! elements with SLEEF's vectorised `powf` (error ≤ 1 ulp), so a frequency may differ by one
//! ulp from the library's. `tests/hf_fixtures.rs` counts how often against values transformers
//! produced.

mod hf_config;
mod llama3;
mod yarn;

use attn_support::{Error, Result};

pub use hf_config::{HfRopeParameters, SUPPORTED_ROPE_TYPES};

/// YaRN's defaults from the paper (and transformers'): the ramp runs from the pair that turns 32
/// times in the original context (`beta_fast`, kept as is) to the one that turns once
/// (`beta_slow`, fully interpolated).
pub const YARN_BETA_FAST: f64 = 32.0;
pub const YARN_BETA_SLOW: f64 = 1.0;

/// A RoPE scaling, with the parameters of Hugging Face's `rope_parameters` (`rope_scaling` in
/// older configs). Factors are f64 because they are Python floats there.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE, `θ_i = base^(−2i/d)`.
    Default,
    /// Position interpolation: every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Dynamic NTK: the base grows with the current length `seq_len` once it passes
    /// `max_position_embeddings` (transformers passes `seq_len = None`, i.e. the maximum, at
    /// initialisation). We compute the new base as Python floats, the path of an `int` or
    /// `None` `seq_len`. The model's forward (`dynamic_rope_update`) passes
    /// `torch.max(position_ids) + 1`, a tensor, which moves that arithmetic into f32 tensor
    /// operations; that path is neither reproduced nor checked here.
    DynamicNtk { factor: f64, max_position_embeddings: usize, seq_len: usize },
    /// YaRN ("NTK-by-parts" interpolation plus an attention temperature).
    Yarn {
        factor: f64,
        original_max_position_embeddings: usize,
        beta_fast: f64,
        beta_slow: f64,
        /// With `mscale_all_dim`, the attention factor is `mscale(s, mscale) / mscale(s,
        /// mscale_all_dim)` (DeepSeek's configs); a zero counts as absent, as in Python.
        mscale: Option<f64>,
        mscale_all_dim: Option<f64>,
        /// An explicit attention factor overrides both.
        attention_factor: Option<f64>,
        /// Round the correction range out to whole dims (transformers' default `True`; gpt-oss
        /// sets `False`).
        truncate: bool,
    },
    /// Llama 3.1's piecewise scaling by wavelength.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

impl RopeScaling {
    /// YaRN with the paper's `beta_fast` 32, `beta_slow` 1, the attention factor `0.1·ln s + 1`
    /// and truncation on: what a config that names only `factor` and
    /// `original_max_position_embeddings` gets.
    pub fn yarn(factor: f64, original_max_position_embeddings: usize) -> Self {
        RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            beta_fast: YARN_BETA_FAST,
            beta_slow: YARN_BETA_SLOW,
            mscale: None,
            mscale_all_dim: None,
            attention_factor: None,
            truncate: true,
        }
    }

    /// Hugging Face's name for it, the `rope_type` of a config.
    pub fn rope_type(&self) -> &'static str {
        match self {
            RopeScaling::Default => "default",
            RopeScaling::Linear { .. } => "linear",
            RopeScaling::DynamicNtk { .. } => "dynamic",
            RopeScaling::Yarn { .. } => "yarn",
            RopeScaling::Llama3 { .. } => "llama3",
        }
    }

    /// The scaling factor `s` (1 for [`RopeScaling::Default`]).
    pub fn factor(&self) -> f64 {
        match *self {
            RopeScaling::Default => 1.0,
            RopeScaling::Linear { factor }
            | RopeScaling::DynamicNtk { factor, .. }
            | RopeScaling::Yarn { factor, .. }
            | RopeScaling::Llama3 { factor, .. } => factor,
        }
    }

    /// Rejects what transformers would divide by zero, take the logarithm of zero of, or what
    /// makes no sense as a scaling (a factor ≤ 0), naming the value. transformers only warns
    /// for a factor below 1 (it shrinks the context instead of stretching it), so we accept it.
    pub fn validate(&self, rotary_dim: usize) -> Result<()> {
        let kind = self.rope_type();
        let positive = |name: &str, value: f64| -> Result<()> {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!(
                    "RoPE scaling `{kind}`: {name} {value} must be a finite number > 0"
                )))
            }
        };
        let nonzero_length = |name: &str, value: usize| -> Result<()> {
            if value == 0 {
                Err(Error::InvalidArgument(format!("RoPE scaling `{kind}`: {name} 0 must be > 0")))
            } else {
                Ok(())
            }
        };
        match *self {
            RopeScaling::Default => Ok(()),
            RopeScaling::Linear { factor } => positive("factor", factor),
            RopeScaling::DynamicNtk { factor, max_position_embeddings, .. } => {
                positive("factor", factor)?;
                nonzero_length("max_position_embeddings", max_position_embeddings)?;
                if rotary_dim <= 2 {
                    // The base's exponent d/(d − 2) has no value at d = 2 (Python raises
                    // ZeroDivisionError there).
                    return Err(Error::InvalidArgument(format!(
                        "RoPE scaling `dynamic` needs rotary dims > 2 (its exponent is d/(d − 2)), got {rotary_dim}"
                    )));
                }
                Ok(())
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                mscale,
                mscale_all_dim,
                attention_factor,
                ..
            } => {
                positive("factor", factor)?;
                nonzero_length("original_max_position_embeddings", original_max_position_embeddings)?;
                positive("beta_fast", beta_fast)?;
                positive("beta_slow", beta_slow)?;
                for (name, value) in [("mscale", mscale), ("mscale_all_dim", mscale_all_dim)] {
                    if let Some(v) = value.filter(|v| !v.is_finite()) {
                        return Err(Error::InvalidArgument(format!(
                            "RoPE scaling `yarn`: {name} {v} must be finite"
                        )));
                    }
                }
                if let Some(af) = attention_factor {
                    positive("attention_factor", af)?;
                }
                Ok(())
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                positive("factor", factor)?;
                positive("low_freq_factor", low_freq_factor)?;
                positive("high_freq_factor", high_freq_factor)?;
                nonzero_length("original_max_position_embeddings", original_max_position_embeddings)?;
                if high_freq_factor <= low_freq_factor {
                    // The smooth factor divides by high − low.
                    return Err(Error::InvalidArgument(format!(
                        "RoPE scaling `llama3`: high_freq_factor {high_freq_factor} must be greater than \
                         low_freq_factor {low_freq_factor}"
                    )));
                }
                Ok(())
            }
        }
    }

    // ANCHOR: inv_freq_and_attention_factor
    /// The frequencies `θ_i` of the `rotary_dim/2` pairs and the attention factor that
    /// multiplies cos and sin, for `base = rope_theta`: transformers' `rope_init_fn(config)`.
    pub fn inv_freq_and_attention_factor(&self, base: f32, rotary_dim: usize) -> Result<(Vec<f32>, f32)> {
        if !(base.is_finite() && base > 1.0) {
            return Err(Error::InvalidArgument(format!(
                "RoPE base (rope_theta) {base} must be finite and > 1"
            )));
        }
        if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) {
            return Err(Error::InvalidArgument(format!("rotary dims {rotary_dim} must be even and > 0")));
        }
        self.validate(rotary_dim)?;
        Ok(match *self {
            RopeScaling::Default => (default_inv_freq(base, rotary_dim), 1.0),
            RopeScaling::Linear { factor } => {
                // `inv_freq /= factor`: an f32 division by the factor rounded to f32.
                (default_inv_freq(base, rotary_dim).into_iter().map(|t| t / factor as f32).collect(), 1.0)
            }
            RopeScaling::DynamicNtk { factor, max_position_embeddings, seq_len } => {
                let base =
                    dynamic_ntk_base(f64::from(base), rotary_dim, factor, max_position_embeddings, seq_len);
                // The new base is a Python float; the power converts it to f32.
                (default_inv_freq(base as f32, rotary_dim), 1.0)
            }
            RopeScaling::Yarn { .. } => yarn::inv_freq_and_attention_factor(self, base, rotary_dim),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let inv_freq = default_inv_freq(base, rotary_dim);
                let params = llama3::Llama3 {
                    factor,
                    low_freq_factor,
                    high_freq_factor,
                    old_context_len: original_max_position_embeddings,
                };
                (params.scale(&inv_freq), 1.0)
            }
        })
    }
    // ANCHOR_END: inv_freq_and_attention_factor
}

// ANCHOR: default_inv_freq
/// `base ** (arange(0, d, 2).float() / d)` in f32, element `i`: the exponent `2i/d` is one f32
/// division (exact integers over an exact integer), the power one f32 `powf`.
pub(crate) fn pos_freq(base: f32, i: usize, rotary_dim: usize) -> f32 {
    base.powf((2 * i) as f32 / rotary_dim as f32)
}

/// Unscaled `θ_i = 1 / base^(2i/d)`, `1.0 / tensor` being an f32 reciprocal.
pub(crate) fn default_inv_freq(base: f32, rotary_dim: usize) -> Vec<f32> {
    (0..rotary_dim / 2).map(|i| 1.0 / pos_freq(base, i, rotary_dim)).collect()
}
// ANCHOR_END: default_inv_freq

// ANCHOR: dynamic_ntk_base
/// Dynamic NTK's base for a sequence of `seq_len` tokens, in Python's f64 arithmetic and order:
/// `base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))`, with `seq_len`
/// first raised to at least `max_pos` (so nothing changes inside the trained context). At
/// `seq_len = max_pos` the bracket is exactly 1; it grows linearly with the length beyond.
pub fn dynamic_ntk_base(
    base: f64,
    rotary_dim: usize,
    factor: f64,
    max_position_embeddings: usize,
    seq_len: usize,
) -> f64 {
    let seq_len = seq_len.max(max_position_embeddings);
    let growth = factor * seq_len as f64 / max_position_embeddings as f64 - (factor - 1.0);
    base * growth.powf(rotary_dim as f64 / (rotary_dim - 2) as f64)
}
// ANCHOR_END: dynamic_ntk_base

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_base_is_unchanged_inside_the_trained_context() {
        assert_eq!(dynamic_ntk_base(10_000.0, 128, 2.0, 4096, 100), 10_000.0);
        assert_eq!(dynamic_ntk_base(10_000.0, 128, 2.0, 4096, 4096), 10_000.0);
        // Twice the context with factor 2: bracket 2·2 − 1 = 3.
        let b = dynamic_ntk_base(10_000.0, 128, 2.0, 4096, 8192);
        assert!((b - 10_000.0 * 3f64.powf(128.0 / 126.0)).abs() < 1e-9);
    }

    #[test]
    fn linear_divides_every_frequency() {
        let (plain, _) = RopeScaling::Default.inv_freq_and_attention_factor(10_000.0, 64).unwrap();
        let (linear, af) =
            RopeScaling::Linear { factor: 4.0 }.inv_freq_and_attention_factor(10_000.0, 64).unwrap();
        assert_eq!(af, 1.0);
        for (p, l) in plain.iter().zip(&linear) {
            assert_eq!(p / 4.0, *l);
        }
    }
}
