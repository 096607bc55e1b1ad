//! Chapter 7's figures: memory against sequence length per cache, the quality–memory Pareto
//! front on the real model, time per token with and without a cache, the per-channel
//! magnitudes of the real keys and values, and the low-rank error against rank. The binary
//! saves each (`plot::save`); the notebook shows them inline (`plot::show`).

use crate::caches::growing::{GrowingKvCache, Growth};
use crate::quality::QualityRow;
use crate::quant::KvEncoding;
use crate::speed::TokenTime;
use attn_model::{KvCache, LlamaConfig};
use attn_support::ndarray::{Array2, Array3};
use attn_support::plot::{Chart, Line, Panels, Scale};
use attn_support::plotters::prelude::SeriesLabelPosition;
use attn_support::{Error, Result};

const MIB: f64 = 1024.0 * 1024.0;

/// Memory of one sequence's cache against its length for `config`, in MiB, two panels. Left:
/// the encodings by their bits per element and an evicting cache (flat past its budget). Right:
/// an f32 cache's allocated memory under each growth policy, measured by appending to a
/// [`GrowingKvCache`] (steps: the capacity, not the length).
pub fn memory_figure(config: &LlamaConfig, max_tokens: usize) -> Result<Panels> {
    let per_token_elements = (2 * config.n_layers * config.kv_dim()) as f64;
    let steps: Vec<usize> = (0..=64).map(|i| i * max_tokens / 64).collect();
    let at = |bits: f64, tokens: &dyn Fn(usize) -> usize| -> Vec<(f64, f64)> {
        steps.iter().map(|&t| (t as f64, tokens(t) as f64 * per_token_elements * bits / 8.0 / MIB)).collect()
    };
    let mut encodings = Vec::new();
    for e in [
        KvEncoding::F32,
        KvEncoding::Bf16,
        KvEncoding::Int8 { key_tokens_per_scale: crate::gpu::DEFAULT_KEY_GROUP },
        KvEncoding::Fp4(crate::quant::fp4::Fp4Format::Nvfp4),
    ] {
        encodings.push(Line::solid(e.name(), at(e.bits_per_element(config.head_dim), &|t| t)));
    }
    let budget = 256;
    encodings.push(Line::solid(format!("window / H2O of {budget} (f32)"), at(32.0, &|t| t.min(budget))));
    let mut growth = vec![Line::dashed("f32, the tokens held", at(32.0, &|t| t))];
    for policy in [
        Growth::Preallocated { max: max_tokens },
        Growth::Chunks { chunk: 1024 },
        Growth::Doubling { initial: 256 },
    ] {
        growth.push(Line::solid(policy.name(), growth_steps(config, policy, max_tokens)?));
    }
    let chart = |title: &str, lines| Chart {
        lines,
        legend: SeriesLabelPosition::UpperLeft,
        ..Chart::new(title, "tokens in the cache", "MiB")
    };
    Ok(Panels::new(
        (640, 460),
        vec![
            chart(
                &format!(
                    "One sequence, {} layers × {} KV heads × d {}",
                    config.n_layers, config.n_kv_heads, config.head_dim
                ),
                encodings,
            ),
            chart("f32, allocated as it grows", growth),
        ],
    ))
}

/// The allocated MiB of a growing cache after each appended token (one layer measured, times
/// the layers: every layer grows alike).
fn growth_steps(config: &LlamaConfig, growth: Growth, max_tokens: usize) -> Result<Vec<(f64, f64)>> {
    let one_layer = LlamaConfig { n_layers: 1, ..config.clone() };
    let mut cache = GrowingKvCache::new(&one_layer, growth).map_err(model_err)?;
    let token = Array3::<f32>::zeros((config.n_kv_heads, 1, config.head_dim));
    let mut points = vec![(0.0, cache.bytes_used() * config.n_layers as f64 / MIB)];
    for t in 1..=max_tokens {
        let before = cache.bytes_used();
        cache.append(0, token.view(), token.view()).map_err(model_err)?;
        let after = cache.bytes_used();
        if after != before {
            // A vertical step: the old capacity up to here, then the new one.
            points.push(((t - 1) as f64, before * config.n_layers as f64 / MIB));
            points.push(((t - 1) as f64, after * config.n_layers as f64 / MIB));
        }
    }
    points.push((max_tokens as f64, cache.bytes_used() * config.n_layers as f64 / MIB));
    Ok(points)
}

fn model_err(e: attn_model::Error) -> Error {
    Error::InvalidArgument(e.to_string())
}

