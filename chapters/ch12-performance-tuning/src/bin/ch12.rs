//! `ch12`: the optimisation ladder. Prints the rungs and their compiled resources, checks every
//! rung against the f64 reference under the 2× rule, autotunes the tile shapes, benchmarks every
//! rung, measures the machine's ceilings, places every kernel of the book on the roofline, times
//! CUDA graphs against direct launches and one stream against several, runs the
//! approximate-attention experiment on the CPU, and draws the figures. GPU sections are skipped without a GPU (an error with
//! ATTN_REQUIRE_GPU=1).
//!
//! ```text
//! cargo run --release --bin ch12                                  # ladder, check, approximate
//! cargo run --release --bin ch12 -- --only bench,ceilings,roofline,graphs,streams,figures
//! cargo run --release --bin ch12 -- --only figures --results docs/src/results/h100-2026-11-25-ch12
//! ```

#[path = "ch12/sections.rs"]
mod sections;

use attn_support::gpu::Gpu;
use ch12_performance_tuning::attn_support;
use ch12_performance_tuning::gpu::LadderKernels;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// Chapter 12: the bf16 FlashAttention optimisation ladder.
#[derive(Parser, Debug)]
#[command(name = "ch12", version)]
pub struct Args {
    /// Run only these sections (comma-separated). Default: ladder, check, approximate.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Folder for the figures (PNG and SVG).
    #[arg(long, default_value = "target/figures/ch12")]
    out: PathBuf,
    /// Folder for the measured results (CSV, JSON), read back by `figures`.
    #[arg(long, default_value = "target/bench/ch12")]
    results: PathBuf,
    /// Shapes of the benchmark: one `batch heads seq head_dim causal` per line.
    #[arg(long, default_value = "xtask/baselines/ch12_bench_shapes.txt")]
    bench_shapes: PathBuf,
    /// Skip the f32 rung in the benchmark (it is 10× slower than the others).
    #[arg(long)]
    skip_f32: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Section {
    Ladder,
    Check,
    Bench,
    Ceilings,
    Roofline,
    Graphs,
    Streams,
    Approximate,
    Figures,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sections = if args.only.is_empty() {
        vec![Section::Ladder, Section::Check, Section::Approximate]
    } else {
        args.only.clone()
    };
    let gpu_sections = [
        Section::Check,
        Section::Bench,
        Section::Ceilings,
        Section::Roofline,
        Section::Graphs,
        Section::Streams,
    ];
    let gpu = if sections.iter().any(|s| gpu_sections.contains(s) || *s == Section::Ladder) {
        Gpu::open_or_skip("the chapter 12 GPU sections")?
    } else {
        None
    };
    let kernels = match &gpu {
        Some(gpu) => {
            println!("device: {}", gpu.name());
            Some(LadderKernels::new(gpu)?)
        }
        None => None,
    };
    let with_gpu = gpu.as_ref().zip(kernels.as_ref());
    for section in sections {
        match (section, with_gpu) {
            (Section::Ladder, _) => sections::print_ladder(with_gpu)?,
            (Section::Approximate, _) => sections::approximate(&args)?,
            (Section::Figures, _) => sections::figures(&args)?,
            (Section::Check, Some((g, k))) => sections::check(g, k)?,
            (Section::Bench, Some((g, k))) => sections::bench(g, k, &args)?,
            (Section::Ceilings, Some((g, _))) => sections::ceilings(g, &args)?,
            (Section::Roofline, Some((g, k))) => sections::roofline(g, k, &args)?,
            (Section::Graphs, Some((g, k))) => sections::graphs(g, k, &args)?,
            (Section::Streams, Some((g, k))) => sections::streams(g, k, &args)?,
            (s, None) => println!("skipped {s:?}: no GPU"),
        }
    }
    Ok(())
}
