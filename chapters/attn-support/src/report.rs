//! What every chapter binary prints and writes: section headings, progress bars, aligned text
//! tables ([`TextTable`]), and CSV files written to a folder that may not exist yet.

use crate::error::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

/// A section heading: `== title ==` after a blank line.
pub fn heading(title: &str) {
    println!("\n== {title} ==");
}

/// A progress bar of `len` steps labelled `what`, for the parts of a binary that take long.
pub fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64).with_message(what.to_string());
    let style = ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {elapsed}")
        .expect("a valid progress template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Write `header` and then one line per item to `path`, creating its folder; prints the path.
pub fn write_lines(path: &Path, header: &str, lines: impl IntoIterator<Item = String>) -> Result<()> {
    let io = |source| Error::Io { path: path.display().to_string(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut text = format!("{header}\n");
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(io)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// A text table of aligned columns: the titles and the widths are written once, and every
/// line (the header and each row) is laid out from them, so a binary that prints rows as they
/// are measured and one that prints a finished table use the same code. A column is as wide as
/// the larger of its width and its title; cells are right-aligned (numbers line up) unless the
/// column is made left-aligned; `divider_before(i)` puts ` | ` instead of a space before column
/// `i`, to group columns.
///
/// ```
/// use attn_support::report::TextTable;
/// let mut t = TextTable::new(&[("N", 5), ("median ms", 0)]);
/// t.push([4096.to_string(), format!("{:.3}", 1.25)]);
/// assert_eq!(t.render(), "    N median ms\n 4096     1.250\n");
/// ```
#[derive(Clone, Debug, Default)]
pub struct TextTable {
    titles: Vec<String>,
    widths: Vec<usize>,
    left: Vec<bool>,
    divider: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    /// Columns as (title, width); a width of 0 means "as wide as the title".
    pub fn new(columns: &[(&str, usize)]) -> TextTable {
        let width = |(t, w): &(&str, usize)| (*w).max(t.chars().count());
        TextTable {
            titles: columns.iter().map(|(t, _)| t.to_string()).collect(),
            widths: columns.iter().map(width).collect(),
            left: vec![false; columns.len()],
            divider: vec![false; columns.len()],
            rows: Vec::new(),
        }
    }

    /// Left-align column `i` (text such as names).
    pub fn left_aligned(mut self, i: usize) -> TextTable {
        self.left[i] = true;
        self
    }

    /// Separate column `i` from the one before it by ` | `.
    pub fn divider_before(mut self, i: usize) -> TextTable {
        self.divider[i] = true;
        self
    }

    fn layout<S: AsRef<str>>(&self, cells: &[S], widths: &[usize]) -> String {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let (cell, w) = (cell.as_ref(), widths.get(i).copied().unwrap_or(0));
            if i > 0 {
                line.push_str(if self.divider.get(i) == Some(&true) { " | " } else { " " });
            }
            let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
            if self.left.get(i) == Some(&true) {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(cell);
            }
        }
        line
    }

    /// The header line at the declared widths (no newline).
    pub fn header(&self) -> String {
        self.layout(&self.titles, &self.widths)
    }

    /// One row at the declared widths (no newline), for printing a row as soon as it is known;
    /// a cell wider than its column pushes the rest of the line right.
    pub fn line<S: AsRef<str>>(&self, cells: &[S]) -> String {
        self.layout(cells, &self.widths)
    }

    /// Keep a row for [`TextTable::render`].
    pub fn push<S: ToString>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(|c| c.to_string()).collect());
    }

    /// The header and every kept row, each column widened to its widest cell, one line each.
    pub fn render(&self) -> String {
        let mut widths = self.widths.clone();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut text = self.layout(&self.titles, &widths);
        text.push('\n');
        for row in &self.rows {
            text.push_str(&self.layout(row, &widths));
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lines_keep_the_declared_widths() {
        let t = TextTable::new(&[("B", 3), ("causal", 0), ("median ms", 10)]).divider_before(2);
        assert_eq!(t.header(), format!("{:>3} {:>6} | {:>10}", "B", "causal", "median ms"));
        let cells = ["8".to_string(), "1".into(), format!("{:.4}", 0.5)];
        assert_eq!(t.line(&cells), format!("{:>3} {:>6} | {:>10.4}", 8, 1, 0.5));
    }

    #[test]
    fn rendered_tables_widen_to_the_widest_cell() {
        let mut t = TextTable::new(&[("version", 0), ("N", 4)]).left_aligned(0);
        t.push(["naive", "64"]);
        t.push(["three kernels", "16384"]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, ["version           N", "naive            64", "three kernels 16384"]);
        assert_eq!(TextTable::new(&[("a", 0)]).render(), "a\n");
    }

    #[test]
    fn write_lines_creates_the_folder() {
        let dir = std::env::temp_dir().join(format!("attn-support-report-{}", std::process::id()));
        let path = dir.join("a/b.csv");
        write_lines(&path, "x,y", ["1,2".to_string(), "3,4".to_string()]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x,y\n1,2\n3,4\n");
        std::fs::remove_dir_all(dir).ok();
    }
}
