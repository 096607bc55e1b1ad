//! The CPU counterpart of the Fused backend: what chapter 2's kernel does for one query row,
//! written as a loop over rows. Each row's Nk scores live in one small buffer (the kernel's
//! shared memory), and never in an Nq × Nk matrix:
//!
//! `s_j = scale·log₂e · q·k_j` (masked → −∞), `m = max_j s_j`, `p_j = 2^(s_j − m)`,
//! `o = Σ_j p_j v_j / Σ_j p_j`, `lse = ln 2 · (m + log₂ Σ_j p_j)`.
//!
//! A row that sees no key gets zeros and lse = −∞, as in chapter 2.

use attn_support::Result;
use attn_support::ndarray::{Array3, Array4, ArrayView4, Axis, s};
use ch02_scaled_dot_product::{SdpaMask, SdpaOptions, check_inputs, log2_units};

// ANCHOR: fused_rows
/// Attention one query row at a time with a row buffer of Nk scores; returns (output
/// (B,H,Nq,dv), lse (B,H,Nq)).
pub fn fused_rows_cpu(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    options: &SdpaOptions,
) -> Result<(Array4<f32>, Array3<f32>)> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), mask)?;
    let scale_log2e = log2_units(options.scale_for(dims.head_dim)?);
    let mut out = Array4::<f32>::zeros(dims.out_shape());
    let mut lse = Array3::<f32>::from_elem(dims.lse_shape(), f32::NEG_INFINITY);
    let mut row = vec![f32::NEG_INFINITY; dims.nk];
    for b in 0..dims.batch {
        let padding = mask.key_padding.as_ref().map(|pad| pad.index_axis(Axis(0), b));
        for h in 0..dims.heads {
            let (k_bh, v_bh) = (k.slice(s![b, h, .., ..]), v.slice(s![b, h, .., ..]));
            for i in 0..dims.nq {
                let q_i = q.slice(s![b, h, i, ..]);
                let end = mask.causal_end(i, dims.nq, dims.nk);
                // Scores in log2 units; masked keys are −∞ and so get weight 2^(−∞) = 0.
                for (j, s) in row.iter_mut().enumerate() {
                    let padded = padding.as_ref().is_some_and(|pad| pad[j]);
                    *s = if j < end && !padded {
                        scale_log2e * q_i.dot(&k_bh.row(j))
                    } else {
                        f32::NEG_INFINITY
                    };
                }
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if max == f32::NEG_INFINITY {
                    continue; // no visible key: zeros and lse = −∞, as initialised
                }
                let mut sum = 0.0f32;
                let mut o = out.slice_mut(s![b, h, i, ..]);
                for (j, &s) in row.iter().enumerate() {
                    let p = (s - max).exp2();
                    if p > 0.0 {
                        sum += p;
                        o.scaled_add(p, &v_bh.row(j));
                    }
                }
                o /= sum;
                lse[[b, h, i]] = (max + sum.log2()) * std::f32::consts::LN_2;
            }
        }
    }
    Ok((out, lse))
}
// ANCHOR_END: fused_rows
