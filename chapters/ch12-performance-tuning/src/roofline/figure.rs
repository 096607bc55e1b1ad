//! [`RooflineFigure`]: the roofs and every kernel as a labelled point, on log-log axes.
//!
//! Drawn with plotters directly rather than with [`attn_support::plot::Chart`]: a chart draws
//! lines through its points, while here each kernel is a lone point with its own label and the
//! roofs are lines of a different kind, each labelled on the chart.
//!
//! With DRAM bytes measured by Nsight Compute ([`RooflineFigure::measured`]) the labelled points
//! sit at the measured intensity, and each kernel's modelled point stays as a small hollow
//! circle at the same height (same FLOPs, same time), joined to it by a thin line: the gap is
//! the traffic the model counts and HBM never served, mostly re-reads hit in the L2. Keeping
//! them shows why the modelled chart put chapter 2's kernel above the memory roof; unlabelled,
//! they do not crowd the chart.

use super::measured::{MeasuredBytes, with_measured_bytes};
use super::{KernelPoint, Roof, ridge_point};
use crate::ceilings::Ceilings;
use attn_support::plot::{Figure, SERIES_COLORS, Scale, draw_legend, ensure_font, plot_err};
use attn_support::plotters::coord::Shift;
use attn_support::plotters::prelude::*;
use attn_support::plotters::style::text_anchor::{HPos, Pos, VPos};
use attn_support::{Error, Result};

/// The roofline chart: x = arithmetic intensity (FLOP/byte), y = TFLOP/s, both log₁₀.
#[derive(Clone, Debug)]
pub struct RooflineFigure {
    pub title: String,
    /// The memory roof's slope, bytes/s.
    pub bandwidth_bytes_per_s: f64,
    /// Its label, e.g. "copy 3.0 TB/s".
    pub bandwidth_label: String,
    /// The flat roofs.
    pub roofs: Vec<Roof>,
    /// The kernels; points of one `group` share a colour and a legend entry.
    pub points: Vec<KernelPoint>,
    /// The same kernels placed by modelled bytes, drawn hollow beside the measured `points`
    /// of the same label; empty when `points` are the modelled ones.
    pub modelled: Vec<KernelPoint>,
    /// The x axis's description: it says which bytes the intensity counts.
    pub x_label: String,
    pub size: (u32, u32),
}

/// The x label of a roofline whose points carry measured DRAM bytes.
pub const MEASURED_X_LABEL: &str = "arithmetic intensity (FLOP per DRAM byte, measured by Nsight Compute)";
/// The x label of a roofline whose points carry modelled bytes.
pub const MODELLED_X_LABEL: &str =
    "arithmetic intensity (FLOP per modelled byte: L2 hits counted as HBM traffic)";

impl RooflineFigure {
    /// The roofs measured in `ceilings` (copy bandwidth, bf16 GEMM, f32 SGEMM) and `points`.
    pub fn from_ceilings(title: impl Into<String>, ceilings: &Ceilings, points: Vec<KernelPoint>) -> Self {
        let tflops = |r: f64| r / 1e12;
        RooflineFigure {
            title: title.into(),
            bandwidth_bytes_per_s: ceilings.copy_bytes_per_s,
            bandwidth_label: format!("copy {:.2} TB/s", ceilings.copy_bytes_per_s / 1e12),
            roofs: vec![
                Roof::new(
                    format!("bf16 GEMM {:.0} TFLOP/s", tflops(ceilings.bf16_gemm_flops_per_s)),
                    ceilings.bf16_gemm_flops_per_s,
                ),
                Roof::new(
                    format!("f32 SGEMM {:.1} TFLOP/s", tflops(ceilings.f32_gemm_flops_per_s)),
                    ceilings.f32_gemm_flops_per_s,
                ),
            ],
            points,
            modelled: Vec::new(),
            x_label: "arithmetic intensity (FLOP/byte)".into(),
            size: (900, 600),
        }
    }

