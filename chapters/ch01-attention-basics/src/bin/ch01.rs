//! `ch01`: the chapter's demo and experiments.
//!
//! 1. the toy sentence's weight table;
//! 2. the figures (PNG + SVG) in `--out`;
//! 3. with a GPU: both GPU versions checked against the f64 reference (exit code 1 if one is
//!    off by more than 1e-5 relative error);
//! 4. timings of the CPU and GPU versions over `--sizes`, printed and written to
//!    `timings.csv` and `timings.png`.

use anyhow::bail;
use attn_support::report::{TextTable, progress_bar, write_lines};
use ch01_attention_basics::attn_support::data::randn;
use ch01_attention_basics::attn_support::gpu::{REQUIRE_GPU_ENV, gpu_required};
use ch01_attention_basics::attn_support::plot;
use ch01_attention_basics::attn_support::timing::{Timing, cpu_time, gpu_time};
use ch01_attention_basics::attn_support::{Gpu, compare};
use ch01_attention_basics::figures::{QueryKeyGeometry, timing_chart, toy_heatmap};
use ch01_attention_basics::ndarray::Array2;
use ch01_attention_basics::{
    AttentionDims, DeviceAttention, attention, attention_naive, attention_naive_gpu, attention_reference_f64,
    attention_three_kernels_gpu, toy_example,
};
use clap::Parser;
use std::path::{Path, PathBuf};

/// Relative error above which a GPU result counts as wrong.
const GPU_TOLERANCE: f64 = 1e-5;

#[derive(Parser, Debug)]
#[command(name = "ch01", about = "Chapter 1: attention basics — softmax(Q Kᵀ) V on the CPU and the GPU")]
struct Args {
    /// Folder for the figures (PNG + SVG) and timings.csv.
    #[arg(long, default_value = "target/figures/ch01")]
    out: PathBuf,
    /// Sequence lengths N to time (n_q = n_k = N), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024,2048")]
    sizes: Vec<usize>,
    /// Head dimension d (= d_v) of the timings.
    #[arg(long, default_value_t = 64)]
    d: usize,
    /// Timed repeats per measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Skip the CPU versions for N above this (the naive loops take seconds at N = 4096).
    #[arg(long, default_value_t = 4096)]
    cpu_max_n: usize,
    /// Run the CPU parts only, even when a GPU is present.
    #[arg(long)]
    no_gpu: bool,
}

/// One timed measurement, one row of timings.csv.
struct Row {
    version: &'static str,
    n: usize,
    d: usize,
    timing: Timing,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.sizes.is_empty() || args.sizes.contains(&0) || args.d == 0 || args.repeats == 0 {
        bail!(
            "--sizes, --d and --repeats must be positive (got {:?}, {}, {})",
            args.sizes,
            args.d,
            args.repeats
        );
    }

    println!("== The toy sentence: who attends to whom ==\n");
    let toy = toy_example()?;
    print!("{}", toy.weight_table());
    for (query, key, w) in toy.strongest().iter().filter(|(q, _, _)| q == "it" || q == "tired") {
        println!("  \"{query}\" attends most to \"{key}\" (weight {w:.2})");
    }

    println!("\n== Figures ==\n");
    println!("writing figures to {}", args.out.display());
    for file in plot::save(&toy_heatmap(&toy), &args.out, "toy_weights")?.into_iter().chain(plot::save(
        &QueryKeyGeometry::example(),
        &args.out,
        "geometry",
    )?) {
        println!("  {}", file.display());
    }

    let gpu = open_gpu(args.no_gpu)?;
    if let Some(gpu) = &gpu {
        println!("\n== GPU check against the f64 reference ({}) ==\n", gpu.name());
        check_gpu(gpu)?;
    }

    println!("\n== Timings (d = {}, median of {} repeats) ==\n", args.d, args.repeats);
    let rows = time_all(&args, gpu.as_ref())?;
    print!("{}", timing_table(&rows));
    write_csv(&rows, &args.out.join("timings.csv"))?;
    let chart = timing_chart(rows.iter().map(|r| (r.version, r.n, r.timing.median_ms)), args.d);
    for file in plot::save(&chart, &args.out, "timings")? {
        println!("  {}", file.display());
    }
    Ok(())
}

/// The GPU, or None with the reason printed. `--no-gpu` under ATTN_REQUIRE_GPU=1 is an error:
/// a required GPU check must not pass by being switched off.
fn open_gpu(no_gpu: bool) -> anyhow::Result<Option<Gpu>> {
    if no_gpu {
        if gpu_required() {
            bail!("--no-gpu contradicts {REQUIRE_GPU_ENV}=1");
        }
        println!("\nGPU parts skipped: --no-gpu");
        return Ok(None);
    }
    Ok(Gpu::open_or_skip("the GPU parts of ch01")?)
}

