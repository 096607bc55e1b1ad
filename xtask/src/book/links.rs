//! Every link of the built book leads somewhere: a relative `href` names a file the book holds,
//! and its `#fragment` an `id` (or `<a name>`) on that page. The glossary alone links some 180
//! section headings of the chapters, and renaming a heading changes its id; mdBook builds such a
//! dead link without a word, so it is checked here.
//!
//! What is checked, and why:
//! - Every `href` of every element of every built page, mdBook's own chrome included (the
//!   sidebar in `toc.html`, the previous/next arrows, the print button, the favicon): it costs
//!   nothing, and a theme override under `docs/theme/` can break those too.
//! - The built HTML, not the markdown: mdBook rewrites `x.md` to `x.html` and makes the heading
//!   ids (non-ASCII kept as it is: mdBook 0.5.4 writes `id="在线-softmax"` and leaves an authored
//!   `#在线-softmax` or `#%E5%9C%A8…` untouched), so only its output says what a reader clicks.
//!   A fragment matches an id as written or percent-decoded, as a browser tries both.
//! - `print.html` too: mdBook renames repeated ids there (`results`, `results-1`, …) and
//!   rewrites the links to them, so it is a page of its own, not a copy. But each broken link
//!   of a chapter reappears in it (as `#anchor`), so its own are reported only once the other
//!   pages' links all resolve: each mistake is listed once. `index.html`, mdBook's byte-for-byte
//!   copy of the first chapter, is skipped for the same reason.
//! - Skipped: `http:`, `https:`, `//host` (the network: not this test's to reach), `mailto:`,
//!   `javascript:`; fragments into non-HTML files (a CSV has no ids); `404.html`, whose
//!   `<base href="/">` resolves its links against the web server's root, not its folder, and
//!   which mdBook writes itself; links built by scripts (the sidebar's script holds the same
//!   links as `toc.html`, which is checked).
//! - Broken as well: an absolute path (`/x.html`, which breaks under `file://` and any site
//!   prefix), a folder (served as its `index.html` by some web servers only), a path out of the
//!   book, and any other scheme (`file:` would be the author's machine).
//!
//! HTML is read by the small scanner below rather than a parser crate (html5ever and its
//! dependencies would add to every CI build for a page structure mdBook keeps plain): start
//! tags with quoted (`"`, `'`) or bare attribute values, character references in values,
//! comments and the text of `<script>`, `<style>`, `<title>` and `<textarea>` skipped.

