//! The ladder benchmark, run by the `ch12` binary (never by tests): every rung at every shape of
//! `xtask/baselines/ch12_bench_shapes.txt`, on device buffers filled on the device, timed with
//! CUDA events (warm-up, median). Rows are chapter 2's CSV format with `impl` = the rung's name,
//! so the PyTorch baseline script's rows (FLASH, EFFICIENT, CUDNN in bf16, same shapes file)
//! join on the shape. Rung 0 runs chapter 3's f32 kernel on the same values upcast to f32.

use crate::gpu::{Bf16Buffers, LadderKernels};
use crate::ladder::Rung;
use attn_support::cudarc::driver::{CudaSlice, PushKernelArg};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, cdiv, launch_config};
use attn_support::timing::{Timing, gpu_time};
use attn_support::{Result, kernel_source};
use ch02_scaled_dot_product::SdpaOptions;
use ch02_scaled_dot_product::bench::{BenchShape, GpuBenchRow};
use ch02_scaled_dot_product::gpu::SdpaBuffers;
use ch03_flash_attention::gpu::FlashKernel;
use half::bf16;

/// The device-side input generator.
pub const FILL_SOURCE: KernelSource = kernel_source!("ch12_fill.cu");

/// Threads per block of the two kernels of `ch12_fill.cu`: any multiple of 32 works (they
/// loop grid-stride); 256 is the usual choice for a memory-bound elementwise kernel.
const FILL_THREADS: usize = 256;
/// The most blocks they are launched with: 1024 blocks × 256 threads ≈ 7.8 blocks of 256 on
/// each of an H100's 132 SMs, about the 2048 threads an SM holds, enough loads in flight to
/// stream memory; beyond that the grid-stride loop covers the rest of n.
const FILL_MAX_BLOCKS: usize = 1024;

/// The launch shape of a fill kernel over `n` elements: one thread per element up to
/// [`FILL_MAX_BLOCKS`] blocks, then the grid-stride loop.
fn fill_launch(n: usize) -> Result<attn_support::cudarc::driver::LaunchConfig> {
    launch_config((cdiv(n, FILL_THREADS).clamp(1, FILL_MAX_BLOCKS), 1, 1), FILL_THREADS, 0)
}

/// A device buffer of `n` seeded standard-normal bf16 values.
pub fn device_randn_bf16(gpu: &Gpu, n: usize, seed: u64) -> Result<CudaSlice<bf16>> {
    let mut buf = gpu.zeros::<bf16>(n)?;
    let f = gpu.function(&FILL_SOURCE, "ch12_fill_normal_bf16")?;
    let (n64, cfg) = (n as u64, fill_launch(n)?);
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(&mut buf).arg(&n64).arg(&seed);
    // SAFETY: (bf16*, u64 n, u64 seed) is the kernel's signature; it writes indices < n only.
    unsafe { b.launch(cfg) }.ctx("launching ch12_fill_normal_bf16")?;
    Ok(buf)
}

/// The CPU version of `ch12_fill_normal_bf16`, for checking it: value `i` is Box–Muller on two
/// 24-bit uniforms hashed from (seed, i) by splitmix64's finaliser, computed here in f64 and
/// rounded to bf16 (the kernel computes in f32, so a value may differ by one bf16 step).
pub fn randn_bf16_reference(n: usize, seed: u64) -> Vec<bf16> {
    let mix64 = |mut x: u64| {
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    (0..n as u64)
        .map(|i| {
            let h = mix64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i));
            let u1 = ((h >> 40) + 1) as f64 / 16_777_216.0; // (0, 1]
            let u2 = ((h >> 8) & 0xff_ffff) as f64 / 16_777_216.0; // [0, 1)
            bf16::from_f64((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos())
        })
        .collect()
}

/// An f32 copy of a bf16 device buffer (exact).
pub fn device_bf16_to_f32(gpu: &Gpu, src: &CudaSlice<bf16>) -> Result<CudaSlice<f32>> {
    let mut out = gpu.zeros::<f32>(src.len())?;
    let f = gpu.function(&FILL_SOURCE, "ch12_bf16_to_f32")?;
    let (n64, cfg) = (src.len() as u64, fill_launch(src.len())?);
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(src).arg(&mut out).arg(&n64);
    // SAFETY: (const bf16*, float*, u64 n), both buffers hold n elements.
    unsafe { b.launch(cfg) }.ctx("launching ch12_bf16_to_f32")?;
    Ok(out)
}

