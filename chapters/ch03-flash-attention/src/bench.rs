//! Benchmarks run by the `ch03` binary (never by tests), all on device buffers with CUDA-event
//! timing (no copies in the timed region):
//!
//! - the kernel at the shapes of `xtask/baselines/ch03_bench_shapes.txt`, written as CSV rows
//!   in chapter 2's format (`impl` = `ch03_flash`), which the PyTorch baseline script writes
//!   for its MATH and EFFICIENT backends from the same file;
//! - time and peak device memory vs N for chapter 2's kernel and this one;
//! - one long sequence, B = 1, H = 8, N = 65536, d = 64, whose scores alone would take
//!   B·H·N²·4 bytes = 137 GB, with a few output rows checked against the f64 reference.
//!
//! **Peak memory** is measured with the driver's free-memory count (`cuMemGetInfo`, through
//! [`Gpu::memory`]): free memory after a synchronize, before the inputs are uploaded, minus free
//! memory after the kernel has finished. Neither kernel allocates anything itself, so the
//! memory held at the end of the call is its peak. A warm-up launch of both kernels comes
//! first, so the driver's one-time reservations (modules, local memory) are not counted. The
//! driver reserves memory in chunks, so the count rounds up: on the H100 of this book 32 MiB
//! for the 8 MiB of buffers at N = 1024, 544 MiB for 514 MiB at N = 65536.

use crate::gpu::FlashKernel;
use attn_support::Comparison;
use attn_support::data::randn;
use attn_support::gpu::Gpu;
use attn_support::ndarray::{Array2, Array4, s};
use attn_support::timing::{Timing, gpu_time};
use attn_support::{Result, compare};
use ch02_scaled_dot_product::bench::{BenchShape, GpuBenchRow};
use ch02_scaled_dot_product::gpu::{SdpaBuffers, SdpaKernel};
use ch02_scaled_dot_product::reference::sdpa_reference;
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, SdpaOptions};

/// The `impl` column of this kernel's CSV rows.
pub const IMPL_NAME: &str = "ch03_flash";

/// One CSV row in chapter 2's format: `impl,batch,heads,seq,head_dim,causal,median_ms,tflops`.
pub fn csv_line(impl_name: &str, row: &GpuBenchRow) -> String {
    row.csv_as(impl_name)
}

/// Seeded random Q, K, V of (batch, heads, n, d) uploaded to the device, outputs allocated.
pub fn random_buffers(
    gpu: &Gpu,
    batch: usize,
    heads: usize,
    n: usize,
    d: usize,
    causal: bool,
) -> Result<SdpaBuffers> {
    let shape = (batch, heads, n, d);
    let (q, k, v) = (randn(shape, 31), randn(shape, 32), randn(shape, 33));
    let mask = SdpaMask { causal, key_padding: None };
    SdpaBuffers::upload(gpu, q.view(), k.view(), v.view(), &mask, &SdpaOptions::default())
}

// ANCHOR: bench_gpu
/// Time the kernel at one shape on device buffers: `warmup` untimed launches, then the median
/// of `repeats` launches timed with CUDA events.
pub fn bench_gpu_shape(
    gpu: &Gpu,
    kernel: &FlashKernel,
    shape: BenchShape,
    warmup: usize,
    repeats: usize,
) -> Result<GpuBenchRow> {
    let mut buffers = random_buffers(gpu, shape.batch, shape.heads, shape.seq, shape.head_dim, shape.causal)?;
    let timing = gpu_time(gpu, warmup, repeats, || kernel.launch(gpu, &mut buffers))?;
    gpu.synchronize()?;
    Ok(GpuBenchRow { shape, timing })
}
// ANCHOR_END: bench_gpu

/// Device memory taken between [`MemoryProbe::start`] and [`MemoryProbe::used`], from the
/// driver's count of free memory.
pub struct MemoryProbe {
    free_before: usize,
}

impl MemoryProbe {
    /// Wait for the stream (so that freed buffers are returned) and read free memory.
    pub fn start(gpu: &Gpu) -> Result<MemoryProbe> {
        gpu.synchronize()?;
        Ok(MemoryProbe { free_before: gpu.memory()?.0 })
    }

    /// Bytes taken since `start` (after waiting for the stream).
    pub fn used(&self, gpu: &Gpu) -> Result<usize> {
        gpu.synchronize()?;
        Ok(self.free_before.saturating_sub(gpu.memory()?.0))
    }
}

/// The two kernels compared in the time/memory sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepKernel {
    /// Chapter 2: one block per query row, the row of Nk scores in shared memory.
    Ch02Sdpa,
    /// This chapter's FlashAttention kernel.
    Ch03Flash,
}

impl SweepKernel {
    pub fn name(self) -> &'static str {
        match self {
            SweepKernel::Ch02Sdpa => "ch02 kernel",
            SweepKernel::Ch03Flash => "ch03 FlashAttention",
        }
    }
}

