//! The sections of the `ch12` binary.

use crate::Args;
use anyhow::Context;
use ch02::bench::{BenchShape, CSV_HEADER, read_bench_shapes};
use ch03_flash_attention::gpu::FlashKernel;
use ch12_performance_tuning::approximate::{ApproxConfig, approx_experiment, approx_figure};
use ch12_performance_tuning::attn_support::gpu::Gpu;
use ch12_performance_tuning::attn_support::plot::save;
use ch12_performance_tuning::attn_support::report::{heading, progress_bar, write_lines};
use ch12_performance_tuning::bench::{bench_shape, csv_row, device_buffers};
use ch12_performance_tuning::ceilings::{CeilingOptions, measure_ceilings};
use ch12_performance_tuning::gpu::{LadderKernels, ladder_attention_gpu};
use ch12_performance_tuning::graphs::time_direct_vs_graph;
use ch12_performance_tuning::ladder::{LADDER_HEAD_DIMS, Rung, TUNED_SHAPES, overlap_shapes, tma_shapes};
use ch12_performance_tuning::precision::{Bf16Inputs, Bf16Yardstick};
use ch12_performance_tuning::roofline::measure::{POINTS_CSV_HEADER, measure_book_kernels, points_csv};
use ch12_performance_tuning::streams::StreamSet;
use ch12_performance_tuning::tables::approx_table;
use ch12_performance_tuning::tuning::{Family, TileTable};
use ch12_performance_tuning::{SdpaMask, attn_support, ch02, figures};

type GpuPair<'a> = Option<(&'a Gpu, &'a LadderKernels)>;

/// Every rung of the ladder, each tuned shape once.
fn all_rungs() -> Vec<Rung> {
    let mut rungs: Vec<Rung> = Rung::FIXED.to_vec();
    rungs.extend(TUNED_SHAPES.map(Rung::Tuned));
    for &t in overlap_shapes(64).iter().chain(overlap_shapes(128)) {
        if !rungs.contains(&Rung::WgmmaOverlap(t)) {
            rungs.push(Rung::WgmmaOverlap(t));
        }
    }
    for &t in tma_shapes(64).iter().chain(tma_shapes(128)) {
        for rung in [Rung::Tma(t), Rung::PingPong(t)] {
            if !rungs.contains(&rung) {
                rungs.push(rung);
            }
        }
    }
    rungs
}

/// The rungs, their ideas, and (with a GPU) registers and spills per thread of each entry point.
pub fn print_ladder(gpu: GpuPair) -> anyhow::Result<()> {
    heading("the ladder");
    for rung in all_rungs() {
        let mut line = format!("{:<26} {:<58}", rung.name(), rung.idea());
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
        for d in LADDER_HEAD_DIMS {
            let (regs, local) = f32_kernel.resources(d)?;
            println!("r0_f32_flash d{d}: {regs} regs, {local} B spill");
        }
    }
    Ok(())
}

/// Every bf16 rung on a few odd shapes: error against the f64 reference next to the naive
/// bf16 implementation's, and the 2× rule.
pub fn check(gpu: &Gpu, kernels: &LadderKernels) -> anyhow::Result<()> {
    heading("accuracy: every rung against the f64 reference (rule: error ≤ 2 × naive bf16)");
    let mut failures = 0;
    for d in LADDER_HEAD_DIMS {
        for (n, causal) in [(97, false), (1025, true)] {
            let inputs = Bf16Inputs::random(1, 4, n, n, d, 5);
            let mask = if causal { SdpaMask::causal() } else { SdpaMask::none() };
            let yardstick = Bf16Yardstick::new(&inputs, &mask)?;
            for rung in all_rungs().into_iter().filter(|r| *r != Rung::F32Flash && r.spec(d).is_ok()) {
                let (out, lse) = ladder_attention_gpu(gpu, kernels, rung, &inputs, &mask)?;
                let acc = yardstick.judge(&out, &lse)?;
                failures += usize::from(!acc.within_rule());
                let verdict = if acc.within_rule() { "ok" } else { "FAIL" };
                println!("d={d:<3} N={n:<5} causal={causal:<5} {:<26} {acc} {verdict}", rung.name());
            }
        }
    }
    anyhow::ensure!(failures == 0, "{failures} rung/shape pairs broke the 2× rule");
    Ok(())
}

