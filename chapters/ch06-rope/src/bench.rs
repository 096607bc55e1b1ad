//! The benchmark of the `ch06` binary (`--bench-gpu`): the RoPE kernel against the device's
//! copy bandwidth, measured in the same run on buffers of the same size.
//!
//! RoPE in place at full rotary reads every byte of `x` once and writes it once — the traffic
//! of copying `x` to another buffer — so a copy is its ceiling, and `copy_fraction` (copy
//! time ÷ RoPE time, both moving `2·|x|` bytes) says how close it gets. The copy is cudarc's
//! device-to-device memcpy (`cuMemcpyAsync`, what PyTorch's `y.copy_(x)` calls for a contiguous
//! copy). Bytes count `x` alone: the cos/sin table (3 % more for bf16 at d = 128) and the
//! positions are the kernel's overhead, not its work.
//!
//! Shapes: a Llama-sized prefill, 16 384 tokens × 32 heads × d = 128 (128 MiB of bf16, far past
//! the H100's 50 MB L2), and SmolLM2-135M's 9 heads × d = 64 at the same token count (18 MiB of
//! bf16: x, and the copy's source and destination, fit in L2, so those rows measure L2 rather
//! than HBM bandwidth). Positions 0 … tokens − 1, base 500 000. Timing: CUDA events, 3 warm-up
//! launches, median of `repeats`.

use crate::gpu::{AngleSource, DevicePositions, RopeElement, RopeKernel, bf16};
use crate::rope::{RopeCache, RopeConfig, RopeLayout};
use attn_support::Result;
use attn_support::cudarc::driver::CudaSlice;
use attn_support::error::DriverContext;
use attn_support::gpu::Gpu;
use attn_support::timing::{Timing, gpu_time};

/// Header of the benchmark CSV (`xtask/baselines/torch_rope.py` writes the same columns; the
/// names of chapter 5's softmax benchmark): `modelled_bytes` is the least traffic of the work
/// (below), `gbps` that over the median time, `copy_fraction` that over the copy's `gbps`.
pub const BENCH_CSV_HEADER: &str =
    "impl,dtype,tokens,heads,head_dim,rotary_dim,median_ms,modelled_bytes,gbps,copy_fraction";

/// Warm-up launches before timing.
pub const WARMUP: usize = 3;
/// Base of the benchmark's frequencies (Llama 3's rope_theta; the speed does not depend on it).
pub const BENCH_BASE: f32 = 500_000.0;

/// One benchmark shape: `x` is `(tokens, heads, head_dim)`, full rotary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchShape {
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// The shape (16 k tokens, 32 heads, d = 128) and SmolLM2-135M's heads at the same length.
pub const BENCH_SHAPES: [BenchShape; 2] = [
    BenchShape { tokens: 16_384, heads: 32, head_dim: 128 },
    BenchShape { tokens: 16_384, heads: 9, head_dim: 64 },
];

impl BenchShape {
    pub fn elements(&self) -> usize {
        self.tokens * self.heads * self.head_dim
    }
}

/// One timed row: a RoPE variant or the copy.
#[derive(Clone, Debug)]
pub struct BenchRow {
    /// `copy` or `rope_<half|interleaved>_<cache|sincosf|fast>`.
    pub impl_name: String,
    pub dtype: &'static str,
    pub shape: BenchShape,
    pub timing: Timing,
    /// Bytes read + written of `x`: `2·tokens·heads·rotary_dim·size` (the copy: `2·|x|`).
    pub modelled_bytes: f64,
    /// The copy's bandwidth in the same run and shape, GB/s.
    pub copy_gbps: f64,
}

impl BenchRow {
    pub fn gbps(&self) -> f64 {
        self.timing.rate(self.modelled_bytes) * 1e-9
    }

    pub fn copy_fraction(&self) -> f64 {
        self.gbps() / self.copy_gbps
    }

    pub fn csv(&self) -> String {
        let s = self.shape;
        format!(
            "{},{},{},{},{},{},{:.6},{},{:.1},{:.4}",
            self.impl_name,
            self.dtype,
            s.tokens,
            s.heads,
            s.head_dim,
            s.head_dim,
            self.timing.median_ms,
            self.modelled_bytes,
            self.gbps(),
            self.copy_fraction()
        )
    }
}

/// The `impl` name of a layout and angle source.
pub fn impl_name(layout: RopeLayout, source: AngleSource) -> String {
    let layout = match layout {
        RopeLayout::HalfRotation => "half",
        RopeLayout::Interleaved => "interleaved",
    };
    format!("rope_{layout}_{}", source.kernel_part())
}

/// `n` values in [−1, 1) from a 64-bit hash of (seed, index): quick to make for 67 M elements,
/// and their values do not change the timing.
fn bench_values<T: RopeElement>(n: usize, seed: u64) -> Vec<T> {
    (0..n as u64)
        .map(|i| {
            let mut z = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            T::from_f32((z >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        })
        .collect()
}

// ANCHOR: bench_shape
/// Time the copy of `x`, then every layout × angle source of RoPE in place on `x`, at one
/// shape and storage type.
pub fn bench_shape<T: RopeElement>(gpu: &Gpu, shape: BenchShape, repeats: usize) -> Result<Vec<BenchRow>> {
    let n = shape.elements();
    let mut x: CudaSlice<T> = gpu.stream.clone_htod(&bench_values::<T>(n, 1)).ctx("uploading x")?;
    let mut copy_dst = gpu.zeros::<T>(n)?;
    let modelled_bytes = 2.0 * (n * size_of::<T>()) as f64;
    let copy = gpu_time(gpu, WARMUP, repeats, || {
        gpu.stream.memcpy_dtod(&x, &mut copy_dst).ctx("copying x on the device")
    })?;
    let copy_gbps = copy.rate(modelled_bytes) * 1e-9;
    let row = |impl_name: String, timing| BenchRow {
        impl_name,
        dtype: T::NAME,
        shape,
        timing,
        modelled_bytes,
        copy_gbps,
    };
    let mut rows = vec![row("copy".into(), copy)];
    drop(copy_dst);

    let positions = DevicePositions::prefill(gpu, shape.tokens)?;
    for layout in [RopeLayout::HalfRotation, RopeLayout::Interleaved] {
        let config = RopeConfig::new(shape.head_dim, BENCH_BASE, layout)?;
        let cache = RopeCache::new(&config, shape.tokens)?;
        for source in AngleSource::ALL {
            let kernel = match source {
                AngleSource::Cache => RopeKernel::<T>::with_cache(gpu, &cache)?,
                _ => RopeKernel::<T>::on_the_fly(gpu, &config, source)?,
            };
            // In place, launch after launch: every launch rotates x once more, which keeps its
            // norm (values stay bounded) and its traffic.
            let timing =
                gpu_time(gpu, WARMUP, repeats, || kernel.launch(gpu, &mut x, shape.heads, &positions))?;
            rows.push(row(impl_name(layout, source), timing));
        }
    }
    Ok(rows)
}
// ANCHOR_END: bench_shape

/// Every shape in bf16 and f32.
pub fn run_rope_benchmark(gpu: &Gpu, shapes: &[BenchShape], repeats: usize) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    for &shape in shapes {
        rows.extend(bench_shape::<bf16>(gpu, shape, repeats)?);
        rows.extend(bench_shape::<f32>(gpu, shape, repeats)?);
    }
    Ok(rows)
}
