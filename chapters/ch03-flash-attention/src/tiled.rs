//! Attention computed tile by tile with the online softmax: FlashAttention's forward pass on
//! the CPU.
//!
//! Standard attention materialises the (Nq × Nk) scores S = Q Kᵀ·scale, then P = softmax(S),
//! then O = P V. FlashAttention never holds more than one (Br × Bc) tile of S: for each tile
//! of Br query rows it walks over the keys Bc at a time and keeps, per row, three running
//! quantities in fast memory:
//!
//! - `m`, the largest score seen so far;
//! - `l = Σ_j e^{s_j − m}` over the keys seen so far;
//! - `O = Σ_j e^{s_j − m} v_j`, the unnormalised output.
//!
//! When a new block of scores raises the maximum from m to m′, everything accumulated so far
//! was measured against the old m: multiplying `l` and `O` by `e^{m − m′}` (the *correction*)
//! rescales it to m′. After the last block, `O / l` is exactly `softmax(s) V` and
//! `m + ln l` the row's log-sum-exp. No approximation is involved: the result equals
//! chapter 2's [`ch02_scaled_dot_product::sdpa_with_lse`] up to f32 rounding.
//!
//! The loop order is FlashAttention-2's (query tiles outside, key tiles inside), the one of
//! the GPU kernel: a query tile is loaded once and its output written once. The original
//! FlashAttention order (key tiles outside) is in [`kv_outer`], for the IO comparison of
//! [`crate::io_model`]. Both count every element they move between the input/output arrays
//! ("HBM") and their tile buffers ("on-chip").

pub mod kv_outer;

use crate::io_model::{HbmTraffic, Operand};
use attn_support::ndarray::linalg::general_mat_mul;
use attn_support::ndarray::{Array2, Array3, Array4, ArrayView2, ArrayView4, ArrayViewMut2, s};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, SdpaOptions, check_inputs};
use std::ops::Range;

/// Tile sizes: Br query rows by Bc keys. Any sizes ≥ 1 work, including sizes that do not
/// divide the sequence lengths or exceed them (the last tile is then shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileSizes {
    /// Query rows per tile.
    pub br: usize,
    /// Keys per tile.
    pub bc: usize,
}

impl TileSizes {
    /// Checked constructor: both sizes must be at least 1.
    pub fn new(br: usize, bc: usize) -> Result<TileSizes> {
        let tiles = TileSizes { br, bc };
        tiles.check()?;
        Ok(tiles)
    }

    /// Both sizes must be at least 1 (a tile of zero rows or keys makes no progress).
    pub fn check(&self) -> Result<()> {
        if self.br == 0 || self.bc == 0 {
            return Err(Error::InvalidArgument(format!(
                "tile sizes must be ≥ 1, got Br = {} query rows × Bc = {} keys",
                self.br, self.bc
            )));
        }
        Ok(())
    }

    /// The row ranges of the tiles that cover `len` positions in steps of `size`.
    pub fn ranges(len: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
        (0..len).step_by(size.max(1)).map(move |start| start..(start + size).min(len))
    }
}

// ANCHOR: online_softmax
/// The running state of one row's online softmax: the largest score seen so far `m` and
/// `l = Σ e^{s − m}` over the scores seen so far. Starts at (−∞, 0): nothing seen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnlineSoftmax {
    pub m: f32,
    pub l: f32,
}

impl Default for OnlineSoftmax {
    fn default() -> Self {
        OnlineSoftmax { m: f32::NEG_INFINITY, l: 0.0 }
    }
}

impl OnlineSoftmax {
    /// Fold one block of scores (masked ones −∞) into the state. The block is replaced in
    /// place by its unnormalised weights `p̃_j = e^{s_j − m_new}`. Returns the correction
    /// `e^{m_old − m_new}` by which every sum accumulated before this block (such as the
    /// running output `Σ p̃_j v_j`) must be multiplied to be measured against `m_new` too.
    pub fn update(&mut self, block: &mut [f32]) -> f32 {
        let block_max = block.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
        let m_new = self.m.max(block_max);
        if m_new == f32::NEG_INFINITY {
            // Every score so far is masked: no weight anywhere, nothing to rescale
            // (e^{−∞ − (−∞)} would be NaN).
            block.fill(0.0);
            return 1.0;
        }
        // e^{m_old − m_new} ≤ 1; it is 0 when m_old = −∞ (l and O are still 0 then).
        let correction = (self.m - m_new).exp();
        let mut block_sum = 0.0f32;
        for s in block.iter_mut() {
            *s = (*s - m_new).exp();
            block_sum += *s;
        }
        self.l = self.l * correction + block_sum;
        self.m = m_new;
        correction
    }

    /// What the final output row is multiplied by, `1/l`, and the row's log-sum-exp
    /// `m + ln l`. A row that saw no visible key gets (0, −∞): a zero output row, as chapter 2.
    pub fn finish(&self) -> (f32, f32) {
        if self.l > 0.0 { (1.0 / self.l, self.m + self.l.ln()) } else { (0.0, f32::NEG_INFINITY) }
    }
}
// ANCHOR_END: online_softmax

