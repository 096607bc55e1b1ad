//! The chapter's figures (those that need no scaling): the rotation of a dimension pair, the
//! decay of `q·k` with the distance, and the frequency and wavelength of every pair against a
//! context length. Each is a value implementing [`Figure`]: the binary saves it
//! (`plot::save`, PNG + SVG), a notebook shows it inline (`plot::show`).

use crate::curves::{log_distances, mean_scores, wavelengths};
use crate::decay::relative_upper_bound;
use crate::rope::{RopeConfig, RopeLayout};
use attn_support::data::randn;
use attn_support::ndarray::{Array2, ArrayView2};
use attn_support::plot::{self, Chart, EqualAxes, Figure, Line, Panels, Scale, plot_err};
use attn_support::plotters::coord::Shift;
use attn_support::plotters::prelude::*;
use attn_support::plotters::style::text_anchor::{HPos, Pos, VPos};
use attn_support::{Error, Result};

/// One dimension pair of a query drawn in its plane at positions `0 … positions − 1`: the same
/// 2-D vector, turned by `m·θ` at position `m`.
#[derive(Clone, Debug)]
pub struct PairRotation {
    pub title: String,
    /// The pair's frequency `θ_i` (radians per position), as the model computes it (f32).
    pub theta: f32,
    pub positions: usize,
    /// The pair `(q_{2i}, q_{2i+1})` at position 0.
    pub q: [f64; 2],
}

impl PairRotation {
    /// The pair at position `m`: `q` turned by the f32 angle `m·θ` ([`RopeConfig::angle`]).
    pub fn at(&self, m: usize) -> (f64, f64) {
        let angle = f64::from(RopeConfig::angle(self.theta, m));
        let (s, c) = angle.sin_cos();
        (c * self.q[0] - s * self.q[1], s * self.q[0] + c * self.q[1])
    }
}

impl Figure for PairRotation {
    fn size(&self) -> (u32, u32) {
        (560, 600)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        plot::ensure_font();
        let radius = self.q[0].hypot(self.q[1]);
        if !(radius.is_finite() && radius > 0.0 && self.positions > 0) {
            return Err(Error::InvalidArgument(format!(
                "pair rotation '{}' needs a non-zero finite vector and at least one position",
                self.title
            )));
        }
        let area = area.titled(&self.title, ("sans-serif", 19)).map_err(plot_err)?;
        let axes = EqualAxes {
            margin: 15,
            x_label_area: 40,
            y_label_area: 50,
            x_desc: "q_2i".into(),
            y_desc: "q_2i+1".into(),
            label_size: 14,
            desc_size: 15,
        };
        let mut chart = plot::equal_aspect_chart(&area, radius * 1.4, &axes)?;
        let grey = RGBColor(150, 150, 150);
        let circle: Vec<(f64, f64)> = (0..=180)
            .map(|k| {
                let t = k as f64 / 180.0 * std::f64::consts::TAU;
                (radius * t.cos(), radius * t.sin())
            })
            .collect();
        chart.draw_series(DashedLineSeries::new(circle, 6, 4, grey.stroke_width(1))).map_err(plot_err)?;
        // Early positions blue, late ones red, so that the order shows where arrows overlap.
        let (first, last) = (plot::SERIES_COLORS[0], plot::SERIES_COLORS[1]);
        let last_m = (self.positions - 1).max(1) as f64;
        for m in 0..self.positions {
            let t = m as f64 / last_m;
            let mix = |a: u8, b: u8| (f64::from(a) * (1.0 - t) + f64::from(b) * t).round() as u8;
            let color = RGBColor(mix(first.0, last.0), mix(first.1, last.1), mix(first.2, last.2));
            let tip = self.at(m);
            chart
                .draw_series(plot::arrow::<DB>((0.0, 0.0), tip, 0.08 * radius, 0.4 * 0.08 * radius, color, 2))
                .map_err(plot_err)?;
            let label = (tip.0 * 1.17, tip.1 * 1.17);
            let style =
                ("sans-serif", 14).into_font().color(&color).pos(Pos::new(HPos::Center, VPos::Center));
            chart.draw_series([Text::new(format!("m={m}"), label, style)]).map_err(plot_err)?;
        }
        Ok(())
    }
}

/// Pairs `fast` and `slow` of `config` (their θ from [`RopeConfig::inv_freq`]) for the same
/// unit vector at positions `0 … positions − 1`, side by side.
pub fn rotation_figure(
    config: &RopeConfig,
    fast: usize,
    slow: usize,
    positions: usize,
) -> Result<Panels<PairRotation>> {
    let inv_freq = config.inv_freq();
    let panel = |i: usize| -> Result<PairRotation> {
        let theta = *inv_freq.get(i).ok_or_else(|| {
            Error::InvalidArgument(format!("pair {i} is past the {} pairs of the config", inv_freq.len()))
        })?;
        let turn_deg = f64::from(theta).to_degrees();
        Ok(PairRotation {
            title: format!("pair i = {i}: θ = {theta:.3} rad ({turn_deg:.1}°) per position"),
            theta,
            positions,
            q: [1.0, 0.0],
        })
    };
    Ok(Panels::new((560, 600), vec![panel(fast)?, panel(slow)?]))
}