/// One point of the time/memory sweep.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    pub kernel: SweepKernel,
    pub dims: SdpaDims,
    pub causal: bool,
    /// `None` when the kernel cannot run the shape (`note` says why).
    pub timing: Option<Timing>,
    /// Measured peak device memory of the call (see the module docs).
    pub peak_bytes: Option<usize>,
    /// What the buffers alone take: Q, K, V, O and lse in f32.
    pub buffer_bytes: usize,
    pub note: String,
}

impl SweepPoint {
    pub fn tflops(&self) -> Option<f64> {
        let flops = self.dims.flops() / if self.causal { 2.0 } else { 1.0 };
        self.timing.map(|t| t.rate(flops) * 1e-12)
    }
}

/// Bytes of the Q, K, V, O and lse buffers of `dims` in f32.
pub fn buffer_bytes(dims: &SdpaDims) -> usize {
    let bh = dims.batch * dims.heads;
    4 * bh
        * (dims.nq * dims.head_dim + dims.nk * (dims.head_dim + dims.v_dim) + dims.nq * dims.v_dim + dims.nq)
}

/// Bytes the materialised (Nq × Nk) f32 scores of standard attention would take: B·H·Nq·Nk·4.
pub fn score_bytes(dims: &SdpaDims) -> f64 {
    4.0 * (dims.batch * dims.heads) as f64 * dims.nq as f64 * dims.nk as f64
}

// ANCHOR: time_memory
/// Time one kernel at (batch, heads, N, d) (the median of up to `repeats` calls, fewer when
/// they would take more than `budget_ms` together) and measure the device memory the call
/// holds. A shape the kernel does not support (chapter 2's kernel keeps Nk scores in shared memory)
/// is a point without timing, with the reason in `note`.
#[allow(clippy::too_many_arguments)]
pub fn time_memory_point(
    gpu: &Gpu,
    ch02: &SdpaKernel,
    ch03: &FlashKernel,
    kernel: SweepKernel,
    (batch, heads, n, d): (usize, usize, usize, usize),
    causal: bool,
    repeats: usize,
    budget_ms: f64,
) -> Result<SweepPoint> {
    let dims = SdpaDims { batch, heads, nq: n, nk: n, head_dim: d, v_dim: d };
    let mut point = SweepPoint {
        kernel,
        dims,
        causal,
        timing: None,
        peak_bytes: None,
        buffer_bytes: buffer_bytes(&dims),
        note: String::new(),
    };
    let supported = match kernel {
        SweepKernel::Ch02Sdpa => ch02.launch_config(&dims).map(|_| ()),
        SweepKernel::Ch03Flash => ch03.launch_config(&dims).map(|_| ()),
    };
    if let Err(e) = supported {
        point.note = e.to_string();
        return Ok(point);
    }
    let probe = MemoryProbe::start(gpu)?;
    let mut buffers = random_buffers(gpu, batch, heads, n, d, causal)?;
    let mut launch = || match kernel {
        SweepKernel::Ch02Sdpa => ch02.launch(gpu, &mut buffers),
        SweepKernel::Ch03Flash => ch03.launch(gpu, &mut buffers),
    };
    launch()?; // the launch whose memory is measured, and a warm-up
    point.peak_bytes = Some(probe.used(gpu)?);
    // One timed call first: chapter 2's kernel takes seconds at the longest N, so the number
    // of repeats is cut to about `budget_ms` of kernel time (at least one: this call).
    let first = gpu_time(gpu, 0, 1, &mut launch)?;
    let affordable = (budget_ms / first.median_ms).floor() as usize;
    point.timing = Some(if affordable < 2 || repeats < 2 {
        first
    } else {
        gpu_time(gpu, 0, repeats.min(affordable), launch)?
    });
    gpu.synchronize()?;
    Ok(point)
}
// ANCHOR_END: time_memory

/// Launch both kernels once on a tiny problem, so that the driver's one-time reservations
/// are made before any memory is measured.
pub fn warm_up(gpu: &Gpu, ch02: &SdpaKernel, ch03: &FlashKernel) -> Result<()> {
    let mut buffers = random_buffers(gpu, 1, 1, 64, 64, false)?;
    ch02.launch(gpu, &mut buffers)?;
    ch03.launch(gpu, &mut buffers)?;
    gpu.synchronize()
}

/// The long run: time, peak memory and a check of a few rows against the f64 reference.
#[derive(Clone, Debug)]
pub struct LongRun {
    pub dims: SdpaDims,
    pub causal: bool,
    pub timing: Timing,
    pub peak_bytes: usize,
    pub buffer_bytes: usize,
    /// The checked rows, as (batch, head, query).
    pub rows: Vec<(usize, usize, usize)>,
    pub out_check: Comparison,
    pub lse_check: Comparison,
}

impl LongRun {
    pub fn tflops(&self) -> f64 {
        self.timing.rate(self.dims.flops() / if self.causal { 2.0 } else { 1.0 }) * 1e-12
    }
}

