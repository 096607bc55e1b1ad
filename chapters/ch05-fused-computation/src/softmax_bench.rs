//! The softmax benchmark of `ch05 --bench-softmax`: for each score shape and dtype (f32, bf16),
//! the device's copy bandwidth and the fused and unfused scale + mask + softmax, timed in one
//! run on the same tensors.
//!
//! Rows of the CSV ([`SOFTMAX_BENCH_HEADER`]), per shape and dtype:
//!
//! - `copy`: `cuMemcpyDtoDAsync` of the score tensor, T bytes read and T written: the ceiling a
//!   kernel that reads and writes the tensor once can reach;
//! - `fused_warp`, `fused_block`, `fused_auto` with mask `none` and scale 1: a plain row softmax,
//!   the same computation as `torch.softmax(x, -1)` (the PyTorch peer in
//!   `xtask/baselines/torch_softmax.py`); `fused_warp` only where a warp holds the row
//!   (Nk ≤ 2048);
//! - `fused_block1024`, masks `none` and `causal`, where `fused_block` holds more than 16
//!   values per thread (rows of 8193 to 16384 keys, with 128-bit access): the experiment
//!   [`RowLaunch::BlockPerRow1024`], the same row over up to 1024 threads × 16 values, timed on
//!   the same tensors in the same loop as `fused_block` (the kernel `fused_auto` uses there
//!   today), so that one run gives both fractions of the copy;
//! - `fused_block_prefetch`, masks `none` and `causal`, on the same bf16 rows (8193 to 16384
//!   keys, 128-bit access): the second experiment [`RowLaunch::BlockPerRowPrefetch`], a
//!   persistent grid of 512-thread blocks that copy their next row into shared memory while they
//!   compute this one, timed in the same loop; `fused_block_prefetch3`, the same with the next two
//!   rows in flight ([`RowLaunch::BlockPerRowPrefetch3`]);
//! - `fused_twopass`, masks `none` and `causal`, on bf16 rows of ≥ 1024 keys with 128-bit
//!   access: the third experiment [`RowLaunch::TwoPass`], which holds nothing and reads the row
//!   twice (DRAM, then L2), timed in the same loop;
//! - `fused_auto_scalar`, mask `none`: the same kernel choice built for one element per load and
//!   store instead of 128-bit vectors, to measure what the vectors are worth;
//! - `fused_warp`, `fused_block`, `fused_auto` with mask `causal` and scale 1/√128: the whole
//!   fused operation;
//! - `unfused_chain` with mask `causal`: scale, add a stored mask tensor, softmax — three
//!   kernels (peer: PyTorch eager `(x * scale).masked_fill(mask, −∞).softmax(−1)`).
//!
//! `modelled_bytes` is [`SoftmaxPipeline::bytes_moved`] (2T fused and copy, 7T unfused), `gbps`
//! is that over the median time, and `copy_fraction` is `gbps` over the copy's in the same run.
//! The causal fused kernel skips reading wholly masked vectors, so its modelled rate can exceed
//! what it moves; the `none` rows are the ones to hold against the copy.

use crate::gpu::softmax::{
    DeviceMask, FusedPlan, RowLaunch, SOFTMAX_FUSION_SOURCE, ScoreElement, UnfusedChain, WARP_MAX_KEYS,
    WIDE_BLOCK_VALUES_PER_THREAD, launch_fused, launch_fused_with_access, plan_fused, prefetch_grid,
    prefetch_shared_bytes,
};
use crate::softmax_fusion::{MaskSpec, ScoreShape, SoftmaxPipeline};
use attn_support::data::randn;
use attn_support::error::DriverContext;
use attn_support::gpu::Gpu;
use attn_support::report::{TextTable, write_lines};
use attn_support::timing::gpu_time;
use attn_support::{Error, Result};
use half::bf16;
use std::path::Path;

/// The shapes of the recorded runs, `xtask/baselines/ch05_softmax_shapes.txt`, built into the
/// binary so that it carries them to the GPU machine.
pub const DEFAULT_SHAPES: &str = include_str!("../../../xtask/baselines/ch05_softmax_shapes.txt");

