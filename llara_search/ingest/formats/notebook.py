"""Jupyter notebooks: markdown cells rendered like markdown files (their headings open sections), code cells kept
as code; "lines" are cell numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .base import Block, ParsedDocument, ParseError, SectionBuilder, decode_text
from .markdown import _MYST_HINT, _Markdown, _preprocess


def parse_ipynb(path: Path, data: bytes) -> ParsedDocument:
    try:
        nb = json.loads(decode_text(data, path.name))
        cells = nb["cells"] if isinstance(nb, dict) else None
        if not isinstance(cells, list):
            raise ValueError("no cells list")
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"broken notebook JSON: {str(exc).splitlines()[0][:150]}") from None
    builder = SectionBuilder()
    title = None
    pos = 0
    renderer: _Markdown | None = None

    def add(text: str, n: int) -> None:
        nonlocal pos
        builder.add(Block(text, start_line=n, end_line=n, char_start=pos))  # "lines" are cell numbers
        pos += len(text) + 2

    for n, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            continue
        src = cell.get("source", "")
        src = "".join(str(s) for s in src) if isinstance(src, list) else str(src)
        if not src.strip():
            continue
        kind = cell.get("cell_type", "code")
        if kind == "markdown":
            myst = bool(_MYST_HINT.search(src))
            if renderer is None or renderer.myst != myst:
                renderer = _Markdown(myst)

            def heading(level: int, name: str) -> None:
                nonlocal title
                builder.heading(level, name)
                title = title or name

            renderer.render("\n".join(_preprocess(src.split("\n"), myst)), 1,
                            lambda b, n=n: add(b.text, n), heading=heading)
        elif kind == "code" and re.search(r"\w", src):
            add(src.strip("\n"), n)
        # raw cells are not rendered by notebook viewers: not indexed
    return ParsedDocument("ipynb", title, builder.result())
