"""Jupyter notebooks: markdown cells (headings open sections) and code cells, one block per cell."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .base import Block, ParsedDocument, ParseError, Section, decode_text, push_heading


def parse_ipynb(path: Path, data: bytes) -> ParsedDocument:
    try:
        nb = json.loads(decode_text(data, path.name))
        cells = nb["cells"] if isinstance(nb, dict) else None
        if not isinstance(cells, list):
            raise ValueError("no cells list")
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"broken notebook JSON: {str(exc).splitlines()[0][:150]}") from None
    sections: list[Section] = [Section([])]
    stack: list[tuple[int, str]] = []
    title = None
    pos = 0
    for n, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            continue
        src = cell.get("source", "")
        src = "".join(str(s) for s in src) if isinstance(src, list) else str(src)
        if not src.strip():
            continue
        kind = cell.get("cell_type", "code")
        if kind == "markdown":
            for line in src.split("\n"):
                m = re.match(r"^(#{1,6})\s+(.*)", line)
                if m:
                    head = m.group(2).strip()
                    push_heading(stack, sections, len(m.group(1)), head)
                    title = title or head
                    break
        text = src.strip() if kind == "markdown" else "```python\n" + src.strip() + "\n```"
        sections[-1].blocks.append(Block(text, start_line=n, end_line=n, char_start=pos))  # "lines" = cell numbers
        pos += len(text) + 2
    return ParsedDocument("ipynb", title, [s for s in sections if s.blocks])
