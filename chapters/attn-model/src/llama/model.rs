//! The decoder's forward pass in f32 on the CPU:
//!
//! ```text
//! x = embedding[tokens]                                  (new, d_model)
//! for each layer:
//!     h = RMSNorm(x)
//!     q, k, v = h W_qᵀ, h W_kᵀ, h W_vᵀ   → heads; RoPE on q and k at their positions
//!     cache.append(k, v); K, V = cache.keys_values()
//!     x = x + attention(q, K, V) W_oᵀ                     (grouped-query, causal)
//!     h = RMSNorm(x)
//!     x = x + (silu(h W_gateᵀ) ⊙ h W_upᵀ) W_downᵀ         (SwiGLU)
//! logits = RMSNorm(x) Eᵀ                                  (E: the tied embedding)
//! ```
//!
//! Attention and the cache are parameters, so later chapters swap in their own.

use crate::error::{Error, Result};
use crate::llama::attention::{AttentionBackend, gqa_attention_weights};
use crate::llama::cache::KvCache;
use crate::llama::linear::{linear, rms_norm, swiglu};
use crate::llama::weights::{LayerWeights, LlamaWeights};
use attn_support::ndarray::{Array2, Array3, ArrayView2, Axis};
use ch06_rope::RopeCache;

/// A model ready to run: its weights and the RoPE table of its whole context.
pub struct Llama {
    pub weights: LlamaWeights,
    rope: RopeCache,
}

impl Llama {
    pub fn new(weights: LlamaWeights) -> Result<Self> {
        weights.check()?;
        let rope = RopeCache::new(&weights.config.rope()?, weights.config.context_length)?;
        Ok(Llama { weights, rope })
    }

    pub fn config(&self) -> &crate::llama::LlamaConfig {
        &self.weights.config
    }

    /// Run `tokens` through the model after what `cache` already holds; returns the logits of
    /// every new token, `(tokens, vocab)`. The tokens get positions `cache.next_position() …`.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut dyn KvCache,
        attention: &dyn AttentionBackend,
    ) -> Result<Array2<f32>> {
        let x = self.hidden_states(tokens, cache, attention)?;
        Ok(linear(x.view(), self.weights.output_matrix().view()))
    }

    /// As [`Llama::forward`], but only the last token's logits, `(vocab,)`: a prompt needs no
    /// others, and the output layer (49 152 × 576 for SmolLM2) is a fifth of the model's work.
    pub fn forward_last(
        &self,
        tokens: &[u32],
        cache: &mut dyn KvCache,
        attention: &dyn AttentionBackend,
    ) -> Result<Vec<f32>> {
        let x = self.hidden_states(tokens, cache, attention)?;
        let last = x.slice(attn_support::ndarray::s![x.nrows() - 1.., ..]);
        Ok(linear(last, self.weights.output_matrix().view()).into_raw_vec_and_offset().0)
    }

    /// The final-normed hidden states of the new tokens, `(tokens, d_model)`.
    fn hidden_states(
        &self,
        tokens: &[u32],
        cache: &mut dyn KvCache,
        attention: &dyn AttentionBackend,
    ) -> Result<Array2<f32>> {
        let c = &self.weights.config;
        let start = cache.next_position();
        self.check_request(tokens, start)?;
        let mut x = Array2::<f32>::zeros((tokens.len(), c.d_model));
        for (mut row, &t) in x.rows_mut().into_iter().zip(tokens) {
            row.assign(&self.weights.embedding.row(t as usize));
        }
        for (l, layer) in self.weights.layers.iter().enumerate() {
            let attended = self.attention_block(l, layer, x.view(), start, cache, attention)?;
            x += &attended;
            let h = rms_norm(x.view(), layer.ffn_norm.view(), c.rms_eps);
            let gated =
                swiglu(linear(h.view(), layer.w_gate.view()), linear(h.view(), layer.w_up.view()).view());
            x += &linear(gated.view(), layer.w_down.view());
        }
        Ok(rms_norm(x.view(), self.weights.final_norm.view(), c.rms_eps))
    }

    fn attention_block(
        &self,
        l: usize,
        layer: &LayerWeights,
        x: ArrayView2<f32>,
        start: usize,
        cache: &mut dyn KvCache,
        attention: &dyn AttentionBackend,
    ) -> Result<Array2<f32>> {
        let c = &self.weights.config;
        let h = rms_norm(x, layer.attn_norm.view(), c.rms_eps);
        let mut q = split_heads(linear(h.view(), layer.wq.view()), c.n_heads);
        let mut k = split_heads(linear(h.view(), layer.wk.view()), c.n_kv_heads);
        let v = split_heads(linear(h.view(), layer.wv.view()), c.n_kv_heads);
        self.rope.apply(q.view_mut().insert_axis(Axis(0)), start)?;
        self.rope.apply(k.view_mut().insert_axis(Axis(0)), start)?;
        cache.append(l, k.view(), v.view())?;
        let (keys, values) = cache.keys_values(l)?;
        let out = attention.attend(q.view(), keys.view(), values.view())?;
        let weights = cache.wants_attention_weights().then(|| gqa_attention_weights(q.view(), keys.view()));
        drop((keys, values));
        if let Some(weights) = weights {
            cache.observe_attention(l, weights?.view())?;
        }
        if out.dim() != q.dim() {
            return Err(Error::Shape(format!(
                "the attention backend returned {:?} for queries {:?}",
                out.shape(),
                q.shape()
            )));
        }
        Ok(linear(merge_heads(out).view(), layer.wo.view()))
    }

    fn check_request(&self, tokens: &[u32], start: usize) -> Result<()> {
        let c = &self.weights.config;
        if tokens.is_empty() {
            return Err(Error::Request("no tokens to run".into()));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(Error::Request(format!(
                "token id {bad} is outside the vocabulary of {}",
                c.vocab_size
            )));
        }
        if start + tokens.len() > c.context_length {
            return Err(Error::Request(format!(
                "{} tokens after {start} pass the model's context of {} tokens",
                tokens.len(),
                c.context_length
            )));
        }
        Ok(())
    }
}

/// `(tokens, heads·d)` → `(heads, tokens, d)`.
pub fn split_heads(x: Array2<f32>, heads: usize) -> Array3<f32> {
    let (n, width) = x.dim();
    let x = x.into_shape_with_order((n, heads, width / heads)).expect("width is heads · head_dim");
    x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
}

/// `(heads, tokens, d)` → `(tokens, heads·d)`.
pub fn merge_heads(x: Array3<f32>) -> Array2<f32> {
    let (h, n, d) = x.dim();
    let x = x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned();
    x.into_shape_with_order((n, h * d)).expect("a standard-layout array reshapes")
}
