//! The benchmark of the `ch07` binary (`--bench-decode`): decode attention over bf16, INT8,
//! FP8 and NVFP4 caches, against the device's copy bandwidth measured in the same run.
//!
//! Decoding reads the cache once per generated token, so its ceiling is the memory bandwidth:
//! `gbps` is the KV bytes read (codes and scales of the tokens inside the lengths,
//! [`CacheElement::kv_bytes_per_token`]) over the median time, and `copy_fraction` that over the
//! bandwidth of a device-to-device copy (`cuMemcpyAsync`, bytes read + written, as chapters 5 and
//! 6 count it) of the bf16 cache's size at batch 16 × 16 k. A quantised cache of b bytes per
//! element can at best be 2/b times faster than bf16 at the same context: 2× for INT8 and FP8
//! (a little less with their scales), 3.6× for NVFP4.
//!
//! Shapes: Llama-3-8B's attention (32 query heads over 8 KV heads, d = 128) and SmolLM2-135M's
//! (9 over 3, d = 64); long contexts with batch × context = 256 k tokens (16 × 16 k, 4 × 64 k,
//! 1 × 256 k) and the context sweep 1 k … 64 k at batch 16. Every sequence of a point has the
//! full context. One cache per model and element type of 16 × 64 k slots (4 GiB of bf16 K and V
//! for Llama) serves every point, read as `(batch, capacity)` with `batch · capacity` ≤ that:
//! quantised once on the host from a 4096-token random block (chapter 7's quant module) and
//! tiled, since the time does not depend on the values. Small points (SmolLM2's short contexts
//! in NVFP4: a few MB) fit in the H100's 50 MB L2 and measure it rather than HBM.
//! Timing: CUDA events, `warmup` untimed launches ([`WARMUP`] by default), the median of `repeats`;
//! each timing holds `calls` decode steps back to back ([`DecodeBenchOptions`]).

use super::cache::{CacheDims, CacheElement, DEFAULT_KEY_GROUP, quantize_cache};
use super::device::{DecodeWorkspace, DeviceKvCache, DeviceLengths};
use super::launch::{DecodeAttention, DecodeKernel};
use super::plan::WavePlan;
use attn_support::Result;
use attn_support::data::randn;
use attn_support::error::DriverContext;
use attn_support::gpu::Gpu;
use attn_support::plot::{Chart, Line, Scale};
use attn_support::timing::{Timing, gpu_time_per_call};

/// Header of the benchmark CSV (`xtask/baselines/torch_decode.py` writes the same columns):
/// `kv_bytes` the K and V bytes a decode step reads, `gbps` those over the median time,
/// `copy_fraction` that over the copy's GB/s, `splits` the split-K plan (empty for PyTorch).
pub const BENCH_CSV_HEADER: &str =
    "impl,dtype,batch,q_heads,kv_heads,context,head_dim,median_ms,kv_bytes,gbps,copy_fraction,splits";

/// Warm-up launches before timing.
pub const WARMUP: usize = 3;
/// Decode steps between one pair of events by default: back to back, as a decoder issues them
/// (one step timed from an idle stream also counts the host's launch of its kernels).
pub const CALLS_PER_TIMING: usize = 10;

/// How the benchmark runs: untimed and timed launches, the decode steps each timing holds
/// back to back ([`gpu_time_per_call`]), the INT8 key group and the longest chunk of a split.
#[derive(Clone, Copy, Debug)]
pub struct DecodeBenchOptions {
    pub key_group: usize,
    pub warmup: usize,
    pub repeats: usize,
    pub calls: usize,
    /// The longest chunk a split may take (default: see [`DecodeAttention::set_max_chunk`]).
    pub max_chunk: Option<usize>,
    /// The split plan's waves, when not one whole wave ([`DecodeAttention::set_wave_plan`]).
    pub wave_plan: Option<WavePlan>,
    /// Launch each kernel after the one before it in stream order instead of as its
    /// programmatic dependent ([`DecodeAttention::set_dependent_launch`]).
    pub serial_launch: bool,
}

/// Tokens of the block quantised on the host and tiled into the benchmark's caches.
const TEMPLATE_TOKENS: usize = 4096;
/// The largest batch and context of the sweep: the slots of each benchmark cache.
const CACHE_BATCH: usize = 16;
const CACHE_CONTEXT: usize = 65_536;
/// The point whose bf16 cache size the copy moves.
const COPY_POINT: BenchPoint = BenchPoint { batch: 16, context: 16_384 };

/// The attention shape of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchModel {
    pub name: &'static str,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl BenchModel {
    pub fn group(&self) -> usize {
        self.q_heads / self.kv_heads
    }
}

