//! Two small figure types this chapter needs beyond `attn_support::plot`: a line chart with a
//! chosen legend corner, base-2 axes (ticks at 1, 2, 4, …), dashed guide lines and labelled
//! vertical markers; and a heatmap of attention weights whose masked cells say "masked".
//! (Candidates for the support crate; kept here so the chapter does not edit it.)

use crate::plotters::coord::Shift;
use crate::plotters::coord::ranged1d::{AsRangedCoord, Ranged, SegmentValue, ValueFormatter};
use crate::plotters::prelude::*;
use crate::plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use crate::plotters::style::text_anchor::{HPos, Pos, VPos};
use attn_support::ndarray::Array2;
use attn_support::plot::{Figure, SERIES_COLORS, ensure_font, format_number, plot_err};
use attn_support::{Error, Result};

/// How an axis maps values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Logarithmic with plotters' decimal ticks.
    Log10,
    /// Logarithmic with a tick at every power of two (x axis only).
    Log2,
}

/// One line of a [`Chart`].
#[derive(Clone, Debug)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Dashed and without markers: a guide, not a measurement.
    pub dashed: bool,
}

impl Line {
    pub fn solid(label: impl Into<String>, points: Vec<(f64, f64)>) -> Line {
        Line { label: label.into(), points, dashed: false }
    }
    pub fn dashed(label: impl Into<String>, points: Vec<(f64, f64)>) -> Line {
        Line { label: label.into(), points, dashed: true }
    }
}

/// A line chart.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub x_scale: Scale,
    /// `Linear` or `Log10`.
    pub y_scale: Scale,
    pub lines: Vec<Line>,
    /// Vertical dashed lines at these x values, with a label.
    pub markers: Vec<(f64, String)>,
    pub legend: SeriesLabelPosition,
    /// Fixed y range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

impl Chart {
    pub fn new(title: impl Into<String>, x_desc: impl Into<String>, y_desc: impl Into<String>) -> Chart {
        Chart {
            title: title.into(),
            x_desc: x_desc.into(),
            y_desc: y_desc.into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            lines: Vec::new(),
            markers: Vec::new(),
            legend: SeriesLabelPosition::UpperLeft,
            y_range: None,
        }
    }

    /// x as plotted: log2(x) on a base-2 axis.
    fn tx(&self, x: f64) -> f64 {
        if self.x_scale == Scale::Log2 { x.log2() } else { x }
    }

    fn drawable(&self, (x, y): (f64, f64)) -> bool {
        let positive = |v: f64, s: Scale| s == Scale::Linear || v > 0.0;
        x.is_finite() && y.is_finite() && positive(x, self.x_scale) && positive(y, self.y_scale)
    }

    fn range(values: impl Iterator<Item = f64>, log: bool) -> Option<(f64, f64)> {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo > hi {
            return None;
        }
        Some(match (log, lo < hi) {
            (true, true) => (lo / 1.4, hi * 1.4),
            (true, false) => (lo / 2.0, hi * 2.0),
            (false, true) => (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)),
            (false, false) => (lo - 1.0, hi + 1.0),
        })
    }
}

impl Figure for Chart {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        let pts = || self.lines.iter().flat_map(|l| l.points.iter().copied()).filter(|&p| self.drawable(p));
        let no_points = || Error::InvalidArgument(format!("chart '{}' has no drawable points", self.title));
        let (x0, x1) = match self.x_scale {
            // A third of a doubling of margin on each side.
            Scale::Log2 => {
                let (lo, hi) = Chart::range(pts().map(|p| p.0.log2()), false).ok_or_else(no_points)?;
                let (lo, hi) = (lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo)); // undo range()'s margin
                (lo - 0.3, hi + 0.3)
            }
            s => Chart::range(pts().map(|p| p.0), s == Scale::Log10).ok_or_else(no_points)?,
        };
        let log_y = self.y_scale != Scale::Linear;
        let (y0, y1) = match self.y_range {
            Some(r) => r,
            None => Chart::range(pts().map(|p| p.1), log_y).ok_or_else(no_points)?,
        };
        match (self.x_scale == Scale::Log10, log_y) {
            (false, false) => self.draw_on(area, x0..x1, y0..y1),
            (true, false) => self.draw_on(area, (x0..x1).log_scale(), y0..y1),
            (false, true) => self.draw_on(area, x0..x1, (y0..y1).log_scale()),
            (true, true) => self.draw_on(area, (x0..x1).log_scale(), (y0..y1).log_scale()),
        }
    }
}

