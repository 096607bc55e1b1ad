//! Everything a chapter 6 notebook will use, in one `use`: the support crate's prelude and this
//! chapter's items.

pub use attn_support::prelude::*;

pub use crate::agreement::{Agreement, agreement};
pub use crate::bench::{BENCH_SHAPES, BenchShape};
pub use crate::comparison::{ENCODINGS, EncodingFacts};
pub use crate::curves::{log_distances, mean_scores, pairs_with_full_turn, rope_score, wavelengths};
pub use crate::decay::{content_factor, relative_upper_bound};
pub use crate::encodings::{alibi_bias, alibi_slopes, sinusoidal_table, t5_relative_position_bucket};
pub use crate::figures::{PairRotation, decay_figure, frequency_figure, rotation_figure};
pub use crate::gpu::{
    AngleSource, DevicePositions, RopeElement, RopeKernel, bf16, cpu_rope_at_positions, rope_gpu,
};
pub use crate::layout::{convert_rows, dim_permutation, half_to_interleaved_rows, interleaved_to_half_rows};
pub use crate::precision::{AngleError, angle_errors};
pub use crate::reference::rope_reference;
pub use crate::rope::{MAX_EXACT_POSITION, RopeCache, RopeConfig, RopeLayout, apply_rope};
pub use crate::scaling::{HfRopeParameters, RopeScaling, YARN_BETA_FAST, YARN_BETA_SLOW, dynamic_ntk_base};
pub use crate::scaling_figure::{llama3_like_scalings, scaled_frequency_figure, scalings_table};
