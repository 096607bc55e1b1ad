//! Everything notebook 02 uses, in one `use`: the support crate's prelude and this chapter's
//! items.

pub use attn_support::prelude::*;

pub use crate::experiments::{
    CostPoint, LogitStats, OverflowPoint, ScalingPoint, Transform, complexity_experiment, entropy,
    overflow_experiment, scaling_experiment, softmax_jacobian_norm,
};
pub use crate::figures::{complexity_figure, overflow_figure, scaling_figure, weights_heatmap};
pub use crate::gpu::{self, SdpaKernel, sdpa_gpu, sdpa_gpu_with_options};
pub use crate::naive::sdpa_naive;
pub use crate::recorded::{RECORDED_RUN, comparison_table, read_recorded, tflops_panels};
pub use crate::reference::{self, sdpa_reference};
pub use crate::softmax::{self, exp2_nonpositive, log_sum_exp, softmax_naive, softmax_stable};
pub use crate::{
    SdpaDims, SdpaMask, SdpaOptions, attention_weights, log2_units, sdpa, sdpa_with_lse, sdpa_with_options,
};
