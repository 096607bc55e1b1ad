//! NVFP4: E2M1 elements in blocks of 16 with an E4M3 block scale and an f32 tensor scale
//! (NVIDIA, "Introducing NVFP4 for efficient and accurate low-precision inference", 2025; the
//! Blackwell tensor cores' `nvf4` block-scaled format).
//!
//! Two levels of scale, so that the block scales — an E4M3 number each, range 2^−9 … 448 —
//! cover a tensor of any magnitude:
//!
//! ```text
//! t  = absmax(tensor) / (6 · 448)                    f32, per tensor
//! sᵦ = E4M3(absmax(block) / (6 · t))                 per block of 16, round to nearest even
//! q  = E2M1(x / (sᵦ · t))                            per element, ties to even, saturating at ±6
//! x̂  = e2m1(q) · sᵦ · t
//! ```
//!
//! The block with the tensor's largest magnitude gets `sᵦ = 448`, the others proportionally
//! less. Rounding `sᵦ` to E4M3 (3 mantissa bits) can move it by up to 1/16 either way, so a
//! block's largest element may land slightly above 6 and saturate — the price of an 8-bit scale
//! that, unlike MXFP4's power of two, puts the block maximum close to 6. A block below about
//! 2^−10 / 448 of the tensor maximum gets `sᵦ = 0`, and its elements read back as 0.

use super::super::absmax;
use super::super::check_finite;
use super::super::fp8::{E4M3_MAX, e4m3_to_f32, f32_to_e4m3};
use super::{E2M1_MAX, Fp4Block, Fp4Format, pack_rows};
use attn_support::ndarray::{Array2, ArrayView2, s};
use attn_support::{Error, Result};

/// Elements per block.
pub const BLOCK_SIZE: usize = 16;

/// The tensor scale for a tensor whose largest magnitude is `absmax`: `absmax / (6·448)`, or 1
/// for an all-zero tensor (any scale encodes zeros).
pub fn nvfp4_tensor_scale(absmax: f32) -> f32 {
    if absmax == 0.0 { 1.0 } else { absmax / (E2M1_MAX * E4M3_MAX) }
}

/// The E4M3 code of the scale of a block with largest magnitude `block_absmax`.
pub fn nvfp4_block_scale_code(block_absmax: f32, tensor_scale: f32) -> u8 {
    f32_to_e4m3(block_absmax / (E2M1_MAX * tensor_scale))
}

/// The factor a block's E2M1 values are multiplied by: `e4m3(code) · t`.
pub fn block_scale_value(code: u8, tensor_scale: f32) -> f32 {
    e4m3_to_f32(code) * tensor_scale
}

/// Quantises a block with its own tensor scale.
pub fn quantize_nvfp4(block: ArrayView2<'_, f32>) -> Result<Fp4Block> {
    check_finite(block, "NVFP4")?;
    quantize_nvfp4_with_tensor_scale(block, nvfp4_tensor_scale(absmax(block.iter())))
}

/// Quantises a block with a given tensor scale (e.g. one fixed for the whole cache); block
/// scales beyond what E4M3 holds saturate at 448.
pub fn quantize_nvfp4_with_tensor_scale(block: ArrayView2<'_, f32>, tensor_scale: f32) -> Result<Fp4Block> {
    check_finite(block, "NVFP4")?;
    if !(tensor_scale.is_finite() && tensor_scale > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "NVFP4: the tensor scale is {tensor_scale}; it must be finite and positive"
        )));
    }
    let (tokens, head_dim) = block.dim();
    let blocks_per_row = head_dim.div_ceil(BLOCK_SIZE);
    let block_scales = Array2::from_shape_fn((tokens, blocks_per_row), |(t, b)| {
        let end = ((b + 1) * BLOCK_SIZE).min(head_dim);
        nvfp4_block_scale_code(absmax(block.slice(s![t, b * BLOCK_SIZE..end])), tensor_scale)
    });
    let packed = pack_rows(block, BLOCK_SIZE, |t, b| block_scale_value(block_scales[(t, b)], tensor_scale))?;
    Ok(Fp4Block { format: Fp4Format::Nvfp4, tokens, head_dim, packed, block_scales, tensor_scale })
}
