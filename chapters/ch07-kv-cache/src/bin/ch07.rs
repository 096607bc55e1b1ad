//! `ch07`: the KV cache. On the CPU: the memory table and figure; with the real model
//! (`cargo xtask model`), K's outlier channels, the low-rank error curves and the time per token
//! with and without a cache; with a GPU, decode attention over bf16, INT8, FP8 and NVFP4 caches
//! checked against the CPU. `--quality` measures every cache on the real model (perplexity and
//! greedy agreement, about ten minutes on 2 cores); `--bench-decode` times GPU decode attention
//! against the device's copy bandwidth.
//!
//! ```text
//! cargo run --release --bin ch07
//! cargo run --release --bin ch07 -- --quality --out docs/src/figures/ch07 --csv target/ch07_quality.csv
//! cargo run --release --bin ch07 -- --figures-from docs/src/results/cpu-2026-12-05-ch07 --out docs/src/figures/ch07
//! cargo run --release --bin ch07 -- --figures-from docs/src/results/cpu-2026-12-06-ch07-quality --out docs/src/figures/ch07
//! cargo run --release --bin ch07 -- --bench-decode --out target/figures/ch07 --csv target/ch07_decode.csv
//! ```

use attn_support::gpu::{Gpu, with_gpu};
use attn_support::plot::save;
use attn_support::report::{TextTable, heading, write_lines};
use ch07_kv_cache::experiments::quality_table;
use ch07_kv_cache::gpu::bench::{
    BENCH_CSV_HEADER, BenchRow, CALLS_PER_TIMING, DecodeBenchOptions, MODELS, WARMUP, bandwidth_figure,
    run_decode_benchmark,
};
use ch07_kv_cache::gpu::check::gpu_against_cpu;
use ch07_kv_cache::gpu::recorded::read_decode_run;
use ch07_kv_cache::gpu::{CacheElement, DEFAULT_KEY_GROUP, DecodeKernel, WavePlan};
use ch07_kv_cache::prelude::{
    CacheSpec, Calibration, EVAL_TEXT, LlamaConfig, Protocol, QualityRow, TokenTime, channel_figure,
    channel_magnitudes, load_smollm2, low_rank_curves, low_rank_figure, memory_figure, memory_table,
    model_path_or_skip, pareto_figure, read_quality, read_token_times, time_per_token, token_time_figure,
};
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
    /// Untimed launches per point before them (0 under a profiler: one launch per point).
    #[arg(long, default_value_t = WARMUP)]
    warmup: usize,
    /// Decode steps back to back between one pair of events in --bench-decode, the time
    /// reported per step (1 under a profiler).
    #[arg(long, default_value_t = CALLS_PER_TIMING)]
    calls_per_timing: usize,
    /// The longest chunk of tokens one block of --bench-decode takes (a multiple of 128; default
    /// 8192 with whole waves, 512 or 1024 with --min-waves).
    #[arg(long)]
    max_chunk: Option<usize>,
    /// Plan --bench-decode's splits for at least this many waves of blocks instead of whole waves
    /// (the plan before run 22: --min-waves 2).
    #[arg(long, conflicts_with = "whole_waves")]
    min_waves: Option<usize>,
    /// Plan --bench-decode's splits in this many whole waves of blocks (default 1; more where
    /// --max-chunk needs them).
    #[arg(long)]
    whole_waves: Option<usize>,
    /// In --bench-decode, launch each kernel (the main kernel, the combine) after the kernel
    /// before it in stream order rather than as its programmatic dependent (the default from
    /// compute capability 9.0).
    #[arg(long)]
    serial_launch: bool,
    /// Tokens per INT8 key scale row, in --bench-decode and in --quality's INT8 cache.
    #[arg(long, default_value_t = DEFAULT_KEY_GROUP, value_parser = positive_key_group)]
    key_group: usize,
    /// Measure every cache on the real model (perplexity over 1024 tokens of the evaluation
    /// text, greedy agreement after a 512-token prompt) and draw the Pareto figure.
    #[arg(long)]
    quality: bool,
    /// Tokens per forward call in --quality (1: token by token, as generation reads the cache).
    #[arg(long, default_value_t = 16)]
    chunk: usize,
    /// Only the caches whose name contains one of these (comma-separated), besides the f32
    /// reference, in --quality.
    #[arg(long, value_delimiter = ',')]
    caches: Vec<String>,
    /// Redraw the real-model figures from a folder of recorded CSVs (quality.csv,
    /// token_times.csv) instead of measuring.
    #[arg(long)]
    figures_from: Option<PathBuf>,
    /// Redraw the decode-bandwidth figures from a recorded GPU run (RUN/ch07/ch07_decode.csv).
    #[arg(long)]
    decode_figures_from: Option<PathBuf>,
}

