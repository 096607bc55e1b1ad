//! Batched multi-head scaled dot-product attention on the CPU.
//!
//! For each (batch b, head h), with Q (Nq × d), K (Nk × d), V (Nk × dv):
//!
//! `S = Q Kᵀ / √d`,  `P = softmax_row(S + mask)`,  `O = P V`,  `lse_i = ln Σ_j e^{S_ij}`.
//!
//! Two GEMMs (ndarray's `general_mat_mul`, i.e. the matrixmultiply crate) do the O(N²d) work;
//! between them a row-wise pass applies the mask and the stable softmax in place. The (Nq × Nk)
//! score matrix of one head is the only intermediate, reused across heads.
//!
//! The numerical tricks, each saving a pass over the N² scores or making one cheaper:
//! - the scale 1/√d and the factor log₂e ride on the first GEMM's alpha;
//! - scores are in log2 units, so the softmax needs 2^x (a vectorisable polynomial,
//!   [`crate::softmax::exp2_nonpositive`]) instead of a library `exp` per element;
//! - the max is subtracted before exponentiating (no overflow, see [`crate::softmax`]);
//! - masked scores are −∞, so their weights are exactly 0 without any branch in the softmax;
//! - the division by Σ is applied to the Nq × dv output, not to the Nq × Nk weights.

use crate::mask::SdpaMask;
use crate::softmax::softmax_log2_unnormalised;
use attn_support::ndarray::linalg::general_mat_mul;
use attn_support::ndarray::{Array3, Array4, ArrayView4, ArrayViewMut1, ArrayViewMut2, Axis, s};
use attn_support::{Error, Result};

/// The sizes of one attention call, read from Q (B,H,Nq,d), K (B,H,Nk,d), V (B,H,Nk,dv).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdpaDims {
    pub batch: usize,
    pub heads: usize,
    pub nq: usize,
    pub nk: usize,
    pub head_dim: usize,
    pub v_dim: usize,
}

impl SdpaDims {
    /// Shape of the output, (B, H, Nq, dv).
    pub fn out_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.nq, self.v_dim]
    }

    /// Shape of the log-sum-exp, (B, H, Nq).
    pub fn lse_shape(&self) -> [usize; 3] {
        [self.batch, self.heads, self.nq]
    }

    /// Multiply-adds counted as 2 FLOPs, masks ignored: 2·Nq·Nk·d for Q Kᵀ plus 2·Nq·Nk·dv
    /// for P V, per (batch, head). With d = dv and Nq = Nk = N this is 4·B·H·N²·d.
    pub fn flops(&self) -> f64 {
        let bh = (self.batch * self.heads) as f64;
        2.0 * bh * self.nq as f64 * self.nk as f64 * (self.head_dim + self.v_dim) as f64
    }
}

/// Options of an attention call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SdpaOptions {
    /// The factor on Q Kᵀ; `None` means 1/√d.
    pub scale: Option<f32>,
}

impl SdpaOptions {
    /// The scale to use for head dim `d`: the explicit one if set, else 1/√d.
    pub fn scale_for(&self, head_dim: usize) -> Result<f32> {
        match self.scale {
            Some(s) if !s.is_finite() => {
                Err(Error::InvalidArgument(format!("scale must be finite, got {s}")))
            }
            Some(s) => Ok(s),
            None => Ok((1.0 / (head_dim as f64).sqrt()) as f32),
        }
    }
}

fn check_rank4(name: &str, shape: &[usize]) -> Result<()> {
    if shape.len() != 4 || shape.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "{name} must be (batch, heads, seq, dim) with every size ≥ 1, got shape {shape:?}"
        )));
    }
    Ok(())
}

