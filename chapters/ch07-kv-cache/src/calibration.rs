//! Looking at the real model's cache: run a text through it and read back what every layer
//! stored. The keys and values feed the low-rank bases, the per-channel magnitudes of K (its
//! outlier channels, the reason K is quantised per channel) and the per-layer budgets.

use attn_model::{DenseKvCache, GqaSdpa, KvCache, Llama, Result};
use attn_support::ndarray::{Array1, Array2, Array3, Axis};

/// Keys and values of every layer after running `ids`: `(kv heads, tokens, d)` each, post-RoPE
/// keys as the cache holds them.
pub fn record_kv(model: &Llama, ids: &[u32]) -> Result<Vec<(Array3<f32>, Array3<f32>)>> {
    let mut cache = DenseKvCache::new(model.config(), ids.len())?;
    model.forward_last(ids, &mut cache, &GqaSdpa)?;
    (0..model.config().n_layers)
        .map(|l| {
            let (k, v) = cache.keys_values(l)?;
            Ok((k.into_owned(), v.into_owned()))
        })
        .collect()
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
