//! Block-sparse attention on the CPU: softmax attention over the kept tiles of a
//! [`BlockLayout`], skipping the others entirely.
//!
//! For each (batch, head) and each query block, the kept key blocks are laid side by side:
//!
//! 1. `S = Q_blk [K_kb₁; K_kb₂; …]ᵀ / √d`, one small GEMM per kept key block, written into
//!    adjacent columns of one score buffer (block × kept keys);
//! 2. the causal rule masks a *suffix* of each row: the gathered keys are in increasing order,
//!    so the keys visible to query i are exactly the first `#{gathered j < causal_end(i)}`;
//! 3. a stable softmax over each row (max subtracted), its log-sum-exp kept;
//! 4. `O_blk = Σ_kb P[:, kb] V_kb`, one GEMM per kept block, then each row divided by its sum.
//!
//! The work is 2·(d + dv) multiply-adds per kept score, so the cost is proportional to
//! [`BlockLayout::kept_scores`], not to Nq·Nk. Every query of a block shares the same key
//! blocks, which is what keeps the inner loops dense GEMMs; a per-element sparse pattern would
//! spend its time on indexing instead.
//!
//! A query with no visible key (no kept tile, or causally before every key) gets a row of zeros
//! and lse = −∞, as in chapter 2.

use super::pattern::{BlockLayout, BlockSparsity};
use attn_support::ndarray::linalg::general_mat_mul;
use attn_support::ndarray::{Array3, Array4, ArrayView2, ArrayView4, ArrayViewMut1, ArrayViewMut2, s};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, check_inputs};

/// Softmax attention restricted to the tiles `pattern` keeps, scale 1/√d; output (B, H, Nq, dv).
pub fn block_sparse_attention(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    pattern: &BlockSparsity,
) -> Result<Array4<f32>> {
    block_sparse_attention_with_lse(q, k, v, pattern).map(|(out, _)| out)
}

/// [`block_sparse_attention`] and the log-sum-exp of each row over its visible keys,
/// shape (B, H, Nq). Against exact attention's lse, `1 − e^{lse_sparse − lse_exact}` is the
/// probability mass the pattern dropped.
pub fn block_sparse_attention_with_lse(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    pattern: &BlockSparsity,
) -> Result<(Array4<f32>, Array3<f32>)> {
    pattern.check()?;
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), &SdpaMask::none())?;
    let layout = pattern.layout(dims.nq, dims.nk)?;
    attention_over_layout(q, k, v, &layout)
}

/// Block-sparse attention over an already built layout, which must match the inputs' Nq and Nk.
pub fn attention_over_layout(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    layout: &BlockLayout,
) -> Result<(Array4<f32>, Array3<f32>)> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), &SdpaMask::none())?;
    if (layout.nq, layout.nk) != (dims.nq, dims.nk) || layout.kept.len() != layout.query_blocks() {
        return Err(Error::InvalidArgument(format!(
            "block-sparse: layout is for nq = {}, nk = {} ({} query blocks listed), inputs have nq = {}, nk = {}",
            layout.nq,
            layout.nk,
            layout.kept.len(),
            dims.nq,
            dims.nk
        )));
    }
    // The causal prefix rule below needs each list increasing and in range.
    for (qb, kept) in layout.kept.iter().enumerate() {
        let increasing = kept.windows(2).all(|pair| pair[0] < pair[1]);
        if !increasing || kept.last().is_some_and(|&kb| kb >= layout.key_blocks()) {
            return Err(Error::InvalidArgument(format!(
                "block-sparse: key blocks of query block {qb} must increase and be < {}, got {kept:?}",
                layout.key_blocks()
            )));
        }
    }
    let scale = (1.0 / (dims.head_dim as f64).sqrt()) as f32;
    let mut out = Array4::<f32>::zeros(dims.out_shape());
    let mut lse = Array3::<f32>::from_elem(dims.lse_shape(), f32::NEG_INFINITY);
    let mut scratch = Scratch::default();
    for b in 0..dims.batch {
        for h in 0..dims.heads {
            let head = Head {
                q: q.slice(s![b, h, .., ..]),
                k: k.slice(s![b, h, .., ..]),
                v: v.slice(s![b, h, .., ..]),
                scale,
                dims: &dims,
                layout,
            };
            for qb in 0..layout.query_blocks() {
                let rows = layout.query_range(qb);
                let out_blk = out.slice_mut(s![b, h, rows.clone(), ..]);
                let lse_blk = lse.slice_mut(s![b, h, rows]);
                head.query_block(qb, out_blk, lse_blk, &mut scratch)?;
            }
        }
    }
    Ok((out, lse))
}

