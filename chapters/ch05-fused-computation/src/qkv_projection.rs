//! The Q, K, V projections: three GEMMs, or one GEMM over the concatenated weight.
//!
//! With X of shape (tokens, d_model) and weights stored as PyTorch's `nn.Linear` stores them,
//! (out features, in features):
//!
//! `Q = X W_qᵀ` (H·d columns), `K = X W_kᵀ`, `V = X W_vᵀ` (H_kv·d columns each),
//!
//! where H query heads share H_kv key/value heads (grouped-query attention; H_kv = H is
//! multi-head, H_kv = 1 multi-query). Stacking the weights row-wise,
//! `W_qkv = [W_q; W_k; W_v]` of shape (H·d + 2·H_kv·d, d_model), gives all three in one GEMM:
//! `X W_qkvᵀ = [Q | K | V]`, column blocks side by side.
//!
//! What one GEMM saves is small and worth stating honestly: X is read once instead of three
//! times, and one kernel is launched instead of three. The arithmetic is unchanged, and a GEMM
//! of prefill size is compute-bound, so published gains are a few percent; at decode (one
//! token) the GEMM is bound by reading the weights, which both versions read once. The GPU
//! measurement is still to come.
//!
//! **Equal to f32 rounding; bit for bit here, but not by contract.** Every output element is
//! the same dot product over d_model of a row of X with a row of a weight; its last bits depend
//! on the order of the additions, which the GEMM chooses. matrixmultiply (behind ndarray's
//! matrix products) cuts d_model into blocks of a fixed size whatever the output width, and on
//! the x86-64 machine this was written on the two versions agreed bit for bit on all 189 216
//! outputs of a one-off check (three shapes including SmolLM2-135M's, 1 to 64 tokens). Nothing
//! promises it: another BLAS, or cuBLAS picking another algorithm or split-K for the wider
//! matrix, may add in another order. So the tests ask only for agreement to f32 rounding, and
//! bound both versions against an f64 reference.
//!
//! **The split without a copy.** The fused GEMM writes a (B·N, C) matrix, C = H·d + 2·H_kv·d,
//! token-major: the d values of one head of one token are contiguous, consecutive tokens are C
//! apart. The head-major view (B, H, N, d) that attention indexes is then just strides —
//! (N·C, d, C, 1) from the start of the Q, K or V column block — so [`FusedQkv::q`], `k`, `v`
//! are views into the one output. A copy becomes unavoidable where a consumer needs each head's
//! (N, d) block contiguous (a kernel that loads whole tiles, a KV cache laid out by head) — on
//! the GPU that copy is what the RoPE + cache-write epilogue folds into the GEMM — and for GQA
//! when K and V must be repeated to H heads: head h reads KV head h / (H / H_kv), which no
//! single stride expresses (Hugging Face's `repeat_kv` copies; chapter 2's `sdpa` takes equal
//! head counts, so GQA views go to attention through such a copy or a kernel that divides).

use crate::bytes::BytesMoved;
use attn_support::ndarray::linalg::general_mat_mul;
use attn_support::ndarray::{
    Array2, Array4, ArrayView2, ArrayView3, ArrayView4, Axis, CowArray, Ix2, ShapeBuilder, concatenate,
};
use attn_support::{Error, Result};

/// The projection's sizes: model width, query heads, key/value heads, head dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QkvDims {
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// SmolLM2-135M, the model chapter 7 onward runs: d_model 576, 9 query heads and 3 KV heads of 64.
pub const SMOLLM2_135M: QkvDims = QkvDims { d_model: 576, n_heads: 9, n_kv_heads: 3, head_dim: 64 };

/// Llama-3-8B: d_model 4096, 32 query heads and 8 KV heads of 128.
pub const LLAMA3_8B: QkvDims = QkvDims { d_model: 4096, n_heads: 32, n_kv_heads: 8, head_dim: 128 };

