//! The KV cache as a parameter of the forward pass. Chapter 7 teaches it and brings the
//! quantised, compressed and growing ones; this module holds the interface they all implement
//! and the plain cache every other chapter starts from.
//!
//! A decoder computes each token's keys and values once, when the token enters, with RoPE
//! already applied (so they never change), and every later token's attention reads them all.
//! The cache keeps them per layer as `(n_kv_heads, position, head_dim)`.

use crate::error::{Error, Result};
use crate::llama::config::LlamaConfig;
use attn_support::ndarray::{Array3, ArrayView3, CowArray, Ix3, s};

/// What the forward pass asks of a KV cache. `append` is called once per layer per forward
/// call with the new tokens' keys and values, `(n_kv_heads, new, head_dim)`; then
/// `keys_values` returns what attention should see for that layer, the new tokens last
/// (attention's causal mask is aligned to the end, chapter 2's bottom-right rule). A cache may
/// return fewer keys than were appended (eviction) or different numbers (quantisation).
pub trait KvCache {
    /// Tokens appended to layer `layer` so far (kept or evicted).
    fn tokens_seen(&self, layer: usize) -> usize;
    /// Store the new tokens' keys and values of `layer`. A cache that cannot hold them must
    /// return an error or make room by its policy, never overwrite silently.
    fn append(&mut self, layer: usize, keys: ArrayView3<f32>, values: ArrayView3<f32>) -> Result<()>;
    /// The keys and values attention reads for `layer`, each `(n_kv_heads, kept, head_dim)`.
    fn keys_values(&self, layer: usize) -> Result<(CowArray<'_, f32, Ix3>, CowArray<'_, f32, Ix3>)>;
    /// The position the next token gets: the tokens seen by the last layer.
    fn next_position(&self) -> usize;
    /// Bytes the cache holds now for its keys and values (encoded sizes, metadata included),
    /// all layers: the memory a cache of this design costs.
    fn bytes_used(&self) -> f64;
    /// Whether the cache wants to see the attention weights of each call (an eviction policy
    /// such as H2O ranks tokens by them); computing them costs a second pass, so only on demand.
    fn wants_attention_weights(&self) -> bool {
        false
    }
    /// The attention weights of `layer`'s last call, `(n_heads, new, kept)`, the keys in the
    /// order `keys_values` returned them. Called after attention, only if
    /// [`KvCache::wants_attention_weights`]; a cache may evict here.
    fn observe_attention(&mut self, layer: usize, weights: ArrayView3<f32>) -> Result<()> {
        let _ = (layer, weights);
        Ok(())
    }
}

/// The full-precision cache preallocated for `capacity` tokens: per layer one K and one V
/// array `(n_kv_heads, capacity, head_dim)`, filled from position 0. Appending past the
/// capacity is an error.
#[derive(Clone, Debug)]
pub struct DenseKvCache {
    keys: Vec<Array3<f32>>,
    values: Vec<Array3<f32>>,
    len: Vec<usize>,
}

impl DenseKvCache {
    pub fn new(config: &LlamaConfig, capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::Cache("a cache of capacity 0 holds no token".into()));
        }
        let shape = (config.n_kv_heads, capacity, config.head_dim);
        Ok(DenseKvCache {
            keys: vec![Array3::zeros(shape); config.n_layers],
            values: vec![Array3::zeros(shape); config.n_layers],
            len: vec![0; config.n_layers],
        })
    }

    pub fn capacity(&self) -> usize {
        self.keys.first().map_or(0, |k| k.dim().1)
    }

    fn layer(&self, layer: usize) -> Result<()> {
        if layer >= self.keys.len() {
            return Err(Error::Cache(format!("layer {layer} of a cache of {} layers", self.keys.len())));
        }
        Ok(())
    }
}

impl KvCache for DenseKvCache {
    fn tokens_seen(&self, layer: usize) -> usize {
        self.len.get(layer).copied().unwrap_or(0)
    }

    fn append(&mut self, layer: usize, keys: ArrayView3<f32>, values: ArrayView3<f32>) -> Result<()> {
        self.layer(layer)?;
        let (heads, capacity, dim) = self.keys[layer].dim();
        check_new_tokens(keys, values, heads, dim)?;
        let (start, new) = (self.len[layer], keys.dim().1);
        check_room(layer, start, new, capacity)?;
        self.keys[layer].slice_mut(s![.., start..start + new, ..]).assign(&keys);
        self.values[layer].slice_mut(s![.., start..start + new, ..]).assign(&values);
        self.len[layer] += new;
        Ok(())
    }

    fn keys_values(&self, layer: usize) -> Result<(CowArray<'_, f32, Ix3>, CowArray<'_, f32, Ix3>)> {
        self.layer(layer)?;
        let n = self.len[layer];
        Ok((self.keys[layer].slice(s![.., ..n, ..]).into(), self.values[layer].slice(s![.., ..n, ..]).into()))
    }

    fn next_position(&self) -> usize {
        self.len.last().copied().unwrap_or(0)
    }

    /// The tokens stored so far at 4 bytes (the preallocated rest is not counted: chapter 7
    /// compares what each design must hold).
    fn bytes_used(&self) -> f64 {
        self.keys.iter().zip(&self.len).map(|(k, &n)| (2 * k.dim().0 * n * k.dim().2 * 4) as f64).sum()
    }
}

/// A cache of `capacity` tokens per layer holding `held` in `layer` refuses `new` more that do
/// not fit (the caller then leaves it unchanged).
pub fn check_room(layer: usize, held: usize, new: usize, capacity: usize) -> Result<()> {
    if held + new > capacity {
        return Err(Error::Cache(format!(
            "layer {layer} holds {held} of {capacity} tokens; appending {new} would pass the capacity"
        )));
    }
    Ok(())
}

/// The new tokens' keys and values must be `(heads, new, dim)` alike with `new ≥ 1`.
pub fn check_new_tokens(
    keys: ArrayView3<f32>,
    values: ArrayView3<f32>,
    heads: usize,
    dim: usize,
) -> Result<()> {
    let (kh, kn, kd) = keys.dim();
    if keys.dim() != values.dim() || kh != heads || kd != dim || kn == 0 {
        return Err(Error::Shape(format!(
            "new keys {:?} and values {:?} must both be (kv heads {heads}, new tokens ≥ 1, head dim {dim})",
            keys.shape(),
            values.shape()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_past_the_capacity_is_an_error_that_leaves_the_cache_as_it_was() {
        let config = LlamaConfig::tiny(2, 4, 2, 8, 32);
        let mut cache = DenseKvCache::new(&config, 5).unwrap();
        let kv = Array3::<f32>::ones((2, 3, 8));
        cache.append(0, kv.view(), kv.view()).unwrap();
        let err = cache.append(0, kv.view(), kv.view()).unwrap_err().to_string();
        assert!(err.contains("holds 3 of 5"), "{err}");
        assert_eq!(cache.tokens_seen(0), 3);
        let bad = Array3::<f32>::ones((3, 1, 8));
        assert!(cache.append(1, bad.view(), bad.view()).unwrap_err().to_string().contains("kv heads 2"));
        assert!(cache.append(2, kv.view(), kv.view()).is_err());
    }
}
