//! `ch02`: the chapter's demo, GPU-vs-CPU check, experiments with figures, and benchmarks.
//!
//! ```text
//! cargo run --release --bin ch02                       # demo, check, experiments, CPU benchmark
//! cargo run --release --bin ch02 -- --out docs/src/figures/ch02
//! cargo run --release --bin ch02 -- --only bench-gpu --csv target/bench/ch02_sdpa.csv
//! ```

use anyhow::{Context, bail};
use attn_support::gpu::Gpu;
use attn_support::plot::{Panels, save};
use attn_support::report::{TextTable, heading, progress_bar};
use attn_support::units::mib;
use attn_support::{data::randn, ndarray::s};
use ch02_scaled_dot_product::bench::{
    IMPL_NAME, bench_cpu, bench_gpu_shape, read_bench_shapes, run_gpu_benchmark,
};
use ch02_scaled_dot_product::check::{CheckCase, check_cases};
use ch02_scaled_dot_product::experiments::{
    Transform, complexity_experiment, overflow_experiment, scaling_experiment,
};
use ch02_scaled_dot_product::figures::{complexity_figure, overflow_figure, scaling_figure, weights_heatmap};
use ch02_scaled_dot_product::gpu::{SdpaKernel, sdpa_gpu_with_options};
use ch02_scaled_dot_product::{SdpaMask, SdpaOptions, attention_weights, attn_support, sdpa_with_lse};
use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};

/// Chapter 2: scaled dot-product attention. Runs a masked demo, checks the GPU kernel against
/// the CPU (skipped without a GPU, an error with ATTN_REQUIRE_GPU=1), runs the experiments
/// (why 1/√d, softmax overflow, N² cost) writing their figures, and benchmarks.
#[derive(Parser, Debug)]
#[command(name = "ch02", version)]
struct Args {
    /// Folder for the figures (PNG and SVG).
    #[arg(long, default_value = "target/figures/ch02")]
    out: PathBuf,
    /// Run only these sections (comma-separated). Default: demo, check, experiments, bench-cpu.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Also run the GPU benchmark (same as adding bench-gpu to the sections).
    #[arg(long)]
    bench_gpu: bool,
    /// Shapes of the GPU benchmark: one `batch heads seq head_dim causal` per line.
    #[arg(long, default_value = "xtask/baselines/ch02_bench_shapes.txt")]
    bench_shapes: PathBuf,
    /// Where the GPU benchmark writes its CSV.
    #[arg(long, default_value = "target/bench/ch02_sdpa.csv")]
    csv: PathBuf,
    /// Fewer samples and repeats: a quick smoke run.
    #[arg(long)]
    quick: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    Demo,
    Check,
    Experiments,
    BenchCpu,
    BenchGpu,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut sections = args.only.clone();
    if sections.is_empty() {
        sections = vec![Section::Demo, Section::Check, Section::Experiments, Section::BenchCpu];
    }
    if args.bench_gpu && !sections.contains(&Section::BenchGpu) {
        sections.push(Section::BenchGpu);
    }
    for section in &sections {
        match section {
            Section::Demo => demo(&args.out)?,
            Section::Check => check_gpu()?,
            Section::Experiments => experiments(&args.out, args.quick)?,
            Section::BenchCpu => cpu_benchmark(args.quick)?,
            Section::BenchGpu => gpu_benchmark(&args.bench_shapes, &args.csv, args.quick)?,
        }
    }
    Ok(())
}

