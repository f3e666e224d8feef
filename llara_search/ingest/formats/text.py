"""Plain text: titles are lines underlined (and maybe overlined) with punctuation, as in rst and many READMEs."""

from __future__ import annotations

import re

from .base import ParsedDocument, Section, line_offsets, paragraph_blocks

ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:.<>_])\1{2,}\s*$")


def underlined_headings(lines: list[str]) -> list[tuple[int, int, str, int]]:
    """(first line index of the heading, index after it, title, level) of every underlined title.

    Levels follow the order in which adornment styles first appear, as docutils defines them.
    """
    styles: list[tuple[str, bool]] = []
    heads: list[tuple[int, int, str, int]] = []
    i = 0
    while i < len(lines) - 1:
        title, under = lines[i].rstrip(), lines[i + 1].rstrip()
        over = i > 0 and ADORNMENT.match(lines[i - 1] or "") is not None
        if (title.strip() and not ADORNMENT.match(title) and ADORNMENT.match(under)
                and len(under.strip()) >= max(3, len(title.strip()) - 1) and len(title.strip()) < 120
                and not title[:1].isspace() and (i == 0 or not lines[i - 1].strip() or over)):
            style = (under.strip()[0], over and lines[i - 1].strip()[:1] == under.strip()[0])
            if style not in styles:
                styles.append(style)
            start = i - 1 if style[1] else i
            heads.append((start, i + 2, title.strip(), styles.index(style)))
            i += 2
            continue
        i += 1
    return heads


def parse_underlined(text: str, fmt: str) -> ParsedDocument:
    """Sections from underlined titles, paragraphs from blank lines (plain text and BEIR records)."""
    lines, offsets = line_offsets(text)
    heads = underlined_headings(lines)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    bounds = [(0, 0, None, -1)] + heads
    for n, (start, body, title, level) in enumerate(bounds):
        end = bounds[n + 1][0] if n + 1 < len(bounds) else len(lines)
        if title is not None:
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
        blocks = paragraph_blocks(lines[body:end], body + 1, offsets)
        if blocks:
            sections.append(Section([t for _, t in stack], blocks))
    title = heads[0][2] if heads else None
    return ParsedDocument(fmt, title, sections)
