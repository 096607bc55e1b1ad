//! The QKV projection on the GPU through cuBLAS: three GEMMs, or one over `[W_q; W_k; W_v]`.
//!
//! X is (tokens, d_model) row-major — a batch of sequences is B·N tokens — and each weight
//! (out features, d_model) as `nn.Linear` stores it, so every projection is `Y = X Wᵀ`.
//!
//! **Row-major through column-major cuBLAS.** A row-major (r × c) matrix is the column-major
//! (c × r) matrix of its transpose. So we ask cuBLAS for `Yᵀ = W Xᵀ`, column-major
//! (cols × tokens): A = W's buffer read column-major with lda = d_model, i.e. the (d_model × cols)
//! matrix Wᵀ, transposed back by `CUBLAS_OP_T`; B = X's buffer read as the (d_model × tokens)
//! matrix Xᵀ, not transposed; C written with ldc = cols, which is exactly row-major Y
//! ([`xwt_config`], checked against a host loop of cuBLAS's documented semantics below).
//!
//! **Precision.** f32: `cublasSgemm` on a handle in `CUBLAS_DEFAULT_MATH`
//! ([`attn_support::blas::open_cublas`]), full f32 FFMA with no TF32 tensor cores (unless the
//! environment sets `NVIDIA_TF32_OVERRIDE=1`). bf16: `cublasGemmEx` with bf16 A, B and C, f32
//! alpha and beta, `CUBLAS_COMPUTE_32F` (what cudarc's `Gemm<bf16>` calls): bf16 products
//! accumulated in f32 on the tensor cores, rounded to bf16 once at the store.
//!
//! **What fusion can and cannot save here.** Both versions do `2·tokens·d_model·C` flops and
//! read every weight once. One GEMM reads X once instead of three times and is one launch
//! instead of three. At prefill (4096 tokens) the GEMM is compute-bound (Llama-3-8B: 206 GFLOP
//! against 128–192 MiB, over 1000 flop/byte, far above the H100's ridge of ~300), so the saved
//! reads of X are nearly free anyway, and a wider GEMM may tile better or worse — published
//! gains are 1–5 %, and the fused one can lose. At decode (1 token) the GEMM reads the weights
//! (1.1 MB for SmolLM2, 48 MiB for Llama-3-8B in bf16) and X is one row: the saving is two
//! launches and two kernel tails, a few microseconds.

use attn_support::blas::{cublas_error, open_cublas};
use attn_support::cudarc::cublas::result::CublasError;
use attn_support::cudarc::cublas::sys::cublasOperation_t;
use attn_support::cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use attn_support::cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};
use attn_support::gpu::Gpu;
use attn_support::ndarray::{Array2, ArrayView2};
use attn_support::{Error, Result};
use half::bf16;

use crate::qkv_projection::QkvDims;

/// The element types of this chapter's GPU code: f32, and bf16 with f32 arithmetic.
pub trait DeviceElement:
    DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + Unpin + 'static
{
    /// "f32" or "bf16": the suffix of the kernel names and the CSV's dtype column.
    const NAME: &'static str;
    /// Bytes per element.
    const BYTES: u64;
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    /// `C = alpha·op(A)·op(B) + beta·C` (column-major) through the cuBLAS call of this type.
    ///
    /// # Safety
    /// The buffers must hold what `cfg` addresses.
    unsafe fn gemm(
        blas: &CudaBlas,
        cfg: GemmConfig<f32>,
        a: &CudaSlice<Self>,
        b: &CudaSlice<Self>,
        c: &mut CudaSlice<Self>,
    ) -> std::result::Result<(), CublasError>;
}

