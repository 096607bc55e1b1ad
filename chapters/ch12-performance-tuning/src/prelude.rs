//! Everything notebook 12 uses, in one `use`: the support crate's prelude (with the occupancy
//! calculation) and this chapter's items.

pub use attn_support::prelude::*;

pub use crate::approximate::{
    ApproxConfig, BlockSparsity, RandomFeatures, approx_experiment, approx_figure, approx_inputs,
    pattern_heatmap, performer_attention,
};
pub use crate::figures::{
    LADDER_SHAPE, LadderFigure, autotune_figure, graphs_figure, ladder_shape, parse_roofline_csv,
    read_bench_run, read_ceilings, read_graphs_csv, read_streams_csv, roofline_from_csv,
    roofline_measured_from_csv, streams_figure, tflops_vs_n_panels,
};
pub use crate::gpu::{LadderKernels, ladder_attention_gpu};
pub use crate::ladder::{LADDER_HEAD_DIMS, Rung, TUNED_SHAPES, TileShape, overlap_shapes, tma_shapes};
pub use crate::precision::{Bf16Inputs, Bf16Yardstick, naive_bf16_attention};
pub use crate::roofline::attainable;
pub use crate::roofline::measured::{MeasuredBytes, parse_measured_csv};
pub use crate::tables::{
    approx_table, graphs_table, occupancy_table, rung_table, streams_table, tflops_table,
};
pub use crate::tuning::TileTable;
pub use crate::{SdpaMask, bf16, ch02};