    /// [`RooflineFigure::from_ceilings`] with every kernel placed by its DRAM bytes measured by
    /// Nsight Compute (`measured`, one per label of `timed`), the modelled placements kept as
    /// hollow circles. An error when a label has no measurement, or a measurement no label.
    pub fn measured(
        title: impl Into<String>,
        ceilings: &Ceilings,
        timed: Vec<KernelPoint>,
        measured: &[MeasuredBytes],
    ) -> Result<Self> {
        let points = with_measured_bytes(&timed, measured)?;
        Ok(RooflineFigure {
            modelled: timed,
            x_label: MEASURED_X_LABEL.into(),
            ..RooflineFigure::from_ceilings(title, ceilings, points)
        })
    }

    /// The modelled placement of `p`, when this figure has one.
    pub fn modelled_of(&self, p: &KernelPoint) -> Option<&KernelPoint> {
        self.modelled.iter().find(|m| m.label == p.label)
    }

    /// The groups in order of first appearance (their colour index).
    pub fn groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for p in &self.points {
            if !groups.contains(&p.group.as_str()) {
                groups.push(&p.group);
            }
        }
        groups
    }

    /// Axis ranges ((x₀, x₁) in FLOP/byte, (y₀, y₁) in TFLOP/s) covering every point and every
    /// ridge point with a margin, or an error naming a number that cannot be drawn.
    pub fn ranges(&self) -> Result<((f64, f64), (f64, f64))> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.bandwidth_bytes_per_s) {
            return Err(Error::InvalidArgument(format!(
                "roofline '{}': bandwidth {} is not a positive number",
                self.title, self.bandwidth_bytes_per_s
            )));
        }
        if let Some(r) = self.roofs.iter().find(|r| !positive(r.peak_flops_per_s)) {
            return Err(Error::InvalidArgument(format!(
                "roofline '{}': roof '{}' has peak {}",
                self.title, r.label, r.peak_flops_per_s
            )));
        }
        if let Some(p) = self
            .points
            .iter()
            .chain(&self.modelled)
            .find(|p| !(positive(p.intensity()) && positive(p.flops_per_s())))
        {
            return Err(Error::InvalidArgument(format!(
                "roofline '{}': point '{}' has no finite positive intensity and rate",
                self.title, p.label
            )));
        }
        if self.roofs.is_empty() && self.points.is_empty() {
            return Err(Error::InvalidArgument(format!("roofline '{}' has nothing to draw", self.title)));
        }
        let bw = self.bandwidth_bytes_per_s;
        let xs = self.points.iter().chain(&self.modelled).map(|p| p.intensity());
        let xs = xs.chain(self.roofs.iter().map(|r| ridge_point(r.peak_flops_per_s, bw)));
        let ys = self.points.iter().chain(&self.modelled).map(|p| p.flops_per_s() / 1e12);
        let ys = ys.chain(self.roofs.iter().map(|r| r.peak_flops_per_s / 1e12));
        let ((x0, x1), (y0, y1)) = (span(xs), span(ys));
        Ok(((x0 / 4.0, x1 * 4.0), (y0 / 4.0, y1 * 2.5)))
    }
}

/// (min, max) of some values.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

