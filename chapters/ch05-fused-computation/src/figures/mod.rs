//! Chapter 5's figures, drawn on the CPU from the byte models and the mask rules (no GPU, no
//! recorded run): `ch05 --out DIR` writes them, the notebook shows them inline.
//!
//! - [`bytes_moved_figure`]: modelled bytes, unfused against fused, for each of the three
//!   fusions at the shapes of real decoders (bf16), one panel per fusion, with the fused/unfused
//!   ratio over each pair;
//! - [`qkv_figure`]: why fusing the QKV projection gains little — the share of its bytes that
//!   one GEMM saves, and its arithmetic intensity against the H100's measured bf16 ridge point;
//! - [`mask_figure`]: the masks the fused softmax computes from indices (causal, causal with
//!   fewer queries than keys, key padding, sliding window): every row an interval `lo..hi`;
//! - [`recorded`]: the measured time, unfused against fused, from a GPU run's CSVs
//!   (`ch05 --figures-from DIR --out DIR`).

pub mod recorded;

use crate::bytes::BytesMoved;
use crate::qkv_epilogue::EpiloguePipeline;
use crate::qkv_projection::{LLAMA3_8B, QkvDims, QkvPipeline, SMOLLM2_135M};
use crate::softmax_fusion::{MaskSpec, ScoreShape, SoftmaxPipeline};
use attn_support::Result;
use attn_support::ndarray::Array2;
use attn_support::plot::{
    Chart, Figure, Heatmap, Line, Panels, SERIES_COLORS, Scale, SeriesLabelPosition, ensure_font, plot_err,
    save,
};
use attn_support::plotters::coord::Shift;
use attn_support::plotters::prelude::*;
use attn_support::plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// bf16: two bytes an element, the dtype the models are served in.
const BF16: u64 = 2;

/// The bf16 GEMM roof over the copy bandwidth measured on the book's H100 in one run
/// (`docs/src/results/h100-2026-12-05-profile/ch12/ch12_ceilings.json`: 779 TFLOP/s and
/// 2.98 TB/s), in FLOP per byte: left of it a kernel is bound by memory, right of it by arithmetic.
pub const H100_BF16_RIDGE_FLOP_PER_BYTE: f64 = 779.0e12 / 2.98e12;

/// Pairs of bars on a log axis, unfused against fused, one pair per category, with the
/// fused/unfused ratio over each pair: modelled bytes ([`ByteBars::bytes`]) or measured times.
#[derive(Clone, Debug)]
pub struct ByteBars {
    pub title: String,
    /// One label per pair of bars (`\n` breaks a label into lines).
    pub categories: Vec<String>,
    /// (unfused, fused) per category, in the unit of `y_desc`.
    pub values: Vec<(f64, f64)>,
    pub y_desc: String,
    pub size: (u32, u32),
}

impl ByteBars {
    /// Bars of total bytes in MB.
    pub fn bytes(
        title: &str,
        categories: Vec<String>,
        unfused: &[BytesMoved],
        fused: &[BytesMoved],
    ) -> ByteBars {
        ByteBars {
            title: title.into(),
            categories,
            values: unfused.iter().zip(fused).map(|(u, f)| (mb(u.total()), mb(f.total()))).collect(),
            y_desc: "MB moved (modelled)".into(),
            size: (640, 480),
        }
    }

    /// The fused version's value over the unfused one's, per category.
    pub fn ratios(&self) -> Vec<f64> {
        self.values.iter().map(|&(u, f)| f / u).collect()
    }
}

/// Megabytes (10⁶ bytes), the unit of the figures.
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

