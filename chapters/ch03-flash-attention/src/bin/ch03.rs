//! `ch03`: the chapter's demo, GPU-vs-CPU check, figures, IO-model table and GPU benchmarks.
//!
//! ```text
//! cargo run --release --bin ch03                       # demo, check, figures, io-model
//! cargo run --release --bin ch03 -- --out docs/src/figures/ch03
//! cargo run --release --bin ch03 -- --only bench-gpu --csv target/bench/ch03_flash.csv
//! cargo run --release --bin ch03 -- --only memory-sweep,long-run
//! ```

use anyhow::{Context, bail};
use attn_support::gpu::Gpu;
use attn_support::plot::save;
use attn_support::report::{TextTable, heading, progress_bar};
use attn_support::units::{MIB, mib};
use attn_support::{compare, data::randn};
use ch02::{SdpaDims, SdpaOptions};
use ch02_scaled_dot_product::bench::{read_bench_shapes, run_gpu_benchmark};
use ch02_scaled_dot_product::check::{CheckCase, check_cases};
use ch02_scaled_dot_product::gpu::SdpaKernel;
use ch03_flash_attention::bench::{
    IMPL_NAME, SweepKernel, bench_gpu_shape, long_run, score_bytes, time_memory_point, warm_up,
};
use ch03_flash_attention::figures::{
    TimeMemoryRow, TrafficFigure, online_softmax_example, online_softmax_figure, time_memory_chart,
};
use ch03_flash_attention::gpu::{FlashKernel, FlashTiles, SUPPORTED_HEAD_DIMS, flash_attention_gpu};
use ch03_flash_attention::io_model::{
    LoopOrder, flash_attention_hbm, flash_bound, flash2_attention_hbm, standard_attention_counted,
    standard_attention_hbm, standard_bound, tiled_traffic,
};
use ch03_flash_attention::tiled::{
    TileSizes, flash_attention_counted, flash_attention_cpu, online_softmax_steps,
};
use ch03_flash_attention::{SdpaMask, attn_support, ch02};
use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};

/// Chapter 3: FlashAttention. Runs the online-softmax demo, checks the GPU kernel against the
/// tiled CPU code (skipped without a GPU, an error with ATTN_REQUIRE_GPU=1), draws the
/// figures, prints the IO model, and on request benchmarks the kernel.
#[derive(Parser, Debug)]
#[command(name = "ch03", version)]
struct Args {
    /// Folder for the figures (PNG and SVG).
    #[arg(long, default_value = "target/figures/ch03")]
    out: PathBuf,
    /// Run only these sections (comma-separated). Default: demo, check, figures, io-model.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Also run the GPU benchmark on the shapes file (adds bench-gpu).
    #[arg(long)]
    bench_gpu: bool,
    /// Also measure time and peak memory vs N for chapter 2's kernel and this one, and run
    /// B=1, H=8, N=65536, d=64 (adds memory-sweep and long-run).
    #[arg(long)]
    memory_sweep: bool,
    /// Shapes of the GPU benchmark: one `batch heads seq head_dim causal` per line.
    #[arg(long, default_value = "xtask/baselines/ch03_bench_shapes.txt")]
    bench_shapes: PathBuf,
    /// Where the GPU benchmark writes its CSV (chapter 2's columns, impl = ch03_flash).
    #[arg(long, default_value = "target/bench/ch03_flash.csv")]
    csv: PathBuf,
    /// Fewer repeats: a quick smoke run.
    #[arg(long)]
    quick: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    Demo,
    Check,
    Figures,
    IoModel,
    BenchGpu,
    MemorySweep,
    LongRun,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut sections = args.only.clone();
    if sections.is_empty() {
        sections = vec![Section::Demo, Section::Check, Section::Figures, Section::IoModel];
    }
    let mut add = |s: Section, on: bool| {
        if on && !sections.contains(&s) {
            sections.push(s);
        }
    };
    add(Section::BenchGpu, args.bench_gpu);
    add(Section::MemorySweep, args.memory_sweep);
    add(Section::LongRun, args.memory_sweep);
    for section in &sections {
        match section {
            Section::Demo => demo()?,
            Section::Check => check_gpu()?,
            Section::Figures => figures(&args.out)?,
            Section::IoModel => io_model()?,
            Section::BenchGpu => gpu_benchmark(&args.bench_shapes, &args.csv, args.quick)?,
            Section::MemorySweep => memory_sweep(&args.out, args.quick)?,
            Section::LongRun => long_sequence(args.quick)?,
        }
    }
    Ok(())
}

