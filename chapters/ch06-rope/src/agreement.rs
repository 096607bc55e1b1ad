//! The GPU RoPE against the CPU's on one input, for the `ch06` binary and the notebook: the
//! relative error, and whether the two are bit-identical (they are from the cache, where the
//! kernel evaluates the CPU's expressions on the CPU's table without FMA contraction).

use crate::gpu::{AngleSource, RopeElement, RopeKernel, cpu_rope_at_positions, rope_gpu};
use crate::rope::{RopeCache, RopeConfig};
use attn_support::gpu::Gpu;
use attn_support::ndarray::Array3;
use attn_support::{Result, compare};

/// One kernel's agreement with the CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    pub storage: &'static str,
    pub source: AngleSource,
    /// ‖GPU − CPU‖₂ / ‖CPU‖₂.
    pub rel_err: f64,
    pub bit_identical: bool,
}

/// RoPE of `x` `(tokens, heads, head_dim)` at `positions` on the GPU in storage `T` with
/// `source`, against the CPU on the same inputs (rounded to `T`) with its result rounded once
/// to `T`. `cache` must cover the positions; it is the CPU's table for [`AngleSource::Cache`].
pub fn agreement<T: RopeElement>(
    gpu: &Gpu,
    cache: &RopeCache,
    source: AngleSource,
    x: &Array3<f32>,
    positions: &[u32],
) -> Result<Agreement> {
    let config: &RopeConfig = cache.config();
    let kernel = match source {
        AngleSource::Cache => RopeKernel::<T>::with_cache(gpu, cache)?,
        _ => RopeKernel::<T>::on_the_fly(gpu, config, source)?,
    };
    let x_t = x.mapv(T::from_f32);
    let got = rope_gpu(gpu, &kernel, x_t.view(), positions)?.mapv(T::to_f32);
    let mut want = x_t.mapv(T::to_f32);
    let cpu_cache = (source == AngleSource::Cache).then_some(cache);
    cpu_rope_at_positions(config, cpu_cache, want.view_mut(), positions)?;
    let want = want.mapv(|v| T::from_f32(v).to_f32());
    Ok(Agreement {
        storage: T::NAME,
        source,
        rel_err: compare(&got, &want)?.rel_err,
        bit_identical: got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
    })
}