impl Figure for ByteBars {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        let n = self.categories.len();
        if n == 0 || self.values.len() != n || self.values.iter().any(|&(u, f)| !(u > 0.0 && f > 0.0)) {
            return Err(attn_support::Error::InvalidArgument(format!(
                "bars '{}': {} categories, {} pairs of values, every value must be > 0",
                self.title,
                n,
                self.values.len()
            )));
        }
        let values = self.values.iter().flat_map(|&(u, f)| [u, f]);
        let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        // Bars stand on a floor below the smallest value; the top leaves room for the ratios.
        let (floor, top) = (lo / 3.0, hi * 5.0);
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..n as f64, (floor..top).log_scale())
            .map_err(plot_err)?;
        let y_scale = Scale::Log10;
        let count = y_scale.label_count(floor, top);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(count)
            .y_label_formatter(&|v| y_scale.label(*v))
            .y_desc(&self.y_desc)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(plot_err)?;
        let (unfused_color, fused_color) = (SERIES_COLORS[1], SERIES_COLORS[0]);
        let base = area.get_base_pixel();
        let text = |s: &str, size: f64, color: RGBColor, at: (i32, i32)| {
            let style = ("sans-serif", size).into_font().color(&color).pos(Pos::new(HPos::Center, VPos::Top));
            area.draw(&Text::new(s.to_string(), (at.0 - base.0, at.1 - base.1), style)).map_err(plot_err)
        };
        for (i, (&(u, f), ratio)) in self.values.iter().zip(self.ratios()).enumerate() {
            let x = i as f64;
            for (x0, x1, value, color) in
                [(x + 0.12, x + 0.48, u, unfused_color), (x + 0.52, x + 0.88, f, fused_color)]
            {
                chart
                    .draw_series([Rectangle::new([(x0, floor), (x1, value)], color.filled())])
                    .map_err(plot_err)?;
            }
            let above = chart.backend_coord(&(x + 0.5, u.max(f) * 1.25));
            // Near 1 (the QKV projection at decode) two decimals would hide the difference.
            let ratio = if ratio > 0.99 { format!("×{ratio:.4}") } else { format!("×{ratio:.2}") };
            text(&ratio, 15.0, RGBColor(60, 60, 60), (above.0, above.1 - 18))?;
            let below = chart.backend_coord(&(x + 0.5, floor));
            for (k, line) in self.categories[i].split('\n').enumerate() {
                text(line, 14.0, BLACK, (below.0, below.1 + 6 + 16 * k as i32))?;
            }
        }
        // The legend: two swatches in the upper left corner, above the smallest pair of bars.
        let corner = chart.backend_coord(&(0.0, top));
        for (k, (label, color)) in
            [("unfused", unfused_color), ("fused", fused_color)].into_iter().enumerate()
        {
            let (x, y) = (corner.0 - base.0 + 12, corner.1 - base.1 + 8 + 20 * k as i32);
            area.draw(&Rectangle::new([(x, y + 3), (x + 14, y + 15)], color.filled())).map_err(plot_err)?;
            let style = ("sans-serif", 15).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Top));
            area.draw(&Text::new(label, (x + 20, y), style)).map_err(plot_err)?;
        }
        Ok(())
    }
}

/// The two models and two token counts of the benchmarks, as categories.
pub fn model_points() -> Vec<(String, QkvDims, usize)> {
    let mut points = Vec::new();
    for (name, dims) in [("SmolLM2", SMOLLM2_135M), ("Llama-3-8B", LLAMA3_8B)] {
        for tokens in [1, 4096] {
            let phase = if tokens == 1 { "decode" } else { "prefill 4096" };
            points.push((format!("{name}\n{phase}"), dims, tokens));
        }
    }
    points
}

/// The QKV projection's bars: three GEMMs against one, bf16.
pub fn qkv_bars() -> ByteBars {
    let points = model_points();
    let unfused: Vec<_> =
        points.iter().map(|&(_, d, n)| QkvPipeline::ThreeGemms.bytes_moved(d, n, BF16)).collect();
    let fused: Vec<_> =
        points.iter().map(|&(_, d, n)| QkvPipeline::OneGemm.bytes_moved(d, n, BF16)).collect();
    let categories = points.into_iter().map(|p| p.0).collect();
    ByteBars::bytes("1. QKV projection: 3 GEMMs vs 1", categories, &unfused, &fused)
}

/// The score shapes of one layer's prefill: (label, shape).
pub fn softmax_points() -> Vec<(String, ScoreShape)> {
    let layer = |heads, n| ScoreShape { batch: 1, heads, nq: n, nk: n };
    vec![
        ("SmolLM2\nN = 1024".into(), layer(9, 1024)),
        ("SmolLM2\nN = 4096".into(), layer(9, 4096)),
        ("Llama-3-8B\nN = 4096".into(), layer(32, 4096)),
        ("Llama-3-8B\nN = 8192".into(), layer(32, 8192)),
    ]
}

/// Scale + mask + softmax's bars: three passes with a mask tensor against one, bf16.
pub fn softmax_bars() -> ByteBars {
    let points = softmax_points();
    let unfused: Vec<_> =
        points.iter().map(|&(_, s)| SoftmaxPipeline::Unfused.bytes_moved(s, BF16)).collect();
    let fused: Vec<_> = points.iter().map(|&(_, s)| SoftmaxPipeline::Fused.bytes_moved(s, BF16)).collect();
    let categories = points.into_iter().map(|p| p.0).collect();
    ByteBars::bytes("2. scale + mask + softmax: 3 passes vs 1", categories, &unfused, &fused)
}

/// The epilogue's bars: RoPE + KV-cache write as three passes against one, bf16.
pub fn epilogue_bars() -> ByteBars {
    let points = model_points();
    let unfused: Vec<_> =
        points.iter().map(|&(_, d, n)| EpiloguePipeline::ThreePasses.bytes_moved(d, n, BF16)).collect();
    let fused: Vec<_> =
        points.iter().map(|&(_, d, n)| EpiloguePipeline::OnePass.bytes_moved(d, n, BF16)).collect();
    let categories = points.into_iter().map(|p| p.0).collect();
    ByteBars::bytes("3. RoPE + KV-cache write: 3 passes vs 1", categories, &unfused, &fused)
}

/// The three fusions side by side.
pub fn bytes_moved_figure() -> Panels<ByteBars> {
    Panels::new((640, 480), vec![qkv_bars(), softmax_bars(), epilogue_bars()])
}