/// A small causal + padding example, and a query that sees no key.
fn demo(out: &Path) -> anyhow::Result<()> {
    heading("demo: masked scaled dot-product attention");
    let (batch, n, d) = (2, 5, 4);
    let (q, k) = (randn((batch, 1, n, d), 1), randn((batch, 1, n, d), 2));
    // Batch entry 0 has 5 real keys, entry 1 has 3 (keys 3 and 4 are padding).
    let mask = SdpaMask::causal().with_key_padding(SdpaMask::padding_from_lengths(&[5, 3], n));
    let weights = attention_weights(q.view(), k.view(), &mask, &SdpaOptions::default())?;
    for b in 0..batch {
        println!("weights of batch entry {b} (causal; '·' = masked):");
        let visible = mask.visible_matrix(b, n, n);
        for i in 0..n {
            let row: Vec<String> =
                (0..n)
                    .map(|j| {
                        if visible[[i, j]] {
                            format!("{:5.3}", weights[[b, 0, i, j]])
                        } else {
                            "  ·  ".into()
                        }
                    })
                    .collect();
            println!("  q{i}: {}", row.join(" "));
        }
    }
    // Fewer queries than keys (Nq = 3, Nk = 6, as when decoding with a cache): the causal
    // diagonal is aligned bottom-right, so the last query sees every key.
    let (q3, k6) = (randn((1, 1, 3, d), 6), randn((1, 1, 6, d), 7));
    let w_decode = attention_weights(q3.view(), k6.view(), &SdpaMask::causal(), &SdpaOptions::default())?;
    let fig = Panels::new(
        (560, 460),
        vec![
            weights_heatmap(
                &weights.slice(s![1, 0, .., ..]).to_owned(),
                &mask,
                1,
                "Causal + padding (3 real keys of 5)",
            ),
            weights_heatmap(
                &w_decode.slice(s![0, 0, .., ..]).to_owned(),
                &SdpaMask::causal(),
                0,
                "Causal, Nq = 3 < Nk = 6 (bottom-right)",
            ),
        ],
    );
    let files = save(&fig, out, "masked_weights")?;
    println!("wrote {}", files[0].display());

    // Nq = 4 queries over Nk = 2 keys, causal bottom-right: queries 0 and 1 see no key.
    let (q, k, v) = (randn((1, 1, 4, d), 3), randn((1, 1, 2, d), 4), randn((1, 1, 2, d), 5));
    let (o, lse) = sdpa_with_lse(q.view(), k.view(), v.view(), &SdpaMask::causal())?;
    println!("causal with Nq = 4 > Nk = 2: rows 0 and 1 see no key → zeros, lse = −∞");
    for i in 0..4 {
        println!("  row {i}: out = {:7.4}, lse = {:8.4}", o.slice(s![0, 0, i, ..]), lse[[0, 0, i]]);
    }
    Ok(())
}

/// GPU vs CPU over a few shapes and masks; fails when a relative error exceeds 1e-5.
fn check_gpu() -> anyhow::Result<()> {
    heading("check: GPU kernel vs CPU");
    let Some(gpu) = Gpu::open_or_skip("the ch02 GPU check")? else { return Ok(()) };
    println!("device: {} ({})", gpu.name(), gpu.arch());
    let padded = |lengths: &[usize], nk| SdpaMask::padding_from_lengths(lengths, nk);
    let cases = [
        CheckCase::new(1, 1, 1, 1, 1, SdpaMask::none()),
        CheckCase::new(2, 3, 97, 97, 64, SdpaMask::causal()),
        CheckCase::new(2, 4, 128, 300, 32, SdpaMask::none().with_key_padding(padded(&[300, 150], 300)))
            .with_v_dim(48),
        CheckCase::new(2, 2, 200, 100, 16, SdpaMask::causal().with_key_padding(padded(&[100, 0], 100))),
        CheckCase::new(1, 2, 1000, 1000, 128, SdpaMask::causal().with_key_padding(padded(&[999], 1000))),
        CheckCase::new(1, 1, 513, 513, 256, SdpaMask::none()),
        CheckCase::new(1, 1, 64, 20000, 64, SdpaMask::causal()),
    ];
    let outcome = check_cases(&cases, 1e-5, |q, k, v, mask| {
        let gpu_result = sdpa_gpu_with_options(&gpu, q, k, v, mask, &SdpaOptions::default())?;
        Ok((gpu_result, sdpa_with_lse(q, k, v, mask)?))
    })?;
    if let Some(i) = outcome.failed {
        bail!("GPU and CPU disagree beyond 1e-5 at case {i}");
    }
    let worst = outcome.worst_rel_err;
    println!("all cases within 1e-5 (worst relative error {worst:.2e})");
    Ok(())
}

