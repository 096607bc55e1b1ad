//! The chapter's figures, drawn from timing rows (a live grid or recorded CSVs):
//! time per backend vs N, the map of the winning backend per shape, and the dispatcher's
//! heuristic pick against the measured best.
//!
//! The rows are parsed from the timing CSV format the `ch04` binary and the PyTorch script
//! both write (`impl,batch,heads,seq,head_dim,causal,median_ms,tflops`); `median_ms` may be
//! `oom` or `unsupported`, which becomes `None` and is left out of every line.

use attn_support::csv::{BenchRecord, Table, bench_records};
use attn_support::plot::{
    Chart, Figure, Line, Panels, SERIES_COLORS, Scale, SeriesLabelPosition, ensure_font, grid_cell,
    grid_center, grid_row_at, plot_err,
};
use attn_support::plotters::coord::Shift;
use attn_support::plotters::coord::ranged1d::SegmentValue;
use attn_support::plotters::prelude::*;
use attn_support::plotters::style::text_anchor::{HPos, Pos, VPos};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::bench::BenchShape;
use std::collections::BTreeSet;
use std::path::Path;

/// Our three backends (the winner map's colours follow this order).
pub const OUR_IMPLS: [&str; 3] = ["ch04_unfused", "ch04_fused", "ch04_flash"];
/// The lines of the time-per-N figure: ours, then PyTorch's two backends.
pub const ALL_IMPLS: [&str; 5] =
    ["ch04_unfused", "ch04_fused", "ch04_flash", "torch_math", "torch_efficient"];
/// The dispatcher target: within 10 % of the best measured backend.
pub const DISPATCH_THRESHOLD: f64 = 1.10;

/// One line of a timing CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct TimingRow {
    pub impl_name: String,
    pub batch: usize,
    pub heads: usize,
    pub seq: usize,
    pub head_dim: usize,
    pub causal: bool,
    /// `None` for `oom` / `unsupported` (or any non-number).
    pub median_ms: Option<f64>,
}

/// A (batch, heads, head_dim) combination: one panel of the time figure, one row of the map.
pub type Combo = (usize, usize, usize);

impl TimingRow {
    pub fn combo(&self) -> Combo {
        (self.batch, self.heads, self.head_dim)
    }

    /// TFLOP/s with chapter 2's FLOP count (4·B·H·N²·d, halved when causal), the count every
    /// writer of these files uses; `None` where there is no time.
    pub fn tflops(&self) -> Option<f64> {
        let shape = BenchShape {
            batch: self.batch,
            heads: self.heads,
            seq: self.seq,
            head_dim: self.head_dim,
            causal: self.causal,
        };
        self.median_ms.map(|ms| shape.flops() / (ms * 1e-3) * 1e-12)
    }
}

/// Parses a timing CSV (header line first); blank lines are skipped.
pub fn parse_timing_csv(text: &str) -> Result<Vec<TimingRow>> {
    timing_rows(&Table::parse(text, "timing CSV")?)
}

/// Reads a timing CSV; errors name the file, the line and the column.
pub fn read_timing_csv(path: &Path) -> Result<Vec<TimingRow>> {
    timing_rows(&Table::read(path)?)
}

/// The [`TimingRow`]s of a parsed timing CSV (the support crate's benchmark records).
pub fn timing_rows(table: &Table) -> Result<Vec<TimingRow>> {
    Ok(bench_records(table)?.into_iter().map(TimingRow::from).collect())
}

impl From<BenchRecord> for TimingRow {
    /// A time that is not a positive number (`oom`, `unsupported`, empty) becomes `None`; the
    /// recorded `tflops` is dropped ([`TimingRow::tflops`] recomputes it).
    fn from(r: BenchRecord) -> TimingRow {
        TimingRow {
            impl_name: r.implementation,
            batch: r.batch,
            heads: r.heads,
            seq: r.seq,
            head_dim: r.head_dim,
            causal: r.causal,
            median_ms: r.median_ms.filter(|ms| *ms > 0.0),
        }
    }
}

/// Reads and concatenates the timing CSVs of a recorded run: `ch04_grid.csv` (required)
/// and, when present, `torch_math_ch04.csv` and `torch_efficient_ch04.csv`.
pub fn read_recorded_run(dir: &Path) -> Result<Vec<TimingRow>> {
    let mut rows = Vec::new();
    for (name, required) in
        [("ch04_grid.csv", true), ("torch_math_ch04.csv", false), ("torch_efficient_ch04.csv", false)]
    {
        let path = dir.join(name);
        if required || path.exists() {
            rows.extend(read_timing_csv(&path)?);
        }
    }
    Ok(rows)
}