impl DeviceElement for f32 {
    const NAME: &'static str = "f32";
    const BYTES: u64 = 4;
    fn from_f32(x: f32) -> f32 {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
    unsafe fn gemm(
        blas: &CudaBlas,
        cfg: GemmConfig<f32>,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        c: &mut CudaSlice<f32>,
    ) -> std::result::Result<(), CublasError> {
        // SAFETY: forwarded from the caller. cublasSgemm.
        unsafe { blas.gemm(cfg, a, b, c) }
    }
}

impl DeviceElement for bf16 {
    const NAME: &'static str = "bf16";
    const BYTES: u64 = 2;
    fn from_f32(x: f32) -> bf16 {
        bf16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    unsafe fn gemm(
        blas: &CudaBlas,
        cfg: GemmConfig<f32>,
        a: &CudaSlice<bf16>,
        b: &CudaSlice<bf16>,
        c: &mut CudaSlice<bf16>,
    ) -> std::result::Result<(), CublasError> {
        // alpha = 1 and beta = 0 are exact in bf16, and cudarc hands them to GemmEx as f32.
        let cfg = GemmConfig {
            transa: cfg.transa,
            transb: cfg.transb,
            m: cfg.m,
            n: cfg.n,
            k: cfg.k,
            alpha: bf16::from_f32(cfg.alpha),
            lda: cfg.lda,
            ldb: cfg.ldb,
            beta: bf16::from_f32(cfg.beta),
            ldc: cfg.ldc,
        };
        // SAFETY: forwarded from the caller. cublasGemmEx, bf16 in and out, CUBLAS_COMPUTE_32F.
        unsafe { blas.gemm(cfg, a, b, c) }
    }
}

// ANCHOR: xwt_config
/// `Y (tokens × cols) = X (tokens × d_model) · Wᵀ` in row-major terms, as the column-major
/// `Yᵀ = op(A)·B` with A = W's buffer (d_model × cols, lda = d_model) transposed and B = X's
/// buffer (d_model × tokens, ldb = d_model); Yᵀ is (cols × tokens) with ldc = cols.
pub fn xwt_config(tokens: usize, d_model: usize, cols: usize) -> GemmConfig<f32> {
    GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_T,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: cols as i32,
        n: tokens as i32,
        k: d_model as i32,
        alpha: 1.0,
        lda: d_model as i32,
        ldb: d_model as i32,
        beta: 0.0,
        ldc: cols as i32,
    }
}
// ANCHOR_END: xwt_config

/// A device buffer must hold exactly `want` elements.
fn check_len<T>(name: &str, buf: &CudaSlice<T>, want: usize, what: &str) -> Result<()> {
    if buf.len() != want {
        return Err(Error::InvalidArgument(format!(
            "device buffer {name} holds {} elements but {what} needs {want}",
            buf.len()
        )));
    }
    Ok(())
}

/// Every size cuBLAS takes as an `int` must fit in one.
fn check_gemm_sizes(dims: QkvDims, tokens: usize) -> Result<()> {
    dims.check()?;
    let max = i32::MAX as usize;
    for (name, v) in [("tokens", tokens), ("d_model", dims.d_model), ("H·d + 2·H_kv·d", dims.fused_cols())]
    {
        if v == 0 || v > max {
            return Err(Error::InvalidArgument(format!("the QKV GEMM needs 1 ≤ {name} ≤ {max}, got {v}")));
        }
    }
    Ok(())
}

/// A cuBLAS handle on the GPU's stream (`CUBLAS_DEFAULT_MATH`: no TF32).
pub struct QkvGemm {
    blas: CudaBlas,
}

impl QkvGemm {
    /// Open cuBLAS, or [`Error::NoGpu`] naming the reason when the library is missing.
    pub fn open(gpu: &Gpu) -> Result<QkvGemm> {
        Ok(QkvGemm { blas: open_cublas(gpu)? })
    }

    /// Enqueue `out = x · wᵀ`, every length checked first.
    fn xwt<T: DeviceElement>(
        &self,
        name: &str,
        (tokens, d_model, cols): (usize, usize, usize),
        x: &CudaSlice<T>,
        w: &CudaSlice<T>,
        out: &mut CudaSlice<T>,
    ) -> Result<()> {
        let what = format!("{name} with {tokens} tokens, d_model {d_model}, {cols} columns");
        check_len("X", x, tokens * d_model, &what)?;
        check_len("W", w, cols * d_model, &what)?;
        check_len("out", out, tokens * cols, &what)?;
        // SAFETY: the three lengths were checked against what the config addresses.
        unsafe { T::gemm(&self.blas, xwt_config(tokens, d_model, cols), w, x, out) }
            .map_err(|e| cublas_error(&format!("computing {what}"), e))
    }

    // ANCHOR: three_gemms
    /// Three GEMMs: `Q = X W_qᵀ`, `K = X W_kᵀ`, `V = X W_vᵀ` into three outputs,
    /// (tokens, H·d), (tokens, H_kv·d), (tokens, H_kv·d). X is read three times.
    pub fn three_gemms<T: DeviceElement>(
        &self,
        dims: QkvDims,
        tokens: usize,
        x: &CudaSlice<T>,
        [w_q, w_k, w_v]: [&CudaSlice<T>; 3],
        [q, k, v]: [&mut CudaSlice<T>; 3],
    ) -> Result<()> {
        check_gemm_sizes(dims, tokens)?;
        let d_model = dims.d_model;
        self.xwt("Q = X W_qᵀ", (tokens, d_model, dims.q_cols()), x, w_q, q)?;
        self.xwt("K = X W_kᵀ", (tokens, d_model, dims.kv_cols()), x, w_k, k)?;
        self.xwt("V = X W_vᵀ", (tokens, d_model, dims.kv_cols()), x, w_v, v)
    }
    // ANCHOR_END: three_gemms

