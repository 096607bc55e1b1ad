//! Scale + mask + softmax on the GPU (`kernels/ch05_softmax_fusion.cu`): the fused one-pass
//! kernel, in two launch shapes, and the unfused three-kernel chain it replaces.
//!
//! **Fused.** [`launch_fused`] reads each row of scores once and writes its probabilities once;
//! the mask ([`MaskSpec`]: causal, key padding, sliding window) is computed from the row and
//! column indices, never read. The row stays in registers between the max, the sum and the
//! normalisation, spread over
//!
//! - **a warp per row** for short rows: 32 lanes × V values, reductions by warp shuffles alone,
//!   no shared memory and no barrier; up to [`WARP_MAX_KEYS`] = 2048 keys (V = 64). Rows too
//!   short to give each of 32 lanes a vector go to groups of 16 or 8 lanes, 2 or 4 groups a
//!   warp; a group whose lanes hold ≤ 8 values takes 2 rows at once ([`rows_per_group`]);
//! - **a block per row** for long rows: up to 512 threads × V values, warp shuffles then one
//!   float per warp through shared memory; up to [`BLOCK_MAX_KEYS`] = 32768 keys.
//!
//! An experiment beside them, [`RowLaunch::BlockPerRow1024`]: a block of up to
//! [`WIDE_BLOCK_THREADS`] = 1024 threads × 16 values, for rows of 8193 to 16384 keys that the
//! 512-thread block holds as 32 values per thread (see its docs). `Auto` does not pick it; the
//! benchmark times it beside the 512-thread block (`fused_block1024`).
//!
//! A second experiment, [`RowLaunch::BlockPerRowPrefetch`]: bf16 rows of up to
//! [`PREFETCH_MAX_KEYS`] = 16384 keys, a persistent grid of as many 512-thread blocks as fit at
//! once, each copying its next row into shared memory (`cp.async`) while it computes this one
//! (see its docs), and [`RowLaunch::BlockPerRowPrefetch3`], the same with its next two rows in
//! flight. `Auto` does not pick them either; the benchmark's `fused_block_prefetch{,3}` rows.
//!
//! A third, [`RowLaunch::TwoPass`]: a block that holds nothing, reading a bf16 row twice —
//! once from DRAM for the online softmax's running max and sum, once again from L2 to write —
//! in 32 registers, four rows an SM instead of two, and with no longest row (see its docs; the
//! benchmark's `fused_twopass`). It is the one that reached the copy's rate: on an H100 (run 16,
//! `docs/src/results/h100-2026-12-05-ch05-ch07-run16/`) 0.91–0.92 of the copy at 16 384 bf16
//! keys where the 512-thread block ran at 0.82–0.83, and 0.92–0.93 at 8192 against 0.90; at
//! 1024–4096 keys, where a thread has only one or two vectors to keep in flight, 0.68–0.79
//! against 0.98–1.0. So `Auto` gives it bf16 rows of more than
//! [`AUTO_TWO_PASS_ABOVE_KEYS`] = 8192 keys with 128-bit access, and with it bf16 rows of any
//! length.
//!
//! [`RowLaunch::Auto`] takes a warp per row up to [`AUTO_WARP_MAX_KEYS`] = 1024 keys. There a
//! lane already holds 32 values (56 registers for f32 with 128-bit access, ptxas); at 2048 keys
//! it holds 64 (78 registers), fewer warps fit on an SM to hide memory latency, and a block that
//! spreads the row over more threads keeps each thread at 16–32 values instead. PyTorch's own
//! softmax switches from its warp-per-row kernel at the same 1024. The `ch05 --bench-softmax`
//! run times both shapes on either side of the switch, which is what the choice should rest on.
//!
//! **128-bit access.** When Nk is a multiple of 4 (f32) or 8 (bf16) and both buffers start on a
//! 16-byte boundary, every row starts on one too, and the kernels move 16 bytes per load and
//! store (`float4`, or 8 bf16 in a `uint4`); otherwise they move one element at a time (a
//! slower but always-correct "scalar" build of the same code). [`plan_fused`] decides.
//!
//! **Unfused.** [`UnfusedChain`] is what three framework operations do: `S₁ = S · scale`
//! (a kernel), `S₂ = S₁ + M` with `M` a stored (B, 1, Nq, Nk) tensor of 0 / −∞ in the scores'
//! dtype (a kernel), `P = softmax(S₂)` (a kernel), each a round trip through device memory.
//! The softmax step is the fused kernel with no mask and scale 1 — a plain row softmax — so
//! that the two versions differ by the fusion alone, not by the quality of their softmax.
//! Chapter 4's `ch04_masked_softmax_rows` is not reused for it: it takes f32 only (this chapter
//! needs bf16 too), expects scores already in log₂ units (its GEMM folds in log₂e), computes
//! in place with a log-sum-exp output, and reads the row three times from memory, which would
//! charge the unfused chain for a weaker softmax rather than for being unfused.

use crate::softmax_fusion::{MaskSpec, ScoreShape};
use attn_support::cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
use attn_support::cudarc::driver::{
    CudaFunction, CudaSlice, CudaView, CudaViewMut, DevicePtr, DeviceRepr, PushKernelArg, ValidAsZeroBits,
};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, cdiv, launch_config};
use attn_support::ndarray::{Array4, ArrayView4};
use attn_support::{Error, Result, kernel_source};
use half::bf16;

/// The kernel file.
pub const SOFTMAX_FUSION_SOURCE: KernelSource = kernel_source!("async_copy.cuh", "ch05_softmax_fusion.cu");

