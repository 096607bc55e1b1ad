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
//! error naming the file and what is missing. [`softmax_summary`] turns the two softmax files
//! into the ratios the chapter's targets are stated in.

use super::ByteBars;
use crate::qkv_bench::{BENCH_MODELS, BENCH_TOKENS};
use attn_support::csv::Table;
use attn_support::plot::{Chart, Line, Panels, Scale, SeriesLabelPosition, save};
use attn_support::report::TextTable;
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

/// The first recorded run of the softmax benchmark, a folder under `docs/src/results/`: an H100,
/// 2026-12-05, commit `ffa8067` (before the short-row change `0d436b5`; see its README.md).
pub const RECORDED_SOFTMAX_RUN: &str = "h100-2026-12-05-ch05-softmax";

/// `ch05_softmax.csv` and `torch_softmax.csv` of a run's folder.
pub fn read_softmax_run(dir: &Path) -> Result<(Table, Table)> {
    Ok((Table::read(dir.join("ch05_softmax.csv"))?, Table::read(dir.join("torch_softmax.csv"))?))
}

/// The median of the row (impl, dtype, nk, mask) of `table`, or an error naming what is missing.
fn median_at(table: &Table, implementation: &str, dtype: &str, nk: usize, mask: &str) -> Result<Option<f64>> {
    for row in table.rows() {
        if row.text("impl")? == implementation
            && row.text("dtype")? == dtype
            && row.get::<usize>("nk")? == nk
            && row.text("mask")? == mask
        {
            return Ok(Some(row.get::<f64>("median_ms")?));
        }
    }
    Ok(None)
}

/// Per dtype and row length, from one run's two softmax files: the copy's rate; the fused kernel
/// with no mask as a fraction of the copy's rate (`fused_auto`, and forced to a warp or a block
/// per row); `torch.softmax`'s time over ours (above 1: ours is faster); and with the causal
/// mask, the unfused chain's time over the fused kernel's and PyTorch's eager chain over ours.
pub fn softmax_summary(ours: &Table, torch: &Table) -> Result<String> {
    let mut table = TextTable::new(&[
        ("dtype", 5),
        ("Nk", 5),
        ("copy GB/s", 9),
        ("fused/copy", 10),
        ("warp/copy", 9),
        ("block/copy", 10),
        ("torch.softmax ÷ ours", 20),
        ("chain ÷ fused", 13),
        ("torch chain ÷ our chain", 23),
    ])
    .left_aligned(0);
    let mut lengths: Vec<usize> = ours.rows().map(|r| r.get::<usize>("nk")).collect::<Result<_>>()?;
    lengths.sort_unstable();
    lengths.dedup();
    let ratio =
        |a: Option<f64>, b: Option<f64>| a.zip(b).map_or("—".to_string(), |(a, b)| format!("{:.2}", a / b));
    for dtype in ["f32", "bf16"] {
        for &nk in &lengths {
            let at = |t: &Table, name: &str, mask: &str| median_at(t, name, dtype, nk, mask);
            let copy = at(ours, "copy", "none")?;
            let Some(copy_ms) = copy else { continue };
            let fused = at(ours, "fused_auto", "none")?;
            let bytes = ours
                .rows()
                .find(|r| {
                    r.text("impl").is_ok_and(|i| i == "copy")
                        && r.text("dtype").is_ok_and(|d| d == dtype)
                        && r.get::<usize>("nk").is_ok_and(|n| n == nk)
                })
                .map(|r| r.get::<f64>("modelled_bytes"))
                .transpose()?
                .unwrap_or(f64::NAN);
            table.push([
                dtype.to_string(),
                nk.to_string(),
                format!("{:.0}", bytes / (copy_ms * 1e-3) / 1e9),
                ratio(copy, fused),
                ratio(copy, at(ours, "fused_warp", "none")?),
                ratio(copy, at(ours, "fused_block", "none")?),
                ratio(at(torch, "torch_softmax", "none")?, fused),
                ratio(at(ours, "unfused_chain", "causal")?, at(ours, "fused_auto", "causal")?),
                ratio(
                    at(torch, "torch_masked_fill_softmax", "causal")?,
                    at(ours, "unfused_chain", "causal")?,
                ),
            ]);
        }
    }
    Ok(table.render())
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
/// `ch05_time_qkv_epilogue`) and print [`softmax_summary`]; returns the files written. Names
/// each missing file on stdout.
pub fn write_recorded_figures(run_dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    match read_if_present(run_dir, "ch05_softmax.csv")? {
        Some(ours) => {
            let torch = read_if_present(run_dir, "torch_softmax.csv")?;
            if let Some(torch) = &torch {
                print!("{}", softmax_summary(&ours, torch)?);
            }
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
    fn the_summary_divides_the_right_rows() {
        let header = "impl,dtype,batch,heads,nq,nk,mask,median_ms,modelled_bytes,gbps,copy_fraction\n";
        let ours = Table::parse(
            &format!(
                "{header}copy,f32,1,1,4,1024,none,0.1,300000000,0,0\nfused_auto,f32,1,1,4,1024,none,0.125,0,0,0\n\
                 fused_auto,f32,1,1,4,1024,causal,0.1,0,0,0\nunfused_chain,f32,1,1,4,1024,causal,0.4,0,0,0\n"
            ),
            "ours",
        )
        .unwrap();
        let torch = Table::parse(
            &format!("{header}torch_softmax,f32,1,1,4,1024,none,0.25,0,0,0\ntorch_masked_fill_softmax,f32,1,1,4,1024,causal,0.6,0,0,0\n"),
            "torch",
        )
        .unwrap();
        let text = softmax_summary(&ours, &torch).unwrap();
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        // copy 3000 GB/s; fused 0.80 of it; no warp or block rows; torch 2.00× ours; chain 4.00×
        // the fused kernel; PyTorch's chain 1.50× ours.
        assert_eq!(row, ["f32", "1024", "3000", "0.80", "—", "—", "2.00", "4.00", "1.50"]);
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
