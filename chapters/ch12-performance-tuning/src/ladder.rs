//! The rungs of the optimisation ladder: which kernel each one launches, its tile shape, its
//! shared memory, and the one idea it adds over the rung below.
//!
//! Rung 0 is chapter 3's f32 kernel (FFMA on CUDA cores), timed on the same data upcast to f32;
//! rungs 1–9 are the bf16 tensor-core kernels of `kernels/ch12_*.cu` (6–9 Hopper-only, sm_90a).

use attn_support::gpu::KernelSource;
use attn_support::{Error, Result, kernel_source};
use serde::{Deserialize, Serialize};

/// The kernel files of the bf16 rungs (each the shared header followed by the rung's file).
pub const SMEM_SOFTMAX_SOURCE: KernelSource =
    kernel_source!("ch12_mma_common.cuh", "ch12_rung1_smem_softmax.cu");
pub const REGISTER_SOFTMAX_SOURCE: KernelSource =
    kernel_source!("ch12_mma_common.cuh", "ch12_rung2_register_softmax.cu");
pub const PIPELINED_SOURCE: KernelSource = kernel_source!("ch12_mma_common.cuh", "ch12_pipelined.cu");
pub const WGMMA_SOURCE: KernelSource =
    kernel_source!("ch12_mma_common.cuh", "ch12_wgmma_common.cuh", "ch12_wgmma.cu");
pub const TMA_SOURCE: KernelSource =
    kernel_source!("ch12_mma_common.cuh", "ch12_wgmma_common.cuh", "ch12_tma.cu");

/// The head dims with an entry point in every bf16 kernel file.
pub const LADDER_HEAD_DIMS: [usize; 2] = [64, 128];

/// A tile shape: BR query rows per block (16 per warp) × BC keys per key tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TileShape {
    pub block_rows: usize,
    pub block_keys: usize,
}

impl TileShape {
    pub const fn new(block_rows: usize, block_keys: usize) -> TileShape {
        TileShape { block_rows, block_keys }
    }
    /// Threads per block: one warp per 16 query rows.
    pub fn threads(&self) -> usize {
        2 * self.block_rows
    }
}

impl std::fmt::Display for TileShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.block_rows, self.block_keys)
    }
}

/// The shape of rungs 1–4 (4 warps × 16 rows, 64 keys per tile).
pub const BASE_SHAPE: TileShape = TileShape::new(64, 64);

// ANCHOR: tuned_shapes
/// The autotuner's space: every shape has a `ch12_tuned_d{D}_br{BR}_bc{BC}` entry point in
/// `kernels/ch12_pipelined.cu` (kept in step by hand; a test checks the names exist there).
pub const TUNED_SHAPES: [TileShape; 6] = [
    TileShape::new(64, 32),
    TileShape::new(64, 64),
    TileShape::new(64, 128),
    TileShape::new(128, 32),
    TileShape::new(128, 64),
    TileShape::new(128, 128),
];
// ANCHOR_END: tuned_shapes

// ANCHOR: overlap_shapes
/// The tile shapes of rung 7 per head dim (BR = 64 rows per warpgroup; each has a
/// `ch12_wgmma_overlap_d{D}_br{BR}_bc{BC}` entry point in `kernels/ch12_wgmma.cu`).
pub fn overlap_shapes(d: usize) -> &'static [TileShape] {
    const D64: [TileShape; 3] = [TileShape::new(128, 64), TileShape::new(128, 128), TileShape::new(192, 128)];
    const D128: [TileShape; 3] = [TileShape::new(128, 64), TileShape::new(128, 128), TileShape::new(192, 64)];
    match d {
        64 => &D64,
        128 => &D128,
        _ => &[],
    }
}
// ANCHOR_END: overlap_shapes

/// The tile shapes of rungs 8 and 9 per head dim (always 128 query rows: two consumer
/// warpgroups; each has `ch12_tma_d{D}_bc{BC}` and `ch12_pingpong_d{D}_bc{BC}` entry points in
/// `kernels/ch12_tma.cu`).
pub fn tma_shapes(d: usize) -> &'static [TileShape] {
    const D64: [TileShape; 1] = [TileShape::new(128, 128)];
    const D128: [TileShape; 2] = [TileShape::new(128, 64), TileShape::new(128, 128)];
    match d {
        64 => &D64,
        128 => &D128,
        _ => &[],
    }
}

/// Threads of the blocks of rungs 8 and 9: a producer warpgroup and two consumer warpgroups.
pub const TMA_THREADS: usize = 384;

