//! [`Chart`]: lines (measured, with markers, or dashed guides) on linear, log₁₀ or log₂ axes,
//! with labelled vertical markers and a legend in a chosen corner.

use super::{Figure, SERIES_COLORS, ensure_font, format_number, plot_err};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// How an axis maps values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scale {
    #[default]
    Linear,
    /// Logarithmic with a label at each power of ten.
    Log10,
    /// Logarithmic with a label at each power of two (1, 2, 4, …, for sizes that double).
    Log2,
}

impl Scale {
    fn is_log(self) -> bool {
        self != Scale::Linear
    }

    /// Can `v` sit on this axis? A log axis has no place for 0 or negative values.
    fn accepts(self, v: f64) -> bool {
        v.is_finite() && (!self.is_log() || v > 0.0)
    }

    /// The coordinate plotters sees: log₂(v) on a base-2 axis (drawn as a linear axis whose
    /// integer ticks are labelled 2ᵏ); the value itself otherwise (plotters does log₁₀).
    fn plotted(self, v: f64) -> f64 {
        if self == Scale::Log2 { v.log2() } else { v }
    }

    /// The axis range in plotted coordinates around values `lo..=hi` (already checked by
    /// `accepts`), with some margin so end points are not on the frame.
    fn padded(self, lo: f64, hi: f64) -> (f64, f64) {
        match (self, lo < hi) {
            // A third of a doubling on each side.
            (Scale::Log2, _) => (lo.log2() - 0.3, hi.log2() + 0.3),
            (Scale::Log10, true) => (lo / 1.4, hi * 1.4),
            (Scale::Log10, false) => (lo / 2.0, hi * 2.0),
            (Scale::Linear, true) => (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)),
            (Scale::Linear, false) => (lo - 1.0, hi + 1.0),
        }
    }

    /// How many labels to ask plotters for on a range `lo..hi` in plotted coordinates (public
    /// for figures that draw their own log axes, e.g. a roofline).
    pub fn label_count(self, lo: f64, hi: f64) -> usize {
        match self {
            // One per power of two; past 12 plotters steps by 2 or 5 powers, still integers.
            Scale::Log2 => ((hi.floor() - lo.ceil()) as usize + 1).clamp(2, 12),
            // Plotters labels every decade when it may; given many more labels than decades
            // it adds 2×, 3×, … 9× labels that run into each other. One more than the decades
            // (at least 4) keeps to whole decades. Under two decades that leaves one or two
            // labels, so ask for all of 1…9 × 10ᵏ and let `label` keep 1, 2 and 5 × 10ᵏ.
            Scale::Log10 if hi / lo < 100.0 => 40,
            Scale::Log10 => ((hi / lo).log10().floor() as usize + 1).clamp(4, 12),
            Scale::Linear => 11,
        }
    }

    /// Light grid lines between two labelled ones: plotters' default (10), except on a log₁₀
    /// axis of under two decades, whose 1…9 × 10ᵏ key points (see `label_count`) are already a
    /// fine grid, and ten more lines between each pair would draw a grey band.
    pub fn light_lines(self, lo: f64, hi: f64) -> usize {
        match self {
            Scale::Log10 if hi / lo < 100.0 => 0,
            _ => 10,
        }
    }

    /// Tick label of plotted coordinate `v` (on a log₁₀ axis only 1, 2 and 5 × 10ᵏ).
    pub fn label(self, v: f64) -> String {
        match self {
            Scale::Log2 if (v - v.round()).abs() < 1e-6 => format_number(v.round().exp2()),
            Scale::Log2 => String::new(),
            Scale::Log10 if v > 0.0 => {
                let mantissa = v / 10f64.powf(v.log10().floor());
                let shown = [1.0, 2.0, 5.0, 10.0].iter().any(|m| (mantissa - m).abs() < 1e-6 * m);
                if shown { format_number(v) } else { String::new() }
            }
            _ => format_number(v),
        }
    }
}

/// One line of a [`Chart`].
#[derive(Clone, Debug)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Dashed and without markers: a guide (∝ N², a limit), not a measurement.
    pub dashed: bool,
}

impl Line {
    /// A measured line: solid, a dot at each point.
    pub fn solid(label: impl Into<String>, points: Vec<(f64, f64)>) -> Line {
        Line { label: label.into(), points, dashed: false }
    }

