//! The recorded decode benchmark, read back from its CSV (`ch07/ch07_decode.csv` of a run's
//! folder under `docs/src/results/`), so that the notebook and the book can show the GPU's
//! numbers on a machine without a GPU: [`read_decode_run`] into [`BenchRow`]s, which
//! [`super::bench::bandwidth_figure`] draws, and [`decode_summary`], the long-context table.

use super::bench::{BenchPoint, BenchRow, MODELS, impl_name};
use super::cache::{CacheElement, DEFAULT_KEY_GROUP};
use super::launch::DecodeKernel;
use attn_support::csv::Table;
use attn_support::report::TextTable;
use attn_support::timing::Timing;
use attn_support::{Error, Result};
use std::path::Path;

/// The run whose decode numbers the book quotes (an H100, 2026-12-06 16:48 UTC, all three
/// kernels, one whole wave of blocks per launch, INT8 key groups of 128 tokens, both kernels
/// launched as programmatic dependents of the kernel before them, the tensor-core kernel copying
/// whole FP8 and NVFP4 tiles from moving pointers, 10 decode steps back to back per timing).
pub const RECORDED_DECODE_RUN: &str = "h100-2026-12-06-ch07-run41";

/// Every row of `dir/ch07/ch07_decode.csv`: the copies and every kernel on the element types it reads.
/// Only the median time was recorded, so each row's [`Timing`] holds it alone.
pub fn read_decode_run(dir: &Path) -> Result<Vec<BenchRow>> {
    let table = Table::read(dir.join("ch07").join("ch07_decode.csv"))?;
    let mut rows: Vec<BenchRow> = Vec::new();
    for r in table.rows() {
        let names = [
            "copy",
            impl_name(DecodeKernel::Registers),
            impl_name(DecodeKernel::Pipelined),
            impl_name(DecodeKernel::TensorCores),
        ];
        let implementation = r.text("impl")?;
        let impl_name = names.into_iter().find(|&n| n == implementation).ok_or_else(|| {
            Error::InvalidArgument(format!("line {}: unknown impl {implementation}", r.line()))
        })?;
        let dtype = r.text("dtype")?;
        let dtype = CacheElement::all(DEFAULT_KEY_GROUP)
            .map(|e| e.name())
            .into_iter()
            .find(|&n| n == dtype)
            .ok_or_else(|| Error::InvalidArgument(format!("line {}: unknown dtype {dtype}", r.line())))?;
        let (q_heads, kv_heads, head_dim) = (r.get("q_heads")?, r.get("kv_heads")?, r.get("head_dim")?);
        let model = MODELS
            .into_iter()
            .find(|m| (m.q_heads, m.kv_heads, m.head_dim) == (q_heads, kv_heads, head_dim))
            .ok_or_else(|| Error::InvalidArgument(format!("line {}: no model has these heads", r.line())))?;
        let median_ms: f64 = r.get("median_ms")?;
        let kv_bytes: f64 = r.get("kv_bytes")?;
        let gbps: f64 = r.get("gbps")?;
        let copy_fraction: f64 = r.get("copy_fraction")?;
        let splits = match r.text("splits")? {
            "" => 0,
            _ => r.get("splits")?,
        };
        rows.push(BenchRow {
            impl_name,
            dtype,
            model,
            point: BenchPoint { batch: r.get("batch")?, context: r.get("context")? },
            timing: Timing { median_ms, min_ms: median_ms, max_ms: median_ms, repeats: 0 },
            kv_bytes,
            copy_gbps: gbps / copy_fraction,
            splits,
        });
    }
    Ok(rows)
}

/// The median of (kernel, element, model, point), if the run has it.
fn median(rows: &[BenchRow], kernel: &str, dtype: &str, model: &str, point: BenchPoint) -> Option<f64> {
    rows.iter()
        .find(|r| r.impl_name == kernel && r.dtype == dtype && r.model.name == model && r.point == point)
        .map(|r| r.timing.median_ms)
}

