//! Chapter 6: rotary position embedding (RoPE), on the CPU.
//!
//! What exists so far:
//!
//! - [`rope`]: RoPE as rotations of dimension pairs in f32, both layouts ([`RopeLayout`]:
//!   half-rotation of GPT-NeoX / Hugging Face Llama, interleaved of GPT-J / Meta / GGUF),
//!   partial rotary, frequencies and angles computed in the order Hugging Face transformers
//!   uses, a cos/sin table ([`RopeCache`]) and the same computation on the fly ([`apply_rope`]);
//! - [`mod@reference`]: an independent f64 RoPE in complex form the tests compare against;
//! - [`layout`]: the per-head permutation of `W_q` / `W_k` rows that converts a checkpoint
//!   between the two layouts;
//! - [`decay`]: RoFormer's long-term decay bound on `q·k` against the relative distance;
//! - [`encodings`]: the encodings before RoPE — the sinusoidal table, ALiBi's slopes (any head
//!   count) and bias, T5's relative-position buckets;
//! - [`curves`] and [`figures`]: the numbers and figures of the `ch06` binary — the rotation of
//!   one pair, the decay of `q·k` with the distance (RoFormer's bound and scores through
//!   [`apply_rope`]), the frequency and wavelength of every pair against context lengths.
//!
//! - [`comparison`]: the encodings side by side — where the position enters, parameters, cost,
//!   extrapolation as the literature reports it (sources named), models that use each.
//! - [`gpu`]: RoPE on the GPU (`kernels/ch06_rope.cu`), in place on `(tokens, heads, head_dim)`
//!   with a position per token, both layouts, partial rotary, f32 or bf16 storage, angles from
//!   the cache or on the fly (`sincosf` or `__sincosf`), every bound checked on the host;
//!   [`agreement`] compares it with the CPU, [`precision`] measures each angle source against f64
//!   at positions up to 131 072, and [`bench`](mod@bench) times it against the device's copy bandwidth
//!   (`ch06 --bench-gpu`; PyTorch's peer is `xtask/baselines/torch_rope.py`).
//!
//! - [`scaling`]: the scalings exactly as transformers 5.17 computes them (default, linear,
//!   dynamic NTK, YaRN, Llama 3), parsed from a config's `rope_parameters`, carried by
//!   [`RopeConfig::with_scaling`] into the cache and the on-the-fly path (cos/sin times YaRN's
//!   attention factor); `tests/hf_fixtures.rs` compares them, and T5's buckets, with values
//!   transformers produced (`fixtures/make_hf_fixtures.py`); [`scaling_figure`] draws scaled
//!   against unscaled wavelengths.
//!
//! RoPE fused into the QKV GEMM's epilogue is chapter 5's (`ch05_fused_computation::qkv_epilogue`);
//! `tests/chapter5_epilogue.rs` checks that its tables and rotation are this chapter's, bit for
//! bit. The book chapter is `docs/src/06-rope.md`, the notebook `notebooks/06-rope.ipynb`. Not
//! yet run on a GPU: the kernel's tests, its benchmark against the copy bandwidth and Hugging
//! Face's `apply_rotary_pos_emb`, the sanitizers (`ATTN_CHAPTERS=ch06 bash
//! target/gpu-bundle/run.sh`).
//!
//! Tensors are row-major `(batch, heads, seq, head_dim)` f32, rotated in place.

pub mod agreement;
pub mod bench;
pub mod comparison;
pub mod curves;
pub mod decay;
pub mod encodings;
pub mod figures;
pub mod gpu;
pub mod layout;
pub mod precision;
pub mod prelude;
pub mod reference;
pub mod rope;
pub mod scaling;
pub mod scaling_figure;

pub use attn_support::{self, ndarray, plotters};
pub use rope::{MAX_EXACT_POSITION, RopeCache, RopeConfig, RopeLayout, apply_rope};
pub use scaling::{HfRopeParameters, RopeScaling};
