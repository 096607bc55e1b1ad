//! A legend drawn once below a multi-panel figure, instead of one inside every panel where it
//! would cover the data.

use attn_support::Result;
use attn_support::plot::plot_err;
use attn_support::plotters::coord::Shift;
use attn_support::plotters::prelude::*;
use attn_support::plotters::style::text_anchor::{HPos, Pos, VPos};

/// How an entry's sample is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swatch {
    /// A filled box (a bar).
    Bar,
    /// A solid line with a dot (a measured line of a `Chart`).
    Line,
    /// A dashed line.
    Dashed,
}

/// One legend entry.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendEntry {
    pub label: String,
    pub color: RGBColor,
    pub swatch: Swatch,
}

/// Pixel height of one legend row.
pub const ROW_HEIGHT: i32 = 28;

/// Draw `rows` of entries, each row centred horizontally in `area`, from its top.
pub fn draw_legend_rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[Vec<LegendEntry>],
) -> Result<()> {
    let font = ("sans-serif", 15).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    let width = area.dim_in_pixel().0 as i32;
    let (sample, gap) = (36, 28);
    for (row, entries) in rows.iter().enumerate() {
        let text_width = |e: &LegendEntry| {
            area.estimate_text_size(&e.label, &font).map_or(8 * e.label.len() as i32, |s| s.0 as i32)
        };
        let total: i32 = entries.iter().map(|e| sample + text_width(e) + gap).sum::<i32>() - gap;
        let (mut x, y) = ((width - total).max(0) / 2, ROW_HEIGHT / 2 + 4 + ROW_HEIGHT * row as i32);
        for e in entries {
            let style = e.color.stroke_width(2);
            match e.swatch {
                Swatch::Bar => area
                    .draw(&Rectangle::new([(x, y - 7), (x + 26, y + 7)], e.color.filled()))
                    .map_err(plot_err)?,
                Swatch::Line => {
                    area.draw(&PathElement::new(vec![(x, y), (x + 26, y)], style)).map_err(plot_err)?;
                    area.draw(&Circle::new((x + 13, y), 3, e.color.filled())).map_err(plot_err)?;
                }
                Swatch::Dashed => {
                    area.draw(&PathElement::new(vec![(x, y), (x + 10, y)], style)).map_err(plot_err)?;
                    area.draw(&PathElement::new(vec![(x + 16, y), (x + 26, y)], style)).map_err(plot_err)?;
                }
            }
            area.draw(&Text::new(e.label.clone(), (x + sample, y), font.clone())).map_err(plot_err)?;
            x += sample + text_width(e) + gap;
        }
    }
    Ok(())
}
