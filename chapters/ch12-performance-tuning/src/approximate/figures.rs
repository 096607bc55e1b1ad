//! Figures of the algorithm level: time and error of the approximations against N, and the
//! tiles a block-sparsity pattern keeps.

use super::experiment::{ApproxConfig, ApproxErrors, ApproxPoint};
use super::pattern::BlockLayout;
use attn_support::ndarray::Array2;
use attn_support::plot::{Chart, Heatmap, Line, Panels, Scale, SeriesLabelPosition};
use ch02_scaled_dot_product::SdpaMask;

/// Three panels: CPU time vs N (log-log, with ∝ N² and ∝ N guides), then the relative error
/// against exact attention on random inputs and on local (peaked) inputs, with the softmax mass
/// the block-sparse pattern drops as a dashed line.
pub fn approx_figure(points: &[ApproxPoint], config: &ApproxConfig) -> Panels {
    let n = |p: &ApproxPoint| p.n as f64;
    let series = |f: fn(&ApproxPoint) -> f64| points.iter().map(|p| (n(p), f(p))).collect::<Vec<_>>();
    // y(N) = y(N₀)·(N/N₀)^power through the first point of a series.
    let guide = |f: fn(&ApproxPoint) -> f64, power: i32| -> Vec<(f64, f64)> {
        let Some(first) = points.first() else { return Vec::new() };
        points.iter().map(|p| (n(p), f(first) * (n(p) / n(first)).powi(power))).collect()
    };
    let pattern = &config.pattern;
    let sparse_label = format!(
        "block-sparse (block {}, window {}, global {})",
        pattern.block, pattern.window, pattern.global
    );
    let performer_label = format!("Performer (m = {})", config.features);
    let time = Chart {
        x_scale: Scale::Log2,
        y_scale: Scale::Log10,
        lines: vec![
            // Same order (so same colours) as the error panels; exact comes fourth.
            Line::solid(sparse_label, series(|p| p.block_sparse_ms)),
            Line::solid("linear (elu + 1)", series(|p| p.linear_ms)),
            Line::solid(performer_label.clone(), series(|p| p.performer_ms)),
            Line::solid("exact (chapter 2 sdpa)", series(|p| p.exact_ms)),
            Line::dashed("∝ N²", guide(|p| p.exact_ms, 2)),
            Line::dashed("∝ N", guide(|p| p.linear_ms, 1)),
        ],
        ..Chart::new(format!("CPU time, d = {}", config.head_dim), "sequence length N", "median time (ms)")
    };
    let error_chart = |title: &str, errors: fn(&ApproxPoint) -> ApproxErrors| {
        let line = |f: fn(&ApproxErrors) -> f64| points.iter().map(|p| (n(p), f(&errors(p)))).collect();
        Chart {
            x_scale: Scale::Log2,
            y_scale: Scale::Log10,
            legend: SeriesLabelPosition::LowerRight,
            lines: vec![
                Line::solid("block-sparse", line(|e| e.block_sparse)),
                Line::solid("linear (elu + 1)", line(|e| e.linear)),
                Line::solid(performer_label.clone(), line(|e| e.performer)),
                Line::dashed("mass dropped by the pattern", line(|e| e.dropped_mass)),
            ],
            ..Chart::new(title, "sequence length N", "‖o − o_exact‖ / ‖o_exact‖")
        }
    };
    Panels::new(
        (620, 500),
        vec![
            time,
            error_chart("Error, random inputs (spread attention)", |p| p.random),
            error_chart("Error, local inputs (peaked attention)", |p| p.local),
        ],
    )
}

/// The tiles of a layout: each kept tile coloured by the fraction of its scores that are
/// visible (1, or less on the causal diagonal), dropped tiles grey.
pub fn pattern_heatmap(layout: &BlockLayout, title: &str) -> Heatmap {
    let (qbs, kbs) = (layout.query_blocks(), layout.key_blocks());
    let mask = SdpaMask { causal: layout.causal, key_padding: None };
    let data = Array2::from_shape_fn((qbs, kbs), |(qb, kb)| {
        if !layout.is_kept(qb, kb) {
            return f64::NAN;
        }
        let (rows, keys) = (layout.query_range(qb), layout.key_range(kb));
        let visible: usize = rows
            .clone()
            .map(|i| mask.causal_end(i, layout.nq, layout.nk).min(keys.end).saturating_sub(keys.start))
            .sum();
        visible as f64 / (rows.len() * keys.len()) as f64
    });
    let cell = (560 / qbs.max(kbs).max(1)).clamp(4, 60) as u32;
    Heatmap {
        x_desc: format!("key block ({} keys each)", layout.block),
        y_desc: "query block".into(),
        value_range: Some((0.0, 1.0)),
        annotate: qbs.max(kbs) <= 12,
        size: (260 + cell * kbs as u32, 160 + cell * qbs as u32),
        ..Heatmap::new(format!("{title}: {:.0}% of scores computed", 100.0 * layout.density()), data)
    }
}