use anyhow::{Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What [`check_built`] found: how many links it followed (the test log shows that the check
/// ran, and on how much) and every broken one, as "page: href — what is wrong".
pub struct Report {
    pub checked: usize,
    pub broken: Vec<String>,
}

impl Report {
    /// Follow every `href` of `page` (its start tags `tags`) to a page of `ids`.
    fn follow(&mut self, book: &Path, page: &str, tags: &[Tag], ids: &HashMap<&str, HashSet<&str>>) {
        for href in tags.iter().filter(|t| t.name != "base").filter_map(|t| t.attribute("href")) {
            self.checked += 1;
            if let Err(why) = check_href(book, page, href, ids) {
                self.broken.push(format!("{page}: {href} — {why}"));
            }
        }
    }
}

/// Every link of the built book `book` followed, each broken one reported once: `index.html`
/// is skipped when it is mdBook's copy of the first chapter, and `print.html`, which repeats
/// every chapter's links, is reported only when the other pages' links all resolve.
pub fn check_built(book: &Path) -> Result<Report> {
    let mut texts = HashMap::new();
    for file in html_files(book)? {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let name =
            file.strip_prefix(book).expect("found under the book").to_string_lossy().replace('\\', "/");
        texts.insert(name, text);
    }
    let copy = |page: &str| texts.iter().any(|(other, text)| other != page && *text == texts[page]);
    let pages: HashMap<&str, Vec<Tag>> =
        texts.iter().map(|(name, text)| (name.as_str(), start_tags(text))).collect();
    let ids: HashMap<&str, HashSet<&str>> = pages
        .iter()
        .map(|(&name, tags)| {
            let targets = tags.iter().flat_map(|t| {
                let named = if t.name == "a" { t.attribute("name") } else { None };
                t.attribute("id").into_iter().chain(named)
            });
            (name, targets.collect())
        })
        .collect();
    let mut report = Report { checked: 0, broken: Vec::new() };
    for (&page, tags) in &pages {
        let skipped = page == "404.html" || page == "print.html" || (page == "index.html" && copy(page));
        if !skipped {
            report.follow(book, page, tags, &ids);
        }
    }
    if let Some(tags) = pages.get("print.html").filter(|_| report.broken.is_empty()) {
        report.follow(book, "print.html", tags, &ids);
    }
    // The same link twice on a page is one line, with its count.
    report.broken.sort();
    let mut lines: Vec<(String, usize)> = Vec::new();
    for line in report.broken.drain(..) {
        match lines.last_mut() {
            Some((last, n)) if *last == line => *n += 1,
            _ => lines.push((line, 1)),
        }
    }
    report.broken = lines
        .into_iter()
        .map(|(line, n)| if n == 1 { line } else { format!("{line} ({n} links)") })
        .collect();
    Ok(report)
}

/// Whether `href` on `page` (a path under `book`, `/`-separated) leads somewhere; why not if not.
fn check_href(
    book: &Path,
    page: &str,
    href: &str,
    ids: &HashMap<&str, HashSet<&str>>,
) -> std::result::Result<(), String> {
    let href = href.trim_matches(|c: char| c.is_ascii_whitespace());
    let (address, fragment) = href.split_once('#').map_or((href, None), |(a, f)| (a, Some(f)));
    if href.is_empty() {
        return Err("an empty link (a placeholder left in?)".into());
    }
    if let Some(scheme) = scheme(address) {
        return match scheme.as_str() {
            "http" | "https" | "mailto" | "javascript" => Ok(()),
            other => Err(format!("a `{other}:` link, which a reader's browser cannot follow into the book")),
        };
    }
    if address.starts_with("//") {
        return Ok(());
    }
    if address.starts_with('/') {
        return Err("an absolute path: it breaks when the book is read from files or a sub-folder".into());
    }
    let path = address.split('?').next().unwrap_or_default();
    let target = if path.is_empty() { page.to_owned() } else { resolve(page, path)? };
    let on_disk = book.join(&target);
    if on_disk.is_dir() {
        return Err(format!("{target} is a folder: name the page in it"));
    }
    if !on_disk.is_file() {
        return Err(format!("the book has no {target}"));
    }
    let (Some(fragment), Some(page_ids)) = (fragment, ids.get(target.as_str())) else {
        return Ok(()); // a page with no fragment, or a fragment into a file that is not a page
    };
    let decoded = percent_decode(fragment);
    // An empty fragment and `#top` scroll to the top of any page (HTML's "indicated part").
    if decoded.is_empty() || decoded.eq_ignore_ascii_case("top") {
        return Ok(());
    }
    if page_ids.contains(fragment) || page_ids.contains(decoded.as_str()) {
        return Ok(());
    }
    Err(format!("{target} has no id `{decoded}`"))
}

/// The scheme of a URL (`https` in `https://…`), lower-cased, if it has one.
fn scheme(address: &str) -> Option<String> {
    let (scheme, _) = address.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// The `/`-separated path under the book that `path` (relative, percent-encoded) names from `page`.
fn resolve(page: &str, path: &str) -> std::result::Result<String, String> {
    let mut parts: Vec<String> = page.split('/').map(str::to_owned).collect();
    parts.pop(); // the page's own file name
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or("it leads out of the book")?;
            }
            _ => parts.push(percent_decode(part)),
        }
    }
    Ok(parts.join("/"))
}

