//! FP4 E2M1 and the two block-scaled formats built on it, NVFP4 and MXFP4.
//!
//! **E2M1** (OCP Microscaling Formats spec v1.0, §5.3.3): a code `S EE M` — sign, 2 exponent
//! bits with bias 1, 1 mantissa bit — stands for
//!
//! ```text
//! E = 0:      (−1)^S · M · 0.5             0, 0.5
//! E ≥ 1:      (−1)^S · (1 + M/2) · 2^(E−1)  1, 1.5, 2, 3, 4, 6
//! ```
//!
//! No infinities, no NaN: sixteen codes, ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}. Encoding rounds to
//! nearest, ties to the even code (the one whose mantissa bit is 0), and saturates at ±6 as the
//! MX spec prescribes for formats without infinities.
//!
//! Eight magnitudes cannot cover the range of a tensor, so every small block of elements gets a
//! scale, chosen so that the block's largest magnitude lands near 6:
//!
//! - [`nvfp4`]: 16 elements per block, the scale an E4M3 number, and one f32 scale per tensor
//!   so the block scales fit E4M3's range — 4 + 8/16 = 4.5 bits per element;
//! - [`mxfp4`]: 32 elements per block, the scale a power of two (E8M0) — 4.25 bits per element.
//!
//! Blocks run along `head_dim` within one token (the last one may be shorter). Codes are packed
//! two to a byte, the first element in the low nibble ([`super::packing`]).

pub mod mxfp4;
pub mod nvfp4;

use super::packing::{packed_len, unpack_codes};
use attn_support::Result;
use attn_support::ndarray::Array2;

/// The largest E2M1 magnitude.
pub const E2M1_MAX: f32 = 6.0;

/// The magnitude of each of the eight non-negative E2M1 codes.
const MAGNITUDES: [f32; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];

/// The value of an E2M1 code (its low 4 bits).
pub fn e2m1_to_f32(code: u8) -> f32 {
    let magnitude = MAGNITUDES[usize::from(code & 0x7)];
    if code & 0x8 != 0 { -magnitude } else { magnitude }
}

/// The E2M1 code nearest `x`, ties to the even code, saturating at ±6. (E2M1 has no NaN: pass
/// finite values: a NaN falls through every comparison and gives ±6.)
pub fn f32_to_e2m1(x: f32) -> u8 {
    let sign = if x.is_sign_negative() { 0x8 } else { 0x0 };
    let a = x.abs();
    // The midpoints between neighbouring magnitudes; at a midpoint the even code wins, so the
    // comparison is `≤` below an even code's upper midpoint and `<` below an odd one's.
    let magnitude_code = if a <= 0.25 {
        0
    } else if a < 0.75 {
        1
    } else if a <= 1.25 {
        2
    } else if a < 1.75 {
        3
    } else if a <= 2.5 {
        4
    } else if a < 3.5 {
        5
    } else if a <= 5.0 {
        6
    } else {
        7
    };
    sign | magnitude_code
}

/// The two block-scaled FP4 formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fp4Format {
    /// 16 elements per block, E4M3 block scale, f32 tensor scale.
    Nvfp4,
    /// 32 elements per block, E8M0 block scale.
    Mxfp4,
}

impl Fp4Format {
    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            Fp4Format::Nvfp4 => nvfp4::BLOCK_SIZE,
            Fp4Format::Mxfp4 => mxfp4::BLOCK_SIZE,
        }
    }

    /// Bits per element with the 8-bit block scale (NVFP4's tensor scale not counted): 4.5 and
    /// 4.25.
    pub fn bits_per_element(self) -> f64 {
        4.0 + 8.0 / self.block_size() as f64
    }
}

/// A `(tokens, head_dim)` block in NVFP4 or MXFP4.
#[derive(Clone, Debug, PartialEq)]
pub struct Fp4Block {
    pub format: Fp4Format,
    pub tokens: usize,
    pub head_dim: usize,
    /// E2M1 codes, row by row, two to a byte, each row `⌈head_dim / 2⌉` bytes.
    pub packed: Vec<u8>,
    /// `(tokens, ⌈head_dim / block⌉)` scale codes: E4M3 for NVFP4, E8M0 for MXFP4.
    pub block_scales: Array2<u8>,
    /// NVFP4's per-tensor f32 scale (1 for MXFP4).
    pub tensor_scale: f32,
}

impl Fp4Block {
    /// The factor block `(token, block)`'s codes are multiplied by.
    pub fn block_scale(&self, token: usize, block: usize) -> f32 {
        let code = self.block_scales[(token, block)];
        match self.format {
            Fp4Format::Nvfp4 => nvfp4::block_scale_value(code, self.tensor_scale),
            Fp4Format::Mxfp4 => mxfp4::e8m0_to_f32(code),
        }
    }

    /// The E2M1 codes unpacked, `(tokens, head_dim)`.
    pub fn codes(&self) -> Result<Array2<u8>> {
        let row_bytes = packed_len(self.head_dim, 4);
        let mut codes = Array2::zeros((self.tokens, self.head_dim));
        for t in 0..self.tokens {
            let row = unpack_codes(&self.packed[t * row_bytes..], 4, self.head_dim)?;
            codes.row_mut(t).iter_mut().zip(row).for_each(|(c, r)| *c = r);
        }
        Ok(codes)
    }

    /// The block read back: `x̂ = e2m1(code) · block scale`.
    pub fn dequantize(&self) -> Result<Array2<f32>> {
        let codes = self.codes()?;
        let block = self.format.block_size();
        Ok(Array2::from_shape_fn(codes.dim(), |(t, c)| {
            e2m1_to_f32(codes[(t, c)]) * self.block_scale(t, c / block)
        }))
    }
}

/// The E2M1 code of `x` in a block with scale `scale` (0 when the scale is 0).
fn block_code(x: f32, scale: f32) -> u8 {
    if scale == 0.0 { 0 } else { f32_to_e2m1(x / scale) }
}

/// Packs each row of a block into E2M1 codes, given the scale of every `(token, block)`.
fn pack_rows(
    block: attn_support::ndarray::ArrayView2<'_, f32>,
    block_size: usize,
    scale_of: impl Fn(usize, usize) -> f32,
) -> Result<Vec<u8>> {
    let mut packed = Vec::with_capacity(block.nrows() * packed_len(block.ncols(), 4));
    for (t, row) in block.rows().into_iter().enumerate() {
        let codes: Vec<u8> =
            row.iter().enumerate().map(|(c, &x)| block_code(x, scale_of(t, c / block_size))).collect();
        packed.extend(super::packing::pack_codes(&codes, 4)?);
    }
    Ok(packed)
}
