//! Figures that draw onto any plotters backend, so one drawing function makes the PNG and
//! SVG files of a chapter binary and the inline PNG of a notebook.
//!
//! A figure is a value implementing [`Figure`]; [`save`] writes `name.png` and `name.svg`,
//! [`show`] returns an [`InlinePng`] that evcxr displays inline. Text is drawn with the
//! DejaVu Sans font shipped in this crate (no system font libraries needed).
//!
//! Ready figures:
//! - [`Chart`] of [`Line`]s: solid measured lines or dashed guides, linear / log₁₀ / log₂
//!   ([`Scale`]) axes, labelled vertical markers, legend in a chosen corner;
//! - [`Heatmap`]: a matrix as coloured cells, masked (non-finite) cells grey;
//! - [`Panels`]: several figures of one type side by side;
//! - [`equal_aspect_chart`] and [`arrow`]: 2-D vectors drawn with the same scale on both axes.
//!
//! A chapter with a figure of its own implements [`Figure`], calling [`ensure_font`] first.

mod chart;
mod heatmap;
mod panels;
mod vectors;

pub use chart::{Chart, Line, Scale, draw_legend};
pub use heatmap::{GridPoint, Heatmap, grid_cell, grid_center, grid_row_at};
pub use panels::Panels;
/// Where a [`Chart`] puts its legend.
pub use plotters::prelude::SeriesLabelPosition;
pub use vectors::{EqualAxes, arrow, equal_aspect_chart};

use crate::error::{Error, Result};
use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

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

/// The colours of successive series.
pub const SERIES_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

/// Short tick labels: 0.25, 0.1, 1.5e-3, 1e-10, 4096, 1.2e6 (no trailing zeros).
pub fn format_number(v: f64) -> String {
    let trim = |digits: &str| digits.trim_end_matches('0').trim_end_matches('.').to_string();
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-2..1e5).contains(&a) {
        let text = format!("{v:.1e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        format!("{}e{exponent}", trim(mantissa))
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        trim(&format!("{v:.2}"))
    }
}

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn tick_labels_are_short() {
        let cases = [
            (0.0, "0"),
            (0.1, "0.1"),
            (0.25, "0.25"),
            (3.5, "3.5"),
            (4096.0, "4096"),
            (1e-3, "1e-3"),
            (1.5e-3, "1.5e-3"),
            (-2e-10, "-2e-10"),
            (1.2e6, "1.2e6"),
        ];
        for (v, text) in cases {
            assert_eq!(format_number(v), text, "{v}");
        }
    }
}