/// Warps per 128-thread block in the warp-per-row kernels (`WARPS_PER_BLOCK` in the .cu file).
pub const WARPS_PER_BLOCK: usize = 4;
/// Lanes per row the warp-per-row kernels are built for at their smallest V: the whole warp,
/// or half or a quarter of it for rows too short to give every lane of a warp a vector.
pub const WARP_LANES_PER_ROW: [usize; 3] = [32, 16, 8];
/// Values per lane the warp-per-row kernels are built for (`WARP_ENTRY` in the .cu file).
pub const WARP_VALUES_PER_LANE: [usize; 5] = [4, 8, 16, 32, 64];
/// The longest row a warp can hold: 32 lanes × 64 values.
pub const WARP_MAX_KEYS: usize = 32 * 64;
/// The longest row [`RowLaunch::Auto`] gives to a warp (see the module docs).
pub const AUTO_WARP_MAX_KEYS: usize = 1024;
/// bf16 rows longer than this go to [`RowLaunch::TwoPass`] under [`RowLaunch::Auto`] (with
/// 128-bit access; see the module docs).
pub const AUTO_TWO_PASS_ABOVE_KEYS: usize = 8192;
/// Threads per block at most in the block-per-row kernels (`BLOCK_MAX_THREADS`, also their
/// `__launch_bounds__`: 512 threads leave each up to 128 registers, enough for 64 values).
pub const BLOCK_MAX_THREADS: usize = 512;
/// Values per thread the block-per-row kernels are built for (`BLOCK_ENTRY` in the .cu file).
pub const BLOCK_VALUES_PER_THREAD: [usize; 3] = [16, 32, 64];
/// The longest row a block can hold in registers: 512 threads × 64 values.
pub const BLOCK_MAX_KEYS: usize = BLOCK_MAX_THREADS * 64;
/// Threads per block at most of the 1024-thread experiment (`WIDE_BLOCK_THREADS` in the .cu file).
pub const WIDE_BLOCK_THREADS: usize = 1024;
/// Values per thread of the 1024-thread experiment (`WIDE_BLOCK_ENTRY`): two 16-byte bf16
/// vectors, or four f32 ones.
pub const WIDE_BLOCK_VALUES_PER_THREAD: usize = 16;
/// The longest row the 1024-thread experiment holds: 1024 threads × 16 values.
pub const WIDE_BLOCK_MAX_KEYS: usize = WIDE_BLOCK_THREADS * WIDE_BLOCK_VALUES_PER_THREAD;
/// Threads per block at most of the prefetching experiment (`PREFETCH_THREADS` in the .cu file).
pub const PREFETCH_THREADS: usize = 512;
/// Values per thread of the prefetching experiment: four 16-byte bf16 vectors.
pub const PREFETCH_VALUES_PER_THREAD: usize = 32;
/// The longest row the prefetching experiment holds: 512 threads × 32 values.
pub const PREFETCH_MAX_KEYS: usize = PREFETCH_THREADS * PREFETCH_VALUES_PER_THREAD;
/// Threads per block at most of the two-pass experiment (`TWOPASS_THREADS` in the .cu file).
pub const TWOPASS_THREADS: usize = 512;
/// Threads per block of the element-wise kernels of the unfused chain (`ELEMENTWISE_THREADS`).
pub const ELEMENTWISE_THREADS: usize = 256;
/// Bytes of one vectorised access.
pub const VECTOR_BYTES: usize = 16;

/// An element type the kernels store scores in; the arithmetic is f32 either way.
pub trait ScoreElement: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {
    /// The name in kernel entry points and tables: "f32" or "bf16".
    const NAME: &'static str;
    /// Bytes per element.
    const BYTES: usize;
    /// Round an f32 to this type (to nearest even for bf16).
    fn from_f32(x: f32) -> Self;
    /// Widen to f32 (exact).
    fn to_f32(self) -> f32;
}