/// The online softmax of one row, block by block, and tiled attention equal to chapter 2's.
fn demo() -> anyhow::Result<()> {
    heading("demo: the online softmax, 4 keys at a time");
    let (scores, values) = online_softmax_example();
    let value_rows: Vec<Vec<f32>> = values.iter().map(|&v| vec![v]).collect();
    println!("scores {scores:?}\nvalues {values:?}");
    let mut table = TextTable::new(&[
        ("keys seen", 0),
        ("max m", 8),
        ("sum l", 10),
        ("correction", 11),
        ("output so far", 0),
    ]);
    for st in online_softmax_steps(&scores, &value_rows, 4)? {
        let numbers = [st.m, st.l, st.correction].map(|x| format!("{x:.4}"));
        table.push(
            [st.keys_seen.to_string()].into_iter().chain(numbers).chain([format!("{:.6}", st.output[0])]),
        );
    }
    print!("{}", table.render());
    let exact: f64 =
        ch02::reference::softmax_reference(&scores).iter().zip(&values).map(|(p, &v)| p * v as f64).sum();
    println!("softmax(s)·v computed in one pass (f64): {exact:.6}");

    heading("demo: tiled attention = chapter 2's attention, for any tile sizes");
    let (b, h, n, d) = (2, 2, 100, 16);
    let (q, k, v) = (randn((b, h, n, d), 1), randn((b, h, n, d), 2), randn((b, h, n, d), 3));
    let mask = SdpaMask::causal().with_key_padding(SdpaMask::padding_from_lengths(&[100, 61], n));
    let (want, want_lse) = ch02::sdpa_with_lse(q.view(), k.view(), v.view(), &mask)?;
    for (br, bc) in [(1, 1), (7, 13), (32, 32), (100, 100)] {
        let tiles = TileSizes::new(br, bc)?;
        let (out, lse) =
            flash_attention_cpu(q.view(), k.view(), v.view(), &mask, tiles, &SdpaOptions::default())?;
        println!(
            "  Br = {br:>3}, Bc = {bc:>3}: out vs sdpa {}; lse {}",
            compare(&out, &want)?,
            compare(&lse, &want_lse)?
        );
    }
    println!("kernel tiles (kernels/ch03_flash_forward.cu), 128 threads per block:");
    for d in SUPPORTED_HEAD_DIMS {
        let t = FlashTiles::for_head_dim(d)?;
        println!(
            "  d = {d:>3}: Br = {:>3}, Bc = {:>2}, {:>6} bytes of shared memory per block",
            t.block_rows,
            t.block_keys,
            t.shared_bytes()
        );
    }
    Ok(())
}