/// Autotune the four families (rungs 5, 7, 8, 9), then time every rung (and the tuned picks) at every shape; write
/// `ch12_ladder.csv` and `ch12_tile_table.json`.
pub fn bench(gpu: &Gpu, kernels: &LadderKernels, args: &Args) -> anyhow::Result<()> {
    heading("benchmark: every rung at every shape");
    let shapes = read_bench_shapes(&args.bench_shapes)
        .with_context(|| format!("reading {}", args.bench_shapes.display()))?;
    let families = [Family::MmaSync, Family::WgmmaOverlap, Family::Tma, Family::PingPong];
    let table = TileTable::measure(gpu, kernels, &shapes, &families)?;
    table.save(&args.results.join("ch12_tile_table.json"))?;
    let f32_kernel = FlashKernel::load(gpu)?;
    let bar = progress_bar(shapes.len(), "ladder benchmark");
    let mut lines = Vec::new();
    for shape in &shapes {
        let mut rungs: Vec<Rung> = Rung::FIXED.to_vec();
        if args.skip_f32 {
            rungs.retain(|r| *r != Rung::F32Flash);
        }
        let dims = shape.dims();
        rungs.extend(families.map(|family| table.pick(family, &dims, shape.causal)));
        for (rung, row) in bench_shape(gpu, kernels, &f32_kernel, *shape, &rungs)? {
            // The tuned picks get their rung's name without the shape: one row per rung.
            let name = match rung {
                Rung::Tuned(_) => "r5_tuned".to_string(),
                Rung::WgmmaOverlap(_) => "r7_wgmma_overlap".to_string(),
                Rung::Tma(_) => "r8_tma".to_string(),
                Rung::PingPong(_) => "r9_pingpong".to_string(),
                _ => rung.name(),
            };
            println!(
                "{}  {:<26} {:9.3} ms {:7.1} TFLOP/s",
                describe(shape),
                rung.name(),
                row.timing.median_ms,
                row.tflops()
            );
            lines.push(csv_row(&name, &row));
        }
        bar.inc(1);
    }
    bar.finish();
    // The autotuner's own timings of every candidate, as rows too.
    for entry in &table.entries {
        let shape = shapes.iter().copied().find(|s| {
            s.batch * s.heads == entry.batch_heads
                && (s.seq, s.head_dim, s.causal) == (entry.seq, entry.head_dim, entry.causal)
        });
        for (rung, ms) in entry.candidates.iter().filter(|_| shape.is_some()) {
            let timing = attn_support::timing::Timing::from_samples(vec![*ms]);
            let shape = shape.expect("filtered on is_some");
            lines.push(csv_row(&rung.name(), &ch02::bench::GpuBenchRow { shape, timing }));
        }
    }
    write_lines(&args.results.join("ch12_ladder.csv"), CSV_HEADER, lines)?;
    Ok(())
}

fn describe(s: &BenchShape) -> String {
    format!("B={} H={} N={:<5} d={:<3} causal={}", s.batch, s.heads, s.seq, s.head_dim, s.causal as u8)
}

/// The copy bandwidth and GEMM rates of this device, as `ch12_ceilings.json`.
pub fn ceilings(gpu: &Gpu, args: &Args) -> anyhow::Result<()> {
    heading("ceilings: copy bandwidth, bf16 and f32 GEMM rates (cuBLAS)");
    let c = measure_ceilings(gpu, &CeilingOptions::default())?;
    println!(
        "copy {:.2} TB/s (kernel {:.2}, memcpy {:.2}); bf16 GEMM {:.0} TFLOP/s; f32 GEMM {:.1} TFLOP/s",
        c.copy_bytes_per_s * 1e-12,
        c.copy_kernel_bytes_per_s * 1e-12,
        c.memcpy_bytes_per_s * 1e-12,
        c.bf16_gemm_flops_per_s * 1e-12,
        c.f32_gemm_flops_per_s * 1e-12
    );
    let text = serde_json::to_string_pretty(&c)?;
    write_lines(&args.results.join("ch12_ceilings.json"), &text, [])?;
    Ok(())
}

