//! FP8 E4M3 as the OCP 8-bit floating point specification defines it (OFP8 rev. 1.0, 2023; the
//! format PyTorch calls `float8_e4m3fn`).
//!
//! A code `S EEEE MMM` (sign, 4 exponent bits with bias 7, 3 mantissa bits) stands for
//!
//! ```text
//! E = 0:           (−1)^S · M/8 · 2^−6            subnormals, down to 2^−9
//! 1 ≤ E ≤ 15:      (−1)^S · (1 + M/8) · 2^(E−7)   normals, 2^−6 up to 1.75·2^8 = 448
//! E = 15, M = 7:   NaN                            (0x7F and 0xFF; no infinities)
//! ```
//!
//! The format gives up infinities to gain the binade `[256, 448]`: E = 15 is an ordinary
//! exponent except for the one NaN pattern.
//!
//! **Encoding.** Round to nearest, ties to even mantissa. A value beyond the largest finite one
//! has nowhere to go: the spec allows a *saturating* conversion (to ±448) or a *non-saturating*
//! one (to NaN). This cache saturates — an element at ±448 is wrong by the amount it overflowed,
//! a NaN poisons every score and every output that reads the token — as CUDA's
//! `__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)` does. Infinities saturate too (the quantisers
//! reject non-finite input before it gets here); NaN stays NaN with its sign. PyTorch's
//! `x.to(torch.float8_e4m3fn)` does exactly this in torch 2.15 (checked on the CPU:
//! `tests/fixtures/quant/make_fp8_fixture.py`), since pytorch/pytorch#178817 (merged
//! 2026-04-17); before it, the CPU conversion was non-saturating: every |x| > 464 and ±inf
//! became NaN.
//!
//! **Scaling.** K and V have magnitudes anywhere from 0.01 to 100, so values are divided by a
//! scale `s = absmax / 448` first — per tensor (one static scale, e.g. from calibration, and
//! saturation catches what exceeds it), or per token (one f32 per `head_dim` values) — and
//! multiplied back on reading: `x̂ = decode(code)·s`.

use super::{absmax, check_finite};
use attn_support::ndarray::{Array2, ArrayView2};
use attn_support::{Error, Result};

/// The largest finite E4M3 value, `1.75 · 2^8`.
pub const E4M3_MAX: f32 = 448.0;
/// The code of +448 (the sign bit gives −448, `0xFE`).
pub const E4M3_MAX_CODE: u8 = 0x7E;
/// The NaN code (`0xFF` is the negative one).
pub const E4M3_NAN_CODE: u8 = 0x7F;
/// Exponent bias of E4M3.
const BIAS: i32 = 7;
/// The smallest normal E4M3 value, `2^−6`; below it the spacing is the subnormal one, `2^−9`.
const MIN_NORMAL: f32 = 1.0 / 64.0;

/// The value of an E4M3 code.
pub fn e4m3_to_f32(code: u8) -> f32 {
    let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((code >> 3) & 0x0F);
    let mantissa = f32::from(code & 0x07);
    if exponent == 15 && mantissa == 7.0 {
        return f32::NAN.copysign(sign);
    }
    let magnitude = if exponent == 0 {
        mantissa / 8.0 * MIN_NORMAL
    } else {
        (1.0 + mantissa / 8.0) * 2f32.powi(exponent - BIAS)
    };
    sign * magnitude
}