/// Buffers reused across query blocks.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    inv_sums: Vec<f32>,
}

/// One (batch, head): its Q, K, V and what every query block needs.
struct Head<'a> {
    q: ArrayView2<'a, f32>,
    k: ArrayView2<'a, f32>,
    v: ArrayView2<'a, f32>,
    scale: f32,
    dims: &'a SdpaDims,
    layout: &'a BlockLayout,
}

impl Head<'_> {
    /// Output rows and lse of query block `qb` (out_blk arrives zeroed, lse_blk at −∞).
    fn query_block(
        &self,
        qb: usize,
        mut out_blk: ArrayViewMut2<f32>,
        mut lse_blk: ArrayViewMut1<f32>,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let layout = self.layout;
        let kept = &layout.kept[qb];
        let rows = layout.query_range(qb);
        let cols: usize = kept.iter().map(|&kb| layout.key_range(kb).len()).sum();
        if cols == 0 {
            return Ok(()); // no kept tile: zeros and lse = −∞
        }
        scratch.scores.clear();
        scratch.scores.resize(rows.len() * cols, 0.0);
        let mut scores = ArrayViewMut2::from_shape((rows.len(), cols), &mut scratch.scores[..])
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let q_blk = self.q.slice(s![rows.clone(), ..]);
        // 1. S = scale · Q_blk K_keptᵀ, one GEMM per kept key block into its columns.
        let mut col = 0;
        for &kb in kept {
            let keys = layout.key_range(kb);
            let width = keys.len();
            let k_blk = self.k.slice(s![keys, ..]);
            general_mat_mul(
                self.scale,
                &q_blk,
                &k_blk.t(),
                0.0,
                &mut scores.slice_mut(s![.., col..col + width]),
            );
            col += width;
        }
        // 2–3. Causal suffix to −∞, stable softmax per row.
        let mask = SdpaMask { causal: layout.causal, key_padding: None };
        scratch.inv_sums.clear();
        for (r, mut row) in scores.rows_mut().into_iter().enumerate() {
            let end = mask.causal_end(rows.start + r, self.dims.nq, self.dims.nk);
            let visible = visible_prefix(layout, kept, end);
            let row = row
                .as_slice_mut()
                .ok_or_else(|| Error::InvalidArgument("score row not contiguous".into()))?;
            row[visible..].fill(0.0);
            let (max, sum) = exp_in_place(&mut row[..visible]);
            lse_blk[r] = if sum > 0.0 { max + sum.ln() } else { f32::NEG_INFINITY };
            scratch.inv_sums.push(if sum > 0.0 { 1.0 / sum } else { 0.0 });
        }
        // 4. O_blk = Σ_kb P[:, kb] V_kb, then divide by the row sums.
        let mut col = 0;
        for &kb in kept {
            let keys = layout.key_range(kb);
            let width = keys.len();
            let p = scores.slice(s![.., col..col + width]);
            general_mat_mul(1.0, &p, &self.v.slice(s![keys, ..]), 1.0, &mut out_blk);
            col += width;
        }
        for (mut row, &inv) in out_blk.rows_mut().into_iter().zip(&scratch.inv_sums) {
            row *= inv;
        }
        Ok(())
    }
}

/// How many of the gathered keys (the kept blocks' keys, in increasing order) lie before
/// `end`, i.e. are causally visible.
fn visible_prefix(layout: &BlockLayout, kept: &[usize], end: usize) -> usize {
    kept.iter().map(|&kb| layout.key_range(kb)).map(|keys| keys.end.min(end).saturating_sub(keys.start)).sum()
}

/// Replace each score x by e^{x − max}; return (max, Σ). An empty row gives (−∞, 0).
fn exp_in_place(row: &mut [f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    (max, sum)
}
