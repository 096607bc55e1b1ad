//! Chapter 12: performance tuning, from algorithm to hardware.
//!
//! - [`precision`]: bf16 inputs, a naive bf16 attention (the accuracy yardstick) and
//!   FlashAttention's error rule: a kernel may be at most twice as far from the f64 reference
//!   as the naive bf16 implementation.
//! - [`ladder`]: the rungs of the optimisation ladder, what each adds and what it predicts.
//! - [`gpu`]: the bf16 device buffers and the launch of every rung's kernel.
//! - [`approximate`]: the algorithm level — block-sparse and linear attention on the CPU, their
//!   error and speed against exact attention.
//! - [`ceilings`] and [`roofline`]: the hardware level — the H100's measured copy bandwidth
//!   and bf16 GEMM rate, and every kernel of the book placed under them.
//! - [`occupancy`]: resident blocks per SM (the support crate's calculation), checked against
//!   the ladder's rungs.
//! - [`tables`]: the results as the notebook prints them.
//! - [`graphs`] and [`streams`]: the system level — CUDA graphs against per-launch overhead,
//!   and independent small calls run concurrently on several streams.
//!
//! Masks, shapes and the f64 reference come from chapter 2; the f32 rung is chapter 3's kernel.

pub mod approximate;
pub mod bench;
pub mod ceilings;
pub mod figures;
pub mod gpu;
pub mod graphs;
pub mod ladder;
pub mod occupancy;
pub mod precision;
pub mod prelude;
pub mod roofline;
pub mod streams;
pub mod tables;
pub mod tma;
pub mod tuning;

pub use attn_support::{self, ndarray, plotters};
pub use ch02_scaled_dot_product::{self as ch02, SdpaMask};
pub use half::bf16;
