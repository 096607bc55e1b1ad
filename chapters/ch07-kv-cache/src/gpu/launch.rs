//! Checking and launching the decode kernels (their split plan: [`super::plan`]):
//! `kernels/ch07_decode_attention.cu` (K and V loaded into registers),
//! `kernels/ch07_decode_pipelined.cu` (the same computation with K and V brought into shared
//! memory by a `cp.async` pipeline) and
//! `kernels/ch07_decode_mma.cu` (the quantised caches, both products on the tensor cores); they
//! share `kernels/ch07_decode_common.cuh` (after `kernels/async_copy.cuh`) and the combine kernel.

use super::cache::{CacheDims, CacheElement};
use super::device::{DecodeWorkspace, DeviceKvCache, DeviceLengths};
use super::plan::{
    MAX_CHUNK, MAX_CHUNK_LIMIT, SplitPlan, WavePlan, check_max_chunk, plan_splits_for_waves,
    plan_splits_in_whole_waves,
};
use attn_support::cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
use attn_support::cudarc::driver::{CudaFunction, CudaSlice};
use attn_support::dependent_launch::DependentArgs;
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, launch_config};
use attn_support::{Error, Result, kernel_source};

/// The register kernel's file (and the combine kernel both versions use).
pub const DECODE_SOURCE: KernelSource =
    kernel_source!("async_copy.cuh", "ch07_decode_common.cuh", "ch07_decode_attention.cu");
/// The pipelined kernel's file.
pub const PIPELINED_SOURCE: KernelSource =
    kernel_source!("async_copy.cuh", "ch07_decode_common.cuh", "ch07_decode_pipelined.cu");
/// The tensor-core kernel's file.
pub const MMA_SOURCE: KernelSource =
    kernel_source!("async_copy.cuh", "ch07_decode_common.cuh", "ch07_decode_mma.cu");

/// Which version of the decode kernel runs: the two rungs of the chapter's ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeKernel {
    /// Each iteration loads its K and V rows into registers, then computes on them.
    Registers,
    /// K and V (and their scales) copied into shared memory by `cp.async`, several 64-token
    /// tiles ahead of the compute.
    Pipelined,
    /// Each warp's own `cp.async` pipeline of 16-token tiles, the codes decoded to exact f16
    /// operands in registers and both products on the tensor cores (`mma.sync`); quantised
    /// caches only ([`DecodeKernel::supports`]).
    TensorCores,
}

impl DecodeKernel {
    pub const ALL: [DecodeKernel; 3] =
        [DecodeKernel::Registers, DecodeKernel::Pipelined, DecodeKernel::TensorCores];

