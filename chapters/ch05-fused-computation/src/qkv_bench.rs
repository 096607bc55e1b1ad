//! The benchmarks of `ch05 --bench-qkv` and `ch05 --bench-epilogue`: fusions 1 and 3, unfused
//! against fused, on the shapes of real decoders — SmolLM2-135M (d_model 576, 9:3 heads of 64)
//! and Llama-3-8B (4096, 32:8 heads of 128) — at decode (1 token) and prefill (4096 tokens),
//! in f32 and bf16.
//!
//! **QKV** ([`QKV_BENCH_HEADER`]): `three_gemms` and `one_gemm` ([`QkvGemm`]) per point, with
//! TFLOP/s from [`QkvDims::flops`], the byte model [`QkvPipeline::bytes_moved`] and its rate,
//! and `speedup` = the three GEMMs' median over this row's. At decode the weights are what a
//! GEMM reads; a real decoder reads a different layer's weights at every call, from HBM, so
//! the benchmark cycles through enough copies of them (at least [`L2_FLUSH_BYTES`] in all,
//! above the H100's 50 MB L2) that no call finds its weights in L2.
//!
//! **Epilogue** ([`EPILOGUE_BENCH_HEADER`]): `three_passes` and `one_pass` ([`QkvEpilogue`]),
//! and `copy`, a device-to-device memcpy of the GEMM output (n·C elements read and written):
//! the rate a kernel that reads and writes every byte once can reach. Decode writes position
//! [`BENCH_CACHE_LEN`] − 1 of a cache of that length; prefill writes positions 0 … 4095. The
//! epilogue's time does not depend on the values, so its buffers are zeros.
//!
//! Every time is the median of `repeats` CUDA-event timings after `warmup` untimed calls
//! ([`gpu_time_per_call`]). A point that takes microseconds (decode) is timed as `inner` back-to-back
//! calls between one pair of events, divided by `inner` ([`inner_calls`]): one call is near
//! the events' resolution, and back-to-back calls are what a decoder issues, launch overheads
//! overlapping as they do there.
//!
//! **Measured bytes.** Under Nsight Compute, with `--warmup 0 --repeats 1 --calls-per-timing 1`,
//! each point launches each version once, in the order of the table (f32 then bf16;
//! SmolLM2-135M then Llama-3-8B; 1 then 4096 tokens): for the epilogue `ch05_rope_heads_*`
//! (q), `ch05_rope_heads_*` (k), `ch05_cache_write_*`, then `ch05_epilogue_fused_*` (the copy is
//! a memcpy, not a kernel); for the projection the three GEMMs' kernels, then the one GEMM's
//! (cuBLAS may add a split-K reduction kernel after a GEMM). ncu flushes the caches before each
//! kernel by default (`--cache-control all`), so `dram__bytes_read.sum` and
//! `dram__bytes_write.sum` are the cold-cache traffic the byte model counts:
//!
//! ```text
//! ncu --kernel-name regex:ch05_ --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \
//!     --csv ch05 --bench-epilogue --warmup 0 --repeats 1 --calls-per-timing 1 --csv /tmp/e.csv > ncu_epilogue.csv
//! ncu --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \
//!     --csv ch05 --bench-qkv --warmup 0 --repeats 1 --calls-per-timing 1 --csv /tmp/q.csv > ncu_qkv.csv
//! ```

use crate::bytes::BytesMoved;
use crate::gpu::qkv::{DeviceElement, QkvGemm};
use crate::gpu::qkv_epilogue::{EpilogueBuffers, QkvEpilogue};
use crate::qkv_epilogue::{EpiloguePipeline, EpilogueShape};
use crate::qkv_projection::{LLAMA3_8B, QkvDims, QkvPipeline, SMOLLM2_135M};
use attn_support::Result;
use attn_support::cudarc::driver::CudaSlice;
use attn_support::data::randn;
use attn_support::error::DriverContext;
use attn_support::gpu::Gpu;
use attn_support::report::{TextTable, write_lines};
use attn_support::timing::{Timing, gpu_time_per_call};
use half::bf16;
use std::path::Path;

/// The models of the benchmark, by name.
pub const BENCH_MODELS: [(&str, QkvDims); 2] = [("SmolLM2-135M", SMOLLM2_135M), ("Llama-3-8B", LLAMA3_8B)];
/// Decode and prefill.
pub const BENCH_TOKENS: [usize; 2] = [1, 4096];
/// The epilogue's cache and table length: the prefill's 4096 tokens fill it.
pub const BENCH_CACHE_LEN: usize = 4096;
/// Weights cycled through at decode add up to at least this: more than twice the H100's 50 MB
/// L2, so every call reads its weights from HBM as a decoder's next layer does.
pub const L2_FLUSH_BYTES: u64 = 128 << 20;

