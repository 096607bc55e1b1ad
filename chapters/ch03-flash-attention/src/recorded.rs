//! The GPU results recorded by a run of the GPU bundle (`docs/src/results/<run>/`), read with
//! [`attn_support::csv`]: the FlashAttention kernel against PyTorch SDPA's MATH and EFFICIENT
//! backends (float32) on the same shapes in the same run, and the time/peak-memory sweep of
//! this kernel against chapter 2's. The comparison is chapter 2's [`TorchComparison`] over this
//! run's files.

use crate::figures::TimeMemoryRow;
use attn_support::Result;
use attn_support::csv::{BenchRecord, Table};
use attn_support::plot::{Panels, SeriesLabelPosition};
use ch02_scaled_dot_product::recorded::{TorchBackend, TorchComparison};
use std::path::Path;

/// The run the book and notebook 03 show: an NVIDIA H100 80GB HBM3, 2026-11-25 (its
/// `summary.md` names the device, driver, date and commit).
pub const RECORDED_RUN: &str = "h100-2026-11-25-ch03";

/// The run's benchmark files, the implementation named in each, and its label on a figure.
pub const BENCH_FILES: [(&str, &str, &str); 3] = [
    ("ch03_gpu_bench.csv", "ch03_flash", "ch03 FlashAttention"),
    ("torch_math_ch03.csv", "torch_math", "PyTorch MATH"),
    ("torch_efficient_ch03.csv", "torch_efficient", "PyTorch EFFICIENT"),
];

/// This kernel against PyTorch, read, tabulated and drawn as chapter 2's is; the ratio column
/// is against EFFICIENT, the chapter's yardstick (its target: at least 0.5× EFFICIENT's speed).
pub const CH03_VS_TORCH: TorchComparison = TorchComparison {
    files: BENCH_FILES,
    peer: TorchBackend::Efficient,
    ratio_title: "EFFICIENT/ch03",
    note: "; — = out of memory",
};

/// Every benchmark record of a run folder, in the order of [`BENCH_FILES`].
pub fn read_recorded(run_dir: &Path) -> Result<Vec<BenchRecord>> {
    CH03_VS_TORCH.read(run_dir)
}

/// One line per shape of the kernel's file: each implementation's median ms (TFLOP/s in
/// brackets), then EFFICIENT's time over the kernel's (above 1×: the kernel is faster).
pub fn comparison_table(records: &[BenchRecord]) -> String {
    CH03_VS_TORCH.table(records)
}

/// TFLOP/s against N, one line per implementation: a panel without mask, a causal panel.
/// `shape` names the fixed sizes in the titles (the run timed one batch, heads and head dim).
pub fn tflops_panels(records: &[BenchRecord], shape: &str) -> Panels {
    let mut panels = CH03_VS_TORCH.panels(records, shape);
    for chart in &mut panels.figures {
        // Both panels on one y axis up to 45 (the highest point is 39.1), so the causal rate
        // reads against the unmasked one; the lines run near the top, so the legend sits low.
        chart.y_range = Some((0.0, 45.0));
        chart.legend = SeriesLabelPosition::LowerRight;
    }
    panels
}

/// The time/peak-memory sweep (`ch03_time_memory.csv`) as rows for
/// [`crate::figures::time_memory_chart`], with, per N, what standard attention would hold: the
/// buffers plus the materialised scores (computed, no time).
pub fn read_time_memory(run_dir: &Path) -> Result<Vec<TimeMemoryRow>> {
    let table = Table::read(run_dir.join("ch03_time_memory.csv"))?;
    let mut rows: Vec<TimeMemoryRow> = Vec::new();
    for r in table.rows() {
        let n = r.get("seq")?;
        if !rows.iter().any(|row| row.n == n) {
            rows.push(TimeMemoryRow {
                implementation: "scores materialised (B·H·N²·4 bytes + buffers, computed)".into(),
                n,
                ms: f64::NAN,
                peak_mib: r.get::<f64>("scores_mib")? + r.get::<f64>("buffers_mib")?,
            });
        }
        rows.push(TimeMemoryRow {
            implementation: r.text("implementation")?.to_string(),
            n,
            ms: r.measured("median_ms")?.unwrap_or(f64::NAN),
            peak_mib: r.measured("peak_mib")?.unwrap_or(f64::NAN),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::csv::recorded_run;

    #[test]
    fn the_recorded_run_reads_and_joins() {
        let dir = recorded_run(RECORDED_RUN).unwrap();
        let records = read_recorded(&dir).unwrap();
        for (_, name, _) in BENCH_FILES {
            assert_eq!(records.iter().filter(|r| r.implementation == name).count(), 6, "{name}");
        }
        let table = comparison_table(&records);
        assert_eq!(table.lines().count(), 8, "{table}");
        // The book's rows: 1.09× at N = 4096 without a mask; MATH out of memory at 16 384.
        let row = |n: &str, causal: &str| {
            let shape = ["8", "16", n, "64", causal];
            table.lines().find(|l| l.split_whitespace().take(5).eq(shape)).unwrap().to_string()
        };
        assert!(row("4096", "no").ends_with("1.09×"), "{table}");
        assert!(row("16384", "yes").contains('—') && row("16384", "yes").ends_with("1.13×"), "{table}");
        let panels = tflops_panels(&records, "B = 8, H = 16, d = 64");
        assert_eq!(panels.figures[0].lines[0].points.len(), 3);
        assert_eq!(panels.figures[1].lines[1].points.len(), 2, "MATH has no causal point at 16 384");
    }

    #[test]
    fn the_time_memory_sweep_adds_the_scores_line() {
        let rows = read_time_memory(&recorded_run(RECORDED_RUN).unwrap()).unwrap();
        let scores: Vec<_> = rows.iter().filter(|r| r.implementation.starts_with("scores")).collect();
        assert_eq!(scores.len(), 7, "one per N from 1024 to 65 536");
        assert_eq!(scores[0].peak_mib, 40.0, "32 MiB of scores + 8 MiB of buffers at N = 1024");
        let flash_65536 =
            rows.iter().find(|r| r.n == 65_536 && r.implementation.starts_with("ch03")).unwrap();
        assert_eq!((flash_65536.ms, flash_65536.peak_mib), (228.987, 544.0));
        assert!(!rows.iter().any(|r| r.n == 65_536 && r.implementation.starts_with("ch02")));
    }
}
