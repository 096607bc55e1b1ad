//! Why a cache at all: the time to produce the next token at position `p`, with and without
//! one. Without a cache, each new token runs the whole prefix through the model again — `p`
//! tokens of work, growing linearly, and quadratic over a generation. With one, it runs only
//! the new token: the weights are read once per token whatever `p` is, and only attention's
//! share grows with `p` (reading `p` cached keys and values).

use attn_model::{DenseKvCache, GqaSdpa, Llama, Result};
use std::time::Instant;

/// One measured position.
#[derive(Clone, Copy, Debug)]
pub struct TokenTime {
    pub position: usize,
    /// Seconds for the next token without a cache (the whole prefix recomputed).
    pub without_cache: f64,
    /// Seconds for the next token with a cache (median of `repeats` decode steps).
    pub with_cache: f64,
}

impl TokenTime {
    pub const CSV_HEADER: &'static str = "position,without_cache_ms,with_cache_ms";

    pub fn csv(&self) -> String {
        format!("{},{:.4},{:.4}", self.position, self.without_cache * 1e3, self.with_cache * 1e3)
    }
}

/// Time the next token at each of `positions` on `ids` (which must be at least the largest
/// position + `repeats` long).
pub fn time_per_token(
    model: &Llama,
    ids: &[u32],
    positions: &[usize],
    repeats: usize,
) -> Result<Vec<TokenTime>> {
    let mut rows = Vec::new();
    for &p in positions {
        let prefix = &ids[..p + 1];
        // Without a cache: the prefix and the new token, all through the model, last logits only.
        let mut fresh = DenseKvCache::new(model.config(), p + 1)?;
        let started = Instant::now();
        model.forward_last(prefix, &mut fresh, &GqaSdpa)?;
        let without_cache = started.elapsed().as_secs_f64();
        // With a cache: prefill the prefix once, then time single-token steps.
        let mut cache = DenseKvCache::new(model.config(), p + repeats)?;
        model.forward_last(&ids[..p], &mut cache, &GqaSdpa)?;
        let mut times: Vec<f64> = ids[p..p + repeats]
            .iter()
            .map(|&t| {
                let started = Instant::now();
                model.forward_last(&[t], &mut cache, &GqaSdpa).map(|_| started.elapsed().as_secs_f64())
            })
            .collect::<Result<_>>()?;
        times.sort_by(f64::total_cmp);
        rows.push(TokenTime { position: p, without_cache, with_cache: times[times.len() / 2] });
    }
    Ok(rows)
}
