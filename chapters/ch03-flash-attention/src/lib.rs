//! Chapter 3: FlashAttention, IO-aware exact attention.
//!
//! - [`tiled`]: attention computed tile by tile (Br query rows × Bc keys at a time) with the
//!   online softmax, equal to chapter 2's [`ch02_scaled_dot_product::sdpa()`] for any tile sizes,
//!   returning each row's log-sum-exp too.
//! - [`io_model`]: how many HBM reads and writes standard and tiled attention make, as a
//!   function of N, d and on-chip memory M, and the same counts measured on the CPU code.
//! - [`gpu`]: the FlashAttention forward kernel in f32 and its host side.
//! - [`figures`] and [`mod@bench`]: what the `ch03` binary draws and measures;
//! - [`causal_tiles`]: which tiles a causal mask leaves to compute;
//! - [`recorded`]: the recorded GPU run, read back for the notebook.
//!
//! Masks, shapes and the f64 reference come from chapter 2.

pub mod bench;
pub mod causal_tiles;
pub mod figures;
pub mod gpu;
pub mod io_model;
pub mod prelude;
pub mod recorded;
pub mod tiled;

pub use attn_support::{self, ndarray, plotters};
pub use ch02_scaled_dot_product::{self as ch02, SdpaMask};
