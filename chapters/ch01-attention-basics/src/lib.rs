//! Chapter 1: attention basics — softmax(Q Kᵀ) V from scratch.
//!
//! - [`cpu`]: naive loops over slices, and the ndarray form with [`softmax_rows`].
//! - [`reference`](mod@reference): an independent f64 reference (log-sum-exp) for the checks.
//! - [`gpu`]: a naive one-thread-per-query kernel and a three-kernel version.
//! - [`toy`]: a toy sentence with hand-made embeddings whose weights can be read.
//! - [`figures`]: the weight heatmap and the 2-D geometry of a query and its keys.
//! - [`recorded`]: the timings of a recorded GPU run, read back for the book and the notebook.

pub use attn_support::{self, ndarray, plotters};

pub mod cpu;
pub mod figures;
pub mod gpu;
pub mod prelude;
pub mod recorded;
pub mod reference;
pub mod toy;

pub use cpu::{
    AttentionDims, attention, attention_naive, attention_naive_arrays, attention_weights, softmax_rows,
    softmax_rows_in_place,
};
pub use gpu::{DeviceAttention, attention_naive_gpu, attention_three_kernels_gpu};
pub use reference::attention_reference_f64;
pub use toy::{ToyExample, toy_example};
