//! The autotuner of rung 5: time rung 4's kernel at every tile shape of [`TUNED_SHAPES`] on
//! each benchmark shape, keep the fastest, save the table as JSON, and look shapes up later.
//!
//! Unlike chapter 4's dispatcher, which needs the exact shape in its table, a lookup here takes
//! the nearest measured shape with the same head dim and mask, nearness being the distance in
//! log₂(N) and log₂(B·H): the best tile shape changes with the number of blocks per SM (B·H·N/BR
//! against 132 SMs) and with the work per block (N), both smoothly, so a neighbour is a good
//! guess. With no such neighbour the [`heuristic`] answers.

use crate::bench::{device_buffers, repeats_for};
use crate::gpu::LadderKernels;
use crate::ladder::{Rung, TUNED_SHAPES, TileShape};
use attn_support::gpu::Gpu;
use attn_support::timing::gpu_time;
use attn_support::{Error, Result};
use ch02_scaled_dot_product::SdpaDims;
use ch02_scaled_dot_product::bench::BenchShape;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One tuned shape: every candidate's median and the winner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TunedEntry {
    pub batch_heads: usize,
    pub seq: usize,
    pub head_dim: usize,
    pub causal: bool,
    /// (tile shape, median ms) per candidate, in [`TUNED_SHAPES`] order.
    pub candidates: Vec<(TileShape, f64)>,
    pub best: TileShape,
}

/// The autotuner's table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TileTable {
    /// The device it was measured on.
    pub device: String,
    pub entries: Vec<TunedEntry>,
}

/// The tile shape when nothing was measured: 128 query rows (8 warps: each K/V tile is reused by
/// twice the rows) with 64-key tiles, the shape FlashAttention-2 uses for these head dims.
pub fn heuristic(_dims: &SdpaDims, _causal: bool) -> TileShape {
    TileShape::new(128, 64)
}

impl TileTable {
    /// Time every candidate at every shape (warm-up and median as the benchmark does).
    pub fn measure(gpu: &Gpu, kernels: &LadderKernels, shapes: &[BenchShape]) -> Result<TileTable> {
        let mut entries = Vec::new();
        for shape in shapes {
            let (warmup, repeats) = repeats_for(shape);
            let mut buffers = device_buffers(gpu, shape)?;
            let mut candidates = Vec::new();
            for tiles in TUNED_SHAPES {
                let t =
                    gpu_time(gpu, warmup, repeats, || kernels.launch(gpu, Rung::Tuned(tiles), &mut buffers))?;
                candidates.push((tiles, t.median_ms));
            }
            let best =
                candidates.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|c| c.0).unwrap_or(TUNED_SHAPES[0]);
            entries.push(TunedEntry {
                batch_heads: shape.batch * shape.heads,
                seq: shape.seq,
                head_dim: shape.head_dim,
                causal: shape.causal,
                candidates,
                best,
            });
        }
        Ok(TileTable { device: gpu.name().to_string(), entries })
    }

    /// The tile shape for `dims`: the nearest entry's winner (same d and mask), else the heuristic.
    pub fn pick(&self, dims: &SdpaDims, causal: bool) -> TileShape {
        let log = |x: usize| (x.max(1) as f64).log2();
        let distance = |e: &TunedEntry| {
            (log(e.seq) - log(dims.nq.max(dims.nk))).abs()
                + (log(e.batch_heads) - log(dims.batch * dims.heads)).abs()
        };
        self.entries
            .iter()
            .filter(|e| e.head_dim == dims.head_dim && e.causal == causal)
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
            .map(|e| e.best)
            .unwrap_or_else(|| heuristic(dims, causal))
    }

    /// Write the table as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        attn_support::report::write_lines(path, &text, [])
    }

    /// Read a table written by [`TileTable::save`]; a shape outside the tuner's space is an error.
    pub fn load(path: &Path) -> Result<TileTable> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        let table: TileTable = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidArgument(format!("{}: not a tile table: {e}", path.display())))?;
        if let Some(e) = table.entries.iter().find(|e| !TUNED_SHAPES.contains(&e.best)) {
            return Err(Error::InvalidArgument(format!(
                "{}: tile shape {} is not in the tuner's space",
                path.display(),
                e.best
            )));
        }
        Ok(table)
    }
}
