//! `ch12`: the optimisation ladder. Prints the rungs and their compiled resources, checks every
//! rung against the f64 reference under the 2× rule, autotunes the tile shape, and benchmarks
//! every rung on the shapes file (GPU sections are skipped without a GPU, an error with
//! ATTN_REQUIRE_GPU=1).
//!
//! ```text
//! cargo run --release --bin ch12                                # ladder, check
//! cargo run --release --bin ch12 -- --only bench --csv target/bench/ch12_ladder.csv
//! ```

use anyhow::Context;
use attn_support::gpu::Gpu;
use attn_support::report::{heading, progress_bar, write_lines};
use ch02::bench::{BenchShape, CSV_HEADER, read_bench_shapes};
use ch03_flash_attention::gpu::FlashKernel;
use ch12_performance_tuning::bench::{bench_shape, csv_row};
use ch12_performance_tuning::gpu::{LadderKernels, ladder_attention_gpu};
use ch12_performance_tuning::ladder::{LADDER_HEAD_DIMS, Rung, TUNED_SHAPES, overlap_shapes};
use ch12_performance_tuning::precision::{Bf16Inputs, Bf16Yardstick};
use ch12_performance_tuning::tuning::{Family, TileTable};
use ch12_performance_tuning::{SdpaMask, attn_support, ch02};
use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// Chapter 12: the bf16 FlashAttention optimisation ladder.
#[derive(Parser, Debug)]
#[command(name = "ch12", version)]
struct Args {
    /// Run only these sections (comma-separated). Default: ladder, check.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Shapes of the benchmark: one `batch heads seq head_dim causal` per line.
    #[arg(long, default_value = "xtask/baselines/ch12_bench_shapes.txt")]
    bench_shapes: PathBuf,
    /// Where the benchmark writes its CSV (chapter 2's columns, impl = the rung's name).
    #[arg(long, default_value = "target/bench/ch12_ladder.csv")]
    csv: PathBuf,
    /// Where the autotuner writes its table.
    #[arg(long, default_value = "target/bench/ch12_tile_table.json")]
    tile_table: PathBuf,
    /// Skip the f32 rung in the benchmark (it is 10× slower than the others).
    #[arg(long)]
    skip_f32: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    Ladder,
    Check,
    Bench,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sections =
        if args.only.is_empty() { vec![Section::Ladder, Section::Check] } else { args.only.clone() };
    let Some(gpu) = Gpu::open_or_skip("the chapter 12 GPU sections")? else {
        print_ladder(None)?;
        return Ok(());
    };
    println!("device: {}", gpu.name());
    let kernels = LadderKernels::new(&gpu)?;
    if sections.contains(&Section::Ladder) {
        print_ladder(Some((&gpu, &kernels)))?;
    }
    if sections.contains(&Section::Check) {
        check(&gpu, &kernels)?;
    }
    if sections.contains(&Section::Bench) {
        bench(&gpu, &kernels, &args)?;
    }
    Ok(())
}

/// The rungs, their ideas, and (with a GPU) registers and spills per thread of each entry point.
fn print_ladder(gpu: Option<(&Gpu, &LadderKernels)>) -> anyhow::Result<()> {
    heading("the ladder");
    let mut rungs: Vec<Rung> = Rung::FIXED.to_vec();
    rungs.extend(TUNED_SHAPES.map(Rung::Tuned));
    for &t in overlap_shapes(64).iter().chain(overlap_shapes(128)) {
        if !rungs.contains(&Rung::WgmmaOverlap(t)) {
            rungs.push(Rung::WgmmaOverlap(t));
        }
    }
    for rung in rungs {
        let mut line = format!("{:<24} {:<58}", rung.name(), rung.idea());
        if let (Some((gpu, kernels)), true) = (gpu, rung != Rung::F32Flash) {
            for d in LADDER_HEAD_DIMS {
                // Rung 7's shapes differ per head dim: print those that exist at d.
                let Ok(spec) = rung.spec(d) else { continue };
                let (regs, local) = kernels.resources(gpu, rung, d)?;
                line += &format!("  d{d}: {regs} regs, {local} B spill, {} B smem", spec.shared_bytes);
            }
        }
        println!("{line}");
    }
    if let Some((gpu, _)) = gpu {
        let f32_kernel = FlashKernel::load(gpu)?;
        for d in [64, 128] {
            let (regs, local) = f32_kernel.resources(d)?;
            println!("r0_f32_flash d{d}: {regs} regs, {local} B spill");
        }
    }
    Ok(())
}

