//! What every chapter binary prints and writes: section headings, progress bars, and text
//! tables (CSV) written to a file whose folder may not exist yet.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_lines_creates_the_folder() {
        let dir = std::env::temp_dir().join(format!("attn-support-report-{}", std::process::id()));
        let path = dir.join("a/b.csv");
        write_lines(&path, "x,y", ["1,2".to_string(), "3,4".to_string()]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x,y\n1,2\n3,4\n");
        std::fs::remove_dir_all(dir).ok();
    }
}
