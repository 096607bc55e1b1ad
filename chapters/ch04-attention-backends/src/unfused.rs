//! The Unfused GPU backend: attention as three separate steps with the scores materialised
//! in device memory, the way a framework without fused kernels computes it.
//!
//! 1. `S = (scale·log₂e) · Q Kᵀ`: one cuBLAS strided-batched SGEMM over the B·H heads;
//! 2. `kernels/ch04_softmax.cu`: mask, stable softmax in place (P), log-sum-exp;
//! 3. `O = P V`: a second strided-batched SGEMM.
//!
//! **Row-major vs column-major.** cuBLAS reads matrices column-major; our tensors are
//! row-major. A row-major (r × c) matrix is the column-major (c × r) matrix of its transpose,
//! so we ask cuBLAS for transposed products: `Sᵀ = K Qᵀ` (stored column-major as Nk × Nq, it
//! is exactly row-major S), and `Oᵀ = Vᵀ Pᵀ`.
//!
//! **Precision.** The handle is put in `CUBLAS_DEFAULT_MATH`, in which SGEMM computes in full
//! f32 (TF32 tensor cores are used only under `CUBLAS_TF32_TENSOR_OP_MATH` or the
//! `NVIDIA_TF32_OVERRIDE=1` environment variable), so the 1e-5 tolerance of the tests holds.
//!
//! **Memory.** The scores take B·H·Nq·Nk·4 bytes: 8.6 GB at B = 8, H = 16, N = 4096 and
//! 137 GB at B = 8, H = 16, N = 16384, which no device has. [`UnfusedAttention::check`]
//! refuses shapes whose scores do not fit in free memory, before anything is allocated.

use attn_support::blas::{cublas_error, open_cublas};
use attn_support::cudarc::cublas::sys::cublasOperation_t;
use attn_support::cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use attn_support::cudarc::driver::{CudaFunction, CudaSlice, PushKernelArg};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, launch_config};
use attn_support::ndarray::{Array3, Array4, ArrayView4};
use attn_support::{Error, Result, kernel_source};
use ch02_scaled_dot_product::gpu::SdpaBuffers;
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, SdpaOptions, check_inputs, log2_units};

/// The softmax kernel file.
pub const SOFTMAX_SOURCE: KernelSource = kernel_source!("ch04_softmax.cu");
/// The kernel's name in that file.
pub const SOFTMAX_KERNEL: &str = "ch04_masked_softmax_rows";
/// Threads per block; must equal `SOFTMAX_THREADS` in the .cu file.
pub const SOFTMAX_THREADS: usize = 256;

/// Bytes of the materialised f32 scores, B·H·Nq·Nk·4.
pub fn score_bytes(dims: &SdpaDims) -> u128 {
    4 * (dims.batch * dims.heads) as u128 * dims.nq as u128 * dims.nk as u128
}

/// Bytes of the Q, K, V, O and lse buffers in f32.
pub fn io_bytes(dims: &SdpaDims) -> u128 {
    let bh = (dims.batch * dims.heads) as u128;
    let (nq, nk, d, dv) = (dims.nq as u128, dims.nk as u128, dims.head_dim as u128, dims.v_dim as u128);
    4 * bh * (nq * d + nk * (d + dv) + nq * dv + nq) + (dims.batch as u128 * nk)
}

/// Shape limits of the Unfused path that do not depend on the device: every size cuBLAS and
/// the softmax kernel take as a 32-bit `int` must fit in one.
pub fn check_sizes(dims: &SdpaDims) -> Result<()> {
    let i32_max = i32::MAX as usize;
    let bh = dims.batch * dims.heads;
    let sizes = [
        ("batch × heads", bh),
        ("Nq", dims.nq),
        ("Nk", dims.nk),
        ("head dim", dims.head_dim),
        ("V head dim", dims.v_dim),
        ("batch × heads × Nq (softmax grid)", bh.saturating_mul(dims.nq)),
    ];
    for (name, size) in sizes {
        if size > i32_max {
            return Err(Error::InvalidArgument(format!(
                "the Unfused backend needs {name} ≤ {i32_max} (cuBLAS and CUDA grid limits), got {size}"
            )));
        }
    }
    Ok(())
}