impl QkvDims {
    /// Columns of Q: H·d.
    pub fn q_cols(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Columns of K (and of V): H_kv·d.
    pub fn kv_cols(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Columns of the fused output: H·d + 2·H_kv·d.
    pub fn fused_cols(&self) -> usize {
        self.q_cols() + 2 * self.kv_cols()
    }

    /// Multiply-adds of the projection of `tokens` tokens, counted as 2 flops each:
    /// `2 · tokens · d_model · (H·d + 2·H_kv·d)`, the same for both versions.
    pub fn flops(&self, tokens: usize) -> u64 {
        2 * tokens as u64 * self.d_model as u64 * self.fused_cols() as u64
    }

    /// Query heads per KV head.
    pub fn group_size(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Sizes must be non-zero and the query heads must split evenly over the KV heads.
    pub fn check(&self) -> Result<()> {
        let QkvDims { d_model, n_heads, n_kv_heads, head_dim } = *self;
        if d_model == 0 || n_heads == 0 || n_kv_heads == 0 || head_dim == 0 {
            return Err(Error::InvalidArgument(format!("every size must be ≥ 1: {self:?}")));
        }
        if n_heads % n_kv_heads != 0 {
            return Err(Error::InvalidArgument(format!(
                "n_heads = {n_heads} is not a multiple of n_kv_heads = {n_kv_heads}"
            )));
        }
        Ok(())
    }
}

/// Check that `w` is (rows, d_model).
fn check_weight(name: &'static str, w: &ArrayView2<f32>, rows: usize, dims: QkvDims) -> Result<()> {
    if w.dim() != (rows, dims.d_model) {
        return Err(Error::shapes(
            "weights are (out features, d_model)",
            name,
            w.shape(),
            "expected",
            &[rows, dims.d_model],
        ));
    }
    Ok(())
}

/// Check X against the dimensions; returns (batch, tokens).
fn check_x(x: &ArrayView3<f32>, dims: QkvDims) -> Result<(usize, usize)> {
    dims.check()?;
    let (batch, seq, d_model) = x.dim();
    if d_model != dims.d_model || batch == 0 || seq == 0 {
        return Err(Error::shapes(
            "X is (batch ≥ 1, tokens ≥ 1, d_model)",
            "X",
            x.shape(),
            "expected",
            &[batch.max(1), seq.max(1), dims.d_model],
        ));
    }
    Ok((batch, seq))
}

/// X (B, N, d_model) as the (B·N, d_model) matrix a GEMM takes: a view when X is in standard
/// layout, a copy otherwise.
fn tokens<'a>(x: &'a ArrayView3<'_, f32>) -> CowArray<'a, f32, Ix2> {
    let (batch, seq, d_model) = x.dim();
    x.as_standard_layout().into_shape_with_order((batch * seq, d_model)).expect("standard layout")
}

/// `X Wᵀ` into a fresh row-major matrix. ndarray's `dot` picks its output's layout from its
/// operands' (a one-row X with a transposed weight may come back column-major); writing into a
/// standard-layout array fixes it, so the reshapes and strided views below never copy.
fn gemm_xwt(x: &CowArray<'_, f32, Ix2>, w: ArrayView2<f32>) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((x.nrows(), w.nrows()));
    general_mat_mul(1.0, x, &w.t(), 0.0, &mut out);
    out
}

/// Q (B, H, N, d), K and V (B, H_kv, N, d) from the three GEMMs.
#[derive(Clone, Debug)]
pub struct Qkv {
    pub q: Array4<f32>,
    pub k: Array4<f32>,
    pub v: Array4<f32>,
}

// ANCHOR: unfused
/// Three GEMMs, one per weight; each (B·N, heads·d) output is reshaped to (B, N, heads, d) and
/// its axes permuted to (B, heads, N, d) — strides only, no copy.
pub fn qkv_unfused(
    x: ArrayView3<f32>,
    w_q: ArrayView2<f32>,
    w_k: ArrayView2<f32>,
    w_v: ArrayView2<f32>,
    dims: QkvDims,
) -> Result<Qkv> {
    let (batch, seq) = check_x(&x, dims)?;
    check_weight("W_q", &w_q, dims.q_cols(), dims)?;
    check_weight("W_k", &w_k, dims.kv_cols(), dims)?;
    check_weight("W_v", &w_v, dims.kv_cols(), dims)?;
    let x2 = tokens(&x);
    let project = |w: ArrayView2<f32>, heads: usize| {
        gemm_xwt(&x2, w)
            .into_shape_with_order((batch, seq, heads, dims.head_dim))
            .expect("gemm_xwt writes standard layout")
            .permuted_axes([0, 2, 1, 3])
    };
    Ok(Qkv {
        q: project(w_q, dims.n_heads),
        k: project(w_k, dims.n_kv_heads),
        v: project(w_v, dims.n_kv_heads),
    })
}
// ANCHOR_END: unfused

/// `[W_q; W_k; W_v]`: the three weights stacked row-wise, (H·d + 2·H_kv·d, d_model). Done once,
/// when the model is loaded.
pub fn concat_weights(
    w_q: ArrayView2<f32>,
    w_k: ArrayView2<f32>,
    w_v: ArrayView2<f32>,
    dims: QkvDims,
) -> Result<Array2<f32>> {
    dims.check()?;
    check_weight("W_q", &w_q, dims.q_cols(), dims)?;
    check_weight("W_k", &w_k, dims.kv_cols(), dims)?;
    check_weight("W_v", &w_v, dims.kv_cols(), dims)?;
    Ok(concatenate(Axis(0), &[w_q, w_k, w_v]).expect("shapes checked"))
}

/// The output of the fused GEMM, (B·N, H·d + 2·H_kv·d), and the views that split it.
#[derive(Clone, Debug)]
pub struct FusedQkv {
    qkv: Array2<f32>,
    batch: usize,
    seq: usize,
    dims: QkvDims,
}

// ANCHOR: fused
/// One GEMM against `[W_q; W_k; W_v]`.
pub fn qkv_fused(x: ArrayView3<f32>, w_qkv: ArrayView2<f32>, dims: QkvDims) -> Result<FusedQkv> {
    let (batch, seq) = check_x(&x, dims)?;
    check_weight("W_qkv", &w_qkv, dims.fused_cols(), dims)?;
    Ok(FusedQkv { qkv: gemm_xwt(&tokens(&x), w_qkv), batch, seq, dims })
}

impl FusedQkv {
    /// The GEMM's output as it is stored: (B·N, C), row = token, Q | K | V column blocks.
    pub fn output(&self) -> ArrayView2<'_, f32> {
        self.qkv.view()
    }

    /// Q as (B, H, N, d): a view into the output.
    pub fn q(&self) -> ArrayView4<'_, f32> {
        self.heads(0, self.dims.n_heads)
    }

    /// K as (B, H_kv, N, d): a view into the output.
    pub fn k(&self) -> ArrayView4<'_, f32> {
        self.heads(self.dims.q_cols(), self.dims.n_kv_heads)
    }

