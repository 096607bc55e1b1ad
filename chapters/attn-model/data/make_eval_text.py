"""The fixed English text that chapters 7 onwards measure perplexity on (`eval-text.txt`).

It is the book's own prose: chapters 1 and 3 of `docs/src/` with everything that is not running
English taken out, so a language model's loss on it measures how well it predicts ordinary
technical writing, not LaTeX or Rust.

    python3 chapters/attn-model/data/make_eval_text.py docs/src/01-attention-basics.md \
        docs/src/03-flash-attention.md > chapters/attn-model/data/eval-text.txt

Removed: fenced code blocks, `{{#include}}` lines, tables, HTML, image lines, link reference
definitions, display math (`\\[ … \\]`, `$$ … $$`), inline math (`\\( … \\)`, `$ … $`), link
targets (the link text stays), emphasis and code marks (the words stay), heading and list
markers, and paragraphs with non-Latin script (the chapter's original title). Kept: paragraphs,
one per line, separated by a blank line. From each chapter, whole paragraphs are taken from the
start while the chapter's share stays under `BUDGET_PER_FILE` characters.

Deterministic: the same input files give the same bytes. The text is frozen once made (the book
changes; the measurement must not): `tests/fixtures/README.md` names the commit it was made from.
"""

import re
import sys

BUDGET_PER_FILE = 7000

FENCE = re.compile(r"^\s*(```|~~~)")
DROPPED_LINE = re.compile(r"^\s*(\||<|!\[|\{\{#|\[[^\]]+\]:\s)")
DISPLAY_MATH = re.compile(r"\\\\\[.*?\\\\\]|\\\[.*?\\\]|\$\$.*?\$\$", re.S)
INLINE_MATH = re.compile(r"\\\\\(.*?\\\\\)|\\\(.*?\\\)|(?<![\\$])\$[^$\n]+?\$")
IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
LINK = re.compile(r"\[([^\]]+)\](\([^)]*\)|\[[^\]]*\])")
HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
LIST_MARKER = re.compile(r"^\s*([-*+]|\d+[.)])\s+")
NON_LATIN = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")


def blocks(markdown):
    """The source's paragraphs (lists: one per item), each a list of lines, code and tables out."""
    paragraph, in_fence, in_display_math = [], False, False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        stripped = line.strip()
        # A display-math block on lines of its own: skip it whole (also ends the paragraph).
        if not paragraph and (stripped.startswith("\\\\[") or stripped.startswith("$$")):
            in_display_math = not (stripped.endswith("\\\\]") or (stripped.endswith("$$") and len(stripped) > 2))
            continue
        if in_display_math:
            in_display_math = not (stripped.endswith("\\\\]") or stripped.endswith("$$"))
            continue
        starts_item = bool(LIST_MARKER.match(line)) or stripped.startswith("#")
        if not stripped or DROPPED_LINE.match(line) or starts_item:
            if paragraph:
                yield paragraph
            paragraph = []
            if not stripped or DROPPED_LINE.match(line):
                continue
        paragraph.append(line)
    if paragraph:
        yield paragraph


def plain(lines):
    """One paragraph's lines as one line of plain prose, or '' if nothing readable is left."""
    text = " ".join(line.strip() for line in lines)
    text = text.lstrip("#> ").strip()
    text = LIST_MARKER.sub("", text)
    text = DISPLAY_MATH.sub(" ", text)
    text = INLINE_MATH.sub(" ", text)
    text = IMAGE.sub(" ", text)
    text = LINK.sub(r"\1", text)
    text = HTML_TAG.sub(" ", text)
    text = text.replace("`", "").replace("**", "").replace("*", "")
    # What removing math leaves behind: empty brackets, spaces before punctuation, doubled spaces.
    text = re.sub(r"\(\s*[,;:]?\s*\)", " ", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r" ([,.;:!?)])", r"\1", text)
    text = re.sub(r"\(\s*(?:[,;:]\s*)*", "(", text)
    text = re.sub(r"([,;:])(?=[,;:.])", "", text)
    text = text.strip()
    if NON_LATIN.search(text) or len(text.split()) < 3:
        return ""
    return text


def prose(markdown, budget):
    """Whole plain paragraphs from the start of `markdown`, at most `budget` characters in all."""
    kept, used = [], 0
    for block in blocks(markdown):
        paragraph = plain(block)
        if not paragraph:
            continue
        if used + len(paragraph) + 2 > budget:
            break
        kept.append(paragraph)
        used += len(paragraph) + 2
    return kept


def main(paths):
    paragraphs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            paragraphs += prose(f.read(), BUDGET_PER_FILE)
    sys.stdout.write("\n\n".join(paragraphs) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
