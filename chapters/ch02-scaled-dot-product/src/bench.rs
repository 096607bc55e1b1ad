//! Benchmarks run by the `ch02` binary (never by tests).
//!
//! - CPU: `sdpa` against ndarray's own matrix product doing the same 4·B·H·N²·d FLOPs (the
//!   two GEMMs alone, no softmax), and against the naive loops.
//! - GPU: the kernel at the shapes of `xtask/baselines/ch02_bench_shapes.txt`, timed with CUDA
//!   events on device buffers (no copies), written as CSV rows that a PyTorch script writes
//!   for torch's MATH backend from the same file.

use crate::gpu::{SdpaBuffers, SdpaKernel};
use crate::mask::SdpaMask;
use crate::naive::sdpa_naive;
use crate::sdpa::{SdpaDims, SdpaOptions, sdpa};
use attn_support::data::randn;
use attn_support::gpu::Gpu;
use attn_support::ndarray::{Array4, s};
use attn_support::report::{TextTable, progress_bar, write_lines};
use attn_support::timing::{Timing, cpu_time, gpu_time};
use attn_support::{Error, Result};
use std::path::Path;

/// Timings of the CPU benchmark at one shape.
#[derive(Clone, Copy, Debug)]
pub struct CpuBench {
    pub dims: SdpaDims,
    pub sdpa: Timing,
    pub matmul: Timing,
    pub naive: Timing,
}

impl CpuBench {
    /// 4·B·H·N²·d (the two GEMMs; the softmax's O(N²) is not counted).
    pub fn flops(&self) -> f64 {
        self.dims.flops()
    }
    pub fn sdpa_gflops(&self) -> f64 {
        self.sdpa.rate(self.flops()) * 1e-9
    }
    pub fn matmul_gflops(&self) -> f64 {
        self.matmul.rate(self.flops()) * 1e-9
    }
    pub fn naive_gflops(&self) -> f64 {
        self.naive.rate(self.flops()) * 1e-9
    }
    /// sdpa rate / matmul rate (goal ≥ 0.5).
    pub fn vs_matmul(&self) -> f64 {
        self.matmul.median_ms / self.sdpa.median_ms
    }
    /// sdpa rate / naive rate (goal ≥ 20).
    pub fn vs_naive(&self) -> f64 {
        self.naive.median_ms / self.sdpa.median_ms
    }
    /// The two ratios from the fastest repeat of each instead of the median (less sensitive to
    /// other work on the machine).
    pub fn best_ratios(&self) -> (f64, f64) {
        (self.matmul.min_ms / self.sdpa.min_ms, self.naive.min_ms / self.sdpa.min_ms)
    }
}

fn random_qkv(batch: usize, heads: usize, n: usize, d: usize) -> [Array4<f32>; 3] {
    [randn((batch, heads, n, d), 11), randn((batch, heads, n, d), 12), randn((batch, heads, n, d), 13)]
}

// ANCHOR: bench_cpu
/// Time `sdpa`, the same GEMMs alone (per head S = Q·Kᵀ then O = S·V with ndarray's `.dot`),
/// and the naive loops at (batch, heads, N, d), unmasked. The three are timed in interleaved
/// rounds (one call of each per round, the naive loops only in the first `naive_repeats`
/// rounds), so a change in machine load affects all of them alike. `step` is called per round.
pub fn bench_cpu(
    batch: usize,
    heads: usize,
    n: usize,
    d: usize,
    repeats: usize,
    naive_repeats: usize,
    mut step: impl FnMut(usize),
) -> Result<CpuBench> {
    let [q, k, v] = random_qkv(batch, heads, n, d);
    let (mask, options) = (SdpaMask::none(), SdpaOptions::default());
    let dims = SdpaDims { batch, heads, nq: n, nk: n, head_dim: d, v_dim: d };
    let run_sdpa = || sdpa(q.view(), k.view(), v.view(), &mask);
    let run_matmul = || {
        let mut checksum = 0.0f32;
        for b in 0..batch {
            for h in 0..heads {
                let scores = q.slice(s![b, h, .., ..]).dot(&k.slice(s![b, h, .., ..]).t());
                let out = scores.dot(&v.slice(s![b, h, .., ..]));
                checksum += out[[0, 0]];
            }
        }
        checksum
    };
    let run_naive = || sdpa_naive(q.view(), k.view(), v.view(), &mask, &options);
    run_sdpa()?; // warm-up, and errors surface here rather than inside the timing
    run_matmul();
    let (mut t_sdpa, mut t_matmul, mut t_naive) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..repeats.max(naive_repeats).max(1) {
        if round < repeats {
            t_sdpa.push(cpu_time(0, 1, run_sdpa).median_ms);
            t_matmul.push(cpu_time(0, 1, run_matmul).median_ms);
        }
        if round < naive_repeats {
            t_naive.push(cpu_time(0, 1, run_naive).median_ms);
        }
        step(round);
    }
    Ok(CpuBench {
        dims,
        sdpa: Timing::from_samples(t_sdpa),
        matmul: Timing::from_samples(t_matmul),
        naive: Timing::from_samples(t_naive),
    })
}
// ANCHOR_END: bench_cpu

