//! Looking at the real model's cache: run a text through it and read back what every layer
//! stored. The keys and values feed the low-rank bases, the per-channel magnitudes of K (its
//! outlier channels, the reason K is quantised per channel) and the per-layer budgets.

use attn_model::llama::AttentionBackend;
use attn_model::{DenseKvCache, GqaSdpa, KvCache, Llama, Result};
use attn_support::ndarray::{Array1, Array2, Array3, ArrayView3, Axis};
use std::cell::RefCell;

/// Keys and values of every layer after running `ids`: `(kv heads, tokens, d)` each, post-RoPE
/// keys as the cache holds them.
pub fn record_kv(model: &Llama, ids: &[u32]) -> Result<Vec<LayerKv>> {
    let mut cache = DenseKvCache::new(model.config(), ids.len())?;
    model.forward_last(ids, &mut cache, &GqaSdpa)?;
    (0..model.config().n_layers)
        .map(|l| {
            let (k, v) = cache.keys_values(l)?;
            Ok((k.into_owned(), v.into_owned()))
        })
        .collect()
}

/// One layer's keys and values, `(kv heads, tokens, d)` each.
pub type LayerKv = (Array3<f32>, Array3<f32>);

/// Chapter 2's attention that also keeps every call's queries `(n_heads, new, d)`, in call
/// order: one call per layer per forward pass.
#[derive(Default)]
pub struct RecordingAttention {
    pub queries: RefCell<Vec<Array3<f32>>>,
}

impl AttentionBackend for RecordingAttention {
    fn attend(
        &self,
        queries: ArrayView3<f32>,
        keys: ArrayView3<f32>,
        values: ArrayView3<f32>,
    ) -> Result<Array3<f32>> {
        self.queries.borrow_mut().push(queries.to_owned());
        GqaSdpa.attend(queries, keys, values)
    }
}

/// As [`record_kv`], and the queries of every layer (post-RoPE, `(n_heads, tokens, d)`), in one
/// forward pass.
pub fn record_kv_and_queries(model: &Llama, ids: &[u32]) -> Result<(Vec<LayerKv>, Vec<Array3<f32>>)> {
    let mut cache = DenseKvCache::new(model.config(), ids.len())?;
    let recorder = RecordingAttention::default();
    model.forward_last(ids, &mut cache, &recorder)?;
    let kv = (0..model.config().n_layers)
        .map(|l| {
            let (k, v) = cache.keys_values(l)?;
            Ok((k.into_owned(), v.into_owned()))
        })
        .collect::<Result<_>>()?;
    Ok((kv, recorder.queries.into_inner()))
}

/// The largest magnitude of each channel of `x (kv heads, tokens, d)` over the tokens:
/// `(kv heads, d)`.
pub fn channel_absmax(x: &Array3<f32>) -> Array2<f32> {
    x.fold_axis(Axis(1), 0.0f32, |m, v| m.max(v.abs()))
}

/// How uneven the channels are: the largest channel magnitude over the median one, per KV
/// head. A per-token scale is set by the largest channel, so the others get `ratio` times
/// coarser steps than a per-channel scale would give them.
pub fn outlier_ratio(absmax: &Array2<f32>) -> Array1<f32> {
    absmax
        .outer_iter()
        .map(|row| {
            let mut sorted = row.to_vec();
            sorted.sort_by(f32::total_cmp);
            let median = sorted[sorted.len() / 2];
            if median == 0.0 { 0.0 } else { sorted[sorted.len() - 1] / median }
        })
        .collect()
}