/// `%XX` escapes decoded as UTF-8 (what a browser does with a fragment before matching ids).
fn percent_decode(s: &str) -> String {
    let mut bytes = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let escaped = (s.as_bytes()[i] == b'%')
            .then(|| s.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok()))
            .flatten();
        match escaped {
            Some(byte) => {
                bytes.push(byte);
                i += 3;
            }
            None => {
                bytes.push(s.as_bytes()[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|_| s.to_owned())
}

/// A start tag: its name and attributes, names lower-cased, values with references decoded.
#[derive(Debug)]
struct Tag {
    name: String,
    attributes: Vec<(String, String)>,
}

impl Tag {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The start tags of `html`, in order, outside comments, declarations and raw text.
fn start_tags(html: &str) -> Vec<Tag> {
    let bytes = html.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while let Some(lt) = html[i..].find('<').map(|o| i + o) {
        if html[lt..].starts_with("<!--") {
            i = html[lt + 4..].find("-->").map_or(html.len(), |e| lt + 4 + e + 3);
            continue;
        }
        match bytes.get(lt + 1) {
            Some(c) if c.is_ascii_alphabetic() => {}
            // An end tag, `<!DOCTYPE …>` or `<?…>`: nothing to read in it.
            Some(b'/' | b'!' | b'?') => {
                i = html[lt..].find('>').map_or(html.len(), |e| lt + e + 1);
                continue;
            }
            _ => {
                i = lt + 1; // a `<` in text
                continue;
            }
        }
        let (tag, end) = start_tag(html, lt + 1);
        i = end;
        if matches!(tag.name.as_str(), "script" | "style" | "title" | "textarea") {
            // Their text is not markup: `"<a href=" + x` in a script is no link.
            let close = format!("</{}", tag.name);
            i = html[i..].to_ascii_lowercase().find(&close).map_or(html.len(), |e| i + e);
        }
        tags.push(tag);
    }
    tags
}

/// The tag whose name starts at `start` (just after its `<`), and where the text after it starts.
fn start_tag(html: &str, start: usize) -> (Tag, usize) {
    let bytes = html.as_bytes();
    let ends_name = |c: u8| c.is_ascii_whitespace() || c == b'/' || c == b'>';
    let skip_space = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut i = start;
    while i < bytes.len() && !ends_name(bytes[i]) {
        i += 1;
    }
    let name = html[start..i].to_ascii_lowercase();
    let mut attributes = Vec::new();
    loop {
        while bytes.get(i).is_some_and(|&c| c.is_ascii_whitespace() || c == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => break,
            Some(b'>') => {
                i += 1;
                break;
            }
            Some(_) => {}
        }
        // An attribute name runs to a space, `/`, `>` or `=` (an `=` in first place is part of it).
        let name_start = i;
        i += 1;
        while i < bytes.len() && !ends_name(bytes[i]) && bytes[i] != b'=' {
            i += 1;
        }
        let attribute = html[name_start..i].to_ascii_lowercase();
        let mut value = String::new();
        let after_name = skip_space(i);
        if bytes.get(after_name) == Some(&b'=') {
            let v = skip_space(after_name + 1);
            match bytes.get(v) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let end = html[v + 1..].find(quote as char).map_or(html.len(), |e| v + 1 + e);
                    value = decode_references(&html[v + 1..end]);
                    i = (end + 1).min(html.len());
                }
                _ => {
                    i = v;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = decode_references(&html[v..i]);
                }
            }
        }
        attributes.push((attribute, value));
    }
    (Tag { name, attributes }, i)
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` and numeric references (`&#39;`, `&#x27;`)
/// decoded; others left as written (mdBook writes no others into an `href` or `id`).
fn decode_references(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let reference = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let c = match &rest[1..end] {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                n if n.starts_with("#x") || n.starts_with("#X") => {
                    u32::from_str_radix(&n[2..], 16).ok().and_then(char::from_u32)
                }
                n => n.strip_prefix('#').and_then(|d| d.parse().ok()).and_then(char::from_u32),
            };
            c.map(|c| (c, end + 1))
        });
        match reference {
            Some((c, length)) => {
                out.push(c);
                rest = &rest[length..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every `.html` file under `dir`, recursively.
fn html_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(html_files(&path)?);
        } else if path.extension().is_some_and(|x| x == "html") {
            found.push(path);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attributes_in_every_quoting() {
        let html = r##"<!DOCTYPE html><!-- <a href="commented.html"> --><p>1 < 2</p>
            <A HREF='b.html#x' title="a > b">x</A><a href=c.html?p=1&amp;q=2>c</a>
            <h2 id="在线-softmax"><a class="header" href="#在线-softmax">在线 softmax</a></h2>
            <script>let s = '<a href="script.html">';</script><a name=n1 href = "&#x27;q&#39;.html"/>"##;
        let tags = start_tags(html);
        let hrefs: Vec<&str> = tags.iter().filter_map(|t| t.attribute("href")).collect();
        assert_eq!(hrefs, vec!["b.html#x", "c.html?p=1&q=2", "#在线-softmax", "'q'.html"]);
        assert_eq!(tags[1].attribute("title"), Some("a > b"));
        assert_eq!(tags.iter().filter_map(|t| t.attribute("id")).collect::<Vec<_>>(), vec!["在线-softmax"]);
        assert_eq!(tags.last().unwrap().attribute("name"), Some("n1"));
    }

    #[test]
    fn finds_broken_pages_and_anchors_and_skips_the_network() {
        let book = std::env::temp_dir().join(format!("xtask-links-{}", std::process::id()));
        std::fs::create_dir_all(book.join("results")).unwrap();
        std::fs::write(book.join("results/a.csv"), "n,ms\n").unwrap();
        std::fs::write(
            book.join("ch.html"),
            r#"<h2 id="tiling">Tiling</h2><h2 id="在线-softmax">在线</h2><p><a name="old"></a></p>"#,
        )
        .unwrap();
        let links = [
            "ch.html#tiling",                     // good anchor
            "ch.html#%E5%9C%A8%E7%BA%BF-softmax", // good, percent-encoded
            "./ch.html#在线-softmax",             // good, as mdBook writes it
            "ch.html#old",                        // an <a name>
            "#self",                              // on this page
            "ch.html#top",                        // the top of any page
            "results/a.csv#row",                  // a file that is no page: fragment not checked
            "https://arxiv.org/abs/2205.14135#x", // the network: skipped
            "mailto:someone@example.org",
            "gone.html",       // a broken page link
            "ch.html#tilling", // a broken anchor
            "ch.html#tilling", // twice
            "#nowhere",        // a broken anchor on this page
            "../outside.html",
            "/ch.html",
            "results/",
            "file:///home/me/ch.html",
            "", // a placeholder
        ];
        let anchors: String = links.iter().map(|l| format!("<a href=\"{l}\">x</a>\n")).collect();
        let glossary = format!("<p id=\"self\">{anchors}</p>");
        std::fs::write(book.join("glossary.html"), &glossary).unwrap();
        std::fs::write(book.join("index.html"), &glossary).unwrap(); // mdBook's copy: not reported twice
        std::fs::write(book.join("print.html"), r##"<a href="#tilling">x</a>"##).unwrap();
        std::fs::write(book.join("404.html"), r##"<base href="/"><a href="#x">x</a>"##).unwrap();
        let report = check_built(&book).unwrap();
        // Once the chapters' links are right, print.html's own are reported.
        std::fs::write(book.join("glossary.html"), "").unwrap();
        std::fs::write(book.join("index.html"), "").unwrap();
        let print = check_built(&book).unwrap();
        std::fs::remove_dir_all(&book).unwrap();
        assert_eq!(print.broken, ["print.html: #tilling — print.html has no id `tilling`"]);
        assert_eq!(
            report.checked,
            links.len(),
            "every link of glossary.html, none of 404.html or the copies"
        );
        let expected = [
            "glossary.html:  — an empty link (a placeholder left in?)",
            "glossary.html: #nowhere — glossary.html has no id `nowhere`",
            "glossary.html: ../outside.html — it leads out of the book",
            "glossary.html: /ch.html — an absolute path: it breaks when the book is read from files or a sub-folder",
            "glossary.html: ch.html#tilling — ch.html has no id `tilling` (2 links)",
            "glossary.html: file:///home/me/ch.html — a `file:` link, which a reader's browser cannot follow into the book",
            "glossary.html: gone.html — the book has no gone.html",
            "glossary.html: results/ — results is a folder: name the page in it",
        ];
        assert_eq!(report.broken, expected);
    }
}