/// The state of the online softmax of one row after one block, for the step-by-step figure.
#[derive(Clone, Debug, PartialEq)]
pub struct OnlineStep {
    /// How many scores have been folded in so far.
    pub keys_seen: usize,
    pub m: f32,
    pub l: f32,
    /// `e^{m_old − m_new}` of this step.
    pub correction: f32,
    /// The output so far, normalised: `Σ_{j seen} e^{s_j − m} v_j / l`, i.e. the softmax
    /// average of the values seen so far.
    pub output: Vec<f32>,
    /// The weight each key would get if the row stopped here: `e^{s_j − m} / l` for the keys
    /// seen, 0 for the others.
    pub weights: Vec<f32>,
}

// ANCHOR: online_steps
/// Run the online softmax over one row of scores, `block` scores at a time, with one value
/// vector per key (`values[j]`, all of one length), and record the state after each block.
/// The last step's output and weights are `softmax(scores) · values` and `softmax(scores)`.
pub fn online_softmax_steps(scores: &[f32], values: &[Vec<f32>], block: usize) -> Result<Vec<OnlineStep>> {
    let dv = values.first().map_or(0, Vec::len);
    if block == 0 || scores.len() != values.len() || values.iter().any(|v| v.len() != dv) {
        return Err(Error::InvalidArgument(format!(
            "online softmax: need block ≥ 1 (got {block}) and one value vector of one length per score \
             (got {} scores, {} values)",
            scores.len(),
            values.len()
        )));
    }
    let mut state = OnlineSoftmax::default();
    let mut acc = vec![0.0f32; dv]; // Σ p̃_j v_j, unnormalised
    let mut steps = Vec::new();
    for keys in TileSizes::ranges(scores.len(), block) {
        let mut p = scores[keys.clone()].to_vec();
        let correction = state.update(&mut p);
        for (c, a) in acc.iter_mut().enumerate() {
            *a = *a * correction + p.iter().zip(&values[keys.clone()]).map(|(p, v)| p * v[c]).sum::<f32>();
        }
        let (inv_l, _) = state.finish();
        let weights = (0..scores.len())
            // inv_l = 0 while every score seen is masked (m = −∞, where e^{s − m} is NaN).
            .map(|j| if j < keys.end && inv_l > 0.0 { (scores[j] - state.m).exp() * inv_l } else { 0.0 })
            .collect();
        steps.push(OnlineStep {
            keys_seen: keys.end,
            m: state.m,
            l: state.l,
            correction,
            output: acc.iter().map(|a| a * inv_l).collect(),
            weights,
        });
    }
    Ok(steps)
}
// ANCHOR_END: online_steps

/// A tiled run with what it moved: the output (B, H, Nq, dv), the log-sum-exp (B, H, Nq),
/// the elements read from and written to the input/output arrays, the tiles computed and
/// the tiles skipped by the causal mask, and the largest on-chip working set (elements).
#[derive(Clone, Debug)]
pub struct TiledRun {
    pub out: Array4<f32>,
    pub lse: Array3<f32>,
    pub traffic: HbmTraffic,
    pub tiles_computed: u64,
    pub tiles_skipped: u64,
    pub on_chip_peak: usize,
}

/// Tiled attention with the online softmax, FlashAttention-2 loop order; returns
/// (output (B,H,Nq,dv), log-sum-exp (B,H,Nq)), equal to chapter 2's `sdpa_with_options`
/// for every tile size. A fully masked row gives zeros and lse = −∞.
pub fn flash_attention_cpu(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    tiles: TileSizes,
    options: &SdpaOptions,
) -> Result<(Array4<f32>, Array3<f32>)> {
    flash_attention_counted(q, k, v, mask, tiles, options).map(|run| (run.out, run.lse))
}

/// Copy a tile from "HBM" (an input array) into an "on-chip" buffer, counting its elements.
pub(crate) fn load(traffic: &mut HbmTraffic, operand: Operand, tile: ArrayView2<f32>) -> Array2<f32> {
    traffic.read(operand, tile.len());
    tile.to_owned()
}

// ANCHOR: causal_skip
/// How many key tiles query tile `rows` must visit: a key tile that starts at or after the
/// causal end of the tile's *last* row (the row that sees the most keys) is masked for every
/// row of the tile and is skipped. Without a causal mask every key tile is visited.
pub fn key_tiles_visited(mask: &SdpaMask, rows: &Range<usize>, dims: &SdpaDims, bc: usize) -> usize {
    if rows.is_empty() || bc == 0 {
        return 0;
    }
    mask.causal_end(rows.end - 1, dims.nq, dims.nk).div_ceil(bc)
}
// ANCHOR_END: causal_skip