/// Device buffers for a benchmark shape, Q, K, V filled on the device (seeds 1, 2, 3).
pub fn device_buffers(gpu: &Gpu, shape: &BenchShape) -> Result<Bf16Buffers> {
    let dims = shape.dims();
    let n = shape.batch * shape.heads * shape.seq * shape.head_dim;
    Ok(Bf16Buffers {
        dims,
        causal: shape.causal,
        scale: SdpaOptions::default().scale_for(shape.head_dim)?,
        q: device_randn_bf16(gpu, n, 1)?,
        k: device_randn_bf16(gpu, n, 2)?,
        v: device_randn_bf16(gpu, n, 3)?,
        out: gpu.zeros(n)?,
        lse: gpu.zeros(n / shape.head_dim)?,
    })
}

/// Chapter 2's f32 buffers holding the same values as `bf16` (for rung 0).
pub fn f32_copy(gpu: &Gpu, b: &Bf16Buffers) -> Result<SdpaBuffers> {
    Ok(SdpaBuffers {
        dims: b.dims,
        causal: b.causal,
        scale: b.scale,
        q: device_bf16_to_f32(gpu, &b.q)?,
        k: device_bf16_to_f32(gpu, &b.k)?,
        v: device_bf16_to_f32(gpu, &b.v)?,
        key_padding: None,
        out: gpu.zeros(b.out.len())?,
        lse: gpu.zeros(b.lse.len())?,
    })
}

/// Warm-up and repeat counts for a shape: fewer repeats where one call takes long.
pub fn repeats_for(shape: &BenchShape) -> (usize, usize) {
    let work = shape.flops();
    if work > 5e12 {
        (1, 5)
    } else if work > 5e11 {
        (2, 10)
    } else {
        (3, 20)
    }
}

/// Time each rung at one shape; the f32 rung only when `with_f32` (it needs 3 × 4 bytes per
/// element more device memory and is 10× slower).
pub fn bench_shape(
    gpu: &Gpu,
    kernels: &LadderKernels,
    f32_kernel: &FlashKernel,
    shape: BenchShape,
    rungs: &[Rung],
) -> Result<Vec<(Rung, GpuBenchRow)>> {
    let (warmup, repeats) = repeats_for(&shape);
    let mut buffers = device_buffers(gpu, &shape)?;
    let mut rows = Vec::new();
    for &rung in rungs {
        let timing: Timing = if rung == Rung::F32Flash {
            let mut f32_buffers = f32_copy(gpu, &buffers)?;
            let t = gpu_time(gpu, warmup, repeats, || f32_kernel.launch(gpu, &mut f32_buffers))?;
            gpu.synchronize()?;
            t
        } else {
            gpu_time(gpu, warmup, repeats, || kernels.launch(gpu, rung, &mut buffers))?
        };
        rows.push((rung, GpuBenchRow { shape, timing }));
    }
    gpu.synchronize()?;
    Ok(rows)
}

/// One CSV row in chapter 2's format with `impl` = the rung's name.
pub fn csv_row(name: &str, row: &GpuBenchRow) -> String {
    ch03_flash_attention::bench::csv_line(name, row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_launches_cover_small_n_and_cap_the_grid() {
        assert_eq!(fill_launch(1).unwrap().grid_dim, (1, 1, 1));
        assert_eq!(fill_launch(1000).unwrap().grid_dim, (4, 1, 1));
        // One tensor of the largest benchmark shape, 8·16·16384·128 = 268 M values: grid-stride.
        assert_eq!(fill_launch(8 * 16 * 16384 * 128).unwrap().grid_dim, (1024, 1, 1));
        assert_eq!(fill_launch(1000).unwrap().block_dim, (256, 1, 1));
    }

    #[test]
    fn the_reference_generator_is_seeded_standard_normal() {
        let n = 200_000;
        let x: Vec<f64> = randn_bf16_reference(n, 3).iter().map(|v| v.to_f64()).collect();
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: 1/√n ≈ 0.0022 for the mean, √(2/n) ≈ 0.0032 for the variance.
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.015, "mean {mean}, variance {var}");
        let tail = x.iter().filter(|v| v.abs() > 3.0).count() as f64 / n as f64;
        assert!((tail - 0.0027).abs() < 0.001, "P(|z| > 3) = {tail}");
        assert_eq!(randn_bf16_reference(10, 3), randn_bf16_reference(10, 3));
        assert_ne!(randn_bf16_reference(10, 3), randn_bf16_reference(10, 4));
    }
}
