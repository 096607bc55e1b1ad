//! The line charts and heatmaps of chapter 12: TFLOP/s against N next to PyTorch, per-launch
//! time with and without CUDA graphs, the roofline from recorded points, and the autotuner's
//! candidates.

use super::bars::TORCH_IMPLS;
use super::data::{BenchRow, GraphRow, StreamRow, parse_roofline_csv};
use super::legend::{LegendEntry, ROW_HEIGHT, Swatch, draw_legend_rows};
use crate::ceilings::Ceilings;
use crate::ladder::{Rung, TileShape};
use crate::roofline::figure::MODELLED_X_LABEL;
use crate::roofline::measured::parse_measured_csv;
use crate::roofline::{KernelPoint, RooflineFigure};
use crate::streams::StreamTiming;
use crate::tuning::{Family, TileTable, TunedEntry};
use attn_support::ndarray::Array2;
use attn_support::plot::{Chart, Figure, Heatmap, Line, Panels, SERIES_COLORS, Scale, SeriesLabelPosition};
use attn_support::plotters::coord::Shift;
use attn_support::plotters::prelude::{DrawingArea, DrawingBackend};
use attn_support::{Error, Result};
use std::collections::BTreeSet;
use std::path::Path;

/// The batch and heads of the TFLOP/s-vs-N sweep (the shapes file's main series).
pub const SWEEP_BATCH_HEADS: (usize, usize) = (8, 16);

/// The lines of the TFLOP/s-vs-N chart: our best rungs, then PyTorch's backends.
pub const SWEEP_IMPLS: [(&str, &str); 3] = [
    ("r7_wgmma_overlap", "r7 wgmma + overlap"),
    ("r8_tma", "r8 TMA + warp specialisation"),
    ("r9_pingpong", "r9 ping-pong"),
];

/// The six lines at one head dim and mask: [`SWEEP_IMPLS`] solid, [`TORCH_IMPLS`] dashed, in
/// that order (so in a chart each keeps its colour, `SERIES_COLORS[k % 6]`), possibly empty.
fn sweep_lines(rows: &[BenchRow], head_dim: usize, causal: bool) -> Vec<Line> {
    let (b, h) = SWEEP_BATCH_HEADS;
    let points = |name: &str| -> Vec<(f64, f64)> {
        let shape = |r: &BenchRow| (r.batch, r.heads, r.head_dim, r.causal) == (b, h, head_dim, causal);
        let mut p: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.impl_name == name && shape(r))
            .filter_map(|r| Some((r.seq as f64, r.tflops()?)))
            .collect();
        p.sort_by(|x, y| x.0.total_cmp(&y.0));
        p
    };
    let ours = SWEEP_IMPLS.iter().map(|(name, label)| Line::solid(*label, points(name)));
    ours.chain(TORCH_IMPLS.iter().map(|(name, label)| Line::dashed(*label, points(name)))).collect()
}

fn sweep_chart(lines: Vec<Line>, head_dim: usize, causal: bool, headroom: f64) -> Chart {
    let (b, h) = SWEEP_BATCH_HEADS;
    let top = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(1.0, f64::max);
    let mask = if causal { "causal" } else { "no mask" };
    Chart {
        lines,
        x_scale: Scale::Log2,
        y_range: Some((0.0, top * headroom)),
        legend: SeriesLabelPosition::UpperLeft,
        ..Chart::new(format!("B={b} H={h} d={head_dim}, {mask}"), "sequence length N", "TFLOP/s")
    }
}

/// TFLOP/s against N (log₂) at B = 8, H = 16 and one head dim and mask: a solid line per rung
/// of [`SWEEP_IMPLS`], a dashed one per PyTorch backend; impls without a point are left out,
/// and the y axis leaves room above the lines for the legend.
pub fn tflops_vs_n_figure(rows: &[BenchRow], head_dim: usize, causal: bool) -> Chart {
    let lines = sweep_lines(rows, head_dim, causal).into_iter().filter(|l| !l.points.is_empty()).collect();
    sweep_chart(lines, head_dim, causal, 1.45)
}

/// The charts of [`tflops_vs_n_figure`] for d ∈ {64, 128} × {no mask, causal} in a 2 × 2 grid
/// (charts without data left out), with one legend below instead of one per chart.
#[derive(Clone, Debug)]
pub struct SweepFigure {
    pub grid: Panels,
    pub legend: Vec<LegendEntry>,
}

