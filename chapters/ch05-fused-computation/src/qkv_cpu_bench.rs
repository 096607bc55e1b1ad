//! `ch05 --bench-cpu`: the CPU versions of fusions 1 and 3 (f32, ndarray) timed with the wall
//! clock — the three GEMMs against the one ([`qkv_unfused`], [`qkv_fused`]) and the epilogue's
//! three passes against one ([`epilogue_unfused`], [`epilogue_fused`]) — on the shapes of the
//! GPU benchmark, each next to its modelled bytes.
//!
//! The CPU is not where a decoder runs these, and its numbers say little about the GPU's; they
//! are here because every fusion of the chapter is timed in both places, and because they show
//! the same two regimes: a GEMM limited by arithmetic (the matrixmultiply crate, single-threaded
//! as ndarray uses it) and an elementwise pass limited by memory. Llama-3-8B's prefill projection
//! (206 GFLOP) takes minutes on a laptop core, so the projection of that model is timed at
//! [`CPU_LLAMA_PREFILL_TOKENS`] tokens instead of 4096.

use crate::bytes::BytesMoved;
use crate::qkv_bench::BENCH_MODELS;
use crate::qkv_epilogue::{EpiloguePipeline, KvCache, epilogue_fused, epilogue_unfused, llama_rope_tables};
use crate::qkv_projection::{QkvPipeline, concat_weights, qkv_fused, qkv_unfused};
use attn_support::Result;
use attn_support::data::randn;
use attn_support::report::{TextTable, write_lines};
use attn_support::timing::{Timing, cpu_time};
use std::path::Path;

/// Tokens of Llama-3-8B's "prefill" projection on the CPU (4096 would take minutes per call).
pub const CPU_LLAMA_PREFILL_TOKENS: usize = 128;

/// The CSV's columns.
pub const CPU_BENCH_HEADER: &str = "impl,model,tokens,median_ms,min_ms,modelled_bytes,gflops,speedup";

/// One row: a version at one point.
#[derive(Clone, Debug)]
pub struct CpuBenchRow {
    pub implementation: &'static str,
    pub model: &'static str,
    pub tokens: usize,
    pub timing: Timing,
    pub bytes: BytesMoved,
    /// Flops of the point (0 for the epilogue, which does 6 per rotated pair, not worth a rate).
    pub flops: u64,
    pub speedup: f64,
}

impl CpuBenchRow {
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{:.6},{:.6},{},{:.3},{:.4}",
            self.implementation,
            self.model,
            self.tokens,
            self.timing.median_ms,
            self.timing.min_ms,
            self.bytes.total(),
            self.timing.rate(self.flops as f64) / 1e9,
            self.speedup
        )
    }
}

/// Every point, printed as measured: for each model, the projection at 1 token and at prefill,
/// then the epilogue at 1 and 4096 tokens.
pub fn run_cpu_bench(warmup: usize, repeats: usize) -> Result<Vec<CpuBenchRow>> {
    let table =
        TextTable::new(&[("impl", 12), ("model", 12), ("tokens", 6), ("median ms", 10), ("speedup", 7)])
            .left_aligned(0)
            .left_aligned(1);
    println!("{}", table.header());
    let mut rows = Vec::new();
    let mut push = |pair: [CpuBenchRow; 2]| {
        for r in pair {
            println!(
                "{}",
                table.line(&[
                    r.implementation.to_string(),
                    r.model.to_string(),
                    r.tokens.to_string(),
                    format!("{:.4}", r.timing.median_ms),
                    format!("{:.3}", r.speedup),
                ])
            );
            rows.push(r);
        }
    };
    for (model, dims) in BENCH_MODELS {
        let prefill = if dims.d_model > 1024 { CPU_LLAMA_PREFILL_TOKENS } else { 4096 };
        let scale = 1.0 / (dims.d_model as f32).sqrt();
        let w = |rows, seed| randn((rows, dims.d_model), seed).mapv(|v: f32| v * scale);
        let (w_q, w_k, w_v) = (w(dims.q_cols(), 2), w(dims.kv_cols(), 3), w(dims.kv_cols(), 4));
        let w_qkv = concat_weights(w_q.view(), w_k.view(), w_v.view(), dims)?;
        for tokens in [1, prefill] {
            let x = randn((1, tokens, dims.d_model), 1);
            let three =
                cpu_time(warmup, repeats, || qkv_unfused(x.view(), w_q.view(), w_k.view(), w_v.view(), dims));
            let one = cpu_time(warmup, repeats, || qkv_fused(x.view(), w_qkv.view(), dims));
            let row = |implementation, pipeline: QkvPipeline, timing: Timing| CpuBenchRow {
                implementation,
                model,
                tokens,
                timing,
                bytes: pipeline.bytes_moved(dims, tokens, 4),
                flops: dims.flops(tokens),
                speedup: three.median_ms / timing.median_ms,
            };
            push([
                row("three_gemms", QkvPipeline::ThreeGemms, three),
                row("one_gemm", QkvPipeline::OneGemm, one),
            ]);
        }
        for tokens in [1, 4096] {
            let start = 4096 - tokens;
            let (cos, sin) = llama_rope_tables(4096, dims.head_dim, 100_000.0)?;
            let qkv = randn((tokens, dims.fused_cols()), 5);
            let mut cache = KvCache::zeros(dims, 4096);
            let three = cpu_time(warmup, repeats, || {
                epilogue_unfused(qkv.view(), dims, cos.view(), sin.view(), start, &mut cache)
            });
            let one = cpu_time(warmup, repeats, || {
                epilogue_fused(qkv.view(), dims, cos.view(), sin.view(), start, &mut cache)
            });
            let row = |implementation, pipeline: EpiloguePipeline, timing: Timing| CpuBenchRow {
                implementation,
                model,
                tokens,
                timing,
                bytes: pipeline.bytes_moved(dims, tokens, 4),
                flops: 0,
                speedup: three.median_ms / timing.median_ms,
            };
            push([
                row("three_passes", EpiloguePipeline::ThreePasses, three),
                row("one_pass", EpiloguePipeline::OnePass, one),
            ]);
        }
    }
    Ok(rows)
}

/// Write the rows as CSV.
pub fn write_cpu_csv(path: &Path, rows: &[CpuBenchRow]) -> Result<()> {
    write_lines(path, CPU_BENCH_HEADER, rows.iter().map(CpuBenchRow::csv))
}
