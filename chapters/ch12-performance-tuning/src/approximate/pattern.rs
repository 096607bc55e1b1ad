//! Block-sparsity patterns: which (query block, key block) tiles of the score matrix are kept.
//!
//! Queries and keys are cut into blocks of `block` rows (the last block may be shorter). Query
//! i sits at key position `pᵢ = i + Nk − Nq` — the bottom-right alignment of chapter 2's
//! causal mask, so that with a KV cache the last query is at the last key. Its *own* key block
//! is `⌊pᵢ / block⌋` (negative when Nq > Nk and i is early). A key block `kb` is kept for a
//! query block when, for some query i of that block:
//!
//! - **local**: `|kb − ⌊pᵢ/block⌋| < window` (a sliding window of `2·window − 1` blocks,
//!   `window` on the causal side);
//! - **global**: `kb < global` — the first blocks, seen by every query (Longformer's and
//!   BigBird's global tokens, the "attention sink" of streaming LLMs);
//! - **strided**: `kb mod stride = stride − 1` — one summary block per `stride` blocks, as in the
//!   fixed pattern of the Sparse Transformer.
//!
//! With `causal`, tiles wholly after the last query's causal frontier are dropped too, and
//! inside a kept tile the element rule `j ≤ i + Nk − Nq` still applies. The kept set is decided
//! per *tile*, so every query of a block sees the same key blocks: that is what lets the
//! computation run as small dense GEMMs.

use attn_support::{Error, Result};
use ch02_scaled_dot_product::SdpaMask;
use std::ops::Range;

/// A rule that says which tiles to keep; [`BlockSparsity::layout`] applies it to a shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSparsity {
    /// Rows of a query block and of a key block.
    pub block: usize,
    /// Local half-width in blocks: key block kb is local to query i when |kb − own(i)| < window.
    /// 0 keeps no local block; `usize::MAX` keeps every block.
    pub window: usize,
    /// The first `global` key blocks are kept for every query block.
    pub global: usize,
    /// Keep key blocks with kb mod stride = stride − 1; 0 means no strided blocks.
    pub stride: usize,
    /// Apply chapter 2's bottom-right aligned causal mask as well.
    pub causal: bool,
}

impl BlockSparsity {
    /// Every tile kept: exact attention computed block by block.
    pub fn dense(block: usize) -> BlockSparsity {
        BlockSparsity { block, window: usize::MAX, global: 0, stride: 0, causal: false }
    }

    /// A sliding window of `window` blocks on each side of each query's own block.
    pub fn local(block: usize, window: usize) -> BlockSparsity {
        BlockSparsity { window, ..BlockSparsity::dense(block) }
    }

    /// This pattern plus the first `global` key blocks for every query.
    pub fn with_global(self, global: usize) -> BlockSparsity {
        BlockSparsity { global, ..self }
    }

    /// This pattern plus one key block in every `stride` (0 for none).
    pub fn with_stride(self, stride: usize) -> BlockSparsity {
        BlockSparsity { stride, ..self }
    }

    /// This pattern with or without the causal mask.
    pub fn with_causal(self, causal: bool) -> BlockSparsity {
        BlockSparsity { causal, ..self }
    }

    /// Check the pattern's own parameters.
    pub fn check(&self) -> Result<()> {
        if self.block == 0 {
            return Err(Error::InvalidArgument("block-sparse: block size must be ≥ 1, got 0".into()));
        }
        Ok(())
    }

    /// The kept tiles for `nq` queries and `nk` keys.
    pub fn layout(&self, nq: usize, nk: usize) -> Result<BlockLayout> {
        self.check()?;
        if nq == 0 || nk == 0 {
            return Err(Error::InvalidArgument(format!(
                "block-sparse: need at least one query and one key, got nq = {nq}, nk = {nk}"
            )));
        }
        let block = self.block;
        let (q_blocks, k_blocks) = (nq.div_ceil(block), nk.div_ceil(block));
        let mask = SdpaMask { causal: self.causal, key_padding: None };
        let offset = nk as i64 - nq as i64;
        let own_block = |i: usize| (i as i64 + offset).div_euclid(block as i64);
        // Half-width beyond the own block, saturating so that usize::MAX means "everything".
        let reach = i64::try_from(self.window.saturating_sub(1)).unwrap_or(i64::MAX);
        let kept = (0..q_blocks)
            .map(|qb| {
                let rows = qb * block..((qb + 1) * block).min(nq);
                let (first, last) = (rows.start, rows.end - 1);
                // Keys at or past this index are causally masked for every query of the block.
                let frontier = mask.causal_end(last, nq, nk);
                let local_lo = own_block(first).saturating_sub(reach);
                let local_hi = own_block(last).saturating_add(reach);
                (0..k_blocks)
                    .filter(|&kb| kb * block < frontier)
                    .filter(|&kb| {
                        let local = self.window > 0 && (local_lo..=local_hi).contains(&(kb as i64));
                        let strided = self.stride > 0 && kb % self.stride == self.stride - 1;
                        local || kb < self.global || strided
                    })
                    .collect()
            })
            .collect();
        Ok(BlockLayout { block, nq, nk, causal: self.causal, kept })
    }
}

