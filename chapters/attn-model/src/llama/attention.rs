//! Attention as a parameter of the forward pass: the model hands over the new tokens' queries
//! and the cache's keys and values; a backend returns the outputs. Chapters 7–11 plug in their
//! own (on the GPU, over a paged cache, with sinks); [`GqaSdpa`] is chapter 2's.

use crate::error::{Error, Result};
use attn_support::ndarray::{Array3, ArrayView3, ArrayView4, Axis, s};
use ch02_scaled_dot_product::{SdpaMask, SdpaOptions, attention_weights, sdpa};

/// Attention over a cache: `queries (n_heads, new, d)`, `keys`/`values (n_kv_heads, kept, d)`
/// with the new tokens last; returns `(n_heads, new, d)`. Query `i` sees the keys up to its own
/// token: key `j` iff `j ≤ i + kept − new` (causal, aligned to the end).
pub trait AttentionBackend {
    fn attend(
        &self,
        queries: ArrayView3<f32>,
        keys: ArrayView3<f32>,
        values: ArrayView3<f32>,
    ) -> Result<Array3<f32>>;
}

/// Chapter 2's `sdpa` with grouped-query attention's head mapping: query head `h` reads KV head
/// `h / (n_heads / n_kv_heads)`, so the `group` query heads of a KV head share its keys and
/// values (SmolLM2: 9 query heads, 3 KV heads, groups of 3).
#[derive(Clone, Copy, Debug, Default)]
pub struct GqaSdpa;

impl AttentionBackend for GqaSdpa {
    fn attend(
        &self,
        queries: ArrayView3<f32>,
        keys: ArrayView3<f32>,
        values: ArrayView3<f32>,
    ) -> Result<Array3<f32>> {
        let group = gqa_group(queries, keys, values)?;
        let mut out = Array3::<f32>::zeros(queries.raw_dim());
        // One sdpa call per KV head, its group's query heads batched as sdpa's batch axis: each
        // sees the same (1, 1, kept, d) keys broadcast, no copy.
        for (kv_head, mut out_group) in out.axis_chunks_iter_mut(Axis(0), group).enumerate() {
            let (k, v) = (kv_head_view(keys, kv_head), kv_head_view(values, kv_head));
            let o = sdpa(
                group_queries(queries, kv_head, group),
                across(&k, group),
                across(&v, group),
                &SdpaMask::causal(),
            )?;
            out_group.assign(&o.index_axis(Axis(1), 0));
        }
        Ok(out)
    }
}

/// The attention weights of the same call, `(n_heads, new, kept)`: chapter 2's
/// `attention_weights` per KV head group, for caches that rank tokens by them.
pub fn gqa_attention_weights(queries: ArrayView3<f32>, keys: ArrayView3<f32>) -> Result<Array3<f32>> {
    let group = gqa_group(queries, keys, keys)?;
    let (h, n, _) = queries.dim();
    let mut weights = Array3::<f32>::zeros((h, n, keys.dim().1));
    for (kv_head, mut w_group) in weights.axis_chunks_iter_mut(Axis(0), group).enumerate() {
        let k = kv_head_view(keys, kv_head);
        let q = group_queries(queries, kv_head, group);
        let w = attention_weights(q, across(&k, group), &SdpaMask::causal(), &SdpaOptions::default())?;
        w_group.assign(&w.index_axis(Axis(1), 0));
    }
    Ok(weights)
}

/// The `group` query heads of KV head `kv_head` as chapter 2's batch axis: `(group, 1, new, d)`.
fn group_queries(queries: ArrayView3<'_, f32>, kv_head: usize, group: usize) -> ArrayView4<'_, f32> {
    queries.slice_move(s![kv_head * group..(kv_head + 1) * group, .., ..]).insert_axis(Axis(1))
}

/// KV head `kv_head`'s keys or values as a batch of one: `(1, 1, kept, d)`.
fn kv_head_view(x: ArrayView3<'_, f32>, kv_head: usize) -> ArrayView4<'_, f32> {
    x.slice_move(s![kv_head..kv_head + 1, .., ..]).insert_axis(Axis(1))
}

/// That batch of one seen by each of the `group` query heads: `(group, 1, kept, d)`, broadcast
/// (stride 0 along the group), no copy.
fn across<'a>(x: &'a ArrayView4<f32>, group: usize) -> ArrayView4<'a, f32> {
    let (_, _, kept, d) = x.dim();
    x.broadcast([group, 1, kept, d]).expect("a KV head of batch 1 broadcasts to its group")
}

/// Check the shapes of one attention call; returns the query heads per KV head.
pub fn gqa_group(queries: ArrayView3<f32>, keys: ArrayView3<f32>, values: ArrayView3<f32>) -> Result<usize> {
    let (h, n, d) = queries.dim();
    let (hk, t, dk) = keys.dim();
    let fail = |why: &str| {
        Err(Error::Shape(format!(
            "{why}: queries {:?}, keys {:?}, values {:?}",
            queries.shape(),
            keys.shape(),
            values.shape()
        )))
    };
    if keys.dim() != values.dim() {
        return fail("keys and values differ in shape");
    }
    if h == 0 || n == 0 || hk == 0 || d == 0 {
        return fail("an empty attention call");
    }
    if d != dk {
        return fail("queries and keys differ in head dim");
    }
    if !h.is_multiple_of(hk) {
        return fail("query heads are not a multiple of KV heads");
    }
    if t < n {
        return fail("fewer keys than new tokens: the new tokens' own keys must be in the cache");
    }
    Ok(h / hk)
}
