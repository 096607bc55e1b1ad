//! Reading the CSV files that the chapter binaries and the GPU runs write: one parser for every
//! chapter and notebook instead of a hand-split loop in each.
//!
//! The files are simple (a header line, comma-separated fields, no quoting), so a [`Table`] is
//! a header and rows of strings; fields are looked up by column name, so a column added to a
//! file later does not shift what a reader gets. Errors name the file, the line and the column.
//!
//! Benchmark files share one layout, `impl,batch,heads,seq,head_dim,causal,median_ms,tflops`
//! ([`BENCH_HEADER`]): [`read_bench_csv`] turns them into [`BenchRecord`]s. The recorded runs
//! live under `docs/src/results/`; [`recorded_run`] finds one from any working directory.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A CSV file: its header and its data rows (blank lines skipped).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Where the text came from, for error messages.
    pub source: String,
    pub header: Vec<String>,
    /// Each row as (line number in the file, from 1; its fields).
    rows: Vec<(usize, Vec<String>)>,
}

/// One data row of a [`Table`].
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    table: &'a Table,
    line: usize,
    fields: &'a [String],
}

impl Table {
    /// Parse CSV text; `source` names it in errors. Every row must have as many fields as the
    /// header.
    pub fn parse(text: &str, source: &str) -> Result<Table> {
        Table::parse_with(text, source, false)
    }

    /// [`Table::parse`] for files whose first column is a free-text label that may itself
    /// hold commas (the roofline's kernel names): a row's fields are split from the right, and
    /// whatever is left before the last `header.len() − 1` of them is the label.
    pub fn parse_labelled(text: &str, source: &str) -> Result<Table> {
        Table::parse_with(text, source, true)
    }

    fn parse_with(text: &str, source: &str, labelled: bool) -> Result<Table> {
        let split = |l: &str| l.split(',').map(|f| f.trim().to_string()).collect::<Vec<_>>();
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let Some((_, first)) = lines.next() else {
            return Err(Error::InvalidArgument(format!("{source}: empty CSV, no header line")));
        };
        let header = split(first);
        let split_row = |l: &str| {
            if labelled {
                let mut f: Vec<String> = l.rsplitn(header.len(), ',').map(|f| f.trim().to_string()).collect();
                f.reverse();
                f
            } else {
                split(l)
            }
        };
        let mut rows = Vec::new();
        for (i, line) in lines {
            let fields = split_row(line);
            if fields.len() != header.len() {
                return Err(Error::InvalidArgument(format!(
                    "{source} line {}: {} fields where the header has {}: {line:?}",
                    i + 1,
                    fields.len(),
                    header.len()
                )));
            }
            rows.push((i + 1, fields));
        }
        Ok(Table { source: source.to_string(), header, rows })
    }

    /// Read and parse a CSV file.
    pub fn read(path: impl AsRef<Path>) -> Result<Table> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Table::parse(&text, &path.display().to_string())
    }

    /// Fail unless the header begins with `columns` (a file may carry more columns after them).
    pub fn expect_columns(&self, columns: &[&str]) -> Result<()> {
        let starts =
            self.header.len() >= columns.len() && self.header.iter().zip(columns).all(|(h, c)| h == c);
        if starts {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "{}: expected the header to begin with '{}', got '{}'",
                self.source,
                columns.join(","),
                self.header.join(",")
            )))
        }
    }

    /// The index of column `name`, or an error naming the columns there are.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: no column '{name}' (has {})",
                self.source,
                self.header.join(",")
            ))
        })
    }

    /// The data rows, in file order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|(line, fields)| Row { table: self, line: *line, fields })
    }

    /// How many data rows there are.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the file has a header and no data row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl<'a> Row<'a> {
    /// The text of column `name`.
    pub fn text(&self, name: &str) -> Result<&'a str> {
        Ok(self.fields[self.table.column(name)?].as_str())
    }

    /// Column `name` parsed as a number (or anything `FromStr`); the error names file, line,
    /// column and the text found.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<T> {
        let text = self.text(name)?;
        text.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "{} line {}: column '{name}' holds '{text}', which does not parse as {}",
                self.table.source,
                self.line,
                std::any::type_name::<T>()
            ))
        })
    }

    /// Column `name` as a finite number, or `None` when the run recorded no number there
    /// ("oom", "unsupported", "nan", an empty field).
    pub fn measured(&self, name: &str) -> Result<Option<f64>> {
        Ok(self.text(name)?.parse::<f64>().ok().filter(|v| v.is_finite()))
    }

    /// The line of the file this row is on (from 1).
    pub fn line(&self) -> usize {
        self.line
    }
}

/// The columns every benchmark CSV of the book begins with.
pub const BENCH_HEADER: &str = "impl,batch,heads,seq,head_dim,causal,median_ms,tflops";

