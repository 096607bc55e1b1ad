//! The split plan of a decode launch (split-K, "flash-decoding"): how many blocks share one
//! (sequence, KV head) plane and how many tokens each takes, in chunks a multiple of
//! [`CHUNK_QUANTUM`] tokens. Enough splits fill the GPU; each also writes a partial result the
//! combine kernel must read back. Two plans: whole waves ([`plan_splits_in_whole_waves`], the
//! default since run 22: one wave of long chunks, as cuDNN launches its decode) and at least some
//! waves ([`plan_splits_for_waves`], the plan before it: several waves of short chunks, so that
//! the last wave is a small part of the run).

use attn_support::{Error, Result};

/// A split's chunk of tokens is a multiple of this: every lane group's share of a block
/// iteration (NG · U ≤ 128 tokens for every element type and head dim) comes out whole.
pub const CHUNK_QUANTUM: usize = 128;
/// At most this many tokens per split in [`plan_splits`] (the plan of at least [`MIN_WAVES`]
/// waves): long contexts get many splits, so that the last wave of blocks is a small part of the
/// run (each split costs 2 · (4d + 8) bytes per query head of partial results, under 2 % of what
/// it reads at this size).
pub const MAX_CHUNK: usize = 512;
/// The largest chunk [`super::launch::DecodeAttention::set_max_chunk`] accepts (the kernels'
/// 32-bit token indices leave this much room past the capacity), and the longest a whole-wave
/// plan gives unless told otherwise.
pub const MAX_CHUNK_LIMIT: usize = 8192;
/// Waves of blocks [`plan_splits`] aims for at least (over all SMs, at the kernel's occupancy).
pub const MIN_WAVES: usize = 2;

/// How a launch splits the context: `splits` blocks per (sequence, KV head), each over `chunk`
/// consecutive tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitPlan {
    pub splits: usize,
    pub chunk: usize,
}

// ANCHOR: plan_splits
/// Splits for `planes = batch · kv_heads` planes whose longest sequence has `max_len` tokens,
/// on a device where `wave_blocks` blocks run at once: enough that the grid covers
/// [`MIN_WAVES`] waves, chunks of at most [`MAX_CHUNK`] tokens, a multiple of
/// [`CHUNK_QUANTUM`].
pub fn plan_splits(planes: usize, max_len: usize, wave_blocks: usize) -> SplitPlan {
    plan_splits_up_to(planes, max_len, wave_blocks, MAX_CHUNK)
}

/// A longest chunk a split plan may use: a multiple of [`CHUNK_QUANTUM`] up to
/// [`MAX_CHUNK_LIMIT`], or an error naming it.
pub fn check_max_chunk(max_chunk: usize) -> Result<()> {
    if max_chunk == 0 || !max_chunk.is_multiple_of(CHUNK_QUANTUM) || max_chunk > MAX_CHUNK_LIMIT {
        return Err(Error::InvalidArgument(format!(
            "max chunk {max_chunk}: a multiple of {CHUNK_QUANTUM} up to {MAX_CHUNK_LIMIT}"
        )));
    }
    Ok(())
}

/// A number of waves a split plan may aim for at least: 1 or more, or an error naming it.
pub fn check_min_waves(min_waves: usize) -> Result<()> {
    WavePlan::AtLeast(min_waves).check()
}

/// [`plan_splits`] with chunks of at most `max_chunk` tokens (a multiple of [`CHUNK_QUANTUM`]).
pub fn plan_splits_up_to(planes: usize, max_len: usize, wave_blocks: usize, max_chunk: usize) -> SplitPlan {
    plan_splits_for_waves(planes, max_len, wave_blocks, max_chunk, MIN_WAVES)
}

/// [`plan_splits_up_to`] aiming for at least `min_waves` waves instead of [`MIN_WAVES`].
pub fn plan_splits_for_waves(
    planes: usize,
    max_len: usize,
    wave_blocks: usize,
    max_chunk: usize,
    min_waves: usize,
) -> SplitPlan {
    let wanted = (min_waves.max(1) * wave_blocks.max(1)).div_ceil(planes.max(1));
    let chunk = max_len.div_ceil(wanted) / CHUNK_QUANTUM * CHUNK_QUANTUM;
    let chunk = chunk.clamp(CHUNK_QUANTUM, max_chunk.max(CHUNK_QUANTUM));
    SplitPlan { splits: max_len.div_ceil(chunk).max(1), chunk }
}
// ANCHOR_END: plan_splits

/// Splits that fill whole waves of `wave_blocks` blocks: the fewest waves, `waves` or more, whose
/// chunks are at most `max_chunk` tokens, then `waves · wave_blocks / planes` splits per plane (at
/// least 1) with each chunk rounded *up* to [`CHUNK_QUANTUM`], so that the grid never spills a
/// few blocks into one more, nearly empty wave (rounding down, as [`plan_splits_for_waves`] does
/// to reach *at least* its waves, can leave 3.9 or 1.2 waves). With one wave every block starts
/// at once and runs the whole kernel: one pipeline fill per block, no wave boundary, few partials
/// to combine; what it gives up is balancing, since an SM that finishes early finds no block left
/// to take. cuDNN's decode kernels are launched the same way (one block or two per SM).
pub fn plan_splits_in_whole_waves(
    planes: usize,
    max_len: usize,
    wave_blocks: usize,
    max_chunk: usize,
    waves: usize,
) -> SplitPlan {
    let (planes, wave_blocks) = (planes.max(1), wave_blocks.max(1));
    let max_chunk = max_chunk.max(CHUNK_QUANTUM) / CHUNK_QUANTUM * CHUNK_QUANTUM;
    // Waves enough that planes · ⌈max_len / max_chunk⌉ blocks fit them.
    let waves = waves.max(1).max((planes * max_len.div_ceil(max_chunk)).div_ceil(wave_blocks));
    let per_plane = (waves * wave_blocks / planes).max(1);
    let chunk = max_len.div_ceil(per_plane).next_multiple_of(CHUNK_QUANTUM).clamp(CHUNK_QUANTUM, max_chunk);
    SplitPlan { splits: max_len.div_ceil(chunk).max(1), chunk }
}

/// How a launch chooses its splits: whole waves ([`plan_splits_in_whole_waves`], the default,
/// one wave) or at least a number of waves ([`plan_splits_for_waves`], the plan of chapter 7's
/// runs up to run 21: at least two waves of chunks of at most 512 tokens, 1024 for the
/// tensor-core kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WavePlan {
    Whole(usize),
    AtLeast(usize),
}

impl WavePlan {
    /// At least one wave, or an error naming the plan and its waves.
    pub fn check(self) -> Result<()> {
        let what = match self {
            WavePlan::Whole(0) => "whole waves",
            WavePlan::AtLeast(0) => "min waves",
            _ => return Ok(()),
        };
        Err(Error::InvalidArgument(format!("{what} 0: a split plan needs at least one wave")))
    }
}

impl Default for WavePlan {
    fn default() -> WavePlan {
        WavePlan::Whole(1)
    }
}
