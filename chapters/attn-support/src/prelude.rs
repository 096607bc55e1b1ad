//! What a notebook or a binary of any chapter needs from the support crate, in one `use`.
//! Each chapter's own `prelude` re-exports this and adds the chapter's items, so that a
//! notebook starts with a single `use chNN_…::prelude::*;`.

pub use crate::compare::{Comparison, compare};
pub use crate::csv::{BenchRecord, Table, read_bench_csv, recorded_run};
pub use crate::data::randn;
pub use crate::error::{Error, Result};
pub use crate::gpu::{Gpu, with_gpu};
pub use crate::occupancy::{BlockResources, Occupancy, SmLimits, blocks_per_sm};
pub use crate::plot::{self, Chart, Figure, Heatmap, Line, Panels, Scale, SeriesLabelPosition};
pub use ndarray::{Array1, Array2, Array4, ArrayView2, Axis, array, s};
