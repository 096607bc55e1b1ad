//! `ch04`: one input through every backend (CPU, and GPU when present) against the f64
//! reference; on request the benchmark grid with the dispatcher's picks.
//!
//! ```text
//! cargo run --release --bin ch04
//! cargo run --release --bin ch04 -- --bench-grid --bench-shapes xtask/baselines/ch04_grid_shapes.txt \
//!     --csv target/bench/ch04_grid.csv --table target/bench/ch04_autotune.json
//! ncu --kernel-name ch02_sdpa_f32 ... ch04 --profile-only fused --bench-shapes xtask/gpu/ncu_fused_shapes.txt
//! cargo run --release --bin ch04 -- --figures-from docs/src/results/h100-2026-11-25-ch04 \
//!     --out docs/src/figures/ch04
//! ```

use anyhow::Context;
use ch04_attention_backends::attn_support::compare;
use ch04_attention_backends::attn_support::data::randn;
use ch04_attention_backends::attn_support::gpu::Gpu;
use ch04_attention_backends::attn_support::plot;
use ch04_attention_backends::attn_support::report::{progress_bar, write_lines};
use ch04_attention_backends::bench::{
    CSV_HEADER, DISPATCH_CSV_HEADER, GpuBackends, MEMORY_CSV_HEADER, Outcome, bench_point, dispatch_rows,
    table_from_points, warm_up,
};
use ch04_attention_backends::ch02::bench::read_bench_shapes;
use ch04_attention_backends::ch02::reference::sdpa_reference;
use ch04_attention_backends::ch03::bench::random_buffers;
use ch04_attention_backends::unfused::check_sizes;
use ch04_attention_backends::{Backend, Device, SdpaMask, SdpaOptions, attention, figures};
use clap::Parser;
use std::path::{Path, PathBuf};

/// Chapter 4: attention backends. Without options, computes one input with every backend on
/// the CPU (and the GPU when there is one) and prints each one's error against the f64
/// reference. With --bench-grid, times every GPU backend at every shape of a shapes file.
#[derive(Parser, Debug)]
#[command(name = "ch04", version)]
struct Args {
    /// Run the benchmark grid (needs a GPU).
    #[arg(long)]
    bench_grid: bool,
    /// Shapes file: `batch heads seq head_dim causal` per line. (`--shapes`, its name before
    /// the other chapters' `--bench-shapes` was adopted, still works: recorded runs used it.)
    #[arg(long, alias = "shapes", default_value = "xtask/baselines/ch04_grid_shapes.txt")]
    bench_shapes: PathBuf,
    /// Timing CSV to write (`impl,batch,heads,seq,head_dim,causal,median_ms,tflops`); the
    /// peak-memory CSV goes beside it as `<stem>_memory.csv`, the dispatcher's picks as
    /// `<stem>_dispatch.csv`.
    #[arg(long, default_value = "target/bench/ch04_grid.csv")]
    csv: PathBuf,
    /// Save the measured autotune table (JSON) here.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Timed launches per point (fewer when they exceed --budget-ms).
    #[arg(long, default_value_t = 20)]
    repeats: usize,
    /// Kernel time allowed per point, in ms.
    #[arg(long, default_value_t = 1000.0)]
    budget_ms: f64,
    /// Draw the figures from a recorded run's folder (ch04_grid.csv, ch04_grid_dispatch.csv
    /// and, when present, torch_math_ch04.csv / torch_efficient_ch04.csv); needs no GPU.
    #[arg(long)]
    figures_from: Option<PathBuf>,
    /// Where figures go.
    #[arg(long, default_value = "target/figures/ch04")]
    out: PathBuf,
    /// Launch only this backend (unfused, fused or flash), once per shape of --bench-shapes,
    /// with nothing timed, checked or written: the run a profiler wraps
    /// (`ncu --kernel-name ch02_sdpa_f32 ... ch04 --profile-only fused`), so that its report
    /// holds one launch per shape, in the file's order. A shape the backend cannot run is an
    /// error, since it would shift that order.
    #[arg(long)]
    profile_only: Option<Backend>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.figures_from {
        return figures_from(dir, &args.out);
    }
    if let Some(backend) = args.profile_only {
        return profile_only(backend, &args.bench_shapes);
    }
    if args.bench_grid { bench_grid(&args) } else { demo() }
}

/// One launch of `backend` per shape, synchronised, each on fresh random inputs; prints which
/// launch is which shape (the profiler's report numbers them in this order).
fn profile_only(backend: Backend, shapes_path: &Path) -> anyhow::Result<()> {
    let shapes = read_bench_shapes(shapes_path)?;
    let gpu = Gpu::open().context("--profile-only needs a GPU")?;
    let backends = GpuBackends::load(&gpu)?;
    println!("{backend} once per shape of {} on {}", shapes_path.display(), gpu.name());
    for (launch, shape) in shapes.iter().enumerate() {
        let dims = shape.dims();
        let what = format!(
            "launch {launch}: {backend} B={} H={} N={} d={}",
            shape.batch, shape.heads, shape.seq, shape.head_dim
        );
        let mut buffers =
            random_buffers(&gpu, shape.batch, shape.heads, shape.seq, shape.head_dim, shape.causal)?;
        let mut scores = match backend {
            Backend::Unfused => {
                check_sizes(&dims).with_context(|| what.clone())?;
                Some(gpu.zeros::<f32>(shape.batch * shape.heads * shape.seq * shape.seq)?)
            }
            _ => None,
        };
        backends.launch(backend, &gpu, &mut buffers, scores.as_mut()).with_context(|| what.clone())?;
        gpu.synchronize()?;
        println!("{what}, causal {}", shape.causal);
    }
    Ok(())
}

