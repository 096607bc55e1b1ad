//! Decode attention on the GPU over a quantised KV cache (`kernels/ch07_decode_attention.cu` and
//! `kernels/ch07_decode_pipelined.cu`):
//! one new query token per sequence attends to its cached keys and values, which the kernel
//! reads in bf16, INT8, FP8 or NVFP4 and dequantises in registers.
//!
//! Decoding reads the whole cache to produce one token: 2 · kv_heads · T · d elements for a
//! handful of FLOPs each, so its speed is the cache's bytes over the memory bandwidth, and a
//! cache of fewer bytes per element is read proportionally faster — the point of quantising
//! it. The kernel is split-K ("flash-decoding"): each block takes a chunk of one sequence's
//! context for one KV head, so that even one long sequence fills the GPU, and computes all
//! `G = q_heads / kv_heads` query heads of the group against each K/V row it loads (GQA: the
//! cache is read once, not G times). A second kernel merges the chunks' partial softmaxes.
//!
//! - [`cache`]: the cache layout, made on the host with chapter 7's [`crate::quant`] encoders;
//! - [`device`]: the cache, lengths and scratch space on the device;
//! - [`plan`]: the split plan (how many blocks share a sequence's context);
//! - [`launch`]: the launch checks and the launch;
//! - [`reference`](mod@reference): the f64 CPU reference the tests compare with;
//! - [`check`]: the `ch07` binary's check against the CPU;
//! - [`bench`](mod@bench): the benchmark of the `ch07` binary (`--bench-decode`) and its figure;
//! - [`recorded`]: a recorded run of that benchmark, read back (for the notebook and the book).
//!
//! [`decode_attention_gpu`] does it all for host arrays.

pub mod bench;
pub mod cache;
pub mod check;
pub mod device;
pub mod launch;
pub mod plan;
pub mod recorded;
pub mod reference;

pub use cache::{CacheDims, CacheElement, DEFAULT_KEY_GROUP, HostKvCache, QuantizedCache, quantize_cache};
pub use device::{DecodeWorkspace, DeviceKvCache, DeviceLengths};
pub use launch::{
    DecodeAttention, DecodeKernel, check_launch, kernel_name, mma_shared_bytes, pipelined_shared_bytes,
    versioned_kernel_name,
};
pub use plan::{
    SplitPlan, WavePlan, check_max_chunk, check_min_waves, plan_splits, plan_splits_for_waves,
    plan_splits_in_whole_waves, plan_splits_up_to,
};
pub use reference::decode_attention_reference;

use attn_support::gpu::Gpu;
use attn_support::ndarray::{Array3, ArrayView3};
use attn_support::{Error, Result};

/// Decode attention on the GPU for host arrays: `q` `(batch, q_heads, d)` f32 against `cache`
/// (uploaded here), the output `(batch, q_heads, d)` f32, with the split plan it used.
pub fn decode_attention_gpu(
    gpu: &Gpu,
    kernel: &DecodeAttention,
    q: ArrayView3<f32>,
    cache: &HostKvCache,
) -> Result<(Array3<f32>, SplitPlan)> {
    let dims = cache.dims;
    let want = [dims.batch, dims.kv_heads * kernel.group(), dims.head_dim];
    if q.shape() != want {
        return Err(Error::shapes(
            "decode attention: q is (batch, kv_heads · group, head_dim) of the cache and kernel",
            "q",
            q.shape(),
            "(batch, q_heads, head_dim)",
            &want,
        ));
    }
    let device = DeviceKvCache::upload(gpu, cache)?;
    let lengths = DeviceLengths::upload(gpu, &cache.lengths)?;
    let q_buf = gpu.upload(&q)?;
    let mut out = gpu.zeros::<f32>(q.len())?;
    let mut workspace = DecodeWorkspace::new();
    let plan = kernel.launch(gpu, &q_buf, &device, &lengths, &mut out, &mut workspace)?;
    Ok((gpu.download(&out, q.raw_dim())?, plan))
}
