//! The hardware level: the two ceilings of the roofline, measured on the GPU in the same run
//! as the kernels they judge.
//!
//! A kernel that does `F` FLOPs and moves `B` bytes through global memory cannot run faster
//! than `max(F / peak FLOP/s, B / bandwidth)`. The datasheet numbers of an H100 SXM (989
//! TFLOP/s dense bf16, 3.35 TB/s HBM3) are peaks that no real program reaches, and the part in
//! the machine may be clocked or cooled differently. So the ceilings are *measured*, with the
//! best tools there are, on the same device and in the same process as the kernels:
//!
//! - **Copy bandwidth**: `ch12_copy` (kernels/ch12_copy.cu) copies a buffer much larger than
//!   the 50 MB L2, and so does `cuMemcpyDtoDAsync`; bandwidth = (bytes read + bytes written) /
//!   time = 2·size / t, the best of the two. This is the slope of the roofline.
//! - **bf16 tensor-core GEMM rate**: cuBLAS `C = A B` with M = N = K = 8192, 2·M·N·K FLOPs.
//!   cudarc's `Gemm<bf16>` calls `cublasGemmEx` with bf16 A, B and C, f32 `alpha`/`beta` and
//!   `CUBLAS_COMPUTE_32F`: bf16 products accumulated in f32 on the tensor cores — exactly the
//!   arithmetic of the bf16 FlashAttention rungs, so it is their flat roof.
//! - **f32 GEMM rate**: cuBLAS SGEMM in `CUBLAS_DEFAULT_MATH`, i.e. plain f32 FFMA without TF32
//!   (unless the environment sets `NVIDIA_TF32_OVERRIDE=1`), the roof of the f32 kernels of
//!   chapters 1–4, which use no tensor cores.
//!
//! Inputs are random (uniform in [−1, 1)): tensor cores draw less power, and so may clock
//! higher, on zeros. Every timing is the median of `repeats` CUDA-event timings after `warmup`
//! untimed calls ([`gpu_time`]).

use attn_support::blas::{cublas_error, open_cublas};
use attn_support::cudarc::cublas::sys::cublasOperation_t;
use attn_support::cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use attn_support::cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg, ValidAsZeroBits};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, cdiv, launch_config};
use attn_support::ndarray::{Array2, ArrayView2};
use attn_support::timing::gpu_time;
use attn_support::{Error, Result, kernel_source};
use half::bf16;
use serde::{Deserialize, Serialize};

/// The copy and increment kernels of this chapter.
pub const COPY_SOURCE: KernelSource = kernel_source!("ch12_copy.cu");
/// Threads per block of both kernels in [`COPY_SOURCE`].
pub const COPY_THREADS: usize = 256;

/// What the device can do at best, as measured by [`measure_ceilings`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// The device name, e.g. "NVIDIA H100 80GB HBM3".
    pub device: String,
    /// Size of each of the two copy buffers.
    pub copy_buffer_bytes: usize,
    /// `ch12_copy`: (bytes read + bytes written) per second.
    pub copy_kernel_bytes_per_s: f64,
    /// `cuMemcpyDtoDAsync`: (bytes read + bytes written) per second.
    pub memcpy_bytes_per_s: f64,
    /// The better of the two: the memory roof of the roofline.
    pub copy_bytes_per_s: f64,
    /// M = N = K of the timed GEMMs.
    pub gemm_size: usize,
    /// cuBLAS bf16 GEMM (f32 accumulation, tensor cores), FLOP/s.
    pub bf16_gemm_flops_per_s: f64,
    /// cuBLAS f32 SGEMM (FFMA, no TF32), FLOP/s.
    pub f32_gemm_flops_per_s: f64,
}

impl Ceilings {
    /// The ridge point `I* = peak / bandwidth` in FLOP/byte: kernels of lower arithmetic
    /// intensity are bound by memory, kernels above it by arithmetic.
    pub fn ridge_point(&self, peak_flops_per_s: f64) -> f64 {
        peak_flops_per_s / self.copy_bytes_per_s
    }
}

/// Sizes and repeat counts of [`measure_ceilings`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CeilingOptions {
    /// Bytes of each copy buffer (read one, write the other): far above the L2 size.
    pub copy_bytes: usize,
    /// M = N = K of the GEMMs.
    pub gemm_size: usize,
    pub warmup: usize,
    pub repeats: usize,
}

impl Default for CeilingOptions {
    /// 1 GiB copies and 8192³ GEMMs: large enough that launch and tail effects are < 1%.
    fn default() -> Self {
        CeilingOptions { copy_bytes: 1 << 30, gemm_size: 8192, warmup: 3, repeats: 10 }
    }
}

