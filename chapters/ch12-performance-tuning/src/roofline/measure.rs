//! Every kernel of the book timed in one run, each turned into a [`KernelPoint`] with its byte
//! model, so that the roofline shows them against ceilings measured on the same machine.
//!
//! The shapes: chapter 1's kernels are single-head (B = H = 1, N = 4096, d = 64); chapter 2's
//! kernel runs one block per query row, B = 1, H = 16, N = 4096, d = 64; chapters 3 and 4 run
//! B = 8, H = 16, N = 4096, d = 64 in f32; the ladder's bf16 rungs B = 8, H = 16, N = 4096,
//! d = 128. All non-causal. Inputs are seeded random values; every time is the median of CUDA
//! event timings after warm-up launches.
//!
//! Each label's calls are bracketed by two empty marker kernels (`LabelMarkers`), launched
//! outside the timed region, so that a profiler's list of launches can be cut into labels: the
//! GPU run measures every point's DRAM bytes this way ([`super::measured`]).

use super::KernelPoint;
use super::models::{
    attention_flops, ch01_naive_bytes, ch01_naive_flops, ch01_three_kernels_bytes, ch02_sdpa_bytes,
    ch03_flash_bytes, ch04_unfused_bytes, flash_bytes,
};
use crate::bench::{device_buffers, f32_copy};
use crate::gpu::LadderKernels;
use crate::ladder::Rung;
use attn_support::Result;
use attn_support::cudarc::driver::CudaFunction;
use attn_support::data::randn;
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, launch_config};
use attn_support::timing::{Timing, gpu_time};
use ch01_attention_basics::gpu::DeviceAttention;
use ch02_scaled_dot_product::SdpaDims;
use ch02_scaled_dot_product::bench::BenchShape;
use ch02_scaled_dot_product::gpu::SdpaKernel;
use ch03_flash_attention::gpu::FlashKernel;
use ch04_attention_backends::unfused::UnfusedAttention;

/// Warm-up and timed launches per kernel.
const WARMUP: usize = 2;
const REPEATS: usize = 7;

/// Two empty kernels that mark, in a profiler's list of launches, where the calls of one
/// roofline label begin and end. Their grid carries the label's index (x = index + 1) and its
/// number of calls (y), which a profiler records for every launch (ncu's "Grid Size"), so the
/// launches in between can be attributed without any profiler API. The source is inline rather
/// than in kernels/: it computes nothing and belongs to this measurement alone.
const MARKER_SOURCE: KernelSource = KernelSource {
    file: "ch12_roofline_markers.cu",
    code: "extern \"C\" __global__ void roofline_label_begin() {}\n\
           extern \"C\" __global__ void roofline_label_end() {}\n",
};

/// Threads per marker block: one warp, the least a launch can usefully have.
const MARKER_THREADS: usize = 32;

/// The marker kernels, loaded once per measurement.
struct LabelMarkers {
    begin: CudaFunction,
    end: CudaFunction,
}

impl LabelMarkers {
    fn load(gpu: &Gpu) -> Result<LabelMarkers> {
        Ok(LabelMarkers {
            begin: gpu.function(&MARKER_SOURCE, "roofline_label_begin")?,
            end: gpu.function(&MARKER_SOURCE, "roofline_label_end")?,
        })
    }

    fn launch(gpu: &Gpu, function: &CudaFunction, index: usize, calls: usize) -> Result<()> {
        let cfg = launch_config((index + 1, calls, 1), MARKER_THREADS, 0)?;
        // SAFETY: the marker kernels take no arguments and touch no memory.
        unsafe { gpu.stream.launch_builder(function).launch(cfg) }
            .ctx("launching a roofline marker")
            .map(|_| ())
    }

    /// [`gpu_time`] of `f` (WARMUP + REPEATS calls), between the markers of label `index`.
    fn time(&self, gpu: &Gpu, index: usize, f: impl FnMut() -> Result<()>) -> Result<Timing> {
        let calls = WARMUP + REPEATS.max(1);
        LabelMarkers::launch(gpu, &self.begin, index, calls)?;
        let timing = gpu_time(gpu, WARMUP, REPEATS, f)?;
        LabelMarkers::launch(gpu, &self.end, index, calls)?;
        Ok(timing)
    }
}

fn seconds(ms: f64) -> f64 {
    ms * 1e-3
}

