//! How many blocks of a kernel an SM holds at once, from the three per-SM budgets a block
//! draws on: registers, shared memory and threads, and the SM's limit on resident blocks. The
//! count follows CUDA's own occupancy calculation as `cuda_occupancy.h` of the CUDA 13 toolkit
//! writes it (`cudaOccMaxBlocksPerSMRegsLimit`, `cudaOccMaxBlocksPerSMSmemLimit`), for the
//! default shared-memory carveout and without the per-block limits a launch must meet anyway
//! (65 536 registers, 255 per thread). On a GPU, `cuOccupancyMaxActiveBlocksPerMultiprocessor`
//! gives the driver's answer; chapter 4's GPU test compares the two.
//!
//! A kernel's registers per thread are known only to its compiled code: the driver reports them
//! on the GPU (`CU_FUNC_ATTRIBUTE_NUM_REGS`), and `ptxas -v` prints them for a compiled target
//! on any machine. Its shared memory per block is what its declarations and launch ask for. With
//! those, [`blocks_per_sm`] gives the count without a GPU; [`SmLimits::of`] reads the limits of
//! the GPU at hand, [`SmLimits::H100`] states the H100's.

use crate::Result;
use crate::error::DriverContext;
use crate::gpu::Gpu;
use cudarc::driver::sys::CUdevice_attribute;

/// Registers per warp are handed out in multiples of this many. Not a driver attribute:
/// `cuda_occupancy.h` gives 256 for every compute capability it knows (3.x to 12.x), so it is
/// a constant here, not something read from the GPU.
pub const REGISTER_ALLOCATION_UNIT: usize = 256;

/// An SM's register file is split between this many sub-partitions, and a warp's registers
/// come from one of them, so an SM holds `partitions × ⌊registers / partitions / per warp⌋`
/// warps, which can be fewer than `⌊registers / per warp⌋`. Not a driver attribute either: 4
/// in `cuda_occupancy.h` for every compute capability except 6.0 (P100: 2).
pub const REGISTER_PARTITIONS: usize = 4;

/// Shared memory per block (with the driver's reserve) is handed out in multiples of this many
/// bytes from compute capability 8.0 on (256 before, `cuda_occupancy.h`).
pub const SHARED_ALLOCATION_UNIT: usize = 128;

/// The per-SM budgets of one GPU, and the units in which registers and shared memory are
/// handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmLimits {
    /// 32-bit registers per SM.
    pub registers: usize,
    /// Registers are allocated per warp, in units of this many (per warp).
    pub register_unit: usize,
    /// Sub-partitions of the register file; a warp's registers come from one.
    pub register_partitions: usize,
    /// Shared memory per SM usable by blocks, in bytes.
    pub shared_bytes: usize,
    /// Shared memory the driver reserves per resident block, in bytes.
    pub reserved_shared_per_block: usize,
    /// A block's shared memory, reserve included, is allocated in units of this many bytes.
    pub shared_unit: usize,
    /// Resident threads per SM.
    pub threads: usize,
    /// Resident blocks per SM.
    pub blocks: usize,
}

impl SmLimits {
    /// Compute capability 9.0 (H100): 64 K registers, 228 KiB of shared memory of which the
    /// driver keeps 1 KiB per block, 2048 threads, 32 blocks (CUDA C++ Programming Guide,
    /// "Technical Specifications per Compute Capability"), with the allocation units of
    /// `cuda_occupancy.h`.
    pub const H100: SmLimits = SmLimits {
        registers: 65_536,
        register_unit: REGISTER_ALLOCATION_UNIT,
        register_partitions: REGISTER_PARTITIONS,
        shared_bytes: 228 * 1024,
        reserved_shared_per_block: 1024,
        shared_unit: SHARED_ALLOCATION_UNIT,
        threads: 2048,
        blocks: 32,
    };

    /// The limits of `gpu`'s SMs, read from the driver's device attributes. The allocation
    /// units and the register partitions, which the driver does not report, are the constants
    /// of this module (the shared-memory unit by compute capability).
    pub fn of(gpu: &Gpu) -> Result<SmLimits> {
        use CUdevice_attribute::*;
        let read = |attribute, what: &str| -> Result<usize> {
            Ok(gpu.ctx.attribute(attribute).ctx(&format!("reading the {what}"))? as usize)
        };
        let major = read(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "compute capability")?;
        Ok(SmLimits {
            registers: read(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, "registers per SM")?,
            register_unit: REGISTER_ALLOCATION_UNIT,
            register_partitions: REGISTER_PARTITIONS,
            shared_bytes: read(
                CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
                "shared memory per SM",
            )?,
            reserved_shared_per_block: read(
                CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK,
                "reserved shared memory per block",
            )?,
            shared_unit: if major >= 8 { SHARED_ALLOCATION_UNIT } else { 256 },
            threads: read(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, "threads per SM")?,
            blocks: read(CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR, "blocks per SM")?,
        })
    }
}

/// What one kernel asks of an SM per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockResources {
    /// Registers per thread, as the driver (or `ptxas -v`) reports them.
    pub registers_per_thread: usize,
    pub threads: usize,
    /// Dynamic plus static shared memory per block, in bytes.
    pub shared_bytes: usize,
}