/// Both GPU versions against the f64 reference on odd and regular shapes; an error if any is
/// off by more than [`GPU_TOLERANCE`].
fn check_gpu(gpu: &Gpu) -> anyhow::Result<()> {
    let shapes = [(1, 1, 1, 1), (7, 97, 33, 5), (97, 1000, 64, 48), (1024, 1024, 64, 64)];
    let table = TextTable::new(&[
        ("shape (n_q, n_k, d, d_v)", 0),
        ("version", 18),
        ("rel err", 10),
        ("max abs err", 0),
    ]);
    println!("{}", table.header());
    let mut failures = Vec::new();
    for (seed, (n_q, n_k, d, d_v)) in shapes.into_iter().enumerate() {
        let seed = 100 + 3 * seed as u64;
        let (q, k, v) = (randn((n_q, d), seed), randn((n_k, d), seed + 1), randn((n_k, d_v), seed + 2));
        let reference = attention_reference_f64(q.view(), k.view(), v.view())?;
        let results = [
            ("naive", attention_naive_gpu(gpu, q.view(), k.view(), v.view())?),
            ("three kernels", attention_three_kernels_gpu(gpu, q.view(), k.view(), v.view())?),
        ];
        for (version, out) in results {
            let c = compare(&out, &reference)?;
            let shape = format!("({n_q}, {n_k}, {d}, {d_v})");
            let cells = [
                shape.clone(),
                version.to_string(),
                format!("{:.2e}", c.rel_err),
                format!("{:.2e}", c.max_abs_err),
            ];
            println!("{}", table.line(&cells));
            if !c.within(GPU_TOLERANCE) {
                failures.push(format!("{version} at {shape}: {c}"));
            }
        }
    }
    if !failures.is_empty() {
        bail!("GPU check failed (tolerance {GPU_TOLERANCE:.0e}):\n  {}", failures.join("\n  "));
    }
    println!("GPU check passed: every relative error ≤ {GPU_TOLERANCE:.0e}");
    Ok(())
}

/// Time every version at every size. GPU times are kernel times from CUDA events, with the
/// inputs already on the device (no copies timed).
fn time_all(args: &Args, gpu: Option<&Gpu>) -> anyhow::Result<Vec<Row>> {
    let d = args.d;
    let cpu_sizes = args.sizes.iter().filter(|&&n| n <= args.cpu_max_n).count();
    let gpu_sizes = if gpu.is_some() { args.sizes.len() } else { 0 };
    let bar = progress_bar(2 * cpu_sizes + 2 * gpu_sizes, "timing");
    let mut rows = Vec::new();
    for &n in &args.sizes {
        let (q, k, v) = (randn((n, d), 1), randn((n, d), 2), randn((n, d), 3));
        let dims = AttentionDims { n_q: n, n_k: n, d, d_v: d };
        let mut record = |version: &'static str, timing: Timing| {
            rows.push(Row { version, n, d, timing });
            bar.inc(1);
        };
        if n <= args.cpu_max_n {
            bar.set_message(format!("cpu naive, N = {n}"));
            let (qs, ks, vs) = (flat(&q), flat(&k), flat(&v));
            // A failure inside the timed closure would be timed as a fast call; run once first.
            attention_naive(&qs, &ks, &vs, dims)?;
            record("cpu_naive", cpu_time(1, args.repeats, || attention_naive(&qs, &ks, &vs, dims)));
            bar.set_message(format!("cpu ndarray, N = {n}"));
            attention(q.view(), k.view(), v.view())?;
            record("cpu_ndarray", cpu_time(1, args.repeats, || attention(q.view(), k.view(), v.view())));
        }
        if let Some(gpu) = gpu {
            let mut dev = DeviceAttention::new(gpu, q.view(), k.view(), v.view())?;
            bar.set_message(format!("gpu naive, N = {n}"));
            record("gpu_naive", gpu_time(gpu, 2, args.repeats, || dev.launch_naive(gpu))?);
            bar.set_message(format!("gpu three kernels, N = {n}"));
            record("gpu_three_kernels", gpu_time(gpu, 2, args.repeats, || dev.launch_three_kernels(gpu))?);
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}

fn flat(a: &Array2<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

fn gflops(row: &Row) -> f64 {
    let dims = AttentionDims { n_q: row.n, n_k: row.n, d: row.d, d_v: row.d };
    row.timing.rate(dims.flops()) / 1e9
}

fn timing_table(rows: &[Row]) -> String {
    let mut table =
        TextTable::new(&[("version", 18), ("N", 6), ("d", 4), ("median ms", 12), ("GFLOP/s", 10)]);
    for r in rows {
        let (ms, rate) = (format!("{:.4}", r.timing.median_ms), format!("{:.2}", gflops(r)));
        table.push([r.version.to_string(), r.n.to_string(), r.d.to_string(), ms, rate]);
    }
    table.render()
}

/// `timings.csv`, in the columns `recorded::read_timings` reads back.
fn write_csv(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let lines = rows.iter().map(|r| format!("{},{},{},{:.6}", r.version, r.n, r.d, r.timing.median_ms));
    Ok(write_lines(path, "version,n,d,median_ms", lines)?)
}
