//! `ch05`: chapter 5's experiments. Without options, prints the byte model of scale + mask +
//! softmax, of the QKV projection and of its epilogue, unfused against fused; with
//! `--bench-softmax`, times softmax on the GPU against the device's copy bandwidth; with
//! `--bench-qkv`, three cuBLAS GEMMs against one; with `--bench-epilogue`, RoPE + KV-cache
//! write as three passes against one kernel. One benchmark per run, each with its own CSV.
//!
//! ```text
//! cargo run --release --bin ch05
//! cargo run --release --bin ch05 -- --bench-softmax --csv target/bench/ch05_softmax.csv
//! cargo run --release --bin ch05 -- --bench-qkv --csv target/bench/ch05_qkv.csv
//! cargo run --release --bin ch05 -- --bench-epilogue --csv target/bench/ch05_epilogue.csv
//! cargo run --release --bin ch05 -- --bench-cpu --csv target/bench/ch05_cpu.csv
//! cargo run --release --bin ch05 -- --out docs/src/figures/ch05    # the figures, on the CPU
//! cargo run --release --bin ch05 -- --figures-from RUN_DIR --out docs/src/figures/ch05   # measured time
//! ```

use anyhow::Context;
use ch05_fused_computation::attn_support::report::heading;
use ch05_fused_computation::attn_support::units::format_bytes;
use ch05_fused_computation::attn_support::with_gpu;
use ch05_fused_computation::qkv_bench::{
    QkvBenchOptions, print_byte_models, run_epilogue_bench, run_qkv_bench, write_epilogue_csv, write_qkv_csv,
};
use ch05_fused_computation::qkv_cpu_bench::{run_cpu_bench, write_cpu_csv};
use ch05_fused_computation::softmax_bench::{
    BenchOptions, DEFAULT_SHAPES, parse_shapes, run_softmax_bench, write_softmax_csv,
};
use ch05_fused_computation::{ScoreShape, SoftmaxPipeline};
use clap::Parser;
use std::path::PathBuf;

