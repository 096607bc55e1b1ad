//! `ch05`: chapter 5's experiments. Without options, prints the byte model of scale + mask +
//! softmax, unfused against fused; with `--bench-softmax`, times both on the GPU against the
//! device's copy bandwidth.
//!
//! ```text
//! cargo run --release --bin ch05
//! cargo run --release --bin ch05 -- --bench-softmax --csv target/bench/ch05_softmax.csv
//! ```

use anyhow::Context;
use ch05_fused_computation::attn_support::report::heading;
use ch05_fused_computation::attn_support::units::format_bytes;
use ch05_fused_computation::attn_support::with_gpu;
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
    #[arg(long)]
    bench_softmax: bool,
    /// The softmax benchmark's CSV
    /// (`impl,dtype,batch,heads,nq,nk,mask,median_ms,modelled_bytes,gbps,copy_fraction`).
    #[arg(long, default_value = "target/bench/ch05_softmax.csv")]
    csv: PathBuf,
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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
            write_softmax_csv(&args.csv, &rows)?;
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
    Ok(())
}