/// `--key-group`, refused at once when it is 0 (rather than after `--quality`'s f32 reference,
/// a minute in, where the cache would refuse it).
fn positive_key_group(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("a key group of 0 tokens: each K scale row needs at least one token".into()),
        Ok(g) => Ok(g),
        Err(e) => Err(format!("{text:?} is not a number of tokens: {e}")),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.bench_decode {
        with_gpu("the ch07 decode benchmark", |gpu| bench_decode(gpu, &args))?;
        return Ok(());
    }
    if let Some(dir) = &args.figures_from {
        return redraw(dir, &args.out);
    }
    if let Some(run) = &args.decode_figures_from {
        let rows = read_decode_run(run)?;
        return Ok(save_bandwidth_figures(&rows, &args.out)?);
    }
    if args.quality {
        return quality(&args);
    }
    memory(&args.out)?;
    if model_path_or_skip("the real-model part of ch07")?.is_some() {
        real_model(&args.out)?;
    }
    with_gpu("the ch07 GPU decode check", check_decode)?;
    Ok(())
}

/// The memory formula for four models, and SmolLM2's cache against its length.
fn memory(out: &std::path::Path) -> anyhow::Result<()> {
    heading("KV cache of one sequence: 2 · layers · kv_heads · T · head_dim · bytes");
    println!("{}", memory_table().render());
    println!("wrote {:?}", save(&memory_figure(&LlamaConfig::smollm2_135m(), 8192)?, out, "memory")?);
    Ok(())
}

/// The evaluation text's token ids: 0..1024 scored, 1024..1536 the prompt, 1536..2048 calibration.
fn eval_ids(tokenizer: &ch07_kv_cache::prelude::ChatTokenizer) -> anyhow::Result<Vec<u32>> {
    let ids = tokenizer.encode(EVAL_TEXT)?;
    anyhow::ensure!(ids.len() >= 2048, "the evaluation text has {} tokens, 2048 needed", ids.len());
    Ok(ids)
}

/// K's outlier channels, the low-rank curves and the time per token, on SmolLM2-135M.
fn real_model(out: &std::path::Path) -> anyhow::Result<()> {
    let (model, tokenizer) = load_smollm2()?;
    let ids = eval_ids(&tokenizer)?;
    heading("the real keys and values: largest channel over the median channel, worst KV head per layer");
    let m = channel_magnitudes(&model, &ids[1536..2048], 0)?;
    let mut table = TextTable::new(&[("layer", 0), ("K: max/median", 0), ("V: max/median", 0)]);
    for l in (0..model.config().n_layers).step_by(3) {
        table.push([
            l.to_string(),
            format!("{:.1}", m.key_outliers[l]),
            format!("{:.1}", m.value_outliers[l]),
        ]);
    }
    println!("{}", table.render());
    println!("wrote {:?}", save(&channel_figure(&m.keys, &m.values, &[0, 14, 29], 0)?, out, "channels")?);

    heading("low-rank K and V: relative squared error against rank (mean over layers and heads)");
    let curves = low_rank_curves(&model, &ids[1536..2048], &ids[..512])?;
    let mut table = TextTable::new(&[
        ("rank", 0),
        ("K calib.", 0),
        ("K held-out", 0),
        ("V calib.", 0),
        ("V held-out", 0),
    ]);
    for r in [8usize, 16, 32, 48] {
        let at = |c: usize| format!("{:.4}", curves[c].1[r - 1].1);
        table.push([r.to_string(), at(0), at(1), at(2), at(3)]);
    }
    println!("{}", table.render());
    println!("wrote {:?}", save(&low_rank_figure(&curves)?, out, "low_rank")?);

    heading("time for the next token with and without a cache (CPU, f32)");
    let rows = time_per_token(&model, &ids, &[16, 64, 128, 256, 512, 1024], 5)?;
    let mut table =
        TextTable::new(&[("position", 0), ("without cache ms", 0), ("with cache ms", 0), ("ratio", 0)]);
    for r in &rows {
        table.push([
            r.position.to_string(),
            format!("{:.1}", r.without_cache * 1e3),
            format!("{:.1}", r.with_cache * 1e3),
            format!("{:.1}×", r.without_cache / r.with_cache),
        ]);
    }
    println!("{}", table.render());
    write_lines(&out.join("token_times.csv"), TokenTime::CSV_HEADER, rows.iter().map(|r| r.csv()))?;
    println!("wrote {:?}", save(&token_time_figure(&rows)?, out, "token_time")?);
    Ok(())
}