/// Llama-3-8B's and SmolLM2-135M's attention.
pub const MODELS: [BenchModel; 2] = [
    BenchModel { name: "llama3-8b", q_heads: 32, kv_heads: 8, head_dim: 128 },
    BenchModel { name: "smollm2-135m", q_heads: 9, kv_heads: 3, head_dim: 64 },
];

/// A batch of sequences of one context length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BenchPoint {
    pub batch: usize,
    pub context: usize,
}

/// The long-context points (batch × context = 256 k tokens) and the sweep at batch 16.
pub fn bench_points() -> Vec<BenchPoint> {
    let mut points: Vec<BenchPoint> =
        (10..=16).map(|log2| BenchPoint { batch: CACHE_BATCH, context: 1 << log2 }).collect();
    for (batch, context) in [(16, 16_384), (4, 65_536), (1, 262_144)] {
        let p = BenchPoint { batch, context };
        if !points.contains(&p) {
            points.push(p);
        }
    }
    points
}

/// One timed row: the decode kernel on one cache type, or the copy.
#[derive(Clone, Debug)]
pub struct BenchRow {
    /// `ch07_decode` or `copy`.
    pub impl_name: &'static str,
    /// The cache's element type (`bf16` for the copy).
    pub dtype: &'static str,
    pub model: BenchModel,
    pub point: BenchPoint,
    pub timing: Timing,
    /// Bytes of K and V read (the copy: read + written).
    pub kv_bytes: f64,
    pub copy_gbps: f64,
    /// The split plan's splits (0 for the copy).
    pub splits: usize,
}

impl BenchRow {
    pub fn gbps(&self) -> f64 {
        self.timing.rate(self.kv_bytes) * 1e-9
    }

    pub fn copy_fraction(&self) -> f64 {
        self.gbps() / self.copy_gbps
    }

    pub fn csv(&self) -> String {
        let (m, p) = (self.model, self.point);
        let splits = if self.splits == 0 { String::new() } else { self.splits.to_string() };
        format!(
            "{},{},{},{},{},{},{},{:.6},{},{:.1},{:.4},{splits}",
            self.impl_name,
            self.dtype,
            p.batch,
            m.q_heads,
            m.kv_heads,
            p.context,
            m.head_dim,
            self.timing.median_ms,
            self.kv_bytes,
            self.gbps(),
            self.copy_fraction()
        )
    }
}

/// K and V bytes one decode step reads at `point` (NVFP4's tensor scales included).
pub fn kv_bytes(element: CacheElement, model: BenchModel, point: BenchPoint) -> f64 {
    let planes = (point.batch * model.kv_heads) as f64;
    let tensor_scales = if element == CacheElement::Nvfp4 { 8.0 } else { 0.0 };
    planes * (point.context as f64 * element.kv_bytes_per_token(model.head_dim) + tensor_scales)
}

/// The copy of a buffer the size of the bf16 cache at [`COPY_POINT`]: GB/s of bytes read and
/// written, and its row.
fn time_copy(gpu: &Gpu, model: BenchModel, options: DecodeBenchOptions) -> Result<BenchRow> {
    let bytes = kv_bytes(CacheElement::Bf16, model, COPY_POINT) as usize;
    let src = gpu.zeros::<u8>(bytes)?;
    let mut dst = gpu.zeros::<u8>(bytes)?;
    let timing = gpu_time_per_call(gpu, options.warmup, options.repeats, options.calls, || {
        gpu.stream.memcpy_dtod(&src, &mut dst).ctx("copying on the device")
    })?;
    let moved = 2.0 * bytes as f64;
    let copy_gbps = timing.rate(moved) * 1e-9;
    Ok(BenchRow {
        impl_name: "copy",
        dtype: "bf16",
        model,
        point: COPY_POINT,
        timing,
        kv_bytes: moved,
        copy_gbps,
        splits: 0,
    })
}

// ANCHOR: bench_model
/// The benchmark's name of a kernel version: `ch07_decode` (registers), `ch07_decode_pipelined`
/// or `ch07_decode_mma` (tensor cores).
pub fn impl_name(version: DecodeKernel) -> &'static str {
    match version {
        DecodeKernel::Registers => "ch07_decode",
        DecodeKernel::Pipelined => "ch07_decode_pipelined",
        DecodeKernel::TensorCores => "ch07_decode_mma",
    }
}