fn figures_from(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let rows = figures::read_recorded_run(dir)?;
    let dispatch_path = dir.join("ch04_grid_dispatch.csv");
    let dispatch_text = std::fs::read_to_string(&dispatch_path)
        .with_context(|| format!("reading {}", dispatch_path.display()))?;
    let picks = figures::parse_dispatch_picks(&dispatch_text)?;
    let pick_of = |combo: figures::Combo, seq: usize| {
        picks.iter().find(|(c, n, _)| *c == combo && *n == seq).map_or(String::new(), |p| p.2.clone())
    };
    let mut written = plot::save(&figures::time_vs_n(&rows)?, out, "ch04_time_vs_n")?;
    written.extend(plot::save(&figures::winner_map(&rows)?, out, "ch04_winner_map")?);
    written.extend(plot::save(&figures::dispatch_slowdown(&rows, pick_of)?, out, "ch04_dispatch")?);
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn demo() -> anyhow::Result<()> {
    let (b, h, n, d) = (2, 4, 300, 64);
    let (q, k, v) = (randn((b, h, n, d), 1), randn((b, h, n, d), 2), randn((b, h, n, d), 3));
    // Causal, and batch entry 1 padded after 200 keys.
    let mask = SdpaMask::causal().with_key_padding(SdpaMask::padding_from_lengths(&[n, 200], n));
    let (want, want_lse) = sdpa_reference(q.view(), k.view(), v.view(), &mask, None)?;
    println!("B={b} H={h} N={n} d={d}, causal, batch 1 padded after 200 keys; errors vs the f64 reference:");
    let gpu = Gpu::open_or_skip("the GPU backends")?;
    let mut devices = vec![("cpu", Device::Cpu)];
    if let Some(gpu) = &gpu {
        println!("GPU: {}", gpu.name());
        devices.push(("gpu", Device::Gpu(gpu)));
    }
    for (device_name, device) in devices {
        for backend in Backend::ALL {
            let (out, lse) =
                attention(backend, device, q.view(), k.view(), v.view(), &mask, &SdpaOptions::default())
                    .with_context(|| format!("{backend} on {device_name}"))?;
            println!(
                "  {device_name} {backend:<8} output {}   lse {}",
                compare(&out, &want)?,
                compare(&lse, &want_lse)?
            );
        }
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().map_or("ch04_grid".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}_{suffix}.csv"))
}

fn bench_grid(args: &Args) -> anyhow::Result<()> {
    let shapes = read_bench_shapes(&args.bench_shapes)?;
    let gpu = Gpu::open().context("the benchmark grid needs a GPU")?;
    let backends = GpuBackends::load(&gpu)?;
    warm_up(&gpu, &backends)?;
    println!("{} shapes × {} backends on {}", shapes.len(), Backend::ALL.len(), gpu.name());
    let bar = progress_bar(shapes.len() * Backend::ALL.len(), "grid");
    let mut points = Vec::new();
    for shape in &shapes {
        for backend in Backend::ALL {
            bar.set_message(format!(
                "{backend} B={} H={} N={} d={}",
                shape.batch, shape.heads, shape.seq, shape.head_dim
            ));
            let point = bench_point(&gpu, &backends, backend, *shape, args.repeats, args.budget_ms)?;
            if let Outcome::Unsupported(why) | Outcome::OutOfMemory(why) = &point.outcome {
                bar.println(format!("{}: {why}", point.csv()));
            }
            points.push(point);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    write_lines(&args.csv, CSV_HEADER, points.iter().map(|p| p.csv()))?;
    write_lines(&sibling(&args.csv, "memory"), MEMORY_CSV_HEADER, points.iter().map(|p| p.memory_csv()))?;
    let table = table_from_points(gpu.name(), &points);
    if let Some(path) = &args.table {
        table.save(path)?;
        println!("wrote {}", path.display());
    }
    let rows = dispatch_rows(&gpu, &table, &points);
    write_lines(&sibling(&args.csv, "dispatch"), DISPATCH_CSV_HEADER, rows.iter().map(|r| r.csv()))?;
    println!(
        "\n{:>5} {:>5} {:>6} {:>4}  {:>18}  {:>18}  slowdown",
        "batch", "heads", "N", "d", "best", "heuristic"
    );
    let mut within = 0;
    for r in &rows {
        let s = r.shape;
        let show = |b: Option<(Backend, f64)>| b.map_or("-".to_string(), |(b, ms)| format!("{b} {ms:.3} ms"));
        let slowdown = r.heuristic_slowdown();
        within += slowdown.is_some_and(|x| x <= 1.10) as usize;
        println!(
            "{:>5} {:>5} {:>6} {:>4}  {:>18}  {:>18}  {}",
            s.batch,
            s.heads,
            s.seq,
            s.head_dim,
            show(r.best),
            show(r.heuristic.and_then(|(b, ms)| ms.map(|ms| (b, ms)))),
            slowdown.map_or("-".into(), |x| format!("{x:.2}×"))
        );
    }
    println!(
        "heuristic within 10 % of the best at {within} of {} shapes (the table's pick is the best by construction)",
        rows.len()
    );
    Ok(())
}
