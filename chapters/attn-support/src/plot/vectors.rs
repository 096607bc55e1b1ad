//! Figures of 2-D vectors (chapter 1's query and keys, chapter 6's rotating pair): a chart whose
//! two axes have the same scale, so that angles and lengths look like what they are, and arrows
//! drawn in its data coordinates.

use super::plot_err;
use crate::error::Result;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// The look of an [`equal_aspect_chart`]: pixel sizes of the margin and label areas, axis
/// descriptions and font sizes.
#[derive(Clone, Debug)]
pub struct EqualAxes {
    pub margin: u32,
    pub x_label_area: u32,
    pub y_label_area: u32,
    pub x_desc: String,
    pub y_desc: String,
    pub label_size: u32,
    pub desc_size: u32,
}

/// A chart on `area` spanning `−half_x … half_x` horizontally and, vertically, whatever range
/// keeps one data unit the same number of pixels on both axes; its mesh already drawn.
pub fn equal_aspect_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    half_x: f64,
    axes: &EqualAxes,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let (w, h) = area.dim_in_pixel();
    let plot_w = f64::from(w.saturating_sub(2 * axes.margin + axes.y_label_area).max(1));
    let plot_h = f64::from(h.saturating_sub(2 * axes.margin + axes.x_label_area).max(1));
    let half_y = half_x * plot_h / plot_w;
    let mut chart = ChartBuilder::on(area)
        .margin(axes.margin)
        .x_label_area_size(axes.x_label_area)
        .y_label_area_size(axes.y_label_area)
        .build_cartesian_2d(-half_x..half_x, -half_y..half_y)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(axes.x_desc.as_str())
        .y_desc(axes.y_desc.as_str())
        .label_style(("sans-serif", axes.label_size))
        .axis_desc_style(("sans-serif", axes.desc_size))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

/// A line from `from` to `to` of `width` pixels with a filled triangular head `head` long and
/// `2·half_width` wide, in data coordinates (undistorted on an [`equal_aspect_chart`]).
pub fn arrow<DB: DrawingBackend>(
    from: (f64, f64),
    to: (f64, f64),
    head: f64,
    half_width: f64,
    color: RGBColor,
    width: u32,
) -> Vec<DynElement<'static, DB, (f64, f64)>> {
    let (base, head_points) = head_triangle(from, to, head, half_width);
    vec![
        PathElement::new(vec![from, base], color.stroke_width(width)).into_dyn(),
        Polygon::new(head_points.to_vec(), color.filled()).into_dyn(),
    ]
}

/// Where the shaft of an arrow ends, and its head's corners: the tip, then the two corners
/// `half_width` either side of the shaft, `head` back from the tip.
fn head_triangle(
    from: (f64, f64),
    to: (f64, f64),
    head: f64,
    half_width: f64,
) -> ((f64, f64), [(f64, f64); 3]) {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len = (dx * dx + dy * dy).sqrt().max(1e-9);
    let (ux, uy) = (dx / len, dy / len);
    let base = (to.0 - head * ux, to.1 - head * uy);
    let left = (base.0 - half_width * uy, base.1 + half_width * ux);
    let right = (base.0 + half_width * uy, base.1 - half_width * ux);
    (base, [to, left, right])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unit_is_as_many_pixels_across_as_up() {
        let mut rgb = vec![0u8; 600 * 400 * 3];
        let area = BitMapBackend::with_buffer(&mut rgb, (600, 400)).into_drawing_area();
        let axes = EqualAxes {
            margin: 10,
            x_label_area: 30,
            y_label_area: 40,
            x_desc: "x".into(),
            y_desc: "y".into(),
            label_size: 12,
            desc_size: 12,
        };
        super::super::ensure_font();
        let chart = equal_aspect_chart(&area, 2.0, &axes).unwrap();
        let (x0, y0) = chart.backend_coord(&(0.0, 0.0));
        let (x1, _) = chart.backend_coord(&(1.0, 0.0));
        let (_, y1) = chart.backend_coord(&(0.0, 1.0));
        assert!(((x1 - x0) - (y0 - y1)).abs() <= 1, "{} px across, {} px up", x1 - x0, y0 - y1);
    }

    #[test]
    fn the_head_sits_on_the_tip_across_the_shaft() {
        let (base, [tip, left, right]) = head_triangle((1.0, 1.0), (1.0, 3.0), 0.5, 0.1);
        assert_eq!(tip, (1.0, 3.0));
        assert_eq!(base, (1.0, 2.5));
        assert_eq!((left, right), ((0.9, 2.5), (1.1, 2.5)));
        assert_eq!(arrow::<BitMapBackend>((0.0, 0.0), (2.0, 0.0), 0.5, 0.1, RGBColor(0, 0, 0), 2).len(), 2);
    }
}
