//! Plumbing that every chapter needs and that is not about attention.
//!
//! - [`gpu`]: open the GPU (or say why not), compile a kernel file from `kernels/` with NVRTC,
//!   launch helpers, ndarray ↔ device copies.
//! - [`dependent_launch`]: launching a kernel that may start before the one ahead of it ends.
//! - [`timing`]: CUDA-event and wall-clock timing (warm-up, median of repeats).
//! - [`compare`](mod@compare): relative and max-abs error between two arrays.
//! - [`plot`]: figures drawn onto any plotters backend, saved as PNG + SVG or shown inline in
//!   a notebook.
//! - [`data`]: seeded random tensors.
//! - [`report`]: headings, progress bars, aligned text tables and CSV files of the chapter
//!   binaries.
//! - [`units`]: byte counts in KiB, MiB, GiB.
//! - [`csv`](mod@csv): reading those CSV files back (recorded runs, benchmark tables).
//! - [`blas`]: a cuBLAS handle in full-f32 math, and its errors.
//! - [`occupancy`]: resident blocks per SM from a kernel's registers, shared memory and threads.
//!
//! [`prelude`] gathers what notebooks use most. The chapter crates re-export this crate, `ndarray` and `plotters`, so a notebook that
//! depends on one chapter crate never declares a second version of them.

pub mod blas;
pub mod compare;
pub mod csv;
pub mod data;
pub mod dependent_launch;
pub mod error;
pub mod gpu;
pub mod occupancy;
pub mod plot;
pub mod prelude;
pub mod report;
pub mod timing;
pub mod units;

pub use compare::{Comparison, compare};
pub use error::{Error, Result};
pub use gpu::{Gpu, KernelSource, gpu_required, with_gpu};

pub use cudarc;
pub use ndarray;
pub use plotters;