/// Time the book's kernels; `rungs` are the ladder rungs to include (each at its spec's tiles).
pub fn measure_book_kernels(gpu: &Gpu, kernels: &LadderKernels, rungs: &[Rung]) -> Result<Vec<KernelPoint>> {
    let mut points = Vec::new();
    let markers = LabelMarkers::load(gpu)?;

    // Chapter 1: one head, f32.
    let n = 4096;
    let (q, k, v) = (randn((n, 64), 1), randn((n, 64), 2), randn((n, 64), 3));
    let mut ch01 = DeviceAttention::new(gpu, q.view(), k.view(), v.view())?;
    let one_head = SdpaDims { batch: 1, heads: 1, nq: n, nk: n, head_dim: 64, v_dim: 64 };
    let t = markers.time(gpu, points.len(), || ch01.launch_naive(gpu))?;
    let naive_flops = ch01_naive_flops(&one_head);
    points.push(KernelPoint::new(
        "ch01 naive",
        "ch01–04 (f32)",
        naive_flops,
        ch01_naive_bytes(&one_head),
        seconds(t.median_ms),
    )?);
    let t = markers.time(gpu, points.len(), || ch01.launch_three_kernels(gpu))?;
    let flops = attention_flops(&one_head, false);
    points.push(KernelPoint::new(
        "ch01 three kernels",
        "ch01–04 (f32)",
        flops,
        ch01_three_kernels_bytes(&one_head),
        seconds(t.median_ms),
    )?);

    // Chapter 2: one block per query row, B = 1, H = 16.
    let shape2 = BenchShape { batch: 1, heads: 16, seq: 4096, head_dim: 64, causal: false };
    let b16 = device_buffers(gpu, &shape2)?;
    let mut f32_buffers = f32_copy(gpu, &b16)?;
    let sdpa = SdpaKernel::load(gpu)?;
    let t = markers.time(gpu, points.len(), || sdpa.launch(gpu, &mut f32_buffers))?;
    let dims2 = shape2.dims();
    points.push(KernelPoint::new(
        "ch02 sdpa",
        "ch01–04 (f32)",
        attention_flops(&dims2, false),
        ch02_sdpa_bytes(&dims2, false),
        seconds(t.median_ms),
    )?);
    drop((b16, f32_buffers));

    // Chapters 3 and 4: B = 8, H = 16, f32.
    let shape34 = BenchShape { batch: 8, heads: 16, seq: 4096, head_dim: 64, causal: false };
    let dims34 = shape34.dims();
    let b16 = device_buffers(gpu, &shape34)?;
    let mut f32_buffers = f32_copy(gpu, &b16)?;
    drop(b16);
    let flash = FlashKernel::load(gpu)?;
    let t = markers.time(gpu, points.len(), || flash.launch(gpu, &mut f32_buffers))?;
    let flops34 = attention_flops(&dims34, false);
    let bytes = ch03_flash_bytes(&dims34, false)?;
    points.push(KernelPoint::new("ch03 flash f32", "ch01–04 (f32)", flops34, bytes, seconds(t.median_ms))?);
    let unfused = UnfusedAttention::load(gpu)?;
    unfused.check(gpu, &dims34, true)?;
    let mut scores = gpu.zeros::<f32>(dims34.batch * dims34.heads * dims34.nq * dims34.nk)?;
    let t = markers.time(gpu, points.len(), || unfused.launch(gpu, &mut f32_buffers, &mut scores))?;
    let bytes = ch04_unfused_bytes(&dims34);
    points.push(KernelPoint::new("ch04 unfused", "ch01–04 (f32)", flops34, bytes, seconds(t.median_ms))?);
    drop((f32_buffers, scores));

    // The ladder: bf16, d = 128.
    let shape12 = BenchShape { batch: 8, heads: 16, seq: 4096, head_dim: 128, causal: false };
    let dims12 = shape12.dims();
    let mut buffers = device_buffers(gpu, &shape12)?;
    for &rung in rungs {
        let spec = rung.spec(128)?;
        let t = markers.time(gpu, points.len(), || kernels.launch(gpu, rung, &mut buffers))?;
        let bytes = flash_bytes(&dims12, spec.tiles.block_rows, 2, false)?;
        let label = rung.name();
        let label = label.split('_').next().unwrap_or(&label).to_string();
        points.push(KernelPoint::new(
            label,
            "ch12 ladder (bf16)",
            attention_flops(&dims12, false),
            bytes,
            seconds(t.median_ms),
        )?);
    }
    gpu.synchronize()?;
    Ok(points)
}

/// One CSV line per point: `label,group,flops,bytes,seconds`.
pub fn points_csv(points: &[KernelPoint]) -> Vec<String> {
    points
        .iter()
        .map(|p| format!("{},{},{:.6e},{:.6e},{:.6e}", p.label, p.group, p.flops, p.bytes, p.seconds))
        .collect()
}

/// The header of [`points_csv`].
pub const POINTS_CSV_HEADER: &str = "label,group,flops,bytes,seconds";
