//! The book: every `{{#include file:anchor}}` and image link and every math delimiter of the
//! sources checked, then `mdbook build docs`, then the built pages checked to load nothing from
//! the network.
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
//! loaded from the network ([`check_built`]), and math written `\(` with one backslash in a source,
//! which markdown turns into a plain `(` ([`check_math_escapes`]).

use crate::install;
use crate::process::{capture, display, root};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where xtask puts MathJax for `book.toml`'s `additional-js` (not committed).
pub const MATHJAX_FILE: &str = "docs/mathjax/tex-svg-full.js";

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
    let problems = check_math_escapes(&docs.join("src"))?;
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
    let problems = check_built(&docs.join("book"))?;
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

/// Every math delimiter written with one backslash (`\(`, `\)`, `\[`, `\]`) outside code in a
/// page under `src`, as "page:line: what". Markdown reads `\(` as an escaped `(`, so MathJax
/// never sees the delimiter; mdBook pages need `\\(`.
pub fn check_math_escapes(src: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for page in markdown_files(src)? {
        let text = std::fs::read_to_string(&page).with_context(|| format!("reading {}", page.display()))?;
        let name = page.strip_prefix(root()).unwrap_or(&page).display().to_string();
        let found = single_backslash_math(&text);
        // One report per line: a formula has two delimiters, and a line often several formulas.
        for (i, (line, excerpt)) in found.iter().enumerate() {
            if i == 0 || found[i - 1].0 != *line {
                let count = found.iter().filter(|f| f.0 == *line).count();
                problems.push(format!(
                    "{name}:{line}: {count} delimiter(s) with one backslash, from `{excerpt}…`"
                ));
            }
        }
    }
    Ok(problems)
}

/// The delimiters of `markdown` written with exactly one backslash, outside fenced code blocks
/// and code spans, as (line number, the text from that backslash on, a few characters).
/// Two backslashes are the right form; three also reach MathJax as `\(` and are left alone.
/// Indented code blocks are not recognised (the book fences its code).
fn single_backslash_math(markdown: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    // A paragraph is kept whole, because a code span may run over a line break.
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let fence_mark = ['`', '~']
            .into_iter()
            .map(|c| (c, trimmed.len() - trimmed.trim_start_matches(c).len()))
            .find(|&(_, k)| k >= 3);
        match (fence, fence_mark) {
            (Some((c, n)), Some((m, k))) if c == m && k >= n && trimmed[k..].trim().is_empty() => {
                fence = None;
                continue;
            }
            (Some(_), _) => continue,
            (None, Some((c, k))) => {
                found.extend(scan_prose(&paragraph));
                paragraph.clear();
                fence = Some((c, k));
                continue;
            }
            _ => {}
        }
        if trimmed.is_empty() {
            found.extend(scan_prose(&paragraph));
            paragraph.clear();
        } else {
            paragraph.push((i + 1, line));
        }
    }
    found.extend(scan_prose(&paragraph));
    found
}

/// Single-backslash delimiters in one paragraph of prose (lines numbered), code spans skipped.
fn scan_prose(lines: &[(usize, &str)]) -> Vec<(usize, String)> {
    let mut text = String::new();
    let mut line_starts = Vec::new();
    for (number, line) in lines {
        line_starts.push((text.len(), *number));
        text.push_str(line);
        text.push('\n');
    }
    let line_of = |at: usize| line_starts.iter().rev().find(|(start, _)| *start <= at).map_or(0, |l| l.1);
    let bytes = text.as_bytes();
    let run = |at: usize, c: u8| bytes[at..].iter().take_while(|&&b| b == c).count();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => {
                let n = run(at, b'\\');
                let next = bytes.get(at + n).copied();
                if n == 1 && matches!(next, Some(b'(' | b')' | b'[' | b']')) {
                    let excerpt: String = text[at..].chars().take_while(|&c| c != '\n').take(16).collect();
                    found.push((line_of(at), excerpt));
                }
                // An odd run escapes the character after it (an escaped backtick opens no span).
                at += n + usize::from(n % 2 == 1 && next.is_some());
            }
            b'`' => {
                let n = run(at, b'`');
                // A code span closes at the next run of exactly as many backticks; without one,
                // the backticks are literal text.
                let mut close = at + n;
                let end = loop {
                    match text[close..].find('`') {
                        None => break None,
                        Some(rel) => {
                            let start = close + rel;
                            let m = run(start, b'`');
                            if m == n {
                                break Some(start + m);
                            }
                            close = start + m;
                        }
                    }
                };
                at = end.unwrap_or(at + n);
            }
            _ => at += 1,
        }
    }
    found
}

