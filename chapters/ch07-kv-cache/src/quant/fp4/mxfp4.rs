//! MXFP4: E2M1 elements in blocks of 32 sharing a power-of-two scale (OCP Microscaling Formats
//! (MX) spec v1.0, 2023, §5 and §6.3).
//!
//! The shared scale is an E8M0 number — an 8-bit biased exponent and nothing else:
//! code `k` stands for `2^(k − 127)`, `k = 0 … 254`, and 255 is NaN. The spec's conversion
//! (§6.3) picks it from the block's largest magnitude:
//!
//! ```text
//! shared_exp = ⌊log2(absmax)⌋ − emax_elem        emax_elem = 2 for E2M1 (its largest value is 1.5·2²)
//! X          = 2^shared_exp                        clamped to E8M0's 2^−127 … 2^127
//! q          = E2M1(x / X)                         ties to even, clamped to ±6
//! x̂          = e2m1(q) · X
//! ```
//!
//! So `absmax / X` lies in `[4, 8)`: the block maximum maps into E2M1's top binade, and values
//! in `(6, 8)` clamp to 6 — up to 25 % error on the largest element, the cost of a scale that
//! is a bare exponent (a multiply is an exponent add in hardware). An all-zero block has no
//! logarithm; it gets the smallest scale, code 0, as the reference implementation
//! (microsoft/microxcaling) does.

use super::super::{absmax, check_finite};
use super::{Fp4Block, Fp4Format, pack_rows};
use attn_support::Result;
use attn_support::ndarray::{Array2, ArrayView2, s};

/// Elements per block.
pub const BLOCK_SIZE: usize = 32;
/// The exponent of E2M1's largest power of two (6 = 1.5·2²).
pub const E2M1_EMAX: i32 = 2;
/// E8M0's exponent bias.
pub const E8M0_BIAS: i32 = 127;
/// E8M0's NaN code.
pub const E8M0_NAN_CODE: u8 = 0xFF;

/// The value of an E8M0 scale code: `2^(code − 127)`, or NaN for 255.
pub fn e8m0_to_f32(code: u8) -> f32 {
    match code {
        E8M0_NAN_CODE => f32::NAN,
        // 2^−127 is an f32 subnormal: mantissa bit 22 alone.
        0 => f32::from_bits(1 << 22),
        // Otherwise the code is exactly an f32 exponent field with a zero mantissa.
        _ => f32::from_bits(u32::from(code) << 23),
    }
}

/// `⌊log2 a⌋` of a positive finite f32, exactly (from its bits, subnormals included).
pub fn floor_log2(a: f32) -> i32 {
    let bits = a.to_bits() & 0x7FFF_FFFF;
    let exponent_field = (bits >> 23) as i32;
    if exponent_field > 0 {
        exponent_field - 127
    } else {
        // A subnormal is mantissa · 2^−149; its leading one sets the logarithm.
        (31 - bits.leading_zeros() as i32) - 149
    }
}

/// The E8M0 code of the shared scale of a block with largest magnitude `block_absmax`.
pub fn mxfp4_scale_code(block_absmax: f32) -> u8 {
    if block_absmax == 0.0 {
        return 0;
    }
    let shared_exp = floor_log2(block_absmax) - E2M1_EMAX;
    (shared_exp.clamp(-E8M0_BIAS, E8M0_BIAS) + E8M0_BIAS) as u8
}

/// Quantises a `(tokens, head_dim)` block in MXFP4, blocks of 32 along `head_dim`.
pub fn quantize_mxfp4(block: ArrayView2<'_, f32>) -> Result<Fp4Block> {
    check_finite(block, "MXFP4")?;
    let (tokens, head_dim) = block.dim();
    let block_scales = Array2::from_shape_fn((tokens, head_dim.div_ceil(BLOCK_SIZE)), |(t, b)| {
        let end = ((b + 1) * BLOCK_SIZE).min(head_dim);
        mxfp4_scale_code(absmax(block.slice(s![t, b * BLOCK_SIZE..end])))
    });
    let packed = pack_rows(block, BLOCK_SIZE, |t, b| e8m0_to_f32(block_scales[(t, b)]))?;
    Ok(Fp4Block { format: Fp4Format::Mxfp4, tokens, head_dim, packed, block_scales, tensor_scale: 1.0 })
}