/// GPU vs the tiled CPU code over head dims, masks and odd lengths; fails beyond 1e-5.
fn check_gpu() -> anyhow::Result<()> {
    heading("check: GPU kernel vs tiled CPU attention");
    let Some(gpu) = Gpu::open_or_skip("the ch03 GPU check")? else { return Ok(()) };
    let kernel = FlashKernel::load(&gpu)?;
    println!("device: {} ({})", gpu.name(), gpu.arch());
    for d in SUPPORTED_HEAD_DIMS {
        let (regs, local) = kernel.resources(d)?;
        println!("  ch03_flash_forward_d{d}: {regs} registers per thread, {local} bytes of local memory");
    }
    let padded = |lengths: &[usize], nk| SdpaMask::padding_from_lengths(lengths, nk);
    let cases = [
        CheckCase::new(1, 1, 1, 1, 32, SdpaMask::none()),
        CheckCase::new(2, 3, 97, 97, 64, SdpaMask::causal()),
        CheckCase::new(2, 4, 128, 300, 32, SdpaMask::none().with_key_padding(padded(&[300, 150], 300))),
        CheckCase::new(2, 2, 200, 100, 64, SdpaMask::causal().with_key_padding(padded(&[100, 0], 100))),
        CheckCase::new(1, 2, 1000, 1000, 128, SdpaMask::causal().with_key_padding(padded(&[999], 1000))),
        CheckCase::new(1, 1, 64, 20000, 64, SdpaMask::causal()),
    ];
    let opts = SdpaOptions::default();
    let outcome = check_cases(&cases, 1e-5, |q, k, v, mask| {
        let tiles = FlashTiles::for_head_dim(q.shape()[3])?.tile_sizes();
        let gpu_result = flash_attention_gpu(&gpu, q, k, v, mask, &opts)?;
        Ok((gpu_result, flash_attention_cpu(q, k, v, mask, tiles, &opts)?))
    })?;
    if let Some(i) = outcome.failed {
        bail!("GPU and CPU disagree beyond 1e-5 at case {i}");
    }
    let worst = outcome.worst_rel_err;
    println!("all cases within 1e-5 (worst relative error {worst:.2e}; f32 FFMA, no TF32)");
    Ok(())
}

fn figures(out: &Path) -> anyhow::Result<()> {
    heading("figures");
    let (scores, values) = online_softmax_example();
    for (fig, name) in [
        (online_softmax_figure(&scores, &values, 4)?, "online_softmax"),
        (TrafficFigure::default().figure()?, "hbm_traffic"),
    ] {
        println!("wrote {}", save(&fig, out, name)?[0].display());
    }
    Ok(())
}

/// HBM traffic of standard and tiled attention: the model, its bounds, the CPU counts.
fn io_model() -> anyhow::Result<()> {
    heading("IO model: HBM bytes of one head, d = 64, M = 32768 floats (128 KiB) on chip");
    let (d, m) = (64, 32 * 1024);
    let columns = [("N", 6), ("standard", 12), ("/bound", 7), ("FA (K/V out)", 12), ("/bound", 7)];
    let mut table = TextTable::new(&[&columns[..], &[("FA-2 (Q out)", 12), ("/bound", 7)]].concat())
        .divider_before(1)
        .divider_before(3)
        .divider_before(5);
    for n in (8..=16).map(|k| 1usize << k) {
        let std_bytes = standard_attention_hbm(n, d)?.bytes(4) as f64;
        let fa = flash_attention_hbm(n, d, m)?.bytes(4) as f64;
        let fa2 = flash2_attention_hbm(n, d, m)?.bytes(4) as f64;
        let (sb, fb) = (4.0 * standard_bound(n, d), 4.0 * flash_bound(n, d, m));
        let (size, ratio) = (|bytes: f64| format!("{:.2} MiB", mib(bytes)), |r: f64| format!("{r:.2}"));
        let cells =
            [size(std_bytes), ratio(std_bytes / sb), size(fa), ratio(fa / fb), size(fa2), ratio(fa2 / fb)];
        table.push([n.to_string()].into_iter().chain(cells));
    }
    print!("{}", table.render());
    println!(
        "(\"/bound\": bytes over 4·(Nd + N²) for standard attention, 4·(Nd + N²d²/M) for the tiled ones)"
    );

    heading("IO model vs counts measured on the CPU code (B=1, H=2, N=300, d=64, Br=Bc=64)");
    let (q, k, v) = (randn((1, 2, 300, 64), 5), randn((1, 2, 300, 64), 6), randn((1, 2, 300, 64), 7));
    let dims = SdpaDims { batch: 1, heads: 2, nq: 300, nk: 300, head_dim: 64, v_dim: 64 };
    let tiles = TileSizes::new(64, 64)?;
    for mask in [SdpaMask::none(), SdpaMask::causal()] {
        let opts = SdpaOptions::default();
        let counted = flash_attention_counted(q.view(), k.view(), v.view(), &mask, tiles, &opts)?.traffic;
        let model = tiled_traffic(&dims, tiles, mask.causal, LoopOrder::QOuter)?;
        let (_, _, standard) = standard_attention_counted(q.view(), k.view(), v.view(), &mask, &opts)?;
        println!(
            "  causal = {}: tiled counted {} = model {} elements ({}); standard counted {}",
            mask.causal as u8,
            counted.total(),
            model.total(),
            if counted == model { "equal" } else { "DIFFERENT" },
            standard.total()
        );
        if counted != model {
            bail!("the tiled traffic model and the CPU count disagree: {model} vs {counted}");
        }
    }

    heading("the GPU kernel's own traffic (its tiles in the Q-outer model), f32");
    for (n, causal) in [(1024, false), (4096, false), (4096, true), (16384, false)] {
        let dims = SdpaDims { batch: 8, heads: 16, nq: n, nk: n, head_dim: 64, v_dim: 64 };
        let tiles = FlashTiles::for_head_dim(64)?.tile_sizes();
        let flash = tiled_traffic(&dims, tiles, causal, LoopOrder::QOuter)?.bytes(4) as f64;
        let standard = ch03_flash_attention::io_model::standard_traffic(&dims).bytes(4) as f64;
        println!(
            "  B=8 H=16 N={n:<5} d=64 causal={}: kernel {:>8.1} MiB, standard attention {:>9.1} MiB ({:.0}× more)",
            causal as u8,
            flash / MIB,
            standard / MIB,
            standard / flash
        );
    }
    Ok(())
}