/// Check that the scores (plus, if `with_io`, the inputs and outputs) fit in `free_bytes`.
pub fn check_memory(dims: &SdpaDims, free_bytes: usize, with_io: bool) -> Result<()> {
    let need = score_bytes(dims) + if with_io { io_bytes(dims) } else { 0 };
    if need > free_bytes as u128 {
        return Err(Error::InvalidArgument(format!(
            "the Unfused backend materialises B·H·Nq·Nk = {}·{}·{}·{} f32 scores ({:.2} GB{}); only {:.2} GB \
             of device memory are free",
            dims.batch,
            dims.heads,
            dims.nq,
            dims.nk,
            score_bytes(dims) as f64 / 1e9,
            if with_io { format!(", {:.2} GB with Q, K, V and O", need as f64 / 1e9) } else { String::new() },
            free_bytes as f64 / 1e9
        )));
    }
    Ok(())
}

/// A cuBLAS handle on the Gpu's stream and the compiled softmax kernel.
pub struct UnfusedAttention {
    blas: CudaBlas,
    softmax: CudaFunction,
}

impl UnfusedAttention {
    /// Open cuBLAS (an [`Error::NoGpu`] naming the reason when the library is missing) and
    /// compile the softmax kernel.
    pub fn load(gpu: &Gpu) -> Result<UnfusedAttention> {
        // Full-f32 SGEMM: no TF32 tensor cores (see the module docs).
        let blas = open_cublas(gpu)?;
        let softmax = gpu.function(&SOFTMAX_SOURCE, SOFTMAX_KERNEL)?;
        Ok(UnfusedAttention { blas, softmax })
    }

    /// Check `dims` against the limits of the path and the free memory of `gpu` (counting the
    /// inputs and outputs too when they are not on the device yet).
    pub fn check(&self, gpu: &Gpu, dims: &SdpaDims, inputs_allocated: bool) -> Result<()> {
        check_sizes(dims)?;
        check_memory(dims, gpu.memory()?.0, !inputs_allocated)
    }

    // ANCHOR: launch
    /// Enqueue the three steps on `gpu.stream`, with `scores` as the B·H·Nq·Nk work buffer.
    /// Every buffer length is checked against `buffers.dims` first.
    pub fn launch(&self, gpu: &Gpu, buffers: &mut SdpaBuffers, scores: &mut CudaSlice<f32>) -> Result<()> {
        let dims = buffers.dims;
        check_sizes(&dims)?;
        check_lengths(buffers, scores)?;
        let SdpaDims { batch, heads, nq, nk, .. } = dims;
        let bh = batch * heads;
        let cfg = launch_config((bh * nq, 1, 1), SOFTMAX_THREADS, 0)?;
        let (nq_i, nk_i) = (nq as i32, nk as i32);

        // Step 1: S = (scale·log₂e) Q Kᵀ, computed as the column-major Sᵀ = K Qᵀ.
        let qk = qk_config(&dims, log2_units(buffers.scale));
        // SAFETY: K holds bh·Nk·d, Q bh·Nq·d and scores bh·Nq·Nk floats (checked above), which
        // is what the strides and sizes above address.
        unsafe { self.blas.gemm_strided_batched(qk, &buffers.k, &buffers.q, scores) }
            .map_err(|e| cublas_error("computing S = Q Kᵀ", e))?;

        // Step 2: softmax rows in place, lse.
        let (heads_i, causal) = (heads as i32, buffers.causal as i32);
        let no_padding = 0u64; // a null pointer: no padding mask
        let mut builder = gpu.stream.launch_builder(&self.softmax);
        builder.arg(&mut *scores);
        match &buffers.key_padding {
            Some(pad) => builder.arg(pad),
            None => builder.arg(&no_padding),
        };
        builder.arg(&mut buffers.lse).arg(&heads_i).arg(&nq_i).arg(&nk_i).arg(&causal);
        // SAFETY: the arguments match the kernel's signature; scores, padding and lse lengths
        // were checked against dims and the kernel indexes rows < bh·Nq, columns < Nk.
        unsafe { builder.launch(cfg) }.ctx("launching ch04_masked_softmax_rows")?;

        // Step 3: O = P V, computed as the column-major Oᵀ = Vᵀ Pᵀ.
        let pv = pv_config(&dims);
        // SAFETY: V holds bh·Nk·dv, scores bh·Nq·Nk and out bh·Nq·dv floats (checked above).
        unsafe { self.blas.gemm_strided_batched(pv, &buffers.v, &*scores, &mut buffers.out) }
            .map_err(|e| cublas_error("computing O = P V", e))?;
        Ok(())
    }
    // ANCHOR_END: launch
}