/// Everything in the built book `book` that keeps it from rendering offline, as "file: what":
/// a script or stylesheet loaded from the network (in a page or through a stylesheet's `url()`
/// or `@import`), one the book lacks, and a page with math that loads no MathJax of its own.
pub fn check_built(book: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for file in files_under(book)? {
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext != "html" && ext != "css" {
            continue;
        }
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let name = file.strip_prefix(book).unwrap_or(&file).display().to_string();
        let loaded = if ext == "css" { css_imports(&text) } else { html_resources(&text) };
        for address in &loaded {
            if is_network(address) {
                problems.push(format!("{name}: loads {address} from the network"));
            } else if !address.starts_with("data:") {
                let local = address.split(['?', '#']).next().unwrap_or(address);
                if !file.parent().expect("a file is in a folder").join(local).is_file() {
                    problems.push(format!("{name}: loads {address}, which the book does not contain"));
                }
            }
        }
        if ext == "html" && has_math(&text) && !loaded.iter().any(|a| a.contains("mathjax/tex-svg-full")) {
            problems.push(format!("{name}: has math but loads no mathjax/tex-svg-full.js (see book.toml)"));
        }
    }
    Ok(problems)
}

/// Whether a page's content (inside `<main>`) holds a math delimiter, `\(` or `\[`.
fn has_math(html: &str) -> bool {
    let main = html.find("<main").and_then(|a| Some(&html[a..a + html[a..].find("</main>")?]));
    main.is_some_and(|m| m.contains("\\(") || m.contains("\\["))
}

/// An address fetched over the network: `http:`, `https:` or protocol-relative `//host/...`.
fn is_network(address: &str) -> bool {
    let a = address.trim().to_ascii_lowercase();
    a.starts_with("http:") || a.starts_with("https:") || a.starts_with("//")
}

/// The addresses a page loads at reading time: `<script src>` and `<link href>` of stylesheets
/// and preloads. (Links a reader clicks are not loaded, and not listed.)
fn html_resources(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    for (open, attr) in [("<script", "src"), ("<link", "href")] {
        for (at, _) in lower.match_indices(open) {
            let after = lower.as_bytes().get(at + open.len()).copied().unwrap_or(b'>');
            if !(after.is_ascii_whitespace() || after == b'>') {
                continue;
            }
            let tag = &html[at..at + lower[at..].find('>').unwrap_or(lower.len() - at)];
            let rel = attribute(tag, "rel").unwrap_or_default().to_ascii_lowercase();
            let loads = open == "<script"
                || rel.split_whitespace().any(|r| matches!(r, "stylesheet" | "preload" | "modulepreload"));
            if let Some(address) = attribute(tag, attr).filter(|_| loads) {
                found.push(address);
            }
        }
    }
    found
}

/// The value of attribute `name` in the start tag `tag` (quoted or not).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    for (at, _) in lower.match_indices(name) {
        let before = at.checked_sub(1).map(|b| bytes[b]);
        if !before.is_some_and(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let rest = tag[at + name.len()..].trim_start();
        let Some(value) = rest.strip_prefix('=') else { continue };
        let value = value.trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or("").to_owned(),
            _ => value.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or("").to_owned(),
        });
    }
    None
}

