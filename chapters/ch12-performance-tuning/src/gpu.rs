//! The host side of the bf16 rungs: device buffers in bf16, the compiled entry points of every
//! rung, and one checked launch path for all of them.
//!
//! Supported: bf16 Q, K, V of head dim 64 or 128 (dv = d), any Nq and Nk ≥ 1 (up to 2³⁰),
//! B·H ≤ 65535, no mask or a causal mask (bottom-right aligned, as in chapter 2). A padding mask,
//! another head dim or a non-positive scale is an [`Error`] before anything is launched.

use crate::ladder::{KernelSpec, Rung};
use crate::precision::Bf16Inputs;
use crate::tma::bf16_tile_map;
use attn_support::cudarc::driver::{CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, cdiv, launch_config};
use attn_support::ndarray::{Array3, Array4};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, SdpaOptions, log2_units};
use half::bf16;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The largest Nq or Nk: keeps every `int` index in the kernels far from overflow.
pub const MAX_SEQ: usize = 1 << 30;
/// The largest grid y size, i.e. the largest B·H.
pub const MAX_BATCH_HEADS: usize = 65535;

/// Device buffers of one bf16 attention call, kept on the device so that benchmarks time the
/// kernel alone.
pub struct Bf16Buffers {
    pub dims: SdpaDims,
    pub causal: bool,
    pub scale: f32,
    pub q: CudaSlice<bf16>,
    pub k: CudaSlice<bf16>,
    pub v: CudaSlice<bf16>,
    pub out: CudaSlice<bf16>,
    pub lse: CudaSlice<f32>,
}

impl Bf16Buffers {
    /// Check the inputs and the mask, copy the inputs to the device, allocate the outputs.
    pub fn upload(
        gpu: &Gpu,
        inputs: &Bf16Inputs,
        mask: &SdpaMask,
        options: &SdpaOptions,
    ) -> Result<Bf16Buffers> {
        let dims = check_ladder_inputs(inputs, mask)?;
        let scale = options.scale_for(dims.head_dim)?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "the chapter 12 kernels need a positive finite scale, got {scale}"
            )));
        }
        Ok(Bf16Buffers {
            dims,
            causal: mask.causal,
            scale,
            q: gpu.upload(&inputs.q)?,
            k: gpu.upload(&inputs.k)?,
            v: gpu.upload(&inputs.v)?,
            out: gpu.zeros(dims.out_shape().iter().product())?,
            lse: gpu.zeros(dims.lse_shape().iter().product())?,
        })
    }

    /// Every buffer holds exactly what `dims` says (a kernel indexes by `dims` alone).
    pub fn check_lengths(&self) -> Result<()> {
        let d = self.dims;
        let expected = [
            ("q", self.q.len(), d.batch * d.heads * d.nq * d.head_dim),
            ("k", self.k.len(), d.batch * d.heads * d.nk * d.head_dim),
            ("v", self.v.len(), d.batch * d.heads * d.nk * d.v_dim),
            ("out", self.out.len(), d.batch * d.heads * d.nq * d.v_dim),
            ("lse", self.lse.len(), d.batch * d.heads * d.nq),
        ];
        for (name, len, want) in expected {
            if len != want {
                return Err(Error::InvalidArgument(format!(
                    "device buffer `{name}` holds {len} elements, dims {d:?} need {want}"
                )));
            }
        }
        Ok(())
    }

    /// Copy the output (B,H,Nq,d) and lse (B,H,Nq) back.
    pub fn download(&self, gpu: &Gpu) -> Result<(Array4<bf16>, Array3<f32>)> {
        Ok((gpu.download(&self.out, self.dims.out_shape())?, gpu.download(&self.lse, self.dims.lse_shape())?))
    }
}

/// Chapter 2's shape checks plus what the chapter 12 kernels support.
pub fn check_ladder_inputs(inputs: &Bf16Inputs, mask: &SdpaMask) -> Result<SdpaDims> {
    let dims = inputs.dims(mask)?;
    if mask.key_padding.is_some() {
        return Err(Error::InvalidArgument(
            "the chapter 12 kernels support no mask or a causal mask, not a key-padding mask".into(),
        ));
    }
    if dims.v_dim != dims.head_dim {
        return Err(Error::InvalidArgument(format!(
            "the chapter 12 kernels need V's head dim equal to Q's and K's: d = {}, dv = {}",
            dims.head_dim, dims.v_dim
        )));
    }
    if dims.batch * dims.heads > MAX_BATCH_HEADS {
        return Err(Error::InvalidArgument(format!(
            "batch × heads = {} exceeds {MAX_BATCH_HEADS}, the largest grid y size",
            dims.batch * dims.heads
        )));
    }
    if dims.nq > MAX_SEQ || dims.nk > MAX_SEQ {
        return Err(Error::InvalidArgument(format!(
            "Nq = {} and Nk = {} must be at most {MAX_SEQ}",
            dims.nq, dims.nk
        )));
    }
    Ok(dims)
}

/// The entry points loaded so far, each opted in to the shared memory its spec needs.
pub struct LadderKernels {
    loaded: Mutex<HashMap<String, CudaFunction>>,
}

impl LadderKernels {
    /// Ready to load entry points on `gpu` (each kernel file compiles once per process, on the
    /// first launch of one of its rungs, and is checked against the device's shared-memory
    /// limit then).
    pub fn new(_gpu: &Gpu) -> Result<LadderKernels> {
        Ok(LadderKernels { loaded: Mutex::new(HashMap::new()) })
    }

