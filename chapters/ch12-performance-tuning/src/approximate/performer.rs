//! Performer's FAVOR+: random positive features whose inner product is, on average, the
//! softmax kernel — linear attention that *approximates* softmax attention.
//!
//! For w ~ N(0, I_d), `E[e^{wᵀx}] = e^{|x|²/2}`, so with `x = q̃ + k̃`
//!
//! `E_w[ e^{wᵀq̃ − |q̃|²/2} · e^{wᵀk̃ − |k̃|²/2} ] = e^{|q̃+k̃|²/2 − |q̃|²/2 − |k̃|²/2} = e^{q̃·k̃}`.
//!
//! With q̃ = q/d^{1/4} and k̃ = k/d^{1/4}, `q̃·k̃ = q·k/√d`: the softmax kernel. Averaging over
//! m draws w₁…w_m gives features `φ(x)_r = e^{w_rᵀx̃ − |x̃|²/2} / √m` with
//! `E[φ(q)ᵀφ(k)] = e^{q·k/√d}`, and [`super::linear::kernel_attention`] does the rest in
//! O(N·m·d). Every feature is positive, so the denominator can never be negative or cancel to
//! ~0 (the trigonometric random features of earlier work could, and blew up).
//!
//! The estimate is unbiased for each weight, but its relative variance grows like
//! `e^{|q̃+k̃|²}`: large where q and k are large and aligned — exactly the peaked attention the
//! softmax is good at. The error shrinks like 1/√m. (The paper also orthogonalises the w_r,
//! which lowers the variance further; the plain i.i.d. version is kept here.)
//!
//! Constant factors cancel between numerator and denominator, which is used for stability: a
//! query's features are divided by their own largest value (the factor e^{−|q̃|²/2} and 1/√m
//! drop out the same way), and all keys of a head by one shared largest value.

use super::linear::kernel_attention_head;
use attn_support::data::randn;
use attn_support::ndarray::linalg::general_mat_mul;
use attn_support::ndarray::{Array2, Array4, ArrayView2, ArrayView4, s};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::{SdpaMask, check_inputs};

/// m random directions w_r ~ N(0, I_d), drawn from a seed so results are reproducible.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomFeatures {
    /// (m, d): one direction per row.
    pub projection: Array2<f32>,
}

impl RandomFeatures {
    /// `features` (m) directions in dimension `head_dim` (d).
    pub fn new(features: usize, head_dim: usize, seed: u64) -> Result<RandomFeatures> {
        if features == 0 || head_dim == 0 {
            return Err(Error::InvalidArgument(format!(
                "random features: need m ≥ 1 and d ≥ 1, got m = {features}, d = {head_dim}"
            )));
        }
        Ok(RandomFeatures { projection: randn((features, head_dim), seed) })
    }

    /// m, the number of features.
    pub fn features(&self) -> usize {
        self.projection.nrows()
    }

    pub fn head_dim(&self) -> usize {
        self.projection.ncols()
    }

    /// Exponents `w_rᵀx̃ − |x̃|²/2` for rows x of a (rows, d) matrix, x̃ = x/d^{1/4}.
    fn exponents(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let inv_root4_d = (self.head_dim() as f64).powf(-0.25) as f32;
        let mut u = Array2::<f32>::zeros((x.nrows(), self.features()));
        general_mat_mul(inv_root4_d, &x, &self.projection.t(), 0.0, &mut u);
        for (mut u_row, x_row) in u.rows_mut().into_iter().zip(x.rows()) {
            let half_norm2 = 0.5 * inv_root4_d * inv_root4_d * x_row.dot(&x_row);
            u_row -= half_norm2;
        }
        u
    }

    /// Query features, each row scaled by its own constant (which cancels in attention).
    pub fn query_features(&self, q: ArrayView2<f32>) -> Array2<f32> {
        let mut u = self.exponents(q);
        for mut row in u.rows_mut() {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.mapv_inplace(|x| (x - max).exp());
        }
        u
    }

    /// Key features, all scaled by one constant (which cancels in attention).
    pub fn key_features(&self, k: ArrayView2<f32>) -> Array2<f32> {
        let mut u = self.exponents(k);
        let max = u.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        u.mapv_inplace(|x| (x - max).exp());
        u
    }
}

/// Softmax attention approximated with FAVOR+ positive random features: inputs (B, H, N, d)
/// as in chapter 2, output (B, H, Nq, dv); causal with chapter 2's rule. O(B·H·N·m·(d + dv)).
pub fn performer_attention(
    q: ArrayView4<f32>,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    features: &RandomFeatures,
    causal: bool,
) -> Result<Array4<f32>> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), &SdpaMask::none())?;
    if dims.head_dim != features.head_dim() {
        return Err(Error::InvalidArgument(format!(
            "performer: random features are for head dim {}, inputs have {}",
            features.head_dim(),
            dims.head_dim
        )));
    }
    let mut out = Array4::<f32>::zeros(dims.out_shape());
    for b in 0..dims.batch {
        for h in 0..dims.heads {
            let phi_q = features.query_features(q.slice(s![b, h, .., ..]));
            let phi_k = features.key_features(k.slice(s![b, h, .., ..]));
            let v_bh = v.slice(s![b, h, .., ..]);
            kernel_attention_head(phi_q.view(), phi_k.view(), v_bh, causal, out.slice_mut(s![b, h, .., ..]));
        }
    }
    Ok(out)
}