    /// V as (B, H_kv, N, d): a view into the output.
    pub fn v(&self) -> ArrayView4<'_, f32> {
        self.heads(self.dims.q_cols() + self.dims.kv_cols(), self.dims.n_kv_heads)
    }

    /// `heads` heads of d columns starting at column `first`, as (B, heads, N, d) with strides
    /// (N·C, d, C, 1): batch entries N·C apart, heads d apart within a token's row, tokens C apart.
    fn heads(&self, first: usize, heads: usize) -> ArrayView4<'_, f32> {
        let (c, d) = (self.dims.fused_cols(), self.dims.head_dim);
        let data = self.qkv.as_slice().expect("gemm_xwt writes standard layout");
        let shape = (self.batch, heads, self.seq, d).strides((self.seq * c, d, c, 1));
        ArrayView4::from_shape(shape, &data[first..]).expect("the block lies inside the output")
    }
}
// ANCHOR_END: fused

// ANCHOR: repeat_kv
/// K or V, (B, H_kv, N, d), repeated to (B, H_kv · group, N, d): query head h reads KV head
/// h / group. A copy — no single stride maps h to h / group — as Hugging Face's `repeat_kv`
/// makes, for attention code that wants equal head counts (chapter 2's `sdpa`); a GQA kernel
/// indexes KV head h / group instead and reads each K, V head once for its whole group.
pub fn repeat_kv(kv: ArrayView4<f32>, group: usize) -> Result<Array4<f32>> {
    if group == 0 {
        return Err(Error::InvalidArgument("repeat_kv: group = 0; a group holds ≥ 1 query head".into()));
    }
    let (batch, kv_heads, seq, d) = kv.dim();
    Ok(Array4::from_shape_fn((batch, kv_heads * group, seq, d), |(b, h, n, c)| kv[[b, h / group, n, c]]))
}
// ANCHOR_END: repeat_kv

