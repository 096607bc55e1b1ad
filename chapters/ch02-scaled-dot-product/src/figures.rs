//! The chapter's figures, built from the numbers of [`crate::experiments`]. Each function
//! returns a value implementing [`attn_support::plot::Figure`], which the binary saves as
//! PNG + SVG and the notebook shows inline.

use crate::experiments::{CostPoint, OverflowPoint, ScalingPoint};
use crate::mask::SdpaMask;
use attn_support::ndarray::Array2;
use attn_support::plot::{Chart, Heatmap, Line, Panels, Scale, SeriesLabelPosition};
use attn_support::units::mib;

/// ln(f32::MAX): e^x overflows f32 above this.
pub const F32_EXP_OVERFLOW: f64 = 88.722_839;
/// ln(f32::MIN_POSITIVE): below this e^x is subnormal (fewer significant bits), and below
/// about −103.97 it rounds to 0.
pub const F32_EXP_SUBNORMAL: f64 = -87.336_544;

/// Logit variance, softmax entropy and softmax-Jacobian norm vs head dim, scaled vs unscaled.
pub fn scaling_figure(points: &[ScalingPoint], keys: usize) -> Panels {
    let d = |p: &ScalingPoint| p.head_dim as f64;
    let pair = |f: &dyn Fn(&ScalingPoint) -> (f64, f64)| {
        vec![
            Line::solid("unscaled q·k", points.iter().map(|p| (d(p), f(p).0)).collect()),
            Line::solid("scaled q·k/√d", points.iter().map(|p| (d(p), f(p).1)).collect()),
        ]
    };
    let chart = |title: &str, y_desc: &str, y_scale: Scale, lines: Vec<Line>, legend| Chart {
        x_scale: Scale::Log2,
        y_scale,
        lines,
        legend,
        ..Chart::new(title, "head dim d", y_desc)
    };
    let mut variance = pair(&|p| (p.unscaled.variance, p.scaled.variance));
    variance.push(Line::dashed("= d", points.iter().map(|p| (d(p), d(p))).collect()));
    let mut entropy = pair(&|p| (p.unscaled.entropy, p.scaled.entropy));
    let uniform = (keys as f64).ln();
    entropy
        .push(Line::dashed(format!("uniform: ln {keys}"), points.iter().map(|p| (d(p), uniform)).collect()));
    Panels::new(
        (560, 480),
        vec![
            chart(
                "Variance of the logits",
                "Var(logit)",
                Scale::Log10,
                variance,
                SeriesLabelPosition::UpperLeft,
            ),
            Chart {
                y_range: Some((0.0, uniform * 1.08)),
                ..chart(
                    &format!("Softmax entropy over {keys} keys"),
                    "mean entropy (nats)",
                    Scale::Linear,
                    entropy,
                    SeriesLabelPosition::LowerLeft,
                )
            },
            chart(
                "Gradient through the softmax",
                "median ‖diag(p) − p pᵀ‖_F",
                Scale::Log10,
                pair(&|p| (p.unscaled.jacobian_median, p.scaled.jacobian_median)),
                SeriesLabelPosition::LowerLeft,
            ),
        ],
    )
}

