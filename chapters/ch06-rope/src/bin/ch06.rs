//! `ch06`: the chapter's comparison of position encodings, figures and tables, on the CPU
//! (under a second); with a GPU, the GPU RoPE checked against the CPU and the precision of its
//! angle sources at long positions. `--bench-gpu` instead times the RoPE kernel against the
//! device's copy bandwidth (a few seconds).
//!
//! ```text
//! cargo run --release --bin ch06                       # figures into target/figures/ch06
//! cargo run --release --bin ch06 -- --out docs/src/figures/ch06
//! cargo run --release --bin ch06 -- --bench-gpu --csv target/ch06_gpu_bench.csv
//! ```

use attn_support::data::randn;
use attn_support::gpu::{Gpu, with_gpu};
use attn_support::plot::save;
use attn_support::report::{TextTable, heading, write_lines};
use ch06_rope::agreement::agreement;
use ch06_rope::bench::{BENCH_CSV_HEADER, BENCH_SHAPES, run_rope_benchmark};
use ch06_rope::comparison::ENCODINGS;
use ch06_rope::curves::{pairs_with_full_turn, wavelengths};
use ch06_rope::decay::relative_upper_bound;
use ch06_rope::figures::{decay_figure, frequency_figure, rotation_figure};
use ch06_rope::gpu::{AngleSource, bf16};
use ch06_rope::precision::{ANGLE_CSV_HEADER, WINDOW_LEN, WINDOW_STARTS, angle_errors};
use ch06_rope::{RopeCache, RopeConfig, RopeLayout};
use clap::Parser;
use std::path::PathBuf;

/// Chapter 6: RoPE. Draws the rotation of a dimension pair, RoFormer's decay of q·k with the
/// distance, and the frequency and wavelength of each pair against context lengths, and prints
/// the numbers behind them.
#[derive(Parser, Debug)]
#[command(name = "ch06", version)]
struct Args {
    /// Folder for the figures (PNG and SVG) and the angle-precision CSV.
    #[arg(long, default_value = "target/figures/ch06")]
    out: PathBuf,
    /// Only time the GPU RoPE kernel against the copy bandwidth (bf16 and f32, both layouts,
    /// cache and on the fly) and write the CSV.
    #[arg(long)]
    bench_gpu: bool,
    /// Where --bench-gpu writes its CSV.
    #[arg(long, default_value = "target/ch06_gpu_bench.csv")]
    csv: PathBuf,
    /// Timed launches per variant (the median is reported).
    #[arg(long, default_value_t = 20)]
    repeats: usize,
}

/// Llama-style heads: d = 128; base 10 000 (Llama 2) and 500 000 (Llama 3).
const HEAD_DIM: usize = 128;
const BASES: [f32; 2] = [10_000.0, 500_000.0];
const CONTEXTS: [usize; 3] = [4096, 8192, 131_072];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.bench_gpu {
        with_gpu("the ch06 GPU benchmark", |gpu| bench(gpu, &args))?;
        return Ok(());
    }
    let config = RopeConfig::new(HEAD_DIM, BASES[0], RopeLayout::HalfRotation)?;

    heading("position encodings compared");
    let mut table =
        TextTable::new(&[("encoding", 0), ("position enters", 0), ("parameters", 0), ("extra cost", 0)])
            .left_aligned(0)
            .left_aligned(1)
            .left_aligned(2)
            .left_aligned(3)
            .divider_before(1)
            .divider_before(2)
            .divider_before(3);
    for e in &ENCODINGS {
        table.push([e.name, e.enters, e.parameters, e.cost]);
    }
    println!("{}", table.render());
    for e in &ENCODINGS {
        println!("{}\n  past the trained length: {}\n  used by: {}", e.name, e.extrapolation, e.used_by);
    }

    heading("rotation of one dimension pair");
    // Pair 0 turns 1 rad per position; pair d/8 turns 0.1 rad (θ = 10000^(−1/4)).
    let fig = rotation_figure(&config, 0, HEAD_DIM / 8, 9)?;
    println!("wrote {:?}", save(&fig, &args.out, "rope_pair_rotation")?);

    heading("decay of q·k with the relative distance (RoFormer §3.4.3)");
    let mut table = TextTable::new(&[("distance", 8), ("bound, base 1e4", 0), ("bound, base 5e5", 0)]);
    for r in [0usize, 1, 16, 256, 4096, 65_536] {
        let b = |base: f32| relative_upper_bound(r as f64, HEAD_DIM, f64::from(base));
        table.push([r.to_string(), format!("{:.2}", b(BASES[0])?), format!("{:.2}", b(BASES[1])?)]);
    }
    println!("{}", table.render());
    let fig = decay_figure(HEAD_DIM, &BASES, 65_536, 256)?;
    println!("wrote {:?}", save(&fig, &args.out, "rope_decay")?);

    heading("wavelength 2π/θ_i per pair against the context length");
    let mut table = TextTable::new(&[
        ("base", 8),
        ("shortest λ", 0),
        ("longest λ", 0),
        ("pairs turning within 4096", 0),
        ("8192", 0),
        ("131072", 0),
    ]);
    for base in BASES {
        let config = RopeConfig::new(HEAD_DIM, base, RopeLayout::HalfRotation)?;
        let w = wavelengths(&config);
        let mut row = vec![format!("{base}"), format!("{:.1}", w[0]), format!("{:.3e}", w[w.len() - 1])];
        row.extend(
            CONTEXTS.iter().map(|&c| format!("{} of {}", pairs_with_full_turn(&config, c), config.pairs())),
        );
        table.push(row);
    }
    println!("{}", table.render());
    let fig = frequency_figure(HEAD_DIM, &BASES, &CONTEXTS)?;
    println!("wrote {:?}", save(&fig, &args.out, "rope_frequencies")?);
    ch06_rope::scaling_figure::scalings_section(&args.out)?;

    with_gpu("the GPU RoPE sections", |gpu| {
        gpu_against_cpu(gpu)?;
        angle_precision(gpu, &args)
    })?;
    Ok(())
}

