//! An independent f64 reference for the tests: plain loops, written differently from
//! [`crate::sdpa()`] on purpose. It gathers the visible keys of each query first (deciding
//! visibility with its own formula), computes the log-sum-exp explicitly and takes the weights
//! as `exp(s_j − lse)`, so a shared mistake with the f32 code is unlikely.

use crate::mask::SdpaMask;
use attn_support::ndarray::{Array3, Array4, ArrayView4};
use attn_support::{Error, Result};

/// Reference attention in f64: (output (B,H,Nq,dv), lse (B,H,Nq)). `scale` defaults to 1/√d.
/// A query with no visible key gets zeros and lse = −∞.
pub fn sdpa_reference(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    scale: Option<f64>,
) -> Result<(Array4<f64>, Array3<f64>)> {
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if qs.contains(&0) || ks.contains(&0) || vs.contains(&0) {
        return Err(Error::InvalidArgument(format!("empty input: Q {qs:?}, K {ks:?}, V {vs:?}")));
    }
    if qs[0] != ks[0] || qs[1] != ks[1] || qs[3] != ks[3] {
        return Err(Error::shapes("reference: Q vs K", "Q", qs, "K", ks));
    }
    if ks[..3] != vs[..3] {
        return Err(Error::shapes("reference: K vs V", "K", ks, "V", vs));
    }
    let (batch, heads, nq, d) = (qs[0], qs[1], qs[2], qs[3]);
    let (nk, dv) = (ks[2], vs[3]);
    if let Some(pad) = &mask.key_padding
        && pad.shape() != [batch, nk]
    {
        return Err(Error::shapes(
            "reference: key padding",
            "key_padding",
            pad.shape(),
            "expected",
            &[batch, nk],
        ));
    }
    let scale = scale.unwrap_or(1.0 / (d as f64).sqrt());
    let mut out = Array4::<f64>::zeros((batch, heads, nq, dv));
    let mut lse = Array3::<f64>::from_elem((batch, heads, nq), f64::NEG_INFINITY);
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..nq {
                // Causal, bottom-right aligned: the offset between query and key positions is
                // Nk − Nq, and key j is in the past of query i when j − i ≤ Nk − Nq.
                let visible: Vec<usize> = (0..nk)
                    .filter(|&j| !mask.causal || (j as i64 - i as i64) <= nk as i64 - nq as i64)
                    .filter(|&j| mask.key_padding.as_ref().is_none_or(|pad| !pad[[b, j]]))
                    .collect();
                if visible.is_empty() {
                    continue; // zeros and lse = −∞, as initialised
                }
                let logits: Vec<f64> = visible
                    .iter()
                    .map(|&j| {
                        scale * (0..d).map(|c| q[[b, h, i, c]] as f64 * k[[b, h, j, c]] as f64).sum::<f64>()
                    })
                    .collect();
                let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let row_lse = m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
                lse[[b, h, i]] = row_lse;
                for (&j, l) in visible.iter().zip(&logits) {
                    let weight = (l - row_lse).exp();
                    for c in 0..dv {
                        out[[b, h, i, c]] += weight * v[[b, h, j, c]] as f64;
                    }
                }
            }
        }
    }
    Ok((out, lse))
}

/// Softmax of one row in f64 (for the overflow experiment's ground truth).
pub fn softmax_reference(logits: &[f32]) -> Vec<f64> {
    let m = logits.iter().map(|&x| x as f64).fold(f64::NEG_INFINITY, f64::max);
    let lse = m + logits.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
    logits.iter().map(|&x| (x as f64 - lse).exp()).collect()
}