// ANCHOR: gemm_configs
/// Step 1 as cuBLAS sees it, column-major: Sᵀ (Nk × Nq) = op(A) B, where A is K's buffer read
/// as the (d × Nk) matrix Kᵀ and transposed, B is Q's buffer read as the (d × Nq) matrix Qᵀ.
/// Stored column-major with ldc = Nk, Sᵀ is exactly the row-major (Nq × Nk) S of each head.
/// The sizes must have passed [`check_sizes`].
pub fn qk_config(dims: &SdpaDims, alpha: f32) -> StridedBatchedConfig<f32> {
    let SdpaDims { batch, heads, nq, nk, head_dim: d, .. } = *dims;
    StridedBatchedConfig {
        gemm: GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: nk as i32,
            n: nq as i32,
            k: d as i32,
            alpha,
            lda: d as i32,
            ldb: d as i32,
            beta: 0.0,
            ldc: nk as i32,
        },
        batch_size: (batch * heads) as i32,
        stride_a: (nk * d) as i64,
        stride_b: (nq * d) as i64,
        stride_c: (nq * nk) as i64,
    }
}

/// Step 3, column-major: Oᵀ (dv × Nq) = A B, where A is V's buffer read as the (dv × Nk)
/// matrix Vᵀ and B is the weights' buffer read as the (Nk × Nq) matrix Pᵀ.
pub fn pv_config(dims: &SdpaDims) -> StridedBatchedConfig<f32> {
    let SdpaDims { batch, heads, nq, nk, v_dim: dv, .. } = *dims;
    StridedBatchedConfig {
        gemm: GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: dv as i32,
            n: nq as i32,
            k: nk as i32,
            alpha: 1.0,
            lda: dv as i32,
            ldb: nk as i32,
            beta: 0.0,
            ldc: dv as i32,
        },
        batch_size: (batch * heads) as i32,
        stride_a: (nk * dv) as i64,
        stride_b: (nq * nk) as i64,
        stride_c: (nq * dv) as i64,
    }
}
// ANCHOR_END: gemm_configs

/// Every device buffer must hold exactly what `dims` says (chapter 2 checks its own buffers;
/// the score buffer is this backend's).
fn check_lengths(buffers: &SdpaBuffers, scores: &CudaSlice<f32>) -> Result<()> {
    buffers.check_lengths()?;
    let SdpaDims { batch, heads, nq, nk, .. } = buffers.dims;
    let want = batch * heads * nq * nk;
    if scores.len() != want {
        return Err(Error::InvalidArgument(format!(
            "device buffer scores holds {} elements but {:?} needs {want}",
            scores.len(),
            buffers.dims
        )));
    }
    Ok(())
}