/// The addresses a stylesheet loads: `url(...)` (fonts, images) and `@import "..."`.
fn css_imports(css: &str) -> Vec<String> {
    let unquote = |s: &str| s.trim().trim_matches(['"', '\'']).trim().to_owned();
    let mut found = Vec::new();
    for (at, _) in css.match_indices("url(") {
        if let Some(end) = css[at..].find(')') {
            found.push(unquote(&css[at + 4..at + end]));
        }
    }
    for (at, _) in css.match_indices("@import") {
        let rest = css[at + 7..].trim_start();
        if let Some(q @ ('"' | '\'')) = rest.chars().next() {
            found.push(rest[1..].split(q).next().unwrap_or("").to_owned());
        }
    }
    found
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() { found.extend(files_under(&path)?) } else { found.push(path) }
    }
    Ok(found)
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

    #[test]
    fn finds_single_backslash_delimiters_with_their_lines() {
        let page = "Intro \\\\(x\\\\) is right.\nWrong: \\(n\\) and\n\\[ a \\] too.\n";
        let found = single_backslash_math(page);
        let lines: Vec<usize> = found.iter().map(|f| f.0).collect();
        assert_eq!(lines, vec![2, 2, 3, 3]);
        assert!(found[0].1.starts_with("\\(n\\)"), "{found:?}");
        // Three backslashes reach MathJax as `\(`: not flagged.
        assert!(single_backslash_math("a \\\\\\(x\\\\\\) b").is_empty());
    }

    #[test]
    fn single_backslashes_in_code_are_not_math() {
        let page = "\
`\\(` and ``a ` \\[ b`` in spans, one `over a
line \\(` too.

```rust
let s = \"\\(\";
```

- a list item
  ~~~~
  \\[ in an indented fence
  ~~~~
";
        assert_eq!(single_backslash_math(page), vec![]);
        // An escaped backtick opens no span; an unclosed one is text; both leave the math checked.
        assert_eq!(single_backslash_math("\\` \\(a\\)").len(), 2);
        assert_eq!(single_backslash_math("a ` b \\(c\\)").len(), 2);
        // A fence closes only with as many fence characters.
        assert_eq!(single_backslash_math("````\n```\n\\(\n````\n\\(x\\)").len(), 2);
    }

    #[test]
    fn finds_what_a_page_loads_at_reading_time() {
        let page = r#"<head><script>var x = 1;</script>
            <script async src="https://cdnjs.cloudflare.com/mathjax.js"></script>
            <SCRIPT src='//cdn.example/x.js'></SCRIPT>
            <link rel="stylesheet" href="css/general-1.css">
            <link rel="icon" href="https://example.org/favicon.png">
            <link rel="preload stylesheet" href=https://fonts.example/f.css>
            <scripts src="https://not.a.script/"></scripts></head>
            <main><a href="https://arxiv.org/abs/2205.14135">FlashAttention</a></main>"#;
        let found = html_resources(page);
        assert_eq!(
            found,
            vec![
                "https://cdnjs.cloudflare.com/mathjax.js",
                "//cdn.example/x.js",
                "css/general-1.css",
                "https://fonts.example/f.css"
            ]
        );
        let network: Vec<bool> = found.iter().map(|a| is_network(a)).collect();
        assert_eq!(network, vec![true, true, false, true]);
        let css = "@font-face { src: url(\"../fonts/a.woff2\"), url(https://fonts.example/b.woff2); }\n@import 'https://x/y.css';";
        assert_eq!(
            css_imports(css),
            vec!["../fonts/a.woff2", "https://fonts.example/b.woff2", "https://x/y.css"]
        );
    }

    #[test]
    fn a_built_book_must_load_everything_from_itself() {
        let book = std::env::temp_dir().join(format!("xtask-built-{}", std::process::id()));
        std::fs::create_dir_all(book.join("mathjax")).unwrap();
        std::fs::create_dir_all(book.join("css")).unwrap();
        std::fs::write(book.join("mathjax/tex-svg-full-a4354ff9.js"), "").unwrap();
        let mathjax = r#"<script src="mathjax/tex-svg-full-a4354ff9.js"></script>"#;
        std::fs::write(book.join("good.html"), format!("<main><p>\\(x\\)</p></main>{mathjax}")).unwrap();
        std::fs::write(book.join("prose.html"), "<main><p>no math</p></main>").unwrap();
        std::fs::write(book.join("bare.html"), "<main><p>\\[x\\]</p></main>").unwrap();
        std::fs::write(
            book.join("cdn.html"),
            format!("{mathjax}<script src=\"https://cdn.example/mj.js\"></script><link rel=\"stylesheet\" href=\"css/gone.css\">"),
        )
        .unwrap();
        std::fs::write(book.join("css/fonts.css"), "src: url('https://fonts.example/x.woff2')").unwrap();
        let mut problems = check_built(&book).unwrap();
        problems.sort();
        std::fs::remove_dir_all(&book).unwrap();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("bare.html: has math but loads no mathjax"), "{problems:#?}");
        assert!(problems[1].contains("cdn.html: loads css/gone.css, which the book does not contain"));
        assert!(problems[2].contains("cdn.html: loads https://cdn.example/mj.js from the network"));
        assert!(problems[3].contains(&format!(
            "css{}fonts.css: loads https://fonts.example/x.woff2",
            std::path::MAIN_SEPARATOR
        )));
    }

    #[test]
    fn book_toml_serves_mathjax_from_the_book() {
        // What the checks above guard only works if mdBook copies the file xtask fetches.
        let toml = std::fs::read_to_string(root().join("docs/book.toml")).unwrap();
        let served = MATHJAX_FILE.strip_prefix("docs/").unwrap();
        assert!(toml.contains(&format!("additional-js = [\"{served}\"]")), "book.toml must serve {served}");
        assert!(
            !toml.contains("mathjax-support = true"),
            "mdBook's mathjax-support loads MathJax from a CDN"
        );
        let head = std::fs::read_to_string(root().join("docs/theme/head.hbs")).unwrap();
        assert!(
            head.contains(r#"inlineMath: [["\\(", "\\)"]]"#)
                && head.contains(r#"displayMath: [["\\[", "\\]"]]"#)
        );
    }
}
