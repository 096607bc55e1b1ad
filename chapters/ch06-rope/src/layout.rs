//! Converting a checkpoint between the two RoPE layouts by permuting rows of `W_q` and `W_k`.
//!
//! A query is `q = W_q x` (PyTorch's `nn.Linear` weight is `(out, in)`, rows grouped by head:
//! rows `h·head_dim … (h+1)·head_dim − 1` make head `h`). Row `r` of `W_q` produces dim `r` of
//! `q`, so reordering the rows inside each head reorders the dims of every query — at no cost at
//! run time. Half-rotation pairs dims `(i, i + d_rot/2)`, interleaved pairs `(2i, 2i + 1)`; move
//! row `i` to `2i` and row `i + d_rot/2` to `2i + 1` (rows past `d_rot` stay) and the interleaved
//! RoPE rotates exactly the numbers the half-rotation RoPE rotated, by the same angles `m·θ_i`.
//! The rotated queries and keys are then the same vectors with their dims reordered, and since
//! queries and keys are reordered alike, every score `q·k` is unchanged. `W_v`, `W_o` and the
//! rest of the model are untouched: values never rotate.
//!
//! This is what Hugging Face's `convert_llama_weights_to_hf.py` does to Meta's (interleaved)
//! checkpoints (`permute`: `w.view(n_heads, dim // n_heads // 2, 2, dim).transpose(1, 2)`),
//! and what llama.cpp's converter undoes for GGUF. Apply it per head with the right head count:
//! `n_heads` for `W_q`, `n_kv_heads` for `W_k` under grouped-query attention. A projection bias
//! (Qwen's) is a one-column matrix and permutes the same way.

use crate::rope::RopeLayout;
use attn_support::ndarray::{Array2, ArrayView2};
use attn_support::{Error, Result};

/// For each dim of a head in layout `to`, the dim in layout `from` that holds the same number.
/// Dims at and past `rotary_dim` map to themselves.
pub fn dim_permutation(head_dim: usize, rotary_dim: usize, from: RopeLayout, to: RopeLayout) -> Vec<usize> {
    let mut source: Vec<usize> = (0..head_dim).collect();
    for i in 0..rotary_dim / 2 {
        let (to_a, to_b) = to.pair(i, rotary_dim);
        let (from_a, from_b) = from.pair(i, rotary_dim);
        source[to_a] = from_a;
        source[to_b] = from_b;
    }
    source
}

// ANCHOR: convert_rows
/// Rows of a projection weight (or bias column) `(n_heads · head_dim, d_in)` reordered inside
/// each head from layout `from` to layout `to`.
pub fn convert_rows(
    w: ArrayView2<f32>,
    n_heads: usize,
    head_dim: usize,
    rotary_dim: usize,
    from: RopeLayout,
    to: RopeLayout,
) -> Result<Array2<f32>> {
    if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) || rotary_dim > head_dim {
        return Err(Error::InvalidArgument(format!(
            "rotary dims {rotary_dim} must be even, > 0 and at most head_dim {head_dim}"
        )));
    }
    if n_heads == 0 || w.nrows() != n_heads * head_dim {
        return Err(Error::InvalidArgument(format!(
            "projection weight of shape {:?} does not have n_heads {n_heads} × head_dim {head_dim} = {} rows",
            w.shape(),
            n_heads * head_dim
        )));
    }
    let source = dim_permutation(head_dim, rotary_dim, from, to);
    Ok(Array2::from_shape_fn(w.raw_dim(), |(row, col)| {
        let (head, dim) = (row / head_dim, row % head_dim);
        w[[head * head_dim + source[dim], col]]
    }))
}
// ANCHOR_END: convert_rows

/// Hugging Face (half-rotation) weights to the interleaved layout of Meta / GGUF.
pub fn half_to_interleaved_rows(
    w: ArrayView2<f32>,
    n_heads: usize,
    head_dim: usize,
    rotary_dim: usize,
) -> Result<Array2<f32>> {
    convert_rows(w, n_heads, head_dim, rotary_dim, RopeLayout::HalfRotation, RopeLayout::Interleaved)
}

/// Meta / GGUF (interleaved) weights to Hugging Face's half-rotation layout.
pub fn interleaved_to_half_rows(
    w: ArrayView2<f32>,
    n_heads: usize,
    head_dim: usize,
    rotary_dim: usize,
) -> Result<Array2<f32>> {
    convert_rows(w, n_heads, head_dim, rotary_dim, RopeLayout::Interleaved, RopeLayout::HalfRotation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permutation_of_one_head_of_eight() {
        // Half pairs (0,4) (1,5) (2,6) (3,7) become interleaved pairs (0,1) (2,3) (4,5) (6,7).
        let to_interleaved = dim_permutation(8, 8, RopeLayout::HalfRotation, RopeLayout::Interleaved);
        assert_eq!(to_interleaved, [0, 4, 1, 5, 2, 6, 3, 7]);
        let back = dim_permutation(8, 8, RopeLayout::Interleaved, RopeLayout::HalfRotation);
        assert_eq!(back, [0, 2, 4, 6, 1, 3, 5, 7]);
        // Partial rotary over the first 4 of 6 dims: dims 4 and 5 stay.
        assert_eq!(
            dim_permutation(6, 4, RopeLayout::HalfRotation, RopeLayout::Interleaved),
            [0, 2, 1, 3, 4, 5]
        );
    }

    #[test]
    fn meta_to_hf_matches_the_converter_s_view_transpose() {
        // convert_llama_weights_to_hf.py: w.view(H, d/2, 2, in).transpose(1, 2).reshape(H·d, in),
        // i.e. HF row h·d + j·d/2 + i is Meta row h·d + 2i + j.
        let (heads, d, d_in) = (3, 6, 2);
        let meta = Array2::from_shape_fn((heads * d, d_in), |(r, c)| (r * 10 + c) as f32);
        let hf = interleaved_to_half_rows(meta.view(), heads, d, d).unwrap();
        for h in 0..heads {
            for j in 0..2 {
                for i in 0..d / 2 {
                    for c in 0..d_in {
                        assert_eq!(hf[[h * d + j * d / 2 + i, c]], meta[[h * d + 2 * i + j, c]]);
                    }
                }
            }
        }
        let round_trip = half_to_interleaved_rows(hf.view(), heads, d, d).unwrap();
        assert_eq!(round_trip, meta);
    }
}
