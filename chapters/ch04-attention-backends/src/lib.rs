//! Chapter 4: one attention interface, three backends.
//!
//! - [`backend`]: [`Backend`] (Unfused, Fused, Flash), [`Device`] (CPU or a GPU), the one
//!   entry point [`attention()`] and [`Backend::supports`], which says why a backend cannot
//!   run a shape;
//! - [`cpu`]: the row-at-a-time CPU counterpart of the Fused kernel;
//! - [`unfused`]: the traditional GPU path, scores materialised in device memory: cuBLAS
//!   S = Q Kᵀ, a softmax kernel, cuBLAS O = P V;
//! - [`dispatch`]: a dispatcher choosing a backend per shape from an autotune table of
//!   measured timings, with a documented heuristic when the table has no entry;
//! - [`mod@bench`]: the benchmark grid the `ch04` binary runs;
//! - [`figures`]: the chapter's figures, from a live grid or recorded CSVs;
//! - [`recorded`]: times, winners and ratios read off a recorded grid run;
//! - [`residency`]: the Fused kernel's shared memory per block and the blocks an SM can hold
//!   (by registers, shared memory and threads).
//!
//! Fused is chapter 2's kernel (a block per query row, the row of Nk scores in shared memory)
//! and Flash is chapter 3's; both are reused, not copied.

pub mod backend;
pub mod bench;
pub mod cpu;
pub mod dispatch;
pub mod figures;
pub mod prelude;
pub mod recorded;
pub mod residency;
pub mod unfused;

pub use attn_support::{self, ndarray};
pub use backend::{Backend, Device, attention};
pub use ch02_scaled_dot_product::{self as ch02, SdpaDims, SdpaMask, SdpaOptions};
pub use ch03_flash_attention as ch03;
pub use dispatch::{AutotuneTable, Dispatcher, ShapeKey};
