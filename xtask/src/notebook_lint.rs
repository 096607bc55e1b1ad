//! The conventions every notebook keeps, checked without running anything (CHAPTERS.md, "The
//! skeleton of every chapter"):
//!
//! - math as `$…$` / `$$…$$`: JupyterLab shows `\(…\)` and `\[…\]` as raw text;
//! - the chapter's Chinese title in the first cell, for readers of the series;
//! - the story told in markdown between short code cells: at least [`MIN_MARKDOWN_PER_CODE`]
//!   markdown cells per code cell, and a median code cell of at most [`MAX_MEDIAN_CODE_LINES`];
//! - an "Exercises" section whose solutions notebook (`notebooks/solutions/…`) exists;
//! - outputs committed from a run of the current sources, so that a reader sees every table and
//!   figure without running anything: every code cell executed, none failed, and the sources'
//!   hash stamped by `cargo xtask record-notebooks` equal to the sources' hash now.
//!
//! Solution notebooks are checked for math, recorded outputs and the hash only.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Markdown cells per code cell, at least (the `:dep` cell counts as code).
pub const MIN_MARKDOWN_PER_CODE: f64 = 2.0;
/// The median code cell's lines, at most.
pub const MAX_MEDIAN_CODE_LINES: usize = 6;
/// The notebook metadata key under which `record-notebooks` stamps the sources' hash.
pub const HASH_KEY: &str = "source_sha256";

/// Every problem of every notebook in `main` (chapter notebooks) and `solutions`.
pub fn check_all(main: &[std::path::PathBuf], solutions: &[std::path::PathBuf]) -> Result<()> {
    let mut problems = Vec::new();
    for (path, is_solution) in main.iter().map(|p| (p, false)).chain(solutions.iter().map(|p| (p, true))) {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let nb: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let found = if is_solution { check_solution(&nb, path) } else { check_chapter(&nb, path) };
        problems.extend(found.into_iter().map(|p| format!("{name}: {p}")));
    }
    if problems.is_empty() {
        println!("{} notebooks and {} solution notebooks keep the conventions", main.len(), solutions.len());
        return Ok(());
    }
    for p in &problems {
        println!("notebook lint: {p}");
    }
    bail!("{} notebook convention problem(s); see CONTRIBUTING.md, \"The notebook\"", problems.len())
}