/// The CSV columns.
pub const SOFTMAX_BENCH_HEADER: &str =
    "impl,dtype,batch,heads,nq,nk,mask,median_ms,modelled_bytes,gbps,copy_fraction";

/// The scale of the masked runs: 1/√d for a head dimension of 128.
pub const BENCH_SCALE: f32 = 0.088_388_35;

/// Parse a shape list: one `batch heads nq nk` per line, `#` comments and blank lines skipped.
pub fn parse_shapes(text: &str, source: &str) -> Result<Vec<ScoreShape>> {
    let mut shapes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<usize> =
            line.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|e| {
                Error::InvalidArgument(format!(
                    "{source} line {}: {e} in {line:?} (want: batch heads nq nk)",
                    n + 1
                ))
            })?;
        let [batch, heads, nq, nk] = fields[..] else {
            return Err(Error::InvalidArgument(format!(
                "{source} line {}: {} numbers in {line:?}, want 4: batch heads nq nk",
                n + 1,
                fields.len()
            )));
        };
        if fields.contains(&0) {
            return Err(Error::InvalidArgument(format!("{source} line {}: a size of 0 in {line:?}", n + 1)));
        }
        shapes.push(ScoreShape { batch, heads, nq, nk });
    }
    Ok(shapes)
}

/// Untimed and timed calls per measurement.
#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    pub warmup: usize,
    pub repeats: usize,
}

/// One measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxBenchRow {
    pub implementation: &'static str,
    pub dtype: &'static str,
    pub shape: ScoreShape,
    pub mask: &'static str,
    pub median_ms: f64,
    pub modelled_bytes: u64,
    /// Modelled bytes per second over the median, in GB/s.
    pub gbps: f64,
    /// `gbps` over the copy's in the same run.
    pub copy_fraction: f64,
}

impl SoftmaxBenchRow {
    /// The row as a CSV line in [`SOFTMAX_BENCH_HEADER`]'s order.
    pub fn csv(&self) -> String {
        let ScoreShape { batch, heads, nq, nk } = self.shape;
        format!(
            "{},{},{batch},{heads},{nq},{nk},{},{:.5},{},{:.1},{:.4}",
            self.implementation,
            self.dtype,
            self.mask,
            self.median_ms,
            self.modelled_bytes,
            self.gbps,
            self.copy_fraction
        )
    }
}

/// Every variant on every shape, in f32 then bf16, printing each row as it is measured.
pub fn run_softmax_bench(
    gpu: &Gpu,
    shapes: &[ScoreShape],
    options: BenchOptions,
) -> Result<Vec<SoftmaxBenchRow>> {
    let table = TextTable::new(&[
        ("impl", 14),
        ("dtype", 5),
        ("B×H×Nq × Nk", 20),
        ("mask", 6),
        ("median ms", 10),
        ("GB/s", 8),
        ("× copy", 7),
    ])
    .left_aligned(0)
    .left_aligned(2)
    .left_aligned(3);
    println!("{}", table.header());
    let mut rows = Vec::new();
    for (k, &shape) in shapes.iter().enumerate() {
        let seed = 5000 + k as u64;
        rows.extend(bench_shape::<f32>(gpu, shape, seed, options, &table)?);
        rows.extend(bench_shape::<bf16>(gpu, shape, seed, options, &table)?);
    }
    Ok(rows)
}

/// Whether the benchmark times the 1024-thread experiment on rows of `nk` keys (whole 16-byte
/// vectors, aligned buffers): where it differs from the 512-thread block, which holds the row as
/// more than 16 values per thread (8193 to 16384 keys), and can hold the row at all.
pub fn times_the_1024_thread_block(nk: usize, dtype: &str, elem_bytes: usize) -> bool {
    let wide = plan_fused(nk, dtype, elem_bytes, true, RowLaunch::BlockPerRow1024);
    let block = plan_fused(nk, dtype, elem_bytes, true, RowLaunch::BlockPerRow);
    matches!((wide, block), (Ok(_), Ok(b)) if b.values_per_thread > WIDE_BLOCK_VALUES_PER_THREAD)
}