/// One rung of the ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rung {
    /// Chapter 3's f32 FlashAttention kernel: FFMA, no tensor cores.
    F32Flash,
    /// Tensor cores (mma.sync) for both products; the softmax through shared memory.
    SmemSoftmax,
    /// The softmax in registers: P goes from the S accumulators straight into the P V MMAs.
    RegisterSoftmax,
    /// K/V tiles copied with cp.async into a two-stage buffer, overlapping the MMAs.
    CpAsync,
    /// ldmatrix fragment loads from XOR-swizzled shared memory.
    LdmatrixSwizzle,
    /// Rung 4's kernel at a tile shape chosen by the autotuner.
    Tuned(TileShape),
    /// Hopper's warpgroup MMA (wgmma, sm_90a) with operands read from swizzled shared memory.
    Wgmma,
    /// Rung 6 with the softmax of one tile overlapped with P V of the previous one, at a tile
    /// shape of [`overlap_shapes`].
    WgmmaOverlap(TileShape),
    /// Rung 7's loop fed by TMA copies from a producer warpgroup, with per-stage mbarriers
    /// (warp specialisation), at a tile shape of [`tma_shapes`].
    Tma(TileShape),
    /// Rung 8 with the two consumer warpgroups taking turns at the tensor cores (ping-pong
    /// scheduling through named barriers), at a tile shape of [`tma_shapes`].
    PingPong(TileShape),
}

/// How to launch one bf16 rung at one head dim.
#[derive(Clone, Debug)]
pub struct KernelSpec {
    pub source: KernelSource,
    pub entry: String,
    pub tiles: TileShape,
    pub shared_bytes: usize,
    /// Threads per block.
    pub threads: usize,
    /// Compiled for sm_90a (Hopper-only instructions), so it runs on compute capability 9.0 only.
    pub needs_sm90a: bool,
}

impl Rung {
    /// Rungs 0–4 (rung 5 needs a tile shape, see [`TUNED_SHAPES`]) and 6.
    pub const FIXED: [Rung; 6] = [
        Rung::F32Flash,
        Rung::SmemSoftmax,
        Rung::RegisterSoftmax,
        Rung::CpAsync,
        Rung::LdmatrixSwizzle,
        Rung::Wgmma,
    ];

    /// Its number on the ladder.
    pub fn index(&self) -> usize {
        match self {
            Rung::F32Flash => 0,
            Rung::SmemSoftmax => 1,
            Rung::RegisterSoftmax => 2,
            Rung::CpAsync => 3,
            Rung::LdmatrixSwizzle => 4,
            Rung::Tuned(_) => 5,
            Rung::Wgmma => 6,
            Rung::WgmmaOverlap(_) => 7,
            Rung::Tma(_) => 8,
            Rung::PingPong(_) => 9,
        }
    }

    /// A short name for tables and CSV files, e.g. `r2_register_softmax`, `r5_tuned_128x64`.
    pub fn name(&self) -> String {
        match self {
            Rung::F32Flash => "r0_f32_flash".into(),
            Rung::SmemSoftmax => "r1_smem_softmax".into(),
            Rung::RegisterSoftmax => "r2_register_softmax".into(),
            Rung::CpAsync => "r3_cp_async".into(),
            Rung::LdmatrixSwizzle => "r4_ldmatrix_swizzle".into(),
            Rung::Tuned(t) => format!("r5_tuned_{t}"),
            Rung::Wgmma => "r6_wgmma".into(),
            Rung::WgmmaOverlap(t) => format!("r7_wgmma_overlap_{t}"),
            Rung::Tma(t) => format!("r8_tma_{t}"),
            Rung::PingPong(t) => format!("r9_pingpong_{t}"),
        }
    }