    /// The compiled function of `spec`, opted in above 48 KiB of shared memory; an error naming
    /// the bytes it needs and the device's limit where they do not fit.
    pub fn function(&self, gpu: &Gpu, spec: &KernelSpec) -> Result<CudaFunction> {
        let mut loaded = self.loaded.lock().expect("kernel cache poisoned");
        if let Some(f) = loaded.get(&spec.entry) {
            return Ok(f.clone());
        }
        let function = if spec.needs_sm90a {
            if gpu.compute_capability() != (9, 0) {
                return Err(Error::InvalidArgument(format!(
                    "{} uses Hopper-only instructions (sm_90a); this device is {}",
                    spec.entry,
                    gpu.arch()
                )));
            }
            gpu.function_for_arch(&spec.source, &spec.entry, "sm_90a")?
        } else {
            gpu.function(&spec.source, &spec.entry)?
        };
        gpu.opt_in_shared_memory(&function, &spec.entry, spec.shared_bytes)?;
        loaded.insert(spec.entry.clone(), function.clone());
        Ok(function)
    }

    /// Registers and local-memory (spill) bytes per thread of a rung's entry point, as the
    /// driver reports them.
    pub fn resources(&self, gpu: &Gpu, rung: Rung, head_dim: usize) -> Result<(i32, i32)> {
        let f = self.function(gpu, &rung.spec(head_dim)?)?;
        Ok((f.num_regs().ctx("reading registers")?, f.local_size_bytes().ctx("reading local memory")?))
    }

    /// The launch shape of `rung` for `dims`: grid (⌈Nq/BR⌉, B·H), 2·BR threads, the spec's
    /// shared memory.
    pub fn launch_config(rung: Rung, dims: &SdpaDims) -> Result<(KernelSpec, LaunchConfig)> {
        let spec = rung.spec(dims.head_dim)?;
        let cfg = launch_config(
            (cdiv(dims.nq, spec.tiles.block_rows), dims.batch * dims.heads, 1),
            spec.threads,
            spec.shared_bytes,
        )?;
        Ok((spec, cfg))
    }

    /// Launch `rung` on the buffers (asynchronously, on `gpu.stream`).
    pub fn launch(&self, gpu: &Gpu, rung: Rung, buffers: &mut Bf16Buffers) -> Result<()> {
        self.launch_on(gpu, &gpu.stream, rung, buffers)
    }

    /// [`LadderKernels::launch`] on another stream of `gpu`'s context, e.g. one being captured
    /// into a CUDA graph (the function must have been loaded before the capture began).
    pub fn launch_on(
        &self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        rung: Rung,
        buffers: &mut Bf16Buffers,
    ) -> Result<()> {
        let dims = buffers.dims;
        let (spec, cfg) = Self::launch_config(rung, &dims)?;
        buffers.check_lengths()?;
        let function = self.function(gpu, &spec)?;
        let (heads, nq, nk) = (dims.heads as i32, dims.nq as i32, dims.nk as i32);
        let causal = buffers.causal as i32;
        let scale_log2e = log2_units(buffers.scale);
        let mut builder = stream.launch_builder(&function);
        let maps; // rungs 8 and 9 read Q, K and V through TMA tensor maps instead of pointers
        if let Rung::Tma(t) | Rung::PingPong(t) = rung {
            let (bh, d) = (dims.batch * dims.heads, dims.head_dim);
            maps = [
                bf16_tile_map(stream, &buffers.q, bh, dims.nq, d, t.block_rows)?,
                bf16_tile_map(stream, &buffers.k, bh, dims.nk, d, t.block_keys)?,
                bf16_tile_map(stream, &buffers.v, bh, dims.nk, d, t.block_keys)?,
            ];
            builder.arg(&maps[0]).arg(&maps[1]).arg(&maps[2]);
            builder.arg(&mut buffers.out).arg(&mut buffers.lse);
            builder.arg(&nq).arg(&nk).arg(&causal).arg(&scale_log2e);
        } else {
            builder.arg(&buffers.q).arg(&buffers.k).arg(&buffers.v);
            builder.arg(&mut buffers.out).arg(&mut buffers.lse);
            builder.arg(&heads).arg(&nq).arg(&nk).arg(&causal).arg(&scale_log2e);
        }
        // SAFETY: the argument list matches LADDER_ARGS in ch12_mma_common.cuh (TMA_ARGS in
        // ch12_tma.cu, whose maps describe exactly these buffers); every buffer
        // length was checked against dims above and the kernels index only within dims.
        unsafe { builder.launch(cfg) }.ctx(&format!("launching {}", spec.entry))?;
        Ok(())
    }
}

/// One rung on the GPU: (output (B,H,Nq,d) in bf16, lse (B,H,Nq) in f32), copies included.
pub fn ladder_attention_gpu(
    gpu: &Gpu,
    kernels: &LadderKernels,
    rung: Rung,
    inputs: &Bf16Inputs,
    mask: &SdpaMask,
) -> Result<(Array4<bf16>, Array3<f32>)> {
    LadderKernels::launch_config(rung, &check_ladder_inputs(inputs, mask)?)?;
    let mut buffers = Bf16Buffers::upload(gpu, inputs, mask, &SdpaOptions::default())?;
    kernels.launch(gpu, rung, &mut buffers)?;
    buffers.download(gpu)
}
