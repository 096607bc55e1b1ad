//! Everything notebook 01 uses, in one `use`: the support crate's prelude and this chapter's
//! items.

pub use attn_support::prelude::*;

pub use crate::figures::{self, QueryKeyGeometry, timing_chart, toy_heatmap};
pub use crate::recorded::{RECORDED_RUN, TimingRecord, read_timings, timing_table};
pub use crate::toy::{self, FEATURES, ToyExample, key_projection, query_projection, toy_example};
pub use crate::{
    AttentionDims, attention, attention_naive, attention_naive_arrays, attention_naive_gpu,
    attention_reference_f64, attention_three_kernels_gpu, attention_weights, softmax_rows,
};