    /// The idea this rung adds.
    pub fn idea(&self) -> &'static str {
        match self {
            Rung::F32Flash => "f32 FlashAttention on CUDA cores (chapter 3)",
            Rung::SmemSoftmax => "bf16 tensor cores (mma.sync); softmax through shared memory",
            Rung::RegisterSoftmax => "softmax in registers, P reused as the MMA A fragment",
            Rung::CpAsync => "cp.async double-buffered K/V tiles",
            Rung::LdmatrixSwizzle => "ldmatrix + XOR-swizzled shared memory",
            Rung::Tuned(_) => "tile shape chosen by the autotuner",
            Rung::Wgmma => "Hopper wgmma: 64×N×16 async MMAs, operands from smem descriptors",
            Rung::WgmmaOverlap(_) => "softmax of tile j+1 overlapped with P V of tile j",
            Rung::Tma(_) => "TMA loads by a producer warpgroup, per-stage mbarriers",
            Rung::PingPong(_) => "consumer warpgroups take turns at the tensor cores",
        }
    }

    /// The bf16 kernel of this rung at head dim `d`, or an error (rung 0 is chapter 3's kernel
    /// and has no spec here; only d = 64 and 128 have entry points).
    pub fn spec(&self, d: usize) -> Result<KernelSpec> {
        if !LADDER_HEAD_DIMS.contains(&d) {
            return Err(Error::InvalidArgument(format!(
                "the chapter 12 kernels support head dims {LADDER_HEAD_DIMS:?}, got d = {d}"
            )));
        }
        let row = |padded: bool| 2 * (d + if padded { 8 } else { 0 }); // bytes per tile row
        let (source, entry, tiles, shared_bytes) = match *self {
            Rung::F32Flash => {
                return Err(Error::InvalidArgument(
                    "rung 0 is chapter 3's f32 kernel: launch it with ch03's FlashKernel".into(),
                ));
            }
            Rung::SmemSoftmax => {
                let (t, warps) = (BASE_SHAPE, BASE_SHAPE.block_rows / 16);
                let (br, bc) = (t.block_rows, t.block_keys);
                let per_warp = 16 * (4 * (bc + 4) + 2 * (bc + 8) + 4 * 3);
                (
                    SMEM_SOFTMAX_SOURCE,
                    format!("ch12_smem_softmax_d{d}"),
                    t,
                    (br + 2 * bc) * row(true) + warps * per_warp,
                )
            }
            Rung::RegisterSoftmax => {
                let t = BASE_SHAPE;
                let bytes = (t.block_rows + 2 * t.block_keys) * row(true);
                (REGISTER_SOFTMAX_SOURCE, format!("ch12_register_softmax_d{d}"), t, bytes)
            }
            Rung::CpAsync => {
                let t = BASE_SHAPE;
                let bytes = (t.block_rows + 4 * t.block_keys) * row(true);
                (PIPELINED_SOURCE, format!("ch12_cp_async_d{d}"), t, bytes)
            }
            Rung::LdmatrixSwizzle => {
                let t = BASE_SHAPE;
                let bytes = (t.block_rows + 4 * t.block_keys) * row(false);
                (PIPELINED_SOURCE, format!("ch12_ldmatrix_swizzle_d{d}"), t, bytes)
            }
            Rung::Tuned(t) => {
                if !TUNED_SHAPES.contains(&t) {
                    return Err(Error::InvalidArgument(format!(
                        "tile shape {t} is not in the autotuner's space {TUNED_SHAPES:?}"
                    )));
                }
                let bytes = (t.block_rows + 4 * t.block_keys) * row(false);
                let entry = format!("ch12_tuned_d{d}_br{}_bc{}", t.block_rows, t.block_keys);
                (PIPELINED_SOURCE, entry, t, bytes)
            }
            Rung::Wgmma => {
                // Two warpgroups of 64 rows; d = 128 halves the key tile to keep S, P and O
                // (64 + 16 + 64 registers) within the register file.
                let t = TileShape::new(128, if d == 64 { 128 } else { 64 });
                let bytes = (t.block_rows + 4 * t.block_keys) * row(false);
                (WGMMA_SOURCE, format!("ch12_wgmma_d{d}"), t, bytes)
            }
            Rung::WgmmaOverlap(t) => {
                if !overlap_shapes(d).contains(&t) {
                    return Err(Error::InvalidArgument(format!(
                        "tile shape {t} is not one of rung 7's shapes at d = {d}: {:?}",
                        overlap_shapes(d)
                    )));
                }
                // Three K/V stages: tile j + 1 and V_j are read while tile j + 2 arrives.
                let bytes = (t.block_rows + 6 * t.block_keys) * row(false);
                let entry = format!("ch12_wgmma_overlap_d{d}_br{}_bc{}", t.block_rows, t.block_keys);
                (WGMMA_SOURCE, entry, t, bytes)
            }
            Rung::Tma(t) | Rung::PingPong(t) => {
                let (rung, kernel) = if let Rung::Tma(_) = self { (8, "tma") } else { (9, "pingpong") };
                if !tma_shapes(d).contains(&t) {
                    return Err(Error::InvalidArgument(format!(
                        "tile shape {t} is not one of rung {rung}'s shapes at d = {d}: {:?}",
                        tma_shapes(d)
                    )));
                }
                // Q, three K/V stages, and ten 8-byte mbarriers.
                let bytes = (t.block_rows + 6 * t.block_keys) * row(false) + 8 * 10;
                (TMA_SOURCE, format!("ch12_{kernel}_d{d}_bc{}", t.block_keys), t, bytes)
            }
        };
        let warp_specialised = matches!(self, Rung::Tma(_) | Rung::PingPong(_));
        let needs_sm90a = warp_specialised || matches!(self, Rung::Wgmma | Rung::WgmmaOverlap(_));
        let threads = if warp_specialised { TMA_THREADS } else { tiles.threads() };
        Ok(KernelSpec { source, entry, tiles, shared_bytes, threads, needs_sm90a })
    }
}