impl Chart {
    fn draw_on<DB, X, Y>(&self, area: &DrawingArea<DB, Shift>, x: X, y: Y) -> Result<()>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 21))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(75)
            .build_cartesian_2d(x, y)
            .map_err(plot_err)?;
        let (xr, yr) = (chart.x_range(), chart.y_range());
        let base2 = self.x_scale == Scale::Log2;
        let x_label = |v: &f64| {
            if !base2 {
                format_number(*v)
            } else if (v - v.round()).abs() < 1e-6 {
                format_number(v.round().exp2())
            } else {
                String::new()
            }
        };
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&|v| format_number(*v))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .light_line_style(RGBColor(238, 238, 238));
        if base2 {
            // One tick per power of two: the label count is the number of integers in range.
            mesh.x_labels((xr.end.floor() - xr.start.ceil()) as usize + 1);
        }
        mesh.draw().map_err(plot_err)?;
        for (x, label) in &self.markers {
            let x = self.tx(*x);
            let grey = RGBColor(90, 90, 90);
            chart
                .draw_series(DashedLineSeries::new([(x, yr.start), (x, yr.end)], 6, 4, grey.stroke_width(1)))
                .map_err(plot_err)?;
            let style = ("sans-serif", 14).into_font().color(&grey).pos(Pos::new(HPos::Left, VPos::Top));
            // Just right of the line, a little below the top edge (in pixels of `area`).
            let (at, base) = (chart.backend_coord(&(x, yr.end)), area.get_base_pixel());
            let pixel = (at.0 - base.0 + 5, at.1 - base.1 + 5);
            area.draw(&Text::new(label.clone(), pixel, style)).map_err(plot_err)?;
        }
        for (k, line) in self.lines.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let pts: Vec<(f64, f64)> = line
                .points
                .iter()
                .copied()
                .filter(|&p| self.drawable(p))
                .map(|(x, y)| (self.tx(x), y))
                .collect();
            let legend =
                move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2));
            if line.dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts, 8, 5, color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(&line.label)
                    .legend(legend);
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(&line.label)
                    .legend(legend);
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(plot_err)?;
            }
        }
        chart
            .configure_series_labels()
            .position(self.legend.clone())
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }
}

/// Several figures side by side.
#[derive(Clone, Debug)]
pub struct Panels<F = Chart> {
    pub charts: Vec<F>,
    /// Pixel size of one panel.
    pub panel_size: (u32, u32),
}

impl<F: Figure> Figure for Panels<F> {
    fn size(&self) -> (u32, u32) {
        (self.panel_size.0 * self.charts.len().max(1) as u32, self.panel_size.1)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        for (chart, panel) in self.charts.iter().zip(area.split_evenly((1, self.charts.len().max(1)))) {
            chart.draw(&panel)?;
        }
        Ok(())
    }
}

/// Attention weights as coloured cells (viridis over 0..1), each annotated with its value;
/// masked cells are grey and say "masked".
#[derive(Clone, Debug)]
pub struct WeightsHeatmap {
    pub title: String,
    /// (Nq, Nk) weights.
    pub weights: Array2<f64>,
    /// (Nq, Nk): may query i see key j?
    pub visible: Array2<bool>,
}

impl Figure for WeightsHeatmap {
    fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.weights.dim();
        ((110 + 80 * cols).min(1400) as u32, (120 + 60 * rows).min(1000) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        let (rows, cols) = self.weights.dim();
        if rows == 0 || cols == 0 || self.visible.dim() != (rows, cols) {
            return Err(Error::InvalidArgument("weights heatmap: empty, or mask of another shape".into()));
        }
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 19))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(55)
            // A segmented 0..n axis has n + 1 segments (0 through n): n − 1 gives n cells.
            .build_cartesian_2d((0..cols - 1).into_segmented(), (0..rows - 1).into_segmented())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("key j")
            .y_desc("query i")
            .x_labels(cols)
            .y_labels(rows)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(j) if *j < cols => format!("k{j}"),
                _ => String::new(),
            })
            .y_label_formatter(&|v| match v {
                // Row 0 at the top: segment k from the bottom is row rows − 1 − k.
                SegmentValue::CenterOf(k) if *k < rows => format!("q{}", rows - 1 - k),
                _ => String::new(),
            })
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(plot_err)?;
        // Row i is drawn in segment rows − 1 − i (row 0 at the top), between its two edges.
        let rect = |i: usize, j: usize| {
            [
                (SegmentValue::Exact(j), SegmentValue::Exact(rows - 1 - i)),
                (SegmentValue::Exact(j + 1), SegmentValue::Exact(rows - i)),
            ]
        };
        let center = |i: usize, j: usize| (SegmentValue::CenterOf(j), SegmentValue::CenterOf(rows - 1 - i));
        let centered = Pos::new(HPos::Center, VPos::Center);
        for ((i, j), &w) in self.weights.indexed_iter() {
            let visible = self.visible[[i, j]];
            let fill =
                if visible { ViridisRGB.get_color_normalized(w, 0.0, 1.0) } else { RGBColor(215, 215, 215) };
            let cell = Rectangle::new(rect(i, j), fill.filled());
            let (text, color) = match visible {
                true => (format!("{w:.2}"), if w > 0.6 { BLACK } else { WHITE }),
                false => ("masked".to_string(), RGBColor(120, 120, 120)),
            };
            let label =
                Text::new(text, center(i, j), ("sans-serif", 14).into_font().color(&color).pos(centered));
            chart.draw_series([cell]).map_err(plot_err)?;
            chart.draw_series([label]).map_err(plot_err)?;
        }
        Ok(())
    }
}