/// A row-major (rows × cols) view of a score buffer.
pub(crate) fn tile_view(buf: &mut [f32], rows: usize, cols: usize) -> Result<ArrayViewMut2<'_, f32>> {
    ArrayViewMut2::from_shape((rows, cols), buf)
        .map_err(|e| Error::InvalidArgument(format!("score tile: {e}")))
}

/// Set the masked scores of a (rows × cols) score tile to −∞: keys at or after each row's
/// causal end, and padded keys of batch entry `b`.
pub(crate) fn mask_tile(
    scores: &mut ArrayViewMut2<f32>,
    mask: &SdpaMask,
    dims: &SdpaDims,
    b: usize,
    rows: &Range<usize>,
    cols: &Range<usize>,
) {
    for (i, mut row) in rows.clone().zip(scores.rows_mut()) {
        let end = mask.causal_end(i, dims.nq, dims.nk);
        for (j, s) in cols.clone().zip(row.iter_mut()) {
            let padded = mask.key_padding.as_ref().is_some_and(|pad| pad[[b, j]]);
            if j >= end || padded {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

// ANCHOR: flash_cpu
/// [`flash_attention_cpu`] with the count of every element it moves (see [`TiledRun`]).
pub fn flash_attention_counted(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    tiles: TileSizes,
    options: &SdpaOptions,
) -> Result<TiledRun> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), mask)?;
    tiles.check()?;
    let scale = options.scale_for(dims.head_dim)?;
    let mut out = Array4::<f32>::zeros(dims.out_shape());
    let mut lse = Array3::<f32>::zeros(dims.lse_shape());
    let (mut traffic, mut computed, mut skipped, mut on_chip_peak) = (HbmTraffic::default(), 0, 0, 0);
    let key_tiles = dims.nk.div_ceil(tiles.bc);
    for (b, h) in (0..dims.batch).flat_map(|b| (0..dims.heads).map(move |h| (b, h))) {
        let (q_bh, k_bh, v_bh) =
            (q.slice(s![b, h, .., ..]), k.slice(s![b, h, .., ..]), v.slice(s![b, h, .., ..]));
        for rows in TileSizes::ranges(dims.nq, tiles.br) {
            // On chip for this query tile: Q_i, the output accumulator O_i, and (m, l) per row.
            let q_tile = load(&mut traffic, Operand::Q, q_bh.slice(s![rows.clone(), ..]));
            let mut o_acc = Array2::<f32>::zeros((rows.len(), dims.v_dim));
            let mut state = vec![OnlineSoftmax::default(); rows.len()];
            let visited = key_tiles_visited(mask, &rows, &dims, tiles.bc);
            skipped += (key_tiles - visited) as u64;
            for cols in TileSizes::ranges(dims.nk, tiles.bc).take(visited) {
                computed += 1;
                let k_tile = load(&mut traffic, Operand::K, k_bh.slice(s![cols.clone(), ..]));
                let v_tile = load(&mut traffic, Operand::V, v_bh.slice(s![cols.clone(), ..]));
                // S_ij = Q_i K_jᵀ · scale, then the mask; a row-major (rows × cols) buffer.
                let mut scores = vec![0.0f32; rows.len() * cols.len()];
                let mut s_tile = tile_view(&mut scores, rows.len(), cols.len())?;
                general_mat_mul(scale, &q_tile, &k_tile.t(), 0.0, &mut s_tile);
                mask_tile(&mut s_tile, mask, &dims, b, &rows, &cols);
                // Per row: p̃ = e^{s − m_new} in place, and O ← O · e^{m_old − m_new}.
                for ((s_row, row_state), mut o_row) in
                    scores.chunks_exact_mut(cols.len()).zip(&mut state).zip(o_acc.rows_mut())
                {
                    o_row *= row_state.update(s_row);
                }
                // O_i += P̃_ij V_j
                general_mat_mul(
                    1.0,
                    &tile_view(&mut scores, rows.len(), cols.len())?,
                    &v_tile,
                    1.0,
                    &mut o_acc,
                );
                let working_set =
                    q_tile.len() + o_acc.len() + 2 * state.len() + k_tile.len() + v_tile.len() + scores.len();
                on_chip_peak = on_chip_peak.max(working_set);
            }
            // O_i / l and lse = m + ln l, then one write of each to HBM.
            for (i, (mut o_row, row_state)) in rows.clone().zip(o_acc.rows_mut().into_iter().zip(&state)) {
                let (inv_l, row_lse) = row_state.finish();
                o_row *= inv_l;
                lse[[b, h, i]] = row_lse;
            }
            out.slice_mut(s![b, h, rows.clone(), ..]).assign(&o_acc);
            traffic.write(Operand::Out, o_acc.len());
            traffic.write(Operand::Lse, rows.len());
        }
    }
    Ok(TiledRun { out, lse, traffic, tiles_computed: computed, tiles_skipped: skipped, on_chip_peak })
}
// ANCHOR_END: flash_cpu
