//! Linear attention: a kernel `φ(q)ᵀφ(k)` in place of `e^{q·k/√d}`, and the associativity
//! trick that makes it O(N) in the sequence length.
//!
//! With weights `wᵢⱼ = φ(qᵢ)ᵀφ(kⱼ)` (φ: ℝᵈ → ℝᵐ, positive), attention is
//!
//! `oᵢ = Σⱼ wᵢⱼ vⱼ / Σⱼ wᵢⱼ`.
//!
//! Computed as written, that is an Nq × Nk weight matrix: O(Nq·Nk·m). But `wᵢⱼ vⱼᵀ =
//! φ(qᵢ)ᵀ (φ(kⱼ) vⱼᵀ)`, and a product of matrices can be bracketed either way:
//! `(Φ_Q Φ_Kᵀ) V = Φ_Q (Φ_Kᵀ V)`. The right-hand bracket is an m × dv matrix `S = Σⱼ φ(kⱼ) vⱼᵀ`,
//! with normaliser `z = Σⱼ φ(kⱼ)`, built once in O(Nk·m·dv); then `oᵢ = φ(qᵢ)ᵀS / φ(qᵢ)ᵀz`
//! costs O(m·dv) per query. With m = d that is O(N d²) instead of O(N² d): cheaper once
//! N > d. The same bracketing is impossible for softmax, because `e^{q·k}` does not factor
//! into a function of q times a function of k with finite m.
//!
//! Causal attention needs `Sᵢ = Σ_{j visible to i} φ(kⱼ) vⱼᵀ`: the visible keys of successive
//! queries are growing prefixes (`j < i + 1 + Nk − Nq`), so S and z are running sums, one
//! rank-1 update per key. That is a recurrent network whose state is S — constant memory per
//! generated token, the selling point of linear attention for decoding.
//!
//! [`linear_attention`] uses Katharopoulos et al.'s `φ(x) = elu(x) + 1` (positive, m = d, no
//! 1/√d scale). It is not an approximation of softmax attention: `φ(q)ᵀφ(k)` grows only
//! linearly with `q·k`, and `Φ_Q Φ_Kᵀ` has rank ≤ d, so a query cannot give almost all of its
//! weight to one key among thousands. Models are trained with it from the start.

use attn_support::Result;
use attn_support::ndarray::linalg::general_mat_mul;
use attn_support::ndarray::{
    Array1, Array2, Array4, ArrayView2, ArrayView4, ArrayViewMut1, ArrayViewMut2, Axis, s,
};
use ch02_scaled_dot_product::{SdpaMask, check_inputs};

/// `elu(x) + 1`: x + 1 for x > 0, eˣ otherwise — positive and smooth, so every weight and
/// every denominator is positive.
pub fn elu_plus_one(x: f32) -> f32 {
    if x > 0.0 { x + 1.0 } else { x.exp() }
}

/// [`elu_plus_one`] on every entry of a (rows, d) matrix.
pub fn elu_feature_map(x: ArrayView2<f32>) -> Array2<f32> {
    x.mapv(elu_plus_one)
}

/// Linear attention with φ = elu + 1: `oᵢ = φ(qᵢ)ᵀ Σⱼ φ(kⱼ)vⱼᵀ / φ(qᵢ)ᵀ Σⱼ φ(kⱼ)` over the keys
/// visible to query i (all of them, or chapter 2's causal rule). Inputs (B, H, N, d) as in
/// chapter 2; output (B, H, Nq, dv). O(B·H·N·d·dv).
pub fn linear_attention(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    causal: bool,
) -> Result<Array4<f32>> {
    check_inputs(q.shape(), k.shape(), v.shape(), &SdpaMask::none())?;
    kernel_attention(q.mapv(elu_plus_one).view(), k.mapv(elu_plus_one).view(), v, causal)
}

/// Attention with given features: `phi_q` (B, H, Nq, m) and `phi_k` (B, H, Nk, m) are φ(Q) and
/// φ(K), `v` is (B, H, Nk, dv). Any positive feature map gives a valid attention; a query with
/// no visible key (causal, Nq > Nk), or whose denominator is 0, gets a row of zeros.
pub fn kernel_attention(
    phi_q: ArrayView4<f32>,
    phi_k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    causal: bool,
) -> Result<Array4<f32>> {
    let dims = check_inputs(phi_q.shape(), phi_k.shape(), v.shape(), &SdpaMask::none())?;
    let mut out = Array4::<f32>::zeros(dims.out_shape());
    for b in 0..dims.batch {
        for h in 0..dims.heads {
            kernel_attention_head(
                phi_q.slice(s![b, h, .., ..]),
                phi_k.slice(s![b, h, .., ..]),
                v.slice(s![b, h, .., ..]),
                causal,
                out.slice_mut(s![b, h, .., ..]),
            );
        }
    }
    Ok(out)
}

/// One head of [`kernel_attention`]; shapes already checked: φ_Q (Nq, m), φ_K (Nk, m),
/// V (Nk, dv), out (Nq, dv).
pub(crate) fn kernel_attention_head(
    phi_q: ArrayView2<f32>,
    phi_k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    causal: bool,
    mut out: ArrayViewMut2<f32>,
) {
    let (nq, nk, m, dv) = (phi_q.nrows(), phi_k.nrows(), phi_q.ncols(), v.ncols());
    if !causal {
        // S = Φ_Kᵀ V (m × dv) and z = Φ_Kᵀ 1: the whole sequence summarised once.
        let mut state = Array2::<f32>::zeros((m, dv));
        general_mat_mul(1.0, &phi_k.t(), &v, 0.0, &mut state);
        let z = phi_k.sum_axis(Axis(0));
        // Numerators Φ_Q S in one GEMM, denominators Φ_Q z.
        general_mat_mul(1.0, &phi_q, &state, 0.0, &mut out);
        let denominators = phi_q.dot(&z);
        for (row, &den) in out.rows_mut().into_iter().zip(&denominators) {
            divide_or_zero(row, den);
        }
        return;
    }
    // Causal: running sums over the keys visible so far.
    let mask = SdpaMask::causal();
    let mut state = Array2::<f32>::zeros((m, dv));
    let mut z = Array1::<f32>::zeros(m);
    let mut added = 0;
    for i in 0..nq {
        let end = mask.causal_end(i, nq, nk);
        while added < end {
            let (phi, value) = (phi_k.row(added), v.row(added));
            for (mut state_row, &f) in state.rows_mut().into_iter().zip(phi.iter()) {
                state_row.scaled_add(f, &value); // S += φ(kⱼ) vⱼᵀ, one row of S at a time
            }
            z += &phi;
            added += 1;
        }
        let phi = phi_q.row(i);
        let mut row = out.row_mut(i);
        row.assign(&phi.dot(&state));
        divide_or_zero(row, phi.dot(&z));
    }
}

/// Divide a row by its denominator; a zero (or non-finite) denominator gives zeros.
fn divide_or_zero(mut row: ArrayViewMut1<f32>, den: f32) {
    if den != 0.0 && den.is_finite() {
        row /= den;
    } else {
        row.fill(0.0);
    }
}
