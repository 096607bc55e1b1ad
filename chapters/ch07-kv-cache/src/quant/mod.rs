//! Quantised encodings of a KV-cache block.
//!
//! A block is one layer's, one KV head's keys or values for some tokens: a row-major
//! `(tokens, head_dim)` array of f32. Each encoding turns it into small integer codes plus the
//! metadata (scales, zero points) that map the codes back to numbers, and back again:
//!
//! | module | format | scale shared by | bits per element with metadata |
//! | --- | --- | --- | --- |
//! | [`int8`] | symmetric INT8 | K: one channel over G tokens; V: one token | 8 + 32/G, 8 + 32/d |
//! | [`kivi`] | asymmetric 2/4-bit (KIVI) | K: one channel over G tokens; V: G channels of one token | b + 64/G |
//! | [`fp8`] | FP8 E4M3 (OCP) | the tensor, or one token | 8 (+ 32/d per token) |
//! | [`fp4`] | FP4 E2M1, NVFP4 / MXFP4 | 16 / 32 channels of one token | 4.5 / 4.25 |
//!
//! [`encoding::KvEncoding`] names them (and f32/bf16) for the cache and the figures.
//!
//! Every scale and zero point is stored as f32 (a GPU kernel reads it without conversion); the
//! bits per element count them at 32 bits. Input must be finite: a NaN or an infinity in a KV
//! cache is a bug upstream, so the quantisers return an error naming its position rather than
//! spreading it over a whole group.

pub mod encoding;
pub mod fp4;
pub mod fp8;
pub mod int8;
pub mod kivi;
pub mod packing;

pub use encoding::KvEncoding;

use attn_support::ndarray::ArrayView2;
use attn_support::{Error, Result};

/// The error for the first non-finite element of `block`, if there is one.
pub(crate) fn check_finite(block: ArrayView2<'_, f32>, encoding: &str) -> Result<()> {
    match block.indexed_iter().find(|(_, x)| !x.is_finite()) {
        None => Ok(()),
        Some(((token, channel), x)) => Err(Error::InvalidArgument(format!(
            "{encoding}: element (token {token}, channel {channel}) is {x}; only finite values \
             can be quantised"
        ))),
    }
}

/// The largest magnitude in `values` (0 for none).
pub(crate) fn absmax<'a>(values: impl IntoIterator<Item = &'a f32>) -> f32 {
    values.into_iter().fold(0.0_f32, |m, x| m.max(x.abs()))
}