/// Token counts 1, 2, 4, …, 16384.
fn token_counts() -> Vec<usize> {
    (0..=14).map(|k| 1usize << k).collect()
}

/// Left: the share of the three GEMMs' modelled bytes that one GEMM saves, against tokens.
/// Right: the one GEMM's arithmetic intensity (FLOPs over modelled bytes) against tokens, with
/// the H100's bf16 ridge point.
pub fn qkv_figure() -> Panels<Chart> {
    let models = [("SmolLM2-135M", SMOLLM2_135M), ("Llama-3-8B", LLAMA3_8B)];
    let saved = models
        .iter()
        .map(|&(name, dims)| {
            let points = token_counts()
                .into_iter()
                .map(|n| {
                    let three = QkvPipeline::ThreeGemms.bytes_moved(dims, n, BF16).total() as f64;
                    let one = QkvPipeline::OneGemm.bytes_moved(dims, n, BF16).total() as f64;
                    (n as f64, 100.0 * (1.0 - one / three))
                })
                .collect();
            Line::solid(name, points)
        })
        .collect();
    let mut intensity: Vec<Line> = models
        .iter()
        .map(|&(name, dims)| {
            let points = token_counts()
                .into_iter()
                .map(|n| {
                    let bytes = QkvPipeline::OneGemm.bytes_moved(dims, n, BF16).total() as f64;
                    (n as f64, dims.flops(n) as f64 / bytes)
                })
                .collect();
            Line::solid(name, points)
        })
        .collect();
    let ends = [1.0, 16384.0];
    intensity.push(Line::dashed(
        "H100 bf16 ridge (779 TFLOP/s ÷ 2.98 TB/s)",
        ends.iter().map(|&n| (n, H100_BF16_RIDGE_FLOP_PER_BYTE)).collect(),
    ));
    Panels::new(
        (640, 460),
        vec![
            Chart {
                x_scale: Scale::Log2,
                y_range: Some((0.0, 50.0)),
                lines: saved,
                legend: SeriesLabelPosition::UpperLeft,
                ..Chart::new("bytes one GEMM saves (bf16, modelled)", "tokens", "% of the three GEMMs' bytes")
            },
            Chart {
                x_scale: Scale::Log2,
                y_scale: Scale::Log10,
                lines: intensity,
                legend: SeriesLabelPosition::UpperLeft,
                ..Chart::new("arithmetic intensity of the QKV GEMM", "tokens", "FLOP per byte (modelled)")
            },
        ],
    )
}

/// The visible keys of `mask` as a (Nq, Nk) matrix: 1 where visible, NaN (grey) where masked.
pub fn mask_matrix(mask: &MaskSpec, b: usize, nq: usize, nk: usize) -> Array2<f64> {
    Array2::from_shape_fn(
        (nq, nk),
        |(i, j)| {
            if mask.visible_keys(b, i, nq, nk).contains(&j) { 1.0 } else { f64::NAN }
        },
    )
}

/// Four masks the fused kernel computes from indices, each row an interval of keys.
pub fn mask_figure() -> Panels<Heatmap> {
    let panel = |title: &str, mask: MaskSpec, nq: usize, nk: usize| Heatmap {
        color_bar: false,
        value_range: Some((0.0, 2.0)),
        x_desc: "key j".into(),
        y_desc: "query i".into(),
        ..Heatmap::new(title, mask_matrix(&mask, 0, nq, nk))
    };
    Panels::grid(
        (480, 440),
        4,
        vec![
            panel("causal, Nq = Nk = 12", MaskSpec::causal(), 12, 12),
            panel("causal, Nq = 6 < Nk = 12", MaskSpec::causal(), 6, 12),
            panel("key padding, 9 real keys", MaskSpec::none().with_key_lengths(vec![9]), 12, 12),
            panel("sliding window W = 4", MaskSpec::sliding_window(4), 12, 12),
        ],
    )
}

/// Write every figure of the chapter into `dir` (PNG and SVG); returns the files written.
pub fn write_figures(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = save(&bytes_moved_figure(), dir, "ch05_bytes_moved")?;
    files.extend(save(&qkv_figure(), dir, "ch05_qkv_intensity")?);
    files.extend(save(&mask_figure(), dir, "ch05_masks")?);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_fusion_moves_two_sevenths_and_qkv_saves_little_at_decode() {
        assert!(softmax_bars().ratios().iter().all(|r| (r - 2.0 / 7.0).abs() < 1e-12));
        // Decode: X is 1 row against megabytes of weights, so one GEMM saves well under 1 %.
        let qkv = qkv_bars().ratios();
        assert!(qkv[0] > 0.99 && qkv[2] > 0.999, "{qkv:?}");
    }

    #[test]
    fn mask_rows_are_intervals() {
        let m = mask_matrix(&MaskSpec::sliding_window(4), 0, 12, 12);
        // Row 7 sees keys 4..=7.
        let visible: Vec<usize> = (0..12).filter(|&j| m[[7, j]] == 1.0).collect();
        assert_eq!(visible, [4, 5, 6, 7]);
    }
}