/// Every bf16 rung on a few odd shapes: error against the f64 reference next to the naive
/// bf16 implementation's, and the 2× rule.
fn check(gpu: &Gpu, kernels: &LadderKernels) -> anyhow::Result<()> {
    heading("accuracy: every rung against the f64 reference (rule: error ≤ 2 × naive bf16)");
    let mut failures = 0;
    for d in LADDER_HEAD_DIMS {
        for (n, causal) in [(97, false), (1025, true)] {
            let inputs = Bf16Inputs::random(1, 4, n, n, d, 5);
            let mask = if causal { SdpaMask::causal() } else { SdpaMask::none() };
            let yardstick = Bf16Yardstick::new(&inputs, &mask)?;
            let mut rungs: Vec<Rung> = Rung::FIXED[1..].to_vec();
            rungs.extend(TUNED_SHAPES.map(Rung::Tuned));
            rungs.extend(overlap_shapes(d).iter().map(|&t| Rung::WgmmaOverlap(t)));
            for rung in rungs {
                let (out, lse) = ladder_attention_gpu(gpu, kernels, rung, &inputs, &mask)?;
                let acc = yardstick.judge(&out, &lse)?;
                failures += usize::from(!acc.within_rule());
                let verdict = if acc.within_rule() { "ok" } else { "FAIL" };
                println!("d={d:<3} N={n:<5} causal={causal:<5} {:<24} {acc} {verdict}", rung.name());
            }
        }
    }
    anyhow::ensure!(failures == 0, "{failures} rung/shape pairs broke the 2× rule");
    Ok(())
}

/// Autotune, then time every rung (and the tuned pick) at every shape; write CSV and table.
fn bench(gpu: &Gpu, kernels: &LadderKernels, args: &Args) -> anyhow::Result<()> {
    heading("benchmark: every rung at every shape");
    let shapes = read_bench_shapes(&args.bench_shapes)
        .with_context(|| format!("reading {}", args.bench_shapes.display()))?;
    let families = [Family::MmaSync, Family::WgmmaOverlap];
    let table = TileTable::measure(gpu, kernels, &shapes, &families)?;
    table.save(&args.tile_table)?;
    let f32_kernel = FlashKernel::load(gpu)?;
    let bar = progress_bar(shapes.len(), "ladder benchmark");
    let mut lines = Vec::new();
    for shape in &shapes {
        let mut rungs: Vec<Rung> = Rung::FIXED.to_vec();
        if args.skip_f32 {
            rungs.retain(|r| *r != Rung::F32Flash);
        }
        let dims = ch12_performance_tuning::bench::dims_of(shape);
        for family in families {
            rungs.push(table.pick(family, &dims, shape.causal));
        }
        for (rung, row) in bench_shape(gpu, kernels, &f32_kernel, *shape, &rungs)? {
            // The tuned picks get their rung's name without the shape: one row per rung.
            let name = match rung {
                Rung::Tuned(_) => "r5_tuned".to_string(),
                Rung::WgmmaOverlap(_) => "r7_wgmma_overlap".to_string(),
                _ => rung.name(),
            };
            bar.println(format!(
                "{}  {:<22} {:8.3} ms {:7.1} TFLOP/s",
                describe(shape),
                rung.name(),
                row.timing.median_ms,
                row.tflops()
            ));
            lines.push(csv_row(&name, &row));
        }
        bar.inc(1);
    }
    bar.finish();
    // The autotuner's own timings of every candidate, as rows too.
    for entry in &table.entries {
        let shape = BenchShape {
            batch: 1,
            heads: entry.batch_heads,
            seq: entry.seq,
            head_dim: entry.head_dim,
            causal: entry.causal,
        };
        let shape = shapes.iter().copied().find(|s| {
            s.batch * s.heads == entry.batch_heads
                && (s.seq, s.head_dim, s.causal) == (shape.seq, shape.head_dim, shape.causal)
        });
        for (rung, ms) in &entry.candidates {
            let timing = attn_support::timing::Timing::from_samples(vec![*ms]);
            if let Some(shape) = shape {
                lines.push(csv_row(&rung.name(), &ch02::bench::GpuBenchRow { shape, timing }));
            }
        }
    }
    write_lines(&args.csv, CSV_HEADER, lines)?;
    Ok(())
}

fn describe(s: &BenchShape) -> String {
    format!("B={} H={} N={:<5} d={:<3} causal={}", s.batch, s.heads, s.seq, s.head_dim, s.causal as u8)
}
