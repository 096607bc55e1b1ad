//! The QKV epilogue on the GPU (`kernels/ch05_qkv_epilogue.cu`): RoPE on q and k and the
//! KV-cache write as one kernel, or as three passes (rope q, rope k into a temporary, copy k and
//! v into the cache) — the CPU's [`crate::epilogue_fused`] and [`crate::epilogue_unfused`],
//! equal to them bit for bit in f32 (no FMA contraction, see the kernel file).
//!
//! Storage is f32 or bf16 ([`DeviceElement`]), the cos/sin tables in the same type as the data
//! (Hugging Face casts them to the activations' dtype too), arithmetic in f32 and one rounding to
//! bf16 at the store. Every buffer length, every position (a table row and a cache row for each
//! token) and every size passed as an `int` is checked on the host before a launch
//! ([`EpilogueShape::check`]), so no kernel reads or writes out of bounds.

use attn_support::cudarc::driver::{CudaFunction, CudaSlice, LaunchConfig, PushKernelArg};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, cdiv, launch_config};
use attn_support::ndarray::{Array3, ArrayView2, ArrayView3};
use attn_support::{Error, Result, kernel_source};
use std::marker::PhantomData;

use crate::gpu::qkv::DeviceElement;
use crate::qkv_epilogue::{EpiloguePipeline, EpilogueShape, epilogue_shape};
use crate::qkv_projection::QkvDims;

/// The kernel file.
pub const EPILOGUE_SOURCE: KernelSource = kernel_source!("ch05_qkv_epilogue.cu");
/// Threads per block; must equal `EPILOGUE_THREADS` in the .cu file (256: a multiple of the
/// warp, enough blocks per SM to hide memory latency, and no shared memory to share out).
pub const EPILOGUE_THREADS: usize = 256;
/// Bytes one thread moves per access in the vectorised kernels: one 128-bit load or store.
pub const VECTOR_BYTES: u64 = 16;

/// Elements per access: `VECTOR_BYTES / size` when the half head dim is a multiple of it (every
/// offset is then 16-byte aligned), else 1.
pub fn chunk_elements<T: DeviceElement>(head_dim: usize) -> usize {
    let c = (VECTOR_BYTES / T::BYTES) as usize;
    if (head_dim / 2).is_multiple_of(c) { c } else { 1 }
}

/// The device buffers of one epilogue call.
pub struct EpilogueBuffers<T> {
    pub shape: EpilogueShape,
    /// The QKV GEMM's output, (tokens, H·d + 2·H_kv·d).
    pub qkv: CudaSlice<T>,
    /// cos and sin tables, (table_positions, d).
    pub cos: CudaSlice<T>,
    pub sin: CudaSlice<T>,
    /// Rotated q, (H, tokens, d).
    pub q: CudaSlice<T>,
    /// The cache, (H_kv, cache_len, d) each.
    pub k_cache: CudaSlice<T>,
    pub v_cache: CudaSlice<T>,
    /// The three-pass version's rotated-k temporary, (H_kv, tokens, d).
    pub k_rotated: CudaSlice<T>,
}

impl<T: DeviceElement> EpilogueBuffers<T> {
    /// Upload the inputs and a cache (H_kv, cache_len, d) each; allocate q and the temporary.
    pub fn upload(
        gpu: &Gpu,
        dims: QkvDims,
        qkv: ArrayView2<T>,
        [cos, sin]: [ArrayView2<T>; 2],
        start: usize,
        [k_cache, v_cache]: [ArrayView3<T>; 2],
    ) -> Result<Self> {
        let shape = epilogue_shape(
            dims,
            qkv.shape(),
            [cos.shape(), sin.shape()],
            start,
            [k_cache.shape(), v_cache.shape()],
        )?;
        check_shape(&shape)?;
        let (tokens, d) = (shape.tokens, dims.head_dim);
        Ok(EpilogueBuffers {
            shape,
            qkv: gpu.upload(&qkv)?,
            cos: gpu.upload(&cos)?,
            sin: gpu.upload(&sin)?,
            q: gpu.zeros(dims.n_heads * tokens * d)?,
            k_cache: gpu.upload(&k_cache)?,
            v_cache: gpu.upload(&v_cache)?,
            k_rotated: gpu.zeros(dims.n_kv_heads * tokens * d)?,
        })
    }