/// One line of the shapes file: `batch heads seq head_dim causal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchShape {
    pub batch: usize,
    pub heads: usize,
    pub seq: usize,
    pub head_dim: usize,
    pub causal: bool,
}

impl BenchShape {
    /// The sizes of this shape as an attention call: Nq = Nk = seq, dv = d.
    pub fn dims(&self) -> SdpaDims {
        SdpaDims {
            batch: self.batch,
            heads: self.heads,
            nq: self.seq,
            nk: self.seq,
            head_dim: self.head_dim,
            v_dim: self.head_dim,
        }
    }

    /// 4·B·H·N²·d, halved when causal (the convention of the FlashAttention benchmarks).
    pub fn flops(&self) -> f64 {
        let full = 4.0 * (self.batch * self.heads) as f64 * (self.seq as f64).powi(2) * self.head_dim as f64;
        if self.causal { full / 2.0 } else { full }
    }
}

/// Parse the shapes file: one shape per line, `#` starts a comment, blank lines are skipped.
pub fn parse_bench_shapes(text: &str) -> Result<Vec<BenchShape>> {
    let mut shapes = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "shapes file line {}: {why}: '{line}' (expected 'batch heads seq head_dim causal')",
                lineno + 1
            ))
        };
        let fields: Vec<usize> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("not integers"))?;
        let [batch, heads, seq, head_dim, causal] = fields[..] else {
            return Err(bad("need 5 fields"));
        };
        if causal > 1 || [batch, heads, seq, head_dim].contains(&0) {
            return Err(bad("sizes must be ≥ 1 and causal 0 or 1"));
        }
        shapes.push(BenchShape { batch, heads, seq, head_dim, causal: causal == 1 });
    }
    Ok(shapes)
}

/// Read and parse a shapes file.
pub fn read_bench_shapes(path: &Path) -> Result<Vec<BenchShape>> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    parse_bench_shapes(&text)
}

/// One measured GPU shape.
#[derive(Clone, Copy, Debug)]
pub struct GpuBenchRow {
    pub shape: BenchShape,
    pub timing: Timing,
}

/// The `impl` column of this chapter's kernel in benchmark CSVs.
pub const IMPL_NAME: &str = "ch02_sdpa";

/// The CSV header shared with the PyTorch baseline script.
pub const CSV_HEADER: &str = "impl,batch,heads,seq,head_dim,causal,median_ms,tflops";

impl GpuBenchRow {
    pub fn tflops(&self) -> f64 {
        self.timing.rate(self.shape.flops()) * 1e-12
    }

    /// The columns the binaries print a GPU benchmark in, one row per shape as it is timed
    /// (chapters 2 and 3): the shape, then its time and rate.
    pub fn table() -> TextTable {
        let columns =
            [("B", 3), ("H", 3), ("N", 6), ("d", 4), ("causal", 6), ("median ms", 10), ("TFLOP/s", 8)];
        TextTable::new(&columns).divider_before(5)
    }

    /// This row's cells of [`GpuBenchRow::table`].
    pub fn cells(&self) -> [String; 7] {
        let s = self.shape;
        [
            s.batch.to_string(),
            s.heads.to_string(),
            s.seq.to_string(),
            s.head_dim.to_string(),
            (s.causal as u8).to_string(),
            format!("{:.4}", self.timing.median_ms),
            format!("{:.2}", self.tflops()),
        ]
    }

    /// `ch02_sdpa,B,H,N,d,causal,median_ms,tflops`.
    pub fn csv(&self) -> String {
        self.csv_as(IMPL_NAME)
    }

    /// The row under [`CSV_HEADER`] with `impl` = `impl_name` (every chapter's GPU benchmark
    /// writes its rows so, and the PyTorch baseline script too).
    pub fn csv_as(&self, impl_name: &str) -> String {
        let s = self.shape;
        format!(
            "{impl_name},{},{},{},{},{},{:.6},{:.4}",
            s.batch,
            s.heads,
            s.seq,
            s.head_dim,
            s.causal as u8,
            self.timing.median_ms,
            self.tflops()
        )
    }
}