/// The [`SweepFigure`] of the rows; an error when no chart has a point.
pub fn tflops_vs_n_panels(rows: &[BenchRow]) -> Result<SweepFigure> {
    let cases = [(64, false), (64, true), (128, false), (128, true)];
    let all: Vec<(usize, bool, Vec<Line>)> =
        cases.iter().map(|&(d, c)| (d, c, sweep_lines(rows, d, c))).collect();
    // Entry k of the legend is line k of every chart: same colour, present in some chart.
    let legend = (0..SWEEP_IMPLS.len() + TORCH_IMPLS.len())
        .filter(|&k| all.iter().any(|(_, _, lines)| !lines[k].points.is_empty()))
        .map(|k| {
            let line = &all[0].2[k];
            let swatch = if line.dashed { Swatch::Dashed } else { Swatch::Line };
            LegendEntry { label: line.label.clone(), color: SERIES_COLORS[k % SERIES_COLORS.len()], swatch }
        })
        .collect();
    let figures: Vec<Chart> = all
        .into_iter()
        .filter(|(_, _, lines)| lines.iter().any(|l| !l.points.is_empty()))
        .map(|(d, causal, lines)| {
            // No labels: the chart then draws no legend of its own.
            let lines = lines.into_iter().map(|l| Line { label: String::new(), ..l }).collect();
            sweep_chart(lines, d, causal, 1.1)
        })
        .collect();
    if figures.is_empty() {
        return Err(Error::InvalidArgument("TFLOP/s vs N: no rows at B = 8, H = 16".into()));
    }
    Ok(SweepFigure { grid: Panels::grid((640, 440), 2, figures), legend })
}

/// The legend of a [`SweepFigure`] in rows of at most four entries.
fn sweep_legend_rows(legend: &[LegendEntry]) -> Vec<Vec<LegendEntry>> {
    legend.chunks(4).map(<[LegendEntry]>::to_vec).collect()
}

impl Figure for SweepFigure {
    fn size(&self) -> (u32, u32) {
        let (w, h) = self.grid.size();
        (w, h + 12 + ROW_HEIGHT as u32 * sweep_legend_rows(&self.legend).len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let (top, bottom) = area.split_vertically(self.grid.size().1);
        self.grid.draw(&top)?;
        draw_legend_rows(&bottom, &sweep_legend_rows(&self.legend))
    }
}

/// Time per kernel launched one by one and replayed from a CUDA graph, against the sequence
/// length of the kernel (log₂ N; µs from 0, so that the launch overhead reads as a distance).
pub fn graphs_figure(rows: &[GraphRow]) -> Chart {
    let mut sorted = rows.to_vec();
    sorted.sort_by_key(|r| r.seq);
    let line = |f: fn(&GraphRow) -> f64| sorted.iter().map(|r| (r.seq as f64, f(r))).collect::<Vec<_>>();
    let top = rows.iter().map(|r| r.direct_us_per_launch.max(r.graph_us_per_launch)).fold(1.0, f64::max);
    let launches: BTreeSet<usize> = rows.iter().map(|r| r.launches).collect();
    let count = match launches.iter().collect::<Vec<_>>()[..] {
        [one] => format!("{one} launches in a row"),
        _ => "launches in a row".into(),
    };
    Chart {
        lines: vec![
            Line::solid("launched one by one", line(|r| r.direct_us_per_launch)),
            Line::solid("replayed from a CUDA graph", line(|r| r.graph_us_per_launch)),
        ],
        x_scale: Scale::Log2,
        y_range: Some((0.0, top * 1.3)),
        ..Chart::new(format!("CUDA graphs: time per kernel, {count}"), "sequence length N", "µs per launch")
    }
}

/// Speed-up of independent calls spread over k streams against the same calls on one stream,
/// one line per call size (blocks per call), against k (log₂): launched from the CPU (left)
/// and replayed from a CUDA graph (right), on the same y range.
pub fn streams_figure(rows: &[StreamRow]) -> Panels {
    let sizes: BTreeSet<(usize, usize)> = rows.iter().map(|r| (r.blocks, r.heads)).collect();
    let top = rows
        .iter()
        .map(|r| r.timing.serial_ms / r.timing.concurrent_ms.min(r.timing.graph_ms))
        .fold(1.0, f64::max);
    let calls: BTreeSet<usize> = rows.iter().map(|r| r.timing.calls).collect();
    let count = match calls.iter().collect::<Vec<_>>()[..] {
        [one] => format!("{one} calls"),
        _ => "calls".into(),
    };
    let panel = |title: String, spread_ms: fn(&StreamTiming) -> f64| {
        let lines = sizes
            .iter()
            .map(|&(blocks, heads)| {
                let mut points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.blocks == blocks && r.heads == heads)
                    .map(|r| (r.timing.streams as f64, r.timing.serial_ms / spread_ms(&r.timing)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Line::solid(format!("H={heads}: {blocks} blocks per call"), points)
            })
            .collect();
        Chart {
            lines,
            x_scale: Scale::Log2,
            y_range: Some((0.0, top * 1.15)),
            ..Chart::new(title, "streams k", "speed-up over one stream")
        }
    };
    Panels::new(
        (640, 480),
        vec![
            panel(format!("{count} spread over k streams, launched from the CPU"), |r| r.concurrent_ms),
            panel(format!("the same {count} replayed from one CUDA graph"), |r| r.graph_ms),
        ],
    )
}

/// The roofline with the points of a recorded `ch12_roofline.csv` under the measured ceilings,
/// placed by their modelled bytes (which count L2 hits as HBM traffic), as the title says.
pub fn roofline_from_csv(path: &Path, ceilings: &Ceilings) -> Result<RooflineFigure> {
    let points = read_roofline_points(path)?;
    let title = format!("Every kernel of the book under the roofline ({})", ceilings.device);
    let figure = RooflineFigure::from_ceilings(title, ceilings, points);
    Ok(RooflineFigure { size: (1000, 640), x_label: MODELLED_X_LABEL.into(), ..figure })
}

/// The roofline of a recorded run with every kernel placed by the DRAM bytes Nsight Compute
/// measured (`ch12_roofline_dram.csv` at `measured_path`), the modelled placements kept as
/// hollow circles; an error when the two files do not hold the same labels.
pub fn roofline_measured_from_csv(
    points_path: &Path,
    measured_path: &Path,
    ceilings: &Ceilings,
) -> Result<RooflineFigure> {
    let timed = read_roofline_points(points_path)?;
    let text = std::fs::read_to_string(measured_path)
        .map_err(|source| Error::Io { path: measured_path.display().to_string(), source })?;
    let measured = parse_measured_csv(&text)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", measured_path.display())))?;
    let title = format!("Every kernel of the book under the roofline ({})", ceilings.device);
    let figure = RooflineFigure::measured(title, ceilings, timed, &measured)?;
    Ok(RooflineFigure { size: (1000, 640), ..figure })
}

fn read_roofline_points(path: &Path) -> Result<Vec<KernelPoint>> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    parse_roofline_csv(&text).map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))
}

