//! The measured side of the chapter's figures: time, unfused against fused, per fusion, drawn
//! from the CSVs a GPU run wrote (`ch05 --figures-from DIR --out DIR`). No GPU is needed to
//! draw them, only the files:
//!
//! - `ch05_softmax.csv` (`ch05 --bench-softmax`) and, when present, `torch_softmax.csv`
//!   (`xtask/baselines/torch_softmax.py`): median time against the row length Nk, one panel per
//!   dtype — the unfused chain and the fused kernel (causal), the plain fused softmax and the copy
//!   (no mask), and PyTorch's peers of each;
//! - `ch05_qkv.csv` (`--bench-qkv`): three GEMMs against one, bf16, per model and token count;
//! - `ch05_epilogue.csv` (`--bench-epilogue`): three passes against one, bf16, same points.
//!
//! A missing file leaves its panel out (and says so); a file without the expected rows is an
//! error naming the file and what is missing.

use super::ByteBars;
use crate::qkv_bench::{BENCH_MODELS, BENCH_TOKENS};
use attn_support::csv::Table;
use attn_support::plot::{Chart, Line, Panels, Scale, SeriesLabelPosition, save};
use attn_support::{Error, Result};
use std::path::{Path, PathBuf};

/// The softmax figure's lines: (impl, mask, legend label); PyTorch's rows come from its own file
/// (its own copy, `torch_copy`, is left out: one copy line is the ceiling).
pub const SOFTMAX_LINES: [(&str, &str, &str); 6] = [
    ("unfused_chain", "causal", "ours, unfused chain (causal)"),
    ("fused_auto", "causal", "ours, fused (causal)"),
    ("torch_masked_fill_softmax", "causal", "PyTorch masked_fill + softmax (causal)"),
    ("fused_auto", "none", "ours, fused (no mask)"),
    ("torch_softmax", "none", "torch.softmax (no mask)"),
    ("copy", "none", "device copy (ours)"),
];

/// Median time against Nk of every line of [`SOFTMAX_LINES`] found in `tables`, in `dtype`.
pub fn softmax_time_chart(tables: &[&Table], dtype: &str) -> Result<Chart> {
    let mut lines = Vec::new();
    for (implementation, mask, label) in SOFTMAX_LINES {
        let mut points = Vec::new();
        for table in tables {
            for row in table.rows() {
                if row.text("impl")? == implementation
                    && row.text("mask")? == mask
                    && row.text("dtype")? == dtype
                {
                    points.push((row.get::<f64>("nk")?, row.get::<f64>("median_ms")?));
                }
            }
        }
        if !points.is_empty() {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let line = if implementation.contains("copy") {
                Line::dashed(label, points)
            } else {
                Line::solid(label, points)
            };
            lines.push(line);
        }
    }
    if lines.is_empty() {
        return Err(Error::InvalidArgument(format!("the softmax CSVs hold no {dtype} rows")));
    }
    // Room above the data for the legend (six lines, upper left).
    let times = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).filter(|t| *t > 0.0);
    let (lo, hi) = times.fold((f64::INFINITY, 0.0f64), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let y_range = (lo < hi).then_some((lo / 1.5, hi * 10.0));
    Ok(Chart {
        y_range,
        x_scale: Scale::Log2,
        y_scale: Scale::Log10,
        lines,
        legend: SeriesLabelPosition::UpperLeft,
        ..Chart::new(
            format!("scale + mask + softmax, {dtype}, ~64 Mi scores"),
            "keys per row Nk",
            "median time (ms)",
        )
    })
}

/// Measured medians of `unfused` against `fused` in bf16 at the benchmark's points (model ×
/// tokens), as bars in microseconds.
pub fn pair_time_bars(
    table: &Table,
    source: &str,
    title: &str,
    unfused: &str,
    fused: &str,
) -> Result<ByteBars> {
    let median = |implementation: &str, model: &str, tokens: usize| -> Result<f64> {
        for row in table.rows() {
            if row.text("impl")? == implementation
                && row.text("dtype")? == "bf16"
                && row.text("model")? == model
                && row.get::<usize>("tokens")? == tokens
            {
                return Ok(row.get::<f64>("median_ms")? * 1e3);
            }
        }
        Err(Error::InvalidArgument(format!(
            "{source} has no bf16 row for {implementation}, {model}, {tokens} tokens"
        )))
    };
    let (mut categories, mut values) = (Vec::new(), Vec::new());
    for (model, _) in BENCH_MODELS {
        for tokens in BENCH_TOKENS {
            let phase = if tokens == 1 { "decode".to_string() } else { format!("prefill {tokens}") };
            categories.push(format!("{model}\n{phase}"));
            values.push((median(unfused, model, tokens)?, median(fused, model, tokens)?));
        }
    }
    Ok(ByteBars {
        title: title.into(),
        categories,
        values,
        y_desc: "median time (µs, measured)".into(),
        size: (640, 480),
    })
}

