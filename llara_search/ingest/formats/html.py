"""HTML: h1-h6 make the heading path; paragraphs, list items, tables and <pre> blocks are the blocks."""

from __future__ import annotations

import re
from pathlib import Path

from .base import Block, ParsedDocument, Section, decode_text, push_heading

_DROP = ["script", "style", "noscript", "nav", "header", "footer", "template", "svg", "button", "form"]
_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
_MARK_ONLY = re.compile(r"\s*[¶§#🔗⚓]?\s*")
_MARK_TAIL = re.compile(r"(?:\s*[¶§🔗⚓])+\s*$|\s+#$")  # a pilcrow left at a heading's end
_BLOCKS = {"p", "pre", "li", "table", "blockquote", "dd", "dt", "td", "th", "figcaption", "caption"}


def parse_html(path: Path, data: bytes) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data, path.name), "html.parser")
    for tag in soup(_DROP):
        tag.decompose()
    # permalink anchors ("¶") of Sphinx, MkDocs, pandoc and Texinfo headings are navigation, not text
    for tag in soup.select("a.headerlink, a.anchor, a.header-anchor, a.copiable-link, a.copiable-anchor, "
                           "a.permalink, .sphinxsidebar, div.related"):
        tag.decompose()
    for tag in soup.find_all("a"):  # other generators' permalinks: a link whose whole text is a mark
        if _MARK_ONLY.fullmatch(tag.get_text()) and tag.find_parent(_HEADINGS) is not None:
            tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    root = soup.body or soup
    sections: list[Section] = [Section([title] if title else [])]
    stack: list[tuple[int, str]] = []
    pos = 0
    for el in root.find_all(True):
        name = el.name
        if name in _HEADINGS:
            level = int(name[1])
            head = _MARK_TAIL.sub("", el.get_text(" ", strip=True))
            if not head:
                continue
            push_heading(stack, sections, level, head)
            title = title or head
        elif name in _BLOCKS and not el.find_parent(list(_BLOCKS)):
            txt = el.get_text("\n" if name == "pre" else " ", strip=name != "pre").strip()
            if txt:
                sections[-1].blocks.append(Block(txt, char_start=pos))
                pos += len(txt) + 2
    if not any(s.blocks for s in sections):
        txt = root.get_text("\n", strip=True)
        if txt:
            sections = [Section([title] if title else [], [Block(p, char_start=0) for p in txt.split("\n\n")])]
    return ParsedDocument("html", title, [s for s in sections if s.blocks])