/// Whether the benchmark times the prefetching experiment on rows of `nk` keys: the same rows as
/// the 1024-thread block (8193 to 16384 keys, where the 512-thread block holds 32 values a
/// thread), in bf16, the one type it is built for.
pub fn times_the_prefetching_block(nk: usize, dtype: &str, elem_bytes: usize) -> bool {
    let prefetch = plan_fused(nk, dtype, elem_bytes, true, RowLaunch::BlockPerRowPrefetch);
    prefetch.is_ok() && times_the_1024_thread_block(nk, dtype, elem_bytes)
}

/// Whether the benchmark times the two-pass experiment on rows of `nk` keys: bf16 rows of
/// ≥ 1024 keys (the target's rows) that it can take (128-bit access).
pub fn times_the_two_pass_block(nk: usize, dtype: &str, elem_bytes: usize) -> bool {
    nk >= 1024 && plan_fused(nk, dtype, elem_bytes, true, RowLaunch::TwoPass).is_ok()
}

/// What the driver reports of a planned kernel as it compiled it on this GPU: registers per
/// thread, local-memory (spill) bytes per thread, and resident blocks per SM at the plan's
/// block size; one line for the benchmark's log.
fn kernel_resources(gpu: &Gpu, plan: &FusedPlan, nk: usize, rows: usize) -> Result<String> {
    let function = gpu.function(&SOFTMAX_FUSION_SOURCE, &plan.kernel)?;
    let registers = function.num_regs().ctx("reading registers")?;
    let local = function.local_size_bytes().ctx("reading local memory")?;
    let shared = prefetch_shared_bytes(nk, plan.shape);
    if shared > 0 {
        gpu.opt_in_shared_memory(&function, &plan.kernel, shared)?;
    }
    let blocks = function
        .occupancy_max_active_blocks_per_multiprocessor(plan.threads_per_row as u32, shared, None)
        .ctx("reading the occupancy")?;
    let grid = if shared > 0 {
        format!(
            ", {shared} bytes of dynamic shared memory, a grid of {}",
            prefetch_grid(gpu, &function, plan, shared, rows)?
        )
    } else {
        String::new()
    };
    Ok(format!(
        "{}: {registers} registers, {local} bytes of local memory a thread; {blocks} blocks of {} threads per SM{grid}",
        plan.kernel, plan.threads_per_row
    ))
}