fn combos(rows: &[TimingRow]) -> Vec<Combo> {
    rows.iter().map(TimingRow::combo).collect::<BTreeSet<_>>().into_iter().collect()
}

fn seqs(rows: &[TimingRow]) -> Vec<usize> {
    rows.iter().map(|r| r.seq).collect::<BTreeSet<_>>().into_iter().collect()
}

fn time_of(rows: &[TimingRow], name: &str, combo: Combo, seq: usize) -> Option<f64> {
    rows.iter().find(|r| r.impl_name == name && r.combo() == combo && r.seq == seq && !r.causal)?.median_ms
}

/// Our backends at one shape, fastest first (only those that ran).
fn ranked(rows: &[TimingRow], combo: Combo, seq: usize) -> Vec<(usize, f64)> {
    let mut times: Vec<(usize, f64)> = (0..OUR_IMPLS.len())
        .filter_map(|i| time_of(rows, OUR_IMPLS[i], combo, seq).map(|ms| (i, ms)))
        .collect();
    times.sort_by(|a, b| a.1.total_cmp(&b.1));
    times
}

fn combo_label((b, h, d): Combo) -> String {
    format!("B={b} H={h} d={d}")
}

/// Short name of an impl for legends: `ch04_flash` → `flash`.
fn short(name: &str) -> &str {
    name.strip_prefix("ch04_").unwrap_or(name)
}

// ANCHOR: time_figure
/// Time per backend vs N: one panel per (B, H, d), one line per implementation (ours and
/// PyTorch's), log₂ N against log₁₀ ms. A missing point (oom, unsupported) breaks no line:
/// the line simply has no point there.
pub fn time_vs_n(rows: &[TimingRow]) -> Result<PanelGrid> {
    let mut panels = Vec::new();
    for combo in combos(rows) {
        let lines: Vec<Line> = ALL_IMPLS
            .iter()
            .map(|name| {
                let points = seqs(rows)
                    .into_iter()
                    .filter_map(|n| time_of(rows, name, combo, n).map(|ms| (n as f64, ms)))
                    .collect();
                Line::solid(short(name), points)
            })
            .filter(|l| !l.points.is_empty())
            .collect();
        if lines.is_empty() {
            continue;
        }
        panels.push(Chart {
            lines,
            x_scale: Scale::Log2,
            y_scale: Scale::Log10,
            ..Chart::new(
                format!("{}: time vs N", combo_label(combo)),
                "N (keys = queries)",
                "median time (ms)",
            )
        });
    }
    if panels.is_empty() {
        return Err(Error::InvalidArgument("time figure: no timing with a value".into()));
    }
    Ok(PanelGrid { figures: panels, columns: 2, panel_size: (680, 460) })
}
// ANCHOR_END: time_figure

/// Charts in a grid, row by row, `columns` to a row, each in a panel of `panel_size` pixels:
/// the support crate's [`Panels`] (so four panels stay legible on a book page).
pub type PanelGrid = Panels<Chart>;

/// The map of the winning backend per shape: rows = (B, H, d), columns = N; each cell names
/// the fastest of our backends, coloured by it, and how much faster it is than the runner-up
/// (runner-up time / winner time). Grey: nothing ran.
#[derive(Clone, Debug)]
pub struct WinnerMap {
    pub title: String,
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
    /// `cells[row][col]`; `None` where nothing ran.
    pub cells: Vec<Vec<Option<Win>>>,
}

/// One cell of the winner map: (index into [`OUR_IMPLS`] of the winner, runner-up time /
/// winner time when a runner-up ran).
pub type Win = (usize, Option<f64>);

