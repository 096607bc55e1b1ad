//! Chapter 5 on the GPU: kernels compiled at run time by NVRTC from `kernels/ch05_*.cu`, every
//! launch checked on the host first so that no kernel can read or write out of bounds.
//!
//! - [`softmax`]: scale + mask + softmax, fused (a warp or a block per row, mask from indices,
//!   f32 or bf16 storage) and as the unfused three-kernel chain with a stored mask tensor.

pub mod softmax;
