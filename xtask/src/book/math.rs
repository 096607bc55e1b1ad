//! Math written so that markdown keeps its delimiters: `\\(` in a source becomes `\(` in the
//! page, which MathJax typesets; `\(` becomes a plain `(`, and the formula shows as text.

use super::markdown_files;
use crate::process::root;
use anyhow::{Context, Result};
use std::path::Path;

/// Every math delimiter written with one backslash (`\(`, `\)`, `\[`, `\]`) outside code in a
/// page under `src`, as "page:line: what". Markdown reads `\(` as an escaped `(`, so MathJax
/// never sees the delimiter; mdBook pages need `\\(`.
pub fn check_math_escapes(src: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for page in markdown_files(src)? {
        let text = std::fs::read_to_string(&page).with_context(|| format!("reading {}", page.display()))?;
        let name = page.strip_prefix(root()).unwrap_or(&page).display().to_string();
        for (line, c) in lost_backslashes(&text) {
            problems.push(format!(
                "{name}:{line}: control character {c:?}, what a string escape makes of a lost backslash \\
                 (\\text → tab + \"ext\", \\frac → form feed + \"rac\")"
            ));
        }
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

/// Lines holding a tab, bell, backspace, vertical tab or form feed, with that character: the
/// book has no use for them, and each is what a non-raw string (Python's "\t", "\a", "\b",
/// "\v", "\f") makes of a LaTeX command (\text, \alpha, \beta, \vec, \frac) written into a page.
fn lost_backslashes(markdown: &str) -> Vec<(usize, char)> {
    markdown
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            line.chars().find(|c| matches!(c, '\t' | '\x07' | '\x08' | '\x0b' | '\x0c')).map(|c| (i + 1, c))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_lost_backslashes_are_found() {
        assert_eq!(lost_backslashes("a \\\\(\\text{acc}\\\\)\nfine\n\\(x\\) \\frac"), vec![]);
        assert_eq!(lost_backslashes("ok\n\\\\(\text{acc}\\\\)\n\x0crac{1}{2}"), vec![(2, '\t'), (3, '\x0c')]);
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
}