/// The GPU benchmark loop of the chapter binaries (2 and 3): time every shape with
/// `time_shape(shape, warmup, repeats)` — 5 warm-up and 20 timed launches, or 2 and 5 when
/// `quick` — print each row under [`GpuBenchRow::table`] as soon as it is measured, and write
/// them all to `csv` as rows of `impl_name` under [`CSV_HEADER`].
pub fn run_gpu_benchmark(
    shapes: &[BenchShape],
    quick: bool,
    impl_name: &str,
    csv: &Path,
    mut time_shape: impl FnMut(BenchShape, usize, usize) -> Result<GpuBenchRow>,
) -> Result<Vec<GpuBenchRow>> {
    let (warmup, repeats) = if quick { (2, 5) } else { (5, 20) };
    let bar = progress_bar(shapes.len(), "GPU shapes");
    let table = GpuBenchRow::table();
    println!("{}", table.header());
    let mut rows = Vec::new();
    for &shape in shapes {
        let row = time_shape(shape, warmup, repeats)?;
        bar.suspend(|| println!("{}", table.line(&row.cells())));
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    write_lines(csv, CSV_HEADER, rows.iter().map(|r| r.csv_as(impl_name)))?;
    Ok(rows)
}

// ANCHOR: bench_gpu
/// Time the kernel at one shape on device buffers: `warmup` untimed launches, then the
/// median of `repeats` launches timed with CUDA events.
pub fn bench_gpu_shape(
    gpu: &Gpu,
    kernel: &SdpaKernel,
    shape: BenchShape,
    warmup: usize,
    repeats: usize,
) -> Result<GpuBenchRow> {
    let [q, k, v] = random_qkv(shape.batch, shape.heads, shape.seq, shape.head_dim);
    let mask = SdpaMask { causal: shape.causal, key_padding: None };
    let mut buffers = SdpaBuffers::upload(gpu, q.view(), k.view(), v.view(), &mask, &SdpaOptions::default())?;
    let timing = gpu_time(gpu, warmup, repeats, || kernel.launch(gpu, &mut buffers))?;
    gpu.synchronize()?;
    Ok(GpuBenchRow { shape, timing })
}
// ANCHOR_END: bench_gpu

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_file_parses_and_rejects_bad_lines() {
        let shapes = parse_bench_shapes("# b h n d causal\n1 8 512 64 0\n\n8 16 1024 64 1 # big\n").unwrap();
        assert_eq!(shapes.len(), 2);
        assert!(shapes[1].causal && shapes[1].batch == 8);
        assert_eq!(shapes[0].flops(), 4.0 * 8.0 * 512.0 * 512.0 * 64.0);
        assert_eq!(shapes[1].flops(), 4.0 * 128.0 * 1024.0 * 1024.0 * 64.0 / 2.0);
        let d = shapes[1].dims();
        assert_eq!((d.batch, d.heads, d.nq, d.nk, d.head_dim, d.v_dim), (8, 16, 1024, 1024, 64, 64));
        let e = parse_bench_shapes("1 8 512 64\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("5 fields"), "{e}");
        assert!(parse_bench_shapes("1 8 512 64 2\n").is_err());
        assert!(parse_bench_shapes("1 x 512 64 0\n").is_err());
    }

    #[test]
    fn the_benchmark_loop_writes_every_row_under_the_shared_header() {
        let shapes = parse_bench_shapes("1 8 512 64 0\n8 16 1024 64 1\n").unwrap();
        let csv = std::env::temp_dir().join(format!("ch02-bench-{}/gpu.csv", std::process::id()));
        let mut asked = Vec::new();
        let rows = run_gpu_benchmark(&shapes, true, "test_kernel", &csv, |shape, warmup, repeats| {
            asked.push((warmup, repeats));
            Ok(GpuBenchRow { shape, timing: Timing::from_samples(vec![shape.seq as f64 / 512.0]) })
        })
        .unwrap();
        assert_eq!((rows.len(), asked), (2, vec![(2, 5), (2, 5)]));
        let records = attn_support::csv::read_bench_csv(&csv).unwrap();
        std::fs::remove_dir_all(csv.parent().unwrap()).ok();
        assert!(records.iter().all(|r| r.implementation == "test_kernel"));
        assert_eq!((records[1].seq, records[1].causal, records[1].median_ms), (1024, true, Some(2.0)));
    }

    #[test]
    fn gpu_rows_print_under_their_header() {
        let shape = BenchShape { batch: 8, heads: 16, seq: 16384, head_dim: 128, causal: true };
        let row = GpuBenchRow { shape, timing: Timing::from_samples(vec![12.5]) };
        let table = GpuBenchRow::table();
        assert_eq!(table.header(), "  B   H      N    d causal |  median ms  TFLOP/s");
        let line = table.line(&row.cells());
        assert_eq!(line, format!("  8  16  16384  128      1 |    12.5000 {:>8.2}", row.tflops()));
        assert_eq!(line.len(), table.header().len());
    }
}