/// Resident blocks per SM allowed by each budget, and the smallest of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occupancy {
    pub by_registers: usize,
    pub by_shared: usize,
    pub by_threads: usize,
    /// min of the three and of the block limit: what the SM runs at once.
    pub blocks: usize,
}

impl Occupancy {
    /// Which budget sets [`Occupancy::blocks`]: "registers", "shared memory", "threads" or
    /// "the block limit" (the first that does, in that order).
    pub fn limited_by(&self) -> &'static str {
        if self.blocks == self.by_registers {
            "registers"
        } else if self.blocks == self.by_shared {
            "shared memory"
        } else if self.blocks == self.by_threads {
            "threads"
        } else {
            "the block limit"
        }
    }
}

/// Resident blocks per SM of a kernel with resources `r` under `limits`.
pub fn blocks_per_sm(r: &BlockResources, limits: &SmLimits) -> Occupancy {
    let warps = r.threads.div_ceil(32);
    // Each warp's registers are rounded up to the allocation unit and come from one
    // sub-partition of the register file; an SM holds whole warps.
    let per_warp = (r.registers_per_thread * 32).div_ceil(limits.register_unit) * limits.register_unit;
    let per_partition = limits.registers / limits.register_partitions;
    let warps_by_registers =
        per_partition.checked_div(per_warp).map_or(usize::MAX, |w| w * limits.register_partitions);
    let by_registers = warps_by_registers.checked_div(warps).unwrap_or(0);
    // The reserve is part of each block's allocation, rounded up to the unit with it.
    let per_block = (r.shared_bytes + limits.reserved_shared_per_block).next_multiple_of(limits.shared_unit);
    let by_shared = limits.shared_bytes / per_block;
    let by_threads = limits.threads.checked_div(r.threads).unwrap_or(0);
    let blocks = by_registers.min(by_shared).min(by_threads).min(limits.blocks);
    Occupancy { by_registers, by_shared, by_threads, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_are_counted_per_warp_in_allocation_units() {
        let lim = SmLimits::H100;
        let with = |registers_per_thread| {
            blocks_per_sm(&BlockResources { registers_per_thread, threads: 128, shared_bytes: 0 }, &lim)
                .by_registers
        };
        // 40 × 32 = 1280 registers per warp, a whole number of units: 51 warps, 12 blocks of 4.
        assert_eq!(with(40), 12);
        // 41 × 32 = 1312 rounds up to 1536: 10 warps per partition, 40 warps, 10 blocks.
        // Without rounding it would be 49 warps, 12 blocks — the unit matters.
        assert_eq!(with(41), 10);
        assert_eq!(with(48), 10);
        // The partitions matter for one-warp blocks: ⌊65 536 / 1536⌋ = 42 warps over the whole
        // file, but 4 × ⌊16 384 / 1536⌋ = 40 when each warp draws on one partition.
        let one_warp =
            blocks_per_sm(&BlockResources { registers_per_thread: 48, threads: 32, shared_bytes: 0 }, &lim);
        assert_eq!(one_warp.by_registers, 40);
    }

    #[test]
    fn shared_memory_is_allocated_in_units() {
        let lim = SmLimits::H100;
        let by_shared = |shared_bytes| {
            blocks_per_sm(&BlockResources { registers_per_thread: 16, threads: 32, shared_bytes }, &lim)
                .by_shared
        };
        // 16 896 B plus the 1 KiB reserve are 140 units of 128: 13 blocks in 228 KiB. One byte
        // more takes a 141st unit, 18 048 B, and only 12 fit — counted in bytes, 17 921 B would
        // still fit 13 times.
        assert_eq!(by_shared(16_896), 13);
        assert_eq!(by_shared(16_897), 12);
    }

    #[test]
    fn each_budget_can_be_the_limit() {
        let lim = SmLimits::H100;
        let regs =
            blocks_per_sm(&BlockResources { registers_per_thread: 255, threads: 256, shared_bytes: 0 }, &lim);
        // 255 × 32 = 8160 → 8192 per warp: 8 warps, one block of 8.
        assert_eq!((regs.blocks, regs.limited_by()), (1, "registers"));
        let threads =
            blocks_per_sm(&BlockResources { registers_per_thread: 16, threads: 1024, shared_bytes: 0 }, &lim);
        assert_eq!((threads.blocks, threads.limited_by()), (2, "threads"));
        let shared = blocks_per_sm(
            &BlockResources { registers_per_thread: 16, threads: 64, shared_bytes: 100_000 },
            &lim,
        );
        assert_eq!((shared.blocks, shared.limited_by()), (2, "shared memory"));
        // The 1 KiB reserve counts: 114 688 B would fit twice in 228 KiB without it, not with it.
        let reserve = blocks_per_sm(
            &BlockResources { registers_per_thread: 16, threads: 64, shared_bytes: 114 * 1024 },
            &lim,
        );
        assert_eq!(reserve.by_shared, 1);
        // Tiny blocks stop at the 32-block limit.
        let tiny =
            blocks_per_sm(&BlockResources { registers_per_thread: 16, threads: 32, shared_bytes: 0 }, &lim);
        assert_eq!((tiny.blocks, tiny.limited_by()), (32, "the block limit"));
    }
}
