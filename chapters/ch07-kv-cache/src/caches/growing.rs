//! Dynamic caches: full precision, but memory taken as the sequence grows instead of all at
//! once. Three policies, with what each costs:
//!
//! | policy | memory held at length T | copying |
//! | --- | --- | --- |
//! | preallocate the maximum `T_max` | `T_max` tokens from the start | none |
//! | grow by chunks of `C` | `⌈T/C⌉·C`: at most `C − 1` tokens unused | `Σ` of all earlier sizes: O(T²/C) |
//! | grow by doubling | `< 2T` | `< 2T` in total: O(T), amortised O(1) per token |
//!
//! A grown cache moves its contents to a new, larger array; the bytes it copies are counted.
//! Chapter 8 removes the copy altogether: pages of fixed size that need not be contiguous.

use attn_model::llama::cache::check_new_tokens;
use attn_model::{Error, KvCache, LlamaConfig, Result};
use attn_support::ndarray::{Array3, ArrayView3, CowArray, Ix3, s};

/// How capacity grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// All `max` tokens allocated up front; appending past them is an error.
    Preallocated { max: usize },
    /// Grow by `chunk` tokens whenever full.
    Chunks { chunk: usize },
    /// Start at `initial` tokens and double whenever full.
    Doubling { initial: usize },
}

impl Growth {
    /// The capacity after growing from `capacity` to hold at least `needed` tokens.
    pub fn grown(&self, capacity: usize, needed: usize) -> Result<usize> {
        let mut cap = capacity;
        while cap < needed {
            cap = match *self {
                Growth::Preallocated { max } => {
                    return Err(Error::Cache(format!(
                        "a cache preallocated for {max} tokens cannot hold {needed}"
                    )));
                }
                Growth::Chunks { chunk } => cap + chunk,
                Growth::Doubling { initial } => (cap * 2).max(initial),
            };
        }
        Ok(cap)
    }

    fn initial(&self) -> usize {
        match *self {
            Growth::Preallocated { max } => max,
            Growth::Chunks { .. } | Growth::Doubling { .. } => 0,
        }
    }

    pub fn name(&self) -> String {
        match *self {
            Growth::Preallocated { max } => format!("preallocated {max}"),
            Growth::Chunks { chunk } => format!("chunks of {chunk}"),
            Growth::Doubling { initial } => format!("doubling from {initial}"),
        }
    }
}

/// What growing cost so far, all layers, K and V.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrowthCost {
    pub reallocations: usize,
    pub bytes_copied: usize,
}

struct Layer {
    keys: Array3<f32>,
    values: Array3<f32>,
    len: usize,
}

/// A full-precision cache that grows by `growth`.
pub struct GrowingKvCache {
    growth: Growth,
    layers: Vec<Layer>,
    cost: GrowthCost,
}

impl GrowingKvCache {
    pub fn new(config: &LlamaConfig, growth: Growth) -> Result<Self> {
        let bad = match growth {
            Growth::Preallocated { max } => max == 0,
            Growth::Chunks { chunk } => chunk == 0,
            Growth::Doubling { initial } => initial == 0,
        };
        if bad {
            return Err(Error::Cache(format!("{}: a size of 0 cannot grow", growth.name())));
        }
        let shape = (config.n_kv_heads, growth.initial(), config.head_dim);
        let layer = || Layer { keys: Array3::zeros(shape), values: Array3::zeros(shape), len: 0 };
        Ok(GrowingKvCache {
            growth,
            layers: (0..config.n_layers).map(|_| layer()).collect(),
            cost: GrowthCost::default(),
        })
    }

    pub fn cost(&self) -> GrowthCost {
        self.cost
    }

    /// Bytes allocated now (capacity, not length), all layers, K and V, f32.
    pub fn bytes_allocated(&self) -> usize {
        self.layers.iter().map(|l| 2 * l.keys.len() * 4).sum()
    }
}

impl KvCache for GrowingKvCache {
    fn tokens_seen(&self, layer: usize) -> usize {
        self.layers.get(layer).map_or(0, |l| l.len)
    }

    fn append(&mut self, layer: usize, keys: ArrayView3<f32>, values: ArrayView3<f32>) -> Result<()> {
        let n_layers = self.layers.len();
        let l =
            self.layers.get_mut(layer).ok_or_else(|| Error::Cache(format!("layer {layer} of {n_layers}")))?;
        let (heads, capacity, dim) = l.keys.dim();
        check_new_tokens(keys, values, heads, dim)?;
        let needed = l.len + keys.dim().1;
        if needed > capacity {
            let grown = self.growth.grown(capacity, needed)?;
            for array in [&mut l.keys, &mut l.values] {
                let mut bigger = Array3::zeros((heads, grown, dim));
                bigger.slice_mut(s![.., ..l.len, ..]).assign(&array.slice(s![.., ..l.len, ..]));
                *array = bigger;
                self.cost.bytes_copied += heads * l.len * dim * 4;
            }
            self.cost.reallocations += 1;
        }
        l.keys.slice_mut(s![.., l.len..needed, ..]).assign(&keys);
        l.values.slice_mut(s![.., l.len..needed, ..]).assign(&values);
        l.len = needed;
        Ok(())
    }

    fn keys_values(&self, layer: usize) -> Result<(CowArray<'_, f32, Ix3>, CowArray<'_, f32, Ix3>)> {
        let l = self
            .layers
            .get(layer)
            .ok_or_else(|| Error::Cache(format!("layer {layer} of {}", self.layers.len())))?;
        Ok((l.keys.slice(s![.., ..l.len, ..]).into(), l.values.slice(s![.., ..l.len, ..]).into()))
    }

    fn next_position(&self) -> usize {
        self.layers.last().map_or(0, |l| l.len)
    }

    /// What is allocated (the capacity), not what is filled: the memory the policy costs.
    fn bytes_used(&self) -> f64 {
        self.bytes_allocated() as f64
    }
}
