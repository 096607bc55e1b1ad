//! Chapter 5 on the GPU: kernels compiled at run time by NVRTC from `kernels/ch05_*.cu`, every
//! launch checked on the host first so that no kernel can read or write out of bounds.
//!
//! - [`qkv`]: the QKV projection through cuBLAS, three GEMMs or one over `[W_q; W_k; W_v]`, f32
//!   and bf16 (f32 accumulation);
//! - [`qkv_epilogue`]: RoPE on q and k and the KV-cache write, one kernel or three passes;
//! - [`softmax`]: scale + mask + softmax, fused (a warp or a block per row, mask from indices,
//!   f32 or bf16 storage) and as the unfused three-kernel chain with a stored mask tensor.

pub mod qkv;
pub mod qkv_epilogue;
pub mod softmax;