/// Every element type at every point for one model and every kernel version that reads it
/// ([`DecodeKernel::supports`]), after the copy.
pub fn bench_model(
    gpu: &Gpu,
    model: BenchModel,
    points: &[BenchPoint],
    options: DecodeBenchOptions,
) -> Result<Vec<BenchRow>> {
    let copy = time_copy(gpu, model, options)?;
    let copy_gbps = copy.copy_gbps;
    let mut rows = vec![copy];
    let d = model.head_dim;
    let template_k = randn((1, 1, TEMPLATE_TOKENS, d), 71);
    let template_v = randn((1, 1, TEMPLATE_TOKENS, d), 72);
    let mut q_rng_seed = 73;
    for element in CacheElement::all(options.key_group) {
        let template =
            quantize_cache(element, template_k.view(), template_v.view(), &[TEMPLATE_TOKENS as u32])?.cache;
        let host = template.tiled(CACHE_BATCH, model.kv_heads, CACHE_CONTEXT)?;
        let mut cache = DeviceKvCache::upload(gpu, &host)?;
        drop(host);
        for version in DecodeKernel::ALL.into_iter().filter(|v| v.supports(element).is_ok()) {
            let mut kernel = DecodeAttention::with_kernel(gpu, version, element, d, model.group())?;
            if let Some(n) = options.max_chunk {
                kernel.set_max_chunk(n)?;
            }
            if let Some(plan) = options.wave_plan {
                kernel.set_wave_plan(plan)?;
            }
            if options.serial_launch {
                kernel.set_dependent_launch(gpu, false)?;
            }
            let mut workspace = DecodeWorkspace::new();
            // Each point reads the one allocation as (batch, context); reshape refuses a point
            // that needs more slots than it holds.
            for &point in points {
                cache.reshape(CacheDims {
                    batch: point.batch,
                    kv_heads: model.kv_heads,
                    capacity: point.context,
                    head_dim: d,
                })?;
                let lengths = DeviceLengths::upload(gpu, &vec![point.context as u32; point.batch])?;
                q_rng_seed += 1;
                let q = gpu.upload(&randn((point.batch * model.q_heads * d,), q_rng_seed))?;
                let mut out = gpu.zeros::<f32>(point.batch * model.q_heads * d)?;
                let plan = kernel.plan(cache.dims(), point.context);
                let timing = gpu_time_per_call(gpu, options.warmup, options.repeats, options.calls, || {
                    kernel.launch(gpu, &q, &cache, &lengths, &mut out, &mut workspace).map(|_| ())
                })?;
                rows.push(BenchRow {
                    impl_name: impl_name(version),
                    dtype: element.name(),
                    model,
                    point,
                    timing,
                    kv_bytes: kv_bytes(element, model, point),
                    copy_gbps,
                    splits: plan.splits,
                });
            }
        }
    }
    Ok(rows)
}
// ANCHOR_END: bench_model

/// Every model of [`MODELS`] at every point of [`bench_points`].
pub fn run_decode_benchmark(gpu: &Gpu, options: DecodeBenchOptions) -> Result<Vec<BenchRow>> {
    let points = bench_points();
    let mut rows = Vec::new();
    for model in MODELS {
        rows.extend(bench_model(gpu, model, &points, options)?);
    }
    Ok(rows)
}

/// KV-read bandwidth against context length at batch 16 for one model and kernel version: a
/// line per element type, the copy's bandwidth dashed. The tensor-core kernel reads no bf16
/// cache: its figure draws the pipelined kernel's bf16 line, labelled so.
pub fn bandwidth_figure(rows: &[BenchRow], model: BenchModel, version: DecodeKernel) -> Result<Chart> {
    let mut lines = Vec::new();
    for element in CacheElement::all(DEFAULT_KEY_GROUP) {
        let (kernel, label) = match version.supports(element) {
            Ok(()) => (version, element.name().to_string()),
            Err(_) => (DecodeKernel::Pipelined, format!("{} (pipelined kernel)", element.name())),
        };
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.model == model && r.impl_name == impl_name(kernel) && r.dtype == element.name())
            .filter(|r| r.point.batch == CACHE_BATCH)
            .map(|r| (r.point.context as f64, r.gbps()))
            .collect();
        lines.push(Line::solid(label, points));
    }
    if let Some(copy) = rows.iter().find(|r| r.model == model && r.impl_name == "copy") {
        let contexts = (1024.0, CACHE_CONTEXT as f64);
        lines.push(Line::dashed("device copy", vec![(contexts.0, copy.gbps()), (contexts.1, copy.gbps())]));
    }
    Ok(Chart {
        x_scale: Scale::Log2,
        lines,
        ..Chart::new(
            format!(
                "decode attention ({} kernel), {} ({} q / {} KV heads, d = {}), batch {CACHE_BATCH}",
                version.name(),
                model.name,
                model.q_heads,
                model.kv_heads,
                model.head_dim
            ),
            "context (tokens)",
            "KV bytes read per second (GB/s)",
        )
    })
}
