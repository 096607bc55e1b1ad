//! [`LadderFigure`]: TFLOP/s per rung at one shape, one panel per mask, with PyTorch's bf16
//! backends as dashed horizontal lines. Drawn with plotters directly: bars on a category axis,
//! coloured by the instruction that does the arithmetic, one y scale for both panels so that
//! the causal and the full case compare at a glance.

use super::data::BenchRow;
use super::legend::{LegendEntry, Swatch, draw_legend_rows};
use attn_support::plot::{Figure, SERIES_COLORS, ensure_font, plot_err};
use attn_support::plotters::coord::Shift;
use attn_support::plotters::coord::ranged1d::SegmentValue;
use attn_support::plotters::prelude::*;
use attn_support::plotters::style::text_anchor::{HPos, Pos, VPos};
use attn_support::{Error, Result};

/// The rows of the ladder in the benchmark CSV, with their bar labels: the fixed rungs by
/// [`crate::ladder::Rung::name`], rungs 5, 7, 8 and 9 by the names of their tuned picks.
pub const LADDER_IMPLS: [(&str, &str); 10] = [
    ("r0_f32_flash", "r0"),
    ("r1_smem_softmax", "r1"),
    ("r2_register_softmax", "r2"),
    ("r3_cp_async", "r3"),
    ("r4_ldmatrix_swizzle", "r4"),
    ("r5_tuned", "r5"),
    ("r6_wgmma", "r6"),
    ("r7_wgmma_overlap", "r7"),
    ("r8_tma", "r8"),
    ("r9_pingpong", "r9"),
];

/// PyTorch's bf16 backends in the baseline CSVs, with their labels.
pub const TORCH_IMPLS: [(&str, &str); 3] = [
    ("torch_flash_bf16", "PyTorch FLASH"),
    ("torch_cudnn_bf16", "PyTorch cuDNN"),
    ("torch_efficient_bf16", "PyTorch EFFICIENT"),
];

/// Colours of the bars by arithmetic unit (f32 FFMA, mma.sync, wgmma), and of the PyTorch lines.
const UNIT_COLORS: [RGBColor; 3] = [RGBColor(150, 150, 150), SERIES_COLORS[0], SERIES_COLORS[2]];
const UNIT_NAMES: [&str; 3] =
    ["f32 CUDA cores (r0)", "mma.sync tensor cores (r1–r5)", "wgmma, Hopper (r6–r9)"];
const TORCH_COLORS: [RGBColor; 3] = [SERIES_COLORS[1], SERIES_COLORS[4], SERIES_COLORS[3]];

fn unit_of(rung: usize) -> usize {
    match rung {
        0 => 0,
        1..=5 => 1,
        _ => 2,
    }
}

/// The TFLOP/s of `name` at a shape, if it ran there.
pub fn tflops_at(
    rows: &[BenchRow],
    name: &str,
    (b, h, n, d): (usize, usize, usize, usize),
    causal: bool,
) -> Option<f64> {
    rows.iter()
        .find(|r| {
            r.impl_name == name && (r.batch, r.heads, r.seq, r.head_dim, r.causal) == (b, h, n, d, causal)
        })?
        .tflops()
}

/// One panel: a bar per rung (`None`: not run at this shape) and PyTorch's rates.
#[derive(Clone, Debug, PartialEq)]
pub struct LadderPanel {
    pub title: String,
    /// (label, TFLOP/s) in ladder order.
    pub bars: Vec<(String, Option<f64>)>,
    /// (index into [`TORCH_IMPLS`], TFLOP/s).
    pub references: Vec<(usize, f64)>,
}

/// The ladder figure: a title and panels sharing one y axis.
#[derive(Clone, Debug, PartialEq)]
pub struct LadderFigure {
    pub title: String,
    pub panels: Vec<LadderPanel>,
    pub size: (u32, u32),
}

impl LadderFigure {
    /// The ladder at (B, H, N, d), without and with the causal mask; an error when no rung ran
    /// at that shape.
    pub fn from_rows(rows: &[BenchRow], shape: (usize, usize, usize, usize)) -> Result<LadderFigure> {
        let panel = |causal: bool| LadderPanel {
            title: if causal { "causal (FLOPs halved)" } else { "no mask" }.into(),
            bars: LADDER_IMPLS
                .iter()
                .map(|(name, label)| (label.to_string(), tflops_at(rows, name, shape, causal)))
                .collect(),
            references: (0..TORCH_IMPLS.len())
                .filter_map(|k| tflops_at(rows, TORCH_IMPLS[k].0, shape, causal).map(|t| (k, t)))
                .collect(),
        };
        let panels = vec![panel(false), panel(true)];
        if panels.iter().all(|p| p.bars.iter().all(|b| b.1.is_none())) {
            return Err(Error::InvalidArgument(format!(
                "ladder figure: no rung ran at B, H, N, d = {shape:?}"
            )));
        }
        let (b, h, n, d) = shape;
        Ok(LadderFigure {
            title: format!("The optimisation ladder in bf16: TFLOP/s per rung at B={b} H={h} N={n} d={d}"),
            panels,
            size: (1200, 560),
        })
    }