/// The measurements of one shape in storage type T.
fn bench_shape<T: ScoreElement>(
    gpu: &Gpu,
    shape: ScoreShape,
    seed: u64,
    options: BenchOptions,
    table: &TextTable,
) -> Result<Vec<SoftmaxBenchRow>> {
    let n = shape.elements() as usize;
    let free = gpu.memory()?.0;
    // Scores, probabilities and the chain's two intermediates, plus its mask (B·Nq·Nk).
    let need = (4 * n + shape.batch * shape.nq * shape.nk) * T::BYTES;
    if need > free {
        return Err(Error::InvalidArgument(format!(
            "{shape:?} in {} needs {need} bytes of device memory, {free} are free",
            T::NAME
        )));
    }
    let host = randn((shape.batch, shape.heads, shape.nq, shape.nk), seed).mapv(T::from_f32);
    let scores = gpu.upload(&host)?;
    let mut probs = gpu.zeros::<T>(n)?;
    let (warmup, repeats) = (options.warmup, options.repeats);
    let fused_bytes = SoftmaxPipeline::Fused.bytes_moved(shape, T::BYTES as u64).total();
    let mut rows = Vec::new();
    let mut record =
        |implementation: &'static str, mask: &'static str, median_ms: f64, bytes: u64, copy: f64| {
            let gbps = bytes as f64 / (median_ms * 1e-3) / 1e9;
            let row = SoftmaxBenchRow {
                implementation,
                dtype: T::NAME,
                shape,
                mask,
                median_ms,
                modelled_bytes: bytes,
                gbps,
                copy_fraction: if copy > 0.0 { gbps / copy } else { 1.0 },
            };
            let dims = format!("{}×{}×{} × {}", shape.batch, shape.heads, shape.nq, shape.nk);
            println!(
                "{}",
                table.line(&[
                    implementation.to_string(),
                    T::NAME.to_string(),
                    dims,
                    mask.to_string(),
                    format!("{median_ms:.4}"),
                    format!("{gbps:.0}"),
                    format!("{:.3}", row.copy_fraction),
                ])
            );
            rows.push(row);
            gbps
        };

    // The ceiling: a device-to-device copy of the same T bytes (read T + write T).
    let copy = gpu_time(gpu, warmup, repeats, || {
        gpu.stream.memcpy_dtod(&scores, &mut probs).ctx("copying device to device")
    })?;
    let copy_gbps = record("copy", "none", copy.median_ms, fused_bytes, 0.0);

    let launches = [
        ("fused_warp", RowLaunch::WarpPerRow),
        ("fused_block", RowLaunch::BlockPerRow),
        ("fused_auto", RowLaunch::Auto),
        ("fused_block1024", RowLaunch::BlockPerRow1024),
        ("fused_block_prefetch", RowLaunch::BlockPerRowPrefetch),
        ("fused_block_prefetch3", RowLaunch::BlockPerRowPrefetch3),
        ("fused_twopass", RowLaunch::TwoPass),
    ];
    let wide_differs = times_the_1024_thread_block(shape.nk, T::NAME, T::BYTES);
    let prefetch_differs = times_the_prefetching_block(shape.nk, T::NAME, T::BYTES);
    let two_pass = times_the_two_pass_block(shape.nk, T::NAME, T::BYTES);
    // Which launch shapes this shape times: a warp only where it can hold the row, each
    // experiment only on the rows it is timed on.
    let timed = |launch: RowLaunch| match launch {
        RowLaunch::WarpPerRow => shape.nk <= WARP_MAX_KEYS,
        RowLaunch::BlockPerRow1024 => wide_differs,
        RowLaunch::BlockPerRowPrefetch | RowLaunch::BlockPerRowPrefetch3 => prefetch_differs,
        RowLaunch::TwoPass => two_pass,
        RowLaunch::Auto | RowLaunch::BlockPerRow => true,
    };
    if wide_differs {
        // The experiments' resources as the driver compiled them, to hold against ptxas's count.
        for launch in [
            RowLaunch::BlockPerRow,
            RowLaunch::BlockPerRow1024,
            RowLaunch::BlockPerRowPrefetch,
            RowLaunch::BlockPerRowPrefetch3,
            RowLaunch::TwoPass,
        ] {
            if !timed(launch) {
                continue;
            }
            let plan = plan_fused(shape.nk, T::NAME, T::BYTES, true, launch)?;
            let rows = (shape.elements() / shape.nk as u64) as usize;
            println!("  {}", kernel_resources(gpu, &plan, shape.nk, rows)?);
        }
    }
    for (mask_name, spec, scale) in
        [("none", MaskSpec::none(), 1.0), ("causal", MaskSpec::causal(), BENCH_SCALE)]
    {
        let mask = DeviceMask::upload(gpu, &spec, shape)?;
        for (name, launch) in launches {
            if !timed(launch) {
                continue;
            }
            let t = gpu_time(gpu, warmup, repeats, || {
                launch_fused(gpu, &scores.as_view(), &mut probs.as_view_mut(), scale, &mask, launch)
                    .map(|_| ())
            })?;
            record(name, mask_name, t.median_ms, fused_bytes, copy_gbps);
        }
        if mask_name == "none" {
            let t = gpu_time(gpu, warmup, repeats, || {
                let (x, mut y) = (scores.as_view(), probs.as_view_mut());
                launch_fused_with_access(gpu, &x, &mut y, scale, &mask, RowLaunch::Auto, false).map(|_| ())
            })?;
            record("fused_auto_scalar", mask_name, t.median_ms, fused_bytes, copy_gbps);
        }
    }

    let mut chain = UnfusedChain::<T>::new(gpu, shape, &MaskSpec::causal())?;
    let t = gpu_time(gpu, warmup, repeats, || {
        chain.launch(gpu, &scores.as_view(), &mut probs.as_view_mut(), BENCH_SCALE, RowLaunch::Auto)
    })?;
    let unfused_bytes = SoftmaxPipeline::Unfused.bytes_moved(shape, T::BYTES as u64).total();
    record("unfused_chain", "causal", t.median_ms, unfused_bytes, copy_gbps);
    Ok(rows)
}