/// Check Q against K and the mask; returns the sizes with `v_dim` = 0.
fn check_qk(q: &[usize], k: &[usize], mask: &SdpaMask) -> Result<SdpaDims> {
    check_rank4("Q", q)?;
    check_rank4("K", k)?;
    if q[..2] != k[..2] {
        return Err(Error::shapes("Q and K must have the same batch and heads", "Q", q, "K", k));
    }
    if q[3] != k[3] {
        return Err(Error::shapes("Q and K must have the same head dim", "Q", q, "K", k));
    }
    mask.check(q[0], k[2])?;
    Ok(SdpaDims { batch: q[0], heads: q[1], nq: q[2], nk: k[2], head_dim: q[3], v_dim: 0 })
}

/// Check the shapes of Q (B,H,Nq,d), K (B,H,Nk,d), V (B,H,Nk,dv) and the mask; errors name
/// both disagreeing shapes.
pub fn check_inputs(q: &[usize], k: &[usize], v: &[usize], mask: &SdpaMask) -> Result<SdpaDims> {
    let dims = check_qk(q, k, mask)?;
    check_rank4("V", v)?;
    if k[..3] != v[..3] {
        return Err(Error::shapes("K and V must have the same batch, heads and keys", "K", k, "V", v));
    }
    Ok(SdpaDims { v_dim: v[3], ..dims })
}

/// `softmax(Q Kᵀ · scale + mask) V` with scale 1/√d. A query that sees no key gets a row of
/// zeros (see [`sdpa_with_options`]).
pub fn sdpa(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
) -> Result<Array4<f32>> {
    sdpa_with_options(q, k, v, mask, &SdpaOptions::default()).map(|(out, _)| out)
}

/// [`sdpa()`] and the log-sum-exp of each row of scaled, masked scores, shape (B, H, Nq).
pub fn sdpa_with_lse(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
) -> Result<(Array4<f32>, Array3<f32>)> {
    sdpa_with_options(q, k, v, mask, &SdpaOptions::default())
}

/// The softmax scale in log2 units, `scale·log₂e`: since e^x = 2^(x·log₂e), scores multiplied by
/// it need only a bare 2^x (`exp2f` in every kernel of the book). Computed in f64, rounded once.
pub fn log2_units(scale: f32) -> f32 {
    (scale as f64 * std::f64::consts::LOG2_E) as f32
}

// ANCHOR: sdpa
/// Attention with options; returns (output (B,H,Nq,dv), log-sum-exp (B,H,Nq)).
///
/// A fully masked query row (every key padded, or a causal row with Nq > Nk that sees no key)
/// gets an output row of zeros and lse = −∞. The formula itself is 0/0 there; PyTorch's math
/// path returns NaN, which poisons every sum it enters. Zeros are what FlashAttention returns
/// and keep later layers finite; lse = −∞ says "no probability mass" exactly.
pub fn sdpa_with_options(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    mask: &SdpaMask,
    options: &SdpaOptions,
) -> Result<(Array4<f32>, Array3<f32>)> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), mask)?;
    let scale = options.scale_for(dims.head_dim)?;
    let mut out = Array4::<f32>::zeros(dims.out_shape());
    let mut lse = Array3::<f32>::zeros(dims.lse_shape());
    // Scores in log2 units (see `log2_units`). The scale rides on the GEMM's alpha, so neither
    // costs an extra pass.
    let alpha = log2_units(scale);
    // One (Nq × Nk) score buffer and one 1/Σ per row, reused by every head.
    let mut scores = vec![0.0f32; dims.nq * dims.nk];
    let mut inv_sums = vec![0.0f32; dims.nq];
    for b in 0..dims.batch {
        for h in 0..dims.heads {
            let (q_bh, k_bh, v_bh) =
                (q.slice(s![b, h, .., ..]), k.slice(s![b, h, .., ..]), v.slice(s![b, h, .., ..]));
            // S = alpha · Q Kᵀ
            general_mat_mul(alpha, &q_bh, &k_bh.t(), 0.0, &mut score_view(&mut scores, &dims)?);
            // P̃ = 2^(S − rowmax), unnormalised
            masked_softmax_rows(&mut scores, &dims, mask, b, lse.slice_mut(s![b, h, ..]), &mut inv_sums);
            // O = P̃ V, written straight into this head's slice of the output ...
            let mut out_bh = out.slice_mut(s![b, h, .., ..]);
            general_mat_mul(1.0, &score_view(&mut scores, &dims)?, &v_bh, 0.0, &mut out_bh);
            // ... then divided by the row sums: Nq·dv divisions instead of Nq·Nk.
            for (mut row, &inv) in out_bh.rows_mut().into_iter().zip(&inv_sums) {
                row *= inv;
            }
        }
    }
    Ok((out, lse))
}
// ANCHOR_END: sdpa

