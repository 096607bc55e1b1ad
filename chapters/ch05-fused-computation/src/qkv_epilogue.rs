//! The epilogue of the QKV GEMM: RoPE on q and k, then k and v written into the KV cache.
//!
//! The fused GEMM ([`crate::qkv_fused`]) leaves one (n, C) matrix for a chunk of n tokens at
//! positions `p0 … p0 + n − 1`, C = H·d + 2·H_kv·d, row = token, Q | K | V column blocks. Before
//! attention can use it, a decoder does three things:
//!
//! 1. rotate every query head by its token's position (RoPE) and lay q out head-major,
//!    (H, n, d), the layout an attention kernel loads tiles from;
//! 2. rotate every key head the same way;
//! 3. store k and v in the KV cache, (H_kv, max_len, d) per layer, at rows `p0 … p0 + n − 1`,
//!    where the next steps' attention will read them.
//!
//! **Unfused, as a framework runs it** ([`epilogue_unfused`]): three passes over memory, as
//! Hugging Face's Llama does with `apply_rotary_pos_emb(q, k, cos, sin)` (which returns new
//! tensors `q_embed`, `k_embed`) followed by `past_key_values.update(k_embed, v)` (which copies
//! them into the cache): pass 1 reads the q block and writes rotated q; pass 2 reads the k block
//! and writes rotated k to a temporary; pass 3 reads that temporary and the v block and writes
//! both into the cache. (Eager PyTorch in fact splits each rotation into several elementwise
//! kernels — `x·cos`, `rotate_half`'s `cat`, `·sin`, `+` — so three passes is the generous
//! count.)
//!
//! **Fused** ([`epilogue_fused`]): one pass that reads each element of the GEMM's output once
//! and writes it once, to its final place. What it saves is the rotated-k temporary (written
//! and read back: 2·n·H_kv·d elements), a second read of the cos/sin rows, and two launches —
//! see [`EpiloguePipeline::bytes_moved`]. A GEMM library's epilogue hook (CUTLASS's epilogue
//! visitor) would fold this pass into the GEMM's own store; cuBLAS has no such hook, so on the
//! GPU the fused version is one kernel after the GEMM.
//!
//! **The rotation** is the half-rotation layout of GPT-NeoX, Hugging Face Llama and SmolLM2:
//! `x·cos + rotate_half(x)·sin`, with `rotate_half(x) = [−x[d/2..], x[..d/2]]` and tables
//! `cos`, `sin` of shape (max_positions, d) as Hugging Face's `LlamaRotaryEmbedding` returns
//! them (the d/2 frequencies duplicated, `cat((freqs, freqs))`). RoPE itself — the frequencies,
//! the layouts, the scalings — is chapter 6's subject; here the tables are inputs, and
//! [`rotate_half_with_table`] is the one function that applies them.
//!
//! Both versions compute every output element with the same f32 operations in the same order,
//! so they agree bit for bit (and the GPU kernels, which forbid FMA contraction, agree with
//! them bit for bit too).

use crate::bytes::BytesMoved;
use crate::qkv_projection::QkvDims;
use attn_support::ndarray::{Array2, Array3, ArrayView2, ArrayViewMut3, Axis};
use attn_support::{Error, Result};

// ANCHOR: rotate_half
/// RoPE of one head vector in the half-rotation layout, from one row of the cos/sin tables:
/// `out = x·cos + rotate_half(x)·sin`, `rotate_half(x) = [−x[h..], x[..h]]`, h = d/2, i.e.
///
/// `out[i] = x[i]·cos[i] − x[i+h]·sin[i]`, `out[i+h] = x[i+h]·cos[i+h] + x[i]·sin[i+h]`, i < h.
///
/// Written with the negation folded into a subtraction, which is exact, so the roundings are
/// those of Hugging Face's formula. Every slice must have the same even length (checked by the
/// callers once per call, not per vector; a mismatch here panics).
pub fn rotate_half_with_table(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    let d = x.len();
    assert!(
        d.is_multiple_of(2) && cos.len() == d && sin.len() == d && out.len() == d,
        "rotate_half_with_table: x, cos, sin, out must have one even length, got {}, {}, {}, {}",
        d,
        cos.len(),
        sin.len(),
        out.len()
    );
    let h = d / 2;
    for i in 0..h {
        let (a, b) = (x[i], x[i + h]);
        out[i] = a * cos[i] - b * sin[i];
        out[i + h] = b * cos[i + h] + a * sin[i + h];
    }
}
// ANCHOR_END: rotate_half

