//! Independent f64 references for the tests: plain loops, written differently from the f32
//! code on purpose. The softmax reference decides visibility key by key with its own formula
//! (not [`MaskSpec::visible_keys`]'s interval) and takes the weights as `exp(s_j − lse)`; the
//! projection reference multiplies element by element instead of calling a GEMM; the epilogue
//! reference builds `rotate_half(x)` element by element from the formula.

use crate::qkv_projection::QkvDims;
use crate::softmax_fusion::{MaskSpec, check_scores};
use attn_support::ndarray::{Array3, Array4, ArrayView2, ArrayView3, ArrayView4, s};
use attn_support::{Error, Result};

/// `softmax(S · scale + M)` in f64, row by row; a query that sees no key gets zeros.
pub fn scale_mask_softmax_reference(
    scores: ArrayView4<f32>,
    scale: f64,
    mask: &MaskSpec,
) -> Result<Array4<f64>> {
    let shape = check_scores(&scores, scale as f32, mask)?;
    let (nq, nk) = (shape.nq as i64, shape.nk as i64);
    let mut probs = Array4::<f64>::zeros(scores.raw_dim());
    for b in 0..shape.batch {
        for h in 0..shape.heads {
            for i in 0..shape.nq {
                let row = scores.slice(s![b, h, i, ..]);
                // The query's position in the key sequence, with the causal diagonal bottom-right.
                let pos = i as i64 + nk - nq;
                let visible = |j: i64| {
                    (!mask.causal || j <= pos)
                        && mask.window.is_none_or(|w| j > pos - w as i64)
                        && mask.key_lengths.as_ref().is_none_or(|lengths| j < lengths[b] as i64)
                };
                let logits: Vec<(usize, f64)> = (0..shape.nk)
                    .filter(|&j| visible(j as i64))
                    .map(|j| (j, scale * row[j] as f64))
                    .collect();
                if logits.is_empty() {
                    continue; // zeros, as initialised
                }
                let max = logits.iter().map(|&(_, l)| l).fold(f64::NEG_INFINITY, f64::max);
                let lse = max + logits.iter().map(|&(_, l)| (l - max).exp()).sum::<f64>().ln();
                for (j, l) in logits {
                    probs[[b, h, i, j]] = (l - lse).exp();
                }
            }
        }
    }
    Ok(probs)
}

/// Q (B, H, N, d), K and V (B, H_kv, N, d) in f64: `q[b,h,n,c] = Σ_k x[b,n,k] · W_q[h·d + c, k]`.
pub fn qkv_reference(
    x: ArrayView3<f32>,
    w_q: ArrayView2<f32>,
    w_k: ArrayView2<f32>,
    w_v: ArrayView2<f32>,
    dims: QkvDims,
) -> Result<[Array4<f64>; 3]> {
    let (batch, seq, d_model) = x.dim();
    if d_model != dims.d_model {
        return Err(Error::shapes("reference: X vs d_model", "X", x.shape(), "d_model", &[dims.d_model]));
    }
    let d = dims.head_dim;
    let project = |w: ArrayView2<f32>, heads: usize| {
        Array4::from_shape_fn((batch, heads, seq, d), |(b, h, n, c)| {
            (0..d_model).map(|k| x[[b, n, k]] as f64 * w[[h * d + c, k]] as f64).sum::<f64>()
        })
    };
    Ok([project(w_q, dims.n_heads), project(w_k, dims.n_kv_heads), project(w_v, dims.n_kv_heads)])
}

/// The QKV epilogue in f64: q (H, n, d), rotated k and plain v (H_kv, n, d) for the n tokens of
/// `qkv` (n, C) at positions `start …`. Written from the formula `x·cos + rotate_half(x)·sin`
/// with `rotate_half` built as a vector, element by element from the fused output's column
/// index `slot·d + c`, not through [`crate::rotate_half_with_table`].
pub fn qkv_epilogue_reference(
    qkv: ArrayView2<f32>,
    dims: QkvDims,
    cos: ArrayView2<f32>,
    sin: ArrayView2<f32>,
    start: usize,
) -> [Array3<f64>; 3] {
    let (n, d) = (qkv.nrows(), dims.head_dim);
    let half = d / 2;
    let rope = |slot: usize, t: usize, c: usize| {
        let x = |j: usize| qkv[[t, slot * d + j]] as f64;
        let rotated_half = if c < half { -x(c + half) } else { x(c - half) };
        x(c) * cos[[start + t, c]] as f64 + rotated_half * sin[[start + t, c]] as f64
    };
    let (h_q, hkv) = (dims.n_heads, dims.n_kv_heads);
    [
        Array3::from_shape_fn((h_q, n, d), |(h, t, c)| rope(h, t, c)),
        Array3::from_shape_fn((hkv, n, d), |(h, t, c)| rope(h_q + h, t, c)),
        Array3::from_shape_fn((hkv, n, d), |(h, t, c)| qkv[[t, (h_q + hkv + h) * d + c]] as f64),
    ]
}