/// The kept tiles of one shape: for each query block, its kept key blocks in increasing order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    pub block: usize,
    pub nq: usize,
    pub nk: usize,
    pub causal: bool,
    /// `kept[qb]` lists the key blocks of query block `qb`, increasing.
    pub kept: Vec<Vec<usize>>,
}

impl BlockLayout {
    pub fn query_blocks(&self) -> usize {
        self.nq.div_ceil(self.block)
    }

    pub fn key_blocks(&self) -> usize {
        self.nk.div_ceil(self.block)
    }

    /// Rows of query block `qb`.
    pub fn query_range(&self, qb: usize) -> Range<usize> {
        qb * self.block..((qb + 1) * self.block).min(self.nq)
    }

    /// Keys of key block `kb`.
    pub fn key_range(&self, kb: usize) -> Range<usize> {
        kb * self.block..((kb + 1) * self.block).min(self.nk)
    }

    pub fn is_kept(&self, qb: usize, kb: usize) -> bool {
        self.kept.get(qb).is_some_and(|row| row.binary_search(&kb).is_ok())
    }

    /// Does query i see key j? Its tile must be kept and, when causal, j ≤ i + Nk − Nq.
    pub fn is_visible(&self, i: usize, j: usize) -> bool {
        let mask = SdpaMask { causal: self.causal, key_padding: None };
        i < self.nq
            && j < mask.causal_end(i, self.nq, self.nk)
            && self.is_kept(i / self.block, j / self.block)
    }

    /// Number of kept tiles.
    pub fn kept_tiles(&self) -> usize {
        self.kept.iter().map(Vec::len).sum()
    }

    /// Score entries inside kept tiles: the work of the sparse computation (the dense one does
    /// Nq·Nk).
    pub fn kept_scores(&self) -> usize {
        let rows = |qb| self.query_range(qb).len();
        let cols = |kb| self.key_range(kb).len();
        self.kept
            .iter()
            .enumerate()
            .map(|(qb, kbs)| rows(qb) * kbs.iter().map(|&kb| cols(kb)).sum::<usize>())
            .sum()
    }

    /// Fraction of the Nq·Nk score matrix that is computed.
    pub fn density(&self) -> f64 {
        self.kept_scores() as f64 / (self.nq as f64 * self.nk as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_global_on_a_square() {
        // 6 blocks of 4, window 2 (own ± 1), first block global.
        let layout = BlockSparsity::local(4, 2).with_global(1).layout(24, 24).unwrap();
        assert_eq!(layout.kept[0], [0, 1]);
        assert_eq!(layout.kept[3], [0, 2, 3, 4]);
        assert_eq!(layout.kept[5], [0, 4, 5]);
        // Causal drops the tiles above the diagonal.
        let causal = BlockSparsity::local(4, 2).with_global(1).with_causal(true).layout(24, 24).unwrap();
        assert_eq!(causal.kept[3], [0, 2, 3]);
        assert!(causal.is_visible(13, 12) && !causal.is_visible(13, 14) && !causal.is_visible(13, 5));
    }

    #[test]
    fn strided_ragged_and_offset() {
        let layout = BlockSparsity::local(4, 1).with_stride(3).layout(10, 10).unwrap();
        assert_eq!(layout.kept, [vec![0, 2], vec![1, 2], vec![2]]);
        assert_eq!(layout.key_range(2), 8..10);
        // Nq = 1 < Nk = 10: the one query sits at position 9, in key block 2.
        let decode = BlockSparsity::local(4, 1).with_causal(true).layout(1, 10).unwrap();
        assert_eq!(decode.kept, [vec![2]]);
        // Nq = 6 > Nk = 2 causal: the first block of queries sees no key.
        let early = BlockSparsity::dense(4).with_causal(true).layout(6, 2).unwrap();
        assert_eq!(early.kept, [vec![], vec![0]]);
        assert!(BlockSparsity::dense(0).layout(3, 3).is_err());
        assert!(BlockSparsity::dense(2).layout(0, 3).is_err());
    }
}
