//! What a cache costs in quality on the real model: perplexity over the fixed text and how long
//! the greedy continuation of a long prompt stays identical to the full-precision cache's, for
//! every cache and compression ratio — the points of chapter 7's Pareto figure.

use crate::caches::budget::{adaptive_budgets, keys_needed};
use crate::caches::encoded::EncodedKvCache;
use crate::caches::eviction::{EvictingKvCache, Eviction};
use crate::caches::low_rank::LowRankCodec;
use crate::quant::KvEncoding;
use crate::quant::fp4::Fp4Format;
use crate::quant::fp8::Fp8Scaling;
use crate::quant::kivi::KiviConfig;
use attn_model::llama::generate::argmax;
use attn_model::llama::perplexity::perplexity;
use attn_model::{DenseKvCache, GqaSdpa, KvCache, Llama, Result};

/// A cache to evaluate.
#[derive(Clone, Debug)]
pub enum CacheSpec {
    Dense,
    Encoded(KvEncoding),
    /// Keys and values projected on bases of most energy.
    LowRank {
        key_rank: usize,
        value_rank: usize,
    },
    /// Keys projected on a basis fitted for the scores `q·k` (values whole).
    LowRankForScores {
        key_rank: usize,
    },
    Evicting(Eviction),
    /// H2O with a budget per layer from [`keys_needed`], averaging `mean_budget`, half recent.
    AdaptiveHeavyHitters {
        mean_budget: usize,
    },
}

impl CacheSpec {
    pub fn name(&self) -> String {
        match self {
            CacheSpec::Dense => "f32 (reference)".into(),
            CacheSpec::Encoded(e) => e.name(),
            CacheSpec::LowRank { key_rank, value_rank } => format!("low rank K{key_rank}/V{value_rank}"),
            CacheSpec::LowRankForScores { key_rank } => format!("low rank for scores K{key_rank}/V64"),
            CacheSpec::Evicting(e) => e.name(),
            CacheSpec::AdaptiveHeavyHitters { mean_budget } => format!("H2O adaptive, mean {mean_budget}"),
        }
    }

    /// Chapter 7's list: each encoding (INT8 with K scale rows over `int8_key_group` tokens; the
    /// chapter's: [`crate::gpu::DEFAULT_KEY_GROUP`], 128), three ranks, three window sizes, three
    /// H2O budgets and an adaptive one.
    pub fn chapter_list(int8_key_group: usize) -> Vec<CacheSpec> {
        let kivi = |bits| CacheSpec::Encoded(KvEncoding::Kivi(KiviConfig { bits, group: 32, residual: 32 }));
        let mut specs = vec![
            CacheSpec::Dense,
            CacheSpec::Encoded(KvEncoding::Bf16),
            CacheSpec::Encoded(KvEncoding::Int8 { key_tokens_per_scale: int8_key_group }),
            CacheSpec::Encoded(KvEncoding::Fp8(Fp8Scaling::PerToken)),
            kivi(4),
            kivi(2),
            CacheSpec::Encoded(KvEncoding::Fp4(Fp4Format::Nvfp4)),
            CacheSpec::Encoded(KvEncoding::Fp4(Fp4Format::Mxfp4)),
        ];
        // Keys only: values are far less compressible (see the low-rank figure).
        for rank in [48, 32, 16] {
            specs.push(CacheSpec::LowRank { key_rank: rank, value_rank: 64 });
        }
        for rank in [48, 32, 16] {
            specs.push(CacheSpec::LowRankForScores { key_rank: rank });
        }
        for budget in [64, 128, 256] {
            specs.push(CacheSpec::Evicting(Eviction::SlidingWindow { window: budget }));
            specs.push(CacheSpec::Evicting(Eviction::HeavyHitters { heavy: budget / 2, recent: budget / 2 }));
        }
        specs.push(CacheSpec::AdaptiveHeavyHitters { mean_budget: 128 });
        specs
    }
}

/// What the evaluation needs besides the model: calibration text for the low-rank bases and
/// the adaptive budgets (a part of the text not scored).
pub struct Calibration {
    pub low_rank: LowRankCodec,
    pub low_rank_for_scores: LowRankCodec,
    pub keys_needed: Vec<f64>,
}

impl Calibration {
    pub fn fit(model: &Llama, ids: &[u32]) -> Result<Self> {
        let (kv, queries) = crate::calibration::record_kv_and_queries(model, ids)?;
        Ok(Calibration {
            low_rank: LowRankCodec::fit(&kv, 64, 64)?,
            low_rank_for_scores: LowRankCodec::fit_for_scores(&kv, &queries, 64, 64)?,
            keys_needed: keys_needed(model, ids, 0.9)?,
        })
    }
}

/// Build `spec` for a text of up to `capacity` tokens.
pub fn build(
    model: &Llama,
    spec: &CacheSpec,
    capacity: usize,
    calibration: &Calibration,
) -> Result<Box<dyn KvCache>> {
    let config = model.config();
    Ok(match spec {
        CacheSpec::Dense => Box::new(DenseKvCache::new(config, capacity)?),
        CacheSpec::Encoded(e) => Box::new(EncodedKvCache::new(config, *e, capacity)?),
        CacheSpec::LowRank { key_rank, value_rank } => Box::new(EncodedKvCache::new(
            config,
            calibration.low_rank.with_ranks(*key_rank, *value_rank),
            capacity,
        )?),
        CacheSpec::LowRankForScores { key_rank } => Box::new(EncodedKvCache::new(
            config,
            calibration.low_rank_for_scores.with_ranks(*key_rank, 64),
            capacity,
        )?),
        CacheSpec::Evicting(policy) => Box::new(EvictingKvCache::new(config, *policy)?),
        CacheSpec::AdaptiveHeavyHitters { mean_budget } => {
            let budgets = adaptive_budgets(&calibration.keys_needed, *mean_budget, 16);
            let policies =
                budgets.iter().map(|&b| Eviction::HeavyHitters { heavy: b - b / 2, recent: b / 2 }).collect();
            Box::new(EvictingKvCache::per_layer(config, policies)?)
        }
    })
}

