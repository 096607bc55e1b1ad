//! The same attention as [`crate::sdpa()`], written as the formula reads: loops over flat
//! row-major slices, one query row at a time, with a scalar dot product per score and a
//! scalar weighted sum per output element. It is correct (same masks, same stable softmax)
//! and slow: the GEMM in `sdpa` reuses each loaded value from registers and cache many times
//! and uses SIMD; these loops reload everything and run one multiply-add at a time. The
//! `ch02` binary measures the difference.

use crate::mask::SdpaMask;
use crate::sdpa::{SdpaDims, SdpaOptions, check_inputs};
use crate::softmax::softmax_row_in_place;
use attn_support::ndarray::{Array4, ArrayView4};
use attn_support::{Error, Result};

/// [`crate::sdpa_with_options`] by plain loops (the output only).
pub fn sdpa_naive(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    options: &SdpaOptions,
) -> Result<Array4<f32>> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), mask)?;
    let scale = options.scale_for(dims.head_dim)?;
    // Flat row-major slices (copies only when the inputs are not already row-major).
    let (q, k, v) = (q.as_standard_layout(), k.as_standard_layout(), v.as_standard_layout());
    let contiguous = || Error::InvalidArgument("standard layout is contiguous".into());
    let (q, k, v) = (
        q.as_slice().ok_or_else(contiguous)?,
        k.as_slice().ok_or_else(contiguous)?,
        v.as_slice().ok_or_else(contiguous)?,
    );
    let mut out = vec![0.0f32; dims.batch * dims.heads * dims.nq * dims.v_dim];
    sdpa_naive_slices(q, k, v, &dims, mask, scale, &mut out);
    Array4::from_shape_vec(dims.out_shape(), out).map_err(|e| Error::InvalidArgument(e.to_string()))
}

// ANCHOR: naive
/// Loops over row-major slices q (B·H·Nq·d), k (B·H·Nk·d), v (B·H·Nk·dv) into out (B·H·Nq·dv).
/// The slices must have the lengths `dims` implies ([`sdpa_naive`] guarantees it).
pub fn sdpa_naive_slices(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: &SdpaDims,
    mask: &SdpaMask,
    scale: f32,
    out: &mut [f32],
) {
    let SdpaDims { batch, heads, nq, nk, head_dim: d, v_dim: dv } = *dims;
    let mut scores = vec![0.0f32; nk];
    for b in 0..batch {
        for h in 0..heads {
            let bh = b * heads + h;
            for i in 0..nq {
                let q_row = &q[(bh * nq + i) * d..][..d];
                // s_j = scale · Σ_c q_c k_jc for every visible key, −∞ for the others.
                for (j, s) in scores.iter_mut().enumerate() {
                    *s = if mask.is_visible(b, i, j, nq, nk) {
                        let k_row = &k[(bh * nk + j) * d..][..d];
                        let mut dot = 0.0f32;
                        for c in 0..d {
                            dot += q_row[c] * k_row[c];
                        }
                        dot * scale
                    } else {
                        f32::NEG_INFINITY
                    };
                }
                softmax_row_in_place(&mut scores);
                // o_c = Σ_j p_j v_jc, one output element at a time.
                let out_row = &mut out[(bh * nq + i) * dv..][..dv];
                for (c, o) in out_row.iter_mut().enumerate() {
                    let mut acc = 0.0f32;
                    for (j, &p) in scores.iter().enumerate() {
                        acc += p * v[(bh * nk + j) * dv + c];
                    }
                    *o = acc;
                }
            }
        }
    }
}
// ANCHOR_END: naive