fn score_view<'a>(scores: &'a mut [f32], dims: &SdpaDims) -> Result<ArrayViewMut2<'a, f32>> {
    ArrayViewMut2::from_shape((dims.nq, dims.nk), scores).map_err(|e| Error::InvalidArgument(e.to_string()))
}

// ANCHOR: masked_softmax
/// Mask and exponentiate every row of one head's scores (log2 units) in place; write each
/// row's lse (natural log) and 1/Σ (0 for a fully masked row, whose weights are all 0).
fn masked_softmax_rows(
    scores: &mut [f32],
    dims: &SdpaDims,
    mask: &SdpaMask,
    b: usize,
    mut lse: ArrayViewMut1<f32>,
    inv_sums: &mut [f32],
) {
    let padding = mask.key_padding.as_ref().map(|pad| pad.index_axis(Axis(0), b));
    for (i, row) in scores.chunks_exact_mut(dims.nk).enumerate() {
        // Masked scores become −∞, so 2^(−∞) gives them exactly zero weight.
        let end = mask.causal_end(i, dims.nq, dims.nk);
        row[end..].fill(f32::NEG_INFINITY);
        if let Some(pad) = &padding {
            for (x, _) in row[..end].iter_mut().zip(pad.iter()).filter(|(_, padded)| **padded) {
                *x = f32::NEG_INFINITY;
            }
        }
        let (max, sum) = softmax_log2_unnormalised(row);
        // ln Σ e^{s} = ln 2 · log₂ Σ 2^{s·log₂e} = ln 2 · (max + log₂ Σ 2^{s·log₂e − max})
        lse[i] = if sum > 0.0 { (max + sum.log2()) * std::f32::consts::LN_2 } else { f32::NEG_INFINITY };
        inv_sums[i] = if sum > 0.0 { 1.0 / sum } else { 0.0 };
    }
}
// ANCHOR_END: masked_softmax

/// The attention weights P = softmax(Q Kᵀ · scale + mask), shape (B, H, Nq, Nk), for looking
/// at (a fully masked row is zeros).
pub fn attention_weights(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    mask: &SdpaMask,
    options: &SdpaOptions,
) -> Result<Array4<f32>> {
    let dims = check_qk(q.shape(), k.shape(), mask)?;
    let scale = options.scale_for(dims.head_dim)?;
    let mut weights = Array4::<f32>::zeros((dims.batch, dims.heads, dims.nq, dims.nk));
    let mut lse = Array3::<f32>::zeros(dims.lse_shape());
    let alpha = log2_units(scale);
    let mut scores = vec![0.0f32; dims.nq * dims.nk];
    let mut inv_sums = vec![0.0f32; dims.nq];
    for b in 0..dims.batch {
        for h in 0..dims.heads {
            general_mat_mul(
                alpha,
                &q.slice(s![b, h, .., ..]),
                &k.slice(s![b, h, .., ..]).t(),
                0.0,
                &mut score_view(&mut scores, &dims)?,
            );
            masked_softmax_rows(&mut scores, &dims, mask, b, lse.slice_mut(s![b, h, ..]), &mut inv_sums);
            let mut w = weights.slice_mut(s![b, h, .., ..]);
            w.assign(&score_view(&mut scores, &dims)?);
            for (mut row, &inv) in w.rows_mut().into_iter().zip(&inv_sums) {
                row *= inv;
            }
        }
    }
    Ok(weights)
}