/// Chapter 5: fused computation.
#[derive(Parser, Debug)]
#[command(name = "ch05", version)]
struct Args {
    /// Time scale + mask + softmax (fused: a warp or a block per row; the unfused three-kernel
    /// chain) and a device copy on every shape of --softmax-shapes, in f32 and bf16 (needs a GPU).
    #[arg(long, conflicts_with_all = ["bench_qkv", "bench_epilogue"])]
    bench_softmax: bool,
    /// Time the QKV projection: three cuBLAS GEMMs against one over [W_q; W_k; W_v], on
    /// SmolLM2-135M and Llama-3-8B shapes, 1 and 4096 tokens, f32 and bf16 (needs a GPU).
    #[arg(long, conflicts_with = "bench_epilogue")]
    bench_qkv: bool,
    /// Time the QKV epilogue (RoPE on q and k, k and v into the cache): three passes against
    /// one kernel, and a device copy of the GEMM output, on the same shapes (needs a GPU).
    #[arg(long, conflicts_with = "bench_cpu")]
    bench_epilogue: bool,
    /// Time the CPU versions of the QKV projection and its epilogue (f32, ndarray), unfused
    /// against fused, on the same models (no GPU needed).
    #[arg(long, conflicts_with_all = ["bench_softmax", "bench_qkv"])]
    bench_cpu: bool,
    /// The benchmark's CSV; by default target/bench/ch05_softmax.csv
    /// (`impl,dtype,batch,heads,nq,nk,mask,median_ms,modelled_bytes,gbps,copy_fraction`),
    /// target/bench/ch05_qkv.csv or target/bench/ch05_epilogue.csv (columns in
    /// `ch05_fused_computation::qkv_bench`).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Shapes for --bench-softmax, `batch heads nq nk` per line; by default the list built into
    /// the binary (xtask/baselines/ch05_softmax_shapes.txt).
    #[arg(long)]
    softmax_shapes: Option<PathBuf>,
    /// Untimed calls before each measurement.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Timed calls per measurement (the median is reported).
    #[arg(long, default_value_t = 30)]
    repeats: usize,
    /// --bench-qkv and --bench-epilogue: calls between one pair of timing events (by default
    /// 50 at decode, 1 at prefill); 1 under a profiler, with --warmup 0 --repeats 1.
    #[arg(long)]
    calls_per_timing: Option<usize>,
    /// Also write the chapter's figures (byte models and masks, drawn on the CPU) to this
    /// folder, as PNG and SVG.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draw the time figures (unfused against fused) from a GPU run's CSVs in this folder
    /// (ch05_softmax.csv, torch_softmax.csv, ch05_qkv.csv, ch05_epilogue.csv) into --out
    /// (default target/figures/ch05), then stop; needs no GPU.
    #[arg(long)]
    figures_from: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(run_dir) = &args.figures_from {
        let out = args.out.clone().unwrap_or_else(|| PathBuf::from("target/figures/ch05"));
        for file in ch05_fused_computation::figures::recorded::write_recorded_figures(run_dir, &out)? {
            println!("wrote {}", file.display());
        }
        return Ok(());
    }
    if let Some(dir) = &args.out {
        for file in ch05_fused_computation::figures::write_figures(dir)? {
            println!("wrote {}", file.display());
        }
    }
    if args.bench_softmax {
        let shapes = match &args.softmax_shapes {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                parse_shapes(&text, &path.display().to_string())?
            }
            None => parse_shapes(DEFAULT_SHAPES, "the built-in softmax shapes")?,
        };
        heading("scale + mask + softmax: fused against unfused and the copy bandwidth");
        let options = BenchOptions { warmup: args.warmup, repeats: args.repeats };
        if let Some(rows) = with_gpu("the softmax benchmark", |gpu| run_softmax_bench(gpu, &shapes, options))?
        {
            write_softmax_csv(&csv_or(&args.csv, "ch05_softmax.csv"), &rows)?;
        }
        return Ok(());
    }
    let qkv_options =
        QkvBenchOptions { warmup: args.warmup, repeats: args.repeats, calls: args.calls_per_timing };
    if args.bench_qkv {
        heading("QKV projection: three cuBLAS GEMMs against one over [W_q; W_k; W_v]");
        if let Some(rows) = with_gpu("the QKV benchmark", |gpu| run_qkv_bench(gpu, qkv_options))? {
            write_qkv_csv(&csv_or(&args.csv, "ch05_qkv.csv"), &rows)?;
        }
        return Ok(());
    }
    if args.bench_cpu {
        heading("CPU (f32, ndarray): QKV projection and epilogue, unfused against fused");
        let rows = run_cpu_bench(args.warmup, args.repeats)?;
        write_cpu_csv(&csv_or(&args.csv, "ch05_cpu.csv"), &rows)?;
        return Ok(());
    }
    if args.bench_epilogue {
        heading("QKV epilogue (RoPE + KV-cache write): three passes against one kernel");
        if let Some(rows) = with_gpu("the epilogue benchmark", |gpu| run_epilogue_bench(gpu, qkv_options))? {
            write_epilogue_csv(&csv_or(&args.csv, "ch05_epilogue.csv"), &rows)?;
        }
        return Ok(());
    }
    heading("bytes moved by scale + mask + softmax (one layer of Llama-3-8B prefill, bf16)");
    let shape = ScoreShape { batch: 1, heads: 32, nq: 4096, nk: 4096 };
    for pipeline in [SoftmaxPipeline::Unfused, SoftmaxPipeline::Fused] {
        let moved = pipeline.bytes_moved(shape, 2);
        println!(
            "{pipeline:?}: read {}, written {}, total {}",
            format_bytes(moved.read as f64),
            format_bytes(moved.written as f64),
            format_bytes(moved.total() as f64)
        );
    }
    println!("(run with --bench-softmax on a GPU to time both)");
    print_byte_models();
    Ok(())
}

/// `--csv` when given, else `target/bench/<default>`.
fn csv_or(csv: &Option<PathBuf>, default: &str) -> PathBuf {
    csv.clone().unwrap_or_else(|| PathBuf::from("target/bench").join(default))
}
