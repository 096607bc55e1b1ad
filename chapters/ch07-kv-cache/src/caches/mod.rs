//! The caches of chapter 7, each a [`attn_model::KvCache`] the real model runs with. The
//! standard one, a contiguous full-precision array preallocated per layer, is the model crate's
//! [`attn_model::DenseKvCache`]; this chapter adds:
//!
//! - [`encoded`]: keys and values in INT8, KIVI 2/4-bit, FP8, NVFP4 or MXFP4, or projected to a
//!   low rank ([`low_rank`]);
//! - [`eviction`]: a sliding window and H2O's heavy hitters;
//! - [`low_rank`]: keys and values projected on a basis learnt from calibration text;
//! - [`growing`]: full precision, allocated as the sequence grows (chunks, doubling);
//! - [`budget`]: a budget per layer chosen from how concentrated each layer's attention is.

pub mod budget;
pub mod encoded;
pub mod eviction;
pub mod growing;
pub mod low_rank;
