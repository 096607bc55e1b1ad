//! The autotuner: time every tile shape of a [`Family`] of kernels — rung 4's mma.sync kernel
//! (rung 5 is its tuned pick), rung 7's wgmma kernel, or the TMA kernels of rungs 8 and 9 — on
//! each benchmark shape, keep the fastest, save the table as JSON, and look shapes up later.
//!
//! Unlike chapter 4's dispatcher, which needs the exact shape in its table, a lookup here takes
//! the nearest measured shape with the same head dim and mask, nearness being the distance in
//! log₂(N) and log₂(B·H): the best tile shape changes with the number of blocks per SM (B·H·N/BR
//! against 132 SMs) and with the work per block (N), both smoothly, so a neighbour is a good
//! guess. With no such neighbour the [`heuristic`] answers.

use crate::bench::{device_buffers, repeats_for};
use crate::gpu::LadderKernels;
use crate::ladder::{Rung, TUNED_SHAPES, TileShape, overlap_shapes, tma_shapes};
use attn_support::gpu::Gpu;
use attn_support::timing::gpu_time;
use attn_support::{Error, Result};
use ch02_scaled_dot_product::SdpaDims;
use ch02_scaled_dot_product::bench::BenchShape;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A kernel whose tile shape the autotuner chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// Rung 4's kernel (mma.sync, ldmatrix, cp.async) at [`TUNED_SHAPES`]: rung 5.
    MmaSync,
    /// Rung 7's kernel (wgmma with overlapped softmax) at [`overlap_shapes`].
    WgmmaOverlap,
    /// Rung 8's kernel (TMA, warp specialisation) at [`tma_shapes`].
    Tma,
    /// Rung 9's kernel (rung 8 with ping-pong scheduling) at [`tma_shapes`].
    PingPong,
}

impl Family {
    /// The candidates at head dim `d`.
    pub fn candidates(&self, d: usize) -> Vec<Rung> {
        match self {
            Family::MmaSync => TUNED_SHAPES.map(Rung::Tuned).to_vec(),
            Family::WgmmaOverlap => overlap_shapes(d).iter().map(|&t| Rung::WgmmaOverlap(t)).collect(),
            Family::Tma => tma_shapes(d).iter().map(|&t| Rung::Tma(t)).collect(),
            Family::PingPong => tma_shapes(d).iter().map(|&t| Rung::PingPong(t)).collect(),
        }
    }
}

/// One tuned shape: every candidate's median and the winner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TunedEntry {
    pub family: Family,
    pub batch_heads: usize,
    pub seq: usize,
    pub head_dim: usize,
    pub causal: bool,
    /// (candidate, median ms), in the family's order.
    pub candidates: Vec<(Rung, f64)>,
    pub best: Rung,
}

/// The autotuner's table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TileTable {
    /// The device it was measured on.
    pub device: String,
    pub entries: Vec<TunedEntry>,
}

/// The choice when nothing was measured. mma.sync: 128 query rows (8 warps: each K/V tile is
/// reused by twice the rows) with 64-key tiles, FlashAttention-2's shape for these head dims.
/// wgmma: 128 rows (two warpgroups) and the first shape of [`overlap_shapes`].
pub fn heuristic(family: Family, dims: &SdpaDims) -> Rung {
    match family {
        Family::MmaSync => Rung::Tuned(TileShape::new(128, 64)),
        Family::WgmmaOverlap => Rung::WgmmaOverlap(TileShape::new(128, 64)),
        Family::Tma => Rung::Tma(TileShape::new(128, 128)),
        Family::PingPong => Rung::PingPong(TileShape::new(128, 128)),
    }
    .min_supported(dims.head_dim)
}

impl Rung {
    /// Itself if it has an entry point at head dim `d`; else the family's first candidate there.
    fn min_supported(self, d: usize) -> Rung {
        if self.spec(d).is_ok() {
            return self;
        }
        match self {
            Rung::WgmmaOverlap(_) => Family::WgmmaOverlap.candidates(d).first().copied().unwrap_or(self),
            Rung::Tma(_) => Family::Tma.candidates(d).first().copied().unwrap_or(self),
            Rung::PingPong(_) => Family::PingPong.candidates(d).first().copied().unwrap_or(self),
            _ => self,
        }
    }
}

impl TileTable {
    /// Time every candidate of every family at every shape (warm-up and median as the benchmark
    /// does).
    pub fn measure(
        gpu: &Gpu,
        kernels: &LadderKernels,
        shapes: &[BenchShape],
        families: &[Family],
    ) -> Result<TileTable> {
        let mut entries = Vec::new();
        for shape in shapes {
            let (warmup, repeats) = repeats_for(shape);
            let mut buffers = device_buffers(gpu, shape)?;
            for &family in families {
                let mut candidates = Vec::new();
                for rung in family.candidates(shape.head_dim) {
                    let t = gpu_time(gpu, warmup, repeats, || kernels.launch(gpu, rung, &mut buffers))?;
                    candidates.push((rung, t.median_ms));
                }
                let Some(best) = candidates.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|c| c.0) else {
                    continue;
                };
                entries.push(TunedEntry {
                    family,
                    batch_heads: shape.batch * shape.heads,
                    seq: shape.seq,
                    head_dim: shape.head_dim,
                    causal: shape.causal,
                    candidates,
                    best,
                });
            }
        }
        Ok(TileTable { device: gpu.name().to_string(), entries })
    }

    /// The family's kernel for `dims`: the nearest entry's winner (same family, d and mask),
    /// else the heuristic.
    pub fn pick(&self, family: Family, dims: &SdpaDims, causal: bool) -> Rung {
        let log = |x: usize| (x.max(1) as f64).log2();
        let distance = |e: &TunedEntry| {
            (log(e.seq) - log(dims.nq.max(dims.nk))).abs()
                + (log(e.batch_heads) - log(dims.batch * dims.heads)).abs()
        };
        self.entries
            .iter()
            .filter(|e| e.family == family && e.head_dim == dims.head_dim && e.causal == causal)
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
            .map(|e| e.best)
            .unwrap_or_else(|| heuristic(family, dims))
    }

    /// Write the table as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        attn_support::report::write_lines(path, &text, [])
    }

    /// Read a table written by [`TileTable::save`]; a winner outside its family's candidates is
    /// an error.
    pub fn load(path: &Path) -> Result<TileTable> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        let table: TileTable = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidArgument(format!("{}: not a tile table: {e}", path.display())))?;
        if let Some(e) = table.entries.iter().find(|e| !e.family.candidates(e.head_dim).contains(&e.best)) {
            return Err(Error::InvalidArgument(format!(
                "{}: {} is not a candidate of {:?} at d = {}",
                path.display(),
                e.best.name(),
                e.family,
                e.head_dim
            )));
        }
        Ok(table)
    }
}