/// Error of naive and stable f32 softmax vs f64, for scaled and for shifted logits.
pub fn overflow_figure(by_scale: &[OverflowPoint], by_shift: &[OverflowPoint]) -> Panels {
    // Exact zeros cannot sit on a log axis: they are drawn at 1e-10, far below f32 rounding.
    let floor = 1e-10;
    let lines = |pts: &[OverflowPoint], x: fn(&OverflowPoint) -> f64| {
        vec![
            Line::solid("naive exp/Σexp", pts.iter().map(|p| (x(p), p.naive_err.max(floor))).collect()),
            Line::solid(
                "stable (max subtracted)",
                pts.iter().map(|p| (x(p), p.stable_err.max(floor))).collect(),
            ),
        ]
    };
    let y_desc = "max |p − p_f64|   (NaN at 1, exact 0 at 1e-10)";
    let base = |title: &str, x_desc: &str| Chart {
        y_scale: Scale::Log10,
        y_range: Some((floor / 2.0, 30.0)),
        legend: SeriesLabelPosition::MiddleLeft,
        ..Chart::new(title, x_desc, y_desc)
    };
    Panels::new(
        (640, 480),
        vec![
            Chart {
                x_scale: Scale::Log10,
                lines: lines(by_scale, |p| p.max_logit),
                markers: vec![(F32_EXP_OVERFLOW, "ln f32::MAX = 88.7".into())],
                ..base("Logits c·z, z ~ N(0, 1), growing c", "largest logit c·max z")
            },
            Chart {
                lines: lines(by_shift, |p| p.x),
                // The largest logit is c + max z: where it crosses the two limits.
                markers: by_shift
                    .first()
                    .map(|p| p.max_logit - p.x)
                    .map(|max_z| {
                        vec![
                            (F32_EXP_SUBNORMAL - max_z, "subnormal".into()),
                            (F32_EXP_OVERFLOW - max_z, "overflow".into()),
                        ]
                    })
                    .unwrap_or_default(),
                ..base("Logits z + c: overflow and underflow", "shift c")
            },
        ],
    )
}

/// Measured CPU time and computed memory vs sequence length, with N² guide lines.
pub fn complexity_figure(points: &[CostPoint]) -> Panels {
    let n = |p: &CostPoint| p.n as f64;
    // A guide through the smallest measurement: y(N) = y(N₀)·(N/N₀)².
    let guide = |value: fn(&CostPoint) -> f64| -> Vec<(f64, f64)> {
        let Some(first) = points.first() else { return Vec::new() };
        points.iter().map(|p| (n(p), value(first) * (n(p) / n(first)).powi(2))).collect()
    };
    let d = points.first().map_or(0, |p| p.head_dim);
    let chart = |title: String, y_desc: &str, lines| Chart {
        x_scale: Scale::Log2,
        y_scale: Scale::Log10,
        lines,
        ..Chart::new(title, "sequence length N", y_desc)
    };
    Panels::new(
        (600, 480),
        vec![
            chart(
                format!("CPU time of sdpa (B = H = 1, d = {d})"),
                "median time (ms)",
                vec![
                    Line::solid("measured", points.iter().map(|p| (n(p), p.cpu_ms)).collect()),
                    Line::dashed("∝ N²", guide(|p| p.cpu_ms)),
                ],
            ),
            chart(
                "Memory of one head (f32)".into(),
                "MiB",
                vec![
                    Line::solid(
                        "N×N scores: 4N² bytes",
                        points.iter().map(|p| (n(p), mib(p.score_bytes))).collect(),
                    ),
                    Line::solid(
                        format!("Q, K, V, O: 16Nd bytes (d = {d})"),
                        points.iter().map(|p| (n(p), mib(p.io_bytes))).collect(),
                    ),
                ],
            ),
        ],
    )
}

/// The attention weights of one (batch, head) as a heatmap over 0..1, each cell annotated;
/// the cells the mask hides are grey and say "masked".
pub fn weights_heatmap(weights: &Array2<f32>, mask: &SdpaMask, batch: usize, title: &str) -> Heatmap {
    let (nq, nk) = weights.dim();
    let visible = mask.visible_matrix(batch, nq, nk);
    // NaN is the heatmap's "no value": a masked weight is not a weight of 0.
    let data =
        Array2::from_shape_fn((nq, nk), |ij| if visible[ij] { f64::from(weights[ij]) } else { f64::NAN });
    Heatmap {
        row_labels: (0..nq).map(|i| format!("q{i}")).collect(),
        col_labels: (0..nk).map(|j| format!("k{j}")).collect(),
        x_desc: "key j".into(),
        y_desc: "query i".into(),
        annotate: true,
        masked_text: "masked".into(),
        value_range: Some((0.0, 1.0)),
        color_bar: false,
        size: ((110 + 80 * nk).min(1400) as u32, (120 + 60 * nq).min(1000) as u32),
        ..Heatmap::new(title, data)
    }
}
