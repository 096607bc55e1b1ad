//! [`Heatmap`]: a matrix as coloured cells, row 0 at the top; NaN / ±∞ cells (masked) are grey.

use super::{Figure, ensure_font, format_number, plot_err};
use crate::error::{Error, Result};
use ndarray::Array2;
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Fill of a cell whose value is not finite.
const MASKED_FILL: RGBColor = RGBColor(215, 215, 215);
/// Text in a masked cell.
const MASKED_TEXT: RGBColor = RGBColor(120, 120, 120);

/// A cell of a grid figure on segmented axes (one segment per column and per row), with row 0
/// drawn at the top: segment k from the bottom holds row `rows − 1 − k`.
pub type GridPoint = (SegmentValue<usize>, SegmentValue<usize>);

/// The two corners of cell (row `i`, column `j`) of a `rows`-row grid ([`GridPoint`]).
pub fn grid_cell(i: usize, j: usize, rows: usize) -> [GridPoint; 2] {
    let y = grid_row_at(i, rows);
    [
        (SegmentValue::Exact(j), SegmentValue::Exact(y)),
        (SegmentValue::Exact(j + 1), SegmentValue::Exact(y + 1)),
    ]
}

/// The centre of cell (row `i`, column `j`) of a `rows`-row grid, where its text goes.
pub fn grid_center(i: usize, j: usize, rows: usize) -> GridPoint {
    (SegmentValue::CenterOf(j), SegmentValue::CenterOf(grid_row_at(i, rows)))
}

/// The row whose label goes at segment centre `k` from the bottom of a `rows`-row grid.
pub fn grid_row_at(k: usize, rows: usize) -> usize {
    rows - 1 - k
}

/// A matrix drawn as coloured cells (viridis), row 0 at the top, optionally with each value
/// printed in its cell and a colour bar.
///
/// Cells holding NaN or ±∞ stand for "no value" (a masked attention weight): they are grey,
/// play no part in the colour scale, and show [`Heatmap::masked_text`] instead of a number.
///
/// Build it with [`Heatmap::new`] and struct update syntax:
/// `Heatmap { annotate: true, ..Heatmap::new("title", data) }`.
#[derive(Clone, Debug)]
pub struct Heatmap {
    pub title: String,
    pub data: Array2<f64>,
    /// Labels of rows and columns; missing ones are the index (for up to 32 rows/columns).
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
    pub x_desc: String,
    pub y_desc: String,
    /// Print each cell's value in it (for small matrices).
    pub annotate: bool,
    /// Printed in non-finite cells when annotating ("" leaves them blank).
    pub masked_text: String,
    /// The values at the two ends of the colour scale; `None` uses the finite min and max.
    pub value_range: Option<(f64, f64)>,
    pub color_bar: bool,
    /// Pixel size when drawn alone (a [`super::Panels`] sets its own).
    pub size: (u32, u32),
}

impl Heatmap {
    pub fn new(title: impl Into<String>, data: Array2<f64>) -> Heatmap {
        Heatmap {
            title: title.into(),
            data,
            row_labels: Vec::new(),
            col_labels: Vec::new(),
            x_desc: String::new(),
            y_desc: String::new(),
            annotate: false,
            masked_text: String::new(),
            value_range: None,
            color_bar: true,
            size: (760, 640),
        }
    }

    /// The two ends of the colour scale.
    fn color_range(&self) -> Result<(f64, f64)> {
        if let Some((lo, hi)) = self.value_range {
            return match lo.is_finite() && hi.is_finite() && lo < hi {
                true => Ok((lo, hi)),
                false => Err(Error::InvalidArgument(format!(
                    "heatmap '{}': value range {lo}..{hi} is empty or not finite",
                    self.title
                ))),
            };
        }
        let finite = self.data.iter().copied().filter(|v| v.is_finite());
        let lo = finite.clone().fold(f64::INFINITY, f64::min);
        let hi = finite.fold(f64::NEG_INFINITY, f64::max);
        // All equal, or nothing finite at all: any range draws them.
        Ok(if lo < hi {
            (lo, hi)
        } else if lo.is_finite() {
            (lo - 0.5, lo + 0.5)
        } else {
            (0.0, 1.0)
        })
    }

    fn label(labels: &[String], i: usize, n: usize) -> String {
        labels.get(i).cloned().unwrap_or_else(|| if n <= 32 { i.to_string() } else { String::new() })
    }
}

