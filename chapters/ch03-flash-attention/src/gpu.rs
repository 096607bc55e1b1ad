//! The host side of `kernels/ch03_flash_forward.cu`, the FlashAttention forward kernel in f32:
//! one block per (query tile, batch·head), key/value tiles through shared memory, the online
//! softmax in registers, causal tiles skipped, the log-sum-exp written beside the output.
//!
//! Supported: f32, head dims 32, 64 and 128 with dv = d (one compiled entry point each), any
//! Nq and Nk (up to 2³⁰), B·H ≤ 65535, causal and key-padding masks. Everything else is an
//! [`Error`] before anything is launched. Unlike chapter 2's kernel, the shared memory a block
//! needs does not grow with N, so N is limited only by the device memory for Q, K, V and O.
//!
//! The device buffers are chapter 2's [`SdpaBuffers`], so the two kernels can be timed on the
//! same data.

use ch02_scaled_dot_product::gpu::SdpaBuffers;
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, SdpaOptions, check_inputs, log2_units};

use attn_support::cudarc::driver::{CudaFunction, LaunchConfig, PushKernelArg};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, cdiv, launch_config};
use attn_support::ndarray::{Array3, Array4, ArrayView4};
use attn_support::{Error, Result, kernel_source};

use crate::tiled::TileSizes;

/// The kernel file.
pub const FLASH_SOURCE: KernelSource = kernel_source!("ch03_flash_forward.cu");
/// Threads per block; must equal `FLASH_THREADS` in the .cu file.
pub const FLASH_THREADS: usize = 128;
/// The head dims with an entry point in the kernel file.
pub const SUPPORTED_HEAD_DIMS: [usize; 3] = [32, 64, 128];
/// The largest Nq or Nk: keeps every `int` index in the kernel far from overflow.
pub const MAX_SEQ: usize = 1 << 30;
/// The largest grid y size, i.e. the largest B·H.
pub const MAX_BATCH_HEADS: usize = 65535;

// ANCHOR: tiles
/// The tile sizes of the kernel for one head dim: the template arguments of its entry point
/// `ch03_flash_forward_d{D}` (kept equal to them by hand; the kernel traps when it is given
/// less shared memory than its own layout needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashTiles {
    /// d, the head dim of Q, K and V.
    pub head_dim: usize,
    /// Br, query rows per block.
    pub block_rows: usize,
    /// Bc, keys per tile.
    pub block_keys: usize,
}

impl FlashTiles {
    /// The tiles of the entry point for head dim `d`, or an error naming the supported dims.
    pub fn for_head_dim(d: usize) -> Result<FlashTiles> {
        let (block_rows, block_keys) = match d {
            32 | 64 => (128, 64),
            // Twice the columns of O per thread: half the rows and half the keys keep the
            // registers and the shared memory of a block within two blocks per SM.
            128 => (64, 32),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "the ch03 FlashAttention kernel supports head dims {SUPPORTED_HEAD_DIMS:?}, got d = {d}"
                )));
            }
        };
        Ok(FlashTiles { head_dim: d, block_rows, block_keys })
    }

    /// The entry point's name in the kernel file.
    pub fn kernel_name(&self) -> String {
        format!("ch03_flash_forward_d{}", self.head_dim)
    }

    /// Dynamic shared memory per block: Qᵀ d × (Br+4), K Bc × (d+4), V Bc × d and Pᵀ
    /// Bc × (Br+4) floats (the +4 pads rows against bank conflicts).
    pub fn shared_bytes(&self) -> usize {
        let (d, br, bc) = (self.head_dim, self.block_rows, self.block_keys);
        4 * (d * (br + 4) + bc * (d + 4) + bc * d + bc * (br + 4))
    }

    /// The same tiles in the CPU code's terms, e.g. for [`crate::io_model::tiled_traffic`] (the
    /// kernel moves what that model counts for the Q-outer loop order).
    pub fn tile_sizes(&self) -> TileSizes {
        TileSizes { br: self.block_rows, bc: self.block_keys }
    }
}
// ANCHOR_END: tiles

/// The compiled kernel: one function per supported head dim, each opted in to its tiles'
/// shared memory, or the reason this device refused that.
pub struct FlashKernel {
    functions: Vec<EntryPoint>,
}

/// One loaded entry point. `refused` holds the opt-in error when the device's shared memory per
/// block is smaller than the tiles need: loading goes on, so the other head dims still run,
/// and a launch at this one returns the error.
struct EntryPoint {
    tiles: FlashTiles,
    function: CudaFunction,
    refused: Option<String>,
}

impl FlashKernel {
    /// Compile (once per process) and load the kernel's entry points on `gpu`, opting each in
    /// to the dynamic shared memory it needs (over 48 KiB for every head dim).
    pub fn load(gpu: &Gpu) -> Result<FlashKernel> {
        let mut functions = Vec::new();
        for d in SUPPORTED_HEAD_DIMS {
            let tiles = FlashTiles::for_head_dim(d)?;
            let name = tiles.kernel_name();
            let function = gpu.function(&FLASH_SOURCE, &name)?;
            let refused = match gpu.opt_in_shared_memory(&function, &name, tiles.shared_bytes()) {
                Ok(()) => None,
                Err(Error::InvalidArgument(why)) => Some(why),
                Err(e) => return Err(e),
            };
            functions.push(EntryPoint { tiles, function, refused });
        }
        Ok(FlashKernel { functions })
    }