/// The two versions of the projection, for the byte model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkvPipeline {
    /// Three GEMMs, each reading X.
    ThreeGemms,
    /// One GEMM against `[W_q; W_k; W_v]`.
    OneGemm,
}

impl QkvPipeline {
    // ANCHOR: qkv_bytes
    /// Bytes moved for `tokens` tokens with elements of `dtype_bytes`, each GEMM reading its
    /// operands once and writing its output once (an ideal GEMM: a real one re-reads tiles,
    /// mostly from cache). Both read every weight and write every output once: (H·d + 2·H_kv·d)
    /// · d_model and tokens · (H·d + 2·H_kv·d) elements. They differ only in X, read three
    /// times or once: the saving is `2 · tokens · d_model` elements, which is small next to the
    /// weights at decode and small next to the arithmetic at prefill (see [`QkvDims::flops`]).
    pub fn bytes_moved(self, dims: QkvDims, tokens: usize, dtype_bytes: u64) -> BytesMoved {
        let (tokens, d_model, cols) = (tokens as u64, dims.d_model as u64, dims.fused_cols() as u64);
        let x_reads = match self {
            QkvPipeline::ThreeGemms => 3,
            QkvPipeline::OneGemm => 1,
        };
        BytesMoved {
            read: (x_reads * tokens * d_model + cols * d_model) * dtype_bytes,
            written: tokens * cols * dtype_bytes,
        }
    }
    // ANCHOR_END: qkv_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_model_matches_a_hand_count() {
        // SmolLM2-135M decode, one token, bf16: X = 576 · 2 = 1152 bytes; weights
        // 960 · 576 · 2 = 1 105 920 bytes; output 960 · 2 = 1920 bytes.
        let three = QkvPipeline::ThreeGemms.bytes_moved(SMOLLM2_135M, 1, 2);
        let one = QkvPipeline::OneGemm.bytes_moved(SMOLLM2_135M, 1, 2);
        assert_eq!(three, BytesMoved { read: 3 * 1152 + 1_105_920, written: 1920 });
        assert_eq!(one, BytesMoved { read: 1152 + 1_105_920, written: 1920 });
        // Llama-3-8B prefill, 4096 tokens, bf16: X 32 MiB, weights 6144 · 4096 · 2 = 48 MiB,
        // output 48 MiB: 192 MiB against 128 MiB, for 2 · 4096 · 4096 · 6144 ≈ 206 GFLOP either way.
        assert_eq!(QkvPipeline::ThreeGemms.bytes_moved(LLAMA3_8B, 4096, 2).total(), 192 << 20);
        assert_eq!(QkvPipeline::OneGemm.bytes_moved(LLAMA3_8B, 4096, 2).total(), 128 << 20);
        assert_eq!(LLAMA3_8B.flops(4096), 206_158_430_208);
    }
}
