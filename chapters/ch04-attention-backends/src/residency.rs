//! What can be computed, without a profiler, about the Fused backend at long rows: the shared
//! memory one of its blocks asks for, how many such blocks an SM can then hold, and the bytes of
//! K and V a head streams.
//!
//! The Fused backend is chapter 2's kernel (`kernels/ch02_sdpa.cu`): one block of
//! [`SDPA_THREADS`] threads per query row, the row's Nk f32 scores in dynamic shared memory
//! (the host asks for `4·Nk` bytes, `ch02::gpu::SdpaKernel::launch_config`) on top of the
//! kernel's static arrays. So shared memory per block grows with Nk, and from some Nk on it,
//! not the registers, limits how many blocks an SM keeps resident. This module counts that with
//! the support crate's occupancy calculation ([`attn_support::occupancy`]); it does not say
//! that residency is why the kernel slows down (that needs a profile: Nsight Compute on the GPU
//! machine).

use crate::figures::TimingRow;
use attn_support::Result;
use attn_support::cudarc::driver::sys::CUfunction_attribute_enum;
use attn_support::error::DriverContext;
use attn_support::gpu::Gpu;
use attn_support::occupancy::{BlockResources, Occupancy, SmLimits, blocks_per_sm};
use attn_support::units::mib;
use ch02_scaled_dot_product::gpu::{MAX_HEAD_DIM, SDPA_KERNEL, SDPA_SOURCE, SDPA_THREADS};
use std::fmt::Write;

/// Warps per block of the ch02 kernel (`SDPA_WARPS` in the .cu file).
const SDPA_WARPS: usize = SDPA_THREADS / 32;

/// Static shared memory of `ch02_sdpa_f32`, from its declarations: `q_row[SDPA_MAX_DIM]`,
/// `scratch[SDPA_WARPS]` and `partial[SDPA_WARPS][SDPA_MAX_DIM]` floats (5136 bytes).
pub const FUSED_STATIC_SHARED_BYTES: usize = 4 * (MAX_HEAD_DIM + SDPA_WARPS + SDPA_WARPS * MAX_HEAD_DIM);

/// Shared memory one Fused block uses for a row of `nk` keys: the row of f32 scores plus the
/// static arrays.
pub fn fused_shared_bytes(nk: usize) -> usize {
    4 * nk + FUSED_STATIC_SHARED_BYTES
}

/// Bytes of K and V of one head in f32, `4·N·(d + dv)`: what every Fused block of that head
/// reads once per query row.
pub fn kv_bytes_per_head(n: usize, d: usize, dv: usize) -> usize {
    4 * n * (d + dv)
}

/// Registers per thread of `ch02_sdpa_f32` compiled for sm_90: what `ptxas -v` reports ("Used
/// 40 registers, used 1 barriers, 5136 bytes smem") for `kernels/ch02_sdpa.cu` compiled with
/// NVRTC 13.5 (the pip wheel) on the CPU machine, which has no GPU. The driver compiles the
/// kernel's PTX itself on a GPU and may allocate differently; its count is not recorded yet
/// ([`fused_registers_on`] reads it, and the GPU test `fused_residency_agrees_with_the_driver`
/// compares it with this constant).
pub const FUSED_REGISTERS_PER_THREAD: usize = 40;

/// What one Fused block asks of an SM for rows of `nk` keys, at `registers_per_thread`.
pub fn fused_block(nk: usize, registers_per_thread: usize) -> BlockResources {
    BlockResources { registers_per_thread, threads: SDPA_THREADS, shared_bytes: fused_shared_bytes(nk) }
}

/// How many Fused blocks one SM can hold for rows of `nk` keys, by each of its budgets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedResidency {
    pub nk: usize,
    /// [`fused_shared_bytes`] of one block.
    pub shared_bytes: usize,
    /// Blocks per SM by registers, shared memory and threads, and the smallest of them.
    pub occupancy: Occupancy,
}

