//! Figures that draw onto any plotters backend, so one drawing function makes the PNG and
//! SVG files of a chapter binary and the inline PNG of a notebook.
//!
//! A figure is a value implementing [`Figure`]; [`save`] writes `name.png` and `name.svg`,
//! [`show`] returns an [`InlinePng`] that evcxr displays inline. Text is drawn with the
//! DejaVu Sans font shipped in this crate (no system font libraries needed).

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, SegmentValue, ValueFormatter};
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use std::path::{Path, PathBuf};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Register the shipped font as "sans-serif". Idempotent; called by every drawing helper,
/// because library statics do not survive from one notebook cell to the next.
pub fn ensure_font() {
    // The bytes are a valid TrueType file shipped with the crate; registering twice is harmless.
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
}

/// Turn any plotters error into ours.
pub fn plot_err(e: impl std::fmt::Debug) -> Error {
    Error::Plot(format!("{e:?}"))
}

/// Something that can draw itself onto a plotters drawing area of any backend.
pub trait Figure {
    /// Draw onto `area` (already sized; fill the background yourself or rely on `save`/`show`).
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>;
    /// Pixel size of the figure.
    fn size(&self) -> (u32, u32) {
        (800, 500)
    }
}

/// Write `dir/name.png` and `dir/name.svg`; returns both paths.
pub fn save<F: Figure>(fig: &F, dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    ensure_font();
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    let png = dir.join(format!("{name}.png"));
    let svg = dir.join(format!("{name}.svg"));
    {
        let area = BitMapBackend::new(&png, fig.size()).into_drawing_area();
        area.fill(&WHITE).map_err(plot_err)?;
        fig.draw(&area)?;
        area.present().map_err(plot_err)?;
    }
    {
        let area = SVGBackend::new(&svg, fig.size()).into_drawing_area();
        area.fill(&WHITE).map_err(plot_err)?;
        fig.draw(&area)?;
        area.present().map_err(plot_err)?;
    }
    Ok(vec![png, svg])
}

/// A PNG image that evcxr shows inline (it calls `evcxr_display` on a cell's final value).
#[derive(Clone, Debug)]
pub struct InlinePng(pub Vec<u8>);

impl InlinePng {
    pub fn evcxr_display(&self) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.0);
        println!("EVCXR_BEGIN_CONTENT image/png\n{b64}\nEVCXR_END_CONTENT");
    }
}

/// Render a figure to PNG bytes in memory.
pub fn png_bytes<F: Figure>(fig: &F) -> Result<Vec<u8>> {
    ensure_font();
    let (w, h) = fig.size();
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        area.fill(&WHITE).map_err(plot_err)?;
        fig.draw(&area)?;
        area.present().map_err(plot_err)?;
    }
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&rgb, w, h, image::ColorType::Rgb8)
        .map_err(plot_err)?;
    Ok(out)
}

/// Render a figure for inline display in a notebook.
pub fn show<F: Figure>(fig: &F) -> Result<InlinePng> {
    png_bytes(fig).map(InlinePng)
}

use image::ImageEncoder;

/// The colours of successive series.
pub const SERIES_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

/// A matrix drawn as coloured cells (viridis), row 0 at the top, with a colour bar.
#[derive(Clone, Debug)]
pub struct Heatmap {
    pub title: String,
    pub data: ndarray::Array2<f64>,
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
    pub x_desc: String,
    pub y_desc: String,
    /// Print each cell's value in it (for small matrices).
    pub annotate: bool,
}

impl Figure for Heatmap {
    fn size(&self) -> (u32, u32) {
        (760, 640)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        let (rows, cols) = self.data.dim();
        if rows == 0 || cols == 0 {
            return Err(Error::InvalidArgument("a heatmap needs a non-empty matrix".into()));
        }
        let finite = self.data.iter().copied().filter(|v| v.is_finite());
        let lo = finite.clone().fold(f64::INFINITY, f64::min);
        let hi = finite.fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo < hi { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
        let (main, bar) = area.split_horizontally(area.dim_in_pixel().0 as i32 - 100);
        let label = |labels: &Vec<String>, i: usize, n: usize| {
            labels.get(i).cloned().unwrap_or_else(|| if n <= 32 { i.to_string() } else { String::new() })
        };
        let mut chart = ChartBuilder::on(&main)
            .caption(&self.title, ("sans-serif", 22))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d((0..cols - 1).into_segmented(), (0..rows - 1).into_segmented())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .x_labels(cols.min(32))
            .y_labels(rows.min(32))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(j) => label(&self.col_labels, *j, cols),
                _ => String::new(),
            })
            .y_label_formatter(&|v| match v {
                // Segments 0..=n-1 (a segmented range over 0..n-1 has n cells). Row 0 is drawn at
                // the top: segment k from the bottom holds row rows-1-k.
                SegmentValue::CenterOf(k) if *k < rows => label(&self.row_labels, rows - 1 - k, rows),
                _ => String::new(),
            })
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(plot_err)?;
        let cell = |i: usize, j: usize| {
            let y = rows - 1 - i;
            [
                (SegmentValue::Exact(j), SegmentValue::Exact(y)),
                (SegmentValue::Exact(j + 1), SegmentValue::Exact(y + 1)),
            ]
        };
        chart
            .draw_series(self.data.indexed_iter().map(|((i, j), &v)| {
                let c = if v.is_finite() {
                    ViridisRGB.get_color_normalized(v, lo, hi)
                } else {
                    RGBColor(200, 200, 200)
                };
                Rectangle::new(cell(i, j), c.filled())
            }))
            .map_err(plot_err)?;
        if self.annotate {
            chart
                .draw_series(self.data.indexed_iter().map(|((i, j), &v)| {
                    let t = (v - lo) / (hi - lo);
                    let color = if t > 0.6 { BLACK } else { WHITE };
                    let pos = (SegmentValue::CenterOf(j), SegmentValue::CenterOf(rows - 1 - i));
                    Text::new(
                        format!("{v:.2}"),
                        pos,
                        ("sans-serif", 14).into_font().color(&color).pos(
                            plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Center,
                                plotters::style::text_anchor::VPos::Center,
                            ),
                        ),
                    )
                }))
                .map_err(plot_err)?;
        }
        draw_color_bar(&bar, lo, hi)
    }
}

