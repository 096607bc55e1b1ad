//! How many blocks of a kernel an SM holds at once, from the three per-SM budgets a block
//! draws on: registers, shared memory and threads (the CUDA occupancy calculation, for the
//! H100's limits).
//!
//! Rung 3 of the ladder is slower than rung 2 although it adds a pipeline: its second K/V stage
//! takes its shared memory from 51 KiB to 85 KiB per block, which costs it a resident block per
//! SM. This module makes that count checkable without a GPU, from the registers per thread the
//! driver reports (`ch12` prints them) and the shared memory a rung's [`crate::ladder::KernelSpec`]
//! asks for.

/// The per-SM budgets of one GPU, and the granularity in which registers are handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmLimits {
    /// 32-bit registers per SM.
    pub registers: usize,
    /// Registers are allocated per warp, in units of this many (per warp).
    pub register_unit: usize,
    /// Shared memory per SM usable by blocks, in bytes.
    pub shared_bytes: usize,
    /// Shared memory the driver reserves per resident block, in bytes.
    pub reserved_shared_per_block: usize,
    /// Resident threads per SM.
    pub threads: usize,
    /// Resident blocks per SM.
    pub blocks: usize,
}

impl SmLimits {
    /// Compute capability 9.0 (H100): 64 K registers, 228 KiB of shared memory of which the
    /// driver keeps 1 KiB per block, 2048 threads, 32 blocks (CUDA C++ Programming Guide,
    /// "Technical Specifications per Compute Capability"; the allocation unit of 256 registers
    /// per warp is the occupancy calculator's).
    pub const H100: SmLimits = SmLimits {
        registers: 65_536,
        register_unit: 256,
        shared_bytes: 228 * 1024,
        reserved_shared_per_block: 1024,
        threads: 2048,
        blocks: 32,
    };
}

/// What one kernel asks of an SM per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockResources {
    /// Registers per thread, as the driver reports them.
    pub registers_per_thread: usize,
    pub threads: usize,
    /// Dynamic (plus static) shared memory per block, in bytes.
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
    // Each warp's registers are rounded up to the allocation unit; an SM holds whole warps.
    let per_warp = (r.registers_per_thread * 32).div_ceil(limits.register_unit) * limits.register_unit;
    let warps_by_registers = limits.registers.checked_div(per_warp).unwrap_or(usize::MAX);
    let by_registers = warps_by_registers.checked_div(warps).unwrap_or(0);
    let by_shared = limits.shared_bytes / (r.shared_bytes + limits.reserved_shared_per_block);
    let by_threads = limits.threads.checked_div(r.threads).unwrap_or(0);
    let blocks = by_registers.min(by_shared).min(by_threads).min(limits.blocks);
    Occupancy { by_registers, by_shared, by_threads, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::Rung;

    /// Registers per thread at d = 128 as the driver reported them in the 12:35 H100 run
    /// (`docs/src/results/h100-2026-11-25-ch12-1235/logs/bin-ch12.log`).
    fn at_d128(rung: Rung, registers_per_thread: usize) -> Occupancy {
        let spec = rung.spec(128).unwrap();
        let r =
            BlockResources { registers_per_thread, threads: spec.threads, shared_bytes: spec.shared_bytes };
        blocks_per_sm(&r, &SmLimits::H100)
    }

    #[test]
    fn rung_two_keeps_three_blocks_and_rung_three_two() {
        // 167 registers × 128 threads: 168 per thread after rounding, 21 504 per block.
        let r2 = at_d128(Rung::RegisterSoftmax, 167);
        assert_eq!((r2.by_registers, r2.by_shared, r2.blocks), (3, 4, 3));
        assert_eq!(r2.limited_by(), "registers");
        // 87 040 B of shared memory: two blocks fit in 228 KiB, three do not.
        let r3 = at_d128(Rung::CpAsync, 176);
        assert_eq!((r3.by_registers, r3.by_shared, r3.blocks), (2, 2, 2));
    }

    #[test]
    fn the_warp_specialised_rungs_hold_one_block() {
        let r8 = at_d128(Rung::Tma(crate::ladder::tma_shapes(128)[1]), 168);
        // 168 × 384 registers and 229 456 B: each budget has room for exactly one block.
        assert_eq!((r8.by_registers, r8.by_shared, r8.blocks), (1, 1, 1));
    }

    #[test]
    fn each_budget_can_be_the_limit() {
        let lim = SmLimits::H100;
        let threads =
            blocks_per_sm(&BlockResources { registers_per_thread: 16, threads: 1024, shared_bytes: 0 }, &lim);
        assert_eq!((threads.blocks, threads.limited_by()), (2, "threads"));
        let shared = blocks_per_sm(
            &BlockResources { registers_per_thread: 16, threads: 64, shared_bytes: 100_000 },
            &lim,
        );
        assert_eq!((shared.blocks, shared.limited_by()), (2, "shared memory"));
        // Tiny blocks stop at the 32-block limit.
        let tiny =
            blocks_per_sm(&BlockResources { registers_per_thread: 16, threads: 32, shared_bytes: 0 }, &lim);
        assert_eq!((tiny.blocks, tiny.limited_by()), (32, "the block limit"));
    }
}
