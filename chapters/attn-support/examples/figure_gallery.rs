//! Draws one figure of each kind the support crate offers, to look at them:
//! `cargo run -p attn-support --example figure_gallery -- <dir>`.

use attn_support::plot::{self, Chart, Heatmap, Line, Panels, Scale, SeriesLabelPosition};

fn main() -> attn_support::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "target/figures/gallery".into());
    let dir = std::path::Path::new(&dir);
    let words = ["the", "cat", "sat", "on", "a", "mat"].map(String::from).to_vec();
    // Causal uniform weights: row i spreads 1 over keys 0..=i; keys after i are masked (NaN).
    let causal =
        ndarray::Array2::from_shape_fn((6, 6), |(i, j)| if j <= i { 1.0 / (i + 1) as f64 } else { f64::NAN });
    let heatmap = Heatmap {
        row_labels: words.clone(),
        col_labels: words,
        x_desc: "key".into(),
        y_desc: "query".into(),
        annotate: true,
        ..Heatmap::new("Causal uniform weights", causal.clone())
    };
    let masked_text = Heatmap {
        masked_text: "masked".into(),
        value_range: Some((0.0, 1.0)),
        color_bar: false,
        ..heatmap.clone()
    };
    let sizes = || (6..=12).map(|p| 2f64.powi(p));
    let growth = Chart {
        x_scale: Scale::Log2,
        y_scale: Scale::Log10,
        lines: vec![
            Line::solid("∝ N", sizes().map(|n| (n, n * 1e-3)).collect()),
            Line::solid("∝ N²", sizes().map(|n| (n, n * n * 1e-6)).collect()),
            Line::dashed("guide", sizes().map(|n| (n, n * n * 2e-6)).collect()),
        ],
        markers: vec![(1024.0, "cache full".into())],
        ..Chart::new("Growth (log₂ x, log₁₀ y)", "N", "time (ms)")
    };
    let linear = Chart {
        lines: vec![Line::solid("sin", (0..=40).map(|i| (i as f64 / 4.0, (i as f64 / 4.0).sin())).collect())],
        legend: SeriesLabelPosition::LowerLeft,
        y_range: Some((-1.5, 1.5)),
        ..Chart::new("Linear axes, fixed y range", "x", "sin x")
    };
    let figures = [
        plot::save(&heatmap, dir, "heatmap")?,
        plot::save(
            &Panels::new((520, 460), vec![masked_text, Heatmap { annotate: false, ..heatmap }]),
            dir,
            "heatmaps",
        )?,
        plot::save(&growth, dir, "chart")?,
        plot::save(&Panels::new((560, 440), vec![growth.clone(), linear]), dir, "panels")?,
    ];
    for path in figures.into_iter().flatten() {
        println!("{}", path.display());
    }
    Ok(())
}