fn draw_color_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, lo: f64, hi: f64) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(70)
        .margin_left(10)
        .right_y_label_area_size(65)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&|v| format_number(*v))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    let steps = 100;
    chart
        .draw_series((0..steps).map(|k| {
            let a = lo + (hi - lo) * k as f64 / steps as f64;
            let b = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
            Rectangle::new([(0.0, a), (1.0, b)], ViridisRGB.get_color_normalized(a, lo, hi).filled())
        }))
        .map_err(plot_err)?;
    Ok(())
}

/// Short tick labels: 0.25, 1.5e-3, 4096, 1.2e6.
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-2..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || (v.fract() == 0.0) {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One named line of a [`LineChart`].
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { label: label.into(), points }
    }
}

/// Lines with markers and a legend; either axis may be logarithmic.
#[derive(Clone, Debug, Default)]
pub struct LineChart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

impl LineChart {
    fn bounds(&self) -> Result<((f64, f64), (f64, f64))> {
        let pts = || self.series.iter().flat_map(|s| s.points.iter().copied());
        let ok = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
        let xs: Vec<f64> = pts().map(|p| p.0).filter(|&x| ok(x, self.log_x)).collect();
        let ys: Vec<f64> = pts().map(|p| p.1).filter(|&y| ok(y, self.log_y)).collect();
        if xs.is_empty() || ys.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "line chart '{}' has no drawable points",
                self.title
            )));
        }
        let range = |v: &[f64], log: bool| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            match (log, lo < hi) {
                (true, true) => (lo / 1.3, hi * 1.3),
                (true, false) => (lo / 2.0, hi * 2.0),
                (false, true) => (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)),
                (false, false) => (lo - 1.0, hi + 1.0),
            }
        };
        Ok((range(&xs, self.log_x), range(&ys, self.log_y)))
    }
}

impl Figure for LineChart {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        let ((x0, x1), (y0, y1)) = self.bounds()?;
        match (self.log_x, self.log_y) {
            (false, false) => self.draw_on(area, x0..x1, y0..y1),
            (true, false) => self.draw_on(area, (x0..x1).log_scale(), y0..y1),
            (false, true) => self.draw_on(area, x0..x1, (y0..y1).log_scale()),
            (true, true) => self.draw_on(area, (x0..x1).log_scale(), (y0..y1).log_scale()),
        }
    }
}

impl LineChart {
    fn draw_on<DB, X, Y>(&self, area: &DrawingArea<DB, Shift>, x: X, y: Y) -> Result<()>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x, y)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            // Few labels: over a short log range plotters otherwise labels 2, 3, ... 9 × 10ᵏ
            // and the labels run into each other.
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&|v| format_number(*v))
            .y_label_formatter(&|v| format_number(*v))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(plot_err)?;
        for (k, s) in self.series.iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|&(a, b)| {
                    a.is_finite() && b.is_finite() && (!self.log_x || a > 0.0) && (!self.log_y || b > 0.0)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(&s.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_png_and_svg() {
        let dir = std::env::temp_dir().join(format!("attn-support-plot-{}", std::process::id()));
        let hm = Heatmap {
            title: "t".into(),
            data: ndarray::array![[0.1, 0.9], [0.5, 0.5]],
            row_labels: vec!["a".into(), "b".into()],
            col_labels: vec!["x".into(), "y".into()],
            x_desc: "key".into(),
            y_desc: "query".into(),
            annotate: true,
        };
        let files = save(&hm, &dir, "hm").unwrap();
        assert!(files.iter().all(|f| std::fs::metadata(f).unwrap().len() > 100));
        let lc = LineChart {
            title: "lines".into(),
            log_x: true,
            log_y: true,
            series: vec![Series::new("n²", vec![(1.0, 1.0), (10.0, 100.0)])],
            ..Default::default()
        };
        let png = png_bytes(&lc).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn empty_chart_is_an_error() {
        assert!(png_bytes(&LineChart::default()).is_err());
    }
}