    /// Zero buffers for `shape` (for benchmarks: the values do not change the time).
    pub fn zeros(gpu: &Gpu, shape: EpilogueShape) -> Result<Self> {
        check_shape(&shape)?;
        let EpilogueShape { dims, tokens, table_positions, cache_len, .. } = shape;
        let d = dims.head_dim;
        Ok(EpilogueBuffers {
            shape,
            qkv: gpu.zeros(tokens * dims.fused_cols())?,
            cos: gpu.zeros(table_positions * d)?,
            sin: gpu.zeros(table_positions * d)?,
            q: gpu.zeros(dims.n_heads * tokens * d)?,
            k_cache: gpu.zeros(dims.n_kv_heads * cache_len * d)?,
            v_cache: gpu.zeros(dims.n_kv_heads * cache_len * d)?,
            k_rotated: gpu.zeros(dims.n_kv_heads * tokens * d)?,
        })
    }

    /// Every buffer must hold exactly what the shape says.
    pub fn check_lengths(&self) -> Result<()> {
        let EpilogueShape { dims, tokens, table_positions, cache_len, .. } = self.shape;
        let d = dims.head_dim;
        let lengths = [
            ("qkv", self.qkv.len(), tokens * dims.fused_cols()),
            ("cos", self.cos.len(), table_positions * d),
            ("sin", self.sin.len(), table_positions * d),
            ("q", self.q.len(), dims.n_heads * tokens * d),
            ("k_cache", self.k_cache.len(), dims.n_kv_heads * cache_len * d),
            ("v_cache", self.v_cache.len(), dims.n_kv_heads * cache_len * d),
            ("k_rotated", self.k_rotated.len(), dims.n_kv_heads * tokens * d),
        ];
        for (name, got, want) in lengths {
            if got != want {
                return Err(Error::InvalidArgument(format!(
                    "device buffer {name} holds {got} elements but {:?} needs {want}",
                    self.shape
                )));
            }
        }
        Ok(())
    }

    /// q (H, tokens, d) and the cache (H_kv, cache_len, d) back on the host.
    pub fn download(&self, gpu: &Gpu) -> Result<[Array3<T>; 3]> {
        let EpilogueShape { dims, tokens, cache_len, .. } = self.shape;
        let cache = (dims.n_kv_heads, cache_len, dims.head_dim);
        Ok([
            gpu.download(&self.q, (dims.n_heads, tokens, dims.head_dim))?,
            gpu.download(&self.k_cache, cache)?,
            gpu.download(&self.v_cache, cache)?,
        ])
    }
}

/// [`EpilogueShape::check`], plus: every size the kernels take as an `int` fits in one.
pub fn check_shape(shape: &EpilogueShape) -> Result<()> {
    shape.check()?;
    let EpilogueShape { dims, tokens, start, table_positions, cache_len } = *shape;
    let max = i32::MAX as usize;
    let sizes = [
        ("tokens", tokens),
        ("start + tokens", start + tokens),
        ("table positions", table_positions),
        ("cache length", cache_len),
        ("heads (H + 2·H_kv)", dims.n_heads + 2 * dims.n_kv_heads),
        ("head_dim", dims.head_dim),
    ];
    for (name, v) in sizes {
        if v > max {
            return Err(Error::InvalidArgument(format!("the epilogue kernels need {name} ≤ {max}, got {v}")));
        }
    }
    Ok(())
}

/// The three kernels of one element type and chunk width.
struct Kernels {
    fused: CudaFunction,
    rope_heads: CudaFunction,
    cache_write: CudaFunction,
}

/// The compiled epilogue kernels for element type `T`, vectorised and scalar.
pub struct QkvEpilogue<T> {
    vec: Kernels,
    scalar: Kernels,
    _element: PhantomData<T>,
}

impl<T: DeviceElement> QkvEpilogue<T> {
    /// Compile (once per process) and load the kernels.
    pub fn load(gpu: &Gpu) -> Result<Self> {
        let kernels = |variant: &str| -> Result<Kernels> {
            let f = |name: &str| gpu.function(&EPILOGUE_SOURCE, &format!("{name}_{}_{variant}", T::NAME));
            Ok(Kernels {
                fused: f("ch05_epilogue_fused")?,
                rope_heads: f("ch05_rope_heads")?,
                cache_write: f("ch05_cache_write")?,
            })
        };
        Ok(QkvEpilogue { vec: kernels("vec")?, scalar: kernels("scalar")?, _element: PhantomData })
    }

    /// The kernels for this head_dim and their chunk width.
    fn pick(&self, head_dim: usize) -> (&Kernels, usize) {
        match chunk_elements::<T>(head_dim) {
            1 => (&self.scalar, 1),
            c => (&self.vec, c),
        }
    }

    /// Enqueue one version on `gpu.stream`.
    pub fn launch(
        &self,
        gpu: &Gpu,
        version: EpiloguePipeline,
        buffers: &mut EpilogueBuffers<T>,
    ) -> Result<()> {
        match version {
            EpiloguePipeline::OnePass => self.fused(gpu, buffers),
            EpiloguePipeline::ThreePasses => self.three_passes(gpu, buffers),
        }
    }

