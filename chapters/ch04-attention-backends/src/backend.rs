//! One interface, three backends.
//!
//! | backend | GPU | CPU counterpart | scores in memory | limit |
//! |---|---|---|---|---|
//! | Unfused | cuBLAS Q Kᵀ, softmax kernel, cuBLAS P V ([`crate::unfused`]) | chapter 2's `sdpa_with_options` | B·H·Nq·Nk in HBM | the scores must fit in free device memory |
//! | Fused | chapter 2's kernel, a block per query row | [`crate::cpu::fused_rows_cpu`] | one row of Nk in shared memory | Nk ≤ `SdpaKernel::max_keys()` |
//! | Flash | chapter 3's kernel, tiles of Br rows × Bc keys | chapter 3's `flash_attention_cpu` with the kernel's tiles | one Br × Bc tile | d ∈ {32, 64, 128}, dv = d |
//!
//! Every backend returns chapter 2's answer: (output (B,H,Nq,dv), lse (B,H,Nq)), a query
//! that sees no key giving zeros and lse = −∞.

use crate::cpu::fused_rows_cpu;
use crate::unfused::{check_sizes, unfused_attention_gpu};
use attn_support::gpu::Gpu;
use attn_support::ndarray::{Array3, Array4, ArrayView4};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::gpu::{SdpaKernel, sdpa_gpu_with_options};
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, SdpaOptions, check_inputs, sdpa_with_options};
use ch03_flash_attention::gpu::{FlashKernel, FlashTiles, flash_attention_gpu};
use ch03_flash_attention::tiled::flash_attention_cpu;
use std::fmt;
use std::str::FromStr;

// ANCHOR: backend
/// The three ways of computing attention this chapter compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Scores materialised: GEMM, softmax, GEMM as three passes over memory.
    Unfused,
    /// One kernel, one query row per block, the row of Nk scores on chip.
    Fused,
    /// FlashAttention: tiles of keys streamed through on-chip memory, online softmax.
    Flash,
}

/// Where to compute.
#[derive(Clone, Copy)]
pub enum Device<'a> {
    Cpu,
    Gpu(&'a Gpu),
}
// ANCHOR_END: backend

impl Backend {
    /// All backends, in the order of the tables and figures.
    pub const ALL: [Backend; 3] = [Backend::Unfused, Backend::Fused, Backend::Flash];

    /// Lower-case name: "unfused", "fused", "flash".
    pub fn name(self) -> &'static str {
        match self {
            Backend::Unfused => "unfused",
            Backend::Fused => "fused",
            Backend::Flash => "flash",
        }
    }

    /// The `impl` column of the benchmark CSV: "ch04_unfused", ...
    pub fn impl_name(self) -> String {
        format!("ch04_{}", self.name())
    }

    // ANCHOR: supports
    /// `Ok(())` when this backend can compute `dims` on `device`, else an error saying why.
    /// On a GPU this loads (compiles once) the backend's kernel to read the device's limits.
    pub fn supports(self, dims: &SdpaDims, device: Device) -> Result<()> {
        match (self, device) {
            (Backend::Flash, _) => {
                // The CPU counterpart runs with the kernel's tiles, so it has the same limits.
                FlashTiles::for_head_dim(dims.head_dim)?;
                if dims.v_dim != dims.head_dim {
                    return Err(Error::InvalidArgument(format!(
                        "the Flash backend needs dv = d, got d = {}, dv = {}",
                        dims.head_dim, dims.v_dim
                    )));
                }
                if let Device::Gpu(gpu) = device {
                    FlashKernel::load(gpu)?.launch_config(dims)?;
                }
                Ok(())
            }
            (Backend::Fused, Device::Gpu(gpu)) => SdpaKernel::load(gpu)?.launch_config(dims).map(|_| ()),
            (Backend::Unfused, Device::Gpu(gpu)) => {
                check_sizes(dims)?;
                crate::unfused::check_memory(dims, gpu.memory()?.0, true)
            }
            (Backend::Fused | Backend::Unfused, Device::Cpu) => Ok(()),
        }
    }
    // ANCHOR_END: supports
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Backend> {
        Backend::ALL.into_iter().find(|b| b.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            Error::InvalidArgument(format!("unknown backend '{s}': expected unfused, fused or flash"))
        })
    }
}

// ANCHOR: attention
/// Attention by `backend` on `device`: (output (B,H,Nq,dv), lse (B,H,Nq)), equal to chapter 2's
/// `sdpa_with_options`. Shapes are checked first, then the backend's limits, so an unsupported
/// shape is an error before anything is copied or launched.
pub fn attention(
    backend: Backend,
    device: Device,
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    options: &SdpaOptions,
) -> Result<(Array4<f32>, Array3<f32>)> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), mask)?;
    backend.supports(&dims, device)?;
    match (backend, device) {
        (Backend::Unfused, Device::Cpu) => sdpa_with_options(q, k, v, mask, options),
        (Backend::Fused, Device::Cpu) => fused_rows_cpu(q, k, v, mask, options),
        (Backend::Flash, Device::Cpu) => {
            let tiles = FlashTiles::for_head_dim(dims.head_dim)?.tile_sizes();
            flash_attention_cpu(q, k, v, mask, tiles, options)
        }
        (Backend::Unfused, Device::Gpu(gpu)) => unfused_attention_gpu(gpu, q, k, v, mask, options),
        (Backend::Fused, Device::Gpu(gpu)) => sdpa_gpu_with_options(gpu, q, k, v, mask, options),
        (Backend::Flash, Device::Gpu(gpu)) => flash_attention_gpu(gpu, q, k, v, mask, options),
    }
}
// ANCHOR_END: attention

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
            assert_eq!(b.to_string(), b.name());
        }
        assert_eq!("FLASH".parse::<Backend>().unwrap(), Backend::Flash);
        let e = "math".parse::<Backend>().unwrap_err().to_string();
        assert!(e.contains("math") && e.contains("flash"), "{e}");
        assert_eq!(Backend::Fused.impl_name(), "ch04_fused");
    }
}
