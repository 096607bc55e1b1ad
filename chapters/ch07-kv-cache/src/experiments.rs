//! The chapter's measurements on the real model, as the binary and the notebook run them: the
//! memory table, K's outlier channels, the low-rank error curves, and the recorded CSVs read
//! back for the figures.

use crate::caches::low_rank::{LowRankCodec, held_out_error, mean_residual_energy};
use crate::calibration::{channel_absmax, outlier_ratio, record_kv};
use crate::memory::{MODELS, human_bytes};
use crate::quality::QualityRow;
use crate::quant::KvEncoding;
use crate::quant::fp4::Fp4Format;
use crate::speed::TokenTime;
use attn_model::{Llama, Result};
use attn_support::csv::Table;
use attn_support::ndarray::{Array1, Array2};
use attn_support::report::TextTable;
use std::path::Path;

/// The cache of one sequence for each model at 4 k, 32 k and 128 k tokens in bf16, and at 128 k
/// in INT8 and NVFP4.
pub fn memory_table() -> TextTable {
    let int8 = KvEncoding::Int8 { key_tokens_per_scale: 32 };
    let fp4 = KvEncoding::Fp4(Fp4Format::Nvfp4);
    let mut table = TextTable::new(&[
        ("model", 0),
        ("layers × KV heads × d", 0),
        ("per token (bf16)", 0),
        ("4 k", 0),
        ("32 k", 0),
        ("128 k", 0),
        ("128 k INT8", 0),
        ("128 k NVFP4", 0),
    ])
    .left_aligned(0);
    for m in MODELS {
        let at = |tokens: usize, bits: f64| human_bytes(m.bytes(1, tokens, bits));
        table.push([
            m.name.to_string(),
            format!("{} × {} × {}", m.layers, m.kv_heads, m.head_dim),
            human_bytes(m.bytes_per_token(16.0)),
            at(4096, 16.0),
            at(32_768, 16.0),
            at(131_072, 16.0),
            at(131_072, int8.bits_per_element(m.head_dim)),
            at(131_072, fp4.bits_per_element(m.head_dim)),
        ]);
    }
    table
}

/// The real keys' and values' per-channel magnitudes for KV head `head`: `(layers, d)` each,
/// and per layer the largest channel over the median one (K, V).
pub struct ChannelMagnitudes {
    pub keys: Array2<f32>,
    pub values: Array2<f32>,
    pub key_outliers: Array1<f32>,
    pub value_outliers: Array1<f32>,
}

pub fn channel_magnitudes(model: &Llama, ids: &[u32], head: usize) -> Result<ChannelMagnitudes> {
    let kv = record_kv(model, ids)?;
    let d = model.config().head_dim;
    let mut keys = Array2::zeros((kv.len(), d));
    let mut values = Array2::zeros((kv.len(), d));
    let (mut key_outliers, mut value_outliers) = (Vec::new(), Vec::new());
    for (l, (k, v)) in kv.iter().enumerate() {
        let (ka, va) = (channel_absmax(k), channel_absmax(v));
        keys.row_mut(l).assign(&ka.row(head));
        values.row_mut(l).assign(&va.row(head));
        // The worst head of the layer.
        key_outliers.push(outlier_ratio(&ka).fold(0.0f32, |m, &r| m.max(r)));
        value_outliers.push(outlier_ratio(&va).fold(0.0f32, |m, &r| m.max(r)));
    }
    Ok(ChannelMagnitudes {
        keys,
        values,
        key_outliers: key_outliers.into(),
        value_outliers: value_outliers.into(),
    })
}

/// A labelled curve: `(x, y)` points.
pub type Curve = (String, Vec<(f64, f64)>);

/// The low-rank error curves: energy left out on the calibration text, and the error on
/// held-out text, for K and V, means over layers and heads, at ranks 0…d.
pub fn low_rank_curves(model: &Llama, calibration: &[u32], held_out: &[u32]) -> Result<Vec<Curve>> {
    let fit = record_kv(model, calibration)?;
    let test = record_kv(model, held_out)?;
    let codec = LowRankCodec::fit(&fit, 1, 1)?;
    let d = model.config().head_dim;
    // Ranks 1…d−1: rank d reconstructs exactly (its error is rounding, ~1e-13, and would squash
    // the log axis).
    let points = |errors: Vec<f64>| {
        errors
            .into_iter()
            .enumerate()
            .filter(|(r, _)| (1..d).contains(r))
            .map(|(r, e)| (r as f64, e))
            .collect()
    };
    let held = |bases: &[Vec<crate::caches::low_rank::HeadBasis>], key: bool| -> Vec<f64> {
        (0..=d)
            .map(|r| {
                let per_layer =
                    bases.iter().zip(&test).map(|(b, (k, v))| held_out_error(b, if key { k } else { v }, r));
                per_layer.sum::<f64>() / bases.len() as f64
            })
            .collect()
    };
    Ok(vec![
        ("K, calibration (energy left out)".into(), points(mean_residual_energy(&codec.keys))),
        ("K, held-out text".into(), points(held(&codec.keys, true))),
        ("V, calibration (energy left out)".into(), points(mean_residual_energy(&codec.values))),
        ("V, held-out text".into(), points(held(&codec.values, false))),
    ])
}