impl ScoreElement for f32 {
    const NAME: &'static str = "f32";
    const BYTES: usize = 4;
    fn from_f32(x: f32) -> f32 {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl ScoreElement for bf16 {
    const NAME: &'static str = "bf16";
    const BYTES: usize = 2;
    fn from_f32(x: f32) -> bf16 {
        bf16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

/// Which launch shape the fused kernel uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLaunch {
    /// A warp per row up to [`AUTO_WARP_MAX_KEYS`] keys, a block per row beyond.
    Auto,
    /// Force a warp per row (an error above [`WARP_MAX_KEYS`]).
    WarpPerRow,
    /// Force a block per row (an error above [`BLOCK_MAX_KEYS`]).
    BlockPerRow,
    /// The experiment: a block per row of up to [`WIDE_BLOCK_THREADS`] = 1024 threads, each
    /// holding [`WIDE_BLOCK_VALUES_PER_THREAD`] = 16 values, built with
    /// `__launch_bounds__(1024, 2)` so that two rows fit an SM at full occupancy (32 registers a
    /// thread), where `BlockPerRow` holds rows of 8193 to 16384 keys as 512 threads × 32 values
    /// (~60 registers, two rows per SM at half occupancy). 128-bit access only (an error for a
    /// row that is not whole 16-byte vectors or a misaligned buffer), at most
    /// [`WIDE_BLOCK_MAX_KEYS`] keys. `Auto` never picks it.
    BlockPerRow1024,
    /// The second experiment, bf16 only: a persistent grid of as many blocks of up to
    /// [`PREFETCH_THREADS`] = 512 threads × [`PREFETCH_VALUES_PER_THREAD`] = 32 values as fit on
    /// the device at once ([`prefetch_grid`]); block b takes rows b, b + G, b + 2G, ... and, while
    /// it computes one row, copies the visible part of its next one into the second of two
    /// shared-memory row buffers (`cp.async`, 4·Nk bytes of dynamic shared memory), so that DRAM
    /// has a load in flight during the reductions, where `BlockPerRow` loads a row in one burst
    /// and then idles. 128-bit access only, at most [`PREFETCH_MAX_KEYS`] keys. `Auto` never
    /// picks it.
    BlockPerRowPrefetch,
    /// The same persistent block with three row buffers (6·Nk bytes): the next two rows are in
    /// flight while it computes one, twice the bytes a block keeps asked of DRAM. `Auto` never
    /// picks it.
    BlockPerRowPrefetch3,
    /// The third experiment, bf16 only: a block per row of up to [`TWOPASS_THREADS`] = 512
    /// threads that holds nothing between reading and writing. Pass 1 reads the row from DRAM
    /// with a running max and sum per thread (the online softmax), merged over the block; pass 2
    /// reads the row again, from L2, and writes 2^(t − M) / S. 32 registers a thread, four rows
    /// an SM where `BlockPerRow` fits two, for a second read from L2 and the exponentials taken
    /// twice. Any row length (the row is not held); 128-bit access only. `Auto` picks it for bf16
    /// rows of more than [`AUTO_TWO_PASS_ABOVE_KEYS`] keys.
    TwoPass,
}

impl RowLaunch {
    /// The row buffers of a prefetching block (2 or 3), `None` for the other launch shapes.
    pub fn prefetch_stages(self) -> Option<usize> {
        match self {
            RowLaunch::BlockPerRowPrefetch => Some(2),
            RowLaunch::BlockPerRowPrefetch3 => Some(3),
            _ => None,
        }
    }
}

/// How a row is read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// 16 bytes per load and store.
    Vector,
    /// One element per load and store.
    Scalar,
}

/// The kernel [`plan_fused`] chose and its launch shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusedPlan {
    /// [`RowLaunch::WarpPerRow`], [`RowLaunch::BlockPerRow`], [`RowLaunch::BlockPerRow1024`] or
    /// [`RowLaunch::BlockPerRowPrefetch`], never `Auto`.
    pub shape: RowLaunch,
    pub access: Access,
    /// Values of the row each lane (warp) or thread (block) holds in registers.
    pub values_per_thread: usize,
    /// Threads working on one row: 32, 16 or 8 lanes of a warp, or a multiple of 32 up to 512
    /// threads of a block (1024 for [`RowLaunch::BlockPerRow1024`]).
    pub threads_per_row: usize,
    /// Rows each group of `threads_per_row` lanes takes at once ([`rows_per_group`]; 1 for a
    /// block per row).
    pub rows_per_group: usize,
    /// The kernel's entry point, `ch05_softmax_{warp|block}_{f32|bf16}_{vec|scalar}_v{V}`.
    pub kernel: String,
}

/// Rows a lane group of the warp-per-row kernels takes at once, for `v` values per lane
/// (`ROWS_PER_GROUP` in the .cu file): 2 when a lane holds at most 8 values (rows of ≤ 256
/// keys), so that a warp has two rows' loads in flight and half as many blocks are launched
/// for the same bytes (PyTorch's short-row softmax also gives a warp two rows); 1 beyond.
pub const fn rows_per_group(v: usize) -> usize {
    if v <= 8 { 2 } else { 1 }
}

/// Elements per 16-byte vector of a type of `elem_bytes`.
pub fn vector_width(elem_bytes: usize) -> usize {
    VECTOR_BYTES / elem_bytes
}

/// An error naming what an experiment (`name`) was built for, if `unmet` says a row lacks it.
fn check_requirement(name: &str, unmet: Option<String>) -> Result<()> {
    match unmet {
        Some(requirement) => {
            Err(Error::InvalidArgument(format!("the {name} is built for {requirement}; use a block per row")))
        }
        None => Ok(()),
    }
}

/// What a bf16-only experiment with 128-bit access lacks on these rows, if anything.
fn unmet_bf16_vectors(dtype: &str, nk: usize, elem_bytes: usize, access: Access) -> Option<String> {
    (elem_bytes != 2 || access != Access::Vector).then(|| {
        format!(
            "bf16 with 128-bit access only: {dtype} rows of Nk = {nk} (want bf16, Nk a multiple of 8, both \
             buffers 16-byte aligned)"
        )
    })
}

/// The shape of an experiment's block (`values` per thread, as many whole warps as the row needs,
/// at most `max_threads`), or an error naming the requirement it was built for (`unmet`) or its
/// longest row.
fn experiment_block(
    name: &str,
    unmet: Option<String>,
    nk: usize,
    values: usize,
    max_threads: usize,
) -> Result<(usize, usize)> {
    check_requirement(name, unmet)?;
    let threads = cdiv(nk, values).next_multiple_of(32);
    if threads > max_threads {
        return Err(Error::InvalidArgument(format!(
            "the {name} holds at most {} keys ({max_threads} threads × {values} values); Nk = {nk} is longer",
            max_threads * values
        )));
    }
    Ok((values, threads))
}

/// Choose the kernel for rows of `nk` elements of `elem_bytes` (4 or 2), with `aligned` saying
/// whether both buffers start on a 16-byte boundary. An error names the limit a row exceeds.
pub fn plan_fused(
    nk: usize,
    dtype: &str,
    elem_bytes: usize,
    aligned: bool,
    launch: RowLaunch,
) -> Result<FusedPlan> {
    if nk == 0 {
        return Err(Error::InvalidArgument("rows of 0 keys: nothing to normalise".into()));
    }
    let width = vector_width(elem_bytes);
    let access = if aligned && nk.is_multiple_of(width) { Access::Vector } else { Access::Scalar };
    // A vector kernel holds whole vectors: V a multiple of the vector width.
    let fits_access = |v: usize| access == Access::Scalar || v.is_multiple_of(width);
    let shape = match launch {
        RowLaunch::Auto if nk <= AUTO_WARP_MAX_KEYS => RowLaunch::WarpPerRow,
        RowLaunch::Auto if elem_bytes == 2 && access == Access::Vector && nk > AUTO_TWO_PASS_ABOVE_KEYS => {
            RowLaunch::TwoPass
        }
        RowLaunch::Auto => RowLaunch::BlockPerRow,
        other => other,
    };
    let (values_per_thread, threads_per_row) = match shape {
        RowLaunch::WarpPerRow => {
            let v = WARP_VALUES_PER_LANE.into_iter().find(|&v| fits_access(v) && 32 * v >= nk).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "a warp per row holds at most {WARP_MAX_KEYS} keys (32 lanes × 64 values in registers); \
                     Nk = {nk}: use a block per row"
                ))
            })?;
            // At the smallest V, a row that fits in half the lanes goes to a group of 16 or 8
            // (2 or 4 rows per warp), so that no lane idles: 128 bf16 keys are 16 vectors of 8.
            let smallest = WARP_VALUES_PER_LANE.into_iter().find(|&v| fits_access(v)).expect("V = 64 fits");
            let lanes = if v == smallest {
                WARP_LANES_PER_ROW.into_iter().rev().find(|&lanes| lanes * v >= nk).unwrap_or(32)
            } else {
                32
            };
            (v, lanes)
        }
        RowLaunch::BlockPerRow1024 => experiment_block(
            &format!("{WIDE_BLOCK_THREADS}-thread block"),
            (access != Access::Vector).then(|| {
                format!(
                    "128-bit access only: Nk = {nk} must be a multiple of {width} {dtype} values and both buffers \
                     16-byte aligned"
                )
            }),
            nk,
            WIDE_BLOCK_VALUES_PER_THREAD,
            WIDE_BLOCK_THREADS,
        )?,
        RowLaunch::TwoPass => {
            check_requirement("two-pass block", unmet_bf16_vectors(dtype, nk, elem_bytes, access))?;
            // One vector of 8 per thread and pass until the row outgrows 512 threads; the values a
            // thread takes over both passes.
            let threads = cdiv(nk, width).next_multiple_of(32).min(TWOPASS_THREADS);
            (cdiv(nk, threads), threads)
        }
        RowLaunch::BlockPerRowPrefetch | RowLaunch::BlockPerRowPrefetch3 => experiment_block(
            "prefetching block",
            unmet_bf16_vectors(dtype, nk, elem_bytes, access),
            nk,
            PREFETCH_VALUES_PER_THREAD,
            PREFETCH_THREADS,
        )?,
        _ => {
            // The fewest values per thread whose thread count stays within a block.
            let threads = |v: usize| cdiv(nk, v).next_multiple_of(32);
            let v = BLOCK_VALUES_PER_THREAD
                .into_iter()
                .find(|&v| threads(v) <= BLOCK_MAX_THREADS)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "a block per row keeps the row in registers and holds at most {BLOCK_MAX_KEYS} keys \
                         ({BLOCK_MAX_THREADS} threads × 64 values); Nk = {nk} is longer"
                    ))
                })?;
            (v, threads(v))
        }
    };
    // The two-pass block has one entry: its values per thread are not a template parameter.
    let kernel = if shape == RowLaunch::TwoPass {
        "ch05_softmax_twopass_bf16_vec".to_string()
    } else {
        format!(
            "ch05_softmax_{}_{dtype}_{}_v{values_per_thread}{}",
            match shape {
                RowLaunch::WarpPerRow => "warp",
                RowLaunch::BlockPerRow1024 => "block1024",
                RowLaunch::BlockPerRowPrefetch => "block_prefetch",
                RowLaunch::BlockPerRowPrefetch3 => "block_prefetch3",
                _ => "block",
            },
            if access == Access::Vector { "vec" } else { "scalar" },
            if threads_per_row < 32 { format!("_lanes{threads_per_row}") } else { String::new() }
        )
    };
    let rows_per_group = if shape == RowLaunch::WarpPerRow { rows_per_group(values_per_thread) } else { 1 };
    Ok(FusedPlan { shape, access, values_per_thread, threads_per_row, rows_per_group, kernel })
}