/// Builds the [`WinnerMap`] of the rows.
pub fn winner_map(rows: &[TimingRow]) -> Result<WinnerMap> {
    let (combos, seqs) = (combos(rows), seqs(rows));
    if combos.is_empty() {
        return Err(Error::InvalidArgument("winner map: no rows".into()));
    }
    let cells = combos
        .iter()
        .map(|&combo| {
            seqs.iter()
                .map(|&n| {
                    let ranked = ranked(rows, combo, n);
                    let &(best, best_ms) = ranked.first()?;
                    Some((best, ranked.get(1).map(|&(_, ms)| ms / best_ms)))
                })
                .collect()
        })
        .collect();
    Ok(WinnerMap {
        title: "Fastest of our backends per shape (× = runner-up time / winner time)".into(),
        row_labels: combos.iter().map(|&c| combo_label(c)).collect(),
        col_labels: seqs.iter().map(|n| n.to_string()).collect(),
        cells,
    })
}

impl Figure for WinnerMap {
    fn size(&self) -> (u32, u32) {
        (220 + 150 * self.col_labels.len() as u32, 130 + 80 * self.row_labels.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        let (rows, cols) = (self.row_labels.len(), self.col_labels.len());
        if rows == 0 || cols == 0 || self.cells.len() != rows || self.cells.iter().any(|r| r.len() != cols) {
            return Err(Error::InvalidArgument("winner map: cells do not match the labels".into()));
        }
        area.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(150)
            .build_cartesian_2d((0..cols - 1).into_segmented(), (0..rows - 1).into_segmented())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("N")
            .x_labels(cols)
            .y_labels(rows)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(j) if *j < cols => self.col_labels[*j].clone(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(k) if *k < rows => self.row_labels[grid_row_at(*k, rows)].clone(),
                _ => String::new(),
            })
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(plot_err)?;
        let cells = || {
            self.cells
                .iter()
                .enumerate()
                .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, c)| (i, j, *c)))
        };
        chart
            .draw_series(cells().map(|(i, j, c)| {
                let fill = match c {
                    Some((w, _)) => SERIES_COLORS[w % SERIES_COLORS.len()].mix(0.35).filled(),
                    None => RGBColor(215, 215, 215).filled(),
                };
                Rectangle::new(grid_cell(i, j, rows), fill)
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(
                cells().map(|(i, j, _)| Rectangle::new(grid_cell(i, j, rows), WHITE.stroke_width(3))),
            )
            .map_err(plot_err)?;
        let centered = Pos::new(HPos::Center, VPos::Center);
        chart
            .draw_series(cells().map(|(i, j, c)| {
                let (name, margin) = match c {
                    Some((w, m)) => {
                        (short(OUR_IMPLS[w]).to_string(), m.map_or(String::new(), |m| format!("{m:.2}×")))
                    }
                    None => ("none ran".to_string(), String::new()),
                };
                EmptyElement::at(grid_center(i, j, rows))
                    + Text::new(
                        name,
                        (0, -11),
                        ("sans-serif", 18).into_font().style(FontStyle::Bold).color(&BLACK).pos(centered),
                    )
                    + Text::new(margin, (0, 12), ("sans-serif", 16).into_font().color(&BLACK).pos(centered))
            }))
            .map_err(plot_err)?;
        Ok(())
    }
}

/// The dispatcher's heuristic against the measured best, as slowdown = time of the
/// heuristic's pick / best time, vs N, one line per (B, H, d); the 1.10 target is a dashed
/// guide. `heuristic` names the backend (`unfused` / `fused` / `flash`) picked for a shape.
pub fn dispatch_slowdown(rows: &[TimingRow], heuristic: impl Fn(Combo, usize) -> String) -> Result<Chart> {
    let seqs = seqs(rows);
    let mut lines = Vec::new();
    for combo in combos(rows) {
        let points: Vec<(f64, f64)> = seqs
            .iter()
            .filter_map(|&n| {
                let best = ranked(rows, combo, n).first()?.1;
                let picked = time_of(rows, &format!("ch04_{}", heuristic(combo, n)), combo, n)?;
                Some((n as f64, picked / best))
            })
            .collect();
        if !points.is_empty() {
            lines.push(Line::solid(combo_label(combo), points));
        }
    }
    let (Some(&lo), Some(&hi)) = (seqs.first(), seqs.last()) else {
        return Err(Error::InvalidArgument("dispatch figure: no rows".into()));
    };
    let worst = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(DISPATCH_THRESHOLD, f64::max);
    lines.push(Line::dashed("target: within 10 % (1.10×)", vec![(lo as f64, 1.10), (hi as f64, 1.10)]));
    Ok(Chart {
        lines,
        x_scale: Scale::Log2,
        y_range: Some((0.95, worst * 1.05)),
        legend: SeriesLabelPosition::UpperRight,
        ..Chart::new(
            "Dispatcher heuristic vs the measured best (1.00 = it picked the best)",
            "N",
            "heuristic time / best time",
        )
    })
}

/// Reads the heuristic's picks from a recorded `ch04_grid_dispatch.csv`
/// (`batch,heads,seq,head_dim,causal,best,best_ms,heuristic,...`): (B, H, d, N) → backend.
pub fn parse_dispatch_picks(text: &str) -> Result<Vec<(Combo, usize, String)>> {
    let table = Table::parse(text, "dispatch CSV")?;
    table.expect_columns(&["batch", "heads", "seq", "head_dim", "causal", "best", "best_ms", "heuristic"])?;
    table
        .rows()
        .map(|r| {
            let combo = (r.get("batch")?, r.get("heads")?, r.get("head_dim")?);
            Ok((combo, r.get("seq")?, r.text("heuristic")?.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::plot::png_bytes;

    const MADE_UP: &str = "impl,batch,heads,seq,head_dim,causal,median_ms,tflops
ch04_unfused,1,2,128,64,0,0.5,1.0
ch04_fused,1,2,128,64,0,0.7,1.0
ch04_flash,1,2,128,64,0,0.6,1.0
ch04_unfused,1,2,1024,64,0,oom,
ch04_fused,1,2,1024,64,0,9.0,1.0
ch04_flash,1,2,1024,64,0,3.0,1.0
ch04_unfused,2,2,128,128,0,0.9,1.0
ch04_fused,2,2,128,128,0,unsupported,
ch04_flash,2,2,128,128,0,1.2,1.0
torch_math,1,2,128,64,0,0.8,1.0
torch_math,1,2,1024,64,0,oom,oom
";

    #[test]
    fn parses_values_and_missing_points() {
        let rows = parse_timing_csv(MADE_UP).unwrap();
        assert_eq!(rows.len(), 11);
        assert_eq!(rows[3].median_ms, None);
        assert_eq!(rows[7].median_ms, None);
        assert_eq!(rows[2].median_ms, Some(0.6));
        assert_eq!(rows[6].combo(), (2, 2, 128));
        assert!(parse_timing_csv("a,b\n1,2").is_err());
        assert!(parse_timing_csv("impl,batch,heads,seq,head_dim,causal,median_ms,tflops\nx,1,2\n").is_err());
    }

    #[test]
    fn winner_is_the_fastest_that_ran() {
        let rows = parse_timing_csv(MADE_UP).unwrap();
        assert_eq!(ranked(&rows, (1, 2, 64), 128).first(), Some(&(0, 0.5)));
        // Unfused ran out of memory at N=1024: flash wins, fused is the runner-up.
        assert_eq!(ranked(&rows, (1, 2, 64), 1024), vec![(2, 3.0), (1, 9.0)]);
        let map = winner_map(&rows).unwrap();
        assert_eq!(map.cells[0][1], Some((2, Some(3.0))));
        // (2, 2, 128) was not run at N=1024: an empty cell.
        assert_eq!(map.cells[1][1], None);
    }

    #[test]
    fn figures_render_from_made_up_rows() {
        let rows = parse_timing_csv(MADE_UP).unwrap();
        assert!(png_bytes(&time_vs_n(&rows).unwrap()).is_ok());
        assert!(png_bytes(&winner_map(&rows).unwrap()).is_ok());
        let chart = dispatch_slowdown(&rows, |_, _| "flash".to_string()).unwrap();
        // Picking flash at (1,2,64), N=128 is 0.6 / 0.5 = 1.2× the best.
        assert!((chart.lines[0].points[0].1 - 1.2).abs() < 1e-12);
        assert!(png_bytes(&chart).is_ok());
        assert!(time_vs_n(&[]).is_err());
        assert!(winner_map(&[]).is_err());
    }

    #[test]
    fn parses_dispatch_picks() {
        let text = "batch,heads,seq,head_dim,causal,best,best_ms,heuristic,heuristic_ms,table_pick,table_ms
1,8,512,64,0,unfused,0.05,flash,0.08,unfused,0.05
";
        assert_eq!(parse_dispatch_picks(text).unwrap(), vec![((1, 8, 64), 512, "flash".to_string())]);
        assert!(parse_dispatch_picks("x\n").is_err());
    }
}