/// Hugging Face Llama's default tables, (max_positions, d) each: `cos(m·θ_i)`, `sin(m·θ_i)` at
/// column i and i + d/2, `θ_i = base^(−2i/d)` computed in f32 as `LlamaRotaryEmbedding` does.
/// Realistic inputs for the tests and the benchmark; chapter 6 derives them and their scalings.
pub fn llama_rope_tables(
    max_positions: usize,
    head_dim: usize,
    base: f32,
) -> Result<(Array2<f32>, Array2<f32>)> {
    if max_positions == 0 || head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(Error::InvalidArgument(format!(
            "RoPE tables need max_positions ≥ 1 and an even head_dim ≥ 2, got {max_positions} and {head_dim}"
        )));
    }
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32)).collect();
    let angle = |m: usize, c: usize| inv_freq[c % half] * m as f32;
    let cos = Array2::from_shape_fn((max_positions, head_dim), |(m, c)| angle(m, c).cos());
    let sin = Array2::from_shape_fn((max_positions, head_dim), |(m, c)| angle(m, c).sin());
    Ok((cos, sin))
}

/// One layer's KV cache: k and v as (H_kv, max_len, d), row p of head h holding the token at
/// position p. (Chapter 7 is about caches; this is the plain layout they start from.)
#[derive(Clone, Debug, PartialEq)]
pub struct KvCache {
    pub k: Array3<f32>,
    pub v: Array3<f32>,
}

impl KvCache {
    /// A zero cache for `max_len` positions.
    pub fn zeros(dims: QkvDims, max_len: usize) -> KvCache {
        let shape = (dims.n_kv_heads, max_len, dims.head_dim);
        KvCache { k: Array3::zeros(shape), v: Array3::zeros(shape) }
    }

    /// Positions the cache holds.
    pub fn max_len(&self) -> usize {
        self.k.len_of(Axis(1))
    }
}

/// The sizes of one epilogue call, checked once on the host by the CPU and GPU versions alike:
/// `tokens` tokens at positions `start … start + tokens − 1`, tables of `table_positions` rows,
/// a cache of `cache_len` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpilogueShape {
    pub dims: QkvDims,
    pub tokens: usize,
    pub start: usize,
    pub table_positions: usize,
    pub cache_len: usize,
}

impl EpilogueShape {
    /// Every position must have a table row and a cache row; d must be even (RoPE pairs dims).
    pub fn check(&self) -> Result<()> {
        self.dims.check()?;
        let EpilogueShape { dims, tokens, start, table_positions, cache_len } = *self;
        if tokens == 0 {
            return Err(Error::InvalidArgument("the epilogue needs tokens ≥ 1, got 0".into()));
        }
        if !dims.head_dim.is_multiple_of(2) {
            return Err(Error::InvalidArgument(format!(
                "RoPE rotates pairs of dims: head_dim = {} must be even",
                dims.head_dim
            )));
        }
        let last = start
            .checked_add(tokens - 1)
            .ok_or_else(|| Error::InvalidArgument(format!("positions {start} + {tokens} overflow usize")))?;
        if last >= table_positions {
            return Err(Error::InvalidArgument(format!(
                "position {last} (start {start} + {tokens} tokens − 1) is past the cos/sin table of \
                 {table_positions} positions"
            )));
        }
        if last >= cache_len {
            return Err(Error::InvalidArgument(format!(
                "position {last} (start {start} + {tokens} tokens − 1) is past the KV cache of \
                 {cache_len} positions"
            )));
        }
        Ok(())
    }
}