/// A [`MaskSpec`] as the kernels take it: the key lengths on the device as i32, the window as
/// an i32 (0 = none). Made once per mask and shape by [`DeviceMask::upload`].
pub struct DeviceMask {
    pub spec: MaskSpec,
    pub shape: ScoreShape,
    key_lengths: Option<CudaSlice<i32>>,
    causal: i32,
    window: i32,
}

impl DeviceMask {
    /// Check `spec` against `shape` (one length per batch entry, none above Nk, window ≥ 1 and
    /// causal) and copy the key lengths to the device.
    pub fn upload(gpu: &Gpu, spec: &MaskSpec, shape: ScoreShape) -> Result<DeviceMask> {
        spec.check(shape)?;
        check_kernel_sizes(shape)?;
        let key_lengths = match &spec.key_lengths {
            Some(lengths) => {
                // Every length is ≤ Nk ≤ i32::MAX (checked above), so the casts are exact.
                let ints: Vec<i32> = lengths.iter().map(|&l| l as i32).collect();
                Some(gpu.stream.clone_htod(&ints).ctx("copying key lengths to the device")?)
            }
            None => None,
        };
        let window = match spec.window {
            Some(w) => i32::try_from(w.min(shape.nk + shape.nq)).expect("Nq + Nk ≤ 2·i32::MAX is checked"),
            None => 0,
        };
        Ok(DeviceMask { spec: spec.clone(), shape, key_lengths, causal: spec.causal as i32, window })
    }
}

/// Every size the kernels take as a 32-bit `int` must fit in one (Nk, Nq, heads), and the window
/// clamp above must not overflow.
fn check_kernel_sizes(shape: ScoreShape) -> Result<()> {
    let limit = i32::MAX as usize / 2;
    for (name, size) in [("Nk", shape.nk), ("Nq", shape.nq), ("heads", shape.heads), ("batch", shape.batch)] {
        if size == 0 || size > limit {
            return Err(Error::InvalidArgument(format!("{name} = {size} must be between 1 and {limit}")));
        }
    }
    Ok(())
}

fn check_len(name: &str, len: usize, shape: ScoreShape) -> Result<()> {
    if len as u64 != shape.elements() {
        return Err(Error::InvalidArgument(format!(
            "device buffer {name} holds {len} elements but {shape:?} needs {}",
            shape.elements()
        )));
    }
    Ok(())
}

/// True when a view starts on a 16-byte boundary (cudarc's allocations do; a sub-view may not).
fn aligned<T>(gpu: &Gpu, view: &impl DevicePtr<T>) -> bool {
    let (ptr, _record) = view.device_ptr(&gpu.stream);
    ptr.is_multiple_of(VECTOR_BYTES as u64)
}

// ANCHOR: launch_fused
/// Enqueue the fused scale + mask + softmax: `probs = softmax(scores · scale + mask)` row by
/// row, both (B, H, Nq, Nk) of `mask.shape`. Returns the plan it launched.
pub fn launch_fused<T: ScoreElement>(
    gpu: &Gpu,
    scores: &CudaView<T>,
    probs: &mut CudaViewMut<T>,
    scale: f32,
    mask: &DeviceMask,
    launch: RowLaunch,
) -> Result<FusedPlan> {
    launch_fused_with_access(gpu, scores, probs, scale, mask, launch, true)
}

