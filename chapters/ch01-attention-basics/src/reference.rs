//! An independent f64 reference for the tests and the GPU checks.
//!
//! It is written differently from the code it checks, so that one mistake cannot hide in
//! both: it works in f64 throughout, computes the log of the softmax denominator
//! (log-sum-exp) first, and forms each weight as exp(s_j − lse) without a separate division.

use crate::cpu::AttentionDims;
use attn_support::Result;
use attn_support::ndarray::{Array2, ArrayView2};

// ANCHOR: reference
/// log Σ_j exp(s_j), computed as m + log Σ_j exp(s_j − m) with m = max_j s_j so no term overflows.
pub fn log_sum_exp(scores: &[f64]) -> f64 {
    let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + scores.iter().map(|&s| (s - m).exp()).sum::<f64>().ln()
}

/// softmax(Q Kᵀ) V in f64. Same shape rules and errors as [`crate::cpu::attention`].
pub fn attention_reference_f64(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
) -> Result<Array2<f64>> {
    let AttentionDims { n_q, n_k, d, d_v } = AttentionDims::from_shapes(q.shape(), k.shape(), v.shape())?;
    // Widen everything to f64 first, in row-major order.
    let widen = |a: ArrayView2<f32>| a.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let (q, k, v) = (widen(q), widen(k), widen(v));
    let mut out = Array2::<f64>::zeros((n_q, d_v));
    let mut scores = vec![0.0f64; n_k];
    for i in 0..n_q {
        for (j, s) in scores.iter_mut().enumerate() {
            *s = (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum();
        }
        let lse = log_sum_exp(&scores);
        // weight_j = exp(s_j) / Σ_l exp(s_l) = exp(s_j − lse): no division needed.
        let mut row = out.row_mut(i);
        for (j, &s) in scores.iter().enumerate() {
            let weight = (s - lse).exp();
            for (c, o) in row.iter_mut().enumerate() {
                *o += weight * v[j * d_v + c];
            }
        }
    }
    Ok(out)
}
// ANCHOR_END: reference
