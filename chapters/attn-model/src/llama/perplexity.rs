//! Perplexity: how surprised the model is by a text, `exp(mean −log p(token | prefix))` over
//! every token after the first. Chapters 7–10 measure what a cache or an eviction policy costs
//! by how much it raises this number on the same text.

use crate::error::{Error, Result};
use crate::llama::attention::AttentionBackend;
use crate::llama::cache::KvCache;
use crate::llama::model::Llama;
use attn_support::ndarray::ArrayView1;

/// The result over one text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Perplexity {
    /// Tokens whose probability was scored (all but the first).
    pub tokens: usize,
    /// Mean negative log-likelihood in nats.
    pub mean_nll: f64,
}

impl Perplexity {
    pub fn value(&self) -> f64 {
        self.mean_nll.exp()
    }
}

/// Perplexity of `ids` fed through `cache` in chunks of `chunk` tokens (the whole text at once
/// with a full-precision cache gives the textbook number; chunk 1 decodes token by token, as
/// generation would read a compressed cache). `cache` must start empty.
pub fn perplexity(
    model: &Llama,
    ids: &[u32],
    chunk: usize,
    cache: &mut dyn KvCache,
    attention: &dyn AttentionBackend,
) -> Result<Perplexity> {
    if ids.len() < 2 || chunk == 0 {
        return Err(Error::Request(format!(
            "perplexity needs ≥ 2 tokens and a chunk ≥ 1, got {} tokens, chunk {chunk}",
            ids.len()
        )));
    }
    if cache.next_position() != 0 {
        return Err(Error::Request(format!("the cache already holds {} tokens", cache.next_position())));
    }
    let mut total = 0.0f64;
    for (c, part) in ids.chunks(chunk).enumerate() {
        let logits = model.forward(part, cache, attention)?;
        for (i, row) in logits.rows().into_iter().enumerate() {
            if let Some(&next) = ids.get(c * chunk + i + 1) {
                total -= log_softmax_at(row, next as usize);
            }
        }
    }
    let tokens = ids.len() - 1;
    Ok(Perplexity { tokens, mean_nll: total / tokens as f64 })
}

/// `log softmax(logits)[target]` in f64.
pub fn log_softmax_at(logits: ArrayView1<f32>, target: usize) -> f64 {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    logits[target] as f64 - max - sum.ln()
}
