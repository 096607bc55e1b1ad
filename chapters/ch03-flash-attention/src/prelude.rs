//! Everything notebook 03 uses, in one `use`: the support crate's prelude and this chapter's
//! items (and the chapter-2 pieces it compares against).

pub use attn_support::prelude::*;
pub use attn_support::units::{gib, mib};

pub use crate::causal_tiles::{causal_tile_map, visible_fractions};
pub use crate::figures::{TrafficFigure, online_softmax_example, online_softmax_figure, time_memory_chart};
pub use crate::gpu::{FlashTiles, flash_attention_gpu};
pub use crate::io_model::{
    HbmTraffic, LoopOrder, Operand, flash_attention_hbm, flash_bound, flash2_attention_hbm, paper_tiles,
    standard_attention_counted, standard_attention_hbm, standard_bound,
};
pub use crate::recorded::{RECORDED_RUN, comparison_table, read_recorded, read_time_memory, tflops_panels};
pub use crate::tiled::kv_outer::flash_attention_kv_outer_counted;
pub use crate::tiled::{
    OnlineSoftmax, TileSizes, flash_attention_counted, flash_attention_cpu, key_tiles_visited,
    online_softmax_steps,
};
pub use ch02_scaled_dot_product::reference::{sdpa_reference, softmax_reference};
pub use ch02_scaled_dot_product::{self as ch02, SdpaDims, SdpaMask, SdpaOptions, sdpa_with_lse};