/// RoFormer's decay, two ways, for head dim `head_dim` and each base in `bases`, distances
/// 1 … `max_distance` on a log axis. Left: the content-free bound ([`relative_upper_bound`],
/// RoFormer's figure 2). Right: actual scores through [`crate::apply_rope`], as a fraction of
/// the score at distance 0 — q = k all ones (the paper's setting), q = k random (mean over
/// `samples` draws), and independent random q, k (mean |q·k|, which does not decay). The
/// random q = k curve lies on the all-ones one: with standard normal entries every `q_i²` has
/// mean 1, so the mean score is the all-ones score, up to sampling noise.
pub fn decay_figure(head_dim: usize, bases: &[f32], max_distance: usize, samples: usize) -> Result<Panels> {
    let distances = log_distances(max_distance, 8);
    let mut bound_lines = Vec::new();
    let mut score_lines = Vec::new();
    let ones = Array2::<f32>::ones((1, head_dim));
    let (q_rand, k_rand) = (randn((samples, head_dim), 61), randn((samples, head_dim), 62));
    for &base in bases {
        let config = RopeConfig::new(head_dim, base, RopeLayout::HalfRotation)?;
        let bound: Result<Vec<(f64, f64)>> = distances
            .iter()
            .map(|&r| Ok((r as f64, relative_upper_bound(r as f64, head_dim, f64::from(base))?)))
            .collect();
        bound_lines.push(Line::solid(format!("base {}", plot::format_number(f64::from(base))), bound?));
        let ratio = |qs: ArrayView2<f32>, ks: ArrayView2<f32>, abs: bool| -> Result<Vec<(f64, f64)>> {
            let at0 = mean_scores(&config, qs, ks, &[0])?[0];
            let norm = if abs { at0.2 } else { at0.1 };
            Ok(mean_scores(&config, qs, ks, &distances)?
                .into_iter()
                .map(|(r, mean, mean_abs)| (r as f64, (if abs { mean_abs } else { mean }) / norm))
                .collect())
        };
        let b = plot::format_number(f64::from(base));
        score_lines
            .push(Line::solid(format!("q = k = 1, base {b}"), ratio(ones.view(), ones.view(), false)?));
        score_lines.push(Line::solid(
            format!("q = k random, base {b}"),
            ratio(q_rand.view(), q_rand.view(), false)?,
        ));
        if base == bases[0] {
            score_lines.push(Line::dashed(
                format!("q, k independent: mean |q·k|, base {b}"),
                ratio(q_rand.view(), k_rand.view(), true)?,
            ));
        }
    }
    let chart = |title: String, y_desc: &str, lines, legend| Chart {
        x_scale: Scale::Log10,
        lines,
        legend,
        ..Chart::new(title, "relative distance m − n (tokens)", y_desc)
    };
    Ok(Panels::new(
        (760, 520),
        vec![
            chart(
                format!("RoFormer's bound: mean |S_j|, d = {head_dim}"),
                "relative upper bound",
                bound_lines,
                SeriesLabelPosition::UpperRight,
            ),
            chart(
                format!("Scores through RoPE, d = {head_dim} (1 at distance 0)"),
                "q·k at distance / q·k at 0",
                score_lines,
                SeriesLabelPosition::LowerLeft,
            ),
        ],
    ))
}

/// Frequency `θ_i` (left) and wavelength `2π/θ_i` (right) of every pair for head dim `head_dim`
/// and each base, with the context lengths `contexts` as horizontal dashed lines on the right:
/// pairs below a line turn at least once within that context, pairs above it never do.
pub fn frequency_figure(head_dim: usize, bases: &[f32], contexts: &[usize]) -> Result<Panels> {
    let mut freq_lines = Vec::new();
    let mut wave_lines = Vec::new();
    for &base in bases {
        let config = RopeConfig::new(head_dim, base, RopeLayout::HalfRotation)?;
        let b = plot::format_number(f64::from(base));
        let theta = config.inv_freq().iter().enumerate().map(|(i, &t)| (i as f64, f64::from(t))).collect();
        freq_lines.push(Line::solid(format!("base {b}"), theta));
        let waves = wavelengths(&config).into_iter().enumerate().map(|(i, w)| (i as f64, w)).collect();
        wave_lines.push(Line::solid(format!("base {b}"), waves));
    }
    let last_pair = (head_dim / 2).saturating_sub(1) as f64;
    for &c in contexts {
        let label = format!("context {c}");
        wave_lines.push(Line::dashed(label, vec![(0.0, c as f64), (last_pair, c as f64)]));
    }
    let chart = |title: String, y_desc: &str, lines, legend| Chart {
        y_scale: Scale::Log10,
        lines,
        legend,
        ..Chart::new(title, "dimension pair i", y_desc)
    };
    Ok(Panels::new(
        (700, 520),
        vec![
            chart(
                format!("Frequency θ_i = base^(−2i/d), d = {head_dim}"),
                "θ_i (radians per position)",
                freq_lines,
                SeriesLabelPosition::LowerLeft,
            ),
            chart(
                "Wavelength 2π/θ_i against context length".into(),
                "positions per full turn",
                wave_lines,
                SeriesLabelPosition::LowerRight,
            ),
        ],
    ))
}