/// [`launch_fused`] with 128-bit access allowed or not (`allow_vector = false` runs the scalar
/// build even where vectors would do: the benchmark's measure of what the vectors are worth).
pub fn launch_fused_with_access<T: ScoreElement>(
    gpu: &Gpu,
    scores: &CudaView<T>,
    probs: &mut CudaViewMut<T>,
    scale: f32,
    mask: &DeviceMask,
    launch: RowLaunch,
    allow_vector: bool,
) -> Result<FusedPlan> {
    let shape = mask.shape;
    check_len("scores", scores.len(), shape)?;
    check_len("probs", probs.len(), shape)?;
    if !scale.is_finite() {
        return Err(Error::InvalidArgument(format!("scale = {scale} is not finite")));
    }
    let both_aligned = aligned(gpu, scores) && aligned(gpu, probs);
    let plan = plan_fused(shape.nk, T::NAME, T::BYTES, allow_vector && both_aligned, launch)?;
    let rows = shape.elements() / shape.nk as u64;
    let function = gpu.function(&SOFTMAX_FUSION_SOURCE, &plan.kernel)?;
    let cfg = match plan.shape {
        RowLaunch::WarpPerRow => {
            let rows_per_block = WARPS_PER_BLOCK * 32 / plan.threads_per_row * plan.rows_per_group;
            launch_config((cdiv(rows as usize, rows_per_block), 1, 1), 32 * WARPS_PER_BLOCK, 0)?
        }
        RowLaunch::BlockPerRowPrefetch | RowLaunch::BlockPerRowPrefetch3 => {
            let shared = prefetch_shared_bytes(shape.nk, plan.shape);
            gpu.opt_in_shared_memory(&function, &plan.kernel, shared)?;
            let grid = prefetch_grid(gpu, &function, &plan, shared, rows as usize)?;
            launch_config((grid, 1, 1), plan.threads_per_row, shared)?
        }
        _ => launch_config((rows as usize, 1, 1), plan.threads_per_row, 0)?,
    };
    let (rows_i, heads, nq, nk) = (rows as i64, shape.heads as i32, shape.nq as i32, shape.nk as i32);
    let no_lengths = 0u64; // a null pointer: no key padding
    let mut builder = gpu.stream.launch_builder(&function);
    builder.arg(scores).arg(probs).arg(&rows_i).arg(&heads).arg(&nq).arg(&nk).arg(&scale).arg(&mask.causal);
    match &mask.key_lengths {
        Some(lengths) => builder.arg(lengths),
        None => builder.arg(&no_lengths),
    };
    builder.arg(&mask.window);
    // SAFETY: the arguments match the kernel's signature; both buffers hold rows·Nk elements
    // (checked), the kernel touches rows < `rows` and columns < Nk only, key_lengths holds B
    // ints (checked by MaskSpec::check), and 128-bit access was chosen only for 16-byte-aligned
    // buffers whose rows are whole vectors. The prefetching block's grid may be smaller than the
    // row count (its blocks loop over the rows), and its dynamic shared memory holds its 2 or 3
    // rows of Nk values, the most it copies.
    unsafe { builder.launch(cfg) }.ctx(&format!("launching {}", plan.kernel))?;
    Ok(plan)
}
// ANCHOR_END: launch_fused

/// Dynamic shared memory of a prefetching block (`launch`) for rows of `nk` bf16 keys: one row
/// buffer per stage ([`RowLaunch::prefetch_stages`]); 0 for the other launch shapes.
pub fn prefetch_shared_bytes(nk: usize, launch: RowLaunch) -> usize {
    launch.prefetch_stages().unwrap_or(0) * nk * std::mem::size_of::<bf16>()
}

/// Blocks of a prefetching kernel resident at once: the occupancy API's blocks per SM (2 for 512
/// threads of ≤ 64 registers on an H100) × the SM count.
pub fn prefetch_resident_blocks(
    gpu: &Gpu,
    function: &CudaFunction,
    plan: &FusedPlan,
    shared_bytes: usize,
) -> Result<usize> {
    let per_sm = function
        .occupancy_max_active_blocks_per_multiprocessor(plan.threads_per_row as u32, shared_bytes, None)
        .ctx(&format!("reading the occupancy of {}", plan.kernel))? as usize;
    if per_sm == 0 {
        return Err(Error::InvalidArgument(format!(
            "{} with {} threads and {shared_bytes} bytes of shared memory fits no SM",
            plan.kernel, plan.threads_per_row
        )));
    }
    let sms =
        gpu.ctx.attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).ctx("reading the SM count")? as usize;
    Ok(per_sm * sms)
}

/// The prefetching block's persistent grid for `rows` rows: no more blocks than are resident at
/// once ([`prefetch_resident_blocks`]), and no more than the busiest block's row count needs
/// ([`balanced_grid`]).
pub fn prefetch_grid(
    gpu: &Gpu,
    function: &CudaFunction,
    plan: &FusedPlan,
    shared_bytes: usize,
    rows: usize,
) -> Result<usize> {
    Ok(balanced_grid(rows, prefetch_resident_blocks(gpu, function, plan, shared_bytes)?))
}

/// The fewest blocks, at most `resident`, that leave no block more rows than the busiest block of
/// a grid of `resident` would take: ⌈rows / ⌈rows / resident⌉⌉. At 4096 rows and 264 resident
/// blocks that is 256 blocks of exactly 16 rows, where 264 blocks would run 136 blocks for a
/// 16th row while 128 sit idle, the SMs asking DRAM for half as much in that last round.
pub fn balanced_grid(rows: usize, resident: usize) -> usize {
    if rows == 0 {
        return 0;
    }
    rows.div_ceil(rows.div_ceil(resident.max(1)))
}

/// The fused kernel from host arrays: upload, launch, download (for tests and examples).
pub fn scale_mask_softmax_gpu<T: ScoreElement>(
    gpu: &Gpu,
    scores: ArrayView4<T>,
    scale: f32,
    mask: &MaskSpec,
    launch: RowLaunch,
) -> Result<Array4<T>> {
    let (batch, heads, nq, nk) = scores.dim();
    let shape = ScoreShape { batch, heads, nq, nk };
    let device_mask = DeviceMask::upload(gpu, mask, shape)?;
    let input = gpu.upload(&scores)?;
    let mut output = gpu.zeros::<T>(input.len())?;
    launch_fused(gpu, &input.as_view(), &mut output.as_view_mut(), scale, &device_mask, launch)?;
    gpu.download(&output, scores.raw_dim())
}

