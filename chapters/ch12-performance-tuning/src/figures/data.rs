//! Reading the recorded files of a chapter-12 run: benchmark CSVs (ladder and PyTorch), the
//! CUDA-graph CSV, the roofline points and ceilings, and the autotuner's candidates.

use crate::ceilings::Ceilings;
use crate::ladder::{Rung, TileShape};
use crate::roofline::KernelPoint;
use crate::streams::StreamTiming;
use crate::tuning::{Family, TileTable, TunedEntry};
use attn_support::csv::{Row, Table};
use attn_support::{Error, Result};
use ch04_attention_backends::figures::{parse_timing_csv, read_timing_csv};
use std::collections::BTreeMap;
use std::path::Path;

/// One row of a benchmark CSV (chapter 2's columns `impl,batch,heads,seq,head_dim,causal,
/// median_ms,tflops`), as the `ch12` binary and the PyTorch baseline script write them: chapter
/// 4's timing row, whose `tflops()` uses chapter 2's FLOP count.
pub use ch04_attention_backends::figures::TimingRow as BenchRow;

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

/// Parse a benchmark CSV (chapter 4's parser: same columns, `oom`/`unsupported` become `None`).
pub fn parse_bench_csv(text: &str) -> Result<Vec<BenchRow>> {
    parse_timing_csv(text)
}

/// Read and parse a benchmark CSV.
pub fn read_bench_csv(path: &Path) -> Result<Vec<BenchRow>> {
    read_timing_csv(path)
}

/// One row of `ch12_graphs.csv`: per-launch time of a kernel at sequence length `seq`,
/// launched one by one and replayed from a CUDA graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphRow {
    pub seq: usize,
    pub launches: usize,
    pub direct_us_per_launch: f64,
    pub graph_us_per_launch: f64,
}

/// The header of `ch12_graphs.csv`.
pub const GRAPHS_CSV_HEADER: &str = "seq,launches,direct_us_per_launch,graph_us_per_launch";
/// The header of `ch12_streams.csv`.
pub const STREAMS_CSV_HEADER: &str =
    "entry,heads,seq,blocks,calls,streams,serial_ms,concurrent_ms,enqueue_ms,graph_ms";

/// One row of `ch12_streams.csv`: `calls` independent launches of `entry`, each of `blocks`
/// blocks, on one stream and spread over `streams` streams.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamRow {
    pub entry: String,
    pub heads: usize,
    pub seq: usize,
    pub blocks: usize,
    /// The calls, the streams and the times measured.
    pub timing: StreamTiming,
}

/// Parse `ch12_streams.csv`.
pub fn parse_streams_csv(text: &str) -> Result<Vec<StreamRow>> {
    rows_of(&Table::parse(text, "streams CSV")?, STREAMS_CSV_HEADER, stream_row)
}

fn stream_row(r: Row) -> Result<StreamRow> {
    Ok(StreamRow {
        entry: r.text("entry")?.to_string(),
        heads: r.get("heads")?,
        seq: r.get("seq")?,
        blocks: r.get("blocks")?,
        timing: StreamTiming {
            calls: r.get("calls")?,
            streams: r.get("streams")?,
            serial_ms: r.get("serial_ms")?,
            concurrent_ms: r.get("concurrent_ms")?,
            enqueue_ms: r.get("enqueue_ms")?,
            graph_ms: r.get("graph_ms")?,
        },
    })
}

/// Read `ch12_streams.csv`.
pub fn read_streams_csv(path: &Path) -> Result<Vec<StreamRow>> {
    rows_of(&Table::read(path)?, STREAMS_CSV_HEADER, stream_row)
}

/// The header of `ch12_roofline.csv`.
pub const ROOFLINE_CSV_HEADER: &str = "label,group,flops,bytes,seconds";

/// The rows of `table`, whose header must begin with the columns of `header`, each made by `row`.
fn rows_of<T>(table: &Table, header: &str, row: impl Fn(Row) -> Result<T>) -> Result<Vec<T>> {
    table.expect_columns(&header.split(',').collect::<Vec<_>>())?;
    table.rows().map(row).collect()
}

