//! The timings recorded by a GPU run of the `ch01` binary (`docs/src/results/<run>/ch01_timings.csv`,
//! columns `version,n,d,median_ms`), read by column name through [`attn_support::csv::Table`] and
//! laid out as the table the book prints: one row per N, one column per version.

use attn_support::Result;
use attn_support::csv::Table;
use attn_support::report::TextTable;
use std::path::Path;

/// The run whose results the book and notebook 01 show: an NVIDIA H100 80GB HBM3, 2026-11-25
/// (its `summary.md` names the device, driver, date and commit).
pub const RECORDED_RUN: &str = "h100-2026-11-25";

/// One measured (version, N) of the `ch01` binary's timings.
#[derive(Clone, Debug, PartialEq)]
pub struct TimingRecord {
    /// `cpu_naive`, `cpu_ndarray`, `gpu_naive` or `gpu_three_kernels`.
    pub version: String,
    /// n_q = n_k = N.
    pub n: usize,
    /// d = d_v.
    pub d: usize,
    pub median_ms: f64,
}

/// The records of a parsed timings table.
pub fn timings_from_table(table: &Table) -> Result<Vec<TimingRecord>> {
    table
        .rows()
        .map(|r| {
            Ok(TimingRecord {
                version: r.text("version")?.to_string(),
                n: r.get("n")?,
                d: r.get("d")?,
                median_ms: r.get("median_ms")?,
            })
        })
        .collect()
}

/// Read a timings CSV written by `ch01` (`timings.csv`, kept in a run as `ch01_timings.csv`).
pub fn read_timings(path: impl AsRef<Path>) -> Result<Vec<TimingRecord>> {
    timings_from_table(&Table::read(path)?)
}

/// The timings as text: one row per N (ascending), one column of median milliseconds per
/// version (in order of first appearance), "—" where a version has no time at that N.
pub fn timing_table(records: &[TimingRecord]) -> String {
    let mut versions: Vec<&str> = Vec::new();
    let mut ns: Vec<usize> = Vec::new();
    for r in records {
        if !versions.contains(&r.version.as_str()) {
            versions.push(&r.version);
        }
        if !ns.contains(&r.n) {
            ns.push(r.n);
        }
    }
    ns.sort_unstable();
    let columns: Vec<(&str, usize)> =
        std::iter::once(("N", 5)).chain(versions.iter().map(|v| (*v, 10))).collect();
    let mut table = TextTable::new(&columns).divider_before(1);
    for n in ns {
        let times = versions.iter().map(|v| match records.iter().find(|r| r.n == n && r.version == *v) {
            Some(r) => format!("{:.4}", r.median_ms),
            None => "—".to_string(),
        });
        table.push(std::iter::once(n.to_string()).chain(times));
    }
    let mut s = table.render();
    s.push_str("(median ms)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_support::csv::recorded_run;

    #[test]
    fn a_table_has_one_row_per_n_and_a_dash_where_a_version_is_missing() {
        let text = "version,n,d,median_ms\ncpu_naive,256,64,5.5\ngpu_naive,64,64,0.84\ncpu_naive,64,64,0.3\n";
        let records = timings_from_table(&Table::parse(text, "t.csv").unwrap()).unwrap();
        assert_eq!(records[1], TimingRecord { version: "gpu_naive".into(), n: 64, d: 64, median_ms: 0.84 });
        let table = timing_table(&records);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert_eq!(lines[3], "(median ms)");
        assert!(lines[0].contains("cpu_naive") && lines[0].find("cpu_naive") < lines[0].find("gpu_naive"));
        assert!(
            lines[1].trim_start().starts_with("64")
                && lines[1].contains("0.3000")
                && lines[1].contains("0.8400")
        );
        assert!(
            lines[2].trim_start().starts_with("256")
                && lines[2].contains("5.5000")
                && lines[2].ends_with('—')
        );
    }

    #[test]
    fn the_recorded_run_holds_four_versions_at_four_lengths() {
        let records = read_timings(recorded_run(RECORDED_RUN).unwrap().join("ch01_timings.csv")).unwrap();
        assert_eq!(records.len(), 16);
        assert!(records.iter().all(|r| r.d == 64 && r.median_ms > 0.0));
        let three_at_2048 = records.iter().find(|r| r.version == "gpu_three_kernels" && r.n == 2048).unwrap();
        assert_eq!(three_at_2048.median_ms, 1.205920);
    }
}