impl CeilingOptions {
    /// 256 MiB copies and 4096³ GEMMs: a few % below the full-size numbers, 8× quicker.
    pub fn quick() -> Self {
        CeilingOptions { copy_bytes: 256 << 20, gemm_size: 4096, warmup: 2, repeats: 5 }
    }
}

/// Measure all ceilings of [`Ceilings`] on `gpu`.
pub fn measure_ceilings(gpu: &Gpu, options: &CeilingOptions) -> Result<Ceilings> {
    let (kernel, memcpy) = copy_bandwidth(gpu, options.copy_bytes, options.warmup, options.repeats)?;
    let blas = Blas::open(gpu)?;
    let n = options.gemm_size;
    let bf16_rate = blas.gemm_rate::<bf16>(gpu, n, options.warmup, options.repeats)?;
    let f32_rate = blas.gemm_rate::<f32>(gpu, n, options.warmup, options.repeats)?;
    Ok(Ceilings {
        device: gpu.name().to_string(),
        copy_buffer_bytes: options.copy_bytes,
        copy_kernel_bytes_per_s: kernel,
        memcpy_bytes_per_s: memcpy,
        copy_bytes_per_s: kernel.max(memcpy),
        gemm_size: n,
        bf16_gemm_flops_per_s: bf16_rate,
        f32_gemm_flops_per_s: f32_rate,
    })
}

/// Copy bandwidth over a buffer of `bytes` (rounded down to whole float4 vectors), as
/// (`ch12_copy` kernel, `cuMemcpyDtoDAsync`), both in (read + written) bytes per second.
pub fn copy_bandwidth(gpu: &Gpu, bytes: usize, warmup: usize, repeats: usize) -> Result<(f64, f64)> {
    let n = bytes / 16 * 4;
    if n < 1024 {
        return Err(Error::InvalidArgument(format!("a copy of {bytes} bytes is too small to time")));
    }
    let free = gpu.memory()?.0;
    if 2 * n * 4 > free {
        return Err(Error::InvalidArgument(format!(
            "two copy buffers of {n} floats need {} bytes, the device has {free} free",
            2 * n * 4
        )));
    }
    let src = gpu.zeros::<f32>(n)?;
    let mut dst = gpu.zeros::<f32>(n)?;
    let moved = (2 * n * 4) as f64;
    let kernel = gpu_time(gpu, warmup, repeats, || launch_copy(gpu, &src, &mut dst))?;
    let memcpy = gpu_time(gpu, warmup, repeats, || {
        gpu.stream.memcpy_dtod(&src, &mut dst).ctx("copying device to device")
    })?;
    Ok((kernel.rate(moved), memcpy.rate(moved)))
}

/// Enqueue `dst = src` with `ch12_copy` on `gpu.stream`. Both lengths must be equal and a
/// multiple of 4 floats (the kernel moves float4 vectors).
pub fn launch_copy(gpu: &Gpu, src: &CudaSlice<f32>, dst: &mut CudaSlice<f32>) -> Result<()> {
    if src.len() != dst.len() || !src.len().is_multiple_of(4) {
        return Err(Error::InvalidArgument(format!(
            "ch12_copy needs equal lengths that are multiples of 4, got {} and {}",
            src.len(),
            dst.len()
        )));
    }
    let f = gpu.function(&COPY_SOURCE, "ch12_copy")?;
    let vectors = (src.len() / 4) as i64;
    let cfg = launch_config((cdiv(src.len() / 4, COPY_THREADS), 1, 1), COPY_THREADS, 0)?;
    let mut builder = gpu.stream.launch_builder(&f);
    builder.arg(src).arg(dst).arg(&vectors);
    // SAFETY: the arguments match the kernel's signature; both buffers hold 4·vectors floats.
    unsafe { builder.launch(cfg) }.ctx("launching ch12_copy").map(|_| ())
}

/// The element types cuBLAS multiplies here: f32 (SGEMM) and bf16 (GemmEx, f32 accumulate).
pub trait GemmElement: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {
    const ONE: Self;
    const ZERO: Self;
    fn from_f32(x: f32) -> Self;
}

impl GemmElement for f32 {
    const ONE: f32 = 1.0;
    const ZERO: f32 = 0.0;
    fn from_f32(x: f32) -> f32 {
        x
    }
}

impl GemmElement for bf16 {
    const ONE: bf16 = bf16::ONE;
    const ZERO: bf16 = bf16::ZERO;
    fn from_f32(x: f32) -> bf16 {
        bf16::from_f32(x)
    }
}