// ANCHOR: unfused_chain
/// The unfused chain's mask tensor and two intermediate tensors, allocated once per shape.
pub struct UnfusedChain<T> {
    pub shape: ScoreShape,
    /// (B, 1, Nq, Nk): 0 where visible, −∞ where masked, in the scores' dtype.
    mask: CudaSlice<T>,
    scaled: CudaSlice<T>,
    masked: CudaSlice<T>,
    /// The softmax pass: no mask, over the whole row.
    no_mask: DeviceMask,
}

impl<T: ScoreElement> UnfusedChain<T> {
    /// Build the stored mask tensor of `mask` on the host (as a framework would), copy it to the
    /// device and allocate the intermediates S₁ and S₂.
    pub fn new(gpu: &Gpu, shape: ScoreShape, mask: &MaskSpec) -> Result<UnfusedChain<T>> {
        check_kernel_sizes(shape)?;
        let tensor = mask.mask_tensor(shape)?.mapv(T::from_f32);
        let elements = shape.elements() as usize;
        Ok(UnfusedChain {
            shape,
            mask: gpu.upload(&tensor)?,
            scaled: gpu.zeros::<T>(elements)?,
            masked: gpu.zeros::<T>(elements)?,
            no_mask: DeviceMask::upload(gpu, &MaskSpec::none(), shape)?,
        })
    }

    /// Enqueue the three kernels: S₁ = S · scale, S₂ = S₁ + M, P = softmax(S₂).
    pub fn launch(
        &mut self,
        gpu: &Gpu,
        scores: &CudaView<T>,
        probs: &mut CudaViewMut<T>,
        scale: f32,
        launch: RowLaunch,
    ) -> Result<()> {
        let shape = self.shape;
        check_len("scores", scores.len(), shape)?;
        check_len("probs", probs.len(), shape)?;
        if !scale.is_finite() {
            return Err(Error::InvalidArgument(format!("scale = {scale} is not finite")));
        }
        let n = shape.elements() as usize;
        let plane_len = shape.nq * shape.nk;
        // S₁ and S₂ are whole allocations (aligned); the scores may be a sub-view.
        let vector = aligned(gpu, scores) && plane_len.is_multiple_of(vector_width(T::BYTES));
        let (width, access) = if vector { (vector_width(T::BYTES), "vec") } else { (1, "scalar") };

        // Pass 1: S₁ = S · scale, one W-element access per thread.
        let scale_kernel =
            gpu.function(&SOFTMAX_FUSION_SOURCE, &format!("ch05_scale_{}_{access}", T::NAME))?;
        let cfg = launch_config((cdiv(n / width, ELEMENTWISE_THREADS), 1, 1), ELEMENTWISE_THREADS, 0)?;
        let n_i = n as i64;
        let mut builder = gpu.stream.launch_builder(&scale_kernel);
        builder.arg(scores).arg(&mut self.scaled).arg(&n_i).arg(&scale);
        // SAFETY: both buffers hold n elements (checked), n is a multiple of W (W divides Nq·Nk,
        // which divides n) and vector access only for aligned buffers; threads past n/W return.
        unsafe { builder.launch(cfg) }.ctx("launching ch05_scale")?;

        // Pass 2: S₂ = S₁ + M, M broadcast over the heads; a block covers one chunk of a plane.
        let add_kernel =
            gpu.function(&SOFTMAX_FUSION_SOURCE, &format!("ch05_add_mask_{}_{access}", T::NAME))?;
        let chunks = cdiv(plane_len / width, ELEMENTWISE_THREADS);
        let planes = shape.batch * shape.heads;
        let cfg = launch_config((planes * chunks, 1, 1), ELEMENTWISE_THREADS, 0)?;
        let (plane_i, heads_i, chunks_i) = (plane_len as i64, shape.heads as i32, chunks as i32);
        let mut builder = gpu.stream.launch_builder(&add_kernel);
        builder
            .arg(&self.scaled)
            .arg(&self.mask)
            .arg(&mut self.masked)
            .arg(&plane_i)
            .arg(&heads_i)
            .arg(&chunks_i);
        // SAFETY: scaled and masked hold B·H·Nq·Nk elements, mask B·Nq·Nk; block k reads plane
        // k / chunks < B·H and offsets < Nq·Nk within it (threads past the plane return).
        unsafe { builder.launch(cfg) }.ctx("launching ch05_add_mask")?;

        // Pass 3: P = softmax(S₂), the fused kernel with no mask and scale 1.
        launch_fused(gpu, &self.masked.as_view(), probs, 1.0, &self.no_mask, launch)?;
        Ok(())
    }
}
// ANCHOR_END: unfused_chain

