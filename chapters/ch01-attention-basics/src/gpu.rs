//! The host side of the chapter's two GPU versions: the naive one-thread-per-query kernel
//! (`kernels/ch01_naive.cu`) and the three-kernel pipeline scores → softmax → weighted sum
//! (`kernels/ch01_three_kernels.cu`).
//!
//! [`DeviceAttention`] keeps Q, K, V and the output on the device, so the binary can time the
//! kernels alone; [`attention_naive_gpu`] and [`attention_three_kernels_gpu`] wrap upload,
//! launch and download for one-off use.

use crate::cpu::AttentionDims;
use attn_support::cudarc::driver::{CudaFunction, CudaSlice, PushKernelArg};
use attn_support::error::DriverContext;
use attn_support::gpu::{KernelSource, cdiv, launch_config};
use attn_support::kernel_source;
use attn_support::ndarray::{Array2, ArrayView2};
use attn_support::units::format_bytes;
use attn_support::{Error, Gpu, Result};

pub const NAIVE_KERNELS: KernelSource = kernel_source!("ch01_naive.cu");
pub const THREE_KERNELS: KernelSource = kernel_source!("ch01_three_kernels.cu");

/// Threads per block of the naive kernel: it has only n_q threads in all, so small blocks
/// spread them over more of the GPU's SMs.
const NAIVE_BLOCK: usize = 64;
/// Threads per block of the softmax (one block per row); a multiple of 32 for the warp
/// reductions.
const SOFTMAX_BLOCK: usize = 256;
/// Largest 1-D block of the scores and weighted-sum kernels.
const MAX_ROW_BLOCK: usize = 256;

/// Threads per block to cover `n` items of a row: a whole number of warps, at most 256, so a
/// short row (d_v = 64) does not leave most of a 256-thread block idle.
fn row_block(n: usize) -> usize {
    (cdiv(n, 32) * 32).clamp(32, MAX_ROW_BLOCK)
}

/// The kernels are passed `int` sizes; reject sizes that do not fit rather than wrap around.
fn as_i32(what: &str, n: usize) -> Result<i32> {
    i32::try_from(n)
        .map_err(|_| Error::InvalidArgument(format!("{what} = {n} is too large for the kernels' int sizes")))
}

/// Q, K, V and the output on the device, with the kernels loaded, ready to launch.
pub struct DeviceAttention {
    pub dims: AttentionDims,
    q: CudaSlice<f32>,
    k: CudaSlice<f32>,
    v: CudaSlice<f32>,
    out: CudaSlice<f32>,
    /// The (n_q, n_k) score matrix of the three-kernel version, allocated on first use.
    scores: Option<CudaSlice<f32>>,
    naive: CudaFunction,
    scores_kernel: CudaFunction,
    softmax_kernel: CudaFunction,
    weighted_sum_kernel: CudaFunction,
}

impl DeviceAttention {
    /// Check the shapes, copy Q, K, V to the device and compile (once per process) the kernels.
    pub fn new(gpu: &Gpu, q: ArrayView2<f32>, k: ArrayView2<f32>, v: ArrayView2<f32>) -> Result<Self> {
        let dims = AttentionDims::from_shapes(q.shape(), k.shape(), v.shape())?;
        for (what, n) in [("n_q", dims.n_q), ("n_k", dims.n_k), ("d", dims.d), ("d_v", dims.d_v)] {
            as_i32(what, n)?;
        }
        Ok(DeviceAttention {
            dims,
            q: gpu.upload(&q)?,
            k: gpu.upload(&k)?,
            v: gpu.upload(&v)?,
            out: gpu.zeros(dims.out_len())?,
            scores: None,
            naive: gpu.function(&NAIVE_KERNELS, "ch01_attention_naive")?,
            scores_kernel: gpu.function(&THREE_KERNELS, "ch01_scores")?,
            softmax_kernel: gpu.function(&THREE_KERNELS, "ch01_softmax_rows")?,
            weighted_sum_kernel: gpu.function(&THREE_KERNELS, "ch01_weighted_sum")?,
        })
    }

    fn sizes(&self) -> Result<[i32; 4]> {
        let AttentionDims { n_q, n_k, d, d_v } = self.dims;
        Ok([as_i32("n_q", n_q)?, as_i32("n_k", n_k)?, as_i32("d", d)?, as_i32("d_v", d_v)?])
    }

