//! What can be computed, without a profiler, about the Fused backend at long rows: the shared
//! memory one of its blocks asks for, how many such blocks an SM can then hold, and the bytes of
//! K and V a head streams.
//!
//! The Fused backend is chapter 2's kernel (`kernels/ch02_sdpa.cu`): one block of
//! [`SDPA_THREADS`] threads per query row, the row's Nk f32 scores in dynamic shared memory
//! (the host asks for `4·Nk` bytes, `ch02::gpu::SdpaKernel::launch_config`) on top of the
//! kernel's static arrays. So shared memory per block grows with Nk, and from some Nk on it,
//! not the thread count, limits how many blocks an SM keeps resident. This module counts that;
//! it does not say that residency is why the kernel slows down (that needs a profile:
//! Nsight Compute on the GPU machine). Registers can lower residency further; they are known
//! only to the compiled kernel, which [`fused_blocks_per_sm_on`] asks on a GPU.

use attn_support::Result;
use attn_support::cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute_enum};
use attn_support::error::DriverContext;
use attn_support::gpu::Gpu;
use ch02_scaled_dot_product::gpu::{MAX_HEAD_DIM, SDPA_KERNEL, SDPA_SOURCE, SDPA_THREADS};

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

/// The per-SM limits that bound how many blocks are resident at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmLimits {
    /// Shared memory of one SM that blocks can share.
    pub shared_per_sm: usize,
    /// Shared memory the driver reserves for each resident block on top of what it asks for.
    pub reserved_per_block: usize,
    pub max_threads: usize,
    pub max_blocks: usize,
}

/// An H100 (compute capability 9.0): 228 KiB of shared memory per SM, 1 KiB reserved per block,
/// 2048 threads and 32 blocks per SM (CUDA programming guide, compute capability tables).
pub const H100_SM: SmLimits =
    SmLimits { shared_per_sm: 228 * 1024, reserved_per_block: 1024, max_threads: 2048, max_blocks: 32 };

impl SmLimits {
    /// The limits of `gpu`'s SMs, read from the driver.
    pub fn of(gpu: &Gpu) -> Result<SmLimits> {
        use CUdevice_attribute::*;
        let read = |attribute, what: &str| -> Result<usize> {
            Ok(gpu.ctx.attribute(attribute).ctx(&format!("reading {what}"))? as usize)
        };
        Ok(SmLimits {
            shared_per_sm: read(
                CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
                "shared memory per SM",
            )?,
            reserved_per_block: read(
                CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK,
                "reserved shared memory",
            )?,
            max_threads: read(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, "threads per SM")?,
            max_blocks: read(CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR, "blocks per SM")?,
        })
    }
}

/// How many Fused blocks one SM can hold for rows of `nk` keys, counting shared memory and
/// threads only (registers not counted).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedResidency {
    pub nk: usize,
    /// [`fused_shared_bytes`] of one block.
    pub shared_bytes: usize,
    /// Blocks the SM's shared memory holds (with the per-block reserve).
    pub by_shared: usize,
    /// Blocks the SM's thread and block limits hold.
    pub by_threads: usize,
}

impl FusedResidency {
    pub fn new(nk: usize, sm: &SmLimits) -> FusedResidency {
        let shared_bytes = fused_shared_bytes(nk);
        let by_shared = sm.shared_per_sm / (shared_bytes + sm.reserved_per_block);
        let by_threads = (sm.max_threads / SDPA_THREADS).min(sm.max_blocks);
        FusedResidency { nk, shared_bytes, by_shared, by_threads }
    }

    /// Resident blocks: the smaller of the two limits.
    pub fn blocks(&self) -> usize {
        self.by_shared.min(self.by_threads)
    }

    /// Resident warps per SM.
    pub fn warps(&self) -> usize {
        self.blocks() * SDPA_WARPS
    }

    /// True when shared memory, not the thread count, sets the residency.
    pub fn shared_limited(&self) -> bool {
        self.by_shared < self.by_threads
    }
}

/// The driver's answer for the compiled kernel on `gpu` (`cuOccupancyMaxActiveBlocksPerMultiprocessor`:
/// shared memory, threads and registers): resident Fused blocks per SM for rows of `nk` keys.
pub fn fused_blocks_per_sm_on(gpu: &Gpu, nk: usize) -> Result<usize> {
    let function = gpu.function(&SDPA_SOURCE, SDPA_KERNEL)?;
    let dynamic = 4 * nk;
    // The occupancy calculator counts 0 blocks for dynamic shared memory above the function's
    // limit, which is 48 KiB until the kernel opts in (as the launch does).
    gpu.ctx.bind_to_thread().ctx("binding the context to this thread")?;
    function
        .set_attribute(
            CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            dynamic as i32,
        )
        .ctx("raising the kernel's dynamic shared-memory limit")?;
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
    fn residency_on_an_h100() {
        // N = 16 384: 64 KiB of scores + 5136 B static = 70 672 B; with the 1 KiB reserve,
        // 228 KiB hold 3 blocks (12 warps of 64).
        let long = FusedResidency::new(16_384, &H100_SM);
        assert_eq!(long.shared_bytes, 70_672);
        assert_eq!((long.by_shared, long.by_threads, long.blocks(), long.warps()), (3, 16, 3, 12));
        assert!(long.shared_limited());
        // Short rows: the 2048 threads (16 blocks of 128) are the limit.
        let short = FusedResidency::new(512, &H100_SM);
        assert_eq!((short.blocks(), short.shared_limited()), (16, false));
        // The last N at which shared memory still allows 16 blocks.
        let edge = (H100_SM.shared_per_sm / 16 - H100_SM.reserved_per_block - FUSED_STATIC_SHARED_BYTES) / 4;
        assert_eq!(FusedResidency::new(edge, &H100_SM).blocks(), 16);
        assert_eq!(FusedResidency::new(edge + 1, &H100_SM).blocks(), 15);
        assert_eq!(kv_bytes_per_head(16_384, 64, 64), 8 << 20);
    }
}