/// The unfused chain from host arrays: upload, three launches, download.
pub fn scale_mask_softmax_unfused_gpu<T: ScoreElement>(
    gpu: &Gpu,
    scores: ArrayView4<T>,
    scale: f32,
    mask: &MaskSpec,
    launch: RowLaunch,
) -> Result<Array4<T>> {
    let (batch, heads, nq, nk) = scores.dim();
    let shape = ScoreShape { batch, heads, nq, nk };
    let mut chain = UnfusedChain::<T>::new(gpu, shape, mask)?;
    let input = gpu.upload(&scores)?;
    let mut output = gpu.zeros::<T>(input.len())?;
    chain.launch(gpu, &input.as_view(), &mut output.as_view_mut(), scale, launch)?;
    gpu.download(&output, scores.raw_dim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_pick_the_smallest_register_array_that_holds_the_row() {
        let p = plan_fused(128, "f32", 4, true, RowLaunch::Auto).unwrap();
        assert_eq!((p.shape, p.access, p.values_per_thread), (RowLaunch::WarpPerRow, Access::Vector, 4));
        assert_eq!(p.kernel, "ch05_softmax_warp_f32_vec_v4");
        // bf16 vectors hold 8 elements, so the smallest warp kernel holds 8 per lane, and 128
        // keys fill 16 lanes: two rows per warp.
        let p = plan_fused(128, "bf16", 2, true, RowLaunch::Auto).unwrap();
        assert_eq!((p.values_per_thread, p.threads_per_row), (8, 16));
        assert_eq!(p.kernel, "ch05_softmax_warp_bf16_vec_v8_lanes16");
        // ... and each group of 16 lanes takes two rows at once: 4 rows per warp.
        assert_eq!(p.rows_per_group, 2);
        assert_eq!(plan_fused(1024, "bf16", 2, true, RowLaunch::Auto).unwrap().rows_per_group, 1);
        assert_eq!(plan_fused(4096, "f32", 4, true, RowLaunch::Auto).unwrap().rows_per_group, 1);
        assert_eq!(plan_fused(129, "bf16", 2, true, RowLaunch::Auto).unwrap().threads_per_row, 32);
        // Tiny rows: 8 lanes, 4 rows per warp.
        assert_eq!(
            plan_fused(3, "f32", 4, true, RowLaunch::Auto).unwrap().kernel,
            "ch05_softmax_warp_f32_scalar_v4_lanes8"
        );
        assert_eq!(
            plan_fused(256, "bf16", 2, true, RowLaunch::Auto).unwrap().kernel,
            "ch05_softmax_warp_bf16_vec_v8"
        );
        // Nk = 1000 is a multiple of 4 and 8; 1023 of neither: scalar.
        assert_eq!(plan_fused(1023, "f32", 4, true, RowLaunch::Auto).unwrap().access, Access::Scalar);
        assert_eq!(plan_fused(1000, "bf16", 2, true, RowLaunch::Auto).unwrap().access, Access::Vector);
        // A misaligned buffer forces scalar access.
        assert_eq!(plan_fused(1024, "f32", 4, false, RowLaunch::Auto).unwrap().access, Access::Scalar);
        // Auto switches at 1024 keys.
        assert_eq!(plan_fused(1024, "f32", 4, true, RowLaunch::Auto).unwrap().shape, RowLaunch::WarpPerRow);
        let p = plan_fused(1025, "f32", 4, true, RowLaunch::Auto).unwrap();
        assert_eq!((p.shape, p.threads_per_row, p.values_per_thread), (RowLaunch::BlockPerRow, 96, 16));
        // 16384 keys: 16 per thread would need 1024 threads, so 32 per thread × 512.
        let p = plan_fused(16384, "bf16", 2, true, RowLaunch::Auto).unwrap();
        assert_eq!((p.threads_per_row, p.values_per_thread), (512, 32));
        // A forced block on a tiny row still launches one warp.
        assert_eq!(plan_fused(1, "f32", 4, true, RowLaunch::BlockPerRow).unwrap().threads_per_row, 32);
    }

    #[test]
    fn the_1024_thread_block_spreads_long_rows_over_twice_the_threads() {
        // 16384 bf16 keys: 1024 threads × 16 values, against 512 × 32 for the block of today.
        let p = plan_fused(16384, "bf16", 2, true, RowLaunch::BlockPerRow1024).unwrap();
        assert_eq!((p.shape, p.threads_per_row, p.values_per_thread), (RowLaunch::BlockPerRow1024, 1024, 16));
        assert_eq!((p.kernel.as_str(), p.rows_per_group), ("ch05_softmax_block1024_bf16_vec_v16", 1));
        let today = plan_fused(16384, "bf16", 2, true, RowLaunch::BlockPerRow).unwrap();
        assert_eq!((today.threads_per_row, today.values_per_thread), (512, 32));
        // 8200 keys: ⌈8200 / 16⌉ = 513 threads, rounded up to whole warps.
        assert_eq!(
            plan_fused(8200, "bf16", 2, true, RowLaunch::BlockPerRow1024).unwrap().threads_per_row,
            544
        );
        assert_eq!(
            plan_fused(16384, "f32", 4, true, RowLaunch::BlockPerRow1024).unwrap().kernel,
            "ch05_softmax_block1024_f32_vec_v16"
        );
        // Auto does not pick it: f32 stays on the 512-thread block, bf16 goes to the two-pass one.
        assert_eq!(plan_fused(16384, "f32", 4, true, RowLaunch::Auto).unwrap().shape, RowLaunch::BlockPerRow);
        // Longer rows, rows that are not whole vectors and misaligned buffers are refused.
        let e = plan_fused(16392, "bf16", 2, true, RowLaunch::BlockPerRow1024).unwrap_err().to_string();
        assert!(e.contains("16384") && e.contains("16392"), "{e}");
        let e = plan_fused(8201, "bf16", 2, true, RowLaunch::BlockPerRow1024).unwrap_err().to_string();
        assert!(e.contains("128-bit") && e.contains("8201"), "{e}");
        assert!(plan_fused(8200, "bf16", 2, false, RowLaunch::BlockPerRow1024).is_err());
    }

    #[test]
    fn the_prefetching_block_takes_bf16_vector_rows_of_up_to_16384_keys() {
        let p = plan_fused(16384, "bf16", 2, true, RowLaunch::BlockPerRowPrefetch).unwrap();
        assert_eq!(
            (p.shape, p.threads_per_row, p.values_per_thread),
            (RowLaunch::BlockPerRowPrefetch, 512, 32)
        );
        assert_eq!((p.kernel.as_str(), p.rows_per_group), ("ch05_softmax_block_prefetch_bf16_vec_v32", 1));
        // 8200 keys: ⌈8200 / 32⌉ = 257 threads, rounded up to whole warps.
        assert_eq!(
            plan_fused(8200, "bf16", 2, true, RowLaunch::BlockPerRowPrefetch).unwrap().threads_per_row,
            288
        );
        // Two 32 KiB row buffers at 16384 keys: over the 48 KiB default, under an H100's 227 KiB;
        // three for the deeper version, 96 KiB (two blocks an SM: 192 KiB).
        assert_eq!(prefetch_shared_bytes(16384, RowLaunch::BlockPerRowPrefetch), 64 * 1024);
        assert_eq!(prefetch_shared_bytes(16384, RowLaunch::BlockPerRowPrefetch3), 96 * 1024);
        assert_eq!(prefetch_shared_bytes(16384, RowLaunch::BlockPerRow), 0);
        let p3 = plan_fused(16384, "bf16", 2, true, RowLaunch::BlockPerRowPrefetch3).unwrap();
        assert_eq!(
            (p3.kernel.as_str(), p3.threads_per_row),
            ("ch05_softmax_block_prefetch3_bf16_vec_v32", 512)
        );
        assert!(plan_fused(16384, "f32", 4, true, RowLaunch::BlockPerRowPrefetch3).is_err());
        // Auto does not pick it (it picks the two-pass block there).
        assert_eq!(
            plan_fused(16384, "bf16", 2, true, RowLaunch::Auto).unwrap().kernel,
            "ch05_softmax_twopass_bf16_vec"
        );
        // f32, longer rows, rows that are not whole vectors and misaligned buffers are refused.
        let e = plan_fused(16384, "f32", 4, true, RowLaunch::BlockPerRowPrefetch).unwrap_err().to_string();
        assert!(e.contains("bf16") && e.contains("f32"), "{e}");
        let e = plan_fused(16392, "bf16", 2, true, RowLaunch::BlockPerRowPrefetch).unwrap_err().to_string();
        assert!(e.contains("16384") && e.contains("16392"), "{e}");
        let e = plan_fused(8201, "bf16", 2, true, RowLaunch::BlockPerRowPrefetch).unwrap_err().to_string();
        assert!(e.contains("128-bit") && e.contains("8201"), "{e}");
        assert!(plan_fused(8200, "bf16", 2, false, RowLaunch::BlockPerRowPrefetch).is_err());
    }

    #[test]
    fn the_two_pass_block_takes_bf16_vector_rows_of_any_length() {
        let p = plan_fused(16384, "bf16", 2, true, RowLaunch::TwoPass).unwrap();
        assert_eq!(
            (p.kernel.as_str(), p.threads_per_row, p.values_per_thread),
            ("ch05_softmax_twopass_bf16_vec", 512, 32)
        );
        // 1032 keys: 129 vectors of 8, one a thread, in 5 warps; past the registers' 32768 keys too.
        assert_eq!(plan_fused(1032, "bf16", 2, true, RowLaunch::TwoPass).unwrap().threads_per_row, 160);
        // Auto: bf16 rows of more than 8192 keys with 128-bit access, and only those.
        for (nk, dtype, bytes, aligned, two_pass) in [
            (8192, "bf16", 2, true, false),
            (8200, "bf16", 2, true, true),
            (40000, "bf16", 2, true, true),
            (16384, "bf16", 2, false, false),
            (16384, "f32", 4, true, false),
        ] {
            let p = plan_fused(nk, dtype, bytes, aligned, RowLaunch::Auto).unwrap();
            assert_eq!(p.shape == RowLaunch::TwoPass, two_pass, "{nk} {dtype} {aligned}: {p:?}");
        }
        let long = plan_fused(40000, "bf16", 2, true, RowLaunch::TwoPass).unwrap();
        assert_eq!((long.threads_per_row, long.values_per_thread), (512, 79));
        for (nk, dtype, bytes, aligned) in
            [(16384, "f32", 4, true), (8201, "bf16", 2, true), (8200, "bf16", 2, false)]
        {
            let e = plan_fused(nk, dtype, bytes, aligned, RowLaunch::TwoPass).unwrap_err().to_string();
            assert!(e.contains("two-pass") && e.contains(&nk.to_string()), "{e}");
        }
    }

    #[test]
    fn the_balanced_grid_gives_no_block_more_rows_than_the_resident_grid() {
        assert_eq!(balanced_grid(4096, 264), 256);
        assert_eq!((balanced_grid(0, 264), balanced_grid(5, 264), balanced_grid(264, 264)), (0, 5, 264));
        assert_eq!(balanced_grid(265, 264), 133);
        for resident in [1, 7, 264] {
            for rows in 1..3 * resident + 5 {
                let g = balanced_grid(rows, resident);
                assert!(g >= 1 && g <= resident.min(rows), "{rows} rows, {resident}: {g}");
                assert_eq!(rows.div_ceil(g), rows.div_ceil(resident), "{rows} rows, {resident}: {g}");
            }
        }
    }

    #[test]
    fn rows_beyond_the_registers_are_refused_with_the_limit() {
        let e = plan_fused(2049, "f32", 4, true, RowLaunch::WarpPerRow).unwrap_err().to_string();
        assert!(e.contains("2048") && e.contains("2049"), "{e}");
        assert!(plan_fused(32768, "f32", 4, true, RowLaunch::BlockPerRow).is_ok());
        let e = plan_fused(32769, "f32", 4, true, RowLaunch::Auto).unwrap_err().to_string();
        assert!(e.contains("32768") && e.contains("32769"), "{e}");
        assert!(plan_fused(0, "f32", 4, true, RowLaunch::Auto).is_err());
    }

    #[test]
    fn every_planned_kernel_exists_in_the_file() {
        for (dtype, bytes) in [("f32", 4), ("bf16", 2)] {
            for nk in [1, 3, 8, 100, 128, 1000, 1023, 1024, 2048, 4097, 16384, 32768] {
                for aligned in [true, false] {
                    for launch in [
                        RowLaunch::Auto,
                        RowLaunch::WarpPerRow,
                        RowLaunch::BlockPerRow,
                        RowLaunch::BlockPerRow1024,
                        RowLaunch::BlockPerRowPrefetch,
                        RowLaunch::BlockPerRowPrefetch3,
                        RowLaunch::TwoPass,
                    ] {
                        if let Ok(plan) = plan_fused(nk, dtype, bytes, aligned, launch) {
                            // The threads of a row hold all of it.
                            assert!(
                                plan.threads_per_row * plan.values_per_thread >= nk,
                                "{plan:?} for Nk = {nk}"
                            );
                            let name = format!("{}, ", plan.kernel);
                            assert!(
                                SOFTMAX_FUSION_SOURCE.code.contains(&format!("ENTRY({name}")),
                                "no entry {} in the kernel file",
                                plan.kernel
                            );
                        }
                    }
                }
            }
        }
    }
}