/// Check the arrays of one call against each other and return the shape.
fn check_inputs(
    qkv: &ArrayView2<f32>,
    dims: QkvDims,
    cos: &ArrayView2<f32>,
    sin: &ArrayView2<f32>,
    start: usize,
    cache: &KvCache,
) -> Result<EpilogueShape> {
    epilogue_shape(dims, qkv.shape(), [cos.shape(), sin.shape()], start, [cache.k.shape(), cache.v.shape()])
}

/// The epilogue's shape from its inputs' shapes, whatever their element type (the CPU and the
/// GPU versions check the same things): qkv (tokens, H·d + 2·H_kv·d), cos and sin
/// (positions, d), k and v caches (H_kv, max_len, d), then [`EpilogueShape::check`] for
/// `start`. An error names the first shape that is wrong.
pub fn epilogue_shape(
    dims: QkvDims,
    qkv: &[usize],
    [cos, sin]: [&[usize]; 2],
    start: usize,
    [k_cache, v_cache]: [&[usize]; 2],
) -> Result<EpilogueShape> {
    dims.check()?;
    if qkv.len() != 2 || qkv[1] != dims.fused_cols() {
        return Err(Error::shapes(
            "the QKV output is (tokens, H·d + 2·H_kv·d)",
            "qkv",
            qkv,
            "expected",
            &[qkv.first().copied().unwrap_or(0), dims.fused_cols()],
        ));
    }
    if cos.len() != 2 || cos[1] != dims.head_dim || cos != sin {
        return Err(Error::shapes("cos and sin are (max_positions, head_dim)", "cos", cos, "sin", sin));
    }
    let cache_len = k_cache.get(1).copied().unwrap_or(0);
    let want = [dims.n_kv_heads, cache_len, dims.head_dim];
    for (name, a) in [("k cache", k_cache), ("v cache", v_cache)] {
        if a != want {
            return Err(Error::shapes("the KV cache is (H_kv, max_len, d)", name, a, "expected", &want));
        }
    }
    let shape = EpilogueShape { dims, tokens: qkv[0], start, table_positions: cos[0], cache_len };
    shape.check()?;
    Ok(shape)
}

/// Columns of head `slot` of the fused output: q heads are slots 0 … H−1, k heads H … H+H_kv−1,
/// v heads the rest.
fn head_cols(slot: usize, d: usize) -> std::ops::Range<usize> {
    slot * d..(slot + 1) * d
}

/// Rotate `heads` heads starting at slot `first` of every token into `out` (heads, n, d).
fn rope_pass(
    qkv: &ArrayView2<f32>,
    first: usize,
    mut out: ArrayViewMut3<f32>,
    cos: &ArrayView2<f32>,
    sin: &ArrayView2<f32>,
    start: usize,
) {
    let d = out.len_of(Axis(2));
    for (h, mut head) in out.outer_iter_mut().enumerate() {
        for (t, mut row) in head.outer_iter_mut().enumerate() {
            let x = qkv.row(t);
            let x = &x.as_slice().expect("standard layout checked")[head_cols(first + h, d)];
            let (c, s) = (cos.row(start + t), sin.row(start + t));
            let (c, s) = (c.as_slice().expect("standard"), s.as_slice().expect("standard"));
            rotate_half_with_table(x, c, s, row.as_slice_mut().expect("fresh array"));
        }
    }
}