/// Unfused attention on the GPU: (output, lse) like chapter 2's `sdpa_with_options`.
/// Checks shapes and memory before copying anything.
pub fn unfused_attention_gpu(
    gpu: &Gpu,
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    options: &SdpaOptions,
) -> Result<(Array4<f32>, Array3<f32>)> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), mask)?;
    let unfused = UnfusedAttention::load(gpu)?;
    unfused.check(gpu, &dims, false)?;
    let mut buffers = SdpaBuffers::upload(gpu, q, k, v, mask, options)?;
    let mut scores = gpu.zeros::<f32>(dims.batch * dims.heads * dims.nq * dims.nk)?;
    unfused.launch(gpu, &mut buffers, &mut scores)?;
    buffers.download(gpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::data::randn;
    use attn_support::ndarray::{Array2, ArrayView2, s};

    /// What cuBLAS's strided-batched SGEMM computes, on host slices, from its documented
    /// column-major semantics: for each batch z, C_z = alpha·op(A_z)·op(B_z) + beta·C_z with
    /// element (r, c) of a column-major matrix X at X[r + c·ldx], and every index checked.
    fn host_sgemm(cfg: &StridedBatchedConfig<f32>, a: &[f32], b: &[f32], c: &mut [f32]) {
        let g = &cfg.gemm;
        let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
        let t = |op| op == cublasOperation_t::CUBLAS_OP_T;
        for z in 0..cfg.batch_size as usize {
            let (a0, b0, c0) =
                (z * cfg.stride_a as usize, z * cfg.stride_b as usize, z * cfg.stride_c as usize);
            for col in 0..n {
                for row in 0..m {
                    let mut acc = 0.0f64;
                    for p in 0..k {
                        // op(A)(row, p) and op(B)(p, col)
                        let ai =
                            if t(g.transa) { p + row * g.lda as usize } else { row + p * g.lda as usize };
                        let bi =
                            if t(g.transb) { col + p * g.ldb as usize } else { p + col * g.ldb as usize };
                        acc += a[a0 + ai] as f64 * b[b0 + bi] as f64;
                    }
                    let ci = c0 + row + col * g.ldc as usize;
                    // With beta = 0, cuBLAS does not read C (it may hold NaN).
                    let old = if g.beta == 0.0 { 0.0 } else { g.beta * c[ci] };
                    c[ci] = g.alpha * acc as f32 + old;
                }
            }
        }
    }

    #[test]
    fn the_gemm_configs_compute_row_major_products() {
        let dims = SdpaDims { batch: 2, heads: 3, nq: 5, nk: 7, head_dim: 4, v_dim: 6 };
        let (q, k, v) = (randn((2, 3, 5, 4), 1), randn((2, 3, 7, 4), 2), randn((2, 3, 7, 6), 3));
        let mut scores = vec![f32::NAN; 2 * 3 * 5 * 7];
        host_sgemm(&qk_config(&dims, 0.5), k.as_slice().unwrap(), q.as_slice().unwrap(), &mut scores);
        let p = randn((2, 3, 5, 7), 4);
        let mut out = vec![f32::NAN; 2 * 3 * 5 * 6];
        host_sgemm(&pv_config(&dims), v.as_slice().unwrap(), p.as_slice().unwrap(), &mut out);
        for b in 0..2 {
            for h in 0..3 {
                let z = b * 3 + h;
                let (q_bh, k_bh): (ArrayView2<f32>, ArrayView2<f32>) =
                    (q.slice(s![b, h, .., ..]), k.slice(s![b, h, .., ..]));
                let want_s: Array2<f32> = q_bh.dot(&k_bh.t()) * 0.5;
                let got_s = Array2::from_shape_vec((5, 7), scores[z * 35..(z + 1) * 35].to_vec()).unwrap();
                assert!(got_s.abs_diff_eq(&want_s, 1e-5), "S of head {z}");
                let (p_bh, v_bh): (ArrayView2<f32>, ArrayView2<f32>) =
                    (p.slice(s![b, h, .., ..]), v.slice(s![b, h, .., ..]));
                let want_o = p_bh.dot(&v_bh);
                let got_o = Array2::from_shape_vec((5, 6), out[z * 30..(z + 1) * 30].to_vec()).unwrap();
                assert!(got_o.abs_diff_eq(&want_o, 1e-5), "O of head {z}");
            }
        }
    }

    #[test]
    fn memory_and_size_checks_explain_themselves() {
        let dims = SdpaDims { batch: 8, heads: 16, nq: 16384, nk: 16384, head_dim: 64, v_dim: 64 };
        assert_eq!(score_bytes(&dims), 137_438_953_472);
        let e = check_memory(&dims, 80_000_000_000, true).unwrap_err().to_string();
        assert!(e.contains("137.44 GB") && e.contains("80.00 GB"), "{e}");
        assert!(check_memory(&SdpaDims { batch: 1, heads: 8, ..dims }, 80_000_000_000, true).is_ok());
        let long = SdpaDims { batch: 1, heads: 1, nq: 1 << 31, nk: 1, head_dim: 1, v_dim: 1 };
        assert!(check_sizes(&long).unwrap_err().to_string().contains("Nq"));
    }
}
