//! Decode attention in f64 on the CPU, the reference of the GPU tests: written from the
//! definition, independent of the kernel's splits, online softmax and base-2 exponentials.

use attn_support::ndarray::{Array3, ArrayView3, ArrayView4};
use attn_support::{Error, Result};

/// `o[b, hq] = Σ_{t < len_b} softmax_t(q[b, hq] · k[b, hq / G, t] / √d) · v[b, hq / G, t]` in
/// f64, for `q` `(batch, q_heads, d)` and `k`, `v` `(batch, kv_heads, capacity, d)` with
/// `G = q_heads / kv_heads`; a sequence of length 0 gives zeros.
pub fn decode_attention_reference(
    q: ArrayView3<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    lengths: &[u32],
) -> Result<Array3<f64>> {
    let (batch, q_heads, d) = q.dim();
    let (kb, kv_heads, capacity, kd) = k.dim();
    if k.shape() != v.shape() || kb != batch || kd != d || kv_heads == 0 || !q_heads.is_multiple_of(kv_heads)
    {
        return Err(Error::shapes(
            "decode attention: q (batch, kv_heads·G, d), K and V (batch, kv_heads, capacity, d)",
            "q",
            q.shape(),
            "K",
            k.shape(),
        ));
    }
    if lengths.len() != batch || lengths.iter().any(|&l| l as usize > capacity) {
        return Err(Error::InvalidArgument(format!(
            "lengths {lengths:?}: one per sequence, each at most the capacity {capacity}"
        )));
    }
    let group = q_heads / kv_heads;
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = Array3::zeros((batch, q_heads, d));
    for b in 0..batch {
        let len = lengths[b] as usize;
        for hq in 0..q_heads {
            let h = hq / group;
            let scores: Vec<f64> = (0..len)
                .map(|t| {
                    (0..d).map(|c| f64::from(q[[b, hq, c]]) * f64::from(k[[b, h, t, c]])).sum::<f64>() * scale
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for (t, w) in weights.iter().enumerate() {
                for c in 0..d {
                    out[[b, hq, c]] += w / total * f64::from(v[[b, h, t, c]]);
                }
            }
        }
    }
    Ok(out)
}
