//! Draws one figure of each kind the support crate offers, to look at them:
//! `cargo run -p attn-support --example figure_gallery -- <dir>`.

use attn_support::plot::{self, Heatmap, LineChart, Series};

fn main() -> attn_support::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "target/figures/gallery".into());
    let dir = std::path::Path::new(&dir);
    let data =
        ndarray::Array2::from_shape_fn((6, 6), |(i, j)| if j <= i { 1.0 / (i + 1) as f64 } else { 0.0 });
    let words = ["the", "cat", "sat", "on", "a", "mat"].map(String::from).to_vec();
    let heatmap = Heatmap {
        title: "Causal uniform weights".into(),
        data,
        row_labels: words.clone(),
        col_labels: words,
        x_desc: "key".into(),
        y_desc: "query".into(),
        annotate: true,
    };
    let lines = LineChart {
        title: "Growth".into(),
        x_desc: "N".into(),
        y_desc: "time (ms)".into(),
        log_x: true,
        log_y: true,
        series: vec![
            Series::new("N", (6..12).map(|p| (2f64.powi(p), 2f64.powi(p) * 1e-3)).collect()),
            Series::new("N²", (6..12).map(|p| (2f64.powi(p), 4f64.powi(p) * 1e-6)).collect()),
        ],
    };
    for path in plot::save(&heatmap, dir, "heatmap")?.into_iter().chain(plot::save(&lines, dir, "lines")?) {
        println!("{}", path.display());
    }
    Ok(())
}