    // ANCHOR: fused_launch
    /// One kernel: qkv → rotated q (H, n, d), rotated k and v into the cache rows.
    pub fn fused(&self, gpu: &Gpu, b: &mut EpilogueBuffers<T>) -> Result<()> {
        check_shape(&b.shape)?;
        b.check_lengths()?;
        let EpilogueShape { dims, tokens, start, cache_len, .. } = b.shape;
        let (kernels, c) = self.pick(dims.head_dim);
        let slots = dims.n_heads + 2 * dims.n_kv_heads;
        let cfg = grid(tokens * slots * (dims.head_dim / 2 / c))?;
        let ints = [tokens, start, dims.n_heads, dims.n_kv_heads, dims.head_dim, cache_len].map(|v| v as i32);
        let mut launch = gpu.stream.launch_builder(&kernels.fused);
        launch.arg(&b.qkv).arg(&b.cos).arg(&b.sin).arg(&mut b.q).arg(&mut b.k_cache).arg(&mut b.v_cache);
        for v in &ints {
            launch.arg(v);
        }
        // SAFETY: the arguments match the kernel's signature; lengths and positions were checked
        // above, so every thread's offsets lie inside its buffers.
        unsafe { launch.launch(cfg) }.ctx("launching ch05_epilogue_fused").map(|_| ())
    }
    // ANCHOR_END: fused_launch

    // ANCHOR: three_passes
    /// Three kernels: rope q → q; rope k → the temporary; the temporary and v → the cache.
    pub fn three_passes(&self, gpu: &Gpu, b: &mut EpilogueBuffers<T>) -> Result<()> {
        check_shape(&b.shape)?;
        b.check_lengths()?;
        let EpilogueShape { dims, tokens, start, cache_len, .. } = b.shape;
        let (kernels, c) = self.pick(dims.head_dim);
        let (h_q, hkv, d) = (dims.n_heads, dims.n_kv_heads, dims.head_dim);
        let slots = (h_q + 2 * hkv) as i32;
        for (first_slot, heads) in [(0, h_q), (h_q, hkv)] {
            let out = if first_slot == 0 { &mut b.q } else { &mut b.k_rotated };
            let cfg = grid(tokens * heads * (d / 2 / c))?;
            let ints = [tokens as i32, start as i32, first_slot as i32, heads as i32, slots, d as i32];
            let mut launch = gpu.stream.launch_builder(&kernels.rope_heads);
            launch.arg(&b.qkv).arg(&b.cos).arg(&b.sin).arg(out);
            for v in &ints {
                launch.arg(v);
            }
            // SAFETY: as in `fused`; `out` holds heads·tokens·d elements (q or the temporary).
            unsafe { launch.launch(cfg) }.ctx("launching ch05_rope_heads")?;
        }
        let cfg = grid(tokens * hkv * (d / c))?;
        let ints = [tokens, start, h_q, hkv, d, cache_len].map(|v| v as i32);
        let mut launch = gpu.stream.launch_builder(&kernels.cache_write);
        launch.arg(&b.k_rotated).arg(&b.qkv).arg(&mut b.k_cache).arg(&mut b.v_cache);
        for v in &ints {
            launch.arg(v);
        }
        // SAFETY: as in `fused`.
        unsafe { launch.launch(cfg) }.ctx("launching ch05_cache_write").map(|_| ())
    }
    // ANCHOR_END: three_passes
}

/// A 1-D launch of `threads` threads.
fn grid(threads: usize) -> Result<LaunchConfig> {
    launch_config((cdiv(threads, EPILOGUE_THREADS), 1, 1), EPILOGUE_THREADS, 0)
}

/// One version on host arrays: returns q (H, n, d) and the cache after the write.
pub fn epilogue_gpu<T: DeviceElement>(
    gpu: &Gpu,
    version: EpiloguePipeline,
    dims: QkvDims,
    qkv: ArrayView2<T>,
    tables: [ArrayView2<T>; 2],
    start: usize,
    cache: [ArrayView3<T>; 2],
) -> Result<[Array3<T>; 3]> {
    let mut buffers = EpilogueBuffers::upload(gpu, dims, qkv, tables, start, cache)?;
    QkvEpilogue::<T>::load(gpu)?.launch(gpu, version, &mut buffers)?;
    buffers.download(gpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_128_bit_when_the_half_dim_allows() {
        assert_eq!(chunk_elements::<f32>(64), 4);
        assert_eq!(chunk_elements::<half::bf16>(64), 8);
        assert_eq!(chunk_elements::<half::bf16>(128), 8);
        assert_eq!(chunk_elements::<half::bf16>(24), 1); // h = 12, not a multiple of 8
        assert_eq!(chunk_elements::<f32>(24), 4);
        assert_eq!(chunk_elements::<f32>(6), 1);
    }
}
