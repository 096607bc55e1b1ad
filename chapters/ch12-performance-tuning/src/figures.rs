//! The chapter's figures, drawn from the files a GPU run records (nothing here needs a GPU):
//!
//! - `ch12_ladder`: TFLOP/s per rung at one shape, PyTorch's bf16 backends as lines
//!   ([`LadderFigure`]);
//! - `ch12_tflops_vs_n`: the best rungs against PyTorch as N grows ([`tflops_vs_n_panels`]);
//! - `ch12_graphs`: per-launch time with and without CUDA graphs ([`graphs_figure`]);
//! - `ch12_streams`: independent calls on k streams against one stream ([`streams_figure`]);
//! - `ch12_roofline`: every kernel of the book under the measured ceilings, placed by the DRAM
//!   bytes Nsight Compute measured when the run has them ([`roofline_measured_from_csv`]), else
//!   by modelled bytes ([`roofline_from_csv`]);
//! - `ch12_autotune`: each tile shape's speed relative to the autotuner's pick
//!   ([`autotune_figure`]).
//!
//! [`draw_all`] draws each figure whose input files exist in a results folder and says on
//! stdout which it skipped and why, so a partial run (or the CPU-only reader) still gets the
//! rest.

mod bars;
mod charts;
mod data;
mod legend;

pub use bars::{LADDER_IMPLS, LadderFigure, LadderPanel, TORCH_IMPLS, tflops_at};
pub use ch04_attention_backends::figures::PanelGrid;
pub use charts::{
    SWEEP_BATCH_HEADS, SWEEP_IMPLS, SweepFigure, autotune_figure, graphs_figure, roofline_from_csv,
    roofline_measured_from_csv, streams_figure, tflops_vs_n_figure, tflops_vs_n_panels,
};
pub use data::{
    BenchRow, GRAPHS_CSV_HEADER, GraphRow, ROOFLINE_CSV_HEADER, STREAMS_CSV_HEADER, StreamRow,
    candidate_rung, parse_bench_csv, parse_graphs_csv, parse_roofline_csv, parse_streams_csv, read_bench_csv,
    read_ceilings, read_graphs_csv, read_streams_csv, tile_table_from_rows,
};
pub use legend::{LegendEntry, Swatch};

use crate::roofline::measured::MEASURED_CSV_FILE;
use crate::tuning::TileTable;
use attn_support::Result;
use attn_support::plot::save;
use std::path::{Path, PathBuf};

/// The benchmark CSVs of a run: the ladder's, then PyTorch's.
pub const BENCH_FILES: [&str; 4] =
    ["ch12_ladder.csv", "torch_flash_ch12.csv", "torch_efficient_ch12.csv", "torch_cudnn_ch12.csv"];
/// The shape of the ladder figure: the main series' middle length at the larger head dim.
pub const LADDER_SHAPE: (usize, usize, usize, usize) = (8, 16, 4096, 128);

/// The rows of every benchmark CSV of [`BENCH_FILES`] present in `dir`, and the names of
/// those that were missing.
pub fn read_bench_run(dir: &Path) -> Result<(Vec<BenchRow>, Vec<&'static str>)> {
    let (mut rows, mut missing) = (Vec::new(), Vec::new());
    for name in BENCH_FILES {
        let path = dir.join(name);
        if path.is_file() {
            rows.extend(read_bench_csv(&path)?);
        } else {
            missing.push(name);
        }
    }
    Ok((rows, missing))
}

/// [`LADDER_SHAPE`] if some rung ran there, else the shape where most rungs ran.
pub fn ladder_shape(rows: &[BenchRow]) -> Option<(usize, usize, usize, usize)> {
    let rung_rows =
        rows.iter().filter(|r| LADDER_IMPLS.iter().any(|l| l.0 == r.impl_name) && r.tflops().is_some());
    let shapes: Vec<_> = rung_rows.map(|r| (r.batch, r.heads, r.seq, r.head_dim)).collect();
    if shapes.contains(&LADDER_SHAPE) {
        return Some(LADDER_SHAPE);
    }
    shapes.iter().copied().max_by_key(|s| (shapes.iter().filter(|t| *t == s).count(), s.2, s.3))
}