/// A cuBLAS handle on `gpu.stream`, in `CUBLAS_DEFAULT_MATH` (no TF32 for SGEMM).
pub struct Blas {
    blas: CudaBlas,
}

impl Blas {
    /// Open cuBLAS, or [`Error::NoGpu`] naming the reason when the library is missing.
    pub fn open(gpu: &Gpu) -> Result<Blas> {
        let blas = open_cublas(gpu)?;
        Ok(Blas { blas })
    }

    /// Enqueue the row-major product `C (m×n) = A (m×k) · B (k×n)`.
    ///
    /// cuBLAS is column-major, and a row-major matrix is the column-major storage of its
    /// transpose, so we ask for `Cᵀ = Bᵀ Aᵀ` (n×m, column-major): B's buffer as the first
    /// operand with leading dimension n, A's as the second with k, C's with n.
    pub fn gemm<T: GemmElement>(
        &self,
        (m, n, k): (usize, usize, usize),
        a: &CudaSlice<T>,
        b: &CudaSlice<T>,
        c: &mut CudaSlice<T>,
    ) -> Result<()>
    where
        CudaBlas: Gemm<T>,
    {
        let fits = |v: usize| v >= 1 && v <= i32::MAX as usize;
        if !(fits(m) && fits(n) && fits(k)) {
            return Err(Error::InvalidArgument(format!("GEMM sizes {m}×{n}×{k} must be in 1..=2³¹−1")));
        }
        if a.len() != m * k || b.len() != k * n || c.len() != m * n {
            return Err(Error::InvalidArgument(format!(
                "GEMM {m}×{n}×{k} needs buffers of {}, {} and {} elements, got {}, {} and {}",
                m * k,
                k * n,
                m * n,
                a.len(),
                b.len(),
                c.len()
            )));
        }
        let (m, n, k) = (m as i32, n as i32, k as i32);
        let op = cublasOperation_t::CUBLAS_OP_N;
        let cfg = GemmConfig {
            transa: op,
            transb: op,
            m: n,
            n: m,
            k,
            alpha: T::ONE,
            lda: n,
            ldb: k,
            beta: T::ZERO,
            ldc: n,
        };
        // SAFETY: the lengths were checked above against the sizes the config addresses.
        unsafe { self.blas.gemm(cfg, b, a, c) }.map_err(|e| cublas_error("computing C = A B", e))
    }

    /// The product of two host matrices on the GPU, by the same call that [`Self::gemm_rate`]
    /// times: what the tests check against a CPU product.
    pub fn matmul<T: GemmElement>(&self, gpu: &Gpu, a: ArrayView2<T>, b: ArrayView2<T>) -> Result<Array2<T>>
    where
        CudaBlas: Gemm<T>,
    {
        let ((m, k), (k2, n)) = (a.dim(), b.dim());
        if k != k2 {
            return Err(Error::shapes("C = A B", "A", a.shape(), "B", b.shape()));
        }
        let (a_dev, b_dev) = (gpu.upload(&a)?, gpu.upload(&b)?);
        let mut c_dev = gpu.zeros::<T>(m * n)?;
        self.gemm((m, n, k), &a_dev, &b_dev, &mut c_dev)?;
        gpu.download(&c_dev, (m, n))
    }

    /// FLOP/s of the square GEMM of size `n` on random inputs: 2·n³ FLOPs per call.
    pub fn gemm_rate<T: GemmElement>(&self, gpu: &Gpu, n: usize, warmup: usize, repeats: usize) -> Result<f64>
    where
        CudaBlas: Gemm<T>,
    {
        let elems = n.checked_mul(n).ok_or_else(|| Error::InvalidArgument(format!("GEMM size {n}")))?;
        if elems == 0 {
            return Err(Error::InvalidArgument("GEMM size must be at least 1".into()));
        }
        let a = gpu.stream.clone_htod(&random_values::<T>(elems, 1)).ctx("uploading A")?;
        let b = gpu.stream.clone_htod(&random_values::<T>(elems, 2)).ctx("uploading B")?;
        let mut c = gpu.zeros::<T>(elems)?;
        let timing = gpu_time(gpu, warmup, repeats, || self.gemm((n, n, n), &a, &b, &mut c))?;
        Ok(timing.rate(2.0 * (n as f64).powi(3)))
    }
}

/// `len` values uniform in [−1, 1) from a SplitMix64 stream (fast enough for 8192² inputs;
/// statistical quality does not matter here, only that the bits are not zeros).
pub fn random_values<T: GemmElement>(len: usize, seed: u64) -> Vec<T> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // The top 24 bits as a fraction in [0, 1), mapped to [−1, 1).
            let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
            T::from_f32(2.0 * unit - 1.0)
        })
        .collect()
}
