//! Everything the chapter 7 notebook uses, in one `use`: the support crate's prelude, the real
//! model's crate and this chapter's items.

pub use attn_support::prelude::*;

pub use attn_model::llama::generate::{argmax, generate};
pub use attn_model::llama::perplexity::perplexity;
pub use attn_model::{
    ChatTokenizer, DenseKvCache, EVAL_TEXT, GqaSdpa, KvCache, Llama, LlamaConfig, LlamaWeights, Sampler,
    load_smollm2, model_path_or_skip,
};

pub use crate::caches::budget::{adaptive_budgets, keys_needed};
pub use crate::caches::encoded::{EncodedKvCache, KvCodec, Role, round_trip};
pub use crate::caches::eviction::{EvictingKvCache, Eviction};
pub use crate::caches::growing::{GrowingKvCache, Growth, GrowthCost};
pub use crate::caches::low_rank::{HeadBasis, LowRankCodec, held_out_error};
pub use crate::calibration::{channel_absmax, outlier_ratio, record_kv};
pub use crate::experiments::{
    ChannelMagnitudes, channel_magnitudes, low_rank_curves, memory_table, quality_table, read_quality,
    read_token_times,
};
pub use crate::figures::{channel_figure, low_rank_figure, memory_figure, pareto_figure, token_time_figure};
pub use crate::memory::{CacheShape, MODELS, human_bytes};
pub use crate::quality::{
    CacheSpec, Calibration, Protocol, QualityRow, build, evaluate, greedy, teacher_forced,
};
pub use crate::quant::KvEncoding;
pub use crate::quant::fp4::{Fp4Format, e2m1_to_f32, f32_to_e2m1};
pub use crate::quant::fp8::{Fp8Scaling, e4m3_to_f32, f32_to_e4m3};
pub use crate::quant::int8::{Int8Granularity, quantize_int8};
pub use crate::quant::kivi::{KiviConfig, quantize_kivi};
pub use crate::speed::{TokenTime, time_per_token};
