//! Chapter 7: the KV cache, from static to dynamic, on the CPU.
//!
//! - [`quant`]: the number formats a quantised cache stores K and V in — symmetric INT8 (K per
//!   channel, V per token), KIVI's asymmetric 2/4-bit groups with a full-precision window, FP8
//!   E4M3 (OCP), FP4 E2M1 with block scales (NVFP4, MXFP4) — each encoding and decoding a
//!   `(tokens, head_dim)` block, tested bit for bit against its specification's value table.
//! - [`caches`]: the caches the real model runs with — quantised, evicting (sliding window,
//!   H2O), low-rank, growing — each an [`attn_model::KvCache`].

pub mod caches;
pub mod calibration;
pub mod experiments;
pub mod figures;
pub mod gpu;
pub mod memory;
pub mod prelude;
pub mod quality;
pub mod quant;
pub mod speed;

pub use attn_model;
pub use attn_support::{self, ndarray};
