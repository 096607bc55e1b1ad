//! The host side of `kernels/ch02_sdpa.cu`: one block per query row, the row of scores in
//! shared memory, warp-shuffle and shared-memory reductions for the softmax's max and sum.
//!
//! Supported: f32, head dims 1..=256 (Q/K and V alike), B·H ≤ 65535, and Nk up to what fits
//! in one block's shared memory (Nk floats plus about 5 KiB; on an H100, 227 KiB per block
//! after opting in, so Nk ≤ about 56 000). Everything outside is an error before launch.

use crate::mask::SdpaMask;
use crate::sdpa::{SdpaDims, SdpaOptions, check_inputs, log2_units};
use attn_support::cudarc::driver::{CudaContext, CudaFunction, CudaSlice, LaunchConfig, PushKernelArg};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, launch_config, opt_in_shared_memory};
use attn_support::ndarray::{Array3, Array4, ArrayView4};
use attn_support::{Error, Result, kernel_source};
use std::sync::Arc;

/// The kernel file.
pub const SDPA_SOURCE: KernelSource = kernel_source!("ch02_sdpa.cu");
/// The kernel's name in that file.
pub const SDPA_KERNEL: &str = "ch02_sdpa_f32";
/// Threads per block; must equal `SDPA_THREADS` in the .cu file (its arrays are sized by it).
pub const SDPA_THREADS: usize = 128;
/// Largest head dim (of Q/K and of V) the kernel supports (`SDPA_MAX_DIM` in the .cu file).
pub const MAX_HEAD_DIM: usize = 256;

/// The compiled kernel and the device limits it is checked against.
pub struct SdpaKernel {
    ctx: Arc<CudaContext>,
    function: CudaFunction,
    static_shared_bytes: usize,
    max_shared_bytes: usize,
}

impl SdpaKernel {
    /// Compile (once per process) and load the kernel on `gpu`.
    pub fn load(gpu: &Gpu) -> Result<SdpaKernel> {
        let function = gpu.function(&SDPA_SOURCE, SDPA_KERNEL)?;
        let static_shared_bytes =
            function.shared_size_bytes().ctx("reading the kernel's static shared memory")? as usize;
        let max_shared_bytes = gpu.max_shared_mem_per_block()?;
        Ok(SdpaKernel { ctx: gpu.ctx.clone(), function, static_shared_bytes, max_shared_bytes })
    }

    /// The most keys one launch supports on this device (the row of scores must fit in the
    /// shared memory of one block).
    pub fn max_keys(&self) -> usize {
        self.max_shared_bytes.saturating_sub(self.static_shared_bytes) / 4
    }

    // ANCHOR: launch_config
    /// Check `dims` against the kernel's limits and make its launch shape: grid (Nq, B·H),
    /// 128 threads, Nk floats of dynamic shared memory (opting in above 48 KiB with the static part).
    pub fn launch_config(&self, dims: &SdpaDims) -> Result<LaunchConfig> {
        for (name, dim) in [("Q/K head dim", dims.head_dim), ("V head dim", dims.v_dim)] {
            if !(1..=MAX_HEAD_DIM).contains(&dim) {
                return Err(Error::InvalidArgument(format!(
                    "the ch02 kernel supports head dims 1..={MAX_HEAD_DIM}, got {name} = {dim}"
                )));
            }
        }
        if dims.nk > self.max_keys() || dims.nk > i32::MAX as usize || dims.nq > i32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "Nk = {} keys do not fit: the ch02 kernel keeps a row of Nk f32 scores in shared \
                 memory, and this device allows {} bytes per block ({} of them static), so Nk ≤ {}",
                dims.nk,
                self.max_shared_bytes,
                self.static_shared_bytes,
                self.max_keys()
            )));
        }
        let dynamic = dims.nk * 4;
        opt_in_shared_memory(&self.ctx, &self.function, SDPA_KERNEL, dynamic)?;
        launch_config((dims.nq, dims.batch * dims.heads, 1), SDPA_THREADS, dynamic)
    }
    // ANCHOR_END: launch_config

    /// Launch on the buffers (asynchronously, on `gpu.stream`). Buffer lengths are checked
    /// against `buffers.dims`, so the kernel cannot read or write out of bounds.
    pub fn launch(&self, gpu: &Gpu, buffers: &mut SdpaBuffers) -> Result<()> {
        let dims = buffers.dims;
        let cfg = self.launch_config(&dims)?;
        buffers.check_lengths()?;
        let (heads, nq, nk) = (dims.heads as i32, dims.nq as i32, dims.nk as i32);
        let (d, dv) = (dims.head_dim as i32, dims.v_dim as i32);
        let causal = buffers.causal as i32;
        let scale_log2e = log2_units(buffers.scale);
        // A null device pointer tells the kernel there is no padding mask.
        let no_padding = 0u64;
        let mut builder = gpu.stream.launch_builder(&self.function);
        builder.arg(&buffers.q).arg(&buffers.k).arg(&buffers.v);
        match &buffers.key_padding {
            Some(pad) => builder.arg(pad),
            None => builder.arg(&no_padding),
        };
        builder.arg(&mut buffers.out).arg(&mut buffers.lse);
        builder.arg(&heads).arg(&nq).arg(&nk).arg(&d).arg(&dv).arg(&causal).arg(&scale_log2e);
        // SAFETY: the argument list matches the kernel's signature; every buffer length was
        // checked against dims above and the kernel indexes only within dims.
        unsafe { builder.launch(cfg) }.ctx("launching ch02_sdpa_f32")?;
        Ok(())
    }
}