fn gpu_benchmark(shapes_path: &Path, csv: &Path, quick: bool) -> anyhow::Result<()> {
    heading("benchmark: FlashAttention kernel (f32)");
    let shapes =
        read_bench_shapes(shapes_path).with_context(|| format!("reading {}", shapes_path.display()))?;
    let Some(gpu) = Gpu::open_or_skip("the ch03 GPU benchmark")? else { return Ok(()) };
    let kernel = FlashKernel::load(&gpu)?;
    println!("device: {}; {} shapes from {}", gpu.name(), shapes.len(), shapes_path.display());
    run_gpu_benchmark(&shapes, quick, IMPL_NAME, csv, |shape, warmup, repeats| {
        bench_gpu_shape(&gpu, &kernel, shape, warmup, repeats)
    })?;
    Ok(())
}

/// Time and peak device memory vs N, chapter 2's kernel against this one.
fn memory_sweep(out: &Path, quick: bool) -> anyhow::Result<()> {
    let (batch, heads, d) = (1, 8, 64);
    heading(&format!("time and peak device memory vs N: B={batch}, H={heads}, d={d}, f32, no mask"));
    let Some(gpu) = Gpu::open_or_skip("the ch03 memory sweep")? else { return Ok(()) };
    let (ch02_kernel, flash) = (SdpaKernel::load(&gpu)?, FlashKernel::load(&gpu)?);
    warm_up(&gpu, &ch02_kernel, &flash)?;
    let ns: Vec<usize> = (10..=if quick { 14 } else { 16 }).map(|k| 1 << k).collect();
    let bar = progress_bar(2 * ns.len(), "time/memory points");
    let mut rows = Vec::new();
    println!(
        "{:>20} {:>6} | {:>10} {:>8} | {:>10} {:>10} | {:>12}",
        "kernel", "N", "median ms", "TFLOP/s", "peak MiB", "buffers", "scores would"
    );
    for &n in &ns {
        for kernel in [SweepKernel::Ch02Sdpa, SweepKernel::Ch03Flash] {
            // Chapter 2's kernel takes seconds per call at the longest N: at most 3 s of repeats.
            let repeats = if quick { 3 } else { 10 };
            let shape = (batch, heads, n, d);
            let p = time_memory_point(&gpu, &ch02_kernel, &flash, kernel, shape, false, repeats, 3000.0)?;
            bar.suspend(|| match (p.timing, p.peak_bytes) {
                (Some(t), Some(peak)) => println!(
                    "{:>20} {n:>6} | {:>10.3} {:>8.2} | {:>10.1} {:>10.1} | {:>8.1} MiB",
                    kernel.name(),
                    t.median_ms,
                    p.tflops().unwrap_or(f64::NAN),
                    peak as f64 / MIB,
                    p.buffer_bytes as f64 / MIB,
                    score_bytes(&p.dims) / MIB
                ),
                _ => println!("{:>20} {n:>6} | not run: {}", kernel.name(), p.note),
            });
            rows.push(TimeMemoryRow {
                implementation: kernel.name().to_string(),
                n,
                ms: p.timing.map_or(f64::NAN, |t| t.median_ms),
                peak_mib: p.peak_bytes.map_or(f64::NAN, |b| b as f64 / MIB),
            });
            bar.inc(1);
        }
        // What standard attention would hold: the buffers plus the materialised scores.
        let dims = SdpaDims { batch, heads, nq: n, nk: n, head_dim: d, v_dim: d };
        rows.push(TimeMemoryRow {
            implementation: "scores materialised (B·H·N²·4 bytes + buffers, computed)".into(),
            n,
            ms: f64::NAN,
            peak_mib: (score_bytes(&dims) + ch03_flash_attention::bench::buffer_bytes(&dims) as f64) / MIB,
        });
    }
    bar.finish_and_clear();
    let fig = time_memory_chart(&rows, &format!("B = {batch}, H = {heads}, d = {d}, f32"));
    println!("wrote {}", save(&fig, out, "time_memory")?[0].display());
    Ok(())
}