/// One timed shape of a benchmark CSV ([`BENCH_HEADER`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRecord {
    /// Which implementation ran: `ch03_flash`, `torch_efficient`, ...
    pub implementation: String,
    pub batch: usize,
    pub heads: usize,
    pub seq: usize,
    pub head_dim: usize,
    pub causal: bool,
    /// `None` when the run recorded no time (out of memory, unsupported shape).
    pub median_ms: Option<f64>,
    pub tflops: Option<f64>,
}

/// Read a benchmark CSV ([`BENCH_HEADER`]); extra columns after those are ignored.
pub fn read_bench_csv(path: impl AsRef<Path>) -> Result<Vec<BenchRecord>> {
    bench_records(&Table::read(path)?)
}

/// The [`BenchRecord`]s of a parsed benchmark table.
pub fn bench_records(table: &Table) -> Result<Vec<BenchRecord>> {
    let columns: Vec<&str> = BENCH_HEADER.split(',').collect();
    table.expect_columns(&columns)?;
    table
        .rows()
        .map(|r| {
            Ok(BenchRecord {
                implementation: r.text("impl")?.to_string(),
                batch: r.get("batch")?,
                heads: r.get("heads")?,
                seq: r.get("seq")?,
                head_dim: r.get("head_dim")?,
                causal: r.get::<u8>("causal")? != 0,
                median_ms: r.measured("median_ms")?,
                tflops: r.measured("tflops")?,
            })
        })
        .collect()
}

/// The folder of a recorded run, `docs/src/results/<name>`, found from this crate's place in
/// the repository so that it works from a notebook, a binary or a test alike.
pub fn recorded_run(name: &str) -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/src/results").join(name);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(Error::InvalidArgument(format!(
            "no recorded run '{name}': {} is not a folder (the runs are listed in docs/src/results.md)",
            dir.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BENCH: &str = "impl,batch,heads,seq,head_dim,causal,median_ms,tflops\n\
        torch_math,8,16,16384,64,0,oom,oom\n\n\
        ch03_flash,8,16,1024,64,1,0.656128,26.1837\n";

    #[test]
    fn bench_rows_parse_and_missing_numbers_are_none() {
        let rows = bench_records(&Table::parse(BENCH, "t.csv").unwrap()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].median_ms, None);
        assert_eq!(rows[0].tflops, None);
        assert_eq!(rows[1].implementation, "ch03_flash");
        assert!(rows[1].causal);
        assert_eq!((rows[1].seq, rows[1].head_dim), (1024, 64));
        assert_eq!(rows[1].tflops, Some(26.1837));
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let bad = Table::parse("a,b\n1,x\n", "f.csv").unwrap();
        let row = bad.rows().next().unwrap();
        assert_eq!(row.get::<u32>("a").unwrap(), 1);
        let e = row.get::<u32>("b").unwrap_err().to_string();
        assert!(e.contains("f.csv line 2") && e.contains("'b'") && e.contains("'x'"), "{e}");
        let e = row.text("c").unwrap_err().to_string();
        assert!(e.contains("no column 'c'") && e.contains("a,b"), "{e}");
        let e = Table::parse("a,b\n1\n", "g.csv").unwrap_err().to_string();
        assert!(e.contains("g.csv line 2") && e.contains("1 fields"), "{e}");
        assert!(Table::parse("\n\n", "h.csv").is_err());
        let e = bench_records(&bad).unwrap_err().to_string();
        assert!(e.contains("begin with 'impl,batch"), "{e}");
    }

    #[test]
    fn labelled_tables_keep_commas_in_the_first_column() {
        let text = "label,group,flops\nch03 flash, f32 ,f32,4e9\nplain,g,1\n";
        let t = Table::parse_labelled(text, "r.csv").unwrap();
        let labels: Vec<&str> = t.rows().map(|r| r.text("label").unwrap()).collect();
        assert_eq!(labels, ["ch03 flash, f32", "plain"]);
        assert_eq!(t.rows().next().unwrap().get::<f64>("flops").unwrap(), 4e9);
        // Too few fields is still an error; plain parsing counts the comma as a field.
        assert!(Table::parse_labelled("a,b,c\nx,1\n", "r.csv").is_err());
        assert!(Table::parse(text, "r.csv").is_err());
    }

    #[test]
    fn recorded_runs_are_found_from_anywhere() {
        let dir = recorded_run("h100-2026-11-25-ch03").unwrap();
        let rows = read_bench_csv(dir.join("ch03_gpu_bench.csv")).unwrap();
        assert!(rows.iter().all(|r| r.implementation == "ch03_flash"));
        assert!(!rows.is_empty());
        assert!(recorded_run("no-such-run").unwrap_err().to_string().contains("no-such-run"));
    }
}