/// Device buffers of one attention call, kept on the device so that benchmarks time the
/// kernel alone.
pub struct SdpaBuffers {
    pub dims: SdpaDims,
    pub causal: bool,
    pub scale: f32,
    pub q: CudaSlice<f32>,
    pub k: CudaSlice<f32>,
    pub v: CudaSlice<f32>,
    /// (B, Nk) bytes, 1 = padded key; `None` for no padding.
    pub key_padding: Option<CudaSlice<u8>>,
    pub out: CudaSlice<f32>,
    pub lse: CudaSlice<f32>,
}

impl SdpaBuffers {
    /// Check the inputs and copy them to the device; allocate the outputs.
    pub fn upload(
        gpu: &Gpu,
        q: ArrayView4<f32>,
        k: ArrayView4<f32>,
        v: ArrayView4<f32>,
        mask: &SdpaMask,
        options: &SdpaOptions,
    ) -> Result<SdpaBuffers> {
        let dims = check_inputs(q.shape(), k.shape(), v.shape(), mask)?;
        let scale = options.scale_for(dims.head_dim)?;
        let key_padding = match &mask.key_padding {
            Some(pad) => Some(gpu.upload(&pad.mapv(u8::from))?),
            None => None,
        };
        Ok(SdpaBuffers {
            dims,
            causal: mask.causal,
            scale,
            q: gpu.upload(&q)?,
            k: gpu.upload(&k)?,
            v: gpu.upload(&v)?,
            key_padding,
            out: gpu.zeros(dims.out_shape().iter().product())?,
            lse: gpu.zeros(dims.lse_shape().iter().product())?,
        })
    }

    /// Every device buffer must hold exactly what `dims` says: a launch on buffers of the
    /// wrong size would read or write out of bounds. Chapters 3–4 launch on these buffers too.
    pub fn check_lengths(&self) -> Result<()> {
        let SdpaDims { batch, heads, nq, nk, head_dim: d, v_dim: dv } = self.dims;
        let bh = batch * heads;
        let expected = [
            ("Q", self.q.len(), bh * nq * d),
            ("K", self.k.len(), bh * nk * d),
            ("V", self.v.len(), bh * nk * dv),
            ("out", self.out.len(), bh * nq * dv),
            ("lse", self.lse.len(), bh * nq),
            ("key_padding", self.key_padding.as_ref().map_or(batch * nk, |p| p.len()), batch * nk),
        ];
        for (name, len, want) in expected {
            if len != want {
                return Err(Error::InvalidArgument(format!(
                    "device buffer {name} holds {len} elements but {:?} needs {want}",
                    self.dims
                )));
            }
        }
        Ok(())
    }

    /// Copy (output, lse) back to the host.
    pub fn download(&self, gpu: &Gpu) -> Result<(Array4<f32>, Array3<f32>)> {
        Ok((gpu.download(&self.out, self.dims.out_shape())?, gpu.download(&self.lse, self.dims.lse_shape())?))
    }
}

/// Attention on the GPU with scale 1/√d; the same answer as [`crate::sdpa()`].
pub fn sdpa_gpu(
    gpu: &Gpu,
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
) -> Result<Array4<f32>> {
    sdpa_gpu_with_options(gpu, q, k, v, mask, &SdpaOptions::default()).map(|(out, _)| out)
}

/// Attention on the GPU with options; returns (output, lse) like [`crate::sdpa_with_options`].
pub fn sdpa_gpu_with_options(
    gpu: &Gpu,
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    options: &SdpaOptions,
) -> Result<(Array4<f32>, Array3<f32>)> {
    let kernel = SdpaKernel::load(gpu)?;
    // Check the limits before copying anything.
    kernel.launch_config(&check_inputs(q.shape(), k.shape(), v.shape(), mask)?)?;
    let mut buffers = SdpaBuffers::upload(gpu, q, k, v, mask, options)?;
    kernel.launch(gpu, &mut buffers)?;
    buffers.download(gpu)
}