/// Parse `ch12_graphs.csv`.
pub fn parse_graphs_csv(text: &str) -> Result<Vec<GraphRow>> {
    rows_of(&Table::parse(text, "graphs CSV")?, GRAPHS_CSV_HEADER, graph_row)
}

fn graph_row(r: Row) -> Result<GraphRow> {
    Ok(GraphRow {
        seq: r.get("seq")?,
        launches: r.get("launches")?,
        direct_us_per_launch: r.get("direct_us_per_launch")?,
        graph_us_per_launch: r.get("graph_us_per_launch")?,
    })
}

/// Read `ch12_graphs.csv`.
pub fn read_graphs_csv(path: &Path) -> Result<Vec<GraphRow>> {
    rows_of(&Table::read(path)?, GRAPHS_CSV_HEADER, graph_row)
}

/// Parse `ch12_roofline.csv` into checked points. The label is everything before the last four
/// fields, so a label may hold a comma.
pub fn parse_roofline_csv(text: &str) -> Result<Vec<KernelPoint>> {
    rows_of(&Table::parse_labelled(text, "roofline CSV")?, ROOFLINE_CSV_HEADER, |r| {
        KernelPoint::new(
            r.text("label")?,
            r.text("group")?,
            r.get("flops")?,
            r.get("bytes")?,
            r.get("seconds")?,
        )
    })
}

/// Read `ch12_ceilings.json` (the serde form of [`Ceilings`]).
pub fn read_ceilings(path: &Path) -> Result<Ceilings> {
    serde_json::from_str(&read_text(path)?)
        .map_err(|e| Error::InvalidArgument(format!("{}: not a ceilings file: {e}", path.display())))
}

/// `r5_tuned_128x64` → rung 5 at 128×64; `r7_wgmma_overlap_192x64` → rung 7 at 192×64; any
/// other name (including the tuned picks `r5_tuned`, `r7_wgmma_overlap`) → `None`.
pub fn candidate_rung(impl_name: &str) -> Option<Rung> {
    let (family, shape): (fn(TileShape) -> Rung, &str) =
        if let Some(rest) = impl_name.strip_prefix("r5_tuned_") {
            (Rung::Tuned, rest)
        } else {
            (Rung::WgmmaOverlap, impl_name.strip_prefix("r7_wgmma_overlap_")?)
        };
    let (rows, keys) = shape.split_once('x')?;
    Some(family(TileShape::new(rows.parse().ok()?, keys.parse().ok()?)))
}

/// The autotuner's table rebuilt from the candidate rows of a ladder CSV (the `ch12` binary
/// writes every candidate's median as a row named by [`Rung::name`]): for files whose JSON
/// table is missing or in an older format.
pub fn tile_table_from_rows(rows: &[BenchRow]) -> TileTable {
    // (family: 0 = mma.sync, 1 = wgmma, B·H, N, d, causal) → candidates, in file order.
    type Key = (u8, usize, usize, usize, bool);
    let mut groups: BTreeMap<Key, Vec<(Rung, f64)>> = BTreeMap::new();
    for r in rows {
        let (Some(rung), Some(ms)) = (candidate_rung(&r.impl_name), r.median_ms) else { continue };
        let family = if matches!(rung, Rung::Tuned(_)) { 0 } else { 1 };
        let key = (family, r.batch * r.heads, r.seq, r.head_dim, r.causal);
        groups.entry(key).or_default().push((rung, ms));
    }
    let entries = groups
        .into_iter()
        .filter_map(|((family, batch_heads, seq, head_dim, causal), candidates)| {
            let best = candidates.iter().min_by(|a, b| a.1.total_cmp(&b.1))?.0;
            let family = if family == 0 { Family::MmaSync } else { Family::WgmmaOverlap };
            Some(TunedEntry { family, batch_heads, seq, head_dim, causal, candidates, best })
        })
        .collect();
    TileTable { device: "rebuilt from the benchmark CSV".into(), entries }
}