impl Figure for Heatmap {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        let (rows, cols) = self.data.dim();
        if rows == 0 || cols == 0 {
            return Err(Error::InvalidArgument(format!("heatmap '{}' has an empty matrix", self.title)));
        }
        let (lo, hi) = self.color_range()?;
        let main = if self.color_bar {
            let (main, bar) = area.split_horizontally(area.dim_in_pixel().0 as i32 - 100);
            draw_color_bar(&bar, lo, hi)?;
            main
        } else {
            area.clone()
        };
        // Room for the longest row label (about 8 px a character at 15 px) and the axis name.
        let longest = (0..rows).map(|i| Heatmap::label(&self.row_labels, i, rows).chars().count()).max();
        let y_label_area = (20 + 8 * longest.unwrap_or(0) as u32).clamp(30, 160);
        let mut chart = ChartBuilder::on(&main)
            .caption(&self.title, ("sans-serif", 21))
            .margin(10)
            .x_label_area_size(if self.x_desc.is_empty() { 30 } else { 50 })
            .y_label_area_size(y_label_area + if self.y_desc.is_empty() { 0 } else { 25 })
            // A segmented 0..n−1 axis has n segments, one per cell.
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
                SegmentValue::CenterOf(j) if *j < cols => Heatmap::label(&self.col_labels, *j, cols),
                _ => String::new(),
            })
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(k) if *k < rows => {
                    Heatmap::label(&self.row_labels, grid_row_at(*k, rows), rows)
                }
                _ => String::new(),
            })
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(self.data.indexed_iter().map(|((i, j), &v)| {
                let fill =
                    if v.is_finite() { ViridisRGB.get_color_normalized(v, lo, hi) } else { MASKED_FILL };
                Rectangle::new(grid_cell(i, j, rows), fill.filled())
            }))
            .map_err(plot_err)?;
        if self.annotate {
            let centered = Pos::new(HPos::Center, VPos::Center);
            chart
                .draw_series(self.data.indexed_iter().map(|((i, j), &v)| {
                    let (text, color) = if v.is_finite() {
                        // Dark text on the light (yellow-green) end of viridis, white elsewhere.
                        let light = (v - lo) / (hi - lo) > 0.6;
                        (format!("{v:.2}"), if light { BLACK } else { WHITE })
                    } else {
                        (self.masked_text.clone(), MASKED_TEXT)
                    };
                    Text::new(
                        text,
                        grid_center(i, j, rows),
                        ("sans-serif", 14).into_font().color(&color).pos(centered),
                    )
                }))
                .map_err(plot_err)?;
        }
        Ok(())
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
        // plotters (0.3, ab_glyph text) starts right-axis labels about one digit left of their
        // label area, which clips it: "0.8" showed as ".8". Two spaces move the digits back in.
        .y_label_formatter(&|v| format!("  {}", format_number(*v)))
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

#[cfg(test)]
mod tests {
    use super::super::{png_bytes, save};
    use super::*;

    #[test]
    fn renders_png_and_svg() {
        let dir = std::env::temp_dir().join(format!("attn-support-heatmap-{}", std::process::id()));
        let hm = Heatmap {
            row_labels: vec!["a".into(), "b".into()],
            col_labels: vec!["x".into(), "y".into()],
            x_desc: "key".into(),
            y_desc: "query".into(),
            annotate: true,
            ..Heatmap::new("t", ndarray::array![[0.1, 0.9], [0.5, 0.5]])
        };
        let files = save(&hm, &dir, "hm").unwrap();
        assert!(files.iter().all(|f| std::fs::metadata(f).unwrap().len() > 100));
        std::fs::remove_dir_all(dir).ok();
    }

    /// The SVG's text elements hold exactly the strings drawn.
    fn svg_of(hm: &Heatmap) -> String {
        let mut svg = String::new();
        {
            let area = SVGBackend::with_string(&mut svg, hm.size()).into_drawing_area();
            hm.draw(&area).unwrap();
            area.present().unwrap();
        }
        svg
    }

    #[test]
    fn masked_cells_are_grey_and_never_say_nan() {
        let data = ndarray::array![[0.25, f64::NAN], [f64::NEG_INFINITY, 0.75]];
        let blank = Heatmap { annotate: true, ..Heatmap::new("t", data.clone()) };
        let svg = svg_of(&blank);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "non-finite values printed");
        assert!(svg.contains("0.25") && svg.contains("0.75"));
        assert!(svg.contains("#D7D7D7"), "no grey masked cell");
        // The colour scale spans the finite values only.
        assert_eq!(blank.color_range().unwrap(), (0.25, 0.75));
        let labelled = Heatmap { masked_text: "masked".into(), ..blank };
        assert_eq!(svg_of(&labelled).matches(">\nmasked\n</text>").count(), 2);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(png_bytes(&Heatmap::new("empty", Array2::zeros((0, 3)))).is_err());
        let reversed = Heatmap { value_range: Some((1.0, 0.0)), ..Heatmap::new("r", Array2::zeros((2, 2))) };
        assert!(png_bytes(&reversed).is_err());
        // Nothing finite at all still draws (every cell grey).
        assert!(png_bytes(&Heatmap::new("all masked", Array2::from_elem((2, 2), f64::NAN))).is_ok());
    }
}