// ANCHOR: unfused
/// Three passes: rotate q into (H, n, d); rotate k into a temporary (H_kv, n, d); copy that
/// temporary and the v block into the cache rows `start … start + n − 1`. Returns q.
pub fn epilogue_unfused(
    qkv: ArrayView2<f32>,
    dims: QkvDims,
    cos: ArrayView2<f32>,
    sin: ArrayView2<f32>,
    start: usize,
    cache: &mut KvCache,
) -> Result<Array3<f32>> {
    let shape = check_inputs(&qkv, dims, &cos, &sin, start, cache)?;
    let (qkv, cos, sin) = (qkv.as_standard_layout(), cos.as_standard_layout(), sin.as_standard_layout());
    let (qkv, cos, sin) = (qkv.view(), cos.view(), sin.view());
    let (n, d, hkv) = (shape.tokens, dims.head_dim, dims.n_kv_heads);
    // Pass 1: q.
    let mut q = Array3::<f32>::zeros((dims.n_heads, n, d));
    rope_pass(&qkv, 0, q.view_mut(), &cos, &sin, start);
    // Pass 2: k into a temporary, as `apply_rotary_pos_emb` returns a new tensor.
    let mut k_rotated = Array3::<f32>::zeros((hkv, n, d));
    rope_pass(&qkv, dims.n_heads, k_rotated.view_mut(), &cos, &sin, start);
    // Pass 3: the cache update reads the temporary and the v block.
    for h in 0..hkv {
        for t in 0..n {
            cache.k.row_mut_at(h, start + t).assign(&k_rotated.row_at(h, t));
            let v = &qkv.row(t).to_slice().expect("standard")[head_cols(dims.n_heads + hkv + h, d)];
            cache.v.row_mut_at(h, start + t).as_slice_mut().expect("standard").copy_from_slice(v);
        }
    }
    Ok(q)
}
// ANCHOR_END: unfused

// ANCHOR: fused
/// One pass: each token's row of the GEMM output is read once, and each head goes straight to
/// its final place — rotated q into (H, n, d), rotated k and plain v into the cache. Returns q.
pub fn epilogue_fused(
    qkv: ArrayView2<f32>,
    dims: QkvDims,
    cos: ArrayView2<f32>,
    sin: ArrayView2<f32>,
    start: usize,
    cache: &mut KvCache,
) -> Result<Array3<f32>> {
    let shape = check_inputs(&qkv, dims, &cos, &sin, start, cache)?;
    let (qkv, cos, sin) = (qkv.as_standard_layout(), cos.as_standard_layout(), sin.as_standard_layout());
    let (d, h_q, hkv) = (dims.head_dim, dims.n_heads, dims.n_kv_heads);
    let mut q = Array3::<f32>::zeros((h_q, shape.tokens, d));
    for t in 0..shape.tokens {
        let row = qkv.row(t);
        let row = row.as_slice().expect("standard layout");
        let pos = start + t;
        let (c, s) = (cos.row(pos), sin.row(pos));
        let (c, s) = (c.as_slice().expect("standard"), s.as_slice().expect("standard"));
        for slot in 0..h_q + 2 * hkv {
            let x = &row[head_cols(slot, d)];
            if slot < h_q {
                rotate_half_with_table(x, c, s, q.row_mut_at(slot, t).as_slice_mut().expect("fresh"));
            } else if slot < h_q + hkv {
                let mut k = cache.k.row_mut_at(slot - h_q, pos);
                rotate_half_with_table(x, c, s, k.as_slice_mut().expect("standard"));
            } else {
                let mut v = cache.v.row_mut_at(slot - h_q - hkv, pos);
                v.as_slice_mut().expect("standard").copy_from_slice(x);
            }
        }
    }
    Ok(q)
}
// ANCHOR_END: fused

/// Row `(h, p)` of a (heads, rows, d) array, as a 1-D view.
trait HeadRows {
    fn row_at(&self, h: usize, p: usize) -> attn_support::ndarray::ArrayView1<'_, f32>;
    fn row_mut_at(&mut self, h: usize, p: usize) -> attn_support::ndarray::ArrayViewMut1<'_, f32>;
}