/// `--quality`: every cache of the chapter on the real model.
fn quality(args: &Args) -> anyhow::Result<()> {
    let (model, tokenizer) = load_smollm2()?;
    let ids = eval_ids(&tokenizer)?;
    let calibration = Calibration::fit(&model, &ids[1536..2048])?;
    let protocol =
        Protocol { text: ids[..1024].to_vec(), prompt: ids[1024..1536].to_vec(), new: 48, chunk: args.chunk };
    heading(&format!(
        "every cache on SmolLM2-135M: perplexity over 1024 tokens (chunks of {}), 48 greedy tokens after a 512-token prompt",
        args.chunk
    ));
    let specs: Vec<CacheSpec> = CacheSpec::chapter_list(args.key_group)
        .into_iter()
        .enumerate()
        .filter(|(i, spec)| {
            *i == 0 || args.caches.is_empty() || args.caches.iter().any(|c| spec.name().contains(c.as_str()))
        })
        .map(|(_, spec)| spec)
        .collect();
    let bar = attn_support::report::progress_bar(specs.len(), "caches");
    let rows = ch07_kv_cache::quality::evaluate(&model, &specs, &protocol, &calibration, |r| {
        bar.suspend(|| println!("{}", r.csv()));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    print_quality(&rows);
    let csv = args.csv.clone().unwrap_or_else(|| args.out.join("quality.csv"));
    write_lines(&csv, QualityRow::CSV_HEADER, rows.iter().map(|r| r.csv()))?;
    println!("wrote {}", csv.display());
    println!("wrote {:?}", save(&pareto_figure(&rows)?, &args.out, "pareto")?);
    Ok(())
}

fn print_quality(rows: &[QualityRow]) {
    println!("{}", quality_table(rows).render());
}

/// `--figures-from DIR`: the real-model figures from recorded CSVs.
fn redraw(dir: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let (quality, times) = (dir.join("quality.csv"), dir.join("token_times.csv"));
    anyhow::ensure!(
        quality.exists() || times.exists(),
        "{} holds neither quality.csv nor token_times.csv",
        dir.display()
    );
    // A folder may hold either: the quality table was re-measured on its own (INT8's key group).
    if quality.exists() {
        let rows = read_quality(quality)?;
        print_quality(&rows);
        println!("wrote {:?}", save(&pareto_figure(&rows)?, out, "pareto")?);
    }
    if times.exists() {
        let times = read_token_times(times)?;
        println!("wrote {:?}", save(&token_time_figure(&times)?, out, "token_time")?);
    }
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
    let options = DecodeBenchOptions {
        key_group: args.key_group,
        warmup: args.warmup,
        repeats: args.repeats,
        calls: args.calls_per_timing,
        max_chunk: args.max_chunk,
        wave_plan: args.min_waves.map(WavePlan::AtLeast).or(args.whole_waves.map(WavePlan::Whole)),
        serial_launch: args.serial_launch,
    };
    let rows = run_decode_benchmark(gpu, options)?;
    let mut table = TextTable::new(&[
        ("model", 0),
        ("kernel", 0),
        ("cache", 0),
        ("batch × context", 16),
        ("splits", 0),
        ("median ms", 0),
        ("GB/s", 7),
        ("of copy", 0),
        ("vs bf16", 0),
    ])
    .left_aligned(0)
    .left_aligned(1)
    .left_aligned(2);
    for r in &rows {
        // Against the faster bf16 kernel at the same shape (the tensor-core kernel has no bf16).
        let bf16 = rows
            .iter()
            .filter(|b| {
                b.model == r.model
                    && b.point == r.point
                    && b.dtype == CacheElement::Bf16.name()
                    && b.impl_name != "copy"
            })
            .min_by(|a, b| a.timing.median_ms.total_cmp(&b.timing.median_ms));
        let speedup =
            bf16.map_or(String::new(), |b| format!("{:.2}×", b.timing.median_ms / r.timing.median_ms));
        table.push([
            r.model.name.to_string(),
            match r.impl_name {
                "copy" => String::new(),
                name => name.strip_prefix("ch07_decode_").unwrap_or("registers").to_string(),
            },
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
    save_bandwidth_figures(&rows, &args.out)
}

/// One bandwidth figure per model and kernel version.
fn save_bandwidth_figures(rows: &[BenchRow], out: &std::path::Path) -> attn_support::Result<()> {
    for model in MODELS {
        for version in DecodeKernel::ALL {
            let fig = bandwidth_figure(rows, model, version)?;
            // The register kernel's figure keeps the name the book first used.
            let suffix = if version == DecodeKernel::Registers {
                String::new()
            } else {
                format!("_{}", version.name())
            };
            println!("wrote {:?}", save(&fig, out, &format!("decode_bandwidth_{}{suffix}", model.name))?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_group_of_zero_or_not_a_number_is_refused_naming_it() {
        assert_eq!(positive_key_group("128"), Ok(128));
        let zero = positive_key_group("0").unwrap_err();
        assert!(zero.contains("key group of 0"), "{zero}");
        let word = positive_key_group("many").unwrap_err();
        assert!(word.contains("\"many\""), "{word}");
        // Through clap, as a user meets it: refused before any work starts.
        let e = Args::try_parse_from(["ch07", "--quality", "--key-group", "0"]).unwrap_err().to_string();
        assert!(e.contains("--key-group") && e.contains("key group of 0"), "{e}");
    }

    #[test]
    fn redrawing_from_a_folder_without_either_csv_names_the_folder() {
        let dir = std::env::temp_dir().join(format!("ch07-redraw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = redraw(&dir, &dir.join("out")).unwrap_err().to_string();
        assert!(e.contains(&dir.display().to_string()) && e.contains("quality.csv"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
