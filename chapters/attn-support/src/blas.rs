//! cuBLAS, opened the same way by every chapter that calls it.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use cudarc::cublas::CudaBlas;
use cudarc::cublas::result::CublasError;
use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode, is_culib_present};

/// A cuBLAS handle on `gpu.stream` in `CUBLAS_DEFAULT_MATH`: f32 GEMMs run in full f32 on the
/// CUDA cores (no TF32 tensor cores, which would round the inputs to 10 mantissa bits), bf16
/// GEMMs on the tensor cores with f32 accumulation. [`Error::NoGpu`] when the library is missing.
pub fn open_cublas(gpu: &Gpu) -> Result<CudaBlas> {
    // SAFETY: only looks for the shared library, calls nothing in it.
    if !unsafe { is_culib_present() } {
        return Err(Error::NoGpu("cuBLAS (libcublas.so) was not found".into()));
    }
    let blas = CudaBlas::new(gpu.stream.clone())
        .map_err(|e| Error::NoGpu(format!("could not create a cuBLAS handle: {e}")))?;
    // SAFETY: the handle is valid for the lifetime of `blas`.
    unsafe { cublasSetMathMode(*blas.handle(), cublasMath_t::CUBLAS_DEFAULT_MATH) }
        .result()
        .map_err(|e| cublas_error("setting CUBLAS_DEFAULT_MATH", e))?;
    Ok(blas)
}

/// A failed cuBLAS call as [`Error::Cublas`], saying what it was doing.
pub fn cublas_error(what: &str, source: CublasError) -> Error {
    Error::Cublas { context: what.to_string(), source }
}