/// B=1, H=8, N=65536, d=64: time, peak memory, and a few rows against the f64 reference.
fn long_sequence(quick: bool) -> anyhow::Result<()> {
    let (batch, heads, n, d) = (1, 8, 65536, 64);
    heading(&format!("long sequence: B={batch}, H={heads}, N={n}, d={d}, f32"));
    let Some(gpu) = Gpu::open_or_skip("the ch03 long run")? else { return Ok(()) };
    let (ch02_kernel, flash) = (SdpaKernel::load(&gpu)?, FlashKernel::load(&gpu)?);
    warm_up(&gpu, &ch02_kernel, &flash)?;
    let dims = SdpaDims { batch, heads, nq: n, nk: n, head_dim: d, v_dim: d };
    println!(
        "the scores alone would take B·H·N²·4 = {:.1} GB; the device has {:.1} GB",
        score_bytes(&dims) * 1e-9,
        gpu.memory()?.1 as f64 * 1e-9
    );
    if let Err(e) = ch02_kernel.launch_config(&dims) {
        println!("chapter 2's kernel cannot run it: {e}");
    }
    let rows = [(0, 0, 0), (0, 3, 1), (0, 5, 12345), (0, 6, n / 2), (0, 7, n - 1)];
    for causal in [false, true] {
        let run = long_run(&gpu, &flash, (batch, heads, n, d), causal, &rows, 1, if quick { 2 } else { 5 })?;
        println!(
            "  causal={}: {:.1} ms ({:.2} TFLOP/s), peak device memory {:.1} MiB (buffers {:.1} MiB); \
             {} rows vs f64: out {}, lse {}",
            causal as u8,
            run.timing.median_ms,
            run.tflops(),
            run.peak_bytes as f64 / MIB,
            run.buffer_bytes as f64 / MIB,
            rows.len(),
            run.out_check,
            run.lse_check
        );
        if !(run.out_check.within(1e-5) && run.lse_check.within(1e-5)) {
            bail!("the long run disagrees with the f64 reference beyond 1e-5");
        }
    }
    Ok(())
}