impl HeadRows for Array3<f32> {
    fn row_at(&self, h: usize, p: usize) -> attn_support::ndarray::ArrayView1<'_, f32> {
        self.index_axis(Axis(0), h).index_axis_move(Axis(0), p)
    }
    fn row_mut_at(&mut self, h: usize, p: usize) -> attn_support::ndarray::ArrayViewMut1<'_, f32> {
        self.index_axis_mut(Axis(0), h).index_axis_move(Axis(0), p)
    }
}

/// The two versions of the epilogue, for the byte model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpiloguePipeline {
    /// Rope q, rope k into a temporary, copy k and v into the cache.
    ThreePasses,
    /// One pass from the GEMM output to q and the cache.
    OnePass,
}

impl EpiloguePipeline {
    // ANCHOR: epilogue_bytes
    /// Bytes moved for `tokens` tokens with elements (and table entries) of `dtype_bytes`,
    /// each pass reading its inputs once and writing its outputs once. With
    /// q = n·H·d, kv = n·H_kv·d and tab = 2·n·d (the cos and sin rows of the n positions):
    ///
    /// - three passes: read q + tab, write q; read kv + tab, write kv (the temporary); read
    ///   2·kv, write 2·kv — read q + 3·kv + 2·tab, write q + 3·kv;
    /// - one pass: read q + 2·kv + tab, write q + 2·kv.
    ///
    /// The saving is kv written, kv read and tab read once more: for GQA models with few KV
    /// heads, a small part of the whole (see the tests for the numbers).
    pub fn bytes_moved(self, dims: QkvDims, tokens: usize, dtype_bytes: u64) -> BytesMoved {
        let n = tokens as u64;
        let q = n * dims.q_cols() as u64;
        let kv = n * dims.kv_cols() as u64;
        let tab = 2 * n * dims.head_dim as u64;
        let (read, written) = match self {
            EpiloguePipeline::ThreePasses => (q + 3 * kv + 2 * tab, q + 3 * kv),
            EpiloguePipeline::OnePass => (q + 2 * kv + tab, q + 2 * kv),
        };
        BytesMoved { read: read * dtype_bytes, written: written * dtype_bytes }
    }
    // ANCHOR_END: epilogue_bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qkv_projection::{LLAMA3_8B, SMOLLM2_135M};

    #[test]
    fn byte_model_matches_a_hand_count() {
        // SmolLM2-135M, one token, bf16: q = 576, kv = 192, tab = 128 elements.
        let three = EpiloguePipeline::ThreePasses.bytes_moved(SMOLLM2_135M, 1, 2);
        let one = EpiloguePipeline::OnePass.bytes_moved(SMOLLM2_135M, 1, 2);
        assert_eq!(three, BytesMoved { read: (576 + 576 + 256) * 2, written: (576 + 576) * 2 });
        assert_eq!(one, BytesMoved { read: (576 + 384 + 128) * 2, written: (576 + 384) * 2 });
        // Llama-3-8B, 4096 tokens, bf16: q = 16 Mi, kv = 4 Mi, tab = 1 Mi elements.
        let mi = 1u64 << 20;
        assert_eq!(EpiloguePipeline::ThreePasses.bytes_moved(LLAMA3_8B, 4096, 2).total(), (56 + 2) * mi * 2);
        assert_eq!(EpiloguePipeline::OnePass.bytes_moved(LLAMA3_8B, 4096, 2).total(), (48 + 1) * mi * 2);
    }

    #[test]
    fn rotate_half_is_x_cos_plus_rotate_half_x_sin() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let (c, s) = ([0.5, 0.25, 0.5, 0.25], [2.0, 4.0, 2.0, 4.0]);
        let mut out = [0.0; 4];
        rotate_half_with_table(&x, &c, &s, &mut out);
        // rotate_half(x) = [−3, −4, 1, 2]
        assert_eq!(out, [0.5 - 6.0, 0.5 - 16.0, 1.5 + 2.0, 1.0 + 8.0]);
    }
}
