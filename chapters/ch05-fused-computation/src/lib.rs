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
//! softmax. [`qkv_bench`] times fusions 1 and 3 for `ch05 --bench-qkv` / `--bench-epilogue`.
//!
//! Still to come for chapter 5: the GPU side — the fused softmax kernel with
//! 128-bit vectorised loads and warp- against block-per-row variants chosen by row length; the
//! unfused kernel chain; bytes measured with Nsight Compute (`dram__bytes_read.sum`,
//! `dram__bytes_write.sum`) against the model here; benchmarks against `torch.softmax`, PyTorch
//! eager `masked_fill` + `softmax` and the device's copy bandwidth; the `ch05` binary and its
//! figures (bytes and time, unfused against fused); the notebook and the book chapter.
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