    /// A guide line: dashed, no dots.
    pub fn dashed(label: impl Into<String>, points: Vec<(f64, f64)>) -> Line {
        Line { label: label.into(), points, dashed: true }
    }
}

/// A line chart. Points that cannot be drawn (NaN, ±∞, or ≤ 0 on a log axis) are left out;
/// a chart with no drawable point at all is an error.
///
/// Build it with [`Chart::new`] and struct update syntax:
/// `Chart { x_scale: Scale::Log2, lines, ..Chart::new("title", "N", "time (ms)") }`.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub x_scale: Scale,
    pub y_scale: Scale,
    /// Coloured in order with [`SERIES_COLORS`].
    pub lines: Vec<Line>,
    /// Vertical dashed grey lines at these x values, each with a label at its top.
    pub markers: Vec<(f64, String)>,
    pub legend: SeriesLabelPosition,
    /// Fixed axis ranges in data units; `None` fits the data.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    /// Pixel size when drawn alone (a [`super::Panels`] sets its own).
    pub size: (u32, u32),
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
            x_range: None,
            y_range: None,
            size: (800, 500),
        }
    }

    fn drawable(&self, (x, y): (f64, f64)) -> bool {
        self.x_scale.accepts(x) && self.y_scale.accepts(y)
    }

    fn plotted(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (self.x_scale.plotted(x), self.y_scale.plotted(y))
    }

    /// One axis's range in plotted coordinates: the fixed one, or the data's with a margin.
    fn axis_range(
        &self,
        axis: &str,
        scale: Scale,
        fixed: Option<(f64, f64)>,
        values: impl Iterator<Item = f64>,
    ) -> Result<(f64, f64)> {
        if let Some((lo, hi)) = fixed {
            if !(scale.accepts(lo) && scale.accepts(hi) && lo < hi) {
                return Err(Error::InvalidArgument(format!(
                    "chart '{}': {axis} range {lo}..{hi} is empty, not finite, or not positive on a log axis",
                    self.title
                )));
            }
            return Ok((scale.plotted(lo), scale.plotted(hi)));
        }
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo > hi {
            return Err(Error::InvalidArgument(format!(
                "chart '{}' has no drawable points (NaN, ±∞ and values ≤ 0 on a log axis are left out)",
                self.title
            )));
        }
        Ok(scale.padded(lo, hi))
    }
}

impl Figure for Chart {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        let pts = || self.lines.iter().flat_map(|l| l.points.iter().copied()).filter(|&p| self.drawable(p));
        let (x0, x1) = self.axis_range("x", self.x_scale, self.x_range, pts().map(|p| p.0))?;
        let (y0, y1) = self.axis_range("y", self.y_scale, self.y_range, pts().map(|p| p.1))?;
        // Log₂ axes are linear in log₂(value); only log₁₀ uses plotters' log coordinates.
        match (self.x_scale == Scale::Log10, self.y_scale == Scale::Log10) {
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
        let (x_scale, y_scale) = (self.x_scale, self.y_scale);
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .x_labels(x_scale.label_count(xr.start, xr.end))
            .y_labels(y_scale.label_count(yr.start, yr.end))
            .x_label_formatter(&|v| x_scale.label(*v))
            .y_label_formatter(&|v| y_scale.label(*v))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .light_line_style(RGBColor(238, 238, 238))
            .x_max_light_lines(x_scale.light_lines(xr.start, xr.end))
            .y_max_light_lines(y_scale.light_lines(yr.start, yr.end))
            .draw()
            .map_err(plot_err)?;
        let grey = RGBColor(90, 90, 90);
        for (x, label) in self.markers.iter().filter(|(x, _)| x_scale.accepts(*x)) {
            let x = x_scale.plotted(*x);
            chart
                .draw_series(DashedLineSeries::new([(x, yr.start), (x, yr.end)], 6, 4, grey.stroke_width(1)))
                .map_err(plot_err)?;
            // Just right of the line, a little below the top edge (in pixels of `area`).
            let style = ("sans-serif", 14).into_font().color(&grey).pos(Pos::new(HPos::Left, VPos::Top));
            let (at, base) = (chart.backend_coord(&(x, yr.end)), area.get_base_pixel());
            let pixel = (at.0 - base.0 + 5, at.1 - base.1 + 5);
            area.draw(&Text::new(label.clone(), pixel, style)).map_err(plot_err)?;
        }
        for (k, line) in self.lines.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let pts: Vec<(f64, f64)> =
                line.points.iter().copied().filter(|&p| self.drawable(p)).map(|p| self.plotted(p)).collect();
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
        if self.lines.iter().any(|l| !l.label.is_empty()) {
            draw_legend(&mut chart, self.legend.clone())?;
        }
        Ok(())
    }
}

