//! Generation: run the prompt once (prefill), then one token at a time through the cache
//! (decode), choosing each next token greedily or by sampling.

use crate::error::{Error, Result};
use crate::llama::attention::AttentionBackend;
use crate::llama::cache::KvCache;
use crate::llama::model::Llama;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// How the next token is chosen from the logits. Sampling follows Hugging Face's order:
/// divide by the temperature, keep the `top_k` largest, keep the smallest set whose
/// probabilities reach `top_p`, then draw.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// 0 means greedy (the arg-max, the first one on a tie as `torch.argmax`).
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    rng: StdRng,
}

impl Sampler {
    pub fn greedy() -> Self {
        Sampler { temperature: 0.0, top_k: None, top_p: None, rng: StdRng::seed_from_u64(0) }
    }

    /// Sampling at `temperature` (> 0, or 0 for greedy) with optional top-k and top-p, seeded.
    pub fn new(temperature: f32, top_k: Option<usize>, top_p: Option<f32>, seed: u64) -> Result<Self> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::Request(format!("temperature must be ≥ 0 and finite, got {temperature}")));
        }
        if top_k == Some(0) {
            return Err(Error::Request("top_k must be ≥ 1".into()));
        }
        if let Some(p) = top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(Error::Request(format!("top_p must be in (0, 1], got {p}")));
        }
        Ok(Sampler { temperature, top_k, top_p, rng: StdRng::seed_from_u64(seed) })
    }

    /// The next token for `logits` (one per vocabulary entry).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        // Candidates by falling logit; top-k keeps a prefix.
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        order.truncate(self.top_k.unwrap_or(order.len()).min(order.len()));
        let max = logits[order[0] as usize] as f64;
        let t = self.temperature as f64;
        let weights: Vec<f64> =
            order.iter().map(|&i| ((logits[i as usize] as f64 - max) / t).exp()).collect();
        let total: f64 = weights.iter().sum();
        // Top-p keeps the smallest prefix whose probability reaches p (at least one token).
        let keep = match self.top_p {
            Some(p) => {
                let mut cumulative = 0.0;
                weights
                    .iter()
                    .take_while(|w| {
                        let before = cumulative;
                        cumulative += *w / total;
                        before < p as f64
                    })
                    .count()
            }
            None => weights.len(),
        }
        .max(1);
        let kept: f64 = weights[..keep].iter().sum();
        let mut draw = self.rng.random::<f64>() * kept;
        for (&token, &w) in order[..keep].iter().zip(&weights[..keep]) {
            if draw < w {
                return token;
            }
            draw -= w;
        }
        order[keep - 1]
    }
}

/// The index of the largest logit, the first one on a tie.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// What a generation produced and how long it took.
#[derive(Clone, Debug)]
pub struct Generation {
    pub prompt_tokens: usize,
    /// The generated tokens, the stop token included if one came.
    pub tokens: Vec<u32>,
    pub stopped: bool,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
}

impl Generation {
    /// Decode speed: tokens after the first (the first comes from the prefill) per second.
    pub fn decode_tokens_per_second(&self) -> f64 {
        (self.tokens.len().saturating_sub(1)) as f64 / self.decode_seconds.max(f64::MIN_POSITIVE)
    }
}

/// Generate up to `max_new` tokens after `prompt`, stopping after any token of `stop`;
/// `on_token` sees each token as it comes (to stream it). `cache` must be empty or hold the
/// tokens before `prompt`.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    model: &Llama,
    prompt: &[u32],
    max_new: usize,
    sampler: &mut Sampler,
    stop: &[u32],
    cache: &mut dyn KvCache,
    attention: &dyn AttentionBackend,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    let context = model.config().context_length;
    if cache.next_position() + prompt.len() + max_new > context + 1 {
        return Err(Error::Request(format!(
            "a prompt of {} tokens after {} cached, plus {max_new} new ones, passes the context of {context}",
            prompt.len(),
            cache.next_position()
        )));
    }
    let started = Instant::now();
    let mut logits = model.forward_last(prompt, cache, attention)?;
    let prefill_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut tokens = Vec::with_capacity(max_new);
    let mut stopped = false;
    while tokens.len() < max_new {
        let next = sampler.sample(&logits);
        tokens.push(next);
        on_token(next)?;
        if stop.contains(&next) {
            stopped = true;
            break;
        }
        if tokens.len() < max_new {
            logits = model.forward_last(&[next], cache, attention)?;
        }
    }
    Ok(Generation {
        prompt_tokens: prompt.len(),
        tokens,
        stopped,
        prefill_seconds,
        decode_seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum_and_top_k_1_agrees() {
        let logits = [0.5, 2.0, -1.0, 2.0];
        assert_eq!(Sampler::greedy().sample(&logits), 1);
        let mut top1 = Sampler::new(0.7, Some(1), None, 9).unwrap();
        assert_eq!(top1.sample(&logits), 1);
    }

    #[test]
    fn sampling_frequencies_follow_the_softmax_and_top_p_cuts_the_tail() {
        let logits = [0.0f32, (2.0f32).ln(), (5.0f32).ln(), (0.01f32).ln()];
        let mut s = Sampler::new(1.0, None, None, 1).unwrap();
        let mut counts = [0usize; 4];
        let n = 40_000;
        for _ in 0..n {
            counts[s.sample(&logits) as usize] += 1;
        }
        let total = 8.01;
        for (i, expect) in [1.0, 2.0, 5.0, 0.01].iter().enumerate() {
            let f = counts[i] as f64 / n as f64;
            assert!((f - expect / total).abs() < 0.01, "token {i}: {f}");
        }
        // p = 0.8: token 2 (0.624) alone is below it, with token 1 (0.874) it is reached.
        let mut s = Sampler::new(1.0, None, Some(0.8), 2).unwrap();
        for _ in 0..2000 {
            assert!(matches!(s.sample(&logits), 1 | 2));
        }
    }

    #[test]
    fn bad_sampling_settings_are_named() {
        assert!(Sampler::new(-1.0, None, None, 0).unwrap_err().to_string().contains("temperature"));
        assert!(Sampler::new(1.0, Some(0), None, 0).unwrap_err().to_string().contains("top_k"));
        assert!(Sampler::new(1.0, None, Some(1.5), 0).unwrap_err().to_string().contains("top_p"));
    }
}