    // ANCHOR: one_gemm
    /// One GEMM: `[Q | K | V] = X [W_q; W_k; W_v]ᵀ` into one (tokens, H·d + 2·H_kv·d) output,
    /// the layout [`crate::FusedQkv`] splits into views and the epilogue reads.
    pub fn one_gemm<T: DeviceElement>(
        &self,
        dims: QkvDims,
        tokens: usize,
        x: &CudaSlice<T>,
        w_qkv: &CudaSlice<T>,
        qkv: &mut CudaSlice<T>,
    ) -> Result<()> {
        check_gemm_sizes(dims, tokens)?;
        self.xwt("[Q|K|V] = X W_qkvᵀ", (tokens, dims.d_model, dims.fused_cols()), x, w_qkv, qkv)
    }
    // ANCHOR_END: one_gemm
}

/// X must be (tokens ≥ 1, d_model) and the weight (rows, d_model).
fn check_host(
    x: &ArrayView2<impl Copy>,
    ws: &[(&'static str, &[usize], usize)],
    dims: QkvDims,
) -> Result<()> {
    dims.check()?;
    if x.ncols() != dims.d_model || x.nrows() == 0 {
        return Err(Error::shapes(
            "X is (tokens ≥ 1, d_model)",
            "X",
            x.shape(),
            "expected",
            &[x.nrows().max(1), dims.d_model],
        ));
    }
    for &(name, shape, rows) in ws {
        if shape != [rows, dims.d_model] {
            return Err(Error::shapes(
                "weights are (out features, d_model)",
                name,
                shape,
                "expected",
                &[rows, dims.d_model],
            ));
        }
    }
    Ok(())
}

/// The three GEMMs on host arrays: uploads, runs, downloads (Q, K, V) as (tokens, heads·d).
pub fn qkv_unfused_gpu<T: DeviceElement>(
    gpu: &Gpu,
    x: ArrayView2<T>,
    [w_q, w_k, w_v]: [ArrayView2<T>; 3],
    dims: QkvDims,
) -> Result<[Array2<T>; 3]> {
    let (q_cols, kv_cols) = (dims.q_cols(), dims.kv_cols());
    check_host(
        &x,
        &[("W_q", w_q.shape(), q_cols), ("W_k", w_k.shape(), kv_cols), ("W_v", w_v.shape(), kv_cols)],
        dims,
    )?;
    let gemm = QkvGemm::open(gpu)?;
    let tokens = x.nrows();
    let (x_d, wq_d, wk_d, wv_d) = (gpu.upload(&x)?, gpu.upload(&w_q)?, gpu.upload(&w_k)?, gpu.upload(&w_v)?);
    let mut q = gpu.zeros::<T>(tokens * q_cols)?;
    let mut k = gpu.zeros::<T>(tokens * kv_cols)?;
    let mut v = gpu.zeros::<T>(tokens * kv_cols)?;
    gemm.three_gemms(dims, tokens, &x_d, [&wq_d, &wk_d, &wv_d], [&mut q, &mut k, &mut v])?;
    Ok([
        gpu.download(&q, (tokens, q_cols))?,
        gpu.download(&k, (tokens, kv_cols))?,
        gpu.download(&v, (tokens, kv_cols))?,
    ])
}

/// The one GEMM on host arrays: the (tokens, H·d + 2·H_kv·d) output.
pub fn qkv_fused_gpu<T: DeviceElement>(
    gpu: &Gpu,
    x: ArrayView2<T>,
    w_qkv: ArrayView2<T>,
    dims: QkvDims,
) -> Result<Array2<T>> {
    check_host(&x, &[("W_qkv", w_qkv.shape(), dims.fused_cols())], dims)?;
    let gemm = QkvGemm::open(gpu)?;
    let tokens = x.nrows();
    let (x_d, w_d) = (gpu.upload(&x)?, gpu.upload(&w_qkv)?);
    let mut out = gpu.zeros::<T>(tokens * dims.fused_cols())?;
    gemm.one_gemm(dims, tokens, &x_d, &w_d, &mut out)?;
    gpu.download(&out, (tokens, dims.fused_cols()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::data::randn;

    /// cuBLAS's documented column-major GEMM, C = alpha·op(A)·op(B) + beta·C with element
    /// (r, c) of X at X[r + c·ldx], on host slices with every index checked.
    fn host_gemm(g: &GemmConfig<f32>, a: &[f32], b: &[f32], c: &mut [f32]) {
        let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
        let t = |op| op == cublasOperation_t::CUBLAS_OP_T;
        for col in 0..n {
            for row in 0..m {
                let acc: f64 = (0..k)
                    .map(|p| {
                        let ai =
                            if t(g.transa) { p + row * g.lda as usize } else { row + p * g.lda as usize };
                        let bi =
                            if t(g.transb) { col + p * g.ldb as usize } else { p + col * g.ldb as usize };
                        a[ai] as f64 * b[bi] as f64
                    })
                    .sum();
                c[row + col * g.ldc as usize] = g.alpha * acc as f32;
            }
        }
    }

    #[test]
    fn the_gemm_config_computes_x_times_w_transposed() {
        let (tokens, d_model, cols) = (5, 7, 3);
        let (x, w) = (randn((tokens, d_model), 1), randn((cols, d_model), 2));
        let mut y = vec![f32::NAN; tokens * cols];
        host_gemm(&xwt_config(tokens, d_model, cols), w.as_slice().unwrap(), x.as_slice().unwrap(), &mut y);
        let want = x.dot(&w.t());
        let got = Array2::from_shape_vec((tokens, cols), y).unwrap();
        assert!(got.abs_diff_eq(&want, 1e-5), "{got} vs {want}");
    }
}
