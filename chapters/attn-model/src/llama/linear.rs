//! The three operations the decoder spends its time in, on the CPU: a linear layer `x Wᵀ`,
//! RMSNorm, and the SwiGLU gate. The linear layer splits the weight's rows across threads
//! (rayon), because a decoder at batch 1 is a matrix–vector product per weight matrix: it reads
//! every weight once per token, so its speed is the memory bandwidth all cores together reach.

use attn_support::ndarray::linalg::general_mat_mul;
use attn_support::ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, Zip};
use rayon::prelude::*;

/// Rows of a weight handed to one task: enough work to pay for the hand-off, few enough tasks
/// that every thread gets several.
const ROWS_PER_TASK: usize = 64;
/// Up to this many tokens, one dot product per (token, weight row) streams each weight row once
/// from memory; past it, a packed matrix product (matrixmultiply) reuses what it packs.
const DOT_PRODUCT_TOKENS: usize = 4;

/// `y = x Wᵀ` for activations `x` of shape `(tokens, d_in)` and a weight of shape `(d_out,
/// d_in)`, PyTorch's `nn.Linear` layout. The caller checks the shapes (the model does once, when
/// it is built).
pub fn linear(x: ArrayView2<f32>, w: ArrayView2<f32>) -> Array2<f32> {
    debug_assert_eq!(x.ncols(), w.ncols());
    let mut y = Array2::<f32>::zeros((x.nrows(), w.nrows()));
    let mut tasks: Vec<(ArrayViewMut2<f32>, ArrayView2<f32>)> = y
        .axis_chunks_iter_mut(Axis(1), ROWS_PER_TASK)
        .zip(w.axis_chunks_iter(Axis(0), ROWS_PER_TASK))
        .collect();
    tasks.par_iter_mut().for_each(|(y_part, w_part)| {
        if x.nrows() <= DOT_PRODUCT_TOKENS {
            for (mut y_row, x_row) in y_part.rows_mut().into_iter().zip(x.rows()) {
                for (y_ij, w_row) in y_row.iter_mut().zip(w_part.rows()) {
                    *y_ij = w_row.dot(&x_row);
                }
            }
        } else {
            general_mat_mul(1.0, &x, &w_part.t(), 0.0, y_part);
        }
    });
    y
}

/// RMSNorm of every row, as Hugging Face's `LlamaRMSNorm` computes it in f32:
/// `x · rsqrt(mean(x²) + ε)`, then times the learned `weight`.
pub fn rms_norm(x: ArrayView2<f32>, weight: ArrayView1<f32>, eps: f32) -> Array2<f32> {
    let mut y = x.to_owned();
    for mut row in y.rows_mut() {
        let mean_square = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        let inv_rms = 1.0 / (mean_square + eps).sqrt();
        Zip::from(&mut row).and(weight).for_each(|v, &w| *v = w * (*v * inv_rms));
    }
    y
}

/// SwiGLU's gate, in place on `gate`: `silu(gate) · up` with `silu(g) = g · σ(g)`.
pub fn swiglu(mut gate: Array2<f32>, up: ArrayView2<f32>) -> Array2<f32> {
    Zip::from(&mut gate).and(up).for_each(|g, &u| *g = *g / (1.0 + (-*g).exp()) * u);
    gate
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::ndarray::Array1;

    fn reference(x: &Array2<f32>, w: &Array2<f32>) -> Array2<f64> {
        Array2::from_shape_fn((x.nrows(), w.nrows()), |(i, j)| {
            (0..x.ncols()).map(|k| x[[i, k]] as f64 * w[[j, k]] as f64).sum()
        })
    }

    #[test]
    fn linear_agrees_with_f64_for_both_paths_and_ragged_row_chunks() {
        for (tokens, d_in, d_out) in [(1, 7, 1), (1, 33, 130), (3, 64, 65), (5, 17, 200), (9, 40, 63)] {
            let x =
                Array2::from_shape_fn((tokens, d_in), |(i, k)| ((i * 31 + k * 7) % 13) as f32 / 7.0 - 0.9);
            let w = Array2::from_shape_fn((d_out, d_in), |(j, k)| ((j * 17 + k * 5) % 11) as f32 / 5.0 - 1.0);
            let y = linear(x.view(), w.view());
            let r = reference(&x, &w);
            for (a, b) in y.iter().zip(r.iter()) {
                assert!(
                    (*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{tokens}×{d_in}→{d_out}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn rms_norm_gives_unit_rms_before_the_weight() {
        let x = Array2::from_shape_fn((2, 8), |(i, k)| (i as f32 + 1.0) * (k as f32 - 3.5));
        let y = rms_norm(x.view(), Array1::ones(8).view(), 0.0);
        for row in y.rows() {
            let rms = (row.iter().map(|v| v * v).sum::<f32>() / 8.0).sqrt();
            assert!((rms - 1.0).abs() < 1e-6);
        }
    }
}
