//! Occupancy of the ladder's rungs: how many blocks an SM holds at once. The calculation is the
//! support crate's ([`attn_support::occupancy`]), re-exported here; what is chapter 12's is the
//! check that it explains the ladder.
//!
//! Rung 3 of the ladder is slower than rung 2 although it adds a pipeline: its second K/V stage
//! takes its shared memory from 51 KiB to 85 KiB per block, which costs it a resident block per
//! SM. The tests below make that count checkable without a GPU, from the registers per thread
//! the driver reports (`ch12` prints them) and the shared memory a rung's
//! [`crate::ladder::KernelSpec`] asks for.

pub use attn_support::occupancy::{BlockResources, Occupancy, SmLimits, blocks_per_sm};

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
        let shape = crate::ladder::tma_shapes(128)[1];
        for rung in [Rung::Tma(shape), Rung::PingPong(shape)] {
            // 168 × 384 registers and 229 456 B (both logged for r8 and r9 at 128 × 128): each
            // budget has room for exactly one block.
            let o = at_d128(rung, 168);
            assert_eq!((o.by_registers, o.by_shared, o.blocks), (1, 1, 1), "{}", rung.name());
        }
    }
}