    /// The top of the shared y axis: the largest value with room for the labels above it.
    fn y_max(&self) -> f64 {
        let bars = self.panels.iter().flat_map(|p| p.bars.iter().filter_map(|b| b.1));
        let refs = self.panels.iter().flat_map(|p| p.references.iter().map(|r| r.1));
        bars.chain(refs).filter(|v| v.is_finite()).fold(1.0, f64::max) * 1.12
    }
}

impl Figure for LadderFigure {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        if self.panels.is_empty() || self.panels.iter().any(|p| p.bars.is_empty()) {
            return Err(Error::InvalidArgument("ladder figure: a panel without bars".into()));
        }
        area.fill(&WHITE).map_err(plot_err)?;
        let (w, h) = area.dim_in_pixel();
        let (top, rest) = area.split_vertically(40);
        let title = ("sans-serif", 21).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        top.draw_text(&self.title, &title, (w as i32 / 2, 24)).map_err(plot_err)?;
        let (main, legend) = rest.split_vertically(h as i32 - 40 - 70);
        let y_max = self.y_max();
        for (panel, sub) in self.panels.iter().zip(main.split_evenly((1, self.panels.len()))) {
            draw_panel(panel, &sub, y_max)?;
        }
        draw_legend(self, &legend)
    }
}

fn draw_panel<DB: DrawingBackend>(
    panel: &LadderPanel,
    area: &DrawingArea<DB, Shift>,
    y_max: f64,
) -> Result<()> {
    let n = panel.bars.len();
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..y_max)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("rung")
        .y_desc("TFLOP/s")
        .x_labels(n)
        .y_labels(8)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if *i < n => panel.bars[*i].0.clone(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_err)?;
    // Each line's value, staggered along x so that two close lines keep readable labels.
    for (slot, &(k, v)) in panel.references.iter().enumerate() {
        let color = TORCH_COLORS[k];
        let ends = [(SegmentValue::Exact(0), v), (SegmentValue::Exact(n), v)];
        chart.draw_series(DashedLineSeries::new(ends, 9, 5, color.stroke_width(2))).map_err(plot_err)?;
        let font = ("sans-serif", 14).into_font().color(&color).pos(Pos::new(HPos::Left, VPos::Bottom));
        let label = Text::new(format!("{v:.0}"), (4, -3), font);
        chart.draw_series([EmptyElement::at((SegmentValue::Exact(slot), v)) + label]).map_err(plot_err)?;
    }
    let above = Pos::new(HPos::Center, VPos::Bottom);
    for (i, (_, value)) in panel.bars.iter().enumerate() {
        let at = |y| (SegmentValue::CenterOf(i), y);
        match value {
            Some(v) => {
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), *v)],
                    UNIT_COLORS[unit_of(i)].filled(),
                );
                bar.set_margin(0, 0, 7, 7);
                let text = Text::new(
                    format!("{v:.0}"),
                    (0, -3),
                    ("sans-serif", 14).into_font().color(&BLACK).pos(above),
                );
                chart.draw_series([bar]).map_err(plot_err)?;
                chart.draw_series([EmptyElement::at(at(*v)) + text]).map_err(plot_err)?;
            }
            None => {
                let grey = ("sans-serif", 12).into_font().color(&RGBColor(120, 120, 120)).pos(above);
                chart
                    .draw_series([EmptyElement::at(at(0.0)) + Text::new("not run", (0, -4), grey)])
                    .map_err(plot_err)?;
            }
        }
    }
    Ok(())
}

/// The shared legend below the panels: the arithmetic units that have a bar, then the
/// PyTorch backends that have a line.
fn draw_legend<DB: DrawingBackend>(fig: &LadderFigure, area: &DrawingArea<DB, Shift>) -> Result<()> {
    let has_unit = |u: usize| {
        fig.panels.iter().any(|p| p.bars.iter().enumerate().any(|(i, b)| unit_of(i) == u && b.1.is_some()))
    };
    let has_ref = |k: usize| fig.panels.iter().any(|p| p.references.iter().any(|r| r.0 == k));
    let units = (0..3).filter(|&u| has_unit(u)).map(|u| LegendEntry {
        label: UNIT_NAMES[u].into(),
        color: UNIT_COLORS[u],
        swatch: Swatch::Bar,
    });
    let refs = (0..TORCH_IMPLS.len()).filter(|&k| has_ref(k)).map(|k| LegendEntry {
        label: TORCH_IMPLS[k].1.into(),
        color: TORCH_COLORS[k],
        swatch: Swatch::Dashed,
    });
    draw_legend_rows(area, &[units.collect(), refs.collect()])
}