/// The QKV CSV's columns.
pub const QKV_BENCH_HEADER: &str = "impl,dtype,model,d_model,heads,kv_heads,head_dim,tokens,median_ms,min_ms,\
tflops,modelled_bytes,gbps,speedup";
/// The epilogue CSV's columns.
pub const EPILOGUE_BENCH_HEADER: &str =
    "impl,dtype,model,heads,kv_heads,head_dim,tokens,start,median_ms,min_ms,modelled_bytes,gbps,speedup";

/// Untimed and timed calls per measurement.
#[derive(Clone, Copy, Debug)]
pub struct QkvBenchOptions {
    pub warmup: usize,
    pub repeats: usize,
    /// Calls per timing instead of [`inner_calls`]'s (1 under a profiler, so that its report
    /// holds one launch per version and point).
    pub calls: Option<usize>,
}

/// Calls between one pair of events: 50 at decode (a few microseconds each), 1 at prefill.
pub fn inner_calls(tokens: usize) -> usize {
    if tokens <= 16 { 50 } else { 1 }
}

/// `calls` back-to-back calls of `f` per timing, reported per call ([`gpu_time_per_call`]).
fn time_per_call(
    gpu: &Gpu,
    options: QkvBenchOptions,
    calls: usize,
    f: impl FnMut() -> Result<()>,
) -> Result<Timing> {
    gpu_time_per_call(gpu, options.warmup, options.repeats, calls, f)
}

/// One row of the QKV benchmark.
#[derive(Clone, Debug)]
pub struct QkvBenchRow {
    pub implementation: &'static str,
    pub dtype: &'static str,
    pub model: &'static str,
    pub dims: QkvDims,
    pub tokens: usize,
    pub timing: Timing,
    pub bytes: BytesMoved,
    pub speedup: f64,
}

impl QkvBenchRow {
    pub fn tflops(&self) -> f64 {
        self.timing.rate(self.dims.flops(self.tokens) as f64) / 1e12
    }
    pub fn gbps(&self) -> f64 {
        self.timing.rate(self.bytes.total() as f64) / 1e9
    }
    pub fn csv(&self) -> String {
        let d = self.dims;
        format!(
            "{},{},{},{},{},{},{},{},{:.6},{:.6},{:.3},{},{:.1},{:.4}",
            self.implementation,
            self.dtype,
            self.model,
            d.d_model,
            d.n_heads,
            d.n_kv_heads,
            d.head_dim,
            self.tokens,
            self.timing.median_ms,
            self.timing.min_ms,
            self.tflops(),
            self.bytes.total(),
            self.gbps(),
            self.speedup
        )
    }
}

/// Random device data of `len` elements of `T`, N(0, scale²).
fn random<T: DeviceElement>(gpu: &Gpu, len: usize, scale: f32, seed: u64) -> Result<CudaSlice<T>> {
    gpu.upload(&randn(len, seed).mapv(|v: f32| T::from_f32(v * scale)))
}