fn experiments(out: &Path, quick: bool) -> anyhow::Result<()> {
    heading("experiment 1: why 1/√d");
    let head_dims: Vec<usize> = (0..=10).map(|p| 1 << p).collect();
    let (keys, queries) = (128, if quick { 100 } else { 400 });
    let bar = progress_bar(head_dims.len(), "variance/entropy vs d");
    let mut points = Vec::new();
    for &d in &head_dims {
        points.extend(scaling_experiment(&[d], keys, queries, 2024 + d as u64));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("{keys} keys, {queries} queries per d, q and k entries ~ N(0, 1)");
    println!("‖J‖ = ‖diag(p) − ppᵀ‖_F, the softmax Jacobian: mean and median over the queries");
    println!(
        "{:>5} | {:>8} {:>7} {:>8} {:>8} {:>6} | {:>6} {:>7} {:>8} {:>8} {:>6}",
        "d",
        "var",
        "entropy",
        "‖J‖ mean",
        "‖J‖ med",
        "max p",
        "var",
        "entropy",
        "‖J‖ mean",
        "‖J‖ med",
        "max p"
    );
    println!("{:>5} | {:^42} | {:^40}", "", "unscaled q·k", "scaled q·k/√d");
    for p in &points {
        let (u, s) = (p.unscaled, p.scaled);
        println!(
            "{:>5} | {:>8.2} {:>7.3} {:>8.2e} {:>8.2e} {:>6.3} | {:>6.3} {:>7.3} {:>8.2e} {:>8.2e} {:>6.3}",
            p.head_dim,
            u.variance,
            u.entropy,
            u.jacobian_norm,
            u.jacobian_median,
            u.max_weight,
            s.variance,
            s.entropy,
            s.jacobian_norm,
            s.jacobian_median,
            s.max_weight
        );
    }
    let files = save(&scaling_figure(&points, keys), out, "scaling")?;
    println!("wrote {}", files[0].display());

    heading("experiment 2: naive vs stable softmax in f32");
    let factors: Vec<f32> = (0..=48).map(|i| 10f32.powf(i as f32 / 16.0)).collect();
    let shifts: Vec<f32> = (-40..=40).map(|i| i as f32 * 4.0).collect();
    let by_scale = overflow_experiment(Transform::Scale, &factors, 64, 5);
    let by_shift = overflow_experiment(Transform::Shift, &shifts, 64, 5);
    let first_bad = |pts: &[ch02_scaled_dot_product::experiments::OverflowPoint]| {
        pts.iter().find(|p| p.naive_non_finite).map(|p| (p.x, p.max_logit))
    };
    if let Some((c, m)) = first_bad(&by_scale) {
        println!(
            "scaled logits: naive first gives NaN/∞ at factor {c:.1} (largest logit {m:.1} > ln f32::MAX = 88.72)"
        );
    }
    let low = by_shift
        .iter()
        .filter(|p| p.naive_non_finite && p.x < 0.0)
        .map(|p| p.x)
        .fold(f64::NEG_INFINITY, f64::max);
    let high = by_shift
        .iter()
        .filter(|p| p.naive_non_finite && p.x > 0.0)
        .map(|p| p.x)
        .fold(f64::INFINITY, f64::min);
    println!(
        "shifted logits: naive is NaN for shifts ≤ {low} (all exp underflow) and ≥ {high} (exp overflows)"
    );
    let worst_stable = by_scale.iter().chain(&by_shift).map(|p| p.stable_err).fold(0.0, f64::max);
    println!(
        "stable softmax: worst error {worst_stable:.1e} over all {} rows",
        by_scale.len() + by_shift.len()
    );
    let files = save(&overflow_figure(&by_scale, &by_shift), out, "softmax_overflow")?;
    println!("wrote {}", files[0].display());

    heading("experiment 3: time and memory vs N");
    let ns: Vec<usize> =
        if quick { vec![128, 256, 512, 1024, 2048] } else { vec![128, 256, 512, 1024, 2048, 4096] };
    let d = 64;
    let bar = progress_bar(ns.len(), "sdpa time vs N");
    let points = complexity_experiment(&ns, d, if quick { 2 } else { 5 }, |i| bar.set_position(i as u64))?;
    bar.finish_and_clear();
    let columns = [("N", 6), ("time (ms)", 11), ("GFLOP/s", 10), ("scores (MiB)", 14), ("Q,K,V,O (MiB)", 14)];
    let mut table = TextTable::new(&columns);
    for p in &points {
        let gflops = p.flops / (p.cpu_ms * 1e-3) * 1e-9;
        let (scores, io) = (format!("{:.2}", mib(p.score_bytes)), format!("{:.3}", mib(p.io_bytes)));
        table.push([p.n.to_string(), format!("{:.3}", p.cpu_ms), format!("{gflops:.1}"), scores, io]);
    }
    print!("{}", table.render());
    let files = save(&complexity_figure(&points), out, "complexity")?;
    println!("wrote {}", files[0].display());
    Ok(())
}

fn cpu_benchmark(quick: bool) -> anyhow::Result<()> {
    heading("benchmark: CPU sdpa vs matrix product vs naive loops");
    let (batch, heads, n, d) = (1, 8, 1024, 64);
    let (repeats, naive_repeats) = if quick { (3, 1) } else { (9, 3) };
    let bar = progress_bar(repeats, "CPU benchmark rounds");
    let result = bench_cpu(batch, heads, n, d, repeats, naive_repeats, |_| bar.inc(1))?;
    bar.finish_and_clear();
    println!(
        "B={batch} H={heads} N={n} d={d}, f32, {:.2} GFLOP per call (4·B·H·N²·d), one thread",
        result.flops() * 1e-9
    );
    for (name, t, rate) in [
        ("sdpa (ndarray GEMMs + softmax)", result.sdpa, result.sdpa_gflops()),
        ("matrix products alone (.dot)", result.matmul, result.matmul_gflops()),
        ("naive loops", result.naive, result.naive_gflops()),
    ] {
        println!(
            "  {name:<32} {:>9.2} ms (min {:>8.2})  {rate:>6.2} GFLOP/s  (median of {})",
            t.median_ms, t.min_ms, t.repeats
        );
    }
    let verdict = |ok: bool| if ok { "goal met" } else { "goal NOT met" };
    println!(
        "  sdpa / matmul = {:.2}×  (goal ≥ 0.5×: {})",
        result.vs_matmul(),
        verdict(result.vs_matmul() >= 0.5)
    );
    println!(
        "  sdpa / naive  = {:.1}×  (goal ≥ 20×: {})",
        result.vs_naive(),
        verdict(result.vs_naive() >= 20.0)
    );
    let (best_matmul, best_naive) = result.best_ratios();
    println!(
        "  from the fastest repeats: sdpa / matmul = {best_matmul:.2}×, sdpa / naive = {best_naive:.1}×"
    );
    Ok(())
}

fn gpu_benchmark(shapes_path: &Path, csv: &Path, quick: bool) -> anyhow::Result<()> {
    heading("benchmark: GPU kernel");
    let shapes =
        read_bench_shapes(shapes_path).with_context(|| format!("reading {}", shapes_path.display()))?;
    let Some(gpu) = Gpu::open_or_skip("the ch02 GPU benchmark")? else { return Ok(()) };
    let kernel = SdpaKernel::load(&gpu)?;
    println!("device: {}; {} shapes from {}", gpu.name(), shapes.len(), shapes_path.display());
    run_gpu_benchmark(&shapes, quick, IMPL_NAME, csv, |shape, warmup, repeats| {
        bench_gpu_shape(&gpu, &kernel, shape, warmup, repeats)
    })?;
    Ok(())
}
