//! The `ch07` binary's check of the GPU decode attention against the CPU: every element type on
//! Llama's and SmolLM2's head shapes, a batch of different lengths, the largest difference from
//! the f64 reference over the same dequantised cache (`tests/decode_gpu.rs` holds the bounds).

use super::cache::{CacheElement, DEFAULT_KEY_GROUP, quantize_cache};
use super::launch::DecodeAttention;
use super::plan::SplitPlan;
use super::{decode_attention_gpu, decode_attention_reference};
use attn_support::Result;
use attn_support::data::randn;
use attn_support::gpu::Gpu;

/// (query heads, KV heads, head dim) of the check: Llama-3-8B's and SmolLM2-135M's.
pub const CHECK_HEADS: [(usize, usize, usize); 2] = [(32, 8, 128), (9, 3, 64)];
/// Lengths of the check's batch: none a multiple of a chunk, one empty, one a single token.
pub const CHECK_LENGTHS: [u32; 4] = [3001, 0, 1, 777];

/// One element type and head shape against the reference.
#[derive(Clone, Debug)]
pub struct CheckRow {
    pub element: CacheElement,
    pub heads: (usize, usize, usize),
    pub plan: SplitPlan,
    /// max |GPU − reference| and max |reference| over the outputs.
    pub max_abs_err: f64,
    pub max_abs: f64,
}

/// Run the check.
pub fn gpu_against_cpu(gpu: &Gpu) -> Result<Vec<CheckRow>> {
    let mut rows = Vec::new();
    let capacity = *CHECK_LENGTHS.iter().max().expect("lengths") as usize;
    for (i, heads @ (q_heads, kv_heads, d)) in CHECK_HEADS.into_iter().enumerate() {
        let batch = CHECK_LENGTHS.len();
        let k = randn((batch, kv_heads, capacity, d), 10 + i as u64);
        let v = randn((batch, kv_heads, capacity, d), 20 + i as u64);
        let q = randn((batch, q_heads, d), 30 + i as u64);
        for element in CacheElement::all(DEFAULT_KEY_GROUP) {
            let quantized = quantize_cache(element, k.view(), v.view(), &CHECK_LENGTHS)?;
            let kernel = DecodeAttention::new(gpu, element, d, q_heads / kv_heads)?;
            let (got, plan) = decode_attention_gpu(gpu, &kernel, q.view(), &quantized.cache)?;
            let want = decode_attention_reference(
                q.view(),
                quantized.k_read.view(),
                quantized.v_read.view(),
                &CHECK_LENGTHS,
            )?;
            let max_abs_err =
                got.iter().zip(&want).fold(0.0f64, |m, (&g, &w)| m.max((f64::from(g) - w).abs()));
            let max_abs = want.iter().fold(0.0f64, |m, &w| m.max(w.abs()));
            rows.push(CheckRow { element, heads, plan, max_abs_err, max_abs });
        }
    }
    Ok(rows)
}
