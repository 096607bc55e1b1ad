//! The book: every `{{#include file:anchor}}` and image link checked, then `mdbook build docs`.
//!
//! The book shows code by including anchored regions of the chapter sources, so a renamed
//! anchor or a moved file must fail the test instead of leaving a hole in the page.

use crate::install;
use crate::process::{capture, display, root};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Check the book's links into the code, then build it; fail on any error or warning.
pub fn build() -> Result<()> {
    let docs = root().join("docs");
    if !docs.join("book.toml").is_file() {
        println!("no docs/book.toml: no book to build");
        return Ok(());
    }
    let problems = check_links(&docs.join("src"))?;
    if !problems.is_empty() {
        for p in &problems {
            println!("broken: {p}");
        }
        bail!("{} broken include(s) or image link(s) in docs/src", problems.len());
    }
    let mdbook = install::mdbook()?;
    let mut cmd = Command::new(mdbook);
    cmd.args(["build", "docs"]).current_dir(root());
    println!("$ {}", display(&cmd));
    let out = capture(&mut cmd)?;
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    print!("{log}");
    // mdbook reports some problems (a missing include among them) as a logged error or warning
    // and still exits 0, so its log is read too.
    let bad: Vec<&str> = log.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).collect();
    if !out.status.success() || !bad.is_empty() {
        bail!("mdbook build failed ({}, {} error/warning lines)", out.status, bad.len());
    }
    println!("the book is in docs/book/index.html");
    Ok(())
}

/// Every include and local image of every page under `src`, as "page: what is wrong".
pub fn check_links(src: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for page in markdown_files(src)? {
        let text = std::fs::read_to_string(&page).with_context(|| format!("reading {}", page.display()))?;
        let dir = page.parent().expect("a page is in a folder");
        let name = page.strip_prefix(root()).unwrap_or(&page).display().to_string();
        for target in includes(&text) {
            if let Err(why) = check_include(dir, &target) {
                problems.push(format!("{name}: {{{{#include {target}}}}}: {why}"));
            }
        }
        for image in images(&text) {
            if !dir.join(&image).is_file() {
                problems.push(format!("{name}: image {image} does not exist"));
            }
        }
    }
    Ok(problems)
}

fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(markdown_files(&path)?);
        } else if path.extension().is_some_and(|x| x == "md") {
            found.push(path);
        }
    }
    Ok(found)
}

/// The arguments of the `{{#include ...}}` and `{{#rustdoc_include ...}}` directives of a page
/// (escaped ones, `\{{#include`, are text and skipped, as mdbook does).
fn includes(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for directive in ["{{#include ", "{{#rustdoc_include "] {
        for (at, _) in text.match_indices(directive) {
            if text[..at].ends_with('\\') {
                continue;
            }
            let rest = &text[at + directive.len()..];
            if let Some(end) = rest.find("}}") {
                found.push(rest[..end].trim().to_owned());
            }
        }
    }
    found
}

/// `file`, `file:anchor`, `file:10`, `file:10:20` or `file::20`, relative to the page's folder.
fn check_include(dir: &Path, target: &str) -> std::result::Result<(), String> {
    let (file, selector) = target.split_once(':').unwrap_or((target, ""));
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_lines =
        selector.is_empty() || selector.split(':').all(|n| n.is_empty() || n.parse::<u32>().is_ok());
    if is_lines {
        return Ok(());
    }
    let anchor = selector;
    let marker =
        |kind: &str| text.lines().any(|l| l.split_once(kind).is_some_and(|(_, name)| name.trim() == anchor));
    match (marker("ANCHOR:"), marker("ANCHOR_END:")) {
        (true, true) => Ok(()),
        (false, _) => Err(format!("{file} has no `ANCHOR: {anchor}`")),
        (true, false) => Err(format!("{file} has no `ANCHOR_END: {anchor}`")),
    }
}

/// The local targets of `![alt](target)` image links (web addresses are not checked).
fn images(text: &str) -> Vec<String> {
    text.match_indices("![")
        .filter_map(|(at, _)| {
            let rest = &text[at..];
            let open = rest.find("](")?;
            let close = rest[open..].find(')')?;
            let target = rest[open + 2..open + close].split_whitespace().next()?.to_owned();
            (!target.contains("://")).then_some(target)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_includes_and_skips_escaped_ones() {
        let page = "a {{#include ../x.rs:softmax}} b \\{{#include no.rs}} {{#rustdoc_include y.rs:3:9}}";
        assert_eq!(includes(page), vec!["../x.rs:softmax", "y.rs:3:9"]);
    }

    #[test]
    fn anchors_must_open_and_close() {
        let dir = std::env::temp_dir().join(format!("xtask-anchor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a.rs"),
            "// ANCHOR: good\nfn f() {}\n// ANCHOR_END: good\n// ANCHOR: open\n",
        )
        .unwrap();
        assert!(check_include(&dir, "a.rs:good").is_ok());
        assert!(check_include(&dir, "a.rs:2:3").is_ok());
        assert!(check_include(&dir, "a.rs:open").unwrap_err().contains("ANCHOR_END"));
        assert!(check_include(&dir, "a.rs:goo").unwrap_err().contains("no `ANCHOR: goo`"));
        assert!(check_include(&dir, "missing.rs").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finds_local_images_only() {
        let page = "![heat](figures/h.png \"t\") ![web](https://x/y.png) [not](a.png)";
        assert_eq!(images(page), vec!["figures/h.png"]);
    }
}