/// The long-context points (batch × context ≥ 256 k tokens) per model: bf16's fraction of the
/// copy for each kernel, and each quantised format's speed-up over bf16, each taken with the
/// faster of its two kernels.
pub fn decode_summary(rows: &[BenchRow]) -> Result<String> {
    let mut table = TextTable::new(&[
        ("model", 0),
        ("batch × context", 16),
        ("bf16 registers", 0),
        ("bf16 pipelined", 0),
        ("INT8 ÷ bf16", 0),
        ("FP8 ÷ bf16", 0),
        ("NVFP4 ÷ bf16", 0),
    ])
    .left_aligned(0);
    let kernels = DecodeKernel::ALL.map(impl_name);
    let fastest = |dtype: &str, model: &str, point| {
        kernels.iter().filter_map(|k| median(rows, k, dtype, model, point)).fold(f64::INFINITY, f64::min)
    };
    let mut points: Vec<(&str, BenchPoint)> = rows
        .iter()
        .filter(|r| r.impl_name != "copy" && r.point.batch * r.point.context >= 256 * 1024)
        .map(|r| (r.model.name, r.point))
        .collect();
    points.sort_by_key(|&(model, p)| (model, p.batch * p.context, p.batch));
    points.dedup();
    for (model, point) in points {
        let fraction = |kernel: &str| {
            rows.iter()
                .find(|r| {
                    r.impl_name == kernel && r.dtype == "bf16" && r.model.name == model && r.point == point
                })
                .map_or("—".to_string(), |r| format!("{:.0} %", 100.0 * r.copy_fraction()))
        };
        let bf16 = fastest("bf16", model, point);
        let speedup = |dtype: &str| format!("{:.2}×", bf16 / fastest(dtype, model, point));
        table.push([
            model.to_string(),
            format!("{} × {}", point.batch, point.context),
            fraction(kernels[0]),
            fraction(kernels[1]),
            speedup("int8"),
            speedup("fp8"),
            speedup("nvfp4"),
        ]);
    }
    Ok(table.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::csv::recorded_run;

    #[test]
    fn the_recorded_run_reads_back_with_the_books_numbers() {
        let rows = read_decode_run(&recorded_run(RECORDED_DECODE_RUN).unwrap()).unwrap();
        // Two copies, and for each of the 2 models at 9 points: bf16 by 2 kernels, the three
        // quantised types by 3.
        assert_eq!(rows.len(), 2 + 2 * 9 * (2 + 3 * 3));
        let summary = decode_summary(&rows).unwrap();
        // Llama-3-8B at 16 × 65536: the bf16 kernels at 104 and 102 % of the copy (the book's table).
        let line = summary.lines().find(|l| l.contains("llama3-8b") && l.contains("16 × 65536")).unwrap();
        assert!(line.contains("104 %") && line.contains("102 %"), "{line}");
        // ... and the tensor-core kernel's INT8, FP8 and NVFP4 at 1.88×, 1.89× and 3.36× of it.
        assert!(line.contains("1.88×") && line.contains("1.89×") && line.contains("3.37×"), "{line}");
        assert!(summary.contains("smollm2-135m"), "{summary}");
    }

    #[test]
    fn an_unknown_kernel_or_element_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("ch07-recorded-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("ch07")).unwrap();
        let header =
            "impl,dtype,batch,q_heads,kv_heads,context,head_dim,median_ms,kv_bytes,gbps,copy_fraction,splits";
        for (row, named) in [
            ("ch07_decode_tensor_core,bf16,16,32,8,1024,128,0.1,1e6,10,0.5,4", "ch07_decode_tensor_core"),
            ("ch07_decode,int4,16,32,8,1024,128,0.1,1e6,10,0.5,4", "int4"),
            ("ch07_decode,bf16,16,12,4,1024,96,0.1,1e6,10,0.5,4", "no model"),
        ] {
            std::fs::write(dir.join("ch07").join("ch07_decode.csv"), format!("{header}\n{row}\n")).unwrap();
            let e = read_decode_run(&dir).unwrap_err().to_string();
            assert!(e.contains(named), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