impl FusedResidency {
    /// At [`FUSED_REGISTERS_PER_THREAD`], the registers ptxas reports for sm_90.
    pub fn new(nk: usize, sm: &SmLimits) -> FusedResidency {
        FusedResidency::with_registers(nk, FUSED_REGISTERS_PER_THREAD, sm)
    }

    /// At another register count (the driver's, or another compiler's).
    pub fn with_registers(nk: usize, registers_per_thread: usize, sm: &SmLimits) -> FusedResidency {
        let block = fused_block(nk, registers_per_thread);
        FusedResidency { nk, shared_bytes: block.shared_bytes, occupancy: blocks_per_sm(&block, sm) }
    }

    /// Resident blocks per SM.
    pub fn blocks(&self) -> usize {
        self.occupancy.blocks
    }

    /// Resident warps per SM.
    pub fn warps(&self) -> usize {
        self.blocks() * SDPA_WARPS
    }

    /// The budget that sets the residency: "registers", "shared memory", ...
    pub fn limited_by(&self) -> &'static str {
        self.occupancy.limited_by()
    }
}

/// Per `n` of `ns` (N = Nk), for the B = 1, H = 8, d = 64 shape of the grid: the bytes of K and V
/// of one head, the shared memory of one block, the blocks an SM holds by each budget of `sm`,
/// the resident blocks and warps, what limits them, and Fused's rate in the recorded `rows`.
pub fn residency_table(ns: &[usize], sm: &SmLimits, rows: &[TimingRow]) -> String {
    let mut s = format!(
        "{:>6} | {:>9} | {:>10} | blocks/SM by: {:>4} {:>5} {:>7} | {:>14} | {:<13} | {:>7}\n",
        "N", "K+V/head", "smem/block", "regs", "smem", "threads", "blocks (warps)", "limited by", "TFLOP/s"
    );
    for &n in ns {
        let r = FusedResidency::new(n, sm);
        let o = r.occupancy;
        let tflops = rows
            .iter()
            .find(|x| x.impl_name == "ch04_fused" && x.combo() == (1, 8, 64) && x.seq == n && !x.causal)
            .and_then(TimingRow::tflops)
            .map_or("—".to_string(), |t| format!("{t:.2}"));
        let _ = writeln!(
            s,
            "{n:>6} | {:>5.2} MiB | {:>8} B | {:>18} {:>5} {:>7} | {:>14} | {:<13} | {tflops:>7}",
            mib(kv_bytes_per_head(n, 64, 64) as f64),
            r.shared_bytes,
            o.by_registers,
            o.by_shared,
            o.by_threads,
            format!("{} ({})", r.blocks(), r.warps()),
            r.limited_by(),
        );
    }
    s
}

/// The driver's registers per thread for the compiled kernel on `gpu`
/// (`CU_FUNC_ATTRIBUTE_NUM_REGS`).
pub fn fused_registers_on(gpu: &Gpu) -> Result<usize> {
    let function = gpu.function(&SDPA_SOURCE, SDPA_KERNEL)?;
    let registers = function
        .get_attribute(CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_NUM_REGS)
        .ctx("reading the kernel's registers per thread")?;
    Ok(registers as usize)
}

