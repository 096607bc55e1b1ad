//! Attention on the CPU, twice: first as plain loops over row-major slices (every multiply in
//! sight), then as three ndarray operations, `softmax(Q Kᵀ) V`.
//!
//! Chapter 1 computes *unscaled* attention: the scores are raw dot products `q·k`. Chapter 2
//! divides them by √d and explains why.

use attn_support::ndarray::{Array2, ArrayView2, ArrayViewMut2};
use attn_support::{Error, Result};

/// The sizes of one attention call: `n_q` queries and `n_k` keys of dimension `d`, and `n_k`
/// values of dimension `d_v`. Q is (n_q, d), K is (n_k, d), V is (n_k, d_v), the output is
/// (n_q, d_v).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    pub n_q: usize,
    pub n_k: usize,
    pub d: usize,
    pub d_v: usize,
}

impl AttentionDims {
    /// Check the shapes of Q, K and V and read the sizes off them. K must have Q's feature
    /// dimension `d` (a dot product needs equal lengths) and V one row per key.
    pub fn from_shapes(q: &[usize], k: &[usize], v: &[usize]) -> Result<AttentionDims> {
        for (name, shape) in [("Q", q), ("K", k), ("V", v)] {
            if shape.len() != 2 {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be a matrix, but has shape {shape:?}"
                )));
            }
        }
        if q[1] != k[1] {
            return Err(Error::shapes("Q and K need the same feature dimension d", "Q", q, "K", k));
        }
        if k[0] != v[0] {
            return Err(Error::shapes("K and V need one row per key", "K", k, "V", v));
        }
        let dims = AttentionDims { n_q: q[0], n_k: k[0], d: q[1], d_v: v[1] };
        dims.check_not_empty()?;
        Ok(dims)
    }

    /// Every size must be at least 1: with no keys there is nothing to attend to (the softmax
    /// of an empty row is undefined), and empty Q or V make an empty, pointless output.
    pub fn check_not_empty(&self) -> Result<()> {
        if self.n_q == 0 || self.n_k == 0 || self.d == 0 || self.d_v == 0 {
            return Err(Error::InvalidArgument(format!(
                "attention needs non-empty inputs, got n_q = {}, n_k = {}, d = {}, d_v = {}",
                self.n_q, self.n_k, self.d, self.d_v
            )));
        }
        Ok(())
    }

    /// Number of elements of Q, K, V and the output.
    pub fn q_len(&self) -> usize {
        self.n_q * self.d
    }
    pub fn k_len(&self) -> usize {
        self.n_k * self.d
    }
    pub fn v_len(&self) -> usize {
        self.n_k * self.d_v
    }
    pub fn out_len(&self) -> usize {
        self.n_q * self.d_v
    }

    /// Floating-point operations of one call: 2·n_q·n_k·d for the scores and 2·n_q·n_k·d_v for
    /// the weighted sum (the softmax's O(n_q·n_k) is left out).
    pub fn flops(&self) -> f64 {
        2.0 * self.n_q as f64 * self.n_k as f64 * (self.d + self.d_v) as f64
    }
}

/// Check that flat row-major slices hold exactly the sizes `dims` names.
fn check_slices(q: &[f32], k: &[f32], v: &[f32], dims: AttentionDims) -> Result<()> {
    dims.check_not_empty()?;
    let expect = [
        ("Q", q.len(), "(n_q, d)", [dims.n_q, dims.d]),
        ("K", k.len(), "(n_k, d)", [dims.n_k, dims.d]),
        ("V", v.len(), "(n_k, d_v)", [dims.n_k, dims.d_v]),
    ];
    for (name, len, shape_name, shape) in expect {
        if len != shape[0] * shape[1] {
            return Err(Error::shapes(
                format!("{name} slice length must equal the product of its dims"),
                "the slice",
                &[len],
                shape_name,
                &shape,
            ));
        }
    }
    Ok(())
}