fn tiles_of(rung: &Rung) -> Option<TileShape> {
    match rung {
        Rung::Tuned(t) | Rung::WgmmaOverlap(t) => Some(*t),
        _ => None,
    }
}

/// `B·H × N d{d}` and ` c` when causal: short enough for the heatmap's row-label area.
fn entry_label(e: &TunedEntry) -> String {
    format!("{}×{} d{}{}", e.batch_heads, e.seq, e.head_dim, if e.causal { " c" } else { "" })
}

/// The autotuner's candidates: one heatmap per kernel family, a row per tuned shape, a column
/// per tile shape, each cell the candidate's speed relative to the winner of its row
/// (best time / its time: 1.00 is the pick). Grey: no such candidate at that head dim.
pub fn autotune_figure(table: &TileTable) -> Result<Panels<Heatmap>> {
    let mut figures = Vec::new();
    for (family, name) in
        [(Family::MmaSync, "rung 5: mma.sync tiles"), (Family::WgmmaOverlap, "rung 7: wgmma tiles")]
    {
        let mut entries: Vec<&TunedEntry> = table.entries.iter().filter(|e| e.family == family).collect();
        entries.sort_by_key(|e| (e.head_dim, e.causal, e.batch_heads, e.seq));
        let mut columns: Vec<TileShape> = Vec::new();
        for t in entries.iter().flat_map(|e| e.candidates.iter().filter_map(|c| tiles_of(&c.0))) {
            if !columns.contains(&t) {
                columns.push(t);
            }
        }
        if entries.is_empty() || columns.is_empty() {
            continue;
        }
        columns.sort_by_key(|t| (t.block_rows, t.block_keys));
        let data = Array2::from_shape_fn((entries.len(), columns.len()), |(i, j)| {
            let cands = &entries[i].candidates;
            let best = cands.iter().map(|c| c.1).filter(|ms| *ms > 0.0).fold(f64::INFINITY, f64::min);
            let ms = cands.iter().find(|c| tiles_of(&c.0) == Some(columns[j])).map_or(f64::NAN, |c| c.1);
            best / ms
        });
        figures.push(Heatmap {
            row_labels: entries.iter().map(|e| entry_label(e)).collect(),
            col_labels: columns.iter().map(|t| t.to_string()).collect(),
            x_desc: "tile shape BR×BC".into(),
            y_desc: "B·H × N, head dim (c: causal)".into(),
            annotate: true,
            ..Heatmap::new(format!("{name}: best time / time"), data)
        });
    }
    if figures.is_empty() {
        return Err(Error::InvalidArgument("autotune figure: the table has no candidates".into()));
    }
    // One colour scale for both families.
    let values = figures.iter().flat_map(|f| f.data.iter().copied().filter(|v| v.is_finite()));
    let low = values.fold(1.0, f64::min).min(0.95);
    for f in &mut figures {
        f.value_range = Some((low, 1.0));
    }
    let rows = figures.iter().map(|f| f.data.nrows()).max().unwrap_or(1) as u32;
    Ok(Panels::new((680, (150 + 30 * rows).max(380)), figures))
}