/// Every kernel of the book timed once, as `ch12_roofline.csv`.
pub fn roofline(gpu: &Gpu, kernels: &LadderKernels, args: &Args) -> anyhow::Result<()> {
    heading("roofline: every kernel of the book, timed in this run");
    let mut rungs: Vec<Rung> = Rung::FIXED[1..].to_vec();
    rungs.push(Rung::Tuned(TUNED_SHAPES[4]));
    rungs.push(Rung::WgmmaOverlap(overlap_shapes(128)[2]));
    rungs.push(Rung::Tma(tma_shapes(128)[1]));
    rungs.push(Rung::PingPong(tma_shapes(128)[1]));
    let points = measure_book_kernels(gpu, kernels, &rungs)?;
    for p in &points {
        println!(
            "{:<22} {:>8.2} FLOP/B {:>8.1} TFLOP/s {:>7.3} ms",
            p.label,
            p.intensity(),
            p.flops_per_s() * 1e-12,
            p.seconds * 1e3
        );
    }
    write_lines(&args.results.join("ch12_roofline.csv"), POINTS_CSV_HEADER, points_csv(&points))?;
    Ok(())
}

/// Rung 7 at small shapes, launched one by one and replayed from a CUDA graph of 20 launches, as
/// `ch12_graphs.csv`.
pub fn graphs(gpu: &Gpu, kernels: &LadderKernels, args: &Args) -> anyhow::Result<()> {
    heading("CUDA graphs: 20 launches of rung 7, direct vs one graph (B=1, H=16, d=64)");
    let rung = Rung::WgmmaOverlap(overlap_shapes(64)[0]);
    let mut lines = Vec::new();
    for seq in [64, 128, 256, 512, 1024, 2048] {
        let shape = BenchShape { batch: 1, heads: 16, seq, head_dim: 64, causal: false };
        let mut buffers = device_buffers(gpu, &shape)?;
        kernels.launch(gpu, rung, &mut buffers)?; // load the function before any capture
        gpu.synchronize()?;
        let t = time_direct_vs_graph(gpu, 20, 3, 10, |stream| {
            kernels.launch_on(gpu, stream, rung, &mut buffers)
        })?;
        println!(
            "N={seq:<5} direct {:7.2} µs/launch, graph {:7.2} µs/launch ({:.2}×)",
            t.direct_us_per_launch,
            t.graph_us_per_launch,
            t.speedup()
        );
        lines
            .push(format!("{seq},{},{:.3},{:.3}", t.launches, t.direct_us_per_launch, t.graph_us_per_launch));
    }
    write_lines(
        &args.results.join("ch12_graphs.csv"),
        "seq,launches,direct_us_per_launch,graph_us_per_launch",
        lines,
    )?;
    Ok(())
}