    // ANCHOR: launch_naive
    /// Enqueue the naive kernel: one thread per query row. Does not wait for it.
    pub fn launch_naive(&mut self, gpu: &Gpu) -> Result<()> {
        let [n_q, n_k, d, d_v] = self.sizes()?;
        let cfg = launch_config((cdiv(self.dims.n_q, NAIVE_BLOCK), 1, 1), NAIVE_BLOCK, 0)?;
        let mut b = gpu.stream.launch_builder(&self.naive);
        b.arg(&self.q).arg(&self.k).arg(&self.v).arg(&mut self.out);
        b.arg(&n_q).arg(&n_k).arg(&d).arg(&d_v);
        // SAFETY: the buffers hold exactly the sizes in `dims` (checked in `new`), the kernel
        // guards i < n_q, and the grid covers n_q rows.
        unsafe { b.launch(cfg) }.ctx("launching ch01_attention_naive")?;
        Ok(())
    }
    // ANCHOR_END: launch_naive

    // ANCHOR: launch_three
    /// Enqueue the three kernels S = Q Kᵀ, P = softmax_rows(S), out = P V. Does not wait.
    pub fn launch_three_kernels(&mut self, gpu: &Gpu) -> Result<()> {
        let [n_q, n_k, d, d_v] = self.sizes()?;
        let AttentionDims { n_q: rows, n_k: keys, d_v: cols, .. } = self.dims;
        // Check every launch shape before enqueuing anything: n_q > 65535 rows do not fit in
        // gridDim.y, and we would rather say so than launch half the work.
        let scores_block = row_block(keys);
        let scores_cfg = launch_config((cdiv(keys, scores_block), rows, 1), scores_block, 0)?;
        let softmax_cfg = launch_config((rows, 1, 1), SOFTMAX_BLOCK, 0)?;
        let sum_block = row_block(cols);
        let sum_cfg = launch_config((cdiv(cols, sum_block), rows, 1), sum_block, 0)?;
        let scores = match &mut self.scores {
            Some(s) => s,
            empty => empty.insert(alloc_scores(gpu, rows, keys)?),
        };

        let mut b = gpu.stream.launch_builder(&self.scores_kernel);
        b.arg(&self.q).arg(&self.k).arg(&mut *scores).arg(&n_q).arg(&n_k).arg(&d);
        // SAFETY: q is (n_q, d), k is (n_k, d), scores is (n_q, n_k); the kernel guards i, j.
        unsafe { b.launch(scores_cfg) }.ctx("launching ch01_scores")?;

        let mut b = gpu.stream.launch_builder(&self.softmax_kernel);
        b.arg(&mut *scores).arg(&n_q).arg(&n_k);
        // SAFETY: one block per row of the (n_q, n_k) scores; blockDim is a multiple of 32.
        unsafe { b.launch(softmax_cfg) }.ctx("launching ch01_softmax_rows")?;

        let mut b = gpu.stream.launch_builder(&self.weighted_sum_kernel);
        b.arg(&*scores).arg(&self.v).arg(&mut self.out).arg(&n_q).arg(&n_k).arg(&d_v);
        // SAFETY: p is (n_q, n_k), v is (n_k, d_v), out is (n_q, d_v); the kernel guards i, c.
        unsafe { b.launch(sum_cfg) }.ctx("launching ch01_weighted_sum")?;
        Ok(())
    }
    // ANCHOR_END: launch_three

    /// Copy the output (n_q, d_v) back to the host (waits for the kernels before it).
    pub fn output(&self, gpu: &Gpu) -> Result<Array2<f32>> {
        gpu.download(&self.out, (self.dims.n_q, self.dims.d_v))
    }
}

/// The (n_q, n_k) score matrix: n_q·n_k·4 bytes, the memory that grows as N². Say how much
/// it needs when it does not fit, instead of a bare out-of-memory error.
fn alloc_scores(gpu: &Gpu, n_q: usize, n_k: usize) -> Result<CudaSlice<f32>> {
    let bytes = n_q as f64 * n_k as f64 * 4.0;
    let (free, _) = gpu.memory()?;
    if bytes > free as f64 {
        return Err(Error::InvalidArgument(format!(
            "the ({n_q}, {n_k}) score matrix needs {} but the GPU has {} free",
            format_bytes(bytes),
            format_bytes(free as f64)
        )));
    }
    gpu.zeros::<f32>(n_q * n_k)
}

/// softmax(Q Kᵀ) V on the GPU with the naive one-thread-per-query kernel.
pub fn attention_naive_gpu(
    gpu: &Gpu,
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
) -> Result<Array2<f32>> {
    let mut dev = DeviceAttention::new(gpu, q, k, v)?;
    dev.launch_naive(gpu)?;
    dev.output(gpu)
}

/// softmax(Q Kᵀ) V on the GPU with three kernels and the score matrix in global memory.
pub fn attention_three_kernels_gpu(
    gpu: &Gpu,
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
) -> Result<Array2<f32>> {
    let mut dev = DeviceAttention::new(gpu, q, k, v)?;
    dev.launch_three_kernels(gpu)?;
    dev.output(gpu)
}