/// Tokens, heads, head dim of the GPU check: SmolLM2's heads, a token count no block size divides.
const CHECK_SHAPE: (usize, usize, usize) = (333, 9, 64);

/// Every kernel against the CPU on one shape: relative error, and whether it is bit-identical.
fn gpu_against_cpu(gpu: &Gpu) -> attn_support::Result<()> {
    let (tokens, heads, d) = CHECK_SHAPE;
    heading(&format!(
        "GPU RoPE against the CPU ({tokens} tokens at positions 0..{tokens}, {heads} heads, d = {d})"
    ));
    let positions: Vec<u32> = (0..tokens as u32).collect();
    let x = randn((tokens, heads, d), 6);
    let mut table = TextTable::new(&[
        ("layout", 12),
        ("storage", 0),
        ("angles", 22),
        ("rel err", 9),
        ("bit-identical", 0),
    ])
    .left_aligned(0)
    .left_aligned(2);
    for layout in [RopeLayout::HalfRotation, RopeLayout::Interleaved] {
        let cache = RopeCache::new(&RopeConfig::new(d, BASES[0], layout)?, tokens)?;
        for source in AngleSource::ALL {
            for a in [
                agreement::<f32>(gpu, &cache, source, &x, &positions)?,
                agreement::<bf16>(gpu, &cache, source, &x, &positions)?,
            ] {
                table.push([
                    format!("{layout:?}"),
                    a.storage.to_string(),
                    source.to_string(),
                    format!("{:.1e}", a.rel_err),
                    (if a.bit_identical { "yes" } else { "no" }).to_string(),
                ]);
            }
        }
    }
    println!("{}", table.render());
    println!("(bf16: the CPU on the same bf16 inputs, its f32 result rounded once to bf16)");
    Ok(())
}

/// The error of each angle source against f64 at positions up to 131 072.
fn angle_precision(gpu: &Gpu, args: &Args) -> attn_support::Result<()> {
    heading(
        "precision of cos/sin on the GPU at long positions (d = 128, max over 64 positions and all pairs)",
    );
    let mut table = TextTable::new(&[
        ("base", 7),
        ("positions", 15),
        ("cos/sin from", 30),
        ("err vs exact angle", 0),
        ("err vs f32 angle", 0),
    ])
    .left_aligned(2);
    let mut rows = Vec::new();
    for base in BASES {
        for first in WINDOW_STARTS {
            for r in angle_errors(gpu, HEAD_DIM, base, first, WINDOW_LEN)? {
                table.push([
                    format!("{base}"),
                    format!("{first}..{}", first + WINDOW_LEN),
                    r.source_name(),
                    format!("{:.2e}", r.vs_exact_angle),
                    format!("{:.2e}", r.vs_f32_angle),
                ]);
                rows.push(r.csv());
            }
        }
    }
    println!("{}", table.render());
    println!(
        "err vs exact angle includes the f32 angle's own rounding, about m·θ·2^-24 (the first row of \
         each window); err vs f32 angle is what the evaluation adds"
    );
    write_lines(&args.out.join("rope_angle_errors.csv"), ANGLE_CSV_HEADER, rows)
}

/// `--bench-gpu`: the RoPE kernel against the copy bandwidth, written to `--csv`.
fn bench(gpu: &Gpu, args: &Args) -> attn_support::Result<()> {
    heading("RoPE in place against the device copy (median of CUDA-event timings)");
    let rows = run_rope_benchmark(gpu, &BENCH_SHAPES, args.repeats)?;
    let mut table = TextTable::new(&[
        ("impl", 26),
        ("dtype", 0),
        ("tokens×heads×d", 16),
        ("median ms", 0),
        ("GB/s", 7),
        ("of copy", 0),
    ])
    .left_aligned(0);
    for r in &rows {
        let s = r.shape;
        table.push([
            r.impl_name.clone(),
            r.dtype.to_string(),
            format!("{}×{}×{}", s.tokens, s.heads, s.head_dim),
            format!("{:.4}", r.timing.median_ms),
            format!("{:.0}", r.gbps()),
            format!("{:.1} %", 100.0 * r.copy_fraction()),
        ]);
    }
    println!("{}", table.render());
    write_lines(&args.csv, BENCH_CSV_HEADER, rows.iter().map(|r| r.csv()))
}