    fn entry_point(&self, head_dim: usize) -> Result<&EntryPoint> {
        let tiles = FlashTiles::for_head_dim(head_dim)?;
        self.functions
            .iter()
            .find(|e| e.tiles == tiles)
            .ok_or_else(|| Error::InvalidArgument(format!("no loaded ch03 kernel for head dim {head_dim}")))
    }

    /// Registers per thread and local-memory (spill) bytes per thread of the entry point for
    /// head dim `d`, as the driver reports them.
    pub fn resources(&self, head_dim: usize) -> Result<(i32, i32)> {
        let f = &self.entry_point(head_dim)?.function;
        Ok((f.num_regs().ctx("reading registers")?, f.local_size_bytes().ctx("reading local memory")?))
    }

    // ANCHOR: launch_config
    /// Check `dims` against the kernel's limits and make its launch shape: grid
    /// (⌈Nq/Br⌉, B·H), 128 threads, the tiles' shared memory.
    pub fn launch_config(&self, dims: &SdpaDims) -> Result<LaunchConfig> {
        let entry = self.entry_point(dims.head_dim)?;
        if dims.v_dim != dims.head_dim {
            return Err(Error::InvalidArgument(format!(
                "the ch03 FlashAttention kernel needs V's head dim equal to Q's and K's: d = {}, dv = {}",
                dims.head_dim, dims.v_dim
            )));
        }
        let bh = dims.batch * dims.heads;
        if bh > MAX_BATCH_HEADS {
            return Err(Error::InvalidArgument(format!(
                "batch × heads = {} × {} = {bh} exceeds {MAX_BATCH_HEADS}, the largest grid y size",
                dims.batch, dims.heads
            )));
        }
        if dims.nq > MAX_SEQ || dims.nk > MAX_SEQ {
            return Err(Error::InvalidArgument(format!(
                "Nq = {} and Nk = {} must be at most {MAX_SEQ}",
                dims.nq, dims.nk
            )));
        }
        if let Some(why) = &entry.refused {
            // The tiles' shared memory is over this device's limit (the error names both).
            return Err(Error::InvalidArgument(why.clone()));
        }
        let tiles = entry.tiles;
        launch_config((cdiv(dims.nq, tiles.block_rows), bh, 1), FLASH_THREADS, tiles.shared_bytes())
    }
    // ANCHOR_END: launch_config

    /// Launch on the buffers (asynchronously, on `gpu.stream`). Buffer lengths are checked
    /// against `buffers.dims`, so the kernel cannot read or write out of bounds.
    pub fn launch(&self, gpu: &Gpu, buffers: &mut SdpaBuffers) -> Result<()> {
        let dims = buffers.dims;
        let cfg = self.launch_config(&dims)?;
        buffers.check_lengths()?;
        let function = &self.entry_point(dims.head_dim)?.function;
        let (heads, nq, nk) = (dims.heads as i32, dims.nq as i32, dims.nk as i32);
        let causal = buffers.causal as i32;
        // Scores in log2 units: the kernel multiplies Q by scale·log₂e once, then uses exp2f.
        let scale_log2e = log2_units(buffers.scale);
        let no_padding = 0u64; // a null pointer: no padding mask
        let mut builder = gpu.stream.launch_builder(function);
        builder.arg(&buffers.q).arg(&buffers.k).arg(&buffers.v);
        match &buffers.key_padding {
            Some(pad) => builder.arg(pad),
            None => builder.arg(&no_padding),
        };
        builder.arg(&mut buffers.out).arg(&mut buffers.lse);
        builder.arg(&heads).arg(&nq).arg(&nk).arg(&causal).arg(&scale_log2e);
        // SAFETY: the argument list matches the kernel's signature; every buffer length was
        // checked against dims above and the kernel indexes only within dims.
        unsafe { builder.launch(cfg) }.ctx("launching ch03_flash_forward")?;
        Ok(())
    }
}

// ANCHOR: flash_attention_gpu
/// FlashAttention on the GPU: (output (B,H,Nq,d), lse (B,H,Nq)), the same answer as chapter
/// 2's `sdpa_with_options` (a query that sees no key gets zeros and lse = −∞). Copies the
/// inputs to the device and the results back; time [`FlashKernel::launch`] on
/// [`SdpaBuffers`] to leave the copies out.
pub fn flash_attention_gpu(
    gpu: &Gpu,
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    options: &SdpaOptions,
) -> Result<(Array4<f32>, Array3<f32>)> {
    let kernel = FlashKernel::load(gpu)?;
    // Check shapes and limits before copying anything.
    kernel.launch_config(&check_inputs(q.shape(), k.shape(), v.shape(), mask)?)?;
    let mut buffers = SdpaBuffers::upload(gpu, q, k, v, mask, options)?;
    kernel.launch(gpu, &mut buffers)?;
    buffers.download(gpu)
}
// ANCHOR_END: flash_attention_gpu

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_and_shared_memory_match_the_kernel_header() {
        let bytes: Vec<usize> = SUPPORTED_HEAD_DIMS
            .iter()
            .map(|&d| FlashTiles::for_head_dim(d).unwrap().shared_bytes())
            .collect();
        assert_eq!(bytes, [68_096, 101_376, 76_800]);
        let e = FlashTiles::for_head_dim(96).unwrap_err().to_string();
        assert!(e.contains("96") && e.contains("[32, 64, 128]"), "{e}");
        assert_eq!(FlashTiles::for_head_dim(64).unwrap().kernel_name(), "ch03_flash_forward_d64");
    }
}
