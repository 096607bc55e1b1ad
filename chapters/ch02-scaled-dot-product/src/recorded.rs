//! The GPU benchmark recorded by a run of the GPU bundle: this chapter's kernel and PyTorch's
//! MATH and EFFICIENT backends (float32) timed on the same shapes, on the same device, in the
//! same run (`docs/src/results/<run>/`). Read with [`attn_support::csv::read_bench_csv`], shown
//! as the book's comparison table and as TFLOP/s against N.
//!
//! Chapter 3 records the same comparison for its kernel: [`TorchComparison`] is the reading,
//! the table and the panels for any kernel's files, and this chapter's functions are
//! [`CH02_VS_TORCH`]'s.

use attn_support::Result;
use attn_support::csv::{BenchRecord, read_bench_csv};
use attn_support::plot::{Chart, Line, Panels, Scale, SeriesLabelPosition};
use attn_support::report::TextTable;
use std::path::Path;

/// The run the book and notebook 02 show: an NVIDIA H100 80GB HBM3, 2026-11-25 (its
/// `summary.md` names the device, driver, date and commit).
pub const RECORDED_RUN: &str = "h100-2026-11-25";

/// The run's benchmark files and how the implementations in them are called on a figure, in
/// the order they are read and drawn.
pub const BENCH_FILES: [(&str, &str, &str); 3] = [
    ("ch02_gpu_bench.csv", "ch02_sdpa", "ch02 kernel"),
    ("torch_math.csv", "torch_math", "PyTorch MATH"),
    ("torch_efficient.csv", "torch_efficient", "PyTorch EFFICIENT"),
];

/// This chapter's kernel against PyTorch, the ratio column against MATH.
pub const CH02_VS_TORCH: TorchComparison =
    TorchComparison { files: BENCH_FILES, peer: TorchBackend::Math, ratio_title: "MATH/ch02", note: "" };

/// The PyTorch backend a comparison table divides by the kernel's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TorchBackend {
    Math,
    Efficient,
}