impl Figure for RooflineFigure {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        let ((x0, x1), (y0, y1)) = self.ranges()?;
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 21))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(75)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc("TFLOP/s")
            .x_labels(Scale::Log10.label_count(x0, x1))
            .y_labels(Scale::Log10.label_count(y0, y1))
            .x_label_formatter(&|v| Scale::Log10.label(*v))
            .y_label_formatter(&|v| Scale::Log10.label(*v))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(plot_err)?;

        // The memory roof y = I·β (in TFLOP/s), from where it enters the chart to the highest
        // ridge point; each flat roof from its ridge point to the right edge.
        let bw_t = self.bandwidth_bytes_per_s / 1e12;
        let top = self.roofs.iter().map(|r| r.peak_flops_per_s / 1e12).fold(y1 / 2.5, f64::max);
        let slope_start = x0.max(y0 / bw_t);
        let slope_end = (top / bw_t).min(x1);
        let roof_style = RGBColor(40, 40, 40).stroke_width(2);
        // Labels end just left of and above their anchor point: above a rising line, and
        // at the right end of a flat one, away from the points that crowd the ridge.
        let label_font = ("sans-serif", 14)
            .into_font()
            .color(&RGBColor(40, 40, 40))
            .pos(Pos::new(HPos::Right, VPos::Bottom));
        let roof_label_font = label_font.clone().pos(Pos::new(HPos::Left, VPos::Bottom));
        if slope_start < slope_end {
            chart
                .draw_series(LineSeries::new(
                    [(slope_start, slope_start * bw_t), (slope_end, slope_end * bw_t)],
                    roof_style,
                ))
                .map_err(plot_err)?;
            // Two thirds of the way up the visible slope (in log coordinates), above it: the
            // region above the roofs is empty of kernels.
            let x = slope_start.powf(1.0 / 3.0) * slope_end.powf(2.0 / 3.0);
            let label = Text::new(self.bandwidth_label.clone(), (-6, -6), label_font.clone());
            chart.draw_series([EmptyElement::at((x, x * bw_t)) + label]).map_err(plot_err)?;
        }
        for roof in &self.roofs {
            let peak = roof.peak_flops_per_s / 1e12;
            let ridge = (peak / bw_t).max(x0);
            chart
                .draw_series(DashedLineSeries::new([(ridge, peak), (x1, peak)], 8, 4, roof_style))
                .map_err(plot_err)?;
            // At the ridge, above the roof and to its right: kernels sit below the roofs, and the
            // ones right of the ridge (most of them, by measured bytes) stay clear of the text.
            let label = Text::new(roof.label.clone(), (6, -4), roof_label_font.clone());
            chart.draw_series([EmptyElement::at((ridge, peak)) + label]).map_err(plot_err)?;
        }

        // The modelled placements first, under the measured points: a hollow circle each, and a
        // thin line to the measured point of the same label.
        if !self.modelled.is_empty() {
            let grey = RGBColor(150, 150, 150);
            for p in &self.points {
                let Some(m) = self.modelled_of(p) else { continue };
                let y = p.flops_per_s() / 1e12;
                chart
                    .draw_series(LineSeries::new(
                        [(m.intensity(), y), (p.intensity(), y)],
                        grey.stroke_width(1),
                    ))
                    .map_err(plot_err)?;
            }
            chart
                .draw_series(
                    self.modelled
                        .iter()
                        .map(|m| Circle::new((m.intensity(), m.flops_per_s() / 1e12), 4, grey)),
                )
                .map_err(plot_err)?
                .label("modelled bytes (L2 hits counted as HBM traffic)")
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, grey));
        }

        // The kernels: a dot per call, coloured by group, its label to the right — or, for
        // every second point of a column of points at (nearly) the same intensity, to the left,
        // so that the ladder's rungs 1–4 (one intensity, close rates) stay readable.
        let side = |p: &KernelPoint| {
            let column = self.points.iter().take_while(|q| !std::ptr::eq(*q, p));
            let rank = column.filter(|q| (q.intensity() / p.intensity()).ln().abs() < 0.05).count();
            let width = 7 * p.label.chars().count() as i32;
            if rank % 2 == 0 { (8, -7) } else { (-10 - width, -7) }
        };
        for (k, group) in self.groups().into_iter().enumerate() {
            let color = SERIES_COLORS[k % SERIES_COLORS.len()];
            let font = ("sans-serif", 12).into_font().color(&color);
            let members = self.points.iter().filter(|p| p.group == group);
            chart
                .draw_series(members.map(|p| {
                    EmptyElement::at((p.intensity(), p.flops_per_s() / 1e12))
                        + Circle::new((0, 0), 5, color.filled())
                        + Text::new(p.label.clone(), side(p), font.clone())
                }))
                .map_err(plot_err)?
                .label(group)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        // The legend goes top left: above the memory roof, where no kernel can be.
        if !self.points.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    }
}