/// The driver's answer for the compiled kernel on `gpu` (`cuOccupancyMaxActiveBlocksPerMultiprocessor`:
/// registers, shared memory and threads): resident Fused blocks per SM for rows of `nk` keys.
pub fn fused_blocks_per_sm_on(gpu: &Gpu, nk: usize) -> Result<usize> {
    let function = gpu.function(&SDPA_SOURCE, SDPA_KERNEL)?;
    let dynamic = 4 * nk;
    // The occupancy calculator counts 0 blocks for dynamic shared memory above the function's
    // limit, which is 48 KiB until the kernel opts in (as the launch does).
    gpu.opt_in_shared_memory(&function, SDPA_KERNEL, dynamic)?;
    // cudarc's occupancy query does not make the context current itself.
    gpu.ctx.bind_to_thread().ctx("binding the context to this thread")?;
    let blocks = function
        .occupancy_max_active_blocks_per_multiprocessor(SDPA_THREADS as u32, dynamic, None)
        .ctx("asking the driver for the kernel's occupancy")?;
    Ok(blocks as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_bytes_follow_the_kernel_declarations() {
        let code = SDPA_SOURCE.code;
        for declaration in [
            "#define SDPA_THREADS 128",
            "#define SDPA_MAX_DIM 256",
            "__shared__ __align__(16) float q_row[SDPA_MAX_DIM];",
            "__shared__ float scratch[SDPA_WARPS];",
            "__shared__ float partial[SDPA_WARPS][SDPA_MAX_DIM];",
        ] {
            assert!(code.contains(declaration), "kernels/ch02_sdpa.cu no longer declares {declaration:?}");
        }
        // Those three and the dynamic row of scores are all the shared memory it declares.
        assert_eq!(code.matches("__shared__").count(), 4);
        assert_eq!(FUSED_STATIC_SHARED_BYTES, 5136);
        // An H100 lets a block opt in to 227 KiB: the key limit the book states, 56 828.
        assert_eq!((227 * 1024 - FUSED_STATIC_SHARED_BYTES) / 4, 56_828);
    }

    #[test]
    fn residency_on_an_h100_as_the_book_tabulates_it() {
        let h100 = SmLimits::H100;
        // 40 registers × 32 = 1280 per warp (5 units of 256): 12 warps in each quarter of the
        // 64 K register file, 48 warps, 12 blocks of 4 warps — below the 16 that threads allow.
        let short = FusedResidency::new(512, &h100);
        assert_eq!(short.shared_bytes, 7184);
        let o = short.occupancy;
        assert_eq!((o.by_registers, o.by_shared, o.by_threads, o.blocks), (12, 28, 16, 12));
        assert_eq!((short.limited_by(), short.warps()), ("registers", 48));
        // The book's table: N, shared memory per block, blocks by shared memory, resident blocks.
        for (n, shared, by_shared, blocks) in [
            (512, 7184, 28, 12),
            (2048, 13_328, 16, 12),
            (4096, 21_520, 10, 10),
            (8192, 37_904, 5, 5),
            (16_384, 70_672, 3, 3),
            (32_768, 136_208, 1, 1),
        ] {
            let r = FusedResidency::new(n, &h100);
            assert_eq!(
                (r.shared_bytes, r.occupancy.by_shared, r.blocks()),
                (shared, by_shared, blocks),
                "N = {n}"
            );
            let limit = if n <= 2048 { "registers" } else { "shared memory" };
            assert_eq!(r.limited_by(), limit, "N = {n}");
        }
        // Shared memory takes over where 12 blocks no longer fit in 228 KiB: 19 456 B per block
        // with the reserve, 4·3324 + 5136 + 1024 = 19 456 exactly.
        assert_eq!(FusedResidency::new(3324, &h100).blocks(), 12);
        assert_eq!(FusedResidency::new(3325, &h100).blocks(), 11);
        assert_eq!(kv_bytes_per_head(16_384, 64, 64), 8 << 20);
    }

    #[test]
    fn registers_change_the_short_rows_only() {
        let h100 = SmLimits::H100;
        // At 32 registers per thread the threads are the limit again (16 blocks); at 64, 8 blocks.
        assert_eq!(FusedResidency::with_registers(512, 32, &h100).blocks(), 16);
        assert_eq!(FusedResidency::with_registers(512, 64, &h100).blocks(), 8);
        // At 16 384 keys shared memory allows 3 whatever the registers.
        assert_eq!(FusedResidency::with_registers(16_384, 64, &h100).blocks(), 3);
    }

    #[test]
    fn the_table_reads_the_recorded_rate() {
        use crate::figures::read_recorded_run;
        use crate::recorded::RECORDED_RUN;
        let rows = read_recorded_run(&attn_support::csv::recorded_run(RECORDED_RUN).unwrap()).unwrap();
        let table = residency_table(&[512, 4096], &SmLimits::H100, &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("12 (48)") && lines[1].contains("registers"), "{table}");
        // N = 4096 is not in chapter 4's grid: no rate.
        assert!(lines[2].contains("10 (40)") && lines[2].trim_end().ends_with('—'), "{table}");
    }
}