/// Quality rows read back from a CSV the binary wrote (`QualityRow::CSV_HEADER`).
pub fn read_quality(path: impl AsRef<Path>) -> attn_support::Result<Vec<QualityRow>> {
    let table = Table::read(path)?;
    table
        .rows()
        .map(|r| {
            Ok(QualityRow {
                name: r.text("cache")?.to_string(),
                relative_bytes: r.get("relative_bytes")?,
                perplexity: r.get("perplexity")?,
                agreeing_prefix: r.get("agreeing_prefix")?,
                agreeing_steps: r.get("agreeing_steps")?,
                generated: r.get("generated")?,
            })
        })
        .collect()
}

/// Token times read back from a CSV the binary wrote (`TokenTime::CSV_HEADER`).
pub fn read_token_times(path: impl AsRef<Path>) -> attn_support::Result<Vec<TokenTime>> {
    let table = Table::read(path)?;
    table
        .rows()
        .map(|r| {
            Ok(TokenTime {
                position: r.get("position")?,
                without_cache: r.get::<f64>("without_cache_ms")? / 1e3,
                with_cache: r.get::<f64>("with_cache_ms")? / 1e3,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::report::write_lines;

    #[test]
    fn recorded_csvs_read_back_what_was_written() {
        let dir = std::env::temp_dir().join(format!("ch07-csv-{}", std::process::id()));
        let rows = [QualityRow {
            name: "INT8 (K per channel, G=32; V per token)".into(),
            relative_bytes: 0.27344,
            perplexity: 43.31768,
            agreeing_prefix: 48,
            agreeing_steps: 47,
            generated: 48,
        }];
        let path = dir.join("quality.csv");
        write_lines(&path, QualityRow::CSV_HEADER, rows.iter().map(|r| r.csv())).unwrap();
        let back = read_quality(&path).unwrap();
        assert_eq!((back[0].agreeing_steps, back[0].perplexity), (47, 43.31768));
        let times = [TokenTime { position: 16, without_cache: 0.1588, with_cache: 0.0752 }];
        let path = dir.join("token_times.csv");
        write_lines(&path, TokenTime::CSV_HEADER, times.iter().map(|t| t.csv())).unwrap();
        assert_eq!(read_token_times(&path).unwrap()[0].position, 16);
        std::fs::remove_dir_all(dir).ok();
    }
}

/// The quality rows as a table: bytes relative to the f32 cache, perplexity and its change from
/// the first row's (the reference), the greedy prefix and the teacher-forced agreement.
pub fn quality_table(rows: &[QualityRow]) -> TextTable {
    let reference = rows.first().map_or(f64::NAN, |r| r.perplexity);
    let mut table = TextTable::new(&[
        ("cache", 0),
        ("bytes vs f32", 0),
        ("perplexity", 0),
        ("Δ", 0),
        ("greedy prefix", 0),
        ("forced agree", 0),
    ])
    .left_aligned(0);
    for r in rows {
        table.push([
            r.name.clone(),
            format!("{:.3}", r.relative_bytes),
            format!("{:.2}", r.perplexity),
            format!("{:+.2}", r.perplexity - reference),
            format!("{}/{}", r.agreeing_prefix, r.generated),
            format!("{}/{}", r.agreeing_steps, r.generated),
        ]);
    }
    table
}

#[cfg(test)]
mod quality_table_tests {
    use super::*;

    #[test]
    fn quality_table_shows_the_change_from_the_reference() {
        let row = |name: &str, perplexity: f64, prefix: usize| QualityRow {
            name: name.into(),
            relative_bytes: 0.5,
            perplexity,
            agreeing_prefix: prefix,
            agreeing_steps: 47,
            generated: 48,
        };
        let text = quality_table(&[row("f32 (reference)", 43.28, 48), row("bf16", 43.5, 19)]).render();
        assert!(
            text.contains("f32 (reference)") && text.contains("+0.22") && text.contains("19/48"),
            "{text}"
        );
        assert!(text.contains("47/48") && text.contains("0.500"), "{text}");
    }
}