fn skip(name: &str, why: impl std::fmt::Display) {
    println!("figure {name}: skipped ({why})");
}

/// Draw every figure whose inputs are in `results_dir` into `out_dir` (PNG and SVG each);
/// returns the files written. A missing input skips its figure with a note on stdout; an input
/// that exists but cannot be read is an error, except an autotune table in an older format,
/// which is rebuilt from the candidate rows of the ladder CSV instead.
pub fn draw_all(results_dir: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let (rows, missing) = read_bench_run(results_dir)?;
    let has_ladder = !missing.contains(&BENCH_FILES[0]);
    for name in &missing {
        println!("note: {} has no {name}", results_dir.display());
    }

    match (has_ladder, ladder_shape(&rows)) {
        (true, Some(shape)) => {
            written.extend(save(&LadderFigure::from_rows(&rows, shape)?, out_dir, "ch12_ladder")?)
        }
        (true, None) => skip("ch12_ladder", "no rung has a time in ch12_ladder.csv"),
        (false, _) => skip("ch12_ladder", "no ch12_ladder.csv"),
    }
    match tflops_vs_n_panels(&rows) {
        Ok(grid) if has_ladder => written.extend(save(&grid, out_dir, "ch12_tflops_vs_n")?),
        Ok(_) => skip("ch12_tflops_vs_n", "no ch12_ladder.csv"),
        Err(e) => skip("ch12_tflops_vs_n", e),
    }

    let graphs = results_dir.join("ch12_graphs.csv");
    if graphs.is_file() {
        written.extend(save(&graphs_figure(&read_graphs_csv(&graphs)?), out_dir, "ch12_graphs")?);
    } else {
        skip("ch12_graphs", "no ch12_graphs.csv");
    }
    let streams = results_dir.join("ch12_streams.csv");
    if streams.is_file() {
        written.extend(save(&streams_figure(&read_streams_csv(&streams)?), out_dir, "ch12_streams")?);
    } else {
        skip("ch12_streams", "no ch12_streams.csv");
    }

    let (points, ceilings) = (results_dir.join("ch12_roofline.csv"), results_dir.join("ch12_ceilings.json"));
    match (points.is_file(), ceilings.is_file()) {
        (true, true) => {
            let ceilings = read_ceilings(&ceilings)?;
            let measured = results_dir.join(MEASURED_CSV_FILE);
            // Measured DRAM bytes when the run profiled the kernels; else, saying so, the
            // modelled bytes (and the x axis says which it counts).
            let figure = if measured.is_file() {
                roofline_measured_from_csv(&points, &measured, &ceilings).or_else(|e| {
                    println!("figure ch12_roofline: modelled bytes, the measured ones are unusable: {e}");
                    roofline_from_csv(&points, &ceilings)
                })?
            } else {
                println!(
                    "figure ch12_roofline: modelled bytes (no {MEASURED_CSV_FILE}: no Nsight Compute run)"
                );
                roofline_from_csv(&points, &ceilings)?
            };
            written.extend(save(&figure, out_dir, "ch12_roofline")?);
        }
        (false, _) => skip("ch12_roofline", "no ch12_roofline.csv"),
        (true, false) => skip("ch12_roofline", "no ch12_ceilings.json"),
    }

    let table_path = results_dir.join("ch12_tile_table.json");
    let table = match TileTable::load(&table_path) {
        Ok(table) => Some(table),
        Err(e) if has_ladder => {
            let why = if table_path.is_file() { format!("unreadable: {e}") } else { "missing".into() };
            println!("note: ch12_tile_table.json {why}; using the candidate rows of ch12_ladder.csv");
            Some(tile_table_from_rows(&rows)).filter(|t| !t.entries.is_empty())
        }
        Err(_) => None,
    };
    match table.map(|t| autotune_figure(&t)) {
        Some(Ok(figure)) => written.extend(save(&figure, out_dir, "ch12_autotune")?),
        Some(Err(e)) => skip("ch12_autotune", e),
        None => skip("ch12_autotune", "no tile table and no candidate rows"),
    }
    Ok(written)
}
