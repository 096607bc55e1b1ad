//! Caches that keep a bounded number of tokens per layer and evict the rest:
//!
//! - a **sliding window**: the `W` most recent tokens (the baseline: cheap, but forgets the
//!   prompt);
//! - **H2O** (Zhang et al., 2023, "Heavy-Hitter Oracle"): the `R` most recent tokens plus the
//!   `H` older ones that have received the most attention so far, summed over the queries and
//!   over the query heads that share the KV head. A few tokens (the first, punctuation, key
//!   words) collect most of the attention mass; keeping them keeps most of the output.
//!
//! Each KV head keeps its own tokens (its heads attend differently); all heads keep the same
//! number, so attention still sees `(n_kv_heads, kept, d)`. Eviction happens when new tokens
//! arrive: the cache trims what it held to the budget, then appends them, so the new tokens
//! always see themselves and the budget of older ones.

use attn_model::llama::cache::check_new_tokens;
use attn_model::{Error, KvCache, LlamaConfig, Result};
use attn_support::ndarray::{Array3, ArrayView3, CowArray, Ix3};

/// Which older tokens survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Keep the `window` most recent.
    SlidingWindow { window: usize },
    /// Keep the `recent` most recent and the `heavy` older ones with the most attention.
    HeavyHitters { heavy: usize, recent: usize },
}

impl Eviction {
    /// Older tokens kept when new ones arrive.
    pub fn budget(&self) -> usize {
        match *self {
            Eviction::SlidingWindow { window } => window,
            Eviction::HeavyHitters { heavy, recent } => heavy + recent,
        }
    }

    pub fn name(&self) -> String {
        match *self {
            Eviction::SlidingWindow { window } => format!("sliding window {window}"),
            Eviction::HeavyHitters { heavy, recent } => format!("H2O {heavy}+{recent}"),
        }
    }
}

/// One KV head's kept tokens, in position order.
#[derive(Clone, Debug, Default)]
struct HeadTokens {
    keys: Vec<f32>,
    values: Vec<f32>,
    positions: Vec<usize>,
    /// Attention received so far (H2O's ranking).
    scores: Vec<f32>,
}

impl HeadTokens {
    /// Keep the tokens whose indices `keep` lists (ascending).
    fn retain(&mut self, keep: &[usize], d: usize) {
        let rows = |v: &[f32]| keep.iter().flat_map(|&i| v[i * d..(i + 1) * d].iter().copied()).collect();
        self.keys = rows(&self.keys);
        self.values = rows(&self.values);
        self.positions = keep.iter().map(|&i| self.positions[i]).collect();
        self.scores = keep.iter().map(|&i| self.scores[i]).collect();
    }
}

/// A cache that evicts by `policy`, with a budget per layer (the same for all, or chosen per
/// layer: [`crate::caches::budget`]).
pub struct EvictingKvCache {
    policy: Vec<Eviction>,
    head_dim: usize,
    group: usize,
    /// `[layer][kv head]`.
    layers: Vec<Vec<HeadTokens>>,
    seen: Vec<usize>,
}

impl EvictingKvCache {
    pub fn new(config: &LlamaConfig, policy: Eviction) -> Result<Self> {
        Self::per_layer(config, vec![policy; config.n_layers])
    }

    /// A policy for each layer (an adaptive budget).
    pub fn per_layer(config: &LlamaConfig, policy: Vec<Eviction>) -> Result<Self> {
        if policy.len() != config.n_layers {
            return Err(Error::Cache(format!("{} policies for {} layers", policy.len(), config.n_layers)));
        }
        if let Some(p) = policy.iter().find(|p| p.budget() == 0) {
            return Err(Error::Cache(format!("{}: a budget of 0 keeps no older token", p.name())));
        }
        Ok(EvictingKvCache {
            policy,
            head_dim: config.head_dim,
            group: config.group_size(),
            layers: vec![vec![HeadTokens::default(); config.n_kv_heads]; config.n_layers],
            seen: vec![0; config.n_layers],
        })
    }

    /// Tokens `layer` keeps now (every KV head keeps as many).
    pub fn kept(&self, layer: usize) -> usize {
        self.layers.get(layer).map_or(0, |heads| heads[0].positions.len())
    }

