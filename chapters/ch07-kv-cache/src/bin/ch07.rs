//! `ch07`: the KV cache. With a GPU, decode attention over bf16, INT8, FP8 and NVFP4 caches
//! checked against the CPU; `--bench-decode` instead times it against the device's copy
//! bandwidth (a minute) and draws KV-read bandwidth against context length.
//!
//! ```text
//! cargo run --release --bin ch07
//! cargo run --release --bin ch07 -- --bench-decode --out target/figures/ch07 --csv target/ch07_decode.csv
//! ```

use attn_support::gpu::{Gpu, with_gpu};
use attn_support::plot::save;
use attn_support::report::{TextTable, heading, write_lines};
use ch07_kv_cache::gpu::bench::{BENCH_CSV_HEADER, MODELS, bandwidth_figure, run_decode_benchmark};
use ch07_kv_cache::gpu::check::gpu_against_cpu;
use ch07_kv_cache::gpu::{CacheElement, DEFAULT_KEY_GROUP};
use clap::Parser;
use std::path::PathBuf;

/// Chapter 7: the KV cache, from static to dynamic.
#[derive(Parser, Debug)]
#[command(name = "ch07", version)]
struct Args {
    /// Folder for the figures (PNG and SVG).
    #[arg(long, default_value = "target/figures/ch07")]
    out: PathBuf,
    /// Only time GPU decode attention over each cache type against the copy bandwidth, write
    /// the CSV and the bandwidth figures.
    #[arg(long)]
    bench_decode: bool,
    /// Where --bench-decode writes its CSV (default: OUT/ch07_decode.csv).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Timed launches per point (the median is reported).
    #[arg(long, default_value_t = 20)]
    repeats: usize,
    /// Tokens per INT8 key scale.
    #[arg(long, default_value_t = DEFAULT_KEY_GROUP)]
    key_group: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.bench_decode {
        with_gpu("the ch07 decode benchmark", |gpu| bench_decode(gpu, &args))?;
        return Ok(());
    }
    with_gpu("the ch07 GPU decode check", check_decode)?;
    Ok(())
}

/// GPU decode attention against the f64 reference over the same dequantised cache.
fn check_decode(gpu: &Gpu) -> attn_support::Result<()> {
    heading("GPU decode attention against the CPU (f64 over the dequantised cache)");
    let mut table = TextTable::new(&[
        ("cache", 0),
        ("q/KV heads, d", 0),
        ("splits × chunk", 0),
        ("max |GPU − CPU|", 0),
        ("max |o|", 0),
    ])
    .left_aligned(0);
    for r in gpu_against_cpu(gpu)? {
        let (q, kv, d) = r.heads;
        table.push([
            r.element.name().to_string(),
            format!("{q}/{kv}, {d}"),
            format!("{} × {}", r.plan.splits, r.plan.chunk),
            format!("{:.1e}", r.max_abs_err),
            format!("{:.2}", r.max_abs),
        ]);
    }
    println!("{}", table.render());
    Ok(())
}

/// `--bench-decode`: the table, the CSV and one figure per model.
fn bench_decode(gpu: &Gpu, args: &Args) -> attn_support::Result<()> {
    heading("decode attention over each cache type against the device copy (median of CUDA-event timings)");
    let rows = run_decode_benchmark(gpu, args.key_group, args.repeats)?;
    let mut table = TextTable::new(&[
        ("model", 0),
        ("cache", 0),
        ("batch × context", 16),
        ("splits", 0),
        ("median ms", 0),
        ("GB/s", 7),
        ("of copy", 0),
        ("vs bf16", 0),
    ])
    .left_aligned(0)
    .left_aligned(1);
    for r in &rows {
        let bf16 = rows.iter().find(|b| {
            b.model == r.model
                && b.point == r.point
                && b.dtype == CacheElement::Bf16.name()
                && b.impl_name == r.impl_name
        });
        let speedup =
            bf16.map_or(String::new(), |b| format!("{:.2}×", b.timing.median_ms / r.timing.median_ms));
        table.push([
            r.model.name.to_string(),
            if r.impl_name == "copy" { "copy".into() } else { r.dtype.to_string() },
            format!("{} × {}", r.point.batch, r.point.context),
            r.splits.to_string(),
            format!("{:.4}", r.timing.median_ms),
            format!("{:.0}", r.gbps()),
            format!("{:.1} %", 100.0 * r.copy_fraction()),
            speedup,
        ]);
    }
    println!("{}", table.render());
    let csv = args.csv.clone().unwrap_or_else(|| args.out.join("ch07_decode.csv"));
    write_lines(&csv, BENCH_CSV_HEADER, rows.iter().map(|r| r.csv()))?;
    println!("wrote {}", csv.display());
    for model in MODELS {
        let fig = bandwidth_figure(&rows, model)?;
        println!("wrote {:?}", save(&fig, &args.out, &format!("decode_bandwidth_{}", model.name))?);
    }
    Ok(())
}