/// Both versions of the projection at one point, timed in the same run on the same data.
fn qkv_point<T: DeviceElement>(
    gpu: &Gpu,
    gemm: &QkvGemm,
    (model, dims): (&'static str, QkvDims),
    tokens: usize,
    options: QkvBenchOptions,
) -> Result<[QkvBenchRow; 2]> {
    let (d_model, q_cols, kv_cols) = (dims.d_model, dims.q_cols(), dims.kv_cols());
    let weight_bytes = (dims.fused_cols() * d_model) as u64 * T::BYTES;
    let copies = if tokens <= 16 { L2_FLUSH_BYTES.div_ceil(weight_bytes).max(1) as usize } else { 1 };
    let x = random::<T>(gpu, tokens * d_model, 1.0, 1)?;
    // Random weights (tensor cores draw less power on zeros), one upload per copy; the three
    // separate weights and the concatenated one hold the same kind of values.
    let scale = 1.0 / (d_model as f32).sqrt();
    let mut weights = Vec::with_capacity(copies);
    for c in 0..copies as u64 {
        weights.push([
            random::<T>(gpu, q_cols * d_model, scale, 10 + 4 * c)?,
            random::<T>(gpu, kv_cols * d_model, scale, 11 + 4 * c)?,
            random::<T>(gpu, kv_cols * d_model, scale, 12 + 4 * c)?,
            random::<T>(gpu, dims.fused_cols() * d_model, scale, 13 + 4 * c)?,
        ]);
    }
    let (mut q, mut k, mut v) = (
        gpu.zeros::<T>(tokens * q_cols)?,
        gpu.zeros::<T>(tokens * kv_cols)?,
        gpu.zeros::<T>(tokens * kv_cols)?,
    );
    let mut qkv = gpu.zeros::<T>(tokens * dims.fused_cols())?;
    let calls = options.calls.unwrap_or_else(|| inner_calls(tokens)).max(1);

    let mut i = 0;
    let three = time_per_call(gpu, options, calls, || {
        let [w_q, w_k, w_v, _] = &weights[i % copies];
        i += 1;
        gemm.three_gemms(dims, tokens, &x, [w_q, w_k, w_v], [&mut q, &mut k, &mut v])
    })?;
    let mut i = 0;
    let one = time_per_call(gpu, options, calls, || {
        let w_qkv = &weights[i % copies][3];
        i += 1;
        gemm.one_gemm(dims, tokens, &x, w_qkv, &mut qkv)
    })?;
    let row = |implementation, pipeline: QkvPipeline, timing: Timing| QkvBenchRow {
        implementation,
        dtype: T::NAME,
        model,
        dims,
        tokens,
        timing,
        bytes: pipeline.bytes_moved(dims, tokens, T::BYTES),
        speedup: three.median_ms / timing.median_ms,
    };
    Ok([row("three_gemms", QkvPipeline::ThreeGemms, three), row("one_gemm", QkvPipeline::OneGemm, one)])
}

/// The printed table's columns, shared by the live lines.
fn qkv_table() -> TextTable {
    TextTable::new(&[
        ("impl", 11),
        ("dtype", 5),
        ("model", 12),
        ("tokens", 6),
        ("median ms", 10),
        ("TFLOP/s", 8),
        ("model MB", 9),
        ("GB/s", 7),
        ("speedup", 7),
    ])
    .left_aligned(0)
    .left_aligned(1)
    .left_aligned(2)
}

fn qkv_line(table: &TextTable, r: &QkvBenchRow) -> String {
    table.line(&[
        r.implementation.to_string(),
        r.dtype.to_string(),
        r.model.to_string(),
        r.tokens.to_string(),
        format!("{:.4}", r.timing.median_ms),
        format!("{:.2}", r.tflops()),
        format!("{:.2}", r.bytes.total() as f64 / 1e6),
        format!("{:.0}", r.gbps()),
        format!("{:.3}", r.speedup),
    ])
}

/// Every point of the QKV benchmark, f32 then bf16, printed as measured.
pub fn run_qkv_bench(gpu: &Gpu, options: QkvBenchOptions) -> Result<Vec<QkvBenchRow>> {
    let gemm = QkvGemm::open(gpu)?;
    let table = qkv_table();
    println!("{}", table.header());
    let mut rows = Vec::new();
    for dtype in ["f32", "bf16"] {
        for model in BENCH_MODELS {
            for tokens in BENCH_TOKENS {
                let point = match dtype {
                    "f32" => qkv_point::<f32>(gpu, &gemm, model, tokens, options)?,
                    _ => qkv_point::<bf16>(gpu, &gemm, model, tokens, options)?,
                };
                for r in point {
                    println!("{}", qkv_line(&table, &r));
                    rows.push(r);
                }
            }
        }
    }
    Ok(rows)
}

/// Write the QKV rows as CSV.
pub fn write_qkv_csv(path: &Path, rows: &[QkvBenchRow]) -> Result<()> {
    write_lines(path, QKV_BENCH_HEADER, rows.iter().map(QkvBenchRow::csv))
}

/// One row of the epilogue benchmark.
#[derive(Clone, Debug)]
pub struct EpilogueBenchRow {
    pub implementation: &'static str,
    pub dtype: &'static str,
    pub model: &'static str,
    pub shape: EpilogueShape,
    pub timing: Timing,
    pub bytes: BytesMoved,
    pub speedup: f64,
}

impl EpilogueBenchRow {
    pub fn gbps(&self) -> f64 {
        self.timing.rate(self.bytes.total() as f64) / 1e9
    }
    pub fn csv(&self) -> String {
        let d = self.shape.dims;
        format!(
            "{},{},{},{},{},{},{},{},{:.6},{:.6},{},{:.1},{:.4}",
            self.implementation,
            self.dtype,
            self.model,
            d.n_heads,
            d.n_kv_heads,
            d.head_dim,
            self.shape.tokens,
            self.shape.start,
            self.timing.median_ms,
            self.timing.min_ms,
            self.bytes.total(),
            self.gbps(),
            self.speedup
        )
    }
}

/// The copy, three passes and one pass at one point.
fn epilogue_point<T: DeviceElement>(
    gpu: &Gpu,
    (model, dims): (&'static str, QkvDims),
    tokens: usize,
    options: QkvBenchOptions,
) -> Result<[EpilogueBenchRow; 3]> {
    let start = BENCH_CACHE_LEN - tokens;
    let shape =
        EpilogueShape { dims, tokens, start, table_positions: BENCH_CACHE_LEN, cache_len: BENCH_CACHE_LEN };
    let kernels = QkvEpilogue::<T>::load(gpu)?;
    let mut buffers = EpilogueBuffers::<T>::zeros(gpu, shape)?;
    let calls = options.calls.unwrap_or_else(|| inner_calls(tokens)).max(1);
    let mut copy_dst = gpu.zeros::<T>(buffers.qkv.len())?;
    let copy = time_per_call(gpu, options, calls, || {
        gpu.stream.memcpy_dtod(&buffers.qkv, &mut copy_dst).ctx("copying device to device")
    })?;
    let three = time_per_call(gpu, options, calls, || kernels.three_passes(gpu, &mut buffers))?;
    let one = time_per_call(gpu, options, calls, || kernels.fused(gpu, &mut buffers))?;
    let copy_bytes = (tokens * dims.fused_cols()) as u64 * T::BYTES;
    let row = |implementation, bytes, timing: Timing| EpilogueBenchRow {
        implementation,
        dtype: T::NAME,
        model,
        shape,
        timing,
        bytes,
        speedup: three.median_ms / timing.median_ms,
    };
    Ok([
        row("copy", BytesMoved { read: copy_bytes, written: copy_bytes }, copy),
        row("three_passes", EpiloguePipeline::ThreePasses.bytes_moved(dims, tokens, T::BYTES), three),
        row("one_pass", EpiloguePipeline::OnePass.bytes_moved(dims, tokens, T::BYTES), one),
    ])
}

/// Every point of the epilogue benchmark, f32 then bf16, printed as measured.
pub fn run_epilogue_bench(gpu: &Gpu, options: QkvBenchOptions) -> Result<Vec<EpilogueBenchRow>> {
    let table = TextTable::new(&[
        ("impl", 12),
        ("dtype", 5),
        ("model", 12),
        ("tokens", 6),
        ("median ms", 10),
        ("model MB", 9),
        ("GB/s", 7),
        ("speedup", 7),
    ])
    .left_aligned(0)
    .left_aligned(1)
    .left_aligned(2);
    println!("{}", table.header());
    let mut rows = Vec::new();
    for dtype in ["f32", "bf16"] {
        for model in BENCH_MODELS {
            for tokens in BENCH_TOKENS {
                let point = match dtype {
                    "f32" => epilogue_point::<f32>(gpu, model, tokens, options)?,
                    _ => epilogue_point::<bf16>(gpu, model, tokens, options)?,
                };
                for r in point {
                    println!(
                        "{}",
                        table.line(&[
                            r.implementation.to_string(),
                            r.dtype.to_string(),
                            r.model.to_string(),
                            r.shape.tokens.to_string(),
                            format!("{:.5}", r.timing.median_ms),
                            format!("{:.3}", r.bytes.total() as f64 / 1e6),
                            format!("{:.0}", r.gbps()),
                            format!("{:.3}", r.speedup),
                        ])
                    );
                    rows.push(r);
                }
            }
        }
    }
    Ok(rows)
}

/// Write the epilogue rows as CSV.
pub fn write_epilogue_csv(path: &Path, rows: &[EpilogueBenchRow]) -> Result<()> {
    write_lines(path, EPILOGUE_BENCH_HEADER, rows.iter().map(EpilogueBenchRow::csv))
}

/// The byte models of fusions 1 and 3 at the benchmark's points, in bf16: what `ch05` prints
/// without options (no GPU needed).
pub fn print_byte_models() {
    attn_support::report::heading("bytes moved by the QKV projection and its epilogue (bf16, modelled)");
    let mb = |b: BytesMoved| format!("{:.3}", b.total() as f64 / 1e6);
    let mut table = TextTable::new(&[
        ("model", 12),
        ("tokens", 6),
        ("3 GEMMs MB", 0),
        ("1 GEMM MB", 0),
        ("GFLOP", 0),
        ("3 passes MB", 0),
        ("1 pass MB", 0),
    ])
    .left_aligned(0);
    for (model, dims) in BENCH_MODELS {
        for tokens in BENCH_TOKENS {
            table.push([
                model.to_string(),
                tokens.to_string(),
                mb(QkvPipeline::ThreeGemms.bytes_moved(dims, tokens, 2)),
                mb(QkvPipeline::OneGemm.bytes_moved(dims, tokens, 2)),
                format!("{:.3}", dims.flops(tokens) as f64 / 1e9),
                mb(EpiloguePipeline::ThreePasses.bytes_moved(dims, tokens, 2)),
                mb(EpiloguePipeline::OnePass.bytes_moved(dims, tokens, 2)),
            ]);
        }
    }
    print!("{}", table.render());
    println!("(run with --bench-qkv or --bench-epilogue on a GPU to time them)");
}
