//! The built book loads every script and stylesheet from itself, so that it, and its math,
//! renders with no network (why MathJax is served this way: the `book` module's doc).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::MATHJAX_FILE;
    use crate::process::root;

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