// ANCHOR: long_run
/// Run FlashAttention at (batch, heads, N, d), which no kernel holding the scores could: time
/// it, measure its peak memory, and compare `rows` (batch, head, query) of its output and lse
/// with the f64 reference computed on those rows alone.
#[allow(clippy::too_many_arguments)]
pub fn long_run(
    gpu: &Gpu,
    kernel: &FlashKernel,
    (batch, heads, n, d): (usize, usize, usize, usize),
    causal: bool,
    rows: &[(usize, usize, usize)],
    warmup: usize,
    repeats: usize,
) -> Result<LongRun> {
    let dims = SdpaDims { batch, heads, nq: n, nk: n, head_dim: d, v_dim: d };
    kernel.launch_config(&dims)?;
    let shape = (batch, heads, n, d);
    let (q, k, v) = (randn(shape, 41), randn(shape, 42), randn(shape, 43));
    let mask = SdpaMask { causal, key_padding: None };
    let probe = MemoryProbe::start(gpu)?;
    let mut buffers = SdpaBuffers::upload(gpu, q.view(), k.view(), v.view(), &mask, &SdpaOptions::default())?;
    kernel.launch(gpu, &mut buffers)?;
    let peak_bytes = probe.used(gpu)?;
    let (out, lse) = buffers.download(gpu)?;
    let timing = gpu_time(gpu, warmup, repeats, || kernel.launch(gpu, &mut buffers))?;
    gpu.synchronize()?;

    // The reference on one query row at a time: the row against the keys it may see (for the
    // causal mask, keys 0 ..= i + Nk − Nq), unmasked, which is the same softmax.
    let mut got_out = Array2::<f32>::zeros((rows.len(), d));
    let mut want_out = Array2::<f64>::zeros((rows.len(), d));
    let (mut got_lse, mut want_lse) = (Vec::new(), Vec::new());
    for (r, &(b, h, i)) in rows.iter().enumerate() {
        got_out.row_mut(r).assign(&out.slice(s![b, h, i, ..]));
        got_lse.push(lse[[b, h, i]]);
        let end = mask.causal_end(i, n, n);
        if end == 0 {
            want_lse.push(f64::NEG_INFINITY);
            continue;
        }
        let one =
            |a: &Array4<f32>, rows: std::ops::Range<usize>| a.slice(s![b..=b, h..=h, rows, ..]).to_owned();
        let (qi, ki, vi) = (one(&q, i..i + 1), one(&k, 0..end), one(&v, 0..end));
        let (o, l) = sdpa_reference(qi.view(), ki.view(), vi.view(), &SdpaMask::none(), None)?;
        want_out.row_mut(r).assign(&o.slice(s![0, 0, 0, ..]));
        want_lse.push(l[[0, 0, 0]]);
    }
    let lse_check = compare(
        &Array2::from_shape_vec((rows.len(), 1), got_lse).map_err(shape_err)?,
        &Array2::from_shape_vec((rows.len(), 1), want_lse).map_err(shape_err)?,
    )?;
    Ok(LongRun {
        dims,
        causal,
        timing,
        peak_bytes,
        buffer_bytes: buffer_bytes(&dims),
        rows: rows.to_vec(),
        out_check: compare(&got_out, &want_out)?,
        lse_check,
    })
}
// ANCHOR_END: long_run

fn shape_err(e: attn_support::ndarray::ShapeError) -> attn_support::Error {
    attn_support::Error::InvalidArgument(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::timing::Timing;

    #[test]
    fn csv_rows_have_the_shared_columns() {
        let shape = BenchShape { batch: 8, heads: 16, seq: 4096, head_dim: 64, causal: true };
        let row = GpuBenchRow { shape, timing: Timing::from_samples(vec![10.0]) };
        let line = csv_line(IMPL_NAME, &row);
        assert!(line.starts_with("ch03_flash,8,16,4096,64,1,10.000000,"), "{line}");
        // Read back as the book reads recorded runs: every column where the header says.
        let header = ch02_scaled_dot_product::bench::CSV_HEADER;
        let table = attn_support::csv::Table::parse(&format!("{header}\n{line}"), "csv_line").unwrap();
        let record = &attn_support::csv::bench_records(&table).unwrap()[0];
        assert_eq!((record.implementation.as_str(), record.seq, record.causal), ("ch03_flash", 4096, true));
        assert_eq!(record.median_ms, Some(10.0));
        // 4·B·H·N²·d / 2 FLOPs in 10 ms.
        let tflops = record.tflops.unwrap();
        assert!((tflops - 4.0 * 128.0 * 4096f64.powi(2) * 64.0 / 2.0 / 1e-2 / 1e12).abs() < 1e-3);
    }

    #[test]
    fn the_long_run_scores_would_take_137_gb() {
        let dims = SdpaDims { batch: 1, heads: 8, nq: 65536, nk: 65536, head_dim: 64, v_dim: 64 };
        assert_eq!(score_bytes(&dims), 137_438_953_472.0);
        // Q, K, V, O: 4 × 8 × 65536 × 64 floats, plus the lse.
        assert_eq!(buffer_bytes(&dims), 4 * (4 * 8 * 65536 * 64 + 8 * 65536));
    }
}
