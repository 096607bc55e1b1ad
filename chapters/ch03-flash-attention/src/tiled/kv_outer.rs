//! The loop order of the original FlashAttention (Dao et al. 2022, Algorithm 1): key/value
//! tiles outside, query tiles inside.
//!
//! Each K_j, V_j tile is loaded once, but every query tile's running state — its output rows
//! O_i and its statistics m_i, l_i — lives in HBM between visits: for every (i, j) pair it is
//! read, updated with the scores of K_j, and written back. That costs Tc = ⌈Nk/Bc⌉ round
//! trips of O, m and l, against one write of O in the FlashAttention-2 order of
//! [`super::flash_attention_counted`]. Here O is kept normalised after every step, as in the
//! paper: `O_i ← (l_i · e^{m_i − m_new} · O_i + P̃_ij V_j) / l_new`.
//!
//! This version exists to be counted ([`crate::io_model`]); its output equals the other's.

use super::{OnlineSoftmax, TileSizes, TiledRun, key_tiles_visited, load, mask_tile, tile_view};
use crate::io_model::{HbmTraffic, Operand};
use attn_support::Result;
use attn_support::ndarray::linalg::general_mat_mul;
use attn_support::ndarray::{Array1, Array3, Array4, ArrayView4, Zip, s};
use ch02_scaled_dot_product::{SdpaMask, SdpaOptions, check_inputs};

// ANCHOR: kv_outer
/// Tiled attention in the original FlashAttention loop order, counted; same results as
/// [`super::flash_attention_cpu`] (output, lse, fully masked rows as zeros with lse = −∞).
pub fn flash_attention_kv_outer_counted(
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
    let mut traffic = HbmTraffic::default();
    // "HBM": the output and the per-row statistics, initialised to O = 0, m = −∞, l = 0.
    let mut out = Array4::<f32>::zeros(dims.out_shape());
    let mut m_hbm = Array3::<f32>::from_elem(dims.lse_shape(), f32::NEG_INFINITY);
    let mut l_hbm = Array3::<f32>::zeros(dims.lse_shape());
    traffic.write(Operand::Out, out.len());
    traffic.write(Operand::RowMax, m_hbm.len());
    traffic.write(Operand::RowSum, l_hbm.len());
    let (mut computed, mut skipped, mut on_chip_peak) = (0, 0, 0);
    let query_tiles: Vec<_> = TileSizes::ranges(dims.nq, tiles.br).collect();
    for (b, h) in (0..dims.batch).flat_map(|b| (0..dims.heads).map(move |h| (b, h))) {
        let (q_bh, k_bh, v_bh) =
            (q.slice(s![b, h, .., ..]), k.slice(s![b, h, .., ..]), v.slice(s![b, h, .., ..]));
        for (j, cols) in TileSizes::ranges(dims.nk, tiles.bc).enumerate() {
            // The query tiles for which key tile j is not entirely in the causal future.
            let visiting: Vec<_> = query_tiles
                .iter()
                .filter(|rows| j < key_tiles_visited(mask, rows, &dims, tiles.bc))
                .collect();
            skipped += (query_tiles.len() - visiting.len()) as u64;
            if visiting.is_empty() {
                continue;
            }
            let k_tile = load(&mut traffic, Operand::K, k_bh.slice(s![cols.clone(), ..]));
            let v_tile = load(&mut traffic, Operand::V, v_bh.slice(s![cols.clone(), ..]));
            for rows in visiting {
                computed += 1;
                let q_tile = load(&mut traffic, Operand::Q, q_bh.slice(s![rows.clone(), ..]));
                let mut o_tile = load(&mut traffic, Operand::Out, out.slice(s![b, h, rows.clone(), ..]));
                let m_tile: Array1<f32> = m_hbm.slice(s![b, h, rows.clone()]).to_owned();
                let l_tile: Array1<f32> = l_hbm.slice(s![b, h, rows.clone()]).to_owned();
                traffic.read(Operand::RowMax, rows.len());
                traffic.read(Operand::RowSum, rows.len());
                let mut scores = vec![0.0f32; rows.len() * cols.len()];
                let mut s_tile = tile_view(&mut scores, rows.len(), cols.len())?;
                general_mat_mul(scale, &q_tile, &k_tile.t(), 0.0, &mut s_tile);
                mask_tile(&mut s_tile, mask, &dims, b, rows, &cols);
                // Per row: rescale the stored (normalised) O_i back to Σ p̃ v measured against
                // m_new, i.e. multiply by l_old · e^{m_old − m_new}.
                let mut state: Vec<OnlineSoftmax> =
                    m_tile.iter().zip(&l_tile).map(|(&m, &l)| OnlineSoftmax { m, l }).collect();
                for ((s_row, row_state), mut o_row) in
                    scores.chunks_exact_mut(cols.len()).zip(&mut state).zip(o_tile.rows_mut())
                {
                    let l_old = row_state.l;
                    o_row *= l_old * row_state.update(s_row);
                }
                general_mat_mul(
                    1.0,
                    &tile_view(&mut scores, rows.len(), cols.len())?,
                    &v_tile,
                    1.0,
                    &mut o_tile,
                );
                // Normalise again by l_new (0 for a row that has seen only masked keys) and
                // write O_i, m_i, l_i back.
                for (mut o_row, row_state) in o_tile.rows_mut().into_iter().zip(&state) {
                    o_row *= row_state.finish().0;
                }
                let working_set =
                    q_tile.len() + o_tile.len() + 2 * rows.len() + k_tile.len() + v_tile.len() + scores.len();
                on_chip_peak = on_chip_peak.max(working_set);
                out.slice_mut(s![b, h, rows.clone(), ..]).assign(&o_tile);
                let (m_new, l_new): (Vec<f32>, Vec<f32>) = state.iter().map(|st| (st.m, st.l)).unzip();
                m_hbm.slice_mut(s![b, h, rows.clone()]).assign(&Array1::from(m_new));
                l_hbm.slice_mut(s![b, h, rows.clone()]).assign(&Array1::from(l_new));
                traffic.write(Operand::Out, o_tile.len());
                traffic.write(Operand::RowMax, rows.len());
                traffic.write(Operand::RowSum, rows.len());
            }
        }
    }
    // A last pass turns (m, l) into lse = m + ln l: reads both, writes lse.
    traffic.read(Operand::RowMax, m_hbm.len());
    traffic.read(Operand::RowSum, l_hbm.len());
    let lse = Zip::from(&m_hbm).and(&l_hbm).map_collect(|&m, &l| OnlineSoftmax { m, l }.finish().1);
    traffic.write(Operand::Lse, lse.len());
    Ok(TiledRun { out, lse, traffic, tiles_computed: computed, tiles_skipped: skipped, on_chip_peak })
}
// ANCHOR_END: kv_outer