/// A kernel's recorded benchmark beside PyTorch's MATH and EFFICIENT backends, timed on the
/// same shapes in the same run: where the three are, how they are labelled, and which backend
/// the table's last column compares the kernel with.
#[derive(Clone, Copy, Debug)]
pub struct TorchComparison {
    /// (file in the run folder, implementation named in it, label on a table or a figure): the
    /// kernel, then MATH, then EFFICIENT.
    pub files: [(&'static str, &'static str, &'static str); 3],
    /// The backend whose time the last column divides by the kernel's.
    pub peer: TorchBackend,
    /// That column's title, e.g. `MATH/ch02`.
    pub ratio_title: &'static str,
    /// Added to the table's footnote, e.g. what a "—" stands for in this run.
    pub note: &'static str,
}

impl TorchComparison {
    /// Every benchmark record of a run folder, in the order of [`TorchComparison::files`].
    pub fn read(&self, run_dir: &Path) -> Result<Vec<BenchRecord>> {
        let mut records = Vec::new();
        for (file, _, _) in self.files {
            records.extend(read_bench_csv(run_dir.join(file))?);
        }
        Ok(records)
    }

    /// One line per shape (B, H, N, d, causal), in the order the kernel's file lists them: the
    /// median time of each implementation in ms (TFLOP/s in brackets), and the peer's time over
    /// the kernel's (above 1×: the kernel is faster). "—" where a time is missing.
    pub fn table(&self, records: &[BenchRecord]) -> String {
        let columns = [("B", 0), ("H", 0), ("N", 5), ("d", 0), ("causal", 0)];
        let times = self.files.map(|(_, _, label)| (label, 17));
        let mut table = TextTable::new(&[&columns[..], &times[..], &[(self.ratio_title, 0)]].concat())
            .divider_before(5)
            .divider_before(6)
            .divider_before(7)
            .divider_before(8);
        let shape = |r: &BenchRecord| (r.batch, r.heads, r.seq, r.head_dim, r.causal);
        let [kernel_name, math_name, efficient_name] = self.files.map(|(_, name, _)| name);
        for kernel in records.iter().filter(|r| r.implementation == kernel_name) {
            let find =
                |name: &str| records.iter().find(|r| r.implementation == name && shape(r) == shape(kernel));
            let (math, efficient) = (find(math_name), find(efficient_name));
            let mut cells = vec![
                kernel.batch.to_string(),
                kernel.heads.to_string(),
                kernel.seq.to_string(),
                kernel.head_dim.to_string(),
                if kernel.causal { "yes" } else { "no" }.to_string(),
            ];
            for r in [Some(kernel), math, efficient] {
                cells.push(match r.map(|r| (r.median_ms, r.tflops)) {
                    Some((Some(ms), Some(tf))) => format!("{ms:.3} ms ({tf:4.1})"),
                    _ => "—".to_string(),
                });
            }
            let peer = match self.peer {
                TorchBackend::Math => math,
                TorchBackend::Efficient => efficient,
            };
            cells.push(match (peer.and_then(|p| p.median_ms), kernel.median_ms) {
                (Some(p), Some(k)) => format!("{:.2}×", p / k),
                _ => "—".to_string(),
            });
            table.push(cells);
        }
        let mut s = table.render();
        s.push_str("(median ms, TFLOP/s in brackets; FLOPs = 4·B·H·N²·d, halved when causal");
        s.push_str(self.note);
        s.push_str(")\n");
        s
    }

    /// TFLOP/s against N, one line per implementation, over all of `records` (pass the shapes
    /// of one batch, heads and head dim): a panel without mask and a panel with the causal
    /// mask, titled `"{title}, no mask"` and `"{title}, causal"`. Each panel's y axis starts
    /// at 0, so that the heights compare as ratios, and ends a tenth above its highest point.
    pub fn panels(&self, records: &[BenchRecord], title: &str) -> Panels {
        let panel = |causal: bool| {
            let lines: Vec<Line> = self
                .files
                .iter()
                .map(|(_, name, label_text)| {
                    let points = records
                        .iter()
                        .filter(|r| r.implementation == *name && r.causal == causal)
                        .filter_map(|r| r.tflops.map(|tf| (r.seq as f64, tf)))
                        .collect();
                    Line::solid(*label_text, points)
                })
                .collect();
            let mask = if causal { "causal" } else { "no mask" };
            let top = lines.iter().flat_map(|l: &Line| &l.points).map(|p| p.1).fold(0.0, f64::max);
            Chart {
                x_scale: Scale::Log2,
                y_scale: Scale::Linear,
                y_range: (top > 0.0).then_some((0.0, top * 1.1)),
                lines,
                legend: SeriesLabelPosition::UpperLeft,
                ..Chart::new(format!("{title}, {mask}"), "sequence length N", "TFLOP/s (f32)")
            }
        };
        Panels::new((560, 420), vec![panel(false), panel(true)])
    }
}

/// Every benchmark record of a run folder: the kernel's, then MATH's, then EFFICIENT's.
pub fn read_recorded(run_dir: &Path) -> Result<Vec<BenchRecord>> {
    CH02_VS_TORCH.read(run_dir)
}

/// The book's comparison table ([`TorchComparison::table`]): MATH's time over the kernel's in
/// the last column.
pub fn comparison_table(records: &[BenchRecord]) -> String {
    CH02_VS_TORCH.table(records)
}

/// TFLOP/s against N for the shapes with this batch, heads and head dim: one line per
/// implementation, a panel without mask and a panel with the causal mask.
pub fn tflops_panels(records: &[BenchRecord], batch: usize, heads: usize, head_dim: usize) -> Panels {
    let shape: Vec<BenchRecord> = records
        .iter()
        .filter(|r| (r.batch, r.heads, r.head_dim) == (batch, heads, head_dim))
        .cloned()
        .collect();
    CH02_VS_TORCH.panels(&shape, &format!("B = {batch}, H = {heads}, d = {head_dim}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::csv::recorded_run;

    fn record(name: &str, seq: usize, causal: bool, ms: Option<f64>) -> BenchRecord {
        BenchRecord {
            implementation: name.into(),
            batch: 1,
            heads: 8,
            seq,
            head_dim: 64,
            causal,
            median_ms: ms,
            tflops: ms.map(|ms| 1.0 / ms),
        }
    }

    #[test]
    fn the_table_joins_the_three_implementations_on_each_shape() {
        let records = [
            record("ch02_sdpa", 512, false, Some(2.0)),
            record("ch02_sdpa", 512, true, Some(1.0)),
            record("torch_math", 512, true, Some(3.0)),
            record("torch_math", 512, false, Some(0.5)),
            record("torch_efficient", 512, false, None),
        ];
        let table = comparison_table(&records);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[1].contains(" no ") && lines[1].ends_with("0.25×"), "{}", lines[1]);
        assert!(lines[1].matches('—').count() == 1, "missing EFFICIENT time: {}", lines[1]);
        assert!(lines[2].contains("yes") && lines[2].ends_with("3.00×"), "{}", lines[2]);
    }

    #[test]
    fn the_panels_split_by_mask_and_keep_only_the_asked_shape() {
        let mut records =
            vec![record("ch02_sdpa", 512, false, Some(2.0)), record("ch02_sdpa", 1024, true, Some(4.0))];
        records.push(BenchRecord { heads: 16, ..record("ch02_sdpa", 2048, false, Some(1.0)) });
        let panels = tflops_panels(&records, 1, 8, 64);
        let (full, causal) = (&panels.figures[0], &panels.figures[1]);
        assert_eq!(full.lines.len(), 3);
        assert_eq!(full.lines[0].points, vec![(512.0, 0.5)]);
        assert_eq!(causal.lines[0].points, vec![(1024.0, 0.25)]);
        assert!(full.lines[1].points.is_empty() && full.title.contains("no mask"));
        assert_eq!(full.y_range, Some((0.0, 0.5 * 1.1)));
    }

    #[test]
    fn the_recorded_run_has_ten_shapes_per_implementation() {
        let records = read_recorded(&recorded_run(RECORDED_RUN).unwrap()).unwrap();
        assert_eq!(records.len(), 30);
        for (_, name, _) in BENCH_FILES {
            assert_eq!(records.iter().filter(|r| r.implementation == name).count(), 10, "{name}");
        }
        let table = comparison_table(&records);
        assert_eq!(table.lines().count(), 12, "{table}");
        // The book's first row: 0.332 ms for the kernel, MATH/ch02 = 0.37×.
        assert!(table.lines().nth(1).unwrap().contains("0.332 ms") && table.contains("0.37×"), "{table}");
    }
}