/// Eight independent rung-8 calls (B=1, N=2048, d=128) of growing head count, on one stream and
/// spread over 1–8 streams, as `ch12_streams.csv`. Runs last among the GPU sections: it turns
/// cudarc's event tracking off for the rest of the process.
pub fn streams(gpu: &Gpu, kernels: &LadderKernels, args: &Args) -> anyhow::Result<()> {
    const CALLS: usize = 8;
    heading("streams: 8 independent rung-8 calls (B=1, N=2048, d=128), one stream vs k streams");
    // SAFETY: from here on every buffer is used on one stream at a time: filled on gpu.stream,
    // which is synchronised before any other stream reads it, then read and written only by
    // StreamSet launches ordered by its fork/join events; each is dropped after the origin
    // stream is synchronised (time_serial_vs_concurrent ends with that synchronisation).
    unsafe { gpu.ctx.disable_event_tracking() };
    let rung = Rung::Tma(tma_shapes(128)[tma_shapes(128).len() - 1]);
    // Streams map onto a fixed number of hardware work queues (8 unless this variable says
    // otherwise, up to 32); two streams that share a queue are ordered as if they were one.
    let connections = std::env::var("CUDA_DEVICE_MAX_CONNECTIONS").unwrap_or_else(|_| "unset (8)".into());
    println!("CUDA_DEVICE_MAX_CONNECTIONS: {connections}");
    let sets: Vec<StreamSet> =
        [1, 2, 4, 8].into_iter().map(|k| StreamSet::new(gpu, k)).collect::<Result<_, _>>()?;
    let mut lines = Vec::new();
    for heads in [1, 2, 4, 8, 16, 32] {
        let shape = BenchShape { batch: 1, heads, seq: 2048, head_dim: 128, causal: false };
        let mut calls: Vec<_> = (0..CALLS).map(|_| device_buffers(gpu, &shape)).collect::<Result<_, _>>()?;
        kernels.launch(gpu, rung, &mut calls[0])?; // load the function before timing
        gpu.synchronize()?;
        let (spec, cfg) = LadderKernels::launch_config(rung, &shape.dims())?;
        let blocks = (cfg.grid_dim.0 * cfg.grid_dim.1) as usize;
        for set in &sets {
            let t = set.time_serial_vs_concurrent(CALLS, 3, 15, |call, stream| {
                kernels.launch_on(gpu, stream, rung, &mut calls[call])
            })?;
            println!(
                "H={heads:<3} {blocks:>4} blocks/call  {} streams: one stream {:6.3} ms, spread {:6.3} ms \
                 ({:.2}×; CPU enqueue {:.3} ms), as a graph {:6.3} ms ({:.2}×)",
                t.streams,
                t.serial_ms,
                t.concurrent_ms,
                t.speedup(),
                t.enqueue_ms,
                t.graph_ms,
                t.graph_speedup()
            );
            lines.push(format!(
                "{},{heads},{},{blocks},{CALLS},{},{:.4},{:.4},{:.4},{:.4}",
                spec.entry, shape.seq, t.streams, t.serial_ms, t.concurrent_ms, t.enqueue_ms, t.graph_ms
            ));
        }
    }
    write_lines(&args.results.join("ch12_streams.csv"), figures::STREAMS_CSV_HEADER, lines)?;
    Ok(())
}

/// Block-sparse, linear and Performer attention against exact attention on the CPU, as
/// `ch12_approximate.csv` and a figure.
pub fn approximate(args: &Args) -> anyhow::Result<()> {
    heading("the algorithm level: approximate attention on the CPU");
    let config = ApproxConfig::default();
    let points = approx_experiment(&config)?;
    // The notebook's table: times, errors on random and on local inputs, the mass dropped.
    print!("{}", approx_table(&points));
    let lines = points.iter().map(|p| {
        format!(
            "{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4e},{:.4e},{:.4e},{:.4e},{:.4e},{:.4e},{:.4e},{:.4e}",
            p.n,
            p.density,
            p.exact_ms,
            p.block_sparse_ms,
            p.linear_ms,
            p.performer_ms,
            p.random.block_sparse,
            p.random.linear,
            p.random.performer,
            p.random.dropped_mass,
            p.local.block_sparse,
            p.local.linear,
            p.local.performer,
            p.local.dropped_mass
        )
    });
    let header = "n,density,exact_ms,block_sparse_ms,linear_ms,performer_ms,random_sparse_err,random_linear_err,\
                  random_performer_err,random_dropped_mass,local_sparse_err,local_linear_err,local_performer_err,\
                  local_dropped_mass";
    write_lines(&args.results.join("ch12_approximate.csv"), header, lines)?;
    for path in save(&approx_figure(&points, &config), &args.out, "ch12_approximate")? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Every figure whose inputs are in the results folder.
pub fn figures(args: &Args) -> anyhow::Result<()> {
    heading(&format!("figures from {}", args.results.display()));
    for path in figures::draw_all(&args.results, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
