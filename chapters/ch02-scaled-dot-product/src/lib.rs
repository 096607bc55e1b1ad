//! Chapter 2: scaled dot-product attention.
//!
//! `Attention(Q, K, V) = softmax(Q Kᵀ / √d + mask) V`, batched over (batch, heads), with
//!
//! - [`sdpa()`]: the CPU version on ndarray (two GEMMs around a row-wise stable softmax), its
//!   log-sum-exp ([`sdpa_with_lse`]), causal and key-padding masks ([`SdpaMask`]);
//! - [`naive`]: the same computation as plain loops on slices, to see what the GEMMs buy;
//! - [`mod@reference`]: an independent f64 version the tests compare against;
//! - [`softmax`]: naive and stable softmax on one row, for the overflow experiment;
//! - [`gpu`]: one CUDA kernel (a block per query row, warp-shuffle and shared-memory
//!   reductions) and its host side;
//! - [`experiments`] and [`figures`]: why 1/√d, where the naive softmax breaks, what N² costs;
//! - [`mod@bench`]: the CPU and GPU benchmarks the `ch02` binary runs, and [`check`]: the
//!   binaries' case-by-case GPU-against-CPU check; [`recorded`]: a recorded GPU run's
//!   benchmark, read back as a table and a figure.
//!
//! Tensors are row-major `(batch, heads, seq, head_dim)` f32.

pub mod bench;
pub mod check;
pub mod experiments;
pub mod figures;
pub mod gpu;
pub mod mask;
pub mod naive;
pub mod prelude;
pub mod recorded;
pub mod reference;
pub mod sdpa;
pub mod softmax;

pub use attn_support::{self, ndarray, plotters};
pub use mask::SdpaMask;
pub use sdpa::{
    SdpaDims, SdpaOptions, attention_weights, check_inputs, log2_units, sdpa, sdpa_with_lse,
    sdpa_with_options,
};
pub use softmax::{log_sum_exp, softmax_naive, softmax_row_in_place, softmax_stable};