/// The book's legend box: every labelled series of `chart` at `position`, on translucent white.
pub fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::super::png_bytes;
    use super::*;

    fn log_log() -> Chart {
        Chart { x_scale: Scale::Log2, y_scale: Scale::Log10, ..Chart::new("t", "N", "ms") }
    }

    #[test]
    fn renders_every_scale_with_guides_and_markers() {
        for (x_scale, y_scale) in
            [(Scale::Linear, Scale::Linear), (Scale::Log2, Scale::Log10), (Scale::Log10, Scale::Log2)]
        {
            let chart = Chart {
                x_scale,
                y_scale,
                lines: vec![
                    Line::solid("measured", vec![(1.0, 1.0), (4.0, 20.0), (16.0, 300.0)]),
                    Line::dashed("∝ N²", vec![(1.0, 1.0), (16.0, 256.0)]),
                ],
                markers: vec![(8.0, "limit".into())],
                ..Chart::new("lines", "N", "ms")
            };
            let png = png_bytes(&chart).unwrap();
            assert_eq!(&png[1..4], b"PNG", "{x_scale:?} × {y_scale:?}");
        }
    }

    #[test]
    fn empty_chart_is_an_error() {
        assert!(png_bytes(&Chart::new("empty", "x", "y")).is_err());
        let no_points = Chart { lines: vec![Line::solid("none", Vec::new())], ..Chart::new("e", "x", "y") };
        assert!(png_bytes(&no_points).is_err());
    }

    #[test]
    fn log_axes_leave_out_non_positive_values() {
        // 0 and −1 cannot sit on a log axis: they are skipped, the rest is drawn.
        let chart = Chart {
            lines: vec![Line::solid("a", vec![(0.0, 1.0), (-1.0, 5.0), (2.0, 0.0), (4.0, 8.0), (8.0, 16.0)])],
            ..log_log()
        };
        assert!(png_bytes(&chart).is_ok());
        // The axis range comes from the positive points only: log₂ 4 − 0.3 .. log₂ 8 + 0.3.
        let pts = chart.lines[0].points.iter().copied().filter(|&p| chart.drawable(p));
        let (lo, hi) = chart.axis_range("x", Scale::Log2, None, pts.map(|p| p.0)).unwrap();
        assert!((lo - 1.7).abs() < 1e-12 && (hi - 3.3).abs() < 1e-12, "{lo}..{hi}");
        // Only non-positive values: nothing to draw.
        let none = Chart { lines: vec![Line::solid("a", vec![(0.0, 1.0), (-2.0, 3.0)])], ..log_log() };
        assert!(png_bytes(&none).is_err());
        // A fixed range that reaches 0 on a log axis is refused, not drawn as garbage.
        let bad_range = Chart { y_range: Some((0.0, 10.0)), ..chart };
        let err = png_bytes(&bad_range).unwrap_err().to_string();
        assert!(err.contains("y range"), "{err}");
    }

    #[test]
    fn base_two_labels_are_powers_of_two() {
        assert_eq!(Scale::Log2.label(10.0), "1024");
        assert_eq!(Scale::Log2.label(0.0), "1");
        assert_eq!(Scale::Log2.label(2.5), "");
        assert_eq!(Scale::Log2.label_count(5.7, 11.3), 6);
        assert_eq!(Scale::Log10.label_count(1e-11, 30.0), 12);
        assert_eq!(Scale::Log10.label_count(2.0, 50.0), 40);
        assert_eq!(Scale::Log10.label_count(2.0, 500.0), 4);
        let labels: Vec<String> =
            [1.0, 2.0, 3.0, 5.0, 7.0, 20.0, 30.0].map(|v| Scale::Log10.label(v)).to_vec();
        assert_eq!(labels, ["1", "2", "", "5", "", "20", ""]);
    }
}
