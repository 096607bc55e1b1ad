//! The book: every `{{#include file:anchor}}` and image link and every math delimiter of the
//! sources checked, then `mdbook build docs`, then the built pages checked to load nothing from
//! the network and to link only to pages and anchors the book holds ([`links::check_built`]).
//!
//! The book shows code by including anchored regions of the chapter sources, so a renamed
//! anchor or a moved file must fail the test instead of leaving a hole in the page.
//!
//! # Math that renders offline
//!
//! The pages are typeset in the reader's browser by MathJax 3.2.2 served from the book itself:
//! xtask puts MathJax's `es5/tex-svg-full.js` in `docs/mathjax/` (fetched once from the npm
//! registry, checked against pinned hashes: [`install::mathjax`]), `book.toml` lists it as
//! `additional-js` so mdBook copies it into the book and loads it on every page, and
//! `docs/theme/head.hbs` configures it for the book's delimiters, `\(…\)` and `\[…\]`. The book
//! then renders the same from a web server, from `file://`, and with no network at all.
//!
//! - mdBook's own `mathjax-support` loads MathJax 2.7.1 from cdnjs when the page is read: that is
//!   the raw `\(N \times N\)` a reader offline or behind a filtering proxy saw. It stays off.
//! - Rendering at build time with KaTeX (mdbook-katex) was weighed: its 0.10.0 works with mdBook
//!   0.5 (its issue #130 tracked the break in November 2025), but its pages link KaTeX's
//!   stylesheet and fonts from a CDN unless `no-css` is set, so the book would need KaTeX's CSS
//!   and fonts fetched and served anyway, plus one more tool to `cargo install` on every machine
//!   (with QuickJS's C sources to compile). One JavaScript file is less.
//! - MathJax 3, not 4: MathJax 4 fetches its fonts as separate files while typesetting, from a
//!   CDN by default. `tex-svg-full.js` is one self-contained file: every TeX extension built in
//!   (`tex-svg.js` would load some from files beside it) and SVG output, which draws glyphs as
//!   paths (CommonHTML output needs web-font files). It weighs 2.2 MB, cached by the browser
//!   once for every page (mdBook names it by its hash).
//!
//! What this relies on: the npm registry reachable the first time the book is built (the file
//! stays in `docs/mathjax/`, the tarball in `target/mathjax/`), Python 3 to download and unpack
//! it (the README requires it already), and the `sha2` crate for the checks.
//!
//! Two mistakes would bring the raw math back, and both fail the test: a script or stylesheet
//! loaded from the network ([`offline::check_built`]), and math written `\(` with one backslash in a source,
//! which markdown turns into a plain `(` ([`math::check_math_escapes`]).

mod links;
mod math;
mod offline;

use crate::install;
use crate::process::{capture, display, root};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where xtask puts MathJax for `book.toml`'s `additional-js` (not committed).
pub const MATHJAX_FILE: &str = "docs/mathjax/tex-svg-full.js";

/// Check the book's links into the code and its math delimiters, fetch MathJax if missing, build
/// the book, and check that it loads nothing from the network; fail on any error or warning.
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
    let problems = math::check_math_escapes(&docs.join("src"))?;
    if !problems.is_empty() {
        for p in &problems {
            println!("math: {p}");
        }
        bail!(
            "{} math delimiter(s) in docs/src written with one backslash: markdown reads `\\(` as an \
             escaped `(` and the formula shows as plain text; write `\\\\(` … `\\\\)` and `\\\\[` … `\\\\]`",
            problems.len()
        );
    }
    install::mathjax(&root().join(MATHJAX_FILE))?;
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
    let problems = offline::check_built(&docs.join("book"))?;
    if !problems.is_empty() {
        for p in &problems {
            println!("offline: {p}");
        }
        bail!(
            "{} problem(s) in the built book: it must load every script and stylesheet from itself, \
             so that it (and its math) renders with no network",
            problems.len()
        );
    }
    let links = links::check_built(&docs.join("book"))?;
    for p in &links.broken {
        println!("link: {p}");
    }
    if !links.broken.is_empty() {
        bail!(
            "{} broken link(s) in the built book ({} followed): a page or `#anchor` it does not hold",
            links.broken.len(),
            links.checked
        );
    }
    println!(
        "{} links of the built book followed: each leads to a file and an anchor the book holds",
        links.checked
    );
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