/// One cache's result.
#[derive(Clone, Debug)]
pub struct QualityRow {
    pub name: String,
    /// Cache bytes after the perplexity text, relative to the f32 cache's.
    pub relative_bytes: f64,
    pub perplexity: f64,
    /// Greedy tokens identical to the reference's before the first difference.
    pub agreeing_prefix: usize,
    /// Steps at which the cache's best token equals the reference's when both are fed the
    /// reference's continuation (teacher forcing): agreement without the cascade that one early
    /// difference sets off.
    pub agreeing_steps: usize,
    pub generated: usize,
}

impl QualityRow {
    pub const CSV_HEADER: &'static str =
        "cache,relative_bytes,perplexity,agreeing_prefix,agreeing_steps,generated";

    pub fn csv(&self) -> String {
        format!(
            "{},{:.5},{:.5},{},{},{}",
            self.name.replace(',', ";"),
            self.relative_bytes,
            self.perplexity,
            self.agreeing_prefix,
            self.agreeing_steps,
            self.generated
        )
    }
}

/// Prefill `prompt` through `cache` in `chunk`s, then run `steps` single-token steps; at each
/// step the best token is recorded and `feed(step, best)` is the token fed next. Returns the best
/// tokens.
fn decode(
    model: &Llama,
    prompt: &[u32],
    steps: usize,
    chunk: usize,
    cache: &mut dyn KvCache,
    feed: impl Fn(usize, u32) -> u32,
) -> Result<Vec<u32>> {
    let mut logits = Vec::new();
    for part in prompt.chunks(chunk.max(1)) {
        logits = model.forward_last(part, cache, &GqaSdpa)?;
    }
    let mut best = Vec::with_capacity(steps);
    for step in 0..steps {
        best.push(argmax(&logits));
        logits = model.forward_last(&[feed(step, best[step])], cache, &GqaSdpa)?;
    }
    Ok(best)
}

/// Greedy continuation of `prompt` for `new` tokens through `cache`, prefilled in `chunk`s.
pub fn greedy(
    model: &Llama,
    prompt: &[u32],
    new: usize,
    chunk: usize,
    cache: &mut dyn KvCache,
) -> Result<Vec<u32>> {
    decode(model, prompt, new, chunk, cache, |_, best| best)
}

/// How each cache is measured: perplexity over `text` fed in `chunk`s, and the greedy
/// continuation of `prompt` for `new` tokens (prefilled in `chunk`s, then one token at a time).
#[derive(Clone, Debug)]
pub struct Protocol {
    pub text: Vec<u32>,
    pub prompt: Vec<u32>,
    pub new: usize,
    pub chunk: usize,
}

/// The best token at each step when `continuation` is fed after `prompt` through `cache`
/// (teacher forcing).
pub fn teacher_forced(
    model: &Llama,
    prompt: &[u32],
    continuation: &[u32],
    chunk: usize,
    cache: &mut dyn KvCache,
) -> Result<Vec<u32>> {
    decode(model, prompt, continuation.len(), chunk, cache, |step, _| continuation[step])
}

/// Evaluate `specs` by `protocol`; the first spec is the reference the others are compared with
/// ([`CacheSpec::Dense`]). `progress` sees each row as it is done.
pub fn evaluate(
    model: &Llama,
    specs: &[CacheSpec],
    protocol: &Protocol,
    calibration: &Calibration,
    mut progress: impl FnMut(&QualityRow),
) -> Result<Vec<QualityRow>> {
    let Protocol { text, prompt, new, chunk } = protocol;
    let capacity = text.len().max(prompt.len() + new + 1);
    let mut reference: Option<(f64, Vec<u32>)> = None;
    let mut rows = Vec::new();
    for spec in specs {
        let mut cache = build(model, spec, capacity, calibration)?;
        let ppl = perplexity(model, text, *chunk, cache.as_mut(), &GqaSdpa)?;
        let bytes = cache.bytes_used();
        let tokens =
            greedy(model, prompt, *new, *chunk, build(model, spec, capacity, calibration)?.as_mut())?;
        let (ref_bytes, ref_tokens) = reference.get_or_insert_with(|| (bytes, tokens.clone())).clone();
        let agreeing_prefix = tokens.iter().zip(&ref_tokens).take_while(|(a, b)| a == b).count();
        let forced = if agreeing_prefix == *new {
            tokens.clone()
        } else {
            teacher_forced(
                model,
                prompt,
                &ref_tokens,
                *chunk,
                build(model, spec, capacity, calibration)?.as_mut(),
            )?
        };
        let row = QualityRow {
            name: spec.name(),
            relative_bytes: bytes / ref_bytes,
            perplexity: ppl.value(),
            agreeing_prefix,
            agreeing_steps: forced.iter().zip(&ref_tokens).filter(|(a, b)| a == b).count(),
            generated: *new,
        };
        progress(&row);
        rows.push(row);
    }
    Ok(rows)
}
