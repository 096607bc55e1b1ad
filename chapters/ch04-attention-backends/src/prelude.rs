//! Everything notebook 04 uses, in one `use`: the support crate's prelude and this chapter's
//! items (and the chapter-2 pieces it compares against).

pub use attn_support::prelude::*;
pub use attn_support::units::{gib, mib};

pub use crate::dispatch::{FUSED_HEURISTIC_MAX_KEYS, PickSource, heuristic};
pub use crate::figures::{Combo, TimingRow, dispatch_slowdown, read_recorded_run, time_vs_n, winner_map};
pub use crate::recorded::{RECORDED_RUN, best_of_ours, shapes, time_of, time_table};
pub use crate::residency::{
    FUSED_REGISTERS_PER_THREAD, FUSED_STATIC_SHARED_BYTES, FusedResidency, fused_block,
    fused_blocks_per_sm_on, fused_registers_on, fused_shared_bytes, kv_bytes_per_head, residency_table,
};
pub use crate::{AutotuneTable, Backend, Device, Dispatcher, ShapeKey, attention, ch03};
pub use ch02_scaled_dot_product::reference::sdpa_reference;
pub use ch02_scaled_dot_product::{self as ch02, SdpaDims, SdpaMask, SdpaOptions, sdpa_with_lse};
