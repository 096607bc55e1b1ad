//! Everything chapter 5's notebook uses, in one `use`: the support crate's prelude and
//! this chapter's items.

pub use attn_support::prelude::*;

pub use crate::bytes::BytesMoved;
pub use crate::figures::recorded::{
    RECORDED_SOFTMAX_RUN, read_softmax_run, softmax_summary, softmax_time_chart,
};
pub use crate::figures::{
    H100_BF16_RIDGE_FLOP_PER_BYTE, bytes_moved_figure, mask_figure, mask_matrix, qkv_figure,
};
pub use crate::gpu::softmax::{RowLaunch, scale_mask_softmax_gpu};
pub use crate::qkv_epilogue::{
    self, EpiloguePipeline, EpilogueShape, KvCache, epilogue_fused, epilogue_unfused, llama_rope_tables,
    rotate_half_with_table,
};
pub use crate::qkv_projection::{
    self, FusedQkv, LLAMA3_8B, Qkv, QkvDims, QkvPipeline, SMOLLM2_135M, concat_weights, qkv_fused,
    qkv_unfused, repeat_kv,
};
pub use crate::reference::{qkv_epilogue_reference, qkv_reference, scale_mask_softmax_reference};
pub use crate::softmax_fusion::{
    self, MaskSpec, ScoreShape, SoftmaxPipeline, add_mask_pass, scale_mask_softmax_fused,
    scale_mask_softmax_unfused, scale_pass, softmax_pass,
};
