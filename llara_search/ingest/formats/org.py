"""Org mode (`.org`): outline headings make the heading path (TODO keywords, priorities, tags and progress cookies
left out), `#+TITLE` is its root; source, example, quote and verse blocks keep their content; links show their
descriptions; drawers (`:PROPERTIES:` ... `:END:`), planning lines, keywords, comments, export blocks and
`COMMENT` subtrees are not indexed; tables become one line per row.
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path

from .base import Block, ParsedDocument, SectionBuilder, decode_text

_HEADLINE = re.compile(r"^(\*+)[ \t]+(.*?)[ \t]*$")
_TODO = re.compile(r"^(?:TODO|DONE|NEXT|WAITING|WAIT|HOLD|CANCELLED|CANCELED|STARTED|SOMEDAY|IN-PROGRESS|FIXME)\s+")
_PRIORITY = re.compile(r"^\[#[A-Z0-9]\]\s*")
_TAGS = re.compile(r"\s+:[\w@#%:]+:\s*$")
_COOKIE = re.compile(r"\s*\[\d*(?:%|/\d*)\]")
_KEYWORD = re.compile(r"^[ \t]*#\+(\w[\w-]*)(?:\[[^\]]*\])?:[ \t]*(.*)$")
_BEGIN = re.compile(r"^[ \t]*#\+begin_(\w+)(.*)$", re.I)
_DRAWER = re.compile(r"^[ \t]*:([\w-]+):[ \t]*$")
_END = re.compile(r"^[ \t]*:END:[ \t]*$", re.I)
_PLANNING = re.compile(r"^[ \t]*(?:(?:SCHEDULED|DEADLINE|CLOSED):[ \t]*[<\[][^>\]]*[>\]][ \t]*)+$")
_LINK = re.compile(r"\[\[([^\]\[\n]{1,500})\](?:\[([^\]\[\n]{0,500})\])?\]")
_TARGET = re.compile(r"<<<?([^<>\n]{1,200})>>>?")
_FOOTNOTE = re.compile(r"\[fn:[\w-]{0,100}(?::([^\]\n]{0,500}))?\]")
_MACRO = re.compile(r"\{\{\{[^}]{0,500}\}\}\}")
_EMPHASIS = re.compile(r"(?:(?<=^)|(?<=[\s\-(\"'{]))([*/_=~+])(?=[^\s*/_=~+])([^\n]{0,300}?[^\s])\1"
                       r"(?=$|[\s\-.,:!?;'\")}\[])", re.M)
_LIST = re.compile(r"^([ \t]*)(?:[-+]|\d+[.)]|[a-zA-Z][.)])[ \t]+(?:\[[ xX-]\][ \t]+)?")
_DESCRIPTION = re.compile(r"^(.*?)[ \t]+::(?:[ \t]+|$)")
_TABLE_RULE = re.compile(r"^[ \t]*\|[-+|: ]*\|?[ \t]*$")
_VERBATIM_BLOCKS = {"src", "example", "verbatim"}
_DROPPED_BLOCKS = {"comment", "export", "html", "latex", "ascii", "beamer", "odt", "texinfo", "man"}


def org_inline(text: str) -> str:
    text = _LINK.sub(lambda m: m.group(2) if m.group(2) else re.sub(r"^(?:file|id|https?|mailto):", "",
                                                                     m.group(1)), text)
    text = _TARGET.sub(r"\1", text)
    text = _FOOTNOTE.sub(lambda m: f" ({m.group(1).strip()})" if m.group(1) else "", text)
    text = _MACRO.sub("", text)
    for _ in range(2):  # nested emphasis: *bold /italic/*
        text = _EMPHASIS.sub(r"\2", text)
    return text.replace("\\\\", "")


def _headline(text: str) -> str:
    text = _TODO.sub("", text)
    text = _PRIORITY.sub("", text)
    text = _TAGS.sub("", text)
    text = _COOKIE.sub("", text)
    return org_inline(text).strip()


def parse_org(path: Path, data: bytes) -> ParsedDocument:
    text = decode_text(data, path.name)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    builder = SectionBuilder()
    title: str | None = None
    para: list[tuple[str, int]] = []
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1

    def flush() -> None:
        nonlocal para
        if para:
            body = "\n".join(t for t, _ in para).strip("\n")
            builder.add(Block(body, para[0][1] + 1, para[-1][1] + 1, char_start=offsets[para[0][1]]))
        para = []

    ends = [k for k, ln in enumerate(lines) if _END.match(ln)]  # found once: drawers cost a bisect each
    headlines = [k for k, ln in enumerate(lines) if _HEADLINE.match(ln)]
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        m = _HEADLINE.match(line)
        if m:
            flush()
            level = len(m.group(1))
            head = m.group(2)
            if head.startswith("COMMENT") and (len(head) == 7 or head[7] in " \t"):
                i += 1
                while i < n and not ((h := _HEADLINE.match(lines[i])) and len(h.group(1)) <= level):
                    i += 1
                continue
            builder.heading(level, _headline(head))
            i += 1
            continue
        stripped = line.strip()
        if not stripped:
            flush()
            i += 1
            continue
        b = _BEGIN.match(line)
        if b:
            flush()
            kind = b.group(1).lower()
            end = re.compile(rf"^[ \t]*#\+end_{re.escape(kind)}\b", re.I)
            j = i + 1
            body: list[str] = []
            while j < n and not end.match(lines[j]):
                body.append(lines[j])
                j += 1
            if kind not in _DROPPED_BLOCKS and body:
                if kind in _VERBATIM_BLOCKS:
                    block = "\n".join(ln[2:] if ln.startswith(",*") or ln.startswith(",#") else ln for ln in body)
                    indent = min((len(x) - len(x.lstrip()) for x in body if x.strip()), default=0)
                    block = "\n".join(x[indent:] for x in block.split("\n"))
                    builder.add(Block(block.strip("\n"), i + 2, j, char_start=offsets[min(i + 1, n - 1)]))
                else:  # quote, verse, center, and special blocks (note, warning...): ordinary text inside
                    text_lines = [org_inline(x.strip()) for x in body]
                    builder.add(Block("\n".join(text_lines).strip("\n"), i + 2, j, char_start=offsets[min(i + 1,
                                                                                                          n - 1)]))
            i = j + 1
            continue
        d = _DRAWER.match(line)
        if d and d.group(1).upper() != "END":
            k = bisect.bisect_right(ends, i)  # the drawer's :END:, if it comes before the next headline
            h = bisect.bisect_right(headlines, i)
            if k < len(ends) and (h == len(headlines) or ends[k] < headlines[h]):
                flush()
                i = ends[k] + 1
                continue
        if _PLANNING.match(line) or _END.match(line):
            i += 1
            continue
        k = _KEYWORD.match(line)
        if k:
            key = k.group(1).lower()
            if key == "title" and title is None and k.group(2).strip():
                title = org_inline(k.group(2).strip())
                builder.root = [title]
                if not builder.stack:
                    builder.sections[-1].heading = [title]
            elif key in ("caption",) and k.group(2).strip():
                para.append((org_inline(k.group(2).strip()), i))
            i += 1
            continue
        if stripped.startswith("#") and (stripped == "#" or stripped[1] in " \t"):
            i += 1  # a comment line
            continue
        if stripped.startswith("|"):
            if _TABLE_RULE.match(line):
                i += 1
                continue
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            para.append((org_inline(" | ".join(c for c in cells)), i))
            i += 1
            continue
        if stripped.startswith(": ") or stripped == ":":  # fixed-width line
            para.append((stripped[2:], i))
            i += 1
            continue
        lm = _LIST.match(line)
        if lm:
            item = line[lm.end():]
            dm = _DESCRIPTION.match(item)
            if dm:
                item = dm.group(1) + ": " + item[dm.end():]
            para.append(("- " + org_inline(item.strip()), i))
            i += 1
            continue
        if re.fullmatch(r"-{5,}", stripped):  # horizontal rule
            flush()
            i += 1
            continue
        para.append((org_inline(stripped), i))
        i += 1
    flush()
    return ParsedDocument("org", title, builder.result())