    /// The positions KV head `head` of `layer` keeps.
    pub fn positions(&self, layer: usize, head: usize) -> &[usize] {
        &self.layers[layer][head].positions
    }

    fn evict(&mut self, layer: usize) {
        let d = self.head_dim;
        let policy = self.policy[layer];
        for head in &mut self.layers[layer] {
            let n = head.positions.len();
            if n <= policy.budget() {
                continue;
            }
            let keep: Vec<usize> = match policy {
                Eviction::SlidingWindow { window } => (n - window..n).collect(),
                Eviction::HeavyHitters { heavy, recent } => {
                    let older = n - recent;
                    let mut ranked: Vec<usize> = (0..older).collect();
                    // Most attention first; on a tie the earlier token (stable sort).
                    ranked.sort_by(|&a, &b| head.scores[b].total_cmp(&head.scores[a]));
                    ranked.truncate(heavy);
                    ranked.sort_unstable();
                    ranked.extend(older..n);
                    ranked
                }
            };
            head.retain(&keep, d);
        }
    }
}

impl KvCache for EvictingKvCache {
    fn tokens_seen(&self, layer: usize) -> usize {
        self.seen.get(layer).copied().unwrap_or(0)
    }

    fn append(&mut self, layer: usize, keys: ArrayView3<f32>, values: ArrayView3<f32>) -> Result<()> {
        if layer >= self.layers.len() {
            return Err(Error::Cache(format!("layer {layer} of {}", self.layers.len())));
        }
        check_new_tokens(keys, values, self.layers[layer].len(), self.head_dim)?;
        self.evict(layer);
        let start = self.seen[layer];
        for (h, head) in self.layers[layer].iter_mut().enumerate() {
            for t in 0..keys.dim().1 {
                head.keys.extend(keys.slice(attn_support::ndarray::s![h, t, ..]).iter());
                head.values.extend(values.slice(attn_support::ndarray::s![h, t, ..]).iter());
                head.positions.push(start + t);
                head.scores.push(0.0);
            }
        }
        self.seen[layer] += keys.dim().1;
        Ok(())
    }

    fn keys_values(&self, layer: usize) -> Result<(CowArray<'_, f32, Ix3>, CowArray<'_, f32, Ix3>)> {
        let heads = self
            .layers
            .get(layer)
            .ok_or_else(|| Error::Cache(format!("layer {layer} of {}", self.layers.len())))?;
        let (n, d) = (heads[0].positions.len(), self.head_dim);
        let gather = |part: fn(&HeadTokens) -> &Vec<f32>| {
            let flat: Vec<f32> = heads.iter().flat_map(|h| part(h).iter().copied()).collect();
            Array3::from_shape_vec((heads.len(), n, d), flat).expect("every head keeps n tokens of d")
        };
        Ok((gather(|h| &h.keys).into(), gather(|h| &h.values).into()))
    }

    fn next_position(&self) -> usize {
        self.seen.last().copied().unwrap_or(0)
    }

    /// The kept tokens at 4 bytes (f32).
    fn bytes_used(&self) -> f64 {
        self.layers.iter().flatten().map(|h| ((h.keys.len() + h.values.len()) * 4) as f64).sum()
    }

    fn wants_attention_weights(&self) -> bool {
        self.policy.iter().any(|p| matches!(p, Eviction::HeavyHitters { .. }))
    }

    fn observe_attention(&mut self, layer: usize, weights: ArrayView3<f32>) -> Result<()> {
        let group = self.group;
        let heads = &mut self.layers[layer];
        if weights.dim().0 != heads.len() * group || weights.dim().2 != heads[0].scores.len() {
            return Err(Error::Shape(format!(
                "attention weights {:?} for {} KV heads of {} tokens",
                weights.shape(),
                heads.len(),
                heads[0].scores.len()
            )));
        }
        for (q_head, w) in weights.outer_iter().enumerate() {
            let scores = &mut heads[q_head / group].scores;
            for row in w.rows() {
                scores.iter_mut().zip(row).for_each(|(s, &p)| *s += p);
            }
        }
        Ok(())
    }
}