    /// Whether this version reads `element`: the tensor-core kernel is written for the quantised
    /// caches (a bf16 cache needs no decoding, and the pipelined kernel already reads it at the
    /// copy's rate for Llama-3-8B's heads), and it folds INT8's per-channel K scales into q for
    /// a 16-token tile at a time, so the key group must be a multiple of 16.
    pub fn supports(self, element: CacheElement) -> Result<()> {
        match (self, element) {
            (DecodeKernel::TensorCores, CacheElement::Bf16) => Err(Error::InvalidArgument(
                "the tensor-core decode kernel reads quantised caches (INT8, FP8, NVFP4), not bf16".into(),
            )),
            (DecodeKernel::TensorCores, CacheElement::Int8 { key_group }) if key_group % MMA_TILE != 0 => {
                Err(Error::InvalidArgument(format!(
                    "INT8 key group {key_group}: the tensor-core decode kernel needs a multiple of {MMA_TILE}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The fastest version for an element type, as measured on an H100 on 2026-12-05
    /// (`docs/src/results/h100-2026-12-05-ch07-run14`, every kernel in one run): the pipelined
    /// kernel for bf16 (86–100 % of the copy bandwidth at long contexts for Llama-3-8B's heads);
    /// the tensor-core kernel for the quantised caches it reads (1.4–2.6× as fast as bf16 at long
    /// contexts where the other two reach 0.9–1.4×), and for an INT8 key group that is not a
    /// multiple of 16 the register kernel (3–20 % faster than the pipelined one there, run 9).
    pub fn fastest_for(element: CacheElement) -> DecodeKernel {
        match element {
            CacheElement::Bf16 => DecodeKernel::Pipelined,
            e if DecodeKernel::TensorCores.supports(e).is_ok() => DecodeKernel::TensorCores,
            _ => DecodeKernel::Registers,
        }
    }

    /// The longest chunk a plan of at least some waves ([`DecodeAttention::set_min_waves`]) gives
    /// one block by default: [`MAX_CHUNK`], and twice
    /// that for the tensor-core kernel, whose warps each fill their own pipeline at the start of a
    /// chunk (an H100 on 2026-12-05, `results/h100-2026-12-05-ch07-run8`: 3–10 % faster at long
    /// contexts with 1024 than with 512).
    pub fn default_max_chunk(self) -> usize {
        match self {
            DecodeKernel::TensorCores => 2 * MAX_CHUNK,
            _ => MAX_CHUNK,
        }
    }

    /// The name in tables and in the kernels' entry points.
    pub fn name(self) -> &'static str {
        match self {
            DecodeKernel::Registers => "registers",
            DecodeKernel::Pipelined => "pipelined",
            DecodeKernel::TensorCores => "mma",
        }
    }
}

/// Tokens per shared-memory tile of the pipelined kernel (`TILE`).
pub const PIPELINE_TILE: usize = 64;
/// The smallest INT8 key group whose K scale rows the pipelined kernel stages in shared memory
/// (`MIN_STAGED_KEY_GROUP`); smaller groups read them from global memory.
pub const MIN_STAGED_KEY_GROUP: usize = 16;

/// Dynamic shared memory of the pipelined kernel: stages × bytes per stage, as `Tile<ELEM, D>`
/// of `kernels/ch07_decode_pipelined.cu` lays them out (K and V rows of a 64-token tile, then
/// the element type's scales).
pub fn pipelined_shared_bytes(element: CacheElement, head_dim: usize) -> usize {
    let tile = PIPELINE_TILE;
    let key_groups_staged = tile / MIN_STAGED_KEY_GROUP + 1;
    let (row_bytes, extra, stages) = match element {
        CacheElement::Bf16 => (2 * head_dim, 0, 3),
        CacheElement::Fp8 => (head_dim, 2 * tile * 4, 4),
        CacheElement::Int8 { .. } => (head_dim, tile * 4 + key_groups_staged * head_dim * 4, 4),
        CacheElement::Nvfp4 => (head_dim / 2, 2 * tile * (head_dim / 16), 6),
    };
    stages * (2 * tile * row_bytes + extra).next_multiple_of(16)
}
/// Tokens per tile of one warp of the tensor-core kernel (`WARP_TILE`).
pub const MMA_TILE: usize = 16;

/// Dynamic shared memory of the tensor-core kernel: for each of its 4 warps, stages × bytes per
/// stage as `Stage<ELEM, D>` of `kernels/ch07_decode_mma.cu` lays them out (K and V codes of a
/// 16-token tile, then the element type's scales). Stages: 4 where the kernel takes two tiles a
/// step (d = 64, and NVFP4 at d = 128), 3 for INT8 and FP8 at d = 128, 6 for NVFP4 at d = 64. A
/// bf16 cache has no such kernel: 0.
pub fn mma_shared_bytes(element: CacheElement, head_dim: usize) -> usize {
    let tile = MMA_TILE;
    let two_tile_step = head_dim == 64 || element == CacheElement::Nvfp4;
    let stages = if element == CacheElement::Nvfp4 && head_dim == 64 {
        6
    } else if two_tile_step {
        4
    } else {
        3
    };
    let (row_bytes, extra) = match element {
        CacheElement::Bf16 => return 0,
        CacheElement::Fp8 => (head_dim, 2 * tile * 4),
        CacheElement::Int8 { .. } => (head_dim, tile * 4 + head_dim * 4),
        CacheElement::Nvfp4 => (head_dim / 2, 2 * tile * (head_dim / 16)),
    };
    let warps = DECODE_THREADS / 32;
    warps * stages * (2 * tile * row_bytes + extra).next_multiple_of(16)
}
/// The most blocks per SM a wave of the tensor-core kernel at d = 64 is planned with
/// ([`DecodeAttention::wave_blocks`]).
pub const MMA_D64_BLOCKS_PER_SM: usize = 3;
/// Threads per block of the main kernel (`DECODE_THREADS`): 4 warps, so that with about 220
/// registers per thread (G = 4) two blocks fit an SM's 64 K registers.
pub const DECODE_THREADS: usize = 128;
/// Channels one combine block merges (`COMBINE_SLICE`): the grid is (rows, head_dim / 16), so
/// that a sequence's merge is spread over d/16 times as many SMs as it has rows.
pub const COMBINE_SLICE: usize = 16;
/// The most split lanes a combine block has (`COMBINE_MAX_LANES`): 32 × 16 = 512 threads.
pub const COMBINE_MAX_LANES: usize = 32;

/// Threads of one combine block for `splits` splits: `COMBINE_SLICE` channels times P split
/// lanes, P a power of two from 2 to `COMBINE_MAX_LANES` with about 8 splits a lane (the kernel
/// keeps 8 loads in flight per thread). At 8 splits (1 k tokens) that is 32 threads instead of
/// 512, most of which would find no split to read; at 512 splits (256 k tokens) 512 threads of
/// 16 splits each.
pub fn combine_threads(splits: usize) -> usize {
    COMBINE_SLICE * splits.div_ceil(8).next_power_of_two().clamp(2, COMBINE_MAX_LANES)
}
/// The head dims the kernels are compiled for: SmolLM2's 64 and Llama's 128 (16 elements per
/// lane, 4 or 8 lanes per token row).
pub const HEAD_DIMS: [usize; 2] = [64, 128];
/// The query heads per KV head the kernels are compiled for: MHA (1) to Llama-3-8B's 4; the
/// registers of q and of the accumulator grow with it (2 · 16 · G per thread).
pub const GROUPS: [usize; 4] = [1, 2, 3, 4];

/// The shapes of one launch, checked against each other and the kernels before it: `q` and
/// `out` hold `batch · kv_heads · group · head_dim` floats, one length per sequence, none past
/// the capacity, a compiled head dim and group, sizes inside the kernel's 32-bit arithmetic.
pub fn check_launch(
    dims: CacheDims,
    group: usize,
    q_len: usize,
    out_len: usize,
    lengths: usize,
    max_len: (u32, usize),
) -> Result<()> {
    if !HEAD_DIMS.contains(&dims.head_dim) {
        return Err(Error::InvalidArgument(format!(
            "head_dim {}: the decode kernels are compiled for {HEAD_DIMS:?}",
            dims.head_dim
        )));
    }
    if !GROUPS.contains(&group) {
        return Err(Error::InvalidArgument(format!(
            "{group} query heads per KV head: the decode kernels are compiled for {GROUPS:?}"
        )));
    }
    if dims.batch == 0 || dims.kv_heads == 0 || dims.batch > 65_535 || dims.kv_heads > 65_535 {
        return Err(Error::InvalidArgument(format!(
            "batch {} and kv_heads {} must be in 1..=65535 (the grid's y and z)",
            dims.batch, dims.kv_heads
        )));
    }
    if lengths != dims.batch {
        return Err(Error::InvalidArgument(format!("{lengths} lengths for a batch of {}", dims.batch)));
    }
    let q_need = dims.batch * dims.kv_heads * group * dims.head_dim;
    for (name, have) in [("q", q_len), ("out", out_len)] {
        if have != q_need {
            return Err(Error::InvalidArgument(format!(
                "{name} holds {have} floats; (batch {}, q_heads {} = {} KV heads × {group}, head_dim {}) \
                 needs {q_need}",
                dims.batch,
                dims.kv_heads * group,
                dims.kv_heads,
                dims.head_dim
            )));
        }
    }
    // Token indices and chunk starts are i32 in the kernel; a chunk start may pass the capacity
    // by up to a chunk.
    if dims.capacity > i32::MAX as usize - MAX_CHUNK_LIMIT {
        return Err(Error::InvalidArgument(format!("capacity {} over the kernel's 2^31", dims.capacity)));
    }
    let (max, b) = max_len;
    if max as usize > dims.capacity {
        return Err(Error::InvalidArgument(format!(
            "sequence {b} has length {max}, past the cache's capacity of {} tokens",
            dims.capacity
        )));
    }
    Ok(())
}

/// Whether a device of compute `capability` (major, minor) can launch as asked: a dependent
/// launch needs 9.0 or later, or an error naming the capability.
pub fn check_dependent_launch(capability: (i32, i32), dependent: bool) -> Result<()> {
    if dependent && capability.0 < 9 {
        return Err(Error::InvalidArgument(format!(
            "a dependent launch needs compute capability 9.0 or later, not {}.{}",
            capability.0, capability.1
        )));
    }
    Ok(())
}

/// The register kernel's name for an element type, head dim and group.
pub fn kernel_name(element: CacheElement, head_dim: usize, group: usize) -> String {
    format!("ch07_decode_{}_d{head_dim}_g{group}", element.name())
}

/// The entry point of `version` for an element type, head dim and group.
pub fn versioned_kernel_name(
    version: DecodeKernel,
    element: CacheElement,
    head_dim: usize,
    group: usize,
) -> String {
    match version {
        DecodeKernel::Registers => kernel_name(element, head_dim, group),
        DecodeKernel::Pipelined => format!("ch07_decode_pipelined_{}_d{head_dim}_g{group}", element.name()),
        DecodeKernel::TensorCores => format!("ch07_decode_mma_{}_d{head_dim}_g{group}", element.name()),
    }
}

/// Decode attention for one element type, head dim and GQA group, compiled and loaded.
pub struct DecodeAttention {
    version: DecodeKernel,
    element: CacheElement,
    head_dim: usize,
    group: usize,
    main: CudaFunction,
    /// Dynamic shared memory per block of `main` (0 for the register kernel).
    shared_bytes: usize,
    combine: CudaFunction,
    /// Blocks of the main kernel the whole device runs at once.
    wave_blocks: usize,
    /// The longest chunk a split plan may give a block, when set; otherwise [`MAX_CHUNK_LIMIT`]
    /// for whole waves and [`DecodeKernel::default_max_chunk`] for at least some waves.
    max_chunk: Option<usize>,
    /// Whole waves (one, unless set) or at least some waves.
    wave_plan: WavePlan,
    /// Whether both kernels are launched as programmatic dependents of the kernel before them
    /// (compute capability 9.0 and later; [`DecodeAttention::set_dependent_launch`]).
    dependent: bool,
}

impl DecodeAttention {
    /// The faster kernel version for `element` ([`DecodeKernel::fastest_for`]; see
    /// [`DecodeAttention::with_kernel`]).
    pub fn new(gpu: &Gpu, element: CacheElement, head_dim: usize, group: usize) -> Result<DecodeAttention> {
        DecodeAttention::with_kernel(gpu, DecodeKernel::fastest_for(element), element, head_dim, group)
    }

    /// Compile and load `version` for an element type, head dim and group; an unsupported head
    /// dim or group is an error naming it.
    pub fn with_kernel(
        gpu: &Gpu,
        version: DecodeKernel,
        element: CacheElement,
        head_dim: usize,
        group: usize,
    ) -> Result<DecodeAttention> {
        let probe = CacheDims { batch: 1, kv_heads: 1, capacity: 0, head_dim };
        check_launch(probe, group, head_dim * group, head_dim * group, 1, (0, 0))?;
        version.supports(element)?;
        let name = versioned_kernel_name(version, element, head_dim, group);
        let (main, shared_bytes) = match version {
            DecodeKernel::Registers => (gpu.function(&DECODE_SOURCE, &name)?, 0),
            DecodeKernel::Pipelined => {
                let main = gpu.function(&PIPELINED_SOURCE, &name)?;
                let bytes = pipelined_shared_bytes(element, head_dim);
                gpu.opt_in_shared_memory(&main, &name, bytes)?;
                (main, bytes)
            }
            DecodeKernel::TensorCores => {
                let main = gpu.function(&MMA_SOURCE, &name)?;
                let bytes = mma_shared_bytes(element, head_dim);
                gpu.opt_in_shared_memory(&main, &name, bytes)?;
                (main, bytes)
            }
        };
        let combine = gpu.function(&DECODE_SOURCE, "ch07_decode_combine")?;
        let per_sm = main
            .occupancy_max_active_blocks_per_multiprocessor(DECODE_THREADS as u32, shared_bytes, None)
            .ctx("reading the decode kernel's occupancy")? as usize;
        // The tensor-core kernel at d = 64 plans its wave as at most 3 blocks per SM, though 5
        // or 6 fit: fewer, longer splits (SmolLM2 at 16 × 16 k: 8 per plane instead of 13), so
        // fewer partials to combine and more tiles per pipeline fill. H100 run 32: 2–6 % faster
        // than 5 or 6 per SM, 0–3 % faster than 4.
        let per_sm = if version == DecodeKernel::TensorCores && head_dim == 64 {
            per_sm.min(MMA_D64_BLOCKS_PER_SM)
        } else {
            per_sm
        };
        let sms =
            gpu.ctx.attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).ctx("reading the SM count")? as usize;
        Ok(DecodeAttention {
            version,
            element,
            head_dim,
            group,
            main,
            shared_bytes,
            combine,
            wave_blocks: per_sm.max(1) * sms,
            max_chunk: None,
            wave_plan: WavePlan::default(),
            dependent: gpu.compute_capability().0 >= 9,
        })
    }

    /// Which kernel version this is.
    pub fn version(&self) -> DecodeKernel {
        self.version
    }

    pub fn element(&self) -> CacheElement {
        self.element
    }

    /// Query heads per KV head.
    pub fn group(&self) -> usize {
        self.group
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Blocks of the main kernel that one wave of its split plan holds: as many as run at once
    /// on the device, or for the tensor-core kernel at d = 64 at most
    /// [`MMA_D64_BLOCKS_PER_SM`] per SM.
    pub fn wave_blocks(&self) -> usize {
        self.wave_blocks
    }

    /// Let split plans give a block up to `max_chunk` tokens (longer chunks: fewer blocks, each
    /// filling its pipeline once, and fewer partials to combine); a multiple of
    /// [`super::plan::CHUNK_QUANTUM`] up to [`MAX_CHUNK_LIMIT`].
    pub fn set_max_chunk(&mut self, max_chunk: usize) -> Result<()> {
        check_max_chunk(max_chunk)?;
        self.max_chunk = Some(max_chunk);
        Ok(())
    }

    /// Plan whole waves of blocks ([`plan_splits_in_whole_waves`]; one, the default) or at least
    /// some waves ([`plan_splits_for_waves`]: more waves, shorter chunks and a shorter last wave);
    /// a plan of 0 waves is an error naming it.
    pub fn set_wave_plan(&mut self, plan: WavePlan) -> Result<()> {
        plan.check()?;
        self.wave_plan = plan;
        Ok(())
    }

    /// Plan at least `min_waves` waves of blocks, the plan before whole waves with `min_waves` =
    /// [`super::plan::MIN_WAVES`] ([`DecodeAttention::set_wave_plan`]).
    pub fn set_min_waves(&mut self, min_waves: usize) -> Result<()> {
        self.set_wave_plan(WavePlan::AtLeast(min_waves))
    }

    /// Launch both kernels as programmatic dependents (`true`, the default on compute
    /// capability 9.0 and later) or each after the kernel before it in stream order (`false`).
    /// As dependents, the main kernel launches as the kernel before it on the stream exits
    /// (nothing allows it earlier), and the combine while the main kernel's last blocks run;
    /// either way each kernel waits for the one before it to finish before it touches memory.
    /// An error on an older GPU, which has no dependent launch.
    pub fn set_dependent_launch(&mut self, gpu: &Gpu, dependent: bool) -> Result<()> {
        check_dependent_launch(gpu.compute_capability(), dependent)?;
        self.dependent = dependent;
        Ok(())
    }

    /// The split plan of a launch on `dims` whose longest sequence has `max_len` tokens.
    pub fn plan(&self, dims: CacheDims, max_len: usize) -> SplitPlan {
        let (planes, wave) = (dims.planes(), self.wave_blocks);
        match self.wave_plan {
            WavePlan::Whole(waves) => {
                let max_chunk = self.max_chunk.unwrap_or(MAX_CHUNK_LIMIT);
                plan_splits_in_whole_waves(planes, max_len, wave, max_chunk, waves)
            }
            WavePlan::AtLeast(waves) => {
                let max_chunk = self.max_chunk.unwrap_or(self.version.default_max_chunk());
                plan_splits_for_waves(planes, max_len, wave, max_chunk, waves)
            }
        }
    }

    // ANCHOR: launch
    /// `out (batch, q_heads, d) = attention of q (batch, q_heads, d)` over `cache` with
    /// `lengths`, asynchronously on `gpu.stream`; the split plan used is returned.
    pub fn launch(
        &self,
        gpu: &Gpu,
        q: &CudaSlice<f32>,
        cache: &DeviceKvCache,
        lengths: &DeviceLengths,
        out: &mut CudaSlice<f32>,
        workspace: &mut DecodeWorkspace,
    ) -> Result<SplitPlan> {
        let dims = cache.dims;
        if cache.element != self.element || dims.head_dim != self.head_dim {
            return Err(Error::InvalidArgument(format!(
                "a {} cache of head_dim {} given to the {} kernel of head_dim {}",
                cache.element.name(),
                dims.head_dim,
                self.element.name(),
                self.head_dim
            )));
        }
        check_launch(dims, self.group, q.len(), out.len(), lengths.len(), lengths.max)?;
        let plan = self.plan(dims, lengths.max.0 as usize);
        let rows = dims.batch * dims.kv_heads * self.group;
        // The main kernel writes the splits' partials, the combine reads them.
        let several = plan.splits > 1;
        if several {
            workspace.ensure(gpu, rows * plan.splits * dims.head_dim, rows * plan.splits * 2)?;
        }
        let (kv_heads, capacity, chunk) = (dims.kv_heads as i32, dims.capacity as i32, plan.chunk as i32);
        let key_group = cache.element.key_group() as i32;
        let qk_scale = (std::f64::consts::LOG2_E / (dims.head_dim as f64).sqrt()) as f32;
        let grid =
            launch_config((plan.splits, dims.kv_heads, dims.batch), DECODE_THREADS, self.shared_bytes)?;
        {
            let mut args = DependentArgs::new(&gpu.stream);
            args.slice(q).slice(&cache.k.codes).slice(&cache.v.codes);
            args.optional(cache.k.scales.as_ref()).optional(cache.v.scales.as_ref());
            args.optional(cache.k.block_scales.as_ref()).optional(cache.v.block_scales.as_ref());
            args.optional(cache.k.tensor_scales.as_ref()).optional(cache.v.tensor_scales.as_ref());
            args.slice(&lengths.buf);
            args.optional_mut(workspace.acc.as_mut().filter(|_| several));
            args.optional_mut(workspace.ml.as_mut().filter(|_| several));
            args.slice_mut(&mut *out).i32(kv_heads).i32(capacity).i32(chunk).i32(key_group).f32(qk_scale);
            // SAFETY: the arguments match the kernel's signature; every buffer holds what the
            // dims need (checked when the cache was uploaded or reshaped), q and out their
            // (batch, q_heads, d), no length passes the capacity (check_launch), and the
            // workspace holds (rows, splits, d) partials when there are several splits; the
            // pipelined and tensor-core kernels' dynamic shared memory was opted into when they
            // were loaded. The kernel waits for the kernel before it (griddepcontrol.wait)
            // before it touches any buffer.
            unsafe { args.launch(&self.main, grid, self.dependent) }?;
        }
        if let (Some(acc), Some(ml), true) = (&workspace.acc, &workspace.ml, several) {
            let q_heads = (dims.kv_heads * self.group) as i32;
            let (head_dim, splits) = (dims.head_dim as i32, plan.splits as i32);
            let threads = combine_threads(plan.splits);
            let grid = launch_config((rows, dims.head_dim / COMBINE_SLICE, 1), threads, 0)?;
            let mut args = DependentArgs::new(&gpu.stream);
            args.slice(acc).slice(ml).slice(&lengths.buf).slice_mut(&mut *out);
            args.i32(q_heads).i32(head_dim).i32(splits).i32(chunk);
            // SAFETY: one block per (sequence, query head) row and slice of COMBINE_SLICE
            // channels (the head dim, 64 or 128, checked by check_launch, is a multiple of it), a
            // multiple of 32 threads and at most the kernel's 512 (combine_threads); the partials
            // hold (rows, splits, d) and (rows, splits, 2) floats, and the kernel waits for the
            // main kernel before it reads them.
            unsafe { args.launch(&self.combine, grid, self.dependent) }?;
        }
        Ok(plan)
    }
    // ANCHOR_END: launch
}