/// The family a cache row belongs to (one line each in the Pareto figure). The adaptive H2O
/// budget is left out: a seventh line would repeat the first colour, and its one point sits next
/// to H2O's at the same bytes (the table has it).
fn family(name: &str) -> Option<&'static str> {
    Some(if name.starts_with("low rank for scores") {
        "low rank, for the scores"
    } else if name.starts_with("low rank") {
        "low rank, by energy"
    } else if name.starts_with("sliding") {
        "sliding window"
    } else if name.starts_with("H2O adaptive") {
        return None;
    } else if name.starts_with("H2O") {
        "H2O"
    } else if name.starts_with("KIVI") {
        "KIVI (4, 2 bits)"
    } else {
        "bf16, INT8, FP8, NVFP4, MXFP4"
    })
}

/// The perplexity increase over the f32 cache against cache size (relative to the f32 cache)
/// for every cache: lower left is better. A cache no worse than f32 (bf16 here) has no point on
/// the log axis.
pub fn pareto_figure(rows: &[QualityRow]) -> Result<Chart> {
    let reference = rows.first().ok_or_else(|| Error::InvalidArgument("no quality rows to draw".into()))?;
    let mut families: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for r in rows.iter().skip(1) {
        let Some(f) = family(&r.name) else { continue };
        let point = (r.relative_bytes, 100.0 * (r.perplexity / reference.perplexity - 1.0));
        match families.iter_mut().find(|(name, _)| *name == f) {
            Some((_, points)) => points.push(point),
            None => families.push((f, vec![point])),
        }
    }
    let lines: Vec<Line> = families
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Line::solid(name, points)
        })
        .collect();
    Ok(Chart {
        x_scale: Scale::Log2,
        y_scale: Scale::Log10,
        lines,
        legend: SeriesLabelPosition::LowerLeft,
        ..Chart::new(
            format!("Quality against memory, SmolLM2-135M (f32: perplexity {:.2})", reference.perplexity),
            "cache bytes, relative to the f32 cache",
            "perplexity increase over the f32 cache (%)",
        )
    })
}

/// Time per generated token against its position, with and without a cache.
pub fn token_time_figure(rows: &[TokenTime]) -> Result<Chart> {
    let line = |label: &str, f: fn(&TokenTime) -> f64| {
        Line::solid(label, rows.iter().map(|r| (r.position as f64, f(r) * 1e3)).collect())
    };
    Ok(Chart {
        lines: vec![
            line("without a cache (prefix recomputed)", |r| r.without_cache),
            line("with a KV cache", |r| r.with_cache),
        ],
        legend: SeriesLabelPosition::UpperLeft,
        ..Chart::new(
            "Time for the next token, SmolLM2-135M on the CPU",
            "position of the new token",
            "ms per token",
        )
    })
}

/// Per-channel largest magnitude of K (left) and V (right), `(layers, channels)` each for one KV
/// head, one line per layer in `layers`.
pub fn channel_figure(
    keys: &Array2<f32>,
    values: &Array2<f32>,
    layers: &[usize],
    head: usize,
) -> Result<Panels> {
    // Headroom above the tallest channel keeps the legend off the outliers the figure is about.
    let top = |x: &Array2<f32>| layers.iter().flat_map(|&l| x.row(l).to_vec()).fold(0.0f32, f32::max) as f64;
    let panel = |title: String, x: &Array2<f32>| Chart {
        y_range: Some((0.0, 1.35 * top(x))),
        lines: layers
            .iter()
            .map(|&l| {
                Line::solid(
                    format!("layer {l}"),
                    x.row(l).iter().enumerate().map(|(c, &v)| (c as f64, v as f64)).collect(),
                )
            })
            .collect(),
        legend: SeriesLabelPosition::UpperRight,
        ..Chart::new(title, "channel", "largest |value| over the text")
    };
    Ok(Panels::new(
        (640, 440),
        vec![
            panel(format!("Keys (after RoPE), KV head {head}"), keys),
            panel(format!("Values, KV head {head}"), values),
        ],
    ))
}

/// Relative error of the low-rank projection against the rank: the energy the calibration
/// bases leave out, and the error on held-out text.
pub fn low_rank_figure(curves: &[crate::experiments::Curve]) -> Result<Chart> {
    Ok(Chart {
        y_scale: Scale::Log10,
        lines: curves.iter().map(|(label, points)| Line::solid(label.clone(), points.clone())).collect(),
        legend: SeriesLabelPosition::LowerLeft,
        ..Chart::new("Low-rank K and V: error against rank (d = 64)", "rank r", "relative squared error")
    })
}