/// The E4M3 code nearest `x` (ties to even), saturating at ±448; NaN gives NaN.
pub fn f32_to_e4m3(x: f32) -> u8 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0x00 };
    let a = x.abs();
    if a.is_nan() {
        return sign | E4M3_NAN_CODE;
    }
    // Everything from 448 up rounds to 448 or would round to 480 (the NaN pattern's place).
    if a >= E4M3_MAX {
        return sign | E4M3_MAX_CODE;
    }
    if a < MIN_NORMAL {
        // Subnormals are the integers 0..=8 times 2^−9 (8 is 2^−6, the first normal's code):
        // scaling by 2^9 is exact, and rounding to an integer is the rounding to the grid.
        return sign | (a * 512.0).round_ties_even() as u8;
    }
    // A normal f32 1.m·2^e with e ≥ −6: keep 3 of its 23 mantissa bits and round on the 20
    // dropped ones. The code's exponent and mantissa fields are contiguous, so a mantissa that
    // rounds up to 8 carries into the exponent by plain integer addition.
    let bits = a.to_bits();
    let exponent = ((bits >> 23) & 0xFF) as i32 - 127;
    let mantissa = bits & 0x7F_FFFF;
    let mut code = (((exponent + BIAS) as u32) << 3) | (mantissa >> 20);
    let dropped = mantissa & 0xF_FFFF;
    const HALF: u32 = 0x8_0000;
    if dropped > HALF || (dropped == HALF && code & 1 == 1) {
        code += 1;
    }
    sign | code.min(u32::from(E4M3_MAX_CODE)) as u8
}

/// Which elements share a scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fp8Scaling {
    /// One scale for the whole block.
    PerTensor,
    /// One scale per token.
    PerToken,
}

impl Fp8Scaling {
    /// Bits per element with the f32 scales (a per-tensor scale counts as nothing).
    pub fn bits_per_element(self, head_dim: usize) -> f64 {
        match self {
            Fp8Scaling::PerTensor => 8.0,
            Fp8Scaling::PerToken => 8.0 + 32.0 / head_dim as f64,
        }
    }
}

/// The scale that maps a largest magnitude `absmax` to 448 (0 for an all-zero group).
pub fn fp8_scale(absmax: f32) -> f32 {
    absmax / E4M3_MAX
}

/// A `(tokens, head_dim)` block in E4M3 with f32 scales.
#[derive(Clone, Debug, PartialEq)]
pub struct Fp8Block {
    pub scaling: Fp8Scaling,
    /// `(tokens, head_dim)` E4M3 codes of `x / s`.
    pub codes: Array2<u8>,
    /// One scale per tensor, or one per token.
    pub scales: Vec<f32>,
}

impl Fp8Block {
    /// The scale of token `token`.
    pub fn scale_of(&self, token: usize) -> f32 {
        match self.scaling {
            Fp8Scaling::PerTensor => self.scales[0],
            Fp8Scaling::PerToken => self.scales[token],
        }
    }

    /// The block read back: `x̂ = decode(code)·s`.
    pub fn dequantize(&self) -> Array2<f32> {
        Array2::from_shape_fn(self.codes.dim(), |(t, c)| e4m3_to_f32(self.codes[(t, c)]) * self.scale_of(t))
    }
}

/// The code of `x` under `scale` (0 when the scale is 0: an all-zero group).
pub fn fp8_code(x: f32, scale: f32) -> u8 {
    if scale == 0.0 { 0 } else { f32_to_e4m3(x / scale) }
}

/// Quantises a block with scales from its own absmax (per tensor or per token).
pub fn quantize_fp8(block: ArrayView2<'_, f32>, scaling: Fp8Scaling) -> Result<Fp8Block> {
    check_finite(block, "FP8 E4M3")?;
    let scales: Vec<f32> = match scaling {
        Fp8Scaling::PerTensor => vec![fp8_scale(absmax(block.iter()))],
        Fp8Scaling::PerToken => block.rows().into_iter().map(|r| fp8_scale(absmax(r))).collect(),
    };
    let codes = Array2::from_shape_fn(block.dim(), |(t, c)| {
        let scale = if scaling == Fp8Scaling::PerTensor { scales[0] } else { scales[t] };
        fp8_code(block[(t, c)], scale)
    });
    Ok(Fp8Block { scaling, codes, scales })
}

/// Quantises a block with a given per-tensor scale (a static scale, e.g. calibrated on other
/// text); elements beyond `448·scale` saturate.
pub fn quantize_fp8_with_scale(block: ArrayView2<'_, f32>, scale: f32) -> Result<Fp8Block> {
    check_finite(block, "FP8 E4M3")?;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "FP8 E4M3: the scale is {scale}; it must be finite and positive"
        )));
    }
    Ok(Fp8Block {
        scaling: Fp8Scaling::PerTensor,
        codes: block.mapv(|x| fp8_code(x, scale)),
        scales: vec![scale],
    })
}