/// Read `dir/name` if it exists.
fn read_if_present(dir: &Path, name: &str) -> Result<Option<Table>> {
    let path = dir.join(name);
    if path.is_file() { Table::read(&path).map(Some) } else { Ok(None) }
}

/// Draw every time figure the files in `run_dir` allow into `out` (`ch05_time_softmax`,
/// `ch05_time_qkv_epilogue`); returns the files written. Names each missing file on stdout.
pub fn write_recorded_figures(run_dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    match read_if_present(run_dir, "ch05_softmax.csv")? {
        Some(ours) => {
            let torch = read_if_present(run_dir, "torch_softmax.csv")?;
            let tables: Vec<&Table> = std::iter::once(&ours).chain(torch.as_ref()).collect();
            let charts = vec![softmax_time_chart(&tables, "f32")?, softmax_time_chart(&tables, "bf16")?];
            files.extend(save(&Panels::new((760, 520), charts), out, "ch05_time_softmax")?);
        }
        None => println!("no ch05_softmax.csv in {}: no softmax time figure", run_dir.display()),
    }
    let mut bars = Vec::new();
    if let Some(qkv) = read_if_present(run_dir, "ch05_qkv.csv")? {
        let title = "QKV projection, bf16: 3 GEMMs vs 1";
        bars.push(pair_time_bars(&qkv, "ch05_qkv.csv", title, "three_gemms", "one_gemm")?);
    }
    if let Some(epilogue) = read_if_present(run_dir, "ch05_epilogue.csv")? {
        let title = "RoPE + KV-cache write, bf16: 3 passes vs 1";
        bars.push(pair_time_bars(&epilogue, "ch05_epilogue.csv", title, "three_passes", "one_pass")?);
    }
    if bars.is_empty() {
        println!("no ch05_qkv.csv or ch05_epilogue.csv in {}: no QKV time figure", run_dir.display());
    } else {
        files.extend(save(&Panels::new((640, 480), bars), out, "ch05_time_qkv_epilogue")?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_lines_come_from_both_files_in_order_of_nk() {
        let ours = Table::parse(
            "impl,dtype,batch,heads,nq,nk,mask,median_ms,modelled_bytes,gbps,copy_fraction\n\
             fused_auto,bf16,1,16,512,8192,causal,0.2,1,1,1\n\
             fused_auto,bf16,4,16,1024,1024,causal,0.1,1,1,1\n\
             unfused_chain,bf16,4,16,1024,1024,causal,0.4,1,1,1\n",
            "ours",
        )
        .unwrap();
        let torch = Table::parse(
            "impl,dtype,batch,heads,nq,nk,mask,median_ms,modelled_bytes,gbps,copy_fraction\n\
             torch_softmax,bf16,4,16,1024,1024,none,0.1,1,1,1\n",
            "torch",
        )
        .unwrap();
        let chart = softmax_time_chart(&[&ours, &torch], "bf16").unwrap();
        let labels: Vec<&str> = chart.lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(
            labels,
            ["ours, unfused chain (causal)", "ours, fused (causal)", "torch.softmax (no mask)"]
        );
        assert_eq!(chart.lines[1].points, [(1024.0, 0.1), (8192.0, 0.2)]);
        assert!(softmax_time_chart(&[&ours], "f32").is_err());
    }

    #[test]
    fn a_missing_point_is_named() {
        let table =
            Table::parse("impl,dtype,model,tokens,median_ms\nthree_gemms,bf16,SmolLM2-135M,1,0.01\n", "qkv")
                .unwrap();
        let e = pair_time_bars(&table, "q.csv", "t", "three_gemms", "one_gemm").unwrap_err().to_string();
        assert!(e.contains("q.csv") && e.contains("one_gemm") && e.contains("SmolLM2-135M"), "{e}");
    }
}