/// A cell's source as one string (nbformat allows a string or a list of lines).
pub fn source(cell: &Value) -> String {
    match &cell["source"] {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

fn cells(nb: &Value) -> &[Value] {
    nb["cells"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// sha256 over every cell's type and source, in order: what the recorded outputs came from.
/// `xtask/notebook_runner.py --record` computes the same bytes.
pub fn sources_hash(nb: &Value) -> String {
    let mut h = Sha256::new();
    for cell in cells(nb) {
        h.update(cell["cell_type"].as_str().unwrap_or("").as_bytes());
        h.update([0]);
        h.update(source(cell).as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn check_chapter(nb: &Value, path: &Path) -> Vec<String> {
    let mut problems = math_forms(nb);
    let cells = cells(nb);
    let markdown: Vec<String> = cells.iter().filter(|c| c["cell_type"] == "markdown").map(source).collect();
    let code: Vec<String> = cells.iter().filter(|c| c["cell_type"] == "code").map(source).collect();
    if !markdown.first().is_some_and(|m| m.lines().next().is_some_and(has_cjk)) {
        problems.push("the first cell's title line has no Chinese title".into());
    }
    if !code.is_empty() {
        let ratio = markdown.len() as f64 / code.len() as f64;
        if ratio < MIN_MARKDOWN_PER_CODE {
            problems.push(format!(
                "{} markdown cells for {} code cells ({ratio:.2} per code cell, want ≥ {MIN_MARKDOWN_PER_CODE})",
                markdown.len(),
                code.len()
            ));
        }
        let median = median_lines(&code);
        if median > MAX_MEDIAN_CODE_LINES {
            problems
                .push(format!("the median code cell has {median} lines (want ≤ {MAX_MEDIAN_CODE_LINES})"));
        }
    }
    problems.extend(exercises(&markdown, path));
    problems.extend(recorded_outputs(nb));
    problems
}

fn check_solution(nb: &Value, _path: &Path) -> Vec<String> {
    let mut problems = math_forms(nb);
    problems.extend(recorded_outputs(nb));
    problems
}

/// `\(`, `\)`, `\[`, `\]` in markdown cells.
fn math_forms(nb: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, cell) in cells(nb).iter().enumerate().filter(|(_, c)| c["cell_type"] == "markdown") {
        let text = source(cell);
        for form in ["\\(", "\\)", "\\[", "\\]"] {
            if let Some(at) = text.find(form) {
                let start = text[..at].char_indices().rev().nth(20).map_or(0, |(j, _)| j);
                let snippet: String = text[start..].chars().take(45).collect();
                problems.push(format!(
                    "cell {i}: math written as {form}…, which JupyterLab shows raw; use $…$ or $$…$$: {snippet:?}"
                ));
                break;
            }
        }
    }
    problems
}

fn has_cjk(line: &str) -> bool {
    line.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

fn median_lines(code: &[String]) -> usize {
    let mut lines: Vec<usize> = code.iter().map(|c| c.trim_end().lines().count()).collect();
    lines.sort_unstable();
    lines[(lines.len() - 1) / 2]
}

/// An "Exercises" heading, and a link from it to a solutions notebook that exists.
fn exercises(markdown: &[String], path: &Path) -> Vec<String> {
    let Some(cell) =
        markdown.iter().find(|m| m.lines().any(|l| l.starts_with('#') && l.contains("Exercises")))
    else {
        return vec!["no \"Exercises\" heading".into()];
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let links: Vec<&str> =
        cell.match_indices("](solutions/").filter_map(|(at, _)| cell[at + 2..].split(')').next()).collect();
    match links.first() {
        None => vec!["the Exercises cell links no solutions/… notebook".into()],
        Some(link) if !dir.join(link).is_file() => vec![format!("the solutions {link} do not exist")],
        Some(_) => Vec::new(),
    }
}

/// Every code cell executed, none failed, and the recorded hash equal to the sources' hash.
fn recorded_outputs(nb: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let stale_hint = "run `cargo xtask record-notebooks` and commit the notebook with its outputs";
    let stamped = nb["metadata"]["attn_book"][HASH_KEY].as_str();
    match stamped {
        None => problems.push(format!("no recorded outputs: {stale_hint}")),
        Some(h) if h != sources_hash(nb) => {
            problems.push(format!("cells were edited after the outputs were recorded: {stale_hint}"))
        }
        Some(_) => {}
    }
    let mut unrun = Vec::new();
    for (i, cell) in cells(nb).iter().enumerate().filter(|(_, c)| c["cell_type"] == "code") {
        if cell["execution_count"].is_null() {
            unrun.push(i.to_string());
        }
        let outputs = cell["outputs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let failed = outputs
            .iter()
            .any(|o| o["output_type"] == "error" || (o["name"] == "stderr" && o["text"] != Value::Null));
        if failed {
            problems.push(format!("cell {i} has a recorded error or stderr output"));
        }
    }
    if !unrun.is_empty() {
        problems.push(format!("cells {} were not executed", unrun.join(", ")));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notebook(cells: Value) -> Value {
        json!({ "cells": cells, "metadata": {} })
    }

    #[test]
    fn raw_math_forms_are_found() {
        let nb = notebook(json!([
            { "cell_type": "markdown", "source": "fine $x$ and $$y$$" },
            { "cell_type": "markdown", "source": ["the scale \\(", "\\sqrt d\\)"] },
            { "cell_type": "code", "source": "let s = \"\\\\(\";" },
        ]));
        let found = math_forms(&nb);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("cell 1"));
    }

    #[test]
    fn the_hash_covers_types_and_sources() {
        let a = notebook(json!([{ "cell_type": "code", "source": "1" }]));
        let b = notebook(json!([{ "cell_type": "code", "source": ["", "1"] }]));
        let c = notebook(json!([{ "cell_type": "markdown", "source": "1" }]));
        assert_eq!(sources_hash(&a), sources_hash(&b));
        assert_ne!(sources_hash(&a), sources_hash(&c));
        // The same bytes Python's hashlib sees: "code\0" "1\0".
        assert_eq!(sources_hash(&a), format!("{:x}", Sha256::digest(b"code\x001\x00")));
    }

    #[test]
    fn stale_or_unrun_notebooks_are_reported() {
        let mut nb =
            notebook(json!([{ "cell_type": "code", "source": "1", "execution_count": null, "outputs": [] }]));
        let found = recorded_outputs(&nb);
        assert!(found[0].contains("no recorded outputs") && found[1].contains("not executed"), "{found:?}");
        nb["metadata"]["attn_book"][HASH_KEY] = json!("0000");
        assert!(recorded_outputs(&nb)[0].contains("edited after"));
        let hash = sources_hash(&nb);
        nb["metadata"]["attn_book"][HASH_KEY] = json!(hash);
        nb["cells"][0]["execution_count"] = json!(1);
        assert!(recorded_outputs(&nb).is_empty());
        nb["cells"][0]["outputs"] =
            json!([{ "output_type": "stream", "name": "stderr", "text": "panicked" }]);
        assert!(recorded_outputs(&nb)[0].contains("stderr"));
    }

    #[test]
    fn story_ratio_title_and_exercises() {
        let dir = std::env::temp_dir().join(format!("xtask-lint-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("solutions")).unwrap();
        std::fs::write(dir.join("solutions/01-x.ipynb"), "{}").unwrap();
        let path = dir.join("01-x.ipynb");
        let md = |s: &str| json!({ "cell_type": "markdown", "source": s });
        let code = json!({ "cell_type": "code", "source": "a\nb", "execution_count": 1, "outputs": [] });
        let mut nb = notebook(json!([
            md("# 1. Basics · 注意力基础"),
            md("story"),
            code.clone(),
            md("## Exercises\n[solutions](solutions/01-x.ipynb)"),
        ]));
        let hash = sources_hash(&nb);
        nb["metadata"]["attn_book"][HASH_KEY] = json!(hash);
        assert!(check_chapter(&nb, &path).is_empty(), "{:?}", check_chapter(&nb, &path));
        nb["cells"][0] = md("# 1. Basics");
        nb["cells"][3] = md("## Exercises\n[solutions](solutions/02-y.ipynb)");
        nb["cells"].as_array_mut().unwrap().push(code);
        let found = check_chapter(&nb, &path).join("\n");
        assert!(found.contains("Chinese title"), "{found}");
        assert!(found.contains("1.50 per code cell"), "{found}");
        assert!(found.contains("02-y.ipynb do not exist"), "{found}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