// ANCHOR: naive
/// Attention as loops: for each query row i, score every key, turn the scores into weights
/// with a softmax, and mix the value rows with those weights. All slices are row-major:
/// `q[i * d + c]` is Q[i, c]. Returns the (n_q, d_v) output, row-major.
pub fn attention_naive(q: &[f32], k: &[f32], v: &[f32], dims: AttentionDims) -> Result<Vec<f32>> {
    check_slices(q, k, v, dims)?;
    let AttentionDims { n_q, n_k, d, d_v } = dims;
    let mut out = vec![0.0f32; n_q * d_v];
    let mut scores = vec![0.0f32; n_k];
    for i in 0..n_q {
        let q_i = &q[i * d..(i + 1) * d];
        // Similarity of query i to every key: s_j = q_i · k_j.
        for (j, s) in scores.iter_mut().enumerate() {
            let k_j = &k[j * d..(j + 1) * d];
            *s = q_i.iter().zip(k_j).map(|(a, b)| a * b).sum();
        }
        // Softmax over the row. Subtracting the max changes nothing mathematically and keeps
        // exp() from overflowing (chapter 2 shows why this matters).
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        // Output row i = Σ_j (w_j / Σ w) · v_j.
        let out_i = &mut out[i * d_v..(i + 1) * d_v];
        for (j, &w) in scores.iter().enumerate() {
            let weight = w / sum;
            let v_j = &v[j * d_v..(j + 1) * d_v];
            for (o, &x) in out_i.iter_mut().zip(v_j) {
                *o += weight * x;
            }
        }
    }
    Ok(out)
}
// ANCHOR_END: naive

// ANCHOR: softmax
/// Softmax of each row, in place: row ← exp(row − max(row)) / Σ exp(row − max(row)).
pub fn softmax_rows_in_place(mut scores: ArrayViewMut2<f32>) {
    for mut row in scores.rows_mut() {
        // The max subtraction keeps exp() finite for large scores; chapter 2 explains it.
        let max = row.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        row.mapv_inplace(|x| (x - max).exp());
        let sum = row.sum();
        row /= sum;
    }
}

/// Softmax of each row of `scores`, as a new array: every row is non-negative and sums to 1.
pub fn softmax_rows(scores: ArrayView2<f32>) -> Array2<f32> {
    let mut weights = scores.to_owned();
    softmax_rows_in_place(weights.view_mut());
    weights
}
// ANCHOR_END: softmax

// ANCHOR: ndarray
/// The attention weights P = softmax(Q Kᵀ), one row per query, one column per key.
pub fn attention_weights(q: ArrayView2<f32>, k: ArrayView2<f32>) -> Result<Array2<f32>> {
    // V is not involved here; check Q against K with a V that trivially fits.
    let (n_k, _) = k.dim();
    AttentionDims::from_shapes(q.shape(), k.shape(), &[n_k, 1])?;
    let mut scores = q.dot(&k.t()); // (n_q, n_k): S[i, j] = q_i · k_j
    softmax_rows_in_place(scores.view_mut());
    Ok(scores)
}

/// Attention in three lines: softmax(Q Kᵀ) V. Q is (n_q, d), K is (n_k, d), V is (n_k, d_v).
pub fn attention(q: ArrayView2<f32>, k: ArrayView2<f32>, v: ArrayView2<f32>) -> Result<Array2<f32>> {
    AttentionDims::from_shapes(q.shape(), k.shape(), v.shape())?;
    let weights = attention_weights(q, k)?; // (n_q, n_k)
    Ok(weights.dot(&v)) // (n_q, d_v): row i = Σ_j P[i, j] v_j
}
// ANCHOR_END: ndarray

/// The naive loops on ndarray inputs (any layout): copies them to row-major slices (`iter()`
/// walks in logical row-major order), runs [`attention_naive`], and shapes the result.
pub fn attention_naive_arrays(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
) -> Result<Array2<f32>> {
    let dims = AttentionDims::from_shapes(q.shape(), k.shape(), v.shape())?;
    let flat = |a: ArrayView2<f32>| a.iter().copied().collect::<Vec<f32>>();
    let out = attention_naive(&flat(q), &flat(k), &flat(v), dims)?;
    Array2::from_shape_vec((dims.n_q, dims.d_v), out).map_err(|e| Error::InvalidArgument(e.to_string()))
}