/// Write the rows to `path` with [`SOFTMAX_BENCH_HEADER`].
pub fn write_softmax_csv(path: &Path, rows: &[SoftmaxBenchRow]) -> Result<()> {
    write_lines(path, SOFTMAX_BENCH_HEADER, rows.iter().map(SoftmaxBenchRow::csv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_shapes_hold_about_64_mi_elements_each() {
        let shapes = parse_shapes(DEFAULT_SHAPES, "default").unwrap();
        assert_eq!(
            shapes.iter().map(|s| s.nk).collect::<Vec<_>>(),
            [128, 512, 1000, 1024, 2048, 4096, 8192, 16384]
        );
        for s in shapes {
            let mib = s.elements() as f64 * 4.0 / (1 << 20) as f64;
            assert!((240.0..=256.0).contains(&mib), "{s:?}: {mib} MiB in f32");
            assert!(s.nq <= s.nk, "{s:?}: causal rows would be fully masked");
        }
    }

    #[test]
    fn the_1024_thread_block_is_timed_on_the_rows_it_is_meant_for() {
        // Of the default shapes, the 16384-key rows, in both dtypes.
        let timed: Vec<(usize, &str)> = parse_shapes(DEFAULT_SHAPES, "default")
            .unwrap()
            .iter()
            .flat_map(|s| [(s.nk, "f32", 4), (s.nk, "bf16", 2)])
            .filter(|&(nk, dtype, bytes)| times_the_1024_thread_block(nk, dtype, bytes))
            .map(|(nk, dtype, _)| (nk, dtype))
            .collect();
        assert_eq!(timed, [(16384, "f32"), (16384, "bf16")]);
        assert!(times_the_1024_thread_block(8200, "bf16", 2));
        // Where the 512-thread block already holds 16 values, beyond 16384 keys, and where the
        // row is not whole vectors: not timed.
        assert!(!times_the_1024_thread_block(8192, "bf16", 2));
        assert!(!times_the_1024_thread_block(32768, "bf16", 2));
        assert!(!times_the_1024_thread_block(8201, "bf16", 2));
    }

    #[test]
    fn the_prefetching_block_is_timed_on_the_bf16_rows_it_is_meant_for() {
        let timed: Vec<(usize, &str)> = parse_shapes(DEFAULT_SHAPES, "default")
            .unwrap()
            .iter()
            .flat_map(|s| [(s.nk, "f32", 4), (s.nk, "bf16", 2)])
            .filter(|&(nk, dtype, bytes)| times_the_prefetching_block(nk, dtype, bytes))
            .map(|(nk, dtype, _)| (nk, dtype))
            .collect();
        assert_eq!(timed, [(16384, "bf16")]);
        assert!(times_the_prefetching_block(8200, "bf16", 2));
        assert!(!times_the_prefetching_block(8192, "bf16", 2));
        assert!(!times_the_prefetching_block(8201, "bf16", 2));
        assert!(!times_the_prefetching_block(16384, "f32", 4));
    }

    #[test]
    fn bad_shape_lines_name_the_line() {
        let e = parse_shapes("# c\n1 2 3\n", "f").unwrap_err().to_string();
        assert!(e.contains("f line 2") && e.contains("3 numbers"), "{e}");
        assert!(parse_shapes("1 2 x 4", "f").unwrap_err().to_string().contains("line 1"));
        assert!(parse_shapes("1 0 3 4", "f").is_err());
    }
}
