//! Chapter 5: fused computation.
//!
//! Attention spends much of its time in steps that do little arithmetic per byte: three
//! projections that each read the same input X, and a scale, a mask and a softmax that each
//! read and write a full score tensor. Fusing them does not change the result; it changes how
//! many times the data crosses the memory bus and how many kernels are launched.
//!
//! What exists (CPU, ndarray; built on chapter 2's [`SdpaMask`] and softmax):
//!
//! - [`softmax_fusion`]: scale + mask + softmax as three passes over full tensors with a
//!   stored 0/−∞ mask, and as one pass per row that computes the mask from indices (causal,
//!   key padding, sliding window) — equal bit for bit, fully masked rows are zeros — with
//!   [`MaskSpec`] for the mask and [`SoftmaxPipeline::bytes_moved`] for the byte model;
//! - [`qkv_projection`]: Q, K, V from three GEMMs against one GEMM over `[W_q; W_k; W_v]`
//!   (GQA-sized), the fused output split into (B, H, N, d) views without a copy ([`repeat_kv`]
//!   for the one copy GQA needs before an attention that wants equal head counts), and the
//!   shapes of SmolLM2-135M and Llama-3-8B, and [`QkvPipeline::bytes_moved`] for its byte model;
//! - [`qkv_epilogue`]: the QKV GEMM's epilogue — RoPE on q and k in the half-rotation layout
//!   from cos/sin tables given as input ([`rotate_half_with_table`]), q laid out (H, n, d), k and
//!   v written into a (H_kv, max_len, d) [`KvCache`] — as three passes and as one, equal bit for
//!   bit, with [`EpiloguePipeline::bytes_moved`];
//! - [`mod@reference`]: independent f64 versions of all three for the tests.
//!
//! On the GPU ([`gpu`]): the QKV projection through cuBLAS, three GEMMs or one (f32 SGEMM
//! without TF32, bf16 GemmEx with f32 accumulation); the epilogue as one kernel or three passes
//! (`kernels/ch05_qkv_epilogue.cu`, f32 and bf16, equal to the CPU bit for bit); scale + mask +
//! softmax as one fused pass (`kernels/ch05_softmax_fusion.cu`: a warp, part of a warp or a
//! block per row chosen by the row length, 128-bit loads and stores, the mask from indices)
//! and as the unfused three-kernel chain. [`softmax_bench`] and [`qkv_bench`] time them for
//! `ch05 --bench-softmax`, `--bench-qkv` and `--bench-epilogue` against the device's copy
//! bandwidth, beside the PyTorch peers (`xtask/baselines/torch_softmax.py`, `torch_qkv.py`);
//! [`figures`] draws the byte models and a recorded run's times (`ch05 --out`,
//! `--figures-from`). The book chapter is `docs/src/05-fused-computation.md`, the notebook
//! `notebooks/05-fused-computation.ipynb`.
//!
//! Measured on a GPU once, all of it: an H200 on 2026-12-05 (tests, the three benchmarks with
//! their PyTorch peers, Nsight Compute's `dram__bytes_read.sum` / `dram__bytes_write.sum` against
//! the models here, the sanitizers), in `docs/src/results/h200-2026-12-05-ch05-ch06/`; an earlier
//! softmax kernel ran on an H100 (`docs/src/results/h100-2026-12-05-ch05-softmax/`).
//!
//! Tensors are row-major f32: scores (batch, heads, Nq, Nk), activations (batch, tokens, d_model),
//! weights (out features, in features) as PyTorch's `nn.Linear` stores them.

pub mod bytes;
pub mod figures;
pub mod gpu;
pub mod prelude;
pub mod qkv_bench;
pub mod qkv_cpu_bench;
pub mod qkv_epilogue;
pub mod qkv_projection;
pub mod reference;
pub mod softmax_bench;
pub mod softmax_fusion;

pub use attn_support::{self, ndarray, plotters};
pub use bytes::BytesMoved;
pub use ch02_scaled_dot_product::SdpaMask;
pub use qkv_epilogue::{
    EpiloguePipeline, EpilogueShape, KvCache, epilogue_fused, epilogue_unfused, llama_rope_tables,
    rotate_half_with_table,
};
pub use qkv_projection::{
    FusedQkv, LLAMA3_8B, Qkv, QkvDims, QkvPipeline, SMOLLM2_135M, concat_weights, qkv_fused, qkv_unfused,
    repeat_kv,
};
pub use softmax_fusion::{
    MaskSpec, ScoreShape, SoftmaxPipeline, scale_mask_softmax_fused, scale_mask_softmax_unfused,
};
