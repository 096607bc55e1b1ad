//! The chapter's figures. Each is a value implementing [`Figure`], so the binary saves it
//! (`plot::save`, PNG + SVG) and the notebook shows it inline (`plot::show`).

use crate::toy::ToyExample;
use attn_support::plot::{self, Chart, EqualAxes, Figure, Heatmap, Line, Scale, plot_err};
use attn_support::plotters::coord::Shift;
use attn_support::plotters::prelude::*;
use attn_support::plotters::style::text_anchor::{HPos, Pos, VPos};
use attn_support::{Error, Result};

/// The toy sentence's attention weights as a heatmap: row = query word, column = key word.
pub fn toy_heatmap(toy: &ToyExample) -> Heatmap {
    Heatmap {
        row_labels: toy.tokens.clone(),
        col_labels: toy.tokens.clone(),
        x_desc: "key (attended to)".into(),
        y_desc: "query (attending)".into(),
        annotate: true,
        ..Heatmap::new("Attention weights softmax(QKᵀ) of the toy sentence", toy.weights.mapv(f64::from))
    }
}

/// One named key vector of the geometry figure.
#[derive(Clone, Debug)]
pub struct Key2 {
    pub name: String,
    pub key: [f64; 2],
}

/// A query and some keys in the plane, each key labelled with q·k and its softmax weight.
#[derive(Clone, Debug)]
pub struct QueryKeyGeometry {
    pub query: [f64; 2],
    pub keys: Vec<Key2>,
}

impl QueryKeyGeometry {
    /// The figure of the book: a key close to q in angle, a long key at a wider angle, a
    /// short key at a narrower one (length counts as well as angle), an orthogonal key, and
    /// keys on the far side of the line q·k = 0.
    pub fn example() -> QueryKeyGeometry {
        let keys = [[1.5, 1.6], [-0.2, 2.0], [-1.0, 1.4], [-1.6, -1.0], [1.0, -0.1], [-0.3, -1.3]];
        let names = ["k₁", "k₂", "k₃", "k₄", "k₅", "k₆"];
        QueryKeyGeometry {
            query: [1.4, 1.0],
            keys: names.iter().zip(keys).map(|(n, k)| Key2 { name: n.to_string(), key: k }).collect(),
        }
    }

    /// The dot product q·k of every key.
    pub fn scores(&self) -> Vec<f64> {
        self.keys.iter().map(|k| self.query[0] * k.key[0] + self.query[1] * k.key[1]).collect()
    }

    /// softmax of the scores: exp(s_j − max) / Σ exp(s − max).
    pub fn weights(&self) -> Vec<f64> {
        let s = self.scores();
        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.iter().map(|x| x / sum).collect()
    }
}

impl Figure for QueryKeyGeometry {
    fn size(&self) -> (u32, u32) {
        (820, 760)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        plot::ensure_font();
        let extent = self.keys.iter().flat_map(|k| k.key).chain(self.query).map(f64::abs).fold(0.0, f64::max);
        if !extent.is_finite() || extent == 0.0 {
            return Err(Error::InvalidArgument("the geometry figure needs non-zero finite vectors".into()));
        }
        let area = area
            .titled("A query, its keys, and their similarities q·k", ("sans-serif", 24))
            .map_err(plot_err)?;
        let half_x = extent * 1.6;
        let axes = EqualAxes {
            margin: 20,
            x_label_area: 45,
            y_label_area: 55,
            x_desc: "dimension 1".into(),
            y_desc: "dimension 2".into(),
            label_size: 15,
            desc_size: 16,
        };
        let mut chart = plot::equal_aspect_chart(&area, half_x, &axes)?;
        let half_y = chart.y_range().end;

        // The line q·k = 0: keys on q's side of it score positive, keys beyond it negative.
        let [qx, qy] = self.query;
        let q_len = (qx * qx + qy * qy).sqrt();
        let (px, py) = (-qy / q_len * 2.0 * half_x, qx / q_len * 2.0 * half_x);
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(DashedLineSeries::new(vec![(-px, -py), (px, py)], 8, 6, grey.stroke_width(2)))
            .map_err(plot_err)?;
        let note = (qy / q_len * 0.85 * half_y, -qx / q_len * 0.85 * half_y);
        let small = |color: RGBColor, h: HPos| {
            ("sans-serif", 15).into_font().color(&color).pos(Pos::new(h, VPos::Center))
        };
        chart
            .draw_series([Text::new("q·k = 0", (note.0 + 0.1, note.1), small(grey, HPos::Left))])
            .map_err(plot_err)?;

        let weights = self.weights();
        let scores = self.scores();
        let key_color = plot::SERIES_COLORS[0];
        for ((k, s), w) in self.keys.iter().zip(&scores).zip(&weights) {
            let tip = (k.key[0], k.key[1]);
            // Thicker arrows get more weight.
            let width = 1 + (w * 6.0).round() as u32;
            chart
                .draw_series(plot::arrow::<DB>((0.0, 0.0), tip, 0.22, 0.09, key_color, width))
                .map_err(plot_err)?;
            let right_side = tip.0 >= 0.0;
            let (hpos, dx) = if right_side { (HPos::Left, 0.12) } else { (HPos::Right, -0.12) };
            let at = (tip.0 + dx, tip.1);
            chart
                .draw_series([
                    Text::new(format!("{}  q·k = {s:.2}", k.name), (at.0, at.1 + 0.13), small(BLACK, hpos)),
                    Text::new(format!("weight = {w:.3}"), (at.0, at.1 - 0.13), small(key_color, hpos)),
                ])
                .map_err(plot_err)?;
        }
        let legend = [
            format!("weight = softmax over the {} scores q·k", self.keys.len()),
            "arrow width grows with the weight".to_string(),
        ];
        let corner = (-half_x * 0.96, -half_y * 0.80);
        chart
            .draw_series(legend.into_iter().enumerate().map(|(i, t)| {
                Text::new(t, (corner.0, corner.1 - 0.22 * i as f64), small(RGBColor(90, 90, 90), HPos::Left))
            }))
            .map_err(plot_err)?;
        let q_color = plot::SERIES_COLORS[1];
        chart
            .draw_series(plot::arrow::<DB>((0.0, 0.0), (qx, qy), 0.22, 0.09, q_color, 4))
            .map_err(plot_err)?;
        let q_label = ("sans-serif", 22).into_font().color(&q_color).pos(Pos::new(HPos::Left, VPos::Top));
        chart.draw_series([Text::new("q", (qx + 0.08, qy - 0.02), q_label)]).map_err(plot_err)?;
        Ok(())
    }
}

/// Median time against N, one line per version (in order of first appearance), from
/// `(version, N, median ms)` measurements; N on a log₂ axis (ticks at the powers of two the
/// binary times), time on a log₁₀ axis.
pub fn timing_chart<'a>(measurements: impl IntoIterator<Item = (&'a str, usize, f64)>, d: usize) -> Chart {
    let mut lines: Vec<Line> = Vec::new();
    for (version, n, ms) in measurements {
        let point = (n as f64, ms);
        match lines.iter_mut().find(|l| l.label == version) {
            Some(line) => line.points.push(point),
            None => lines.push(Line::solid(version, vec![point])),
        }
    }
    Chart {
        x_scale: Scale::Log2,
        y_scale: Scale::Log10,
        lines,
        size: (820, 520),
        ..Chart::new(
            format!("Attention time vs sequence length (d = {d})"),
            "sequence length N (n_q = n_k)",
            "median time (ms)",
        )
    }
}
